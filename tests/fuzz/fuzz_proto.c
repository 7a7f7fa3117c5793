/*
 * Fuzz target "proto": the frame decoder, every payload parser and the
 * headers walk (src/proto/proto.c).
 *
 * The input is a byte stream as a broker or a client reads it: frames are
 * cut from it one after another until the decoder wants more bytes or
 * refuses a length.  Besides not crashing, each frame must keep the
 * codec's promises:
 *   - the decoder's verdict comes from the length field alone, and a
 *     frame one byte short asks for exactly the bytes it lacks;
 *   - a parsed payload's spans lie inside the frame, its names are valid,
 *     and its headers walk gives count entries whose keys each find
 *     their own value;
 *   - encoding what was parsed with the codec's own encoders gives the
 *     frame back byte for byte (where an encoder can say it: C-string
 *     encoders cannot carry a NUL byte, HELLO and WELCOME always say
 *     version 1).
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "proto/proto.h"

#define MAX_FRAME (1024u * 1024u)
#define FIND_CHECKS 64 /* headers looked up by key, per field */

static const struct mqd_frame *cur; /* the frame being checked */

static void check_span(struct mqd_span s)
{
	const uint8_t *lo = cur->payload.p, *hi = lo + cur->payload.len;

	FUZZ_CHECK(s.p >= lo && s.p <= hi && s.len <= (size_t)(hi - s.p));
}

/* A span as a C string (malloc'd), or NULL when it holds a NUL byte and
 * so cannot go through a char * encoder. */
static char *cstr(struct mqd_span s)
{
	char *c;

	if (s.len > 0 && memchr(s.p, '\0', s.len) != NULL)
		return NULL;
	c = malloc((size_t)s.len + 1);
	FUZZ_CHECK(c != NULL);
	if (s.len > 0)
		memcpy(c, s.p, s.len);
	c[s.len] = '\0';
	return c;
}

static void check_name(struct mqd_span s, bool empty_ok)
{
	check_span(s);
	FUZZ_CHECK(s.len == 0 ? empty_ok : mqd_name_valid(s.p, s.len));
}

static void check_headers(struct mqd_span h, uint16_t count)
{
	struct mqd_span k, v, found;
	size_t pos = 2;
	unsigned n = 0;
	char key[MQD_NAME_MAX + 1];

	check_span(h);
	FUZZ_CHECK(h.len >= 2 && mqd_load16(h.p) == count);
	while (mqd_headers_next(h, &pos, &k, &v)) {
		check_name(k, false);
		check_span(v);
		if (n++ < FIND_CHECKS) {
			memcpy(key, k.p, k.len);
			key[k.len] = '\0';
			/* Keys are unique, so a key finds its own value. */
			FUZZ_CHECK(mqd_headers_find(h, key, &found));
			FUZZ_CHECK(found.p == v.p && found.len == v.len);
		}
	}
	FUZZ_CHECK(n == count && pos == h.len);
	(void)mqd_headers_find(h, "x-not-there", &found);
}

