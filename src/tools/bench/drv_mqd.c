#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * mq-bench driver for mqd's own protocol (PROTOCOL.md).
 *
 * Producers send with QUIET and keep the window honest with PING: a PING
 * follows every window/4 sends, and its PONG confirms everything sent
 * before it (replies come back in request order).  --confirm sends without
 * QUIET and counts each OK instead.  Consumers CONSUME with a prefetch and
 * acknowledge everything one read brought in one QUIET ACK frame (or use
 * AUTO_ACK).  Frames are encoded straight into the output buffer and
 * bodies filled in place there; replies are parsed with the pure codec of
 * src/proto.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tools/bench/bench.h"
#include "tools/bench/bio.h"

struct mconn {
	struct mqb_bio b;
	struct mqb_role *r; /* NULL during setup */
	uint32_t max_frame;
	char err[256];
};

/* ---- encoding ----------------------------------------------------------- */

/* Reserve a whole frame with `payload` bytes; returns where they go. */
static uint8_t *frame(struct mqb_buf *w, size_t payload, uint8_t op,
                      uint8_t flags, uint32_t tag)
{
	uint8_t *p = mqb_buf_reserve(w, MQD_FRAME_HDR_SIZE + payload);

	mqd_store32(p, (uint32_t)(MQD_FRAME_MIN_LENGTH + payload));
	p[4] = op;
	p[5] = flags;
	mqd_store32(p + 6, tag);
	w->len += MQD_FRAME_HDR_SIZE + payload;
	return p + MQD_FRAME_HDR_SIZE;
}

static uint8_t *put_name(uint8_t *p, const char *s, size_t n)
{
	*p++ = (uint8_t)n;
	memcpy(p, s, n);
	return p + n;
}

static void enc_hello(struct mqb_buf *w, const struct mqb_opts *o)
{
	const char *client = "mq-bench";
	const char *user = o->user ? o->user : "";
	const char *pass = o->password ? o->password : "";
	size_t cl = strlen(client), ul = strlen(user), pl = strlen(pass);
	uint8_t *p = frame(w, 1 + 1 + cl + 1 + ul + 2 + pl, MQD_OP_HELLO, 0, 1);

	*p++ = MQD_PROTO_VERSION;
	p = put_name(p, client, cl);
	p = put_name(p, user, ul);
	mqd_store16(p, (uint16_t)pl);
	memcpy(p + 2, pass, pl);
}

static void enc_queue_u32(struct mqb_buf *w, uint8_t op, uint8_t flags,
                          uint32_t tag, const char *q, uint32_t v)
{
	size_t n = strlen(q);
	uint8_t *p = frame(w, 1 + n + 4, op, flags, tag);

	p = put_name(p, q, n);
	mqd_store32(p, v);
}

static void enc_declare(struct mqb_buf *w, uint8_t flags, uint32_t tag,
                        const char *q)
{
	size_t n = strlen(q);
	uint8_t *p = frame(w, 1 + n + 4 + 8 + 1 + 4 + 4 + 2 + 1, MQD_OP_DECLARE,
	                   flags, tag);

	p = put_name(p, q, n);
	memset(p, 0, 4 + 8 + 1 + 4 + 4 + 2 + 1); /* server defaults, no DLQ */
}

/* A SEND or PUBLISH with optional raw headers; returns where the body goes. */
static uint8_t *enc_send(struct mqb_buf *w, uint8_t op, uint8_t flags,
                         uint32_t tag, const char *dest, size_t dlen,
                         const uint8_t *hdrs, size_t hlen, size_t body)
{
	size_t nh = hlen ? hlen : 2;
	uint8_t *p = frame(w, 1 + dlen + 4 + 4 + 1 + nh + 4 + body, op, flags,
	                   tag);

	p = put_name(p, dest, dlen);
	memset(p, 0, 9); /* ttl, delay, priority */
	p += 9;
	if (hlen) {
		memcpy(p, hdrs, hlen);
		p += hlen;
	} else {
		mqd_store16(p, 0);
		p += 2;
	}
	mqd_store32(p, (uint32_t)body);
	return p + 4;
}

