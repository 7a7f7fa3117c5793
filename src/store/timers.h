/*
 * A worker's timer heap: a binary min-heap keyed by the monotonic time of a
 * message's next event (expiry, end of delay, ack deadline).  Each entry
 * remembers its index, so moving or removing one is O(log n) and the owner
 * arms a single libevent timer for the earliest entry: expiry and delays
 * cost nothing per message beyond the heap slot, and nothing is ever found
 * by scanning a queue.
 *
 * Heap entries are tracks (struct mqd_track, message.h): the part of a
 * message's bookkeeping that only a message with a deadline, a holder or
 * past deliveries needs.  The owner attaches one to a message while it is
 * held or delayed, has an expiry, or has been delivered before
 * (track.h).  The heap only orders tracks: it calls nothing of the
 * message module, which in turn knows nothing of the heap.
 */
#ifndef MQD_TIMERS_H
#define MQD_TIMERS_H

#include <stdint.h>

#include "store/message.h"

struct mqd_timers {
	struct mqd_track **heap;
	uint32_t n, cap;
	struct mqd_track *spare; /* recycled tracks */
	uint32_t nspare;
};

void mqd_timers_init(struct mqd_timers *t);
/* Frees the heap and the spare tracks (not the messages). */
void mqd_timers_free(struct mqd_timers *t);

/* Put track k in the heap at time at, or move it there if it is in
 * already.  -1 on allocation failure (k unchanged). */
int mqd_timers_place(struct mqd_timers *t, struct mqd_track *k, uint64_t at)
	__attribute__((warn_unused_result));
/* Take k out of the heap if it is in it. */
void mqd_timers_remove(struct mqd_timers *t, struct mqd_track *k);
/* The earliest entry, or NULL. */
static inline struct mqd_track *mqd_timers_peek(const struct mqd_timers *t)
{
	return t->n ? t->heap[0] : NULL;
}

#endif
