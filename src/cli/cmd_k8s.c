/* cmd_k8s.c - Kubernetes commands: connect, disconnect, env, shell, rbac,
 * and the hidden __k8s-forward that connect runs once per target. */
#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "core/spawn.h"
#include "core/state.h"
#include "core/util.h"
#include "k8s/kubectl.h"
#include "k8s/portforward.h"
#include "k8s/rbac.h"
#include "k8s/session.h"
#include "k8s/target.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* --- names --- */

/* The bridge's name: SVC.NS.PORT (labels have no dots, so it is
 * unambiguous); past 64 characters, cut and made unique with a hash. */
static void bridge_name(char *buf, size_t n, const char *svc, const char *ns, int port)
{
	char full[200];
	snprintf(full, sizeof full, "%s.%s.%d", svc, ns, port);
	if (strlen(full) <= 64) {
		snprintf(buf, n, "%s", full);
		return;
	}
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = full; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	snprintf(buf, n, "%.55s-%08x", full, h);
}

/* --- connect --- */

struct target {
	struct k8s_target k; /* local 0 until the plan is made: then PORT */
	char name[80];	     /* the bridge's: SVC.NS.PORT */
};

struct kplan {
	struct kctl k;
	char kubeconfig[PATH_MAX]; /* as recorded; "" = kubectl's default */
	char context[256];	   /* as given; "" = the current one */
	char shown_context[256];   /* for messages: the one in use */
	char namespace[64];	   /* the default for targets */
	unsigned max_attempts, health_interval;
	struct target *t;
	size_t n;
};

static int parse_target(struct cli *c, const char *spec, struct target *t)
{
	char err[160];
	if (k8s_target_parse(spec, &t->k, err, sizeof err) < 0)
		return cli_error(c, EXIT_USAGE, "-t '%s': %s", spec, err);
	return 0;
}

static int add_cfg_target(struct cli *c, struct kplan *p, const struct cfg_target *ct)
{
	struct target *t = &p->t[p->n];
	memset(t, 0, sizeof *t);
	if (!k8s_dns_label(ct->service) || (ct->namespace && !k8s_dns_label(ct->namespace)))
		return cli_error(c, EXIT_CONFIG,
				 "%s:%d:%d: '%s%s%s' is not a valid Kubernetes name (lowercase "
				 "letters, digits, '-')",
				 ct->mark.file ? ct->mark.file : c->config_path, ct->mark.line,
				 ct->mark.col, ct->namespace ? ct->namespace : "",
				 ct->namespace ? "/" : "", ct->service);
	snprintf(t->k.service, sizeof t->k.service, "%s", ct->service);
	if (ct->namespace)
		snprintf(t->k.namespace, sizeof t->k.namespace, "%s", ct->namespace);
	t->k.port = ct->port;
	t->k.local = ct->local_port;
	p->n++;
	return 0;
}

/* Kubeconfig (60), then reachability (61), with the context in use and
 * its namespace learnt on the way: exit code or 0.  The two kubectl runs
 * go at once. */
static int check_cluster(struct cli *c, struct kplan *p)
{
	const char *list = p->kubeconfig[0] ? p->kubeconfig : NULL;
	char dflt[PATH_MAX];
	if (!list) {
		kctl_default_kubeconfig(dflt, sizeof dflt);
		list = dflt;
	}
	if (!kctl_kubeconfig_exists(list))
		return cli_error(
		    c, EXIT_K8S_KUBECONFIG_NOT_FOUND,
		    "kubeconfig not found: %s (give --kubeconfig, set bridge.kubeconfig "
		    "or $KUBECONFIG)",
		    list);
	static const char *const ver[] = {"get", "--raw", "/version", "--request-timeout=10s",
					  NULL};
	static const char *const view[] = {
	    "config",
	    "view",
	    "--minify",
	    "-o",
	    "jsonpath={.current-context}{\"\\n\"}{.contexts[0].context.namespace}",
	    NULL};
	struct kctl_job jobs[2] = {{.args = ver}, {.args = view, .max = 4096}};
	kctl_run_all(&p->k, jobs, 2, KCTL_TIMEOUT_MS);
	int r = jobs[0].status, code = 0;
	char msg[512];
	if (r == -ENOENT) {
		code = cli_error(c, EXIT_ERROR, "kubectl not found on PATH: install kubectl");
	} else if (r != 0) {
		kctl_message(jobs[0].err, msg, sizeof msg);
		code = cli_error(c, EXIT_K8S_CONTEXT_UNREACHABLE, "cluster%s%s unreachable: %s",
				 p->context[0] ? " of context " : "", p->context,
				 r == -ETIMEDOUT ? "kubectl timed out"
				 : *msg		 ? msg
						 : "kubectl failed");
	} else if (jobs[1].status == 0 && jobs[1].out) {
		char *out = jobs[1].out;
		size_t l = strcspn(out, "\n");
		snprintf(p->shown_context, sizeof p->shown_context, "%.*s", (int)l, out);
		if (!p->namespace[0] && out[l] == '\n') {
			char *ns = out + l + 1;
			ns[strcspn(ns, "\n")] = '\0';
			if (k8s_dns_label(ns))
				snprintf(p->namespace, sizeof p->namespace, "%s", ns);
		}
	}
	free(jobs[0].out);
	free(jobs[1].out);
	if (!p->shown_context[0])
		snprintf(p->shown_context, sizeof p->shown_context, "%s", p->context);
	return code;
}

