#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * The tests' own spawner (tests/lib/proc.h), on /bin/sh: arguments,
 * environment, stdin, captured and merged output, exit status and signals,
 * a time limit that kills, a stop that escalates to SIGKILL, and children
 * that inherit none of the test's descriptors.  Every other test starts its
 * processes through it, so a fault here would show as flaky tests there.
 */

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/proc.h"

#define SH "/bin/sh"

/* sh -c script with stdout and stderr captured; the status. */
static int sh(const char *script, const char *const *env, const char *in,
              char *out, size_t ocap, char *err, size_t ecap)
{
	char *argv[] = { (char *)SH, (char *)"-c", (char *)script, NULL };
	struct mqt_spawn sp = {
		.argv = argv, .env = env,
		.in = in, .in_len = in ? strlen(in) : 0,
		.out = MQT_IO_PIPE, .out_buf = out, .out_cap = ocap,
		.err = err ? MQT_IO_PIPE : MQT_IO_INHERIT,
		.err_buf = err, .err_cap = ecap,
	};
	return mqt_proc_run(&sp, 10000);
}

START_TEST(test_run_captures)
{
	char out[256], err[256];

	ck_assert_int_eq(sh("cat; echo oops >&2; exit 3", NULL, "hello\n",
	                    out, sizeof out, err, sizeof err), 3);
	ck_assert_str_eq(out, "hello\n");
	ck_assert_str_eq(err, "oops\n");
	/* No stdin given: /dev/null, so cat ends at once. */
	ck_assert_int_eq(sh("cat; echo done", NULL, NULL, out, sizeof out,
	                    err, sizeof err), 0);
	ck_assert_str_eq(out, "done\n");
	ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(test_big_stdin)
{
	/* More than a socket buffer holds: fed while the child reads. */
	enum { N = 1 << 20 };
	char *in = malloc(N + 1), out[64];

	ck_assert_ptr_nonnull(in);
	memset(in, 'x', N);
	in[N] = '\0';
	ck_assert_int_eq(sh("wc -c", NULL, in, out, sizeof out, NULL, 0), 0);
	ck_assert_int_eq(atoi(out), N);
	/* A child that reads none of it still ends cleanly. */
	ck_assert_int_eq(sh("exit 0", NULL, in, out, sizeof out, NULL, 0), 0);
	free(in);
}
END_TEST

START_TEST(test_env)
{
	const char *env[] = { "MQT_A=one", "MQT_B", "MQT_C=three", NULL };
	char out[256];

	setenv("MQT_B", "inherited", 1);
	setenv("MQT_C", "old", 1);
	setenv("MQT_D", "kept", 1);
	ck_assert_int_eq(sh("echo \"$MQT_A ${MQT_B-unset} $MQT_C $MQT_D\"",
	                    env, NULL, out, sizeof out, NULL, 0), 0);
	ck_assert_str_eq(out, "one unset three kept\n");
	/* The test's own environment is untouched. */
	ck_assert_str_eq(getenv("MQT_B"), "inherited");
	ck_assert_ptr_null(getenv("MQT_A"));
}
END_TEST

START_TEST(test_merged_and_file)
{
	char out[256], path[MQT_PATH_MAX + 8], dir[MQT_PATH_MAX];
	const char *tmp = getenv("TMPDIR");
	char *argv[] = { (char *)SH, (char *)"-c",
	                 (char *)"echo a; echo b >&2; echo c", NULL };
	struct mqt_spawn sp = {
		.argv = argv,
		.out = MQT_IO_PIPE, .out_buf = out, .out_cap = sizeof out,
		.err = MQT_IO_STDOUT,
	};
	FILE *f;

	ck_assert_int_eq(mqt_proc_run(&sp, 10000), 0);
	ck_assert_str_eq(out, "a\nb\nc\n");

	snprintf(dir, sizeof dir, "%s/mqt-proc.XXXXXX",
	         tmp && tmp[0] ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/out", dir);
	sp.out = MQT_IO_FILE;
	sp.out_path = path;
	ck_assert_int_eq(mqt_proc_run(&sp, 10000), 0);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	memset(out, 0, sizeof out);
	ck_assert_uint_eq(fread(out, 1, sizeof out - 1, f), 6);
	fclose(f);
	ck_assert_str_eq(out, "a\nb\nc\n");
	mqt_rm_rf(dir);
	ck_assert_int_ne(access(dir, F_OK), 0);
}
END_TEST

START_TEST(test_status)
{
	char out[64];
	char *argv[] = { (char *)"/nonexistent/program", NULL };
	struct mqt_spawn sp = { .argv = argv };

	ck_assert_int_eq(sh("kill -TERM $$", NULL, NULL, out, sizeof out,
	                    NULL, 0), 128 + SIGTERM);
	ck_assert_int_eq(mqt_proc_run(&sp, 10000), 127);
}
END_TEST

START_TEST(test_truncation)
{
	const char *script = "i=0; while [ $i -lt 500 ]; do echo line$i; "
	                     "i=$((i + 1)); done";
	char *argv[] = { (char *)SH, (char *)"-c", (char *)script, NULL };
	char out[32];
	struct mqt_spawn sp = {
		.argv = argv,
		.out = MQT_IO_PIPE, .out_buf = out, .out_cap = sizeof out,
	};

	/* The head, and the child was not blocked by the full buffer. */
	ck_assert_int_eq(mqt_proc_run(&sp, 10000), 0);
	ck_assert_uint_eq(strlen(out), sizeof out - 1);
	ck_assert(strncmp(out, "line0\nline1\n", 12) == 0);
	/* keep_tail: the end. */
	sp.keep_tail = true;
	ck_assert_int_eq(mqt_proc_run(&sp, 10000), 0);
	ck_assert_msg(strlen(out) > 8 &&
	              strcmp(out + strlen(out) - 8, "line499\n") == 0,
	              "tail \"%s\"", out);
}
END_TEST

START_TEST(test_limit_kills)
{
	char *argv[] = { (char *)SH, (char *)"-c", (char *)"exec sleep 30",
	                 NULL };
	struct mqt_spawn sp = { .argv = argv };

	/* -1: killed at the limit (sleep's own end would be status 0). */
	ck_assert_int_eq(mqt_proc_run(&sp, 100), -1);
}
END_TEST

START_TEST(test_start_stop)
{
	char *argv[] = { (char *)SH, (char *)"-c", (char *)"exec sleep 30",
	                 NULL };
	char *stubborn[] = { (char *)SH, (char *)"-c",
	                     (char *)"trap '' TERM; echo ready; exec sleep 30",
	                     NULL };
	char out[64];
	struct mqt_spawn sp = { .argv = argv };
	struct mqt_proc p;
	int64_t end;

	ck_assert_int_eq(mqt_proc_start(&p, &sp), 0);
	ck_assert(mqt_proc_running(&p));
	ck_assert(!mqt_proc_wait(&p, 10)); /* still running: nothing killed */
	ck_assert(mqt_proc_running(&p));
	ck_assert_int_eq(mqt_proc_stop(&p, SIGTERM, 10000), 128 + SIGTERM);
	ck_assert_int_eq(p.pid, 0);
	/* Stopping again is harmless. */
	ck_assert_int_eq(mqt_proc_stop(&p, SIGTERM, 10), 128 + SIGTERM);

	/* SIGTERM ignored (once the trap is set): killed at the limit. */
	sp.argv = stubborn;
	sp.out = MQT_IO_PIPE;
	sp.out_buf = out;
	sp.out_cap = sizeof out;
	ck_assert_int_eq(mqt_proc_start(&p, &sp), 0);
	end = mqt_now_ms() + 10000;
	while (strcmp(out, "ready\n") != 0) {
		ck_assert_msg(mqt_now_ms() < end, "out \"%s\"", out);
		mqt_proc_pump(&p, 100);
	}
	ck_assert_int_eq(mqt_proc_stop(&p, SIGTERM, 200), -1);
	ck_assert_int_eq(p.pid, 0);
}
END_TEST

START_TEST(test_pump)
{
	char *argv[] = { (char *)SH, (char *)"-c",
	                 (char *)"echo ready; read x; echo got $x", NULL };
	char out[64];
	struct mqt_spawn sp = {
		.argv = argv, .in = "it\n", .in_len = 3,
		.out = MQT_IO_PIPE, .out_buf = out, .out_cap = sizeof out,
	};
	struct mqt_proc p;
	int64_t end = mqt_now_ms() + 10000;

	ck_assert_int_eq(mqt_proc_start(&p, &sp), 0);
	while (strstr(out, "got it\n") == NULL) {
		ck_assert_msg(mqt_now_ms() < end, "out \"%s\"", out);
		ck_assert(mqt_proc_pump(&p, 100) || strstr(out, "got it\n"));
	}
	ck_assert(mqt_proc_wait(&p, 10000));
	ck_assert_int_eq(p.status, 0);
	ck_assert_str_eq(out, "ready\ngot it\n");
}
END_TEST

START_TEST(test_no_inherited_fds)
{
	int fds[2];
	char out[64];

	/* A descriptor without close-on-exec, as a careless test leaves. */
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(dup2(fds[0], 200), 200);
	ck_assert_int_eq(sh("if [ -e /proc/self/fd/200 ]; then echo open; "
	                    "else echo closed; fi", NULL, NULL, out,
	                    sizeof out, NULL, 0), 0);
	ck_assert_str_eq(out, "closed\n");
	close(200);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("proc");
	TCase *tc = tcase_create("proc");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_run_captures);
	tcase_add_test(tc, test_big_stdin);
	tcase_add_test(tc, test_env);
	tcase_add_test(tc, test_merged_and_file);
	tcase_add_test(tc, test_status);
	tcase_add_test(tc, test_truncation);
	tcase_add_test(tc, test_limit_kills);
	tcase_add_test(tc, test_start_stop);
	tcase_add_test(tc, test_pump);
	tcase_add_test(tc, test_no_inherited_fds);
	suite_add_tcase(su, tc);
	sr = srunner_create(su);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
