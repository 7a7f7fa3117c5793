#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * Child processes for the tests (see proc.h).  Every child started here is
 * listed, with the test process that started it, until it is reaped: the
 * atexit() hook kills what is left on the list.  A test process forked by
 * Check inherits the list of its parent, so entries carry their owner and
 * a process touches only its own.
 *
 * Waiting is a poll loop with a short tick, never a fixed sleep: it ends
 * as soon as the child has ended and its captured output is all in.
 */

#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define TRACK_MAX 64
#define TICK_MS 2 /* how often a wait looks at a child without pipes */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ---- the list of children ------------------------------------------------ */

static struct {
	pid_t owner, pid;
	char name[64];
} tracked[TRACK_MAX];
static bool hook_installed;

static void kill_tracked(void)
{
	for (int i = 0; i < TRACK_MAX; i++) {
		if (tracked[i].pid == 0 || tracked[i].owner != getpid())
			continue;
		fprintf(stderr, "proc: %s (pid %d) still ran when the test "
		        "ended; killing it\n", tracked[i].name,
		        (int)tracked[i].pid);
		kill(tracked[i].pid, SIGKILL);
		while (waitpid(tracked[i].pid, NULL, 0) < 0 && errno == EINTR)
			;
		tracked[i].pid = 0;
	}
}

static int track_add(pid_t pid, const char *name)
{
	if (!hook_installed) {
		atexit(kill_tracked);
		hook_installed = true;
	}
	for (int i = 0; i < TRACK_MAX; i++) {
		if (tracked[i].pid != 0 && tracked[i].owner == getpid())
			continue;
		tracked[i].owner = getpid();
		tracked[i].pid = pid;
		snprintf(tracked[i].name, sizeof tracked[i].name, "%s", name);
		return 0;
	}
	return -1;
}

static void track_del(pid_t pid)
{
	for (int i = 0; i < TRACK_MAX; i++)
		if (tracked[i].pid == pid && tracked[i].owner == getpid())
			tracked[i].pid = 0;
}

/* ---- starting ------------------------------------------------------------ */

static bool is_changed(const char *entry, const char *const *changes)
{
	size_t len = strcspn(entry, "=");

	for (size_t i = 0; changes && changes[i]; i++)
		if (strcspn(changes[i], "=") == len &&
		    memcmp(changes[i], entry, len) == 0)
			return true;
	return false;
}

/* environ with the changes made, built before the fork; NULL if out of
 * memory.  The strings are environ's and the caller's: only the array is
 * to be freed. */
static char **build_env(const char *const *changes)
{
	size_t n = 0, nc = 0, k = 0;
	char **e;

	while (environ && environ[n])
		n++;
	while (changes && changes[nc])
		nc++;
	e = calloc(n + nc + 1, sizeof *e);
	if (e == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!is_changed(environ[i], changes))
			e[k++] = environ[i];
	for (size_t i = 0; i < nc; i++)
		if (strchr(changes[i], '=') != NULL)
			e[k++] = (char *)changes[i];
	e[k] = NULL;
	return e;
}

/* Everything above stderr goes: the child keeps none of the test's
 * sockets or pipes open. */
static void close_from_3(void)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0)
		return;
#endif
	for (int fd = 3; fd < 4096; fd++)
		close(fd);
}

/* fd onto target in the child (dup2 leaves close-on-exec set when they
 * are the same descriptor). */
static int put_fd(int fd, int target)
{
	if (fd == target)
		return fcntl(fd, F_SETFD, 0);
	return dup2(fd, target) < 0 ? -1 : 0;
}

/* The descriptor a child's stdout or stderr gets from io, opened (or
 * made) in the parent: *pipe_rd gets the read end of a pipe.  -2 for "leave
 * it alone", -1 on an error (said on stderr). */
