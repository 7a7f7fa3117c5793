/*
 * A topic index: patterns (dot-separated tokens, where a token may be `*`,
 * exactly one token, and the last may be `>`, one or more tokens) mapped to
 * opaque values, as a trie of tokens.  Matching a topic walks only the
 * branches its tokens can take (the exact token, `*`, `>`), so its cost
 * depends on the topic's length and the number of matching values, not on
 * how many patterns the index holds.
 *
 * Pure data: no threads, no I/O.  Each owner keeps its own.
 */
#ifndef MQD_TOPICS_H
#define MQD_TOPICS_H

#include <stdbool.h>
#include <stddef.h>

struct mqd_topics;

struct mqd_topics *mqd_topics_new(void);
/* free_value (may be NULL) is called once per value still stored. */
void mqd_topics_free(struct mqd_topics *t, void (*free_value)(void *value));

/* Store value under pattern (which the caller has validated with
 * mqd_pattern_valid).  The same pattern may hold many values; the same
 * value may be stored under many patterns.  0, or -1 out of memory
 * (nothing stored). */
int mqd_topics_add(struct mqd_topics *t, const char *pattern, size_t len,
                   void *value) __attribute__((warn_unused_result));
/* Remove one value from pattern; nodes left empty are freed.  0 removed,
 * 1 not there. */
int mqd_topics_remove(struct mqd_topics *t, const char *pattern, size_t len,
                      void *value);

/* Call fn(arg, value) once for every stored (pattern, value) whose pattern
 * matches topic (a valid topic: no wildcards).  A value stored under two
 * patterns that both match is visited twice: callers that want once
 * dedupe.  fn must not change the index. */
typedef void (*mqd_topics_visit_fn)(void *arg, void *value);
void mqd_topics_match(const struct mqd_topics *t, const char *topic,
                      size_t len, mqd_topics_visit_fn fn, void *arg);

/* (pattern, value) pairs stored. */
size_t mqd_topics_count(const struct mqd_topics *t);

/* ---- for tests ------------------------------------------------------ */

/* mqd_topics_match that also returns how many trie nodes the walk entered,
 * so a test can check that matching cost does not grow with the number of
 * patterns stored. */
size_t mqd_topics_match_cost(const struct mqd_topics *t, const char *topic,
                             size_t len, mqd_topics_visit_fn fn, void *arg);
/* Trie nodes held, the root not counted: 0 when the index is empty, which
 * shows that remove prunes. */
size_t mqd_topics_node_count(const struct mqd_topics *t);
/* Fault seam: let n more allocations by t succeed, then fail every one
 * (n < 0: never fail, the default). */
void mqd_topics_fail_after(struct mqd_topics *t, long n);

/* The worker holding a topic or pattern: the shard of its first token;
 * *all is set, and 0 returned, when every worker holds it (a pattern whose
 * first token is a wildcard). */
unsigned mqd_topics_shard(const char *name, size_t len, unsigned nworkers,
                          bool *all);

#endif
