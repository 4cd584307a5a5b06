/* connect.c - Kubernetes: `connect` (the kubeconfig and context resolved
 * once, every pre-check, a supervisor per target), its dry run, the rows
 * and checks of its bridges, `disconnect`, the session's entries.  See
 * app.h. */
#include "app/app.h"
#include "core/errcode.h"
#include "app/config.h"
#include "app/kube.h"
#include "core/log.h"
#include "core/net.h"
#include "core/state.h"
#include "core/util.h"
#include "k8s/endpoints.h"
#include "k8s/kubectl.h"
#include "k8s/portforward.h"
#include "k8s/session.h"
#include "k8s/target.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- connect --- */

struct target {
	struct k8s_target k; /* local 0 until the plan is made: then PORT */
	char name[80];	     /* the bridge's: SVC.NS.PORT */
	char port_name[64];  /* the Service port's name ("" unnamed) */
	char selector[256];  /* for messages */
	struct k8s_ep_view ep;
};

/* What connect resolved once, and passes to every kubectl it runs or has
 * run (pre-checks and every supervised run): a later `kubectl config
 * use-context` or another $KUBECONFIG cannot move a bridge to another
 * cluster. */
struct app_kplan {
	struct app_kube kube; /* kubectl, kubeconfig, context, namespace, deadline */
	unsigned max_attempts, health_interval;
	struct target t[APP_MAX_TARGETS];
	size_t n;
};

/* A user's text, safe to echo on a terminal. */
static const char *clean(const char *s, char *buf, size_t n)
{
	snprintf(buf, n, "%s", s);
	text_sanitize(buf);
	return buf;
}

static int parse_target(const char *spec, struct target *t, struct err *e)
{
	char err[160], shown[200];
	if (k8s_target_parse(spec, &t->k, err, sizeof err) < 0) {
		text_sanitize(err); /* it may quote the spec */
		return err_set(e, EXIT_USAGE, "-t '%s': %s", clean(spec, shown, sizeof shown), err);
	}
	return 0;
}

static int add_cfg_target(const struct app *a, struct app_kplan *p, const struct cfg_target *ct,
			  struct err *e)
{
	struct target *t = &p->t[p->n];
	memset(t, 0, sizeof *t);
	char shown[200];
	if (!k8s_dns_label(ct->service) || (ct->namespace && !k8s_dns_label(ct->namespace))) {
		snprintf(shown, sizeof shown, "%s%s%s", ct->namespace ? ct->namespace : "",
			 ct->namespace ? "/" : "", ct->service);
		text_sanitize(shown);
		return err_set(e, EXIT_CONFIG,
			       "%s:%d:%d: '%s' is not a valid Kubernetes name (lowercase "
			       "letters, digits, '-')",
			       ct->mark.file ? ct->mark.file : a->config_path, ct->mark.line,
			       ct->mark.col, shown);
	}
	snprintf(t->k.service, sizeof t->k.service, "%s", ct->service);
	if (ct->namespace)
		snprintf(t->k.namespace, sizeof t->k.namespace, "%s", ct->namespace);
	t->k.port = ct->port;
	t->k.local = ct->local_port;
	p->n++;
	return 0;
}

/* Service exists with that port and a selector (63); RBAC (68). */
static int check_service(const struct app_kplan *p, struct target *t, const struct kctl_job *j,
			 struct err *e)
{
	char what[160], tb[80];
	snprintf(what, sizeof what, "service %s/%s", t->k.namespace, t->k.service);
	if (j->status == -ETIMEDOUT)
		return err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE, "cannot read %s: %s", what,
			       kube_timed_out(&p->kube, tb, sizeof tb));
	if (j->status != 0) {
		if (kube_says(j->err, "NotFound") || kube_says(j->err, "not found"))
			return err_set(e, EXIT_K8S_SERVICE_NOT_FOUND,
				       "service '%s' not found in namespace '%s'", t->k.service,
				       t->k.namespace);
		return kube_get_error(&p->kube, j->err, what, e);
	}
	char detail[300];
	const char *out = j->out ? j->out : "";
	switch (k8s_service_check(out, strlen(out), t->k.port, detail, sizeof detail)) {
	case K8S_SVC_OK:
		if (k8s_service_port_info(out, strlen(out), t->k.port, t->port_name,
					  sizeof t->port_name, t->selector, sizeof t->selector) < 0)
			return err_set(e, EXIT_K8S_SERVICE_NOT_FOUND,
				       "%s port %d has a name that is not a Kubernetes port name",
				       what, t->k.port);
		return 0;
	case K8S_SVC_BAD_JSON:
		return err_set(e, EXIT_ERROR, "cannot make sense of kubectl's answer for %s: %s",
			       what, detail);
	case K8S_SVC_NO_PORT:
		return err_set(e, EXIT_K8S_SERVICE_NOT_FOUND, "%s has no port %d (%s)", what,
			       t->k.port, detail);
	case K8S_SVC_UDP:
		return err_set(e, EXIT_K8S_UNSUPPORTED_PROTOCOL,
			       "%s port %d is %s: port-forward carries TCP only", what, t->k.port,
			       detail);
	case K8S_SVC_NO_SELECTOR:
		break;
	}
	return err_set(e, EXIT_K8S_SERVICE_NOT_FOUND,
		       "%s has no pod selector (%s): kubectl port-forward cannot reach it", what,
		       detail);
}

