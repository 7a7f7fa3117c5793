/*
 * A client connection, owned by its home worker.
 *
 * The connection layer knows nothing of the protocol beyond framing: it reads
 * whole frames from a bufferevent and hands them to dispatch, and it writes
 * replies in request order.  The bufferevent may be a plain socket or, later,
 * an OpenSSL one; nothing here cares which.
 *
 * Reply order.  Every request gets a struct mqd_req appended to the
 * connection's FIFO.  A request may be answered at once (PING), by this
 * worker, or by another worker that owns the queue; answers can therefore
 * complete out of order, and the FIFO releases them to the socket only from
 * the head.  Frames pushed by an owner (DELIVER, CANCELLED) go straight to
 * the socket when the FIFO is empty, or behind the last pending reply
 * otherwise, so a CONSUME's OK always precedes its first DELIVER.
 */
#ifndef MQD_CONN_H
#define MQD_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/counters.h"
#include "core/info.h"
#include "mail/mail.h"
#include "mail/router.h"
#include "proto/proto.h"
#include "store/idmap.h"

/* Output above this stops reading a client's requests and holds back
 * auto-ack deliveries until the client reads. */
#define MQD_OUTPUT_HIGH (4u << 20)

struct bufferevent;
struct event;
struct event_base;

/*
 * The home side of a worker: the connections the listener handed to it
 * (their sockets, buffers and reply order).  Embedded in struct
 * mqd_worker; only its thread touches it.  It reaches other workers only
 * through the router, and the rest of the process only through the
 * shared counters.
 */
struct mqd_home {
	unsigned index;                  /* this worker's */
	unsigned nworkers;
	const struct mqd_router *router;
	struct mqd_counters *counters;
	const struct mqd_config *cfg;    /* the worker's copy */
	struct event_base *base;
	struct mqd_conn *conns; /* list of live and closing connections */
	unsigned nconns;
	/* Connections with auto-ack credit to return once this pass over the
	 * mailbox is done: one CREDIT mail per consumer per pass, not one per
	 * delivery. */
	struct mqd_conn *credit_list;
	/* Connections with new output this pass: written once, at its end. */
	struct mqd_conn *write_list;
	struct event *write_ev;  /* the worker's: activated to write them */
	/* Connections to free after the current callback, and connections
	 * whose close must be tried again (out of memory): served by the
	 * worker's events below, so closing never needs an allocation. */
	struct mqd_conn *reap_list, *retry_list;
	struct event *reap_ev;   /* runs mqd_conn_reap_cb */
	struct event *retry_ev;  /* runs mqd_conn_retry_cb (a timer) */
	struct mqd_req *req_spare; /* recycled request slots (conn.c) */
	unsigned nreq_spare;
	bool shutting_down;
	uint64_t frames; /* client frames read so far (stats) */
};


/* What a connection remembers of its consumers: where to send CANCEL. */
struct mqd_conn_consumer {
	struct mqd_conn_consumer *next;
	uint32_t tag;
	unsigned owner;
	bool auto_ack;
	/* Its CONSUME's OK has been written: deliveries need not queue behind
	 * pending replies any more (PROTOCOL.md 4.2 only orders them after
	 * that OK), as long as none of this connection's pushed frames still
	 * wait in the FIFO (which keeps deliveries in order). */
	bool ok_out;
	uint32_t withheld; /* auto-ack credit not yet returned to the owner */
};

/* A live subscription of this connection: where its pattern lives. */
struct mqd_conn_sub {
	struct mqd_conn_sub *next;
	uint32_t tag;
	uint64_t sub_id; /* unique per server run: stale deliveries are told
	                  * apart from a new subscription reusing the tag */
	char pattern[256];
	uint8_t len;
};

enum mqd_conn_state {
	MQD_CONN_HELLO,   /* waiting for HELLO */
	MQD_CONN_OPEN,
	MQD_CONN_DRAIN,   /* a closing ERROR is queued: write it, then close */
	MQD_CONN_CLOSED,  /* socket gone; waiting for owners' CLOSE_DONE */
};

