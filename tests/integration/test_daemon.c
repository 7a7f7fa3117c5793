/*
 * The daemon as an operator meets it: command-line flags, -t, -d with a
 * pidfile, and signals (SIGHUP must not kill it, SIGTERM stops it).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/proc.h"
#include "mq/mq.h"

#define RUN_LIMIT_MS 20000 /* mqd -d returns once the daemon is ready */

/* Run $MQD_BIN with args; capture stdout+stderr into out.  Its exit
 * status, 128 + signal, or -1 (not run, or killed at RUN_LIMIT_MS). */
static int run_mqd(char *const args[], char *out, size_t cap)
{
	const char *bin = getenv("MQD_BIN");
	char *argv[16];
	int n = 0;

	ck_assert_ptr_nonnull(bin);
	argv[n++] = (char *)bin;
	for (int i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	struct mqt_spawn sp = {
		.argv = argv,
		.out = MQT_IO_PIPE, .out_buf = out, .out_cap = cap,
		.err = MQT_IO_STDOUT,
	};
	return mqt_proc_run(&sp, RUN_LIMIT_MS);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static char *tmpdir(void)
{
	static char dir[256];
	const char *t = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/mqd-daemon.XXXXXX", t && *t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	return dir;
}

static void rm_dir(const char *dir)
{
	mqt_rm_rf(dir);
}

START_TEST(version_and_help)
{
	char out[4096];

	ck_assert_int_eq(run_mqd((char *[]){"-V", NULL}, out, sizeof out), 0);
	ck_assert_str_eq(out, "mqd " PACKAGE_VERSION "\n");
	ck_assert_int_eq(run_mqd((char *[]){"-h", NULL}, out, sizeof out), 0);
	ck_assert_ptr_nonnull(strstr(out, "usage: mqd"));
	ck_assert_int_eq(run_mqd((char *[]){"-x", NULL}, out, sizeof out), 2);
	ck_assert_ptr_nonnull(strstr(out, "usage: mqd"));
	ck_assert_int_eq(run_mqd((char *[]){"extra", NULL}, out, sizeof out), 2);
}
END_TEST

START_TEST(check_config)
{
	char *dir = tmpdir();
	char good[512], bad[512], out[4096], want[600];

	snprintf(good, sizeof good, "%s/good.conf", dir);
	snprintf(bad, sizeof bad, "%s/bad.conf", dir);
	write_file(good, "[server]\nlisten = 127.0.0.1:0\nworkers = 2\n");
	write_file(bad, "[server]\nlisten = 127.0.0.1:0\nidle_timeout = 30\n");
	ck_assert_int_eq(run_mqd((char *[]){"-t", "-c", good, NULL}, out,
	                         sizeof out), 0);
	ck_assert_ptr_nonnull(strstr(out, "configuration ok"));
	ck_assert_int_eq(run_mqd((char *[]){"-t", "-c", bad, NULL}, out,
	                         sizeof out), 1);
	snprintf(want, sizeof want, "%s:3: ", bad);
	ck_assert_msg(strstr(out, want) != NULL, "got: %s", out);
	ck_assert_ptr_nonnull(strstr(out, "idle_timeout"));
	/* A missing file is an error with line 0, and mqd does not start. */
	snprintf(bad, sizeof bad, "%s/missing.conf", dir);
	ck_assert_int_eq(run_mqd((char *[]){"-c", bad, NULL}, out, sizeof out),
	                 1);
	snprintf(want, sizeof want, "%s:0: ", bad);
	ck_assert_msg(strstr(out, want) != NULL, "got: %s", out);
	rm_dir(dir);
}
END_TEST

static bool wait_for(bool (*cond)(const char *), const char *arg, int ms)
{
	int64_t end = mqt_now_ms() + ms;
	struct timespec ts = {0, 5 * 1000000};

	while (mqt_now_ms() < end) {
		if (cond(arg))
			return true;
		nanosleep(&ts, NULL);
	}
	return cond(arg);
}

static bool file_has_port(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512];
	bool found = false;

	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof line, f))
		found = strstr(line, "listening on 127.0.0.1:") != NULL;
	fclose(f);
	return found;
}

static bool pid_gone(const char *pidtext)
{
	return kill((pid_t)atol(pidtext), 0) < 0 && errno == ESRCH;
}

