/* The topic index: wildcard semantics (PROTOCOL.md section 1), values and
 * their removal, pruning, cost independent of the number of patterns, and
 * no half-done change when an allocation fails. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "route/topics.h"

#define V(i) ((void *)(uintptr_t)(i))

/* ---- helpers ----------------------------------------------------------- */

static void add(struct mqd_topics *t, const char *pattern, void *value)
{
	ck_assert_msg(mqd_pattern_valid((const uint8_t *)pattern,
	                                strlen(pattern)),
	              "bad pattern in test: %s", pattern);
	ck_assert_int_eq(mqd_topics_add(t, pattern, strlen(pattern), value), 0);
}

static int rm(struct mqd_topics *t, const char *pattern, void *value)
{
	return mqd_topics_remove(t, pattern, strlen(pattern), value);
}

/* Visits recorded in order. */
struct seen {
	void *v[64];
	size_t n;
};

static void record_cb(void *arg, void *value)
{
	struct seen *s = arg;

	ck_assert_uint_lt(s->n, 64);
	s->v[s->n++] = value;
}

static struct seen match(const struct mqd_topics *t, const char *topic)
{
	struct seen s = {.n = 0};

	ck_assert(mqd_topic_valid((const uint8_t *)topic, strlen(topic)));
	mqd_topics_match(t, topic, strlen(topic), record_cb, &s);
	return s;
}

/* How many times value was visited. */
static size_t times(const struct seen *s, void *value)
{
	size_t k = 0;

	for (size_t i = 0; i < s->n; i++)
		k += s->v[i] == value;
	return k;
}

static void count_cb(void *arg, void *value)
{
	(void)value;
	(*(size_t *)arg)++;
}

static size_t nmatch(const struct mqd_topics *t, const char *topic, size_t len)
{
	size_t k = 0;

	mqd_topics_match(t, topic, len, count_cb, &k);
	return k;
}

/* ---- wildcard semantics -------------------------------------------------- */

static const struct row {
	const char *pattern, *topic;
	bool match;
} rows[] = {
	/* exact */
	{"a", "a", true},
	{"a.b.c", "a.b.c", true},
	{"a.b.c", "a.b.d", false},
	{"a.b.c", "a.b", false},
	{"a.b", "a.b.c", false},
	{"a", "ab", false},
	{"ab", "a", false},
	{"a.bc", "a.b", false},
	{"a.b", "a.bc", false},
	{"orders.eu.paid", "orders.eu.paid", true},
	/* `*` in each position: exactly one token */
	{"*", "a", true},
	{"*", "a.b", false},
	{"*.b.c", "a.b.c", true},
	{"*.b.c", "a.x.c", false},
	{"a.*.c", "a.b.c", true},
	{"a.*.c", "a.b.d", false},
	{"a.*.c", "a.b.c.d", false},
	{"a.*.c", "a.c", false},
	{"a.b.*", "a.b.c", true},
	{"a.b.*", "a.b", false},
	{"a.b.*", "a.b.c.d", false},
	{"*.b", "a.b.c", false},
	{"*.*", "a.b", true},
	{"*.*", "a", false},
	{"*.*", "a.b.c", false},
	{"orders.*.paid", "orders.eu.paid", true},
	/* `>` at the end: one or more tokens */
	{"a.>", "a.b", true},
	{"a.>", "a.b.c", true},
	{"a.>", "a", false},
	{"a.>", "b.c", false},
	{"a.b.>", "a.b", false},
	{"a.b.>", "a.b.c.d.e", true},
	{">", "a", true},
	{">", "a.b.c.d", true},
	{"*.>", "a", false},
	{"*.>", "a.b", true},
	{"a.*.>", "a.b.c", true},
	{"a.*.>", "a.b", false},
	{"orders.>", "orders.eu", true},
	{"orders.>", "orders.eu.paid", true},
	{"orders.>", "orders", false},
	/* a wildcard character is only a wildcard as a whole token */
	{"a.*", "a.bb", true},
	{"a.>", "a.x.y.z.w", true},
};
#define NROWS (sizeof rows / sizeof rows[0])

