#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * The integration-test harness (see harness.h).  Processes (the broker,
 * the mq CLI) are started through proc.h, which gives them
 * PR_SET_PDEATHSIG.  Brokers started here are also remembered in a small
 * table so that an atexit() hook can kill them, print their logs and
 * remove their temp dirs when a test returns without stopping them; a
 * failed assertion ends the test with _exit(), and the janitor below
 * cleans up after that.
 */

#include "harness.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define START_LIMIT_MS 10000
#define STOP_LIMIT_MS 10000
#define CLI_LIMIT_MS 20000
#define DUMP_MAX (64 * 1024)
/* Largest frame a server may send: max_frame (default 1 MiB) + 4096; the
 * tests never raise max_frame much, so allow generously. */
#define READ_FRAME_MAX (64u * 1024 * 1024)

/* ---- time ------------------------------------------------------------------ */

int64_t mqt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mqt_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ---- the table of live brokers ------------------------------------------------ */

#define LIVE_MAX 32

struct live {
	pid_t owner; /* the test process that started it */
	pid_t pid;
	char dir[MQT_PATH_MAX];
	char log_path[MQT_PATH_MAX];
	char stderr_path[MQT_PATH_MAX];
};
static struct live live[LIVE_MAX];
static int write_all_fd(int fd, const char *p, size_t n);
static bool hook_installed;
static long last_stop_ms;

static void dump_file(const char *what, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "---- %s (%s): cannot open: %s\n", what, path,
		        strerror(errno));
		return;
	}
	long size = 0;
	if (fseek(f, 0, SEEK_END) == 0)
		size = ftell(f);
	long from = size > DUMP_MAX ? size - DUMP_MAX : 0;
	fseek(f, from, SEEK_SET);
	fprintf(stderr, "---- %s (%s)%s ----\n", what, path,
	        from ? ", last 64 KiB" : "");
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		fwrite(buf, 1, n, stderr);
	fprintf(stderr, "---- end of %s ----\n", what);
	fclose(f);
}

static void dump_paths(const char *log_path, const char *stderr_path)
{
	dump_file("mqd log", log_path);
	dump_file("mqd stderr", stderr_path);
	fflush(stderr);
}

void mqt_server_dump(const struct mqt_server *s)
{
	dump_paths(s->log_path, s->stderr_path);
}

static void remove_dir(const char *dir)
{
	mqt_rm_rf(dir);
}

/*
 * The janitor.  Check's fork mode ends a failed test with _exit(), which
 * runs no atexit() hook, so cleanup that must happen on every path lives in
 * a separate process: it reads "+PID DIR" / "-PID DIR" lines from a pipe
 * whose write end only the test process holds.  When the pipe reaches EOF
 * (the test process is gone, however it ended), every broker not stopped
 * cleanly is killed (PR_SET_PDEATHSIG has normally done that already), its
 * log is printed to stderr and its temp dir removed.  It calls setsid() so
 * that Check's kill of the test's process group on a timeout spares it.
 */
static int janitor_fd = -1;
static pid_t janitor_owner;

struct jentry {
	pid_t pid;
	char dir[MQT_PATH_MAX];
};

static void janitor_run(int rfd)
{
	static struct jentry e[LIVE_MAX];
	char buf[2 * MQT_PATH_MAX];
	size_t have = 0;
	setsid();
	for (;;) {
		ssize_t r = read(rfd, buf + have, sizeof buf - 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		char *nl;
		while ((nl = memchr(buf, '\n', have)) != NULL) {
			*nl = '\0';
			char op = buf[0];
			char *sp = strchr(buf, ' ');
			pid_t pid = (pid_t)atoi(buf + 1);
			if (sp && op == '+') {
				for (int i = 0; i < LIVE_MAX; i++)
					if (!e[i].pid) {
						e[i].pid = pid;
						snprintf(e[i].dir, sizeof e[i].dir,
						         "%s", sp + 1);
						break;
					}
			} else if (op == '-') {
				for (int i = 0; i < LIVE_MAX; i++)
					if (e[i].pid == pid)
						e[i].pid = 0;
			}
			size_t used = (size_t)(nl - buf) + 1;
			memmove(buf, nl + 1, have - used);
			have -= used;
		}
	}
	for (int i = 0; i < LIVE_MAX; i++) {
		if (!e[i].pid)
			continue;
		char log_path[MQT_PATH_MAX + 16], err_path[MQT_PATH_MAX + 16];
		fprintf(stderr, "harness: the test process ended without "
		        "stopping mqd (pid %d); killing it\n", (int)e[i].pid);
		kill(e[i].pid, SIGKILL);
		snprintf(log_path, sizeof log_path, "%s/mqd.log", e[i].dir);
		snprintf(err_path, sizeof err_path, "%s/stderr.log", e[i].dir);
		dump_paths(log_path, err_path);
		remove_dir(e[i].dir);
	}
	_exit(0);
}

static void janitor_note(char op, pid_t pid, const char *dir)
{
	if (janitor_fd < 0 || janitor_owner != getpid()) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) != 0)
			return;
		fflush(NULL);
		pid_t j = fork();
		if (j < 0) {
			close(p[0]);
			close(p[1]);
			return;
		}
		if (j == 0) {
			/* Keep only the pipe and stdio: holding any other
			 * descriptor (Check's, a test socket) could keep
			 * something open after the test ends. */
			close(p[1]);
			for (int fd = 3; fd < 4096; fd++)
				if (fd != p[0])
					close(fd);
			janitor_run(p[0]);
		}
		close(p[0]);
		janitor_fd = p[1];
		janitor_owner = getpid();
	}
	char line[MQT_PATH_MAX + 32];
	int n = snprintf(line, sizeof line, "%c%d %s\n", op, (int)pid, dir);
	if (n > 0 && (size_t)n < sizeof line)
		(void)write_all_fd(janitor_fd, line, (size_t)n);
}

