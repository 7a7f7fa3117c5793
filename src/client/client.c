#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * libmq: a blocking client for the mqd wire protocol (include/mq/mq.h).
 *
 * One mq_conn owns one socket, one output buffer and one read buffer.
 * Requests are encoded with the shared codec (proto/proto.h) into the
 * output buffer; every call that waits for an answer flushes it first, so
 * quiet requests (SEND/ACK/NACK with QUIET) ride along with the next
 * waiting call or go out once the buffer passes OUT_FLUSH_AT.
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
 */

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "mq/mq.h"
#include "core/duration.h"
#include "proto/proto.h"

#define DEFAULT_PORT "7400"
#define DEFAULT_MAX_FRAME (1024u * 1024u) /* until WELCOME says otherwise */
#define OUT_FLUSH_AT (64u * 1024u)        /* mq_send_quiet writes past this */
#define OUT_KEEP_MAX (1024u * 1024u)      /* larger buffers are freed after use */
#define READ_CHUNK (64u * 1024u)
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
	 * Spans of the frame last returned by next_frame() stay valid until
	 * the next read, which may move the bytes. */
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

/* ---- errors ---------------------------------------------------------- */

const char *mq_strerror(int err)
{
	switch (err) {
	case MQ_OK: return "success";
	case MQ_ERR_BAD_FRAME: return "BAD_FRAME";
	case MQ_ERR_FRAME_TOO_LARGE: return "FRAME_TOO_LARGE";
	case MQ_ERR_UNKNOWN_OP: return "UNKNOWN_OP";
	case MQ_ERR_BAD_ARGUMENT: return "BAD_ARGUMENT";
	case MQ_ERR_NOT_FOUND: return "NOT_FOUND";
	case MQ_ERR_QUEUE_FULL: return "QUEUE_FULL";
	case MQ_ERR_CONFLICT: return "CONFLICT";
	case MQ_ERR_HELLO_REQUIRED: return "HELLO_REQUIRED";
	case MQ_ERR_UNSUPPORTED_VERSION: return "UNSUPPORTED_VERSION";
	case MQ_ERR_AUTH_REQUIRED: return "AUTH_REQUIRED";
	case MQ_ERR_AUTH_FAILED: return "AUTH_FAILED";
	case MQ_ERR_FORBIDDEN: return "FORBIDDEN";
	case MQ_ERR_MEMORY_LIMIT: return "MEMORY_LIMIT";
	case MQ_ERR_LIMIT: return "LIMIT";
	case MQ_ERR_SHUTTING_DOWN: return "SHUTTING_DOWN";
	case MQ_ERR_INTERNAL: return "INTERNAL";
	case MQ_ERR_IO: return "I/O error";
	case MQ_ERR_CLOSED: return "connection closed";
	case MQ_ERR_TIMEOUT: return "timed out";
	case MQ_ERR_PROTOCOL: return "protocol error";
	case MQ_ERR_NOMEM: return "out of memory";
	case MQ_ERR_INVALID: return "invalid argument";
	case MQ_ERR_EMPTY: return "queue empty";
	case MQ_ERR_RESOLVE: return "cannot resolve host";
	}
	return "unknown error";
}

const char *mq_last_error_message(const mq_conn *c)
{
	return c != NULL ? c->errmsg : "";
}

static void copy_text(char *dst, size_t cap, const uint8_t *p, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	if (n > 0)
		memcpy(dst, p, n);
	dst[n] = '\0';
}

/* The connection cannot be used any more.  Shutting the socket down lets
 * the server put back what we held without waiting for mq_close. */
static void mark_dead(struct mq_conn *c)
{
	if (!c->dead && c->fd >= 0)
		(void)shutdown(c->fd, SHUT_RDWR);
	c->dead = true;
}

/* ---- small helpers --------------------------------------------------- */

static uint32_t new_tag(struct mq_conn *c)
{
	uint32_t t = c->next_tag++;

	if (c->next_tag == 0)
		c->next_tag = 1;
	return t;
}

static bool name_ok(const char *s, bool empty_ok)
{
	size_t n;

	if (s == NULL)
		return false;
	n = strlen(s);
	if (n == 0)
		return empty_ok;
	return mqd_name_valid((const uint8_t *)s, n);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the delivery queue ---------------------------------------------- */

static struct msgbox *box_of(struct mq_message *m)
{
	return (struct msgbox *)(void *)((char *)m - offsetof(struct msgbox, msg));
}

void mq_message_free(struct mq_message *m)
{
	if (m != NULL)
		free(box_of(m));
}

/* Copy a parsed MESSAGE or DELIVER into a box of its own. */
static struct msgbox *box_message(const struct mqd_frame *f,
                                  const struct mqd_message *pm, uint32_t tag)
{
	const uint8_t *base = f->payload.p;
	struct msgbox *b = malloc(sizeof(*b) + f->payload.len);
	struct mq_message *m;

	if (b == NULL)
		return NULL;
	b->next = NULL;
	b->cancelled_tag = 0;
	memcpy(b->data, base, f->payload.len);
	m = &b->msg;
	memset(m, 0, sizeof(*m));
	m->id = pm->id;
	copy_text(m->source, sizeof(m->source), pm->source.p, pm->source.len);
	m->tag = tag;
	m->attempts = pm->attempts;
	m->timestamp_ms = pm->timestamp_ms;
	m->priority = pm->priority;
	m->nheaders = pm->nheaders;
	m->headers = b->data + (pm->headers.p - base);
	m->headers_len = pm->headers.len;
	m->body = b->data + (pm->body.p - base);
	m->body_len = pm->body.len;
	return b;
}

static void enqueue(struct mq_conn *c, struct msgbox *b)
{
	if (c->q_tail != NULL)
		c->q_tail->next = b;
	else
		c->q_head = b;
	c->q_tail = b;
}

static struct msgbox *dequeue(struct mq_conn *c)
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
		b = box_message(f, &p->message, f->tag);
	} else {
		b = malloc(sizeof(*b));
		if (b != NULL) {
			memset(b, 0, sizeof(*b));
			b->cancelled_tag = f->tag != 0 ? f->tag : UINT32_MAX;
			copy_text(b->msg.source, sizeof(b->msg.source),
			          p->queue_ref.queue.p, p->queue_ref.queue.len);
		}
	}
	if (b == NULL) {
		mark_dead(c);
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
static int pump(struct mq_conn *c, int timeout_ms)
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
		mark_dead(c);
		return MQ_ERR_CLOSED;
	}
	if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	mark_dead(c);
	return errno == ECONNRESET ? MQ_ERR_CLOSED : MQ_ERR_IO;
}

