/*
 * Listening sockets, on the main thread's event loop.  Each accepted socket
 * is handed to a worker (round robin) through its mailbox; the listener
 * never reads from it.
 */
#ifndef MQD_LISTENER_H
#define MQD_LISTENER_H

#include "core/config.h"

struct mqd_server;
struct mqd_listener;

/* Bind and listen on addr; logs "listening on HOST:PORT" with the port the
 * kernel chose when addr->port is 0.  NULL on failure (logged). */
struct mqd_listener *mqd_listener_new(struct mqd_server *s,
                                      const struct mqd_listen_addr *addr);
void mqd_listener_free(struct mqd_listener *l);
/* Listeners form a list through this. */
struct mqd_listener *mqd_listener_next(struct mqd_listener *l);
void mqd_listener_link(struct mqd_listener *l, struct mqd_listener *next);

#endif