/* Some pod behind the Service (63): a selector that matches no running
 * pod is refused now, not waited for.  Pods that exist but are not Ready
 * yet pass: the bridge waits for one (reason no_ready_pod). */
static int check_endpoints(const struct app_kplan *p, struct target *t, const struct kctl_job *j,
			   struct err *e)
{
	char what[200], tb[80];
	snprintf(what, sizeof what, "the endpoints of service %s/%s", t->k.namespace, t->k.service);
	memset(&t->ep, 0, sizeof t->ep);
	if (j->status == -ETIMEDOUT)
		return err_set(e, EXIT_K8S_CONTEXT_UNREACHABLE, "cannot read %s: %s", what,
			       kube_timed_out(&p->kube, tb, sizeof tb));
	bool missing =
	    j->status != 0 && (kube_says(j->err, "NotFound") || kube_says(j->err, "not found"));
	if (j->status != 0 && !missing)
		return kube_get_error(&p->kube, j->err, what, e);
	const char *out = j->out ? j->out : "";
	if (!missing && k8s_endpoints_view(out, strlen(out), t->port_name, NULL, &t->ep) < 0)
		return err_set(e, EXIT_ERROR, "cannot make sense of kubectl's answer for %s", what);
	if (t->ep.ready || t->ep.not_ready)
		return t->ep.no_port && !t->ep.ready
			   ? err_set(e, EXIT_K8S_SERVICE_NOT_FOUND,
				     "service %s/%s: no pod serves its port %d (targetPort)",
				     t->k.namespace, t->k.service, t->k.port)
			   : 0;
	if (t->ep.no_port)
		return err_set(e, EXIT_K8S_SERVICE_NOT_FOUND,
			       "service %s/%s: no pod serves its port %d (targetPort)",
			       t->k.namespace, t->k.service, t->k.port);
	return err_set(e, EXIT_K8S_SERVICE_NOT_FOUND,
		       "service %s/%s has no pods: its selector %s matches no running pod",
		       t->k.namespace, t->k.service, t->selector[0] ? t->selector : "(empty)");
}

/* One session per state directory: the live bridges must all be of this
 * kubeconfig and context (session.json describes one cluster). */
static int check_session(const struct app *a, const struct app_kplan *p, struct err *e)
{
	struct k8s_entry *v;
	size_t n;
	if (k8s_session_list(a->state_dir, false, &v, &n) < 0)
		return 0;
	int r = 0;
	for (size_t i = 0; i < n && !r; i++) {
		if (strcmp(v[i].kubeconfig, p->kube.kubeconfig) == 0 &&
		    strcmp(v[i].context, p->kube.context) == 0)
			continue;
		r = err_set(e, EXIT_ERROR,
			    "a session with context %s (kubeconfig %s) is active (%zu bridge%s); "
			    "this connect would use context %s%s%s: `devbridge disconnect` first",
			    v[i].context[0] ? v[i].context : "(none)",
			    v[i].kubeconfig[0] ? v[i].kubeconfig : "(default)", n,
			    n == 1 ? "" : "s", p->kube.context,
			    strcmp(v[i].kubeconfig, p->kube.kubeconfig) ? " of " : "",
			    strcmp(v[i].kubeconfig, p->kube.kubeconfig) ? p->kube.kubeconfig : "");
	}
	free(v);
	return r;
}

