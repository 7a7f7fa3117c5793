#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * libmq: connecting (address, socket, HELLO), closing, the connection's
 * accessors, PING and mq_sync, and the names of the error codes.  How a
 * connection is read and written is io.c's; internal.h says how it all
 * fits together.
 */

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "mq/mq.h"
#include "client/internal.h"
#include "proto/proto.h"

#define DEFAULT_PORT "7400"
#define DEFAULT_MAX_FRAME (1024u * 1024u) /* until WELCOME says otherwise */

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

void mqc_copy_text(char *dst, size_t cap, const uint8_t *p, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	if (n > 0)
		memcpy(dst, p, n);
	dst[n] = '\0';
}

/* The connection cannot be used any more.  Shutting the socket down lets
 * the server put back what we held without waiting for mq_close. */
void mqc_mark_dead(struct mq_conn *c)
{
	if (!c->dead && c->fd >= 0)
		(void)shutdown(c->fd, SHUT_RDWR);
	c->dead = true;
}

/* ---- small helpers --------------------------------------------------- */

uint32_t mqc_new_tag(struct mq_conn *c)
{
	uint32_t t = c->next_tag++;

	if (c->next_tag == 0)
		c->next_tag = 1;
	return t;
}

bool mqc_name_ok(const char *s, bool empty_ok)
{
	size_t n;

	if (s == NULL)
		return false;
	n = strlen(s);
	if (n == 0)
		return empty_ok;
	return mqd_name_valid((const uint8_t *)s, n);
}

int64_t mqc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Common entry check: a usable connection. */
int mqc_usable(const struct mq_conn *c)
{
	if (c == NULL)
		return MQ_ERR_INVALID;
	return c->dead ? MQ_ERR_CLOSED : 0;
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
	while ((b = mqc_dequeue(c)) != NULL)
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
	uint32_t tag = mqc_new_tag(c);
	size_t start = c->out.len;
	int rc;

	mqd_enc_hello(&c->out, tag, client, user, password);
	rc = mqc_enc_check(c, start);
	if (rc == 0)
		rc = mqc_expect(c, tag, MQD_OP_WELCOME, &f, &p);
	if (rc != 0)
		return rc;
	if (p.welcome.version != MQD_PROTO_VERSION || p.welcome.max_frame == 0) {
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "server speaks protocol version %u",
		         (unsigned)p.welcome.version);
		return MQ_ERR_PROTOCOL;
	}
	mqc_copy_text(c->server, sizeof(c->server), p.welcome.server.p,
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
	if (!mqc_name_ok(client_name, true) || !mqc_name_ok(user, true) ||
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
		(void)mqc_flush_out(c);
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

/* ---- PING and sync ---------------------------------------------------- */

/* PING with a payload no other PING on this connection has; wait for it. */
static int ping_roundtrip(struct mq_conn *c)
{
	struct mqd_frame f;
	union mqd_payload p;
	uint8_t payload[8];
	uint32_t tag = mqc_new_tag(c);
	size_t start = c->out.len;
	int rc;

	mqd_store64(payload, ++c->ping_seq);
	mqd_enc_raw(&c->out, MQD_OP_PING, 0, tag, payload, sizeof(payload));
	rc = mqc_enc_check(c, start);
	if (rc == 0)
		rc = mqc_expect(c, tag, MQD_OP_PONG, &f, &p);
	if (rc != 0)
		return rc;
	if (p.raw.len != sizeof(payload) ||
	    memcmp(p.raw.p, payload, sizeof(payload)) != 0) {
		snprintf(c->errmsg, sizeof(c->errmsg), "PONG does not match PING");
		mqc_mark_dead(c);
		return MQ_ERR_PROTOCOL;
	}
	return 0;
}

int mq_ping(mq_conn *c)
{
	int rc = mqc_usable(c);

	return rc != 0 ? rc : ping_roundtrip(c);
}

int mq_sync(mq_conn *c)
{
	int rc = mqc_usable(c);

	if (rc != 0)
		return rc;
	/* Nothing quiet sent since the last sync: that one's errors are not
	 * this one's. */
	mqc_quiet_request(c);
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