static int open_io(enum mqt_io io, const char *path, int *pipe_rd,
                   const char *what)
{
	int p[2], fd;

	switch (io) {
	case MQT_IO_NULL:
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		break;
	case MQT_IO_INHERIT:
	case MQT_IO_STDOUT:
		return -2;
	case MQT_IO_PIPE:
		if (pipe2(p, O_CLOEXEC) != 0) {
			fd = -1;
			break;
		}
		*pipe_rd = p[0];
		return p[1];
	case MQT_IO_FILE:
		fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		                 0644)
		          : -1;
		if (path == NULL)
			errno = EINVAL;
		break;
	default:
		errno = EINVAL;
		fd = -1;
		break;
	}
	if (fd < 0)
		fprintf(stderr, "proc: %s for %s: %s\n", what,
		        path ? path : "(no path)", strerror(errno));
	return fd;
}

static void close_if(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Between fork and exec: only async-signal-safe calls. */
static _Noreturn void child(const struct mqt_spawn *sp, const int fd[3],
                            char **envp, pid_t parent)
{
	struct sigaction dfl;
	sigset_t none;

	/* It must not outlive the test, whatever ends it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(126);
	if (put_fd(fd[0], 0) != 0 || (fd[1] >= 0 && put_fd(fd[1], 1) != 0) ||
	    (fd[2] >= 0 && put_fd(fd[2], 2) != 0) ||
	    (sp->err == MQT_IO_STDOUT && dup2(1, 2) < 0))
		_exit(126);
	/* The defaults a program started by a shell would have; SIGPIPE
	 * too, which the tests ignore (exec would keep that). */
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &dfl, NULL);
	close_from_3();
	if (sp->nofile != NULL && setrlimit(RLIMIT_NOFILE, sp->nofile) != 0) {
		dprintf(2, "proc: setrlimit(RLIMIT_NOFILE) for %s: %s\n",
		        sp->argv[0], strerror(errno));
		_exit(126);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(sp->argv[0], sp->argv, envp);
	dprintf(2, "proc: exec %s: %s\n", sp->argv[0], strerror(errno));
	_exit(127);
}

int mqt_proc_start(struct mqt_proc *p, const struct mqt_spawn *sp)
{
	int in_w = -1, child_fd[3] = { -1, -1, -1 };
	pid_t parent = getpid(), pid;
	const char *base;
	char **envp;

	memset(p, 0, sizeof *p);
	p->out.fd = p->err.fd = p->in_fd = -1;
	if (sp->argv == NULL || sp->argv[0] == NULL) {
		fprintf(stderr, "proc: no program to start\n");
		return -1;
	}
	base = strrchr(sp->argv[0], '/');
	snprintf(p->name, sizeof p->name, "%s", base ? base + 1 : sp->argv[0]);

	if (sp->in != NULL) {
		/* A socket, not a pipe: a child that exits without reading
		 * must not raise SIGPIPE in the test (send's MSG_NOSIGNAL). */
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
		               sv) != 0) {
			fprintf(stderr, "proc: socketpair: %s\n",
			        strerror(errno));
			return -1;
		}
		in_w = sv[0];
		child_fd[0] = sv[1];
		shutdown(in_w, SHUT_RD);
		fcntl(in_w, F_SETFL, fcntl(in_w, F_GETFL) | O_NONBLOCK);
	} else {
		child_fd[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	child_fd[1] = open_io(sp->out, sp->out_path, &p->out.fd, "stdout");
	child_fd[2] = sp->err == MQT_IO_STDOUT
	              ? -2
	              : open_io(sp->err, sp->err_path, &p->err.fd, "stderr");
	envp = build_env(sp->env);
	if (child_fd[0] < 0 || child_fd[1] == -1 || child_fd[2] == -1 ||
	    envp == NULL) {
		if (envp == NULL || child_fd[0] < 0)
			fprintf(stderr, "proc: cannot start %s: %s\n", p->name,
			        strerror(errno));
		goto fail;
	}

	/* Signals stay blocked from before the fork until the child has put
	 * its handlers back to the defaults: the test's (Check's SIGTERM
	 * handler kills the test's whole process group) must never run in
	 * the child, and a signal sent to it early stays pending. */
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		child(sp, child_fd, envp, parent);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		fprintf(stderr, "proc: fork: %s\n", strerror(errno));
		goto fail;
	}
	free(envp);
	for (int i = 0; i < 3; i++)
		close_if(&child_fd[i]);
	p->pid = pid;
	if (track_add(pid, p->name) != 0) {
		fprintf(stderr, "proc: more than %d children at once\n",
		        TRACK_MAX);
		close_if(&in_w);
		mqt_proc_kill(p);
		return -1;
	}
	p->out.buf = sp->out == MQT_IO_PIPE ? sp->out_buf : NULL;
	p->out.cap = sp->out == MQT_IO_PIPE ? sp->out_cap : 0;
	p->err.buf = sp->err == MQT_IO_PIPE ? sp->err_buf : NULL;
	p->err.cap = sp->err == MQT_IO_PIPE ? sp->err_cap : 0;
	p->out.keep_tail = p->err.keep_tail = sp->keep_tail;
	if (p->out.buf && p->out.cap)
		p->out.buf[0] = '\0';
	if (p->err.buf && p->err.cap)
		p->err.buf[0] = '\0';
	p->in_fd = in_w;
	p->in = sp->in;
	p->in_left = sp->in_len;
	if (p->in_fd >= 0 && p->in_left == 0) {
		close_if(&p->in_fd);
	}
	return 0;

fail:
	free(envp);
	close_if(&in_w);
	for (int i = 0; i < 3; i++)
		if (child_fd[i] >= 0)
			close(child_fd[i]);
	close_if(&p->out.fd);
	close_if(&p->err.fd);
	return -1;
}