/* The context first (from the kubeconfig alone), then every cluster
 * question at once (one kubectl each, in parallel, with that context);
 * the answers in target order: the first failure wins, as if they had
 * been asked one by one. */
static int precheck(const struct app *a, struct app_kplan *p, struct err *e)
{
	int r = kube_resolve_context(&p->kube, e);
	if (r)
		return r;
	if ((r = check_session(a, p, e)))
		return r;
	/* [0] the API server; per target: its namespace (first target of
	 * that namespace only), its service, its endpoints. */
	struct kctl_job *jobs = calloc(1 + 3 * p->n, sizeof *jobs);
	const char *(*args)[8] = calloc(1 + 3 * p->n, sizeof *args);
	if (!jobs || !args) {
		free(jobs);
		free(args);
		return err_set(e, EXIT_ERROR, "out of memory");
	}
	static const char *const ver[] = {"get", "--raw", "/version", "--request-timeout=10s",
					  NULL};
	jobs[0].args = ver;
	size_t nj = 1;
	ssize_t ns_job[APP_MAX_TARGETS], svc_job[APP_MAX_TARGETS];
	for (size_t i = 0; i < p->n && !r; i++) {
		struct target *t = &p->t[i];
		if (!t->k.namespace[0])
			snprintf(t->k.namespace, sizeof t->k.namespace, "%s",
				 p->kube.namespace[0] ? p->kube.namespace : "default");
		if (!t->k.local)
			t->k.local = t->k.port;
		k8s_bridge_name(t->name, sizeof t->name, t->k.service, t->k.namespace, t->k.port);
		bool seen = false;
		for (size_t k = 0; k < i; k++) {
			if (strcmp(p->t[k].name, t->name) == 0)
				r = err_set(e, EXIT_USAGE, "%s/%s:%d is listed twice",
					    t->k.namespace, t->k.service, t->k.port);
			seen |= strcmp(p->t[k].k.namespace, t->k.namespace) == 0;
		}
		ns_job[i] = -1;
		if (!seen) {
			const char *g[] = {"get", "namespace", t->k.namespace, "-o", "name", NULL};
			memcpy(args[nj], g, sizeof g);
			jobs[nj].args = args[nj];
			ns_job[i] = (ssize_t)nj++;
		}
		const char *sv[] = {"get", "service", "--namespace", t->k.namespace,
				    "-o",  "json",    t->k.service,  NULL};
		memcpy(args[nj], sv, sizeof sv);
		jobs[nj].args = args[nj];
		jobs[nj].max = 1 << 20;
		svc_job[i] = (ssize_t)nj++;
		const char *ep[] = {"get", "endpoints", "--namespace", t->k.namespace,
				    "-o",  "json",	t->k.service,  NULL};
		memcpy(args[nj], ep, sizeof ep);
		jobs[nj].args = args[nj];
		jobs[nj].max = 4 << 20;
		nj++;
	}
	if (!r) {
		kctl_run_all(&p->kube.k, jobs, nj, kube_time_left_ms(&p->kube));
		r = kube_check_cluster(&p->kube, &jobs[0], e);
	}
	for (size_t i = 0; i < p->n && !r; i++) {
		if (ns_job[i] >= 0)
			r = kube_check_namespace(&p->kube, p->t[i].k.namespace, &jobs[ns_job[i]],
						 e);
		if (!r)
			r = check_service(p, &p->t[i], &jobs[svc_job[i]], e);
		if (!r)
			r = check_endpoints(p, &p->t[i], &jobs[svc_job[i] + 1], e);
	}
	for (size_t k = 0; k < nj; k++)
		free(jobs[k].out);
	free(jobs);
	free(args);
	return r;
}