struct mqd_conn {
	struct mqd_conn *next, *prev; /* the home worker's list */
	struct mqd_home *home;
	uint64_t id;
	struct bufferevent *bev;
	char peer[64];
	char client[256];
	char user[256];
	enum mqd_conn_state state;
	bool over_limit;
	bool read_paused;
	struct mqd_req *fifo_head, *fifo_tail;
	unsigned fifo_len;
	uint64_t touched[4]; /* owners that may keep state for it (bit = index) */
	unsigned close_pending;
	struct mqd_conn_consumer *consumers;
	struct mqd_conn_sub *subs;
	struct mqd_idmap consumer_tags; /* tag + 1 -> consumer, for lookups */
	struct mqd_idmap sub_tags;      /* tag + 1 -> subscription */
	uint64_t dropped_slow; /* published messages dropped: output too full */
	uint64_t pushed_bytes; /* pushed frames waiting in the FIFO */
	uint32_t tmp_seq;
	uint64_t last_active_ms;
	uint64_t idle_ms; /* idle_timeout when it was accepted; 0 = none */
	/* The idle timeouts are armed for the rest of an idle period, not a
	 * whole one (conn.c, event_cb); the next read restores them. */
	bool idle_short;
	uint64_t bytes_in, bytes_out;
	uint64_t created_ms;
	bool withholding; /* some consumer has withheld credit */
	bool credit_queued; /* on the home worker's credit_list */
	struct mqd_conn *credit_next;
	/* Plain TCP: mqd writes the output itself at the end of each loop
	 * pass (one writev, no write-interest toggling), and hands writing
	 * to the bufferevent only while the socket is full.  A TLS
	 * bufferevent will leave this off and write as usual. */
	bool direct_write;
	bool write_queued;  /* on the home worker's write_list */
	struct mqd_conn *write_next;
	bool reap_queued, retry_queued; /* on the home's reap / retry list */
	struct mqd_conn *reap_next, *retry_next;
};

/* Home thread: wrap an accepted socket. Closes fd on failure. */
void mqd_conn_accept(struct mqd_home *h, int fd, const char *peer,
                     bool over_limit);

/* A new request slot for frame f, appended to the FIFO.  payload bytes
 * (extra bytes) are reserved in frame[]. NULL on allocation failure. */
struct mqd_req *mqd_req_new(struct mqd_conn *c, const struct mqd_frame *f,
                            size_t extra);
/* A part of a request split over several owners (ACK/NACK ids): not in the
 * FIFO; when every part is answered, the parent is. */
struct mqd_req *mqd_req_part(struct mqd_req *parent, size_t extra);
void mqd_req_free(struct mqd_req *r);
/* Teardown: free the worker's recycled request slots. */
void mqd_conn_free_spares(struct mqd_home *h);

/* Home thread: r is answered (its reply written, or quiet).  Releases what
 * the FIFO allows. */
void mqd_conn_req_done(struct mqd_req *r);
/* Home thread: answer r at once with an ERROR. */
void mqd_conn_req_error(struct mqd_req *r, int code, const char *msg);
/* Home thread: answer with an ERROR that closes the connection afterwards. */
void mqd_conn_fatal(struct mqd_conn *c, uint32_t tag, int code,
                    const char *msg);

/* Home thread: frames pushed by an owner. */
void mqd_conn_output(struct mqd_conn *c, struct mqd_mail_output *o);
/* Home thread: an owner finished forgetting this connection. */
void mqd_conn_close_done(struct mqd_conn *c);
/* Home thread: the server is stopping: tell the client, close. */
void mqd_conn_shutdown(struct mqd_conn *c);
/* Home thread: mark owner as holding state for c (before posting to it). */
void mqd_conn_touch(struct mqd_conn *c, unsigned owner);

struct mqd_conn_info;
/* Home thread: fill a row about c (out may be NULL); false when c is
 * already closing (not worth listing). */
bool mqd_conn_info(const struct mqd_conn *c, struct mqd_conn_info *out);
/* Home thread: close c as if its client had (held messages go back). */
void mqd_conn_kill(struct mqd_conn *c);

/* Remember a new consumer / subscription (its tag is free); 0, or -1 when
 * memory runs out (nothing is remembered then). */
int mqd_conn_add_consumer(struct mqd_conn *c, struct mqd_conn_consumer *cc)
	__attribute__((warn_unused_result));
int mqd_conn_add_sub(struct mqd_conn *c, struct mqd_conn_sub *cs)
	__attribute__((warn_unused_result));
/* The home's reap_ev and retry_ev callbacks (arg: the struct mqd_home). */
void mqd_conn_reap_cb(int fd, short what, void *arg);
void mqd_conn_retry_cb(int fd, short what, void *arg);
/* Write the output of the connections that got some this pass. */
void mqd_conn_write_pending(struct mqd_home *h);
/* Return the auto-ack credit gathered in this mailbox pass (worker.c). */
void mqd_conn_release_credits(struct mqd_home *h);
struct mqd_conn_consumer *mqd_conn_find_consumer(struct mqd_conn *c,
                                                 uint32_t tag);
void mqd_conn_forget_consumer(struct mqd_conn *c, uint32_t tag);
struct mqd_conn_sub *mqd_conn_find_sub(struct mqd_conn *c, uint32_t tag);
void mqd_conn_forget_sub(struct mqd_conn *c, uint32_t tag);

#endif
