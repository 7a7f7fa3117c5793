/*
 * What the admin side (the control socket, the metrics page) may ask of the
 * broker, and nothing more: a table of functions and the context they take.
 * The server fills one in (mqd_server_admin_api) and main.c hands it to
 * mqd_control_start and mqd_metrics_start, so admin never sees the server,
 * its workers or its queues, and a test can run admin against a fake.
 *
 * Every function is called on the main thread (the one running the event
 * base admin was started on), and so is every callback.  A query function
 * returns 0 and then calls its callback exactly once, later or already
 * before it returns; or it returns -1 (it could not start: out of memory,
 * or the server is stopping) and never calls it.
 */
#ifndef MQD_ADMIN_API_H
#define MQD_ADMIN_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/info.h"

/* Figures the server can give at once (atomics). */
struct mqd_server_stats {
	uint64_t uptime_ms;
	unsigned connections;
	unsigned workers;       /* worker threads running */
	uint64_t mem_accounted; /* bytes held by messages, all queues */
	uint64_t max_memory;
};

/* Message rates, per second, averaged over the last few seconds. */
struct mqd_rates {
	double in, out; /* messages sent to queues / delivered, per second */
};

/* The outcome of a reload.  On success the new settings are in force (or
 * being applied by the owners) and the texts list, comma-separated, what
 * changed and what needs a restart; on error nothing changed and error
 * says why (FILE:LINE: ...). */
struct mqd_reload_result {
	bool ok;
	char error[4400];
	char applied[2048];
	char restart_needed[1024];
};

/* Rows are valid only during the call; n may be 0 (rows may then be
 * NULL): no such queue, nothing there, or the answer was lost. */
typedef void (*mqd_queues_cb)(void *arg, const struct mqd_queue_info *rows,
                              size_t n);
typedef void (*mqd_workers_cb)(void *arg, const struct mqd_worker_info *rows,
                               size_t n);
typedef void (*mqd_conns_cb)(void *arg, const struct mqd_conn_info *rows,
                             size_t n);
/* found: whether the connection existed. */
typedef void (*mqd_kill_cb)(void *arg, bool found);
typedef void (*mqd_admin_cb)(void *arg, const struct mqd_admin_result *r);

struct mqd_admin_api {
	void *ctx; /* passed first to every function below */

	void (*stats)(void *ctx, struct mqd_server_stats *out);
	void (*rates)(void *ctx, struct mqd_rates *out);
	/* The configuration in force (it changes at reload; do not keep the
	 * pointer across a return to the event loop). */
	const struct mqd_config *(*config)(void *ctx);

	/* Queue rows from their owners: one queue by name, or every queue
	 * when name is NULL (rows sorted by name). */
	int (*query_queues)(void *ctx, const char *name, mqd_queues_cb cb,
	                    void *arg);
	/* One row per worker, by index. */
	int (*query_workers)(void *ctx, mqd_workers_cb cb, void *arg);
	/* Every client connection, sorted by id. */
	int (*query_conns)(void *ctx, mqd_conns_cb cb, void *arg);
	/* Close connection id (what it holds is redelivered). */
	int (*kill_conn)(void *ctx, uint64_t id, mqd_kill_cb cb, void *arg);
	/* DECLARE, DELETE or PURGE a queue on its owner.  settings (DECLARE
	 * only, may be NULL): its name is ignored; fields 0 / "" mean the
	 * [defaults] value, as in a DECLARE frame.  if_empty: DELETE only
	 * when empty (else CONFLICT).  -1 also for an invalid name. */
	int (*admin_queue)(void *ctx, enum mqd_admin_op op, const char *name,
	                   const struct mqd_queue_conf *settings, bool if_empty,
	                   mqd_admin_cb cb, void *arg);

	/* Re-read the config file, as SIGHUP. */
	void (*reload)(void *ctx, struct mqd_reload_result *out);
	/* Stop gracefully: stop accepting and delivering, wait up to
	 * timeout_ms for held messages to be acknowledged, then close
	 * everything and exit 0.  A second call only shortens the wait. */
	void (*shutdown)(void *ctx, uint64_t timeout_ms);
	/* Reopen the log file (after logrotate moved it): 0, or -1 with
	 * errno set. */
	int (*log_reopen)(void *ctx);
};

#endif
