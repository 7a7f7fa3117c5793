/*
 * Start-up and shutdown order.
 *
 * Start: workers (event bases, mailboxes) are built, listeners bound, then
 * worker threads started; only then is "listening on" worth anything, so
 * the listener logs it after bind and the main loop starts accepting.
 *
 * Stop (SIGTERM/SIGINT): listeners stop accepting; every worker is told to
 * SHUTDOWN (each client gets ERROR SHUTTING_DOWN, its socket closes, and
 * the close protocol runs); when every worker has acknowledged and every
 * connection struct is freed, workers are told to STOP, joined, and what
 * remains (queues and their ready messages) is freed on this thread.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "admin/control.h"
#include "admin/metrics.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/notify.h"
#include "net/listener.h"
#include "proto/proto.h"
#include "server/server.h"
#include "store/dlgraph.h"
#include "store/message.h"
#include "store/ops.h"
#include "core/shard.h"
#include "worker/worker.h"

#define STOP_POLL_MS 5
#define STOP_LIMIT_MS 4000
#define TRIM_EVERY_MS 1000
#define DRAIN_POLL_MS 50
/* SIGTERM waits this long for held messages to be acked: short enough
 * that mqd is gone within 5 s of SIGTERM (what service managers and the
 * daemon's contract expect); `mqctl shutdown [TIMEOUT]` can wait longer. */
#define SIGTERM_WAIT_MS 3000
#define TRIM_AFTER_BYTES (16u << 20)

/* A query being gathered from the workers: one part per worker asked. */
struct mqd_query {
	struct mqd_query *next, *prev;
	int kind; /* enum mqd_query_kind */
	union {
		mqd_queues_cb queues;
		mqd_workers_cb workers;
		mqd_conns_cb conns;
		mqd_kill_cb kill;
		mqd_admin_cb admin;
	} cb;
	void *arg;
	bool all;
	unsigned pending;
	unsigned nparts;
	struct mqd_mail_query **parts;
	struct mqd_admin_result result;
};

/* ---- queries ------------------------------------------------------------ */

void mqd_server_post_main(struct mqd_server *s, struct mqd_mail *m)
{
	mqd_mailbox_post(&s->main_mb, m);
}

static void query_free(struct mqd_server *s, struct mqd_query *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		s->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	for (unsigned i = 0; i < q->nparts; i++) {
		struct mqd_mail_query *p = q->parts[i];
		if (p == NULL)
			continue;
		free(p->rows);
		free(p->winfo);
		free(p->conns);
		free(p->held);
		free(p);
	}
	free(q->parts);
	free(q);
}

/* The caller hears back: with nothing, when the answer was lost. */
static void query_answer_empty(struct mqd_query *q)
{
	struct mqd_admin_result r;

	switch (q->kind) {
	case MQD_QUERY_QUEUES:
		q->cb.queues(q->arg, NULL, 0);
		break;
	case MQD_QUERY_WORKERS:
		q->cb.workers(q->arg, NULL, 0);
		break;
	case MQD_QUERY_CONNS:
		q->cb.conns(q->arg, NULL, 0);
		break;
	case MQD_QUERY_KILL:
		q->cb.kill(q->arg, false);
		break;
	case MQD_QUERY_ADMIN:
		memset(&r, 0, sizeof r);
		r.code = MQD_ERR_SHUTTING_DOWN;
		snprintf(r.message, sizeof r.message, "server stopping");
		q->cb.admin(q->arg, &r);
		break;
	default:
		break;
	}
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct mqd_queue_info *)a)->name,
	              ((const struct mqd_queue_info *)b)->name);
}

static int by_id(const void *a, const void *b)
{
	uint64_t x = ((const struct mqd_conn_info *)a)->id;
	uint64_t y = ((const struct mqd_conn_info *)b)->id;
	return x < y ? -1 : x > y;
}

static void finish_queues(struct mqd_query *q, bool failed)
{
	size_t n = 0, k = 0;
	struct mqd_queue_info *rows = NULL;

	for (unsigned i = 0; i < q->nparts; i++)
		n += q->parts[i]->n;
	if (!failed && n > 0 && (rows = malloc(n * sizeof *rows)) == NULL)
		failed = true;
	if (failed) {
		mqd_log_error("out of memory answering a queue query");
		n = 0;
	}
	for (unsigned i = 0; rows && i < q->nparts; i++) {
		if (q->parts[i]->n == 0)
			continue; /* its rows may be NULL */
		memcpy(rows + k, q->parts[i]->rows,
		       q->parts[i]->n * sizeof *rows);
		k += q->parts[i]->n;
	}
	if (q->all && n > 1)
		qsort(rows, n, sizeof *rows, by_name);
	q->cb.queues(q->arg, rows, n);
	free(rows);
}

