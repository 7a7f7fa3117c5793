/*
 * Between the control socket's two halves, and nobody else: the socket
 * (control.c: clients, lines, replies) and the commands (commands.c: the
 * table and its handlers).
 */
#ifndef MQD_CONTROL_INTERNAL_H
#define MQD_CONTROL_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include <jansson.h>

#include "admin/api.h"
#include "core/accept.h"

struct bufferevent;
struct ctl_cmd;
struct evconnlistener;
struct event_base;
struct ctl_client;

/* The socket and its clients belong to control.c; the commands use the
 * api, and of a client its ctl (NULL once it is gone), id and refs (one
 * per query in flight, so a late answer still finds the struct). */
struct mqd_control {
	struct mqd_admin_api api;   /* what we may ask of the broker */
	struct event_base *base;
	struct evconnlistener *listener;
	struct mqd_accept_pause pause; /* out of descriptors: wait, retry */
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

/* control.c: drop a reference taken on c (c->refs++); the last frees it. */
void mqd_control_unref(struct ctl_client *c);

/* control.c: the answer to the command in progress, obj (reference stolen;
 * NULL: jansson failed, "out of memory" goes instead) as one line; the
 * client's next command may start.  Nothing is written if the client has
 * gone. */
void mqd_control_reply(struct ctl_client *c, json_t *obj);

/* control.c: the answer as {"ok":false,"error":"..."}, the text made
 * from fmt and ap as by vsnprintf. */
void mqd_control_verror(struct ctl_client *c, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* control.c: push what is queued for c into its socket now (non-blocking;
 * whatever does not fit is left to the event loop).  For replies that
 * should be out before the server goes away. */
void mqd_control_flush(struct ctl_client *c);

/* commands.c: run one command line (NUL-terminated, n bytes, EOL removed);
 * it must answer exactly once, now or later. */
void mqd_control_dispatch(struct ctl_client *c, char *line, size_t n);

/* ---- parsing, apart from running (pure: no reply, no log, no api) ---- */

#define MQD_CTL_ARGS_MAX 16 /* words after the command's name */

/* One command line cut into words.  words point into the line. */
struct mqd_ctl_line {
	const struct ctl_cmd *cmd; /* the command found; NULL on error */
	int nwords;                /* the name, then its arguments */
	/* The name and MQD_CTL_ARGS_MAX + 1 words: more than any command
	 * takes, so that too many is told apart. */
	char *words[MQD_CTL_ARGS_MAX + 2];
};

/* commands.c: cut line (NUL-terminated, n bytes; it is written to) into
 * words at blanks and tabs and find its command.  0, or -1 with the
 * error's text (printable ASCII) in why; out->nwords is set either way. */
int mqd_control_parse(char *line, size_t n, struct mqd_ctl_line *out,
                      char *why, size_t cap);

/* commands.c: the arguments of "declare" (argv[0] the queue, then
 * key=value words, which are written to) into *set.  0, or -1 with the
 * error's text (printable ASCII) in why. */
int mqd_control_parse_declare(int argc, char **argv,
                              struct mqd_queue_conf *set, char *why,
                              size_t cap);

#endif
