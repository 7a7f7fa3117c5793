#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * mqctl against the real mqd: each command run as the built binary
 * ($MQCTL_BIN) with -S pointing at the broker's control socket, its exit
 * status, its table or block checked by column (a value must sit under its
 * header), its --json output parsed, and the failure paths (an error from
 * the server, no socket, usage errors) checked for status and message.
 *
 * Queue traffic goes through libmq, so the numbers mqctl prints are the
 * broker's, not ours.
 */

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/expect.h"
#include "lib/proc.h"
#include "mq/mq.h"

#define RUN_LIMIT_MS 20000 /* mqctl itself gives up after 30 s */
#define WAIT_MS 10000      /* wait-until limit for asynchronous effects */
#define ARGS_MAX 16

/* ---- running mqctl --------------------------------------------------------- */

struct run {
	int status; /* exit status, 128 + signal, or -1 */
	char out[1 << 16];
	char err[1 << 13];
};

/*
 * Run $MQCTL_BIN with the NULL-terminated words after argv[0].  env_socket
 * is what MQD_CONTROL_SOCKET is set to (NULL: unset).  Returns r->status;
 * a run over RUN_LIMIT_MS fails the test.
 */
static int run_mqctl(struct run *r, const char *env_socket, ...)
{
	const char *bin = getenv("MQCTL_BIN");
	char *argv[ARGS_MAX + 2];
	char env_set[MQT_PATH_MAX];
	const char *env[] = { "MQD_CONTROL_SOCKET", NULL };
	int argc = 1;
	va_list ap;
	const char *a;

	ck_assert_msg(bin != NULL && bin[0] != '\0', "MQCTL_BIN is not set");
	argv[0] = (char *)bin;
	va_start(ap, env_socket);
	while ((a = va_arg(ap, const char *)) != NULL) {
		ck_assert_int_lt(argc, ARGS_MAX + 1);
		argv[argc++] = (char *)a;
	}
	va_end(ap);
	argv[argc] = NULL;
	if (env_socket) {
		snprintf(env_set, sizeof env_set, "MQD_CONTROL_SOCKET=%s",
		         env_socket);
		env[0] = env_set;
	}
	memset(r, 0, sizeof *r);
	struct mqt_spawn sp = {
		.argv = argv, .env = env,
		.out = MQT_IO_PIPE, .out_buf = r->out, .out_cap = sizeof r->out,
		.err = MQT_IO_PIPE, .err_buf = r->err, .err_cap = sizeof r->err,
	};
	r->status = mqt_proc_run(&sp, RUN_LIMIT_MS);
	ck_assert_msg(r->status != -1, "mqctl did not run, or did not finish "
	              "within %d ms (see stderr)\nstdout:\n%s\nstderr:\n%s",
	              RUN_LIMIT_MS, r->out, r->err);
	return r->status;
}

/* mqctl -S <the broker's socket> WORDS...; fails the test unless it exits
 * with want. */
#define CTL(r, s, want, ...)                                                  \
	do {                                                                  \
		int st_ = run_mqctl((r), NULL, "-S", (s).ctl_path,            \
		                    __VA_ARGS__, (char *)NULL);               \
		ck_assert_msg(st_ == (want),                                  \
		              "line %d: mqctl exited %d, expected %d\n"       \
		              "stdout:\n%s\nstderr:\n%s", __LINE__, st_,      \
		              (want), (r)->out, (r)->err);                    \
	} while (0)

/* ---- the broker -------------------------------------------------------------- */

/* The harness's "listening on" line may come before the control socket is
 * bound: wait (polling, bounded) until it answers. */
static void wait_ctl(const struct mqt_server *s)
{
	char out[4096];
	int64_t end = mqt_now_ms() + WAIT_MS;

	while (mqt_control(s, "version", out, sizeof out) != 0) {
		ck_assert_msg(mqt_now_ms() < end, "control socket %s never "
		              "answered", s->ctl_path);
		sleep_ms(5);
	}
}

static void start_conf(struct mqt_server *s, const char *sections)
{
	ck_assert_msg(mqt_server_start_conf(s, NULL, sections) == 0,
	              "mqd did not start (see stderr)");
	wait_ctl(s);
}

