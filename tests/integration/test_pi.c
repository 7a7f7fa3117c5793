#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * contrib/pi against the real mqd: the five roles of $PI_BIN run as
 * separate processes (MQ_SERVER pointing at a harness broker), exactly as
 * contrib/pi/run.sh runs them, and
 *
 *   - 20,000 points published by bitsource all reach tally (none lost,
 *     none counted twice: tally -n 20000 ends by itself), and the estimate
 *     lands within 0.05 of pi;
 *   - pythagoras answers exact 128-bit sums of squares, and "ERR ..." to
 *     nonsense;
 *   - judge votes right on points on either side of the circle, closer to
 *     it than a 64-bit sum could tell apart;
 *   - tally stops on SIGTERM with its final line and status 0.
 *
 * Every role is started through lib/proc.h (PR_SET_PDEATHSIG), so a
 * failed assertion (which ends the test process) or Check's timeout takes
 * them down too; the ordinary paths stop them with SIGTERM and check that
 * they exit 0.
 */

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/proc.h"
#include "mq/mq.h"

#define PI_REF 3.14159265358979323846
#define POINTS 20000
#define RUN_LIMIT_MS 45000  /* the whole pipeline; the tcase allows 60 s */
#define STOP_LIMIT_MS 5000  /* a role stops within ~250 ms of SIGTERM */
#define MAX_CHILDREN 8

/* ---- the roles as child processes ------------------------------------------ */

struct child {
	const char *role;
	struct mqt_proc proc; /* proc.pid is 0 once reaped */
	char out[8192];       /* the tail of its stdout, when captured */
	char err_path[MQT_PATH_MAX + 32];
};

static struct child children[MAX_CHILDREN];
static int nchildren;

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Start `$PI_BIN role args...` with MQ_SERVER set to the broker, stdin from
 * /dev/null, stderr to <broker dir>/<role>.err and stdout captured into
 * c->out (read with read_out) when capture is set, else to /dev/null.
 */
static struct child *spawn(const struct mqt_server *s, bool capture,
                           const char *role, ...)
{
	const char *bin = getenv("PI_BIN");
	struct child *c;
	char *argv[16];
	char server[sizeof s->addr + 16];
	const char *env[] = { server, NULL };
	int argc = 0;
	va_list ap;

	ck_assert_msg(bin != NULL && bin[0] != '\0',
	              "PI_BIN is not set (run the tests with make check)");
	ck_assert_int_lt(nchildren, MAX_CHILDREN);
	c = &children[nchildren];
	memset(c, 0, sizeof *c);
	c->role = role;
	snprintf(c->err_path, sizeof c->err_path, "%s/%s.err", s->dir, role);
	argv[argc++] = (char *)bin;
	argv[argc++] = (char *)role;
	va_start(ap, role);
	for (const char *a; (a = va_arg(ap, const char *)) != NULL &&
	     argc < 15;)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	snprintf(server, sizeof server, "MQ_SERVER=%s", s->addr);
	struct mqt_spawn sp = {
		.argv = argv, .env = env,
		.out = capture ? MQT_IO_PIPE : MQT_IO_NULL,
		.out_buf = c->out, .out_cap = sizeof c->out,
		/* Keep the tail: the last lines are the ones checked. */
		.keep_tail = true,
		.err = MQT_IO_FILE, .err_path = c->err_path,
	};
	ck_assert_int_eq(mqt_proc_start(&c->proc, &sp), 0);
	nchildren++;
	return c;
}

/* Read what c's stdout has (waiting up to ms); false at EOF. */
static bool read_out(struct child *c, int ms)
{
	return mqt_proc_pump(&c->proc, ms);
}

/* Wait up to ms for c to exit, reading its stdout meanwhile; whether it
 * did (c->proc.status then has its exit status). */
static bool wait_exit(struct child *c, int ms)
{
	return mqt_proc_wait(&c->proc, ms);
}

