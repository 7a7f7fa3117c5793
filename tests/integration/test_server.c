#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * Integration tests: each test starts the real mqd (MQD_BIN) with a config
 * of its own on a kernel-chosen port, talks to it over raw sockets (to check
 * the wire contract of PROTOCOL.md byte for byte) or through libmq, and stops
 * it with SIGTERM, expecting exit status 0 (under AddressSanitizer a leak in
 * the broker makes that fail).
 *
 * Waiting is done with reads that have deadlines and with wait-until loops;
 * the only fixed waits are short ones that check a negative ("nothing more
 * arrives within 200 ms").
 */

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../lib/harness.h"
#include "../lib/expect.h"

/* ===================================================================== */
/* 1, 2: framing and session                                              */
/* ===================================================================== */

START_TEST(test_hello_welcome)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_CONNECT(s);
	/* The HELLO of PROTOCOL.md section 6, byte for byte. */
	static const uint8_t hello[] = {
		0x00, 0x00, 0x00, 0x0e, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01,
		0x01, 0x03, 0x63, 0x6c, 0x69, 0x00, 0x00, 0x00,
	};
	ck_assert_int_eq(mqt_raw_send(fd, hello, sizeof hello), 0);
	struct mqt_frame f;
	EXPECT(fd, &f, MQT_WELCOME, 1);
	struct mqt_rd r;
	mqt_rd_init(&r, &f);
	ck_assert_uint_eq(mqt_get_u8(&r), 1);
	uint16_t sl = mqt_get_u16(&r);
	ck_assert_msg(sl > 0, "WELCOME names no server");
	mqt_get_bytes(&r, sl);
	ck_assert_uint_eq(mqt_get_u32(&r), 1048576); /* the default max_frame */
	uint64_t id1 = mqt_get_u64(&r);
	ck_assert_msg(mqt_rd_done(&r), "WELCOME payload does not parse: %s",
	              mqt_frame_str(&f));
	mqt_frame_free(&f);

	/* Another connection gets another connection id. */
	int fd2 = RAW_CONNECT(s);
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_hello(&b, 77, 1, "");
	SENDB(fd2, &b);
	EXPECT(fd2, &f, MQT_WELCOME, 77);
	mqt_rd_init(&r, &f);
	mqt_get_u8(&r);
	mqt_get_bytes(&r, mqt_get_u16(&r));
	mqt_get_u32(&r);
	uint64_t id2 = mqt_get_u64(&r);
	ck_assert(mqt_rd_done(&r));
	ck_assert_msg(id1 != id2, "two connections share connection id %llu",
	              (unsigned long long)id1);
	mqt_frame_free(&f);
	mqt_buf_free(&b);
	close(fd);
	close(fd2);
	STOP(s);
}
END_TEST

START_TEST(test_ping_pong)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);
	static const uint8_t bytes[] = { 0, 1, 2, 0xff, 'a', 'b', 0 };
	mqt_enc_ping(&b, 7, bytes, sizeof bytes);
	mqt_enc_ping(&b, 8, NULL, 0);
	SENDB(fd, &b);
	EXPECT(fd, &f, MQT_PONG, 7);
	ck_assert_uint_eq(f.len, sizeof bytes);
	ck_assert(memcmp(f.payload, bytes, sizeof bytes) == 0);
	mqt_frame_free(&f);
	EXPECT(fd, &f, MQT_PONG, 8);
	ck_assert_uint_eq(f.len, 0);
	mqt_frame_free(&f);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_hello_required)
{
	struct mqt_server s;
	START(s);
	struct mqt_buf b;
	mqt_buf_init(&b);

	int fd = RAW_CONNECT(s);
	mqt_enc_ping(&b, 5, "x", 1);
	SENDB(fd, &b);
	EXPECT_ERR(fd, 5, MQT_E_HELLO_REQUIRED);
	EXPECT_CLOSED(fd);
	close(fd);

	/* A SEND as the first frame, with more frames behind it: the server
	 * answers the first, ignores the rest and closes. */
	fd = RAW_CONNECT(s);
	mqt_enc_send(&b, 0, 9, "hr", 0, "x", 1);
	mqt_enc_ping(&b, 10, NULL, 0);
	SENDB(fd, &b);
	EXPECT_ERR(fd, 9, MQT_E_HELLO_REQUIRED);
	EXPECT_CLOSED(fd);
	close(fd);

	/* Nothing was stored by the refused SEND. */
	fd = RAW_OPEN(s);
	ck_assert_msg(!QUEUE_EXISTS(fd, 2, "hr"),
	              "a SEND before HELLO created its queue");
	close(fd);
	mqt_buf_free(&b);
	STOP(s);
}
END_TEST

START_TEST(test_second_hello)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_hello(&b, 2, 1, "again");
	SENDB(fd, &b);
	EXPECT_ERR(fd, 2, MQT_E_BAD_ARGUMENT);
	PING(fd, 3); /* still open */
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_hello_bad_version)
{
	struct mqt_server s;
	START(s);
	struct mqt_buf b;
	mqt_buf_init(&b);
	static const uint8_t versions[] = { 2, 0, 255 };
	for (size_t i = 0; i < sizeof versions; i++) {
		int fd = RAW_CONNECT(s);
		mqt_enc_hello(&b, 1, versions[i], "v");
		SENDB(fd, &b);
		EXPECT_ERR(fd, 1, MQT_E_UNSUPPORTED_VERSION);
		EXPECT_CLOSED(fd);
		close(fd);
	}
	mqt_buf_free(&b);
	STOP(s);
}
END_TEST

/* Every frame arrives one byte per write: the server must buffer. */
START_TEST(test_byte_at_a_time)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_CONNECT(s);
	struct mqt_buf b;
	struct mqt_frame f;
	struct mqt_msg m;
	mqt_buf_init(&b);
	mqt_enc_hello(&b, 1, 1, "slow");
	mqt_enc_send(&b, 0, 2, "bytewise", 3, "one byte at a time", 18);
	mqt_enc_get(&b, 0, 3, "bytewise", 0);
	mqt_enc_ping(&b, 4, "end", 3);
	for (size_t i = 0; i < b.len; i++) {
		ck_assert_int_eq(mqt_raw_send(fd, b.p + i, 1), 0);
		/* Not for correctness: let the bytes go out as separate
		 * segments so that the server really sees partial frames. */
		usleep(300);
	}
	EXPECT(fd, &f, MQT_WELCOME, 1);
	mqt_frame_free(&f);
	EXPECT(fd, &f, MQT_OK, 2);
	uint64_t id = ok_u64_at(__LINE__, &f);
	mqt_frame_free(&f);
	EXPECT(fd, &f, MQT_MESSAGE, 3);
	parse_msg_at(__LINE__, &f, &m);
	CHECK_BODY(&m, "one byte at a time");
	ck_assert(m.id == id);
	ck_assert_uint_eq(m.priority, 3);
	mqt_frame_free(&f);
	EXPECT(fd, &f, MQT_PONG, 4);
	mqt_frame_free(&f);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

/* length > max_frame: ERROR FRAME_TOO_LARGE tag 0 and close, without
 * waiting for (or reading) the body, which is never sent here. */
START_TEST(test_frame_too_large)
{
	struct mqt_server s;
	START(s);
	struct mqt_buf b;
	mqt_buf_init(&b);

	int fd = RAW_OPEN(s);
	mqt_put_u32(&b, 1048576 + 1);
	mqt_put_u8(&b, MQT_SEND);
	mqt_put_u8(&b, 0);
	mqt_put_u32(&b, 9);
	SENDB(fd, &b);
	EXPECT_ERR(fd, 0, MQT_E_FRAME_TOO_LARGE);
	EXPECT_CLOSED(fd);
	close(fd);

	/* The length alone decides, even before HELLO. */
	fd = RAW_CONNECT(s);
	mqt_put_u32(&b, 0xffffffffu);
	SENDB(fd, &b);
	EXPECT_ERR(fd, 0, MQT_E_FRAME_TOO_LARGE);
	EXPECT_CLOSED(fd);
	close(fd);

	/* The server is fine afterwards. */
	fd = RAW_OPEN(s);
	PING(fd, 1);
	close(fd);
	mqt_buf_free(&b);
	STOP(s);
}
END_TEST

/* length == max_frame is legal, and the MESSAGE carrying it back may be
 * larger than max_frame. */
START_TEST(test_frame_max_size_ok)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_buf b;
	struct mqt_frame f;
	struct mqt_msg m;
	mqt_buf_init(&b);
	const char *q = "big";
	/* length = 6 + name(1+3) + ttl 4 + delay 4 + prio 1 + headers 2 +
	 * blob 4 + body */
	size_t body_len = 1048576 - (6 + 4 + 4 + 4 + 1 + 2 + 4);
	char *body = malloc(body_len);
	ck_assert_ptr_nonnull(body);
	for (size_t i = 0; i < body_len; i++)
		body[i] = (char)('a' + i % 26);
	mqt_enc_send(&b, 0, 3, q, 0, body, body_len);
	ck_assert_uint_eq(b.len, 4 + 1048576);
	SENDB(fd, &b);
	EXPECT(fd, &f, MQT_OK, 3);
	mqt_frame_free(&f);
	DO_GET(fd, 4, q, 0, MQ_AUTO_ACK, &f, &m);
	ck_assert_uint_eq(m.body_len, body_len);
	ck_assert(memcmp(m.body, body, body_len) == 0);
	mqt_frame_free(&f);
	free(body);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_frame_too_short)
{
	struct mqt_server s;
	START(s);
	struct mqt_buf b;
	mqt_buf_init(&b);
	static const uint32_t lengths[] = { 5, 0, 1 };
	for (size_t i = 0; i < 3; i++) {
		int fd = RAW_OPEN(s);
		/* Only the length field: the verdict must not wait for more. */
		mqt_put_u32(&b, lengths[i]);
		SENDB(fd, &b);
		EXPECT_ERR(fd, 0, MQT_E_BAD_FRAME);
		EXPECT_CLOSED(fd);
		close(fd);
	}
	int fd = RAW_OPEN(s);
	PING(fd, 1);
	close(fd);
	mqt_buf_free(&b);
	STOP(s);
}
END_TEST

/* A payload that does not parse: BAD_ARGUMENT, and the connection stays
 * usable. */
