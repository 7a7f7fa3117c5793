/*
 * Unit tests of src/proto: the frame codec and payload parsers.
 *
 * The examples of PROTOCOL.md section 6 are checked byte for byte in both
 * directions; then one frame of every op is encoded, decoded and parsed
 * back, cut at every byte, padded with a byte, and given every flag bit.
 * The rest pins down the validation rules (names, topics, patterns,
 * priorities, headers) and the wbuf writers.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

#define MAX_FRAME (1024u * 1024u)
#define BAD MQD_ERR_BAD_ARGUMENT

/* ---- helpers -------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Hex digits to bytes, whitespace ignored; returns the byte count. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int hi = -1, v;

	for (; *hex != '\0'; hex++) {
		v = hexval(*hex);
		if (v < 0)
			continue;
		if (hi < 0) {
			hi = v;
			continue;
		}
		ck_assert_uint_lt(n, cap);
		out[n++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	ck_assert_int_eq(hi, -1);
	return n;
}

static bool span_is(struct mqd_span s, const char *str)
{
	return s.len == strlen(str) && memcmp(s.p, str, s.len) == 0;
}

#define ck_assert_span(s, str) ck_assert_msg(span_is((s), (str)), \
	"span is \"%.*s\", want \"%s\"", (int)(s).len, (const char *)(s).p, (str))

/* Decode a buffer that must hold exactly one whole frame. */
static void decode_whole(const uint8_t *buf, size_t n, struct mqd_frame *f)
{
	size_t size = 0, need = 0;

	ck_assert_int_eq(mqd_frame_decode(buf, n, MAX_FRAME + MQD_FRAME_SLACK, f,
	                                  &size, &need), 1);
	ck_assert_uint_eq(size, n);
}

/* Decode and parse a whole frame. */
static int parse_buf(const uint8_t *buf, size_t n, struct mqd_frame *f,
                     union mqd_payload *p, const char **why)
{
	decode_whole(buf, n, f);
	return mqd_proto_parse(f, p, why);
}

static int parse_wbuf(const struct mqd_wbuf *w, union mqd_payload *p,
                      const char **why)
{
	struct mqd_frame f;

	ck_assert(!w->oom);
	return parse_buf(w->data, w->len, &f, p, why);
}