static void enc_ack(struct mqb_buf *w, const uint64_t *ids, size_t n)
{
	while (n > 0) {
		size_t k = n > 65535 ? 65535 : n;
		uint8_t *p = frame(w, 2 + 8 * k, MQD_OP_ACK, MQD_F_QUIET, 0);
		mqd_store16(p, (uint16_t)k);
		for (size_t i = 0; i < k; i++)
			mqd_store64(p + 2 + 8 * i, ids[i]);
		ids += k;
		n -= k;
	}
}

/* ---- decoding ----------------------------------------------------------- */

static int fail(struct mconn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct mconn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
	if (c->r)
		mqb_fail(c->r, "%s", c->err);
	return -1;
}

static int fail_error(struct mconn *c, const struct mqd_frame *f,
                      const char *what)
{
	union mqd_payload pl;
	const char *why = NULL;

	if (mqd_proto_parse(f, &pl, &why) != 0)
		return fail(c, "%s: malformed ERROR frame", what);
	return fail(c, "%s: server said %s: %.*s", what,
	            mqd_err_name(pl.error.code), (int)pl.error.message.len,
	            (const char *)pl.error.message.p);
}

/*
 * The next whole frame in the input, consumed; 1, 0 when more bytes are
 * needed, -1 on a framing error (reported).  The payload stays valid until
 * the next read.
 */
static int next_frame(struct mconn *c, struct mqd_frame *f)
{
	size_t size = 0;
	int rc = mqd_frame_decode(mqb_bio_data(&c->b), mqb_bio_avail(&c->b),
	                          c->max_frame + MQD_FRAME_SLACK, f, &size, NULL);

	if (rc < 0)
		return fail(c, "bad frame from server (%s)", mqd_err_name(-rc));
	if (rc == 1)
		mqb_bio_consume(&c->b, size);
	return rc;
}

static int read_more(struct mconn *c, int timeout_ms)
{
	int rc = mqb_bio_read(&c->b, timeout_ms);

	if (rc < 0)
		return fail(c, "%s", c->b.err);
	return rc;
}

/* Wait for one frame (handshake and set-up only). */
static int wait_frame(struct mconn *c, struct mqd_frame *f, unsigned timeout_ms)
{
	uint64_t deadline = mqb_now_ns() + (uint64_t)timeout_ms * 1000000u;

	for (;;) {
		int rc = next_frame(c, f);
		if (rc != 0)
			return rc;
		if (mqb_now_ns() > deadline)
			return fail(c, "no answer from the server in %u ms", timeout_ms);
		if (c->r && mqb_stopping(c->r->run))
			return -1;
		if (read_more(c, MQB_BIO_TICK_MS) < 0)
			return -1;
	}
}

static int open_conn(struct mconn *c, struct mqb_run *run, struct mqb_role *r)
{
	struct mqd_frame f;

	memset(c, 0, sizeof *c);
	c->r = r;
	c->max_frame = 1u << 20;
	if (mqb_bio_connect(&c->b, &run->o) < 0)
		return fail(c, "%s", c->b.err);
	enc_hello(&c->b.out, &run->o);
	if (mqb_bio_flush(&c->b) < 0)
		return fail(c, "%s", c->b.err);
	if (wait_frame(c, &f, run->o.timeout_ms) < 0)
		return -1;
	if (f.op == MQD_OP_ERROR)
		return fail_error(c, &f, "HELLO");
	union mqd_payload pl;
	const char *why;
	if (f.op != MQD_OP_WELCOME || mqd_proto_parse(&f, &pl, &why) != 0)
		return fail(c, "HELLO: unexpected answer (op 0x%02x)", f.op);
	c->max_frame = pl.welcome.max_frame;
	if (run->o.size + 512 > c->max_frame)
		return fail(c, "--size %zu is too large for the server's max_frame %u",
		            run->o.size, c->max_frame);
	return 0;
}

/* ---- senders ------------------------------------------------------------ */

/* PINGs in flight: how many sends each confirms, oldest first. */
struct pings {
	uint64_t *n;
	size_t cap, head, len;
};

