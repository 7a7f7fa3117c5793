#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * soak-worker: the part of the soak (tests/soak/soak.sh) that mq-bench
 * does not do: acknowledged consumption with NACKs, rejections into a
 * dead-letter queue, delayed messages, a consumer that drops its
 * connection while holding messages, and a "victim" connection that an
 * administrator kills (mqctl kill) from outside.  Every message is
 * checked: its body (variable length, derived from its sequence number),
 * that it arrives, and that it never arrives again once acknowledged.
 *
 * It works in rounds of --round messages on --queue (whose dead_letter
 * must be --dead-letter; it is declared so):
 *
 *   - SEND them (QUIET, then a sync), with random priorities, and a delay
 *     of up to 300 ms on one in ten;
 *   - consume until every one is settled.  Per delivery, by a seeded
 *     draw: NACK with requeue (--nack percent; half of them with a 50 ms
 *     delay), NACK without requeue (--reject percent: the message must then
 *     come from the dead-letter queue with x-dead-reason "rejected", and is
 *     acknowledged there), or ACK.  ACK and NACK are sent without QUIET and
 *     their OK must count every id;
 *   - every --reconnect rounds, close the consumer's connection while it
 *     holds messages, wait until the broker has dropped its consumers,
 *     connect again and carry on.
 *
 * A delivery is wrong when its body is damaged, when it is a message
 * already settled (a duplicate), when its attempts do not exceed those of
 * its previous delivery, or when attempts > 1 although it was neither
 * NACKed nor held by a connection that closed (its return is then
 * unexplained).  A round that does not settle within 60 s has lost a
 * message.
 *
 * The victim connection consumes --victim (10 messages it never
 * acknowledges).  When it finds its connection closed (soak.sh kills it
 * with mqctl kill), it connects again: the 10 messages must come back,
 * each with higher attempts than before.  The queue's ack_timeout brings
 * them back too, the same way.
 *
 * It runs for --duration seconds or until SIGTERM/SIGINT, finishes its
 * round, prints one line of counts (key=value) and exits 0, or 1 after the
 * first error (described on stderr).
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mq/mq.h"

#define VICTIMS 10
#define BODY_HEAD 24 /* "SW1 " + 16 hex digits + "|" + 3 spare */
#define SETTLE_MS 60000
#define VICTIM_RETURN_MS 15000

/* ---- options and counts --------------------------------------------------- */

static struct {
	const char *server, *queue, *dlq, *victim;
	unsigned round, nack, reject, reconnect, prefetch;
	double duration, rate;
	uint64_t seed;
} opt = {
	.queue = "soak.work", .dlq = "soak.work.dead", .victim = "soak.victim",
	.round = 200, .nack = 5, .reject = 2, .reconnect = 7, .prefetch = 50,
	.duration = 60, .rate = 2000, .seed = 11,
};

static struct {
	uint64_t rounds, sent, delayed, delivered, acked, requeued, rejected,
		dead_lettered, redelivered, reconnects, victim_kills,
		victim_returns;
} n;

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !stopping)
		;
}

static int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "soak-worker: ERROR: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

/* ---- a seeded generator (xorshift64*) -------------------------------------- */

static uint64_t rng = 1;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
}

/* ---- bodies ----------------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* 32 .. 4127 bytes, so the broker's allocator sees many sizes. */
static size_t body_len(uint64_t seq)
{
	return 32 + (size_t)(mix(seq) % 4096);
}

static void body_make(uint8_t *b, uint64_t seq)
{
	size_t len = body_len(seq);
	uint64_t x = mix(seq ^ 0x5eed);

	snprintf((char *)b, BODY_HEAD + 1, "SW1 %016" PRIx64 "|...", seq);
	for (size_t i = BODY_HEAD; i < len; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		b[i] = (uint8_t)(x >> 56);
	}
}

/* 0 and *seq, or -1: damaged. */
static int body_check(const uint8_t *b, size_t len, uint64_t *seq)
{
	static uint8_t want[BODY_HEAD + 4096 + 32];
	char head[BODY_HEAD + 1];

	if (len < BODY_HEAD || memcmp(b, "SW1 ", 4) != 0)
		return -1;
	memcpy(head, b, BODY_HEAD);
	head[BODY_HEAD] = '\0';
	if (sscanf(head + 4, "%16" SCNx64, seq) != 1 || len != body_len(*seq))
		return -1;
	body_make(want, *seq);
	return memcmp(b, want, len) == 0 ? 0 : -1;
}

