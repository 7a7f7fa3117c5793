#ifndef MQB_HIST_H
#define MQB_HIST_H

/*
 * A log-linear latency histogram in the manner of HdrHistogram: values
 * below 2^MQB_HIST_SUB_BITS are counted exactly, larger ones in buckets of
 * 2^(MQB_HIST_SUB_BITS-1) equal steps per power of two, so any recorded
 * value is reported within 1/64 (1.6%) of itself.  Fixed size, no
 * allocation, O(1) record: each thread keeps its own and they are merged
 * at the end.  Values are unsigned 64-bit (mq-bench records nanoseconds);
 * anything up to 2^MQB_HIST_MAX_BITS is kept in a bucket, larger values
 * land in the last one (max is still exact).
 */

#include <stdint.h>

#define MQB_HIST_SUB_BITS 7                      /* 128 exact values */
#define MQB_HIST_MAX_BITS 44                     /* ~4.9 hours in ns */
#define MQB_HIST_HALF (1u << (MQB_HIST_SUB_BITS - 1))
#define MQB_HIST_BUCKETS ((1u << MQB_HIST_SUB_BITS) + \
	(MQB_HIST_MAX_BITS - MQB_HIST_SUB_BITS) * MQB_HIST_HALF)

struct mqb_hist {
	uint64_t n;
	uint64_t min;      /* UINT64_MAX while empty */
	uint64_t max;
	uint64_t sum_hi;   /* sum of values, 128-bit so it cannot wrap */
	uint64_t sum_lo;
	uint64_t counts[MQB_HIST_BUCKETS];
};

void mqb_hist_init(struct mqb_hist *h);
void mqb_hist_record(struct mqb_hist *h, uint64_t v);
void mqb_hist_merge(struct mqb_hist *dst, const struct mqb_hist *src);
/* The value at percentile p (0..100): the highest value that falls in the
 * bucket holding the rank, never above max; 0 when empty.  p = 100 gives
 * max, p = 0 gives min. */
uint64_t mqb_hist_percentile(const struct mqb_hist *h, double p);
double mqb_hist_mean(const struct mqb_hist *h);
/* Bucket index of a value and the range a bucket covers (for tests). */
unsigned mqb_hist_index(uint64_t v);
uint64_t mqb_hist_bucket_low(unsigned idx);
uint64_t mqb_hist_bucket_high(unsigned idx);

#endif
