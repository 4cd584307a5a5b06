/* kube.c - what connect and intercept share before they ask the cluster
 * anything about their services: the kubeconfig and context resolved
 * once, the deadline of the pre-checks, and the errors of any kubectl get
 * (60-62, 68, 1).  See kube.h. */
#include "app/kube.h"
#include "app/app.h"
#include "app/config.h"
#include "core/util.h"
#include "k8s/target.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KCTL_TIMEOUT_MS 20000

/* Milliseconds left before --timeout, for the next kubectl round. */
int kube_bridge(const struct app *a, const char *profile, const char *context, struct cfg_bridge *b,
		struct err *e)
{
	char shown[200];
	if (cfg_bridge_resolve(a->cfg, profile, b) < 0) {
		const char *near = cfg_profile_suggest(a->cfg, profile);
		snprintf(shown, sizeof shown, "%s", profile ? profile : "");
		text_sanitize(shown);
		if (app_no_config(a))
			return err_set(e, EXIT_CONFIG,
				       "no profile '%s': no config file was found (give --config "
				       "FILE)",
				       shown);
		return err_set(e, EXIT_CONFIG, "no profile '%s' in %s%s%s%s", shown, a->config_path,
			       near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
	}
	if (!context && b->context && !*b->context)
		return err_set(e, EXIT_CONFIG,
			       "%s: bridge.context is empty; remove it to use the kubeconfig's "
			       "current context",
			       a->config_path);
	return 0;
}

int kube_time_left_ms(const struct app_kube *p)
{
	uint64_t now = now_mono_ms();
	if (now >= p->deadline_ms)
		return 1;
	uint64_t left = p->deadline_ms - now;
	return left < KCTL_TIMEOUT_MS ? (int)left : KCTL_TIMEOUT_MS;
}

bool kube_says(const char *err, const char *what)
{
	return strstr(err, what) != NULL;
}

const char *kube_timed_out(const struct app_kube *p, char *buf, size_t n)
{
	if (now_mono_ms() + 50 >= p->deadline_ms)
		snprintf(buf, n, "no answer within --timeout %u s", p->timeout_s);
	else
		snprintf(buf, n, "kubectl timed out");
	return buf;
}

/* The kubeconfig as recorded: a given path made absolute (the supervisors
 * outlive this directory), else $KUBECONFIG (a ':' list stays a list and
 * reaches kubectl through the environment), else ~/.kube/config.  Then
 * it must exist (60). */
int kube_resolve_kubeconfig(struct app_kube *p, const char *given, struct err *e)
{
	char abs[PATH_MAX];
	const char *kc = given;
	if (kc && kc[0] != '/' && realpath(kc, abs))
		kc = abs;
	if (kc)
		snprintf(p->kubeconfig, sizeof p->kubeconfig, "%s", kc);
	else
		kctl_default_kubeconfig(p->kubeconfig, sizeof p->kubeconfig);
	if (!given && !strchr(p->kubeconfig, ':') && p->kubeconfig[0] != '/' &&
	    realpath(p->kubeconfig, abs))
		snprintf(p->kubeconfig, sizeof p->kubeconfig, "%s", abs);
	if (kctl_kubeconfig_is_list(p->kubeconfig))
		setenv("KUBECONFIG", p->kubeconfig, 1);
	if (!kctl_kubeconfig_exists(p->kubeconfig))
		return err_set(e, EXIT_K8S_KUBECONFIG_NOT_FOUND,
			       "kubeconfig not found: %s (give --kubeconfig, set bridge.kubeconfig "
			       "or $KUBECONFIG)",
			       p->kubeconfig);
	p->k.kubeconfig = p->kubeconfig;
	return 0;
}

/* The context (given, or the kubeconfig's current one) and its namespace,
 * from the kubeconfig alone (no cluster is asked): exit code or 0. */
int kube_resolve_context(struct app_kube *p, struct err *e)
{
	static const char *const view[] = {
	    "config",
	    "view",
	    "--minify",
	    "-o",
	    "jsonpath={.current-context}{\"\\n\"}{.contexts[0].context.namespace}",
	    NULL};
	struct kctl_job job = {.args = view, .max = 4096};
	p->k.context = p->context[0] ? p->context : NULL;
	kctl_run_all(&p->k, &job, 1, kube_time_left_ms(p));
	int code = 0;
	char msg[512], tb[80];
	kctl_message(job.err, msg, sizeof msg);
	if (job.status == -ENOENT) {
		code = err_set(e, EXIT_ERROR, "kubectl not found on PATH: install kubectl");
	} else if (job.status == -ETIMEDOUT) {
		/* (/usr/bin/kubectl as a version dispatcher asks the server
		 * first, with the context's credentials) */
		code =
		    err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE, "cannot resolve the context of %s: %s",
			    p->kubeconfig, kube_timed_out(p, tb, sizeof tb));
	} else if (job.status != 0 && p->context[0] &&
		   (kube_says(job.err, "cannot locate context") ||
		    kube_says(job.err, "does not exist"))) {
		code = err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE, "no context '%s' in kubeconfig %s",
			       p->context, p->kubeconfig);
	} else if (job.status != 0 && kube_says(job.err, "current-context must exist")) {
		code = err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE,
			       "kubeconfig %s has no current context: give --context NAME (or "
			       "bridge.context), or run `kubectl config use-context NAME`",
			       p->kubeconfig);
	} else if (job.status != 0) {
		code = err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE, "cannot use kubeconfig %s: %s",
			       p->kubeconfig, *msg ? msg : "kubectl failed");
	} else {
		char *out = job.out ? job.out : "";
		size_t l = strcspn(out, "\n");
		if (l == 0)
			code =
			    err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE,
				    "kubeconfig %s has no current context: give --context NAME "
				    "(or bridge.context), or run `kubectl config use-context NAME`",
				    p->kubeconfig);
		else if (l >= sizeof p->context)
			code = err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE,
				       "the current context of %s is longer than %zu bytes: give a "
				       "shorter --context",
				       p->kubeconfig, sizeof p->context - 1);
		else
			snprintf(p->context, sizeof p->context, "%.*s", (int)l, out);
		if (!code && !p->namespace[0] && out[l] == '\n') {
			char *ns = out + l + 1;
			ns[strcspn(ns, "\n")] = '\0';
			if (k8s_dns_label(ns))
				snprintf(p->namespace, sizeof p->namespace, "%s", ns);
		}
	}
	free(job.out);
	p->k.context = p->context;
	return code;
}

