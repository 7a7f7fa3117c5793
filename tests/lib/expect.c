#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/* The integration tests' shared assertion helpers: see expect.h. */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "expect.h"

void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

mq_conn *connect_at(int line, const struct mqt_server *s)
{
	mq_conn *c = mqt_connect(s);
	ck_assert_msg(c != NULL, "line %d: libmq connect failed", line);
	return c;
}

int mqt_run_suite(Suite *su)
{
	/* A server that closes on us must not kill the test with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	SRunner *sr = srunner_create(su);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

const char *rd_str(int rc)
{
	switch (rc) {
	case MQT_RD_FRAME: return "a frame";
	case MQT_RD_EOF: return "the connection closed";
	case MQT_RD_TIMEOUT: return "nothing (timeout)";
	default: return "a read error / bad frame length";
	}
}

int raw_open_at(int line, const struct mqt_server *s)
{
	int fd = mqt_raw_open(s);
	ck_assert_msg(fd >= 0, "line %d: connect + HELLO failed", line);
	return fd;
}

int raw_connect_at(int line, const struct mqt_server *s)
{
	int fd = mqt_raw_connect(s);
	ck_assert_msg(fd >= 0, "line %d: connect failed", line);
	return fd;
}

void send_at(int line, int fd, struct mqt_buf *b)
{
	ck_assert_msg(mqt_raw_send_buf(fd, b) == 0, "line %d: send: %s", line,
	              strerror(errno));
	mqt_buf_reset(b);
}

void expect_at(int line, int fd, struct mqt_frame *f, int op,
                      uint32_t tag)
{
	int rc = mqt_raw_read(fd, f, RD_MS);
	ck_assert_msg(rc == MQT_RD_FRAME,
	              "line %d: expected op 0x%02x tag %u, got %s", line, op,
	              tag, rd_str(rc));
	ck_assert_msg(f->op == op && f->tag == tag,
	              "line %d: expected op 0x%02x tag %u, got %s", line, op,
	              tag, mqt_frame_str(f));
}

void expect_err_at(int line, int fd, uint32_t tag, int code)
{
	struct mqt_frame f;
	int rc = mqt_raw_read(fd, &f, RD_MS);
	ck_assert_msg(rc == MQT_RD_FRAME,
	              "line %d: expected ERROR %s tag %u, got %s", line,
	              mqt_err_name(code), tag, rd_str(rc));
	ck_assert_msg(f.op == MQT_ERROR && f.tag == tag &&
	                      mqt_error_code(&f) == code,
	              "line %d: expected ERROR %s tag %u, got %s", line,
	              mqt_err_name(code), tag, mqt_frame_str(&f));
	mqt_frame_free(&f);
}

/* The server closes the connection, sending nothing more first. */
void expect_closed_at(int line, int fd)
{
	int skipped = 0;
	bool closed = mqt_raw_wait_closed(fd, RD_MS, &skipped);
	ck_assert_msg(closed, "line %d: the server did not close the "
	              "connection within %d ms", line, RD_MS);
	ck_assert_msg(skipped == 0, "line %d: %d frame(s) came after the "
	              "closing ERROR", line, skipped);
}

void expect_quiet_at(int line, int fd, int ms)
{
	if (mqt_raw_quiet(fd, ms))
		return;
	struct mqt_frame f;
	int rc = mqt_raw_read(fd, &f, 1000);
	ck_assert_msg(0, "line %d: expected nothing within %d ms, got %s%s",
	              line, ms, rd_str(rc),
	              rc == MQT_RD_FRAME ? mqt_frame_str(&f) : "");
}

uint64_t ok_u64_at(int line, struct mqt_frame *f)
{
	struct mqt_rd r;
	mqt_rd_init(&r, f);
	uint64_t v = mqt_get_u64(&r);
	ck_assert_msg(mqt_rd_done(&r), "line %d: OK payload is %u bytes, "
	              "expected a u64", line, f->len);
	return v;
}

uint32_t ok_u32_at(int line, struct mqt_frame *f)
{
	struct mqt_rd r;
	mqt_rd_init(&r, f);
	uint32_t v = mqt_get_u32(&r);
	ck_assert_msg(mqt_rd_done(&r), "line %d: OK payload is %u bytes, "
	              "expected a u32", line, f->len);
	return v;
}

void expect_ok_empty_at(int line, int fd, uint32_t tag)
{
	struct mqt_frame f;
	expect_at(line, fd, &f, MQT_OK, tag);
	ck_assert_msg(f.len == 0, "line %d: OK payload is %u bytes, expected "
	              "none", line, f.len);
	mqt_frame_free(&f);
}

/* SEND (no headers) and expect OK with a nonzero id. */
uint64_t do_send_at(int line, int fd, uint32_t tag, const char *q,
                           uint8_t prio, const char *body)
{
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);
	mqt_enc_send(&b, 0, tag, q, prio, body, strlen(body));
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_at(line, fd, &f, MQT_OK, tag);
	uint64_t id = ok_u64_at(line, &f);
	ck_assert_msg(id != 0, "line %d: SEND answered with message id 0",
	              line);
	mqt_frame_free(&f);
	return id;
}

