#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * Integration tests for publish/subscribe, bindings and request/reply
 * (issue 5; PROTOCOL.md 3, 4.1, 4.2 and 7): the wildcard matching table over
 * the wire, the receivers count, bound queues with their policies, BIND /
 * UNBIND / UNSUBSCRIBE / CANCEL, fan-out to 50 subscribers on every worker,
 * a stalled subscriber that must not slow the others nor grow the broker's
 * memory (also while a GET waits on its connection), request/reply through
 * `mq serve` and through libmq, bad topics and patterns, subscribers that
 * disconnect mid-fan-out, and the mq CLI's publish / subscribe / bind /
 * unbind / request.
 *
 * Each test starts the real mqd (MQD_BIN) with a config of its own and stops
 * it with SIGTERM, expecting exit status 0 (under AddressSanitizer a leak
 * makes that fail).
 *
 * Negatives ("this subscriber gets nothing") are proved without sleeps: the
 * broker shards topics by their first token, so a second PUBLISH from the
 * same connection to a sentinel topic with the same first token is matched
 * by the same worker after the first, and its DELIVER to a sentinel
 * subscription on the subscriber's connection follows anything the first
 * produced for that connection.  Waits are reads with deadlines and
 * wait-until loops.
 */

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../lib/harness.h"
#include "../lib/expect.h"
#include "../lib/proc.h"

/* Wire ops the harness does not name (PROTOCOL.md 3, 4.1, 4.2). */
enum {
	OP_BIND = 0x13, OP_UNBIND = 0x14, OP_PUBLISH = 0x21,
	OP_SUBSCRIBE = 0x40, OP_UNSUBSCRIBE = 0x41,
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void read_at(int line, int fd, struct mqt_frame *f, const char *what)
{
	int rc = mqt_raw_read(fd, f, RD_MS);
	ck_assert_msg(rc == MQT_RD_FRAME, "line %d: expected %s, got %s", line,
	              what, rd_str(rc));
}

/* ---- frames the harness has no encoder for ------------------------------------ */

/* PUBLISH; headers NULL: none (else a raw headers field, count included). */
static void enc_publish(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                        const char *topic, uint32_t ttl_ms, uint32_t delay_ms,
                        uint8_t priority, const struct mqt_buf *headers,
                        const void *body, size_t len)
{
	size_t st = mqt_frame_begin(b, OP_PUBLISH, flags, tag);
	mqt_put_name(b, topic);
	mqt_put_u32(b, ttl_ms);
	mqt_put_u32(b, delay_ms);
	mqt_put_u8(b, priority);
	if (headers)
		mqt_put_bytes(b, headers->p, headers->len);
	else
		mqt_put_u16(b, 0);
	mqt_put_blob(b, body, len);
	mqt_frame_end(b, st);
}

static void enc_subscribe(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                          const char *pattern)
{
	size_t st = mqt_frame_begin(b, OP_SUBSCRIBE, flags, tag);
	mqt_put_name(b, pattern);
	mqt_frame_end(b, st);
}

static void enc_unsubscribe(struct mqt_buf *b, uint32_t tag, uint32_t which)
{
	size_t st = mqt_frame_begin(b, OP_UNSUBSCRIBE, 0, tag);
	mqt_put_u32(b, which);
	mqt_frame_end(b, st);
}

/* BIND or UNBIND */
static void enc_bind(struct mqt_buf *b, uint8_t op, uint32_t tag,
                     const char *queue, const char *pattern)
{
	size_t st = mqt_frame_begin(b, op, 0, tag);
	mqt_put_name(b, queue);
	mqt_put_name(b, pattern);
	mqt_frame_end(b, st);
}

/* ---- request helpers ------------------------------------------------------------ */

/* PUBLISH with options and expect OK with receivers. */
static uint32_t publish_opts_at(int line, int fd, uint32_t tag,
                                const char *topic, uint32_t ttl_ms,
                                uint32_t delay_ms, uint8_t prio,
                                const struct mqt_buf *headers,
                                const char *body)
{
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);
	enc_publish(&b, 0, tag, topic, ttl_ms, delay_ms, prio, headers, body,
	            strlen(body));
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_at(line, fd, &f, MQT_OK, tag);
	uint32_t n = ok_u32_at(line, &f);
	mqt_frame_free(&f);
	return n;
}
#define PUBLISH_OPTS(fd, tag, topic, ttl, delay, prio, hdrs, body)            \
	publish_opts_at(__LINE__, fd, tag, topic, ttl, delay, prio, hdrs, body)
#define PUBLISH(fd, tag, topic, body)                                         \
	publish_opts_at(__LINE__, fd, tag, topic, 0, 0, 0, NULL, body)

/* PUBLISH and expect exactly `want` receivers. */
#define PUBLISH_N(fd, tag, topic, body, want)                                 \
	do {                                                                  \
		uint32_t got_ = PUBLISH(fd, tag, topic, body);                \
		ck_assert_msg(got_ == (uint32_t)(want), "line %d: PUBLISH %s "\
		              "answered receivers %u, expected %u", __LINE__, \
		              topic, got_, (unsigned)(want));                 \
	} while (0)

/* PUBLISH and expect ERROR code. */
static void publish_err_at(int line, int fd, uint8_t flags, uint32_t tag,
                           const char *topic, uint8_t prio, int code)
{
	struct mqt_buf b;
	mqt_buf_init(&b);
	enc_publish(&b, flags, tag, topic, 0, 0, prio, NULL, "x", 1);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_err_at(line, fd, tag, code);
}
#define PUBLISH_ERR(fd, flags, tag, topic, prio, code)                        \
	publish_err_at(__LINE__, fd, flags, tag, topic, prio, code)

static void subscribe_at(int line, int fd, uint32_t tag, const char *pattern)
{
	struct mqt_buf b;
	mqt_buf_init(&b);
	enc_subscribe(&b, 0, tag, pattern);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_ok_empty_at(line, fd, tag);
}
#define SUBSCRIBE(fd, tag, pattern) subscribe_at(__LINE__, fd, tag, pattern)

static void subscribe_err_at(int line, int fd, uint8_t flags, uint32_t tag,
                             const char *pattern, int code)
{
	struct mqt_buf b;
	mqt_buf_init(&b);
	enc_subscribe(&b, flags, tag, pattern);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_err_at(line, fd, tag, code);
}
#define SUBSCRIBE_ERR(fd, flags, tag, pattern, code)                          \
	subscribe_err_at(__LINE__, fd, flags, tag, pattern, code)

/* UNSUBSCRIBE which; code 0: expect an empty OK, else that ERROR. */
static void unsubscribe_at(int line, int fd, uint32_t tag, uint32_t which,
                           int code)
{
	struct mqt_buf b;
	mqt_buf_init(&b);
	enc_unsubscribe(&b, tag, which);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	if (code == 0)
		expect_ok_empty_at(line, fd, tag);
	else
		expect_err_at(line, fd, tag, code);
}
#define UNSUBSCRIBE(fd, tag, which) unsubscribe_at(__LINE__, fd, tag, which, 0)
#define UNSUBSCRIBE_ERR(fd, tag, which, code)                                 \
	unsubscribe_at(__LINE__, fd, tag, which, code)

static void cancel_at(int line, int fd, uint32_t tag, uint32_t which,
                      int code)
{
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_cancel(&b, tag, which);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	if (code == 0)
		expect_ok_empty_at(line, fd, tag);
	else
		expect_err_at(line, fd, tag, code);
}
#define CANCEL(fd, tag, which) cancel_at(__LINE__, fd, tag, which, 0)
#define CANCEL_ERR(fd, tag, which, code) cancel_at(__LINE__, fd, tag, which, code)

/* BIND / UNBIND; code 0: expect an empty OK, else that ERROR. */
static void bind_at(int line, int fd, uint8_t op, uint32_t tag,
                    const char *queue, const char *pattern, int code)
{
	struct mqt_buf b;
	mqt_buf_init(&b);
	enc_bind(&b, op, tag, queue, pattern);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	if (code == 0)
		expect_ok_empty_at(line, fd, tag);
	else
		expect_err_at(line, fd, tag, code);
}
#define BIND(fd, tag, q, p) bind_at(__LINE__, fd, OP_BIND, tag, q, p, 0)
#define BIND_ERR(fd, tag, q, p, code) bind_at(__LINE__, fd, OP_BIND, tag, q, p, code)
#define UNBIND(fd, tag, q, p) bind_at(__LINE__, fd, OP_UNBIND, tag, q, p, 0)
#define UNBIND_ERR(fd, tag, q, p, code)                                       \
	bind_at(__LINE__, fd, OP_UNBIND, tag, q, p, code)

static void declare_at(int line, int fd, uint32_t tag, const char *q,
                       const struct mq_queue_opts *o)
{
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);
	mqt_enc_declare(&b, 0, tag, q, o);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_at(line, fd, &f, MQT_DECLARED, tag);
	mqt_frame_free(&f);
}
#define DECLARE(fd, tag, q, o) declare_at(__LINE__, fd, tag, q, o)

static void delete_at(int line, int fd, uint32_t tag, const char *q)
{
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_queue_op(&b, MQT_DELETE, 0, tag, q);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_ok_empty_at(line, fd, tag);
}
#define DELETE(fd, tag, q) delete_at(__LINE__, fd, tag, q)

/* GET (auto-ack, answer at once) and expect MESSAGE; f must be freed. */
#define GET(fd, tag, q, f, m) do_get_at(__LINE__, fd, tag, q, 0, MQ_AUTO_ACK, f, m)

/* GET and expect this body and priority; the source must be the queue. */
static void get_copy_at(int line, int fd, uint32_t tag, const char *q,
                        const char *body, uint8_t prio)
{
	struct mqt_frame f;
	struct mqt_msg m;
	do_get_at(line, fd, tag, q, 0, MQ_AUTO_ACK, &f, &m);
	check_body_at(line, &m, body);
	ck_assert_msg(m.priority == prio, "line %d: expected priority %u, got "
	              "%u", line, prio, m.priority);
	ck_assert_msg(strcmp(m.source, q) == 0, "line %d: a queue copy's "
	              "source is \"%s\", expected the queue \"%s\"", line,
	              m.source, q);
	ck_assert_msg(m.attempts == 1, "line %d: attempts %u", line,
	              m.attempts);
	mqt_frame_free(&f);
}
#define GET_COPY(fd, tag, q, body, prio) get_copy_at(__LINE__, fd, tag, q, body, prio)

static void get_no_copy_at(int line, int fd, uint32_t tag, const char *q)
{
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);
	mqt_enc_get(&b, MQ_AUTO_ACK, tag, q, 0);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_at(line, fd, &f, MQT_EMPTY, tag);
	mqt_frame_free(&f);
}
#define GET_NO_COPY(fd, tag, q) get_no_copy_at(__LINE__, fd, tag, q)

