/*
 * Tracks: the bookkeeping a message needs only while it has a deadline, a
 * holder or past deliveries (message.h), taken from and returned to the
 * owner's spare list.  This is where the message module and the timer heap
 * meet; neither of them calls the other.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdlib.h>
#include <string.h>

#include "store/message.h"
#include "store/timers.h"
#include "store/track.h"

/* Spare tracks kept for reuse: enough for the deliveries in flight of a
 * busy worker; more than that goes back to malloc. */
#define SPARE_MAX 4096

struct mqd_track *mqd_track_get(struct mqd_timers *t, struct mqd_msg *m)
{
	struct mqd_track *k = m->track;

	if (k != NULL)
		return k;
	if (t->spare != NULL) {
		k = t->spare;
		t->spare = k->spare_next;
		t->nspare--;
	} else if ((k = malloc(sizeof *k)) == NULL) {
		return NULL;
	}
	memset(k, 0, sizeof *k);
	k->msg = m;
	k->heap_idx = MQD_NO_HEAP;
	m->track = k;
	mqd_msg_mem_add(sizeof *k);
	return k;
}

void mqd_track_put(struct mqd_timers *t, struct mqd_msg *m)
{
	struct mqd_track *k = m->track;

	if (k == NULL)
		return;
	mqd_timers_cancel(t, m);
	m->track = NULL;
	mqd_msg_mem_sub(sizeof *k);
	if (t->nspare >= SPARE_MAX) {
		free(k);
		return;
	}
	k->spare_next = t->spare;
	t->spare = k;
	t->nspare++;
}

void mqd_track_trim(struct mqd_timers *t, struct mqd_msg *m)
{
	struct mqd_track *k = m->track;

	if (k != NULL && m->state != MQD_MSG_HELD &&
	    m->state != MQD_MSG_DELAYED && k->expires_at == 0 &&
	    k->attempts == 0)
		mqd_track_put(t, m);
}

void mqd_timers_free_msg(struct mqd_timers *t, struct mqd_msg *m)
{
	mqd_track_put(t, m);
	mqd_msg_free(m);
}


int mqd_timers_set(struct mqd_timers *t, struct mqd_msg *m, uint64_t at)
{
	struct mqd_track *k = mqd_track_get(t, m);

	if (k == NULL)
		return -1;
	return mqd_timers_place(t, k, at);
}

void mqd_timers_cancel(struct mqd_timers *t, struct mqd_msg *m)
{
	if (m->track != NULL)
		mqd_timers_remove(t, m->track);
}
