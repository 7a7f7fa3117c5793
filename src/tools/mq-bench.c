#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * mq-bench: measure a broker the way its users load it.  One load
 * generator speaks mqd's protocol and, for comparison, Redis's, NATS's and
 * beanstalkd's, so the client side is the same for every system measured.
 * Every body carries a producer number, a sequence number and its send
 * time; every body received is checked, and the run fails (exit 1) on any
 * message lost, duplicated or damaged.
 *
 * Exit: 0 all delivered and intact; 1 loss, duplication, damage or an
 * error; 2 usage.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/duration.h"
#include "tools/bench/bench.h"
#include "tools/common/cli.h"

#define EXIT_BAD 1
#define EXIT_USAGE 2

static const struct mqb_driver *const drivers[] = {
	&mqb_driver_mqd, &mqb_driver_redis, &mqb_driver_nats,
	&mqb_driver_beanstalkd,
};

static const char *const mode_names[] = {
	[MQB_PAIR] = "pair",       [MQB_PRODUCE] = "produce",
	[MQB_CONSUME] = "consume", [MQB_FANOUT] = "fanout",
	[MQB_REQUEST] = "request", [MQB_CONNECT] = "connect",
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: mq-bench [OPTIONS]\n"
"  -S, --system NAME      mqd (default), redis, nats or beanstalkd\n"
"  -s, --server HOST:PORT the server (default $MQ_SERVER for mqd, else\n"
"                         127.0.0.1 and the system's usual port)\n"
"  -m, --mode MODE        pair (default), produce, consume, fanout, request,\n"
"                         connect\n"
"  -p, --producers N      producers / publishers / requesters (1)\n"
"  -c, --consumers N      consumers / subscribers / responders /\n"
"                         connections (1)\n"
"  -q, --queues N         queues (or topics), traffic spread over them (1)\n"
"  -n, --count N          messages per producer (100000)\n"
"  -z, --size BYTES       body size, at least %d (100)\n"
"  -w, --window N         sends a producer may have unconfirmed (64)\n"
"      --prefetch N       deliveries a consumer may hold unacknowledged (128)\n"
"      --lag N            at most N messages sent but not yet received (0: no\n"
"                         bound; 1 = one message in flight end to end)\n"
"      --auto-ack         consumers use AUTO_ACK (at-most-once); default acks\n"
"      --confirm          mqd: wait for each SEND's OK instead of QUIET+PING\n"
"      --declare          declare the queues before the run (mqd)\n"
"      --prefix NAME      queue and topic name prefix (bench)\n"
"      --timeout DUR      give up after DUR without progress (10s)\n"
"      --duration DUR     connect mode: hold the connections this long\n"
"                         (default: until SIGINT or SIGTERM)\n"
"      --json             one JSON object on stdout instead of the table\n"
"  -Q, --quiet            no progress lines on stderr\n"
"      --tls              connect with TLS\n"
"      --tls-ca FILE      CA certificates to verify the server with\n"
"      --tls-cert FILE    client certificate, --tls-key FILE its key\n"
"      --tls-insecure     do not verify the server's certificate\n"
"      --user NAME, --password PW   credentials (mqd HELLO, Redis AUTH,\n"
"                         NATS CONNECT)\n"
"  -V, --version          print the version\n"
"  -h, --help             this text\n"
"Exit status: 0 all messages delivered intact, 1 a message lost, duplicated\n"
"or damaged or an error, 2 usage.\n", MQB_BODY_MIN);
}

enum {
	OPT_PREFETCH = 256, OPT_LAG, OPT_AUTO_ACK, OPT_CONFIRM, OPT_DECLARE,
	OPT_PREFIX, OPT_TIMEOUT, OPT_DURATION, OPT_JSON, OPT_TLS, OPT_TLS_CA,
	OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_INSECURE, OPT_USER, OPT_PASSWORD,
};