/* Expect a DELIVER with tag from `topic` with this body. */
static void expect_pub_deliver_at(int line, int fd, uint32_t tag,
                              const char *topic, const char *body)
{
	struct mqt_frame f;
	struct mqt_msg m;
	expect_at(line, fd, &f, MQT_DELIVER, tag);
	parse_msg_at(line, &f, &m);
	ck_assert_msg(strcmp(m.source, topic) == 0, "line %d: DELIVER source "
	              "\"%s\", expected the topic \"%s\"", line, m.source,
	              topic);
	check_body_at(line, &m, body);
	ck_assert_msg(m.attempts == 1 && m.id != 0, "line %d: DELIVER with "
	              "attempts %u id %llu", line, m.attempts,
	              (unsigned long long)m.id);
	mqt_frame_free(&f);
}
#define EXPECT_PUB_DELIVER(fd, tag, topic, body)                                  \
	expect_pub_deliver_at(__LINE__, fd, tag, topic, body)

/* HELLO on a fresh socket; the connection id from WELCOME. */
static int raw_open_id_at(int line, const struct mqt_server *s, uint64_t *id)
{
	struct mqt_buf b;
	struct mqt_frame f;
	struct mqt_rd r;
	int fd = mqt_raw_connect(s);
	ck_assert_msg(fd >= 0, "line %d: connect failed", line);
	mqt_buf_init(&b);
	mqt_enc_hello(&b, 1, 1, "pubsub-raw");
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_at(line, fd, &f, MQT_WELCOME, 1);
	mqt_rd_init(&r, &f);
	(void)mqt_get_u8(&r);
	uint16_t n = mqt_get_u16(&r);
	(void)mqt_get_bytes(&r, n);
	(void)mqt_get_u32(&r);
	*id = mqt_get_u64(&r);
	ck_assert_msg(mqt_rd_done(&r), "line %d: WELCOME does not parse",
	              line);
	mqt_frame_free(&f);
	return fd;
}
#define RAW_OPEN_ID(s, id) raw_open_id_at(__LINE__, &(s), id)

#define MQ_OK_(expr)                                                          \
	do {                                                                  \
		int rc_ = (expr);                                             \
		ck_assert_msg(rc_ == MQ_OK, "line %d: %s: %s", __LINE__,      \
		              #expr, mq_strerror(rc_));                       \
	} while (0)

/* ---- the control socket ------------------------------------------------------- */

/* Run a control command, expect {"ok":true,...}; the parsed reply. */
static json_t *ctl_ok_at(int line, const struct mqt_server *s,
                         const char *cmd)
{
	static char raw[1 << 20];
	json_error_t je;
	ck_assert_msg(mqt_control(s, cmd, raw, sizeof raw) == 0,
	              "line %d: no reply from the control socket to \"%s\"",
	              line, cmd);
	json_t *j = json_loads(raw, 0, &je);
	ck_assert_msg(j && json_is_object(j), "line %d: control reply to "
	              "\"%s\" is not a JSON object: %s", line, cmd, raw);
	ck_assert_msg(json_is_true(json_object_get(j, "ok")), "line %d: "
	              "control \"%s\" failed: %s", line, cmd, raw);
	return j;
}
#define CTL_OK(s, cmd) ctl_ok_at(__LINE__, &(s), cmd)

/* An integer field of `queue NAME`. */
static int64_t qfield_at(int line, const struct mqt_server *s,
                         const char *queue, const char *field)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "queue %s", queue);
	json_t *j = ctl_ok_at(line, s, cmd);
	json_t *v = json_object_get(json_object_get(j, "queue"), field);
	ck_assert_msg(json_is_integer(v), "line %d: no integer \"%s\" in "
	              "queue %s", line, field, queue);
	int64_t n = json_integer_value(v);
	json_decref(j);
	return n;
}
#define QFIELD(s, q, field) qfield_at(__LINE__, &(s), q, field)
#define QFIELD_EQ(s, q, field, want)                                          \
	do {                                                                  \
		int64_t v_ = QFIELD(s, q, field);                             \
		ck_assert_msg(v_ == (int64_t)(want), "line %d: queue %s: %s " \
		              "is %lld, expected %lld", __LINE__, q, field,   \
		              (long long)v_, (long long)(want));              \
	} while (0)

/* Wait until `queue Q` shows field == want. */
static void wait_qfield_at(int line, const struct mqt_server *s,
                           const char *q, const char *field, int64_t want)
{
	int64_t end = mqt_now_ms() + GONE_MS, v;
	while ((v = qfield_at(line, s, q, field)) != want) {
		ck_assert_msg(mqt_now_ms() < end, "line %d: queue %s: %s stayed "
		              "%lld, expected %lld", line, q, field,
		              (long long)v, (long long)want);
		sleep_ms(5);
	}
}
#define WAIT_QFIELD(s, q, field, want) wait_qfield_at(__LINE__, &(s), q, field, want)

/* The `connections` row of connection id (a new reference), or fail. */
static json_t *conn_row_at(int line, const struct mqt_server *s, uint64_t id)
{
	json_t *j = ctl_ok_at(line, s, "connections"), *row;
	size_t i;
	json_array_foreach(json_object_get(j, "connections"), i, row) {
		if ((uint64_t)json_integer_value(json_object_get(row, "id")) ==
		    id) {
			json_incref(row);
			json_decref(j);
			return row;
		}
	}
	ck_assert_msg(0, "line %d: connection %llu is not in \"connections\"",
	              line, (unsigned long long)id);
	return NULL;
}

static int64_t row_int_at(int line, const json_t *row, const char *field)
{
	json_t *v = json_object_get(row, field);
	ck_assert_msg(json_is_integer(v), "line %d: no integer \"%s\" in a "
	              "connections row", line, field);
	return json_integer_value(v);
}

/* ---- child processes (mq subscribe, mq serve) ------------------------------------ */

/* Start $MQ_BIN argv[1..] with MQ_SERVER, stdin /dev/null, stdout into
 * out_path (truncated); stderr is ours.  lib/proc.h kills it if the test
 * ends first. */
static void spawn_cli_at(int line, struct mqt_proc *kid,
                         const struct mqt_server *s, char *const argv[],
                         const char *out_path)
{
	const char *bin = getenv("MQ_BIN");
	size_t argc = 0;

	ck_assert_msg(bin && bin[0], "line %d: MQ_BIN is not set", line);
	while (argv[argc])
		argc++;
	char **av = calloc(argc + 1, sizeof *av);
	ck_assert_ptr_nonnull(av);
	av[0] = (char *)bin;
	for (size_t i = 1; i < argc; i++)
		av[i] = argv[i];
	char server[sizeof s->addr + 16];
	snprintf(server, sizeof server, "MQ_SERVER=%s", s->addr);
	const char *env[] = { server, NULL };
	struct mqt_spawn sp = {
		.argv = av, .env = env,
		.out = MQT_IO_FILE, .out_path = out_path,
		.err = MQT_IO_INHERIT,
	};
	int rc = mqt_proc_start(kid, &sp);
	free(av);
	ck_assert_msg(rc == 0, "line %d: could not start %s", line, bin);
}
#define SPAWN_CLI(kid, s, argv, out) spawn_cli_at(__LINE__, kid, &(s), argv, out)

/* Wait up to ms for the child to exit: its status (128 + signal if one
 * ended it), or -1 after killing it when it did not. */
static int wait_kid(struct mqt_proc *kid, int ms)
{
	return mqt_proc_stop(kid, 0, ms);
}

static void read_file(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;
	if (f) {
		n = fread(out, 1, cap - 1, f);
		fclose(f);
	}
	out[n] = '\0';
}

/* ---- a reference matcher (PROTOCOL.md 1), for the sentinels --------------------- */

static bool ref_match(const char *pat, const char *topic)
{
	for (;;) {
		const char *pd = strchr(pat, '.'), *td = strchr(topic, '.');
		size_t pl = pd ? (size_t)(pd - pat) : strlen(pat);
		size_t tl = td ? (size_t)(td - topic) : strlen(topic);
		if (pl == 1 && pat[0] == '>')
			return true; /* the topic has a token left here */
		if (!(pl == 1 && pat[0] == '*') &&
		    (pl != tl || memcmp(pat, topic, pl) != 0))
			return false;
		if (!pd && !td)
			return true;
		if (!pd || !td)
			return false;
		pat = pd + 1;
		topic = td + 1;
	}
}

/* ================================================================== */

static const struct {
	const char *pattern, *topic;
	bool match;
} match_table[] = {
	/* exact */
	{ "a", "a", true },
	{ "a.b.c", "a.b.c", true },
	{ "a.b.c", "a.b", false },
	{ "a.b", "a.b.c", false },
	{ "a.b.c", "a.b.d", false },
	{ "a.b", "a.bc", false },
	{ "ab", "a", false },
	{ "a", "ab", false },
	{ "x-1_y:z.Q9", "x-1_y:z.Q9", true },
	{ "orders.*.paid", "orders.eu.paid", true },
	/* `*` in each position */
	{ "*.b.c", "a.b.c", true },
	{ "a.*.c", "a.b.c", true },
	{ "a.b.*", "a.b.c", true },
	{ "*.b.c", "a.x.c", false },
	{ "a.*.c", "a.b.x", false },
	{ "a.b.*", "a.x.c", false },
	{ "a.*.c", "a.b.c.d", false },
	{ "a.*.c", "a.c", false },
	{ "a.*", "a", false },
	{ "a.*", "a.b", true },
	{ "*", "a", true },
	{ "*", "a.b", false },
	{ "*.*", "a.b", true },
	{ "*.*", "a", false },
	{ "*.b", "a.b", true },
	{ "*.b", "a.b.c", false },
	/* `>` */
	{ "a.>", "a", false },
	{ "a.>", "a.b", true },
	{ "a.>", "a.b.c", true },
	{ "a.>", "b.c", false },
	{ "a.>", "ab.c", false },
	{ ">", "a", true },
	{ ">", "a.b.c.d", true },
	{ ">", "zz.top", true },
	{ "*.>", "a", false },
	{ "*.>", "a.b", true },
	{ "a.*.>", "a.b", false },
	{ "a.*.>", "a.b.c", true },
	{ "a.b.>", "a.b.c.d.e", true },
	{ "a.b.>", "a.c.d", false },
};

/* Each (pattern, topic) pair: SUBSCRIBE then PUBLISH; the OK counts the
 * subscription exactly when it matches, and a DELIVER comes exactly then. */