START_TEST(table_one_pattern_each)
{
	/* Each row alone in its own index. */
	for (size_t i = 0; i < NROWS; i++) {
		struct mqd_topics *t = mqd_topics_new();
		struct seen s;

		ck_assert_ptr_nonnull(t);
		add(t, rows[i].pattern, V(1));
		s = match(t, rows[i].topic);
		ck_assert_msg(s.n == (rows[i].match ? 1u : 0u),
		              "pattern %s topic %s: %zu visits, want %d",
		              rows[i].pattern, rows[i].topic, s.n,
		              rows[i].match);
		mqd_topics_free(t, NULL);
	}
}
END_TEST

START_TEST(table_all_patterns_together)
{
	/* Every row's pattern in one index, each with its own value: matching
	 * a topic visits exactly the rows (by pattern) that say it matches. */
	struct mqd_topics *t = mqd_topics_new();

	ck_assert_ptr_nonnull(t);
	for (size_t i = 0; i < NROWS; i++)
		add(t, rows[i].pattern, V(i + 1));
	ck_assert_uint_eq(mqd_topics_count(t), NROWS);
	for (size_t i = 0; i < NROWS; i++) {
		struct seen s = match(t, rows[i].topic);
		for (size_t j = 0; j < NROWS; j++) {
			size_t want = 0;
			/* Expected: does row j's pattern match row i's topic?
			 * Known only where some row pairs them. */
			bool known = false;
			for (size_t r = 0; r < NROWS; r++)
				if (strcmp(rows[r].pattern, rows[j].pattern) == 0 &&
				    strcmp(rows[r].topic, rows[i].topic) == 0) {
					known = true;
					want = rows[r].match;
				}
			if (known)
				ck_assert_msg(times(&s, V(j + 1)) == want,
				              "pattern %s topic %s",
				              rows[j].pattern, rows[i].topic);
			else
				ck_assert_uint_le(times(&s, V(j + 1)), 1);
		}
	}
	mqd_topics_free(t, NULL);
}
END_TEST

START_TEST(gt_alone_matches_everything)
{
	struct mqd_topics *t = mqd_topics_new();
	char topic[256];

	add(t, ">", V(1));
	ck_assert_uint_eq(match(t, "a").n, 1);
	ck_assert_uint_eq(match(t, "x.y").n, 1);
	ck_assert_uint_eq(match(t, "a.b.c.d.e.f.g.h").n, 1);
	/* The longest topics: 128 one-letter tokens, and one 255-byte token. */
	for (int i = 0; i < 255; i++)
		topic[i] = i % 2 ? '.' : 'q';
	topic[255] = '\0';
	ck_assert_uint_eq(match(t, topic).n, 1);
	memset(topic, 'z', 255);
	ck_assert_uint_eq(match(t, topic).n, 1);
	mqd_topics_free(t, NULL);
}
END_TEST

START_TEST(overlapping_patterns_one_visit_each)
{
	struct mqd_topics *t = mqd_topics_new();
	struct seen s;

	add(t, "a.*", V(1));
	add(t, "a.>", V(1));
	add(t, "a.b", V(2));
	add(t, ">", V(3));
	add(t, "*.b", V(4));

	s = match(t, "a.b");
	ck_assert_uint_eq(s.n, 5);
	ck_assert_uint_eq(times(&s, V(1)), 2); /* a.* and a.> */
	ck_assert_uint_eq(times(&s, V(2)), 1);
	ck_assert_uint_eq(times(&s, V(3)), 1);
	ck_assert_uint_eq(times(&s, V(4)), 1);

	s = match(t, "a.b.c");
	ck_assert_uint_eq(s.n, 2);
	ck_assert_uint_eq(times(&s, V(1)), 1); /* a.> only */
	ck_assert_uint_eq(times(&s, V(3)), 1);

	s = match(t, "a");
	ck_assert_uint_eq(s.n, 1);
	ck_assert_uint_eq(times(&s, V(3)), 1);

	s = match(t, "z.b");
	ck_assert_uint_eq(s.n, 2);
	ck_assert_uint_eq(times(&s, V(3)), 1);
	ck_assert_uint_eq(times(&s, V(4)), 1);
	mqd_topics_free(t, NULL);
}
END_TEST

/* ---- values -------------------------------------------------------------- */

static unsigned flags[1000];

static void flag_cb(void *arg, void *value)
{
	(void)arg;
	flags[(uintptr_t)value - 1]++;
}