void mqt_watch(pid_t pid, const char *dir)
{
	janitor_note('+', pid, dir);
}

void mqt_unwatch(pid_t pid)
{
	janitor_note('-', pid, "");
}

static void kill_leftovers(void)
{
	for (int i = 0; i < LIVE_MAX; i++) {
		struct live *l = &live[i];
		if (!l->pid || l->owner != getpid())
			continue;
		fprintf(stderr, "harness: the test ended with mqd (pid %d) "
		        "still running; killing it\n", (int)l->pid);
		struct mqt_proc p = mqt_proc_of(l->pid, "mqd");
		mqt_proc_kill(&p);
		dump_paths(l->log_path, l->stderr_path);
		remove_dir(l->dir);
		janitor_note('-', l->pid, l->dir);
		l->pid = 0;
	}
}

static void live_add(const struct mqt_server *s)
{
	if (!hook_installed) {
		atexit(kill_leftovers);
		hook_installed = true;
	}
	for (int i = 0; i < LIVE_MAX; i++) {
		if (live[i].pid && live[i].owner == getpid())
			continue;
		live[i].owner = getpid();
		live[i].pid = s->pid;
		snprintf(live[i].dir, sizeof live[i].dir, "%s", s->dir);
		snprintf(live[i].log_path, sizeof live[i].log_path, "%s",
		         s->log_path);
		snprintf(live[i].stderr_path, sizeof live[i].stderr_path, "%s",
		         s->stderr_path);
		janitor_note('+', s->pid, s->dir);
		return;
	}
	fprintf(stderr, "harness: more than %d brokers at once\n", LIVE_MAX);
}

static void live_del(pid_t pid)
{
	for (int i = 0; i < LIVE_MAX; i++)
		if (live[i].pid == pid && live[i].owner == getpid()) {
			janitor_note('-', pid, live[i].dir);
			live[i].pid = 0;
		}
}

/* ---- start and stop ---------------------------------------------------------- */