START_TEST(test_wildcard_table)
{
	struct mqt_server s;
	START(s);
	int pub = RAW_OPEN(s), sub = RAW_OPEN(s);
	uint32_t ptag = 1;

	for (size_t i = 0; i < NELEM(match_table); i++) {
		const char *pat = match_table[i].pattern;
		const char *topic = match_table[i].topic;
		bool want = match_table[i].match;
		uint32_t tp = 1000 + 4 * (uint32_t)i, ts = tp + 1;
		char sentinel[300], body[64], sbody[64];
		const char *dot = strchr(topic, '.');
		int first = dot ? (int)(dot - topic) : (int)strlen(topic);

		ck_assert_msg(ref_match(pat, topic) == want, "table row %zu "
		              "disagrees with the reference matcher", i);
		/* Same first token: the same shard matches it, after. */
		snprintf(sentinel, sizeof sentinel, "%.*s.zz9.sentinel", first,
		         topic);
		snprintf(body, sizeof body, "row-%zu", i);
		snprintf(sbody, sizeof sbody, "sentinel-%zu", i);
		bool pat_sent = ref_match(pat, sentinel);

		SUBSCRIBE(sub, tp, pat);
		SUBSCRIBE(sub, ts, sentinel);
		uint32_t n = PUBLISH(pub, ptag++, topic, body);
		ck_assert_msg(n == (want ? 1u : 0u), "pattern \"%s\" topic \"%s\":"
		              " receivers %u, expected %u", pat, topic, n,
		              want ? 1u : 0u);
		n = PUBLISH(pub, ptag++, sentinel, sbody);
		ck_assert_msg(n == (pat_sent ? 2u : 1u), "pattern \"%s\" sentinel"
		              " \"%s\": receivers %u, expected %u", pat, sentinel,
		              n, pat_sent ? 2u : 1u);

		/* Everything for this row, up to both sentinel copies. */
		int got_topic = 0, got_psent = 0, got_sent = 0;
		while (got_sent == 0 || got_psent < (pat_sent ? 1 : 0)) {
			struct mqt_frame f;
			struct mqt_msg m;
			read_at(__LINE__, sub, &f, "a DELIVER");
			ck_assert_msg(f.op == MQT_DELIVER, "pattern \"%s\" topic "
			              "\"%s\": got %s", pat, topic,
			              mqt_frame_str(&f));
			parse_msg_at(__LINE__, &f, &m);
			if (f.tag == tp && strcmp(m.source, topic) == 0) {
				CHECK_BODY(&m, body);
				ck_assert_msg(m.attempts == 1 && m.priority == 0 &&
				              m.nheaders == 0 && m.id != 0,
				              "row %zu: DELIVER fields", i);
				got_topic++;
			} else if (f.tag == tp && strcmp(m.source, sentinel) == 0) {
				CHECK_BODY(&m, sbody);
				got_psent++;
			} else if (f.tag == ts &&
			           strcmp(m.source, sentinel) == 0) {
				CHECK_BODY(&m, sbody);
				got_sent++;
			} else {
				ck_assert_msg(0, "pattern \"%s\" topic \"%s\": "
				              "unexpected DELIVER tag %u source %s",
				              pat, topic, f.tag, m.source);
			}
			mqt_frame_free(&f);
		}
		ck_assert_msg(got_topic == (want ? 1 : 0), "pattern \"%s\" topic "
		              "\"%s\": %d DELIVER(s), expected %d (the sentinel "
		              "came after)", pat, topic, got_topic, want ? 1 : 0);
		ck_assert_int_eq(got_sent, 1);
		ck_assert_int_eq(got_psent, pat_sent ? 1 : 0);
		/* Nothing else is pending: the next frame is the OK. */
		UNSUBSCRIBE(sub, tp + 2, tp);
		UNSUBSCRIBE(sub, tp + 3, ts);
	}
	/* All gone: nobody receives anything now. */
	for (size_t i = 0; i < NELEM(match_table); i++)
		PUBLISH_N(pub, ptag++, match_table[i].topic, "late", 0);
	PING(sub, 7);
	close(pub);
	close(sub);
	STOP(s);
}
END_TEST

/* Two DELIVERs of one message, for tags 1 and 2 (in either order: the
 * order among one connection's subscriptions is not specified). */
static void expect_two_tags_at(int line, int fd, const char *topic,
                               const char *body)
{
	bool t1 = false, t2 = false;
	for (int k = 0; k < 2; k++) {
		struct mqt_frame f;
		struct mqt_msg m;
		read_at(line, fd, &f, "a DELIVER");
		ck_assert_msg(f.op == MQT_DELIVER, "line %d: got %s", line,
		              mqt_frame_str(&f));
		parse_msg_at(line, &f, &m);
		check_body_at(line, &m, body);
		ck_assert_msg(strcmp(m.source, topic) == 0, "line %d: source %s",
		              line, m.source);
		if (f.tag == 1 && !t1)
			t1 = true;
		else if (f.tag == 2 && !t2)
			t2 = true;
		else
			ck_assert_msg(0, "line %d: DELIVER tag %u (again?)", line,
			              f.tag);
		mqt_frame_free(&f);
	}
}
#define expect_two_tags(fd, topic, body) expect_two_tags_at(__LINE__, fd, topic, body)

/* receivers counts live subscriptions and bound queues; nobody: 0. */
START_TEST(test_receivers_count)
{
	struct mqt_server s;
	START(s);
	int pub = RAW_OPEN(s), s1 = RAW_OPEN(s), s2 = RAW_OPEN(s);
	int adm = RAW_OPEN(s);

	PUBLISH_N(pub, 1, "rc.x", "before", 0);
	PUBLISH_N(pub, 2, "nobody.at.all", "x", 0);

	SUBSCRIBE(s1, 1, "rc.x");
	SUBSCRIBE(s2, 1, "rc.*");
	DECLARE(adm, 1, "rcq", NULL);
	BIND(adm, 2, "rcq", "rc.>");

	PUBLISH_N(pub, 3, "rc.x", "m1", 3);
	EXPECT_PUB_DELIVER(s1, 1, "rc.x", "m1");
	EXPECT_PUB_DELIVER(s2, 1, "rc.x", "m1");
	GET_COPY(adm, 3, "rcq", "m1", 0);
	GET_NO_COPY(adm, 4, "rcq");

	PUBLISH_N(pub, 4, "rc.y", "m2", 2);     /* rc.* and the queue */
	PUBLISH_N(pub, 5, "rc.y.z", "m3", 1);   /* the queue only */
	PUBLISH_N(pub, 6, "rc", "m4", 0);       /* rc.> needs a token more */
	PUBLISH_N(pub, 7, "nobody.at.all", "x", 0);
	EXPECT_PUB_DELIVER(s2, 1, "rc.y", "m2");
	GET_COPY(adm, 5, "rcq", "m2", 0);
	GET_COPY(adm, 6, "rcq", "m3", 0);
	GET_NO_COPY(adm, 7, "rcq");

	/* Two matching subscriptions on one connection: two receivers, two
	 * DELIVERs, one per tag. */
	SUBSCRIBE(s1, 2, "rc.>");
	PUBLISH_N(pub, 8, "rc.x", "m5", 4);
	expect_two_tags(s1, "rc.x", "m5");
	EXPECT_PUB_DELIVER(s2, 1, "rc.x", "m5");
	GET_COPY(adm, 9, "rcq", "m5", 0);

	/* A queue bound by two matching patterns: one copy, counted once. */
	BIND(adm, 10, "rcq", "rc.x");
	BIND(adm, 11, "rcq", "rc.x"); /* bound already */
	PUBLISH_N(pub, 9, "rc.x", "m6", 4);
	GET_COPY(adm, 12, "rcq", "m6", 0);
	GET_NO_COPY(adm, 13, "rcq");
	expect_two_tags(s1, "rc.x", "m6");
	EXPECT_PUB_DELIVER(s2, 1, "rc.x", "m6");
	UNSUBSCRIBE(s1, 3, 2);

	/* Eight more bound queues, owned by several workers (the copies go
	 * to their owners and the OK waits for them). */
	{
		char q[32];
		json_t *owners = json_object();
		for (int i = 0; i < 8; i++) {
			snprintf(q, sizeof q, "rcq.%d", i);
			DECLARE(adm, 20 + (uint32_t)i, q, NULL);
			BIND(adm, 40 + (uint32_t)i, q, i % 2 ? "*.x" : ">");
			char own[32];
			snprintf(own, sizeof own, "%lld",
			         (long long)QFIELD(s, q, "owner"));
			json_object_set_new(owners, own, json_true());
		}
		ck_assert_msg(json_object_size(owners) >= 2, "the 8 queues "
		              "all live on one worker: the test needs names "
		              "that spread");
		json_decref(owners);
		PUBLISH_N(pub, 10, "rc.x", "m7", 3 + 8);
		PUBLISH_N(pub, 11, "other.x", "m8", 8);  /* > and *.x only */
		PUBLISH_N(pub, 12, "other.y", "m9", 4);  /* > only */
		for (int i = 0; i < 8; i++) {
			snprintf(q, sizeof q, "rcq.%d", i);
			GET_COPY(adm, 60 + 3 * (uint32_t)i, q, "m7", 0);
			GET_COPY(adm, 61 + 3 * (uint32_t)i, q, "m8", 0);
			if (i % 2 == 0)
				GET_COPY(adm, 62 + 3 * (uint32_t)i, q, "m9", 0);
			QFIELD_EQ(s, q, "ready", 0);
		}
	}
	EXPECT_PUB_DELIVER(s1, 1, "rc.x", "m7");
	EXPECT_PUB_DELIVER(s2, 1, "rc.x", "m7");
	GET_COPY(adm, 99, "rcq", "m7", 0);
	close(pub);
	close(s1);
	close(s2);
	close(adm);
	STOP(s);
}
END_TEST

/* A bound queue's copies obey its policies and the PUBLISH's ttl, delay
 * and priority; a queue that refuses its copy is not counted. */
