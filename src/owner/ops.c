/*
 * The owner side of every queue operation.  Invariants kept here:
 *  - a message is in exactly one place: a queue's ready levels, or its
 *    holder's held list and the worker's held index (by id);
 *  - q->held counts the queue's messages in held lists;
 *  - a consumer's held counts its messages not yet acked (acked mode) or its
 *    deliveries not yet credited back by the home worker (auto-ack);
 *  - waiting GETs of a queue are served before its consumers.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/clock.h"
#include "core/log.h"
#include "store/dlgraph.h"
#include "owner/ops.h"
#include "owner/policy.h"
#include "owner/pubsub.h"
#include "store/queue.h"
#include "store/track.h"
#include "owner/owner.h"

/* ---- answering ------------------------------------------------------- */

static void fail(struct mqd_owner *ow, struct mqd_req *r, int code,
                 const char *msg)
{
	mqd_enc_error(&r->reply, r->tag, (uint16_t)code, msg);
	mqd_owner_answer(ow, r);
}

static void ok_empty(struct mqd_owner *ow, struct mqd_req *r)
{
	if (r->flags & MQD_F_QUIET)
		r->quiet_ok = true;
	else
		mqd_enc_ok(&r->reply, r->tag);
	mqd_owner_answer(ow, r);
}

/* ---- queues ---------------------------------------------------------- */

/* Settings from a config block ([defaults] or [queue NAME]). */
static void settings_from_conf(struct mqd_qsettings *s,
                               const struct mqd_queue_conf *c)
{
	memset(s, 0, sizeof *s);
	s->max_length = c->max_length;
	s->max_bytes = c->max_bytes;
	s->overflow = c->overflow ? c->overflow : MQD_OVERFLOW_REJECT;
	s->message_ttl_ms = (uint32_t)c->message_ttl_ms;
	s->ack_timeout_ms = (uint32_t)c->ack_timeout_ms;
	s->max_attempts = c->max_attempts;
	snprintf(s->dead_letter, sizeof s->dead_letter, "%s", c->dead_letter);
}

static void default_settings(struct mqd_owner *ow, struct mqd_qsettings *s)
{
	settings_from_conf(s, &ow->cfg->defaults.queue);
}

static struct mqd_queue *create_queue(struct mqd_owner *ow, const char *name,
                                      size_t len,
                                      const struct mqd_qsettings *s)
{
	struct mqd_queue *q = mqd_queue_new(name, len, s);

	if (q == NULL)
		return NULL;
	if (mqd_qtable_put(&ow->queues, q) < 0) {
		mqd_queue_free(q, &ow->timers);
		return NULL;
	}
	mqd_log_debug("worker %u: queue %s created", ow->index, q->name);
	return q;
}

struct mqd_queue *mqd_ops_queue(struct mqd_owner *ow, const char *name,
                                size_t len, bool create)
{
	struct mqd_queue *q = mqd_qtable_get(&ow->queues, name, len);
	struct mqd_qsettings s;

	char copy[256], why[600];
	int rc;

	if (q != NULL || !create || !ow->cfg->auto_create || len > 255)
		return q;
	/* Server-named queues come only from DECLARE: a reply sent after its
	 * requester left must not bring its queue back as an orphan. */
	if (len > 4 && memcmp(name, "tmp.", 4) == 0)
		return NULL;
	default_settings(ow, &s);
	memcpy(copy, name, len);
	copy[len] = '\0';
	/* A queue never dead-letters into itself, nor closes a loop, even
	 * when the [defaults] dead_letter would make it. */
	if (s.dead_letter[0] != '\0') {
		rc = strcmp(s.dead_letter, copy) == 0
		             ? 1
		             : mqd_dlgraph_add(ow->dlgraph, copy,
		                               s.dead_letter, why, sizeof why);
		if (rc == 1 && strcmp(s.dead_letter, copy) != 0)
			mqd_log_warn("queue %s: created without the default "
			             "dead_letter %s: it would loop (%s)",
			             copy, s.dead_letter, why);
		if (rc < 0)
			return NULL;
		if (rc == 1)
			s.dead_letter[0] = '\0';
	}
	q = create_queue(ow, name, len, &s);
	if (q == NULL && s.dead_letter[0] != '\0')
		mqd_dlgraph_del(ow->dlgraph, copy);
	return q;
}

int mqd_ops_create_configured(struct mqd_owner *ow,
                              const struct mqd_queue_conf *c)
{
	struct mqd_qsettings s;

	settings_from_conf(&s, c);
	/* The config loader has refused loops already. */
	if (s.dead_letter[0] != '\0' &&
	    mqd_dlgraph_add(ow->dlgraph, c->name, s.dead_letter, NULL,
	                    0) < 0)
		return -1;
	return create_queue(ow, c->name, strlen(c->name), &s) ? 0 : -1;
}

/* The queue r names; created with defaults when auto_create allows it.
 * On failure r is answered with the error and NULL returned. */
static struct mqd_queue *queue_for(struct mqd_owner *ow, struct mqd_req *r,
                                   bool create)
{
	struct mqd_queue *q = mqd_qtable_get(&ow->queues, r->name, r->name_len);

	if (q != NULL)
		return q;
	if (!create || !ow->cfg->auto_create ||
	    (r->name_len > 4 && memcmp(r->name, "tmp.", 4) == 0)) {
		fail(ow, r, MQD_ERR_NOT_FOUND, "no such queue");
		return NULL;
	}
	q = mqd_ops_queue(ow, r->name, r->name_len, true);
	if (q == NULL)
		fail(ow, r, MQD_ERR_INTERNAL, "out of memory");
	return q;
}

static bool excluded(const struct mqd_queue *q, const struct mqd_req *r)
{
	return q->exclusive && q->exclusive_conn != r->conn_id;
}

