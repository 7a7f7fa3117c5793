/*
 * Frame codec and payload parsers for the mqd wire protocol, version 1
 * (../shared/PROTOCOL.md).
 *
 * Everything here is a pure function of bytes: nothing touches a socket, a
 * clock or a global.  Parsed fields point into the caller's buffer (spans),
 * so parsing copies nothing; the buffer must outlive the parsed struct.
 * That is what lets the broker, libmq and the fuzz targets share one codec.
 */
#ifndef MQD_PROTO_H
#define MQD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQD_PROTO_VERSION 1
#define MQD_FRAME_LEN_SIZE 4     /* the length field itself */
#define MQD_FRAME_HDR_SIZE 10    /* length u32 + op u8 + flags u8 + tag u32 */
#define MQD_FRAME_MIN_LENGTH 6   /* smallest legal value of the length field */
#define MQD_FRAME_SLACK 4096     /* server frames may exceed max_frame by this */
#define MQD_NAME_MAX 255
#define MQD_PRIORITY_MAX 9

enum mqd_op {
	MQD_OP_HELLO = 0x01,
	MQD_OP_PING = 0x02,
	MQD_OP_DECLARE = 0x10,
	MQD_OP_DELETE = 0x11,
	MQD_OP_PURGE = 0x12,
	MQD_OP_BIND = 0x13,
	MQD_OP_UNBIND = 0x14,
	MQD_OP_SEND = 0x20,
	MQD_OP_PUBLISH = 0x21,
	MQD_OP_GET = 0x30,
	MQD_OP_CONSUME = 0x31,
	MQD_OP_CANCEL = 0x32,
	MQD_OP_ACK = 0x33,
	MQD_OP_NACK = 0x34,
	MQD_OP_SUBSCRIBE = 0x40,
	MQD_OP_UNSUBSCRIBE = 0x41,
	MQD_OP_OK = 0x80,
	MQD_OP_WELCOME = 0x81,
	MQD_OP_PONG = 0x82,
	MQD_OP_DECLARED = 0x83,
	MQD_OP_MESSAGE = 0x84,
	MQD_OP_EMPTY = 0x85,
	MQD_OP_DELIVER = 0x86,
	MQD_OP_CANCELLED = 0x87,
	MQD_OP_ERROR = 0xFF,
};

enum mqd_flag {
	MQD_F_QUIET = 0x01,
	MQD_F_AUTO_ACK = 0x02,
	MQD_F_PASSIVE = 0x04,
	MQD_F_EXCLUSIVE = 0x08,
	MQD_F_AUTO_DELETE = 0x10,
	MQD_F_IF_EMPTY = 0x20,
};

/* Wire error codes (PROTOCOL.md section 5).  0 is "no error". */
enum mqd_err {
	MQD_ERR_OK = 0,
	MQD_ERR_BAD_FRAME = 1,
	MQD_ERR_FRAME_TOO_LARGE = 2,
	MQD_ERR_UNKNOWN_OP = 3,
	MQD_ERR_BAD_ARGUMENT = 4,
	MQD_ERR_NOT_FOUND = 5,
	MQD_ERR_QUEUE_FULL = 6,
	MQD_ERR_CONFLICT = 7,
	MQD_ERR_HELLO_REQUIRED = 8,
	MQD_ERR_UNSUPPORTED_VERSION = 9,
	MQD_ERR_AUTH_REQUIRED = 10,
	MQD_ERR_AUTH_FAILED = 11,
	MQD_ERR_FORBIDDEN = 12,
	MQD_ERR_MEMORY_LIMIT = 13,
	MQD_ERR_LIMIT = 14,
	MQD_ERR_SHUTTING_DOWN = 15,
	MQD_ERR_INTERNAL = 16,
};
#define MQD_ERR_MAX 16

