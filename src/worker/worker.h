/*
 * Worker threads.  Each worker runs its own libevent event_base and owns:
 *   - the connections the listener handed to it (their sockets, buffers and
 *     reply order), and
 *   - the queues whose names hash to it (their messages, consumers, waiting
 *     GETs, and the held-message index).
 * Nothing a worker owns is touched by another thread; work for another
 * worker travels as a mail through that worker's mailbox.
 *
 * A connection seen from a queue's owner is a "peer": the owner's record of
 * what that connection holds and consumes there.  See doc/ARCHITECTURE.md.
 */
#ifndef MQD_WORKER_H
#define MQD_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "proto/proto.h"
#include "store/idmap.h"
#include "store/queue.h"
#include "store/timers.h"
#include "worker/mailbox.h"

struct event_base;
struct event;
struct mqd_server;
struct mqd_conn;
struct mqd_topics;
struct mqd_binding;
struct mqd_sub_entry;
struct mqd_req;

enum mqd_mail_type {
	MQD_MAIL_CONN_NEW,   /* listener -> home: a new socket */
	MQD_MAIL_REQ,        /* home -> owner: execute a request */
	MQD_MAIL_REPLY,      /* owner -> home: the request is answered */
	MQD_MAIL_OUTPUT,     /* owner -> home: pushed frames (DELIVER, ...) */
	MQD_MAIL_CREDIT,     /* home -> owner: auto-ack deliveries written */
	MQD_MAIL_CLOSE,      /* home -> owner: the connection is gone */
	MQD_MAIL_CLOSE_DONE, /* owner -> home: nothing of it is left here */
	MQD_MAIL_SHUTDOWN,   /* main -> worker: close every connection */
	MQD_MAIL_STOP,       /* main -> worker: leave the event loop */
	MQD_MAIL_DEAD,       /* owner -> owner: a dead-lettered message */
	MQD_MAIL_QUERY,      /* main -> worker -> main: see enum mqd_query_kind */
	MQD_MAIL_CONFIG,     /* main -> worker: reloaded settings */
	MQD_MAIL_PAUSE,      /* main -> worker: stop delivering (shutdown) */
	MQD_MAIL_ROUTE,      /* worker -> worker: topic index and copies */
	MQD_MAIL_ROUTE_DONE, /* ... and its answer */
};

/* What a MQD_MAIL_QUERY asks a worker for. */
enum mqd_query_kind {
	MQD_QUERY_QUEUES,  /* rows of its queues (one by name, or all) */
	MQD_QUERY_WORKERS, /* its own figures */
	MQD_QUERY_CONNS,   /* its connections, and what peers hold here */
	MQD_QUERY_KILL,    /* close connection id if it is at home here */
	MQD_QUERY_ADMIN,   /* declare/delete/purge/set a queue it owns */
};

struct mqd_config_mail {
	struct mqd_mail mail;
	struct mqd_config cfg; /* without [queue NAME] sections */
};

/* A message moving to its dead-letter queue on another owner. */
struct mqd_mail_dead {
	struct mqd_mail mail;
	struct mqd_msg *msg;
	char queue[256];
	uint8_t len;
};

struct mqd_queue_info;
struct mqd_conn_info;
struct mqd_query;

/* What a peer holds on an owner, for the connections listing. */
struct mqd_held_count {
	uint64_t conn_id;
	uint64_t held;
};

/* One worker's part of a query: filled by the worker, sent back to the
 * main thread, which owns it. */
struct mqd_mail_query {
	struct mqd_mail mail;
	struct mqd_query *query; /* the main thread's gathering record */
	int kind;                /* enum mqd_query_kind */
	unsigned dest;           /* the worker asked */
	bool failed;             /* out of memory while filling */
	char name[256];          /* QUEUES: "" = every queue; ADMIN: queue */
	struct mqd_queue_info *rows; /* QUEUES */
	size_t n;
	struct mqd_worker_info *winfo; /* WORKERS (one row) */
	struct mqd_conn_info *conns;   /* CONNS */
	size_t nconns;
	struct mqd_held_count *held;
	size_t nheld;
	uint64_t id;             /* KILL */
	bool found;
	int admin_op;            /* ADMIN: enum mqd_admin_op, or -1 = set */
	struct mqd_queue_conf settings;
	bool has_settings, if_empty;
	struct mqd_admin_result *result;
};

struct mqd_mail_conn_new {
	struct mqd_mail mail;
	int fd;
	bool over_limit;
	char peer[64];
};

/* Frames pushed to a connection by a queue's owner. */
struct mqd_mail_output {
	struct mqd_mail mail;
	struct mqd_conn *conn;
	uint32_t tag;          /* consumer or subscription tag */
	uint32_t credit;       /* auto-ack deliveries inside, to credit back */
	bool cancelled;        /* the owner ended this consumer */
	uint32_t owner;        /* sending worker, for credits */
	uint64_t sub_id;       /* a subscription's delivery (0: a consumer's) */
	struct mqd_shared *shared; /* if set: data[] is the frame's first part,
	                            * shared->data the rest */
	uint32_t frames;       /* whole frames in data[]; 0 means one */
	size_t len;
	size_t cap;            /* room in data[] (a batch being filled) */
	uint8_t data[];
};

