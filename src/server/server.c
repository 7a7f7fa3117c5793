/*
 * Start-up and shutdown order, and the figures and controls the admin API
 * (mqd_server_admin_api) answers with.
 *
 * Start: init builds workers (event bases, mailboxes), queues, timers and
 * signal handlers; main.c then starts admin (the control socket must be
 * up before "listening on" is logged: from then on every way in works);
 * start binds the listeners, then starts the worker threads; only then is
 * "listening on" worth anything, so the listener logs it after bind and
 * the main loop starts accepting.
 *
 * Stop (SIGTERM/SIGINT): listeners stop accepting; every worker is told to
 * SHUTDOWN (each client gets ERROR SHUTTING_DOWN, its socket closes, and
 * the close protocol runs); when every worker has acknowledged and every
 * connection struct is freed, workers are told to STOP, joined, and what
 * remains (queues and their ready messages) is freed on this thread
 * (mqd_server_stop, which also answers the queries still out; main.c stops
 * admin after it, then frees the server and its event base).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/notify.h"
#include "core/shard.h"
#include "net/listener.h"
#include "server/internal.h"
#include "store/dlgraph.h"
#include "store/message.h"
#include "mail/router.h"
#include "owner/ops.h"
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

/* ---- figures ------------------------------------------------------------ */

void mqd_server_stats(struct mqd_server *s, struct mqd_server_stats *out)
{
	out->uptime_ms = mqd_now_ms() - s->started_ms;
	out->connections = atomic_load(&s->counters.nconns);
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



/* SHUTDOWN, PAUSE and STOP go to each worker at most once a run, in mails
 * the worker keeps for them: stopping never waits on an allocation. */
static void post_all(struct mqd_server *s, int type)
{
	for (unsigned i = 0; i < s->nworkers; i++)
		mqd_worker_post(&s->workers[i],
		                mqd_worker_order(&s->workers[i], type));
}

static void stop_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqd_server *s = arg;
	bool done = atomic_load(&s->counters.shutdown_acks) == s->nworkers &&
	            atomic_load(&s->counters.live_conns) == 0;

	(void)fd;
	(void)what;
	if (!done && mqd_mono_ms() - s->stop_started < STOP_LIMIT_MS)
		return;
	if (!done) {
		mqd_log_error("%u connections still closing after %u ms; "
		              "stopping anyway",
		              atomic_load(&s->counters.live_conns), STOP_LIMIT_MS);
		s->exit_code = 1;
	}
	event_base_loopbreak(s->base);
}

static void begin_stop(struct mqd_server *s, const char *why)
{
	struct timeval tv = {0, STOP_POLL_MS * 1000};

	if (atomic_exchange(&s->counters.stopping, true))
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

	if (atomic_load(&s->counters.stopping))
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
	atomic_store(&s->counters.refuse_new, true);
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

/* ---- the admin API --------------------------------------------------- */

/* Adapters from the API's void *ctx to the server. */
static void api_stats(void *ctx, struct mqd_server_stats *out)
{
	mqd_server_stats(ctx, out);
}

static void api_rates(void *ctx, struct mqd_rates *out)
{
	mqd_server_rates(ctx, out);
}

static const struct mqd_config *api_config(void *ctx)
{
	return &((struct mqd_server *)ctx)->cfg;
}

static int api_query_queues(void *ctx, const char *name, mqd_queues_cb cb,
                            void *arg)
{
	return mqd_server_query_queues(ctx, name, cb, arg);
}

static int api_query_workers(void *ctx, mqd_workers_cb cb, void *arg)
{
	return mqd_server_query_workers(ctx, cb, arg);
}

static int api_query_conns(void *ctx, mqd_conns_cb cb, void *arg)
{
	return mqd_server_query_conns(ctx, cb, arg);
}

static int api_kill_conn(void *ctx, uint64_t id, mqd_kill_cb cb, void *arg)
{
	return mqd_server_kill_conn(ctx, id, cb, arg);
}

static int api_admin_queue(void *ctx, enum mqd_admin_op op, const char *name,
                           const struct mqd_queue_conf *settings,
                           bool if_empty, mqd_admin_cb cb, void *arg)
{
	return mqd_server_admin_queue(ctx, op, name, settings, if_empty, cb,
	                              arg);
}

static void api_reload(void *ctx, struct mqd_reload_result *out)
{
	mqd_server_reload(ctx, out);
}

static void api_shutdown(void *ctx, uint64_t timeout_ms)
{
	mqd_server_shutdown(ctx, timeout_ms);
}

static int api_log_reopen(void *ctx)
{
	return mqd_server_log_reopen(ctx);
}

void mqd_server_admin_api(struct mqd_server *s, struct mqd_admin_api *out)
{
	*out = (struct mqd_admin_api){
		.ctx = s,
		.stats = api_stats,
		.rates = api_rates,
		.config = api_config,
		.query_queues = api_query_queues,
		.query_workers = api_query_workers,
		.query_conns = api_query_conns,
		.kill_conn = api_kill_conn,
		.admin_queue = api_admin_queue,
		.reload = api_reload,
		.shutdown = api_shutdown,
		.log_reopen = api_log_reopen,
	};
}

/* ---- start and stop ---------------------------------------------------- */

static unsigned cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (unsigned)n;
}

