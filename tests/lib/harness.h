/*
 * Integration-test harness: start the real mqd binary in a temp dir of its
 * own, find the port the kernel gave it, talk to it through libmq or a raw
 * socket, and stop it again.
 *
 * Race-free by construction: the broker listens on port 0 and the harness
 * waits (a poll loop, never a fixed sleep) for its "listening on
 * 127.0.0.1:PORT" log line.  Every broker is killed if the test process dies
 * on any path: PR_SET_PDEATHSIG in the child, an atexit() hook for an
 * ordinary exit (a failed ck_assert in Check's fork mode), and Check's own
 * kill of the test's process group on a timeout.
 *
 * The raw helpers build and read frames with code of their own, not with
 * src/proto, so a protocol test checks the broker against PROTOCOL.md rather
 * than against the codec the broker itself uses.
 */
#ifndef MQT_HARNESS_H
#define MQT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "mq/mq.h"

#define MQT_PATH_MAX 4096

struct mqt_server {
	pid_t pid;          /* 0 when not running */
	char dir[MQT_PATH_MAX - 64]; /* room for "/stderr.log" in the paths */
	char conf_path[MQT_PATH_MAX];
	char log_path[MQT_PATH_MAX];
	char stderr_path[MQT_PATH_MAX];
	uint16_t port;
	char addr[64];      /* "127.0.0.1:PORT" */
	char ctl_path[108]; /* <dir>/ctl.sock: the control socket */
};

/*
 * Write <dir>/mqd.conf with [server] listen = 127.0.0.1:0, log_file,
 * log_level = debug, workers = 4, then `extra` (lines that belong in
 * [server]; may be NULL; a log_level or workers line in it replaces the
 * harness's), start $MQD_BIN -c <dir>/mqd.conf and wait up to
 * 10 s until it listens.  Returns 0, or -1 after printing why (and the
 * broker's log) to stderr.
 */
int mqt_server_start(struct mqt_server *s, const char *extra);
/* Same, with `sections` (whole extra sections, "[defaults]\n...") appended
 * after the [server] section.  Either may be NULL. */
int mqt_server_start_conf(struct mqt_server *s, const char *extra,
                          const char *sections);
/* What else may differ for a broker (zero-initialise it). */
struct mqt_server_opts {
	const struct rlimit *nofile; /* its RLIMIT_NOFILE; NULL: the test's */
};
/* Same, with opts (may be NULL). */
int mqt_server_start_opts(struct mqt_server *s, const char *extra,
                          const char *sections,
                          const struct mqt_server_opts *opts);
/*
 * SIGTERM, wait up to 10 s (then SIGKILL).  Returns the broker's exit status
 * (0 expected), 128 + signal if a signal ended it, or -1 when it had to be
 * killed.  Prints the broker's log and stderr when the result is not 0, and
 * removes the temp dir.
 */
int mqt_server_stop(struct mqt_server *s);
/* Milliseconds the last mqt_server_stop waited for the broker to exit. */
long mqt_server_last_stop_ms(void);
/* Print the broker's log and stderr to our stderr (for failure reports). */
void mqt_server_dump(const struct mqt_server *s);
/* Whether the broker process is still alive (reaps it if not). */
bool mqt_server_alive(struct mqt_server *s);

/*
 * Watch a broker the harness did not start (a daemon started with mqd -d,
 * one a test starts with a config of its own): if the test process ends,
 * however it ends, before mqt_unwatch(pid), the janitor kills pid, prints
 * <dir>/mqd.log and <dir>/stderr.log and removes dir.
 */
void mqt_watch(pid_t pid, const char *dir);
void mqt_unwatch(pid_t pid);

/* libmq connection to the server, or NULL (reason printed to stderr). */
mq_conn *mqt_connect(const struct mqt_server *s);

/* Monotonic milliseconds. */
int64_t mqt_now_ms(void);
/* Wall-clock milliseconds since the Unix epoch. */
int64_t mqt_wall_ms(void);

/* ---- building frames ---------------------------------------------------- */

struct mqt_buf {
	uint8_t *p;
	size_t len, cap;
};