bool body_is(const struct mqt_msg *m, const char *body)
{
	size_t n = strlen(body);
	return m->body_len == n && memcmp(m->body, body, n) == 0;
}

void check_body_at(int line, const struct mqt_msg *m,
                          const char *body)
{
	ck_assert_msg(body_is(m, body),
	              "line %d: expected body \"%s\", got \"%.*s\"", line,
	              body, (int)(m->body_len > 200 ? 200 : m->body_len),
	              m->body ? (const char *)m->body : "");
}

void parse_msg_at(int line, const struct mqt_frame *f,
                         struct mqt_msg *m)
{
	ck_assert_msg(mqt_parse_msg(f, m) == 0, "line %d: MESSAGE/DELIVER "
	              "payload does not parse (%s)", line, mqt_frame_str(f));
}

/* GET and expect MESSAGE; f must be freed by the caller. */
void do_get_at(int line, int fd, uint32_t tag, const char *q,
                      uint32_t timeout, uint8_t flags, struct mqt_frame *f,
                      struct mqt_msg *m)
{
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_get(&b, flags, tag, q, timeout);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_at(line, fd, f, MQT_MESSAGE, tag);
	parse_msg_at(line, f, m);
}

/* GET and expect its body; returns the id. */
uint64_t get_body_at(int line, int fd, uint32_t tag, const char *q,
                            uint32_t timeout, uint8_t flags,
                            const char *body, uint16_t attempts)
{
	struct mqt_frame f;
	struct mqt_msg m;
	do_get_at(line, fd, tag, q, timeout, flags, &f, &m);
	check_body_at(line, &m, body);
	ck_assert_msg(m.attempts == attempts, "line %d: expected attempts %u, "
	              "got %u", line, attempts, m.attempts);
	uint64_t id = m.id;
	mqt_frame_free(&f);
	return id;
}

void get_empty_at(int line, int fd, uint32_t tag, const char *q,
                         uint32_t timeout)
{
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);
	mqt_enc_get(&b, 0, tag, q, timeout);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	int rc = mqt_raw_read(fd, &f, RD_MS);
	ck_assert_msg(rc == MQT_RD_FRAME, "line %d: expected EMPTY tag %u, "
	              "got %s", line, tag, rd_str(rc));
	if (f.op == MQT_MESSAGE && f.tag == tag) {
		struct mqt_msg m;
		parse_msg_at(line, &f, &m);
		ck_assert_msg(0, "line %d: expected EMPTY from %s, got MESSAGE "
		              "\"%.*s\" (attempts %u, priority %u)", line, q,
		              (int)(m.body_len > 200 ? 200 : m.body_len),
		              (const char *)m.body, m.attempts, m.priority);
	}
	ck_assert_msg(f.op == MQT_EMPTY && f.tag == tag,
	              "line %d: expected EMPTY tag %u, got %s", line, tag,
	              mqt_frame_str(&f));
	ck_assert_msg(f.len == 0, "line %d: EMPTY with a payload", line);
	mqt_frame_free(&f);
}

uint32_t do_ack_at(int line, int fd, uint32_t tag, const uint64_t *ids,
                          uint16_t n)
{
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);
	mqt_enc_ack(&b, 0, tag, ids, n);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_at(line, fd, &f, MQT_OK, tag);
	uint32_t v = ok_u32_at(line, &f);
	mqt_frame_free(&f);
	return v;
}

uint32_t do_nack_delay_at(int line, int fd, uint32_t tag,
                                 uint8_t requeue, uint32_t delay_ms,
                                 const uint64_t *ids, uint16_t n)
{
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);
	mqt_enc_nack(&b, 0, tag, requeue, delay_ms, ids, n);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_at(line, fd, &f, MQT_OK, tag);
	uint32_t v = ok_u32_at(line, &f);
	mqt_frame_free(&f);
	return v;
}

void do_declare_at(int line, int fd, uint8_t flags, uint32_t tag,
                          const char *q, const struct mq_queue_opts *o,
                          struct declared *d)
{
	struct mqt_buf b;
	struct mqt_frame f;
	struct mqt_rd r;
	struct declared tmp;
	if (!d)
		d = &tmp;
	mqt_buf_init(&b);
	mqt_enc_declare(&b, flags, tag, q, o);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_at(line, fd, &f, MQT_DECLARED, tag);
	mqt_rd_init(&r, &f);
	mqt_get_name(&r, d->queue);
	d->ready = mqt_get_u64(&r);
	d->consumers = mqt_get_u32(&r);
	ck_assert_msg(mqt_rd_done(&r), "line %d: DECLARED payload does not "
	              "parse", line);
	mqt_frame_free(&f);
}

