/* intercept.c - Kubernetes: `intercept SVC --steal|--mirror`, step 1 of
 * docs/intercept.md ("The CLI's order"): validate against the cluster
 * touching nothing, and make the plan (the objects, the swapped Service)
 * that --dry-run shows and the real run will carry out.  See app.h. */
#include "app/app.h"
#include "app/config.h"
#include "app/kube.h"
#include "core/errcode.h"
#include "core/log.h"
#include "core/schema.h"
#include "core/state.h"
#include "core/util.h"
#include "k8s/icept.h"
#include "k8s/intercept.h"
#include "k8s/kubectl.h"
#include "k8s/session.h"
#include "k8s/target.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMAGE_MAX 512

struct app_iplan {
	struct app_kube kube;
	char service[64];
	enum intercept_mode mode;
	char image[IMAGE_MAX + 1];
	char sid[ICPT_SID_LEN + 1];
	char token[ICPT_TOKEN_LEN + 1];
	struct icpt_spec specs[ICPT_MAX_PORTS];
	size_t n_specs;
	int local_port;
	struct icpt_found found; /* every target a number once planned */
	char pod[256];		 /* the Ready pod named targetPorts came from ("" none) */
	json_t *svc;		 /* the Service as read */
	json_t *objects;	 /* ServiceAccount, Role, RoleBinding, Secret, Job */
	json_t *swapped;	 /* the Service after the swap */
	json_t *warnings;	 /* strings */
	json_t *ns_obj;		 /* the namespace as read (NULL: not readable) */
	json_t *pods;		 /* the pods of the selector (NULL: not readable) */
	json_t *swept;		 /* session ids of leftovers removed before validating */
};

/* A user's text, safe to echo on a terminal. */
static const char *clean(const char *s, char *buf, size_t n)
{
	snprintf(buf, n, "%s", s);
	text_sanitize(buf);
	return buf;
}

void app_iplan_free(struct app_iplan *p)
{
	if (!p)
		return;
	json_decref(p->svc);
	json_decref(p->objects);
	json_decref(p->swapped);
	json_decref(p->warnings);
	json_decref(p->ns_obj);
	json_decref(p->pods);
	json_decref(p->swept);
	explicit_bzero(p->token, sizeof p->token);
	free(p);
}

static bool image_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > IMAGE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* The bridge.intercepts entry this command is about: the one for SVC (in
 * the namespace), or the only one when no SVC is given.  NULL when none
 * (with no SVC: a usage error in e). */
static int pick_entry(const struct app *a, const struct cfg_bridge *b,
		      const struct app_intercept_opts *o, const struct cfg_intercept **ret,
		      struct err *e)
{
	char shown[200];
	*ret = NULL;
	if (o->service) {
		for (size_t i = 0; i < b->n_intercepts; i++) {
			const struct cfg_intercept *c = &b->intercepts[i];
			const char *ns = c->namespace ? c->namespace : b->namespace;
			if (c->service && strcmp(c->service, o->service) == 0 &&
			    (!o->namespace || !ns || strcmp(ns, o->namespace) == 0)) {
				*ret = c;
				break;
			}
		}
		return 0;
	}
	if (b->n_intercepts == 1) {
		*ret = &b->intercepts[0];
		return 0;
	}
	if (b->n_intercepts == 0)
		return err_set(e, EXIT_USAGE, "intercept: give the SERVICE to intercept%s%s%s",
			       app_no_config(a) ? "" : " (or list one in bridge.intercepts of ",
			       app_no_config(a) ? "" : a->config_path, app_no_config(a) ? "" : ")");
	char names[600] = "";
	for (size_t i = 0, off = 0; i < b->n_intercepts && off < sizeof names; i++) {
		int w = snprintf(names + off, sizeof names - off, "%s%s", i ? ", " : "",
				 clean(b->intercepts[i].service, shown, sizeof shown));
		off += w > 0 ? (size_t)w : 0;
	}
	return err_set(e, EXIT_USAGE,
		       "intercept: %s lists %zu intercepts (%s): give the SERVICE to intercept",
		       a->config_path, b->n_intercepts, names);
}

/* The options, the config entry and bridge: into p (no cluster asked). */
static int fill_plan(const struct app *a, const struct app_intercept_opts *o, struct app_iplan *p,
		     const char **kubeconfig, struct err *e)
{
	char shown[200], err[200];
	struct cfg_bridge b;
	int br = kube_bridge(a, o->profile, o->context, &b, e);
	if (br)
		return br;
	const struct cfg_intercept *c;
	int r = pick_entry(a, &b, o, &c, e);
	if (r)
		return r;
	if (c && (!c->service || !k8s_dns_label(c->service) ||
		  (c->namespace && !k8s_dns_label(c->namespace)))) {
		snprintf(shown, sizeof shown, "%s%s%s", c->namespace ? c->namespace : "",
			 c->namespace ? "/" : "", c->service ? c->service : "");
		text_sanitize(shown);
		return err_set(e, EXIT_CONFIG,
			       "%s:%d:%d: '%s' is not a valid Kubernetes name (lowercase "
			       "letters, digits, '-')",
			       c->mark.file ? c->mark.file : a->config_path, c->mark.line,
			       c->mark.col, shown);
	}
	const char *svc = o->service ? o->service : c->service;
	if (!k8s_dns_label(svc))
		return err_set(e, EXIT_USAGE,
			       "intercept: '%s' is not a valid service name (lowercase letters, "
			       "digits, '-')",
			       clean(svc, shown, sizeof shown));
	snprintf(p->service, sizeof p->service, "%s", svc);
	/* mode: the flag, else the entry's */
	if (o->mode >= 0)
		p->mode = (enum intercept_mode)o->mode;
	else if (c)
		p->mode = c->mode;
	else
		return err_set(e, EXIT_USAGE,
			       "intercept: give --steal (route the Service's traffic here) or "
			       "--mirror (copy it here)");
	/* ports: the flags, else the entry's */
	if (o->n_ports > ICPT_MAX_PORTS)
		return err_set(e, EXIT_USAGE, "intercept: at most %d ports", ICPT_MAX_PORTS);
	for (size_t i = 0; i < o->n_ports; i++) {
		if (icpt_spec_parse(o->ports[i], &p->specs[i], err, sizeof err) < 0)
			return err_set(e, EXIT_USAGE, "-p '%s': %s",
				       clean(o->ports[i], shown, sizeof shown), err);
		p->n_specs++;
	}
	p->local_port = o->local_port;
	if (!o->n_ports && c && c->port) {
		snprintf(p->specs[0].port, sizeof p->specs[0].port, "%d", c->port);
		p->n_specs = 1;
	}
	if (!o->n_ports && !o->local_port && c && c->local_port)
		p->local_port = c->local_port;
	/* namespace: the flag, the entry's, bridge.namespace (then the
	 * context's, then default: after the context is resolved) */
	const char *ns = o->namespace	     ? o->namespace
			 : c && c->namespace ? c->namespace
					     : b.namespace;
	if (ns && !k8s_dns_label(ns))
		return err_set(e, o->namespace ? EXIT_USAGE : EXIT_CONFIG,
			       "namespace '%s': not a valid namespace name",
			       clean(ns, shown, sizeof shown));
	if (ns)
		snprintf(p->kube.namespace, sizeof p->kube.namespace, "%s", ns);
	/* image */
	const char *img = o->agent_image		    ? o->agent_image
			  : b.agent_image && *b.agent_image ? b.agent_image
							    : icpt_default_image();
	if (!image_ok(img))
		return err_set(e, o->agent_image ? EXIT_USAGE : EXIT_CONFIG,
			       "agent image '%s': expected 1-%d characters without spaces",
			       clean(img, shown, sizeof shown), IMAGE_MAX);
	snprintf(p->image, sizeof p->image, "%s", img);
	const char *cx = o->context ? o->context : b.context;
	if (cx)
		snprintf(p->kube.context, sizeof p->kube.context, "%s", cx);
	*kubeconfig = o->kubeconfig ? o->kubeconfig : b.kubeconfig;
	return 0;
}

