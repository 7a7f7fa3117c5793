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
	struct event *sig_term, *sig_int, *sig_hup, *sig_pipe, *stop_timer;
	atomic_uint nconns;        /* sockets open now (for max_connections) */
	atomic_uint live_conns;    /* connection structs not yet freed */
	atomic_uint_least64_t next_conn_id;
	atomic_bool stopping;
	atomic_uint shutdown_acks; /* workers that began closing everything */
	uint64_t stop_started;
	uint64_t started_ms;
	int exit_code;
};

/* Build everything from a loaded config: workers (threads started),
 * listeners bound.  Returns 0 or -1 (logged). */
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

#endif