static void finish_workers(struct mqd_query *q, bool failed)
{
	struct mqd_worker_info *rows = calloc(q->nparts, sizeof *rows);

	if (rows == NULL || failed) {
		q->cb.workers(q->arg, NULL, 0);
		free(rows);
		return;
	}
	for (unsigned i = 0; i < q->nparts; i++)
		rows[i] = *q->parts[i]->winfo;
	q->cb.workers(q->arg, rows, q->nparts);
	free(rows);
}

static void finish_conns(struct mqd_query *q, bool failed)
{
	size_t n = 0, k = 0;
	struct mqd_conn_info *rows = NULL;

	for (unsigned i = 0; i < q->nparts; i++)
		n += q->parts[i]->nconns;
	if (!failed && n > 0 && (rows = malloc(n * sizeof *rows)) == NULL)
		failed = true;
	if (failed || n == 0) {
		q->cb.conns(q->arg, NULL, 0);
		free(rows);
		return;
	}
	for (unsigned i = 0; i < q->nparts; i++) {
		if (q->parts[i]->nconns == 0)
			continue;
		memcpy(rows + k, q->parts[i]->conns,
		       q->parts[i]->nconns * sizeof *rows);
		k += q->parts[i]->nconns;
	}
	qsort(rows, n, sizeof *rows, by_id);
	/* Held messages are counted by their owners: add them up. */
	for (unsigned i = 0; i < q->nparts; i++) {
		for (size_t j = 0; j < q->parts[i]->nheld; j++) {
			struct mqd_conn_info key = {.id = q->parts[i]->held[j].conn_id};
			struct mqd_conn_info *c =
				bsearch(&key, rows, n, sizeof *rows, by_id);
			if (c)
				c->held += q->parts[i]->held[j].held;
		}
	}
	q->cb.conns(q->arg, rows, n);
	free(rows);
}

static void query_finish(struct mqd_server *s, struct mqd_query *q)
{
	bool failed = false, found = false;

	for (unsigned i = 0; i < q->nparts; i++) {
		failed |= q->parts[i]->failed;
		found |= q->parts[i]->found;
	}
	switch (q->kind) {
	case MQD_QUERY_QUEUES:
		finish_queues(q, failed);
		break;
	case MQD_QUERY_WORKERS:
		finish_workers(q, failed);
		break;
	case MQD_QUERY_CONNS:
		finish_conns(q, failed);
		break;
	case MQD_QUERY_KILL:
		q->cb.kill(q->arg, found);
		break;
	case MQD_QUERY_ADMIN:
		q->cb.admin(q->arg, &q->result);
		break;
	default:
		break;
	}
	query_free(s, q);
}

static void main_mailbox_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqd_server *s = arg;
	struct mqd_mail *m;

	(void)fd;
	(void)what;
	mqd_mailbox_ack_wake(&s->main_mb);
	while ((m = mqd_mailbox_take(&s->main_mb)) != NULL) {
		if (m->type != MQD_MAIL_QUERY)
			continue;
		struct mqd_query *q = ((struct mqd_mail_query *)m)->query;
		if (--q->pending == 0)
			query_finish(s, q);
	}
}

/* A query with one part per worker (owner >= nworkers), or one part for
 * the given worker.  NULL when out of memory or stopped. */
