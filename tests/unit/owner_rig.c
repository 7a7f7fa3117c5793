/* The owner test rig (owner_rig.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/shard.h"
#include "mail/mail.h"
#include "owner/ops.h"
#include "owner/owner.h"
#include "proto/proto.h"
#include "route/topics.h"
#include "store/dlgraph.h"
#include "store/message.h"

#include "unit/owner_rig.h"

/* ---- the fake clock ---------------------------------------------------- */

uint64_t rig_mono = 1000000;
uint64_t rig_wall = 1700000000000ULL;

static uint64_t mono_fn(void)
{
	return rig_mono;
}

static uint64_t wall_fn(void)
{
	return rig_wall;
}

/* ---- the world: owners, their outboxes, connections -------------------- */

static void record(struct rig_world *w, struct rig_ev *e)
{
	if (w->tail)
		w->tail->next = e;
	else
		w->head = e;
	w->tail = e;
}

static struct rig_ev *ev_new(const struct rig_rec *rc, int kind, unsigned to,
                             bool posted)
{
	struct rig_ev *e = calloc(1, sizeof *e);

	ck_assert_ptr_nonnull(e);
	e->kind = kind;
	e->from = rc->index;
	e->to = to;
	e->posted = posted;
	return e;
}

/* Decode one whole frame at data into e (which keeps a copy); returns the
 * bytes it took. */
static size_t decode_frame(struct rig_ev *e, const uint8_t *data, size_t len)
{
	size_t size = 0;
	const char *why = NULL;

	ck_assert_int_eq(
	        mqd_frame_decode(data, len, UINT32_MAX, &e->f, &size, NULL), 1);
	e->buf = malloc(size);
	ck_assert_ptr_nonnull(e->buf);
	memcpy(e->buf, data, size);
	ck_assert_int_eq(
	        mqd_frame_decode(e->buf, size, UINT32_MAX, &e->f, &size, NULL),
	        1);
	ck_assert_msg(mqd_proto_parse(&e->f, &e->p, &why) == 0,
	              "owner frame op 0x%02x does not parse: %s", e->f.op, why);
	return size;
}

static void take_reply(struct rig_rec *rc, unsigned to, struct mqd_req *r,
                       bool posted)
{
	struct rig_ev *e = ev_new(rc, MQD_MAIL_REPLY, to, posted);

	ck_assert_uint_eq(to, r->home);
	ck_assert_uint_eq(((struct rig_conn *)r->conn)->id, r->conn_id);
	e->conn_id = r->conn_id;
	if (r->reply.len == 0) {
		ck_assert_msg(r->quiet_ok, "a reply with no frame");
		e->quiet = true;
	} else {
		ck_assert_uint_eq(decode_frame(e, r->reply.data, r->reply.len),
		                  r->reply.len);
	}
	record(rc->w, e);
	/* As the home frees it (mqd_req_free). */
	if (r->msg)
		mqd_msg_free(r->msg);
	mqd_wbuf_free(&r->reply);
	free(r);
}

static void take_output(struct rig_rec *rc, unsigned to,
                        struct mqd_mail_output *o, bool posted)
{
	struct rig_conn *c = (struct rig_conn *)o->conn;
	uint32_t frames = o->frames ? o->frames : 1, seen = 0;
	size_t len = o->len + (o->shared ? o->shared->len : 0), pos = 0;
	uint8_t *all = malloc(len ? len : 1);
	unsigned batch = ++rc->w->batches;

	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(to, c->home);
	ck_assert_uint_eq(o->owner, rc->index);
	ck_assert_ptr_nonnull(all);
	memcpy(all, o->data, o->len);
	if (o->shared)
		memcpy(all + o->len, o->shared->data, o->shared->len);
	while (pos < len) {
		struct rig_ev *e = ev_new(rc, MQD_MAIL_OUTPUT, to, posted);
		e->conn_id = c->id;
		e->batch = batch;
		e->otag = o->tag;
		e->nframes = frames;
		e->credit = o->credit;
		e->sub_id = o->sub_id;
		e->cancelled = o->cancelled;
		pos += decode_frame(e, all + pos, len - pos);
		record(rc->w, e);
		seen++;
	}
	ck_assert_uint_eq(seen, frames);
	free(all);
	mqd_shared_unref(o->shared);
	free(o);
}

