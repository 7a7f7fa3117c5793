#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * libmq: publish/subscribe (topics, patterns, bindings of queues to
 * patterns) and request/reply over an internal reply consumer (see
 * internal.h).
 */

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq/mq.h"
#include "client/internal.h"
#include "proto/proto.h"

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
	int rc = mqc_usable(c);

	if (rc != 0)
		return rc;
	if (flags & ~(unsigned)MQ_QUIET)
		return MQ_ERR_INVALID;
	tag = mqc_new_tag(c);
	rc = mqc_enc_message(c, MQD_OP_PUBLISH, (uint8_t)flags, tag, topic,
	                     body, len, o);
	if (rc != 0)
		return rc;
	return mqc_finish_u32(c, tag, flags, receivers);
}

int mq_subscribe(mq_conn *c, const char *pattern, uint32_t *tag)
{
	struct mqd_frame f;
	union mqd_payload p;
	uint32_t t;
	size_t start;
	int rc = mqc_usable(c);

	if (rc != 0)
		return rc;
	if (!pattern_ok(pattern))
		return MQ_ERR_INVALID;
	t = mqc_new_tag(c);
	start = c->out.len;
	mqd_enc_subscribe(&c->out, t, pattern);
	rc = mqc_enc_check(c, start);
	if (rc == 0)
		rc = mqc_expect_ok(c, t, 0, &f, &p);
	if (rc == 0 && tag != NULL)
		*tag = t;
	return rc;
}

int mq_unsubscribe(mq_conn *c, uint32_t which)
{
	return mqc_end_tag(c, MQD_OP_UNSUBSCRIBE, which);
}

/* BIND or UNBIND. */
static int bind_op(struct mq_conn *c, uint8_t op, const char *queue,
                   const char *pattern)
{
	struct mqd_frame f;
	union mqd_payload p;
	uint32_t tag;
	size_t start;
	int rc = mqc_usable(c);

	if (rc != 0)
		return rc;
	if (!mqc_name_ok(queue, false) || !pattern_ok(pattern))
		return MQ_ERR_INVALID;
	tag = mqc_new_tag(c);
	start = c->out.len;
	mqd_enc_bind(&c->out, op, tag, queue, pattern);
	rc = mqc_enc_check(c, start);
	return rc != 0 ? rc : mqc_expect_ok(c, tag, 0, &f, &p);
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
void mqc_skip_reply_boxes(struct mq_conn *c)
{
	struct msgbox *b;

	while (c->q_head != NULL && is_reply_box(c, c->q_head)) {
		b = mqc_dequeue(c);
		if (b->cancelled_tag != 0)
			forget_reply_consumer(c);
		free(b);
	}
}

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
	if (!mqc_name_ok(d.queue, false)) {
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "the server named the reply queue badly");
		mqc_mark_dead(c);
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
		rc = mqc_next_frame(c, &f, &p, &got);
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
				b = mqc_box_message(&f, &p.message, f.tag);
				if (b == NULL)
					return MQ_ERR_NOMEM;
				*out = &b->msg;
				return 0;
			}
			rc = mqc_handle_frame(c, &f, &p, 0, &matched);
			if (rc != 0)
				return rc;
			continue;
		}
		if (c->dead)
			return MQ_ERR_CLOSED;
		left = deadline - mqc_now_ms();
		if (left <= 0)
			return MQ_ERR_TIMEOUT;
		if (left > INT_MAX)
			left = INT_MAX;
		rc = mqc_pump(c, (int)left);
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
	int64_t deadline = mqc_now_ms() + (int64_t)timeout_ms;
	uint32_t tag;
	int rc;

	if (reply != NULL)
		*reply = NULL;
	rc = mqc_usable(c);
	if (rc != 0)
		return rc;
	if (reply == NULL || !mqc_name_ok(queue, false) ||
	    (body == NULL && len > 0))
		return MQ_ERR_INVALID;
	/* Stale replies go now, and a reply queue deleted since the last
	 * request (its CANCELLED may be waiting unread) is replaced before
	 * this one names it. */
	if (c->reply_tag != 0) {
		int prc = mqc_pump(c, 0);

		/* Sort what is buffered even when the stream has just ended:
		 * frames read before the end (deliveries for mq_next, the
		 * ERROR that says why) would otherwise never be looked at. */
		rc = mqc_drain_buffered(c);
		if (rc == 0 && prc != MQ_ERR_TIMEOUT && prc != ERR_INTR)
			rc = prc;
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
	tag = mqc_new_tag(c);
	rc = mqc_enc_message(c, MQD_OP_SEND, 0, tag, queue, body, len,
	                     &so);
	mqd_wbuf_free(&hdr);
	/* The SEND's OK tells us the request was stored (or why not); the
	 * reply may already have arrived by then. */
	if (rc == 0)
		rc = mqc_expect_ok(c, tag, 8, &f, &p);
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
	int n, rc = mqc_usable(c);

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
