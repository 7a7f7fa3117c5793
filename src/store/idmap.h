/*
 * An open-addressing hash map from non-zero u64 keys to pointers, with
 * linear probing and backward-shift deletion (no tombstones, so a map that
 * sees millions of inserts and removes never degrades).  One worker uses it
 * for its held messages (by id) and its peers (by connection id).
 */
#ifndef MQD_IDMAP_H
#define MQD_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct mqd_idmap_slot {
	uint64_t key; /* 0 = empty */
	void *val;
};

struct mqd_idmap {
	struct mqd_idmap_slot *slots;
	size_t mask; /* capacity - 1; capacity is a power of two */
	size_t count;
};

void mqd_idmap_init(struct mqd_idmap *m);
void mqd_idmap_free(struct mqd_idmap *m);
/* 0, or -1 on allocation failure.  key must not be 0 or already present. */
int mqd_idmap_put(struct mqd_idmap *m, uint64_t key, void *val)
	__attribute__((warn_unused_result));
void *mqd_idmap_get(const struct mqd_idmap *m, uint64_t key);
/* Removes and returns the value, or NULL if absent. */
void *mqd_idmap_del(struct mqd_idmap *m, uint64_t key);
/* Iterate: start with *pos = 0; returns NULL at the end. */
void *mqd_idmap_next(const struct mqd_idmap *m, size_t *pos, uint64_t *key);

#endif
