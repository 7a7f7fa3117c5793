/*
 * The topic index: a trie with one node per pattern token.  A node keeps its
 * literal children in an open-addressing hash table (linear probing,
 * backward-shift deletion, so no tombstones build up), and its `*` and `>`
 * children in their own pointers, so matching a topic costs one hash lookup
 * per token and branch, whatever the number of patterns.  Values live in a
 * growable array at the node where their pattern ends.
 *
 * Invariants: every node but the root holds a value or a child (remove
 * prunes the rest); a table is never more than 3/4 full, so probing always
 * ends at an empty slot; add and remove change nothing visible until every
 * allocation they need has succeeded.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/shard.h"
#include "route/topics.h"

#define TABLE_MIN 2 /* a power of two; one child fits (load <= 3/4) */

/* A table slot keeps the child's hash beside it, so probing past other
 * children and growing the table touch only the table. */
struct slot {
	struct node *node; /* NULL: empty */
	uint32_t hash;
};

struct node {
	struct slot *slots;  /* literal children */
	uint32_t mask;       /* table capacity - 1; 0 while slots is NULL */
	uint32_t nchild;     /* literal children in slots */
	struct node *star;   /* the `*` child */
	struct node *gt;     /* the `>` child: values only, never children */
	void **vals;
	uint32_t nvals, capvals;
	uint32_t hash; /* of tok, kept so a table can grow without rehashing */
	uint32_t len;
	char tok[];
};

struct mqd_topics {
	struct node *root; /* no token; never holds values */
	size_t count;     /* (pattern, value) pairs */
	size_t nodes;     /* nodes besides the root */
	long fail_after;  /* fault seam: < 0 never fail */
};

/* One token of a pattern or topic: [p, p + len). */
struct tok {
	const char *p;
	size_t len;
	uint32_t hash;
};

enum kind { LITERAL, STAR, GT };

/* ---- allocation (through the fault seam) ---------------------------- */

static void *t_malloc(struct mqd_topics *t, size_t size)
{
	if (t->fail_after == 0)
		return NULL;
	if (t->fail_after > 0)
		t->fail_after--;
	return malloc(size);
}

static void *t_realloc(struct mqd_topics *t, void *p, size_t size)
{
	if (t->fail_after == 0)
		return NULL;
	if (t->fail_after > 0)
		t->fail_after--;
	return realloc(p, size);
}

static void *t_calloc(struct mqd_topics *t, size_t n, size_t size)
{
	if (t->fail_after == 0)
		return NULL;
	if (t->fail_after > 0)
		t->fail_after--;
	return calloc(n, size);
}

/* ---- tokens ---------------------------------------------------------- */

/* FNV-1a, then a finalizer so the low bits (the table index) are mixed. */
static uint32_t tok_hash(const char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (uint32_t)h;
}

/* The token starting at p, which ends at the next dot or at end.  Returns
 * the start of the next token, or NULL when this one is the last. */
static const char *tok_next(const char *p, const char *end, struct tok *k)
{
	const char *dot = memchr(p, '.', (size_t)(end - p));
	const char *q = dot ? dot : end;

	k->p = p;
	k->len = (size_t)(q - p);
	return dot ? dot + 1 : NULL;
}

static enum kind pattern_kind(const struct tok *k)
{
	if (k->len == 1 && k->p[0] == '*')
		return STAR;
	if (k->len == 1 && k->p[0] == '>')
		return GT;
	return LITERAL;
}

/* ---- literal children ------------------------------------------------ */

static struct node *child_get(const struct node *n, const struct tok *k)
{
	if (n->slots == NULL)
		return NULL;
	for (uint32_t i = k->hash & n->mask;; i = (i + 1) & n->mask) {
		const struct slot *e = &n->slots[i];
		if (e->node == NULL)
			return NULL;
		if (e->hash == k->hash && e->node->len == k->len &&
		    memcmp(e->node->tok, k->p, k->len) == 0)
			return e->node;
	}
}

