#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * libmq: the bytes of a connection.  Reading fills the read buffer and cuts
 * it into frames; every frame read is sorted (mqc_handle_frame): the reply a
 * call waits for, a delivery for mq_next, a quiet request's error, or the
 * end of the connection.  Writing flushes the output buffer without ever
 * blocking while the server has something for us.  The request functions
 * (conn.c, queue.c, pubsub.c) encode into the output buffer and wait
 * through mqc_wait_reply; internal.h has the whole picture.
 */

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "mq/mq.h"
#include "client/internal.h"
#include "proto/proto.h"

#define OUT_FLUSH_AT (64u * 1024u)        /* mq_send_quiet writes past this */
#define OUT_KEEP_MAX (1024u * 1024u)      /* larger buffers are freed after use */
#define READ_CHUNK (64u * 1024u)

/* ---- the delivery queue ---------------------------------------------- */

static void enqueue(struct mq_conn *c, struct msgbox *b)
{
	if (c->q_tail != NULL)
		c->q_tail->next = b;
	else
		c->q_head = b;
	c->q_tail = b;
}

struct msgbox *mqc_dequeue(struct mq_conn *c)
{
	struct msgbox *b = c->q_head;

	if (b != NULL) {
		c->q_head = b->next;
		if (c->q_head == NULL)
			c->q_tail = NULL;
		b->next = NULL;
	}
	return b;
}

/* A pushed frame: keep it for mq_next.  Losing one silently would leave a
 * message held by us and never seen, so running out of memory here kills
 * the connection (the server then hands the message to someone else). */
static int push_frame(struct mq_conn *c, const struct mqd_frame *f,
                      const union mqd_payload *p)
{
	struct msgbox *b;

	if (f->op == MQD_OP_DELIVER) {
		b = mqc_box_message(f, &p->message, f->tag);
	} else {
		b = malloc(sizeof(*b));
		if (b != NULL) {
			memset(b, 0, sizeof(*b));
			b->cancelled_tag = f->tag != 0 ? f->tag : UINT32_MAX;
			mqc_copy_text(b->msg.source, sizeof(b->msg.source),
			              p->queue_ref.queue.p,
			              p->queue_ref.queue.len);
		}
	}
	if (b == NULL) {
		mqc_mark_dead(c);
		return MQ_ERR_NOMEM;
	}
	enqueue(c, b);
	return 0;
}

/* ---- reading --------------------------------------------------------- */

/*
 * Read what the socket has, waiting up to timeout_ms (-1: forever).
 * Returns 0 when bytes arrived (or a spurious wake-up), MQ_ERR_TIMEOUT,
 * ERR_INTR, MQ_ERR_CLOSED at end of stream, MQ_ERR_IO, MQ_ERR_NOMEM.
 */
int mqc_pump(struct mq_conn *c, int timeout_ms)
{
	size_t have = c->rlen - c->rpos;
	size_t want = READ_CHUNK;
	struct pollfd pfd;
	ssize_t n;
	int r;

	if (c->need > have && c->need - have > want)
		want = c->need - have;
	if (c->rpos > 0 && c->rcap - c->rlen < want) {
		memmove(c->rbuf, c->rbuf + c->rpos, have);
		c->rlen = have;
		c->rpos = 0;
	}
	if (c->rcap - c->rlen < want) {
		size_t cap = c->rlen + want;
		uint8_t *nb = realloc(c->rbuf, cap);

		if (nb == NULL)
			return MQ_ERR_NOMEM;
		c->rbuf = nb;
		c->rcap = cap;
	}
	pfd.fd = c->fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	r = poll(&pfd, 1, timeout_ms);
	if (r == 0)
		return MQ_ERR_TIMEOUT;
	if (r < 0)
		return errno == EINTR ? ERR_INTR : MQ_ERR_IO;
	n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
	if (n > 0) {
		c->rlen += (size_t)n;
		return 0;
	}
	if (n == 0) {
		mqc_mark_dead(c);
		return MQ_ERR_CLOSED;
	}
	if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	mqc_mark_dead(c);
	return errno == ECONNRESET ? MQ_ERR_CLOSED : MQ_ERR_IO;
}

/* The next whole frame in the read buffer, parsed; *got false if more
 * bytes are needed.  Anything malformed is fatal to the connection. */
int mqc_next_frame(struct mq_conn *c, struct mqd_frame *f,
                   union mqd_payload *p, bool *got)
{
	size_t fsize = 0, need = 0;
	const char *why = NULL;
	int r;

