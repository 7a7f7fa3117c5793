#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * mq: the command-line client.  One subcommand per broker operation a
 * person (or a shell script) needs: send, get, consume, publish,
 * subscribe, bind, unbind, request, serve, declare, delete, purge, ping.
 * Everything goes through libmq; this file only parses arguments, moves
 * bytes between stdio (or a child process, for serve) and the library,
 * and maps results to exit statuses:
 *
 *   0  success
 *   1  the server refused (its error name and words on stderr), or the
 *      connection failed
 *   2  usage error
 *   3  get: nothing (or fewer than COUNT messages) arrived in time;
 *      request: no reply in time
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mq/mq.h"
#include "core/duration.h"
#include "tools/common/cli.h"

#define EXIT_SERVER 1
#define EXIT_USAGE 2
#define EXIT_EMPTY 3

/* Options every subcommand accepts, wherever they appear. */
#define COMMON_SHORT "s:h"
#define COMMON_LONG \
	{ "server", required_argument, NULL, 's' }, \
	{ "help", no_argument, NULL, 'h' }

/* Long-only options get codes above any character. */
enum {
	OPT_NO_ACK = 256,
	OPT_PREFETCH,
	OPT_TTL,
	OPT_DELAY,
	OPT_MAX_LENGTH,
	OPT_MAX_BYTES,
	OPT_OVERFLOW,
	OPT_ACK_TIMEOUT,
	OPT_MAX_ATTEMPTS,
	OPT_DEAD_LETTER,
	OPT_EXCLUSIVE,
	OPT_AUTO_DELETE,
	OPT_PASSIVE,
	OPT_IF_EMPTY,
};

struct command {
	const char *name;
	int (*run)(const struct command *cmd, int argc, char **argv);
	const char *usage; /* arguments after "mq NAME" */
};

/* Set from the command line or the environment before a command runs. */
struct ctx {
	const char *server;
};

static struct ctx ctx;

/* ---- messages and exits ---------------------------------------------- */

static void usage_line(FILE *f, const struct command *cmd)
{
	if (cmd != NULL)
		fprintf(f, "usage: mq [-s HOST:PORT] %s%s%s\n", cmd->name,
		        cmd->usage[0] ? " " : "", cmd->usage);
	else
		fprintf(f, "usage: mq [-s HOST:PORT] [-h] [-V] COMMAND [ARGS...]\n");
}

static int usage_error(const struct command *cmd, const char *fmt,
                       const char *arg)
{
	fputs("mq: ", stderr);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	usage_line(stderr, cmd);
	return EXIT_USAGE;
}

/* Report a failed library call; returns the exit status for it. */
static int report(mq_conn *c, int err, const struct command *cmd)
{
	const char *msg = c != NULL ? mq_last_error_message(c) : "";

	if (err >= MQ_ERR_BAD_FRAME && err <= MQ_ERR_INTERNAL) {
		if (msg[0] != '\0')
			fprintf(stderr, "mq: %s: %s\n", mq_strerror(err), msg);
		else
			fprintf(stderr, "mq: %s\n", mq_strerror(err));
		return EXIT_SERVER;
	}
	switch (err) {
	case MQ_ERR_IO:
		fprintf(stderr, "mq: %s: %s\n", mq_strerror(err),
		        strerror(errno));
		return EXIT_SERVER;
	case MQ_ERR_CLOSED:
		fprintf(stderr, "mq: the server closed the connection\n");
		return EXIT_SERVER;
	case MQ_ERR_INVALID:
		fprintf(stderr, "mq: invalid argument (queue and header names "
		        "are 1 to 255 characters of A-Z a-z 0-9 . _ - :; "
		        "topics are dot-separated, patterns may use * and a "
		        "final >)\n");
		usage_line(stderr, cmd);
		return EXIT_USAGE;
	case MQ_ERR_PROTOCOL:
		fprintf(stderr, "mq: %s%s%s\n", mq_strerror(err),
		        msg[0] ? ": " : "", msg);
		return EXIT_SERVER;
	default:
		fprintf(stderr, "mq: %s\n", mq_strerror(err));
		return EXIT_SERVER;
	}
}

static int open_conn(mq_conn **c)
{
	int rc = mq_connect(c, ctx.server, "mq");

	if (rc == 0)
		return 0;
	fprintf(stderr, "mq: cannot connect to %s: %s\n", ctx.server,
	        rc == MQ_ERR_IO ? strerror(errno) : mq_strerror(rc));
	return EXIT_SERVER;
}

/* ---- argument helpers ------------------------------------------------ */

/* A decimal number in [0, max]. */
static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return false;
	*out = v;
	return true;
}

/* A duration that fits a u32 of milliseconds. */
static bool parse_ms32(const char *s, uint32_t *out)
{
	uint64_t ms;

	if (mq_parse_duration(s, &ms) != 0 || ms > UINT32_MAX)
		return false;
	*out = (uint32_t)ms;
	return true;
}

/*
 * getopt_long over a subcommand's arguments (argv[0] is its name), with
 * the common options handled here.  Options may come before or after the
 * positional arguments.  Returns the option, -1 at the end, or an exit
 * status (negated, below -1) for an error or -h.
 */
static int next_opt(const struct command *cmd, int argc, char **argv,
                    const char *shortopts, const struct option *longopts)
{
	int o = getopt_long(argc, argv, shortopts, longopts, NULL);

	switch (o) {
	case 's':
		ctx.server = optarg;
		return next_opt(cmd, argc, argv, shortopts, longopts);
	case 'h':
		usage_line(stdout, cmd);
		fputs("See mq(1) for the options.\n", stdout);
		return -100 - 0;
	case '?':
		usage_error(cmd, "unknown option '%s'", mqt_bad_option(argv));
		return -100 - EXIT_USAGE;
	case ':':
		usage_error(cmd, "option '%s' needs an argument",
		            mqt_bad_option(argv));
		return -100 - EXIT_USAGE;
	default:
		return o;
	}
}

