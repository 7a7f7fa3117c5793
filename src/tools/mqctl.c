#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * mqctl: the operator's client for mqd's control socket.  It sends one
 * command line, reads the one JSON reply line, and prints it for a person:
 * aligned tables for lists, key/value blocks for single objects, a short
 * sentence for actions.  --json prints the reply as it came, for scripts.
 *
 * mqctl knows the reply shapes but not the rules: argument checking is the
 * server's (it answers an error, status 1), so a command the server grows
 * later works through mqctl at once, printed as indented JSON until mqctl
 * learns its shape.  Exit statuses:
 *
 *   0  the server answered ok
 *   1  the server answered an error (its text on stderr)
 *   2  usage error, or no usable reply (no socket, refused, timeout,
 *      malformed reply)
 */

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

/* The daemon's default [server] control_socket (src/core/config.c). */
#define DEFAULT_SOCKET "/run/mqd/mqd.sock"
#define SOCKET_ENV "MQD_CONTROL_SOCKET"

#define EXIT_SERVER 1
#define EXIT_USAGE 2

#define REPLY_TIMEOUT_MS 30000
#define LINE_MAX_BYTES 4096          /* the server's cap on a command */
#define REPLY_MAX_BYTES (256u << 20) /* a reply longer than this is broken */
#define CELL_MAX_COLS 40             /* client-chosen strings in tables */

/* ---- small helpers ------------------------------------------------------ */

static void oom(void)
{
	fputs("mqctl: out of memory\n", stderr);
	exit(EXIT_USAGE);
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		oom();
	return d;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Columns a UTF-8 string takes (one per code point; jansson hands us valid
 * UTF-8). */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

/*
 * A copy of a server-supplied string safe to put on a terminal: C0 and C1
 * control characters (a client name may carry escape sequences) become
 * '?'.  max_cols > 0 cuts it to that many columns, ending in "...".
 */
static char *clean(const char *s, size_t max_cols)
{
	size_t n = strlen(s), o = 0, cols = 0, keep = SIZE_MAX;
	char *d = malloc(n + 4);
	const unsigned char *p = (const unsigned char *)s;

	if (d == NULL)
		oom();
	if (max_cols > 3 && width(s) > max_cols)
		keep = max_cols - 3;
	while (*p && cols < keep) {
		size_t len = 1;

		if (*p >= 0xC0)
			while ((p[len] & 0xC0) == 0x80)
				len++;
		if (*p < 0x20 || *p == 0x7f || (*p == 0xC2 && p[1] < 0xA0)) {
			d[o++] = '?';
		} else {
			memcpy(d + o, p, len);
			o += len;
		}
		p += len;
		cols++;
	}
	if (*p) {
		memcpy(d + o, "...", 3);
		o += 3;
	}
	d[o] = '\0';
	return d;
}

/* ---- human units ----------------------------------------------------------- */

/* "512 B", "1.5 KiB", "64 MiB" (whole when exact), "12.3 GiB". */
static const char *fmt_size(char *buf, size_t cap, uint64_t v)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB",
	                                    "PiB"};
	size_t u = 0;
	uint64_t div = 1;
	double d = (double)v;

	while (d >= 1023.95 && u + 1 < sizeof units / sizeof units[0]) {
		d /= 1024;
		div *= 1024;
		u++;
	}
	if (v % div == 0)
		snprintf(buf, cap, "%llu %s", (unsigned long long)(v / div),
		         units[u]);
	else
		snprintf(buf, cap, d < 99.95 ? "%.1f %s" : "%.0f %s", d, units[u]);
	return buf;
}

/* An elapsed time, approximately: "0s", "250ms", "12s", "5m3s", "2h10m",
 * "3d4h".  Two units at most. */
