#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * Integration tests for queue policies and delivery guarantees (issue 3):
 * per-message TTL, delay and priority; max_length / max_bytes with both
 * overflow policies; ack timeout; max_attempts and dead-lettering; NACK with
 * a delay; EXCLUSIVE and AUTO_DELETE lifetimes; the server's memory limit;
 * [queue NAME] config sections; and memory coming back after a backlog.
 *
 * Each test starts the real mqd (MQD_BIN) with a config of its own, talks
 * to it over raw sockets (PROTOCOL.md sections 3, 4.1, 4.3) or libmq, and
 * reads the queue's counters and settings from the control socket
 * (`queue NAME`, one JSON line, parsed with jansson).
 *
 * Asynchronous effects (expiry by the owner's timer, an ack timeout, a
 * disconnect) are awaited with wait-until loops that have deadlines.  The
 * only fixed sleeps let a deadline pass (waiting past a TTL so that a held
 * message is known to have expired) or check a negative.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../lib/harness.h"
#include "../lib/expect.h"
#include "../lib/proc.h"

#define SLACK_MS 50   /* clock granularity allowed in time comparisons */

#define MQT_E_MEMORY_LIMIT 13

#if defined(__SANITIZE_ADDRESS__)
#define MQT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MQT_ASAN 1
#endif
#endif

/* ---- SEND with every field ------------------------------------------------ */

/* hdrs: NULL, or { "key", "value", ..., NULL }. */
static void enc_send_full(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                          const char *q, uint32_t ttl_ms, uint32_t delay_ms,
                          uint8_t prio, const char *const *hdrs,
                          const void *body, size_t len)
{
	uint16_t n = 0;
	for (const char *const *h = hdrs; h && h[0]; h += 2)
		n++;
	size_t st = mqt_frame_begin(b, MQT_SEND, flags, tag);
	mqt_put_name(b, q);
	mqt_put_u32(b, ttl_ms);
	mqt_put_u32(b, delay_ms);
	mqt_put_u8(b, prio);
	mqt_put_u16(b, n);
	for (const char *const *h = hdrs; h && h[0]; h += 2) {
		mqt_put_name(b, h[0]);
		mqt_put_str16(b, h[1]);
	}
	mqt_put_blob(b, body, len);
	mqt_frame_end(b, st);
}

static uint64_t send_full_at(int line, int fd, uint32_t tag, const char *q,
                             uint32_t ttl_ms, uint32_t delay_ms, uint8_t prio,
                             const char *const *hdrs, const char *body)
{
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);
	enc_send_full(&b, 0, tag, q, ttl_ms, delay_ms, prio, hdrs, body,
	              strlen(body));
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_at(line, fd, &f, MQT_OK, tag);
	uint64_t id = ok_u64_at(line, &f);
	ck_assert_msg(id != 0, "line %d: SEND answered with message id 0",
	              line);
	mqt_frame_free(&f);
	return id;
}
#define SEND_X(fd, tag, q, ttl, delay, prio, hdrs, body)                      \
	send_full_at(__LINE__, fd, tag, q, ttl, delay, prio, hdrs, body)

static void send_err_at(int line, int fd, uint32_t tag, const char *q,
                        uint32_t ttl_ms, uint32_t delay_ms, uint8_t prio,
                        const char *body, int code)
{
	struct mqt_buf b;
	mqt_buf_init(&b);
	enc_send_full(&b, 0, tag, q, ttl_ms, delay_ms, prio, NULL, body,
	              strlen(body));
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_err_at(line, fd, tag, code);
}
#define SEND_ERR(fd, tag, q, prio, body, code)                                \
	send_err_at(__LINE__, fd, tag, q, 0, 0, prio, body, code)

static void check_header_at(int line, const struct mqt_msg *m,
                            const char *key, const char *want)
{
	char v[512];
	int n = mqt_msg_header(m, key, v, sizeof v);
	ck_assert_msg(n >= 0, "line %d: message has no header %s (it has %u)",
	              line, key, m->nheaders);
	ck_assert_msg(strcmp(v, want) == 0, "line %d: header %s is \"%s\", "
	              "expected \"%s\"", line, key, v, want);
}
#define CHECK_HEADER(m, key, want) check_header_at(__LINE__, m, key, want)

/* ---- the control socket: `queue NAME` --------------------------------------- */

/* One `queue NAME` answer.  Every counter and setting the spec lists must
 * be there with the right JSON type, or the test fails. */
struct qi {
	bool exists;
	bool exclusive, auto_delete;
	int64_t ready, held, delayed, bytes, consumers;
	int64_t sent, delivered, acked, redelivered, expired, dead_lettered,
		dropped, purged;
	int64_t max_length, max_bytes, message_ttl_ms, ack_timeout_ms,
		max_attempts;
	char overflow[32];     /* "reject" or "drop_head" */
	char dead_letter[256]; /* "" when none (null accepted too) */
	char raw[8192];        /* the reply line, for failure messages */
};

