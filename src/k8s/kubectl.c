/* kubectl.c - see kubectl.h. */
#include "k8s/kubectl.h"
#include "core/spawn.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KCTL_ARGV_MAX 64

int kctl_run_all(const struct kctl *k, struct kctl_job *jobs, size_t n, int timeout_ms)
{
	struct spawn_capture *caps = calloc(n ? n : 1, sizeof *caps);
	const char *(*argv)[KCTL_ARGV_MAX] = calloc(n ? n : 1, sizeof *argv);
	if (!caps || !argv) {
		free(caps);
		free(argv);
		for (size_t j = 0; j < n; j++)
			jobs[j].status = -ENOMEM;
		return -ENOMEM;
	}
	for (size_t j = 0; j < n; j++) {
		size_t a = 0;
		argv[j][a++] = k->kubectl ? k->kubectl : "kubectl";
		if (kctl_kubeconfig_flag(k->kubeconfig)) {
			argv[j][a++] = "--kubeconfig";
			argv[j][a++] = k->kubeconfig;
		}
		if (k->context) {
			argv[j][a++] = "--context";
			argv[j][a++] = k->context;
		}
		for (const char *const *p = jobs[j].args; *p && a < KCTL_ARGV_MAX - 1; p++)
			argv[j][a++] = *p;
		argv[j][a] = NULL;
		caps[j].argv = (char *const *)argv[j];
		caps[j].max = jobs[j].max;
	}
	int r = spawn_capture_all(caps, n, timeout_ms);
	for (size_t j = 0; j < n; j++) {
		jobs[j].out = caps[j].out;
		jobs[j].status = caps[j].status;
		memcpy(jobs[j].err, caps[j].err, sizeof jobs[j].err);
	}
	free(caps);
	free(argv);
	return r;
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

bool kctl_kubeconfig_is_list(const char *kubeconfig)
{
	return kubeconfig && strchr(kubeconfig, ':');
}

const char *kctl_kubeconfig_flag(const char *kubeconfig)
{
	return kubeconfig && !kctl_kubeconfig_is_list(kubeconfig) ? kubeconfig : NULL;
}
