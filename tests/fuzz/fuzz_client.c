/*
 * Fuzz target "client": libmq's side of a connection, what it does with
 * the frames a server sends (src/client/io.c: reading, cutting frames,
 * sorting replies, deliveries and errors; message.c: boxing messages and
 * finding their headers; the callers that check what a reply carries).
 *
 * The input is everything "the server" says on one connection.  It is
 * written into one end of a socketpair, whose sending side is then shut,
 * and libmq reads the other end through its public calls, in a fixed
 * order, as an application would: DECLARE (its reply is tag 1), GET (2),
 * CONSUME (3), SUBSCRIBE (4), PUBLISH (5), PING (6), a quiet SEND (7), a
 * sync (8), PURGE (9), DELETE (10), BIND (11) and CANCEL (12); then, if
 * the GET brought a message, a reply to it and its ACK; then two requests
 * (mq_request); then mq_next until the stream ends.  The seeds (tests/fuzz/mkcorpus.c) answer that script; the fuzzer
 * takes it from there.  The connection is built as mq_connect builds it,
 * WELCOME already read (with the default max_frame): that handshake's
 * frame is the proto target's.
 *
 * Every call must return (the end of the stream ends every wait), nothing
 * may crash, leak or read outside what was received (each message handed
 * out has its headers looked up and its body read in full), and nothing
 * received may be left unsorted when the stream ends (check_all_read).
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/internal.h"
#include "fuzz/fuzz.h"
#include "mq/mq.h"
#include "proto/proto.h"

#define NEXT_MAX 64 /* mq_next calls at the end */

static volatile uint8_t sink; /* so that reads are not optimized away */

static void touch(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t x = 0;

	for (size_t i = 0; i < n; i++)
		x ^= b[i];
	sink = x;
}

/* Read all of a message the library handed out. */
static void inspect(const struct mq_message *m)
{
	static const char *const keys[] = {
		"reply-to", "correlation-id", "x-dead-reason", "x-dead-from",
		"k",
	};
	const char *v;
	int n;

	FUZZ_CHECK(memchr(m->source, '\0', sizeof m->source) != NULL);
	touch(m->body, m->body_len);
	touch(m->headers, m->headers_len);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		n = mq_message_header(m, keys[i], &v);
		FUZZ_CHECK(n >= -1);
		if (n > 0)
			touch(v, (size_t)n);
	}
}

static struct mq_conn *conn_new(int fd)
{
	struct mq_conn *c = calloc(1, sizeof *c);

	FUZZ_CHECK(c != NULL);
	c->fd = fd;
	c->next_tag = 1;
	c->max_frame = 1024u * 1024u; /* conn.c's DEFAULT_MAX_FRAME */
	mqd_wbuf_init(&c->out);
	return c;
}