static const char *fmt_age(char *buf, size_t cap, uint64_t ms)
{
	uint64_t s = ms / 1000;

	if (ms == 0)
		snprintf(buf, cap, "0s");
	else if (ms < 1000)
		snprintf(buf, cap, "%llums", (unsigned long long)ms);
	else if (s < 60)
		snprintf(buf, cap, "%llus", (unsigned long long)s);
	else if (s < 3600)
		snprintf(buf, cap, "%llum%llus", (unsigned long long)(s / 60),
		         (unsigned long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, cap, "%lluh%llum", (unsigned long long)(s / 3600),
		         (unsigned long long)(s / 60 % 60));
	else
		snprintf(buf, cap, "%llud%lluh", (unsigned long long)(s / 86400),
		         (unsigned long long)(s / 3600 % 24));
	return buf;
}

/* A setting, exactly, as mqd.conf would say it: "1500ms", "30s", "5m",
 * "24h". */
static const char *fmt_duration(char *buf, size_t cap, uint64_t ms)
{
	if (ms != 0 && ms % 3600000 == 0)
		snprintf(buf, cap, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms != 0 && ms % 60000 == 0)
		snprintf(buf, cap, "%llum", (unsigned long long)(ms / 60000));
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(buf, cap, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(buf, cap, "%llums", (unsigned long long)ms);
	return buf;
}

/* Per second, one decimal: "0.0/s", "812.5/s", "1.2k/s", "3.4M/s". */
static const char *fmt_rate(char *buf, size_t cap, double r)
{
	static const char *const units[] = {"", "k", "M", "G"};
	size_t u = 0;

	if (r < 0)
		r = 0;
	while (r >= 999.95 && u + 1 < sizeof units / sizeof units[0]) {
		r /= 1000;
		u++;
	}
	snprintf(buf, cap, "%.1f%s/s", r, units[u]);
	return buf;
}

/* ---- reading replies ----------------------------------------------------- */

/* A non-negative integer member. */
static bool get_u64(const json_t *o, const char *key, uint64_t *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

static bool get_num(const json_t *o, const char *key, double *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_number(v))
		return false;
	*out = json_number_value(v);
	return true;
}

static const char *get_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* ---- tables ---------------------------------------------------------------- */

struct col {
	const char *title;
	bool right; /* numbers */
};

/*
 * Cells are added left to right, row after row; a row of NULL cells prints
 * as an empty line.  Columns are as wide as their widest cell, two spaces
 * apart; the last one is not padded.
 */
struct table {
	const struct col *cols;
	size_t ncols;
	bool header;
	size_t n, cap; /* cells */
	char **cells;
};

static void table_init(struct table *t, const struct col *cols, size_t ncols,
                       bool header)
{
	memset(t, 0, sizeof *t);
	t->cols = cols;
	t->ncols = ncols;
	t->header = header;
}

static void table_take(struct table *t, char *cell)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **c = realloc(t->cells, cap * sizeof *c);

		if (c == NULL)
			oom();
		t->cells = c;
		t->cap = cap;
	}
	t->cells[t->n++] = cell;
}

