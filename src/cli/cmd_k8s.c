/* cmd_k8s.c - Kubernetes commands: connect, disconnect, env, shell, rbac,
 * and the hidden __k8s-forward that connect runs once per target. */
#include "cli/cli.h"
#include "app/config.h"
#include "core/log.h"
#include "core/net.h"
#include "core/spawn.h"
#include "core/state.h"
#include "core/util.h"
#include "k8s/endpoints.h"
#include "k8s/kubectl.h"
#include "k8s/portforward.h"
#include "k8s/rbac.h"
#include "k8s/session.h"
#include "k8s/target.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_TARGETS		64
#define DEFAULT_CONNECT_TIMEOUT 60
#define DEFAULT_MAX_ATTEMPTS	4 /* seed 000: retries at 1 s, 2 s, 4 s, then fail */
#define KCTL_TIMEOUT_MS		20000
#define DEFAULT_HEALTH_INTERVAL 30 /* seconds between probes through a forward */

int cmd_rbac(struct cli *c)
{
	const char *ns = NULL, *user = NULL, *group = NULL, *sa = NULL, *name = NULL;
	const struct cli_opt opts[] = {
	    {"--namespace", 'n', true, &ns, NULL}, {"--user", 0, true, &user, NULL},
	    {"--group", 0, true, &group, NULL},	   {"--serviceaccount", 0, true, &sa, NULL},
	    {"--name", 0, true, &name, NULL},
	};
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	if (c->argc != 0)
		return cli_error(c, EXIT_USAGE,
				 "rbac takes no arguments (see `devbridge rbac --help`)");
	if (!!user + !!group + !!sa > 1)
		return cli_error(c, EXIT_USAGE,
				 "give at most one of --user, --group, --serviceaccount");
	struct rbac_opts o = {.namespace = ns, .name = name};
	char sans[256] = "";
	if (user) {
		o.subject = RBAC_USER;
		o.subject_name = user;
	} else if (group) {
		o.subject = RBAC_GROUP;
		o.subject_name = group;
	} else if (sa) {
		const char *colon = strchr(sa, ':');
		if (!colon || (size_t)(colon - sa) >= sizeof sans)
			return cli_error(c, EXIT_USAGE,
					 "--serviceaccount: expected NAMESPACE:NAME");
		snprintf(sans, sizeof sans, "%.*s", (int)(colon - sa), sa);
		o.subject = RBAC_SERVICEACCOUNT;
		o.subject_namespace = sans;
		o.subject_name = colon + 1;
	}
	char err[256];
	if (rbac_check(&o, err, sizeof err) < 0)
		return cli_error(c, EXIT_USAGE, "%s", err);
	/* Pure YAML on stdout, even with --json: it is meant for a pipe into
	 * `kubectl apply -f -`. */
	rbac_write(stdout, &o);
	return EXIT_OK;
}

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
struct kplan {
	struct kctl k;
	char kubeconfig[PATH_MAX]; /* given, bridge.kubeconfig, $KUBECONFIG or ~/.kube/config */
	char context[256];	   /* given, bridge.context, or the kubeconfig's current one */
	char namespace[64];	   /* the default for targets */
	unsigned max_attempts, health_interval, timeout_s;
	uint64_t deadline_ms; /* --timeout bounds the whole connect, pre-checks included */
	struct target *t;
	size_t n;
};

static bool no_config(const struct cli *c)
{
	return strcmp(c->config_path, "(no config)") == 0;
}

/* A user's text, safe to echo on a terminal. */
static const char *clean(const char *s, char *buf, size_t n)
{
	snprintf(buf, n, "%s", s);
	text_sanitize(buf);
	return buf;
}

static int parse_target(struct cli *c, const char *spec, struct target *t)
{
	char err[160], shown[200];
	if (k8s_target_parse(spec, &t->k, err, sizeof err) < 0) {
		text_sanitize(err); /* it may quote the spec */
		return cli_error(c, EXIT_USAGE, "-t '%s': %s", clean(spec, shown, sizeof shown),
				 err);
	}
	return 0;
}