static struct mqd_query *query_new(struct mqd_server *s, int kind,
                                   unsigned owner, void *arg)
{
	struct mqd_query *q;

	if (s->workers == NULL) /* stopped: nobody to ask */
		return NULL;
	q = calloc(1, sizeof *q);
	if (q == NULL)
		return NULL;
	q->kind = kind;
	q->arg = arg;
	q->all = owner >= s->nworkers;
	q->nparts = q->all ? s->nworkers : 1;
	q->parts = calloc(q->nparts, sizeof *q->parts);
	for (unsigned i = 0; q->parts && i < q->nparts; i++) {
		struct mqd_mail_query *p = calloc(1, sizeof *p);
		if (p == NULL)
			break;
		q->parts[i] = p;
		p->mail.type = MQD_MAIL_QUERY;
		p->query = q;
		p->kind = kind;
		p->result = &q->result;
		p->dest = q->all ? i : owner;
		if (kind == MQD_QUERY_WORKERS &&
		    (p->winfo = calloc(1, sizeof *p->winfo)) == NULL)
			break;
	}
	if (q->parts == NULL || q->parts[q->nparts - 1] == NULL ||
	    (kind == MQD_QUERY_WORKERS && q->parts[q->nparts - 1]->winfo == NULL)) {
		for (unsigned i = 0; q->parts && i < q->nparts; i++) {
			if (q->parts[i])
				free(q->parts[i]->winfo);
			free(q->parts[i]);
		}
		free(q->parts);
		free(q);
		return NULL;
	}
	return q;
}

static void query_post(struct mqd_server *s, struct mqd_query *q)
{
	q->next = s->queries;
	if (s->queries)
		s->queries->prev = q;
	s->queries = q;
	q->pending = q->nparts;
	for (unsigned i = 0; i < q->nparts; i++)
		mqd_worker_post(&s->workers[q->parts[i]->dest],
		                &q->parts[i]->mail);
}

int mqd_server_query_queues(struct mqd_server *s, const char *name,
                            mqd_queues_cb cb, void *arg)
{
	size_t len = name ? strlen(name) : 0;
	/* A name too long to exist is still asked (as " ", which no queue
	 * can have), so the answer comes the usual way. */
	const char *ask = name == NULL ? NULL : len <= 255 ? name : " ";
	unsigned owner = ask ? mqd_shard_of(ask, strlen(ask), s->nworkers)
	                     : UINT32_MAX;
	struct mqd_query *q = query_new(s, MQD_QUERY_QUEUES, owner, arg);

	if (q == NULL)
		return -1;
	q->cb.queues = cb;
	if (ask)
		snprintf(q->parts[0]->name, sizeof q->parts[0]->name, "%s", ask);
	query_post(s, q);
	return 0;
}

int mqd_server_query_workers(struct mqd_server *s, mqd_workers_cb cb,
                             void *arg)
{
	struct mqd_query *q = query_new(s, MQD_QUERY_WORKERS, UINT32_MAX, arg);

	if (q == NULL)
		return -1;
	q->cb.workers = cb;
	query_post(s, q);
	return 0;
}

int mqd_server_query_conns(struct mqd_server *s, mqd_conns_cb cb, void *arg)
{
	struct mqd_query *q = query_new(s, MQD_QUERY_CONNS, UINT32_MAX, arg);

	if (q == NULL)
		return -1;
	q->cb.conns = cb;
	query_post(s, q);
	return 0;
}

int mqd_server_kill_conn(struct mqd_server *s, uint64_t id, mqd_kill_cb cb,
                         void *arg)
{
	struct mqd_query *q = query_new(s, MQD_QUERY_KILL, UINT32_MAX, arg);

	if (q == NULL)
		return -1;
	q->cb.kill = cb;
	/* Only its home worker knows it: ask them all. */
	for (unsigned i = 0; i < q->nparts; i++)
		q->parts[i]->id = id;
	query_post(s, q);
	return 0;
}

/* op -1: apply a [queue NAME] section's settings (reload). */
static int admin_post(struct mqd_server *s, int op, const char *name,
                      const struct mqd_queue_conf *settings, bool if_empty,
                      mqd_admin_cb cb, void *arg)
{
	size_t len = strlen(name);
	struct mqd_query *q;

	if (!mqd_name_valid((const uint8_t *)name, len))
		return -1;
	q = query_new(s, MQD_QUERY_ADMIN,
	              mqd_shard_of(name, len, s->nworkers), arg);
	if (q == NULL)
		return -1;
	q->cb.admin = cb;
	snprintf(q->parts[0]->name, sizeof q->parts[0]->name, "%s", name);
	q->parts[0]->admin_op = op;
	q->parts[0]->if_empty = if_empty;
	if (settings) {
		q->parts[0]->settings = *settings;
		snprintf(q->parts[0]->settings.name,
		         sizeof q->parts[0]->settings.name, "%s", name);
		q->parts[0]->has_settings = true;
	}
	query_post(s, q);
	return 0;
}

int mqd_server_admin_queue(struct mqd_server *s, enum mqd_admin_op op,
                           const char *name,
                           const struct mqd_queue_conf *settings,
                           bool if_empty, mqd_admin_cb cb, void *arg)
{
	return admin_post(s, (int)op, name, settings, if_empty, cb, arg);
}