START_TEST(many_values_under_one_pattern)
{
	struct mqd_topics *t = mqd_topics_new();

	for (uintptr_t i = 1; i <= 1000; i++)
		add(t, "orders.*.paid", V(i));
	ck_assert_uint_eq(mqd_topics_count(t), 1000);

	memset(flags, 0, sizeof flags);
	mqd_topics_match(t, "orders.eu.paid", 14, flag_cb, NULL);
	for (int i = 0; i < 1000; i++)
		ck_assert_uint_eq(flags[i], 1);

	/* Remove one from the middle and the first and the last. */
	ck_assert_int_eq(rm(t, "orders.*.paid", V(500)), 0);
	ck_assert_int_eq(rm(t, "orders.*.paid", V(1)), 0);
	ck_assert_int_eq(rm(t, "orders.*.paid", V(1000)), 0);
	ck_assert_uint_eq(mqd_topics_count(t), 997);
	memset(flags, 0, sizeof flags);
	mqd_topics_match(t, "orders.eu.paid", 14, flag_cb, NULL);
	for (int i = 0; i < 1000; i++)
		ck_assert_uint_eq(flags[i], i == 499 || i == 0 || i == 999 ? 0 : 1);

	/* Remove all but one (exercising the array shrinking). */
	for (uintptr_t i = 2; i < 1000; i++)
		if (i != 500 && i != 777)
			ck_assert_int_eq(rm(t, "orders.*.paid", V(i)), 0);
	ck_assert_uint_eq(mqd_topics_count(t), 1);
	memset(flags, 0, sizeof flags);
	mqd_topics_match(t, "orders.eu.paid", 14, flag_cb, NULL);
	for (int i = 0; i < 1000; i++)
		ck_assert_uint_eq(flags[i], i == 776 ? 1 : 0);
	mqd_topics_free(t, NULL);
}
END_TEST

START_TEST(remove_one_value_leaves_others)
{
	struct mqd_topics *t = mqd_topics_new();
	struct seen s;

	add(t, "a.b", V(1));
	add(t, "a.b", V(2));
	add(t, "a.*", V(1));
	ck_assert_int_eq(rm(t, "a.b", V(1)), 0);
	s = match(t, "a.b");
	ck_assert_uint_eq(s.n, 2);
	ck_assert_uint_eq(times(&s, V(1)), 1); /* still under a.* */
	ck_assert_uint_eq(times(&s, V(2)), 1);
	ck_assert_uint_eq(mqd_topics_count(t), 2);
	mqd_topics_free(t, NULL);
}
END_TEST

START_TEST(same_pair_twice)
{
	/* A pair may be stored twice; each remove takes one. */
	struct mqd_topics *t = mqd_topics_new();

	add(t, "a.b", V(1));
	add(t, "a.b", V(1));
	ck_assert_uint_eq(mqd_topics_count(t), 2);
	ck_assert_uint_eq(times((struct seen[]){match(t, "a.b")}, V(1)), 2);
	ck_assert_int_eq(rm(t, "a.b", V(1)), 0);
	ck_assert_uint_eq(times((struct seen[]){match(t, "a.b")}, V(1)), 1);
	ck_assert_int_eq(rm(t, "a.b", V(1)), 0);
	ck_assert_int_eq(rm(t, "a.b", V(1)), 1);
	ck_assert_uint_eq(mqd_topics_count(t), 0);
	mqd_topics_free(t, NULL);
}
END_TEST

START_TEST(remove_missing_returns_1)
{
	struct mqd_topics *t = mqd_topics_new();

	ck_assert_int_eq(rm(t, "a.b", V(1)), 1); /* empty index */
	add(t, "a.b", V(1));
	add(t, "a.>", V(2));
	ck_assert_int_eq(rm(t, "a.b", V(2)), 1);   /* wrong value */
	ck_assert_int_eq(rm(t, "a.c", V(1)), 1);   /* no such pattern */
	ck_assert_int_eq(rm(t, "a", V(1)), 1);     /* a prefix node only */
	ck_assert_int_eq(rm(t, "a.b.c", V(1)), 1); /* past the end */
	ck_assert_int_eq(rm(t, "a.*", V(1)), 1);   /* `*` is not a.b */
	ck_assert_int_eq(rm(t, "a.>", V(1)), 1);
	ck_assert_int_eq(rm(t, "*.b", V(1)), 1);
	ck_assert_uint_eq(mqd_topics_count(t), 2);
	ck_assert_uint_eq(match(t, "a.b").n, 2);
	ck_assert_int_eq(rm(t, "a.b", V(1)), 0);
	ck_assert_int_eq(rm(t, "a.b", V(1)), 1); /* already gone */
	ck_assert_uint_eq(mqd_topics_count(t), 1);
	mqd_topics_free(t, NULL);
}
END_TEST