/* The Service: exists (63), then icpt_check_service's verdict. */
static int check_service(struct app_iplan *p, const struct kctl_job *j, struct err *e)
{
	char what[160], tb[80], detail[800];
	snprintf(what, sizeof what, "service %s/%s", p->kube.namespace, p->service);
	if (j->status == -ETIMEDOUT)
		return err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE, "cannot read %s: %s", what,
			       kube_timed_out(&p->kube, tb, sizeof tb));
	if (j->status != 0) {
		if (kube_says(j->err, "NotFound") || kube_says(j->err, "not found"))
			return err_set(e, EXIT_K8S_SERVICE_NOT_FOUND,
				       "service '%s' not found in namespace '%s'", p->service,
				       p->kube.namespace);
		return kube_get_error(&p->kube, j->err, what, e);
	}
	json_error_t je;
	p->svc = json_loads(j->out ? j->out : "", JSON_REJECT_DUPLICATES, &je);
	enum icpt_verdict v = p->svc
				  ? icpt_check_service(p->svc, p->specs, p->n_specs, p->local_port,
						       &p->found, detail, sizeof detail)
				  : ICPT_BAD_JSON;
	if (!p->svc)
		snprintf(detail, sizeof detail, "%s", je.text);
	switch (v) {
	case ICPT_OK:
		return 0;
	case ICPT_BAD_JSON:
		return err_set(e, EXIT_ERROR, "cannot make sense of kubectl's answer for %s: %s",
			       what, detail);
	case ICPT_NOT_INTERCEPTABLE:
		return err_set(e, EXIT_K8S_NOT_INTERCEPTABLE, "%s cannot be intercepted: %s", what,
			       detail);
	case ICPT_NO_PORT:
		return err_set(e, EXIT_K8S_SERVICE_NOT_FOUND, "%s: %s", what, detail);
	case ICPT_USAGE:
		return err_set(e, EXIT_USAGE, "%s: %s", what, detail);
	case ICPT_UDP:
		return err_set(e, EXIT_K8S_UNSUPPORTED_PROTOCOL, "%s: %s", what, detail);
	case ICPT_ACTIVE:
		return err_set(e, EXIT_K8S_INTERCEPT_ACTIVE,
			       "%s: %s; when that session is gone for good, its agent restores "
			       "the selector (or remove the annotations by hand)",
			       what, detail);
	}
	return err_set(e, EXIT_ERROR, "%s: unexpected verdict", what);
}

/* Every right of icpt_rights (68, each missing one named), from the
 * answers to one List of SelfSubjectAccessReviews (`job`). */
static int check_rights(struct app_iplan *p, const struct kctl_job *job, struct err *e)
{
	char missing[1200] = "", one[160], msg[512];
	size_t off = 0, nmissing = 0, nr;
	const struct icpt_right *rt = icpt_rights(&nr);
	int ans[64];
	if (nr > ARRAY_SIZE(ans) || job->status != 0 || icpt_ssar_answers(job->out, ans, nr) < 0) {
		/* not an answer: kubectl could not ask */
		kctl_message(job->err, msg, sizeof msg);
		return err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE,
			       "cannot ask which rights you hold in namespace %s: %s",
			       p->kube.namespace,
			       *msg	     ? msg
			       : job->status ? "kubectl failed"
					     : "no answer kubectl "
					       "could read");
	}
	for (size_t i = 0; i < nr; i++) {
		if (ans[i])
			continue;
		icpt_right_str(&rt[i], p->service, one, sizeof one);
		int w = snprintf(missing + off, off < sizeof missing ? sizeof missing - off : 0,
				 "%s%s", nmissing ? ", " : "", one);
		off += w > 0 ? (size_t)w : 0;
		nmissing++;
	}
	if (!nmissing)
		return 0;
	return err_set(e, EXIT_K8S_RBAC_INSUFFICIENT,
		       "intercept needs %zu right%s you lack in namespace %s (context %s): %s "
		       "(`devbridge rbac -n %s --user YOU | kubectl apply -f -` grants them)",
		       nmissing, nmissing == 1 ? "" : "s", p->kube.namespace, p->kube.context,
		       missing, p->kube.namespace);
}

/* Round 2: the pods of the selector (kept for the mesh check), and named
 * targetPorts from a Ready one (63); without named targetPorts, pods that
 * cannot be read only leave the mesh check out. */
static int resolve_named(struct app_iplan *p, struct err *e)
{
	char sel[1024], what[200], detail[400], tb[80];
	snprintf(what, sizeof what, "the pods of service %s/%s", p->kube.namespace, p->service);
	if (icpt_selector_string(p->svc, sel, sizeof sel) < 0)
		return err_set(e, EXIT_ERROR, "service %s/%s: a selector devbridge cannot pass on",
			       p->kube.namespace, p->service);
	const char *args[] = {"get", "pods", "--namespace", p->kube.namespace, "-l", sel,
			      "-o",  "json", NULL};
	struct kctl_job j = {.args = args, .max = 8 << 20};
	kctl_run_all(&p->kube.k, &j, 1, kube_time_left_ms(&p->kube));
	int r = 0;
	if (!p->found.named_targets) {
		p->pods = j.status == 0 ? json_loads(j.out ? j.out : "", 0, NULL) : NULL;
	} else if (j.status == -ETIMEDOUT) {
		r = err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE, "cannot read %s: %s", what,
			    kube_timed_out(&p->kube, tb, sizeof tb));
	} else if (j.status != 0) {
		r = kube_get_error(&p->kube, j.err, what, e);
	} else {
		json_t *list = json_loads(j.out ? j.out : "", 0, NULL);
		const json_t *pod = icpt_ready_pod(list);
		if (!list)
			r = err_set(e, EXIT_ERROR, "cannot make sense of kubectl's answer for %s",
				    what);
		else if (!pod)
			r = err_set(
			    e, EXIT_K8S_SERVICE_NOT_FOUND,
			    "service %s/%s has a named targetPort and no Ready pod (selector "
			    "%s) to resolve it from: the agent listens on numbers",
			    p->kube.namespace, p->service, sel);
		else if (icpt_resolve_targets(&p->found, pod, detail, sizeof detail) < 0)
			r = err_set(e, EXIT_K8S_SERVICE_NOT_FOUND, "service %s/%s: %s",
				    p->kube.namespace, p->service, detail);
		else
			clean(json_string_value(
				  json_object_get(json_object_get(pod, "metadata"), "name")),
			      p->pod, sizeof p->pod);
		p->pods = list;
	}
	free(j.out);
	return r;
}

static int write_temp(const json_t *obj, char *buf, size_t n);

/* Round 1, all at once: the API server, the namespace, the Service, and
 * the rights (one kubectl creating a List of SelfSubjectAccessReviews: a
 * kubectl per right cost ~100 ms of CPU each, most of intercept's start on
 * two CPUs); then the answers in the order docs/intercept.md checks. */
