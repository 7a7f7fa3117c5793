#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * mq-bench driver for beanstalkd, spoken natively (its text protocol).
 *
 * How each role maps onto beanstalkd, and why:
 *
 *  - Queues are tubes.  A producer sends `use <tube>` only when the tube
 *    changes (with many queues, before each put) and then
 *    `put 1024 0 60 <#bytes>` with the body; `INSERTED <id>` confirms it.
 *    The window is the number of puts pipelined without their INSERTED.
 *  - A consumer `watch`es each of its tubes and `ignore`s "default", then
 *    keeps min(prefetch, what the run still expects) `reserve` commands
 *    pipelined.  Each `RESERVED <id> <#bytes>` job is received and then
 *    deleted (`delete <id>`, beanstalkd's acknowledgement; there is no
 *    at-most-once mode, so --auto-ack changes nothing), and a new reserve
 *    takes the place of the one answered.  A reserve waiting on a drained
 *    tube holds the deletes behind it, which closing the connection then
 *    loses, releasing their jobs back to the tube; so a consumer never asks
 *    for more than its own tubes will get (counted before the start from
 *    mqb_queue_for), or, when it shares tubes, than the run still expects.
 *    A job that arrives after the run has everything (released so by
 *    another consumer closing) is not counted, and setup empties the
 *    run's tubes first, so such leftovers never reach a later run.
 *  - Replies come strictly in command order on a connection, and each kind
 *    of reply answers exactly one kind of command (INSERTED a put, USING a
 *    use, WATCHING a watch or ignore, DELETED a delete, RESERVED a
 *    reserve), so counting replies by kind matches them to what was sent
 *    without a FIFO.
 *  - Request/reply has no native form; it is built the way beanstalkd
 *    users build it: the requester puts each request into "<prefix>.rpc"
 *    with its reply tube "<prefix>.reply.<id>" framed in front of the body
 *    (u16 length, name), and reserves its replies from that tube;
 *    responders reserve from "<prefix>.rpc", put the body into the reply
 *    tube and delete the request.  Both use two connections, one for
 *    reserve and delete and one for use and put: a reserve blocks every
 *    command pipelined behind it on its connection, so a reply put queued
 *    behind a reserve waiting for the next request would never leave.
 *  - Fan-out is not offered: beanstalkd has no publish/subscribe.
 *
 * Jobs larger than the server's job size limit (beanstalkd -z, 65535
 * bytes by default) are refused with JOB_TOO_BIG, which fails the run.
 */

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bench/bench.h"
#include "tools/bench/bio.h"
#include "tools/bench/text.h"

#define PUT_ARGS "1024 0 60"   /* priority, delay, time to run (s) */

struct bconn {
	struct mqb_role *r;
	struct mqb_bio b;
	/* replies seen, by kind (see the table in handle_line) */
	uint64_t inserted, usings, watching, deleted;
	uint64_t reserves;      /* reserves answered, with or without a job */
	uint64_t jobs;          /* RESERVED */
	uint64_t deletes;       /* deletes sent */
	/* a RESERVED job; 0, or -1 after mqb_fail */
	int (*on_job)(struct bconn *c, uint64_t id, const uint8_t *body,
	              size_t len);
	void *arg;
};

/* ---- parsing ---------------------------------------------------------- */

/*
 * Replies that only need counting.  NOT_FOUND answers a delete whose job
 * is no longer ours (its time to run expired and it went back to the
 * tube): the check counts the duplicate that follows.  TIMED_OUT and
 * DEADLINE_SOON end a reserve without a job.
 */
static const struct {
	const char *word;
	size_t off;
} counted[] = {
	{ "INSERTED", offsetof(struct bconn, inserted) },
	{ "USING", offsetof(struct bconn, usings) },
	{ "WATCHING", offsetof(struct bconn, watching) },
	{ "NOT_IGNORED", offsetof(struct bconn, watching) },
	{ "DELETED", offsetof(struct bconn, deleted) },
	{ "NOT_FOUND", offsetof(struct bconn, deleted) },
	{ "TIMED_OUT", offsetof(struct bconn, reserves) },
	{ "DEADLINE_SOON", offsetof(struct bconn, reserves) },
};

