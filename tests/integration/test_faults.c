#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * Fault injection (issue 11): the real mqd, built with
 * --enable-fault-injection, runs a mixed workload while its Nth allocation
 * (MQD_FAULT_ALLOC=N[,K[,M]]) or Nth socket write (MQD_FAULT_WRITE) fails,
 * for many N.  Whatever fails, mqd must
 *   - keep running and keep serving (a fresh client's PING works),
 *   - keep every queue's books straight: once no connection holds anything,
 *     sent = ready + delayed + acked + expired + dead_lettered + dropped +
 *     purged for each queue (the workload uses no auto-ack), and no queue
 *     holds a message for a connection that is gone,
 *   - have stored at least every message it said OK to, and no more than
 *     were sent,
 *   - stop cleanly on SIGTERM (exit 0; under AddressSanitizer that also
 *     means no leak).
 * A client sees errors (INTERNAL, MEMORY_LIMIT) or a closed connection,
 * then reconnects and goes on.
 *
 * In a build without fault injection the environment variables do nothing,
 * so the tests are skipped (exit 77).
 */

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "../lib/expect.h"
#include "../lib/harness.h"

#define NSEND 60 /* messages per queue per workload */

static const char *const queues[] = {"f.work", "f.dlq", "f.bound", "f.delay"};
#define NQUEUES (sizeof queues / sizeof queues[0])

/* What the client was told: OKs per queue (a message may be stored with
 * its OK lost to a fault: the broker may count more, never fewer). */
struct tally {
	uint64_t ok[NQUEUES];
	uint64_t tried[NQUEUES];
	unsigned reconnects, errors;
	unsigned stuck; /* requests the broker never answered */
};

/* How long a request may go unanswered before the test calls it lost. */
#define ANSWER_MS 5000

static bool broken(int rc)
{
	return rc == MQ_ERR_IO || rc == MQ_ERR_CLOSED || rc == MQ_ERR_PROTOCOL ||
	       rc == MQ_ERR_TIMEOUT;
}

/* A live connection, made again if a fault broke the last one. */
static mq_conn *conn_get(const struct mqt_server *s, mq_conn **c,
                         struct tally *t)
{
	struct timeval tv = {ANSWER_MS / 1000, 0};

	for (int i = 0; *c == NULL && i < 50; i++) {
		if (mq_connect(c, s->addr, "faults") != 0) {
			*c = NULL;
			continue;
		}
		t->reconnects++;
		/* A lost answer shows as a read that times out (EAGAIN),
		 * not as a test hanging until Check kills it. */
		(void)setsockopt(mq_fd(*c), SOL_SOCKET, SO_RCVTIMEO, &tv,
		                 sizeof tv);
	}
	return *c;
}

static void conn_check(mq_conn **c, int rc, struct tally *t)
{
	if (rc == 0)
		return;
	t->errors++;
	if (rc == MQ_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
		t->stuck++;
	if (broken(rc)) {
		mq_close(*c);
		*c = NULL;
	}
}

static void declare_all(const struct mqt_server *s, mq_conn **c,
                        struct tally *t)
{
	struct mq_queue_opts work = {.max_attempts = 2, .dead_letter = "f.dlq"};

	for (size_t i = 0; i < NQUEUES; i++) {
		if (conn_get(s, c, t) == NULL)
			return;
		conn_check(c, mq_declare(*c, queues[i], i == 0 ? &work : NULL, 0,
		                         NULL),
		           t);
	}
	if (conn_get(s, c, t) != NULL)
		conn_check(c, mq_bind(*c, "f.bound", "f.topic.*"), t);
}

static void send_some(const struct mqt_server *s, mq_conn **c,
                      struct tally *t)
{
	char body[64];

	for (int i = 0; i < NSEND; i++) {
		struct mq_send_opts delayed = {.delay_ms = 1};
		size_t q = i % 2 ? 0 : 3;
		int rc;

		if (conn_get(s, c, t) == NULL)
			return;
		snprintf(body, sizeof body, "message %d", i);
		t->tried[q]++;
		rc = mq_send(*c, queues[q], body, strlen(body),
		             q == 3 ? &delayed : NULL, 0);
		if (rc == 0)
			t->ok[q]++;
		conn_check(c, rc, t);
	}
}

/* Take messages from f.work and f.delay: ack some, nack others (back to
 * the queue, or on to the dead-letter queue after two attempts). */
static void take_some(const struct mqt_server *s, mq_conn **c,
                      struct tally *t)
{
	for (int i = 0; i < NSEND / 2; i++) {
		struct mq_message *m = NULL;
		int rc;

		if (conn_get(s, c, t) == NULL)
			return;
		rc = mq_get(*c, queues[i % 3 ? 0 : 3], 20, 0, &m);
		if (rc == MQ_ERR_EMPTY)
			continue;
		conn_check(c, rc, t);
		if (rc != 0)
			continue;
		if (i % 4 == 1)
			rc = mq_nack(*c, &m->id, 1, 1, 0, 0, NULL);
		else if (i % 4 == 2)
			rc = mq_nack(*c, &m->id, 1, 0, 0, 0, NULL);
		else if (i % 4 == 3)
			rc = 0; /* left held: goes back when the connection closes */
		else
			rc = mq_ack(*c, &m->id, 1, 0, NULL);
		mq_message_free(m);
		conn_check(c, rc, t);
	}
}

/* A consumer with a prefetch window, acking what it gets. */
static void consume_some(const struct mqt_server *s, mq_conn **c,
                         struct tally *t)
{
	uint32_t tag = 0;
	int rc;

	if (conn_get(s, c, t) == NULL)
		return;
	rc = mq_consume(*c, "f.work", 5, 0, &tag);
	conn_check(c, rc, t);
	if (rc != 0)
		return;
	for (int i = 0; i < 20 && *c != NULL; i++) {
		struct mq_message *m = NULL;
		rc = mq_next(*c, 20, &m);
		if (rc == MQ_ERR_TIMEOUT)
			break;
		conn_check(c, rc, t);
		if (rc != 0 || m == NULL)
			continue;
		conn_check(c, mq_ack(*c, &m->id, 1, 0, NULL), t);
		mq_message_free(m);
	}
	if (*c != NULL)
		conn_check(c, mq_cancel(*c, tag), t);
}

/* A subscriber, and publishes that also reach the bound queue. */
static void pubsub_some(const struct mqt_server *s, mq_conn **c,
                        struct tally *t)
{
	uint32_t tag = 0;

	if (conn_get(s, c, t) == NULL ||
	    mq_subscribe(*c, "f.topic.>", &tag) != 0)
		return;
	for (int i = 0; i < NSEND / 2 && *c != NULL; i++) {
		uint32_t receivers = 0;
		int rc = mq_publish(*c, "f.topic.x", "p", 1, NULL, 0, &receivers);
		t->tried[2]++;
		if (rc == 0 && receivers >= 1)
			t->ok[2]++; /* the bound queue or the subscriber */
		conn_check(c, rc, t);
	}
	for (int i = 0; i < NSEND && *c != NULL; i++) {
		struct mq_message *m = NULL;
		int rc = mq_next(*c, 10, &m);
		if (rc == MQ_ERR_TIMEOUT)
			break;
		conn_check(c, rc, t);
		mq_message_free(m);
	}
}

static void workload(const struct mqt_server *s, struct tally *t)
{
	mq_conn *c = NULL;

	declare_all(s, &c, t);
	send_some(s, &c, t);
	take_some(s, &c, t);
	consume_some(s, &c, t);
	pubsub_some(s, &c, t);
	mq_close(c);
}

/* The control socket's rows, asked again if a fault answered instead. */
static json_t *queue_rows(const struct mqt_server *s)
{
	char out[65536];

	for (int i = 0; i < 50; i++) {
		json_t *j;
		if (mqt_control(s, "queues", out, sizeof out) < 0)
			continue;
		j = json_loads(out, 0, NULL);
		if (j != NULL && json_is_array(json_object_get(j, "queues")))
			return j;
		json_decref(j);
	}
	return NULL;
}

static json_t *rows_array(json_t *j)
{
	return json_object_get(j, "queues");
}

static uint64_t num(json_t *row, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(row, key));
}

/* Every queue's books balance once nothing is held; true when so. */
static bool books_balance(const struct mqt_server *s, const struct tally *t,
                          char *why, size_t cap)
{
	json_t *j = queue_rows(s), *row;
	size_t i;
	bool ok = true;

	if (j == NULL) {
		snprintf(why, cap, "no answer from the control socket");
		return false;
	}
	json_array_foreach(rows_array(j), i, row) {
		const char *name = json_string_value(json_object_get(row, "name"));
		uint64_t sent = num(row, "sent");
		uint64_t out = num(row, "ready") + num(row, "delayed") +
		               num(row, "held") + num(row, "acked") +
		               num(row, "expired") + num(row, "dead_lettered") +
		               num(row, "dropped") + num(row, "purged");
		if (name == NULL)
			continue;
		if (num(row, "held") != 0 || sent != out) {
			snprintf(why, cap,
			         "%s: sent %llu, held %llu, accounted for %llu",
			         name, (unsigned long long)sent,
			         (unsigned long long)num(row, "held"),
			         (unsigned long long)out);
			ok = false;
			break;
		}
		for (size_t q = 0; q < NQUEUES; q++) {
			if (strcmp(name, queues[q]) != 0 || q == 1)
				continue;
			/* Publishes count when any receiver took one: the
			 * subscriber may have taken it alone. */
			if ((q != 2 && sent < t->ok[q]) || sent > t->tried[q]) {
				snprintf(why, cap,
				         "%s: broker counted %llu sent; client had "
				         "%llu OK of %llu tried",
				         name, (unsigned long long)sent,
				         (unsigned long long)t->ok[q],
				         (unsigned long long)t->tried[q]);
				ok = false;
			}
		}
	}
	json_decref(j);
	return ok;
}

/* Run the workload under one fault plan; check what must hold. */
static void run_plan(const char *var, const char *plan)
{
	struct mqt_server s;
	struct tally t;
	char why[512] = "";
	mq_conn *c = NULL;
	bool balanced = false;
	int rc;

	memset(&t, 0, sizeof t);
	setenv(var, plan, 1);
	ck_assert_int_eq(mqt_server_start(&s, "workers = 2"), 0);
	unsetenv(var);
	workload(&s, &t);

	ck_assert_msg(mqt_server_alive(&s), "%s=%s: mqd died", var, plan);
	ck_assert_msg(t.stuck == 0,
	              "%s=%s: %u requests never answered (%u errors, %u "
	              "connections)",
	              var, plan, t.stuck, t.errors, t.reconnects);
	/* Still serving: a new client's PING (a fault may hit it once). */
	for (int i = 0; i < 50; i++) {
		if (mq_connect(&c, s.addr, "faults-check") == 0 &&
		    mq_ping(c) == 0)
			break;
		mq_close(c);
		c = NULL;
	}
	ck_assert_msg(c != NULL, "%s=%s: no PING after the faults", var, plan);
	mq_close(c);
	/* Closes are asynchronous: wait until nothing is held. */
	for (int64_t end = mqt_now_ms() + 10000; mqt_now_ms() < end;) {
		balanced = books_balance(&s, &t, why, sizeof why);
		if (balanced)
			break;
		usleep(20000);
	}
	ck_assert_msg(balanced, "%s=%s: %s", var, plan, why);
	rc = mqt_server_stop(&s);
	ck_assert_msg(rc == 0, "%s=%s: mqd exited with %d", var, plan, rc);
}

/* No fault at all: the books balance (else the checks prove nothing). */
START_TEST(test_no_fault)
{
	run_plan("MQD_FAULT_ALLOC", "1000000000");
}
END_TEST

/* Single faults at many points of the workload's allocations. */
START_TEST(test_alloc_single)
{
	static const unsigned points[] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89,
	                                  144, 233, 377, 610, 987, 1597};
	char plan[32];

	snprintf(plan, sizeof plan, "%u", points[_i]);
	run_plan("MQD_FAULT_ALLOC", plan);
}
END_TEST