static const struct {
	const char *name;
	size_t off;
} qi_counters[] = {
#define QC(f) { #f, offsetof(struct qi, f) }
	QC(ready), QC(held), QC(delayed), QC(bytes), QC(consumers), QC(sent),
	QC(delivered), QC(acked), QC(redelivered), QC(expired),
	QC(dead_lettered), QC(dropped), QC(purged),
}, qi_settings[] = {
	QC(max_length), QC(max_bytes), QC(message_ttl_ms), QC(ack_timeout_ms),
	QC(max_attempts),
#undef QC
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int64_t *qi_field(struct qi *q, const char *name)
{
	for (size_t i = 0; i < NELEM(qi_counters); i++)
		if (strcmp(qi_counters[i].name, name) == 0)
			return (int64_t *)((char *)q + qi_counters[i].off);
	for (size_t i = 0; i < NELEM(qi_settings); i++)
		if (strcmp(qi_settings[i].name, name) == 0)
			return (int64_t *)((char *)q + qi_settings[i].off);
	return NULL;
}

static void qinfo_at(int line, const struct mqt_server *s, const char *name,
                     struct qi *q)
{
	char cmd[300];
	json_error_t je;

	memset(q, 0, sizeof *q);
	snprintf(cmd, sizeof cmd, "queue %s", name);
	ck_assert_msg(mqt_control(s, cmd, q->raw, sizeof q->raw) == 0,
	              "line %d: no reply line from the control socket %s to "
	              "\"%s\"", line, s->ctl_path, cmd);
	json_t *root = json_loads(q->raw, 0, &je);
	ck_assert_msg(root && json_is_object(root), "line %d: control reply "
	              "to \"%s\" is not a JSON object (%s): %s", line, cmd,
	              je.text, q->raw);
	json_t *ok = json_object_get(root, "ok");
	ck_assert_msg(json_is_boolean(ok), "line %d: no boolean \"ok\" in %s",
	              line, q->raw);
	if (!json_is_true(ok)) {
		json_t *e = json_object_get(root, "error");
		ck_assert_msg(json_is_string(e) &&
		                      strcmp(json_string_value(e),
		                             "no such queue") == 0,
		              "line %d: \"%s\": expected a queue or error \"no "
		              "such queue\", got %s", line, cmd, q->raw);
		json_decref(root);
		q->exists = false;
		return;
	}
	q->exists = true;
	json_t *o = json_object_get(root, "queue");
	ck_assert_msg(json_is_object(o), "line %d: no \"queue\" object in %s",
	              line, q->raw);
	json_t *v = json_object_get(o, "name");
	ck_assert_msg(json_is_string(v) &&
	                      strcmp(json_string_value(v), name) == 0,
	              "line %d: \"name\" is not \"%s\" in %s", line, name,
	              q->raw);
	ck_assert_msg(json_object_get(o, "owner") != NULL,
	              "line %d: no \"owner\" in %s", line, q->raw);
	v = json_object_get(o, "exclusive");
	ck_assert_msg(json_is_boolean(v), "line %d: no boolean \"exclusive\" "
	              "in %s", line, q->raw);
	q->exclusive = json_is_true(v);
	v = json_object_get(o, "auto_delete");
	ck_assert_msg(json_is_boolean(v), "line %d: no boolean "
	              "\"auto_delete\" in %s", line, q->raw);
	q->auto_delete = json_is_true(v);
	for (size_t i = 0; i < NELEM(qi_counters); i++) {
		v = json_object_get(o, qi_counters[i].name);
		ck_assert_msg(json_is_integer(v) && json_integer_value(v) >= 0,
		              "line %d: no integer \"%s\" >= 0 in %s", line,
		              qi_counters[i].name, q->raw);
		*(int64_t *)((char *)q + qi_counters[i].off) =
			json_integer_value(v);
	}
	json_t *st = json_object_get(o, "settings");
	ck_assert_msg(json_is_object(st), "line %d: no \"settings\" object "
	              "in %s", line, q->raw);
	for (size_t i = 0; i < NELEM(qi_settings); i++) {
		v = json_object_get(st, qi_settings[i].name);
		ck_assert_msg(json_is_integer(v) && json_integer_value(v) >= 0,
		              "line %d: no integer settings.%s >= 0 in %s",
		              line, qi_settings[i].name, q->raw);
		*(int64_t *)((char *)q + qi_settings[i].off) =
			json_integer_value(v);
	}
	v = json_object_get(st, "overflow");
	ck_assert_msg(json_is_string(v) &&
	                      (strcmp(json_string_value(v), "reject") == 0 ||
	                       strcmp(json_string_value(v), "drop_head") == 0),
	              "line %d: settings.overflow is not \"reject\" or "
	              "\"drop_head\" in %s", line, q->raw);
	snprintf(q->overflow, sizeof q->overflow, "%s", json_string_value(v));
	v = json_object_get(st, "dead_letter");
	ck_assert_msg(json_is_string(v) || json_is_null(v),
	              "line %d: no string settings.dead_letter in %s", line,
	              q->raw);
	snprintf(q->dead_letter, sizeof q->dead_letter, "%s",
	         json_is_string(v) ? json_string_value(v) : "");
	json_decref(root);
}
#define QINFO(s, name, q) qinfo_at(__LINE__, &(s), name, q)

/*
 * Compare a queue's figures with spec, "ready=2 held=0 overflow=reject
 * dead_letter=dlx exclusive=1": counters and integer settings by name, and
 * overflow, dead_letter, exclusive, auto_delete.  Returns NULL when all
 * match, else the first mismatch (in a static buffer).
 */
static const char *qi_mismatch(struct qi *q, const char *spec)
{
	static char why[512];
	char buf[1024];
	char *save = NULL;

	snprintf(buf, sizeof buf, "%s", spec);
	for (char *t = strtok_r(buf, " ", &save); t;
	     t = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(t, '=');
		ck_assert_msg(eq != NULL, "bad spec token \"%s\"", t);
		*eq = '\0';
		const char *key = t, *want = eq + 1;
		const char *got = NULL;
		char num[32];
		int64_t *p = qi_field(q, key);
		if (p) {
			snprintf(num, sizeof num, "%lld", (long long)*p);
			got = num;
		} else if (strcmp(key, "overflow") == 0) {
			got = q->overflow;
		} else if (strcmp(key, "dead_letter") == 0) {
			got = q->dead_letter;
		} else if (strcmp(key, "exclusive") == 0) {
			got = q->exclusive ? "1" : "0";
		} else if (strcmp(key, "auto_delete") == 0) {
			got = q->auto_delete ? "1" : "0";
		} else {
			ck_abort_msg("bad spec key \"%s\"", key);
		}
		if (strcmp(got, want) != 0) {
			snprintf(why, sizeof why, "%s is %s, expected %s", key,
			         got, want);
			return why;
		}
	}
	return NULL;
}

static void expect_q_at(int line, const struct mqt_server *s,
                        const char *name, const char *spec)
{
	struct qi q;
	qinfo_at(line, s, name, &q);
	ck_assert_msg(q.exists, "line %d: control: queue %s does not exist "
	              "(%s)", line, name, q.raw);
	const char *why = qi_mismatch(&q, spec);
	ck_assert_msg(why == NULL, "line %d: queue %s: %s; control said %s",
	              line, name, why, q.raw);
}
#define EXPECT_Q(s, name, spec) expect_q_at(__LINE__, &(s), name, spec)

/* Poll the control socket until the queue matches spec (asynchronous
 * effects: expiry, ack timeout, disconnect). */
static void wait_q_at(int line, const struct mqt_server *s, const char *name,
                      const char *spec)
{
	int64_t deadline = mqt_now_ms() + GONE_MS;
	struct qi q;
	for (;;) {
		qinfo_at(line, s, name, &q);
		const char *why = q.exists ? qi_mismatch(&q, spec)
		                           : "the queue does not exist";
		if (!why)
			return;
		ck_assert_msg(mqt_now_ms() < deadline, "line %d: queue %s did "
		              "not reach \"%s\" within %d ms: %s; control said "
		              "%s", line, name, spec, GONE_MS, why, q.raw);
		sleep_ms(5);
	}
}
#define WAIT_Q(s, name, spec) wait_q_at(__LINE__, &(s), name, spec)

static void expect_no_queue_at(int line, const struct mqt_server *s,
                               const char *name)
{
	struct qi q;
	qinfo_at(line, s, name, &q);
	ck_assert_msg(!q.exists, "line %d: queue %s exists: %s", line, name,
	              q.raw);
}
#define EXPECT_NO_QUEUE(s, name) expect_no_queue_at(__LINE__, &(s), name)

static void wait_no_queue_at(int line, const struct mqt_server *s,
                             const char *name)
{
	int64_t deadline = mqt_now_ms() + GONE_MS;
	struct qi q;
	for (;;) {
		qinfo_at(line, s, name, &q);
		if (!q.exists)
			return;
		ck_assert_msg(mqt_now_ms() < deadline, "line %d: queue %s still "
		              "exists after %d ms: %s", line, name, GONE_MS,
		              q.raw);
		sleep_ms(5);
	}
}
#define WAIT_NO_QUEUE(s, name) wait_no_queue_at(__LINE__, &(s), name)

/* ===================================================================== */
/* The control socket's queue view                                        */
/* ===================================================================== */

START_TEST(test_control_queue_counters)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	int fd2 = RAW_OPEN(s);
	char out[1024];

	ck_assert_int_eq(mqt_control(&s, "queue nosuch", out, sizeof out), 0);
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	ck_assert_msg(j != NULL, "not JSON: %s", out);
	ck_assert_msg(json_is_false(json_object_get(j, "ok")), "%s", out);
	ck_assert_str_eq(json_string_value(json_object_get(j, "error")),
	                 "no such queue");
	json_decref(j);

	/* An auto-created queue has the server's defaults (ack_timeout 30s). */
	DO_SEND(fd, 1, "plain", 0, "x");
	EXPECT_Q(s, "plain", "max_length=0 max_bytes=0 overflow=reject "
	         "message_ttl_ms=0 ack_timeout_ms=30000 max_attempts=0 "
	         "dead_letter= exclusive=0 auto_delete=0 ready=1 sent=1");

	DO_DECLARE(fd, 0, 2, "cq.dl", NULL, NULL);
	struct mq_queue_opts o = {
		.max_length = 100, .max_bytes = 100000, .overflow = 2,
		.message_ttl_ms = 60000, .ack_timeout_ms = 5000,
		.max_attempts = 3, .dead_letter = "cq.dl",
	};
	DO_DECLARE(fd, 0, 3, "cq", &o, NULL);
	EXPECT_Q(s, "cq", "max_length=100 max_bytes=100000 overflow=drop_head "
	         "message_ttl_ms=60000 ack_timeout_ms=5000 max_attempts=3 "
	         "dead_letter=cq.dl exclusive=0 auto_delete=0");
	EXPECT_Q(s, "cq", "ready=0 held=0 delayed=0 bytes=0 consumers=0 sent=0 "
	         "delivered=0 acked=0 redelivered=0 expired=0 "
	         "dead_lettered=0 dropped=0 purged=0");

	DO_SEND(fd, 4, "cq", 0, "aaa");
	DO_SEND(fd, 5, "cq", 0, "bb");
	DO_SEND(fd, 6, "cq", 0, "c");
	SEND_X(fd, 7, "cq", 0, 60000, 0, NULL, "dddd");
	EXPECT_Q(s, "cq", "ready=3 held=0 delayed=1 bytes=10 sent=4 "
	         "delivered=0");

	uint64_t id = GET_BODY(fd, 8, "cq", 0, "aaa", 1);
	EXPECT_Q(s, "cq", "ready=2 held=1 delayed=1 delivered=1 acked=0");
	ck_assert_uint_eq(DO_ACK(fd, 9, &id, 1), 1);
	EXPECT_Q(s, "cq", "ready=2 held=0 delayed=1 bytes=7 delivered=1 "
	         "acked=1");

	id = GET_BODY(fd, 10, "cq", 0, "bb", 1);
	ck_assert_uint_eq(DO_NACK(fd, 11, 1, &id, 1), 1);
	id = GET_BODY(fd, 12, "cq", 0, "bb", 2);
	EXPECT_Q(s, "cq", "ready=1 held=1 delivered=3 redelivered=1 acked=1");
	ck_assert_uint_eq(DO_ACK(fd, 13, &id, 1), 1);
	EXPECT_Q(s, "cq", "ready=1 held=0 delayed=1 bytes=5 acked=2");

	/* PURGE removes ready and delayed messages. */
	ck_assert_uint_eq(DO_PURGE(fd, 14, "cq"), 2);
	EXPECT_Q(s, "cq", "ready=0 held=0 delayed=0 bytes=0 purged=2 sent=4 "
	         "expired=0 dead_lettered=0 dropped=0");

	DO_CONSUME(fd2, 0, 15, "cq", 1);
	EXPECT_Q(s, "cq", "consumers=1");
	close(fd2);
	WAIT_Q(s, "cq", "consumers=0");
	close(fd);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* TTL                                                                    */
/* ===================================================================== */

/* Expired ready messages are removed by the owner's timer, with nobody
 * asking for them. */
START_TEST(test_ttl_expiry_no_consumer)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);

	/* The message's own ttl_ms. */
	DO_DECLARE(fd, 0, 1, "t1", NULL, NULL);
	SEND_X(fd, 2, "t1", 200, 0, 0, NULL, "short");
	DO_SEND(fd, 3, "t1", 0, "keep");
	EXPECT_Q(s, "t1", "ready=2 bytes=9 expired=0");
	WAIT_Q(s, "t1", "ready=1 bytes=4 expired=1 dropped=0 dead_lettered=0");

	/* ttl_ms 0: the queue's message_ttl; a ttl_ms of its own wins. */
	struct mq_queue_opts o = { .message_ttl_ms = 200 };
	DO_DECLARE(fd, 0, 4, "t2", &o, NULL);
	DO_SEND(fd, 5, "t2", 0, "queue-ttl");
	SEND_X(fd, 6, "t2", 60000, 0, 0, NULL, "own-ttl");
	WAIT_Q(s, "t2", "ready=1 expired=1");

	/* Nothing touched them: the survivors are the right ones. */
	GET_BODY(fd, 7, "t1", MQ_AUTO_ACK, "keep", 1);
	GET_EMPTY(fd, 8, "t1", 0);
	GET_BODY(fd, 9, "t2", MQ_AUTO_ACK, "own-ttl", 1);
	GET_EMPTY(fd, 10, "t2", 0);
	EXPECT_Q(s, "t1", "expired=1 delivered=1");
	EXPECT_Q(s, "t2", "expired=1 delivered=1");
	close(fd);
	STOP(s);
}
END_TEST

