/*
 * Which worker owns a queue: XXH3-64 of the name, reduced to [0, n) by a
 * multiply-shift (Lemire's fast range), which uses the hash's high bits and
 * so spreads names that differ only in a digit tail ("job-000123") evenly.
 * Stable for a given name and worker count: never first letters.
 */
#ifndef MQD_SHARD_H
#define MQD_SHARD_H

#include <stddef.h>
#include <stdint.h>

uint64_t mqd_shard_hash(const void *name, size_t len);
unsigned mqd_shard_of(const void *name, size_t len, unsigned nworkers);

#endif
