#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>

#include "store/queue.h"
#include "store/track.h"
#include "core/shard.h"

struct mqd_queue *mqd_queue_new(const char *name, size_t len,
                                const struct mqd_qsettings *s)
{
	struct mqd_queue *q;

	if (len == 0 || len > 255)
		return NULL;
	q = calloc(1, sizeof *q + len + 1);
	if (q == NULL)
		return NULL;
	memcpy(q->name, name, len);
	q->name[len] = '\0';
	q->name_len = (uint8_t)len;
	q->hash = mqd_shard_hash(name, len);
	if (s)
		q->settings = *s;
	return q;
}

void mqd_queue_free(struct mqd_queue *q, struct mqd_timers *t)
{
	if (q == NULL)
		return;
	(void)mqd_queue_purge(q, t);
	free(q);
}

static void account_in(struct mqd_queue *q, struct mqd_msg *m)
{
	unsigned p = m->priority < MQD_PRIORITY_LEVELS ? m->priority
	                                               : MQD_PRIORITY_LEVELS - 1;
	m->priority = (uint8_t)p;
	if (m->track)
		m->track->queue = q;
	m->state = MQD_MSG_READY;
	q->nonempty |= (uint16_t)(1u << p);
	q->ready++;
	q->bytes += mqd_msg_bytes(m);
}

void mqd_queue_push_tail(struct mqd_queue *q, struct mqd_msg *m)
{
	account_in(q, m);
	mqd_msg_push_tail(&q->levels[m->priority].head,
	                  &q->levels[m->priority].tail, m);
}

void mqd_queue_push_head(struct mqd_queue *q, struct mqd_msg *m)
{
	account_in(q, m);
	mqd_msg_push_head(&q->levels[m->priority].head,
	                  &q->levels[m->priority].tail, m);
}

static void account_out(struct mqd_queue *q, struct mqd_msg *m)
{
	unsigned p = m->priority;

	if (q->levels[p].head == NULL)
		q->nonempty &= (uint16_t)~(1u << p);
	q->ready--;
	q->bytes -= mqd_msg_bytes(m);
	m->state = MQD_MSG_LOOSE;
}

static struct mqd_msg *take_from(struct mqd_queue *q, unsigned p)
{
	struct mqd_msg *m = mqd_msg_pop_head(&q->levels[p].head,
	                                     &q->levels[p].tail);

	account_out(q, m);
	return m;
}

void mqd_queue_remove(struct mqd_queue *q, struct mqd_msg *m)
{
	struct mqd_level *l = &q->levels[m->priority];

	mqd_msg_unlink(&l->head, &l->tail, m);
	account_out(q, m);
}

void mqd_queue_add_delayed(struct mqd_queue *q, struct mqd_msg *m)
{
	if (m->track)
		m->track->queue = q;
	m->state = MQD_MSG_DELAYED;
	mqd_msg_push_tail(&q->delayed_head, &q->delayed_tail, m);
	q->delayed++;
	q->bytes += mqd_msg_bytes(m);
}

void mqd_queue_remove_delayed(struct mqd_queue *q, struct mqd_msg *m)
{
	mqd_msg_unlink(&q->delayed_head, &q->delayed_tail, m);
	q->delayed--;
	q->bytes -= mqd_msg_bytes(m);
	m->state = MQD_MSG_LOOSE;
}

struct mqd_msg *mqd_queue_pop(struct mqd_queue *q)
{
	if (q->nonempty == 0)
		return NULL;
	/* Highest set bit = highest priority present. */
	return take_from(q, 31u - (unsigned)__builtin_clz(q->nonempty));
}

struct mqd_msg *mqd_queue_pop_lowest(struct mqd_queue *q)
{
	if (q->nonempty == 0)
		return NULL;
	return take_from(q, (unsigned)__builtin_ctz(q->nonempty));
}

uint64_t mqd_queue_purge(struct mqd_queue *q, struct mqd_timers *t)
{
	uint64_t n = 0;
	struct mqd_msg *m;

	while ((m = mqd_queue_pop(q)) != NULL ||
	       ((m = q->delayed_head) != NULL &&
	        (mqd_queue_remove_delayed(q, m), true))) {
		if (t)
			mqd_timers_free_msg(t, m);
		else
			mqd_msg_free(m);
		n++;
	}
	return n;
}

