#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * mqctl's printers (mqctl_print.h).  They know the reply shapes but not
 * the rules: a reply that is not the shape a printer knows falls back to
 * JSON, so a server that grows a field or a command never breaks mqctl.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tools/common/cli.h"
#include "tools/mqctl_fmt.h"
#include "tools/mqctl_print.h"

#define CELL_MAX_COLS 40 /* client-chosen strings in tables */

/* ---- printers: one per command whose reply shape mqctl knows ------------- */

/*
 * Each prints a successful reply (ok is true) and returns 0, or returns -1
 * without printing anything when the reply is not the shape it knows; the
 * caller then prints the JSON as it is.  argv[0] is the command.
 */
typedef int (*printer_fn)(const json_t *r, int argc, char **argv);

static void plural(uint64_t n, const char *one, const char *many)
{
	printf("%llu %s", (unsigned long long)n, n == 1 ? one : many);
}

static void print_totals(struct table *kv, const json_t *tot)
{
	static const char *const keys[][2] = {
		{"sent", "sent"}, {"delivered", "delivered"},
		{"acked", "acked"}, {"redelivered", "redelivered"},
		{"expired", "expired"}, {"dead_lettered", "dead-lettered"},
		{"dropped", "dropped"},
	};

	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		kv_u64(kv, keys[i][1], tot, keys[i][0]);
}

static void print_workers(const json_t *workers)
{
	static const struct col cols[] = {
		{"WORKER", true}, {"QUEUES", true}, {"CONNS", true},
		{"READY", true}, {"HELD", true}, {"DELAYED", true},
		{"BYTES", true}, {"MAILS", true}, {"FRAMES", true},
	};
	struct table t;
	const json_t *w;
	size_t i;

	table_init(&t, cols, sizeof cols / sizeof cols[0], true);
	json_array_foreach(workers, i, w) {
		table_put_u64(&t, w, "index");
		table_put_u64(&t, w, "queues");
		table_put_u64(&t, w, "connections");
		table_put_u64(&t, w, "ready");
		table_put_u64(&t, w, "held");
		table_put_u64(&t, w, "delayed");
		table_put_size(&t, w, "bytes");
		table_put_u64(&t, w, "mails");
		table_put_u64(&t, w, "frames");
	}
	putchar('\n');
	table_print(&t);
	table_free(&t);
}

static int print_stats(const json_t *r, int argc, char **argv)
{
	const json_t *msgs = json_object_get(r, "messages");
	const json_t *mem = json_object_get(r, "memory");
	const json_t *rates = json_object_get(r, "rates");
	const json_t *tot = json_object_get(r, "totals");
	const json_t *workers = json_object_get(r, "workers");
	char a[32], b[32], c[32];
	struct table kv;
	uint64_t x, y, z;
	double rin, rout;

	(void)argc;
	(void)argv;
	if (get_str(r, "version") == NULL || !get_u64(r, "uptime_s", &x))
		return -1;
	kv_init(&kv);
	kv_text(&kv, "version", get_str(r, "version"));
	kv_putf(&kv, "uptime", "%s", fmt_age(a, sizeof a, x * 1000));
	kv_u64(&kv, "connections", r, "connections");
	kv_u64(&kv, "queues", r, "queues");
	if (get_u64(msgs, "ready", &x) && get_u64(msgs, "held", &y) &&
	    get_u64(msgs, "delayed", &z))
		kv_putf(&kv, "messages", "%llu ready, %llu held, %llu delayed",
		        (unsigned long long)x, (unsigned long long)y,
		        (unsigned long long)z);
	kv_size(&kv, "bytes", r, "bytes");
	if (get_u64(mem, "rss_bytes", &x) && get_u64(mem, "accounted_bytes", &y) &&
	    get_u64(mem, "max_memory", &z))
		kv_putf(&kv, "memory", "%s resident, %s accounted, %s%s",
		        fmt_size(a, sizeof a, x), fmt_size(b, sizeof b, y),
		        z ? "limit " : "no limit", z ? fmt_size(c, sizeof c, z) : "");
	if (get_num(rates, "in", &rin) && get_num(rates, "out", &rout))
		kv_putf(&kv, "rates", "in %s, out %s",
		        fmt_rate(a, sizeof a, rin), fmt_rate(b, sizeof b, rout));
	if (json_is_object(tot))
		print_totals(&kv, tot);
	if (json_is_integer(workers)) /* a server without per-worker rows */
		kv_u64(&kv, "workers", r, "workers");
	kv_done(&kv);
	if (json_is_array(workers) && json_array_size(workers) > 0)
		print_workers(workers);
	return 0;
}