/* Take m out of its holder's list and the held index; returns its queue.
 * It keeps its track (its attempts). */
static struct mqd_queue *unhold(struct mqd_owner *ow, struct mqd_msg *m)
{
	struct mqd_track *k = m->track;
	struct mqd_peer *p = k->holder;
	struct mqd_queue *q = k->queue;

	mqd_msg_unlink(&p->held_head, &p->held_tail, m);
	p->nheld--;
	(void)mqd_idmap_del(&ow->held, m->id);
	mqd_timers_cancel(&ow->timers, m);
	m->state = MQD_MSG_LOOSE;
	q->held--;
	if (k->consumer && k->consumer->held)
		k->consumer->held--;
	k->holder = NULL;
	k->consumer = NULL;
	return q;
}

/* Hold m for p (and consumer c), at its delivery number attempts. */
static int hold(struct mqd_owner *ow, struct mqd_peer *p, struct mqd_queue *q,
                struct mqd_consumer *c, struct mqd_msg *m, uint16_t attempts)
{
	uint32_t ack = q->settings.ack_timeout_ms;
	struct mqd_track *k = mqd_track_get(&ow->timers, m);

	/* On failure the caller puts m back, which drops a track it does
	 * not need. */
	if (k == NULL)
		return -1;
	if (ack && mqd_policy_set_timer(ow, m, mqd_mono_ms() + ack) < 0)
		return -1;
	if (mqd_idmap_put(&ow->held, m->id, m) < 0) {
		mqd_timers_cancel(&ow->timers, m);
		return -1;
	}
	m->state = MQD_MSG_HELD;
	k->holder = p;
	k->consumer = c;
	k->queue = q;
	k->attempts = attempts;
	mqd_msg_push_tail(&p->held_head, &p->held_tail, m);
	p->nheld++;
	q->held++;
	if (c)
		c->held++;
	return 0;
}

/* Count a delivery of m; returns its attempts with this one (kept in its
 * track if it is held, forgotten with it if it is not). */
static uint16_t count_delivery(struct mqd_owner *ow, struct mqd_queue *q,
                               const struct mqd_msg *m)
{
	uint16_t n = mqd_msg_attempts(m);

	if (n < UINT16_MAX)
		n++;
	ow->delivered++;
	q->stats.delivered++;
	if (n > 1)
		q->stats.redelivered++;
	return n;
}

static void message_view(const struct mqd_queue *q, const struct mqd_msg *m,
                         uint16_t attempts, struct mqd_message *v)
{
	v->id = m->id;
	v->source.p = (const uint8_t *)q->name;
	v->source.len = q->name_len;
	v->attempts = attempts;
	v->timestamp_ms = mqd_msg_timestamp(m);
	v->priority = m->priority;
	v->nheaders = mqd_msg_nheaders(m);
	v->headers.p = mqd_msg_headers(m);
	v->headers.len = mqd_msg_headers_len(m);
	v->body.p = mqd_msg_body(m);
	v->body.len = m->body_len;
}

static struct mqd_mail_output *output_new(struct mqd_owner *ow, size_t len)
{
	struct mqd_mail_output *o = malloc(sizeof *o + len);

	if (o == NULL)
		return NULL;
	memset(o, 0, sizeof *o);
	o->mail.type = MQD_MAIL_OUTPUT;
	o->owner = ow->index;
	o->len = len;
	return o;
}

/* Take a parked GET off its queue and its peer. */
static void remove_waiter(struct mqd_owner *ow, struct mqd_req *r)
{
	struct mqd_queue *q = r->wq;
	struct mqd_peer *p = mqd_idmap_get(&ow->peers, r->conn_id);

	if (r->wprev)
		r->wprev->wnext = r->wnext;
	else
		q->waiters_head = r->wnext;
	if (r->wnext)
		r->wnext->wprev = r->wprev;
	else
		q->waiters_tail = r->wprev;
	if (r->pprev)
		r->pprev->pnext = r->pnext;
	else if (p)
		p->waiting = r->pnext;
	if (r->pnext)
		r->pnext->pprev = r->pprev;
	r->wnext = r->wprev = r->pnext = r->pprev = NULL;
	r->wq = NULL;
	if (r->timer) {
		event_free(r->timer);
		r->timer = NULL;
	}
}

/* A message taken for delivery that could not be delivered goes back
 * where it was: the head of its level, its delivery (attempts) uncounted
 * (held meanwhile, its track may have counted it). */
static void put_back(struct mqd_owner *ow, struct mqd_queue *q,
                     struct mqd_msg *m, uint16_t attempts)
{
	q->stats.delivered--;
	ow->delivered--;
	if (attempts > 1)
		q->stats.redelivered--;
	if (m->track != NULL)
		m->track->attempts = (uint16_t)(attempts - 1);
	if (mqd_policy_enqueue(ow, q, m, true) < 0)
		mqd_queue_push_head(q, m); /* expiry checked when taken */
}

/* Answer a GET with message m (removed from q's ready levels). */
static void give_to_get(struct mqd_owner *ow, struct mqd_queue *q,
                        struct mqd_req *r, struct mqd_msg *m)
{
	struct mqd_message v;
	uint16_t attempts = count_delivery(ow, q, m);

	if (!(r->flags & MQD_F_AUTO_ACK)) {
		struct mqd_peer *p = mqd_owner_peer(ow, r);
		if (p == NULL || hold(ow, p, q, NULL, m, attempts) < 0) {
			put_back(ow, q, m, attempts);
			fail(ow, r, MQD_ERR_INTERNAL, "out of memory");
			return;
		}
	}
	message_view(q, m, attempts, &v);
	mqd_enc_message(&r->reply, MQD_OP_MESSAGE, r->tag, &v);
	if (r->flags & MQD_F_AUTO_ACK)
		mqd_timers_free_msg(&ow->timers, m);
	mqd_owner_answer(ow, r);
}

