/*
 * Queue policies on the owner: where a message goes when it arrives, comes
 * back, expires or is rejected.  TTL, delays, max_attempts and
 * dead-lettering live here; ops.c calls these at each point a message
 * changes place, and the worker's timer heap wakes them for deadlines.
 */
#ifndef MQD_POLICY_H
#define MQD_POLICY_H

#include <stdbool.h>
#include <stdint.h>

struct mqd_owner;
struct mqd_queue;
struct mqd_msg;
struct mqd_mail_dead;

/* How many times one message may be dead-lettered before it is dropped:
 * stops a chain of dead-letter queues that loops at run time. */
#define MQD_DEAD_HOPS_MAX 8

/* Give m (new to this owner) an expiry ttl_ms from now; 0 = none.  -1
 * when no track can be attached for it. */
int mqd_policy_set_expiry(struct mqd_owner *ow, struct mqd_msg *m,
                          uint32_t ttl_ms) __attribute__((warn_unused_result));
/* Make m ready in q (head or tail of its level), with its expiry timer; a
 * message already past its TTL expires instead.  -1 (m untouched) only when
 * the timer heap cannot grow. */
int mqd_policy_enqueue(struct mqd_owner *ow, struct mqd_queue *q,
                       struct mqd_msg *m, bool head)
	__attribute__((warn_unused_result));
/* Hold m in q's delayed list until due (monotonic ms). -1 as above. */
int mqd_policy_delay(struct mqd_owner *ow, struct mqd_queue *q,
                     struct mqd_msg *m, uint64_t due)
	__attribute__((warn_unused_result));
/* m (taken out of q) expired: count it, dead-letter or drop it. */
void mqd_policy_expire(struct mqd_owner *ow, struct mqd_queue *q,
                       struct mqd_msg *m);
/* m (taken out of q) moves to q's dead-letter queue with this reason
 * ("rejected", "expired", "max-attempts"), or is dropped and counted. */
void mqd_policy_dead_letter(struct mqd_owner *ow, struct mqd_queue *q,
                            struct mqd_msg *m, const char *reason);
/* A held message (already unheld) comes back to q: dead-lettered past
 * max_attempts, expired past its TTL, else ready again at the head of its
 * level, or after delay_ms at the tail. */
void mqd_policy_return(struct mqd_owner *ow, struct mqd_queue *q,
                       struct mqd_msg *m, uint32_t delay_ms);
/* A dead-lettered message arriving at this owner. */
void mqd_policy_receive_dead(struct mqd_owner *ow, struct mqd_mail_dead *d);
/* Put m in the worker's timer heap at `at` (monotonic ms), arming the
 * worker's timer earlier if needed.  -1 when the heap cannot grow. */
int mqd_policy_set_timer(struct mqd_owner *ow, struct mqd_msg *m, uint64_t at)
	__attribute__((warn_unused_result));
/* Arm the worker's timer for its earliest deadline. */
void mqd_policy_rearm(struct mqd_owner *ow);

#endif
