/*
 * The configuration file: INI, parsed by libinih into a struct mqd_config.
 *
 * Keys are described by one table (config_keys.c): name, type, default,
 * where the value goes, and whether reload may change it.  Parsing
 * (config.c) fills a fresh struct and stops at the first error with
 * "FILE:LINE: message"; the caller swaps it in only when it is whole, so a
 * bad file never leaves half a config.
 */
#ifndef MQD_CONFIG_H
#define MQD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/duration.h"
#include "core/log.h"

#define MQD_LISTEN_MAX 16

struct mqd_listen_addr {
	char host[256]; /* without brackets: "127.0.0.1", "::1", "0.0.0.0" */
	uint16_t port;  /* 0 = let the kernel choose (tests use it) */
};

/* Queue settings as the config states them: [defaults] and each
 * [queue NAME].  0 / "" mean unlimited / none, except where noted. */
struct mqd_queue_conf {
	char name[256];          /* [queue NAME]; "" for [defaults] */
	unsigned line;           /* line of its section header (for messages) */
	uint32_t max_length;     /* messages, 0 = unlimited */
	uint64_t max_bytes;      /* size, 0 = unlimited */
	uint8_t overflow;        /* 1 = reject (default), 2 = drop_head */
	uint64_t message_ttl_ms; /* duration, 0 = never expire */
	uint64_t ack_timeout_ms; /* duration, default 30s; 0 = never */
	uint16_t max_attempts;   /* 0 = unlimited */
	char dead_letter[256];   /* queue name, "" = none */
};

/* [defaults]: settings a queue gets unless its declaration says otherwise. */
struct mqd_queue_defaults {
	uint32_t prefetch; /* default 1000 */
	struct mqd_queue_conf queue; /* the same keys as [queue NAME] */
};

struct mqd_config {
	char path[4096]; /* the file it came from */
	/* [server] */
	struct mqd_listen_addr listen[MQD_LISTEN_MAX];
	size_t nlisten;          /* default: 127.0.0.1:7400 */
	char control_socket[108]; /* default "/run/mqd/mqd.sock" */
	uint32_t control_socket_mode; /* octal in the file, default 0600 */
	/* Prometheus /metrics and the status page; off when !metrics_on
	 * (metrics_listen = "" in the file, the default). */
	bool metrics_on;
	struct mqd_listen_addr metrics_listen;
	uint32_t workers;         /* 0 = one per CPU (resolved by the caller) */
	uint32_t max_connections; /* default 10000 */
	uint32_t max_frame;       /* bytes, default 1M */
	bool auto_create;         /* default true */
	uint64_t idle_timeout_ms; /* 0 = never */
	enum mqd_log_level log_level; /* default info */
	char log_file[4096];      /* "" = stderr, "syslog" = syslog */
	char pidfile[4096];       /* "" = none; used with -d */
	uint64_t max_memory;      /* size, 0 = no limit */
	uint64_t slow_consumer_bytes; /* size, default 64M: a subscriber with
	                               * more unsent output loses messages */
	/* [defaults] */
	struct mqd_queue_defaults defaults;
	/* [queue NAME] sections, in file order (malloc'd; see
	 * mqd_config_free).  Settings not given in a section take the
	 * [defaults] value, wherever [defaults] stands in the file. */
	struct mqd_queue_conf *queues;
	size_t nqueues;
};

/* Fill with every key's default. */
void mqd_config_defaults(struct mqd_config *cfg);
/* Free what a loaded config allocated (the queues array); the struct may
 * be loaded again afterwards. */
void mqd_config_free(struct mqd_config *cfg);

/*
 * Parse the file at path into *cfg (defaults first, then the file).
 * Returns 0, or -1 with "FILE:LINE: message" (LINE 0 when the file cannot
 * be opened) in err.
 */
int mqd_config_load(struct mqd_config *cfg, const char *path, char *err,
                    size_t errlen) __attribute__((warn_unused_result));
/* Same from a string; name stands in for FILE in messages. */
int mqd_config_load_string(struct mqd_config *cfg, const char *text,
                           const char *name, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Value syntaxes, exposed for the tests and the CLI. Return 0 or -1. */
int mqd_parse_bool(const char *s, bool *out);         /* yes/no true/false on/off 1/0 */
int mqd_parse_listen(const char *s, struct mqd_listen_addr *out, size_t max,
                     size_t *n);                      /* "h:p, [::1]:p" */
int mqd_parse_log_level(const char *s, enum mqd_log_level *out);
const char *mqd_log_level_name(enum mqd_log_level l);

/* Each key the table knows, as "section.key", for documentation checks.
 * Returns the count; names[i] for i < count. */
size_t mqd_config_keys(const char *const **names);

#endif
