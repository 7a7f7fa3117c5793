/*
 * Frame codec and payload parsers for the mqd wire protocol, version 1.
 *
 * Decoding is zero-copy: parsers walk a payload with a bounds-checked reader
 * and hand back spans into the caller's buffer.  Each op is one row of
 * op_table (name, allowed flags, parser), so adding an op is adding a row.
 * Every parser rejects with a short static reason; nothing here allocates
 * except the wbuf writers and, for frames with many headers, the temporary
 * index used to find a repeated key in O(n log n) rather than O(n^2).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

/* ---- error codes and ops -------------------------------------------- */

struct err_desc {
	const char *name;
	bool closes;
};

/* Indexed by code; LIMIT closes only as the answer to a HELLO, which the
 * HELLO handler decides, so in general it does not. */
static const struct err_desc err_table[MQD_ERR_MAX + 1] = {
	[MQD_ERR_BAD_FRAME] = { "BAD_FRAME", true },
	[MQD_ERR_FRAME_TOO_LARGE] = { "FRAME_TOO_LARGE", true },
	[MQD_ERR_UNKNOWN_OP] = { "UNKNOWN_OP", false },
	[MQD_ERR_BAD_ARGUMENT] = { "BAD_ARGUMENT", false },
	[MQD_ERR_NOT_FOUND] = { "NOT_FOUND", false },
	[MQD_ERR_QUEUE_FULL] = { "QUEUE_FULL", false },
	[MQD_ERR_CONFLICT] = { "CONFLICT", false },
	[MQD_ERR_HELLO_REQUIRED] = { "HELLO_REQUIRED", true },
	[MQD_ERR_UNSUPPORTED_VERSION] = { "UNSUPPORTED_VERSION", true },
	[MQD_ERR_AUTH_REQUIRED] = { "AUTH_REQUIRED", true },
	[MQD_ERR_AUTH_FAILED] = { "AUTH_FAILED", true },
	[MQD_ERR_FORBIDDEN] = { "FORBIDDEN", false },
	[MQD_ERR_MEMORY_LIMIT] = { "MEMORY_LIMIT", false },
	[MQD_ERR_LIMIT] = { "LIMIT", false },
	[MQD_ERR_SHUTTING_DOWN] = { "SHUTTING_DOWN", true },
	[MQD_ERR_INTERNAL] = { "INTERNAL", false },
};

const char *mqd_err_name(int code)
{
	if (code < 1 || code > MQD_ERR_MAX)
		return NULL;
	return err_table[code].name;
}

bool mqd_err_closes(int code)
{
	if (code < 1 || code > MQD_ERR_MAX)
		return false;
	return err_table[code].closes;
}

/* A bounds-checked cursor over one payload.  The first failure sets why;
 * every reader returns false from then on. */
struct rd {
	const uint8_t *p;
	size_t len, pos;
	const char *why;
};

typedef bool (*parse_fn)(struct rd *r, union mqd_payload *out);

struct op_desc {
	uint8_t op;
	const char *name;
	uint8_t flags_allowed;
	parse_fn parse;
};

static bool parse_hello(struct rd *r, union mqd_payload *out);
static bool parse_raw(struct rd *r, union mqd_payload *out);
static bool parse_empty(struct rd *r, union mqd_payload *out);
static bool parse_declare(struct rd *r, union mqd_payload *out);
static bool parse_queue_ref(struct rd *r, union mqd_payload *out);
static bool parse_bind(struct rd *r, union mqd_payload *out);
static bool parse_send(struct rd *r, union mqd_payload *out);
static bool parse_publish(struct rd *r, union mqd_payload *out);
static bool parse_get(struct rd *r, union mqd_payload *out);
static bool parse_consume(struct rd *r, union mqd_payload *out);
static bool parse_cancel(struct rd *r, union mqd_payload *out);
static bool parse_ack(struct rd *r, union mqd_payload *out);
static bool parse_nack(struct rd *r, union mqd_payload *out);
static bool parse_subscribe(struct rd *r, union mqd_payload *out);
static bool parse_welcome(struct rd *r, union mqd_payload *out);
static bool parse_declared(struct rd *r, union mqd_payload *out);
static bool parse_message(struct rd *r, union mqd_payload *out);
static bool parse_error(struct rd *r, union mqd_payload *out);

#define F_DECLARE (MQD_F_PASSIVE | MQD_F_EXCLUSIVE | MQD_F_AUTO_DELETE)