void mqd_server_stats(struct mqd_server *s, struct mqd_server_stats *out)
{
	out->uptime_ms = mqd_now_ms() - s->started_ms;
	out->connections = atomic_load(&s->nconns);
	out->workers = s->nworkers;
	out->mem_accounted = mqd_msg_mem_used();
	out->max_memory = s->cfg.max_memory;
}

static void rates_cb(void *arg, const struct mqd_worker_info *rows, size_t n)
{
	struct mqd_server *s = arg;
	unsigned cap = sizeof s->rate_samples / sizeof s->rate_samples[0];
	uint64_t sent = 0, delivered = 0;

	s->rate_query_out = false;
	if (rows == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		sent += rows[i].sent;
		delivered += rows[i].delivered;
	}
	if (s->nrate_samples == cap) {
		memmove(s->rate_samples, s->rate_samples + 1,
		        (cap - 1) * sizeof s->rate_samples[0]);
		s->nrate_samples--;
	}
	s->rate_samples[s->nrate_samples].at_ms = mqd_mono_ms();
	s->rate_samples[s->nrate_samples].sent = sent;
	s->rate_samples[s->nrate_samples].delivered = delivered;
	s->nrate_samples++;
}

void mqd_server_rates(struct mqd_server *s, struct mqd_rates *out)
{
	unsigned n = s->nrate_samples;

	out->in = out->out = 0;
	if (n < 2)
		return;
	double dt = (double)(s->rate_samples[n - 1].at_ms -
	                     s->rate_samples[0].at_ms) / 1000.0;
	if (dt <= 0)
		return;
	out->in = (double)(s->rate_samples[n - 1].sent -
	                   s->rate_samples[0].sent) / dt;
	out->out = (double)(s->rate_samples[n - 1].delivered -
	                    s->rate_samples[0].delivered) / dt;
}

/* Once a second.  Give freed message memory back to the kernel once a
 * backlog drains
 * (glibc keeps freed chunks inside its arenas otherwise): after every
 * 16 MiB drop, and once the count has settled below its peak. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqd_server *s = arg;
	uint64_t used = mqd_msg_mem_used();

	bool settled = used == s->mem_last && s->mem_peak - used > (1u << 20);

	(void)fd;
	(void)what;
	/* Once a second: sample the workers' totals for the rates. */
	if (!s->rate_query_out && mqd_server_query_workers(s, rates_cb, s) == 0)
		s->rate_query_out = true;
	s->mem_last = used;
	if (used > s->mem_peak) {
		s->mem_peak = used;
	} else if (s->mem_peak - used > TRIM_AFTER_BYTES || settled) {
#ifdef HAVE_MALLOC_TRIM
		malloc_trim(0);
#endif
		mqd_log_debug("message memory down from %llu to %llu bytes: "
		              "returned free memory to the system",
		              (unsigned long long)s->mem_peak,
		              (unsigned long long)used);
		s->mem_peak = used;
	}
}

void mqd_server_conn_socket_closed(struct mqd_server *s)
{
	atomic_fetch_sub(&s->nconns, 1);
}

void mqd_server_conn_freed(struct mqd_server *s)
{
	atomic_fetch_sub(&s->live_conns, 1);
}


static void post_all(struct mqd_server *s, int type)
{
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct mqd_mail *m = malloc(sizeof *m);
		if (m == NULL) {
			/* Cannot even stop politely: leave at once. */
			mqd_log_error("out of memory while stopping");
			_exit(1);
		}
		m->type = type;
		mqd_worker_post(&s->workers[i], m);
	}
}

static void stop_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqd_server *s = arg;
	bool done = atomic_load(&s->shutdown_acks) == s->nworkers &&
	            atomic_load(&s->live_conns) == 0;

	(void)fd;
	(void)what;
	if (!done && mqd_mono_ms() - s->stop_started < STOP_LIMIT_MS)
		return;
	if (!done) {
		mqd_log_error("%u connections still closing after %u ms; "
		              "stopping anyway",
		              atomic_load(&s->live_conns), STOP_LIMIT_MS);
		s->exit_code = 1;
	}
	event_base_loopbreak(s->base);
}