static const struct option long_opts[] = {
	{"system", required_argument, NULL, 'S'},
	{"server", required_argument, NULL, 's'},
	{"mode", required_argument, NULL, 'm'},
	{"producers", required_argument, NULL, 'p'},
	{"consumers", required_argument, NULL, 'c'},
	{"queues", required_argument, NULL, 'q'},
	{"count", required_argument, NULL, 'n'},
	{"size", required_argument, NULL, 'z'},
	{"window", required_argument, NULL, 'w'},
	{"prefetch", required_argument, NULL, OPT_PREFETCH},
	{"lag", required_argument, NULL, OPT_LAG},
	{"auto-ack", no_argument, NULL, OPT_AUTO_ACK},
	{"confirm", no_argument, NULL, OPT_CONFIRM},
	{"declare", no_argument, NULL, OPT_DECLARE},
	{"prefix", required_argument, NULL, OPT_PREFIX},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"duration", required_argument, NULL, OPT_DURATION},
	{"json", no_argument, NULL, OPT_JSON},
	{"quiet", no_argument, NULL, 'Q'},
	{"tls", no_argument, NULL, OPT_TLS},
	{"tls-ca", required_argument, NULL, OPT_TLS_CA},
	{"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	{"tls-key", required_argument, NULL, OPT_TLS_KEY},
	{"tls-insecure", no_argument, NULL, OPT_TLS_INSECURE},
	{"user", required_argument, NULL, OPT_USER},
	{"password", required_argument, NULL, OPT_PASSWORD},
	{"version", no_argument, NULL, 'V'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static int bad(const char *opt, const char *val, const char *why)
{
	fprintf(stderr, "mq-bench: %s %s: %s\n", opt, val, why);
	return -1;
}

static int num(const char *opt, const char *s, uint64_t lo, uint64_t hi,
               uint64_t *out)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		return bad(opt, s, "not a number");
	if (v < lo || v > hi) {
		char why[80];
		snprintf(why, sizeof why, "must be between %" PRIu64 " and %" PRIu64,
		         lo, hi);
		return bad(opt, s, why);
	}
	*out = v;
	return 0;
}

/* "host:port", "[v6]:port", "host" (the system's port). */
static int split_server(const char *s, char **host, char **port,
                        const char *default_port)
{
	const char *colon;
	size_t hl;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL)
			return bad("--server", s, "missing ']'");
		colon = close[1] == ':' ? close + 1 : NULL;
		if (close[1] && !colon)
			return bad("--server", s, "expected ':' after ']'");
		*host = strndup(s + 1, (size_t)(close - s - 1));
	} else {
		colon = strrchr(s, ':');
		hl = colon ? (size_t)(colon - s) : strlen(s);
		*host = strndup(s, hl);
	}
	*port = strdup(colon && colon[1] ? colon + 1 : default_port);
	if (*host == NULL || *port == NULL)
		abort();
	if (**host == '\0') {
		free(*host);
		*host = strdup("127.0.0.1");
	}
	return 0;
}

static const struct mqb_driver *find_driver(const char *name)
{
	for (size_t i = 0; i < sizeof drivers / sizeof drivers[0]; i++)
		if (strcmp(drivers[i]->name, name) == 0)
			return drivers[i];
	return NULL;
}

