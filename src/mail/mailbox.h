/*
 * A worker's inbox: a lock-free multi-producer, single-consumer queue of
 * typed mails, plus an eventfd that wakes the owner's event loop.
 *
 * Any thread may post; only the owning worker takes.  Mails are intrusive
 * (struct mqd_mail is embedded first in each mail type), so posting never
 * allocates and cannot fail.  Order is kept per producer: two mails posted by
 * one thread are taken in the order they were posted, which the connection
 * close protocol relies on (see doc/ARCHITECTURE.md).
 *
 * Wake-ups are batched: a post writes the eventfd only when the consumer has
 * not been woken since it last started draining, so a burst of posts costs
 * one system call.
 */
#ifndef MQD_MAILBOX_H
#define MQD_MAILBOX_H

#include <stdatomic.h>
#include <stdbool.h>

struct mqd_mail {
	_Atomic(struct mqd_mail *) next;
	int type;
};

struct mqd_mailbox {
	_Atomic(struct mqd_mail *) head; /* producers swap themselves in here */
	struct mqd_mail *tail;           /* consumer side */
	struct mqd_mail stub;
	atomic_int wake_pending;
	int efd;
};

int mqd_mailbox_init(struct mqd_mailbox *mb) __attribute__((warn_unused_result));
void mqd_mailbox_destroy(struct mqd_mailbox *mb);
/* Post from any thread.  Never fails once the mailbox is initialised. */
void mqd_mailbox_post(struct mqd_mailbox *mb, struct mqd_mail *m);
/* Consumer: call when the eventfd is readable, before draining. */
void mqd_mailbox_ack_wake(struct mqd_mailbox *mb);
/* Consumer: the next mail, or NULL when empty (or a producer is mid-post;
 * that producer's own wake-up will bring the consumer back). */
struct mqd_mail *mqd_mailbox_take(struct mqd_mailbox *mb);

#endif
