/*
 * The queue owner (src/owner/), one or two of them, driven through the
 * recording outbox of owner_rig.h: requests, consumers, a connection's
 * close, queue policies on a fake clock, publish/subscribe, queries.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "mail/mail.h"
#include "owner/ops.h"
#include "owner/owner.h"
#include "proto/proto.h"
#include "route/topics.h"

#include "unit/owner_rig.h"

/* ---- DECLARE ----------------------------------------------------------- */

START_TEST(declare_new_existing_and_conflicting)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0);
	struct mqd_declare d = {.max_length = 10, .message_ttl_ms = 5000};
	struct mqd_declare other = d;
	struct mqd_queue_info i;
	struct rig_ev *e;

	rig_declare(w, a, 1, 0, "jobs", &d);
	e = rig_reply(w, a, 1, MQD_OP_DECLARED);
	rig_span_is(e->p.declared.queue, "jobs");
	ck_assert_uint_eq(e->p.declared.ready, 0);
	ck_assert_uint_eq(e->p.declared.consumers, 0);
	i = rig_info(w, "jobs");
	ck_assert_uint_eq(i.max_length, 10);
	ck_assert_uint_eq(i.message_ttl_ms, 5000);
	ck_assert_uint_eq(i.overflow, 1);          /* the default: reject */
	ck_assert_uint_eq(i.ack_timeout_ms, 30000); /* the default */

	/* Existing, same settings (or fields left 0): DECLARED with its
	 * figures. */
	rig_send_ok(w, a, "jobs", "x");
	rig_declare(w, a, 7, 0, "jobs", &d);
	e = rig_reply(w, a, 7, MQD_OP_DECLARED);
	ck_assert_uint_eq(e->p.declared.ready, 1);
	rig_declare(w, a, 8, 0, "jobs", NULL);
	e = rig_reply(w, a, 8, MQD_OP_DECLARED);
	ck_assert_uint_eq(e->p.declared.ready, 1);

	/* Conflicting: a different setting, or a flag it lacks. */
	other.max_length = 11;
	rig_declare(w, a, 9, 0, "jobs", &other);
	rig_error_reply(w, a, 9, MQD_ERR_CONFLICT);
	other = d;
	other.ack_timeout_ms = 1000;
	rig_declare(w, a, 10, 0, "jobs", &other);
	rig_error_reply(w, a, 10, MQD_ERR_CONFLICT);
	rig_declare(w, a, 11, MQD_F_AUTO_DELETE, "jobs", NULL);
	rig_error_reply(w, a, 11, MQD_ERR_CONFLICT);
	ck_assert_uint_eq(rig_info(w, "jobs").max_length, 10); /* unchanged */

	/* PASSIVE only checks, and creates nothing. */
	rig_declare(w, a, 12, MQD_F_PASSIVE, "nope", &d);
	rig_error_reply(w, a, 12, MQD_ERR_NOT_FOUND);
	ck_assert(!rig_row(w, "nope", &i));
	rig_declare(w, a, 13, MQD_F_PASSIVE, "jobs", &other);
	e = rig_reply(w, a, 13, MQD_OP_DECLARED);
	ck_assert_uint_eq(e->p.declared.ready, 1);

	/* Dead-letter queues: not itself, and no loop. */
	other = d;
	other.dead_letter = rig_span_of("self");
	rig_declare(w, a, 14, 0, "self", &other);
	rig_error_reply(w, a, 14, MQD_ERR_BAD_ARGUMENT);
	other.dead_letter = rig_span_of("b");
	rig_declare_ok(w, a, "a", &other);
	other.dead_letter = rig_span_of("a");
	rig_declare(w, a, 15, 0, "b", &other);
	rig_error_reply(w, a, 15, MQD_ERR_BAD_ARGUMENT);
	ck_assert(!rig_row(w, "b", &i));
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

/* ---- SEND, GET, ACK, NACK ---------------------------------------------- */

START_TEST(send_then_get)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0), *b = rig_connect(w, 0);
	struct rig_sendopt o = {.priority = 3, .hkey = "trace", .hval = "abc"};
	struct mqd_queue_info i;
	uint64_t id;
	struct rig_ev *e;

	rig_send_msg(w, a, 2, "jobs", "hello", &o);
	id = rig_ok_u64(w, a, 2);
	ck_assert_uint_ne(id, 0);
	ck_assert_uint_eq(mqd_id_owner(id), 0);
	i = rig_info(w, "jobs"); /* auto-created */
	ck_assert_uint_eq(i.ready, 1);
	ck_assert_uint_eq(i.sent, 1);

	e = rig_get_msg(w, b, "jobs");
	ck_assert_uint_eq(e->p.message.id, id);
	rig_span_is(e->p.message.source, "jobs");
	ck_assert_uint_eq(e->p.message.attempts, 1);
	ck_assert_uint_eq(e->p.message.timestamp_ms, rig_wall);
	ck_assert_uint_eq(e->p.message.priority, 3);
	ck_assert_uint_eq(e->p.message.nheaders, 1);
	rig_header_is(e, "trace", "abc");
	rig_body_is(e, "hello");
	i = rig_info(w, "jobs");
	ck_assert_uint_eq(i.ready, 0);
	ck_assert_uint_eq(i.held, 1);
	ck_assert_uint_eq(i.delivered, 1);

	/* Higher priority first, FIFO within a level. */
	rig_send_ok(w, a, "prio", "low1");
	o.priority = 9;
	o.hkey = NULL;
	rig_send_msg(w, a, 2, "prio", "high", &o);
	rig_ok_u64(w, a, 2);
	rig_send_ok(w, a, "prio", "low2");
	rig_body_is(rig_get_msg(w, b, "prio"), "high");
	rig_body_is(rig_get_msg(w, b, "prio"), "low1");
	rig_body_is(rig_get_msg(w, b, "prio"), "low2");

	/* QUIET: no frame on success. */
	o.flags = MQD_F_QUIET;
	rig_send_msg(w, a, 2, "jobs", "q", &o);
	rig_quiet_ok(w, a);
	ck_assert_uint_eq(rig_info(w, "jobs").ready, 1);

	/* Server-named queues are never auto-created. */
	rig_send_msg(w, a, 6, "tmp.1.1", "reply", NULL);
	rig_error_reply(w, a, 6, MQD_ERR_NOT_FOUND);
	ck_assert(!rig_row(w, "tmp.1.1", &i));
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

