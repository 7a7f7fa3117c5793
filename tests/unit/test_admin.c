/* Admin on its own: the control socket's commands and the metrics page run
 * against a fake struct mqd_admin_api, with no server, worker or queue
 * behind it.  The fake answers its queries from the event loop, as the
 * real one does when the workers' parts come back, or holds them to show
 * that an answer arriving after its client (or admin itself) has gone is
 * dropped safely.  Also: the shared rows of admin/report.h. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <jansson.h>
#include <netinet/in.h>

#include "admin/api.h"
#include "admin/control.h"
#include "admin/metrics.h"
#include "admin/report.h"
#include "core/config.h"
#include "core/log.h"
#include "proto/proto.h"

/* ---- the fake broker --------------------------------------------------- */

enum fake_kind { F_QUEUES, F_WORKERS, F_CONNS, F_KILL, F_ADMIN };

/* A query answered later, from the event loop. */
struct pending {
	enum fake_kind kind;
	void *cb;
	void *arg;
	char name[256]; /* F_QUEUES: "" = every queue */
	uint64_t id;    /* F_KILL */
	enum mqd_admin_op op;
};

static struct fake {
	struct event_base *base;
	struct mqd_config cfg;
	struct mqd_queue_info queues[2];
	struct mqd_worker_info workers[2];
	struct mqd_conn_info conns[1];
	bool refuse;          /* queries fail to start (-1) */
	bool hold;            /* queries wait for fake_release */
	struct pending held[8];
	size_t nheld;
	/* What admin asked for. */
	unsigned queries;
	char asked_name[256];
	uint64_t killed;
	enum mqd_admin_op admin_op;
	struct mqd_queue_conf admin_set;
	bool admin_has_set, admin_if_empty;
	char admin_name[256];
	uint64_t shutdown_ms;
	int reloads;
} fk;

static void answer(const struct pending *p)
{
	struct mqd_admin_result r;

	switch (p->kind) {
	case F_QUEUES:
		if (p->name[0] == '\0') {
			((mqd_queues_cb)p->cb)(p->arg, fk.queues, 2);
		} else {
			size_t i = strcmp(p->name, "alpha") == 0  ? 0
			         : strcmp(p->name, "beta") == 0 ? 1 : 2;
			((mqd_queues_cb)p->cb)(p->arg, i < 2 ? &fk.queues[i]
			                                    : NULL, i < 2);
		}
		break;
	case F_WORKERS:
		((mqd_workers_cb)p->cb)(p->arg, fk.workers, 2);
		break;
	case F_CONNS:
		((mqd_conns_cb)p->cb)(p->arg, fk.conns, 1);
		break;
	case F_KILL:
		((mqd_kill_cb)p->cb)(p->arg, p->id == fk.conns[0].id);
		break;
	case F_ADMIN:
		memset(&r, 0, sizeof r);
		if (p->op == MQD_ADMIN_DELETE && strcmp(p->name, "alpha") != 0) {
			r.code = MQD_ERR_NOT_FOUND;
			snprintf(r.message, sizeof r.message, "no queue '%s'",
			         p->name);
		}
		r.created = p->op == MQD_ADMIN_DECLARE;
		r.count = p->op == MQD_ADMIN_PURGE ? 12 : 0;
		((mqd_admin_cb)p->cb)(p->arg, &r);
		break;
	}
}

static void answer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	answer(arg);
	free(arg);
}

static int fake_post(struct pending *p)
{
	struct timeval now = {0, 0};
	struct pending *copy;

	fk.queries++;
	if (fk.refuse)
		return -1;
	if (fk.hold) {
		ck_assert_uint_lt(fk.nheld, 8);
		fk.held[fk.nheld++] = *p;
		return 0;
	}
	copy = malloc(sizeof *copy);
	ck_assert_ptr_nonnull(copy);
	*copy = *p;
	ck_assert_int_eq(event_base_once(fk.base, -1, EV_TIMEOUT, answer_cb,
	                                 copy, &now), 0);
	return 0;
}

