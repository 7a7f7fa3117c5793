/*
 * Fuzz target "config": the configuration parser, mqd_config_load_string
 * (src/core/config.c, the keys' value syntaxes in config_keys.c).
 *
 * The input is the text of a config file (up to its first NUL byte, as
 * for any C string).  Besides not crashing or leaking, a load must keep
 * what config.h promises:
 *   - a failed load leaves the caller's config exactly as it was, and says
 *     why as "NAME:LINE: message";
 *   - a good one holds only what the checks let through: terminated
 *     strings, 1 to MQD_LISTEN_MAX listen addresses, valid and distinct
 *     queue names, dead-letter queues that are valid names and never the
 *     queue itself, overflow 1 or 2.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "fuzz/fuzz.h"
#include "proto/proto.h"

#define NAME "fuzz.conf"

static bool terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

static void check_queue(const struct mqd_queue_conf *q, bool named)
{
	size_t dl = strnlen(q->dead_letter, sizeof q->dead_letter);

	FUZZ_CHECK(terminated(q->name, sizeof q->name));
	FUZZ_CHECK(terminated(q->dead_letter, sizeof q->dead_letter));
	if (named)
		FUZZ_CHECK(mqd_name_valid((const uint8_t *)q->name,
		                          strlen(q->name)));
	FUZZ_CHECK(dl == 0 ||
	           mqd_name_valid((const uint8_t *)q->dead_letter, dl));
	if (named)
		FUZZ_CHECK(strcmp(q->dead_letter, q->name) != 0);
	FUZZ_CHECK(q->overflow == 1 || q->overflow == 2);
}

static void check_config(const struct mqd_config *cfg)
{
	FUZZ_CHECK(strcmp(cfg->path, NAME) == 0);
	FUZZ_CHECK(cfg->nlisten >= 1 && cfg->nlisten <= MQD_LISTEN_MAX);
	for (size_t i = 0; i < cfg->nlisten; i++)
		FUZZ_CHECK(terminated(cfg->listen[i].host,
		                      sizeof cfg->listen[i].host));
	FUZZ_CHECK(terminated(cfg->metrics_listen.host,
	                      sizeof cfg->metrics_listen.host));
	FUZZ_CHECK(terminated(cfg->control_socket,
	                      sizeof cfg->control_socket));
	FUZZ_CHECK(terminated(cfg->log_file, sizeof cfg->log_file));
	FUZZ_CHECK(terminated(cfg->pidfile, sizeof cfg->pidfile));
	FUZZ_CHECK(mqd_log_level_name(cfg->log_level) != NULL);
	check_queue(&cfg->defaults.queue, false);
	for (size_t i = 0; i < cfg->nqueues; i++) {
		check_queue(&cfg->queues[i], true);
		/* Quadratic, but the input bounds the queues to a few hundred. */
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(cfg->queues[i].name,
			                  cfg->queues[j].name) != 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mqd_config cfg, before;
	char *text = malloc(size + 1);
	char err[1024];
	int rc;

	FUZZ_CHECK(text != NULL);
	if (size > 0)
		memcpy(text, data, size);
	text[size] = '\0';

	/* What a failed load must leave alone: the defaults, marked. */
	mqd_config_defaults(&cfg);
	cfg.workers = 12345;
	memcpy(&before, &cfg, sizeof cfg);
	memset(err, 0, sizeof err);
	rc = mqd_config_load_string(&cfg, text, NAME, err, sizeof err);
	if (rc == 0) {
		check_config(&cfg);
		mqd_config_free(&cfg);
	} else {
		FUZZ_CHECK(rc == -1);
		FUZZ_CHECK(memcmp(&cfg, &before, sizeof cfg) == 0);
		FUZZ_CHECK(strncmp(err, NAME ":", sizeof NAME) == 0);
		FUZZ_CHECK(terminated(err, sizeof err));
	}
	free(text);
	return 0;
}
