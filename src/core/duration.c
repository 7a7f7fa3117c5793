/*
 * Sizes and durations: one number and a unit suffix, nothing else (no
 * spaces inside, no fractions), so a typo is an error rather than a guess.
 */
#ifdef HAVE_CONFIG_H
#include <config.h> /* autoconf's, not core/config.h beside this file */
#endif

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/duration.h"

/* Leading decimal digits of s into *v; *end after them. -1 if none/overflow. */
static int parse_number(const char *s, uint64_t *v, const char **end)
{
	uint64_t n = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*v = n;
	*end = p;
	return 0;
}

static int mul_checked(uint64_t v, uint64_t m, uint64_t *out)
{
	if (m != 0 && v > UINT64_MAX / m)
		return -1;
	*out = v * m;
	return 0;
}

int mqd_parse_size(const char *s, uint64_t *out)
{
	uint64_t v, m;
	const char *u;

	if (s == NULL || parse_number(s, &v, &u) < 0)
		return -1;
	if (*u == '\0' || strcasecmp(u, "B") == 0)
		m = 1;
	else if (strcasecmp(u, "K") == 0 || strcasecmp(u, "KB") == 0)
		m = 1024;
	else if (strcasecmp(u, "M") == 0 || strcasecmp(u, "MB") == 0)
		m = 1024 * 1024;
	else if (strcasecmp(u, "G") == 0 || strcasecmp(u, "GB") == 0)
		m = 1024ULL * 1024 * 1024;
	else
		return -1;
	return mul_checked(v, m, out);
}

int mqd_parse_duration(const char *s, uint64_t *ms)
{
	uint64_t v, m;
	const char *u;

	if (s == NULL || parse_number(s, &v, &u) < 0)
		return -1;
	if (*u == '\0') {
		/* Only 0 may go without a unit: it means "none" or "never". */
		if (v != 0)
			return -1;
		*ms = 0;
		return 0;
	}
	if (strcmp(u, "ms") == 0)
		m = 1;
	else if (strcmp(u, "s") == 0)
		m = 1000;
	else if (strcmp(u, "m") == 0)
		m = 60 * 1000;
	else if (strcmp(u, "h") == 0)
		m = 3600 * 1000;
	else
		return -1;
	return mul_checked(v, m, ms);
}