static int handle_line(struct bconn *c, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < sizeof counted / sizeof counted[0]; i++) {
		if (mqb_word_is(p, n, counted[i].word)) {
			(*(uint64_t *)((char *)c + counted[i].off))++;
			return 0;
		}
	}
	if (mqb_word_is(p, n, "JOB_TOO_BIG"))
		return mqb_fail(c->r, "beanstalkd: JOB_TOO_BIG: %zu-byte "
		                "bodies exceed the server's max job size "
		                "(beanstalkd -z)", c->r->run->o.size);
	/* BURIED, EXPECTED_CRLF, DRAINING, OUT_OF_MEMORY, BAD_FORMAT, ... */
	return mqb_fail(c->r, "beanstalkd: %.*s", (int)(n > 80 ? 80 : n),
	                (const char *)p);
}

/* "RESERVED <id> <#bytes>": 0, or -1 when malformed. */
static int parse_reserved(const uint8_t *p, size_t n, uint64_t *id,
                          uint64_t *bytes)
{
	const uint8_t *end = p + n, *s = p + sizeof "RESERVED";
	size_t k;

	if (s >= end || !(k = mqb_parse_dec(s, end, id)))
		return -1;
	s += k;
	if (s >= end || *s++ != ' ' || !(k = mqb_parse_dec(s, end, bytes)))
		return -1;
	return s + k == end ? 0 : -1;
}

/*
 * Handle every complete reply in the input; a job whose body has not all
 * arrived stays for the next read.  0, or -1 after mqb_fail.
 */
static int drain(struct bconn *c)
{
	struct mqb_bio *b = &c->b;
	long ll;

	while ((ll = mqb_bio_line(b)) >= 0) {
		const uint8_t *p = mqb_bio_data(b);
		size_t n = (size_t)ll, need;
		uint64_t id, bytes;

		if (!mqb_word_is(p, n, "RESERVED")) {
			mqb_bio_consume(b, n + 2);
			if (handle_line(c, p, n) < 0)
				return -1;
			continue;
		}
		if (parse_reserved(p, n, &id, &bytes) < 0)
			return mqb_fail(c->r, "beanstalkd: bad reply \"%.*s\"",
			                (int)(n > 80 ? 80 : n), (const char *)p);
		need = n + 2 + (size_t)bytes + 2;
		if (mqb_bio_avail(b) < need)
			break;
		if (memcmp(p + n + 2 + bytes, "\r\n", 2) != 0)
			return mqb_fail(c->r, "beanstalkd: job without its CRLF");
		/* the bytes stay put until the next read, so consume first */
		mqb_bio_consume(b, need);
		c->reserves++;
		c->jobs++;
		if (!c->on_job)
			return mqb_fail(c->r, "beanstalkd: unasked-for job");
		if (c->on_job(c, id, p + n + 2, (size_t)bytes) < 0)
			return -1;
	}
	return 0;
}

/* ---- connection ------------------------------------------------------- */

/* A connection that is safe to close before it is opened. */
static void bs_init(struct bconn *c, struct mqb_role *r)
{
	memset(c, 0, sizeof *c);
	c->r = r;
	c->b.fd = -1;
}

static int bs_open(struct bconn *c, struct mqb_role *r)
{
	bs_init(c, r);
	if (mqb_bio_connect(&c->b, &r->run->o) < 0)
		return mqb_fail(r, "beanstalkd: connect: %s", c->b.err);
	return 0;
}

static int flush(struct bconn *c)
{
	return mqb_text_flush(c->r, &c->b, "beanstalkd");
}

/* Wait up to ms for input and handle it: 0, 1 when the read failed but the
 * role is over anyway, -1 after mqb_fail. */
static int pump(struct bconn *c, int ms, bool over)
{
	int rc = mqb_text_read(c->r, &c->b, "beanstalkd", ms, over);

	return rc == 0 ? drain(c) : rc;
}

static int pump_tick(void *c)
{
	return pump(c, MQB_BIO_TICK_MS, false);
}

/* Flush, then read until *counter reaches target: 0, 1 (run stopped),
 * or -1 after mqb_fail. */
