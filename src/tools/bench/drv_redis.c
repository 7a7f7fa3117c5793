#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * mq-bench driver for Redis, spoken natively (RESP2; every command is an
 * array of bulk strings, so bodies are binary-safe).
 *
 * How each role maps onto Redis, and why:
 *
 *  - Queues are lists, the way Redis is used as a work queue.  A producer
 *    sends `RPUSH <key> <body>`; the `:<length>` reply confirms it.  The
 *    window is the number of RPUSHes pipelined without their reply.
 *  - A consumer keeps min(prefetch, what the run still expects) `BLPOP
 *    <key> 0` pipelined; each `*2 [key, body]` reply is a delivery and a
 *    new BLPOP takes its place.  Redis has no acknowledgement: a popped
 *    message is gone, so --auto-ack changes nothing.  A BLPOP waiting on an
 *    empty list holds every command behind it, so a consumer with several
 *    lists must never wait on one that will get nothing more: it walks its
 *    lists round robin (the order producers fill them in, so each BLPOP
 *    finds its message) and pops each list only as many times as the run
 *    will push into it, counted before the start from mqb_queue_for.
 *  - Fan-out is Redis pub/sub: the publisher sends `PUBLISH <channel>
 *    <body>` (the `:<receivers>` reply confirms it); each subscriber
 *    SUBSCRIBEs to every channel and waits for all the confirmations before
 *    the run starts; deliveries are `*3 [message, channel, body]`.
 *  - Request/reply over lists: the requester RPUSHes each request to
 *    "<prefix>.rpc", framed as u16 length + its reply list
 *    "<prefix>.reply.<id>" + body, and BLPOPs its reply list once per
 *    request; responders BLPOP "<prefix>.rpc" and RPUSH the body to the
 *    reply list.  Both use two connections, one for the blocking pops and
 *    one for the pushes: a push pipelined behind a BLPOP that waits would
 *    wait with it, turning the window into lock step or a deadlock.
 *  - Setup deletes the lists a pair, produce or request run will use, so
 *    leftovers of an earlier run cannot corrupt it (a consume run keeps
 *    them: they are what it drains), in pipelined DELs of 1000 keys.
 *  - --user / --password become AUTH.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bench/bench.h"
#include "tools/bench/bio.h"
#include "tools/bench/text.h"

#define DEL_BATCH 1000        /* keys per DEL in setup */
#define SUB_BATCH 1000        /* channels per SUBSCRIBE */
#define MAX_ELEMS 4           /* the widest reply we read is *3 */

/* ---- RESP replies ----------------------------------------------------- */

struct relem {
	char type;             /* '+', '-', ':', '$' or '*' */
	int64_t n;             /* ':' value; '$' and '*' length, -1 for nil */
	const uint8_t *s;      /* '+', '-' text; '$' bytes */
	size_t len;
};

struct rreply {
	struct relem top;      /* for '*', the elements follow in el */
	struct relem el[MAX_ELEMS];
};

static bool parse_int(const uint8_t *p, const uint8_t *end, int64_t *v)
{
	bool neg = p < end && *p == '-';
	uint64_t u;
	size_t k = mqb_parse_dec(p + neg, end, &u);

	if (k == 0 || p + neg + k != end || u > INT64_MAX)
		return false;
	*v = neg ? -(int64_t)u : (int64_t)u;
	return true;
}

/* One non-array value (or an array's header) at p: the bytes it takes,
 * 0 when it has not all arrived, -1 when it is malformed. */
