#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * Helpers every command-line tool needs (cli.h).  No state beyond
 * mqt_bad_option's buffer, and no dependency but libc.
 */

#include <getopt.h>
#include <stdint.h>
#include <time.h>

#include "tools/common/cli.h"

const char *mqt_bad_option(char **argv)
{
	static char buf[3];

	if (optopt > 0 && optopt < 256) {
		buf[0] = '-';
		buf[1] = (char)optopt;
		buf[2] = '\0';
		return buf;
	}
	return argv[optind - 1];
}

int64_t mqt_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
