/*
 * Unit tests of mq-bench's building blocks: the latency histogram
 * (tools/bench/hist.h), the self-checking bodies (check.h) and the
 * connection layer (bio.h).  The connection tests run against listeners
 * on 127.0.0.1 port 0 inside the test, plain and TLS (with a certificate
 * made on the fly), so they need no network and no server binary.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tools/bench/bench.h"
#include "tools/bench/bio.h"
#include "tools/bench/check.h"
#include "tools/bench/hist.h"

#define LAST_BUCKET (MQB_HIST_BUCKETS - 1)

static uint64_t splitmix(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* ---- histogram ------------------------------------------------------ */

START_TEST(hist_exact_below_128)
{
	struct mqb_hist h;

	for (uint64_t v = 0; v < 128; v++) {
		ck_assert_uint_eq(mqb_hist_index(v), v);
		ck_assert_uint_eq(mqb_hist_bucket_low((unsigned)v), v);
		ck_assert_uint_eq(mqb_hist_bucket_high((unsigned)v), v);
	}
	ck_assert_uint_eq(mqb_hist_index(128), 128);
	for (uint64_t v = 0; v < 128; v++) {
		mqb_hist_init(&h);
		mqb_hist_record(&h, v);
		mqb_hist_record(&h, v);
		ck_assert_uint_eq(mqb_hist_percentile(&h, 50), v);
		ck_assert_uint_eq(mqb_hist_percentile(&h, 0), v);
		ck_assert_uint_eq(mqb_hist_percentile(&h, 100), v);
	}
}
END_TEST

/* v lies in its bucket, and the bucket is at most 1/64 of its low end.
 * (Asserting only on failure: each ck_assert costs a write to Check's
 * pipe, which for millions of values is most of the test's time.) */
static void check_bucket_of(uint64_t v)
{
	unsigned idx = mqb_hist_index(v);
	uint64_t lo = mqb_hist_bucket_low(idx), hi = mqb_hist_bucket_high(idx);

	if (idx >= MQB_HIST_BUCKETS || lo > v || v > hi ||
	    (idx < LAST_BUCKET && hi - lo > lo / 64))
		ck_abort_msg("v=%llu idx=%u [%llu, %llu]", (unsigned long long)v,
		             idx, (unsigned long long)lo, (unsigned long long)hi);
}

START_TEST(hist_buckets_are_consistent)
{
	uint64_t state = 42;

	for (uint64_t v = 0; v < 200000; v++)
		check_bucket_of(v);
	for (unsigned e = 0; e < 64; e++) {
		uint64_t p = (uint64_t)1 << e;
		check_bucket_of(p - 1);
		check_bucket_of(p);
		check_bucket_of(p + 1);
	}
	check_bucket_of(UINT64_MAX);
	for (int i = 0; i < 1000000; i++) {
		uint64_t r = splitmix(&state);
		check_bucket_of(r >> (r % 64)); /* every magnitude */
	}
	/* The buckets tile the whole range, in order, with no gap. */
	ck_assert_uint_eq(mqb_hist_bucket_low(0), 0);
	for (unsigned i = 0; i + 1 < MQB_HIST_BUCKETS; i++) {
		ck_assert_uint_eq(mqb_hist_bucket_high(i) + 1,
		                  mqb_hist_bucket_low(i + 1));
		ck_assert_uint_eq(mqb_hist_index(mqb_hist_bucket_low(i)), i);
		ck_assert_uint_eq(mqb_hist_index(mqb_hist_bucket_high(i)), i);
	}
	ck_assert_uint_eq(mqb_hist_bucket_high(LAST_BUCKET), UINT64_MAX);
	ck_assert_uint_eq(mqb_hist_index((uint64_t)1 << MQB_HIST_MAX_BITS),
	                  LAST_BUCKET);
	ck_assert_uint_eq(mqb_hist_index(((uint64_t)1 << MQB_HIST_MAX_BITS) - 1),
	                  LAST_BUCKET);
	ck_assert_uint_eq(mqb_hist_index(UINT64_MAX), LAST_BUCKET);
}
END_TEST

static void near(uint64_t got, double want)
{
	double d = ((double)got - want) / want;

	ck_assert_msg(d >= -1.0 / 64 && d <= 1.0 / 64, "got %llu, want ~%.0f",
	              (unsigned long long)got, want);
}

