/*
 * What the command-line tools (mq, mqctl, mq-bench) have in common, so that
 * each is written once: the option getopt complained about, a monotonic
 * clock, the version when there is no config.h.  Linked into each tool
 * from libmqtools.la.
 */
#ifndef MQ_TOOLS_CLI_H
#define MQ_TOOLS_CLI_H

#include <stdint.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

/* The option getopt just complained about ('?' or ':'), for the message:
 * "-x" for a short one, else the argument as written ("--bogus").  The
 * text lives in a static buffer until the next call. */
const char *mqt_bad_option(char **argv);

/* Milliseconds of CLOCK_MONOTONIC: for deadlines and elapsed times. */
int64_t mqt_mono_ms(void);

#endif
