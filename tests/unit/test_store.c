/* The queue store, the queue table, the id map and the mailbox. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/idmap.h"
#include "store/queue.h"
#include "store/track.h"
#include "mail/mailbox.h"

static struct mqd_msg *msg(uint64_t id, uint8_t prio, const char *body)
{
	struct mqd_msg *m = mqd_msg_new(NULL, 0, 0, body, strlen(body));
	ck_assert_ptr_nonnull(m);
	m->id = id;
	m->priority = prio;
	return m;
}

static struct mqd_queue *queue(const char *name)
{
	struct mqd_qsettings s;
	memset(&s, 0, sizeof s);
	struct mqd_queue *q = mqd_queue_new(name, strlen(name), &s);
	ck_assert_ptr_nonnull(q);
	return q;
}

static uint64_t pop_id(struct mqd_queue *q)
{
	struct mqd_msg *m = mqd_queue_pop(q);
	uint64_t id;
	ck_assert_ptr_nonnull(m);
	id = m->id;
	mqd_msg_free(m);
	return id;
}

START_TEST(fifo_within_a_level)
{
	struct mqd_queue *q = queue("jobs");

	for (uint64_t i = 1; i <= 100; i++)
		mqd_queue_push_tail(q, msg(i, 0, "x"));
	ck_assert_uint_eq(q->ready, 100);
	ck_assert_uint_eq(q->bytes, 100);
	for (uint64_t i = 1; i <= 100; i++)
		ck_assert_uint_eq(pop_id(q), i);
	ck_assert_ptr_null(mqd_queue_pop(q));
	ck_assert_uint_eq(q->ready, 0);
	ck_assert_uint_eq(q->bytes, 0);
	mqd_queue_free(q, NULL);
}
END_TEST

START_TEST(higher_priority_first)
{
	struct mqd_queue *q = queue("p");

	mqd_queue_push_tail(q, msg(1, 0, "a"));
	mqd_queue_push_tail(q, msg(2, 9, "b"));
	mqd_queue_push_tail(q, msg(3, 5, "c"));
	mqd_queue_push_tail(q, msg(4, 9, "d"));
	mqd_queue_push_tail(q, msg(5, 0, "e"));
	ck_assert_uint_eq(pop_id(q), 2);
	ck_assert_uint_eq(pop_id(q), 4);
	ck_assert_uint_eq(pop_id(q), 3);
	ck_assert_uint_eq(pop_id(q), 1);
	ck_assert_uint_eq(pop_id(q), 5);
	mqd_queue_free(q, NULL);
}
END_TEST

START_TEST(push_head_is_next_out_of_its_level)
{
	struct mqd_queue *q = queue("h");

	mqd_queue_push_tail(q, msg(1, 3, "a"));
	mqd_queue_push_tail(q, msg(2, 3, "b"));
	mqd_queue_push_tail(q, msg(3, 7, "c"));
	mqd_queue_push_head(q, msg(4, 3, "d"));
	ck_assert_uint_eq(pop_id(q), 3); /* higher level still first */
	ck_assert_uint_eq(pop_id(q), 4);
	ck_assert_uint_eq(pop_id(q), 1);
	ck_assert_uint_eq(pop_id(q), 2);
	mqd_queue_free(q, NULL);
}
END_TEST

START_TEST(pop_lowest_takes_oldest_of_lowest_level)
{
	struct mqd_queue *q = queue("l");
	struct mqd_msg *m;

	mqd_queue_push_tail(q, msg(1, 5, "a"));
	mqd_queue_push_tail(q, msg(2, 2, "b"));
	mqd_queue_push_tail(q, msg(3, 2, "c"));
	m = mqd_queue_pop_lowest(q);
	ck_assert_uint_eq(m->id, 2);
	mqd_msg_free(m);
	ck_assert_uint_eq(q->ready, 2);
	mqd_queue_free(q, NULL);
}
END_TEST

