#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * pi: the Monte Carlo estimate of pi from "Foundations of Python Network
 * Programming" (chapter 8, queuepi.py), rebuilt on mqd with libmq.  Five
 * roles, one program:
 *
 *   bitsource   PUBLISHes random points as 64 '0'/'1' characters to
 *               bits.<first two characters>
 *   always_yes  SUBSCRIBEs to bits.00 and SENDs "Y" to the queue pi.tally
 *   judge       SUBSCRIBEs to bits.01, bits.10, bits.11; asks pythagoras for
 *               x*x + y*y by request/reply on pi.pythagoras; SENDs "Y" when
 *               the sum is below 2^64, else "N", to pi.tally
 *   pythagoras  CONSUMEs pi.pythagoras and replies with the sum of squares
 *   tally       CONSUMEs pi.tally and prints 4 * Y / (Y + N)
 *
 * The geometry.  A point is two numbers x, y uniform in [0, 2^32); it lies
 * inside the quarter circle of radius 2^32 when x^2 + y^2 < 2^64, which
 * happens with probability pi/4.  As in the book, the 64 characters are the
 * two numbers' bits interleaved, most significant first: even positions
 * (0, 2, 4, ...) are x, odd positions (1, 3, 5, ...) are y.  The first two
 * characters are therefore the top bit of x and the top bit of y, and the
 * topic bits.00 means x < 2^31 and y < 2^31, so x^2 + y^2 < 2^63: surely
 * inside, which is why always_yes need not ask anybody.
 *
 * Nothing is lost or counted twice on the way, so the estimate is unbiased:
 * a point that nobody received (its subscriber was not up yet; PUBLISH
 * answered 0 receivers) is published again, the same point, until someone
 * takes it.  Dropping it instead would favour whichever quadrant's
 * subscriber happened to start first.
 *
 * Signals: SIGINT and SIGTERM are blocked and polled with sigpending()
 * between library calls, so no libmq call is ever interrupted half-way and
 * a role always finishes the point in hand before it stops (bitsource's
 * count of published points is exact; tally's final line is printed).
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mq/mq.h"

#define TOPIC_PREFIX "bits."
#define Q_TALLY "pi.tally"
#define Q_PYTHAGORAS "pi.pythagoras"
#define NBITS 64           /* characters per point: 32 bits of x and of y */
#define POLL_MS 250        /* longest wait before looking at the signals */
#define SYNC_EVERY 256     /* quiet sends between mq_syncs */
#define ACK_BATCH 256      /* tally: ids acknowledged together */
#define TALLY_PREFETCH 2048
#define PYTHAGORAS_PREFETCH 64
#define REQUEST_TIMEOUT_MS 2000

__extension__ typedef unsigned __int128 u128;

static const char *prog = "pi";
static const char *role_name = "";

/* ---- options ------------------------------------------------------------- */

struct opts {
	const char *server; /* NULL: $MQ_SERVER, else the default */
	uint64_t count;     /* -n: 0 = unlimited */
	double rate;        /* -r: bitsource points per second, 0 = no pacing */
	uint64_t every;     /* -e: tally prints every this many points */
	bool quiet;         /* -q */
};

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: %s ROLE [-s HOST:PORT] [options]\n"
	        "roles:\n"
	        "  bitsource [-n COUNT] [-r RATE]  publish random points to "
	        "bits.XY\n"
	        "  always_yes                      bits.00 -> Y to " Q_TALLY "\n"
	        "  judge                           bits.01/10/11 -> ask "
	        "pythagoras -> Y/N\n"
	        "  pythagoras                      serve " Q_PYTHAGORAS
	        ": \"x y ...\" -> sum of squares\n"
	        "  tally [-n COUNT] [-e EVERY] [-q] count " Q_TALLY
	        " and print 4*Y/(Y+N)\n"
	        "options:\n"
	        "  -s HOST:PORT  the server (default $MQ_SERVER, else "
	        MQ_DEFAULT_SERVER ")\n"
	        "  -n COUNT      bitsource: publish COUNT points; tally: stop "
	        "after COUNT points\n"
	        "  -r RATE       bitsource: at most RATE points a second "
	        "(default: as fast as it can)\n"
	        "  -e EVERY      tally: print the running estimate every EVERY "
	        "points (default 1000)\n"
	        "  -q            tally: print only the final line\n"
	        "SIGINT or SIGTERM stops a role; tally then prints\n"
	        "\"pi ~= X after N points\".  Exit status 0, 1 on an error, "
	        "2 on a usage error.\n",
	        prog);
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = (uint64_t)v;
	return true;
}