static void start(struct mqt_server *s)
{
	start_conf(s, NULL);
}

static void stop(struct mqt_server *s)
{
	int rc = mqt_server_stop(s);

	ck_assert_msg(rc == 0, "mqd did not exit 0: %d (log on stderr)", rc);
}

static mq_conn *connect_ok(const struct mqt_server *s)
{
	mq_conn *c = mqt_connect(s);

	ck_assert_msg(c != NULL, "libmq connect failed");
	return c;
}

static void send_n(mq_conn *c, const char *queue, int n, size_t size)
{
	char body[4096];

	ck_assert_uint_le(size, sizeof body);
	memset(body, 'x', size);
	for (int i = 0; i < n; i++) {
		int rc = mq_send(c, queue, body, size, NULL, NULL);
		ck_assert_msg(rc == MQ_OK, "send to %s: %s", queue,
		              mq_strerror(rc));
	}
}

/* ---- reading mqctl's output ---------------------------------------------- */

/* The line of text whose first word is word, copied into line; false if
 * there is none. */
static bool find_line(const char *text, const char *word, char *line,
                      size_t cap)
{
	size_t wl = strlen(word);

	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (len >= wl && strncmp(p, word, wl) == 0 &&
		    (len == wl || p[wl] == ' ')) {
			ck_assert_uint_lt(len, cap);
			memcpy(line, p, len);
			line[len] = '\0';
			return true;
		}
		p += len + (nl != NULL);
	}
	return false;
}

#define LINE(text, word, line)                                                \
	ck_assert_msg(find_line(text, word, line, sizeof line),               \
	              "line %d: no line starting with '%s' in:\n%s",          \
	              __LINE__, word, text)

/* Where title stands in a header line, as a whole word; -1 if absent. */
static int title_at(const char *header, const char *title)
{
	size_t tl = strlen(title);

	for (const char *p = strstr(header, title); p;
	     p = strstr(p + 1, title))
		if ((p == header || p[-1] == ' ') &&
		    (p[tl] == ' ' || p[tl] == '\0'))
			return (int)(p - header);
	return -1;
}

/*
 * The cell of row under title in header: a right-aligned column's value
 * ends where its title ends, a left-aligned one starts where its title
 * starts.  A value that is not aligned so fails the test.
 */
static void cell_at(int line, const char *header, const char *row,
                    const char *title, bool right, char *out, size_t cap)
{
	int at = title_at(header, title), b, e;
	int len = (int)strlen(row);

	ck_assert_msg(at >= 0, "line %d: no column %s in '%s'", line, title,
	              header);
	if (right) {
		e = at + (int)strlen(title);
		ck_assert_msg(e <= len && row[e - 1] != ' ' &&
		              (e == len || row[e] == ' '),
		              "line %d: nothing ends under %s:\n%s\n%s", line,
		              title, header, row);
		/* Cells are two or more spaces apart; a value ("400 B")
		 * may hold single ones. */
		for (b = e; b > 0 && !(row[b - 1] == ' ' &&
		                       (b == 1 || row[b - 2] == ' ')); b--)
			;
	} else {
		b = at;
		ck_assert_msg(b < len && row[b] != ' ' &&
		              (b == 0 || row[b - 1] == ' '),
		              "line %d: nothing starts under %s:\n%s\n%s", line,
		              title, header, row);
		for (e = b; e < len && !(row[e] == ' ' &&
		                         (e + 1 == len || row[e + 1] == ' ')); e++)
			;
	}
	ck_assert_int_lt(e - b, (int)cap);
	memcpy(out, row + b, (size_t)(e - b));
	out[e - b] = '\0';
}

#define CELL_IS(header, row, title, right, want)                              \
	do {                                                                  \
		char cell_[256];                                              \
		cell_at(__LINE__, header, row, title, right, cell_,           \
		        sizeof cell_);                                        \
		ck_assert_msg(strcmp(cell_, want) == 0,                       \
		              "line %d: %s is '%s', expected '%s'\n%s\n%s",   \
		              __LINE__, title, cell_, want, header, row);     \
	} while (0)