START_TEST(get_empty_with_and_without_wait)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0), *b = rig_connect(w, 0);
	struct rig_ev *e;
	uint64_t id;

	rig_get_empty(w, a, "w");

	/* A waiting GET is answered by the next SEND, after its OK. */
	rig_get(w, a, 20, 0, "w", 60000);
	rig_idle(w);
	id = rig_send_ok(w, b, "w", "late");
	e = rig_reply(w, a, 20, MQD_OP_MESSAGE);
	ck_assert_uint_eq(e->p.message.id, id);
	rig_body_is(e, "late");
	ck_assert_uint_eq(rig_info(w, "w").held, 1);

	/* A wait that times out answers EMPTY and leaves the queue. */
	rig_get(w, a, 21, 0, "w", 1);
	rig_idle(w);
	ck_assert_int_eq(event_base_loop(w->base, EVLOOP_ONCE), 0);
	rig_reply(w, a, 21, MQD_OP_EMPTY);
	rig_send_ok(w, b, "w", "kept");
	ck_assert_uint_eq(rig_info(w, "w").ready, 1);

	/* AUTO_ACK: handed out, not held. */
	rig_get(w, a, 22, MQD_F_AUTO_ACK, "w", 0);
	rig_body_is(rig_reply(w, a, 22, MQD_OP_MESSAGE), "kept");
	ck_assert_uint_eq(rig_info(w, "w").held, 1); /* only "late" */
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

START_TEST(ack_nack_and_unknown_ids)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0), *b = rig_connect(w, 0);
	uint64_t id, ids[3];
	struct rig_ev *e;
	struct mqd_queue_info i;

	rig_send_ok(w, a, "q", "one");
	id = rig_get_msg(w, a, "q")->p.message.id;
	ck_assert_uint_eq(rig_ack1(w, b, id), 0); /* not b's */
	ck_assert_uint_eq(rig_ack1(w, a, id), 1);
	i = rig_info(w, "q");
	ck_assert_uint_eq(i.acked, 1);
	ck_assert_uint_eq(i.held, 0);
	ck_assert_uint_eq(rig_ack1(w, a, id), 0);          /* not held now */
	ck_assert_uint_eq(rig_ack1(w, a, (77ULL << 8)), 0); /* never was */

	/* NACK with requeue: the same message again, attempts 2. */
	rig_send_ok(w, a, "q", "two");
	id = rig_get_msg(w, a, "q")->p.message.id;
	ck_assert_uint_eq(rig_nack1(w, a, id, 1, 0), 1);
	ck_assert_uint_eq(rig_info(w, "q").ready, 1);
	e = rig_get_msg(w, b, "q");
	ck_assert_uint_eq(e->p.message.id, id);
	ck_assert_uint_eq(e->p.message.attempts, 2);
	rig_body_is(e, "two");
	ck_assert_uint_eq(rig_info(w, "q").redelivered, 1);
	ck_assert_uint_eq(rig_ack1(w, a, id), 0); /* b holds it now */

	/* NACK without requeue and no dead-letter queue: dropped. */
	ck_assert_uint_eq(rig_nack1(w, b, id, 0, 0), 1);
	i = rig_info(w, "q");
	ck_assert_uint_eq(i.dropped, 1);
	ck_assert_uint_eq(i.ready + i.held, 0);

	/* NACK with a delay: back at the tail once it is due. */
	rig_send_ok(w, a, "q", "three");
	rig_send_ok(w, a, "q", "four");
	id = rig_get_msg(w, a, "q")->p.message.id;
	ck_assert_uint_eq(rig_nack1(w, a, id, 1, 500), 1);
	ck_assert_uint_eq(rig_info(w, "q").delayed, 1);
	rig_advance(w, 500);
	e = rig_get_msg(w, a, "q");
	rig_body_is(e, "four");
	ids[1] = e->p.message.id;
	e = rig_get_msg(w, a, "q");
	ck_assert_uint_eq(e->p.message.id, id);
	ck_assert_uint_eq(e->p.message.attempts, 2);

	/* Several ids, one unknown; QUIET says nothing. */
	ids[0] = id;
	ids[2] = 99ULL << 8;
	rig_settle(w, a, 30, MQD_OP_ACK, 0, 0, 0, ids, 3);
	ck_assert_uint_eq(rig_ok_u32(w, a, 30), 2);
	rig_send_ok(w, a, "q", "six");
	ids[0] = rig_get_msg(w, a, "q")->p.message.id;
	rig_settle(w, a, 31, MQD_OP_ACK, MQD_F_QUIET, 0, 0, ids, 1);
	rig_quiet_ok(w, a);
	ck_assert_uint_eq(rig_info(w, "q").held, 0);
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

/* ---- CONSUME ----------------------------------------------------------- */