#define OPT_EXIT(o) (-((o) + 100))
#define IS_OPT_EXIT(o) ((o) <= -100)

/* ---- send ------------------------------------------------------------ */

/* All of stdin; *len gets its size.  NULL on failure (reported). */
static char *read_all(FILE *in, size_t *len)
{
	size_t cap = 65536, n = 0, r;
	char *buf = malloc(cap), *nb;

	if (buf == NULL)
		goto nomem;
	while ((r = fread(buf + n, 1, cap - n, in)) > 0) {
		n += r;
		if (n == cap) {
			nb = realloc(buf, cap * 2);
			if (nb == NULL)
				goto nomem;
			buf = nb;
			cap *= 2;
		}
	}
	if (ferror(in)) {
		fprintf(stderr, "mq: reading standard input: %s\n",
		        strerror(errno));
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
nomem:
	free(buf);
	fprintf(stderr, "mq: out of memory reading standard input\n");
	return NULL;
}

/* SEND to a queue, or PUBLISH to a topic, waiting for the answer or
 * (quiet) not. */
static int put_message(mq_conn *c, bool publish, bool quiet, const char *dest,
                       const void *body, size_t len,
                       const struct mq_send_opts *o)
{
	if (publish)
		return mq_publish(c, dest, body, len, o, quiet ? MQ_QUIET : 0,
		                  NULL);
	if (quiet)
		return mq_send_quiet(c, dest, body, len, o);
	return mq_send(c, dest, body, len, o, NULL);
}

/* One message per line of stdin, pipelined; errors come back at the sync. */
static int send_lines(const struct command *cmd, mq_conn *c, bool publish,
                      const char *queue, const struct mq_send_opts *o)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long sent = 0;
	int rc = 0;

	while ((n = getline(&line, &cap, stdin)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			n--;
		rc = put_message(c, publish, true, queue, line, (size_t)n, o);
		if (rc != 0)
			break;
		sent++;
	}
	free(line);
	if (rc == 0 && ferror(stdin)) {
		fprintf(stderr, "mq: reading standard input: %s\n",
		        strerror(errno));
		return EXIT_SERVER;
	}
	if (rc == 0)
		rc = mq_sync(c);
	if (rc == 0)
		return 0;
	rc = report(c, rc, cmd);
	if (mq_quiet_errors(c) > 0)
		fprintf(stderr, "mq: %u of %lu messages were refused\n",
		        mq_quiet_errors(c), sent);
	return rc;
}

/* send and publish: the same options, a queue or a topic. */
static int send_or_publish(const struct command *cmd, int argc, char **argv,
                           bool publish)
{
	static const struct option longopts[] = {
		COMMON_LONG,
		{ "lines", no_argument, NULL, 'l' },
		{ "priority", required_argument, NULL, 'p' },
		{ "header", required_argument, NULL, 'H' },
		{ "ttl", required_argument, NULL, OPT_TTL },
		{ "delay", required_argument, NULL, OPT_DELAY },
		{ NULL, 0, NULL, 0 },
	};
	struct mq_send_opts so;
	struct mq_headers *h = NULL;
	mq_conn *c = NULL;
	bool lines = false;
	char *body = NULL, *eq;
	size_t len = 0;
	uint64_t v;
	int o, rc = 0;

	memset(&so, 0, sizeof(so));
	h = mq_headers_new();
	if (h == NULL) {
		fprintf(stderr, "mq: out of memory\n");
		return EXIT_SERVER;
	}
	while ((o = next_opt(cmd, argc, argv, ":" COMMON_SHORT "lp:H:",
	                     longopts)) != -1) {
		if (IS_OPT_EXIT(o)) {
			rc = OPT_EXIT(o);
			goto out;
		}
		switch (o) {
		case 'l':
			lines = true;
			break;
		case 'p':
			if (!parse_uint(optarg, 9, &v)) {
				rc = usage_error(cmd, "priority must be 0 to 9, "
				                 "not '%s'", optarg);
				goto out;
			}
			so.priority = (uint8_t)v;
			break;
		case 'H':
			eq = strchr(optarg, '=');
			if (eq == NULL) {
				rc = usage_error(cmd, "header '%s' is not "
				                 "key=value", optarg);
				goto out;
			}
			*eq = '\0';
			rc = mq_headers_add(h, optarg, eq + 1);
			*eq = '=';
			if (rc == MQ_ERR_NOMEM) {
				fprintf(stderr, "mq: out of memory\n");
				rc = EXIT_SERVER;
				goto out;
			}
			if (rc != 0) {
				rc = usage_error(cmd, "bad or repeated header "
				                 "'%s'", optarg);
				goto out;
			}
			break;
		case OPT_TTL:
			if (!parse_ms32(optarg, &so.ttl_ms)) {
				rc = usage_error(cmd, "bad duration '%s'", optarg);
				goto out;
			}
			break;
		case OPT_DELAY:
			if (!parse_ms32(optarg, &so.delay_ms)) {
				rc = usage_error(cmd, "bad duration '%s'", optarg);
				goto out;
			}
			break;
		}
	}
	if (argc - optind < 1 || argc - optind > 2 ||
	    (lines && argc - optind != 1)) {
		if (publish)
			rc = usage_error(cmd, "%s", lines ?
			                 "publish -l takes TOPIC only (lines come "
			                 "from standard input)" :
			                 "publish takes TOPIC [BODY]");
		else
			rc = usage_error(cmd, "%s", lines ?
			                 "send -l takes QUEUE only (lines come from "
			                 "standard input)" : "send takes QUEUE [BODY]");
		goto out;
	}
	so.headers = mq_headers_data(h, &len);
	so.headers_len = len;
	rc = open_conn(&c);
	if (rc != 0)
		goto out;
	if (lines) {
		rc = send_lines(cmd, c, publish, argv[optind], &so);
		goto out;
	}
	if (argc - optind == 2) {
		body = argv[optind + 1];
		len = strlen(body);
		rc = put_message(c, publish, false, argv[optind], body, len, &so);
		body = NULL;
	} else {
		body = read_all(stdin, &len);
		if (body == NULL) {
			rc = EXIT_SERVER;
			goto out;
		}
		rc = put_message(c, publish, false, argv[optind], body, len, &so);
	}
	if (rc != 0)
		rc = report(c, rc, cmd);
out:
	free(body);
	mq_close(c);
	mq_headers_free(h);
	return rc;
}

static int cmd_send(const struct command *cmd, int argc, char **argv)
{
	return send_or_publish(cmd, argc, argv, false);
}

static int cmd_publish(const struct command *cmd, int argc, char **argv)
{
	return send_or_publish(cmd, argc, argv, true);
}

/* ---- get and consume ------------------------------------------------- */

/* Body and a newline on stdout, flushed: only then may it be acked. */
static bool print_body(const struct mq_message *m)
{
	if ((m->body_len > 0 &&
	     fwrite(m->body, 1, m->body_len, stdout) != m->body_len) ||
	    putchar('\n') == EOF || fflush(stdout) == EOF) {
		fprintf(stderr, "mq: writing standard output: %s\n",
		        strerror(errno));
		return false;
	}
	return true;
}

static int cmd_get(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		COMMON_LONG,
		{ "timeout", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "no-ack", no_argument, NULL, OPT_NO_ACK },
		{ NULL, 0, NULL, 0 },
	};
	struct mq_message *m;
	mq_conn *c = NULL;
	uint32_t timeout = 0;
	uint64_t count = 1, got = 0;
	unsigned flags = 0;
	int64_t deadline, left;
	int o, rc;

	while ((o = next_opt(cmd, argc, argv, ":" COMMON_SHORT "t:n:",
	                     longopts)) != -1) {
		if (IS_OPT_EXIT(o))
			return OPT_EXIT(o);
		switch (o) {
		case 't':
			if (!parse_ms32(optarg, &timeout))
				return usage_error(cmd, "bad timeout '%s' (e.g. "
				                   "500ms, 2s, 1m)", optarg);
			break;
		case 'n':
			if (!parse_uint(optarg, UINT32_MAX, &count) || count == 0)
				return usage_error(cmd, "bad count '%s'", optarg);
			break;
		case OPT_NO_ACK:
			flags |= MQ_AUTO_ACK;
			break;
		}
	}
	if (argc - optind != 1)
		return usage_error(cmd, "%s", "get takes one QUEUE");
	rc = open_conn(&c);
	if (rc != 0)
		return rc;
	/* TIMEOUT is the budget for all COUNT messages together. */
	deadline = mqt_mono_ms() + timeout;
	while (got < count) {
		left = deadline - mqt_mono_ms();
		if (left < 0)
			left = 0;
		rc = mq_get(c, argv[optind], (uint32_t)left, flags, &m);
		if (rc == MQ_ERR_EMPTY)
			break;
		if (rc != 0)
			goto fail;
		if (!print_body(m)) {
			mq_message_free(m);
			mq_close(c);
			return EXIT_SERVER;
		}
		got++;
		if (!(flags & MQ_AUTO_ACK))
			rc = mq_ack(c, &m->id, 1, MQ_QUIET, NULL);
		mq_message_free(m);
		if (rc != 0)
			goto fail;
	}
	rc = mq_sync(c); /* the acks' answers */
	if (rc != 0)
		goto fail;
	mq_close(c);
	return got < count ? EXIT_EMPTY : 0;
fail:
	rc = report(c, rc, cmd);
	mq_close(c);
	return rc;
}

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* SIGINT/SIGTERM end the consume loop; a second one kills as usual. */
static void catch_stop_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sa.sa_flags = SA_RESETHAND | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static int cmd_consume(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		COMMON_LONG,
		{ "prefetch", required_argument, NULL, OPT_PREFETCH },
		{ "count", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct mq_message *m;
	mq_conn *c = NULL;
	uint64_t count = 0, got = 0, prefetch = 0;
	uint32_t tag = 0;
	bool have_prefetch = false;
	int o, rc;

	while ((o = next_opt(cmd, argc, argv, ":" COMMON_SHORT "n:",
	                     longopts)) != -1) {
		if (IS_OPT_EXIT(o))
			return OPT_EXIT(o);
		switch (o) {
		case OPT_PREFETCH:
			if (!parse_uint(optarg, UINT32_MAX, &prefetch))
				return usage_error(cmd, "bad prefetch '%s'", optarg);
			have_prefetch = true;
			break;
		case 'n':
			if (!parse_uint(optarg, UINT32_MAX, &count) || count == 0)
				return usage_error(cmd, "bad count '%s'", optarg);
			break;
		}
	}
	if (argc - optind != 1)
		return usage_error(cmd, "%s", "consume takes one QUEUE");
	/* Taking no more than we will print spares the rest a redelivery. */
	if (!have_prefetch && count > 0)
		prefetch = count;
	catch_stop_signals();
	rc = open_conn(&c);
	if (rc != 0)
		return rc;
	rc = mq_consume(c, argv[optind], (uint32_t)prefetch, 0, &tag);
	while (rc == 0 && !stop_requested && (count == 0 || got < count)) {
		/* A bounded wait, so a signal that slips in just before the
		 * wait starts still ends the loop promptly. */
		rc = mq_next(c, 1000, &m);
		if (rc == MQ_ERR_TIMEOUT || (rc == MQ_ERR_IO && errno == EINTR)) {
			rc = 0;
			continue;
		}
		if (rc != 0)
			break;
		if (!print_body(m)) {
			mq_message_free(m);
			mq_close(c);
			return EXIT_SERVER;
		}
		got++;
		/* The last one: stop deliveries before acknowledging it. */
		if (count > 0 && got == count)
			rc = mq_cancel(c, tag);
		if (rc == 0)
			rc = mq_ack(c, &m->id, 1, MQ_QUIET, NULL);
		mq_message_free(m);
	}
	if (rc == 0)
		rc = mq_sync(c); /* flush the last acks and hear about them */
	if (rc == MQ_ERR_NOT_FOUND && mq_cancelled_tag(c) == tag) {
		fprintf(stderr, "mq: NOT_FOUND: queue %s was deleted\n",
		        argv[optind]);
		rc = EXIT_SERVER;
	} else if (rc != 0) {
		rc = report(c, rc, cmd);
	}
	mq_close(c);
	return rc;
}

/* ---- publish / subscribe --------------------------------------------- */

/* "topic<TAB>body" and a newline on stdout, flushed. */
static bool print_topic_body(const struct mq_message *m)
{
	if (fputs(m->source, stdout) == EOF || putchar('\t') == EOF)
		goto fail;
	return print_body(m);
fail:
	fprintf(stderr, "mq: writing standard output: %s\n", strerror(errno));
	return false;
}

static int cmd_subscribe(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		COMMON_LONG,
		{ "count", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct mq_message *m;
	mq_conn *c = NULL;
	uint64_t count = 0, got = 0;
	uint32_t tag = 0;
	int o, rc;

	while ((o = next_opt(cmd, argc, argv, ":" COMMON_SHORT "n:",
	                     longopts)) != -1) {
		if (IS_OPT_EXIT(o))
			return OPT_EXIT(o);
		if (o == 'n' &&
		    (!parse_uint(optarg, UINT32_MAX, &count) || count == 0))
			return usage_error(cmd, "bad count '%s'", optarg);
	}
	if (argc - optind != 1)
		return usage_error(cmd, "%s", "subscribe takes one PATTERN");
	catch_stop_signals();
	rc = open_conn(&c);
	if (rc != 0)
		return rc;
	rc = mq_subscribe(c, argv[optind], &tag);
	while (rc == 0 && !stop_requested && (count == 0 || got < count)) {
		rc = mq_next(c, 1000, &m);
		if (rc == MQ_ERR_TIMEOUT || (rc == MQ_ERR_IO && errno == EINTR)) {
			rc = 0;
			continue;
		}
		if (rc != 0)
			break;
		if (!print_topic_body(m)) {
			mq_message_free(m);
			mq_close(c);
			return EXIT_SERVER;
		}
		got++;
		mq_message_free(m);
	}
	if (rc != 0)
		rc = report(c, rc, cmd);
	mq_close(c);
	return rc;
}

/* bind and unbind: QUEUE PATTERN. */
static int bind_cmd(const struct command *cmd, int argc, char **argv,
                    bool bind)
{
	static const struct option longopts[] = {
		COMMON_LONG,
		{ NULL, 0, NULL, 0 },
	};
	mq_conn *c = NULL;
	int o, rc;

	while ((o = next_opt(cmd, argc, argv, ":" COMMON_SHORT, longopts)) != -1)
		if (IS_OPT_EXIT(o))
			return OPT_EXIT(o);
	if (argc - optind != 2)
		return usage_error(cmd, "%s", bind ?
		                   "bind takes QUEUE PATTERN" :
		                   "unbind takes QUEUE PATTERN");
	rc = open_conn(&c);
	if (rc != 0)
		return rc;
	if (bind)
		rc = mq_bind(c, argv[optind], argv[optind + 1]);
	else
		rc = mq_unbind(c, argv[optind], argv[optind + 1]);
	if (rc != 0)
		rc = report(c, rc, cmd);
	mq_close(c);
	return rc;
}

static int cmd_bind(const struct command *cmd, int argc, char **argv)
{
	return bind_cmd(cmd, argc, argv, true);
}

static int cmd_unbind(const struct command *cmd, int argc, char **argv)
{
	return bind_cmd(cmd, argc, argv, false);
}

/* ---- request / serve ------------------------------------------------- */

#define REQUEST_TIMEOUT_MS 5000u

static int cmd_request(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		COMMON_LONG,
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct mq_message *reply = NULL;
	mq_conn *c = NULL;
	uint32_t timeout = REQUEST_TIMEOUT_MS;
	char *body = NULL;
	const char *b;
	size_t len;
	int o, rc;

	while ((o = next_opt(cmd, argc, argv, ":" COMMON_SHORT "t:",
	                     longopts)) != -1) {
		if (IS_OPT_EXIT(o))
			return OPT_EXIT(o);
		if (o == 't' && !parse_ms32(optarg, &timeout))
			return usage_error(cmd, "bad timeout '%s' (e.g. "
			                   "500ms, 2s, 1m)", optarg);
	}
	if (argc - optind < 1 || argc - optind > 2)
		return usage_error(cmd, "%s", "request takes QUEUE [BODY]");
	if (argc - optind == 2) {
		b = argv[optind + 1];
		len = strlen(b);
	} else {
		body = read_all(stdin, &len);
		if (body == NULL)
			return EXIT_SERVER;
		b = body;
	}
	rc = open_conn(&c);
	if (rc != 0) {
		free(body);
		return rc;
	}
	rc = mq_request(c, argv[optind], b, len, timeout, &reply);
	free(body);
	if (rc == MQ_ERR_TIMEOUT) {
		fprintf(stderr, "mq: no reply from %s in time\n", argv[optind]);
		rc = EXIT_EMPTY;
	} else if (rc != 0) {
		rc = report(c, rc, cmd);
	} else if (!print_body(reply)) {
		rc = EXIT_SERVER;
	}
	mq_message_free(reply);
	mq_close(c);
	return rc;
}

/* What running the command for one request produced. */
struct run_result {
	char *out;        /* its standard output, up to cap bytes */
	size_t len;
	bool truncated;   /* it wrote more than cap */
	int status;       /* from waitpid */
	int exec_errno;   /* nonzero: the command could not be started */
};

/* Make room for need bytes in *buf (capacity *capp), doubling, at most
 * max. */
static bool grow(char **buf, size_t *capp, size_t need, size_t max)
{
	size_t cap = *capp > 0 ? *capp : 4096;
	char *nb;

	if (need <= *capp)
		return true;
	while (cap < need)
		cap = cap > max / 2 ? max : cap * 2;
	nb = realloc(*buf, cap);
	if (nb == NULL)
		return false;
	*buf = nb;
	*capp = cap;
	return true;
}

static int wait_child(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

/*
 * Run argv with in[0..inlen) on its standard input and collect its
 * standard output (at most cap bytes are kept; the rest is read and
 * dropped, so the command never blocks on a full pipe).  Standard input
 * is written while standard output is read, so neither side can fill a
 * pipe and wait for the other.  Standard error is the command's own (ours).
 * Returns 0, or -1 on a system error (reported).
 */
static int run_command(char *const *cmdv, const void *in, size_t inlen,
                       size_t cap, struct run_result *r)
{
	int inp[2] = { -1, -1 }, outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	const char *inb = in;
	size_t off = 0, keep, ocap = 0;
	struct pollfd pfd[2];
	char buf[65536];
	ssize_t n;
	pid_t pid;
	int e, nfd;

	memset(r, 0, sizeof(*r));
	if (pipe2(inp, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0 ||
	    pipe2(errp, O_CLOEXEC) < 0) {
		fprintf(stderr, "mq: pipe: %s\n", strerror(errno));
		goto fail;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "mq: fork: %s\n", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL); /* ignored in serve, not in the child */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		if (dup2(inp[0], STDIN_FILENO) < 0 ||
		    dup2(outp[1], STDOUT_FILENO) < 0) {
			e = errno;
		} else {
			execvp(cmdv[0], cmdv);
			e = errno;
		}
		(void)!write(errp[1], &e, sizeof(e));
		_exit(127);
	}
	close(inp[0]);
	close(outp[1]);
	close(errp[1]);
	inp[0] = outp[1] = errp[1] = -1;
	(void)fcntl(inp[1], F_SETFL, fcntl(inp[1], F_GETFL) | O_NONBLOCK);
	if (inlen == 0) {
		close(inp[1]);
		inp[1] = -1;
	}
	while (inp[1] >= 0 || outp[0] >= 0) {
		nfd = 0;
		if (outp[0] >= 0) {
			pfd[nfd].fd = outp[0];
			pfd[nfd].events = POLLIN;
			pfd[nfd++].revents = 0;
		}
		if (inp[1] >= 0) {
			pfd[nfd].fd = inp[1];
			pfd[nfd].events = POLLOUT;
			pfd[nfd++].revents = 0;
		}
		if (poll(pfd, (nfds_t)nfd, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "mq: poll: %s\n", strerror(errno));
			break;
		}
		if (outp[0] >= 0 && pfd[0].revents != 0) {
			n = read(outp[0], buf, sizeof(buf));
			if (n > 0) {
				keep = (size_t)n;
				if (keep > cap - r->len) {
					keep = cap - r->len;
					r->truncated = true;
				}
				if (keep > 0 && !grow(&r->out, &ocap,
				                      r->len + keep, cap)) {
					keep = 0;
					r->truncated = true; /* reported as too big */
				}
				if (keep > 0)
					memcpy(r->out + r->len, buf, keep);
				r->len += keep;
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				close(outp[0]);
				outp[0] = -1;
			}
		}
		if (inp[1] >= 0 && pfd[nfd - 1].fd == inp[1] &&
		    pfd[nfd - 1].revents != 0) {
			n = write(inp[1], inb + off, inlen - off);
			if (n > 0)
				off += (size_t)n;
			if ((n < 0 && errno != EINTR && errno != EAGAIN) ||
			    off == inlen) {
				/* Done, or the command stopped reading (EPIPE):
				 * what it did not read it does not get. */
				close(inp[1]);
				inp[1] = -1;
			}
		}
	}
	if (inp[1] >= 0)
		close(inp[1]);
	if (outp[0] >= 0)
		close(outp[0]);
	inp[1] = outp[0] = -1;
	n = read(errp[0], &e, sizeof(e));
	close(errp[0]);
	errp[0] = -1;
	if (n == (ssize_t)sizeof(e))
		r->exec_errno = e;
	if (wait_child(pid, &r->status) < 0) {
		fprintf(stderr, "mq: waitpid: %s\n", strerror(errno));
		goto fail;
	}
	return 0;
fail:
	for (e = 0; e < 2; e++) {
		if (inp[e] >= 0)
			close(inp[e]);
		if (outp[e] >= 0)
			close(outp[e]);
		if (errp[e] >= 0)
			close(errp[e]);
	}
	free(r->out);
	r->out = NULL;
	return -1;
}

/* Why a command failed, for the log. */
static void describe_status(int status, char *buf, size_t cap)
{
	if (WIFEXITED(status))
		snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, cap, "was killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, cap, "ended with status 0x%x", (unsigned)status);
}

/* The outcome of one request in serve. */
enum served { SERVED_OK, SERVED_REJECTED, SERVED_REQUEUED, SERVED_FATAL };

/*
 * Handle one request: run the command, reply with its output, then ACK;
 * or NACK (requeue 0) when the command fails or no reply can be sent.
 * *rc gets a library error that ends serve (0 if none).
 */
static enum served serve_one(mq_conn *c, char *const *cmdv,
                             const struct mq_message *m, int *rc)
{
	struct run_result r;
	char why[64];
	size_t cap = mq_max_frame(c);
	int err;

	*rc = 0;
	if (mq_message_header(m, "reply-to", NULL) <= 0) {
		fprintf(stderr, "mq: serve: message %llu has no reply-to "
		        "header; rejected\n", (unsigned long long)m->id);
		*rc = mq_nack(c, &m->id, 1, 0, 0, 0, NULL);
		return SERVED_REJECTED;
	}
	if (run_command(cmdv, m->body, m->body_len, cap, &r) != 0) {
		/* Not the request's fault: let another worker have it. */
		*rc = mq_nack(c, &m->id, 1, 1, 0, 0, NULL);
		return SERVED_FATAL;
	}
	if (r.exec_errno != 0) {
		fprintf(stderr, "mq: serve: cannot run %s: %s\n", cmdv[0],
		        strerror(r.exec_errno));
		free(r.out);
		*rc = mq_nack(c, &m->id, 1, 1, 0, 0, NULL);
		return SERVED_FATAL;
	}
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) {
		describe_status(r.status, why, sizeof(why));
		free(r.out);
		if (stop_requested && WIFSIGNALED(r.status)) {
			/* Interrupted with us (Ctrl-C reaches the whole
			 * group): not the request's fault either. */
			*rc = mq_nack(c, &m->id, 1, 1, 0, 0, NULL);
			return SERVED_REQUEUED;
		}
		fprintf(stderr, "mq: serve: %s %s on message %llu; rejected\n",
		        cmdv[0], why, (unsigned long long)m->id);
		*rc = mq_nack(c, &m->id, 1, 0, 0, 0, NULL);
		return SERVED_REJECTED;
	}
	if (r.truncated) {
		fprintf(stderr, "mq: serve: %s wrote more than a message may "
		        "hold (%zu bytes) for message %llu; rejected\n",
		        cmdv[0], cap, (unsigned long long)m->id);
		free(r.out);
		*rc = mq_nack(c, &m->id, 1, 0, 0, 0, NULL);
		return SERVED_REJECTED;
	}
	err = mq_reply(c, m, r.out, r.len);
	free(r.out);
	if (err == 0) {
		/* The reply is stored: only now is the request done. */
		*rc = mq_ack(c, &m->id, 1, MQ_QUIET, NULL);
		return SERVED_OK;
	}
	if (err == MQ_ERR_IO || err == MQ_ERR_CLOSED || err == MQ_ERR_PROTOCOL ||
	    err == MQ_ERR_NOMEM || err == MQ_ERR_SHUTTING_DOWN) {
		/* Our connection is gone (or going): the request goes back to
		 * the queue for another worker. */
		*rc = err;
		return SERVED_FATAL;
	}
	/* The reply was refused (its queue is gone, full, too small...). */
	fprintf(stderr, "mq: serve: cannot reply to message %llu: %s%s%s; "
	        "rejected\n", (unsigned long long)m->id, mq_strerror(err),
	        mq_last_error_message(c)[0] ? ": " : "",
	        mq_last_error_message(c));
	*rc = mq_nack(c, &m->id, 1, 0, 0, 0, NULL);
	return SERVED_REJECTED;
}

static int cmd_serve(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		COMMON_LONG,
		{ "prefetch", required_argument, NULL, OPT_PREFETCH },
		{ "count", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct mq_message *m;
	mq_conn *c = NULL;
	uint64_t count = 0, got = 0, prefetch = 1;
	uint32_t tag = 0;
	char **cmdv;
	enum served res;
	int o, rc, dd, nargs, status = 0;

	/* Everything after the first "--" is the command, untouched by
	 * option parsing. */
	for (dd = 1; dd < argc && strcmp(argv[dd], "--") != 0; dd++)
		;
	if (dd >= argc - 1) {
		/* Still honour -h before complaining. */
		for (o = 1; o < dd; o++)
			if (strcmp(argv[o], "-h") == 0 ||
			    strcmp(argv[o], "--help") == 0) {
				usage_line(stdout, cmd);
				fputs("See mq(1) for the options.\n", stdout);
				return 0;
			}
		return usage_error(cmd, "%s", "serve needs a command after '--'");
	}
	cmdv = argv + dd + 1;
	nargs = dd;
	while ((o = next_opt(cmd, nargs, argv, ":" COMMON_SHORT "n:",
	                     longopts)) != -1) {
		if (IS_OPT_EXIT(o))
			return OPT_EXIT(o);
		switch (o) {
		case OPT_PREFETCH:
			if (!parse_uint(optarg, UINT32_MAX, &prefetch))
				return usage_error(cmd, "bad prefetch '%s'", optarg);
			break;
		case 'n':
			if (!parse_uint(optarg, UINT32_MAX, &count) || count == 0)
				return usage_error(cmd, "bad count '%s'", optarg);
			break;
		}
	}
	if (nargs - optind != 1)
		return usage_error(cmd, "%s", "serve takes one QUEUE before '--'");
	catch_stop_signals();
	signal(SIGPIPE, SIG_IGN); /* a command that does not read its input */
	rc = open_conn(&c);
	if (rc != 0)
		return rc;
	rc = mq_consume(c, argv[optind], (uint32_t)prefetch, 0, &tag);
	while (rc == 0 && !stop_requested && (count == 0 || got < count)) {
		rc = mq_next(c, 1000, &m);
		if (rc == MQ_ERR_TIMEOUT || (rc == MQ_ERR_IO && errno == EINTR)) {
			rc = 0;
			continue;
		}
		if (rc != 0)
			break;
		res = serve_one(c, cmdv, m, &rc);
		mq_message_free(m);
		if (res == SERVED_FATAL) {
			if (rc == 0)
				status = EXIT_SERVER;
			break;
		}
		if (res != SERVED_REQUEUED)
			got++;
		/* The last one: no more deliveries, please. */
		if (rc == 0 && count > 0 && got == count)
			rc = mq_cancel(c, tag);
	}
	if (rc == 0)
		rc = mq_sync(c); /* flush the last acks and hear about them */
	if (rc == MQ_ERR_NOT_FOUND && mq_cancelled_tag(c) == tag) {
		fprintf(stderr, "mq: NOT_FOUND: queue %s was deleted\n",
		        argv[optind]);
		rc = EXIT_SERVER;
	} else if (rc != 0) {
		rc = report(c, rc, cmd);
	}
	mq_close(c);
	return rc != 0 ? rc : status;
}

/* ---- declare, delete, purge, ping ------------------------------------ */

static int declare_opt(const struct command *cmd, int o,
                       struct mq_queue_opts *q, unsigned *flags)
{
	uint64_t v;

	switch (o) {
	case OPT_MAX_LENGTH:
		if (!parse_uint(optarg, UINT32_MAX, &v))
			return usage_error(cmd, "bad --max-length '%s'", optarg);
		q->max_length = (uint32_t)v;
		break;
	case OPT_MAX_BYTES:
		if (mqd_parse_size(optarg, &q->max_bytes) != 0)
			return usage_error(cmd, "bad --max-bytes '%s' (e.g. "
			                   "512K, 64M)", optarg);
		break;
	case OPT_OVERFLOW:
		if (strcmp(optarg, "reject") == 0)
			q->overflow = 1;
		else if (strcmp(optarg, "drop-head") == 0)
			q->overflow = 2;
		else
			return usage_error(cmd, "--overflow is reject or "
			                   "drop-head, not '%s'", optarg);
		break;
	case OPT_TTL:
		if (!parse_ms32(optarg, &q->message_ttl_ms))
			return usage_error(cmd, "bad --ttl '%s'", optarg);
		break;
	case OPT_ACK_TIMEOUT:
		if (!parse_ms32(optarg, &q->ack_timeout_ms))
			return usage_error(cmd, "bad --ack-timeout '%s'", optarg);
		break;
	case OPT_MAX_ATTEMPTS:
		if (!parse_uint(optarg, UINT16_MAX, &v))
			return usage_error(cmd, "bad --max-attempts '%s'", optarg);
		q->max_attempts = (uint16_t)v;
		break;
	case OPT_DEAD_LETTER:
		q->dead_letter = optarg;
		break;
	case OPT_EXCLUSIVE:
		*flags |= MQ_EXCLUSIVE;
		break;
	case OPT_AUTO_DELETE:
		*flags |= MQ_AUTO_DELETE;
		break;
	case OPT_PASSIVE:
		*flags |= MQ_PASSIVE;
		break;
	}
	return 0;
}

static int cmd_declare(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		COMMON_LONG,
		{ "max-length", required_argument, NULL, OPT_MAX_LENGTH },
		{ "max-bytes", required_argument, NULL, OPT_MAX_BYTES },
		{ "overflow", required_argument, NULL, OPT_OVERFLOW },
		{ "ttl", required_argument, NULL, OPT_TTL },
		{ "ack-timeout", required_argument, NULL, OPT_ACK_TIMEOUT },
		{ "max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS },
		{ "dead-letter", required_argument, NULL, OPT_DEAD_LETTER },
		{ "exclusive", no_argument, NULL, OPT_EXCLUSIVE },
		{ "auto-delete", no_argument, NULL, OPT_AUTO_DELETE },
		{ "passive", no_argument, NULL, OPT_PASSIVE },
		{ NULL, 0, NULL, 0 },
	};
	struct mq_queue_opts q;
	struct mq_declared d;
	mq_conn *c = NULL;
	unsigned flags = 0;
	int o, rc;

	memset(&q, 0, sizeof(q));
	while ((o = next_opt(cmd, argc, argv, ":" COMMON_SHORT, longopts)) != -1) {
		if (IS_OPT_EXIT(o))
			return OPT_EXIT(o);
		rc = declare_opt(cmd, o, &q, &flags);
		if (rc != 0)
			return rc;
	}
	if (argc - optind != 1)
		return usage_error(cmd, "%s", "declare takes one QUEUE "
		                   "(\"\" for a server-chosen name)");
	rc = open_conn(&c);
	if (rc != 0)
		return rc;
	rc = mq_declare(c, argv[optind], &q, flags, &d);
	if (rc == 0 && argv[optind][0] == '\0')
		printf("%s\n", d.queue);
	if (rc != 0)
		rc = report(c, rc, cmd);
	mq_close(c);
	return rc;
}

static int cmd_delete(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		COMMON_LONG,
		{ "if-empty", no_argument, NULL, OPT_IF_EMPTY },
		{ NULL, 0, NULL, 0 },
	};
	mq_conn *c = NULL;
	unsigned flags = 0;
	int o, rc;

	while ((o = next_opt(cmd, argc, argv, ":" COMMON_SHORT, longopts)) != -1) {
		if (IS_OPT_EXIT(o))
			return OPT_EXIT(o);
		if (o == OPT_IF_EMPTY)
			flags |= MQ_IF_EMPTY;
	}
	if (argc - optind != 1)
		return usage_error(cmd, "%s", "delete takes one QUEUE");
	rc = open_conn(&c);
	if (rc != 0)
		return rc;
	rc = mq_delete(c, argv[optind], flags);
	if (rc != 0)
		rc = report(c, rc, cmd);
	mq_close(c);
	return rc;
}

static int cmd_purge(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		COMMON_LONG,
		{ NULL, 0, NULL, 0 },
	};
	mq_conn *c = NULL;
	uint64_t n = 0;
	int o, rc;

	while ((o = next_opt(cmd, argc, argv, ":" COMMON_SHORT, longopts)) != -1)
		if (IS_OPT_EXIT(o))
			return OPT_EXIT(o);
	if (argc - optind != 1)
		return usage_error(cmd, "%s", "purge takes one QUEUE");
	rc = open_conn(&c);
	if (rc != 0)
		return rc;
	rc = mq_purge(c, argv[optind], &n);
	if (rc == 0)
		printf("%llu\n", (unsigned long long)n);
	else
		rc = report(c, rc, cmd);
	mq_close(c);
	return rc;
}

static int cmd_ping(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		COMMON_LONG,
		{ NULL, 0, NULL, 0 },
	};
	struct timespec t0, t1;
	mq_conn *c = NULL;
	double ms;
	int o, rc;

	while ((o = next_opt(cmd, argc, argv, ":" COMMON_SHORT, longopts)) != -1)
		if (IS_OPT_EXIT(o))
			return OPT_EXIT(o);
	if (argc - optind != 0)
		return usage_error(cmd, "%s", "ping takes no arguments");
	rc = open_conn(&c);
	if (rc != 0)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = mq_ping(c);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc == 0) {
		ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		     (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		printf("PONG from %s in %.3f ms\n", mq_server_name(c), ms);
	} else {
		rc = report(c, rc, cmd);
	}
	mq_close(c);
	return rc;
}