static long parse_elem(const uint8_t *p, size_t avail, struct relem *e)
{
	const uint8_t *crlf = avail ? memmem(p, avail, "\r\n", 2) : NULL;
	size_t line, need;

	if (!crlf)
		return 0;
	line = (size_t)(crlf - p);
	if (line == 0)
		return -1;
	e->type = (char)p[0];
	e->s = p + 1;
	e->len = line - 1;
	e->n = 0;
	switch (p[0]) {
	case '+':
	case '-':
		return (long)line + 2;
	case ':':
	case '*':
		return parse_int(p + 1, crlf, &e->n) ? (long)line + 2 : -1;
	case '$':
		if (!parse_int(p + 1, crlf, &e->n))
			return -1;
		if (e->n < 0)
			return (long)line + 2;
		need = line + 2 + (size_t)e->n + 2;
		if (avail < need)
			return 0;
		if (memcmp(p + need - 2, "\r\n", 2) != 0)
			return -1;
		e->s = p + line + 2;
		e->len = (size_t)e->n;
		return (long)need;
	}
	return -1;
}

/* One whole reply: arrays of up to MAX_ELEMS scalars, as parse_elem. */
static long parse_reply(const uint8_t *p, size_t avail, struct rreply *m)
{
	long k = parse_elem(p, avail, &m->top);
	size_t off;

	if (k <= 0 || m->top.type != '*' || m->top.n <= 0)
		return k;
	if (m->top.n > MAX_ELEMS)
		return -1;
	off = (size_t)k;
	for (int64_t i = 0; i < m->top.n; i++) {
		k = parse_elem(p + off, avail - off, &m->el[i]);
		if (k <= 0)
			return k;
		if (m->el[i].type == '*')
			return -1;
		off += (size_t)k;
	}
	return (long)off;
}

static bool elem_is(const struct relem *e, const char *s)
{
	size_t n = strlen(s);

	return e->type == '$' && e->len == n && memcmp(e->s, s, n) == 0;
}

/* ---- commands --------------------------------------------------------- */

static void put_bulk(struct mqb_buf *w, const void *p, size_t n)
{
	mqb_buf_puts(w, "$");
	mqb_put_dec(w, n);
	mqb_buf_puts(w, "\r\n");
	mqb_buf_put(w, p, n);
	mqb_buf_puts(w, "\r\n");
}

static void put_array(struct mqb_buf *w, size_t n)
{
	mqb_buf_puts(w, "*");
	mqb_put_dec(w, n);
	mqb_buf_puts(w, "\r\n");
}

/* A command of string arguments, NULL-terminated. */
static void put_cmd(struct mqb_buf *w, const char *const *argv)
{
	size_t n = 0;

	while (argv[n])
		n++;
	put_array(w, n);
	for (size_t i = 0; i < n; i++)
		put_bulk(w, argv[i], strlen(argv[i]));
}

/*
 * The ready-made start of "<verb> <key> <last>" where the last argument
 * is a body of len bytes written after it: "*3 $verb $key $len".
 */
static int add_head(struct mqb_strtab *t, const char *verb, const char *key,
                    size_t len)
{
	return mqb_strtab_add(t, "*3\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n$%zu\r\n",
	                      strlen(verb), verb, strlen(key), key, len);
}

/* "BLPOP <key> 0", whole. */
static int add_blpop(struct mqb_strtab *t, const char *key)
{
	return mqb_strtab_add(t, "*3\r\n$5\r\nBLPOP\r\n$%zu\r\n%s\r\n$1\r\n0\r\n",
	                      strlen(key), key);
}

/* ---- connection ------------------------------------------------------- */

struct rconn {
	struct mqb_role *r;
	struct mqb_bio b;
	uint64_t replies;      /* replies handled (errors fail the role) */
	uint64_t subs;         /* subscribe confirmations */
	/* a reply that is not an error: 0, or -1 after mqb_fail */
	int (*on_reply)(struct rconn *c, const struct rreply *m);
	void *arg;
};

static void rc_init(struct rconn *c, struct mqb_role *r)
{
	memset(c, 0, sizeof *c);
	c->r = r;
	c->b.fd = -1;
}

/*
 * Handle every complete reply in the input; a reply that has not all
 * arrived stays for the next read.  0, or -1 after mqb_fail.
 */