START_TEST(consume_with_prefetch)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0), *b = rig_connect(w, 0);
	uint64_t id[6];
	char body[8];
	struct rig_ev *e, *e2;
	struct mqd_queue_info i;

	for (int k = 0; k < 5; k++) {
		snprintf(body, sizeof body, "m%d", k);
		id[k] = rig_send_ok(w, b, "work", body);
	}
	/* The OK first; the deliveries wait in a batch for the flush. */
	w->manual_flush = true;
	rig_consume(w, a, 7, 0, "work", 2, true);
	rig_ok_empty(w, a, 7);
	rig_idle(w);
	rig_end_of_pass(w, 0);
	w->manual_flush = false;
	e = rig_deliver(w, a, 7);
	e2 = rig_deliver(w, a, 7);
	ck_assert_uint_eq(e->batch, e2->batch); /* one OUTPUT mail */
	ck_assert_uint_eq(e->nframes, 2);
	ck_assert_uint_eq(e->otag, 7);
	ck_assert_uint_eq(e->p.message.id, id[0]);
	rig_span_is(e->p.message.source, "work");
	ck_assert_uint_eq(e->p.message.attempts, 1);
	rig_body_is(e, "m0");
	rig_body_is(e2, "m1");
	rig_idle(w); /* at its prefetch */
	i = rig_info(w, "work");
	ck_assert_uint_eq(i.held, 2);
	ck_assert_uint_eq(i.ready, 3);
	ck_assert_uint_eq(i.consumers, 1);

	/* An ACK lets the next one out, ahead of the ACK's OK. */
	rig_settle(w, a, 4, MQD_OP_ACK, 0, 0, 0, &id[0], 1);
	e = rig_deliver(w, a, 7);
	ck_assert_uint_eq(e->p.message.id, id[2]);
	ck_assert_uint_eq(rig_ok_u32(w, a, 4), 1);
	rig_idle(w);
	/* Two ACKs in one frame: two more, in one mail. */
	rig_settle(w, a, 4, MQD_OP_ACK, 0, 0, 0, &id[1], 2);
	e = rig_deliver(w, a, 7);
	e2 = rig_deliver(w, a, 7);
	ck_assert_uint_eq(e->batch, e2->batch);
	rig_body_is(e, "m3");
	rig_body_is(e2, "m4");
	ck_assert_uint_eq(rig_ok_u32(w, a, 4), 2);

	/* CANCEL: nothing more goes out; what it holds stays held. */
	rig_cancel(w, a, 8, 7);
	rig_ok_empty(w, a, 8);
	rig_send_ok(w, b, "work", "m5");
	rig_idle(w);
	i = rig_info(w, "work");
	ck_assert_uint_eq(i.consumers, 0);
	ck_assert_uint_eq(i.held, 2);
	ck_assert_uint_eq(i.ready, 1);
	rig_settle(w, a, 4, MQD_OP_ACK, 0, 0, 0, &id[3], 2);
	ck_assert_uint_eq(rig_ok_u32(w, a, 4), 2);
	rig_idle(w);
	rig_cancel(w, a, 9, 7);
	rig_error_reply(w, a, 9, MQD_ERR_NOT_FOUND);

	/* Two consumers of one queue share it, each within its prefetch. */
	rig_consume(w, a, 10, 0, "rr", 1, true);
	rig_ok_empty(w, a, 10);
	rig_consume(w, b, 11, 0, "rr", 1, true);
	rig_ok_empty(w, b, 11);
	rig_send_ok(w, b, "rr", "r0");
	rig_body_is(rig_deliver(w, a, 10), "r0");
	rig_send_ok(w, b, "rr", "r1");
	rig_body_is(rig_deliver(w, b, 11), "r1");
	rig_send_ok(w, b, "rr", "r2");
	rig_idle(w);
	ck_assert_uint_eq(rig_info(w, "rr").ready, 1);
	rig_world_free(w);
}
END_TEST

START_TEST(auto_ack_consumer_and_credit)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0), *b = rig_connect(w, 0);
	struct mqd_mail_credit *cr;
	struct rig_ev *e;

	for (int k = 0; k < 4; k++)
		rig_send_ok(w, b, "fast", k % 2 ? "odd" : "even");
	rig_consume(w, a, 5, MQD_F_AUTO_ACK, "fast", 2, true);
	rig_ok_empty(w, a, 5);
	e = rig_deliver(w, a, 5);
	ck_assert_uint_eq(e->credit, 2); /* two to credit back once written */
	rig_deliver(w, a, 5);
	rig_idle(w); /* its window is full */
	ck_assert_uint_eq(rig_info(w, "fast").held, 0);
	ck_assert_uint_eq(rig_info(w, "fast").ready, 2);

	cr = calloc(1, sizeof *cr);
	ck_assert_ptr_nonnull(cr);
	cr->mail.type = MQD_MAIL_CREDIT;
	cr->conn_id = a->id;
	cr->tag = 5;
	cr->n = 2;
	ck_assert(mqd_owner_handle(&w->ow[0], &cr->mail));
	rig_pass(w);
	rig_deliver(w, a, 5);
	rig_deliver(w, a, 5);
	rig_idle(w);
	ck_assert_uint_eq(rig_info(w, "fast").ready, 0);
	rig_world_free(w);
}
END_TEST

/* ---- a connection closes ----------------------------------------------- */

START_TEST(close_returns_held_and_posts_close_done)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0), *b = rig_connect(w, 0);
	struct rig_conn *never = rig_connect(w, 0);
	uint64_t id1;
	struct rig_ev *e;
	struct mqd_queue_info i;

	id1 = rig_send_ok(w, b, "q", "older");
	rig_send_ok(w, b, "q", "newer");
	ck_assert_uint_eq(rig_get_msg(w, a, "q")->p.message.id, id1);
	rig_send_ok(w, b, "c", "held-by-consumer");
	rig_consume(w, a, 40, 0, "c", 1, true);
	rig_ok_empty(w, a, 40);
	rig_deliver(w, a, 40);
	rig_get(w, a, 41, 0, "empty", 60000); /* parked */
	rig_idle(w);

	rig_close_on(w, a, 0, true);
	a->closed = true;
	/* The parked GET is answered, then CLOSE_DONE posted home. */
	rig_error_reply(w, a, 41, MQD_ERR_SHUTTING_DOWN);
	rig_close_done(w, a);
	rig_idle(w);
	i = rig_info(w, "c");
	ck_assert_uint_eq(i.consumers, 0);
	ck_assert_uint_eq(i.held, 0);
	ck_assert_uint_eq(i.ready, 1);
	ck_assert_uint_eq(rig_info(w, "q").held, 0);

	/* The returned message is next out, with attempts 2. */
	e = rig_get_msg(w, b, "q");
	ck_assert_uint_eq(e->p.message.id, id1);
	ck_assert_uint_eq(e->p.message.attempts, 2);
	e = rig_get_msg(w, b, "q");
	rig_body_is(e, "newer");
	ck_assert_uint_eq(e->p.message.attempts, 1);
	e = rig_get_msg(w, b, "c");
	rig_body_is(e, "held-by-consumer");
	ck_assert_uint_eq(e->p.message.attempts, 2);

	/* A connection the owner never saw: CLOSE_DONE at once. */
	rig_close_on(w, never, 0, true);
	never->closed = true;
	rig_close_done(w, never);
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