static bool rows_ok(const json_t *rows, const char *key)
{
	const json_t *row;
	size_t i;

	if (!json_is_array(rows))
		return false;
	json_array_foreach(rows, i, row)
		if (!json_is_object(row) || !json_object_get(row, key))
			return false;
	return true;
}

static int print_queues(const json_t *r, int argc, char **argv)
{
	static const struct col cols[] = {
		{"NAME", false}, {"OWNER", true}, {"READY", true},
		{"HELD", true}, {"DELAYED", true}, {"CONS", true},
		{"BYTES", true}, {"SENT", true}, {"DELIV", true},
		{"ACKED", true}, {"REDELIV", true}, {"EXPIRED", true},
		{"DEAD", true}, {"DROPPED", true},
	};
	static const char *const counts[] = {
		"sent", "delivered", "acked", "redelivered", "expired",
		"dead_lettered", "dropped",
	};
	const json_t *rows = json_object_get(r, "queues"), *row;
	struct table t;
	size_t i;

	(void)argc;
	(void)argv;
	if (!rows_ok(rows, "name"))
		return -1;
	if (json_array_size(rows) == 0) {
		puts("no queues");
		return 0;
	}
	table_init(&t, cols, sizeof cols / sizeof cols[0], true);
	json_array_foreach(rows, i, row) {
		table_put_text(&t, get_str(row, "name"), 0);
		table_put_u64(&t, row, "owner");
		table_put_u64(&t, row, "ready");
		table_put_u64(&t, row, "held");
		table_put_u64(&t, row, "delayed");
		table_put_u64(&t, row, "consumers");
		table_put_size(&t, row, "bytes");
		for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++)
			table_put_u64(&t, row, counts[k]);
	}
	table_print(&t);
	table_free(&t);
	return 0;
}

/* A limit where 0 means none. */
static void kv_limit(struct table *kv, const char *key, const json_t *o,
                     bool size, const char *none)
{
	char buf[32];
	uint64_t v;

	if (!get_u64(o, key, &v))
		return;
	if (v == 0)
		kv_putf(kv, key, "%s", none);
	else if (size)
		kv_putf(kv, key, "%s", fmt_size(buf, sizeof buf, v));
	else
		kv_putf(kv, key, "%llu", (unsigned long long)v);
}

static void kv_ms(struct table *kv, const char *key, const json_t *o,
                  const char *field, const char *none)
{
	char buf[32];
	uint64_t v;

	if (get_u64(o, field, &v))
		kv_putf(kv, key, "%s", v ? fmt_duration(buf, sizeof buf, v) : none);
}