/* Re-encode a parsed frame into w; false when no encoder can say it. */
static bool encode(struct mqd_wbuf *w, const struct mqd_frame *f,
                   const union mqd_payload *p)
{
	char *a = NULL, *b = NULL, *c = NULL;
	uint64_t *ids;
	bool ok = true;

	switch (f->op) {
	case MQD_OP_HELLO:
		a = cstr(p->hello.client);
		b = cstr(p->hello.user);
		c = cstr(p->hello.password);
		ok = p->hello.version == MQD_PROTO_VERSION && a && b && c;
		if (ok)
			mqd_enc_hello(w, f->tag, a, b, c);
		break;
	case MQD_OP_PING:
	case MQD_OP_PONG:
	case MQD_OP_OK:
	case MQD_OP_EMPTY:
		mqd_enc_raw(w, f->op, f->flags, f->tag, p->raw.p, p->raw.len);
		break;
	case MQD_OP_DECLARE:
		mqd_enc_declare(w, f->flags, f->tag, &p->declare);
		break;
	case MQD_OP_DELETE:
	case MQD_OP_PURGE:
	case MQD_OP_CANCELLED:
		a = cstr(p->queue_ref.queue);
		mqd_enc_queue_op(w, f->op, f->flags, f->tag, a);
		break;
	case MQD_OP_BIND:
	case MQD_OP_UNBIND:
		a = cstr(p->bind.queue);
		b = cstr(p->bind.pattern);
		mqd_enc_bind(w, f->op, f->tag, a, b);
		break;
	case MQD_OP_SEND:
	case MQD_OP_PUBLISH:
		a = cstr(p->send.dest);
		mqd_enc_send(w, f->op, f->flags, f->tag, a, p->send.ttl_ms,
		             p->send.delay_ms, p->send.priority,
		             p->send.headers.p, p->send.headers.len,
		             p->send.body.p, p->send.body.len);
		break;
	case MQD_OP_GET:
		a = cstr(p->get.queue);
		mqd_enc_get(w, f->flags, f->tag, a, p->get.timeout_ms);
		break;
	case MQD_OP_CONSUME:
		a = cstr(p->consume.queue);
		mqd_enc_consume(w, f->flags, f->tag, a, p->consume.prefetch);
		break;
	case MQD_OP_CANCEL:
	case MQD_OP_UNSUBSCRIBE:
		mqd_enc_cancel(w, f->op, f->tag, p->cancel.tag);
		break;
	case MQD_OP_ACK:
	case MQD_OP_NACK:
		ids = malloc((p->ack.count + 1u) * sizeof *ids);
		FUZZ_CHECK(ids != NULL);
		for (unsigned i = 0; i < p->ack.count; i++)
			ids[i] = mqd_load64(p->ack.ids + 8 * i);
		mqd_enc_ack(w, f->op, f->flags, f->tag, p->ack.requeue,
		            p->ack.delay_ms, ids, p->ack.count);
		free(ids);
		break;
	case MQD_OP_SUBSCRIBE:
		a = cstr(p->subscribe.pattern);
		mqd_enc_subscribe(w, f->tag, a);
		break;
	case MQD_OP_WELCOME:
		a = cstr(p->welcome.server);
		ok = p->welcome.version == MQD_PROTO_VERSION && a;
		if (ok)
			mqd_enc_welcome(w, f->tag, a, p->welcome.max_frame,
			                p->welcome.conn_id);
		break;
	case MQD_OP_DECLARED:
		mqd_enc_declared(w, f->tag, p->declared.queue.p,
		                 p->declared.queue.len, p->declared.ready,
		                 p->declared.consumers);
		break;
	case MQD_OP_MESSAGE:
	case MQD_OP_DELIVER:
		mqd_enc_message(w, f->op, f->tag, &p->message);
		break;
	case MQD_OP_ERROR:
		a = cstr(p->error.message);
		ok = a != NULL;
		if (ok)
			mqd_enc_error(w, f->tag, p->error.code, a);
		break;
	default:
		FUZZ_CHECK(!"an op parsed that encode() does not know");
	}
	free(a);
	free(b);
	free(c);
	return ok;
}

