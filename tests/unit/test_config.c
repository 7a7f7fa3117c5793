/*
 * Unit tests of the configuration file (core/config) and the log
 * (core/log): every key, every default, every error with its line, the
 * value syntaxes, [queue NAME] sections and what they take from [defaults],
 * dead-letter loops, relative paths, and that conf/mqd.conf and
 * man/mqd.conf.5 document every key the table knows (read from
 * $MQD_SRCDIR, default ".").
 *
 * Each test runs in its own process (Check's fork mode); the config it
 * loads is freed before every load and by the fixture, so that
 * AddressSanitizer's leak check sees a leak of the loader's own.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/duration.h"
#include "core/log.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NAME "t.conf"

static struct mqd_config cfg;
static char err[1024];

/* ------------------------------------------------------------ helpers */

/* The config of the last load goes; loads do not free what they replace. */
static void free_cfg(void)
{
	mqd_config_free(&cfg);
}

static void load_ok(const char *text)
{
	free_cfg();
	err[0] = '\0';
	ck_assert_msg(mqd_config_load_string(&cfg, text, NAME, err,
	                                     sizeof(err)) == 0,
	              "unexpected error: %s\n--- text:\n%s", err, text);
}

/* The load fails at line, with needle somewhere in the message. */
static void load_err(const char *text, int line, const char *needle)
{
	char prefix[64];

	free_cfg();
	err[0] = '\0';
	ck_assert_msg(mqd_config_load_string(&cfg, text, NAME, err,
	                                     sizeof(err)) == -1,
	              "no error for:\n%s", text);
	snprintf(prefix, sizeof(prefix), NAME ":%d: ", line);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
	              "expected prefix '%s', got '%s'", prefix, err);
	ck_assert_msg(strstr(err, needle) != NULL,
	              "expected '%s' in '%s'", needle, err);
}

/* "[section]\nkey = value\n" */
static void load_key(const char *section, const char *key, const char *value)
{
	char text[1024];

	snprintf(text, sizeof(text), "[%s]\n%s = %s\n", section, key, value);
	load_ok(text);
}

static void load_key_err(const char *section, const char *key,
                         const char *value, const char *needle)
{
	char text[1024];

	snprintf(text, sizeof(text), "[%s]\n%s = %s\n", section, key, value);
	load_err(text, 2, needle);
}

static void assert_defaults(const struct mqd_config *c)
{
	ck_assert_uint_eq(c->nlisten, 1);
	ck_assert_str_eq(c->listen[0].host, "127.0.0.1");
	ck_assert_uint_eq(c->listen[0].port, 7400);
	ck_assert_str_eq(c->control_socket, "/run/mqd/mqd.sock");
	ck_assert_uint_eq(c->control_socket_mode, 0600);
	ck_assert(!c->metrics_on);
	ck_assert_str_eq(c->metrics_listen.host, "");
	ck_assert_uint_eq(c->metrics_listen.port, 0);
	ck_assert_uint_eq(c->workers, 0);
	ck_assert_uint_eq(c->max_connections, 10000);
	ck_assert_uint_eq(c->max_frame, 1024 * 1024);
	ck_assert(c->auto_create);
	ck_assert_uint_eq(c->idle_timeout_ms, 0);
	ck_assert_int_eq(c->log_level, MQD_LOG_INFO);
	ck_assert_str_eq(c->log_file, "");
	ck_assert_str_eq(c->pidfile, "");
	ck_assert_uint_eq(c->max_memory, 0);
	ck_assert_uint_eq(c->slow_consumer_bytes, 64 * 1024 * 1024);
	ck_assert_uint_eq(c->defaults.prefetch, 1000);
	ck_assert_str_eq(c->defaults.queue.name, "");
	ck_assert_uint_eq(c->defaults.queue.max_length, 0);
	ck_assert_uint_eq(c->defaults.queue.max_bytes, 0);
	ck_assert_uint_eq(c->defaults.queue.overflow, 1);
	ck_assert_uint_eq(c->defaults.queue.message_ttl_ms, 0);
	ck_assert_uint_eq(c->defaults.queue.ack_timeout_ms, 30000);
	ck_assert_uint_eq(c->defaults.queue.max_attempts, 0);
	ck_assert_str_eq(c->defaults.queue.dead_letter, "");
	ck_assert_uint_eq(c->nqueues, 0);
	ck_assert_ptr_eq(c->queues, NULL);
}

/* The current directory, for what relative paths in strings resolve to. */
static void cwd_join(char *out, size_t len, const char *rel)
{
	char cwd[PATH_MAX];

	ck_assert_ptr_ne(getcwd(cwd, sizeof(cwd)), NULL);
	snprintf(out, len, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, rel);
}

static char *srcpath(const char *rel)
{
	const char *dir = getenv("MQD_SRCDIR");
	char *p;

	if (dir == NULL || *dir == '\0')
		dir = ".";
	p = malloc(strlen(dir) + strlen(rel) + 2);
	ck_assert_ptr_ne(p, NULL);
	sprintf(p, "%s/%s", dir, rel);
	return p;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_ne(buf, NULL);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static char tmpdir[256];

static void make_tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_config.XXXXXX",
	         t != NULL && *t != '\0' ? t : "/tmp");
	ck_assert_ptr_ne(mkdtemp(tmpdir), NULL);
}

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_ne(f, NULL);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* ------------------------------------------------------------ defaults */

START_TEST(test_defaults)
{
	memset(&cfg, 0xa5, sizeof(cfg));
	mqd_config_defaults(&cfg);
	assert_defaults(&cfg);
}
END_TEST

START_TEST(test_empty_file_gives_defaults)
{
	load_ok("");
	assert_defaults(&cfg);
	ck_assert_str_eq(cfg.path, NAME);
	load_ok("# nothing but comments\n\n; and blank lines\n");
	assert_defaults(&cfg);
	load_ok("[server]\n[defaults]\n");
	assert_defaults(&cfg);
}
END_TEST

/* A key set in one load does not leak into the next. */
START_TEST(test_each_load_starts_from_defaults)
{
	load_ok("[server]\nworkers = 8\nlog_file = /tmp/x.log\n");
	ck_assert_uint_eq(cfg.workers, 8);
	load_ok("[server]\n");
	assert_defaults(&cfg);
}
END_TEST

/* ------------------------------------------------------------ every key */

static const struct {
	const char *key, *value;
} every_key[] = {
	{ "server.listen", "0.0.0.0:7401, [::1]:0" },
	{ "server.control_socket", "/tmp/mqd-test.sock" },
	{ "server.control_socket_mode", "0660" },
	{ "server.metrics_listen", "[::1]:9400" },
	{ "server.workers", "4" },
	{ "server.max_connections", "12" },
	{ "server.max_frame", "4M" },
	{ "server.auto_create", "no" },
	{ "server.idle_timeout", "90s" },
	{ "server.log_level", "debug" },
	{ "server.log_file", "/var/log/mqd.log" },
	{ "server.pidfile", "/run/mqd.pid" },
	{ "server.max_memory", "512M" },
	{ "server.slow_consumer_bytes", "8M" },
	{ "defaults.prefetch", "7" },
	{ "defaults.max_length", "100" },
	{ "defaults.max_bytes", "1M" },
	{ "defaults.overflow", "drop_head" },
	{ "defaults.message_ttl", "1h" },
	{ "defaults.ack_timeout", "0" },
	{ "defaults.max_attempts", "3" },
	{ "defaults.dead_letter", "dlq" },
	{ "queue.max_length", "5" },
	{ "queue.max_bytes", "2K" },
	{ "queue.overflow", "reject" },
	{ "queue.message_ttl", "250ms" },
	{ "queue.ack_timeout", "5m" },
	{ "queue.max_attempts", "65535" },
	{ "queue.dead_letter", "other" },
};

START_TEST(test_every_key)
{
	char text[4096], cur[32] = "";
	size_t i, n = 0;

	for (i = 0; i < ARRAY_LEN(every_key); i++) {
		const char *dot = strchr(every_key[i].key, '.');
		size_t slen = (size_t)(dot - every_key[i].key);

		if (strlen(cur) != slen ||
		    strncmp(cur, every_key[i].key, slen) != 0) {
			snprintf(cur, sizeof(cur), "%.*s", (int)slen,
			         every_key[i].key);
			n += (size_t)snprintf(text + n, sizeof(text) - n,
			                      "[%s%s]\n", cur,
			                      strcmp(cur, "queue") == 0 ? " every"
			                                                : "");
		}
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s = %s\n",
		                      dot + 1, every_key[i].value);
	}
	load_ok(text);
	ck_assert_uint_eq(cfg.nlisten, 2);
	ck_assert_str_eq(cfg.listen[0].host, "0.0.0.0");
	ck_assert_uint_eq(cfg.listen[0].port, 7401);
	ck_assert_str_eq(cfg.listen[1].host, "::1");
	ck_assert_uint_eq(cfg.listen[1].port, 0);
	ck_assert_str_eq(cfg.control_socket, "/tmp/mqd-test.sock");
	ck_assert_uint_eq(cfg.control_socket_mode, 0660);
	ck_assert(cfg.metrics_on);
	ck_assert_str_eq(cfg.metrics_listen.host, "::1");
	ck_assert_uint_eq(cfg.metrics_listen.port, 9400);
	ck_assert_uint_eq(cfg.workers, 4);
	ck_assert_uint_eq(cfg.max_connections, 12);
	ck_assert_uint_eq(cfg.max_frame, 4 * 1024 * 1024);
	ck_assert(!cfg.auto_create);
	ck_assert_uint_eq(cfg.idle_timeout_ms, 90000);
	ck_assert_int_eq(cfg.log_level, MQD_LOG_DEBUG);
	ck_assert_str_eq(cfg.log_file, "/var/log/mqd.log");
	ck_assert_str_eq(cfg.pidfile, "/run/mqd.pid");
	ck_assert_uint_eq(cfg.max_memory, 512 * 1024 * 1024);
	ck_assert_uint_eq(cfg.slow_consumer_bytes, 8 * 1024 * 1024);
	ck_assert_uint_eq(cfg.defaults.prefetch, 7);
	ck_assert_uint_eq(cfg.defaults.queue.max_length, 100);
	ck_assert_uint_eq(cfg.defaults.queue.max_bytes, 1024 * 1024);
	ck_assert_uint_eq(cfg.defaults.queue.overflow, 2);
	ck_assert_uint_eq(cfg.defaults.queue.message_ttl_ms, 3600000);
	ck_assert_uint_eq(cfg.defaults.queue.ack_timeout_ms, 0);
	ck_assert_uint_eq(cfg.defaults.queue.max_attempts, 3);
	ck_assert_str_eq(cfg.defaults.queue.dead_letter, "dlq");
	ck_assert_uint_eq(cfg.defaults.queue.line, 16);
	ck_assert_uint_eq(cfg.nqueues, 1);
	ck_assert_str_eq(cfg.queues[0].name, "every");
	ck_assert_uint_eq(cfg.queues[0].line, 25);
	ck_assert_uint_eq(cfg.queues[0].max_length, 5);
	ck_assert_uint_eq(cfg.queues[0].max_bytes, 2048);
	ck_assert_uint_eq(cfg.queues[0].overflow, 1);
	ck_assert_uint_eq(cfg.queues[0].message_ttl_ms, 250);
	ck_assert_uint_eq(cfg.queues[0].ack_timeout_ms, 300000);
	ck_assert_uint_eq(cfg.queues[0].max_attempts, 65535);
	ck_assert_str_eq(cfg.queues[0].dead_letter, "other");
}
END_TEST