START_TEST(purge_limits_and_emptiness)
{
	struct mqd_queue *q = queue("x");

	q->settings.max_length = 3;
	q->settings.max_bytes = 10;
	ck_assert(mqd_queue_is_empty(q));
	ck_assert(mqd_queue_fits(q, 10));
	ck_assert(!mqd_queue_fits(q, 11));
	mqd_queue_push_tail(q, msg(1, 0, "aaaa"));
	mqd_queue_push_tail(q, msg(2, 0, "bbbb"));
	ck_assert(mqd_queue_fits(q, 2));
	ck_assert(!mqd_queue_fits(q, 3));
	mqd_queue_push_tail(q, msg(3, 0, "c"));
	ck_assert(!mqd_queue_fits(q, 0)); /* max_length reached */
	ck_assert(!mqd_queue_is_empty(q));
	ck_assert_uint_eq(mqd_queue_purge(q, NULL), 3);
	ck_assert(mqd_queue_is_empty(q));
	q->held = 1;
	ck_assert(!mqd_queue_is_empty(q)); /* held messages count */
	q->held = 0;
	mqd_queue_free(q, NULL);
}
END_TEST

/* Issue 6: the fields before a message's bytes fit 36 bytes, so a
 * 100-byte message is one 144-byte malloc chunk; the bytes read back. */
START_TEST(message_layout)
{
	static const uint8_t hdrs[] = {0, 1, 1, 'k', 0, 2, 'v', 'w'};
	uint64_t used = mqd_msg_mem_used();
	char body[100];

	ck_assert_uint_le(offsetof(struct mqd_msg, data), 36);
	memset(body, 'b', sizeof body);
	struct mqd_msg *m = mqd_msg_new(NULL, 0, 0, body, sizeof body);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(mqd_msg_headers_len(m), 2);
	ck_assert_uint_eq(mqd_msg_nheaders(m), 0);
	ck_assert_int_eq(memcmp(mqd_msg_body(m), body, sizeof body), 0);
	mqd_msg_set_timestamp(m, 1795000000123ULL);
	ck_assert_uint_eq(mqd_msg_timestamp(m), 1795000000123ULL);
	ck_assert_uint_eq(mqd_msg_mem_used() - used,
	                  offsetof(struct mqd_msg, data) + sizeof body);
	mqd_msg_free(m);

	m = mqd_msg_new(hdrs, sizeof hdrs, 1, "xyz", 3);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(mqd_msg_headers_len(m), sizeof hdrs);
	ck_assert_uint_eq(mqd_msg_nheaders(m), 1);
	ck_assert_int_eq(memcmp(mqd_msg_headers(m), hdrs, sizeof hdrs), 0);
	ck_assert_int_eq(memcmp(mqd_msg_body(m), "xyz", 3), 0);
	mqd_msg_free(m);

	/* A PUBLISH's copy: the body is the tail of the shared payload. */
	struct mqd_shared *sh = malloc(sizeof *sh + 10);
	ck_assert_ptr_nonnull(sh);
	atomic_init(&sh->refs, 1);
	sh->len = 10;
	memcpy(sh->data, "headbodyyy", 10);
	m = mqd_msg_new_shared(hdrs, sizeof hdrs, 1, sh, 6);
	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_eq(mqd_msg_shared(m), sh);
	ck_assert_ptr_eq(mqd_msg_body(m), sh->data + 4);
	ck_assert_uint_eq(mqd_msg_nheaders(m), 1);
	ck_assert_uint_eq(atomic_load(&sh->refs), 2);
	mqd_msg_free(m);
	ck_assert_uint_eq(atomic_load(&sh->refs), 1);
	mqd_shared_unref(sh);
	ck_assert_uint_eq(mqd_msg_mem_used(), used);
}
END_TEST

/* Lists link backward through tracks only: messages with one can still
 * leave from anywhere, among messages without. */
