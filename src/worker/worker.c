/*
 * A worker's thread: its event loop, and the mails it takes from its inbox,
 * each handed to the home or the owner it is for.  See worker.h.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/clock.h"
#include "core/log.h"
#include "net/conn.h"
#include "owner/ops.h"
#include "owner/pubsub.h"
#include "store/message.h"
#include "store/queue.h"
#include "worker/worker.h"

/* Mails taken per loop pass before letting sockets have a turn. */
#define DRAIN_BATCH 4096

static void fill_worker_info(struct mqd_worker *w, struct mqd_worker_info *i)
{
	size_t pos = 0;
	struct mqd_queue *cur = NULL, *q;

	memset(i, 0, sizeof *i);
	i->index = w->index;
	i->queues = w->owner.queues.count;
	i->connections = w->home.nconns;
	while ((q = mqd_qtable_next(&w->owner.queues, &pos, &cur)) != NULL) {
		i->ready += q->ready;
		i->held += q->held;
		i->delayed += q->delayed;
		i->bytes += q->bytes;
	}
	i->mails = w->mails;
	i->frames = w->home.frames;
	i->sent = w->owner.sent;
	i->delivered = w->owner.delivered;
}

/* Connections at home here, and what every peer holds on this owner. */
static void fill_conns(struct mqd_worker *w, struct mqd_mail_query *qm)
{
	size_t n = 0, pos = 0;
	struct mqd_peer *p;

	if (w->home.nconns > 0) {
		qm->conns = calloc(w->home.nconns, sizeof *qm->conns);
		if (qm->conns == NULL) {
			qm->failed = true;
			return;
		}
		for (struct mqd_conn *c = w->home.conns; c && n < w->home.nconns;
		     c = c->next)
			if (mqd_conn_info(c, &qm->conns[n]))
				n++;
	}
	qm->nconns = n;
	if (w->owner.peers.count == 0)
		return;
	qm->held = calloc(w->owner.peers.count, sizeof *qm->held);
	if (qm->held == NULL) {
		qm->failed = true;
		return;
	}
	n = 0;
	while ((p = mqd_idmap_next(&w->owner.peers, &pos, NULL)) != NULL) {
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
		mqd_ops_query(&w->owner, qm);
		break;
	case MQD_QUERY_WORKERS:
		if (qm->winfo)
			fill_worker_info(w, qm->winfo);
		break;
	case MQD_QUERY_CONNS:
		fill_conns(w, qm);
		break;
	case MQD_QUERY_KILL:
		for (struct mqd_conn *c = w->home.conns; c; c = c->next) {
			if (c->id == qm->id && mqd_conn_info(c, NULL)) {
				qm->found = true;
				mqd_conn_kill(c);
				break;
			}
		}
		break;
	case MQD_QUERY_ADMIN:
		mqd_ops_admin(&w->owner, qm);
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
		if (w->home.shutting_down) {
			close(n->fd);
			atomic_fetch_sub(&w->counters->nconns, 1);
		} else {
			mqd_conn_accept(&w->home, n->fd, n->peer, n->over_limit);
		}
		free(n);
		break;
	}
	case MQD_MAIL_REPLY:
		mqd_conn_req_done((struct mqd_req *)m);
		break;
	case MQD_MAIL_OUTPUT: {
		struct mqd_mail_output *o = (struct mqd_mail_output *)m;
		mqd_conn_output(o->conn, o);
		break;
	}
	case MQD_MAIL_CLOSE_DONE: {
		struct mqd_mail_close *c = (struct mqd_mail_close *)m;
		struct mqd_conn *conn = c->conn;
		free(c);
		mqd_conn_close_done(conn);
		break;
	}
	case MQD_MAIL_SHUTDOWN: /* orders are the worker's own mails */
		w->home.shutting_down = true;
		for (struct mqd_conn *c = w->home.conns, *next; c; c = next) {
			next = c->next;
			mqd_conn_shutdown(c);
		}
		atomic_fetch_add(&w->counters->shutdown_acks, 1);
		break;
	case MQD_MAIL_STOP:
		event_base_loopbreak(w->base);
		break;
	case MQD_MAIL_QUERY:
		answer_query(w, (struct mqd_mail_query *)m);
		mqd_mail_post_main(w->router, m);
		break;
	case MQD_MAIL_CONFIG: {
		struct mqd_config_mail *c = (struct mqd_config_mail *)m;
		w->cfg = c->cfg;
		free(c);
		break;
	}
	case MQD_MAIL_PAUSE:
		w->owner.paused = true;
		break;
	default:
		if (!mqd_owner_handle(&w->owner, m))
			mqd_log_error("worker %u: unknown mail type %d",
			              w->index, m->type);
		break;
	}
}