/* As much of the input as the socket takes without a reader. */
static void feed(int fd, const uint8_t *data, size_t size)
{
	size_t off = 0;
	ssize_t n;

	FUZZ_CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
	while (off < size) {
		n = send(fd, data + off, size - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	FUZZ_CHECK(shutdown(fd, SHUT_WR) == 0);
}

/* MQD_FUZZ_TRACE=1 in the environment prints what each call returned,
 * which helps to write a seed that answers the script. */
static int traced(const char *what, int rc)
{
	static int trace = -1;

	if (trace < 0)
		trace = getenv("MQD_FUZZ_TRACE") != NULL;
	if (trace)
		fprintf(stderr, "fuzz_client: %s: %d\n", what, rc);
	return rc;
}

static void script(struct mq_conn *c)
{
	struct mq_message *got = NULL, *m = NULL;
	struct mq_declared d;
	uint32_t ctag = 0, stag = 0, count = 0;
	uint64_t purged = 0;
	int rc;

	if (traced("declare", mq_declare(c, "q", NULL, 0, &d)) == 0)
		FUZZ_CHECK(memchr(d.queue, '\0', sizeof d.queue) != NULL);
	if (traced("get", mq_get(c, "q", 0, 0, &got)) == 0) {
		FUZZ_CHECK(got != NULL);
		inspect(got);
	}
	traced("consume", mq_consume(c, "q", 10, 0, &ctag));
	traced("subscribe", mq_subscribe(c, "t.*", &stag));
	traced("publish", mq_publish(c, "t.x", "p", 1, NULL, 0, &count));
	traced("ping", mq_ping(c));
	traced("send_quiet", mq_send_quiet(c, "q", "s", 1, NULL));
	traced("sync", mq_sync(c));
	(void)mq_quiet_errors(c);
	traced("purge", mq_purge(c, "q", &purged));
	traced("delete", mq_delete(c, "q", MQ_IF_EMPTY));
	traced("bind", mq_bind(c, "q", "t.>"));
	traced("cancel", mq_cancel(c, ctag));
	if (got != NULL) {
		traced("reply", mq_reply(c, got, "r", 1));
		traced("ack", mq_ack(c, &got->id, 1, 0, &count));
		mq_message_free(got);
	}
	for (int i = 0; i < 2; i++) {
		m = NULL;
		if (traced("request", mq_request(c, "q", "x", 1, 1000, &m)) ==
		    0) {
			FUZZ_CHECK(m != NULL);
			inspect(m);
		}
		mq_message_free(m);
	}
	for (int i = 0; i < NEXT_MAX; i++) {
		m = NULL;
		rc = traced("next", mq_next(c, 0, &m));
		if (rc == 0) {
			FUZZ_CHECK(m != NULL);
			inspect(m);
			mq_message_free(m);
		} else if (rc == MQ_ERR_NOT_FOUND) {
			FUZZ_CHECK(m == NULL && mq_cancelled_tag(c) != 0);
		} else {
			break;
		}
	}
	touch(mq_last_error_message(c), strlen(mq_last_error_message(c)));
}

/* Once the stream has ended, whatever libmq received has been sorted: a
 * whole frame still unread in its buffer is a delivery (or the ERROR that
 * says why the server left) that mq_next will never hand out.  Frames may
 * stay unread only behind one that ended the connection: a reply of the
 * wrong kind or a frame that does not parse (those leave words in the
 * error message), or an ERROR that closes it (whose text may be empty, so
 * the last frame sorted is looked at). */
static void check_all_read(const struct mq_conn *c)
{
	struct mqd_frame f;
	union mqd_payload p;
	size_t fsize = 0, at = 0, last = SIZE_MAX;
	uint32_t max = c->max_frame + MQD_FRAME_SLACK;

	if (c->rpos >= c->rlen || c->errmsg[0] != '\0' ||
	    mqd_frame_decode(c->rbuf + c->rpos, c->rlen - c->rpos, max, &f,
	                     &fsize, NULL) != 1)
		return;
	/* The buffer starts at a frame: reading starts at one, and only the
	 * unsorted rest is ever moved to the front. */
	while (at < c->rpos) {
		FUZZ_CHECK(mqd_frame_decode(c->rbuf + at, c->rpos - at, max, &f,
		                            &fsize, NULL) == 1);
		last = at;
		at += fsize;
	}
	if (last != SIZE_MAX) {
		(void)mqd_frame_decode(c->rbuf + last, c->rpos - last, max, &f,
		                       &fsize, NULL);
		if (f.op == MQD_OP_ERROR && mqd_proto_parse(&f, &p, NULL) == 0 &&
		    (f.tag == 0 || mqd_err_closes(p.error.code)))
			return;
	}
	FUZZ_CHECK(!"a whole frame was left unread at the end of the stream");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mq_conn *c;
	int sv[2];

	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	feed(sv[1], data, size);
	c = conn_new(sv[0]);
	script(c);
	check_all_read(c);
	mq_close(c); /* closes sv[0] */
	close(sv[1]);
	return 0;
}