struct mqd_mail_credit {
	struct mqd_mail mail;
	uint64_t conn_id;
	uint32_t tag;
	uint32_t n;
};

struct mqd_mail_close {
	struct mqd_mail mail;
	struct mqd_conn *conn;
	uint64_t conn_id;
	uint32_t from; /* the owner that answers CLOSE_DONE */
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
	 * pass ends or before anything else this worker tells it. */
	struct mqd_mail_output *batch;
	struct mqd_peer *batch_next; /* in the worker's list of batches */
};

struct mqd_peer_excl {
	struct mqd_peer_excl *next;
	char name[256];
	uint8_t len;
};

struct mqd_worker {
	struct mqd_server *srv;
	unsigned index;
	pthread_t thread;
	struct event_base *base;
	struct mqd_mailbox mb;
	struct event *mb_ev;

	/* Owner side. */
	struct mqd_qtable queues;
	struct mqd_idmap held;  /* message id -> held struct mqd_msg */
	struct mqd_idmap peers; /* connection id -> struct mqd_peer */
	uint64_t next_seq;      /* message ids: seq << 8 | index */
	struct mqd_timers timers; /* expiry, delays, ack deadlines */
	struct mqd_peer *batches; /* peers with output gathered this pass */
	struct mqd_wbuf scratch;  /* frame heads are encoded here */
	struct event *flush_ev;   /* posts the batches at the end of a pass */
	struct mqd_topics *topics; /* subscriptions and bindings of its shard */
	struct mqd_binding *bindings; /* every binding in topics, by queue */
	struct event *timer_ev;
	uint64_t timer_armed;   /* when timer_ev fires; 0 = not armed */

	/* Home side. */
	struct mqd_conn *conns; /* list of live and closing connections */
	unsigned nconns;
	/* Connections with auto-ack credit to return once this pass over the
	 * mailbox is done: one CREDIT mail per consumer per pass, not one per
	 * delivery. */
	struct mqd_conn *credit_list;
	/* Connections with new output this pass: written once, at its end. */
	struct mqd_conn *write_list;
	struct event *write_ev;
	struct mqd_req *req_spare; /* recycled request slots (conn.c) */
	unsigned nreq_spare;
	bool shutting_down;
	bool paused;            /* shutdown: deliver nothing more */
	/* This worker's own copy of the settings it reads: reload sends a
	 * new one, so no thread reads what another writes. */
	struct mqd_config cfg;
	/* Counters for stats and metrics (read through queries). */
	uint64_t mails, frames, sent, delivered;
	bool started; /* its thread is running (main thread's view) */
};

int mqd_worker_init(struct mqd_worker *w, struct mqd_server *srv,
                    unsigned index) __attribute__((warn_unused_result));
int mqd_worker_start(struct mqd_worker *w) __attribute__((warn_unused_result));
void mqd_worker_join(struct mqd_worker *w);
/* After join: free what is left (queues, messages, mails). */
void mqd_worker_destroy(struct mqd_worker *w);

/* Post a mail to worker w from any thread. */
void mqd_worker_post(struct mqd_worker *w, struct mqd_mail *m);

/* A new message id on owner w. */
static inline uint64_t mqd_worker_new_id(struct mqd_worker *w)
{
	return (++w->next_seq << 8) | w->index;
}
static inline unsigned mqd_id_owner(uint64_t id)
{
	return (unsigned)(id & 0xff);
}

/* Hand an executed request back to its connection's home worker. */
void mqd_worker_answer(struct mqd_worker *w, struct mqd_req *r);
/* Hand pushed frames to a peer's connection (after its batch, if any). */
void mqd_worker_push(struct mqd_worker *w, struct mqd_peer *p,
                     struct mqd_mail_output *o);
/*
 * Add one frame (head then body) for consumer or subscription `tag` to
 * p's batch: deliveries made in one pass of the loop travel to the
 * connection in one mail and one buffer copy, instead of one allocation
 * and one mail each.  credit: auto-ack deliveries it carries.  Returns 0,
 * or -1 when memory runs out (nothing added).
 */
int mqd_worker_push_frame(struct mqd_worker *w, struct mqd_peer *p,
                          uint32_t tag, uint64_t sub_id, uint32_t credit,
                          const void *head, size_t hlen, const void *body,
                          size_t blen) __attribute__((warn_unused_result));
/* Post p's batch now (it is about to hear something else, or go). */
void mqd_worker_flush_peer(struct mqd_worker *w, struct mqd_peer *p);

/* Post CLOSE_DONE for a CLOSE this owner has finished. */
void mqd_worker_close_done(struct mqd_worker *w, struct mqd_mail_close *c);
/* A request of peer p that waited here on other workers is answered. */
void mqd_worker_wait_done(struct mqd_worker *w, struct mqd_peer *p);

/* The peer record for a connection on this owner, created on first use
 * (NULL on allocation failure). */
struct mqd_peer *mqd_worker_peer(struct mqd_worker *w, struct mqd_conn *c);

#endif