static int drain(struct rconn *c)
{
	struct mqb_bio *b = &c->b;
	struct rreply m;
	long k;

	while ((k = parse_reply(mqb_bio_data(b), mqb_bio_avail(b), &m)) > 0) {
		/* the bytes stay put until the next read, so consume first */
		mqb_bio_consume(b, (size_t)k);
		if (m.top.type == '-')
			return mqb_fail(c->r, "redis: %.*s",
			                (int)(m.top.len > 120 ? 120 : m.top.len),
			                (const char *)m.top.s);
		c->replies++;
		if (c->on_reply && c->on_reply(c, &m) < 0)
			return -1;
	}
	if (k < 0)
		return mqb_fail(c->r, "redis: malformed reply");
	return 0;
}

static int flush(struct rconn *c)
{
	return mqb_text_flush(c->r, &c->b, "redis");
}

/* Wait up to ms for input and handle it: 0, 1 when the read failed but the
 * role is over anyway, -1 after mqb_fail. */
static int pump(struct rconn *c, int ms, bool over)
{
	int rc = mqb_text_read(c->r, &c->b, "redis", ms, over);

	return rc == 0 ? drain(c) : rc;
}

static int pump_tick(void *c)
{
	return pump(c, MQB_BIO_TICK_MS, false);
}

/* Flush, then read until *counter reaches target: 0, 1 (run stopped),
 * or -1 after mqb_fail. */
static int wait_for(struct rconn *c, const uint64_t *counter, uint64_t target,
                    const char *what)
{
	int rc = flush(c);

	return rc == 0 ? mqb_text_wait(c->r, "redis", pump_tick, c, counter,
	                               target, what)
	               : rc;
}

/* AUTH when a password is given. */
static void put_auth(struct mqb_buf *w, const struct mqb_opts *o)
{
	if (o->user && o->password)
		put_cmd(w, (const char *const[]){ "AUTH", o->user, o->password,
		                                   NULL });
	else if (o->password)
		put_cmd(w, (const char *const[]){ "AUTH", o->password, NULL });
}

/* Connect, AUTH, and PING: the server answered, so it is there and we
 * may use it.  0, 1 (run stopped), or -1 after mqb_fail. */
static int rc_open(struct rconn *c, struct mqb_role *r)
{
	const struct mqb_opts *o = &r->run->o;
	int rc;

	rc_init(c, r);
	if (mqb_bio_connect(&c->b, o) < 0)
		return mqb_fail(r, "redis: connect: %s", c->b.err);
	put_auth(&c->b.out, o);
	put_cmd(&c->b.out, (const char *const[]){ "PING", NULL });
	rc = wait_for(c, &c->replies, o->password ? 2 : 1, "PONG");
	c->replies = 0;
	return rc;
}

/* Encode "<head><the sender's next body>\r\n", head from add_head. */
static void put_body_cmd(struct rconn *c, const char *head, size_t hl,
                         const uint8_t *pre, size_t prelen)
{
	struct mqb_buf *w = &c->b.out;
	size_t size = c->r->run->o.size;
	uint8_t *p = mqb_buf_reserve(w, hl + prelen + size + 2);

	memcpy(p, head, hl);
	if (prelen)
		memcpy(p + hl, pre, prelen);
	mqb_make_body(c->r, p + hl + prelen);
	memcpy(p + hl + prelen + size, "\r\n", 2);
	w->len += hl + prelen + size + 2;
}

/* ---- producers and the fan-out publisher ------------------------------ */

/* RPUSH and PUBLISH answer an integer. */
static int int_reply(struct rconn *c, const struct rreply *m)
{
	if (m->top.type != ':')
		return mqb_fail(c->r, "redis: '%c' reply where a number was due",
		                m->top.type);
	return 0;
}