static void table_putf(struct table *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void table_putf(struct table *t, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	va_end(ap);
	table_take(t, s);
}

/* A string from the server, cleaned (and cut when max_cols > 0); "" and
 * NULL show as "-". */
static void table_put_text(struct table *t, const char *s, size_t max_cols)
{
	table_take(t, s && *s ? clean(s, max_cols) : xstrdup("-"));
}

static void table_put_u64(struct table *t, const json_t *o, const char *key)
{
	uint64_t v;

	if (get_u64(o, key, &v))
		table_putf(t, "%llu", (unsigned long long)v);
	else
		table_take(t, xstrdup("-"));
}

static void table_put_size(struct table *t, const json_t *o, const char *key)
{
	char buf[32];
	uint64_t v;

	table_take(t, xstrdup(get_u64(o, key, &v) ? fmt_size(buf, sizeof buf, v)
	                                           : "-"));
}

static void table_blank(struct table *t)
{
	for (size_t i = 0; i < t->ncols; i++)
		table_take(t, NULL);
}

static void print_row(const struct table *t, const size_t *w,
                      const char *const *cells)
{
	if (cells[0] == NULL) {
		putchar('\n');
		return;
	}
	for (size_t c = 0; c < t->ncols; c++) {
		size_t pad = w[c] - width(cells[c]);
		bool last = c + 1 == t->ncols;

		if (c > 0)
			fputs("  ", stdout);
		if (t->cols[c].right)
			printf("%*s%s", (int)pad, "", cells[c]);
		else
			printf("%s%*s", cells[c], last ? 0 : (int)pad, "");
	}
	putchar('\n');
}

static void table_print(struct table *t)
{
	size_t *w = calloc(t->ncols, sizeof *w);

	if (w == NULL)
		oom();
	for (size_t c = 0; c < t->ncols && t->header; c++)
		w[c] = width(t->cols[c].title);
	for (size_t i = 0; i + t->ncols <= t->n; i += t->ncols)
		for (size_t c = 0; c < t->ncols && t->cells[i]; c++)
			if (width(t->cells[i + c]) > w[c])
				w[c] = width(t->cells[i + c]);
	if (t->header) {
		const char **titles = calloc(t->ncols, sizeof *titles);

		if (titles == NULL)
			oom();
		for (size_t c = 0; c < t->ncols; c++)
			titles[c] = t->cols[c].title;
		print_row(t, w, titles);
		free(titles);
	}
	for (size_t i = 0; i + t->ncols <= t->n; i += t->ncols)
		print_row(t, w, (const char *const *)t->cells + i);
	free(w);
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->cells[i]);
	free(t->cells);
}

/* ---- key/value blocks: a two-column table without a header -------------- */

static const struct col kv_cols[] = {{"", false}, {"", false}};

static void kv_init(struct table *t)
{
	table_init(t, kv_cols, 2, false);
}

static void kv_putf(struct table *t, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void kv_putf(struct table *t, const char *key, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	va_end(ap);
	table_take(t, xstrdup(key));
	table_take(t, s);
}

static void kv_u64(struct table *t, const char *key, const json_t *o,
                   const char *field)
{
	uint64_t v;

	if (get_u64(o, field, &v))
		kv_putf(t, key, "%llu", (unsigned long long)v);
}

static void kv_size(struct table *t, const char *key, const json_t *o,
                    const char *field)
{
	char buf[32];
	uint64_t v;

	if (get_u64(o, field, &v))
		kv_putf(t, key, "%s", fmt_size(buf, sizeof buf, v));
}

static void kv_text(struct table *t, const char *key, const char *s)
{
	table_take(t, xstrdup(key));
	table_put_text(t, s, 0);
}

static void kv_done(struct table *t)
{
	table_print(t);
	table_free(t);
}

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
static void print_reply(const json_t *r, int argc, char **argv)
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

/* ---- the socket ---------------------------------------------------------- */

static int connect_socket(const char *path, int64_t deadline)
{
	struct sockaddr_un sa;
	struct timeval tv;
	int64_t left = deadline - now_ms();
	int fd;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* Bounds a connect to a daemon whose backlog is full, and writes. */
	tv.tv_sec = left > 0 ? left / 1000 : 0;
	tv.tv_usec = left > 0 ? (left % 1000) * 1000 : 1000;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int err = errno == EINPROGRESS ? ETIMEDOUT : errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* 0, or -1 with errno. */
static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * One reply line (without its line end) into *out, malloc'd, length *len.
 * 0; -1 with errno (ETIMEDOUT at the deadline); 1 when the server closed
 * before a whole line (*len says whether part of one came).
 */
static int read_line(int fd, int64_t deadline, char **out, size_t *len)
{
	size_t n = 0, cap = 4096;
	char *buf = malloc(cap), *nl;

	if (buf == NULL)
		oom();
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int64_t left = deadline - now_ms();
		ssize_t r;
		int pr;

		if (left <= 0) {
			free(buf);
			errno = ETIMEDOUT;
			return -1;
		}
		pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			free(buf);
			return -1;
		}
		if (pr == 0)
			continue; /* the deadline check above ends it */
		if (n + 1 >= cap) {
			char *nb;

			if (cap >= REPLY_MAX_BYTES) {
				free(buf);
				errno = EMSGSIZE;
				return -1;
			}
			nb = realloc(buf, cap * 2);
			if (nb == NULL)
				oom();
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != ECONNRESET) {
			free(buf);
			return -1;
		}
		if (r <= 0) {
			free(buf);
			*len = n;
			return 1;
		}
		nl = memchr(buf + n, '\n', (size_t)r);
		n += (size_t)r;
		if (nl != NULL) {
			n = (size_t)(nl - buf);
			if (n > 0 && buf[n - 1] == '\r')
				n--;
			buf[n] = '\0';
			*out = buf;
			*len = n;
			return 0;
		}
	}
}