START_TEST(test_bad_payload)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_buf b;
	size_t st;
	mqt_buf_init(&b);

	/* SEND whose body blob runs past the end. */
	st = mqt_frame_begin(&b, MQT_SEND, 0, 10);
	mqt_put_name(&b, "bp");
	mqt_put_u32(&b, 0);
	mqt_put_u32(&b, 0);
	mqt_put_u8(&b, 0);
	mqt_put_u16(&b, 0);
	mqt_put_u32(&b, 100);
	mqt_put_bytes(&b, "short", 5);
	mqt_frame_end(&b, st);
	EXPECT_REQ_ERR(fd, &b, 10, MQT_E_BAD_ARGUMENT);

	/* SEND with bytes left over. */
	mqt_enc_send(&b, 0, 11, "bp", 0, "x", 1);
	b.p[3]++;               /* one more byte in the length ... */
	mqt_put_u8(&b, 0x42);   /* ... and there it is */
	EXPECT_REQ_ERR(fd, &b, 11, MQT_E_BAD_ARGUMENT);

	/* GET without its timeout. */
	st = mqt_frame_begin(&b, MQT_GET, 0, 12);
	mqt_put_name(&b, "bp");
	mqt_frame_end(&b, st);
	EXPECT_REQ_ERR(fd, &b, 12, MQT_E_BAD_ARGUMENT);

	/* A name whose length runs past the end. */
	st = mqt_frame_begin(&b, MQT_PURGE, 0, 13);
	mqt_put_u8(&b, 20);
	mqt_put_bytes(&b, "bp", 2);
	mqt_frame_end(&b, st);
	EXPECT_REQ_ERR(fd, &b, 13, MQT_E_BAD_ARGUMENT);

	/* Headers with a repeated key. */
	st = mqt_frame_begin(&b, MQT_SEND, 0, 14);
	mqt_put_name(&b, "bp");
	mqt_put_u32(&b, 0);
	mqt_put_u32(&b, 0);
	mqt_put_u8(&b, 0);
	mqt_put_u16(&b, 2);
	mqt_put_name(&b, "k");
	mqt_put_str16(&b, "1");
	mqt_put_name(&b, "k");
	mqt_put_str16(&b, "2");
	mqt_put_blob(&b, "x", 1);
	mqt_frame_end(&b, st);
	EXPECT_REQ_ERR(fd, &b, 14, MQT_E_BAD_ARGUMENT);

	/* ACK whose count promises more ids than there are. */
	st = mqt_frame_begin(&b, MQT_ACK, 0, 15);
	mqt_put_u16(&b, 3);
	mqt_put_u64(&b, 1);
	mqt_frame_end(&b, st);
	EXPECT_REQ_ERR(fd, &b, 15, MQT_E_BAD_ARGUMENT);

	/* None of that was stored, and the connection still works. */
	PING(fd, 16);
	DO_SEND(fd, 17, "bp", 0, "good");
	GET_BODY(fd, 18, "bp", MQ_AUTO_ACK, "good", 1);
	GET_EMPTY(fd, 19, "bp", 0);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

/* Flag bits not listed for an op: BAD_ARGUMENT. */
START_TEST(test_bad_flags)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_get(&b, MQ_QUIET, 1, "bf", 0);
	EXPECT_REQ_ERR(fd, &b, 1, MQT_E_BAD_ARGUMENT);
	mqt_enc_send(&b, 0x80, 2, "bf", 0, "x", 1);
	EXPECT_REQ_ERR(fd, &b, 2, MQT_E_BAD_ARGUMENT);
	mqt_enc_declare(&b, MQ_IF_EMPTY, 3, "bf", NULL);
	EXPECT_REQ_ERR(fd, &b, 3, MQT_E_BAD_ARGUMENT);
	mqt_enc_queue_op(&b, MQT_DELETE, MQ_PASSIVE, 4, "bf");
	EXPECT_REQ_ERR(fd, &b, 4, MQT_E_BAD_ARGUMENT);
	mqt_enc_consume(&b, MQ_EXCLUSIVE, 5, "bf", 1);
	EXPECT_REQ_ERR(fd, &b, 5, MQT_E_BAD_ARGUMENT);
	size_t st = mqt_frame_begin(&b, MQT_PING, MQ_QUIET, 6);
	mqt_frame_end(&b, st);
	EXPECT_REQ_ERR(fd, &b, 6, MQT_E_BAD_ARGUMENT);
	/* Nothing was sent to bf. */
	GET_EMPTY(fd, 7, "bf", 0);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_unknown_op)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_buf b;
	mqt_buf_init(&b);
	static const uint8_t ops[] = { 0x00, 0x03, 0x15, 0x50, 0x7f, 0xfe };
	for (size_t i = 0; i < sizeof ops; i++) {
		size_t st = mqt_frame_begin(&b, ops[i], 0, 100 + (uint32_t)i);
		mqt_put_bytes(&b, "junk", 4);
		mqt_frame_end(&b, st);
		EXPECT_REQ_ERR(fd, &b, 100 + (uint32_t)i, MQT_E_UNKNOWN_OP);
	}
	PING(fd, 200);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_bad_queue_names)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_buf b;
	mqt_buf_init(&b);
	uint32_t tag = 1;
	static const char *const bad[] = { "", "a b", "a/b", "q\xc3\xa9",
		                           "star*", "x\ty", "semi;colon" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		mqt_enc_send(&b, 0, tag, bad[i], 0, "x", 1);
		EXPECT_REQ_ERR(fd, &b, tag, MQT_E_BAD_ARGUMENT);
		tag++;
		mqt_enc_get(&b, 0, tag, bad[i], 0);
		EXPECT_REQ_ERR(fd, &b, tag, MQT_E_BAD_ARGUMENT);
		tag++;
		mqt_enc_consume(&b, 0, tag, bad[i], 1);
		EXPECT_REQ_ERR(fd, &b, tag, MQT_E_BAD_ARGUMENT);
		tag++;
		mqt_enc_queue_op(&b, MQT_PURGE, 0, tag, bad[i]);
		EXPECT_REQ_ERR(fd, &b, tag, MQT_E_BAD_ARGUMENT);
		tag++;
		mqt_enc_queue_op(&b, MQT_DELETE, 0, tag, bad[i]);
		EXPECT_REQ_ERR(fd, &b, tag, MQT_E_BAD_ARGUMENT);
		tag++;
		if (bad[i][0]) { /* "" is legal for DECLARE */
			mqt_enc_declare(&b, 0, tag, bad[i], NULL);
			EXPECT_REQ_ERR(fd, &b, tag, MQT_E_BAD_ARGUMENT);
			tag++;
		}
	}
	/* A NUL byte inside a name. */
	size_t st = mqt_frame_begin(&b, MQT_GET, 0, tag);
	mqt_put_u8(&b, 3);
	mqt_put_bytes(&b, "a\0b", 3);
	mqt_put_u32(&b, 0);
	mqt_frame_end(&b, st);
	EXPECT_REQ_ERR(fd, &b, tag, MQT_E_BAD_ARGUMENT);
	tag++;
	/* A dead_letter that is not a name. */
	struct mq_queue_opts o = { .dead_letter = "no good" };
	DECLARE_ERR(fd, 0, tag, "dlname", &o, MQT_E_BAD_ARGUMENT);
	tag++;

	/* The longest name, made of every allowed character class, works. */
	char longname[256];
	static const char chars[] = "AZaz09._-:";
	for (int i = 0; i < 255; i++)
		longname[i] = chars[i % 10];
	longname[255] = '\0';
	DO_SEND(fd, tag++, longname, 0, "long");
	struct mqt_frame f;
	struct mqt_msg m;
	DO_GET(fd, tag++, longname, 0, MQ_AUTO_ACK, &f, &m);
	ck_assert_str_eq(m.source, longname);
	CHECK_BODY(&m, "long");
	mqt_frame_free(&f);
	PING(fd, tag++);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

/* 1000 pipelined frames over q0..q99 (spread over the 4 workers), with
 * PINGs among them: replies come back in request order, and each GET sees
 * exactly the SENDs to its queue that were sent before it. */
