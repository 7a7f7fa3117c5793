/*
 * The control socket (see control.h for its contract).
 *
 * Everything here runs on the main thread.  Each client is a bufferevent;
 * its input is cut into lines and each line is one command, dispatched
 * through the command table.  A command answers with exactly one JSON
 * object on one line, at once or later (when it has to ask the workers).
 * One command per client is in progress at a time: the lines after it wait
 * in the client's input buffer, so replies come back in command order
 * without a queue of our own.  Bounds: a line is at most CTL_LINE_MAX bytes;
 * reading stops while CTL_INPUT_HIGH bytes are waiting, and commands stop
 * being taken while CTL_OUTPUT_HIGH bytes of replies are unread.
 *
 * Lifetime: a client struct is reference-counted.  Its connection holds one
 * reference and every query in flight to the workers holds one, so a query
 * that returns after its client went away finds the struct still there,
 * sees it closed (ctl == NULL), drops its reply and frees what is left.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>

#include "admin/control.h"
#include "core/log.h"
#include "proto/proto.h"
#include "server.h"

#define CTL_LINE_MAX 4096              /* bytes of a command, without EOL */
#define CTL_CLIENTS_MAX 64
#define CTL_ARGS_MAX 16                /* words after the command's name */
#define CTL_INPUT_HIGH (64u << 10)     /* stop reading above this */
#define CTL_OUTPUT_HIGH (4u << 20)     /* stop taking commands above this */
#define CTL_ECHO_MAX 64                /* bytes of user text put in errors */
#define CTL_SOCKET_MODE 0600

struct ctl_client;

struct mqd_control {
	struct mqd_server *srv;
	struct evconnlistener *listener;
	struct ctl_client *clients; /* open clients, doubly linked */
	unsigned nclients;
	uint64_t next_id;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	/* The socket file we made: stop unlinks the path only while it is
	 * still this file. */
	dev_t dev;
	ino_t ino;
};

struct ctl_client {
	struct ctl_client *prev, *next;
	struct mqd_control *ctl;  /* NULL once the connection is closed */
	struct bufferevent *bev;  /* NULL once the connection is closed */
	uint64_t id;
	unsigned refs;    /* the connection's, plus one per query in flight */
	bool busy;        /* a command's reply has not been written yet */
	bool in_process;  /* process_lines is on the stack */
	bool eof;         /* the client shut down its side: answer, close */
	bool closing;     /* close once the output is written */
};

/* ---- clients: lifetime ------------------------------------------------- */

static void client_unref(struct ctl_client *c)
{
	if (--c->refs == 0)
		free(c);
}

static void client_close(struct ctl_client *c)
{
	struct mqd_control *ctl = c->ctl;

	if (ctl == NULL)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		ctl->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ctl->nclients--;
	mqd_log_debug("control client %llu closed", (unsigned long long)c->id);
	bufferevent_free(c->bev);
	c->bev = NULL;
	c->ctl = NULL;
	client_unref(c);
}

/* Close once every reply is written; read nothing more meanwhile. */
static void close_after_flush(struct ctl_client *c)
{
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		client_close(c);
}

/* ---- replies --------------------------------------------------------------- */

/* Text from the client made safe to quote in an error: printable ASCII
 * only (JSON needs valid UTF-8), cut to CTL_ECHO_MAX bytes. */