/* A name of n copies of c (n < 300). */
static const char *long_name(size_t n, char c)
{
	static char buf[300];

	ck_assert_uint_lt(n, sizeof buf);
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

/* ---- PROTOCOL.md section 6 ------------------------------------------ */

static const char hex_hello[] =
	"00 00 00 0e  01 00  00 00 00 01  01  03 63 6c 69  00  00 00";
static const char hex_send[] =
	"00 00 00 1f  20 00  00 00 00 02  04 6a 6f 62 73  00 00 00 00"
	"  00 00 00 00  00  00 00  00 00 00 05 68 65 6c 6c 6f";
static const char hex_ok7[] =
	"00 00 00 0e  80 00  00 00 00 02  00 00 00 00 00 00 00 07";
static const char hex_error[] =
	"00 00 00 11  ff 00  00 00 00 00  00 02  00 07 74 6f 6f 20 62 69 67";

static const char *const examples[] = { hex_hello, hex_send, hex_ok7,
	                                hex_error };
#define N_EXAMPLES (sizeof examples / sizeof examples[0])

static void assert_wbuf_hex(const struct mqd_wbuf *w, const char *hex)
{
	uint8_t want[256];
	size_t n = unhex(hex, want, sizeof want);

	ck_assert(!w->oom);
	ck_assert_uint_eq(w->len, n);
	ck_assert_mem_eq(w->data, want, n);
}

START_TEST(test_example_hello_encode)
{
	struct mqd_wbuf w;

	mqd_wbuf_init(&w);
	mqd_enc_hello(&w, 1, "cli", "", "");
	assert_wbuf_hex(&w, hex_hello);
	mqd_wbuf_reset(&w);
	mqd_enc_hello(&w, 1, "cli", NULL, NULL);
	assert_wbuf_hex(&w, hex_hello);
	mqd_wbuf_free(&w);
}
END_TEST

START_TEST(test_example_hello_decode)
{
	uint8_t buf[64];
	size_t n = unhex(hex_hello, buf, sizeof buf);
	struct mqd_frame f;
	union mqd_payload p;
	const char *why = "unset";

	ck_assert_uint_eq(n, 18);
	ck_assert_int_eq(parse_buf(buf, n, &f, &p, &why), 0);
	ck_assert_ptr_null(why);
	ck_assert_uint_eq(f.op, MQD_OP_HELLO);
	ck_assert_uint_eq(f.flags, 0);
	ck_assert_uint_eq(f.tag, 1);
	ck_assert_uint_eq(f.payload.len, 8);
	ck_assert_uint_eq(p.hello.version, 1);
	ck_assert_span(p.hello.client, "cli");
	ck_assert_uint_eq(p.hello.user.len, 0);
	ck_assert_uint_eq(p.hello.password.len, 0);
	/* Zero-copy: the client name points into the buffer. */
	ck_assert_ptr_eq(p.hello.client.p, buf + 12);
}
END_TEST

START_TEST(test_example_send_encode)
{
	struct mqd_wbuf w;

	mqd_wbuf_init(&w);
	mqd_enc_send(&w, MQD_OP_SEND, 0, 2, "jobs", 0, 0, 0, NULL, 0, "hello", 5);
	assert_wbuf_hex(&w, hex_send);
	mqd_wbuf_free(&w);
}
END_TEST

START_TEST(test_example_send_decode)
{
	uint8_t buf[64];
	size_t n = unhex(hex_send, buf, sizeof buf);
	struct mqd_frame f;
	union mqd_payload p;
	const char *why;

	ck_assert_uint_eq(n, 35);
	ck_assert_int_eq(parse_buf(buf, n, &f, &p, &why), 0);
	ck_assert_uint_eq(f.op, MQD_OP_SEND);
	ck_assert_uint_eq(f.flags, 0);
	ck_assert_uint_eq(f.tag, 2);
	ck_assert_span(p.send.dest, "jobs");
	ck_assert_uint_eq(p.send.ttl_ms, 0);
	ck_assert_uint_eq(p.send.delay_ms, 0);
	ck_assert_uint_eq(p.send.priority, 0);
	ck_assert_uint_eq(p.send.nheaders, 0);
	ck_assert_uint_eq(p.send.headers.len, 2);
	ck_assert_span(p.send.body, "hello");
}
END_TEST

START_TEST(test_example_ok_encode)
{
	struct mqd_wbuf w;

	mqd_wbuf_init(&w);
	mqd_enc_ok_u64(&w, 2, 7);
	assert_wbuf_hex(&w, hex_ok7);
	mqd_wbuf_free(&w);
}
END_TEST

START_TEST(test_example_ok_decode)
{
	uint8_t buf[64];
	size_t n = unhex(hex_ok7, buf, sizeof buf);
	struct mqd_frame f;
	union mqd_payload p;
	const char *why;

	ck_assert_int_eq(parse_buf(buf, n, &f, &p, &why), 0);
	ck_assert_uint_eq(f.op, MQD_OP_OK);
	ck_assert_uint_eq(f.tag, 2);
	ck_assert_uint_eq(p.raw.len, 8);
	ck_assert(mqd_load64(p.raw.p) == 7);
}
END_TEST

START_TEST(test_example_error_encode)
{
	struct mqd_wbuf w;

	mqd_wbuf_init(&w);
	mqd_enc_error(&w, 0, MQD_ERR_FRAME_TOO_LARGE, "too big");
	assert_wbuf_hex(&w, hex_error);
	mqd_wbuf_free(&w);
}
END_TEST

START_TEST(test_example_error_decode)
{
	uint8_t buf[64];
	size_t n = unhex(hex_error, buf, sizeof buf);
	struct mqd_frame f;
	union mqd_payload p;
	const char *why;

	ck_assert_int_eq(parse_buf(buf, n, &f, &p, &why), 0);
	ck_assert_uint_eq(f.op, MQD_OP_ERROR);
	ck_assert_uint_eq(f.tag, 0);
	ck_assert_uint_eq(p.error.code, MQD_ERR_FRAME_TOO_LARGE);
	ck_assert_span(p.error.message, "too big");
}
END_TEST

/* ---- truncation, cuts, left-over bytes (any frame) ------------------ */

/* Every proper prefix of a frame is "need more", with need = 4 until the
 * length is in, then the whole frame size. */
static void check_prefixes(const uint8_t *buf, size_t n)
{
	struct mqd_frame f;
	size_t k, size, need;

	for (k = 0; k < n; k++) {
		need = 12345;
		size = 12345;
		ck_assert_int_eq(mqd_frame_decode(buf, k, MAX_FRAME, &f, &size,
		                                  &need), 0);
		ck_assert_uint_eq(need, k < 4 ? 4 : n);
		ck_assert_uint_eq(size, 12345);
	}
	ck_assert_int_eq(mqd_frame_decode(buf, n, MAX_FRAME, &f, &size, &need),
	                 1);
	ck_assert_uint_eq(size, n);
}

/* Cut the payload at every byte and fix the length to match: the framing
 * is fine, the payload parser must say a field runs past the end (or, for
 * a payload of any bytes, accept it). */
static void check_cuts(const uint8_t *buf, size_t n, bool any_bytes)
{
	uint8_t *cut = malloc(n);
	struct mqd_frame f;
	union mqd_payload p;
	const char *why;
	size_t m;

	ck_assert_ptr_nonnull(cut);
	memcpy(cut, buf, n);
	for (m = 0; m + MQD_FRAME_HDR_SIZE < n; m++) {
		mqd_store32(cut, (uint32_t)(MQD_FRAME_MIN_LENGTH + m));
		decode_whole(cut, MQD_FRAME_HDR_SIZE + m, &f);
		ck_assert_uint_eq(f.payload.len, m);
		if (any_bytes) {
			ck_assert_int_eq(mqd_proto_parse(&f, &p, &why), 0);
			continue;
		}
		ck_assert_int_eq(mqd_proto_parse(&f, &p, &why), BAD);
		ck_assert_str_eq(why, "field runs past the end");
	}
	free(cut);
}

/* One byte more than the payload needs. */
static void check_left_over(const uint8_t *buf, size_t n, bool any_bytes)
{
	uint8_t *more = malloc(n + 1);
	struct mqd_frame f;
	union mqd_payload p;
	const char *why;

	ck_assert_ptr_nonnull(more);
	memcpy(more, buf, n);
	more[n] = 0;
	mqd_store32(more, (uint32_t)(n + 1 - MQD_FRAME_LEN_SIZE));
	decode_whole(more, n + 1, &f);
	if (any_bytes) {
		ck_assert_int_eq(mqd_proto_parse(&f, &p, &why), 0);
	} else {
		ck_assert_int_eq(mqd_proto_parse(&f, &p, &why), BAD);
		ck_assert_str_eq(why, "bytes left over");
	}
	free(more);
}

START_TEST(test_example_truncations)
{
	uint8_t buf[64];
	size_t n = unhex(examples[_i], buf, sizeof buf);
	bool any = buf[4] == MQD_OP_OK;

	check_prefixes(buf, n);
	check_cuts(buf, n, any);
	check_left_over(buf, n, any);
}
END_TEST

/* ---- one frame of every op ------------------------------------------ */

static const uint64_t ack_ids[] = { 1, 0x0102030405060708ull, UINT64_MAX };
static const uint8_t odd_bytes[] = { 0x00, 0xff, 0x0a, 'x', 0x00 };
static const char bin_body[] = "a\0b\xff";

/* reply-to: rq.1, correlation-id: c-42 (raw headers field). */
static void build_headers(struct mqd_wbuf *h)
{
	mqd_wbuf_init(h);
	mqd_headers_init(h);
	mqd_headers_add(h, "reply-to", "rq.1", 4);
	mqd_headers_add(h, "correlation-id", "c-42", 4);
	ck_assert(!h->oom);
}

static void check_headers(struct mqd_span hs, uint16_t n)
{
	struct mqd_span v;

	ck_assert_uint_eq(n, 2);
	ck_assert(mqd_headers_find(hs, "reply-to", &v));
	ck_assert_span(v, "rq.1");
	ck_assert(mqd_headers_find(hs, "correlation-id", &v));
	ck_assert_span(v, "c-42");
}

static void build_hello(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	ck_assert_uint_eq(fl, 0);
	mqd_enc_hello(w, tag, "my-client", "alice", "s3cret \xc3\xa9");
}

static void check_hello(const union mqd_payload *p)
{
	ck_assert_uint_eq(p->hello.version, MQD_PROTO_VERSION);
	ck_assert_span(p->hello.client, "my-client");
	ck_assert_span(p->hello.user, "alice");
	ck_assert_span(p->hello.password, "s3cret \xc3\xa9");
}

static void build_ping(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	mqd_enc_raw(w, MQD_OP_PING, fl, tag, odd_bytes, sizeof odd_bytes);
}

static void check_odd_bytes(const union mqd_payload *p)
{
	ck_assert_uint_eq(p->raw.len, sizeof odd_bytes);
	ck_assert_mem_eq(p->raw.p, odd_bytes, sizeof odd_bytes);
}

static const struct mqd_declare a_declare = {
	{ (const uint8_t *)"orders.eu", 9 }, UINT32_MAX, 0x0102030405060708ull,
	2, 60000, 30000, UINT16_MAX, { (const uint8_t *)"dlq", 3 }
};

static void build_declare(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	mqd_enc_declare(w, fl, tag, &a_declare);
}

static void check_declare(const union mqd_payload *p)
{
	const struct mqd_declare *d = &p->declare;

	ck_assert_span(d->queue, "orders.eu");
	ck_assert_uint_eq(d->max_length, UINT32_MAX);
	ck_assert(d->max_bytes == 0x0102030405060708ull);
	ck_assert_uint_eq(d->overflow, 2);
	ck_assert_uint_eq(d->message_ttl_ms, 60000);
	ck_assert_uint_eq(d->ack_timeout_ms, 30000);
	ck_assert_uint_eq(d->max_attempts, UINT16_MAX);
	ck_assert_span(d->dead_letter, "dlq");
}

static void build_delete(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	mqd_enc_queue_op(w, MQD_OP_DELETE, fl, tag, "jobs");
}

static void build_purge(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	mqd_enc_queue_op(w, MQD_OP_PURGE, fl, tag, "jobs");
}

static void build_cancelled(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	mqd_enc_queue_op(w, MQD_OP_CANCELLED, fl, tag, "jobs");
}

static void check_queue_jobs(const union mqd_payload *p)
{
	ck_assert_span(p->queue_ref.queue, "jobs");
}

static void build_bind(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	ck_assert_uint_eq(fl, 0);
	mqd_enc_bind(w, MQD_OP_BIND, tag, "q1", "orders.*.paid");
}

static void check_bind(const union mqd_payload *p)
{
	ck_assert_span(p->bind.queue, "q1");
	ck_assert_span(p->bind.pattern, "orders.*.paid");
}

static void build_unbind(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	ck_assert_uint_eq(fl, 0);
	mqd_enc_bind(w, MQD_OP_UNBIND, tag, "q1", "orders.>");
}

static void check_unbind(const union mqd_payload *p)
{
	ck_assert_span(p->bind.queue, "q1");
	ck_assert_span(p->bind.pattern, "orders.>");
}

static void build_send(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	struct mqd_wbuf h;

	build_headers(&h);
	mqd_enc_send(w, MQD_OP_SEND, fl, tag, "jobs", 1000, UINT32_MAX, 9,
	             h.data, h.len, bin_body, sizeof bin_body - 1);
	mqd_wbuf_free(&h);
}

static void check_send(const union mqd_payload *p)
{
	const struct mqd_send *s = &p->send;

	ck_assert_span(s->dest, "jobs");
	ck_assert_uint_eq(s->ttl_ms, 1000);
	ck_assert_uint_eq(s->delay_ms, UINT32_MAX);
	ck_assert_uint_eq(s->priority, 9);
	check_headers(s->headers, s->nheaders);
	ck_assert_uint_eq(s->body.len, sizeof bin_body - 1);
	ck_assert_mem_eq(s->body.p, bin_body, sizeof bin_body - 1);
}

static void build_publish(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	mqd_enc_send(w, MQD_OP_PUBLISH, fl, tag, "orders.eu.paid", 0, 5, 3,
	             NULL, 0, NULL, 0);
}

static void check_publish(const union mqd_payload *p)
{
	const struct mqd_send *s = &p->send;

	ck_assert_span(s->dest, "orders.eu.paid");
	ck_assert_uint_eq(s->ttl_ms, 0);
	ck_assert_uint_eq(s->delay_ms, 5);
	ck_assert_uint_eq(s->priority, 3);
	ck_assert_uint_eq(s->nheaders, 0);
	ck_assert_uint_eq(s->headers.len, 2);
	ck_assert_uint_eq(s->body.len, 0);
}

static void build_get(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	mqd_enc_get(w, fl, tag, "jobs", 1500);
}

static void check_get(const union mqd_payload *p)
{
	ck_assert_span(p->get.queue, "jobs");
	ck_assert_uint_eq(p->get.timeout_ms, 1500);
}

static void build_consume(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	mqd_enc_consume(w, fl, tag, "jobs", 100);
}

static void check_consume(const union mqd_payload *p)
{
	ck_assert_span(p->consume.queue, "jobs");
	ck_assert_uint_eq(p->consume.prefetch, 100);
}

static void build_cancel(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	ck_assert_uint_eq(fl, 0);
	mqd_enc_cancel(w, MQD_OP_CANCEL, tag, 0xDEADBEEF);
}

static void check_cancel(const union mqd_payload *p)
{
	ck_assert_uint_eq(p->cancel.tag, 0xDEADBEEF);
}

static void build_unsubscribe(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	ck_assert_uint_eq(fl, 0);
	mqd_enc_cancel(w, MQD_OP_UNSUBSCRIBE, tag, 42);
}

static void check_unsubscribe(const union mqd_payload *p)
{
	ck_assert_uint_eq(p->cancel.tag, 42);
}

static void build_ack(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	/* requeue and delay are ignored for ACK */
	mqd_enc_ack(w, MQD_OP_ACK, fl, tag, 1, 99, ack_ids, 3);
}

static void check_ids(const struct mqd_ack *a, uint16_t count)
{
	uint16_t i;

	ck_assert_uint_eq(a->count, count);
	for (i = 0; i < count; i++)
		ck_assert(mqd_load64(a->ids + 8 * i) == ack_ids[i]);
}

static void check_ack(const union mqd_payload *p)
{
	ck_assert_uint_eq(p->ack.requeue, 0);
	ck_assert_uint_eq(p->ack.delay_ms, 0);
	check_ids(&p->ack, 3);
}

static void build_nack(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	mqd_enc_ack(w, MQD_OP_NACK, fl, tag, 1, 250, ack_ids, 2);
}

static void check_nack(const union mqd_payload *p)
{
	ck_assert_uint_eq(p->ack.requeue, 1);
	ck_assert_uint_eq(p->ack.delay_ms, 250);
	check_ids(&p->ack, 2);
}

static void build_subscribe(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	ck_assert_uint_eq(fl, 0);
	mqd_enc_subscribe(w, tag, "bits.*");
}

static void check_subscribe(const union mqd_payload *p)
{
	ck_assert_span(p->subscribe.pattern, "bits.*");
}

static void build_ok(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	ck_assert_uint_eq(fl, 0);
	mqd_enc_ok_u32(w, tag, 7);
}

static void check_ok(const union mqd_payload *p)
{
	ck_assert_uint_eq(p->raw.len, 4);
	ck_assert_uint_eq(mqd_load32(p->raw.p), 7);
}

static void build_welcome(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	ck_assert_uint_eq(fl, 0);
	mqd_enc_welcome(w, tag, "mqd/0.1.0", MAX_FRAME, 0x1122334455667788ull);
}

static void check_welcome(const union mqd_payload *p)
{
	ck_assert_uint_eq(p->welcome.version, MQD_PROTO_VERSION);
	ck_assert_span(p->welcome.server, "mqd/0.1.0");
	ck_assert_uint_eq(p->welcome.max_frame, MAX_FRAME);
	ck_assert(p->welcome.conn_id == 0x1122334455667788ull);
}

static void build_pong(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	mqd_enc_raw(w, MQD_OP_PONG, fl, tag, odd_bytes, sizeof odd_bytes);
}

static void build_declared(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	ck_assert_uint_eq(fl, 0);
	mqd_enc_declared(w, tag, "tmp.abc", 7, 12, 3);
}

static void check_declared(const union mqd_payload *p)
{
	ck_assert_span(p->declared.queue, "tmp.abc");
	ck_assert(p->declared.ready == 12);
	ck_assert_uint_eq(p->declared.consumers, 3);
}

static void fill_message(struct mqd_message *m, struct mqd_wbuf *h,
                         const char *source)
{
	build_headers(h);
	memset(m, 0, sizeof *m);
	m->id = 0xFEDCBA9876543210ull;
	m->source.p = (const uint8_t *)source;
	m->source.len = (uint32_t)strlen(source);
	m->attempts = 2;
	m->timestamp_ms = 1700000000123ull;
	m->priority = 4;
	m->nheaders = 2;
	m->headers.p = h->data;
	m->headers.len = (uint32_t)h->len;
	m->body.p = (const uint8_t *)bin_body;
	m->body.len = sizeof bin_body - 1;
}

static void build_message_op(struct mqd_wbuf *w, uint8_t op, uint32_t tag,
                             const char *source)
{
	struct mqd_wbuf h;
	struct mqd_message m;

	fill_message(&m, &h, source);
	mqd_enc_message(w, op, tag, &m);
	mqd_wbuf_free(&h);
}

static void build_message(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	ck_assert_uint_eq(fl, 0);
	build_message_op(w, MQD_OP_MESSAGE, tag, "jobs");
}

static void build_deliver(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	ck_assert_uint_eq(fl, 0);
	build_message_op(w, MQD_OP_DELIVER, tag, "orders.eu.paid");
}

static void check_message_common(const struct mqd_message *m)
{
	ck_assert(m->id == 0xFEDCBA9876543210ull);
	ck_assert_uint_eq(m->attempts, 2);
	ck_assert(m->timestamp_ms == 1700000000123ull);
	ck_assert_uint_eq(m->priority, 4);
	check_headers(m->headers, m->nheaders);
	ck_assert_uint_eq(m->body.len, sizeof bin_body - 1);
	ck_assert_mem_eq(m->body.p, bin_body, sizeof bin_body - 1);
}

static void check_message(const union mqd_payload *p)
{
	ck_assert_span(p->message.source, "jobs");
	check_message_common(&p->message);
}

static void check_deliver(const union mqd_payload *p)
{
	ck_assert_span(p->message.source, "orders.eu.paid");
	check_message_common(&p->message);
}

static void build_empty(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	mqd_enc_raw(w, MQD_OP_EMPTY, fl, tag, NULL, 0);
}

static void check_empty(const union mqd_payload *p)
{
	ck_assert_uint_eq(p->raw.len, 0);
}

static void build_error(struct mqd_wbuf *w, uint8_t fl, uint32_t tag)
{
	ck_assert_uint_eq(fl, 0);
	mqd_enc_error(w, tag, MQD_ERR_NOT_FOUND, "no such queue");
}

static void check_error(const union mqd_payload *p)
{
	ck_assert_uint_eq(p->error.code, MQD_ERR_NOT_FOUND);
	ck_assert_span(p->error.message, "no such queue");
}

struct op_case {
	uint8_t op;
	const char *name;
	uint8_t allowed; /* the flags PROTOCOL.md lists for the op */
	uint8_t flags;   /* the flags this frame carries */
	uint32_t tag;
	bool any_bytes;  /* payload is any bytes: every cut still parses */
	void (*build)(struct mqd_wbuf *w, uint8_t flags, uint32_t tag);
	void (*check)(const union mqd_payload *p);
};

#define DECL_FLAGS (MQD_F_PASSIVE | MQD_F_EXCLUSIVE | MQD_F_AUTO_DELETE)

static const struct op_case op_cases[] = {
	{ MQD_OP_HELLO, "HELLO", 0, 0, 0xA1B2C3D4, false, build_hello,
	  check_hello },
	{ MQD_OP_PING, "PING", 0, 0, 3, true, build_ping, check_odd_bytes },
	{ MQD_OP_DECLARE, "DECLARE", DECL_FLAGS, DECL_FLAGS, 4, false,
	  build_declare, check_declare },
	{ MQD_OP_DELETE, "DELETE", MQD_F_IF_EMPTY, MQD_F_IF_EMPTY, 5, false,
	  build_delete, check_queue_jobs },
	{ MQD_OP_PURGE, "PURGE", 0, 0, 6, false, build_purge,
	  check_queue_jobs },
	{ MQD_OP_BIND, "BIND", 0, 0, 7, false, build_bind, check_bind },
	{ MQD_OP_UNBIND, "UNBIND", 0, 0, 8, false, build_unbind,
	  check_unbind },
	{ MQD_OP_SEND, "SEND", MQD_F_QUIET, MQD_F_QUIET, 9, false, build_send,
	  check_send },
	{ MQD_OP_PUBLISH, "PUBLISH", MQD_F_QUIET, 0, 10, false, build_publish,
	  check_publish },
	{ MQD_OP_GET, "GET", MQD_F_AUTO_ACK, MQD_F_AUTO_ACK, 11, false,
	  build_get, check_get },
	{ MQD_OP_CONSUME, "CONSUME", MQD_F_AUTO_ACK, 0, 12, false,
	  build_consume, check_consume },
	{ MQD_OP_CANCEL, "CANCEL", 0, 0, 13, false, build_cancel,
	  check_cancel },
	{ MQD_OP_ACK, "ACK", MQD_F_QUIET, MQD_F_QUIET, 14, false, build_ack,
	  check_ack },
	{ MQD_OP_NACK, "NACK", MQD_F_QUIET, 0, 15, false, build_nack,
	  check_nack },
	{ MQD_OP_SUBSCRIBE, "SUBSCRIBE", 0, 0, 16, false, build_subscribe,
	  check_subscribe },
	{ MQD_OP_UNSUBSCRIBE, "UNSUBSCRIBE", 0, 0, 17, false,
	  build_unsubscribe, check_unsubscribe },
	{ MQD_OP_OK, "OK", 0, 0, 18, true, build_ok, check_ok },
	{ MQD_OP_WELCOME, "WELCOME", 0, 0, 0, false, build_welcome,
	  check_welcome },
	{ MQD_OP_PONG, "PONG", 0, 0, 3, true, build_pong, check_odd_bytes },
	{ MQD_OP_DECLARED, "DECLARED", 0, 0, 4, false, build_declared,
	  check_declared },
	{ MQD_OP_MESSAGE, "MESSAGE", 0, 0, 11, false, build_message,
	  check_message },
	{ MQD_OP_EMPTY, "EMPTY", 0, 0, 11, false, build_empty, check_empty },
	{ MQD_OP_DELIVER, "DELIVER", 0, 0, 12, false, build_deliver,
	  check_deliver },
	{ MQD_OP_CANCELLED, "CANCELLED", 0, 0, 12, false, build_cancelled,
	  check_queue_jobs },
	{ MQD_OP_ERROR, "ERROR", 0, 0, UINT32_MAX, false, build_error,
	  check_error },
};
#define N_OPS ((int)(sizeof op_cases / sizeof op_cases[0]))

static void build_case(const struct op_case *c, struct mqd_wbuf *w)
{
	mqd_wbuf_init(w);
	c->build(w, c->flags, c->tag);
	ck_assert(!w->oom);
}

START_TEST(test_op_roundtrip)
{
	const struct op_case *c = &op_cases[_i];
	struct mqd_wbuf w;
	struct mqd_frame f;
	union mqd_payload p;
	const char *why = "unset";

	build_case(c, &w);
	ck_assert_uint_eq(mqd_load32(w.data), w.len - 4);
	ck_assert_int_eq(parse_buf(w.data, w.len, &f, &p, &why), 0);
	ck_assert_ptr_null(why);
	ck_assert_uint_eq(f.op, c->op);
	ck_assert_uint_eq(f.flags, c->flags);
	ck_assert_uint_eq(f.tag, c->tag);
	ck_assert_uint_eq(f.payload.len, w.len - MQD_FRAME_HDR_SIZE);
	c->check(&p);
	mqd_wbuf_free(&w);
}
END_TEST

START_TEST(test_op_truncations)
{
	const struct op_case *c = &op_cases[_i];
	struct mqd_wbuf w;

	build_case(c, &w);
	check_prefixes(w.data, w.len);
	check_cuts(w.data, w.len, c->any_bytes);
	check_left_over(w.data, w.len, c->any_bytes);
	mqd_wbuf_free(&w);
}
END_TEST

/* Every flag bit on every op: accepted exactly when PROTOCOL.md lists it. */
START_TEST(test_op_flags)
{
	const struct op_case *c = &op_cases[_i];
	struct mqd_wbuf w;
	struct mqd_frame f;
	union mqd_payload p;
	const char *why;
	unsigned bit;

	ck_assert_uint_eq(mqd_op_flags_allowed(c->op), c->allowed);
	build_case(c, &w);
	for (bit = 1; bit <= 0x80; bit <<= 1) {
		w.data[5] = (uint8_t)bit;
		decode_whole(w.data, w.len, &f);
		if (c->allowed & bit) {
			ck_assert_int_eq(mqd_proto_parse(&f, &p, &why), 0);
			continue;
		}
		ck_assert_int_eq(mqd_proto_parse(&f, &p, &why), BAD);
		ck_assert_str_eq(why, "flag not allowed");
	}
	w.data[5] = c->allowed;
	decode_whole(w.data, w.len, &f);
	ck_assert_int_eq(mqd_proto_parse(&f, &p, &why), 0);
	mqd_wbuf_free(&w);
}
END_TEST

START_TEST(test_op_names)
{
	const struct op_case *c = &op_cases[_i];

	ck_assert_str_eq(mqd_op_name(c->op), c->name);
}
END_TEST

/* Ops not in the table have no name, allow no flags, and parse to
 * UNKNOWN_OP whatever their payload. */
START_TEST(test_unknown_ops)
{
	struct mqd_frame f = { 0, 0, 9, { (const uint8_t *)"xyz", 3 } };
	union mqd_payload p;
	const char *why;
	int op, i, known = 0;

	for (op = 0; op <= 0xFF; op++) {
		for (i = 0; i < N_OPS; i++)
			if (op_cases[i].op == op)
				break;
		if (i < N_OPS) {
			known++;
			continue;
		}
		ck_assert_ptr_null(mqd_op_name(op));
		ck_assert_uint_eq(mqd_op_flags_allowed(op), 0);
		f.op = (uint8_t)op;
		ck_assert_int_eq(mqd_proto_parse(&f, &p, &why),
		                 MQD_ERR_UNKNOWN_OP);
		ck_assert_ptr_nonnull(why);
	}
	ck_assert_int_eq(known, 25);
	ck_assert_ptr_null(mqd_op_name(-1));
	ck_assert_ptr_null(mqd_op_name(0x100));
}
END_TEST

/* ---- names, topics, patterns ---------------------------------------- */

struct validity {
	const char *s;
	bool name, topic, pattern;
};

static const struct validity validity_table[] = {
	{ "a", true, true, true },
	{ "jobs", true, true, true },
	{ "orders.eu.paid", true, true, true },
	{ "AZaz09._-:", true, true, true }, /* tokens "AZaz09" and "_-:" */
	{ "Az.09_-:x", true, true, true },
	{ "orders.*.paid", false, false, true },
	{ "orders.>", false, false, true },
	{ "*", false, false, true },
	{ ">", false, false, true },
	{ "*.*", false, false, true },
	{ "a.*.>", false, false, true },
	{ "a.>.b", false, false, false },
	{ ">.a", false, false, false },
	{ "a.>>", false, false, false },
	{ "a.**", false, false, false },
	{ "a*", false, false, false },
	{ "a.b*", false, false, false },
	{ "a..b", true, false, false },
	{ ".a", true, false, false },
	{ "a.", true, false, false },
	{ ".", true, false, false },
	{ "", false, false, false },
	{ "a b", false, false, false },
	{ "a/b", false, false, false },
	{ "caf\xc3\xa9", false, false, false },
	{ "a\tb", false, false, false },
	{ "tmp.x-1:2_3", true, true, true },
};
#define N_VALIDITY ((int)(sizeof validity_table / sizeof validity_table[0]))

START_TEST(test_validity_table)
{
	const struct validity *v = &validity_table[_i];
	const uint8_t *p = (const uint8_t *)v->s;
	size_t n = strlen(v->s);

	ck_assert_msg(mqd_name_valid(p, n) == v->name, "name %s", v->s);
	ck_assert_msg(mqd_topic_valid(p, n) == v->topic, "topic %s", v->s);
	ck_assert_msg(mqd_pattern_valid(p, n) == v->pattern, "pattern %s",
	              v->s);
}
END_TEST

START_TEST(test_validity_lengths)
{
	uint8_t buf[300];

	memset(buf, 'a', sizeof buf);
	ck_assert(mqd_name_valid(buf, 255));
	ck_assert(!mqd_name_valid(buf, 256));
	ck_assert(mqd_topic_valid(buf, 255));
	ck_assert(!mqd_topic_valid(buf, 256));
	ck_assert(mqd_pattern_valid(buf, 255));
	ck_assert(!mqd_pattern_valid(buf, 256));
	buf[253] = '.';
	buf[254] = '>';
	ck_assert(mqd_pattern_valid(buf, 255));
	ck_assert(!mqd_name_valid(buf, 255));
	/* A 0 byte inside the given length is not a terminator. */
	ck_assert(!mqd_name_valid((const uint8_t *)"ab\0c", 4));
	ck_assert(mqd_name_valid((const uint8_t *)"ab\0c", 2));
}
END_TEST

/* ---- bad names inside frames ---------------------------------------- */

typedef void (*name_builder)(struct mqd_wbuf *w, const char *v);

static void nb_send(struct mqd_wbuf *w, const char *v)
{
	mqd_enc_send(w, MQD_OP_SEND, 0, 1, v, 0, 0, 0, NULL, 0, "x", 1);
}

static void nb_publish(struct mqd_wbuf *w, const char *v)
{
	mqd_enc_send(w, MQD_OP_PUBLISH, 0, 1, v, 0, 0, 0, NULL, 0, "x", 1);
}

static void nb_declare(struct mqd_wbuf *w, const char *v)
{
	struct mqd_declare d = a_declare;

	d.queue.p = (const uint8_t *)v;
	d.queue.len = (uint32_t)strlen(v);
	mqd_enc_declare(w, 0, 1, &d);
}

static void nb_dead_letter(struct mqd_wbuf *w, const char *v)
{
	struct mqd_declare d = a_declare;

	d.dead_letter.p = (const uint8_t *)v;
	d.dead_letter.len = (uint32_t)strlen(v);
	mqd_enc_declare(w, 0, 1, &d);
}

static void nb_client(struct mqd_wbuf *w, const char *v)
{
	mqd_enc_hello(w, 1, v, "bob", "pw");
}

static void nb_user(struct mqd_wbuf *w, const char *v)
{
	mqd_enc_hello(w, 1, "cli", v, "pw");
}

static void nb_delete(struct mqd_wbuf *w, const char *v)
{
	mqd_enc_queue_op(w, MQD_OP_DELETE, 0, 1, v);
}

static void nb_purge(struct mqd_wbuf *w, const char *v)
{
	mqd_enc_queue_op(w, MQD_OP_PURGE, 0, 1, v);
}

static void nb_cancelled(struct mqd_wbuf *w, const char *v)
{
	mqd_enc_queue_op(w, MQD_OP_CANCELLED, 0, 1, v);
}

static void nb_bind_queue(struct mqd_wbuf *w, const char *v)
{
	mqd_enc_bind(w, MQD_OP_BIND, 1, v, "a.*");
}

static void nb_bind_pattern(struct mqd_wbuf *w, const char *v)
{
	mqd_enc_bind(w, MQD_OP_BIND, 1, "q", v);
}

static void nb_unbind_pattern(struct mqd_wbuf *w, const char *v)
{
	mqd_enc_bind(w, MQD_OP_UNBIND, 1, "q", v);
}

static void nb_subscribe(struct mqd_wbuf *w, const char *v)
{
	mqd_enc_subscribe(w, 1, v);
}

static void nb_get(struct mqd_wbuf *w, const char *v)
{
	mqd_enc_get(w, 0, 1, v, 0);
}

static void nb_consume(struct mqd_wbuf *w, const char *v)
{
	mqd_enc_consume(w, 0, 1, v, 0);
}

static void nb_declared(struct mqd_wbuf *w, const char *v)
{
	mqd_enc_declared(w, 1, v, strlen(v), 0, 0);
}

static void nb_source(struct mqd_wbuf *w, const char *v)
{
	build_message_op(w, MQD_OP_DELIVER, 1, v);
}

static void nb_header_key(struct mqd_wbuf *w, const char *v)
{
	struct mqd_wbuf h;

	mqd_wbuf_init(&h);
	mqd_headers_init(&h);
	mqd_headers_add(&h, "ok", "1", 1);
	mqd_headers_add(&h, v, "2", 1);
	mqd_enc_send(w, MQD_OP_SEND, 0, 1, "q", 0, 0, 0, h.data, h.len, "", 0);
	mqd_wbuf_free(&h);
}

struct name_case {
	const char *field;
	name_builder build;
	const char *value;
	const char *why; /* NULL: accepted */
};

#define QN "bad queue name"
#define PAT "bad pattern"
#define TOP "bad topic"
static const char s255[] =
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

static const struct name_case name_cases[] = {
	{ "send queue", nb_send, "jobs", NULL },
	{ "send queue", nb_send, "a..b", NULL },
	{ "send queue", nb_send, s255, NULL },
	{ "send queue", nb_send, "", QN },
	{ "send queue", nb_send, "a b", QN },
	{ "send queue", nb_send, "a*", QN },
	{ "send queue", nb_send, "a.>", QN },
	{ "publish topic", nb_publish, "orders.eu.paid", NULL },
	{ "publish topic", nb_publish, s255, NULL },
	{ "publish topic", nb_publish, "", TOP },
	{ "publish topic", nb_publish, "a..b", TOP },
	{ "publish topic", nb_publish, ".a", TOP },
	{ "publish topic", nb_publish, "a.", TOP },
	{ "publish topic", nb_publish, "orders.*", TOP },
	{ "publish topic", nb_publish, "orders.>", TOP },
	{ "publish topic", nb_publish, "a/b", TOP },
	{ "declare queue", nb_declare, "", NULL },
	{ "declare queue", nb_declare, "rpc.replies", NULL },
	{ "declare queue", nb_declare, "a b", QN },
	{ "dead letter", nb_dead_letter, "", NULL },
	{ "dead letter", nb_dead_letter, "dlq", NULL },
	{ "dead letter", nb_dead_letter, "d/l", "bad dead-letter queue name" },
	{ "hello client", nb_client, "", NULL },
	{ "hello client", nb_client, "cli-1", NULL },
	{ "hello client", nb_client, "my client", "bad client name" },
	{ "hello user", nb_user, "", NULL },
	{ "hello user", nb_user, "alice@x", "bad user name" },
	{ "delete", nb_delete, "", QN },
	{ "delete", nb_delete, "x?", QN },
	{ "purge", nb_purge, "", QN },
	{ "purge", nb_purge, "q", NULL },
	{ "cancelled", nb_cancelled, "", QN },
	{ "cancelled", nb_cancelled, "a b", QN },
	{ "bind queue", nb_bind_queue, "", QN },
	{ "bind queue", nb_bind_queue, "q!", QN },
	{ "bind pattern", nb_bind_pattern, "orders.*.paid", NULL },
	{ "bind pattern", nb_bind_pattern, "orders.>", NULL },
	{ "bind pattern", nb_bind_pattern, ">", NULL },
	{ "bind pattern", nb_bind_pattern, "", PAT },
	{ "bind pattern", nb_bind_pattern, "a.>.b", PAT },
	{ "bind pattern", nb_bind_pattern, "a..b", PAT },
	{ "bind pattern", nb_bind_pattern, "a*", PAT },
	{ "unbind pattern", nb_unbind_pattern, "a.>.b", PAT },
	{ "unbind pattern", nb_unbind_pattern, "*.x", NULL },
	{ "subscribe", nb_subscribe, "orders.>", NULL },
	{ "subscribe", nb_subscribe, "", PAT },
	{ "subscribe", nb_subscribe, "a.>.b", PAT },
	{ "subscribe", nb_subscribe, "a.", PAT },
	{ "get", nb_get, "", QN },
	{ "get", nb_get, "a b", QN },
	{ "consume", nb_consume, "", QN },
	{ "consume", nb_consume, "a\nb", QN },
	{ "declared", nb_declared, "", QN },
	{ "declared", nb_declared, "a b", QN },
	{ "message source", nb_source, "", "bad source name" },
	{ "message source", nb_source, "a b", "bad source name" },
	{ "message source", nb_source, "a..b", NULL },
	{ "header key", nb_header_key, "x-dead-reason", NULL },
	{ "header key", nb_header_key, "", "bad header key" },
	{ "header key", nb_header_key, "a b", "bad header key" },
	{ "header key", nb_header_key, "a=b", "bad header key" },
	{ "header key", nb_header_key, "ok", "header key repeated" },
};
#define N_NAME_CASES ((int)(sizeof name_cases / sizeof name_cases[0]))

START_TEST(test_names_in_frames)
{
	const struct name_case *c = &name_cases[_i];
	struct mqd_wbuf w;
	union mqd_payload p;
	const char *why;
	int rc;

	mqd_wbuf_init(&w);
	c->build(&w, c->value);
	rc = parse_wbuf(&w, &p, &why);
	if (c->why == NULL) {
		ck_assert_msg(rc == 0, "%s \"%s\": %s", c->field, c->value, why);
	} else {
		ck_assert_msg(rc == BAD, "%s \"%s\" accepted", c->field,
		              c->value);
		ck_assert_str_eq(why, c->why);
	}
	mqd_wbuf_free(&w);
}
END_TEST

/* ---- other field rules ---------------------------------------------- */

static int parse_send_prio(uint8_t op, uint8_t prio, const char **why)
{
	struct mqd_wbuf w;
	union mqd_payload p;
	int rc;

	mqd_wbuf_init(&w);
	mqd_enc_send(&w, op, 0, 1, "a.b", 0, 0, prio, NULL, 0, "x", 1);
	rc = parse_wbuf(&w, &p, why);
	if (rc == 0)
		ck_assert_uint_eq(p.send.priority, prio);
	mqd_wbuf_free(&w);
	return rc;
}

static int parse_message_prio(uint8_t op, uint8_t prio, const char **why)
{
	struct mqd_wbuf w, h;
	struct mqd_message m;
	union mqd_payload p;
	int rc;

	fill_message(&m, &h, "q");
	m.priority = prio;
	mqd_wbuf_init(&w);
	mqd_enc_message(&w, op, 1, &m);
	rc = parse_wbuf(&w, &p, why);
	mqd_wbuf_free(&w);
	mqd_wbuf_free(&h);
	return rc;
}

START_TEST(test_priority)
{
	static const uint8_t ops[] = { MQD_OP_SEND, MQD_OP_PUBLISH };
	static const uint8_t mops[] = { MQD_OP_MESSAGE, MQD_OP_DELIVER };
	const char *why;
	unsigned i, prio;

	for (i = 0; i < 2; i++) {
		for (prio = 0; prio <= 9; prio++) {
			ck_assert_int_eq(parse_send_prio(ops[i], (uint8_t)prio,
			                                 &why), 0);
			ck_assert_int_eq(parse_message_prio(mops[i],
			                                    (uint8_t)prio, &why),
			                 0);
		}
		for (prio = 10; prio <= 255; prio += 245) {
			ck_assert_int_eq(parse_send_prio(ops[i], (uint8_t)prio,
			                                 &why), BAD);
			ck_assert_str_eq(why, "priority above 9");
			ck_assert_int_eq(parse_message_prio(mops[i],
			                                    (uint8_t)prio, &why),
			                 BAD);
			ck_assert_str_eq(why, "priority above 9");
		}
	}
}
END_TEST

START_TEST(test_declare_overflow)
{
	struct mqd_declare d = a_declare;
	struct mqd_wbuf w;
	union mqd_payload p;
	const char *why;
	unsigned ov;

	mqd_wbuf_init(&w);
	for (ov = 0; ov <= 255; ov++) {
		d.overflow = (uint8_t)ov;
		mqd_wbuf_reset(&w);
		mqd_enc_declare(&w, 0, 1, &d);
		if (ov <= 2) {
			ck_assert_int_eq(parse_wbuf(&w, &p, &why), 0);
			ck_assert_uint_eq(p.declare.overflow, ov);
		} else {
			ck_assert_int_eq(parse_wbuf(&w, &p, &why), BAD);
			ck_assert_str_eq(why, "overflow not 0, 1 or 2");
		}
	}
	mqd_wbuf_free(&w);
}
END_TEST

START_TEST(test_nack_requeue)
{
	struct mqd_wbuf w;
	union mqd_payload p;
	const char *why;
	unsigned rq;

	mqd_wbuf_init(&w);
	for (rq = 0; rq <= 255; rq++) {
		mqd_wbuf_reset(&w);
		mqd_enc_ack(&w, MQD_OP_NACK, 0, 1, (uint8_t)rq, 0, ack_ids, 1);
		if (rq <= 1) {
			ck_assert_int_eq(parse_wbuf(&w, &p, &why), 0);
			ck_assert_uint_eq(p.ack.requeue, rq);
		} else {
			ck_assert_int_eq(parse_wbuf(&w, &p, &why), BAD);
			ck_assert_str_eq(why, "requeue not 0 or 1");
		}
	}
	mqd_wbuf_free(&w);
}
END_TEST

START_TEST(test_ack_count_zero)
{
	struct mqd_wbuf w;
	union mqd_payload p;
	const char *why;

	mqd_wbuf_init(&w);
	mqd_enc_ack(&w, MQD_OP_ACK, MQD_F_QUIET, 1, 0, 0, NULL, 0);
	ck_assert_uint_eq(w.len, MQD_FRAME_HDR_SIZE + 2);
	ck_assert_int_eq(parse_wbuf(&w, &p, &why), 0);
	ck_assert_uint_eq(p.ack.count, 0);
	mqd_wbuf_reset(&w);
	mqd_enc_ack(&w, MQD_OP_NACK, 0, 1, 0, 7, NULL, 0);
	ck_assert_uint_eq(w.len, MQD_FRAME_HDR_SIZE + 7);
	ck_assert_int_eq(parse_wbuf(&w, &p, &why), 0);
	ck_assert_uint_eq(p.ack.count, 0);
	ck_assert_uint_eq(p.ack.delay_ms, 7);
	mqd_wbuf_free(&w);
}
END_TEST

/* The count promises more ids than there are bytes. */
START_TEST(test_ack_count_too_big)
{
	static const uint8_t payload[] = { 0, 2, 0, 0, 0, 0, 0, 0, 0, 1 };
	struct mqd_wbuf w;
	union mqd_payload p;
	const char *why;

	mqd_wbuf_init(&w);
	mqd_enc_raw(&w, MQD_OP_ACK, 0, 1, payload, sizeof payload);
	ck_assert_int_eq(parse_wbuf(&w, &p, &why), BAD);
	ck_assert_str_eq(why, "field runs past the end");
	mqd_wbuf_free(&w);
}
END_TEST

/* The server decides UNSUPPORTED_VERSION; the parser returns what came. */
START_TEST(test_hello_version_as_is)
{
	struct mqd_wbuf w;
	union mqd_payload p;
	const char *why;
	unsigned v;

	mqd_wbuf_init(&w);
	mqd_enc_hello(&w, 1, "cli", NULL, NULL);
	for (v = 0; v <= 255; v += 51) {
		w.data[MQD_FRAME_HDR_SIZE] = (uint8_t)v;
		ck_assert_int_eq(parse_wbuf(&w, &p, &why), 0);
		ck_assert_uint_eq(p.hello.version, v);
	}
	mqd_wbuf_free(&w);
}
END_TEST

START_TEST(test_empty_payloads)
{
	struct mqd_wbuf w;
	union mqd_payload p;
	const char *why;

	mqd_wbuf_init(&w);
	mqd_enc_ok(&w, 1);
	ck_assert_uint_eq(w.len, MQD_FRAME_HDR_SIZE);
	ck_assert_int_eq(parse_wbuf(&w, &p, &why), 0);
	ck_assert_uint_eq(p.raw.len, 0);
	mqd_wbuf_reset(&w);
	mqd_enc_raw(&w, MQD_OP_PING, 0, 1, NULL, 0);
	ck_assert_int_eq(parse_wbuf(&w, &p, &why), 0);
	ck_assert_uint_eq(p.raw.len, 0);
	mqd_wbuf_free(&w);
}
END_TEST

START_TEST(test_parse_why_optional)
{
	uint8_t buf[64];
	size_t n = unhex(hex_send, buf, sizeof buf);
	struct mqd_frame f;
	union mqd_payload p;

	decode_whole(buf, n, &f);
	ck_assert_int_eq(mqd_proto_parse(&f, &p, NULL), 0);
	f.flags = MQD_F_AUTO_ACK;
	ck_assert_int_eq(mqd_proto_parse(&f, &p, NULL), BAD);
	f.op = 0x7F;
	ck_assert_int_eq(mqd_proto_parse(&f, &p, NULL), MQD_ERR_UNKNOWN_OP);
}
END_TEST

/* ---- frame decode --------------------------------------------------- */

START_TEST(test_decode_short_length)
{
	uint8_t buf[4];
	struct mqd_frame f;
	size_t size = 77, need = 77;
	uint32_t len;

	for (len = 0; len < MQD_FRAME_MIN_LENGTH; len++) {
		mqd_store32(buf, len);
		ck_assert_int_eq(mqd_frame_decode(buf, 4, MAX_FRAME, &f, &size,
		                                  &need), -MQD_ERR_BAD_FRAME);
		ck_assert_uint_eq(need, 0);
		ck_assert_uint_eq(size, 77);
	}
}
END_TEST

/* The verdict on an oversized frame comes from its 4 length bytes. */
START_TEST(test_decode_too_large)
{
	static const uint32_t lens[] = { MAX_FRAME + 1, MAX_FRAME + 4096,
		                         UINT32_MAX - 4, UINT32_MAX };
	uint8_t buf[4];
	struct mqd_frame f;
	size_t size, need = 77, i;

	for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		mqd_store32(buf, lens[i]);
		ck_assert_int_eq(mqd_frame_decode(buf, 4, MAX_FRAME, &f, &size,
		                                  &need),
		                 -MQD_ERR_FRAME_TOO_LARGE);
		ck_assert_uint_eq(need, 0);
	}
	/* Exactly max_frame is legal: wait for the body. */
	mqd_store32(buf, MAX_FRAME);
	ck_assert_int_eq(mqd_frame_decode(buf, 4, MAX_FRAME, &f, &size, &need),
	                 0);
	ck_assert_uint_eq(need, (size_t)MAX_FRAME + 4);
	/* A client allows the server its slack. */
	mqd_store32(buf, MAX_FRAME + MQD_FRAME_SLACK);
	ck_assert_int_eq(mqd_frame_decode(buf, 4, MAX_FRAME + MQD_FRAME_SLACK,
	                                  &f, &size, NULL), 0);
}
END_TEST

