#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * No acknowledged message is lost when consumers die (issue 11).
 *
 * 100,000 messages go through one queue to several consumer processes
 * ($ACK_CONSUMER_BIN, tests/integration/ack_consumer.c).  At moments drawn
 * from a seeded generator the test SIGKILLs one of them, chosen among
 * those the broker says hold messages, and starts another in its place.
 * Each consumer logs, one write per batch, every delivery (D), every ACK
 * it is about to send (S) and every ACK the broker answered OK to (A);
 * see ack_consumer.c.  When the broker has counted every message acked,
 * the consumers stop and the test reads all the logs and checks:
 *
 *   - no body was damaged, no consumer reported an error;
 *   - every message was acknowledged by someone: an A line, or, for at
 *     most one batch per kill, an S line of a killed consumer (the ACK
 *     went out, the consumer died before it read the OK: the broker's
 *     own count decides those, and it must come to exactly the total);
 *   - no message was acknowledged (A) twice;
 *   - a message delivered more than once was, every time but the last,
 *     delivered to a consumer that was killed while it held it, and each
 *     delivery carries a higher attempts than the one before: the only
 *     duplicates are redeliveries of messages whose holder died;
 *   - the broker agrees: sent = acked = the total, nothing ready or held,
 *     delivered = sent + redelivered, redelivered >= the redeliveries the
 *     logs saw (a consumer may die before logging one), and at most
 *     prefetch per kill.
 *
 * The queue's ack_timeout is 0 (never), so a death is the only reason a
 * message comes back.  Kill points are counts of acked messages, drawn
 * from a fixed seed (KILL_SEED overrides it), so the number of kills does
 * not depend on the machine's speed; the test prints its figures.
 */

#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/expect.h"
#include "lib/harness.h"
#include "lib/proc.h"
#include "mq/mq.h"
#include "kill_body.h"

#define MESSAGES 100000
#define CONSUMERS 4
#define KILLS 50
#define PREFETCH 64
#define BATCH 32
#define WORK_US 2000 /* a consumer's work per batch, before its ACK */
#define SEND_CHUNK 1000
#define BACKLOG 4000 /* sent, not yet acked, while a kill is due */
#define SEED 11u
#define RUN_LIMIT_MS 150000 /* the tcase allows 180 s; 3 s is usual, 7 s
                            * under ASan, on 2 shared CPUs */
#define QUEUE "kq"
#define MAX_LOGS (CONSUMERS + KILLS)

/* ---- a seeded generator (xorshift64*) ------------------------------------- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

/* Uniform in [lo, hi]. */
static uint64_t rng_range(uint64_t lo, uint64_t hi)
{
	return lo + rng_next() % (hi - lo + 1);
}

/* ---- consumers ------------------------------------------------------------ */

struct clog {
	char path[MQT_PATH_MAX];
	char err_path[MQT_PATH_MAX];
	bool killed;
	long held_at_kill; /* the broker's count just before the kill */
	long last_a;       /* line number of its last A line (0: none) */
};

struct slot {
	struct mqt_proc proc;
	int log; /* index into logs */
};

static struct clog logs[MAX_LOGS];
static int nlogs;
static struct slot slots[CONSUMERS];
static char stop_path[MQT_PATH_MAX];

static void spawn(const struct mqt_server *s, struct slot *sl)
{
	const char *bin = getenv("ACK_CONSUMER_BIN");
	char server[sizeof s->addr + 16], prefetch[16], batch[16], work[16];
	const char *env[] = { server, NULL };

	ck_assert_msg(bin != NULL && bin[0] != '\0',
	              "ACK_CONSUMER_BIN is not set (run with make check)");
	ck_assert_int_lt(nlogs, MAX_LOGS);
	struct clog *l = &logs[nlogs];
	snprintf(l->path, sizeof l->path, "%s/cons-%03d.log", s->dir, nlogs);
	snprintf(l->err_path, sizeof l->err_path, "%s/cons-%03d.err", s->dir,
	         nlogs);
	l->held_at_kill = 0;
	snprintf(server, sizeof server, "MQ_SERVER=%s", s->addr);
	snprintf(prefetch, sizeof prefetch, "%d", PREFETCH);
	snprintf(batch, sizeof batch, "%d", BATCH);
	snprintf(work, sizeof work, "%d", WORK_US);
	char *argv[] = { (char *)bin, (char *)QUEUE, l->path, prefetch, batch,
	                 work, stop_path, NULL };
	struct mqt_spawn sp = {
		.argv = argv, .env = env,
		.err = MQT_IO_FILE, .err_path = l->err_path,
	};
	ck_assert_int_eq(mqt_proc_start(&sl->proc, &sp), 0);
	sl->log = nlogs++;
}

