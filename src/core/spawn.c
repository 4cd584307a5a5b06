/* spawn.c - see spawn.h. */
#include "core/spawn.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

void spawn_reset_signals(void)
{
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int s = 1; s < NSIG; s++) {
		if (s == SIGKILL || s == SIGSTOP)
			continue;
		signal(s, SIG_DFL);
	}
}

static void close_from(int lowfd, int keep)
{
	if (keep < 0 || keep < lowfd) {
		if (syscall(SYS_close_range, (unsigned)lowfd, ~0u, 0) == 0)
			return;
	} else {
		if (keep > lowfd &&
		    syscall(SYS_close_range, (unsigned)lowfd, (unsigned)keep - 1, 0) != 0)
			for (int fd = lowfd; fd < keep; fd++)
				close(fd);
		if (syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0) == 0)
			return;
		lowfd = keep + 1;
	}
	long max = sysconf(_SC_OPEN_MAX);
	for (long fd = lowfd; fd < (max > 0 ? max : 1024); fd++)
		if (fd != keep)
			close((int)fd);
}

/* In the child: arm death signal and make sure the parent did not already
 * die between fork and prctl (then we would never get the signal). */
static void child_common(pid_t parent, bool die_with_parent)
{
	spawn_reset_signals();
	if (die_with_parent) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
	}
}

static int open_null(int flags)
{
	return open("/dev/null", flags | O_CLOEXEC);
}

/* dup2 `fd` (or /dev/null when -1) onto `target` in the child. */
static void child_fd(int fd, int target, int nullflags)
{
	if (fd < 0)
		fd = open_null(nullflags);
	if (fd < 0)
		_exit(127);
	if (fd == target) {
		fd_set_cloexec(fd, false);
		return;
	}
	if (dup2(fd, target) < 0)
		_exit(127);
}

int spawn_process(const struct spawn_opts *o, pid_t *ret_pid)
{
	int errpipe[2];
	if (pipe2(errpipe, O_CLOEXEC) < 0)
		return -errno;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(errpipe[0]);
		close(errpipe[1]);
		return e;
	}
	if (pid == 0) {
		child_common(parent, o->die_with_parent);
		if (o->new_session)
			setsid();
		/* The exec-status pipe must not land on 0-2. */
		int ep = errpipe[1];
		if (ep <= 2) {
			ep = fcntl(ep, F_DUPFD_CLOEXEC, 3);
			if (ep < 0)
				_exit(127);
		}
		child_fd(o->stdin_fd, 0, O_RDONLY);
		child_fd(o->stdout_fd, 1, O_WRONLY);
		child_fd(o->stderr_fd, 2, O_WRONLY);
		if (o->pass_fd > 2) {
			if (ep == 3) {
				ep = fcntl(ep, F_DUPFD_CLOEXEC, 4);
				if (ep < 0)
					_exit(127);
			}
			if (o->pass_fd != 3 && dup2(o->pass_fd, 3) < 0)
				_exit(127);
			fd_set_cloexec(3, false);
			close_from(4, ep);
		} else {
			close_from(3, ep);
		}
		execvp(o->argv[0], o->argv);
		int e = errno;
		(void)!write(ep, &e, sizeof e);
		_exit(127);
	}
	close(errpipe[1]);
	int child_errno = 0;
	ssize_t r;
	do
		r = read(errpipe[0], &child_errno, sizeof child_errno);
	while (r < 0 && errno == EINTR);
	close(errpipe[0]);
	if (r == (ssize_t)sizeof child_errno) {
		/* exec failed: reap the child now so no zombie is left. */
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		return -child_errno;
	}
	*ret_pid = pid;
	return 0;
}

int spawn_fork(int (*fn)(void *data), void *data, int keep_fd, pid_t *ret_pid)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		child_common(parent, true);
		child_fd(-1, 0, O_RDONLY);
		child_fd(-1, 1, O_WRONLY);
		close_from(3, keep_fd);
		_exit(fn(data));
	}
	*ret_pid = pid;
	return 0;
}

char *spawn_which(const char *name)
{
	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? strdup(name) : NULL;
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *end = strchr(path, ':');
		size_t n = end ? (size_t)(end - path) : strlen(path);
		char *cand = strdup_printf("%.*s/%s", (int)n, n ? path : ".", name);
		if (cand && access(cand, X_OK) == 0)
			return cand;
		free(cand);
		if (!end)
			break;
		path = end + 1;
	}
	return NULL;
}