/* The argv of `devbridge __k8s-forward` for target t. */
static void forward_args(const struct app *a, const struct app_kplan *p, const struct target *t,
			 char *nums[4], char **args)
{
	size_t n = 0;
	args[n++] = NULL; /* this executable, see cli_spawn_supervisor */
	snprintf(nums[0], 16, "%d", t->k.port);
	snprintf(nums[1], 16, "%d", t->k.local);
	snprintf(nums[2], 16, "%u", p->max_attempts);
	snprintf(nums[3], 16, "%u", p->health_interval);
	args[n++] = "__k8s-forward";
	args[n++] = (char *)t->name;
	args[n++] = "--service";
	args[n++] = (char *)t->k.service;
	args[n++] = "--namespace";
	args[n++] = (char *)t->k.namespace;
	args[n++] = "--port";
	args[n++] = nums[0];
	args[n++] = "--port-name";
	args[n++] = (char *)t->port_name;
	args[n++] = "--local-port";
	args[n++] = nums[1];
	args[n++] = "--max-attempts";
	args[n++] = nums[2];
	args[n++] = "--health-interval";
	args[n++] = nums[3];
	args[n++] = "--kubeconfig";
	args[n++] = (char *)p->kube.kubeconfig;
	args[n++] = "--context";
	args[n++] = (char *)p->kube.context;
	args[n++] = "--state-dir";
	args[n++] = (char *)a->state_dir;
	args[n++] = a->verbose >= 2 ? "-vv" : "-v";
	args[n] = NULL;
}

json_t *app_connect_dry_run(const struct app_kplan *p)
{
	json_t *rows = json_array();
	for (size_t i = 0; i < p->n; i++) {
		const struct target *t = &p->t[i];
		struct k8s_fwd f = {.kubeconfig = p->kube.kubeconfig,
				    .context = p->kube.context,
				    .namespace = t->k.namespace,
				    .service = t->k.service,
				    .remote_port = t->k.port,
				    .local_port = t->k.local,
				    .target_port = t->ep.port};
		snprintf(f.pod, sizeof f.pod, "%s", t->ep.pod);
		char **av = NULL;
		if (k8s_pf_argv(&f, &av) < 0)
			continue;
		json_t *a = json_array();
		for (char **q = av; *q; q++)
			json_array_append_new(a, json_string(*q));
		k8s_pf_argv_free(av);
		json_array_append_new(rows,
				      json_pack("{s:s, s:o, s:s?, s:i}", "name", t->name, "argv", a,
						"pod", t->ep.pod[0] ? t->ep.pod : NULL,
						"ready_pods", (int)t->ep.ready));
	}
	return json_pack("{s:b, s:s, s:s, s:o}", "dry_run", 1, "kubeconfig", p->kube.kubeconfig,
			 "context", p->kube.context, "bridges", rows);
}

int app_connect(const struct app *a, struct app_kplan *p, bool foreground, json_t **ret_doc,
		struct app_started **ret_started, size_t *ret_n, struct err *e)
{
	/* sv[i] is target i's supervisor. */
	struct app_started *sv = calloc(p->n, sizeof *sv);
	if (!sv)
		return err_set(e, EXIT_ERROR, "out of memory");
	for (size_t i = 0; i < p->n; i++) {
		struct target *t = &p->t[i];
		struct app_started *s = &sv[i];
		s->name = t->name;
		s->fd = -1;
		char nb[4][16], *nums[4] = {nb[0], nb[1], nb[2], nb[3]}, *args[40];
		forward_args(a, p, t, nums, args);
		int r = app_spawn_supervisor(a, s, args, foreground);
		if (r < 0) {
			s->done = true;
			s->result = "failed";
			s->code = EXIT_ERROR;
			snprintf(s->message, sizeof s->message, "cannot start supervisor: %s",
				 strerror(-r));
		}
	}
	/* What --timeout leaves after the pre-checks (at least a second). */
	uint64_t now = now_mono_ms();
	int wait_s =
	    now < p->kube.deadline_ms ? (int)((p->kube.deadline_ms - now + 999) / 1000) : 1;
	app_wait_ready(sv, p->n, wait_s);
	for (size_t i = 0; i < p->n; i++)
		if (sv[i].fd >= 0) {
			close(sv[i].fd);
			sv[i].fd = -1;
		}
	int r = k8s_session_write(a->state_dir, NULL);
	if (r < 0)
		log_error("cannot write the session files: %s", strerror(-r));