/*
 * Regression (issue 10): the owner used to remember the queues to dispatch
 * after a close in a fixed dirty[64], and dispatched a queue met past the
 * 64th at once, before the older messages still held for it were back.
 * Here a connection holds two messages of each of 100 queues, the older
 * ones first; another connection consumes every queue, idle.  After the
 * close every queue must deliver its older message first.
 */
#define NQ 100

START_TEST(close_many_queues_redelivers_older_first)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0), *b = rig_connect(w, 0);
	char name[16], body[24];
	unsigned got[NQ + 1] = {0};
	unsigned ndeliver = 0;

	for (unsigned q = 0; q < NQ; q++) {
		snprintf(name, sizeof name, "q%u", q);
		snprintf(body, sizeof body, "old-%u", q);
		rig_send_ok(w, b, name, body);
		snprintf(body, sizeof body, "new-%u", q);
		rig_send_ok(w, b, name, body);
	}
	for (unsigned round = 0; round < 2; round++) {
		for (unsigned q = 0; q < NQ; q++) {
			snprintf(name, sizeof name, "q%u", q);
			rig_get_msg(w, a, name);
		}
	}
	for (unsigned q = 0; q < NQ; q++) {
		snprintf(name, sizeof name, "q%u", q);
		rig_consume(w, b, q + 1, 0, name, 10, true);
		rig_ok_empty(w, b, q + 1);
	}
	rig_idle(w);

	rig_close_on(w, a, 0, true);
	a->closed = true;
	rig_close_done(w, a);
	while (w->head != NULL) {
		struct rig_ev *e = rig_next_ev(w);
		uint32_t tag = e->f.tag;
		ck_assert_int_eq(e->kind, MQD_MAIL_OUTPUT);
		ck_assert_uint_eq(e->conn_id, b->id);
		ck_assert_uint_eq(e->f.op, MQD_OP_DELIVER);
		ck_assert(tag >= 1 && tag <= NQ);
		snprintf(body, sizeof body, "%s-%u", got[tag] ? "new" : "old",
		         tag - 1);
		ck_assert_msg(e->p.message.body.len == strlen(body) &&
		                      memcmp(e->p.message.body.p, body,
		                             strlen(body)) == 0,
		              "queue q%u: delivery %u is %.*s, expected %s",
		              tag - 1, got[tag] + 1,
		              (int)e->p.message.body.len,
		              (const char *)e->p.message.body.p, body);
		ck_assert_uint_eq(e->p.message.attempts, 2);
		got[tag]++;
		ndeliver++;
	}
	ck_assert_uint_eq(ndeliver, 2 * NQ);
	for (unsigned q = 1; q <= NQ; q++)
		ck_assert_uint_eq(got[q], 2);
	rig_world_free(w);
}
END_TEST

/* ---- policies ---------------------------------------------------------- */

START_TEST(ttl_expiry_on_the_timer)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0);
	struct mqd_declare d = {.message_ttl_ms = 5000,
	                        .dead_letter = rig_span_of("t.dead")};
	struct rig_sendopt o = {.ttl_ms = 100};
	struct mqd_queue_info i;
	uint64_t id, sent_at;
	struct rig_ev *e;

	rig_declare_ok(w, a, "t", &d);
	ck_assert_uint_eq(w->rec[0].deadline, 0);
	sent_at = rig_mono;
	id = rig_send_ok(w, a, "t", "perishable");
	ck_assert_uint_eq(w->rec[0].deadline, sent_at + 5000);
	rig_advance(w, 4999);
	ck_assert_uint_eq(rig_info(w, "t").ready, 1);
	ck_assert_uint_eq(w->rec[0].deadline, sent_at + 5000);
	rig_advance(w, 1);
	i = rig_info(w, "t");
	ck_assert_uint_eq(i.ready, 0);
	ck_assert_uint_eq(i.expired, 1);
	ck_assert_uint_eq(i.dead_lettered, 1);
	rig_get_empty(w, a, "t");
	e = rig_get_msg(w, a, "t.dead");
	ck_assert_uint_ne(e->p.message.id, id);
	ck_assert_uint_eq(e->p.message.attempts, 1);
	ck_assert_uint_eq(e->p.message.timestamp_ms, rig_wall);
	rig_header_is(e, "x-dead-reason", "expired");
	rig_header_is(e, "x-dead-from", "t");
	rig_body_is(e, "perishable");
	ck_assert_uint_eq(rig_ack1(w, a, e->p.message.id), 1);

	/* A message's own TTL, earlier than the queue's: the deadline
	 * moves up to it. */
	sent_at = rig_mono;
	rig_send_msg(w, a, 2, "t", "quick", &o);
	rig_ok_u64(w, a, 2);
	rig_send_ok(w, a, "t", "slow");
	ck_assert_uint_eq(w->rec[0].deadline, sent_at + 100);
	rig_advance(w, 100);
	i = rig_info(w, "t");
	ck_assert_uint_eq(i.expired, 2);
	ck_assert_uint_eq(i.ready, 1);
	rig_body_is(rig_get_msg(w, a, "t.dead"), "quick");
	rig_body_is(rig_get_msg(w, a, "t"), "slow");
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