/*
 * In a key/value block: the value of key (the text after the key and its
 * padding) into out, and the column it starts at.
 */
static int kv_at(int line, const char *text, const char *key, char *out,
                 size_t cap)
{
	char l[1024];
	size_t i = strlen(key);

	ck_assert_msg(find_line(text, key, l, sizeof l),
	              "line %d: no '%s' line in:\n%s", line, key, text);
	ck_assert_msg(l[i] == ' ' && l[i + 1] == ' ',
	              "line %d: '%s' not followed by padding: '%s'", line, key,
	              l);
	while (l[i] == ' ')
		i++;
	ck_assert_uint_lt(strlen(l + i), cap);
	strcpy(out, l + i);
	return (int)i;
}

/* key's value is want, and starts in column col (if col >= 0); returns
 * the column. */
static int kv_is_at(int line, const char *text, const char *key,
                    const char *want, int col)
{
	char v[1024];
	int at = kv_at(line, text, key, v, sizeof v);

	ck_assert_msg(strcmp(v, want) == 0, "line %d: %s is '%s', expected "
	              "'%s' in:\n%s", line, key, v, want, text);
	ck_assert_msg(col < 0 || at == col, "line %d: %s's value is in "
	              "column %d, the others in %d:\n%s", line, key, at, col,
	              text);
	return at;
}
#define KV_IS(text, key, want, col) kv_is_at(__LINE__, text, key, want, col)

static json_t *parse_json(const char *text)
{
	json_error_t e;
	json_t *j;

	ck_assert_msg(strchr(text, '\n') == text + strlen(text) - 1,
	              "--json output is not one line: %s", text);
	j = json_loads(text, 0, &e);
	ck_assert_msg(j != NULL, "--json output is not JSON (%s): %s", e.text,
	              text);
	ck_assert_msg(json_is_object(j), "--json output is not an object");
	return j;
}

/* ---- commands the control socket has had from the start ------------------ */

START_TEST(test_version)
{
	struct mqt_server s;
	struct run r;
	int col;

	start(&s);
	CTL(&r, s, 0, "version");
	col = KV_IS(r.out, "server", "mqd/" PACKAGE_VERSION, -1);
	KV_IS(r.out, "version", PACKAGE_VERSION, col);
	KV_IS(r.out, "mqctl", PACKAGE_VERSION, col);
	ck_assert_str_eq(r.err, "");
	stop(&s);
}
END_TEST

START_TEST(test_stats)
{
	struct mqt_server s;
	struct run r;
	mq_conn *c;
	char v[256];
	int col;

	start(&s);
	c = connect_ok(&s);
	send_n(c, "alpha", 3, 1024);
	send_n(c, "beta", 2, 512);
	CTL(&r, s, 0, "stats");
	col = KV_IS(r.out, "version", PACKAGE_VERSION, -1);
	kv_at(__LINE__, r.out, "uptime", v, sizeof v);
	ck_assert_msg(strspn(v, "0123456789") > 0 &&
	              strcmp(v + strspn(v, "0123456789"), "s") == 0,
	              "uptime '%s'", v);
	KV_IS(r.out, "connections", "1", col);
	KV_IS(r.out, "queues", "2", col);
	KV_IS(r.out, "messages", "5 ready, 0 held, 0 delayed", col);
	KV_IS(r.out, "bytes", "4 KiB", col); /* 3 x 1024 + 2 x 512 */
	kv_at(__LINE__, r.out, "memory", v, sizeof v);
	ck_assert_msg(strstr(v, "resident") && strstr(v, "no limit"),
	              "memory '%s'", v);
	mq_close(c);
	stop(&s);
}
END_TEST