START_TEST(test_decode_need)
{
	uint8_t buf[16] = { 0 };
	struct mqd_frame f;
	size_t size, need, n;

	for (n = 0; n < 4; n++) {
		need = 0;
		ck_assert_int_eq(mqd_frame_decode(buf, n, MAX_FRAME, &f, &size,
		                                  &need), 0);
		ck_assert_uint_eq(need, 4);
		ck_assert_int_eq(mqd_frame_decode(buf, n, MAX_FRAME, &f, &size,
		                                  NULL), 0);
	}
	mqd_store32(buf, 6);
	buf[4] = MQD_OP_EMPTY;
	mqd_store32(buf + 6, 0x01020304);
	ck_assert_int_eq(mqd_frame_decode(buf, 9, MAX_FRAME, &f, &size, &need),
	                 0);
	ck_assert_uint_eq(need, 10);
	ck_assert_int_eq(mqd_frame_decode(buf, 16, MAX_FRAME, &f, &size, &need),
	                 1);
	ck_assert_uint_eq(size, 10);
	ck_assert_uint_eq(f.op, MQD_OP_EMPTY);
	ck_assert_uint_eq(f.tag, 0x01020304);
	ck_assert_uint_eq(f.payload.len, 0);
	ck_assert_ptr_eq(f.payload.p, buf + 10);
}
END_TEST

