/* spawn.h - start child processes without a shell.
 *
 * fork+exec rather than posix_spawn because the child must arm
 * PR_SET_PDEATHSIG: a supervisor killed with SIGKILL must not leave its ssh
 * behind.  Every fd is O_CLOEXEC in devbridge; the child additionally
 * closes everything above stderr, so nothing leaks into ssh.  Signal mask
 * and dispositions are reset in the child (the parent blocks signals for
 * its signalfd). */
#ifndef DEVBRIDGE_CORE_SPAWN_H
#define DEVBRIDGE_CORE_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct spawn_opts {
	char *const *argv;    /* argv[0] is looked up on PATH */
	int stdin_fd;	      /* -1 = /dev/null */
	int stdout_fd;	      /* -1 = /dev/null */
	int stderr_fd;	      /* -1 = /dev/null */
	bool die_with_parent; /* SIGTERM the child when its parent dies */
	bool new_session;     /* setsid() in the child */
	bool new_pgroup;      /* setpgid(0, 0): the child leads its own process group,
			       * so kill(-pid) also reaches what it starts */
	int pass_fd;	      /* > 2: becomes fd 3 in the child (e.g. a ready pipe) */
};

/* Start argv.  Returns 0 and the pid in *ret_pid once the exec succeeded;
 * -ENOENT (or the exec's errno) when it could not run. */
int spawn_process(const struct spawn_opts *opts, pid_t *ret_pid);

/* Fork a child that runs fn(data) and _exit()s with its return value, with
 * the same child set-up as spawn_process (die_with_parent, reset signals,
 * stdin/stdout from /dev/null, fds above 2 closed except `keep_fd`). */
int spawn_fork(int (*fn)(void *data), void *data, int keep_fd, pid_t *ret_pid);

/* A command run to completion with its output captured (see
 * spawn_capture_all). */
struct spawn_capture {
	char *const *argv; /* in */
	size_t max;	   /* in: stdout kept up to max bytes; 0 = dropped */
	char *out;	   /* out: stdout, NUL-terminated, malloc'd; NULL when max is 0 */
	char err[2048];	   /* out: the start of stderr, NUL-terminated */
	int status;	   /* out: exit status, 128 + signal, or -errno (-ETIMEDOUT, -ENOENT) */
	/* private */
	pid_t pid;
	int fd[2];
	size_t len, elen;
};

/* Run every job at once (no shell, stdin /dev/null), each in its own
 * process group, and wait until all have exited or timeout_ms has passed:
 * the rest are killed with their whole process group (a helper such as
 * kubectl's exec credential plugin goes with them) and get -ETIMEDOUT.
 * Returns the first non-zero status, or 0.  The caller frees each out.
 * Blocking: for the CLI, not for an event loop. */
int spawn_capture_all(struct spawn_capture *jobs, size_t n, int timeout_ms);

/* Reset signal mask and dispositions to defaults (for a child). */
void spawn_reset_signals(void);

/* Find `name` on PATH (or as given if it contains '/'); returns a malloc'd
 * path or NULL. */
char *spawn_which(const char *name);

#endif