	/* The env names as the session files have them. */
	struct k8s_entry *ents = NULL;
	size_t nent = 0;
	(void)k8s_session_list(a->state_dir, false, &ents, &nent);
	int code = EXIT_OK;
	json_t *rows = json_array();
	for (size_t i = 0; i < p->n; i++) {
		struct app_started *s = &sv[i];
		const struct target *t = &p->t[i];
		json_t *row = app_status_row(a, t->name, NULL);
		const char *env = "";
		for (size_t k = 0; k < nent; k++)
			if (strcmp(ents[k].name, t->name) == 0)
				env = ents[k].env;
		if (s->result && strcmp(s->result, "timeout") == 0) {
			/* Say what it waits for (the supervisor's detail). */
			const char *d = json_string_value(json_object_get(row, "detail"));
			const char *why = json_string_value(json_object_get(row, "reason"));
			char dd[600] = "";
			if ((why && *why) || (d && *d))
				snprintf(dd, sizeof dd, " (%s%s%s)", why && *why ? why : "",
					 why && *why && d && *d ? ": " : "", d && *d ? d : "");
			text_sanitize(dd);
			snprintf(s->message, sizeof s->message,
				 "not connected after %u s%s; still trying in the background "
				 "(`devbridge logs %s`)",
				 p->kube.timeout_s, dd, s->name);
		}
		if (code == EXIT_OK && s->code != 0)
			code = s->code;
		json_object_set_new(row, "result", json_string(s->result));
		json_object_set_new(row, "code", json_integer(s->code));
		json_object_set_new(row, "message", json_string(s->message));
		json_object_set_new(row, "env_prefix", json_string(env));
		/* For a renderer: the target as asked. */
		json_object_set_new(row, "target",
				    json_pack("{s:s, s:s, s:i}", "namespace", t->k.namespace,
					      "service", t->k.service, "port", t->k.port));
		json_array_append_new(rows, row);
	}
	size_t nexp = 0;
	for (size_t k = 0; k < nent; k++)
		nexp += k8s_entry_exported(&ents[k]);
	free(ents);
	char sf[PATH_MAX + 16], ef[PATH_MAX + 16];
	snprintf(sf, sizeof sf, "%s/session.json", a->state_dir);
	snprintf(ef, sizeof ef, "%s/bridge.env", a->state_dir);
	*ret_doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I}", "context", p->kube.context,
			     "kubeconfig", p->kube.kubeconfig, "namespace",
			     p->kube.namespace[0] ? p->kube.namespace : "default", "session_file",
			     sf, "env_file", ef, "bridges", rows, "exported", (json_int_t)nexp);
	if (ret_started) {
		*ret_started = sv;
		*ret_n = p->n;
	} else {
		free(sv);
	}
	if (code)
		err_set(e, code, "not every target connected");
	return code;
}

int app_connect_plan(const struct app *a, const struct app_connect_opts *o, struct app_kplan **ret,
		     struct err *e)
{
	char shown[200];
	struct cfg_bridge b;
	int br = kube_bridge(a, o->profile, o->context, &b, e);
	if (br)
		return br;
	struct app_kplan *p = calloc(1, sizeof *p);
	if (!p)
		return err_set(e, EXIT_ERROR, "out of memory");
	p->max_attempts = o->max_attempts;
	p->health_interval = o->health_interval;
	p->kube.timeout_s = o->timeout_s;
	p->kube.deadline_ms = o->start_ms + (uint64_t)o->timeout_s * 1000;
	int r = 0;
	const char *cx = o->context ? o->context : b.context;
	if (cx)
		snprintf(p->kube.context, sizeof p->kube.context, "%s", cx);
	const char *dns = o->namespace ? o->namespace : b.namespace;
	if (dns && !k8s_dns_label(dns))
		r = err_set(e, o->namespace ? EXIT_USAGE : EXIT_CONFIG,
			    "%s '%s': not a valid namespace name",
			    o->namespace ? "namespace" : "bridge.namespace",
			    clean(dns, shown, sizeof shown));
	else if (dns)
		snprintf(p->kube.namespace, sizeof p->kube.namespace, "%s", dns);
	if (!r && o->n_targets) {
		if (o->n_targets > APP_MAX_TARGETS)
			r = err_set(e, EXIT_USAGE, "at most %d targets", APP_MAX_TARGETS);
		for (size_t i = 0; !r && i < o->n_targets; i++) {
			if (!(r = parse_target(o->targets[i], &p->t[i], e)))
				p->n++;
		}
	} else if (!r) {
		if (b.n_targets > APP_MAX_TARGETS)
			r = err_set(e, EXIT_CONFIG, "%s: at most %d bridge targets", a->config_path,
				    APP_MAX_TARGETS);
		for (size_t i = 0; !r && i < b.n_targets; i++)
			r = add_cfg_target(a, p, &b.targets[i], e);
	}
	if (!r && p->n == 0) {
		if (app_no_config(a))
			r = err_set(e, EXIT_USAGE,
				    "nothing to connect: give -t SERVICE:PORT[:LOCAL_PORT], or "
				    "list bridge.targets in a config file (none was found)");
		else
			r = err_set(e, EXIT_USAGE,
				    "nothing to connect: give -t SERVICE:PORT[:LOCAL_PORT] or list "
				    "bridge.targets in %s",
				    a->config_path);
	}
	if (!r)
		r = kube_resolve_kubeconfig(&p->kube, o->kubeconfig ? o->kubeconfig : b.kubeconfig,
					    e);
	if (!r)
		r = precheck(a, p, e);
	if (r) {
		free(p);
		return r;
	}
	*ret = p;
	return 0;
}