static void take(struct rig_rec *rc, unsigned to, struct mqd_mail *m,
                 bool posted)
{
	struct rig_world *w = rc->w;
	struct rig_pending *p;

	switch (m->type) {
	case MQD_MAIL_REPLY:
		take_reply(rc, to, (struct mqd_req *)m, posted);
		return;
	case MQD_MAIL_OUTPUT:
		take_output(rc, to, (struct mqd_mail_output *)m, posted);
		return;
	case MQD_MAIL_CLOSE_DONE: {
		struct mqd_mail_close *c = (struct mqd_mail_close *)m;
		struct rig_ev *e = ev_new(rc, MQD_MAIL_CLOSE_DONE, to, posted);
		ck_assert_uint_eq(to, c->home);
		ck_assert_uint_eq(c->from, rc->index);
		e->conn_id = c->conn_id;
		record(w, e);
		free(c);
		return;
	}
	default: /* for an owner: DEAD, ROUTE, ROUTE_DONE */
		ck_assert_uint_lt(to, w->n);
		ck_assert_msg(to != rc->index,
		              "owner %u sent itself mail type %d through its "
		              "outbox", to, m->type);
		p = calloc(1, sizeof *p);
		ck_assert_ptr_nonnull(p);
		p->to = to;
		p->m = m;
		if (w->pt)
			w->pt->next = p;
		else
			w->ph = p;
		w->pt = p;
		return;
	}
}

static void out_send(void *ctx, unsigned to, struct mqd_mail *m)
{
	take(ctx, to, m, false);
}

static void out_post(void *ctx, unsigned to, struct mqd_mail *m)
{
	take(ctx, to, m, true);
}

static int out_deadline(void *ctx, uint64_t at)
{
	struct rig_rec *rc = ctx;

	rc->deadline = at;
	return 0;
}

static void out_flush_soon(void *ctx)
{
	((struct rig_rec *)ctx)->flush_due = true;
}

struct rig_world *rig_world_new(unsigned n)
{
	struct rig_world *w = calloc(1, sizeof *w);

	ck_assert_ptr_nonnull(w);
	ck_assert_uint_le(n, RIG_MAX_OWNERS);
	mqd_clock_override(wall_fn, mono_fn);
	mqd_config_defaults(&w->cfg);
	w->n = n;
	w->base = event_base_new();
	ck_assert_ptr_nonnull(w->base);
	w->dl = mqd_dlgraph_new();
	ck_assert_ptr_nonnull(w->dl);
	for (unsigned i = 0; i < n; i++) {
		const struct mqd_outbox out = {
			.ctx = &w->rec[i],
			.send = out_send,
			.post = out_post,
			.deadline = out_deadline,
			.flush_soon = out_flush_soon,
		};
		w->rec[i].w = w;
		w->rec[i].index = i;
		ck_assert_int_eq(mqd_owner_init(&w->ow[i], i, n, &w->cfg,
		                                w->base, w->dl, &out),
		                 0);
	}
	return w;
}

struct rig_conn *rig_connect(struct rig_world *w, unsigned home)
{
	struct rig_conn *c;

	ck_assert_uint_lt(w->nconns, RIG_MAX_CONNS);
	c = &w->conns[w->nconns++];
	c->id = 0x100 + w->nconns;
	c->home = home;
	return c;
}

/* The end of a loop pass: mails between owners are delivered, then output
 * batches flushed (unless the test flushes by hand), until all is quiet. */