/* SIGTERM, then wait; SIGKILL when it does not go.  Its exit status. */
static int stop_child(struct child *c)
{
	return mqt_proc_stop(&c->proc, SIGTERM, STOP_LIMIT_MS);
}

/* Print each role's stderr (for a failure report). */
static void dump_children(void)
{
	for (int i = 0; i < nchildren; i++) {
		char line[512];
		FILE *f = fopen(children[i].err_path, "r");

		size_t len = strlen(children[i].out);

		fprintf(stderr, "--- pi %s (stdout tail: %.300s)\n",
		        children[i].role,
		        len > 300 ? children[i].out + len - 300 :
		                    children[i].out);
		if (f == NULL)
			continue;
		while (fgets(line, sizeof line, f) != NULL)
			fputs(line, stderr);
		fclose(f);
	}
}

/* Stop every role still running; the number that did not exit 0. */
static int stop_all(void)
{
	int bad = 0;

	for (int i = nchildren - 1; i >= 0; i--) {
		struct child *c = &children[i];
		bool was_running = c->proc.pid != 0;
		int st = stop_child(c);

		if (st != 0) {
			fprintf(stderr, "test_pi: pi %s %s status %d\n",
			        c->role, was_running ? "stopped with" :
			        "had exited with", st);
			bad++;
		}
	}
	if (bad)
		dump_children();
	nchildren = 0;
	return bad;
}

static void server_up(struct mqt_server *s)
{
	nchildren = 0;
	ck_assert_int_eq(mqt_server_start(s, NULL), 0);
}

static void server_down(struct mqt_server *s)
{
	int bad = stop_all();

	ck_assert_int_eq(mqt_server_stop(s), 0);
	ck_assert_msg(bad == 0, "%d role(s) did not exit 0 (see above)", bad);
}

