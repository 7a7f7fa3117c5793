/*
 * Connections for mq-bench drivers (bio.h): plain TCP or TLS through
 * OpenSSL.
 *
 * The socket is non-blocking and every wait is an explicit poll.  That
 * gives TCP and TLS one code path (OpenSSL reports "would block" as
 * WANT_READ / WANT_WRITE, either of which can happen on a read or a
 * write), lets a read try first and poll only when nothing is there, and
 * bounds every wait.
 *
 * All transfers go through two primitives, bio_recv and bio_send, which
 * make one attempt and return bytes moved, 0 for "would block" (with the
 * poll events to wait for), or -1 with b->err set.
 *
 * A flush that finds the socket full keeps reading into `in` while it
 * waits: a broker that stops reading from a client until the client reads
 * its replies (backpressure) would otherwise deadlock with a client stuck
 * in a write.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tools/bench/bench.h"
#include "tools/bench/bio.h"

/* Free room a read offers the kernel (or OpenSSL): large reads are what
 * keep the syscall count per message low. */
#define READ_ROOM (64u * 1024u)
/* Connect + handshake limit when the run sets no timeout. */
#define CONNECT_MS 10000
/* A flush that moves no byte for this long gives up: the server is gone
 * or wedged, and a role stuck here could never see the stop flag. */
#define STALL_MS 60000
#define BUF_MIN 4096

/* ---- buffers -------------------------------------------------------- */

static void out_of_memory(size_t n)
{
	fprintf(stderr, "mq-bench: out of memory (%zu bytes)\n", n);
	abort();
}

uint8_t *mqb_buf_reserve(struct mqb_buf *w, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (w->p != NULL && w->cap - w->len >= n)
		return w->p + w->len;
	if (n > SIZE_MAX - w->len)
		out_of_memory(SIZE_MAX);
	cap = w->cap != 0 ? w->cap : BUF_MIN;
	while (cap - w->len < n)
		cap = cap > SIZE_MAX / 2 ? w->len + n : cap * 2;
	p = realloc(w->p, cap);
	if (p == NULL)
		out_of_memory(cap);
	w->p = p;
	w->cap = cap;
	return w->p + w->len;
}

void mqb_buf_put(struct mqb_buf *w, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(mqb_buf_reserve(w, n), p, n);
	w->len += n;
}

void mqb_buf_puts(struct mqb_buf *w, const char *s)
{
	mqb_buf_put(w, s, strlen(s));
}

void mqb_buf_printf(struct mqb_buf *w, const char *fmt, ...)
{
	va_list ap, again;
	size_t room;
	int n;

	mqb_buf_reserve(w, 128);
	room = w->cap - w->len;
	va_start(ap, fmt);
	va_copy(again, ap);
	n = vsnprintf((char *)w->p + w->len, room, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= room) {
		mqb_buf_reserve(w, (size_t)n + 1);
		vsnprintf((char *)w->p + w->len, (size_t)n + 1, fmt, again);
	}
	va_end(again);
	if (n > 0) /* n < 0 only for a format the caller got wrong */
		w->len += (size_t)n;
}

/* ---- errors and waits ----------------------------------------------- */

static void set_err(struct mqb_bio *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_err(struct mqb_bio *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->err, sizeof b->err, fmt, ap);
	va_end(ap);
}

static void set_closed(struct mqb_bio *b)
{
	set_err(b, "connection closed by server");
}

/* A handshake that failed on the server's certificate: the verify result
 * names the reason better than the error queue's "verify failed".  Only
 * while verifying, and only in the handshake: an unverified result is
 * kept (and meaningless) when verification is off. */
static long verify_failure(SSL *ssl)
{
	if (ssl == NULL || SSL_is_init_finished(ssl) ||
	    !(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER))
		return X509_V_OK;
	return SSL_get_verify_result(ssl);
}

/* The reason for a failed TLS call: a failed certificate check first,
 * then OpenSSL's error queue, then errno, else the peer just hung up. */