START_TEST(test_queues_table)
{
	struct mqt_server s;
	struct run r;
	char header[1024], row[1024];
	const char *titles[] = {"NAME", "OWNER", "READY", "HELD", "DELAYED",
	                        "CONS", "BYTES", "SENT", "DELIV", "ACKED",
	                        "REDELIV", "EXPIRED", "DEAD", "DROPPED"};
	struct mq_message *m;
	mq_conn *c;
	int last = -1;

	start(&s);
	CTL(&r, s, 0, "queues");
	ck_assert_str_eq(r.out, "no queues\n");
	c = connect_ok(&s);
	send_n(c, "alpha", 5, 100);
	send_n(c, "jobs.long-name:1", 2, 2048);
	ck_assert_int_eq(mq_get(c, "alpha", 0, MQ_AUTO_ACK, &m), MQ_OK);
	mq_message_free(m);
	CTL(&r, s, 0, "queues");
	LINE(r.out, "NAME", header);
	for (size_t i = 0; i < sizeof titles / sizeof titles[0]; i++) {
		int at = title_at(header, titles[i]);
		ck_assert_msg(at > last, "column %s missing or out of order: %s",
		              titles[i], header);
		last = at;
	}
	LINE(r.out, "alpha", row);
	CELL_IS(header, row, "NAME", false, "alpha");
	CELL_IS(header, row, "READY", true, "4");
	CELL_IS(header, row, "HELD", true, "0");
	CELL_IS(header, row, "BYTES", true, "400 B");
	CELL_IS(header, row, "SENT", true, "5");
	CELL_IS(header, row, "DELIV", true, "1");
	CELL_IS(header, row, "DROPPED", true, "0");
	LINE(r.out, "jobs.long-name:1", row);
	CELL_IS(header, row, "NAME", false, "jobs.long-name:1");
	CELL_IS(header, row, "READY", true, "2");
	CELL_IS(header, row, "BYTES", true, "4 KiB");
	/* Sorted by name: alpha before jobs... */
	ck_assert(strstr(r.out, "\nalpha") < strstr(r.out, "\njobs."));
	mq_close(c);
	stop(&s);
}
END_TEST

START_TEST(test_queue_block)
{
	static const char sections[] =
		"[queue jobs]\nmax_length = 100\nmax_bytes = 64K\n"
		"message_ttl = 90s\nack_timeout = 5m\nmax_attempts = 3\n"
		"dead_letter = jobs.dead\n"
		"[queue jobs.dead]\n";
	struct mqt_server s;
	struct run r;
	mq_conn *c;
	int col;

	start_conf(&s, sections);
	c = connect_ok(&s);
	send_n(c, "jobs", 3, 1536);
	CTL(&r, s, 0, "queue", "jobs");
	col = KV_IS(r.out, "name", "jobs", -1);
	KV_IS(r.out, "ready", "3", col);
	KV_IS(r.out, "held", "0", col);
	KV_IS(r.out, "bytes", "4.5 KiB", col);
	KV_IS(r.out, "sent", "3", col);
	KV_IS(r.out, "dead-lettered", "0", col);
	KV_IS(r.out, "flags", "-", col);
	KV_IS(r.out, "max_length", "100", col);
	KV_IS(r.out, "max_bytes", "64 KiB", col);
	KV_IS(r.out, "overflow", "reject", col);
	KV_IS(r.out, "message_ttl", "90s", col);
	KV_IS(r.out, "ack_timeout", "5m", col);
	KV_IS(r.out, "max_attempts", "3", col);
	KV_IS(r.out, "dead_letter", "jobs.dead", col);

	CTL(&r, s, 0, "queue", "jobs.dead");
	col = KV_IS(r.out, "name", "jobs.dead", -1);
	KV_IS(r.out, "max_length", "no limit", col);
	KV_IS(r.out, "message_ttl", "never", col);
	KV_IS(r.out, "dead_letter", "-", col);

	CTL(&r, s, 1, "queue", "nope");
	ck_assert_str_eq(r.out, "");
	ck_assert_str_eq(r.err, "mqctl: no such queue\n");
	mq_close(c);
	stop(&s);
}
END_TEST