/* Pipelined frames: decode one after another from one buffer. */
START_TEST(test_decode_pipeline)
{
	struct mqd_wbuf w;
	struct mqd_frame f;
	union mqd_payload p;
	size_t off = 0, size;
	const char *why;
	int i;

	mqd_wbuf_init(&w);
	for (i = 0; i < N_OPS; i++)
		op_cases[i].build(&w, op_cases[i].flags, op_cases[i].tag);
	ck_assert(!w.oom);
	for (i = 0; i < N_OPS; i++) {
		ck_assert_int_eq(mqd_frame_decode(w.data + off, w.len - off,
		                                  MAX_FRAME, &f, &size, NULL), 1);
		ck_assert_uint_eq(f.op, op_cases[i].op);
		ck_assert_int_eq(mqd_proto_parse(&f, &p, &why), 0);
		op_cases[i].check(&p);
		off += size;
	}
	ck_assert_uint_eq(off, w.len);
	mqd_wbuf_free(&w);
}
END_TEST

/* ---- headers -------------------------------------------------------- */

START_TEST(test_headers_next_find)
{
	struct mqd_wbuf h;
	struct mqd_span hs, k, v;
	size_t pos = 2;

	mqd_wbuf_init(&h);
	mqd_headers_init(&h);
	mqd_headers_add(&h, "reply-to", "rq.1", 4);
	mqd_headers_add(&h, "empty", NULL, 0);
	mqd_headers_add(&h, "Reply-To", "other", 5);
	ck_assert(!h.oom);
	ck_assert_uint_eq(mqd_load16(h.data), 3);
	hs.p = h.data;
	hs.len = (uint32_t)h.len;

	ck_assert(mqd_headers_next(hs, &pos, &k, &v));
	ck_assert_span(k, "reply-to");
	ck_assert_span(v, "rq.1");
	ck_assert(mqd_headers_next(hs, &pos, &k, &v));
	ck_assert_span(k, "empty");
	ck_assert_uint_eq(v.len, 0);
	ck_assert(mqd_headers_next(hs, &pos, &k, &v));
	ck_assert_span(k, "Reply-To");
	ck_assert_span(v, "other");
	ck_assert(!mqd_headers_next(hs, &pos, &k, &v));
	ck_assert_uint_eq(pos, h.len);

	ck_assert(mqd_headers_find(hs, "reply-to", &v));
	ck_assert_span(v, "rq.1");
	ck_assert(mqd_headers_find(hs, "Reply-To", &v)); /* case-sensitive */
	ck_assert_span(v, "other");
	ck_assert(mqd_headers_find(hs, "empty", &v));
	ck_assert_uint_eq(v.len, 0);
	ck_assert(!mqd_headers_find(hs, "reply", &v));
	ck_assert(!mqd_headers_find(hs, "reply-to-x", &v));
	ck_assert(!mqd_headers_find(hs, "", &v));
	ck_assert(!mqd_headers_find(hs, long_name(280, 'r'), &v));

	/* No headers at all, or an empty span. */
	mqd_headers_init(&h);
	hs.p = h.data;
	hs.len = (uint32_t)h.len;
	ck_assert_uint_eq(h.len, 2);
	pos = 2;
	ck_assert(!mqd_headers_next(hs, &pos, &k, &v));
	ck_assert(!mqd_headers_find(hs, "reply-to", &v));
	hs.len = 0;
	ck_assert(!mqd_headers_find(hs, "reply-to", &v));
	mqd_wbuf_free(&h);
}
END_TEST

