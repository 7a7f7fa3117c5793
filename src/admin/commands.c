/*
 * The control socket's commands: the command table, one handler per
 * command, and the queries they send through the admin API.  The socket
 * side (control.c) hands over one line at a time (mqd_control_dispatch);
 * every handler answers exactly once, at once or when its query returns,
 * through mqd_control_reply or mqd_control_verror.  The commands and their
 * replies are documented in doc/CONTROL.md.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admin/api.h"
#include "admin/control_internal.h"
#include "admin/report.h"
#include "core/config.h"
#include "core/duration.h"
#include "core/log.h"
#include "proto/proto.h"

#define CTL_ECHO_MAX 64                /* bytes of user text put in errors */
#define CTL_SHUTDOWN_DEFAULT_MS 10000u
#define CTL_SHUTDOWN_MAX_MS (24u * 3600 * 1000)
#define DECL_KEYS 7                    /* keys "declare" takes */

/* ---- JSON ------------------------------------------------------------------ */

#define JI(v) ((json_int_t)(v))

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

/* arr += v, the same way. */
static json_t *push(json_t *arr, json_t *v)
{
	if (arr == NULL) {
		json_decref(v);
		return NULL;
	}
	if (json_array_append_new(arr, v) < 0) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

/* A string that need not be UTF-8: client names, file paths. */
static json_t *jstr(const char *s, size_t max)
{
	return mqd_report_text(s, max);
}

/* {"ok":true} plus key: v (stolen). */
static json_t *ok_with(const char *key, json_t *v)
{
	return put(json_pack("{s:b}", "ok", 1), key, v);
}

/* ---- replies --------------------------------------------------------------- */

/* The answer to the command in progress (control.c writes it). */
static void reply(struct ctl_client *c, json_t *obj)
{
	mqd_control_reply(c, obj);
}

static void reply_error(struct ctl_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void reply_error(struct ctl_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mqd_control_verror(c, fmt, ap);
	va_end(ap);
}

/* ---- user text ------------------------------------------------------------ */

/* Text from the client made safe to quote in an error: printable ASCII
 * only (JSON needs valid UTF-8), cut to CTL_ECHO_MAX bytes. */
static const char *printable(const char *s, char *buf, size_t cap)
{
	size_t i, n = 0;

	for (i = 0; s[i] != '\0' && n + 4 < cap && i < CTL_ECHO_MAX; i++)
		buf[n++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (s[i] != '\0') {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

/* ---- requests in flight ---------------------------------------------------- */

typedef void (*query_done_fn)(struct ctl_client *c,
                              const struct mqd_queue_info *rows, size_t n);

/* A command waiting for the workers.  It holds a reference on its client,
 * so an answer that comes back after the client left finds the struct. */
struct ctl_query {
	struct ctl_client *client;
	query_done_fn done;    /* queue queries */
	struct mqd_report_stats stats; /* stats: gathered so far */
	enum mqd_admin_op op;  /* declare, delete, purge */
	uint64_t id;           /* kill: the connection */
	char name[256];        /* the queue named, for the reply */
};

static struct ctl_query *query_new(struct ctl_client *c)
{
	struct ctl_query *q = calloc(1, sizeof *q);

	if (q == NULL)
		return NULL;
	q->client = c;
	c->refs++;
	return q;
}

static void query_free(struct ctl_query *q)
{
	struct ctl_client *c = q->client;

	free(q);
	mqd_control_unref(c);
}

/* Whether the client of a returning query is still there to answer. */
static bool query_live(const struct ctl_query *q)
{
	if (q->client->ctl != NULL)
		return true;
	mqd_log_debug("control client %llu left before its reply",
	              (unsigned long long)q->client->id);
	return false;
}

/* A query could not start (cb will not be called): answer now. */
static void query_failed(struct ctl_query *q)
{
	struct ctl_client *c = q->client;

	c->refs++; /* query_free must not free c under us */
	query_free(q);
	reply_error(c, "cannot query the workers (shutting down?)");
	mqd_control_unref(c);
}

/* Called exactly once per started query, on the main thread. */
static void queues_cb(void *arg, const struct mqd_queue_info *rows, size_t n)
{
	struct ctl_query *q = arg;

	if (query_live(q))
		q->done(q->client, rows, n);
	query_free(q);
}

/* Ask the owners; done() answers the command.  name NULL = every queue. */
static void start_query(struct ctl_client *c, const char *name,
                        query_done_fn done)
{
	struct ctl_query *q = query_new(c);

	if (q == NULL) {
		reply_error(c, "out of memory");
		return;
	}
	q->done = done;
	if (c->ctl->api.query_queues(c->ctl->api.ctx, name, queues_cb, q) < 0)
		query_failed(q);
}

/* ---- commands ---------------------------------------------------------- */

struct ctl_cmd {
	const char *name;
	int min_args, max_args; /* words after the name */
	/* Must answer (reply/reply_error) exactly once, now or later. */
	void (*handler)(struct ctl_client *c, int argc, char **argv);
	const char *usage;
	const char *help;
};

#define CMD(name) \
	static void cmd_##name(struct ctl_client *c, int argc, char **argv)
CMD(help);
CMD(version);
CMD(stats);
CMD(queues);
CMD(queue);
CMD(connections);
CMD(kill);
CMD(declare);
CMD(delete);
CMD(purge);
CMD(reload);
CMD(shutdown);
CMD(loglevel);
CMD(config);
CMD(logreopen);

static const struct ctl_cmd commands[] = {
	{ "help", 0, 0, cmd_help, "help", "list the commands" },
	{ "version", 0, 0, cmd_version, "version", "the server's version" },
	{ "stats", 0, 0, cmd_stats, "stats",
	  "uptime, connections, messages, memory, totals, rates, workers" },
	{ "queues", 0, 0, cmd_queues, "queues",
	  "every queue, one row each, sorted by name" },
	{ "queue", 1, 1, cmd_queue, "queue NAME",
	  "one queue in full, with its settings" },
	{ "connections", 0, 0, cmd_connections, "connections",
	  "every client connection, sorted by id" },
	{ "kill", 1, 1, cmd_kill, "kill ID",
	  "close a connection; what it holds is redelivered" },
	{ "declare", 1, 1 + DECL_KEYS, cmd_declare,
	  "declare NAME [key=value ...]",
	  "create a queue (keys: max_length, max_bytes, overflow, "
	  "message_ttl, ack_timeout, max_attempts, dead_letter)" },
	{ "delete", 1, 2, cmd_delete, "delete NAME [--if-empty]",
	  "delete a queue and its messages" },
	{ "purge", 1, 1, cmd_purge, "purge NAME",
	  "remove a queue's ready and delayed messages" },
	{ "reload", 0, 0, cmd_reload, "reload",
	  "re-read the config file (as SIGHUP)" },
	{ "shutdown", 0, 1, cmd_shutdown, "shutdown [TIMEOUT]",
	  "stop: wait up to TIMEOUT (default 10s) for acks, then exit 0" },
	{ "loglevel", 1, 1, cmd_loglevel, "loglevel LEVEL",
	  "set the log level: error, warn, info or debug" },
	{ "config", 0, 0, cmd_config, "config", "the configuration in force" },
	{ "logreopen", 0, 0, cmd_logreopen, "logreopen",
	  "reopen the log file (after it was rotated)" },
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

CMD(help)
{
	json_t *list = json_array();

	(void)argc;
	(void)argv;
	for (size_t i = 0; i < NCOMMANDS; i++)
		list = push(list, json_pack("{s:s, s:s, s:s}",
		                            "name", commands[i].name,
		                            "usage", commands[i].usage,
		                            "help", commands[i].help));
	reply(c, ok_with("commands", list));
}

CMD(version)
{
	(void)argc;
	(void)argv;
	reply(c, json_pack("{s:b, s:s, s:s}", "ok", 1, "version",
	                   PACKAGE_VERSION, "server", MQD_SERVER_NAME));
}

/* A queue name from the command line, or an error reply (false). */
static bool name_ok(struct ctl_client *c, const char *name)
{
	char echo[CTL_ECHO_MAX + 4];

	if (mqd_name_valid((const uint8_t *)name, strlen(name)))
		return true;
	reply_error(c, "bad queue name '%s'",
	            printable(name, echo, sizeof echo));
	return false;
}

/* Decimal digits only, at most max; 0 or -1. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (*s < '0' || *s > '9' || v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* ---- stats ------------------------------------------------------------- */

/* {"ok":true} followed by obj's members (obj stolen); NULL if obj is NULL
 * or jansson fails. */
static json_t *ok_and(json_t *obj)
{
	json_t *r = obj != NULL ? json_pack("{s:b}", "ok", 1) : NULL;

	if (r != NULL && json_object_update(r, obj) < 0) {
		json_decref(r);
		r = NULL;
	}
	json_decref(obj);
	return r;
}

/* Second part of stats: the workers' rows complete the reply. */
static void stats_workers_cb(void *arg, const struct mqd_worker_info *rows,
                             size_t n)
{
	struct ctl_query *q = arg;
	const struct mqd_admin_api *api;
	json_t *list;

	if (!query_live(q)) {
		query_free(q);
		return;
	}
	api = &q->client->ctl->api;
	list = json_array();
	for (size_t i = 0; i < n; i++)
		list = push(list, mqd_report_worker_json(&rows[i]));
	api->rates(api->ctx, &q->stats.rates);
	reply(q->client, ok_and(mqd_report_stats_json(&q->stats, list)));
	query_free(q);
}

/* First part of stats: the queues' rows and the figures read now, then
 * ask the workers. */
static void stats_done(struct ctl_client *c, const struct mqd_queue_info *rows,
                       size_t n)
{
	const struct mqd_admin_api *api = &c->ctl->api;
	struct ctl_query *q = query_new(c);

	if (q == NULL) {
		reply_error(c, "out of memory");
		return;
	}
	q->stats.nqueues = n;
	for (size_t i = 0; i < n; i++)
		mqd_report_add_queue(&q->stats.sum, &rows[i]);
	api->stats(api->ctx, &q->stats.server);
	q->stats.rss_bytes = mqd_report_rss_bytes();
	if (api->query_workers(api->ctx, stats_workers_cb, q) < 0)
		query_failed(q);
}

CMD(stats)
{
	(void)argc;
	(void)argv;
	start_query(c, NULL, stats_done);
}

/* ---- queues ------------------------------------------------------------ */

static void queues_done(struct ctl_client *c,
                        const struct mqd_queue_info *rows, size_t n)
{
	json_t *list = json_array();

	for (size_t i = 0; i < n; i++)
		list = push(list, mqd_report_queue_json(&rows[i], true));
	reply(c, ok_with("queues", list));
}

CMD(queues)
{
	(void)argc;
	(void)argv;
	start_query(c, NULL, queues_done);
}

static void queue_done(struct ctl_client *c, const struct mqd_queue_info *rows,
                       size_t n)
{
	if (n == 0) {
		reply_error(c, "no such queue");
		return;
	}
	reply(c, ok_with("queue", mqd_report_queue_json(&rows[0], true)));
}

CMD(queue)
{
	(void)argc;
	if (name_ok(c, argv[0]))
		start_query(c, argv[0], queue_done);
}

/* ---- connections, kill ------------------------------------------------- */

static json_t *conn_json(const struct mqd_conn_info *r)
{
	return json_pack("{s:I, s:I, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:I, "
	                 "s:I, s:I}",
	                 "id", JI(r->id), "worker", JI(r->worker),
	                 "peer", jstr(r->peer, sizeof r->peer),
	                 "client", jstr(r->client, sizeof r->client),
	                 "user", jstr(r->user, sizeof r->user),
	                 "age_s", JI(r->age_ms / 1000),
	                 "consumers", JI(r->consumers), "held", JI(r->held),
	                 "bytes_in", JI(r->bytes_in),
	                 "bytes_out", JI(r->bytes_out),
	                 "subscriptions", JI(r->subscriptions),
	                 "dropped", JI(r->dropped));
}

static void conns_cb(void *arg, const struct mqd_conn_info *rows, size_t n)
{
	struct ctl_query *q = arg;

	if (query_live(q)) {
		json_t *list = json_array();

		for (size_t i = 0; i < n; i++)
			list = push(list, conn_json(&rows[i]));
		reply(q->client, ok_with("connections", list));
	}
	query_free(q);
}

CMD(connections)
{
	struct ctl_query *q = query_new(c);

	(void)argc;
	(void)argv;
	if (q == NULL) {
		reply_error(c, "out of memory");
		return;
	}
	if (c->ctl->api.query_conns(c->ctl->api.ctx, conns_cb, q) < 0)
		query_failed(q);
}

static void kill_cb(void *arg, bool found)
{
	struct ctl_query *q = arg;

	if (query_live(q)) {
		if (found)
			reply(q->client, ok_with("killed", json_integer(JI(q->id))));
		else
			reply_error(q->client, "no such connection");
	}
	query_free(q);
}

CMD(kill)
{
	char echo[CTL_ECHO_MAX + 4];
	struct ctl_query *q;
	uint64_t id;

	(void)argc;
	if (parse_u64(argv[0], INT64_MAX, &id) < 0) {
		reply_error(c, "bad connection id '%s' (write a number from "
		            "connections)", printable(argv[0], echo, sizeof echo));
		return;
	}
	q = query_new(c);
	if (q == NULL) {
		reply_error(c, "out of memory");
		return;
	}
	q->id = id;
	mqd_log_info("control client %llu: kill connection %llu",
	             (unsigned long long)c->id, (unsigned long long)id);
	if (c->ctl->api.kill_conn(c->ctl->api.ctx, id, kill_cb, q) < 0)
		query_failed(q);
}

/* ---- declare, delete, purge ---------------------------------------------- */

enum decl_type { D_UINT, D_SIZE, D_DURATION, D_OVERFLOW, D_QUEUE };

/* The keys of "declare NAME key=value", named as in [queue NAME]. */
static const struct decl_key {
	const char *name;
	enum decl_type type;
	size_t offset, size; /* in struct mqd_queue_conf */
	uint64_t max;        /* D_UINT, D_DURATION */
} decl_keys[DECL_KEYS] = {
#define DK(n, t, f, m)                                                       \
	{ n, t, offsetof(struct mqd_queue_conf, f),                          \
	  sizeof(((struct mqd_queue_conf *)0)->f), m }
	DK("max_length", D_UINT, max_length, UINT32_MAX),
	DK("max_bytes", D_SIZE, max_bytes, UINT64_MAX),
	DK("overflow", D_OVERFLOW, overflow, 0),
	DK("message_ttl", D_DURATION, message_ttl_ms, UINT32_MAX),
	DK("ack_timeout", D_DURATION, ack_timeout_ms, UINT32_MAX),
	DK("max_attempts", D_UINT, max_attempts, UINT16_MAX),
	DK("dead_letter", D_QUEUE, dead_letter, 0),
#undef DK
};

static void store(void *field, size_t size, uint64_t v)
{
	switch (size) {
	case 1: { uint8_t x = (uint8_t)v; memcpy(field, &x, 1); break; }
	case 2: { uint16_t x = (uint16_t)v; memcpy(field, &x, 2); break; }
	case 4: { uint32_t x = (uint32_t)v; memcpy(field, &x, 4); break; }
	default: memcpy(field, &v, sizeof v); break;
	}
}

/* The value of one declare key into *n (numbers) or q (dead_letter);
 * 0, or -1 with the reason in why. */
static int decl_value(const struct decl_key *k, const char *v,
                      struct mqd_queue_conf *q, const char *queue,
                      uint64_t *n, char *why, size_t cap)
{
	char echo[CTL_ECHO_MAX + 4];

	printable(v, echo, sizeof echo);
	switch (k->type) {
	case D_UINT:
		if (parse_u64(v, k->max, n) == 0)
			return 0;
		snprintf(why, cap, "bad number '%s' for %s (write a whole number "
		         "from 0 to %llu)", echo, k->name,
		         (unsigned long long)k->max);
		return -1;
	case D_SIZE:
		if (mqd_parse_size(v, n) == 0)
			return 0;
		snprintf(why, cap, "bad size '%s' for %s (write bytes with an "
		         "optional K, M or G suffix, e.g. 64M)", echo, k->name);
		return -1;
	case D_DURATION:
		if (mqd_parse_duration(v, n) == 0 && *n <= k->max)
			return 0;
		snprintf(why, cap, "bad duration '%s' for %s (write a number and "
		         "ms, s, m or h, e.g. 30s; at most %llums)", echo,
		         k->name, (unsigned long long)k->max);
		return -1;
	case D_OVERFLOW:
		*n = strcmp(v, "reject") == 0      ? 1
		   : strcmp(v, "drop_head") == 0 ? 2
		                                 : 0;
		if (*n != 0)
			return 0;
		snprintf(why, cap, "bad value '%s' for overflow (write reject or "
		         "drop_head)", echo);
		return -1;
	case D_QUEUE:
		if (*v != '\0' && !mqd_name_valid((const uint8_t *)v, strlen(v))) {
			snprintf(why, cap, "bad queue name '%s' for %s", echo,
			         k->name);
			return -1;
		}
		if (strcmp(v, queue) == 0) {
			snprintf(why, cap, "%s may not name the queue itself",
			         k->name);
			return -1;
		}
		/* mqd_name_valid: at most 255 bytes, the field holds 256. */
		memset((char *)q + k->offset, 0, k->size);
		memcpy((char *)q + k->offset, v, strlen(v));
		return 0;
	}
	return -1;
}

/* One "key=value" into q; 0, or -1 with the reason in why.  given: the
 * keys seen so far, one bit each. */
static int decl_set(struct mqd_queue_conf *q, const char *queue, char *arg,
                    unsigned *given, char *why, size_t cap)
{
	char echo[CTL_ECHO_MAX + 4];
	char *eq = strchr(arg, '=');
	const struct decl_key *k = NULL;
	uint64_t n = 0;

	if (eq == NULL || eq == arg) {
		snprintf(why, cap, "bad argument '%s' (write key=value)",
		         printable(arg, echo, sizeof echo));
		return -1;
	}
	*eq = '\0';
	for (size_t i = 0; i < DECL_KEYS && k == NULL; i++)
		if (strcmp(decl_keys[i].name, arg) == 0)
			k = &decl_keys[i];
	if (k == NULL) {
		snprintf(why, cap, "unknown key '%s' (keys: max_length, "
		         "max_bytes, overflow, message_ttl, ack_timeout, "
		         "max_attempts, dead_letter)",
		         printable(arg, echo, sizeof echo));
		return -1;
	}
	if (*given & (1u << (k - decl_keys))) {
		snprintf(why, cap, "repeated key '%s'", k->name);
		return -1;
	}
	*given |= 1u << (k - decl_keys);
	if (decl_value(k, eq + 1, q, queue, &n, why, cap) < 0)
		return -1;
	if (k->type != D_QUEUE)
		store((char *)q + k->offset, k->size, n);
	return 0;
}

static void admin_cb(void *arg, const struct mqd_admin_result *r)
{
	struct ctl_query *q = arg;
	struct ctl_client *c = q->client;
	json_t *name;

	if (!query_live(q)) {
		query_free(q);
		return;
	}
	if (r->code != 0) {
		if (r->message[0] != '\0')
			reply_error(c, "%s: %.*s", mqd_err_name(r->code),
			            (int)sizeof r->message, r->message);
		else
			reply_error(c, "%s", mqd_err_name(r->code));
		query_free(q);
		return;
	}
	name = json_string(q->name); /* a valid queue name: ASCII */
	switch (q->op) {
	case MQD_ADMIN_DECLARE:
		reply(c, put(ok_with("queue", name), "created",
		             json_boolean(r->created)));
		break;
	case MQD_ADMIN_DELETE:
		reply(c, ok_with("deleted", name));
		break;
	case MQD_ADMIN_PURGE:
		reply(c, put(ok_with("queue", name), "purged",
		             json_integer(JI(r->count))));
		break;
	}
	query_free(q);
}

static void start_admin(struct ctl_client *c, enum mqd_admin_op op,
                        const char *name, const struct mqd_queue_conf *set,
                        bool if_empty)
{
	static const char *const verbs[] = {
		[MQD_ADMIN_DECLARE] = "declare", [MQD_ADMIN_DELETE] = "delete",
		[MQD_ADMIN_PURGE] = "purge",
	};
	struct ctl_query *q = query_new(c);

	if (q == NULL) {
		reply_error(c, "out of memory");
		return;
	}
	q->op = op;
	snprintf(q->name, sizeof q->name, "%s", name);
	mqd_log_info("control client %llu: %s queue %s%s",
	             (unsigned long long)c->id, verbs[op], name,
	             if_empty ? " (if empty)" : "");
	if (c->ctl->api.admin_queue(c->ctl->api.ctx, op, name, set, if_empty,
	                            admin_cb, q) < 0)
		query_failed(q);
}

int mqd_control_parse_declare(int argc, char **argv,
                              struct mqd_queue_conf *set, char *why,
                              size_t cap)
{
	char echo[CTL_ECHO_MAX + 4];
	unsigned given = 0;

	memset(set, 0, sizeof *set);
	if (!mqd_name_valid((const uint8_t *)argv[0], strlen(argv[0]))) {
		snprintf(why, cap, "bad queue name '%s'",
		         printable(argv[0], echo, sizeof echo));
		return -1;
	}
	for (int i = 1; i < argc; i++)
		if (decl_set(set, argv[0], argv[i], &given, why, cap) < 0)
			return -1;
	return 0;
}

CMD(declare)
{
	struct mqd_queue_conf set;
	char why[512];

	if (mqd_control_parse_declare(argc, argv, &set, why, sizeof why) < 0) {
		reply_error(c, "%s", why);
		return;
	}
	start_admin(c, MQD_ADMIN_DECLARE, argv[0], &set, false);
}

CMD(delete)
{
	char echo[CTL_ECHO_MAX + 4];

	if (argc == 2 && strcmp(argv[1], "--if-empty") != 0) {
		reply_error(c, "unknown option '%s' (usage: delete NAME "
		            "[--if-empty])", printable(argv[1], echo, sizeof echo));
		return;
	}
	if (name_ok(c, argv[0]))
		start_admin(c, MQD_ADMIN_DELETE, argv[0], NULL, argc == 2);
}

CMD(purge)
{
	(void)argc;
	if (name_ok(c, argv[0]))
		start_admin(c, MQD_ADMIN_PURGE, argv[0], NULL, false);
}

/* ---- reload, shutdown, loglevel, logreopen --------------------------------- */

/* "a, b,c" as ["a","b","c"] (blanks around items and empty items go). */
static json_t *split_list(const char *text, size_t max)
{
	json_t *list = json_array();
	const char *p = text, *end = text + strnlen(text, max);

	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma != NULL ? comma : end;
		const char *b = p;

		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > b)
			list = push(list, jstr(b, (size_t)(e - b)));
		p = (comma != NULL ? comma : end) + 1;
	}
	return list;
}

CMD(reload)
{
	struct mqd_reload_result *r = calloc(1, sizeof *r);

	(void)argc;
	(void)argv;
	if (r == NULL) {
		reply_error(c, "out of memory");
		return;
	}
	mqd_log_info("control client %llu: reload", (unsigned long long)c->id);
	c->ctl->api.reload(c->ctl->api.ctx, r);
	if (!r->ok)
		reply_error(c, "%.*s", (int)sizeof r->error,
		            r->error[0] != '\0' ? r->error : "reload failed");
	else
		reply(c, put(ok_with("applied", split_list(r->applied,
		                                            sizeof r->applied)),
		             "restart_needed",
		             split_list(r->restart_needed,
		                        sizeof r->restart_needed)));
	free(r);
}

CMD(shutdown)
{
	/* ctl outlives c, which the reply may close. */
	struct mqd_control *ctl = c->ctl;
	char echo[CTL_ECHO_MAX + 4];
	uint64_t ms = CTL_SHUTDOWN_DEFAULT_MS;

	if (argc == 1 && (mqd_parse_duration(argv[0], &ms) < 0 ||
	                  ms > CTL_SHUTDOWN_MAX_MS)) {
		reply_error(c, "bad timeout '%s' (write a duration such as 30s "
		            "or 500ms, at most 24h; 0 = do not wait)",
		            printable(argv[0], echo, sizeof echo));
		return;
	}
	mqd_log_info("control client %llu: shutdown, waiting up to %llu ms "
	             "for held messages", (unsigned long long)c->id,
	             (unsigned long long)ms);
	/* The answer goes out first: the server may be gone soon after. */
	reply(c, json_pack("{s:b, s:b, s:I}", "ok", 1, "shutting_down", 1,
	                   "timeout_ms", JI(ms)));
	mqd_control_flush(c);
	ctl->api.shutdown(ctl->api.ctx, ms);
}

CMD(loglevel)
{
	char echo[CTL_ECHO_MAX + 4];
	enum mqd_log_level old = mqd_log_get_level(), level;

	(void)argc;
	if (mqd_parse_log_level(argv[0], &level) < 0) {
		reply_error(c, "bad log level '%s' (write error, warn, info or "
		            "debug)", printable(argv[0], echo, sizeof echo));
		return;
	}
	mqd_log_set_level(level);
	/* At warn, so that a change to warn or error is still on record. */
	mqd_log_warn("control client %llu: log level %s (was %s)",
	             (unsigned long long)c->id, mqd_log_level_name(level),
	             mqd_log_level_name(old));
	reply(c, json_pack("{s:b, s:s, s:s}", "ok", 1,
	                   "old", mqd_log_level_name(old),
	                   "new", mqd_log_level_name(level)));
}

CMD(logreopen)
{
	int err;

	(void)argc;
	(void)argv;
	errno = 0;
	if (c->ctl->api.log_reopen(c->ctl->api.ctx) < 0) {
		err = errno;
		if (err != 0)
			reply_error(c, "cannot reopen the log file: %s",
			            strerror(err));
		else
			reply_error(c, "cannot reopen the log file");
		return;
	}
	reply(c, json_pack("{s:b}", "ok", 1));
}

/* ---- config -------------------------------------------------------------- */

static json_t *addr_json(const struct mqd_listen_addr *a)
{
	char buf[sizeof a->host + 16];

	snprintf(buf, sizeof buf, strchr(a->host, ':') ? "[%.*s]:%u" : "%.*s:%u",
	         (int)strnlen(a->host, sizeof a->host), a->host,
	         (unsigned)a->port);
	return jstr(buf, sizeof buf);
}

/* The keys of [defaults] and [queue NAME], named as in the file; sizes in
 * bytes, durations in milliseconds.  first (stolen) leads: the queue's
 * name, or [defaults]' prefetch. */
static json_t *queue_conf_json(const struct mqd_queue_conf *q,
                               const char *first_key, json_t *first)
{
	return json_pack("{s:o, s:I, s:I, s:s, s:I, s:I, s:I, s:o}",
	                 first_key, first,
	                 "max_length", JI(q->max_length),
	                 "max_bytes", JI(q->max_bytes),
	                 "overflow", mqd_report_overflow_name(q->overflow),
	                 "message_ttl", JI(q->message_ttl_ms),
	                 "ack_timeout", JI(q->ack_timeout_ms),
	                 "max_attempts", JI(q->max_attempts),
	                 "dead_letter", jstr(q->dead_letter,
	                                     sizeof q->dead_letter));
}

static json_t *server_conf_json(const struct mqd_config *cfg,
                                unsigned nworkers)
{
	json_t *listen = json_array();
	char mode[8];

	for (size_t i = 0; i < cfg->nlisten; i++)
		listen = push(listen, addr_json(&cfg->listen[i]));
	snprintf(mode, sizeof mode, "%04o", (unsigned)cfg->control_socket_mode);
	return json_pack(
		"{s:o, s:o, s:s, s:o, s:I, s:I, s:I, s:b, s:I, s:s, s:o, s:o,"
		" s:I, s:I}",
		"listen", listen,
		"control_socket", jstr(cfg->control_socket,
		                       sizeof cfg->control_socket),
		"control_socket_mode", mode,
		"metrics_listen", cfg->metrics_on
		                  ? addr_json(&cfg->metrics_listen)
		                  : json_string(""),
		/* 0 in the file means one per CPU: say how many that is. */
		"workers", JI(nworkers != 0 ? nworkers : cfg->workers),
		"max_connections", JI(cfg->max_connections),
		"max_frame", JI(cfg->max_frame),
		"auto_create", (int)cfg->auto_create,
		"idle_timeout", JI(cfg->idle_timeout_ms),
		/* loglevel may have changed it since the file was read. */
		"log_level", mqd_log_level_name(mqd_log_get_level()),
		"log_file", jstr(cfg->log_file, sizeof cfg->log_file),
		"pidfile", jstr(cfg->pidfile, sizeof cfg->pidfile),
		"max_memory", JI(cfg->max_memory),
		"slow_consumer_bytes", JI(cfg->slow_consumer_bytes));
}

CMD(config)
{
	const struct mqd_admin_api *api = &c->ctl->api;
	const struct mqd_config *cfg = api->config(api->ctx);
	struct mqd_server_stats st;
	json_t *defaults, *queues = json_array();

	(void)argc;
	(void)argv;
	memset(&st, 0, sizeof st);
	api->stats(api->ctx, &st);
	defaults = queue_conf_json(&cfg->defaults.queue, "prefetch",
	                           json_integer(JI(cfg->defaults.prefetch)));
	for (size_t i = 0; i < cfg->nqueues; i++)
		queues = push(queues, queue_conf_json(
			&cfg->queues[i], "name",
			jstr(cfg->queues[i].name, sizeof cfg->queues[i].name)));
	reply(c, json_pack("{s:b, s:o, s:o, s:o, s:o}", "ok", 1,
	                   "path", jstr(cfg->path, sizeof cfg->path),
	                   "server", server_conf_json(cfg, st.workers),
	                   "defaults", defaults,
	                   "queues", queues));
}

/* ---- lines ------------------------------------------------------------- */

static const struct ctl_cmd *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* No reply and no log here: the fuzz target (tests/fuzz/fuzz_control.c)
 * runs this alone, on any bytes. */
int mqd_control_parse(char *line, size_t n, struct mqd_ctl_line *out,
                      char *why, size_t cap)
{
	char echo[CTL_ECHO_MAX + 4], *save = NULL, *w;
	const struct ctl_cmd *cmd;
	int nargs;

	out->cmd = NULL;
	out->nwords = 0;
	if (strlen(line) != n) {
		snprintf(why, cap, "bad command: it contains a NUL byte");
		return -1;
	}
	for (w = strtok_r(line, " \t", &save);
	     w != NULL && out->nwords < MQD_CTL_ARGS_MAX + 2;
	     w = strtok_r(NULL, " \t", &save))
		out->words[out->nwords++] = w;
	if (out->nwords == 0) {
		snprintf(why, cap, "empty command (try help)");
		return -1;
	}
	cmd = find_command(out->words[0]);
	if (cmd == NULL) {
		snprintf(why, cap, "unknown command '%s' (try help)",
		         printable(out->words[0], echo, sizeof echo));
		return -1;
	}
	nargs = out->nwords - 1;
	if (nargs < cmd->min_args || nargs > cmd->max_args) {
		snprintf(why, cap, "wrong number of arguments for '%s' "
		         "(usage: %s)", cmd->name, cmd->usage);
		return -1;
	}
	out->cmd = cmd;
	return 0;
}

void mqd_control_dispatch(struct ctl_client *c, char *line, size_t n)
{
	char echo[CTL_ECHO_MAX + 4], why[256];
	struct mqd_ctl_line l;
	int rc = mqd_control_parse(line, n, &l, why, sizeof why);

	if (l.nwords > 0)
		mqd_log_debug("control client %llu: %s",
		              (unsigned long long)c->id,
		              printable(l.words[0], echo, sizeof echo));
	if (rc < 0) {
		reply_error(c, "%s", why);
		return;
	}
	l.cmd->handler(c, l.nwords - 1, l.words + 1);
}