static void ping(struct mconn *c, struct pings *pg, uint64_t *since)
{
	if (pg->len == pg->cap) { /* never more than window/batch + 2 */
		size_t cap = pg->cap ? pg->cap * 2 : 16;
		uint64_t *n = malloc(cap * sizeof *n);
		if (n == NULL)
			abort();
		for (size_t i = 0; i < pg->len; i++)
			n[i] = pg->n[(pg->head + i) % pg->cap];
		free(pg->n);
		pg->n = n;
		pg->cap = cap;
		pg->head = 0;
	}
	pg->n[(pg->head + pg->len) % pg->cap] = *since;
	pg->len++;
	(void)frame(&c->b.out, 0, MQD_OP_PING, 0, 0);
	*since = 0;
}

/* Confirmations in the input: OK (with --confirm) or PONG. */
static int sender_replies(struct mconn *c, struct pings *pg, uint64_t *inflight,
                          const char *what)
{
	struct mqd_frame f;
	int rc;

	while ((rc = next_frame(c, &f)) == 1) {
		uint64_t n;
		switch (f.op) {
		case MQD_OP_PONG:
			if (pg->len == 0)
				return fail(c, "PONG that answers no PING");
			n = pg->n[pg->head];
			pg->head = (pg->head + 1) % pg->cap;
			pg->len--;
			break;
		case MQD_OP_OK:
			n = 1;
			break;
		case MQD_OP_ERROR:
			return fail_error(c, &f, what);
		default:
			return fail(c, "%s: unexpected frame op 0x%02x", what, f.op);
		}
		*inflight -= n;
		mqb_confirmed(c->r, n);
	}
	return rc;
}

static int send_loop(struct mconn *c, uint8_t op)
{
	struct mqb_role *r = c->r;
	const struct mqb_opts *o = &r->run->o;
	bool quiet = !o->confirm;
	uint8_t flags = quiet ? MQD_F_QUIET : 0;
	uint64_t batch = o->window / 4 ? o->window / 4 : 1;
	uint64_t inflight = 0, since = 0;
	struct pings pg = {0};
	char names[64][MQD_NAME_MAX + 1]; /* a few recent names, by queue */
	int rc = 0;

	while (!mqb_sender_done(r) && !mqb_stopping(r->run)) {
		uint64_t n = mqb_budget(r, inflight);
		if (n == 0 && inflight == 0) {
			if (!mqb_wait_lag(r))
				break;
			continue;
		}
		for (uint64_t i = 0; i < n; i++) {
			unsigned q = mqb_queue_for(r, r->next_seq);
			char *name = names[q % 64];
			mqb_queue_name(r->run, q, name, sizeof names[0]);
			uint8_t *body = enc_send(&c->b.out, op, flags,
			                         (uint32_t)r->next_seq + 1, name,
			                         strlen(name), NULL, 0, o->size);
			mqb_make_body(r, body);
			inflight++;
			if (quiet && ++since >= batch)
				ping(c, &pg, &since);
		}
		bool more = mqb_budget(r, inflight) > 0;
		if (quiet && since > 0 && !more)
			ping(c, &pg, &since);
		if (mqb_bio_flush(&c->b) < 0) {
			rc = fail(c, "%s", c->b.err);
			break;
		}
		if (read_more(c, more ? 0 : MQB_BIO_TICK_MS) < 0 ||
		    sender_replies(c, &pg, &inflight,
		                   op == MQD_OP_SEND ? "SEND" : "PUBLISH") < 0) {
			rc = -1;
			break;
		}
	}
	free(pg.n);
	return rc;
}

static int mqd_produce(struct mqb_role *r)
{
	struct mconn c;
	int rc = open_conn(&c, r->run, r);

	if (rc == 0 && mqb_ready(r))
		rc = send_loop(&c, MQD_OP_SEND);
	mqb_bio_close(&c.b);
	return rc;
}

static int mqd_publish(struct mqb_role *r)
{
	struct mconn c;
	int rc = open_conn(&c, r->run, r);

	if (rc == 0 && mqb_ready(r))
		rc = send_loop(&c, MQD_OP_PUBLISH);
	mqb_bio_close(&c.b);
	return rc;
}