/* ---- signals --------------------------------------------------------------- */

static sigset_t stop_set;

/* Block SIGINT and SIGTERM; stop_requested() polls for them. */
static int block_stop_signals(void)
{
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGINT);
	sigaddset(&stop_set, SIGTERM);
	/* An ignored signal is discarded, never pending: a shell script
	 * starts its background jobs with SIGINT ignored. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	return sigprocmask(SIG_BLOCK, &stop_set, NULL);
}

static bool stop_requested(void)
{
	sigset_t pending;

	if (sigpending(&pending) != 0)
		return false;
	return sigismember(&pending, SIGINT) == 1 ||
	       sigismember(&pending, SIGTERM) == 1;
}

/* Sleep up to ms; returns true (at once) when a stop signal is pending. */
static bool sleep_or_stop(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	if (stop_requested())
		return true;
	if (ms <= 0)
		return false;
	/* sigtimedwait would consume the signal; peek with a short sleep. */
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	return stop_requested();
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- errors and connections -------------------------------------------------- */

static void fail_mq(mq_conn *c, const char *what, int rc)
{
	const char *srv = c != NULL ? mq_last_error_message(c) : "";

	fprintf(stderr, "%s %s: %s: %s%s%s\n", prog, role_name, what,
	        mq_strerror(rc), srv[0] ? ": " : "", srv);
}

static mq_conn *connect_as(const struct opts *o)
{
	char name[64];
	mq_conn *c = NULL;
	int rc;

	snprintf(name, sizeof name, "pi-%s", role_name);
	rc = mq_connect(&c, o->server, name);
	if (rc != 0) {
		const char *s = o->server ? o->server : getenv("MQ_SERVER");
		fprintf(stderr, "%s %s: cannot connect to %s: %s\n", prog,
		        role_name, s && s[0] ? s : MQ_DEFAULT_SERVER,
		        mq_strerror(rc));
		return NULL;
	}
	return c;
}

static void say_ready(void)
{
	fprintf(stderr, "%s %s: ready\n", prog, role_name);
}

/* Copy a message body into a NUL-terminated buffer; false if too long. */
static bool body_str(const struct mq_message *m, char *buf, size_t cap)
{
	if (m->body_len >= cap)
		return false;
	if (m->body_len > 0)
		memcpy(buf, m->body, m->body_len);
	buf[m->body_len] = '\0';
	return true;
}

/* ---- 128-bit decimal ------------------------------------------------------- */

static void u128_str(u128 v, char *out, size_t cap)
{
	char tmp[48];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + (unsigned)(v % 10));
		v /= 10;
	} while (v != 0 && n < sizeof tmp);
	if (n + 1 > cap)
		n = cap - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = '\0';
}

/* Parse a decimal without sign into *out; *endp past it.  False on no
 * digits or on overflow of 128 bits. */
static bool u128_parse(const char *s, u128 *out, const char **endp)
{
	const u128 max = ~(u128)0;
	u128 v = 0;
	const char *p = s;

	while (*p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
		p++;
	}
	if (p == s)
		return false;
	*out = v;
	*endp = p;
	return true;
}

/* ---- the PRNG -------------------------------------------------------------- */

/* xoshiro256** (Blackman and Vigna), seeded through splitmix64 from
 * /dev/urandom, or from the time and the pid when that cannot be read. */
static uint64_t rng_s[4];

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
	uint64_t r = rotl(rng_s[1] * 5, 7) * 9;
	uint64_t t = rng_s[1] << 17;

	rng_s[2] ^= rng_s[0];
	rng_s[3] ^= rng_s[1];
	rng_s[1] ^= rng_s[2];
	rng_s[0] ^= rng_s[3];
	rng_s[2] ^= t;
	rng_s[3] = rotl(rng_s[3], 45);
	return r;
}

static void rng_seed(void)
{
	uint64_t seed = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	bool got = false;

	if (fd >= 0) {
		got = read(fd, &seed, sizeof seed) == (ssize_t)sizeof seed;
		close(fd);
	}
	if (!got)
		seed = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32) ^
		       (uint64_t)time(NULL);
	for (int i = 0; i < 4; i++)
		rng_s[i] = splitmix64(&seed);
}

/* ---- points ---------------------------------------------------------------- */

/* The 64 characters of the point (x, y): bit 31 - i of x at position 2i,
 * bit 31 - i of y at position 2i + 1. */
