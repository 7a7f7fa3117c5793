#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>

#include "store/idmap.h"

#define MIN_CAP 16

/* Message ids are sequential: mix them so neighbours scatter. */
static size_t slot_of(const struct mqd_idmap *m, uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return (size_t)key & m->mask;
}

void mqd_idmap_init(struct mqd_idmap *m)
{
	m->slots = NULL;
	m->mask = 0;
	m->count = 0;
}

void mqd_idmap_free(struct mqd_idmap *m)
{
	free(m->slots);
	mqd_idmap_init(m);
}

static void insert_slot(struct mqd_idmap *m, uint64_t key, void *val)
{
	size_t i = slot_of(m, key);

	while (m->slots[i].key != 0)
		i = (i + 1) & m->mask;
	m->slots[i].key = key;
	m->slots[i].val = val;
}

static int resize(struct mqd_idmap *m, size_t cap)
{
	struct mqd_idmap_slot *old = m->slots;
	size_t oldcap = old ? m->mask + 1 : 0;

	m->slots = calloc(cap, sizeof *m->slots);
	if (m->slots == NULL) {
		m->slots = old;
		return -1;
	}
	m->mask = cap - 1;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].key != 0)
			insert_slot(m, old[i].key, old[i].val);
	free(old);
	return 0;
}

int mqd_idmap_put(struct mqd_idmap *m, uint64_t key, void *val)
{
	size_t cap = m->slots ? m->mask + 1 : 0;

	/* Keep the load at or below 1/2 so probes stay short. */
	if ((m->count + 1) * 2 > cap && resize(m, cap ? cap * 2 : MIN_CAP) < 0)
		return -1;
	insert_slot(m, key, val);
	m->count++;
	return 0;
}

static size_t find(const struct mqd_idmap *m, uint64_t key)
{
	size_t i;

	if (m->slots == NULL || key == 0)
		return SIZE_MAX;
	for (i = slot_of(m, key); m->slots[i].key != 0; i = (i + 1) & m->mask)
		if (m->slots[i].key == key)
			return i;
	return SIZE_MAX;
}

void *mqd_idmap_get(const struct mqd_idmap *m, uint64_t key)
{
	size_t i = find(m, key);

	return i == SIZE_MAX ? NULL : m->slots[i].val;
}

void *mqd_idmap_del(struct mqd_idmap *m, uint64_t key)
{
	size_t i = find(m, key), j;
	void *val;

	if (i == SIZE_MAX)
		return NULL;
	val = m->slots[i].val;
	/* Backward shift: pull later members of the probe run into the hole. */
	for (j = (i + 1) & m->mask; m->slots[j].key != 0; j = (j + 1) & m->mask) {
		size_t home = slot_of(m, m->slots[j].key);
		/* Move j to i unless its home lies cyclically in (i, j]. */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && (home <= i && home > j))) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].key = 0;
	m->slots[i].val = NULL;
	m->count--;
	size_t cap = m->mask + 1;
	if (cap > MIN_CAP && m->count * 8 < cap)
		(void)resize(m, cap / 2); /* failure just keeps the larger table */
	return val;
}

void *mqd_idmap_next(const struct mqd_idmap *m, size_t *pos, uint64_t *key)
{
	size_t cap = m->slots ? m->mask + 1 : 0;

	for (; *pos < cap; (*pos)++) {
		if (m->slots[*pos].key != 0) {
			if (key)
				*key = m->slots[*pos].key;
			return m->slots[(*pos)++].val;
		}
	}
	return NULL;
}