START_TEST(delayed_message_becomes_ready_when_due)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0), *b = rig_connect(w, 0);
	struct rig_sendopt o = {.delay_ms = 2000};
	struct mqd_queue_info i;
	uint64_t sent_at;
	struct rig_ev *e;

	rig_consume(w, a, 9, 0, "later", 5, true);
	rig_ok_empty(w, a, 9);
	sent_at = rig_mono;
	rig_send_msg(w, b, 2, "later", "due", &o);
	rig_ok_u64(w, b, 2);
	rig_send_ok(w, b, "later", "now");
	rig_body_is(rig_deliver(w, a, 9), "now"); /* the delayed one waits */
	rig_idle(w);
	ck_assert_uint_eq(w->rec[0].deadline, sent_at + 2000);
	i = rig_info(w, "later");
	ck_assert_uint_eq(i.delayed, 1);
	ck_assert_uint_eq(i.ready, 0);
	rig_advance(w, 1999);
	rig_idle(w);
	rig_advance(w, 1);
	e = rig_deliver(w, a, 9);
	rig_body_is(e, "due");
	ck_assert_uint_eq(e->p.message.attempts, 1);
	ck_assert_uint_eq(rig_info(w, "later").delayed, 0);
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

START_TEST(ack_timeout_returns_a_held_message)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0), *b = rig_connect(w, 0);
	struct mqd_declare d = {.ack_timeout_ms = 1000};
	uint64_t id, got_at;
	struct rig_ev *e;

	rig_declare_ok(w, a, "slow", &d);
	id = rig_send_ok(w, a, "slow", "job");
	got_at = rig_mono;
	rig_get_msg(w, a, "slow");
	ck_assert_uint_eq(w->rec[0].deadline, got_at + 1000);
	rig_advance(w, 999);
	rig_get_empty(w, b, "slow");
	rig_advance(w, 1);
	ck_assert_uint_eq(rig_info(w, "slow").held, 0);
	e = rig_get_msg(w, b, "slow");
	ck_assert_uint_eq(e->p.message.id, id);
	ck_assert_uint_eq(e->p.message.attempts, 2);
	ck_assert_uint_eq(rig_ack1(w, a, id), 0); /* a lost it */
	ck_assert_uint_eq(rig_ack1(w, b, id), 1);
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

START_TEST(max_attempts_dead_letters)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0);
	struct mqd_declare d = {.max_attempts = 2,
	                        .dead_letter = rig_span_of("dlq")};
	struct rig_sendopt o = {.priority = 4, .hkey = "k", .hval = "v"};
	struct mqd_queue_info i;
	uint64_t id;
	struct rig_ev *e;

	rig_declare_ok(w, a, "work", &d);
	rig_send_msg(w, a, 2, "work", "poison", &o);
	id = rig_ok_u64(w, a, 2);
	ck_assert_uint_eq(rig_get_msg(w, a, "work")->p.message.attempts, 1);
	ck_assert_uint_eq(rig_nack1(w, a, id, 1, 0), 1);
	e = rig_get_msg(w, a, "work");
	ck_assert_uint_eq(e->p.message.attempts, 2);
	ck_assert_uint_eq(rig_nack1(w, a, id, 1, 0), 1); /* the last attempt */
	i = rig_info(w, "work");
	ck_assert_uint_eq(i.ready + i.held + i.delayed, 0);
	ck_assert_uint_eq(i.dead_lettered, 1);
	ck_assert_uint_eq(rig_info(w, "dlq").ready, 1);

	e = rig_get_msg(w, a, "dlq");
	ck_assert_uint_ne(e->p.message.id, id);
	ck_assert_uint_eq(mqd_id_owner(e->p.message.id), 0);
	ck_assert_uint_eq(e->p.message.attempts, 1);
	ck_assert_uint_eq(e->p.message.priority, 4);
	rig_span_is(e->p.message.source, "dlq");
	ck_assert_uint_eq(e->p.message.nheaders, 3);
	rig_header_is(e, "k", "v");
	rig_header_is(e, "x-dead-reason", "max-attempts");
	rig_header_is(e, "x-dead-from", "work");
	rig_body_is(e, "poison");

	/* NACK without requeue: "rejected". */
	id = rig_send_ok(w, a, "work", "bad");
	rig_get_msg(w, a, "work");
	ck_assert_uint_eq(rig_nack1(w, a, id, 0, 0), 1);
	rig_header_is(rig_get_msg(w, a, "dlq"), "x-dead-reason", "rejected");
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

START_TEST(max_length_reject_and_drop_head)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0);
	struct mqd_declare rej = {.max_length = 2, .overflow = 1};
	struct mqd_declare drop = {.max_length = 2, .overflow = 2};
	struct mqd_declare small = {.max_bytes = 4, .overflow = 2};
	struct mqd_queue_info i;

	rig_declare_ok(w, a, "rej", &rej);
	rig_send_ok(w, a, "rej", "a");
	rig_send_ok(w, a, "rej", "b");
	rig_send_msg(w, a, 2, "rej", "c", NULL);
	rig_error_reply(w, a, 2, MQD_ERR_QUEUE_FULL);
	ck_assert_uint_eq(rig_info(w, "rej").ready, 2);
	rig_body_is(rig_get_msg(w, a, "rej"), "a");
	rig_send_ok(w, a, "rej", "d"); /* held ones do not count */
	rig_body_is(rig_get_msg(w, a, "rej"), "b");
	rig_body_is(rig_get_msg(w, a, "rej"), "d");

	rig_declare_ok(w, a, "drop", &drop);
	rig_send_ok(w, a, "drop", "a");
	rig_send_ok(w, a, "drop", "b");
	rig_send_ok(w, a, "drop", "c");
	i = rig_info(w, "drop");
	ck_assert_uint_eq(i.ready, 2);
	ck_assert_uint_eq(i.dropped, 1);
	rig_body_is(rig_get_msg(w, a, "drop"), "b");
	rig_body_is(rig_get_msg(w, a, "drop"), "c");

	/* Larger than max_bytes: refused even with drop_head. */
	rig_declare_ok(w, a, "small", &small);
	rig_send_ok(w, a, "small", "abc");
	rig_send_msg(w, a, 2, "small", "abcde", NULL);
	rig_error_reply(w, a, 2, MQD_ERR_QUEUE_FULL);
	rig_body_is(rig_get_msg(w, a, "small"), "abc");
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

