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

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/log.h"
#include "net/listener.h"
#include "server.h"
#include "worker/worker.h"

#define STOP_POLL_MS 5
#define STOP_LIMIT_MS 4000

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
	if (s->base == NULL || s->workers == NULL) {
		mqd_log_error("out of memory at start-up");
		return -1;
	}
	for (unsigned i = 0; i < s->nworkers; i++) {
		if (mqd_worker_init(&s->workers[i], s, i) < 0) {
			mqd_log_error("cannot set up worker %u", i);
			return -1;
		}
	}
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
	if (s->base)
		event_base_free(s->base);
	memset(s, 0, sizeof *s);
}
