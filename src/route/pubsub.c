/*
 * Publish/subscribe on the workers (see pubsub.h for the shape).
 *
 * Waits.  A PUBLISH with copies for queues on other workers, a BIND and an
 * UNBIND are answered only once other workers have done their part: the
 * request is parked in a struct route_wait on this worker and counted in
 * its peer's `waits`, so a connection that closes meanwhile keeps its
 * CLOSE_DONE (and so its struct) until the answer is out.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "net/conn.h"
#include "proto/proto.h"
#include "route/pubsub.h"
#include "route/topics.h"
#include "server/server.h"
#include "store/ops.h"
#include "store/queue.h"
#include "core/shard.h"
#include "worker/worker.h"

enum { ENTRY_SUB = 1, ENTRY_BIND = 2 };

/* A subscription, as its shard holds it (one per shard holding it). */
struct mqd_sub_entry {
	int kind; /* ENTRY_SUB; first, like struct mqd_binding's */
	struct mqd_sub_entry *pnext; /* in its peer's list */
	struct mqd_peer *peer;
	uint32_t tag;
	uint64_t sub_id;
	char pattern[256];
	uint8_t len;
};

/* A binding of a queue to a pattern, as a shard holds it. */
struct mqd_binding {
	int kind; /* ENTRY_BIND */
	struct mqd_binding *next; /* the worker's list */
	char queue[256];
	uint8_t qlen;
	char pattern[256];
	uint8_t plen;
};

enum route_kind { ROUTE_BIND_ADD, ROUTE_BIND_DEL, ROUTE_COPY, ROUTE_DROP_QUEUE };
enum wait_kind { WAIT_PUBLISH, WAIT_BIND, WAIT_UNBIND };

/* A request answered when every route mail it sent has come back. */
struct route_wait {
	int kind;
	struct mqd_req *req;
	struct mqd_peer *peer;
	unsigned pending;
	uint32_t count; /* receivers / bindings found */
};

struct mqd_mail_route {
	struct mqd_mail mail;
	int kind;
	struct route_wait *wait; /* NULL: nobody waits for the answer */
	unsigned back;           /* the worker waiting */
	char queue[256];
	uint8_t qlen;
	char pattern[256];
	uint8_t plen;
	struct mqd_msg *msg;     /* ROUTE_COPY */
	uint32_t result;
};

/* ---- shards -------------------------------------------------------------- */

unsigned mqd_pubsub_shard(const char *name, size_t len, unsigned nworkers,
                          bool *all)
{
	const char *dot = memchr(name, '.', len);
	size_t first = dot ? (size_t)(dot - name) : len;

	*all = first == 1 && (name[0] == '*' || name[0] == '>');
	return *all ? 0 : mqd_shard_of(name, first, nworkers);
}

int mqd_pubsub_init(struct mqd_worker *w)
{
	w->topics = mqd_topics_new();
	return w->topics ? 0 : -1;
}

void mqd_pubsub_free(struct mqd_worker *w)
{
	/* Subscriptions went with their peers; what is left are bindings,
	 * which the worker's list owns. */
	mqd_topics_free(w->topics, NULL);
	w->topics = NULL;
	while (w->bindings) {
		struct mqd_binding *b = w->bindings;
		w->bindings = b->next;
		free(b);
	}
}

void mqd_pubsub_free_mail(struct mqd_mail *m)
{
	struct mqd_mail_route *r = (struct mqd_mail_route *)m;

	if (r->msg)
		mqd_msg_free(r->msg);
	free(r);
}

/* ---- answering ----------------------------------------------------------- */

static void answer_error(struct mqd_worker *w, struct mqd_req *r, int code,
                         const char *msg)
{
	mqd_enc_error(&r->reply, r->tag, (uint16_t)code, msg);
	mqd_worker_answer(w, r);
}

static void answer_ok(struct mqd_worker *w, struct mqd_req *r)
{
	if (r->flags & MQD_F_QUIET)
		r->quiet_ok = true;
	else if (r->parent == NULL)
		mqd_enc_ok(&r->reply, r->tag);
	mqd_worker_answer(w, r);
}

static struct route_wait *wait_new(struct mqd_worker *w, struct mqd_req *r,
                                   int kind)
{
	struct mqd_peer *p = mqd_worker_peer(w, r->conn);
	struct route_wait *wt = p ? calloc(1, sizeof *wt) : NULL;

	if (wt == NULL)
		return NULL;
	wt->kind = kind;
	wt->req = r;
	wt->peer = p;
	p->waits++;
	return wt;
}