START_TEST(remove_prunes_empty_nodes)
{
	struct mqd_topics *t = mqd_topics_new();

	ck_assert_uint_eq(mqd_topics_node_count(t), 0);
	add(t, "a.b.c", V(1));
	add(t, "a.b", V(2));
	add(t, "a.*.c", V(3));
	add(t, "a.>", V(4));
	ck_assert_uint_eq(mqd_topics_node_count(t), 6); /* a b c * c > */
	ck_assert_int_eq(rm(t, "a.b.c", V(1)), 0);
	ck_assert_uint_eq(mqd_topics_node_count(t), 5); /* b kept: holds 2 */
	ck_assert_int_eq(rm(t, "a.*.c", V(3)), 0);
	ck_assert_uint_eq(mqd_topics_node_count(t), 3);
	ck_assert_int_eq(rm(t, "a.b", V(2)), 0);
	ck_assert_uint_eq(mqd_topics_node_count(t), 2);
	ck_assert_uint_eq(match(t, "a.b.c").n, 1);
	ck_assert_int_eq(rm(t, "a.>", V(4)), 0);
	ck_assert_uint_eq(mqd_topics_node_count(t), 0);
	ck_assert_uint_eq(mqd_topics_count(t), 0);
	/* An emptied index is as good as new. */
	ck_assert_uint_eq(match(t, "a.b").n, 0);
	add(t, "a.b", V(5));
	ck_assert_uint_eq(match(t, "a.b").n, 1);
	mqd_topics_free(t, NULL);
}
END_TEST

static int freed;

static void free_cb(void *value)
{
	free(value);
	freed++;
}

START_TEST(free_hands_back_every_value)
{
	struct mqd_topics *t = mqd_topics_new();

	freed = 0;
	add(t, "a.b", malloc(1));
	add(t, "a.b", malloc(1));
	add(t, "a.*", malloc(1));
	add(t, ">", malloc(1));
	add(t, "x.y.z", malloc(1));
	mqd_topics_free(t, free_cb);
	ck_assert_int_eq(freed, 5);
	mqd_topics_free(NULL, free_cb);
}
END_TEST

/* ---- scale ----------------------------------------------------------------- */

START_TEST(match_cost_independent_of_pattern_count)
{
	struct mqd_topics *small = mqd_topics_new(), *big = mqd_topics_new();
	char buf[64];
	size_t k, cost_small, cost_big;

	/* Loops count their failures and assert once: a passing Check
	 * assertion costs a write to the parent in fork mode. */
	size_t bad = 0;

	for (uintptr_t i = 0; i < 100000; i++) {
		int n = snprintf(buf, sizeof buf, "x.%u.y", (unsigned)i);
		bad += mqd_topics_add(big, buf, (size_t)n, V(i + 1)) != 0;
		if (i < 10)
			bad += mqd_topics_add(small, buf, (size_t)n, V(i + 1)) != 0;
	}
	ck_assert_uint_eq(bad, 0);
	add(big, "x.*.y", V(200000));
	add(small, "x.*.y", V(200000));
	ck_assert_uint_eq(mqd_topics_count(big), 100001);

	k = 0;
	cost_big = mqd_topics_match_cost(big, "x.5.y", 5, count_cb, &k);
	ck_assert_uint_eq(k, 2);
	k = 0;
	cost_small = mqd_topics_match_cost(small, "x.5.y", 5, count_cb, &k);
	ck_assert_uint_eq(k, 2);
	/* root, x, 5, y, *, y */
	ck_assert_uint_eq(cost_big, cost_small);
	ck_assert_uint_le(cost_big, 8);

	{
		struct seen s = match(big, "x.5.y");
		ck_assert_uint_eq(times(&s, V(6)), 1);
		ck_assert_uint_eq(times(&s, V(200000)), 1);
	}
	/* Every one is findable; one not stored gets only the `*`. */
	for (unsigned i = 0; i < 100000; i++) {
		int n = snprintf(buf, sizeof buf, "x.%u.y", i);
		bad += nmatch(big, buf, (size_t)n) != 2;
	}
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(nmatch(big, "x.100000.y", 10), 1);
	ck_assert_uint_eq(nmatch(big, "x.5", 3), 0);
	mqd_topics_free(small, NULL);
	mqd_topics_free(big, NULL);
}
END_TEST