void rig_pass(struct rig_world *w)
{
	for (unsigned guard = 0;; guard++) {
		bool any = false;

		ck_assert_uint_lt(guard, 1000000);
		if (w->ph != NULL) {
			struct rig_pending *p = w->ph;
			w->ph = p->next;
			if (w->ph == NULL)
				w->pt = NULL;
			ck_assert(mqd_owner_handle(&w->ow[p->to], p->m));
			free(p);
			continue;
		}
		for (unsigned i = 0; i < w->n && !w->manual_flush; i++) {
			if (w->rec[i].flush_due) {
				w->rec[i].flush_due = false;
				mqd_owner_flush(&w->ow[i]);
				any = true;
			}
		}
		if (!any)
			return;
	}
}

/* Flush one owner's batches by hand, as its loop does when flush_soon
 * asked for it. */
void rig_end_of_pass(struct rig_world *w, unsigned owner)
{
	ck_assert(w->rec[owner].flush_due);
	w->rec[owner].flush_due = false;
	mqd_owner_flush(&w->ow[owner]);
}

/* Move the clock on; fire every owner whose deadline has come (the
 * deadline is spent once fired, as a one-shot timer's is). */
void rig_advance(struct rig_world *w, uint64_t ms)
{
	bool fired = true;

	rig_mono += ms;
	rig_wall += ms;
	for (unsigned guard = 0; fired; guard++) {
		ck_assert_uint_lt(guard, 10000);
		fired = false;
		for (unsigned i = 0; i < w->n; i++) {
			if (w->rec[i].deadline != 0 &&
			    w->rec[i].deadline <= rig_mono) {
				w->rec[i].deadline = 0;
				mqd_owner_timer(&w->ow[i]);
				fired = true;
			}
		}
		rig_pass(w);
	}
}

void rig_close_on(struct rig_world *w, struct rig_conn *c, unsigned owner,
                  bool run)
{
	struct mqd_mail_close *m = calloc(1, sizeof *m);

	ck_assert_ptr_nonnull(m);
	m->mail.type = MQD_MAIL_CLOSE;
	m->conn = (struct mqd_conn *)c;
	m->conn_id = c->id;
	m->home = c->home;
	m->from = owner;
	ck_assert(mqd_owner_handle(&w->ow[owner], &m->mail));
	if (run)
		rig_pass(w);
}

static void drop_events(struct rig_ev *e)
{
	while (e) {
		struct rig_ev *next = e->next;
		free(e->buf);
		free(e);
		e = next;
	}
}

/* Close what is still open (as the daemon does before the owners go),
 * free everything, and check that no message memory is left. */
void rig_world_free(struct rig_world *w)
{
	w->manual_flush = false;
	for (unsigned i = 0; i < w->nconns; i++) {
		if (w->conns[i].closed)
			continue;
		for (unsigned o = 0; o < w->n; o++)
			rig_close_on(w, &w->conns[i], o, true);
	}
	ck_assert_ptr_null(w->ph);
	for (unsigned i = 0; i < w->n; i++)
		mqd_owner_free(&w->ow[i]);
	drop_events(w->head);
	drop_events(w->seen);
	event_base_free(w->base);
	mqd_dlgraph_free(w->dl);
	mqd_config_free(&w->cfg);
	mqd_clock_reset();
	ck_assert_uint_eq(mqd_msg_mem_used(), 0);
	free(w);
}

/* ---- reading what the owners sent -------------------------------------- */

struct rig_ev *rig_next_ev(struct rig_world *w)
{
	struct rig_ev *e = w->head;

	ck_assert_msg(e != NULL, "expected another mail from the owner");
	w->head = e->next;
	if (w->head == NULL)
		w->tail = NULL;
	e->next = w->seen;
	w->seen = e;
	return e;
}

void rig_idle(struct rig_world *w)
{
	const struct rig_ev *e = w->head;

	ck_assert_msg(e == NULL,
	              "unexpected mail: kind %d, conn %llu, op 0x%02x, tag %u",
	              e ? e->kind : 0,
	              e ? (unsigned long long)e->conn_id : 0ULL,
	              e ? e->f.op : 0, e ? e->f.tag : 0);
}

