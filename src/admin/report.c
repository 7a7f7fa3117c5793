/*
 * Rows and the stats object for the control socket and the metrics page
 * (see report.h).  Plain formatting: no I/O but /proc/self/statm.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/report.h"

#define JI(v) ((json_int_t)(v))
#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

#define QF(key, metric, type, member, help)                                  \
	{ key, metric, type, help, offsetof(struct mqd_queue_info, member),  \
	  sizeof(((struct mqd_queue_info *)0)->member) == 4 }
const struct mqd_report_field mqd_report_queue_fields[] = {
	QF("ready", "mqd_queue_ready", "gauge", ready,
	   "Messages ready for delivery."),
	QF("held", "mqd_queue_held", "gauge", held,
	   "Messages delivered and not yet acknowledged."),
	QF("delayed", "mqd_queue_delayed", "gauge", delayed,
	   "Messages waiting for their delay to pass."),
	QF("bytes", "mqd_queue_bytes", "gauge", bytes,
	   "Bytes of the messages the queue stores."),
	QF("consumers", "mqd_queue_consumers", "gauge", consumers,
	   "Consumers attached."),
	QF("sent", "mqd_queue_messages_sent_total", "counter", sent,
	   "Messages sent to the queue."),
	QF("delivered", "mqd_queue_messages_delivered_total", "counter",
	   delivered, "Deliveries, redeliveries and GETs included."),
	QF("acked", "mqd_queue_messages_acked_total", "counter", acked,
	   "Messages acknowledged."),
	QF("redelivered", "mqd_queue_messages_redelivered_total", "counter",
	   redelivered, "Deliveries of a message delivered before."),
	QF("expired", "mqd_queue_messages_expired_total", "counter", expired,
	   "Messages removed when their TTL passed."),
	QF("dead_lettered", "mqd_queue_messages_dead_lettered_total",
	   "counter", dead_lettered,
	   "Messages moved to the dead-letter queue."),
	QF("dropped", "mqd_queue_messages_dropped_total", "counter", dropped,
	   "Messages dropped (overflow drop_head, max_attempts)."),
	QF("purged", "mqd_queue_messages_purged_total", "counter", purged,
	   "Messages removed by a purge."),
};
#undef QF
const size_t mqd_report_nqueue_fields = NFIELDS(mqd_report_queue_fields);

/* Only the figures Prometheus has no other source for are exported: a
 * worker's queue contents are already there per queue. */
#define WF(key, metric, type, member, help)                                   \
	{ key, metric, type, help, offsetof(struct mqd_worker_info, member),  \
	  sizeof(((struct mqd_worker_info *)0)->member) == 4 }
const struct mqd_report_field mqd_report_worker_fields[] = {
	WF("queues", "mqd_worker_queues", "gauge", queues,
	   "Queues the worker owns."),
	WF("connections", "mqd_worker_connections", "gauge", connections,
	   "Client connections whose home is the worker."),
	WF("ready", NULL, "gauge", ready, NULL),
	WF("held", NULL, "gauge", held, NULL),
	WF("delayed", NULL, "gauge", delayed, NULL),
	WF("bytes", NULL, "gauge", bytes, NULL),
	WF("mails", "mqd_worker_mails_total", "counter", mails,
	   "Mails taken from the worker's inbox."),
	WF("frames", "mqd_worker_frames_total", "counter", frames,
	   "Client frames read by the worker's connections."),
};
#undef WF
const size_t mqd_report_nworker_fields = NFIELDS(mqd_report_worker_fields);

uint64_t mqd_report_value(const void *row, const struct mqd_report_field *f)
{
	const char *p = (const char *)row + f->off;

	if (f->u32) {
		uint32_t v;
		memcpy(&v, p, sizeof v);
		return v;
	} else {
		uint64_t v;
		memcpy(&v, p, sizeof v);
		return v;
	}
}

/* obj[key] = v, v's reference stolen.  NULL (obj released) when obj is
 * NULL or jansson fails, so calls chain and a failure reaches the end. */
