/*
 * The mails workers send each other, and the request record.
 *
 * Everything that crosses a thread travels as one of these, through a
 * worker's mailbox (mailbox.h) or, when sender and receiver are the same
 * worker, by a direct call of the receiver's handler (router.h).  The
 * structs are plain data: the layers above (net for a connection's home,
 * owner for a queue's owner) give them meaning, and neither needs the
 * other's headers to do so.
 *
 * A request names its connection by id and home worker index: an owner
 * never dereferences the connection pointer it carries back.
 */
#ifndef MQD_MAIL_H
#define MQD_MAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/info.h"
#include "mail/mailbox.h"
#include "proto/proto.h"

struct event;
struct mqd_conn;
struct mqd_msg;
struct mqd_owner;
struct mqd_query;
struct mqd_queue;
struct mqd_shared;

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
	MQD_MAIL_ROUTE,      /* owner -> owner: topic index and copies */
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
	struct mqd_conn *conn; /* opaque to the owner: the home's pointer */
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
	struct mqd_conn *conn; /* opaque to the owner */
	uint64_t conn_id;
	uint32_t home;         /* where CLOSE_DONE goes */
	uint32_t from;         /* the owner that answers CLOSE_DONE */
};

/*
 * One client request, from its connection's home worker to the owner that
 * executes it and back (REQ out, REPLY home).  Made and recycled by the
 * home (net/conn.c); the owner fills reply and the GET-wait fields.
 */
struct mqd_req {
	struct mqd_mail mail; /* first: REQ to the owner, REPLY back */
	struct mqd_req *fifo_next;
	struct mqd_conn *conn;  /* the home's; opaque to the owner */
	uint64_t conn_id;       /* what the owner knows the connection by */
	uint32_t home;          /* the connection's home worker */
	struct mqd_req *parent; /* a part of a split ACK/NACK */
	uint32_t parts;         /* parent: parts not yet answered */
	uint32_t count;         /* ACK/NACK: ids counted */
	uint8_t op, flags;
	uint32_t tag;
	bool done;
	bool quiet_ok;          /* answered, and QUIET: nothing to write */
	bool pushed;            /* a pushed frame waiting behind a reply */
	union mqd_payload p;    /* spans point into frame[] */
	struct mqd_msg *msg;    /* SEND: the message to store */
	char name[256];         /* the queue this request routes by */
	uint8_t name_len;
	char pattern[256];      /* SUBSCRIBE, BIND, UNBIND parts */
	uint8_t pattern_len;
	uint64_t sub_id;        /* SUBSCRIBE, UNSUBSCRIBE parts */
	/* A GET waiting on its owner. */
	struct mqd_req *wnext, *wprev; /* in the queue's waiters */
	struct mqd_req *pnext, *pprev; /* in the peer's waiting list */
	struct mqd_queue *wq;
	struct mqd_owner *wowner;
	struct event *timer;
	/* The answer, written by whoever executes the request. */
	struct mqd_wbuf reply;
	size_t frame_len;
	uint8_t frame[];        /* copy of the payload the spans point into */
};

/* A message id names its owner in its low byte. */
static inline unsigned mqd_id_owner(uint64_t id)
{
	return (unsigned)(id & 0xff);
}

#endif
