/* kubectl.c - see kubectl.h. */
#include "k8s/kubectl.h"
#include "core/spawn.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int kctl_run(const struct kctl *k, const char *const *args, char **out, size_t max, char *err,
	     size_t errn, int timeout_ms)
{
	const char *argv[64];
	size_t n = 0;
	argv[n++] = k->kubectl ? k->kubectl : "kubectl";
	if (k->kubeconfig) {
		argv[n++] = "--kubeconfig";
		argv[n++] = k->kubeconfig;
	}
	if (k->context) {
		argv[n++] = "--context";
		argv[n++] = k->context;
	}
	for (; *args && n < ARRAY_SIZE(argv) - 1; args++)
		argv[n++] = *args;
	argv[n] = NULL;

	if (out)
		*out = NULL;
	if (errn)
		err[0] = '\0';
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(pe, O_CLOEXEC) < 0) {
		int e = -errno;
		close(po[0]);
		close(po[1]);
		return e;
	}
	struct spawn_opts o = {
	    .argv = (char *const *)argv, .stdin_fd = -1, .stdout_fd = po[1], .stderr_fd = pe[1]};
	pid_t pid;
	int r = spawn_process(&o, &pid);
	close(po[1]);
	close(pe[1]);
	if (r < 0) {
		close(po[0]);
		close(pe[0]);
		return r;
	}
	char *buf = out ? malloc(max + 1) : NULL;
	size_t len = 0, elen = 0;
	struct pollfd pf[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
	uint64_t deadline = now_mono_ms() + (uint64_t)timeout_ms;
	bool timed_out = false;
	while (pf[0].fd >= 0 || pf[1].fd >= 0) {
		uint64_t now = now_mono_ms();
		if (now >= deadline) {
			timed_out = true;
			break;
		}
		int pr = poll(pf, 2, (int)(deadline - now));
		if (pr < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2 && pr > 0; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			char tmp[4096];
			ssize_t got = read(pf[i].fd, tmp, sizeof tmp);
			if (got <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				continue;
			}
			if (i == 0 && buf) {
				size_t take = (size_t)got < max - len ? (size_t)got : max - len;
				memcpy(buf + len, tmp, take);
				len += take;
			} else if (i == 1 && errn) {
				size_t take =
				    (size_t)got < errn - 1 - elen ? (size_t)got : errn - 1 - elen;
				memcpy(err + elen, tmp, take);
				elen += take;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	if (errn)
		err[elen] = '\0';
	if (buf) {
		buf[len] = '\0';
		*out = buf;
	}
	if (timed_out)
		kill(pid, SIGKILL);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (timed_out)
		return -ETIMEDOUT;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
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