static int validate(struct app_iplan *p, struct err *e)
{
	const char *ns = p->kube.namespace;
	char path[PATH_MAX];
	json_t *list = icpt_ssar_list(p->service, ns);
	int werr = list ? write_temp(list, path, sizeof path) : -ENOMEM;
	json_decref(list);
	if (werr < 0)
		return err_set(e, EXIT_ERROR, "a temporary file for the rights check: %s",
			       strerror(-werr));
	const char *ver[] = {"get", "--raw", "/version", "--request-timeout=10s", NULL};
	const char *nsg[] = {"get", "namespace", ns, "-o", "json", NULL};
	const char *svg[] = {"get", "service", "--namespace", ns, "-o", "json", p->service, NULL};
	const char *cani[] = {"create", "-f", path, "-o", "json", "--validate=false", NULL};
	struct kctl_job jobs[4] = {
	    {.args = ver},
	    {.args = nsg, .max = 1 << 20},
	    {.args = svg, .max = 1 << 20},
	    {.args = cani, .max = 1 << 20},
	};
	kctl_run_all(&p->kube.k, jobs, ARRAY_SIZE(jobs), kube_time_left_ms(&p->kube));
	unlink(path);
	int r = kube_check_cluster(&p->kube, &jobs[0], e);
	if (!r)
		r = kube_check_namespace(&p->kube, ns, &jobs[1], e);
	if (!r && jobs[1].status == 0)
		p->ns_obj = json_loads(jobs[1].out ? jobs[1].out : "", 0, NULL);
	if (!r) {
		r = check_service(p, &jobs[2], e);
		/* Not allowed to read the Service: say every right that lacks. */
		if (r == EXIT_K8S_RBAC_INSUFFICIENT)
			(void)check_rights(p, &jobs[3], e);
	}
	if (!r)
		r = check_rights(p, &jobs[3], e);
	for (size_t i = 0; i < ARRAY_SIZE(jobs); i++)
		free(jobs[i].out);
	if (!r)
		r = resolve_named(p, e);
	char detail[400];
	if (!r && icpt_check_targets(&p->found, detail, sizeof detail) < 0)
		r = err_set(e, EXIT_USAGE, "service %s/%s: %s", ns, p->service, detail);
	return r;
}

static int build(struct app_iplan *p, struct err *e)
{
	int r = random_hex(p->sid, ICPT_SID_LEN);
	if (!r)
		r = random_hex(p->token, ICPT_TOKEN_LEN);
	if (r < 0)
		return err_set(e, EXIT_ERROR, "no random bytes for the session: %s", strerror(-r));
	struct icpt_params ip = {.namespace = p->kube.namespace,
				 .service = p->service,
				 .sid = p->sid,
				 .token = p->token,
				 .image = p->image,
				 .mode = p->mode,
				 .ports = p->found.ports,
				 .n_ports = p->found.n_ports};
	p->objects = icpt_objects(&ip);
	p->swapped = icpt_swapped_service(p->svc, p->sid, p->mode);
	p->warnings = json_array();
	if (!p->objects || !p->swapped || !p->warnings)
		return err_set(e, EXIT_ERROR, "out of memory");
	icpt_port_warnings(p->svc, &p->found, p->warnings);
	icpt_mesh_warnings(p->ns_obj, p->pods, p->warnings);
	return 0;
}

int app_intercept_plan(const struct app *a, const struct app_intercept_opts *o,
		       struct app_iplan **ret, struct err *e)
{
	struct app_iplan *p = calloc(1, sizeof *p);
	if (!p)
		return err_set(e, EXIT_ERROR, "out of memory");
	p->kube.timeout_s = o->timeout_s;
	p->kube.deadline_ms = o->start_ms + (uint64_t)o->timeout_s * 1000;
	const char *kc = NULL;
	int r = fill_plan(a, o, p, &kc, e);
	if (!r)
		r = kube_resolve_kubeconfig(&p->kube, kc, e);
	if (!r)
		r = kube_resolve_context(&p->kube, e);
	if (!r && !p->kube.namespace[0])
		snprintf(p->kube.namespace, sizeof p->kube.namespace, "default");
	/* what dead sessions left in this namespace goes first (a Service
	 * they left swapped would fail validation with 69); a dry run
	 * touches nothing */
	if (!r && !a->dry_run && (p->swept = json_array()))
		(void)app_intercept_sweep(a, &p->kube.k, p->kube.namespace, NULL, NULL, p->swept);
	if (!r)
		r = validate(p, e);
	if (!r)
		r = build(p, e);
	if (r) {
		app_iplan_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

json_t *app_intercept_describe(const struct app_iplan *p, bool redact)
{
	json_t *ports = json_array();
	for (size_t i = 0; i < p->found.n_ports; i++) {
		const struct icpt_port *q = &p->found.ports[i];
		json_array_append_new(ports, json_pack("{s:i, s:s?, s:i, s:s?, s:i}", "port",
						       q->port, "name", q->name[0] ? q->name : NULL,
						       "target_port", q->target, "target_port_name",
						       q->target_name[0] ? q->target_name : NULL,
						       "local_port", q->local));
	}
	json_t *objects = json_deep_copy(p->objects);
	if (redact) {
		size_t i;
		json_t *o;
		json_array_foreach(objects, i, o)
		{
			const char *k = json_string_value(json_object_get(o, "kind"));
			if (k && strcmp(k, "Secret") == 0)
				json_object_set_new(json_object_get(o, "data"), "token",
						    json_string("REDACTED"));
		}
	}
	json_t *after = json_deep_copy(p->swapped);
	/* Server bookkeeping says nothing about the swap. */
	json_object_del(json_object_get(after, "metadata"), "managedFields");
	return json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:o, s:o, s:o, s:O}",
			 "dry_run", 1, "kubeconfig", p->kube.kubeconfig, "context", p->kube.context,
			 "namespace", p->kube.namespace, "service", p->service, "mode",
			 cfg_mode_name(p->mode), "session", p->sid, "image", p->image,
			 "resolved_from", p->pod[0] ? p->pod : NULL, "ports", ports, "objects",
			 objects, "service_after", after, "warnings", p->warnings);
}

/* --- the real run: steps 2-5 of docs/intercept.md --- */

#define POLL_MS		300
#define RESTORE_TRIES	3
#define STEP_TIMEOUT_MS 20000

struct irun {
	const struct app_iplan *p; /* NULL when holding or cleaning up from a state file */
	const struct kctl *k;
	const char *ns, *service, *sid;
	app_progress_fn progress;
	void *pdata;
	uint64_t t0;
	char pod[254];	 /* as struct k8s_fwd's */
	char label[128]; /* devbridge.dev/session=SID */
};

static void step(struct irun *r, const char *what, const char *detail)
{
	if (r->progress)
		r->progress(r->pdata, what, detail, (unsigned)(now_mono_ms() - r->t0));
}

/* `obj` (JSON) to a new 0600 file (a Secret's token is in it); the path
 * into buf.  0 or -errno. */
