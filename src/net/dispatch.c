#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "net/conn.h"
#include "net/dispatch.h"
#include "server/server.h"
#include "store/message.h"
#include "route/pubsub.h"
#include "store/ops.h"
#include "core/shard.h"
#include "worker/worker.h"

/* Answer f at once, in order, with an error. */
static void reply_error(struct mqd_conn *c, const struct mqd_frame *f,
                        int code, const char *msg)
{
	struct mqd_req *r = mqd_req_new(c, f, 0);

	if (r == NULL) {
		mqd_conn_fatal(c, 0, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	mqd_conn_req_error(r, code, msg);
}

/* Execute r on the owner of its queue: here, or through its mailbox. */
static void route(struct mqd_conn *c, struct mqd_req *r, unsigned owner)
{
	struct mqd_worker *w = c->home;

	mqd_conn_touch(c, owner);
	if (owner == w->index)
		mqd_ops_exec(w, r);
	else
		mqd_worker_post(&w->srv->workers[owner], &r->mail);
}

static unsigned owner_of(const struct mqd_conn *c, const char *name,
                         size_t len)
{
	return mqd_shard_of(name, len, c->home->srv->nworkers);
}

static void set_name(struct mqd_req *r, struct mqd_span s)
{
	memcpy(r->name, s.p, s.len);
	r->name[s.len] = '\0';
	r->name_len = (uint8_t)s.len;
}

/* A request whose payload is copied into it and parsed again there, so its
 * spans stay valid on the owner. */
static struct mqd_req *req_copy(struct mqd_conn *c, const struct mqd_frame *f)
{
	struct mqd_req *r = mqd_req_new(c, f, f->payload.len);
	struct mqd_frame copy = *f;
	const char *why;

	if (r == NULL) {
		mqd_conn_fatal(c, 0, MQD_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	memcpy(r->frame, f->payload.p, f->payload.len);
	copy.payload.p = r->frame;
	(void)mqd_proto_parse(&copy, &r->p, &why); /* parsed before: cannot fail */
	return r;
}

/* ---- handlers -------------------------------------------------------- */

static void on_hello(struct mqd_conn *c, const struct mqd_frame *f,
                     const union mqd_payload *p)
{
	struct mqd_server *s = c->home->srv;
	struct mqd_req *r;
	char who[256];

	if (c->state != MQD_CONN_HELLO) {
		reply_error(c, f, MQD_ERR_BAD_ARGUMENT, "HELLO already received");
		return;
	}
	if (p->hello.version != MQD_PROTO_VERSION) {
		mqd_conn_fatal(c, f->tag, MQD_ERR_UNSUPPORTED_VERSION,
		               "this server speaks protocol version 1");
		return;
	}
	if (atomic_load(&s->stopping) || atomic_load(&s->refuse_new)) {
		mqd_conn_fatal(c, f->tag, MQD_ERR_SHUTTING_DOWN,
		               "server shutting down");
		return;
	}
	if (c->over_limit) {
		mqd_conn_fatal(c, f->tag, MQD_ERR_LIMIT,
		               "too many connections (max_connections)");
		return;
	}
	memcpy(who, p->hello.client.p, p->hello.client.len);
	who[p->hello.client.len] = '\0';
	snprintf(c->client, sizeof c->client, "%s", who);
	memcpy(who, p->hello.user.p, p->hello.user.len);
	who[p->hello.user.len] = '\0';
	snprintf(c->user, sizeof c->user, "%s", who);
	c->state = MQD_CONN_OPEN;
	r = mqd_req_new(c, f, 0);
	if (r == NULL) {
		mqd_conn_fatal(c, 0, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	mqd_enc_welcome(&r->reply, f->tag, MQD_SERVER_NAME, c->home->cfg.max_frame,
	                c->id);
	mqd_log_debug("conn %llu (%s): hello from client '%s'",
	              (unsigned long long)c->id, c->peer, c->client);
	mqd_conn_req_done(r);
}

static void on_ping(struct mqd_conn *c, const struct mqd_frame *f,
                    const union mqd_payload *p)
{
	struct mqd_req *r = mqd_req_new(c, f, 0);

	if (r == NULL) {
		mqd_conn_fatal(c, 0, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	mqd_enc_raw(&r->reply, MQD_OP_PONG, 0, f->tag, p->raw.p, p->raw.len);
	mqd_conn_req_done(r);
}

static void on_declare(struct mqd_conn *c, const struct mqd_frame *f,
                       const union mqd_payload *p)
{
	struct mqd_req *r = req_copy(c, f);
	char tmp[64];

	if (r == NULL)
		return;
	if (p->declare.queue.len == 0) {
		/* Server-named: unique for the server's run. */
		int n = snprintf(tmp, sizeof tmp, "tmp.%llx.%x",
		                 (unsigned long long)c->id, ++c->tmp_seq);
		struct mqd_span s = {(const uint8_t *)tmp, (uint32_t)n};
		set_name(r, s);
	} else {
		set_name(r, p->declare.queue);
	}
	route(c, r, owner_of(c, r->name, r->name_len));
}

/* DELETE, PURGE, GET: routed by their queue name. */
static void on_queue_op(struct mqd_conn *c, const struct mqd_frame *f,
                        const union mqd_payload *p)
{
	struct mqd_req *r = req_copy(c, f);

	if (r == NULL)
		return;
	/* queue_ref, get and consume all start with the queue span. */
	set_name(r, f->op == MQD_OP_GET ? p->get.queue : p->queue_ref.queue);
	route(c, r, owner_of(c, r->name, r->name_len));
}

static void on_send(struct mqd_conn *c, const struct mqd_frame *f,
                    const union mqd_payload *p)
{
	const struct mqd_send *s = &p->send;
	struct mqd_req *r;

	r = mqd_req_new(c, f, 0);
	if (r == NULL) {
		mqd_conn_fatal(c, 0, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	r->msg = mqd_msg_new(s->headers.p, s->headers.len, s->nheaders,
	                     s->body.p, s->body.len);
	if (r->msg == NULL) {
		/* Refused before anything is stored anywhere. */
		if (errno == ENOBUFS)
			mqd_conn_req_error(r, MQD_ERR_MEMORY_LIMIT,
			                   "server memory limit (max_memory) "
			                   "reached");
		else
			mqd_conn_req_error(r, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	r->msg->priority = s->priority;
	r->msg->ttl_ms = s->ttl_ms;
	r->msg->delay_ms = s->delay_ms;
	set_name(r, s->dest);
	route(c, r, owner_of(c, r->name, r->name_len));
}

static void unsubscribe(struct mqd_conn *c, const struct mqd_frame *f,
                        uint32_t which);

static bool tag_in_use(struct mqd_conn *c, uint32_t tag)
{
	return mqd_conn_find_consumer(c, tag) != NULL ||
	       mqd_conn_find_sub(c, tag) != NULL;
}

static void on_consume(struct mqd_conn *c, const struct mqd_frame *f,
                       const union mqd_payload *p)
{
	struct mqd_conn_consumer *cc;
	struct mqd_req *r;
	unsigned owner;

	if (f->tag == 0 || tag_in_use(c, f->tag)) {
		reply_error(c, f, MQD_ERR_BAD_ARGUMENT,
		            f->tag == 0 ? "a CONSUME needs a non-zero tag"
		                        : "tag already names a consumer or "
		                          "subscription");
		return;
	}
	cc = calloc(1, sizeof *cc);
	if (cc != NULL)
		cc->tag = f->tag;
	if (cc == NULL || mqd_conn_add_consumer(c, cc) < 0) {
		free(cc);
		mqd_conn_fatal(c, 0, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	r = req_copy(c, f);
	if (r == NULL) {
		mqd_conn_forget_consumer(c, f->tag); /* frees cc */
		return;
	}
	set_name(r, p->consume.queue);
	owner = owner_of(c, r->name, r->name_len);
	cc->owner = owner;
	cc->auto_ack = (f->flags & MQD_F_AUTO_ACK) != 0;
	route(c, r, owner);
}

static void on_cancel(struct mqd_conn *c, const struct mqd_frame *f,
                      const union mqd_payload *p)
{
	struct mqd_conn_consumer *cc =
		mqd_conn_find_consumer(c, p->cancel.tag);
	struct mqd_req *r;
	unsigned owner;

	if (cc == NULL && mqd_conn_find_sub(c, p->cancel.tag) != NULL) {
		/* CANCEL ends a subscription too (PROTOCOL.md 4.2). */
		unsubscribe(c, f, p->cancel.tag);
		return;
	}
	if (cc == NULL) {
		reply_error(c, f, MQD_ERR_NOT_FOUND, "no consumer with that tag");
		return;
	}
	owner = cc->owner;
	r = req_copy(c, f);
	if (r == NULL)
		return;
	mqd_conn_forget_consumer(c, p->cancel.tag);
	route(c, r, owner);
}

/* ACK and NACK: ids name their owner in their low byte; one part per owner,
 * all created before any is routed so a part answered at once cannot
 * complete the whole early. */
static void on_settle(struct mqd_conn *c, const struct mqd_frame *f,
                      const union mqd_payload *p)
{
	const struct mqd_ack *a = &p->ack;
	unsigned nw = c->home->srv->nworkers;
	uint16_t per[256] = {0};
	struct mqd_req *parts[256] = {0};
	unsigned owners = 0, only = 0;
	struct mqd_req *r;

	for (uint16_t i = 0; i < a->count; i++) {
		unsigned o = mqd_id_owner(mqd_load64(a->ids + 8u * i));
		if (o < nw && per[o]++ == 0) {
			owners++;
			only = o;
		}
	}
	if (owners <= 1) {
		r = req_copy(c, f);
		if (r == NULL)
			return;
		if (owners == 1) {
			route(c, r, only);
		} else {
			r->count = 0;
			if (f->flags & MQD_F_QUIET)
				r->quiet_ok = true;
			else
				mqd_enc_ok_u32(&r->reply, f->tag, 0);
			mqd_conn_req_done(r);
		}
		return;
	}
	r = mqd_req_new(c, f, 0);
	for (unsigned o = 0; r != NULL && o < nw; o++) {
		if (per[o] == 0)
			continue;
		parts[o] = mqd_req_part(r, 8u * per[o]);
		if (parts[o] == NULL)
			break;
		parts[o]->p.ack.requeue = a->requeue;
		parts[o]->p.ack.delay_ms = a->delay_ms;
		parts[o]->p.ack.ids = parts[o]->frame;
	}
	if (r == NULL || r->parts != owners) {
		for (unsigned o = 0; o < nw; o++)
			mqd_req_free(parts[o]);
		if (r != NULL) {
			r->parts = 0;
			mqd_conn_req_error(r, MQD_ERR_INTERNAL, "out of memory");
		} else {
			mqd_conn_fatal(c, 0, MQD_ERR_INTERNAL, "out of memory");
		}
		return;
	}
	for (uint16_t i = 0; i < a->count; i++) {
		const uint8_t *id = a->ids + 8u * i;
		unsigned o = mqd_id_owner(mqd_load64(id));
		if (o < nw) {
			struct mqd_req *part = parts[o];
			memcpy(part->frame + 8u * part->p.ack.count++, id, 8);
		}
	}
	for (unsigned o = 0; o < nw; o++)
		if (parts[o])
			route(c, parts[o], o);
}

/* One part per shard holding pattern (all when it starts with a
 * wildcard), all made before any is routed. */
static void to_shards(struct mqd_conn *c, struct mqd_req *r,
                      const struct mqd_conn_sub *cs)
{
	unsigned n = c->home->srv->nworkers, first, last;
	struct mqd_req *parts[256] = {0};
	bool all;

	first = mqd_pubsub_shard(cs->pattern, cs->len, n, &all);
	last = all ? n - 1 : first;
	if (all)
		first = 0;
	for (unsigned i = first; i <= last; i++) {
		parts[i] = mqd_req_part(r, 0);
		if (parts[i] == NULL) {
			for (unsigned j = first; j < i; j++)
				mqd_req_free(parts[j]);
			r->parts = 0;
			mqd_conn_req_error(r, MQD_ERR_INTERNAL, "out of memory");
			return;
		}
		memcpy(parts[i]->pattern, cs->pattern, cs->len);
		parts[i]->pattern_len = cs->len;
		parts[i]->sub_id = cs->sub_id;
	}
	for (unsigned i = first; i <= last; i++)
		route(c, parts[i], i);
}

static void on_subscribe(struct mqd_conn *c, const struct mqd_frame *f,
                         const union mqd_payload *p)
{
	struct mqd_conn_sub *cs;
	struct mqd_req *r;

	if (f->tag == 0 || tag_in_use(c, f->tag)) {
		reply_error(c, f, MQD_ERR_BAD_ARGUMENT,
		            f->tag == 0 ? "a SUBSCRIBE needs a non-zero tag"
		                        : "tag already names a subscription "
		                          "or consumer");
		return;
	}
	cs = calloc(1, sizeof *cs);
	if (cs != NULL)
		cs->tag = f->tag;
	if (cs == NULL || mqd_conn_add_sub(c, cs) < 0) {
		free(cs);
		mqd_conn_fatal(c, 0, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	r = mqd_req_new(c, f, 0);
	if (r == NULL) {
		mqd_conn_forget_sub(c, f->tag); /* frees cs */
		mqd_conn_fatal(c, 0, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	/* Unique in the server's run: conn id in the high bits. */
	cs->sub_id = (c->id << 20) | (++c->tmp_seq & 0xfffff);
	memcpy(cs->pattern, p->subscribe.pattern.p, p->subscribe.pattern.len);
	cs->len = (uint8_t)p->subscribe.pattern.len;
	to_shards(c, r, cs);
}

/* UNSUBSCRIBE, and CANCEL naming a subscription. */
static void unsubscribe(struct mqd_conn *c, const struct mqd_frame *f,
                        uint32_t which)
{
	struct mqd_conn_sub *cs = mqd_conn_find_sub(c, which), copy;
	struct mqd_req *r;

	if (cs == NULL) {
		reply_error(c, f, MQD_ERR_NOT_FOUND,
		            "no subscription with that tag");
		return;
	}
	r = mqd_req_new(c, f, 0);
	if (r == NULL) {
		mqd_conn_fatal(c, 0, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	copy = *cs;
	/* From now on deliveries for it are dropped here, so none follows
	 * the OK. */
	mqd_conn_forget_sub(c, which);
	r->op = MQD_OP_UNSUBSCRIBE;
	to_shards(c, r, &copy);
}

static void on_unsubscribe(struct mqd_conn *c, const struct mqd_frame *f,
                           const union mqd_payload *p)
{
	unsubscribe(c, f, p->cancel.tag);
}

static void on_publish(struct mqd_conn *c, const struct mqd_frame *f,
                       const union mqd_payload *p)
{
	struct mqd_req *r = req_copy(c, f);
	bool all;

	if (r == NULL)
		return;
	route(c, r,
	      mqd_pubsub_shard((const char *)p->send.dest.p, p->send.dest.len,
	                       c->home->srv->nworkers, &all));
}

/* BIND and UNBIND go to the queue's owner, which updates the shards. */
static void on_bind(struct mqd_conn *c, const struct mqd_frame *f,
                    const union mqd_payload *p)
{
	struct mqd_req *r = req_copy(c, f);

	if (r == NULL)
		return;
	set_name(r, p->bind.queue);
	memcpy(r->pattern, p->bind.pattern.p, p->bind.pattern.len);
	r->pattern_len = (uint8_t)p->bind.pattern.len;
	route(c, r, owner_of(c, r->name, r->name_len));
}

typedef void (*handler_fn)(struct mqd_conn *, const struct mqd_frame *,
                           const union mqd_payload *);

static const struct {
	uint8_t op;
	handler_fn fn;
} handlers[] = {
	{MQD_OP_HELLO, on_hello},       {MQD_OP_PING, on_ping},
	{MQD_OP_DECLARE, on_declare},   {MQD_OP_DELETE, on_queue_op},
	{MQD_OP_PURGE, on_queue_op},    {MQD_OP_BIND, on_bind},
	{MQD_OP_UNBIND, on_bind},       {MQD_OP_SEND, on_send},
	{MQD_OP_PUBLISH, on_publish},   {MQD_OP_GET, on_queue_op},
	{MQD_OP_CONSUME, on_consume},   {MQD_OP_CANCEL, on_cancel},
	{MQD_OP_ACK, on_settle},        {MQD_OP_NACK, on_settle},
	{MQD_OP_SUBSCRIBE, on_subscribe},
	{MQD_OP_UNSUBSCRIBE, on_unsubscribe},
};

void mqd_dispatch_frame(struct mqd_conn *c, const struct mqd_frame *f)
{
	handler_fn fn = NULL;
	union mqd_payload p;
	const char *why = "";
	int rc;

	for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
		if (handlers[i].op == f->op)
			fn = handlers[i].fn;
	if (c->state == MQD_CONN_HELLO && f->op != MQD_OP_HELLO) {
		mqd_conn_fatal(c, f->tag, MQD_ERR_HELLO_REQUIRED,
		               "the first frame must be HELLO");
		return;
	}
	if (fn == NULL) {
		reply_error(c, f, MQD_ERR_UNKNOWN_OP, "unknown op");
		return;
	}
	rc = mqd_proto_parse(f, &p, &why);
	if (rc != 0) {
		/* The framing is intact: answer and keep the connection (a
		 * malformed HELLO may be sent again, corrected). */
		reply_error(c, f, rc, why);
		return;
	}
	fn(c, f, &p);
}