/* ---- the round's messages ----------------------------------------------------- */

enum { PENDING, REJECTED, DONE };

struct msgstate {
	uint8_t state;
	bool may_return;   /* NACKed, or held by a connection that closed */
	uint16_t attempts; /* of its last delivery (of its dead letter, once
	                    * REJECTED) */
};

static struct msgstate *ms;
static uint64_t base; /* first seq of the round */
static unsigned unsettled;

/* Ids waiting for one ACK, NACK or NACK-without-requeue each. */
struct idlist {
	uint64_t ids[64];
	uint64_t seqs[64];
	uint16_t len;
};

static struct idlist acks, nacks, nacks_delay, rejects, dlq_acks;

/* ---- connections ------------------------------------------------------------- */

static mq_conn *prod, *cons, *vict;
static uint32_t work_tag, dlq_tag;

static int connect_consumer(void)
{
	int rc;

	if ((rc = mq_connect(&cons, opt.server, "soak-consumer")) != 0)
		return fail("connect: %s", mq_strerror(rc));
	if ((rc = mq_consume(cons, opt.queue, opt.prefetch, 0, &work_tag)) != 0 ||
	    (rc = mq_consume(cons, opt.dlq, opt.prefetch, 0, &dlq_tag)) != 0)
		return fail("consume: %s", mq_strerror(rc));
	return 0;
}

/*
 * Close the consumer's connection while it holds messages: every
 * unsettled message may now come back with higher attempts.  Before
 * connecting again, wait until the broker has let go of the old
 * connection's consumers (a passive DECLARE counts them): until then the
 * broker may still hand it messages that did not exist when it was closed
 * (a dead letter, a delayed message coming due), which come back too.
 */
static int reconnect_consumer(void)
{
	struct mq_declared w, d;
	double t0 = now_s();
	int rc;

	mq_close(cons);
	cons = NULL;
	for (unsigned i = 0; i < opt.round; i++)
		if (ms[i].state != DONE)
			ms[i].may_return = true;
	acks.len = nacks.len = nacks_delay.len = rejects.len = dlq_acks.len = 0;
	n.reconnects++;
	for (;;) {
		if ((rc = mq_declare(prod, opt.queue, NULL, MQ_PASSIVE, &w)) != 0 ||
		    (rc = mq_declare(prod, opt.dlq, NULL, MQ_PASSIVE, &d)) != 0)
			return fail("declare: %s", mq_strerror(rc));
		if (w.consumers == 0 && d.consumers == 0)
			break;
		if (now_s() - t0 > 10)
			return fail("the broker still counts %u + %u consumers 10 s "
			            "after their connection closed", w.consumers,
			            d.consumers);
		sleep_s(0.001);
	}
	return connect_consumer();
}

/* Send one list: ACK, NACK (requeue, delay) or NACK without requeue. */
static int flush(struct idlist *l, int op, uint32_t delay)
{
	uint32_t count = 0;
	int rc;

	if (l->len == 0)
		return 0;
	rc = op == 'A' ? mq_ack(cons, l->ids, l->len, 0, &count)
	     : mq_nack(cons, l->ids, l->len, op == 'N', delay, 0, &count);
	if (rc != 0)
		return fail("%s: %s", op == 'A' ? "ACK" : "NACK", mq_strerror(rc));
	if (count != l->len)
		return fail("%s of %u held messages counted %" PRIu32,
		            op == 'A' ? "ACK" : "NACK", l->len, count);
	for (uint16_t i = 0; i < l->len; i++) {
		struct msgstate *s = &ms[l->seqs[i] - base];
		if (l == &acks || l == &dlq_acks) {
			s->state = DONE;
			unsettled--;
			if (l == &acks)
				n.acked++;
			else
				n.dead_lettered++;
		} else if (op == 'R') {
			s->state = REJECTED;
			s->attempts = 0; /* its dead letter starts again at 1 */
			s->may_return = false;
			n.rejected++;
		} else {
			s->may_return = true;
			n.requeued++;
		}
	}
	l->len = 0;
	return 0;
}