static int print_queue(const json_t *r, int argc, char **argv)
{
	static const char *const counts[][2] = {
		{"ready", "ready"}, {"held", "held"}, {"delayed", "delayed"},
		{"consumers", "consumers"}, {"sent", "sent"},
		{"delivered", "delivered"}, {"acked", "acked"},
		{"redelivered", "redelivered"}, {"expired", "expired"},
		{"dead_lettered", "dead-lettered"}, {"dropped", "dropped"},
		{"purged", "purged"},
	};
	const json_t *q = json_object_get(r, "queue");
	const json_t *set = json_object_get(q, "settings");
	bool excl = json_is_true(json_object_get(q, "exclusive"));
	bool autodel = json_is_true(json_object_get(q, "auto_delete"));
	struct table kv;
	uint64_t v;

	(void)argc;
	(void)argv;
	if (!json_is_object(q) || get_str(q, "name") == NULL)
		return -1;
	kv_init(&kv);
	kv_text(&kv, "name", get_str(q, "name"));
	if (get_u64(q, "owner", &v))
		kv_putf(&kv, "owner", "worker %llu", (unsigned long long)v);
	kv_putf(&kv, "flags", "%s", excl && autodel ? "exclusive, auto_delete"
	                           : excl           ? "exclusive"
	                           : autodel        ? "auto_delete"
	                                            : "-");
	for (size_t i = 0; i < 3; i++)
		kv_u64(&kv, counts[i][1], q, counts[i][0]);
	kv_size(&kv, "bytes", q, "bytes");
	for (size_t i = 3; i < sizeof counts / sizeof counts[0]; i++)
		kv_u64(&kv, counts[i][1], q, counts[i][0]);
	if (json_is_object(set)) {
		table_blank(&kv);
		kv_limit(&kv, "max_length", set, false, "no limit");
		kv_limit(&kv, "max_bytes", set, true, "no limit");
		if (get_str(set, "overflow"))
			kv_text(&kv, "overflow", get_str(set, "overflow"));
		kv_ms(&kv, "message_ttl", set, "message_ttl_ms", "never");
		kv_ms(&kv, "ack_timeout", set, "ack_timeout_ms", "never");
		kv_limit(&kv, "max_attempts", set, false, "no limit");
		if (get_str(set, "dead_letter"))
			kv_text(&kv, "dead_letter", get_str(set, "dead_letter"));
	}
	kv_done(&kv);
	return 0;
}

static int print_connections(const json_t *r, int argc, char **argv)
{
	static const struct col cols[] = {
		{"ID", true}, {"WORKER", true}, {"PEER", false},
		{"CLIENT", false}, {"USER", false}, {"AGE", true},
		{"CONS", true}, {"SUBS", true}, {"HELD", true}, {"IN", true},
		{"OUT", true}, {"DROPPED", true},
	};
	const json_t *rows = json_object_get(r, "connections"), *row;
	struct table t;
	char buf[32];
	uint64_t age;
	size_t i;

	(void)argc;
	(void)argv;
	if (!rows_ok(rows, "id"))
		return -1;
	if (json_array_size(rows) == 0) {
		puts("no connections");
		return 0;
	}
	table_init(&t, cols, sizeof cols / sizeof cols[0], true);
	json_array_foreach(rows, i, row) {
		table_put_u64(&t, row, "id");
		table_put_u64(&t, row, "worker");
		table_put_text(&t, get_str(row, "peer"), CELL_MAX_COLS);
		table_put_text(&t, get_str(row, "client"), CELL_MAX_COLS);
		table_put_text(&t, get_str(row, "user"), CELL_MAX_COLS);
		table_take(&t, xstrdup(get_u64(row, "age_s", &age)
		                       ? fmt_age(buf, sizeof buf, age * 1000)
		                       : "-"));
		table_put_u64(&t, row, "consumers");
		table_put_u64(&t, row, "subscriptions");
		table_put_u64(&t, row, "held");
		table_put_size(&t, row, "bytes_in");
		table_put_size(&t, row, "bytes_out");
		table_put_u64(&t, row, "dropped");
	}
	table_print(&t);
	table_free(&t);
	return 0;
}

static int print_version(const json_t *r, int argc, char **argv)
{
	struct table kv;

	(void)argc;
	(void)argv;
	if (get_str(r, "server") == NULL || get_str(r, "version") == NULL)
		return -1;
	kv_init(&kv);
	kv_text(&kv, "server", get_str(r, "server"));
	kv_text(&kv, "version", get_str(r, "version"));
	kv_text(&kv, "mqctl", PACKAGE_VERSION);
	kv_done(&kv);
	return 0;
}