bool mqd_queue_is_empty(const struct mqd_queue *q)
{
	return q->ready == 0 && q->delayed == 0 && q->held == 0;
}

bool mqd_queue_fits(const struct mqd_queue *q, uint64_t bytes)
{
	if (q->settings.max_length &&
	    q->ready + q->delayed >= q->settings.max_length)
		return false;
	if (q->settings.max_bytes && q->bytes + bytes > q->settings.max_bytes)
		return false;
	return true;
}

void mqd_queue_add_consumer(struct mqd_queue *q, struct mqd_consumer *c)
{
	c->queue = q;
	if (q->consumers == NULL) {
		c->qnext = c->qprev = c;
		q->consumers = c;
	} else {
		/* Insert just before the next to serve: the new one goes last. */
		struct mqd_consumer *first = q->consumers;
		c->qnext = first;
		c->qprev = first->qprev;
		first->qprev->qnext = c;
		first->qprev = c;
	}
	q->nconsumers++;
}

void mqd_queue_remove_consumer(struct mqd_queue *q, struct mqd_consumer *c)
{
	if (c->qnext == c) {
		q->consumers = NULL;
	} else {
		c->qprev->qnext = c->qnext;
		c->qnext->qprev = c->qprev;
		if (q->consumers == c)
			q->consumers = c->qnext;
	}
	c->qnext = c->qprev = NULL;
	c->queue = NULL;
	q->nconsumers--;
}

struct mqd_consumer *mqd_queue_next_consumer(struct mqd_queue *q)
{
	struct mqd_consumer *c = q->consumers;

	for (uint32_t i = 0; c != NULL && i < q->nconsumers; i++, c = c->qnext) {
		if (c->held < c->prefetch) {
			q->consumers = c->qnext;
			return c;
		}
	}
	return NULL;
}

/* ---- table ------------------------------------------------------------ */

void mqd_qtable_init(struct mqd_qtable *t)
{
	t->buckets = NULL;
	t->nbuckets = 0;
	t->count = 0;
}

void mqd_qtable_free(struct mqd_qtable *t)
{
	free(t->buckets);
	mqd_qtable_init(t);
}

struct mqd_queue *mqd_qtable_get(const struct mqd_qtable *t, const void *name,
                                 size_t len)
{
	uint64_t h;
	struct mqd_queue *q;

	if (t->nbuckets == 0)
		return NULL;
	h = mqd_shard_hash(name, len);
	for (q = t->buckets[h & (t->nbuckets - 1)]; q; q = q->hnext)
		if (q->hash == h && q->name_len == len &&
		    memcmp(q->name, name, len) == 0)
			return q;
	return NULL;
}

static int grow(struct mqd_qtable *t)
{
	size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
	struct mqd_queue **b = calloc(n, sizeof *b);

	if (b == NULL)
		return -1;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct mqd_queue *q = t->buckets[i], *next;
		for (; q; q = next) {
			next = q->hnext;
			q->hnext = b[q->hash & (n - 1)];
			b[q->hash & (n - 1)] = q;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
	return 0;
}

int mqd_qtable_put(struct mqd_qtable *t, struct mqd_queue *q)
{
	if (t->count >= t->nbuckets && grow(t) < 0)
		return -1;
	size_t i = q->hash & (t->nbuckets - 1);
	q->hnext = t->buckets[i];
	t->buckets[i] = q;
	t->count++;
	return 0;
}

void mqd_qtable_del(struct mqd_qtable *t, struct mqd_queue *q)
{
	struct mqd_queue **pp;

	if (t->nbuckets == 0)
		return;
	for (pp = &t->buckets[q->hash & (t->nbuckets - 1)]; *pp;
	     pp = &(*pp)->hnext) {
		if (*pp == q) {
			*pp = q->hnext;
			q->hnext = NULL;
			t->count--;
			return;
		}
	}
}

struct mqd_queue *mqd_qtable_next(const struct mqd_qtable *t, size_t *pos,
                                  struct mqd_queue **cur)
{
	struct mqd_queue *q = *cur;

	/* *cur holds the next candidate, fetched before the caller could
	 * delete the one it was given. */
	while (q == NULL) {
		if (*pos >= t->nbuckets)
			return NULL;
		q = t->buckets[(*pos)++];
	}
	*cur = q->hnext;
	return q;
}
