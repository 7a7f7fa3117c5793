#ifndef MQB_BIO_H
#define MQB_BIO_H

/*
 * Blocking connections for mq-bench drivers: TCP with TCP_NODELAY, or TLS
 * through OpenSSL, behind one interface so a driver never knows which.
 * Output is gathered in `out` and written in one go by mqb_bio_flush;
 * input lands in `in` (consumed from in_pos), read in large chunks.
 * Every wait is a poll of at most MQB_BIO_TICK_MS, so a role notices the
 * run's stop flag promptly.
 *
 * The process must ignore SIGPIPE: OpenSSL writes with write(2), so a TLS
 * write to a closed connection would otherwise kill it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mqb_opts;
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

#define MQB_BIO_TICK_MS 100

struct mqb_buf {
	uint8_t *p;
	size_t len;   /* bytes held */
	size_t cap;
};

struct mqb_bio {
	int fd;
	SSL *ssl;
	SSL_CTX *ctx;
	struct mqb_buf out;
	struct mqb_buf in;
	size_t in_pos;  /* first unconsumed byte of in */
	char err[200];
};

/* Connect to o->host:o->port (TLS when o->tls), within o->timeout_ms
 * (10 s when 0).  Initialises all of b.  0, or -1 with b->err (and b
 * closed). */
int mqb_bio_connect(struct mqb_bio *b, const struct mqb_opts *o);
void mqb_bio_close(struct mqb_bio *b);

/* Room for n more bytes at w->p + w->len (aborts on out of memory). */
uint8_t *mqb_buf_reserve(struct mqb_buf *w, size_t n);
void mqb_buf_put(struct mqb_buf *w, const void *p, size_t n);
void mqb_buf_puts(struct mqb_buf *w, const char *s);
void mqb_buf_printf(struct mqb_buf *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Write all of out and empty it.  0, or -1 with b->err.  While the socket
 * is full it reads what the server sends into `in` (so a server that
 * waits for us to read cannot deadlock the pair): `in` may grow and move,
 * so hold offsets into it across a flush, not pointers, and parse what is
 * there before waiting in mqb_bio_read for more.  A flush that can write
 * nothing for a minute fails.
 */
int mqb_bio_flush(struct mqb_bio *b);

/*
 * Read what is available, waiting at most timeout_ms (clamped to
 * MQB_BIO_TICK_MS; 0: do not wait).  Unconsumed input is compacted to the
 * front first.  Returns bytes read (>0), 0 when nothing came in time,
 * -1 on error or end of stream (b->err says which).
 */
int mqb_bio_read(struct mqb_bio *b, int timeout_ms);

/* Unconsumed input. */
static inline const uint8_t *mqb_bio_data(const struct mqb_bio *b)
{
	return b->in.p + b->in_pos;
}
static inline size_t mqb_bio_avail(const struct mqb_bio *b)
{
	return b->in.len - b->in_pos;
}
static inline void mqb_bio_consume(struct mqb_bio *b, size_t n)
{
	b->in_pos += n;
}

/* Find "\r\n" in the unconsumed input; the line's length (without it), or
 * -1 when no whole line is there yet. */
long mqb_bio_line(const struct mqb_bio *b);

#endif
