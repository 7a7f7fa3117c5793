#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * ack_consumer: the consumer process of test_kill.  test_kill SIGKILLs it
 * at random moments and starts another, so it must leave behind, in a
 * file of its own, an exact account of what it got and what it
 * acknowledged, good up to the instant it died:
 *
 *   D seq id attempts   delivered (logged before anything is acked)
 *   S seq id            an ACK for it is about to be sent
 *   A seq id attempts   the broker answered OK to that ACK, counting it
 *   X seq id            a body that failed its check (damaged)
 *   E why               an error; the process exits 1 after it
 *
 * Each batch of lines is one write(2), never buffered in the process, so
 * a SIGKILL loses nothing already logged; a kill in the middle of a write
 * can only leave a last line without its newline, which test_kill
 * ignores.  An S without its A is an ACK whose outcome nobody knows: the
 * process died between sending it and reading the OK.
 *
 * The ACK is sent without QUIET so its OK (with the count of messages the
 * broker found held and removed) is known before the A lines are written.
 * Between the D lines and the S lines it "works" WORK_US microseconds per
 * batch, so that a kill often finds it holding messages it has logged and
 * not yet acknowledged: those must come back, to someone else, with
 * attempts one higher.
 *
 *   MQ_SERVER=127.0.0.1:PORT ack_consumer QUEUE LOG PREFETCH BATCH WORK_US
 *                                         STOPFILE
 *
 * It consumes QUEUE until STOPFILE exists, then exits 0.  Its HELLO
 * client name is "killee-PID", so test_kill can find its connection (and
 * how many messages it holds) in the control socket's connections list.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mq/mq.h"
#include "kill_body.h"

#define BATCH_MAX 256

struct logbuf {
	int fd;
	char buf[BATCH_MAX * 48 + 256];
	size_t len;
};

static void log_add(struct logbuf *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(l->buf + l->len, sizeof l->buf - l->len, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof l->buf - l->len)
		l->len += (size_t)n;
}

/* One write for the whole batch (see the top). */
static int log_flush(struct logbuf *l)
{
	size_t off = 0;

	while (off < l->len) {
		ssize_t w = write(l->fd, l->buf + off, l->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	l->len = 0;
	return 0;
}

static int fail(struct logbuf *l, const char *what, int rc)
{
	l->len = 0;
	log_add(l, "E %s: %s\n", what, mq_strerror(rc));
	(void)log_flush(l);
	fprintf(stderr, "ack_consumer: %s: %s\n", what, mq_strerror(rc));
	return 1;
}

int main(int argc, char **argv)
{
	struct logbuf *l;
	mq_conn *c = NULL;
	struct mq_message *batch[BATCH_MAX];
	uint64_t ids[BATCH_MAX];
	uint32_t seqs[BATCH_MAX];
	char name[64];
	uint32_t tag;
	int prefetch, nbatch, rc, status = 0;
	long work_us;
	const char *stop;

	if (argc != 7 || (prefetch = atoi(argv[3])) <= 0 ||
	    (nbatch = atoi(argv[4])) <= 0 || nbatch > BATCH_MAX ||
	    (work_us = atol(argv[5])) < 0 || work_us >= 1000000) {
		fprintf(stderr, "usage: ack_consumer QUEUE LOG PREFETCH BATCH "
		        "WORK_US STOPFILE\n");
		return 2;
	}
	stop = argv[6];
	l = calloc(1, sizeof *l);
	if (l == NULL)
		return 1;
	l->fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (l->fd < 0) {
		perror(argv[2]);
		free(l);
		return 1;
	}
	snprintf(name, sizeof name, "killee-%ld", (long)getpid());
	if ((rc = mq_connect(&c, NULL, name)) != 0) {
		status = fail(l, "connect", rc);
		goto out;
	}
	if ((rc = mq_consume(c, argv[1], (uint32_t)prefetch, 0, &tag)) != 0) {
		status = fail(l, "consume", rc);
		goto out;
	}
	while (access(stop, F_OK) != 0) {
		struct mq_message *m;
		int n = 0;

		/* Wait a little for the first, then take what is there. */
		rc = mq_next(c, 100, &m);
		while (rc == 0) {
			batch[n++] = m;
			if (n == nbatch)
				break;
			rc = mq_next(c, 0, &m);
		}
		if (rc != 0 && rc != MQ_ERR_TIMEOUT &&
		    !(rc == MQ_ERR_IO && errno == EINTR)) {
			for (int i = 0; i < n; i++)
				mq_message_free(batch[i]);
			status = fail(l, "next", rc);
			goto out;
		}
		if (n == 0)
			continue;
		for (int i = 0; i < n; i++) {
			m = batch[i];
			ids[i] = m->id;
			if (kill_body_check(m->body, m->body_len, &seqs[i]) < 0) {
				log_add(l, "X %" PRIu32 " %" PRIu64 "\n", seqs[i],
				        m->id);
				continue;
			}
			log_add(l, "D %" PRIu32 " %" PRIu64 " %u\n", seqs[i],
			        m->id, (unsigned)m->attempts);
		}
		if (log_flush(l) < 0) {
			perror(argv[2]);
			status = 1;
			goto out_free;
		}
		if (work_us > 0) {
			struct timespec ts = {0, work_us * 1000L};
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}
		for (int i = 0; i < n; i++)
			log_add(l, "S %" PRIu32 " %" PRIu64 "\n", seqs[i], ids[i]);
		if (log_flush(l) < 0) {
			perror(argv[2]);
			status = 1;
			goto out_free;
		}
		uint32_t counted = 0;
		rc = mq_ack(c, ids, (uint16_t)n, 0, &counted);
		if (rc != 0) {
			status = fail(l, "ack", rc);
			goto out_free;
		}
		if (counted != (uint32_t)n) {
			/* The broker skipped ids we hold: which, we cannot
			 * tell, so no A line is written for this batch. */
			log_add(l, "E ack counted %" PRIu32 " of %d\n", counted, n);
			(void)log_flush(l);
			status = 1;
			goto out_free;
		}
		for (int i = 0; i < n; i++)
			log_add(l, "A %" PRIu32 " %" PRIu64 " %u\n", seqs[i],
			        ids[i], (unsigned)batch[i]->attempts);
		if (log_flush(l) < 0) {
			perror(argv[2]);
			status = 1;
		}
	out_free:
		for (int i = 0; i < n; i++)
			mq_message_free(batch[i]);
		if (status != 0)
			goto out;
	}
out:
	if (c)
		mq_close(c);
	close(l->fd);
	free(l);
	return status;
}