static int add_cfg_target(struct cli *c, struct kplan *p, const struct cfg_target *ct)
{
	struct target *t = &p->t[p->n];
	memset(t, 0, sizeof *t);
	char shown[200];
	if (!k8s_dns_label(ct->service) || (ct->namespace && !k8s_dns_label(ct->namespace))) {
		snprintf(shown, sizeof shown, "%s%s%s", ct->namespace ? ct->namespace : "",
			 ct->namespace ? "/" : "", ct->service);
		text_sanitize(shown);
		return cli_error(c, EXIT_CONFIG,
				 "%s:%d:%d: '%s' is not a valid Kubernetes name (lowercase "
				 "letters, digits, '-')",
				 ct->mark.file ? ct->mark.file : c->config_path, ct->mark.line,
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

/* Milliseconds left before --timeout, for the next kubectl round. */
static int time_left_ms(const struct kplan *p)
{
	uint64_t now = now_mono_ms();
	if (now >= p->deadline_ms)
		return 1;
	uint64_t left = p->deadline_ms - now;
	return left < KCTL_TIMEOUT_MS ? (int)left : KCTL_TIMEOUT_MS;
}

static bool says(const char *err, const char *what)
{
	return strstr(err, what) != NULL;
}

static const char *timed_out(const struct kplan *p, char *buf, size_t n)
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
static int resolve_kubeconfig(struct cli *c, struct kplan *p, const char *given)
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
		return cli_error(
		    c, EXIT_K8S_KUBECONFIG_NOT_FOUND,
		    "kubeconfig not found: %s (give --kubeconfig, set bridge.kubeconfig "
		    "or $KUBECONFIG)",
		    p->kubeconfig);
	p->k.kubeconfig = p->kubeconfig;
	return 0;
}

/* The context (given, or the kubeconfig's current one) and its namespace,
 * from the kubeconfig alone (no cluster is asked): exit code or 0. */
static int resolve_context(struct cli *c, struct kplan *p)
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
	kctl_run_all(&p->k, &job, 1, time_left_ms(p));
	int code = 0;
	char msg[512], tb[80];
	kctl_message(job.err, msg, sizeof msg);
	if (job.status == -ENOENT) {
		code = cli_error(c, EXIT_ERROR, "kubectl not found on PATH: install kubectl");
	} else if (job.status == -ETIMEDOUT) {
		/* (/usr/bin/kubectl as a version dispatcher asks the server
		 * first, with the context's credentials) */
		code = cli_error(c, EXIT_K8S_CONTEXT_UNREACHABLE,
				 "cannot resolve the context of %s: %s", p->kubeconfig,
				 timed_out(p, tb, sizeof tb));
	} else if (job.status != 0 && p->context[0] &&
		   (says(job.err, "cannot locate context") || says(job.err, "does not exist"))) {
		code = cli_error(c, EXIT_K8S_CONTEXT_UNREACHABLE,
				 "no context '%s' in kubeconfig %s", p->context, p->kubeconfig);
	} else if (job.status != 0 && says(job.err, "current-context must exist")) {
		code = cli_error(c, EXIT_K8S_CONTEXT_UNREACHABLE,
				 "kubeconfig %s has no current context: give --context NAME (or "
				 "bridge.context), or run `kubectl config use-context NAME`",
				 p->kubeconfig);
	} else if (job.status != 0) {
		code = cli_error(c, EXIT_K8S_CONTEXT_UNREACHABLE, "cannot use kubeconfig %s: %s",
				 p->kubeconfig, *msg ? msg : "kubectl failed");
	} else {
		char *out = job.out ? job.out : "";
		size_t l = strcspn(out, "\n");
		if (l == 0)
			code = cli_error(
			    c, EXIT_K8S_CONTEXT_UNREACHABLE,
			    "kubeconfig %s has no current context: give --context NAME "
			    "(or bridge.context), or run `kubectl config use-context NAME`",
			    p->kubeconfig);
		else if (l >= sizeof p->context)
			code =
			    cli_error(c, EXIT_K8S_CONTEXT_UNREACHABLE,
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
static int get_error(struct cli *c, const struct kplan *p, const char *err, const char *what)
{
	char msg[512];
	kctl_message(err, msg, sizeof msg);
	if (says(err, "Forbidden") || says(err, "forbidden"))
		return cli_error(c, EXIT_K8S_RBAC_INSUFFICIENT,
				 "not allowed to read %s: %s (see `devbridge rbac`)", what, msg);
	if (says(err, "Unauthorized") || says(err, "must be logged in"))
		return cli_error(c, EXIT_K8S_CONTEXT_UNREACHABLE,
				 "the cluster refused the credentials of context %s: %s",
				 p->context, msg);
	return cli_error(c, EXIT_K8S_CONTEXT_UNREACHABLE, "cannot read %s: %s", what,
			 *msg ? msg : "kubectl failed");
}

/* The API server answers (61). */
static int check_cluster(struct cli *c, const struct kplan *p, const struct kctl_job *j)
{
	char msg[512], tb[80];
	if (j->status == 0)
		return 0;
	if (j->status == -ENOENT)
		return cli_error(c, EXIT_ERROR, "kubectl not found on PATH: install kubectl");
	kctl_message(j->err, msg, sizeof msg);
	return cli_error(c, EXIT_K8S_CONTEXT_UNREACHABLE, "cluster of context %s unreachable: %s",
			 p->context,
			 j->status == -ETIMEDOUT ? timed_out(p, tb, sizeof tb)
			 : *msg			 ? msg
						 : "kubectl failed");
}

/* Namespace exists (62)?  A user who may not read namespaces is not
 * stopped here: the service check that follows still speaks. */
static int check_namespace(struct cli *c, const struct kplan *p, const char *ns,
			   const struct kctl_job *j)
{
	char tb[80];
	if (j->status == 0 || says(j->err, "Forbidden") || says(j->err, "forbidden"))
		return 0;
	if (j->status == -ETIMEDOUT)
		return cli_error(c, EXIT_K8S_CONTEXT_UNREACHABLE, "cannot read namespace %s: %s",
				 ns, timed_out(p, tb, sizeof tb));
	if (says(j->err, "NotFound") || says(j->err, "not found"))
		return cli_error(c, EXIT_K8S_NAMESPACE_NOT_FOUND,
				 "namespace '%s' not found in context %s", ns, p->context);
	char what[128];
	snprintf(what, sizeof what, "namespace %s", ns);
	return get_error(c, p, j->err, what);
}

/* Service exists with that port and a selector (63); RBAC (68). */
static int check_service(struct cli *c, const struct kplan *p, struct target *t,
			 const struct kctl_job *j)
{
	char what[160], tb[80];
	snprintf(what, sizeof what, "service %s/%s", t->k.namespace, t->k.service);
	if (j->status == -ETIMEDOUT)
		return cli_error(c, EXIT_K8S_CONTEXT_UNREACHABLE, "cannot read %s: %s", what,
				 timed_out(p, tb, sizeof tb));
	if (j->status != 0) {
		if (says(j->err, "NotFound") || says(j->err, "not found"))
			return cli_error(c, EXIT_K8S_SERVICE_NOT_FOUND,
					 "service '%s' not found in namespace '%s'", t->k.service,
					 t->k.namespace);
		return get_error(c, p, j->err, what);
	}
	char detail[300];
	const char *out = j->out ? j->out : "";
	switch (k8s_service_check(out, strlen(out), t->k.port, detail, sizeof detail)) {
	case K8S_SVC_OK:
		if (k8s_service_port_info(out, strlen(out), t->k.port, t->port_name,
					  sizeof t->port_name, t->selector, sizeof t->selector) < 0)
			return cli_error(c, EXIT_K8S_SERVICE_NOT_FOUND,
					 "%s port %d has a name that is not a Kubernetes port name",
					 what, t->k.port);
		return 0;
	case K8S_SVC_BAD_JSON:
		return cli_error(c, EXIT_ERROR, "cannot make sense of kubectl's answer for %s: %s",
				 what, detail);
	case K8S_SVC_NO_PORT:
		return cli_error(c, EXIT_K8S_SERVICE_NOT_FOUND, "%s has no port %d (%s)", what,
				 t->k.port, detail);
	case K8S_SVC_UDP:
		return cli_error(c, EXIT_K8S_UNSUPPORTED_PROTOCOL,
				 "%s port %d is %s: port-forward carries TCP only", what, t->k.port,
				 detail);
	case K8S_SVC_NO_SELECTOR:
		break;
	}
	return cli_error(c, EXIT_K8S_SERVICE_NOT_FOUND,
			 "%s has no pod selector (%s): kubectl port-forward cannot reach it", what,
			 detail);
}

/* Some pod behind the Service (63): a selector that matches no running
 * pod is refused now, not waited for.  Pods that exist but are not Ready
 * yet pass: the bridge waits for one (reason no_ready_pod). */
static int check_endpoints(struct cli *c, const struct kplan *p, struct target *t,
			   const struct kctl_job *j)
{
	char what[200], tb[80];
	snprintf(what, sizeof what, "the endpoints of service %s/%s", t->k.namespace, t->k.service);
	memset(&t->ep, 0, sizeof t->ep);
	if (j->status == -ETIMEDOUT)
		return cli_error(c, EXIT_K8S_CONTEXT_UNREACHABLE, "cannot read %s: %s", what,
				 timed_out(p, tb, sizeof tb));
	bool missing = j->status != 0 && (says(j->err, "NotFound") || says(j->err, "not found"));
	if (j->status != 0 && !missing)
		return get_error(c, p, j->err, what);
	const char *out = j->out ? j->out : "";
	if (!missing && k8s_endpoints_view(out, strlen(out), t->port_name, NULL, &t->ep) < 0)
		return cli_error(c, EXIT_ERROR, "cannot make sense of kubectl's answer for %s",
				 what);
	if (t->ep.ready || t->ep.not_ready)
		return t->ep.no_port && !t->ep.ready
			   ? cli_error(c, EXIT_K8S_SERVICE_NOT_FOUND,
				       "service %s/%s: no pod serves its port %d (targetPort)",
				       t->k.namespace, t->k.service, t->k.port)
			   : 0;
	if (t->ep.no_port)
		return cli_error(c, EXIT_K8S_SERVICE_NOT_FOUND,
				 "service %s/%s: no pod serves its port %d (targetPort)",
				 t->k.namespace, t->k.service, t->k.port);
	return cli_error(c, EXIT_K8S_SERVICE_NOT_FOUND,
			 "service %s/%s has no pods: its selector %s matches no running pod",
			 t->k.namespace, t->k.service, t->selector[0] ? t->selector : "(empty)");
}

/* One session per state directory: the live bridges must all be of this
 * kubeconfig and context (session.json describes one cluster). */
static int check_session(struct cli *c, const struct kplan *p)
{
	struct k8s_entry *v;
	size_t n;
	if (k8s_session_list(c->state_dir, false, &v, &n) < 0)
		return 0;
	int r = 0;
	for (size_t i = 0; i < n && !r; i++) {
		if (strcmp(v[i].kubeconfig, p->kubeconfig) == 0 &&
		    strcmp(v[i].context, p->context) == 0)
			continue;
		r = cli_error(c, EXIT_ERROR,
			      "a session with context %s (kubeconfig %s) is active (%zu bridge%s); "
			      "this connect would use context %s%s%s: `devbridge disconnect` first",
			      v[i].context[0] ? v[i].context : "(none)",
			      v[i].kubeconfig[0] ? v[i].kubeconfig : "(default)", n,
			      n == 1 ? "" : "s", p->context,
			      strcmp(v[i].kubeconfig, p->kubeconfig) ? " of " : "",
			      strcmp(v[i].kubeconfig, p->kubeconfig) ? p->kubeconfig : "");
	}
	free(v);
	return r;
}

/* The context first (from the kubeconfig alone), then every cluster
 * question at once (one kubectl each, in parallel, with that context);
 * the answers in target order: the first failure wins, as if they had
 * been asked one by one. */
static int precheck(struct cli *c, struct kplan *p)
{
	int r = resolve_context(c, p);
	if (r)
		return r;
	/* --dry-run reads the state directory, but makes none. */
	if (c->dry_run && !c->state_dir)
		(void)state_dir_resolve(c->state_dir_opt, &c->state_dir);
	if (!c->state_dir && (r = cli_state_dir(c)))
		return r;
	if ((r = check_session(c, p)))
		return r;
	/* [0] the API server; per target: its namespace (first target of
	 * that namespace only), its service, its endpoints. */
	struct kctl_job *jobs = calloc(1 + 3 * p->n, sizeof *jobs);
	const char *(*args)[8] = calloc(1 + 3 * p->n, sizeof *args);
	if (!jobs || !args) {
		free(jobs);
		free(args);
		return cli_error(c, EXIT_ERROR, "out of memory");
	}
	static const char *const ver[] = {"get", "--raw", "/version", "--request-timeout=10s",
					  NULL};
	jobs[0].args = ver;
	size_t nj = 1;
	ssize_t ns_job[MAX_TARGETS], svc_job[MAX_TARGETS];
	for (size_t i = 0; i < p->n && !r; i++) {
		struct target *t = &p->t[i];
		if (!t->k.namespace[0])
			snprintf(t->k.namespace, sizeof t->k.namespace, "%s",
				 p->namespace[0] ? p->namespace : "default");
		if (!t->k.local)
			t->k.local = t->k.port;
		k8s_bridge_name(t->name, sizeof t->name, t->k.service, t->k.namespace, t->k.port);
		bool seen = false;
		for (size_t k = 0; k < i; k++) {
			if (strcmp(p->t[k].name, t->name) == 0)
				r = cli_error(c, EXIT_USAGE, "%s/%s:%d is listed twice",
					      t->k.namespace, t->k.service, t->k.port);
			seen |= strcmp(p->t[k].k.namespace, t->k.namespace) == 0;
		}
		ns_job[i] = -1;
		if (!seen) {
			const char *a[] = {"get", "namespace", t->k.namespace, "-o", "name", NULL};
			memcpy(args[nj], a, sizeof a);
			jobs[nj].args = args[nj];
			ns_job[i] = (ssize_t)nj++;
		}
		const char *a[] = {"get", "service", "--namespace", t->k.namespace,
				   "-o",  "json",    t->k.service,  NULL};
		memcpy(args[nj], a, sizeof a);
		jobs[nj].args = args[nj];
		jobs[nj].max = 1 << 20;
		svc_job[i] = (ssize_t)nj++;
		const char *e[] = {"get", "endpoints", "--namespace", t->k.namespace,
				   "-o",  "json",      t->k.service,  NULL};
		memcpy(args[nj], e, sizeof e);
		jobs[nj].args = args[nj];
		jobs[nj].max = 4 << 20;
		nj++;
	}
	if (!r) {
		kctl_run_all(&p->k, jobs, nj, time_left_ms(p));
		r = check_cluster(c, p, &jobs[0]);
	}
	for (size_t i = 0; i < p->n && !r; i++) {
		if (ns_job[i] >= 0)
			r = check_namespace(c, p, p->t[i].k.namespace, &jobs[ns_job[i]]);
		if (!r)
			r = check_service(c, p, &p->t[i], &jobs[svc_job[i]]);
		if (!r)
			r = check_endpoints(c, p, &p->t[i], &jobs[svc_job[i] + 1]);
	}
	for (size_t k = 0; k < nj; k++)
		free(jobs[k].out);
	free(jobs);
	free(args);
	return r;
}

/* The argv of `devbridge __k8s-forward` for target t. */
static void forward_args(struct cli *c, const struct kplan *p, const struct target *t,
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
	args[n++] = (char *)p->kubeconfig;
	args[n++] = "--context";
	args[n++] = (char *)p->context;
	args[n++] = "--state-dir";
	args[n++] = c->state_dir;
	args[n++] = c->verbose >= 2 ? "-vv" : "-v";
	args[n] = NULL;
}

static void dry_run(struct cli *c, const struct kplan *p)
{
	json_t *rows = json_array();
	for (size_t i = 0; i < p->n; i++) {
		const struct target *t = &p->t[i];
		struct k8s_fwd f = {.kubeconfig = p->kubeconfig,
				    .context = p->context,
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
		char *line = argv_format(av);
		if (!c->json)
			printf("%s: %s%s\n", t->name, line ? line : "",
			       t->ep.pod[0] ? "" : "  (no Ready pod yet: it would wait for one)");
		free(line);
		k8s_pf_argv_free(av);
		json_array_append_new(rows,
				      json_pack("{s:s, s:o, s:s?, s:i}", "name", t->name, "argv", a,
						"pod", t->ep.pod[0] ? t->ep.pod : NULL,
						"ready_pods", (int)t->ep.ready));
	}
	if (c->json)
		cli_print_json(json_pack("{s:b, s:s, s:s, s:o}", "dry_run", 1, "kubeconfig",
					 p->kubeconfig, "context", p->context, "bridges", rows));
	else
		json_decref(rows);
}

static int connect_run(struct cli *c, struct kplan *p, bool foreground)
{
	int r = cli_state_dir(c);
	if (r)
		return r;
	/* sv[i] is target i's supervisor. */
	struct cli_started *sv = calloc(p->n, sizeof *sv);
	if (!sv)
		return cli_error(c, EXIT_ERROR, "out of memory");
	for (size_t i = 0; i < p->n; i++) {
		struct target *t = &p->t[i];
		struct cli_started *s = &sv[i];
		s->name = t->name;
		s->fd = -1;
		char nb[4][16], *nums[4] = {nb[0], nb[1], nb[2], nb[3]}, *args[40];
		forward_args(c, p, t, nums, args);
		r = cli_spawn_supervisor(c, s, args, foreground);
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
	int wait_s = now < p->deadline_ms ? (int)((p->deadline_ms - now + 999) / 1000) : 1;
	cli_wait_ready(sv, p->n, wait_s);
	for (size_t i = 0; i < p->n; i++)
		if (sv[i].fd >= 0)
			close(sv[i].fd);
	r = k8s_session_write(c->state_dir, NULL);
	if (r < 0)
		log_error("cannot write the session files: %s", strerror(-r));

	/* The env names as the session files have them. */
	struct k8s_entry *ents = NULL;
	size_t nent = 0, nexp = 0;
	(void)k8s_session_list(c->state_dir, false, &ents, &nent);
	int code = EXIT_OK;
	json_t *rows = json_array();
	for (size_t i = 0; i < p->n; i++) {
		struct cli_started *s = &sv[i];
		const struct target *t = &p->t[i];
		json_t *row = cli_status_row(c, t->name, NULL);
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
				 p->timeout_s, dd, s->name);
		}
		if (code == EXIT_OK && s->code != 0)
			code = s->code;
		json_object_set_new(row, "result", json_string(s->result));
		json_object_set_new(row, "code", json_integer(s->code));
		json_object_set_new(row, "message", json_string(s->message));
		json_object_set_new(row, "env_prefix", json_string(env));
		json_array_append_new(rows, row);
		if (c->json)
			continue;
		int lp = (int)json_integer_value(json_object_get(row, "local_port"));
		int rp = (int)json_integer_value(json_object_get(row, "requested_port"));
		if (strcmp(s->result, "connected") == 0 ||
		    strcmp(s->result, "already_running") == 0) {
			char shifted[64] = "";
			if (rp && lp && rp != lp)
				snprintf(shifted, sizeof shifted, " (port %d was in use)", rp);
			printf("%s/%s:%d -> 127.0.0.1:%d %s%s (bridge %s, %s_*)\n", t->k.namespace,
			       t->k.service, t->k.port, lp,
			       strcmp(s->result, "connected") == 0 ? "connected"
								   : "already connected",
			       shifted, t->name, env);
		} else {
			fprintf(stderr, "%s/%s:%d: %s: %s\n", t->k.namespace, t->k.service,
				t->k.port, s->result, s->message);
		}
	}
	for (size_t k = 0; k < nent; k++)
		nexp += k8s_entry_exported(&ents[k]);
	if (!c->json && nexp)
		printf("variables: %s/bridge.env (`devbridge env`, `devbridge shell`)\n",
		       c->state_dir);
	free(ents);
	if (c->json) {
		char sf[PATH_MAX + 16], ef[PATH_MAX + 16];
		snprintf(sf, sizeof sf, "%s/session.json", c->state_dir);
		snprintf(ef, sizeof ef, "%s/bridge.env", c->state_dir);
		json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O}", "context", p->context,
					"kubeconfig", p->kubeconfig, "namespace",
					p->namespace[0] ? p->namespace : "default", "session_file",
					sf, "env_file", ef, "bridges", rows);
		cli_json_result(c, code, doc, "not every target connected");
	}
	json_decref(rows);
	if (foreground && code == EXIT_OK)
		code = cli_run_foreground(c, sv, p->n);
	free(sv);
	return code;
}

int cmd_connect(struct cli *c)
{
	uint64_t start_ms = now_mono_ms();
	const char *kubeconfig = NULL, *context = NULL, *ns = NULL, *timeout = NULL,
		   *attempts = NULL, *health = NULL, *targets[MAX_TARGETS];
	size_t ntargets = 0;
	bool foreground = false;
	const struct cli_opt opts[] = {
	    {"--target", 't', true, NULL, NULL, targets, &ntargets, MAX_TARGETS},
	    {"--kubeconfig", 0, true, &kubeconfig, NULL},
	    {"--context", 0, true, &context, NULL},
	    {"--namespace", 'n', true, &ns, NULL},
	    {"--timeout", 0, true, &timeout, NULL},
	    {"--max-attempts", 0, true, &attempts, NULL},
	    {"--health-interval", 0, true, &health, NULL},
	    {"--foreground", 'F', false, NULL, &foreground},
	};
	char shown[200];
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	if (c->argc)
		return cli_error(
		    c, EXIT_USAGE,
		    "connect: unexpected '%s' (targets go after -t, e.g. -t SERVICE:8080)",
		    clean(c->argv[0], shown, sizeof shown));
	unsigned timeout_s = DEFAULT_CONNECT_TIMEOUT, max_attempts = DEFAULT_MAX_ATTEMPTS,
		 health_interval = DEFAULT_HEALTH_INTERVAL;
	if ((timeout && cli_parse_uint(c, "--timeout", timeout, 1, 86400, &timeout_s) < 0) ||
	    (attempts &&
	     cli_parse_uint(c, "--max-attempts", attempts, 0, 1000, &max_attempts) < 0) ||
	    (health &&
	     cli_parse_uint(c, "--health-interval", health, 0, 86400, &health_interval) < 0))
		return EXIT_USAGE;
	if (ns && !k8s_dns_label(ns))
		return cli_error(c, EXIT_USAGE, "-n '%s': not a valid namespace name",
				 clean(ns, shown, sizeof shown));
	if (context && !*context)
		return cli_error(c, EXIT_USAGE,
				 "--context: an empty name; leave --context out to use the "
				 "kubeconfig's current context");
	if (kubeconfig && !*kubeconfig)
		return cli_error(c, EXIT_USAGE, "--kubeconfig: an empty path");
	/* Refused, never cut (bridge.context and bridge.kubeconfig are checked
	 * by the config loader with the same limits). */
	if (cli_check_length(c, "--context", context, CFG_CONTEXT_MAX) ||
	    cli_check_length(c, "--kubeconfig", kubeconfig, CFG_PATH_MAX))
		return EXIT_USAGE;

	int r = cli_load_config_optional(c);
	if (r)
		return r;
	struct cfg_bridge b;
	if (cfg_bridge_resolve(c->cfg, c->profile, &b) < 0) {
		const char *near = cfg_profile_suggest(c->cfg, c->profile);
		if (no_config(c))
			return cli_error(c, EXIT_CONFIG,
					 "no profile '%s': no config file was found (give --config "
					 "FILE)",
					 clean(c->profile, shown, sizeof shown));
		return cli_error(c, EXIT_CONFIG, "no profile '%s' in %s%s%s%s",
				 clean(c->profile, shown, sizeof shown), c->config_path,
				 near ? " (did you mean '" : "", near ? near : "",
				 near ? "'?)" : "");
	}
	if (!context && b.context && !*b.context)
		return cli_error(c, EXIT_CONFIG,
				 "%s: bridge.context is empty; remove it to use the kubeconfig's "
				 "current context",
				 c->config_path);
	struct kplan p = {.max_attempts = max_attempts,
			  .health_interval = health_interval,
			  .timeout_s = timeout_s,
			  .deadline_ms = start_ms + (uint64_t)timeout_s * 1000};
	struct target tv[MAX_TARGETS];
	p.t = tv;
	const char *cx = context ? context : b.context;
	if (cx)
		snprintf(p.context, sizeof p.context, "%s", cx);
	const char *dns = ns ? ns : b.namespace;
	if (dns && !k8s_dns_label(dns))
		return cli_error(c, EXIT_CONFIG,
				 "bridge.namespace '%s': not a valid namespace name",
				 clean(dns, shown, sizeof shown));
	if (dns)
		snprintf(p.namespace, sizeof p.namespace, "%s", dns);

	if (ntargets) {
		for (size_t i = 0; i < ntargets; i++) {
			memset(&tv[i], 0, sizeof tv[i]);
			if ((r = parse_target(c, targets[i], &tv[i])))
				return r;
			p.n++;
		}
	} else {
		if (b.n_targets > MAX_TARGETS)
			return cli_error(c, EXIT_CONFIG, "%s: at most %d bridge targets",
					 c->config_path, MAX_TARGETS);
		for (size_t i = 0; i < b.n_targets; i++)
			if ((r = add_cfg_target(c, &p, &b.targets[i])))
				return r;
	}
	if (p.n == 0) {
		if (no_config(c))
			return cli_error(
			    c, EXIT_USAGE,
			    "nothing to connect: give -t SERVICE:PORT[:LOCAL_PORT], or "
			    "list bridge.targets in a config file (none was found)");
		return cli_error(c, EXIT_USAGE,
				 "nothing to connect: give -t SERVICE:PORT[:LOCAL_PORT] or list "
				 "bridge.targets in %s",
				 c->config_path);
	}
	if ((r = resolve_kubeconfig(c, &p, kubeconfig ? kubeconfig : b.kubeconfig)) ||
	    (r = precheck(c, &p)))
		return r;
	if (c->dry_run) {
		dry_run(c, &p);
		return EXIT_OK;
	}
	return connect_run(c, &p, foreground);
}

/* --- __k8s-forward: one target's supervisor --- */

static bool port_name_ok(const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
			return false;
	return n < 64;
}

int cmd_k8s_forward(struct cli *c)
{
	const char *svc = NULL, *ns = NULL, *port = NULL, *local = NULL, *kc = NULL, *cx = NULL,
		   *attempts = NULL, *health = NULL, *pname = NULL;
	const struct cli_opt opts[] = {
	    {"--service", 0, true, &svc, NULL},
	    {"--namespace", 0, true, &ns, NULL},
	    {"--port", 0, true, &port, NULL},
	    {"--port-name", 0, true, &pname, NULL},
	    {"--local-port", 0, true, &local, NULL},
	    {"--kubeconfig", 0, true, &kc, NULL},
	    {"--context", 0, true, &cx, NULL},
	    {"--max-attempts", 0, true, &attempts, NULL},
	    {"--health-interval", 0, true, &health, NULL},
	};
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	unsigned rp = 0, lp = 0, max_attempts = DEFAULT_MAX_ATTEMPTS,
		 health_interval = DEFAULT_HEALTH_INTERVAL;
	if (c->argc != 1 || !svc || !ns || !port || !local || !cfg_name_valid(c->argv[0]) ||
	    (pname && !port_name_ok(pname)) || (cx && !*cx) || (kc && !*kc))
		return cli_error(c, EXIT_USAGE, "__k8s-forward: bad arguments");
	if (cli_parse_uint(c, "--port", port, 1, 65535, &rp) < 0 ||
	    cli_parse_uint(c, "--local-port", local, 1, 65535, &lp) < 0 ||
	    (attempts &&
	     cli_parse_uint(c, "--max-attempts", attempts, 0, 1000, &max_attempts) < 0) ||
	    (health &&
	     cli_parse_uint(c, "--health-interval", health, 0, 86400, &health_interval) < 0))
		return EXIT_USAGE;
	int ready = cli_supervisor_begin(c);
	int r = cli_state_dir(c);
	if (r)
		return r;
	/* A kubeconfig list reaches kubectl through the environment only. */
	if (kctl_kubeconfig_is_list(kc))
		setenv("KUBECONFIG", kc, 1);
	struct k8s_fwd f = {.kubeconfig = kc,
			    .context = cx,
			    .namespace = ns,
			    .service = svc,
			    .port_name = pname,
			    .remote_port = (int)rp,
			    .requested_port = (int)lp,
			    .local_port = (int)lp,
			    .origin = "standalone"};
	return k8s_pf_supervise(&f, c->argv[0], c->state_dir, (int)max_attempts, health_interval,
				ready);
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

size_t k8s_status_rows(struct cli *c, const char *name, json_t *rows)
{
	struct k8s_entry *v = NULL;
	size_t n = 0, added = 0;
	if (k8s_session_list(c->state_dir, true, &v, &n) < 0)
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
		json_array_append_new(rows, cli_status_row(c, v[i].name, NULL));
		added++;
	}
	free(v);
	return added;
}

json_t *k8s_status_session(struct cli *c)
{
	struct k8s_entry *v = NULL;
	size_t n = 0;
	if (k8s_session_list(c->state_dir, false, &v, &n) < 0 || n == 0) {
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

bool k8s_check_row(struct cli *c, json_t *row, char *detail, size_t n)
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

/* --- env, shell --- */

static int live_entries(struct cli *c, struct k8s_entry **v, size_t *n)
{
	int r = cli_state_dir(c);
	if (r)
		return r;
	/* A supervisor killed without cleaning up left its variables in
	 * bridge.env: take them out now. */
	r = k8s_session_prune(c->state_dir);
	if (r < 0)
		log_warn("cannot rewrite the session files: %s", strerror(-r));
	r = k8s_session_list(c->state_dir, false, v, n);
	if (r < 0)
		return cli_error(c, EXIT_ERROR, "cannot read %s: %s", c->state_dir, strerror(-r));
	return 0;
}

int cmd_env(struct cli *c)
{
	const char *format = NULL;
	const struct cli_opt opts[] = {{"--format", 'f', true, &format, NULL}};
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	if (c->argc)
		return cli_error(c, EXIT_USAGE, "env takes no arguments");
	enum env_format fmt = c->json ? ENV_JSON : ENV_SH;
	if (format && k8s_env_format_parse(format, &fmt) < 0)
		return cli_error(c, EXIT_USAGE,
				 "--format: expected sh, fish, json or dotenv, got '%s'", format);
	struct k8s_entry *v = NULL;
	size_t n = 0;
	int r = live_entries(c, &v, &n);
	if (r)
		return r;
	k8s_env_print(stdout, v, n, fmt);
	free(v);
	return EXIT_OK;
}

int cmd_shell(struct cli *c)
{
	if (cli_scan_opts(c, NULL, 0) < 0)
		return EXIT_USAGE;
	/* stdout belongs to the shell or CMD: there is no document to give. */
	if (c->json)
		return cli_error(c, EXIT_USAGE,
				 "shell runs a program on this terminal and has no JSON output; "
				 "`devbridge --json env` gives the variables");
	struct k8s_entry *v = NULL;
	size_t n = 0;
	int r = live_entries(c, &v, &n);
	if (r)
		return r;
	json_t *vars = k8s_env_json(v, n);
	const char *key;
	json_t *val;
	json_object_foreach(vars, key, val) setenv(key, json_string_value(val), 1);
	size_t nexp = 0;
	for (size_t i = 0; i < n; i++)
		nexp += k8s_entry_exported(&v[i]);
	if (nexp)
		fprintf(stderr, "devbridge: injected %zu BRIDGE_* variables from %zu bridge%s\n",
			json_object_size(vars), nexp, nexp == 1 ? "" : "s");
	else if (n)
		fprintf(stderr,
			"devbridge: no Kubernetes bridge is connected yet (%zu starting); nothing "
			"injected\n",
			n);
	else
		fprintf(stderr, "devbridge: no active Kubernetes bridges; nothing injected\n");
	json_decref(vars);
	free(v);
	const char *sh = getenv("SHELL");
	char *dflt[] = {(char *)(sh && *sh ? sh : "/bin/sh"), NULL};
	char **argv = c->argc ? c->argv : dflt;
	fflush(stdout);
	fflush(stderr);
	execvp(argv[0], argv);
	int e = errno;
	return cli_error(c, e == ENOENT ? 127 : 126, "cannot run %s: %s", argv[0], strerror(e));
}

/* --- disconnect --- */

/* The bridges disconnect takes down: live standalone ones, and dead ones
 * whose state file is still there (so a failure can be cleared). */
static json_t *k8s_bridges(struct cli *c)
{
	json_t *names = json_array();
	struct k8s_entry *v = NULL;
	size_t n = 0;
	if (k8s_session_list(c->state_dir, true, &v, &n) == 0)
		for (size_t i = 0; i < n; i++)
			if (!v[i].pid || strcmp(v[i].origin, "dag") != 0)
				json_array_append_new(names, json_string(v[i].name));
	free(v);
	return names;
}

static void remove_bridge_files(struct cli *c, const char *name)
{
	static const char *const ext[] = {"state", "pid", "out"};
	char path[PATH_MAX];
	for (size_t i = 0; i < ARRAY_SIZE(ext); i++)
		if (state_path(path, sizeof path, c->state_dir, name, ext[i]) == 0)
			unlink(path);
}

int cmd_disconnect(struct cli *c)
{
	if (cli_scan_opts(c, NULL, 0) < 0)
		return EXIT_USAGE;
	if (c->argc)
		return cli_error(c, EXIT_USAGE, "disconnect takes no arguments");
	int r = cli_state_dir(c);
	if (r)
		return r;
	json_t *names = k8s_bridges(c);
	size_t n = json_array_size(names), i;
	json_t *v;
	if (!c->dry_run && !c->yes && n > 0) {
		if (!isatty(STDIN_FILENO)) {
			json_decref(names);
			return cli_error(c, EXIT_USAGE,
					 "disconnect would stop %zu bridge%s: refusing without -y "
					 "(stdin is not a terminal)",
					 n, n == 1 ? "" : "s");
		}
		fprintf(stderr, "Disconnect %zu Kubernetes bridge%s? [y/N] ", n, n == 1 ? "" : "s");
		char ans[16] = "";
		if (!fgets(ans, sizeof ans, stdin) || (ans[0] != 'y' && ans[0] != 'Y')) {
			json_decref(names);
			return cli_error(c, EXIT_ERROR, "not confirmed: nothing stopped");
		}
	}
	json_t *rows = json_array();
	int code = EXIT_OK;
	json_array_foreach(names, i, v)
	{
		const char *name = json_string_value(v);
		pid_t pid = state_probe(c->state_dir, name);
		const char *what;
		if (c->dry_run) {
			what = pid ? "would_stop" : "would_clear";
			if (!c->json)
				printf("%s: would %s\n", name,
				       pid ? "stop it (and its kubectl)"
					   : "clear its failed state");
		} else {
			int s = cli_stop_bridge(c, name);
			if (s < 0) {
				code = EXIT_ERROR;
				fprintf(stderr, "devbridge: %s: cannot stop: %s\n", name,
					strerror(-s));
				what = "error";
			} else {
				remove_bridge_files(c, name);
				what = s > 0 ? "stopped" : "cleared";
				if (!c->json)
					printf("%s: %s\n", name, what);
			}
		}
		json_array_append_new(rows, json_pack("{s:s, s:s}", "name", name, "result", what));
	}
	json_decref(names);
	if (!c->dry_run && code == EXIT_OK)
		k8s_session_remove(c->state_dir);
	if (!c->json && n == 0)
		printf("no Kubernetes bridges to disconnect\n");
	if (c->json) {
		json_t *doc = json_pack("{s:b, s:o}", "dry_run", c->dry_run, "bridges", rows);
		return cli_json_result(c, code, doc, "some bridges could not be stopped");
	}
	json_decref(rows);
	return code;
}