static int write_all_fd(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Whether text has a line "key = ..." (mqd refuses a key given twice in
 * a section, so a default the harness writes must give way to it). */
static bool sets_key(const char *text, const char *key)
{
	size_t n = strlen(key);
	const char *p = text;

	while (p != NULL && *p != '\0') {
		p += strspn(p, " \t");
		if (strncmp(p, key, n) == 0 &&
		    p[n + strspn(p + n, " \t")] == '=')
			return true;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return false;
}

static int write_conf(const struct mqt_server *s, const char *extra,
                      const char *sections)
{
	int fd = open(s->conf_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	              0644);
	if (fd < 0)
		return -1;
	char head[2 * MQT_PATH_MAX];
	snprintf(head, sizeof head,
	         "# written by the mqd test harness\n"
	         "[server]\n"
	         "listen = 127.0.0.1:0\n"
	         "log_file = %s\n"
	         "%s%s"
	         "control_socket = %s\n",
	         s->log_path,
	         extra && sets_key(extra, "log_level") ? ""
	                                               : "log_level = debug\n",
	         extra && sets_key(extra, "workers") ? "" : "workers = 4\n",
	         s->ctl_path);
	int rc = write_all_fd(fd, head, strlen(head));
	if (rc == 0 && extra) {
		rc = write_all_fd(fd, extra, strlen(extra));
		if (rc == 0 && extra[0] && extra[strlen(extra) - 1] != '\n')
			rc = write_all_fd(fd, "\n", 1);
	}
	if (rc == 0 && sections) {
		rc = write_all_fd(fd, "\n", 1);
		if (rc == 0)
			rc = write_all_fd(fd, sections, strlen(sections));
		if (rc == 0 && sections[0] &&
		    sections[strlen(sections) - 1] != '\n')
			rc = write_all_fd(fd, "\n", 1);
	}
	if (close(fd) != 0)
		rc = -1;
	return rc;
}

/* Look for "listening on 127.0.0.1:PORT" followed by a line end in the log.
 * Returns the port, or 0 when the line is not (wholly) there yet. */
static uint16_t find_port(const char *log_path)
{
	static const char needle[] = "listening on 127.0.0.1:";
	FILE *f = fopen(log_path, "r");
	if (!f)
		return 0;
	char line[8192];
	uint16_t port = 0;
	while (!port && fgets(line, sizeof line, f)) {
		char *p = strstr(line, needle);
		if (!p)
			continue;
		p += sizeof needle - 1;
		char *end;
		errno = 0;
		unsigned long v = strtoul(p, &end, 10);
		if (end == p || errno || v == 0 || v > 65535)
			continue;
		/* The whole line must be there: a torn read could cut the
		 * port's digits short. */
		if (*end == '\0')
			continue;
		port = (uint16_t)v;
	}
	fclose(f);
	return port;
}

static const char *status_str(int st, char *buf, size_t n)
{
	if (WIFEXITED(st))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(st),
		         strsignal(WTERMSIG(st)));
	else
		snprintf(buf, n, "wait status 0x%x", st);
	return buf;
}

int mqt_server_start(struct mqt_server *s, const char *extra)
{
	return mqt_server_start_conf(s, extra, NULL);
}

int mqt_server_start_conf(struct mqt_server *s, const char *extra,
                          const char *sections)
{
	return mqt_server_start_opts(s, extra, sections, NULL);
}

int mqt_server_start_opts(struct mqt_server *s, const char *extra,
                          const char *sections,
                          const struct mqt_server_opts *opts)
{
	memset(s, 0, sizeof *s);
	const char *bin = getenv("MQD_BIN");
	if (!bin || !bin[0]) {
		fprintf(stderr, "harness: MQD_BIN is not set (run the tests "
		        "with make check)\n");
		return -1;
	}
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !tmp[0])
		tmp = "/tmp";
	snprintf(s->dir, sizeof s->dir, "%s/mqd-test.XXXXXX", tmp);
	if (!mkdtemp(s->dir)) {
		fprintf(stderr, "harness: mkdtemp %s: %s\n", s->dir,
		        strerror(errno));
		s->dir[0] = '\0';
		return -1;
	}
	snprintf(s->conf_path, sizeof s->conf_path, "%s/mqd.conf", s->dir);
	if ((size_t)snprintf(s->ctl_path, sizeof s->ctl_path, "%s/ctl.sock",
	                     s->dir) >= sizeof s->ctl_path) {
		fprintf(stderr, "harness: temp dir too long for a socket path\n");
		remove_dir(s->dir);
		return -1;
	}
	snprintf(s->log_path, sizeof s->log_path, "%s/mqd.log", s->dir);
	snprintf(s->stderr_path, sizeof s->stderr_path, "%s/stderr.log",
	         s->dir);
	if (write_conf(s, extra, sections) != 0) {
		fprintf(stderr, "harness: writing %s: %s\n", s->conf_path,
		        strerror(errno));
		remove_dir(s->dir);
		return -1;
	}
	/* stdout and stderr both to stderr.log; a daemon starts with the
	 * default signal state, which mqt_proc_start gives it. */
	char *argv[] = { (char *)bin, (char *)"-c", s->conf_path, NULL };
	struct mqt_spawn sp = {
		.argv = argv,
		.out = MQT_IO_FILE, .out_path = s->stderr_path,
		.err = MQT_IO_STDOUT,
		.nofile = opts ? opts->nofile : NULL,
	};
	struct mqt_proc p;
	if (mqt_proc_start(&p, &sp) != 0) {
		remove_dir(s->dir);
		return -1;
	}
	pid_t pid = p.pid;
	s->pid = pid;
	live_add(s);

	int64_t deadline = mqt_now_ms() + START_LIMIT_MS;
	for (;;) {
		if (!mqt_proc_running(&p)) {
			char b[128];
			fprintf(stderr, "harness: mqd %s before it listened "
			        "(config %s)\n",
			        status_str(p.wstatus, b, sizeof b), s->conf_path);
			dump_file("mqd.conf", s->conf_path);
			mqt_server_dump(s);
			live_del(pid);
			s->pid = 0;
			remove_dir(s->dir);
			return -1;
		}
		uint16_t port = find_port(s->log_path);
		if (port) {
			s->port = port;
			snprintf(s->addr, sizeof s->addr, "127.0.0.1:%u",
			         (unsigned)port);
			return 0;
		}
		if (mqt_now_ms() > deadline) {
			fprintf(stderr, "harness: mqd did not log \"listening "
			        "on 127.0.0.1:PORT\" within %d ms\n",
			        START_LIMIT_MS);
			mqt_proc_kill(&p);
			dump_file("mqd.conf", s->conf_path);
			mqt_server_dump(s);
			live_del(pid);
			s->pid = 0;
			remove_dir(s->dir);
			return -1;
		}
		pause_ms(5);
	}
}