/* A parsed frame's headers field walks the same way. */
START_TEST(test_headers_in_frame)
{
	struct mqd_wbuf w;
	union mqd_payload p;
	const char *why;
	struct mqd_span k, v;
	size_t pos = 2;

	mqd_wbuf_init(&w);
	build_send(&w, 0, 1);
	ck_assert_int_eq(parse_wbuf(&w, &p, &why), 0);
	ck_assert_uint_eq(mqd_load16(p.send.headers.p), 2);
	ck_assert(mqd_headers_next(p.send.headers, &pos, &k, &v));
	ck_assert_span(k, "reply-to");
	ck_assert(mqd_headers_next(p.send.headers, &pos, &k, &v));
	ck_assert_span(k, "correlation-id");
	ck_assert(!mqd_headers_next(p.send.headers, &pos, &k, &v));
	mqd_wbuf_free(&w);
}
END_TEST

/* n headers k0..k(n-1); key dup_of, when >= 0, is repeated at the end. */
static int parse_many_headers(int n, int dup_of, const char **why)
{
	struct mqd_wbuf h, w;
	union mqd_payload p;
	char key[16];
	int i, rc;

	mqd_wbuf_init(&h);
	mqd_wbuf_init(&w);
	mqd_headers_init(&h);
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof key, "k%d", i);
		mqd_headers_add(&h, key, "v", 1);
	}
	if (dup_of >= 0) {
		snprintf(key, sizeof key, "k%d", dup_of);
		mqd_headers_add(&h, key, "again", 5);
	}
	mqd_enc_send(&w, MQD_OP_SEND, 0, 1, "q", 0, 0, 0, h.data, h.len, "", 0);
	rc = parse_wbuf(&w, &p, why);
	if (rc == 0)
		ck_assert_uint_eq(p.send.nheaders, n);
	mqd_wbuf_free(&w);
	mqd_wbuf_free(&h);
	return rc;
}