/* Parse argv into o; returns 0, 1 (help/version printed) or -1. */
static int parse_args(int argc, char **argv, struct mqb_opts *o,
                      uint64_t *duration_ms)
{
	const char *server = NULL;
	uint64_t v;
	int ch;

	*o = (struct mqb_opts){
		.system = "mqd", .mode = MQB_PAIR, .producers = 1, .consumers = 1,
		.queues = 1, .count = 100000, .size = 100, .window = 64,
		.prefetch = 128, .prefix = "bench", .timeout_ms = 10000,
	};
	while ((ch = getopt_long(argc, argv, "S:s:m:p:c:q:n:z:w:QVh", long_opts,
	                         NULL)) != -1) {
		switch (ch) {
		case 'S': o->system = optarg; break;
		case 's': server = optarg; break;
		case 'm': {
			size_t i;
			for (i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++)
				if (strcmp(optarg, mode_names[i]) == 0)
					break;
			if (i == sizeof mode_names / sizeof mode_names[0])
				return bad("--mode", optarg, "unknown mode");
			o->mode = (enum mqb_mode)i;
			break;
		}
		case 'p':
			if (num("--producers", optarg, 1, 10000, &v) < 0) return -1;
			o->producers = (unsigned)v;
			break;
		case 'c':
			if (num("--consumers", optarg, 1, 100000, &v) < 0) return -1;
			o->consumers = (unsigned)v;
			break;
		case 'q':
			if (num("--queues", optarg, 1, 1000000, &v) < 0) return -1;
			o->queues = (unsigned)v;
			break;
		case 'n':
			if (num("--count", optarg, 0, 4000000000u, &o->count) < 0)
				return -1;
			break;
		case 'z':
			if (mqd_parse_size(optarg, &v) < 0)
				return bad("--size", optarg, "not a size (100, 1K, 1M)");
			if (v < MQB_BODY_MIN || v > (64u << 20)) {
				char why[64];
				snprintf(why, sizeof why, "must be between %d and 64M",
				         MQB_BODY_MIN);
				return bad("--size", optarg, why);
			}
			o->size = (size_t)v;
			break;
		case 'w':
			if (num("--window", optarg, 1, 1000000, &v) < 0) return -1;
			o->window = (unsigned)v;
			break;
		case OPT_PREFETCH:
			if (num("--prefetch", optarg, 1, 1000000, &v) < 0) return -1;
			o->prefetch = (unsigned)v;
			break;
		case OPT_LAG:
			if (num("--lag", optarg, 0, UINT64_MAX, &o->lag) < 0) return -1;
			break;
		case OPT_AUTO_ACK: o->auto_ack = true; break;
		case OPT_CONFIRM: o->confirm = true; break;
		case OPT_DECLARE: o->declare = true; break;
		case OPT_PREFIX:
			if (!*optarg || strlen(optarg) > 200)
				return bad("--prefix", optarg, "1 to 200 characters");
			o->prefix = optarg;
			break;
		case OPT_TIMEOUT:
			if (mqd_parse_duration(optarg, &v) < 0 || v == 0 || v > 3600000)
				return bad("--timeout", optarg, "a duration like 10s");
			o->timeout_ms = (unsigned)v;
			break;
		case OPT_DURATION:
			if (mqd_parse_duration(optarg, duration_ms) < 0)
				return bad("--duration", optarg, "a duration like 30s");
			break;
		case OPT_JSON: o->json = true; break;
		case 'Q': o->quiet = true; break;
		case OPT_TLS: o->tls = true; break;
		case OPT_TLS_CA: o->tls_ca = optarg; break;
		case OPT_TLS_CERT: o->tls_cert = optarg; break;
		case OPT_TLS_KEY: o->tls_key = optarg; break;
		case OPT_TLS_INSECURE: o->tls_insecure = true; break;
		case OPT_USER: o->user = optarg; break;
		case OPT_PASSWORD: o->password = optarg; break;
		case 'V': printf("mq-bench %s\n", PACKAGE_VERSION); return 1;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mq-bench: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	const struct mqb_driver *d = find_driver(o->system);
	if (d == NULL)
		return bad("--system", o->system, "mqd, redis, nats or beanstalkd");
	if (!(d->modes & (1u << o->mode))) {
		fprintf(stderr, "mq-bench: %s has no %s mode\n", d->name,
		        mode_names[o->mode]);
		return -1;
	}
	if (server == NULL && d == &mqb_driver_mqd)
		server = getenv("MQ_SERVER");
	char *host, *port;
	if (split_server(server ? server : "127.0.0.1", &host, &port,
	                 d->default_port) < 0)
		return -1;
	o->host = host;
	o->port = port;
	if ((o->tls_cert == NULL) != (o->tls_key == NULL))
		return bad("--tls-cert", o->tls_cert ? o->tls_cert : "", "needs --tls-key");
	return 0;
}

/* ---- running ------------------------------------------------------------- */

static void *role_main(void *arg)
{
	struct mqb_role *r = arg;
	const struct mqb_driver *d = r->run->drv;
	int (*fn)(struct mqb_role *) = NULL;

	switch (r->run->o.mode) {
	case MQB_PAIR:
	case MQB_PRODUCE:
	case MQB_CONSUME: fn = r->sender ? d->produce : d->consume; break;
	case MQB_FANOUT: fn = r->sender ? d->publish : d->subscribe; break;
	case MQB_REQUEST: fn = r->sender ? d->request : d->respond; break;
	case MQB_CONNECT: fn = d->idle; break;
	}
	/* A role that gave up because the run stopped (another role failed,
	 * a signal) did not fail itself. */
	if (fn(r) < 0 && !r->failed && !mqb_stopping(r->run))
		mqb_fail(r, "failed");
	r->finished = true;
	return NULL;
}

static int init_run(struct mqb_run *run, const struct mqb_opts *o)
{
	unsigned ns = 0, nr = 0;

	memset(run, 0, sizeof *run);
	run->o = *o;
	run->drv = find_driver(o->system);
	switch (o->mode) {
	case MQB_PAIR: case MQB_FANOUT: case MQB_REQUEST:
		ns = o->producers; nr = o->consumers; break;
	case MQB_PRODUCE: ns = o->producers; break;
	case MQB_CONSUME: nr = o->consumers; break;
	case MQB_CONNECT: nr = o->consumers; break;
	}
	if (mqb_check_init(&run->check, o->producers, o->count, o->size) < 0)
		return -1;
	run->expect_total = o->mode == MQB_FANOUT
	                    ? (uint64_t)o->producers * o->count * o->consumers
	                    : (uint64_t)o->producers * o->count;
	run->nroles = ns + nr;
	run->roles = calloc(run->nroles, sizeof *run->roles);
	if (run->roles == NULL)
		return -1;
	pthread_mutex_init(&run->lag_mu, NULL);
	pthread_cond_init(&run->lag_cv, NULL);
	pthread_cond_init(&run->ready_cv, NULL);
	for (unsigned i = 0; i < run->nroles; i++) {
		struct mqb_role *r = &run->roles[i];
		r->run = run;
		r->sender = i < ns;
		r->id = r->sender ? i : i - ns;
		mqb_hist_init(&r->hist);
		if (o->mode == MQB_FANOUT && !r->sender) {
			r->own = malloc(sizeof *r->own);
			if (r->own == NULL ||
			    mqb_check_init(r->own, o->producers, o->count, o->size) < 0)
				return -1;
		}
	}
	return 0;
}

/* Everything init_run and parse_args allocated (nalloc roles). */
static void free_run(struct mqb_run *run, unsigned nalloc)
{
	for (unsigned i = 0; run->roles && i < nalloc; i++) {
		if (run->roles[i].own) {
			mqb_check_free(run->roles[i].own);
			free(run->roles[i].own);
		}
	}
	free(run->roles);
	run->roles = NULL;
	mqb_check_free(&run->check);
	pthread_mutex_destroy(&run->lag_mu);
	pthread_cond_destroy(&run->lag_cv);
	pthread_cond_destroy(&run->ready_cv);
	free((char *)run->o.host);
	free((char *)run->o.port);
}

static bool all_finished(const struct mqb_run *run, bool senders_only)
{
	for (unsigned i = 0; i < run->nroles; i++)
		if (!run->roles[i].finished && (!senders_only || run->roles[i].sender))
			return false;
	return true;
}

/* Watch the run: progress lines, the stall timeout, signals, the end. */
static void watch(struct mqb_run *run, uint64_t duration_ms, bool *stalled)
{
	const struct mqb_opts *o = &run->o;
	uint64_t t0 = mqb_now_ns(), last_print = t0;
	bool has_senders = run->nroles > 0 && run->roles[0].sender;
	bool progress = !o->quiet && !o->json && isatty(STDERR_FILENO);

	*stalled = false;
	while (!all_finished(run, false)) {
		struct timespec ts = {0, 20 * 1000000L};
		nanosleep(&ts, NULL);
		uint64_t now = mqb_now_ns();
		if (interrupted) {
			atomic_store(&run->stop, true);
			continue;
		}
		if (has_senders && !atomic_load(&run->senders_done) &&
		    all_finished(run, true))
			atomic_store(&run->senders_done, true);
		if (o->mode == MQB_CONNECT) {
			if (duration_ms && run->t_start_ns &&
			    now - run->t_start_ns >= duration_ms * 1000000u)
				atomic_store(&run->senders_done, true);
			continue;
		}
		uint64_t prog = atomic_load(&run->progress_ns);
		if (prog == 0)
			prog = t0; /* not started: connecting counts from t0 */
		if (!mqb_stopping(run) && now > prog &&
		    now - prog > (uint64_t)o->timeout_ms * 1000000u) {
			*stalled = true;
			atomic_store(&run->stop, true);
		}
		if (progress && now - last_print >= 1000000000u) {
			last_print = now;
			fprintf(stderr, "  %.0fs: sent %" PRIu64 ", received %" PRIu64 "\n",
			        (double)(now - t0) / 1e9,
			        (uint64_t)atomic_load(&run->sent_total),
			        (uint64_t)atomic_load(&run->recv_total));
		}
	}
}

/* ---- report -------------------------------------------------------------- */

struct result {
	uint64_t sent, received, lost, dups, damaged;
	double t_in, t_out; /* seconds */
	struct mqb_hist hist;
	bool stalled, failed;
};

/*
 * Messages that were sent and never arrived.  A consume run expects every
 * message of the produce run it drains; other runs count only what their
 * producers actually sent, so a failed connect is an error, not a loss.
 */
static uint64_t lost_of(const struct mqb_run *run, const struct mqb_check *c)
{
	uint64_t sent = atomic_load(&run->sent_total);
	uint64_t got = mqb_check_unique(c);

	if (run->o.mode == MQB_CONSUME)
		return mqb_check_lost(c);
	return sent > got ? sent - got : 0;
}

static void collect(struct mqb_run *run, struct result *res)
{
	const struct mqb_opts *o = &run->o;
	uint64_t t0 = run->t_start_ns;

	mqb_hist_init(&res->hist);
	for (unsigned i = 0; i < run->nroles; i++) {
		struct mqb_role *r = &run->roles[i];
		if (r->sender)
			res->sent += r->confirmed;
		mqb_hist_merge(&res->hist, &r->hist);
		if (r->own) {
			res->lost += lost_of(run, r->own);
			res->dups += r->own->dups;
			res->damaged += r->own->damaged;
		}
		if (r->failed)
			res->failed = true;
	}
	res->received = atomic_load(&run->recv_total);
	if (o->mode != MQB_FANOUT && o->mode != MQB_PRODUCE &&
	    o->mode != MQB_CONNECT) {
		res->lost = lost_of(run, &run->check);
		res->dups = run->check.dups;
		res->damaged = run->check.damaged;
	}
	uint64_t ts = atomic_load(&run->t_sent_ns), tr = atomic_load(&run->t_recv_ns);
	uint64_t tf = atomic_load(&run->t_first_ns);
	uint64_t t0_out = tf && tf < t0 ? tf : t0; /* consume: may start early */
	res->t_in = t0 && ts > t0 ? (double)(ts - t0) / 1e9 : 0;
	res->t_out = t0_out && tr > t0_out ? (double)(tr - t0_out) / 1e9 : 0;
}

static double rate(uint64_t n, double secs)
{
	return secs > 0 ? (double)n / secs : 0;
}

static const double pcts[] = {50, 90, 99, 99.9};
static const char *const pct_names[] = {"p50", "p90", "p99", "p99.9"};

static void print_table(const struct mqb_run *run, const struct result *res)
{
	const struct mqb_opts *o = &run->o;
	double mb = (double)o->size / 1e6;

	printf("mq-bench %s %s %s:%s  producers %u  consumers %u  queues %u\n",
	       o->system, mode_names[o->mode], o->host, o->port, o->producers,
	       o->consumers, o->queues);
	printf("  size %zu B  window %u  prefetch %u  lag %" PRIu64 "  %s\n",
	       o->size, o->window, o->prefetch, o->lag,
	       o->auto_ack ? "auto-ack" : "ack");
	if (o->mode == MQB_CONNECT) {
		printf("  connections %u held\n", o->consumers);
		return;
	}
	if (o->mode != MQB_CONSUME)
		printf("  sent      %12" PRIu64 " msgs %10.0f msgs/s %8.1f MB/s\n",
		       res->sent, rate(res->sent, res->t_in),
		       rate(res->sent, res->t_in) * mb);
	if (o->mode != MQB_PRODUCE)
		printf("  received  %12" PRIu64 " msgs %10.0f msgs/s %8.1f MB/s\n",
		       res->received, rate(res->received, res->t_out),
		       rate(res->received, res->t_out) * mb);
	if (res->hist.n > 0) {
		printf("  latency  ");
		for (size_t i = 0; i < 4; i++)
			printf(" %s %.1f us ", pct_names[i],
			       (double)mqb_hist_percentile(&res->hist, pcts[i]) / 1e3);
		printf(" max %.1f us\n", (double)res->hist.max / 1e3);
	}
	if (o->mode != MQB_PRODUCE)
		printf("  check     %s: %" PRIu64 " lost, %" PRIu64 " duplicated, %"
		       PRIu64 " damaged\n",
		       res->lost || res->dups || res->damaged ? "FAILED"
		       : res->failed || res->stalled          ? "incomplete"
		                                              : "ok",
		       res->lost, res->dups, res->damaged);
}

static void print_json(const struct mqb_run *run, const struct result *res)
{
	const struct mqb_opts *o = &run->o;
	json_t *lat = json_object();
	for (size_t i = 0; i < 4; i++)
		json_object_set_new(lat, pct_names[i],
		                    json_real((double)mqb_hist_percentile(&res->hist, pcts[i]) / 1e3));
	json_object_set_new(lat, "max", json_real((double)res->hist.max / 1e3));
	json_object_set_new(lat, "mean", json_real(mqb_hist_mean(&res->hist) / 1e3));
	json_object_set_new(lat, "samples", json_integer((json_int_t)res->hist.n));
	json_t *errs = json_array();
	for (unsigned i = 0; i < run->nroles; i++)
		if (run->roles[i].failed)
			json_array_append_new(errs, json_string(run->roles[i].err));
	json_t *j = json_pack(
		"{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:I, s:I, s:i, s:i, s:I,"
		" s:b, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:o, s:I, s:I, s:I,"
		" s:b, s:o, s:b}",
		"system", o->system, "mode", mode_names[o->mode], "host", o->host,
		"port", o->port, "producers", (int)o->producers,
		"consumers", (int)o->consumers, "queues", (int)o->queues,
		"count", (json_int_t)o->count, "size", (json_int_t)o->size,
		"window", (int)o->window, "prefetch", (int)o->prefetch,
		"lag", (json_int_t)o->lag, "auto_ack", o->auto_ack,
		"sent", (json_int_t)res->sent, "received", (json_int_t)res->received,
		"sent_per_s", rate(res->sent, res->t_in),
		"received_per_s", rate(res->received, res->t_out),
		"sent_mb_per_s", rate(res->sent, res->t_in) * (double)o->size / 1e6,
		"received_mb_per_s",
		rate(res->received, res->t_out) * (double)o->size / 1e6,
		"sent_seconds", res->t_in, "received_seconds", res->t_out,
		"latency_us", lat, "lost", (json_int_t)res->lost,
		"duplicated", (json_int_t)res->dups,
		"damaged", (json_int_t)res->damaged, "stalled", res->stalled,
		"errors", errs, "ok", !res->failed && !res->stalled && !res->lost &&
		                      !res->dups && !res->damaged);
	if (j == NULL) {
		fprintf(stderr, "mq-bench: cannot build the JSON report\n");
		return;
	}
	char *s = json_dumps(j, JSON_COMPACT);
	puts(s);
	free(s);
	json_decref(j);
}

int main(int argc, char **argv)
{
	struct mqb_opts o;
	struct mqb_run run;
	struct result res = {0};
	uint64_t duration_ms = 0;
	char err[512] = "";
	int rc = parse_args(argc, argv, &o, &duration_ms);

	if (rc != 0) {
		free((char *)o.host);
		free((char *)o.port);
		return rc > 0 ? 0 : EXIT_USAGE;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (init_run(&run, &o) < 0) {
		fprintf(stderr, "mq-bench: out of memory for %" PRIu64 " messages\n",
		        o.count);
		free_run(&run, run.nroles);
		return EXIT_BAD;
	}
	unsigned nalloc = run.nroles;
	if (run.drv->setup && run.drv->setup(&run, err, sizeof err) < 0) {
		fprintf(stderr, "mq-bench: set-up: %s\n", err);
		free_run(&run, nalloc);
		return EXIT_BAD;
	}
	for (unsigned i = 0; i < run.nroles; i++) {
		int e = pthread_create(&run.roles[i].thread, NULL, role_main,
		                       &run.roles[i]);
		if (e != 0) {
			fprintf(stderr, "mq-bench: cannot start a thread: %s\n", strerror(e));
			atomic_store(&run.stop, true);
			run.nroles = i;
			break;
		}
	}
	if (o.mode == MQB_CONNECT && !o.quiet && !o.json)
		fprintf(stderr, "mq-bench: holding %u connections\n", o.consumers);
	watch(&run, duration_ms, &res.stalled);
	for (unsigned i = 0; i < run.nroles; i++)
		pthread_join(run.roles[i].thread, NULL);
	collect(&run, &res);
	if (o.json)
		print_json(&run, &res);
	else
		print_table(&run, &res);
	for (unsigned i = 0; i < run.nroles; i++)
		if (run.roles[i].failed)
			fprintf(stderr, "mq-bench: %s %u: %s\n",
			        run.roles[i].sender ? "sender" : "receiver",
			        run.roles[i].id, run.roles[i].err);
	if (res.stalled)
		fprintf(stderr, "mq-bench: no progress for %u ms: gave up\n",
		        o.timeout_ms);
	if (interrupted && o.mode != MQB_CONNECT)
		fprintf(stderr, "mq-bench: interrupted\n");
	bool ok = !res.failed && !res.stalled && !res.lost && !res.dups &&
	          !res.damaged && (!interrupted || o.mode == MQB_CONNECT);
	free_run(&run, nalloc);
	return ok ? 0 : EXIT_BAD;
}