static int write_temp(const json_t *obj, char *buf, size_t n)
{
	const char *dir = getenv("TMPDIR");
	snprintf(buf, n, "%s/devbridge-intercept-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(buf);
	if (fd < 0)
		return -errno;
	char *text = json_dumps(obj, JSON_COMPACT);
	size_t len = text ? strlen(text) : 0;
	int err = text && write(fd, text, len) == (ssize_t)len ? 0 : -EIO;
	if (text) {
		explicit_bzero(text, len);
		free(text);
	}
	if (close(fd) < 0 && err == 0)
		err = -errno;
	if (err < 0)
		unlink(buf);
	return err;
}

/* kubectl ARGS (-n NS added); stdout kept (max) when ret_out. */
static int kubectl1(struct irun *r, const char *const *args, size_t max, char **ret_out, char *msg,
		    size_t msgn)
{
	const char *v[24];
	size_t n = 0;
	v[n++] = "-n";
	v[n++] = r->ns;
	for (size_t i = 0; args[i] && n < ARRAY_SIZE(v) - 1; i++)
		v[n++] = args[i];
	v[n] = NULL;
	struct kctl_job j = {.args = v, .max = max};
	kctl_run_all(r->k, &j, 1, STEP_TIMEOUT_MS);
	if (j.status != 0)
		kctl_message(j.err, msg, msgn);
	if (ret_out)
		*ret_out = j.out;
	else
		free(j.out);
	return j.status;
}

/* kubectl VERB -f (obj in a 0600 file, removed after). */
static int kubectl_obj(struct irun *r, const char *verb, const json_t *obj, char *msg, size_t n)
{
	char path[PATH_MAX];
	int err = write_temp(obj, path, sizeof path);
	if (err < 0) {
		snprintf(msg, n, "a temporary file: %s", strerror(-err));
		return err;
	}
	/* the server validates (kubectl's client-side schema check needs the
	 * OpenAPI documents, which not every API server serves in full) */
	const char *args[] = {verb, "-f", path, "-o", "name", "--validate=false", NULL};
	int st = kubectl1(r, args, 4096, NULL, msg, n);
	unlink(path);
	return st;
}

/* Delete everything labelled with the session (a Job's pod goes with it). */
static void remove_objects(struct irun *r)
{
	const char *args[] = {"delete",
			      "job,secret,rolebinding,role,serviceaccount",
			      "-l",
			      r->label,
			      "--ignore-not-found",
			      "--wait=false",
			      NULL};
	char msg[256];
	if (kubectl1(r, args, 0, NULL, msg, sizeof msg) != 0)
		step(r, "could not remove the agent's objects", msg);
	else
		step(r, "agent removed", NULL);
}

/* The selector back, exactly (and our annotations gone): 1 restored, 0
 * nothing to restore (the agent did), -1 failed (msg). */
static int restore_service(struct irun *r, char *msg, size_t n)
{
	const char *args[] = {"get", "service", r->service, "-o", "json", NULL};
	for (int i = 0; i < RESTORE_TRIES; i++) {
		char *out = NULL;
		if (kubectl1(r, args, 4 << 20, &out, msg, n) != 0) {
			free(out);
			return kube_says(msg, "NotFound") || kube_says(msg, "not found") ? 0 : -1;
		}
		json_t *svc = out ? json_loads(out, 0, NULL) : NULL, *back = NULL;
		free(out);
		int rr = svc ? icpt_restored_service(svc, r->sid, &back) : -EINVAL;
		json_decref(svc);
		if (rr == -ENOENT)
			return 0; /* not (or no longer) ours: the agent restored it */
		if (rr < 0) {
			snprintf(msg, n, "the Service's original selector cannot be read back");
			return -1;
		}
		int st = kubectl_obj(r, "replace", back, msg, n);
		json_decref(back);
		if (st == 0)
			return 1;
		if (!kube_says(msg, "Conflict") && !kube_says(msg, "modified"))
			return -1;
	}
	return -1;
}

/* The agent's pod once Ready (into r->pod): 0; or 65 (the Job failed) /
 * 66 (not Ready in time) with e set. */
static int wait_agent(struct irun *r, struct err *e)
{
	char name[64], msg[512] = "";
	icpt_object_name(name, sizeof name, r->p->sid);
	uint64_t deadline =
	    now_mono_ms() + (uint64_t)(r->p->kube.timeout_s ? r->p->kube.timeout_s : 60) * 1000;
	const char *pods[] = {"get", "pods", "-l", r->label, "-o", "json", NULL};
	const char *job[] = {"get", "job", name, "-o", "json", NULL};
	for (;;) {
		char *out = NULL, *jout = NULL;
		kubectl1(r, pods, 4 << 20, &out, msg, sizeof msg);
		kubectl1(r, job, 1 << 20, &jout, msg, sizeof msg);
		json_t *list = out ? json_loads(out, 0, NULL) : NULL;
		json_t *jj = jout ? json_loads(jout, 0, NULL) : NULL;
		free(out);
		free(jout);
		const json_t *ready = list ? icpt_ready_pod(list) : NULL;
		const char *pn = ready ? json_string_value(json_object_get(
					     json_object_get(ready, "metadata"), "name"))
				       : NULL;
		if (pn)
			snprintf(r->pod, sizeof r->pod, "%s", pn);
		/* why a pod is not running, as the kubelet says it */
		char why[256] = "";
		size_t i;
		json_t *pod;
		json_array_foreach(json_object_get(list, "items"), i, pod)
		{
			json_t *cs = json_array_get(
			    json_object_get(json_object_get(pod, "status"), "containerStatuses"),
			    0);
			json_t *w = json_object_get(json_object_get(cs, "state"), "waiting");
			if (json_string_value(json_object_get(w, "reason")))
				snprintf(why, sizeof why, "%s: %s",
					 json_string_value(json_object_get(w, "reason")),
					 json_string_value(json_object_get(w, "message"))
					     ? json_string_value(json_object_get(w, "message"))
					     : "");
		}
		long failed =
		    json_integer_value(json_object_get(json_object_get(jj, "status"), "failed"));
		json_decref(list);
		json_decref(jj);
		if (pn)
			return 0;
		if (failed > 0)
			return err_set(e, EXIT_K8S_AGENT_DEPLOY_FAILED,
				       "the agent Job %s failed%s%s", name, why[0] ? ": " : "",
				       why);
		if (now_mono_ms() >= deadline)
			return err_set(e, EXIT_K8S_AGENT_HEALTH_FAILED,
				       "the agent pod was not Ready within %u s%s%s",
				       r->p->kube.timeout_s ? r->p->kube.timeout_s : 60,
				       why[0] ? ": " : "", why);
		sigset_t pend;
		if (sigpending(&pend) == 0 &&
		    (sigismember(&pend, SIGINT) || sigismember(&pend, SIGTERM)))
			return err_set(e, EXIT_ERROR, "interrupted while waiting for the agent");
		struct timespec ts = {0, POLL_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* --- the held intercept: the tunnel, then the restore and the cleanup --- */

#define STOP_WAIT_MS   30000 /* the holder's restore and deletes, under a slow API */
#define LEFTOVER_AGE_S 60    /* objects without a Job: not one being created now */
#define INTERCEPT_KIND "intercept"

/* What a held intercept is: from the plan, or from its state file (a
 * cleanup without its process). */
struct iheld {
	char name[80];
	char kubeconfig[PATH_MAX], context[256], ns[64], service[64];
	char sid[ICPT_SID_LEN + 1], mode[16], pod[254], started_at[40];
	int control;
	struct icept_map maps[ICEPT_MAX_PORTS];
	size_t n_maps;
	json_t *original; /* the Service's original selector */
	struct kctl k;
};

static void held_kctl(struct iheld *h)
{
	h->k.kubectl = NULL;
	h->k.kubeconfig = h->kubeconfig[0] ? h->kubeconfig : NULL;
	h->k.context = h->context[0] ? h->context : NULL;
	/* A kubeconfig list reaches kubectl through the environment only. */
	if (kctl_kubeconfig_is_list(h->kubeconfig))
		setenv("KUBECONFIG", h->kubeconfig, 1);
}

static void irun_of(struct irun *r, const struct iheld *h, app_progress_fn progress, void *pdata)
{
	memset(r, 0, sizeof *r);
	r->k = &h->k;
	r->ns = h->ns;
	r->service = h->service;
	r->sid = h->sid;
	r->progress = progress;
	r->pdata = pdata;
	r->t0 = now_mono_ms();
	snprintf(r->label, sizeof r->label, "%s=%s", ICPT_LABEL_SESSION, h->sid);
	snprintf(r->pod, sizeof r->pod, "%s", h->pod);
}

/* NAME.state: what `status` shows and what a cleanup needs. */
static int held_write(const struct app *a, const struct iheld *h, const char *state,
		      const char *reason, const char *detail, pid_t pid)
{
	char local[600] = "", remote[700] = "", since[40];
	size_t lo = 0, ro = 0;
	json_t *ports = json_array();
	for (size_t i = 0; i < h->n_maps; i++) {
		json_array_append_new(ports, json_pack("{s:i, s:i}", "port", h->maps[i].service,
						       "local_port", h->maps[i].local));
		int w = snprintf(local + lo, sizeof local - lo, "%s127.0.0.1:%u", i ? "," : "",
				 h->maps[i].local);
		lo += w > 0 && (size_t)w < sizeof local - lo ? (size_t)w : 0;
		w = snprintf(remote + ro, sizeof remote - ro, "%s%u", i ? "," : "",
			     h->maps[i].service);
		ro += w > 0 && (size_t)w < sizeof remote - ro ? (size_t)w : 0;
	}
	char rem[sizeof remote + 400];
	snprintf(rem, sizeof rem, "%s/%s:%s", h->ns, h->service, remote);
	now_iso8601(since, sizeof since);
	json_t *doc = json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:O, s:s, s:s, s:s, s:s, s:i, s:s, "
	    "s:s, s:s, s:s, s:I}",
	    "kind", INTERCEPT_KIND, "name", h->name, "state", state, "since", since, "namespace",
	    h->ns, "service", h->service, "session", h->sid, "mode", h->mode, "ports", ports,
	    "original_selector", h->original ? h->original : json_null(), "agent_pod", h->pod,
	    "kubeconfig", h->kubeconfig, "context", h->context, "started_at", h->started_at,
	    "control_port", h->control, "local", local, "remote", rem, "reason",
	    reason ? reason : "", "detail", detail ? detail : "", "holder_pid", (json_int_t)pid);
	if (!doc)
		return -ENOMEM;
	int r = state_write(a->state_dir, h->name, doc);
	json_decref(doc);
	return r;
}

static bool copy_field(char *dst, size_t n, const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	if (!s || strlen(s) >= n)
		return false;
	snprintf(dst, n, "%s", s);
	return true;
}

/* An intercept state file back into h: 0, or -EINVAL when it is not one
 * (or not one to trust: every name checked before kubectl sees it). */
static int held_read(const struct app *a, const char *name, struct iheld *h)
{
	memset(h, 0, sizeof *h);
	json_t *st = NULL;
	if (!cfg_name_valid(name) || state_read(a->state_dir, name, &st) < 0 || !st)
		return -ENOENT;
	const char *kind = json_string_value(json_object_get(st, "kind"));
	int r = -EINVAL;
	snprintf(h->name, sizeof h->name, "%s", name);
	if (kind && strcmp(kind, INTERCEPT_KIND) == 0 &&
	    copy_field(h->ns, sizeof h->ns, st, "namespace") && k8s_dns_label(h->ns) &&
	    copy_field(h->service, sizeof h->service, st, "service") && k8s_dns_label(h->service) &&
	    copy_field(h->sid, sizeof h->sid, st, "session") && icpt_hex_ok(h->sid, ICPT_SID_LEN) &&
	    copy_field(h->kubeconfig, sizeof h->kubeconfig, st, "kubeconfig") &&
	    copy_field(h->context, sizeof h->context, st, "context")) {
		copy_field(h->mode, sizeof h->mode, st, "mode");
		copy_field(h->pod, sizeof h->pod, st, "agent_pod");
		copy_field(h->started_at, sizeof h->started_at, st, "started_at");
		h->control = (int)json_integer_value(json_object_get(st, "control_port"));
		size_t i;
		json_t *pt;
		json_array_foreach(json_object_get(st, "ports"), i, pt)
		{
			json_int_t sp = json_integer_value(json_object_get(pt, "port"));
			json_int_t lp = json_integer_value(json_object_get(pt, "local_port"));
			if (h->n_maps < ICEPT_MAX_PORTS && sp > 0 && sp < 65536 && lp > 0 &&
			    lp < 65536) {
				h->maps[h->n_maps].service = (uint16_t)sp;
				h->maps[h->n_maps++].local = (uint16_t)lp;
			}
		}
		json_t *o = json_object_get(st, "original_selector");
		h->original = json_is_object(o) ? json_deep_copy(o) : NULL;
		held_kctl(h);
		r = 0;
	}
	json_decref(st);
	return r;
}

static void remove_files(const struct app *a, const char *name)
{
	static const char *const ext[] = {"state", "pid"};
	char path[PATH_MAX];
	for (size_t i = 0; i < ARRAY_SIZE(ext); i++)
		if (state_path(path, sizeof path, a->state_dir, name, ext[i]) == 0)
			unlink(path);
}

/* Restore, then delete; the state file goes when both went well, else it
 * stays (state failed) for a later disconnect.  0, or 67 with e set. */
static int held_cleanup(const struct app *a, const struct iheld *h, app_progress_fn progress,
			void *pdata, pid_t self, struct err *e)
{
	struct irun r;
	irun_of(&r, h, progress, pdata);
	char msg[512] = "";
	int rs = restore_service(&r, msg, sizeof msg);
	if (rs > 0)
		step(&r, "selector restored", h->service);
	else if (rs == 0)
		step(&r, "selector already restored (by the agent)", h->service);
	remove_objects(&r);
	if (rs < 0) {
		(void)held_write(a, h, "failed", "restore_failed", msg, self);
		return err_set(e, EXIT_K8S_SELECTOR_PATCH_FAILED,
			       "restoring the selector of service %s/%s: %s (the agent restores "
			       "it within its grace period; `devbridge disconnect` tries again)",
			       h->ns, h->service, msg);
	}
	remove_files(a, h->name);
	return 0;
}

struct hold_ctx {
	const struct app *a;
	struct iheld *h;
	struct irun *r;
	int ready_fd;
	pid_t self;
};

static void on_held_ready(void *data)
{
	struct hold_ctx *c = data;
	step(c->r, "tunnel up", c->h->pod);
	(void)held_write(c->a, c->h, "connected", NULL, NULL, c->self);
	/* ours counts as live unprobed: a probe would drop our own lock */
	int r = k8s_session_write(c->a->state_dir, c->h->name);
	if (r < 0)
		log_warn("cannot write the session files: %s", strerror(-r));
	if (c->ready_fd >= 0) {
		dprintf(c->ready_fd, "connected 0 -\n");
		close(c->ready_fd);
		c->ready_fd = -1;
	}
}

/* The tunnel (icept_run) until SIGTERM/SIGINT or the agent is gone, with
 * h's lock held (lock_fd), then the restore and the cleanup.  Signals are
 * blocked by the caller.  0, or the code with e set. */
static int hold(const struct app *a, struct iheld *h, const char *token, int ready_fd,
		app_progress_fn progress, void *pdata, struct err *e)
{
	struct irun r;
	irun_of(&r, h, progress, pdata);
	struct hold_ctx c = {.a = a, .h = h, .r = &r, .ready_fd = ready_fd, .self = getpid()};
	(void)held_write(a, h, "starting", NULL, NULL, c.self);
	struct icept_opts io = {
	    .fwd = {.kubectl = h->k.kubectl,
		    .kubeconfig = h->k.kubeconfig,
		    .context = h->k.context,
		    .namespace = h->ns,
		    .service = h->service,
		    .origin = "intercept"},
	    .token = token,
	    .session = h->sid,
	    .mirror = strcmp(h->mode, "mirror") == 0,
	    .on_ready = on_held_ready,
	    .data = &c,
	};
	snprintf(io.fwd.pod, sizeof io.fwd.pod, "%s", h->pod);
	io.fwd.target_port = h->control ? h->control : ICPT_CONTROL_PORT;
	memcpy(io.maps, h->maps, sizeof io.maps);
	io.n_maps = h->n_maps;
	sigset_t pend;
	int run = 0;
	if (sigpending(&pend) == 0 && (sigismember(&pend, SIGINT) || sigismember(&pend, SIGTERM)))
		run = 0; /* stopped before the tunnel: straight to the restore */
	else
		run = icept_run(&io);
	step(&r, run == 0 ? "stopping" : "the agent is gone", NULL);
	(void)held_write(a, h, "stopping", NULL, NULL, c.self);
	if (c.ready_fd >= 0) {
		dprintf(c.ready_fd, "failed %d the tunnel to the agent failed\n",
			run ? run : EXIT_ERROR);
		close(c.ready_fd);
	}
	int code = held_cleanup(a, h, progress, pdata, c.self, e);
	int sr = k8s_session_write(a->state_dir, NULL);
	if (sr < 0)
		log_warn("cannot write the session files: %s", strerror(-sr));
	if (!code && run != 0)
		code = err_set(e, run,
			       "the tunnel to the agent failed: it is gone (the Service was "
			       "restored)");
	return code;
}

static void block_stop_signals(sigset_t *old)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, old);
}

static void unblock_stop_signals(const sigset_t *old)
{
	/* what was pressed while we cleaned up is consumed, not re-raised */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	struct timespec zero = {0, 0};
	while (sigtimedwait(&mask, NULL, &zero) > 0)
		;
	sigprocmask(SIG_SETMASK, old, NULL);
}

int app_intercept_hold(const struct app *a, const char *name, const char *token, int ready_fd,
		       struct err *e)
{
	sigset_t old;
	block_stop_signals(&old);
	struct iheld h;
	int code = 0;
	pid_t holder = 0;
	int lock = -1;
	if (held_read(a, name, &h) < 0) {
		code = err_set(e, EXIT_ERROR, "%s: no intercept state to hold", name);
	} else if ((lock = state_lock(a->state_dir, name, &holder)) < 0) {
		code = err_set(e, EXIT_ERROR, "%s: %s", name,
			       lock == -EBUSY ? "held by another process" : strerror(-lock));
		if (lock == -EBUSY && ready_fd >= 0) {
			dprintf(ready_fd, "busy %ld -\n", (long)holder);
			close(ready_fd);
			ready_fd = -1;
		}
	} else {
		log_info("%s: holding the intercept of %s/%s (session %s, agent %s)", name, h.ns,
			 h.service, h.sid, h.pod);
		code = hold(a, &h, token, ready_fd, NULL, NULL, e);
		ready_fd = -1;
		if (code)
			log_error("%s: %s", name, e->message);
		else
			log_info("%s: restored and cleaned up", name);
	}
	if (ready_fd >= 0) {
		dprintf(ready_fd, "failed %d %s\n", code ? code : EXIT_ERROR, e->message);
		close(ready_fd);
	}
	json_decref(h.original);
	if (lock >= 0)
		close(lock);
	unblock_stop_signals(&old);
	return code;
}

/* The plan's intercept, to hold. */
static void held_of_plan(struct iheld *h, const struct app_iplan *p, const char *name,
			 const char *pod)
{
	memset(h, 0, sizeof *h);
	snprintf(h->name, sizeof h->name, "%s", name);
	snprintf(h->kubeconfig, sizeof h->kubeconfig, "%s", p->kube.kubeconfig);
	snprintf(h->context, sizeof h->context, "%s", p->kube.context);
	snprintf(h->ns, sizeof h->ns, "%s", p->kube.namespace);
	snprintf(h->service, sizeof h->service, "%s", p->service);
	snprintf(h->sid, sizeof h->sid, "%s", p->sid);
	snprintf(h->mode, sizeof h->mode, "%s", cfg_mode_name(p->mode));
	snprintf(h->pod, sizeof h->pod, "%s", pod);
	now_iso8601(h->started_at, sizeof h->started_at);
	int control = ICPT_CONTROL_PORT, health = ICPT_HEALTH_PORT;
	icpt_agent_ports(p->found.ports, p->found.n_ports, &control, &health);
	h->control = control;
	for (size_t i = 0; i < p->found.n_ports && i < ICEPT_MAX_PORTS; i++) {
		h->maps[i].service = (uint16_t)p->found.ports[i].port;
		h->maps[i].local = (uint16_t)p->found.ports[i].local;
		h->n_maps++;
	}
	h->original = json_deep_copy(json_object_get(json_object_get(p->svc, "spec"), "selector"));
	h->k = p->kube.k;
}

void app_intercept_name(const char *service, char *buf, size_t n)
{
	snprintf(buf, n, "intercept-%s", service);
}

/* The detached holder: `__intercept NAME`, the token on its stdin. */
static int start_holder(const struct app *a, struct iheld *h, const char *token, unsigned wait_s,
			struct app_started *s)
{
	char *argv[12];
	size_t n = 1;
	char sd[PATH_MAX + 16];
	snprintf(sd, sizeof sd, "%s", a->state_dir);
	argv[n++] = "--state-dir";
	argv[n++] = sd;
	if (a->verbose)
		argv[n++] = a->verbose > 1 ? "-vv" : "-v";
	argv[n++] = "__intercept";
	argv[n++] = h->name;
	argv[n] = NULL;
	int in[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	/* 64 bytes into an empty pipe never blocks */
	if (dprintf(in[1], "%s\n", token) < 0) {
		close(in[0]);
		close(in[1]);
		return -EIO;
	}
	close(in[1]);
	memset(s, 0, sizeof *s);
	s->name = h->name;
	s->fd = -1;
	int r = app_spawn_supervisor_stdin(a, s, argv, false, in[0]);
	close(in[0]);
	if (r < 0)
		return r;
	app_wait_ready(s, 1, (int)wait_s);
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	return 0;
}

int app_intercept(const struct app *a, struct app_iplan *p, bool foreground,
		  app_progress_fn progress, void *pdata, json_t **ret_doc, struct err *e)
{
	*ret_doc = NULL;
	char name[80];
	app_intercept_name(p->service, name, sizeof name);
	pid_t other = state_probe(a->state_dir, name);
	if (other)
		return err_set(e, EXIT_K8S_INTERCEPT_ACTIVE,
			       "%s is active already (pid %ld): `devbridge down %s` first", name,
			       (long)other, name);
	struct irun r = {.p = p,
			 .k = &p->kube.k,
			 .ns = p->kube.namespace,
			 .service = p->service,
			 .sid = p->sid,
			 .progress = progress,
			 .pdata = pdata,
			 .t0 = now_mono_ms()};
	snprintf(r.label, sizeof r.label, "%s=%s", ICPT_LABEL_SESSION, p->sid);
	if (json_array_size(p->swept)) {
		char sids[400] = "";
		size_t off = 0, i;
		json_t *v;
		json_array_foreach(p->swept, i, v)
		{
			int w = snprintf(sids + off, sizeof sids - off, "%s%s", i ? ", " : "",
					 json_string_value(v));
			off += w > 0 && (size_t)w < sizeof sids - off ? (size_t)w : 0;
		}
		step(&r, "leftovers of dead sessions removed", sids);
	}
	/* Ctrl+C from here on is noticed between steps and cleans up */
	sigset_t old;
	block_stop_signals(&old);

	char msg[512] = "";
	int code = 0;
	struct iheld h = {0};
	json_t *list =
	    json_pack("{s:s, s:s, s:O}", "apiVersion", "v1", "kind", "List", "items", p->objects);
	int st = list ? kubectl_obj(&r, "create", list, msg, sizeof msg) : -ENOMEM;
	json_decref(list);
	if (st != 0) {
		code = err_set(e, EXIT_K8S_AGENT_DEPLOY_FAILED, "creating the agent's objects: %s",
			       msg);
		remove_objects(&r);
		goto out;
	}
	step(&r, "agent objects created", p->sid);
	if ((code = wait_agent(&r, e)) != 0) {
		remove_objects(&r);
		goto out;
	}
	step(&r, "agent ready", r.pod);
	/* the swap: one update with the resourceVersion read when planning */
	if (kubectl_obj(&r, "replace", p->swapped, msg, sizeof msg) != 0) {
		code = err_set(e, EXIT_K8S_SELECTOR_PATCH_FAILED,
			       "replacing the selector of service %s: %s%s", p->service, msg,
			       kube_says(msg, "Conflict") || kube_says(msg, "modified")
				   ? " (it changed since it was read: run intercept again)"
				   : "");
		remove_objects(&r);
		goto out;
	}
	step(&r, "selector swapped", p->service);
	held_of_plan(&h, p, name, r.pod);

	pid_t pid = 0;
	bool restored = true;
	if (foreground) {
		pid_t holder = 0;
		int lock = state_lock(a->state_dir, name, &holder);
		if (lock < 0)
			log_warn("%s: cannot take its lock (%s): status will not show it", name,
				 strerror(-lock));
		code = hold(a, &h, p->token, -1, progress, pdata, e);
		restored = code != EXIT_K8S_SELECTOR_PATCH_FAILED;
		if (lock >= 0)
			close(lock);
	} else {
		/* the holder reads its intercept from NAME.state */
		int wr = held_write(a, &h, "starting", NULL, NULL, 0);
		struct app_started s;
		uint64_t now = now_mono_ms();
		unsigned wait_s = now < p->kube.deadline_ms
				      ? (unsigned)((p->kube.deadline_ms - now + 999) / 1000)
				      : 1;
		if (wait_s < 30)
			wait_s = 30; /* the port-forward and the hello, after the agent's wait */
		int sr = wr < 0 ? wr : start_holder(a, &h, p->token, wait_s, &s);
		if (sr == 0 && s.result && strcmp(s.result, "connected") == 0) {
			pid = s.pid;
			step(&r, "tunnel up", r.pod);
			step(&r, "detached", name);
		} else {
			if (sr < 0)
				code = err_set(e, EXIT_ERROR,
					       "cannot start the intercept's process: %s",
					       strerror(-sr));
			else
				code = err_set(e, s.code ? s.code : EXIT_ERROR, "%s",
					       s.message[0] ? s.message
							    : "the intercept's process failed");
			/* it restores on SIGTERM; when it is gone, we do */
			struct err e2 = {0};
			if (sr < 0)
				(void)held_cleanup(a, &h, progress, pdata, 0, &e2);
			else
				(void)app_intercept_stop(a, name, &e2);
			restored = e2.code == 0;
		}
	}
	json_t *ports = json_array();
	for (size_t i = 0; i < p->found.n_ports; i++)
		json_array_append_new(ports, json_pack("{s:i, s:i}", "port", p->found.ports[i].port,
						       "local_port", p->found.ports[i].local));
	*ret_doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:b, s:b}", "name", name,
			     "namespace", p->kube.namespace, "service", p->service, "mode",
			     cfg_mode_name(p->mode), "session", p->sid, "agent_pod", r.pod, "ports",
			     ports, "detached", pid > 0, "restored", restored);
	if (p->swept)
		json_object_set(*ret_doc, "leftovers_removed", p->swept);
	if (pid > 0) {
		json_object_set_new(*ret_doc, "pid", json_integer(pid));
		json_object_set_new(*ret_doc, "state", json_string("connected"));
	}
out:
	json_decref(h.original);
	unblock_stop_signals(&old);
	return code;
}