static int print_help(const json_t *r, int argc, char **argv)
{
	const json_t *cmds = json_object_get(r, "commands"), *c;
	struct table kv;
	size_t i;

	(void)argc;
	(void)argv;
	if (!json_is_array(cmds))
		return -1;
	json_array_foreach(cmds, i, c)
		if (!json_is_string(c) && (!json_is_object(c) ||
		                           get_str(c, "name") == NULL))
			return -1;
	kv_init(&kv);
	json_array_foreach(cmds, i, c) {
		if (json_is_string(c)) {
			table_put_text(&kv, json_string_value(c), 0);
			table_take(&kv, xstrdup(""));
			continue;
		}
		table_put_text(&kv, get_str(c, "usage") ? get_str(c, "usage")
		                                        : get_str(c, "name"), 0);
		table_put_text(&kv, get_str(c, "help"), 0);
	}
	kv_done(&kv);
	return 0;
}

static int print_kill(const json_t *r, int argc, char **argv)
{
	const json_t *k = json_object_get(r, "killed");

	if (json_is_integer(k))
		printf("killed connection %lld\n", (long long)json_integer_value(k));
	else if (json_is_true(k) && argc > 1)
		printf("killed connection %s\n", argv[1]);
	else
		return -1;
	return 0;
}

static int print_declare(const json_t *r, int argc, char **argv)
{
	const json_t *created = json_object_get(r, "created");
	const char *name = get_str(r, "queue");
	char *n;

	if (name == NULL && argc > 1)
		name = argv[1];
	if (name == NULL || !json_is_boolean(created))
		return -1;
	n = clean(name, 0);
	if (json_is_true(created))
		printf("declared %s\n", n);
	else
		printf("%s exists already, with these settings\n", n);
	free(n);
	return 0;
}

static int print_delete(const json_t *r, int argc, char **argv)
{
	(void)r;
	if (argc < 2)
		return -1;
	printf("deleted %s\n", argv[1]);
	return 0;
}

static int print_purge(const json_t *r, int argc, char **argv)
{
	uint64_t n;

	(void)argc;
	(void)argv;
	if (!get_u64(r, "purged", &n))
		return -1;
	fputs("purged ", stdout);
	plural(n, "message", "messages");
	putchar('\n');
	return 0;
}

/* The strings of an array joined with ", ", cleaned; NULL if it is not an
 * array of strings. */
static char *join(const json_t *a)
{
	const json_t *v;
	size_t i, len = 1;
	char *out, *p;

	if (!json_is_array(a))
		return NULL;
	json_array_foreach(a, i, v) {
		if (!json_is_string(v))
			return NULL;
		len += json_string_length(v) + 2;
	}
	out = p = malloc(len);
	if (out == NULL)
		oom();
	*p = '\0';
	json_array_foreach(a, i, v) {
		char *s = clean(json_string_value(v), 0);

		p += sprintf(p, "%s%s", i ? ", " : "", s);
		free(s);
	}
	return out;
}

static int print_reload(const json_t *r, int argc, char **argv)
{
	char *applied = join(json_object_get(r, "applied"));
	char *restart = join(json_object_get(r, "restart_needed"));

	(void)argc;
	(void)argv;
	if (applied == NULL || restart == NULL) {
		free(applied);
		free(restart);
		return -1;
	}
	if (!*applied && !*restart)
		puts("reloaded: no changes");
	else
		printf("reloaded: %s%s%s%s\n", *applied ? "applied " : "",
		       *applied ? applied : "nothing applied",
		       *restart ? "; restart needed: " : "", restart);
	free(applied);
	free(restart);
	return 0;
}