START_TEST(add_remove_100000)
{
	/* Wide tables at two levels; remove in an order unrelated to the
	 * insertion order, checking halfway that deletion kept every probe
	 * run intact. */
	struct mqd_topics *t = mqd_topics_new();
	char buf[64];
	const unsigned N = 100000;
	size_t bad = 0;

	for (unsigned i = 0; i < N; i++) {
		int n = snprintf(buf, sizeof buf, "p%u.%u", i % 1000, i);
		bad += mqd_topics_add(t, buf, (size_t)n, V(i + 1)) != 0;
	}
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(mqd_topics_count(t), N);
	for (unsigned i = 0; i < N; i += 2) {
		int n = snprintf(buf, sizeof buf, "p%u.%u", i % 1000, i);
		bad += mqd_topics_remove(t, buf, (size_t)n, V(i + 1)) != 0;
	}
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(mqd_topics_count(t), N / 2);
	for (unsigned i = 0; i < N; i++) {
		int n = snprintf(buf, sizeof buf, "p%u.%u", i % 1000, i);
		bad += nmatch(t, buf, (size_t)n) != i % 2;
	}
	ck_assert_uint_eq(bad, 0);
	for (unsigned j = 0; j < N / 2; j++) {
		unsigned i = (j * 7919u) % (N / 2) * 2 + 1; /* odd, scattered */
		int n = snprintf(buf, sizeof buf, "p%u.%u", i % 1000, i);
		bad += mqd_topics_remove(t, buf, (size_t)n, V(i + 1)) != 0;
	}
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(mqd_topics_count(t), 0);
	ck_assert_uint_eq(mqd_topics_node_count(t), 0);
	ck_assert_uint_eq(nmatch(t, "p1.1", 4), 0);
	mqd_topics_free(t, NULL);
}
END_TEST

/* ---- allocation failure ------------------------------------------------------ */

static const char *const base[] = {"a.b", "a.c", "a.d", "a.b.x", "q.*"};
#define NBASE (sizeof base / sizeof base[0])

static const char *const probes[] = {"a.b", "a.c", "a.d", "a.e", "a.e.f.g",
                                     "a.b.x", "a.b.y", "a.q.r", "q.z", "z.y"};
#define NPROBES (sizeof probes / sizeof probes[0])

static void snapshot(const struct mqd_topics *t, size_t *out)
{
	for (size_t i = 0; i < NPROBES; i++)
		out[i] = nmatch(t, probes[i], strlen(probes[i]));
}

