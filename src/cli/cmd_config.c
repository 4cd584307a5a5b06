/* cmd_config.c - `config check` and `doctor`. */
#include "cli/cli.h"
#include "app/app.h"
#include "app/catalog.h"
#include "app/config.h"
#include "core/spawn.h"
#include "core/state.h"
#include "core/util.h"
#include "k8s/kubectl.h"
#include "ssh/ssh_argv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_t *tunnel_plan(const struct cfg *cfg, const struct cfg_tunnel *t)
{
	const struct cfg_actor *a = cfg_find_actor(cfg, t->actor);
	json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:s}", "name", t->name,
			      "direction", cfg_direction_name(t->direction), "host", t->host,
			      "remote_port", t->remote_port, "local_port", t->local_port,
			      "remote_host", t->remote_host, "actor", t->actor, "actor_class",
			      cfg_class_name(a ? a->cls : ACTOR_AUTOMATION));
	json_object_set_new(o, "health_check", app_tunnel_health_json(t));
	json_object_set_new(o, "reconnect", app_tunnel_reconnect_json(t));
	/* Where it is defined: the config's tunnels:, or a catalog bridge. */
	json_object_set_new(o, "source", json_string(t->catalog_file ? "catalog" : "config"));
	json_object_set_new(o, "catalog",
			    t->catalog_file ? json_pack("{s:s, s:s}", "domain", t->catalog_domain,
							"file", t->catalog_file)
					    : json_null());
	char **av = NULL;
	json_t *argv = json_array();
	if (ssh_argv_build(t, &av) == 0)
		for (char **p = av; *p; p++)
			json_array_append_new(argv, json_string(*p));
	ssh_argv_free(av);
	json_object_set_new(o, "argv", argv);
	return o;
}

/* --- what ssh makes of each tunnel's command line (ssh -G) --- */

static void add_extra(const char *line, size_t n, void *data)
{
	json_array_append_new(data, json_stringn(line, n));
}

/* Run `ssh -G` with every tunnel's command line (config files applied, as
 * ssh would run it): *extras[i] gets the forwards an ssh_config file adds
 * to tunnel i (json null when ssh could not be asked), `warn` a warning
 * for each, `err` the tunnels whose configuration ssh refuses. */
static void ssh_dumps(const struct cfg *cfg, json_t **extras, struct cfg_diags *warn,
		      struct cfg_diags *err)
{
	size_t n = cfg->n_tunnels;
	struct spawn_capture *jobs = calloc(n ? n : 1, sizeof *jobs);
	char ***argvs = calloc(n ? n : 1, sizeof *argvs);
	char e[256];
	if (!jobs || !argvs) {
		free(jobs);
		free(argvs);
		return;
	}
	char *ssh = spawn_which("ssh");
	for (size_t i = 0; ssh && i < n; i++) {
		if (ssh_argv_build_dump(&cfg->tunnels[i], &argvs[i]) < 0)
			continue;
		jobs[i].argv = argvs[i];
		jobs[i].max = 256 * 1024;
	}
	if (ssh)
		spawn_capture_all(jobs, n, 10000);
	for (size_t i = 0; i < n; i++) {
		const struct cfg_tunnel *t = &cfg->tunnels[i];
		/* A forward comes from the tunnel's ssh_config file, or from
		 * ~/.ssh/config or /etc/ssh/ssh_config without one. */
		struct cfg_mark m = t->ssh_config ? t->ssh_config_mark : t->mark;
		extras[i] = json_null();
		if (!ssh || !jobs[i].argv)
			continue;
		if (jobs[i].status == 0 && jobs[i].out) {
			json_decref(extras[i]);
			extras[i] = json_array();
			ssh_dump_extra_forwards(jobs[i].out, strlen(jobs[i].out), t, add_extra,
						extras[i]);
			size_t k;
			json_t *v;
			json_array_foreach(extras[i], k, v) cfg_diag_add(
			    warn, m,
			    "tunnels.%s: %s adds a forward that is not managed by devbridge: "
			    "%s (ssh carries it and fails the tunnel when it cannot bind it; "
			    "status does not show it)",
			    t->name,
			    t->ssh_config ? "its ssh_config file"
					  : "~/.ssh/config or /etc/ssh/ssh_config",
			    json_string_value(v));
		} else if (jobs[i].status == -ETIMEDOUT || jobs[i].status == -ENOENT) {
			cfg_diag_add(
			    warn, t->mark,
			    "tunnels.%s: `ssh -G` %s: forwards an ssh_config file adds were "
			    "not checked",
			    t->name, jobs[i].status == -ENOENT ? "could not run" : "timed out");
		} else {
			snprintf(e, sizeof e, "%.*s", (int)strcspn(jobs[i].err, "\n"), jobs[i].err);
			text_sanitize(e);
			cfg_diag_add(err, m,
				     "tunnels.%s: ssh refuses this tunnel's configuration: %s",
				     t->name, *e ? e : "(no message)");
		}
		free(jobs[i].out);
		ssh_argv_free(argvs[i]);
	}
	if (!ssh)
		cfg_diag_add(warn, (struct cfg_mark){cfg->path, 0, 0},
			     "ssh not found on PATH: forwards added by ssh_config files were not "
			     "checked");
	free(ssh);
	free(jobs);
	free(argvs);
}

