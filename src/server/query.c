/*
 * Queries from the main thread: queue, worker and connection rows, kill,
 * and queue operations without a client (declare, delete, purge, and a
 * reloaded [queue NAME] section).
 *
 * A query is a record here plus one QUERY mail per worker asked (or one to
 * the owner of a named queue).  Each worker fills its part on its own
 * thread and posts it back to the main thread's mailbox; when the last part
 * is in, the parts are merged and the caller's callback runs, exactly once,
 * on the main thread.  No lock is taken and the message path never waits.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "core/log.h"
#include "core/shard.h"
#include "proto/proto.h"
#include "server/internal.h"
#include "worker/worker.h"

/* A query being gathered from the workers: one part per worker asked. */
struct mqd_query {
	struct mqd_query *next, *prev;
	int kind; /* enum mqd_query_kind */
	union {
		mqd_queues_cb queues;
		mqd_workers_cb workers;
		mqd_conns_cb conns;
		mqd_kill_cb kill;
		mqd_admin_cb admin;
	} cb;
	void *arg;
	bool all;
	unsigned pending;
	unsigned nparts;
	struct mqd_mail_query **parts;
	struct mqd_admin_result result;
};


static void query_free(struct mqd_server *s, struct mqd_query *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		s->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	for (unsigned i = 0; i < q->nparts; i++) {
		struct mqd_mail_query *p = q->parts[i];
		if (p == NULL)
			continue;
		free(p->rows);
		free(p->winfo);
		free(p->conns);
		free(p->held);
		free(p);
	}
	free(q->parts);
	free(q);
}

/* The caller hears back: with nothing, when the answer was lost. */
static void query_answer_empty(struct mqd_query *q)
{
	struct mqd_admin_result r;

	switch (q->kind) {
	case MQD_QUERY_QUEUES:
		q->cb.queues(q->arg, NULL, 0);
		break;
	case MQD_QUERY_WORKERS:
		q->cb.workers(q->arg, NULL, 0);
		break;
	case MQD_QUERY_CONNS:
		q->cb.conns(q->arg, NULL, 0);
		break;
	case MQD_QUERY_KILL:
		q->cb.kill(q->arg, false);
		break;
	case MQD_QUERY_ADMIN:
		memset(&r, 0, sizeof r);
		r.code = MQD_ERR_SHUTTING_DOWN;
		snprintf(r.message, sizeof r.message, "server stopping");
		q->cb.admin(q->arg, &r);
		break;
	default:
		break;
	}
}

void mqd_server_queries_abandon(struct mqd_server *s)
{
	while (s->queries) {
		query_answer_empty(s->queries);
		query_free(s, s->queries);
	}
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct mqd_queue_info *)a)->name,
	              ((const struct mqd_queue_info *)b)->name);
}

static int by_id(const void *a, const void *b)
{
	uint64_t x = ((const struct mqd_conn_info *)a)->id;
	uint64_t y = ((const struct mqd_conn_info *)b)->id;
	return x < y ? -1 : x > y;
}

static void finish_queues(struct mqd_query *q, bool failed)
{
	size_t n = 0, k = 0;
	struct mqd_queue_info *rows = NULL;

	for (unsigned i = 0; i < q->nparts; i++)
		n += q->parts[i]->n;
	if (!failed && n > 0 && (rows = malloc(n * sizeof *rows)) == NULL)
		failed = true;
	if (failed) {
		mqd_log_error("out of memory answering a queue query");
		n = 0;
	}
	for (unsigned i = 0; rows && i < q->nparts; i++) {
		if (q->parts[i]->n == 0)
			continue; /* its rows may be NULL */
		memcpy(rows + k, q->parts[i]->rows,
		       q->parts[i]->n * sizeof *rows);
		k += q->parts[i]->n;
	}
	if (q->all && n > 1)
		qsort(rows, n, sizeof *rows, by_name);
	q->cb.queues(q->arg, rows, n);
	free(rows);
}