/* The last line of text that starts with prefix, copied into out. */
static bool last_line(const char *text, const char *prefix, char *out,
                      size_t cap)
{
	const char *p = text, *found = NULL;
	size_t n = strlen(prefix);

	while (p != NULL && *p != '\0') {
		if (strncmp(p, prefix, n) == 0)
			found = p;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	if (found == NULL)
		return false;
	n = strcspn(found, "\n");
	if (n >= cap)
		n = cap - 1;
	memcpy(out, found, n);
	out[n] = '\0';
	return true;
}

/* ---- the whole pipeline ----------------------------------------------------- */

START_TEST(test_estimate)
{
	struct mqt_server s;
	struct child *tally, *bits;
	char count[16], line[256];
	double est = 0;
	unsigned long long n = 0;
	int64_t t0;

	server_up(&s);
	snprintf(count, sizeof count, "%d", POINTS);
	/* The consumers first; bitsource repeats a point nobody received,
	 * so the order is not needed for correctness, only for speed. */
	tally = spawn(&s, true, "tally", "-n", count, "-q", (char *)NULL);
	spawn(&s, false, "pythagoras", (char *)NULL);
	spawn(&s, false, "judge", (char *)NULL);
	spawn(&s, false, "always_yes", (char *)NULL);
	bits = spawn(&s, true, "bitsource", "-n", count, (char *)NULL);

	t0 = mqt_now_ms();
	if (!wait_exit(tally, RUN_LIMIT_MS)) {
		dump_children();
		stop_all();
		mqt_server_stop(&s);
		ck_abort_msg("tally did not count %d points within %d ms",
		             POINTS, RUN_LIMIT_MS);
	}
	fprintf(stderr, "test_pi: %d points in %lld ms\n", POINTS,
	        (long long)(mqt_now_ms() - t0));
	if (tally->proc.status != 0)
		dump_children();
	ck_assert_int_eq(tally->proc.status, 0);
	ck_assert_msg(wait_exit(bits, STOP_LIMIT_MS), "bitsource still runs");
	ck_assert_int_eq(bits->proc.status, 0);
	snprintf(line, sizeof line, "bitsource: published %d points\n",
	         POINTS);
	ck_assert_str_eq(bits->out, line);

	ck_assert_msg(last_line(tally->out, "pi ~= ", line, sizeof line),
	              "no final line from tally: \"%s\"", tally->out);
	ck_assert_msg(sscanf(line, "pi ~= %lf after %llu points", &est,
	                     &n) == 2, "final line \"%s\"", line);
	ck_assert_uint_eq(n, POINTS);
	fprintf(stderr, "test_pi: %s (off by %.5f)\n", line,
	        est > PI_REF ? est - PI_REF : PI_REF - est);
	ck_assert_msg(est > PI_REF - 0.05 && est < PI_REF + 0.05,
	              "estimate %f is not within 0.05 of pi", est);
	server_down(&s);
}
END_TEST

/* ---- pythagoras ---------------------------------------------------------- */

static void ask(mq_conn *c, const char *question, const char *want)
{
	struct mq_message *m = NULL;
	int rc = mq_request(c, "pi.pythagoras", question, strlen(question),
	                    10000, &m);

	ck_assert_msg(rc == 0, "request \"%s\": %s", question,
	              mq_strerror(rc));
	ck_assert_msg(m->body_len == strlen(want) &&
	              memcmp(m->body, want, m->body_len) == 0,
	              "\"%s\" -> \"%.*s\", want \"%s\"", question,
	              (int)m->body_len, (const char *)m->body, want);
	mq_message_free(m);
}

static void ask_err(mq_conn *c, const char *question)
{
	struct mq_message *m = NULL;
	int rc = mq_request(c, "pi.pythagoras", question, strlen(question),
	                    10000, &m);

	ck_assert_msg(rc == 0, "request \"%s\": %s", question,
	              mq_strerror(rc));
	ck_assert_msg(m->body_len >= 4 && memcmp(m->body, "ERR ", 4) == 0,
	              "\"%s\" -> \"%.*s\", want ERR ...", question,
	              (int)m->body_len, (const char *)m->body);
	mq_message_free(m);
}

START_TEST(test_pythagoras)
{
	struct mqt_server s;
	mq_conn *c;

	server_up(&s);
	spawn(&s, false, "pythagoras", (char *)NULL);
	c = mqt_connect(&s);
	ck_assert_ptr_nonnull(c);
	ask(c, "3 4", "25");
	ask(c, "0 0", "0");
	/* 2 * (2^32 - 1)^2: above 2^64, exact. */
	ask(c, "4294967295 4294967295", "36893488130239234050");
	/* (2^64 - 1)^2 = 2^128 - 2^65 + 1 */
	ask(c, "18446744073709551615",
	    "340282366920938463426481119284349108225");
	ask(c, "1 2 3", "14");
	ask_err(c, "");
	ask_err(c, "x y");
	ask_err(c, "18446744073709551616");
	ask_err(c, "-1 2");
	ask_err(c, "18446744073709551615 18446744073709551615 "
	           "18446744073709551615");
	mq_close(c);
	server_down(&s);
}
END_TEST

/* ---- judge ------------------------------------------------------------- */

/* The wire form of a point: x's and y's bits interleaved, top first. */
static void point_bits(uint32_t x, uint32_t y, char out[65], char topic[8])
{
	for (int i = 0; i < 32; i++) {
		out[2 * i] = (char)('0' + ((x >> (31 - i)) & 1u));
		out[2 * i + 1] = (char)('0' + ((y >> (31 - i)) & 1u));
	}
	out[64] = '\0';
	snprintf(topic, 8, "bits.%c%c", out[0], out[1]);
}

/* Publish until somebody takes it (judge may not have subscribed yet). */
static void publish_point(mq_conn *c, uint32_t x, uint32_t y)
{
	char bits[65], topic[8];
	uint32_t receivers = 0;
	int64_t end = mqt_now_ms() + 10000;

	point_bits(x, y, bits, topic);
	for (;;) {
		int rc = mq_publish(c, topic, bits, 64, NULL, 0, &receivers);
		ck_assert_msg(rc == 0, "publish: %s", mq_strerror(rc));
		if (receivers > 0)
			break;
		ck_assert_msg(mqt_now_ms() < end,
		              "nobody subscribed to %s within 10 s", topic);
		sleep_ms(20);
	}
	ck_assert_uint_eq(receivers, 1);
}

START_TEST(test_judge)
{
	static const struct {
		uint32_t x, y;
		char vote;
	} pts[] = {
		{0x80000000u, 0, 'Y'},           /* bits.10: 2^62 */
		{0, 0x80000000u, 'Y'},           /* bits.01 */
		{0xffffffffu, 0xffffffffu, 'N'}, /* bits.11: far out */
		/* 2 * 3037000499^2 = 2^64 - 11857053614: just inside */
		{3037000499u, 3037000499u, 'Y'},
		/* 2 * 3037000500^2 = 2^64 + 290948384: just outside; the
		 * sum wraps to a small number in 64 bits */
		{3037000500u, 3037000500u, 'N'},
		/* 0 and 2^32 - 1: (2^32 - 1)^2 < 2^64 */
		{0, 0xffffffffu, 'Y'},
	};
	struct mqt_server s;
	mq_conn *c;

	server_up(&s);
	spawn(&s, false, "pythagoras", (char *)NULL);
	spawn(&s, false, "judge", (char *)NULL);
	c = mqt_connect(&s);
	ck_assert_ptr_nonnull(c);
	for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++)
		publish_point(c, pts[i].x, pts[i].y);
	/* judge handles one point at a time, so its votes come in order. */
	for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
		struct mq_message *m = NULL;
		int rc = mq_get(c, "pi.tally", 10000, MQ_AUTO_ACK, &m);

		ck_assert_msg(rc == 0, "vote %zu: %s", i, mq_strerror(rc));
		ck_assert_msg(m->body_len == 1 && m->body[0] == pts[i].vote,
		              "point (%" PRIu32 ", %" PRIu32 "): vote \"%.*s\","
		              " want %c", pts[i].x, pts[i].y, (int)m->body_len,
		              (const char *)m->body, pts[i].vote);
		mq_message_free(m);
	}
	mq_close(c);
	server_down(&s);
}
END_TEST