static void begin_stop(struct mqd_server *s, const char *why)
{
	struct timeval tv = {0, STOP_POLL_MS * 1000};

	if (atomic_exchange(&s->stopping, true))
		return;
	mqd_log_info("%s: stopping", why);
	mqd_notify("STOPPING=1");
	/* Close the listening sockets: a client trying to connect now is
	 * refused at once instead of waiting in the kernel's backlog. */
	for (struct mqd_listener *l = s->listeners, *next; l; l = next) {
		next = mqd_listener_next(l);
		mqd_listener_free(l);
	}
	s->listeners = NULL;
	s->stop_started = mqd_mono_ms();
	post_all(s, MQD_MAIL_SHUTDOWN);
	s->stop_timer = event_new(s->base, -1, EV_PERSIST, stop_check_cb, s);
	if (s->stop_timer == NULL || event_add(s->stop_timer, &tv) < 0) {
		mqd_log_error("cannot arm the stop timer");
		event_base_loopbreak(s->base);
	}
}

static void drain_finish(struct mqd_server *s, const char *why)
{
	if (s->drain_timer)
		event_del(s->drain_timer);
	s->draining = false;
	begin_stop(s, why);
}

static void drain_held_cb(void *arg, const struct mqd_worker_info *rows,
                          size_t n)
{
	struct mqd_server *s = arg;
	uint64_t held = 0;

	s->drain_query_out = false;
	if (!s->draining)
		return;
	for (size_t i = 0; i < n; i++)
		held += rows[i].held;
	if (rows != NULL && held == 0)
		drain_finish(s, "shutdown: no message held");
}

static void drain_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqd_server *s = arg;

	(void)fd;
	(void)what;
	if (!s->draining)
		return;
	if (mqd_mono_ms() >= s->drain_deadline) {
		drain_finish(s, "shutdown: wait for acks over");
		return;
	}
	if (!s->drain_query_out &&
	    mqd_server_query_workers(s, drain_held_cb, s) == 0)
		s->drain_query_out = true;
}

void mqd_server_shutdown(struct mqd_server *s, uint64_t timeout_ms)
{
	uint64_t deadline = mqd_mono_ms() + timeout_ms;
	struct timeval tv = {0, DRAIN_POLL_MS * 1000};

	if (atomic_load(&s->stopping))
		return;
	if (s->draining) {
		if (deadline < s->drain_deadline)
			s->drain_deadline = deadline;
		mqd_log_info("shutdown: waiting at most %llu ms more",
		             (unsigned long long)timeout_ms);
		return;
	}
	mqd_notify("STOPPING=1");
	mqd_log_info("shutting down: no new connections, no new deliveries; "
	             "waiting up to %llu ms for held messages to be acked",
	             (unsigned long long)timeout_ms);
	s->draining = true;
	s->drain_deadline = deadline;
	/* Connections still come in, and their HELLO gets SHUTTING_DOWN:
	 * a client learns at once rather than hanging. */
	atomic_store(&s->refuse_new, true);
	post_all(s, MQD_MAIL_PAUSE);
	if (s->drain_timer == NULL)
		s->drain_timer = event_new(s->base, -1, EV_PERSIST, drain_tick_cb, s);
	if (s->drain_timer == NULL || event_add(s->drain_timer, &tv) < 0) {
		mqd_log_error("cannot arm the shutdown timer; stopping now");
		drain_finish(s, "shutdown");
		return;
	}
	drain_tick_cb(-1, 0, s);
}

int mqd_server_log_reopen(struct mqd_server *s)
{
	(void)s;
	if (mqd_log_reopen() < 0) {
		int err = errno;
		mqd_log_error("cannot reopen the log file: %s", strerror(err));
		errno = err; /* for the caller's message */
		return -1;
	}
	mqd_log_info("log file reopened");
	return 0;
}

/* ---- reload ---------------------------------------------------------- */

