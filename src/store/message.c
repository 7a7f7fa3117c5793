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

/* A shared body is counted in full by every message holding it: the limit
 * errs on the side of refusing early. */
static size_t footprint(const struct mqd_msg *m)
{
	return sizeof *m + m->headers_len + m->body_len;
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

static const uint8_t no_headers[2] = {0, 0};

static struct mqd_msg *msg_alloc(const void *headers, size_t headers_len,
                                 uint16_t nheaders, const void *body,
                                 size_t body_len, bool inline_body)
{
	struct mqd_msg *m;

	if (headers == NULL || headers_len < 2) {
		headers = no_headers;
		headers_len = 2;
		nheaders = 0;
	}
	if (headers_len > UINT32_MAX || body_len > UINT32_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	size_t size = sizeof *m + headers_len + (inline_body ? body_len : 0);
	size_t counted = sizeof *m + headers_len + body_len;
	uint64_t limit = atomic_load(&mem_limit);
	/* Reserve first, so two workers cannot both take the last room. */
	uint64_t before = atomic_fetch_add(&mem_used, counted);
	if (limit && before + counted > limit) {
		atomic_fetch_sub(&mem_used, counted);
		errno = ENOBUFS;
		return NULL;
	}
	m = malloc(size);
	if (m == NULL) {
		atomic_fetch_sub(&mem_used, counted);
		errno = ENOMEM;
		return NULL;
	}
	memset(m, 0, sizeof *m);
	m->heap_idx = MQD_NO_HEAP;
	m->nheaders = nheaders;
	m->headers_len = (uint32_t)headers_len;
	m->body_len = (uint32_t)body_len;
	memcpy(m->data, headers, headers_len);
	if (inline_body && body_len)
		memcpy(m->data + headers_len, body, body_len);
	return m;
}

struct mqd_msg *mqd_msg_new(const void *headers, size_t headers_len,
                            uint16_t nheaders, const void *body,
                            size_t body_len)
{
	return msg_alloc(headers, headers_len, nheaders, body, body_len, true);
}

struct mqd_msg *mqd_msg_new_shared(const void *headers, size_t headers_len,
                                   uint16_t nheaders, struct mqd_shared *sh,
                                   const uint8_t *body, size_t body_len)
{
	struct mqd_msg *m =
		msg_alloc(headers, headers_len, nheaders, NULL, body_len, false);

	if (m != NULL) {
		mqd_shared_ref(sh);
		m->shared = sh;
		m->ext_body = body;
	}
	return m;
}

void mqd_msg_free(struct mqd_msg *m)
{
	if (m == NULL)
		return;
	atomic_fetch_sub(&mem_used, footprint(m));
	mqd_shared_unref(m->shared);
	free(m);
}