START_TEST(test_headers_repeated)
{
	static const int counts[] = { 1, 2, 3, 15, 16, 17, 40, 1000 };
	const char *why;
	size_t i;
	int n;

	for (i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		n = counts[i];
		ck_assert_int_eq(parse_many_headers(n, -1, &why), 0);
		ck_assert_int_eq(parse_many_headers(n, 0, &why), BAD);
		ck_assert_str_eq(why, "header key repeated");
		ck_assert_int_eq(parse_many_headers(n, n - 1, &why), BAD);
		ck_assert_str_eq(why, "header key repeated");
		ck_assert_int_eq(parse_many_headers(n, n / 2, &why), BAD);
		ck_assert_str_eq(why, "header key repeated");
	}
}
END_TEST

/* The headers count promises more entries than there are: the body's
 * length bytes that follow are read as a (bad, empty) key. */
START_TEST(test_headers_count_too_big)
{
	struct mqd_wbuf h, w;
	union mqd_payload p;
	const char *why;

	mqd_wbuf_init(&h);
	mqd_wbuf_init(&w);
	mqd_headers_init(&h);
	mqd_headers_add(&h, "a", "1", 1);
	mqd_store16(h.data, 2);
	mqd_enc_send(&w, MQD_OP_SEND, 0, 1, "q", 0, 0, 0, h.data, h.len, "", 0);
	ck_assert_int_eq(parse_wbuf(&w, &p, &why), BAD);
	ck_assert_str_eq(why, "bad header key");
	mqd_wbuf_free(&w);
	mqd_wbuf_free(&h);
}
END_TEST