START_TEST(test_json)
{
	struct mqt_server s;
	struct run r;
	const json_t *rows, *row;
	mq_conn *c;
	json_t *j;
	size_t i;
	bool seen = false;

	start(&s);
	c = connect_ok(&s);
	send_n(c, "alpha", 2, 10);
	CTL(&r, s, 0, "--json", "queues");
	j = parse_json(r.out);
	ck_assert(json_is_true(json_object_get(j, "ok")));
	rows = json_object_get(j, "queues");
	ck_assert(json_is_array(rows));
	json_array_foreach(rows, i, row)
		if (strcmp(json_string_value(json_object_get(row, "name")),
		           "alpha") == 0) {
			ck_assert_int_eq(json_integer_value(
				json_object_get(row, "ready")), 2);
			seen = true;
		}
	ck_assert(seen);
	json_decref(j);

	CTL(&r, s, 0, "--json", "stats");
	j = parse_json(r.out);
	ck_assert(json_is_true(json_object_get(j, "ok")));
	ck_assert(json_is_object(json_object_get(j, "messages")));
	json_decref(j);

	/* An error is still JSON on stdout, and status 1. */
	CTL(&r, s, 1, "--json", "queue", "nope");
	j = parse_json(r.out);
	ck_assert(json_is_false(json_object_get(j, "ok")));
	ck_assert_str_eq(json_string_value(json_object_get(j, "error")),
	                 "no such queue");
	json_decref(j);
	mq_close(c);
	stop(&s);
}
END_TEST

START_TEST(test_help)
{
	struct mqt_server s;
	struct run r;
	char line[1024];

	start(&s);
	CTL(&r, s, 0, "help");
	LINE(r.out, "queue NAME", line);
	ck_assert_ptr_nonnull(strstr(line, "settings"));
	LINE(r.out, "stats", line);
	stop(&s);
}
END_TEST

/* ---- failures ------------------------------------------------------------ */

START_TEST(test_unknown_command)
{
	struct mqt_server s;
	struct run r;

	start(&s);
	CTL(&r, s, 1, "frobnicate", "now");
	ck_assert_str_eq(r.out, "");
	ck_assert_str_eq(r.err,
	                 "mqctl: unknown command 'frobnicate' (try help)\n");
	/* A wrong argument count is the server's to find: status 1 too. */
	CTL(&r, s, 1, "queue");
	ck_assert_ptr_nonnull(strstr(r.err, "mqctl: wrong number of arguments"));
	stop(&s);
}
END_TEST

START_TEST(test_no_socket)
{
	struct run r;
	char path[256], want[512];
	struct sockaddr_un sa;
	const char *t = getenv("TMPDIR");
	int fd;

	snprintf(path, sizeof path, "%s/mqctl-test.XXXXXX",
	         t && *t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(path));
	strcat(path, "/none.sock");
	run_mqctl(&r, NULL, "-S", path, "stats", (char *)NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.out, "");
	snprintf(want, sizeof want, "mqctl: cannot connect to %s: %s\n", path,
	         strerror(ENOENT));
	ck_assert_msg(strncmp(r.err, want, strlen(want)) == 0, "stderr: %s",
	              r.err);

	/* A socket file nobody listens on (mqd crashed). */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	run_mqctl(&r, NULL, "-S", path, "stats", (char *)NULL);
	ck_assert_int_eq(r.status, 2);
	snprintf(want, sizeof want, "mqctl: cannot connect to %s: %s\n", path,
	         strerror(ECONNREFUSED));
	ck_assert_msg(strncmp(r.err, want, strlen(want)) == 0, "stderr: %s",
	              r.err);
	close(fd);
	unlink(path);
	*strrchr(path, '/') = '\0';
	rmdir(path);
}
END_TEST

START_TEST(test_usage_errors)
{
	struct run r;

	run_mqctl(&r, NULL, (char *)NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "mqctl: no command given"));
	ck_assert_ptr_nonnull(strstr(r.err, "usage: mqctl"));

	run_mqctl(&r, NULL, "--bogus", "stats", (char *)NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "unknown option '--bogus'"));

	run_mqctl(&r, NULL, "-S", (char *)NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "needs an argument"));

	/* A line break would smuggle a second command. */
	run_mqctl(&r, NULL, "-S", "/nonexistent/x.sock", "queue",
	          "a\nshutdown", (char *)NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "line break"));

	run_mqctl(&r, NULL, "-h", (char *)NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "usage: mqctl"));
	ck_assert_ptr_nonnull(strstr(r.out, "MQD_CONTROL_SOCKET"));

	run_mqctl(&r, NULL, "-V", (char *)NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "mqctl (mqd) " PACKAGE_VERSION "\n");
}
END_TEST

