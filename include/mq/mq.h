/*
 * libmq: the C client library for the mqd message broker.
 *
 * One mq_conn is one TCP connection speaking the mqd wire protocol
 * (PROTOCOL.md).  Calls are blocking and a connection is not thread-safe:
 * use one connection per thread.  Every call that talks to the server
 * returns 0 or an enum mq_err; mq_strerror() names it, and
 * mq_last_error_message() gives the server's own words for the last
 * server-side error on that connection.
 *
 * Deliveries (from mq_consume) may arrive while the library waits for the
 * reply to another request; they are kept in order and handed out by
 * mq_next().
 *
 * Pipelining: mq_send_quiet() (and mq_ack with quiet) write without waiting
 * for a reply; a failure comes back later as an ERROR frame.  mq_sync()
 * flushes, waits until the server has answered everything sent before it,
 * and returns the first such error (0 if none), with its count in
 * mq_quiet_errors().
 */
#ifndef MQ_MQ_H
#define MQ_MQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1..16 are the server's error codes, identical to the wire protocol. */
enum mq_err {
	MQ_OK = 0,
	MQ_ERR_BAD_FRAME = 1,
	MQ_ERR_FRAME_TOO_LARGE = 2,
	MQ_ERR_UNKNOWN_OP = 3,
	MQ_ERR_BAD_ARGUMENT = 4,
	MQ_ERR_NOT_FOUND = 5,
	MQ_ERR_QUEUE_FULL = 6,
	MQ_ERR_CONFLICT = 7,
	MQ_ERR_HELLO_REQUIRED = 8,
	MQ_ERR_UNSUPPORTED_VERSION = 9,
	MQ_ERR_AUTH_REQUIRED = 10,
	MQ_ERR_AUTH_FAILED = 11,
	MQ_ERR_FORBIDDEN = 12,
	MQ_ERR_MEMORY_LIMIT = 13,
	MQ_ERR_LIMIT = 14,
	MQ_ERR_SHUTTING_DOWN = 15,
	MQ_ERR_INTERNAL = 16,
	/* Client-side conditions. */
	MQ_ERR_IO = 100,       /* connect/read/write failed (see errno) */
	MQ_ERR_CLOSED = 101,   /* the server closed the connection */
	MQ_ERR_TIMEOUT = 102,  /* nothing arrived in time */
	MQ_ERR_PROTOCOL = 103, /* the server sent something unparseable */
	MQ_ERR_NOMEM = 104,
	MQ_ERR_INVALID = 105,  /* bad argument to a library call */
	MQ_ERR_EMPTY = 106,    /* GET found nothing within its timeout */
	MQ_ERR_RESOLVE = 107,  /* host name did not resolve */
};

/* Flags, as on the wire. */
#define MQ_QUIET 0x01u
#define MQ_AUTO_ACK 0x02u
#define MQ_PASSIVE 0x04u
#define MQ_EXCLUSIVE 0x08u
#define MQ_AUTO_DELETE 0x10u
#define MQ_IF_EMPTY 0x20u

#define MQ_DEFAULT_SERVER "127.0.0.1:7400"

typedef struct mq_conn mq_conn;

/* A received message.  Owned by the caller: free with mq_message_free(). */
struct mq_message {
	uint64_t id;
	char source[256];     /* queue name (or topic), NUL-terminated */
	uint32_t tag;         /* consumer tag for a DELIVER; 0 for a GET */
	uint16_t attempts;
	uint64_t timestamp_ms;
	uint8_t priority;
	uint16_t nheaders;
	const uint8_t *headers; /* raw headers field (count included) */
	size_t headers_len;
	const uint8_t *body;
	size_t body_len;
};

/* Per-message options for mq_send; NULL means all zero. */
struct mq_send_opts {
	uint32_t ttl_ms;
	uint32_t delay_ms;
	uint8_t priority;      /* 0..9 */
	const uint8_t *headers; /* raw headers field, built with mq_headers_* */
	size_t headers_len;
};

