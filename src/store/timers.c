#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdlib.h>
#include <string.h>

#include "store/timers.h"

/*
 * The heap alone: it orders tracks by timer_at and keeps each one's
 * heap_idx; it never calls the message module (track.c ties the two).
 */

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

int mqd_timers_place(struct mqd_timers *t, struct mqd_track *k, uint64_t at)
{
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

void mqd_timers_remove(struct mqd_timers *t, struct mqd_track *k)
{
	struct mqd_track *last;
	uint32_t i;

	if ((i = k->heap_idx) == MQD_NO_HEAP)
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