START_TEST(daemonize_with_pidfile)
{
	char *dir = tmpdir();
	char conf[512], pidfile[512], logfile[512], text[2048], out[4096];
	char addr[64], pidtext[32] = "";
	FILE *f;
	mq_conn *c;

	snprintf(conf, sizeof conf, "%s/mqd.conf", dir);
	snprintf(pidfile, sizeof pidfile, "%s/mqd.pid", dir);
	snprintf(logfile, sizeof logfile, "%s/mqd.log", dir);
	snprintf(text, sizeof text,
	         "[server]\nlisten = 127.0.0.1:0\nworkers = 2\n"
	         "pidfile = %s\nlog_file = %s\ncontrol_socket = %s/ctl.sock\n",
	         pidfile, logfile, dir);
	write_file(conf, text);
	/* The parent returns once the daemon is ready: the pidfile and the
	 * listening line exist when it does. */
	ck_assert_int_eq(run_mqd((char *[]){"-d", "-c", conf, NULL}, out,
	                         sizeof out), 0);
	f = fopen(pidfile, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(pidtext, sizeof pidtext, f));
	fclose(f);
	ck_assert_int_gt(atol(pidtext), 1);
	/* Not our child: the janitor stops it if the test fails. */
	mqt_watch((pid_t)atol(pidtext), dir);
	ck_assert(file_has_port(logfile));
	f = fopen(logfile, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(text, sizeof text, f)) {
		char *p = strstr(text, "listening on ");
		if (p) {
			snprintf(addr, sizeof addr, "%s", p + strlen("listening on "));
			addr[strcspn(addr, "\n")] = '\0';
		}
	}
	fclose(f);
	ck_assert_int_eq(mq_connect(&c, addr, "daemon-test"), MQ_OK);
	ck_assert_int_eq(mq_ping(c), MQ_OK);
	mq_close(c);
	ck_assert_int_eq(kill((pid_t)atol(pidtext), SIGTERM), 0);
	ck_assert_msg(wait_for(pid_gone, pidtext, 5000),
	              "daemon did not stop within 5 s of SIGTERM");
	mqt_unwatch((pid_t)atol(pidtext));
	ck_assert_int_ne(access(pidfile, F_OK), 0); /* removed on exit */
	rm_dir(dir);
}
END_TEST

START_TEST(daemon_start_failure_is_reported)
{
	char *dir = tmpdir();
	char conf[512], text[1024], out[4096];
	struct mqt_server s;

	/* Take a port, then ask a daemon for the same one. */
	ck_assert_int_eq(mqt_server_start(&s, NULL), 0);
	snprintf(conf, sizeof conf, "%s/mqd.conf", dir);
	snprintf(text, sizeof text,
	         "[server]\nlisten = 127.0.0.1:%u\nlog_file = %s/mqd.log\n"
	         "control_socket = %s/ctl.sock\n",
	         s.port, dir, dir);
	write_file(conf, text);
	ck_assert_int_eq(run_mqd((char *[]){"-d", "-c", conf, NULL}, out,
	                         sizeof out), 1);
	ck_assert_int_eq(mqt_server_stop(&s), 0);
	rm_dir(dir);
}
END_TEST

START_TEST(sighup_does_not_kill)
{
	struct mqt_server s;
	mq_conn *c;

	ck_assert_int_eq(mqt_server_start(&s, NULL), 0);
	c = mqt_connect(&s);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(mq_send(c, "hup", "kept", 4, NULL, NULL), MQ_OK);
	ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
	ck_assert_int_eq(mq_ping(c), MQ_OK); /* answered after the signal */
	ck_assert(mqt_server_alive(&s));
	struct mq_message *m;
	ck_assert_int_eq(mq_get(c, "hup", 0, MQ_AUTO_ACK, &m), MQ_OK);
	ck_assert_int_eq(m->body_len, 4);
	mq_message_free(m);
	mq_close(c);
	ck_assert_int_eq(mqt_server_stop(&s), 0);
}
END_TEST

START_TEST(sigint_stops_like_sigterm)
{
	struct mqt_server s;
	siginfo_t info;
	int64_t end;
	struct timespec ts = {0, 5 * 1000000};

	ck_assert_int_eq(mqt_server_start(&s, NULL), 0);
	ck_assert_int_eq(kill(s.pid, SIGINT), 0);
	/* Wait for the exit without reaping it (WNOWAIT), so the harness
	 * still collects the status and cleans up. */
	end = mqt_now_ms() + 5000;
	memset(&info, 0, sizeof info);
	while (mqt_now_ms() < end &&
	       waitid(P_PID, (id_t)s.pid, &info,
	              WEXITED | WNOHANG | WNOWAIT) == 0 &&
	       info.si_pid == 0)
		nanosleep(&ts, NULL);
	ck_assert_int_eq(info.si_pid, s.pid);
	ck_assert_int_eq(info.si_code, CLD_EXITED);
	ck_assert_int_eq(info.si_status, 0);
	ck_assert_int_eq(mqt_server_stop(&s), 0);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("daemon");
	TCase *tc = tcase_create("daemon");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, version_and_help);
	tcase_add_test(tc, check_config);
	tcase_add_test(tc, daemonize_with_pidfile);
	tcase_add_test(tc, daemon_start_failure_is_reported);
	tcase_add_test(tc, sighup_does_not_kill);
	tcase_add_test(tc, sigint_stops_like_sigterm);
	suite_add_tcase(su, tc);
	sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