/* ---- PURGE, DELETE, EXCLUSIVE ------------------------------------------ */

START_TEST(purge_and_delete)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0), *b = rig_connect(w, 0);
	struct mqd_queue_info i;
	uint64_t held;
	struct rig_ev *e;

	rig_send_ok(w, a, "p", "1");
	rig_send_ok(w, a, "p", "2");
	rig_send_ok(w, a, "p", "3");
	held = rig_get_msg(w, a, "p")->p.message.id;
	rig_queue_op(w, a, 50, MQD_OP_PURGE, 0, "p");
	ck_assert_uint_eq(rig_ok_u64(w, a, 50), 2);
	i = rig_info(w, "p");
	ck_assert_uint_eq(i.ready, 0);
	ck_assert_uint_eq(i.held, 1); /* held ones stay held */
	ck_assert_uint_eq(i.purged, 2);
	rig_queue_op(w, a, 51, MQD_OP_PURGE, 0, "nope");
	rig_error_reply(w, a, 51, MQD_ERR_NOT_FOUND);
	ck_assert(!rig_row(w, "nope", &i));

	/* IF_EMPTY refuses while a message is held. */
	rig_queue_op(w, a, 52, MQD_OP_DELETE, MQD_F_IF_EMPTY, "p");
	rig_error_reply(w, a, 52, MQD_ERR_CONFLICT);

	/* DELETE: consumers get CANCELLED, waiting GETs NOT_FOUND, held
	 * messages are gone. */
	rig_consume(w, b, 60, 0, "p", 1, true);
	rig_ok_empty(w, b, 60);
	rig_get(w, a, 61, 0, "p", 60000);
	rig_idle(w);
	rig_queue_op(w, a, 53, MQD_OP_DELETE, 0, "p");
	rig_ok_empty(w, a, 53);
	e = rig_pushed(w, b, 60, MQD_OP_CANCELLED);
	ck_assert(e->cancelled);
	rig_span_is(e->p.queue_ref.queue, "p");
	rig_error_reply(w, a, 61, MQD_ERR_NOT_FOUND);
	rig_idle(w);
	ck_assert(!rig_row(w, "p", &i));
	ck_assert_uint_eq(rig_ack1(w, a, held), 0);
	rig_queue_op(w, a, 54, MQD_OP_DELETE, 0, "p");
	rig_error_reply(w, a, 54, MQD_ERR_NOT_FOUND);
	rig_cancel(w, b, 62, 60); /* already gone with its queue */
	rig_error_reply(w, b, 62, MQD_ERR_NOT_FOUND);

	/* An AUTO_DELETE queue goes with its last consumer. */
	rig_declare(w, a, 63, MQD_F_AUTO_DELETE, "auto", NULL);
	rig_reply(w, a, 63, MQD_OP_DECLARED);
	rig_consume(w, b, 64, 0, "auto", 1, true);
	rig_ok_empty(w, b, 64);
	rig_cancel(w, b, 65, 64);
	rig_ok_empty(w, b, 65);
	ck_assert(!rig_row(w, "auto", &i));
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

START_TEST(exclusive_queue_refused_to_others)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0), *b = rig_connect(w, 0);
	struct mqd_queue_info i;

	rig_declare(w, a, 1, MQD_F_EXCLUSIVE, "priv", NULL);
	rig_reply(w, a, 1, MQD_OP_DECLARED);
	ck_assert(rig_info(w, "priv").exclusive);
	rig_get(w, b, 70, 0, "priv", 0);
	rig_error_reply(w, b, 70, MQD_ERR_FORBIDDEN);
	rig_consume(w, b, 71, 0, "priv", 1, true);
	rig_error_reply(w, b, 71, MQD_ERR_FORBIDDEN);
	rig_declare(w, b, 72, 0, "priv", NULL);
	rig_error_reply(w, b, 72, MQD_ERR_FORBIDDEN);
	rig_queue_op(w, b, 73, MQD_OP_PURGE, 0, "priv");
	rig_error_reply(w, b, 73, MQD_ERR_FORBIDDEN);
	rig_queue_op(w, b, 74, MQD_OP_DELETE, 0, "priv");
	rig_error_reply(w, b, 74, MQD_ERR_FORBIDDEN);
	/* SEND is allowed: that is how replies reach a requester. */
	rig_send_ok(w, b, "priv", "answer");
	rig_body_is(rig_get_msg(w, a, "priv"), "answer");
	/* It goes with its connection. */
	rig_close_on(w, a, 0, true);
	a->closed = true;
	rig_close_done(w, a);
	ck_assert(!rig_row(w, "priv", &i));
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

/* ---- publish / subscribe ----------------------------------------------- */