static const char *printable(const char *s, char *buf, size_t cap)
{
	size_t i, n = 0;

	for (i = 0; s[i] != '\0' && n + 4 < cap && i < CTL_ECHO_MAX; i++)
		buf[n++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (s[i] != '\0') {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

/* Write obj (reference stolen) as one line. */
static void send_json(struct ctl_client *c, json_t *obj)
{
	/* The one reply that cannot be built with jansson: jansson itself
	 * ran out of memory. */
	static const char oom[] = "{\"ok\":false,\"error\":\"out of memory\"}\n";
	char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	struct evbuffer *out;

	json_decref(obj);
	if (c->bev == NULL) {
		free(text);
		return;
	}
	out = bufferevent_get_output(c->bev);
	if (text == NULL || evbuffer_add_printf(out, "%s\n", text) < 0)
		evbuffer_add(out, oom, sizeof oom - 1);
	free(text);
}

static void process_lines(struct ctl_client *c);

/* The answer to the command in progress; the next one may start. */
static void reply(struct ctl_client *c, json_t *obj)
{
	send_json(c, obj);
	c->busy = false;
	if (!c->in_process && c->ctl != NULL)
		process_lines(c);
}

static json_t *error_json(const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof msg, fmt, ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static void reply_error(struct ctl_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void reply_error(struct ctl_client *c, const char *fmt, ...)
{
	va_list ap;
	json_t *obj;

	va_start(ap, fmt);
	obj = error_json(fmt, ap);
	va_end(ap);
	reply(c, obj);
}

/* ---- queue rows -------------------------------------------------------------- */

static const char *overflow_name(uint8_t overflow)
{
	return overflow == 2 ? "drop_head" : "reject";
}

#define JI(v) ((json_int_t)(v))

/* Every field of a row; NULL if jansson cannot build it. */
static json_t *row_json(const struct mqd_queue_info *r)
{
	json_t *settings = json_pack(
		"{s:I, s:I, s:s, s:I, s:I, s:I, s:s%}",
		"max_length", JI(r->max_length),
		"max_bytes", JI(r->max_bytes),
		"overflow", overflow_name(r->overflow),
		"message_ttl_ms", JI(r->message_ttl_ms),
		"ack_timeout_ms", JI(r->ack_timeout_ms),
		"max_attempts", JI(r->max_attempts),
		"dead_letter", r->dead_letter,
		strnlen(r->dead_letter, sizeof r->dead_letter));

	if (settings == NULL)
		return NULL;
	/* "o" steals settings, also when the pack fails. */
	return json_pack(
		"{s:s%, s:I, s:b, s:b, s:I, s:I, s:I, s:I, s:I,"
		" s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
		"name", r->name, strnlen(r->name, sizeof r->name),
		"owner", JI(r->owner),
		"exclusive", (int)r->exclusive,
		"auto_delete", (int)r->auto_delete,
		"ready", JI(r->ready),
		"held", JI(r->held),
		"delayed", JI(r->delayed),
		"bytes", JI(r->bytes),
		"consumers", JI(r->consumers),
		"sent", JI(r->sent),
		"delivered", JI(r->delivered),
		"acked", JI(r->acked),
		"redelivered", JI(r->redelivered),
		"expired", JI(r->expired),
		"dead_lettered", JI(r->dead_lettered),
		"dropped", JI(r->dropped),
		"purged", JI(r->purged),
		"settings", settings);
}

/* ---- queries to the workers ------------------------------------------------ */

typedef void (*query_done_fn)(struct ctl_client *c,
                              const struct mqd_queue_info *rows, size_t n);

struct ctl_query {
	struct ctl_client *client; /* holds a reference */
	query_done_fn done;
	char name[256];            /* "" = every queue */
};

/* Called exactly once per started query, on the main thread. */
static void query_cb(void *arg, const struct mqd_queue_info *rows, size_t n)
{
	struct ctl_query *q = arg;
	struct ctl_client *c = q->client;

	if (c->ctl != NULL)
		q->done(c, rows, n);
	else
		mqd_log_debug("control client %llu left before its reply",
		              (unsigned long long)c->id);
	free(q);
	client_unref(c);
}

/* Ask the owners; done() answers the command.  name NULL = every queue. */
static void start_query(struct ctl_client *c, const char *name,
                        query_done_fn done)
{
	struct ctl_query *q = calloc(1, sizeof *q);

	if (q == NULL) {
		reply_error(c, "out of memory");
		return;
	}
	q->client = c;
	q->done = done;
	if (name)
		snprintf(q->name, sizeof q->name, "%s", name);
	c->refs++;
	if (mqd_server_query_queues(c->ctl->srv, name, query_cb, q) < 0) {
		free(q);
		c->refs--;
		reply_error(c, "cannot query the workers (shutting down?)");
	}
}

/* ---- commands ---------------------------------------------------------- */

struct ctl_cmd {
	const char *name;
	int min_args, max_args; /* words after the name */
	/* Must answer (reply/reply_error) exactly once, now or later. */
	void (*handler)(struct ctl_client *c, int argc, char **argv);
	const char *usage;
	const char *help;
};

static void cmd_help(struct ctl_client *c, int argc, char **argv);
static void cmd_version(struct ctl_client *c, int argc, char **argv);
static void cmd_stats(struct ctl_client *c, int argc, char **argv);
static void cmd_queues(struct ctl_client *c, int argc, char **argv);
static void cmd_queue(struct ctl_client *c, int argc, char **argv);

static const struct ctl_cmd commands[] = {
	{ "help", 0, 0, cmd_help, "help", "list the commands" },
	{ "version", 0, 0, cmd_version, "version", "the server's version" },
	{ "stats", 0, 0, cmd_stats, "stats",
	  "uptime, connections, queues, messages, memory" },
	{ "queues", 0, 0, cmd_queues, "queues",
	  "every queue, one row each, sorted by name" },
	{ "queue", 1, 1, cmd_queue, "queue NAME",
	  "one queue in full, with its settings" },
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void cmd_help(struct ctl_client *c, int argc, char **argv)
{
	json_t *list = json_array();

	(void)argc;
	(void)argv;
	for (size_t i = 0; list != NULL && i < NCOMMANDS; i++) {
		if (json_array_append_new(
			    list, json_pack("{s:s, s:s, s:s}", "name",
		                            commands[i].name, "usage",
		                            commands[i].usage, "help",
		                            commands[i].help)) < 0) {
			json_decref(list);
			list = NULL;
		}
	}
	reply(c, list ? json_pack("{s:b, s:o}", "ok", 1, "commands", list)
	              : NULL);
}

static void cmd_version(struct ctl_client *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	reply(c, json_pack("{s:b, s:s, s:s}", "ok", 1, "version",
	                   PACKAGE_VERSION, "server", MQD_SERVER_NAME));
}

/* Resident set size from /proc/self/statm; 0 if it cannot be read. */
static uint64_t rss_bytes(void)
{
	unsigned long long size, resident;
	long page = sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/statm", "re");
	int n;

	if (f == NULL)
		return 0;
	n = fscanf(f, "%llu %llu", &size, &resident);
	fclose(f);
	return n == 2 && page > 0 ? resident * (uint64_t)page : 0;
}

static void stats_done(struct ctl_client *c, const struct mqd_queue_info *rows,
                       size_t n)
{
	struct mqd_server_stats st;
	uint64_t ready = 0, held = 0, delayed = 0, bytes = 0;

	for (size_t i = 0; i < n; i++) {
		ready += rows[i].ready;
		held += rows[i].held;
		delayed += rows[i].delayed;
		bytes += rows[i].bytes;
	}
	memset(&st, 0, sizeof st);
	mqd_server_stats(c->ctl->srv, &st);
	reply(c, json_pack(
		"{s:b, s:s, s:I, s:I, s:I, s:I,"
		" s:{s:I, s:I, s:I}, s:I, s:{s:I, s:I, s:I}}",
		"ok", 1,
		"version", PACKAGE_VERSION,
		"uptime_s", JI(st.uptime_ms / 1000),
		"connections", JI(st.connections),
		"workers", JI(st.workers),
		"queues", JI(n),
		"messages",
		"ready", JI(ready), "held", JI(held), "delayed", JI(delayed),
		"bytes", JI(bytes),
		"memory",
		"rss_bytes", JI(rss_bytes()),
		"accounted_bytes", JI(st.mem_accounted),
		"max_memory", JI(st.max_memory)));
}

static void cmd_stats(struct ctl_client *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	start_query(c, NULL, stats_done);
}

static void queues_done(struct ctl_client *c,
                        const struct mqd_queue_info *rows, size_t n)
{
	json_t *list = json_array();

	for (size_t i = 0; list != NULL && i < n; i++) {
		if (json_array_append_new(list, row_json(&rows[i])) < 0) {
			json_decref(list);
			list = NULL;
		}
	}
	reply(c, list ? json_pack("{s:b, s:o}", "ok", 1, "queues", list)
	              : NULL);
}

static void cmd_queues(struct ctl_client *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	start_query(c, NULL, queues_done);
}

static void queue_done(struct ctl_client *c, const struct mqd_queue_info *rows,
                       size_t n)
{
	json_t *row;

	if (n == 0) {
		reply_error(c, "no such queue");
		return;
	}
	row = row_json(&rows[0]);
	reply(c, row ? json_pack("{s:b, s:o}", "ok", 1, "queue", row) : NULL);
}

static void cmd_queue(struct ctl_client *c, int argc, char **argv)
{
	char echo[CTL_ECHO_MAX + 4];

	(void)argc;
	if (!mqd_name_valid((const uint8_t *)argv[0], strlen(argv[0]))) {
		reply_error(c, "bad queue name '%s'",
		            printable(argv[0], echo, sizeof echo));
		return;
	}
	start_query(c, argv[0], queue_done);
}

/* ---- lines ------------------------------------------------------------- */

static const struct ctl_cmd *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* One command line (NUL-terminated, n bytes, EOL removed). */
static void dispatch(struct ctl_client *c, char *line, size_t n)
{
	char *argv[CTL_ARGS_MAX + 2], *save = NULL, *w;
	char echo[CTL_ECHO_MAX + 4];
	const struct ctl_cmd *cmd;
	int argc = 0, nargs;

	if (strlen(line) != n) {
		reply_error(c, "bad command: it contains a NUL byte");
		return;
	}
	for (w = strtok_r(line, " \t", &save);
	     w != NULL && argc < CTL_ARGS_MAX + 2;
	     w = strtok_r(NULL, " \t", &save))
		argv[argc++] = w;
	if (argc == 0) {
		reply_error(c, "empty command (try help)");
		return;
	}
	mqd_log_debug("control client %llu: %s", (unsigned long long)c->id,
	              printable(argv[0], echo, sizeof echo));
	cmd = find_command(argv[0]);
	if (cmd == NULL) {
		reply_error(c, "unknown command '%s' (try help)",
		            printable(argv[0], echo, sizeof echo));
		return;
	}
	nargs = argc - 1;
	if (nargs < cmd->min_args || nargs > cmd->max_args) {
		reply_error(c, "wrong number of arguments for '%s' (usage: %s)",
		            cmd->name, cmd->usage);
		return;
	}
	cmd->handler(c, nargs, argv + 1);
}

/*
 * Take whole lines from the input and run them, one at a time, while no
 * command is in progress and the client reads its replies.  Called when
 * input arrives, when a reply is written, and when output drains.
 */
static void process_lines(struct ctl_client *c)
{
	c->in_process = true;
	c->refs++; /* a close below must not free c under us */
	while (c->ctl != NULL && !c->busy && !c->closing) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		struct evbuffer *out = bufferevent_get_output(c->bev);
		size_t avail = evbuffer_get_length(in), n = 0;
		ev_ssize_t eol;
		char *line;

		if (evbuffer_get_length(out) >= CTL_OUTPUT_HIGH)
			break; /* resumed by write_cb */
		eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF).pos;
		/* Room for CTL_LINE_MAX bytes and a CR before the LF. */
		if (eol < 0 ? avail > CTL_LINE_MAX + 1
		            : (size_t)eol > CTL_LINE_MAX + 1)
			goto too_long;
		if (eol >= 0) {
			line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
		} else if (c->eof && avail > 0) {
			/* The last line, sent without its line end. */
			line = malloc(avail + 1);
			if (line != NULL) {
				n = (size_t)evbuffer_remove(in, line, avail);
				line[n] = '\0';
			}
		} else {
			if (c->eof) /* everything answered */
				close_after_flush(c);
			break;
		}
		if (line == NULL) {
			mqd_log_error("control client %llu: out of memory",
			              (unsigned long long)c->id);
			client_close(c);
			break;
		}
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		if (n > CTL_LINE_MAX) {
			free(line);
			goto too_long;
		}
		c->busy = true;
		dispatch(c, line, n);
		free(line);
		continue;
too_long:
		mqd_log_info("control client %llu: line over %u bytes; closing",
		             (unsigned long long)c->id, CTL_LINE_MAX);
		send_json(c, json_pack("{s:b, s:s}", "ok", 0, "error",
		                       "line too long"));
		close_after_flush(c);
		break;
	}
	c->in_process = false;
	client_unref(c);
}

/* ---- libevent callbacks ------------------------------------------------------ */

static void read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	process_lines(arg);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_client *c = arg;

	if (c->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			client_close(c);
		return;
	}
	/* Output drained below its low mark: take commands again. */
	if (!c->busy)
		process_lines(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_client *c = arg;

	(void)bev;
	if (what & BEV_EVENT_ERROR) {
		mqd_log_debug("control client %llu: %s", (unsigned long long)c->id,
		              evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		client_close(c);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* The client may have only shut down its writing side
		 * (`echo stats | nc -U`): answer what it sent, then close.
		 * libevent has stopped reading already. */
		c->eof = true;
		if (!c->busy)
			process_lines(c);
	}
}

/* Over the client limit: say why in one line, then hang up. */
static void refuse(evutil_socket_t fd)
{
	char msg[64];
	json_t *obj;
	char *text;

	snprintf(msg, sizeof msg, "too many control clients (%u)",
	         CTL_CLIENTS_MAX);
	obj = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
	text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	json_decref(obj);
	if (text != NULL) {
		size_t len = strlen(text);
		text[len] = '\n'; /* replaces the NUL; len + 1 bytes sent */
		/* A fresh socket's buffer is empty: one small send fits. */
		if (send(fd, text, len + 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			mqd_log_debug("control: refusal not sent: %s",
			              strerror(errno));
		free(text);
	}
	evutil_closesocket(fd);
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
	struct mqd_control *ctl = arg;
	struct ctl_client *c;
	struct ucred cred;
	socklen_t clen = sizeof cred;

	(void)lev;
	(void)sa;
	(void)salen;
	if (ctl->nclients >= CTL_CLIENTS_MAX) {
		mqd_log_warn("control socket %s: %u clients already; refusing "
		             "one more", ctl->path, ctl->nclients);
		refuse(fd);
		return;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL ||
	    (c->bev = bufferevent_socket_new(ctl->srv->base, fd,
	                                     BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		mqd_log_error("control socket %s: out of memory accepting",
		              ctl->path);
		free(c);
		evutil_closesocket(fd);
		return;
	}
	c->ctl = ctl;
	c->id = ++ctl->next_id;
	c->refs = 1;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CTL_INPUT_HIGH);
	bufferevent_setwatermark(c->bev, EV_WRITE, CTL_OUTPUT_HIGH / 2, 0);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0) {
		mqd_log_error("control socket %s: cannot watch a client",
		              ctl->path);
		bufferevent_free(c->bev);
		free(c);
		return;
	}
	c->next = ctl->clients;
	if (ctl->clients)
		ctl->clients->prev = c;
	ctl->clients = c;
	ctl->nclients++;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
		mqd_log_debug("control client %llu connected (pid %ld, uid %ld)",
		              (unsigned long long)c->id, (long)cred.pid,
		              (long)cred.uid);
	else
		mqd_log_debug("control client %llu connected",
		              (unsigned long long)c->id);
}

static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct mqd_control *ctl = arg;
	int err = EVUTIL_SOCKET_ERROR();

	(void)lev;
	/* EMFILE and friends: log and keep listening; the backlog waits. */
	mqd_log_error("accept on control socket %s: %s", ctl->path,
	              evutil_socket_error_to_string(err));
}

/* ---- the socket file --------------------------------------------------------- */

/* The directory part of path, for messages. */
static void dir_of(const char *path, char *out, size_t cap)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(out, cap, ".");
	else if (slash == path)
		snprintf(out, cap, "/");
	else
		snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

/*
 * Make the path free for our bind: nothing there is fine; a socket nobody
 * listens on (left by a crashed run) is removed; a socket someone answers
 * on, or anything that is not a socket, is an error.  0 or -1 (logged).
 */
static int clear_path(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	char dir[sizeof sa->sun_path];
	int fd, rc, err;

	if (lstat(path, &st) < 0) {
		if (errno != ENOENT) {
			mqd_log_error("control socket %s: %s", path,
			              strerror(errno));
			return -1;
		}
		dir_of(path, dir, sizeof dir);
		if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
			return 0;
		/* A run-time directory such as /run/mqd: make the last level
		 * (only that: a wrong parent stays an error). */
		if (mkdir(dir, 0755) == 0) {
			mqd_log_info("control socket: created directory %s", dir);
			return 0;
		}
		mqd_log_error("control socket %s: directory %s does not exist "
		              "and cannot be created: %s",
		              path, dir, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		mqd_log_error("control socket %s: the path exists and is not "
		              "a socket; not touching it", path);
		return -1;
	}
	/* Non-blocking, so a live peer with a full backlog answers EAGAIN
	 * instead of holding start-up. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		mqd_log_error("control socket %s: socket: %s", path,
		              strerror(errno));
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
	err = errno;
	close(fd);
	if (rc == 0 || err == EAGAIN || err == EINPROGRESS) {
		mqd_log_error("control socket %s is in use by another process",
		              path);
		return -1;
	}
	if (err != ECONNREFUSED) {
		mqd_log_error("control socket %s: %s", path, strerror(err));
		return -1;
	}
	mqd_log_warn("control socket %s: removing a stale socket file (left "
	             "by a process that is gone)", path);
	if (unlink(path) < 0 && errno != ENOENT) {
		mqd_log_error("control socket %s: cannot remove the stale file: "
		              "%s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Bind and listen with mode CTL_SOCKET_MODE; the fd, or -1 (logged). */
static int bind_socket(struct mqd_control *ctl, const struct sockaddr_un *sa)
{
	char dir[sizeof sa->sun_path];
	struct stat st;
	mode_t old;
	int fd, rc, err;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		mqd_log_error("control socket %s: socket: %s", ctl->path,
		              strerror(errno));
		return -1;
	}
	/* The umask makes the file private from its first instant; the
	 * chmod makes sure whatever the umask handling of the platform.
	 * (umask is per process; no other thread creates files now.) */
	old = umask(0777 & ~CTL_SOCKET_MODE);
	rc = bind(fd, (const struct sockaddr *)sa, sizeof *sa);
	err = errno;
	umask(old);
	if (rc < 0) {
		dir_of(ctl->path, dir, sizeof dir);
		if (err == EADDRINUSE)
			mqd_log_error("control socket %s is in use by another "
			              "process", ctl->path);
		else if (err == ENOENT)
			mqd_log_error("control socket %s: directory %s does "
			              "not exist", ctl->path, dir);
		else
			mqd_log_error("control socket %s: bind: %s", ctl->path,
			              strerror(err));
		close(fd);
		return -1;
	}
	if (chmod(ctl->path, CTL_SOCKET_MODE) < 0 || lstat(ctl->path, &st) < 0) {
		mqd_log_error("control socket %s: %s", ctl->path,
		              strerror(errno));
		close(fd);
		unlink(ctl->path);
		return -1;
	}
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	return fd;
}

int mqd_control_start(struct mqd_server *s)
{
	const char *path = s->cfg.control_socket;
	struct mqd_control *ctl;
	struct sockaddr_un sa;
	int fd;

	s->control = NULL;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (path[0] == '\0' || strlen(path) >= sizeof sa.sun_path) {
		mqd_log_error("control socket '%s': the path must be 1 to %zu "
		              "bytes", path, sizeof sa.sun_path - 1);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ctl = calloc(1, sizeof *ctl);
	if (ctl == NULL) {
		mqd_log_error("control socket %s: out of memory", path);
		return -1;
	}
	ctl->srv = s;
	snprintf(ctl->path, sizeof ctl->path, "%s", path);
	if (clear_path(path, &sa) < 0 || (fd = bind_socket(ctl, &sa)) < 0) {
		free(ctl);
		return -1;
	}
	ctl->listener = evconnlistener_new(
		s->base, accept_cb, ctl,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16, fd);
	if (ctl->listener == NULL) {
		mqd_log_error("control socket %s: listen: %s", path,
		              strerror(errno));
		close(fd);
		unlink(path);
		free(ctl);
		return -1;
	}
	evconnlistener_set_error_cb(ctl->listener, accept_error_cb);
	s->control = ctl;
	mqd_log_info("control socket on %s", path);
	return 0;
}

void mqd_control_stop(struct mqd_server *s)
{
	struct mqd_control *ctl = s->control;
	struct stat st;

	if (ctl == NULL)
		return;
	s->control = NULL;
	evconnlistener_free(ctl->listener);
	while (ctl->clients != NULL)
		client_close(ctl->clients);
	/* Another process may have replaced the file (after removing ours
	 * by hand): leave its socket alone. */
	if (lstat(ctl->path, &st) == 0 && st.st_dev == ctl->dev &&
	    st.st_ino == ctl->ino)
		unlink(ctl->path);
	mqd_log_debug("control socket %s closed", ctl->path);
	free(ctl);
}
