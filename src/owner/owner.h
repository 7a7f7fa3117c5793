/*
 * A queue's owner: the part of a worker that holds the queues whose names
 * hash to it (their messages, consumers, waiting GETs, the held-message
 * index), the topic shard of its pubsub index, and its timer heap.
 *
 * A connection seen from an owner is a "peer": what that connection holds
 * and consumes here, known by the connection's id and home worker index;
 * the connection pointer a peer carries is the home's, handed back in the
 * mails the owner sends, never dereferenced here.
 *
 * Every effect on the world outside the owner goes through its outbox, a
 * small table of slots the worker fills in (or a test, to record them):
 * mails to other workers (replies, deliveries, CLOSE_DONE, dead letters,
 * route mails), the earliest deadline of the timer heap, and the request to
 * flush output batches at the end of the loop pass.  So the owner knows
 * nothing of sockets, threads or the server, and its unit tests need no
 * daemon (tests/unit/test_owner.c).
 *
 * Only the owning worker's thread touches an owner.
 */
#ifndef MQD_OWNER_H
#define MQD_OWNER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "mail/mail.h"
#include "proto/proto.h"
#include "store/idmap.h"
#include "store/queue.h"
#include "store/timers.h"

struct event_base;
struct mqd_dlgraph;
struct mqd_topics;
struct mqd_binding;
struct mqd_sub_entry;

struct mqd_outbox {
	void *ctx;
	/* Mail m for worker `to`: REPLY and OUTPUT for a connection's home
	 * (which may be this very worker: then it is handled at once), DEAD,
	 * ROUTE and ROUTE_DONE for another owner (mqd_owner_send keeps those
	 * meant for this owner here).  Cannot fail. */
	void (*send)(void *ctx, unsigned to, struct mqd_mail *m);
	/* The same, but always through `to`'s mailbox, even when `to` is
	 * this worker: CLOSE_DONE, which must not free the connection under
	 * the caller's feet. */
	void (*post)(void *ctx, unsigned to, struct mqd_mail *m);
	/* The timer heap's earliest deadline is now `at` (monotonic ms; 0:
	 * nothing is due any more): call mqd_owner_timer then.  0, or -1
	 * when the timer cannot be set (it is tried again on the next
	 * change). */
	int (*deadline)(void *ctx, uint64_t at);
	/* Output batches were started: call mqd_owner_flush once this pass
	 * of the loop is over. */
	void (*flush_soon)(void *ctx);
};

/* What a queue's owner keeps about one connection. */
struct mqd_peer {
	uint64_t conn_id;
	struct mqd_conn *conn; /* valid until this owner answers CLOSE_DONE */
	unsigned home;
	struct mqd_msg *held_head, *held_tail; /* messages it holds here */
	uint64_t nheld;
	struct mqd_consumer *consumers;        /* its consumers here */
	struct mqd_req *waiting;               /* its parked GETs here */
	struct mqd_peer_excl *exclusive;       /* queues it declared EXCLUSIVE */
	struct mqd_sub_entry *subs;            /* its subscriptions here */
	unsigned waits;      /* its requests waiting here on other workers */
	struct mqd_mail_close *close; /* gone, CLOSE_DONE held until waits = 0 */
	/* Frames for this connection gathered during the current pass of
	 * this worker's loop (one tag), posted as one OUTPUT mail when the
	 * pass ends or before anything else this owner tells it. */
	struct mqd_mail_output *batch;
	struct mqd_peer *batch_next; /* in the owner's list of batches */
};

struct mqd_peer_excl {
	struct mqd_peer_excl *next;
	char name[256];
	uint8_t len;
};