/* Push one DELIVER to consumer c.  Returns -1 if it could not (memory):
 * the message is back at the head of its level. */
static int give_to_consumer(struct mqd_owner *ow, struct mqd_queue *q,
                            struct mqd_consumer *c, struct mqd_msg *m)
{
	struct mqd_message v;
	struct mqd_wbuf *head = &ow->scratch; /* keeps its memory: no malloc */
	size_t hlen;
	uint16_t attempts = count_delivery(ow, q, m);

	mqd_wbuf_reset(head);
	message_view(q, m, attempts, &v);
	hlen = mqd_enc_message_head(head, MQD_OP_DELIVER, c->tag, &v);
	if (head->oom)
		goto undo;
	if (c->auto_ack) {
		if (mqd_owner_push_frame(ow, c->peer, c->tag, 0, 1, head->data, hlen,
		                          mqd_msg_body(m), m->body_len) < 0)
			goto undo;
		c->held++;
		mqd_timers_free_msg(&ow->timers, m);
		return 0;
	}
	if (hold(ow, c->peer, q, c, m, attempts) < 0)
		goto undo;
	if (mqd_owner_push_frame(ow, c->peer, c->tag, 0, 0, head->data, hlen,
	                          mqd_msg_body(m), m->body_len) < 0) {
		(void)unhold(ow, m);
		goto undo;
	}
	return 0;
undo:
	put_back(ow, q, m, attempts);
	mqd_log_error("worker %u: out of memory delivering from %s", ow->index,
	              q->name);
	return -1;
}

/* The next ready message that has not expired (expired ones met on the
 * way are dealt with), out of the timer heap; NULL when none is ready. */
static struct mqd_msg *take_ready(struct mqd_owner *ow, struct mqd_queue *q)
{
	struct mqd_msg *m;
	uint64_t now = 0, expires;

	while ((m = mqd_queue_pop(q)) != NULL) {
		mqd_timers_cancel(&ow->timers, m);
		if ((expires = mqd_msg_expires(m)) == 0)
			return m;
		if (now == 0)
			now = mqd_mono_ms();
		if (now < expires)
			return m;
		mqd_policy_expire(ow, q, m);
	}
	return NULL;
}

void mqd_ops_dispatch(struct mqd_owner *ow, struct mqd_queue *q)
{
	/* Shutting down: held messages may still be acked, nothing new goes
	 * out. */
	if (ow->paused)
		return;
	while (q->ready > 0) {
		struct mqd_req *r = q->waiters_head;
		struct mqd_consumer *c = NULL;
		struct mqd_msg *m;

		if (r == NULL && (c = mqd_queue_next_consumer(q)) == NULL)
			break;
		if ((m = take_ready(ow, q)) == NULL)
			break;
		if (r != NULL) {
			remove_waiter(ow, r);
			give_to_get(ow, q, r, m);
		} else if (give_to_consumer(ow, q, c, m) < 0) {
			break;
		}
	}
}

static void free_consumer(struct mqd_owner *ow, struct mqd_consumer *c)
{
	struct mqd_peer *p = c->peer;
	struct mqd_consumer **pp;

	/* Messages it holds stay held by the connection, consumer-less. */
	for (struct mqd_msg *m = p->held_head; m; m = m->next)
		if (m->track->consumer == c)
			m->track->consumer = NULL;
	for (pp = &p->consumers; *pp; pp = &(*pp)->pnext) {
		if (*pp == c) {
			*pp = c->pnext;
			break;
		}
	}
	if (c->queue)
		mqd_queue_remove_consumer(c->queue, c);
	free(c);
	(void)ow;
}

/* Delete q: consumers get CANCELLED, waiting GETs NOT_FOUND, held and ready
 * messages are dropped. */
static void delete_queue(struct mqd_owner *ow, struct mqd_queue *q)
{
	struct mqd_msg **held = NULL;
	size_t n = 0, pos = 0;
	struct mqd_msg *m;

	while (q->consumers) {
		struct mqd_consumer *c = q->consumers;
		struct mqd_mail_output *o = output_new(ow, 0);
		struct mqd_wbuf b;
		mqd_wbuf_init(&b);
		mqd_enc_queue_op(&b, MQD_OP_CANCELLED, 0, c->tag, q->name);
		if (o && !b.oom) {
			struct mqd_mail_output *o2 = realloc(o, sizeof *o + b.len);
			if (o2) {
				o = o2;
				memcpy(o->data, b.data, b.len);
				o->len = b.len;
				o->tag = c->tag;
				o->cancelled = true;
				mqd_owner_push(ow, c->peer, o);
				o = NULL;
			}
		}
		free(o);
		mqd_wbuf_free(&b);
		free_consumer(ow, c);
	}
	while (q->waiters_head) {
		struct mqd_req *r = q->waiters_head;
		remove_waiter(ow, r);
		fail(ow, r, MQD_ERR_NOT_FOUND, "queue deleted");
	}
	if (q->held > 0) {
		held = malloc(q->held * sizeof *held);
		while (held && (m = mqd_idmap_next(&ow->held, &pos, NULL)) != NULL)
			if (m->track->queue == q)
				held[n++] = m;
		for (size_t i = 0; i < n; i++) {
			(void)unhold(ow, held[i]);
			mqd_timers_free_msg(&ow->timers, held[i]);
		}
		free(held);
	}
	mqd_log_debug("worker %u: queue %s deleted", ow->index, q->name);
	mqd_pubsub_queue_deleted(ow, q->name, q->name_len);
	if (q->settings.dead_letter[0] != '\0')
		mqd_dlgraph_del(ow->dlgraph, q->name);
	mqd_qtable_del(&ow->queues, q);
	mqd_queue_free(q, &ow->timers);
}