struct rig_ev *rig_reply(struct rig_world *w, const struct rig_conn *c,
                         uint32_t tag, uint8_t op)
{
	struct rig_ev *e = rig_next_ev(w);

	ck_assert_int_eq(e->kind, MQD_MAIL_REPLY);
	ck_assert_uint_eq(e->conn_id, c->id);
	ck_assert(!e->posted);
	ck_assert(!e->quiet);
	ck_assert_uint_eq(e->f.tag, tag);
	ck_assert_msg(e->f.op == op,
	              "reply op 0x%02x (error code %u: %.*s), expected 0x%02x",
	              e->f.op, e->f.op == MQD_OP_ERROR ? e->p.error.code : 0,
	              e->f.op == MQD_OP_ERROR ? (int)e->p.error.message.len : 0,
	              e->f.op == MQD_OP_ERROR
	                      ? (const char *)e->p.error.message.p
	                      : "",
	              op);
	return e;
}

void rig_error_reply(struct rig_world *w, const struct rig_conn *c,
                     uint32_t tag, uint16_t code)
{
	struct rig_ev *e = rig_reply(w, c, tag, MQD_OP_ERROR);

	ck_assert_uint_eq(e->p.error.code, code);
}

uint64_t rig_ok_u64(struct rig_world *w, const struct rig_conn *c, uint32_t tag)
{
	struct rig_ev *e = rig_reply(w, c, tag, MQD_OP_OK);

	ck_assert_uint_eq(e->p.raw.len, 8);
	return mqd_load64(e->p.raw.p);
}

uint32_t rig_ok_u32(struct rig_world *w, const struct rig_conn *c, uint32_t tag)
{
	struct rig_ev *e = rig_reply(w, c, tag, MQD_OP_OK);

	ck_assert_uint_eq(e->p.raw.len, 4);
	return mqd_load32(e->p.raw.p);
}

void rig_ok_empty(struct rig_world *w, const struct rig_conn *c, uint32_t tag)
{
	struct rig_ev *e = rig_reply(w, c, tag, MQD_OP_OK);

	ck_assert_uint_eq(e->p.raw.len, 0);
}

void rig_quiet_ok(struct rig_world *w, const struct rig_conn *c)
{
	struct rig_ev *e = rig_next_ev(w);

	ck_assert_int_eq(e->kind, MQD_MAIL_REPLY);
	ck_assert_uint_eq(e->conn_id, c->id);
	ck_assert(e->quiet);
}

/* The next pushed frame: for connection c, with tag and op. */
struct rig_ev *rig_pushed(struct rig_world *w, const struct rig_conn *c,
                          uint32_t tag, uint8_t op)
{
	struct rig_ev *e = rig_next_ev(w);

	ck_assert_int_eq(e->kind, MQD_MAIL_OUTPUT);
	ck_assert_uint_eq(e->conn_id, c->id);
	ck_assert(!e->posted);
	ck_assert_uint_eq(e->f.op, op);
	ck_assert_uint_eq(e->f.tag, tag);
	return e;
}

struct rig_ev *rig_deliver(struct rig_world *w, const struct rig_conn *c,
                           uint32_t tag)
{
	return rig_pushed(w, c, tag, MQD_OP_DELIVER);
}

void rig_close_done(struct rig_world *w, const struct rig_conn *c)
{
	struct rig_ev *e = rig_next_ev(w);

	ck_assert_int_eq(e->kind, MQD_MAIL_CLOSE_DONE);
	ck_assert_uint_eq(e->conn_id, c->id);
	ck_assert_msg(e->posted, "CLOSE_DONE must go through the post slot");
	ck_assert_uint_eq(e->to, c->home);
}

void rig_span_is(struct mqd_span s, const char *want)
{
	ck_assert_uint_eq(s.len, strlen(want));
	ck_assert_mem_eq(s.p, want, s.len);
}

void rig_body_is(const struct rig_ev *e, const char *want)
{
	rig_span_is(e->p.message.body, want);
}

void rig_header_is(const struct rig_ev *e, const char *key, const char *want)
{
	struct mqd_span v;

	ck_assert_msg(mqd_headers_find(e->p.message.headers, key, &v),
	              "no header %s", key);
	rig_span_is(v, want);
}

