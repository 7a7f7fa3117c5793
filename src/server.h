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
	struct event *sig_term, *sig_int, *sig_hup, *sig_pipe, *stop_timer;
	atomic_uint nconns;        /* sockets open now (for max_connections) */
	atomic_uint live_conns;    /* connection structs not yet freed */
	atomic_uint_least64_t next_conn_id;
	atomic_bool stopping;
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
};

/* One queue as its owner sees it, for the control socket and tests. */
struct mqd_queue_info {
	char name[256];
	unsigned owner;
	bool exclusive, auto_delete;
	uint64_t ready, held, delayed, bytes;
	uint32_t consumers;
	uint64_t sent, delivered, acked, redelivered, expired, dead_lettered,
		dropped, purged;
	/* effective settings */
	uint32_t max_length;
	uint64_t max_bytes;
	uint8_t overflow; /* 1 reject, 2 drop_head */
	uint32_t message_ttl_ms, ack_timeout_ms;
	uint16_t max_attempts;
	char dead_letter[256];
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

/* Build everything from a loaded config: workers (threads started),
 * listeners bound, configured queues created.  Takes ownership of what
 * cfg allocated (its queues array): free the server, not the config.
 * Returns 0 or -1 (logged). */
int mqd_server_init(struct mqd_server *s, const struct mqd_config *cfg)
	__attribute__((warn_unused_result));
/* Run the main loop until a stop signal; then shut down in order. */
int mqd_server_run(struct mqd_server *s);
void mqd_server_free(struct mqd_server *s);

/* Any thread: milliseconds since the Unix epoch / a monotonic clock. */
uint64_t mqd_now_ms(void);
uint64_t mqd_mono_ms(void);

/* Called by a worker when a client socket closes / a connection struct is
 * freed (the stop protocol waits for the last). */
void mqd_server_conn_socket_closed(struct mqd_server *s);
void mqd_server_conn_freed(struct mqd_server *s);
/* Called by a worker once it has started closing all its connections. */
void mqd_server_shutdown_ack(struct mqd_server *s);
/* Any thread: a mail for the main thread (a filled query part). */
void mqd_server_post_main(struct mqd_server *s, struct mqd_mail *m);

#endif