static int flush_all(void)
{
	if (flush(&acks, 'A', 0) < 0 || flush(&dlq_acks, 'A', 0) < 0 ||
	    flush(&nacks, 'N', 0) < 0 || flush(&nacks_delay, 'N', 50) < 0 ||
	    flush(&rejects, 'R', 0) < 0)
		return -1;
	return 0;
}

static int add(struct idlist *l, const struct mq_message *m, uint64_t seq)
{
	l->ids[l->len] = m->id;
	l->seqs[l->len++] = seq;
	return l->len == 64 ? flush_all() : 0;
}

static int on_delivery(const struct mq_message *m)
{
	uint64_t seq;
	bool dead = m->tag == dlq_tag;
	const char *why;
	int wl;

	n.delivered++;
	if (body_check(m->body, m->body_len, &seq) < 0)
		return fail("damaged body from %s (id %" PRIu64 ", %zu bytes)",
		            m->source, m->id, m->body_len);
	if (seq < base || seq >= base + opt.round)
		return fail("message %" PRIu64 " from %s: not of this round "
		            "(%" PRIu64 "..): a duplicate", seq, m->source, base);
	struct msgstate *s = &ms[seq - base];
	if (s->state == DONE || (dead ? s->state != REJECTED
	                              : s->state != PENDING))
		return fail("message %" PRIu64 " delivered from %s again after "
		            "it was settled", seq, m->source);
	if (m->attempts <= s->attempts)
		return fail("message %" PRIu64 ": attempts %u after %u", seq,
		            m->attempts, s->attempts);
	if (m->attempts > 1 && !s->may_return)
		return fail("message %" PRIu64 " came back (attempts %u) though "
		            "nobody gave it back", seq, m->attempts);
	if (m->attempts > 1)
		n.redelivered++;
	s->attempts = m->attempts;
	s->may_return = false;
	if (dead) {
		wl = mq_message_header(m, "x-dead-reason", &why);
		if (wl != 8 || memcmp(why, "rejected", 8) != 0)
			return fail("dead letter %" PRIu64 " without x-dead-reason "
			            "rejected", seq);
		return add(&dlq_acks, m, seq);
	}
	unsigned r = (unsigned)(rnd() % 100);
	if (r < opt.nack)
		return add(r % 2 ? &nacks_delay : &nacks, m, seq);
	if (r < opt.nack + opt.reject)
		return add(&rejects, m, seq);
	return add(&acks, m, seq);
}

/* ---- the victim ------------------------------------------------------------- */

static uint16_t victim_attempts[VICTIMS];
static unsigned victim_back; /* returned since the last kill */
static double victim_killed_at;

static int victim_connect(void)
{
	uint32_t tag;
	int rc;

	if ((rc = mq_connect(&vict, opt.server, "soak-victim")) != 0 ||
	    (rc = mq_consume(vict, opt.victim, VICTIMS, 0, &tag)) != 0)
		return fail("victim: %s", mq_strerror(rc));
	return 0;
}

/* Take what the victim got; notice when it was killed. */
static int victim_poll(void)
{
	struct mq_message *m;
	int rc;

	while ((rc = mq_next(vict, 0, &m)) == 0) {
		uint64_t seq;
		if (body_check(m->body, m->body_len, &seq) < 0 || seq >= VICTIMS) {
			mq_message_free(m);
			return fail("victim: damaged body");
		}
		if (m->attempts <= victim_attempts[seq]) {
			rc = fail("victim message %" PRIu64 ": attempts %u after %u",
			          seq, m->attempts, victim_attempts[seq]);
			mq_message_free(m);
			return rc;
		}
		victim_attempts[seq] = m->attempts;
		victim_back++;
		n.victim_returns++;
		mq_message_free(m);
	}
	if (rc == MQ_ERR_TIMEOUT)
		rc = mq_ping(vict);
	if (rc == MQ_ERR_CLOSED || rc == MQ_ERR_IO || rc == MQ_ERR_SHUTTING_DOWN) {
		/* Killed: connect again; its messages must all come back. */
		mq_close(vict);
		vict = NULL;
		n.victim_kills++;
		victim_back = 0;
		victim_killed_at = now_s();
		return victim_connect();
	}
	if (rc != 0 && rc != MQ_ERR_TIMEOUT)
		return fail("victim: %s", mq_strerror(rc));
	if (victim_killed_at > 0 && victim_back < VICTIMS &&
	    now_s() - victim_killed_at > VICTIM_RETURN_MS / 1000.0)
		return fail("victim: %u of %d messages came back within %d ms of "
		            "its kill", victim_back, VICTIMS, VICTIM_RETURN_MS);
	if (victim_back >= VICTIMS)
		victim_killed_at = 0;
	return 0;
}