static void wait_finish(struct mqd_worker *w, struct route_wait *wt)
{
	struct mqd_req *r = wt->req;
	struct mqd_peer *p = wt->peer;

	switch (wt->kind) {
	case WAIT_PUBLISH:
		if (r->flags & MQD_F_QUIET)
			r->quiet_ok = true;
		else
			mqd_enc_ok_u32(&r->reply, r->tag, wt->count);
		mqd_worker_answer(w, r);
		break;
	case WAIT_BIND:
		answer_ok(w, r);
		break;
	case WAIT_UNBIND:
		if (wt->count == 0)
			answer_error(w, r, MQD_ERR_NOT_FOUND,
			             "no such binding");
		else
			answer_ok(w, r);
		break;
	default:
		break;
	}
	free(wt);
	mqd_worker_wait_done(w, p);
}

static struct mqd_mail_route *route_new(int kind, const char *queue,
                                        size_t qlen, const char *pattern,
                                        size_t plen)
{
	struct mqd_mail_route *m = calloc(1, sizeof *m);

	if (m == NULL)
		return NULL;
	m->mail.type = MQD_MAIL_ROUTE;
	m->kind = kind;
	memcpy(m->queue, queue, qlen);
	m->qlen = (uint8_t)qlen;
	if (pattern) {
		memcpy(m->pattern, pattern, plen);
		m->plen = (uint8_t)plen;
	}
	return m;
}

static void route_handle(struct mqd_worker *w, struct mqd_mail_route *m);

/* Send m to worker `to` (or handle it here), answering to wt. */
static void route_send(struct mqd_worker *w, unsigned to,
                       struct mqd_mail_route *m, struct route_wait *wt)
{
	m->wait = wt;
	m->back = w->index;
	if (wt)
		wt->pending++;
	if (to == w->index)
		route_handle(w, m);
	else
		mqd_worker_post(&w->srv->workers[to], &m->mail);
}

/* ---- bindings on a shard --------------------------------------------------- */

static struct mqd_binding **find_binding(struct mqd_worker *w,
                                         const struct mqd_mail_route *m)
{
	struct mqd_binding **pp;

	for (pp = &w->bindings; *pp; pp = &(*pp)->next)
		if ((*pp)->qlen == m->qlen && (*pp)->plen == m->plen &&
		    memcmp((*pp)->queue, m->queue, m->qlen) == 0 &&
		    memcmp((*pp)->pattern, m->pattern, m->plen) == 0)
			return pp;
	return pp;
}

static uint32_t bind_add(struct mqd_worker *w, const struct mqd_mail_route *m)
{
	struct mqd_binding **pp = find_binding(w, m), *b;

	if (*pp != NULL)
		return 1; /* bound already: BIND is idempotent */
	b = calloc(1, sizeof *b);
	if (b == NULL)
		return 0;
	b->kind = ENTRY_BIND;
	memcpy(b->queue, m->queue, m->qlen);
	b->qlen = m->qlen;
	memcpy(b->pattern, m->pattern, m->plen);
	b->plen = m->plen;
	if (mqd_topics_add(w->topics, b->pattern, b->plen, b) < 0) {
		free(b);
		return 0;
	}
	b->next = w->bindings;
	w->bindings = b;
	return 1;
}

static void bind_remove(struct mqd_worker *w, struct mqd_binding **pp)
{
	struct mqd_binding *b = *pp;

	(void)mqd_topics_remove(w->topics, b->pattern, b->plen, b);
	*pp = b->next;
	free(b);
}

static uint32_t bind_del(struct mqd_worker *w, const struct mqd_mail_route *m)
{
	struct mqd_binding **pp = find_binding(w, m);

	if (*pp == NULL)
		return 0;
	bind_remove(w, pp);
	return 1;
}

static void drop_queue(struct mqd_worker *w, const struct mqd_mail_route *m)
{
	struct mqd_binding **pp = &w->bindings;

	while (*pp) {
		if ((*pp)->qlen == m->qlen &&
		    memcmp((*pp)->queue, m->queue, m->qlen) == 0)
			bind_remove(w, pp);
		else
			pp = &(*pp)->next;
	}
}

