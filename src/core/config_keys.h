/*
 * Private to the config module (config.c, config_keys.c): the row type of
 * the table of keys, and what config_keys.c (the table, and the readers of
 * the values) offers config.c (the file: sections, lines, instances, the
 * checks across keys).  The rest of mqd includes core/config.h only.
 *
 * Names with external linkage are mqd_config_*.  The types, MSG_MAX and
 * the two inline helpers keep the short names they had when the module was
 * one file: nothing outside these two files sees them, and the code that
 * moved reads as it did.
 */
#ifndef MQD_CONFIG_KEYS_H
#define MQD_CONFIG_KEYS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"

#define MSG_MAX 512

enum key_type {
	T_SIZE,     /* bytes: 512, 64K, 1M, 2G */
	T_DURATION, /* milliseconds: 0, 250ms, 30s, 5m, 1h */
	T_BOOL,     /* yes/no, true/false, on/off, 1/0 */
	T_UINT,     /* decimal digits */
	T_STRING,   /* anything, up to the field's size */
	T_LISTEN,   /* host:port, [v6]:port, comma-separated */
	T_LOGLEVEL, /* error, warn, info, debug */
	T_OVERFLOW, /* reject, drop_head */
	T_QUEUE,    /* a queue name, or empty for none */
	T_MODE,     /* permission bits in octal: 0600, 660 */
	T_ADDR,     /* one host:port or [v6]:port, or empty for off */
};

struct key;
/* Parse value into the field k describes within base.  Returns 0, or -1
 * with the whole message (no "FILE:LINE: ") in msg. */
typedef int (*key_setter)(const struct key *k, void *base, const char *value,
                          char *msg, size_t msglen);

struct key {
	const char *section; /* sections[].name */
	const char *name;    /* as written in the file; the struct field's name */
	enum key_type type;
	const char *def;     /* default, in the file's syntax */
	size_t offset;       /* of the field within the section's struct */
	size_t size;         /* of the field */
	uint64_t min, max;   /* T_UINT, T_SIZE, T_DURATION: value;
	                        T_STRING: length (max 0 = the field's size - 1) */
	key_setter set;      /* NULL: the type's own */
	bool path;           /* T_STRING naming a file: a relative one is
	                        resolved against the config file's directory */
	bool reload_ok;      /* a reload may change it (else: restart) */
	const char *doc;
};

/* Every key, grouped by section; the [queue NAME] rows come last. */
extern const struct key *const mqd_config_table;
extern const size_t mqd_config_nkeys;

/* How a queue name may be written, for messages. */
extern const char mqd_config_queue_name_rule[];

/* The key of that section and name, or NULL. */
const struct key *mqd_config_find_key(const char *section, const char *name);
/* Parse value into k's field within base (the struct of the key's
 * section): 0, or -1 with the message in msg. */
int mqd_config_set_key(const struct key *k, void *base, const char *value,
                       char *msg, size_t msglen);
/* The bit of a [queue NAME] key in a queue's mask of the keys it gave. */
uint32_t mqd_config_queue_key_bit(const struct key *k);

/* The field k describes within base. */
static inline void *field_of(const struct key *k, void *base)
{
	return (char *)base + k->offset;
}

/* A message into msg; returns -1, for "return fail(...)". */
static inline int fail(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline int fail(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	return -1;
}

#endif