static int wait_for(struct bconn *c, const uint64_t *counter, uint64_t target,
                    const char *what)
{
	int rc = flush(c);

	return rc == 0 ? mqb_text_wait(c->r, "beanstalkd", pump_tick, c, counter,
	                               target, what)
	               : rc;
}

/* After `watch`es of n tubes: stop watching "default", wait for all. */
static int watch_done(struct bconn *c, unsigned n)
{
	mqb_buf_puts(&c->b.out, "ignore default\r\n");
	return wait_for(c, &c->watching, (uint64_t)n + 1, "WATCHING");
}

/* The put line for bodies of len bytes into buf; its length. */
static size_t put_head(char *buf, size_t n, size_t len)
{
	int k = snprintf(buf, n, "put " PUT_ARGS " %zu\r\n", len);

	return k > 0 && (size_t)k < n ? (size_t)k : 0;
}

/* Encode a put: the ready-made head, [pre], the sender's next body. */
static void put_job(struct bconn *c, const char *head, size_t hl,
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

/*
 * Before closing: wait a moment for the deletes already sent to be
 * answered, so none is lost with the connection (which would release its
 * job back to the tube).  Only worth it when no reserve is in front of
 * them; a timeout here is not a failure.
 */
static void settle(struct bconn *c)
{
	uint64_t deadline = mqb_now_ns() + 1000000000ull;

	if (mqb_bio_flush(&c->b) < 0)
		return;
	while (c->deleted < c->deletes && mqb_now_ns() < deadline)
		if (mqb_bio_read(&c->b, MQB_BIO_TICK_MS) < 0 || drain(c) < 0)
			return;
}

/* Keep `want` reserves outstanding; *armed counts them. */
static void arm(struct bconn *c, uint64_t *armed, uint64_t want)
{
	for (; *armed < want; (*armed)++)
		mqb_buf_puts(&c->b.out, "reserve\r\n");
}

static void put_delete(struct bconn *c, uint64_t id)
{
	c->deletes++;
	mqb_buf_puts(&c->b.out, "delete ");
	mqb_put_dec(&c->b.out, id);
	mqb_buf_puts(&c->b.out, "\r\n");
}

/* ---- producer --------------------------------------------------------- */

struct producer {
	struct bconn c;
	struct mqb_strtab uses;  /* "use <tube>\r\n", one per queue */
	char head[64];           /* the put command line */
	size_t hl;
	unsigned cur;            /* the tube in use; o.queues: "default" */
};

/* Encode n puts, each after a `use` if its tube is not the current one. */
static void put_jobs(struct producer *p, uint64_t n)
{
	struct mqb_role *r = p->c.r;

	for (uint64_t i = 0; i < n; i++) {
		unsigned q = mqb_queue_for(r, r->next_seq);

		if (q != p->cur) {
			size_t ul;
			const char *use = mqb_strtab_get(&p->uses, q, &ul);

			mqb_buf_put(&p->c.b.out, use, ul);
			p->cur = q;
		}
		put_job(&p->c, p->head, p->hl, NULL, 0);
	}
}

static int produce_loop(struct producer *p)
{
	struct mqb_role *r = p->c.r;
	uint64_t inflight = 0;
	int rc = 0;

	while (rc == 0 && !mqb_sender_done(r)) {
		uint64_t n, before = p->c.inserted;

		if (mqb_stopping(r->run))
			break;
		n = mqb_budget(r, inflight);
		if (n == 0 && inflight == 0) {
			if (!mqb_wait_lag(r))
				break;
			continue;
		}
		put_jobs(p, n);
		inflight += n;
		rc = flush(&p->c);
		if (rc == 0)
			rc = pump(&p->c, n ? 0 : MQB_BIO_TICK_MS, false);
		if (p->c.inserted != before) {
			mqb_confirmed(r, p->c.inserted - before);
			inflight -= p->c.inserted - before;
		}
	}
	return rc;
}

static int bs_produce(struct mqb_role *r)
{
	const struct mqb_run *run = r->run;
	struct producer p;
	char name[256];
	int rc = bs_open(&p.c, r);

	memset(&p.uses, 0, sizeof p.uses);
	p.cur = run->o.queues;
	p.hl = put_head(p.head, sizeof p.head, run->o.size);
	for (unsigned q = 0; rc == 0 && q < run->o.queues; q++) {
		mqb_queue_name(run, q, name, sizeof name);
		if (mqb_strtab_add(&p.uses, "use %s\r\n", name) < 0)
			rc = mqb_fail(r, "out of memory");
	}
	if (rc == 0)
		rc = mqb_ready(r) ? produce_loop(&p) : 1;
	mqb_bio_close(&p.c.b);
	mqb_strtab_free(&p.uses);
	return rc < 0 ? -1 : 0;
}

/* ---- consumer --------------------------------------------------------- */

/*
 * A job that comes once the run has everything can only be one another
 * consumer received and then released by closing its connection with
 * the delete still queued behind a waiting reserve: not counted, and not
 * deleted either (the next run's setup clears the tube).
 */
static int got_job(struct bconn *c, uint64_t id, const uint8_t *body,
                   size_t len)
{
	if (mqb_receivers_done(c->r->run, c->r))
		return 0;
	mqb_received(c->r, body, len);
	put_delete(c, id);
	return 0;
}

/* What the run still expects, capped at depth: more reserves than that
 * could only block in front of the last deletes. */
static uint64_t reserves_wanted(const struct mqb_run *run, unsigned depth)
{
	uint64_t got = atomic_load_explicit(&run->recv_total,
	                                    memory_order_relaxed);
	uint64_t left;

	if (run->expect_total == 0)
		return depth;
	left = got < run->expect_total ? run->expect_total - got : 0;
	return left < depth ? left : depth;
}

/*
 * Reserves to keep outstanding: `mine` is what the run puts into this
 * consumer's own tubes (UINT64_MAX when it shares them), so with tubes of
 * its own a consumer never has a reserve waiting on a drained tube.
 */
static uint64_t wanted(const struct bconn *c, uint64_t mine, unsigned depth)
{
	if (mine == UINT64_MAX)
		return reserves_wanted(c->r->run, depth);
	mine = c->jobs < mine ? mine - c->jobs : 0;
	return mine < depth ? mine : depth;
}

static int consume_loop(struct bconn *c, uint64_t mine)
{
	struct mqb_role *r = c->r;
	const struct mqb_run *run = r->run;
	unsigned depth = mqb_depth(run->o.prefetch);
	uint64_t armed = 0;
	int rc = 0;

	while (rc == 0 && !mqb_receivers_done(run, r)) {
		uint64_t before = c->reserves;

		arm(c, &armed, wanted(c, mine, depth));
		rc = flush(c);
		if (rc == 0)
			rc = pump(c, MQB_BIO_TICK_MS, mqb_receivers_done(run, r));
		armed -= c->reserves - before;
	}
	if (rc == 0 && armed == 0)
		settle(c);
	return rc;
}

/* The jobs the run puts into the consumer's tubes qs (see wanted). */
static int plan(struct bconn *c, const unsigned *qs, unsigned nq,
                uint64_t *mine)
{
	uint64_t *left = calloc(nq, sizeof *left);
	int excl = left ? mqb_plan(c->r, qs, nq, left) : -1;

	*mine = UINT64_MAX;
	if (excl == 1)
		for (unsigned i = *mine = 0; i < nq; i++)
			*mine += left[i];
	free(left);
	return excl < 0 ? mqb_fail(c->r, "out of memory") : 0;
}

/* Watch the consumer's tubes (and nothing else); plan its reserves. */
static int watch_queues(struct bconn *c, uint64_t *mine)
{
	struct mqb_role *r = c->r;
	unsigned nq, *qs = mqb_queue_list(r, &nq);
	char name[256];
	int rc;

	if (!qs)
		return mqb_fail(r, "no queues to consume (or out of memory)");
	for (unsigned i = 0; i < nq; i++) {
		mqb_queue_name(r->run, qs[i], name, sizeof name);
		mqb_buf_printf(&c->b.out, "watch %s\r\n", name);
	}
	rc = plan(c, qs, nq, mine);
	free(qs);
	return rc == 0 ? watch_done(c, nq) : rc;
}

static int bs_consume(struct mqb_role *r)
{
	struct bconn c;
	uint64_t mine = UINT64_MAX;
	int rc = bs_open(&c, r);

	c.on_job = got_job;
	if (rc == 0)
		rc = watch_queues(&c, &mine);
	if (rc == 0)
		rc = mqb_ready(r) ? consume_loop(&c, mine) : 1;
	mqb_bio_close(&c.b);
	return rc < 0 ? -1 : 0;
}

/* ---- request / reply -------------------------------------------------- */

/*
 * A requester: requests leave on `put`, replies come back on `get`, which
 * keeps one reserve outstanding per request awaiting its reply.
 */
struct requester {
	struct bconn put, get;
	uint8_t pre[2 + 256];    /* framed reply tube, in front of each body */
	size_t prelen;
	char head[64];
	size_t hl;
};

static int got_reply(struct bconn *c, uint64_t id, const uint8_t *body,
                     size_t len)
{
	mqb_received(c->r, body, len);
	mqb_confirmed(c->r, 1);
	put_delete(c, id);
	return 0;
}

static int request_pass(struct requester *q, uint64_t *inflight,
                        uint64_t *armed)
{
	struct mqb_role *r = q->put.r;
	uint64_t n = mqb_budget(r, *inflight);
	uint64_t jobs = q->get.jobs, answered = q->get.reserves;
	int rc;

	if (n == 0 && *inflight == 0)
		return mqb_wait_lag(r) ? 0 : 1;
	for (uint64_t i = 0; i < n; i++)
		put_job(&q->put, q->head, q->hl, q->pre, q->prelen);
	*inflight += n;
	arm(&q->get, armed, *inflight);
	rc = flush(&q->put);
	if (rc == 0)
		rc = flush(&q->get);
	if (rc == 0)   /* INSERTED replies, to catch errors */
		rc = pump(&q->put, 0, false);
	if (rc == 0)
		rc = pump(&q->get, n ? 0 : MQB_BIO_TICK_MS, false);
	*inflight -= q->get.jobs - jobs;
	*armed -= q->get.reserves - answered;
	return rc;
}

static int request_loop(struct requester *q)
{
	struct mqb_role *r = q->put.r;
	uint64_t inflight = 0, armed = 0;
	int rc = 0;

	while (rc == 0 && !mqb_sender_done(r) && !mqb_stopping(r->run))
		rc = request_pass(q, &inflight, &armed);
	if (rc == 0 && armed == 0)
		settle(&q->get);
	return rc;
}

/* Open both connections: `use` the request tube, watch the reply tube. */
static int request_open(struct requester *q, struct mqb_role *r)
{
	const struct mqb_opts *o = &r->run->o;
	char tube[256];
	int n = snprintf(tube, sizeof tube, "%s.reply.%u", o->prefix, r->id);
	int rc;

	if (n <= 0 || (size_t)n >= sizeof tube)
		return mqb_fail(r, "beanstalkd: prefix too long");
	q->prelen = mqb_rpc_head(q->pre, tube, (size_t)n);
	q->hl = put_head(q->head, sizeof q->head, q->prelen + o->size);
	q->get.on_job = got_reply;
	mqb_buf_printf(&q->put.b.out, "use %s.rpc\r\n", o->prefix);
	rc = wait_for(&q->put, &q->put.usings, 1, "USING");
	if (rc == 0) {
		mqb_buf_printf(&q->get.b.out, "watch %s\r\n", tube);
		rc = watch_done(&q->get, 1);
	}
	return rc;
}

static int bs_request(struct mqb_role *r)
{
	struct requester q;
	int rc;

	bs_init(&q.get, r);
	rc = bs_open(&q.put, r);
	if (rc == 0)
		rc = bs_open(&q.get, r);
	if (rc == 0)
		rc = request_open(&q, r);
	if (rc == 0)
		rc = mqb_ready(r) ? request_loop(&q) : 1;
	mqb_bio_close(&q.put.b);
	mqb_bio_close(&q.get.b);
	return rc < 0 ? -1 : 0;
}

/*
 * A responder: requests are reserved and deleted on `get`, replies put on
 * `put`, which `use`s each reply tube when it changes (`tube`).
 */
struct responder {
	struct bconn get, put;
	char tube[MQB_RPC_NAME_MAX + 1];
};

/* A tube name is safe to echo into a command line: printable, no spaces. */
static bool tube_ok(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] <= ' ' || p[i] >= 0x7f)
			return false;
	return n > 0;
}