/* ---- receivers ---------------------------------------------------------- */

struct subs {
	struct mconn *c;
	uint8_t op;    /* CONSUME or SUBSCRIBE */
	uint8_t flags;
	uint32_t prefetch;
	unsigned n;
};

static void sub_one(void *arg, unsigned q)
{
	struct subs *s = arg;
	char name[MQD_NAME_MAX + 1];

	mqb_queue_name(s->c->r->run, q, name, sizeof name);
	if (s->op == MQD_OP_CONSUME) {
		enc_queue_u32(&s->c->b.out, MQD_OP_CONSUME, s->flags, q + 1, name,
		              s->prefetch);
	} else {
		size_t n = strlen(name);
		put_name(frame(&s->c->b.out, 1 + n, MQD_OP_SUBSCRIBE, 0, q + 1), name,
		         n);
	}
	s->n++;
}

struct acks {
	uint64_t *ids;
	size_t len, cap;
};

static void ack_add(struct acks *a, uint64_t id)
{
	if (a->len == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 256;
		a->ids = realloc(a->ids, a->cap * sizeof *a->ids);
		if (a->ids == NULL)
			abort();
	}
	a->ids[a->len++] = id;
}

/*
 * Every whole frame in the input: deliveries go to the core (and their
 * ids to *acks when acknowledging), OKs count down *pending_ok.
 */
static int receiver_frames(struct mconn *c, struct acks *acks,
                           unsigned *pending_ok)
{
	struct mqd_frame f;
	int rc;

	while ((rc = next_frame(c, &f)) == 1) {
		if (f.op == MQD_OP_DELIVER) {
			union mqd_payload pl;
			const char *why;
			if (mqd_proto_parse(&f, &pl, &why) != 0)
				return fail(c, "bad DELIVER: %s", why);
			mqb_received(c->r, pl.message.body.p, pl.message.body.len);
			if (acks)
				ack_add(acks, pl.message.id);
		} else if (f.op == MQD_OP_OK && *pending_ok > 0) {
			(*pending_ok)--;
		} else if (f.op == MQD_OP_ERROR) {
			return fail_error(c, &f, "receiving");
		} else if (f.op != MQD_OP_CANCELLED) {
			return fail(c, "receiving: unexpected frame op 0x%02x", f.op);
		} else {
			return fail(c, "the server cancelled a consumer");
		}
	}
	return rc;
}

/*
 * The run is complete: acknowledge what the last read brought and wait for
 * the PONG behind the ACK (replies keep their order), so nothing this
 * consumer received goes back to the queue when it closes and is
 * delivered again to a consumer still reading.  Bounded by one second;
 * deliveries that still come are not counted.
 */
static void last_acks(struct mconn *c, struct acks *acks)
{
	struct mqd_frame f;
	uint64_t deadline = mqb_now_ns() + 1000000000u;

	enc_ack(&c->b.out, acks->ids, acks->len);
	acks->len = 0;
	(void)frame(&c->b.out, 0, MQD_OP_PING, 0, 0);
	if (mqb_bio_flush(&c->b) < 0)
		return;
	while (mqb_now_ns() < deadline) {
		int rc;
		while ((rc = next_frame(c, &f)) == 1)
			if (f.op == MQD_OP_PONG)
				return;
		if (rc < 0 || mqb_bio_read(&c->b, MQB_BIO_TICK_MS) < 0)
			return;
	}
}