/* Answer every held query now. */
static void fake_release(void)
{
	for (size_t i = 0; i < fk.nheld; i++)
		answer(&fk.held[i]);
	fk.nheld = 0;
}

static void f_stats(void *ctx, struct mqd_server_stats *out)
{
	ck_assert_ptr_eq(ctx, &fk);
	out->uptime_ms = 3723000;
	out->connections = 5;
	out->workers = 2;
	out->mem_accounted = 4096;
	out->max_memory = 1 << 20;
}

static void f_rates(void *ctx, struct mqd_rates *out)
{
	(void)ctx;
	out->in = 12.5;
	out->out = 10.0;
}

static const struct mqd_config *f_config(void *ctx)
{
	(void)ctx;
	return &fk.cfg;
}

static int f_query_queues(void *ctx, const char *name, mqd_queues_cb cb,
                          void *arg)
{
	struct pending p = {.kind = F_QUEUES, .cb = (void *)cb, .arg = arg};

	(void)ctx;
	snprintf(p.name, sizeof p.name, "%s", name ? name : "");
	snprintf(fk.asked_name, sizeof fk.asked_name, "%s", p.name);
	return fake_post(&p);
}

static int f_query_workers(void *ctx, mqd_workers_cb cb, void *arg)
{
	struct pending p = {.kind = F_WORKERS, .cb = (void *)cb, .arg = arg};

	(void)ctx;
	return fake_post(&p);
}

static int f_query_conns(void *ctx, mqd_conns_cb cb, void *arg)
{
	struct pending p = {.kind = F_CONNS, .cb = (void *)cb, .arg = arg};

	(void)ctx;
	return fake_post(&p);
}

static int f_kill_conn(void *ctx, uint64_t id, mqd_kill_cb cb, void *arg)
{
	struct pending p = {.kind = F_KILL, .cb = (void *)cb, .arg = arg,
	                    .id = id};

	(void)ctx;
	fk.killed = id;
	return fake_post(&p);
}

static int f_admin_queue(void *ctx, enum mqd_admin_op op, const char *name,
                         const struct mqd_queue_conf *settings, bool if_empty,
                         mqd_admin_cb cb, void *arg)
{
	struct pending p = {.kind = F_ADMIN, .cb = (void *)cb, .arg = arg,
	                    .op = op};

	(void)ctx;
	snprintf(p.name, sizeof p.name, "%s", name);
	snprintf(fk.admin_name, sizeof fk.admin_name, "%s", name);
	fk.admin_op = op;
	fk.admin_if_empty = if_empty;
	fk.admin_has_set = settings != NULL;
	if (settings)
		fk.admin_set = *settings;
	return fake_post(&p);
}

static void f_reload(void *ctx, struct mqd_reload_result *out)
{
	(void)ctx;
	memset(out, 0, sizeof *out);
	if (fk.reloads++ > 0) {
		snprintf(out->error, sizeof out->error,
		         "/etc/mqd.conf:3: unknown key 'x'");
		return;
	}
	out->ok = true;
	snprintf(out->applied, sizeof out->applied, "log_level, [queue a]");
	snprintf(out->restart_needed, sizeof out->restart_needed, "workers");
}

static void f_shutdown(void *ctx, uint64_t timeout_ms)
{
	(void)ctx;
	fk.shutdown_ms = timeout_ms;
}

static int f_log_reopen(void *ctx)
{
	(void)ctx;
	errno = EACCES;
	return -1;
}

static const struct mqd_admin_api fake_api = {
	.ctx = &fk,
	.stats = f_stats,
	.rates = f_rates,
	.config = f_config,
	.query_queues = f_query_queues,
	.query_workers = f_query_workers,
	.query_conns = f_query_conns,
	.kill_conn = f_kill_conn,
	.admin_queue = f_admin_queue,
	.reload = f_reload,
	.shutdown = f_shutdown,
	.log_reopen = f_log_reopen,
};

