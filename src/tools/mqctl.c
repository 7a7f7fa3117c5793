#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * mqctl: the operator's client for mqd's control socket.  It sends one
 * command line, reads the one JSON reply line, and prints it for a person:
 * aligned tables for lists, key/value blocks for single objects, a short
 * sentence for actions.  --json prints the reply as it came, for scripts.
 *
 * mqctl knows the reply shapes but not the rules: argument checking is the
 * server's (it answers an error, status 1), so a command the server grows
 * later works through mqctl at once, printed as indented JSON until mqctl
 * learns its shape.  This file talks to the socket; mqctl_print.c knows
 * the shapes and mqctl_fmt.c draws the tables.  Exit statuses:
 *
 *   0  the server answered ok
 *   1  the server answered an error (its text on stderr)
 *   2  usage error, or no usable reply (no socket, refused, timeout,
 *      malformed reply)
 */

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "tools/common/cli.h"
#include "tools/mqctl_fmt.h"
#include "tools/mqctl_print.h"

/* The daemon's default [server] control_socket (src/core/config_keys.c). */
#define DEFAULT_SOCKET "/run/mqd/mqd.sock"
#define SOCKET_ENV "MQD_CONTROL_SOCKET"

#define REPLY_TIMEOUT_MS 30000
#define LINE_MAX_BYTES 4096          /* the server's cap on a command */
#define REPLY_MAX_BYTES (256u << 20) /* a reply longer than this is broken */

/* ---- the socket ---------------------------------------------------------- */

static int connect_socket(const char *path, int64_t deadline)
{
	struct sockaddr_un sa;
	struct timeval tv;
	int64_t left = deadline - mqt_mono_ms();
	int fd;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* Bounds a connect to a daemon whose backlog is full, and writes. */
	tv.tv_sec = left > 0 ? left / 1000 : 0;
	tv.tv_usec = left > 0 ? (left % 1000) * 1000 : 1000;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int err = errno == EINPROGRESS ? ETIMEDOUT : errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* 0, or -1 with errno. */
static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * One reply line (without its line end) into *out, malloc'd, length *len.
 * 0; -1 with errno (ETIMEDOUT at the deadline); 1 when the server closed
 * before a whole line (*len says whether part of one came).
 */
static int read_line(int fd, int64_t deadline, char **out, size_t *len)
{
	size_t n = 0, cap = 4096;
	char *buf = malloc(cap), *nl;

	if (buf == NULL)
		oom();
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int64_t left = deadline - mqt_mono_ms();
		ssize_t r;
		int pr;

		if (left <= 0) {
			free(buf);
			errno = ETIMEDOUT;
			return -1;
		}
		pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			free(buf);
			return -1;
		}
		if (pr == 0)
			continue; /* the deadline check above ends it */
		if (n + 1 >= cap) {
			char *nb;

			if (cap >= REPLY_MAX_BYTES) {
				free(buf);
				errno = EMSGSIZE;
				return -1;
			}
			nb = realloc(buf, cap * 2);
			if (nb == NULL)
				oom();
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != ECONNRESET) {
			free(buf);
			return -1;
		}
		if (r <= 0) {
			free(buf);
			*len = n;
			return 1;
		}
		nl = memchr(buf + n, '\n', (size_t)r);
		n += (size_t)r;
		if (nl != NULL) {
			n = (size_t)(nl - buf);
			if (n > 0 && buf[n - 1] == '\r')
				n--;
			buf[n] = '\0';
			*out = buf;
			*len = n;
			return 0;
		}
	}
}

/* ---- main ------------------------------------------------------------------ */

static void usage_line(FILE *f)
{
	fputs("usage: mqctl [-S SOCKET] [--json] [-h] [-V] COMMAND [ARGS...]\n", f);
}

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("mqctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage_line(stderr);
	return EXIT_USAGE;
}

static void help(void)
{
	usage_line(stdout);
	fputs("\nAdminister a running mqd through its control socket.\n\n"
	      "Options:\n"
	      "  -S, --socket PATH  the control socket (default $" SOCKET_ENV
	      ",\n"
	      "                     else " DEFAULT_SOCKET ")\n"
	      "      --json         print the server's JSON reply as it is\n"
	      "  -h, --help         this help\n"
	      "  -V, --version      print mqctl's version\n\n"
	      "Commands:\n"
	      "  stats                       uptime, connections, messages, "
	      "memory, workers\n"
	      "  queues                      every queue, one row each\n"
	      "  queue NAME                  one queue in full, with its "
	      "settings\n"
	      "  connections                 every client connection\n"
	      "  kill ID                     close a connection (its messages "
	      "are redelivered)\n"
	      "  declare NAME [KEY=VALUE...] create a queue\n"
	      "  delete NAME [--if-empty]    delete a queue (and its messages)\n"
	      "  purge NAME                  remove a queue's ready messages\n"
	      "  reload                      re-read the config file\n"
	      "  shutdown [TIMEOUT]          stop, waiting for held messages "
	      "(default 10s)\n"
	      "  loglevel LEVEL              error, warn, info or debug\n"
	      "  logreopen                   reopen the log file\n"
	      "  config                      the effective configuration\n"
	      "  version                     the server's version\n"
	      "  help                        the server's list of commands\n\n"
	      "Exit status: 0 ok, 1 the server answered an error, 2 usage "
	      "error or\nno reply (socket missing, refused, timed out).  "
	      "See mqctl(1).\n", stdout);
}