/* The test above must grow with the table. */
START_TEST(test_every_key_is_tested)
{
	const char *const *names;
	size_t n = mqd_config_keys(&names), i, j;

	for (i = 0; i < n; i++) {
		for (j = 0; j < ARRAY_LEN(every_key); j++)
			if (strcmp(names[i], every_key[j].key) == 0)
				break;
		ck_assert_msg(j < ARRAY_LEN(every_key),
		              "key %s missing from test_every_key", names[i]);
	}
	ck_assert_uint_eq(n, ARRAY_LEN(every_key));
}
END_TEST

START_TEST(test_config_keys)
{
	const char *const *names, *const *again;
	size_t n = mqd_config_keys(&names), i, j;

	ck_assert_uint_eq(n, 29);
	ck_assert_str_eq(names[0], "server.listen");
	ck_assert_str_eq(names[13], "server.slow_consumer_bytes");
	ck_assert_str_eq(names[14], "defaults.prefetch");
	ck_assert_str_eq(names[15], "defaults.max_length");
	ck_assert_str_eq(names[21], "defaults.dead_letter");
	ck_assert_str_eq(names[22], "queue.max_length");
	ck_assert_str_eq(names[n - 1], "queue.dead_letter");
	for (i = 0; i < n; i++) {
		const char *dot = strchr(names[i], '.');

		ck_assert_msg(dot != NULL && dot != names[i] && dot[1] != '\0',
		              "bad key name %s", names[i]);
		for (j = i + 1; j < n; j++)
			ck_assert_str_ne(names[i], names[j]);
	}
	ck_assert_uint_eq(mqd_config_keys(&again), n);
	ck_assert_ptr_eq(again, names);
	ck_assert_uint_eq(mqd_config_keys(NULL), n);
}
END_TEST

/* ------------------------------------------------------------ listen */

static const struct {
	const char *value;
	size_t n;
	const char *host0;
	unsigned port0;
	const char *host1;
	unsigned port1;
} listen_good[] = {
	{ "127.0.0.1:7400", 1, "127.0.0.1", 7400, NULL, 0 },
	{ "0.0.0.0:0", 1, "0.0.0.0", 0, NULL, 0 },
	{ "[::1]:7400", 1, "::1", 7400, NULL, 0 },
	{ "[::]:65535", 1, "::", 65535, NULL, 0 },
	{ "localhost:1", 1, "localhost", 1, NULL, 0 },
	{ "mq.example.com:7400", 1, "mq.example.com", 7400, NULL, 0 },
	{ "[fe80::1%eth0]:7400", 1, "fe80::1%eth0", 7400, NULL, 0 },
	{ "127.0.0.1:7400,[::1]:7401", 2, "127.0.0.1", 7400, "::1", 7401 },
	{ "  a:1 ,\tb:2", 2, "a", 1, "b", 2 },
	{ "a:0, a:0", 2, "a", 0, "a", 0 }, /* port 0 twice is two ports */
};

START_TEST(test_listen_good)
{
	load_key("server", "listen", listen_good[_i].value);
	ck_assert_uint_eq(cfg.nlisten, listen_good[_i].n);
	ck_assert_str_eq(cfg.listen[0].host, listen_good[_i].host0);
	ck_assert_uint_eq(cfg.listen[0].port, listen_good[_i].port0);
	if (listen_good[_i].n > 1) {
		ck_assert_str_eq(cfg.listen[1].host, listen_good[_i].host1);
		ck_assert_uint_eq(cfg.listen[1].port, listen_good[_i].port1);
	}
}
END_TEST

static const struct {
	const char *value, *needle;
} listen_bad[] = {
	{ "localhost", "'localhost' (missing port: write localhost:7400)" },
	{ "1.2.3.4:", "missing port" },
	{ "[::1]", "missing port: write [::1]:7400" },
	{ "[::1]:", "missing port" },
	{ "1.2.3.4:65536", "port must be 0 to 65535" },
	{ "1.2.3.4:99999999999", "port must be 0 to 65535" },
	{ "1.2.3.4:-1", "port must be 0 to 65535" },
	{ "1.2.3.4:74x", "port must be 0 to 65535" },
	{ "[::1:7400", "unclosed '['" },
	{ "[::1]7400", "missing port" },
	{ "::1:7400", "needs brackets" },
	{ ":7400", "missing host" },
	{ "[]:7400", "missing host" },
	{ "[localhost]:7400", "brackets are for IPv6" },
	{ "a b:7400", "bad character ' ' in host" },
	{ "a:1,,b:2", "empty item" },
	{ "a:1,", "empty item" },
	{ ",a:1", "empty item" },
	{ "", "empty item" },
	{ "a:1, b:2, a:1", "'a:1' (given twice)" },
};

START_TEST(test_listen_bad)
{
	load_key_err("server", "listen", listen_bad[_i].value,
	             listen_bad[_i].needle);
	ck_assert_msg(strstr(err, "bad listen") != NULL, "%s", err);
}
END_TEST

START_TEST(test_listen_max)
{
	char text[1024];
	size_t n, i;

	n = (size_t)snprintf(text, sizeof(text), "[server]\nlisten = ");
	for (i = 0; i < MQD_LISTEN_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%sh:%zu",
		                      i > 0 ? "," : "", 1000 + i);
	load_ok(text);
	ck_assert_uint_eq(cfg.nlisten, MQD_LISTEN_MAX);
	ck_assert_uint_eq(cfg.listen[MQD_LISTEN_MAX - 1].port,
	                  1000 + MQD_LISTEN_MAX - 1);
	snprintf(text + n, sizeof(text) - n, ",h:9");
	load_err(text, 2, "more than 16 addresses");
}
END_TEST

/* ------------------------------------------------------------ sizes */

static const struct {
	const char *value;
	uint32_t bytes;
} size_good[] = {
	{ "64", 64 },
	{ "64B", 64 },
	{ "1000", 1000 },
	{ "1K", 1024 },
	{ "1k", 1024 },
	{ "2KB", 2048 },
	{ "1M", 1024 * 1024 },
	{ "3mb", 3 * 1024 * 1024 },
	{ "256M", 256 * 1024 * 1024 },
	{ "262144K", 256 * 1024 * 1024 },
};

START_TEST(test_size_good)
{
	load_key("server", "max_frame", size_good[_i].value);
	ck_assert_uint_eq(cfg.max_frame, size_good[_i].bytes);
}
END_TEST

static const char *const size_bad[] = {
	"63", "0", "257M", "1G", "1T", "1.5M", "-1", "+1", "M", "1 M", "1MiB",
	"99999999999999999999",      /* overflows while reading digits */
	"18014398509481984K",        /* 2^54 K = 2^64: overflows the unit */
	"0x100",
};

START_TEST(test_size_bad)
{
	char needle[128];

	snprintf(needle, sizeof(needle), "bad size '%s' for max_frame (write "
	         "64 to 256M bytes", size_bad[_i]);
	load_key_err("server", "max_frame", size_bad[_i], needle);
}
END_TEST

/* ------------------------------------------------------------ durations */

static const struct {
	const char *value;
	uint64_t ms;
} duration_good[] = {
	{ "0", 0 },
	{ "0s", 0 },
	{ "250ms", 250 },
	{ "30s", 30000 },
	{ "5m", 300000 },
	{ "1h", 3600000 },
	{ "48h", 48ULL * 3600000 },
};

START_TEST(test_duration_good)
{
	load_key("server", "idle_timeout", duration_good[_i].value);
	ck_assert_uint_eq(cfg.idle_timeout_ms, duration_good[_i].ms);
}
END_TEST

START_TEST(test_duration_bare_number)
{
	load_err("[server]\n\nidle_timeout = 30\n", 3,
	         "bad duration '30' for idle_timeout (write 30s, 30000ms; "
	         "only 0 may go without a unit)");
	ck_assert_str_eq(err, NAME ":3: bad duration '30' for idle_timeout "
	                 "(write 30s, 30000ms; only 0 may go without a unit)");
	load_err("[server]\nidle_timeout = 1\n", 2, "write 1s, 1000ms");
}
END_TEST

static const char *const duration_bad[] = {
	"30S", "1d", "s", "ms", "1.5s", "-1s", "30 s", "1sec", "1hour",
	"99999999999999999999ms", "18446744073709551615h",
};

START_TEST(test_duration_bad)
{
	char needle[128];

	snprintf(needle, sizeof(needle), "bad duration '%s' for idle_timeout",
	         duration_bad[_i]);
	load_key_err("server", "idle_timeout", duration_bad[_i], needle);
	ck_assert_msg(strstr(err, "only 0 may go without a unit") != NULL,
	              "%s", err);
}
END_TEST

/* ------------------------------------------------------------ bools */

static const struct {
	const char *value;
	bool b;
} bool_good[] = {
	{ "yes", true }, { "no", false }, { "true", true }, { "false", false },
	{ "on", true },  { "off", false }, { "1", true },   { "0", false },
	{ "YES", true }, { "Off", false },
};

START_TEST(test_bool_good)
{
	load_key("server", "auto_create", bool_good[_i].value);
	ck_assert_int_eq(cfg.auto_create, bool_good[_i].b);
}
END_TEST

static const char *const bool_bad[] = { "maybe", "2", "", "y", "yes!", "nope" };

START_TEST(test_bool_bad)
{
	char needle[128];

	snprintf(needle, sizeof(needle), "bad bool '%s' for auto_create (write "
	         "yes or no", bool_bad[_i]);
	load_key_err("server", "auto_create", bool_bad[_i], needle);
}
END_TEST

/* ------------------------------------------------------------ numbers */