/* A message expires while a consumer is busy (its prefetch full). */
START_TEST(test_ttl_expiry_with_consumer)
{
	struct mqt_server s;
	START(s);
	int c = RAW_OPEN(s);
	int p = RAW_OPEN(s);
	struct mqt_frame f;
	struct mqt_msg m;

	DO_DECLARE(p, 0, 1, "tc", NULL, NULL);
	DO_CONSUME(c, 0, 2, "tc", 1);
	DO_SEND(p, 3, "tc", 0, "first");
	EXPECT_DELIVER(c, 2, &f, &m);
	CHECK_BODY(&m, "first");
	uint64_t id = m.id;
	mqt_frame_free(&f);
	SEND_X(p, 4, "tc", 200, 0, 0, NULL, "perishable");
	EXPECT_Q(s, "tc", "ready=1 held=1 consumers=1");
	WAIT_Q(s, "tc", "ready=0 held=1 expired=1");
	/* Room again, but the expired message is gone. */
	ck_assert_uint_eq(DO_ACK(c, 5, &id, 1), 1);
	EXPECT_QUIET(c, QUIET_MS);
	EXPECT_Q(s, "tc", "ready=0 held=0 delivered=1 acked=1 expired=1");
	close(c);
	close(p);
	STOP(s);
}
END_TEST

/* Expiry with a dead-letter queue: reason "expired", a new message. */
START_TEST(test_ttl_expiry_dead_letter)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_frame f;
	struct mqt_msg m;

	DO_DECLARE(fd, 0, 1, "te.dl", NULL, NULL);
	struct mq_queue_opts o = { .dead_letter = "te.dl" };
	DO_DECLARE(fd, 0, 2, "te", &o, NULL);
	static const char *const hdrs[] = { "trace", "t-1", NULL };
	int64_t t0 = mqt_wall_ms();
	uint64_t id = SEND_X(fd, 3, "te", 300, 0, 3, hdrs, "old news");
	WAIT_Q(s, "te.dl", "ready=1");
	EXPECT_Q(s, "te", "ready=0 held=0 expired=1 dead_lettered=1 dropped=0");
	GET_EMPTY(fd, 4, "te", 0);
	DO_GET(fd, 5, "te.dl", 0, MQ_AUTO_ACK, &f, &m);
	CHECK_BODY(&m, "old news");
	ck_assert(m.id != id);
	ck_assert_uint_eq(m.attempts, 1);
	ck_assert_uint_eq(m.priority, 3);
	ck_assert_str_eq(m.source, "te.dl");
	ck_assert_uint_eq(m.nheaders, 3);
	CHECK_HEADER(&m, "trace", "t-1");
	CHECK_HEADER(&m, "x-dead-reason", "expired");
	CHECK_HEADER(&m, "x-dead-from", "te");
	/* Its timestamp is the time of dead-lettering, not of the SEND. */
	ck_assert_msg((int64_t)m.timestamp_ms >= t0 + 300 - SLACK_MS &&
	                      (int64_t)m.timestamp_ms <= mqt_wall_ms() + SLACK_MS,
	              "dead-lettered timestamp %llu, sent at %lld with ttl "
	              "300, now %lld", (unsigned long long)m.timestamp_ms,
	              (long long)t0, (long long)mqt_wall_ms());
	mqt_frame_free(&f);
	close(fd);
	STOP(s);
}
END_TEST

/* A message that expires while held stays with its holder; if it comes
 * back after its TTL, it expires then. */
START_TEST(test_ttl_held)
{
	struct mqt_server s;
	START(s);
	int a = RAW_OPEN(s);
	int b = RAW_OPEN(s);
	struct mqt_frame f;
	struct mqt_msg m;

	DO_DECLARE(a, 0, 1, "th", NULL, NULL);
	DO_DECLARE(a, 0, 2, "thd.dl", NULL, NULL);
	struct mq_queue_opts o = { .dead_letter = "thd.dl" };
	DO_DECLARE(a, 0, 3, "thd", &o, NULL);
	SEND_X(a, 4, "th", 300, 0, 0, NULL, "h1");
	SEND_X(a, 5, "th", 300, 0, 0, NULL, "h2");
	SEND_X(a, 6, "thd", 300, 0, 0, NULL, "h3");
	/* A probe with the same TTL, sent after the others and never taken:
	 * once the broker has expired it, every TTL above has run out on the
	 * broker's own clock. */
	SEND_X(a, 15, "th.probe", 300, 0, 0, NULL, "probe");
	uint64_t id1 = GET_BODY(a, 7, "th", 0, "h1", 1);
	uint64_t id2 = GET_BODY(a, 8, "th", 0, "h2", 1);
	GET_BODY(b, 9, "thd", 0, "h3", 1);
	WAIT_Q(s, "th.probe", "ready=0 expired=1");

	/* Held past its TTL: still held, and the ACK counts. */
	EXPECT_Q(s, "th", "ready=0 held=2 expired=0");
	EXPECT_Q(s, "thd", "ready=0 held=1 expired=0 dead_lettered=0");
	ck_assert_uint_eq(DO_ACK(a, 10, &id1, 1), 1);
	EXPECT_Q(s, "th", "held=1 acked=1 expired=0");

	/* NACK requeue after the TTL: it expires on the way back. */
	ck_assert_uint_eq(DO_NACK(a, 11, 1, &id2, 1), 1);
	GET_EMPTY(a, 12, "th", 0);
	WAIT_Q(s, "th", "ready=0 held=0 delayed=0 expired=1 acked=1 "
	       "delivered=2");

	/* The holder disconnects after the TTL: expired, and dead-lettered. */
	close(b);
	WAIT_Q(s, "thd.dl", "ready=1");
	EXPECT_Q(s, "thd", "ready=0 held=0 dead_lettered=1");
	GET_EMPTY(a, 13, "thd", 0);
	DO_GET(a, 14, "thd.dl", 0, MQ_AUTO_ACK, &f, &m);
	CHECK_BODY(&m, "h3");
	CHECK_HEADER(&m, "x-dead-reason", "expired");
	CHECK_HEADER(&m, "x-dead-from", "thd");
	mqt_frame_free(&f);
	close(a);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* Delay                                                                  */
/* ===================================================================== */

START_TEST(test_delay)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);

	DO_DECLARE(fd, 0, 1, "dq", NULL, NULL);
	int64_t t0 = mqt_now_ms();
	SEND_X(fd, 2, "dq", 0, 300, 0, NULL, "later");
	EXPECT_Q(s, "dq", "ready=0 delayed=1 sent=1");
	GET_EMPTY(fd, 3, "dq", 0);
	GET_WAIT_BODY(fd, 4, "dq", 5000, MQ_AUTO_ACK, "later", 1);
	int64_t took = mqt_now_ms() - t0;
	ck_assert_msg(took >= 300 - SLACK_MS, "a message delayed 300 ms came "
	              "out after %lld ms", (long long)took);
	EXPECT_Q(s, "dq", "ready=0 delayed=0 held=0 delivered=1");
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_delay_order)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);

	DO_DECLARE(fd, 0, 1, "do", NULL, NULL);
	SEND_X(fd, 2, "do", 0, 300, 0, NULL, "300");
	SEND_X(fd, 3, "do", 0, 100, 0, NULL, "100");
	SEND_X(fd, 4, "do", 0, 200, 0, NULL, "200");
	EXPECT_Q(s, "do", "delayed=3 ready=0");
	GET_WAIT_BODY(fd, 5, "do", 5000, MQ_AUTO_ACK, "100", 1);
	GET_WAIT_BODY(fd, 6, "do", 5000, MQ_AUTO_ACK, "200", 1);
	GET_WAIT_BODY(fd, 7, "do", 5000, MQ_AUTO_ACK, "300", 1);
	GET_EMPTY(fd, 8, "do", 0);
	close(fd);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* Priority                                                               */
/* ===================================================================== */