static int answer(struct bconn *c, uint64_t id, const uint8_t *req,
                  size_t len)
{
	struct responder *s = c->arg;
	struct mqb_buf *w = &s->put.b.out;
	const uint8_t *name, *body;
	size_t nl, bl;

	if (!mqb_rpc_split(req, len, &name, &nl, &body, &bl) ||
	    !tube_ok(name, nl))
		return mqb_fail(c->r, "beanstalkd: malformed request");
	if (strlen(s->tube) != nl || memcmp(s->tube, name, nl) != 0) {
		memcpy(s->tube, name, nl);
		s->tube[nl] = '\0';
		mqb_buf_printf(w, "use %s\r\n", s->tube);
	}
	mqb_buf_puts(w, "put " PUT_ARGS " ");
	mqb_put_dec(w, bl);
	mqb_buf_puts(w, "\r\n");
	mqb_buf_put(w, body, bl);
	mqb_buf_puts(w, "\r\n");
	put_delete(c, id);
	return 0;
}

static int serve_loop(struct responder *s)
{
	const struct mqb_run *run = s->get.r->run;
	unsigned depth = mqb_depth(run->o.prefetch);
	uint64_t armed = 0;
	int rc = 0;

	while (rc == 0 && mqb_serving(run)) {
		uint64_t answered = s->get.reserves;

		arm(&s->get, &armed, depth);
		rc = flush(&s->get);
		if (rc == 0)
			rc = flush(&s->put);
		if (rc == 0)
			rc = pump(&s->put, 0, !mqb_serving(run));
		if (rc == 0)
			rc = pump(&s->get, MQB_BIO_TICK_MS, !mqb_serving(run));
		armed -= s->get.reserves - answered;
	}
	if (rc == 0)
		flush(&s->put);   /* replies to the last requests */
	return rc;
}