/* --- the Kubernetes plan --- */

/* What a target without a namespace gets when bridge.namespace is unset. */
#define DEFAULT_NS "(the context's namespace)"

static json_t *jstr_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *target_json(const struct cfg_target *t)
{
	return json_pack("{s:s, s:o, s:i, s:i}", "service", t->service, "namespace",
			 jstr_or_null(t->namespace), "port", t->port, "local_port",
			 t->local_port ? t->local_port : t->port);
}

static json_t *intercept_json(const struct cfg_intercept *i)
{
	return json_pack("{s:s, s:o, s:o, s:o, s:s}", "service", i->service, "namespace",
			 jstr_or_null(i->namespace), "port",
			 i->port ? json_integer(i->port) : json_null(), "local_port",
			 i->local_port || i->port
			     ? json_integer(i->local_port ? i->local_port : i->port)
			     : json_null(),
			 "mode", cfg_mode_name(i->mode));
}

static json_t *bridge_json(const struct cfg_bridge *b)
{
	json_t *t = json_array(), *ic = json_array();
	for (size_t i = 0; i < b->n_targets; i++)
		json_array_append_new(t, target_json(&b->targets[i]));
	for (size_t i = 0; i < b->n_intercepts; i++)
		json_array_append_new(ic, intercept_json(&b->intercepts[i]));
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "kubeconfig",
			 jstr_or_null(b->kubeconfig), "context", jstr_or_null(b->context),
			 "namespace", jstr_or_null(b->namespace), "agent_image",
			 jstr_or_null(b->agent_image), "targets", t, "intercepts", ic);
}

static json_t *service_json(const struct cfg *cfg, const struct cfg_service *v)
{
	json_t *o =
	    json_pack("{s:s, s:s}", "name", v->name, "runtime", cfg_runtime_name(v->runtime));
	if (v->has_target)
		json_object_set_new(o, "bridge_target", target_json(&v->target));
	if (v->has_intercept)
		json_object_set_new(o, "bridge_intercept", intercept_json(&v->intercept));
	if (v->command) {
		json_t *a = json_array();
		for (size_t i = 0; i < v->n_command; i++)
			json_array_append_new(a, json_string(v->command[i]));
		json_object_set_new(o, v->command_shell ? "shell_command" : "command", a);
	}
	json_object_set_new(o, "port", v->port ? json_integer(v->port) : json_null());
	json_t *deps = json_array();
	for (size_t i = 0; i < v->n_depends_on; i++)
		json_array_append_new(
		    deps, json_pack("{s:s, s:s, s:b}", "name", v->depends_on[i].name, "condition",
				    cfg_condition_name(v->depends_on[i].condition), "defined",
				    cfg_find_service(cfg, v->depends_on[i].name) != NULL));
	json_object_set_new(o, "depends_on", deps);
	return o;
}

static const char *ns_or(const char *ns, const char *dflt)
{
	return ns ? ns : dflt;
}

static void print_target(const char *indent, const struct cfg_target *t, const char *dns)
{
	printf("%starget %s/%s: service port %d -> 127.0.0.1:%d\n", indent,
	       ns_or(t->namespace, dns), t->service, t->port,
	       t->local_port ? t->local_port : t->port);
}

