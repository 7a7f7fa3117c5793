/*
 * A stored message: one allocation holding its metadata, its raw headers
 * field (as on the wire, count included) and its body, so storing a message
 * costs one malloc and delivering it is a copy of two contiguous runs.
 *
 * A message is in exactly one place, named by its state: a queue's ready
 * level (READY), a queue's delayed list (DELAYED), or a holder's held list
 * (HELD), linked through next (and its track's prev, below); LOOSE while
 * it moves between them.  Only the owning worker touches it.
 *
 * Size.  A backlog is mostly messages, so the fields before data[] take
 * 36 bytes: with a 100-byte body and malloc's 8-byte header, one 144-byte
 * chunk.  What only some messages need lives elsewhere:
 *  - a message with a deadline (TTL, delay, ack timeout), a holder, or
 *    delivered before, gets a struct mqd_track from its owner (attached
 *    and recycled by timers.h): its queue, holder, consumer, expiry, heap
 *    slot, attempts, and its back link;
 *  - lists are linked forward through next, and backward through the
 *    track: only a message with a track is ever taken out of the middle of
 *    a list (expiry, end of delay, ACK), the others leave from the head;
 *  - empty headers take no bytes; other headers are stored behind a
 *    32-bit length;
 *  - a body shared with other messages (a PUBLISH's copies) is a pointer
 *    into the shared buffer, of which the body is the tail.
 * data[] holds, in this order: the struct mqd_shared pointer (SHARED), the
 * u32 length of the raw headers and the headers (HAS_HEADERS), the body
 * (not SHARED).
 *
 * Memory accounting: every message's allocation (and track) is counted in
 * one process-wide atomic; with a limit set, a new message that would cross it
 * is refused (errno ENOBUFS) before anything is stored.
 */
#ifndef MQD_MESSAGE_H
#define MQD_MESSAGE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

enum mqd_msg_state {
	MQD_MSG_LOOSE,
	MQD_MSG_READY,
	MQD_MSG_DELAYED,
	MQD_MSG_HELD,
};

struct mqd_queue;
struct mqd_peer;
struct mqd_consumer;
struct mqd_track;

struct mqd_msg {
	struct mqd_msg *next;
	/* NULL, or what a message needs while it is HELD or DELAYED, has an
	 * expiry, or has been delivered before (below). */
	struct mqd_track *track;
	union {
		/* Set when a queue accepts the message (mqd_ops_store). */
		uint64_t id;
		/* As sent: read once, by the queue that takes the message,
		 * before it sets the id in their place. */
		struct {
			uint32_t ttl_ms, delay_ms;
		};
	};
	uint32_t body_len;
	/* When the server accepted it: wall-clock ms, in 48 bits. */
	uint32_t ts_lo;
	uint16_t ts_hi;
	uint8_t priority;
	uint8_t state : 2;      /* enum mqd_msg_state */
	uint8_t dead_hops : 4;  /* times it has been dead-lettered (<= 8) */
	uint8_t has_headers : 1;
	uint8_t shared : 1;     /* the body is the tail of a struct mqd_shared */
	uint8_t data[];         /* see the top of this file */
};

#define MQD_NO_HEAP UINT32_MAX

/* The part of a message's bookkeeping few messages need, attached by its
 * owner (timers.h) and freed with the message. */
struct mqd_track {
	union {
		struct mqd_msg *msg;           /* the message it belongs to */
		struct mqd_track *spare_next;  /* not attached: spare list */
	};
	struct mqd_msg *prev;          /* back link in the message's list */
	struct mqd_queue *queue;       /* its queue, once it has one */
	struct mqd_peer *holder;       /* HELD: the connection holding it */
	struct mqd_consumer *consumer; /* HELD: NULL for GET or a cancelled
	                                * consumer */
	uint64_t expires_at;           /* monotonic ms; 0 = never */
	uint64_t timer_at;             /* monotonic ms of its heap entry */
	uint32_t heap_idx;             /* MQD_NO_HEAP when not in the heap */
	uint16_t attempts;             /* deliveries so far */
};

/* A list of messages: a queue's priority level or delayed messages, a
 * peer's held messages. */