static int bs_respond(struct mqb_role *r)
{
	struct responder *s = calloc(1, sizeof *s);
	int rc;

	if (!s)
		return mqb_fail(r, "out of memory");
	bs_init(&s->put, r);
	rc = bs_open(&s->get, r);
	if (rc == 0)
		rc = bs_open(&s->put, r);
	s->get.on_job = answer;
	s->get.arg = s;
	if (rc == 0) {
		mqb_buf_printf(&s->get.b.out, "watch %s.rpc\r\n",
		               r->run->o.prefix);
		rc = watch_done(&s->get, 1);
	}
	if (rc == 0)
		rc = mqb_ready(r) ? serve_loop(s) : 1;
	mqb_bio_close(&s->get.b);
	mqb_bio_close(&s->put.b);
	free(s);
	return rc < 0 ? -1 : 0;
}

/* ---- idle ------------------------------------------------------------- */

/* One round trip proves a beanstalkd is there; then hold the connection. */
static int bs_idle(struct mqb_role *r)
{
	struct bconn c;
	int rc = bs_open(&c, r);

	if (rc == 0) {
		mqb_buf_puts(&c.b.out, "list-tube-used\r\n");
		rc = wait_for(&c, &c.usings, 1, "USING");
	}
	if (rc == 0 && mqb_ready(r))
		while (rc == 0 && mqb_serving(r->run))
			rc = pump(&c, MQB_BIO_TICK_MS, !mqb_serving(r->run));
	mqb_bio_close(&c.b);
	return rc < 0 ? -1 : 0;
}