START_TEST(hist_percentiles_uniform)
{
	struct mqb_hist h;

	mqb_hist_init(&h);
	for (uint64_t v = 1; v <= 10000; v++)
		mqb_hist_record(&h, v);
	ck_assert_uint_eq(h.n, 10000);
	near(mqb_hist_percentile(&h, 50), 5000);
	near(mqb_hist_percentile(&h, 90), 9000);
	near(mqb_hist_percentile(&h, 99), 9900);
	near(mqb_hist_percentile(&h, 1), 100);
	ck_assert_uint_ge(mqb_hist_percentile(&h, 50), 5000);
	ck_assert_uint_le(mqb_hist_percentile(&h, 99.99), 10000);
	ck_assert_uint_eq(mqb_hist_percentile(&h, 100), 10000);
	ck_assert_uint_eq(mqb_hist_percentile(&h, 0), 1);
	ck_assert_uint_eq(mqb_hist_percentile(&h, 0.001), 1);
	ck_assert_uint_eq(mqb_hist_percentile(&h, 1000), 10000);
	ck_assert_uint_eq(mqb_hist_percentile(&h, -5), 1);
	ck_assert_uint_eq(h.min, 1);
	ck_assert_uint_eq(h.max, 10000);
	ck_assert_double_eq(mqb_hist_mean(&h), 5000.5);
}
END_TEST

START_TEST(hist_percentile_capped_at_max)
{
	struct mqb_hist h;

	/* 1000 sits in the bucket [992, 1007]: the report must not say a
	 * value higher than any recorded. */
	mqb_hist_init(&h);
	mqb_hist_record(&h, 1000);
	ck_assert_uint_eq(mqb_hist_percentile(&h, 50), 1000);
	ck_assert_uint_eq(mqb_hist_percentile(&h, 99.9), 1000);
	/* Half at 10, half at 1e6: p50 is the low one, p51 the high one. */
	mqb_hist_init(&h);
	for (int i = 0; i < 50; i++) {
		mqb_hist_record(&h, 10);
		mqb_hist_record(&h, 1000000);
	}
	ck_assert_uint_eq(mqb_hist_percentile(&h, 50), 10);
	ck_assert_uint_eq(mqb_hist_percentile(&h, 51), 1000000);
}
END_TEST

START_TEST(hist_huge_values)
{
	struct mqb_hist h;

	mqb_hist_init(&h);
	mqb_hist_record(&h, UINT64_MAX);
	mqb_hist_record(&h, UINT64_MAX);
	mqb_hist_record(&h, (uint64_t)1 << 50);
	ck_assert_uint_eq(h.counts[LAST_BUCKET], 3);
	ck_assert_uint_eq(mqb_hist_percentile(&h, 100), UINT64_MAX);
	ck_assert_uint_eq(mqb_hist_percentile(&h, 0), (uint64_t)1 << 50);
	/* The sum carries into the high word instead of wrapping. */
	ck_assert_uint_eq(h.sum_hi, 2);
	ck_assert_uint_eq(h.sum_lo, ((uint64_t)1 << 50) - 2);
	ck_assert_double_gt(mqb_hist_mean(&h), 1.2e19);
}
END_TEST

START_TEST(hist_merge_equals_one)
{
	struct mqb_hist a, b, all, empty;
	uint64_t state = 7, v;

	mqb_hist_init(&a);
	mqb_hist_init(&b);
	mqb_hist_init(&all);
	mqb_hist_init(&empty);
	for (int i = 0; i < 100000; i++) {
		v = splitmix(&state) >> (20 + i % 40);
		mqb_hist_record(i % 3 ? &a : &b, v);
		mqb_hist_record(&all, v);
	}
	mqb_hist_record(&a, UINT64_MAX); /* exercise the sum carry */
	mqb_hist_record(&b, UINT64_MAX);
	mqb_hist_record(&all, UINT64_MAX);
	mqb_hist_record(&all, UINT64_MAX);
	mqb_hist_merge(&a, &b);
	mqb_hist_merge(&a, &empty);
	ck_assert_int_eq(memcmp(&a, &all, sizeof a), 0);
	mqb_hist_merge(&empty, &all);
	ck_assert_int_eq(memcmp(&empty, &all, sizeof all), 0);
}
END_TEST

