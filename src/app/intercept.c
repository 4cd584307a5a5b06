/* intercept.c - Kubernetes: `intercept SVC --steal|--mirror`, step 1 of
 * docs/intercept.md ("The CLI's order"): validate against the cluster
 * touching nothing, and make the plan (the objects, the swapped Service)
 * that --dry-run shows and the real run will carry out.  See app.h. */
#include "app/app.h"
#include "app/config.h"
#include "app/kube.h"
#include "core/errcode.h"
#include "core/util.h"
#include "k8s/icept.h"
#include "k8s/intercept.h"
#include "k8s/kubectl.h"
#include "k8s/target.h"

#include <errno.h>
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
	if (cfg_bridge_resolve(a->cfg, o->profile, &b) < 0) {
		const char *near = cfg_profile_suggest(a->cfg, o->profile);
		if (app_no_config(a))
			return err_set(e, EXIT_CONFIG,
				       "no profile '%s': no config file was found (give --config "
				       "FILE)",
				       clean(o->profile, shown, sizeof shown));
		return err_set(e, EXIT_CONFIG, "no profile '%s' in %s%s%s%s",
			       clean(o->profile, shown, sizeof shown), a->config_path,
			       near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
	}
	if (!o->context && b.context && !*b.context)
		return err_set(e, EXIT_CONFIG,
			       "%s: bridge.context is empty; remove it to use the kubeconfig's "
			       "current context",
			       a->config_path);
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
		return err_set(e, EXIT_USAGE, "intercept: '%s' is not a valid service name",
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

/* Every right of icpt_rights (68, each missing one named). */
static int check_rights(struct app_iplan *p, const struct kctl_job *jobs, size_t n, struct err *e)
{
	char missing[1200] = "", one[160], msg[512];
	size_t off = 0, nmissing = 0, nr;
	const struct icpt_right *rt = icpt_rights(&nr);
	for (size_t i = 0; i < n && i < nr; i++) {
		int yes = icpt_can_i_answer(jobs[i].status, jobs[i].out);
		if (yes == 1)
			continue;
		if (yes < 0) {
			/* not an answer: kubectl could not ask */
			icpt_right_str(&rt[i], p->service, one, sizeof one);
			kctl_message(jobs[i].err, msg, sizeof msg);
			return err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE,
				       "cannot ask whether you may %s in namespace %s: %s", one,
				       p->kube.namespace, *msg ? msg : "kubectl failed");
		}
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

/* Round 1, all at once: the API server, the namespace, the Service, and
 * one SelfSubjectAccessReview (`kubectl auth can-i`) per right; then the
 * answers in the order docs/intercept.md checks. */
static int validate(struct app_iplan *p, struct err *e)
{
	size_t nr;
	const struct icpt_right *rt = icpt_rights(&nr);
	size_t nj = 3 + nr;
	struct kctl_job *jobs = calloc(nj, sizeof *jobs);
	const char *(*args)[12] = calloc(nj, sizeof *args);
	char(*res)[160] = calloc(nr, sizeof *res);
	if (!jobs || !args || !res) {
		free(jobs);
		free(args);
		free(res);
		return err_set(e, EXIT_ERROR, "out of memory");
	}
	const char *ns = p->kube.namespace;
	const char *ver[] = {"get", "--raw", "/version", "--request-timeout=10s", NULL};
	const char *nsg[] = {"get", "namespace", ns, "-o", "json", NULL};
	const char *svg[] = {"get", "service", "--namespace", ns, "-o", "json", p->service, NULL};
	memcpy(args[0], ver, sizeof ver);
	memcpy(args[1], nsg, sizeof nsg);
	memcpy(args[2], svg, sizeof svg);
	jobs[1].max = 1 << 20;
	jobs[2].max = 1 << 20;
	for (size_t i = 0; i < nr; i++) {
		icpt_can_i_args(&rt[i], p->service, ns, res[i], sizeof res[i], args[3 + i]);
		jobs[3 + i].max = 64;
	}
	for (size_t i = 0; i < nj; i++)
		jobs[i].args = args[i];
	kctl_run_all(&p->kube.k, jobs, nj, kube_time_left_ms(&p->kube));
	int r = kube_check_cluster(&p->kube, &jobs[0], e);
	if (!r)
		r = kube_check_namespace(&p->kube, ns, &jobs[1], e);
	if (!r && jobs[1].status == 0)
		p->ns_obj = json_loads(jobs[1].out ? jobs[1].out : "", 0, NULL);
	if (!r) {
		r = check_service(p, &jobs[2], e);
		/* Not allowed to read the Service: say every right that lacks. */
		if (r == EXIT_K8S_RBAC_INSUFFICIENT)
			(void)check_rights(p, jobs + 3, nr, e);
	}
	if (!r)
		r = check_rights(p, jobs + 3, nr, e);
	for (size_t i = 0; i < nj; i++)
		free(jobs[i].out);
	free(jobs);
	free(args);
	free(res);
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
	const struct app_iplan *p;
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
	v[n++] = r->p->kube.namespace;
	for (size_t i = 0; args[i] && n < ARRAY_SIZE(v) - 1; i++)
		v[n++] = args[i];
	v[n] = NULL;
	struct kctl_job j = {.args = v, .max = max};
	kctl_run_all(&r->p->kube.k, &j, 1, STEP_TIMEOUT_MS);
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
	const char *args[] = {"get", "service", r->p->service, "-o", "json", NULL};
	for (int i = 0; i < RESTORE_TRIES; i++) {
		char *out = NULL;
		if (kubectl1(r, args, 4 << 20, &out, msg, n) != 0) {
			free(out);
			return kube_says(msg, "NotFound") || kube_says(msg, "not found") ? 0 : -1;
		}
		json_t *svc = out ? json_loads(out, 0, NULL) : NULL, *back = NULL;
		free(out);
		int rr = svc ? icpt_restored_service(svc, r->p->sid, &back) : -EINVAL;
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

static void on_tunnel_ready(void *data)
{
	struct irun *r = data;
	step(r, "tunnel up", r->pod);
}

int app_intercept(const struct app *a, struct app_iplan *p, bool foreground,
		  app_progress_fn progress, void *pdata, json_t **ret_doc, struct err *e)
{
	(void)a;
	(void)foreground; /* the run is in the foreground in this version */
	*ret_doc = NULL;
	struct irun r = {.p = p, .progress = progress, .pdata = pdata, .t0 = now_mono_ms()};
	snprintf(r.label, sizeof r.label, "%s=%s", ICPT_LABEL_SESSION, p->sid);
	/* Ctrl+C from here on is noticed between steps and cleans up */
	sigset_t mask, old;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, &old);

	char msg[512] = "";
	int code = 0;
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

	struct icept_opts io = {
	    .fwd = {.kubectl = p->kube.k.kubectl,
		    .kubeconfig = p->kube.k.kubeconfig,
		    .context = p->kube.k.context,
		    .namespace = p->kube.namespace,
		    .service = p->service,
		    .origin = "intercept"},
	    .token = p->token,
	    .session = p->sid,
	    .mirror = p->mode == INTERCEPT_MIRROR,
	    .on_ready = on_tunnel_ready,
	    .data = &r,
	};
	int control = ICPT_CONTROL_PORT, health = ICPT_HEALTH_PORT;
	icpt_agent_ports(p->found.ports, p->found.n_ports, &control, &health);
	snprintf(io.fwd.pod, sizeof io.fwd.pod, "%s", r.pod);
	io.fwd.target_port = control;
	for (size_t i = 0; i < p->found.n_ports && i < ICEPT_MAX_PORTS; i++) {
		io.maps[i].service = (uint16_t)p->found.ports[i].port;
		io.maps[i].local = (uint16_t)p->found.ports[i].local;
		io.n_maps++;
	}
	sigset_t pend;
	int run = 0;
	if (sigpending(&pend) == 0 && (sigismember(&pend, SIGINT) || sigismember(&pend, SIGTERM)))
		run = 0; /* interrupted before the tunnel: straight to the restore */
	else
		run = icept_run(&io);
	step(&r, run == 0 ? "stopping" : "the agent is gone", NULL);

	int rs = restore_service(&r, msg, sizeof msg);
	if (rs > 0)
		step(&r, "selector restored", p->service);
	else if (rs == 0)
		step(&r, "selector already restored (by the agent)", p->service);
	remove_objects(&r);
	if (rs < 0)
		code = err_set(e, EXIT_K8S_SELECTOR_PATCH_FAILED,
			       "restoring the selector of service %s: %s (the agent restores it "
			       "within its grace period)",
			       p->service, msg);
	else if (run != 0)
		code = err_set(e, run,
			       "the tunnel to the agent failed: it is gone (the Service "
			       "was restored)");
	json_t *ports = json_array();
	for (size_t i = 0; i < p->found.n_ports; i++)
		json_array_append_new(ports, json_pack("{s:i, s:i}", "port", p->found.ports[i].port,
						       "local_port", p->found.ports[i].local));
	*ret_doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:b}", "namespace", p->kube.namespace,
			     "service", p->service, "mode", cfg_mode_name(p->mode), "session",
			     p->sid, "agent_pod", r.pod, "ports", ports, "restored", rs >= 0);
out:;
	/* what was pressed while we cleaned up is consumed, not re-raised */
	struct timespec zero = {0, 0};
	while (sigtimedwait(&mask, NULL, &zero) > 0)
		;
	sigprocmask(SIG_SETMASK, &old, NULL);
	return code;
}