/* ---- setup ------------------------------------------------------------ */

#define DRAIN_BATCH 1000

/* A connection for setup, which has no role to fail. */
struct sconn {
	struct mqb_bio b;
	uint64_t deadline;      /* pushed back whenever the drain progresses */
	unsigned limit_ms;
	char *err;
	size_t errlen;
};

/*
 * Which of the run's tubes `name` is: its index, or -1.  Pair and produce
 * runs use "<prefix>.<q>" (index q); request runs "<prefix>.reply.<i>"
 * (index i) and "<prefix>.rpc" (index producers).
 */
static long tube_index(const struct mqb_opts *o, const uint8_t *name, size_t n)
{
	size_t pl = strlen(o->prefix);
	const uint8_t *s = name + pl + 1, *end = name + n;
	bool rpc = o->mode == MQB_REQUEST;
	uint64_t v;

	if (n <= pl + 1 || memcmp(name, o->prefix, pl) != 0 || name[pl] != '.')
		return -1;
	if (rpc && end - s == 3 && memcmp(s, "rpc", 3) == 0)
		return o->producers;
	if (rpc) {
		if (end - s <= 6 || memcmp(s, "reply.", 6) != 0)
			return -1;
		s += 6;
	}
	if ((end - s > 1 && *s == '0') ||   /* "bench.01" is not ours */
	    mqb_parse_dec(s, end, &v) != (size_t)(end - s) ||
	    v >= (rpc ? o->producers : o->queues))
		return -1;
	return (long)v;
}

