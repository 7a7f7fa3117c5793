/*
 * Attaching and detaching a message's track (message.h) on its owner:
 * tracks are recycled through the spare list kept with the owner's timer
 * heap, so delivering and acknowledging a message does not call malloc.
 * mqd_track_trim takes a track back when nothing needs it any more.
 */
#ifndef MQD_TRACK_H
#define MQD_TRACK_H

#include "store/message.h"
#include "store/timers.h"

/* m's track, attached first if it has none (all zero, out of the heap).
 * Only while m is LOOSE: in a list its back link would be missing.  NULL
 * on allocation failure. */
struct mqd_track *mqd_track_get(struct mqd_timers *t, struct mqd_msg *m);
/* Detach m's track, if any: out of the heap, back to the spare list. */
void mqd_track_put(struct mqd_timers *t, struct mqd_msg *m);
/* The same, unless m still needs it: not HELD or DELAYED, no expiry, never
 * delivered (its attempts would be lost).  Only while m is LOOSE. */
void mqd_track_trim(struct mqd_timers *t, struct mqd_msg *m);
/* Drop m for good: out of the heap, its track recycled, m freed. */
void mqd_timers_free_msg(struct mqd_timers *t, struct mqd_msg *m);

/* Put m in the heap at time at, or move it there if it is in already
 * (attaching a track if it has none).  -1 on allocation failure (m
 * unchanged, though a track may have been attached). */
int mqd_timers_set(struct mqd_timers *t, struct mqd_msg *m, uint64_t at)
	__attribute__((warn_unused_result));
/* Take m out of the heap if it is in it (its track stays). */
void mqd_timers_cancel(struct mqd_timers *t, struct mqd_msg *m);
#endif