/* --- stopping, and what is left of dead sessions --- */

int app_intercept_stop(const struct app *a, const char *name, struct err *e)
{
	struct err local = {0};
	if (!e)
		e = &local;
	int s = app_stop_bridge_wait(a, name, STOP_WAIT_MS);
	if (s < 0) {
		err_set(e, EXIT_ERROR, "%s: cannot stop: %s", name, strerror(-s));
		return -1;
	}
	struct iheld h;
	int rr = held_read(a, name, &h);
	if (rr == -ENOENT) {
		/* the holder restored and cleaned up */
		remove_files(a, name);
		(void)k8s_session_write(a->state_dir, NULL);
		return s;
	}
	if (rr < 0) {
		json_decref(h.original);
		err_set(e, EXIT_ERROR, "%s: not an intercept's state", name);
		return -1;
	}
	/* its process is gone without cleaning up (killed), or it could not
	 * restore: do it from what it saved */
	int code = held_cleanup(a, &h, NULL, NULL, 0, e);
	json_decref(h.original);
	(void)k8s_session_write(a->state_dir, NULL);
	return code ? -1 : s;
}

json_t *app_intercept_names(const struct app *a)
{
	json_t *names = json_array();
	DIR *d = a->state_dir ? opendir(a->state_dir) : NULL;
	if (!d)
		return names;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n <= 6 || n - 6 >= 80 || strcmp(de->d_name + n - 6, ".state") != 0)
			continue;
		char name[80];
		snprintf(name, sizeof name, "%.*s", (int)(n - 6), de->d_name);
		if (app_is_intercept(a, name))
			json_array_append_new(names, json_string(name));
	}
	closedir(d);
	return names;
}