/* ---- fixture: admin started on a fresh event base -------------------- */

static char dir[64];
static struct mqd_control *ctl;
static struct mqd_metrics *met;

static void setup(void)
{
	struct mqd_queue_info *q = fk.queues;

	memset(&fk, 0, sizeof fk);
	snprintf(dir, sizeof dir, "/tmp/mqd-test-admin-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(mqd_log_open("", MQD_LOG_WARN), 0);
	fk.base = event_base_new();
	ck_assert_ptr_nonnull(fk.base);
	mqd_config_defaults(&fk.cfg);
	snprintf(fk.cfg.path, sizeof fk.cfg.path, "%s/mqd.conf", dir);
	snprintf(fk.cfg.control_socket, sizeof fk.cfg.control_socket,
	         "%s/mqd.sock", dir);
	fk.cfg.control_socket_mode = 0600;
	fk.cfg.metrics_on = false;
	fk.cfg.workers = 0; /* "one per CPU": config shows stats' count */

	snprintf(q[0].name, sizeof q[0].name, "alpha");
	q[0].owner = 1;
	q[0].ready = 3;
	q[0].held = 1;
	q[0].bytes = 300;
	q[0].consumers = 2;
	q[0].sent = 10;
	q[0].acked = 6;
	q[0].purged = 4;
	q[0].max_length = 100;
	q[0].overflow = 2;
	snprintf(q[0].dead_letter, sizeof q[0].dead_letter, "alpha.dead");
	snprintf(q[1].name, sizeof q[1].name, "beta");
	q[1].ready = 2;
	q[1].delayed = 5;
	q[1].sent = 7;
	q[1].purged = 1;
	q[1].exclusive = true;
	for (unsigned i = 0; i < 2; i++) {
		fk.workers[i].index = i;
		fk.workers[i].queues = 1;
		fk.workers[i].mails = 100 + i;
	}
	fk.conns[0].id = 7;
	snprintf(fk.conns[0].peer, sizeof fk.conns[0].peer, "127.0.0.1:5000");
	snprintf(fk.conns[0].client, sizeof fk.conns[0].client, "app\xff");
	fk.conns[0].held = 3;

	ck_assert_int_eq(mqd_control_start(fk.base, &fake_api, &ctl), 0);
	ck_assert_ptr_nonnull(ctl);
}

static void teardown(void)
{
	char path[128];

	mqd_metrics_stop(&met);
	mqd_control_stop(&ctl);
	event_base_free(fk.base);
	snprintf(path, sizeof path, "%s/log", dir);
	unlink(path);
	rmdir(dir);
	mqd_log_close();
}

/* ---- a client, served by running the event loop ----------------------- */

struct peer {
	int fd;
	char buf[65536];
	size_t len;
	bool eof;
};

static void peer_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer *p = arg;
	ssize_t n;

	(void)what;
	n = read(fd, p->buf + p->len, sizeof p->buf - 1 - p->len);
	if (n <= 0)
		p->eof = true;
	else
		p->len += (size_t)n;
	p->buf[p->len] = '\0';
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Run the loop until want(p) or 5 s; false on timeout. */
static bool serve_until(struct peer *p, bool (*want)(const struct peer *))
{
	struct timeval limit = {5, 0};
	bool late = false;
	struct event *rd = event_new(fk.base, p->fd, EV_READ | EV_PERSIST,
	                             peer_read_cb, p);
	struct event *tm = evtimer_new(fk.base, timeout_cb, &late);

	ck_assert(rd != NULL && tm != NULL);
	ck_assert_int_eq(event_add(rd, NULL), 0);
	ck_assert_int_eq(evtimer_add(tm, &limit), 0);
	while (!want(p) && !p->eof && !late)
		event_base_loop(fk.base, EVLOOP_ONCE);
	event_free(rd);
	event_free(tm);
	return want(p);
}

static bool has_line(const struct peer *p)
{
	return memchr(p->buf, '\n', p->len) != NULL;
}

static bool at_eof(const struct peer *p)
{
	return p->eof;
}

static void ctl_connect(struct peer *p)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(p, 0, sizeof *p);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s",
	         fk.cfg.control_socket);
	p->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(p->fd, 0);
	ck_assert_int_eq(connect(p->fd, (struct sockaddr *)&sa, sizeof sa), 0);
}

