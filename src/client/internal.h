/*
 * libmq's insides, shared by its files and by nothing else (the public
 * API is include/mq/mq.h):
 *
 *   conn.c     connecting, HELLO, closing, PING and sync, error names
 *   io.c       framing, reading, writing, and sorting what comes in
 *   queue.c    queues: declare, delete, purge, send, get, consume, next,
 *              ack, nack
 *   pubsub.c   publish/subscribe, bindings, request/reply
 *   message.c  received messages and their headers, durations
 *
 * One mq_conn owns one socket, one output buffer and one read buffer.
 * Requests are encoded with the shared codec (proto/proto.h) into the
 * output buffer; every call that waits for an answer flushes it first, so
 * quiet requests (SEND/ACK/NACK with QUIET) ride along with the next
 * waiting call or go out once the buffer passes OUT_FLUSH_AT (io.c).
 *
 * The server answers requests in the order they were sent, so a waiting
 * call reads frames until the reply with its own tag arrives.  What comes
 * in meanwhile is sorted as it is read:
 *   - DELIVER and CANCELLED are copied into an in-order queue for mq_next;
 *   - an ERROR with another request's tag can only answer an earlier QUIET
 *     request (every non-quiet one was waited for), so it is counted for
 *     mq_sync and mq_quiet_errors;
 *   - an ERROR with tag 0, or one whose code closes the connection, makes
 *     the connection dead: the call that saw it returns that code and every
 *     later call returns MQ_ERR_CLOSED.
 *
 * Writes never block while the server has something for us: the flush loop
 * polls for both directions and reads (and sorts) incoming frames while it
 * waits for room, so a server applying backpressure to a client that is
 * itself stuck writing cannot deadlock the pair.
 *
 * Request/reply (mq_request) keeps one internal consumer per connection on
 * a server-named EXCLUSIVE queue.  Its deliveries never reach mq_next: a
 * waiting mq_request takes the one it wants out of the delivery queue (or
 * straight off the wire) and drops the stale ones, leaving every other
 * delivery where it was; mq_next drops any it meets.
 *
 * No global mutable state: everything lives in the mq_conn.
 *
 * The functions declared here are hidden: libmq.so exports the mq_* API
 * (and the codec it links in) and nothing of this file, so splitting libmq
 * into files changed no exported symbol.  Their prefix, mqc_, cannot clash
 * with the broker's mqd_ names, which the tests link beside libmq.
 */
#ifndef MQ_CLIENT_INTERNAL_H
#define MQ_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq/mq.h"
#include "proto/proto.h"

#define ERRMSG_MAX 1024

/* Internal: a wait was interrupted by a signal (never returned as is). */
#define ERR_INTR (-1)

/*
 * A received message and its bytes in one allocation: mq_message_free()
 * frees the box the message sits in.  A box with cancelled_tag != 0 is a
 * CANCELLED marker in the delivery queue and carries no message.
 */
struct msgbox {
	struct msgbox *next;
	uint32_t cancelled_tag;
	struct mq_message msg;
	uint8_t data[]; /* copy of the frame payload; msg points into it */
};

struct mq_conn {
	int fd;
	bool dead;             /* closed, or an error closed it: calls fail */
	uint32_t next_tag;     /* per-connection counter, never 0 */
	uint64_t ping_seq;     /* makes each PING payload unique */

	/* From WELCOME. */
	uint32_t max_frame;
	uint64_t conn_id;
	char server[256];

	struct mqd_wbuf out;

	/* Read buffer: bytes [rpos, rlen) are received and not yet consumed.
	 * Spans of the frame last returned by mqc_next_frame() stay valid
	 * until the next read, which may move the bytes. */
	uint8_t *rbuf;
	size_t rpos, rlen, rcap;
	size_t need; /* whole-frame size the decoder asked for, or 0 */

	/* Deliveries (and CANCELLED markers) waiting for mq_next, in order. */
	struct msgbox *q_head, *q_tail;
	uint32_t cancelled_tag;

	/* Errors of quiet requests since the last mq_sync.  After a sync the
	 * window is closed; the next quiet request opens a new one. */
	unsigned quiet_count;
	int quiet_first;
	bool quiet_window_closed;
	char quiet_msg[ERRMSG_MAX];

