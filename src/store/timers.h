/*
 * A worker's timer heap: a binary min-heap of messages keyed by the
 * monotonic time of their next event (expiry, end of delay, ack deadline).
 * Each message remembers its index, so moving or removing one is O(log n)
 * and the owner arms a single libevent timer for the earliest entry: expiry
 * and delays cost nothing per message beyond the heap slot, and nothing is
 * ever found by scanning a queue.
 */
#ifndef MQD_TIMERS_H
#define MQD_TIMERS_H

#include <stdint.h>

#include "store/message.h"

struct mqd_timers {
	struct mqd_msg **heap;
	uint32_t n, cap;
};

void mqd_timers_init(struct mqd_timers *t);
void mqd_timers_free(struct mqd_timers *t);
/* Insert m at time at, or move it there if it is in the heap already.
 * -1 on allocation failure (m unchanged). */
int mqd_timers_set(struct mqd_timers *t, struct mqd_msg *m, uint64_t at)
	__attribute__((warn_unused_result));
/* Remove m if it is in the heap. */
void mqd_timers_cancel(struct mqd_timers *t, struct mqd_msg *m);
/* The earliest entry, or NULL. */
static inline struct mqd_msg *mqd_timers_peek(const struct mqd_timers *t)
{
	return t->n ? t->heap[0] : NULL;
}

#endif