START_TEST(test_env_socket)
{
	struct mqt_server s;
	struct run r;

	start(&s);
	run_mqctl(&r, s.ctl_path, "version", (char *)NULL);
	ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
	KV_IS(r.out, "server", "mqd/" PACKAGE_VERSION, -1);

	/* -S wins over the environment. */
	run_mqctl(&r, "/nonexistent/mqd.sock", "-S", s.ctl_path, "version",
	          (char *)NULL);
	ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);

	/* The environment wins over the default, and is what failed. */
	run_mqctl(&r, "/nonexistent/mqd.sock", "version", (char *)NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "mqctl: cannot connect to "
	                                    "/nonexistent/mqd.sock: "));
	/* Empty counts as unset: the default path. */
	run_mqctl(&r, "", "version", (char *)NULL);
	ck_assert_int_ne(r.status, 1);
	if (r.status == 2)
		ck_assert_ptr_nonnull(strstr(r.err, "/run/mqd/mqd.sock"));
	stop(&s);
}
END_TEST

/* ---- commands being added to the control socket -------------------------- */

START_TEST(test_stats_workers)
{
	static const char *const titles[] = {"WORKER", "QUEUES", "CONNS",
	                                     "READY", "HELD", "DELAYED",
	                                     "BYTES", "MAILS", "FRAMES"};
	struct mqt_server s;
	struct run r;
	char header[1024], line[1024], v[256];
	mq_conn *c;
	int col, last = -1;

	start(&s);
	c = connect_ok(&s);
	send_n(c, "alpha", 3, 10);
	CTL(&r, s, 0, "stats");
	col = KV_IS(r.out, "version", PACKAGE_VERSION, -1);
	kv_at(__LINE__, r.out, "rates", v, sizeof v);
	ck_assert_msg(strncmp(v, "in ", 3) == 0 && strstr(v, "/s, out ") &&
	              strcmp(v + strlen(v) - 2, "/s") == 0, "rates '%s'", v);
	KV_IS(r.out, "sent", "3", col);
	KV_IS(r.out, "acked", "0", col);
	KV_IS(r.out, "dead-lettered", "0", col);
	LINE(r.out, "WORKER", header);
	for (size_t i = 0; i < sizeof titles / sizeof titles[0]; i++) {
		int at = title_at(header, titles[i]);
		ck_assert_msg(at > last, "column %s missing or out of order: %s",
		              titles[i], header);
		last = at;
	}
	/* One row per worker (the harness runs 4), indexes under WORKER. */
	for (int w = 0; w < 4; w++) {
		char idx[8];
		const char *p = strstr(r.out, header);
		bool found = false;

		snprintf(idx, sizeof idx, "%d", w);
		for (p = strchr(p, '\n'); p && p[1]; p = strchr(p + 1, '\n')) {
			const char *nl = strchr(p + 1, '\n');
			size_t len = nl ? (size_t)(nl - p - 1) : strlen(p + 1);
			char cell[64];

			ck_assert_uint_lt(len, sizeof line);
			memcpy(line, p + 1, len);
			line[len] = '\0';
			cell_at(__LINE__, header, line, "WORKER", true, cell,
			        sizeof cell);
			if (strcmp(cell, idx) == 0)
				found = true;
		}
		ck_assert_msg(found, "no row for worker %d:\n%s", w, r.out);
	}
	mq_close(c);
	stop(&s);
}
END_TEST

