/*
 * What the main thread and every worker share: a few atomics, handed to each
 * worker at start instead of the whole server.  Nothing else is shared
 * between threads except through mailboxes (and the dead-letter graph,
 * store/dlgraph.h).
 */
#ifndef MQD_COUNTERS_H
#define MQD_COUNTERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct mqd_counters {
	atomic_uint nconns;        /* sockets open now (for max_connections) */
	atomic_uint live_conns;    /* connection structs not yet freed */
	atomic_uint_least64_t next_conn_id;
	atomic_bool stopping;
	atomic_bool refuse_new;    /* shutting down: HELLO gets SHUTTING_DOWN */
	atomic_uint shutdown_acks; /* workers that began closing everything */
};

#endif