START_TEST(hist_empty)
{
	struct mqb_hist h;

	mqb_hist_init(&h);
	ck_assert_uint_eq(h.n, 0);
	ck_assert_uint_eq(h.min, UINT64_MAX);
	ck_assert_uint_eq(mqb_hist_percentile(&h, 0), 0);
	ck_assert_uint_eq(mqb_hist_percentile(&h, 50), 0);
	ck_assert_uint_eq(mqb_hist_percentile(&h, 100), 0);
	ck_assert_double_eq(mqb_hist_mean(&h), 0.0);
}
END_TEST

/* ---- bodies --------------------------------------------------------- */

START_TEST(body_round_trip_then_dup)
{
	struct mqb_check c;
	uint8_t body[100];
	uint64_t sent = 0;

	ck_assert_int_eq(mqb_check_init(&c, 2, 100, sizeof body), 0);
	mqb_body_fill(&c, body, 1, 42, 123456789);
	ck_assert_uint_eq(body[0], 'M');
	ck_assert_uint_eq(body[3], '1');
	ck_assert_int_eq(mqb_body_check(&c, body, sizeof body, &sent),
	                 MQB_BODY_OK);
	ck_assert_uint_eq(sent, 123456789);
	sent = 0;
	ck_assert_int_eq(mqb_body_check(&c, body, sizeof body, &sent),
	                 MQB_BODY_DUP);
	ck_assert_uint_eq(sent, 0);
	ck_assert_uint_eq(c.dups, 1);
	ck_assert_uint_eq(c.damaged, 0);
	ck_assert_uint_eq(mqb_check_unique(&c), 1);
	ck_assert_uint_eq(mqb_check_lost(&c), 199);
	mqb_check_free(&c);
	mqb_check_free(&c); /* idempotent */
}
END_TEST

START_TEST(body_every_bit_flip_is_damage)
{
	struct mqb_check c;
	uint8_t good[100], bad[100];
	uint64_t sent;
	unsigned flips = 0;

	ck_assert_int_eq(mqb_check_init(&c, 4, 1000, sizeof good), 0);
	mqb_body_fill(&c, good, 3, 999, 0x0123456789abcdefULL);
	for (size_t i = 0; i < sizeof good; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			memcpy(bad, good, sizeof bad);
			bad[i] ^= (uint8_t)(1u << bit);
			ck_assert_msg(mqb_body_check(&c, bad, sizeof bad, &sent) ==
			              MQB_BODY_DAMAGED, "byte %zu bit %u", i, bit);
			flips++;
		}
	}
	/* Damage marks nothing: the good body is still new. */
	ck_assert_uint_eq(c.damaged, flips);
	ck_assert_uint_eq(mqb_check_unique(&c), 0);
	ck_assert_int_eq(mqb_body_check(&c, good, sizeof good, &sent),
	                 MQB_BODY_OK);
	ck_assert_uint_eq(sent, 0x0123456789abcdefULL);
	mqb_check_free(&c);
}
END_TEST