static void set_tls_err(struct mqb_bio *b, const char *what, int ssl_error)
{
	unsigned long e = ERR_get_error();
	long vr = verify_failure(b->ssl);
	char buf[160];

	if (vr != X509_V_OK) {
		set_err(b, "%s: certificate verify failed: %s", what,
		        X509_verify_cert_error_string(vr));
	} else if (e != 0) {
		ERR_error_string_n(e, buf, sizeof buf);
		set_err(b, "%s: %s", what, buf);
	} else if (ssl_error == SSL_ERROR_SYSCALL && errno != 0) {
		set_err(b, "%s: %s", what, strerror(errno));
	} else {
		set_err(b, "%s: connection closed by server", what);
	}
	ERR_clear_error();
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Poll fd for events up to ms.  revents (0 on timeout or EINTR), or -1
 * with b->err. */
static int wait_fd(struct mqb_bio *b, short events, int ms)
{
	struct pollfd pfd = { .fd = b->fd, .events = events };
	int r = poll(&pfd, 1, ms);

	if (r < 0 && errno != EINTR) {
		set_err(b, "poll: %s", strerror(errno));
		return -1;
	}
	return r > 0 ? pfd.revents : 0;
}

/* Milliseconds left until deadline, at least 0, at most INT_MAX. */
static int left_ms(uint64_t deadline)
{
	uint64_t now = now_ms();

	if (now >= deadline)
		return 0;
	return deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
}

static int clamp_int(size_t n)
{
	return n > INT_MAX ? INT_MAX : (int)n;
}

/* ---- one transfer attempt ------------------------------------------- */

/* TLS would-block: which way to wait, or -1 for a real error. */
static int tls_want(int ssl_error, short *want)
{
	if (ssl_error == SSL_ERROR_WANT_READ)
		*want = POLLIN;
	else if (ssl_error == SSL_ERROR_WANT_WRITE)
		*want = POLLOUT;
	else
		return -1;
	return 0;
}

static long bio_recv(struct mqb_bio *b, void *p, size_t n, short *want)
{
	ssize_t r;
	int e;

	*want = POLLIN;
	if (b->ssl != NULL) {
		ERR_clear_error();
		errno = 0;
		r = SSL_read(b->ssl, p, clamp_int(n));
		if (r > 0)
			return (long)r;
		e = SSL_get_error(b->ssl, (int)r);
		if (tls_want(e, want) == 0)
			return 0;
		if (e == SSL_ERROR_ZERO_RETURN)
			set_closed(b);
		else
			set_tls_err(b, "TLS read", e);
		return -1;
	}
	do
		r = recv(b->fd, p, n, 0);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		return (long)r;
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (r == 0 || errno == ECONNRESET)
		set_closed(b);
	else
		set_err(b, "read: %s", strerror(errno));
	return -1;
}

static long bio_send(struct mqb_bio *b, const void *p, size_t n, short *want)
{
	ssize_t r;
	int e;

	*want = POLLOUT;
	if (b->ssl != NULL) {
		/* A retry after WANT_* passes the same pointer and length, as
		 * OpenSSL requires: the caller only advances on success. */
		ERR_clear_error();
		errno = 0;
		r = SSL_write(b->ssl, p, clamp_int(n));
		if (r > 0)
			return (long)r;
		e = SSL_get_error(b->ssl, (int)r);
		if (tls_want(e, want) == 0)
			return 0;
		set_tls_err(b, "TLS write", e);
		return -1;
	}
	do
		r = send(b->fd, p, n, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r >= 0)
		return (long)r;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	if (errno == EPIPE || errno == ECONNRESET)
		set_closed(b);
	else
		set_err(b, "write: %s", strerror(errno));
	return -1;
}

/* ---- reading -------------------------------------------------------- */

/* Move unconsumed input to the front so the free room is contiguous. */
static void compact_in(struct mqb_bio *b)
{
	size_t avail = mqb_bio_avail(b);

	if (b->in_pos == 0)
		return;
	if (avail != 0)
		memmove(b->in.p, b->in.p + b->in_pos, avail);
	b->in.len = avail;
	b->in_pos = 0;
}

/*
 * One read into the free room of `in` (grown to at least READ_ROOM, never
 * moved otherwise).  OpenSSL hands out one record per SSL_read, so what
 * it already holds is drained too: that costs no syscall.
 */
static long fill_in(struct mqb_bio *b, short *want)
{
	long n, more, total;
	size_t room;

	mqb_buf_reserve(&b->in, READ_ROOM);
	room = b->in.cap - b->in.len;
	if (room > INT_MAX)
		room = INT_MAX;
	n = bio_recv(b, b->in.p + b->in.len, room, want);
	if (n <= 0)
		return n;
	b->in.len += (size_t)n;
	total = n;
	while (b->ssl != NULL && (size_t)total < room &&
	       SSL_has_pending(b->ssl)) {
		more = bio_recv(b, b->in.p + b->in.len, room - (size_t)total,
		                want);
		if (more <= 0)
			break; /* an error recurs on the next call */
		b->in.len += (size_t)more;
		total += more;
	}
	return total;
}

int mqb_bio_read(struct mqb_bio *b, int timeout_ms)
{
	short want;
	long n;
	int ms, ev;

	compact_in(b);
	n = fill_in(b, &want);
	if (n != 0 || timeout_ms == 0)
		return (int)n;
	ms = timeout_ms < 0 || timeout_ms > MQB_BIO_TICK_MS ? MQB_BIO_TICK_MS
	                                                    : timeout_ms;
	ev = wait_fd(b, want, ms);
	if (ev <= 0)
		return ev;
	return (int)fill_in(b, &want);
}

long mqb_bio_line(const struct mqb_bio *b)
{
	const uint8_t *p = mqb_bio_data(b);
	const uint8_t *crlf = memmem(p, mqb_bio_avail(b), "\r\n", 2);

	return crlf != NULL ? (long)(crlf - p) : -1;
}

/* ---- writing -------------------------------------------------------- */

/* Wait (one tick at most) until the pending write may proceed, reading
 * whatever the server sends meanwhile.  0, or -1 with b->err. */
static int wait_to_send(struct mqb_bio *b, short want)
{
	short ignored;
	int ev = wait_fd(b, want | POLLIN, MQB_BIO_TICK_MS);

	if (ev < 0)
		return -1;
	/* HUP / ERR: the read reports why (and keeps what came first). */
	if ((ev & (POLLIN | POLLHUP | POLLERR)) && fill_in(b, &ignored) < 0)
		return -1;
	return 0;
}

int mqb_bio_flush(struct mqb_bio *b)
{
	uint64_t last = now_ms();
	size_t off = 0;
	short want;
	long n;

	while (off < b->out.len) {
		n = bio_send(b, b->out.p + off, b->out.len - off, &want);
		if (n < 0)
			return -1;
		if (n > 0) {
			off += (size_t)n;
			last = now_ms();
			continue;
		}
		if (wait_to_send(b, want) != 0)
			return -1;
		if (now_ms() - last >= STALL_MS) {
			set_err(b, "write stalled for %d s", STALL_MS / 1000);
			return -1;
		}
	}
	b->out.len = 0;
	return 0;
}

/* ---- connecting ----------------------------------------------------- */

/* The outcome of a connect in progress: 0 or an errno value. */
static int connect_wait(int fd, uint64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len;
	int r, err;

	for (;;) {
		r = poll(&pfd, 1, left_ms(deadline));
		if (r > 0)
			break;
		if (r < 0 && errno != EINTR)
			return errno;
		if (left_ms(deadline) == 0)
			return ETIMEDOUT;
	}
	len = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		return errno;
	return err;
}

/* Non-blocking connect to one address, bounded by deadline: 0 or an
 * errno value. */
static int connect_addr(struct mqb_bio *b, const struct addrinfo *ai,
                        uint64_t deadline)
{
	int fd, err = 0, one = 1;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
	            ai->ai_protocol);
	if (fd < 0)
		return errno;
	b->fd = fd;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
		err = errno == EINPROGRESS ? connect_wait(fd, deadline) : errno;
	/* Frames are batched by the caller; Nagle would only add delay. */
	if (err == 0 &&
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
		err = errno;
	if (err != 0) {
		close(fd);
		b->fd = -1;
	}
	return err;
}

static int tcp_connect(struct mqb_bio *b, const struct mqb_opts *o,
                       uint64_t deadline)
{
	struct addrinfo hints, *res, *ai;
	char addr[NI_MAXHOST];
	int rc, err;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(o->host, o->port, &hints, &res);
	if (rc != 0) {
		set_err(b, "%s port %s: %s", o->host, o->port,
		        rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	set_err(b, "%s port %s: no address", o->host, o->port);
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		err = connect_addr(b, ai, deadline);
		if (err == 0)
			break;
		/* Name the address: a host may resolve to several. */
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr,
		                NULL, 0, NI_NUMERICHOST) != 0)
			snprintf(addr, sizeof addr, "%s", o->host);
		set_err(b, "connect to %s port %s: %s", addr, o->port,
		        strerror(err));
	}
	freeaddrinfo(res);
	return b->fd >= 0 ? 0 : -1;
}