/* The words joined with spaces, or NULL after a usage error. */
static char *command_line(int argc, char **argv)
{
	size_t len = 0, o = 0;
	char *line;

	for (int i = 0; i < argc; i++) {
		if (argv[i][0] == '\0') {
			usage_error("an empty argument");
			return NULL;
		}
		if (strpbrk(argv[i], "\r\n") != NULL) {
			usage_error("argument %d contains a line break", i + 1);
			return NULL;
		}
		len += strlen(argv[i]) + 1;
	}
	if (len - 1 > LINE_MAX_BYTES) {
		usage_error("the command is over %d bytes", LINE_MAX_BYTES);
		return NULL;
	}
	line = malloc(len + 1);
	if (line == NULL)
		oom();
	for (int i = 0; i < argc; i++)
		o += (size_t)sprintf(line + o, "%s%s", i ? " " : "", argv[i]);
	line[o++] = '\n';
	line[o] = '\0';
	return line;
}

/* Send line to the socket and read the reply; the exit status. */
static int run(const char *path, const char *line, bool raw, int argc,
               char **argv)
{
	int64_t deadline = mqt_mono_ms() + REPLY_TIMEOUT_MS;
	json_error_t jerr;
	const json_t *ok;
	json_t *r;
	char *reply = NULL;
	size_t len = 0;
	int fd, rc, send_err = 0;

	fd = connect_socket(path, deadline);
	if (fd < 0) {
		int err = errno;

		fprintf(stderr, "mqctl: cannot connect to %s: %s\n", path,
		        strerror(err));
		if (err == ENOENT || err == ECONNREFUSED)
			fprintf(stderr, "mqctl: is mqd running?  Give its "
			        "control_socket with -S or $" SOCKET_ENV "\n");
		else if (err == EACCES)
			fprintf(stderr, "mqctl: the socket is private to the "
			        "user mqd runs as\n");
		return EXIT_USAGE;
	}
	/* A refusal ("too many control clients") is sent and the socket
	 * closed at once: a failed send may still leave a reply to read. */
	if (send_all(fd, line, strlen(line)) < 0)
		send_err = errno;
	rc = read_line(fd, deadline, &reply, &len);
	close(fd);
	if (rc != 0) {
		if (rc < 0 && errno == ETIMEDOUT)
			fprintf(stderr, "mqctl: no reply from %s within %ds\n",
			        path, REPLY_TIMEOUT_MS / 1000);
		else if (rc < 0)
			fprintf(stderr, "mqctl: reading from %s: %s\n", path,
			        strerror(errno));
		else if (send_err != 0)
			fprintf(stderr, "mqctl: sending to %s: %s\n", path,
			        strerror(send_err));
		else
			fprintf(stderr, "mqctl: %s closed the connection %s\n",
			        path, len ? "in the middle of the reply"
			                  : "without replying");
		return EXIT_USAGE;
	}
	r = json_loadb(reply, len, 0, &jerr);
	ok = json_object_get(r, "ok");
	if (!json_is_object(r) || !json_is_boolean(ok)) {
		fprintf(stderr, "mqctl: malformed reply from %s: %s\n", path,
		        r == NULL ? jerr.text : "not an object with \"ok\"");
		json_decref(r);
		free(reply);
		return EXIT_USAGE;
	}
	if (raw)
		printf("%s\n", reply);
	free(reply);
	if (json_is_false(ok)) {
		const char *e = get_str(r, "error");
		char *ce = clean(e ? e : "the server refused (no reason given)", 0);

		fprintf(stderr, "mqctl: %s\n", ce);
		free(ce);
		json_decref(r);
		return EXIT_SERVER;
	}
	if (!raw)
		print_reply(r, argc, argv);
	json_decref(r);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 'S'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *env = getenv(SOCKET_ENV);
	const char *path = env != NULL && env[0] != '\0' ? env : DEFAULT_SOCKET;
	bool raw = false;
	char *line;
	int o, rc;

	opterr = 0;
	/* "+": options end at the command; the words after it are the
	 * server's, even when they look like options ("--if-empty"). */
	while ((o = getopt_long(argc, argv, "+:S:hV", longopts, NULL)) != -1) {
		switch (o) {
		case 'S':
			if (optarg[0] == '\0')
				return usage_error("the socket path is empty");
			path = optarg;
			break;
		case 'j':
			raw = true;
			break;
		case 'h':
			help();
			return 0;
		case 'V':
			printf("mqctl (mqd) %s\n", PACKAGE_VERSION);
			return 0;
		case ':':
			return usage_error("option '%s' needs an argument",
			                   mqt_bad_option(argv));
		default:
			return usage_error("unknown option '%s'",
			                   mqt_bad_option(argv));
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	line = command_line(argc - optind, argv + optind);
	if (line == NULL)
		return EXIT_USAGE;
	rc = run(path, line, raw, argc - optind, argv + optind);
	free(line);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "mqctl: writing the output: %s\n",
		        strerror(errno));
		return EXIT_USAGE;
	}
	return rc;
}