/* The next whole frame in the read buffer, parsed; *got false if more
 * bytes are needed.  Anything malformed is fatal to the connection. */
static int next_frame(struct mq_conn *c, struct mqd_frame *f,
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
		mark_dead(c);
		return MQ_ERR_PROTOCOL;
	}
	c->rpos += fsize;
	c->need = 0;
	if (mqd_proto_parse(f, p, &why) != 0) {
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "the server sent a bad %s frame: %s",
		         mqd_op_name(f->op) ? mqd_op_name(f->op) : "unknown",
		         why ? why : "unparseable");
		mark_dead(c);
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
		copy_text(c->quiet_msg, sizeof(c->quiet_msg), msg->p, msg->len);
	}
}

/*
 * Sort one incoming frame.  *matched is set when it is the reply to
 * awaited (0: nothing awaited).  Returns 0, or an error that ends the
 * current call: the awaited request's ERROR code, or a fatal one.
 */
static int handle_frame(struct mq_conn *c, const struct mqd_frame *f,
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
		copy_text(c->errmsg, sizeof(c->errmsg), p->error.message.p,
		          p->error.message.len);
		if (mqd_err_closes(code))
			mark_dead(c);
		return code;
	}
	if (f->tag == 0 || mqd_err_closes(code)) {
		/* The server is about to close: nothing else will be answered. */
		if (f->tag != 0)
			record_quiet_error(c, code, &p->error.message);
		copy_text(c->errmsg, sizeof(c->errmsg), p->error.message.p,
		          p->error.message.len);
		mark_dead(c);
		return code;
	}
	record_quiet_error(c, code, &p->error.message);
	return 0;
}

/* Sort every whole frame already buffered (nothing awaited). */
static int drain_buffered(struct mq_conn *c)
{
	struct mqd_frame f;
	union mqd_payload p;
	bool got, matched;
	int rc;

	for (;;) {
		rc = next_frame(c, &f, &p, &got);
		if (rc != 0 || !got)
			return rc;
		rc = handle_frame(c, &f, &p, 0, &matched);
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

	while (pump(c, 0) == 0) {
		rc = drain_buffered(c);
		if (rc != 0) {
			mark_dead(c);
			return rc;
		}
	}
	rc = drain_buffered(c);
	mark_dead(c);
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
		rc = pump(c, 0);
		if (rc == MQ_ERR_TIMEOUT || rc == ERR_INTR)
			rc = 0;
		if (rc == 0)
			return drain_buffered(c);
		/* End of stream or error: an ERROR may explain it. */
		r = drain_buffered(c);
		mark_dead(c);
		return r != 0 ? r : rc;
	}
	return 0;
}

/* Write the whole output buffer. */
static int flush_out(struct mq_conn *c)
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
				mark_dead(c);
				return rc;
			}
			continue;
		}
		if (n < 0 && errno != EPIPE && errno != ECONNRESET) {
			int e = errno;

			mark_dead(c);
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
static int enc_check(struct mq_conn *c, size_t start)
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
static void quiet_request(struct mq_conn *c)
{
	if (c->quiet_window_closed) {
		c->quiet_window_closed = false;
		c->quiet_count = 0;
		c->quiet_first = 0;
		c->quiet_msg[0] = '\0';
	}
}

/*
 * Flush, then read until the reply tagged `tag` arrives; *f and *p then
 * hold it (valid until the next read on this connection).  An ERROR reply
 * is returned as its code.
 */
static int wait_reply(struct mq_conn *c, uint32_t tag, struct mqd_frame *f,
                      union mqd_payload *p)
{
	bool got, matched;
	int rc;

	rc = flush_out(c);
	if (rc != 0)
		return rc;
	for (;;) {
		rc = next_frame(c, f, p, &got);
		if (rc != 0)
			return rc;
		if (got) {
			rc = handle_frame(c, f, p, tag, &matched);
			if (rc != 0 || matched)
				return rc;
			continue;
		}
		if (c->dead)
			return MQ_ERR_CLOSED;
		rc = pump(c, -1);
		if (rc == ERR_INTR || rc == MQ_ERR_TIMEOUT)
			continue; /* replies come promptly: keep waiting */
		if (rc != 0)
			return rc;
	}
}

/* Encode-and-wait for requests whose reply is `op`. */
static int expect(struct mq_conn *c, uint32_t tag, uint8_t op,
                  struct mqd_frame *f, union mqd_payload *p)
{
	int rc = wait_reply(c, tag, f, p);

	if (rc != 0)
		return rc;
	if (f->op != op) {
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "unexpected %s in reply", mqd_op_name(f->op) ?
		         mqd_op_name(f->op) : "frame");
		mark_dead(c);
		return MQ_ERR_PROTOCOL;
	}
	return 0;
}

/* An OK whose payload must be exactly n bytes. */
static int expect_ok(struct mq_conn *c, uint32_t tag, uint32_t n,
                     struct mqd_frame *f, union mqd_payload *p)
{
	int rc = expect(c, tag, MQD_OP_OK, f, p);

	if (rc == 0 && p->raw.len != n) {
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "OK of %u bytes where %u were expected",
		         (unsigned)p->raw.len, (unsigned)n);
		mark_dead(c);
		return MQ_ERR_PROTOCOL;
	}
	return rc;
}

/* ---- connecting ------------------------------------------------------ */

