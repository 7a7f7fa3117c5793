/*
 * Connections: reading frames, ordering replies, backpressure, and the
 * close protocol.
 *
 * Close protocol.  A connection may have state on several owners (held
 * messages, consumers, waiting GETs) and requests in flight to them.  When
 * its socket closes, the home worker sends CLOSE to every owner it ever
 * routed a request to; each owner forgets the connection and answers
 * CLOSE_DONE.  Mailboxes keep per-sender order, so when the last CLOSE_DONE
 * arrives every reply and pushed frame those owners sent is already here:
 * only then is the struct freed.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/clock.h"
#include "core/log.h"
#include "net/conn.h"
#include "net/dispatch.h"
#include "store/message.h"

#define FIFO_PAUSE 4096 /* pending requests before reading stops */
#define OUTPUT_COPY_MAX 4096 /* pushed frames up to this are copied */
#define FIFO_RESUME 1024
#define DRAIN_TIMEOUT_S 5 /* a closing ERROR gets this long to be read */

static void close_now(struct mqd_conn *c);
static void process_input(struct mqd_conn *c);

static bool bit_get(const uint64_t *b, unsigned i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

void mqd_conn_touch(struct mqd_conn *c, unsigned owner)
{
	c->touched[owner / 64] |= 1ULL << (owner % 64);
}

/* ---- requests -------------------------------------------------------- */

/*
 * Request slots with room for up to SPARE_EXTRA payload bytes (SEND, GET,
 * ACK of a few ids...) are recycled through their home worker's spare
 * list instead of going back to malloc.  Besides sparing a malloc and a
 * free per request, this keeps a pipelined burst of SENDs from leaving
 * request-sized holes between the messages it stores: the messages it
 * would carve out of them leave unusable remainders, which cost a long
 * backlog several bytes per message.
 */
#define SPARE_EXTRA 64
#define SPARE_MAX FIFO_PAUSE /* one connection's worth of pipelining */

static struct mqd_req *req_alloc(struct mqd_conn *c, size_t extra)
{
	struct mqd_home *h = c->home;
	struct mqd_req *r;

	if (extra <= SPARE_EXTRA && h->req_spare != NULL) {
		r = h->req_spare;
		h->req_spare = r->fifo_next;
		h->nreq_spare--;
	} else {
		r = malloc(sizeof *r + (extra <= SPARE_EXTRA ? SPARE_EXTRA : extra));
	}
	if (r == NULL)
		return NULL;
	memset(r, 0, sizeof *r);
	r->mail.type = MQD_MAIL_REQ;
	r->conn = c;
	r->conn_id = c->id;
	r->home = c->home->index;
	r->frame_len = extra;
	mqd_wbuf_init(&r->reply);
	return r;
}

struct mqd_req *mqd_req_new(struct mqd_conn *c, const struct mqd_frame *f,
                            size_t extra)
{
	struct mqd_req *r = req_alloc(c, extra);

	if (r == NULL)
		return NULL;
	if (f) {
		r->op = f->op;
		r->flags = f->flags;
		r->tag = f->tag;
	}
	if (c->fifo_tail)
		c->fifo_tail->fifo_next = r;
	else
		c->fifo_head = r;
	c->fifo_tail = r;
	c->fifo_len++;
	return r;
}

struct mqd_req *mqd_req_part(struct mqd_req *parent, size_t extra)
{
	struct mqd_req *r = req_alloc(parent->conn, extra);

	if (r == NULL)
		return NULL;
	r->op = parent->op;
	r->flags = parent->flags;
	r->tag = parent->tag;
	r->parent = parent;
	parent->parts++;
	return r;
}

void mqd_req_free(struct mqd_req *r)
{
	struct mqd_home *h;

	if (r == NULL)
		return;
	if (r->msg)
		mqd_msg_free(r->msg);
	mqd_wbuf_free(&r->reply);
	h = r->conn->home;
	if (r->frame_len <= SPARE_EXTRA && h->nreq_spare < SPARE_MAX) {
		r->fifo_next = h->req_spare;
		h->req_spare = r;
		h->nreq_spare++;
		return;
	}
	free(r);
}

void mqd_conn_free_spares(struct mqd_home *h)
{
	while (h->req_spare != NULL) {
		struct mqd_req *r = h->req_spare;
		h->req_spare = r->fifo_next;
		free(r);
	}
	h->nreq_spare = 0;
}

/* ---- output ---------------------------------------------------------- */

static struct evbuffer *out_buf(struct mqd_conn *c)
{
	return bufferevent_get_output(c->bev);
}

static bool writable(const struct mqd_conn *c)
{
	return c->bev != NULL &&
	       (c->state == MQD_CONN_HELLO || c->state == MQD_CONN_OPEN ||
	        c->state == MQD_CONN_DRAIN);
}

static void maybe_resume(struct mqd_conn *c)
{
	if (!c->read_paused || c->state != MQD_CONN_OPEN)
		return;
	if (c->fifo_len > FIFO_RESUME ||
	    evbuffer_get_length(out_buf(c)) > MQD_OUTPUT_HIGH / 2)
		return;
	c->read_paused = false;
	bufferevent_enable(c->bev, EV_READ);
	/* Frames already buffered would not trigger a read: run them soon. */
	bufferevent_trigger(c->bev, EV_READ,
	                    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void flush_fifo(struct mqd_conn *c)
{
	struct mqd_req *r;

	while ((r = c->fifo_head) != NULL && r->done) {
		c->fifo_head = r->fifo_next;
		if (c->fifo_head == NULL)
			c->fifo_tail = NULL;
		c->fifo_len--;
		if (r->pushed)
			c->pushed_bytes -= r->reply.len;
		if (r->op == MQD_OP_CONSUME && r->reply.len > 4 &&
		    r->reply.data[4] == MQD_OP_OK) {
			struct mqd_conn_consumer *cc =
				mqd_conn_find_consumer(c, r->tag);
			if (cc)
				cc->ok_out = true;
		}
		if (writable(c) && !r->quiet_ok &&
		    (r->reply.oom || r->reply.len > 0)) {
			/* An answer that could not be built or queued must
			 * not just vanish: the client would wait for it for
			 * ever.  Tell it and close instead. */
			if (r->reply.oom ||
			    evbuffer_add(out_buf(c), r->reply.data,
			                 r->reply.len) < 0) {
				mqd_req_free(r);
				mqd_conn_fatal(c, 0, MQD_ERR_INTERNAL,
				               "out of memory");
				continue;
			}
			c->bytes_out += r->reply.len;
		}
		mqd_req_free(r);
	}
	if (c->state == MQD_CONN_DRAIN && c->fifo_head == NULL &&
	    evbuffer_get_length(out_buf(c)) == 0)
		close_now(c);
	else
		maybe_resume(c);
}

void mqd_conn_req_done(struct mqd_req *r)
{
	struct mqd_conn *c = r->conn;

	if (r->parent) {
		struct mqd_req *p = r->parent;
		p->count += r->count;
		/* The first part that failed answers for the whole. */
		if (r->reply.len > 4 && r->reply.data[4] == MQD_OP_ERROR &&
		    p->reply.len == 0)
			mqd_w_bytes(&p->reply, r->reply.data, r->reply.len);
		mqd_req_free(r);
		if (--p->parts > 0)
			return;
		r = p;
		if (r->reply.len > 0)
			;
		else if (r->flags & MQD_F_QUIET)
			r->quiet_ok = true;
		else if (r->op == MQD_OP_ACK || r->op == MQD_OP_NACK)
			mqd_enc_ok_u32(&r->reply, r->tag, r->count);
		else
			mqd_enc_ok(&r->reply, r->tag);
	}
	/* A refused CONSUME leaves no consumer behind. */
	if (r->op == MQD_OP_CONSUME && r->reply.len > 4 &&
	    r->reply.data[4] == MQD_OP_ERROR)
		mqd_conn_forget_consumer(c, r->tag);
	r->done = true;
	flush_fifo(c);
}

void mqd_conn_req_error(struct mqd_req *r, int code, const char *msg)
{
	mqd_wbuf_reset(&r->reply);
	mqd_enc_error(&r->reply, r->tag, (uint16_t)code, msg);
	r->done = true;
	flush_fifo(r->conn);
}

void mqd_conn_fatal(struct mqd_conn *c, uint32_t tag, int code,
                    const char *msg)
{
	struct mqd_req *r;
	struct timeval tv = {DRAIN_TIMEOUT_S, 0};

	if (!writable(c) || c->state == MQD_CONN_DRAIN)
		return;
	mqd_log_info("conn %llu (%s): closing: %s: %s", (unsigned long long)c->id,
	             c->peer, mqd_err_name(code), msg);
	c->state = MQD_CONN_DRAIN;
	/* The bufferevent writes from now on: its write callback closes the
	 * connection once the ERROR is out, its timeout if it never goes. */
	bufferevent_enable(c->bev, EV_WRITE);
	bufferevent_disable(c->bev, EV_READ);
	evbuffer_drain(bufferevent_get_input(c->bev),
	               evbuffer_get_length(bufferevent_get_input(c->bev)));
	bufferevent_set_timeouts(c->bev, NULL, &tv);
	r = mqd_req_new(c, NULL, 0);
	if (r == NULL) {
		close_now(c);
		return;
	}
	r->tag = tag;
	mqd_enc_error(&r->reply, tag, (uint16_t)code, msg);
	r->done = true;
	flush_fifo(c);
}

static void send_credit(struct mqd_conn *c, unsigned owner, uint32_t tag,
                        uint32_t n)
{
	struct mqd_home *h = c->home;
	struct mqd_mail_credit *m;

	m = malloc(sizeof *m);
	if (m == NULL) {
		/* The consumer's window shrinks by n; it keeps flowing while
		 * any credit is left, and a reconnect restores it. */
		mqd_log_error("conn %llu: out of memory returning credit",
		              (unsigned long long)c->id);
		return;
	}
	m->mail.type = MQD_MAIL_CREDIT;
	m->conn_id = c->id;
	m->tag = tag;
	m->n = n;
	/* On this worker the owner takes it at once. */
	mqd_mail_send(h->router, h->index, owner, &m->mail);
}

static void release_withheld(struct mqd_conn *c)
{
	if (!c->withholding)
		return;
	c->withholding = false;
	for (struct mqd_conn_consumer *cc = c->consumers; cc; cc = cc->next) {
		if (cc->withheld) {
			send_credit(c, cc->owner, cc->tag, cc->withheld);
			cc->withheld = 0;
		}
	}
}

static void output_free_cb(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	free(arg);
}

static void shared_free_cb(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	mqd_shared_unref(arg);
}

/* A published message for subscription o->tag: dropped when the
 * subscription is gone (or was replaced) or the subscriber is too far
 * behind; else written, the shared payload by reference. */
static void output_published(struct mqd_conn *c, struct mqd_mail_output *o)
{
	struct mqd_conn_sub *cs = mqd_conn_find_sub(c, o->tag);
	struct mqd_shared *sh = o->shared;
	struct evbuffer *out;

	if (!writable(c) || c->state == MQD_CONN_DRAIN || cs == NULL ||
	    cs->sub_id != o->sub_id)
		goto drop;
	out = out_buf(c);
	/* Unsent output: in the socket's buffer, and held behind a pending
	 * reply (a GET that waits). */
	if (evbuffer_get_length(out) + c->pushed_bytes >
	    c->home->cfg->slow_consumer_bytes) {
		c->dropped_slow += o->frames ? o->frames : 1;
		goto drop;
	}
	if (c->fifo_head != NULL) {
		/* Behind a pending reply: keep order through the FIFO. */
		struct mqd_req *r = mqd_req_new(c, NULL, 0);
		if (r == NULL)
			goto drop;
		mqd_w_bytes(&r->reply, o->data, o->len);
		if (sh)
			mqd_w_bytes(&r->reply, sh->data, sh->len);
		r->done = true;
		r->pushed = true;
		c->pushed_bytes += r->reply.len;
	} else if (evbuffer_add(out, o->data, o->len) < 0 ||
	           (sh && evbuffer_add_reference(out, sh->data, sh->len,
	                                         shared_free_cb, sh) < 0)) {
		goto drop;
	} else {
		sh = NULL; /* the buffer holds our reference now */
	}
	c->bytes_out += o->len + (o->shared ? o->shared->len : 0);
drop:
	mqd_shared_unref(sh);
	free(o);
}

void mqd_conn_output(struct mqd_conn *c, struct mqd_mail_output *o)
{
	struct mqd_conn_consumer *cc;
	uint32_t credit = o->credit;

	if (o->sub_id != 0) {
		output_published(c, o);
		return;
	}
	cc = mqd_conn_find_consumer(c, o->tag);

	if (o->cancelled)
		mqd_conn_forget_consumer(c, o->tag);
	if (!writable(c) || c->state == MQD_CONN_DRAIN) {
		free(o);
		return;
	}
	c->bytes_out += o->len;
	if (c->fifo_head == NULL ||
	    (cc != NULL && cc->ok_out && c->pushed_bytes == 0)) {
		/* Small frames are copied into the buffer's free space: cheaper
		 * than a reference, which costs a chain allocation each. */
		int rc = o->len <= OUTPUT_COPY_MAX
		         ? evbuffer_add(out_buf(c), o->data, o->len)
		         : evbuffer_add_reference(out_buf(c), o->data, o->len,
		                                  output_free_cb, o);
		if (o->len <= OUTPUT_COPY_MAX || rc < 0)
			free(o);
		if (rc < 0) {
			mqd_conn_fatal(c, 0, MQD_ERR_INTERNAL, "out of memory");
			return;
		}
	} else {
		/* Behind a pending reply: keep order through the FIFO. */
		struct mqd_req *r = mqd_req_new(c, NULL, 0);
		if (r != NULL)
			mqd_w_bytes(&r->reply, o->data, o->len);
		free(o);
		if (r == NULL) {
			mqd_conn_fatal(c, 0, MQD_ERR_INTERNAL, "out of memory");
			return;
		}
		r->done = true;
		r->pushed = true;
		c->pushed_bytes += r->reply.len;
	}
	if (credit == 0 || cc == NULL)
		return;
	/* Returned once this mailbox pass is over (one mail for many
	 * deliveries), or when the output drains if it is too full now. */
	cc->withheld += credit;
	c->withholding = true;
	if (!c->credit_queued &&
	    evbuffer_get_length(out_buf(c)) <= MQD_OUTPUT_HIGH) {
		c->credit_queued = true;
		c->credit_next = c->home->credit_list;
		c->home->credit_list = c;
	}
}

void mqd_conn_release_credits(struct mqd_home *h)
{
	struct mqd_conn *c;

	while ((c = h->credit_list) != NULL) {
		h->credit_list = c->credit_next;
		c->credit_queued = false;
		c->credit_next = NULL;
		if (writable(c) &&
		    evbuffer_get_length(out_buf(c)) <= MQD_OUTPUT_HIGH)
			release_withheld(c);
	}
}

/* ---- consumers ------------------------------------------------------- */

/*
 * Consumers and subscriptions are found by tag on every delivery, and a
 * connection may hold thousands (one per queue): the lists keep their
 * order for walking, and an id map (key tag + 1, as 0 means empty) finds one
 * in O(1).  The map is only allocated once a connection has a consumer.
 */
struct mqd_conn_consumer *mqd_conn_find_consumer(struct mqd_conn *c,
                                                 uint32_t tag)
{
	return mqd_idmap_get(&c->consumer_tags, (uint64_t)tag + 1);
}

int mqd_conn_add_consumer(struct mqd_conn *c, struct mqd_conn_consumer *cc)
{
	if (mqd_idmap_put(&c->consumer_tags, (uint64_t)cc->tag + 1, cc) < 0)
		return -1;
	cc->next = c->consumers;
	c->consumers = cc;
	return 0;
}

void mqd_conn_forget_consumer(struct mqd_conn *c, uint32_t tag)
{
	if (mqd_idmap_del(&c->consumer_tags, (uint64_t)tag + 1) == NULL)
		return;
	for (struct mqd_conn_consumer **pp = &c->consumers; *pp;
	     pp = &(*pp)->next) {
		if ((*pp)->tag == tag) {
			struct mqd_conn_consumer *cc = *pp;
			*pp = cc->next;
			free(cc);
			return;
		}
	}
}

struct mqd_conn_sub *mqd_conn_find_sub(struct mqd_conn *c, uint32_t tag)
{
	return mqd_idmap_get(&c->sub_tags, (uint64_t)tag + 1);
}

int mqd_conn_add_sub(struct mqd_conn *c, struct mqd_conn_sub *cs)
{
	if (mqd_idmap_put(&c->sub_tags, (uint64_t)cs->tag + 1, cs) < 0)
		return -1;
	cs->next = c->subs;
	c->subs = cs;
	return 0;
}

void mqd_conn_forget_sub(struct mqd_conn *c, uint32_t tag)
{
	if (mqd_idmap_del(&c->sub_tags, (uint64_t)tag + 1) == NULL)
		return;
	for (struct mqd_conn_sub **pp = &c->subs; *pp; pp = &(*pp)->next) {
		if ((*pp)->tag == tag) {
			struct mqd_conn_sub *cs = *pp;
			*pp = cs->next;
			free(cs);
			return;
		}
	}
}

/* ---- input ----------------------------------------------------------- */

static void process_input(struct mqd_conn *c)
{
	uint32_t max_frame = c->home->cfg->max_frame;

	while (c->bev != NULL && !c->read_paused &&
	       (c->state == MQD_CONN_HELLO || c->state == MQD_CONN_OPEN)) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		size_t n = evbuffer_get_length(in), size, need;
		uint8_t hdr[MQD_FRAME_HDR_SIZE];
		struct mqd_frame f;
		int rc;

		if (n < MQD_FRAME_LEN_SIZE)
			return;
		evbuffer_copyout(in, hdr, n < sizeof hdr ? n : sizeof hdr);
		rc = mqd_frame_decode(hdr, n < sizeof hdr ? n : sizeof hdr,
		                      max_frame, &f, &size, &need);
		if (rc < 0) {
			mqd_conn_fatal(c, 0, -rc,
			               rc == -MQD_ERR_FRAME_TOO_LARGE
			                       ? "frame larger than max_frame"
			                       : "frame length below 6");
			return;
		}
		if (rc == 0 && (need == 0 || n < need))
			return;
		if (rc == 0)
			size = need;
		const uint8_t *p = evbuffer_pullup(in, (ssize_t)size);
		if (p == NULL ||
		    mqd_frame_decode(p, size, max_frame, &f, &size, NULL) != 1) {
			mqd_conn_fatal(c, 0, MQD_ERR_INTERNAL, "out of memory");
			return;
		}
		c->bytes_in += size;
		c->home->frames++;
		mqd_dispatch_frame(c, &f);
		if (c->bev != NULL)
			evbuffer_drain(in, size);
		if (c->state == MQD_CONN_OPEN &&
		    (c->fifo_len > FIFO_PAUSE ||
		     evbuffer_get_length(out_buf(c)) > MQD_OUTPUT_HIGH)) {
			c->read_paused = true;
			bufferevent_disable(c->bev, EV_READ);
		}
	}
}

/*
 * The timeouts the idle check runs on: idle_ms, or what is left of it when
 * the last one fired before the connection had been quiet that long.  The
 * read timeout ticks while reading is on; the write timeout while output
 * waits for a full socket, which covers a client that pipelined requests,
 * stopped reading the replies and went quiet (reading is paused then, so
 * no read timeout runs).
 */
static void set_idle_timeout(struct mqd_conn *c, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000),
	                     (suseconds_t)(ms % 1000) * 1000};

	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct mqd_conn *c = arg;

	(void)bev;
	c->last_active_ms = mqd_mono_ms();
	if (c->idle_short) {
		/* A read re-arms the timeout: for the whole period again. */
		c->idle_short = false;
		set_idle_timeout(c, c->idle_ms);
	}
	process_input(c);
}

