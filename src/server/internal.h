/*
 * What the server's own files share and nobody else sees: server.c (the
 * start-up and stop order, signals, figures), query.c (queries answered
 * through the main thread's mailbox) and reload.c (applying a new config).
 */
#ifndef MQD_SERVER_INTERNAL_H
#define MQD_SERVER_INTERNAL_H

#include <stdbool.h>

#include <event2/util.h>

#include "core/config.h"
#include "server/server.h"

/* query.c: the main mailbox's event callback (the answered parts of
 * queries come in there). */
void mqd_server_main_mail_cb(evutil_socket_t fd, short what, void *arg);

/* query.c: answer every query still out with nothing (a lost answer), so
 * each caller hears back exactly once even at exit. */
void mqd_server_queries_abandon(struct mqd_server *s);

/* query.c: a queue operation on the queue's owner.  op is an enum
 * mqd_admin_op, or -1: apply settings as a [queue NAME] section (reload).
 * -1 when name is not a valid queue name or the query cannot start. */
int mqd_server_admin_post(struct mqd_server *s, int op, const char *name,
                          const struct mqd_queue_conf *settings,
                          bool if_empty, mqd_admin_cb cb, void *arg)
	__attribute__((warn_unused_result));

#endif