/* "host:port", "[v6]:port", "host" or "[v6]" (port 7400), bare "::1". */
static int split_server(const char *s, char *host, size_t hcap, char *port,
                        size_t pcap)
{
	const char *h = s, *colon = NULL;
	size_t hlen;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL)
			return MQ_ERR_INVALID;
		h = s + 1;
		hlen = (size_t)(end - h);
		if (end[1] == ':')
			colon = end + 1;
		else if (end[1] != '\0')
			return MQ_ERR_INVALID;
	} else {
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			colon = NULL; /* bare IPv6 address */
		hlen = colon != NULL ? (size_t)(colon - s) : strlen(s);
	}
	if (hlen == 0 || hlen >= hcap)
		return MQ_ERR_INVALID;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (colon == NULL) {
		snprintf(port, pcap, "%s", DEFAULT_PORT);
		return 0;
	}
	if (colon[1] == '\0' || strlen(colon + 1) >= pcap)
		return MQ_ERR_INVALID;
	snprintf(port, pcap, "%s", colon + 1);
	return 0;
}

/* connect() that survives a signal: the attempt goes on in the kernel. */
static int connect_fd(int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct pollfd pfd;
	int err = 0;
	socklen_t elen = sizeof(err);

	if (connect(fd, sa, salen) == 0)
		return 0;
	if (errno != EINTR)
		return -1;
	pfd.fd = fd;
	pfd.events = POLLOUT;
	while (poll(&pfd, 1, -1) < 0)
		if (errno != EINTR)
			return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		return -1;
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}