static void finish_workers(struct mqd_query *q, bool failed)
{
	struct mqd_worker_info *rows = calloc(q->nparts, sizeof *rows);

	if (rows == NULL || failed) {
		q->cb.workers(q->arg, NULL, 0);
		free(rows);
		return;
	}
	for (unsigned i = 0; i < q->nparts; i++)
		rows[i] = *q->parts[i]->winfo;
	q->cb.workers(q->arg, rows, q->nparts);
	free(rows);
}

static void finish_conns(struct mqd_query *q, bool failed)
{
	size_t n = 0, k = 0;
	struct mqd_conn_info *rows = NULL;

	for (unsigned i = 0; i < q->nparts; i++)
		n += q->parts[i]->nconns;
	if (!failed && n > 0 && (rows = malloc(n * sizeof *rows)) == NULL)
		failed = true;
	if (failed || n == 0) {
		q->cb.conns(q->arg, NULL, 0);
		free(rows);
		return;
	}
	for (unsigned i = 0; i < q->nparts; i++) {
		if (q->parts[i]->nconns == 0)
			continue;
		memcpy(rows + k, q->parts[i]->conns,
		       q->parts[i]->nconns * sizeof *rows);
		k += q->parts[i]->nconns;
	}
	qsort(rows, n, sizeof *rows, by_id);
	/* Held messages are counted by their owners: add them up. */
	for (unsigned i = 0; i < q->nparts; i++) {
		for (size_t j = 0; j < q->parts[i]->nheld; j++) {
			struct mqd_conn_info key = {.id = q->parts[i]->held[j].conn_id};
			struct mqd_conn_info *c =
				bsearch(&key, rows, n, sizeof *rows, by_id);
			if (c)
				c->held += q->parts[i]->held[j].held;
		}
	}
	q->cb.conns(q->arg, rows, n);
	free(rows);
}

static void query_finish(struct mqd_server *s, struct mqd_query *q)
{
	bool failed = false, found = false;

	for (unsigned i = 0; i < q->nparts; i++) {
		failed |= q->parts[i]->failed;
		found |= q->parts[i]->found;
	}
	switch (q->kind) {
	case MQD_QUERY_QUEUES:
		finish_queues(q, failed);
		break;
	case MQD_QUERY_WORKERS:
		finish_workers(q, failed);
		break;
	case MQD_QUERY_CONNS:
		finish_conns(q, failed);
		break;
	case MQD_QUERY_KILL:
		q->cb.kill(q->arg, found);
		break;
	case MQD_QUERY_ADMIN:
		q->cb.admin(q->arg, &q->result);
		break;
	default:
		break;
	}
	query_free(s, q);
}

void mqd_server_main_mail_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqd_server *s = arg;
	struct mqd_mail *m;

	(void)fd;
	(void)what;
	mqd_mailbox_ack_wake(&s->main_mb);
	while ((m = mqd_mailbox_take(&s->main_mb)) != NULL) {
		if (m->type != MQD_MAIL_QUERY)
			continue;
		struct mqd_query *q = ((struct mqd_mail_query *)m)->query;
		if (--q->pending == 0)
			query_finish(s, q);
	}
}

/* A query with one part per worker (owner >= nworkers), or one part for
 * the given worker.  NULL when out of memory or stopped. */
static struct mqd_query *query_new(struct mqd_server *s, int kind,
                                   unsigned owner, void *arg)
{
	struct mqd_query *q;

	if (s->workers == NULL) /* stopped: nobody to ask */
		return NULL;
	q = calloc(1, sizeof *q);
	if (q == NULL)
		return NULL;
	q->kind = kind;
	q->arg = arg;
	q->all = owner >= s->nworkers;
	q->nparts = q->all ? s->nworkers : 1;
	q->parts = calloc(q->nparts, sizeof *q->parts);
	for (unsigned i = 0; q->parts && i < q->nparts; i++) {
		struct mqd_mail_query *p = calloc(1, sizeof *p);
		if (p == NULL)
			break;
		q->parts[i] = p;
		p->mail.type = MQD_MAIL_QUERY;
		p->query = q;
		p->kind = kind;
		p->result = &q->result;
		p->dest = q->all ? i : owner;
		if (kind == MQD_QUERY_WORKERS &&
		    (p->winfo = calloc(1, sizeof *p->winfo)) == NULL)
			break;
	}
	if (q->parts == NULL || q->parts[q->nparts - 1] == NULL ||
	    (kind == MQD_QUERY_WORKERS && q->parts[q->nparts - 1]->winfo == NULL)) {
		for (unsigned i = 0; q->parts && i < q->nparts; i++) {
			if (q->parts[i])
				free(q->parts[i]->winfo);
			free(q->parts[i]);
		}
		free(q->parts);
		free(q);
		return NULL;
	}
	return q;
}