/* The router's handler for this worker (a mail sent to itself). */
static void port_mail(void *ctx, struct mqd_mail *m)
{
	handle_mail(ctx, m);
}

void mqd_worker_port(struct mqd_worker *w, struct mqd_mail_port *out)
{
	out->mb = &w->mb;
	out->handle = port_mail;
	out->ctx = w;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	mqd_owner_timer(&((struct mqd_worker *)arg)->owner);
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
	mqd_conn_release_credits(&w->home);
	/* More left: come back after the sockets have had a turn. */
	if (n == DRAIN_BATCH)
		event_active(w->mb_ev, EV_TIMEOUT, 0);
}

struct mqd_mail *mqd_worker_order(struct mqd_worker *w, int type)
{
	struct mqd_mail *m = &w->orders[type == MQD_MAIL_SHUTDOWN ? 0
	                                : type == MQD_MAIL_PAUSE  ? 1
	                                                          : 2];

	m->type = type;
	return m;
}

void mqd_worker_post(struct mqd_worker *w, struct mqd_mail *m)
{
	mqd_mailbox_post(&w->mb, m);
}

/* ---- the owner's outbox ------------------------------------------------ */

static void out_send(void *ctx, unsigned to, struct mqd_mail *m)
{
	struct mqd_worker *w = ctx;

	mqd_mail_send(w->router, w->index, to, m);
}

static void out_post(void *ctx, unsigned to, struct mqd_mail *m)
{
	struct mqd_worker *w = ctx;

	mqd_mail_post(w->router, to, m);
}

static int out_deadline(void *ctx, uint64_t at)
{
	struct mqd_worker *w = ctx;
	uint64_t now, ms;
	struct timeval tv;

	if (at == 0)
		return evtimer_del(w->timer_ev);
	now = mqd_mono_ms();
	ms = at > now ? at - now : 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	return evtimer_add(w->timer_ev, &tv);
}

static void out_flush_soon(void *ctx)
{
	struct mqd_worker *w = ctx;

	event_active(w->flush_ev, EV_TIMEOUT, 0);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqd_worker *w = arg;

	(void)fd;
	(void)what;
	mqd_owner_flush(&w->owner);
}

/* Activated after flush_cb when output appeared: the pass is over. */
static void write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqd_worker *w = arg;

	(void)fd;
	(void)what;
	mqd_conn_write_pending(&w->home);
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

int mqd_worker_init(struct mqd_worker *w, unsigned index, unsigned nworkers,
                    const struct mqd_config *cfg,
                    const struct mqd_router *router,
                    struct mqd_counters *counters,
                    struct mqd_dlgraph *dlgraph)
{
	const struct mqd_outbox out = {
		.ctx = w,
		.send = out_send,
		.post = out_post,
		.deadline = out_deadline,
		.flush_soon = out_flush_soon,
	};

	memset(w, 0, sizeof *w);
	w->index = index;
	w->router = router;
	w->counters = counters;
	w->cfg = *cfg;
	w->cfg.queues = NULL; /* the sections belong to the server */
	w->cfg.nqueues = 0;
	w->mb.efd = -1;
	/* The owner first: mqd_worker_destroy frees it whatever fails next. */
	if (mqd_owner_init(&w->owner, index, nworkers, &w->cfg, NULL, dlgraph,
	                   &out) < 0)
		return -1;
	if (mqd_mailbox_init(&w->mb) < 0)
		return -1;
	w->base = new_base();
	if (w->base == NULL)
		return -1;
	w->owner.base = w->base;
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
	w->home.index = index;
	w->home.nworkers = nworkers;
	w->home.router = router;
	w->home.counters = counters;
	w->home.cfg = &w->cfg;
	w->home.base = w->base;
	w->home.write_ev = w->write_ev;
	w->home.reap_ev = event_new(w->base, -1, 0, mqd_conn_reap_cb, &w->home);
	w->home.retry_ev = evtimer_new(w->base, mqd_conn_retry_cb, &w->home);
	if (w->home.reap_ev == NULL || w->home.retry_ev == NULL)
		return -1;
	return 0;
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
		/* Queries belong to the main thread's gathering record;
		 * orders are the worker's own. */
		if (m->type != MQD_MAIL_REQ && m->type != MQD_MAIL_REPLY &&
		    m->type != MQD_MAIL_QUERY && m->type != MQD_MAIL_SHUTDOWN &&
		    m->type != MQD_MAIL_PAUSE && m->type != MQD_MAIL_STOP)
			free(m);
	}
	mqd_owner_free(&w->owner);
	mqd_conn_free_spares(&w->home);
	if (w->home.reap_ev)
		event_free(w->home.reap_ev);
	if (w->home.retry_ev)
		event_free(w->home.retry_ev);
	if (w->flush_ev)
		event_free(w->flush_ev);
	if (w->write_ev)
		event_free(w->write_ev);
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
