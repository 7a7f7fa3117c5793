#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * mq-bench driver for NATS, core protocol (no JetStream), spoken natively.
 *
 * How each role maps onto NATS, and why:
 *
 *  - Sending: `PUB <subject> <#bytes>` with the body.  Core NATS answers a
 *    PUB with nothing (verbose is off, as every client library sets it),
 *    so the sender confirms with PING: one after every max(1, window/4)
 *    PUBs and one after the last PUB of each write.  The server handles a
 *    connection's input in order, so its PONG says every PUB before that
 *    PING was accepted and routed; a FIFO of batch sizes maps each PONG to
 *    the PUBs it confirms.  This is the flush-with-PING idiom of the NATS
 *    clients; it is the strongest confirmation core NATS has (delivery
 *    itself is at most once).
 *  - Work queues (pair mode): each consumer subscribes to its subjects in
 *    the queue group "bench", so a subject shared by several consumers
 *    gives each message to one of them, as a queue would.  A consumer that
 *    serves every subject of a multi-subject run takes them with one
 *    wildcard subscription "<prefix>.*" instead of one SUB per subject.
 *  - Fan-out: plain subscriptions (no group), so every subscriber gets
 *    every message; the same wildcard shortcut applies.
 *  - Request/reply: the requester subscribes to its own inbox
 *    "_INBOX.<prefix>.<id>" and publishes each request to "<prefix>.rpc"
 *    with that inbox as reply subject; responders subscribe to
 *    "<prefix>.rpc" in the queue group "bench" and publish the body back
 *    to the reply subject.  Replies are the confirmations.
 *  - Every subscriber sends a PING after its SUBs and waits for the PONG
 *    before it reports ready, so no message is published before the server
 *    has registered the interest.  Server PINGs are answered everywhere.
 *
 * Core NATS keeps nothing for a subject nobody listens to, so the produce
 * and consume modes (messages left for a later run) are not offered.
 * mq-bench's TLS starts at connect; nats-server takes that only when
 * configured for a TLS-first handshake (tls { handshake_first: true },
 * 2.10.4 and later), otherwise it upgrades after a plaintext INFO.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bench/bench.h"
#include "tools/bench/bio.h"
#include "tools/bench/text.h"

#define GROUP "bench"

struct nmsg {
	const uint8_t *subj;
	size_t subjlen;
	const uint8_t *reply;   /* NULL when the MSG has no reply subject */
	size_t replylen;
	const uint8_t *data;
	size_t len;
};

struct nconn {
	struct mqb_role *r;
	struct mqb_bio b;
	uint64_t infos;         /* INFO lines seen */
	uint64_t max_payload;   /* from INFO; 0: not told */
	uint64_t pongs;         /* PONGs seen; roles reset it after handshake */
	uint64_t msgs;          /* MSGs handled by on_msg */
	int (*on_msg)(struct nconn *c, const struct nmsg *m);
};

/* ---- parsing ---------------------------------------------------------- */

static bool is_space(uint8_t ch)
{
	return ch == ' ' || ch == '\t';
}

/* Split a line into at most max space-separated tokens; their count. */
static unsigned tokens(const uint8_t *p, size_t n, const uint8_t **tok,
                       size_t *len, unsigned max)
{
	unsigned k = 0;
	size_t i = 0;

	while (i < n) {
		size_t s;

		while (i < n && is_space(p[i]))
			i++;
		if (i == n)
			break;
		if (k == max)
			return max + 1;
		s = i;
		while (i < n && !is_space(p[i]))
			i++;
		tok[k] = p + s;
		len[k++] = i - s;
	}
	return k;
}

/* "MSG <subject> <sid> [reply-to] <#bytes>": 0, or -1 when malformed. */
static int parse_msg_line(const uint8_t *p, size_t n, struct nmsg *m)
{
	const uint8_t *tok[5];
	size_t len[5];
	unsigned k = tokens(p, n, tok, len, 5);
	uint64_t bytes;

	if (k != 4 && k != 5)
		return -1;
	if (mqb_parse_dec(tok[k - 1], tok[k - 1] + len[k - 1], &bytes)
	    != len[k - 1])
		return -1;
	m->subj = tok[1];
	m->subjlen = len[1];
	m->reply = k == 5 ? tok[3] : NULL;
	m->replylen = k == 5 ? len[3] : 0;
	m->len = (size_t)bytes;
	return 0;
}