static void print_intercept(const char *indent, const struct cfg_intercept *i, const char *dns)
{
	char port[32] = "every port", local[48] = "";
	if (i->port)
		snprintf(port, sizeof port, "port %d", i->port);
	if (i->local_port || i->port)
		snprintf(local, sizeof local, " -> local %d",
			 i->local_port ? i->local_port : i->port);
	printf("%sintercept %s/%s: %s%s, %s (`devbridge intercept`: validation and --dry-run so "
	       "far)\n",
	       indent, ns_or(i->namespace, dns), i->service, port, local, cfg_mode_name(i->mode));
}

/* `dns`: the namespace of targets without one (with a profile: as
 * resolved over the base). */
static void print_bridge(const char *indent, const struct cfg_bridge *b, bool profile,
			 const char *dns)
{
	/* A profile shows only what it sets; the base shows the defaults. */
	if (b->kubeconfig || !profile)
		printf("%skubeconfig: %s\n", indent,
		       b->kubeconfig ? b->kubeconfig : "$KUBECONFIG, else ~/.kube/config");
	if (b->context || !profile)
		printf("%scontext: %s\n", indent,
		       b->context ? b->context : "the kubeconfig's current context");
	if (b->namespace || !profile)
		printf("%snamespace: %s\n", indent,
		       b->namespace ? b->namespace : "the context's namespace, else default");
	if (b->agent_image && *b->agent_image)
		printf("%sagent image: %s\n", indent, b->agent_image);
	for (size_t i = 0; i < b->n_targets; i++)
		print_target(indent, &b->targets[i], dns);
	if (profile && b->targets_set && b->n_targets == 0)
		printf("%stargets: none (replaces the base list)\n", indent);
	for (size_t i = 0; i < b->n_intercepts; i++)
		print_intercept(indent, &b->intercepts[i], dns);
}

static void print_service(const struct cfg *cfg, const struct cfg_service *v)
{
	const char *dns = ns_or(cfg->bridge.namespace, DEFAULT_NS);
	printf("  %s (%s)\n", v->name, cfg_runtime_name(v->runtime));
	if (v->has_target)
		print_target("    ", &v->target, dns);
	if (v->has_intercept)
		print_intercept("    ", &v->intercept, dns);
	if (v->command) {
		char *line = v->command_shell ? NULL : argv_format(v->command);
		printf("    command: %s%s\n", v->command_shell ? "sh -c " : "",
		       v->command_shell ? v->command[0]
		       : line		? line
					: "");
		free(line);
	}
	if (v->port)
		printf("    port: %d\n", v->port);
	for (size_t i = 0; i < v->n_depends_on; i++) {
		const struct cfg_dep *d = &v->depends_on[i];
		printf("    after %s (%s)%s\n", d->name, cfg_condition_name(d->condition),
		       cfg_find_service(cfg, d->name) ? "" : ": not in services:");
	}
}

static void print_warnings(const struct cfg_diags *w)
{
	char line[CFG_DIAG_LINE_MAX];
	for (size_t i = 0; i < w->n; i++)
		fprintf(stderr, "%s\n",
			cfg_diag_format(line, sizeof line, w->items[i].mark, "warning: %s",
					w->items[i].msg));
}

static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

