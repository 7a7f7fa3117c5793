/*
 * Reload: read the config file again and apply what can change while
 * running.  The new file is parsed and checked whole first; on an error
 * nothing changes.  Settings only a restart can change (listen addresses,
 * workers, sockets, ...) keep their running values and are named; the
 * rest takes effect: process-wide limits at once, [queue NAME] sections
 * on their owners (as admin queries), and every worker gets its own copy
 * of the new settings in a CONFIG mail.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/notify.h"
#include "proto/proto.h"
#include "server/internal.h"
#include "store/message.h"
#include "worker/worker.h"

static void add_item(char *list, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void add_item(char *list, size_t cap, const char *fmt, ...)
{
	size_t len = strlen(list);
	va_list ap;

	if (len > 0 && len + 2 < cap) {
		memcpy(list + len, ", ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(list + len, cap - len, fmt, ap);
	va_end(ap);
}

static bool same_listen(const struct mqd_config *a, const struct mqd_config *b)
{
	if (a->nlisten != b->nlisten)
		return false;
	for (size_t i = 0; i < a->nlisten; i++)
		if (a->listen[i].port != b->listen[i].port ||
		    strcmp(a->listen[i].host, b->listen[i].host) != 0)
			return false;
	return true;
}

static bool same_queue_conf(const struct mqd_queue_conf *a,
                            const struct mqd_queue_conf *b)
{
	return a->max_length == b->max_length && a->max_bytes == b->max_bytes &&
	       a->overflow == b->overflow &&
	       a->message_ttl_ms == b->message_ttl_ms &&
	       a->ack_timeout_ms == b->ack_timeout_ms &&
	       a->max_attempts == b->max_attempts &&
	       strcmp(a->dead_letter, b->dead_letter) == 0;
}

static void reload_admin_cb(void *arg, const struct mqd_admin_result *r)
{
	(void)arg;
	if (r->code != 0)
		mqd_log_error("reload: a queue section could not be applied: "
		              "%s: %s", mqd_err_name(r->code), r->message);
}

/* Settings that only a restart changes: keep the running ones, and say. */
static void keep_restart_only(const struct mqd_config *old,
                              struct mqd_config *n, char *list, size_t cap)
{
	if (!same_listen(old, n))
		add_item(list, cap, "listen");
	if (old->workers != n->workers)
		add_item(list, cap, "workers");
	if (strcmp(old->control_socket, n->control_socket) != 0)
		add_item(list, cap, "control_socket");
	if (old->control_socket_mode != n->control_socket_mode)
		add_item(list, cap, "control_socket_mode");
	if (old->metrics_on != n->metrics_on ||
	    (n->metrics_on &&
	     (old->metrics_listen.port != n->metrics_listen.port ||
	      strcmp(old->metrics_listen.host, n->metrics_listen.host) != 0)))
		add_item(list, cap, "metrics_listen");
	if (old->max_frame != n->max_frame)
		add_item(list, cap, "max_frame");
	if (strcmp(old->pidfile, n->pidfile) != 0)
		add_item(list, cap, "pidfile");
	if (strcmp(old->log_file, n->log_file) != 0)
		add_item(list, cap, "log_file");
	memcpy(n->listen, old->listen, sizeof n->listen);
	n->nlisten = old->nlisten;
	n->workers = old->workers;
	memcpy(n->control_socket, old->control_socket, sizeof n->control_socket);
	n->control_socket_mode = old->control_socket_mode;
	n->metrics_on = old->metrics_on;
	n->metrics_listen = old->metrics_listen;
	n->max_frame = old->max_frame;
	memcpy(n->pidfile, old->pidfile, sizeof n->pidfile);
	memcpy(n->log_file, old->log_file, sizeof n->log_file);
}

void mqd_server_reload(struct mqd_server *s, struct mqd_reload_result *out)
{
	struct mqd_config *n = calloc(1, sizeof *n);
	const struct mqd_config *old = &s->cfg;

	memset(out, 0, sizeof *out);
	if (n == NULL) {
		snprintf(out->error, sizeof out->error, "out of memory");
		return;
	}
	mqd_notify("RELOADING=1");
	if (mqd_config_load(n, old->path, out->error, sizeof out->error) < 0) {
		mqd_log_error("reload refused, running configuration kept: %s",
		              out->error);
		free(n);
		mqd_notify("READY=1");
		return;
	}
	keep_restart_only(old, n, out->restart_needed,
	                  sizeof out->restart_needed);
	/* Against the level in force: reload undoes a `loglevel`. */
	if (mqd_log_get_level() != n->log_level) {
		mqd_log_set_level(n->log_level);
		add_item(out->applied, sizeof out->applied, "log_level");
	}
	if (old->max_connections != n->max_connections) {
		add_item(out->applied, sizeof out->applied, "max_connections");
		(void)mqd_server_fd_limit(n, s->nworkers);
	}
	if (old->auto_create != n->auto_create)
		add_item(out->applied, sizeof out->applied, "auto_create");
	if (old->idle_timeout_ms != n->idle_timeout_ms)
		add_item(out->applied, sizeof out->applied,
		         "idle_timeout (new connections)");
	if (old->max_memory != n->max_memory) {
		mqd_msg_set_limit(n->max_memory);
		add_item(out->applied, sizeof out->applied, "max_memory");
	}
	if (old->defaults.prefetch != n->defaults.prefetch ||
	    !same_queue_conf(&old->defaults.queue, &n->defaults.queue))
		add_item(out->applied, sizeof out->applied,
		         "[defaults] (new queues and consumers)");
	for (size_t i = 0; i < n->nqueues; i++) {
		const struct mqd_queue_conf *nq = &n->queues[i], *oq = NULL;
		for (size_t j = 0; j < old->nqueues && oq == NULL; j++)
			if (strcmp(old->queues[j].name, nq->name) == 0)
				oq = &old->queues[j];
		if (oq != NULL && same_queue_conf(oq, nq))
			continue;
		if (mqd_server_admin_post(s, -1, nq->name, nq, false,
		                          reload_admin_cb, NULL) < 0) {
			add_item(out->restart_needed, sizeof out->restart_needed,
			         "[queue %s] (could not be applied now)", nq->name);
			continue;
		}
		add_item(out->applied, sizeof out->applied, "[queue %s]%s",
		         nq->name, oq ? "" : " (new)");
	}
	/* Every worker gets its own copy of the new settings. */
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct mqd_config_mail *m = malloc(sizeof *m);
		if (m == NULL) {
			add_item(out->restart_needed, sizeof out->restart_needed,
			         "worker %u settings (out of memory)", i);
			continue;
		}
		m->mail.type = MQD_MAIL_CONFIG;
		m->cfg = *n;
		m->cfg.queues = NULL;
		m->cfg.nqueues = 0;
		mqd_worker_post(&s->workers[i], &m->mail);
	}
	mqd_config_free(&s->cfg);
	s->cfg = *n;
	free(n);
	out->ok = true;
	mqd_notify("READY=1");
	mqd_log_info("configuration reloaded; applied: %s; needs a restart: %s",
	             out->applied[0] ? out->applied : "nothing",
	             out->restart_needed[0] ? out->restart_needed : "nothing");
}