/* Pick max_payload out of the INFO JSON; no JSON parser for one number. */
static void parse_info(struct nconn *c, const uint8_t *p, size_t n)
{
	static const char key[] = "\"max_payload\":";
	const uint8_t *at = memmem(p, n, key, sizeof key - 1);

	if (at) {
		at += sizeof key - 1;
		while (at < p + n && is_space(*at))
			at++;
		mqb_parse_dec(at, p + n, &c->max_payload);
	}
	c->infos++;
}

/* One control line (not MSG): 0, or -1 after mqb_fail. */
static int handle_line(struct nconn *c, const uint8_t *p, size_t n)
{
	if (mqb_word_is(p, n, "PING"))
		mqb_buf_puts(&c->b.out, "PONG\r\n");
	else if (mqb_word_is(p, n, "PONG"))
		c->pongs++;
	else if (mqb_word_is(p, n, "+OK"))
		;
	else if (mqb_word_is(p, n, "INFO"))
		parse_info(c, p, n);
	else if (mqb_word_is(p, n, "-ERR"))
		return mqb_fail(c->r, "nats: %.*s", (int)n, (const char *)p);
	else if (mqb_word_is(p, n, "HMSG"))
		return mqb_fail(c->r, "nats: unexpected HMSG (headers are off)");
	else
		return mqb_fail(c->r, "nats: unexpected line \"%.*s\"",
		                (int)(n > 80 ? 80 : n), (const char *)p);
	return 0;
}

/*
 * Handle every complete operation in the input; a MSG whose payload has
 * not all arrived stays for the next read.  0, or -1 after mqb_fail.
 */
static int drain(struct nconn *c)
{
	struct mqb_bio *b = &c->b;
	long ll;

	while ((ll = mqb_bio_line(b)) >= 0) {
		const uint8_t *p = mqb_bio_data(b);
		size_t n = (size_t)ll;
		struct nmsg m;
		size_t need;

		if (!mqb_word_is(p, n, "MSG")) {
			mqb_bio_consume(b, n + 2);
			if (handle_line(c, p, n) < 0)
				return -1;
			continue;
		}
		if (parse_msg_line(p, n, &m) < 0)
			return mqb_fail(c->r, "nats: bad line \"%.*s\"",
			                (int)(n > 80 ? 80 : n), (const char *)p);
		need = n + 2 + m.len + 2;
		if (mqb_bio_avail(b) < need)
			break;
		m.data = p + n + 2;
		if (memcmp(m.data + m.len, "\r\n", 2) != 0)
			return mqb_fail(c->r, "nats: MSG without its CRLF");
		/* the bytes stay put until the next read, so consume first */
		mqb_bio_consume(b, need);
		c->msgs++;
		if (!c->on_msg)
			return mqb_fail(c->r, "nats: MSG nobody asked for");
		if (c->on_msg(c, &m) < 0)
			return -1;
	}
	return 0;
}

/* ---- connection ------------------------------------------------------- */

static int flush(struct nconn *c)
{
	return mqb_text_flush(c->r, &c->b, "nats");
}

/* Wait up to ms for input and handle it: 0, 1 when the read failed but the
 * role is over anyway, -1 after mqb_fail. */
static int pump(struct nconn *c, int ms, bool over)
{
	int rc = mqb_text_read(c->r, &c->b, "nats", ms, over);

	return rc == 0 ? drain(c) : rc;
}

static int pump_tick(void *c)
{
	return pump(c, MQB_BIO_TICK_MS, false);
}

/* Flush, then read until *counter reaches target: 0, 1 (run stopped),
 * or -1 after mqb_fail. */
static int wait_for(struct nconn *c, const uint64_t *counter, uint64_t target,
                    const char *what)
{
	int rc = flush(c);

	return rc == 0 ? mqb_text_wait(c->r, "nats", pump_tick, c, counter,
	                               target, what)
	               : rc;
}

/* A JSON string, escaped (user names and passwords are the caller's). */
static void put_json_str(struct mqb_buf *w, const char *s)
{
	mqb_buf_puts(w, "\"");
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			mqb_buf_printf(w, "\\%c", ch);
		else if (ch < 0x20)
			mqb_buf_printf(w, "\\u%04x", ch);
		else
			mqb_buf_put(w, s, 1);
	}
	mqb_buf_puts(w, "\"");
}