	*got = false;
	if (c->rlen == c->rpos) {
		c->rlen = c->rpos = 0;
		c->need = 0;
		return 0;
	}
	r = mqd_frame_decode(c->rbuf + c->rpos, c->rlen - c->rpos,
	                     c->max_frame + MQD_FRAME_SLACK, f, &fsize, &need);
	if (r == 0) {
		c->need = need;
		return 0;
	}
	if (r < 0) {
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "the server sent a malformed or oversized frame");
		mqc_mark_dead(c);
		return MQ_ERR_PROTOCOL;
	}
	c->rpos += fsize;
	c->need = 0;
	if (mqd_proto_parse(f, p, &why) != 0) {
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "the server sent a bad %s frame: %s",
		         mqd_op_name(f->op) ? mqd_op_name(f->op) : "unknown",
		         why ? why : "unparseable");
		mqc_mark_dead(c);
		return MQ_ERR_PROTOCOL;
	}
	*got = true;
	return 0;
}

static void record_quiet_error(struct mq_conn *c, int code,
                               const struct mqd_span *msg)
{
	if (c->quiet_count++ == 0) {
		c->quiet_first = code;
		mqc_copy_text(c->quiet_msg, sizeof(c->quiet_msg), msg->p,
		              msg->len);
	}
}

/*
 * Sort one incoming frame.  *matched is set when it is the reply to
 * awaited (0: nothing awaited).  Returns 0, or an error that ends the
 * current call: the awaited request's ERROR code, or a fatal one.
 */
int mqc_handle_frame(struct mq_conn *c, const struct mqd_frame *f,
                     const union mqd_payload *p, uint32_t awaited,
                     bool *matched)
{
	int code;

	*matched = false;
	if (f->op == MQD_OP_DELIVER || f->op == MQD_OP_CANCELLED)
		return push_frame(c, f, p);
	if (f->op != MQD_OP_ERROR) {
		/* A reply nobody waits for cannot happen with in-order replies;
		 * ignoring it is kinder than failing. */
		*matched = awaited != 0 && f->tag == awaited;
		return 0;
	}
	code = p->error.code;
	if (code < 1 || code > MQD_ERR_MAX)
		code = MQ_ERR_INTERNAL;
	if (awaited != 0 && f->tag == awaited) {
		*matched = true;
		mqc_copy_text(c->errmsg, sizeof(c->errmsg), p->error.message.p,
		              p->error.message.len);
		if (mqd_err_closes(code))
			mqc_mark_dead(c);
		return code;
	}
	if (f->tag == 0 || mqd_err_closes(code)) {
		/* The server is about to close: nothing else will be answered. */
		if (f->tag != 0)
			record_quiet_error(c, code, &p->error.message);
		mqc_copy_text(c->errmsg, sizeof(c->errmsg), p->error.message.p,
		              p->error.message.len);
		mqc_mark_dead(c);
		return code;
	}
	record_quiet_error(c, code, &p->error.message);
	return 0;
}

/* Sort every whole frame already buffered (nothing awaited). */
int mqc_drain_buffered(struct mq_conn *c)
{
	struct mqd_frame f;
	union mqd_payload p;
	bool got, matched;
	int rc;

	for (;;) {
		rc = mqc_next_frame(c, &f, &p, &got);
		if (rc != 0 || !got)
			return rc;
		rc = mqc_handle_frame(c, &f, &p, 0, &matched);
		if (rc != 0)
			return rc;
	}
}

/* ---- writing --------------------------------------------------------- */

static void out_done(struct mq_conn *c)
{
	if (c->out.cap > OUT_KEEP_MAX) {
		mqd_wbuf_free(&c->out);
		mqd_wbuf_init(&c->out);
	} else {
		mqd_wbuf_reset(&c->out);
	}
}

/* After a failed write: read whatever the server said before it went
 * away, so the caller learns the reason (SHUTTING_DOWN, ...) if there is
 * one. */
static int salvage(struct mq_conn *c, int fallback)
{
	int rc;

	while (mqc_pump(c, 0) == 0) {
		rc = mqc_drain_buffered(c);
		if (rc != 0) {
			mqc_mark_dead(c);
			return rc;
		}
	}
	rc = mqc_drain_buffered(c);
	mqc_mark_dead(c);
	return rc != 0 ? rc : fallback;
}

/* Wait until the socket can take more, reading (and sorting) what arrives
 * in the meantime. */
