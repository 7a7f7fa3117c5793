/*
 * A worker's thread: its event loop, and the mails it takes from its inbox.
 * See worker.h for who owns what.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/log.h"
#include "net/conn.h"
#include "server/server.h"
#include "store/queue.h"
#include "route/pubsub.h"
#include "store/ops.h"
#include "store/policy.h"
#include "worker/worker.h"

/* Mails taken per loop pass before letting sockets have a turn. */
#define DRAIN_BATCH 4096

static void fill_worker_info(struct mqd_worker *w, struct mqd_worker_info *i)
{
	size_t pos = 0;
	struct mqd_queue *cur = NULL, *q;

	memset(i, 0, sizeof *i);
	i->index = w->index;
	i->queues = w->queues.count;
	i->connections = w->nconns;
	while ((q = mqd_qtable_next(&w->queues, &pos, &cur)) != NULL) {
		i->ready += q->ready;
		i->held += q->held;
		i->delayed += q->delayed;
		i->bytes += q->bytes;
	}
	i->mails = w->mails;
	i->frames = w->frames;
	i->sent = w->sent;
	i->delivered = w->delivered;
}

/* Connections at home here, and what every peer holds on this owner. */
static void fill_conns(struct mqd_worker *w, struct mqd_mail_query *qm)
{
	size_t n = 0, pos = 0;
	struct mqd_peer *p;

	if (w->nconns > 0) {
		qm->conns = calloc(w->nconns, sizeof *qm->conns);
		if (qm->conns == NULL) {
			qm->failed = true;
			return;
		}
		for (struct mqd_conn *c = w->conns; c && n < w->nconns; c = c->next)
			if (mqd_conn_info(c, &qm->conns[n]))
				n++;
	}
	qm->nconns = n;
	if (w->peers.count == 0)
		return;
	qm->held = calloc(w->peers.count, sizeof *qm->held);
	if (qm->held == NULL) {
		qm->failed = true;
		return;
	}
	n = 0;
	while ((p = mqd_idmap_next(&w->peers, &pos, NULL)) != NULL) {
		qm->held[n].conn_id = p->conn_id;
		qm->held[n].held = p->nheld;
		n++;
	}
	qm->nheld = n;
}

static void answer_query(struct mqd_worker *w, struct mqd_mail_query *qm)
{
	switch (qm->kind) {
	case MQD_QUERY_QUEUES:
		mqd_ops_query(w, qm);
		break;
	case MQD_QUERY_WORKERS:
		if (qm->winfo)
			fill_worker_info(w, qm->winfo);
		break;
	case MQD_QUERY_CONNS:
		fill_conns(w, qm);
		break;
	case MQD_QUERY_KILL:
		for (struct mqd_conn *c = w->conns; c; c = c->next) {
			if (c->id == qm->id && mqd_conn_info(c, NULL)) {
				qm->found = true;
				mqd_conn_kill(c);
				break;
			}
		}
		break;
	case MQD_QUERY_ADMIN:
		mqd_ops_admin(w, qm);
		break;
	default:
		qm->failed = true;
		break;
	}
}

