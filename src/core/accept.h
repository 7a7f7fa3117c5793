/*
 * A listening socket that has run out of descriptors.
 *
 * accept() failing with EMFILE or ENFILE (or ENOBUFS, ENOMEM) leaves the
 * connection waiting in the backlog, so the listening socket stays
 * readable: libevent calls the listener again at once, and a listener that
 * only logs the error spins its thread at full CPU, writing a log line each
 * turn, for as long as the descriptors are gone.  Instead the listener is
 * turned off for MQD_ACCEPT_PAUSE_MS and then tried again; the clients
 * wait in the backlog meanwhile and are accepted as soon as descriptors
 * are free.  One warning starts such an episode and one line ends it.
 *
 * The other common fix, a reserve descriptor closed so as to accept the
 * client and drop it at once (libuv), answers clients with a bare close
 * and still spins while they keep coming; pausing (as nginx does, for
 * 500 ms) lets them in once the shortage is over, costs ten failed
 * accept() calls a second, and keeps the existing connections' service.
 */
#ifndef MQD_ACCEPT_H
#define MQD_ACCEPT_H

#include <stdbool.h>
#include <stdint.h>

#define MQD_ACCEPT_PAUSE_MS 100

struct event;
struct event_base;
struct evconnlistener;

struct mqd_accept_pause {
	struct evconnlistener *lev;
	struct event *timer;   /* turns the listener back on */
	const char *what;      /* the listener's name, for the log */
	uint64_t since_ms;     /* monotonic start of the shortage; 0: none */
	uint64_t retries;      /* accept() calls refused since then */
};

/* Set p up for lev on base; what must outlive p.  0, or -1 when out of
 * memory. */
int mqd_accept_pause_init(struct mqd_accept_pause *p, struct event_base *base,
                          struct evconnlistener *lev, const char *what)
	__attribute__((warn_unused_result));
void mqd_accept_pause_free(struct mqd_accept_pause *p);

/* From the listener's error callback, with the accept() error: true when
 * it is a shortage (descriptors, buffers, memory) and the listener is now
 * paused; false for other errors, left to the caller. */
bool mqd_accept_pause_error(struct mqd_accept_pause *p, int err);

/* From the accept callback: ends a shortage, if there was one (logged). */
void mqd_accept_pause_accepted(struct mqd_accept_pause *p);

#endif