START_TEST(test_bound_queue_policies)
{
	struct mqt_server s;
	START(s);
	int pub = RAW_OPEN(s), sub = RAW_OPEN(s), adm = RAW_OPEN(s);
	struct mq_queue_opts o;

	/* max_length 2, overflow reject. */
	memset(&o, 0, sizeof o);
	o.max_length = 2;
	o.overflow = 1;
	DECLARE(adm, 1, "bq.len", &o);
	BIND(adm, 2, "bq.len", "pol.len");
	SUBSCRIBE(sub, 1, "pol.len");
	PUBLISH_N(pub, 1, "pol.len", "l1", 2);
	PUBLISH_N(pub, 2, "pol.len", "l2", 2);
	PUBLISH_N(pub, 3, "pol.len", "l3", 1); /* full: not counted, no error */
	PUBLISH_N(pub, 4, "pol.len", "l4", 1);
	QFIELD_EQ(s, "bq.len", "ready", 2);
	EXPECT_PUB_DELIVER(sub, 1, "pol.len", "l1");
	EXPECT_PUB_DELIVER(sub, 1, "pol.len", "l2");
	EXPECT_PUB_DELIVER(sub, 1, "pol.len", "l3");
	EXPECT_PUB_DELIVER(sub, 1, "pol.len", "l4");
	GET_COPY(adm, 3, "bq.len", "l1", 0);
	PUBLISH_N(pub, 5, "pol.len", "l5", 2); /* room again */
	GET_COPY(adm, 4, "bq.len", "l2", 0);
	GET_COPY(adm, 5, "bq.len", "l5", 0);
	GET_NO_COPY(adm, 6, "bq.len");
	EXPECT_PUB_DELIVER(sub, 1, "pol.len", "l5");

	/* max_length 1, overflow drop-oldest: the copy is taken. */
	memset(&o, 0, sizeof o);
	o.max_length = 1;
	o.overflow = 2;
	DECLARE(adm, 7, "bq.drop", &o);
	BIND(adm, 8, "bq.drop", "pol.drop");
	PUBLISH_N(pub, 6, "pol.drop", "d1", 1);
	PUBLISH_N(pub, 7, "pol.drop", "d2", 1);
	QFIELD_EQ(s, "bq.drop", "dropped", 1);
	GET_COPY(adm, 9, "bq.drop", "d2", 0);
	GET_NO_COPY(adm, 10, "bq.drop");

	/* max_bytes 4, reject: a 3-byte body fits, the next does not. */
	memset(&o, 0, sizeof o);
	o.max_bytes = 4;
	o.overflow = 1;
	DECLARE(adm, 11, "bq.bytes", &o);
	BIND(adm, 12, "bq.bytes", "pol.bytes");
	PUBLISH_N(pub, 8, "pol.bytes", "b01", 1);
	PUBLISH_N(pub, 9, "pol.bytes", "b02", 0);
	QFIELD_EQ(s, "bq.bytes", "ready", 1);

	/* Priority: higher first, and the copy keeps it. */
	DECLARE(adm, 13, "bq.prio", NULL);
	BIND(adm, 14, "bq.prio", "pol.prio");
	SUBSCRIBE(sub, 2, "pol.prio");
	ck_assert_uint_eq(PUBLISH_OPTS(pub, 10, "pol.prio", 0, 0, 1, NULL,
	                               "low"), 2);
	ck_assert_uint_eq(PUBLISH_OPTS(pub, 11, "pol.prio", 0, 0, 8, NULL,
	                               "high"), 2);
	ck_assert_uint_eq(PUBLISH_OPTS(pub, 12, "pol.prio", 0, 0, 5, NULL,
	                               "mid"), 2);
	GET_COPY(adm, 15, "bq.prio", "high", 8);
	GET_COPY(adm, 16, "bq.prio", "mid", 5);
	GET_COPY(adm, 17, "bq.prio", "low", 1);
	{
		/* The live copies keep it too, in publish order. */
		static const struct { const char *b; uint8_t p; } want[] = {
			{ "low", 1 }, { "high", 8 }, { "mid", 5 },
		};
		for (size_t i = 0; i < NELEM(want); i++) {
			struct mqt_frame f;
			struct mqt_msg m;
			EXPECT(sub, &f, MQT_DELIVER, 2);
			parse_msg_at(__LINE__, &f, &m);
			CHECK_BODY(&m, want[i].b);
			ck_assert_uint_eq(m.priority, want[i].p);
			mqt_frame_free(&f);
		}
	}

	/* Per-message ttl: the short one expires (by the owner's timer),
	 * the other stays. */
	DECLARE(adm, 18, "bq.ttl", NULL);
	BIND(adm, 19, "bq.ttl", "pol.ttl");
	ck_assert_uint_eq(PUBLISH_OPTS(pub, 13, "pol.ttl", 100, 0, 0, NULL,
	                               "short"), 1);
	ck_assert_uint_eq(PUBLISH_OPTS(pub, 14, "pol.ttl", 0, 0, 0, NULL,
	                               "long"), 1);
	WAIT_QFIELD(s, "bq.ttl", "expired", 1);
	QFIELD_EQ(s, "bq.ttl", "ready", 1);
	GET_COPY(adm, 20, "bq.ttl", "long", 0);
	GET_NO_COPY(adm, 21, "bq.ttl");

	/* ttl 0: the queue's message_ttl applies to the copy. */
	memset(&o, 0, sizeof o);
	o.message_ttl_ms = 100;
	DECLARE(adm, 22, "bq.qttl", &o);
	BIND(adm, 23, "bq.qttl", "pol.qttl");
	PUBLISH_N(pub, 15, "pol.qttl", "q1", 1);
	WAIT_QFIELD(s, "bq.qttl", "expired", 1);
	QFIELD_EQ(s, "bq.qttl", "ready", 0);
	GET_NO_COPY(adm, 24, "bq.qttl");

	/* Delay: the copy is delayed, then ready. */
	DECLARE(adm, 25, "bq.delay", NULL);
	BIND(adm, 26, "bq.delay", "pol.delay");
	int64_t t0 = mqt_now_ms();
	ck_assert_uint_eq(PUBLISH_OPTS(pub, 16, "pol.delay", 0, 300, 0, NULL,
	                               "later"), 1);
	QFIELD_EQ(s, "bq.delay", "delayed", 1);
	QFIELD_EQ(s, "bq.delay", "ready", 0);
	{
		struct mqt_frame f;
		struct mqt_msg m;
		do_get_at(__LINE__, adm, 27, "bq.delay", 5000, MQ_AUTO_ACK, &f,
		          &m);
		CHECK_BODY(&m, "later");
		ck_assert_msg(mqt_now_ms() - t0 >= 250, "a copy delayed 300 ms "
		              "was ready after %lld ms",
		              (long long)(mqt_now_ms() - t0));
		mqt_frame_free(&f);
	}

	/* Headers go with every copy. */
	{
		struct mqt_buf h;
		struct mqt_frame f;
		struct mqt_msg m;
		char v[64];
		mqt_buf_init(&h);
		mqt_put_u16(&h, 2);
		mqt_put_name(&h, "k1");
		mqt_put_str16(&h, "v1");
		mqt_put_name(&h, "k2");
		mqt_put_str16(&h, "");
		DECLARE(adm, 28, "bq.hdr", NULL);
		BIND(adm, 29, "bq.hdr", "pol.hdr");
		SUBSCRIBE(sub, 3, "pol.hdr");
		ck_assert_uint_eq(PUBLISH_OPTS(pub, 17, "pol.hdr", 0, 0, 0, &h,
		                               "hb"), 2);
		GET(adm, 30, "bq.hdr", &f, &m);
		ck_assert_uint_eq(m.nheaders, 2);
		ck_assert_int_eq(mqt_msg_header(&m, "k1", v, sizeof v), 2);
		ck_assert_str_eq(v, "v1");
		ck_assert_int_eq(mqt_msg_header(&m, "k2", v, sizeof v), 0);
		mqt_frame_free(&f);
		EXPECT(sub, &f, MQT_DELIVER, 3);
		parse_msg_at(__LINE__, &f, &m);
		ck_assert_uint_eq(m.nheaders, 2);
		ck_assert_int_eq(mqt_msg_header(&m, "k1", v, sizeof v), 2);
		ck_assert_str_eq(v, "v1");
		CHECK_BODY(&m, "hb");
		mqt_frame_free(&f);
		mqt_buf_free(&h);
	}

	/* A bound queue that is deleted takes its bindings with it: a new
	 * queue of the same name gets nothing. */
	DELETE(adm, 31, "bq.prio");
	PUBLISH_N(pub, 18, "pol.prio", "gone", 1); /* the subscriber only */
	DECLARE(adm, 32, "bq.prio", NULL);
	PUBLISH_N(pub, 19, "pol.prio", "gone2", 1);
	GET_NO_COPY(adm, 33, "bq.prio");
	EXPECT_PUB_DELIVER(sub, 2, "pol.prio", "gone");
	EXPECT_PUB_DELIVER(sub, 2, "pol.prio", "gone2");
	close(pub);
	close(sub);
	close(adm);
	STOP(s);
}
END_TEST

/* BIND needs the queue; UNBIND needs the binding; both stop and start
 * copies at their OK, also for patterns held by every worker. */
START_TEST(test_bind_unbind)
{
	struct mqt_server s;
	START(s);
	int pub = RAW_OPEN(s), adm = RAW_OPEN(s);
	static const char *const topics[] = {
		"ub.a", "k1.a", "k2.a", "k3.a", "k4.a", "k5.a", "k6.a", "k7.a",
	};

	BIND_ERR(adm, 1, "no.such.queue", "ub.>", MQT_E_NOT_FOUND);
	/* BIND does not auto-create it either. */
	UNBIND_ERR(adm, 2, "no.such.queue", "ub.>", MQT_E_NOT_FOUND);
	PUBLISH_N(pub, 1, "ub.a", "x", 0);

	DECLARE(adm, 3, "ub.q", NULL);
	UNBIND_ERR(adm, 4, "ub.q", "ub.>", MQT_E_NOT_FOUND);
	BIND(adm, 5, "ub.q", "ub.>");
	UNBIND_ERR(adm, 6, "ub.q", "ub.*", MQT_E_NOT_FOUND); /* not this one */
	PUBLISH_N(pub, 2, "ub.a", "c1", 1);
	UNBIND(adm, 7, "ub.q", "ub.>");
	PUBLISH_N(pub, 3, "ub.a", "c2", 0);
	UNBIND_ERR(adm, 8, "ub.q", "ub.>", MQT_E_NOT_FOUND);
	QFIELD_EQ(s, "ub.q", "ready", 1);
	GET_COPY(adm, 9, "ub.q", "c1", 0);
	GET_NO_COPY(adm, 10, "ub.q");

	/* Patterns that start with a wildcard live on every worker: topics
	 * with many first tokens reach all shards. */
	BIND(adm, 11, "ub.q", ">");
	BIND(adm, 12, "ub.q", "*.a");
	for (size_t i = 0; i < NELEM(topics); i++)
		PUBLISH_N(pub, 20 + (uint32_t)i, topics[i], topics[i], 1);
	QFIELD_EQ(s, "ub.q", "ready", NELEM(topics));
	UNBIND(adm, 13, "ub.q", ">");
	for (size_t i = 0; i < NELEM(topics); i++)
		PUBLISH_N(pub, 40 + (uint32_t)i, topics[i], "second", 1);
	UNBIND(adm, 14, "ub.q", "*.a");
	for (size_t i = 0; i < NELEM(topics); i++)
		PUBLISH_N(pub, 60 + (uint32_t)i, topics[i], "third", 0);
	QFIELD_EQ(s, "ub.q", "ready", 2 * NELEM(topics));
	for (size_t i = 0; i < NELEM(topics); i++)
		GET_COPY(adm, 80 + (uint32_t)i, "ub.q", topics[i], 0);
	for (size_t i = 0; i < NELEM(topics); i++)
		GET_COPY(adm, 100 + (uint32_t)i, "ub.q", "second", 0);
	GET_NO_COPY(adm, 120, "ub.q");

	/* Pipelined QUIET publishes with copies for queues on other workers:
	 * the PING's answer comes after all of them are stored. */
	{
		struct mqt_buf b;
		char q[32];
		mqt_buf_init(&b);
		for (int i = 0; i < 4; i++) {
			snprintf(q, sizeof q, "uq.%d", i);
			DECLARE(adm, 130 + (uint32_t)i, q, NULL);
			BIND(adm, 140 + (uint32_t)i, q, "qq.t");
		}
		for (int k = 0; k < 100; k++)
			enc_publish(&b, MQ_QUIET, 200, "qq.t", 0, 0, 0, NULL, "q",
			            1);
		SENDB(pub, &b);
		PING(pub, 201);
		for (int i = 0; i < 4; i++) {
			snprintf(q, sizeof q, "uq.%d", i);
			QFIELD_EQ(s, q, "ready", 100);
		}
		mqt_buf_free(&b);
	}
	close(pub);
	close(adm);
	STOP(s);
}
END_TEST