void mqt_buf_init(struct mqt_buf *b);
void mqt_buf_free(struct mqt_buf *b);
void mqt_buf_reset(struct mqt_buf *b);
void mqt_put_u8(struct mqt_buf *b, uint8_t v);
void mqt_put_u16(struct mqt_buf *b, uint16_t v);
void mqt_put_u32(struct mqt_buf *b, uint32_t v);
void mqt_put_u64(struct mqt_buf *b, uint64_t v);
void mqt_put_bytes(struct mqt_buf *b, const void *p, size_t n);
void mqt_put_name(struct mqt_buf *b, const char *s);          /* u8 len */
void mqt_put_str16(struct mqt_buf *b, const char *s);         /* u16 len */
void mqt_put_blob(struct mqt_buf *b, const void *p, size_t n); /* u32 len */
/* Start a frame (length patched by mqt_frame_end); returns its offset. */
size_t mqt_frame_begin(struct mqt_buf *b, uint8_t op, uint8_t flags,
                       uint32_t tag);
void mqt_frame_end(struct mqt_buf *b, size_t start);

/* Whole frames appended to b. */
void mqt_enc_hello(struct mqt_buf *b, uint32_t tag, uint8_t version,
                   const char *client);
void mqt_enc_ping(struct mqt_buf *b, uint32_t tag, const void *p, size_t n);
void mqt_enc_declare(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                     const char *queue, const struct mq_queue_opts *o);
/* DELETE or PURGE */
void mqt_enc_queue_op(struct mqt_buf *b, uint8_t op, uint8_t flags,
                      uint32_t tag, const char *queue);
/* SEND without headers */
void mqt_enc_send(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                  const char *queue, uint8_t priority, const void *body,
                  size_t len);
void mqt_enc_get(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                 const char *queue, uint32_t timeout_ms);
void mqt_enc_consume(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                     const char *queue, uint32_t prefetch);
void mqt_enc_cancel(struct mqt_buf *b, uint32_t tag, uint32_t which);
void mqt_enc_ack(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                 const uint64_t *ids, uint16_t n);
void mqt_enc_nack(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                  uint8_t requeue, uint32_t delay_ms, const uint64_t *ids,
                  uint16_t n);

/* ---- raw sockets ---------------------------------------------------------- */

/* Wire ops and error codes the tests use (PROTOCOL.md). */
enum {
	MQT_HELLO = 0x01, MQT_PING = 0x02,
	MQT_DECLARE = 0x10, MQT_DELETE = 0x11, MQT_PURGE = 0x12,
	MQT_SEND = 0x20, MQT_GET = 0x30, MQT_CONSUME = 0x31,
	MQT_CANCEL = 0x32, MQT_ACK = 0x33, MQT_NACK = 0x34,
	MQT_OK = 0x80, MQT_WELCOME = 0x81, MQT_PONG = 0x82,
	MQT_DECLARED = 0x83, MQT_MESSAGE = 0x84, MQT_EMPTY = 0x85,
	MQT_DELIVER = 0x86, MQT_CANCELLED = 0x87, MQT_ERROR = 0xFF,
};
enum {
	MQT_E_BAD_FRAME = 1, MQT_E_FRAME_TOO_LARGE = 2, MQT_E_UNKNOWN_OP = 3,
	MQT_E_BAD_ARGUMENT = 4, MQT_E_NOT_FOUND = 5, MQT_E_QUEUE_FULL = 6,
	MQT_E_CONFLICT = 7, MQT_E_HELLO_REQUIRED = 8,
	MQT_E_UNSUPPORTED_VERSION = 9, MQT_E_FORBIDDEN = 12, MQT_E_LIMIT = 14,
	MQT_E_SHUTTING_DOWN = 15,
};

/* A frame read from the server; payload is malloc'd (NUL-terminated past
 * len for convenience). */
struct mqt_frame {
	uint8_t op, flags;
	uint32_t tag;
	uint32_t len;
	uint8_t *payload;
};
void mqt_frame_free(struct mqt_frame *f);

/* Results of mqt_raw_read. */
#define MQT_RD_FRAME 1
#define MQT_RD_EOF 0       /* orderly close (or reset) before a frame */
#define MQT_RD_TIMEOUT (-1)
#define MQT_RD_ERROR (-2)  /* torn frame, bad length, other errno */

