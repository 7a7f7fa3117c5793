#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "store/message.h"

/* One counter for the process: the limit is on the broker's memory, not on
 * any one worker's, and an atomic add per message is no lock. */
static atomic_uint_least64_t mem_used;
static atomic_uint_least64_t mem_limit;

void mqd_msg_set_limit(uint64_t bytes)
{
	atomic_store(&mem_limit, bytes);
}

uint64_t mqd_msg_mem_used(void)
{
	return atomic_load(&mem_used);
}

void mqd_msg_mem_add(size_t bytes)
{
	atomic_fetch_add(&mem_used, bytes);
}

void mqd_msg_mem_sub(size_t bytes)
{
	atomic_fetch_sub(&mem_used, bytes);
}

/* What a message counts against the limit: its allocation, plus its body
 * when that is shared, counted in full by every message holding it (the
 * limit errs on the side of refusing early). */
static size_t counted(size_t size, bool shared, size_t body_len)
{
	return size + (shared ? body_len : 0);
}

static size_t alloc_size(size_t headers_len, bool shared, size_t body_len)
{
	/* Not sizeof: data[] starts before the struct's tail padding. */
	return offsetof(struct mqd_msg, data) +
	       (shared ? sizeof(struct mqd_shared *) : body_len) +
	       (headers_len ? sizeof(uint32_t) + headers_len : 0);
}

static size_t footprint(const struct mqd_msg *m)
{
	size_t hlen = m->has_headers ? mqd_msg_headers_len(m) : 0;

	return counted(alloc_size(hlen, m->shared, m->body_len), m->shared,
	               m->body_len);
}

void mqd_shared_ref(struct mqd_shared *sh)
{
	atomic_fetch_add(&sh->refs, 1);
}

void mqd_shared_unref(struct mqd_shared *sh)
{
	if (sh != NULL && atomic_fetch_sub(&sh->refs, 1) == 1)
		free(sh);
}

/* headers_len 0: none.  With sh, the body is the tail of sh and body is
 * not read. */
static struct mqd_msg *msg_alloc(const void *headers, size_t headers_len,
                                 const void *body, size_t body_len,
                                 struct mqd_shared *sh)
{
	struct mqd_msg *m;
	uint8_t *p;

	/* A headers field with a count of 0 is stored as none. */
	if (headers == NULL || headers_len <= 2)
		headers_len = 0;
	if (headers_len > UINT32_MAX || body_len > UINT32_MAX ||
	    (sh != NULL && body_len > sh->len)) {
		errno = ENOMEM;
		return NULL;
	}
	size_t size = alloc_size(headers_len, sh != NULL, body_len);
	size_t count = counted(size, sh != NULL, body_len);
	uint64_t limit = atomic_load(&mem_limit);
	/* Reserve first, so two workers cannot both take the last room. */
	uint64_t before = atomic_fetch_add(&mem_used, count);
	if (limit && before + count > limit) {
		atomic_fetch_sub(&mem_used, count);
		errno = ENOBUFS;
		return NULL;
	}
	m = malloc(size);
	if (m == NULL) {
		atomic_fetch_sub(&mem_used, count);
		errno = ENOMEM;
		return NULL;
	}
	memset(m, 0, offsetof(struct mqd_msg, data));
	m->body_len = (uint32_t)body_len;
	p = m->data;
	if (sh != NULL) {
		mqd_shared_ref(sh);
		m->shared = 1;
		memcpy(p, &sh, sizeof sh);
		p += sizeof sh;
	}
	if (headers_len) {
		uint32_t hl = (uint32_t)headers_len;
		m->has_headers = 1;
		memcpy(p, &hl, sizeof hl);
		memcpy(p + sizeof hl, headers, headers_len);
		p += sizeof hl + headers_len;
	}
	if (sh == NULL && body_len)
		memcpy(p, body, body_len);
	return m;
}

struct mqd_msg *mqd_msg_new(const void *headers, size_t headers_len,
                            uint16_t nheaders, const void *body,
                            size_t body_len)
{
	(void)nheaders; /* the raw field starts with it */
	return msg_alloc(headers, headers_len, body, body_len, NULL);
}

struct mqd_msg *mqd_msg_new_shared(const void *headers, size_t headers_len,
                                   uint16_t nheaders, struct mqd_shared *sh,
                                   size_t body_len)
{
	(void)nheaders;
	return msg_alloc(headers, headers_len, NULL, body_len, sh);
}

void mqd_msg_free(struct mqd_msg *m)
{
	if (m == NULL)
		return;
	atomic_fetch_sub(&mem_used, footprint(m));
	mqd_shared_unref(mqd_msg_shared(m));
	if (m->track != NULL) { /* out of any heap: the caller saw to it */
		mqd_msg_mem_sub(sizeof *m->track);
		free(m->track);
	}
	free(m);
}

/* ---- lists ------------------------------------------------------------- */

static void set_prev(struct mqd_msg *m, struct mqd_msg *prev)
{
	if (m->track != NULL)
		m->track->prev = prev;
}

void mqd_msg_push_tail(struct mqd_msg **head, struct mqd_msg **tail,
                       struct mqd_msg *m)
{
	m->next = NULL;
	set_prev(m, *tail);
	if (*tail)
		(*tail)->next = m;
	else
		*head = m;
	*tail = m;
}

void mqd_msg_push_head(struct mqd_msg **head, struct mqd_msg **tail,
                       struct mqd_msg *m)
{
	set_prev(m, NULL);
	m->next = *head;
	if (*head)
		set_prev(*head, m);
	else
		*tail = m;
	*head = m;
}

struct mqd_msg *mqd_msg_pop_head(struct mqd_msg **head, struct mqd_msg **tail)
{
	struct mqd_msg *m = *head;

	if (m == NULL)
		return NULL;
	*head = m->next;
	if (*head)
		set_prev(*head, NULL);
	else
		*tail = NULL;
	m->next = NULL;
	set_prev(m, NULL);
	return m;
}

void mqd_msg_unlink(struct mqd_msg **head, struct mqd_msg **tail,
                    struct mqd_msg *m)
{
	struct mqd_msg *prev = m->track->prev;

	if (prev)
		prev->next = m->next;
	else
		*head = m->next;
	if (m->next)
		set_prev(m->next, prev);
	else
		*tail = prev;
	m->next = NULL;
	m->track->prev = NULL;
}