/* The errors every get can give that are not about the object. */
int kube_get_error(const struct app_kube *p, const char *err, const char *what, struct err *e)
{
	char msg[512];
	kctl_message(err, msg, sizeof msg);
	if (kube_says(err, "Forbidden") || kube_says(err, "forbidden"))
		return err_set(e, EXIT_K8S_RBAC_INSUFFICIENT,
			       "not allowed to read %s: %s (see `devbridge rbac`)", what, msg);
	if (kube_says(err, "Unauthorized") || kube_says(err, "must be logged in"))
		return err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE,
			       "the cluster refused the credentials of context %s: %s", p->context,
			       msg);
	return err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE, "cannot read %s: %s", what,
		       *msg ? msg : "kubectl failed");
}

/* The API server answers (61). */
int kube_check_cluster(const struct app_kube *p, const struct kctl_job *j, struct err *e)
{
	char msg[512], tb[80];
	if (j->status == 0)
		return 0;
	if (j->status == -ENOENT)
		return err_set(e, EXIT_ERROR, "kubectl not found on PATH: install kubectl");
	kctl_message(j->err, msg, sizeof msg);
	return err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE, "cluster of context %s unreachable: %s",
		       p->context,
		       j->status == -ETIMEDOUT ? kube_timed_out(p, tb, sizeof tb)
		       : *msg		       ? msg
					       : "kubectl failed");
}

/* Namespace exists (62)?  A user who may not read namespaces is not
 * stopped here: the service check that follows still speaks. */
int kube_check_namespace(const struct app_kube *p, const char *ns, const struct kctl_job *j,
			 struct err *e)
{
	char tb[80];
	if (j->status == 0 || kube_says(j->err, "Forbidden") || kube_says(j->err, "forbidden"))
		return 0;
	if (j->status == -ETIMEDOUT)
		return err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE, "cannot read namespace %s: %s", ns,
			       kube_timed_out(p, tb, sizeof tb));
	if (kube_says(j->err, "NotFound") || kube_says(j->err, "not found"))
		return err_set(e, EXIT_K8S_NAMESPACE_NOT_FOUND,
			       "namespace '%s' not found in context %s", ns, p->context);
	char what[128];
	snprintf(what, sizeof what, "namespace %s", ns);
	return kube_get_error(p, j->err, what, e);
}