static int wait_writable(struct mq_conn *c)
{
	struct pollfd pfd;
	int r, rc;

	pfd.fd = c->fd;
	pfd.events = POLLIN | POLLOUT;
	pfd.revents = 0;
	r = poll(&pfd, 1, -1);
	if (r < 0)
		return errno == EINTR ? 0 : MQ_ERR_IO;
	if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
		rc = mqc_pump(c, 0);
		if (rc == MQ_ERR_TIMEOUT || rc == ERR_INTR)
			rc = 0;
		if (rc == 0)
			return mqc_drain_buffered(c);
		/* End of stream or error: an ERROR may explain it. */
		r = mqc_drain_buffered(c);
		mqc_mark_dead(c);
		return r != 0 ? r : rc;
	}
	return 0;
}

/* Write the whole output buffer. */
int mqc_flush_out(struct mq_conn *c)
{
	size_t off = 0;
	ssize_t n;
	int rc;

	if (c->dead)
		return MQ_ERR_CLOSED;
	while (off < c->out.len) {
		n = send(c->fd, c->out.data + off, c->out.len - off,
		         MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			rc = wait_writable(c);
			if (rc != 0) {
				mqc_mark_dead(c);
				return rc;
			}
			continue;
		}
		if (n < 0 && errno != EPIPE && errno != ECONNRESET) {
			int e = errno;

			mqc_mark_dead(c);
			errno = e;
			return MQ_ERR_IO;
		}
		return salvage(c, MQ_ERR_CLOSED);
	}
	out_done(c);
	return 0;
}

/*
 * Encoding: remember where the frame starts, encode, then check.  A frame
 * the server would refuse for its size is taken back out here, so it costs
 * an error rather than the connection.
 */
int mqc_enc_check(struct mq_conn *c, size_t start)
{
	size_t len;

	if (c->out.oom) {
		c->out.len = start;
		c->out.oom = false;
		return MQ_ERR_NOMEM;
	}
	len = c->out.len - start;
	if (len - MQD_FRAME_LEN_SIZE > c->max_frame) {
		c->out.len = start;
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "a frame of %zu bytes exceeds the server's max_frame of %u",
		         len - MQD_FRAME_LEN_SIZE, (unsigned)c->max_frame);
		return MQ_ERR_FRAME_TOO_LARGE;
	}
	return 0;
}

/* A new quiet request opens a new error window once mq_sync closed one. */
void mqc_quiet_request(struct mq_conn *c)
{
	if (c->quiet_window_closed) {
		c->quiet_window_closed = false;
		c->quiet_count = 0;
		c->quiet_first = 0;
		c->quiet_msg[0] = '\0';
	}
}

/* After a quiet request: write once enough has piled up. */
int mqc_quiet_done(struct mq_conn *c)
{
	return c->out.len >= OUT_FLUSH_AT ? mqc_flush_out(c) : 0;
}

/*
 * Flush, then read until the reply tagged `tag` arrives; *f and *p then
 * hold it (valid until the next read on this connection).  An ERROR reply
 * is returned as its code.
 */
int mqc_wait_reply(struct mq_conn *c, uint32_t tag, struct mqd_frame *f,
                   union mqd_payload *p)
{
	bool got, matched;
	int rc;

	rc = mqc_flush_out(c);
	if (rc != 0)
		return rc;
	for (;;) {
		rc = mqc_next_frame(c, f, p, &got);
		if (rc != 0)
			return rc;
		if (got) {
			rc = mqc_handle_frame(c, f, p, tag, &matched);
			if (rc != 0 || matched)
				return rc;
			continue;
		}
		if (c->dead)
			return MQ_ERR_CLOSED;
		rc = mqc_pump(c, -1);
		if (rc == ERR_INTR || rc == MQ_ERR_TIMEOUT)
			continue; /* replies come promptly: keep waiting */
		if (rc != 0)
			return rc;
	}
}

/* Encode-and-wait for requests whose reply is `op`. */
int mqc_expect(struct mq_conn *c, uint32_t tag, uint8_t op,
               struct mqd_frame *f, union mqd_payload *p)
{
	int rc = mqc_wait_reply(c, tag, f, p);

	if (rc != 0)
		return rc;
	if (f->op != op) {
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "unexpected %s in reply", mqd_op_name(f->op) ?
		         mqd_op_name(f->op) : "frame");
		mqc_mark_dead(c);
		return MQ_ERR_PROTOCOL;
	}
	return 0;
}

/* An OK whose payload must be exactly n bytes. */
int mqc_expect_ok(struct mq_conn *c, uint32_t tag, uint32_t n,
                  struct mqd_frame *f, union mqd_payload *p)
{
	int rc = mqc_expect(c, tag, MQD_OP_OK, f, p);

	if (rc == 0 && p->raw.len != n) {
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "OK of %u bytes where %u were expected",
		         (unsigned)p->raw.len, (unsigned)n);
		mqc_mark_dead(c);
		return MQ_ERR_PROTOCOL;
	}
	return rc;
}
