/*
 * The clock (clock.h).  The override pointers are written only by tests,
 * before the threads that read them exist, so plain pointers suffice.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stddef.h>
#include <time.h>

#include "core/clock.h"

static uint64_t (*fake_now)(void);
static uint64_t (*fake_mono)(void);

static uint64_t read_clock(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t mqd_now_ms(void)
{
	return fake_now ? fake_now() : read_clock(CLOCK_REALTIME);
}

uint64_t mqd_mono_ms(void)
{
	return fake_mono ? fake_mono() : read_clock(CLOCK_MONOTONIC);
}

void mqd_clock_override(uint64_t (*now_ms)(void), uint64_t (*mono_ms)(void))
{
	fake_now = now_ms;
	fake_mono = mono_ms;
}

void mqd_clock_reset(void)
{
	mqd_clock_override(NULL, NULL);
}
