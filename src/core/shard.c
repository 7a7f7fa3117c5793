#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/shard.h"

uint64_t mqd_shard_hash(const void *name, size_t len)
{
	return XXH3_64bits(name, len);
}

unsigned mqd_shard_of(const void *name, size_t len, unsigned nworkers)
{
	uint64_t h = mqd_shard_hash(name, len);

	if (nworkers <= 1)
		return 0;
	/* Take the high 32 bits into [0, n) without a division. */
	return (unsigned)(((h >> 32) * (uint64_t)nworkers) >> 32);
}