bool mqt_server_alive(struct mqt_server *s)
{
	if (!s->pid)
		return false;
	struct mqt_proc p = mqt_proc_of(s->pid, "mqd");
	if (mqt_proc_running(&p))
		return true;
	char b[128];
	fprintf(stderr, "harness: mqd (pid %d) %s\n", (int)s->pid,
	        p.status == -1 ? "vanished"
	                       : status_str(p.wstatus, b, sizeof b));
	live_del(s->pid);
	s->pid = 0;
	return false;
}

long mqt_server_last_stop_ms(void)
{
	return last_stop_ms;
}

int mqt_server_stop(struct mqt_server *s)
{
	int result;
	if (!s->pid) {
		fprintf(stderr, "harness: mqt_server_stop: broker not running "
		        "(it already exited)\n");
		mqt_server_dump(s);
		remove_dir(s->dir);
		return -1;
	}
	int64_t t0 = mqt_now_ms();
	struct mqt_proc p = mqt_proc_of(s->pid, "mqd");
	result = mqt_proc_stop(&p, SIGTERM, STOP_LIMIT_MS);
	last_stop_ms = (long)(mqt_now_ms() - t0);
	if (result == -1 && last_stop_ms >= STOP_LIMIT_MS) {
		fprintf(stderr, "harness: mqd did not exit within %d ms of "
		        "SIGTERM; killed it\n", STOP_LIMIT_MS);
	} else if (result == -1) {
		fprintf(stderr, "harness: mqd (pid %d) vanished: reaped by "
		        "someone else\n", (int)s->pid);
	} else if (result != 0) {
		char b[128];
		fprintf(stderr, "harness: mqd %s after SIGTERM\n",
		        status_str(p.wstatus, b, sizeof b));
	}
	if (result != 0)
		mqt_server_dump(s);
	live_del(s->pid);
	s->pid = 0;
	remove_dir(s->dir);
	return result;
}

mq_conn *mqt_connect(const struct mqt_server *s)
{
	mq_conn *c = NULL;
	int rc = mq_connect(&c, s->addr, "mqt");
	if (rc != 0) {
		fprintf(stderr, "harness: mq_connect %s: %s\n", s->addr,
		        mq_strerror(rc));
		return NULL;
	}
	return c;
}

/* ---- building frames ------------------------------------------------------------ */

void mqt_buf_init(struct mqt_buf *b)
{
	b->p = NULL;
	b->len = b->cap = 0;
}

void mqt_buf_free(struct mqt_buf *b)
{
	free(b->p);
	mqt_buf_init(b);
}

void mqt_buf_reset(struct mqt_buf *b)
{
	b->len = 0;
}

void mqt_put_bytes(struct mqt_buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *q = realloc(b->p, cap);
		if (!q) {
			fprintf(stderr, "harness: out of memory\n");
			abort();
		}
		b->p = q;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

void mqt_put_u8(struct mqt_buf *b, uint8_t v)
{
	mqt_put_bytes(b, &v, 1);
}

void mqt_put_u16(struct mqt_buf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	mqt_put_bytes(b, x, 2);
}

void mqt_put_u32(struct mqt_buf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
		         (uint8_t)(v >> 8), (uint8_t)v };
	mqt_put_bytes(b, x, 4);
}

void mqt_put_u64(struct mqt_buf *b, uint64_t v)
{
	mqt_put_u32(b, (uint32_t)(v >> 32));
	mqt_put_u32(b, (uint32_t)v);
}

void mqt_put_name(struct mqt_buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n > 255)
		n = 255;
	mqt_put_u8(b, (uint8_t)n);
	mqt_put_bytes(b, s, n);
}