START_TEST(test_priority_redelivered)
{
	struct mqt_server s;
	START(s);
	int a = RAW_OPEN(s);
	int b = RAW_OPEN(s);

	DO_DECLARE(a, 0, 1, "pr", NULL, NULL);
	DO_SEND(a, 2, "pr", 0, "a0");
	DO_SEND(a, 3, "pr", 0, "b0");
	DO_SEND(a, 4, "pr", 5, "c5");
	DO_SEND(a, 5, "pr", 5, "d5");
	DO_SEND(a, 6, "pr", 9, "e9");

	uint64_t ids[4];
	ids[0] = GET_BODY(a, 7, "pr", 0, "e9", 1);
	uint64_t c5 = GET_BODY(a, 8, "pr", 0, "c5", 1);
	/* NACK requeue: back to the head of level 5, before d5. */
	ck_assert_uint_eq(DO_NACK(a, 9, 1, &c5, 1), 1);
	ids[1] = GET_BODY(a, 10, "pr", 0, "c5", 2);
	ids[2] = GET_BODY(a, 11, "pr", 0, "d5", 1);
	/* A holder disconnects: back to the head of level 0, before b0. */
	GET_BODY(b, 12, "pr", 0, "a0", 1);
	close(b);
	WAIT_Q(s, "pr", "held=3 ready=2");
	ids[3] = GET_BODY(a, 13, "pr", 0, "a0", 2);
	/* Higher priority still goes first, ahead of a redelivery. */
	DO_SEND(a, 14, "pr", 1, "f1");
	GET_BODY(a, 15, "pr", MQ_AUTO_ACK, "f1", 1);
	GET_BODY(a, 16, "pr", MQ_AUTO_ACK, "b0", 1);
	GET_EMPTY(a, 17, "pr", 0);
	ck_assert_uint_eq(DO_ACK(a, 18, ids, 4), 4);
	close(a);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* max_length / max_bytes                                                 */
/* ===================================================================== */

START_TEST(test_overflow_reject_length)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);

	struct mq_queue_opts o = { .max_length = 2, .overflow = 1 };
	DO_DECLARE(fd, 0, 1, "rl", &o, NULL);
	/* Delayed messages count, held ones do not. */
	SEND_X(fd, 2, "rl", 0, 60000, 0, NULL, "delayed");
	DO_SEND(fd, 3, "rl", 0, "one");
	SEND_ERR(fd, 4, "rl", 0, "two", MQT_E_QUEUE_FULL);
	SEND_ERR(fd, 5, "rl", 9, "two", MQT_E_QUEUE_FULL);
	EXPECT_Q(s, "rl", "ready=1 delayed=1 sent=2 dropped=0 bytes=10");
	uint64_t id = GET_BODY(fd, 6, "rl", 0, "one", 1);
	DO_SEND(fd, 7, "rl", 0, "three");
	SEND_ERR(fd, 8, "rl", 0, "four", MQT_E_QUEUE_FULL);
	EXPECT_Q(s, "rl", "ready=1 delayed=1 held=1 sent=3 dropped=0");
	ck_assert_uint_eq(DO_ACK(fd, 9, &id, 1), 1);
	GET_BODY(fd, 10, "rl", MQ_AUTO_ACK, "three", 1);
	GET_EMPTY(fd, 11, "rl", 0);
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_overflow_reject_bytes)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);

	struct mq_queue_opts o = { .max_bytes = 10, .overflow = 1 };
	DO_DECLARE(fd, 0, 1, "rb", &o, NULL);
	DO_SEND(fd, 2, "rb", 0, "aaaaa");
	DO_SEND(fd, 3, "rb", 0, "bbbbb");
	SEND_ERR(fd, 4, "rb", 0, "c", MQT_E_QUEUE_FULL);
	EXPECT_Q(s, "rb", "ready=2 bytes=10 sent=2 dropped=0");
	GET_BODY(fd, 5, "rb", MQ_AUTO_ACK, "aaaaa", 1);
	EXPECT_Q(s, "rb", "ready=1 bytes=5");
	DO_SEND(fd, 6, "rb", 0, "cccc");
	SEND_ERR(fd, 7, "rb", 0, "dd", MQT_E_QUEUE_FULL);
	DO_SEND(fd, 8, "rb", 0, "d");
	EXPECT_Q(s, "rb", "ready=3 bytes=10 sent=4 dropped=0");
	GET_BODY(fd, 9, "rb", MQ_AUTO_ACK, "bbbbb", 1);
	GET_BODY(fd, 10, "rb", MQ_AUTO_ACK, "cccc", 1);
	GET_BODY(fd, 11, "rb", MQ_AUTO_ACK, "d", 1);
	GET_EMPTY(fd, 12, "rb", 0);
	close(fd);
	STOP(s);
}
END_TEST

/* drop_head: the oldest message of the lowest priority level present. */
START_TEST(test_overflow_drop_head_length)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);

	struct mq_queue_opts o = { .max_length = 3, .overflow = 2 };
	DO_DECLARE(fd, 0, 1, "dl", &o, NULL);
	DO_SEND(fd, 2, "dl", 5, "a");
	DO_SEND(fd, 3, "dl", 0, "b");
	DO_SEND(fd, 4, "dl", 0, "c");
	DO_SEND(fd, 5, "dl", 9, "d"); /* drops b */
	EXPECT_Q(s, "dl", "ready=3 dropped=1 sent=4");
	DO_SEND(fd, 6, "dl", 5, "e"); /* drops c */
	EXPECT_Q(s, "dl", "ready=3 dropped=2");
	DO_SEND(fd, 7, "dl", 7, "f"); /* drops a, the older of level 5 */
	EXPECT_Q(s, "dl", "ready=3 dropped=3 sent=6 bytes=3");
	/* Held messages do not count. */
	uint64_t id = GET_BODY(fd, 8, "dl", 0, "d", 1);
	DO_SEND(fd, 9, "dl", 9, "g");
	EXPECT_Q(s, "dl", "ready=3 held=1 dropped=3");
	GET_BODY(fd, 10, "dl", MQ_AUTO_ACK, "g", 1);
	GET_BODY(fd, 11, "dl", MQ_AUTO_ACK, "f", 1);
	GET_BODY(fd, 12, "dl", MQ_AUTO_ACK, "e", 1);
	GET_EMPTY(fd, 13, "dl", 0);
	ck_assert_uint_eq(DO_ACK(fd, 14, &id, 1), 1);
	EXPECT_Q(s, "dl", "ready=0 held=0 dropped=3 dead_lettered=0");
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_overflow_drop_head_bytes)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);

	struct mq_queue_opts o = { .max_bytes = 10, .overflow = 2 };
	DO_DECLARE(fd, 0, 1, "db", &o, NULL);
	DO_SEND(fd, 2, "db", 0, "aaaa");
	DO_SEND(fd, 3, "db", 1, "bbbb");
	DO_SEND(fd, 4, "db", 0, "cccc"); /* 12 > 10: drops aaaa */
	EXPECT_Q(s, "db", "ready=2 bytes=8 dropped=1");
	/* 16 > 10: drops cccc (level 0), then bbbb (level 1). */
	DO_SEND(fd, 5, "db", 2, "dddddddd");
	EXPECT_Q(s, "db", "ready=1 bytes=8 dropped=3 sent=4");
	GET_BODY(fd, 6, "db", MQ_AUTO_ACK, "dddddddd", 1);
	GET_EMPTY(fd, 7, "db", 0);
	close(fd);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* Ack timeout                                                            */
/* ===================================================================== */

/* Colleague's test, unchanged: held past the ack timeout, handed out
 * again. */
START_TEST(test_ack_timeout)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mq_queue_opts o = { .ack_timeout_ms = 300 };
	DO_DECLARE(fd, 0, 1, "at", &o, NULL);
	DO_SEND(fd, 2, "at", 0, "slow");
	uint64_t id = GET_BODY(fd, 3, "at", 0, "slow", 1);
	struct mqt_frame f;
	struct mqt_msg m;
	DO_GET(fd, 4, "at", 20000, 0, &f, &m);
	CHECK_BODY(&m, "slow");
	ck_assert(m.id == id);
	ck_assert_uint_eq(m.attempts, 2);
	mqt_frame_free(&f);
	close(fd);
	STOP(s);
}
END_TEST

/* Back to the head of its level; a late ACK by the old holder is not
 * counted. */
START_TEST(test_ack_timeout_head)
{
	struct mqt_server s;
	START(s);
	int a = RAW_OPEN(s);
	int b = RAW_OPEN(s);

	struct mq_queue_opts o = { .ack_timeout_ms = 300 };
	DO_DECLARE(a, 0, 1, "ah", &o, NULL);
	DO_SEND(a, 2, "ah", 0, "x");
	DO_SEND(a, 3, "ah", 0, "y");
	uint64_t idx = GET_BODY(a, 4, "ah", 0, "x", 1);
	EXPECT_Q(s, "ah", "ready=1 held=1");
	WAIT_Q(s, "ah", "ready=2 held=0");
	uint64_t id = GET_BODY(b, 5, "ah", 0, "x", 2);
	ck_assert(id == idx);
	ck_assert_uint_eq(DO_ACK(a, 6, &idx, 1), 0);
	EXPECT_Q(s, "ah", "acked=0 held=1 redelivered=1");
	ck_assert_uint_eq(DO_ACK(b, 7, &id, 1), 1);
	GET_BODY(b, 8, "ah", MQ_AUTO_ACK, "y", 1);
	EXPECT_Q(s, "ah", "acked=1 ready=0 held=0");
	close(a);
	close(b);
	STOP(s);
}
END_TEST