/* The next reply line, parsed. */
static json_t *next_reply(struct peer *p, const char *what)
{
	char *nl;
	json_error_t err;
	json_t *j;

	ck_assert_msg(serve_until(p, has_line), "no reply to '%s'", what);
	nl = memchr(p->buf, '\n', p->len);
	*nl = '\0';
	j = json_loads(p->buf, 0, &err);
	ck_assert_msg(j != NULL, "'%s': not JSON (%s): %s", what, err.text,
	              p->buf);
	p->len -= (size_t)(nl + 1 - p->buf);
	memmove(p->buf, nl + 1, p->len);
	return j;
}

/* Send one command line; the reply line, parsed. */
static json_t *ask_on(struct peer *p, const char *cmd)
{
	size_t n = strlen(cmd);

	ck_assert_int_eq(write(p->fd, cmd, n), (ssize_t)n);
	ck_assert_int_eq(write(p->fd, "\n", 1), 1);
	return next_reply(p, cmd);
}

static json_t *ask(const char *cmd)
{
	struct peer p;
	json_t *j;

	ctl_connect(&p);
	j = ask_on(&p, cmd);
	close(p.fd);
	return j;
}

static bool ok(const json_t *j)
{
	return json_is_true(json_object_get(j, "ok"));
}

static const char *error_of(const json_t *j)
{
	return json_string_value(json_object_get(j, "error"));
}

#define GETI(j, k) json_integer_value(json_object_get((j), (k)))

/* ---- the control socket ------------------------------------------------ */

START_TEST(version_and_help)
{
	json_t *j = ask("version");
	const json_t *cmds;

	ck_assert(ok(j));
	ck_assert_str_eq(json_string_value(json_object_get(j, "server")),
	                 MQD_SERVER_NAME);
	json_decref(j);
	j = ask("help");
	cmds = json_object_get(j, "commands");
	ck_assert_uint_ge(json_array_size(cmds), 15);
	json_decref(j);
	ck_assert_uint_eq(fk.queries, 0);
}
END_TEST

START_TEST(queues_rows_in_full)
{
	json_t *j = ask("queues");
	const json_t *rows = json_object_get(j, "queues"), *a, *set;

	ck_assert(ok(j));
	ck_assert_str_eq(fk.asked_name, "");
	ck_assert_uint_eq(json_array_size(rows), 2);
	a = json_array_get(rows, 0);
	ck_assert_str_eq(json_string_value(json_object_get(a, "name")),
	                 "alpha");
	ck_assert_int_eq(GETI(a, "owner"), 1);
	ck_assert_int_eq(GETI(a, "ready"), 3);
	ck_assert_int_eq(GETI(a, "purged"), 4);
	ck_assert(json_is_false(json_object_get(a, "exclusive")));
	set = json_object_get(a, "settings");
	ck_assert_int_eq(GETI(set, "max_length"), 100);
	ck_assert_str_eq(json_string_value(json_object_get(set, "overflow")),
	                 "drop_head");
	ck_assert_str_eq(json_string_value(json_object_get(set,
	                                                   "dead_letter")),
	                 "alpha.dead");
	ck_assert(json_is_true(json_object_get(json_array_get(rows, 1),
	                                       "exclusive")));
	json_decref(j);
}
END_TEST