/* The first line of a file, for failure messages. */
static const char *first_line(const char *path)
{
	static char line[512];
	FILE *f = fopen(path, "r");

	line[0] = '\0';
	if (f) {
		if (fgets(line, sizeof line, f) == NULL)
			line[0] = '\0';
		fclose(f);
	}
	line[strcspn(line, "\n")] = '\0';
	return line;
}

/* A consumer that ended without being killed failed: say why. */
static void check_alive(void)
{
	for (int i = 0; i < CONSUMERS; i++) {
		struct slot *sl = &slots[i];
		if (!mqt_proc_running(&sl->proc))
			ck_abort_msg("consumer %d (log %s) exited with status %d: %s",
			             i, logs[sl->log].path, sl->proc.status,
			             first_line(logs[sl->log].err_path));
	}
}

/* ---- the broker's view ------------------------------------------------------ */

struct qstats {
	int64_t ready, held, sent, delivered, acked, redelivered;
};

static json_t *control_json(const struct mqt_server *s, const char *cmd)
{
	static char out[1 << 16];
	json_error_t e;

	ck_assert_msg(mqt_control(s, cmd, out, sizeof out) == 0,
	              "control '%s': no reply", cmd);
	json_t *j = json_loads(out, 0, &e);
	ck_assert_msg(j != NULL, "control '%s': bad JSON: %s", cmd, out);
	return j;
}

static int64_t jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_integer(v), "no integer '%s'", key);
	return (int64_t)json_integer_value(v);
}

/* The queue's counters; false while it does not exist yet. */
static bool queue_stats(const struct mqt_server *s, struct qstats *st)
{
	json_t *j = control_json(s, "queue " QUEUE);
	json_t *q = json_object_get(j, "queue");

	if (!json_is_true(json_object_get(j, "ok")) || !json_is_object(q)) {
		json_decref(j);
		return false;
	}
	st->ready = jint(q, "ready");
	st->held = jint(q, "held");
	st->sent = jint(q, "sent");
	st->delivered = jint(q, "delivered");
	st->acked = jint(q, "acked");
	st->redelivered = jint(q, "redelivered");
	json_decref(j);
	return true;
}

/* How many messages each slot's connection holds (-1: not connected). */
static void held_per_slot(const struct mqt_server *s, long held[CONSUMERS])
{
	json_t *j = control_json(s, "connections");
	json_t *arr = json_object_get(j, "connections"), *c;
	size_t i;

	for (int k = 0; k < CONSUMERS; k++)
		held[k] = -1;
	json_array_foreach(arr, i, c) {
		const char *name = json_string_value(json_object_get(c, "client"));
		long pid;
		if (name == NULL || sscanf(name, "killee-%ld", &pid) != 1)
			continue;
		for (int k = 0; k < CONSUMERS; k++)
			if (slots[k].proc.pid == (pid_t)pid)
				held[k] = (long)jint(c, "held");
	}
	json_decref(j);
}

/* SIGKILL one of the consumers that the broker says hold messages, chosen
 * at random, and start another in its place.  How many it held; 0 when
 * none holds any (all restarting, say): the caller tries again on its
 * next round. */
static long kill_one(const struct mqt_server *s)
{
	long held[CONSUMERS];
	int cand[CONSUMERS], n = 0;

	held_per_slot(s, held);
	for (int k = 0; k < CONSUMERS; k++)
		if (held[k] > 0)
			cand[n++] = k;
	if (n == 0)
		return 0;
	int victim = cand[rng_next() % (uint64_t)n];
	struct slot *sl = &slots[victim];
	logs[sl->log].killed = true;
	logs[sl->log].held_at_kill = held[victim];
	mqt_proc_kill(&sl->proc);
	spawn(s, sl);
	return held[victim];
}

/* ---- reading the logs ------------------------------------------------------- */

enum { ST_DELIVERED, ST_SENT, ST_ACKED };

struct dlv {
	uint32_t seq;
	uint16_t attempts;
	uint8_t state;
	int log;
	long dline; /* line number of its D line in that log */
};