/* A copy for a bound queue owned here: 1 if the queue took it. */
static uint32_t store_copy(struct mqd_worker *w, struct mqd_mail_route *m)
{
	struct mqd_queue *q = mqd_qtable_get(&w->queues, m->queue, m->qlen);
	struct mqd_msg *msg = m->msg;

	m->msg = NULL;
	/* A bound queue is never auto-created: it was deleted meanwhile. */
	if (q == NULL || mqd_ops_store(w, q, msg) != 0) {
		mqd_msg_free(msg);
		return 0;
	}
	mqd_ops_dispatch(w, q);
	return 1;
}

static void route_handle(struct mqd_worker *w, struct mqd_mail_route *m)
{
	switch (m->kind) {
	case ROUTE_BIND_ADD:
		m->result = bind_add(w, m);
		break;
	case ROUTE_BIND_DEL:
		m->result = bind_del(w, m);
		break;
	case ROUTE_COPY:
		m->result = store_copy(w, m);
		break;
	case ROUTE_DROP_QUEUE:
		drop_queue(w, m);
		break;
	default:
		break;
	}
	if (m->wait == NULL) {
		mqd_pubsub_free_mail(&m->mail);
		return;
	}
	m->mail.type = MQD_MAIL_ROUTE_DONE;
	if (m->back == w->index)
		mqd_pubsub_mail(w, &m->mail);
	else
		mqd_worker_post(&w->srv->workers[m->back], &m->mail);
}

void mqd_pubsub_mail(struct mqd_worker *w, struct mqd_mail *mail)
{
	struct mqd_mail_route *m = (struct mqd_mail_route *)mail;
	struct route_wait *wt;

	if (m->mail.type == MQD_MAIL_ROUTE) {
		route_handle(w, m);
		return;
	}
	wt = m->wait;
	wt->count += m->result;
	mqd_pubsub_free_mail(&m->mail);
	if (--wt->pending == 0)
		wait_finish(w, wt);
}

void mqd_pubsub_queue_deleted(struct mqd_worker *w, const char *name,
                              size_t len)
{
	for (unsigned i = 0; i < w->srv->nworkers; i++) {
		struct mqd_mail_route *m =
			route_new(ROUTE_DROP_QUEUE, name, len, NULL, 0);
		if (m == NULL) {
			mqd_log_error("queue %.*s: out of memory dropping its "
			              "bindings on worker %u",
			              (int)len, name, i);
			continue;
		}
		route_send(w, i, m, NULL);
	}
}

/* BIND and UNBIND, on the queue's owner: update every shard of the pattern
 * and answer when they all have. */