START_TEST(queue_by_name)
{
	json_t *j = ask("queue beta");

	ck_assert(ok(j));
	ck_assert_str_eq(fk.asked_name, "beta");
	ck_assert_int_eq(GETI(json_object_get(j, "queue"), "delayed"), 5);
	json_decref(j);
	j = ask("queue nosuch");
	ck_assert(!ok(j));
	ck_assert_str_eq(error_of(j), "no such queue");
	json_decref(j);
	/* A bad name never reaches the broker. */
	fk.queries = 0;
	j = ask("queue bad/name");
	ck_assert_str_eq(error_of(j), "bad queue name 'bad/name'");
	ck_assert_uint_eq(fk.queries, 0);
	json_decref(j);
}
END_TEST

START_TEST(stats_from_queues_workers_and_figures)
{
	json_t *j = ask("stats");
	const json_t *msgs = json_object_get(j, "messages");
	const json_t *tot = json_object_get(j, "totals");
	const json_t *mem = json_object_get(j, "memory");
	const json_t *rates = json_object_get(j, "rates");
	const json_t *w = json_object_get(j, "workers");

	ck_assert(ok(j));
	ck_assert_int_eq(GETI(j, "uptime_s"), 3723);
	ck_assert_int_eq(GETI(j, "connections"), 5);
	ck_assert_int_eq(GETI(j, "queues"), 2);
	ck_assert_int_eq(GETI(msgs, "ready"), 5);
	ck_assert_int_eq(GETI(msgs, "held"), 1);
	ck_assert_int_eq(GETI(msgs, "delayed"), 5);
	ck_assert_int_eq(GETI(j, "bytes"), 300);
	ck_assert_int_eq(GETI(tot, "sent"), 17);
	ck_assert_int_eq(GETI(tot, "acked"), 6);
	ck_assert_int_eq(GETI(tot, "purged"), 5);
	ck_assert_int_eq(GETI(mem, "accounted_bytes"), 4096);
	ck_assert_int_eq(GETI(mem, "max_memory"), 1 << 20);
	ck_assert_int_gt(GETI(mem, "rss_bytes"), 0);
	ck_assert_uint_eq(json_array_size(w), 2);
	ck_assert_int_eq(GETI(json_array_get(w, 1), "mails"), 101);
	ck_assert(json_real_value(json_object_get(rates, "in")) == 12.5);
	ck_assert(json_real_value(json_object_get(rates, "out")) == 10.0);
	json_decref(j);
}
END_TEST

START_TEST(connections_and_kill)
{
	json_t *j = ask("connections");
	const json_t *c = json_array_get(json_object_get(j, "connections"), 0);

	ck_assert(ok(j));
	ck_assert_int_eq(GETI(c, "id"), 7);
	ck_assert_int_eq(GETI(c, "held"), 3);
	/* Not UTF-8: made ASCII. */
	ck_assert_str_eq(json_string_value(json_object_get(c, "client")),
	                 "app?");
	json_decref(j);
	j = ask("kill 7");
	ck_assert(ok(j));
	ck_assert_int_eq(GETI(j, "killed"), 7);
	json_decref(j);
	j = ask("kill 8");
	ck_assert_uint_eq(fk.killed, 8);
	ck_assert_str_eq(error_of(j), "no such connection");
	json_decref(j);
	j = ask("kill x");
	ck_assert(!ok(j));
	ck_assert_uint_eq(fk.killed, 8);
	json_decref(j);
}
END_TEST