bool app_is_intercept(const struct app *a, const char *name)
{
	json_t *st = NULL;
	if (!cfg_name_valid(name) || state_read(a->state_dir, name, &st) < 0 || !st)
		return false;
	const char *kind = json_string_value(json_object_get(st, "kind"));
	bool yes = kind && strcmp(kind, INTERCEPT_KIND) == 0;
	json_decref(st);
	return yes;
}

/* One session's objects in a namespace, as listed. */
struct lsess {
	char sid[ICPT_SID_LEN + 1];
	bool job, job_done, here_dead;
	double newest; /* creationTimestamp of its newest object */
};

static struct lsess *lsess_get(struct lsess *v, size_t *n, size_t cap, const char *sid)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(v[i].sid, sid) == 0)
			return &v[i];
	if (*n >= cap)
		return NULL;
	struct lsess *s = &v[(*n)++];
	memset(s, 0, sizeof *s);
	snprintf(s->sid, sizeof s->sid, "%s", sid);
	return s;
}

static bool job_finished(const json_t *job)
{
	const json_t *st = json_object_get(job, "status");
	if (json_integer_value(json_object_get(st, "succeeded")) > 0 ||
	    json_integer_value(json_object_get(st, "failed")) > 0)
		return true;
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(st, "conditions"), i, c)
	{
		const char *t = json_string_value(json_object_get(c, "type"));
		const char *v = json_string_value(json_object_get(c, "status"));
		if (t && v && strcmp(v, "True") == 0 &&
		    (strcmp(t, "Complete") == 0 || strcmp(t, "Failed") == 0))
			return true;
	}
	return false;
}

