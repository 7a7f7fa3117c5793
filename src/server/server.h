/*
 * The server: configuration, workers, listeners, signals, and the start-up
 * and shutdown order.  main.c parses argv and calls these.
 */
#ifndef MQD_SERVER_H
#define MQD_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/info.h"
#include "worker/mailbox.h"

struct event_base;
struct event;
struct mqd_worker;
struct mqd_listener;

#define MQD_SERVER_NAME "mqd/" PACKAGE_VERSION
/* Output above this stops reading a client's requests and holds back
 * auto-ack deliveries until the client reads. */
#define MQD_OUTPUT_HIGH (4u << 20)

struct mqd_server {
	struct mqd_config cfg;
	unsigned nworkers;
	struct mqd_worker *workers;
	struct event_base *base; /* main thread: listeners and signals */
	struct mqd_listener *listeners;
	struct mqd_control *control; /* control socket (admin/control.c) */
	struct mqd_metrics *metrics; /* /metrics and status page (admin/metrics.c) */
	struct event *sig_term, *sig_int, *sig_hup, *sig_pipe, *stop_timer;
	atomic_uint nconns;        /* sockets open now (for max_connections) */
	atomic_uint live_conns;    /* connection structs not yet freed */
	atomic_uint_least64_t next_conn_id;
	atomic_bool stopping;
	atomic_bool refuse_new;    /* shutting down: HELLO gets SHUTTING_DOWN */
	atomic_uint shutdown_acks; /* workers that began closing everything */
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


/* Called on the main thread, exactly once per query, with every row (n may
 * be 0: no such queue).  rows is valid only during the call. */
typedef void (*mqd_queues_cb)(void *arg, const struct mqd_queue_info *rows,
                              size_t n);

/*
 * Main thread only.  Gather queue rows from their owners through the
 * workers' mailboxes (never by locking them): one queue by name, or every
 * queue when name is NULL (rows sorted by name).  Returns 0, or -1 when the
 * query could not be started (then cb is not called).
 */
int mqd_server_query_queues(struct mqd_server *s, const char *name,
                            mqd_queues_cb cb, void *arg)
	__attribute__((warn_unused_result));

/* Figures the main thread can read at once (atomics). */
struct mqd_server_stats {
	uint64_t uptime_ms;
	unsigned connections;
	unsigned workers;
	uint64_t mem_accounted; /* bytes held by messages, all queues */
	uint64_t max_memory;
};
void mqd_server_stats(struct mqd_server *s, struct mqd_server_stats *out);

/* ---- administration (main thread only; callbacks on the main thread,
 * each called exactly once) ----------------------------------------- */

typedef void (*mqd_workers_cb)(void *arg, const struct mqd_worker_info *rows,
                               size_t n);
int mqd_server_query_workers(struct mqd_server *s, mqd_workers_cb cb,
                             void *arg) __attribute__((warn_unused_result));

typedef void (*mqd_conns_cb)(void *arg, const struct mqd_conn_info *rows,
                             size_t n);
/* Every connection, sorted by id. */
int mqd_server_query_conns(struct mqd_server *s, mqd_conns_cb cb, void *arg)
	__attribute__((warn_unused_result));

/* Close connection id (its held messages are redelivered).  cb gets
 * whether it existed. */
typedef void (*mqd_kill_cb)(void *arg, bool found);
int mqd_server_kill_conn(struct mqd_server *s, uint64_t id, mqd_kill_cb cb,
                         void *arg) __attribute__((warn_unused_result));

typedef void (*mqd_admin_cb)(void *arg, const struct mqd_admin_result *r);
/* settings (DECLARE only, may be NULL): its name is ignored; fields 0 /
 * "" mean the [defaults] value, as in a DECLARE frame.  if_empty: DELETE
 * only when empty (else CONFLICT). */
int mqd_server_admin_queue(struct mqd_server *s, enum mqd_admin_op op,
                           const char *name,
                           const struct mqd_queue_conf *settings,
                           bool if_empty, mqd_admin_cb cb, void *arg)
	__attribute__((warn_unused_result));

/* Re-read the config file.  On success the new settings are in force (or
 * being applied by the owners) and the texts list, comma-separated, what
 * changed and what needs a restart; on error nothing changed and error
 * says why (FILE:LINE: ...). */
struct mqd_reload_result {
	bool ok;
	char error[4400];
	char applied[2048];
	char restart_needed[1024];
};
void mqd_server_reload(struct mqd_server *s, struct mqd_reload_result *out);

/* Stop gracefully: stop accepting, stop delivering, wait up to timeout_ms
 * for held messages to be acknowledged, then close everything and exit 0.
 * A second call only shortens the wait. */
void mqd_server_shutdown(struct mqd_server *s, uint64_t timeout_ms);

/* Reopen the log file (after logrotate moved it). 0 or -1. */
int mqd_server_log_reopen(struct mqd_server *s);

/* Message rates, per second, averaged over the last few seconds. */
struct mqd_rates {
	double in, out; /* messages sent to queues / delivered, per second */
};
void mqd_server_rates(struct mqd_server *s, struct mqd_rates *out);

/* Build everything from a loaded config: workers (threads started),
 * listeners bound, configured queues created.  Takes ownership of what
 * cfg allocated (its queues array): free the server, not the config.
 * Returns 0 or -1 (logged). */
int mqd_server_init(struct mqd_server *s, const struct mqd_config *cfg)
	__attribute__((warn_unused_result));
/* Run the main loop until a stop signal; then shut down in order. */
int mqd_server_run(struct mqd_server *s);
void mqd_server_free(struct mqd_server *s);

/* Called by a worker when a client socket closes / a connection struct is
 * freed (the stop protocol waits for the last). */
void mqd_server_conn_socket_closed(struct mqd_server *s);
void mqd_server_conn_freed(struct mqd_server *s);
/* Called by a worker once it has started closing all its connections. */
void mqd_server_shutdown_ack(struct mqd_server *s);
/* Any thread: a mail for the main thread (a filled query part). */
void mqd_server_post_main(struct mqd_server *s, struct mqd_mail *m);

#endif