START_TEST(declare_delete_purge)
{
	json_t *j = ask("declare jobs max_length=5 overflow=drop_head "
	                "message_ttl=30s dead_letter=jobs.dead");

	ck_assert(ok(j));
	ck_assert(json_is_true(json_object_get(j, "created")));
	ck_assert_int_eq(fk.admin_op, MQD_ADMIN_DECLARE);
	ck_assert_str_eq(fk.admin_name, "jobs");
	ck_assert(fk.admin_has_set);
	ck_assert_uint_eq(fk.admin_set.max_length, 5);
	ck_assert_uint_eq(fk.admin_set.overflow, 2);
	ck_assert_uint_eq(fk.admin_set.message_ttl_ms, 30000);
	ck_assert_str_eq(fk.admin_set.dead_letter, "jobs.dead");
	json_decref(j);

	j = ask("delete alpha --if-empty");
	ck_assert(ok(j));
	ck_assert_str_eq(json_string_value(json_object_get(j, "deleted")),
	                 "alpha");
	ck_assert(fk.admin_if_empty);
	ck_assert(!fk.admin_has_set);
	json_decref(j);
	j = ask("delete gamma");
	ck_assert_str_eq(error_of(j), "NOT_FOUND: no queue 'gamma'");
	json_decref(j);

	j = ask("purge alpha");
	ck_assert_int_eq(fk.admin_op, MQD_ADMIN_PURGE);
	ck_assert_int_eq(GETI(j, "purged"), 12);
	json_decref(j);

	fk.queries = 0;
	j = ask("declare jobs max_length=lots");
	ck_assert(!ok(j));
	ck_assert_uint_eq(fk.queries, 0);
	json_decref(j);
}
END_TEST

START_TEST(reload_shutdown_logreopen)
{
	json_t *j = ask("reload");
	const json_t *applied = json_object_get(j, "applied");

	ck_assert(ok(j));
	ck_assert_uint_eq(json_array_size(applied), 2);
	ck_assert_str_eq(json_string_value(json_array_get(applied, 1)),
	                 "[queue a]");
	ck_assert_str_eq(json_string_value(json_array_get(
		json_object_get(j, "restart_needed"), 0)), "workers");
	json_decref(j);
	j = ask("reload");
	ck_assert_str_eq(error_of(j), "/etc/mqd.conf:3: unknown key 'x'");
	json_decref(j);

	j = ask("logreopen");
	ck_assert_str_eq(error_of(j), "cannot reopen the log file: "
	                              "Permission denied");
	json_decref(j);

	j = ask("shutdown 2s");
	ck_assert(json_is_true(json_object_get(j, "shutting_down")));
	ck_assert_int_eq(GETI(j, "timeout_ms"), 2000);
	ck_assert_uint_eq(fk.shutdown_ms, 2000);
	json_decref(j);
}
END_TEST

START_TEST(config_from_the_api)
{
	json_t *j = ask("config");
	const json_t *srv = json_object_get(j, "server");

	ck_assert(ok(j));
	ck_assert_str_eq(json_string_value(json_object_get(j, "path")),
	                 fk.cfg.path);
	ck_assert_str_eq(json_string_value(json_object_get(srv,
	                                                   "control_socket")),
	                 fk.cfg.control_socket);
	/* workers = 0 in the file: the count in force, from stats. */
	ck_assert_int_eq(GETI(srv, "workers"), 2);
	ck_assert_str_eq(json_string_value(json_object_get(srv,
	                                                   "metrics_listen")),
	                 "");
	json_decref(j);
}
END_TEST

START_TEST(query_that_cannot_start)
{
	json_t *j;

	fk.refuse = true;
	j = ask("queues");
	ck_assert_str_eq(error_of(j),
	                 "cannot query the workers (shutting down?)");
	json_decref(j);
	j = ask("connections");
	ck_assert(!ok(j));
	json_decref(j);
}
END_TEST

/* Run the loop until admin has asked n queries. */
static void serve_until_asked(unsigned n)
{
	for (int i = 0; i < 1000 && fk.queries < n; i++)
		event_base_loop(fk.base, EVLOOP_ONCE);
	ck_assert_uint_eq(fk.queries, n);
}

/* Replies come back in command order: a command waits for the answer of
 * the one before it. */
