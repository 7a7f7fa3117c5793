/*
 * A stored message: one allocation holding its metadata, its raw headers
 * field (as on the wire, count included) and its body, so storing a message
 * costs one malloc and delivering it is a copy of two contiguous runs.
 *
 * A message is always in exactly one place: a queue's ready list, or a
 * holder's held list (linked through next/prev), or in flight between them
 * inside one worker.  Only the owning worker touches it.
 */
#ifndef MQD_MESSAGE_H
#define MQD_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

struct mqd_queue;
struct mqd_peer;
struct mqd_consumer;

struct mqd_msg {
	struct mqd_msg *next, *prev;
	uint64_t id;           /* 0 until a queue accepts it */
	uint64_t timestamp_ms; /* when the server accepted it */
	uint32_t ttl_ms, delay_ms;
	uint16_t attempts;     /* deliveries so far */
	uint8_t priority;
	uint16_t nheaders;
	uint32_t headers_len;  /* raw headers field, count included (>= 2) */
	uint32_t body_len;
	/* While held: */
	struct mqd_queue *queue;
	struct mqd_peer *holder;
	struct mqd_consumer *consumer; /* NULL for GET or a cancelled consumer */
	uint8_t data[];        /* headers_len bytes, then body_len bytes */
};

/* A new message from parsed SEND fields.  headers may be NULL/0 for none.
 * Returns NULL on allocation failure. */
struct mqd_msg *mqd_msg_new(const void *headers, size_t headers_len,
                            uint16_t nheaders, const void *body,
                            size_t body_len);
void mqd_msg_free(struct mqd_msg *m);

static inline const uint8_t *mqd_msg_headers(const struct mqd_msg *m)
{
	return m->data;
}
static inline const uint8_t *mqd_msg_body(const struct mqd_msg *m)
{
	return m->data + m->headers_len;
}
/* Bytes the message accounts for against limits: its body. */
static inline uint64_t mqd_msg_bytes(const struct mqd_msg *m)
{
	return m->body_len;
}

#endif