static void bind_op(struct mqd_worker *w, struct mqd_req *r, int kind,
                    int wait_kind)
{
	struct mqd_queue *q = mqd_qtable_get(&w->queues, r->name, r->name_len);
	struct route_wait *wt;
	bool all;
	unsigned shard, n = w->srv->nworkers;

	if (q == NULL) {
		answer_error(w, r, MQD_ERR_NOT_FOUND, "no such queue");
		return;
	}
	wt = wait_new(w, r, wait_kind);
	if (wt == NULL) {
		answer_error(w, r, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	shard = mqd_pubsub_shard(r->pattern, r->pattern_len, n, &all);
	wt->pending = 1; /* held until every mail is sent */
	for (unsigned i = all ? 0 : shard; i < (all ? n : shard + 1); i++) {
		struct mqd_mail_route *m = route_new(kind, r->name, r->name_len,
		                                     r->pattern, r->pattern_len);
		if (m == NULL) {
			mqd_log_error("out of memory binding %s", r->name);
			continue;
		}
		route_send(w, i, m, wt);
	}
	if (--wt->pending == 0)
		wait_finish(w, wt);
}

void mqd_pubsub_exec_bind(struct mqd_worker *w, struct mqd_req *r)
{
	bind_op(w, r, ROUTE_BIND_ADD, WAIT_BIND);
}

void mqd_pubsub_exec_unbind(struct mqd_worker *w, struct mqd_req *r)
{
	bind_op(w, r, ROUTE_BIND_DEL, WAIT_UNBIND);
}

/* ---- subscriptions ----------------------------------------------------------- */

void mqd_pubsub_exec_subscribe(struct mqd_worker *w, struct mqd_req *r)
{
	struct mqd_peer *p = mqd_worker_peer(w, r->conn);
	struct mqd_sub_entry *e = p ? calloc(1, sizeof *e) : NULL;

	if (e == NULL) {
		answer_error(w, r, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	e->kind = ENTRY_SUB;
	e->peer = p;
	e->tag = r->tag;
	e->sub_id = r->sub_id;
	memcpy(e->pattern, r->pattern, r->pattern_len);
	e->len = r->pattern_len;
	if (mqd_topics_add(w->topics, e->pattern, e->len, e) < 0) {
		free(e);
		answer_error(w, r, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	e->pnext = p->subs;
	p->subs = e;
	answer_ok(w, r);
}

static void sub_remove(struct mqd_worker *w, struct mqd_peer *p,
                       struct mqd_sub_entry **pp)
{
	struct mqd_sub_entry *e = *pp;

	(void)mqd_topics_remove(w->topics, e->pattern, e->len, e);
	*pp = e->pnext;
	(void)p;
	free(e);
}

void mqd_pubsub_exec_unsubscribe(struct mqd_worker *w, struct mqd_req *r)
{
	struct mqd_peer *p = mqd_idmap_get(&w->peers, r->conn->id);

	for (struct mqd_sub_entry **pp = p ? &p->subs : NULL; pp && *pp;
	     pp = &(*pp)->pnext) {
		if ((*pp)->sub_id == r->sub_id) {
			sub_remove(w, p, pp);
			break;
		}
	}
	answer_ok(w, r);
}

void mqd_pubsub_peer_closed(struct mqd_worker *w, struct mqd_peer *p)
{
	while (p->subs)
		sub_remove(w, p, &p->subs);
}

/* ---- publish --------------------------------------------------------------- */

struct matches {
	struct mqd_sub_entry **subs;
	size_t nsubs, capsubs;
	struct mqd_binding **binds;
	size_t nbinds, capbinds;
	bool oom;
};

static bool grow(void ***arr, size_t *cap, size_t n)
{
	if (n < *cap)
		return true;
	size_t c = *cap ? *cap * 2 : 16;
	void **a = realloc(*arr, c * sizeof *a);
	if (a == NULL)
		return false;
	*arr = a;
	*cap = c;
	return true;
}

static void collect_cb(void *arg, void *value)
{
	struct matches *mt = arg;

	if (*(int *)value == ENTRY_SUB) {
		if (!grow((void ***)&mt->subs, &mt->capsubs, mt->nsubs)) {
			mt->oom = true;
			return;
		}
		mt->subs[mt->nsubs++] = value;
		return;
	}
	struct mqd_binding *b = value;
	/* A queue bound by two matching patterns still gets one copy. */
	for (size_t i = 0; i < mt->nbinds; i++)
		if (mt->binds[i]->qlen == b->qlen &&
		    memcmp(mt->binds[i]->queue, b->queue, b->qlen) == 0)
			return;
	if (!grow((void ***)&mt->binds, &mt->capbinds, mt->nbinds)) {
		mt->oom = true;
		return;
	}
	mt->binds[mt->nbinds++] = b;
}

/* The DELIVER frame, once: its first 10 bytes (length, op, flags, tag 0)
 * into head, the rest (whose tail is the body) into a shared buffer for
 * every subscriber and every bound queue's copy.  NULL out of memory. */
static struct mqd_shared *encode_once(struct mqd_worker *w,
                                      const struct mqd_send *s,
                                      uint8_t head[MQD_FRAME_HDR_SIZE])
{
	struct mqd_message v;
	struct mqd_wbuf b;
	struct mqd_shared *sh;

	memset(&v, 0, sizeof v);
	v.id = mqd_worker_new_id(w);
	v.source = s->dest;
	v.attempts = 1;
	v.timestamp_ms = mqd_now_ms();
	v.priority = s->priority;
	v.nheaders = s->nheaders;
	v.headers = s->headers;
	v.body = s->body;
	mqd_wbuf_init(&b);
	mqd_enc_message(&b, MQD_OP_DELIVER, 0, &v);
	sh = b.oom ? NULL : malloc(sizeof *sh + b.len - MQD_FRAME_HDR_SIZE);
	if (sh == NULL) {
		mqd_wbuf_free(&b);
		mqd_log_error("out of memory publishing to %.*s",
		              (int)s->dest.len, (const char *)s->dest.p);
		return NULL;
	}
	atomic_init(&sh->refs, 1);
	sh->len = b.len - MQD_FRAME_HDR_SIZE;
	memcpy(sh->data, b.data + MQD_FRAME_HDR_SIZE, sh->len);
	memcpy(head, b.data, MQD_FRAME_HDR_SIZE);
	mqd_wbuf_free(&b);
	return sh;
}

/* Payloads up to this are copied into each subscriber's batch; larger
 * ones go by reference, one mail per subscriber. */
#define FANOUT_COPY_MAX 4096

/* One DELIVER for every subscriber: its own 10-byte header, and the
 * payload copied into the subscriber's output batch (small) or by
 * reference (large). */
static void fan_out(struct mqd_worker *w, struct mqd_shared *sh,
                    const uint8_t head[MQD_FRAME_HDR_SIZE], struct matches *mt)
{
	uint8_t h[MQD_FRAME_HDR_SIZE];

	memcpy(h, head, sizeof h);
	for (size_t i = 0; i < mt->nsubs; i++) {
		struct mqd_sub_entry *e = mt->subs[i];
		if (sh->len <= FANOUT_COPY_MAX) {
			mqd_store32(h + 6, e->tag);
			if (mqd_worker_push_frame(w, e->peer, e->tag, e->sub_id, 0, h,
			                          sizeof h, sh->data, sh->len) < 0)
				continue; /* at-most-once: this subscriber misses it */
			continue;
		}
		struct mqd_mail_output *o = malloc(sizeof *o + MQD_FRAME_HDR_SIZE);
		if (o == NULL)
			continue; /* at-most-once: this subscriber misses it */
		memset(o, 0, sizeof *o);
		o->mail.type = MQD_MAIL_OUTPUT;
		o->owner = w->index;
		o->tag = e->tag;
		o->sub_id = e->sub_id;
		o->len = MQD_FRAME_HDR_SIZE;
		memcpy(o->data, head, MQD_FRAME_HDR_SIZE);
		mqd_store32(o->data + 6, e->tag);
		mqd_shared_ref(sh);
		o->shared = sh;
		mqd_worker_push(w, e->peer, o);
	}
}

void mqd_pubsub_exec_publish(struct mqd_worker *w, struct mqd_req *r)
{
	const struct mqd_send *s = &r->p.send;
	struct matches mt;
	struct route_wait *wt = NULL;
	struct mqd_shared *sh = NULL;
	uint8_t head[MQD_FRAME_HDR_SIZE];

	memset(&mt, 0, sizeof mt);
	mqd_topics_match(w->topics, (const char *)s->dest.p, s->dest.len,
	                 collect_cb, &mt);
	if (mt.oom)
		mqd_log_error("out of memory matching a publish: some "
		              "receivers missed it");
	if (mt.nsubs + mt.nbinds > 0)
		sh = encode_once(w, s, head);
	if (sh == NULL)
		mt.nsubs = mt.nbinds = 0; /* out of memory: nobody gets it */
	if (mt.nsubs > 0)
		fan_out(w, sh, head, &mt);
	if (mt.nbinds > 0 && (wt = wait_new(w, r, WAIT_PUBLISH)) != NULL) {
		wt->count = (uint32_t)mt.nsubs;
		wt->pending = 1; /* held until every copy is sent */
		for (size_t i = 0; i < mt.nbinds; i++) {
			struct mqd_binding *b = mt.binds[i];
			struct mqd_mail_route *m =
				route_new(ROUTE_COPY, b->queue, b->qlen, NULL, 0);
			/* The body by reference: the tail of the payload. */
			struct mqd_msg *msg =
				m ? mqd_msg_new_shared(s->headers.p, s->headers.len,
				                       s->nheaders, sh, s->body.len)
				  : NULL;
			if (msg == NULL) {
				/* Memory limit or allocation: no copy. */
				free(m);
				continue;
			}
			msg->priority = s->priority;
			msg->ttl_ms = s->ttl_ms;
			msg->delay_ms = s->delay_ms;
			m->msg = msg;
			route_send(w, mqd_shard_of(b->queue, b->qlen,
			                           w->srv->nworkers),
			           m, wt);
		}
	}
	if (wt != NULL) {
		if (--wt->pending == 0)
			wait_finish(w, wt);
	} else {
		if (r->flags & MQD_F_QUIET)
			r->quiet_ok = true;
		else
			mqd_enc_ok_u32(&r->reply, r->tag, (uint32_t)mt.nsubs);
		mqd_worker_answer(w, r);
	}
	mqd_shared_unref(sh);
	free(mt.subs);
	free(mt.binds);
}