/* "BAD_FRAME" etc., or NULL for a code outside 1..16. */
const char *mqd_err_name(int code);
/* Whether the server closes the connection after sending this error. */
bool mqd_err_closes(int code);
/* "SEND" etc., or NULL for an unknown op. */
const char *mqd_op_name(int op);
/* The flag bits allowed on an op; an unknown op allows none. */
uint8_t mqd_op_flags_allowed(int op);

/* A run of bytes inside a buffer the caller owns. */
struct mqd_span {
	const uint8_t *p;
	uint32_t len;
};

/* Big-endian loads and stores (unaligned safe). */
static inline uint16_t mqd_load16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline uint32_t mqd_load32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t mqd_load64(const uint8_t *p)
{
	return (uint64_t)mqd_load32(p) << 32 | mqd_load32(p + 4);
}
static inline void mqd_store16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void mqd_store32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void mqd_store64(uint8_t *p, uint64_t v)
{
	mqd_store32(p, (uint32_t)(v >> 32));
	mqd_store32(p + 4, (uint32_t)v);
}

/* ---- names ---------------------------------------------------------- */

/* 1..255 bytes of A-Z a-z 0-9 . _ - : */
bool mqd_name_valid(const uint8_t *p, size_t n);
/* A topic: a valid name made of dot-separated tokens, none empty. */
bool mqd_topic_valid(const uint8_t *p, size_t n);
/* A pattern: like a topic; a token may be "*", and the last may be ">". */
bool mqd_pattern_valid(const uint8_t *p, size_t n);

/* ---- frames --------------------------------------------------------- */

struct mqd_frame {
	uint8_t op;
	uint8_t flags;
	uint32_t tag;
	struct mqd_span payload;
};

/*
 * Look at the first n buffered bytes of a stream.
 * Returns 1 and fills *f and *frame_size (bytes the whole frame occupies,
 * length field included) when a whole frame is there; 0 when more bytes are
 * needed (*need, if not NULL, gets the total bytes needed when known, else 0);
 * -MQD_ERR_BAD_FRAME when length < 6; -MQD_ERR_FRAME_TOO_LARGE when
 * length > max_frame.  The verdict on the length is given as soon as its
 * 4 bytes are present, before any of the body, so an oversized body is never
 * buffered.
 */
int mqd_frame_decode(const uint8_t *buf, size_t n, uint32_t max_frame,
                     struct mqd_frame *f, size_t *frame_size, size_t *need);

/* ---- payloads ------------------------------------------------------- */

struct mqd_hello {
	uint8_t version;
	struct mqd_span client, user, password;
};

struct mqd_declare {
	struct mqd_span queue; /* may be empty */
	uint32_t max_length;
	uint64_t max_bytes;
	uint8_t overflow; /* 0 default, 1 reject, 2 drop_head */
	uint32_t message_ttl_ms;
	uint32_t ack_timeout_ms;
	uint16_t max_attempts;
	struct mqd_span dead_letter; /* may be empty */
};

/* DELETE, PURGE: just a queue name. */
struct mqd_queue_ref {
	struct mqd_span queue;
};

struct mqd_bind {
	struct mqd_span queue, pattern;
};

/* SEND and PUBLISH. */
struct mqd_send {
	struct mqd_span dest; /* queue name, or topic for PUBLISH */
	uint32_t ttl_ms;
	uint32_t delay_ms;
	uint8_t priority;
	uint16_t nheaders;
	struct mqd_span headers; /* the whole headers field, count included */
	struct mqd_span body;
};

struct mqd_get {
	struct mqd_span queue;
	uint32_t timeout_ms;
};

struct mqd_consume {
	struct mqd_span queue;
	uint32_t prefetch;
};

/* CANCEL and UNSUBSCRIBE. */
struct mqd_cancel {
	uint32_t tag;
};

struct mqd_subscribe {
	struct mqd_span pattern;
};

/* ACK and NACK; for ACK, requeue and delay_ms are 0. */
struct mqd_ack {
	uint8_t requeue;
	uint32_t delay_ms;
	uint16_t count;
	const uint8_t *ids; /* count big-endian u64s: read with mqd_load64 */
};