/* ---- requests, built as net/dispatch.c builds them --------------------- */

static void set_name(struct mqd_req *r, struct mqd_span s)
{
	memcpy(r->name, s.p, s.len);
	r->name[s.len] = '\0';
	r->name_len = (uint8_t)s.len;
}

static void set_pattern(struct mqd_req *r, struct mqd_span s)
{
	memcpy(r->pattern, s.p, s.len);
	r->pattern_len = (uint8_t)s.len;
}

/* The request for the frame in b (freed): its payload copied into the
 * request and parsed there, its routing name and, for SEND, its message. */
static struct mqd_req *make_req(struct rig_conn *c, struct mqd_wbuf *b)
{
	struct mqd_frame f, copy;
	struct mqd_req *r;
	size_t size;
	const char *why = NULL;

	ck_assert(!b->oom);
	ck_assert_int_eq(
	        mqd_frame_decode(b->data, b->len, UINT32_MAX, &f, &size, NULL),
	        1);
	r = calloc(1, sizeof *r + f.payload.len);
	ck_assert_ptr_nonnull(r);
	r->mail.type = MQD_MAIL_REQ;
	r->conn = (struct mqd_conn *)c;
	r->conn_id = c->id;
	r->home = c->home;
	r->op = f.op;
	r->flags = f.flags;
	r->tag = f.tag;
	r->frame_len = f.payload.len;
	mqd_wbuf_init(&r->reply);
	memcpy(r->frame, f.payload.p, f.payload.len);
	copy = f;
	copy.payload.p = r->frame;
	ck_assert_msg(mqd_proto_parse(&copy, &r->p, &why) == 0,
	              "request does not parse: %s", why);
	switch (f.op) {
	case MQD_OP_DECLARE:
		set_name(r, r->p.declare.queue);
		break;
	case MQD_OP_DELETE:
	case MQD_OP_PURGE:
		set_name(r, r->p.queue_ref.queue);
		break;
	case MQD_OP_GET:
		set_name(r, r->p.get.queue);
		break;
	case MQD_OP_CONSUME:
		set_name(r, r->p.consume.queue);
		break;
	case MQD_OP_SEND: {
		const struct mqd_send *s = &r->p.send;
		r->msg = mqd_msg_new(s->headers.p, s->headers.len, s->nheaders,
		                     s->body.p, s->body.len);
		ck_assert_ptr_nonnull(r->msg);
		r->msg->priority = s->priority;
		r->msg->ttl_ms = s->ttl_ms;
		r->msg->delay_ms = s->delay_ms;
		set_name(r, s->dest);
		break;
	}
	case MQD_OP_BIND:
	case MQD_OP_UNBIND:
		set_name(r, r->p.bind.queue);
		set_pattern(r, r->p.bind.pattern);
		break;
	case MQD_OP_SUBSCRIBE:
		set_pattern(r, r->p.subscribe.pattern);
		break;
	default:
		break;
	}
	mqd_wbuf_free(b);
	return r;
}

/* The owner a request goes to, as the home routes it. */
static unsigned owner_of(const struct rig_world *w, const struct mqd_req *r)
{
	bool all = false;
	unsigned o;

	if (w->n == 1)
		return 0;
	switch (r->op) {
	case MQD_OP_PUBLISH:
		o = mqd_topics_shard((const char *)r->p.send.dest.p,
		                     r->p.send.dest.len, w->n, &all);
		break;
	case MQD_OP_SUBSCRIBE:
	case MQD_OP_UNSUBSCRIBE:
		o = mqd_topics_shard(r->pattern, r->pattern_len, w->n, &all);
		break;
	case MQD_OP_ACK:
	case MQD_OP_NACK:
		ck_assert_uint_gt(r->p.ack.count, 0);
		o = mqd_id_owner(mqd_load64(r->p.ack.ids));
		break;
	case MQD_OP_CANCEL:
		ck_abort_msg("CANCEL: route it by hand with two owners");
		return 0;
	default:
		o = mqd_shard_of(r->name, r->name_len, w->n);
		break;
	}
	ck_assert(!all);
	return o;
}