START_TEST(body_shapes_that_are_damage)
{
	struct mqb_check c;
	uint8_t body[101], other[100];
	uint64_t sent;

	ck_assert_int_eq(mqb_check_init(&c, 2, 100, 100), 0);
	mqb_body_fill(&c, body, 0, 5, 77);
	body[100] = 100; /* what the fill would have continued with... */
	ck_assert_int_eq(mqb_body_check(&c, body, 99, &sent), MQB_BODY_DAMAGED);
	ck_assert_int_eq(mqb_body_check(&c, body, 101, &sent), MQB_BODY_DAMAGED);
	ck_assert_int_eq(mqb_body_check(&c, body, 0, &sent), MQB_BODY_DAMAGED);
	/* seq and producer out of range, though well formed */
	mqb_body_fill(&c, other, 0, 100, 77);
	ck_assert_int_eq(mqb_body_check(&c, other, 100, &sent), MQB_BODY_DAMAGED);
	mqb_body_fill(&c, other, 2, 0, 77);
	ck_assert_int_eq(mqb_body_check(&c, other, 100, &sent), MQB_BODY_DAMAGED);
	/* Another body's fill under this header. */
	mqb_body_fill(&c, other, 0, 6, 77);
	memcpy(other, body, 32);
	ck_assert_int_eq(mqb_body_check(&c, other, 100, &sent), MQB_BODY_DAMAGED);
	ck_assert_uint_eq(c.damaged, 6);
	ck_assert_int_eq(mqb_body_check(&c, body, 100, &sent), MQB_BODY_OK);
	mqb_check_free(&c);
	/* Bodies below the header size cannot be made. */
	ck_assert_int_eq(mqb_check_init(&c, 1, 1, MQB_BODY_MIN - 1), -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(body_unique_and_lost)
{
	struct mqb_check c;
	uint8_t body[MQB_BODY_MIN];
	uint64_t sent;

	/* 130 is not a multiple of 64: the last word is partly used. */
	ck_assert_int_eq(mqb_check_init(&c, 3, 130, sizeof body), 0);
	for (uint64_t s = 0; s < 130; s++) {
		mqb_body_fill(&c, body, 0, s, s);
		ck_assert_int_eq(mqb_body_check(&c, body, sizeof body, &sent),
		                 MQB_BODY_OK);
		ck_assert_uint_eq(sent, s);
		if (s % 2 == 0) {
			mqb_body_fill(&c, body, 1, s, s);
			ck_assert_int_eq(mqb_body_check(&c, body, sizeof body,
			                                &sent), MQB_BODY_OK);
			ck_assert_int_eq(mqb_body_check(&c, body, sizeof body,
			                                &sent), MQB_BODY_DUP);
		}
	}
	ck_assert_uint_eq(mqb_check_unique(&c), 130 + 65);
	ck_assert_uint_eq(mqb_check_lost(&c), 3 * 130 - 195);
	ck_assert_uint_eq(c.dups, 65);
	ck_assert_uint_eq(c.damaged, 0);
	mqb_check_free(&c);
}
END_TEST

START_TEST(body_empty_and_huge_checks)
{
	struct mqb_check c;
	uint8_t body[64];
	uint64_t sent;

	ck_assert_int_eq(mqb_check_init(&c, 0, 0, sizeof body), 0);
	ck_assert_ptr_null(c.bits);
	mqb_body_fill(&c, body, 0, 0, 1);
	ck_assert_int_eq(mqb_body_check(&c, body, sizeof body, &sent),
	                 MQB_BODY_DAMAGED);
	ck_assert_uint_eq(mqb_check_unique(&c), 0);
	ck_assert_uint_eq(mqb_check_lost(&c), 0);
	mqb_check_free(&c);

	ck_assert_int_eq(mqb_check_init(&c, 5, 0, sizeof body), 0);
	ck_assert_uint_eq(mqb_check_lost(&c), 0);
	mqb_check_free(&c);

	/* A billion per producer: 125 MB of bitmap, touched at the ends. */
	ck_assert_int_eq(mqb_check_init(&c, 1, 1000000000, sizeof body), 0);
	mqb_body_fill(&c, body, 0, 999999999, 1);
	ck_assert_int_eq(mqb_body_check(&c, body, sizeof body, &sent),
	                 MQB_BODY_OK);
	mqb_body_fill(&c, body, 0, 0, 1);
	ck_assert_int_eq(mqb_body_check(&c, body, sizeof body, &sent),
	                 MQB_BODY_OK);
	ck_assert_uint_eq(mqb_check_unique(&c), 2);
	ck_assert_uint_eq(mqb_check_lost(&c), 1000000000 - 2);
	mqb_check_free(&c);

	/* More than memory can address. */
	ck_assert_int_eq(mqb_check_init(&c, 4000000000u, UINT64_MAX / 2,
	                                sizeof body), -1);
	ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

/* Consumer threads that share one check, as mq-bench's do.  Failures are
 * counted, not asserted: the assertions run on the test's own thread. */
struct checker {
	struct mqb_check *c;
	unsigned producers;
	uint64_t count;
	uint64_t ok, dup, bad;
};

static void *checker_main(void *arg)
{
	struct checker *k = arg;
	uint8_t body[48];
	uint64_t sent;

	for (uint64_t s = 0; s < k->count; s++) {
		for (unsigned p = 0; p < k->producers; p++) {
			mqb_body_fill(k->c, body, p, s, s * 1000 + p);
			switch (mqb_body_check(k->c, body, sizeof body, &sent)) {
			case MQB_BODY_OK:
				k->ok++;
				k->bad += sent != s * 1000 + p;
				break;
			case MQB_BODY_DUP:
				k->dup++;
				break;
			default:
				k->bad++;
			}
		}
	}
	return NULL;
}

START_TEST(body_threads_share_a_check)
{
	enum { THREADS = 4, PRODUCERS = 3, COUNT = 20000 };
	struct mqb_check c;
	struct checker k[THREADS];
	pthread_t t[THREADS];
	uint64_t ok = 0, dup = 0, bad = 0;

	/* Every thread checks every body: exactly one of them may see it
	 * first, whatever the interleaving. */
	ck_assert_int_eq(mqb_check_init(&c, PRODUCERS, COUNT, 48), 0);
	for (int i = 0; i < THREADS; i++) {
		k[i] = (struct checker){ .c = &c, .producers = PRODUCERS,
		                         .count = COUNT };
		ck_assert_int_eq(pthread_create(&t[i], NULL, checker_main,
		                                &k[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
		ok += k[i].ok;
		dup += k[i].dup;
		bad += k[i].bad;
	}
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(ok, PRODUCERS * COUNT);
	ck_assert_uint_eq(dup, (THREADS - 1) * PRODUCERS * COUNT);
	ck_assert_uint_eq(c.dups, dup);
	ck_assert_uint_eq(mqb_check_unique(&c), PRODUCERS * COUNT);
	ck_assert_uint_eq(mqb_check_lost(&c), 0);
	mqb_check_free(&c);
}
END_TEST

/* ---- connections ---------------------------------------------------- */

/* A listening socket on 127.0.0.1 and an ephemeral port; port gets its
 * number as a string. */
static int listen_local(char *port, size_t n)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(port, n, "%u", (unsigned)ntohs(sa.sin_port));
	return fd;
}

static void local_opts(struct mqb_opts *o, const char *port)
{
	memset(o, 0, sizeof *o);
	o->host = "127.0.0.1";
	o->port = port;
	o->timeout_ms = 5000;
}

static void write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		ck_assert_msg(w > 0, "send: %s", strerror(errno));
		c += w;
		n -= (size_t)w;
	}
}

/* Read until the unconsumed input holds at least n bytes. */
static void read_until(struct mqb_bio *b, size_t n)
{
	for (int tries = 0; mqb_bio_avail(b) < n; tries++) {
		ck_assert_int_lt(tries, 100);
		ck_assert_msg(mqb_bio_read(b, 100) >= 0, "%s", b->err);
	}
}

START_TEST(bio_connect_refused)
{
	struct mqb_opts o;
	struct mqb_bio b;
	char port[16];
	int fd = listen_local(port, sizeof port);

	close(fd); /* nobody listens there now */
	local_opts(&o, port);
	ck_assert_int_eq(mqb_bio_connect(&b, &o), -1);
	ck_assert_msg(strstr(b.err, "127.0.0.1") != NULL &&
	              strstr(b.err, "refused") != NULL, "err: %s", b.err);
	ck_assert_int_eq(b.fd, -1);
	mqb_bio_close(&b); /* harmless after a failed connect */

	/* A lookup that fails without asking DNS. */
	o.port = "no-such-service";
	ck_assert_int_eq(mqb_bio_connect(&b, &o), -1);
	ck_assert_msg(strstr(b.err, "no-such-service") != NULL, "err: %s", b.err);
}
END_TEST

START_TEST(bio_round_trip)
{
	struct mqb_opts o;
	struct mqb_bio b;
	char port[16], got[64];
	int lfd = listen_local(port, sizeof port), fd;
	ssize_t n;
	size_t have = 0;
	const char *want = "PING\r\nSEND q.1 42\r\n";

	local_opts(&o, port);
	ck_assert_msg(mqb_bio_connect(&b, &o) == 0, "%s", b.err);
	fd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(fd, 0);

	/* Nothing there yet: no wait, then a short one. */
	ck_assert_int_eq(mqb_bio_read(&b, 0), 0);
	ck_assert_int_eq(mqb_bio_read(&b, 20), 0);
	ck_assert_int_eq(mqb_bio_line(&b), -1);

	write_all(fd, "hello\r\nwor", 10);
	read_until(&b, 10);
	ck_assert_int_eq(mqb_bio_line(&b), 5);
	ck_assert_int_eq(memcmp(mqb_bio_data(&b), "hello", 5), 0);
	mqb_bio_consume(&b, 7);
	ck_assert_int_eq(mqb_bio_line(&b), -1); /* "wor" is no line yet */
	write_all(fd, "ld\r\n+OK\r\n", 9);
	read_until(&b, 12);
	ck_assert_uint_eq(b.in_pos, 0); /* compacted before reading */
	ck_assert_int_eq(mqb_bio_line(&b), 5);
	ck_assert_int_eq(memcmp(mqb_bio_data(&b), "world\r\n+OK\r\n", 12), 0);
	mqb_bio_consume(&b, 7);
	ck_assert_int_eq(mqb_bio_line(&b), 3);

	mqb_buf_puts(&b.out, "PING\r\n");
	mqb_buf_printf(&b.out, "SEND %s %d\r\n", "q.1", 42);
	ck_assert_int_eq(mqb_bio_flush(&b), 0);
	ck_assert_uint_eq(b.out.len, 0);
	while (have < strlen(want)) {
		n = recv(fd, got + have, sizeof got - have, 0);
		ck_assert_int_gt(n, 0);
		have += (size_t)n;
	}
	ck_assert_uint_eq(have, strlen(want));
	ck_assert_int_eq(memcmp(got, want, have), 0);
	ck_assert_int_eq(mqb_bio_flush(&b), 0); /* nothing to write */

	/* The server hangs up. */
	close(fd);
	mqb_bio_consume(&b, 5);
	ck_assert_int_eq(mqb_bio_read(&b, 1000), -1);
	ck_assert_msg(strstr(b.err, "closed") != NULL, "err: %s", b.err);
	mqb_bio_close(&b);
	ck_assert_int_eq(b.fd, -1);
	mqb_bio_close(&b);
	close(lfd);
}
END_TEST

START_TEST(bio_buffers_grow)
{
	struct mqb_buf w = { 0 };
	char big[10000];

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	mqb_buf_printf(&w, "%s|%d", big, 7);
	ck_assert_uint_eq(w.len, sizeof big - 1 + 2);
	ck_assert_int_eq(memcmp(w.p + w.len - 3, "x|7", 3), 0);
	mqb_buf_put(&w, "abc", 3);
	mqb_buf_put(&w, NULL, 0);
	ck_assert_uint_eq(w.len, sizeof big + 4);
	ck_assert_ptr_nonnull(mqb_buf_reserve(&w, 1u << 20));
	ck_assert_uint_ge(w.cap - w.len, 1u << 20);
	free(w.p);
}
END_TEST

/* The server of the backpressure test: it writes its whole reply before
 * it reads anything, as a broker applying backpressure would. */
struct stubborn {
	int fd;
	size_t reply, expect;
	size_t got;
	uint64_t sum;
};

static void *stubborn_main(void *arg)
{
	struct stubborn *s = arg;
	char *buf = malloc(s->reply);
	ssize_t n;

	memset(buf, 'r', s->reply);
	write_all(s->fd, buf, s->reply);
	while (s->got < s->expect) {
		n = recv(s->fd, buf, s->reply, 0);
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			s->sum += (uint8_t)buf[i];
		s->got += (size_t)n;
	}
	free(buf);
	return NULL;
}

START_TEST(bio_flush_reads_while_blocked)
{
	enum { REPLY = 4 << 20, OUT = 8 << 20 };
	struct stubborn s = { .reply = REPLY, .expect = OUT };
	struct mqb_opts o;
	struct mqb_bio b;
	pthread_t t;
	char port[16];
	int lfd = listen_local(port, sizeof port), small = 64 * 1024;
	uint64_t sum = 0;
	uint8_t *p;

	local_opts(&o, port);
	ck_assert_msg(mqb_bio_connect(&b, &o) == 0, "%s", b.err);
	s.fd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(s.fd, 0);
	/* Small buffers on both sides, so neither reply nor request fits in
	 * the kernel: without reading during the flush both would block. */
	setsockopt(s.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	setsockopt(s.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	setsockopt(b.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	setsockopt(b.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);

	p = mqb_buf_reserve(&b.out, OUT);
	for (size_t i = 0; i < OUT; i++) {
		p[i] = (uint8_t)(i * 7);
		sum += p[i];
	}
	b.out.len = OUT;
	ck_assert_int_eq(pthread_create(&t, NULL, stubborn_main, &s), 0);
	ck_assert_msg(mqb_bio_flush(&b) == 0, "%s", b.err);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_uint_eq(s.got, OUT);
	ck_assert_uint_eq(s.sum, sum);
	read_until(&b, REPLY);
	ck_assert_uint_eq(mqb_bio_avail(&b), REPLY);
	for (size_t i = 0; i < REPLY; i++)
		if (mqb_bio_data(&b)[i] != 'r')
			ck_abort_msg("reply byte %zu", i);
	close(s.fd);
	mqb_bio_close(&b);
	close(lfd);
}
END_TEST

/* ---- TLS ------------------------------------------------------------ */

/* A self-signed certificate for subject-alt-names san, with its key, in
 * temporary PEM files. */
static void make_cert(const char *san, char *cert_path, char *key_path)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	X509_EXTENSION *ext;
	X509V3_CTX v3;
	FILE *f;
	int fd;

	ck_assert_ptr_nonnull(key);
	ck_assert_ptr_nonnull(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                           (const unsigned char *)"mq-bench test", -1,
	                           -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	ck_assert_ptr_nonnull(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);

	strcpy(cert_path, "/tmp/mqb-cert-XXXXXX");
	fd = mkstemp(cert_path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_int_eq(PEM_write_X509(f, x), 1);
	fclose(f);
	strcpy(key_path, "/tmp/mqb-key-XXXXXX");
	fd = mkstemp(key_path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_int_eq(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL),
	                 1);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
}

/* A one-connection TLS echo server: accept, handshake, send back one
 * line, close.  A failed handshake just ends it. */
struct tls_srv {
	int lfd;
	SSL_CTX *ctx;
	bool handshake_ok;
};

static void *tls_srv_main(void *arg)
{
	struct tls_srv *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	SSL *ssl;
	char line[256];
	int n, have = 0;

	if (fd < 0)
		return NULL;
	ssl = SSL_new(s->ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) == 1) {
		s->handshake_ok = true;
		while (have < (int)sizeof line &&
		       memchr(line, '\n', (size_t)have) == NULL) {
			n = SSL_read(ssl, line + have, (int)sizeof line - have);
			if (n <= 0)
				break;
			have += n;
		}
		if (have > 0)
			SSL_write(ssl, line, have);
		SSL_shutdown(ssl);
	}
	SSL_free(ssl);
	close(fd);
	return NULL;
}

struct tls_env {
	char cert[32], key[32], port[16];
	struct tls_srv srv;
	pthread_t t;
	struct mqb_opts o;
};

static void tls_start(struct tls_env *e, const char *san)
{
	make_cert(san, e->cert, e->key);
	e->srv.lfd = listen_local(e->port, sizeof e->port);
	e->srv.ctx = SSL_CTX_new(TLS_server_method());
	ck_assert_ptr_nonnull(e->srv.ctx);
	ck_assert_int_eq(SSL_CTX_use_certificate_file(e->srv.ctx, e->cert,
	                                              SSL_FILETYPE_PEM), 1);
	ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(e->srv.ctx, e->key,
	                                             SSL_FILETYPE_PEM), 1);
	e->srv.handshake_ok = false;
	ck_assert_int_eq(pthread_create(&e->t, NULL, tls_srv_main, &e->srv), 0);
	local_opts(&e->o, e->port);
	e->o.tls = true;
	e->o.tls_ca = e->cert;
}

static void tls_stop(struct tls_env *e)
{
	pthread_join(e->t, NULL);
	close(e->srv.lfd);
	SSL_CTX_free(e->srv.ctx);
	unlink(e->cert);
	unlink(e->key);
}

START_TEST(tls_round_trip)
{
	struct tls_env e;
	struct mqb_bio b;

	tls_start(&e, "IP:127.0.0.1");
	ck_assert_msg(mqb_bio_connect(&b, &e.o) == 0, "%s", b.err);
	ck_assert_ptr_nonnull(b.ssl);
	mqb_buf_puts(&b.out, "over tls\r\n");
	ck_assert_msg(mqb_bio_flush(&b) == 0, "%s", b.err);
	read_until(&b, 10);
	ck_assert_int_eq(mqb_bio_line(&b), 8);
	ck_assert_int_eq(memcmp(mqb_bio_data(&b), "over tls", 8), 0);
	mqb_bio_consume(&b, 10);
	ck_assert_int_eq(mqb_bio_read(&b, 1000), -1);
	ck_assert_msg(strstr(b.err, "closed") != NULL, "err: %s", b.err);
	mqb_bio_close(&b);
	tls_stop(&e);
	ck_assert(e.srv.handshake_ok);
}
END_TEST

START_TEST(tls_wrong_name_fails)
{
	struct tls_env e;
	struct mqb_bio b;

	/* Trusted, but issued for another name than the one we dial. */
	tls_start(&e, "DNS:broker.example");
	ck_assert_int_eq(mqb_bio_connect(&b, &e.o), -1);
	ck_assert_msg(strstr(b.err, "certificate") != NULL, "err: %s", b.err);
	ck_assert_int_eq(b.fd, -1);
	ck_assert_ptr_null(b.ssl);
	tls_stop(&e);
}
END_TEST

START_TEST(tls_untrusted_fails_unless_insecure)
{
	struct tls_env e;
	struct mqb_bio b;

	tls_start(&e, "IP:127.0.0.1");
	e.o.tls_ca = NULL; /* the system store does not know it */
	ck_assert_int_eq(mqb_bio_connect(&b, &e.o), -1);
	ck_assert_msg(strstr(b.err, "certificate") != NULL, "err: %s", b.err);
	tls_stop(&e);

	tls_start(&e, "DNS:broker.example");
	e.o.tls_ca = NULL;
	e.o.tls_insecure = true;
	ck_assert_msg(mqb_bio_connect(&b, &e.o) == 0, "%s", b.err);
	mqb_buf_puts(&b.out, "x\r\n");
	ck_assert_msg(mqb_bio_flush(&b) == 0, "%s", b.err);
	read_until(&b, 3);
	mqb_bio_close(&b);
	tls_stop(&e);
}
END_TEST

static void *plain_srv_main(void *arg)
{
	int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);

	if (fd >= 0) {
		send(fd, "-ERR not tls\r\n", 14, MSG_NOSIGNAL);
		close(fd);
	}
	return NULL;
}

START_TEST(tls_to_plain_server_fails)
{
	struct mqb_opts o;
	struct mqb_bio b;
	pthread_t t;
	char port[16];
	int lfd = listen_local(port, sizeof port);

	ck_assert_int_eq(pthread_create(&t, NULL, plain_srv_main, &lfd), 0);
	local_opts(&o, port);
	o.tls = true;
	o.tls_insecure = true;
	ck_assert_int_eq(mqb_bio_connect(&b, &o), -1);
	ck_assert_msg(strstr(b.err, "TLS handshake") != NULL, "err: %s", b.err);
	pthread_join(t, NULL);
	close(lfd);
}
END_TEST

/* One TCase per test, so each has its own timeout. */
#define ADD(su, t, secs)                                                      \
	do {                                                                  \
		TCase *tc_ = tcase_create(#t);                                \
		tcase_set_timeout(tc_, secs);                                 \
		tcase_add_test(tc_, t);                                       \
		suite_add_tcase(su, tc_);                                     \
	} while (0)

int main(void)
{
	Suite *s = suite_create("bench");
	SRunner *sr;
	int failed;

	/* OpenSSL writes with write(2): a peer that hung up must give EPIPE,
	 * not kill the test (mq-bench ignores SIGPIPE the same way). */
	signal(SIGPIPE, SIG_IGN);
	ADD(s, hist_exact_below_128, 10);
	ADD(s, hist_buckets_are_consistent, 60);
	ADD(s, hist_percentiles_uniform, 10);
	ADD(s, hist_percentile_capped_at_max, 10);
	ADD(s, hist_huge_values, 10);
	ADD(s, hist_merge_equals_one, 10);
	ADD(s, hist_empty, 10);
	ADD(s, body_round_trip_then_dup, 10);
	ADD(s, body_every_bit_flip_is_damage, 10);
	ADD(s, body_shapes_that_are_damage, 10);
	ADD(s, body_unique_and_lost, 10);
	ADD(s, body_empty_and_huge_checks, 60);
	ADD(s, body_threads_share_a_check, 60);
	ADD(s, bio_connect_refused, 30);
	ADD(s, bio_round_trip, 30);
	ADD(s, bio_buffers_grow, 10);
	ADD(s, bio_flush_reads_while_blocked, 60);
	ADD(s, tls_round_trip, 30);
	ADD(s, tls_wrong_name_fails, 30);
	ADD(s, tls_untrusted_fails_unless_insecure, 30);
	ADD(s, tls_to_plain_server_fails, 30);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