/* Redelivered to another consumer with free prefetch, attempts 2. */
START_TEST(test_ack_timeout_other_consumer)
{
	struct mqt_server s;
	START(s);
	int a = RAW_OPEN(s);
	int b = RAW_OPEN(s);
	int p = RAW_OPEN(s);
	struct mqt_frame f;
	struct mqt_msg m;

	struct mq_queue_opts o = { .ack_timeout_ms = 300 };
	DO_DECLARE(p, 0, 1, "ac", &o, NULL);
	DO_CONSUME(a, 0, 2, "ac", 1);
	DO_SEND(p, 3, "ac", 0, "job");
	EXPECT_DELIVER(a, 2, &f, &m);
	CHECK_BODY(&m, "job");
	ck_assert_uint_eq(m.attempts, 1);
	uint64_t id = m.id;
	mqt_frame_free(&f);
	/* a stops consuming but still holds it; b is the only consumer. */
	DO_CANCEL(a, 4, 2);
	DO_CONSUME(b, 0, 5, "ac", 1);
	EXPECT_DELIVER(b, 5, &f, &m);
	CHECK_BODY(&m, "job");
	ck_assert(m.id == id);
	ck_assert_uint_eq(m.attempts, 2);
	mqt_frame_free(&f);
	ck_assert_uint_eq(DO_ACK(a, 6, &id, 1), 0);
	ck_assert_uint_eq(DO_ACK(b, 7, &id, 1), 1);
	EXPECT_Q(s, "ac", "acked=1 held=0 ready=0 redelivered=1 delivered=2");
	close(a);
	close(b);
	close(p);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* Dead-lettering                                                         */
/* ===================================================================== */

/* Colleague's test, unchanged: NACK requeue 0 with a dead-letter queue,
 * and max_attempts 2. */
START_TEST(test_nack_dead_letter)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_frame f;
	struct mqt_msg m;
	char v[64];
	DO_DECLARE(fd, 0, 1, "dlx", NULL, NULL);
	struct mq_queue_opts o = { .dead_letter = "dlx", .max_attempts = 2 };
	DO_DECLARE(fd, 0, 2, "work", &o, NULL);
	uint64_t id = DO_SEND(fd, 3, "work", 0, "poison");
	GET_BODY(fd, 4, "work", 0, "poison", 1);
	ck_assert_uint_eq(DO_NACK(fd, 5, 0, &id, 1), 1);
	GET_EMPTY(fd, 6, "work", 0);
	DO_GET(fd, 7, "dlx", 0, MQ_AUTO_ACK, &f, &m);
	CHECK_BODY(&m, "poison");
	ck_assert(m.id != id);
	ck_assert_uint_eq(m.attempts, 1);
	ck_assert_str_eq(m.source, "dlx");
	ck_assert_int_ge(mqt_msg_header(&m, "x-dead-reason", v, sizeof v), 0);
	ck_assert_str_eq(v, "rejected");
	ck_assert_int_ge(mqt_msg_header(&m, "x-dead-from", v, sizeof v), 0);
	ck_assert_str_eq(v, "work");
	mqt_frame_free(&f);

	/* max_attempts 2: the third delivery does not happen. */
	id = DO_SEND(fd, 8, "work", 0, "flaky");
	GET_BODY(fd, 9, "work", 0, "flaky", 1);
	ck_assert_uint_eq(DO_NACK(fd, 10, 1, &id, 1), 1);
	GET_BODY(fd, 11, "work", 0, "flaky", 2);
	ck_assert_uint_eq(DO_NACK(fd, 12, 1, &id, 1), 1);
	GET_EMPTY(fd, 13, "work", 0);
	DO_GET(fd, 14, "dlx", 0, MQ_AUTO_ACK, &f, &m);
	CHECK_BODY(&m, "flaky");
	ck_assert_int_ge(mqt_msg_header(&m, "x-dead-reason", v, sizeof v), 0);
	ck_assert_str_eq(v, "max-attempts");
	mqt_frame_free(&f);
	close(fd);
	STOP(s);
}
END_TEST

/* max_attempts then the dead-letter queue: every field of the new
 * message, by each way back (NACK requeue, ack timeout, disconnect). */
START_TEST(test_max_attempts_dead_letter)
{
	struct mqt_server s;
	START(s);
	int a = RAW_OPEN(s);
	int b = RAW_OPEN(s);
	struct mqt_frame f;
	struct mqt_msg m;

	DO_DECLARE(a, 0, 1, "ma.dl", NULL, NULL);
	struct mq_queue_opts o = { .max_attempts = 2, .dead_letter = "ma.dl" };
	DO_DECLARE(a, 0, 2, "ma", &o, NULL);
	static const char *const hdrs[] = { "k1", "v1", "trace", "abc", NULL };

	/* 1. NACK requeue after the 2nd delivery. */
	uint64_t id = SEND_X(a, 3, "ma", 0, 0, 7, hdrs, "payload");
	GET_BODY(a, 4, "ma", 0, "payload", 1);
	ck_assert_uint_eq(DO_NACK(a, 5, 1, &id, 1), 1);
	GET_BODY(a, 6, "ma", 0, "payload", 2);
	int64_t t0 = mqt_wall_ms();
	ck_assert_uint_eq(DO_NACK(a, 7, 1, &id, 1), 1);
	GET_EMPTY(a, 8, "ma", 0);
	DO_GET(a, 9, "ma.dl", 0, MQ_AUTO_ACK, &f, &m);
	int64_t t1 = mqt_wall_ms();
	CHECK_BODY(&m, "payload");
	ck_assert(m.id != id);
	ck_assert_uint_eq(m.attempts, 1);
	ck_assert_uint_eq(m.priority, 7);
	ck_assert_str_eq(m.source, "ma.dl");
	ck_assert_uint_eq(m.nheaders, 4);
	CHECK_HEADER(&m, "k1", "v1");
	CHECK_HEADER(&m, "trace", "abc");
	CHECK_HEADER(&m, "x-dead-reason", "max-attempts");
	CHECK_HEADER(&m, "x-dead-from", "ma");
	ck_assert_msg((int64_t)m.timestamp_ms >= t0 - SLACK_MS &&
	                      (int64_t)m.timestamp_ms <= t1 + SLACK_MS,
	              "dead-lettered timestamp %llu not within [%lld, %lld]",
	              (unsigned long long)m.timestamp_ms, (long long)t0,
	              (long long)t1);
	mqt_frame_free(&f);
	EXPECT_Q(s, "ma", "ready=0 held=0 dead_lettered=1 dropped=0");

	/* 2. The ack timeout after the last delivery. */
	DO_DECLARE(a, 0, 10, "mb.dl", NULL, NULL);
	struct mq_queue_opts ob = { .max_attempts = 1, .ack_timeout_ms = 200,
	                            .dead_letter = "mb.dl" };
	DO_DECLARE(a, 0, 11, "mb", &ob, NULL);
	id = DO_SEND(a, 12, "mb", 4, "slowpoke");
	GET_BODY(a, 13, "mb", 0, "slowpoke", 1);
	WAIT_Q(s, "mb.dl", "ready=1");
	EXPECT_Q(s, "mb", "ready=0 held=0 dead_lettered=1");
	ck_assert_uint_eq(DO_ACK(a, 14, &id, 1), 0);
	DO_GET(a, 15, "mb.dl", 0, MQ_AUTO_ACK, &f, &m);
	CHECK_BODY(&m, "slowpoke");
	ck_assert(m.id != id);
	ck_assert_uint_eq(m.attempts, 1);
	ck_assert_uint_eq(m.priority, 4);
	CHECK_HEADER(&m, "x-dead-reason", "max-attempts");
	CHECK_HEADER(&m, "x-dead-from", "mb");
	mqt_frame_free(&f);

	/* 3. The holder disconnects after the last delivery. */
	DO_DECLARE(a, 0, 16, "mc.dl", NULL, NULL);
	struct mq_queue_opts oc = { .max_attempts = 1, .dead_letter = "mc.dl" };
	DO_DECLARE(a, 0, 17, "mc", &oc, NULL);
	DO_SEND(a, 18, "mc", 0, "orphan");
	GET_BODY(b, 19, "mc", 0, "orphan", 1);
	close(b);
	WAIT_Q(s, "mc.dl", "ready=1");
	EXPECT_Q(s, "mc", "ready=0 held=0 dead_lettered=1");
	DO_GET(a, 20, "mc.dl", 0, MQ_AUTO_ACK, &f, &m);
	CHECK_BODY(&m, "orphan");
	ck_assert_uint_eq(m.attempts, 1);
	CHECK_HEADER(&m, "x-dead-reason", "max-attempts");
	CHECK_HEADER(&m, "x-dead-from", "mc");
	mqt_frame_free(&f);
	close(a);
	STOP(s);
}
END_TEST

/* Without a dead-letter queue: dropped and counted per reason. */
START_TEST(test_dead_letter_none_counts)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);

	struct mq_queue_opts o = { .max_attempts = 1 };
	DO_DECLARE(fd, 0, 1, "nd", &o, NULL);
	uint64_t id = DO_SEND(fd, 2, "nd", 0, "rejected");
	GET_BODY(fd, 3, "nd", 0, "rejected", 1);
	ck_assert_uint_eq(DO_NACK(fd, 4, 0, &id, 1), 1);
	EXPECT_Q(s, "nd", "ready=0 held=0 dropped=1 dead_lettered=0");
	id = DO_SEND(fd, 5, "nd", 0, "tried");
	GET_BODY(fd, 6, "nd", 0, "tried", 1);
	ck_assert_uint_eq(DO_NACK(fd, 7, 1, &id, 1), 1);
	GET_EMPTY(fd, 8, "nd", 0);
	EXPECT_Q(s, "nd", "ready=0 held=0 dropped=2 dead_lettered=0");
	SEND_X(fd, 9, "nd", 200, 0, 0, NULL, "stale");
	WAIT_Q(s, "nd", "ready=0 expired=1 dropped=2 dead_lettered=0");
	close(fd);
	STOP(s);
}
END_TEST