START_TEST(test_pipeline_order)
{
	enum { N = 1000, NQ = 100 };
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_buf b;
	mqt_buf_init(&b);
	/* What each request expects: kind and, for a GET, the body or -1. */
	static int kind[N], expect_body[N];
	static int fifo[NQ][N];
	static int head[NQ], tail[NQ];
	int sends = 0, gets = 0;
	for (int i = 0; i < N; i++) {
		uint32_t tag = 1000 + (uint32_t)i;
		char q[16], body[16];
		if (i % 10 == 9) {
			kind[i] = MQT_PING;
			mqt_enc_ping(&b, tag, &i, sizeof i);
		} else if (i < N / 2 || i % 3 == 0) {
			int qi = sends % NQ;
			snprintf(q, sizeof q, "q%d", qi);
			snprintf(body, sizeof body, "b%d", i);
			kind[i] = MQT_SEND;
			fifo[qi][tail[qi]++] = i;
			mqt_enc_send(&b, 0, tag, q, 0, body, strlen(body));
			sends++;
		} else {
			int qi = (gets * 7) % NQ;
			snprintf(q, sizeof q, "q%d", qi);
			kind[i] = MQT_GET;
			expect_body[i] = head[qi] < tail[qi] ? fifo[qi][head[qi]++]
			                                     : -1;
			mqt_enc_get(&b, MQ_AUTO_ACK, tag, q, 0);
			gets++;
		}
	}
	SENDB(fd, &b);
	for (int i = 0; i < N; i++) {
		uint32_t tag = 1000 + (uint32_t)i;
		struct mqt_frame f;
		int rc = mqt_raw_read(fd, &f, RD_MS);
		ck_assert_msg(rc == MQT_RD_FRAME, "reply %d (tag %u): %s", i,
		              tag, rd_str(rc));
		ck_assert_msg(f.tag == tag, "reply %d: expected tag %u, got %s "
		              "(replies out of request order)", i, tag,
		              mqt_frame_str(&f));
		if (kind[i] == MQT_PING) {
			ck_assert_msg(f.op == MQT_PONG && f.len == sizeof i &&
			                      memcmp(f.payload, &i, sizeof i) == 0,
			              "reply %d: expected PONG, got %s", i,
			              mqt_frame_str(&f));
		} else if (kind[i] == MQT_SEND) {
			ck_assert_msg(f.op == MQT_OK && f.len == 8,
			              "reply %d: expected OK(id), got %s", i,
			              mqt_frame_str(&f));
		} else if (expect_body[i] < 0) {
			ck_assert_msg(f.op == MQT_EMPTY, "reply %d: expected "
			              "EMPTY, got %s", i, mqt_frame_str(&f));
		} else {
			char body[16];
			struct mqt_msg m;
			ck_assert_msg(f.op == MQT_MESSAGE, "reply %d: expected "
			              "MESSAGE, got %s", i, mqt_frame_str(&f));
			parse_msg_at(__LINE__, &f, &m);
			snprintf(body, sizeof body, "b%d", expect_body[i]);
			CHECK_BODY(&m, body);
		}
		mqt_frame_free(&f);
	}
	EXPECT_QUIET(fd, QUIET_MS);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

/* How many of the queues mc0..mc<nq-1> have a consumer, and their ready
 * messages in *ready: passive DECLAREs on fd, pipelined (a queue not there
 * yet counts as none). */
static int queues_consumed(int fd, int nq, uint64_t *ready)
{
	struct mqt_buf b;
	struct mqt_frame f;
	int n = 0;

	*ready = 0;
	mqt_buf_init(&b);
	for (int q = 0; q < nq; q++) {
		char name[16];
		snprintf(name, sizeof name, "mc%d", q);
		mqt_enc_declare(&b, MQ_PASSIVE, 500 + (uint32_t)q, name, NULL);
	}
	SENDB(fd, &b);
	mqt_buf_free(&b);
	for (int q = 0; q < nq; q++) {
		int rc = mqt_raw_read(fd, &f, RD_MS);
		ck_assert_msg(rc == MQT_RD_FRAME && f.tag == 500 + (uint32_t)q,
		              "passive DECLARE mc%d: %s", q, rc == MQT_RD_FRAME
		              ? mqt_frame_str(&f) : rd_str(rc));
		if (f.op == MQT_DECLARED) {
			struct mqt_rd r;
			char name[256];
			mqt_rd_init(&r, &f);
			mqt_get_name(&r, name);
			*ready += mqt_get_u64(&r);
			n += mqt_get_u32(&r) > 0;
		} else {
			ck_assert_msg(mqt_error_code(&f) == MQT_E_NOT_FOUND,
			              "passive DECLARE mc%d: %s", q,
			              mqt_frame_str(&f));
		}
		mqt_frame_free(&f);
	}
	return n;
}

/* One connection consumes 100 queues behind a GET that waits, and the
 * queues get their messages while the CONSUMEs' OKs are still held behind
 * that GET: owners then batch the deliveries of several consumers of the
 * connection together, and still no DELIVER may come before its CONSUME's
 * OK, and each queue's messages come in order.  No step relies on timing:
 * the messages are sent once every CONSUME has reached its owner (passive
 * DECLAREs count the consumers), they are all in once the producer's PING
 * is answered, and only then does a message for the GET release it. */
START_TEST(test_many_consumers_order)
{
	enum { NQ = 100, PER = 5 };
	struct mqt_server s;
	START(s);
	int prod = RAW_OPEN(s), fd = RAW_OPEN(s);
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);
	/* Longer than the test may take: released below, never timed out. */
	mqt_enc_get(&b, MQ_AUTO_ACK, 1, "mc-empty", 50000);
	for (int q = 0; q < NQ; q++) {
		char name[16];
		snprintf(name, sizeof name, "mc%d", q);
		mqt_enc_consume(&b, 0, 100 + (uint32_t)q, name, 0);
	}
	SENDB(fd, &b);
	int64_t deadline = mqt_now_ms() + GONE_MS;
	uint64_t ready;
	int consumed;
	while ((consumed = queues_consumed(prod, NQ, &ready)) < NQ) {
		ck_assert_msg(mqt_now_ms() < deadline, "only %d of %d CONSUMEs "
		              "reached their owners", consumed, NQ);
		sleep_ms(5);
	}
	for (int i = 0; i < PER; i++) {
		for (int q = 0; q < NQ; q++) {
			char name[16], body[16];
			snprintf(name, sizeof name, "mc%d", q);
			snprintf(body, sizeof body, "m%d", i);
			mqt_enc_send(&b, MQ_QUIET, 1, name, 0, body, strlen(body));
		}
	}
	mqt_enc_ping(&b, 2, NULL, 0);
	SENDB(prod, &b);
	EXPECT(prod, &f, MQT_PONG, 2);
	mqt_frame_free(&f);
	/* Every message went to a consumer of fd (none is left ready), yet
	 * the GET has waited all along, so nothing may have come. */
	ck_assert_int_eq(queues_consumed(prod, NQ, &ready), NQ);
	ck_assert_uint_eq(ready, 0);
	EXPECT_QUIET(fd, 0);
	DO_SEND(prod, 3, "mc-empty", 0, "go");
	EXPECT(fd, &f, MQT_MESSAGE, 1);
	mqt_frame_free(&f);
	bool ok_seen[NQ] = {false};
	int next[NQ] = {0}, delivered = 0, oks = 0;
	while (oks < NQ || delivered < NQ * PER) {
		int rc = mqt_raw_read(fd, &f, RD_MS);
		ck_assert_msg(rc == MQT_RD_FRAME, "after %d OKs and %d deliveries: "
		              "%s", oks, delivered, rd_str(rc));
		int q = (int)f.tag - 100;
		ck_assert_msg(q >= 0 && q < NQ, "unexpected %s", mqt_frame_str(&f));
		if (f.op == MQT_OK) {
			ck_assert_msg(!ok_seen[q], "second OK for tag %u", f.tag);
			ok_seen[q] = true;
			oks++;
		} else {
			struct mqt_msg m;
			char body[16];
			ck_assert_msg(f.op == MQT_DELIVER, "expected DELIVER, got %s",
			              mqt_frame_str(&f));
			ck_assert_msg(ok_seen[q], "DELIVER with tag %u before its "
			              "CONSUME's OK", f.tag);
			parse_msg_at(__LINE__, &f, &m);
			snprintf(body, sizeof body, "m%d", next[q]++);
			CHECK_BODY(&m, body);
			delivered++;
		}
		mqt_frame_free(&f);
	}
	mqt_buf_free(&b);
	close(fd);
	close(prod);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* 4.1: sending                                                           */
/* ===================================================================== */

START_TEST(test_quiet_send)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_buf b;
	struct mqt_frame f;
	mqt_buf_init(&b);
	/* Success: no reply; the PING behind it is the next frame. */
	mqt_enc_send(&b, MQ_QUIET, 5, "qs", 0, "quiet", 5);
	mqt_enc_ping(&b, 6, NULL, 0);
	SENDB(fd, &b);
	EXPECT(fd, &f, MQT_PONG, 6);
	mqt_frame_free(&f);
	GET_BODY(fd, 7, "qs", MQ_AUTO_ACK, "quiet", 1);

	/* Failure: ERROR with the SEND's tag, then the PONG. */
	mqt_enc_send(&b, MQ_QUIET, 8, "qs", 10, "loud", 4);
	mqt_enc_ping(&b, 9, NULL, 0);
	mqt_enc_send(&b, MQ_QUIET, 10, "bad name", 0, "loud", 4);
	mqt_enc_send(&b, MQ_QUIET, 11, "qs", 0, "ok", 2);
	mqt_enc_ping(&b, 12, NULL, 0);
	SENDB(fd, &b);
	EXPECT_ERR(fd, 8, MQT_E_BAD_ARGUMENT);
	EXPECT(fd, &f, MQT_PONG, 9);
	mqt_frame_free(&f);
	EXPECT_ERR(fd, 10, MQT_E_BAD_ARGUMENT);
	EXPECT(fd, &f, MQT_PONG, 12);
	mqt_frame_free(&f);
	GET_BODY(fd, 13, "qs", MQ_AUTO_ACK, "ok", 1);
	GET_EMPTY(fd, 14, "qs", 0);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_send_priority_range)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_send(&b, 0, 1, "pr", 10, "ten", 3);
	EXPECT_REQ_ERR(fd, &b, 1, MQT_E_BAD_ARGUMENT);
	mqt_enc_send(&b, 0, 2, "pr", 255, "max", 3);
	EXPECT_REQ_ERR(fd, &b, 2, MQT_E_BAD_ARGUMENT);
	DO_SEND(fd, 3, "pr", 9, "nine");
	GET_BODY(fd, 4, "pr", MQ_AUTO_ACK, "nine", 1);
	GET_EMPTY(fd, 5, "pr", 0);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_priority_order)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	static const struct {
		uint8_t prio;
		const char *body;
	} in[] = {
		{ 0, "a0" }, { 5, "b5" }, { 9, "c9" }, { 5, "d5" }, { 0, "e0" },
		{ 9, "f9" }, { 1, "g1" }, { 5, "h5" },
	};
	static const char *const out[] = { "c9", "f9", "b5", "d5", "h5",
		                           "g1", "a0", "e0" };
	uint32_t tag = 1;
	for (size_t i = 0; i < 8; i++)
		DO_SEND(fd, tag++, "prio", in[i].prio, in[i].body);
	for (size_t i = 0; i < 8; i++) {
		struct mqt_frame f;
		struct mqt_msg m;
		DO_GET(fd, tag++, "prio", 0, MQ_AUTO_ACK, &f, &m);
		CHECK_BODY(&m, out[i]);
		ck_assert_uint_eq(m.priority, (uint8_t)(out[i][1] - '0'));
		mqt_frame_free(&f);
	}
	GET_EMPTY(fd, tag++, "prio", 0);
	close(fd);
	STOP(s);
}
END_TEST

/* Every field of MESSAGE: id, source, attempts, timestamp, priority,
 * headers (exact bytes), a binary body and an empty one. */
START_TEST(test_message_fields)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_buf b, h;
	struct mqt_frame f;
	struct mqt_msg m;
	mqt_buf_init(&b);
	mqt_buf_init(&h);
	mqt_put_name(&h, "reply-to");
	mqt_put_str16(&h, "tmp.x");
	mqt_put_name(&h, "correlation-id");
	mqt_put_str16(&h, "42");
	static const uint8_t body[] = { 0, 1, 2, 0, 0xff, 0xfe, '\n' };
	int64_t t0 = mqt_wall_ms();
	size_t st = mqt_frame_begin(&b, MQT_SEND, 0, 1);
	mqt_put_name(&b, "fields");
	mqt_put_u32(&b, 0);
	mqt_put_u32(&b, 0);
	mqt_put_u8(&b, 4);
	mqt_put_u16(&b, 2);
	mqt_put_bytes(&b, h.p, h.len);
	mqt_put_blob(&b, body, sizeof body);
	mqt_frame_end(&b, st);
	SENDB(fd, &b);
	EXPECT(fd, &f, MQT_OK, 1);
	uint64_t id = ok_u64_at(__LINE__, &f);
	mqt_frame_free(&f);
	int64_t t1 = mqt_wall_ms();
	uint64_t id2 = DO_SEND(fd, 2, "fields", 0, "");
	ck_assert_msg(id != id2, "two messages share id %llu",
	              (unsigned long long)id);

	DO_GET(fd, 3, "fields", 0, 0, &f, &m);
	ck_assert(m.id == id);
	ck_assert_str_eq(m.source, "fields");
	ck_assert_uint_eq(m.attempts, 1);
	ck_assert_msg((int64_t)m.timestamp_ms >= t0 - 1000 &&
	                      (int64_t)m.timestamp_ms <= t1 + 1000,
	              "timestamp %llu not within [%lld, %lld]",
	              (unsigned long long)m.timestamp_ms, (long long)t0,
	              (long long)t1);
	ck_assert_uint_eq(m.priority, 4);
	ck_assert_uint_eq(m.nheaders, 2);
	ck_assert_uint_eq(m.headers_len, h.len);
	ck_assert(memcmp(m.headers, h.p, h.len) == 0);
	char v[64];
	ck_assert_int_eq(mqt_msg_header(&m, "correlation-id", v, sizeof v), 2);
	ck_assert_str_eq(v, "42");
	ck_assert_uint_eq(m.body_len, sizeof body);
	ck_assert(memcmp(m.body, body, sizeof body) == 0);
	uint64_t ids[1] = { m.id };
	mqt_frame_free(&f);
	ck_assert_uint_eq(DO_ACK(fd, 4, ids, 1), 1);

	DO_GET(fd, 5, "fields", 0, MQ_AUTO_ACK, &f, &m);
	ck_assert(m.id == id2);
	ck_assert_uint_eq(m.body_len, 0);
	ck_assert_uint_eq(m.nheaders, 0);
	mqt_frame_free(&f);
	mqt_buf_free(&b);
	mqt_buf_free(&h);
	close(fd);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* 3: queues                                                              */