START_TEST(pipelined_commands_in_order)
{
	static const char lines[] = "queue alpha\nversion\nqueue beta\n";
	struct peer p;
	json_t *j;

	ctl_connect(&p);
	fk.hold = true;
	ck_assert_int_eq(write(p.fd, lines, sizeof lines - 1),
	                 (ssize_t)(sizeof lines - 1));
	serve_until_asked(1);
	for (int i = 0; i < 10; i++)
		event_base_loop(fk.base, EVLOOP_NONBLOCK);
	ck_assert_uint_eq(fk.queries, 1); /* queue beta waits its turn */
	fk.hold = false;
	fake_release();
	j = next_reply(&p, "queue alpha");
	ck_assert_str_eq(json_string_value(json_object_get(
		json_object_get(j, "queue"), "name")), "alpha");
	json_decref(j);
	j = next_reply(&p, "version");
	ck_assert(json_is_string(json_object_get(j, "version")));
	json_decref(j);
	j = next_reply(&p, "queue beta");
	ck_assert_str_eq(json_string_value(json_object_get(
		json_object_get(j, "queue"), "name")), "beta");
	json_decref(j);
	close(p.fd);
}
END_TEST

/* Admin goes away with an answer still out: the answer, when it comes,
 * is dropped (under ASan, any use of freed memory fails here). */
START_TEST(answer_after_stop)
{
	struct peer p;

	ctl_connect(&p);
	fk.hold = true;
	ck_assert_int_eq(write(p.fd, "stats\n", 6), 6);
	serve_until_asked(1);
	mqd_control_stop(&ctl);
	ck_assert_ptr_null(ctl);
	mqd_control_stop(&ctl); /* twice: a no-op */
	ck_assert(serve_until(&p, at_eof));
	ck_assert_uint_eq(p.len, 0);
	fake_release(); /* stats' queue rows: its client is gone */
	ck_assert_uint_eq(fk.queries, 1); /* so no workers query follows */
	close(p.fd);
	/* The socket file went with it. */
	ck_assert_int_eq(access(fk.cfg.control_socket, F_OK), -1);
}
END_TEST

/* ---- the metrics page --------------------------------------------------- */

/* The port metrics bound (it logs it). */
static unsigned metrics_port(const char *log)
{
	char text[4096];
	FILE *f = fopen(log, "r");
	size_t n;
	const char *at;

	ck_assert_ptr_nonnull(f);
	n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = '\0';
	at = strstr(text, "http://127.0.0.1:");
	ck_assert_ptr_nonnull(at);
	return (unsigned)atoi(at + strlen("http://127.0.0.1:"));
}

static char *http_get(unsigned port, const char *path, struct peer *p)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port)};
	char req[256];
	char *body;
	int n;

	memset(p, 0, sizeof *p);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(p->fd, 0);
	ck_assert_int_eq(connect(p->fd, (struct sockaddr *)&sa, sizeof sa), 0);
	n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n"
	             "Connection: close\r\n\r\n", path);
	ck_assert_int_eq(write(p->fd, req, (size_t)n), n);
	ck_assert(serve_until(p, at_eof) || p->eof);
	close(p->fd);
	ck_assert_msg(strncmp(p->buf, "HTTP/1.1 200", 12) == 0, "%s", p->buf);
	body = strstr(p->buf, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	return body + 4;
}