static int open_socket(const char *server, int *fdp)
{
	char host[256], port[32];
	struct addrinfo hints, *res = NULL, *ai;
	int rc, fd = -1, one = 1, saved = ECONNREFUSED;

	rc = split_server(server, host, sizeof(host), port, sizeof(port));
	if (rc != 0)
		return rc;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		if (rc == EAI_MEMORY)
			return MQ_ERR_NOMEM;
		return rc == EAI_SYSTEM ? MQ_ERR_IO : MQ_ERR_RESOLVE;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		            ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		if (connect_fd(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		errno = saved;
		return MQ_ERR_IO;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*fdp = fd;
	return 0;
}

static void conn_free(struct mq_conn *c)
{
	struct msgbox *b;

	if (c->fd >= 0)
		close(c->fd);
	while ((b = dequeue(c)) != NULL)
		free(b);
	mqd_wbuf_free(&c->out);
	free(c->rbuf);
	free(c);
}

static int say_hello(struct mq_conn *c, const char *client, const char *user,
                     const char *password)
{
	struct mqd_frame f;
	union mqd_payload p;
	uint32_t tag = new_tag(c);
	size_t start = c->out.len;
	int rc;

	mqd_enc_hello(&c->out, tag, client, user, password);
	rc = enc_check(c, start);
	if (rc == 0)
		rc = expect(c, tag, MQD_OP_WELCOME, &f, &p);
	if (rc != 0)
		return rc;
	if (p.welcome.version != MQD_PROTO_VERSION || p.welcome.max_frame == 0) {
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "server speaks protocol version %u",
		         (unsigned)p.welcome.version);
		return MQ_ERR_PROTOCOL;
	}
	copy_text(c->server, sizeof(c->server), p.welcome.server.p,
	          p.welcome.server.len);
	c->max_frame = p.welcome.max_frame;
	c->conn_id = p.welcome.conn_id;
	return 0;
}

int mq_connect_auth(mq_conn **out, const char *server, const char *client_name,
                    const char *user, const char *password)
{
	struct mq_conn *c;
	int rc, e;

	if (out == NULL)
		return MQ_ERR_INVALID;
	*out = NULL;
	if (client_name == NULL)
		client_name = "";
	if (user == NULL)
		user = "";
	if (password == NULL)
		password = "";
	if (!name_ok(client_name, true) || !name_ok(user, true) ||
	    strlen(password) > UINT16_MAX)
		return MQ_ERR_INVALID;
	if (server == NULL || server[0] == '\0') {
		server = getenv("MQ_SERVER");
		if (server == NULL || server[0] == '\0')
			server = MQ_DEFAULT_SERVER;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return MQ_ERR_NOMEM;
	c->fd = -1;
	c->next_tag = 1;
	c->max_frame = DEFAULT_MAX_FRAME;
	mqd_wbuf_init(&c->out);
	rc = open_socket(server, &c->fd);
	if (rc == 0)
		rc = say_hello(c, client_name, user, password);
	if (rc != 0) {
		e = errno;
		conn_free(c);
		errno = e;
		return rc;
	}
	*out = c;
	return 0;
}

int mq_connect(mq_conn **out, const char *server, const char *client_name)
{
	return mq_connect_auth(out, server, client_name, NULL, NULL);
}

void mq_close(mq_conn *c)
{
	if (c == NULL)
		return;
	/* Like fclose: what was queued with mq_send_quiet still goes out. */
	if (!c->dead && c->out.len > 0)
		(void)flush_out(c);
	conn_free(c);
}

uint64_t mq_conn_id(const mq_conn *c)
{
	return c != NULL ? c->conn_id : 0;
}

uint32_t mq_max_frame(const mq_conn *c)
{
	return c != NULL ? c->max_frame : 0;
}

const char *mq_server_name(const mq_conn *c)
{
	return c != NULL ? c->server : "";
}

int mq_fd(const mq_conn *c)
{
	return c != NULL ? c->fd : -1;
}

/* ---- requests -------------------------------------------------------- */

/* Common entry check: a usable connection. */
static int usable(const struct mq_conn *c)
{
	if (c == NULL)
		return MQ_ERR_INVALID;
	return c->dead ? MQ_ERR_CLOSED : 0;
}

/* PING with a payload no other PING on this connection has; wait for it. */
static int ping_roundtrip(struct mq_conn *c)
{
	struct mqd_frame f;
	union mqd_payload p;
	uint8_t payload[8];
	uint32_t tag = new_tag(c);
	size_t start = c->out.len;
	int rc;

	mqd_store64(payload, ++c->ping_seq);
	mqd_enc_raw(&c->out, MQD_OP_PING, 0, tag, payload, sizeof(payload));
	rc = enc_check(c, start);
	if (rc == 0)
		rc = expect(c, tag, MQD_OP_PONG, &f, &p);
	if (rc != 0)
		return rc;
	if (p.raw.len != sizeof(payload) ||
	    memcmp(p.raw.p, payload, sizeof(payload)) != 0) {
		snprintf(c->errmsg, sizeof(c->errmsg), "PONG does not match PING");
		mark_dead(c);
		return MQ_ERR_PROTOCOL;
	}
	return 0;
}

int mq_ping(mq_conn *c)
{
	int rc = usable(c);

	return rc != 0 ? rc : ping_roundtrip(c);
}

int mq_sync(mq_conn *c)
{
	int rc = usable(c);

	if (rc != 0)
		return rc;
	/* Nothing quiet sent since the last sync: that one's errors are not
	 * this one's. */
	quiet_request(c);
	rc = ping_roundtrip(c);
	if (rc != 0)
		return rc;
	c->quiet_window_closed = true;
	if (c->quiet_count > 0) {
		snprintf(c->errmsg, sizeof(c->errmsg), "%s", c->quiet_msg);
		return c->quiet_first;
	}
	return 0;
}

unsigned mq_quiet_errors(const mq_conn *c)
{
	return c != NULL ? c->quiet_count : 0;
}

int mq_declare(mq_conn *c, const char *queue, const struct mq_queue_opts *o,
               unsigned flags, struct mq_declared *out)
{
	static const struct mq_queue_opts none;
	struct mqd_declare d;
	struct mqd_frame f;
	union mqd_payload p;
	const char *dl;
	uint32_t tag;
	size_t start;
	int rc = usable(c);

	if (rc != 0)
		return rc;
	if (o == NULL)
		o = &none;
	dl = o->dead_letter != NULL ? o->dead_letter : "";
	if (!name_ok(queue, true) || !name_ok(dl, true) || o->overflow > 2 ||
	    (flags & ~(unsigned)(MQ_PASSIVE | MQ_EXCLUSIVE | MQ_AUTO_DELETE)))
		return MQ_ERR_INVALID;
	memset(&d, 0, sizeof(d));
	d.queue.p = (const uint8_t *)queue;
	d.queue.len = (uint32_t)strlen(queue);
	d.max_length = o->max_length;
	d.max_bytes = o->max_bytes;
	d.overflow = o->overflow;
	d.message_ttl_ms = o->message_ttl_ms;
	d.ack_timeout_ms = o->ack_timeout_ms;
	d.max_attempts = o->max_attempts;
	d.dead_letter.p = (const uint8_t *)dl;
	d.dead_letter.len = (uint32_t)strlen(dl);
	tag = new_tag(c);
	start = c->out.len;
	mqd_enc_declare(&c->out, (uint8_t)flags, tag, &d);
	rc = enc_check(c, start);
	if (rc == 0)
		rc = expect(c, tag, MQD_OP_DECLARED, &f, &p);
	if (rc != 0)
		return rc;
	if (out != NULL) {
		copy_text(out->queue, sizeof(out->queue), p.declared.queue.p,
		          p.declared.queue.len);
		out->ready = p.declared.ready;
		out->consumers = p.declared.consumers;
	}
	return 0;
}

/* DELETE or PURGE. */
static int queue_op(struct mq_conn *c, uint8_t op, const char *queue,
                    unsigned flags, uint32_t ok_len, struct mqd_frame *f,
                    union mqd_payload *p)
{
	uint32_t tag;
	size_t start;
	int rc = usable(c);

	if (rc != 0)
		return rc;
	if (!name_ok(queue, false))
		return MQ_ERR_INVALID;
	tag = new_tag(c);
	start = c->out.len;
	mqd_enc_queue_op(&c->out, op, (uint8_t)flags, tag, queue);
	rc = enc_check(c, start);
	return rc != 0 ? rc : expect_ok(c, tag, ok_len, f, p);
}

int mq_delete(mq_conn *c, const char *queue, unsigned flags)
{
	struct mqd_frame f;
	union mqd_payload p;

	if (flags & ~(unsigned)MQ_IF_EMPTY)
		return MQ_ERR_INVALID;
	return queue_op(c, MQD_OP_DELETE, queue, flags, 0, &f, &p);
}

int mq_purge(mq_conn *c, const char *queue, uint64_t *purged)
{
	struct mqd_frame f;
	union mqd_payload p;
	int rc = queue_op(c, MQD_OP_PURGE, queue, 0, 8, &f, &p);

	if (rc == 0 && purged != NULL)
		*purged = mqd_load64(p.raw.p);
	return rc;
}

/* Encode a SEND or PUBLISH (flags QUIET or 0) after checking what can be
 * checked here, including its size, before copying a large body. */
static int enc_message(struct mq_conn *c, uint8_t op, uint8_t flags,
                       uint32_t tag, const char *dest, const void *body,
                       size_t len, const struct mq_send_opts *o)
{
	static const struct mq_send_opts none;
	const void *hdr;
	size_t hlen, qlen, start;
	uint64_t frame_len;

	if (o == NULL)
		o = &none;
	if (dest == NULL ||
	    (op == MQD_OP_PUBLISH ?
	     !mqd_topic_valid((const uint8_t *)dest, strlen(dest)) :
	     !name_ok(dest, false)) ||
	    (body == NULL && len > 0) ||
	    o->priority > MQD_PRIORITY_MAX ||
	    (o->headers == NULL && o->headers_len > 0) || o->headers_len == 1)
		return MQ_ERR_INVALID;
	hdr = o->headers_len > 0 ? o->headers : NULL;
	hlen = o->headers_len;
	qlen = strlen(dest);
	/* op flags tag | queue | ttl delay prio | headers | body */
	frame_len = 6 + (1 + (uint64_t)qlen) + 9 + (hlen > 0 ? hlen : 2) +
	            4 + (uint64_t)len;
	if (frame_len > c->max_frame) {
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "a message frame of %llu bytes exceeds the server's "
		         "max_frame of %u", (unsigned long long)frame_len,
		         (unsigned)c->max_frame);
		return MQ_ERR_FRAME_TOO_LARGE;
	}
	start = c->out.len;
	mqd_enc_send(&c->out, op, flags, tag, dest, o->ttl_ms, o->delay_ms,
	             o->priority, hdr, hlen, body, len);
	return enc_check(c, start);
}

static int enc_send(struct mq_conn *c, uint8_t flags, uint32_t tag,
                    const char *queue, const void *body, size_t len,
                    const struct mq_send_opts *o)
{
	return enc_message(c, MQD_OP_SEND, flags, tag, queue, body, len, o);
}

int mq_send(mq_conn *c, const char *queue, const void *body, size_t len,
            const struct mq_send_opts *o, uint64_t *id)
{
	struct mqd_frame f;
	union mqd_payload p;
	uint32_t tag;
	int rc = usable(c);

	if (rc != 0)
		return rc;
	tag = new_tag(c);
	rc = enc_send(c, 0, tag, queue, body, len, o);
	if (rc == 0)
		rc = expect_ok(c, tag, 8, &f, &p);
	if (rc == 0 && id != NULL)
		*id = mqd_load64(p.raw.p);
	return rc;
}

/* After a quiet request: write once enough has piled up. */
static int quiet_done(struct mq_conn *c)
{
	return c->out.len >= OUT_FLUSH_AT ? flush_out(c) : 0;
}

int mq_send_quiet(mq_conn *c, const char *queue, const void *body,
                  size_t len, const struct mq_send_opts *o)
{
	int rc = usable(c);

	if (rc != 0)
		return rc;
	rc = enc_send(c, MQD_F_QUIET, new_tag(c), queue, body, len, o);
	if (rc != 0)
		return rc;
	quiet_request(c);
	return quiet_done(c);
}

int mq_get(mq_conn *c, const char *queue, uint32_t timeout_ms, unsigned flags,
           struct mq_message **out)
{
	struct mqd_frame f;
	union mqd_payload p;
	struct msgbox *b;
	uint32_t tag;
	size_t start;
	int rc;

	if (out != NULL)
		*out = NULL;
	rc = usable(c);
	if (rc != 0)
		return rc;
	if (out == NULL || !name_ok(queue, false) ||
	    (flags & ~(unsigned)MQ_AUTO_ACK))
		return MQ_ERR_INVALID;
	tag = new_tag(c);
	start = c->out.len;
	mqd_enc_get(&c->out, (uint8_t)flags, tag, queue, timeout_ms);
	rc = enc_check(c, start);
	if (rc == 0)
		rc = wait_reply(c, tag, &f, &p);
	if (rc != 0)
		return rc;
	if (f.op == MQD_OP_EMPTY)
		return MQ_ERR_EMPTY;
	if (f.op != MQD_OP_MESSAGE) {
		mark_dead(c);
		return MQ_ERR_PROTOCOL;
	}
	b = box_message(&f, &p.message, 0);
	if (b == NULL) {
		/* We hold it now; dropping the connection gives it back. */
		mark_dead(c);
		return MQ_ERR_NOMEM;
	}
	*out = &b->msg;
	return 0;
}

int mq_consume(mq_conn *c, const char *queue, uint32_t prefetch,
               unsigned flags, uint32_t *tag)
{
	struct mqd_frame f;
	union mqd_payload p;
	uint32_t t;
	size_t start;
	int rc = usable(c);

	if (rc != 0)
		return rc;
	if (!name_ok(queue, false) || (flags & ~(unsigned)MQ_AUTO_ACK))
		return MQ_ERR_INVALID;
	t = new_tag(c);
	start = c->out.len;
	mqd_enc_consume(&c->out, (uint8_t)flags, t, queue, prefetch);
	rc = enc_check(c, start);
	if (rc == 0)
		rc = expect_ok(c, t, 0, &f, &p);
	if (rc == 0 && tag != NULL)
		*tag = t;
	return rc;
}

/* CANCEL or UNSUBSCRIBE: end what tag `which` started. */
static int end_tag(mq_conn *c, uint8_t op, uint32_t which)
{
	struct mqd_frame f;
	union mqd_payload p;
	uint32_t tag;
	size_t start;
	int rc = usable(c);

	if (rc != 0)
		return rc;
	if (which == 0)
		return MQ_ERR_INVALID;
	tag = new_tag(c);
	start = c->out.len;
	mqd_enc_cancel(&c->out, op, tag, which);
	rc = enc_check(c, start);
	return rc != 0 ? rc : expect_ok(c, tag, 0, &f, &p);
}

int mq_cancel(mq_conn *c, uint32_t which)
{
	return end_tag(c, MQD_OP_CANCEL, which);
}

/* Whether a queued box belongs to the internal reply consumer. */
static bool is_reply_box(const struct mq_conn *c, const struct msgbox *b)
{
	if (c->reply_tag == 0)
		return false;
	if (b->cancelled_tag != 0)
		return b->cancelled_tag == c->reply_tag;
	return b->msg.tag == c->reply_tag;
}

/* The reply consumer is gone (its queue was deleted): the next
 * mq_request sets up a new one. */
static void forget_reply_consumer(struct mq_conn *c)
{
	c->reply_tag = 0;
	c->reply_queue[0] = '\0';
}

/* Drop replies nobody waits for any more from the head of the delivery
 * queue; they are the library's, not the caller's. */
static void skip_reply_boxes(struct mq_conn *c)
{
	struct msgbox *b;

	while (c->q_head != NULL && is_reply_box(c, c->q_head)) {
		b = dequeue(c);
		if (b->cancelled_tag != 0)
			forget_reply_consumer(c);
		free(b);
	}
}

/* Hand out the head of the delivery queue. */
static int pop_delivery(struct mq_conn *c, struct mq_message **out)
{
	struct msgbox *b = dequeue(c);

	if (b->cancelled_tag != 0) {
		c->cancelled_tag = b->cancelled_tag;
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "consumer %u cancelled: queue %s was deleted",
		         (unsigned)b->cancelled_tag, b->msg.source);
		free(b);
		return MQ_ERR_NOT_FOUND;
	}
	*out = &b->msg;
	return 0;
}