/* ---- requests -------------------------------------------------------- */

static bool settings_conflict(const struct mqd_queue *q,
                              const struct mqd_declare *d)
{
	const struct mqd_qsettings *s = &q->settings;

	if (d->max_length && d->max_length != s->max_length)
		return true;
	if (d->max_bytes && d->max_bytes != s->max_bytes)
		return true;
	if (d->overflow && d->overflow != s->overflow)
		return true;
	if (d->message_ttl_ms && d->message_ttl_ms != s->message_ttl_ms)
		return true;
	if (d->ack_timeout_ms && d->ack_timeout_ms != s->ack_timeout_ms)
		return true;
	if (d->max_attempts && d->max_attempts != s->max_attempts)
		return true;
	if (d->dead_letter.len &&
	    (d->dead_letter.len != strlen(s->dead_letter) ||
	     memcmp(d->dead_letter.p, s->dead_letter, d->dead_letter.len)))
		return true;
	return false;
}

static void declared(struct mqd_owner *ow, struct mqd_req *r,
                     const struct mqd_queue *q)
{
	mqd_enc_declared(&r->reply, r->tag, q->name, q->name_len, q->ready,
	                 q->nconsumers);
	mqd_owner_answer(ow, r);
}

/*
 * Create a queue for a DECLARE (from a client or mqctl): the [defaults]
 * settings, overridden by every non-zero field of d, and its dead-letter
 * edge recorded (refused if it closes a loop).  0 and *out, or an
 * MQD_ERR_* with a message for people in msg.
 */
static int declare_new(struct mqd_owner *ow, const char *name, size_t len,
                       const struct mqd_declare *d, struct mqd_queue **out,
                       char *msg, size_t msglen)
{
	struct mqd_qsettings s;
	char why[600];
	int rc;

	default_settings(ow, &s);
	if (d->max_length)
		s.max_length = d->max_length;
	if (d->max_bytes)
		s.max_bytes = d->max_bytes;
	if (d->overflow)
		s.overflow = d->overflow;
	if (d->message_ttl_ms)
		s.message_ttl_ms = d->message_ttl_ms;
	if (d->ack_timeout_ms)
		s.ack_timeout_ms = d->ack_timeout_ms;
	if (d->max_attempts)
		s.max_attempts = d->max_attempts;
	if (d->dead_letter.len) {
		memcpy(s.dead_letter, d->dead_letter.p, d->dead_letter.len);
		s.dead_letter[d->dead_letter.len] = '\0';
	} else if (strlen(s.dead_letter) == len &&
	           memcmp(s.dead_letter, name, len) == 0) {
		s.dead_letter[0] = '\0'; /* the default would point at itself */
	}
	if (s.dead_letter[0] != '\0') {
		rc = mqd_dlgraph_add(ow->dlgraph, name, s.dead_letter, why,
		                     sizeof why);
		if (rc != 0) {
			snprintf(msg, msglen, rc > 0 ? "dead-letter chain loops: %s"
			                             : "out of memory",
			         why);
			return rc > 0 ? MQD_ERR_BAD_ARGUMENT : MQD_ERR_INTERNAL;
		}
	}
	*out = create_queue(ow, name, len, &s);
	if (*out == NULL) {
		if (s.dead_letter[0] != '\0')
			mqd_dlgraph_del(ow->dlgraph, name);
		snprintf(msg, msglen, "out of memory");
		return MQD_ERR_INTERNAL;
	}
	return 0;
}