void app_kplan_free(struct app_kplan *p)
{
	free(p);
}

int app_supervise_forward(const struct app *a, struct k8s_fwd *f, const char *name,
			  int max_attempts, unsigned health_interval, int ready_fd)
{
	/* A kubeconfig list reaches kubectl through the environment only. */
	if (kctl_kubeconfig_is_list(f->kubeconfig))
		setenv("KUBECONFIG", f->kubeconfig, 1);
	return k8s_pf_supervise(f, name, a->state_dir, max_attempts, health_interval, ready_fd);
}

/* --- status and check of k8s bridges --- */

/* Does a k8s state file `e` answer to `name`: its bridge name, its
 * service, or NAMESPACE/SERVICE? */
static bool k8s_named(const struct k8s_entry *e, const char *name)
{
	if (strcmp(e->name, name) == 0 || strcmp(e->service, name) == 0)
		return true;
	size_t nl = strlen(e->namespace);
	return strncmp(name, e->namespace, nl) == 0 && name[nl] == '/' &&
	       strcmp(name + nl + 1, e->service) == 0;
}

size_t app_k8s_status_rows(const struct app *a, const char *name, json_t *rows)
{
	struct k8s_entry *v = NULL;
	size_t n = 0, added = 0;
	if (k8s_session_list(a->state_dir, true, &v, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!k8s_named(&v[i], name))
			continue;
		/* A bridge named twice (by name and service) once. */
		bool dup = false;
		size_t k;
		json_t *r;
		json_array_foreach(rows, k, r)
		{
			dup |=
			    strcmp(json_string_value(json_object_get(r, "name")), v[i].name) == 0;
		}
		if (dup)
			continue;
		json_array_append_new(rows, app_status_row(a, v[i].name, NULL));
		added++;
	}
	free(v);
	return added;
}

json_t *app_k8s_session(const struct app *a)
{
	struct k8s_entry *v = NULL;
	size_t n = 0;
	if (k8s_session_list(a->state_dir, false, &v, &n) < 0 || n == 0) {
		free(v);
		return NULL;
	}
	const char *started = v[0].started_at;
	for (size_t i = 1; i < n; i++)
		if (strcmp(v[i].started_at, started) < 0)
			started = v[i].started_at;
	json_t *o = json_pack("{s:s, s:s, s:s, s:i}", "kubeconfig", v[0].kubeconfig, "context",
			      v[0].context, "started_at", started, "bridges", (int)n);
	free(v);
	return o;
}

/* What a probe through the forward says, as the supervisor's own probe
 * does it: the service speaks (ok), kubectl closes it (the pod cannot be
 * reached), or nothing fails it within the window (ok). */
static bool probe_forward(int port, char *detail, size_t n)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = net_connect_nb((struct sockaddr *)&sin, sizeof sin);
	if (fd < 0) {
		snprintf(detail, n, "cannot connect to 127.0.0.1:%d: %s", port, strerror(-fd));
		return false;
	}
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int e = poll(&p, 1, 2000) == 1 ? net_so_error(fd) : ETIMEDOUT;
	bool ok = false;
	if (e) {
		snprintf(detail, n, "cannot connect to 127.0.0.1:%d: %s", port, strerror(e));
	} else {
		p.events = POLLIN;
		char buf[64];
		if (poll(&p, 1, 300) == 1 && read(fd, buf, sizeof buf) <= 0) {
			snprintf(detail, n,
				 "127.0.0.1:%d: kubectl closed the connection (the pod cannot be "
				 "reached)",
				 port);
		} else {
			ok = true;
			snprintf(detail, n, "a connection through 127.0.0.1:%d went through", port);
		}
	}
	close(fd);
	return ok;
}