/*
 * A signal that interrupts the wait makes mq_next return MQ_ERR_IO with
 * errno EINTR, as read(2) would, so a consumer loop can notice its stop
 * flag; nothing is lost and mq_next may simply be called again.
 */
int mq_next(mq_conn *c, int timeout_ms, struct mq_message **out)
{
	int64_t deadline = 0, left;
	int rc;

	if (out != NULL)
		*out = NULL;
	if (c == NULL || out == NULL)
		return MQ_ERR_INVALID;
	/* Send pending quiet ACKs now: a consumer busy with the next message
	 * must not sit on the last one's acknowledgement. */
	if (!c->dead && c->out.len > 0) {
		rc = flush_out(c);
		if (rc != 0 && c->q_head == NULL)
			return rc;
	}
	if (timeout_ms >= 0)
		deadline = now_ms() + timeout_ms;
	for (;;) {
		if (!c->dead) {
			rc = drain_buffered(c);
			skip_reply_boxes(c);
			if (rc != 0 && c->q_head == NULL)
				return rc;
		}
		skip_reply_boxes(c);
		if (c->q_head != NULL)
			return pop_delivery(c, out);
		if (c->dead)
			return MQ_ERR_CLOSED;
		left = -1;
		if (timeout_ms >= 0) {
			left = deadline - now_ms();
			if (left < 0)
				left = 0;
			if (left > INT_MAX)
				left = INT_MAX;
		}
		rc = pump(c, (int)left);
		if (rc == ERR_INTR) {
			errno = EINTR;
			return MQ_ERR_IO;
		}
		if (rc == MQ_ERR_TIMEOUT && left > 0)
			continue; /* poll woke early; the deadline decides */
		if (rc != 0 && rc != MQ_ERR_CLOSED)
			return rc;
		/* On CLOSED, loop once more: buffered frames come first. */
	}
}

