/*
 * A stored message: one allocation holding its metadata, its raw headers
 * field (as on the wire, count included) and its body, so storing a message
 * costs one malloc and delivering it is a copy of two contiguous runs.
 *
 * A message is in exactly one place, named by its state: a queue's ready
 * level (READY), a queue's delayed list (DELAYED), or a holder's held list
 * (HELD), linked through next/prev; LOOSE while it moves between them.
 * READY messages with a TTL, DELAYED ones and HELD ones with an ack timeout
 * are also in their owner's timer heap (heap_idx).  Only the owning worker
 * touches it.
 *
 * Memory accounting: every message's allocation is counted in one
 * process-wide atomic; with a limit set, a new message that would cross it
 * is refused (errno ENOBUFS) before anything is stored.
 */
#ifndef MQD_MESSAGE_H
#define MQD_MESSAGE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* A buffer shared between threads and freed by the last holder: a
 * PUBLISH's DELIVER payload, whose tail is the body, is held by every
 * subscriber's socket and by every bound queue's copy of the message. */
struct mqd_shared {
	atomic_uint refs;
	size_t len;
	uint8_t data[];
};
void mqd_shared_ref(struct mqd_shared *sh);
void mqd_shared_unref(struct mqd_shared *sh);

struct mqd_queue;
struct mqd_peer;
struct mqd_consumer;

enum mqd_msg_state {
	MQD_MSG_LOOSE,
	MQD_MSG_READY,
	MQD_MSG_DELAYED,
	MQD_MSG_HELD,
};

#define MQD_NO_HEAP UINT32_MAX

struct mqd_msg {
	struct mqd_msg *next, *prev;
	uint64_t id;           /* 0 until a queue accepts it */
	uint64_t timestamp_ms; /* when the server accepted it (wall clock) */
	uint64_t expires_at;   /* monotonic ms; 0 = never */
	uint64_t timer_at;     /* monotonic ms of its entry in the timer heap */
	uint32_t heap_idx;     /* MQD_NO_HEAP when not in the heap */
	uint32_t ttl_ms, delay_ms; /* as sent; applied when a queue takes it */
	uint16_t attempts;     /* deliveries so far */
	uint8_t priority;
	uint8_t state;         /* enum mqd_msg_state */
	uint8_t dead_hops;     /* times it has been dead-lettered */
	uint16_t nheaders;
	uint32_t headers_len;  /* raw headers field, count included (>= 2) */
	uint32_t body_len;
	/* The body lives in a shared buffer (a PUBLISH's copies) when set. */
	struct mqd_shared *shared;
	const uint8_t *ext_body;
	/* While held: */
	struct mqd_queue *queue;
	struct mqd_peer *holder;
	struct mqd_consumer *consumer; /* NULL for GET or a cancelled consumer */
	uint8_t data[];        /* headers_len bytes, then body_len bytes */
};

/* A new message from parsed SEND fields.  headers may be NULL/0 for none.
 * Returns NULL with errno ENOBUFS when the memory limit would be crossed,
 * ENOMEM when allocation fails. */
struct mqd_msg *mqd_msg_new(const void *headers, size_t headers_len,
                            uint16_t nheaders, const void *body,
                            size_t body_len);
/* The same, with the body by reference into sh (which gains a holder). */
struct mqd_msg *mqd_msg_new_shared(const void *headers, size_t headers_len,
                                   uint16_t nheaders, struct mqd_shared *sh,
                                   const uint8_t *body, size_t body_len);
void mqd_msg_free(struct mqd_msg *m);

/* Process-wide accounting of message memory. 0 = no limit. */
void mqd_msg_set_limit(uint64_t bytes);
uint64_t mqd_msg_mem_used(void);

static inline const uint8_t *mqd_msg_headers(const struct mqd_msg *m)
{
	return m->data;
}
static inline const uint8_t *mqd_msg_body(const struct mqd_msg *m)
{
	return m->ext_body ? m->ext_body : m->data + m->headers_len;
}
/* Bytes the message accounts for against limits: its body. */
static inline uint64_t mqd_msg_bytes(const struct mqd_msg *m)
{
	return m->body_len;
}

#endif
