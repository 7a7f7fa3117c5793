/*
 * mqd.conf: one table of keys, read through libinih.
 *
 * Every key is one row of keys[] below: section, name, type, default (as
 * text, parsed by the same code as the file), where the value goes, whether
 * a reload may change it, and a line of documentation.  Defaults go through
 * the setters too, so a default can never be something the file could not
 * say.  Sections are rows of sections[]; a section that takes a name
 * ([queue NAME]) gets a begin hook that makes room for the instance.
 *
 * The queue keys appear twice, under [defaults] and under [queue NAME],
 * from one macro.  A [queue NAME] key the section does not give takes the
 * [defaults] value; since [defaults] may come after the queues, that is
 * resolved once the whole file is read, and so is the dead-letter loop
 * check, which needs every queue.  Relative paths (log_file, pidfile,
 * control_socket) are made absolute as they are read, against the config
 * file's directory, so that "-d" (which changes to /) still finds them.
 *
 * libinih splits lines; we feed it through our own reader so that we always
 * know the line number (Debian builds it without INI_HANDLER_LINENO), can
 * reject a section header even when no key follows it, and can stop at the
 * first error by reporting end of input.  The reader also refuses what inih
 * would quietly accept or mangle: text after "]", "key: value", indented
 * continuation lines, over-long lines (inih would split them in two).
 *
 * A load parses into a fresh struct and copies it out only when the whole
 * file was good, so a caller's config is never left half-updated.
 */
#ifdef HAVE_CONFIG_H
/* autoconf's config.h.  The angle brackets matter: "config.h" would find
 * core/config.h next to this file before the build directory's. */
#include <config.h>
#endif

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "core/config.h"
#include "core/duration.h"
#include "proto/proto.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A config file is a few kilobytes; refusing more catches "-c /dev/zero". */
#define CONFIG_MAX_BYTES (1024 * 1024)
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

/* overflow's values, as DECLARE carries them. */
#define OVERFLOW_REJECT 1
#define OVERFLOW_DROP_HEAD 2

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

struct parse;

struct section {
	const char *name; /* [server] */
	bool takes_arg;   /* [queue NAME] */
	/* Where the keys' offsets point: the struct of the current instance. */
	void *(*base)(struct mqd_config *cfg);
	/* Called at the header (p->line); for sections that take a name it
	 * makes room for the new instance.  0, or -1 with msg. */
	int (*begin)(struct parse *p, const char *arg, char *msg, size_t msglen);
};

static int set_listen(const struct key *k, void *base, const char *value,
                      char *msg, size_t msglen);
static int set_metrics_listen(const struct key *k, void *base,
                              const char *value, char *msg, size_t msglen);

#define SRV(m)                                                                \
	.offset = offsetof(struct mqd_config, m),                             \
	.size = sizeof(((struct mqd_config *)0)->m)
#define QDEF(m)                                                               \
	.offset = offsetof(struct mqd_queue_defaults, m),                     \
	.size = sizeof(((struct mqd_queue_defaults *)0)->m)
/* A queue key within [defaults] (struct mqd_queue_defaults) ... */
#define QDQ(m) QDEF(queue.m)
/* ... and within [queue NAME] (struct mqd_queue_conf). */
#define QUE(m)                                                                \
	.offset = offsetof(struct mqd_queue_conf, m),                         \
	.size = sizeof(((struct mqd_queue_conf *)0)->m)

/*
 * The settings of a queue, for [defaults] (F = QDQ) and [queue NAME]
 * (F = QUE).  Both may be reloaded: a reload applies a [queue NAME]'s
 * settings to the running queue (creating it if new), and [defaults] to
 * queues created afterwards.  The durations go to DECLARE as u32
 * milliseconds, hence their maximum.
 */
#define QUEUE_KEYS(SEC, F, RELOAD)                                            \
	{ .section = SEC, .name = "max_length", .type = T_UINT,               \
	  .def = "0", F(max_length), .max = UINT32_MAX, .reload_ok = RELOAD,  \
	  .doc = "ready and delayed messages the queue holds; 0 = no limit" }, \
	{ .section = SEC, .name = "max_bytes", .type = T_SIZE,                \
	  .def = "0", F(max_bytes), .max = UINT64_MAX, .reload_ok = RELOAD,   \
	  .doc = "bytes of message bodies the queue holds; 0 = no limit" },   \
	{ .section = SEC, .name = "overflow", .type = T_OVERFLOW,             \
	  .def = "reject", F(overflow), .reload_ok = RELOAD,                  \
	  .doc = "when full: reject (QUEUE_FULL) or drop_head (drop the "     \
	         "oldest)" },                                                 \
	{ .section = SEC, .name = "message_ttl", .type = T_DURATION,          \
	  .def = "0", F(message_ttl_ms), .max = UINT32_MAX,                   \
	  .reload_ok = RELOAD,                                                \
	  .doc = "how long a message may wait before it expires; 0 = "        \
	         "never" },                                                   \
	{ .section = SEC, .name = "ack_timeout", .type = T_DURATION,          \
	  .def = "30s", F(ack_timeout_ms), .max = UINT32_MAX,                 \
	  .reload_ok = RELOAD,                                                \
	  .doc = "how long a consumer may hold a message unacknowledged "     \
	         "before it is redelivered; 0 = forever" },                   \
	{ .section = SEC, .name = "max_attempts", .type = T_UINT,             \
	  .def = "0", F(max_attempts), .max = UINT16_MAX,                     \
	  .reload_ok = RELOAD,                                                \
	  .doc = "deliveries after which a message is dead-lettered; 0 = no " \
	         "limit" },                                                   \
	{ .section = SEC, .name = "dead_letter", .type = T_QUEUE,             \
	  .def = "", F(dead_letter), .reload_ok = RELOAD,                     \
	  .doc = "queue that gets rejected, expired and exhausted messages; " \
	         "empty = drop them" }