/* MESSAGE and DELIVER. */
struct mqd_message {
	uint64_t id;
	struct mqd_span source;
	uint16_t attempts;
	uint64_t timestamp_ms;
	uint8_t priority;
	uint16_t nheaders;
	struct mqd_span headers; /* the whole headers field, count included */
	struct mqd_span body;
};

struct mqd_welcome {
	uint8_t version;
	struct mqd_span server;
	uint32_t max_frame;
	uint64_t conn_id;
};

struct mqd_declared {
	struct mqd_span queue;
	uint64_t ready;
	uint32_t consumers;
};

struct mqd_error {
	uint16_t code;
	struct mqd_span message;
};

/* OK: its payload depends on the request; kept raw. PING/PONG too. */
union mqd_payload {
	struct mqd_hello hello;
	struct mqd_declare declare;
	struct mqd_queue_ref queue_ref;
	struct mqd_bind bind;
	struct mqd_send send;
	struct mqd_get get;
	struct mqd_consume consume;
	struct mqd_cancel cancel;
	struct mqd_subscribe subscribe;
	struct mqd_ack ack;
	struct mqd_message message;
	struct mqd_welcome welcome;
	struct mqd_declared declared;
	struct mqd_error error;
	struct mqd_span raw; /* PING, PONG, OK, EMPTY, CANCELLED's raw bytes */
};

/*
 * Parse a frame's payload according to its op, and check its flags.
 * Returns 0, MQD_ERR_UNKNOWN_OP, or MQD_ERR_BAD_ARGUMENT with *why set to a
 * short static text for people ("field runs past the end", "bad queue name",
 * "priority above 9", "flag not allowed", "bytes left over", ...).
 * Names are validated (queue names, topics, patterns, header keys, and no
 * repeated header key).  CANCELLED carries a name and is parsed into
 * queue_ref.
 */
int mqd_proto_parse(const struct mqd_frame *f, union mqd_payload *out,
                    const char **why);

/* Walk a validated headers field: call with *pos = 2 first (past the count);
 * returns false when there are no more entries. */
bool mqd_headers_next(struct mqd_span headers, size_t *pos,
                      struct mqd_span *key, struct mqd_span *value);
/* Find a header's value by key; false if absent. */
bool mqd_headers_find(struct mqd_span headers, const char *key,
                      struct mqd_span *value);

/* ---- encoding ------------------------------------------------------- */

/*
 * A growable output buffer.  Writers never fail: on allocation failure they
 * set oom and stop writing, and the caller checks oom once at the end.
 */
struct mqd_wbuf {
	uint8_t *data;
	size_t len, cap;
	bool oom;
};

void mqd_wbuf_init(struct mqd_wbuf *w);
void mqd_wbuf_free(struct mqd_wbuf *w);
void mqd_wbuf_reset(struct mqd_wbuf *w); /* len = 0, keeps memory */
bool mqd_wbuf_reserve(struct mqd_wbuf *w, size_t extra);

void mqd_w_u8(struct mqd_wbuf *w, uint8_t v);
void mqd_w_u16(struct mqd_wbuf *w, uint16_t v);
void mqd_w_u32(struct mqd_wbuf *w, uint32_t v);
void mqd_w_u64(struct mqd_wbuf *w, uint64_t v);
void mqd_w_bytes(struct mqd_wbuf *w, const void *p, size_t n);
void mqd_w_name(struct mqd_wbuf *w, const void *p, size_t n);  /* u8 len */
void mqd_w_str16(struct mqd_wbuf *w, const void *p, size_t n); /* u16 len */
void mqd_w_blob(struct mqd_wbuf *w, const void *p, size_t n);  /* u32 len */

/* Start a frame (returns its offset) and, once its payload is written,
 * patch its length field. */