static void point_str(uint32_t x, uint32_t y, char out[NBITS + 1])
{
	for (int i = 0; i < 32; i++) {
		out[2 * i] = (char)('0' + ((x >> (31 - i)) & 1u));
		out[2 * i + 1] = (char)('0' + ((y >> (31 - i)) & 1u));
	}
	out[NBITS] = '\0';
}

/* The inverse; false if the body is not 64 '0'/'1' characters. */
static bool point_parse(const struct mq_message *m, uint32_t *x, uint32_t *y)
{
	uint32_t a = 0, b = 0;

	if (m->body_len != NBITS)
		return false;
	for (int i = 0; i < NBITS; i++) {
		uint8_t ch = m->body[i];
		if (ch != '0' && ch != '1')
			return false;
		if (i % 2 == 0)
			a = (a << 1) | (uint32_t)(ch - '0');
		else
			b = (b << 1) | (uint32_t)(ch - '0');
	}
	*x = a;
	*y = b;
	return true;
}

/* ---- bitsource -------------------------------------------------------------- */

static int run_bitsource(const struct opts *o)
{
	mq_conn *c = connect_as(o);
	uint64_t published = 0, republished = 0;
	int64_t start, interval_ns = 0;
	int status = 0;

	if (c == NULL)
		return 1;
	rng_seed();
	if (o->rate > 0)
		interval_ns = (int64_t)(1e9 / o->rate);
	say_ready();
	start = now_ns();
	while (o->count == 0 || published < o->count) {
		char bits[NBITS + 1], topic[16];
		uint64_t r;
		uint32_t receivers = 0;
		int64_t waited_ms = 0;
		int rc;

		if (interval_ns > 0) {
			int64_t due = start + (int64_t)published * interval_ns;
			int64_t left = due - now_ns();
			/* Sleep in slices so that a stop is noticed. */
			while (left > 0) {
				long ms = left / 1000000;
				if (ms > POLL_MS)
					ms = POLL_MS;
				if (ms == 0) {
					struct timespec ts = {0, (long)left};
					nanosleep(&ts, NULL);
				} else if (sleep_or_stop(ms)) {
					break;
				}
				left = due - now_ns();
			}
		}
		if (stop_requested())
			break;
		r = rng_next();
		point_str((uint32_t)(r >> 32), (uint32_t)r, bits);
		snprintf(topic, sizeof topic, TOPIC_PREFIX "%c%c", bits[0],
		         bits[1]);
		for (;;) {
			rc = mq_publish(c, topic, bits, NBITS, NULL, 0,
			                &receivers);
			if (rc != 0 || receivers > 0)
				break;
			/* Nobody took it: the same point again, later. */
			republished++;
			if (waited_ms == 1000)
				fprintf(stderr, "%s bitsource: nobody subscribes "
				        "to %s yet; waiting\n", prog, topic);
			waited_ms += 10;
			if (sleep_or_stop(10))
				break;
		}
		if (rc != 0) {
			fail_mq(c, "publish", rc);
			status = 1;
			break;
		}
		if (receivers == 0)
			break; /* stopped while nobody listened: not published */
		published++;
	}
	printf("bitsource: published %" PRIu64 " points\n", published);
	if (republished > 0)
		fprintf(stderr, "%s bitsource: %" PRIu64 " publishes found no "
		        "subscriber and were repeated\n", prog, republished);
	fflush(stdout);
	mq_close(c);
	return status;
}

/* ---- always_yes and judge: the tally side ------------------------------------ */

/* Quiet SENDs to pi.tally, synced every SYNC_EVERY and whenever idle, so
 * that an error does not go unnoticed for long. */
struct tally_out {
	mq_conn *c;
	unsigned pending;
};

static int vote_sync(struct tally_out *t)
{
	int rc;

	if (t->pending == 0)
		return 0;
	rc = mq_sync(t->c);
	if (rc != 0) {
		fail_mq(t->c, "send to " Q_TALLY, rc);
		return rc;
	}
	t->pending = 0;
	return 0;
}

static int vote(struct tally_out *t, bool yes)
{
	int rc = mq_send_quiet(t->c, Q_TALLY, yes ? "Y" : "N", 1, NULL);

	if (rc != 0) {
		fail_mq(t->c, "send to " Q_TALLY, rc);
		return rc;
	}
	if (++t->pending >= SYNC_EVERY)
		return vote_sync(t);
	return 0;
}