static void put_connect(struct nconn *c)
{
	const struct mqb_opts *o = &c->r->run->o;
	struct mqb_buf *w = &c->b.out;

	mqb_buf_printf(w, "CONNECT {\"verbose\":false,\"pedantic\":false,"
	               "\"tls_required\":%s,\"headers\":false,"
	               "\"name\":\"mq-bench\",\"lang\":\"c\",\"version\":\"1\"",
	               o->tls ? "true" : "false");
	if (o->user) {
		mqb_buf_puts(w, ",\"user\":");
		put_json_str(w, o->user);
	}
	if (o->password) {
		mqb_buf_puts(w, ",\"pass\":");
		put_json_str(w, o->password);
	}
	mqb_buf_puts(w, "}\r\nPING\r\n");
}

/*
 * Connect, take INFO, send CONNECT and wait for the PONG to our PING, so
 * the server accepted us.  need is the largest payload this role sends.
 * 0, 1 (run stopped), or -1 after mqb_fail; the caller closes c->b.
 */
static int nats_open(struct nconn *c, struct mqb_role *r, size_t need)
{
	int rc;

	memset(c, 0, sizeof *c);
	c->r = r;
	if (mqb_bio_connect(&c->b, &r->run->o) < 0)
		return mqb_fail(r, "nats: connect: %s", c->b.err);
	rc = wait_for(c, &c->infos, 1, "INFO");
	if (rc != 0)
		return rc;
	if (c->max_payload && need > c->max_payload)
		return mqb_fail(r, "nats: %zu-byte messages exceed the server's "
		                "max_payload of %llu", need,
		                (unsigned long long)c->max_payload);
	put_connect(c);
	rc = wait_for(c, &c->pongs, 1, "PONG after CONNECT");
	c->pongs = 0;
	return rc;
}

/* PING after the SUBs just encoded, and wait: the interest is registered. */
static int sync_subs(struct nconn *c)
{
	int rc;

	mqb_buf_puts(&c->b.out, "PING\r\n");
	rc = wait_for(c, &c->pongs, 1, "PONG after SUB");
	c->pongs = 0;
	return rc;
}

/* Encode a PUB whose head ("PUB <subject> [reply] <#bytes>\r\n") is
 * ready-made, with the sender's next body written in place. */
static void put_pub(struct nconn *c, const char *head, size_t hl)
{
	struct mqb_buf *w = &c->b.out;
	size_t size = c->r->run->o.size;
	uint8_t *p = mqb_buf_reserve(w, hl + size + 2);

	memcpy(p, head, hl);
	mqb_make_body(c->r, p + hl);
	memcpy(p + hl + size, "\r\n", 2);
	w->len += hl + size + 2;
}

/* ---- senders ---------------------------------------------------------- */

/* One PUB head per subject, so sending never formats a name. */
static int pub_heads(const struct mqb_run *run, struct mqb_strtab *t)
{
	char name[256];

	for (unsigned q = 0; q < run->o.queues; q++) {
		mqb_queue_name(run, q, name, sizeof name);
		if (mqb_strtab_add(t, "PUB %s %zu\r\n", name, run->o.size) < 0)
			return -1;
	}
	return 0;
}

/* Close a PING batch: the PONG will confirm these n PUBs. */
static int ping_batch(struct nconn *c, struct mqb_fifo *batches, uint64_t n)
{
	mqb_buf_puts(&c->b.out, "PING\r\n");
	if (mqb_fifo_push(batches, n) < 0)
		return mqb_fail(c->r, "out of memory");
	return 0;
}

/* Every PONG confirms the batch its PING closed; how many PUBs in all. */
static int take_pongs(struct nconn *c, struct mqb_fifo *batches,
                      uint64_t *confirmed)
{
	*confirmed = 0;
	for (; c->pongs; c->pongs--) {
		if (!batches->n)
			return mqb_fail(c->r, "nats: PONG without a PING");
		*confirmed += mqb_fifo_pop(batches);
	}
	return 0;
}

/* Encode as many PUBs as the budget allows, PINGs between batches. */
static int put_pubs(struct nconn *c, const struct mqb_strtab *heads,
                    struct mqb_fifo *batches, uint64_t n, uint64_t *inflight)
{
	struct mqb_role *r = c->r;
	uint64_t per_ping = r->run->o.window / 4 ? r->run->o.window / 4 : 1;
	uint64_t open = 0;

	for (uint64_t i = 0; i < n; i++) {
		size_t hl;
		unsigned q = mqb_queue_for(r, r->next_seq);
		const char *h = mqb_strtab_get(heads, q, &hl);

		put_pub(c, h, hl);
		(*inflight)++;
		if (++open == per_ping) {
			if (ping_batch(c, batches, open) < 0)
				return -1;
			open = 0;
		}
	}
	return open ? ping_batch(c, batches, open) : 0;
}