uint32_t mq_cancelled_tag(const mq_conn *c)
{
	return c != NULL ? c->cancelled_tag : 0;
}

/* ACK or NACK. */
/* A request just written whose OK carries a u32 (ACK, NACK, PUBLISH): with
 * QUIET nothing is waited for; else wait and store the u32 in *out. */
static int finish_u32(mq_conn *c, uint32_t tag, unsigned flags,
                      uint32_t *out)
{
	struct mqd_frame f;
	union mqd_payload p;
	int rc;

	if (flags & MQ_QUIET) {
		quiet_request(c);
		return quiet_done(c);
	}
	rc = expect_ok(c, tag, 4, &f, &p);
	if (rc == 0 && out != NULL)
		*out = mqd_load32(p.raw.p);
	return rc;
}

static int ack_op(struct mq_conn *c, uint8_t op, const uint64_t *ids,
                  uint16_t n, int requeue, uint32_t delay_ms, unsigned flags,
                  uint32_t *count)
{
	uint32_t tag;
	size_t start;
	int rc = usable(c);

	if (rc != 0)
		return rc;
	if ((ids == NULL && n > 0) || (flags & ~(unsigned)MQ_QUIET))
		return MQ_ERR_INVALID;
	if (n == 0) {
		if (count != NULL && !(flags & MQ_QUIET))
			*count = 0;
		return 0;
	}
	tag = new_tag(c);
	start = c->out.len;
	mqd_enc_ack(&c->out, op, (uint8_t)flags, tag, requeue ? 1 : 0,
	            delay_ms, ids, n);
	rc = enc_check(c, start);
	if (rc != 0)
		return rc;
	return finish_u32(c, tag, flags, count);
}

int mq_ack(mq_conn *c, const uint64_t *ids, uint16_t n, unsigned flags,
           uint32_t *count)
{
	return ack_op(c, MQD_OP_ACK, ids, n, 0, 0, flags, count);
}

int mq_nack(mq_conn *c, const uint64_t *ids, uint16_t n, int requeue,
            uint32_t delay_ms, unsigned flags, uint32_t *count)
{
	return ack_op(c, MQD_OP_NACK, ids, n, requeue, delay_ms, flags, count);
}

/* ---- publish / subscribe ---------------------------------------------- */

static bool pattern_ok(const char *s)
{
	return s != NULL && mqd_pattern_valid((const uint8_t *)s, strlen(s));
}

int mq_publish(mq_conn *c, const char *topic, const void *body, size_t len,
               const struct mq_send_opts *o, unsigned flags,
               uint32_t *receivers)
{
	uint32_t tag;
	int rc = usable(c);

	if (rc != 0)
		return rc;
	if (flags & ~(unsigned)MQ_QUIET)
		return MQ_ERR_INVALID;
	tag = new_tag(c);
	rc = enc_message(c, MQD_OP_PUBLISH, (uint8_t)flags, tag, topic, body,
	                 len, o);
	if (rc != 0)
		return rc;
	return finish_u32(c, tag, flags, receivers);
}

int mq_subscribe(mq_conn *c, const char *pattern, uint32_t *tag)
{
	struct mqd_frame f;
	union mqd_payload p;
	uint32_t t;
	size_t start;
	int rc = usable(c);

	if (rc != 0)
		return rc;
	if (!pattern_ok(pattern))
		return MQ_ERR_INVALID;
	t = new_tag(c);
	start = c->out.len;
	mqd_enc_subscribe(&c->out, t, pattern);
	rc = enc_check(c, start);
	if (rc == 0)
		rc = expect_ok(c, t, 0, &f, &p);
	if (rc == 0 && tag != NULL)
		*tag = t;
	return rc;
}

int mq_unsubscribe(mq_conn *c, uint32_t which)
{
	return end_tag(c, MQD_OP_UNSUBSCRIBE, which);
}