/*
 * The next delivery, or NULL with *rc 0 when a stop was requested.
 * (mq_next writes out pending quiet requests before it waits, so votes
 * never sit in the buffer; they are synced, to see any error, when the
 * role has been idle for POLL_MS.)
 */
static struct mq_message *next_or_stop(mq_conn *c, struct tally_out *t,
                                       int *rc)
{
	struct mq_message *m = NULL;

	*rc = 0;
	for (;;) {
		int r;

		if (stop_requested())
			return NULL;
		r = mq_next(c, POLL_MS, &m);
		if (r == 0)
			return m;
		if (r == MQ_ERR_TIMEOUT) {
			if (t != NULL && (*rc = vote_sync(t)) != 0)
				return NULL;
			continue;
		}
		if (r == MQ_ERR_IO && errno == EINTR)
			continue;
		fail_mq(c, "receive", r);
		*rc = r;
		return NULL;
	}
}

static int declare(mq_conn *c, const char *queue)
{
	int rc = mq_declare(c, queue, NULL, 0, NULL);

	if (rc != 0)
		fail_mq(c, "declare", rc);
	return rc;
}

static int subscribe(mq_conn *c, const char *pattern)
{
	int rc = mq_subscribe(c, pattern, NULL);

	if (rc != 0)
		fail_mq(c, "subscribe", rc);
	return rc;
}

static int run_always_yes(const struct opts *o)
{
	struct tally_out t = {connect_as(o), 0};
	struct mq_message *m;
	int rc = 0;

	if (t.c == NULL)
		return 1;
	if (declare(t.c, Q_TALLY) != 0 ||
	    subscribe(t.c, TOPIC_PREFIX "00") != 0) {
		mq_close(t.c);
		return 1;
	}
	say_ready();
	while ((m = next_or_stop(t.c, &t, &rc)) != NULL) {
		rc = vote(&t, true);
		mq_message_free(m);
		if (rc != 0)
			break;
	}
	if (rc == 0)
		rc = vote_sync(&t);
	mq_close(t.c);
	return rc != 0;
}

/* Ask pythagoras for x^2 + y^2; waits (and asks again) until it answers or
 * a stop is requested.  Returns 0 with *sum set, 1 when stopped, -1 on an
 * error. */
static int ask_pythagoras(mq_conn *c, uint32_t x, uint32_t y, u128 *sum)
{
	char req[32], ans[64];
	const char *end;
	struct mq_message *reply = NULL;
	int n = snprintf(req, sizeof req, "%" PRIu32 " %" PRIu32, x, y);
	int rc;
	bool warned = false;

	for (;;) {
		rc = mq_request(c, Q_PYTHAGORAS, req, (size_t)n,
		                REQUEST_TIMEOUT_MS, &reply);
		if (rc == 0)
			break;
		if (rc != MQ_ERR_TIMEOUT) {
			fail_mq(c, "request to " Q_PYTHAGORAS, rc);
			return -1;
		}
		if (stop_requested())
			return 1;
		if (!warned)
			fprintf(stderr, "%s judge: no answer from "
			        Q_PYTHAGORAS " yet; asking again\n", prog);
		warned = true;
	}
	if (!body_str(reply, ans, sizeof ans) || !u128_parse(ans, sum, &end) ||
	    *end != '\0') {
		fprintf(stderr, "%s judge: pythagoras answered \"%.*s\" to "
		        "\"%s\"\n", prog, (int)(reply->body_len > 80 ? 80 :
		        reply->body_len), (const char *)reply->body, req);
		mq_message_free(reply);
		return -1;
	}
	mq_message_free(reply);
	return 0;
}

static int run_judge(const struct opts *o)
{
	static const char *const topics[] = {
		TOPIC_PREFIX "01", TOPIC_PREFIX "10", TOPIC_PREFIX "11"};
	const u128 unit = (u128)1 << 64;
	struct tally_out t = {connect_as(o), 0};
	struct mq_message *m;
	int rc = 0;

	if (t.c == NULL)
		return 1;
	if (declare(t.c, Q_TALLY) != 0 || declare(t.c, Q_PYTHAGORAS) != 0) {
		mq_close(t.c);
		return 1;
	}
	for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
		if (subscribe(t.c, topics[i]) != 0) {
			mq_close(t.c);
			return 1;
		}
	say_ready();
	while ((m = next_or_stop(t.c, &t, &rc)) != NULL) {
		uint32_t x, y;
		u128 sum;
		int a;

		if (!point_parse(m, &x, &y)) {
			fprintf(stderr, "%s judge: ignoring a malformed point "
			        "on %s\n", prog, m->source);
			mq_message_free(m);
			continue;
		}
		mq_message_free(m);
		a = ask_pythagoras(t.c, x, y, &sum);
		if (a == 1)
			break; /* stopped while waiting: this point is lost */
		if (a != 0) {
			rc = -1;
			break;
		}
		rc = vote(&t, sum < unit);
		if (rc != 0)
			break;
	}
	if (rc == 0)
		rc = vote_sync(&t);
	mq_close(t.c);
	return rc != 0;
}