/*
 * Read one reply: its first line in *line (n bytes) and, for the replies
 * that carry data (RESERVED, OK), the data in *body.  Both stay valid
 * until the next read.  0, or -1 with s->err.
 */
static int s_reply(struct sconn *s, const uint8_t **line, size_t *n,
                   const uint8_t **body, uint64_t *blen)
{
	for (;;) {
		long ll = mqb_bio_line(&s->b);
		const uint8_t *p = mqb_bio_data(&s->b);
		size_t need;

		*blen = 0;
		if (ll >= 0 && (mqb_word_is(p, (size_t)ll, "RESERVED") ||
		                mqb_word_is(p, (size_t)ll, "OK"))) {
			const uint8_t *t = memrchr(p, ' ', (size_t)ll);

			mqb_parse_dec(t + 1, p + ll, blen);
		}
		need = ll < 0 ? 0 : (size_t)ll + 2 + (*blen ? *blen + 2 : 0);
		if (ll >= 0 && mqb_bio_avail(&s->b) >= need) {
			*line = p;
			*n = (size_t)ll;
			*body = p + ll + 2;
			mqb_bio_consume(&s->b, need);
			return 0;
		}
		if (mqb_now_ns() > s->deadline) {
			snprintf(s->err, s->errlen,
			         "beanstalkd: no reply in %u ms", s->limit_ms);
			return -1;
		}
		if (mqb_bio_read(&s->b, MQB_BIO_TICK_MS) < 0) {
			snprintf(s->err, s->errlen, "beanstalkd: %s", s->b.err);
			return -1;
		}
	}
}

static void tube_name(const struct mqb_run *run, long idx, char *buf,
                      size_t n)
{
	const struct mqb_opts *o = &run->o;

	if (o->mode != MQB_REQUEST)
		mqb_queue_name(run, (unsigned)idx, buf, n);
	else if (idx == (long)o->producers)
		snprintf(buf, n, "%s.rpc", o->prefix);
	else
		snprintf(buf, n, "%s.reply.%ld", o->prefix, idx);
}

/* `watch` those of the run's tubes that exist (from list-tubes) and ignore
 * "default"; how many were watched, or -1 with s->err. */
static long watch_existing(struct sconn *s, const struct mqb_run *run)
{
	const uint8_t *line, *body, *p, *end;
	size_t n;
	uint64_t blen;
	long watched = 0;
	char name[256];

	mqb_buf_puts(&s->b.out, "list-tubes\r\n");
	if (mqb_bio_flush(&s->b) < 0 || s_reply(s, &line, &n, &body, &blen) < 0)
		return -1;
	/* a YAML list: "---\n- default\n- bench.0\n" */
	for (p = body, end = body + blen; p < end; ) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		const uint8_t *e = nl ? nl : end;
		bool item = e - p > 2 && p[0] == '-' && p[1] == ' ';
		long idx = item ? tube_index(&run->o, p + 2, (size_t)(e - p - 2))
		                : -1;

		if (idx >= 0) {
			tube_name(run, idx, name, sizeof name);
			mqb_buf_printf(&s->b.out, "watch %s\r\n", name);
			watched++;
		}
		p = e + 1;
	}
	if (watched == 0)
		return 0;
	mqb_buf_puts(&s->b.out, "ignore default\r\n");
	if (mqb_bio_flush(&s->b) < 0)
		return -1;
	for (long i = 0; i <= watched; i++)
		if (s_reply(s, &line, &n, &body, &blen) < 0)
			return -1;
	return watched;
}