/* BIND or UNBIND. */
static int bind_op(struct mq_conn *c, uint8_t op, const char *queue,
                   const char *pattern)
{
	struct mqd_frame f;
	union mqd_payload p;
	uint32_t tag;
	size_t start;
	int rc = usable(c);

	if (rc != 0)
		return rc;
	if (!name_ok(queue, false) || !pattern_ok(pattern))
		return MQ_ERR_INVALID;
	tag = new_tag(c);
	start = c->out.len;
	mqd_enc_bind(&c->out, op, tag, queue, pattern);
	rc = enc_check(c, start);
	return rc != 0 ? rc : expect_ok(c, tag, 0, &f, &p);
}

int mq_bind(mq_conn *c, const char *queue, const char *pattern)
{
	return bind_op(c, MQD_OP_BIND, queue, pattern);
}

int mq_unbind(mq_conn *c, const char *queue, const char *pattern)
{
	return bind_op(c, MQD_OP_UNBIND, queue, pattern);
}

/* ---- request / reply ---------------------------------------------------- */

#define HDR_REPLY_TO "reply-to"
#define HDR_CORRELATION_ID "correlation-id"

/* Declare this connection's reply queue and consume it, once. */
static int setup_reply_consumer(struct mq_conn *c)
{
	struct mq_declared d;
	uint32_t tag;
	int rc;

	if (c->reply_tag != 0)
		return 0;
	rc = mq_declare(c, "", NULL, MQ_EXCLUSIVE, &d);
	if (rc != 0)
		return rc;
	if (!name_ok(d.queue, false)) {
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "the server named the reply queue badly");
		mark_dead(c);
		return MQ_ERR_PROTOCOL;
	}
	rc = mq_consume(c, d.queue, 0, MQ_AUTO_ACK, &tag);
	if (rc != 0)
		return rc;
	snprintf(c->reply_queue, sizeof(c->reply_queue), "%s", d.queue);
	c->reply_tag = tag;
	return 0;
}

/* Whether a message's correlation-id header is exactly corr. */
static bool corr_matches(struct mqd_span headers, const char *corr)
{
	struct mqd_span v;
	size_t n = strlen(corr);

	if (headers.len < 2 || !mqd_headers_find(headers, HDR_CORRELATION_ID, &v))
		return false;
	return v.len == n && memcmp(v.p, corr, n) == 0;
}

static int reply_queue_gone(struct mq_conn *c)
{
	forget_reply_consumer(c);
	snprintf(c->errmsg, sizeof(c->errmsg), "the reply queue was deleted");
	return MQ_ERR_NOT_FOUND;
}

/*
 * Look through the delivery queue for the reply consumer's deliveries
 * (which arrive there while other calls wait): unlink them, dropping the
 * stale ones, and leave everything else in order.  *out gets the reply
 * with this correlation id if it is there (corr NULL: drop them all, and
 * notice quietly if the reply queue is gone).
 */
static int take_queued_reply(struct mq_conn *c, const char *corr,
                             struct mq_message **out)
{
	struct msgbox **pp = &c->q_head, *b, *prev = NULL;
	struct mqd_span h;

	while ((b = *pp) != NULL) {
		if (!is_reply_box(c, b)) {
			prev = b;
			pp = &b->next;
			continue;
		}
		*pp = b->next;
		if (c->q_tail == b)
			c->q_tail = prev;
		b->next = NULL;
		if (b->cancelled_tag != 0) {
			/* Nothing of the reply consumer follows its end. */
			free(b);
			if (*out == NULL && corr != NULL)
				return reply_queue_gone(c);
			forget_reply_consumer(c);
			return 0;
		}
		h.p = b->msg.headers;
		h.len = (uint32_t)b->msg.headers_len;
		if (*out == NULL && corr != NULL && corr_matches(h, corr))
			*out = &b->msg;
		else
			free(b);
	}
	return 0;
}

/*
 * Read frames until the reply with this correlation id arrives or the
 * deadline passes.  The reply consumer's frames are dealt with here; all
 * others are sorted as any waiting call sorts them, so deliveries for the
 * caller's own consumers keep their order in the delivery queue.
 */
static int wait_for_reply(struct mq_conn *c, const char *corr,
                          int64_t deadline, struct mq_message **out)
{
	struct mqd_frame f;
	union mqd_payload p;
	struct msgbox *b;
	bool got, matched;
	int64_t left;
	int rc;

	for (;;) {
		rc = next_frame(c, &f, &p, &got);
		if (rc != 0)
			return rc;
		if (got) {
			if (c->reply_tag != 0 && f.tag == c->reply_tag &&
			    f.op == MQD_OP_CANCELLED)
				return reply_queue_gone(c);
			if (c->reply_tag != 0 && f.tag == c->reply_tag &&
			    f.op == MQD_OP_DELIVER) {
				if (!corr_matches(p.message.headers, corr))
					continue; /* stale: dropped */
				b = box_message(&f, &p.message, f.tag);
				if (b == NULL)
					return MQ_ERR_NOMEM;
				*out = &b->msg;
				return 0;
			}
			rc = handle_frame(c, &f, &p, 0, &matched);
			if (rc != 0)
				return rc;
			continue;
		}
		if (c->dead)
			return MQ_ERR_CLOSED;
		left = deadline - now_ms();
		if (left <= 0)
			return MQ_ERR_TIMEOUT;
		if (left > INT_MAX)
			left = INT_MAX;
		rc = pump(c, (int)left);
		if (rc == ERR_INTR || rc == MQ_ERR_TIMEOUT)
			continue; /* the deadline decides */
		if (rc != 0)
			return rc;
	}
}

