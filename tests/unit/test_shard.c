/* The shard hash: stable, and even over workers for names that share a
 * prefix and differ in a digit tail. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/shard.h"

/* Spread of n names made by fmt over w workers: max deviation from even,
 * as a fraction of the even share. */
static double spread(const char *fmt, unsigned n, unsigned w)
{
	unsigned counts[64] = {0};
	char name[64];
	double even = (double)n / w, worst = 0;

	for (unsigned i = 0; i < n; i++) {
		int len = snprintf(name, sizeof name, fmt, i);
		counts[mqd_shard_of(name, (size_t)len, w)]++;
	}
	for (unsigned i = 0; i < w; i++) {
		double d = (counts[i] - even) / even;
		if (d < 0)
			d = -d;
		if (d > worst)
			worst = d;
	}
	return worst;
}

START_TEST(job_names_spread_evenly_over_4)
{
	/* The issue's own case: job-000123 style names, 4 workers, +-10%. */
	ck_assert_double_lt(spread("job-%06u", 1000, 4), 0.10);
	ck_assert_double_lt(spread("job-%06u", 100000, 4), 0.10);
}
END_TEST

START_TEST(other_prefixes_and_worker_counts)
{
	ck_assert_double_lt(spread("orders.eu.%u", 20000, 4), 0.10);
	ck_assert_double_lt(spread("q%u", 20000, 2), 0.10);
	ck_assert_double_lt(spread("tenant-7:queue-%u", 20000, 3), 0.10);
	ck_assert_double_lt(spread("x%u", 64000, 16), 0.10);
}
END_TEST

START_TEST(first_letters_do_not_decide)
{
	/* Names sharing their first letters must not land on one worker,
	 * which is what first-letter sharding would do. */
	unsigned seen = 0;
	const char *names[] = {"alpha", "alpine", "album", "alder", "alley",
	                       "almond", "alto", "alert"};

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		seen |= 1u << mqd_shard_of(names[i], strlen(names[i]), 4);
	ck_assert_uint_gt(__builtin_popcount(seen), 1);
}
END_TEST

START_TEST(stable_and_in_range)
{
	for (unsigned w = 1; w <= 256; w *= 2) {
		for (unsigned i = 0; i < 1000; i++) {
			char name[32];
			int len = snprintf(name, sizeof name, "queue-%u", i);
			unsigned a = mqd_shard_of(name, (size_t)len, w);
			ck_assert_uint_lt(a, w);
			ck_assert_uint_eq(a, mqd_shard_of(name, (size_t)len, w));
		}
	}
	ck_assert_uint_eq(mqd_shard_of("x", 1, 1), 0);
	ck_assert_uint_eq(mqd_shard_of("x", 1, 0), 0);
	/* A fixed value guards against the hash changing silently between
	 * releases (which would move every queue on upgrade). */
	ck_assert_uint_eq(mqd_shard_hash("jobs", 4), 0x2517f0d9d880480fULL);
	ck_assert_uint_ne(mqd_shard_hash("jobs", 4), mqd_shard_hash("jobz", 4));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("shard");
	TCase *tc = tcase_create("hash");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, job_names_spread_evenly_over_4);
	tcase_add_test(tc, other_prefixes_and_worker_counts);
	tcase_add_test(tc, first_letters_do_not_decide);
	tcase_add_test(tc, stable_and_in_range);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
