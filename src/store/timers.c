#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdlib.h>
#include <string.h>

#include "store/timers.h"

/* Spare tracks kept for reuse: enough for the deliveries in flight of a
 * busy worker; more than that goes back to malloc. */
#define SPARE_MAX 4096

void mqd_timers_init(struct mqd_timers *t)
{
	t->heap = NULL;
	t->n = t->cap = 0;
	t->spare = NULL;
	t->nspare = 0;
}

void mqd_timers_free(struct mqd_timers *t)
{
	while (t->spare) {
		struct mqd_track *k = t->spare;
		t->spare = k->spare_next;
		free(k);
	}
	free(t->heap);
	mqd_timers_init(t);
}

/* ---- tracks ------------------------------------------------------------ */

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

void mqd_track_free(struct mqd_track *k)
{
	k->msg->track = NULL;
	mqd_msg_mem_sub(sizeof *k);
	free(k);
}

void mqd_timers_free_msg(struct mqd_timers *t, struct mqd_msg *m)
{
	mqd_track_put(t, m);
	mqd_msg_free(m);
}

/* ---- the heap ---------------------------------------------------------- */

static void place(struct mqd_timers *t, uint32_t i, struct mqd_track *k)
{
	t->heap[i] = k;
	k->heap_idx = i;
}

static void sift_up(struct mqd_timers *t, uint32_t i)
{
	struct mqd_track *k = t->heap[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (t->heap[parent]->timer_at <= k->timer_at)
			break;
		place(t, i, t->heap[parent]);
		i = parent;
	}
	place(t, i, k);
}

static void sift_down(struct mqd_timers *t, uint32_t i)
{
	struct mqd_track *k = t->heap[i];

	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= t->n)
			break;
		if (c + 1 < t->n && t->heap[c + 1]->timer_at < t->heap[c]->timer_at)
			c++;
		if (k->timer_at <= t->heap[c]->timer_at)
			break;
		place(t, i, t->heap[c]);
		i = c;
	}
	place(t, i, k);
}

int mqd_timers_set(struct mqd_timers *t, struct mqd_msg *m, uint64_t at)
{
	struct mqd_track *k = mqd_track_get(t, m);

	if (k == NULL)
		return -1;
	if (k->heap_idx != MQD_NO_HEAP) {
		uint64_t old = k->timer_at;
		k->timer_at = at;
		if (at < old)
			sift_up(t, k->heap_idx);
		else
			sift_down(t, k->heap_idx);
		return 0;
	}
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 64;
		struct mqd_track **h = realloc(t->heap, cap * sizeof *h);
		if (h == NULL)
			return -1;
		t->heap = h;
		t->cap = cap;
	}
	k->timer_at = at;
	place(t, t->n++, k);
	sift_up(t, t->n - 1);
	return 0;
}

void mqd_timers_cancel(struct mqd_timers *t, struct mqd_msg *m)
{
	struct mqd_track *k = m->track, *last;
	uint32_t i;

	if (k == NULL || (i = k->heap_idx) == MQD_NO_HEAP)
		return;
	k->heap_idx = MQD_NO_HEAP;
	last = t->heap[--t->n];
	if (i == t->n)
		return;
	place(t, i, last);
	if (i > 0 && t->heap[(i - 1) / 2]->timer_at > last->timer_at)
		sift_up(t, i);
	else
		sift_down(t, i);
	/* Give memory back after a large backlog drains. */
	if (t->cap > 1024 && t->n < t->cap / 8) {
		struct mqd_track **h = realloc(t->heap, (t->cap / 2) * sizeof *h);
		if (h != NULL) {
			t->heap = h;
			t->cap /= 2;
		}
	}
}
