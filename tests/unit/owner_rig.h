/*
 * A rig for unit tests of the queue owner (src/owner/): one or two owners
 * driven without a daemon, every effect caught by a recording outbox.
 *
 * Requests are built as the home worker builds them (net/dispatch.c: the
 * payload copied into the request and parsed there, the routing name, the
 * message of a SEND) and handed to mqd_owner_handle of the owner the home
 * would route them to.  The outbox:
 *  - send/post: REPLY and OUTPUT mails are decoded with the protocol codec
 *    into a list of events the test reads in order, and freed at once as
 *    the home frees them (so an owner touching a request after answering
 *    it shows under ASan); CLOSE_DONE is recorded with the slot it came
 *    through; mails for another owner (DEAD, ROUTE, ROUTE_DONE) wait in a
 *    list that rig_pass delivers;
 *  - deadline: recorded; rig_advance moves the fake monotonic clock and
 *    fires mqd_owner_timer when the recorded deadline has come;
 *  - flush_soon: marks a flush as due, done by rig_pass (the end of the
 *    loop pass) unless the test flushes by hand (manual_flush).
 * Every helper asserts with Check, so a test reads as a script.
 */
#ifndef MQD_TEST_OWNER_RIG_H
#define MQD_TEST_OWNER_RIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/info.h"
#include "mail/mail.h"
#include "owner/owner.h"
#include "proto/proto.h"

struct event_base;
struct mqd_dlgraph;

/* The fake clocks (monotonic and wall ms) every owner reads. */
extern uint64_t rig_mono, rig_wall;

#define RIG_MAX_OWNERS 2
#define RIG_MAX_CONNS 8

/* A client connection as the owner sees it: an id, a home, and an opaque
 * pointer (this struct) it hands back in OUTPUT mails. */
struct rig_conn {
	uint64_t id;
	unsigned home;
	bool closed;
};

/* One thing an owner sent a connection's home: a reply, one frame of an
 * OUTPUT mail, or CLOSE_DONE. */
struct rig_ev {
	struct rig_ev *next;
	int kind; /* MQD_MAIL_REPLY, MQD_MAIL_OUTPUT, MQD_MAIL_CLOSE_DONE */
	unsigned from, to;
	bool posted; /* through the post slot */
	uint64_t conn_id;
	/* OUTPUT: the mail the frame came in. */
	unsigned batch;
	uint32_t otag, nframes, credit;
	uint64_t sub_id;
	bool cancelled;
	/* REPLY, OUTPUT: the frame (quiet: a QUIET success, no frame). */
	bool quiet;
	struct mqd_frame f;
	union mqd_payload p;
	uint8_t *buf;
};

/* A mail for another owner, waiting for rig_pass. */
struct rig_pending {
	struct rig_pending *next;
	unsigned to;
	struct mqd_mail *m;
};

struct rig_world;

/* One owner's outbox: what its deadline and flush_soon slots were told. */
struct rig_rec {
	struct rig_world *w;
	unsigned index;
	uint64_t deadline; /* as last set; 0 = none (or fired) */
	bool flush_due;
};

struct rig_world {
	unsigned n;
	struct mqd_owner ow[RIG_MAX_OWNERS];
	struct rig_rec rec[RIG_MAX_OWNERS];
	struct mqd_config cfg;
	struct event_base *base;
	struct mqd_dlgraph *dl;
	struct rig_conn conns[RIG_MAX_CONNS];
	unsigned nconns;
	struct rig_ev *head, *tail; /* recorded, not looked at yet */
	struct rig_ev *seen;        /* looked at: freed with the world */
	struct rig_pending *ph, *pt; /* mails for owners */
	unsigned batches;   /* OUTPUT mails seen (numbers rig_ev.batch) */
	bool manual_flush;  /* rig_pass leaves flushing to the test */
};

/* SEND options beyond queue and body (all 0: none). */
struct rig_sendopt {
	uint8_t flags, priority;
	uint32_t ttl_ms, delay_ms;
	const char *hkey, *hval;
	bool publish;
};

/* ---- the world --------------------------------------------------------- */

/* n owners (1 or 2) with [defaults] settings in cfg (read live: a test
 * may change it), one event_base (for waiting GETs), one dlgraph. */
struct rig_world *rig_world_new(unsigned n);
/* Close every connection still open, free it all, and check that no
 * message memory is left. */
void rig_world_free(struct rig_world *w);
/* A new connection whose home is worker `home`. */
struct rig_conn *rig_connect(struct rig_world *w, unsigned home);
/* The end of a loop pass: mails between owners delivered, output batches
 * flushed, until all is quiet. */
void rig_pass(struct rig_world *w);
/* Flush one owner by hand (flush_soon must have asked for it). */
void rig_end_of_pass(struct rig_world *w, unsigned owner);
/* Move the clocks on by ms and fire every deadline that has come. */
void rig_advance(struct rig_world *w, uint64_t ms);
/* MQD_MAIL_CLOSE for c to one owner; with run, then rig_pass. */
void rig_close_on(struct rig_world *w, struct rig_conn *c, unsigned owner,
                  bool run);

