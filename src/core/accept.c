/* Pausing a listener that has run out of descriptors (accept.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <string.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "core/accept.h"
#include "core/clock.h"
#include "core/log.h"

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqd_accept_pause *p = arg;

	(void)fd;
	(void)what;
	/* Still short?  The next accept() says so and pauses again. */
	if (evconnlistener_enable(p->lev) < 0)
		mqd_log_error("accept on %s: cannot listen again", p->what);
}

int mqd_accept_pause_init(struct mqd_accept_pause *p, struct event_base *base,
                          struct evconnlistener *lev, const char *what)
{
	memset(p, 0, sizeof *p);
	p->lev = lev;
	p->what = what;
	p->timer = evtimer_new(base, resume_cb, p);
	return p->timer == NULL ? -1 : 0;
}

void mqd_accept_pause_free(struct mqd_accept_pause *p)
{
	if (p->timer != NULL)
		event_free(p->timer);
	p->timer = NULL;
}

bool mqd_accept_pause_error(struct mqd_accept_pause *p, int err)
{
	struct timeval tv = {MQD_ACCEPT_PAUSE_MS / 1000,
	                     (MQD_ACCEPT_PAUSE_MS % 1000) * 1000};

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
		return false;
	if (p->since_ms == 0) {
		p->since_ms = mqd_mono_ms();
		p->retries = 0;
		mqd_log_warn("accept on %s: %s: new connections wait until "
		             "descriptors are free (trying every %u ms)",
		             p->what, strerror(err), MQD_ACCEPT_PAUSE_MS);
	}
	p->retries++;
	evconnlistener_disable(p->lev);
	if (event_add(p->timer, &tv) < 0) {
		/* Without the timer, spinning is better than never again. */
		mqd_log_error("accept on %s: cannot arm the retry timer",
		              p->what);
		(void)evconnlistener_enable(p->lev);
	}
	return true;
}

void mqd_accept_pause_accepted(struct mqd_accept_pause *p)
{
	if (p->since_ms == 0)
		return;
	mqd_log_info("accept on %s: accepting again after %llu ms "
	             "(%llu accept calls refused)", p->what,
	             (unsigned long long)(mqd_mono_ms() - p->since_ms),
	             (unsigned long long)p->retries);
	p->since_ms = 0;
}
