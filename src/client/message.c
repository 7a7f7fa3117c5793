#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * libmq: what the library hands out and takes in apart from connections:
 * received messages (each in one allocation with its bytes), their
 * headers, a headers field under construction, and durations.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mq/mq.h"
#include "client/internal.h"
#include "core/duration.h"
#include "proto/proto.h"

/* ---- received messages ------------------------------------------------- */

static struct msgbox *box_of(struct mq_message *m)
{
	return (struct msgbox *)(void *)((char *)m - offsetof(struct msgbox, msg));
}

void mq_message_free(struct mq_message *m)
{
	if (m != NULL)
		free(box_of(m));
}

/* Copy a parsed MESSAGE or DELIVER into a box of its own. */
struct msgbox *mqc_box_message(const struct mqd_frame *f,
                               const struct mqd_message *pm, uint32_t tag)
{
	const uint8_t *base = f->payload.p;
	struct msgbox *b = malloc(sizeof(*b) + f->payload.len);
	struct mq_message *m;

	if (b == NULL)
		return NULL;
	b->next = NULL;
	b->cancelled_tag = 0;
	memcpy(b->data, base, f->payload.len);
	m = &b->msg;
	memset(m, 0, sizeof(*m));
	m->id = pm->id;
	mqc_copy_text(m->source, sizeof(m->source), pm->source.p,
	              pm->source.len);
	m->tag = tag;
	m->attempts = pm->attempts;
	m->timestamp_ms = pm->timestamp_ms;
	m->priority = pm->priority;
	m->nheaders = pm->nheaders;
	m->headers = b->data + (pm->headers.p - base);
	m->headers_len = pm->headers.len;
	m->body = b->data + (pm->body.p - base);
	m->body_len = pm->body.len;
	return b;
}

/* ---- headers --------------------------------------------------------- */

int mq_message_header(const struct mq_message *m, const char *key,
                      const char **value)
{
	struct mqd_span h, v;

	if (m == NULL || key == NULL || m->headers == NULL ||
	    m->headers_len < 2)
		return -1;
	h.p = m->headers;
	h.len = (uint32_t)m->headers_len;
	if (!mqd_headers_find(h, key, &v))
		return -1;
	if (value != NULL)
		*value = (const char *)v.p;
	return (int)v.len;
}

/* A raw headers field under construction (count first, as on the wire). */
struct mq_headers {
	struct mqd_wbuf w;
	uint16_t count;
};

struct mq_headers *mq_headers_new(void)
{
	struct mq_headers *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	mqd_wbuf_init(&h->w);
	mqd_headers_init(&h->w);
	if (h->w.oom) {
		mqd_wbuf_free(&h->w);
		free(h);
		return NULL;
	}
	return h;
}

int mq_headers_add(struct mq_headers *h, const char *key, const char *value)
{
	struct mqd_span field, v;
	size_t vlen, saved_len;
	uint8_t saved_count[2];

	if (h == NULL || key == NULL || value == NULL)
		return MQ_ERR_INVALID;
	vlen = strlen(value);
	if (!mqc_name_ok(key, false) || vlen > UINT16_MAX ||
	    h->count == UINT16_MAX)
		return MQ_ERR_INVALID;
	field.p = h->w.data;
	field.len = (uint32_t)h->w.len;
	if (mqd_headers_find(field, key, &v))
		return MQ_ERR_INVALID;
	saved_len = h->w.len;
	memcpy(saved_count, h->w.data, 2);
	mqd_headers_add(&h->w, key, value, vlen);
	if (h->w.oom) {
		h->w.len = saved_len;
		memcpy(h->w.data, saved_count, 2);
		h->w.oom = false;
		return MQ_ERR_NOMEM;
	}
	h->count++;
	return 0;
}

const uint8_t *mq_headers_data(const struct mq_headers *h, size_t *len)
{
	if (h == NULL) {
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	if (len != NULL)
		*len = h->w.len;
	return h->w.data;
}

void mq_headers_free(struct mq_headers *h)
{
	if (h == NULL)
		return;
	mqd_wbuf_free(&h->w);
	free(h);
}

/* ---- durations ------------------------------------------------------- */

int mq_parse_duration(const char *s, uint64_t *ms)
{
	if (s == NULL || ms == NULL)
		return MQ_ERR_INVALID;
	return mqd_parse_duration(s, ms) == 0 ? 0 : MQ_ERR_INVALID;
}