static const struct op_desc op_table[] = {
	{ MQD_OP_HELLO, "HELLO", 0, parse_hello },
	{ MQD_OP_PING, "PING", 0, parse_raw },
	{ MQD_OP_DECLARE, "DECLARE", F_DECLARE, parse_declare },
	{ MQD_OP_DELETE, "DELETE", MQD_F_IF_EMPTY, parse_queue_ref },
	{ MQD_OP_PURGE, "PURGE", 0, parse_queue_ref },
	{ MQD_OP_BIND, "BIND", 0, parse_bind },
	{ MQD_OP_UNBIND, "UNBIND", 0, parse_bind },
	{ MQD_OP_SEND, "SEND", MQD_F_QUIET, parse_send },
	{ MQD_OP_PUBLISH, "PUBLISH", MQD_F_QUIET, parse_publish },
	{ MQD_OP_GET, "GET", MQD_F_AUTO_ACK, parse_get },
	{ MQD_OP_CONSUME, "CONSUME", MQD_F_AUTO_ACK, parse_consume },
	{ MQD_OP_CANCEL, "CANCEL", 0, parse_cancel },
	{ MQD_OP_ACK, "ACK", MQD_F_QUIET, parse_ack },
	{ MQD_OP_NACK, "NACK", MQD_F_QUIET, parse_nack },
	{ MQD_OP_SUBSCRIBE, "SUBSCRIBE", 0, parse_subscribe },
	{ MQD_OP_UNSUBSCRIBE, "UNSUBSCRIBE", 0, parse_cancel },
	{ MQD_OP_OK, "OK", 0, parse_raw },
	{ MQD_OP_WELCOME, "WELCOME", 0, parse_welcome },
	{ MQD_OP_PONG, "PONG", 0, parse_raw },
	{ MQD_OP_DECLARED, "DECLARED", 0, parse_declared },
	{ MQD_OP_MESSAGE, "MESSAGE", 0, parse_message },
	{ MQD_OP_EMPTY, "EMPTY", 0, parse_empty },
	{ MQD_OP_DELIVER, "DELIVER", 0, parse_message },
	{ MQD_OP_CANCELLED, "CANCELLED", 0, parse_queue_ref },
	{ MQD_OP_ERROR, "ERROR", 0, parse_error },
};

static const struct op_desc *find_op(int op)
{
	size_t i;

	for (i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
		if (op_table[i].op == op)
			return &op_table[i];
	return NULL;
}

const char *mqd_op_name(int op)
{
	const struct op_desc *d = find_op(op);

	return d ? d->name : NULL;
}

uint8_t mqd_op_flags_allowed(int op)
{
	const struct op_desc *d = find_op(op);

	return d ? d->flags_allowed : 0;
}

/* ---- names ---------------------------------------------------------- */

static bool is_token_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-' || c == ':';
}