/* After the OK to UNSUBSCRIBE (or to a CANCEL naming the subscription) no
 * DELIVER with its tag follows, even with messages in flight. */
static void stop_delivery_case(const struct mqt_server *s, bool use_cancel)
{
	int pub = raw_open_at(__LINE__, s), sub = raw_open_at(__LINE__, s);
	struct mqt_buf b;
	char body[32];
	int next_seq = 0;

	mqt_buf_init(&b);
	subscribe_at(__LINE__, sub, 1, "us.t");
	subscribe_at(__LINE__, sub, 2, "us.sentinel");
	for (int i = 0; i < 500; i++) {
		snprintf(body, sizeof body, "%d", i);
		enc_publish(&b, MQ_QUIET, 100, "us.t", 0, 0, 0, NULL, body,
		            strlen(body));
	}
	send_at(__LINE__, pub, &b);
	/* Take some, then stop with deliveries still coming. */
	for (int i = 0; i < 10; i++) {
		snprintf(body, sizeof body, "%d", next_seq++);
		expect_pub_deliver_at(__LINE__, sub, 1, "us.t", body);
	}
	if (use_cancel)
		mqt_enc_cancel(&b, 3, 1);
	else
		enc_unsubscribe(&b, 3, 1);
	send_at(__LINE__, sub, &b);
	for (;;) {
		struct mqt_frame f;
		struct mqt_msg m;
		read_at(__LINE__, sub, &f, "a DELIVER or the OK");
		if (f.op == MQT_OK && f.tag == 3) {
			ck_assert_uint_eq(f.len, 0);
			mqt_frame_free(&f);
			break;
		}
		ck_assert_msg(f.op == MQT_DELIVER && f.tag == 1, "got %s",
		              mqt_frame_str(&f));
		parse_msg_at(__LINE__, &f, &m);
		snprintf(body, sizeof body, "%d", next_seq++);
		CHECK_BODY(&m, body);
		mqt_frame_free(&f);
	}
	/* Gone from the index too. */
	for (int i = 0; i < 500; i++)
		enc_publish(&b, MQ_QUIET, 100, "us.t", 0, 0, 0, NULL, "after",
		            5);
	send_at(__LINE__, pub, &b);
	ck_assert_uint_eq(publish_opts_at(__LINE__, pub, 102, "us.t", 0, 0, 0,
	                                  NULL, "after"), 0);
	ck_assert_uint_eq(publish_opts_at(__LINE__, pub, 103, "us.sentinel",
	                                  0, 0, 0, NULL, "end"), 1);
	expect_pub_deliver_at(__LINE__, sub, 2, "us.sentinel", "end");
	/* The tag names nothing now, for both ops. */
	unsubscribe_at(__LINE__, sub, 4, 1, MQT_E_NOT_FOUND);
	cancel_at(__LINE__, sub, 5, 1, MQT_E_NOT_FOUND);
	/* And may be used again, for a new subscription only. */
	subscribe_at(__LINE__, sub, 1, "us.other");
	ck_assert_uint_eq(publish_opts_at(__LINE__, pub, 104, "us.t", 0, 0, 0,
	                                  NULL, "x"), 0);
	ck_assert_uint_eq(publish_opts_at(__LINE__, pub, 105, "us.other", 0, 0,
	                                  0, NULL, "y"), 1);
	expect_pub_deliver_at(__LINE__, sub, 1, "us.other", "y");
	unsubscribe_at(__LINE__, sub, 6, 99, MQT_E_NOT_FOUND);
	ping_at(__LINE__, sub, 7);
	mqt_buf_free(&b);
	close(pub);
	close(sub);
}

START_TEST(test_unsubscribe_stops_delivery)
{
	struct mqt_server s;
	START(s);
	stop_delivery_case(&s, false);
	STOP(s);
}
END_TEST

START_TEST(test_cancel_ends_subscription)
{
	struct mqt_server s;
	START(s);
	stop_delivery_case(&s, true);
	STOP(s);
}
END_TEST

/* 50 subscribers on 50 connections (on every worker), 500 messages on one
 * topic: each gets all of them, in publish order. */
START_TEST(test_fanout_50)
{
	enum { NSUB = 50, NMSG = 500 };
	static const char *const pats[] = { "fan.seq", "fan.*", "fan.>",
	                                    "*.seq", ">" };
	struct mqt_server s;
	mq_conn *subs[NSUB], *pub;
	uint32_t tags[NSUB], n = 0;
	char body[32];

	START(s);
	for (int i = 0; i < NSUB; i++) {
		subs[i] = CONNECT(s);
		MQ_OK_(mq_subscribe(subs[i], pats[i % NELEM(pats)], &tags[i]));
	}
	pub = CONNECT(s);
	{
		bool seen[256] = { false };
		int workers = 0;
		for (int i = 0; i < NSUB; i++) {
			json_t *row = conn_row_at(__LINE__, &s,
			                          mq_conn_id(subs[i]));
			int64_t w = row_int_at(__LINE__, row, "worker");
			ck_assert(w >= 0 && w < 256);
			ck_assert_int_eq(row_int_at(__LINE__, row,
			                            "subscriptions"), 1);
			if (!seen[w]) {
				seen[w] = true;
				workers++;
			}
			json_decref(row);
		}
		ck_assert_msg(workers == 4, "the 50 subscribers are on %d "
		              "worker(s), expected all 4", workers);
	}

	snprintf(body, sizeof body, "seq-%05d", 0);
	MQ_OK_(mq_publish(pub, "fan.seq", body, strlen(body), NULL, 0, &n));
	ck_assert_uint_eq(n, NSUB);
	for (int k = 1; k < NMSG; k++) {
		snprintf(body, sizeof body, "seq-%05d", k);
		MQ_OK_(mq_publish(pub, "fan.seq", body, strlen(body), NULL,
		                  MQ_QUIET, NULL));
	}
	MQ_OK_(mq_sync(pub));

	for (int i = 0; i < NSUB; i++) {
		for (int k = 0; k < NMSG; k++) {
			struct mq_message *m = NULL;
			int rc = mq_next(subs[i], RD_MS, &m);
			ck_assert_msg(rc == MQ_OK, "subscriber %d (%s): message "
			              "%d: %s", i, pats[i % NELEM(pats)], k,
			              mq_strerror(rc));
			snprintf(body, sizeof body, "seq-%05d", k);
			ck_assert_msg(m->body_len == strlen(body) &&
			              memcmp(m->body, body, m->body_len) == 0,
			              "subscriber %d: message %d is \"%.*s\", "
			              "expected \"%s\"", i, k, (int)m->body_len,
			              (const char *)m->body, body);
			ck_assert_uint_eq(m->tag, tags[i]);
			ck_assert_str_eq(m->source, "fan.seq");
			mq_message_free(m);
		}
	}
	/* Nothing more for anyone: a round trip, then nothing queued. */
	for (int i = 0; i < NSUB; i++) {
		struct mq_message *m = NULL;
		MQ_OK_(mq_ping(subs[i]));
		int rc = mq_next(subs[i], 0, &m);
		ck_assert_msg(rc == MQ_ERR_TIMEOUT, "subscriber %d: an extra "
		              "delivery (%s)", i, mq_strerror(rc));
		mq_close(subs[i]);
	}
	mq_close(pub);
	STOP(s);
}
END_TEST

/* ---- slow subscriber -------------------------------------------------------------- */

enum { SLOW_N = 20000, SLOW_BODY = 1024 };

struct fast_sub {
	mq_conn *c;
	uint32_t tag;
	atomic_int got;
	atomic_bool done;
	char why[256]; /* "" when every message came in order */
};

static void *fast_sub_main(void *arg)
{
	struct fast_sub *fs = arg;
	char want[16];

	fs->why[0] = '\0';
	for (int i = 0; i < SLOW_N; i++) {
		struct mq_message *m = NULL;
		int rc = mq_next(fs->c, RD_MS, &m);
		if (rc != MQ_OK) {
			snprintf(fs->why, sizeof fs->why, "message %d: %s", i,
			         mq_strerror(rc));
			break;
		}
		snprintf(want, sizeof want, "%08d", i);
		if (m->tag != fs->tag || m->body_len != SLOW_BODY ||
		    memcmp(m->body, want, 8) != 0) {
			snprintf(fs->why, sizeof fs->why, "message %d: got "
			         "tag %u, %zu bytes starting \"%.8s\"", i, m->tag,
			         m->body_len, (const char *)m->body);
			mq_message_free(m);
			break;
		}
		mq_message_free(m);
		atomic_store(&fs->got, i + 1);
	}
	atomic_store(&fs->done, true);
	return NULL;
}

/*
 * slow_consumer_bytes = 256K.  A raw subscriber that never reads, a libmq
 * subscriber read by a thread, and a publisher sending 20,000 messages of
 * 1 KiB with QUIET.  The publisher is never held back by the stalled one
 * (the fast subscriber keeps making progress), the fast subscriber gets
 * everything in order, and the stalled one's losses are
 * counted per connection ("dropped" in `connections`): exactly what it did
 * not receive.
 *
 * The publisher stays at most 128 messages (plus one unsynced batch of 64)
 * ahead of the fast subscriber, under 256K in flight, so the fast one can
 * never be over the limit itself whatever the scheduler does; the stalled
 * one is over it after a few hundred messages.
 */
