/* kubectl.c - see kubectl.h. */
#include "k8s/kubectl.h"
#include "core/spawn.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int kctl_run_all(const struct kctl *k, struct kctl_job *jobs, size_t n, int timeout_ms)
{
	size_t live = 0;
	for (size_t j = 0; j < n; j++) {
		struct kctl_job *b = &jobs[j];
		const char *argv[64];
		size_t a = 0;
		b->out = NULL;
		b->err[0] = '\0';
		b->pid = 0;
		b->fd[0] = b->fd[1] = -1;
		b->len = b->elen = 0;
		argv[a++] = k->kubectl ? k->kubectl : "kubectl";
		if (k->kubeconfig) {
			argv[a++] = "--kubeconfig";
			argv[a++] = k->kubeconfig;
		}
		if (k->context) {
			argv[a++] = "--context";
			argv[a++] = k->context;
		}
		for (const char *const *p = b->args; *p && a < ARRAY_SIZE(argv) - 1; p++)
			argv[a++] = *p;
		argv[a] = NULL;
		int po[2], pe[2];
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
		struct spawn_opts o = {.argv = (char *const *)argv,
				       .stdin_fd = -1,
				       .stdout_fd = po[1],
				       .stderr_fd = pe[1]};
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
			struct kctl_job *b = &jobs[j];
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
				if (i == 0 && b->out) {
					size_t take = (size_t)got < b->max - b->len
							  ? (size_t)got
							  : b->max - b->len;
					memcpy(b->out + b->len, tmp, take);
					b->len += take;
				} else if (i == 1) {
					size_t room = sizeof b->err - 1 - b->elen;
					size_t take = (size_t)got < room ? (size_t)got : room;
					memcpy(b->err + b->elen, tmp, take);
					b->elen += take;
				}
			}
		}
	}

	int worst = 0;
	for (size_t j = 0; j < n; j++) {
		struct kctl_job *b = &jobs[j];
		for (int i = 0; i < 2; i++)
			if (b->fd[i] >= 0)
				close(b->fd[i]);
		b->err[b->elen] = '\0';
		if (b->out)
			b->out[b->len] = '\0';
		if (!b->pid)
			continue;
		bool cut = timed_out && (b->fd[0] >= 0 || b->fd[1] >= 0);
		if (cut)
			kill(b->pid, SIGKILL);
		int st = 0;
		while (waitpid(b->pid, &st, 0) < 0 && errno == EINTR)
			;
		b->status = cut ? -ETIMEDOUT : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		b->fd[0] = b->fd[1] = -1;
	}
	for (size_t j = 0; j < n; j++)
		if (jobs[j].status && !worst)
			worst = jobs[j].status;
	return worst;
}

int kctl_run(const struct kctl *k, const char *const *args, char **out, size_t max, char *err,
	     size_t errn, int timeout_ms)
{
	struct kctl_job j = {.args = args, .max = out ? max : 0};
	int r = kctl_run_all(k, &j, 1, timeout_ms);
	if (out)
		*out = j.out;
	else
		free(j.out);
	if (errn)
		snprintf(err, errn, "%s", j.err);
	(void)r;
	return j.status;
}

void kctl_message(const char *err, char *buf, size_t n)
{
	const char *p = err;
	if (n == 0)
		return;
	buf[0] = '\0';
	while (*p) {
		size_t len = strcspn(p, "\n");
		const char *line = p;
		p += len + (p[len] == '\n');
		/* klog warnings ("W1123 ...") say less than the error. */
		if (len == 0 || (len > 5 && line[0] == 'W' && line[1] >= '0' && line[1] <= '9'))
			continue;
		if (len >= 7 && strncmp(line, "error: ", 7) == 0) {
			line += 7;
			len -= 7;
		} else if (len > 18 && strncmp(line, "Error from server (", 19) == 0) {
			const char *close = memchr(line, ')', len);
			if (close && close + 2 <= line + len && close[1] == ':') {
				len -= (size_t)(close + 2 - line);
				line = close + 2;
				while (len && *line == ' ') {
					line++;
					len--;
				}
			}
		}
		snprintf(buf, n, "%.*s", (int)len, line);
		text_sanitize(buf);
		return;
	}
}

void kctl_default_kubeconfig(char *buf, size_t n)
{
	const char *env = getenv("KUBECONFIG");
	if (env && *env) {
		snprintf(buf, n, "%s", env);
		return;
	}
	const char *home = getenv("HOME");
	snprintf(buf, n, "%s/.kube/config", home ? home : "");
}

int kctl_kubeconfig_exists(const char *list)
{
	const char *p = list;
	while (*p) {
		size_t len = strcspn(p, ":");
		char path[4096];
		if (len && len < sizeof path) {
			struct stat st;
			memcpy(path, p, len);
			path[len] = '\0';
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
				return 1;
		}
		p += len + (p[len] == ':');
	}
	return 0;
}