bool mqd_name_valid(const uint8_t *p, size_t n)
{
	size_t i;

	if (n < 1 || n > MQD_NAME_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (p[i] != '.' && !is_token_char(p[i]))
			return false;
	return true;
}

bool mqd_topic_valid(const uint8_t *p, size_t n)
{
	size_t i;

	if (!mqd_name_valid(p, n) || p[0] == '.' || p[n - 1] == '.')
		return false;
	for (i = 1; i < n; i++)
		if (p[i] == '.' && p[i - 1] == '.')
			return false;
	return true;
}

/* One pattern token: a plain token, "*", or ">" when it is the last. */
static bool pattern_token_valid(const uint8_t *t, size_t n, bool last)
{
	size_t i;

	if (n == 1 && t[0] == '*')
		return true;
	if (n == 1 && t[0] == '>')
		return last;
	if (n == 0)
		return false;
	for (i = 0; i < n; i++)
		if (!is_token_char(t[i]))
			return false;
	return true;
}

bool mqd_pattern_valid(const uint8_t *p, size_t n)
{
	size_t start = 0, i;

	if (n < 1 || n > MQD_NAME_MAX)
		return false;
	for (i = 0; i <= n; i++) {
		if (i < n && p[i] != '.')
			continue;
		if (!pattern_token_valid(p + start, i - start, i == n))
			return false;
		start = i + 1;
	}
	return true;
}

/* ---- frames --------------------------------------------------------- */

int mqd_frame_decode(const uint8_t *buf, size_t n, uint32_t max_frame,
                     struct mqd_frame *f, size_t *frame_size, size_t *need)
{
	uint32_t length;
	uint64_t total;

	if (need != NULL)
		*need = n < MQD_FRAME_LEN_SIZE ? MQD_FRAME_LEN_SIZE : 0;
	if (n < MQD_FRAME_LEN_SIZE)
		return 0;
	length = mqd_load32(buf);
	if (length < MQD_FRAME_MIN_LENGTH)
		return -MQD_ERR_BAD_FRAME;
	total = (uint64_t)length + MQD_FRAME_LEN_SIZE;
	if (length > max_frame || total > SIZE_MAX)
		return -MQD_ERR_FRAME_TOO_LARGE;
	if (need != NULL)
		*need = (size_t)total;
	if (n < total)
		return 0;
	f->op = buf[4];
	f->flags = buf[5];
	f->tag = mqd_load32(buf + 6);
	f->payload.p = buf + MQD_FRAME_HDR_SIZE;
	f->payload.len = length - MQD_FRAME_MIN_LENGTH;
	if (frame_size != NULL)
		*frame_size = (size_t)total;
	return 1;
}

/* ---- readers -------------------------------------------------------- */

static bool fail(struct rd *r, const char *why)
{
	if (r->why == NULL)
		r->why = why;
	return false;
}

/* Take n bytes at the cursor. */
static bool rd_take(struct rd *r, size_t n, const uint8_t **p)
{
	if (r->why != NULL)
		return false;
	if (n > r->len - r->pos)
		return fail(r, "field runs past the end");
	*p = r->p + r->pos;
	r->pos += n;
	return true;
}

static bool rd_u8(struct rd *r, uint8_t *v)
{
	const uint8_t *p;

	if (!rd_take(r, 1, &p))
		return false;
	*v = p[0];
	return true;
}

static bool rd_u16(struct rd *r, uint16_t *v)
{
	const uint8_t *p;

	if (!rd_take(r, 2, &p))
		return false;
	*v = mqd_load16(p);
	return true;
}

static bool rd_u32(struct rd *r, uint32_t *v)
{
	const uint8_t *p;

	if (!rd_take(r, 4, &p))
		return false;
	*v = mqd_load32(p);
	return true;
}

static bool rd_u64(struct rd *r, uint64_t *v)
{
	const uint8_t *p;

	if (!rd_take(r, 8, &p))
		return false;
	*v = mqd_load64(p);
	return true;
}

static bool rd_span(struct rd *r, size_t n, struct mqd_span *s)
{
	if (!rd_take(r, n, &s->p))
		return false;
	s->len = (uint32_t)n;
	return true;
}

static bool rd_str16(struct rd *r, struct mqd_span *s)
{
	uint16_t n;

	return rd_u16(r, &n) && rd_span(r, n, s);
}

static bool rd_blob(struct rd *r, struct mqd_span *s)
{
	uint32_t n;

	return rd_u32(r, &n) && rd_span(r, n, s);
}

typedef bool (*name_check)(const uint8_t *p, size_t n);

/* A u8-length name checked by ok; empty only when empty_ok. */
static bool rd_name(struct rd *r, struct mqd_span *s, name_check ok,
                    bool empty_ok, const char *bad)
{
	uint8_t n;

	if (!rd_u8(r, &n) || !rd_span(r, n, s))
		return false;
	if (n == 0 ? empty_ok : ok(s->p, n))
		return true;
	return fail(r, bad);
}

static bool rd_queue(struct rd *r, struct mqd_span *s)
{
	return rd_name(r, s, mqd_name_valid, false, "bad queue name");
}

static bool rd_pattern(struct rd *r, struct mqd_span *s)
{
	return rd_name(r, s, mqd_pattern_valid, false, "bad pattern");
}

static bool rd_priority(struct rd *r, uint8_t *v)
{
	if (!rd_u8(r, v))
		return false;
	return *v <= MQD_PRIORITY_MAX || fail(r, "priority above 9");
}

/* ---- headers -------------------------------------------------------- */

static bool span_eq(struct mqd_span a, struct mqd_span b)
{
	return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

bool mqd_headers_next(struct mqd_span headers, size_t *pos,
                      struct mqd_span *key, struct mqd_span *value)
{
	struct rd r = { headers.p, headers.len, *pos, NULL };
	uint8_t klen;

	if (*pos > headers.len || !rd_u8(&r, &klen) ||
	    !rd_span(&r, klen, key) || !rd_str16(&r, value))
		return false;
	*pos = r.pos;
	return true;
}

bool mqd_headers_find(struct mqd_span headers, const char *key,
                      struct mqd_span *value)
{
	struct mqd_span want = { (const uint8_t *)key, 0 };
	struct mqd_span k, v;
	size_t pos = 2, n = strlen(key);

	if (n > MQD_NAME_MAX)
		return false;
	want.len = (uint32_t)n;
	while (mqd_headers_next(headers, &pos, &k, &v)) {
		if (span_eq(k, want)) {
			*value = v;
			return true;
		}
	}
	return false;
}

/* O(n^2), for the usual handful of headers. */
static bool keys_unique_small(struct mqd_span headers)
{
	struct mqd_span ki, vi, kj, vj;
	size_t pi = 2, pj;

	while (mqd_headers_next(headers, &pi, &ki, &vi)) {
		pj = pi;
		while (mqd_headers_next(headers, &pj, &kj, &vj))
			if (span_eq(ki, kj))
				return false;
	}
	return true;
}

/* Elements are pointers to a key's length byte. */
static int key_cmp(const void *a, const void *b)
{
	const uint8_t *x = *(const uint8_t *const *)a;
	const uint8_t *y = *(const uint8_t *const *)b;

	if (x[0] != y[0])
		return x[0] < y[0] ? -1 : 1;
	return memcmp(x + 1, y + 1, x[0]);
}

/* Sort the keys and compare neighbours, so a frame packed with thousands of
 * headers cannot make a worker spend seconds comparing them pairwise. */
static bool keys_unique(struct mqd_span headers, uint16_t count)
{
	const uint8_t **keys;
	struct mqd_span k, v;
	size_t pos = 2, i = 0;
	bool ok = true;

	if (count <= 16)
		return keys_unique_small(headers);
	keys = malloc(count * sizeof *keys);
	if (keys == NULL)
		return keys_unique_small(headers);
	while (i < count && mqd_headers_next(headers, &pos, &k, &v))
		keys[i++] = k.p - 1;
	qsort(keys, i, sizeof *keys, key_cmp);
	while (ok && i-- > 1)
		ok = key_cmp(&keys[i], &keys[i - 1]) != 0;
	free(keys);
	return ok;
}

static bool rd_headers(struct rd *r, uint16_t *count, struct mqd_span *all)
{
	size_t start = r->pos;
	struct mqd_span k, v;
	uint16_t i;

	if (!rd_u16(r, count))
		return false;
	for (i = 0; i < *count; i++)
		if (!rd_name(r, &k, mqd_name_valid, false, "bad header key") ||
		    !rd_str16(r, &v))
			return false;
	all->p = r->p + start;
	all->len = (uint32_t)(r->pos - start);
	return keys_unique(*all, *count) || fail(r, "header key repeated");
}

/* ---- payload parsers ------------------------------------------------ */

static bool parse_hello(struct rd *r, union mqd_payload *out)
{
	struct mqd_hello *h = &out->hello;

	return rd_u8(r, &h->version) &&
	       rd_name(r, &h->client, mqd_name_valid, true, "bad client name") &&
	       rd_name(r, &h->user, mqd_name_valid, true, "bad user name") &&
	       rd_str16(r, &h->password);
}

static bool parse_raw(struct rd *r, union mqd_payload *out)
{
	return rd_span(r, r->len, &out->raw);
}

static bool parse_empty(struct rd *r, union mqd_payload *out)
{
	out->raw.p = r->p;
	return true;
}

static bool parse_declare(struct rd *r, union mqd_payload *out)
{
	struct mqd_declare *d = &out->declare;

	if (!rd_name(r, &d->queue, mqd_name_valid, true, "bad queue name") ||
	    !rd_u32(r, &d->max_length) || !rd_u64(r, &d->max_bytes) ||
	    !rd_u8(r, &d->overflow))
		return false;
	if (d->overflow > 2)
		return fail(r, "overflow not 0, 1 or 2");
	return rd_u32(r, &d->message_ttl_ms) && rd_u32(r, &d->ack_timeout_ms) &&
	       rd_u16(r, &d->max_attempts) &&
	       rd_name(r, &d->dead_letter, mqd_name_valid, true,
	               "bad dead-letter queue name");
}

static bool parse_queue_ref(struct rd *r, union mqd_payload *out)
{
	return rd_queue(r, &out->queue_ref.queue);
}

static bool parse_bind(struct rd *r, union mqd_payload *out)
{
	return rd_queue(r, &out->bind.queue) && rd_pattern(r, &out->bind.pattern);
}

/* SEND and PUBLISH after the destination. */
static bool parse_send_rest(struct rd *r, struct mqd_send *s)
{
	return rd_u32(r, &s->ttl_ms) && rd_u32(r, &s->delay_ms) &&
	       rd_priority(r, &s->priority) &&
	       rd_headers(r, &s->nheaders, &s->headers) && rd_blob(r, &s->body);
}

static bool parse_send(struct rd *r, union mqd_payload *out)
{
	return rd_queue(r, &out->send.dest) && parse_send_rest(r, &out->send);
}

static bool parse_publish(struct rd *r, union mqd_payload *out)
{
	return rd_name(r, &out->send.dest, mqd_topic_valid, false, "bad topic") &&
	       parse_send_rest(r, &out->send);
}

static bool parse_get(struct rd *r, union mqd_payload *out)
{
	return rd_queue(r, &out->get.queue) && rd_u32(r, &out->get.timeout_ms);
}

static bool parse_consume(struct rd *r, union mqd_payload *out)
{
	return rd_queue(r, &out->consume.queue) &&
	       rd_u32(r, &out->consume.prefetch);
}

static bool parse_cancel(struct rd *r, union mqd_payload *out)
{
	return rd_u32(r, &out->cancel.tag);
}

static bool rd_ids(struct rd *r, struct mqd_ack *a)
{
	return rd_u16(r, &a->count) &&
	       rd_take(r, (size_t)a->count * 8, &a->ids);
}

static bool parse_ack(struct rd *r, union mqd_payload *out)
{
	return rd_ids(r, &out->ack);
}

static bool parse_nack(struct rd *r, union mqd_payload *out)
{
	struct mqd_ack *a = &out->ack;

	if (!rd_u8(r, &a->requeue))
		return false;
	if (a->requeue > 1)
		return fail(r, "requeue not 0 or 1");
	return rd_u32(r, &a->delay_ms) && rd_ids(r, a);
}

static bool parse_subscribe(struct rd *r, union mqd_payload *out)
{
	return rd_pattern(r, &out->subscribe.pattern);
}

static bool parse_welcome(struct rd *r, union mqd_payload *out)
{
	struct mqd_welcome *w = &out->welcome;

	return rd_u8(r, &w->version) && rd_str16(r, &w->server) &&
	       rd_u32(r, &w->max_frame) && rd_u64(r, &w->conn_id);
}

static bool parse_declared(struct rd *r, union mqd_payload *out)
{
	struct mqd_declared *d = &out->declared;

	return rd_queue(r, &d->queue) && rd_u64(r, &d->ready) &&
	       rd_u32(r, &d->consumers);
}

static bool parse_message(struct rd *r, union mqd_payload *out)
{
	struct mqd_message *m = &out->message;

	return rd_u64(r, &m->id) &&
	       rd_name(r, &m->source, mqd_name_valid, false,
	               "bad source name") &&
	       rd_u16(r, &m->attempts) && rd_u64(r, &m->timestamp_ms) &&
	       rd_priority(r, &m->priority) &&
	       rd_headers(r, &m->nheaders, &m->headers) && rd_blob(r, &m->body);
}

static bool parse_error(struct rd *r, union mqd_payload *out)
{
	return rd_u16(r, &out->error.code) && rd_str16(r, &out->error.message);
}

int mqd_proto_parse(const struct mqd_frame *f, union mqd_payload *out,
                    const char **why)
{
	const struct op_desc *d = find_op(f->op);
	struct rd r = { f->payload.p, f->payload.len, 0, NULL };
	const char *dummy;

	if (why == NULL)
		why = &dummy;
	*why = NULL;
	memset(out, 0, sizeof *out);
	if (d == NULL) {
		*why = "unknown op";
		return MQD_ERR_UNKNOWN_OP;
	}
	if ((f->flags & ~d->flags_allowed) != 0)
		fail(&r, "flag not allowed");
	else if (d->parse(&r, out) && r.pos != r.len)
		fail(&r, "bytes left over");
	if (r.why == NULL)
		return 0;
	*why = r.why;
	return MQD_ERR_BAD_ARGUMENT;
}

/* ---- wbuf ----------------------------------------------------------- */

void mqd_wbuf_init(struct mqd_wbuf *w)
{
	w->data = NULL;
	w->len = 0;
	w->cap = 0;
	w->oom = false;
}

void mqd_wbuf_free(struct mqd_wbuf *w)
{
	free(w->data);
	mqd_wbuf_init(w);
}

void mqd_wbuf_reset(struct mqd_wbuf *w)
{
	w->len = 0;
	w->oom = false;
}

/* Doubles the capacity until it fits; a size no allocator can serve
 * (above PTRDIFF_MAX) is refused without asking. */
bool mqd_wbuf_reserve(struct mqd_wbuf *w, size_t extra)
{
	size_t want, cap;
	uint8_t *p;

	if (w->oom)
		return false;
	if (extra <= w->cap - w->len)
		return true;
	if (extra > (size_t)PTRDIFF_MAX - w->len)
		goto oom;
	want = w->len + extra;
	cap = w->cap < 64 ? 64 : w->cap;
	while (cap < want)
		cap = cap > (size_t)PTRDIFF_MAX / 2 ? want : cap * 2;
	p = realloc(w->data, cap);
	if (p == NULL)
		goto oom;
	w->data = p;
	w->cap = cap;
	return true;
oom:
	w->oom = true;
	return false;
}

void mqd_w_bytes(struct mqd_wbuf *w, const void *p, size_t n)
{
	if (!mqd_wbuf_reserve(w, n) || n == 0)
		return;
	memcpy(w->data + w->len, p, n);
	w->len += n;
}

void mqd_w_u8(struct mqd_wbuf *w, uint8_t v)
{
	mqd_w_bytes(w, &v, 1);
}

void mqd_w_u16(struct mqd_wbuf *w, uint16_t v)
{
	uint8_t b[2];

	mqd_store16(b, v);
	mqd_w_bytes(w, b, sizeof b);
}

void mqd_w_u32(struct mqd_wbuf *w, uint32_t v)
{
	uint8_t b[4];

	mqd_store32(b, v);
	mqd_w_bytes(w, b, sizeof b);
}

void mqd_w_u64(struct mqd_wbuf *w, uint64_t v)
{
	uint8_t b[8];

	mqd_store64(b, v);
	mqd_w_bytes(w, b, sizeof b);
}

/* A length that does not fit its prefix cannot be encoded: the frame would
 * be garbage, so it is reported through oom like any failed write. */
void mqd_w_name(struct mqd_wbuf *w, const void *p, size_t n)
{
	if (n > UINT8_MAX) {
		w->oom = true;
		return;
	}
	mqd_w_u8(w, (uint8_t)n);
	mqd_w_bytes(w, p, n);
}

void mqd_w_str16(struct mqd_wbuf *w, const void *p, size_t n)
{
	if (n > UINT16_MAX) {
		w->oom = true;
		return;
	}
	mqd_w_u16(w, (uint16_t)n);
	mqd_w_bytes(w, p, n);
}

void mqd_w_blob(struct mqd_wbuf *w, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		w->oom = true;
		return;
	}
	mqd_w_u32(w, (uint32_t)n);
	mqd_w_bytes(w, p, n);
}

size_t mqd_w_frame_begin(struct mqd_wbuf *w, uint8_t op, uint8_t flags,
                         uint32_t tag)
{
	size_t start = w->len;

	mqd_w_u32(w, 0);
	mqd_w_u8(w, op);
	mqd_w_u8(w, flags);
	mqd_w_u32(w, tag);
	return start;
}

/* Patch the length field at start; extra counts bytes the caller will
 * append after this call (a body sent by reference). */
static void frame_finish(struct mqd_wbuf *w, size_t start, size_t extra)
{
	size_t length;

	if (w->oom)
		return;
	length = w->len - start - MQD_FRAME_LEN_SIZE;
	if (extra > UINT32_MAX || length > UINT32_MAX - extra) {
		w->oom = true;
		return;
	}
	mqd_store32(w->data + start, (uint32_t)(length + extra));
}

void mqd_w_frame_end(struct mqd_wbuf *w, size_t start)
{
	frame_finish(w, start, 0);
}

/* ---- whole frames --------------------------------------------------- */

static size_t slen(const char *s)
{
	return s != NULL ? strlen(s) : 0;
}

static void w_cname(struct mqd_wbuf *w, const char *s)
{
	mqd_w_name(w, s, slen(s));
}

static void w_cstr16(struct mqd_wbuf *w, const char *s)
{
	mqd_w_str16(w, s, slen(s));
}

/* A raw headers field, or an empty one (count 0) when none is given. */
static void w_headers(struct mqd_wbuf *w, const void *h, size_t n)
{
	if (h == NULL || n == 0)
		mqd_w_u16(w, 0);
	else
		mqd_w_bytes(w, h, n);
}

void mqd_enc_hello(struct mqd_wbuf *w, uint32_t tag, const char *client,
                   const char *user, const char *password)
{
	size_t s = mqd_w_frame_begin(w, MQD_OP_HELLO, 0, tag);

	mqd_w_u8(w, MQD_PROTO_VERSION);
	w_cname(w, client);
	w_cname(w, user);
	w_cstr16(w, password);
	mqd_w_frame_end(w, s);
}

void mqd_enc_welcome(struct mqd_wbuf *w, uint32_t tag, const char *server,
                     uint32_t max_frame, uint64_t conn_id)
{
	size_t s = mqd_w_frame_begin(w, MQD_OP_WELCOME, 0, tag);

	mqd_w_u8(w, MQD_PROTO_VERSION);
	w_cstr16(w, server);
	mqd_w_u32(w, max_frame);
	mqd_w_u64(w, conn_id);
	mqd_w_frame_end(w, s);
}

void mqd_enc_error(struct mqd_wbuf *w, uint32_t tag, uint16_t code,
                   const char *message)
{
	size_t s = mqd_w_frame_begin(w, MQD_OP_ERROR, 0, tag);

	mqd_w_u16(w, code);
	w_cstr16(w, message);
	mqd_w_frame_end(w, s);
}

void mqd_enc_ok(struct mqd_wbuf *w, uint32_t tag)
{
	mqd_w_frame_end(w, mqd_w_frame_begin(w, MQD_OP_OK, 0, tag));
}

void mqd_enc_ok_u32(struct mqd_wbuf *w, uint32_t tag, uint32_t v)
{
	size_t s = mqd_w_frame_begin(w, MQD_OP_OK, 0, tag);

	mqd_w_u32(w, v);
	mqd_w_frame_end(w, s);
}

void mqd_enc_ok_u64(struct mqd_wbuf *w, uint32_t tag, uint64_t v)
{
	size_t s = mqd_w_frame_begin(w, MQD_OP_OK, 0, tag);

	mqd_w_u64(w, v);
	mqd_w_frame_end(w, s);
}

void mqd_enc_raw(struct mqd_wbuf *w, uint8_t op, uint8_t flags, uint32_t tag,
                 const void *payload, size_t n)
{
	size_t s = mqd_w_frame_begin(w, op, flags, tag);

	mqd_w_bytes(w, payload, n);
	mqd_w_frame_end(w, s);
}

void mqd_enc_declare(struct mqd_wbuf *w, uint8_t flags, uint32_t tag,
                     const struct mqd_declare *d)
{
	size_t s = mqd_w_frame_begin(w, MQD_OP_DECLARE, flags, tag);

	mqd_w_name(w, d->queue.p, d->queue.len);
	mqd_w_u32(w, d->max_length);
	mqd_w_u64(w, d->max_bytes);
	mqd_w_u8(w, d->overflow);
	mqd_w_u32(w, d->message_ttl_ms);
	mqd_w_u32(w, d->ack_timeout_ms);
	mqd_w_u16(w, d->max_attempts);
	mqd_w_name(w, d->dead_letter.p, d->dead_letter.len);
	mqd_w_frame_end(w, s);
}

void mqd_enc_declared(struct mqd_wbuf *w, uint32_t tag, const void *queue,
                      size_t queue_len, uint64_t ready, uint32_t consumers)
{
	size_t s = mqd_w_frame_begin(w, MQD_OP_DECLARED, 0, tag);

	mqd_w_name(w, queue, queue_len);
	mqd_w_u64(w, ready);
	mqd_w_u32(w, consumers);
	mqd_w_frame_end(w, s);
}

void mqd_enc_queue_op(struct mqd_wbuf *w, uint8_t op, uint8_t flags,
                      uint32_t tag, const char *queue)
{
	size_t s = mqd_w_frame_begin(w, op, flags, tag);

	w_cname(w, queue);
	mqd_w_frame_end(w, s);
}

void mqd_enc_bind(struct mqd_wbuf *w, uint8_t op, uint32_t tag,
                  const char *queue, const char *pattern)
{
	size_t s = mqd_w_frame_begin(w, op, 0, tag);

	w_cname(w, queue);
	w_cname(w, pattern);
	mqd_w_frame_end(w, s);
}

void mqd_enc_send(struct mqd_wbuf *w, uint8_t op, uint8_t flags, uint32_t tag,
                  const char *dest, uint32_t ttl_ms, uint32_t delay_ms,
                  uint8_t priority, const void *headers, size_t headers_len,
                  const void *body, size_t body_len)
{
	size_t s = mqd_w_frame_begin(w, op, flags, tag);

	w_cname(w, dest);
	mqd_w_u32(w, ttl_ms);
	mqd_w_u32(w, delay_ms);
	mqd_w_u8(w, priority);
	w_headers(w, headers, headers_len);
	mqd_w_blob(w, body, body_len);
	mqd_w_frame_end(w, s);
}

void mqd_enc_get(struct mqd_wbuf *w, uint8_t flags, uint32_t tag,
                 const char *queue, uint32_t timeout_ms)
{
	size_t s = mqd_w_frame_begin(w, MQD_OP_GET, flags, tag);

	w_cname(w, queue);
	mqd_w_u32(w, timeout_ms);
	mqd_w_frame_end(w, s);
}

void mqd_enc_consume(struct mqd_wbuf *w, uint8_t flags, uint32_t tag,
                     const char *queue, uint32_t prefetch)
{
	size_t s = mqd_w_frame_begin(w, MQD_OP_CONSUME, flags, tag);

	w_cname(w, queue);
	mqd_w_u32(w, prefetch);
	mqd_w_frame_end(w, s);
}

void mqd_enc_cancel(struct mqd_wbuf *w, uint8_t op, uint32_t tag,
                    uint32_t which)
{
	size_t s = mqd_w_frame_begin(w, op, 0, tag);

	mqd_w_u32(w, which);
	mqd_w_frame_end(w, s);
}

void mqd_enc_subscribe(struct mqd_wbuf *w, uint32_t tag, const char *pattern)
{
	size_t s = mqd_w_frame_begin(w, MQD_OP_SUBSCRIBE, 0, tag);

	w_cname(w, pattern);
	mqd_w_frame_end(w, s);
}

void mqd_enc_ack(struct mqd_wbuf *w, uint8_t op, uint8_t flags, uint32_t tag,
                 uint8_t requeue, uint32_t delay_ms, const uint64_t *ids,
                 uint16_t count)
{
	size_t s = mqd_w_frame_begin(w, op, flags, tag);
	uint16_t i;

	if (op == MQD_OP_NACK) {
		mqd_w_u8(w, requeue);
		mqd_w_u32(w, delay_ms);
	}
	mqd_w_u16(w, count);
	for (i = 0; i < count; i++)
		mqd_w_u64(w, ids[i]);
	mqd_w_frame_end(w, s);
}

size_t mqd_enc_message_head(struct mqd_wbuf *w, uint8_t op, uint32_t tag,
                            const struct mqd_message *m)
{
	size_t s = mqd_w_frame_begin(w, op, 0, tag);

	mqd_w_u64(w, m->id);
	mqd_w_name(w, m->source.p, m->source.len);
	mqd_w_u16(w, m->attempts);
	mqd_w_u64(w, m->timestamp_ms);
	mqd_w_u8(w, m->priority);
	w_headers(w, m->headers.p, m->headers.len);
	mqd_w_u32(w, m->body.len);
	frame_finish(w, s, m->body.len);
	return w->oom ? 0 : w->len - s;
}

void mqd_enc_message(struct mqd_wbuf *w, uint8_t op, uint32_t tag,
                     const struct mqd_message *m)
{
	if (mqd_enc_message_head(w, op, tag, m) > 0)
		mqd_w_bytes(w, m->body.p, m->body.len);
}

/* The count lives in the first two bytes of w, so w holds nothing else. */
void mqd_headers_init(struct mqd_wbuf *w)
{
	mqd_wbuf_reset(w);
	mqd_w_u16(w, 0);
}

void mqd_headers_add(struct mqd_wbuf *w, const char *key, const void *value,
                     size_t value_len)
{
	uint16_t count;

	if (w->oom)
		return;
	if (w->len < 2 || mqd_load16(w->data) == UINT16_MAX) {
		w->oom = true;
		return;
	}
	count = mqd_load16(w->data);
	w_cname(w, key);
	mqd_w_str16(w, value, value_len);
	if (!w->oom)
		mqd_store16(w->data, (uint16_t)(count + 1));
}