static int print_shutdown(const json_t *r, int argc, char **argv)
{
	char buf[32];
	uint64_t ms;

	(void)argc;
	(void)argv;
	if (!json_is_true(json_object_get(r, "shutting_down")) ||
	    !get_u64(r, "timeout_ms", &ms))
		return -1;
	if (ms == 0)
		puts("shutting down now, without waiting for held messages");
	else
		printf("shutting down: waiting up to %s for held messages to "
		       "be acknowledged\n", fmt_duration(buf, sizeof buf, ms));
	return 0;
}

static int print_loglevel(const json_t *r, int argc, char **argv)
{
	const char *old = get_str(r, "old"), *new = get_str(r, "new");
	char *o, *n;

	(void)argc;
	(void)argv;
	if (old == NULL || new == NULL)
		return -1;
	o = clean(old, 0);
	n = clean(new, 0);
	if (strcmp(o, n) == 0)
		printf("log level: %s (unchanged)\n", n);
	else
		printf("log level: %s -> %s\n", o, n);
	free(o);
	free(n);
	return 0;
}

static int print_logreopen(const json_t *r, int argc, char **argv)
{
	(void)r;
	(void)argc;
	(void)argv;
	puts("reopened the log file");
	return 0;
}

/*
 * config: the reply as mqd.conf, so that it reads like the file (and could
 * be one).  The server gives sizes in bytes and durations in milliseconds;
 * the file wants units, so the keys known to be sizes or durations get
 * them.  Sections are objects ("server": {...} is [server]); an array of
 * objects with a "name" ("queues": [{"name":"jobs",...}]) is one section
 * each ([queue jobs]).  Both {"ok","config":{...}} and the sections at the
 * top level are understood.
 */
static bool is_key(const char *k, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(k, *list) == 0)
			return true;
	return false;
}

static const char *const size_keys[] = {
	"max_bytes", "max_frame", "max_memory", "slow_consumer_bytes", NULL,
};
static const char *const duration_keys[] = {
	"message_ttl", "ack_timeout", "idle_timeout", "message_ttl_ms",
	"ack_timeout_ms", "idle_timeout_ms", NULL,
};

/* A size as mqd.conf writes it: "0", "512", "64K", "1M", "2G". */
static char *conf_size(uint64_t v)
{
	static const char suffix[] = "GMK";
	char *s;

	for (int i = 0; i < 3 && v != 0; i++) {
		uint64_t unit = 1ull << (10 * (3 - i));

		if (v % unit == 0) {
			if (asprintf(&s, "%llu%c", (unsigned long long)(v / unit),
			             suffix[i]) < 0)
				oom();
			return s;
		}
	}
	if (asprintf(&s, "%llu", (unsigned long long)v) < 0)
		oom();
	return s;
}

/* A value as mqd.conf writes it; NULL if it is not a scalar or an array of
 * strings. */
static char *conf_value(const char *key, const json_t *v)
{
	char buf[32], *s;

	if (json_is_string(v))
		return clean(json_string_value(v), 0);
	if (json_is_array(v))
		return join(v);
	if (json_is_boolean(v))
		return xstrdup(json_is_true(v) ? "yes" : "no");
	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    is_key(key, size_keys))
		return conf_size((uint64_t)json_integer_value(v));
	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    is_key(key, duration_keys))
		return xstrdup(json_integer_value(v) == 0
		               ? "0"
		               : fmt_duration(buf, sizeof buf,
		                              (uint64_t)json_integer_value(v)));
	if (json_is_integer(v)) {
		if (asprintf(&s, "%lld", (long long)json_integer_value(v)) < 0)
			oom();
		return s;
	}
	if (json_is_real(v)) {
		if (asprintf(&s, "%g", json_real_value(v)) < 0)
			oom();
		return s;
	}
	return NULL;
}

/* The key as the file names it ("message_ttl_ms" is message_ttl). */
static char *conf_key(const char *k)
{
	size_t n = strlen(k);
	char *ck = clean(k, 0);

	if (is_key(k, duration_keys) && n > 3 && strcmp(k + n - 3, "_ms") == 0)
		ck[n - 3] = '\0';
	return ck;
}

