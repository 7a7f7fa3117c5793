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
 * (mqd_track_trim takes it back when none of these is true any more).
 * Tracks are recycled through the worker's spare list, so delivering and
 * acknowledging a message does not call malloc.
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

/* m's track, attached first if it has none (all zero, out of the heap).
 * Only while m is LOOSE: in a list its back link would be missing.  NULL
 * on allocation failure. */
struct mqd_track *mqd_track_get(struct mqd_timers *t, struct mqd_msg *m);
/* Detach m's track, if any: out of the heap, back to the spare list. */
void mqd_track_put(struct mqd_timers *t, struct mqd_msg *m);
/* The same, unless m still needs it: not HELD or DELAYED, no expiry, never
 * delivered (its attempts would be lost).  Only while m is LOOSE. */
void mqd_track_trim(struct mqd_timers *t, struct mqd_msg *m);
/* Free a track that is in no heap (a message freed away from its owner). */
void mqd_track_free(struct mqd_track *k);
/* Drop m for good: out of the heap, its track recycled, m freed. */
void mqd_timers_free_msg(struct mqd_timers *t, struct mqd_msg *m);

/* Put m in the heap at time at, or move it there if it is in already
 * (attaching a track if it has none).  -1 on allocation failure (m
 * unchanged, though a track may have been attached). */
int mqd_timers_set(struct mqd_timers *t, struct mqd_msg *m, uint64_t at)
	__attribute__((warn_unused_result));
/* Take m out of the heap if it is in it (its track stays). */
void mqd_timers_cancel(struct mqd_timers *t, struct mqd_msg *m);
/* The earliest entry, or NULL. */
static inline struct mqd_track *mqd_timers_peek(const struct mqd_timers *t)
{
	return t->n ? t->heap[0] : NULL;
}

#endif