START_TEST(metrics_rows_match_the_control_socket)
{
	char log[128];
	struct peer p;
	json_t *rows, *ctl_rows, *st;
	unsigned port;
	size_t i;

	snprintf(log, sizeof log, "%s/log", dir);
	mqd_log_close();
	ck_assert_int_eq(mqd_log_open(log, MQD_LOG_INFO), 0);
	fk.cfg.metrics_on = true;
	snprintf(fk.cfg.metrics_listen.host, sizeof fk.cfg.metrics_listen.host,
	         "127.0.0.1");
	fk.cfg.metrics_listen.port = 0;
	ck_assert_int_eq(mqd_metrics_start(fk.base, &fake_api, &met), 0);
	ck_assert_ptr_nonnull(met);
	port = metrics_port(log);

	rows = json_loads(http_get(port, "/api/queues", &p), 0, NULL);
	ck_assert_uint_eq(json_array_size(rows), 2);
	ctl_rows = ask("queues");
	/* Every key of the metrics row is in the control row, same value;
	 * purged too. */
	for (i = 0; i < 2; i++) {
		json_t *m = json_array_get(rows, i);
		json_t *c = json_array_get(json_object_get(ctl_rows, "queues"),
		                           i);
		const char *key;
		json_t *v;

		ck_assert_ptr_nonnull(json_object_get(m, "purged"));
		ck_assert_ptr_null(json_object_get(m, "settings"));
		json_object_foreach(m, key, v)
			ck_assert_msg(json_equal(v, json_object_get(c, key)),
			              "%s differs", key);
	}
	json_decref(rows);
	json_decref(ctl_rows);

	st = json_loads(http_get(port, "/api/stats", &p), 0, NULL);
	ck_assert_int_eq(GETI(json_object_get(st, "totals"), "purged"), 5);
	ck_assert_uint_eq(json_array_size(json_object_get(st, "workers")), 2);
	json_decref(st);

	ck_assert_ptr_nonnull(strstr(http_get(port, "/metrics", &p),
	                             "mqd_queue_messages_purged_total"
	                             "{queue=\"alpha\"} 4\n"));
}
END_TEST

/* ---- report.h ------------------------------------------------------------ */

START_TEST(report_rows)
{
	struct mqd_queue_info q, sum;
	struct mqd_worker_info w;
	json_t *full, *brief, *wj;

	memset(&q, 0, sizeof q);
	memset(&sum, 0, sizeof sum);
	memset(&w, 0, sizeof w);
	snprintf(q.name, sizeof q.name, "q");
	q.purged = 9;
	q.consumers = 3;
	q.ready = UINT64_C(1) << 40;
	full = mqd_report_queue_json(&q, true);
	brief = mqd_report_queue_json(&q, false);
	ck_assert_int_eq(GETI(full, "purged"), 9);
	ck_assert_int_eq(GETI(brief, "purged"), 9);
	ck_assert_int_eq(GETI(brief, "ready"), INT64_C(1) << 40);
	ck_assert_ptr_nonnull(json_object_get(full, "settings"));
	ck_assert_ptr_null(json_object_get(brief, "exclusive"));
	/* Brief is full less the flags and the settings. */
	ck_assert_uint_eq(json_object_size(full), json_object_size(brief) + 3);
	json_decref(full);
	json_decref(brief);

	mqd_report_add_queue(&sum, &q);
	mqd_report_add_queue(&sum, &q);
	ck_assert_uint_eq(sum.purged, 18);
	ck_assert_uint_eq(sum.ready, UINT64_C(1) << 41);

	w.index = 3;
	w.frames = 8;
	wj = mqd_report_worker_json(&w);
	ck_assert_int_eq(GETI(wj, "index"), 3);
	ck_assert_int_eq(GETI(wj, "frames"), 8);
	ck_assert_uint_eq(json_object_size(wj),
	                  1 + mqd_report_nworker_fields);
	json_decref(wj);
	ck_assert_uint_gt(mqd_report_rss_bytes(), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("admin");
	TCase *tc = tcase_create("control");
	TCase *tm = tcase_create("metrics");
	TCase *tr = tcase_create("report");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, version_and_help);
	tcase_add_test(tc, queues_rows_in_full);
	tcase_add_test(tc, queue_by_name);
	tcase_add_test(tc, stats_from_queues_workers_and_figures);
	tcase_add_test(tc, connections_and_kill);
	tcase_add_test(tc, declare_delete_purge);
	tcase_add_test(tc, reload_shutdown_logreopen);
	tcase_add_test(tc, config_from_the_api);
	tcase_add_test(tc, query_that_cannot_start);
	tcase_add_test(tc, pipelined_commands_in_order);
	tcase_add_test(tc, answer_after_stop);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(tm, setup, teardown);
	tcase_add_test(tm, metrics_rows_match_the_control_socket);
	suite_add_tcase(s, tm);
	tcase_add_test(tr, report_rows);
	suite_add_tcase(s, tr);

	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