#define SWEEP_MAX 64

int app_intercept_sweep(const struct app *a, const struct kctl *k, const char *ns,
			app_progress_fn progress, void *pdata, json_t *removed)
{
	/* this machine's sessions: live ones are kept, dead ones cleaned up */
	json_t *names = app_intercept_names(a);
	char live[SWEEP_MAX][ICPT_SID_LEN + 1];
	size_t nlive = 0;
	size_t i;
	json_t *v;
	json_array_foreach(names, i, v)
	{
		const char *name = json_string_value(v);
		struct iheld h;
		if (held_read(a, name, &h) < 0) {
			json_decref(h.original);
			continue;
		}
		bool is_live = state_probe(a->state_dir, name) != 0;
		if (is_live && nlive < SWEEP_MAX)
			snprintf(live[nlive++], sizeof live[0], "%s", h.sid);
		else if (!is_live && strcmp(h.ns, ns) == 0) {
			struct err e = {0};
			if (app_intercept_stop(a, name, &e) >= 0)
				json_array_append_new(removed, json_string(h.sid));
			if (nlive < SWEEP_MAX) /* done with it either way */
				snprintf(live[nlive++], sizeof live[0], "%s", h.sid);
		}
		json_decref(h.original);
	}
	json_decref(names);

	/* sessions whose objects are in the cluster and that no process here
	 * holds: leftovers once their agent is gone (its Job finished, or no
	 * Job and nothing created for a while: not a session being set up
	 * now, perhaps on another machine) */
	struct irun r = {
	    .k = k, .ns = ns, .progress = progress, .pdata = pdata, .t0 = now_mono_ms()};
	char sel[128], msg[512];
	snprintf(sel, sizeof sel, "%s=devbridge", ICPT_LABEL_MANAGED);
	const char *get[] = {
	    "get", "job,secret,rolebinding,role,serviceaccount", "-l", sel, "-o", "json", NULL};
	char *out = NULL;
	if (kubectl1(&r, get, 8 << 20, &out, msg, sizeof msg) != 0) {
		free(out);
		return -EIO;
	}
	json_t *list = json_loads(out ? out : "", 0, NULL);
	free(out);
	struct lsess sess[SWEEP_MAX];
	size_t nsess = 0;
	json_t *o;
	json_array_foreach(json_object_get(list, "items"), i, o)
	{
		const json_t *md = json_object_get(o, "metadata");
		const char *sid = json_string_value(
		    json_object_get(json_object_get(md, "labels"), ICPT_LABEL_SESSION));
		if (!sid || strlen(sid) != ICPT_SID_LEN || !icpt_hex_ok(sid, ICPT_SID_LEN))
			continue;
		struct lsess *s = lsess_get(sess, &nsess, SWEEP_MAX, sid);
		if (!s)
			break;
		const char *kind = json_string_value(json_object_get(o, "kind"));
		if (kind && strcmp(kind, "Job") == 0) {
			s->job = true;
			s->job_done = job_finished(o);
		}
		double t = 0;
		if (parse_iso8601(json_string_value(json_object_get(md, "creationTimestamp")) ?: "",
				  &t) == 0 &&
		    t > s->newest)
			s->newest = t;
	}
	json_decref(list);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	json_t *svcs = NULL;
	for (size_t s = 0; s < nsess; s++) {
		bool keep = false;
		for (size_t l = 0; l < nlive; l++)
			keep |= strcmp(live[l], sess[s].sid) == 0;
		if (keep)
			continue;
		if (sess[s].job ? !sess[s].job_done
				: (double)now.tv_sec - sess[s].newest < LEFTOVER_AGE_S)
			continue;
		r.sid = sess[s].sid;
		snprintf(r.label, sizeof r.label, "%s=%.*s", ICPT_LABEL_SESSION, ICPT_SID_LEN,
			 r.sid);
		/* the Service that still carries this session's annotation */
		if (!svcs) {
			const char *gs[] = {"get", "services", "-o", "json", NULL};
			char *so = NULL;
			if (kubectl1(&r, gs, 16 << 20, &so, msg, sizeof msg) == 0)
				svcs = json_loads(so ? so : "", 0, NULL);
			free(so);
		}
		size_t k2;
		json_t *sv;
		json_array_foreach(json_object_get(svcs, "items"), k2, sv)
		{
			const json_t *md = json_object_get(sv, "metadata");
			const char *ann = json_string_value(
			    json_object_get(json_object_get(md, "annotations"), ICPT_ANN_SESSION));
			const char *sn = json_string_value(json_object_get(md, "name"));
			if (!ann || !sn || strcmp(ann, r.sid) != 0 || !k8s_dns_label(sn))
				continue;
			r.service = sn;
			int rs = restore_service(&r, msg, sizeof msg);
			step(&r,
			     rs > 0    ? "leftover: selector restored"
			     : rs == 0 ? "leftover: selector already restored"
				       : "leftover: could not restore the selector",
			     sn);
		}
		step(&r, "leftover session", r.sid);
		remove_objects(&r);
		json_array_append_new(removed, json_string(r.sid));
	}
	json_decref(svcs);
	return 0;
}