struct mqt_proc mqt_proc_of(pid_t pid, const char *name)
{
	struct mqt_proc p;

	memset(&p, 0, sizeof p);
	p.pid = pid;
	p.out.fd = p.err.fd = p.in_fd = -1;
	snprintf(p.name, sizeof p.name, "%s", name ? name : "child");
	return p;
}

/* ---- output and input ---------------------------------------------------- */

static void capture_put(struct mqt_capture *c, const char *d, size_t n)
{
	size_t room;

	if (c->buf == NULL || c->cap < 2)
		return;
	room = c->cap - 1 - c->len;
	if (n > room && c->keep_tail) {
		if (n >= c->cap - 1) {
			d += n - (c->cap - 1);
			n = c->cap - 1;
			c->len = 0;
		} else {
			size_t drop = c->len / 2 > n - room ? c->len / 2
			                                    : n - room;
			memmove(c->buf, c->buf + drop, c->len - drop);
			c->len -= drop;
		}
		room = c->cap - 1 - c->len;
	}
	if (n > room)
		n = room;
	memcpy(c->buf + c->len, d, n);
	c->len += n;
	c->buf[c->len] = '\0';
}

static void capture_read(struct mqt_capture *c)
{
	char tmp[4096];
	ssize_t n = read(c->fd, tmp, sizeof tmp);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close_if(&c->fd);
		return;
	}
	capture_put(c, tmp, (size_t)n);
}

static void feed_input(struct mqt_proc *p)
{
	ssize_t n = send(p->in_fd, p->in, p->in_left,
	                 MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0 && (errno == EINTR || errno == EAGAIN ||
	              errno == EWOULDBLOCK))
		return;
	if (n < 0) { /* it closed its stdin or ended: the rest is moot */
		close_if(&p->in_fd);
		return;
	}
	p->in += n;
	p->in_left -= (size_t)n;
	if (p->in_left == 0)
		close_if(&p->in_fd); /* end of file for the child */
}