static int send_loop(struct rconn *c, const struct mqb_strtab *heads)
{
	struct mqb_role *r = c->r;
	uint64_t inflight = 0;
	int rc = 0;

	while (rc == 0 && !mqb_sender_done(r)) {
		uint64_t n, before = c->replies;

		if (mqb_stopping(r->run))
			break;
		n = mqb_budget(r, inflight);
		if (n == 0 && inflight == 0) {
			if (!mqb_wait_lag(r))
				break;
			continue;
		}
		for (uint64_t i = 0; i < n; i++) {
			size_t hl;
			unsigned q = mqb_queue_for(r, r->next_seq);
			const char *h = mqb_strtab_get(heads, q, &hl);

			put_body_cmd(c, h, hl, NULL, 0);
		}
		inflight += n;
		rc = flush(c);
		if (rc == 0)
			rc = pump(c, n ? 0 : MQB_BIO_TICK_MS, false);
		if (c->replies != before) {
			mqb_confirmed(r, c->replies - before);
			inflight -= c->replies - before;
		}
	}
	return rc;
}

/* verb is RPUSH (lists) or PUBLISH (channels). */
static int send_role(struct mqb_role *r, const char *verb)
{
	const struct mqb_run *run = r->run;
	struct mqb_strtab heads = { 0 };
	struct rconn c;
	char name[256];
	int rc = rc_open(&c, r);

	c.on_reply = int_reply;
	for (unsigned q = 0; rc == 0 && q < run->o.queues; q++) {
		mqb_queue_name(run, q, name, sizeof name);
		if (add_head(&heads, verb, name, run->o.size) < 0)
			rc = mqb_fail(r, "out of memory");
	}
	if (rc == 0)
		rc = mqb_ready(r) ? send_loop(&c, &heads) : 1;
	mqb_bio_close(&c.b);
	mqb_strtab_free(&heads);
	return rc < 0 ? -1 : 0;
}

static int redis_produce(struct mqb_role *r)
{
	return send_role(r, "RPUSH");
}

static int redis_publish(struct mqb_role *r)
{
	return send_role(r, "PUBLISH");
}

/* ---- consumers -------------------------------------------------------- */

struct consumer {
	struct rconn c;
	struct mqb_strtab pops;  /* a whole BLPOP per list, in list order */
	unsigned n;              /* lists */
	uint64_t *left;          /* pops each list may still take; NULL:
	                          * one list, as many as the run expects */
	unsigned next;           /* round robin position */
	uint64_t armed;          /* BLPOPs sent and not yet answered */
};

/*
 * A consumer of several lists pops each only as often as the run pushes
 * into it.  Lists are not shared when a consumer has several
 * (mqb_consumer_queues gives each to one consumer then); if they were,
 * the loop would still end, when the run has everything.
 */
static int plan(struct consumer *k, const unsigned *qs)
{
	k->left = calloc(k->n, sizeof *k->left);
	if (!k->left || mqb_plan(k->c.r, qs, k->n, k->left) < 0)
		return mqb_fail(k->c.r, "out of memory");
	return 0;
}

/* The list the next BLPOP goes to; false when every list is spoken for. */
static bool next_list(struct consumer *k, unsigned *out)
{
	unsigned j = k->next;

	if (!k->left) {
		*out = 0;
		return true;
	}
	for (unsigned t = 0; t < k->n; t++) {
		if (k->left[j]) {
			k->left[j]--;
			*out = j;
			k->next = j + 1 == k->n ? 0 : j + 1;
			return true;
		}
		j = j + 1 == k->n ? 0 : j + 1;
	}
	return false;
}

/* What the run still expects, capped at the prefetch. */
static uint64_t pops_wanted(const struct mqb_run *run)
{
	uint64_t depth = mqb_depth(run->o.prefetch);
	uint64_t got = atomic_load_explicit(&run->recv_total,
	                                    memory_order_relaxed);
	uint64_t left = got < run->expect_total ? run->expect_total - got : 0;

	return left < depth ? left : depth;
}

static void arm(struct consumer *k)
{
	uint64_t want = pops_wanted(k->c.r->run);
	unsigned i;

	while (k->armed < want && next_list(k, &i)) {
		size_t len;
		const char *cmd = mqb_strtab_get(&k->pops, i, &len);

		mqb_buf_put(&k->c.b.out, cmd, len);
		k->armed++;
	}
}