static int receive_loop(struct mconn *c, uint8_t op)
{
	struct mqb_role *r = c->r;
	const struct mqb_opts *o = &r->run->o;
	bool acking = op == MQD_OP_CONSUME && !o->auto_ack;
	struct subs s = {c, op, o->auto_ack ? MQD_F_AUTO_ACK : 0, o->prefetch, 0};
	struct acks acks = {0};
	int rc = 0;

	mqb_consumer_queues(r, sub_one, &s);
	if (mqb_bio_flush(&c->b) < 0)
		return fail(c, "%s", c->b.err);
	unsigned pending = s.n;
	uint64_t deadline = mqb_now_ns() + (uint64_t)o->timeout_ms * 1000000u;
	while (pending > 0 && rc == 0) {
		if (mqb_now_ns() > deadline)
			rc = fail(c, "no answer to %s from the server", mqd_op_name(op));
		else if (read_more(c, MQB_BIO_TICK_MS) < 0 ||
		         receiver_frames(c, acking ? &acks : NULL, &pending) < 0)
			rc = -1;
	}
	if (rc == 0 && !mqb_ready(r)) {
		free(acks.ids);
		return 0; /* the run stopped before it started */
	}
	while (rc == 0 && !mqb_receivers_done(r->run, r)) {
		if (acks.len > 0) {
			enc_ack(&c->b.out, acks.ids, acks.len);
			acks.len = 0;
			if (mqb_bio_flush(&c->b) < 0) {
				rc = fail(c, "%s", c->b.err);
				break;
			}
		}
		if (read_more(c, MQB_BIO_TICK_MS) < 0 ||
		    receiver_frames(c, acking ? &acks : NULL, &pending) < 0)
			rc = -1;
	}
	if (mqb_receivers_done(r->run, r) && !r->failed)
		rc = 0; /* the server may close on us once everything arrived */
	if (rc == 0 && acks.len > 0)
		last_acks(c, &acks);
	free(acks.ids);
	return rc;
}

static int mqd_consume(struct mqb_role *r)
{
	struct mconn c;
	int rc = open_conn(&c, r->run, r);

	if (rc == 0)
		rc = receive_loop(&c, MQD_OP_CONSUME);
	mqb_bio_close(&c.b);
	return rc;
}

static int mqd_subscribe(struct mqb_role *r)
{
	struct mconn c;
	int rc = open_conn(&c, r->run, r);

	if (rc == 0)
		rc = receive_loop(&c, MQD_OP_SUBSCRIBE);
	mqb_bio_close(&c.b);
	return rc;
}

/* ---- request / reply ---------------------------------------------------- */

/* Headers with reply-to and correlation-id, in wire form. */
static size_t rpc_headers(uint8_t *h, const char *reply_to, uint64_t corr)
{
	char cid[24];
	size_t rl = strlen(reply_to);
	int cl = snprintf(cid, sizeof cid, "%" PRIu64, corr);
	uint8_t *p = h;

	mqd_store16(p, 2);
	p = put_name(p + 2, "reply-to", 8);
	mqd_store16(p, (uint16_t)rl);
	memcpy(p + 2, reply_to, rl);
	p = put_name(p + 2 + rl, "correlation-id", 14);
	mqd_store16(p, (uint16_t)cl);
	memcpy(p + 2, cid, (size_t)cl);
	return (size_t)(p + 2 + cl - h);
}