/* Many faults in one run: every Kth allocation fails from the Nth on, up
 * to M of them (after that the broker must serve normally again). */
START_TEST(test_alloc_periodic)
{
	static const char *const plans[] = {"1,7,30", "4,13,40", "10,31,60",
	                                    "20,97,100"};

	run_plan("MQD_FAULT_ALLOC", plans[_i]);
}
END_TEST

/* Socket writes that fail: the connection goes, its messages come back. */
START_TEST(test_write_faults)
{
	static const char *const plans[] = {"1", "2", "5", "17", "3,11,20"};

	run_plan("MQD_FAULT_WRITE", plans[_i]);
}
END_TEST

static Suite *faults_suite(void)
{
	Suite *su = suite_create("faults");
	TCase *base = tcase_create("baseline");
	TCase *tc = tcase_create("faults");

	tcase_set_timeout(base, 120);
	tcase_add_test(base, test_no_fault);
	suite_add_tcase(su, base);

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_alloc_single, 0, 16);
	tcase_add_loop_test(tc, test_alloc_periodic, 0, 4);
	tcase_add_loop_test(tc, test_write_faults, 0, 5);
	suite_add_tcase(su, tc);
	return su;
}

#ifdef MQD_FAULT_INJECTION
static const bool fault_build = true;
#else
static const bool fault_build = false;
#endif

int main(void)
{
	if (!fault_build) {
		printf("SKIP: mqd is not built with --enable-fault-injection\n");
		return 77; /* automake's "skipped" */
	}
	return mqt_run_suite(faults_suite());
}