/* Queue settings for mq_declare; NULL or 0 fields mean server default. */
struct mq_queue_opts {
	uint32_t max_length;
	uint64_t max_bytes;
	uint8_t overflow; /* 1 reject, 2 drop oldest */
	uint32_t message_ttl_ms;
	uint32_t ack_timeout_ms;
	uint16_t max_attempts;
	const char *dead_letter;
};

/* What DECLARE answered. */
struct mq_declared {
	char queue[256];
	uint64_t ready;
	uint32_t consumers;
};

const char *mq_strerror(int err);
/* The server's message for the last server-side error, or "". */
const char *mq_last_error_message(const mq_conn *c);

/*
 * Connect to "host:port" ("[::1]:7400" for IPv6; NULL means $MQ_SERVER, else
 * 127.0.0.1:7400) and say HELLO with this client name (may be NULL).
 * On failure *out is NULL and the error is returned.
 */
int mq_connect(mq_conn **out, const char *server, const char *client_name);
/* Same with user and password for servers that require them. */
int mq_connect_auth(mq_conn **out, const char *server, const char *client_name,
                    const char *user, const char *password);
void mq_close(mq_conn *c);

/* Server facts from WELCOME. */
uint64_t mq_conn_id(const mq_conn *c);
uint32_t mq_max_frame(const mq_conn *c);
const char *mq_server_name(const mq_conn *c);
/* The socket, for poll()ing alongside other descriptors. */
int mq_fd(const mq_conn *c);

int mq_ping(mq_conn *c);

/* DECLARE.  queue may be "" for a server-named queue; *out (may be NULL)
 * gets the name and counts. flags: MQ_PASSIVE MQ_EXCLUSIVE MQ_AUTO_DELETE */
int mq_declare(mq_conn *c, const char *queue, const struct mq_queue_opts *o,
               unsigned flags, struct mq_declared *out);
/* DELETE (flags: MQ_IF_EMPTY) and PURGE (*purged may be NULL). */
int mq_delete(mq_conn *c, const char *queue, unsigned flags);
int mq_purge(mq_conn *c, const char *queue, uint64_t *purged);

/* SEND and wait for its OK; *id (may be NULL) gets the message id. */
int mq_send(mq_conn *c, const char *queue, const void *body, size_t len,
            const struct mq_send_opts *o, uint64_t *id);
/* SEND with QUIET, without waiting: buffered and written when the buffer
 * fills or on the next waiting call.  Errors surface in mq_sync(). */
int mq_send_quiet(mq_conn *c, const char *queue, const void *body,
                  size_t len, const struct mq_send_opts *o);
/* Flush and wait for the server to answer everything sent so far (PING).
 * Returns the first error of a quiet request since the last mq_sync. */
int mq_sync(mq_conn *c);
/* How many quiet requests failed since the last mq_sync. */
unsigned mq_quiet_errors(const mq_conn *c);

/* GET with timeout_ms (0 = answer at once).  MQ_ERR_EMPTY if nothing came.
 * flags: MQ_AUTO_ACK. */
int mq_get(mq_conn *c, const char *queue, uint32_t timeout_ms, unsigned flags,
           struct mq_message **out);

/* CONSUME; *tag gets the consumer's tag (used by mq_cancel).
 * prefetch 0 = server default.  flags: MQ_AUTO_ACK. */
int mq_consume(mq_conn *c, const char *queue, uint32_t prefetch,
               unsigned flags, uint32_t *tag);
int mq_cancel(mq_conn *c, uint32_t tag);
/* The next delivery for any consumer of this connection, waiting up to
 * timeout_ms (-1 = forever).  MQ_ERR_TIMEOUT if none came.  When the
 * server ends a consumer (its queue was deleted) mq_next returns
 * MQ_ERR_NOT_FOUND once, with *out NULL and mq_cancelled_tag() giving the
 * consumer's tag.  A signal during the wait returns MQ_ERR_IO with errno
 * EINTR (like read(2)): nothing is lost, call again. */