static const struct {
	const char *section, *key, *value;
	bool ok;
	uint32_t v;
	const char *range;
} uint_cases[] = {
	{ "server", "workers", "0", true, 0, NULL },
	{ "server", "workers", "256", true, 256, NULL },
	{ "server", "workers", "007", true, 7, NULL },
	{ "server", "workers", "257", false, 0, "from 0 to 256" },
	{ "server", "workers", "-1", false, 0, "from 0 to 256" },
	{ "server", "workers", "4x", false, 0, "from 0 to 256" },
	{ "server", "workers", "", false, 0, "from 0 to 256" },
	{ "server", "workers", "99999999999999999999999", false, 0, "from 0 to 256" },
	{ "server", "max_connections", "1", true, 1, NULL },
	{ "server", "max_connections", "4294967295", true, 4294967295u, NULL },
	{ "server", "max_connections", "0", false, 0, "from 1 to 4294967295" },
	{ "server", "max_connections", "4294967296", false, 0,
	  "from 1 to 4294967295" },
	{ "defaults", "prefetch", "1", true, 1, NULL },
	{ "defaults", "prefetch", "65535", true, 65535, NULL },
	{ "defaults", "prefetch", "0", false, 0, "from 1 to 65535" },
	{ "defaults", "prefetch", "65536", false, 0, "from 1 to 65535" },
};

START_TEST(test_uint)
{
	char needle[128];
	uint32_t got;

	if (!uint_cases[_i].ok) {
		snprintf(needle, sizeof(needle), "bad number '%s' for %s (write "
		         "a whole number %s)", uint_cases[_i].value,
		         uint_cases[_i].key, uint_cases[_i].range);
		load_key_err(uint_cases[_i].section, uint_cases[_i].key,
		             uint_cases[_i].value, needle);
		return;
	}
	load_key(uint_cases[_i].section, uint_cases[_i].key,
	         uint_cases[_i].value);
	if (strcmp(uint_cases[_i].key, "workers") == 0)
		got = cfg.workers;
	else if (strcmp(uint_cases[_i].key, "max_connections") == 0)
		got = cfg.max_connections;
	else
		got = cfg.defaults.prefetch;
	ck_assert_uint_eq(got, uint_cases[_i].v);
}
END_TEST

/* ------------------------------------------------------------ log level */

START_TEST(test_log_level_key)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	size_t i;

	for (i = 0; i < ARRAY_LEN(names); i++) {
		load_key("server", "log_level", names[i]);
		ck_assert_int_eq(cfg.log_level, (int)i);
	}
	load_key("server", "log_level", "WARN");
	ck_assert_int_eq(cfg.log_level, MQD_LOG_WARN);
	load_key_err("server", "log_level", "verbose",
	             "bad log level 'verbose' for log_level (write error, "
	             "warn, info or debug)");
	load_key_err("server", "log_level", "warning", "bad log level");
	load_key_err("server", "log_level", "", "bad log level ''");
}
END_TEST

/* ------------------------------------------------------------ strings */

START_TEST(test_strings)
{
	char text[512], path[200];

	load_key("server", "log_file", "syslog");
	ck_assert_str_eq(cfg.log_file, "syslog");
	load_key("server", "log_file", "");
	ck_assert_str_eq(cfg.log_file, "");
	load_key("server", "log_file", "/var/log/my mqd.log");
	ck_assert_str_eq(cfg.log_file, "/var/log/my mqd.log");
	load_key("server", "pidfile", "/run/mqd.pid");
	ck_assert_str_eq(cfg.pidfile, "/run/mqd.pid");

	/* A socket path must fit sun_path: 107 bytes and the NUL. */
	memset(path, 'a', 107);
	path[0] = '/';
	path[107] = '\0';
	load_key("server", "control_socket", path);
	ck_assert_str_eq(cfg.control_socket, path);
	strcat(path, "b");
	snprintf(text, sizeof(text), "[server]\ncontrol_socket = %s\n", path);
	load_err(text, 2, "control_socket is too long (108 bytes; at most 107)");
	load_key_err("server", "control_socket", "", "control_socket may not "
	             "be empty");
}
END_TEST

/* ------------------------------------------------------------ max_memory */

START_TEST(test_max_memory)
{
	load_key("server", "max_memory", "0");
	ck_assert_uint_eq(cfg.max_memory, 0);
	load_key("server", "max_memory", "512M");
	ck_assert_uint_eq(cfg.max_memory, 512ULL << 20);
	load_key("server", "max_memory", "64G");
	ck_assert_uint_eq(cfg.max_memory, 64ULL << 30);
	load_key("server", "max_memory", "1000");
	ck_assert_uint_eq(cfg.max_memory, 1000);
	load_key_err("server", "max_memory", "-1",
	             "bad size '-1' for max_memory");
	load_key_err("server", "max_memory", "1T", "bad size '1T'");
	load_err("[defaults]\nmax_memory = 1G\n", 2,
	         "unknown key 'max_memory' in [defaults]");
}
END_TEST

/* ------------------------------------------------------------ control socket mode */

static const struct {
	const char *value;
	bool ok;
	uint32_t mode;
} mode_cases[] = {
	{ "0600", true, 0600 },
	{ "0660", true, 0660 },
	{ "660", true, 0660 },
	{ "0777", true, 0777 },
	{ "000640", true, 0640 },
	{ "0", false, 0 },
	{ "0400", false, 0 },      /* the owner could not connect */
	{ "0200", false, 0 },
	{ "0060", false, 0 },
	{ "1777", false, 0 },      /* sticky: not a permission bit */
	{ "4600", false, 0 },
	{ "0680", false, 0 },      /* not octal */
	{ "0x1b0", false, 0 },
	{ "rw-------", false, 0 },
	{ "-0600", false, 0 },
	{ "", false, 0 },
	{ "077777777777777777777777", false, 0 },
};

START_TEST(test_control_socket_mode)
{
	const char *v = mode_cases[_i].value;

	if (mode_cases[_i].ok) {
		load_key("server", "control_socket_mode", v);
		ck_assert_uint_eq(cfg.control_socket_mode, mode_cases[_i].mode);
		return;
	}
	load_key_err("server", "control_socket_mode", v, "bad mode '");
	load_key_err("server", "control_socket_mode", v,
	             "' for control_socket_mode (");
}
END_TEST

START_TEST(test_control_socket_mode_messages)
{
	load_key_err("server", "control_socket_mode", "0400",
	             "bad mode '0400' for control_socket_mode (the owner needs "
	             "read and write: 06xx)");
	load_key_err("server", "control_socket_mode", "0680",
	             "bad mode '0680' for control_socket_mode (write "
	             "permission bits in octal, 0600 to 0777, e.g. 0600 or "
	             "0660)");
	load_err("[defaults]\ncontrol_socket_mode = 0600\n", 2,
	         "unknown key 'control_socket_mode' in [defaults]");
}
END_TEST

/* ------------------------------------------------------------ metrics_listen */

START_TEST(test_metrics_listen)
{
	load_key("server", "metrics_listen", "127.0.0.1:9400");
	ck_assert(cfg.metrics_on);
	ck_assert_str_eq(cfg.metrics_listen.host, "127.0.0.1");
	ck_assert_uint_eq(cfg.metrics_listen.port, 9400);
	load_key("server", "metrics_listen", "[::]:0");
	ck_assert(cfg.metrics_on);
	ck_assert_str_eq(cfg.metrics_listen.host, "::");
	ck_assert_uint_eq(cfg.metrics_listen.port, 0);
	load_key("server", "metrics_listen", "localhost:9400");
	ck_assert_str_eq(cfg.metrics_listen.host, "localhost");
	/* Empty: off, and the address is cleared. */
	load_key("server", "metrics_listen", "");
	ck_assert(!cfg.metrics_on);
	ck_assert_str_eq(cfg.metrics_listen.host, "");
	ck_assert_uint_eq(cfg.metrics_listen.port, 0);
	/* Independent of listen: the same port is the kernel's business. */
	load_ok("[server]\nlisten = 127.0.0.1:7400\n"
	        "metrics_listen = 127.0.0.1:7401\n");
	ck_assert_uint_eq(cfg.nlisten, 1);
	ck_assert_uint_eq(cfg.metrics_listen.port, 7401);

	load_key_err("server", "metrics_listen", "127.0.0.1:9400, [::1]:9400",
	             "bad address '127.0.0.1:9400, [::1]:9400' for "
	             "metrics_listen (one host:port only, not a list)");
	load_key_err("server", "metrics_listen", "127.0.0.1",
	             "bad address '127.0.0.1' for metrics_listen (missing "
	             "port: write 127.0.0.1:7400)");
	load_key_err("server", "metrics_listen", "::1:9400",
	             "an IPv6 address needs brackets");
	load_key_err("server", "metrics_listen", "[::1]:65536",
	             "port must be 0 to 65535");
	load_key_err("server", "metrics_listen", ":9400", "missing host");
	load_key_err("server", "metrics_listen", "[1.2.3.4]:9400",
	             "brackets are for IPv6 addresses");
	load_err("[server]\nmetrics_listen = 127.0.0.1:1\n"
	         "metrics_listen = 127.0.0.1:2\n", 3,
	         "repeated key 'metrics_listen' in [server]");
}
END_TEST

/* ------------------------------------------------------------ queues */

static const struct mqd_queue_conf *queue_named(const char *name)
{
	size_t i;

	for (i = 0; i < cfg.nqueues; i++)
		if (strcmp(cfg.queues[i].name, name) == 0)
			return &cfg.queues[i];
	ck_abort_msg("no queue %s", name);
	return NULL;
}

START_TEST(test_queue_sections)
{
	const struct mqd_queue_conf *q;

	load_ok("# queues\n"
	        "[queue jobs]\n"
	        "max_length = 100000\n"
	        "max_bytes = 64M\n"
	        "overflow = drop_head\n"
	        "message_ttl = 24h\n"
	        "ack_timeout = 5m\n"
	        "max_attempts = 5\n"
	        "dead_letter = jobs.failed\n"
	        "\n"
	        "[queue jobs.failed]\n"
	        "[ queue   orders.eu:high-1_x ]\n"
	        "overflow = REJECT\n");
	ck_assert_uint_eq(cfg.nqueues, 3);
	q = &cfg.queues[0]; /* in file order */
	ck_assert_str_eq(q->name, "jobs");
	ck_assert_uint_eq(q->line, 2);
	ck_assert_uint_eq(q->max_length, 100000);
	ck_assert_uint_eq(q->max_bytes, 64ULL << 20);
	ck_assert_uint_eq(q->overflow, 2);
	ck_assert_uint_eq(q->message_ttl_ms, 24ULL * 3600000);
	ck_assert_uint_eq(q->ack_timeout_ms, 300000);
	ck_assert_uint_eq(q->max_attempts, 5);
	ck_assert_str_eq(q->dead_letter, "jobs.failed");
	/* nothing given: every default */
	q = &cfg.queues[1];
	ck_assert_str_eq(q->name, "jobs.failed");
	ck_assert_uint_eq(q->line, 11);
	ck_assert_uint_eq(q->max_length, 0);
	ck_assert_uint_eq(q->max_bytes, 0);
	ck_assert_uint_eq(q->overflow, 1);
	ck_assert_uint_eq(q->message_ttl_ms, 0);
	ck_assert_uint_eq(q->ack_timeout_ms, 30000);
	ck_assert_uint_eq(q->max_attempts, 0);
	ck_assert_str_eq(q->dead_letter, "");
	q = &cfg.queues[2];
	ck_assert_str_eq(q->name, "orders.eu:high-1_x");
	ck_assert_uint_eq(q->line, 12);
	ck_assert_uint_eq(q->overflow, 1);
	/* [defaults] untouched by the queues */
	ck_assert_uint_eq(cfg.defaults.queue.max_length, 0);
	ck_assert_uint_eq(cfg.defaults.queue.line, 0);
}
END_TEST

