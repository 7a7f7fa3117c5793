/*
 * The control socket (see control.h for its contract): listening,
 * accepting, reading lines and writing replies.  The commands themselves
 * are in commands.c, which gets each line through mqd_control_dispatch and
 * answers through mqd_control_reply.
 *
 * Everything here runs on the main thread.  Each client is a bufferevent;
 * its input is cut into lines and each line is one command.  A command
 * answers with exactly one JSON object on one line, at once or later (when
 * it has to ask the workers).  One command per client is in progress at a
 * time: the lines after it wait in the client's input buffer, so replies
 * come back in command order without a queue of our own.  Bounds: a line is
 * at most CTL_LINE_MAX bytes; reading stops while CTL_INPUT_HIGH bytes are
 * waiting, and commands stop being taken while CTL_OUTPUT_HIGH bytes of
 * replies are unread.
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
#include <stddef.h>
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

#include "admin/api.h"
#include "admin/control.h"
#include "admin/control_internal.h"
#include "admin/report.h"
#include "core/accept.h"
#include "core/config.h"
#include "core/log.h"

#define CTL_LINE_MAX 4096              /* bytes of a command, without EOL */
#define CTL_CLIENTS_MAX MQD_CONTROL_CLIENTS_MAX
#define CTL_INPUT_HIGH (64u << 10)     /* stop reading above this */
#define CTL_OUTPUT_HIGH (4u << 20)     /* stop taking commands above this */

/* ---- clients: lifetime ------------------------------------------------- */

void mqd_control_unref(struct ctl_client *c)
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
	mqd_control_unref(c);
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

/* Write obj (reference stolen) as one line. */
static void send_json(struct ctl_client *c, json_t *obj)
{
	/* The one reply that cannot be built with jansson: jansson itself
	 * ran out of memory. */
	static const char oom[] = "{\"ok\":false,\"error\":\"out of memory\"}\n";
	char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(6))
	                 : NULL;
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

/* Push what is queued for c into its socket now (non-blocking; whatever
 * does not fit is left to the event loop).  For replies that should be
 * out before the server goes away. */
void mqd_control_flush(struct ctl_client *c)
{
	if (c->bev != NULL)
		(void)evbuffer_write(bufferevent_get_output(c->bev),
		                     bufferevent_getfd(c->bev));
}

static void process_lines(struct ctl_client *c);

/* The answer to the command in progress; the next one may start. */
void mqd_control_reply(struct ctl_client *c, json_t *obj)
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
	/* "o" steals the text; a NULL one (jansson failed) fails the pack,
	 * and send_json says "out of memory" instead. */
	return json_pack("{s:b, s:o}", "ok", 0, "error",
	                 mqd_report_text(msg, sizeof msg));
}

void mqd_control_verror(struct ctl_client *c, const char *fmt, va_list ap)
{
	mqd_control_reply(c, error_json(fmt, ap));
}

/* ---- lines ------------------------------------------------------------- */

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
		mqd_control_dispatch(c, line, n);
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
	mqd_control_unref(c);
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
	mqd_accept_pause_accepted(&ctl->pause);
	if (ctl->nclients >= CTL_CLIENTS_MAX) {
		mqd_log_warn("control socket %s: %u clients already; refusing "
		             "one more", ctl->path, ctl->nclients);
		refuse(fd);
		return;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL ||
	    (c->bev = bufferevent_socket_new(ctl->base, fd,
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
	/* Out of descriptors: pause instead of spinning (core/accept.h). */
	if (mqd_accept_pause_error(&ctl->pause, err))
		return;
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

/* Bind and listen with the given mode; the fd, or -1 (logged). */
static int bind_socket(struct mqd_control *ctl, const struct sockaddr_un *sa,
                       mode_t mode)
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
	/* The umask gives the file its mode (never wider) from its first
	 * instant; the chmod makes sure whatever the umask handling of the
	 * platform.  (umask is per process; no other thread creates files
	 * now.) */
	old = umask(0777 & ~mode);
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
	if (chmod(ctl->path, mode) < 0 || lstat(ctl->path, &st) < 0) {
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

int mqd_control_start(struct event_base *base,
                      const struct mqd_admin_api *api,
                      struct mqd_control **out)
{
	const struct mqd_config *cfg = api->config(api->ctx);
	const char *path = cfg->control_socket;
	struct mqd_control *ctl;
	struct sockaddr_un sa;
	mode_t mode;
	int fd;

	*out = NULL;
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
	ctl->api = *api;
	ctl->base = base;
	snprintf(ctl->path, sizeof ctl->path, "%s", path);
	/* The config allows permission bits only, the owner's rw included. */
	mode = (mode_t)(cfg->control_socket_mode & 0777);
	if (clear_path(path, &sa) < 0 ||
	    (fd = bind_socket(ctl, &sa, mode)) < 0) {
		free(ctl);
		return -1;
	}
	ctl->listener = evconnlistener_new(
		base, accept_cb, ctl,
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
	if (mqd_accept_pause_init(&ctl->pause, base, ctl->listener,
	                          ctl->path) < 0) {
		mqd_log_error("control socket %s: out of memory", path);
		evconnlistener_free(ctl->listener);
		unlink(path);
		free(ctl);
		return -1;
	}
	*out = ctl;
	mqd_log_info("control socket on %s (mode %04o)", path, (unsigned)mode);
	return 0;
}

void mqd_control_stop(struct mqd_control **pctl)
{
	struct mqd_control *ctl = *pctl;
	struct stat st;

	if (ctl == NULL)
		return;
	*pctl = NULL;
	mqd_accept_pause_free(&ctl->pause);
	evconnlistener_free(ctl->listener);
	/* Replies still queued (the answer to "shutdown") get one
	 * non-blocking try before their sockets close. */
	for (struct ctl_client *c = ctl->clients; c != NULL; c = c->next)
		mqd_control_flush(c);
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