/* ===================================================================== */

START_TEST(test_declare)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	int fd2 = RAW_OPEN(s);
	struct declared d;
	DO_DECLARE(fd, 0, 1, "d1", NULL, &d);
	ck_assert_str_eq(d.queue, "d1");
	ck_assert_uint_eq(d.ready, 0);
	ck_assert_uint_eq(d.consumers, 0);
	DO_SEND(fd, 2, "d1", 0, "m1");
	DO_SEND(fd, 3, "d1", 0, "m2");
	DO_SEND(fd, 4, "d1", 0, "m3");
	DO_DECLARE(fd, 0, 5, "d1", NULL, &d);
	ck_assert_str_eq(d.queue, "d1");
	ck_assert_uint_eq(d.ready, 3);
	ck_assert_uint_eq(d.consumers, 0);
	/* A consumer with prefetch 1 holds one: 2 ready, 1 consumer. */
	DO_CONSUME(fd2, 0, 9, "d1", 1);
	struct mqt_frame f;
	struct mqt_msg m;
	EXPECT_DELIVER(fd2, 9, &f, &m);
	CHECK_BODY(&m, "m1");
	mqt_frame_free(&f);
	DO_DECLARE(fd, MQ_PASSIVE, 6, "d1", NULL, &d);
	ck_assert_uint_eq(d.ready, 2);
	ck_assert_uint_eq(d.consumers, 1);
	close(fd);
	close(fd2);
	STOP(s);
}
END_TEST

START_TEST(test_declare_passive)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	DECLARE_ERR(fd, MQ_PASSIVE, 1, "nosuch", NULL, MQT_E_NOT_FOUND);
	/* PASSIVE created nothing. */
	DECLARE_ERR(fd, MQ_PASSIVE, 2, "nosuch", NULL, MQT_E_NOT_FOUND);
	DO_DECLARE(fd, 0, 3, "nosuch", NULL, NULL);
	struct declared d;
	DO_DECLARE(fd, MQ_PASSIVE, 4, "nosuch", NULL, &d);
	ck_assert_str_eq(d.queue, "nosuch");
	/* PASSIVE only checks: differing settings are not a CONFLICT. */
	struct mq_queue_opts o = { .max_length = 7 };
	DO_DECLARE(fd, MQ_PASSIVE, 5, "nosuch", &o, NULL);
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_declare_conflict)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mq_queue_opts o = { .max_length = 10, .overflow = 1,
		                   .max_attempts = 5 };
	DO_DECLARE(fd, 0, 1, "c1", &o, NULL);
	DO_DECLARE(fd, 0, 2, "c1", &o, NULL); /* same: fine */
	struct mq_queue_opts zero = { 0 };
	DO_DECLARE(fd, 0, 3, "c1", &zero, NULL); /* 0 never differs */
	struct mq_queue_opts o2 = o;
	o2.max_length = 20;
	DECLARE_ERR(fd, 0, 4, "c1", &o2, MQT_E_CONFLICT);
	o2 = o;
	o2.overflow = 2;
	DECLARE_ERR(fd, 0, 5, "c1", &o2, MQT_E_CONFLICT);
	o2 = o;
	o2.max_attempts = 6;
	DECLARE_ERR(fd, 0, 6, "c1", &o2, MQT_E_CONFLICT);
	o2 = (struct mq_queue_opts){ .ack_timeout_ms = 0, .max_length = 10 };
	DO_DECLARE(fd, 0, 7, "c1", &o2, NULL);
	/* The queue kept its settings: max_length 10 with reject. */
	for (uint32_t i = 0; i < 10; i++)
		DO_SEND(fd, 100 + i, "c1", 0, "x");
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_send(&b, 0, 200, "c1", 0, "x", 1);
	EXPECT_REQ_ERR(fd, &b, 200, MQT_E_QUEUE_FULL);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_declare_server_named)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	int fd2 = RAW_OPEN(s);
	struct declared d1, d2;
	DO_DECLARE(fd, 0, 1, "", NULL, &d1);
	DO_DECLARE(fd, 0, 2, "", NULL, &d2);
	ck_assert_msg(strncmp(d1.queue, "tmp.", 4) == 0 && strlen(d1.queue) > 4,
	              "server-named queue is \"%s\"", d1.queue);
	ck_assert_msg(strncmp(d2.queue, "tmp.", 4) == 0 && strlen(d2.queue) > 4,
	              "server-named queue is \"%s\"", d2.queue);
	ck_assert_str_ne(d1.queue, d2.queue);
	ck_assert_uint_eq(d1.ready, 0);
	ck_assert(QUEUE_EXISTS(fd2, 3, d1.queue));
	DO_SEND(fd2, 4, d1.queue, 0, "to tmp");
	GET_BODY(fd, 5, d1.queue, MQ_AUTO_ACK, "to tmp", 1);

	/* The request/reply pattern: an exclusive server-named queue goes
	 * away with its connection. */
	struct declared d3;
	DO_DECLARE(fd, MQ_EXCLUSIVE, 6, "", NULL, &d3);
	ck_assert_msg(strncmp(d3.queue, "tmp.", 4) == 0, "got \"%s\"",
	              d3.queue);
	ck_assert(QUEUE_EXISTS(fd2, 7, d3.queue));
	close(fd);
	WAIT_GONE(fd2, d3.queue);
	close(fd2);
	STOP(s);
}
END_TEST

START_TEST(test_declare_exclusive)
{
	struct mqt_server s;
	START(s);
	int a = RAW_OPEN(s);
	int b2 = RAW_OPEN(s);
	struct mqt_buf b;
	mqt_buf_init(&b);
	DO_DECLARE(a, MQ_EXCLUSIVE, 1, "ex1", NULL, NULL);
	/* Others may send to it (that is how replies arrive) ... */
	DO_SEND(b2, 2, "ex1", 0, "reply");
	/* ... but not take from it. */
	mqt_enc_get(&b, 0, 3, "ex1", 0);
	EXPECT_REQ_ERR(b2, &b, 3, MQT_E_FORBIDDEN);
	mqt_enc_get(&b, 0, 4, "ex1", 1000);
	EXPECT_REQ_ERR(b2, &b, 4, MQT_E_FORBIDDEN);
	mqt_enc_consume(&b, 0, 5, "ex1", 1);
	EXPECT_REQ_ERR(b2, &b, 5, MQT_E_FORBIDDEN);
	mqt_enc_consume(&b, MQ_AUTO_ACK, 6, "ex1", 1);
	EXPECT_REQ_ERR(b2, &b, 6, MQT_E_FORBIDDEN);
	PING(b2, 7); /* FORBIDDEN does not close */
	/* The owner can. */
	GET_BODY(a, 8, "ex1", MQ_AUTO_ACK, "reply", 1);
	DO_CONSUME(a, 0, 9, "ex1", 1);
	/* The owner leaves: the queue goes. */
	close(a);
	WAIT_GONE(b2, "ex1");
	mqt_buf_free(&b);
	close(b2);
	STOP(s);
}
END_TEST

START_TEST(test_declare_auto_delete)
{
	struct mqt_server s;
	START(s);
	int a = RAW_OPEN(s);
	int b = RAW_OPEN(s);
	int c = RAW_OPEN(s);
	struct declared d;
	DO_DECLARE(a, MQ_AUTO_DELETE, 1, "ad1", NULL, NULL);
	/* No consumer yet: it stays. */
	ck_assert(QUEUE_EXISTS(c, 2, "ad1"));
	DO_CONSUME(a, 0, 3, "ad1", 1);
	DO_CONSUME(b, 0, 4, "ad1", 1);
	DO_CANCEL(a, 5, 3);
	/* One consumer left: it stays. */
	DO_DECLARE(c, MQ_PASSIVE, 6, "ad1", NULL, &d);
	ck_assert_uint_eq(d.consumers, 1);
	/* The last consumer disconnects: it goes. */
	close(b);
	WAIT_GONE(c, "ad1");

	/* The last consumer cancels: it goes. */
	DO_DECLARE(a, MQ_AUTO_DELETE, 7, "ad2", NULL, NULL);
	DO_SEND(c, 8, "ad2", 0, "x");
	DO_CONSUME(a, 0, 9, "ad2", 1);
	struct mqt_frame f;
	struct mqt_msg m;
	EXPECT_DELIVER(a, 9, &f, &m);
	mqt_frame_free(&f);
	DO_CANCEL(a, 10, 9);
	WAIT_GONE(c, "ad2");
	close(a);
	close(c);
	STOP(s);
}
END_TEST

START_TEST(test_delete)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	DO_DECLARE(fd, 0, 1, "del1", NULL, NULL);
	DO_SEND(fd, 2, "del1", 0, "x");
	DELETE_EXPECT(fd, 0, 3, "del1", 0);
	ck_assert(!QUEUE_EXISTS(fd, 4, "del1"));
	DELETE_EXPECT(fd, 0, 5, "del1", MQT_E_NOT_FOUND);
	DELETE_EXPECT(fd, MQ_IF_EMPTY, 6, "never-was", MQT_E_NOT_FOUND);

	/* IF_EMPTY: ready, and then held, messages make it refuse. */
	DO_SEND(fd, 7, "del2", 0, "x");
	DELETE_EXPECT(fd, MQ_IF_EMPTY, 8, "del2", MQT_E_CONFLICT);
	uint64_t id = GET_BODY(fd, 9, "del2", 0, "x", 1);
	DELETE_EXPECT(fd, MQ_IF_EMPTY, 10, "del2", MQT_E_CONFLICT);
	ck_assert(QUEUE_EXISTS(fd, 11, "del2"));
	ck_assert_uint_eq(DO_ACK(fd, 12, &id, 1), 1);
	DELETE_EXPECT(fd, MQ_IF_EMPTY, 13, "del2", 0);
	ck_assert(!QUEUE_EXISTS(fd, 14, "del2"));
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_delete_cancels_consumers)
{
	struct mqt_server s;
	START(s);
	int a = RAW_OPEN(s);
	int b = RAW_OPEN(s);
	struct mqt_frame f;
	struct mqt_msg m;
	struct mqt_rd r;
	char name[256];
	DO_CONSUME(a, 0, 77, "dq", 10);
	DO_CONSUME(a, MQ_AUTO_ACK, 78, "dq", 0);
	DO_SEND(b, 1, "dq", 0, "x");
	/* One of the two consumers gets it. */
	int rc = mqt_raw_read(a, &f, RD_MS);
	ck_assert_int_eq(rc, MQT_RD_FRAME);
	ck_assert_msg(f.op == MQT_DELIVER && (f.tag == 77 || f.tag == 78),
	              "expected DELIVER 77 or 78, got %s", mqt_frame_str(&f));
	parse_msg_at(__LINE__, &f, &m);
	mqt_frame_free(&f);
	DELETE_EXPECT(b, 0, 2, "dq", 0);
	/* Both consumers are told, each once, in either order. */
	bool seen77 = false, seen78 = false;
	for (int i = 0; i < 2; i++) {
		rc = mqt_raw_read(a, &f, RD_MS);
		ck_assert_msg(rc == MQT_RD_FRAME, "expected CANCELLED, got %s",
		              rd_str(rc));
		ck_assert_msg(f.op == MQT_CANCELLED &&
		                      ((f.tag == 77 && !seen77) ||
		                       (f.tag == 78 && !seen78)),
		              "expected CANCELLED 77/78, got %s",
		              mqt_frame_str(&f));
		if (f.tag == 77)
			seen77 = true;
		else
			seen78 = true;
		mqt_rd_init(&r, &f);
		mqt_get_name(&r, name);
		ck_assert_msg(mqt_rd_done(&r), "CANCELLED payload: %s",
		              mqt_frame_str(&f));
		ck_assert_str_eq(name, "dq");
		mqt_frame_free(&f);
	}
	/* The consumers are gone; the connection is fine. */
	struct mqt_buf bb;
	mqt_buf_init(&bb);
	mqt_enc_cancel(&bb, 3, 77);
	EXPECT_REQ_ERR(a, &bb, 3, MQT_E_NOT_FOUND);
	PING(a, 4);
	/* A new message to a new dq is not delivered to the old consumers. */
	DO_SEND(b, 5, "dq", 0, "y");
	EXPECT_QUIET(a, QUIET_MS);
	mqt_buf_free(&bb);
	close(a);
	close(b);
	STOP(s);
}
END_TEST