START_TEST(subscribe_publish_and_bind_on_one_owner)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0), *b = rig_connect(w, 0);
	struct mqd_queue_info i;
	uint64_t sub = (a->id << 20) | 1;
	struct rig_ev *e;

	rig_subscription(w, a, 3, MQD_OP_SUBSCRIBE, "orders.*", sub);
	rig_ok_empty(w, a, 3);
	rig_publish(w, b, 80, "orders.eu", "order-1", true);
	ck_assert_uint_eq(rig_ok_u32(w, b, 80), 1);
	e = rig_deliver(w, a, 3);
	ck_assert_uint_eq(e->sub_id, sub);
	rig_span_is(e->p.message.source, "orders.eu");
	ck_assert_uint_eq(e->p.message.attempts, 1);
	ck_assert_uint_ne(e->p.message.id, 0);
	rig_body_is(e, "order-1");
	ck_assert_uint_eq(rig_ack1(w, a, e->p.message.id), 0); /* not acked */
	rig_publish(w, b, 81, "billing.eu", "nobody", true);
	ck_assert_uint_eq(rig_ok_u32(w, b, 81), 0);
	rig_publish(w, b, 82, "orders.eu.paid", "too-deep", true);
	ck_assert_uint_eq(rig_ok_u32(w, b, 82), 0);
	rig_idle(w);

	/* A bound queue keeps a copy; it counts as a receiver. */
	rig_bind_op(w, b, 83, MQD_OP_BIND, "eu", "orders.eu");
	rig_error_reply(w, b, 83, MQD_ERR_NOT_FOUND); /* no such queue yet */
	rig_declare_ok(w, b, "eu", NULL);
	rig_bind_op(w, b, 84, MQD_OP_BIND, "eu", "orders.eu");
	rig_ok_empty(w, b, 84);
	/* Bound through two matching patterns: still one copy. */
	rig_bind_op(w, b, 85, MQD_OP_BIND, "eu", "orders.>");
	rig_ok_empty(w, b, 85);
	rig_publish(w, b, 86, "orders.eu", "order-2", true);
	ck_assert_uint_eq(rig_ok_u32(w, b, 86), 2);
	rig_body_is(rig_deliver(w, a, 3), "order-2");
	i = rig_info(w, "eu");
	ck_assert_uint_eq(i.ready, 1);
	e = rig_get_msg(w, b, "eu");
	rig_span_is(e->p.message.source, "eu");
	rig_body_is(e, "order-2");
	ck_assert_uint_eq(rig_ack1(w, b, e->p.message.id), 1);

	/* UNSUBSCRIBE and UNBIND. */
	rig_subscription(w, a, 3, MQD_OP_UNSUBSCRIBE, "orders.*", sub);
	rig_ok_empty(w, a, 3);
	rig_bind_op(w, b, 87, MQD_OP_UNBIND, "eu", "orders.eu");
	rig_ok_empty(w, b, 87);
	rig_bind_op(w, b, 88, MQD_OP_UNBIND, "eu", "orders.eu");
	rig_error_reply(w, b, 88, MQD_ERR_NOT_FOUND);
	rig_publish(w, b, 89, "orders.eu", "order-3", true);
	ck_assert_uint_eq(rig_ok_u32(w, b, 89), 1); /* orders.> is left */
	/* Deleting the queue drops its bindings. */
	rig_queue_op(w, b, 90, MQD_OP_DELETE, 0, "eu");
	rig_ok_empty(w, b, 90);
	rig_publish(w, b, 91, "orders.eu", "order-4", true);
	ck_assert_uint_eq(rig_ok_u32(w, b, 91), 0);
	ck_assert(!rig_row(w, "eu", &i));
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

/* ---- queries ----------------------------------------------------------- */