static bool says(const char *err, const char *what)
{
	return strstr(err, what) != NULL;
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
				 p->shown_context, msg);
	return cli_error(c, EXIT_K8S_CONTEXT_UNREACHABLE, "cannot read %s: %s", what,
			 *msg ? msg : "kubectl failed");
}

/* Namespace exists (62)?  A user who may not read namespaces is not
 * stopped here: the service check that follows still speaks. */
static int check_namespace(struct cli *c, const struct kplan *p, const char *ns,
			   const struct kctl_job *j)
{
	if (j->status == 0 || says(j->err, "Forbidden") || says(j->err, "forbidden"))
		return 0;
	if (says(j->err, "NotFound") || says(j->err, "not found"))
		return cli_error(c, EXIT_K8S_NAMESPACE_NOT_FOUND,
				 "namespace '%s' not found in context %s", ns, p->shown_context);
	char what[128];
	snprintf(what, sizeof what, "namespace %s", ns);
	return get_error(c, p, j->err, what);
}

/* Service exists with that port and a selector (63); RBAC (68). */
static int check_service(struct cli *c, const struct kplan *p, const struct target *t,
			 const struct kctl_job *j)
{
	char what[160];
	snprintf(what, sizeof what, "service %s/%s", t->k.namespace, t->k.service);
	if (j->status != 0) {
		if (says(j->err, "NotFound") || says(j->err, "not found"))
			return cli_error(c, EXIT_K8S_SERVICE_NOT_FOUND,
					 "service '%s' not found in namespace '%s'", t->k.service,
					 t->k.namespace);
		return get_error(c, p, j->err, what);
	}
	char detail[300];
	switch (k8s_service_check(j->out ? j->out : "", j->out ? strlen(j->out) : 0, t->k.port,
				  detail, sizeof detail)) {
	case K8S_SVC_OK:
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

/* Every namespace and service question at once (one kubectl each, in
 * parallel), then the answers in target order: the first failure wins, as
 * if they had been asked one by one. */
static int precheck(struct cli *c, struct kplan *p)
{
	int r = check_cluster(c, p);
	if (r)
		return r;
	/* Per target: [0] its namespace (first target of that namespace
	 * only), [1] its service. */
	struct kctl_job *jobs = calloc(2 * p->n, sizeof *jobs);
	const char *(*args)[8] = calloc(2 * p->n, sizeof *args);
	if (!jobs || !args) {
		free(jobs);
		free(args);
		return cli_error(c, EXIT_ERROR, "out of memory");
	}
	size_t nj = 0;
	ssize_t ns_job[MAX_TARGETS], svc_job[MAX_TARGETS];
	for (size_t i = 0; i < p->n && !r; i++) {
		struct target *t = &p->t[i];
		if (!t->k.namespace[0])
			snprintf(t->k.namespace, sizeof t->k.namespace, "%s",
				 p->namespace[0] ? p->namespace : "default");
		if (!t->k.local)
			t->k.local = t->k.port;
		bridge_name(t->name, sizeof t->name, t->k.service, t->k.namespace, t->k.port);
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
	}
	if (!r)
		kctl_run_all(&p->k, jobs, nj, KCTL_TIMEOUT_MS);
	for (size_t i = 0; i < p->n && !r; i++) {
		if (ns_job[i] >= 0)
			r = check_namespace(c, p, p->t[i].k.namespace, &jobs[ns_job[i]]);
		if (!r)
			r = check_service(c, p, &p->t[i], &jobs[svc_job[i]]);
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
	args[n++] = "--local-port";
	args[n++] = nums[1];
	args[n++] = "--max-attempts";
	args[n++] = nums[2];
	args[n++] = "--health-interval";
	args[n++] = nums[3];
	if (p->kubeconfig[0]) {
		args[n++] = "--kubeconfig";
		args[n++] = (char *)p->kubeconfig;
	}
	if (p->context[0]) {
		args[n++] = "--context";
		args[n++] = (char *)p->context;
	}
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
		struct k8s_fwd f = {.kubeconfig = p->kubeconfig[0] ? p->kubeconfig : NULL,
				    .context = p->context[0] ? p->context : NULL,
				    .namespace = t->k.namespace,
				    .service = t->k.service,
				    .remote_port = t->k.port,
				    .local_port = t->k.local};
		char **av = NULL;
		if (k8s_pf_argv(&f, &av) < 0)
			continue;
		json_t *a = json_array();
		for (char **q = av; *q; q++)
			json_array_append_new(a, json_string(*q));
		char *line = argv_format(av);
		if (!c->json)
			printf("%s: %s\n", t->name, line ? line : "");
		free(line);
		k8s_pf_argv_free(av);
		json_array_append_new(rows, json_pack("{s:s, s:o}", "name", t->name, "argv", a));
	}
	if (c->json)
		cli_print_json(json_pack("{s:b, s:o}", "dry_run", 1, "bridges", rows));
	else
		json_decref(rows);
}

/* Another kubeconfig/context already has bridges here: one session at a
 * time, as session.json describes one cluster. */
static int check_session(struct cli *c, const struct kplan *p)
{
	struct k8s_entry *v;
	size_t n;
	if (k8s_session_list(c->state_dir, false, &v, &n) < 0)
		return 0;
	int r = 0;
	if (n &&
	    (strcmp(v[0].kubeconfig, p->kubeconfig) != 0 || strcmp(v[0].context, p->context) != 0))
		r = cli_error(c, EXIT_ERROR,
			      "a session with %s%s is active (%zu bridge%s); `devbridge "
			      "disconnect` first",
			      v[0].context[0] ? "context " : "another kubeconfig", v[0].context, n,
			      n == 1 ? "" : "s");
	free(v);
	return r;
}

static int connect_run(struct cli *c, struct kplan *p, int timeout_s, bool foreground)
{
	int r = cli_state_dir(c);
	if (r || (r = check_session(c, p)))
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
	cli_wait_ready(sv, p->n, timeout_s);
	for (size_t i = 0; i < p->n; i++) {
		if (sv[i].fd >= 0)
			close(sv[i].fd);
		if (sv[i].result && strcmp(sv[i].result, "timeout") == 0)
			snprintf(sv[i].message, sizeof sv[i].message,
				 "not connected after %d s; still trying in the background "
				 "(`devbridge logs %s`)",
				 timeout_s, sv[i].name);
	}
	r = k8s_session_write(c->state_dir, NULL);
	if (r < 0)
		log_error("cannot write the session files: %s", strerror(-r));

	/* The env names as the session files have them. */
	struct k8s_entry *ents = NULL;
	size_t nent = 0;
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
	if (!c->json && nent)
		printf("variables: %s/bridge.env (`devbridge env`, `devbridge shell`)\n",
		       c->state_dir);
	free(ents);
	if (c->json) {
		char sf[PATH_MAX + 16], ef[PATH_MAX + 16];
		snprintf(sf, sizeof sf, "%s/session.json", c->state_dir);
		snprintf(ef, sizeof ef, "%s/bridge.env", c->state_dir);
		json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O}", "context",
					p->shown_context, "kubeconfig", p->kubeconfig, "namespace",
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
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	if (c->argc)
		return cli_error(c, EXIT_USAGE,
				 "connect: unexpected '%s' (targets go after -t, e.g. -t %s:8080)",
				 c->argv[0], c->argv[0]);
	unsigned timeout_s = DEFAULT_CONNECT_TIMEOUT, max_attempts = DEFAULT_MAX_ATTEMPTS,
		 health_interval = DEFAULT_HEALTH_INTERVAL;
	if ((timeout && cli_parse_uint(c, "--timeout", timeout, 1, 86400, &timeout_s) < 0) ||
	    (attempts &&
	     cli_parse_uint(c, "--max-attempts", attempts, 0, 1000, &max_attempts) < 0) ||
	    (health &&
	     cli_parse_uint(c, "--health-interval", health, 0, 86400, &health_interval) < 0))
		return EXIT_USAGE;
	if (ns && !k8s_dns_label(ns))
		return cli_error(c, EXIT_USAGE, "-n '%s': not a valid namespace name", ns);
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
		return cli_error(c, EXIT_USAGE, "no profile '%s' in %s%s%s%s", c->profile,
				 c->config_path, near ? " (did you mean '" : "", near ? near : "",
				 near ? "'?)" : "");
	}
	struct kplan p = {.max_attempts = max_attempts, .health_interval = health_interval};
	struct target tv[MAX_TARGETS];
	p.t = tv;
	const char *kc = kubeconfig ? kubeconfig : b.kubeconfig;
	char abs[PATH_MAX];
	/* The supervisors outlive this directory: record an absolute path. */
	if (kc && kc[0] != '/' && realpath(kc, abs))
		kc = abs;
	if (kc)
		snprintf(p.kubeconfig, sizeof p.kubeconfig, "%s", kc);
	const char *cx = context ? context : b.context;
	if (cx)
		snprintf(p.context, sizeof p.context, "%s", cx);
	const char *dns = ns ? ns : b.namespace;
	if (dns && !k8s_dns_label(dns))
		return cli_error(c, EXIT_CONFIG,
				 "bridge.namespace '%s': not a valid namespace name", dns);
	if (dns)
		snprintf(p.namespace, sizeof p.namespace, "%s", dns);
	p.k.kubeconfig = p.kubeconfig[0] ? p.kubeconfig : NULL;
	p.k.context = p.context[0] ? p.context : NULL;

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
	if (p.n == 0)
		return cli_error(c, EXIT_USAGE,
				 "nothing to connect: give -t SERVICE:PORT[:LOCAL_PORT] or list "
				 "bridge.targets in the config (%s)",
				 c->config_path);
	if ((r = precheck(c, &p)))
		return r;
	if (c->dry_run) {
		dry_run(c, &p);
		return EXIT_OK;
	}
	return connect_run(c, &p, (int)timeout_s, foreground);
}

/* --- __k8s-forward: one target's supervisor --- */

int cmd_k8s_forward(struct cli *c)
{
	const char *svc = NULL, *ns = NULL, *port = NULL, *local = NULL, *kc = NULL, *cx = NULL,
		   *attempts = NULL, *health = NULL;
	const struct cli_opt opts[] = {
	    {"--service", 0, true, &svc, NULL},
	    {"--namespace", 0, true, &ns, NULL},
	    {"--port", 0, true, &port, NULL},
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
	if (c->argc != 1 || !svc || !ns || !port || !local || !cfg_name_valid(c->argv[0]))
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
	struct k8s_fwd f = {.kubeconfig = kc,
			    .context = cx,
			    .namespace = ns,
			    .service = svc,
			    .remote_port = (int)rp,
			    .requested_port = (int)lp,
			    .local_port = (int)lp,
			    .origin = "standalone"};
	return k8s_pf_supervise(&f, c->argv[0], c->state_dir, (int)max_attempts, health_interval,
				ready);
}

/* --- env, shell --- */

static int live_entries(struct cli *c, struct k8s_entry **v, size_t *n)
{
	int r = cli_state_dir(c);
	if (r)
		return r;
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
	struct k8s_entry *v = NULL;
	size_t n = 0;
	int r = live_entries(c, &v, &n);
	if (r)
		return r;
	json_t *vars = k8s_env_json(v, n);
	const char *key;
	json_t *val;
	json_object_foreach(vars, key, val) setenv(key, json_string_value(val), 1);
	if (n)
		fprintf(stderr, "devbridge: injected %zu BRIDGE_* variables from %zu bridge%s\n",
			json_object_size(vars), n, n == 1 ? "" : "s");
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
			fprintf(stderr, "nothing stopped\n");
			return EXIT_OK;
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