/* Hand the request in b to its owner; with run, finish the pass. */
static void submit(struct rig_world *w, struct rig_conn *c, struct mqd_wbuf *b,
                   bool run)
{
	struct mqd_req *r = make_req(c, b);

	ck_assert(mqd_owner_handle(&w->ow[owner_of(w, r)], &r->mail));
	if (run)
		rig_pass(w);
}

void rig_declare(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                 uint8_t flags, const char *name,
                 const struct mqd_declare *settings)
{
	struct mqd_declare d;
	struct mqd_wbuf b;

	memset(&d, 0, sizeof d);
	if (settings)
		d = *settings;
	d.queue.p = (const uint8_t *)name;
	d.queue.len = (uint32_t)strlen(name);
	mqd_wbuf_init(&b);
	mqd_enc_declare(&b, flags, tag, &d);
	submit(w, c, &b, true);
}

/* DECLARE that must answer DECLARED. */
void rig_declare_ok(struct rig_world *w, struct rig_conn *c, const char *name,
                    const struct mqd_declare *settings)
{
	rig_declare(w, c, 1, 0, name, settings);
	rig_span_is(rig_reply(w, c, 1, MQD_OP_DECLARED)->p.declared.queue,
	            name);
}

struct mqd_span rig_span_of(const char *s)
{
	struct mqd_span sp = {(const uint8_t *)s, (uint32_t)strlen(s)};
	return sp;
}

void rig_send_msg(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                  const char *dest, const char *body,
                  const struct rig_sendopt *o)
{
	static const struct rig_sendopt none;
	struct mqd_wbuf b, h;

	if (o == NULL)
		o = &none;
	mqd_wbuf_init(&b);
	mqd_wbuf_init(&h);
	mqd_headers_init(&h);
	if (o->hkey)
		mqd_headers_add(&h, o->hkey, o->hval, strlen(o->hval));
	mqd_enc_send(&b, o->publish ? MQD_OP_PUBLISH : MQD_OP_SEND, o->flags,
	             tag, dest, o->ttl_ms, o->delay_ms, o->priority, h.data,
	             h.len, body, strlen(body));
	mqd_wbuf_free(&h);
	submit(w, c, &b, true);
}

/* SEND that must succeed: the new message's id. */
uint64_t rig_send_ok(struct rig_world *w, struct rig_conn *c, const char *queue,
                     const char *body)
{
	rig_send_msg(w, c, 2, queue, body, NULL);
	return rig_ok_u64(w, c, 2);
}

void rig_publish(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                 const char *topic, const char *body, bool run)
{
	struct mqd_wbuf b;

	mqd_wbuf_init(&b);
	mqd_enc_send(&b, MQD_OP_PUBLISH, 0, tag, topic, 0, 0, 0, NULL, 0, body,
	             strlen(body));
	submit(w, c, &b, run);
}

void rig_get(struct rig_world *w, struct rig_conn *c, uint32_t tag,
             uint8_t flags, const char *queue, uint32_t timeout_ms)
{
	struct mqd_wbuf b;

	mqd_wbuf_init(&b);
	mqd_enc_get(&b, flags, tag, queue, timeout_ms);
	submit(w, c, &b, true);
}

/* GET that must answer MESSAGE. */
struct rig_ev *rig_get_msg(struct rig_world *w, struct rig_conn *c,
                           const char *queue)
{
	rig_get(w, c, 3, 0, queue, 0);
	return rig_reply(w, c, 3, MQD_OP_MESSAGE);
}

void rig_get_empty(struct rig_world *w, struct rig_conn *c, const char *queue)
{
	rig_get(w, c, 3, 0, queue, 0);
	rig_reply(w, c, 3, MQD_OP_EMPTY);
}

void rig_consume(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                 uint8_t flags, const char *queue, uint32_t prefetch, bool run)
{
	struct mqd_wbuf b;

	mqd_wbuf_init(&b);
	mqd_enc_consume(&b, flags, tag, queue, prefetch);
	submit(w, c, &b, run);
}

