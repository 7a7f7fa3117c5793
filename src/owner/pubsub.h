/*
 * Publish/subscribe on the workers.
 *
 * The topic space is sharded by a topic's first token: the worker
 * mqd_shard_of(first token) holds, in its own topic index, every
 * subscription and binding whose pattern starts with that token; patterns
 * starting with `*` or `>` are held by every worker.  So a PUBLISH goes to
 * exactly one worker (its topic's shard), which matches it without a lock
 * and fans it out:
 *   - to live subscriptions: one DELIVER payload, reference-counted and
 *     shared by every subscriber, each getting only its own 10-byte frame
 *     header (pushed to the subscriber's home worker);
 *   - to bound queues: a stored copy each, made on the shard and handed to
 *     the queue's owner, which applies the queue's limits and policies.
 * The OK to the PUBLISH counts the subscriptions and the queues that took
 * a copy, so it waits for the owners of remote bound queues.
 *
 * SUBSCRIBE and UNSUBSCRIBE reach their pattern's shard(s) as parts of one
 * request; BIND and UNBIND go to the queue's owner, which checks the queue
 * and updates the shard(s).  See doc/ARCHITECTURE.md.
 */
#ifndef MQD_PUBSUB_H
#define MQD_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mqd_owner;
struct mqd_req;
struct mqd_peer;
struct mqd_mail;

int mqd_pubsub_init(struct mqd_owner *ow) __attribute__((warn_unused_result));
void mqd_pubsub_free(struct mqd_owner *ow);

/* Owner side of the ops (from mqd_ops_exec). */
void mqd_pubsub_exec_subscribe(struct mqd_owner *ow, struct mqd_req *r);
void mqd_pubsub_exec_unsubscribe(struct mqd_owner *ow, struct mqd_req *r);
void mqd_pubsub_exec_publish(struct mqd_owner *ow, struct mqd_req *r);
void mqd_pubsub_exec_bind(struct mqd_owner *ow, struct mqd_req *r);
void mqd_pubsub_exec_unbind(struct mqd_owner *ow, struct mqd_req *r);

/* MQD_MAIL_ROUTE and MQD_MAIL_ROUTE_DONE. */
void mqd_pubsub_mail(struct mqd_owner *ow, struct mqd_mail *m);
/* A connection is gone: drop its subscriptions held here. */
void mqd_pubsub_peer_closed(struct mqd_owner *ow, struct mqd_peer *p);
/* A queue was deleted: every worker forgets its bindings. */
void mqd_pubsub_queue_deleted(struct mqd_owner *ow, const char *name,
                              size_t len);
/* Teardown: free a route mail left in a mailbox. */
void mqd_pubsub_free_mail(struct mqd_mail *m);

#endif
