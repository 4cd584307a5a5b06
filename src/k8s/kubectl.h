/* kubectl.h - running kubectl for a one-off answer (pre-checks, doctor):
 * no shell, stdout and stderr captured separately, a deadline. */
#ifndef DEVBRIDGE_K8S_KUBECTL_H
#define DEVBRIDGE_K8S_KUBECTL_H

#include <stdbool.h>
#include <stddef.h>

struct kctl {
	const char *kubectl;	/* path or name on PATH; NULL = "kubectl" */
	const char *kubeconfig; /* NULL = kubectl's own default (see kctl_kubeconfig_flag) */
	const char *context;	/* NULL = the current context */
};

/* `kubectl [--kubeconfig K] [--context C] ARGS...` for each job, all at
 * once (pre-checks that do not depend on each other), with a deadline:
 * each job's args in; its stdout (malloc'd, cut at max; NULL when max is
 * 0; the caller frees it), the start of stderr and its status (exit
 * status, or -errno: -ETIMEDOUT, -ENOENT) out.  Returns the first
 * non-zero status, or 0.  See spawn_capture_all (each kubectl in its own
 * process group, killed with it at the deadline).  Blocking: CLI only. */
struct kctl_job {
	const char *const *args;
	size_t max;
	char *out;
	char err[2048];
	int status;
};
int kctl_run_all(const struct kctl *k, struct kctl_job *jobs, size_t n, int timeout_ms);

/* The first line of `err` that says something, without kubectl's
 * "error: " / "Error from server (X): " prefixes; into buf. */
void kctl_message(const char *err, char *buf, size_t n);

/* The kubeconfig kubectl would use without --kubeconfig: $KUBECONFIG (as
 * given, possibly a ':' list), else ~/.kube/config. */
void kctl_default_kubeconfig(char *buf, size_t n);

/* Whether any file of a ':'-separated kubeconfig list exists. */
int kctl_kubeconfig_exists(const char *list);

/* The value to pass as --kubeconfig for `kubeconfig`: itself, or NULL for
 * NULL and for a ':' list, which only $KUBECONFIG can carry (kubectl
 * takes --kubeconfig as one path); the caller keeps $KUBECONFIG set to
 * the list then. */
const char *kctl_kubeconfig_flag(const char *kubeconfig);
/* Whether `kubeconfig` (may be NULL) is such a list. */
bool kctl_kubeconfig_is_list(const char *kubeconfig);

#endif