bool app_k8s_check_row(const struct app *a, json_t *row, char *detail, size_t n)
{
	const char *state = json_string_value(json_object_get(row, "state"));
	const char *reason = json_string_value(json_object_get(row, "reason"));
	pid_t pid = (pid_t)json_integer_value(json_object_get(row, "pid"));
	int port = (int)json_integer_value(json_object_get(row, "local_port"));
	if (!state || (strcmp(state, "connected") != 0 && strcmp(state, "degraded") != 0)) {
		snprintf(detail, n, "bridge is %s%s%s%s", state ? state : "unknown",
			 reason && *reason ? " (" : "", reason && *reason ? reason : "",
			 reason && *reason ? ")" : "");
		return false;
	}
	bool ok = probe_forward(port, detail, n);
	/* Let the supervisor probe too, and update its own view now. */
	if (pid > 0)
		kill(pid, SIGUSR1);
	return ok;
}

/* --- the session's entries, disconnect --- */

int app_k8s_entries(const struct app *a, struct k8s_entry **v, size_t *n, struct err *e)
{
	/* A supervisor killed without cleaning up left its variables in
	 * bridge.env: take them out now. */
	int r = k8s_session_prune(a->state_dir);
	if (r < 0)
		log_warn("cannot rewrite the session files: %s", strerror(-r));
	r = k8s_session_list(a->state_dir, false, v, n);
	if (r < 0)
		return err_set(e, EXIT_ERROR, "cannot read %s: %s", a->state_dir, strerror(-r));
	return 0;
}

/* The bridges disconnect takes down: live standalone ones, and dead ones
 * whose state file is still there (so a failure can be cleared). */
json_t *app_k8s_bridges(const struct app *a)
{
	json_t *names = json_array();
	struct k8s_entry *v = NULL;
	size_t n = 0;
	if (k8s_session_list(a->state_dir, true, &v, &n) == 0)
		for (size_t i = 0; i < n; i++)
			if (!v[i].pid || strcmp(v[i].origin, "dag") != 0)
				json_array_append_new(names, json_string(v[i].name));
	free(v);
	return names;
}

static void remove_bridge_files(const struct app *a, const char *name)
{
	static const char *const ext[] = {"state", "pid", "out"};
	char path[PATH_MAX];
	for (size_t i = 0; i < ARRAY_SIZE(ext); i++)
		if (state_path(path, sizeof path, a->state_dir, name, ext[i]) == 0)
			unlink(path);
}

int app_disconnect(const struct app *a, int n, char **pick, json_t **ret_rows, struct err *e)
{
	json_t *names = app_k8s_bridges(a);
	json_t *rows = json_array();
	int code = EXIT_OK;
	size_t i;
	json_t *v;
	struct k8s_entry *ents = NULL;
	size_t nent = 0;
	if (n)
		(void)k8s_session_list(a->state_dir, true, &ents, &nent);
	json_array_foreach(names, i, v)
	{
		const char *name = json_string_value(v);
		bool picked = n == 0;
		for (int k = 0; k < n; k++)
			for (size_t j = 0; j < nent; j++)
				picked |=
				    strcmp(ents[j].name, name) == 0 && k8s_named(&ents[j], pick[k]);
		if (!picked)
			continue;
		pid_t pid = state_probe(a->state_dir, name);
		const char *what;
		if (a->dry_run) {
			what = pid ? "would_stop" : "would_clear";
		} else {
			int s = app_stop_bridge(a, name);
			if (s < 0) {
				code = err_set(e, EXIT_ERROR, "%s: cannot stop: %s", name,
					       strerror(-s));
				what = "error";
				json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "name",
								      name, "result", what,
								      "message", e->message));
				continue;
			} else {
				remove_bridge_files(a, name);
				what = s > 0 ? "stopped" : "cleared";
			}
		}
		json_array_append_new(rows, json_pack("{s:s, s:s}", "name", name, "result", what));
	}
	json_decref(names);
	free(ents);
	int ic = app_intercept_disconnect(a, n, pick, rows, e);
	if (code == EXIT_OK)
		code = ic;
	/* what is still live (those not named) stays in the session files */
	if (!a->dry_run)
		(void)k8s_session_write(a->state_dir, NULL);
	*ret_rows = rows;
	return code;
}
