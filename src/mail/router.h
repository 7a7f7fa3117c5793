/*
 * Where a mail goes: one port per worker (its mailbox, and the handler that
 * takes its mails) and the main thread's inbox.
 *
 * mqd_mail_send is the one "run it here or post it there" decision of the
 * broker: a mail for the sending worker itself is handed to that worker's
 * handler at once (no mailbox hop on the local path), any other goes
 * through the receiver's mailbox.  mqd_mail_post always goes through the
 * mailbox, for the few mails that must wait for the receiver's next pass
 * even on the same worker (CLOSE, whose answer may have to wait).
 *
 * The server builds the router before the workers start; it is read-only
 * afterwards, so every thread may use it without a lock.
 */
#ifndef MQD_ROUTER_H
#define MQD_ROUTER_H

#include "mail/mailbox.h"

typedef void (*mqd_mail_handler)(void *ctx, struct mqd_mail *m);

struct mqd_mail_port {
	struct mqd_mailbox *mb;
	mqd_mail_handler handle; /* runs on the port's own thread */
	void *ctx;
};

struct mqd_router {
	unsigned n;                 /* workers */
	struct mqd_mail_port *ports; /* n of them */
	struct mqd_mailbox *main;   /* the main thread's inbox */
};

/* Any thread: queue m for worker `to`. */
static inline void mqd_mail_post(const struct mqd_router *rt, unsigned to,
                                 struct mqd_mail *m)
{
	mqd_mailbox_post(rt->ports[to].mb, m);
}

/* Worker `from`'s thread: run m there now if `to` is `from`, else post. */
static inline void mqd_mail_send(const struct mqd_router *rt, unsigned from,
                                 unsigned to, struct mqd_mail *m)
{
	if (from == to)
		rt->ports[to].handle(rt->ports[to].ctx, m);
	else
		mqd_mailbox_post(rt->ports[to].mb, m);
}

/* Any thread: a mail for the main thread (a filled query part). */
static inline void mqd_mail_post_main(const struct mqd_router *rt,
                                      struct mqd_mail *m)
{
	mqd_mailbox_post(rt->main, m);
}

#endif