int cmd_config(struct cli *c)
{
	if (cli_scan_opts(c, NULL, 0) < 0)
		return EXIT_USAGE;
	if (c->argc != 1 || strcmp(c->argv[0], "check") != 0)
		return cli_error(c, EXIT_USAGE, "usage: devbridge config check");
	int r = cli_load_config(c);
	if (r)
		return r;
	if ((r = cli_check_files(c, NULL)))
		return r;
	const struct cfg *cfg = c->cfg;
	struct cfg_diags warn = {0}, err = {0};
	json_t **extras = calloc(cfg->n_tunnels ? cfg->n_tunnels : 1, sizeof *extras);
	if (!extras)
		return cli_error(c, EXIT_ERROR, "out of memory");
	cfg_lint(cfg, &warn);
	ssh_dumps(cfg, extras, &warn, &err);
	if (err.n) {
		for (size_t i = 0; i < cfg->n_tunnels; i++)
			json_decref(extras[i]);
		free(extras);
		cfg_diags_clear(&warn);
		r = cli_report_diags(c, &err);
		cfg_diags_clear(&err);
		return r;
	}
	bool k8s = cfg->has_bridge || cfg->n_profiles || cfg->n_services;
	if (c->json) {
		json_t *tunnels = json_array(), *actors = json_array();
		for (size_t i = 0; i < cfg->n_tunnels; i++) {
			json_t *t = tunnel_plan(cfg, &cfg->tunnels[i]);
			json_object_set_new(t, "extra_forwards", extras[i]);
			json_array_append_new(tunnels, t);
		}
		for (size_t i = 0; i < cfg->n_actors; i++)
			json_array_append_new(
			    actors,
			    json_pack("{s:s, s:s, s:s}", "name", cfg->actors[i].name, "class",
				      cfg_class_name(cfg->actors[i].cls), "description",
				      cfg->actors[i].description ? cfg->actors[i].description
								 : ""));
		json_t *doc = json_pack("{s:s, s:b, s:o, s:o}", "config", c->config_path, "valid",
					1, "tunnels", tunnels, "actors", actors);
		json_object_set_new(doc, "catalog_path",
				    cfg->catalog_path ? json_string(cfg->catalog_path)
						      : json_null());
		json_object_set_new(doc, "bridge",
				    cfg->has_bridge ? bridge_json(&cfg->bridge) : json_null());
		json_t *profiles = json_array(), *services = json_array();
		for (size_t i = 0; i < cfg->n_profiles; i++)
			json_array_append_new(profiles,
					      json_pack("{s:s, s:o}", "name", cfg->profiles[i].name,
							"bridge",
							cfg->profiles[i].has_bridge
							    ? bridge_json(&cfg->profiles[i].bridge)
							    : json_null()));
		for (size_t i = 0; i < cfg->n_services; i++)
			json_array_append_new(services, service_json(cfg, &cfg->services[i]));
		json_object_set_new(doc, "profiles", profiles);
		json_object_set_new(doc, "services", services);
		json_t *sections = json_array();
		if (cfg->has_bridge)
			json_array_append_new(sections, json_string("bridge"));
		if (cfg->has_services)
			json_array_append_new(sections, json_string("services"));
		if (cfg->has_container)
			json_array_append_new(sections, json_string("container"));
		json_object_set_new(doc, "other_sections", sections);
		json_object_set_new(doc, "warnings", cfg_diags_json(&warn));
		free(extras);
		cfg_diags_clear(&warn);
		cli_print_json(doc);
		return EXIT_OK;
	}
	for (size_t i = 0; i < cfg->n_tunnels; i++)
		json_decref(extras[i]);
	free(extras);
	printf("%s: valid (%zu tunnel%s, %zu actor%s", c->config_path, cfg->n_tunnels,
	       plural(cfg->n_tunnels), cfg->n_actors, plural(cfg->n_actors));
	if (k8s)
		printf("; %zu Kubernetes target%s, %zu intercept%s, %zu service%s, %zu profile%s",
		       cfg->bridge.n_targets, plural(cfg->bridge.n_targets),
		       cfg->bridge.n_intercepts, plural(cfg->bridge.n_intercepts), cfg->n_services,
		       plural(cfg->n_services), cfg->n_profiles, plural(cfg->n_profiles));
	printf(")\n");
	for (size_t i = 0; i < cfg->n_tunnels; i++) {
		const struct cfg_tunnel *t = &cfg->tunnels[i];
		const struct cfg_actor *a = cfg_find_actor(cfg, t->actor);
		printf("\n%s (%s, actor %s/%s)\n", t->name, cfg_direction_name(t->direction),
		       t->actor, cfg_class_name(a ? a->cls : ACTOR_AUTOMATION));
		if (t->catalog_file)
			printf("  from the catalog: domain %s, %s\n", t->catalog_domain,
			       t->catalog_file);
		if (t->direction == TUNNEL_LOCAL)
			printf("  127.0.0.1:%d -> %s:%d via %s\n", t->local_port, t->remote_host,
			       t->remote_port, t->host);
		else
			printf("  %s:%d (on %s) -> %s:%d here\n", "localhost", t->remote_port,
			       t->host, t->remote_host, t->local_port);
		if (t->health.kind == HEALTH_HTTP)
			printf("  health: GET %s every %ds (timeout %ds)\n", t->health.url,
			       t->health.interval_s, t->health.timeout_s);
		else if (t->health.kind == HEALTH_TCP)
			printf("  health: connect %s:%d every %ds (timeout %ds)\n",
			       t->health.tcp_host ? t->health.tcp_host : "127.0.0.1",
			       t->health.tcp_port, t->health.interval_s, t->health.timeout_s);
		printf("  reconnect: %s, backoff %.1fs..%.1fs, reset after %.0fs connected\n",
		       t->max_attempts ? "limited" : "forever", t->backoff_initial, t->backoff_max,
		       t->stable_s);
		if (t->max_attempts)
			printf("  gives up after %d failed attempt%s\n", t->max_attempts,
			       plural((size_t)t->max_attempts));
		char **av = NULL;
		if (ssh_argv_build(t, &av) == 0) {
			char *line = ssh_argv_format(av);
			printf("  run: %s\n", line ? line : "");
			free(line);
		}
		ssh_argv_free(av);
	}
	if (cfg->has_bridge) {
		printf("\nKubernetes (bridge:, what `connect` uses without -t)\n");
		print_bridge("  ", &cfg->bridge, false, ns_or(cfg->bridge.namespace, DEFAULT_NS));
	}
	for (size_t i = 0; i < cfg->n_profiles; i++) {
		const struct cfg_profile *p = &cfg->profiles[i];
		struct cfg_bridge rb;
		printf("\nprofile %s (--profile %s, laid over bridge:)\n", p->name, p->name);
		if (p->has_bridge && cfg_bridge_resolve(cfg, p->name, &rb) == 0)
			print_bridge("  ", &p->bridge, true, ns_or(rb.namespace, DEFAULT_NS));
		else
			printf("  (no bridge: settings)\n");
	}
	if (cfg->n_services) {
		printf("\nservices (the `up` dependency graph: coming, not in this release)\n");
		for (size_t i = 0; i < cfg->n_services; i++)
			print_service(cfg, &cfg->services[i]);
	}
	if (cfg->catalog_path)
		printf("\ncatalog: %s\n", cfg->catalog_path);
	fflush(stdout);
	print_warnings(&warn);
	cfg_diags_clear(&warn);
	return EXIT_OK;
}