START_TEST(test_headers_add_limits)
{
	struct mqd_wbuf h;

	mqd_wbuf_init(&h);
	mqd_headers_add(&h, "a", "1", 1); /* not started: nothing to count */
	ck_assert(h.oom);
	mqd_headers_init(&h); /* reuses the buffer, clears oom */
	ck_assert(!h.oom);
	ck_assert_uint_eq(h.len, 2);
	mqd_store16(h.data, UINT16_MAX);
	mqd_headers_add(&h, "a", "1", 1);
	ck_assert(h.oom);
	mqd_headers_init(&h);
	mqd_headers_add(&h, long_name(256, 'k'), "1", 1);
	ck_assert(h.oom);
	mqd_wbuf_free(&h);
}
END_TEST

/* ---- wbuf and field writers ----------------------------------------- */

START_TEST(test_field_writers)
{
	struct mqd_wbuf w;

	mqd_wbuf_init(&w);
	mqd_w_u8(&w, 0xAB);
	mqd_w_u16(&w, 0x1234);
	mqd_w_u32(&w, 0x89ABCDEF);
	mqd_w_u64(&w, 0x0123456789ABCDEFull);
	mqd_w_bytes(&w, "xy", 2);
	mqd_w_name(&w, "abc", 3);
	mqd_w_name(&w, NULL, 0);
	mqd_w_str16(&w, "hi", 2);
	mqd_w_str16(&w, NULL, 0);
	mqd_w_blob(&w, "xyz", 3);
	mqd_w_blob(&w, NULL, 0);
	assert_wbuf_hex(&w, "ab  12 34  89 ab cd ef  01 23 45 67 89 ab cd ef"
	                    "  78 79  03 61 62 63  00  00 02 68 69  00 00"
	                    "  00 00 00 03 78 79 7a  00 00 00 00");
	ck_assert_uint_eq(mqd_load16(w.data + 1), 0x1234);
	ck_assert_uint_eq(mqd_load32(w.data + 3), 0x89ABCDEF);
	ck_assert(mqd_load64(w.data + 7) == 0x0123456789ABCDEFull);
	mqd_wbuf_free(&w);
	ck_assert_ptr_null(w.data);
	ck_assert_uint_eq(w.cap, 0);
}
END_TEST

/* A length that does not fit its prefix stops the buffer like an OOM. */
START_TEST(test_field_writers_too_long)
{
	static char big[70000];
	struct mqd_wbuf w;

	mqd_wbuf_init(&w);
	mqd_w_name(&w, big, 255);
	ck_assert(!w.oom);
	ck_assert_uint_eq(w.len, 256);
	mqd_w_name(&w, big, 256);
	ck_assert(w.oom);
	ck_assert_uint_eq(w.len, 256);
	mqd_w_u8(&w, 1); /* no-op from now on */
	ck_assert_uint_eq(w.len, 256);

	mqd_wbuf_reset(&w);
	ck_assert(!w.oom);
	mqd_w_str16(&w, big, 65535);
	ck_assert(!w.oom);
	mqd_w_str16(&w, big, 65536);
	ck_assert(w.oom);
	ck_assert_uint_eq(w.len, 65537);
	mqd_wbuf_free(&w);
}
END_TEST

START_TEST(test_wbuf_growth)
{
	struct mqd_wbuf w;
	size_t i, reallocs = 0, cap = 0;
	uint8_t *data;

	mqd_wbuf_init(&w);
	ck_assert(mqd_wbuf_reserve(&w, 0));
	for (i = 0; i < 100000; i++) {
		mqd_w_u8(&w, (uint8_t)i);
		if (w.cap != cap) {
			reallocs++;
			cap = w.cap;
		}
	}
	ck_assert(!w.oom);
	ck_assert_uint_eq(w.len, 100000);
	ck_assert_uint_le(reallocs, 12); /* geometric, not one per write */
	ck_assert_uint_lt(w.cap, 2 * w.len);
	for (i = 0; i < 100000; i++)
		ck_assert_uint_eq(w.data[i], (uint8_t)i);
	data = w.data;
	cap = w.cap;
	mqd_wbuf_reset(&w);
	ck_assert_uint_eq(w.len, 0);
	ck_assert_ptr_eq(w.data, data);
	ck_assert_uint_eq(w.cap, cap);
	ck_assert(mqd_wbuf_reserve(&w, cap));
	ck_assert_ptr_eq(w.data, data);
	mqd_wbuf_free(&w);
}
END_TEST