/* Everything queued is written: what waited for room may go on. */
static void output_drained(struct mqd_conn *c)
{
	c->last_active_ms = mqd_mono_ms();
	release_withheld(c);
	maybe_resume(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct mqd_conn *c = arg;

	if (c->state == MQD_CONN_DRAIN) {
		c->last_active_ms = mqd_mono_ms();
		if (c->fifo_head == NULL)
			close_now(c);
		return;
	}
	if (c->direct_write)
		bufferevent_disable(bev, EV_WRITE); /* the socket has room again */
	output_drained(c);
}

/*
 * Write what the output buffer holds, as far as the socket takes it.  A
 * socket bufferevent keeps the start of its output buffer frozen (only it
 * may remove data); it thaws it around its own writes the same way.
 */
static int write_out(struct mqd_conn *c)
{
	struct evbuffer *out = out_buf(c);
	int rc;

	evbuffer_unfreeze(out, 1);
	rc = evbuffer_write(out, bufferevent_getfd(c->bev));
	evbuffer_freeze(out, 1);
	return rc;
}

/* Output was added: write it at the end of this pass (direct_write). */
static void out_added_cb(struct evbuffer *buf,
                         const struct evbuffer_cb_info *info, void *arg)
{
	struct mqd_conn *c = arg;
	struct mqd_home *h = c->home;

	(void)buf;
	if (info->n_deleted > 0) /* written: the client reads, not idle */
		c->last_active_ms = mqd_mono_ms();
	if (info->n_added == 0 || c->write_queued || c->bev == NULL ||
	    (bufferevent_get_enabled(c->bev) & EV_WRITE))
		return;
	c->write_queued = true;
	c->write_next = h->write_list;
	if (h->write_list == NULL)
		event_active(h->write_ev, EV_TIMEOUT, 0);
	h->write_list = c;
}

void mqd_conn_write_pending(struct mqd_home *h)
{
	struct mqd_conn *c;

	while ((c = h->write_list) != NULL) {
		h->write_list = c->write_next;
		c->write_queued = false;
		c->write_next = NULL;
		if (c->bev == NULL || (bufferevent_get_enabled(c->bev) & EV_WRITE))
			continue;
		struct evbuffer *out = out_buf(c);
		int rc = write_out(c);
		if (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR) {
			/* The bufferevent meets the error and reports it. */
			bufferevent_enable(c->bev, EV_WRITE);
			continue;
		}
		if (evbuffer_get_length(out) > 0) /* the socket is full */
			bufferevent_enable(c->bev, EV_WRITE);
		else
			output_drained(c);
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct mqd_conn *c = arg;
	uint64_t idle = c->idle_ms;

	if ((what & BEV_EVENT_TIMEOUT) && c->state != MQD_CONN_DRAIN) {
		/* Idle means nothing read or written for idle_timeout.  A
		 * timeout runs from the time libevent's loop woke (a little
		 * before read_cb noted the activity) and a read timeout is
		 * not reset by writes, so it may fire before the connection
		 * has been quiet for idle_timeout: wait only for what is left,
		 * not for a whole period more (which let idle connections
		 * live up to twice idle_timeout).  libevent turned off the
		 * side that timed out; it goes back on. */
		uint64_t quiet = mqd_mono_ms() - c->last_active_ms;
		int waiting = 0;
		/* Bytes that came in while this loop pass ran the timeout
		 * before the read (a busy worker) are activity too. */
		if (quiet >= idle && (what & BEV_EVENT_READING) &&
		    ioctl(bufferevent_getfd(bev), FIONREAD, &waiting) == 0 &&
		    waiting > 0) {
			c->last_active_ms = mqd_mono_ms();
			quiet = 0;
		}
		if (quiet < idle) {
			set_idle_timeout(c, idle - quiet);
			c->idle_short = true;
			bufferevent_enable(bev, (what & BEV_EVENT_READING)
			                        ? EV_READ : EV_WRITE);
			return;
		}
		mqd_log_info("conn %llu (%s): idle for %llu ms, closing",
		             (unsigned long long)c->id, c->peer,
		             (unsigned long long)idle);
	} else if (what & BEV_EVENT_ERROR) {
		mqd_log_debug("conn %llu (%s): socket error: %s",
		              (unsigned long long)c->id, c->peer,
		              evutil_socket_error_to_string(
		                      EVUTIL_SOCKET_ERROR()));
	}
	close_now(c);
}

/* ---- lifecycle ------------------------------------------------------- */

static void free_bev(struct mqd_conn *c);

void mqd_conn_accept(struct mqd_home *h, int fd, const char *peer,
                     bool over_limit)
{
	struct mqd_conn *c = calloc(1, sizeof *c);
	int one = 1;
	uint64_t idle = h->cfg->idle_timeout_ms;

	if (c == NULL) {
		evutil_closesocket(fd);
		atomic_fetch_sub(&h->counters->nconns, 1);
		mqd_log_error("out of memory accepting a connection from %s",
		              peer);
		return;
	}
	/* Not BEV_OPT_CLOSE_ON_FREE: free_bev closes the socket itself. */
	c->bev = bufferevent_socket_new(h->base, fd, 0);
	if (c->bev == NULL) {
		evutil_closesocket(fd);
		atomic_fetch_sub(&h->counters->nconns, 1);
		free(c);
		return;
	}
	atomic_fetch_add(&h->counters->live_conns, 1);
	c->home = h;
	c->id = atomic_fetch_add(&h->counters->next_conn_id, 1);
	c->over_limit = over_limit;
	c->state = MQD_CONN_HELLO;
	snprintf(c->peer, sizeof c->peer, "%s", peer);
	c->created_ms = mqd_now_ms();
	c->last_active_ms = mqd_mono_ms();
	c->idle_ms = idle; /* a reload changes it for new connections only */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	if (idle)
		set_idle_timeout(c, idle);
	if (bufferevent_enable(c->bev, EV_READ) < 0) {
		/* A connection nobody reads would leave its client waiting
		 * for ever: refuse it now. */
		mqd_log_error("out of memory accepting a connection from %s",
		              peer);
		free_bev(c); /* and the socket, as every close does */
		free(c);
		atomic_fetch_sub(&h->counters->live_conns, 1);
		atomic_fetch_sub(&h->counters->nconns, 1);
		return;
	}
	c->direct_write = true;
	bufferevent_disable(c->bev, EV_WRITE);
	if (evbuffer_add_cb(out_buf(c), out_added_cb, c) == NULL) {
		c->direct_write = false;
		bufferevent_enable(c->bev, EV_WRITE);
	}
	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	h->nconns++;
	mqd_log_debug("conn %llu (%s): accepted on worker %u",
	              (unsigned long long)c->id, c->peer, h->index);
}

static void conn_free(struct mqd_conn *c)
{
	struct mqd_home *h = c->home;
	struct mqd_req *r;

	while ((r = c->fifo_head) != NULL) {
		c->fifo_head = r->fifo_next;
		mqd_req_free(r);
	}
	while (c->consumers)
		mqd_conn_forget_consumer(c, c->consumers->tag);
	while (c->subs)
		mqd_conn_forget_sub(c, c->subs->tag);
	mqd_idmap_free(&c->consumer_tags);
	mqd_idmap_free(&c->sub_tags);
	if (c->credit_queued) {
		struct mqd_conn **pp = &h->credit_list;
		while (*pp != c)
			pp = &(*pp)->credit_next;
		*pp = c->credit_next;
	}
	if (c->write_queued) {
		struct mqd_conn **pp = &h->write_list;
		while (*pp != c)
			pp = &(*pp)->write_next;
		*pp = c->write_next;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->nconns--;
	mqd_log_debug("conn %llu: freed", (unsigned long long)c->id);
	free(c);
	atomic_fetch_sub(&h->counters->live_conns, 1);
}

/*
 * Connections to free once the current callback is over, and connections
 * whose close protocol ran out of memory and must be tried again: both on
 * lists of the home, served by events made when the worker started, so that
 * neither needs an allocation (a close that cannot free its connection
 * would keep the server from ever stopping).
 */
static void free_later(struct mqd_conn *c)
{
	struct mqd_home *h = c->home;

	if (c->reap_queued)
		return;
	if (c->retry_queued) { /* closed after all: no retry left to do */
		struct mqd_conn **pp = &h->retry_list;
		while (*pp != c)
			pp = &(*pp)->retry_next;
		*pp = c->retry_next;
		c->retry_queued = false;
	}
	c->reap_queued = true;
	c->reap_next = h->reap_list;
	h->reap_list = c;
	event_active(h->reap_ev, EV_TIMEOUT, 0);
}

static void close_protocol(struct mqd_conn *c);

static void retry_later(struct mqd_conn *c)
{
	struct mqd_home *h = c->home;
	struct timeval soon = {0, 10000};

	if (c->retry_queued)
		return;
	c->retry_queued = true;
	c->retry_next = h->retry_list;
	h->retry_list = c;
	if (evtimer_add(h->retry_ev, &soon) < 0)
		event_active(h->retry_ev, EV_TIMEOUT, 0);
}

void mqd_conn_reap_cb(int fd, short what, void *arg)
{
	struct mqd_home *h = arg;
	struct mqd_conn *c;

	(void)fd;
	(void)what;
	while ((c = h->reap_list) != NULL) {
		h->reap_list = c->reap_next;
		conn_free(c);
	}
}

void mqd_conn_retry_cb(int fd, short what, void *arg)
{
	struct mqd_home *h = arg;
	struct mqd_conn *list = h->retry_list, *c;

	(void)fd;
	(void)what;
	h->retry_list = NULL;
	while ((c = list) != NULL) {
		list = c->retry_next;
		c->retry_queued = false;
		close_protocol(c);
	}
}

/* Send CLOSE to every owner not yet told; restartable after a failed
 * allocation. */
static void close_protocol(struct mqd_conn *c)
{
	struct mqd_home *h = c->home;

	for (unsigned i = 0; i < h->nworkers; i++) {
		if (!bit_get(c->touched, i))
			continue;
		/* This worker too gets its CLOSE through the mailbox: its
		 * answer may have to wait (see mqd_ops_peer_closed). */
		struct mqd_mail_close *m = malloc(sizeof *m);
		if (m == NULL) {
			mqd_log_error("conn %llu: out of memory closing; retrying",
			              (unsigned long long)c->id);
			retry_later(c);
			return;
		}
		c->touched[i / 64] &= ~(1ULL << (i % 64));
		m->mail.type = MQD_MAIL_CLOSE;
		m->conn = c;
		m->conn_id = c->id;
		m->home = h->index;
		m->from = i;
		c->close_pending++;
		mqd_mail_post(h->router, i, &m->mail);
	}
	if (c->close_pending == 0)
		free_later(c); /* not from inside a callback that may use c */
}

static void close_fd_cb(evutil_socket_t unused, short what, void *arg)
{
	(void)unused;
	(void)what;
	evutil_closesocket((evutil_socket_t)(intptr_t)arg);
}

/*
 * Free c's bufferevent and close its socket, a loop pass apart.  With the
 * change list (worker.c, new_base) deleting the socket's events only
 * records an EPOLL_CTL_DEL, made at this worker's next epoll_dispatch.
 * Were the socket closed before that, as BEV_OPT_CLOSE_ON_FREE does
 * (libevent closes it as soon as the bufferevent is finalized), the main
 * thread's next accept4 could take its number first: this worker would
 * then make a system call on a descriptor that is now another
 * connection's.  Harmless (the new socket is in no epoll set of ours, so
 * the DEL fails with ENOENT, or EBADF if the number is free, and libevent
 * ignores both) but a race on the descriptor all the same, which
 * ThreadSanitizer reports.  So: the events are deleted now (the disable;
 * bufferevent_free alone would wait for a callback still holding the
 * bufferevent, maybe into the next pass), and the socket is closed by a
 * timer, which libevent runs only after its next epoll_dispatch, and that
 * applies the change list first: the number is given back only once no
 * change for it is left.  The timer is 1 us, not 0: event_base_once runs
 * a zero timeout in this very pass, before any dispatch.
 */
static void free_bev(struct mqd_conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	struct timeval next_pass = {0, 1};

	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_free(c->bev);
	c->bev = NULL;
	if (fd >= 0 && event_base_once(c->home->base, -1, EV_TIMEOUT,
	                               close_fd_cb, (void *)(intptr_t)fd,
	                               &next_pass) < 0)
		evutil_closesocket(fd); /* out of memory: see above, harmless */
}

static void close_now(struct mqd_conn *c)
{
	if (c->state == MQD_CONN_CLOSED)
		return;
	mqd_log_debug("conn %llu (%s): closed", (unsigned long long)c->id,
	              c->peer);
	c->state = MQD_CONN_CLOSED;
	if (c->bev) {
		free_bev(c);
		atomic_fetch_sub(&c->home->counters->nconns, 1);
	}
	close_protocol(c);
}

void mqd_conn_close_done(struct mqd_conn *c)
{
	if (--c->close_pending == 0 && c->state == MQD_CONN_CLOSED)
		close_protocol(c);
}

bool mqd_conn_info(const struct mqd_conn *c, struct mqd_conn_info *out)
{
	unsigned n = 0;

	if (c->state == MQD_CONN_CLOSED)
		return false;
	if (out == NULL)
		return true;
	memset(out, 0, sizeof *out);
	out->id = c->id;
	out->worker = c->home->index;
	snprintf(out->peer, sizeof out->peer, "%s", c->peer);
	snprintf(out->client, sizeof out->client, "%s", c->client);
	snprintf(out->user, sizeof out->user, "%s", c->user);
	out->age_ms = mqd_now_ms() - c->created_ms;
	for (const struct mqd_conn_consumer *cc = c->consumers; cc; cc = cc->next)
		n++;
	out->consumers = n;
	n = 0;
	for (const struct mqd_conn_sub *cs = c->subs; cs; cs = cs->next)
		n++;
	out->subscriptions = n;
	out->dropped = c->dropped_slow;
	out->bytes_in = c->bytes_in;
	out->bytes_out = c->bytes_out;
	return true;
}

void mqd_conn_kill(struct mqd_conn *c)
{
	mqd_log_info("conn %llu (%s): closed by an operator",
	             (unsigned long long)c->id, c->peer);
	close_now(c);
}

void mqd_conn_shutdown(struct mqd_conn *c)
{
	struct mqd_wbuf b;

	if (c->bev == NULL) /* already closing */
		return;
	mqd_wbuf_init(&b);
	mqd_enc_error(&b, 0, MQD_ERR_SHUTTING_DOWN, "server shutting down");
	if (!b.oom) {
		/* One non-blocking attempt: shutdown does not wait for slow
		 * readers. */
		evbuffer_add(out_buf(c), b.data, b.len);
		(void)write_out(c);
	}
	mqd_wbuf_free(&b);
	close_now(c);
}