/*
 * Reserve and delete, DRAIN_BATCH non-blocking reserves at a time, until
 * a batch finds nothing.  The deletes of one batch go out in front of the
 * next one's reserves, so their replies come first.
 */
static int drain_tubes(struct sconn *s)
{
	uint64_t deletes = 0, jobs;
	const uint8_t *line, *body;
	size_t n;
	uint64_t blen, id;

	do {
		for (unsigned i = 0; i < DRAIN_BATCH; i++)
			mqb_buf_puts(&s->b.out, "reserve-with-timeout 0\r\n");
		if (mqb_bio_flush(&s->b) < 0)
			return snprintf(s->err, s->errlen, "beanstalkd: %s",
			                s->b.err), -1;
		for (; deletes > 0; deletes--)
			if (s_reply(s, &line, &n, &body, &blen) < 0)
				return -1;
		for (unsigned i = jobs = 0; i < DRAIN_BATCH; i++) {
			if (s_reply(s, &line, &n, &body, &blen) < 0)
				return -1;
			if (!mqb_word_is(line, n, "RESERVED"))
				continue;
			mqb_parse_dec(line + sizeof "RESERVED", line + n, &id);
			mqb_buf_puts(&s->b.out, "delete ");
			mqb_put_dec(&s->b.out, id);
			mqb_buf_puts(&s->b.out, "\r\n");
			jobs++;
		}
		deletes = jobs;
		s->deadline = mqb_now_ns() + (uint64_t)s->limit_ms * 1000000;
	} while (jobs > 0);
	return 0;
}

/*
 * Empty the tubes a pair, produce or request run will fill, so jobs an
 * earlier run left (or released when it closed) cannot count as this
 * run's.  beanstalkd cannot drop a tube; a tube exists while it holds
 * jobs or is watched, so only those list-tubes shows need draining.  A
 * consume run keeps them: they are what it drains.
 */
static int bs_setup(struct mqb_run *run, char *err, size_t errlen)
{
	const struct mqb_opts *o = &run->o;
	struct sconn s = { .err = err, .errlen = errlen };
	long watched;
	int rc = -1;

	if (o->mode != MQB_PAIR && o->mode != MQB_PRODUCE &&
	    o->mode != MQB_REQUEST)
		return 0;
	err[0] = '\0';
	s.limit_ms = o->timeout_ms > MQB_TEXT_WAIT_MS ? o->timeout_ms
	                                               : MQB_TEXT_WAIT_MS;
	s.deadline = mqb_now_ns() + (uint64_t)s.limit_ms * 1000000;
	if (mqb_bio_connect(&s.b, o) < 0) {
		snprintf(err, errlen, "beanstalkd: connect: %s", s.b.err);
		return -1;
	}
	watched = watch_existing(&s, run);
	if (watched == 0)
		rc = 0;
	else if (watched > 0)
		rc = drain_tubes(&s);
	if (rc < 0 && !err[0])
		snprintf(err, errlen, "beanstalkd: %s", s.b.err);
	mqb_bio_close(&s.b);
	return rc;
}

const struct mqb_driver mqb_driver_beanstalkd = {
	.name = "beanstalkd",
	.default_port = "11300",
	.modes = 1u << MQB_PAIR | 1u << MQB_PRODUCE | 1u << MQB_CONSUME |
	         1u << MQB_REQUEST | 1u << MQB_CONNECT,
	.setup = bs_setup,
	.produce = bs_produce,
	.consume = bs_consume,
	.publish = NULL,
	.subscribe = NULL,
	.request = bs_request,
	.respond = bs_respond,
	.idle = bs_idle,
};