/* ---- pythagoras ------------------------------------------------------------- */

/* "x y ..." (decimal, whitespace-separated) -> the sum of their squares in
 * decimal, exact; "ERR ..." for anything else. */
static void sum_of_squares(const char *req, char *out, size_t cap)
{
	const char *p = req;
	u128 sum = 0;
	int n = 0;

	for (;;) {
		u128 v;
		const char *end;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (*p == '\0')
			break;
		if (!u128_parse(p, &v, &end) || v > UINT64_MAX ||
		    (*end != '\0' && *end != ' ' && *end != '\t' &&
		     *end != '\n')) {
			snprintf(out, cap, "ERR not a number below 2^64");
			return;
		}
		v *= v;
		if (sum > ~(u128)0 - v) {
			snprintf(out, cap, "ERR the sum exceeds 2^128");
			return;
		}
		sum += v;
		n++;
		p = end;
	}
	if (n == 0)
		snprintf(out, cap, "ERR no numbers");
	else
		u128_str(sum, out, cap);
}

static int run_pythagoras(const struct opts *o)
{
	mq_conn *c = connect_as(o);
	struct mq_message *m;
	int rc;

	if (c == NULL)
		return 1;
	if ((rc = declare(c, Q_PYTHAGORAS)) != 0)
		goto out;
	rc = mq_consume(c, Q_PYTHAGORAS, PYTHAGORAS_PREFETCH, 0, NULL);
	if (rc != 0) {
		fail_mq(c, "consume " Q_PYTHAGORAS, rc);
		goto out;
	}
	say_ready();
	while ((m = next_or_stop(c, NULL, &rc)) != NULL) {
		char req[256], ans[64];
		uint64_t id = m->id;

		if (!body_str(m, req, sizeof req))
			snprintf(ans, sizeof ans, "ERR request too long");
		else
			sum_of_squares(req, ans, sizeof ans);
		rc = mq_reply(c, m, ans, strlen(ans));
		if (rc == MQ_ERR_INVALID) {
			fprintf(stderr, "%s pythagoras: a request without "
			        "reply-to; dropped\n", prog);
			rc = 0;
		}
		mq_message_free(m);
		if (rc != 0) {
			fail_mq(c, "reply", rc);
			break;
		}
		/* Acknowledged only once the reply is stored: a pythagoras
		 * that dies in between leaves the request to another. */
		rc = mq_ack(c, &id, 1, MQ_QUIET, NULL);
		if (rc != 0) {
			fail_mq(c, "ack", rc);
			break;
		}
	}
	if (rc == 0 && (rc = mq_sync(c)) != 0)
		fail_mq(c, "ack", rc);
out:
	mq_close(c);
	return rc != 0;
}

/* ---- tally ---------------------------------------------------------------- */

struct tally {
	mq_conn *c;
	uint64_t yes, no, printed;
	uint64_t ids[ACK_BATCH];
	uint16_t nids;
};

static double estimate(const struct tally *t)
{
	uint64_t n = t->yes + t->no;

	return n ? 4.0 * (double)t->yes / (double)n : 0.0;
}

static void print_running(struct tally *t)
{
	uint64_t n = t->yes + t->no;

	printf("%" PRIu64 " points: pi ~= %.5f (Y %" PRIu64 ", N %" PRIu64
	       ")\n", n, estimate(t), t->yes, t->no);
	fflush(stdout);
	t->printed = n;
}

static int flush_acks(struct tally *t)
{
	int rc;

	if (t->nids == 0)
		return 0;
	rc = mq_ack(t->c, t->ids, t->nids, MQ_QUIET, NULL);
	t->nids = 0;
	if (rc != 0)
		fail_mq(t->c, "ack", rc);
	return rc;
}