START_TEST(test_slow_subscriber_isolation)
{
	struct mqt_server s;
	struct fast_sub fs;
	pthread_t th;
	uint64_t stalled_id, pub_id;
	static char body[SLOW_BODY];
	uint32_t n = 0;

	START_EXTRA(s, "slow_consumer_bytes = 256K\n");
	int stalled = RAW_OPEN_ID(s, &stalled_id);
	SUBSCRIBE(stalled, 1, "slow.t");

	memset(&fs, 0, sizeof fs);
	fs.c = CONNECT(s);
	MQ_OK_(mq_subscribe(fs.c, "slow.>", &fs.tag));
	mq_conn *pub = CONNECT(s);
	pub_id = mq_conn_id(pub);
	ck_assert_int_eq(pthread_create(&th, NULL, fast_sub_main, &fs), 0);

	memset(body, 'b', sizeof body);
	/* No clock on the whole run (a sanitizer build is many times
	 * slower): only on progress.  A publisher held back by the stalled
	 * subscriber would stop the fast one too, for good. */
	bool stuck = false;
	int stuck_at = 0;
	for (int i = 0; i < SLOW_N && !stuck; i++) {
		char seq[16];
		snprintf(seq, sizeof seq, "%08d", i);
		memcpy(body, seq, 8);
		if (i == 0) {
			MQ_OK_(mq_publish(pub, "slow.t", body, sizeof body, NULL,
			                  0, &n));
			ck_assert_uint_eq(n, 2);
			continue;
		}
		MQ_OK_(mq_publish(pub, "slow.t", body, sizeof body, NULL,
		                  MQ_QUIET, NULL));
		if ((i + 1) % 64 != 0)
			continue;
		MQ_OK_(mq_sync(pub));
		int seen = atomic_load(&fs.got);
		int64_t end = mqt_now_ms() + RD_MS;
		while (atomic_load(&fs.got) < i + 1 - 128 &&
		       !atomic_load(&fs.done)) {
			if (atomic_load(&fs.got) != seen) {
				seen = atomic_load(&fs.got);
				end = mqt_now_ms() + RD_MS;
			} else if (mqt_now_ms() > end) {
				stuck = true;
				stuck_at = seen;
				break;
			}
			sleep_ms(1);
		}
		if (atomic_load(&fs.done))
			break; /* it failed: reported below */
	}
	if (!stuck)
		MQ_OK_(mq_sync(pub)); /* the final PING */
	pthread_join(th, NULL); /* bounded: its reads have deadlines */
	ck_assert_msg(fs.why[0] == '\0', "the fast subscriber: %s (after %d "
	              "in order)", fs.why, atomic_load(&fs.got));
	ck_assert_msg(!stuck, "the fast subscriber got nothing for %d ms "
	              "after message %d of %d", RD_MS, stuck_at, SLOW_N);
	ck_assert_int_eq(atomic_load(&fs.got), SLOW_N);

	/* The counters: every output mail for the stalled connection was
	 * handled before this query (same mailbox, earlier). */
	json_t *row = conn_row_at(__LINE__, &s, stalled_id);
	int64_t dropped = row_int_at(__LINE__, row, "dropped");
	ck_assert_int_eq(row_int_at(__LINE__, row, "subscriptions"), 1);
	json_decref(row);
	ck_assert_msg(dropped > 0 && dropped < SLOW_N, "the stalled "
	              "subscriber's dropped is %lld", (long long)dropped);
	row = conn_row_at(__LINE__, &s, mq_conn_id(fs.c));
	ck_assert_int_eq(row_int_at(__LINE__, row, "dropped"), 0);
	json_decref(row);
	row = conn_row_at(__LINE__, &s, pub_id);
	ck_assert_int_eq(row_int_at(__LINE__, row, "dropped"), 0);
	json_decref(row);

	/* What the stalled one does get is in order, and with the drops it
	 * accounts for every message. */
	{
		struct mqt_buf b;
		int got = 0, last = -1;
		mqt_buf_init(&b);
		mqt_enc_ping(&b, 9, "end", 3);
		SENDB(stalled, &b);
		mqt_buf_free(&b);
		for (;;) {
			struct mqt_frame f;
			struct mqt_msg m;
			read_at(__LINE__, stalled, &f, "a DELIVER or the PONG");
			if (f.op == MQT_PONG && f.tag == 9) {
				mqt_frame_free(&f);
				break;
			}
			ck_assert_msg(f.op == MQT_DELIVER && f.tag == 1, "got %s",
			              mqt_frame_str(&f));
			parse_msg_at(__LINE__, &f, &m);
			ck_assert_uint_eq(m.body_len, SLOW_BODY);
			int seq = atoi((const char *)m.body);
			ck_assert_msg(seq > last, "the stalled subscriber got %d "
			              "after %d", seq, last);
			last = seq;
			got++;
			mqt_frame_free(&f);
		}
		ck_assert_msg(got + dropped == SLOW_N, "the stalled subscriber "
		              "received %d and lost %lld of %d", got,
		              (long long)dropped, SLOW_N);
	}
	/* A stalled subscriber that catches up gets new messages again. */
	MQ_OK_(mq_publish(pub, "slow.t", "again", 5, NULL, 0, &n));
	ck_assert_uint_eq(n, 2);
	EXPECT_PUB_DELIVER(stalled, 1, "slow.t", "again");
	close(stalled);
	mq_close(fs.c);
	mq_close(pub);
	STOP(s);
}
END_TEST

/*
 * The same bound holds while the subscriber's connection has a reply
 * pending (a GET waiting for a message): DELIVERs that must wait behind it
 * are unsent output too (PROTOCOL.md 4.2: a subscriber that cannot keep up
 * loses messages "rather than slowing the publisher or growing memory
 * without bound").  20 MB are published at a subscriber that reads
 * nothing while its GET waits; more than 256K + kernel buffers of them
 * must be counted as dropped, and what does arrive afterwards, with the
 * drops, accounts for every message.
 */
START_TEST(test_slow_subscriber_behind_pending_get)
{
	struct mqt_server s;
	struct mqt_buf b;
	uint64_t sub_id;
	static char body[SLOW_BODY];
	uint32_t n = 0;

	START_EXTRA(s, "slow_consumer_bytes = 256K\n");
	int sub = RAW_OPEN_ID(s, &sub_id);
	SUBSCRIBE(sub, 1, "pg.t");
	mqt_buf_init(&b);
	mqt_enc_get(&b, MQ_AUTO_ACK, 2, "pg.empty", 30000);
	/* The GET is read (and so waiting) before the flood starts: the
	 * broker has counted its bytes in. */
	json_t *row = conn_row_at(__LINE__, &s, sub_id);
	int64_t in0 = row_int_at(__LINE__, row, "bytes_in");
	json_decref(row);
	int64_t want_in = in0 + (int64_t)b.len;
	SENDB(sub, &b);
	mq_conn *pub = CONNECT(s);
	int64_t end = mqt_now_ms() + GONE_MS;
	for (;;) {
		row = conn_row_at(__LINE__, &s, sub_id);
		int64_t in = row_int_at(__LINE__, row, "bytes_in");
		json_decref(row);
		if (in >= want_in)
			break;
		ck_assert_msg(mqt_now_ms() < end, "the broker did not read the "
		              "GET (bytes_in %lld, expected %lld)",
		              (long long)in, (long long)want_in);
		sleep_ms(5);
	}
	memset(body, 'g', sizeof body);
	for (int i = 0; i < SLOW_N; i++) {
		char seq[16];
		snprintf(seq, sizeof seq, "%08d", i);
		memcpy(body, seq, 8);
		MQ_OK_(mq_publish(pub, "pg.t", body, sizeof body, NULL,
		                  i == 0 ? 0 : MQ_QUIET, i == 0 ? &n : NULL));
		if (i == 0)
			ck_assert_uint_eq(n, 1);
	}
	/* A broker that held the publisher back for this subscriber would
	 * never answer: the subscriber reads nothing until its GET is
	 * answered, below.  That fails at the test's timeout; no clock of
	 * ours (a sanitizer build is many times slower). */
	MQ_OK_(mq_sync(pub));
	row = conn_row_at(__LINE__, &s, sub_id);
	int64_t dropped = row_int_at(__LINE__, row, "dropped");
	json_decref(row);
	ck_assert_msg(dropped > 0, "a subscriber with a GET pending took all "
	              "%d messages of 1 KiB with slow_consumer_bytes = 256K "
	              "and dropped none: the broker holds them in memory",
	              SLOW_N);

	/* Answer the GET; then everything left comes, in order. */
	MQ_OK_(mq_send(pub, "pg.empty", "wake", 4, NULL, NULL));
	mqt_enc_ping(&b, 3, "end", 3);
	SENDB(sub, &b);
	{
		int got = 0, last = -1;
		bool got_msg = false;
		for (;;) {
			struct mqt_frame f;
			struct mqt_msg m;
			read_at(__LINE__, sub, &f, "DELIVER, MESSAGE or PONG");
			if (f.op == MQT_PONG && f.tag == 3) {
				mqt_frame_free(&f);
				break;
			}
			if (f.op == MQT_MESSAGE && f.tag == 2) {
				parse_msg_at(__LINE__, &f, &m);
				CHECK_BODY(&m, "wake");
				got_msg = true;
				mqt_frame_free(&f);
				continue;
			}
			ck_assert_msg(f.op == MQT_DELIVER && f.tag == 1, "got %s",
			              mqt_frame_str(&f));
			parse_msg_at(__LINE__, &f, &m);
			int seq = atoi((const char *)m.body);
			ck_assert_msg(seq > last, "got %d after %d", seq, last);
			last = seq;
			got++;
			mqt_frame_free(&f);
		}
		ck_assert(got_msg);
		ck_assert_msg(got + dropped == SLOW_N, "received %d and lost "
		              "%lld of %d", got, (long long)dropped, SLOW_N);
	}
	mqt_buf_free(&b);
	close(sub);
	mq_close(pub);
	STOP(s);
}
END_TEST

/* ---- request / reply -------------------------------------------------------------- */