/* Whether an array is sections: objects that each have a "name". */
static bool named_sections(const json_t *a)
{
	const json_t *v;
	size_t i;

	if (!json_is_array(a) || json_array_size(a) == 0)
		return false;
	json_array_foreach(a, i, v)
		if (!json_is_object(v) || get_str(v, "name") == NULL)
			return false;
	return true;
}

/* Whether the members of a section can all be written as key = value. */
static bool conf_flat(const json_t *o)
{
	const char *k;
	const json_t *v;

	json_object_foreach((json_t *)o, k, v) {
		char *s = conf_value(k, v);

		if (s == NULL)
			return false;
		free(s);
	}
	return true;
}

static void conf_section(const char *title, const json_t *o, const char *skip,
                         bool *first)
{
	const char *k;
	const json_t *v;

	printf("%s[%s]\n", *first ? "" : "\n", title);
	*first = false;
	json_object_foreach((json_t *)o, k, v) {
		char *s, *ck;

		if (skip != NULL && strcmp(k, skip) == 0)
			continue;
		s = conf_value(k, v);
		ck = conf_key(k);
		printf("%s =%s%s\n", ck, *s ? " " : "", s);
		free(ck);
		free(s);
	}
}

static int print_config(const json_t *r, int argc, char **argv)
{
	const json_t *c = json_object_get(r, "config"), *v, *q;
	const char *k, *path;
	bool first = true;
	size_t i;

	(void)argc;
	(void)argv;
	if (!json_is_object(c))
		c = r;
	/* Check the whole shape first: nothing is printed for a reply that
	 * falls back to JSON. */
	json_object_foreach((json_t *)c, k, v) {
		if (json_is_object(v) && !conf_flat(v))
			return -1;
		if (named_sections(v))
			json_array_foreach(v, i, q)
				if (!conf_flat(q))
					return -1;
	}
	path = get_str(c, "path") ? get_str(c, "path") : get_str(r, "path");
	if (path != NULL) {
		char *cp = clean(path, 0);

		printf("# %s\n", cp);
		free(cp);
		first = false;
	}
	json_object_foreach((json_t *)c, k, v) {
		char *ck = clean(k, 0), *title;
		size_t n = strlen(ck);

		if (json_is_object(v))
			conf_section(ck, v, NULL, &first);
		/* "queues": [{"name":"jobs"}] is [queue jobs] */
		if (named_sections(v)) {
			if (n > 1 && ck[n - 1] == 's')
				ck[n - 1] = '\0';
			json_array_foreach(v, i, q) {
				char *name = clean(get_str(q, "name"), 0);

				if (asprintf(&title, "%s %s", ck, name) < 0)
					oom();
				conf_section(title, q, "name", &first);
				free(title);
				free(name);
			}
		}
		free(ck);
	}
	return 0;
}

static const struct {
	const char *name;
	printer_fn print;
} printers[] = {
	{"stats", print_stats},
	{"queues", print_queues},
	{"queue", print_queue},
	{"connections", print_connections},
	{"version", print_version},
	{"help", print_help},
	{"kill", print_kill},
	{"declare", print_declare},
	{"delete", print_delete},
	{"purge", print_purge},
	{"reload", print_reload},
	{"shutdown", print_shutdown},
	{"loglevel", print_loglevel},
	{"logreopen", print_logreopen},
	{"config", print_config},
};

/* A successful reply for a person. */
void print_reply(const json_t *r, int argc, char **argv)
{
	char *text;

	for (size_t i = 0; i < sizeof printers / sizeof printers[0]; i++)
		if (strcmp(argv[0], printers[i].name) == 0 &&
		    printers[i].print(r, argc, argv) == 0)
			return;
	if (json_object_size(r) == 1) { /* just "ok" */
		puts("ok");
		return;
	}
	text = json_dumps(r, JSON_INDENT(2));
	if (text == NULL)
		oom();
	puts(text);
	free(text);
}