/* ---- a round ------------------------------------------------------------------ */

static int send_round(void)
{
	static uint8_t body[BODY_HEAD + 4096 + 32];
	int rc;

	for (unsigned i = 0; i < opt.round; i++) {
		struct mq_send_opts so = { .priority = (uint8_t)(rnd() % 10) };
		if (rnd() % 10 == 0) {
			so.delay_ms = (uint32_t)(1 + rnd() % 300);
			n.delayed++;
		}
		body_make(body, base + i);
		ms[i] = (struct msgstate){ .state = PENDING };
		if ((rc = mq_send_quiet(prod, opt.queue, body, body_len(base + i),
		                        &so)) != 0)
			return fail("send: %s", mq_strerror(rc));
	}
	if ((rc = mq_sync(prod)) != 0)
		return fail("send: %s (%u refused)", mq_strerror(rc),
		            mq_quiet_errors(prod));
	n.sent += opt.round;
	unsettled = opt.round;
	return 0;
}

static int run_round(void)
{
	double t0 = now_s(), last_victim = 0;
	bool reconnect = opt.reconnect && n.rounds % opt.reconnect ==
	                                  opt.reconnect - 1;
	unsigned got = 0;

	if (send_round() < 0)
		return -1;
	while (unsettled > 0) {
		struct mq_message *m;
		int rc = mq_next(cons, acks.len + nacks.len + nacks_delay.len +
		                       rejects.len + dlq_acks.len ? 0 : 100, &m);
		if (rc == 0) {
			rc = on_delivery(m);
			mq_message_free(m);
			if (rc < 0)
				return -1;
			/* Half way through, drop the connection holding what
			 * has not been answered yet. */
			if (reconnect && ++got == opt.round / 2) {
				reconnect = false;
				if (reconnect_consumer() < 0)
					return -1;
			}
			continue;
		}
		if (rc != MQ_ERR_TIMEOUT && !(rc == MQ_ERR_IO && errno == EINTR))
			return fail("consume: %s", mq_strerror(rc));
		if (flush_all() < 0)
			return -1;
		if (now_s() - last_victim > 0.5) {
			last_victim = now_s();
			if (victim_poll() < 0)
				return -1;
		}
		if (now_s() - t0 > SETTLE_MS / 1000.0)
			return fail("round %" PRIu64 ": %u of %u messages not settled "
			            "after %d ms: lost", n.rounds, unsettled, opt.round,
			            SETTLE_MS);
	}
	n.rounds++;
	return 0;
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: soak-worker [--server HOST:PORT] [--duration SECS] [--rate MSGS]\n"
"                   [--round N] [--nack PCT] [--reject PCT] [--reconnect N]\n"
"                   [--queue Q] [--dead-letter Q] [--victim Q] [--seed N]\n"
"Defaults: $MQ_SERVER, 60 s, 2000 msgs/s, rounds of 200, 5%% NACKed, 2%%\n"
"rejected, a reconnect every 7 rounds, soak.work, soak.work.dead,\n"
"soak.victim, seed 11.\n");
}