/* Where this machine's intercepts are: each (kubeconfig, context,
 * namespace) of a state file here, once. */
struct where {
	struct iheld h[SWEEP_MAX];
	size_t n;
};

static void where_add(struct where *w, const struct iheld *h)
{
	for (size_t i = 0; i < w->n; i++)
		if (!strcmp(w->h[i].ns, h->ns) && !strcmp(w->h[i].context, h->context) &&
		    !strcmp(w->h[i].kubeconfig, h->kubeconfig))
			return;
	if (w->n < SWEEP_MAX) {
		w->h[w->n] = *h;
		w->h[w->n].original = NULL;
		held_kctl(&w->h[w->n]);
		w->n++;
	}
}

static void where_known(const struct app *a, struct where *w)
{
	json_t *names = app_intercept_names(a);
	size_t i;
	json_t *v;
	json_array_foreach(names, i, v)
	{
		struct iheld h;
		if (held_read(a, json_string_value(v), &h) == 0)
			where_add(w, &h);
		json_decref(h.original);
	}
	json_decref(names);
}

static void where_sweep(const struct app *a, struct where *w, json_t *removed)
{
	for (size_t i = 0; i < w->n; i++)
		(void)app_intercept_sweep(a, &w->h[i].k, w->h[i].ns, NULL, NULL, removed);
}

int app_intercept_sweep_all(const struct app *a, const struct kctl *k, const char *ns,
			    json_t *removed)
{
	struct where *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	where_known(a, w);
	where_sweep(a, w, removed);
	bool done = false;
	for (size_t i = 0; i < w->n && ns; i++)
		done |= !strcmp(w->h[i].ns, ns);
	int r = 0;
	if (k && ns && !done)
		r = app_intercept_sweep(a, k, ns, NULL, NULL, removed);
	free(w);
	return r;
}

int app_intercept_disconnect(const struct app *a, int n, char **names, json_t *rows, struct err *e)
{
	struct where *w = calloc(1, sizeof *w);
	if (!w)
		return err_set(e, EXIT_ERROR, "out of memory");
	where_known(a, w);
	json_t *all = app_intercept_names(a);
	int code = 0;
	size_t i;
	json_t *v;
	json_array_foreach(all, i, v)
	{
		const char *name = json_string_value(v);
		struct iheld h;
		bool picked = n == 0;
		if (held_read(a, name, &h) == 0)
			for (int k = 0; k < n; k++)
				picked |= !strcmp(names[k], name) || !strcmp(names[k], h.service);
		json_decref(h.original);
		if (!picked)
			continue;
		if (a->dry_run) {
			bool live = state_probe(a->state_dir, name) != 0;
			json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "name", name,
							      "kind", INTERCEPT_KIND, "result",
							      live ? "would_stop" : "would_clear"));
			continue;
		}
		struct err e1 = {0};
		int s = app_intercept_stop(a, name, &e1);
		json_t *row =
		    json_pack("{s:s, s:s, s:s}", "name", name, "kind", INTERCEPT_KIND, "result",
			      s > 0    ? "stopped"
			      : s == 0 ? "cleared"
				       : "error");
		if (s < 0) {
			code = err_set(e, e1.code ? e1.code : EXIT_ERROR, "%s", e1.message);
			json_object_set_new(row, "message", json_string(e1.message));
		}
		json_array_append_new(rows, row);
	}
	json_decref(all);
	if (!a->dry_run) {
		json_t *removed = json_array();
		where_sweep(a, w, removed);
		json_array_foreach(removed, i, v)
		{
			json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "name",
							      json_string_value(v), "kind",
							      "leftover", "result", "removed"));
		}
		json_decref(removed);
	}
	free(w);
	return code;
}
