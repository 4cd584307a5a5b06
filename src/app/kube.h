/* kube.h - inside the app layer: what connect and intercept share before
 * they ask about their services.  The kubeconfig and the context are
 * resolved once and handed to every kubectl (a later `kubectl config
 * use-context` or another $KUBECONFIG cannot move them to another
 * cluster); one deadline bounds every kubectl round of the pre-checks. */
#ifndef DEVBRIDGE_APP_KUBE_H
#define DEVBRIDGE_APP_KUBE_H

#include "core/errcode.h"
#include "k8s/kubectl.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct app_kube {
	struct kctl k;
	char kubeconfig[PATH_MAX]; /* given, bridge.kubeconfig, $KUBECONFIG or ~/.kube/config */
	char context[256];	   /* given, bridge.context, or the kubeconfig's current one */
	char namespace[64];	   /* given, bridge.namespace, the context's, or "" */
	unsigned timeout_s;
	uint64_t deadline_ms; /* --timeout bounds the whole command, pre-checks included */
};

struct app;
struct cfg_bridge;
/* The config's bridge: for `profile` (NULL: none) into *b, checked as
 * connect and intercept need it: an unknown profile (suggesting a near
 * one) or an empty bridge.context that no --context (`context`)
 * overrides is exit 3.  0, or the code with e set. */
int kube_bridge(const struct app *a, const char *profile, const char *context, struct cfg_bridge *b,
		struct err *e);

/* Milliseconds left before the deadline for the next kubectl round (at
 * most 20 s, at least 1). */
int kube_time_left_ms(const struct app_kube *p);
/* "no answer within --timeout N s" or "kubectl timed out", into buf. */
const char *kube_timed_out(const struct app_kube *p, char *buf, size_t n);
/* Whether kubectl's stderr `err` says `what`. */
bool kube_says(const char *err, const char *what);

/* The kubeconfig (`given`, else $KUBECONFIG, else ~/.kube/config) made
 * absolute; it must exist (60).  0 or the exit code with e set. */
int kube_resolve_kubeconfig(struct app_kube *p, const char *given, struct err *e);
/* The context (p->context when set, else the kubeconfig's current one)
 * and, when p->namespace is empty, the context's namespace, from the
 * kubeconfig alone (61 when there is none).  0 or the exit code. */
int kube_resolve_context(struct app_kube *p, struct err *e);

/* The errors any get can give that are not about the object: 68
 * (Forbidden), 61 (credentials refused, anything else). */
int kube_get_error(const struct app_kube *p, const char *err, const char *what, struct err *e);
/* `kubectl get --raw /version` answered (61; 1 without kubectl). */
int kube_check_cluster(const struct app_kube *p, const struct kctl_job *j, struct err *e);
/* `kubectl get namespace NS` found it (62); a user who may not read
 * namespaces passes (the service check that follows still speaks). */
int kube_check_namespace(const struct app_kube *p, const char *ns, const struct kctl_job *j,
			 struct err *e);

#endif