static void slots_put(struct slot *slots, uint32_t mask, struct node *c,
                      uint32_t hash)
{
	uint32_t i = hash & mask;

	while (slots[i].node != NULL)
		i = (i + 1) & mask;
	slots[i].node = c;
	slots[i].hash = hash;
}

/* Move the children to a table of cap slots (cap > nchild * 4/3). */
static int table_resize(struct mqd_topics *t, struct node *n, uint32_t cap)
{
	struct slot *slots = t_calloc(t, cap, sizeof *slots);

	if (slots == NULL)
		return -1;
	for (uint32_t i = 0; n->slots != NULL && i <= n->mask; i++)
		if (n->slots[i].node != NULL)
			slots_put(slots, cap - 1, n->slots[i].node,
			          n->slots[i].hash);
	free(n->slots);
	n->slots = slots;
	n->mask = cap - 1;
	return 0;
}

/* Make room for one more child, so child_insert cannot fail. */
static int table_reserve(struct mqd_topics *t, struct node *n)
{
	uint32_t cap = n->slots ? n->mask + 1 : 0;

	if ((uint64_t)(n->nchild + 1) * 4 <= (uint64_t)cap * 3)
		return 0;
	if (cap > UINT32_MAX / 2)
		return -1;
	return table_resize(t, n, cap ? cap * 2 : TABLE_MIN);
}

static void child_insert(struct node *n, struct node *c)
{
	slots_put(n->slots, n->mask, c, c->hash);
	n->nchild++;
}

/* Backward-shift deletion: pull later entries of the probe run into the
 * hole so that lookups never stop early. */
