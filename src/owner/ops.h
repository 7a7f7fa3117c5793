/*
 * What a queue's owner does: executes requests routed to it (DECLARE, SEND,
 * GET, CONSUME, ACK, ...), hands messages to waiting GETs and consumers, and
 * forgets a connection when it closes (its held messages go back to their
 * queues with attempts + 1).  Runs only on the owning worker's thread.
 */
#ifndef MQD_OPS_H
#define MQD_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mqd_owner;
struct mqd_queue;
struct mqd_queue_conf;
struct mqd_mail_query;
struct mqd_mail_close;
struct mqd_msg;
struct mqd_req;
struct mqd_conn;

/* Execute r on owner ow; the answer goes back through mqd_owner_answer
 * (possibly later, for a GET that waits). */
void mqd_ops_exec(struct mqd_owner *ow, struct mqd_req *r);
/* The connection is gone: requeue what it held, drop its consumers,
 * subscriptions and waiting GETs, delete its exclusive queues.  close is
 * the CLOSE mail: posted back as CLOSE_DONE now, or, while requests of the
 * connection still wait here for other workers (a PUBLISH's copies, a
 * BIND), once the last of them is answered. */
void mqd_ops_peer_closed(struct mqd_owner *ow, uint64_t conn_id,
                         struct mqd_mail_close *close);
/* n auto-ack deliveries to consumer tag of conn_id have been written. */
void mqd_ops_credit(struct mqd_owner *ow, uint64_t conn_id, uint32_t tag,
                    uint32_t n);
/* Teardown after the worker's thread has stopped. */
void mqd_ops_free_all(struct mqd_owner *ow);

/* Store m in q under its limits and policies (TTL, delay): 0 (m now
 * belongs to q; the caller dispatches), MQD_ERR_QUEUE_FULL or
 * MQD_ERR_INTERNAL (m still the caller's). */
int mqd_ops_store(struct mqd_owner *ow, struct mqd_queue *q, struct mqd_msg *m)
	__attribute__((warn_unused_result));
/* Hand ready messages to waiting GETs, then to consumers with room. */
void mqd_ops_dispatch(struct mqd_owner *ow, struct mqd_queue *q);
/* The queue by name; with create, made with the [defaults] settings when
 * auto_create allows (NULL if not, or out of memory). */
struct mqd_queue *mqd_ops_queue(struct mqd_owner *ow, const char *name,
                                size_t len, bool create);
/* Create a queue from a [queue NAME] section (before the worker runs).
 * 0, or -1 out of memory. */
int mqd_ops_create_configured(struct mqd_owner *ow,
                              const struct mqd_queue_conf *c)
	__attribute__((warn_unused_result));
/* The worker's timer fired: expiries, delays, ack deadlines now due. */
void mqd_ops_timer(struct mqd_owner *ow);
/* Fill a query part with this owner's rows. */
void mqd_ops_query(struct mqd_owner *ow, struct mqd_mail_query *q);
/* Run an administrative queue operation (declare, delete, purge, or set
 * the settings of a [queue NAME] section on reload) into q->result. */
void mqd_ops_admin(struct mqd_owner *ow, struct mqd_mail_query *q);

#endif