static int parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{"server", required_argument, NULL, 's'},
		{"duration", required_argument, NULL, 'd'},
		{"rate", required_argument, NULL, 'r'},
		{"round", required_argument, NULL, 'n'},
		{"nack", required_argument, NULL, 'k'},
		{"reject", required_argument, NULL, 'j'},
		{"reconnect", required_argument, NULL, 'c'},
		{"queue", required_argument, NULL, 'q'},
		{"dead-letter", required_argument, NULL, 'l'},
		{"victim", required_argument, NULL, 'v'},
		{"seed", required_argument, NULL, 'e'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 's': opt.server = optarg; break;
		case 'd': opt.duration = atof(optarg); break;
		case 'r': opt.rate = atof(optarg); break;
		case 'n': opt.round = (unsigned)atoi(optarg); break;
		case 'k': opt.nack = (unsigned)atoi(optarg); break;
		case 'j': opt.reject = (unsigned)atoi(optarg); break;
		case 'c': opt.reconnect = (unsigned)atoi(optarg); break;
		case 'q': opt.queue = optarg; break;
		case 'l': opt.dlq = optarg; break;
		case 'v': opt.victim = optarg; break;
		case 'e': opt.seed = strtoull(optarg, NULL, 10); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc || opt.round < 2 || opt.round > 100000 ||
	    opt.nack + opt.reject > 100 || opt.duration <= 0 || opt.rate <= 0) {
		usage(stderr);
		return -1;
	}
	return 0;
}

static int setup(void)
{
	struct mq_queue_opts qo = { .dead_letter = opt.dlq };
	static uint8_t body[BODY_HEAD + 4096 + 32];
	struct mq_declared d;
	int rc;

	if ((rc = mq_connect(&prod, opt.server, "soak-producer")) != 0)
		return fail("connect: %s", mq_strerror(rc));
	if ((rc = mq_declare(prod, opt.dlq, NULL, 0, NULL)) != 0 ||
	    (rc = mq_declare(prod, opt.queue, &qo, 0, NULL)) != 0 ||
	    (rc = mq_declare(prod, opt.victim, NULL, 0, &d)) != 0)
		return fail("declare: %s (%s)", mq_strerror(rc),
		            mq_last_error_message(prod));
	/* The victim's messages: sent once, held for ever after. */
	if (mq_purge(prod, opt.victim, NULL) != 0)
		return fail("purge %s", opt.victim);
	for (uint64_t i = 0; i < VICTIMS; i++) {
		body_make(body, i);
		if ((rc = mq_send(prod, opt.victim, body, body_len(i), NULL,
		                  NULL)) != 0)
			return fail("send: %s", mq_strerror(rc));
	}
	ms = calloc(opt.round, sizeof *ms);
	if (ms == NULL)
		return fail("out of memory");
	if (connect_consumer() < 0 || victim_connect() < 0)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	int status = 0;

	if (parse(argc, argv) < 0)
		return 2;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rng = opt.seed * 0x9E3779B97F4A7C15ull + 1;

	double t0 = now_s();
	if (setup() < 0) {
		status = 1;
		goto out;
	}
	/* Sequence numbers are unique across the whole run: a message from
	 * an old round that turned up would be caught as a duplicate. */
	while (!stopping && now_s() - t0 < opt.duration) {
		base = n.rounds * opt.round;
		if (run_round() < 0 || victim_poll() < 0) {
			status = 1;
			break;
		}
		double ahead = (double)n.sent / opt.rate - (now_s() - t0);
		if (ahead > 0)
			sleep_s(ahead);
	}
out:
	printf("soak-worker: %s seconds=%.0f rounds=%" PRIu64 " sent=%" PRIu64
	       " delayed=%" PRIu64 " delivered=%" PRIu64 " acked=%" PRIu64
	       " requeued=%" PRIu64 " rejected=%" PRIu64 " dead_lettered=%"
	       PRIu64 " redelivered=%" PRIu64 " reconnects=%" PRIu64
	       " victim_kills=%" PRIu64 " victim_returns=%" PRIu64 "\n",
	       status ? "FAILED" : "ok", now_s() - t0, n.rounds, n.sent,
	       n.delayed, n.delivered, n.acked, n.requeued, n.rejected,
	       n.dead_lettered, n.redelivered, n.reconnects, n.victim_kills,
	       n.victim_returns);
	if (prod)
		mq_close(prod);
	if (cons)
		mq_close(cons);
	if (vict)
		mq_close(vict);
	free(ms);
	return status;
}