int mq_next(mq_conn *c, int timeout_ms, struct mq_message **out);
/* The tag of the last consumer the server cancelled (0 if none). */
uint32_t mq_cancelled_tag(const mq_conn *c);

/* ACK / NACK ids; *count (may be NULL) gets how many the server counted.
 * flags: MQ_QUIET (then nothing is waited for and *count is untouched). */
int mq_ack(mq_conn *c, const uint64_t *ids, uint16_t n, unsigned flags,
           uint32_t *count);
int mq_nack(mq_conn *c, const uint64_t *ids, uint16_t n, int requeue,
            uint32_t delay_ms, unsigned flags, uint32_t *count);

/* ---- publish / subscribe ------------------------------------------------ */

/* PUBLISH to a topic ("orders.eu.paid"); *receivers (may be NULL) gets how
 * many live subscriptions and bound queues took a copy.  o as for
 * mq_send (ttl, delay and priority apply to the queue copies).  With
 * flags MQ_QUIET nothing is waited for. */
int mq_publish(mq_conn *c, const char *topic, const void *body, size_t len,
               const struct mq_send_opts *o, unsigned flags,
               uint32_t *receivers);
/* SUBSCRIBE to a pattern ("orders.*.paid", "bits.>"); deliveries come
 * through mq_next with m->tag == *tag and m->source the topic.
 * At-most-once: a subscriber that falls too far behind loses messages. */
int mq_subscribe(mq_conn *c, const char *pattern, uint32_t *tag);
int mq_unsubscribe(mq_conn *c, uint32_t tag);
/* Every PUBLISH whose topic matches pattern puts a copy in queue. */
int mq_bind(mq_conn *c, const char *queue, const char *pattern);
int mq_unbind(mq_conn *c, const char *queue, const char *pattern);

/* ---- request / reply ------------------------------------------------------ */

/*
 * Send a request to queue and wait up to timeout_ms for its reply.  The
 * first call declares a server-named EXCLUSIVE reply queue for this
 * connection and consumes it (AUTO_ACK); each request carries headers
 * reply-to (that queue) and correlation-id (unique on this connection).
 * Replies to earlier, timed-out requests are dropped.  Other deliveries
 * that arrive meanwhile stay queued for mq_next.  MQ_ERR_TIMEOUT if no
 * reply came.
 */
int mq_request(mq_conn *c, const char *queue, const void *body, size_t len,
               uint32_t timeout_ms, struct mq_message **reply);
/* The serving side: SEND body to the request's reply-to queue with its
 * correlation-id.  MQ_ERR_INVALID if the request has no reply-to. */
int mq_reply(mq_conn *c, const struct mq_message *request, const void *body,
             size_t len);

void mq_message_free(struct mq_message *m);

/* Find a header's value in a message; returns its length or -1 if absent,
 * and points *value at it (not NUL-terminated). */
int mq_message_header(const struct mq_message *m, const char *key,
                      const char **value);

/* Build a raw headers field for mq_send_opts.  Returns MQ_ERR_INVALID for
 * a bad key or a repeated one, MQ_ERR_NOMEM on allocation failure. */
struct mq_headers;
struct mq_headers *mq_headers_new(void);
int mq_headers_add(struct mq_headers *h, const char *key, const char *value);
const uint8_t *mq_headers_data(const struct mq_headers *h, size_t *len);
void mq_headers_free(struct mq_headers *h);

/* Durations as the CLI and config take them: "250ms", "2s", "5m", "1h", "0".
 * Returns 0 and sets *ms, or MQ_ERR_INVALID. */
int mq_parse_duration(const char *s, uint64_t *ms);

#ifdef __cplusplus
}
#endif
#endif