START_TEST(test_purge)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	for (uint32_t i = 0; i < 5; i++)
		DO_SEND(fd, 1 + i, "pq", 0, "m");
	uint64_t held = GET_BODY(fd, 10, "pq", 0, "m", 1);
	ck_assert_uint_eq(DO_PURGE(fd, 11, "pq"), 4);
	GET_EMPTY(fd, 12, "pq", 0);
	ck_assert_uint_eq(DO_PURGE(fd, 13, "pq"), 0);
	/* The held one stayed held. */
	DELETE_EXPECT(fd, MQ_IF_EMPTY, 14, "pq", MQT_E_CONFLICT);
	ck_assert_uint_eq(DO_ACK(fd, 15, &held, 1), 1);
	DELETE_EXPECT(fd, MQ_IF_EMPTY, 16, "pq", 0);
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_queue_op(&b, MQT_PURGE, 0, 17, "pq");
	EXPECT_REQ_ERR(fd, &b, 17, MQT_E_NOT_FOUND);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_auto_create)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	/* SEND, GET and CONSUME each create the queue they name. */
	DO_SEND(fd, 1, "ac-send", 0, "x");
	GET_EMPTY(fd, 2, "ac-get", 0);
	DO_CONSUME(fd, 0, 3, "ac-consume", 1);
	ck_assert(QUEUE_EXISTS(fd, 4, "ac-send"));
	ck_assert(QUEUE_EXISTS(fd, 5, "ac-get"));
	ck_assert(QUEUE_EXISTS(fd, 6, "ac-consume"));
	/* Server-named queues are never auto-created: a reply to a
	 * requester that has left must not leave an orphan queue. */
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_send(&b, 0, 7, "tmp.gone.1", 0, "late reply", 10);
	EXPECT_REQ_ERR(fd, &b, 7, MQT_E_NOT_FOUND);
	ck_assert(!QUEUE_EXISTS(fd, 8, "tmp.gone.1"));
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_auto_create_off)
{
	struct mqt_server s;
	START_EXTRA(s, "auto_create = no\n");
	int fd = RAW_OPEN(s);
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_send(&b, 0, 1, "missing", 0, "x", 1);
	EXPECT_REQ_ERR(fd, &b, 1, MQT_E_NOT_FOUND);
	mqt_enc_get(&b, 0, 2, "missing", 0);
	EXPECT_REQ_ERR(fd, &b, 2, MQT_E_NOT_FOUND);
	mqt_enc_consume(&b, 0, 3, "missing", 1);
	EXPECT_REQ_ERR(fd, &b, 3, MQT_E_NOT_FOUND);
	mqt_enc_send(&b, MQ_QUIET, 4, "missing", 0, "x", 1);
	EXPECT_REQ_ERR(fd, &b, 4, MQT_E_NOT_FOUND);
	ck_assert(!QUEUE_EXISTS(fd, 5, "missing"));
	DO_DECLARE(fd, 0, 6, "missing", NULL, NULL);
	DO_SEND(fd, 7, "missing", 0, "now");
	GET_BODY(fd, 8, "missing", MQ_AUTO_ACK, "now", 1);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_queue_full)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	struct mqt_buf b;
	mqt_buf_init(&b);
	struct mq_queue_opts rej = { .max_length = 2, .overflow = 1 };
	DO_DECLARE(fd, 0, 1, "full-rej", &rej, NULL);
	DO_SEND(fd, 2, "full-rej", 0, "1");
	DO_SEND(fd, 3, "full-rej", 0, "2");
	mqt_enc_send(&b, 0, 4, "full-rej", 0, "3", 1);
	EXPECT_REQ_ERR(fd, &b, 4, MQT_E_QUEUE_FULL);
	GET_BODY(fd, 5, "full-rej", MQ_AUTO_ACK, "1", 1);
	GET_BODY(fd, 6, "full-rej", MQ_AUTO_ACK, "2", 1);
	GET_EMPTY(fd, 7, "full-rej", 0);

	struct mq_queue_opts drop = { .max_length = 2, .overflow = 2 };
	DO_DECLARE(fd, 0, 8, "full-drop", &drop, NULL);
	DO_SEND(fd, 9, "full-drop", 0, "1");
	DO_SEND(fd, 10, "full-drop", 0, "2");
	DO_SEND(fd, 11, "full-drop", 0, "3");
	GET_BODY(fd, 12, "full-drop", MQ_AUTO_ACK, "2", 1);
	GET_BODY(fd, 13, "full-drop", MQ_AUTO_ACK, "3", 1);
	GET_EMPTY(fd, 14, "full-drop", 0);
	mqt_buf_free(&b);
	close(fd);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* 4.2: receiving                                                         */
/* ===================================================================== */

START_TEST(test_get_empty)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	GET_EMPTY(fd, 42, "ge", 0);
	DO_SEND(fd, 43, "ge", 0, "one");
	GET_BODY(fd, 44, "ge", MQ_AUTO_ACK, "one", 1);
	GET_EMPTY(fd, 45, "ge", 0);
	close(fd);
	STOP(s);
}
END_TEST

/* A GET that waits is answered by a SEND from another connection. */
START_TEST(test_get_waits)
{
	struct mqt_server s;
	START(s);
	int a = RAW_OPEN(s);
	int b = RAW_OPEN(s);
	struct mqt_buf buf;
	struct mqt_frame f;
	struct mqt_msg m;
	mqt_buf_init(&buf);
	mqt_enc_get(&buf, 0, 5, "gw", 20000);
	SENDB(a, &buf);
	EXPECT_QUIET(a, QUIET_MS); /* it is waiting */
	uint64_t id = DO_SEND(b, 1, "gw", 0, "wake up");
	EXPECT(a, &f, MQT_MESSAGE, 5);
	parse_msg_at(__LINE__, &f, &m);
	CHECK_BODY(&m, "wake up");
	ck_assert(m.id == id);
	mqt_frame_free(&f);
	/* It went to the GET, not back to the queue. */
	GET_EMPTY(b, 2, "gw", 0);
	mqt_buf_free(&buf);
	close(a);
	close(b);
	STOP(s);
}
END_TEST

/* A GET whose timeout runs out gets EMPTY, not before its time, and takes
 * nothing sent afterwards. */
START_TEST(test_get_timeout)
{
	struct mqt_server s;
	START(s);
	int a = RAW_OPEN(s);
	struct mqt_buf buf;
	struct mqt_frame f;
	mqt_buf_init(&buf);
	int64_t t0 = mqt_now_ms();
	mqt_enc_get(&buf, 0, 5, "gt", 200);
	/* The GET blocks the replies behind it. */
	mqt_enc_ping(&buf, 6, NULL, 0);
	SENDB(a, &buf);
	EXPECT(a, &f, MQT_EMPTY, 5);
	int64_t took = mqt_now_ms() - t0;
	mqt_frame_free(&f);
	EXPECT(a, &f, MQT_PONG, 6);
	mqt_frame_free(&f);
	ck_assert_msg(took >= 190, "GET with timeout 200 ms answered EMPTY "
	              "after %lld ms", (long long)took);
	DO_SEND(a, 7, "gt", 0, "later");
	GET_BODY(a, 8, "gt", MQ_AUTO_ACK, "later", 1);
	mqt_buf_free(&buf);
	close(a);
	STOP(s);
}
END_TEST

/* A consumer with prefetch 2 gets exactly 2 until it acknowledges. */
START_TEST(test_consume_prefetch)
{
	struct mqt_server s;
	START(s);
	int p = RAW_OPEN(s);
	int c = RAW_OPEN(s);
	struct mqt_frame f;
	struct mqt_msg m;
	char body[8];
	for (int i = 0; i < 5; i++) {
		snprintf(body, sizeof body, "m%d", i);
		DO_SEND(p, 1 + (uint32_t)i, "pf", 0, body);
	}
	/* OK first, then the DELIVERs. */
	DO_CONSUME(c, 0, 9, "pf", 2);
	uint64_t ids[5];
	for (int i = 0; i < 2; i++) {
		EXPECT_DELIVER(c, 9, &f, &m);
		snprintf(body, sizeof body, "m%d", i);
		CHECK_BODY(&m, body);
		ck_assert_str_eq(m.source, "pf");
		ck_assert_uint_eq(m.attempts, 1);
		ids[i] = m.id;
		mqt_frame_free(&f);
	}
	EXPECT_QUIET(c, QUIET_MS);
	/* More sends do not get past the limit either. */
	DO_SEND(p, 10, "pf", 0, "m5");
	EXPECT_QUIET(c, QUIET_MS);
	/* ACK one: exactly one more comes (in any order with the OK). */
	struct mqt_buf b;
	mqt_buf_init(&b);
	int next = 2;
	uint32_t tag = 20;
	while (next < 6) {
		mqt_enc_ack(&b, 0, tag, &ids[(next - 2) % 5], 1);
		SENDB(c, &b);
		bool ok = false, got = false;
		for (int k = 0; k < 2; k++) {
			int rc = mqt_raw_read(c, &f, RD_MS);
			ck_assert_msg(rc == MQT_RD_FRAME, "after ACK: %s",
			              rd_str(rc));
			if (f.op == MQT_OK && f.tag == tag && !ok) {
				ck_assert_uint_eq(ok_u32_at(__LINE__, &f), 1);
				ok = true;
			} else if (f.op == MQT_DELIVER && f.tag == 9 && !got) {
				parse_msg_at(__LINE__, &f, &m);
				snprintf(body, sizeof body, "m%d", next);
				CHECK_BODY(&m, body);
				ids[next % 5] = m.id;
				got = true;
			} else {
				ck_assert_msg(0, "after ACK: unexpected %s",
				              mqt_frame_str(&f));
			}
			mqt_frame_free(&f);
		}
		EXPECT_QUIET(c, 50);
		next++;
		tag++;
	}
	EXPECT_QUIET(c, QUIET_MS);
	mqt_buf_free(&b);
	close(p);
	close(c);
	STOP(s);
}
END_TEST

