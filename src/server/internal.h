/*
 * What the server's own files share and nobody else sees: server.c (the
 * start-up and stop order, signals, figures), query.c (queries answered
 * through the main thread's mailbox) and reload.c (applying a new config).
 */
#ifndef MQD_SERVER_INTERNAL_H
#define MQD_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/util.h>

#include "admin/api.h"
#include "core/config.h"
#include "server/server.h"

/* ---- what the admin API answers (admin/api.h says how; main thread
 * only, callbacks on the main thread) ------------------------------- */

/* server.c */
void mqd_server_stats(struct mqd_server *s, struct mqd_server_stats *out);
void mqd_server_rates(struct mqd_server *s, struct mqd_rates *out);
void mqd_server_shutdown(struct mqd_server *s, uint64_t timeout_ms);
int mqd_server_log_reopen(struct mqd_server *s);

/* query.c.  Queue rows go through the workers' mailboxes, never by
 * locking a queue. */
int mqd_server_query_queues(struct mqd_server *s, const char *name,
                            mqd_queues_cb cb, void *arg)
	__attribute__((warn_unused_result));
int mqd_server_query_workers(struct mqd_server *s, mqd_workers_cb cb,
                             void *arg) __attribute__((warn_unused_result));
int mqd_server_query_conns(struct mqd_server *s, mqd_conns_cb cb, void *arg)
	__attribute__((warn_unused_result));
int mqd_server_kill_conn(struct mqd_server *s, uint64_t id, mqd_kill_cb cb,
                         void *arg) __attribute__((warn_unused_result));
int mqd_server_admin_queue(struct mqd_server *s, enum mqd_admin_op op,
                           const char *name,
                           const struct mqd_queue_conf *settings,
                           bool if_empty, mqd_admin_cb cb, void *arg)
	__attribute__((warn_unused_result));

/* reload.c */
void mqd_server_reload(struct mqd_server *s, struct mqd_reload_result *out);

/* fdlimit.c: raise the soft RLIMIT_NOFILE to max_connections plus the
 * descriptors mqd keeps for itself, as far as the hard limit allows
 * (logged).  0 when the limit is
 * enough, 1 when it is not (a warning names the real ceiling), -1 when it
 * cannot be read. */
int mqd_server_fd_limit(const struct mqd_config *cfg, unsigned nworkers);

/* ---- shared by the server's files ---------------------------------- */

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
