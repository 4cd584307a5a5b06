/* intercept_ready.c - Kubernetes: whether `intercept` could run, for
 * `doctor`: the rights it asks for (the same SelfSubjectAccessReviews as
 * its pre-checks, k8s/intercept.c's table) and the namespace's Pod
 * Security level.  Asks, changes nothing.  See app.h. */
#include "app/app.h"
#include "app/kube.h"
#include "core/util.h"
#include "k8s/intercept.h"
#include "k8s/kubectl.h"
#include "k8s/target.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READY_TIMEOUT_S 20

static void row(json_t *rows, const char *check, bool ok, const char *detail)
{
	json_array_append_new(
	    rows, json_pack("{s:s, s:b, s:s}", "check", check, "ok", ok, "detail", detail));
}

/* "pod security": the enforce label of the namespace (job: `get namespace
 * -o json`). */
static void pod_security_row(const struct app_kube *k, const struct kctl_job *j, json_t *rows)
{
	char buf[700], lvl[64], msg[400];
	const char *ns = k->namespace;
	if (j->status != 0) {
		kctl_message(j->err, msg, sizeof msg);
		snprintf(buf, sizeof buf,
			 "namespace %s: cannot read its labels (%s); the agent's pod meets the "
			 "restricted level, so any level admits it",
			 ns,
			 j->status == -ETIMEDOUT ? "kubectl timed out"
			 : *msg			 ? msg
						 : "failed");
		row(rows, "pod security", false, buf);
		return;
	}
	json_t *obj = json_loads(j->out ? j->out : "", 0, NULL);
	icpt_pod_security(obj, lvl, sizeof lvl);
	json_decref(obj);
	if (!lvl[0])
		snprintf(buf, sizeof buf,
			 "namespace %s: no pod-security.kubernetes.io/enforce label (the "
			 "cluster's default applies, privileged unless configured); the agent's "
			 "pod meets restricted, so any level admits it",
			 ns);
	else
		snprintf(buf, sizeof buf,
			 "namespace %s: enforce=%s; the agent's pod meets restricted, so any level "
			 "admits it",
			 ns, lvl);
	row(rows, "pod security", true, buf);
}

/* "intercept rights": every right of icpt_rights, answered by jobs. */
static void rights_row(const struct app_kube *k, const char *service, const struct kctl_job *jobs,
		       json_t *rows)
{
	size_t nr, nmissing = 0, off = 0;
	const struct icpt_right *rt = icpt_rights(&nr);
	char missing[1200] = "", one[160], msg[400], buf[1800];
	for (size_t i = 0; i < nr; i++) {
		int yes = icpt_can_i_answer(jobs[i].status, jobs[i].out);
		icpt_right_str(&rt[i], service, one, sizeof one);
		if (yes < 0) {
			kctl_message(jobs[i].err, msg, sizeof msg);
			snprintf(buf, sizeof buf,
				 "cannot ask whether you may %s in namespace %s: %s", one,
				 k->namespace,
				 jobs[i].status == -ETIMEDOUT ? "kubectl timed out"
				 : *msg			      ? msg
							      : "kubectl failed");
			row(rows, "intercept rights", false, buf);
			return;
		}
		if (yes)
			continue;
		int w = snprintf(missing + off, off < sizeof missing ? sizeof missing - off : 0,
				 "%s%s", nmissing ? ", " : "", one);
		off += w > 0 ? (size_t)w : 0;
		nmissing++;
	}
	if (nmissing)
		snprintf(buf, sizeof buf,
			 "%zu of %zu rights missing in namespace %s (context %s): %s (`devbridge "
			 "rbac -n %s --user YOU | kubectl apply -f -` grants them)",
			 nmissing, nr, k->namespace, k->context, missing, k->namespace);
	else
		snprintf(buf, sizeof buf, "all %zu rights in namespace %s (context %s%s%s)", nr,
			 k->namespace, k->context, service ? ", service " : ", any service",
			 service ? service : "");
	row(rows, "intercept rights", nmissing == 0, buf);
}

int app_intercept_ready(const struct cfg_bridge *b, json_t *rows)
{
	struct app_kube k = {.timeout_s = READY_TIMEOUT_S,
			     .deadline_ms = now_mono_ms() + READY_TIMEOUT_S * 1000};
	struct err e = {0};
	/* the Service a named right is about: the first intercept's, and its
	 * namespace; else any Service in bridge.namespace (or the context's) */
	const struct cfg_intercept *c = b && b->n_intercepts ? &b->intercepts[0] : NULL;
	const char *service = c && c->service && k8s_dns_label(c->service) ? c->service : NULL;
	const char *ns = c && c->namespace ? c->namespace : b ? b->namespace : NULL;
	if (ns && k8s_dns_label(ns))
		snprintf(k.namespace, sizeof k.namespace, "%s", ns);
	if (b && b->context && *b->context)
		snprintf(k.context, sizeof k.context, "%s", b->context);
	if (kube_resolve_kubeconfig(&k, b ? b->kubeconfig : NULL, &e) ||
	    kube_resolve_context(&k, &e)) {
		row(rows, "intercept rights", false, e.message);
		return -EINVAL;
	}
	if (!k.namespace[0])
		snprintf(k.namespace, sizeof k.namespace, "default");

	size_t nr;
	const struct icpt_right *rt = icpt_rights(&nr);
	struct kctl_job *jobs = calloc(nr + 1, sizeof *jobs);
	const char *(*args)[ICPT_CAN_I_ARGS] = calloc(nr, sizeof *args);
	char(*res)[160] = calloc(nr, sizeof *res);
	if (!jobs || !args || !res) {
		free(jobs);
		free(args);
		free(res);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nr; i++) {
		icpt_can_i_args(&rt[i], service, k.namespace, res[i], sizeof res[i], args[i]);
		jobs[i].args = args[i];
		jobs[i].max = 64;
	}
	const char *nsg[] = {"get", "namespace", k.namespace, "-o", "json", NULL};
	jobs[nr].args = nsg;
	jobs[nr].max = 1 << 20;
	kctl_run_all(&k.k, jobs, nr + 1, kube_time_left_ms(&k));
	rights_row(&k, service, jobs, rows);
	pod_security_row(&k, &jobs[nr], rows);
	for (size_t i = 0; i <= nr; i++)
		free(jobs[i].out);
	free(jobs);
	free(args);
	free(res);
	return 0;
}
