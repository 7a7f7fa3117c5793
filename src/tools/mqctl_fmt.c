#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * mqctl's output for a person (mqctl_fmt.h): safe text, human units,
 * typed reads of a reply, tables and key/value blocks.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tools/mqctl_fmt.h"

/* ---- small helpers ------------------------------------------------------ */

void oom(void)
{
	fputs("mqctl: out of memory\n", stderr);
	exit(EXIT_USAGE);
}

char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		oom();
	return d;
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
char *clean(const char *s, size_t max_cols)
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
const char *fmt_size(char *buf, size_t cap, uint64_t v)
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
const char *fmt_age(char *buf, size_t cap, uint64_t ms)
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
const char *fmt_duration(char *buf, size_t cap, uint64_t ms)
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
const char *fmt_rate(char *buf, size_t cap, double r)
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
bool get_u64(const json_t *o, const char *key, uint64_t *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

bool get_num(const json_t *o, const char *key, double *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_number(v))
		return false;
	*out = json_number_value(v);
	return true;
}

const char *get_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* ---- tables ---------------------------------------------------------------- */

void table_init(struct table *t, const struct col *cols, size_t ncols,
                bool header)
{
	memset(t, 0, sizeof *t);
	t->cols = cols;
	t->ncols = ncols;
	t->header = header;
}

void table_take(struct table *t, char *cell)
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
void table_put_text(struct table *t, const char *s, size_t max_cols)
{
	table_take(t, s && *s ? clean(s, max_cols) : xstrdup("-"));
}

void table_put_u64(struct table *t, const json_t *o, const char *key)
{
	uint64_t v;

	if (get_u64(o, key, &v))
		table_putf(t, "%llu", (unsigned long long)v);
	else
		table_take(t, xstrdup("-"));
}

void table_put_size(struct table *t, const json_t *o, const char *key)
{
	char buf[32];
	uint64_t v;

	table_take(t, xstrdup(get_u64(o, key, &v) ? fmt_size(buf, sizeof buf, v)
	                                           : "-"));
}

void table_blank(struct table *t)
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

void table_print(struct table *t)
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

void table_free(struct table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->cells[i]);
	free(t->cells);
}

/* ---- key/value blocks: a two-column table without a header -------------- */

static const struct col kv_cols[] = {{"", false}, {"", false}};

void kv_init(struct table *t)
{
	table_init(t, kv_cols, 2, false);
}

void kv_putf(struct table *t, const char *key, const char *fmt, ...)
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

void kv_u64(struct table *t, const char *key, const json_t *o,
            const char *field)
{
	uint64_t v;

	if (get_u64(o, field, &v))
		kv_putf(t, key, "%llu", (unsigned long long)v);
}

void kv_size(struct table *t, const char *key, const json_t *o,
             const char *field)
{
	char buf[32];
	uint64_t v;

	if (get_u64(o, field, &v))
		kv_putf(t, key, "%s", fmt_size(buf, sizeof buf, v));
}

void kv_text(struct table *t, const char *key, const char *s)
{
	table_take(t, xstrdup(key));
	table_put_text(t, s, 0);
}

void kv_done(struct table *t)
{
	table_print(t);
	table_free(t);
}