START_TEST(test_consume_cancel)
{
	struct mqt_server s;
	START(s);
	int p = RAW_OPEN(s);
	int c = RAW_OPEN(s);
	struct mqt_frame f;
	struct mqt_msg m;
	DO_CONSUME(c, 0, 9, "cc", 1);
	DO_SEND(p, 1, "cc", 0, "first");
	EXPECT_DELIVER(c, 9, &f, &m);
	CHECK_BODY(&m, "first");
	uint64_t held = m.id;
	mqt_frame_free(&f);
	DO_CANCEL(c, 10, 9);
	/* No DELIVER with tag 9 after the OK to the CANCEL, even with room. */
	DO_SEND(p, 2, "cc", 0, "second");
	uint64_t ids[1] = { held };
	ck_assert_uint_eq(DO_ACK(c, 11, ids, 1), 1); /* still held by c */
	EXPECT_QUIET(c, QUIET_MS);
	/* The message waits in the queue. */
	GET_BODY(p, 3, "cc", MQ_AUTO_ACK, "second", 1);
	/* Cancelling again, or an unknown tag: NOT_FOUND. */
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_cancel(&b, 12, 9);
	EXPECT_REQ_ERR(c, &b, 12, MQT_E_NOT_FOUND);
	mqt_enc_cancel(&b, 13, 12345);
	EXPECT_REQ_ERR(c, &b, 13, MQT_E_NOT_FOUND);
	/* Another connection cannot cancel c's consumer. */
	DO_CONSUME(c, 0, 14, "cc", 1);
	mqt_enc_cancel(&b, 15, 14);
	EXPECT_REQ_ERR(p, &b, 15, MQT_E_NOT_FOUND);
	DO_SEND(p, 4, "cc", 0, "third");
	EXPECT_DELIVER(c, 14, &f, &m);
	CHECK_BODY(&m, "third");
	mqt_frame_free(&f);
	mqt_buf_free(&b);
	close(p);
	close(c);
	STOP(s);
}
END_TEST

START_TEST(test_consume_auto_ack)
{
	struct mqt_server s;
	START(s);
	int p = RAW_OPEN(s);
	int c = RAW_OPEN(s);
	struct mqt_frame f;
	struct mqt_msg m;
	char body[8];
	for (int i = 0; i < 10; i++) {
		snprintf(body, sizeof body, "a%d", i);
		DO_SEND(p, 1 + (uint32_t)i, "aa", 0, body);
	}
	/* prefetch does not apply: all 10 come without any ACK. */
	DO_CONSUME(c, MQ_AUTO_ACK, 9, "aa", 1);
	uint64_t ids[10];
	for (int i = 0; i < 10; i++) {
		EXPECT_DELIVER(c, 9, &f, &m);
		snprintf(body, sizeof body, "a%d", i);
		CHECK_BODY(&m, body);
		ids[i] = m.id;
		mqt_frame_free(&f);
	}
	DO_CANCEL(c, 10, 9);
	/* Nothing is held: ACK counts none, and the queue is empty. */
	ck_assert_uint_eq(DO_ACK(c, 11, ids, 10), 0);
	DELETE_EXPECT(p, MQ_IF_EMPTY, 12, "aa", 0);
	close(p);
	close(c);
	STOP(s);
}
END_TEST

START_TEST(test_get_auto_ack)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	DO_SEND(fd, 1, "ga", 0, "x");
	uint64_t id = GET_BODY(fd, 2, "ga", MQ_AUTO_ACK, "x", 1);
	ck_assert_uint_eq(DO_ACK(fd, 3, &id, 1), 0);
	DELETE_EXPECT(fd, MQ_IF_EMPTY, 4, "ga", 0);
	close(fd);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* 4.3: acknowledging                                                     */
/* ===================================================================== */

START_TEST(test_ack_counts)
{
	struct mqt_server s;
	START(s);
	int a = RAW_OPEN(s);
	int b = RAW_OPEN(s);
	DO_SEND(a, 1, "ak", 0, "1");
	DO_SEND(a, 2, "ak", 0, "2");
	uint64_t id3 = DO_SEND(a, 3, "ak", 0, "3");
	uint64_t id1 = GET_BODY(a, 4, "ak", 0, "1", 1);
	uint64_t id2 = GET_BODY(a, 5, "ak", 0, "2", 1);
	/* b holds nothing: its ACK and NACK count nothing ... */
	uint64_t both[2] = { id1, id2 };
	ck_assert_uint_eq(DO_ACK(b, 6, both, 2), 0);
	ck_assert_uint_eq(DO_NACK(b, 7, 1, both, 2), 0);
	/* ... and change nothing. */
	GET_BODY(b, 8, "ak", MQ_AUTO_ACK, "3", 1);
	GET_EMPTY(b, 9, "ak", 0);
	/* a: held ids count, others (unknown, not held, repeated) do not. */
	uint64_t mix[5] = { id1, 0xdeadbeefULL, id3, id2, id1 };
	ck_assert_uint_eq(DO_ACK(a, 10, mix, 5), 2);
	ck_assert_uint_eq(DO_ACK(a, 11, mix, 5), 0);
	ck_assert_uint_eq(DO_ACK(a, 12, NULL, 0), 0);
	DELETE_EXPECT(a, MQ_IF_EMPTY, 13, "ak", 0);

	/* QUIET ACK: no reply. */
	DO_SEND(a, 14, "ak2", 0, "q");
	uint64_t id = GET_BODY(a, 15, "ak2", 0, "q", 1);
	struct mqt_buf buf;
	struct mqt_frame f;
	mqt_buf_init(&buf);
	mqt_enc_ack(&buf, MQ_QUIET, 16, &id, 1);
	mqt_enc_ack(&buf, MQ_QUIET, 17, &id, 1); /* not held: silent */
	mqt_enc_ping(&buf, 18, NULL, 0);
	SENDB(a, &buf);
	EXPECT(a, &f, MQT_PONG, 18);
	mqt_frame_free(&f);
	DELETE_EXPECT(a, MQ_IF_EMPTY, 19, "ak2", 0);
	mqt_buf_free(&buf);
	close(a);
	close(b);
	STOP(s);
}
END_TEST

/* NACK requeue 1: back at the head of its level with attempts 2. */
START_TEST(test_nack_requeue)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	uint64_t sid = DO_SEND(fd, 1, "nq", 0, "first");
	DO_SEND(fd, 2, "nq", 0, "second");
	uint64_t id = GET_BODY(fd, 3, "nq", 0, "first", 1);
	ck_assert(id == sid);
	ck_assert_uint_eq(DO_NACK(fd, 4, 1, &id, 1), 1);
	uint64_t again = GET_BODY(fd, 5, "nq", 0, "first", 2);
	ck_assert_msg(again == id, "the requeued message changed id");
	GET_BODY(fd, 6, "nq", MQ_AUTO_ACK, "second", 1);
	/* Twice more: attempts keeps counting. */
	ck_assert_uint_eq(DO_NACK(fd, 7, 1, &again, 1), 1);
	again = GET_BODY(fd, 8, "nq", 0, "first", 3);
	/* A NACK of something no longer held counts nothing. */
	ck_assert_uint_eq(DO_ACK(fd, 9, &again, 1), 1);
	ck_assert_uint_eq(DO_NACK(fd, 10, 1, &again, 1), 0);
	GET_EMPTY(fd, 11, "nq", 0);
	close(fd);
	STOP(s);
}
END_TEST

START_TEST(test_nack_drop)
{
	struct mqt_server s;
	START(s);
	int fd = RAW_OPEN(s);
	DO_SEND(fd, 1, "nd", 0, "bye");
	uint64_t id = GET_BODY(fd, 2, "nd", 0, "bye", 1);
	ck_assert_uint_eq(DO_NACK(fd, 3, 0, &id, 1), 1);
	GET_EMPTY(fd, 4, "nd", 0);
	DELETE_EXPECT(fd, MQ_IF_EMPTY, 5, "nd", 0);
	close(fd);
	STOP(s);
}
END_TEST

/* A holder that disconnects: its messages go to another consumer with
 * attempts + 1. */
START_TEST(test_redeliver_on_disconnect)
{
	struct mqt_server s;
	START(s);
	int a = RAW_OPEN(s);
	int b = RAW_OPEN(s);
	struct mqt_frame f;
	struct mqt_msg m;
	DO_SEND(b, 1, "rd", 0, "m1");
	DO_SEND(b, 2, "rd", 0, "m2");
	DO_SEND(b, 3, "rd", 0, "m3");
	uint64_t id1 = GET_BODY(a, 4, "rd", 0, "m1", 1);
	DO_CONSUME(b, 0, 9, "rd", 10);
	EXPECT_DELIVER(b, 9, &f, &m);
	CHECK_BODY(&m, "m2");
	mqt_frame_free(&f);
	EXPECT_DELIVER(b, 9, &f, &m);
	CHECK_BODY(&m, "m3");
	mqt_frame_free(&f);
	EXPECT_QUIET(b, QUIET_MS);
	close(a);
	EXPECT_DELIVER(b, 9, &f, &m);
	CHECK_BODY(&m, "m1");
	ck_assert_uint_eq(m.attempts, 2);
	ck_assert(m.id == id1);
	mqt_frame_free(&f);
	EXPECT_QUIET(b, QUIET_MS);
	close(b);
	STOP(s);
}
END_TEST

/*
 * REGRESSION TEST for mqd_ops_peer_closed (src/store/ops.c): it fails
 * until the fix for its fixed-size dirty[64] lands.
 *
 * A connection holding messages from 100 queues closes; in every queue its
 * messages come back oldest first (README "Delivery guarantees": back to
 * the head of the priority level; doc/ARCHITECTURE.md "Connection close"),
 * so a consumer waiting on each queue gets m1 before m2, both with
 * attempts 2.
 *
 * How it went wrong: the owner walks the closing peer's held list from its
 * tail, putting each message back at the head of its queue, and remembers
 * the queues to dispatch afterwards in dirty[64].  From the 65th queue on it
 * dispatched at once instead: right after a queue's newest held message
 * (m2) was back, while its older one (m1) was still held, so the waiting
 * consumer got m2, then m1.  workers = 1 puts all 100 queues on one owner;
 * with 4, each would have about 25 and the bug would not show.
 */
