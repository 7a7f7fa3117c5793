/*
 * Listening sockets, on the main thread's event loop.  Each accepted socket
 * is handed to a worker (round robin) through its mailbox; the listener
 * never reads from it.
 */
#ifndef MQD_LISTENER_H
#define MQD_LISTENER_H

#include "core/config.h"
#include "core/counters.h"

struct event_base;
struct mqd_listener;
struct mqd_router;

/* Bind and listen on addr; logs "listening on HOST:PORT" with the port the
 * kernel chose when addr->port is 0.  Accepted sockets go round robin to
 * the router's workers, counted in counters->nconns and marked over the
 * limit past cfg->max_connections (cfg: the main thread's, read on the main
 * thread only).  NULL on failure (logged). */
struct mqd_listener *mqd_listener_new(struct event_base *base,
                                      const struct mqd_router *router,
                                      struct mqd_counters *counters,
                                      const struct mqd_config *cfg,
                                      const struct mqd_listen_addr *addr);
void mqd_listener_free(struct mqd_listener *l);
/* Listeners form a list through this. */
struct mqd_listener *mqd_listener_next(struct mqd_listener *l);
void mqd_listener_link(struct mqd_listener *l, struct mqd_listener *next);

#endif