/* ---- what the owners sent, in order ------------------------------------ */

struct rig_ev *rig_next_ev(struct rig_world *w);
/* Nothing more was sent. */
void rig_idle(struct rig_world *w);
/* The next event is a reply to c with this tag and op. */
struct rig_ev *rig_reply(struct rig_world *w, const struct rig_conn *c,
                         uint32_t tag, uint8_t op);
void rig_error_reply(struct rig_world *w, const struct rig_conn *c,
                     uint32_t tag, uint16_t code);
uint64_t rig_ok_u64(struct rig_world *w, const struct rig_conn *c,
                    uint32_t tag);
uint32_t rig_ok_u32(struct rig_world *w, const struct rig_conn *c,
                    uint32_t tag);
void rig_ok_empty(struct rig_world *w, const struct rig_conn *c,
                  uint32_t tag);
/* A QUIET success: answered, no frame. */
void rig_quiet_ok(struct rig_world *w, const struct rig_conn *c);
/* The next event is a frame pushed to c (an OUTPUT mail). */
struct rig_ev *rig_pushed(struct rig_world *w, const struct rig_conn *c,
                          uint32_t tag, uint8_t op);
struct rig_ev *rig_deliver(struct rig_world *w, const struct rig_conn *c,
                           uint32_t tag);
/* The next event is CLOSE_DONE for c, through the post slot, to its
 * home. */
void rig_close_done(struct rig_world *w, const struct rig_conn *c);
void rig_span_is(struct mqd_span s, const char *want);
void rig_body_is(const struct rig_ev *e, const char *want);
void rig_header_is(const struct rig_ev *e, const char *key,
                   const char *want);

/* ---- requests (each one handed to its owner, then rig_pass) ------------ */

struct mqd_span rig_span_of(const char *s);
void rig_declare(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                 uint8_t flags, const char *name,
                 const struct mqd_declare *settings);
/* DECLARE (tag 1) that must answer DECLARED. */
void rig_declare_ok(struct rig_world *w, struct rig_conn *c,
                    const char *name, const struct mqd_declare *settings);
/* SEND, or PUBLISH with o->publish; o may be NULL. */
void rig_send_msg(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                  const char *dest, const char *body,
                  const struct rig_sendopt *o);
/* SEND (tag 2) that must succeed: the message's id. */
uint64_t rig_send_ok(struct rig_world *w, struct rig_conn *c,
                     const char *queue, const char *body);
/* PUBLISH; without run, the pass is left to the test. */
void rig_publish(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                 const char *topic, const char *body, bool run);
void rig_get(struct rig_world *w, struct rig_conn *c, uint32_t tag,
             uint8_t flags, const char *queue, uint32_t timeout_ms);
/* GET (tag 3, no wait) that must answer MESSAGE, or EMPTY. */
struct rig_ev *rig_get_msg(struct rig_world *w, struct rig_conn *c,
                           const char *queue);
void rig_get_empty(struct rig_world *w, struct rig_conn *c,
                   const char *queue);
void rig_consume(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                 uint8_t flags, const char *queue, uint32_t prefetch,
                 bool run);
/* CANCEL (one owner only). */
void rig_cancel(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                uint32_t which);
/* ACK or NACK of ids, all of one owner. */
void rig_settle(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                uint8_t op, uint8_t flags, uint8_t requeue,
                uint32_t delay_ms, const uint64_t *ids, uint16_t n);
/* ACK (tag 4) / NACK (tag 5) of one id: how many were counted. */
uint32_t rig_ack1(struct rig_world *w, struct rig_conn *c, uint64_t id);
uint32_t rig_nack1(struct rig_world *w, struct rig_conn *c, uint64_t id,
                   uint8_t requeue, uint32_t delay_ms);
/* DELETE or PURGE. */
void rig_queue_op(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                  uint8_t op, uint8_t flags, const char *queue);
/* BIND or UNBIND. */
void rig_bind_op(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                 uint8_t op, const char *queue, const char *pattern);
/* SUBSCRIBE or UNSUBSCRIBE (of a pattern held by one shard), as the
 * home makes its part: pattern and sub_id set. */
void rig_subscription(struct rig_world *w, struct rig_conn *c, uint32_t tag,
                      uint8_t op, const char *pattern, uint64_t sub_id);

/* ---- queries ----------------------------------------------------------- */

/* The queue's row from its owner (mqd_ops_query); false if none. */
bool rig_row(struct rig_world *w, const char *name,
             struct mqd_queue_info *out);
/* The same, which must exist. */
struct mqd_queue_info rig_info(struct rig_world *w, const char *name);
/* A name prefix<k> that hashes to owner `owner` of n. */
void rig_name_on(unsigned owner, unsigned n, const char *prefix, char *out,
                 size_t len);

#endif