static int run_tally(const struct opts *o)
{
	struct tally t;
	uint64_t every = o->every ? o->every : 1000;
	int rc = 0;

	memset(&t, 0, sizeof t);
	t.c = connect_as(o);
	if (t.c == NULL)
		return 1;
	if (declare(t.c, Q_TALLY) != 0) {
		mq_close(t.c);
		return 1;
	}
	rc = mq_consume(t.c, Q_TALLY, TALLY_PREFETCH, 0, NULL);
	if (rc != 0) {
		fail_mq(t.c, "consume " Q_TALLY, rc);
		mq_close(t.c);
		return 1;
	}
	say_ready();
	while (o->count == 0 || t.yes + t.no < o->count) {
		struct mq_message *m = NULL;
		int r;

		if (stop_requested())
			break;
		r = mq_next(t.c, 0, &m);
		if (r == MQ_ERR_TIMEOUT) {
			/* Nothing buffered: acknowledge what was counted
			 * (mq_next writes the quiet ACK out before waiting). */
			if ((rc = flush_acks(&t)) != 0)
				break;
			r = mq_next(t.c, POLL_MS, &m);
			if (r == MQ_ERR_TIMEOUT) {
				/* Idle: check the ACKs went through, and show
				 * the exact count (which is how run.sh sees
				 * that the pipeline has drained). */
				if ((rc = mq_sync(t.c)) != 0) {
					fail_mq(t.c, "ack", rc);
					break;
				}
				if (!o->quiet && t.printed != t.yes + t.no)
					print_running(&t);
				continue;
			}
		}
		if (r == MQ_ERR_TIMEOUT || (r == MQ_ERR_IO && errno == EINTR))
			continue;
		if (r != 0) {
			fail_mq(t.c, "receive", r);
			rc = r;
			break;
		}
		if (m->body_len == 1 && m->body[0] == 'Y')
			t.yes++;
		else if (m->body_len == 1 && m->body[0] == 'N')
			t.no++;
		else
			fprintf(stderr, "%s tally: ignoring a vote that is "
			        "neither Y nor N\n", prog);
		t.ids[t.nids++] = m->id;
		mq_message_free(m);
		if (t.nids == ACK_BATCH && (rc = flush_acks(&t)) != 0)
			break;
		if (!o->quiet && (t.yes + t.no) % every == 0 &&
		    t.printed != t.yes + t.no)
			print_running(&t);
	}
	if (rc == 0 && (rc = flush_acks(&t)) == 0 && (rc = mq_sync(t.c)) != 0)
		fail_mq(t.c, "ack", rc);
	printf("pi ~= %.5f after %" PRIu64 " points\n", estimate(&t),
	       t.yes + t.no);
	fflush(stdout);
	mq_close(t.c);
	return rc != 0;
}

/* ---- main ------------------------------------------------------------------ */

static const struct {
	const char *name;
	int (*run)(const struct opts *);
} roles[] = {
	{"bitsource", run_bitsource},
	{"always_yes", run_always_yes},
	{"judge", run_judge},
	{"pythagoras", run_pythagoras},
	{"tally", run_tally},
};

int main(int argc, char **argv)
{
	struct opts o;
	int (*run)(const struct opts *) = NULL;
	int opt;

	memset(&o, 0, sizeof o);
	if (argc < 2 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
		if (strcmp(argv[1], roles[i].name) == 0) {
			run = roles[i].run;
			role_name = roles[i].name;
		}
	if (run == NULL) {
		fprintf(stderr, "%s: unknown role \"%s\"\n", prog, argv[1]);
		usage(stderr);
		return 2;
	}
	optind = 2;
	while ((opt = getopt(argc, argv, "s:n:r:e:qh")) != -1) {
		switch (opt) {
		case 's':
			o.server = optarg;
			break;
		case 'n':
			if (!parse_u64(optarg, &o.count)) {
				fprintf(stderr, "%s: -n wants a count\n", prog);
				return 2;
			}
			break;
		case 'r': {
			char *end;
			errno = 0;
			o.rate = strtod(optarg, &end);
			if (errno || *end != '\0' || !(o.rate >= 0) ||
			    o.rate > 1e9) {
				fprintf(stderr, "%s: -r wants points per "
				        "second\n", prog);
				return 2;
			}
			break;
		}
		case 'e':
			if (!parse_u64(optarg, &o.every) || o.every == 0) {
				fprintf(stderr, "%s: -e wants a count above "
				        "0\n", prog);
				return 2;
			}
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog,
		        argv[optind]);
		return 2;
	}
	if (block_stop_signals() != 0) {
		perror("sigprocmask");
		return 1;
	}
	return run(&o);
}