START_TEST(test_wbuf_oom)
{
	struct mqd_wbuf w;

	mqd_wbuf_init(&w);
	mqd_w_u32(&w, 1);
	ck_assert(!mqd_wbuf_reserve(&w, (size_t)PTRDIFF_MAX));
	ck_assert(w.oom);
	ck_assert(!mqd_wbuf_reserve(&w, 1));
	mqd_w_u64(&w, 2);
	mqd_enc_ok(&w, 3);
	ck_assert_uint_eq(w.len, 4);
	ck_assert_uint_eq(mqd_load32(w.data), 1);
	mqd_wbuf_reset(&w);
	ck_assert(!w.oom);
	ck_assert(!mqd_wbuf_reserve(&w, SIZE_MAX));
	ck_assert(w.oom);
	mqd_wbuf_free(&w);
	ck_assert(!w.oom);
}
END_TEST

START_TEST(test_frame_begin_end)
{
	struct mqd_wbuf w;
	size_t a, b;

	mqd_wbuf_init(&w);
	a = mqd_w_frame_begin(&w, MQD_OP_OK, 0, 2);
	mqd_w_u64(&w, 7);
	mqd_w_frame_end(&w, a);
	b = mqd_w_frame_begin(&w, MQD_OP_ERROR, 0, 0);
	mqd_w_u16(&w, 2);
	mqd_w_str16(&w, "too big", 7);
	mqd_w_frame_end(&w, b);
	ck_assert_uint_eq(a, 0);
	ck_assert_uint_eq(b, 18);
	ck_assert_uint_eq(w.len, 18 + 21);
	ck_assert_mem_eq(w.data, "\x00\x00\x00\x0e\x80", 5);
	ck_assert_mem_eq(w.data + b, "\x00\x00\x00\x11\xff", 5);
	mqd_wbuf_free(&w);
}
END_TEST

/* The head is the whole frame minus the body bytes, with lengths that
 * count them; head + body is byte for byte mqd_enc_message. */
START_TEST(test_message_head)
{
	struct mqd_wbuf full, head, h;
	struct mqd_message m;
	union mqd_payload p;
	const char *why;
	size_t n;

	fill_message(&m, &h, "jobs");
	mqd_wbuf_init(&full);
	mqd_wbuf_init(&head);
	mqd_enc_message(&full, MQD_OP_DELIVER, 9, &m);
	mqd_w_u8(&head, 0xEE); /* not at offset 0 */
	n = mqd_enc_message_head(&head, MQD_OP_DELIVER, 9, &m);
	ck_assert_uint_eq(n, full.len - m.body.len);
	ck_assert_uint_eq(head.len, 1 + n);
	ck_assert_mem_eq(head.data + 1, full.data, n);
	ck_assert_uint_eq(mqd_load32(head.data + 1), full.len - 4);
	ck_assert_uint_eq(mqd_load32(head.data + 1 + n - 4), m.body.len);
	mqd_w_bytes(&head, m.body.p, m.body.len);
	ck_assert_uint_eq(head.len, 1 + full.len);
	ck_assert_mem_eq(head.data + 1, full.data, full.len);
	ck_assert_int_eq(parse_wbuf(&full, &p, &why), 0);
	check_message_common(&p.message);

	/* An empty body, and no headers (count 0 written). */
	m.body.len = 0;
	m.body.p = NULL;
	m.headers.len = 0;
	m.headers.p = NULL;
	mqd_wbuf_reset(&head);
	n = mqd_enc_message_head(&head, MQD_OP_MESSAGE, 9, &m);
	ck_assert_uint_eq(n, head.len);
	ck_assert_uint_eq(n, MQD_FRAME_HDR_SIZE + 8 + 5 + 2 + 8 + 1 + 2 + 4);
	ck_assert_int_eq(parse_wbuf(&head, &p, &why), 0);
	ck_assert_uint_eq(p.message.nheaders, 0);
	mqd_wbuf_free(&full);
	mqd_wbuf_free(&head);
	mqd_wbuf_free(&h);
}
END_TEST

START_TEST(test_message_head_oom)
{
	struct mqd_wbuf w, h;
	struct mqd_message m;

	fill_message(&m, &h, "jobs");
	mqd_wbuf_init(&w);
	w.oom = true;
	ck_assert_uint_eq(mqd_enc_message_head(&w, MQD_OP_DELIVER, 1, &m), 0);
	mqd_enc_message(&w, MQD_OP_DELIVER, 1, &m);
	ck_assert_uint_eq(w.len, 0);
	mqd_wbuf_free(&w);
	mqd_wbuf_free(&h);
}
END_TEST

/* ---- error codes ---------------------------------------------------- */

struct err_case {
	int code;
	const char *name;
	bool closes;
};

static const struct err_case err_cases[] = {
	{ 1, "BAD_FRAME", true },
	{ 2, "FRAME_TOO_LARGE", true },
	{ 3, "UNKNOWN_OP", false },
	{ 4, "BAD_ARGUMENT", false },
	{ 5, "NOT_FOUND", false },
	{ 6, "QUEUE_FULL", false },
	{ 7, "CONFLICT", false },
	{ 8, "HELLO_REQUIRED", true },
	{ 9, "UNSUPPORTED_VERSION", true },
	{ 10, "AUTH_REQUIRED", true },
	{ 11, "AUTH_FAILED", true },
	{ 12, "FORBIDDEN", false },
	{ 13, "MEMORY_LIMIT", false },
	{ 14, "LIMIT", false }, /* closes only as the answer to HELLO */
	{ 15, "SHUTTING_DOWN", true },
	{ 16, "INTERNAL", false },
};

START_TEST(test_err_table)
{
	size_t i;

	ck_assert_uint_eq(sizeof err_cases / sizeof err_cases[0], MQD_ERR_MAX);
	for (i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
		ck_assert_int_eq(err_cases[i].code, (int)i + 1);
		ck_assert_str_eq(mqd_err_name(err_cases[i].code),
		                 err_cases[i].name);
		ck_assert_msg(mqd_err_closes(err_cases[i].code) ==
		              err_cases[i].closes, "%s", err_cases[i].name);
	}
	ck_assert_ptr_null(mqd_err_name(0));
	ck_assert_ptr_null(mqd_err_name(17));
	ck_assert_ptr_null(mqd_err_name(-1));
	ck_assert(!mqd_err_closes(0));
	ck_assert(!mqd_err_closes(17));
	ck_assert(!mqd_err_closes(-2));
}
END_TEST

/* ---- runner --------------------------------------------------------- */

static Suite *proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *tc;

	tc = tcase_create("examples");
	tcase_add_test(tc, test_example_hello_encode);
	tcase_add_test(tc, test_example_hello_decode);
	tcase_add_test(tc, test_example_send_encode);
	tcase_add_test(tc, test_example_send_decode);
	tcase_add_test(tc, test_example_ok_encode);
	tcase_add_test(tc, test_example_ok_decode);
	tcase_add_test(tc, test_example_error_encode);
	tcase_add_test(tc, test_example_error_decode);
	tcase_add_loop_test(tc, test_example_truncations, 0, (int)N_EXAMPLES);
	suite_add_tcase(s, tc);

	tc = tcase_create("ops");
	tcase_add_loop_test(tc, test_op_roundtrip, 0, N_OPS);
	tcase_add_loop_test(tc, test_op_truncations, 0, N_OPS);
	tcase_add_loop_test(tc, test_op_flags, 0, N_OPS);
	tcase_add_loop_test(tc, test_op_names, 0, N_OPS);
	tcase_add_test(tc, test_unknown_ops);
	suite_add_tcase(s, tc);

	tc = tcase_create("names");
	tcase_add_loop_test(tc, test_validity_table, 0, N_VALIDITY);
	tcase_add_test(tc, test_validity_lengths);
	tcase_add_loop_test(tc, test_names_in_frames, 0, N_NAME_CASES);
	suite_add_tcase(s, tc);

	tc = tcase_create("fields");
	tcase_add_test(tc, test_priority);
	tcase_add_test(tc, test_declare_overflow);
	tcase_add_test(tc, test_nack_requeue);
	tcase_add_test(tc, test_ack_count_zero);
	tcase_add_test(tc, test_ack_count_too_big);
	tcase_add_test(tc, test_hello_version_as_is);
	tcase_add_test(tc, test_empty_payloads);
	tcase_add_test(tc, test_parse_why_optional);
	suite_add_tcase(s, tc);

	tc = tcase_create("decode");
	tcase_add_test(tc, test_decode_short_length);
	tcase_add_test(tc, test_decode_too_large);
	tcase_add_test(tc, test_decode_need);
	tcase_add_test(tc, test_decode_pipeline);
	suite_add_tcase(s, tc);

	tc = tcase_create("headers");
	tcase_add_test(tc, test_headers_next_find);
	tcase_add_test(tc, test_headers_in_frame);
	tcase_add_test(tc, test_headers_repeated);
	tcase_add_test(tc, test_headers_count_too_big);
	tcase_add_test(tc, test_headers_add_limits);
	suite_add_tcase(s, tc);

	tc = tcase_create("wbuf");
	tcase_add_test(tc, test_field_writers);
	tcase_add_test(tc, test_field_writers_too_long);
	tcase_add_test(tc, test_wbuf_growth);
	tcase_add_test(tc, test_wbuf_oom);
	tcase_add_test(tc, test_frame_begin_end);
	tcase_add_test(tc, test_message_head);
	tcase_add_test(tc, test_message_head_oom);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, test_err_table);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(proto_suite());
	int failed;

	/* Fork mode, Check's default, so one crash fails one test; CK_FORK=no
	 * in the environment runs in-process for a debugger. */
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
