#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * libmq: queues.  Declaring, deleting and purging them; sending (waiting
 * for the OK, or quiet); GET; consumers and mq_next, which hands out what
 * io.c sorted into the delivery queue; ACK and NACK.  The encoding of a
 * message frame and the ends of consumers and subscriptions are shared
 * with pubsub.c.
 */

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq/mq.h"
#include "client/internal.h"
#include "proto/proto.h"

/* ---- queues ------------------------------------------------------------ */

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
	int rc = mqc_usable(c);

	if (rc != 0)
		return rc;
	if (o == NULL)
		o = &none;
	dl = o->dead_letter != NULL ? o->dead_letter : "";
	if (!mqc_name_ok(queue, true) || !mqc_name_ok(dl, true) ||
	    o->overflow > 2 ||
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
	tag = mqc_new_tag(c);
	start = c->out.len;
	mqd_enc_declare(&c->out, (uint8_t)flags, tag, &d);
	rc = mqc_enc_check(c, start);
	if (rc == 0)
		rc = mqc_expect(c, tag, MQD_OP_DECLARED, &f, &p);
	if (rc != 0)
		return rc;
	if (out != NULL) {
		mqc_copy_text(out->queue, sizeof(out->queue),
		              p.declared.queue.p, p.declared.queue.len);
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
	int rc = mqc_usable(c);

	if (rc != 0)
		return rc;
	if (!mqc_name_ok(queue, false))
		return MQ_ERR_INVALID;
	tag = mqc_new_tag(c);
	start = c->out.len;
	mqd_enc_queue_op(&c->out, op, (uint8_t)flags, tag, queue);
	rc = mqc_enc_check(c, start);
	return rc != 0 ? rc : mqc_expect_ok(c, tag, ok_len, f, p);
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

/* ---- sending ------------------------------------------------------------ */

/* Encode a SEND or PUBLISH (flags QUIET or 0) after checking what can be
 * checked here, including its size, before copying a large body. */
int mqc_enc_message(struct mq_conn *c, uint8_t op, uint8_t flags,
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
	     !mqc_name_ok(dest, false)) ||
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
	return mqc_enc_check(c, start);
}

static int enc_send(struct mq_conn *c, uint8_t flags, uint32_t tag,
                    const char *queue, const void *body, size_t len,
                    const struct mq_send_opts *o)
{
	return mqc_enc_message(c, MQD_OP_SEND, flags, tag, queue, body, len, o);
}

int mq_send(mq_conn *c, const char *queue, const void *body, size_t len,
            const struct mq_send_opts *o, uint64_t *id)
{
	struct mqd_frame f;
	union mqd_payload p;
	uint32_t tag;
	int rc = mqc_usable(c);

	if (rc != 0)
		return rc;
	tag = mqc_new_tag(c);
	rc = enc_send(c, 0, tag, queue, body, len, o);
	if (rc == 0)
		rc = mqc_expect_ok(c, tag, 8, &f, &p);
	if (rc == 0 && id != NULL)
		*id = mqd_load64(p.raw.p);
	return rc;
}

int mq_send_quiet(mq_conn *c, const char *queue, const void *body,
                  size_t len, const struct mq_send_opts *o)
{
	int rc = mqc_usable(c);

	if (rc != 0)
		return rc;
	rc = enc_send(c, MQD_F_QUIET, mqc_new_tag(c), queue, body, len, o);
	if (rc != 0)
		return rc;
	mqc_quiet_request(c);
	return mqc_quiet_done(c);
}

/* ---- receiving ---------------------------------------------------------- */

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
	rc = mqc_usable(c);
	if (rc != 0)
		return rc;
	if (out == NULL || !mqc_name_ok(queue, false) ||
	    (flags & ~(unsigned)MQ_AUTO_ACK))
		return MQ_ERR_INVALID;
	tag = mqc_new_tag(c);
	start = c->out.len;
	mqd_enc_get(&c->out, (uint8_t)flags, tag, queue, timeout_ms);
	rc = mqc_enc_check(c, start);
	if (rc == 0)
		rc = mqc_wait_reply(c, tag, &f, &p);
	if (rc != 0)
		return rc;
	if (f.op == MQD_OP_EMPTY)
		return MQ_ERR_EMPTY;
	if (f.op != MQD_OP_MESSAGE) {
		snprintf(c->errmsg, sizeof(c->errmsg), "unexpected %s in reply",
		         mqd_op_name(f.op) ? mqd_op_name(f.op) : "frame");
		mqc_mark_dead(c);
		return MQ_ERR_PROTOCOL;
	}
	b = mqc_box_message(&f, &p.message, 0);
	if (b == NULL) {
		/* We hold it now; dropping the connection gives it back. */
		mqc_mark_dead(c);
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
	int rc = mqc_usable(c);

	if (rc != 0)
		return rc;
	if (!mqc_name_ok(queue, false) || (flags & ~(unsigned)MQ_AUTO_ACK))
		return MQ_ERR_INVALID;
	t = mqc_new_tag(c);
	start = c->out.len;
	mqd_enc_consume(&c->out, (uint8_t)flags, t, queue, prefetch);
	rc = mqc_enc_check(c, start);
	if (rc == 0)
		rc = mqc_expect_ok(c, t, 0, &f, &p);
	if (rc == 0 && tag != NULL)
		*tag = t;
	return rc;
}

/* CANCEL or UNSUBSCRIBE: end what tag `which` started. */
int mqc_end_tag(mq_conn *c, uint8_t op, uint32_t which)
{
	struct mqd_frame f;
	union mqd_payload p;
	uint32_t tag;
	size_t start;
	int rc = mqc_usable(c);

	if (rc != 0)
		return rc;
	if (which == 0)
		return MQ_ERR_INVALID;
	tag = mqc_new_tag(c);
	start = c->out.len;
	mqd_enc_cancel(&c->out, op, tag, which);
	rc = mqc_enc_check(c, start);
	return rc != 0 ? rc : mqc_expect_ok(c, tag, 0, &f, &p);
}

int mq_cancel(mq_conn *c, uint32_t which)
{
	return mqc_end_tag(c, MQD_OP_CANCEL, which);
}

/* Hand out the head of the delivery queue. */
static int pop_delivery(struct mq_conn *c, struct mq_message **out)
{
	struct msgbox *b = mqc_dequeue(c);

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
		rc = mqc_flush_out(c);
		if (rc != 0 && c->q_head == NULL)
			return rc;
	}
	if (timeout_ms >= 0)
		deadline = mqc_now_ms() + timeout_ms;
	for (;;) {
		if (!c->dead) {
			rc = mqc_drain_buffered(c);
			mqc_skip_reply_boxes(c);
			if (rc != 0 && c->q_head == NULL)
				return rc;
		}
		mqc_skip_reply_boxes(c);
		if (c->q_head != NULL)
			return pop_delivery(c, out);
		if (c->dead)
			return MQ_ERR_CLOSED;
		left = -1;
		if (timeout_ms >= 0) {
			left = deadline - mqc_now_ms();
			if (left < 0)
				left = 0;
			if (left > INT_MAX)
				left = INT_MAX;
		}
		rc = mqc_pump(c, (int)left);
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

/* ---- acknowledgements ------------------------------------------------- */

/* A request just written whose OK carries a u32 (ACK, NACK, PUBLISH): with
 * QUIET nothing is waited for; else wait and store the u32 in *out. */
int mqc_finish_u32(mq_conn *c, uint32_t tag, unsigned flags,
                   uint32_t *out)
{
	struct mqd_frame f;
	union mqd_payload p;
	int rc;

	if (flags & MQ_QUIET) {
		mqc_quiet_request(c);
		return mqc_quiet_done(c);
	}
	rc = mqc_expect_ok(c, tag, 4, &f, &p);
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
	int rc = mqc_usable(c);

	if (rc != 0)
		return rc;
	if ((ids == NULL && n > 0) || (flags & ~(unsigned)MQ_QUIET))
		return MQ_ERR_INVALID;
	if (n == 0) {
		if (count != NULL && !(flags & MQ_QUIET))
			*count = 0;
		return 0;
	}
	tag = mqc_new_tag(c);
	start = c->out.len;
	mqd_enc_ack(&c->out, op, (uint8_t)flags, tag, requeue ? 1 : 0,
	            delay_ms, ids, n);
	rc = mqc_enc_check(c, start);
	if (rc != 0)
		return rc;
	return mqc_finish_u32(c, tag, flags, count);
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
