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

#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "admin/control.h"
#include "core/log.h"
#include "net/listener.h"
#include "server.h"
#include "store/dlgraph.h"
#include "store/message.h"
#include "store/ops.h"
#include "worker/shard.h"
#include "worker/worker.h"

#define STOP_POLL_MS 5
#define STOP_LIMIT_MS 4000
#define TRIM_EVERY_MS 1000
#define TRIM_AFTER_BYTES (16u << 20)

/* A queue query being gathered from the owners. */
struct mqd_query {
	struct mqd_query *next, *prev;
	mqd_queues_cb cb;
	void *arg;
	bool all;
	unsigned pending;
	unsigned nparts;
	struct mqd_mail_query **parts;
};

uint64_t mqd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t mqd_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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
		if (q->parts[i])
			free(q->parts[i]->rows);
		free(q->parts[i]);
	}
	free(q->parts);
	free(q);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct mqd_queue_info *)a)->name,
	              ((const struct mqd_queue_info *)b)->name);
}

static void query_finish(struct mqd_server *s, struct mqd_query *q)
{
	size_t n = 0, k = 0;
	struct mqd_queue_info *rows = NULL;
	bool failed = false;

	for (unsigned i = 0; i < q->nparts; i++) {
		n += q->parts[i]->n;
		failed |= q->parts[i]->failed;
	}
	if (n > 0 && (rows = malloc(n * sizeof *rows)) == NULL)
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
	q->cb(q->arg, rows, n);
	free(rows);
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

int mqd_server_query_queues(struct mqd_server *s, const char *name,
                            mqd_queues_cb cb, void *arg)
{
	struct mqd_query *q;
	size_t len = name ? strlen(name) : 0;

	if (s->workers == NULL) /* stopped: nobody to ask */
		return -1;
	q = calloc(1, sizeof *q);
	if (q == NULL)
		return -1;
	q->cb = cb;
	q->arg = arg;
	q->all = name == NULL;
	/* A name too long to exist still gets its (empty) answer from the
	 * owner, asked with a name no queue can have. */
	q->nparts = q->all ? s->nworkers : 1;
	q->parts = calloc(q->nparts, sizeof *q->parts);
	for (unsigned i = 0; q->parts && i < q->nparts; i++) {
		q->parts[i] = calloc(1, sizeof *q->parts[i]);
		if (q->parts[i] == NULL)
			break;
		q->parts[i]->mail.type = MQD_MAIL_QUERY;
		q->parts[i]->query = q;
		if (!q->all)
			snprintf(q->parts[i]->name, sizeof q->parts[i]->name,
			         "%s", len <= 255 ? name : " ");
	}
	if (q->parts == NULL || q->parts[q->nparts - 1] == NULL) {
		for (unsigned i = 0; q->parts && i < q->nparts; i++)
			free(q->parts[i]);
		free(q->parts);
		free(q);
		return -1;
	}
	q->next = s->queries;
	if (s->queries)
		s->queries->prev = q;
	s->queries = q;
	q->pending = q->nparts;
	for (unsigned i = 0; i < q->nparts; i++) {
		unsigned owner = q->all ? i
		                        : mqd_shard_of(q->parts[i]->name,
		                                       strlen(q->parts[i]->name),
		                                       s->nworkers);
		mqd_worker_post(&s->workers[owner], &q->parts[i]->mail);
	}
	return 0;
}

void mqd_server_stats(struct mqd_server *s, struct mqd_server_stats *out)
{
	out->uptime_ms = mqd_now_ms() - s->started_ms;
	out->connections = atomic_load(&s->nconns);
	out->workers = s->nworkers;
	out->mem_accounted = mqd_msg_mem_used();
	out->max_memory = s->cfg.max_memory;
}

/* Give freed message memory back to the kernel once a backlog drains
 * (glibc keeps freed chunks inside its arenas otherwise): after every
 * 16 MiB drop, and once the count has settled below its peak. */
static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqd_server *s = arg;
	uint64_t used = mqd_msg_mem_used();

	(void)fd;
	(void)what;
	bool settled = used == s->mem_last && s->mem_peak - used > (1u << 20);

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
	for (struct mqd_listener *l = s->listeners; l; l = mqd_listener_next(l))
		mqd_listener_disable(l);
	s->stop_started = mqd_mono_ms();
	post_all(s, MQD_MAIL_SHUTDOWN);
	s->stop_timer = event_new(s->base, -1, EV_PERSIST, stop_check_cb, s);
	if (s->stop_timer == NULL || event_add(s->stop_timer, &tv) < 0) {
		mqd_log_error("cannot arm the stop timer");
		event_base_loopbreak(s->base);
	}
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
		begin_stop(s, "SIGTERM");
		break;
	case SIGINT:
		begin_stop(s, "SIGINT");
		break;
	case SIGHUP:
		mqd_log_warn("SIGHUP: configuration reload is not available in "
		             "this version; nothing changed");
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
		s->trim_timer = event_new(s->base, -1, EV_PERSIST, trim_cb, s);
		if (s->trim_timer == NULL || event_add(s->trim_timer, &tv) < 0) {
			mqd_log_error("cannot arm the memory trim timer");
			return -1;
		}
	}
	/* The control socket first: once "listening on" is logged, every
	 * way in works. */
	if (mqd_control_start(s) < 0)
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
	s->sig_term = evsignal_new(s->base, SIGTERM, signal_cb, s);
	s->sig_int = evsignal_new(s->base, SIGINT, signal_cb, s);
	s->sig_hup = evsignal_new(s->base, SIGHUP, signal_cb, s);
	if (!s->sig_term || !s->sig_int || !s->sig_hup ||
	    event_add(s->sig_term, NULL) < 0 || event_add(s->sig_int, NULL) < 0 ||
	    event_add(s->sig_hup, NULL) < 0) {
		mqd_log_error("cannot install signal handlers");
		return -1;
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
	if (s->stop_timer)
		event_free(s->stop_timer);
	/* Queries still out are answered empty: every caller hears back
	 * exactly once, even at exit. */
	while (s->queries) {
		s->queries->cb(s->queries->arg, NULL, 0);
		query_free(s, s->queries);
	}
	mqd_control_stop(s);
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