struct tally {
	struct dlv *d;
	size_t n, cap;
	int32_t *cur;        /* per seq: its delivery in the log being read */
	uint8_t *acked;      /* per seq: A lines */
	uint64_t damaged, errors, bad_lines;
	char first_bad[1024];
};

static void bad(struct tally *t, int li, const char *what, const char *line)
{
	if (t->bad_lines++ == 0)
		snprintf(t->first_bad, sizeof t->first_bad, "%.300s: %.100s%.100s",
		         logs[li].path, what, line);
}

static void read_log(struct tally *t, int li, uint32_t total)
{
	FILE *f = fopen(logs[li].path, "r");
	char line[256];
	long lineno = 0;

	if (f == NULL)
		return; /* killed before it opened its log */
	while (fgets(line, sizeof line, f) != NULL) {
		unsigned long seq, att;
		uint64_t id;
		char op;

		lineno++;
		if (strchr(line, '\n') == NULL)
			break; /* the last write, cut by the kill */
		op = line[0];
		if (op == 'E') {
			t->errors++;
			bad(t, li, "", line);
			continue;
		}
		if (op == 'X') {
			t->damaged++;
			bad(t, li, "damaged body: ", line);
			continue;
		}
		int nf = sscanf(line + 1, "%lu %" SCNu64 " %lu", &seq, &id, &att);
		if (nf < 2 || seq >= total || (op != 'S' && nf != 3)) {
			bad(t, li, "bad line: ", line);
			continue;
		}
		int32_t k = t->cur[seq];
		if (op == 'D') {
			if (k >= 0 && t->d[k].log == li) {
				bad(t, li, "delivered twice to one consumer: ",
				    line);
				continue;
			}
			if (t->n == t->cap) {
				t->cap = t->cap ? 2 * t->cap : 1 << 17;
				t->d = realloc(t->d, t->cap * sizeof *t->d);
				ck_assert(t->d != NULL);
			}
			t->d[t->n] = (struct dlv){ .seq = (uint32_t)seq,
			        .attempts = (uint16_t)att, .state = ST_DELIVERED,
			        .log = li, .dline = lineno };
			t->cur[seq] = (int32_t)t->n++;
			continue;
		}
		if (k < 0 || t->d[k].log != li) {
			bad(t, li, "ack of a message not delivered here: ",
			    line);
			continue;
		}
		if (op == 'S') {
			t->d[k].state = ST_SENT;
		} else if (op == 'A' && t->d[k].state == ST_SENT &&
		           att == t->d[k].attempts) {
			t->d[k].state = ST_ACKED;
			t->acked[seq]++;
			logs[li].last_a = lineno;
		} else {
			bad(t, li, "A line out of place: ", line);
		}
	}
	fclose(f);
}

/*
 * Whether d was held, not acknowledged, when its consumer died.  A
 * consumer logs a batch's D lines, then its S lines, then its A lines, so
 * only the deliveries logged after its last A line can be in that state;
 * any other delivery it did not confirm is unexplained.
 */
static bool held_at_death(const struct dlv *d)
{
	return d->state != ST_ACKED && logs[d->log].killed &&
	       d->dline > logs[d->log].last_a;
}

static int by_seq_attempts(const void *a, const void *b)
{
	const struct dlv *x = a, *y = b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return (int)x->attempts - (int)y->attempts;
}

/* ---- the test ------------------------------------------------------------------ */