/* BLPOP answers [key, body]. */
static int popped(struct rconn *c, const struct rreply *m)
{
	if (m->top.type != '*' || m->top.n != 2 || m->el[1].type != '$' ||
	    m->el[1].n < 0)
		return mqb_fail(c->r, "redis: unexpected reply to BLPOP");
	mqb_received(c->r, m->el[1].s, m->el[1].len);
	return 0;
}

static int consume_loop(struct consumer *k)
{
	struct mqb_role *r = k->c.r;
	int rc = 0;

	while (rc == 0 && !mqb_receivers_done(r->run, r)) {
		uint64_t before = k->c.replies;

		arm(k);
		rc = flush(&k->c);
		if (rc == 0)
			rc = pump(&k->c, MQB_BIO_TICK_MS,
			          mqb_receivers_done(r->run, r));
		k->armed -= k->c.replies - before;
	}
	return rc;
}

static int consumer_open(struct consumer *k, struct mqb_role *r)
{
	unsigned *qs = mqb_queue_list(r, &k->n);
	char name[256];
	int rc = 0;

	if (!qs)
		return mqb_fail(r, "no queues to consume (or out of memory)");
	for (unsigned i = 0; rc == 0 && i < k->n; i++) {
		mqb_queue_name(r->run, qs[i], name, sizeof name);
		if (add_blpop(&k->pops, name) < 0)
			rc = mqb_fail(r, "out of memory");
	}
	if (rc == 0 && k->n > 1)
		rc = plan(k, qs);
	free(qs);
	if (rc == 0)
		rc = rc_open(&k->c, r);
	k->c.on_reply = popped;
	return rc;
}

static int redis_consume(struct mqb_role *r)
{
	struct consumer k;
	int rc;

	memset(&k, 0, sizeof k);
	rc_init(&k.c, r);
	rc = consumer_open(&k, r);
	if (rc == 0)
		rc = mqb_ready(r) ? consume_loop(&k) : 1;
	mqb_bio_close(&k.c.b);
	mqb_strtab_free(&k.pops);
	free(k.left);
	return rc < 0 ? -1 : 0;
}

/* ---- fan-out subscribers ---------------------------------------------- */

/* [subscribe, channel, count] while subscribing; then [message, channel,
 * body] for each delivery. */
static int sub_reply(struct rconn *c, const struct rreply *m)
{
	if (m->top.type == '*' && m->top.n == 3 && m->el[2].type == '$' &&
	    elem_is(&m->el[0], "message")) {
		mqb_received(c->r, m->el[2].s, m->el[2].len);
		return 0;
	}
	if (m->top.type == '*' && m->top.n == 3 &&
	    elem_is(&m->el[0], "subscribe")) {
		c->subs++;
		return 0;
	}
	return mqb_fail(c->r, "redis: unexpected reply to a subscriber");
}

/* SUBSCRIBE to every channel, SUB_BATCH to a command; wait for all. */
static int subscribe_all(struct rconn *c)
{
	struct mqb_role *r = c->r;
	unsigned nq, *qs = mqb_queue_list(r, &nq);
	char name[256];

	if (!qs)
		return mqb_fail(r, "no channels (or out of memory)");
	for (unsigned i = 0; i < nq; i += SUB_BATCH) {
		unsigned k = nq - i < SUB_BATCH ? nq - i : SUB_BATCH;

		put_array(&c->b.out, 1 + (size_t)k);
		put_bulk(&c->b.out, "SUBSCRIBE", 9);
		for (unsigned j = i; j < i + k; j++) {
			mqb_queue_name(r->run, qs[j], name, sizeof name);
			put_bulk(&c->b.out, name, strlen(name));
		}
	}
	free(qs);
	return wait_for(c, &c->subs, nq, "subscribe confirmations");
}