/* --- doctor --- */

struct doc_row {
	json_t *rows;
	bool all_ok;
	bool json;
};

/* One check.  An optional check that fails is shown as "--" and does not
 * make the machine "not ready". */
static void report(struct doc_row *d, const char *check, bool ok, const char *detail, bool required)
{
	if (!ok && required)
		d->all_ok = false;
	json_array_append_new(d->rows, json_pack("{s:s, s:b, s:b, s:s}", "check", check, "ok", ok,
						 "required", required, "detail", detail));
	if (!d->json)
		printf("  %s  %-22s %s\n", ok ? "ok  " : required ? "FAIL" : "--  ", check, detail);
}

/* Run argv and keep the first line it printed (stdout, else stderr: `ssh
 * -V` answers there), giving up after timeout_ms.  Returns the exit
 * status, or a negative errno (-ETIMEDOUT, -ENOENT). */
static int run_capture(char *const *argv, char *buf, size_t n, int timeout_ms)
{
	struct spawn_capture job = {.argv = argv, .max = 512};
	spawn_capture_all(&job, 1, timeout_ms);
	const char *text = job.out && *job.out ? job.out : job.err;
	snprintf(buf, n, "%.*s", (int)strcspn(text, "\n"), text);
	free(job.out);
	return job.status;
}

/* Kubernetes rows, for the cluster connect would use: the config's
 * bridge.kubeconfig and bridge.context (with --profile), else kubectl's
 * defaults.  They count against readiness only when the config has a
 * bridge: section (the user asked for this world). */
