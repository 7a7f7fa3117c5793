/*
 * Assertion helpers shared by the integration tests: starting and stopping
 * mqd, and talking to it over raw sockets (PROTOCOL.md) with deadlines.
 * Each helper takes the caller's line (the macros pass __LINE__) so that a
 * failure names the line of the test, not of this library.
 */
#ifndef MQT_EXPECT_H
#define MQT_EXPECT_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>

#include "harness.h"

#define RD_MS 10000   /* a reply that must come */
#define QUIET_MS 200  /* a negative: nothing comes within this */
#define GONE_MS 10000 /* wait-until limit for asynchronous effects */

/* ---- the broker ----------------------------------------------------------- */

#define START(s) START_CONF(s, NULL, NULL)
#define START_EXTRA(s, extra) START_CONF(s, extra, NULL)
#define START_CONF(s, extra, sections)                                        \
	ck_assert_msg(mqt_server_start_conf(&(s), extra, sections) == 0,      \
	              "mqd did not start (see stderr)")
#define STOP(s)                                                               \
	do {                                                                  \
		int stop_rc_ = mqt_server_stop(&(s));                         \
		ck_assert_msg(stop_rc_ == 0,                                  \
		              "mqd did not exit 0 after SIGTERM: %d "        \
		              "(see its log on stderr)", stop_rc_);           \
	} while (0)

/* Sleep ms milliseconds (restarting on EINTR). */
void sleep_ms(long ms);

/* libmq connection to s, or fail. */
mq_conn *connect_at(int line, const struct mqt_server *s);
#define CONNECT(s) connect_at(__LINE__, &(s))

/* ---- the suite ------------------------------------------------------------- */