struct mqd_owner {
	unsigned index;    /* this worker's */
	unsigned nworkers; /* for shard and owner numbers */
	const struct mqd_config *cfg; /* the worker's copy (reload swaps it) */
	struct event_base *base;      /* timers of waiting GETs */
	struct mqd_outbox out;
	/* Dead-letter edges of every queue, for loop checks; shared by all
	 * owners under its own lock (store/dlgraph.h). */
	struct mqd_dlgraph *dlgraph;
	struct mqd_qtable queues;
	struct mqd_idmap held;  /* message id -> held struct mqd_msg */
	struct mqd_idmap peers; /* connection id -> struct mqd_peer */
	uint64_t next_seq;      /* message ids: seq << 8 | index */
	struct mqd_timers timers; /* expiry, delays, ack deadlines */
	uint64_t timer_armed;   /* the deadline last given out; 0 = none */
	struct mqd_peer *batches; /* peers with output gathered this pass */
	struct mqd_wbuf scratch;  /* frame heads are encoded here */
	struct mqd_topics *topics; /* subscriptions and bindings of its shard */
	struct mqd_binding *bindings; /* every binding in topics, by queue */
	bool paused;            /* shutdown: deliver nothing more */
	/* Counters for stats and metrics (read through queries). */
	uint64_t sent, delivered;
};

/* 0, or -1 out of memory (then mqd_owner_free). */
int mqd_owner_init(struct mqd_owner *ow, unsigned index, unsigned nworkers,
                   const struct mqd_config *cfg, struct event_base *base,
                   struct mqd_dlgraph *dlgraph, const struct mqd_outbox *out)
	__attribute__((warn_unused_result));
/* Teardown after the thread stopped: queues, messages, peers, batches. */
void mqd_owner_free(struct mqd_owner *ow);

/* Take a mail meant for the owner: REQ, CREDIT, CLOSE, DEAD, ROUTE,
 * ROUTE_DONE.  false: not one of those (m untouched). */
bool mqd_owner_handle(struct mqd_owner *ow, struct mqd_mail *m);
/* Send m to worker `to`: handled here at once when `to` is this owner,
 * else through the outbox. */
void mqd_owner_send(struct mqd_owner *ow, unsigned to, struct mqd_mail *m);
/* The deadline given to the outbox has come. */
void mqd_owner_timer(struct mqd_owner *ow);
/* The loop pass is over: post every output batch. */
void mqd_owner_flush(struct mqd_owner *ow);

/* A new message id on this owner. */
static inline uint64_t mqd_owner_new_id(struct mqd_owner *ow)
{
	return (++ow->next_seq << 8) | ow->index;
}

/* Hand an executed request back to its connection's home worker.  From
 * this call on r belongs to the home, which may free or recycle it at
 * once (on this thread or its own): the caller must not read r again. */
void mqd_owner_answer(struct mqd_owner *ow, struct mqd_req *r);
/* Hand pushed frames to a peer's connection (after its batch, if any). */
void mqd_owner_push(struct mqd_owner *ow, struct mqd_peer *p,
                    struct mqd_mail_output *o);
/*
 * Add one frame (head then body) for consumer or subscription `tag` to
 * p's batch: deliveries made in one pass of the loop travel to the
 * connection in one mail and one buffer copy, instead of one allocation
 * and one mail each.  credit: auto-ack deliveries it carries.  Returns 0,
 * or -1 when memory runs out (nothing added).
 */
int mqd_owner_push_frame(struct mqd_owner *ow, struct mqd_peer *p,
                         uint32_t tag, uint64_t sub_id, uint32_t credit,
                         const void *head, size_t hlen, const void *body,
                         size_t blen) __attribute__((warn_unused_result));
/* Post p's batch now (it is about to hear something else, or go). */
void mqd_owner_flush_peer(struct mqd_owner *ow, struct mqd_peer *p);
/* Post CLOSE_DONE for a CLOSE this owner has finished. */
void mqd_owner_close_done(struct mqd_owner *ow, struct mqd_mail_close *c);
/* A request of peer p that waited here on other workers is answered. */
void mqd_owner_wait_done(struct mqd_owner *ow, struct mqd_peer *p);
/* The peer record for r's connection on this owner, created on first use
 * (NULL on allocation failure). */
struct mqd_peer *mqd_owner_peer(struct mqd_owner *ow, const struct mqd_req *r);

#endif