/* What a parsed payload promises, op by op. */
static void check_payload(const struct mqd_frame *f,
                          const union mqd_payload *p)
{
	switch (f->op) {
	case MQD_OP_HELLO:
		check_name(p->hello.client, true);
		check_name(p->hello.user, true);
		check_span(p->hello.password);
		break;
	case MQD_OP_DECLARE:
		check_name(p->declare.queue, true);
		check_name(p->declare.dead_letter, true);
		FUZZ_CHECK(p->declare.overflow <= 2);
		break;
	case MQD_OP_DELETE:
	case MQD_OP_PURGE:
	case MQD_OP_CANCELLED:
		check_name(p->queue_ref.queue, false);
		break;
	case MQD_OP_BIND:
	case MQD_OP_UNBIND:
		check_name(p->bind.queue, false);
		check_span(p->bind.pattern);
		FUZZ_CHECK(mqd_pattern_valid(p->bind.pattern.p,
		                             p->bind.pattern.len));
		break;
	case MQD_OP_SEND:
	case MQD_OP_PUBLISH:
		check_name(p->send.dest, false);
		if (f->op == MQD_OP_PUBLISH)
			FUZZ_CHECK(mqd_topic_valid(p->send.dest.p,
			                           p->send.dest.len));
		FUZZ_CHECK(p->send.priority <= MQD_PRIORITY_MAX);
		check_headers(p->send.headers, p->send.nheaders);
		check_span(p->send.body);
		break;
	case MQD_OP_GET:
		check_name(p->get.queue, false);
		break;
	case MQD_OP_CONSUME:
		check_name(p->consume.queue, false);
		break;
	case MQD_OP_ACK:
	case MQD_OP_NACK: {
		struct mqd_span ids = { p->ack.ids, 8u * p->ack.count };

		check_span(ids);
		FUZZ_CHECK(p->ack.requeue <= 1);
		break;
	}
	case MQD_OP_SUBSCRIBE:
		check_span(p->subscribe.pattern);
		FUZZ_CHECK(mqd_pattern_valid(p->subscribe.pattern.p,
		                             p->subscribe.pattern.len));
		break;
	case MQD_OP_WELCOME:
		check_span(p->welcome.server);
		break;
	case MQD_OP_DECLARED:
		check_name(p->declared.queue, false);
		break;
	case MQD_OP_MESSAGE:
	case MQD_OP_DELIVER:
		check_name(p->message.source, false);
		FUZZ_CHECK(p->message.priority <= MQD_PRIORITY_MAX);
		check_headers(p->message.headers, p->message.nheaders);
		check_span(p->message.body);
		break;
	case MQD_OP_ERROR:
		check_span(p->error.message);
		break;
	case MQD_OP_CANCEL:
	case MQD_OP_UNSUBSCRIBE:
		break; /* a u32, no span */
	default: /* PING, PONG, OK, EMPTY */
		check_span(p->raw);
		break;
	}
}

static void check_frame(const uint8_t *frame, size_t size,
                        const struct mqd_frame *f)
{
	union mqd_payload p;
	struct mqd_wbuf w;
	const char *why = NULL;
	int rc;

	cur = f;
	(void)mqd_op_name(f->op);
	rc = mqd_proto_parse(f, &p, &why);
	if (rc != 0) {
		FUZZ_CHECK(rc == MQD_ERR_UNKNOWN_OP ||
		           rc == MQD_ERR_BAD_ARGUMENT);
		FUZZ_CHECK(why != NULL && *why != '\0');
		FUZZ_CHECK((rc == MQD_ERR_UNKNOWN_OP) ==
		           (mqd_op_name(f->op) == NULL));
		return;
	}
	FUZZ_CHECK(mqd_op_name(f->op) != NULL);
	FUZZ_CHECK((f->flags & ~mqd_op_flags_allowed(f->op)) == 0);
	check_payload(f, &p);
	if (f->op == MQD_OP_ERROR) {
		(void)mqd_err_name(p.error.code);
		(void)mqd_err_closes(p.error.code);
	}
	mqd_wbuf_init(&w);
	if (encode(&w, f, &p)) {
		FUZZ_CHECK(!w.oom);
		FUZZ_CHECK(w.len == size && memcmp(w.data, frame, size) == 0);
	}
	mqd_wbuf_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	for (;;) {
		const uint8_t *buf = data + off;
		size_t n = size - off, fsize = 0, need = 0, need2 = 0;
		struct mqd_frame f, g;
		int rc = mqd_frame_decode(buf, n, MAX_FRAME, &f, &fsize, &need);

		if (rc <= 0) {
			if (n >= MQD_FRAME_LEN_SIZE)
				/* The verdict on the length needs only it. */
				FUZZ_CHECK(mqd_frame_decode(buf, 4, MAX_FRAME,
				                            &g, NULL, &need2) ==
				           (rc < 0 ? rc : 0));
			if (rc == 0)
				FUZZ_CHECK(need > n);
			break;
		}
		FUZZ_CHECK(rc == 1 && fsize <= n &&
		           fsize == (size_t)mqd_load32(buf) + 4 &&
		           fsize >= MQD_FRAME_HDR_SIZE);
		FUZZ_CHECK(f.payload.p == buf + MQD_FRAME_HDR_SIZE &&
		           f.payload.len == fsize - MQD_FRAME_HDR_SIZE);
		/* One byte short: not yet, and exactly how much is needed. */
		FUZZ_CHECK(mqd_frame_decode(buf, fsize - 1, MAX_FRAME, &g, NULL,
		                            &need2) == 0 && need2 == fsize);
		check_frame(buf, fsize, &f);
		off += fsize;
	}
	return 0;
}
