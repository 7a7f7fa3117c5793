/*
 * What the control socket and the metrics page both show, formatted in one
 * place so the two cannot drift apart: a queue row, a worker row, the stats
 * object, the process's resident memory.  The figures of a row are a table
 * (name in JSON, Prometheus family, type, help, offset), which the JSON rows
 * and the metrics exposition both walk: a figure added to the table appears
 * in every view.
 */
#ifndef MQD_REPORT_H
#define MQD_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "admin/api.h"
#include "core/info.h"

/* A figure of a row, by offset: every one is a uint64_t or a uint32_t. */
struct mqd_report_field {
	const char *key;    /* in the JSON rows */
	const char *metric; /* Prometheus family; NULL: not exported there */
	const char *type;   /* "gauge" or "counter" */
	const char *help;
	size_t off;
	bool u32;
};

/* The figures of a struct mqd_queue_info / mqd_worker_info, in the order
 * the rows list them. */
extern const struct mqd_report_field mqd_report_queue_fields[];
extern const size_t mqd_report_nqueue_fields;
extern const struct mqd_report_field mqd_report_worker_fields[];
extern const size_t mqd_report_nworker_fields;

uint64_t mqd_report_value(const void *row, const struct mqd_report_field *f);

/* A queue row: name, owner, then every figure.  full (the control socket)
 * adds the exclusive and auto_delete flags after owner and the settings
 * in force at the end.  NULL if jansson cannot build it. */
json_t *mqd_report_queue_json(const struct mqd_queue_info *r, bool full);

/* A worker row: index, then every figure. */
json_t *mqd_report_worker_json(const struct mqd_worker_info *w);

/* "reject" or "drop_head", as the config file names them. */
const char *mqd_report_overflow_name(uint8_t overflow);

/* Resident set size from /proc/self/statm; 0 if it cannot be read. */
uint64_t mqd_report_rss_bytes(void);

/* sum += r: every figure but consumers, for the server's totals. */
void mqd_report_add_queue(struct mqd_queue_info *sum,
                          const struct mqd_queue_info *r);

/* What the stats object is made of: figures read when asked, and every
 * queue's row added up (a deleted queue's counts go with it). */
struct mqd_report_stats {
	struct mqd_server_stats server;
	uint64_t rss_bytes;
	size_t nqueues;
	struct mqd_queue_info sum;
	struct mqd_rates rates;
};

/* The stats object (doc/CONTROL.md, stats; metrics' /api/stats): version,
 * uptime, connections, queues, messages, memory, totals, workers (an
 * array, reference stolen), rates.  NULL if jansson fails. */
json_t *mqd_report_stats_json(const struct mqd_report_stats *in,
                              json_t *workers);

/* A string of at most max bytes that need not be UTF-8 (client names,
 * file paths): JSON strings must be, so if it is not, every byte outside
 * ASCII becomes '?'.  NULL if jansson fails. */
json_t *mqd_report_text(const char *s, size_t max);

#endif