START_TEST(tracked_messages_leave_from_the_middle)
{
	struct mqd_queue *q = queue("t");
	struct mqd_timers t;
	struct mqd_msg *m[6];

	mqd_timers_init(&t);
	for (int i = 1; i <= 5; i++) {
		m[i] = msg((uint64_t)i, 0, "x");
		if (i % 2 == 0)
			ck_assert_ptr_nonnull(mqd_track_get(&t, m[i]));
		if (i == 4)
			mqd_queue_push_head(q, m[i]);
		else
			mqd_queue_push_tail(q, m[i]);
	}
	/* Order: 4 1 2 3 5. */
	ck_assert_ptr_eq(m[2]->track->queue, q);
	mqd_queue_remove(q, m[2]);
	mqd_timers_free_msg(&t, m[2]);
	mqd_queue_remove(q, m[4]); /* the head */
	mqd_timers_free_msg(&t, m[4]);
	ck_assert_uint_eq(q->ready, 3);
	ck_assert_uint_eq(pop_id(q), 1);
	ck_assert_uint_eq(pop_id(q), 3);
	ck_assert_uint_eq(pop_id(q), 5);
	ck_assert_ptr_null(mqd_queue_pop(q));
	ck_assert_uint_eq(t.nspare, 2); /* recycled, not freed */
	mqd_queue_free(q, NULL);
	mqd_timers_free(&t);
}
END_TEST

START_TEST(consumers_round_robin_within_prefetch)
{
	struct mqd_queue *q = queue("c");
	struct mqd_consumer a = {0}, b = {0};

	a.prefetch = 2;
	b.prefetch = 1;
	mqd_queue_add_consumer(q, &a);
	mqd_queue_add_consumer(q, &b);
	struct mqd_consumer *c1 = mqd_queue_next_consumer(q);
	c1->held++;
	struct mqd_consumer *c2 = mqd_queue_next_consumer(q);
	c2->held++;
	ck_assert_ptr_eq(c1, &a);
	ck_assert_ptr_eq(c2, &b);
	struct mqd_consumer *c3 = mqd_queue_next_consumer(q);
	ck_assert_ptr_eq(c3, &a); /* b is full */
	c3->held++;
	ck_assert_ptr_null(mqd_queue_next_consumer(q));
	b.held = 0;
	ck_assert_ptr_eq(mqd_queue_next_consumer(q), &b);
	mqd_queue_remove_consumer(q, &a);
	ck_assert_uint_eq(q->nconsumers, 1);
	mqd_queue_remove_consumer(q, &b);
	ck_assert_uint_eq(q->nconsumers, 0);
	ck_assert_ptr_null(mqd_queue_next_consumer(q));
	mqd_queue_free(q, NULL);
}
END_TEST

START_TEST(qtable_put_get_delete_iterate)
{
	struct mqd_qtable t;
	char name[32];
	size_t pos = 0, n = 0;
	struct mqd_queue *cur = NULL, *q;

	mqd_qtable_init(&t);
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof name, "q%d", i);
		ck_assert_int_eq(mqd_qtable_put(&t, queue(name)), 0);
	}
	ck_assert_uint_eq(t.count, 1000);
	q = mqd_qtable_get(&t, "q517", 4);
	ck_assert_ptr_nonnull(q);
	ck_assert_str_eq(q->name, "q517");
	ck_assert_ptr_null(mqd_qtable_get(&t, "q1000", 5));
	ck_assert_ptr_null(mqd_qtable_get(&t, "q5170", 5));
	/* Deleting the current queue while iterating is allowed. */
	while ((q = mqd_qtable_next(&t, &pos, &cur)) != NULL) {
		n++;
		mqd_qtable_del(&t, q);
		mqd_queue_free(q, NULL);
	}
	ck_assert_uint_eq(n, 1000);
	ck_assert_uint_eq(t.count, 0);
	mqd_qtable_free(&t);
}
END_TEST

