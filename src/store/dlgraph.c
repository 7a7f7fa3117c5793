#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/dlgraph.h"
#include "core/shard.h"

#define NBUCKETS 1024

struct edge {
	struct edge *next;
	char from[256], to[256];
};

struct mqd_dlgraph {
	pthread_mutex_t lock;
	struct edge *buckets[NBUCKETS];
	size_t count;
};

struct mqd_dlgraph *mqd_dlgraph_new(void)
{
	struct mqd_dlgraph *g = calloc(1, sizeof *g);

	if (g != NULL && pthread_mutex_init(&g->lock, NULL) != 0) {
		free(g);
		return NULL;
	}
	return g;
}

void mqd_dlgraph_free(struct mqd_dlgraph *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct edge *e = g->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static struct edge **slot(struct mqd_dlgraph *g, const char *name)
{
	struct edge **pp =
		&g->buckets[mqd_shard_hash(name, strlen(name)) % NBUCKETS];

	while (*pp && strcmp((*pp)->from, name) != 0)
		pp = &(*pp)->next;
	return pp;
}

int mqd_dlgraph_add(struct mqd_dlgraph *g, const char *queue,
                    const char *dead_letter, char *why, size_t whylen)
{
	const char *at = dead_letter;
	struct edge *e;
	size_t n = 0;
	int rc = 0;

	pthread_mutex_lock(&g->lock);
	/* Follow the chain from the new target; the graph has no loop, so
	 * it ends within count + 1 steps unless it comes back to queue. */
	for (size_t steps = 0; steps <= g->count + 1; steps++) {
		if (strcmp(at, queue) == 0) {
			rc = 1;
			break;
		}
		e = *slot(g, at);
		if (e == NULL)
			break;
		at = e->to;
	}
	if (rc == 1 && why != NULL) {
		n = (size_t)snprintf(why, whylen, "%s", queue);
		at = dead_letter;
		while (n < whylen) {
			n += (size_t)snprintf(why + n, whylen - n, " -> %s", at);
			if (strcmp(at, queue) == 0 || (e = *slot(g, at)) == NULL)
				break;
			at = e->to;
		}
	}
	if (rc == 0) {
		struct edge **pp = slot(g, queue);
		e = *pp;
		if (e == NULL && (e = calloc(1, sizeof *e)) != NULL) {
			snprintf(e->from, sizeof e->from, "%s", queue);
			*pp = e;
			g->count++;
		}
		if (e != NULL)
			snprintf(e->to, sizeof e->to, "%s", dead_letter);
		else
			rc = -1;
	}
	pthread_mutex_unlock(&g->lock);
	return rc;
}

void mqd_dlgraph_del(struct mqd_dlgraph *g, const char *queue)
{
	struct edge **pp, *e;

	pthread_mutex_lock(&g->lock);
	pp = slot(g, queue);
	if ((e = *pp) != NULL) {
		*pp = e->next;
		free(e);
		g->count--;
	}
	pthread_mutex_unlock(&g->lock);
}
