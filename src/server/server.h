/*
 * The server: configuration, workers, listeners, signals, and the start-up
 * and shutdown order of those.  main.c parses argv and calls these, in
 * order: init, (admin started on s->base with mqd_server_admin_api), start,
 * run, stop, (admin stopped), free.
 */
#ifndef MQD_SERVER_H
#define MQD_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/info.h"
#include "core/counters.h"
#include "mail/mailbox.h"
#include "mail/router.h"

struct event_base;
struct event;
struct mqd_admin_api;
struct mqd_worker;
struct mqd_listener;

struct mqd_server {
	struct mqd_config cfg;
	unsigned nworkers;
	struct mqd_worker *workers;
	struct event_base *base; /* main thread: listeners and signals */
	struct mqd_listener *listeners;
	struct event *sig_term, *sig_int, *sig_hup, *sig_pipe, *stop_timer;
	struct mqd_counters counters; /* shared with the workers */
	struct mqd_router router;     /* the workers' ports, the main inbox */
	struct mqd_mail_port *ports;
	uint64_t stop_started;
	uint64_t started_ms;
	int exit_code;
	/* The main thread's own inbox: answers to queue queries. */
	struct mqd_mailbox main_mb;
	struct event *main_mb_ev;
	struct mqd_query *queries; /* in progress */
	struct event *trim_timer;
	uint64_t mem_peak;        /* accounted bytes since the last trim */
	uint64_t mem_last;        /* at the previous look */
	struct mqd_dlgraph *dlgraph; /* dead-letter edges, for loop checks */
	/* Graceful shutdown, first phase: paused, waiting for acks. */
	bool draining;
	bool drain_query_out;
	uint64_t drain_deadline;
	struct event *drain_timer, *sig_usr1;
	/* Message rates: the last few samples of the workers' totals. */
	struct {
		uint64_t at_ms, sent, delivered;
	} rate_samples[6];
	unsigned nrate_samples;
	bool rate_query_out;
};

/* Build everything from a loaded config but let nobody in yet: the main
 * event base (s->base), workers set up (threads not started), configured
 * queues created, timers and signal handlers armed.  Takes ownership of
 * what cfg allocated (its queues array): free the server, not the config.
 * Returns 0 or -1 (logged); either way, finish with mqd_server_free. */
int mqd_server_init(struct mqd_server *s, const struct mqd_config *cfg)
	__attribute__((warn_unused_result));

/* The admin API (admin/api.h) answered by s: queries to the workers, stats,
 * reload, shutdown.  Valid from init until free; main thread only. */
void mqd_server_admin_api(struct mqd_server *s, struct mqd_admin_api *out);

/* Let clients in: bind the listeners (each logs "listening on"), start the
 * worker threads.  Whatever else should be reachable by then (the control
 * socket) is started before.  Returns 0 or -1 (logged). */
int mqd_server_start(struct mqd_server *s) __attribute__((warn_unused_result));

/* Run the main loop until a stop signal or a shutdown has closed every
 * connection.  Returns the exit code. */
int mqd_server_run(struct mqd_server *s);

/* After run (or a failed init or start): stop and join the workers, close
 * the listeners and signal handlers, and answer every query still out
 * (with nothing).  s->base stays, so admin can be stopped after this and
 * before free.  Safe to call twice. */
void mqd_server_stop(struct mqd_server *s);

/* Stop if not done yet, then free everything, s->base last. */
void mqd_server_free(struct mqd_server *s);

#endif
