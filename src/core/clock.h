/*
 * The broker's clock: wall-clock milliseconds (timestamps people read) and
 * monotonic milliseconds (every deadline: TTL, delays, ack timeouts, idle
 * connections).  Any thread may read it.
 *
 * Test seam: a unit test may put its own clock in place (before any thread
 * that reads it starts), so that deadlines can be driven without sleeping.
 */
#ifndef MQD_CLOCK_H
#define MQD_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch. */
uint64_t mqd_now_ms(void);
/* Milliseconds of a monotonic clock (CLOCK_MONOTONIC). */
uint64_t mqd_mono_ms(void);

/* Tests only: read time from these instead of the system (either may be
 * NULL for the system's); mqd_clock_reset() puts the system clock back. */
void mqd_clock_override(uint64_t (*now_ms)(void), uint64_t (*mono_ms)(void));
void mqd_clock_reset(void);

#endif