static void handle_mail(struct mqd_worker *w, struct mqd_mail *m)
{
	switch (m->type) {
	case MQD_MAIL_CONN_NEW: {
		struct mqd_mail_conn_new *n = (struct mqd_mail_conn_new *)m;
		if (w->shutting_down) {
			close(n->fd);
			mqd_server_conn_socket_closed(w->srv);
		} else {
			mqd_conn_accept(w, n->fd, n->peer, n->over_limit);
		}
		free(n);
		break;
	}
	case MQD_MAIL_REQ:
		mqd_ops_exec(w, (struct mqd_req *)m);
		break;
	case MQD_MAIL_REPLY:
		mqd_conn_req_done((struct mqd_req *)m);
		break;
	case MQD_MAIL_OUTPUT: {
		struct mqd_mail_output *o = (struct mqd_mail_output *)m;
		mqd_conn_output(o->conn, o);
		break;
	}
	case MQD_MAIL_CREDIT: {
		struct mqd_mail_credit *c = (struct mqd_mail_credit *)m;
		mqd_ops_credit(w, c->conn_id, c->tag, c->n);
		free(c);
		break;
	}
	case MQD_MAIL_CLOSE: {
		struct mqd_mail_close *c = (struct mqd_mail_close *)m;
		mqd_ops_peer_closed(w, c->conn_id, c);
		break;
	}
	case MQD_MAIL_CLOSE_DONE: {
		struct mqd_mail_close *c = (struct mqd_mail_close *)m;
		struct mqd_conn *conn = c->conn;
		free(c);
		mqd_conn_close_done(conn);
		break;
	}
	case MQD_MAIL_SHUTDOWN:
		free(m);
		w->shutting_down = true;
		for (struct mqd_conn *c = w->conns, *next; c; c = next) {
			next = c->next;
			mqd_conn_shutdown(c);
		}
		mqd_server_shutdown_ack(w->srv);
		break;
	case MQD_MAIL_STOP:
		free(m);
		event_base_loopbreak(w->base);
		break;
	case MQD_MAIL_DEAD:
		mqd_policy_receive_dead(w, (struct mqd_mail_dead *)m);
		break;
	case MQD_MAIL_QUERY:
		answer_query(w, (struct mqd_mail_query *)m);
		mqd_server_post_main(w->srv, m);
		break;
	case MQD_MAIL_CONFIG: {
		struct mqd_config_mail *c = (struct mqd_config_mail *)m;
		w->cfg = c->cfg;
		free(c);
		break;
	}
	case MQD_MAIL_PAUSE:
		free(m);
		w->paused = true;
		break;
	case MQD_MAIL_ROUTE:
	case MQD_MAIL_ROUTE_DONE:
		mqd_pubsub_mail(w, m);
		break;
	default:
		mqd_log_error("worker %u: unknown mail type %d", w->index,
		              m->type);
		break;
	}
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	mqd_ops_timer(arg);
}

static void mailbox_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqd_worker *w = arg;
	struct mqd_mail *m;
	unsigned n = 0;

	(void)fd;
	if (what & EV_READ)
		mqd_mailbox_ack_wake(&w->mb);
	while (n < DRAIN_BATCH && (m = mqd_mailbox_take(&w->mb)) != NULL) {
		handle_mail(w, m);
		n++;
	}
	w->mails += n;
	mqd_conn_release_credits(w);
	/* More left: come back after the sockets have had a turn. */
	if (n == DRAIN_BATCH)
		event_active(w->mb_ev, EV_TIMEOUT, 0);
}

void mqd_worker_post(struct mqd_worker *w, struct mqd_mail *m)
{
	mqd_mailbox_post(&w->mb, m);
}

/* ---- output batches ---------------------------------------------------- */

#define BATCH_MIN 4096
#define BATCH_MAX (64 * 1024) /* a fuller batch goes at once */

static void post_output(struct mqd_worker *w, struct mqd_conn *conn,
                        struct mqd_mail_output *o)
{
	o->conn = conn;
	if (conn->home == w)
		mqd_conn_output(conn, o);
	else
		mqd_worker_post(conn->home, &o->mail);
}

void mqd_worker_flush_peer(struct mqd_worker *w, struct mqd_peer *p)
{
	struct mqd_mail_output *o = p->batch;

	if (o == NULL)
		return;
	for (struct mqd_peer **pp = &w->batches; *pp; pp = &(*pp)->batch_next) {
		if (*pp == p) {
			*pp = p->batch_next;
			break;
		}
	}
	p->batch = NULL;
	p->batch_next = NULL;
	post_output(w, p->conn, o);
}

static void flush_all(struct mqd_worker *w)
{
	while (w->batches)
		mqd_worker_flush_peer(w, w->batches);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush_all(arg);
}

/* Activated after flush_cb when output appeared: the pass is over. */
static void write_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	mqd_conn_write_pending(arg);
}

/* The batch for conn, if this worker is filling one (the list is short:
 * the connections served in this pass). */