static void add_item(char *list, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void add_item(char *list, size_t cap, const char *fmt, ...)
{
	size_t len = strlen(list);
	va_list ap;

	if (len > 0 && len + 2 < cap) {
		memcpy(list + len, ", ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(list + len, cap - len, fmt, ap);
	va_end(ap);
}

static bool same_listen(const struct mqd_config *a, const struct mqd_config *b)
{
	if (a->nlisten != b->nlisten)
		return false;
	for (size_t i = 0; i < a->nlisten; i++)
		if (a->listen[i].port != b->listen[i].port ||
		    strcmp(a->listen[i].host, b->listen[i].host) != 0)
			return false;
	return true;
}

static bool same_queue_conf(const struct mqd_queue_conf *a,
                            const struct mqd_queue_conf *b)
{
	return a->max_length == b->max_length && a->max_bytes == b->max_bytes &&
	       a->overflow == b->overflow &&
	       a->message_ttl_ms == b->message_ttl_ms &&
	       a->ack_timeout_ms == b->ack_timeout_ms &&
	       a->max_attempts == b->max_attempts &&
	       strcmp(a->dead_letter, b->dead_letter) == 0;
}

static void reload_admin_cb(void *arg, const struct mqd_admin_result *r)
{
	(void)arg;
	if (r->code != 0)
		mqd_log_error("reload: a queue section could not be applied: "
		              "%s: %s", mqd_err_name(r->code), r->message);
}

/* Settings that only a restart changes: keep the running ones, and say. */
static void keep_restart_only(const struct mqd_config *old,
                              struct mqd_config *n, char *list, size_t cap)
{
	if (!same_listen(old, n))
		add_item(list, cap, "listen");
	if (old->workers != n->workers)
		add_item(list, cap, "workers");
	if (strcmp(old->control_socket, n->control_socket) != 0)
		add_item(list, cap, "control_socket");
	if (old->control_socket_mode != n->control_socket_mode)
		add_item(list, cap, "control_socket_mode");
	if (old->metrics_on != n->metrics_on ||
	    (n->metrics_on &&
	     (old->metrics_listen.port != n->metrics_listen.port ||
	      strcmp(old->metrics_listen.host, n->metrics_listen.host) != 0)))
		add_item(list, cap, "metrics_listen");
	if (old->max_frame != n->max_frame)
		add_item(list, cap, "max_frame");
	if (strcmp(old->pidfile, n->pidfile) != 0)
		add_item(list, cap, "pidfile");
	if (strcmp(old->log_file, n->log_file) != 0)
		add_item(list, cap, "log_file");
	memcpy(n->listen, old->listen, sizeof n->listen);
	n->nlisten = old->nlisten;
	n->workers = old->workers;
	memcpy(n->control_socket, old->control_socket, sizeof n->control_socket);
	n->control_socket_mode = old->control_socket_mode;
	n->metrics_on = old->metrics_on;
	n->metrics_listen = old->metrics_listen;
	n->max_frame = old->max_frame;
	memcpy(n->pidfile, old->pidfile, sizeof n->pidfile);
	memcpy(n->log_file, old->log_file, sizeof n->log_file);
}

void mqd_server_reload(struct mqd_server *s, struct mqd_reload_result *out)
{
	struct mqd_config *n = calloc(1, sizeof *n);
	const struct mqd_config *old = &s->cfg;

	memset(out, 0, sizeof *out);
	if (n == NULL) {
		snprintf(out->error, sizeof out->error, "out of memory");
		return;
	}
	mqd_notify("RELOADING=1");
	if (mqd_config_load(n, old->path, out->error, sizeof out->error) < 0) {
		mqd_log_error("reload refused, running configuration kept: %s",
		              out->error);
		free(n);
		mqd_notify("READY=1");
		return;
	}
	keep_restart_only(old, n, out->restart_needed,
	                  sizeof out->restart_needed);
	/* Against the level in force: reload undoes a `loglevel`. */
	if (mqd_log_get_level() != n->log_level) {
		mqd_log_set_level(n->log_level);
		add_item(out->applied, sizeof out->applied, "log_level");
	}
	if (old->max_connections != n->max_connections)
		add_item(out->applied, sizeof out->applied, "max_connections");
	if (old->auto_create != n->auto_create)
		add_item(out->applied, sizeof out->applied, "auto_create");
	if (old->idle_timeout_ms != n->idle_timeout_ms)
		add_item(out->applied, sizeof out->applied,
		         "idle_timeout (new connections)");
	if (old->max_memory != n->max_memory) {
		mqd_msg_set_limit(n->max_memory);
		add_item(out->applied, sizeof out->applied, "max_memory");
	}
	if (old->defaults.prefetch != n->defaults.prefetch ||
	    !same_queue_conf(&old->defaults.queue, &n->defaults.queue))
		add_item(out->applied, sizeof out->applied,
		         "[defaults] (new queues and consumers)");
	for (size_t i = 0; i < n->nqueues; i++) {
		const struct mqd_queue_conf *nq = &n->queues[i], *oq = NULL;
		for (size_t j = 0; j < old->nqueues && oq == NULL; j++)
			if (strcmp(old->queues[j].name, nq->name) == 0)
				oq = &old->queues[j];
		if (oq != NULL && same_queue_conf(oq, nq))
			continue;
		if (admin_post(s, -1, nq->name, nq, false, reload_admin_cb,
		               NULL) < 0) {
			add_item(out->restart_needed, sizeof out->restart_needed,
			         "[queue %s] (could not be applied now)", nq->name);
			continue;
		}
		add_item(out->applied, sizeof out->applied, "[queue %s]%s",
		         nq->name, oq ? "" : " (new)");
	}
	/* Every worker gets its own copy of the new settings. */
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct mqd_config_mail *m = malloc(sizeof *m);
		if (m == NULL) {
			add_item(out->restart_needed, sizeof out->restart_needed,
			         "worker %u settings (out of memory)", i);
			continue;
		}
		m->mail.type = MQD_MAIL_CONFIG;
		m->cfg = *n;
		m->cfg.queues = NULL;
		m->cfg.nqueues = 0;
		mqd_worker_post(&s->workers[i], &m->mail);
	}
	mqd_config_free(&s->cfg);
	s->cfg = *n;
	free(n);
	out->ok = true;
	mqd_notify("READY=1");
	mqd_log_info("configuration reloaded; applied: %s; needs a restart: %s",
	             out->applied[0] ? out->applied : "nothing",
	             out->restart_needed[0] ? out->restart_needed : "nothing");
}

void mqd_server_shutdown_ack(struct mqd_server *s)
{
	atomic_fetch_add(&s->shutdown_acks, 1);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct mqd_server *s = arg;

	(void)what;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		/* As `mqctl shutdown`; a second signal stops waiting. */
		mqd_log_info("%s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		mqd_server_shutdown(s, s->draining ? 0 : SIGTERM_WAIT_MS);
		break;
	case SIGHUP: {
		struct mqd_reload_result *r = malloc(sizeof *r);
		if (r == NULL) {
			mqd_log_error("SIGHUP: out of memory; nothing reloaded");
			break;
		}
		mqd_server_reload(s, r);
		free(r);
		break;
	}
	case SIGUSR1:
		(void)mqd_server_log_reopen(s);
		break;
	default:
		break;
	}
}

static unsigned cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (unsigned)n;
}

int mqd_server_init(struct mqd_server *s, const struct mqd_config *cfg)
{
	struct mqd_listener *last = NULL;

	memset(s, 0, sizeof *s);
	s->cfg = *cfg;
	s->main_mb.efd = -1;
	s->nworkers = cfg->workers ? cfg->workers : cpu_count();
	if (s->nworkers > 256)
		s->nworkers = 256;
	atomic_init(&s->nconns, 0);
	atomic_init(&s->live_conns, 0);
	atomic_init(&s->next_conn_id, 1);
	atomic_init(&s->stopping, false);
	atomic_init(&s->refuse_new, false);
	atomic_init(&s->shutdown_acks, 0);
	s->started_ms = mqd_now_ms();
	s->base = event_base_new();
	s->workers = calloc(s->nworkers, sizeof *s->workers);
	s->dlgraph = mqd_dlgraph_new();
	if (s->base == NULL || s->workers == NULL || s->dlgraph == NULL) {
		mqd_log_error("out of memory at start-up");
		return -1;
	}
	for (unsigned i = 0; i < s->nworkers; i++) {
		if (mqd_worker_init(&s->workers[i], s, i) < 0) {
			mqd_log_error("cannot set up worker %u", i);
			return -1;
		}
	}
	s->main_mb.efd = -1;
	if (mqd_mailbox_init(&s->main_mb) < 0 ||
	    (s->main_mb_ev = event_new(s->base, s->main_mb.efd,
	                               EV_READ | EV_PERSIST, main_mailbox_cb,
	                               s)) == NULL ||
	    event_add(s->main_mb_ev, NULL) < 0) {
		mqd_log_error("cannot set up the main mailbox");
		return -1;
	}
	mqd_msg_set_limit(cfg->max_memory);
	/* [queue NAME] sections: made before any worker runs, so directly. */
	for (size_t i = 0; i < cfg->nqueues; i++) {
		const struct mqd_queue_conf *qc = &cfg->queues[i];
		unsigned o = mqd_shard_of(qc->name, strlen(qc->name), s->nworkers);
		if (mqd_ops_create_configured(&s->workers[o], qc) < 0) {
			mqd_log_error("out of memory creating queue %s", qc->name);
			return -1;
		}
	}
	{
		struct timeval tv = {TRIM_EVERY_MS / 1000,
		                     (TRIM_EVERY_MS % 1000) * 1000};
		s->trim_timer = event_new(s->base, -1, EV_PERSIST, tick_cb, s);
		if (s->trim_timer == NULL || event_add(s->trim_timer, &tv) < 0) {
			mqd_log_error("cannot arm the memory trim timer");
			return -1;
		}
	}
	/* Signals before any socket: a SIGTERM that comes as soon as we
	 * listen must stop us cleanly, not kill us. */
	s->sig_term = evsignal_new(s->base, SIGTERM, signal_cb, s);
	s->sig_int = evsignal_new(s->base, SIGINT, signal_cb, s);
	s->sig_hup = evsignal_new(s->base, SIGHUP, signal_cb, s);
	s->sig_usr1 = evsignal_new(s->base, SIGUSR1, signal_cb, s);
	if (!s->sig_term || !s->sig_int || !s->sig_hup || !s->sig_usr1 ||
	    event_add(s->sig_usr1, NULL) < 0 ||
	    event_add(s->sig_term, NULL) < 0 || event_add(s->sig_int, NULL) < 0 ||
	    event_add(s->sig_hup, NULL) < 0) {
		mqd_log_error("cannot install signal handlers");
		return -1;
	}
	/* The control socket first: once "listening on" is logged, every
	 * way in works. */
	if (mqd_control_start(s) < 0 || mqd_metrics_start(s) < 0)
		return -1;
	for (size_t i = 0; i < cfg->nlisten; i++) {
		struct mqd_listener *l = mqd_listener_new(s, &cfg->listen[i]);
		if (l == NULL)
			return -1;
		if (last)
			mqd_listener_link(last, l);
		else
			s->listeners = l;
		last = l;
	}
	for (unsigned i = 0; i < s->nworkers; i++) {
		if (mqd_worker_start(&s->workers[i]) < 0) {
			mqd_log_error("cannot start worker thread %u", i);
			return -1;
		}
		s->workers[i].started = true;
	}
	mqd_log_info("mqd %s ready: %u workers, max_frame %u", PACKAGE_VERSION,
	             s->nworkers, cfg->max_frame);
	return 0;
}

int mqd_server_run(struct mqd_server *s)
{
	event_base_dispatch(s->base);
	return s->exit_code;
}

void mqd_server_free(struct mqd_server *s)
{
	struct mqd_listener *l, *next;

	if (s->workers) {
		bool any = false;
		for (unsigned i = 0; i < s->nworkers; i++)
			any |= s->workers[i].started;
		if (any)
			post_all(s, MQD_MAIL_STOP);
		for (unsigned i = 0; i < s->nworkers; i++)
			if (s->workers[i].started)
				mqd_worker_join(&s->workers[i]);
		for (unsigned i = 0; i < s->nworkers; i++)
			mqd_worker_destroy(&s->workers[i]);
		free(s->workers);
		s->workers = NULL;
	}
	for (l = s->listeners; l; l = next) {
		next = mqd_listener_next(l);
		mqd_listener_free(l);
	}
	if (s->sig_term)
		event_free(s->sig_term);
	if (s->sig_int)
		event_free(s->sig_int);
	if (s->sig_hup)
		event_free(s->sig_hup);
	if (s->sig_usr1)
		event_free(s->sig_usr1);
	if (s->drain_timer)
		event_free(s->drain_timer);
	if (s->stop_timer)
		event_free(s->stop_timer);
	/* Queries still out are answered empty: every caller hears back
	 * exactly once, even at exit. */
	while (s->queries) {
		query_answer_empty(s->queries);
		query_free(s, s->queries);
	}
	mqd_control_stop(s);
	mqd_metrics_stop(s);
	if (s->trim_timer)
		event_free(s->trim_timer);
	if (s->main_mb_ev)
		event_free(s->main_mb_ev);
	mqd_mailbox_destroy(&s->main_mb);
	mqd_dlgraph_free(s->dlgraph);
	mqd_config_free(&s->cfg);
	if (s->base)
		event_base_free(s->base);
	memset(s, 0, sizeof *s);
}
