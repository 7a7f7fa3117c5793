#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * Hostile and careless clients (issue 11): each test starts the real mqd
 * on a kernel-chosen loopback port and does what a client should not, or
 * what many clients do at once, and checks that the broker keeps its
 * bounds and keeps serving everyone else:
 *
 *  - connections that send half a frame and then nothing are closed by
 *    idle_timeout on time (each within [timeout, timeout + 1 s] of its
 *    last byte) while another client is served;
 *  - max_connections: the next client gets ERROR LIMIT, the others keep
 *    going;
 *  - the descriptors run out (RLIMIT_NOFILE lowered for the broker):
 *    existing clients keep their service, the accept loop does not spin,
 *    new clients get in once descriptors are free again;
 *  - mqd raises its soft descriptor limit to what max_connections needs,
 *    and says so when the hard limit is too low;
 *  - a consumer that never reads: bounded by prefetch and the output cap,
 *    its messages redelivered once it is dropped (mqctl kill or a close);
 *  - random bytes and well-formed frames full of lies: errors, no crash,
 *    no allocation sized by what a client claims;
 *  - a producer flooding past max_memory: MEMORY_LIMIT, and the resident
 *    set stays under max_memory plus a fixed overhead.
 *
 * Counts and times are bounded; the only fixed waits are short negatives
 * ("nothing arrives within 200 ms") and the one measuring window the
 * descriptor test needs (CPU time over 5 s).  Figures are printed so that
 * the log of a run records them.
 */

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <jansson.h>

#include "../lib/harness.h"
#include "../lib/expect.h"
#include "../lib/proc.h"

/* Ops and codes harness.h does not name. */
enum {
	OP_BIND = 0x13, OP_UNBIND = 0x14, OP_PUBLISH = 0x21,
	OP_SUBSCRIBE = 0x40, OP_UNSUBSCRIBE = 0x41,
	E_MEMORY_LIMIT = 13,
};
#define F_QUIET 0x01
#define F_AUTO_ACK 0x02

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifdef SANITIZED
/* Shadow memory and the allocator's quarantine are in the resident set:
 * the RSS bounds are glibc malloc's and are reported, not asserted. */
static const bool rss_checked = false;
#else
static const bool rss_checked = true;
#endif

/* ---- small tools ---------------------------------------------------------- */

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Resident set of pid in bytes, or -1. */
static long long rss_bytes(pid_t pid)
{
	char path[64];
	long long size, resident;
	snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	int n = fscanf(f, "%lld %lld", &size, &resident);
	fclose(f);
	return n == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

/* User + system CPU time of pid in milliseconds, or -1 (/proc/PID/stat
 * fields 14 and 15, after the parenthesised command name). */
static long long cpu_ms(pid_t pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long long ut, st;
	/* After ")": state, then fields 4..13, then utime, stime. */
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
	                        "%*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)((ut + st) * 1000 / (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* Descriptors pid has open, or -1. */
static int open_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The "Max open files" soft and hard limits of pid; 0 or -1. */
static int nofile_of(pid_t pid, unsigned long long *soft,
                     unsigned long long *hard)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
	FILE *f = fopen(path, "r");
	int rc = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "Max open files", 14) == 0 &&
		    sscanf(line + 14, "%llu %llu", soft, hard) == 2)
			rc = 0;
	fclose(f);
	return rc;
}

/* How often needle occurs in the broker's log. */
static int log_count(const struct mqt_server *s, const char *needle)
{
	FILE *f = fopen(s->log_path, "r");
	char line[8192];
	int n = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

/* The first log line with needle, copied into out; whether there is one. */
static bool log_line(const struct mqt_server *s, const char *needle,
                     char *out, size_t cap)
{
	FILE *f = fopen(s->log_path, "r");
	char line[8192];
	bool found = false;
	if (!f)
		return false;
	while (!found && fgets(line, sizeof line, f))
		if (strstr(line, needle)) {
			snprintf(out, cap, "%s", line);
			found = true;
		}
	fclose(f);
	return found;
}

/* Wait (bounded) until the log has needle. */
static bool wait_log(const struct mqt_server *s, const char *needle, int ms)
{
	int64_t end = mqt_now_ms() + ms;
	while (log_count(s, needle) == 0) {
		if (mqt_now_ms() > end)
			return false;
		sleep_ms(10);
	}
	return true;
}

/* One control command's JSON reply (ok checked); json_decref it. */
static json_t *ctl_at(int line, const struct mqt_server *s, const char *cmd)
{
	static char out[1 << 20];
	json_error_t je;
	ck_assert_msg(mqt_control(s, cmd, out, sizeof out) == 0,
	              "line %d: control \"%s\" failed", line, cmd);
	json_t *j = json_loads(out, 0, &je);
	ck_assert_msg(j != NULL && json_is_true(json_object_get(j, "ok")),
	              "line %d: control \"%s\": %s", line, cmd, out);
	return j;
}
#define CTL_JSON(s, cmd) ctl_at(__LINE__, &(s), cmd)

/* A number from the control socket: field of "queue NAME". */
static long long queue_field_at(int line, const struct mqt_server *s,
                                const char *q, const char *field)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "queue %s", q);
	json_t *j = ctl_at(line, s, cmd);
	json_t *v = json_object_get(json_object_get(j, "queue"), field);
	ck_assert_msg(json_is_integer(v), "line %d: no %s in queue %s", line,
	              field, q);
	long long n = json_integer_value(v);
	json_decref(j);
	return n;
}
#define QFIELD(s, q, field) queue_field_at(__LINE__, &(s), q, field)

/* "stats" memory.accounted_bytes. */
static long long accounted_at(int line, const struct mqt_server *s)
{
	json_t *j = ctl_at(line, s, "stats");
	json_t *v = json_object_get(json_object_get(j, "memory"),
	                            "accounted_bytes");
	ck_assert_msg(json_is_integer(v), "line %d: no accounted_bytes", line);
	long long n = json_integer_value(v);
	json_decref(j);
	return n;
}
#define ACCOUNTED(s) accounted_at(__LINE__, &(s))

/* bytes_out of connection id in "connections", or -1 if it is not listed. */
static long long conn_bytes_out(const struct mqt_server *s, uint64_t id)
{
	json_t *j = ctl_at(__LINE__, s, "connections");
	json_t *a = json_object_get(j, "connections"), *row;
	size_t i;
	long long n = -1;
	json_array_foreach(a, i, row) {
		if ((uint64_t)json_integer_value(json_object_get(row, "id")) == id)
			n = json_integer_value(json_object_get(row, "bytes_out"));
	}
	json_decref(j);
	return n;
}

/* HELLO on fd and the connection id from WELCOME. */
static uint64_t hello_id_at(int line, int fd)
{
	struct mqt_buf b;
	struct mqt_frame f;
	struct mqt_rd r;
	mqt_buf_init(&b);
	mqt_enc_hello(&b, 1, 1, "hostile");
	send_at(line, fd, &b);
	mqt_buf_free(&b);
	expect_at(line, fd, &f, MQT_WELCOME, 1);
	mqt_rd_init(&r, &f);
	mqt_get_u8(&r);
	mqt_get_bytes(&r, mqt_get_u16(&r));
	mqt_get_u32(&r);
	uint64_t id = mqt_get_u64(&r);
	ck_assert_msg(mqt_rd_done(&r), "line %d: WELCOME: %s", line,
	              mqt_frame_str(&f));
	mqt_frame_free(&f);
	return id;
}
#define HELLO_ID(fd) hello_id_at(__LINE__, fd)