/* ---- main ------------------------------------------------------------ */

static const struct command commands[] = {
	{ "send", cmd_send,
	  "[-l] [-p PRIO] [-H KEY=VALUE]... [--ttl DUR] [--delay DUR] QUEUE [BODY]" },
	{ "get", cmd_get, "[-t TIMEOUT] [-n COUNT] [--no-ack] QUEUE" },
	{ "consume", cmd_consume, "[--prefetch N] [-n COUNT] QUEUE" },
	{ "publish", cmd_publish,
	  "[-l] [-p PRIO] [-H KEY=VALUE]... [--ttl DUR] [--delay DUR] TOPIC [BODY]" },
	{ "subscribe", cmd_subscribe, "[-n COUNT] PATTERN" },
	{ "bind", cmd_bind, "QUEUE PATTERN" },
	{ "unbind", cmd_unbind, "QUEUE PATTERN" },
	{ "request", cmd_request, "[-t TIMEOUT] QUEUE [BODY]" },
	{ "serve", cmd_serve,
	  "[--prefetch N] [-n COUNT] QUEUE -- COMMAND [ARGS...]" },
	{ "declare", cmd_declare,
	  "[--max-length N] [--max-bytes SIZE] [--overflow reject|drop-head] "
	  "[--ttl DUR] [--ack-timeout DUR] [--max-attempts N] "
	  "[--dead-letter QUEUE] [--exclusive] [--auto-delete] [--passive] "
	  "QUEUE" },
	{ "delete", cmd_delete, "[--if-empty] QUEUE" },
	{ "purge", cmd_purge, "QUEUE" },
	{ "ping", cmd_ping, "" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void help(void)
{
	size_t i;

	usage_line(stdout, NULL);
	fputs("\nA command-line client for the mqd message broker.\n\n"
	      "Options:\n"
	      "  -s, --server HOST:PORT  server (default $MQ_SERVER, else "
	      MQ_DEFAULT_SERVER ")\n"
	      "  -h, --help              this help\n"
	      "  -V, --version           print the version\n\n"
	      "Commands:\n", stdout);
	for (i = 0; i < NCOMMANDS; i++)
		printf("  mq %s%s%s\n", commands[i].name,
		       commands[i].usage[0] ? " " : "", commands[i].usage);
	fputs("\nExit status: 0 ok, 1 server or connection error, 2 usage "
	      "error,\n3 get found nothing (request got no reply) in time.  "
	      "See mq(1).\n", stdout);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *env = getenv("MQ_SERVER");
	size_t i;
	int o;

	ctx.server = env != NULL && env[0] != '\0' ? env : MQ_DEFAULT_SERVER;
	opterr = 0;
	/* "+": stop at the command; its own options are parsed after it. */
	while ((o = getopt_long(argc, argv, "+:s:hV", longopts, NULL)) != -1) {
		switch (o) {
		case 's':
			ctx.server = optarg;
			break;
		case 'h':
			help();
			return 0;
		case 'V':
			printf("mq (mqd) %s\n", PACKAGE_VERSION);
			return 0;
		case ':':
			return usage_error(NULL, "option '%s' needs an argument",
			                   mqt_bad_option(argv));
		default:
			return usage_error(NULL, "unknown option '%s'",
			                   mqt_bad_option(argv));
		}
	}
	if (optind >= argc)
		return usage_error(NULL, "%s", "no command given");
	for (i = 0; i < NCOMMANDS; i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			int sub_argc = argc - optind;
			char **sub_argv = argv + optind;

			optind = 0; /* restart getopt on the new vector */
			return commands[i].run(&commands[i], sub_argc, sub_argv);
		}
	}
	if (strcmp(argv[optind], "help") == 0) {
		help();
		return 0;
	}
	return usage_error(NULL, "unknown command '%s'", argv[optind]);
}