/* Ranges at their edges, under both sections. */
static const struct {
	const char *key, *value;
	bool ok;
	uint64_t v; /* or, when !ok, the needle below */
	const char *needle;
} queue_values[] = {
	{ "max_length", "0", true, 0, NULL },
	{ "max_length", "4294967295", true, 4294967295u, NULL },
	{ "max_length", "4294967296", false, 0,
	  "bad number '4294967296' for max_length (write a whole number "
	  "from 0 to 4294967295)" },
	{ "max_length", "10K", false, 0, "bad number '10K'" },
	{ "max_bytes", "0", true, 0, NULL },
	{ "max_bytes", "16G", true, 16ULL << 30, NULL },
	{ "max_bytes", "18446744073709551615", true, UINT64_MAX, NULL },
	{ "max_bytes", "1.5G", false, 0, "bad size '1.5G' for max_bytes" },
	{ "overflow", "reject", true, 1, NULL },
	{ "overflow", "drop_head", true, 2, NULL },
	{ "overflow", "Drop_Head", true, 2, NULL },
	{ "overflow", "drop", false, 0,
	  "bad value 'drop' for overflow (write reject or drop_head)" },
	{ "overflow", "", false, 0, "bad value '' for overflow" },
	{ "overflow", "1", false, 0, "bad value '1' for overflow" },
	{ "message_ttl", "0", true, 0, NULL },
	{ "message_ttl", "4294967295ms", true, 4294967295u, NULL },
	{ "message_ttl", "1193h", true, 1193ULL * 3600000, NULL },
	{ "message_ttl", "4294967296ms", false, 0,
	  "bad duration '4294967296ms' for message_ttl (write 0ms to "
	  "4294967295ms, about 49 days)" },
	{ "message_ttl", "1194h", false, 0,
	  "bad duration '1194h' for message_ttl (write 0ms to 4294967295ms" },
	{ "message_ttl", "60", false, 0,
	  "bad duration '60' for message_ttl (write 60s, 60000ms" },
	{ "ack_timeout", "0", true, 0, NULL },
	{ "ack_timeout", "100ms", true, 100, NULL },
	{ "ack_timeout", "4294967295ms", true, 4294967295u, NULL },
	{ "ack_timeout", "50000h", false, 0,
	  "bad duration '50000h' for ack_timeout (write 0ms to 4294967295ms" },
	{ "max_attempts", "0", true, 0, NULL },
	{ "max_attempts", "65535", true, 65535, NULL },
	{ "max_attempts", "70000", false, 0,
	  "bad number '70000' for max_attempts (write a whole number from 0 "
	  "to 65535)" },
	{ "max_attempts", "65536", false, 0, "bad number '65536'" },
	{ "max_attempts", "-1", false, 0, "bad number '-1'" },
};

static uint64_t queue_value(const struct mqd_queue_conf *q, const char *key)
{
	if (strcmp(key, "max_length") == 0)
		return q->max_length;
	if (strcmp(key, "max_bytes") == 0)
		return q->max_bytes;
	if (strcmp(key, "overflow") == 0)
		return q->overflow;
	if (strcmp(key, "message_ttl") == 0)
		return q->message_ttl_ms;
	if (strcmp(key, "ack_timeout") == 0)
		return q->ack_timeout_ms;
	ck_assert_str_eq(key, "max_attempts");
	return q->max_attempts;
}

START_TEST(test_queue_values)
{
	static const char *const sections[] = { "defaults", "queue q" };
	size_t i;

	for (i = 0; i < ARRAY_LEN(sections); i++) {
		const struct mqd_queue_conf *q;

		if (!queue_values[_i].ok) {
			load_key_err(sections[i], queue_values[_i].key,
			             queue_values[_i].value,
			             queue_values[_i].needle);
			continue;
		}
		load_key(sections[i], queue_values[_i].key,
		         queue_values[_i].value);
		q = i == 0 ? &cfg.defaults.queue : &cfg.queues[0];
		ck_assert_uint_eq(queue_value(q, queue_values[_i].key),
		                  queue_values[_i].v);
	}
}
END_TEST

START_TEST(test_queue_dead_letter_values)
{
	load_key("queue a", "dead_letter", "b");
	ck_assert_str_eq(cfg.queues[0].dead_letter, "b");
	load_key("queue a", "dead_letter", "");
	ck_assert_str_eq(cfg.queues[0].dead_letter, "");
	load_key("defaults", "dead_letter", "dead.letters:1");
	ck_assert_str_eq(cfg.defaults.queue.dead_letter, "dead.letters:1");
	load_key_err("queue a", "dead_letter", "b c",
	             "bad queue name 'b c' for dead_letter (write 1 to 255 "
	             "characters of A-Z a-z 0-9 . _ - :, or nothing for none)");
	load_key_err("defaults", "dead_letter", "a/b", "bad queue name 'a/b'");
	load_key_err("queue a", "dead_letter", "a",
	             "dead_letter may not name the queue itself ('a')");
}
END_TEST

/* What a section leaves out comes from [defaults], before or after it. */
START_TEST(test_queue_inherits_defaults)
{
	static const char *const texts[] = {
		"[queue a]\nmax_length = 5\n[queue b]\nmax_attempts = 0\n"
		"[defaults]\nmax_length = 10\nmax_bytes = 1M\n"
		"overflow = drop_head\nmessage_ttl = 1m\nack_timeout = 0\n"
		"max_attempts = 3\ndead_letter = dlq\n",
		"[defaults]\nmax_length = 10\nmax_bytes = 1M\n"
		"overflow = drop_head\nmessage_ttl = 1m\nack_timeout = 0\n"
		"max_attempts = 3\ndead_letter = dlq\n"
		"[queue a]\nmax_length = 5\n[queue b]\nmax_attempts = 0\n",
		"[queue a]\nmax_length = 5\n"
		"[defaults]\nmax_length = 10\nmax_bytes = 1M\n"
		"overflow = drop_head\nmessage_ttl = 1m\nack_timeout = 0\n"
		"max_attempts = 3\ndead_letter = dlq\n"
		"[queue b]\nmax_attempts = 0\n",
	};
	const struct mqd_queue_conf *a, *b;

	load_ok(texts[_i]);
	ck_assert_uint_eq(cfg.nqueues, 2);
	a = queue_named("a");
	b = queue_named("b");
	ck_assert_uint_eq(a->max_length, 5);      /* its own */
	ck_assert_uint_eq(a->max_bytes, 1 << 20); /* the rest inherited */
	ck_assert_uint_eq(a->overflow, 2);
	ck_assert_uint_eq(a->message_ttl_ms, 60000);
	ck_assert_uint_eq(a->ack_timeout_ms, 0);
	ck_assert_uint_eq(a->max_attempts, 3);
	ck_assert_str_eq(a->dead_letter, "dlq");
	ck_assert_uint_eq(b->max_length, 10);
	ck_assert_uint_eq(b->max_attempts, 0); /* given: 0, not the default */
	ck_assert_str_eq(b->dead_letter, "dlq");
	/* [defaults] keeps its own line; the queues theirs */
	ck_assert_uint_ne(cfg.defaults.queue.line, 0);
	ck_assert_uint_ne(a->line, b->line);
}
END_TEST

/* Giving a key its default value still counts as giving it. */
START_TEST(test_queue_given_default_value_wins)
{
	load_ok("[queue a]\nack_timeout = 30s\noverflow = reject\n"
	        "dead_letter =\n"
	        "[defaults]\nack_timeout = 1s\noverflow = drop_head\n"
	        "dead_letter = a\n");
	ck_assert_uint_eq(cfg.queues[0].ack_timeout_ms, 30000);
	ck_assert_uint_eq(cfg.queues[0].overflow, 1);
	ck_assert_str_eq(cfg.queues[0].dead_letter, "");
}
END_TEST

static const struct {
	const char *text;
	int line;
	const char *needle;
} queue_bad[] = {
	/* names */
	{ "[server]\n[queue a b]\n", 2,
	  "bad queue name 'a b' (write 1 to 255 characters of A-Z a-z 0-9 "
	  ". _ - :)" },
	{ "[queue jobs/1]\n", 1, "bad queue name 'jobs/1'" },
	{ "[queue \xc3\xa9t\xc3\xa9]\n", 1, "bad queue name" },
	{ "[queue *]\n", 1, "bad queue name '*'" },
	{ "[queue]\n", 1, "section [queue] needs a name" },
	{ "[queue ]\n", 1, "section [queue] needs a name" },
	{ "[Queue a]\n", 1, "unknown section [Queue a]" },
	/* repeated */
	{ "[queue a]\n[queue b]\nmax_length = 1\n\n[queue a]\n", 5,
	  "repeated section [queue a] (first at line 1)" },
	{ "[queue a]\n[queue  a ]\n", 2, "repeated section [queue a]" },
	{ "[queue a]\nmax_length = 1\nmax_length = 2\n", 3,
	  "repeated key 'max_length' in [queue a] (first at line 2)" },
	/* keys */
	{ "[queue a]\nprefetch = 10\n", 2,
	  "unknown key 'prefetch' in [queue a]" },
	{ "[queue a]\nmax_memory = 1G\n", 2, "unknown key 'max_memory'" },
	{ "[queue a]\nname = b\n", 2, "unknown key 'name'" },
	{ "[server]\nmax_length = 1\n", 2,
	  "unknown key 'max_length' in [server]" },
	{ "[queue a]\n\noverflow = block\n", 3,
	  "bad value 'block' for overflow" },
	{ "[queue a]\nmessage_ttl = 1200h\n", 2,
	  "bad duration '1200h' for message_ttl" },
	{ "[defaults]\nack_timeout = 2000h\n", 2,
	  "bad duration '2000h' for ack_timeout" },
	{ "[queue a]\nmax_attempts = 70000\n", 2,
	  "bad number '70000' for max_attempts" },
	{ "[defaults]\nmax_attempts = 70000\n", 2,
	  "bad number '70000' for max_attempts" },
	/* dead-lettering to itself, at the key */
	{ "[queue a]\nmax_length = 1\ndead_letter = a\n", 3,
	  "dead_letter may not name the queue itself ('a')" },
	{ "[queue a]\ndead_letter = A\n[queue A]\ndead_letter = a\n", 3,
	  "dead-letter chain loops: A -> a -> A" },
	/* loops, found after the whole file, at the section closing them */
	{ "[queue a]\ndead_letter = b\n\n[queue b]\ndead_letter = a\n", 4,
	  "dead-letter chain loops: b -> a -> b" },
	{ "[queue b]\ndead_letter = a\n[queue a]\ndead_letter = b\n", 3,
	  "dead-letter chain loops: a -> b -> a" },
	{ "[queue a]\ndead_letter = b\n[queue b]\ndead_letter = c\n"
	  "[queue c]\ndead_letter = a\n", 5,
	  "dead-letter chain loops: c -> a -> b -> c" },
	{ "[queue c]\ndead_letter = a\n[queue b]\ndead_letter = c\n"
	  "[queue a]\ndead_letter = b\n", 5,
	  "dead-letter chain loops: a -> b -> c -> a" },
	/* a tail leading into the loop is not part of it */
	{ "[queue x]\ndead_letter = a\n[queue a]\ndead_letter = b\n"
	  "[queue b]\ndead_letter = a\n[queue y]\ndead_letter = x\n", 5,
	  "dead-letter chain loops: b -> a -> b" },
	/* of two loops, the one closed first in the file */
	{ "[queue p]\ndead_letter = q\n[queue a]\ndead_letter = b\n"
	  "[queue b]\ndead_letter = a\n[queue q]\ndead_letter = p\n", 5,
	  "dead-letter chain loops: b -> a -> b" },
	/* through [defaults], wherever it stands */
	{ "[defaults]\ndead_letter = dlq\n[queue jobs]\n[queue dlq]\n", 4,
	  "dead-letter chain loops: dlq -> dlq ([queue dlq] takes its "
	  "dead_letter from [defaults])" },
	{ "[queue dlq]\nmax_length = 9\n[defaults]\ndead_letter = dlq\n", 1,
	  "dead-letter chain loops: dlq -> dlq" },
	{ "[queue a]\ndead_letter = b\n[queue b]\n[defaults]\n"
	  "dead_letter = a\n", 3,
	  "dead-letter chain loops: b -> a -> b ([queue b] takes its "
	  "dead_letter from [defaults])" },
	{ "[queue a]\n[queue b]\ndead_letter = c\n[queue c]\n[defaults]\n"
	  "dead_letter = b\n", 4,
	  "dead-letter chain loops: c -> b -> c ([queue c] takes" },
	/* the loop check comes after every other error */
	{ "[queue a]\ndead_letter = b\n[queue b]\ndead_letter = a\n"
	  "[queue c]\nbogus = 1\n", 6, "unknown key 'bogus'" },
};