/* A connected socket whose receive buffer is asked to be rcvbuf bytes
 * (before connect, so the window the broker sees is small). */
static int connect_rcvbuf_at(int line, const struct mqt_server *s,
                             int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in sa;
	struct timeval tv = {10, 0};
	ck_assert_msg(fd >= 0, "line %d: socket: %s", line, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(s->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0,
	              "line %d: connect: %s", line, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}
#define CONNECT_RCVBUF(s, n) connect_rcvbuf_at(__LINE__, &(s), n)

/* Enough descriptors in the test process for n sockets. */
static void want_fds(int n)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= (rlim_t)n)
		return;
	rl.rlim_cur = rl.rlim_max < (rlim_t)n ? rl.rlim_max : (rlim_t)n;
	setrlimit(RLIMIT_NOFILE, &rl);
	ck_assert_msg(getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	              rl.rlim_cur >= (rlim_t)n, "the test needs %d "
	              "descriptors; its hard limit is %llu", n,
	              (unsigned long long)rl.rlim_max);
}

/* xorshift64*: the random tests print their seed; MQT_SEED repeats one. */
static uint64_t rng_state;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}
static uint32_t rnd_below(uint32_t n)
{
	return n ? (uint32_t)(rnd() % n) : 0;
}
static uint64_t seed_rng(const char *test)
{
	const char *e = getenv("MQT_SEED");
	uint64_t seed = e && *e ? strtoull(e, NULL, 0)
	                        : (uint64_t)now_us() ^ ((uint64_t)getpid() << 32);
	if (seed == 0)
		seed = 1;
	rng_state = seed;
	printf("%s: seed %llu (MQT_SEED=%llu repeats this run)\n", test,
	       (unsigned long long)seed, (unsigned long long)seed);
	fflush(stdout);
	return seed;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* ===================================================================== */
/* Half a frame, then nothing: idle_timeout on time                      */
/* ===================================================================== */

/*
 * IDLE_N connections each send part of a frame (half a HELLO, or after
 * HELLO half a SEND) and then nothing.  Each must be closed between
 * IDLE_MS and IDLE_MS + IDLE_LATE_MS after its last byte, as seen from
 * here.  Before the fix, a read timeout that fired a moment early (libevent
 * arms it from the time its loop woke up, a little before the read
 * callback noted the last activity) was re-armed for a whole period, so a
 * share of the connections lived for twice IDLE_MS.
 *
 * IDLE_LATE_MS is the bound (a second), not a measured figure:
 * measured lateness is a few milliseconds (printed).  It holds on a loaded
 * machine and under sanitizers, because what could make a close late is
 * the worker loop or this test being held off the CPU, not the timer.
 * IDLE_EARLY_MS allows for the broker's millisecond clock ("2000 ms quiet"
 * read off a clock of whole milliseconds may be up to 1 ms less) and for
 * this test's timestamp of the last byte, taken when send() returns: on a
 * busy 2-CPU machine the broker may already have read the byte by then
 * (2.1 ms early was seen in CI).  What the issue bounds is lateness.
 *
 * Meanwhile another client is served: a SEND and a GET every PING_EVERY_MS
 * (so it never goes idle), each answered within RD_MS.
 */
#define IDLE_N 500
#define IDLE_MS 2000
#define IDLE_LATE_MS 1000
#define IDLE_EARLY_MS 10
#define PING_EVERY_MS 200

static void serve_active(int fd, uint32_t *tag, int64_t *worst_us)
{
	int64_t t0 = now_us();
	uint32_t t = ++*tag;
	char body[32];
	snprintf(body, sizeof body, "active %u", t);
	DO_SEND(fd, t, "idle.active", 0, body);
	GET_BODY(fd, t + 1, "idle.active", F_AUTO_ACK, body, 1);
	++*tag;
	if (now_us() - t0 > *worst_us)
		*worst_us = now_us() - t0;
}

START_TEST(test_idle_half_frames)
{
	static int fds[IDLE_N];
	static int64_t last_us[IDLE_N], closed_us[IDLE_N], took[IDLE_N];
	struct mqt_server s;
	struct mqt_buf b;
	uint32_t tag = 10;
	int64_t worst_us = 0, next_ping;
	int nhello = 0, open_n = 0, spoke = 0;

	want_fds(IDLE_N + 64);
	START_EXTRA(s, "idle_timeout = 2s\nlog_level = info\n");
	mqt_buf_init(&b);
	int active = RAW_OPEN(s);
	next_ping = mqt_now_ms() + PING_EVERY_MS;
	for (int i = 0; i < IDLE_N; i++) {
		fds[i] = RAW_CONNECT(s);
		if (i % 2) {
			/* After HELLO: 12 of a SEND's 27 bytes. */
			ck_assert_int_eq(mqt_raw_hello(fds[i]), 0);
			mqt_enc_send(&b, 0, 5, "idle.q", 0, "x", 1);
			ck_assert_int_eq(mqt_raw_send(fds[i], b.p, 12), 0);
			nhello++;
		} else {
			/* Before HELLO: 9 of its 18 bytes. */
			mqt_enc_hello(&b, 1, 1, "half");
			ck_assert_int_eq(mqt_raw_send(fds[i], b.p, 9), 0);
		}
		last_us[i] = now_us();
		closed_us[i] = 0;
		mqt_buf_reset(&b);
		if (mqt_now_ms() >= next_ping) {
			serve_active(active, &tag, &worst_us);
			next_ping = mqt_now_ms() + PING_EVERY_MS;
		}
	}
	open_n = IDLE_N;

	/* Watch them close; keep the active client busy meanwhile. */
	static struct pollfd pf[IDLE_N];
	static int idx[IDLE_N];
	int64_t deadline = last_us[IDLE_N - 1] / 1000 + IDLE_MS + IDLE_LATE_MS +
	                   3000;
	while (open_n > 0 && mqt_now_ms() < deadline) {
		int n = 0;
		for (int i = 0; i < IDLE_N; i++) {
			if (closed_us[i])
				continue;
			pf[n] = (struct pollfd){ fds[i], POLLIN, 0 };
			idx[n++] = i;
		}
		int64_t wait = next_ping - mqt_now_ms();
		int pr = poll(pf, (nfds_t)n, wait < 0 ? 0 : (int)wait);
		int64_t t = now_us();
		for (int k = 0; pr > 0 && k < n; k++) {
			if (!pf[k].revents)
				continue;
			char buf[64];
			ssize_t r = recv(pf[k].fd, buf, sizeof buf, MSG_DONTWAIT);
			if (r > 0) {
				spoke++; /* an idle close says nothing first */
				continue;
			}
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			closed_us[idx[k]] = t;
			open_n--;
		}
		if (mqt_now_ms() >= next_ping) {
			serve_active(active, &tag, &worst_us);
			next_ping = mqt_now_ms() + PING_EVERY_MS;
		}
	}

	int early = 0, late = 0, never = 0, ndone = 0;
	for (int i = 0; i < IDLE_N; i++) {
		if (!closed_us[i]) {
			never++;
			continue;
		}
		int64_t d = closed_us[i] - last_us[i];
		took[ndone++] = d;
		if (d < (int64_t)(IDLE_MS - IDLE_EARLY_MS) * 1000)
			early++;
		if (d > (int64_t)(IDLE_MS + IDLE_LATE_MS) * 1000)
			late++;
	}
	qsort(took, (size_t)ndone, sizeof took[0], cmp_i64);
	if (ndone > 0)
		printf("test_idle_half_frames: %d connections (%d after HELLO) "
		       "closed after their last byte: min %.1f ms, median "
		       "%.1f ms, p99 %.1f ms, max %.1f ms (idle_timeout %d ms, "
		       "bound +%d ms); early %d, late %d, never %d; the active "
		       "client's slowest SEND+GET %.1f ms\n",
		       ndone, nhello, took[0] / 1000.0,
		       took[ndone / 2] / 1000.0,
		       took[ndone * 99 / 100] / 1000.0,
		       took[ndone - 1] / 1000.0, IDLE_MS, IDLE_LATE_MS, early,
		       late, never, worst_us / 1000.0);
	fflush(stdout);
	ck_assert_msg(never == 0, "%d of %d idle connections still open "
	              "%d ms after idle_timeout", never, IDLE_N,
	              IDLE_LATE_MS + 3000);
	ck_assert_msg(early == 0 && late == 0, "%d closed early, %d late "
	              "(more than %d ms over idle_timeout = %d ms)", early,
	              late, IDLE_LATE_MS, IDLE_MS);
	ck_assert_msg(spoke == 0, "the broker sent %d idle connections "
	              "something before closing them", spoke);
	/* The active client was never idle: still served. */
	serve_active(active, &tag, &worst_us);
	PING(active, 9);
	for (int i = 0; i < IDLE_N; i++)
		close(fds[i]);
	close(active);
	mqt_buf_free(&b);
	STOP(s);
}
END_TEST

/*
 * A client that pipelines requests and never reads the replies, then goes
 * quiet: the broker stops reading it (4 MiB of unsent output) and cannot
 * write to it (its socket is full), so no read timeout runs; idle_timeout
 * must close it all the same, from the write side.  Its close shows as a
 * reset (the broker closes with our PINGs unread), seen here without
 * reading a byte.  The broker went quiet a little before our last byte
 * (the kernel buffers took the rest), so only the upper bound is checked.
 */
#define STUCK_N 3
#define STUCK_PING (64 << 10)

START_TEST(test_idle_never_reads)
{
	static char payload[STUCK_PING];
	struct mqt_server s;
	struct mqt_buf b;
	int fds[STUCK_N];
	int64_t last_us[STUCK_N];

	START_EXTRA(s, "idle_timeout = 2s\nlog_level = info\n");
	mqt_buf_init(&b);
	mqt_enc_ping(&b, 7, payload, sizeof payload);
	for (int i = 0; i < STUCK_N; i++) {
		fds[i] = CONNECT_RCVBUF(s, 4096);
		HELLO_ID(fds[i]);
		fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
		size_t off = 0, total = 0;
		int64_t give_up = mqt_now_ms() + 30000;
		/* Until neither the broker nor the kernel takes more (a busy
		 * machine may pause the broker longer than QUIET_MS before
		 * 8 MiB are in: only then, or after 30 s, is it done). */
		for (;;) {
			ssize_t w = send(fds[i], b.p + off, b.len - off,
			                 MSG_NOSIGNAL);
			if (w > 0) {
				total += (size_t)w;
				off = (off + (size_t)w) % b.len;
				last_us[i] = now_us();
				continue;
			}
			ck_assert_msg(w < 0 && (errno == EAGAIN ||
			                        errno == EWOULDBLOCK),
			              "send: %s", strerror(errno));
			struct pollfd p = { fds[i], POLLOUT, 0 };
			if (poll(&p, 1, QUIET_MS) == 0 &&
			    (total > (8u << 20) || mqt_now_ms() > give_up))
				break;
		}
		ck_assert_msg(total > (8u << 20), "only %zu bytes sent", total);
	}
	int64_t worst = 0;
	for (int i = 0; i < STUCK_N; i++) {
		struct pollfd p = { fds[i], POLLRDHUP, 0 };
		int64_t left = last_us[i] / 1000 + IDLE_MS + IDLE_LATE_MS -
		               mqt_now_ms();
		int pr = poll(&p, 1, left > 0 ? (int)left : 0);
		int64_t d = now_us() - last_us[i];
		ck_assert_msg(pr == 1, "a client that reads nothing still open "
		              "%.1f ms after its last byte (idle_timeout %d ms)",
		              d / 1000.0, IDLE_MS);
		if (d > worst)
			worst = d;
		close(fds[i]);
	}
	printf("test_idle_never_reads: %d clients stuck behind unread "
	       "replies closed at most %.1f ms after their last byte "
	       "(idle_timeout %d ms)\n", STUCK_N, worst / 1000.0, IDLE_MS);
	fflush(stdout);
	int fd = RAW_OPEN(s);
	PING(fd, 1);
	close(fd);
	mqt_buf_free(&b);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* max_connections                                                        */
/* ===================================================================== */

#define MAXC 8

START_TEST(test_max_connections)
{
	struct mqt_server s;
	struct mqt_buf b;
	int fds[MAXC];

	START_EXTRA(s, "max_connections = 8\n");
	mqt_buf_init(&b);
	for (int i = 0; i < MAXC; i++)
		fds[i] = RAW_OPEN(s);
	/* Two more at once: both told LIMIT (to their HELLO) and closed. */
	int over[2];
	for (int k = 0; k < 2; k++) {
		over[k] = RAW_CONNECT(s);
		mqt_enc_hello(&b, 42 + k, 1, "one-too-many");
		SENDB(over[k], &b);
	}
	for (int k = 0; k < 2; k++) {
		EXPECT_ERR(over[k], 42 + k, MQT_E_LIMIT);
		EXPECT_CLOSED(over[k]);
		close(over[k]);
	}
	/* The others are unaffected. */
	for (int i = 0; i < MAXC; i++)
		PING(fds[i], 100 + i);
	DO_SEND(fds[0], 7, "maxc", 0, "still here");
	GET_BODY(fds[MAXC - 1], 8, "maxc", F_AUTO_ACK, "still here", 1);

	/* One leaves: a newcomer gets in once the broker has seen it go. */
	close(fds[0]);
	int64_t end = mqt_now_ms() + GONE_MS;
	int tries = 0;
	for (;;) {
		struct mqt_frame f;
		int fd = RAW_CONNECT(s);
		mqt_enc_hello(&b, 1, 1, "newcomer");
		SENDB(fd, &b);
		ck_assert_int_eq(mqt_raw_read(fd, &f, RD_MS), MQT_RD_FRAME);
		tries++;
		if (f.op == MQT_WELCOME) {
			mqt_frame_free(&f);
			fds[0] = fd;
			break;
		}
		ck_assert_msg(mqt_error_code(&f) == MQT_E_LIMIT, "newcomer got "
		              "%s", mqt_frame_str(&f));
		mqt_frame_free(&f);
		close(fd);
		ck_assert_msg(mqt_now_ms() < end, "no room %d ms after a client "
		              "left", GONE_MS);
		sleep_ms(10);
	}
	PING(fds[0], 200);
	for (int i = 0; i < MAXC; i++)
		close(fds[i]);
	mqt_buf_free(&b);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* Out of descriptors                                                     */
/* ===================================================================== */

/*
 * The broker runs with RLIMIT_NOFILE = FDX_LIMIT (soft and hard).  The test
 * fills what is left with served clients, then one more connects: the
 * kernel completes its handshake, but accept() fails with EMFILE, so it
 * waits in the backlog.  Over FDX_WINDOW_MS the existing clients keep being
 * served and the broker's CPU time (utime + stime) must stay under
 * FDX_CPU_MS: before the fix the listener logged the error and was called
 * again at once, a busy loop of a whole core (about FDX_WINDOW_MS of CPU)
 * and a log line per turn.  Now the listener pauses for 100 ms between
 * tries (core/accept.h): measured 0-20 ms over the window.  FDX_CPU_MS
 * allows for a slow sanitizer build serving the pings meanwhile.  Then a
 * few clients leave, and the waiting one is let in.
 */
#define FDX_LIMIT 64
#define FDX_WINDOW_MS 5000
#define FDX_CPU_MS 500

START_TEST(test_fd_exhaustion)
{
	struct rlimit lim = { FDX_LIMIT, FDX_LIMIT };
	struct mqt_server_opts opts = { .nofile = &lim };
	struct mqt_server s;
	struct mqt_buf b;
	struct mqt_frame f;
	int fds[FDX_LIMIT], n = 0;
	uint32_t tag = 1000;

	ck_assert_msg(mqt_server_start_opts(&s, "workers = 2\n", NULL,
	                                    &opts) == 0, "mqd did not start");
	mqt_buf_init(&b);
	/* It said it cannot have max_connections with this limit. */
	ck_assert(wait_log(&s, "needs", RD_MS));
	int used = open_fds(s.pid);
	ck_assert_msg(used > 0 && used < FDX_LIMIT - 4, "mqd has %d of %d "
	              "descriptors open at start", used, FDX_LIMIT);
	/* Every descriptor left becomes a served client. */
	while (n < FDX_LIMIT - used)
		fds[n++] = RAW_OPEN(s);
	ck_assert_int_eq(open_fds(s.pid), FDX_LIMIT);

	int waiting = RAW_CONNECT(s);
	mqt_enc_hello(&b, 77, 1, "waiting");
	SENDB(waiting, &b);
	ck_assert_msg(wait_log(&s, "Too many open files", RD_MS),
	              "no EMFILE warning in the log");
	EXPECT_QUIET(waiting, QUIET_MS);

	/* The window: service goes on, the CPU stays idle. */
	long long cpu0 = cpu_ms(s.pid);
	int64_t t0 = mqt_now_ms(), worst = 0;
	int rounds = 0;
	ck_assert(cpu0 >= 0);
	while (mqt_now_ms() - t0 < FDX_WINDOW_MS) {
		int64_t r0 = mqt_now_ms();
		for (int i = 0; i < n; i += 7)
			PING(fds[i], ++tag);
		DO_SEND(fds[0], ++tag, "fdx", 0, "served");
		GET_BODY(fds[1], ++tag, "fdx", F_AUTO_ACK, "served", 1);
		if (mqt_now_ms() - r0 > worst)
			worst = mqt_now_ms() - r0;
		rounds++;
		sleep_ms(100);
	}
	long long cpu = cpu_ms(s.pid) - cpu0;
	int warnings = log_count(&s, "Too many open files");
	printf("test_fd_exhaustion: RLIMIT_NOFILE %d, %d clients served, one "
	       "waiting in the backlog: mqd used %lld ms of CPU in %d ms "
	       "(limit %d ms); %d rounds of pings, the slowest %lld ms; %d "
	       "EMFILE warning(s) logged\n", FDX_LIMIT, n, cpu,
	       FDX_WINDOW_MS, FDX_CPU_MS, rounds, (long long)worst, warnings);
	fflush(stdout);
	ck_assert_msg(cpu >= 0 && cpu < FDX_CPU_MS, "mqd used %lld ms of CPU "
	              "in %d ms while out of descriptors: the accept loop "
	              "spins", cpu, FDX_WINDOW_MS);
	ck_assert_msg(warnings <= 2, "%d EMFILE warnings: the log floods",
	              warnings);

	/* Descriptors come free: the waiting client gets in, and others. */
	for (int i = 0; i < 4; i++)
		close(fds[--n]);
	EXPECT(waiting, &f, MQT_WELCOME, 77);
	mqt_frame_free(&f);
	ck_assert(wait_log(&s, "accepting again", RD_MS));
	int late = RAW_OPEN(s);
	PING(late, 5);
	PING(waiting, 6);
	PING(fds[0], 7);
	close(late);
	close(waiting);
	while (n > 0)
		close(fds[--n]);
	mqt_buf_free(&b);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* The descriptor limit at start-up                                       */
/* ===================================================================== */

/* The soft limit is raised to what max_connections needs (plus what mqd
 * keeps for itself), never past the hard limit, which stays; a reload
 * that raises max_connections raises it again. */
START_TEST(test_fd_limit_raised)
{
	struct rlimit mine;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &mine), 0);
	rlim_t hard = mine.rlim_max < 4096 ? mine.rlim_max : 4096;
	if (hard < 2000) {
		printf("test_fd_limit_raised: SKIPPED: the test's hard "
		       "descriptor limit is %llu, below 2000\n",
		       (unsigned long long)mine.rlim_max);
		return;
	}
	struct rlimit lim = { 128, hard };
	struct mqt_server_opts opts = { .nofile = &lim };
	struct mqt_server s;
	unsigned long long soft, h;
	char line[8192];

	ck_assert(mqt_server_start_opts(&s, "workers = 2\n"
	                                "max_connections = 1000\n", NULL,
	                                &opts) == 0);
	ck_assert_int_eq(nofile_of(s.pid, &soft, &h), 0);
	printf("test_fd_limit_raised: started with 128/%llu, max_connections "
	       "1000: now %llu/%llu\n", (unsigned long long)hard, soft, h);
	ck_assert_msg(soft > 1000 && soft <= 1000 + 256, "soft limit %llu "
	              "for max_connections = 1000", soft);
	ck_assert_uint_eq(h, hard);
	ck_assert(log_line(&s, "raised from 128 to", line, sizeof line));

	/* A reload to 1500: raised again. */
	{
		static char conf[1 << 16];
		FILE *f = fopen(s.conf_path, "r");
		ck_assert_ptr_nonnull(f);
		size_t len = fread(conf, 1, sizeof conf - 1, f);
		fclose(f);
		conf[len] = '\0';
		char *p = strstr(conf, "max_connections = 1000");
		ck_assert_ptr_nonnull(p);
		memcpy(p, "max_connections = 1500", 22);
		f = fopen(s.conf_path, "w");
		ck_assert_uint_eq(fwrite(conf, 1, len, f), len);
		ck_assert_int_eq(fclose(f), 0);
	}
	ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
	int64_t end = mqt_now_ms() + GONE_MS;
	while (nofile_of(s.pid, &soft, &h) == 0 && soft <= 1500) {
		ck_assert_msg(mqt_now_ms() < end, "soft limit %llu after a "
		              "reload to max_connections = 1500", soft);
		sleep_ms(10);
	}
	ck_assert_uint_eq(h, hard);
	int fd = RAW_OPEN(s);
	PING(fd, 2);
	close(fd);
	STOP(s);

	/* A hard limit too low: as far as it goes, and a warning that names
	 * how many connections fit. */
	struct rlimit low = { 100, 200 };
	opts.nofile = &low;
	ck_assert(mqt_server_start_opts(&s, "workers = 2\n", NULL, &opts) ==
	          0);
	ck_assert_int_eq(nofile_of(s.pid, &soft, &h), 0);
	ck_assert_uint_eq(soft, 200);
	ck_assert_uint_eq(h, 200);
	ck_assert_msg(log_line(&s, "max_connections = 10000 needs", line,
	                       sizeof line), "no warning in the log");
	printf("test_fd_limit_raised: with 100/200: %s", line);
	unsigned long long room = 0;
	char *p = strstr(line, "room for ");
	ck_assert_msg(p && sscanf(p, "room for %llu", &room) == 1 &&
	              room > 0 && room < 200, "the warning names no ceiling: "
	              "%s", line);
	ck_assert_ptr_nonnull(strstr(line, "[warn]"));
	ck_assert_ptr_nonnull(strstr(line, "hard limit 200"));
	fd = RAW_OPEN(s);
	PING(fd, 3);
	close(fd);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* A consumer that never reads                                            */
/* ===================================================================== */

/*
 * Two acknowledging consumers with prefetch SLOW_PREFETCH that never read
 * their sockets (receive buffers of 4 KiB): each is handed exactly its
 * prefetch and no more, however many messages wait, and the broker's
 * output for it (bytes_out) stays within prefetch frames.  One is dropped
 * by `mqctl kill`, the other by closing its socket; their messages go to
 * a consumer that reads, each once more with attempts 2.
 *
 * Then an AUTO_ACK consumer that never reads: with nothing held, what
 * stops deliveries is the per-connection output cap (4 MiB of unsent
 * output, MQD_OUTPUT_HIGH) plus the prefetch in flight.  bytes_out counts
 * what went into the output buffer, including what the kernel took from
 * it, so the bound is the cap + prefetch frames + the socket's send
 * buffer, which Linux grows up to tcp_wmem's maximum (4 MiB by default;
 * measured about 2 MiB here), + the client's small receive buffer.  The
 * rest stays in the queue.
 */
#define SLOW_BODY 8192
#define SLOW_PREFETCH 20
#define SLOW_FRAME (SLOW_BODY + 64) /* a DELIVER of it, generously */
#define SLOW_N 300
#define FLOOD_N 2000 /* 16 MiB for the AUTO_ACK consumer */
#define FLOOD_PREFETCH 100
#define OUTPUT_CAP (4LL << 20) /* MQD_OUTPUT_HIGH */

/* The most a TCP send buffer grows to (tcp_wmem's third figure). */
static long long tcp_wmem_max(void)
{
	long long lo, def, max = 4LL << 20;
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
	if (f) {
		if (fscanf(f, "%lld %lld %lld", &lo, &def, &max) != 3)
			max = 4LL << 20;
		fclose(f);
	}
	return max;
}

static void send_many(int fd, const char *q, int n, uint32_t *tag)
{
	static char body[SLOW_BODY];
	struct mqt_buf b;
	memset(body, 's', sizeof body);
	mqt_buf_init(&b);
	for (int i = 0; i < n; i++) {
		snprintf(body, 16, "%08d", i);
		mqt_enc_send(&b, F_QUIET, ++*tag, q, 0, body, sizeof body);
		if (b.len > (256u << 10))
			SENDB(fd, &b);
	}
	if (b.len)
		SENDB(fd, &b);
	PING(fd, ++*tag); /* every SEND before it is stored (or refused) */
	mqt_buf_free(&b);
}

/* Wait until queue q's field equals want. */
static void wait_qfield_at(int line, const struct mqt_server *s,
                           const char *q, const char *field, long long want)
{
	int64_t end = mqt_now_ms() + GONE_MS;
	long long v;
	while ((v = queue_field_at(line, s, q, field)) != want) {
		ck_assert_msg(mqt_now_ms() < end, "line %d: queue %s: %s %lld, "
		              "expected %lld", line, q, field, v, want);
		sleep_ms(10);
	}
}
#define WAIT_QFIELD(s, q, field, want) wait_qfield_at(__LINE__, &(s), q, field, want)

START_TEST(test_consumer_never_reads)
{
	struct mqt_server s;
	struct mqt_buf b;
	struct mqt_frame f;
	uint32_t tag = 100;

	START(s);
	mqt_buf_init(&b);
	int prod = RAW_OPEN(s);
	send_many(prod, "slow", SLOW_N, &tag);

	int x[2];
	uint64_t xid[2];
	for (int k = 0; k < 2; k++) {
		x[k] = CONNECT_RCVBUF(s, 4096);
		xid[k] = HELLO_ID(x[k]);
		DO_CONSUME(x[k], 0, 1, "slow", SLOW_PREFETCH);
	}
	WAIT_QFIELD(s, "slow", "held", 2 * SLOW_PREFETCH);
	/* More messages change nothing for them. */
	send_many(prod, "slow", SLOW_N, &tag);
	ck_assert_int_eq(QFIELD(s, "slow", "ready"),
	                 2 * SLOW_N - 2 * SLOW_PREFETCH);
	ck_assert_int_eq(QFIELD(s, "slow", "held"), 2 * SLOW_PREFETCH);
	for (int k = 0; k < 2; k++) {
		long long out = conn_bytes_out(&s, xid[k]);
		printf("test_consumer_never_reads: consumer %d (prefetch %d) "
		       "never reads: %lld bytes of output, %d held\n", k + 1,
		       SLOW_PREFETCH, out, SLOW_PREFETCH);
		ck_assert_msg(out > 0 && out <= 64 + SLOW_PREFETCH * SLOW_FRAME,
		              "consumer %d: %lld bytes of output for prefetch %d",
		              k, out, SLOW_PREFETCH);
	}

	/* Drop one with mqctl kill, the other by closing its socket. */
	const char *mqctl = getenv("MQCTL_BIN");
	ck_assert_msg(mqctl && *mqctl, "MQCTL_BIN is not set");
	char idbuf[32], out[4096];
	snprintf(idbuf, sizeof idbuf, "%llu", (unsigned long long)xid[0]);
	char *argv[] = { (char *)mqctl, (char *)"-S", s.ctl_path,
	                 (char *)"kill", idbuf, NULL };
	struct mqt_spawn sp = { .argv = argv, .out = MQT_IO_PIPE,
	                        .out_buf = out, .out_cap = sizeof out,
	                        .err = MQT_IO_INHERIT };
	ck_assert_int_eq(mqt_proc_run(&sp, 20000), 0);
	ck_assert_msg(mqt_raw_wait_closed(x[0], GONE_MS, NULL),
	              "mqctl kill did not close the connection");
	close(x[0]);
	close(x[1]);
	WAIT_QFIELD(s, "slow", "held", 0);

	/* Someone who reads gets everything, the dropped ones' again. */
	int y = RAW_OPEN(s);
	DO_CONSUME(y, F_AUTO_ACK, 2, "slow", 0);
	int got = 0, again = 0;
	while (got < 2 * SLOW_N) {
		struct mqt_msg m;
		EXPECT_DELIVER(y, 2, &f, &m);
		ck_assert_uint_eq(m.body_len, SLOW_BODY);
		if (m.attempts == 2)
			again++;
		else
			ck_assert_uint_eq(m.attempts, 1);
		got++;
		mqt_frame_free(&f);
	}
	ck_assert_int_eq(again, 2 * SLOW_PREFETCH);
	EXPECT_QUIET(y, QUIET_MS);
	close(y);

	/* AUTO_ACK and never reading: the output cap stops it. */
	int z = CONNECT_RCVBUF(s, 4096);
	uint64_t zid = HELLO_ID(z);
	DO_CONSUME(z, F_AUTO_ACK, 3, "flood", FLOOD_PREFETCH);
	send_many(prod, "flood", FLOOD_N, &tag);
	/* Settled: nothing more goes out over several looks. */
	long long delivered = -1, same = 0;
	int64_t end = mqt_now_ms() + GONE_MS;
	while (same < 5) {
		long long d = QFIELD(s, "flood", "delivered");
		same = d == delivered ? same + 1 : 0;
		delivered = d;
		ck_assert_msg(mqt_now_ms() < end, "deliveries never settle");
		sleep_ms(50);
	}
	long long zout = conn_bytes_out(&s, zid);
	long long ready = QFIELD(s, "flood", "ready");
	long long cap = OUTPUT_CAP + FLOOD_PREFETCH * SLOW_FRAME +
	                tcp_wmem_max() + (64 << 10);
	printf("test_consumer_never_reads: an AUTO_ACK consumer (prefetch %d) "
	       "that never reads: %lld of %d messages delivered, %lld bytes "
	       "of output (bound %lld: output cap %lld, prefetch %d, send "
	       "buffer %lld), %lld left in the queue\n", FLOOD_PREFETCH,
	       delivered, FLOOD_N, zout, cap, OUTPUT_CAP,
	       FLOOD_PREFETCH * SLOW_FRAME, tcp_wmem_max(), ready);
	fflush(stdout);
	ck_assert_msg(zout > 0 && zout <= cap, "%lld bytes of output for a "
	              "consumer that reads nothing (bound %lld)", zout, cap);
	ck_assert_int_eq(ready + delivered, FLOOD_N);
	ck_assert_msg(ready > 0, "everything was pushed at a consumer that "
	              "reads nothing");
	/* Everyone else is still served. */
	PING(prod, ++tag);
	close(z);
	close(prod);
	mqt_buf_free(&b);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* Random bytes, and well-formed frames full of lies                      */
/* ===================================================================== */

/*
 * Three kinds of garbage, each from a seeded generator (the seed is
 * printed; MQT_SEED=N repeats a run):
 *  1. before HELLO, random bytes: frames with random lengths and
 *     contents, lengths below 6 or above max_frame, plain noise;
 *  2. after HELLO, frames whose framing is right but whose payloads lie:
 *     a name, str16 or blob length beyond the frame, header and id counts
 *     of 65535 with a few entries, bits no op allows, unknown ops, and
 *     well-formed requests with absurd values (a queue of 2^32-1
 *     messages, a delay of 49 days, a prefetch of 2^32-1, 65535 ACK ids);
 *  3. connections that announce a frame of max_frame bytes and then send
 *     nothing more.
 * Every reply must be a well-formed frame and every connection must end
 * (or answer a final PING) in time; the broker must not crash, and its
 * resident set must not grow by more than what it stores plus
 * GARBAGE_RSS_SLACK: nothing is allocated by what a frame claims.
 */
#define GARBAGE_BATCH 40
#define GARBAGE_PRE 160
#define LIARS 60
#define LIES_PER_CONN 40
#define ANNOUNCERS 100
#define GARBAGE_RSS_SLACK (16LL << 20) /* measured: 5 MiB */

static void put_rnd(struct mqt_buf *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mqt_put_u8(b, (uint8_t)rnd());
}

/* Random bytes a client might send first. */
static void pre_hello_garbage(struct mqt_buf *b)
{
	switch (rnd_below(4)) {
	case 0: /* noise */
		put_rnd(b, 1 + rnd_below(2048));
		break;
	case 1: { /* plausible frames with random insides, then noise */
		int n = 1 + (int)rnd_below(4);
		for (int i = 0; i < n; i++) {
			uint32_t len = 6 + rnd_below(64);
			mqt_put_u32(b, len);
			put_rnd(b, len);
		}
		put_rnd(b, rnd_below(64));
		break;
	}
	case 2: /* above max_frame (1 MiB) */
		mqt_put_u32(b, (1u << 20) + 1 + rnd_below(0xFFEFFFFEu));
		put_rnd(b, rnd_below(512));
		break;
	default: /* below 6 */
		mqt_put_u32(b, rnd_below(6));
		put_rnd(b, rnd_below(64));
		break;
	}
}

static const char *const qnames[] = { "lie.a", "lie.b", "lie.c", "lie.d" };

static void put_qname(struct mqt_buf *b)
{
	if (rnd_below(8) == 0) { /* a name that is not one */
		uint8_t n = (uint8_t)rnd();
		mqt_put_u8(b, n);
		put_rnd(b, n);
	} else {
		mqt_put_name(b, qnames[rnd_below(4)]);
	}
}

/* A field whose length claims more than the frame holds. */
static void put_lie(struct mqt_buf *b)
{
	switch (rnd_below(5)) {
	case 0: mqt_put_u8(b, 255); put_rnd(b, rnd_below(8)); break;
	case 1: mqt_put_u16(b, 0xFFFF); put_rnd(b, rnd_below(8)); break;
	case 2: mqt_put_u32(b, 0xFFFFFFFF); put_rnd(b, rnd_below(8)); break;
	case 3: /* headers: 65535 of them, one given */
		mqt_put_u16(b, 0xFFFF);
		mqt_put_name(b, "k");
		mqt_put_str16(b, "v");
		break;
	default: put_rnd(b, rnd_below(16)); break;
	}
}

/* One well-framed request whose payload is wrong, absurd or random. */
static void liar_frame(struct mqt_buf *b, uint32_t tag)
{
	static const uint8_t ops[] = {
		MQT_HELLO, MQT_PING, MQT_DECLARE, MQT_DELETE, MQT_PURGE,
		OP_BIND, OP_UNBIND, MQT_SEND, OP_PUBLISH, MQT_GET,
		MQT_CONSUME, MQT_CANCEL, MQT_ACK, MQT_NACK, OP_SUBSCRIBE,
		OP_UNSUBSCRIBE,
	};
	uint8_t op = rnd_below(10) == 0 ? (uint8_t)rnd()
	                                 : ops[rnd_below(sizeof ops)];
	uint8_t flags = rnd_below(4) == 0 ? (uint8_t)rnd() : 0;
	size_t st = mqt_frame_begin(b, op, flags, tag);
	int how = (int)rnd_below(3);

	/* A GET that parses holds up the replies behind it until its
	 * timeout (PROTOCOL.md 4.2): GETs get a short one. */
	if (op == MQT_GET)
		how = 2;

	if (how == 0) { /* random bytes */
		put_rnd(b, rnd_below(256));
	} else if (how == 1) { /* fields, then a lie */
		put_qname(b);
		int n = (int)rnd_below(4);
		for (int i = 0; i < n; i++)
			mqt_put_u32(b, (uint32_t)rnd());
		put_lie(b);
	} else { /* well-formed, absurd values */
		switch (op) {
		case MQT_DECLARE:
			put_qname(b);
			mqt_put_u32(b, 0xFFFFFFFF);
			mqt_put_u64(b, UINT64_MAX);
			mqt_put_u8(b, (uint8_t)rnd_below(4));
			mqt_put_u32(b, 0xFFFFFFFF);
			mqt_put_u32(b, 0xFFFFFFFF);
			mqt_put_u16(b, 0xFFFF);
			mqt_put_name(b, rnd_below(2) ? qnames[rnd_below(4)] : "");
			break;
		case MQT_SEND:
		case OP_PUBLISH:
			if (op == MQT_SEND)
				put_qname(b);
			else
				mqt_put_name(b, "lie.topic.x");
			mqt_put_u32(b, (uint32_t)rnd());      /* ttl */
			mqt_put_u32(b, rnd_below(2) ? 0xFFFFFFFF : 0); /* delay */
			mqt_put_u8(b, (uint8_t)rnd_below(12)); /* priority */
			mqt_put_u16(b, 0);
			{
				uint32_t n = rnd_below(4096);
				mqt_put_u32(b, n);
				put_rnd(b, n);
			}
			break;
		case MQT_GET:
			put_qname(b);
			mqt_put_u32(b, rnd_below(20)); /* short: see above */
			break;
		case MQT_CONSUME:
			put_qname(b);
			mqt_put_u32(b, 0xFFFFFFFF);
			break;
		case MQT_ACK:
		case MQT_NACK: {
			uint16_t n = rnd_below(4) == 0 ? 0xFFFF
			                               : (uint16_t)rnd_below(64);
			if (op == MQT_NACK) {
				mqt_put_u8(b, (uint8_t)rnd_below(3));
				mqt_put_u32(b, 0xFFFFFFFF);
			}
			mqt_put_u16(b, n);
			for (unsigned i = 0; i < n; i++)
				mqt_put_u64(b, rnd());
			break;
		}
		case OP_SUBSCRIBE:
		case OP_BIND:
		case OP_UNBIND:
			if (op != OP_SUBSCRIBE)
				put_qname(b);
			mqt_put_name(b, rnd_below(2) ? ">" : "lie.*.x");
			break;
		default:
			put_rnd(b, rnd_below(64));
			break;
		}
	}
	mqt_frame_end(b, st);
}

START_TEST(test_garbage)
{
	struct mqt_server s;
	struct mqt_buf b;
	struct mqt_frame f;
	int fds[GARBAGE_BATCH], codes[17] = { 0 }, frames = 0, other = 0;

	seed_rng("test_garbage");
	want_fds(ANNOUNCERS + 64);
	START_EXTRA(s, "log_level = info\n");
	mqt_buf_init(&b);
	long long rss0 = rss_bytes(s.pid);

	/* 1. Before HELLO. */
	for (int done = 0; done < GARBAGE_PRE; done += GARBAGE_BATCH) {
		for (int i = 0; i < GARBAGE_BATCH; i++) {
			fds[i] = RAW_CONNECT(s);
			pre_hello_garbage(&b);
			/* The broker may close before it has read it all. */
			(void)mqt_raw_send_buf(fds[i], &b);
			mqt_buf_reset(&b);
			shutdown(fds[i], SHUT_WR);
		}
		for (int i = 0; i < GARBAGE_BATCH; i++) {
			int rc;
			while ((rc = mqt_raw_read(fds[i], &f, RD_MS)) ==
			       MQT_RD_FRAME) {
				int c = mqt_error_code(&f);
				frames++;
				if (c > 0 && c <= 16)
					codes[c]++;
				else
					other++;
				mqt_frame_free(&f);
			}
			ck_assert_msg(rc == MQT_RD_EOF, "garbage connection: "
			              "%s", rd_str(rc));
			close(fds[i]);
		}
	}
	printf("test_garbage: %d connections of noise: %d replies: "
	       "BAD_FRAME %d, FRAME_TOO_LARGE %d, HELLO_REQUIRED %d, "
	       "UNSUPPORTED_VERSION %d, BAD_ARGUMENT %d, other %d\n",
	       GARBAGE_PRE, frames, codes[1], codes[2], codes[8], codes[9],
	       codes[4], other);

	/* 2. After HELLO, frames that lie. */
	memset(codes, 0, sizeof codes);
	frames = other = 0;
	for (int i = 0; i < LIARS; i++) {
		int fd = RAW_OPEN(s);
		for (int k = 0; k < LIES_PER_CONN; k++)
			liar_frame(&b, 1000 + (uint32_t)k);
		mqt_enc_ping(&b, 0x7FFFFFFF, "end", 3);
		SENDB(fd, &b);
		for (;;) {
			int rc = mqt_raw_read(fd, &f, RD_MS);
			ck_assert_msg(rc == MQT_RD_FRAME, "liar %d: %s before the "
			              "final PONG", i, rd_str(rc));
			if (f.op == MQT_PONG && f.tag == 0x7FFFFFFF) {
				mqt_frame_free(&f);
				break;
			}
			int c = mqt_error_code(&f);
			ck_assert_msg(f.op != MQT_ERROR || c > 0,
			              "a malformed ERROR: %s", mqt_frame_str(&f));
			/* Well framed: nothing closes the connection. */
			ck_assert_msg(c != 1 && c != 2 && c != 8 && c != 9 &&
			              c != 15, "liar %d: %s", i,
			              mqt_frame_str(&f));
			frames++;
			if (c > 0 && c <= 16)
				codes[c]++;
			else
				other++;
			mqt_frame_free(&f);
		}
		close(fd);
	}
	printf("test_garbage: %d connections x %d lying frames: %d replies: "
	       "BAD_ARGUMENT %d, UNKNOWN_OP %d, NOT_FOUND %d, CONFLICT %d, "
	       "QUEUE_FULL %d, FORBIDDEN %d, INTERNAL %d, not errors %d\n",
	       LIARS, LIES_PER_CONN, frames, codes[4], codes[3], codes[5],
	       codes[7], codes[6], codes[12], codes[16], other);
	ck_assert_int_eq(codes[16], 0);

	/* 3. A frame of max_frame announced, never sent. */
	static int ann[ANNOUNCERS];
	for (int i = 0; i < ANNOUNCERS; i++) {
		ann[i] = i % 2 ? RAW_OPEN(s) : RAW_CONNECT(s);
		uint8_t hdr[10] = { 0x00, 0x10, 0x00, 0x00, MQT_PING, 0,
		                    0, 0, 0, 9 };
		ck_assert_int_eq(mqt_raw_send(ann[i], hdr, sizeof hdr), 0);
	}
	int probe = RAW_OPEN(s);
	PING(probe, 1); /* they have all been read by now */
	long long rss_ann = rss_bytes(s.pid);
	for (int i = 0; i < ANNOUNCERS; i++)
		close(ann[i]);

	long long stored = ACCOUNTED(s);
	long long rss1 = rss_bytes(s.pid);
	printf("test_garbage: RSS %lld KiB at start, %lld KiB with %d "
	       "connections each announcing a %d-byte frame, %lld KiB at the "
	       "end with %lld KiB of messages stored (slack %lld KiB%s)\n",
	       rss0 / 1024, rss_ann / 1024, ANNOUNCERS, 1 << 20, rss1 / 1024,
	       stored / 1024, GARBAGE_RSS_SLACK / 1024,
	       rss_checked ? "" : "; not checked under a sanitizer");
	fflush(stdout);
	if (rss_checked) {
		ck_assert_msg(rss_ann - rss0 <= stored + GARBAGE_RSS_SLACK,
		              "RSS grew by %lld KiB with frames announced but "
		              "not sent", (rss_ann - rss0) / 1024);
		ck_assert_msg(rss1 - rss0 <= stored + GARBAGE_RSS_SLACK,
		              "RSS grew by %lld KiB, %lld KiB of it not "
		              "messages", (rss1 - rss0) / 1024,
		              (rss1 - rss0 - stored) / 1024);
	}
	/* Still serving. */
	DO_SEND(probe, 2, "after.garbage", 0, "fine");
	GET_BODY(probe, 3, "after.garbage", F_AUTO_ACK, "fine", 1);
	close(probe);
	mqt_buf_free(&b);
	STOP(s);
}
END_TEST

/* ===================================================================== */
/* A producer flooding past max_memory                                   */
/* ===================================================================== */

/*
 * max_memory = 16M; a producer pipelines FLOOD_SENDS QUIET SENDs of
 * FLOOD_BODY bytes (32 MiB) over four queues (so several owners take
 * them).  Past the limit each is refused with MEMORY_LIMIT; what is stored
 * stays within max_memory (accounted_bytes), and the broker's resident set
 * within max_memory + MAXMEM_OVERHEAD.  Then the queues are drained and
 * flooded once more: the bound holds again (freed memory is reused, not
 * added to).
 *
 * MAXMEM_OVERHEAD, documented in mqd.conf(5) under max_memory: the
 * process itself (code, libraries, four workers' stacks and event loops:
 * 3-4 MiB at start), malloc's per-thread arenas and the slack between
 * message chunks, and the two connections' buffers (a frame being read;
 * replies).  Measured on glibc with 4 workers, over six rounds: 3.6 to
 * 7.5 MiB above max_memory, also with 1000- and 128-byte bodies (where
 * malloc's own 8 to 16 bytes a message, which max_memory does not count,
 * come on top: 100,000 messages of 128 bytes in 16 MiB).  The bound leaves
 * room for transparent huge pages, which can round each arena up by 2 MiB.
 * -DFLOOD_BODY=N -DFLOOD_SENDS=N -DFLOOD_ROUNDS=N measures other shapes.
 */
#define MAXMEM (16LL << 20)
#define MAXMEM_OVERHEAD (24LL << 20)
#ifndef FLOOD_BODY
#define FLOOD_BODY (32 << 10)
#define FLOOD_SENDS 1024
#endif
#ifndef FLOOD_ROUNDS
#define FLOOD_ROUNDS 2
#endif

/* Flood; the number of SENDs refused with MEMORY_LIMIT. */
static int flood(int fd, uint32_t *tag)
{
	static char body[FLOOD_BODY];
	struct mqt_buf b;
	struct mqt_frame f;
	int refused = 0;
	uint32_t first = *tag + 1;

	memset(body, 'f', sizeof body);
	mqt_buf_init(&b);
	for (int i = 0; i < FLOOD_SENDS; i++) {
		mqt_enc_send(&b, F_QUIET, ++*tag, qnames[i % 4], 0, body,
		             sizeof body);
		if (b.len >= (512u << 10))
			SENDB(fd, &b);
	}
	mqt_enc_ping(&b, ++*tag, "sync", 4);
	SENDB(fd, &b);
	for (;;) {
		int rc = mqt_raw_read(fd, &f, RD_MS);
		ck_assert_msg(rc == MQT_RD_FRAME, "flood: %s", rd_str(rc));
		if (f.op == MQT_PONG) {
			ck_assert_uint_eq(f.tag, *tag);
			mqt_frame_free(&f);
			break;
		}
		ck_assert_msg(mqt_error_code(&f) == E_MEMORY_LIMIT &&
		              f.tag >= first && f.tag < *tag,
		              "flood: %s", mqt_frame_str(&f));
		refused++;
		mqt_frame_free(&f);
	}
	mqt_buf_free(&b);
	return refused;
}

static void drain_all(const struct mqt_server *s, int fd, uint32_t *tag)
{
	struct mqt_frame f;
	for (int q = 0; q < 4; q++) {
		long long n = queue_field_at(__LINE__, s, qnames[q], "ready");
		uint32_t t = ++*tag;
		DO_CONSUME(fd, F_AUTO_ACK, t, qnames[q], 0);
		for (long long i = 0; i < n; i++) {
			EXPECT(fd, &f, MQT_DELIVER, t);
			mqt_frame_free(&f);
		}
		DO_CANCEL(fd, ++*tag, t);
	}
}

START_TEST(test_max_memory_flood)
{
	struct mqt_server s;
	uint32_t tag = 10;
	long long rss[FLOOD_ROUNDS], acc[FLOOD_ROUNDS];
	int refused[FLOOD_ROUNDS];

	START_EXTRA(s, "max_memory = 16M\nlog_level = info\n");
	long long rss0 = rss_bytes(s.pid);
	int prod = RAW_OPEN(s);
	int cons = RAW_OPEN(s);
	for (int round = 0; round < FLOOD_ROUNDS; round++) {
		refused[round] = flood(prod, &tag);
		acc[round] = ACCOUNTED(s);
		rss[round] = rss_bytes(s.pid);
		printf("test_max_memory_flood: round %d: %d of %d SENDs of "
		       "%d bytes refused with MEMORY_LIMIT; %lld KiB "
		       "accounted; RSS %lld KiB (%lld KiB at start): %lld KiB "
		       "over max_memory (bound %lld KiB%s)\n", round + 1,
		       refused[round], FLOOD_SENDS, FLOOD_BODY,
		       acc[round] / 1024, rss[round] / 1024, rss0 / 1024,
		       (rss[round] - MAXMEM) / 1024, MAXMEM_OVERHEAD / 1024,
		       rss_checked ? "" : "; not checked under a sanitizer");
		fflush(stdout);
		ck_assert_msg(refused[round] > 0 &&
		              refused[round] < FLOOD_SENDS,
		              "%d of %d refused", refused[round], FLOOD_SENDS);
		ck_assert_msg(acc[round] <= MAXMEM, "%lld bytes accounted "
		              "under max_memory = %lld", acc[round], MAXMEM);
		ck_assert_msg((long long)(FLOOD_SENDS - refused[round]) *
		              FLOOD_BODY <= MAXMEM, "%d bodies of %d stored",
		              FLOOD_SENDS - refused[round], FLOOD_BODY);
		if (rss_checked)
			ck_assert_msg(rss[round] <= MAXMEM + MAXMEM_OVERHEAD,
			              "RSS %lld KiB over max_memory %lld KiB + "
			              "%lld KiB", rss[round] / 1024,
			              MAXMEM / 1024, MAXMEM_OVERHEAD / 1024);
		/* The producer was refused, not cut off; others are served. */
		PING(prod, ++tag);
		PING(cons, ++tag);
		drain_all(&s, cons, &tag);
	}
	close(prod);
	close(cons);
	STOP(s);
}
END_TEST

/* ===================================================================== */

static Suite *hostile_suite(void)
{
	Suite *su = suite_create("hostile");
	ADD_T(su, test_idle_half_frames, 60);
	ADD(su, test_idle_never_reads);
	ADD(su, test_max_connections);
	ADD_T(su, test_fd_exhaustion, 60);
	ADD(su, test_fd_limit_raised);
	ADD(su, test_consumer_never_reads);
	ADD(su, test_garbage);
	ADD(su, test_max_memory_flood);
	return su;
}

int main(void)
{
	return mqt_run_suite(hostile_suite());
}