START_TEST(query_fills_queue_rows)
{
	struct rig_world *w = rig_world_new(1);
	struct rig_conn *a = rig_connect(w, 0);
	struct mqd_declare d = {.max_length = 7, .max_attempts = 3,
	                        .dead_letter = rig_span_of("z")};
	struct mqd_mail_query q;
	bool seen[3] = {false, false, false};

	memset(&q, 0, sizeof q);
	q.kind = MQD_QUERY_QUEUES;
	mqd_ops_query(&w->ow[0], &q);
	ck_assert(!q.failed);
	ck_assert_uint_eq(q.n, 0);
	ck_assert_ptr_null(q.rows);

	rig_declare_ok(w, a, "x", &d);
	rig_send_ok(w, a, "x", "12345");
	rig_send_ok(w, a, "y", "1");
	rig_send_ok(w, a, "y", "2");
	rig_get_msg(w, a, "y");
	rig_consume(w, a, 9, 0, "z", 1, true);
	rig_ok_empty(w, a, 9);

	mqd_ops_query(&w->ow[0], &q);
	ck_assert(!q.failed);
	ck_assert_uint_eq(q.n, 3);
	for (size_t k = 0; k < q.n; k++) {
		const struct mqd_queue_info *r = &q.rows[k];
		ck_assert_uint_eq(r->owner, 0);
		if (strcmp(r->name, "x") == 0) {
			seen[0] = true;
			ck_assert_uint_eq(r->ready, 1);
			ck_assert_uint_eq(r->bytes, 5);
			ck_assert_uint_eq(r->sent, 1);
			ck_assert_uint_eq(r->max_length, 7);
			ck_assert_uint_eq(r->max_attempts, 3);
			ck_assert_str_eq(r->dead_letter, "z");
		} else if (strcmp(r->name, "y") == 0) {
			seen[1] = true;
			ck_assert_uint_eq(r->ready, 1);
			ck_assert_uint_eq(r->held, 1);
			ck_assert_uint_eq(r->sent, 2);
			ck_assert_uint_eq(r->delivered, 1);
			ck_assert_str_eq(r->dead_letter, "");
		} else {
			ck_assert_str_eq(r->name, "z");
			seen[2] = true;
			ck_assert_uint_eq(r->consumers, 1);
			ck_assert_uint_eq(r->ready, 0);
		}
	}
	ck_assert(seen[0] && seen[1] && seen[2]);
	free(q.rows);

	snprintf(q.name, sizeof q.name, "y");
	mqd_ops_query(&w->ow[0], &q);
	ck_assert_uint_eq(q.n, 1);
	ck_assert_str_eq(q.rows[0].name, "y");
	free(q.rows);
	snprintf(q.name, sizeof q.name, "nope");
	mqd_ops_query(&w->ow[0], &q);
	ck_assert_uint_eq(q.n, 0);
	ck_assert_ptr_null(q.rows);
	ck_assert_uint_eq(w->ow[0].sent, 3);
	ck_assert_uint_eq(w->ow[0].delivered, 1);
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

/* ---- two owners -------------------------------------------------------- */

START_TEST(dead_letter_to_a_queue_on_another_owner)
{
	struct rig_world *w = rig_world_new(2);
	struct rig_conn *a = rig_connect(w, 0);
	char work[32], dlq[32];
	struct mqd_declare d = {0};
	struct mqd_queue_info i;
	uint64_t id;
	struct rig_ev *e;

	rig_name_on(0, 2, "work", work, sizeof work);
	rig_name_on(1, 2, "dlq", dlq, sizeof dlq);
	d.dead_letter = rig_span_of(dlq);
	rig_declare_ok(w, a, work, &d);
	id = rig_send_ok(w, a, work, "rejected-one");
	ck_assert_uint_eq(mqd_id_owner(id), 0);
	rig_get_msg(w, a, work);
	ck_assert_uint_eq(rig_nack1(w, a, id, 0, 0), 1);
	ck_assert_ptr_null(w->ph); /* the DEAD mail went across */
	i = rig_info(w, work);
	ck_assert_uint_eq(i.dead_lettered, 1);
	i = rig_info(w, dlq);
	ck_assert_uint_eq(i.owner, 1);
	ck_assert_uint_eq(i.ready, 1);
	e = rig_get_msg(w, a, dlq);
	ck_assert_uint_eq(mqd_id_owner(e->p.message.id), 1);
	rig_header_is(e, "x-dead-reason", "rejected");
	rig_header_is(e, "x-dead-from", work);
	rig_body_is(e, "rejected-one");
	ck_assert_uint_eq(rig_ack1(w, a, e->p.message.id), 1);
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

START_TEST(publish_to_a_bound_queue_on_another_owner)
{
	struct rig_world *w = rig_world_new(2);
	struct rig_conn *a = rig_connect(w, 1), *b = rig_connect(w, 0);
	struct rig_conn *c = rig_connect(w, 1);
	char queue[32], topic[40], first[32];
	bool all;
	uint64_t sub = (c->id << 20) | 1;
	struct rig_ev *e;

	/* A topic on owner 0, a queue on owner 1. */
	rig_name_on(1, 2, "bq", queue, sizeof queue);
	for (unsigned k = 0;; k++) {
		ck_assert_uint_lt(k, 1000);
		snprintf(first, sizeof first, "t%u", k);
		snprintf(topic, sizeof topic, "%s.news", first);
		if (mqd_topics_shard(topic, strlen(topic), 2, &all) == 0)
			break;
	}
	rig_declare_ok(w, a, queue, NULL);
	rig_bind_op(w, a, 100, MQD_OP_BIND, queue, topic);
	rig_ok_empty(w, a, 100);
	rig_subscription(w, c, 6, MQD_OP_SUBSCRIBE, topic, sub);
	rig_ok_empty(w, c, 6);

	/* The OK waits for the copy stored on the other owner; the
	 * subscriber's DELIVER goes at the end of the pass. */
	rig_publish(w, b, 101, topic, "headline", false);
	rig_idle(w);
	ck_assert_ptr_nonnull(w->ph);
	rig_end_of_pass(w, 0);
	rig_body_is(rig_deliver(w, c, 6), "headline");
	rig_idle(w);
	rig_pass(w);
	ck_assert_uint_eq(rig_ok_u32(w, b, 101), 2);
	e = rig_get_msg(w, a, queue);
	ck_assert_uint_eq(mqd_id_owner(e->p.message.id), 1);
	rig_span_is(e->p.message.source, queue);
	rig_body_is(e, "headline");
	ck_assert_uint_eq(rig_ack1(w, a, e->p.message.id), 1);

	/* The publisher closes while its PUBLISH waits: CLOSE_DONE waits
	 * for the answer. */
	rig_publish(w, b, 102, topic, "late", false);
	rig_end_of_pass(w, 0);
	rig_body_is(rig_deliver(w, c, 6), "late");
	rig_close_on(w, b, 0, false);
	rig_idle(w);
	rig_pass(w);
	ck_assert_uint_eq(rig_ok_u32(w, b, 102), 2);
	rig_close_done(w, b);
	rig_close_on(w, b, 1, true);
	rig_close_done(w, b);
	b->closed = true;
	ck_assert_uint_eq(rig_info(w, queue).ready, 1);
	rig_idle(w);
	rig_world_free(w);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("owner");
	TCase *req = tcase_create("requests");
	TCase *cons = tcase_create("consumers");
	TCase *pol = tcase_create("policies");
	TCase *ps = tcase_create("pubsub");
	TCase *two = tcase_create("two owners");
	SRunner *sr;
	int failed;

	tcase_add_test(req, declare_new_existing_and_conflicting);
	tcase_add_test(req, send_then_get);
	tcase_add_test(req, get_empty_with_and_without_wait);
	tcase_add_test(req, ack_nack_and_unknown_ids);
	tcase_add_test(req, purge_and_delete);
	tcase_add_test(req, exclusive_queue_refused_to_others);
	tcase_add_test(req, query_fills_queue_rows);
	tcase_add_test(cons, consume_with_prefetch);
	tcase_add_test(cons, auto_ack_consumer_and_credit);
	tcase_add_test(cons, close_returns_held_and_posts_close_done);
	tcase_add_test(cons, close_many_queues_redelivers_older_first);
	tcase_add_test(pol, ttl_expiry_on_the_timer);
	tcase_add_test(pol, delayed_message_becomes_ready_when_due);
	tcase_add_test(pol, ack_timeout_returns_a_held_message);
	tcase_add_test(pol, max_attempts_dead_letters);
	tcase_add_test(pol, max_length_reject_and_drop_head);
	tcase_add_test(ps, subscribe_publish_and_bind_on_one_owner);
	tcase_add_test(two, dead_letter_to_a_queue_on_another_owner);
	tcase_add_test(two, publish_to_a_bound_queue_on_another_owner);
	suite_add_tcase(s, req);
	suite_add_tcase(s, cons);
	suite_add_tcase(s, pol);
	suite_add_tcase(s, ps);
	suite_add_tcase(s, two);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