static int sub_loop(struct rconn *c)
{
	struct mqb_role *r = c->r;
	int rc = 0;

	while (rc == 0 && !mqb_receivers_done(r->run, r))
		rc = pump(c, MQB_BIO_TICK_MS, mqb_receivers_done(r->run, r));
	return rc;
}

static int redis_subscribe(struct mqb_role *r)
{
	struct rconn c;
	int rc = rc_open(&c, r);

	c.on_reply = sub_reply;
	if (rc == 0)
		rc = subscribe_all(&c);
	if (rc == 0)
		rc = mqb_ready(r) ? sub_loop(&c) : 1;
	mqb_bio_close(&c.b);
	return rc < 0 ? -1 : 0;
}

/* ---- request / reply -------------------------------------------------- */

/* The reply to a pop of a request or a reply: [key, body]. */
static bool pop_body(const struct rreply *m, const uint8_t **p, size_t *n)
{
	if (m->top.type != '*' || m->top.n != 2 || m->el[1].type != '$' ||
	    m->el[1].n < 0)
		return false;
	*p = m->el[1].s;
	*n = m->el[1].len;
	return true;
}

static int got_reply(struct rconn *c, const struct rreply *m)
{
	const uint8_t *p;
	size_t n;

	if (!pop_body(m, &p, &n))
		return mqb_fail(c->r, "redis: unexpected reply to BLPOP");
	mqb_received(c->r, p, n);
	mqb_confirmed(c->r, 1);
	return 0;
}

/*
 * A requester pushes requests on `push` and pops their replies on `pop`,
 * one BLPOP per request; cmds holds the RPUSH head (0) and the BLPOP (1).
 */
struct requester {
	struct rconn push, pop;
	struct mqb_strtab cmds;
	uint8_t pre[2 + 256];    /* framed reply list, in front of each body */
	size_t prelen;
};

static int request_pass(struct requester *q, uint64_t *inflight)
{
	struct mqb_role *r = q->push.r;
	uint64_t n = mqb_budget(r, *inflight), before = q->pop.replies;
	size_t hl, bl;
	const char *head = mqb_strtab_get(&q->cmds, 0, &hl);
	const char *blpop = mqb_strtab_get(&q->cmds, 1, &bl);
	int rc;

	if (n == 0 && *inflight == 0)
		return mqb_wait_lag(r) ? 0 : 1;
	for (uint64_t i = 0; i < n; i++) {
		put_body_cmd(&q->push, head, hl, q->pre, q->prelen);
		mqb_buf_put(&q->pop.b.out, blpop, bl);
	}
	*inflight += n;
	rc = flush(&q->push);
	if (rc == 0)
		rc = flush(&q->pop);
	if (rc == 0)   /* the RPUSH replies, to catch errors */
		rc = pump(&q->push, 0, false);
	if (rc == 0)
		rc = pump(&q->pop, n ? 0 : MQB_BIO_TICK_MS, false);
	*inflight -= q->pop.replies - before;
	return rc;
}

static int request_open(struct requester *q, struct mqb_role *r)
{
	const struct mqb_opts *o = &r->run->o;
	char key[256], rpc[256];
	int n = snprintf(key, sizeof key, "%s.reply.%u", o->prefix, r->id);
	int rc;

	if (n <= 0 || (size_t)n >= sizeof key)
		return mqb_fail(r, "redis: prefix too long");
	snprintf(rpc, sizeof rpc, "%s.rpc", o->prefix);
	q->prelen = mqb_rpc_head(q->pre, key, (size_t)n);
	if (add_head(&q->cmds, "RPUSH", rpc, q->prelen + o->size) < 0 ||
	    add_blpop(&q->cmds, key) < 0)
		return mqb_fail(r, "out of memory");
	rc = rc_open(&q->push, r);
	if (rc == 0)
		rc = rc_open(&q->pop, r);
	q->push.on_reply = int_reply;
	q->pop.on_reply = got_reply;
	return rc;
}