	char errmsg[ERRMSG_MAX]; /* the server's words for the last error */

	/* Request/reply: the reply consumer's tag (0 until the first
	 * mq_request), its queue, and the last correlation id used. */
	uint32_t reply_tag;
	char reply_queue[256];
	uint64_t corr_seq;
};

#pragma GCC visibility push(hidden)

/* ---- conn.c ---------------------------------------------------------- */

/* Text of n bytes into dst, cut to fit and terminated. */
void mqc_copy_text(char *dst, size_t cap, const uint8_t *p, size_t n);
/* The connection cannot be used any more. */
void mqc_mark_dead(struct mq_conn *c);
uint32_t mqc_new_tag(struct mq_conn *c);
/* A valid queue/client/header name (or "" when empty_ok). */
bool mqc_name_ok(const char *s, bool empty_ok);
int64_t mqc_now_ms(void);
/* Common entry check: a usable connection (0, INVALID or CLOSED). */
int mqc_usable(const struct mq_conn *c);

/* ---- io.c ------------------------------------------------------------ */

/* The delivery queue. */
struct msgbox *mqc_dequeue(struct mq_conn *c);

/* Read what the socket has, waiting up to timeout_ms (-1: forever). */
int mqc_pump(struct mq_conn *c, int timeout_ms);
/* The next whole frame in the read buffer, parsed; *got false if more
 * bytes are needed. */
int mqc_next_frame(struct mq_conn *c, struct mqd_frame *f,
                   union mqd_payload *p, bool *got);
/* Sort one incoming frame; *matched when it answers awaited. */
int mqc_handle_frame(struct mq_conn *c, const struct mqd_frame *f,
                     const union mqd_payload *p, uint32_t awaited,
                     bool *matched);
/* Sort every whole frame already buffered (nothing awaited). */
int mqc_drain_buffered(struct mq_conn *c);

/* Write the whole output buffer. */
int mqc_flush_out(struct mq_conn *c);
/* After encoding a frame that starts at start: 0, or take it back out. */
int mqc_enc_check(struct mq_conn *c, size_t start);
/* A new quiet request opens a new error window once mq_sync closed one. */
void mqc_quiet_request(struct mq_conn *c);
/* After a quiet request: write once enough has piled up. */
int mqc_quiet_done(struct mq_conn *c);
/* Flush, then read until the reply tagged tag arrives. */
int mqc_wait_reply(struct mq_conn *c, uint32_t tag, struct mqd_frame *f,
                   union mqd_payload *p);
/* The same, for requests whose reply must be op ... */
int mqc_expect(struct mq_conn *c, uint32_t tag, uint8_t op,
               struct mqd_frame *f, union mqd_payload *p);
/* ... or an OK whose payload must be exactly n bytes. */
int mqc_expect_ok(struct mq_conn *c, uint32_t tag, uint32_t n,
                  struct mqd_frame *f, union mqd_payload *p);

/* ---- message.c ------------------------------------------------------- */

/* Copy a parsed MESSAGE or DELIVER into a box of its own. */
struct msgbox *mqc_box_message(const struct mqd_frame *f,
                               const struct mqd_message *pm, uint32_t tag);

/* ---- queue.c --------------------------------------------------------- */

/* Encode a SEND or PUBLISH (flags QUIET or 0), checked. */
int mqc_enc_message(struct mq_conn *c, uint8_t op, uint8_t flags,
                    uint32_t tag, const char *dest, const void *body,
                    size_t len, const struct mq_send_opts *o);
/* CANCEL or UNSUBSCRIBE: end what tag `which` started. */
int mqc_end_tag(struct mq_conn *c, uint8_t op, uint32_t which);
/* Finish a request whose OK carries a u32 (ACK, NACK, PUBLISH). */
int mqc_finish_u32(struct mq_conn *c, uint32_t tag, unsigned flags,
                   uint32_t *out);

/* ---- pubsub.c -------------------------------------------------------- */

/* Drop the reply consumer's deliveries from the head of the delivery
 * queue; they are the library's, not the caller's. */
void mqc_skip_reply_boxes(struct mq_conn *c);

#pragma GCC visibility pop

#endif