static void doctor_k8s(struct doc_row *d, const struct cfg *cfg, const char *profile)
{
	bool required = cfg && cfg->has_bridge;
	struct cfg_bridge b = {0};
	if (cfg && cfg_bridge_resolve(cfg, profile, &b) < 0)
		memset(&b, 0, sizeof b);
	char buf[4200];
	struct kctl k = {.kubeconfig = b.kubeconfig, .context = b.context};
	char *kubectl = spawn_which("kubectl");
	if (!kubectl) {
		report(d, "kubectl", false, "not on PATH (needed for connect and intercept)",
		       required);
		return;
	}
	k.kubectl = kubectl;
	char *ver[] = {kubectl, "version", "--client", NULL}, out[512];
	int r = run_capture(ver, out, sizeof out, 20000);
	snprintf(buf, sizeof buf, "%s (%s)", kubectl, r == 0 && *out ? out : "version unknown");
	report(d, "kubectl", true, buf, required);
	char kc[4096];
	if (b.kubeconfig)
		snprintf(kc, sizeof kc, "%s", b.kubeconfig);
	else
		kctl_default_kubeconfig(kc, sizeof kc);
	if (!kctl_kubeconfig_exists(kc)) {
		snprintf(buf, sizeof buf, "%s: not found", kc);
		report(d, "kubeconfig", false, buf, required);
		free(kubectl);
		return;
	}
	report(d, "kubeconfig", true, kc, required);
	/* What connect's pre-check asks: /version needs no RBAC grant. */
	static const char *const info[] = {"get", "--raw", "/version", "--request-timeout=5s",
					   NULL};
	struct kctl_job jobs[1] = {{.args = info}};
	kctl_run_all(&k, jobs, 1, 20000);
	char msg[512];
	kctl_message(jobs[0].err, msg, sizeof msg);
	r = jobs[0].status;
	if (r == 0)
		snprintf(buf, sizeof buf, "the API server%s%s answered",
			 b.context ? " of context " : "", b.context ? b.context : "");
	else
		snprintf(buf, sizeof buf, "%s",
			 r == -ETIMEDOUT ? "kubectl timed out" : (*msg ? msg : "unreachable"));
	report(d, "cluster reachable", r == 0, buf, required);
	free(kubectl);
	if (r != 0)
		return;
	/* intercept: its rights count when the config lists intercepts; the
	 * Pod Security level is information (the agent meets restricted) */
	json_t *rows = json_array();
	bool icpt_required = required && b.n_intercepts > 0;
	if (rows && app_intercept_ready(&b, rows) != -ENOMEM) {
		size_t i;
		json_t *row;
		json_array_foreach(rows, i, row)
		{
			const char *check = json_string_value(json_object_get(row, "check"));
			report(d, check, json_is_true(json_object_get(row, "ok")),
			       json_string_value(json_object_get(row, "detail")),
			       icpt_required && strcmp(check, "intercept rights") == 0);
		}
	}
	json_decref(rows);
}

/* What dead intercept sessions left: reported, and with --fix removed
 * (the Service restored when it still carries the session), in every
 * namespace an intercept here was in and in the config's namespace. */
static void doctor_leftovers(struct doc_row *d, const struct cfg *cfg, const char *profile,
			     const char *config_path, char *dir, bool fix)
{
	struct app a = {.cfg = (struct cfg *)cfg,
			.config_path = config_path ? config_path : APP_NO_CONFIG,
			.state_dir = dir};
	char buf[600];
	json_t *names = app_intercept_names(&a);
	size_t dead = 0, i;
	json_t *v;
	json_array_foreach(names, i, v) dead += state_probe(dir, json_string_value(v)) == 0;
	json_decref(names);
	if (!fix) {
		if (dead)
			snprintf(
			    buf, sizeof buf,
			    "%zu intercept%s here without its process: `devbridge doctor --fix` "
			    "restores and removes what %s left",
			    dead, dead == 1 ? "" : "s", dead == 1 ? "it" : "they");
		else
			snprintf(buf, sizeof buf, "none here (--fix also looks in the cluster)");
		report(d, "intercept leftovers", dead == 0, buf, false);
		return;
	}
	struct cfg_bridge b = {0};
	if (cfg && cfg_bridge_resolve(cfg, profile, &b) < 0)
		memset(&b, 0, sizeof b);
	struct kctl k = {.kubeconfig = b.kubeconfig, .context = b.context};
	const char *ns = b.namespace && *b.namespace ? b.namespace : "default";
	json_t *removed = json_array();
	int r = app_intercept_sweep_all(&a, cfg && cfg->has_bridge ? &k : NULL, ns, removed);
	size_t n = json_array_size(removed);
	if (r < 0)
		snprintf(buf, sizeof buf, "could not list the cluster's devbridge objects");
	else
		snprintf(buf, sizeof buf, "%zu leftover session%s removed", n, n == 1 ? "" : "s");
	report(d, "intercept leftovers", r == 0, buf, false);
	json_decref(removed);
}

