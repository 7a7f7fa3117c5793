#ifndef MQB_BENCH_H
#define MQB_BENCH_H

/*
 * mq-bench: the shared core every protocol driver plugs into.
 *
 * A run is a set of roles (producers, consumers, a publisher and its
 * subscribers, requesters and responders), each a thread with its own
 * connection.  The core owns everything that must be identical across the
 * systems compared: the message bodies (sequence numbers, send time,
 * a verifiable fill), the checks (lost, duplicated, damaged), the latency
 * histogram, the window and lag bounds, stopping, and the report.  A
 * driver only speaks its wire protocol: it turns "send these bodies" into
 * frames and hands every body it receives back to the core.
 *
 * Drivers use blocking sockets through bio.h, batching as much as the
 * window allows into each write and parsing everything each read brings.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/bench/hist.h"
#include "tools/bench/check.h"

enum mqb_mode {
	MQB_PAIR,    /* producers and consumers at once, end to end */
	MQB_PRODUCE, /* producers only; the messages stay queued */
	MQB_CONSUME, /* consumers only, draining what a produce run left */
	MQB_FANOUT,  /* one publisher, K subscribers, every one gets all */
	MQB_REQUEST, /* requesters and responders, round trips */
	MQB_CONNECT, /* open idle connections and hold them (memory checks) */
};

struct mqb_opts {
	const char *system;      /* "mqd", "redis", "nats", "beanstalkd" */
	const char *host;        /* numeric or name */
	const char *port;        /* service string */
	enum mqb_mode mode;
	unsigned producers;      /* also: publishers (1), requesters */
	unsigned consumers;      /* also: subscribers, responders */
	unsigned queues;         /* queues (tubes, lists, subjects) */
	uint64_t count;          /* messages per producer */
	size_t size;             /* body bytes, >= MQB_BODY_MIN */
	unsigned window;         /* per-producer unconfirmed sends */
	unsigned prefetch;       /* per-consumer unacknowledged deliveries */
	uint64_t lag;            /* sent but not yet received, in total; 0: no bound */
	bool auto_ack;           /* at-most-once consumers (mqd AUTO_ACK) */
	bool confirm;            /* mqd: wait for each OK instead of QUIET+PING */
	bool declare;            /* declare queues before the run */
	const char *prefix;      /* queue / topic name prefix */
	unsigned timeout_ms;     /* no progress for this long: stop, report loss */
	bool json;
	bool quiet;              /* no progress lines on stderr */
	/* TLS (for servers that speak it) */
	bool tls;
	const char *tls_ca;      /* CA file; NULL: system store */
	bool tls_insecure;       /* skip certificate verification */
	const char *tls_cert;    /* client certificate (optional) */
	const char *tls_key;
	const char *user;        /* mqd HELLO user / password (optional) */
	const char *password;
};

struct mqb_run;

/*
 * One role: one thread, one connection.  `id` is the producer number
 * (0..producers-1) for senders, the consumer number for receivers.
 */
struct mqb_role {
	struct mqb_run *run;
	unsigned id;
	bool sender;
	pthread_t thread;

	/* producer side: next sequence number to send (0-based) */
	uint64_t next_seq;
	uint64_t confirmed;      /* sends the server has confirmed */

	/* receiver side */
	_Atomic uint64_t received; /* good bodies handed to mqb_received */
	struct mqb_hist hist;    /* end-to-end latency, ns */
	struct mqb_check *own;   /* fan-out subscribers check on their own */

	atomic_bool finished;    /* the role's thread is done */
	int failed;              /* non-zero: err holds why */
	char err[256];
};

struct mqb_run {
	struct mqb_opts o;
	const struct mqb_driver *drv;
	struct mqb_check check;  /* shared seen bitmaps, per producer */

	_Atomic uint64_t sent_total;     /* bodies encoded by all senders */
	_Atomic uint64_t recv_total;     /* bodies received (fan-out: by all) */
	_Atomic uint64_t progress_ns;    /* last time anything moved */
	atomic_bool stop;                /* error, stall, signal, or done */
	atomic_bool senders_done;
	uint64_t expect_total;           /* bodies the receivers should get */

