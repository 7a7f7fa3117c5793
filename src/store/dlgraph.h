/*
 * Which queue dead-letters into which, across all workers, so a DECLARE
 * that would close a loop (a -> b -> a) is refused with BAD_ARGUMENT before
 * any message can travel it.
 *
 * It is the one structure here shared by every worker, so it has a mutex:
 * it is touched only when a queue with a dead-letter queue is created or
 * deleted, never on the message path.
 */
#ifndef MQD_DLGRAPH_H
#define MQD_DLGRAPH_H

#include <stddef.h>

struct mqd_dlgraph;

struct mqd_dlgraph *mqd_dlgraph_new(void);
void mqd_dlgraph_free(struct mqd_dlgraph *g);
/* Record queue -> dead_letter.  0 done; 1 it would close a loop (nothing
 * recorded; the chain is written into why, "a -> b -> a"); -1 out of
 * memory. */
int mqd_dlgraph_add(struct mqd_dlgraph *g, const char *queue,
                    const char *dead_letter, char *why, size_t whylen)
	__attribute__((warn_unused_result));
/* Forget queue's edge (no-op if it has none). */
void mqd_dlgraph_del(struct mqd_dlgraph *g, const char *queue);

#endif
