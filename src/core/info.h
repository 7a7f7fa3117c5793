/*
 * What the broker reports about itself: rows that owners and home workers
 * fill in answer to a query, and that the control socket and the metrics
 * page format.  Plain data, so the layers that fill them and the layers that
 * show them need nothing of each other.
 */
#ifndef MQD_INFO_H
#define MQD_INFO_H

#include <stdbool.h>
#include <stdint.h>

/* How the server names itself (HELLO's answer, the control socket's
 * version). */
#define MQD_SERVER_NAME "mqd/" PACKAGE_VERSION

/* One queue as its owner sees it, for the control socket and tests. */
struct mqd_queue_info {
	char name[256];
	unsigned owner;
	bool exclusive, auto_delete;
	uint64_t ready, held, delayed, bytes;
	uint32_t consumers;
	uint64_t sent, delivered, acked, redelivered, expired, dead_lettered,
		dropped, purged;
	/* effective settings */
	uint32_t max_length;
	uint64_t max_bytes;
	uint8_t overflow; /* 1 reject, 2 drop_head */
	uint32_t message_ttl_ms, ack_timeout_ms;
	uint16_t max_attempts;
	char dead_letter[256];
};

/* Per worker: what it owns and how busy it is. */
struct mqd_worker_info {
	unsigned index;
	uint64_t queues, connections;
	uint64_t ready, held, delayed, bytes;
	uint64_t mails;  /* mails taken from its inbox so far */
	uint64_t frames; /* client frames read by its connections so far */
	uint64_t sent;      /* messages stored in its queues so far */
	uint64_t delivered; /* deliveries from its queues so far */
};

/* One client connection, from its home worker (held: messages it holds on
 * every owner, summed). */
struct mqd_conn_info {
	uint64_t id;
	unsigned worker;
	char peer[64];
	char client[256];
	char user[256];
	uint64_t age_ms;
	uint32_t consumers;
	uint64_t held;
	uint64_t bytes_in, bytes_out;
	uint32_t subscriptions;
	uint64_t dropped; /* published messages lost: it read too slowly */
};

/* Queue operations without a client connection, run by the owner. */
enum mqd_admin_op { MQD_ADMIN_DECLARE, MQD_ADMIN_DELETE, MQD_ADMIN_PURGE };
struct mqd_admin_result {
	int code;          /* 0, or an MQD_ERR_* (NOT_FOUND, CONFLICT, ...) */
	char message[768]; /* for people, when code != 0 */
	uint64_t count;    /* PURGE: messages removed */
	bool created;      /* DECLARE: made now (else it existed, same settings) */
};

#endif
