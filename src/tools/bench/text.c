#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

/*
 * Shared helpers of the text-protocol drivers; see text.h.  Nothing here
 * touches a socket, and nothing on a per-message path allocates once the
 * FIFOs have grown to the window.
 */

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bench/text.h"

int mqb_text_flush(struct mqb_role *r, struct mqb_bio *b, const char *sys)
{
	if (b->out.len && mqb_bio_flush(b) < 0)
		return mqb_fail(r, "%s: write: %s", sys, b->err);
	return 0;
}

int mqb_text_read(struct mqb_role *r, struct mqb_bio *b, const char *sys,
                  int ms, bool over)
{
	if (mqb_bio_read(b, ms) >= 0)
		return 0;
	if (over || mqb_stopping(r->run))
		return 1;
	return mqb_fail(r, "%s: read: %s", sys, b->err);
}

int mqb_text_wait(struct mqb_role *r, const char *sys, int (*pump)(void *),
                  void *arg, const uint64_t *counter, uint64_t target,
                  const char *what)
{
	uint64_t deadline = mqb_now_ns() + (uint64_t)MQB_TEXT_WAIT_MS * 1000000;
	int rc = 0;

	while (rc == 0 && *counter < target) {
		if (mqb_stopping(r->run))
			return 1;
		if (mqb_now_ns() > deadline)
			return mqb_fail(r, "%s: no %s within %d ms", sys, what,
			                MQB_TEXT_WAIT_MS);
		rc = pump(arg);
	}
	return rc;
}

void mqb_put_dec(struct mqb_buf *w, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	mqb_buf_put(w, tmp + sizeof tmp - n, n);
}

size_t mqb_parse_dec(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	const uint8_t *s = p;
	uint64_t x = 0;

	while (p < end && *p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');

		if (x > (UINT64_MAX - d) / 10)
			return 0;
		x = x * 10 + d;
		p++;
	}
	*v = x;
	return (size_t)(p - s);
}

/* ---- string table ---- */

static int strtab_grow(struct mqb_strtab *t, size_t need)
{
	if (t->n + 1 >= t->max) {
		unsigned max = t->max ? t->max * 2 : 64;
		size_t *off = realloc(t->off, (size_t)max * sizeof *off);

		if (!off)
			return -1;
		if (!t->off)
			off[0] = 0;
		t->off = off;
		t->max = max;
	}
	if (t->len + need > t->cap) {
		size_t cap = t->cap ? t->cap : 1024;
		char *buf;

		while (cap < t->len + need)
			cap *= 2;
		buf = realloc(t->buf, cap);
		if (!buf)
			return -1;
		t->buf = buf;
		t->cap = cap;
	}
	return 0;
}

int mqb_strtab_add(struct mqb_strtab *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	/* +1: vsnprintf writes a terminator we then overwrite */
	if (n < 0 || strtab_grow(t, (size_t)n + 1) < 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
	t->off[++t->n] = t->len;
	return 0;
}

void mqb_strtab_free(struct mqb_strtab *t)
{
	free(t->buf);
	free(t->off);
	memset(t, 0, sizeof *t);
}

/* ---- a consumer's queues ---- */

struct qlist {
	unsigned *v;
	unsigned n, cap;
	bool oom;
};

static void qlist_add(void *arg, unsigned q)
{
	struct qlist *l = arg;

	if (l->oom)
		return;
	if (l->n == l->cap) {
		unsigned cap = l->cap ? l->cap * 2 : 16;
		unsigned *v = realloc(l->v, (size_t)cap * sizeof *v);

		if (!v) {
			l->oom = true;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = q;
}

unsigned *mqb_queue_list(const struct mqb_role *r, unsigned *n)
{
	struct qlist l = { 0 };

	mqb_consumer_queues(r, qlist_add, &l);
	if (l.oom || l.n == 0) {
		free(l.v);
		return NULL;
	}
	*n = l.n;
	return l.v;
}

/* ---- a consumer's share of the messages ---- */

struct shared {
	const unsigned *pos;    /* queue -> index in the plan, or UINT_MAX */
	bool hit;
};

static void note_shared(void *arg, unsigned q)
{
	struct shared *s = arg;

	if (s->pos[q] != UINT_MAX)
		s->hit = true;
}

int mqb_plan(const struct mqb_role *r, const unsigned *qs, unsigned nq,
             uint64_t *left)
{
	struct mqb_run *run = r->run;
	unsigned *pos = malloc((size_t)run->o.queues * sizeof *pos);
	/* stand-ins for the other roles: the core's mapping functions only
	 * look at a role's run and id */
	struct mqb_role *o = calloc(1, sizeof *o);
	struct shared sh = { .pos = pos, .hit = false };

	if (!pos || !o) {
		free(pos);
		free(o);
		return -1;
	}
	memset(pos, 0xff, (size_t)run->o.queues * sizeof *pos);
	for (unsigned i = 0; i < nq; i++) {
		pos[qs[i]] = i;
		left[i] = 0;
	}
	o->run = run;
	o->sender = true;
	for (o->id = 0; o->id < run->o.producers; o->id++) {
		for (uint64_t seq = 0; seq < run->o.count; seq++) {
			unsigned i = pos[mqb_queue_for(o, seq)];

			if (i != UINT_MAX)
				left[i]++;
		}
	}
	o->sender = false;
	for (o->id = 0; o->id < run->o.consumers && !sh.hit; o->id++)
		if (o->id != r->id)
			mqb_consumer_queues(o, note_shared, &sh);
	free(pos);
	free(o);
	return sh.hit ? 0 : 1;
}

/* ---- FIFO ---- */

int mqb_fifo_push(struct mqb_fifo *f, uint64_t x)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		uint64_t *v = malloc(cap * sizeof *v);

		if (!v)
			return -1;
		/* unroll the ring so the entries start at 0 again */
		for (size_t i = 0; i < f->n; i++)
			v[i] = f->v[(f->head + i) & (f->cap - 1)];
		free(f->v);
		f->v = v;
		f->cap = cap;
		f->head = 0;
	}
	f->v[(f->head + f->n) & (f->cap - 1)] = x;
	f->n++;
	return 0;
}

uint64_t mqb_fifo_pop(struct mqb_fifo *f)
{
	uint64_t x = f->v[f->head];

	f->head = (f->head + 1) & (f->cap - 1);
	f->n--;
	return x;
}

void mqb_fifo_free(struct mqb_fifo *f)
{
	free(f->v);
	memset(f, 0, sizeof *f);
}

/* ---- request framing ---- */

size_t mqb_rpc_head(uint8_t *dst, const char *name, size_t len)
{
	dst[0] = (uint8_t)(len >> 8);
	dst[1] = (uint8_t)len;
	memcpy(dst + 2, name, len);
	return 2 + len;
}

bool mqb_rpc_split(const uint8_t *p, size_t len, const uint8_t **name,
                   size_t *namelen, const uint8_t **body, size_t *bodylen)
{
	size_t n;

	if (len < 2)
		return false;
	n = (size_t)p[0] << 8 | p[1];
	if (n == 0 || n > MQB_RPC_NAME_MAX || len - 2 < n)
		return false;
	*name = p + 2;
	*namelen = n;
	*body = p + 2 + n;
	*bodylen = len - 2 - n;
	return true;
}