bool mqt_proc_pump(struct mqt_proc *p, int ms)
{
	struct pollfd pf[3];
	struct mqt_capture *cap[3] = { NULL, NULL, NULL };
	int n = 0, pr;

	if (p->out.fd >= 0) {
		cap[n] = &p->out;
		pf[n++] = (struct pollfd){ p->out.fd, POLLIN, 0 };
	}
	if (p->err.fd >= 0) {
		cap[n] = &p->err;
		pf[n++] = (struct pollfd){ p->err.fd, POLLIN, 0 };
	}
	if (p->in_fd >= 0)
		pf[n++] = (struct pollfd){ p->in_fd, POLLOUT, 0 };
	if (n == 0)
		return false;
	pr = poll(pf, (nfds_t)n, ms < 0 ? 0 : ms);
	for (int i = 0; pr > 0 && i < n; i++) {
		if (pf[i].revents == 0)
			continue;
		if (cap[i] != NULL)
			capture_read(cap[i]);
		else
			feed_input(p);
	}
	return p->out.fd >= 0 || p->err.fd >= 0;
}

/* ---- ending -------------------------------------------------------------- */

static void set_status(struct mqt_proc *p, int st)
{
	p->wstatus = st;
	p->status = WIFEXITED(st) ? WEXITSTATUS(st)
	          : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
	track_del(p->pid);
	p->pid = 0;
}

bool mqt_proc_running(struct mqt_proc *p)
{
	int st;
	pid_t r;

	if (p->pid == 0)
		return false;
	while ((r = waitpid(p->pid, &st, WNOHANG)) < 0 && errno == EINTR)
		;
	if (r == 0)
		return true;
	if (r == p->pid) {
		set_status(p, st);
	} else { /* not our child any more (reaped elsewhere) */
		track_del(p->pid);
		p->pid = 0;
		p->status = -1;
	}
	return false;
}

bool mqt_proc_wait(struct mqt_proc *p, int ms)
{
	int64_t end = now_ms() + ms;

	for (;;) {
		bool alive = mqt_proc_running(p);
		int64_t left;
		int step;

		if (!alive && p->out.fd < 0 && p->err.fd < 0) {
			close_if(&p->in_fd);
			return true;
		}
		left = end - now_ms();
		if (left <= 0)
			return false;
		step = left < TICK_MS ? (int)left : TICK_MS;
		if (p->out.fd >= 0 || p->err.fd >= 0 || p->in_fd >= 0) {
			/* Output wakes the poll at once; the tick only
			 * bounds how late an exit is noticed. */
			mqt_proc_pump(p, step);
		} else {
			pause_ms(step);
		}
	}
}

static void close_all(struct mqt_proc *p)
{
	close_if(&p->in_fd);
	close_if(&p->out.fd);
	close_if(&p->err.fd);
}

void mqt_proc_kill(struct mqt_proc *p)
{
	if (p->pid != 0) {
		kill(p->pid, SIGKILL);
		while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
			;
		track_del(p->pid);
		p->pid = 0;
		p->status = -1;
	}
	close_all(p);
}

int mqt_proc_stop(struct mqt_proc *p, int sig, int ms)
{
	if (p->pid != 0 && sig != 0)
		kill(p->pid, sig);
	if (!mqt_proc_wait(p, ms) && p->pid != 0)
		mqt_proc_kill(p);
	close_all(p);
	return p->status;
}

int mqt_proc_run(const struct mqt_spawn *sp, int limit_ms)
{
	struct mqt_proc p;

	if (mqt_proc_start(&p, sp) != 0)
		return -1;
	if (!mqt_proc_wait(&p, limit_ms)) {
		fprintf(stderr, "proc: %s did not finish within %d ms; "
		        "killing it\n", p.name, limit_ms);
		mqt_proc_kill(&p);
		return -1;
	}
	close_all(&p);
	return p.status;
}

/* ---- temp dirs ----------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void mqt_rm_rf(const char *dir)
{
	if (dir != NULL && dir[0] != '\0')
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