static void flush_conn(struct mqd_worker *w, const struct mqd_conn *conn)
{
	for (struct mqd_peer *p = w->batches; p; p = p->batch_next) {
		if (p->conn == conn) {
			mqd_worker_flush_peer(w, p);
			return;
		}
	}
}

int mqd_worker_push_frame(struct mqd_worker *w, struct mqd_peer *p,
                          uint32_t tag, uint64_t sub_id, uint32_t credit,
                          const void *head, size_t hlen, const void *body,
                          size_t blen)
{
	struct mqd_mail_output *o = p->batch;
	size_t need = hlen + blen;

	/* Frames of several acknowledging consumers of one connection (a
	 * consumer of many queues) share a batch with tag 0: the home worker
	 * then keeps them behind any pending reply, which orders them after
	 * their CONSUMEs' OKs, and there is no credit to return. */
	if (o != NULL && o->tag != tag && sub_id == 0 && credit == 0 &&
	    o->sub_id == 0 && o->credit == 0 && o->len + need <= BATCH_MAX)
		o->tag = 0;
	else if (o != NULL && (o->tag != tag || o->sub_id != sub_id ||
	                       o->len + need > BATCH_MAX)) {
		mqd_worker_flush_peer(w, p);
		o = NULL;
	}
	if (o == NULL) {
		size_t cap = need > BATCH_MIN ? need : BATCH_MIN;
		o = malloc(sizeof *o + cap);
		if (o == NULL)
			return -1;
		memset(o, 0, sizeof *o);
		o->mail.type = MQD_MAIL_OUTPUT;
		o->owner = w->index;
		o->tag = tag;
		o->sub_id = sub_id;
		o->cap = cap;
		if (w->batches == NULL)
			event_active(w->flush_ev, EV_TIMEOUT, 0);
		p->batch = o;
		p->batch_next = w->batches;
		w->batches = p;
	} else if (o->len + need > o->cap) {
		size_t cap = o->cap * 2 >= o->len + need ? o->cap * 2 : o->len + need;
		struct mqd_mail_output *n = realloc(o, sizeof *o + cap);
		if (n == NULL)
			return -1;
		n->cap = cap;
		p->batch = o = n;
	}
	memcpy(o->data + o->len, head, hlen);
	memcpy(o->data + o->len + hlen, body, blen);
	o->len += need;
	o->frames++;
	o->credit += credit;
	return 0;
}

void mqd_worker_answer(struct mqd_worker *w, struct mqd_req *r)
{
	struct mqd_worker *home = r->conn->home;

	/* Deliveries made before this answer reach the connection first. */
	if (w->batches)
		flush_conn(w, r->conn);

	if (home == w) {
		mqd_conn_req_done(r);
	} else {
		r->mail.type = MQD_MAIL_REPLY;
		mqd_worker_post(home, &r->mail);
	}
}

void mqd_worker_push(struct mqd_worker *w, struct mqd_peer *p,
                     struct mqd_mail_output *o)
{
	mqd_worker_flush_peer(w, p);
	post_output(w, p->conn, o);
}

void mqd_worker_close_done(struct mqd_worker *w, struct mqd_mail_close *c)
{
	/* Reuse the mail for the answer: every mail this owner sent the
	 * connection before now is already ahead of it. */
	if (w->batches)
		flush_conn(w, c->conn);
	c->mail.type = MQD_MAIL_CLOSE_DONE;
	mqd_worker_post(&w->srv->workers[c->conn->home->index], &c->mail);
}

void mqd_worker_wait_done(struct mqd_worker *w, struct mqd_peer *p)
{
	if (--p->waits > 0 || p->close == NULL)
		return;
	/* The connection closed while this was out: now it may go. */
	mqd_worker_close_done(w, p->close);
	free(p);
}

struct mqd_peer *mqd_worker_peer(struct mqd_worker *w, struct mqd_conn *c)
{
	struct mqd_peer *p = mqd_idmap_get(&w->peers, c->id);