static bool is_ip_literal(const char *host)
{
	unsigned char a[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, a) == 1 ||
	       inet_pton(AF_INET6, host, a) == 1;
}

/* The context: protocol floor, trust, and the client certificate. */
static int tls_setup_ctx(struct mqb_bio *b, const struct mqb_opts *o)
{
	const char *key = o->tls_key != NULL ? o->tls_key : o->tls_cert;

	b->ctx = SSL_CTX_new(TLS_client_method());
	if (b->ctx == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(b->ctx, TLS1_2_VERSION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* A server that closes without close_notify is a closed stream,
	 * reported as such, not a protocol error. */
	SSL_CTX_set_options(b->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	/* Read ahead into a buffer as large as a plain read, so TLS costs
	 * no extra syscalls per message. */
	SSL_CTX_set_read_ahead(b->ctx, 1);
	SSL_CTX_set_default_read_buffer_len(b->ctx, READ_ROOM);
	if (!o->tls_insecure) {
		SSL_CTX_set_verify(b->ctx, SSL_VERIFY_PEER, NULL);
		if (o->tls_ca != NULL
		    ? SSL_CTX_load_verify_locations(b->ctx, o->tls_ca, NULL) != 1
		    : SSL_CTX_set_default_verify_paths(b->ctx) != 1)
			goto fail;
	}
	if (o->tls_cert != NULL &&
	    (SSL_CTX_use_certificate_chain_file(b->ctx, o->tls_cert) != 1 ||
	     SSL_CTX_use_PrivateKey_file(b->ctx, key, SSL_FILETYPE_PEM) != 1 ||
	     SSL_CTX_check_private_key(b->ctx) != 1))
		goto fail;
	return 0;
fail:
	set_tls_err(b, "TLS setup", SSL_ERROR_SSL);
	return -1;
}

/* The connection: SNI and the name (or address) the certificate must
 * carry.  SNI may not be an IP address (RFC 6066). */
static int tls_setup_ssl(struct mqb_bio *b, const struct mqb_opts *o)
{
	bool ip = is_ip_literal(o->host);

	b->ssl = SSL_new(b->ctx);
	if (b->ssl == NULL || SSL_set_fd(b->ssl, b->fd) != 1)
		goto fail;
	if (!ip && SSL_set_tlsext_host_name(b->ssl, o->host) != 1)
		goto fail;
	if (!o->tls_insecure &&
	    (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(b->ssl),
	                                        o->host) != 1
	        : SSL_set1_host(b->ssl, o->host) != 1))
		goto fail;
	return 0;
fail:
	set_tls_err(b, "TLS setup", SSL_ERROR_SSL);
	return -1;
}

static int tls_connect(struct mqb_bio *b, const struct mqb_opts *o,
                       uint64_t deadline)
{
	short want;
	int r, e;

	if (tls_setup_ctx(b, o) != 0 || tls_setup_ssl(b, o) != 0)
		return -1;
	for (;;) {
		ERR_clear_error();
		errno = 0;
		r = SSL_connect(b->ssl);
		if (r == 1)
			return 0;
		e = SSL_get_error(b->ssl, r);
		if (tls_want(e, &want) != 0) {
			set_tls_err(b, "TLS handshake", e);
			return -1;
		}
		if (left_ms(deadline) == 0) {
			set_err(b, "TLS handshake: timed out");
			return -1;
		}
		if (wait_fd(b, want, left_ms(deadline)) < 0)
			return -1;
	}
}

int mqb_bio_connect(struct mqb_bio *b, const struct mqb_opts *o)
{
	uint64_t deadline;

	memset(b, 0, sizeof *b);
	b->fd = -1;
	deadline = now_ms() + (o->timeout_ms != 0 ? o->timeout_ms : CONNECT_MS);
	if (tcp_connect(b, o, deadline) != 0 ||
	    (o->tls && tls_connect(b, o, deadline) != 0)) {
		mqb_bio_close(b); /* keeps b->err */
		return -1;
	}
	return 0;
}

void mqb_bio_close(struct mqb_bio *b)
{
	if (b->ssl != NULL) {
		/* One non-blocking close_notify, as a courtesy; a handshake
		 * that never finished has nothing to close. */
		if (SSL_is_init_finished(b->ssl))
			SSL_shutdown(b->ssl);
		SSL_free(b->ssl);
		ERR_clear_error();
		b->ssl = NULL;
	}
	SSL_CTX_free(b->ctx);
	b->ctx = NULL;
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	free(b->out.p);
	free(b->in.p);
	memset(&b->out, 0, sizeof b->out);
	memset(&b->in, 0, sizeof b->in);
	b->in_pos = 0;
}