static const struct key keys[] = {
	/* [server] */
	{ .section = "server", .name = "listen", .type = T_LISTEN,
	  .def = "127.0.0.1:7400", SRV(listen), .max = MQD_LISTEN_MAX,
	  .set = set_listen,
	  .doc = "addresses for client connections: host:port or [v6]:port, "
	         "comma-separated" },
	{ .section = "server", .name = "control_socket", .type = T_STRING,
	  .def = "/run/mqd/mqd.sock", SRV(control_socket), .min = 1,
	  .path = true,
	  .doc = "path of the Unix socket for mqctl" },
	{ .section = "server", .name = "control_socket_mode", .type = T_MODE,
	  .def = "0600", SRV(control_socket_mode), .max = 0777,
	  .doc = "permissions of the control socket, in octal; 0660 lets the "
	         "file's group administer too" },
	{ .section = "server", .name = "metrics_listen", .type = T_ADDR,
	  .def = "", SRV(metrics_listen), .set = set_metrics_listen,
	  .doc = "host:port serving GET /metrics (Prometheus) and a status "
	         "page; empty = off" },
	{ .section = "server", .name = "workers", .type = T_UINT,
	  .def = "0", SRV(workers), .max = 256,
	  .doc = "worker threads; 0 = one per CPU" },
	{ .section = "server", .name = "max_connections", .type = T_UINT,
	  .def = "10000", SRV(max_connections), .min = 1, .max = UINT32_MAX,
	  .reload_ok = true,
	  .doc = "client connections open at once; more are refused with LIMIT" },
	{ .section = "server", .name = "max_frame", .type = T_SIZE,
	  .def = "1M", SRV(max_frame), .min = 64, .max = 256 * 1024 * 1024,
	  .doc = "largest frame a client may send" },
	{ .section = "server", .name = "auto_create", .type = T_BOOL,
	  .def = "yes", SRV(auto_create), .reload_ok = true,
	  .doc = "create a queue on the first SEND, GET or CONSUME naming it" },
	{ .section = "server", .name = "idle_timeout", .type = T_DURATION,
	  .def = "0", SRV(idle_timeout_ms), .max = UINT64_MAX,
	  .reload_ok = true,
	  .doc = "close a connection silent this long; 0 = never" },
	{ .section = "server", .name = "log_level", .type = T_LOGLEVEL,
	  .def = "info", SRV(log_level), .reload_ok = true,
	  .doc = "least severe level logged: error, warn, info or debug" },
	{ .section = "server", .name = "log_file", .type = T_STRING,
	  .def = "", SRV(log_file), .path = true,
	  .doc = "\"\" = standard error, \"syslog\" = syslog, else a file" },
	{ .section = "server", .name = "pidfile", .type = T_STRING,
	  .def = "", SRV(pidfile), .path = true,
	  .doc = "file to write the process id to with -d; \"\" = none" },
	{ .section = "server", .name = "max_memory", .type = T_SIZE,
	  .def = "0", SRV(max_memory), .max = UINT64_MAX, .reload_ok = true,
	  .doc = "bytes of messages held across all queues; over it SEND gets "
	         "MEMORY_LIMIT; 0 = no limit" },
	{ .section = "server", .name = "slow_consumer_bytes", .type = T_SIZE,
	  .def = "64M", SRV(slow_consumer_bytes), .min = 1, .max = UINT64_MAX,
	  .reload_ok = true,
	  .doc = "unsent output above which a live subscriber loses published "
	         "messages (counted) instead of slowing the publisher" },
	/* [defaults] */
	{ .section = "defaults", .name = "prefetch", .type = T_UINT,
	  .def = "1000", QDEF(prefetch), .min = 1, .max = 65535,
	  .reload_ok = true,
	  .doc = "messages a consumer may hold unacknowledged when its "
	         "CONSUME says 0" },
	QUEUE_KEYS("defaults", QDQ, true),
	/* [queue NAME]: these must stay the last rows (see queue_key_bit). */
	QUEUE_KEYS("queue", QUE, true),
};

#define NKEYS ARRAY_LEN(keys)

static void *server_base(struct mqd_config *cfg)
{
	return cfg;
}

static void *defaults_base(struct mqd_config *cfg)
{
	return &cfg->defaults;
}

/* The instance being read is the last one begun. */
static void *queue_base(struct mqd_config *cfg)
{
	return &cfg->queues[cfg->nqueues - 1];
}

static int defaults_begin(struct parse *p, const char *arg, char *msg,
                          size_t msglen);
static int queue_begin(struct parse *p, const char *arg, char *msg,
                       size_t msglen);

/* Add [tls], [users] here, with their keys above. */
static const struct section sections[] = {
	{ .name = "server", .base = server_base },
	{ .name = "defaults", .base = defaults_base, .begin = defaults_begin },
	{ .name = "queue", .takes_arg = true, .base = queue_base,
	  .begin = queue_begin },
};

#define NSECTIONS ARRAY_LEN(sections)

/* The queue keys, one bit each in a queue's "given" mask. */
#define NQUEUE_KEYS 7
_Static_assert(NQUEUE_KEYS <= 32, "the given masks are uint32_t");

static const char queue_name_rule[] =
	"1 to 255 characters of A-Z a-z 0-9 . _ - :";

/* ------------------------------------------------------------ value syntax */

