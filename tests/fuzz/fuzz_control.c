/*
 * Fuzz target "control": the control socket's command-line parser
 * (mqd_control_parse and mqd_control_parse_declare, src/admin/commands.c),
 * without a socket, a server or a reply.
 *
 * The input is what a control client sends: it is cut into lines at "\n"
 * (a "\r" before it dropped), as the socket side does, and each line is
 * parsed alone.  Besides not crashing or leaking:
 *   - an error's text is printable ASCII (it goes into a JSON reply, which
 *     must be valid UTF-8);
 *   - a parsed line names a command with 1 to MQD_CTL_ARGS_MAX + 1 words,
 *     none empty, none holding a blank, all inside the line;
 *   - "declare" arguments that parse give a valid queue, overflow 0..2,
 *     and a dead-letter queue that is empty or a valid name other than
 *     the queue's own.
 * The arguments of "shutdown" and "loglevel" go through the parsers their
 * handlers use.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/control_internal.h"
#include "core/config.h"
#include "core/duration.h"
#include "fuzz/fuzz.h"
#include "proto/proto.h"

static void check_text(const char *why, size_t cap)
{
	size_t n = strnlen(why, cap);

	FUZZ_CHECK(n > 0 && n < cap);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(why[i] >= 0x20 && why[i] < 0x7f);
}

static void check_declare(int argc, char **argv)
{
	struct mqd_queue_conf set;
	char why[512];
	size_t dl;

	memset(why, 0, sizeof why);
	if (mqd_control_parse_declare(argc, argv, &set, why, sizeof why) < 0) {
		check_text(why, sizeof why);
		return;
	}
	FUZZ_CHECK(mqd_name_valid((const uint8_t *)argv[0], strlen(argv[0])));
	FUZZ_CHECK(set.overflow <= 2);
	dl = strnlen(set.dead_letter, sizeof set.dead_letter);
	FUZZ_CHECK(dl < sizeof set.dead_letter);
	FUZZ_CHECK(dl == 0 || (mqd_name_valid((const uint8_t *)set.dead_letter,
	                                      dl) &&
	                       strcmp(set.dead_letter, argv[0]) != 0));
}

static void check_line(char *line, size_t n)
{
	struct mqd_ctl_line l;
	char why[256];
	enum mqd_log_level level;
	uint64_t ms;

	memset(why, 0, sizeof why);
	if (mqd_control_parse(line, n, &l, why, sizeof why) < 0) {
		FUZZ_CHECK(l.cmd == NULL);
		check_text(why, sizeof why);
		return;
	}
	FUZZ_CHECK(l.cmd != NULL);
	FUZZ_CHECK(l.nwords >= 1 && l.nwords <= MQD_CTL_ARGS_MAX + 1);
	for (int i = 0; i < l.nwords; i++) {
		size_t len = strlen(l.words[i]);

		FUZZ_CHECK(l.words[i] >= line && l.words[i] + len <= line + n);
		FUZZ_CHECK(len > 0 && strpbrk(l.words[i], " \t") == NULL);
	}
	if (strcmp(l.words[0], "declare") == 0)
		check_declare(l.nwords - 1, l.words + 1);
	else if (strcmp(l.words[0], "shutdown") == 0 && l.nwords == 2)
		(void)mqd_parse_duration(l.words[1], &ms);
	else if (strcmp(l.words[0], "loglevel") == 0 && l.nwords == 2)
		(void)mqd_parse_log_level(l.words[1], &level);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0;

	while (pos < size) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t n = nl != NULL ? (size_t)(nl - (data + pos)) : size - pos;
		char *line = malloc(n + 1);

		FUZZ_CHECK(line != NULL);
		if (n > 0)
			memcpy(line, data + pos, n);
		line[n] = '\0';
		pos += n + 1;
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		check_line(line, n);
		free(line);
	}
	return 0;
}
