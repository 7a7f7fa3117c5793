/*
 * The log: "2026-11-26T09:30:00.123Z [info] text\n", to standard error, a
 * file opened for appending, or syslog.
 *
 * Any thread may log at any time without a lock: the level, the target and
 * the descriptor are atomics, and each line leaves in a single write(2), so
 * lines from different threads never interleave.  A file opened with
 * O_APPEND takes each write whole at its end, even with logrotate's
 * copytruncate.  Reopening after rotation dup2()s the new file onto the
 * descriptor the writers already use, so it is safe at any time too.
 * mqd_log_open() and mqd_log_close() change the target; call them while one
 * thread runs (start-up, shutdown), since a writer may still hold the old
 * descriptor.  The mutex only keeps open, reopen and close from racing.
 */
#ifdef HAVE_CONFIG_H
/* autoconf's; "config.h" would find core/config.h next to this file. */
#include <config.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"

enum log_target { TO_STDERR, TO_FILE, TO_SYSLOG };

static atomic_int log_level = MQD_LOG_INFO;
static atomic_int log_target = TO_STDERR;
static atomic_int log_fd = STDERR_FILENO;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_path[4096]; /* TO_FILE: for reopen; under log_lock */

static int open_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
	            0640);
}

/* Drop the current target; the caller holds log_lock. */
static void drop_target(void)
{
	int target = atomic_load(&log_target);
	int fd = atomic_load(&log_fd);

	atomic_store(&log_target, TO_STDERR);
	atomic_store(&log_fd, STDERR_FILENO);
	if (target == TO_FILE)
		close(fd);
	else if (target == TO_SYSLOG)
		closelog();
	log_path[0] = '\0';
}

int mqd_log_open(const char *target, enum mqd_log_level level)
{
	int fd, e;

	pthread_mutex_lock(&log_lock);
	if (target == NULL || target[0] == '\0') {
		drop_target();
	} else if (strcmp(target, "syslog") == 0) {
		drop_target();
		openlog("mqd", LOG_PID, LOG_DAEMON);
		atomic_store(&log_target, TO_SYSLOG);
	} else {
		if (strlen(target) >= sizeof(log_path)) {
			pthread_mutex_unlock(&log_lock);
			errno = ENAMETOOLONG;
			return -1;
		}
		fd = open_file(target);
		if (fd < 0) {
			e = errno;
			pthread_mutex_unlock(&log_lock);
			errno = e;
			return -1;
		}
		if (atomic_load(&log_target) == TO_FILE) {
			/* Keep the descriptor number writers may hold. */
			int rc = dup2(fd, atomic_load(&log_fd));

			e = errno;
			close(fd);
			if (rc < 0) {
				pthread_mutex_unlock(&log_lock);
				errno = e;
				return -1;
			}
		} else {
			drop_target();
			atomic_store(&log_fd, fd);
			atomic_store(&log_target, TO_FILE);
		}
		memcpy(log_path, target, strlen(target) + 1);
	}
	atomic_store(&log_level, (int)level);
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void mqd_log_set_level(enum mqd_log_level level)
{
	atomic_store(&log_level, (int)level);
}

enum mqd_log_level mqd_log_get_level(void)
{
	return (enum mqd_log_level)atomic_load_explicit(&log_level,
	                                                memory_order_relaxed);
}

int mqd_log_reopen(void)
{
	int fd, e, rc = 0;

	pthread_mutex_lock(&log_lock);
	if (atomic_load(&log_target) == TO_FILE) {
		fd = open_file(log_path);
		if (fd < 0) {
			rc = -1;
		} else {
			if (dup2(fd, atomic_load(&log_fd)) < 0)
				rc = -1;
			e = errno;
			close(fd);
			errno = e;
		}
	}
	e = errno;
	pthread_mutex_unlock(&log_lock);
	errno = e;
	return rc;
}

void mqd_log_close(void)
{
	pthread_mutex_lock(&log_lock);
	drop_target();
	pthread_mutex_unlock(&log_lock);
}

static int syslog_priority(enum mqd_log_level level)
{
	switch (level) {
	case MQD_LOG_ERROR:
		return LOG_ERR;
	case MQD_LOG_WARN:
		return LOG_WARNING;
	case MQD_LOG_INFO:
		return LOG_INFO;
	case MQD_LOG_DEBUG:
		break;
	}
	return LOG_DEBUG;
}

/* "2026-11-26T09:30:00.123Z [info] " into buf; returns its length. */
static size_t format_prefix(char *buf, size_t len, enum mqd_log_level level)
{
	struct timespec ts;
	struct tm tm;
	size_t n;
	int m;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	m = snprintf(buf + n, len - n, ".%03dZ [%s] ",
	             (int)(ts.tv_nsec / 1000000), mqd_log_level_name(level));
	return m < 0 ? n : n + (size_t)m;
}

/* Control characters from peers must not forge lines or move the cursor. */
static void sanitize(char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n' || c == '\r')
			s[i] = ' ';
		else if ((c < 0x20 && c != '\t') || c == 0x7f)
			s[i] = '?';
	}
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere left to complain */
		}
		buf += w;
		len -= (size_t)w;
	}
}

void mqd_log(enum mqd_log_level level, const char *fmt, ...)
{
	char stackbuf[1024], *buf = stackbuf, *big = NULL;
	size_t cap = sizeof(stackbuf), pre, n;
	va_list ap, ap2;
	int r, saved_errno = errno;

	if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
		return;
	pre = format_prefix(buf, cap, level);
	va_start(ap, fmt);
	va_copy(ap2, ap);
	r = vsnprintf(buf + pre, cap - pre, fmt, ap);
	va_end(ap);
	if (r < 0) {
		va_end(ap2);
		errno = saved_errno;
		return;
	}
	n = (size_t)r;
	/* Room for the text, its '\n' and vsnprintf's '\0'. */
	if (pre + n + 2 > cap) {
		big = malloc(pre + n + 2);
		if (big != NULL) {
			memcpy(big, buf, pre);
			vsnprintf(big + pre, n + 1, fmt, ap2);
			buf = big;
			cap = pre + n + 2;
		} else {
			n = cap - pre - 2; /* truncated, but logged */
		}
	}
	va_end(ap2);

	while (n > 0 && buf[pre + n - 1] == '\n')
		n--;
	sanitize(buf + pre, n);
	if (atomic_load(&log_target) == TO_SYSLOG) {
		buf[pre + n] = '\0';
		syslog(syslog_priority(level), "%s", buf + pre);
	} else {
		buf[pre + n] = '\n';
		write_all(atomic_load(&log_fd), buf, pre + n + 1);
	}
	free(big);
	errno = saved_errno;
}
