/*
 * Sizes and durations as people write them in mqd.conf and on the command
 * line.  Pure functions, shared by the daemon, libmq and the tools.
 */
#ifndef MQD_DURATION_H
#define MQD_DURATION_H

#include <stdint.h>

/* "512", "64K", "1M", "2G" (powers of 1024; "KB"/"MB"/"GB" also accepted,
 * any case).  Returns 0, or -1 on bad syntax or overflow. */
int mqd_parse_size(const char *s, uint64_t *out);

/* "0", "250ms", "2s", "5m", "1h".  A bare number other than 0 is an error,
 * so "30" never silently means 30 ms.  Returns 0, or -1. */
int mqd_parse_duration(const char *s, uint64_t *ms);

#endif