void mqt_put_str16(struct mqt_buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	mqt_put_u16(b, (uint16_t)n);
	mqt_put_bytes(b, s, n);
}

void mqt_put_blob(struct mqt_buf *b, const void *p, size_t n)
{
	mqt_put_u32(b, (uint32_t)n);
	mqt_put_bytes(b, p, n);
}

size_t mqt_frame_begin(struct mqt_buf *b, uint8_t op, uint8_t flags,
                       uint32_t tag)
{
	size_t start = b->len;
	mqt_put_u32(b, 0);
	mqt_put_u8(b, op);
	mqt_put_u8(b, flags);
	mqt_put_u32(b, tag);
	return start;
}

void mqt_frame_end(struct mqt_buf *b, size_t start)
{
	uint32_t len = (uint32_t)(b->len - start - 4);
	b->p[start] = (uint8_t)(len >> 24);
	b->p[start + 1] = (uint8_t)(len >> 16);
	b->p[start + 2] = (uint8_t)(len >> 8);
	b->p[start + 3] = (uint8_t)len;
}

void mqt_enc_hello(struct mqt_buf *b, uint32_t tag, uint8_t version,
                   const char *client)
{
	size_t st = mqt_frame_begin(b, MQT_HELLO, 0, tag);
	mqt_put_u8(b, version);
	mqt_put_name(b, client);
	mqt_put_name(b, "");
	mqt_put_str16(b, "");
	mqt_frame_end(b, st);
}

void mqt_enc_ping(struct mqt_buf *b, uint32_t tag, const void *p, size_t n)
{
	size_t st = mqt_frame_begin(b, MQT_PING, 0, tag);
	mqt_put_bytes(b, p, n);
	mqt_frame_end(b, st);
}

void mqt_enc_declare(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                     const char *queue, const struct mq_queue_opts *o)
{
	static const struct mq_queue_opts zero;
	if (!o)
		o = &zero;
	size_t st = mqt_frame_begin(b, MQT_DECLARE, flags, tag);
	mqt_put_name(b, queue);
	mqt_put_u32(b, o->max_length);
	mqt_put_u64(b, o->max_bytes);
	mqt_put_u8(b, o->overflow);
	mqt_put_u32(b, o->message_ttl_ms);
	mqt_put_u32(b, o->ack_timeout_ms);
	mqt_put_u16(b, o->max_attempts);
	mqt_put_name(b, o->dead_letter ? o->dead_letter : "");
	mqt_frame_end(b, st);
}

void mqt_enc_queue_op(struct mqt_buf *b, uint8_t op, uint8_t flags,
                      uint32_t tag, const char *queue)
{
	size_t st = mqt_frame_begin(b, op, flags, tag);
	mqt_put_name(b, queue);
	mqt_frame_end(b, st);
}

void mqt_enc_send(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                  const char *queue, uint8_t priority, const void *body,
                  size_t len)
{
	size_t st = mqt_frame_begin(b, MQT_SEND, flags, tag);
	mqt_put_name(b, queue);
	mqt_put_u32(b, 0); /* ttl */
	mqt_put_u32(b, 0); /* delay */
	mqt_put_u8(b, priority);
	mqt_put_u16(b, 0); /* no headers */
	mqt_put_blob(b, body, len);
	mqt_frame_end(b, st);
}

void mqt_enc_get(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                 const char *queue, uint32_t timeout_ms)
{
	size_t st = mqt_frame_begin(b, MQT_GET, flags, tag);
	mqt_put_name(b, queue);
	mqt_put_u32(b, timeout_ms);
	mqt_frame_end(b, st);
}

void mqt_enc_consume(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                     const char *queue, uint32_t prefetch)
{
	size_t st = mqt_frame_begin(b, MQT_CONSUME, flags, tag);
	mqt_put_name(b, queue);
	mqt_put_u32(b, prefetch);
	mqt_frame_end(b, st);
}

void mqt_enc_cancel(struct mqt_buf *b, uint32_t tag, uint32_t which)
{
	size_t st = mqt_frame_begin(b, MQT_CANCEL, 0, tag);
	mqt_put_u32(b, which);
	mqt_frame_end(b, st);
}

void mqt_enc_ack(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                 const uint64_t *ids, uint16_t n)
{
	size_t st = mqt_frame_begin(b, MQT_ACK, flags, tag);
	mqt_put_u16(b, n);
	for (uint16_t i = 0; i < n; i++)
		mqt_put_u64(b, ids[i]);
	mqt_frame_end(b, st);
}