/* ---- main ------------------------------------------------------------------ */

static void usage_line(FILE *f)
{
	fputs("usage: mqctl [-S SOCKET] [--json] [-h] [-V] COMMAND [ARGS...]\n", f);
}

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("mqctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage_line(stderr);
	return EXIT_USAGE;
}

static void help(void)
{
	usage_line(stdout);
	fputs("\nAdminister a running mqd through its control socket.\n\n"
	      "Options:\n"
	      "  -S, --socket PATH  the control socket (default $" SOCKET_ENV
	      ",\n"
	      "                     else " DEFAULT_SOCKET ")\n"
	      "      --json         print the server's JSON reply as it is\n"
	      "  -h, --help         this help\n"
	      "  -V, --version      print mqctl's version\n\n"
	      "Commands:\n"
	      "  stats                       uptime, connections, messages, "
	      "memory, workers\n"
	      "  queues                      every queue, one row each\n"
	      "  queue NAME                  one queue in full, with its "
	      "settings\n"
	      "  connections                 every client connection\n"
	      "  kill ID                     close a connection (its messages "
	      "are redelivered)\n"
	      "  declare NAME [KEY=VALUE...] create a queue\n"
	      "  delete NAME [--if-empty]    delete a queue (and its messages)\n"
	      "  purge NAME                  remove a queue's ready messages\n"
	      "  reload                      re-read the config file\n"
	      "  shutdown [TIMEOUT]          stop, waiting for held messages "
	      "(default 10s)\n"
	      "  loglevel LEVEL              error, warn, info or debug\n"
	      "  logreopen                   reopen the log file\n"
	      "  config                      the effective configuration\n"
	      "  version                     the server's version\n"
	      "  help                        the server's list of commands\n\n"
	      "Exit status: 0 ok, 1 the server answered an error, 2 usage "
	      "error or\nno reply (socket missing, refused, timed out).  "
	      "See mqctl(1).\n", stdout);
}

static const char *bad_option(char **argv)
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

/* The words joined with spaces, or NULL after a usage error. */
static char *command_line(int argc, char **argv)
{
	size_t len = 0, o = 0;
	char *line;

	for (int i = 0; i < argc; i++) {
		if (argv[i][0] == '\0') {
			usage_error("an empty argument");
			return NULL;
		}
		if (strpbrk(argv[i], "\r\n") != NULL) {
			usage_error("argument %d contains a line break", i + 1);
			return NULL;
		}
		len += strlen(argv[i]) + 1;
	}
	if (len - 1 > LINE_MAX_BYTES) {
		usage_error("the command is over %d bytes", LINE_MAX_BYTES);
		return NULL;
	}
	line = malloc(len + 1);
	if (line == NULL)
		oom();
	for (int i = 0; i < argc; i++)
		o += (size_t)sprintf(line + o, "%s%s", i ? " " : "", argv[i]);
	line[o++] = '\n';
	line[o] = '\0';
	return line;
}

