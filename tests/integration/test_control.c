/*
 * The control socket against the real mqd: each command's JSON, the queue
 * rows after real traffic through libmq, bad input (unknown commands, wrong
 * arguments, over-long lines, clients that vanish or never speak), the
 * socket file's mode, and the start-up rules for the socket path (a live
 * socket refuses a second mqd, a stale one is replaced).
 *
 * Replies are parsed with jansson, never matched as text, except for the
 * error messages whose wording is part of the contract.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "lib/harness.h"
#include "lib/expect.h"
#include "lib/proc.h"
#include "mq/mq.h"

#define LINE_MAX_CTL 4096

#undef START /* this suite's START also waits for the control socket */
#define START(s)                                                              \
	do {                                                                  \
		ck_assert_msg(mqt_server_start(&(s), NULL) == 0,              \
		              "mqd did not start (see stderr)");              \
		ctl_wait_at(__LINE__, &(s));                                  \
	} while (0)

/* ---- talking to the control socket ------------------------------------- */

/* The harness's "listening on" line may come before the control socket is
 * bound: wait (polling, bounded) until it answers. */
static void ctl_wait_at(int line, const struct mqt_server *s)
{
	char out[4096];
	int64_t end = mqt_now_ms() + GONE_MS;

	while (mqt_control(s, "version", out, sizeof out) != 0) {
		ck_assert_msg(mqt_now_ms() < end,
		              "line %d: control socket %s never answered", line,
		              s->ctl_path);
		sleep_ms(5);
	}
}

/* One command through the harness; the reply parsed (an object with a
 * boolean "ok"). */
static json_t *ctl_at(int line, const struct mqt_server *s, const char *cmd)
{
	static char out[1 << 20];
	json_error_t err;
	json_t *j;

	ck_assert_msg(mqt_control(s, cmd, out, sizeof out) == 0,
	              "line %d: no reply line to '%s'", line, cmd);
	j = json_loads(out, 0, &err);
	ck_assert_msg(j != NULL, "line %d: reply to '%s' is not JSON (%s): %s",
	              line, cmd, err.text, out);
	ck_assert_msg(json_is_object(j) && json_is_boolean(json_object_get(j, "ok")),
	              "line %d: reply to '%s' has no \"ok\": %s", line, cmd, out);
	return j;
}
#define CTL(s, cmd) ctl_at(__LINE__, &(s), cmd)

static bool is_ok(const json_t *j)
{
	return json_is_true(json_object_get(j, "ok"));
}

static json_t *ctl_ok_at(int line, const struct mqt_server *s, const char *cmd)
{
	json_t *j = ctl_at(line, s, cmd);
	char *text = json_dumps(j, JSON_COMPACT);

	ck_assert_msg(is_ok(j), "line %d: '%s' failed: %s", line, cmd, text);
	free(text);
	return j;
}
#define CTL_OK(s, cmd) ctl_ok_at(__LINE__, &(s), cmd)

/* Like CTL_OK, but a refusal for want of a client slot is retried: clients
 * that just left may not have been seen gone yet. */
static json_t *ctl_ok_slot_at(int line, const struct mqt_server *s,
                              const char *cmd)
{
	int64_t end = mqt_now_ms() + GONE_MS;

	for (;;) {
		json_t *j = ctl_at(line, s, cmd);
		const char *e = json_string_value(json_object_get(j, "error"));

		if (is_ok(j))
			return j;
		ck_assert_msg(e != NULL &&
		              strstr(e, "too many control clients") != NULL &&
		              mqt_now_ms() < end,
		              "line %d: '%s' failed: %s", line, cmd,
		              e ? e : "(no error text)");
		json_decref(j);
		sleep_ms(5);
	}
}
#define CTL_OK_SLOT(s, cmd) ctl_ok_slot_at(__LINE__, &(s), cmd)

/* The error text of a failed reply. */
static const char *ctl_err_at(int line, json_t *j)
{
	const char *e = json_string_value(json_object_get(j, "error"));

	ck_assert_msg(!is_ok(j) && e != NULL,
	              "line %d: expected {\"ok\":false,\"error\":...}", line);
	return e;
}
#define ERR_OF(j) ctl_err_at(__LINE__, j)

static json_int_t int_at(int line, const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_integer(v), "line %d: \"%s\" missing or not an "
	              "integer", line, key);
	return json_integer_value(v);
}
#define INT(o, key) int_at(__LINE__, o, key)

static const json_t *obj_at(int line, const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_object(v), "line %d: \"%s\" missing or not an "
	              "object", line, key);
	return v;
}
#define OBJ(o, key) obj_at(__LINE__, o, key)

static const char *str_at(int line, const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_string(v), "line %d: \"%s\" missing or not a "
	              "string", line, key);
	return json_string_value(v);
}
#define STR(o, key) str_at(__LINE__, o, key)

/* A raw client: connect, then write and read lines ourselves. */
struct rawctl {
	int fd;
	char buf[1 << 16];
	size_t len;
};

static void raw_open(struct rawctl *r, const char *path)
{
	struct sockaddr_un sa;

	memset(r, 0, sizeof *r);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(r->fd, 0);
	ck_assert_msg(connect(r->fd, (struct sockaddr *)&sa, sizeof sa) == 0,
	              "connect %s: %s", path, strerror(errno));
}

