/*
 * Fuzz target "topics": the topic trie (src/route/topics.c), checked
 * against a naive matcher on the same patterns and topics.  A wrong match
 * is a failure (abort), not only a crash.
 *
 * The input is a script, one operation a line:
 *   +V PATTERN   store value V (one byte) under PATTERN (the byte
 *                between V and PATTERN is not looked at)
 *   -V PATTERN   remove one V from PATTERN
 *   ?TOPIC       match TOPIC
 *   !D           let D (a digit) more allocations succeed, then fail
 *                them all; "!" and anything else: never fail
 * Patterns and topics that PROTOCOL.md would refuse (mqd_pattern_valid,
 * mqd_topic_valid) are skipped, as the broker never hands them over.
 *
 * The reference is a plain list of (pattern, value) pairs and a matcher
 * written from PROTOCOL.md's rule alone (`*` exactly one token, `>` as the
 * last token one or more).  After every operation the trie and the list
 * must agree: what add and remove return (a failed add stores nothing and
 * builds no node), the count, no nodes once empty; and every match must
 * visit exactly the values the list says, as many times.  At the end each
 * stored pattern is matched by topics made from it, and freeing the trie
 * hands back every value once.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "proto/proto.h"
#include "route/topics.h"

#define ENTRIES_MAX 4096

struct entry {
	char pat[MQD_NAME_MAX + 1];
	size_t len;
	uintptr_t value;
};

struct ref {
	struct entry *e;
	size_t n;
};

static void *as_value(uint8_t v)
{
	return (void *)(uintptr_t)(v + 1u);
}

/* The next token of s[0..len) from *pos: [*start, *end); false at the end. */
static bool next_token(const char *s, size_t len, size_t *pos, size_t *start,
                       size_t *end)
{
	size_t i = *pos;

	if (i > len)
		return false;
	*start = i;
	while (i < len && s[i] != '.')
		i++;
	*end = i;
	*pos = i + 1;
	return true;
}

/* PROTOCOL.md, token by token: `*` one token, `>` (last) one or more. */
static bool naive_match(const char *pat, size_t plen, const char *top,
                        size_t tlen)
{
	size_t pp = 0, tp = 0, ps, pe, ts, te;

	for (;;) {
		bool pmore = next_token(pat, plen, &pp, &ps, &pe);
		bool tmore = next_token(top, tlen, &tp, &ts, &te);

		if (!pmore || !tmore)
			return !pmore && !tmore;
		if (pe - ps == 1 && pat[ps] == '>')
			return true; /* and at least this one token is there */
		if (!(pe - ps == 1 && pat[ps] == '*') &&
		    (pe - ps != te - ts || memcmp(pat + ps, top + ts, pe - ps)))
			return false;
	}
}

