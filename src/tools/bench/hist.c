/*
 * The latency histogram of hist.h.
 *
 * Bucket layout: values below 2^SUB (128) have a bucket each.  Above that,
 * every power of two [2^e, 2^(e+1)) is split into HALF (64) equal steps of
 * 2^(e-6), so a bucket is never wider than 1/64 of its lowest value.  The
 * index of v is then 128 + (e-7)*64 + the 6 bits of v below its top bit,
 * which needs one count-leading-zeros and no loop or division.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <string.h>

#include "tools/bench/hist.h"

#define EXACT (1u << MQB_HIST_SUB_BITS)
#define LAST (MQB_HIST_BUCKETS - 1)

void mqb_hist_init(struct mqb_hist *h)
{
	memset(h, 0, sizeof *h);
	h->min = UINT64_MAX;
}

unsigned mqb_hist_index(uint64_t v)
{
	unsigned e, sub;

	if (v < EXACT)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	if (e >= MQB_HIST_MAX_BITS)
		return LAST;
	sub = (unsigned)(v >> (e - (MQB_HIST_SUB_BITS - 1))) & (MQB_HIST_HALF - 1);
	return EXACT + (e - MQB_HIST_SUB_BITS) * MQB_HIST_HALF + sub;
}

uint64_t mqb_hist_bucket_low(unsigned idx)
{
	unsigned k, e;

	if (idx < EXACT)
		return idx;
	if (idx > LAST)
		idx = LAST;
	k = idx - EXACT;
	e = MQB_HIST_SUB_BITS + k / MQB_HIST_HALF;
	return (uint64_t)(MQB_HIST_HALF + k % MQB_HIST_HALF)
	       << (e - (MQB_HIST_SUB_BITS - 1));
}

uint64_t mqb_hist_bucket_high(unsigned idx)
{
	unsigned e;

	if (idx < EXACT)
		return idx;
	/* Everything too large for the table is counted in the last bucket. */
	if (idx >= LAST)
		return UINT64_MAX;
	e = MQB_HIST_SUB_BITS + (idx - EXACT) / MQB_HIST_HALF;
	return mqb_hist_bucket_low(idx) +
	       ((uint64_t)1 << (e - (MQB_HIST_SUB_BITS - 1))) - 1;
}

/* 128-bit sum in two words: a day of nanosecond latencies at a million
 * messages a second overflows 64 bits. */
static void sum_add(struct mqb_hist *h, uint64_t hi, uint64_t lo)
{
	h->sum_lo += lo;
	h->sum_hi += hi + (h->sum_lo < lo);
}

void mqb_hist_record(struct mqb_hist *h, uint64_t v)
{
	h->counts[mqb_hist_index(v)]++;
	h->n++;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	sum_add(h, 0, v);
}

void mqb_hist_merge(struct mqb_hist *dst, const struct mqb_hist *src)
{
	if (src->n == 0)
		return;
	for (unsigned i = 0; i < MQB_HIST_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->n += src->n;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	sum_add(dst, src->sum_hi, src->sum_lo);
}

/* The 1-based rank of percentile p (0 < p < 100) among n values: the
 * ceiling of p% of n, done by hand so the tool needs no libm. */
static uint64_t rank_of(double p, uint64_t n)
{
	double r = p / 100.0 * (double)n;
	uint64_t rank;

	/* (double)n may round up past n; converting it back would overflow. */
	if (r >= (double)n)
		return n;
	rank = (uint64_t)r;
	if ((double)rank < r)
		rank++;
	return rank < 1 ? 1 : rank;
}

uint64_t mqb_hist_percentile(const struct mqb_hist *h, double p)
{
	uint64_t rank, seen = 0, high;

	if (h->n == 0)
		return 0;
	if (!(p > 0.0)) /* also NaN */
		return h->min;
	if (p >= 100.0)
		return h->max;
	rank = rank_of(p, h->n);
	for (unsigned i = 0; i < MQB_HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			high = mqb_hist_bucket_high(i);
			return high < h->max ? high : h->max;
		}
	}
	return h->max; /* counts disagree with n: only if the caller broke h */
}

double mqb_hist_mean(const struct mqb_hist *h)
{
	if (h->n == 0)
		return 0.0;
	return ((double)h->sum_hi * 18446744073709551616.0 + (double)h->sum_lo) /
	       (double)h->n;
}