static int mqd_request(struct mqb_role *r)
{
	const struct mqb_opts *o = &r->run->o;
	struct mconn c;
	struct mqd_frame f;
	union mqd_payload pl;
	const char *why;
	char reply[MQD_NAME_MAX + 1], rpc[MQD_NAME_MAX + 1];
	uint8_t hdrs[2 * (1 + 14 + 2) + MQD_NAME_MAX + 24];
	int rc = open_conn(&c, r->run, r);

	snprintf(rpc, sizeof rpc, "%s.rpc", o->prefix);
	if (rc == 0) {
		enc_declare(&c.b.out, MQD_F_EXCLUSIVE, 2, "");
		rc = mqb_bio_flush(&c.b) < 0 ? fail(&c, "%s", c.b.err)
		     : wait_frame(&c, &f, o->timeout_ms) < 0 ? -1
		     : f.op == MQD_OP_ERROR ? fail_error(&c, &f, "DECLARE")
		     : 0;
	}
	if (rc == 0) {
		if (f.op != MQD_OP_DECLARED || mqd_proto_parse(&f, &pl, &why) != 0)
			rc = fail(&c, "DECLARE: unexpected answer");
		else
			snprintf(reply, sizeof reply, "%.*s",
			         (int)pl.declared.queue.len,
			         (const char *)pl.declared.queue.p);
	}
	if (rc == 0) {
		enc_queue_u32(&c.b.out, MQD_OP_CONSUME, MQD_F_AUTO_ACK, 3, reply, 0);
		rc = mqb_bio_flush(&c.b) < 0 ? fail(&c, "%s", c.b.err)
		     : wait_frame(&c, &f, o->timeout_ms) < 0 ? -1
		     : f.op != MQD_OP_OK ? fail(&c, "CONSUME of the reply queue failed")
		     : 0;
	}
	uint64_t inflight = 0;
	if (rc == 0 && !mqb_ready(r))
		rc = 1;
	while (rc == 0 && !mqb_sender_done(r) && !mqb_stopping(r->run)) {
		uint64_t n = mqb_budget(r, inflight);
		for (uint64_t i = 0; i < n; i++) {
			size_t hl = rpc_headers(hdrs, reply, r->next_seq);
			uint8_t *body = enc_send(&c.b.out, MQD_OP_SEND, MQD_F_QUIET,
			                         (uint32_t)r->next_seq + 1, rpc,
			                         strlen(rpc), hdrs, hl, o->size);
			mqb_make_body(r, body);
			inflight++;
		}
		if (mqb_bio_flush(&c.b) < 0) {
			rc = fail(&c, "%s", c.b.err);
			break;
		}
		if (read_more(&c, n > 0 && mqb_budget(r, inflight) > 0 ? 0
		                                                      : MQB_BIO_TICK_MS) < 0)
			rc = -1;
		while (rc == 0 && (rc = next_frame(&c, &f)) == 1) {
			rc = 0;
			if (f.op == MQD_OP_ERROR) {
				rc = fail_error(&c, &f, "request");
			} else if (f.op != MQD_OP_DELIVER ||
			           mqd_proto_parse(&f, &pl, &why) != 0) {
				rc = fail(&c, "request: unexpected frame op 0x%02x", f.op);
			} else {
				mqb_received(r, pl.message.body.p, pl.message.body.len);
				mqb_confirmed(r, 1);
				inflight--;
			}
		}
	}
	mqb_bio_close(&c.b);
	return rc < 0 ? -1 : 0;
}

/* Answer every request in the input; collect their ids to acknowledge. */
static int respond_frames(struct mconn *c, struct acks *acks)
{
	struct mqd_frame f;
	union mqd_payload pl;
	const char *why;
	int rc;

	while ((rc = next_frame(c, &f)) == 1) {
		if (f.op == MQD_OP_ERROR) {
			if (mqd_proto_parse(&f, &pl, &why) == 0 &&
			    pl.error.code == MQD_ERR_NOT_FOUND)
				continue; /* a requester left: its reply queue went */
			return fail_error(c, &f, "reply");
		}
		if (f.op != MQD_OP_DELIVER || mqd_proto_parse(&f, &pl, &why) != 0)
			return fail(c, "respond: unexpected frame op 0x%02x", f.op);
		struct mqd_span to, corr;
		if (!mqd_headers_find(pl.message.headers, "reply-to", &to))
			return fail(c, "respond: a request without reply-to");
		uint8_t h[1 + 14 + 2 + 64 + 2];
		size_t hl = 0;
		if (mqd_headers_find(pl.message.headers, "correlation-id", &corr) &&
		    corr.len <= 64) {
			mqd_store16(h, 1);
			uint8_t *p = put_name(h + 2, "correlation-id", 14);
			mqd_store16(p, (uint16_t)corr.len);
			memcpy(p + 2, corr.p, corr.len);
			hl = (size_t)(p + 2 + corr.len - h);
		}
		uint8_t *body = enc_send(&c->b.out, MQD_OP_SEND, MQD_F_QUIET, 0,
		                         (const char *)to.p, to.len, h, hl,
		                         pl.message.body.len);
		memcpy(body, pl.message.body.p, pl.message.body.len);
		if (acks)
			ack_add(acks, pl.message.id);
	}
	return rc;
}

