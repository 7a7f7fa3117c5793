#ifndef MQB_CHECK_H
#define MQB_CHECK_H

/*
 * Message bodies that check themselves.  Every body mq-bench sends is
 *
 *   magic u32 "MQB1" | producer u32 | seq u64 | sent_ns u64 | mix u64 | fill
 *
 * (big-endian), where mix is a hash of the three fields before it and the
 * fill is a window into the repeating byte sequence 0,1,..,255 starting at
 * an offset derived from mix.  A receiver can so tell a body that is
 * damaged anywhere (wrong length, header or fill) from a good one, and
 * marks (producer, seq) in a bitmap to count duplicates; what is never
 * marked at the end was lost.  The bitmaps are atomic, so consumers on
 * several threads share one.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQB_BODY_MIN 32
#define MQB_BODY_MAGIC 0x4d514231u /* "MQB1" */

struct mqb_check {
	unsigned producers;
	uint64_t count;            /* sequence numbers 0..count-1 per producer */
	size_t size;               /* expected body length */
	_Atomic uint64_t *bits;    /* producers x ceil(count/64) words */
	uint64_t words_per;        /* words per producer */
	uint8_t *pattern;          /* 256 + size bytes: pattern[i] = i & 0xff */
	_Atomic uint64_t dups;
	_Atomic uint64_t damaged;
};

enum mqb_verdict {
	MQB_BODY_OK,
	MQB_BODY_DUP,
	MQB_BODY_DAMAGED,
};

/* 0, or -1 when memory runs out (ENOMEM) or size < MQB_BODY_MIN (EINVAL). */
int mqb_check_init(struct mqb_check *c, unsigned producers, uint64_t count,
                   size_t size);
void mqb_check_free(struct mqb_check *c);

/* Write a body of c->size bytes. */
void mqb_body_fill(const struct mqb_check *c, uint8_t *body, uint32_t producer,
                   uint64_t seq, uint64_t sent_ns);

/*
 * Verify a received body and mark it seen.  On MQB_BODY_OK *sent_ns gets
 * its send time.  DUP and DAMAGED are also counted in c.
 */
enum mqb_verdict mqb_body_check(struct mqb_check *c, const uint8_t *body,
                                size_t len, uint64_t *sent_ns);

/* How many distinct bodies were seen, in all. */
uint64_t mqb_check_unique(const struct mqb_check *c);
/* Expected minus unique: what never arrived. */
static inline uint64_t mqb_check_lost(const struct mqb_check *c)
{
	return (uint64_t)c->producers * c->count - mqb_check_unique(c);
}

#endif