void mqt_enc_nack(struct mqt_buf *b, uint8_t flags, uint32_t tag,
                  uint8_t requeue, uint32_t delay_ms, const uint64_t *ids,
                  uint16_t n)
{
	size_t st = mqt_frame_begin(b, MQT_NACK, flags, tag);
	mqt_put_u8(b, requeue);
	mqt_put_u32(b, delay_ms);
	mqt_put_u16(b, n);
	for (uint16_t i = 0; i < n; i++)
		mqt_put_u64(b, ids[i]);
	mqt_frame_end(b, st);
}

/* ---- raw sockets ------------------------------------------------------------------ */

int mqt_raw_connect(const struct mqt_server *s)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "harness: socket: %s\n", strerror(errno));
		return -1;
	}
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(s->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int rc;
	do
		rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	while (rc != 0 && errno == EINTR);
	if (rc != 0) {
		fprintf(stderr, "harness: connect %s: %s\n", s->addr,
		        strerror(errno));
		close(fd);
		return -1;
	}
	struct timeval tv = { 10, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

int mqt_raw_send(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;
	while (n > 0) {
		ssize_t w = send(fd, q, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

int mqt_raw_send_buf(int fd, const struct mqt_buf *b)
{
	return mqt_raw_send(fd, b->p, b->len);
}

/* Read exactly n bytes before the deadline.  Returns 1, MQT_RD_EOF on a
 * close or reset, MQT_RD_TIMEOUT, or MQT_RD_ERROR. */
static int read_exact(int fd, uint8_t *p, size_t n, int64_t deadline)
{
	size_t got = 0;
	while (got < n) {
		int64_t left = deadline - mqt_now_ms();
		if (left < 0)
			left = 0;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int pr = poll(&pfd, 1, (int)left);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			return MQT_RD_ERROR;
		}
		if (pr == 0)
			return MQT_RD_TIMEOUT;
		ssize_t r = recv(fd, p + got, n - got, 0);
		if (r == 0)
			return MQT_RD_EOF;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == EWOULDBLOCK)
				continue;
			if (errno == ECONNRESET || errno == EPIPE)
				return MQT_RD_EOF;
			return MQT_RD_ERROR;
		}
		got += (size_t)r;
	}
	return 1;
}

void mqt_frame_free(struct mqt_frame *f)
{
	free(f->payload);
	f->payload = NULL;
	f->len = 0;
}

int mqt_raw_read(int fd, struct mqt_frame *f, int timeout_ms)
{
	memset(f, 0, sizeof *f);
	int64_t deadline = mqt_now_ms() + timeout_ms;
	uint8_t hdr[10];
	int rc = read_exact(fd, hdr, 4, deadline);
	if (rc != 1)
		return rc;
	uint32_t length = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	                  (uint32_t)hdr[2] << 8 | hdr[3];
	if (length < 6 || length > READ_FRAME_MAX) {
		fprintf(stderr, "harness: server sent a frame with length %u\n",
		        length);
		return MQT_RD_ERROR;
	}
	/* Once a frame has begun, give the rest a little longer: a torn
	 * frame is a server bug, not a negative. */
	rc = read_exact(fd, hdr + 4, 6, deadline + 5000);
	if (rc != 1)
		return rc == MQT_RD_TIMEOUT ? MQT_RD_ERROR : rc;
	f->op = hdr[4];
	f->flags = hdr[5];
	f->tag = (uint32_t)hdr[6] << 24 | (uint32_t)hdr[7] << 16 |
	         (uint32_t)hdr[8] << 8 | hdr[9];
	f->len = length - 6;
	f->payload = malloc((size_t)f->len + 1);
	if (!f->payload)
		return MQT_RD_ERROR;
	rc = read_exact(fd, f->payload, f->len, deadline + 5000);
	if (rc != 1) {
		mqt_frame_free(f);
		return rc == MQT_RD_TIMEOUT ? MQT_RD_ERROR : rc;
	}
	f->payload[f->len] = 0;
	return MQT_RD_FRAME;
}

int mqt_raw_hello(int fd)
{
	struct mqt_buf b;
	mqt_buf_init(&b);
	mqt_enc_hello(&b, 1, 1, "mqt-raw");
	int rc = mqt_raw_send_buf(fd, &b);
	mqt_buf_free(&b);
	if (rc != 0)
		return -1;
	struct mqt_frame f;
	rc = mqt_raw_read(fd, &f, 10000);
	if (rc != MQT_RD_FRAME) {
		fprintf(stderr, "harness: no WELCOME (read result %d)\n", rc);
		return -1;
	}
	if (f.op != MQT_WELCOME || f.tag != 1) {
		fprintf(stderr, "harness: HELLO answered by %s\n",
		        mqt_frame_str(&f));
		mqt_frame_free(&f);
		return -1;
	}
	mqt_frame_free(&f);
	return 0;
}

int mqt_raw_open(const struct mqt_server *s)
{
	int fd = mqt_raw_connect(s);
	if (fd < 0)
		return -1;
	if (mqt_raw_hello(fd) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

bool mqt_raw_wait_closed(int fd, int timeout_ms, int *skipped)
{
	int64_t deadline = mqt_now_ms() + timeout_ms;
	int n = 0;
	bool closed = false;
	for (;;) {
		int64_t left = deadline - mqt_now_ms();
		if (left < 0)
			left = 0;
		struct mqt_frame f;
		int rc = mqt_raw_read(fd, &f, (int)left);
		if (rc == MQT_RD_FRAME) {
			n++;
			mqt_frame_free(&f);
			continue;
		}
		closed = rc == MQT_RD_EOF;
		break;
	}
	if (skipped)
		*skipped = n;
	return closed;
}

bool mqt_raw_quiet(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int64_t deadline = mqt_now_ms() + timeout_ms;
	for (;;) {
		int64_t left = deadline - mqt_now_ms();
		if (left < 0)
			left = 0;
		int pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		return pr == 0;
	}
}

/* ---- reading payloads ---------------------------------------------------------------- */

void mqt_rd_init(struct mqt_rd *r, const struct mqt_frame *f)
{
	r->p = f->payload;
	r->len = f->len;
	r->pos = 0;
	r->err = false;
}

const uint8_t *mqt_get_bytes(struct mqt_rd *r, size_t n)
{
	if (r->err || r->len - r->pos < n) {
		r->err = true;
		return NULL;
	}
	const uint8_t *p = r->p + r->pos;
	r->pos += n;
	return p;
}

uint8_t mqt_get_u8(struct mqt_rd *r)
{
	const uint8_t *p = mqt_get_bytes(r, 1);
	return p ? p[0] : 0;
}

uint16_t mqt_get_u16(struct mqt_rd *r)
{
	const uint8_t *p = mqt_get_bytes(r, 2);
	return p ? (uint16_t)((uint16_t)p[0] << 8 | p[1]) : 0;
}

uint32_t mqt_get_u32(struct mqt_rd *r)
{
	const uint8_t *p = mqt_get_bytes(r, 4);
	return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	                   (uint32_t)p[2] << 8 | p[3]
	         : 0;
}

uint64_t mqt_get_u64(struct mqt_rd *r)
{
	uint64_t hi = mqt_get_u32(r);
	return hi << 32 | mqt_get_u32(r);
}

void mqt_get_name(struct mqt_rd *r, char *out)
{
	uint8_t n = mqt_get_u8(r);
	const uint8_t *p = mqt_get_bytes(r, n);
	if (p)
		memcpy(out, p, n);
	out[p ? n : 0] = '\0';
}

bool mqt_rd_done(const struct mqt_rd *r)
{
	return !r->err && r->pos == r->len;
}

int mqt_parse_msg(const struct mqt_frame *f, struct mqt_msg *m)
{
	struct mqt_rd r;
	memset(m, 0, sizeof *m);
	mqt_rd_init(&r, f);
	m->id = mqt_get_u64(&r);
	mqt_get_name(&r, m->source);
	m->attempts = mqt_get_u16(&r);
	m->timestamp_ms = mqt_get_u64(&r);
	m->priority = mqt_get_u8(&r);
	m->nheaders = mqt_get_u16(&r);
	size_t hstart = r.pos;
	for (uint16_t i = 0; i < m->nheaders && !r.err; i++) {
		uint8_t kn = mqt_get_u8(&r);
		mqt_get_bytes(&r, kn);
		uint16_t vn = mqt_get_u16(&r);
		mqt_get_bytes(&r, vn);
	}
	m->headers = f->payload + hstart;
	m->headers_len = r.pos - hstart;
	m->body_len = mqt_get_u32(&r);
	m->body = mqt_get_bytes(&r, m->body_len);
	return mqt_rd_done(&r) ? 0 : -1;
}

int mqt_msg_header(const struct mqt_msg *m, const char *key, char *out,
                   size_t cap)
{
	size_t pos = 0, klen = strlen(key);
	for (uint16_t i = 0; i < m->nheaders; i++) {
		if (pos + 1 > m->headers_len)
			return -1;
		size_t kn = m->headers[pos++];
		if (pos + kn + 2 > m->headers_len)
			return -1;
		const uint8_t *k = m->headers + pos;
		pos += kn;
		size_t vn = (size_t)m->headers[pos] << 8 | m->headers[pos + 1];
		pos += 2;
		if (pos + vn > m->headers_len)
			return -1;
		if (kn == klen && memcmp(k, key, kn) == 0) {
			if (out && cap) {
				size_t take = vn < cap - 1 ? vn : cap - 1;
				memcpy(out, m->headers + pos, take);
				out[take] = '\0';
			}
			return (int)vn;
		}
		pos += vn;
	}
	return -1;
}

int mqt_error_code(const struct mqt_frame *f)
{
	if (f->op != MQT_ERROR)
		return -1;
	struct mqt_rd r;
	mqt_rd_init(&r, f);
	uint16_t code = mqt_get_u16(&r);
	uint16_t n = mqt_get_u16(&r);
	mqt_get_bytes(&r, n);
	return mqt_rd_done(&r) ? code : -1;
}

const char *mqt_err_name(int code)
{
	static const char *const names[] = {
		"OK", "BAD_FRAME", "FRAME_TOO_LARGE", "UNKNOWN_OP",
		"BAD_ARGUMENT", "NOT_FOUND", "QUEUE_FULL", "CONFLICT",
		"HELLO_REQUIRED", "UNSUPPORTED_VERSION", "AUTH_REQUIRED",
		"AUTH_FAILED", "FORBIDDEN", "MEMORY_LIMIT", "LIMIT",
		"SHUTTING_DOWN", "INTERNAL",
	};
	if (code >= 0 && code <= 16)
		return names[code];
	return "?";
}

const char *mqt_frame_str(const struct mqt_frame *f)
{
	static char buf[512];
	int n = snprintf(buf, sizeof buf, "frame op=0x%02x flags=0x%02x "
	                 "tag=%u payload=%u bytes", f->op, f->flags, f->tag,
	                 f->len);
	if (f->op == MQT_ERROR && f->len >= 4 && n > 0 &&
	    (size_t)n < sizeof buf) {
		unsigned code = (unsigned)f->payload[0] << 8 | f->payload[1];
		unsigned ml = (unsigned)f->payload[2] << 8 | f->payload[3];
		if (ml > f->len - 4)
			ml = f->len - 4;
		if (ml > 200)
			ml = 200;
		snprintf(buf + n, sizeof buf - (size_t)n,
		         " [ERROR %u (%s) \"%.*s\"]", code,
		         mqt_err_name((int)code), (int)ml,
		         (const char *)f->payload + 4);
	}
	return buf;
}

/* ---- the mq CLI ------------------------------------------------------------------------ */

int mqt_run_cli(const struct mqt_server *s, char *const argv[], char *out,
                size_t cap)
{
	const char *bin = getenv("MQ_BIN");
	if (!bin || !bin[0]) {
		fprintf(stderr, "harness: MQ_BIN is not set\n");
		return -1;
	}
	size_t argc = 0;
	while (argv[argc])
		argc++;
	char **av = calloc(argc + 1, sizeof *av);
	if (!av)
		return -1;
	av[0] = (char *)bin;
	for (size_t i = 1; i < argc; i++)
		av[i] = argv[i];
	char server[sizeof s->addr + 16];
	snprintf(server, sizeof server, "MQ_SERVER=%s", s->addr);
	const char *env[] = { server, NULL };
	struct mqt_spawn sp = {
		.argv = av, .env = env,
		.out = out && cap ? MQT_IO_PIPE : MQT_IO_NULL,
		.out_buf = out, .out_cap = cap,
		.err = MQT_IO_INHERIT,
	};
	int rc = mqt_proc_run(&sp, CLI_LIMIT_MS);
	free(av);
	return rc;
}

/* ---- the control socket ------------------------------------------------- */

int mqt_control(const struct mqt_server *s, const char *cmd, char *out,
                size_t cap)
{
	struct sockaddr_un sa;
	struct timeval tv = {10, 0};
	size_t len = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || cap == 0)
		return -1;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->ctl_path);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    write_all_fd(fd, cmd, strlen(cmd)) < 0 ||
	    write_all_fd(fd, "\n", 1) < 0) {
		close(fd);
		return -1;
	}
	/* One reply line. */
	while (len + 1 < cap) {
		ssize_t r = read(fd, out + len, cap - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (memchr(out + len - (size_t)r, '\n', (size_t)r))
			break;
	}
	out[len] = '\0';
	close(fd);
	return len > 0 && out[len - 1] == '\n' ? 0 : -1;
}