static void exec_declare(struct mqd_owner *ow, struct mqd_req *r)
{
	const struct mqd_declare *d = &r->p.declare;
	struct mqd_queue *q = mqd_qtable_get(&ow->queues, r->name, r->name_len);
	struct mqd_peer *p;
	struct mqd_peer_excl *x;
	char msg[700];
	int rc;

	if (d->dead_letter.len == r->name_len &&
	    memcmp(d->dead_letter.p, r->name, r->name_len) == 0) {
		fail(ow, r, MQD_ERR_BAD_ARGUMENT,
		     "a queue cannot be its own dead-letter queue");
		return;
	}
	if (r->flags & MQD_F_PASSIVE) {
		if (q == NULL)
			fail(ow, r, MQD_ERR_NOT_FOUND, "no such queue");
		else
			declared(ow, r, q);
		return;
	}
	if (q != NULL) {
		if (excluded(q, r))
			fail(ow, r, MQD_ERR_FORBIDDEN,
			     "queue is exclusive to another connection");
		else if (settings_conflict(q, d) ||
		         ((r->flags & MQD_F_EXCLUSIVE) && !q->exclusive) ||
		         ((r->flags & MQD_F_AUTO_DELETE) && !q->auto_delete))
			fail(ow, r, MQD_ERR_CONFLICT,
			     "queue exists with different settings");
		else
			declared(ow, r, q);
		return;
	}
	p = (r->flags & MQD_F_EXCLUSIVE) ? mqd_owner_peer(ow, r) : NULL;
	x = p ? calloc(1, sizeof *x) : NULL;
	if ((r->flags & MQD_F_EXCLUSIVE) && x == NULL) {
		fail(ow, r, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	rc = declare_new(ow, r->name, r->name_len, d, &q, msg, sizeof msg);
	if (rc != 0) {
		free(x);
		fail(ow, r, rc, msg);
		return;
	}
	q->auto_delete = (r->flags & MQD_F_AUTO_DELETE) != 0;
	if (x != NULL) {
		q->exclusive = true;
		q->exclusive_conn = r->conn_id;
		memcpy(x->name, q->name, q->name_len);
		x->len = q->name_len;
		x->next = p->exclusive;
		p->exclusive = x;
	}
	declared(ow, r, q);
}

static void exec_delete(struct mqd_owner *ow, struct mqd_req *r)
{
	struct mqd_queue *q = queue_for(ow, r, false);

	if (q == NULL)
		return;
	if (excluded(q, r)) {
		fail(ow, r, MQD_ERR_FORBIDDEN,
		     "queue is exclusive to another connection");
		return;
	}
	if ((r->flags & MQD_F_IF_EMPTY) && !mqd_queue_is_empty(q)) {
		fail(ow, r, MQD_ERR_CONFLICT, "queue is not empty");
		return;
	}
	ok_empty(ow, r);
	delete_queue(ow, q);
}

static void exec_purge(struct mqd_owner *ow, struct mqd_req *r)
{
	struct mqd_queue *q = queue_for(ow, r, false);
	uint64_t n;

	if (q == NULL)
		return;
	if (excluded(q, r)) {
		fail(ow, r, MQD_ERR_FORBIDDEN,
		     "queue is exclusive to another connection");
		return;
	}
	n = mqd_queue_purge(q, &ow->timers);
	q->stats.purged += n;
	mqd_enc_ok_u64(&r->reply, r->tag, n);
	mqd_owner_answer(ow, r);
}

/* Make room for bytes in q under its overflow policy; false when the
 * message must be refused. */
static bool make_room(struct mqd_owner *ow, struct mqd_queue *q,
                      uint64_t bytes)
{
	if (q->settings.max_bytes && bytes > q->settings.max_bytes)
		return false; /* dropping everything would not help */
	while (!mqd_queue_fits(q, bytes)) {
		struct mqd_msg *old;
		if (q->settings.overflow != MQD_OVERFLOW_DROP_HEAD ||
		    (old = mqd_queue_pop_lowest(q)) == NULL)
			return false; /* only delayed messages left: keep them */
		mqd_timers_free_msg(&ow->timers, old);
		q->stats.dropped++;
	}
	return true;
}

int mqd_ops_store(struct mqd_owner *ow, struct mqd_queue *q, struct mqd_msg *m)
{
	/* Read before the id takes their place. */
	uint32_t ttl = m->ttl_ms ? m->ttl_ms : q->settings.message_ttl_ms;
	uint32_t delay = m->delay_ms;
	int rc;

	if (!make_room(ow, q, mqd_msg_bytes(m)))
		return MQD_ERR_QUEUE_FULL;
	if (mqd_policy_set_expiry(ow, m, ttl) < 0)
		return MQD_ERR_INTERNAL;
	m->id = mqd_owner_new_id(ow);
	mqd_msg_set_timestamp(m, mqd_now_ms());
	if (delay)
		rc = mqd_policy_delay(ow, q, m, mqd_mono_ms() + delay);
	else
		rc = mqd_policy_enqueue(ow, q, m, false);
	if (rc < 0) {
		mqd_track_put(&ow->timers, m); /* the caller frees m */
		return MQD_ERR_INTERNAL;
	}
	q->stats.sent++;
	ow->sent++;
	return 0;
}

static void exec_send(struct mqd_owner *ow, struct mqd_req *r)
{
	struct mqd_queue *q = queue_for(ow, r, true);
	struct mqd_msg *m;
	int rc;

	/* Answered: r is its home's again (recycled there, maybe already),
	 * so not even r->msg may be read any more. */
	if (q == NULL)
		return;
	m = r->msg;
	rc = mqd_ops_store(ow, q, m);
	if (rc == MQD_ERR_QUEUE_FULL) {
		fail(ow, r, rc,
		     q->settings.max_bytes && mqd_msg_bytes(m) > q->settings.max_bytes
		             ? "message larger than the queue's max_bytes"
		             : "queue is full");
		return;
	}
	if (rc != 0) {
		fail(ow, r, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	r->msg = NULL;
	if (r->flags & MQD_F_QUIET)
		r->quiet_ok = true;
	else
		mqd_enc_ok_u64(&r->reply, r->tag, m->id);
	mqd_owner_answer(ow, r);
	mqd_ops_dispatch(ow, q);
}

static void get_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqd_req *r = arg;
	struct mqd_owner *ow = r->wowner;

	(void)fd;
	(void)what;
	remove_waiter(ow, r);
	mqd_enc_raw(&r->reply, MQD_OP_EMPTY, 0, r->tag, NULL, 0);
	mqd_owner_answer(ow, r);
}

static void exec_get(struct mqd_owner *ow, struct mqd_req *r)
{
	struct mqd_queue *q = queue_for(ow, r, true);
	struct mqd_peer *p;
	struct timeval tv;
	uint32_t ms;

	if (q == NULL) /* answered, and possibly freed already */
		return;
	ms = r->p.get.timeout_ms;
	if (excluded(q, r)) {
		fail(ow, r, MQD_ERR_FORBIDDEN,
		     "queue is exclusive to another connection");
		return;
	}
	struct mqd_msg *m = take_ready(ow, q);
	if (m != NULL) {
		give_to_get(ow, q, r, m);
		return;
	}
	if (ms == 0) {
		mqd_enc_raw(&r->reply, MQD_OP_EMPTY, 0, r->tag, NULL, 0);
		mqd_owner_answer(ow, r);
		return;
	}
	p = mqd_owner_peer(ow, r);
	r->timer = p ? evtimer_new(ow->base, get_timeout_cb, r) : NULL;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (r->timer == NULL || evtimer_add(r->timer, &tv) < 0) {
		if (r->timer)
			event_free(r->timer);
		r->timer = NULL;
		fail(ow, r, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	r->wq = q;
	r->wowner = ow;
	r->wnext = NULL;
	r->wprev = q->waiters_tail;
	if (q->waiters_tail)
		((struct mqd_req *)q->waiters_tail)->wnext = r;
	else
		q->waiters_head = r;
	q->waiters_tail = r;
	r->pprev = NULL;
	r->pnext = p->waiting;
	if (p->waiting)
		p->waiting->pprev = r;
	p->waiting = r;
}

static struct mqd_consumer *find_consumer(struct mqd_peer *p, uint32_t tag)
{
	struct mqd_consumer *c;

	for (c = p ? p->consumers : NULL; c; c = c->pnext)
		if (c->tag == tag)
			return c;
	return NULL;
}

static void exec_consume(struct mqd_owner *ow, struct mqd_req *r)
{
	struct mqd_queue *q = queue_for(ow, r, true);
	struct mqd_peer *p;
	struct mqd_consumer *c;

	if (q == NULL)
		return;
	if (excluded(q, r)) {
		fail(ow, r, MQD_ERR_FORBIDDEN,
		     "queue is exclusive to another connection");
		return;
	}
	p = mqd_owner_peer(ow, r);
	c = p ? calloc(1, sizeof *c) : NULL;
	if (c == NULL) {
		fail(ow, r, MQD_ERR_INTERNAL, "out of memory");
		return;
	}
	c->peer = p;
	c->tag = r->tag;
	c->prefetch = r->p.consume.prefetch ? r->p.consume.prefetch
	                                    : ow->cfg->defaults.prefetch;
	c->auto_ack = (r->flags & MQD_F_AUTO_ACK) != 0;
	c->pnext = p->consumers;
	p->consumers = c;
	mqd_queue_add_consumer(q, c);
	/* The OK leaves before any DELIVER: answer first, then dispatch. */
	ok_empty(ow, r);
	mqd_ops_dispatch(ow, q);
}

static void exec_cancel(struct mqd_owner *ow, struct mqd_req *r)
{
	struct mqd_peer *p = mqd_idmap_get(&ow->peers, r->conn_id);
	struct mqd_consumer *c = find_consumer(p, r->p.cancel.tag);
	struct mqd_queue *q;

	if (c == NULL) {
		fail(ow, r, MQD_ERR_NOT_FOUND, "no such consumer");
		return;
	}
	q = c->queue;
	free_consumer(ow, c);
	ok_empty(ow, r);
	if (q->auto_delete && q->nconsumers == 0)
		delete_queue(ow, q);
}

/* ACK and NACK share the walk over ids; requeue < 0 means ACK. */
static void settle(struct mqd_owner *ow, struct mqd_req *r, int requeue)
{
	struct mqd_peer *p = mqd_idmap_get(&ow->peers, r->conn_id);
	const struct mqd_ack *a = &r->p.ack;
	uint32_t n = 0;

	for (uint16_t i = 0; p != NULL && i < a->count; i++) {
		struct mqd_msg *m =
			mqd_idmap_get(&ow->held, mqd_load64(a->ids + 8u * i));
		struct mqd_queue *q;
		/* Not held by this connection (any more): skipped. */
		if (m == NULL || m->track->holder != p)
			continue;
		q = unhold(ow, m);
		n++;
		if (requeue < 0) {
			q->stats.acked++;
			mqd_timers_free_msg(&ow->timers, m);
		} else if (requeue == 0) {
			mqd_policy_dead_letter(ow, q, m, "rejected");
		} else {
			mqd_policy_return(ow, q, m, a->delay_ms);
		}
		mqd_ops_dispatch(ow, q);
	}
	r->count = n;
	if (r->parent == NULL && !(r->flags & MQD_F_QUIET))
		mqd_enc_ok_u32(&r->reply, r->tag, n);
	else if (r->parent == NULL)
		r->quiet_ok = true;
	mqd_owner_answer(ow, r);
}

static void exec_ack(struct mqd_owner *ow, struct mqd_req *r)
{
	settle(ow, r, -1);
}

static void exec_nack(struct mqd_owner *ow, struct mqd_req *r)
{
	settle(ow, r, r->p.ack.requeue ? 1 : 0);
}

typedef void (*exec_fn)(struct mqd_owner *, struct mqd_req *);

static const struct {
	uint8_t op;
	exec_fn fn;
} exec_table[] = {
	{MQD_OP_DECLARE, exec_declare}, {MQD_OP_DELETE, exec_delete},
	{MQD_OP_PURGE, exec_purge},     {MQD_OP_SEND, exec_send},
	{MQD_OP_GET, exec_get},         {MQD_OP_CONSUME, exec_consume},
	{MQD_OP_CANCEL, exec_cancel},   {MQD_OP_ACK, exec_ack},
	{MQD_OP_NACK, exec_nack},
	{MQD_OP_SUBSCRIBE, mqd_pubsub_exec_subscribe},
	{MQD_OP_UNSUBSCRIBE, mqd_pubsub_exec_unsubscribe},
	{MQD_OP_PUBLISH, mqd_pubsub_exec_publish},
	{MQD_OP_BIND, mqd_pubsub_exec_bind},
	{MQD_OP_UNBIND, mqd_pubsub_exec_unbind},
};

void mqd_ops_exec(struct mqd_owner *ow, struct mqd_req *r)
{
	for (size_t i = 0; i < sizeof exec_table / sizeof exec_table[0]; i++) {
		if (exec_table[i].op == r->op) {
			exec_table[i].fn(ow, r);
			return;
		}
	}
	fail(ow, r, MQD_ERR_INTERNAL, "operation not routed to an owner");
}

/* ---- connections ----------------------------------------------------- */

void mqd_ops_peer_closed(struct mqd_owner *ow, uint64_t conn_id,
                         struct mqd_mail_close *close)
{
	struct mqd_peer *p = mqd_idmap_del(&ow->peers, conn_id);
	struct mqd_queue *redo = NULL;

	if (p == NULL) {
		mqd_owner_close_done(ow, close);
		return;
	}
	mqd_owner_flush_peer(ow, p); /* its conn lives until CLOSE_DONE */
	mqd_pubsub_peer_closed(ow, p);
	while (p->consumers) {
		struct mqd_consumer *c = p->consumers;
		struct mqd_queue *q = c->queue;
		free_consumer(ow, c);
		if (q->auto_delete && q->nconsumers == 0)
			delete_queue(ow, q);
	}
	while (p->waiting) {
		struct mqd_req *r = p->waiting;
		/* remove_waiter finds the peer by id; it is out of the map. */
		p->waiting = r->pnext;
		if (p->waiting)
			p->waiting->pprev = NULL;
		r->pnext = r->pprev = NULL;
		remove_waiter(ow, r);
		fail(ow, r, MQD_ERR_SHUTTING_DOWN, "connection closed");
	}
	/* Back to the head of their levels, last first, so the oldest
	 * comes out first again.  No queue is dispatched before every held
	 * message is back, or a message of a queue met early would go out
	 * ahead of older ones still to return: the queues wait on a list
	 * linked through themselves (any number, no allocation). */
	while (p->held_tail) {
		struct mqd_msg *m = p->held_tail;
		struct mqd_queue *q = unhold(ow, m);
		mqd_policy_return(ow, q, m, 0);
		if (!q->redispatch) {
			q->redispatch = true;
			q->redispatch_next = redo;
			redo = q;
		}
	}
	while (redo) {
		struct mqd_queue *q = redo;
		redo = q->redispatch_next;
		q->redispatch = false;
		q->redispatch_next = NULL;
		mqd_ops_dispatch(ow, q);
	}
	while (p->exclusive) {
		struct mqd_peer_excl *x = p->exclusive;
		struct mqd_queue *q = mqd_qtable_get(&ow->queues, x->name, x->len);
		p->exclusive = x->next;
		if (q && q->exclusive && q->exclusive_conn == conn_id)
			delete_queue(ow, q);
		free(x);
	}
	if (p->waits > 0) {
		p->close = close; /* answered when its last wait is */
		return;
	}
	mqd_owner_close_done(ow, close);
	free(p);
}

void mqd_ops_credit(struct mqd_owner *ow, uint64_t conn_id, uint32_t tag,
                    uint32_t n)
{
	struct mqd_consumer *c =
		find_consumer(mqd_idmap_get(&ow->peers, conn_id), tag);

	if (c == NULL)
		return;
	c->held = c->held > n ? c->held - n : 0;
	mqd_ops_dispatch(ow, c->queue);
}

void mqd_ops_free_all(struct mqd_owner *ow)
{
	size_t pos = 0;
	struct mqd_queue *cur = NULL, *q;

	/* Every connection has closed by now, so nothing is held, waiting or
	 * consuming; what is left is ready messages. */
	while ((q = mqd_qtable_next(&ow->queues, &pos, &cur)) != NULL)
		mqd_queue_free(q, NULL);
	mqd_timers_free(&ow->timers);
	mqd_qtable_free(&ow->queues);
	mqd_idmap_free(&ow->held);
	mqd_idmap_free(&ow->peers);
}

/* ---- timers and queries ---------------------------------------------- */

void mqd_ops_timer(struct mqd_owner *ow)
{
	uint64_t now = mqd_mono_ms();
	struct mqd_track *k;

	ow->timer_armed = 0;
	while ((k = mqd_timers_peek(&ow->timers)) != NULL && k->timer_at <= now) {
		struct mqd_msg *m = k->msg;
		struct mqd_queue *q = k->queue;
		uint64_t expires = k->expires_at;

		mqd_timers_cancel(&ow->timers, m);
		switch (m->state) {
		case MQD_MSG_READY: /* its TTL ran out while it waited */
			mqd_queue_remove(q, m);
			mqd_policy_expire(ow, q, m);
			break;
		case MQD_MSG_DELAYED:
			mqd_queue_remove_delayed(q, m);
			if (expires && now >= expires) {
				mqd_policy_expire(ow, q, m);
				break;
			}
			if (mqd_policy_enqueue(ow, q, m, false) < 0)
				mqd_queue_push_tail(q, m);
			mqd_ops_dispatch(ow, q);
			break;
		case MQD_MSG_HELD: /* ack timeout: someone else may have it */
			mqd_log_debug("queue %s: message %llu not acked in %u ms",
			              q->name, (unsigned long long)m->id,
			              q->settings.ack_timeout_ms);
			(void)unhold(ow, m);
			mqd_policy_return(ow, q, m, 0);
			mqd_ops_dispatch(ow, q);
			break;
		default:
			break;
		}
	}
	mqd_policy_rearm(ow);
}

static void fill_info(const struct mqd_owner *ow, const struct mqd_queue *q,
                      struct mqd_queue_info *i)
{
	memset(i, 0, sizeof *i);
	memcpy(i->name, q->name, q->name_len + 1u);
	i->owner = ow->index;
	i->exclusive = q->exclusive;
	i->auto_delete = q->auto_delete;
	i->ready = q->ready;
	i->held = q->held;
	i->delayed = q->delayed;
	i->bytes = q->bytes;
	i->consumers = q->nconsumers;
	i->sent = q->stats.sent;
	i->delivered = q->stats.delivered;
	i->acked = q->stats.acked;
	i->redelivered = q->stats.redelivered;
	i->expired = q->stats.expired;
	i->dead_lettered = q->stats.dead_lettered;
	i->dropped = q->stats.dropped;
	i->purged = q->stats.purged;
	i->max_length = q->settings.max_length;
	i->max_bytes = q->settings.max_bytes;
	i->overflow = q->settings.overflow;
	i->message_ttl_ms = q->settings.message_ttl_ms;
	i->ack_timeout_ms = q->settings.ack_timeout_ms;
	i->max_attempts = q->settings.max_attempts;
	memcpy(i->dead_letter, q->settings.dead_letter,
	       sizeof i->dead_letter);
}

void mqd_ops_query(struct mqd_owner *ow, struct mqd_mail_query *qm)
{
	size_t pos = 0, n = 0;
	struct mqd_queue *cur = NULL, *q;

	qm->rows = NULL;
	qm->n = 0;
	if (qm->name[0] != '\0') {
		q = mqd_qtable_get(&ow->queues, qm->name, strlen(qm->name));
		if (q == NULL)
			return;
		qm->rows = malloc(sizeof *qm->rows);
		if (qm->rows == NULL) {
			qm->failed = true;
			return;
		}
		fill_info(ow, q, qm->rows);
		qm->n = 1;
		return;
	}
	if (ow->queues.count == 0)
		return;
	qm->rows = malloc(ow->queues.count * sizeof *qm->rows);
	if (qm->rows == NULL) {
		qm->failed = true;
		return;
	}
	while ((q = mqd_qtable_next(&ow->queues, &pos, &cur)) != NULL)
		fill_info(ow, q, &qm->rows[n++]);
	qm->n = n;
}

/* ---- administration ----------------------------------------------------- */

static void admin_fail(struct mqd_mail_query *qm, int code, const char *msg)
{
	qm->result->code = code;
	snprintf(qm->result->message, sizeof qm->result->message, "%s", msg);
}

/* A DECLARE-style settings block (0 = default) as a DECLARE payload. */
static void conf_as_declare(const struct mqd_queue_conf *c,
                            struct mqd_declare *d)
{
	memset(d, 0, sizeof *d);
	d->max_length = c->max_length;
	d->max_bytes = c->max_bytes;
	d->overflow = c->overflow;
	d->message_ttl_ms = (uint32_t)c->message_ttl_ms;
	d->ack_timeout_ms = (uint32_t)c->ack_timeout_ms;
	d->max_attempts = c->max_attempts;
	d->dead_letter.p = (const uint8_t *)c->dead_letter;
	d->dead_letter.len = (uint32_t)strlen(c->dead_letter);
}

static void admin_declare(struct mqd_owner *ow, struct mqd_mail_query *qm)
{
	size_t len = strlen(qm->name);
	struct mqd_queue *q = mqd_qtable_get(&ow->queues, qm->name, len);
	struct mqd_queue_conf none;
	const struct mqd_queue_conf *c = qm->has_settings ? &qm->settings : &none;
	struct mqd_declare d;
	char msg[700];
	int rc;

	memset(&none, 0, sizeof none);
	conf_as_declare(c, &d);
	if (strcmp(c->dead_letter, qm->name) == 0) {
		admin_fail(qm, MQD_ERR_BAD_ARGUMENT,
		           "a queue cannot be its own dead-letter queue");
		return;
	}
	if (q != NULL) {
		if (settings_conflict(q, &d))
			admin_fail(qm, MQD_ERR_CONFLICT,
			           "queue exists with different settings");
		return;
	}
	rc = declare_new(ow, qm->name, len, &d, &q, msg, sizeof msg);
	if (rc != 0) {
		admin_fail(qm, rc, msg);
		return;
	}
	qm->result->created = true;
}

/* Reload: a [queue NAME] section's settings, applied in place (created if
 * the queue does not exist).  Messages already queued stay; new limits
 * apply to what comes next. */
static void admin_set(struct mqd_owner *ow, struct mqd_mail_query *qm)
{
	size_t len = strlen(qm->name);
	struct mqd_queue *q = mqd_qtable_get(&ow->queues, qm->name, len);
	struct mqd_qsettings s;
	char why[600];

	if (q == NULL) {
		if (mqd_ops_create_configured(ow, &qm->settings) < 0)
			admin_fail(qm, MQD_ERR_INTERNAL, "out of memory");
		else
			qm->result->created = true;
		return;
	}
	settings_from_conf(&s, &qm->settings);
	if (strcmp(s.dead_letter, q->settings.dead_letter) != 0) {
		if (q->settings.dead_letter[0] != '\0')
			mqd_dlgraph_del(ow->dlgraph, q->name);
		if (s.dead_letter[0] != '\0' &&
		    mqd_dlgraph_add(ow->dlgraph, q->name, s.dead_letter, why,
		                    sizeof why) != 0) {
			/* Keep the old edge and settings: refuse the change. */
			if (q->settings.dead_letter[0] != '\0' &&
			    mqd_dlgraph_add(ow->dlgraph, q->name,
			                    q->settings.dead_letter, NULL, 0) < 0)
				q->settings.dead_letter[0] = '\0';
			admin_fail(qm, MQD_ERR_BAD_ARGUMENT,
			           "dead-letter chain would loop");
			return;
		}
	}
	q->settings = s;
	mqd_ops_dispatch(ow, q);
}

void mqd_ops_admin(struct mqd_owner *ow, struct mqd_mail_query *qm)
{
	struct mqd_queue *q;

	switch (qm->admin_op) {
	case MQD_ADMIN_DECLARE:
		admin_declare(ow, qm);
		return;
	case -1:
		admin_set(ow, qm);
		return;
	default:
		break;
	}
	q = mqd_qtable_get(&ow->queues, qm->name, strlen(qm->name));
	if (q == NULL) {
		admin_fail(qm, MQD_ERR_NOT_FOUND, "no such queue");
		return;
	}
	if (qm->admin_op == MQD_ADMIN_PURGE) {
		qm->result->count = mqd_queue_purge(q, &ow->timers);
		q->stats.purged += qm->result->count;
		return;
	}
	if (qm->if_empty && !mqd_queue_is_empty(q)) {
		admin_fail(qm, MQD_ERR_CONFLICT, "queue is not empty");
		return;
	}
	delete_queue(ow, q);
}