static int pub_loop(struct nconn *c, const struct mqb_strtab *heads)
{
	struct mqb_role *r = c->r;
	struct mqb_fifo batches = { 0 };
	uint64_t inflight = 0, done;
	int rc = 0;

	while (rc == 0 && !mqb_sender_done(r)) {
		uint64_t n;

		if (mqb_stopping(r->run))
			break;
		n = mqb_budget(r, inflight);
		if (n == 0 && inflight == 0) {
			if (!mqb_wait_lag(r))
				break;
			continue;
		}
		rc = put_pubs(c, heads, &batches, n, &inflight);
		if (rc == 0)
			rc = flush(c);
		if (rc == 0)
			rc = pump(c, n ? 0 : MQB_BIO_TICK_MS, false);
		if (rc == 0)
			rc = take_pongs(c, &batches, &done);
		if (rc == 0 && done) {
			mqb_confirmed(r, done);
			inflight -= done;
		}
	}
	mqb_fifo_free(&batches);
	return rc;
}

static int nats_produce(struct mqb_role *r)
{
	struct nconn c;
	struct mqb_strtab heads = { 0 };
	int rc = nats_open(&c, r, r->run->o.size);

	if (rc == 0 && pub_heads(r->run, &heads) < 0)
		rc = mqb_fail(r, "out of memory");
	if (rc == 0)
		rc = mqb_ready(r) ? pub_loop(&c, &heads) : 1;
	mqb_bio_close(&c.b);
	mqb_strtab_free(&heads);
	return rc < 0 ? -1 : 0;
}

/* ---- receivers -------------------------------------------------------- */

static int got_msg(struct nconn *c, const struct nmsg *m)
{
	mqb_received(c->r, m->data, m->len);
	return 0;
}

/*
 * SUB to the receiver's subjects (in queue group `group` unless NULL):
 * one wildcard when it takes every subject of a multi-subject run.
 */
static int put_subs(struct nconn *c, const char *group)
{
	struct mqb_role *r = c->r;
	const struct mqb_run *run = r->run;
	struct mqb_buf *w = &c->b.out;
	unsigned nq, *qs = mqb_queue_list(r, &nq);
	char name[256];

	if (!qs)
		return mqb_fail(r, "no subjects (or out of memory)");
	if (nq == run->o.queues && nq > 1) {
		mqb_buf_printf(w, "SUB %s.*%s%s 1\r\n", run->o.prefix,
		               group ? " " : "", group ? group : "");
	} else {
		for (unsigned i = 0; i < nq; i++) {
			mqb_queue_name(run, qs[i], name, sizeof name);
			mqb_buf_printf(w, "SUB %s%s%s %u\r\n", name,
			               group ? " " : "", group ? group : "",
			               i + 1);
		}
	}
	free(qs);
	return 0;
}

static int recv_loop(struct nconn *c)
{
	struct mqb_role *r = c->r;
	int rc = 0;

	while (rc == 0 && !mqb_receivers_done(r->run, r)) {
		rc = pump(c, MQB_BIO_TICK_MS, mqb_receivers_done(r->run, r));
		if (rc == 0)
			rc = flush(c);   /* PONGs for the server's PINGs */
	}
	return rc;
}

static int receive(struct mqb_role *r, const char *group)
{
	struct nconn c;
	int rc = nats_open(&c, r, 0);

	c.on_msg = got_msg;
	if (rc == 0)
		rc = put_subs(&c, group);
	if (rc == 0)
		rc = sync_subs(&c);
	if (rc == 0)
		rc = mqb_ready(r) ? recv_loop(&c) : 1;
	mqb_bio_close(&c.b);
	return rc < 0 ? -1 : 0;
}

/* Work-queue consumers share subjects through a queue group. */
static int nats_consume(struct mqb_role *r)
{
	return receive(r, GROUP);
}

/* Fan-out subscribers each take every message. */
static int nats_subscribe(struct mqb_role *r)
{
	return receive(r, NULL);
}

/* ---- request / reply -------------------------------------------------- */

static int got_reply(struct nconn *c, const struct nmsg *m)
{
	mqb_received(c->r, m->data, m->len);
	mqb_confirmed(c->r, 1);
	return 0;
}

