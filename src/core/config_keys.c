#ifdef HAVE_CONFIG_H
/* autoconf's config.h.  The angle brackets matter: "config.h" would find
 * core/config.h next to this file before the build directory's. */
#include <config.h>
#endif

/*
 * mqd.conf's keys: one table, and the readers of their values.
 *
 * Every key is one row of keys[] below: section, name, type, default (as
 * text, parsed by the same code as the file), where the value goes, whether
 * a reload may change it, and a line of documentation.  Defaults go through
 * the setters too, so a default can never be something the file could not
 * say.  The queue keys appear twice, under [defaults] and under
 * [queue NAME], from one macro.
 *
 * The value syntaxes (sizes, durations, booleans, listen lists, ...) are
 * here too, each with the message that tells how to write it.  Reading
 * the file, sections and all, is config.c's.
 */

#include <assert.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/config_keys.h"
#include "core/duration.h"
#include "proto/proto.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* overflow's values, as DECLARE carries them. */
#define OVERFLOW_REJECT 1
#define OVERFLOW_DROP_HEAD 2

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
	/* [queue NAME]: these must stay the last rows (see
	 * mqd_config_queue_key_bit). */
	QUEUE_KEYS("queue", QUE, true),
};

#define NKEYS ARRAY_LEN(keys)

/* The table, for config.c. */
const struct key *const mqd_config_table = keys;
const size_t mqd_config_nkeys = NKEYS;

/* The queue keys, one bit each in a queue's "given" mask. */
#define NQUEUE_KEYS 7
_Static_assert(NQUEUE_KEYS <= 32, "the given masks are uint32_t");

const char mqd_config_queue_name_rule[] =
	"1 to 255 characters of A-Z a-z 0-9 . _ - :";

/* ------------------------------------------------------------ value syntax */

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
		            mqd_config_queue_name_rule);
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

int mqd_config_set_key(const struct key *k, void *base, const char *value,
                       char *msg, size_t msglen)
{
	key_setter set = k->set != NULL ? k->set : type_setters[k->type];

	return set(k, base, value, msg, msglen);
}

/* ------------------------------------------------------------ lookups */

const struct key *mqd_config_find_key(const char *section, const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* The [queue NAME] keys are the last NQUEUE_KEYS rows of keys[]. */
uint32_t mqd_config_queue_key_bit(const struct key *k)
{
	size_t i = (size_t)(k - keys);

	assert(i >= NKEYS - NQUEUE_KEYS && i < NKEYS &&
	       strcmp(keys[NKEYS - NQUEUE_KEYS].section, "queue") == 0 &&
	       strcmp(keys[NKEYS - NQUEUE_KEYS - 1].section, "queue") != 0);
	return UINT32_C(1) << (i - (NKEYS - NQUEUE_KEYS));
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