static int mqd_respond(struct mqb_role *r)
{
	const struct mqb_opts *o = &r->run->o;
	struct mconn c;
	struct mqd_frame f;
	struct acks acks = {0};
	char rpc[MQD_NAME_MAX + 1];
	int rc = open_conn(&c, r->run, r);

	snprintf(rpc, sizeof rpc, "%s.rpc", o->prefix);
	if (rc == 0) {
		enc_queue_u32(&c.b.out, MQD_OP_CONSUME,
		              o->auto_ack ? MQD_F_AUTO_ACK : 0, 1, rpc, o->prefetch);
		rc = mqb_bio_flush(&c.b) < 0 ? fail(&c, "%s", c.b.err)
		     : wait_frame(&c, &f, o->timeout_ms) < 0 ? -1
		     : f.op == MQD_OP_ERROR ? fail_error(&c, &f, "CONSUME")
		     : 0;
	}
	if (rc == 0 && !mqb_ready(r))
		rc = 1;
	while (rc == 0 && mqb_serving(r->run)) {
		if (read_more(&c, MQB_BIO_TICK_MS) < 0 ||
		    respond_frames(&c, o->auto_ack ? NULL : &acks) < 0) {
			rc = mqb_serving(r->run) ? -1 : 0;
			break;
		}
		if (acks.len > 0) {
			enc_ack(&c.b.out, acks.ids, acks.len);
			acks.len = 0;
		}
		if (c.b.out.len > 0 && mqb_bio_flush(&c.b) < 0)
			rc = fail(&c, "%s", c.b.err);
	}
	free(acks.ids);
	mqb_bio_close(&c.b);
	return rc < 0 ? -1 : 0;
}

/* ---- idle connections and set-up ---------------------------------------- */

static int mqd_idle(struct mqb_role *r)
{
	struct mconn c;
	int rc = open_conn(&c, r->run, r);

	if (rc == 0 && mqb_ready(r)) {
		while (mqb_serving(r->run)) {
			if (mqb_bio_read(&c.b, MQB_BIO_TICK_MS) < 0) {
				rc = mqb_serving(r->run) ? fail(&c, "%s", c.b.err) : 0;
				break;
			}
			mqb_bio_consume(&c.b, mqb_bio_avail(&c.b));
		}
	}
	mqb_bio_close(&c.b);
	return rc;
}

/* --declare: every queue, pipelined, a thousand at a time. */
static int mqd_setup(struct mqb_run *run, char *err, size_t errlen)
{
	struct mconn c;
	struct mqd_frame f;
	char name[MQD_NAME_MAX + 1];
	int rc;

	if (!run->o.declare || run->o.mode == MQB_FANOUT ||
	    run->o.mode == MQB_CONNECT)
		return 0;
	rc = open_conn(&c, run, NULL);
	for (unsigned q = 0; rc == 0 && q < run->o.queues; q += 1000) {
		unsigned k = run->o.queues - q < 1000 ? run->o.queues - q : 1000;
		for (unsigned i = 0; i < k; i++) {
			mqb_queue_name(run, q + i, name, sizeof name);
			enc_declare(&c.b.out, 0, q + i + 1, name);
		}
		if (mqb_bio_flush(&c.b) < 0) {
			rc = fail(&c, "%s", c.b.err);
			break;
		}
		for (unsigned i = 0; rc == 0 && i < k; i++) {
			if (wait_frame(&c, &f, run->o.timeout_ms) < 0)
				rc = -1;
			else if (f.op == MQD_OP_ERROR)
				rc = fail_error(&c, &f, "DECLARE");
			else if (f.op != MQD_OP_DECLARED)
				rc = fail(&c, "DECLARE: unexpected op 0x%02x", f.op);
		}
	}
	if (rc < 0)
		snprintf(err, errlen, "%s", c.err);
	mqb_bio_close(&c.b);
	return rc;
}

const struct mqb_driver mqb_driver_mqd = {
	.name = "mqd",
	.default_port = "7400",
	.modes = 1u << MQB_PAIR | 1u << MQB_PRODUCE | 1u << MQB_CONSUME |
	         1u << MQB_FANOUT | 1u << MQB_REQUEST | 1u << MQB_CONNECT,
	.setup = mqd_setup,
	.produce = mqd_produce,
	.consume = mqd_consume,
	.publish = mqd_publish,
	.subscribe = mqd_subscribe,
	.request = mqd_request,
	.respond = mqd_respond,
	.idle = mqd_idle,
};