static void query_post(struct mqd_server *s, struct mqd_query *q)
{
	q->next = s->queries;
	if (s->queries)
		s->queries->prev = q;
	s->queries = q;
	q->pending = q->nparts;
	for (unsigned i = 0; i < q->nparts; i++)
		mqd_worker_post(&s->workers[q->parts[i]->dest],
		                &q->parts[i]->mail);
}

int mqd_server_query_queues(struct mqd_server *s, const char *name,
                            mqd_queues_cb cb, void *arg)
{
	size_t len = name ? strlen(name) : 0;
	/* A name too long to exist is still asked (as " ", which no queue
	 * can have), so the answer comes the usual way. */
	const char *ask = name == NULL ? NULL : len <= 255 ? name : " ";
	unsigned owner = ask ? mqd_shard_of(ask, strlen(ask), s->nworkers)
	                     : UINT32_MAX;
	struct mqd_query *q = query_new(s, MQD_QUERY_QUEUES, owner, arg);

	if (q == NULL)
		return -1;
	q->cb.queues = cb;
	if (ask)
		snprintf(q->parts[0]->name, sizeof q->parts[0]->name, "%s", ask);
	query_post(s, q);
	return 0;
}

int mqd_server_query_workers(struct mqd_server *s, mqd_workers_cb cb,
                             void *arg)
{
	struct mqd_query *q = query_new(s, MQD_QUERY_WORKERS, UINT32_MAX, arg);

	if (q == NULL)
		return -1;
	q->cb.workers = cb;
	query_post(s, q);
	return 0;
}

int mqd_server_query_conns(struct mqd_server *s, mqd_conns_cb cb, void *arg)
{
	struct mqd_query *q = query_new(s, MQD_QUERY_CONNS, UINT32_MAX, arg);

	if (q == NULL)
		return -1;
	q->cb.conns = cb;
	query_post(s, q);
	return 0;
}

int mqd_server_kill_conn(struct mqd_server *s, uint64_t id, mqd_kill_cb cb,
                         void *arg)
{
	struct mqd_query *q = query_new(s, MQD_QUERY_KILL, UINT32_MAX, arg);

	if (q == NULL)
		return -1;
	q->cb.kill = cb;
	/* Only its home worker knows it: ask them all. */
	for (unsigned i = 0; i < q->nparts; i++)
		q->parts[i]->id = id;
	query_post(s, q);
	return 0;
}

int mqd_server_admin_post(struct mqd_server *s, int op, const char *name,
                          const struct mqd_queue_conf *settings,
                          bool if_empty, mqd_admin_cb cb, void *arg)
{
	size_t len = strlen(name);
	struct mqd_query *q;

	if (!mqd_name_valid((const uint8_t *)name, len))
		return -1;
	q = query_new(s, MQD_QUERY_ADMIN,
	              mqd_shard_of(name, len, s->nworkers), arg);
	if (q == NULL)
		return -1;
	q->cb.admin = cb;
	snprintf(q->parts[0]->name, sizeof q->parts[0]->name, "%s", name);
	q->parts[0]->admin_op = op;
	q->parts[0]->if_empty = if_empty;
	if (settings) {
		q->parts[0]->settings = *settings;
		snprintf(q->parts[0]->settings.name,
		         sizeof q->parts[0]->settings.name, "%s", name);
		q->parts[0]->has_settings = true;
	}
	query_post(s, q);
	return 0;
}

int mqd_server_admin_queue(struct mqd_server *s, enum mqd_admin_op op,
                           const char *name,
                           const struct mqd_queue_conf *settings,
                           bool if_empty, mqd_admin_cb cb, void *arg)
{
	return mqd_server_admin_post(s, (int)op, name, settings, if_empty, cb,
	                             arg);
}