static void raw_write(struct rawctl *r, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(r->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		ck_assert_msg(w > 0, "write: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

/* One line (without its LF) into out: 1; 0 when the server closed first;
 * -1 on timeout. */
static int raw_line(struct rawctl *r, char *out, size_t cap, int timeout_ms)
{
	int64_t end = mqt_now_ms() + timeout_ms;

	for (;;) {
		char *nl = memchr(r->buf, '\n', r->len);
		struct pollfd p = {r->fd, POLLIN, 0};
		int64_t left;
		ssize_t n;

		if (nl != NULL) {
			size_t l = (size_t)(nl - r->buf);
			ck_assert_uint_lt(l, cap);
			memcpy(out, r->buf, l);
			out[l] = '\0';
			memmove(r->buf, nl + 1, r->len - l - 1);
			r->len -= l + 1;
			return 1;
		}
		ck_assert_uint_lt(r->len, sizeof r->buf);
		left = end - mqt_now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) == 0)
			return -1;
		n = read(r->fd, r->buf + r->len, sizeof r->buf - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		r->len += (size_t)n;
	}
}

static json_t *raw_json_at(int line, struct rawctl *r)
{
	static char text[1 << 16];
	json_t *j;
	int rc = raw_line(r, text, sizeof text, RD_MS);

	ck_assert_msg(rc == 1, "line %d: no reply line (%s)", line,
	              rc == 0 ? "closed" : "timeout");
	j = json_loads(text, 0, NULL);
	ck_assert_msg(json_is_object(j), "line %d: not a JSON object: %s", line,
	              text);
	return j;
}
#define RAW_JSON(r) raw_json_at(__LINE__, r)

/* ---- queue rows ---------------------------------------------------------- */

/* The row named name in a "queues" reply, or NULL. */
static const json_t *find_row(const json_t *reply, const char *name)
{
	const json_t *rows = json_object_get(reply, "queues");
	size_t i;
	const json_t *row;

	ck_assert(json_is_array(rows));
	json_array_foreach(rows, i, row) {
		const char *n = json_string_value(json_object_get(row, "name"));
		if (n && strcmp(n, name) == 0)
			return row;
	}
	return NULL;
}

/* Every field a row must have, with its type. */
static void check_row_shape(const json_t *row)
{
	static const char *const ints[] = {
		"owner", "ready", "held", "delayed", "bytes", "consumers",
		"sent", "delivered", "acked", "redelivered", "expired",
		"dead_lettered", "dropped", "purged",
	};
	static const char *const sints[] = {
		"max_length", "max_bytes", "message_ttl_ms",
		"ack_timeout_ms", "max_attempts",
	};
	const json_t *set;
	const char *ov;

	ck_assert(json_is_string(json_object_get(row, "name")));
	ck_assert(json_is_boolean(json_object_get(row, "exclusive")));
	ck_assert(json_is_boolean(json_object_get(row, "auto_delete")));
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
		ck_assert_int_ge(INT(row, ints[i]), 0);
	ck_assert_int_lt(INT(row, "owner"), 4); /* workers = 4 */
	set = OBJ(row, "settings");
	for (size_t i = 0; i < sizeof sints / sizeof sints[0]; i++)
		ck_assert_int_ge(INT(set, sints[i]), 0);
	ov = STR(set, "overflow");
	ck_assert(strcmp(ov, "reject") == 0 || strcmp(ov, "drop_head") == 0);
	(void)STR(set, "dead_letter");
}

/* Poll "queue NAME" until field == want (for effects that travel through
 * mailboxes after the client's own reply). */
static void wait_field_at(int line, const struct mqt_server *s,
                          const char *queue, const char *field,
                          json_int_t want)
{
	char cmd[300];
	int64_t end = mqt_now_ms() + GONE_MS;
	json_int_t got = -1;

	snprintf(cmd, sizeof cmd, "queue %s", queue);
	while (mqt_now_ms() < end) {
		json_t *j = ctl_ok_at(line, s, cmd);
		got = int_at(line, obj_at(line, j, "queue"), field);
		json_decref(j);
		if (got == want)
			return;
		sleep_ms(5);
	}
	ck_abort_msg("line %d: queue %s: %s stayed %lld, expected %lld", line,
	             queue, field, (long long)got, (long long)want);
}
#define WAIT_FIELD(s, q, f, v) wait_field_at(__LINE__, &(s), q, f, v)

static void send_n(mq_conn *c, const char *queue, int n)
{
	for (int i = 0; i < n; i++) {
		char body[32];
		int len = snprintf(body, sizeof body, "msg %d", i);
		int rc = mq_send(c, queue, body, (size_t)len, NULL, NULL);
		ck_assert_msg(rc == MQ_OK, "send to %s: %s", queue,
		              mq_strerror(rc));
	}
}

/* ---- more helpers: arrays, files, the broker's exit --------------------- */

static const json_t *arr_at(int line, const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_array(v), "line %d: \"%s\" missing or not an "
	              "array", line, key);
	return v;
}
#define ARR(o, key) arr_at(__LINE__, o, key)

/* Whether a string item of arr contains needle. */
static bool has_item(const json_t *arr, const char *needle)
{
	const json_t *v;
	size_t i;

	json_array_foreach(arr, i, v) {
		const char *t = json_string_value(v);
		if (t != NULL && strstr(t, needle) != NULL)
			return true;
	}
	return false;
}

/* The error of a failed reply starts with prefix. */
static void err_starts_at(int line, json_t *j, const char *prefix)
{
	const char *e = ctl_err_at(line, j);

	ck_assert_msg(strncmp(e, prefix, strlen(prefix)) == 0,
	              "line %d: error '%s' does not start with '%s'", line, e,
	              prefix);
}
#define ERR_STARTS(j, p) err_starts_at(__LINE__, j, p)

/* A failed reply whose error starts with prefix (the reply is freed). */
static void ctl_fails_at(int line, const struct mqt_server *s, const char *cmd,
                         const char *prefix)
{
	json_t *j = ctl_at(line, s, cmd);

	err_starts_at(line, j, prefix);
	json_decref(j);
}
#define CTL_FAILS(s, cmd, prefix) ctl_fails_at(__LINE__, &(s), cmd, prefix)

/* One of "queue NAME"'s settings. */
static json_int_t setting_at(int line, const struct mqt_server *s,
                             const char *queue, const char *key)
{
	char cmd[300];
	json_t *j;
	json_int_t v;

	snprintf(cmd, sizeof cmd, "queue %s", queue);
	j = ctl_ok_at(line, s, cmd);
	v = int_at(line, obj_at(line, obj_at(line, j, "queue"), "settings"),
	           key);
	json_decref(j);
	return v;
}

/* Poll until a setting is want (reload applies them through the owners). */
static void wait_setting_at(int line, const struct mqt_server *s,
                            const char *queue, const char *key,
                            json_int_t want)
{
	int64_t end = mqt_now_ms() + GONE_MS;
	json_int_t got = -1;

	while (mqt_now_ms() < end) {
		char cmd[300], out[1 << 14];
		json_t *j;

		/* The queue may not exist yet (a new [queue NAME]). */
		snprintf(cmd, sizeof cmd, "queue %s", queue);
		ck_assert_int_eq(mqt_control(s, cmd, out, sizeof out), 0);
		j = json_loads(out, 0, NULL);
		ck_assert_ptr_nonnull(j);
		if (is_ok(j)) {
			got = int_at(line, obj_at(line, obj_at(line, j, "queue"),
			                          "settings"), key);
			if (got == want) {
				json_decref(j);
				return;
			}
		}
		json_decref(j);
		sleep_ms(5);
	}
	ck_abort_msg("line %d: queue %s: %s stayed %lld, expected %lld", line,
	             queue, key, (long long)got, (long long)want);
}
#define WAIT_SETTING(s, q, k, v) wait_setting_at(__LINE__, &(s), q, k, v)

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Replace the file whole (write a new one, rename it over the old). */
static void write_text(const char *path, const char *text)
{
	char tmp[MQT_PATH_MAX + 8];
	FILE *f;

	snprintf(tmp, sizeof tmp, "%s.new", path);
	f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(rename(tmp, path), 0);
}

/* text with its one occurrence of old replaced (malloc'd; text freed). */
static char *replace_at(int line, char *text, const char *old,
                        const char *new)
{
	char *at = strstr(text, old), *out;
	size_t n = strlen(text) - strlen(old) + strlen(new);

	ck_assert_msg(at != NULL, "line %d: '%s' not in the config", line,
	              old);
	out = malloc(n + 1);
	ck_assert_ptr_nonnull(out);
	snprintf(out, n + 1, "%.*s%s%s", (int)(at - text), text, new,
	         at + strlen(old));
	free(text);
	return out;
}
#define REPLACE(t, o, n) ((t) = replace_at(__LINE__, (t), (o), (n)))

/* 1-based line of the first occurrence of needle in text. */
static int line_of(const char *text, const char *needle)
{
	const char *at = strstr(text, needle);
	int line = 1;

	ck_assert_ptr_nonnull(at);
	for (const char *p = text; p < at; p++)
		line += *p == '\n';
	return line;
}

/*
 * The broker's exit status once it has exited (128 + signal), or -1 when
 * it is still running after ms.  The child is not reaped (WNOWAIT), so
 * mqt_server_stop still collects it and cleans up.
 */
static int exit_within(const struct mqt_server *s, int ms)
{
	int64_t end = mqt_now_ms() + ms;
	siginfo_t info;

	for (;;) {
		memset(&info, 0, sizeof info);
		ck_assert_int_eq(waitid(P_PID, (id_t)s->pid, &info,
		                        WEXITED | WNOHANG | WNOWAIT), 0);
		if (info.si_pid == s->pid)
			return info.si_code == CLD_EXITED ? info.si_status
			                                  : 128 + info.si_status;
		if (mqt_now_ms() >= end)
			return -1;
		sleep_ms(5);
	}
}

/* A libmq connection with a client name of our choosing. */
static mq_conn *connect_as_at(int line, const struct mqt_server *s,
                              const char *name)
{
	mq_conn *c = NULL;
	int rc = mq_connect(&c, s->addr, name);

	ck_assert_msg(rc == MQ_OK, "line %d: connect as %s: %s", line, name,
	              mq_strerror(rc));
	return c;
}
#define CONNECT_AS(s, name) connect_as_at(__LINE__, &(s), name)

/* The row of connection id in a "connections" reply, or NULL. */
static const json_t *conn_row(const json_t *reply, uint64_t id)
{
	const json_t *row;
	size_t i;

	json_array_foreach(json_object_get(reply, "connections"), i, row) {
		if ((uint64_t)json_integer_value(json_object_get(row, "id")) == id)
			return row;
	}
	return NULL;
}

/* ---- an mqd of our own, for the socket-path rules ------------------------- */

struct own {
	struct mqt_proc proc;
	pid_t watched; /* the pid the janitor knows, 0 for none */
	char dir[80]; /* short: a socket path in it must fit in 108 bytes */
	char conf[300];
	char err[300];
	struct mqt_server as; /* only ctl_path is used (for mqt_control) */
};

static void own_dir(struct own *o)
{
	const char *t = getenv("TMPDIR");

	memset(o, 0, sizeof *o);
	if ((size_t)snprintf(o->dir, sizeof o->dir, "%s/mqd-ctl.XXXXXX",
	                     t && *t ? t : "/tmp") >= sizeof o->dir)
		snprintf(o->dir, sizeof o->dir, "/tmp/mqd-ctl.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(o->dir));
	snprintf(o->conf, sizeof o->conf, "%s/mqd.conf", o->dir);
	snprintf(o->err, sizeof o->err, "%s/stderr.log", o->dir);
}

/* Start $MQD_BIN with a config naming ctl_path; stderr (its log too) goes
 * to o->err.  The harness's janitor kills it and removes o->dir if the
 * test ends before own_cleanup. */
static void own_spawn(struct own *o, const char *ctl_path)
{
	const char *bin = getenv("MQD_BIN");
	FILE *f;

	ck_assert_ptr_nonnull(bin);
	snprintf(o->as.ctl_path, sizeof o->as.ctl_path, "%s", ctl_path);
	f = fopen(o->conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[server]\nlisten = 127.0.0.1:0\nworkers = 2\n"
	           "log_level = debug\ncontrol_socket = %s\n", ctl_path);
	ck_assert_int_eq(fclose(f), 0);
	char *argv[] = { (char *)bin, (char *)"-c", o->conf, NULL };
	struct mqt_spawn sp = {
		.argv = argv,
		.out = MQT_IO_FILE, .out_path = o->err,
		.err = MQT_IO_STDOUT,
	};
	if (o->watched)
		mqt_unwatch(o->watched);
	ck_assert_int_eq(mqt_proc_start(&o->proc, &sp), 0);
	o->watched = o->proc.pid;
	mqt_watch(o->watched, o->dir);
}

/* Whether it still runs (it is reaped once it has exited). */
static bool own_running(struct own *o)
{
	return mqt_proc_running(&o->proc);
}

/* Its exit status (128 + signal), or -1 after killing it when it did not
 * exit within ms. */
static int own_wait(struct own *o, int ms)
{
	return mqt_proc_stop(&o->proc, 0, ms);
}

static int own_stop(struct own *o)
{
	return mqt_proc_stop(&o->proc, SIGTERM, 10000);
}

static void own_read_err(const struct own *o, char *out, size_t cap)
{
	FILE *f = fopen(o->err, "r");
	size_t n = 0;

	if (f != NULL) {
		n = fread(out, 1, cap - 1, f);
		fclose(f);
	}
	out[n] = '\0';
}

static void own_cleanup(struct own *o)
{
	mqt_proc_kill(&o->proc);
	if (o->watched)
		mqt_unwatch(o->watched);
	o->watched = 0;
	mqt_rm_rf(o->dir);
}

/* A socket file nobody listens on, as a crashed mqd leaves it. */
static void make_stale_socket(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	close(fd);
}

/* ======================================================================= */

START_TEST(test_version)
{
	struct mqt_server s;
	json_t *j;

	START(s);
	j = CTL_OK(s, "version");
	ck_assert_str_eq(STR(j, "version"), PACKAGE_VERSION);
	ck_assert_str_eq(STR(j, "server"), "mqd/" PACKAGE_VERSION);
	json_decref(j);
	STOP(s);
}
END_TEST

START_TEST(test_help)
{
	static const char *const want[] = {
		"help", "version", "stats", "queues", "queue", "connections",
		"kill", "declare", "delete", "purge", "reload", "shutdown",
		"loglevel", "config", "logreopen",
	};
	struct mqt_server s;
	json_t *j;
	const json_t *cmds, *c;
	size_t i;

	START(s);
	j = CTL_OK(s, "help");
	cmds = json_object_get(j, "commands");
	ck_assert(json_is_array(cmds));
	for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
		bool found = false;
		json_array_foreach(cmds, i, c) {
			if (strcmp(STR(c, "name"), want[w]) != 0)
				continue;
			found = true;
			ck_assert_int_gt(strlen(STR(c, "help")), 0);
			ck_assert_ptr_nonnull(strstr(STR(c, "usage"), want[w]));
		}
		ck_assert_msg(found, "help does not list '%s'", want[w]);
	}
	json_decref(j);
	STOP(s);
}
END_TEST

/* stats' "workers": one row per worker (4), in order, with every field;
 * their queues and ready messages add up. */
static void check_workers(const json_t *st, json_int_t queues,
                          json_int_t ready)
{
	static const char *const ints[] = {
		"queues", "connections", "ready", "held", "delayed", "bytes",
		"mails", "frames",
	};
	const json_t *ws = ARR(st, "workers"), *w;
	json_int_t q = 0, r = 0;
	size_t i;

	ck_assert_uint_eq(json_array_size(ws), 4);
	json_array_foreach(ws, i, w) {
		ck_assert_int_eq(INT(w, "index"), (json_int_t)i);
		for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
			ck_assert_int_ge(INT(w, ints[k]), 0);
		q += INT(w, "queues");
		r += INT(w, "ready");
	}
	ck_assert_int_eq(q, queues);
	ck_assert_int_eq(r, ready);
}

/* stats' "rates" and "totals" (sent; nothing else happened). */
static void check_totals(const json_t *st, json_int_t sent)
{
	static const char *const zero[] = {
		"delivered", "acked", "redelivered", "expired",
		"dead_lettered", "dropped", "purged",
	};
	const json_t *t = OBJ(st, "totals"), *r = OBJ(st, "rates");

	ck_assert_int_eq(INT(t, "sent"), sent);
	for (size_t k = 0; k < sizeof zero / sizeof zero[0]; k++)
		ck_assert_int_eq(INT(t, zero[k]), 0);
	ck_assert(json_is_number(json_object_get(r, "in")));
	ck_assert(json_is_number(json_object_get(r, "out")));
	ck_assert(json_number_value(json_object_get(r, "in")) >= 0);
	ck_assert(json_number_value(json_object_get(r, "out")) >= 0);
}

START_TEST(test_stats)
{
	struct mqt_server s;
	json_t *j;
	const json_t *m;
	mq_conn *c;

	START(s);
	j = CTL_OK(s, "stats");
	ck_assert_str_eq(STR(j, "version"), PACKAGE_VERSION);
	ck_assert_int_ge(INT(j, "uptime_s"), 0);
	ck_assert_int_lt(INT(j, "uptime_s"), 60);
	ck_assert_int_eq(INT(j, "connections"), 0);
	ck_assert_int_eq(INT(j, "queues"), 0);
	check_workers(j, 0, 0);
	check_totals(j, 0);
	m = OBJ(j, "messages");
	ck_assert_int_eq(INT(m, "ready"), 0);
	ck_assert_int_eq(INT(m, "held"), 0);
	ck_assert_int_eq(INT(m, "delayed"), 0);
	ck_assert_int_eq(INT(j, "bytes"), 0);
	m = OBJ(j, "memory");
	ck_assert_int_gt(INT(m, "rss_bytes"), 1024 * 1024);
	ck_assert_int_eq(INT(m, "accounted_bytes"), 0);
	ck_assert_int_ge(INT(m, "max_memory"), 0);
	json_decref(j);

	c = CONNECT(s);
	send_n(c, "s1", 3);
	send_n(c, "s2", 2);
	j = CTL_OK(s, "stats");
	ck_assert_int_eq(INT(j, "connections"), 1);
	ck_assert_int_eq(INT(j, "queues"), 2);
	ck_assert_int_eq(INT(OBJ(j, "messages"), "ready"), 5);
	ck_assert_int_gt(INT(j, "bytes"), 0);
	ck_assert_int_gt(INT(OBJ(j, "memory"), "accounted_bytes"), 0);
	check_workers(j, 2, 5);
	check_totals(j, 5);
	json_decref(j);
	mq_close(c);
	STOP(s);
}
END_TEST

START_TEST(test_queues_and_queue)
{
	struct mqt_server s;
	json_t *j;
	const json_t *row, *rows;
	struct mq_message *m = NULL;
	uint32_t count = 0, tag = 0;
	mq_conn *c, *c2;
	int rc;

	START(s);
	j = CTL_OK(s, "queues");
	rows = json_object_get(j, "queues");
	ck_assert(json_is_array(rows));
	ck_assert_uint_eq(json_array_size(rows), 0);
	json_decref(j);

	c = CONNECT(s);
	send_n(c, "beta", 2);
	send_n(c, "alpha", 3);
	j = CTL_OK(s, "queues");
	rows = json_object_get(j, "queues");
	ck_assert_uint_eq(json_array_size(rows), 2);
	/* sorted by name */
	ck_assert_str_eq(STR(json_array_get(rows, 0), "name"), "alpha");
	ck_assert_str_eq(STR(json_array_get(rows, 1), "name"), "beta");
	row = find_row(j, "alpha");
	check_row_shape(row);
	ck_assert_int_eq(INT(row, "ready"), 3);
	ck_assert_int_eq(INT(row, "sent"), 3);
	ck_assert_int_eq(INT(row, "held"), 0);
	ck_assert_int_eq(INT(row, "consumers"), 0);
	ck_assert_int_gt(INT(row, "bytes"), 0);
	ck_assert(json_is_false(json_object_get(row, "exclusive")));
	ck_assert(json_is_false(json_object_get(row, "auto_delete")));
	row = find_row(j, "beta");
	check_row_shape(row);
	ck_assert_int_eq(INT(row, "ready"), 2);
	ck_assert_int_eq(INT(row, "sent"), 2);
	json_decref(j);

	/* GET without ack: one held. */
	rc = mq_get(c, "alpha", 0, 0, &m);
	ck_assert_msg(rc == MQ_OK, "get: %s", mq_strerror(rc));
	j = CTL_OK(s, "queue alpha");
	row = OBJ(j, "queue");
	check_row_shape(row);
	ck_assert_str_eq(STR(row, "name"), "alpha");
	ck_assert_int_eq(INT(row, "ready"), 2);
	ck_assert_int_eq(INT(row, "held"), 1);
	ck_assert_int_eq(INT(row, "delivered"), 1);
	ck_assert_int_eq(INT(row, "acked"), 0);
	json_decref(j);

	/* ACK: counted, no longer held. */
	rc = mq_ack(c, &m->id, 1, 0, &count);
	ck_assert_msg(rc == MQ_OK, "ack: %s", mq_strerror(rc));
	ck_assert_uint_eq(count, 1);
	mq_message_free(m);
	j = CTL_OK(s, "queue alpha");
	row = OBJ(j, "queue");
	ck_assert_int_eq(INT(row, "held"), 0);
	ck_assert_int_eq(INT(row, "acked"), 1);
	ck_assert_int_eq(INT(row, "ready"), 2);
	json_decref(j);

	/* CONSUME: a consumer; its deliveries are held by it. */
	c2 = CONNECT(s);
	rc = mq_consume(c2, "beta", 10, 0, &tag);
	ck_assert_msg(rc == MQ_OK, "consume: %s", mq_strerror(rc));
	j = CTL_OK(s, "queue beta");
	ck_assert_int_eq(INT(OBJ(j, "queue"), "consumers"), 1);
	json_decref(j);
	WAIT_FIELD(s, "beta", "held", 2);
	WAIT_FIELD(s, "beta", "ready", 0);

	/* Closing the consumer's connection puts them back. */
	mq_close(c2);
	WAIT_FIELD(s, "beta", "consumers", 0);
	WAIT_FIELD(s, "beta", "ready", 2);

	/* Queues by name: unknown and invalid names. */
	j = CTL(s, "queue nosuch");
	ck_assert_str_eq(ERR_OF(j), "no such queue");
	json_decref(j);
	j = CTL(s, "queue bad/name");
	ck_assert_ptr_nonnull(strstr(ERR_OF(j), "bad queue name"));
	json_decref(j);
	mq_close(c);
	STOP(s);
}
END_TEST

START_TEST(test_queue_settings)
{
	struct mqt_server s;
	struct mq_queue_opts o;
	const json_t *set, *row;
	json_t *j;
	mq_conn *c;
	int rc;

	START(s);
	c = CONNECT(s);
	rc = mq_declare(c, "dlq", NULL, 0, NULL);
	ck_assert_msg(rc == MQ_OK, "declare dlq: %s", mq_strerror(rc));
	memset(&o, 0, sizeof o);
	o.max_length = 10;
	o.max_bytes = 65536;
	o.overflow = 2;
	o.message_ttl_ms = 60000;
	o.ack_timeout_ms = 5000;
	o.max_attempts = 5;
	o.dead_letter = "dlq";
	rc = mq_declare(c, "gamma", &o, MQ_AUTO_DELETE, NULL);
	ck_assert_msg(rc == MQ_OK, "declare gamma: %s (%s)", mq_strerror(rc),
	              mq_last_error_message(c));
	j = CTL_OK(s, "queue gamma");
	row = OBJ(j, "queue");
	check_row_shape(row);
	ck_assert(json_is_true(json_object_get(row, "auto_delete")));
	set = OBJ(row, "settings");
	ck_assert_int_eq(INT(set, "max_length"), 10);
	ck_assert_int_eq(INT(set, "max_bytes"), 65536);
	ck_assert_str_eq(STR(set, "overflow"), "drop_head");
	ck_assert_int_eq(INT(set, "message_ttl_ms"), 60000);
	ck_assert_int_eq(INT(set, "ack_timeout_ms"), 5000);
	ck_assert_int_eq(INT(set, "max_attempts"), 5);
	ck_assert_str_eq(STR(set, "dead_letter"), "dlq");
	json_decref(j);
	mq_close(c);
	STOP(s);
}
END_TEST

START_TEST(test_unknown_command)
{
	struct mqt_server s;
	json_t *j;

	START(s);
	j = CTL(s, "frobnicate");
	ck_assert_str_eq(ERR_OF(j), "unknown command 'frobnicate' (try help)");
	json_decref(j);
	/* Bytes that are not UTF-8 are not echoed raw (the reply is JSON). */
	j = CTL(s, "\xff\xfe");
	ck_assert_str_eq(ERR_OF(j), "unknown command '?\?' (try help)");
	json_decref(j);
	j = CTL(s, "");
	ck_assert_ptr_nonnull(strstr(ERR_OF(j), "empty command"));
	json_decref(j);
	/* Still serving. */
	json_decref(CTL_OK(s, "version"));
	STOP(s);
}
END_TEST

START_TEST(test_wrong_arg_count)
{
	struct mqt_server s;
	json_t *j;

	START(s);
	j = CTL(s, "queue");
	ck_assert_str_eq(ERR_OF(j), "wrong number of arguments for 'queue' "
	                            "(usage: queue NAME)");
	json_decref(j);
	j = CTL(s, "queue a b");
	ck_assert_ptr_nonnull(strstr(ERR_OF(j), "usage: queue NAME"));
	json_decref(j);
	j = CTL(s, "version now");
	ck_assert_ptr_nonnull(strstr(ERR_OF(j), "usage: version"));
	json_decref(j);
	j = CTL(s, "stats a b c d e f g h i j k l m n o p q r s t");
	ck_assert_ptr_nonnull(strstr(ERR_OF(j), "wrong number of arguments"));
	json_decref(j);
	/* Runs of blanks separate words like one. */
	json_decref(CTL_OK(s, "  version  "));
	STOP(s);
}
END_TEST

/* Several commands in one write: replies in order; CRLF tolerated; a last
 * line without LF is answered when the client shuts down its side. */
START_TEST(test_pipeline_crlf_eof)
{
	struct mqt_server s;
	struct rawctl r;
	static const char cmds[] = "version\r\nqueues\nnope\r\nstats\nhelp";
	json_t *j;
	mq_conn *c;

	START(s);
	c = CONNECT(s);
	send_n(c, "q", 1);
	raw_open(&r, s.ctl_path);
	raw_write(&r, cmds, sizeof cmds - 1);
	ck_assert_int_eq(shutdown(r.fd, SHUT_WR), 0);
	j = RAW_JSON(&r);
	ck_assert_str_eq(STR(j, "version"), PACKAGE_VERSION);
	json_decref(j);
	j = RAW_JSON(&r);
	ck_assert(json_is_array(json_object_get(j, "queues")));
	json_decref(j);
	j = RAW_JSON(&r);
	ck_assert_str_eq(ERR_OF(j), "unknown command 'nope' (try help)");
	json_decref(j);
	j = RAW_JSON(&r);
	ck_assert_int_eq(INT(j, "queues"), 1);
	json_decref(j);
	j = RAW_JSON(&r);
	ck_assert(json_is_array(json_object_get(j, "commands")));
	json_decref(j);
	{
		char line[64];
		ck_assert_int_eq(raw_line(&r, line, sizeof line, RD_MS), 0);
	}
	close(r.fd);
	mq_close(c);
	STOP(s);
}
END_TEST

START_TEST(test_long_line)
{
	static char big[8192];
	struct mqt_server s;
	struct rawctl r;
	char line[256];
	json_t *j;

	START(s);
	/* Exactly at the cap (4096 bytes before the CRLF): accepted and
	 * answered (it is no command, so an error, but not "too long"). */
	memset(big, 'a', LINE_MAX_CTL);
	memcpy(big + LINE_MAX_CTL, "\r\n", 2);
	raw_open(&r, s.ctl_path);
	raw_write(&r, big, LINE_MAX_CTL + 2);
	j = RAW_JSON(&r);
	ck_assert_ptr_nonnull(strstr(ERR_OF(j), "unknown command 'aaaa"));
	json_decref(j);
	close(r.fd);

	/* One byte more: refused, then the socket is closed. */
	memset(big, 'a', LINE_MAX_CTL + 1);
	big[LINE_MAX_CTL + 1] = '\n';
	raw_open(&r, s.ctl_path);
	raw_write(&r, big, LINE_MAX_CTL + 2);
	j = RAW_JSON(&r);
	ck_assert_str_eq(ERR_OF(j), "line too long");
	json_decref(j);
	ck_assert_int_eq(raw_line(&r, line, sizeof line, RD_MS), 0);
	close(r.fd);

	/* No line end at all: refused as soon as it is over the cap. */
	memset(big, 'b', sizeof big);
	raw_open(&r, s.ctl_path);
	raw_write(&r, big, sizeof big);
	j = RAW_JSON(&r);
	ck_assert_str_eq(ERR_OF(j), "line too long");
	json_decref(j);
	ck_assert_int_eq(raw_line(&r, line, sizeof line, RD_MS), 0);
	close(r.fd);

	json_decref(CTL_OK(s, "version"));
	STOP(s);
}
END_TEST

START_TEST(test_socket_mode)
{
	struct mqt_server s;
	struct stat st;

	/* Even with a permissive umask inherited, the socket is private. */
	umask(0);
	START(s);
	ck_assert_int_eq(lstat(s.ctl_path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_msg((st.st_mode & 07777) == 0600, "mode %o",
	              (unsigned)(st.st_mode & 07777));
	ck_assert_uint_eq(st.st_uid, geteuid());
	STOP(s);
}
END_TEST

START_TEST(test_second_instance_refused)
{
	struct mqt_server s;
	struct own o;
	char err[16384], want[300];
	struct stat before, after;
	int rc;

	START(s);
	ck_assert_int_eq(lstat(s.ctl_path, &before), 0);
	own_dir(&o);
	own_spawn(&o, s.ctl_path);
	rc = own_wait(&o, 10000);
	own_read_err(&o, err, sizeof err);
	ck_assert_msg(rc != 0 && rc != -1,
	              "a second mqd on the same control socket: status %d; "
	              "stderr:\n%s", rc, err);
	snprintf(want, sizeof want,
	         "control socket %s is in use by another process", s.ctl_path);
	ck_assert_msg(strstr(err, want) != NULL, "stderr:\n%s", err);
	/* The first one's socket is untouched and it keeps serving. */
	ck_assert_int_eq(lstat(s.ctl_path, &after), 0);
	ck_assert_uint_eq(before.st_ino, after.st_ino);
	json_decref(CTL_OK(s, "version"));
	ck_assert(mqt_server_alive(&s));
	own_cleanup(&o);
	STOP(s);
}
END_TEST

START_TEST(test_stale_socket_replaced)
{
	struct own o;
	char path[108], err[16384];
	struct stat st;
	int64_t end;
	json_t *j;

	own_dir(&o);
	snprintf(path, sizeof path, "%s/ctl.sock", o.dir);
	make_stale_socket(path);
	ck_assert_int_eq(lstat(path, &st), 0);
	own_spawn(&o, path);
	end = mqt_now_ms() + GONE_MS;
	for (;;) {
		char out[4096];
		if (mqt_control(&o.as, "version", out, sizeof out) == 0)
			break;
		own_read_err(&o, err, sizeof err);
		ck_assert_msg(mqt_now_ms() < end && own_running(&o),
		              "mqd did not serve on the stale path; stderr:\n%s",
		              err);
		sleep_ms(5);
	}
	j = CTL_OK(o.as, "version");
	json_decref(j);
	own_read_err(&o, err, sizeof err);
	ck_assert_msg(strstr(err, "stale") != NULL, "stderr:\n%s", err);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	/* A clean stop removes the socket file. */
	ck_assert_int_eq(own_stop(&o), 0);
	ck_assert_int_eq(lstat(path, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
	own_cleanup(&o);
}
END_TEST

START_TEST(test_socket_dir_created)
{
	struct own o;
	char dir[sizeof o.dir + 8], path[sizeof o.dir + 24], err[16384];
	struct stat st;
	int64_t end;

	own_dir(&o);
	snprintf(dir, sizeof dir, "%s/run", o.dir);
	snprintf(path, sizeof path, "%s/ctl.sock", dir);
	own_spawn(&o, path);
	end = mqt_now_ms() + GONE_MS;
	for (;;) {
		char out[4096];
		if (mqt_control(&o.as, "version", out, sizeof out) == 0)
			break;
		own_read_err(&o, err, sizeof err);
		ck_assert_msg(mqt_now_ms() < end && own_running(&o),
		              "mqd did not serve in a directory it made; "
		              "stderr:\n%s", err);
		sleep_ms(5);
	}
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(own_stop(&o), 0);
	own_cleanup(&o);
}
END_TEST

START_TEST(test_bad_socket_paths)
{
	struct own o;
	char path[108], err[16384];
	struct stat st;
	FILE *f;
	int rc;

	/* The directory and its parent do not exist: only the last level of
	 * a run-time directory (/run/mqd) is created. */
	own_dir(&o);
	snprintf(path, sizeof path, "%s/nope/deeper/ctl.sock", o.dir);
	own_spawn(&o, path);
	rc = own_wait(&o, 10000);
	own_read_err(&o, err, sizeof err);
	ck_assert_msg(rc != 0 && rc != -1, "status %d; stderr:\n%s", rc, err);
	ck_assert_msg(strstr(err, "does not exist") != NULL, "stderr:\n%s",
	              err);

	/* Something that is not a socket: refused and left alone. */
	snprintf(path, sizeof path, "%s/file", o.dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("precious\n", f);
	fclose(f);
	own_spawn(&o, path);
	rc = own_wait(&o, 10000);
	own_read_err(&o, err, sizeof err);
	ck_assert_msg(rc != 0 && rc != -1, "status %d; stderr:\n%s", rc, err);
	ck_assert_msg(strstr(err, "not a socket") != NULL, "stderr:\n%s", err);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	own_cleanup(&o);
}
END_TEST

/* Clients that vanish with a query in flight leave the server serving. */
START_TEST(test_disconnect_mid_command)
{
	struct mqt_server s;
	mq_conn *c;
	json_t *j;

	START(s);
	c = CONNECT(s);
	for (int q = 0; q < 20; q++) {
		char name[16];
		snprintf(name, sizeof name, "q%02d", q);
		send_n(c, name, 1);
	}
	for (int i = 0; i < 200; i++) {
		struct rawctl r;
		static const char *const cmds[] = {
			"queues\n", "stats\n", "queue q01\n",
			"queues\nstats\nqueues\nversion\n",
			"connections\n", "kill 99999\n",
			"declare q01\npurge q99\nstats\n",
		};
		const char *cmd = cmds[i % 7];

		raw_open(&r, s.ctl_path);
		/* The server may already have refused this client (over the
		 * 64-client cap while it still closes earlier ones): a failed
		 * write is fine here; the server must simply survive. */
		if (send(r.fd, cmd, strlen(cmd), MSG_NOSIGNAL) < 0 &&
		    errno != EPIPE && errno != ECONNRESET)
			ck_abort_msg("send: %s", strerror(errno));
		close(r.fd);
	}
	ck_assert(mqt_server_alive(&s));
	j = CTL_OK_SLOT(s, "queues");
	ck_assert_uint_eq(json_array_size(json_object_get(j, "queues")), 20);
	json_decref(j);
	/* The message path was not disturbed either. */
	send_n(c, "q00", 1);
	mq_close(c);
	STOP(s);
}
END_TEST

/* Clients that never send cost a slot each; past 64, one more is told why
 * and closed; a freed slot serves again. */
START_TEST(test_idle_clients_and_cap)
{
	static struct rawctl idle[64];
	struct mqt_server s;
	struct rawctl extra;
	int64_t end;
	json_t *j;

	START(s);
	for (int i = 0; i < 63; i++)
		raw_open(&idle[i], s.ctl_path);
	/* 63 idle: a 64th client is served. */
	json_decref(CTL_OK(s, "version"));
	/* The 64th stays.  The harness's client above may not be seen gone
	 * yet, so retry until one is served: then the server holds 64. */
	end = mqt_now_ms() + GONE_MS;
	for (;;) {
		raw_open(&idle[63], s.ctl_path);
		raw_write(&idle[63], "version\n", 8);
		j = RAW_JSON(&idle[63]);
		if (is_ok(j))
			break;
		json_decref(j);
		close(idle[63].fd);
		ck_assert_msg(mqt_now_ms() < end, "64th client never served");
		sleep_ms(5);
	}
	json_decref(j);
	raw_open(&extra, s.ctl_path);
	j = RAW_JSON(&extra);
	ck_assert_ptr_nonnull(strstr(ERR_OF(j), "too many control clients"));
	json_decref(j);
	{
		char line[64];
		ck_assert_int_eq(raw_line(&extra, line, sizeof line, RD_MS), 0);
	}
	close(extra.fd);
	/* One leaves: the next is served (the close is seen asynchronously). */
	close(idle[0].fd);
	end = mqt_now_ms() + GONE_MS;
	for (;;) {
		char out[4096];
		json_t *v;
		ck_assert_int_eq(mqt_control(&s, "version", out, sizeof out), 0);
		v = json_loads(out, 0, NULL);
		ck_assert_ptr_nonnull(v);
		if (is_ok(v)) {
			json_decref(v);
			break;
		}
		json_decref(v);
		ck_assert_msg(mqt_now_ms() < end, "slot never freed");
		sleep_ms(5);
	}
	for (int i = 1; i < 64; i++)
		close(idle[i].fd);
	STOP(s);
}
END_TEST

/* ---- administration commands ------------------------------------------------ */

START_TEST(test_connections_and_kill)
{
	struct mqt_server s;
	struct mq_message *m[2] = { NULL, NULL }, *got;
	const json_t *row, *rows;
	uint32_t tag = 0, tag2 = 0;
	uint64_t vid;
	int64_t end;
	char cmd[64];
	json_t *j;
	mq_conn *sender, *victim, *rescuer;
	int rc;

	START(s);
	j = CTL_OK(s, "connections");
	ck_assert_uint_eq(json_array_size(ARR(j, "connections")), 0);
	json_decref(j);

	sender = CONNECT(s);
	victim = CONNECT_AS(s, "victim-client");
	rescuer = CONNECT_AS(s, "rescuer");
	vid = mq_conn_id(victim);
	send_n(sender, "work", 2);
	rc = mq_consume(victim, "work", 10, 0, &tag);
	ck_assert_msg(rc == MQ_OK, "consume: %s", mq_strerror(rc));
	for (int i = 0; i < 2; i++) {
		rc = mq_next(victim, RD_MS, &m[i]);
		ck_assert_msg(rc == MQ_OK, "next: %s", mq_strerror(rc));
	}
	WAIT_FIELD(s, "work", "held", 2);

	/* Every connection, sorted by id; the victim with its figures (held
	 * is summed from the owners: poll until it is in). */
	end = mqt_now_ms() + GONE_MS;
	for (;;) {
		j = CTL_OK(s, "connections");
		rows = ARR(j, "connections");
		ck_assert_uint_eq(json_array_size(rows), 3);
		row = conn_row(j, vid);
		ck_assert_ptr_nonnull(row);
		if (INT(row, "held") == 2)
			break;
		ck_assert_msg(mqt_now_ms() < end, "held stayed %lld",
		              (long long)INT(row, "held"));
		json_decref(j);
		sleep_ms(5);
	}
	for (size_t i = 1; i < json_array_size(rows); i++)
		ck_assert_int_lt(INT(json_array_get(rows, i - 1), "id"),
		                 INT(json_array_get(rows, i), "id"));
	ck_assert_str_eq(STR(row, "client"), "victim-client");
	ck_assert_ptr_nonnull(strstr(STR(row, "peer"), "127.0.0.1:"));
	(void)STR(row, "user");
	ck_assert_int_lt(INT(row, "worker"), 4);
	ck_assert_int_ge(INT(row, "age_s"), 0);
	ck_assert_int_lt(INT(row, "age_s"), 60);
	ck_assert_int_eq(INT(row, "consumers"), 1);
	ck_assert_int_gt(INT(row, "bytes_in"), 0);
	ck_assert_int_gt(INT(row, "bytes_out"), 0);
	row = conn_row(j, mq_conn_id(rescuer));
	ck_assert_ptr_nonnull(row);
	ck_assert_str_eq(STR(row, "client"), "rescuer");
	ck_assert_int_eq(INT(row, "held"), 0);
	ck_assert_int_eq(INT(row, "consumers"), 0);
	json_decref(j);

	/* kill: the victim's held messages go to the other consumer. */
	rc = mq_consume(rescuer, "work", 10, 0, &tag2);
	ck_assert_msg(rc == MQ_OK, "consume: %s", mq_strerror(rc));
	snprintf(cmd, sizeof cmd, "kill %llu", (unsigned long long)vid);
	j = CTL_OK(s, cmd);
	ck_assert_int_eq(INT(j, "killed"), (json_int_t)vid);
	json_decref(j);
	for (int i = 0; i < 2; i++) {
		rc = mq_next(rescuer, RD_MS, &got);
		ck_assert_msg(rc == MQ_OK, "redelivery %d: %s", i,
		              mq_strerror(rc));
		ck_assert_uint_eq(got->attempts, 2);
		ck_assert(got->id == m[0]->id || got->id == m[1]->id);
		mq_message_free(got);
	}
	WAIT_FIELD(s, "work", "redelivered", 2);
	/* The victim's socket was closed. */
	rc = mq_ping(victim);
	ck_assert_msg(rc != MQ_OK, "the killed connection still answers");
	/* And it is gone from the list (the close is asynchronous). */
	end = mqt_now_ms() + GONE_MS;
	for (;;) {
		j = CTL_OK(s, "connections");
		if (conn_row(j, vid) == NULL)
			break;
		ck_assert_msg(mqt_now_ms() < end, "killed connection listed");
		json_decref(j);
		sleep_ms(5);
	}
	ck_assert_uint_eq(json_array_size(ARR(j, "connections")), 2);
	json_decref(j);

	CTL_FAILS(s, cmd, "no such connection");
	CTL_FAILS(s, "kill 987654321", "no such connection");
	CTL_FAILS(s, "kill abc", "bad connection id 'abc'");
	CTL_FAILS(s, "kill -1", "bad connection id '-1'");
	CTL_FAILS(s, "kill 99999999999999999999999", "bad connection id");
	mq_message_free(m[0]);
	mq_message_free(m[1]);
	mq_close(victim);
	mq_close(rescuer);
	mq_close(sender);
	STOP(s);
}
END_TEST

START_TEST(test_declare)
{
	struct mqt_server s;
	const json_t *set;
	json_t *j;

	START(s);
	j = CTL_OK(s, "declare jobs.dead");
	ck_assert_str_eq(STR(j, "queue"), "jobs.dead");
	ck_assert(json_is_true(json_object_get(j, "created")));
	json_decref(j);
	j = CTL_OK(s, "declare jobs max_length=10 max_bytes=64K "
	              "overflow=drop_head message_ttl=1m ack_timeout=5s "
	              "max_attempts=3 dead_letter=jobs.dead");
	ck_assert_str_eq(STR(j, "queue"), "jobs");
	ck_assert(json_is_true(json_object_get(j, "created")));
	json_decref(j);
	j = CTL_OK(s, "queue jobs");
	check_row_shape(OBJ(j, "queue"));
	set = OBJ(OBJ(j, "queue"), "settings");
	ck_assert_int_eq(INT(set, "max_length"), 10);
	ck_assert_int_eq(INT(set, "max_bytes"), 65536);
	ck_assert_str_eq(STR(set, "overflow"), "drop_head");
	ck_assert_int_eq(INT(set, "message_ttl_ms"), 60000);
	ck_assert_int_eq(INT(set, "ack_timeout_ms"), 5000);
	ck_assert_int_eq(INT(set, "max_attempts"), 3);
	ck_assert_str_eq(STR(set, "dead_letter"), "jobs.dead");
	json_decref(j);

	/* The same again: there already, not created. */
	j = CTL_OK(s, "declare jobs max_length=10 max_bytes=64K "
	              "overflow=drop_head message_ttl=1m ack_timeout=5s "
	              "max_attempts=3 dead_letter=jobs.dead");
	ck_assert(json_is_false(json_object_get(j, "created")));
	json_decref(j);
	/* Other settings: a conflict, and the queue is unchanged. */
	CTL_FAILS(s, "declare jobs max_length=11", "CONFLICT");
	ck_assert_int_eq(setting_at(__LINE__, &s, "jobs", "max_length"), 10);

	/* Nothing given: the [defaults]. */
	j = CTL_OK(s, "declare plain");
	ck_assert(json_is_true(json_object_get(j, "created")));
	json_decref(j);
	ck_assert_int_eq(setting_at(__LINE__, &s, "plain", "max_length"), 0);
	ck_assert_int_eq(setting_at(__LINE__, &s, "plain", "ack_timeout_ms"),
	                 30000);

	/* Bad keys and values: clear errors, and nothing is created. */
	CTL_FAILS(s, "declare q max_length=abc",
	          "bad number 'abc' for max_length (write a whole number from "
	          "0 to 4294967295)");
	CTL_FAILS(s, "declare q max_length=4294967296", "bad number");
	CTL_FAILS(s, "declare q max_attempts=65536",
	          "bad number '65536' for max_attempts");
	CTL_FAILS(s, "declare q max_bytes=1T", "bad size '1T' for max_bytes");
	CTL_FAILS(s, "declare q message_ttl=30",
	          "bad duration '30' for message_ttl");
	CTL_FAILS(s, "declare q ack_timeout=50d",
	          "bad duration '50d' for ack_timeout");
	CTL_FAILS(s, "declare q overflow=maybe",
	          "bad value 'maybe' for overflow (write reject or drop_head)");
	CTL_FAILS(s, "declare q colour=red", "unknown key 'colour' (keys: ");
	CTL_FAILS(s, "declare q max_length", "bad argument 'max_length' "
	                                     "(write key=value)");
	CTL_FAILS(s, "declare q =5", "bad argument '=5'");
	CTL_FAILS(s, "declare q max_length=1 max_length=2",
	          "repeated key 'max_length'");
	CTL_FAILS(s, "declare q dead_letter=q",
	          "dead_letter may not name the queue itself");
	CTL_FAILS(s, "declare q dead_letter=a/b",
	          "bad queue name 'a/b' for dead_letter");
	CTL_FAILS(s, "declare bad/name", "bad queue name 'bad/name'");
	CTL_FAILS(s, "queue q", "no such queue");
	STOP(s);
}
END_TEST

START_TEST(test_delete_and_purge)
{
	struct mqt_server s;
	json_t *j;
	mq_conn *c;

	START(s);
	c = CONNECT(s);
	send_n(c, "jobs", 3);
	json_decref(CTL_OK(s, "declare empty"));

	/* --if-empty refuses a queue with messages, and keeps it. */
	CTL_FAILS(s, "delete jobs --if-empty", "CONFLICT");
	WAIT_FIELD(s, "jobs", "ready", 3);

	j = CTL_OK(s, "purge jobs");
	ck_assert_int_eq(INT(j, "purged"), 3);
	json_decref(j);
	WAIT_FIELD(s, "jobs", "ready", 0);
	WAIT_FIELD(s, "jobs", "purged", 3);
	j = CTL_OK(s, "purge jobs");
	ck_assert_int_eq(INT(j, "purged"), 0);
	json_decref(j);

	j = CTL_OK(s, "delete jobs --if-empty");
	ck_assert_str_eq(STR(j, "deleted"), "jobs");
	json_decref(j);
	CTL_FAILS(s, "queue jobs", "no such queue");
	j = CTL_OK(s, "delete empty");
	ck_assert_str_eq(STR(j, "deleted"), "empty");
	json_decref(j);

	/* Unknown queues: NOT_FOUND, from the owner, and nothing created. */
	CTL_FAILS(s, "delete nosuch", "NOT_FOUND");
	CTL_FAILS(s, "purge nosuch", "NOT_FOUND");
	CTL_FAILS(s, "queue nosuch", "no such queue");
	CTL_FAILS(s, "delete x --force", "unknown option '--force' (usage: "
	                                 "delete NAME [--if-empty])");
	CTL_FAILS(s, "purge a/b", "bad queue name");
	CTL_FAILS(s, "delete a/b", "bad queue name");

	/* Deleting a queue with messages (no --if-empty) drops them. */
	send_n(c, "full", 2);
	json_decref(CTL_OK(s, "delete full"));
	j = CTL_OK(s, "queues");
	ck_assert_uint_eq(json_array_size(ARR(j, "queues")), 0);
	json_decref(j);
	mq_close(c);
	STOP(s);
}
END_TEST

/* Reload: [queue NAME] settings and log_level applied, a new [queue NAME]
 * created, workers reported as needing a restart. */
START_TEST(test_reload)
{
	struct mqt_server s;
	const json_t *applied, *restart;
	char *text;
	json_t *j;

	ck_assert_msg(mqt_server_start_conf(&s, NULL,
	                                    "[queue jobs]\nmax_length = 10\n")
	              == 0, "mqd did not start");
	ctl_wait_at(__LINE__, &s);
	WAIT_SETTING(s, "jobs", "max_length", 10);

	/* Nothing changed: nothing applied, nothing to restart. */
	j = CTL_OK(s, "reload");
	ck_assert_uint_eq(json_array_size(ARR(j, "applied")), 0);
	ck_assert_uint_eq(json_array_size(ARR(j, "restart_needed")), 0);
	json_decref(j);

	text = read_text(s.conf_path);
	REPLACE(text, "max_length = 10", "max_length = 20");
	REPLACE(text, "log_level = debug", "log_level = info");
	REPLACE(text, "workers = 4", "workers = 2");
	text = realloc(text, strlen(text) + 64);
	ck_assert_ptr_nonnull(text);
	strcat(text, "\n[queue fresh]\nmax_length = 5\n");
	write_text(s.conf_path, text);
	free(text);

	j = CTL_OK(s, "reload");
	applied = ARR(j, "applied");
	restart = ARR(j, "restart_needed");
	{
		char *t = json_dumps(j, JSON_COMPACT);
		ck_assert_msg(has_item(restart, "workers") &&
		              !has_item(applied, "workers") &&
		              has_item(applied, "log_level") &&
		              !has_item(restart, "log_level") &&
		              has_item(applied, "jobs") &&
		              has_item(applied, "fresh"),
		              "reload reply: %s", t);
		free(t);
	}
	json_decref(j);
	WAIT_SETTING(s, "jobs", "max_length", 20);
	WAIT_SETTING(s, "fresh", "max_length", 5);
	j = CTL_OK(s, "config");
	ck_assert_str_eq(STR(OBJ(j, "server"), "log_level"), "info");
	json_decref(j);
	/* Still four workers until a restart. */
	j = CTL_OK(s, "stats");
	ck_assert_uint_eq(json_array_size(ARR(j, "workers")), 4);
	json_decref(j);
	STOP(s);
}
END_TEST

/* A broken file is refused whole: FILE:LINE, and the old config runs on. */
START_TEST(test_reload_broken)
{
	struct mqt_server s;
	char *text, want[MQT_PATH_MAX + 32];
	json_t *j;
	mq_conn *c;
	int rc;

	ck_assert_msg(mqt_server_start_conf(&s, NULL,
	                                    "[queue jobs]\nmax_length = 2\n")
	              == 0, "mqd did not start");
	ctl_wait_at(__LINE__, &s);
	text = read_text(s.conf_path);
	REPLACE(text, "log_level = debug", "log_level = error");
	REPLACE(text, "max_length = 2", "max_length = lots");
	snprintf(want, sizeof want, "%s:%d: ", s.conf_path,
	         line_of(text, "max_length = lots"));
	write_text(s.conf_path, text);
	free(text);

	j = CTL(s, "reload");
	ERR_STARTS(j, want);
	ck_assert_ptr_nonnull(strstr(ERR_OF(j), "bad number 'lots'"));
	json_decref(j);

	/* Nothing of it applied: not the level before the bad line ... */
	j = CTL_OK(s, "config");
	ck_assert_str_eq(STR(OBJ(j, "server"), "log_level"), "debug");
	json_decref(j);
	/* ... and the queue still holds two at most. */
	ck_assert_int_eq(setting_at(__LINE__, &s, "jobs", "max_length"), 2);
	c = CONNECT(s);
	send_n(c, "jobs", 2);
	rc = mq_send(c, "jobs", "x", 1, NULL, NULL);
	ck_assert_msg(rc == MQ_ERR_QUEUE_FULL, "third send: %s",
	              mq_strerror(rc));

	/* A missing file is refused the same way. */
	text = read_text(s.conf_path);
	ck_assert_int_eq(unlink(s.conf_path), 0);
	j = CTL(s, "reload");
	snprintf(want, sizeof want, "%s:0: ", s.conf_path);
	ERR_STARTS(j, want);
	json_decref(j);

	/* Fixed, it applies. */
	REPLACE(text, "max_length = lots", "max_length = 3");
	write_text(s.conf_path, text);
	free(text);
	json_decref(CTL_OK(s, "reload"));
	WAIT_SETTING(s, "jobs", "max_length", 3);
	rc = mq_send(c, "jobs", "x", 1, NULL, NULL);
	ck_assert_msg(rc == MQ_OK, "send after reload: %s", mq_strerror(rc));
	j = CTL_OK(s, "config");
	ck_assert_str_eq(STR(OBJ(j, "server"), "log_level"), "error");
	json_decref(j);
	mq_close(c);
	STOP(s);
}
END_TEST

/* shutdown waits for the held message's ACK, then the broker exits 0. */
START_TEST(test_shutdown_waits_for_ack)
{
	struct mqt_server s;
	struct mq_message *m = NULL;
	uint32_t tag = 0, count = 0;
	mq_conn *c;
	json_t *j;
	int rc, late;

	START(s);
	c = CONNECT(s);
	send_n(c, "work", 1);
	rc = mq_consume(c, "work", 10, 0, &tag);
	ck_assert_msg(rc == MQ_OK, "consume: %s", mq_strerror(rc));
	rc = mq_next(c, RD_MS, &m);
	ck_assert_msg(rc == MQ_OK, "next: %s", mq_strerror(rc));
	WAIT_FIELD(s, "work", "held", 1);

	j = CTL_OK(s, "shutdown 30s");
	ck_assert(json_is_true(json_object_get(j, "shutting_down")));
	ck_assert_int_eq(INT(j, "timeout_ms"), 30000);
	json_decref(j);
	/* Waiting for the ACK; a new client is not served (refused, closed,
	 * or left unanswered in the kernel's backlog). */
	ck_assert_int_eq(exit_within(&s, 300), -1);
	late = mqt_raw_connect(&s);
	if (late >= 0) {
		struct mqt_buf b;
		struct mqt_frame f;

		mqt_buf_init(&b);
		mqt_enc_hello(&b, 1, 1, "late");
		if (mqt_raw_send_buf(late, &b) == 0 &&
		    mqt_raw_read(late, &f, 300) == MQT_RD_FRAME) {
			ck_assert_msg(f.op != MQT_WELCOME, "a new client was "
			              "welcomed while shutting down");
			mqt_frame_free(&f);
		}
		mqt_buf_free(&b);
		close(late);
	}
	ck_assert_int_eq(exit_within(&s, 100), -1);

	rc = mq_ack(c, &m->id, 1, 0, &count);
	ck_assert_msg(rc == MQ_OK, "ack while shutting down: %s",
	              mq_strerror(rc));
	ck_assert_uint_eq(count, 1);
	mq_message_free(m);
	ck_assert_int_eq(exit_within(&s, GONE_MS), 0);
	mq_close(c);
	STOP(s);
}
END_TEST

/* A held message that is never acknowledged: the broker waits TIMEOUT,
 * then exits 0 anyway. */
START_TEST(test_shutdown_timeout)
{
	struct mqt_server s;
	struct mq_message *m = NULL;
	uint32_t tag = 0;
	json_t *j;
	mq_conn *c;
	int rc;

	START(s);
	c = CONNECT(s);
	send_n(c, "work", 1);
	rc = mq_consume(c, "work", 10, 0, &tag);
	ck_assert_msg(rc == MQ_OK, "consume: %s", mq_strerror(rc));
	rc = mq_next(c, RD_MS, &m);
	ck_assert_msg(rc == MQ_OK, "next: %s", mq_strerror(rc));
	WAIT_FIELD(s, "work", "held", 1);
	j = CTL_OK(s, "shutdown 1500ms");
	ck_assert_int_eq(INT(j, "timeout_ms"), 1500);
	json_decref(j);
	ck_assert_int_eq(exit_within(&s, 200), -1);
	ck_assert_int_eq(exit_within(&s, GONE_MS), 0);
	mq_message_free(m);
	mq_close(c);
	STOP(s);
}
END_TEST

START_TEST(test_shutdown_args_and_default)
{
	struct mqt_server s;
	json_t *j;

	START(s);
	CTL_FAILS(s, "shutdown 30", "bad timeout '30' (write a duration");
	CTL_FAILS(s, "shutdown 25h", "bad timeout '25h'");
	CTL_FAILS(s, "shutdown soon", "bad timeout 'soon'");
	CTL_FAILS(s, "shutdown 1s 2s", "wrong number of arguments for "
	                               "'shutdown' (usage: shutdown [TIMEOUT])");
	ck_assert_int_eq(exit_within(&s, 50), -1);
	/* Nothing held: the default timeout, and the broker goes at once. */
	j = CTL_OK(s, "shutdown");
	ck_assert(json_is_true(json_object_get(j, "shutting_down")));
	ck_assert_int_eq(INT(j, "timeout_ms"), 10000);
	json_decref(j);
	ck_assert_int_eq(exit_within(&s, GONE_MS), 0);
	STOP(s);
}
END_TEST

/* Whether the broker's log has needle in it. */
static bool log_has(const struct mqt_server *s, const char *needle)
{
	char *text = read_text(s->log_path);
	bool found = strstr(text, needle) != NULL;

	free(text);
	return found;
}

START_TEST(test_loglevel)
{
	struct mqt_server s;
	json_t *j;

	START(s);
	j = CTL_OK(s, "loglevel error");
	ck_assert_str_eq(STR(j, "old"), "debug");
	ck_assert_str_eq(STR(j, "new"), "error");
	json_decref(j);
	j = CTL_OK(s, "config");
	ck_assert_str_eq(STR(OBJ(j, "server"), "log_level"), "error");
	json_decref(j);
	/* "kill" logs at info: not at error ... */
	CTL_FAILS(s, "kill 424242", "no such connection");
	ck_assert(!log_has(&s, "kill connection 424242"));
	j = CTL_OK(s, "loglevel INFO");
	ck_assert_str_eq(STR(j, "old"), "error");
	ck_assert_str_eq(STR(j, "new"), "info");
	json_decref(j);
	/* ... but at info. */
	CTL_FAILS(s, "kill 434343", "no such connection");
	ck_assert(log_has(&s, "kill connection 434343"));

	CTL_FAILS(s, "loglevel verbose", "bad log level 'verbose' (write "
	                                 "error, warn, info or debug)");
	CTL_FAILS(s, "loglevel", "wrong number of arguments for 'loglevel'");
	j = CTL_OK(s, "loglevel debug");
	ck_assert_str_eq(STR(j, "old"), "info");
	json_decref(j);
	STOP(s);
}
END_TEST

START_TEST(test_logreopen)
{
	struct mqt_server s;
	char old[MQT_PATH_MAX + 8];
	char *text;

	START(s);
	snprintf(old, sizeof old, "%s.1", s.log_path);
	ck_assert_int_eq(rename(s.log_path, old), 0);
	json_decref(CTL_OK(s, "logreopen"));
	/* loglevel logs a line: into the new file, not the old one. */
	json_decref(CTL_OK(s, "loglevel debug"));
	text = read_text(s.log_path);
	ck_assert_msg(strstr(text, "log level debug") != NULL, "%s", text);
	free(text);
	text = read_text(old);
	ck_assert(strstr(text, "log level debug") == NULL);
	free(text);
	CTL_FAILS(s, "logreopen now", "wrong number of arguments");
	STOP(s);
}
END_TEST

START_TEST(test_config)
{
	struct mqt_server s;
	const json_t *srv, *def, *qs, *q, *listen;
	const char *const *names;
	size_t n = mqd_config_keys(&names), i, k;
	json_t *j;

	ck_assert_msg(mqt_server_start_conf(&s, NULL,
	                                    "[defaults]\nprefetch = 7\n"
	                                    "[queue jobs]\nmax_length = 10\n"
	                                    "ack_timeout = 1m\n"
	                                    "[queue other]\n")
	              == 0, "mqd did not start");
	ctl_wait_at(__LINE__, &s);
	j = CTL_OK(s, "config");
	ck_assert_str_eq(STR(j, "path"), s.conf_path);
	srv = OBJ(j, "server");
	def = OBJ(j, "defaults");
	qs = ARR(j, "queues");
	ck_assert_uint_eq(json_array_size(qs), 2);
	/* Every key the config table knows, in its section. */
	for (i = 0; i < n; i++) {
		const char *dot = strchr(names[i], '.');
		const char *key = dot + 1;

		if (strncmp(names[i], "server.", 7) == 0)
			ck_assert_msg(json_object_get(srv, key) != NULL,
			              "config: no server.%s", key);
		else if (strncmp(names[i], "defaults.", 9) == 0)
			ck_assert_msg(json_object_get(def, key) != NULL,
			              "config: no defaults.%s", key);
		else
			json_array_foreach(qs, k, q)
				ck_assert_msg(json_object_get(q, key) != NULL,
				              "config: no %s in queue %zu",
				              key, k);
	}
	listen = ARR(srv, "listen");
	ck_assert_uint_eq(json_array_size(listen), 1);
	ck_assert_str_eq(json_string_value(json_array_get(listen, 0)),
	                 "127.0.0.1:0");
	ck_assert_str_eq(STR(srv, "control_socket"), s.ctl_path);
	ck_assert_str_eq(STR(srv, "control_socket_mode"), "0600");
	ck_assert_str_eq(STR(srv, "metrics_listen"), "");
	ck_assert_int_eq(INT(srv, "workers"), 4);
	ck_assert_int_eq(INT(srv, "max_frame"), 1024 * 1024);
	ck_assert(json_is_true(json_object_get(srv, "auto_create")));
	ck_assert_int_eq(INT(srv, "idle_timeout"), 0);
	ck_assert_str_eq(STR(srv, "log_level"), "debug");
	ck_assert_str_eq(STR(srv, "log_file"), s.log_path);
	ck_assert_int_eq(INT(def, "prefetch"), 7);
	ck_assert_int_eq(INT(def, "ack_timeout"), 30000);
	ck_assert_str_eq(STR(def, "overflow"), "reject");
	q = json_array_get(qs, 0);
	ck_assert_str_eq(STR(q, "name"), "jobs");
	ck_assert_int_eq(INT(q, "max_length"), 10);
	ck_assert_int_eq(INT(q, "ack_timeout"), 60000);
	q = json_array_get(qs, 1);
	ck_assert_str_eq(STR(q, "name"), "other");
	ck_assert_int_eq(INT(q, "max_length"), 0);
	json_decref(j);
	CTL_FAILS(s, "config all", "wrong number of arguments");
	STOP(s);
}
END_TEST

START_TEST(test_socket_mode_configured)
{
	struct mqt_server s;
	struct stat st;
	json_t *j;

	/* The mode is the config's, whatever the umask inherited. */
	umask(077);
	ck_assert_msg(mqt_server_start(&s, "control_socket_mode = 0660") == 0,
	              "mqd did not start");
	ctl_wait_at(__LINE__, &s);
	ck_assert_int_eq(lstat(s.ctl_path, &st), 0);
	ck_assert_msg((st.st_mode & 07777) == 0660, "mode %o",
	              (unsigned)(st.st_mode & 07777));
	j = CTL_OK(s, "config");
	ck_assert_str_eq(STR(OBJ(j, "server"), "control_socket_mode"), "0660");
	json_decref(j);
	STOP(s);
}
END_TEST

/* Usage errors of the newer commands; the server keeps serving. */
START_TEST(test_admin_usage)
{
	static const struct {
		const char *cmd, *usage;
	} cases[] = {
		{ "connections all", "usage: connections)" },
		{ "kill", "usage: kill ID)" },
		{ "kill 1 2", "usage: kill ID)" },
		{ "declare", "usage: declare NAME [key=value ...])" },
		{ "declare q a=1 b=2 c=3 d=4 e=5 f=6 g=7 h=8",
		  "usage: declare NAME [key=value ...])" },
		{ "delete", "usage: delete NAME [--if-empty])" },
		{ "delete a --if-empty b", "usage: delete NAME [--if-empty])" },
		{ "purge", "usage: purge NAME)" },
		{ "purge a b", "usage: purge NAME)" },
		{ "reload now", "usage: reload)" },
		{ "loglevel a b", "usage: loglevel LEVEL)" },
	};
	struct mqt_server s;

	START(s);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *j = CTL(s, cases[i].cmd);
		const char *e = ERR_OF(j);

		ck_assert_msg(strncmp(e, "wrong number of arguments", 25) == 0 &&
		              strstr(e, cases[i].usage) != NULL,
		              "'%s': %s", cases[i].cmd, e);
		json_decref(j);
	}
	json_decref(CTL_OK(s, "version"));
	STOP(s);
}
END_TEST

/* Commands answered at once and commands that ask the workers, written
 * together: the replies still come in command order. */
START_TEST(test_pipeline_admin)
{
	struct mqt_server s;
	struct rawctl r;
	static const char cmds[] =
		"config\nconnections\nloglevel info\nstats\n"
		"declare p1\nversion\npurge p1\nkill 77777\nloglevel debug\n";
	json_t *j;

	START(s);
	raw_open(&r, s.ctl_path);
	raw_write(&r, cmds, sizeof cmds - 1);
	j = RAW_JSON(&r);
	(void)OBJ(j, "server");
	json_decref(j);
	j = RAW_JSON(&r);
	(void)ARR(j, "connections");
	json_decref(j);
	j = RAW_JSON(&r);
	ck_assert_str_eq(STR(j, "new"), "info");
	json_decref(j);
	j = RAW_JSON(&r);
	ck_assert_uint_eq(json_array_size(ARR(j, "workers")), 4);
	json_decref(j);
	j = RAW_JSON(&r);
	ck_assert_str_eq(STR(j, "queue"), "p1");
	json_decref(j);
	j = RAW_JSON(&r);
	ck_assert_str_eq(STR(j, "version"), PACKAGE_VERSION);
	json_decref(j);
	j = RAW_JSON(&r);
	ck_assert_int_eq(INT(j, "purged"), 0);
	json_decref(j);
	j = RAW_JSON(&r);
	ck_assert_str_eq(ERR_OF(j), "no such connection");
	json_decref(j);
	j = RAW_JSON(&r);
	ck_assert_str_eq(STR(j, "old"), "info");
	json_decref(j);
	close(r.fd);
	STOP(s);
}
END_TEST

/* ======================================================================= */

static Suite *control_suite(void)
{
	Suite *su = suite_create("control");

	ADD(su, test_version);
	ADD(su, test_help);
	ADD(su, test_stats);
	ADD(su, test_queues_and_queue);
	ADD(su, test_queue_settings);
	ADD(su, test_unknown_command);
	ADD(su, test_wrong_arg_count);
	ADD(su, test_pipeline_crlf_eof);
	ADD(su, test_long_line);
	ADD(su, test_socket_mode);
	ADD(su, test_second_instance_refused);
	ADD(su, test_stale_socket_replaced);
	ADD(su, test_socket_dir_created);
	ADD(su, test_bad_socket_paths);
	ADD(su, test_disconnect_mid_command);
	ADD(su, test_idle_clients_and_cap);
	ADD(su, test_connections_and_kill);
	ADD(su, test_declare);
	ADD(su, test_delete_and_purge);
	ADD(su, test_reload);
	ADD(su, test_reload_broken);
	ADD(su, test_shutdown_waits_for_ack);
	ADD(su, test_shutdown_timeout);
	ADD(su, test_shutdown_args_and_default);
	ADD(su, test_loglevel);
	ADD(su, test_logreopen);
	ADD(su, test_config);
	ADD(su, test_socket_mode_configured);
	ADD(su, test_admin_usage);
	ADD(su, test_pipeline_admin);
	return su;
}

int main(void)
{
	return mqt_run_suite(control_suite());
}