START_TEST(test_connections_and_kill)
{
	struct mqt_server s;
	struct run r;
	char header[1024], row[1024], idbuf[32];
	const json_t *rows;
	json_int_t id;
	mq_conn *c;
	json_t *j;

	start(&s);
	c = connect_ok(&s);
	ck_assert_int_eq(mq_ping(c), MQ_OK);
	CTL(&r, s, 0, "--json", "connections");
	j = parse_json(r.out);
	rows = json_object_get(j, "connections");
	ck_assert_msg(json_array_size(rows) == 1, "%s", r.out);
	id = json_integer_value(json_object_get(json_array_get(rows, 0), "id"));
	ck_assert_int_gt(id, 0);
	json_decref(j);
	snprintf(idbuf, sizeof idbuf, "%lld", (long long)id);

	CTL(&r, s, 0, "connections");
	LINE(r.out, "ID", header);
	ck_assert_msg(title_at(header, "PEER") > title_at(header, "WORKER") &&
	              title_at(header, "CLIENT") > title_at(header, "PEER") &&
	              title_at(header, "OUT") > title_at(header, "IN"),
	              "header: %s", header);
	/* The one row after the header; the id is right-aligned under ID,
	 * so padding may come first. */
	{
		const char *p = strchr(r.out, '\n') + 1;
		size_t len = strcspn(p, "\n");

		ck_assert_uint_lt(len, sizeof row);
		memcpy(row, p, len);
		row[len] = '\0';
		ck_assert_str_eq(p + len, "\n");
	}
	CELL_IS(header, row, "ID", true, idbuf);
	CELL_IS(header, row, "CLIENT", false, "mqt");
	{
		char peer[64];
		cell_at(__LINE__, header, row, "PEER", false, peer, sizeof peer);
		ck_assert_msg(strncmp(peer, "127.0.0.1:", 10) == 0, "peer %s",
		              peer);
	}

	CTL(&r, s, 0, "kill", idbuf);
	ck_assert_msg(strncmp(r.out, "killed connection ", 18) == 0, "%s",
	              r.out);
	ck_assert_int_ne(mq_ping(c), MQ_OK);
	CTL(&r, s, 1, "kill", "999999");
	ck_assert_ptr_nonnull(strstr(r.err, "mqctl: "));
	mq_close(c);
	stop(&s);
}
END_TEST

START_TEST(test_declare_purge_delete)
{
	struct mqt_server s;
	struct run r;
	mq_conn *c;
	int col;

	start(&s);
	CTL(&r, s, 0, "declare", "work", "max_length=10");
	ck_assert_str_eq(r.out, "declared work\n");
	CTL(&r, s, 0, "queue", "work");
	col = KV_IS(r.out, "name", "work", -1);
	KV_IS(r.out, "max_length", "10", col);

	c = connect_ok(&s);
	send_n(c, "work", 4, 8);
	CTL(&r, s, 0, "purge", "work");
	ck_assert_str_eq(r.out, "purged 4 messages\n");
	CTL(&r, s, 0, "purge", "work");
	ck_assert_str_eq(r.out, "purged 0 messages\n");

	CTL(&r, s, 0, "declare", "work", "max_length=10");
	ck_assert_str_eq(r.out, "work exists already, with these settings\n");

	/* Words after the command are the server's, even "--if-empty". */
	send_n(c, "work", 1, 8);
	CTL(&r, s, 1, "delete", "work", "--if-empty");
	CTL(&r, s, 0, "purge", "work");
	ck_assert_str_eq(r.out, "purged 1 message\n");
	CTL(&r, s, 0, "delete", "work", "--if-empty");
	ck_assert_str_eq(r.out, "deleted work\n");
	CTL(&r, s, 1, "queue", "work");

	send_n(c, "work", 1, 8);
	CTL(&r, s, 0, "delete", "work");
	ck_assert_str_eq(r.out, "deleted work\n");
	CTL(&r, s, 1, "queue", "work");
	CTL(&r, s, 1, "purge", "work");
	mq_close(c);
	stop(&s);
}
END_TEST