/* A blocking TCP socket connected to the server (SO_RCVTIMEO 10 s,
 * TCP_NODELAY, close-on-exec), or -1. */
int mqt_raw_connect(const struct mqt_server *s);
/* Write all n bytes; 0 or -1 (EPIPE etc., never SIGPIPE). */
int mqt_raw_send(int fd, const void *p, size_t n);
int mqt_raw_send_buf(int fd, const struct mqt_buf *b);
/* Read exactly one frame within timeout_ms.  Returns MQT_RD_*. */
int mqt_raw_read(int fd, struct mqt_frame *f, int timeout_ms);
/* HELLO (version 1, tag 1) and expect WELCOME with tag 1; 0 or -1. */
int mqt_raw_hello(int fd);
/* Connect and say HELLO: a ready fd, or -1. */
int mqt_raw_open(const struct mqt_server *s);
/* Whether the server closes the connection within timeout_ms: frames that
 * arrive first are skipped (counted in *skipped if not NULL). */
bool mqt_raw_wait_closed(int fd, int timeout_ms, int *skipped);
/* Whether nothing at all arrives within timeout_ms (for negatives). */
bool mqt_raw_quiet(int fd, int timeout_ms);

/* ---- reading payloads ------------------------------------------------------ */

struct mqt_rd {
	const uint8_t *p;
	size_t len, pos;
	bool err; /* a read ran past the end */
};
void mqt_rd_init(struct mqt_rd *r, const struct mqt_frame *f);
uint8_t mqt_get_u8(struct mqt_rd *r);
uint16_t mqt_get_u16(struct mqt_rd *r);
uint32_t mqt_get_u32(struct mqt_rd *r);
uint64_t mqt_get_u64(struct mqt_rd *r);
/* A u8-length name into out (NUL-terminated, cap >= 256). */
void mqt_get_name(struct mqt_rd *r, char *out);
/* Points *p at n bytes and skips them. */
const uint8_t *mqt_get_bytes(struct mqt_rd *r, size_t n);
bool mqt_rd_done(const struct mqt_rd *r); /* all read, no error */

/* MESSAGE / DELIVER payload. */
struct mqt_msg {
	uint64_t id;
	char source[256];
	uint16_t attempts;
	uint64_t timestamp_ms;
	uint8_t priority;
	uint16_t nheaders;
	const uint8_t *headers; /* after the count */
	size_t headers_len;
	const uint8_t *body;    /* points into the frame */
	uint32_t body_len;
};
/* 0, or -1 if the payload does not parse exactly. */
int mqt_parse_msg(const struct mqt_frame *f, struct mqt_msg *m);
/* A header's value copied into out (NUL-terminated, truncated to cap-1);
 * returns its length, or -1 when the message has no such header. */
int mqt_msg_header(const struct mqt_msg *m, const char *key, char *out,
                   size_t cap);
/* ERROR's code, or -1 if f is not a well-formed ERROR. */
int mqt_error_code(const struct mqt_frame *f);
/* "BAD_ARGUMENT" etc. for a wire error code, "?" otherwise. */
const char *mqt_err_name(int code);
/* "op=0x80 tag=5 len=8 [ERROR code 4 \"...\"]" for failure messages. */
const char *mqt_frame_str(const struct mqt_frame *f);

/* ---- the mq CLI ------------------------------------------------------------- */

/*
 * Run $MQ_BIN with argv (argv[0] is ignored and replaced), with
 * MQ_SERVER=s->addr in its environment and stdin from /dev/null; capture
 * stdout into out (NUL-terminated, truncated to cap-1).  Returns the exit
 * status, 128 + signal, or -1; gives up (kills it) after 20 s.
 */
int mqt_run_cli(const struct mqt_server *s, char *const argv[], char *out,
                size_t cap);

/* ---- the control socket ------------------------------------------------- */

/* Send one command line to the broker's control socket and read one reply
 * line (a JSON object) into out.  0, or -1 on a socket error or no whole
 * line within 10 s. */
int mqt_control(const struct mqt_server *s, const char *cmd, char *out,
                size_t cap);

#endif