/* NACK requeue 1 with a delay: delayed meanwhile, then at the tail. */
START_TEST(test_nack_delay)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);

	DO_DECLARE(fd, 0, 1, "nq", NULL, NULL);
	DO_SEND(fd, 2, "nq", 0, "x");
	DO_SEND(fd, 3, "nq", 0, "y");
	uint64_t id = GET_BODY(fd, 4, "nq", 0, "x", 1);
	ck_assert_uint_eq(DO_NACK_DELAY(fd, 5, 1, 300, &id, 1), 1);
	EXPECT_Q(s, "nq", "ready=1 delayed=1 held=0");
	GET_BODY(fd, 6, "nq", MQ_AUTO_ACK, "y", 1);
	GET_EMPTY(fd, 7, "nq", 0);
	DO_SEND(fd, 8, "nq", 0, "z");
	WAIT_Q(s, "nq", "ready=2 delayed=0");
	/* At the tail: z, sent during the delay, comes first. */
	GET_BODY(fd, 9, "nq", MQ_AUTO_ACK, "z", 1);
	GET_BODY(fd, 10, "nq", MQ_AUTO_ACK, "x", 2);
	GET_EMPTY(fd, 11, "nq", 0);
	close(fd);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* Bad input                                                              */
/* ===================================================================== */

START_TEST(test_bad_arguments)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);

	struct mq_queue_opts self = { .dead_letter = "selfish" };
	DECLARE_ERR(fd, 0, 1, "selfish", &self, MQT_E_BAD_ARGUMENT);
	EXPECT_NO_QUEUE(s, "selfish");

	DO_DECLARE(fd, 0, 2, "p10", NULL, NULL);
	SEND_ERR(fd, 3, "p10", 10, "too high", MQT_E_BAD_ARGUMENT);
	EXPECT_Q(s, "p10", "ready=0 delayed=0 sent=0 bytes=0");
	DO_SEND(fd, 4, "p10", 9, "ok");
	EXPECT_Q(s, "p10", "ready=1 sent=1");
	close(fd);
	STOP(s);
}
END_TEST

/* From the "Bad input": a dead-letter chain that loops.  A loop
 * can only be made by naming a queue that does not exist yet; if the
 * broker refuses that (NOT_FOUND), no loop can be declared at all. */
START_TEST(test_declare_dead_letter_loop)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);

	struct mq_queue_opts oa = { .dead_letter = "loop.b" };
	mqt_enc_declare(&b, 0, 1, "loop.a", &oa);
	SENDB(fd, &b);
	ck_assert_int_eq(mqt_raw_read(fd, &f, RD_MS), MQT_RD_FRAME);
	ck_assert_msg(f.tag == 1 && (f.op == MQT_DECLARED ||
	                             mqt_error_code(&f) == MQT_E_NOT_FOUND),
	              "DECLARE loop.a with dead_letter loop.b (not there): "
	              "expected DECLARED or NOT_FOUND, got %s",
	              mqt_frame_str(&f));
	bool declared = f.op == MQT_DECLARED;
	mqt_frame_free(&f);
	if (declared) {
		/* b -> a would close the loop a -> b -> a. */
		struct mq_queue_opts ob = { .dead_letter = "loop.a" };
		DECLARE_ERR(fd, 0, 2, "loop.b", &ob, MQT_E_BAD_ARGUMENT);
		EXPECT_NO_QUEUE(s, "loop.b");
		/* And a longer one: c -> a -> b -> c. */
		struct mq_queue_opts oc = { .dead_letter = "loop.a" };
		DO_DECLARE(fd, 0, 3, "loop.c", &oc, NULL);
		struct mq_queue_opts ob2 = { .dead_letter = "loop.c" };
		DECLARE_ERR(fd, 0, 4, "loop.b", &ob2, MQT_E_BAD_ARGUMENT);
		EXPECT_NO_QUEUE(s, "loop.b");
	}
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

/* DECLARE's CONFLICT rule covers every setting; 0 never differs. */
START_TEST(test_declare_conflict_settings)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);

	DO_DECLARE(fd, 0, 1, "cf.dl", NULL, NULL);
	DO_DECLARE(fd, 0, 2, "cf.dl2", NULL, NULL);
	const struct mq_queue_opts base = {
		.max_length = 10, .max_bytes = 1000, .overflow = 1,
		.message_ttl_ms = 5000, .ack_timeout_ms = 2000,
		.max_attempts = 3, .dead_letter = "cf.dl",
	};
	DO_DECLARE(fd, 0, 3, "cf", &base, NULL);
	DO_DECLARE(fd, 0, 4, "cf", &base, NULL);
	DO_DECLARE(fd, 0, 5, "cf", NULL, NULL);
	uint32_t tag = 10;
	for (int i = 0; i < 7; i++) {
		struct mq_queue_opts o = base;
		switch (i) {
		case 0: o.max_length = 11; break;
		case 1: o.max_bytes = 1001; break;
		case 2: o.overflow = 2; break;
		case 3: o.message_ttl_ms = 5001; break;
		case 4: o.ack_timeout_ms = 2001; break;
		case 5: o.max_attempts = 4; break;
		case 6: o.dead_letter = "cf.dl2"; break;
		}
		DECLARE_ERR(fd, 0, tag++, "cf", &o, MQT_E_CONFLICT);
	}
	EXPECT_Q(s, "cf", "max_length=10 max_bytes=1000 overflow=reject "
	         "message_ttl_ms=5000 ack_timeout_ms=2000 max_attempts=3 "
	         "dead_letter=cf.dl");
	close(fd);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* Temporary queues                                                       */
/* ===================================================================== */

START_TEST(test_exclusive_lifetime)
{
	struct mqt_server s;
	START(s);
	int a = RAW_OPEN(s);
	int b = RAW_OPEN(s);
	struct mqt_buf buf;
	mqt_buf_init(&buf);

	DO_DECLARE(a, MQ_EXCLUSIVE, 1, "exq", NULL, NULL);
	EXPECT_Q(s, "exq", "exclusive=1 auto_delete=0");
	DO_SEND(a, 2, "exq", 0, "m1");
	DO_SEND(b, 3, "exq", 0, "m2");
	DO_SEND(b, 4, "exq", 0, "m3");
	mqt_enc_get(&buf, 0, 5, "exq", 0);
	EXPECT_REQ_ERR(b, &buf, 5, MQT_E_FORBIDDEN);
	mqt_enc_consume(&buf, 0, 6, "exq", 1);
	EXPECT_REQ_ERR(b, &buf, 6, MQT_E_FORBIDDEN);
	EXPECT_Q(s, "exq", "ready=3 consumers=0 delivered=0");
	GET_BODY(a, 7, "exq", 0, "m1", 1); /* held when a leaves */
	EXPECT_Q(s, "exq", "ready=2 held=1");
	close(a);
	WAIT_NO_QUEUE(s, "exq");
	mqt_buf_free(&buf);
	close(b);
	STOP(s);
}
END_TEST