	if (p != NULL)
		return p;
	p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	p->conn_id = c->id;
	p->conn = c;
	p->home = c->home->index;
	if (mqd_idmap_put(&w->peers, c->id, p) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

/*
 * A worker's loop turns write interest on and off for nearly every
 * connection on every pass (output appears, is written, is gone).  With
 * the change list, epoll_ctl runs once per pass for what actually changed,
 * instead of once per toggle.
 */
static struct event_base *new_base(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (cfg == NULL)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

int mqd_worker_init(struct mqd_worker *w, struct mqd_server *srv,
                    unsigned index)
{
	memset(w, 0, sizeof *w);
	w->srv = srv;
	w->index = index;
	w->cfg = srv->cfg;
	w->cfg.queues = NULL; /* the sections belong to the server */
	w->cfg.nqueues = 0;
	mqd_qtable_init(&w->queues);
	mqd_idmap_init(&w->held);
	mqd_idmap_init(&w->peers);
	mqd_timers_init(&w->timers);
	w->mb.efd = -1;
	if (mqd_mailbox_init(&w->mb) < 0)
		return -1;
	w->base = new_base();
	if (w->base == NULL)
		return -1;
	w->mb_ev = event_new(w->base, w->mb.efd, EV_READ | EV_PERSIST,
	                     mailbox_cb, w);
	if (w->mb_ev == NULL || event_add(w->mb_ev, NULL) < 0)
		return -1;
	w->flush_ev = event_new(w->base, -1, 0, flush_cb, w);
	w->write_ev = event_new(w->base, -1, 0, write_cb, w);
	if (w->flush_ev == NULL || w->write_ev == NULL)
		return -1;
	w->timer_ev = evtimer_new(w->base, timer_cb, w);
	if (w->timer_ev == NULL)
		return -1;
	return mqd_pubsub_init(w);
}

static void *worker_main(void *arg)
{
	struct mqd_worker *w = arg;

	mqd_log_debug("worker %u: running", w->index);
	event_base_dispatch(w->base);
	mqd_log_debug("worker %u: stopped", w->index);
	return NULL;
}

int mqd_worker_start(struct mqd_worker *w)
{
	return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void mqd_worker_join(struct mqd_worker *w)
{
	pthread_join(w->thread, NULL);
}

void mqd_worker_destroy(struct mqd_worker *w)
{
	struct mqd_mail *m;

	/* By the stop protocol nothing should be left; free what is. */
	while (w->base && (m = mqd_mailbox_take(&w->mb)) != NULL) {
		if (m->type == MQD_MAIL_CONN_NEW)
			close(((struct mqd_mail_conn_new *)m)->fd);
		if (m->type == MQD_MAIL_DEAD)
			mqd_msg_free(((struct mqd_mail_dead *)m)->msg);
		if (m->type == MQD_MAIL_OUTPUT)
			mqd_shared_unref(((struct mqd_mail_output *)m)->shared);
		if (m->type == MQD_MAIL_ROUTE || m->type == MQD_MAIL_ROUTE_DONE) {
			mqd_pubsub_free_mail(m);
			continue;
		}
		/* Queries belong to the main thread's gathering record. */
		if (m->type != MQD_MAIL_REQ && m->type != MQD_MAIL_REPLY &&
		    m->type != MQD_MAIL_QUERY)
			free(m);
	}
	while (w->batches) { /* connections are gone: drop their output */
		struct mqd_peer *p = w->batches;
		w->batches = p->batch_next;
		free(p->batch);
		p->batch = NULL;
	}
	mqd_ops_free_all(w);
	mqd_conn_free_spares(w);
	mqd_pubsub_free(w);
	if (w->flush_ev)
		event_free(w->flush_ev);
	if (w->write_ev)
		event_free(w->write_ev);
	mqd_wbuf_free(&w->scratch);
	if (w->timer_ev)
		event_free(w->timer_ev);
	if (w->mb_ev)
		event_free(w->mb_ev);
	if (w->base)
		event_base_free(w->base);
	mqd_mailbox_destroy(&w->mb);
	w->mb_ev = NULL;
	w->base = NULL;
}
