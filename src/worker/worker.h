/*
 * Worker threads.  Each worker runs its own libevent event_base and is two
 * things at once, kept apart:
 *   - a home (net/conn.h, struct mqd_home): the connections the listener
 *     handed to it, their sockets, buffers and reply order;
 *   - an owner (owner/owner.h, struct mqd_owner): the queues whose names
 *     hash to it, their messages, consumers and timers, and its shard of
 *     the topic index.
 * The worker itself is only the runtime that joins them: the thread, the
 * event loop, the mailbox, and the events that end each loop pass (flush
 * the owner's output batches, then write the home's sockets).  It hands
 * each mail to the part it is for; the home and the owner reach other
 * workers, and each other, only through mails (mail/router.h).
 *
 * Nothing a worker owns is touched by another thread.  See
 * doc/ARCHITECTURE.md.
 */
#ifndef MQD_WORKER_H
#define MQD_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/counters.h"
#include "mail/mail.h"
#include "mail/router.h"
#include "net/conn.h"
#include "owner/owner.h"

struct event_base;
struct event;
struct mqd_dlgraph;

struct mqd_worker {
	unsigned index;
	pthread_t thread;
	struct event_base *base;
	struct mqd_mailbox mb;
	struct event *mb_ev;
	struct event *flush_ev; /* end of pass: post the owner's batches */
	struct event *write_ev; /* then: write the home's connections */
	struct event *timer_ev; /* the owner's earliest deadline */
	const struct mqd_router *router;
	struct mqd_counters *counters;
	/* This worker's own copy of the settings it reads: reload sends a
	 * new one, so no thread reads what another writes.  The owner and
	 * the home point here. */
	struct mqd_config cfg;
	/* The main thread's orders, SHUTDOWN, PAUSE and STOP: each is given
	 * at most once a run, so the mails live here and stopping needs no
	 * allocation (mqd_worker_order). */
	struct mqd_mail orders[3];
	uint64_t mails; /* mails taken from its inbox so far */
	bool started;   /* its thread is running (main thread's view) */
	struct mqd_owner owner;
	struct mqd_home home;
};

/* Before mqd_worker_init: the port through which the router reaches w
 * (its mailbox and its mail handler). */
void mqd_worker_port(struct mqd_worker *w, struct mqd_mail_port *out);
/* Build worker index of nworkers: its event base, mailbox, owner and
 * home.  cfg is copied (without its [queue NAME] sections); router,
 * counters and dlgraph outlive the worker. */
int mqd_worker_init(struct mqd_worker *w, unsigned index, unsigned nworkers,
                    const struct mqd_config *cfg,
                    const struct mqd_router *router,
                    struct mqd_counters *counters,
                    struct mqd_dlgraph *dlgraph)
	__attribute__((warn_unused_result));
int mqd_worker_start(struct mqd_worker *w) __attribute__((warn_unused_result));
void mqd_worker_join(struct mqd_worker *w);
/* After join: free what is left (queues, messages, mails). */
void mqd_worker_destroy(struct mqd_worker *w);

/* The mail for order `type` (MQD_MAIL_SHUTDOWN, _PAUSE or _STOP) to w,
 * to post once; the worker does not free it. */
struct mqd_mail *mqd_worker_order(struct mqd_worker *w, int type);
/* Post a mail to worker w from any thread. */
void mqd_worker_post(struct mqd_worker *w, struct mqd_mail *m);

#endif