START_TEST(test_redeliver_order_many_queues)
{
	enum { NQ = 100, PER = 2 };
	struct mqt_server s;
	START_EXTRA(s, "workers = 1\n");
	int a = RAW_OPEN(s), b = RAW_OPEN(s), prod = RAW_OPEN(s);
	struct mqt_buf buf;
	struct mqt_frame f;
	struct mqt_msg m;
	char name[16], body[16];
	int next[NQ] = {0};

	mqt_buf_init(&buf);
	/* a consumes every queue and ends up holding m1 and m2 of each. */
	for (int q = 0; q < NQ; q++) {
		snprintf(name, sizeof name, "rdo%d", q);
		mqt_enc_consume(&buf, 0, 100 + (uint32_t)q, name, 10);
	}
	SENDB(a, &buf);
	for (int q = 0; q < NQ; q++)
		EXPECT_OK(a, 100 + (uint32_t)q);
	for (int i = 0; i < PER; i++)
		for (int q = 0; q < NQ; q++) {
			snprintf(name, sizeof name, "rdo%d", q);
			snprintf(body, sizeof body, "m%d", i + 1);
			mqt_enc_send(&buf, MQ_QUIET, 1, name, 0, body,
			             strlen(body));
		}
	mqt_enc_ping(&buf, 2, NULL, 0);
	SENDB(prod, &buf);
	EXPECT(prod, &f, MQT_PONG, 2);
	mqt_frame_free(&f);
	for (int n = 0; n < NQ * PER; n++) {
		int rc = mqt_raw_read(a, &f, RD_MS);
		ck_assert_msg(rc == MQT_RD_FRAME, "a: delivery %d: %s", n,
		              rd_str(rc));
		ck_assert_msg(f.op == MQT_DELIVER, "a: %s", mqt_frame_str(&f));
		int q = (int)f.tag - 100;
		ck_assert_msg(q >= 0 && q < NQ, "a: %s", mqt_frame_str(&f));
		parse_msg_at(__LINE__, &f, &m);
		snprintf(body, sizeof body, "m%d", ++next[q]);
		CHECK_BODY(&m, body);
		ck_assert_uint_eq(m.attempts, 1);
		mqt_frame_free(&f);
	}

	/* b waits on every queue (all empty now: a holds everything). */
	for (int q = 0; q < NQ; q++) {
		snprintf(name, sizeof name, "rdo%d", q);
		mqt_enc_consume(&buf, 0, 100 + (uint32_t)q, name, 10);
	}
	SENDB(b, &buf);
	for (int q = 0; q < NQ; q++)
		EXPECT_OK(b, 100 + (uint32_t)q);

	close(a);
	memset(next, 0, sizeof next);
	int wrong = 0, first_wrong = -1;
	for (int n = 0; n < NQ * PER; n++) {
		int rc = mqt_raw_read(b, &f, RD_MS);
		ck_assert_msg(rc == MQT_RD_FRAME, "b: redelivery %d: %s", n,
		              rd_str(rc));
		ck_assert_msg(f.op == MQT_DELIVER, "b: %s", mqt_frame_str(&f));
		int q = (int)f.tag - 100;
		ck_assert_msg(q >= 0 && q < NQ, "b: %s", mqt_frame_str(&f));
		parse_msg_at(__LINE__, &f, &m);
		ck_assert_uint_eq(m.attempts, 2);
		snprintf(body, sizeof body, "m%d", ++next[q]);
		if (!body_is(&m, body)) {
			if (first_wrong < 0)
				first_wrong = q;
			wrong++;
		}
		mqt_frame_free(&f);
	}
	ck_assert_msg(wrong == 0, "%d of %d redeliveries out of order (the "
	              "first in queue rdo%d): a closing holder's messages "
	              "must come back oldest first", wrong, NQ * PER,
	              first_wrong);
	for (int q = 0; q < NQ; q++)
		ck_assert_int_eq(next[q], PER);
	EXPECT_QUIET(b, QUIET_MS);
	mqt_buf_free(&buf);
	close(b);
	close(prod);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* Limits, load, robustness                                               */
/* ===================================================================== */

START_TEST(test_max_connections)
{
	struct mqt_server s;
	START_EXTRA(s, "max_connections = 3\n");
	int fds[3];
	for (int i = 0; i < 3; i++)
		fds[i] = RAW_OPEN(s);
	int x = RAW_CONNECT(s);
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_hello(&b, 4, 1, "fourth");
	SENDB(x, &b);
	EXPECT_ERR(x, 4, MQT_E_LIMIT);
	EXPECT_CLOSED(x);
	close(x);
	for (int i = 0; i < 3; i++)
		PING(fds[i], 10 + (uint32_t)i);
	/* A place frees up when one leaves (asynchronously: retry). */
	close(fds[0]);
	int64_t deadline = mqt_now_ms() + GONE_MS;
	for (;;) {
		x = RAW_CONNECT(s);
		mqt_enc_hello(&b, 5, 1, "again");
		SENDB(x, &b);
		struct mqt_frame f;
		int rc = mqt_raw_read(x, &f, RD_MS);
		ck_assert_msg(rc == MQT_RD_FRAME && f.tag == 5, "HELLO: %s",
		              rc == MQT_RD_FRAME ? mqt_frame_str(&f) : rd_str(rc));
		bool welcomed = f.op == MQT_WELCOME;
		ck_assert_msg(welcomed || mqt_error_code(&f) == MQT_E_LIMIT,
		              "HELLO: %s", mqt_frame_str(&f));
		mqt_frame_free(&f);
		if (welcomed)
			break;
		close(x);
		ck_assert_msg(mqt_now_ms() < deadline, "no connection slot "
		              "came free after a client left");
		usleep(5000);
	}
	PING(x, 6);
	close(x);
	close(fds[1]);
	close(fds[2]);
	mqt_buf_free(&b);
	STOP(s);
}
END_TEST

/* Two consumers share one queue with 2000 messages: each message reaches
 * exactly one of them. */
START_TEST(test_two_consumers_share)
{
	enum { N = 2000 };
	struct mqt_server s;
	START(s);
	mq_conn *prod = mqt_connect(&s);
	mq_conn *c[2] = { mqt_connect(&s), mqt_connect(&s) };
	ck_assert_ptr_nonnull(prod);
	ck_assert_ptr_nonnull(c[0]);
	ck_assert_ptr_nonnull(c[1]);
	uint32_t tag[2];
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(mq_consume(c[i], "shared", 10, 0, &tag[i]), 0);
	char body[16];
	for (int i = 0; i < N; i++) {
		snprintf(body, sizeof body, "m%05d", i);
		ck_assert_int_eq(mq_send_quiet(prod, "shared", body,
		                               strlen(body), NULL), 0);
	}
	ck_assert_int_eq(mq_sync(prod), 0);
	static unsigned char seen[N];
	int got[2] = { 0, 0 }, total = 0;
	int64_t deadline = mqt_now_ms() + 60000;
	while (total < N) {
		ck_assert_msg(mqt_now_ms() < deadline, "only %d of %d messages "
		              "arrived (%d + %d)", total, N, got[0], got[1]);
		for (int k = 0; k < 2; k++) {
			struct mq_message *m = NULL;
			int rc = mq_next(c[k], 5, &m);
			if (rc == MQ_ERR_TIMEOUT)
				continue;
			ck_assert_msg(rc == 0, "mq_next: %s", mq_strerror(rc));
			ck_assert_uint_eq(m->tag, tag[k]);
			ck_assert_uint_eq(m->body_len, 6);
			char num[8];
			memcpy(num, m->body + 1, 5);
			num[5] = '\0';
			int idx = atoi(num);
			ck_assert_msg(idx >= 0 && idx < N, "bad body");
			ck_assert_msg(!seen[idx], "message %d delivered twice",
			              idx);
			seen[idx] = 1;
			got[k]++;
			total++;
			uint32_t n = 0;
			ck_assert_int_eq(mq_ack(c[k], &m->id, 1, 0, &n), 0);
			ck_assert_uint_eq(n, 1);
			mq_message_free(m);
		}
	}
	ck_assert_msg(got[0] > 0 && got[1] > 0, "one consumer got nothing "
	              "(%d / %d)", got[0], got[1]);
	for (int k = 0; k < 2; k++) {
		struct mq_message *m = NULL;
		int rc = mq_next(c[k], QUIET_MS, &m);
		ck_assert_msg(rc == MQ_ERR_TIMEOUT, "an extra delivery after "
		              "all %d: %s", N, mq_strerror(rc));
	}
	ck_assert_int_eq(mq_delete(prod, "shared", MQ_IF_EMPTY), 0);
	mq_close(prod);
	mq_close(c[0]);
	mq_close(c[1]);
	STOP(s);
}
END_TEST

/* 300 connections at once, each sending to its neighbour's queue and
 * waiting for a message on its own. */
START_TEST(test_many_connections)
{
	enum { N = 300 };
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < N + 64 &&
	    rl.rlim_max >= N + 64) {
		rl.rlim_cur = N + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct mqt_server s;
	START(s);
	static int fd[N];
	struct mqt_buf b;
	mqt_buf_init(&b);
	for (int i = 0; i < N; i++) {
		fd[i] = RAW_CONNECT(s);
		mqt_enc_hello(&b, 1, 1, "many");
		SENDB(fd[i], &b);
	}
	struct mqt_frame f;
	for (int i = 0; i < N; i++) {
		EXPECT(fd[i], &f, MQT_WELCOME, 1);
		mqt_frame_free(&f);
	}
	char q[16], body[16];
	for (int i = 0; i < N; i++) {
		snprintf(q, sizeof q, "c%d", (i + 1) % N);
		snprintf(body, sizeof body, "from%d", i);
		mqt_enc_send(&b, 0, 2, q, 0, body, strlen(body));
		snprintf(q, sizeof q, "c%d", i);
		mqt_enc_get(&b, MQ_AUTO_ACK, 3, q, 20000);
		SENDB(fd[i], &b);
	}
	for (int i = 0; i < N; i++) {
		struct mqt_msg m;
		EXPECT(fd[i], &f, MQT_OK, 2);
		mqt_frame_free(&f);
		EXPECT(fd[i], &f, MQT_MESSAGE, 3);
		parse_msg_at(__LINE__, &f, &m);
		snprintf(body, sizeof body, "from%d", (i + N - 1) % N);
		CHECK_BODY(&m, body);
		mqt_frame_free(&f);
	}
	for (int i = 0; i < N; i++)
		close(fd[i]);
	mqt_buf_free(&b);
	STOP(s);
}
END_TEST

static uint32_t rng_state = 0x2545f491u;
static uint32_t rnd(void)
{
	uint32_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return rng_state = x;
}

/* Garbage on some connections does not disturb another. */
START_TEST(test_garbage_isolation)
{
	struct mqt_server s;
	START(s);
	int good = RAW_OPEN(s);
	struct mqt_buf b;
	mqt_buf_init(&b);
	uint32_t tag = 1;
	for (int round = 0; round < 40; round++) {
		int g = RAW_CONNECT(s);
		if (round % 5 != 0) {
			mqt_enc_hello(&b, 1, 1, "junk");
			mqt_raw_send_buf(g, &b);
			mqt_buf_reset(&b);
		}
		switch (round % 5) {
		case 0:
		case 1: /* random bytes */
			for (int i = 0; i < 64; i++)
				mqt_put_u8(&b, (uint8_t)rnd());
			break;
		case 2: /* a huge length */
			mqt_put_u32(&b, 0xfffffff0u);
			break;
		case 3: /* well-framed frames with random op, flags, payload */
			for (int k = 0; k < 20; k++) {
				uint8_t op = (uint8_t)rnd();
				if (op == MQT_GET)
					op = MQT_PING;
				size_t st = mqt_frame_begin(&b, op,
				                            (uint8_t)rnd(), rnd());
				int n = (int)(rnd() % 40);
				for (int i = 0; i < n; i++)
					mqt_put_u8(&b, (uint8_t)rnd());
				mqt_frame_end(&b, st);
			}
			break;
		case 4: /* half a frame, then the client goes away */
			mqt_enc_send(&b, 0, 9, "half", 0, "abcdefgh", 8);
			b.len -= 5;
			break;
		}
		mqt_raw_send_buf(g, &b); /* may fail: the server may close */
		mqt_buf_reset(&b);
		/* Meanwhile the good connection works. */
		char body[16];
		snprintf(body, sizeof body, "ok%d", round);
		DO_SEND(good, tag++, "iso", 0, body);
		PING(good, tag++);
		GET_BODY(good, tag++, "iso", MQ_AUTO_ACK, body, 1);
		close(g);
	}
	ck_assert(mqt_server_alive(&s));
	mqt_buf_free(&b);
	close(good);
	STOP(s);
}
END_TEST

/* SIGTERM with clients connected (idle, consuming with a message it never
 * acks, waiting in a 60 s GET): mqd exits 0 by itself; the clients see
 * ERROR SHUTTING_DOWN and/or a close.  No clock is read here: none of the
 * clients would ever let a server that waits for them go, so such a server
 * is killed at the harness's stop limit (status -1), and mqd's own bounded
 * waits (for acks, then for connections to close, else exit 1) are what
 * keep it within its "gone in 5 s" contract; timings belong to mq-bench. */
START_TEST(test_sigterm_with_clients)
{
	struct mqt_server s;
	START(s);
	int idle = RAW_OPEN(s);
	int cons = RAW_OPEN(s);
	int getter = RAW_OPEN(s);
	mq_conn *lib = mqt_connect(&s);
	ck_assert_ptr_nonnull(lib);
	DO_SEND(cons, 1, "st", 0, "held");
	DO_CONSUME(cons, 0, 2, "st", 5);
	struct mqt_frame f;
	struct mqt_msg m;
	EXPECT_DELIVER(cons, 2, &f, &m);
	mqt_frame_free(&f);
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_get(&b, 0, 3, "st-empty", 60000);
	SENDB(getter, &b);
	/* The GET makes its queue and waits there: once the queue exists,
	 * the GET is parked. */
	int64_t deadline = mqt_now_ms() + GONE_MS;
	for (uint32_t tag = 100; !QUEUE_EXISTS(cons, tag, "st-empty"); tag++) {
		ck_assert_msg(mqt_now_ms() < deadline, "the GET never reached "
		              "its queue");
		sleep_ms(5);
	}
	EXPECT_QUIET(getter, 0);

	int rc = mqt_server_stop(&s);
	ck_assert_msg(rc == 0, "mqd exited %d after SIGTERM (-1: it had to be "
	              "killed after %ld ms)", rc, mqt_server_last_stop_ms());
	int fds[3] = { idle, cons, getter };
	for (int i = 0; i < 3; i++) {
		for (;;) {
			rc = mqt_raw_read(fds[i], &f, 2000);
			if (rc != MQT_RD_FRAME)
				break;
			ck_assert_msg(mqt_error_code(&f) == MQT_E_SHUTTING_DOWN,
			              "client %d: expected ERROR SHUTTING_DOWN or "
			              "a close, got %s", i, mqt_frame_str(&f));
			mqt_frame_free(&f);
		}
		ck_assert_msg(rc == MQT_RD_EOF, "client %d: connection not "
		              "closed: %s", i, rd_str(rc));
		close(fds[i]);
	}
	ck_assert_int_ne(mq_ping(lib), 0);
	mq_close(lib);
	mqt_buf_free(&b);
}
END_TEST

/* libmq end to end (the client library's view of the same server). */
START_TEST(test_libmq_roundtrip)
{
	struct mqt_server s;
	START(s);
	mq_conn *c = mqt_connect(&s);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(mq_max_frame(c), 1048576);
	ck_assert_ptr_nonnull(mq_server_name(c));
	ck_assert_int_eq(mq_ping(c), 0);
	struct mq_declared d;
	ck_assert_int_eq(mq_declare(c, "lib", NULL, 0, &d), 0);
	ck_assert_str_eq(d.queue, "lib");
	uint64_t id = 0;
	ck_assert_int_eq(mq_send(c, "lib", "hi", 2, NULL, &id), 0);
	ck_assert(id != 0);
	struct mq_message *m = NULL;
	ck_assert_int_eq(mq_get(c, "lib", 0, 0, &m), 0);
	ck_assert_uint_eq(m->id, id);
	ck_assert_uint_eq(m->body_len, 2);
	ck_assert(memcmp(m->body, "hi", 2) == 0);
	uint32_t n = 0;
	ck_assert_int_eq(mq_ack(c, &m->id, 1, 0, &n), 0);
	ck_assert_uint_eq(n, 1);
	mq_message_free(m);
	ck_assert_int_eq(mq_get(c, "lib", 0, 0, &m), MQ_ERR_EMPTY);
	uint32_t tag;
	ck_assert_int_eq(mq_consume(c, "lib", 0, MQ_AUTO_ACK, &tag), 0);
	ck_assert_int_eq(mq_send(c, "lib", "yo", 2, NULL, NULL), 0);
	ck_assert_int_eq(mq_next(c, 10000, &m), 0);
	ck_assert_uint_eq(m->tag, tag);
	mq_message_free(m);
	ck_assert_int_eq(mq_cancel(c, tag), 0);
	ck_assert_int_eq(mq_delete(c, "lib", MQ_IF_EMPTY), 0);
	ck_assert_int_eq(mq_declare(c, "lib", NULL, MQ_PASSIVE, NULL),
	                 MQ_ERR_NOT_FOUND);
	mq_close(c);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* The mq CLI                                                             */
/* ===================================================================== */

#define CLI(s, out, ...)                                                      \
	mqt_run_cli(&(s), (char *const[]){ "mq", __VA_ARGS__, NULL }, out,    \
	            sizeof out)

START_TEST(test_cli_roundtrip)
{
	struct mqt_server s;
	START(s);
	char out[4096];
	int rc = CLI(s, out, "send", "cliq", "hello from the cli");
	ck_assert_msg(rc == 0, "mq send exited %d (stdout: %s)", rc, out);
	rc = CLI(s, out, "get", "cliq");
	ck_assert_msg(rc == 0, "mq get exited %d (stdout: %s)", rc, out);
	ck_assert_msg(strstr(out, "hello from the cli") != NULL,
	              "mq get printed \"%s\"", out);
	rc = CLI(s, out, "get", "-t", "0", "cliq");
	ck_assert_msg(rc == 3, "mq get -t 0 on an empty queue exited %d, "
	              "expected 3", rc);
	STOP(s);
}
END_TEST

START_TEST(test_cli_exit_codes)
{
	struct mqt_server s;
	START_EXTRA(s, "auto_create = no\n");
	char out[4096];
	/* A server error (NOT_FOUND): 1. */
	int rc = CLI(s, out, "send", "nosuch", "x");
	ck_assert_msg(rc == 1, "mq send to a missing queue exited %d, "
	              "expected 1", rc);
	/* Usage errors: 2. */
	rc = CLI(s, out, "no-such-command");
	ck_assert_msg(rc == 2, "mq no-such-command exited %d, expected 2", rc);
	rc = mqt_run_cli(&s, (char *const[]){ "mq", NULL }, out, sizeof out);
	ck_assert_msg(rc == 2, "mq without arguments exited %d, expected 2",
	              rc);
	rc = CLI(s, out, "get");
	ck_assert_msg(rc == 2, "mq get without a queue exited %d, expected 2",
	              rc);
	STOP(s);
}
END_TEST

/* ===================================================================== */

static Suite *server_suite(void)
{
	Suite *su = suite_create("server");
	/* 1, 2: framing and session */
	ADD(su, test_hello_welcome);
	ADD(su, test_ping_pong);
	ADD(su, test_hello_required);
	ADD(su, test_second_hello);
	ADD(su, test_hello_bad_version);
	ADD(su, test_byte_at_a_time);
	ADD(su, test_frame_too_large);
	ADD(su, test_frame_max_size_ok);
	ADD(su, test_frame_too_short);
	ADD(su, test_bad_payload);
	ADD(su, test_bad_flags);
	ADD(su, test_unknown_op);
	ADD(su, test_bad_queue_names);
	ADD(su, test_pipeline_order);
	ADD(su, test_many_consumers_order);
	/* 4.1 */
	ADD(su, test_quiet_send);
	ADD(su, test_send_priority_range);
	ADD(su, test_priority_order);
	ADD(su, test_message_fields);
	/* 3 */
	ADD(su, test_declare);
	ADD(su, test_declare_passive);
	ADD(su, test_declare_conflict);
	ADD(su, test_declare_server_named);
	ADD(su, test_declare_exclusive);
	ADD(su, test_declare_auto_delete);
	ADD(su, test_delete);
	ADD(su, test_delete_cancels_consumers);
	ADD(su, test_purge);
	ADD(su, test_auto_create);
	ADD(su, test_auto_create_off);
	ADD(su, test_queue_full);
	/* 4.2 */
	ADD(su, test_get_empty);
	ADD(su, test_get_waits);
	ADD(su, test_get_timeout);
	ADD(su, test_consume_prefetch);
	ADD(su, test_consume_cancel);
	ADD(su, test_consume_auto_ack);
	ADD(su, test_get_auto_ack);
	/* 4.3 */
	ADD(su, test_ack_counts);
	ADD(su, test_nack_requeue);
	ADD(su, test_nack_drop);
	ADD(su, test_redeliver_on_disconnect);
	ADD(su, test_redeliver_order_many_queues); /* fails until ops.c is fixed */
	/* limits, load, robustness, shutdown */
	ADD(su, test_max_connections);
	ADD(su, test_two_consumers_share);
	ADD(su, test_many_connections);
	ADD(su, test_garbage_isolation);
	ADD(su, test_sigterm_with_clients);
	ADD(su, test_libmq_roundtrip);
	/* the CLI */
	ADD(su, test_cli_roundtrip);
	ADD(su, test_cli_exit_codes);
	return su;
}

int main(void)
{
	return mqt_run_suite(server_suite());
}