/* `mq serve Q -n 1 -- tr a-z A-Z` answers `mq request Q hello`. */
START_TEST(test_request_reply_cli)
{
	struct mqt_server s;
	char out[4096], path[MQT_PATH_MAX + 32];
	START(s);

	snprintf(path, sizeof path, "%s/serve.out", s.dir);
	char *serve[] = { "mq", "serve", "rr.cli", "-n", "1", "--", "tr",
	                  "a-z", "A-Z", NULL };
	struct mqt_proc kid;
	SPAWN_CLI(&kid, s, serve, path);
	char *req[] = { "mq", "request", "rr.cli", "hello", "-t", "10s", NULL };
	int rc = mqt_run_cli(&s, req, out, sizeof out);
	ck_assert_msg(rc == 0, "mq request exited %d", rc);
	ck_assert_str_eq(out, "HELLO\n");
	rc = wait_kid(&kid, 10000);
	ck_assert_msg(rc == 0, "mq serve -n 1 exited %d", rc);
	read_file(path, out, sizeof out);
	ck_assert_str_eq(out, "");
	/* Acked once the reply was sent: nothing left in the queue. */
	QFIELD_EQ(s, "rr.cli", "ready", 0);
	QFIELD_EQ(s, "rr.cli", "held", 0);
	QFIELD_EQ(s, "rr.cli", "acked", 1);

	/* Nobody serving: exit 3 after the timeout. */
	char *lonely[] = { "mq", "request", "rr.nobody", "hi", "-t", "300ms",
	                   NULL };
	rc = mqt_run_cli(&s, lonely, out, sizeof out);
	ck_assert_msg(rc == 3, "mq request with nobody serving exited %d", rc);
	ck_assert_str_eq(out, "");
	STOP(s);
}
END_TEST

struct server_thr {
	mq_conn *c;
	int wake[2];   /* a byte per request served */
	int served;
	char why[256]; /* "" when all went well */
};

/* Serve three requests: "re:" + body; before the second reply, publish
 * rr.ev. */
static void *server_main(void *arg)
{
	struct server_thr *st = arg;
	char reply[300];

	st->why[0] = '\0';
	for (int i = 0; i < 3; i++) {
		struct mq_message *m = NULL;
		const char *v;
		int rc = mq_next(st->c, RD_MS, &m);
		if (rc != MQ_OK) {
			snprintf(st->why, sizeof st->why, "request %d: %s", i,
			         mq_strerror(rc));
			break;
		}
		if (mq_message_header(m, "reply-to", &v) <= 0 ||
		    mq_message_header(m, "correlation-id", &v) <= 0) {
			snprintf(st->why, sizeof st->why, "request %d has no "
			         "reply-to or correlation-id", i);
			mq_message_free(m);
			break;
		}
		if (i == 1 && (rc = mq_publish(st->c, "rr.ev", "ev", 2, NULL, 0,
		                               NULL)) != MQ_OK) {
			snprintf(st->why, sizeof st->why, "publish: %s",
			         mq_strerror(rc));
			mq_message_free(m);
			break;
		}
		snprintf(reply, sizeof reply, "re:%.*s", (int)m->body_len,
		         (const char *)m->body);
		rc = mq_reply(st->c, m, reply, strlen(reply));
		if (rc == MQ_OK)
			rc = mq_ack(st->c, &m->id, 1, 0, NULL);
		mq_message_free(m);
		if (rc != MQ_OK) {
			snprintf(st->why, sizeof st->why, "reply %d: %s", i,
			         mq_strerror(rc));
			break;
		}
		st->served++;
		(void)!write(st->wake[1], "x", 1);
	}
	close(st->wake[1]);
	return NULL;
}

static void wait_wake_at(int line, struct server_thr *st)
{
	struct pollfd p = { .fd = st->wake[0], .events = POLLIN };
	char c;
	int rc;
	while ((rc = poll(&p, 1, RD_MS)) < 0 && errno == EINTR)
		;
	ck_assert_msg(rc == 1 && read(st->wake[0], &c, 1) == 1, "line %d: "
	              "the serving thread did not answer (%s)", line, st->why);
}

/* mq_request / mq_reply in-process: a reply to a timed-out request is
 * dropped, other deliveries wait for mq_next. */
START_TEST(test_request_reply_lib)
{
	struct mqt_server s;
	struct server_thr st;
	struct mq_message *rep = NULL, *m = NULL;
	pthread_t th;
	uint32_t evtag = 0, ctag = 0;
	const char *v;
	int rc;

	START(s);
	mq_conn *a = CONNECT(s), *b = CONNECT(s);

	/* A message without reply-to cannot be replied to. */
	MQ_OK_(mq_send(a, "rr.plain", "p", 1, NULL, NULL));
	MQ_OK_(mq_get(b, "rr.plain", 0, MQ_AUTO_ACK, &m));
	ck_assert_int_eq(mq_reply(b, m, "x", 1), MQ_ERR_INVALID);
	mq_message_free(m);
	m = NULL;

	MQ_OK_(mq_subscribe(a, "rr.ev", &evtag));
	/* Nobody serves yet: a timeout, and no reply. */
	int64_t t0 = mqt_now_ms();
	rc = mq_request(a, "rr.q", "r1", 2, 300, &rep);
	ck_assert_msg(rc == MQ_ERR_TIMEOUT, "mq_request with nobody serving: "
	              "%s", mq_strerror(rc));
	ck_assert_ptr_null(rep);
	ck_assert_int_ge(mqt_now_ms() - t0, 250);

	memset(&st, 0, sizeof st);
	st.c = b;
	ck_assert_int_eq(pipe(st.wake), 0);
	MQ_OK_(mq_consume(b, "rr.q", 1, 0, &ctag));
	ck_assert_int_eq(pthread_create(&th, NULL, server_main, &st), 0);
	/* The stale reply (to r1) is sent before r2 exists. */
	wait_wake_at(__LINE__, &st);
	rc = mq_request(a, "rr.q", "r2", 2, RD_MS, &rep);
	ck_assert_msg(rc == MQ_OK, "mq_request r2: %s (server: %s)",
	              mq_strerror(rc), st.why);
	ck_assert_msg(rep->body_len == 5 && memcmp(rep->body, "re:r2", 5) == 0,
	              "the reply to r2 is \"%.*s\"", (int)rep->body_len,
	              (const char *)rep->body);
	ck_assert_int_gt(mq_message_header(rep, "correlation-id", &v), 0);
	mq_message_free(rep);
	rep = NULL;
	wait_wake_at(__LINE__, &st);

	/* The publish that came while a waited is there for mq_next. */
	MQ_OK_(mq_next(a, RD_MS, &m));
	ck_assert_uint_eq(m->tag, evtag);
	ck_assert_str_eq(m->source, "rr.ev");
	ck_assert(m->body_len == 2 && memcmp(m->body, "ev", 2) == 0);
	mq_message_free(m);
	m = NULL;

	/* The reply queue is reused. */
	rc = mq_request(a, "rr.q", "r3", 2, RD_MS, &rep);
	ck_assert_msg(rc == MQ_OK, "mq_request r3: %s (server: %s)",
	              mq_strerror(rc), st.why);
	ck_assert(rep->body_len == 5 && memcmp(rep->body, "re:r3", 5) == 0);
	mq_message_free(rep);
	pthread_join(th, NULL);
	ck_assert_msg(st.why[0] == '\0', "serving thread: %s", st.why);
	ck_assert_int_eq(st.served, 3);
	close(st.wake[0]);

	/* Nothing stale leaks into mq_next. */
	MQ_OK_(mq_ping(a));
	rc = mq_next(a, 0, &m);
	ck_assert_msg(rc == MQ_ERR_TIMEOUT, "mq_next after the requests: %s",
	              mq_strerror(rc));
	QFIELD_EQ(s, "rr.q", "ready", 0);
	QFIELD_EQ(s, "rr.q", "held", 0);
	mq_close(a);
	mq_close(b);
	STOP(s);
}
END_TEST

/* ---- bad input ---------------------------------------------------------------------- */

START_TEST(test_bad_topics_and_patterns)
{
	static const char *const bad_topics[] = {
		"a..b", "a.>", "a.*", "", ".a", "a.", ">", "*", "a.b*", "a b",
		"a/b", "..",
	};
	static const char *const bad_patterns[] = {
		"a.>.b", ">.a", "a..b", "", ".a", "a.", "a.b>", "a*", "*a.b",
		"a.>>", "a b",
	};
	struct mqt_server s;
	struct mqt_buf b;
	uint32_t tag = 10;
	START(s);
	int fd = RAW_OPEN(s), adm = RAW_OPEN(s);

	mqt_buf_init(&b);
	for (size_t i = 0; i < NELEM(bad_topics); i++)
		PUBLISH_ERR(fd, 0, tag++, bad_topics[i], 0,
		            MQT_E_BAD_ARGUMENT);
	/* Also with QUIET: the ERROR still comes. */
	PUBLISH_ERR(fd, MQ_QUIET, tag++, "a..b", 0, MQT_E_BAD_ARGUMENT);
	PUBLISH_ERR(fd, 0, tag++, "ok.topic", 10, MQT_E_BAD_ARGUMENT);
	PUBLISH_ERR(fd, MQ_AUTO_ACK, tag++, "ok.topic", 0, MQT_E_BAD_ARGUMENT);
	for (size_t i = 0; i < NELEM(bad_patterns); i++)
		SUBSCRIBE_ERR(fd, 0, tag++, bad_patterns[i],
		              MQT_E_BAD_ARGUMENT);
	SUBSCRIBE_ERR(fd, MQ_QUIET, tag++, "ok.>", MQT_E_BAD_ARGUMENT);
	{
		/* Bytes left over after the pattern. */
		size_t st = mqt_frame_begin(&b, OP_SUBSCRIBE, 0, tag);
		mqt_put_name(&b, "ok.>");
		mqt_put_u8(&b, 0);
		mqt_frame_end(&b, st);
		SENDB(fd, &b);
		EXPECT_ERR(fd, tag, MQT_E_BAD_ARGUMENT);
		tag++;
	}
	DECLARE(adm, 1, "bad.q", NULL);
	BIND_ERR(adm, 2, "bad.q", "a.>.b", MQT_E_BAD_ARGUMENT);
	BIND_ERR(adm, 3, "bad.q", "", MQT_E_BAD_ARGUMENT);
	BIND_ERR(adm, 4, "", "a.b", MQT_E_BAD_ARGUMENT);
	UNBIND_ERR(adm, 5, "bad.q", "a..b", MQT_E_BAD_ARGUMENT);
	UNSUBSCRIBE_ERR(fd, tag++, 12345, MQT_E_NOT_FOUND);

	/* The connection is fine, and nothing was subscribed or bound. */
	PING(fd, tag++);
	PUBLISH_N(fd, tag++, "a.x.b", "x", 0);
	PUBLISH_N(fd, tag++, "a.b", "x", 0);
	PUBLISH_N(fd, tag++, "ok.topic", "x", 0);
	QFIELD_EQ(s, "bad.q", "ready", 0);
	mqt_buf_free(&b);
	close(fd);
	close(adm);
	STOP(s);
}
END_TEST

/*
 * Subscribers that disconnect in the middle of a fan-out, with deliveries
 * queued for them: the broker keeps serving, the others get everything in
 * order, and it exits 0 at the end (under ASan: nothing leaked).
 */
