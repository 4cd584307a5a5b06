/* spawn.c - see spawn.h. */
#include "core/spawn.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
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
		else if (o->new_pgroup)
			setpgid(0, 0);
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

int spawn_capture_all(struct spawn_capture *jobs, size_t n, int timeout_ms)
{
	size_t live = 0;
	for (size_t j = 0; j < n; j++) {
		struct spawn_capture *b = &jobs[j];
		int po[2], pe[2];
		b->out = NULL;
		b->err[0] = '\0';
		b->pid = 0;
		b->fd[0] = b->fd[1] = -1;
		b->len = b->elen = 0;
		if (pipe2(po, O_CLOEXEC) < 0) {
			b->status = -errno;
			continue;
		}
		if (pipe2(pe, O_CLOEXEC) < 0) {
			b->status = -errno;
			close(po[0]);
			close(po[1]);
			continue;
		}
		struct spawn_opts o = {.argv = b->argv,
				       .stdin_fd = -1,
				       .stdout_fd = po[1],
				       .stderr_fd = pe[1],
				       .new_pgroup = true};
		int r = spawn_process(&o, &b->pid);
		close(po[1]);
		close(pe[1]);
		if (r < 0) {
			b->status = r;
			b->pid = 0;
			close(po[0]);
			close(pe[0]);
			continue;
		}
		b->fd[0] = po[0];
		b->fd[1] = pe[0];
		b->out = b->max ? malloc(b->max + 1) : NULL;
		live++;
	}

	/* One poll over every job's two pipes until all are closed. */
	uint64_t deadline = now_mono_ms() + (uint64_t)timeout_ms;
	bool timed_out = false;
	struct pollfd pf[2 * (n ? n : 1)];
	while (live) {
		size_t np = 0;
		for (size_t j = 0; j < n; j++)
			for (int i = 0; i < 2; i++)
				pf[np++] = (struct pollfd){.fd = jobs[j].fd[i], .events = POLLIN};
		uint64_t now = now_mono_ms();
		if (now >= deadline) {
			timed_out = true;
			break;
		}
		int pr = poll(pf, np, (int)(deadline - now));
		if (pr < 0 && errno != EINTR)
			break;
		for (size_t j = 0; j < n && pr > 0; j++) {
			struct spawn_capture *b = &jobs[j];
			for (int i = 0; i < 2; i++) {
				if (b->fd[i] < 0 || !pf[2 * j + (size_t)i].revents)
					continue;
				char tmp[4096];
				ssize_t got = read(b->fd[i], tmp, sizeof tmp);
				if (got <= 0) {
					close(b->fd[i]);
					b->fd[i] = -1;
					if (b->fd[0] < 0 && b->fd[1] < 0)
						live--;
					continue;
				}
				char *dst = i == 0 ? b->out : b->err;
				size_t *len = i == 0 ? &b->len : &b->elen;
				size_t cap = i == 0 ? b->max : sizeof b->err - 1;
				if (!dst)
					continue;
				size_t take = (size_t)got < cap - *len ? (size_t)got : cap - *len;
				memcpy(dst + *len, tmp, take);
				*len += take;
			}
		}
	}

	int first = 0;
	for (size_t j = 0; j < n; j++) {
		struct spawn_capture *b = &jobs[j];
		bool cut = timed_out && (b->fd[0] >= 0 || b->fd[1] >= 0);
		for (int i = 0; i < 2; i++)
			if (b->fd[i] >= 0)
				close(b->fd[i]);
		b->fd[0] = b->fd[1] = -1;
		b->err[b->elen] = '\0';
		if (b->out)
			b->out[b->len] = '\0';
		if (b->pid) {
			/* The group: what the job started (a credential
			 * plugin) would otherwise outlive it. */
			if (cut && kill(-b->pid, SIGKILL) < 0)
				kill(b->pid, SIGKILL);
			int st = 0;
			while (waitpid(b->pid, &st, 0) < 0 && errno == EINTR)
				;
			b->status = cut		    ? -ETIMEDOUT
				    : WIFEXITED(st) ? WEXITSTATUS(st)
						    : 128 + WTERMSIG(st);
		}
		if (b->status && !first)
			first = b->status;
	}
	return first;
}