int mqd_server_init(struct mqd_server *s, const struct mqd_config *cfg)
{
	memset(s, 0, sizeof *s);
	s->cfg = *cfg;
	s->main_mb.efd = -1;
	s->nworkers = cfg->workers ? cfg->workers : cpu_count();
	if (s->nworkers > 256)
		s->nworkers = 256;
	/* Before the first descriptor is made.  A shortfall is only
	 * warned about: fewer connections are still a service. */
	(void)mqd_server_fd_limit(cfg, s->nworkers);
	atomic_init(&s->counters.nconns, 0);
	atomic_init(&s->counters.live_conns, 0);
	atomic_init(&s->counters.next_conn_id, 1);
	atomic_init(&s->counters.stopping, false);
	atomic_init(&s->counters.refuse_new, false);
	atomic_init(&s->counters.shutdown_acks, 0);
	s->started_ms = mqd_now_ms();
	s->base = event_base_new();
	s->workers = calloc(s->nworkers, sizeof *s->workers);
	s->ports = calloc(s->nworkers, sizeof *s->ports);
	s->dlgraph = mqd_dlgraph_new();
	if (s->base == NULL || s->workers == NULL || s->ports == NULL ||
	    s->dlgraph == NULL) {
		mqd_log_error("out of memory at start-up");
		return -1;
	}
	/* The router is whole before any worker can send through it. */
	for (unsigned i = 0; i < s->nworkers; i++)
		mqd_worker_port(&s->workers[i], &s->ports[i]);
	s->router.n = s->nworkers;
	s->router.ports = s->ports;
	s->router.main = &s->main_mb;
	for (unsigned i = 0; i < s->nworkers; i++) {
		if (mqd_worker_init(&s->workers[i], i, s->nworkers, &s->cfg,
		                    &s->router, &s->counters, s->dlgraph) < 0) {
			mqd_log_error("cannot set up worker %u", i);
			return -1;
		}
	}
	s->main_mb.efd = -1;
	if (mqd_mailbox_init(&s->main_mb) < 0 ||
	    (s->main_mb_ev = event_new(s->base, s->main_mb.efd,
	                               EV_READ | EV_PERSIST,
	                               mqd_server_main_mail_cb,
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
		if (mqd_ops_create_configured(&s->workers[o].owner, qc) < 0) {
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
	return 0;
}

int mqd_server_start(struct mqd_server *s)
{
	const struct mqd_config *cfg = &s->cfg;
	struct mqd_listener *last = NULL;

	for (size_t i = 0; i < cfg->nlisten; i++) {
		struct mqd_listener *l = mqd_listener_new(s->base, &s->router, &s->counters,
		                                          &s->cfg, &cfg->listen[i]);
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

/* An event, if there is one, freed and forgotten. */
static void event_drop(struct event **ev)
{
	if (*ev != NULL)
		event_free(*ev);
	*ev = NULL;
}

void mqd_server_stop(struct mqd_server *s)
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
		free(s->ports);
		s->ports = NULL;
	}
	for (l = s->listeners; l; l = next) {
		next = mqd_listener_next(l);
		mqd_listener_free(l);
	}
	s->listeners = NULL;
	event_drop(&s->sig_term);
	event_drop(&s->sig_int);
	event_drop(&s->sig_hup);
	event_drop(&s->sig_usr1);
	event_drop(&s->drain_timer);
	event_drop(&s->stop_timer);
	/* Queries still out are answered empty: every caller hears back
	 * exactly once, even at exit.  Admin is stopped after this, so its
	 * callers are still there to hear it. */
	mqd_server_queries_abandon(s);
}

void mqd_server_free(struct mqd_server *s)
{
	mqd_server_stop(s);
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