START_TEST(test_queue_bad)
{
	load_err(queue_bad[_i].text, queue_bad[_i].line, queue_bad[_i].needle);
}
END_TEST

/* Chains that end are fine, whether or not their end is configured. */
START_TEST(test_queue_chains_that_end)
{
	load_ok("[queue a]\ndead_letter = b\n[queue b]\ndead_letter = c\n"
	        "[queue c]\n[queue d]\ndead_letter = b\n"
	        "[queue e]\ndead_letter = elsewhere\n");
	ck_assert_uint_eq(cfg.nqueues, 5);
	/* [defaults] naming a queue that is not configured: no loop here */
	load_ok("[defaults]\ndead_letter = dlq\n[queue jobs]\n");
	ck_assert_str_eq(cfg.queues[0].dead_letter, "dlq");
	/* the dead-letter queue opting out of [defaults] */
	load_ok("[defaults]\ndead_letter = dlq\n[queue jobs]\n"
	        "[queue dlq]\ndead_letter =\n");
	ck_assert_str_eq(queue_named("jobs")->dead_letter, "dlq");
	ck_assert_str_eq(queue_named("dlq")->dead_letter, "");
	/* or sending on to another */
	load_ok("[defaults]\ndead_letter = dlq\n[queue dlq]\n"
	        "dead_letter = dlq2\n[queue dlq2]\ndead_letter =\n");
	ck_assert_uint_eq(cfg.nqueues, 2);
}
END_TEST

/* Many queues: the name index grows, and still finds repeats and loops. */
START_TEST(test_queue_many)
{
	enum { N = 3000 };
	size_t cap = (size_t)N * 64 + 256, n = 0, i;
	char *text = malloc(cap);

	ck_assert_ptr_ne(text, NULL);
	for (i = 0; i < N; i++)
		n += (size_t)snprintf(text + n, cap - n, "[queue q%zu]\n"
		                      "dead_letter = q%zu\n", i, i + 1);
	load_ok(text); /* q2999 -> q3000, not configured */
	ck_assert_uint_eq(cfg.nqueues, N);
	for (i = 0; i < N; i++) {
		char name[32];

		snprintf(name, sizeof(name), "q%zu", i);
		ck_assert_str_eq(cfg.queues[i].name, name);
		ck_assert_uint_eq(cfg.queues[i].line, 2 * i + 1);
	}
	/* close the loop at the far end: q3000 -> q0 */
	snprintf(text + n, cap - n, "[queue q%d]\ndead_letter = q0\n", N);
	load_err(text, 2 * N + 1, "dead-letter chain loops: q3000 -> q0 -> q1");
	/* and repeat the first name at the end */
	snprintf(text + n, cap - n, "[queue q0]\n");
	load_err(text, 2 * N + 1, "repeated section [queue q0] (first at "
	         "line 1)");
	free(text);
}
END_TEST

/* ------------------------------------------------------------ paths */

/* Relative log_file, pidfile and control_socket in a string: against the
 * current directory; absolute ones, "" and syslog as they are. */
START_TEST(test_relative_paths_string)
{
	char want[PATH_MAX + 64];

	make_tmpdir();
	ck_assert_int_eq(chdir(tmpdir), 0);
	load_ok("[server]\nlog_file = logs/mqd.log\npidfile = ./mqd.pid\n"
	        "control_socket = run//mqd.sock\n");
	cwd_join(want, sizeof(want), "logs/mqd.log");
	ck_assert_str_eq(cfg.log_file, want);
	cwd_join(want, sizeof(want), "mqd.pid");
	ck_assert_str_eq(cfg.pidfile, want);
	cwd_join(want, sizeof(want), "run/mqd.sock");
	ck_assert_str_eq(cfg.control_socket, want);
	/* ".." is kept: the directory before it may be a symbolic link */
	load_key("server", "log_file", "../x/./y/../z.log");
	cwd_join(want, sizeof(want), "../x/y/../z.log");
	ck_assert_str_eq(cfg.log_file, want);
	load_key("server", "log_file", "syslog");
	ck_assert_str_eq(cfg.log_file, "syslog");
	load_key("server", "log_file", "./syslog");
	cwd_join(want, sizeof(want), "syslog");
	ck_assert_str_eq(cfg.log_file, want);
	load_key("server", "pidfile", "syslog"); /* only log_file's word */
	ck_assert_str_eq(cfg.pidfile, want);
	load_key("server", "log_file", "");
	ck_assert_str_eq(cfg.log_file, "");
	load_key("server", "pidfile", "/run/a//b.pid");
	ck_assert_str_eq(cfg.pidfile, "/run/a//b.pid"); /* absolute: as is */
	/* the default is absolute */
	load_ok("");
	ck_assert_str_eq(cfg.control_socket, "/run/mqd/mqd.sock");
	ck_assert_int_eq(chdir("/"), 0);
	load_key("server", "control_socket", "s.sock");
	ck_assert_str_eq(cfg.control_socket, "/s.sock");
	rmdir(tmpdir);
}
END_TEST

/* In a file: against the file's directory, however the file was named,
 * and wherever we are. */