void mqd_msg_push_tail(struct mqd_msg **head, struct mqd_msg **tail,
                       struct mqd_msg *m);
void mqd_msg_push_head(struct mqd_msg **head, struct mqd_msg **tail,
                       struct mqd_msg *m);
struct mqd_msg *mqd_msg_pop_head(struct mqd_msg **head, struct mqd_msg **tail);
/* Take m (which has a track: its back link) from anywhere in the list. */
void mqd_msg_unlink(struct mqd_msg **head, struct mqd_msg **tail,
                    struct mqd_msg *m);

/* A new message from parsed SEND fields.  headers may be NULL/0 for none.
 * Returns NULL with errno ENOBUFS when the memory limit would be crossed,
 * ENOMEM when allocation fails. */
struct mqd_msg *mqd_msg_new(const void *headers, size_t headers_len,
                            uint16_t nheaders, const void *body,
                            size_t body_len);
/* The same, with the body by reference: the last body_len bytes of sh
 * (which gains a holder). */
struct mqd_msg *mqd_msg_new_shared(const void *headers, size_t headers_len,
                                   uint16_t nheaders, struct mqd_shared *sh,
                                   size_t body_len);
/* Frees the message, and its track if one is still attached (the caller
 * has taken it out of the timer heap). */
void mqd_msg_free(struct mqd_msg *m);

/* Process-wide accounting of message memory. 0 = no limit. */
void mqd_msg_set_limit(uint64_t bytes);
uint64_t mqd_msg_mem_used(void);
/* Bookkeeping allocated for messages outside their own allocation (a
 * track): counted, never refused. */
void mqd_msg_mem_add(size_t bytes);
void mqd_msg_mem_sub(size_t bytes);

static inline uint64_t mqd_msg_timestamp(const struct mqd_msg *m)
{
	return (uint64_t)m->ts_hi << 32 | m->ts_lo;
}
static inline void mqd_msg_set_timestamp(struct mqd_msg *m, uint64_t ms)
{
	m->ts_lo = (uint32_t)ms;
	m->ts_hi = (uint16_t)(ms >> 32);
}
/* Deliveries so far. */
static inline uint16_t mqd_msg_attempts(const struct mqd_msg *m)
{
	return m->track ? m->track->attempts : 0;
}
/* Expiry (monotonic ms), 0 = never. */
static inline uint64_t mqd_msg_expires(const struct mqd_msg *m)
{
	return m->track ? m->track->expires_at : 0;
}

static inline struct mqd_shared *mqd_msg_shared(const struct mqd_msg *m)
{
	struct mqd_shared *sh = NULL;

	if (m->shared)
		memcpy(&sh, m->data, sizeof sh);
	return sh;
}
static inline const uint8_t *mqd_msg_headers_field(const struct mqd_msg *m)
{
	return m->data + (m->shared ? sizeof(struct mqd_shared *) : 0);
}
/* The raw headers field, count included (2 bytes, count 0, when none). */
static inline uint32_t mqd_msg_headers_len(const struct mqd_msg *m)
{
	uint32_t len = 2;

	if (m->has_headers)
		memcpy(&len, mqd_msg_headers_field(m), sizeof len);
	return len;
}
static inline const uint8_t *mqd_msg_headers(const struct mqd_msg *m)
{
	static const uint8_t none[2] = {0, 0};

	return m->has_headers ? mqd_msg_headers_field(m) + sizeof(uint32_t)
	                      : none;
}
static inline uint16_t mqd_msg_nheaders(const struct mqd_msg *m)
{
	const uint8_t *h = mqd_msg_headers(m);

	return (uint16_t)(h[0] << 8 | h[1]);
}
static inline const uint8_t *mqd_msg_body(const struct mqd_msg *m)
{
	struct mqd_shared *sh = mqd_msg_shared(m);

	if (sh != NULL)
		return sh->data + sh->len - m->body_len;
	return mqd_msg_headers_field(m) +
	       (m->has_headers ? sizeof(uint32_t) + mqd_msg_headers_len(m) : 0);
}
/* Bytes the message accounts for against limits: its body. */
static inline uint64_t mqd_msg_bytes(const struct mqd_msg *m)
{
	return m->body_len;
}

#endif
