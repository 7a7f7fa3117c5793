#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "core/accept.h"
#include "core/log.h"
#include "net/listener.h"
#include "mail/mail.h"
#include "mail/router.h"

struct mqd_listener {
	struct mqd_listener *next;
	const struct mqd_router *router;
	struct mqd_counters *counters;
	const struct mqd_config *cfg; /* the main thread's */
	struct evconnlistener *ev;
	struct mqd_accept_pause pause; /* out of descriptors: wait, retry */
	unsigned next_worker;
	char name[300];
};

static void format_addr(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
		snprintf(out, len, "%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
		port = ntohs(in->sin6_port);
		snprintf(out, len, "[%s]:%u", host, port);
	} else {
		snprintf(out, len, "?");
	}
}

static void accept_cb(struct evconnlistener *ev, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
	struct mqd_listener *l = arg;
	struct mqd_mail_conn_new *m;
	unsigned n;

	(void)ev;
	(void)salen;
	mqd_accept_pause_accepted(&l->pause);
	m = calloc(1, sizeof *m);
	if (m == NULL) {
		mqd_log_error("out of memory accepting on %s", l->name);
		evutil_closesocket(fd);
		return;
	}
	n = atomic_fetch_add(&l->counters->nconns, 1) + 1;
	m->mail.type = MQD_MAIL_CONN_NEW;
	m->fd = fd;
	/* Over the limit: the worker still reads its HELLO so the client
	 * learns why (ERROR LIMIT) instead of seeing a bare close. */
	m->over_limit = n > l->cfg->max_connections;
	format_addr(sa, m->peer, sizeof m->peer);
	mqd_mail_post(l->router, l->next_worker, &m->mail);
	l->next_worker = (l->next_worker + 1) % l->router->n;
}

static void error_cb(struct evconnlistener *ev, void *arg)
{
	struct mqd_listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();

	(void)ev;
	/* Out of descriptors: pause instead of spinning (core/accept.h). */
	if (mqd_accept_pause_error(&l->pause, err))
		return;
	mqd_log_error("accept on %s: %s", l->name,
	              evutil_socket_error_to_string(err));
}

struct mqd_listener *mqd_listener_new(struct event_base *base,
                                      const struct mqd_router *router,
                                      struct mqd_counters *counters,
                                      const struct mqd_config *cfg,
                                      const struct mqd_listen_addr *addr)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[8];
	struct mqd_listener *l = calloc(1, sizeof *l);
	int rc;

	if (l == NULL)
		return NULL;
	l->router = router;
	l->counters = counters;
	l->cfg = cfg;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof port, "%u", addr->port);
	rc = getaddrinfo(addr->host, port, &hints, &res);
	if (rc != 0) {
		mqd_log_error("listen %s:%u: %s", addr->host, addr->port,
		              gai_strerror(rc));
		free(l);
		return NULL;
	}
	for (ai = res; ai != NULL && l->ev == NULL; ai = ai->ai_next) {
		l->ev = evconnlistener_new_bind(
			base, accept_cb, l,
			LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
				LEV_OPT_CLOSE_ON_EXEC,
			1024, ai->ai_addr, (int)ai->ai_addrlen);
	}
	freeaddrinfo(res);
	if (l->ev == NULL) {
		mqd_log_error("listen %s:%u: %s", addr->host, addr->port,
		              strerror(errno));
		free(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->ev, error_cb);
	{
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		getsockname(evconnlistener_get_fd(l->ev), (struct sockaddr *)&ss,
		            &len);
		format_addr((struct sockaddr *)&ss, l->name, sizeof l->name);
	}
	if (mqd_accept_pause_init(&l->pause, base, l->ev, l->name) < 0) {
		mqd_log_error("listen %s: out of memory", l->name);
		evconnlistener_free(l->ev);
		free(l);
		return NULL;
	}
	mqd_log_info("listening on %s", l->name);
	return l;
}

void mqd_listener_free(struct mqd_listener *l)
{
	if (l == NULL)
		return;
	mqd_accept_pause_free(&l->pause);
	evconnlistener_free(l->ev);
	free(l);
}

struct mqd_listener *mqd_listener_next(struct mqd_listener *l)
{
	return l->next;
}

void mqd_listener_link(struct mqd_listener *l, struct mqd_listener *next)
{
	l->next = next;
}