static int redis_request(struct mqb_role *r)
{
	struct requester q;
	uint64_t inflight = 0;
	int rc;

	memset(&q, 0, sizeof q);
	rc_init(&q.push, r);
	rc_init(&q.pop, r);
	rc = request_open(&q, r);
	if (rc == 0 && !mqb_ready(r))
		rc = 1;
	while (rc == 0 && !mqb_sender_done(r) && !mqb_stopping(r->run))
		rc = request_pass(&q, &inflight);
	mqb_bio_close(&q.push.b);
	mqb_bio_close(&q.pop.b);
	mqb_strtab_free(&q.cmds);
	return rc < 0 ? -1 : 0;
}

/*
 * A responder pops requests on `pop` (prefetch BLPOPs outstanding) and
 * pushes each body to the reply list framed in it, on `push`.
 */
struct responder {
	struct rconn pop, push;
	struct mqb_strtab blpop;
	uint64_t armed;
};

static int answer(struct rconn *c, const struct rreply *m)
{
	struct responder *s = c->arg;
	struct mqb_buf *w = &s->push.b.out;
	const uint8_t *req, *name, *body;
	size_t len, nl, bl;

	if (!pop_body(m, &req, &len) ||
	    !mqb_rpc_split(req, len, &name, &nl, &body, &bl))
		return mqb_fail(c->r, "redis: malformed request");
	put_array(w, 3);
	put_bulk(w, "RPUSH", 5);
	put_bulk(w, name, nl);
	put_bulk(w, body, bl);
	return 0;
}

static int serve_pass(struct responder *s)
{
	const struct mqb_run *run = s->pop.r->run;
	uint64_t depth = mqb_depth(run->o.prefetch), before = s->pop.replies;
	size_t bl;
	const char *blpop = mqb_strtab_get(&s->blpop, 0, &bl);
	int rc;

	for (; s->armed < depth; s->armed++)
		mqb_buf_put(&s->pop.b.out, blpop, bl);
	rc = flush(&s->pop);
	if (rc == 0)
		rc = flush(&s->push);
	if (rc == 0)
		rc = pump(&s->push, 0, !mqb_serving(run));
	if (rc == 0)
		rc = pump(&s->pop, MQB_BIO_TICK_MS, !mqb_serving(run));
	s->armed -= s->pop.replies - before;
	return rc;
}

static int redis_respond(struct mqb_role *r)
{
	struct responder s;
	char rpc[256];
	int rc;

	memset(&s, 0, sizeof s);
	rc_init(&s.pop, r);
	rc_init(&s.push, r);
	snprintf(rpc, sizeof rpc, "%s.rpc", r->run->o.prefix);
	rc = add_blpop(&s.blpop, rpc) < 0 ? mqb_fail(r, "out of memory") : 0;
	if (rc == 0)
		rc = rc_open(&s.pop, r);
	if (rc == 0)
		rc = rc_open(&s.push, r);
	s.pop.on_reply = answer;
	s.pop.arg = &s;
	s.push.on_reply = int_reply;
	if (rc == 0 && !mqb_ready(r))
		rc = 1;
	while (rc == 0 && mqb_serving(r->run))
		rc = serve_pass(&s);
	if (rc == 0)
		flush(&s.push);   /* replies to the last requests */
	mqb_bio_close(&s.pop.b);
	mqb_bio_close(&s.push.b);
	mqb_strtab_free(&s.blpop);
	return rc < 0 ? -1 : 0;
}

/* ---- idle ------------------------------------------------------------- */

static int redis_idle(struct mqb_role *r)
{
	struct rconn c;
	int rc = rc_open(&c, r);

	if (rc == 0 && mqb_ready(r))
		while (rc == 0 && mqb_serving(r->run))
			rc = pump(&c, MQB_BIO_TICK_MS, !mqb_serving(r->run));
	mqb_bio_close(&c.b);
	return rc < 0 ? -1 : 0;
}

/* ---- setup ------------------------------------------------------------ */