START_TEST(test_relative_paths_file)
{
	static const char text[] = "[server]\nlog_file = mqd.log\n"
	                           "pidfile = run/mqd.pid\n"
	                           "control_socket = ./mqd.sock\n";
	char sub[300], path[400], want[PATH_MAX + 64], real[PATH_MAX];

	make_tmpdir();
	snprintf(sub, sizeof(sub), "%s/etc", tmpdir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	snprintf(path, sizeof(path), "%s/mqd.conf", sub);
	write_file(path, text, sizeof(text) - 1);
	ck_assert_int_eq(chdir("/"), 0);

	/* by its absolute path */
	ck_assert_int_eq(mqd_config_load(&cfg, path, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/mqd.log", sub);
	ck_assert_str_eq(cfg.log_file, want);
	snprintf(want, sizeof(want), "%s/run/mqd.pid", sub);
	ck_assert_str_eq(cfg.pidfile, want);
	snprintf(want, sizeof(want), "%s/mqd.sock", sub);
	ck_assert_str_eq(cfg.control_socket, want);
	ck_assert_str_eq(cfg.path, path); /* as given */

	/* by a relative path, from its parent: still absolute */
	ck_assert_int_eq(chdir(tmpdir), 0);
	ck_assert_ptr_ne(getcwd(real, sizeof(real)), NULL);
	ck_assert_int_eq(mqd_config_load(&cfg, "./etc/mqd.conf", err,
	                                 sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/etc/mqd.sock", real);
	ck_assert_str_eq(cfg.control_socket, want);
	ck_assert_str_eq(cfg.path, "./etc/mqd.conf");

	/* by its bare name, from its own directory */
	ck_assert_int_eq(chdir("etc"), 0);
	ck_assert_int_eq(mqd_config_load(&cfg, "mqd.conf", err, sizeof(err)),
	                 0);
	ck_assert_str_eq(cfg.control_socket, want);
	snprintf(want, sizeof(want), "%s/etc/mqd.log", real);
	ck_assert_str_eq(cfg.log_file, want);

	/* through "..", kept as written */
	ck_assert_int_eq(chdir("/"), 0);
	snprintf(path, sizeof(path), "%s/etc/../etc/mqd.conf", tmpdir);
	ck_assert_int_eq(mqd_config_load(&cfg, path, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/etc/../etc/mqd.sock", tmpdir);
	ck_assert_str_eq(cfg.control_socket, want);

	snprintf(path, sizeof(path), "%s/mqd.conf", sub);
	unlink(path);
	rmdir(sub);
	rmdir(tmpdir);
}
END_TEST

/* control_socket must fit sun_path once made absolute, at its line. */
START_TEST(test_relative_control_socket_too_long)
{
	char dir[PATH_MAX], name[200], text[600], want[PATH_MAX + 256];
	size_t len;

	make_tmpdir();
	ck_assert_int_eq(chdir(tmpdir), 0);
	ck_assert_ptr_ne(getcwd(dir, sizeof(dir)), NULL);
	len = strlen(dir);
	ck_assert_uint_lt(len, 100); /* room for the test */
	/* exactly 107 bytes: dir + "/" + name */
	memset(name, 'n', sizeof(name));
	name[106 - len] = '\0';
	load_key("server", "control_socket", name);
	ck_assert_uint_eq(strlen(cfg.control_socket), 107);
	snprintf(want, sizeof(want), "%s/%s", dir, name);
	ck_assert_str_eq(cfg.control_socket, want);
	/* one more */
	strcat(name, "n");
	snprintf(text, sizeof(text), "[server]\nworkers = 1\n\n"
	         "control_socket = %s\n", name);
	load_err(text, 4, "control_socket is too long once made absolute "
	         "(108 bytes; at most 107): /");
	/* a short relative name from a deep directory */
	snprintf(text, sizeof(text), "%s/%s", tmpdir, name);
	ck_assert_int_eq(mkdir(text, 0700), 0);
	ck_assert_int_eq(chdir(text), 0);
	load_err("[server]\ncontrol_socket = s\n", 2,
	         "control_socket is too long once made absolute");
	ck_assert_int_eq(chdir("/"), 0);
	rmdir(text);
	rmdir(tmpdir);
}
END_TEST

/* log_file and pidfile have room for 4095 bytes, made absolute; from a
 * directory too deep for getcwd, a relative path is an error at its line. */
START_TEST(test_relative_path_too_long)
{
	char comp[251], cwd[PATH_MAX], val[101];
	int depth = 0, i;

	memset(comp, 'd', 250);
	comp[250] = '\0';
	memset(val, 'f', 100);
	val[100] = '\0';
	make_tmpdir();
	ck_assert_int_eq(chdir(tmpdir), 0);
	while (getcwd(cwd, sizeof(cwd)) != NULL && strlen(cwd) < 3900) {
		ck_assert_int_eq(mkdir(comp, 0700), 0);
		ck_assert_int_eq(chdir(comp), 0);
		depth++;
	}
	load_key_err("server", "log_file", val, "log_file is too long once "
	             "made absolute (");
	ck_assert_msg(strstr(err, "; at most 4095): ") != NULL, "%s", err);
	load_key("server", "pidfile", "p");
	ck_assert_uint_eq(strlen(cfg.pidfile), strlen(cwd) + 2);
	/* deeper than PATH_MAX */
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(mkdir(comp, 0700), 0);
		ck_assert_int_eq(chdir(comp), 0);
		depth++;
	}
	load_err("[server]\npidfile = /abs.pid\n\nlog_file = x.log\n", 4,
	         "cannot find the current directory for a relative path");
	load_key("server", "control_socket", "/abs.sock");
	for (; depth > 0; depth--) {
		ck_assert_int_eq(chdir(".."), 0);
		ck_assert_int_eq(rmdir(comp), 0);
	}
	ck_assert_int_eq(chdir("/"), 0);
	rmdir(tmpdir);
}
END_TEST

/* ------------------------------------------------------------ syntax */

START_TEST(test_syntax_accepted)
{
	load_ok("\xEF\xBB\xBF# a byte order mark, then a comment\r\n"
	        "; another comment\r\n"
	        "\r\n"
	        "  [server]   # header comment\r\n"
	        "\tworkers=3\r\n"
	        "    max_frame   =   2K    ; inline comment\r\n"
	        "log_file = /tmp/a#b\r\n"
	        "[ defaults ] ; spaces inside the brackets\n"
	        "prefetch = 5");
	ck_assert_uint_eq(cfg.workers, 3);
	ck_assert_uint_eq(cfg.max_frame, 2048);
	ck_assert_str_eq(cfg.log_file, "/tmp/a#b");
	ck_assert_uint_eq(cfg.defaults.prefetch, 5);
}
END_TEST

static const struct {
	const char *text;
	int line;
	const char *needle;
} syntax_bad[] = {
	/* unknown keys, in the right place or the wrong one */
	{ "[server]\nworkers = 1\n\nfoo = 1\n", 4,
	  "unknown key 'foo' in [server]" },
	{ "[defaults]\nworkers = 1\n", 2, "unknown key 'workers' in [defaults]" },
	{ "[server]\nprefetch = 1\n", 2, "unknown key 'prefetch' in [server]" },
	{ "[server]\nWorkers = 1\n", 2, "unknown key 'Workers' in [server]" },
	{ "[server]\nidle_timeout_ms = 1s\n", 2,
	  "unknown key 'idle_timeout_ms'" },
	/* unknown sections, with keys, without, at the end of the file */
	{ "[server]\n[bogus]\nx = 1\n", 2, "unknown section [bogus]" },
	{ "[server]\nworkers = 2\n[topic jobs]\n", 3,
	  "unknown section [topic jobs]" },
	{ "[server]\n[defaults jobs]\n", 2, "unknown section [defaults jobs]" },
	{ "[tls]\n", 1, "unknown section [tls]" },
	{ "# users\n[users]", 2, "unknown section [users]" },
	{ "[Server]\n", 1, "unknown section [Server]" },
	{ "[server extra]\n", 1, "unknown section [server extra]" },
	{ "[]\n", 1, "unknown section []" },
	/* keys before any section */
	{ "# comment\n\nlisten = 127.0.0.1:1\n[server]\n", 3,
	  "key 'listen' outside any section" },
	/* repetition */
	{ "[server]\nworkers = 1\n\nworkers = 1\n", 4,
	  "repeated key 'workers' in [server] (first at line 2)" },
	{ "[server]\nworkers = 1\n  workers = 2\n", 3,
	  "repeated key 'workers'" }, /* indented is not a continuation */
	{ "[server]\n[defaults]\n[server]\n", 3,
	  "repeated section [server] (first at line 1)" },
	/* malformed lines */
	{ "[server\n", 1, "section header without ']'" },
	{ "[server] workers = 1\n", 1, "text after section header" },
	{ "[server]]\n", 1, "text after section header" },
	{ "[server]\nworkers 4\n", 2,
	  "expected 'key = value', '[section]' or a comment" },
	{ "[server]\nworkers: 4\n", 2, "expected 'key = value'" },
	{ "[server]\n= 4\n", 2, "expected 'key = value'" },
	{ "[server]\nwork ers = 4\n", 2, "expected 'key = value'" },
	/* bad values, one per type, at their line */
	{ "[server]\nmax_frame = 1X\n", 2, "bad size '1X' for max_frame" },
	{ "[server]\n\n\nidle_timeout = 30\n", 4,
	  "bad duration '30' for idle_timeout" },
	{ "[server]\nauto_create = maybe\n", 2, "bad bool 'maybe'" },
	{ "[server]\nworkers = many\n", 2, "bad number 'many' for workers" },
	{ "[server]\nlog_level = loud\n", 2, "bad log level 'loud'" },
	{ "[server]\nlisten = localhost\n", 2, "missing port" },
	{ "[server]\nworkers = 4 # four\n", 2, "bad number '4 # four'" },
	/* the first error wins; CR LF does not shift line numbers */
	{ "[server]\nworkers = x\nfoo = 1\n[bad]\n", 2, "bad number 'x'" },
	{ "[server]\r\n# c\r\nfoo = 1\r\n", 3, "unknown key 'foo'" },
	{ "[server]\nlog_file = "
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "\nworkers = 1\n", 2, "line too long (at most 197 characters)" },
};

START_TEST(test_syntax_bad)
{
	load_err(syntax_bad[_i].text, syntax_bad[_i].line,
	         syntax_bad[_i].needle);
}
END_TEST

START_TEST(test_error_keeps_old_config)
{
	static const char *const bad[] = {
		"[server]\nworkers = 3\nlisten = c:3\nbogus = 1\n",
		/* errors after queues were made: the loader frees them */
		"[queue x]\n[queue y]\nmax_length = 1\n[queue x]\n",
		"[queue x]\ndead_letter = y\n[queue y]\ndead_letter = x\n",
		"[server]\ncontrol_socket = s.sock\n[queue x]\n[queue !]\n",
	};
	struct mqd_config saved;
	size_t i;

	load_ok("[server]\nworkers = 9\nlisten = a:1, b:2\n"
	        "[queue keep]\nmax_length = 4\n");
	memcpy(&saved, &cfg, sizeof(cfg));
	for (i = 0; i < ARRAY_LEN(bad); i++) {
		ck_assert_int_eq(mqd_config_load_string(&cfg, bad[i], NAME, err,
		                                        sizeof(err)), -1);
		ck_assert(memcmp(&saved, &cfg, sizeof(cfg)) == 0);
	}
	/* The queues array is still the caller's, and whole. */
	ck_assert_uint_eq(cfg.nqueues, 1);
	ck_assert_str_eq(cfg.queues[0].name, "keep");
	ck_assert_uint_eq(cfg.queues[0].max_length, 4);
}
END_TEST

/* A loaded config owns its queues until mqd_config_free, which may be
 * called again, and after which the struct can be loaded anew. */
START_TEST(test_config_free)
{
	struct mqd_config c;

	mqd_config_defaults(&c);
	mqd_config_free(&c); /* nothing to free */
	ck_assert_int_eq(mqd_config_load_string(&c, "[queue a]\n[queue b]\n",
	                                        NAME, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.nqueues, 2);
	ck_assert_ptr_ne(c.queues, NULL);
	mqd_config_free(&c);
	ck_assert_uint_eq(c.nqueues, 0);
	ck_assert_ptr_eq(c.queues, NULL);
	mqd_config_free(&c);
	ck_assert_int_eq(mqd_config_load_string(&c, "[queue c]\n", NAME, err,
	                                        sizeof(err)), 0);
	ck_assert_str_eq(c.queues[0].name, "c");
	mqd_config_free(&c);
	/* No queues: nothing allocated. */
	ck_assert_int_eq(mqd_config_load_string(&c, "[defaults]\n", NAME, err,
	                                        sizeof(err)), 0);
	ck_assert_ptr_eq(c.queues, NULL);
}
END_TEST

START_TEST(test_small_error_buffer)
{
	char small[12];

	memset(small, 'x', sizeof(small));
	ck_assert_int_eq(mqd_config_load_string(&cfg, "[nope]\n", NAME, small,
	                                        sizeof(small)), -1);
	ck_assert_str_eq(small, NAME ":1: u");
	ck_assert_int_eq(mqd_config_load_string(&cfg, "[nope]\n", NAME, NULL, 0),
	                 -1);
	ck_assert_int_eq(mqd_config_load(&cfg, "/nonexistent/x", small, 1), -1);
	ck_assert_str_eq(small, "");
}
END_TEST

/* ------------------------------------------------------------ files */

START_TEST(test_file_cannot_open)
{
	ck_assert_int_eq(mqd_config_load(&cfg, "/nonexistent-mqd-dir/mqd.conf",
	                                 err, sizeof(err)), -1);
	ck_assert_str_eq(err, "/nonexistent-mqd-dir/mqd.conf:0: cannot open: "
	                 "No such file or directory");
}
END_TEST

START_TEST(test_file_is_directory)
{
	make_tmpdir();
	ck_assert_int_eq(mqd_config_load(&cfg, tmpdir, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, ":0: cannot") != NULL, "%s", err);
	rmdir(tmpdir);
}
END_TEST

START_TEST(test_file_load)
{
	char path[300], want[400];
	static const char good[] = "[server]\nworkers = 2\n";
	static const char bad[] = "[server]\nworkers = 2\n\n\nmax_frame = 1\n";
	static const char nul[] = "[server]\nwork\0ers = 2\n";

	make_tmpdir();
	snprintf(path, sizeof(path), "%s/mqd.conf", tmpdir);

	write_file(path, good, sizeof(good) - 1);
	ck_assert_int_eq(mqd_config_load(&cfg, path, err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.workers, 2);
	ck_assert_str_eq(cfg.path, path);

	write_file(path, bad, sizeof(bad) - 1);
	ck_assert_int_eq(mqd_config_load(&cfg, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:5: bad size '1'", path);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);

	write_file(path, nul, sizeof(nul) - 1);
	ck_assert_int_eq(mqd_config_load(&cfg, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
	ck_assert_str_eq(err, want);

	unlink(path);
	rmdir(tmpdir);
}
END_TEST

START_TEST(test_file_too_large)
{
	char path[300];
	char *big = malloc(1024 * 1024 + 1);

	ck_assert_ptr_ne(big, NULL);
	memset(big, '\n', 1024 * 1024 + 1);
	make_tmpdir();
	snprintf(path, sizeof(path), "%s/big.conf", tmpdir);
	write_file(path, big, 1024 * 1024);
	ck_assert_int_eq(mqd_config_load(&cfg, path, err, sizeof(err)), 0);
	write_file(path, big, 1024 * 1024 + 1);
	ck_assert_int_eq(mqd_config_load(&cfg, path, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, ":0: larger than 1048576 bytes") != NULL,
	              "%s", err);
	unlink(path);
	rmdir(tmpdir);
	free(big);
}
END_TEST

/* ------------------------------------------------------------ helpers */

START_TEST(test_parse_size_direct)
{
	uint64_t v;

	ck_assert_int_eq(mqd_parse_size("0", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(mqd_parse_size("2G", &v), 0);
	ck_assert_uint_eq(v, 2ULL << 30);
	ck_assert_int_eq(mqd_parse_size("16777215G", &v), 0);
	ck_assert_int_eq(mqd_parse_size("18446744073709551615", &v), 0);
	ck_assert_uint_eq(v, UINT64_MAX);
	ck_assert_int_eq(mqd_parse_size("18446744073709551616", &v), -1);
	ck_assert_int_eq(mqd_parse_size("17179869184G", &v), -1); /* 2^64 */
	ck_assert_int_eq(mqd_parse_size("", &v), -1);
	ck_assert_int_eq(mqd_parse_size(NULL, &v), -1);
	ck_assert_int_eq(mqd_parse_size(" 1", &v), -1);
}
END_TEST

START_TEST(test_parse_duration_direct)
{
	uint64_t v;

	ck_assert_int_eq(mqd_parse_duration("0", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(mqd_parse_duration("0ms", &v), 0);
	ck_assert_int_eq(mqd_parse_duration("1h", &v), 0);
	ck_assert_uint_eq(v, 3600000);
	ck_assert_int_eq(mqd_parse_duration("30", &v), -1);
	ck_assert_int_eq(mqd_parse_duration("", &v), -1);
	ck_assert_int_eq(mqd_parse_duration(NULL, &v), -1);
	ck_assert_int_eq(mqd_parse_duration("5124095576030431h", &v), -1);
}
END_TEST

START_TEST(test_parse_bool_direct)
{
	bool b = false;

	ck_assert_int_eq(mqd_parse_bool("on", &b), 0);
	ck_assert(b);
	ck_assert_int_eq(mqd_parse_bool("FALSE", &b), 0);
	ck_assert(!b);
	b = true;
	ck_assert_int_eq(mqd_parse_bool("", &b), -1);
	ck_assert_int_eq(mqd_parse_bool(NULL, &b), -1);
	ck_assert_int_eq(mqd_parse_bool("yess", &b), -1);
	ck_assert(b); /* untouched on error */
}
END_TEST

START_TEST(test_parse_listen_direct)
{
	struct mqd_listen_addr a[4];
	size_t n = 99;

	memset(a, 0, sizeof(a));
	ck_assert_int_eq(mqd_parse_listen("[::1]:1, h:2", a, 4, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(a[0].host, "::1");
	ck_assert_uint_eq(a[1].port, 2);
	/* max is honoured, and a failure leaves out and n alone */
	n = 99;
	ck_assert_int_eq(mqd_parse_listen("x:1, y:2", a, 1, &n), -1);
	ck_assert_uint_eq(n, 99);
	ck_assert_str_eq(a[0].host, "::1");
	ck_assert_int_eq(mqd_parse_listen("x:1", a, 1, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(mqd_parse_listen(NULL, a, 4, &n), -1);
	ck_assert_int_eq(mqd_parse_listen("x", a, 4, &n), -1);
}
END_TEST

START_TEST(test_parse_log_level_direct)
{
	enum mqd_log_level l = MQD_LOG_ERROR;

	ck_assert_int_eq(mqd_parse_log_level("debug", &l), 0);
	ck_assert_int_eq(l, MQD_LOG_DEBUG);
	ck_assert_int_eq(mqd_parse_log_level("Info", &l), 0);
	ck_assert_int_eq(l, MQD_LOG_INFO);
	ck_assert_int_eq(mqd_parse_log_level("trace", &l), -1);
	ck_assert_int_eq(mqd_parse_log_level(NULL, &l), -1);
	ck_assert_int_eq(l, MQD_LOG_INFO);
	ck_assert_str_eq(mqd_log_level_name(MQD_LOG_ERROR), "error");
	ck_assert_str_eq(mqd_log_level_name(MQD_LOG_WARN), "warn");
	ck_assert_str_eq(mqd_log_level_name(MQD_LOG_INFO), "info");
	ck_assert_str_eq(mqd_log_level_name(MQD_LOG_DEBUG), "debug");
	ck_assert_str_eq(mqd_log_level_name((enum mqd_log_level)42), "?");
}
END_TEST

/* ------------------------------------------------------------ docs */

/* Is there a line "key = ..." or "#key = ..." under [section], or under
 * [section NAME] or "#[section NAME]" (an example) for a named section? */
static bool conf_documents(const char *text, const char *section,
                           const char *key)
{
	char cur[64] = "";
	const char *line = text;

	while (*line != '\0') {
		const char *end = strchr(line, '\n'), *s = line;
		size_t klen = strlen(key);

		if (end == NULL)
			end = line + strlen(line);
		if (s[0] == '[' || (s[0] == '#' && s[1] == '[')) {
			const char *lb = strchr(s, '[');
			const char *rb = memchr(s, ']', (size_t)(end - s));
			size_t n;

			if (rb != NULL) {
				n = strcspn(lb + 1, " ]");
				snprintf(cur, sizeof(cur), "%.*s", (int)n,
				         lb + 1);
			}
		} else if (strcmp(cur, section) == 0) {
			if (*s == '#')
				s++;
			if (strncmp(s, key, klen) == 0) {
				s += klen;
				while (*s == ' ')
					s++;
				if (*s == '=')
					return true;
			}
		}
		line = *end != '\0' ? end + 1 : end;
	}
	return false;
}

/* Is there a ".B key" line between ".SS [section]" (or ".SS [section NAME]")
 * and the next heading? */
static bool man_documents(const char *text, const char *section,
                          const char *key)
{
	char head[80], item[80];
	const char *start, *end, *hit, *ss, *sh;

	snprintf(head, sizeof(head), "\n.SS [%s", section);
	snprintf(item, sizeof(item), "\n.B %s\n", key);
	for (start = strstr(text, head); start != NULL;
	     start = strstr(start + 1, head)) {
		char c = start[strlen(head)];

		if (c == ']' || c == ' ')
			break;
	}
	if (start == NULL)
		return false;
	start = strchr(start + 1, '\n');
	if (start == NULL)
		return false;
	ss = strstr(start, "\n.SS ");
	sh = strstr(start, "\n.SH ");
	end = ss == NULL ? sh : sh == NULL ? ss : ss < sh ? ss : sh;
	if (end == NULL)
		end = start + strlen(start);
	hit = strstr(start, item);
	return hit != NULL && hit < end;
}

START_TEST(test_docs_cover_every_key)
{
	char *conf_path = srcpath("conf/mqd.conf");
	char *man_path = srcpath("man/mqd.conf.5");
	char *conf = slurp(conf_path), *man = slurp(man_path);
	const char *const *names;
	size_t n = mqd_config_keys(&names), i;

	for (i = 0; i < n; i++) {
		char section[64];
		const char *dot = strchr(names[i], '.');

		snprintf(section, sizeof(section), "%.*s",
		         (int)(dot - names[i]), names[i]);
		ck_assert_msg(conf_documents(conf, section, dot + 1),
		              "%s: no '%s =' line under [%s]", conf_path,
		              dot + 1, section);
		ck_assert_msg(man_documents(man, section, dot + 1),
		              "%s: no '.B %s' under '.SS [%s]'", man_path,
		              dot + 1, section);
	}
	free(conf);
	free(man);
	free(conf_path);
	free(man_path);
}
END_TEST

START_TEST(test_sample_conf_loads)
{
	char *path = srcpath("conf/mqd.conf");

	size_t n;

	ck_assert_msg(mqd_config_load(&cfg, path, err, sizeof(err)) == 0,
	              "%s", err);
	/* What quickstart needs; everything else is left at its default. */
	ck_assert_uint_eq(cfg.nlisten, 1);
	ck_assert_str_eq(cfg.listen[0].host, "127.0.0.1");
	ck_assert_uint_eq(cfg.listen[0].port, 7400);
	/* The control socket is next to the file, as an absolute path, so a
	 * user can run it without root. */
	n = strlen(cfg.control_socket);
	ck_assert_int_eq(cfg.control_socket[0], '/');
	ck_assert_msg(n > 14 && strcmp(cfg.control_socket + n - 14,
	                               "/conf/mqd.sock") == 0,
	              "%s", cfg.control_socket);
	ck_assert_uint_eq(cfg.nqueues, 0); /* the example is commented out */
	free(path);
}
END_TEST

/* Uncommenting every "#key = value" line must give the defaults: the
 * values the sample shows are the ones the table has.  The example
 * "#[queue NAME]" comes to life too: it must load, and give one queue. */
START_TEST(test_sample_conf_shows_defaults)
{
	char *path = srcpath("conf/mqd.conf");
	char *text = slurp(path), *out = malloc(strlen(text) + 1);
	const char *s = text;
	char *o = out;
	size_t uncommented = 0;

	ck_assert_ptr_ne(out, NULL);
	while (*s != '\0') {
		bool bol = s == text || s[-1] == '\n';

		if (bol && s[0] == '#' && s[1] >= 'a' && s[1] <= 'z' &&
		    strchr(s, '=') != NULL &&
		    strchr(s, '=') < (strchr(s, '\n') ? strchr(s, '\n')
		                                      : s + strlen(s))) {
			s++;
			uncommented++;
			continue;
		}
		if (bol && s[0] == '#' && s[1] == '[') {
			s++;
			continue;
		}
		*o++ = *s++;
	}
	*o = '\0';
	ck_assert_uint_ge(uncommented, 5);
	load_ok(out);
	/* The sample sets control_socket on purpose (quickstart). */
	ck_assert_msg(strstr(cfg.control_socket, "/mqd.sock") != NULL, "%s",
	              cfg.control_socket);
	strcpy(cfg.control_socket, "/run/mqd/mqd.sock");
	ck_assert_uint_eq(cfg.nqueues, 1);
	ck_assert_str_eq(cfg.queues[0].name, "jobs");
	ck_assert_str_ne(cfg.queues[0].dead_letter, "");
	free_cfg();
	assert_defaults(&cfg);
	free(out);
	free(text);
	free(path);
}
END_TEST

/* ------------------------------------------------------------ log */

static char log_path[300];

static char *log_setup(void)
{
	make_tmpdir();
	snprintf(log_path, sizeof(log_path), "%s/mqd.log", tmpdir);
	return log_path;
}

static void log_teardown(void)
{
	char old[320];

	mqd_log_close();
	snprintf(old, sizeof(old), "%s.1", log_path);
	unlink(old);
	unlink(log_path);
	rmdir(tmpdir);
}

static void assert_line(const char *line, const char *level, const char *msg)
{
	regex_t re;
	char pat[512];
	int rc;

	snprintf(pat, sizeof(pat),
	         "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
	         "\\.[0-9]{3}Z \\[%s\\] %s$", level, msg);
	ck_assert_int_eq(regcomp(&re, pat, REG_EXTENDED | REG_NOSUB), 0);
	rc = regexec(&re, line, 0, NULL, 0);
	regfree(&re);
	ck_assert_msg(rc == 0, "line '%s' does not match '%s'", line, pat);
}

START_TEST(test_log_file_format_and_levels)
{
	char *text, *line, *save = NULL;

	ck_assert_int_eq(mqd_log_open(log_setup(), MQD_LOG_INFO), 0);
	ck_assert_int_eq(mqd_log_get_level(), MQD_LOG_INFO);
	mqd_log_info("listening on %s:%d", "127.0.0.1", 7400);
	mqd_log_debug("not shown %d", 1);
	mqd_log_warn("two\nlines\x1b[31m");
	mqd_log_set_level(MQD_LOG_DEBUG);
	mqd_log_debug("shown %d", 2);
	mqd_log_set_level(MQD_LOG_ERROR);
	mqd_log_warn("not shown either");
	mqd_log_error("trailing newline\n");

	text = slurp(log_path);
	line = strtok_r(text, "\n", &save);
	assert_line(line, "info", "listening on 127\\.0\\.0\\.1:7400");
	line = strtok_r(NULL, "\n", &save);
	assert_line(line, "warn", "two lines\\?\\[31m");
	line = strtok_r(NULL, "\n", &save);
	assert_line(line, "debug", "shown 2");
	line = strtok_r(NULL, "\n", &save);
	assert_line(line, "error", "trailing newline");
	ck_assert_ptr_eq(strtok_r(NULL, "\n", &save), NULL);
	free(text);
	log_teardown();
}
END_TEST

START_TEST(test_log_long_line)
{
	char *big = malloc(10001), *text;
	size_t len;

	ck_assert_ptr_ne(big, NULL);
	memset(big, 'z', 10000);
	big[10000] = '\0';
	ck_assert_int_eq(mqd_log_open(log_setup(), MQD_LOG_INFO), 0);
	mqd_log_info("%s", big);
	text = slurp(log_path);
	len = strlen(text);
	ck_assert_uint_eq(len, strlen("2026-11-26T09:30:00.123Z [info] ") +
	                       10000 + 1);
	ck_assert_int_eq(text[len - 1], '\n');
	ck_assert_int_eq(text[len - 2], 'z');
	free(text);
	free(big);
	log_teardown();
}
END_TEST

START_TEST(test_log_reopen)
{
	char old[320], *text;

	ck_assert_int_eq(mqd_log_open(log_setup(), MQD_LOG_INFO), 0);
	mqd_log_info("before");
	snprintf(old, sizeof(old), "%s.1", log_path);
	ck_assert_int_eq(rename(log_path, old), 0);
	ck_assert_int_eq(mqd_log_reopen(), 0);
	mqd_log_info("after");

	text = slurp(old);
	ck_assert_msg(strstr(text, "] before\n") && !strstr(text, "after"),
	              "%s", text);
	free(text);
	text = slurp(log_path);
	ck_assert_msg(strstr(text, "] after\n") && !strstr(text, "before"),
	              "%s", text);
	free(text);

	/* Opening a second file while one is open keeps working. */
	ck_assert_int_eq(mqd_log_open(old, MQD_LOG_WARN), 0);
	mqd_log_warn("third");
	text = slurp(old);
	ck_assert_msg(strstr(text, "[warn] third\n") != NULL, "%s", text);
	free(text);
	log_teardown();
}
END_TEST

START_TEST(test_log_stderr_and_errors)
{
	char *text;
	int fd;

	/* Stderr is this forked child's own: point it at a file. */
	log_setup();
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	ck_assert_int_eq(mqd_log_open("", MQD_LOG_INFO), 0);
	mqd_log_info("to stderr");
	ck_assert_int_eq(mqd_log_reopen(), 0); /* no-op */
	text = slurp(log_path);
	ck_assert_msg(strstr(text, "[info] to stderr\n") != NULL, "%s", text);
	free(text);

	errno = 0;
	ck_assert_int_eq(mqd_log_open("/nonexistent-mqd-dir/x.log",
	                              MQD_LOG_INFO), -1);
	ck_assert_int_eq(errno, ENOENT);

	/* syslog: only that it opens, logs and closes without trouble. */
	ck_assert_int_eq(mqd_log_open("syslog", MQD_LOG_ERROR), 0);
	mqd_log_error("mqd unit test: ignore");
	mqd_log_close();
	log_teardown();
}
END_TEST

/* ------------------------------------------------------------ main */

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("keys");
	tcase_add_checked_fixture(tc, NULL, free_cfg);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_empty_file_gives_defaults);
	tcase_add_test(tc, test_each_load_starts_from_defaults);
	tcase_add_test(tc, test_every_key);
	tcase_add_test(tc, test_every_key_is_tested);
	tcase_add_test(tc, test_config_keys);
	tcase_add_test(tc, test_strings);
	tcase_add_test(tc, test_log_level_key);
	tcase_add_test(tc, test_max_memory);
	tcase_add_loop_test(tc, test_control_socket_mode, 0,
	                    ARRAY_LEN(mode_cases));
	tcase_add_test(tc, test_control_socket_mode_messages);
	tcase_add_test(tc, test_metrics_listen);
	tcase_add_test(tc, test_config_free);
	suite_add_tcase(s, tc);

	tc = tcase_create("queues");
	tcase_add_checked_fixture(tc, NULL, free_cfg);
	tcase_add_test(tc, test_queue_sections);
	tcase_add_loop_test(tc, test_queue_values, 0, ARRAY_LEN(queue_values));
	tcase_add_test(tc, test_queue_dead_letter_values);
	tcase_add_loop_test(tc, test_queue_inherits_defaults, 0, 3);
	tcase_add_test(tc, test_queue_given_default_value_wins);
	tcase_add_loop_test(tc, test_queue_bad, 0, ARRAY_LEN(queue_bad));
	tcase_add_test(tc, test_queue_chains_that_end);
	tcase_add_test(tc, test_queue_many);
	suite_add_tcase(s, tc);

	tc = tcase_create("paths");
	tcase_add_checked_fixture(tc, NULL, free_cfg);
	tcase_add_test(tc, test_relative_paths_string);
	tcase_add_test(tc, test_relative_paths_file);
	tcase_add_test(tc, test_relative_control_socket_too_long);
	tcase_add_test(tc, test_relative_path_too_long);
	suite_add_tcase(s, tc);

	tc = tcase_create("values");
	tcase_add_checked_fixture(tc, NULL, free_cfg);
	tcase_add_loop_test(tc, test_listen_good, 0, ARRAY_LEN(listen_good));
	tcase_add_loop_test(tc, test_listen_bad, 0, ARRAY_LEN(listen_bad));
	tcase_add_test(tc, test_listen_max);
	tcase_add_loop_test(tc, test_size_good, 0, ARRAY_LEN(size_good));
	tcase_add_loop_test(tc, test_size_bad, 0, ARRAY_LEN(size_bad));
	tcase_add_loop_test(tc, test_duration_good, 0,
	                    ARRAY_LEN(duration_good));
	tcase_add_test(tc, test_duration_bare_number);
	tcase_add_loop_test(tc, test_duration_bad, 0, ARRAY_LEN(duration_bad));
	tcase_add_loop_test(tc, test_bool_good, 0, ARRAY_LEN(bool_good));
	tcase_add_loop_test(tc, test_bool_bad, 0, ARRAY_LEN(bool_bad));
	tcase_add_loop_test(tc, test_uint, 0, ARRAY_LEN(uint_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("syntax");
	tcase_add_checked_fixture(tc, NULL, free_cfg);
	tcase_add_test(tc, test_syntax_accepted);
	tcase_add_loop_test(tc, test_syntax_bad, 0, ARRAY_LEN(syntax_bad));
	tcase_add_test(tc, test_error_keeps_old_config);
	tcase_add_test(tc, test_small_error_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_add_checked_fixture(tc, NULL, free_cfg);
	tcase_add_test(tc, test_file_cannot_open);
	tcase_add_test(tc, test_file_is_directory);
	tcase_add_test(tc, test_file_load);
	tcase_add_test(tc, test_file_too_large);
	suite_add_tcase(s, tc);

	tc = tcase_create("helpers");
	tcase_add_checked_fixture(tc, NULL, free_cfg);
	tcase_add_test(tc, test_parse_size_direct);
	tcase_add_test(tc, test_parse_duration_direct);
	tcase_add_test(tc, test_parse_bool_direct);
	tcase_add_test(tc, test_parse_listen_direct);
	tcase_add_test(tc, test_parse_log_level_direct);
	suite_add_tcase(s, tc);

	tc = tcase_create("docs");
	tcase_add_checked_fixture(tc, NULL, free_cfg);
	tcase_add_test(tc, test_docs_cover_every_key);
	tcase_add_test(tc, test_sample_conf_loads);
	tcase_add_test(tc, test_sample_conf_shows_defaults);
	suite_add_tcase(s, tc);

	tc = tcase_create("log");
	tcase_add_checked_fixture(tc, NULL, free_cfg);
	tcase_add_test(tc, test_log_file_format_and_levels);
	tcase_add_test(tc, test_log_long_line);
	tcase_add_test(tc, test_log_reopen);
	tcase_add_test(tc, test_log_stderr_and_errors);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