START_TEST(test_loglevel_config_logreopen)
{
	struct mqt_server s;
	struct run r;

	start(&s); /* the harness runs it at log_level = debug */
	CTL(&r, s, 0, "loglevel", "warn");
	ck_assert_str_eq(r.out, "log level: debug -> warn\n");
	CTL(&r, s, 1, "loglevel", "loud");

	CTL(&r, s, 0, "config");
	ck_assert_msg(strstr(r.out, "[server]\n") != NULL, "%s", r.out);
	ck_assert_msg(strstr(r.out, "\nworkers = 4\n") != NULL, "%s", r.out);

	CTL(&r, s, 0, "logreopen");
	ck_assert_str_eq(r.out, "reopened the log file\n");
	stop(&s);
}
END_TEST

/* The broker's config file with from replaced by to (once). */
static void edit_conf(const struct mqt_server *s, const char *from,
                      const char *to)
{
	char buf[8192], *at;
	size_t n;
	FILE *f = fopen(s->conf_path, "r");

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	at = strstr(buf, from);
	ck_assert_msg(at != NULL, "'%s' not in %s", from, s->conf_path);
	f = fopen(s->conf_path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%.*s%s%s", (int)(at - buf), buf, to, at + strlen(from));
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_reload)
{
	struct mqt_server s;
	struct run r;

	start(&s);
	CTL(&r, s, 0, "reload");
	ck_assert_str_eq(r.out, "reloaded: no changes\n");

	/* A new queue section applies; a new worker count cannot. */
	edit_conf(&s, "workers = 4\n", "workers = 2\n");
	edit_conf(&s, "[server]\n", "[queue reloaded]\nmax_length = 7\n\n"
	                             "[server]\n");
	CTL(&r, s, 0, "reload");
	ck_assert_msg(strncmp(r.out, "reloaded: applied ", 18) == 0 &&
	              strstr(r.out, "; restart needed: ") != NULL &&
	              strstr(r.out, "workers") != NULL, "%s", r.out);
	CTL(&r, s, 0, "queue", "reloaded");
	KV_IS(r.out, "max_length", "7", -1);

	/* A broken file is refused, with the server's reason. */
	edit_conf(&s, "max_length = 7\n", "max_length = seven\n");
	CTL(&r, s, 1, "reload");
	ck_assert_str_eq(r.out, "");
	ck_assert_msg(strncmp(r.err, "mqctl: ", 7) == 0 &&
	              strstr(r.err, "max_length") != NULL, "%s", r.err);
	CTL(&r, s, 0, "queue", "reloaded");
	KV_IS(r.out, "max_length", "7", -1);
	stop(&s);
}
END_TEST

START_TEST(test_shutdown)
{
	struct mqt_server s;
	struct run r;
	siginfo_t si;
	int64_t end;

	start(&s);
	CTL(&r, s, 0, "shutdown", "2s");
	ck_assert_str_eq(r.out, "shutting down: waiting up to 2s for held "
	                        "messages to be acknowledged\n");
	/* It exits by itself (WNOWAIT: mqt_server_stop reaps it). */
	end = mqt_now_ms() + WAIT_MS;
	for (;;) {
		memset(&si, 0, sizeof si);
		ck_assert_int_eq(waitid(P_PID, (id_t)s.pid, &si,
		                        WEXITED | WNOHANG | WNOWAIT), 0);
		if (si.si_pid == s.pid)
			break;
		ck_assert_msg(mqt_now_ms() < end, "mqd still runs after "
		              "shutdown");
		sleep_ms(10);
	}
	stop(&s);
}
END_TEST

/* ======================================================================= */

static Suite *mqctl_suite(void)
{
	Suite *su = suite_create("mqctl");

	ADD(su, test_version);
	ADD(su, test_stats);
	ADD(su, test_queues_table);
	ADD(su, test_queue_block);
	ADD(su, test_json);
	ADD(su, test_help);
	ADD(su, test_unknown_command);
	ADD(su, test_no_socket);
	ADD(su, test_usage_errors);
	ADD(su, test_env_socket);
	ADD(su, test_stats_workers);
	ADD(su, test_connections_and_kill);
	ADD(su, test_declare_purge_delete);
	ADD(su, test_loglevel_config_logreopen);
	ADD(su, test_reload);
	ADD(su, test_shutdown);
	return su;
}

int main(void)
{
	return mqt_run_suite(mqctl_suite());
}