START_TEST(test_auto_delete_lifetime)
{
	struct mqt_server s;
	START(s);
	int a = RAW_OPEN(s);
	int b = RAW_OPEN(s);
	int c = RAW_OPEN(s);

	/* The last consumer disconnects. */
	DO_DECLARE(a, MQ_AUTO_DELETE, 1, "adq", NULL, NULL);
	EXPECT_Q(s, "adq", "auto_delete=1 exclusive=0 consumers=0");
	DO_CONSUME(b, 0, 2, "adq", 1);
	DO_CONSUME(c, 0, 3, "adq", 1);
	EXPECT_Q(s, "adq", "consumers=2");
	DO_CANCEL(b, 4, 2);
	EXPECT_Q(s, "adq", "consumers=1");
	close(c);
	WAIT_NO_QUEUE(s, "adq");

	/* The last consumer cancels. */
	DO_DECLARE(a, MQ_AUTO_DELETE, 5, "adq2", NULL, NULL);
	DO_CONSUME(b, 0, 6, "adq2", 1);
	EXPECT_Q(s, "adq2", "consumers=1 auto_delete=1");
	DO_CANCEL(b, 7, 6);
	WAIT_NO_QUEUE(s, "adq2");
	close(a);
	close(b);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* Memory limit                                                           */
/* ===================================================================== */

START_TEST(test_memory_limit)
{
	struct mqt_server s;
	START_EXTRA(s, "max_memory = 1M\n");
	int fd = RAW_OPEN(s);
	enum { BODY = 4000, MAXN = 2000 };
	static char body[BODY + 1];
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);

	DO_DECLARE(fd, 0, 1, "mem1", NULL, NULL);
	DO_DECLARE(fd, 0, 2, "mem2", NULL, NULL);
	int n = 0;
	for (;;) {
		ck_assert_msg(n < MAXN, "%d SENDs of %d bytes and no "
		              "MEMORY_LIMIT under max_memory = 1M", n, BODY);
		snprintf(body, sizeof body, "%06d", n);
		memset(body + 6, 'm', BODY - 6);
		mqt_enc_send(&b, 0, 100 + n, "mem1", 0, body, BODY);
		SENDB(fd, &b);
		ck_assert_int_eq(mqt_raw_read(fd, &f, RD_MS), MQT_RD_FRAME);
		ck_assert_msg(f.tag == (uint32_t)(100 + n), "%s",
		              mqt_frame_str(&f));
		if (f.op == MQT_ERROR) {
			ck_assert_msg(mqt_error_code(&f) == MQT_E_MEMORY_LIMIT,
			              "SEND %d: expected OK or MEMORY_LIMIT, got "
			              "%s", n, mqt_frame_str(&f));
			mqt_frame_free(&f);
			break;
		}
		ck_assert_msg(f.op == MQT_OK, "SEND %d: %s", n,
		              mqt_frame_str(&f));
		mqt_frame_free(&f);
		n++;
	}
	/* Bodies alone must fit the limit, and most of it is usable. */
	ck_assert_msg((long)n * BODY <= 1024L * 1024, "%d x %d bytes stored "
	              "under a 1M limit", n, BODY);
	ck_assert_msg((long)n * BODY >= 512L * 1024, "MEMORY_LIMIT after only "
	              "%d x %d bytes under a 1M limit", n, BODY);
	char spec[128];
	snprintf(spec, sizeof spec, "ready=%d sent=%d bytes=%ld", n, n,
	         (long)n * BODY);
	EXPECT_Q(s, "mem1", spec);

	/* Still over it, on any queue; nothing half-stored. */
	memset(body, 'x', BODY);
	mqt_enc_send(&b, 0, 5, "mem1", 0, body, BODY);
	EXPECT_REQ_ERR(fd, &b, 5, MQT_E_MEMORY_LIMIT);
	mqt_enc_send(&b, 0, 6, "mem2", 0, body, BODY);
	EXPECT_REQ_ERR(fd, &b, 6, MQT_E_MEMORY_LIMIT);
	EXPECT_Q(s, "mem1", spec);
	EXPECT_Q(s, "mem2", "ready=0 sent=0 bytes=0");

	/* Consume everything (in order, intact): sending works again. */
	for (int i = 0; i < n; i++) {
		struct mqt_msg m;
		char want[8];
		DO_GET(fd, 7, "mem1", 0, MQ_AUTO_ACK, &f, &m);
		snprintf(want, sizeof want, "%06d", i);
		ck_assert_msg(m.body_len == BODY &&
		                      memcmp(m.body, want, 6) == 0,
		              "message %d: %u bytes starting \"%.6s\"", i,
		              m.body_len, (const char *)m.body);
		mqt_frame_free(&f);
	}
	GET_EMPTY(fd, 8, "mem1", 0);
	EXPECT_Q(s, "mem1", "ready=0 held=0 bytes=0");
	DO_SEND(fd, 9, "mem1", 0, "again");
	DO_SEND(fd, 10, "mem2", 0, "again");
	mqt_enc_send(&b, 0, 11, "mem2", 0, body, BODY);
	SENDB(fd, &b);
	EXPECT(fd, &f, MQT_OK, 11);
	mqt_frame_free(&f);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* Configuration                                                          */
/* ===================================================================== */

START_TEST(test_config_queue_sections)
{
	struct mqt_server s;
	START_CONF(s, NULL,
	           "[defaults]\n"
	           "max_attempts = 5\n"
	           "\n"
	           "[queue cfg.a]\n"
	           "max_length = 2\n"
	           "overflow = reject\n"
	           "ack_timeout = 250ms\n"
	           "dead_letter = cfg.dlx\n"
	           "\n"
	           "[queue cfg.dlx]\n"
	           "max_bytes = 1K\n"
	           "overflow = drop_head\n"
	           "message_ttl = 10s\n");
	/* Created at start-up, before any client. */
	EXPECT_Q(s, "cfg.a", "max_length=2 max_bytes=0 overflow=reject "
	         "message_ttl_ms=0 ack_timeout_ms=250 max_attempts=5 "
	         "dead_letter=cfg.dlx ready=0 exclusive=0 auto_delete=0");
	EXPECT_Q(s, "cfg.dlx", "max_length=0 max_bytes=1024 overflow=drop_head "
	         "message_ttl_ms=10000 ack_timeout_ms=30000 max_attempts=5 "
	         "dead_letter= ready=0");

	int fd = RAW_OPEN(s);
	/* max_length enforced. */
	DO_SEND(fd, 1, "cfg.a", 0, "1");
	DO_SEND(fd, 2, "cfg.a", 0, "2");
	SEND_ERR(fd, 3, "cfg.a", 0, "3", MQT_E_QUEUE_FULL);
	EXPECT_Q(s, "cfg.a", "ready=2 sent=2");
	/* The config's settings take part in DECLARE's CONFLICT rule. */
	struct mq_queue_opts same = { .max_length = 2,
	                              .dead_letter = "cfg.dlx" };
	DO_DECLARE(fd, 0, 4, "cfg.a", &same, NULL);
	struct mq_queue_opts other = { .max_length = 3 };
	DECLARE_ERR(fd, 0, 5, "cfg.a", &other, MQT_E_CONFLICT);
	/* dead_letter: a NACK requeue 0 goes there. */
	uint64_t id = GET_BODY(fd, 6, "cfg.a", 0, "1", 1);
	ck_assert_uint_eq(DO_NACK(fd, 7, 0, &id, 1), 1);
	EXPECT_Q(s, "cfg.dlx", "ready=1");
	EXPECT_Q(s, "cfg.a", "dead_lettered=1");
	/* ack_timeout 250ms: held too long, it comes back. */
	GET_BODY(fd, 8, "cfg.a", 0, "2", 1);
	WAIT_Q(s, "cfg.a", "ready=1 held=0");
	GET_BODY(fd, 9, "cfg.a", MQ_AUTO_ACK, "2", 2);
	/* A queue made by auto-create gets [defaults]. */
	DO_SEND(fd, 10, "cfg.auto", 0, "x");
	EXPECT_Q(s, "cfg.auto", "max_attempts=5 max_length=0 "
	         "ack_timeout_ms=30000 dead_letter=");
	close(fd);
	STOP(s);
}
END_TEST

/* Run argv with stdout and stderr captured; returns the exit status, or
 * -1 (killed after 10 s, or not run). */
static int run_capture(char *const argv[], char *out, size_t cap)
{
	struct mqt_spawn sp = {
		.argv = argv,
		.out = MQT_IO_PIPE, .out_buf = out, .out_cap = cap,
		.err = MQT_IO_STDOUT,
	};
	return mqt_proc_run(&sp, 10000);
}

/* `mqd -t -c FILE` on text: the exit status, output in out. */
static int check_conf(const char *text, char *path, size_t pathcap,
                      char *out, size_t cap)
{
	const char *bin = getenv("MQD_BIN");
	ck_assert_msg(bin && bin[0], "MQD_BIN is not set");
	const char *tmp = getenv("TMPDIR");
	char dir[512];
	snprintf(dir, sizeof dir, "%s/mqd-conf.XXXXXX",
	         tmp && tmp[0] ? tmp : "/tmp");
	ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(path, pathcap, "%s/mqd.conf", dir);
	FILE *f = fopen(path, "w");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	char *argv[] = { (char *)bin, "-t", "-c", path, NULL };
	int rc = run_capture(argv, out, cap);
	unlink(path);
	rmdir(dir);
	return rc;
}

/* out names path and one of the lines (1-based) in lines[0..n). */
static bool names_line(const char *out, const char *path, const int *lines,
                       int n)
{
	for (int i = 0; i < n; i++) {
		char want[700];
		snprintf(want, sizeof want, "%s:%d:", path, lines[i]);
		if (strstr(out, want))
			return true;
	}
	return false;
}

START_TEST(test_config_errors)
{
	char path[600], out[4096];
	int rc;

	/* Sanity: queue sections that are fine pass the check. */
	rc = check_conf("[queue a]\ndead_letter = b\n\n[queue b]\n"
	                "max_length = 10\noverflow = drop_head\n"
	                "message_ttl = 1s\nack_timeout = 2s\nmax_attempts = 3\n"
	                "max_bytes = 1M\n",
	                path, sizeof path, out, sizeof out);
	ck_assert_msg(rc == 0, "mqd -t on a good config exited %d: %s", rc,
	              out);

	/* A dead_letter naming the queue itself. */
	rc = check_conf("[queue a]\ndead_letter = a\n", path, sizeof path, out,
	                sizeof out);
	ck_assert_msg(rc == 1, "mqd -t with [queue a] dead_letter = a exited "
	              "%d, expected 1: %s", rc, out);
	ck_assert_msg(names_line(out, path, (const int[]){ 1, 2 }, 2),
	              "mqd -t did not name %s:LINE: in \"%s\"", path, out);

	/* A bad overflow value. */
	rc = check_conf("[queue a]\noverflow = sideways\n", path, sizeof path,
	                out, sizeof out);
	ck_assert_msg(rc == 1, "overflow = sideways: exited %d: %s", rc, out);
	ck_assert_msg(names_line(out, path, (const int[]){ 2 }, 1),
	              "mqd -t did not name %s:2: in \"%s\"", path, out);

	/* The harness cannot start a broker with it. */
	struct mqt_server s;
	rc = mqt_server_start_conf(&s, NULL, "[queue a]\ndead_letter = a\n");
	if (rc == 0) {
		mqt_server_stop(&s);
		ck_abort_msg("mqd started with [queue a] dead_letter = a");
	}
}
END_TEST

/* From the "Bad input": a dead-letter chain that loops is a
 * config error naming the line. */
START_TEST(test_config_dead_letter_loop)
{
	char path[600], out[4096];
	int rc = check_conf("[queue a]\ndead_letter = b\n\n"
	                    "[queue b]\ndead_letter = a\n",
	                    path, sizeof path, out, sizeof out);
	ck_assert_msg(rc == 1, "mqd -t with a dead-letter loop a -> b -> a "
	              "exited %d, expected 1: %s", rc, out);
	ck_assert_msg(names_line(out, path, (const int[]){ 1, 2, 4, 5 }, 4),
	              "mqd -t did not name %s:LINE: in \"%s\"", path, out);
}
END_TEST

/* ===================================================================== */
/* Memory comes back after a backlog                                      */
/* ===================================================================== */

/*
 * The issue 6 budget for a backlog, measured as the broker's resident set,
 * so the figures are glibc malloc's on Linux:
 *
 *  - 1,000,000 queued 100-byte messages cost at most RSS_BUDGET bytes each
 *    beyond the body, malloc's overhead included.  Measured: 45-49 (a
 *    144-byte chunk each, and the recycled slots of the pipelined SENDs;
 *    doc/PERFORMANCE.md), so the margin is 15-19 bytes a message, about
 *    15 MB over the run: a field or a pointer more per message still
 *    fits, a second allocation per message does not.
 *  - Once they are consumed, RSS comes back to within RSS_SLACK_PCT % of
 *    where it started, or RSS_SLACK_MIN, whichever is more (mqd calls
 *    malloc_trim once the backlog has drained; what glibc keeps in its
 *    arenas and the pages the run touched once stay).  Measured: from
 *    about 3.5 MiB to about 9 MiB, against a limit of 23.5 MiB.
 *
 * It is skipped, saying why, where those figures would not be glibc's on
 * Linux: a sanitizer build, ASan's or TSan's (their shadow memory, ASan's
 * quarantine and TSan's history are in the RSS; the test is compiled with
 * the flags mqd is), another C library, no malloc_trim, or no
 * /proc/PID/statm.  Transparent huge pages set to "always" can round RSS
 * up by 2 MiB per malloc arena (a few bytes a message here); the report
 * names the setting.
 */
#define RSS_N 1000000
#define RSS_BODY 100
#define RSS_BUDGET 64
#define RSS_SLACK_PCT 20
#define RSS_SLACK_MIN (20LL * 1024 * 1024)
#define RSS_RETURN_MS 15000 /* wait-until limit for the memory to return */

/* Which sanitizer the test (and so mqd) is built with, if any. */
#if defined(__SANITIZE_THREAD__)
#define MQT_SANITIZED "ThreadSanitizer, whose shadow memory (several " \
	"times the heap) and race-detection history"
#elif defined(__SANITIZE_ADDRESS__)
#define MQT_SANITIZED "AddressSanitizer, whose shadow memory and quarantine"
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MQT_SANITIZED "ThreadSanitizer, whose shadow memory (several " \
	"times the heap) and race-detection history"
#elif __has_feature(address_sanitizer)
#define MQT_SANITIZED "AddressSanitizer, whose shadow memory and quarantine"
#elif __has_feature(memory_sanitizer)
#define MQT_SANITIZED "MemorySanitizer, whose shadow memory"
#endif
#endif

/* Why the budget cannot be checked here, or NULL. */
static const char *rss_skip_reason(void)
{
#if defined(MQT_SANITIZED)
	return "built with " MQT_SANITIZED " are part of the broker's RSS";
#elif !defined(__GLIBC__)
	return "not glibc: the budget is glibc malloc's overhead";
#elif !defined(HAVE_MALLOC_TRIM)
	return "no malloc_trim: mqd cannot hand freed memory back";
#else
	if (access("/proc/self/statm", R_OK) != 0)
		return "no /proc/PID/statm to read the RSS from";
	return NULL;
#endif
}

/* Resident set size of pid in bytes, or -1. */
static long long rss_bytes(pid_t pid)
{
	char path[64];
	long long size, resident;
	snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	int n = fscanf(f, "%lld %lld", &size, &resident);
	fclose(f);
	return n == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

/* The transparent huge page setting, "[madvise]" etc. ("?" if none). */
static const char *thp_mode(char *buf, size_t cap)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	const char *l, *r;
	char line[128] = "";

	snprintf(buf, cap, "?");
	if (f == NULL)
		return buf;
	if (fgets(line, sizeof line, f) && (l = strchr(line, '[')) &&
	    (r = strchr(l, ']')))
		snprintf(buf, cap, "%.*s", (int)(r - l + 1), l);
	fclose(f);
	return buf;
}

START_TEST(test_memory_returns)
{
	const char *skip = rss_skip_reason();
	if (skip != NULL) {
		printf("test_memory_returns: SKIPPED: %s\n", skip);
		fflush(stdout);
		return;
	}
	struct mqt_server s;
	char thp[32];
	START(s);
	mq_conn *c = mqt_connect(&s);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(mq_declare(c, "backlog", NULL, 0, NULL), 0);
	long long before = rss_bytes(s.pid);
	ck_assert_msg(before > 0, "cannot read /proc/%d/statm", (int)s.pid);

	char body[RSS_BODY];
	memset(body, 'b', sizeof body);
	for (int i = 0; i < RSS_N; i++) {
		int rc = mq_send_quiet(c, "backlog", body, sizeof body, NULL);
		ck_assert_msg(rc == 0, "send %d: %s", i, mq_strerror(rc));
		if ((i + 1) % 10000 == 0) {
			rc = mq_sync(c);
			ck_assert_msg(rc == 0, "sync after %d: %s (%s)", i + 1,
			              mq_strerror(rc),
			              mq_last_error_message(c));
		}
	}
	char spec[64];
	snprintf(spec, sizeof spec, "ready=%d", RSS_N);
	EXPECT_Q(s, "backlog", spec);
	long long peak = rss_bytes(s.pid);
	long long over = (peak - before) / RSS_N - RSS_BODY;
	printf("test_memory_returns: %lld bytes of RSS per queued %d-byte "
	       "message beyond its body; budget %d, margin %lld (THP %s)\n",
	       over, RSS_BODY, RSS_BUDGET, RSS_BUDGET - over,
	       thp_mode(thp, sizeof thp));
	ck_assert_msg(peak - before <= (long long)RSS_N * (RSS_BODY + RSS_BUDGET),
	              "%d queued %d-byte messages took %lld KiB of RSS "
	              "(%lld bytes each beyond the body); the budget is %d",
	              RSS_N, RSS_BODY, (peak - before) / 1024, over,
	              RSS_BUDGET);

	uint32_t tag;
	ck_assert_int_eq(mq_consume(c, "backlog", 0, MQ_AUTO_ACK, &tag), 0);
	for (int i = 0; i < RSS_N; i++) {
		struct mq_message *m = NULL;
		int rc = mq_next(c, 10000, &m);
		if (rc == MQ_ERR_IO && errno == EINTR) {
			i--;
			continue;
		}
		ck_assert_msg(rc == 0, "delivery %d of %d: %s", i, RSS_N,
		              mq_strerror(rc));
		ck_assert_uint_eq(m->body_len, RSS_BODY);
		mq_message_free(m);
	}
	ck_assert_int_eq(mq_cancel(c, tag), 0);
	EXPECT_Q(s, "backlog", "ready=0 held=0 bytes=0");

	long long slack = before * RSS_SLACK_PCT / 100;
	if (slack < RSS_SLACK_MIN)
		slack = RSS_SLACK_MIN;
	int64_t deadline = mqt_now_ms() + RSS_RETURN_MS;
	long long after;
	for (;;) {
		after = rss_bytes(s.pid);
		if (after >= 0 && after <= before + slack)
			break;
		if (mqt_now_ms() >= deadline)
			break;
		sleep_ms(100);
	}
	printf("test_memory_returns: RSS before %lld KiB, with the backlog "
	       "%lld KiB, after %lld KiB (limit %lld KiB)\n", before / 1024,
	       peak / 1024, after / 1024, (before + slack) / 1024);
	fflush(stdout);
	ck_assert_msg(after >= 0 && after <= before + slack,
	              "RSS %lld KiB %d ms after the backlog drained; before "
	              "it %lld KiB, with it %lld KiB; limit %lld KiB",
	              after / 1024, RSS_RETURN_MS, before / 1024, peak / 1024,
	              (before + slack) / 1024);
	mq_close(c);
	STOP(s);
}
END_TEST

/* ===================================================================== */

static Suite *policies_suite(void)
{
	Suite *su = suite_create("policies");
	ADD(su, test_control_queue_counters);
	/* TTL and delay */
	ADD(su, test_ttl_expiry_no_consumer);
	ADD(su, test_ttl_expiry_with_consumer);
	ADD(su, test_ttl_expiry_dead_letter);
	ADD(su, test_ttl_held);
	ADD(su, test_delay);
	ADD(su, test_delay_order);
	/* priority */
	ADD(su, test_priority_redelivered);
	/* limits */
	ADD(su, test_overflow_reject_length);
	ADD(su, test_overflow_reject_bytes);
	ADD(su, test_overflow_drop_head_length);
	ADD(su, test_overflow_drop_head_bytes);
	/* ack timeout */
	ADD(su, test_ack_timeout);
	ADD(su, test_ack_timeout_head);
	ADD(su, test_ack_timeout_other_consumer);
	/* dead-lettering */
	ADD(su, test_nack_dead_letter);
	ADD(su, test_max_attempts_dead_letter);
	ADD(su, test_dead_letter_none_counts);
	ADD(su, test_nack_delay);
	/* bad input */
	ADD(su, test_bad_arguments);
	ADD(su, test_declare_dead_letter_loop);
	ADD(su, test_declare_conflict_settings);
	/* temporary queues */
	ADD(su, test_exclusive_lifetime);
	ADD(su, test_auto_delete_lifetime);
	/* memory limit */
	ADD(su, test_memory_limit);
	/* configuration */
	ADD(su, test_config_queue_sections);
	ADD(su, test_config_errors);
	ADD(su, test_config_dead_letter_loop);
	/* the slow one */
	ADD_T(su, test_memory_returns, 120);
	return su;
}

int main(void)
{
	return mqt_run_suite(policies_suite());
}