int cmd_doctor(struct cli *c)
{
	bool fix = false;
	const struct cli_opt opts[] = {{"--fix", 0, false, NULL, &fix}};
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	struct doc_row d = {.rows = json_array(), .all_ok = true, .json = c->json};
	if (!c->json)
		printf("Feature readiness:\n");
	char buf[1024];
	char *ssh = spawn_which("ssh");
	if (ssh) {
		char ver[256];
		char *argv[] = {ssh, "-V", NULL};
		if (run_capture(argv, ver, sizeof ver, 5000) < 0 || !ver[0])
			snprintf(ver, sizeof ver, "present");
		snprintf(buf, sizeof buf, "%s (%s)", ssh, ver);
		report(&d, "ssh client", true, buf, true);
		free(ssh);
	} else {
		report(&d, "ssh client", false, "not on PATH: apt-get install openssh-client",
		       true);
	}

	/* Config problems are reported as rows, not as the command's failure. */
	char *path = NULL;
	struct cfg *cfg = NULL;
	if (cfg_resolve_path(c->config_opt, &path) < 0) {
		report(&d, "config", false, "no configuration found (see `devbridge --help`)",
		       true);
	} else {
		struct cfg_diags diags = {0};
		if (cfg_load(path, &cfg, &diags) < 0) {
			if (diags.n)
				cfg_diag_format(buf, sizeof buf, diags.items[0].mark, "%s",
						diags.items[0].msg);
			else
				snprintf(buf, sizeof buf, "%s: cannot read", path);
			report(&d, "config", false, buf, true);
		} else {
			snprintf(buf, sizeof buf, "%s (%zu tunnels)", path, cfg->n_tunnels);
			report(&d, "config", true, buf, true);
		}
		cfg_diags_clear(&diags);
	}
	for (size_t i = 0; cfg && i < cfg->n_tunnels; i++) {
		const struct cfg_tunnel *t = &cfg->tunnels[i];
		struct cfg_diags diags = {0};
		char check[128];
		snprintf(check, sizeof check, "key %s", t->name);
		if (cfg_check_files(cfg, t, &diags) < 0 && diags.n)
			report(&d, check, false, diags.items[0].msg, true);
		else
			report(&d, check, true, t->ssh_key, true);
		cfg_diags_clear(&diags);
	}
	doctor_k8s(&d, cfg, c->profile);
	char *dir = NULL;
	if (state_dir_resolve(c->state_dir_opt, &dir) < 0) {
		report(&d, "state directory", false, "cannot resolve (set HOME or --state-dir)",
		       true);
	} else {
		int r = state_dir_ensure(dir);
		if (r == 0 && access(dir, W_OK) < 0)
			r = -errno;
		snprintf(buf, sizeof buf, "%s%s%s", dir, r ? ": " : " (0700)",
			 r ? strerror(-r) : "");
		report(&d, "state directory", r == 0, buf, true);
		if (r == 0)
			doctor_leftovers(&d, cfg, c->profile, path, dir, fix);
	}
	free(dir);
	free(path);
	cfg_free(cfg);
	if (c->json) {
		json_t *doc = json_pack("{s:b, s:o}", "ready", d.all_ok, "checks", d.rows);
		if (!d.all_ok)
			return cli_error_json(c, EXIT_ERROR, doc, "not ready: see checks");
		cli_print_json(doc);
		return EXIT_OK;
	}
	json_decref(d.rows);
	printf(d.all_ok ? "\nready\n" : "\nnot ready: fix the FAIL lines above\n");
	return d.all_ok ? EXIT_OK : EXIT_ERROR;
}