	/* lag waits: senders sleep here when sent - received >= lag */
	pthread_mutex_t lag_mu;
	pthread_cond_t lag_cv;
	atomic_int lag_waiters;
	/* the start barrier (under lag_mu) */
	pthread_cond_t ready_cv;
	unsigned nready;

	/* fan-out: per-subscriber received counts bound the publisher */
	struct mqb_role *roles;
	unsigned nroles;

	uint64_t t_start_ns;
	_Atomic uint64_t t_sent_ns;      /* last send confirmed */
	_Atomic uint64_t t_recv_ns;      /* last body received */
	_Atomic uint64_t t_first_ns;     /* first body received (consume mode:
	                                  * may be before the start) */
};

struct mqb_driver {
	const char *name;
	const char *default_port;
	unsigned modes;          /* bitmask of 1u << enum mqb_mode supported */
	/* Before any role starts: declare / clean queues.  May be NULL. */
	int (*setup)(struct mqb_run *run, char *err, size_t errlen);
	/* Role bodies: run until done or run->stop; 0, or -1 with r->err set. */
	int (*produce)(struct mqb_role *r);
	int (*consume)(struct mqb_role *r);
	int (*publish)(struct mqb_role *r);
	int (*subscribe)(struct mqb_role *r);
	int (*request)(struct mqb_role *r);
	int (*respond)(struct mqb_role *r);
	int (*idle)(struct mqb_role *r);     /* connect, handshake, hold */
};

extern const struct mqb_driver mqb_driver_mqd;
extern const struct mqb_driver mqb_driver_redis;
extern const struct mqb_driver mqb_driver_nats;
extern const struct mqb_driver mqb_driver_beanstalkd;

/* ---- services the core gives drivers ---- */

uint64_t mqb_now_ns(void); /* CLOCK_MONOTONIC */

/* Queue (or tube, list, subject) name number q into buf: "<prefix>.<q>". */
void mqb_queue_name(const struct mqb_run *run, unsigned q, char *buf, size_t n);
/* The queue producer r's message seq goes to. */
unsigned mqb_queue_for(const struct mqb_role *r, uint64_t seq);
/* The queues consumer r serves: calls fn for each. */
void mqb_consumer_queues(const struct mqb_role *r,
                         void (*fn)(void *arg, unsigned q), void *arg);

/*
 * How many more bodies sender r may encode now, given `inflight` of its
 * sends not yet confirmed: bounded by the window, what is left of the
 * count, and the lag bound.  Never blocks.  0 with nothing in flight and
 * something left means the lag bound holds it: call mqb_wait_lag.
 */
uint64_t mqb_budget(struct mqb_role *r, uint64_t inflight);
/* Block until the lag bound leaves room (or stop); false on stop. */
bool mqb_wait_lag(struct mqb_role *r);
/* Fill body (o.size bytes) for the sender's next sequence number and
 * advance it; returns that sequence number. */
uint64_t mqb_make_body(struct mqb_role *r, uint8_t *body);
/* The sender's server confirmed n more sends. */
void mqb_confirmed(struct mqb_role *r, uint64_t n);
/* Every body of this sender was encoded and confirmed. */
static inline bool mqb_sender_done(const struct mqb_role *r)
{
	return r->confirmed >= r->run->o.count;
}

/*
 * A receiver got a body: verify it (against r->own when set, else the
 * run's shared check), record the latency, count it.  Damage and
 * duplicates are counted and reported at the end, not fatal.
 */
void mqb_received(struct mqb_role *r, const uint8_t *body, size_t len);
/* True once receivers have everything they will get (or stop). */
bool mqb_receivers_done(const struct mqb_run *run, const struct mqb_role *r);
/* Should the role give up now (stop flag, stall)? */
static inline bool mqb_stopping(const struct mqb_run *run)
{
	return atomic_load_explicit(&run->stop, memory_order_relaxed);
}

/*
 * The role is connected and subscribed (receivers) or about to send
 * (senders).  Blocks until every role of the run is ready, so nothing is
 * sent before every receiver listens; false when the run stopped meanwhile.
 */
bool mqb_ready(struct mqb_role *r);

/* Responders (request mode) and idle connections: keep going? */
bool mqb_serving(const struct mqb_run *run);

/* Record a failure for the role and stop the run; returns -1. */
int mqb_fail(struct mqb_role *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