static int cmp_value(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

struct seen {
	uintptr_t v[ENTRIES_MAX];
	size_t n;
};

static void visit(void *arg, void *value)
{
	struct seen *s = arg;

	FUZZ_CHECK(s->n < ENTRIES_MAX);
	s->v[s->n++] = (uintptr_t)value;
}

static void check_match(const struct mqd_topics *t, const struct ref *r,
                        const char *topic, size_t len)
{
	static struct seen got, want;

	got.n = want.n = 0;
	mqd_topics_match(t, topic, len, visit, &got);
	for (size_t i = 0; i < r->n; i++)
		if (naive_match(r->e[i].pat, r->e[i].len, topic, len))
			want.v[want.n++] = r->e[i].value;
	FUZZ_CHECK(got.n == want.n);
	qsort(got.v, got.n, sizeof got.v[0], cmp_value);
	qsort(want.v, want.n, sizeof want.v[0], cmp_value);
	FUZZ_CHECK(memcmp(got.v, want.v, got.n * sizeof got.v[0]) == 0);
}

static void check_shape(const struct mqd_topics *t, const struct ref *r)
{
	FUZZ_CHECK(mqd_topics_count(t) == r->n);
	if (r->n == 0)
		FUZZ_CHECK(mqd_topics_node_count(t) == 0);
}

static void add(struct mqd_topics *t, struct ref *r, uint8_t v,
                const char *pat, size_t len)
{
	size_t nodes = mqd_topics_node_count(t);
	unsigned nworkers = 1u + v % 8u;
	bool all;

	FUZZ_CHECK(mqd_topics_shard(pat, len, nworkers, &all) < nworkers);
	FUZZ_CHECK(all == ((pat[0] == '*' || pat[0] == '>') &&
	                   (len == 1 || pat[1] == '.')));
	if (r->n == ENTRIES_MAX)
		return;
	if (mqd_topics_add(t, pat, len, as_value(v)) != 0) {
		/* Only the fault seam makes it fail; then nothing changed. */
		FUZZ_CHECK(mqd_topics_count(t) == r->n);
		FUZZ_CHECK(mqd_topics_node_count(t) == nodes);
		return;
	}
	memcpy(r->e[r->n].pat, pat, len);
	r->e[r->n].len = len;
	r->e[r->n].value = (uintptr_t)as_value(v);
	r->n++;
}

static void del(struct mqd_topics *t, struct ref *r, uint8_t v,
                const char *pat, size_t len)
{
	int want = 1, got = mqd_topics_remove(t, pat, len, as_value(v));

	for (size_t i = 0; i < r->n; i++) {
		if (r->e[i].len == len && memcmp(r->e[i].pat, pat, len) == 0 &&
		    r->e[i].value == (uintptr_t)as_value(v)) {
			r->e[i] = r->e[--r->n];
			want = 0;
			break;
		}
	}
	FUZZ_CHECK(got == want);
}

/* A topic the pattern matches: `*` becomes a token, `>` one or two. */
static size_t topic_of(const struct entry *e, bool two, char *out)
{
	size_t n = 0, pos = 0, s, end;

	while (next_token(e->pat, e->len, &pos, &s, &end)) {
		const char *tok = e->pat + s;
		size_t tl = end - s;

		if (tl == 1 && tok[0] == '*')
			tok = "x", tl = 1;
		else if (tl == 1 && tok[0] == '>')
			tok = two ? "y.z" : "y", tl = two ? 3 : 1;
		if (n + (n > 0) + tl > MQD_NAME_MAX)
			return 0;
		if (n > 0)
			out[n++] = '.';
		memcpy(out + n, tok, tl);
		n += tl;
	}
	return n;
}

static size_t freed;

static void count_free(void *value)
{
	FUZZ_CHECK(value != NULL);
	freed++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct entry entries[ENTRIES_MAX];
	struct ref r = { entries, 0 };
	struct mqd_topics *t = mqd_topics_new();
	const char *text = (const char *)data;
	char topic[MQD_NAME_MAX + 1];
	size_t pos = 0;

	FUZZ_CHECK(t != NULL);
	while (pos < size) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', size - pos);
		size_t n = nl != NULL ? (size_t)(nl - line) : size - pos;
		const char *arg = line + 3; /* "+V PATTERN" */
		size_t alen = n >= 3 ? n - 3 : 0;

		pos += n + 1;
		if (n == 0)
			continue;
		switch (line[0]) {
		case '+':
		case '-':
			if (n < 3 || !mqd_pattern_valid((const uint8_t *)arg,
			                                 alen))
				break;
			if (line[0] == '+')
				add(t, &r, (uint8_t)line[1], arg, alen);
			else
				del(t, &r, (uint8_t)line[1], arg, alen);
			break;
		case '?':
			if (mqd_topic_valid((const uint8_t *)line + 1, n - 1))
				check_match(t, &r, line + 1, n - 1);
			break;
		case '!':
			mqd_topics_fail_after(t, n >= 2 && line[1] >= '0' &&
			                                 line[1] <= '9'
			                         ? line[1] - '0' : -1);
			break;
		default:
			break;
		}
		check_shape(t, &r);
	}
	mqd_topics_fail_after(t, -1);
	for (size_t i = 0; i < r.n && i < 64; i++) {
		size_t len = topic_of(&r.e[i], false, topic);

		if (len > 0)
			check_match(t, &r, topic, len);
		len = topic_of(&r.e[i], true, topic);
		if (len > 0)
			check_match(t, &r, topic, len);
	}
	freed = 0;
	mqd_topics_free(t, count_free);
	FUZZ_CHECK(freed == r.n);
	return 0;
}
