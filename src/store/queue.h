/*
 * A queue's store: ready messages in ten FIFO lists, one per priority level,
 * with a bitmask of the non-empty levels so taking the next message is O(1).
 * Also the queue's settings, its consumers, its waiting GETs and its
 * counters, and a per-worker table of queues by name.
 *
 * Pure data: no threads, no I/O.  Only the owning worker calls these.
 */
#ifndef MQD_QUEUE_H
#define MQD_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/message.h"
#include "store/timers.h"

#define MQD_PRIORITY_LEVELS 10

enum mqd_overflow { MQD_OVERFLOW_REJECT = 1, MQD_OVERFLOW_DROP_HEAD = 2 };

/* Effective settings: defaults already applied (0 = unlimited / none). */
struct mqd_qsettings {
	uint32_t max_length;
	uint64_t max_bytes;
	uint8_t overflow;
	uint32_t message_ttl_ms;
	uint32_t ack_timeout_ms;
	uint16_t max_attempts;
	char dead_letter[256];
};

struct mqd_qstats {
	uint64_t sent, delivered, acked, redelivered, expired, dead_lettered,
		dropped, purged;
};

/* A consumer of a queue: lives on the queue's owner worker. */
struct mqd_consumer {
	struct mqd_consumer *qnext, *qprev; /* in the queue's consumer ring */
	struct mqd_consumer *pnext;         /* in its peer's list */
	struct mqd_queue *queue;
	struct mqd_peer *peer;
	uint32_t tag;
	uint32_t prefetch;
	uint32_t held;     /* acked mode: held messages; auto-ack: in flight */
	bool auto_ack;
};

struct mqd_level {
	struct mqd_msg *head, *tail;
};

struct mqd_queue {
	struct mqd_queue *hnext; /* in the worker's table */
	uint64_t hash;
	uint8_t name_len;
	struct mqd_qsettings settings;
	bool exclusive, auto_delete;
	/* On its owner's list of queues to dispatch once a closed
	 * connection's held messages are all back (see ops.c). */
	bool redispatch;
	struct mqd_queue *redispatch_next;
	uint64_t exclusive_conn; /* owning connection id when exclusive */

	struct mqd_level levels[MQD_PRIORITY_LEVELS];
	uint16_t nonempty; /* bit i set when levels[i] has messages */
	uint64_t ready;    /* messages in the levels */
	struct mqd_msg *delayed_head, *delayed_tail; /* not ready yet */
	uint64_t delayed;
	uint64_t bytes;    /* bodies of ready and delayed messages */
	uint64_t held;     /* delivered, not yet acknowledged */

	struct mqd_consumer *consumers; /* ring; the next to serve */
	uint32_t nconsumers;
	void *waiters_head, *waiters_tail; /* parked GETs, owned by ops.c */

	struct mqd_qstats stats;
	char name[]; /* name_len bytes and a NUL: a queue costs what its
	              * name needs, not 256 bytes */
};

struct mqd_queue *mqd_queue_new(const char *name, size_t len,
                                const struct mqd_qsettings *s);
/* Frees the ready and delayed messages too (not held ones, nor consumers),
 * taking them out of t (may be NULL when t is being freed anyway). */
void mqd_queue_free(struct mqd_queue *q, struct mqd_timers *t);

void mqd_queue_push_tail(struct mqd_queue *q, struct mqd_msg *m);
/* Back to the head of its priority level: next out of that level. */
void mqd_queue_push_head(struct mqd_queue *q, struct mqd_msg *m);
/* The next ready message (highest priority, oldest first), or NULL. */
struct mqd_msg *mqd_queue_pop(struct mqd_queue *q);
/* The oldest message of the lowest priority level present, removed. */
struct mqd_msg *mqd_queue_pop_lowest(struct mqd_queue *q);
/* Take a READY message out from anywhere in its level. */
void mqd_queue_remove(struct mqd_queue *q, struct mqd_msg *m);
/* The delayed list: in arrival order; the timer heap says when each is due. */
void mqd_queue_add_delayed(struct mqd_queue *q, struct mqd_msg *m);
void mqd_queue_remove_delayed(struct mqd_queue *q, struct mqd_msg *m);
/* Remove and free every ready and delayed message (out of t as well, if
 * not NULL); returns how many. */
uint64_t mqd_queue_purge(struct mqd_queue *q, struct mqd_timers *t);
/* Empty as IF_EMPTY means it: nothing ready, delayed or held. */
bool mqd_queue_is_empty(const struct mqd_queue *q);
/* Whether one more message of this size fits the limits (which count
 * ready and delayed messages). */
bool mqd_queue_fits(const struct mqd_queue *q, uint64_t bytes);

void mqd_queue_add_consumer(struct mqd_queue *q, struct mqd_consumer *c);
void mqd_queue_remove_consumer(struct mqd_queue *q, struct mqd_consumer *c);
/* The next consumer with room under its prefetch, round robin, or NULL;
 * advances the ring past it.  Auto-ack consumers use prefetch as their
 * in-flight window. */
struct mqd_consumer *mqd_queue_next_consumer(struct mqd_queue *q);

/* A table of queues by name, chained, doubling as it grows. */
struct mqd_qtable {
	struct mqd_queue **buckets;
	size_t nbuckets, count;
};

void mqd_qtable_init(struct mqd_qtable *t);
/* Frees the table, not the queues. */
void mqd_qtable_free(struct mqd_qtable *t);
struct mqd_queue *mqd_qtable_get(const struct mqd_qtable *t, const void *name,
                                 size_t len);
int mqd_qtable_put(struct mqd_qtable *t, struct mqd_queue *q)
	__attribute__((warn_unused_result));
void mqd_qtable_del(struct mqd_qtable *t, struct mqd_queue *q);
/* Iterate: *pos = 0 and *cur = NULL first; NULL at the end.  The current
 * queue may be deleted while iterating. */
struct mqd_queue *mqd_qtable_next(const struct mqd_qtable *t, size_t *pos,
                                  struct mqd_queue **cur);

#endif