/* The lists a run will write, DEL'd in batches into w; how many DELs. */
static size_t put_dels(const struct mqb_run *run, struct mqb_buf *w)
{
	const struct mqb_opts *o = &run->o;
	bool rpc = o->mode == MQB_REQUEST;
	/* request runs: "<prefix>.rpc" and one reply list per requester */
	unsigned nkeys = rpc ? o->producers + 1 : o->queues;
	char name[256];
	size_t dels = 0;

	for (unsigned i = 0; i < nkeys; i += DEL_BATCH) {
		unsigned k = nkeys - i < DEL_BATCH ? nkeys - i : DEL_BATCH;

		put_array(w, 1 + (size_t)k);
		put_bulk(w, "DEL", 3);
		for (unsigned j = i; j < i + k; j++) {
			if (!rpc)
				mqb_queue_name(run, j, name, sizeof name);
			else if (j == o->producers)
				snprintf(name, sizeof name, "%s.rpc",
				         o->prefix);
			else
				snprintf(name, sizeof name, "%s.reply.%u",
				         o->prefix, j);
			put_bulk(w, name, strlen(name));
		}
		dels++;
	}
	return dels;
}

/* Read n replies, none an error: 0, or -1 with err. */
static int await_replies(struct mqb_bio *b, size_t n, unsigned limit_ms,
                         char *err, size_t errlen)
{
	uint64_t deadline = mqb_now_ns() + (uint64_t)limit_ms * 1000000;
	struct rreply m;
	long k;

	while (n > 0) {
		if (mqb_now_ns() > deadline) {
			snprintf(err, errlen, "redis: no reply to DEL");
			return -1;
		}
		if (mqb_bio_read(b, MQB_BIO_TICK_MS) < 0) {
			snprintf(err, errlen, "redis: %s", b->err);
			return -1;
		}
		while (n > 0 && (k = parse_reply(mqb_bio_data(b),
		                                 mqb_bio_avail(b), &m)) > 0) {
			mqb_bio_consume(b, (size_t)k);
			if (m.top.type == '-') {
				snprintf(err, errlen, "redis: %.*s",
				         (int)(m.top.len > 120 ? 120 : m.top.len),
				         (const char *)m.top.s);
				return -1;
			}
			n--;
		}
	}
	return 0;
}

/*
 * Delete the lists the run will fill, so what an earlier run left cannot
 * count as this run's (a consume run drains them instead; pub/sub and
 * idle runs have none).
 */
static int redis_setup(struct mqb_run *run, char *err, size_t errlen)
{
	const struct mqb_opts *o = &run->o;
	struct mqb_bio b;
	size_t n;
	int rc;

	if (o->mode != MQB_PAIR && o->mode != MQB_PRODUCE &&
	    o->mode != MQB_REQUEST)
		return 0;
	if (mqb_bio_connect(&b, o) < 0) {
		snprintf(err, errlen, "redis: connect: %s", b.err);
		return -1;
	}
	put_auth(&b.out, o);
	n = put_dels(run, &b.out) + (o->password ? 1 : 0);
	rc = mqb_bio_flush(&b);
	if (rc < 0)
		snprintf(err, errlen, "redis: %s", b.err);
	else
		rc = await_replies(&b, n, o->timeout_ms ? o->timeout_ms
		                                         : MQB_TEXT_WAIT_MS,
		                   err, errlen);
	mqb_bio_close(&b);
	return rc;
}

const struct mqb_driver mqb_driver_redis = {
	.name = "redis",
	.default_port = "6379",
	.modes = 1u << MQB_PAIR | 1u << MQB_PRODUCE | 1u << MQB_CONSUME |
	         1u << MQB_FANOUT | 1u << MQB_REQUEST | 1u << MQB_CONNECT,
	.setup = redis_setup,
	.produce = redis_produce,
	.consume = redis_consume,
	.publish = redis_publish,
	.subscribe = redis_subscribe,
	.request = redis_request,
	.respond = redis_respond,
	.idle = redis_idle,
};