/* Send line to the socket and read the reply; the exit status. */
static int run(const char *path, const char *line, bool raw, int argc,
               char **argv)
{
	int64_t deadline = now_ms() + REPLY_TIMEOUT_MS;
	json_error_t jerr;
	const json_t *ok;
	json_t *r;
	char *reply = NULL;
	size_t len = 0;
	int fd, rc, send_err = 0;

	fd = connect_socket(path, deadline);
	if (fd < 0) {
		int err = errno;

		fprintf(stderr, "mqctl: cannot connect to %s: %s\n", path,
		        strerror(err));
		if (err == ENOENT || err == ECONNREFUSED)
			fprintf(stderr, "mqctl: is mqd running?  Give its "
			        "control_socket with -S or $" SOCKET_ENV "\n");
		else if (err == EACCES)
			fprintf(stderr, "mqctl: the socket is private to the "
			        "user mqd runs as\n");
		return EXIT_USAGE;
	}
	/* A refusal ("too many control clients") is sent and the socket
	 * closed at once: a failed send may still leave a reply to read. */
	if (send_all(fd, line, strlen(line)) < 0)
		send_err = errno;
	rc = read_line(fd, deadline, &reply, &len);
	close(fd);
	if (rc != 0) {
		if (rc < 0 && errno == ETIMEDOUT)
			fprintf(stderr, "mqctl: no reply from %s within %ds\n",
			        path, REPLY_TIMEOUT_MS / 1000);
		else if (rc < 0)
			fprintf(stderr, "mqctl: reading from %s: %s\n", path,
			        strerror(errno));
		else if (send_err != 0)
			fprintf(stderr, "mqctl: sending to %s: %s\n", path,
			        strerror(send_err));
		else
			fprintf(stderr, "mqctl: %s closed the connection %s\n",
			        path, len ? "in the middle of the reply"
			                  : "without replying");
		return EXIT_USAGE;
	}
	r = json_loadb(reply, len, 0, &jerr);
	ok = json_object_get(r, "ok");
	if (!json_is_object(r) || !json_is_boolean(ok)) {
		fprintf(stderr, "mqctl: malformed reply from %s: %s\n", path,
		        r == NULL ? jerr.text : "not an object with \"ok\"");
		json_decref(r);
		free(reply);
		return EXIT_USAGE;
	}
	if (raw)
		printf("%s\n", reply);
	free(reply);
	if (json_is_false(ok)) {
		const char *e = get_str(r, "error");
		char *ce = clean(e ? e : "the server refused (no reason given)", 0);

		fprintf(stderr, "mqctl: %s\n", ce);
		free(ce);
		json_decref(r);
		return EXIT_SERVER;
	}
	if (!raw)
		print_reply(r, argc, argv);
	json_decref(r);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 'S'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *env = getenv(SOCKET_ENV);
	const char *path = env != NULL && env[0] != '\0' ? env : DEFAULT_SOCKET;
	bool raw = false;
	char *line;
	int o, rc;

	opterr = 0;
	/* "+": options end at the command; the words after it are the
	 * server's, even when they look like options ("--if-empty"). */
	while ((o = getopt_long(argc, argv, "+:S:hV", longopts, NULL)) != -1) {
		switch (o) {
		case 'S':
			if (optarg[0] == '\0')
				return usage_error("the socket path is empty");
			path = optarg;
			break;
		case 'j':
			raw = true;
			break;
		case 'h':
			help();
			return 0;
		case 'V':
			printf("mqctl (mqd) %s\n", PACKAGE_VERSION);
			return 0;
		case ':':
			return usage_error("option '%s' needs an argument",
			                   bad_option(argv));
		default:
			return usage_error("unknown option '%s'",
			                   bad_option(argv));
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	line = command_line(argc - optind, argv + optind);
	if (line == NULL)
		return EXIT_USAGE;
	rc = run(path, line, raw, argc - optind, argv + optind);
	free(line);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "mqctl: writing the output: %s\n",
		        strerror(errno));
		return EXIT_USAGE;
	}
	return rc;
}