static json_t *put(json_t *obj, const char *key, json_t *v)
{
	if (obj == NULL) {
		json_decref(v);
		return NULL;
	}
	if (json_object_set_new(obj, key, v) < 0) { /* v released too */
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/* Every figure of row, in table order, into obj. */
static json_t *put_fields(json_t *obj, const void *row,
                          const struct mqd_report_field *fields, size_t n)
{
	for (size_t i = 0; i < n && obj != NULL; i++)
		obj = put(obj, fields[i].key,
		          json_integer(JI(mqd_report_value(row, &fields[i]))));
	return obj;
}

const char *mqd_report_overflow_name(uint8_t overflow)
{
	return overflow == 2 ? "drop_head" : "reject";
}

static json_t *settings_json(const struct mqd_queue_info *r)
{
	return json_pack(
		"{s:I, s:I, s:s, s:I, s:I, s:I, s:s%}",
		"max_length", JI(r->max_length),
		"max_bytes", JI(r->max_bytes),
		"overflow", mqd_report_overflow_name(r->overflow),
		"message_ttl_ms", JI(r->message_ttl_ms),
		"ack_timeout_ms", JI(r->ack_timeout_ms),
		"max_attempts", JI(r->max_attempts),
		"dead_letter", r->dead_letter,
		strnlen(r->dead_letter, sizeof r->dead_letter));
}

json_t *mqd_report_queue_json(const struct mqd_queue_info *r, bool full)
{
	json_t *obj = json_pack("{s:s%, s:I}",
	                        "name", r->name,
	                        strnlen(r->name, sizeof r->name),
	                        "owner", JI(r->owner));

	if (full) {
		obj = put(obj, "exclusive", json_boolean(r->exclusive));
		obj = put(obj, "auto_delete", json_boolean(r->auto_delete));
	}
	obj = put_fields(obj, r, mqd_report_queue_fields,
	                 mqd_report_nqueue_fields);
	if (full)
		obj = put(obj, "settings", settings_json(r));
	return obj;
}

json_t *mqd_report_worker_json(const struct mqd_worker_info *w)
{
	return put_fields(json_pack("{s:I}", "index", JI(w->index)), w,
	                  mqd_report_worker_fields, mqd_report_nworker_fields);
}

uint64_t mqd_report_rss_bytes(void)
{
	unsigned long long size, resident;
	long page = sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/statm", "re");
	int n;

	if (f == NULL)
		return 0;
	n = fscanf(f, "%llu %llu", &size, &resident);
	fclose(f);
	return n == 2 && page > 0 ? resident * (uint64_t)page : 0;
}

void mqd_report_add_queue(struct mqd_queue_info *sum,
                          const struct mqd_queue_info *r)
{
	for (size_t i = 0; i < mqd_report_nqueue_fields; i++) {
		const struct mqd_report_field *f = &mqd_report_queue_fields[i];
		uint64_t v = mqd_report_value(sum, f) + mqd_report_value(r, f);

		if (f->u32) {
			uint32_t x = (uint32_t)v;
			memcpy((char *)sum + f->off, &x, sizeof x);
		} else {
			memcpy((char *)sum + f->off, &v, sizeof v);
		}
	}
}

/* The counters, summed over the queues that exist now. */
static json_t *totals_json(const struct mqd_queue_info *sum)
{
	json_t *obj = json_object();

	for (size_t i = 0; i < mqd_report_nqueue_fields && obj != NULL; i++) {
		const struct mqd_report_field *f = &mqd_report_queue_fields[i];

		if (strcmp(f->type, "counter") == 0)
			obj = put(obj, f->key,
			          json_integer(JI(mqd_report_value(sum, f))));
	}
	return obj;
}

static double finite_or_0(double x)
{
	return isfinite(x) ? x : 0.0;
}

json_t *mqd_report_stats_json(const struct mqd_report_stats *in,
                              json_t *workers)
{
	const struct mqd_queue_info *t = &in->sum;

	/* "o" steals workers and totals, also when the pack fails. */
	return json_pack(
		"{s:s, s:I, s:I, s:I, s:{s:I, s:I, s:I}, s:I,"
		" s:{s:I, s:I, s:I}, s:o, s:o, s:{s:f, s:f}}",
		"version", PACKAGE_VERSION,
		"uptime_s", JI(in->server.uptime_ms / 1000),
		"connections", JI(in->server.connections),
		"queues", JI(in->nqueues),
		"messages",
		"ready", JI(t->ready), "held", JI(t->held),
		"delayed", JI(t->delayed),
		"bytes", JI(t->bytes),
		"memory",
		"rss_bytes", JI(in->rss_bytes),
		"accounted_bytes", JI(in->server.mem_accounted),
		"max_memory", JI(in->server.max_memory),
		"totals", totals_json(t),
		"workers", workers,
		"rates", "in", finite_or_0(in->rates.in),
		"out", finite_or_0(in->rates.out));
}

json_t *mqd_report_text(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	json_t *j = json_stringn(s, n);
	char *copy;

	if (j != NULL)
		return j;
	copy = malloc(n + 1);
	if (copy == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
	j = json_stringn(copy, n);
	free(copy);
	return j;
}