START_TEST(acked_messages_survive_killed_consumers)
{
	struct mqt_server s;
	struct qstats st = {0};
	uint32_t total = MESSAGES;
	uint64_t thresholds[KILLS];
	const char *seed_env = getenv("KILL_SEED");
	uint64_t seed = seed_env && *seed_env ? strtoull(seed_env, NULL, 10)
	                                      : SEED;
	int kills = 0;
	long held_at_kills = 0;

	rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
	/* Kill points: counts of acked messages, spread over the first 90%
	 * (the producer stays at most BACKLOG ahead of the next one, so the
	 * last kill still finds messages to hold). */
	for (int i = 0; i < KILLS; i++)
		thresholds[i] = (uint64_t)total * 9 * (uint64_t)(i + 1) /
		                (10 * (KILLS + 1)) +
		                rng_range(0, (uint64_t)total * 9 / (20 * (KILLS + 1)));
	START_CONF(s, NULL,
	           "[queue " QUEUE "]\n"
	           "ack_timeout = 0\n");
	snprintf(stop_path, sizeof stop_path, "%s/stop", s.dir);
	nlogs = 0;

	mq_conn *prod = CONNECT(s);
	ck_assert_int_eq(mq_declare(prod, QUEUE, NULL, 0, NULL), 0);
	for (int i = 0; i < CONSUMERS; i++)
		spawn(&s, &slots[i]);

	int64_t t0 = mqt_now_ms();
	uint32_t sent = 0;
	for (;;) {
		ck_assert(queue_stats(&s, &st));
		if (kills < KILLS && (uint64_t)st.acked >= thresholds[kills]) {
			long h = kill_one(&s);
			if (h > 0) {
				held_at_kills += h;
				kills++;
				continue;
			}
		}
		/* Production waits for the kills: at most BACKLOG beyond the
		 * next kill point, unless everything sent is consumed (the
		 * kill would find nobody holding anything). */
		uint64_t limit = kills < KILLS ? thresholds[kills] + BACKLOG : total;
		if (sent < total &&
		    (sent < limit || st.ready + st.held == 0)) {
			uint8_t body[KILL_BODY_LEN];
			uint32_t end = sent + SEND_CHUNK < total ? sent + SEND_CHUNK
			                                         : total;
			for (; sent < end; sent++) {
				kill_body_make(body, sent);
				ck_assert_int_eq(mq_send_quiet(prod, QUEUE, body,
				                               sizeof body, NULL), 0);
			}
			int rc = mq_sync(prod);
			ck_assert_msg(rc == 0, "send: %s", mq_strerror(rc));
		} else {
			sleep_ms(2);
		}
		check_alive();
		if (sent == total && st.acked == total && st.ready == 0 &&
		    st.held == 0)
			break;
		ck_assert_msg(mqt_now_ms() - t0 < RUN_LIMIT_MS,
		              "not done after %d ms: sent %u, acked %" PRId64
		              ", ready %" PRId64 ", held %" PRId64 ", kills %d",
		              RUN_LIMIT_MS, sent, st.acked, st.ready, st.held,
		              kills);
	}
	int64_t run_ms = mqt_now_ms() - t0;
	mq_close(prod);

	/* Everything is acked: the consumers stop by themselves. */
	int fd = open(stop_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);
	for (int i = 0; i < CONSUMERS; i++) {
		int rc = mqt_proc_stop(&slots[i].proc, 0, 10000);
		ck_assert_msg(rc == 0, "consumer %d (%s) ended with %d: %s", i,
		              logs[slots[i].log].path, rc,
		              first_line(logs[slots[i].log].err_path));
	}
	ck_assert(queue_stats(&s, &st));

	/* ---- the logs ---- */
	struct tally t = {0};
	t.cur = malloc(total * sizeof *t.cur);
	t.acked = calloc(total, 1);
	ck_assert(t.cur != NULL && t.acked != NULL);
	memset(t.cur, 0xff, total * sizeof *t.cur);
	for (int li = 0; li < nlogs; li++)
		read_log(&t, li, total);
	ck_assert_msg(t.bad_lines == 0, "%" PRIu64 " bad log lines (%" PRIu64
	              " damaged, %" PRIu64 " errors); first: %s", t.bad_lines,
	              t.damaged, t.errors, t.first_bad);
	qsort(t.d, t.n, sizeof *t.d, by_seq_attempts);

	uint64_t acked_a = 0, unknown = 0, lost = 0, twice = 0, misorder = 0;
	uint64_t redeliveries = 0, dup_msgs = 0, held_dead = 0;
	uint32_t max_attempts = 0;
	char example[1024] = "";
	size_t k = 0;
	for (uint32_t seq = 0; seq < total; seq++) {
		size_t first = k;
		bool sent_unknown = false;
		while (k < t.n && t.d[k].seq == seq)
			k++;
		size_t nd = k - first;
		if (nd > 1)
			dup_msgs++;
		for (size_t i = first; i < k; i++) {
			const struct dlv *d = &t.d[i];
			bool last = i + 1 == k;
			if (d->attempts > 1)
				redeliveries++;
			if (d->attempts > max_attempts)
				max_attempts = d->attempts;
			bool died_holding = held_at_death(d);
			if (died_holding)
				held_dead++;
			if (died_holding && d->state == ST_SENT)
				sent_unknown = true;
			/* Every delivery but the last went to a consumer that
			 * died holding it, and attempts rise; the last was
			 * acked, or its consumer died waiting for the OK. */
			bool ok = last ? (d->state == ST_ACKED ||
			                  (died_holding && d->state == ST_SENT))
			               : (died_holding &&
			                  t.d[i + 1].attempts > d->attempts);
			if (!ok && misorder++ == 0)
				snprintf(example, sizeof example,
				         "message %u: delivery %zu of %zu (attempts %u, "
				         "%s, log %.300s%s) is not explained by a death",
				         seq, i - first + 1, nd, d->attempts,
				         d->state == ST_ACKED ? "acked" : "not acked",
				         logs[d->log].path,
				         logs[d->log].killed ? ", killed" : "");
		}
		if (t.acked[seq] > 1)
			twice++;
		if (t.acked[seq] >= 1)
			acked_a++;
		else if (sent_unknown)
			unknown++;
		else if (lost++ == 0 && example[0] == '\0')
			snprintf(example, sizeof example,
			         "message %u: no consumer acknowledged it "
			         "(%zu deliveries logged)", seq, nd);
	}

	fprintf(stderr,
	        "test_kill: seed %" PRIu64 ": %u messages, %d consumers "
	        "(prefetch %d, acks of up to %d), %d consumer processes, "
	        "%.1f s\n"
	        "test_kill: %d SIGKILLs, each of a consumer holding messages "
	        "(%ld held in all, by the broker's count; %" PRIu64
	        " delivered and not confirmed acked, by the logs)\n"
	        "test_kill: acked: %" PRIu64 " confirmed by an OK + %" PRIu64
	        " sent by a consumer killed before it read the OK = %" PRIu64
	        "\n"
	        "test_kill: %" PRIu64 " messages delivered more than once in the "
	        "logs, %" PRIu64 " redeliveries logged, max attempts %u\n"
	        "test_kill: broker: sent %" PRId64 " delivered %" PRId64
	        " acked %" PRId64 " redelivered %" PRId64 " ready %" PRId64
	        " held %" PRId64 "\n",
	        seed, total, CONSUMERS, PREFETCH, BATCH, nlogs,
	        (double)run_ms / 1000.0, kills, held_at_kills, held_dead,
	        acked_a, unknown, acked_a + unknown, dup_msgs, redeliveries,
	        max_attempts, st.sent, st.delivered, st.acked, st.redelivered,
	        st.ready, st.held);

	ck_assert_msg(lost == 0, "%" PRIu64 " messages never acknowledged; %s",
	              lost, example);
	ck_assert_msg(twice == 0, "%" PRIu64 " messages acknowledged twice",
	              twice);
	ck_assert_msg(misorder == 0, "%" PRIu64 " deliveries unexplained; %s",
	              misorder, example);
	ck_assert_msg(unknown <= (uint64_t)kills * BATCH,
	              "%" PRIu64 " acks of unknown outcome for %d kills",
	              unknown, kills);
	ck_assert_int_eq(kills, KILLS);
	/* The broker's counters agree with the logs. */
	ck_assert_int_eq(st.sent, total);
	ck_assert_int_eq(st.acked, total);
	ck_assert_int_eq((int64_t)(acked_a + unknown), st.acked);
	ck_assert_int_eq(st.ready, 0);
	ck_assert_int_eq(st.held, 0);
	ck_assert_int_eq(st.delivered, st.sent + st.redelivered);
	ck_assert_msg((uint64_t)st.redelivered >= redeliveries,
	              "broker counted %" PRId64 " redeliveries, the logs saw %"
	              PRIu64, st.redelivered, redeliveries);
	ck_assert_msg((uint64_t)st.redelivered >= dup_msgs,
	              "broker counted %" PRId64 " redeliveries, %" PRIu64
	              " messages were delivered twice", st.redelivered, dup_msgs);
	ck_assert_msg(st.redelivered <= (int64_t)kills * PREFETCH,
	              "%" PRId64 " redeliveries from %d kills of consumers "
	              "with prefetch %d", st.redelivered, kills, PREFETCH);
	ck_assert_msg(st.redelivered > 0, "no kill caused a redelivery");

	free(t.d);
	free(t.cur);
	free(t.acked);
	STOP(s);
}
END_TEST

static Suite *kill_suite(void)
{
	Suite *su = suite_create("kill");

	ADD_T(su, acked_messages_survive_killed_consumers, 180);
	return su;
}

int main(void)
{
	return mqt_run_suite(kill_suite());
}