/* One TCase per test, so each has its own timeout. */
#define ADD_T(su, t, secs)                                                    \
	do {                                                                  \
		TCase *tc_ = tcase_create(#t);                                \
		tcase_set_timeout(tc_, secs);                                 \
		tcase_add_test(tc_, t);                                       \
		suite_add_tcase(su, tc_);                                     \
	} while (0)
#define ADD(su, t) ADD_T(su, t, 60)

/* Run the suite (forking, SIGPIPE ignored); EXIT_SUCCESS or EXIT_FAILURE. */
int mqt_run_suite(Suite *su);

/* ---- raw frames ------------------------------------------------------------- */

const char *rd_str(int rc);

int raw_open_at(int line, const struct mqt_server *s);
#define RAW_OPEN(s) raw_open_at(__LINE__, &(s))
int raw_connect_at(int line, const struct mqt_server *s);
#define RAW_CONNECT(s) raw_connect_at(__LINE__, &(s))

void send_at(int line, int fd, struct mqt_buf *b);
#define SENDB(fd, b) send_at(__LINE__, fd, b)

void expect_at(int line, int fd, struct mqt_frame *f, int op, uint32_t tag);
#define EXPECT(fd, f, op, tag) expect_at(__LINE__, fd, f, op, tag)
void expect_err_at(int line, int fd, uint32_t tag, int code);
#define EXPECT_ERR(fd, tag, code) expect_err_at(__LINE__, fd, tag, code)
/* The server closes the connection, sending nothing more first. */
void expect_closed_at(int line, int fd);
#define EXPECT_CLOSED(fd) expect_closed_at(__LINE__, fd)
void expect_quiet_at(int line, int fd, int ms);
#define EXPECT_QUIET(fd, ms) expect_quiet_at(__LINE__, fd, ms)

uint64_t ok_u64_at(int line, struct mqt_frame *f);
uint32_t ok_u32_at(int line, struct mqt_frame *f);
void expect_ok_empty_at(int line, int fd, uint32_t tag);
#define EXPECT_OK(fd, tag) expect_ok_empty_at(__LINE__, fd, tag)

/* Send a frame built by enc and expect ERROR code with its tag. */
#define EXPECT_REQ_ERR(fd, b, tag, code)                                      \
	do {                                                                  \
		SENDB(fd, b);                                                 \
		EXPECT_ERR(fd, tag, code);                                    \
	} while (0)

void ping_at(int line, int fd, uint32_t tag);
#define PING(fd, tag) ping_at(__LINE__, fd, tag)

/* ---- messages ---------------------------------------------------------------- */

/* SEND (no headers) and expect OK with a nonzero id. */
uint64_t do_send_at(int line, int fd, uint32_t tag, const char *q,
                    uint8_t prio, const char *body);
#define DO_SEND(fd, tag, q, prio, body) do_send_at(__LINE__, fd, tag, q, prio, body)

bool body_is(const struct mqt_msg *m, const char *body);
void check_body_at(int line, const struct mqt_msg *m, const char *body);
#define CHECK_BODY(m, body) check_body_at(__LINE__, m, body)
void parse_msg_at(int line, const struct mqt_frame *f, struct mqt_msg *m);

/* GET and expect MESSAGE; f must be freed by the caller. */
void do_get_at(int line, int fd, uint32_t tag, const char *q,
               uint32_t timeout, uint8_t flags, struct mqt_frame *f,
               struct mqt_msg *m);
#define DO_GET(fd, tag, q, timeout, flags, f, m)                              \
	do_get_at(__LINE__, fd, tag, q, timeout, flags, f, m)

/* GET (waiting up to timeout ms) and expect this body and attempts;
 * returns the id. */
uint64_t get_body_at(int line, int fd, uint32_t tag, const char *q,
                     uint32_t timeout, uint8_t flags, const char *body,
                     uint16_t attempts);
#define GET_BODY(fd, tag, q, flags, body, attempts)                           \
	get_body_at(__LINE__, fd, tag, q, 0, flags, body, attempts)
#define GET_WAIT_BODY(fd, tag, q, timeout, flags, body, attempts)             \
	get_body_at(__LINE__, fd, tag, q, timeout, flags, body, attempts)

void get_empty_at(int line, int fd, uint32_t tag, const char *q,
                  uint32_t timeout);
#define GET_EMPTY(fd, tag, q, timeout) get_empty_at(__LINE__, fd, tag, q, timeout)

uint32_t do_ack_at(int line, int fd, uint32_t tag, const uint64_t *ids,
                   uint16_t n);
#define DO_ACK(fd, tag, ids, n) do_ack_at(__LINE__, fd, tag, ids, n)
uint32_t do_nack_delay_at(int line, int fd, uint32_t tag, uint8_t requeue,
                          uint32_t delay_ms, const uint64_t *ids, uint16_t n);
#define DO_NACK(fd, tag, requeue, ids, n)                                     \
	do_nack_delay_at(__LINE__, fd, tag, requeue, 0, ids, n)
#define DO_NACK_DELAY(fd, tag, requeue, delay, ids, n)                        \
	do_nack_delay_at(__LINE__, fd, tag, requeue, delay, ids, n)

void do_consume_at(int line, int fd, uint8_t flags, uint32_t tag,
                   const char *q, uint32_t prefetch);
#define DO_CONSUME(fd, flags, tag, q, prefetch) do_consume_at(__LINE__, fd, flags, tag, q, prefetch)
void do_cancel_at(int line, int fd, uint32_t tag, uint32_t which);
#define DO_CANCEL(fd, tag, which) do_cancel_at(__LINE__, fd, tag, which)
void expect_deliver_at(int line, int fd, uint32_t tag, struct mqt_frame *f,
                       struct mqt_msg *m);
#define EXPECT_DELIVER(fd, tag, f, m) expect_deliver_at(__LINE__, fd, tag, f, m)

/* ---- queues ------------------------------------------------------------------ */

struct declared {
	char queue[256];
	uint64_t ready;
	uint32_t consumers;
};

void do_declare_at(int line, int fd, uint8_t flags, uint32_t tag,
                   const char *q, const struct mq_queue_opts *o,
                   struct declared *d);
#define DO_DECLARE(fd, flags, tag, q, o, d) do_declare_at(__LINE__, fd, flags, tag, q, o, d)
void declare_err_at(int line, int fd, uint8_t flags, uint32_t tag,
                    const char *q, const struct mq_queue_opts *o, int code);
#define DECLARE_ERR(fd, flags, tag, q, o, code)                               \
	declare_err_at(__LINE__, fd, flags, tag, q, o, code)

/* DELETE / PURGE with the reply left in f (tag checked). */
void queue_op_at(int line, int fd, uint8_t op, uint8_t flags, uint32_t tag,
                 const char *q, struct mqt_frame *f);
void delete_expect_at(int line, int fd, uint8_t flags, uint32_t tag,
                      const char *q, int code);
#define DELETE_EXPECT(fd, flags, tag, q, code) delete_expect_at(__LINE__, fd, flags, tag, q, code)
uint64_t do_purge_at(int line, int fd, uint32_t tag, const char *q);
#define DO_PURGE(fd, tag, q) do_purge_at(__LINE__, fd, tag, q)

/* DECLARE PASSIVE: 1 if the queue exists, 0 on NOT_FOUND. */
int queue_exists_at(int line, int fd, uint32_t tag, const char *q);
#define QUEUE_EXISTS(fd, tag, q) queue_exists_at(__LINE__, fd, tag, q)
/* Wait until a queue is gone (an asynchronous effect of a close). */
void wait_gone_at(int line, int fd, const char *q);
#define WAIT_GONE(fd, q) wait_gone_at(__LINE__, fd, q)

#endif