size_t mqd_w_frame_begin(struct mqd_wbuf *w, uint8_t op, uint8_t flags,
                         uint32_t tag);
void mqd_w_frame_end(struct mqd_wbuf *w, size_t start);

/* Whole frames.  Strings are NUL-terminated C strings where typed char *. */
void mqd_enc_hello(struct mqd_wbuf *w, uint32_t tag, const char *client,
                   const char *user, const char *password);
void mqd_enc_welcome(struct mqd_wbuf *w, uint32_t tag, const char *server,
                     uint32_t max_frame, uint64_t conn_id);
void mqd_enc_error(struct mqd_wbuf *w, uint32_t tag, uint16_t code,
                   const char *message);
/* OK with an empty payload, a u32 or a u64. */
void mqd_enc_ok(struct mqd_wbuf *w, uint32_t tag);
void mqd_enc_ok_u32(struct mqd_wbuf *w, uint32_t tag, uint32_t v);
void mqd_enc_ok_u64(struct mqd_wbuf *w, uint32_t tag, uint64_t v);
/* A frame whose payload is given raw: PING, PONG, EMPTY, ... */
void mqd_enc_raw(struct mqd_wbuf *w, uint8_t op, uint8_t flags, uint32_t tag,
                 const void *payload, size_t n);
void mqd_enc_declare(struct mqd_wbuf *w, uint8_t flags, uint32_t tag,
                     const struct mqd_declare *d);
void mqd_enc_declared(struct mqd_wbuf *w, uint32_t tag, const void *queue,
                      size_t queue_len, uint64_t ready, uint32_t consumers);
/* DELETE, PURGE (a queue name), CANCELLED (op given). */
void mqd_enc_queue_op(struct mqd_wbuf *w, uint8_t op, uint8_t flags,
                      uint32_t tag, const char *queue);
void mqd_enc_bind(struct mqd_wbuf *w, uint8_t op, uint32_t tag,
                  const char *queue, const char *pattern);
/* SEND or PUBLISH; headers is the whole raw headers field (count included),
 * or NULL/0 for none. */
void mqd_enc_send(struct mqd_wbuf *w, uint8_t op, uint8_t flags, uint32_t tag,
                  const char *dest, uint32_t ttl_ms, uint32_t delay_ms,
                  uint8_t priority, const void *headers, size_t headers_len,
                  const void *body, size_t body_len);
void mqd_enc_get(struct mqd_wbuf *w, uint8_t flags, uint32_t tag,
                 const char *queue, uint32_t timeout_ms);
void mqd_enc_consume(struct mqd_wbuf *w, uint8_t flags, uint32_t tag,
                     const char *queue, uint32_t prefetch);
/* CANCEL or UNSUBSCRIBE. */
void mqd_enc_cancel(struct mqd_wbuf *w, uint8_t op, uint32_t tag,
                    uint32_t which);
void mqd_enc_subscribe(struct mqd_wbuf *w, uint32_t tag, const char *pattern);
/* ACK (requeue and delay ignored) or NACK. */
void mqd_enc_ack(struct mqd_wbuf *w, uint8_t op, uint8_t flags, uint32_t tag,
                 uint8_t requeue, uint32_t delay_ms, const uint64_t *ids,
                 uint16_t count);
/* MESSAGE or DELIVER; headers raw as for mqd_enc_send.  The body is written
 * too; to send the body by reference instead, use mqd_enc_message_head and
 * append body_len body bytes after it. */
void mqd_enc_message(struct mqd_wbuf *w, uint8_t op, uint32_t tag,
                     const struct mqd_message *m);
size_t mqd_enc_message_head(struct mqd_wbuf *w, uint8_t op, uint32_t tag,
                            const struct mqd_message *m);

/* Helpers to build a raw headers field: start with count 0, add pairs. */
void mqd_headers_init(struct mqd_wbuf *w);
void mqd_headers_add(struct mqd_wbuf *w, const char *key, const void *value,
                     size_t value_len);

#endif