START_TEST(test_disconnect_mid_fanout)
{
	enum { NQUIT = 6, NSTAY = 6, ROUNDS = 10, PER = 200 };
	static const char *const pats[] = { "dc.t", "dc.*", ">", "*.t",
	                                    "dc.>", "*.*" };
	struct mqt_server s;
	int quit[NQUIT];
	mq_conn *stay[NSTAY], *pub;
	uint32_t stag[NSTAY], n = 0;
	char body[32];
	int sent = 0;

	START(s);
	for (int i = 0; i < NQUIT; i++) {
		quit[i] = RAW_OPEN(s);
		SUBSCRIBE(quit[i], 1, pats[i]);
		SUBSCRIBE(quit[i], 2, "dc.>"); /* two subscriptions each */
	}
	for (int i = 0; i < NSTAY; i++) {
		stay[i] = CONNECT(s);
		MQ_OK_(mq_subscribe(stay[i], pats[i], &stag[i]));
	}
	pub = CONNECT(s);
	MQ_OK_(mq_publish(pub, "dc.t", "first", 5, NULL, 0, &n));
	ck_assert_uint_eq(n, 2 * NQUIT + NSTAY);
	for (int r = 0; r < ROUNDS; r++) {
		for (int k = 0; k < PER; k++) {
			snprintf(body, sizeof body, "%06d", sent++);
			MQ_OK_(mq_publish(pub, "dc.t", body, strlen(body), NULL,
			                  MQ_QUIET, NULL));
		}
		MQ_OK_(mq_sync(pub));
		if (r < NQUIT) {
			/* Read a few (it has many more queued), then go. */
			for (int k = 0; k < 3; k++) {
				struct mqt_frame f;
				read_at(__LINE__, quit[r], &f, "a DELIVER");
				ck_assert_uint_eq(f.op, MQT_DELIVER);
				mqt_frame_free(&f);
			}
			close(quit[r]);
		}
	}
	ck_assert(mqt_server_alive(&s));
	/* The survivors get everything, in order. */
	for (int i = 0; i < NSTAY; i++) {
		struct mq_message *m = NULL;
		MQ_OK_(mq_next(stay[i], RD_MS, &m));
		ck_assert(m->body_len == 5 && memcmp(m->body, "first", 5) == 0);
		mq_message_free(m);
		for (int k = 0; k < sent; k++) {
			m = NULL;
			int rc = mq_next(stay[i], RD_MS, &m);
			ck_assert_msg(rc == MQ_OK, "survivor %d (%s), message %d: "
			              "%s", i, pats[i], k, mq_strerror(rc));
			snprintf(body, sizeof body, "%06d", k);
			ck_assert_msg(m->body_len == 6 &&
			              memcmp(m->body, body, 6) == 0,
			              "survivor %d: message %d is \"%.*s\"", i, k,
			              (int)m->body_len, (const char *)m->body);
			ck_assert_uint_eq(m->tag, stag[i]);
			mq_message_free(m);
		}
	}
	/* The quitters' subscriptions go away (asynchronously). */
	int64_t end = mqt_now_ms() + GONE_MS;
	int probes = 0;
	for (;;) {
		MQ_OK_(mq_publish(pub, "dc.t", "probe", 5, NULL, 0, &n));
		probes++;
		if (n == NSTAY)
			break;
		ck_assert_msg(mqt_now_ms() < end, "receivers stayed %u after the "
		              "quitters left (expected %d)", n, NSTAY);
		sleep_ms(10);
	}
	for (int i = 0; i < NSTAY; i++) {
		for (int k = 0; k < probes; k++) {
			struct mq_message *m = NULL;
			MQ_OK_(mq_next(stay[i], RD_MS, &m));
			ck_assert(m->body_len == 5 &&
			          memcmp(m->body, "probe", 5) == 0);
			mq_message_free(m);
		}
		mq_close(stay[i]);
	}
	MQ_OK_(mq_ping(pub));
	mq_close(pub);
	STOP(s);
}
END_TEST

/* ---- the CLI ---------------------------------------------------------------------- */

/* Run mq with the arguments after `out` (NULL-terminated). */
static int cli(const struct mqt_server *s, char *out, size_t cap, ...)
{
	char *av[16];
	int n = 0;
	va_list ap;

	av[n++] = "mq";
	va_start(ap, cap);
	while (n < 15 && (av[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	av[n] = NULL;
	return mqt_run_cli(s, av, out, cap);
}
#define CLI_EXPECT(s, out, want, ...)                                         \
	do {                                                                  \
		int rc_ = cli(&(s), out, sizeof(out), __VA_ARGS__,            \
		              (char *)NULL);                                  \
		ck_assert_msg(rc_ == (want), "line %d: mq %s exited %d, "     \
		              "expected %d", __LINE__, #__VA_ARGS__, rc_,     \
		              want);                                          \
	} while (0)

START_TEST(test_cli)
{
	struct mqt_server s;
	char out[8192], path[MQT_PATH_MAX + 32];
	mq_conn *c;
	uint32_t n = 0;

	START(s);
	c = CONNECT(s);

	/* Usage errors: 2. */
	CLI_EXPECT(s, out, 2, "subscribe");
	CLI_EXPECT(s, out, 2, "subscribe", "a", "b");
	CLI_EXPECT(s, out, 2, "subscribe", "-n", "0", "a.>");
	CLI_EXPECT(s, out, 2, "subscribe", "a.>.b");
	CLI_EXPECT(s, out, 2, "publish");
	CLI_EXPECT(s, out, 2, "publish", "a.*", "x");
	CLI_EXPECT(s, out, 2, "publish", "a..b", "x");
	CLI_EXPECT(s, out, 2, "publish", "-p", "10", "cli.a", "x");
	CLI_EXPECT(s, out, 2, "bind", "cli.q");
	CLI_EXPECT(s, out, 2, "bind", "cli.q", "a.>.b");
	CLI_EXPECT(s, out, 2, "unbind");
	CLI_EXPECT(s, out, 2, "unbind", "cli.q", "a", "b");

	/* bind needs the queue: 1. */
	CLI_EXPECT(s, out, 1, "bind", "cli.q", "cli.>");
	ck_assert_str_eq(out, "");
	/* Nobody listens: publish still succeeds. */
	CLI_EXPECT(s, out, 0, "publish", "cli.nobody", "x");
	ck_assert_str_eq(out, "");

	/* A subscriber, its subscription proven live by a receivers count. */
	snprintf(path, sizeof path, "%s/sub.out", s.dir);
	char *sub[] = { "mq", "subscribe", "-n", "3", "cli.*", NULL };
	struct mqt_proc kid;
	SPAWN_CLI(&kid, s, sub, path);
	int64_t end = mqt_now_ms() + GONE_MS;
	for (;;) {
		MQ_OK_(mq_publish(c, "cli.a", "first", 5, NULL, 0, &n));
		if (n == 1)
			break;
		ck_assert_msg(mqt_now_ms() < end, "mq subscribe did not "
		              "subscribe within %d ms", GONE_MS);
		sleep_ms(10);
	}
	MQ_OK_(mq_declare(c, "cli.q", NULL, 0, NULL));
	CLI_EXPECT(s, out, 0, "bind", "cli.q", "cli.>");
	ck_assert_str_eq(out, "");
	CLI_EXPECT(s, out, 0, "publish", "cli.b", "second one");
	ck_assert_str_eq(out, "");
	CLI_EXPECT(s, out, 0, "publish", "cli.c"); /* body: stdin, empty */
	ck_assert_str_eq(out, "");
	int rc = wait_kid(&kid, RD_MS);
	ck_assert_msg(rc == 0, "mq subscribe -n 3 exited %d", rc);
	read_file(path, out, sizeof out);
	ck_assert_str_eq(out, "cli.a\tfirst\ncli.b\tsecond one\ncli.c\t\n");

	/* The bound queue got copies of the last two. */
	CLI_EXPECT(s, out, 0, "get", "cli.q");
	ck_assert_str_eq(out, "second one\n");
	CLI_EXPECT(s, out, 0, "get", "cli.q");
	ck_assert_str_eq(out, "\n");
	CLI_EXPECT(s, out, 3, "get", "cli.q");

	/* unbind: 0, then 1 (no such binding); copies stop. */
	CLI_EXPECT(s, out, 0, "unbind", "cli.q", "cli.>");
	ck_assert_str_eq(out, "");
	CLI_EXPECT(s, out, 1, "unbind", "cli.q", "cli.>");
	CLI_EXPECT(s, out, 1, "unbind", "cli.none", "cli.>");
	/* (cli.d.x: the exited subscriber's cli.* may linger a moment.) */
	MQ_OK_(mq_publish(c, "cli.d.x", "x", 1, NULL, 0, &n));
	ck_assert_uint_eq(n, 0);
	CLI_EXPECT(s, out, 3, "get", "cli.q");

	/* A subscriber with a '>' pattern and a body from -n 1. */
	snprintf(path, sizeof path, "%s/sub2.out", s.dir);
	char *sub2[] = { "mq", "subscribe", "cli.deep.>", "-n", "1", NULL };
	SPAWN_CLI(&kid, s, sub2, path);
	end = mqt_now_ms() + GONE_MS;
	for (;;) {
		MQ_OK_(mq_publish(c, "cli.deep.er.est", "tab\tin body", 11, NULL,
		                  0, &n));
		if (n == 1)
			break;
		ck_assert_msg(mqt_now_ms() < end, "mq subscribe did not "
		              "subscribe within %d ms", GONE_MS);
		sleep_ms(10);
	}
	rc = wait_kid(&kid, RD_MS);
	ck_assert_msg(rc == 0, "mq subscribe -n 1 exited %d", rc);
	read_file(path, out, sizeof out);
	ck_assert_str_eq(out, "cli.deep.er.est\ttab\tin body\n");
	mq_close(c);
	STOP(s);
}
END_TEST

/* ===================================================================== */

static Suite *pubsub_suite(void)
{
	Suite *su = suite_create("pubsub");
	ADD(su, test_wildcard_table);
	ADD(su, test_receivers_count);
	ADD(su, test_bound_queue_policies);
	ADD(su, test_bind_unbind);
	ADD(su, test_unsubscribe_stops_delivery);
	ADD(su, test_cancel_ends_subscription);
	ADD(su, test_fanout_50);
	ADD(su, test_slow_subscriber_isolation);
	ADD(su, test_slow_subscriber_behind_pending_get);
	ADD(su, test_request_reply_cli);
	ADD(su, test_request_reply_lib);
	ADD(su, test_bad_topics_and_patterns);
	ADD(su, test_disconnect_mid_fanout);
	ADD(su, test_cli);
	return su;
}

int main(void)
{
	return mqt_run_suite(pubsub_suite());
}