static int fail(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Decimal digits only: no sign, no spaces, no overflow. */
static int parse_uint(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; *s != '\0'; s++) {
		unsigned d;

		if (!isdigit((unsigned char)*s))
			return -1;
		d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static bool all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* A size as the file would say it: the largest exact unit. */
static void size_text(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "GMK";
	int i;

	for (i = 0; i < 3; i++) {
		uint64_t m = 1ULL << (10 * (3 - i));

		if (v != 0 && v % m == 0) {
			snprintf(buf, len, "%llu%c", (unsigned long long)(v / m),
			         units[i]);
			return;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

int mqd_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static const char *const level_names[] = {
	[MQD_LOG_ERROR] = "error",
	[MQD_LOG_WARN] = "warn",
	[MQD_LOG_INFO] = "info",
	[MQD_LOG_DEBUG] = "debug",
};

int mqd_parse_log_level(const char *s, enum mqd_log_level *out)
{
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < ARRAY_LEN(level_names); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum mqd_log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *mqd_log_level_name(enum mqd_log_level l)
{
	if ((unsigned)l >= ARRAY_LEN(level_names))
		return "?";
	return level_names[l];
}

/* ------------------------------------------------------------ listen */

static bool host_char(char c, bool v6)
{
	if (isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_')
		return true;
	return v6 && (c == ':' || c == '%');
}

/* One "host:port" or "[v6]:port" (len bytes at s, already trimmed). */
static int parse_one_addr(const char *s, size_t len, struct mqd_listen_addr *a,
                          char *why, size_t whylen)
{
	const char *host, *port, *end = s + len;
	size_t hlen, i;
	bool v6 = false;
	uint64_t p;
	char num[8];

	if (*s == '[') {
		const char *rb = memchr(s, ']', len);

		if (rb == NULL)
			return fail(why, whylen, "unclosed '['");
		host = s + 1;
		hlen = (size_t)(rb - host);
		if (rb + 1 == end || rb[1] != ':')
			return fail(why, whylen, "missing port: write [%.*s]:7400",
			            (int)hlen, host);
		port = rb + 2;
		v6 = true;
	} else {
		const char *colon = NULL, *q;

		for (q = s; q < end; q++)
			if (*q == ':')
				colon = q;
		if (colon == NULL)
			return fail(why, whylen, "missing port: write %.*s:7400",
			            (int)len, s);
		host = s;
		hlen = (size_t)(colon - s);
		port = colon + 1;
		if (memchr(host, ':', hlen) != NULL)
			return fail(why, whylen, "an IPv6 address needs brackets, "
			            "e.g. [::1]:7400");
	}
	if (hlen == 0)
		return fail(why, whylen, "missing host (0.0.0.0 or [::] mean "
		            "every address)");
	if (hlen >= sizeof(a->host))
		return fail(why, whylen, "host longer than %zu bytes",
		            sizeof(a->host) - 1);
	for (i = 0; i < hlen; i++)
		if (!host_char(host[i], v6))
			return fail(why, whylen, "bad character '%c' in host",
			            host[i]);
	if (v6 && memchr(host, ':', hlen) == NULL)
		return fail(why, whylen, "brackets are for IPv6 addresses");
	if (port == end)
		return fail(why, whylen, "missing port");
	if ((size_t)(end - port) >= sizeof(num))
		return fail(why, whylen, "port must be 0 to 65535");
	memcpy(num, port, (size_t)(end - port));
	num[end - port] = '\0';
	if (parse_uint(num, &p) < 0 || p > 65535)
		return fail(why, whylen, "port must be 0 to 65535");
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	a->port = (uint16_t)p;
	return 0;
}

/* why gets the whole message, naming the item at fault. */
static int parse_listen(const char *s, struct mqd_listen_addr *out, size_t max,
                        size_t *n, char *why, size_t whylen)
{
	struct mqd_listen_addr tmp[MQD_LISTEN_MAX];
	size_t count = 0, i;
	const char *p = s;

	if (max > MQD_LISTEN_MAX)
		max = MQD_LISTEN_MAX;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *e = comma != NULL ? comma : p + strlen(p);
		char reason[160];

		while (p < e && isspace((unsigned char)*p))
			p++;
		while (e > p && isspace((unsigned char)e[-1]))
			e--;
		if (p == e)
			return fail(why, whylen, "bad listen list '%s' (empty item; "
			            "write host:port, comma-separated)", s);
		if (count == max)
			return fail(why, whylen, "bad listen list '%s' (more than "
			            "%zu addresses)", s, max);
		memset(&tmp[count], 0, sizeof(tmp[count]));
		if (parse_one_addr(p, (size_t)(e - p), &tmp[count], reason,
		                   sizeof(reason)) < 0)
			return fail(why, whylen, "bad listen address '%.*s' (%s)",
			            (int)(e - p), p, reason);
		for (i = 0; i < count && tmp[count].port != 0; i++)
			if (tmp[i].port == tmp[count].port &&
			    strcmp(tmp[i].host, tmp[count].host) == 0)
				return fail(why, whylen, "bad listen address "
				            "'%.*s' (given twice)", (int)(e - p), p);
		count++;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	memcpy(out, tmp, count * sizeof(tmp[0]));
	*n = count;
	return 0;
}

int mqd_parse_listen(const char *s, struct mqd_listen_addr *out, size_t max,
                     size_t *n)
{
	char why[MSG_MAX];

	if (s == NULL)
		return -1;
	return parse_listen(s, out, max, n, why, sizeof(why));
}

/* ------------------------------------------------------------ setters */

static void *field_of(const struct key *k, void *base)
{
	return (char *)base + k->offset;
}

static void store_uint(const struct key *k, void *base, uint64_t v)
{
	void *f = field_of(k, base);

	switch (k->size) {
	case sizeof(uint8_t): {
		uint8_t x = (uint8_t)v;
		memcpy(f, &x, sizeof(x));
		break;
	}
	case sizeof(uint16_t): {
		uint16_t x = (uint16_t)v;
		memcpy(f, &x, sizeof(x));
		break;
	}
	case sizeof(uint32_t): {
		uint32_t x = (uint32_t)v;
		memcpy(f, &x, sizeof(x));
		break;
	}
	default:
		assert(k->size == sizeof(uint64_t));
		memcpy(f, &v, sizeof(v));
		break;
	}
}

static int set_uint(const struct key *k, void *base, const char *value,
                    char *msg, size_t msglen)
{
	uint64_t v;

	if (parse_uint(value, &v) < 0 || v < k->min || v > k->max)
		return fail(msg, msglen, "bad number '%s' for %s (write a whole "
		            "number from %llu to %llu)", value, k->name,
		            (unsigned long long)k->min,
		            (unsigned long long)k->max);
	store_uint(k, base, v);
	return 0;
}

static int set_size(const struct key *k, void *base, const char *value,
                    char *msg, size_t msglen)
{
	uint64_t v;
	char lo[24], hi[24];

	if (mqd_parse_size(value, &v) < 0 || v < k->min || v > k->max) {
		size_text(k->min, lo, sizeof(lo));
		size_text(k->max, hi, sizeof(hi));
		return fail(msg, msglen, "bad size '%s' for %s (write %s to %s "
		            "bytes, with an optional K, M or G suffix)", value,
		            k->name, lo, hi);
	}
	store_uint(k, base, v);
	return 0;
}

static int set_duration(const struct key *k, void *base, const char *value,
                        char *msg, size_t msglen)
{
	uint64_t v;

	if (mqd_parse_duration(value, &v) < 0) {
		if (all_digits(value))
			return fail(msg, msglen, "bad duration '%s' for %s "
			            "(write %ss, %s000ms; only 0 may go without "
			            "a unit)", value, k->name, value, value);
		return fail(msg, msglen, "bad duration '%s' for %s (write a "
		            "number and ms, s, m or h, e.g. 30s; only 0 may go "
		            "without a unit)", value, k->name);
	}
	if (v < k->min || v > k->max)
		return fail(msg, msglen, "bad duration '%s' for %s (write %llums "
		            "to %llums%s)", value, k->name,
		            (unsigned long long)k->min,
		            (unsigned long long)k->max,
		            k->max == UINT32_MAX ? ", about 49 days" : "");
	store_uint(k, base, v);
	return 0;
}

static int set_bool(const struct key *k, void *base, const char *value,
                    char *msg, size_t msglen)
{
	bool b;

	if (mqd_parse_bool(value, &b) < 0)
		return fail(msg, msglen, "bad bool '%s' for %s (write yes or no; "
		            "true/false, on/off and 1/0 also work)", value,
		            k->name);
	memcpy(field_of(k, base), &b, sizeof(b));
	return 0;
}

static int set_string(const struct key *k, void *base, const char *value,
                      char *msg, size_t msglen)
{
	size_t len = strlen(value);
	size_t max = k->max != 0 ? (size_t)k->max : k->size - 1;
	char *f = field_of(k, base);

	if (len < k->min)
		return fail(msg, msglen, "%s may not be empty", k->name);
	if (len > max)
		return fail(msg, msglen, "%s is too long (%zu bytes; at most %zu)",
		            k->name, len, max);
	/* Zero the whole field: a config compares equal to one loaded anew. */
	memset(f, 0, k->size);
	memcpy(f, value, len);
	return 0;
}

static int set_loglevel(const struct key *k, void *base, const char *value,
                        char *msg, size_t msglen)
{
	enum mqd_log_level l;

	if (mqd_parse_log_level(value, &l) < 0)
		return fail(msg, msglen, "bad log level '%s' for %s (write error, "
		            "warn, info or debug)", value, k->name);
	memcpy(field_of(k, base), &l, sizeof(l));
	return 0;
}

static int set_listen(const struct key *k, void *base, const char *value,
                      char *msg, size_t msglen)
{
	struct mqd_config *cfg = base;
	size_t n;

	/* The messages say "listen": it is the only key of this type. */
	if (parse_listen(value, cfg->listen, (size_t)k->max, &n, msg,
	                 msglen) < 0)
		return -1;
	/* Clear the slots past the end for the same reason as set_string. */
	memset(&cfg->listen[n], 0, (MQD_LISTEN_MAX - n) * sizeof(cfg->listen[0]));
	cfg->nlisten = n;
	return 0;
}

/* metrics_listen: one address, or "" for off (metrics_on follows). */
static int set_metrics_listen(const struct key *k, void *base,
                              const char *value, char *msg, size_t msglen)
{
	struct mqd_config *cfg = base;
	struct mqd_listen_addr a;
	char why[160];

	if (value[0] == '\0') {
		cfg->metrics_on = false;
		memset(&cfg->metrics_listen, 0, sizeof(cfg->metrics_listen));
		return 0;
	}
	if (strchr(value, ',') != NULL)
		return fail(msg, msglen, "bad address '%s' for %s (one "
		            "host:port only, not a list)", value, k->name);
	/* Zeroed for the same reason as set_string. */
	memset(&a, 0, sizeof(a));
	if (parse_one_addr(value, strlen(value), &a, why, sizeof(why)) < 0)
		return fail(msg, msglen, "bad address '%s' for %s (%s)", value,
		            k->name, why);
	cfg->metrics_listen = a;
	cfg->metrics_on = true;
	return 0;
}

/*
 * File permission bits in octal, as chmod takes them (0660, 660).  The
 * owner must keep read and write: connecting to a Unix socket needs write
 * permission, and a control socket its own user cannot use is a mistake.
 */
static int set_mode(const struct key *k, void *base, const char *value,
                    char *msg, size_t msglen)
{
	const char *s = value;
	uint64_t v = 0;

	if (*s == '\0')
		goto bad;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '7')
			goto bad;
		v = v * 8 + (uint64_t)(*s - '0');
		if (v > k->max)
			goto bad;
	}
	if ((v & 0600) != 0600)
		return fail(msg, msglen, "bad mode '%s' for %s (the owner needs "
		            "read and write: 06xx)", value, k->name);
	store_uint(k, base, v);
	return 0;
bad:
	return fail(msg, msglen, "bad mode '%s' for %s (write permission bits "
	            "in octal, 0600 to 0777, e.g. 0600 or 0660)", value,
	            k->name);
}

static int set_overflow(const struct key *k, void *base, const char *value,
                        char *msg, size_t msglen)
{
	uint8_t v;

	if (strcasecmp(value, "reject") == 0)
		v = OVERFLOW_REJECT;
	else if (strcasecmp(value, "drop_head") == 0)
		v = OVERFLOW_DROP_HEAD;
	else
		return fail(msg, msglen, "bad value '%s' for %s (write reject "
		            "or drop_head)", value, k->name);
	memcpy(field_of(k, base), &v, sizeof(v));
	return 0;
}

/* A queue name or "" (none).  Under [queue NAME], base is that queue, whose
 * name begin_section has already set, so naming itself is caught here, at
 * the key's line; longer loops wait for the whole file (check_loops). */
static int set_queue_name(const struct key *k, void *base, const char *value,
                          char *msg, size_t msglen)
{
	size_t len = strlen(value);

	if (len > 0 && !mqd_name_valid((const uint8_t *)value, len))
		return fail(msg, msglen, "bad queue name '%s' for %s (write %s, "
		            "or nothing for none)", value, k->name,
		            queue_name_rule);
	if (len >= k->size)
		return fail(msg, msglen, "%s is too long", k->name); /* table bug */
	if (len > 0 && strcmp(k->section, "queue") == 0 &&
	    strcmp(((const struct mqd_queue_conf *)base)->name, value) == 0)
		return fail(msg, msglen, "%s may not name the queue itself "
		            "('%s')", k->name, value);
	memset(field_of(k, base), 0, k->size);
	memcpy(field_of(k, base), value, len);
	return 0;
}

static const key_setter type_setters[] = {
	[T_SIZE] = set_size,
	[T_DURATION] = set_duration,
	[T_BOOL] = set_bool,
	[T_UINT] = set_uint,
	[T_STRING] = set_string,
	[T_LISTEN] = set_listen,
	[T_LOGLEVEL] = set_loglevel,
	[T_OVERFLOW] = set_overflow,
	[T_QUEUE] = set_queue_name,
	[T_MODE] = set_mode,
	[T_ADDR] = NULL, /* each key of this type has its own setter */
};

static int set_key(const struct key *k, void *base, const char *value,
                   char *msg, size_t msglen)
{
	key_setter set = k->set != NULL ? k->set : type_setters[k->type];

	return set(k, base, value, msg, msglen);
}

/* ------------------------------------------------------------ defaults */

static void apply_defaults(struct mqd_config *cfg, const struct section *sec)
{
	void *base = sec->base(cfg);
	char msg[MSG_MAX];
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, sec->name) != 0)
			continue;
		if (set_key(&keys[i], base, keys[i].def, msg, sizeof(msg)) < 0) {
			/* A bug in the table, caught by the first test run. */
			fprintf(stderr, "mqd: bad default for %s.%s: %s\n",
			        keys[i].section, keys[i].name, msg);
			abort();
		}
	}
}

void mqd_config_defaults(struct mqd_config *cfg)
{
	size_t i;

	memset(cfg, 0, sizeof(*cfg));
	/* Sections with a name get their defaults when an instance begins. */
	for (i = 0; i < NSECTIONS; i++)
		if (!sections[i].takes_arg)
			apply_defaults(cfg, &sections[i]);
}

void mqd_config_free(struct mqd_config *cfg)
{
	free(cfg->queues);
	cfg->queues = NULL;
	cfg->nqueues = 0;
}

/* ------------------------------------------------------------ the file */

struct parse {
	const char *name;          /* FILE in messages */
	bool is_file;              /* name is the file's path (else a label) */
	const char *text;
	size_t len, pos;           /* text[pos..len) is still to read */
	int line;                  /* of the line last handed to inih */
	struct mqd_config *cfg;
	const struct section *sec; /* NULL before the first header */
	char sec_label[272];       /* the header as written, for messages */
	int sec_line[NSECTIONS];   /* first header of each; 0 = none yet */
	int key_line[NKEYS];       /* where set in this section; 0 = not */
	char *err;
	size_t errlen;
	bool failed;
	/* [queue NAME]: room in cfg->queues, which keys each queue gave
	 * (queue_key_bit; the rest come from [defaults] at the end), and an
	 * index of their names (open addressing: queue index + 1, 0 = free). */
	size_t cap;
	uint32_t *given;
	size_t *slots;
	size_t nslots;             /* 0 or a power of two */
	/* Where relative paths go, once a relative path needs it. */
	char dir[4096];
	bool have_dir;
};

static void parse_fail(struct parse *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void parse_fail(struct parse *p, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	p->failed = true;
	if (p->err == NULL || p->errlen == 0)
		return;
	n = snprintf(p->err, p->errlen, "%s:%d: ", p->name, line);
	if (n < 0 || (size_t)n >= p->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static const struct key *find_key(const char *section, const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static bool is_comment_char(char c)
{
	return c == '#' || c == ';';
}

/* "[kind]" or "[kind name]", with nothing after "]" but a comment. */
static int begin_section(struct parse *p, const char *line)
{
	const char *inner = line + 1, *close = strchr(line, ']'), *e, *t;
	char hdr[sizeof(p->sec_label)], msg[MSG_MAX], *arg;
	size_t i, k;

	if (close == NULL) {
		parse_fail(p, p->line, "section header without ']'");
		return -1;
	}
	for (t = close + 1; isspace((unsigned char)*t); t++)
		;
	if (*t != '\0' && !is_comment_char(*t)) {
		parse_fail(p, p->line, "text after section header: '%s'", t);
		return -1;
	}
	while (inner < close && isspace((unsigned char)*inner))
		inner++;
	for (e = close; e > inner && isspace((unsigned char)e[-1]); e--)
		;
	if ((size_t)(e - inner) >= sizeof(hdr)) {
		parse_fail(p, p->line, "section header too long");
		return -1;
	}
	memcpy(hdr, inner, (size_t)(e - inner));
	hdr[e - inner] = '\0';
	for (arg = hdr; *arg != '\0' && !isspace((unsigned char)*arg); arg++)
		;
	k = (size_t)(arg - hdr);
	while (isspace((unsigned char)*arg))
		arg++;

	for (i = 0; i < NSECTIONS; i++)
		if (strlen(sections[i].name) == k &&
		    strncmp(sections[i].name, hdr, k) == 0)
			break;
	if (i == NSECTIONS || (*arg != '\0' && !sections[i].takes_arg)) {
		parse_fail(p, p->line, "unknown section [%s]", hdr);
		return -1;
	}
	if (sections[i].takes_arg && *arg == '\0') {
		parse_fail(p, p->line, "section [%s] needs a name", hdr);
		return -1;
	}
	if (!sections[i].takes_arg && p->sec_line[i] != 0) {
		parse_fail(p, p->line, "repeated section [%s] (first at line %d)",
		           hdr, p->sec_line[i]);
		return -1;
	}
	if (sections[i].begin != NULL &&
	    sections[i].begin(p, arg, msg, sizeof(msg)) < 0) {
		parse_fail(p, p->line, "%s", msg);
		return -1;
	}
	if (sections[i].takes_arg)
		apply_defaults(p->cfg, &sections[i]);
	if (p->sec_line[i] == 0)
		p->sec_line[i] = p->line;
	p->sec = &sections[i];
	memcpy(p->sec_label, hdr, sizeof(hdr));
	/* Each instance of a named section may set each of its keys once. */
	for (k = 0; k < NKEYS; k++)
		if (strcmp(keys[k].section, sections[i].name) == 0)
			p->key_line[k] = 0;
	return 0;
}

/* ------------------------------------------------------------ [queue NAME] */

/* The [queue NAME] keys are the last NQUEUE_KEYS rows of keys[]. */
static uint32_t queue_key_bit(const struct key *k)
{
	size_t i = (size_t)(k - keys);

	assert(i >= NKEYS - NQUEUE_KEYS && i < NKEYS &&
	       strcmp(keys[NKEYS - NQUEUE_KEYS].section, "queue") == 0 &&
	       strcmp(keys[NKEYS - NQUEUE_KEYS - 1].section, "queue") != 0);
	return UINT32_C(1) << (i - (NKEYS - NQUEUE_KEYS));
}

static size_t name_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h;
}

/* The index in cfg->queues of the queue called name, or SIZE_MAX. */
static size_t index_find(const struct parse *p, const char *name)
{
	size_t i, s;

	if (p->nslots == 0)
		return SIZE_MAX;
	for (i = name_hash(name) & (p->nslots - 1); (s = p->slots[i]) != 0;
	     i = (i + 1) & (p->nslots - 1))
		if (strcmp(p->cfg->queues[s - 1].name, name) == 0)
			return s - 1;
	return SIZE_MAX;
}

static void index_put(size_t *slots, size_t nslots, const char *name,
                      size_t qi)
{
	size_t i = name_hash(name) & (nslots - 1);

	while (slots[i] != 0)
		i = (i + 1) & (nslots - 1);
	slots[i] = qi + 1;
}

/* Index cfg->queues[qi], whose name is set; the table stays half empty. */
static int index_add(struct parse *p, size_t qi)
{
	if (2 * (qi + 1) > p->nslots) {
		size_t n = p->nslots != 0 ? 2 * p->nslots : 64, j;
		size_t *slots = calloc(n, sizeof(*slots));

		if (slots == NULL)
			return -1;
		for (j = 0; j < qi; j++)
			index_put(slots, n, p->cfg->queues[j].name, j);
		free(p->slots);
		p->slots = slots;
		p->nslots = n;
	}
	index_put(p->slots, p->nslots, p->cfg->queues[qi].name, qi);
	return 0;
}

static int grow_queues(struct parse *p)
{
	size_t n = p->cap != 0 ? 2 * p->cap : 8;
	struct mqd_queue_conf *q;
	uint32_t *g;

	q = realloc(p->cfg->queues, n * sizeof(*q));
	if (q == NULL)
		return -1;
	p->cfg->queues = q;
	g = realloc(p->given, n * sizeof(*g));
	if (g == NULL)
		return -1;
	p->given = g;
	p->cap = n;
	return 0;
}

static int defaults_begin(struct parse *p, const char *arg, char *msg,
                          size_t msglen)
{
	(void)arg;
	(void)msg;
	(void)msglen;
	p->cfg->defaults.queue.line = (unsigned)p->line;
	return 0;
}

/* A new [queue NAME]: its keys' defaults are applied next, and whatever it
 * does not give is overwritten from [defaults] at the end (inherit). */
static int queue_begin(struct parse *p, const char *arg, char *msg,
                       size_t msglen)
{
	struct mqd_config *cfg = p->cfg;
	size_t len = strlen(arg), i;
	struct mqd_queue_conf *q;

	if (!mqd_name_valid((const uint8_t *)arg, len))
		return fail(msg, msglen, "bad queue name '%s' (write %s)", arg,
		            queue_name_rule);
	i = index_find(p, arg);
	if (i != SIZE_MAX)
		return fail(msg, msglen, "repeated section [queue %s] (first at "
		            "line %u)", arg, cfg->queues[i].line);
	if (cfg->nqueues == p->cap && grow_queues(p) < 0)
		return fail(msg, msglen, "out of memory");
	q = &cfg->queues[cfg->nqueues];
	memset(q, 0, sizeof(*q));
	memcpy(q->name, arg, len); /* len <= MQD_NAME_MAX: mqd_name_valid */
	q->line = (unsigned)p->line;
	if (index_add(p, cfg->nqueues) < 0)
		return fail(msg, msglen, "out of memory");
	p->given[cfg->nqueues] = 0;
	cfg->nqueues++;
	return 0;
}

/* What a [queue NAME] does not give, it takes from [defaults]. */
static void inherit(struct parse *p)
{
	struct mqd_config *cfg = p->cfg;
	size_t i, b;

	for (i = 0; i < cfg->nqueues; i++) {
		for (b = NKEYS - NQUEUE_KEYS; b < NKEYS; b++) {
			const struct key *k = &keys[b];

			if (p->given[i] & queue_key_bit(k))
				continue;
			memcpy(field_of(k, &cfg->queues[i]),
			       field_of(k, &cfg->defaults.queue), k->size);
		}
	}
}

/* buf += s, as far as it fits. */
static void cat(char *buf, size_t size, const char *s)
{
	size_t n = strlen(buf);

	if (n + 1 < size)
		snprintf(buf + n, size - n, "%s", s);
}

/* The loop through queues[at], told from there: "b -> a -> b". */
static void report_loop(struct parse *p, size_t at, const size_t *next)
{
	const struct mqd_queue_conf *q = p->cfg->queues;
	uint32_t dl = queue_key_bit(find_key("queue", "dead_letter"));
	char chain[MSG_MAX] = "", hint[MSG_MAX] = "";
	size_t v = at;

	do {
		cat(chain, sizeof(chain), q[v].name);
		cat(chain, sizeof(chain), " -> ");
		if (hint[0] == '\0' && !(p->given[v] & dl))
			snprintf(hint, sizeof(hint), " ([queue %s] takes its "
			         "dead_letter from [defaults])", q[v].name);
		v = next[v];
	} while (v != at);
	cat(chain, sizeof(chain), q[at].name);
	parse_fail(p, (int)q[at].line, "dead-letter chain loops: %s%s", chain,
	           hint);
}

/*
 * Dead-letter chains among the configured queues must end: a message would
 * otherwise go round for ever.  Each queue names at most one other, so each
 * walk either ends or runs into a loop.  Of the loops, report the one whose
 * last-read section (the one that closed it) comes first in the file.
 */
static void check_loops(struct parse *p)
{
	const struct mqd_queue_conf *q = p->cfg->queues;
	size_t n = p->cfg->nqueues, i, v, best = SIZE_MAX;
	size_t *next;
	uint8_t *state; /* 0 = not seen, 1 = on this walk, 2 = done */

	if (n == 0)
		return;
	next = malloc(n * sizeof(*next));
	state = calloc(n, 1);
	if (next == NULL || state == NULL) {
		parse_fail(p, 0, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		next[i] = q[i].dead_letter[0] != '\0'
		        ? index_find(p, q[i].dead_letter) : SIZE_MAX;
	for (i = 0; i < n; i++) {
		for (v = i; v != SIZE_MAX && state[v] == 0; v = next[v])
			state[v] = 1;
		if (v != SIZE_MAX && state[v] == 1) {
			size_t w = v, last = v;

			do {
				if (q[w].line > q[last].line)
					last = w;
				w = next[w];
			} while (w != v);
			if (best == SIZE_MAX || q[last].line < q[best].line)
				best = last;
		}
		for (v = i; v != SIZE_MAX && state[v] == 1; v = next[v])
			state[v] = 2;
	}
	if (best != SIZE_MAX)
		report_loop(p, best, next);
out:
	free(next);
	free(state);
}

/* ------------------------------------------------------------ paths */

/*
 * dir + "/" + rel into out, without "." components or repeated slashes,
 * always starting with "/".  ".." stays: dropping it with the component
 * before would be wrong when that component is a symbolic link.  Returns
 * the length, or SIZE_MAX when out is too small.
 */
static size_t join_path(const char *dir, const char *rel, char *out,
                        size_t outlen)
{
	const char *parts[2] = { dir, rel };
	size_t n = 0, i;

	for (i = 0; i < 2; i++) {
		const char *s = parts[i];

		for (;;) {
			size_t len;

			while (*s == '/')
				s++;
			len = strcspn(s, "/");
			if (len == 0)
				break;
			if (len != 1 || *s != '.') {
				if (n + 1 + len >= outlen)
					return SIZE_MAX;
				out[n++] = '/';
				memcpy(out + n, s, len);
				n += len;
			}
			s += len;
		}
	}
	if (n == 0) {
		if (outlen < 2)
			return SIZE_MAX;
		out[n++] = '/';
	}
	out[n] = '\0';
	return n;
}

/* p->dir: the absolute directory of the file, or the current directory
 * for a string. */
static int find_dir(struct parse *p, char *msg, size_t msglen)
{
	const char *slash = p->is_file ? strrchr(p->name, '/') : NULL;
	char cwd[4096] = "", fdir[4096] = "";

	if (slash == NULL || p->name[0] != '/') {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return fail(msg, msglen, "cannot find the current "
			            "directory for a relative path: %s",
			            strerror(errno));
	}
	if (slash != NULL) /* name is shorter than 4096: load_text */
		snprintf(fdir, sizeof(fdir), "%.*s", (int)(slash - p->name),
		         p->name);
	if (join_path(cwd, fdir, p->dir, sizeof(p->dir)) == SIZE_MAX)
		return fail(msg, msglen, "the directory of %s is too long for "
		            "a relative path", p->name);
	p->have_dir = true;
	return 0;
}

/*
 * A relative path is made absolute now, against the directory of the file
 * it was read from: the daemon may chdir("/") before using it, and
 * "control_socket = mqd.sock" should mean next to the config file.
 */
static int resolve_path(struct parse *p, const struct key *k, void *base,
                        char *msg, size_t msglen)
{
	char *f = field_of(k, base), out[8192];
	size_t max = k->max != 0 ? (size_t)k->max : k->size - 1, len;

	if (f[0] == '/' || f[0] == '\0')
		return 0;
	/* log_file = syslog is a word, not a file: write ./syslog for one. */
	if (strcmp(k->name, "log_file") == 0 && strcmp(f, "syslog") == 0)
		return 0;
	if (!p->have_dir && find_dir(p, msg, msglen) < 0)
		return -1;
	len = join_path(p->dir, f, out, sizeof(out));
	if (len == SIZE_MAX || len > max)
		return fail(msg, msglen, "%s is too long once made absolute "
		            "(%zu bytes; at most %zu): %s", k->name,
		            len == SIZE_MAX ? strlen(p->dir) + 1 + strlen(f)
		                            : len, max,
		            len == SIZE_MAX ? f : out);
	memset(f, 0, k->size);
	memcpy(f, out, len);
	return 0;
}

/* Vet one line before inih sees it; it is already stripped on the left. */
static int check_line(struct parse *p, char *line)
{
	char *s = line;

	if (*s == '\0' || is_comment_char(*s))
		return 0;
	if (*s == '[')
		return begin_section(p, line);
	while (isalnum((unsigned char)*s) || *s == '_' || *s == '-' || *s == '.')
		s++;
	while (*s == ' ' || *s == '\t')
		s++;
	if (s == line || *s != '=') {
		parse_fail(p, p->line, "expected 'key = value', '[section]' or "
		           "a comment");
		return -1;
	}
	return 0;
}

/*
 * inih's reader: one line per call, so p->line is the line inih is on.
 * After an error it reports end of input, which stops inih there.
 */
static char *reader_cb(char *str, int num, void *stream)
{
	struct parse *p = stream;
	const char *s, *nl;
	size_t n;

	if (p->failed || p->pos >= p->len)
		return NULL;
	s = p->text + p->pos;
	nl = memchr(s, '\n', p->len - p->pos);
	n = nl != NULL ? (size_t)(nl - s) : p->len - p->pos;
	p->pos += n + (nl != NULL);
	p->line++;

	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (p->line == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
		s += 3;
		n -= 3;
	}
	/* No indented continuation lines: indentation is just indentation. */
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	if (memchr(s, '\0', n) != NULL) {
		parse_fail(p, p->line, "NUL byte in line");
		return NULL;
	}
	/* inih needs room for "\r\n\0" and would split a longer line. */
	if (num < 4 || n > (size_t)num - 3) {
		parse_fail(p, p->line, "line too long (at most %d characters)",
		           num - 3);
		return NULL;
	}
	memcpy(str, s, n);
	str[n] = '\0';
	if (check_line(p, str) < 0)
		return NULL;
	return str;
}

static int handler_cb(void *user, const char *section, const char *name,
                      const char *value)
{
	struct parse *p = user;
	const struct key *k;
	char msg[MSG_MAX];
	size_t i;
	void *base;

	(void)section; /* the reader tracks it, with the instance's name */
	if (p->failed)
		return 0;
	if (p->sec == NULL) {
		parse_fail(p, p->line, "key '%s' outside any section", name);
		return 0;
	}
	k = find_key(p->sec->name, name);
	if (k == NULL) {
		parse_fail(p, p->line, "unknown key '%s' in [%s]", name,
		           p->sec_label);
		return 0;
	}
	i = (size_t)(k - keys);
	if (p->key_line[i] != 0) {
		parse_fail(p, p->line, "repeated key '%s' in [%s] (first at "
		           "line %d)", name, p->sec_label, p->key_line[i]);
		return 0;
	}
	p->key_line[i] = p->line;
	base = p->sec->base(p->cfg);
	if (set_key(k, base, value, msg, sizeof(msg)) < 0 ||
	    (k->path && resolve_path(p, k, base, msg, sizeof(msg)) < 0)) {
		parse_fail(p, p->line, "%s", msg);
		return 0;
	}
	if (strcmp(k->section, "queue") == 0)
		p->given[p->cfg->nqueues - 1] |= queue_key_bit(k);
	return 1;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int load_text(struct mqd_config *cfg, const char *text, size_t len,
                     const char *name, bool is_file, char *err, size_t errlen)
{
	struct parse *p;
	struct mqd_config *fresh;
	int rc;

	if (name == NULL)
		name = "-";
	if (strlen(name) >= sizeof(cfg->path)) {
		set_err(err, errlen, "%.64s...:0: path too long", name);
		return -1;
	}
	fresh = malloc(sizeof(*fresh));
	p = calloc(1, sizeof(*p));
	if (fresh == NULL || p == NULL) {
		free(fresh);
		free(p);
		set_err(err, errlen, "%s:0: out of memory", name);
		return -1;
	}
	mqd_config_defaults(fresh);
	memcpy(fresh->path, name, strlen(name) + 1);
	p->name = name;
	p->is_file = is_file;
	p->text = text;
	p->len = len;
	p->cfg = fresh;
	p->err = err;
	p->errlen = errlen;

	rc = ini_parse_stream(reader_cb, p, handler_cb, p);
	if (!p->failed && rc == -2)
		parse_fail(p, 0, "out of memory");
	else if (!p->failed && rc != 0)
		/* Something inih refused that check_line let through. */
		parse_fail(p, rc, "syntax error");
	if (!p->failed) {
		inherit(p);
		check_loops(p);
	}

	rc = p->failed ? -1 : 0;
	if (rc == 0)
		*cfg = *fresh; /* the queues array goes with it */
	else
		mqd_config_free(fresh);
	free(p->given);
	free(p->slots);
	free(p);
	free(fresh);
	return rc;
}

int mqd_config_load_string(struct mqd_config *cfg, const char *text,
                           const char *name, char *err, size_t errlen)
{
	return load_text(cfg, text != NULL ? text : "",
	                 text != NULL ? strlen(text) : 0, name, false, err,
	                 errlen);
}

int mqd_config_load(struct mqd_config *cfg, const char *path, char *err,
                    size_t errlen)
{
	FILE *f;
	char *buf;
	size_t len = 0;
	int rc;

	f = fopen(path, "re");
	if (f == NULL) {
		set_err(err, errlen, "%s:0: cannot open: %s", path,
		        strerror(errno));
		return -1;
	}
	buf = malloc(CONFIG_MAX_BYTES + 1);
	if (buf == NULL) {
		fclose(f);
		set_err(err, errlen, "%s:0: out of memory", path);
		return -1;
	}
	/* One byte more than allowed tells "too large" from "just fits". */
	len = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
	if (ferror(f)) {
		int e = errno;

		fclose(f);
		free(buf);
		set_err(err, errlen, "%s:0: cannot read: %s", path, strerror(e));
		return -1;
	}
	fclose(f);
	if (len > CONFIG_MAX_BYTES) {
		free(buf);
		set_err(err, errlen, "%s:0: larger than %d bytes", path,
		        CONFIG_MAX_BYTES);
		return -1;
	}
	buf[len] = '\0';
	rc = load_text(cfg, buf, len, path, true, err, errlen);
	free(buf);
	return rc;
}

/* ------------------------------------------------------------ key names */

static char key_name_buf[NKEYS][64];
static const char *key_names[NKEYS];
static pthread_once_t key_names_once = PTHREAD_ONCE_INIT;

static void key_names_init(void)
{
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		snprintf(key_name_buf[i], sizeof(key_name_buf[i]), "%s.%s",
		         keys[i].section, keys[i].name);
		key_names[i] = key_name_buf[i];
	}
}

size_t mqd_config_keys(const char *const **names)
{
	pthread_once(&key_names_once, key_names_init);
	if (names != NULL)
		*names = key_names;
	return NKEYS;
}