void rig_cancel(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                uint32_t which)
{
	struct mqd_wbuf b;

	mqd_wbuf_init(&b);
	mqd_enc_cancel(&b, MQD_OP_CANCEL, tag, which);
	submit(w, c, &b, true);
}

void rig_settle(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                uint8_t op, uint8_t flags, uint8_t requeue, uint32_t delay_ms,
                const uint64_t *ids, uint16_t n)
{
	struct mqd_wbuf b;

	mqd_wbuf_init(&b);
	mqd_enc_ack(&b, op, flags, tag, requeue, delay_ms, ids, n);
	submit(w, c, &b, true);
}

/* ACK of one id: how many the owner counted. */
uint32_t rig_ack1(struct rig_world *w, struct rig_conn *c, uint64_t id)
{
	rig_settle(w, c, 4, MQD_OP_ACK, 0, 0, 0, &id, 1);
	return rig_ok_u32(w, c, 4);
}

uint32_t rig_nack1(struct rig_world *w, struct rig_conn *c, uint64_t id,
                   uint8_t requeue, uint32_t delay_ms)
{
	rig_settle(w, c, 5, MQD_OP_NACK, 0, requeue, delay_ms, &id, 1);
	return rig_ok_u32(w, c, 5);
}

void rig_queue_op(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                  uint8_t op, uint8_t flags, const char *queue)
{
	struct mqd_wbuf b;

	mqd_wbuf_init(&b);
	mqd_enc_queue_op(&b, op, flags, tag, queue);
	submit(w, c, &b, true);
}

void rig_bind_op(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                 uint8_t op, const char *queue, const char *pattern)
{
	struct mqd_wbuf b;

	mqd_wbuf_init(&b);
	mqd_enc_bind(&b, op, tag, queue, pattern);
	submit(w, c, &b, true);
}

/* SUBSCRIBE or UNSUBSCRIBE of one shard, as the home makes its parts. */
void rig_subscription(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                      uint8_t op, const char *pattern, uint64_t sub_id)
{
	struct mqd_wbuf b;
	struct mqd_req *r;

	mqd_wbuf_init(&b);
	if (op == MQD_OP_SUBSCRIBE)
		mqd_enc_subscribe(&b, tag, pattern);
	else
		mqd_enc_cancel(&b, MQD_OP_UNSUBSCRIBE, tag, tag);
	r = make_req(c, &b);
	set_pattern(r, rig_span_of(pattern));
	r->sub_id = sub_id;
	ck_assert(mqd_owner_handle(&w->ow[owner_of(w, r)], &r->mail));
	rig_pass(w);
}

/* ---- queries ----------------------------------------------------------- */

/* The queue's row from its owner; false when it does not exist. */
bool rig_row(struct rig_world *w, const char *name, struct mqd_queue_info *out)
{
	unsigned o = mqd_shard_of(name, strlen(name), w->n);
	struct mqd_mail_query q;

	memset(&q, 0, sizeof q);
	q.kind = MQD_QUERY_QUEUES;
	snprintf(q.name, sizeof q.name, "%s", name);
	mqd_ops_query(&w->ow[o], &q);
	ck_assert(!q.failed);
	if (q.n == 0) {
		ck_assert_ptr_null(q.rows);
		return false;
	}
	ck_assert_uint_eq(q.n, 1);
	ck_assert_str_eq(q.rows[0].name, name);
	*out = q.rows[0];
	free(q.rows);
	return true;
}

struct mqd_queue_info rig_info(struct rig_world *w, const char *name)
{
	struct mqd_queue_info i;

	ck_assert_msg(rig_row(w, name, &i), "no queue %s", name);
	return i;
}

/* A name whose owner, among n, is `owner`. */
void rig_name_on(unsigned owner, unsigned n, const char *prefix, char *out,
                 size_t len)
{
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(out, len, "%s%u", prefix, i);
		if (mqd_shard_of(out, strlen(out), n) == owner)
			return;
	}
	ck_abort_msg("no name for owner %u", owner);
}