int mq_request(mq_conn *c, const char *queue, const void *body, size_t len,
               uint32_t timeout_ms, struct mq_message **reply)
{
	struct mq_send_opts so;
	struct mqd_wbuf hdr;
	struct mqd_frame f;
	union mqd_payload p;
	char corr[24];
	int64_t deadline = now_ms() + (int64_t)timeout_ms;
	uint32_t tag;
	int rc;

	if (reply != NULL)
		*reply = NULL;
	rc = usable(c);
	if (rc != 0)
		return rc;
	if (reply == NULL || !name_ok(queue, false) || (body == NULL && len > 0))
		return MQ_ERR_INVALID;
	/* Stale replies go now, and a reply queue deleted since the last
	 * request (its CANCELLED may be waiting unread) is replaced before
	 * this one names it. */
	if (c->reply_tag != 0) {
		rc = pump(c, 0);
		if (rc == 0 || rc == MQ_ERR_TIMEOUT || rc == ERR_INTR)
			rc = drain_buffered(c);
		if (rc != 0)
			return rc;
		(void)take_queued_reply(c, NULL, reply);
	}
	rc = setup_reply_consumer(c);
	if (rc != 0)
		return rc;
	snprintf(corr, sizeof(corr), "%llu", (unsigned long long)++c->corr_seq);
	mqd_wbuf_init(&hdr);
	mqd_headers_init(&hdr);
	mqd_headers_add(&hdr, HDR_REPLY_TO, c->reply_queue,
	                strlen(c->reply_queue));
	mqd_headers_add(&hdr, HDR_CORRELATION_ID, corr, strlen(corr));
	if (hdr.oom) {
		mqd_wbuf_free(&hdr);
		return MQ_ERR_NOMEM;
	}
	memset(&so, 0, sizeof(so));
	so.headers = hdr.data;
	so.headers_len = hdr.len;
	tag = new_tag(c);
	rc = enc_send(c, 0, tag, queue, body, len, &so);
	mqd_wbuf_free(&hdr);
	/* The SEND's OK tells us the request was stored (or why not); the
	 * reply may already have arrived by then. */
	if (rc == 0)
		rc = expect_ok(c, tag, 8, &f, &p);
	if (rc == 0)
		rc = take_queued_reply(c, corr, reply);
	if (rc == 0 && *reply == NULL)
		rc = wait_for_reply(c, corr, deadline, reply);
	if (rc == MQ_ERR_TIMEOUT)
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "no reply from %s within %u ms", queue,
		         (unsigned)timeout_ms);
	return rc;
}

int mq_reply(mq_conn *c, const struct mq_message *request, const void *body,
             size_t len)
{
	struct mq_send_opts so;
	struct mqd_wbuf hdr;
	const char *v;
	char to[256];
	int n, rc = usable(c);

	if (rc != 0)
		return rc;
	if (request == NULL)
		return MQ_ERR_INVALID;
	n = mq_message_header(request, HDR_REPLY_TO, &v);
	if (n <= 0 || n > MQD_NAME_MAX ||
	    !mqd_name_valid((const uint8_t *)v, (size_t)n))
		return MQ_ERR_INVALID;
	memcpy(to, v, (size_t)n);
	to[n] = '\0';
	mqd_wbuf_init(&hdr);
	mqd_headers_init(&hdr);
	n = mq_message_header(request, HDR_CORRELATION_ID, &v);
	if (n >= 0)
		mqd_headers_add(&hdr, HDR_CORRELATION_ID, v, (size_t)n);
	if (hdr.oom) {
		mqd_wbuf_free(&hdr);
		return MQ_ERR_NOMEM;
	}
	memset(&so, 0, sizeof(so));
	so.headers = hdr.data;
	so.headers_len = hdr.len;
	rc = mq_send(c, to, body, len, &so, NULL);
	mqd_wbuf_free(&hdr);
	return rc;
}

/* ---- headers --------------------------------------------------------- */

int mq_message_header(const struct mq_message *m, const char *key,
                      const char **value)
{
	struct mqd_span h, v;

	if (m == NULL || key == NULL || m->headers == NULL ||
	    m->headers_len < 2)
		return -1;
	h.p = m->headers;
	h.len = (uint32_t)m->headers_len;
	if (!mqd_headers_find(h, key, &v))
		return -1;
	if (value != NULL)
		*value = (const char *)v.p;
	return (int)v.len;
}

/* A raw headers field under construction (count first, as on the wire). */
struct mq_headers {
	struct mqd_wbuf w;
	uint16_t count;
};

struct mq_headers *mq_headers_new(void)
{
	struct mq_headers *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	mqd_wbuf_init(&h->w);
	mqd_headers_init(&h->w);
	if (h->w.oom) {
		mqd_wbuf_free(&h->w);
		free(h);
		return NULL;
	}
	return h;
}

int mq_headers_add(struct mq_headers *h, const char *key, const char *value)
{
	struct mqd_span field, v;
	size_t vlen, saved_len;
	uint8_t saved_count[2];

	if (h == NULL || key == NULL || value == NULL)
		return MQ_ERR_INVALID;
	vlen = strlen(value);
	if (!name_ok(key, false) || vlen > UINT16_MAX || h->count == UINT16_MAX)
		return MQ_ERR_INVALID;
	field.p = h->w.data;
	field.len = (uint32_t)h->w.len;
	if (mqd_headers_find(field, key, &v))
		return MQ_ERR_INVALID;
	saved_len = h->w.len;
	memcpy(saved_count, h->w.data, 2);
	mqd_headers_add(&h->w, key, value, vlen);
	if (h->w.oom) {
		h->w.len = saved_len;
		memcpy(h->w.data, saved_count, 2);
		h->w.oom = false;
		return MQ_ERR_NOMEM;
	}
	h->count++;
	return 0;
}

const uint8_t *mq_headers_data(const struct mq_headers *h, size_t *len)
{
	if (h == NULL) {
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	if (len != NULL)
		*len = h->w.len;
	return h->w.data;
}

void mq_headers_free(struct mq_headers *h)
{
	if (h == NULL)
		return;
	mqd_wbuf_free(&h->w);
	free(h);
}

/* ---- durations ------------------------------------------------------- */

int mq_parse_duration(const char *s, uint64_t *ms)
{
	if (s == NULL || ms == NULL)
		return MQ_ERR_INVALID;
	return mqd_parse_duration(s, ms) == 0 ? 0 : MQ_ERR_INVALID;
}