/* Send a frame built by enc and expect ERROR code with its tag. */

void declare_err_at(int line, int fd, uint8_t flags, uint32_t tag,
                           const char *q, const struct mq_queue_opts *o,
                           int code)
{
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_declare(&b, flags, tag, q, o);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_err_at(line, fd, tag, code);
}

void queue_op_at(int line, int fd, uint8_t op, uint8_t flags,
                        uint32_t tag, const char *q, struct mqt_frame *f)
{
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_queue_op(&b, op, flags, tag, q);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	int rc = mqt_raw_read(fd, f, RD_MS);
	ck_assert_msg(rc == MQT_RD_FRAME, "line %d: no reply to op 0x%02x: %s",
	              line, op, rd_str(rc));
	ck_assert_msg(f->tag == tag, "line %d: reply tag %u, expected %u",
	              line, f->tag, tag);
}

void delete_expect_at(int line, int fd, uint8_t flags, uint32_t tag,
                             const char *q, int code)
{
	struct mqt_frame f;
	queue_op_at(line, fd, MQT_DELETE, flags, tag, q, &f);
	if (code == 0)
		ck_assert_msg(f.op == MQT_OK && f.len == 0, "line %d: DELETE %s: "
		              "expected empty OK, got %s", line, q,
		              mqt_frame_str(&f));
	else
		ck_assert_msg(f.op == MQT_ERROR && mqt_error_code(&f) == code,
		              "line %d: DELETE %s: expected ERROR %s, got %s",
		              line, q, mqt_err_name(code), mqt_frame_str(&f));
	mqt_frame_free(&f);
}

uint64_t do_purge_at(int line, int fd, uint32_t tag, const char *q)
{
	struct mqt_frame f;
	queue_op_at(line, fd, MQT_PURGE, 0, tag, q, &f);
	ck_assert_msg(f.op == MQT_OK, "line %d: PURGE %s: got %s", line, q,
	              mqt_frame_str(&f));
	uint64_t v = ok_u64_at(line, &f);
	mqt_frame_free(&f);
	return v;
}

void do_consume_at(int line, int fd, uint8_t flags, uint32_t tag,
                          const char *q, uint32_t prefetch)
{
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_consume(&b, flags, tag, q, prefetch);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_ok_empty_at(line, fd, tag);
}

void do_cancel_at(int line, int fd, uint32_t tag, uint32_t which)
{
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_cancel(&b, tag, which);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_ok_empty_at(line, fd, tag);
}

void expect_deliver_at(int line, int fd, uint32_t tag,
                              struct mqt_frame *f, struct mqt_msg *m)
{
	expect_at(line, fd, f, MQT_DELIVER, tag);
	parse_msg_at(line, f, m);
}

/* DECLARE PASSIVE: 1 if the queue exists, 0 on NOT_FOUND. */
int queue_exists_at(int line, int fd, uint32_t tag, const char *q)
{
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);
	mqt_enc_declare(&b, MQ_PASSIVE, tag, q, NULL);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	int rc = mqt_raw_read(fd, &f, RD_MS);
	ck_assert_msg(rc == MQT_RD_FRAME, "line %d: no reply to passive "
	              "DECLARE: %s", line, rd_str(rc));
	ck_assert_msg(f.tag == tag && (f.op == MQT_DECLARED ||
	                               mqt_error_code(&f) == MQT_E_NOT_FOUND),
	              "line %d: passive DECLARE %s: expected DECLARED or "
	              "NOT_FOUND, got %s", line, q, mqt_frame_str(&f));
	int exists = f.op == MQT_DECLARED;
	mqt_frame_free(&f);
	return exists;
}

/* Wait until a queue is gone (an asynchronous effect of a close). */
void wait_gone_at(int line, int fd, const char *q)
{
	int64_t deadline = mqt_now_ms() + GONE_MS;
	uint32_t tag = 0x7000;
	while (queue_exists_at(line, fd, ++tag, q)) {
		ck_assert_msg(mqt_now_ms() < deadline, "line %d: queue %s "
		              "still exists after %d ms", line, q, GONE_MS);
		struct timespec ts = { 0, 5 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

void ping_at(int line, int fd, uint32_t tag)
{
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);
	mqt_enc_ping(&b, tag, "pp", 2);
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_at(line, fd, &f, MQT_PONG, tag);
	ck_assert_msg(f.len == 2 && memcmp(f.payload, "pp", 2) == 0,
	              "line %d: PONG payload differs from the PING's", line);
	mqt_frame_free(&f);
}