static void child_delete(struct mqd_topics *t, struct node *n, struct node *c)
{
	uint32_t i = c->hash & n->mask, j;

	while (n->slots[i].node != c)
		i = (i + 1) & n->mask;
	n->slots[i].node = NULL;
	for (j = (i + 1) & n->mask; n->slots[j].node != NULL;
	     j = (j + 1) & n->mask) {
		uint32_t home = n->slots[j].hash & n->mask;
		/* The entry at j stays if its home lies cyclically in (i, j]. */
		if (i < j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		n->slots[i] = n->slots[j];
		n->slots[j].node = NULL;
		i = j;
	}
	n->nchild--;
	if (n->nchild == 0) {
		free(n->slots);
		n->slots = NULL;
		n->mask = 0;
	} else if (n->mask + 1 > TABLE_MIN && n->nchild * 8 <= n->mask + 1) {
		(void)table_resize(t, n, (n->mask + 1) / 2); /* failure keeps it */
	}
}

/* ---- nodes ------------------------------------------------------------ */

static struct node *node_new(struct mqd_topics *t, const struct tok *k)
{
	struct node *n = t_malloc(t, sizeof *n + k->len);

	if (n == NULL)
		return NULL;
	memset(n, 0, sizeof *n);
	memcpy(n->tok, k->p, k->len);
	n->len = (uint32_t)k->len;
	n->hash = k->hash;
	return n;
}

/* Free n and everything below it, handing each value to free_value. */
static void node_free_tree(struct node *n, void (*free_value)(void *))
{
	if (n->slots != NULL)
		for (uint32_t i = 0; i <= n->mask; i++)
			if (n->slots[i].node != NULL)
				node_free_tree(n->slots[i].node, free_value);
	if (n->star != NULL)
		node_free_tree(n->star, free_value);
	if (n->gt != NULL)
		node_free_tree(n->gt, free_value);
	if (free_value != NULL)
		for (uint32_t i = 0; i < n->nvals; i++)
			free_value(n->vals[i]);
	free(n->slots);
	free(n->vals);
	free(n);
}

static bool node_empty(const struct node *n)
{
	return n->nvals == 0 && n->nchild == 0 && n->star == NULL &&
	       n->gt == NULL;
}

/* The child of n that token k (of a pattern) leads to. */
static struct node *pattern_child(const struct node *n, struct tok *k)
{
	switch (pattern_kind(k)) {
	case STAR:
		return n->star;
	case GT:
		return n->gt;
	default:
		k->hash = tok_hash(k->p, k->len);
		return child_get(n, k);
	}
}

/* Hang c below n as the child for token k.  For a literal, n's table must
 * have room (table_reserve). */
static void attach(struct node *n, struct node *c, const struct tok *k)
{
	switch (pattern_kind(k)) {
	case STAR:
		n->star = c;
		break;
	case GT:
		n->gt = c;
		break;
	default:
		child_insert(n, c);
		break;
	}
}

static void detach(struct mqd_topics *t, struct node *n, struct node *c)
{
	if (n->star == c)
		n->star = NULL;
	else if (n->gt == c)
		n->gt = NULL;
	else
		child_delete(t, n, c);
}

static int vals_reserve(struct mqd_topics *t, struct node *n)
{
	void **v;
	uint32_t cap;

	if (n->nvals < n->capvals)
		return 0;
	if (n->capvals > UINT32_MAX / 2)
		return -1;
	cap = n->capvals ? n->capvals * 2 : 1;
	v = t_realloc(t, n->vals, cap * sizeof *v);
	if (v == NULL)
		return -1;
	n->vals = v;
	n->capvals = cap;
	return 0;
}

/* 0 removed, 1 not there.  Order of the rest is kept. */
static int vals_remove(struct mqd_topics *t, struct node *n, void *value)
{
	uint32_t i = n->nvals;

	while (i > 0 && n->vals[i - 1] != value)
		i--;
	if (i == 0)
		return 1;
	i--;
	memmove(n->vals + i, n->vals + i + 1,
	        (n->nvals - i - 1) * sizeof *n->vals);
	n->nvals--;
	if (n->nvals == 0) {
		free(n->vals);
		n->vals = NULL;
		n->capvals = 0;
	} else if (n->capvals > 4 && n->nvals * 4 <= n->capvals) {
		void **v = t_realloc(t, n->vals, n->capvals / 2 * sizeof *v);
		if (v != NULL) { /* failure just keeps the larger array */
			n->vals = v;
			n->capvals /= 2;
		}
	}
	return 0;
}

/* ---- the index -------------------------------------------------------- */

struct mqd_topics *mqd_topics_new(void)
{
	struct mqd_topics *t = calloc(1, sizeof *t);

	if (t == NULL)
		return NULL;
	t->root = calloc(1, sizeof *t->root);
	if (t->root == NULL) {
		free(t);
		return NULL;
	}
	t->fail_after = -1;
	return t;
}

void mqd_topics_free(struct mqd_topics *t, void (*free_value)(void *value))
{
	if (t == NULL)
		return;
	node_free_tree(t->root, free_value);
	free(t);
}

/* Build, detached, the nodes for the tokens from p on, with value stored at
 * the last.  NULL on allocation failure, having freed what it built. */
static struct node *chain_new(struct mqd_topics *t, const char *p,
                              const char *end, void *value, size_t *made)
{
	struct node *head = NULL, *prev = NULL;

	*made = 0;
	while (p != NULL) {
		struct tok k;
		struct node *c;

		p = tok_next(p, end, &k);
		k.hash = pattern_kind(&k) == LITERAL ? tok_hash(k.p, k.len) : 0;
		c = node_new(t, &k);
		if (c == NULL)
			goto fail;
		if (prev == NULL) {
			head = c;
		} else if (pattern_kind(&k) == LITERAL &&
		           table_reserve(t, prev) < 0) {
			free(c);
			goto fail;
		} else {
			attach(prev, c, &k);
		}
		(*made)++;
		prev = c;
	}
	if (prev == NULL || vals_reserve(t, prev) < 0)
		goto fail;
	prev->vals[prev->nvals++] = value;
	return head;
fail:
	if (head != NULL)
		node_free_tree(head, NULL);
	return NULL;
}

int mqd_topics_add(struct mqd_topics *t, const char *pattern, size_t len,
                   void *value)
{
	const char *p = pattern, *end = pattern + len;
	struct node *n = t->root, *head;
	struct tok k;
	size_t made;

	if (len == 0)
		return -1; /* not a pattern: store nothing */
	/* Follow the nodes that exist already. */
	for (;;) {
		const char *next = tok_next(p, end, &k);
		struct node *c = pattern_child(n, &k);

		if (c == NULL)
			break;
		n = c;
		if (next == NULL) {
			if (vals_reserve(t, n) < 0)
				return -1;
			n->vals[n->nvals++] = value;
			t->count++;
			return 0;
		}
		p = next;
	}
	/* k is the first missing token, p where it starts.  Room in n's table
	 * first: a grown table with nothing new in it is still a whole state. */
	if (pattern_kind(&k) == LITERAL && table_reserve(t, n) < 0)
		return -1;
	head = chain_new(t, p, end, value, &made);
	if (head == NULL)
		return -1;
	attach(n, head, &k);
	t->nodes += made;
	t->count++;
	return 0;
}

/* Remove value under the pattern tokens from p on, below n; prune the
 * child on the way back up if it was left empty. */
static int remove_below(struct mqd_topics *t, struct node *n, const char *p,
                        const char *end, void *value)
{
	struct tok k;
	const char *next = tok_next(p, end, &k);
	struct node *c = pattern_child(n, &k);
	int r;

	if (c == NULL)
		return 1;
	if (next == NULL)
		r = vals_remove(t, c, value);
	else
		r = remove_below(t, c, next, end, value);
	if (r == 0 && node_empty(c)) {
		detach(t, n, c);
		free(c->slots);
		free(c->vals);
		free(c);
		t->nodes--;
	}
	return r;
}

int mqd_topics_remove(struct mqd_topics *t, const char *pattern, size_t len,
                      void *value)
{
	int r;

	if (len == 0)
		return 1;
	r = remove_below(t, t->root, pattern, pattern + len, value);
	if (r == 0)
		t->count--;
	return r;
}

/* ---- matching --------------------------------------------------------- */

struct walk {
	const char *end;
	mqd_topics_visit_fn fn;
	void *arg;
	size_t entered; /* nodes entered: the cost, for tests */
};

static void visit_all(struct walk *w, const struct node *n)
{
	w->entered++;
	for (uint32_t i = 0; i < n->nvals; i++)
		w->fn(w->arg, n->vals[i]);
}

/* n has consumed the topic up to p, where at least one token remains. */
static void walk(struct walk *w, const struct node *n, const char *p)
{
	const struct node *c;
	const char *next;
	struct tok k;

	w->entered++;
	if (n->gt != NULL) /* `>`: one or more tokens, and one remains */
		visit_all(w, n->gt);
	next = tok_next(p, w->end, &k);
	if (n->slots != NULL) {
		k.hash = tok_hash(k.p, k.len);
		c = child_get(n, &k);
		if (c != NULL) {
			if (next != NULL)
				walk(w, c, next);
			else
				visit_all(w, c);
		}
	}
	if (n->star != NULL) {
		if (next != NULL)
			walk(w, n->star, next);
		else
			visit_all(w, n->star);
	}
}

size_t mqd_topics_match_cost(const struct mqd_topics *t, const char *topic,
                             size_t len, mqd_topics_visit_fn fn, void *arg)
{
	struct walk w = {topic + len, fn, arg, 0};

	if (len > 0)
		walk(&w, t->root, topic);
	return w.entered;
}

void mqd_topics_match(const struct mqd_topics *t, const char *topic,
                      size_t len, mqd_topics_visit_fn fn, void *arg)
{
	(void)mqd_topics_match_cost(t, topic, len, fn, arg);
}

size_t mqd_topics_count(const struct mqd_topics *t)
{
	return t->count;
}

size_t mqd_topics_node_count(const struct mqd_topics *t)
{
	return t->nodes;
}

void mqd_topics_fail_after(struct mqd_topics *t, long n)
{
	t->fail_after = n < 0 ? -1 : n;
}

unsigned mqd_topics_shard(const char *name, size_t len, unsigned nworkers,
                          bool *all)
{
	const char *dot = memchr(name, '.', len);
	size_t first = dot ? (size_t)(dot - name) : len;

	*all = first == 1 && (name[0] == '*' || name[0] == '>');
	return *all ? 0 : mqd_shard_of(name, first, nworkers);
}