START_TEST(idmap_against_a_reference)
{
	enum { N = 200000 };
	struct mqd_idmap m;
	static void *ref[N];
	unsigned seed = 12345;
	long bad = 0;
	size_t live = 0;

	/* Plain ifs in the loops: a Check assertion per operation would
	 * cost a pipe write each. */
	mqd_idmap_init(&m);
	memset(ref, 0, sizeof ref);
	for (int round = 0; round < 4 * N; round++) {
		seed = seed * 1103515245u + 12345u;
		uint64_t k = 1 + (seed >> 8) % (N - 1);
		if (ref[k] == NULL) {
			bad += mqd_idmap_put(&m, (k << 8) | 3, &ref[k]) != 0;
			ref[k] = &ref[k];
		} else {
			bad += mqd_idmap_del(&m, (k << 8) | 3) != &ref[k];
			ref[k] = NULL;
		}
	}
	for (uint64_t k = 1; k < N; k++) {
		bad += mqd_idmap_get(&m, (k << 8) | 3) != ref[k];
		live += ref[k] != NULL;
	}
	ck_assert_int_eq(bad, 0);
	ck_assert_uint_eq(m.count, live);
	ck_assert_ptr_null(mqd_idmap_get(&m, 0));
	mqd_idmap_free(&m);
}
END_TEST

/* ---- mailbox ---------------------------------------------------------- */

enum { PRODUCERS = 4, PER_PRODUCER = 50000 };

struct tmail {
	struct mqd_mail mail;
	int producer;
	int seq;
};

static struct mqd_mailbox box;

static void *producer(void *arg)
{
	int p = (int)(intptr_t)arg;

	for (int i = 0; i < PER_PRODUCER; i++) {
		struct tmail *t = malloc(sizeof *t);
		t->producer = p;
		t->seq = i;
		mqd_mailbox_post(&box, &t->mail);
	}
	return NULL;
}

START_TEST(mailbox_keeps_per_producer_order)
{
	pthread_t th[PRODUCERS];
	int next[PRODUCERS] = {0};
	long got = 0;

	ck_assert_int_eq(mqd_mailbox_init(&box), 0);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_create(&th[i], NULL, producer, (void *)(intptr_t)i);
	while (got < (long)PRODUCERS * PER_PRODUCER) {
		struct mqd_mail *m = mqd_mailbox_take(&box);
		if (m == NULL)
			continue;
		struct tmail *t = (struct tmail *)m;
		if (t->seq != next[t->producer]) /* no assert per mail: too slow */
			ck_abort_msg("producer %d: got %d, expected %d",
			             t->producer, t->seq, next[t->producer]);
		next[t->producer]++;
		free(t);
		got++;
	}
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(th[i], NULL);
	ck_assert_ptr_null(mqd_mailbox_take(&box));
	/* Posts woke the consumer: the eventfd is readable. */
	mqd_mailbox_ack_wake(&box);
	mqd_mailbox_destroy(&box);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store");
	TCase *q = tcase_create("queue");
	TCase *t = tcase_create("tables");
	TCase *mb = tcase_create("mailbox");
	SRunner *sr;
	int failed;

	tcase_add_test(q, fifo_within_a_level);
	tcase_add_test(q, higher_priority_first);
	tcase_add_test(q, push_head_is_next_out_of_its_level);
	tcase_add_test(q, pop_lowest_takes_oldest_of_lowest_level);
	tcase_add_test(q, purge_limits_and_emptiness);
	tcase_add_test(q, consumers_round_robin_within_prefetch);
	tcase_add_test(q, message_layout);
	tcase_add_test(q, tracked_messages_leave_from_the_middle);
	tcase_add_test(t, qtable_put_get_delete_iterate);
	tcase_add_test(t, idmap_against_a_reference);
	tcase_add_test(mb, mailbox_keeps_per_producer_order);
	tcase_set_timeout(mb, 60);
	suite_add_tcase(s, q);
	suite_add_tcase(s, t);
	suite_add_tcase(s, mb);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
