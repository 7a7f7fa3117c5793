/*
 * Child processes for the tests: the one way the tests start a program,
 * be it mqd under the harness, a CLI run to completion (mq, mqctl,
 * mq-bench, mqd -t) or a helper that runs alongside a test (mq serve, the
 * contrib/pi roles, a broker started by hand).
 *
 * A child never outlives its test, however the test ends:
 *  - PR_SET_PDEATHSIG(SIGKILL) in the child covers a crash of the test
 *    process and Check's fork mode, which ends a failed test with _exit()
 *    (no atexit hook runs), and Check's kill of a test on its timeout;
 *  - an atexit() hook kills and reaps every child still running when the
 *    test process exits normally;
 *  - every wait here has a limit; mqt_proc_run and mqt_proc_stop kill and
 *    reap a child that overstays it before they return.
 *
 * The child gets a clean slate: SIGPIPE back to its default (the tests
 * ignore it, a shell would not), no signal blocked, and no descriptor of
 * the test's beyond 0, 1 and 2 (a test's socket held open by a child could
 * hide a close from the broker).  The environment is built before the fork
 * and passed to execve, so nothing allocates between fork and exec.
 */
#ifndef MQT_PROC_H
#define MQT_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

/* Where a child's stdout or stderr goes. */
enum mqt_io {
	MQT_IO_NULL,    /* /dev/null */
	MQT_IO_INHERIT, /* the test's own descriptor */
	MQT_IO_PIPE,    /* captured into a buffer of the caller's */
	MQT_IO_FILE,    /* a file, created or truncated (mode 0644) */
	MQT_IO_STDOUT,  /* stderr only: wherever stdout goes (2>&1) */
};

/* What to start.  Zero-initialise it and fill in what differs:
 * stdin and stdout then come from and go to /dev/null, stderr too. */
struct mqt_spawn {
	char *const *argv;      /* argv[0] is the program's path; NULL-ended */
	const char *const *env; /* NULL-ended changes to the test's own
	                         * environment: "NAME=value" sets, "NAME"
	                         * unsets; may be NULL */
	const void *in;         /* stdin: these in_len bytes, then end of
	                         * file; NULL for /dev/null.  Must stay valid
	                         * while the child runs. */
	size_t in_len;
	enum mqt_io out, err;
	const char *out_path, *err_path; /* for MQT_IO_FILE */
	/* For MQT_IO_PIPE: always NUL-terminated.  Output beyond cap - 1
	 * bytes is read and dropped, so the child never blocks on a full
	 * pipe; with keep_tail the oldest half makes room instead (the end
	 * of a long run is what a test checks). */
	char *out_buf, *err_buf;
	size_t out_cap, err_cap;
	bool keep_tail;
	/* The child's RLIMIT_NOFILE (soft and hard), set before exec; NULL
	 * keeps the test's.  Raising the hard limit needs root. */
	const struct rlimit *nofile;
};

struct mqt_capture {
	int fd;     /* read end, -1 once at end of file (or not captured) */
	char *buf;  /* the caller's */
	size_t cap, len;
	bool keep_tail;
};

struct mqt_proc {
	pid_t pid;   /* 0 once reaped */
	int status;  /* once reaped: exit status, or 128 + signal; -1 when
	              * this module killed it at a limit */
	int wstatus; /* once reaped by a wait here: the raw wait status */
	char name[64]; /* the program's base name, for messages */
	struct mqt_capture out, err;
	int in_fd;   /* write end of stdin while input is left, else -1 */
	const unsigned char *in;
	size_t in_left;
};

/* Start sp's program.  0, or -1 after saying why on stderr. */
int mqt_proc_start(struct mqt_proc *p, const struct mqt_spawn *sp);

/* A handle for a child started without pipes, known by its pid (how the
 * harness keeps its brokers). */
struct mqt_proc mqt_proc_of(pid_t pid, const char *name);

/* Move what is ready within ms (captured output in, stdin out).  Whether a
 * captured pipe is still open. */
bool mqt_proc_pump(struct mqt_proc *p, int ms);

/* Whether the child still runs; reaps it (status set) if it has ended.
 * Captured output may still be unread. */
bool mqt_proc_running(struct mqt_proc *p);

/* Wait up to ms for the child to end and its captured pipes to reach end
 * of file, reading them meanwhile.  Whether it did (p->status is then its
 * status); on false it still runs, nothing killed. */
bool mqt_proc_wait(struct mqt_proc *p, int ms);

/* Send sig (none when 0) and wait up to ms as mqt_proc_wait does; a child
 * still running then is killed (SIGKILL) and reaped.  Closes the pipes.
 * Returns p->status: -1 when it had to be killed.  Nothing happens to a
 * child already reaped. */
int mqt_proc_stop(struct mqt_proc *p, int sig, int ms);

/* SIGKILL, reap, close the pipes; for cleanup paths. */
void mqt_proc_kill(struct mqt_proc *p);

/* Start sp's program and wait for it: its exit status, 128 + signal, or
 * -1 when it could not be started or did not finish within limit_ms (it
 * is then killed and reaped; either is said on stderr). */
int mqt_proc_run(const struct mqt_spawn *sp, int limit_ms);

/* Remove a directory tree (the tests' temp dirs), without a shell. */
void mqt_rm_rf(const char *dir);

#endif