/* ---- tally ----------------------------------------------------------------- */

START_TEST(test_tally_sigterm)
{
	static const char votes[] = "YYNY";
	struct mqt_server s;
	struct child *tally;
	mq_conn *c;
	char line[256];
	int64_t end;

	server_up(&s);
	c = mqt_connect(&s);
	ck_assert_ptr_nonnull(c);
	for (size_t i = 0; i < sizeof votes - 1; i++)
		ck_assert_int_eq(mq_send(c, "pi.tally", &votes[i], 1, NULL,
		                         NULL), 0);
	mq_close(c);
	tally = spawn(&s, true, "tally", (char *)NULL);
	/* Once idle, tally shows its exact count. */
	end = mqt_now_ms() + 10000;
	while (strstr(tally->out, "4 points: pi ~= 3.00000") == NULL) {
		ck_assert_msg(mqt_now_ms() < end, "tally printed \"%s\"",
		              tally->out);
		ck_assert_msg(read_out(tally, 100), "tally ended: \"%s\"",
		              tally->out);
	}
	ck_assert_int_eq(stop_child(tally), 0);
	ck_assert_msg(last_line(tally->out, "pi ~= ", line, sizeof line),
	              "no final line: \"%s\"", tally->out);
	ck_assert_str_eq(line, "pi ~= 3.00000 after 4 points");
	server_down(&s);
}
END_TEST

static Suite *pi_suite(void)
{
	Suite *su = suite_create("pi");
	TCase *tc = tcase_create("pi");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pythagoras);
	tcase_add_test(tc, test_judge);
	tcase_add_test(tc, test_tally_sigterm);
	tcase_add_test(tc, test_estimate);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr;
	int failed;

	signal(SIGPIPE, SIG_IGN);
	sr = srunner_create(pi_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
