/*
 * mqd: argv, daemonizing, the pidfile, and the order of start-up and
 * shutdown.  Everything else lives in the convenience library.
 *
 * main wires the two halves together: the server (workers, listeners) and
 * admin (control socket, metrics), which knows the server only through the
 * narrow API the server hands out (admin/api.h).  Neither includes the
 * other.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#include "admin/api.h"
#include "admin/control.h"
#include "admin/metrics.h"
#include "core/config.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/notify.h"
#include "server/server.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG SYSCONFDIR "/mqd.conf"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: mqd [-c FILE] [-d] [-t] [-V] [-h]\n"
	        "  -c FILE  configuration file (default %s)\n"
	        "  -d       run in the background and write the pidfile\n"
	        "  -t       check the configuration and exit\n"
	        "  -V       print the version and exit\n"
	        "  -h       print this help and exit\n",
	        DEFAULT_CONFIG);
}

/*
 * Detach from the terminal.  The parent waits on a pipe until the daemon
 * says it is ready (or failed), so `mqd -d` exits non-zero when start-up
 * fails instead of reporting success for a daemon that then dies.
 */
static int daemonize(int *ready_fd)
{
	int fds[2];
	pid_t pid;
	char c = 0;

	if (pipe(fds) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		close(fds[1]);
		ssize_t r;
		do {
			r = read(fds[0], &c, 1);
		} while (r < 0 && errno == EINTR);
		_exit(r == 1 && c == 'R' ? 0 : 1);
	}
	close(fds[0]);
	if (setsid() < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		return -1;
	umask(027);
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		/* stderr stays until logging is set up; then it goes too. */
		if (null > STDERR_FILENO)
			close(null);
	}
	*ready_fd = fds[1];
	return 0;
}

static void tell_parent(int *ready_fd, char c)
{
	if (*ready_fd < 0)
		return;
	if (write(*ready_fd, &c, 1) < 0) {
		/* the parent is gone; nothing to tell */
	}
	close(*ready_fd);
	*ready_fd = -1;
}

static int write_pidfile(const char *path)
{
	FILE *f;

	if (path[0] == '\0')
		return 0;
	f = fopen(path, "w");
	if (f == NULL) {
		mqd_log_error("pidfile %s: %s", path, strerror(errno));
		return -1;
	}
	fprintf(f, "%ld\n", (long)getpid());
	return fclose(f) == 0 ? 0 : -1;
}

/* The ways in for operators: the control socket, then metrics. */
static int admin_start(struct mqd_server *srv, struct mqd_control **control,
                       struct mqd_metrics **metrics)
{
	struct mqd_admin_api api;

	mqd_server_admin_api(srv, &api);
	if (mqd_control_start(srv->base, &api, control) < 0 ||
	    mqd_metrics_start(srv->base, &api, metrics) < 0)
		return -1;
	return 0;
}

/*
 * The server stops first: its workers are joined and every query still out
 * is answered while admin is there to hear it.  Then admin closes (the
 * control socket goes away with the server), then the server is freed,
 * the event base they share last.
 */
static void stop_all(struct mqd_server *srv, struct mqd_control **control,
                     struct mqd_metrics **metrics)
{
	mqd_server_stop(srv);
	mqd_control_stop(control);
	mqd_metrics_stop(metrics);
	mqd_server_free(srv);
}

int main(int argc, char **argv)
{
	static struct mqd_config cfg;
	static struct mqd_server srv;
	struct mqd_control *control = NULL;
	struct mqd_metrics *metrics = NULL;
	const char *path = DEFAULT_CONFIG;
	bool daemon = false, check = false;
	char err[4400];
	int opt, rc, ready_fd = -1;
	struct sigaction sa;

	mqd_fault_wrap_libevent(); /* tests only; before libevent allocates */
	while ((opt = getopt(argc, argv, "c:dtVh")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			daemon = true;
			break;
		case 't':
			check = true;
			break;
		case 'V':
			printf("mqd %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "mqd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	/* An absolute path, so a reload after -d (which chdirs to /) reads
	 * the same file. */
	static char abspath[PATH_MAX];
	if (realpath(path, abspath) != NULL)
		path = abspath;
	if (mqd_config_load(&cfg, path, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (check) {
		printf("mqd: %s: configuration ok\n", path);
		mqd_config_free(&cfg);
		return 0;
	}
	/* A client that vanishes must not kill the broker. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	if (daemon && daemonize(&ready_fd) < 0) {
		fprintf(stderr, "mqd: cannot daemonize: %s\n", strerror(errno));
		mqd_config_free(&cfg);
		return 1;
	}
	/* A daemon without a log file logs to syslog: stderr is gone. */
	const char *target = cfg.log_file;
	if (daemon && target[0] == '\0')
		target = "syslog";
	if (mqd_log_open(target, cfg.log_level) < 0) {
		fprintf(stderr, "mqd: log file %s: %s\n", target, strerror(errno));
		tell_parent(&ready_fd, 'F');
		mqd_config_free(&cfg);
		return 1;
	}
	if (daemon) {
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, STDERR_FILENO);
			if (null > STDERR_FILENO)
				close(null);
		}
	}
	/* The server owns the config from here on, and frees it.  The
	 * control socket comes before the listeners: once "listening on" is
	 * logged, every way in works. */
	rc = mqd_server_init(&srv, &cfg);
	if (rc == 0)
		rc = admin_start(&srv, &control, &metrics);
	if (rc == 0)
		rc = mqd_server_start(&srv);
	if (rc == 0 && daemon && write_pidfile(cfg.pidfile) < 0)
		rc = -1;
	if (rc < 0) {
		tell_parent(&ready_fd, 'F');
		stop_all(&srv, &control, &metrics);
		mqd_log_close();
		return 1;
	}
	tell_parent(&ready_fd, 'R');
	mqd_notify("READY=1");
	mqd_fault_arm(); /* tests only: from here on, faults may be injected */
	rc = mqd_server_run(&srv);
	mqd_fault_report(); /* tests only */
	stop_all(&srv, &control, &metrics);
	if (daemon && cfg.pidfile[0] != '\0')
		unlink(cfg.pidfile);
	mqd_log_info("stopped");
	mqd_log_close();
	return rc;
}
