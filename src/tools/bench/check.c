/*
 * Self-checking message bodies (check.h).
 *
 * Both ends run once per message at a million messages a second, so the
 * fill is not computed byte by byte: `pattern` holds the sequence
 * 0,1,..,255,0,1,.. once, long enough that any window of the fill starts
 * inside its first 256 bytes.  Filling is then one memcpy and verifying
 * one memcmp.  The window's start comes from `mix`, so a body whose fill
 * was shifted, truncated or swapped with another body's does not verify.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bench/check.h"

#define OFF_MAGIC 0
#define OFF_PRODUCER 4
#define OFF_SEQ 8
#define OFF_SENT 16
#define OFF_MIX 24
#define OFF_FILL MQB_BODY_MIN

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* The splitmix64 finaliser: every input bit flips about half the output
 * bits, so a one-bit error anywhere in the header changes mix. */
static uint64_t fmix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* Chained rather than XORed together, so swapping fields (seq for
 * sent_ns, say) gives a different mix. */
static uint64_t body_mix(uint32_t producer, uint64_t seq, uint64_t sent_ns)
{
	uint64_t h = fmix64(MQB_BODY_MAGIC ^ (uint64_t)producer << 32);

	h = fmix64(h ^ seq);
	return fmix64(h ^ sent_ns);
}

/* *per = ceil(count / 64) words per producer, *words = producers times
 * that; -1 when so many bytes could not even be addressed. */
static int bitmap_words(unsigned producers, uint64_t count, uint64_t *per,
                        size_t *words)
{
	*per = count / 64 + (count % 64 != 0);
	if (*per > SIZE_MAX / sizeof(uint64_t))
		return -1;
	if (producers != 0 &&
	    *per > SIZE_MAX / sizeof(uint64_t) / producers)
		return -1;
	*words = (size_t)*per * producers;
	return 0;
}

int mqb_check_init(struct mqb_check *c, unsigned producers, uint64_t count,
                   size_t size)
{
	size_t words;

	memset(c, 0, sizeof *c);
	atomic_init(&c->dups, 0);
	atomic_init(&c->damaged, 0);
	if (size < MQB_BODY_MIN) {
		errno = EINVAL;
		return -1;
	}
	if (size > SIZE_MAX - 256 ||
	    bitmap_words(producers, count, &c->words_per, &words) != 0) {
		errno = ENOMEM;
		return -1;
	}
	c->producers = producers;
	c->count = count;
	c->size = size;
	c->pattern = malloc(256 + size);
	if (c->pattern == NULL)
		return -1;
	for (size_t i = 0; i < 256 + size; i++)
		c->pattern[i] = (uint8_t)i;
	if (words != 0) {
		c->bits = calloc(words, sizeof(uint64_t));
		if (c->bits == NULL) {
			mqb_check_free(c);
			errno = ENOMEM;
			return -1;
		}
	}
	return 0;
}

void mqb_check_free(struct mqb_check *c)
{
	free(c->bits);
	free(c->pattern);
	c->bits = NULL;
	c->pattern = NULL;
	c->words_per = 0; /* so mqb_check_unique walks no freed words */
}

void mqb_body_fill(const struct mqb_check *c, uint8_t *body, uint32_t producer,
                   uint64_t seq, uint64_t sent_ns)
{
	uint64_t mix = body_mix(producer, seq, sent_ns);

	put_be32(body + OFF_MAGIC, MQB_BODY_MAGIC);
	put_be32(body + OFF_PRODUCER, producer);
	put_be64(body + OFF_SEQ, seq);
	put_be64(body + OFF_SENT, sent_ns);
	put_be64(body + OFF_MIX, mix);
	memcpy(body + OFF_FILL, c->pattern + (mix & 0xff), c->size - OFF_FILL);
}

static enum mqb_verdict damaged(struct mqb_check *c)
{
	atomic_fetch_add_explicit(&c->damaged, 1, memory_order_relaxed);
	return MQB_BODY_DAMAGED;
}

enum mqb_verdict mqb_body_check(struct mqb_check *c, const uint8_t *body,
                                size_t len, uint64_t *sent_ns)
{
	uint32_t producer;
	uint64_t seq, sent, mix, bit, old;
	_Atomic uint64_t *word;

	if (len != c->size || get_be32(body + OFF_MAGIC) != MQB_BODY_MAGIC)
		return damaged(c);
	producer = get_be32(body + OFF_PRODUCER);
	seq = get_be64(body + OFF_SEQ);
	if (producer >= c->producers || seq >= c->count)
		return damaged(c);
	sent = get_be64(body + OFF_SENT);
	mix = get_be64(body + OFF_MIX);
	if (mix != body_mix(producer, seq, sent) ||
	    memcmp(body + OFF_FILL, c->pattern + (mix & 0xff),
	           len - OFF_FILL) != 0)
		return damaged(c);

	/* Relaxed is enough: the bit itself is the only thing published, and
	 * the totals are read after the consumer threads are joined. */
	word = c->bits + (size_t)producer * c->words_per + seq / 64;
	bit = (uint64_t)1 << (seq % 64);
	old = atomic_fetch_or_explicit(word, bit, memory_order_relaxed);
	if (old & bit) {
		atomic_fetch_add_explicit(&c->dups, 1, memory_order_relaxed);
		return MQB_BODY_DUP;
	}
	*sent_ns = sent;
	return MQB_BODY_OK;
}

uint64_t mqb_check_unique(const struct mqb_check *c)
{
	size_t words = (size_t)c->words_per * c->producers;
	uint64_t n = 0;

	for (size_t i = 0; i < words; i++)
		n += (uint64_t)__builtin_popcountll(atomic_load_explicit(
			&c->bits[i], memory_order_relaxed));
	return n;
}
