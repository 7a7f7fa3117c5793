/*
 * The MPSC queue is Dmitry Vyukov's intrusive design: producers atomically
 * exchange the head and then link the previous node to theirs; the consumer
 * walks from the tail.  A stub node keeps the queue non-empty so neither side
 * ever needs a lock.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mail/mailbox.h"

int mqd_mailbox_init(struct mqd_mailbox *mb)
{
	atomic_init(&mb->stub.next, NULL);
	atomic_init(&mb->head, &mb->stub);
	mb->tail = &mb->stub;
	atomic_init(&mb->wake_pending, 0);
	mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return mb->efd < 0 ? -1 : 0;
}

void mqd_mailbox_destroy(struct mqd_mailbox *mb)
{
	if (mb->efd >= 0)
		close(mb->efd);
	mb->efd = -1;
}

static void push(struct mqd_mailbox *mb, struct mqd_mail *m)
{
	struct mqd_mail *prev;

	atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
	prev = atomic_exchange_explicit(&mb->head, m, memory_order_acq_rel);
	atomic_store_explicit(&prev->next, m, memory_order_release);
}

void mqd_mailbox_post(struct mqd_mailbox *mb, struct mqd_mail *m)
{
	uint64_t one = 1;
	ssize_t r;

	push(mb, m);
	if (atomic_exchange_explicit(&mb->wake_pending, 1, memory_order_acq_rel))
		return;
	do {
		r = write(mb->efd, &one, sizeof one);
	} while (r < 0 && errno == EINTR);
	/* EAGAIN means the counter is saturated: the consumer is woken anyway. */
}

void mqd_mailbox_ack_wake(struct mqd_mailbox *mb)
{
	uint64_t v;
	ssize_t r;

	do {
		r = read(mb->efd, &v, sizeof v);
	} while (r < 0 && errno == EINTR);
	/* Clear before draining: a post that lands after this will wake us. */
	atomic_store_explicit(&mb->wake_pending, 0, memory_order_seq_cst);
}

struct mqd_mail *mqd_mailbox_take(struct mqd_mailbox *mb)
{
	struct mqd_mail *tail = mb->tail;
	struct mqd_mail *next =
		atomic_load_explicit(&tail->next, memory_order_acquire);

	if (tail == &mb->stub) {
		if (next == NULL)
			return NULL;
		mb->tail = next;
		tail = next;
		next = atomic_load_explicit(&next->next, memory_order_acquire);
	}
	if (next != NULL) {
		mb->tail = next;
		return tail;
	}
	if (tail != atomic_load_explicit(&mb->head, memory_order_acquire))
		return NULL; /* a producer is between its exchange and its link */
	push(mb, &mb->stub);
	next = atomic_load_explicit(&tail->next, memory_order_acquire);
	if (next != NULL) {
		mb->tail = next;
		return tail;
	}
	return NULL;
}