START_TEST(failed_add_changes_nothing)
{
	/* New nodes under a full-ish table (a has 3 children: the 4th grows
	 * it), a new chain, a new wildcard branch, a second value (the values
	 * array grows), a new top-level token. */
	static const char *const adds[] = {"a.e.f.g", "a.b", "a.*.>", "z.y",
	                                   "a.b.y", "q.*"};

	for (size_t a = 0; a < sizeof adds / sizeof adds[0]; a++) {
		struct mqd_topics *t = mqd_topics_new();
		size_t before[NPROBES], after[NPROBES], count, nodes;
		const char *p = adds[a];
		long n;
		int r = -1;

		for (size_t i = 0; i < NBASE; i++)
			add(t, base[i], V(i + 1));
		snapshot(t, before);
		count = mqd_topics_count(t);
		nodes = mqd_topics_node_count(t);
		for (n = 0; n < 100; n++) {
			mqd_topics_fail_after(t, n);
			r = mqd_topics_add(t, p, strlen(p), V(99));
			if (r == 0)
				break;
			ck_assert_int_eq(r, -1);
			snapshot(t, after);
			ck_assert_mem_eq(before, after, sizeof before);
			ck_assert_uint_eq(mqd_topics_count(t), count);
			ck_assert_uint_eq(mqd_topics_node_count(t), nodes);
			ck_assert_int_eq(rm(t, p, V(99)), 1);
		}
		mqd_topics_fail_after(t, -1);
		ck_assert_int_eq(r, 0);
		ck_assert_msg(n > 0, "%s: no allocation to fail", p);
		ck_assert_uint_eq(mqd_topics_count(t), count + 1);
		/* Removing needs no memory, even when it shrinks tables. */
		mqd_topics_fail_after(t, 0);
		ck_assert_int_eq(rm(t, p, V(99)), 0);
		snapshot(t, after);
		ck_assert_mem_eq(before, after, sizeof before);
		ck_assert_uint_eq(mqd_topics_node_count(t), nodes);
		for (size_t i = 0; i < NBASE; i++)
			ck_assert_int_eq(rm(t, base[i], V(i + 1)), 0);
		ck_assert_uint_eq(mqd_topics_count(t), 0);
		ck_assert_uint_eq(mqd_topics_node_count(t), 0);
		mqd_topics_free(t, NULL);
	}
}
END_TEST

START_TEST(remove_under_failure_with_wide_tables)
{
	/* Tables and value arrays that want to shrink while every allocation
	 * fails: removal still succeeds and lookups stay right. */
	struct mqd_topics *t = mqd_topics_new();
	char buf[32];

	for (unsigned i = 0; i < 2000; i++) {
		int n = snprintf(buf, sizeof buf, "w.%u", i);
		ck_assert_int_eq(mqd_topics_add(t, buf, (size_t)n, V(i + 1)), 0);
		ck_assert_int_eq(mqd_topics_add(t, "w.*", 3, V(i + 1)), 0);
	}
	mqd_topics_fail_after(t, 0);
	for (unsigned i = 0; i < 1990; i++) {
		int n = snprintf(buf, sizeof buf, "w.%u", i);
		ck_assert_int_eq(mqd_topics_remove(t, buf, (size_t)n, V(i + 1)), 0);
		ck_assert_int_eq(mqd_topics_remove(t, "w.*", 3, V(i + 1)), 0);
	}
	for (unsigned i = 0; i < 2000; i++) {
		int n = snprintf(buf, sizeof buf, "w.%u", i);
		ck_assert_uint_eq(nmatch(t, buf, (size_t)n), i < 1990 ? 10 : 11);
	}
	ck_assert_int_eq(mqd_topics_add(t, "w.x", 3, V(1)), -1);
	mqd_topics_fail_after(t, -1);
	ck_assert_int_eq(mqd_topics_add(t, "w.x", 3, V(1)), 0);
	ck_assert_uint_eq(mqd_topics_count(t), 21);
	mqd_topics_free(t, NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("topics");
	TCase *tm = tcase_create("match");
	TCase *tv = tcase_create("values");
	TCase *ts = tcase_create("scale");
	TCase *to = tcase_create("oom");
	SRunner *sr;
	int failed;

	tcase_add_test(tm, table_one_pattern_each);
	tcase_add_test(tm, table_all_patterns_together);
	tcase_add_test(tm, gt_alone_matches_everything);
	tcase_add_test(tm, overlapping_patterns_one_visit_each);
	suite_add_tcase(s, tm);

	tcase_add_test(tv, many_values_under_one_pattern);
	tcase_add_test(tv, remove_one_value_leaves_others);
	tcase_add_test(tv, same_pair_twice);
	tcase_add_test(tv, remove_missing_returns_1);
	tcase_add_test(tv, remove_prunes_empty_nodes);
	tcase_add_test(tv, free_hands_back_every_value);
	suite_add_tcase(s, tv);

	/* Generous: sanitizer builds on slow machines; no timing is asserted. */
	tcase_set_timeout(ts, 120);
	tcase_add_test(ts, match_cost_independent_of_pattern_count);
	tcase_add_test(ts, add_remove_100000);
	suite_add_tcase(s, ts);

	tcase_add_test(to, failed_add_changes_nothing);
	tcase_add_test(to, remove_under_failure_with_wide_tables);
	suite_add_tcase(s, to);

	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