static int request_loop(struct nconn *c, const char *head, size_t hl)
{
	struct mqb_role *r = c->r;
	uint64_t inflight = 0;
	int rc = 0;

	while (rc == 0 && !mqb_sender_done(r)) {
		uint64_t n, before = c->msgs;

		if (mqb_stopping(r->run))
			break;
		n = mqb_budget(r, inflight);
		if (n == 0 && inflight == 0) {
			if (!mqb_wait_lag(r))
				break;
			continue;
		}
		for (uint64_t i = 0; i < n; i++)
			put_pub(c, head, hl);
		inflight += n;
		rc = flush(c);
		if (rc == 0)
			rc = pump(c, n ? 0 : MQB_BIO_TICK_MS, false);
		inflight -= c->msgs - before;
	}
	return rc;
}

static int nats_request(struct mqb_role *r)
{
	const struct mqb_opts *o = &r->run->o;
	struct mqb_strtab t = { 0 };
	struct nconn c;
	int rc = nats_open(&c, r, o->size);

	c.on_msg = got_reply;
	/* string 0: the inbox; string 1: the PUB head naming it */
	if (rc == 0 &&
	    (mqb_strtab_add(&t, "_INBOX.%s.%u", o->prefix, r->id) < 0 ||
	     mqb_strtab_add(&t, "PUB %s.rpc _INBOX.%s.%u %zu\r\n", o->prefix,
	                    o->prefix, r->id, o->size) < 0))
		rc = mqb_fail(r, "out of memory");
	if (rc == 0) {
		size_t il;
		const char *inbox = mqb_strtab_get(&t, 0, &il);

		mqb_buf_printf(&c.b.out, "SUB %.*s 1\r\n", (int)il, inbox);
		rc = sync_subs(&c);
	}
	if (rc == 0) {
		size_t hl;
		const char *head = mqb_strtab_get(&t, 1, &hl);

		rc = mqb_ready(r) ? request_loop(&c, head, hl) : 1;
	}
	mqb_bio_close(&c.b);
	mqb_strtab_free(&t);
	return rc < 0 ? -1 : 0;
}

/* Echo the request's body to its reply subject. */
static int answer(struct nconn *c, const struct nmsg *m)
{
	struct mqb_buf *w = &c->b.out;

	if (!m->reply)
		return mqb_fail(c->r, "nats: request without a reply subject");
	mqb_buf_puts(w, "PUB ");
	mqb_buf_put(w, m->reply, m->replylen);
	mqb_buf_puts(w, " ");
	mqb_put_dec(w, m->len);
	mqb_buf_puts(w, "\r\n");
	mqb_buf_put(w, m->data, m->len);
	mqb_buf_puts(w, "\r\n");
	return 0;
}

static int serve_loop(struct nconn *c)
{
	const struct mqb_run *run = c->r->run;
	int rc = 0;

	while (rc == 0 && mqb_serving(run)) {
		rc = pump(c, MQB_BIO_TICK_MS, !mqb_serving(run));
		if (rc == 0)
			rc = flush(c);
	}
	return rc;
}

static int nats_respond(struct mqb_role *r)
{
	struct nconn c;
	int rc = nats_open(&c, r, r->run->o.size);

	c.on_msg = answer;
	if (rc == 0) {
		mqb_buf_printf(&c.b.out, "SUB %s.rpc " GROUP " 1\r\n",
		               r->run->o.prefix);
		rc = sync_subs(&c);
	}
	if (rc == 0)
		rc = mqb_ready(r) ? serve_loop(&c) : 1;
	mqb_bio_close(&c.b);
	return rc < 0 ? -1 : 0;
}

/* ---- idle ------------------------------------------------------------- */

/* Hold the connection, answering the server's PINGs so it stays up. */
static int nats_idle(struct mqb_role *r)
{
	struct nconn c;
	int rc = nats_open(&c, r, 0);

	if (rc == 0)
		rc = mqb_ready(r) ? serve_loop(&c) : 1;
	mqb_bio_close(&c.b);
	return rc < 0 ? -1 : 0;
}

const struct mqb_driver mqb_driver_nats = {
	.name = "nats",
	.default_port = "4222",
	.modes = 1u << MQB_PAIR | 1u << MQB_FANOUT | 1u << MQB_REQUEST |
	         1u << MQB_CONNECT,
	.setup = NULL,
	.produce = nats_produce,
	.consume = nats_consume,
	.publish = nats_produce,
	.subscribe = nats_subscribe,
	.request = nats_request,
	.respond = nats_respond,
	.idle = nats_idle,
};
