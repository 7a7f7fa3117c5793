/*
 * mqctl's output for a person: server strings made safe for a terminal,
 * sizes, ages, durations and rates in human units, typed reads of a JSON
 * reply, and aligned tables (key/value blocks are tables of two columns
 * without a header).  Nothing here knows a command; mqctl_print.c does.
 */
#ifndef MQCTL_FMT_H
#define MQCTL_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* mqctl's exit statuses (mqctl.c says when each is used). */
#define EXIT_SERVER 1
#define EXIT_USAGE 2

/* "mqctl: out of memory" and exit with EXIT_USAGE. */
void oom(void) __attribute__((noreturn));
/* strdup or oom(). */
char *xstrdup(const char *s);
/*
 * A copy of a server-supplied string safe to put on a terminal: C0 and C1
 * control characters (a client name may carry escape sequences) become
 * '?'.  max_cols > 0 cuts it to that many columns, ending in "...".
 */
char *clean(const char *s, size_t max_cols);

/* Human units into buf, which they return. */
const char *fmt_size(char *buf, size_t cap, uint64_t v);      /* "1.5 KiB" */
const char *fmt_age(char *buf, size_t cap, uint64_t ms);      /* "5m3s" */
const char *fmt_duration(char *buf, size_t cap, uint64_t ms); /* "30s" */
const char *fmt_rate(char *buf, size_t cap, double r);        /* "1.2k/s" */

/* Members of a reply object: false or NULL when absent or mistyped. */
bool get_u64(const json_t *o, const char *key, uint64_t *out); /* >= 0 */
bool get_num(const json_t *o, const char *key, double *out);
const char *get_str(const json_t *o, const char *key);

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

void table_init(struct table *t, const struct col *cols, size_t ncols,
                bool header);
/* The next cell, malloc'd; the table frees it. */
void table_take(struct table *t, char *cell);
/* A string from the server, cleaned (and cut when max_cols > 0); "" and
 * NULL show as "-". */
void table_put_text(struct table *t, const char *s, size_t max_cols);
/* A member of o as a number, or as a size in human units; "-" if absent. */
void table_put_u64(struct table *t, const json_t *o, const char *key);
void table_put_size(struct table *t, const json_t *o, const char *key);
/* A row of NULL cells: an empty line. */
void table_blank(struct table *t);
void table_print(struct table *t);
void table_free(struct table *t);

/* Key/value blocks: a row per key, printed and freed by kv_done. */
void kv_init(struct table *t);
void kv_putf(struct table *t, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The member field of o, under key, when o has it. */
void kv_u64(struct table *t, const char *key, const json_t *o,
            const char *field);
void kv_size(struct table *t, const char *key, const json_t *o,
             const char *field);
/* A server string, cleaned; "-" for "" and NULL. */
void kv_text(struct table *t, const char *key, const char *s);
void kv_done(struct table *t);

#endif
