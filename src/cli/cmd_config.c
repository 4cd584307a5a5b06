/* cmd_config.c - `config check` and `doctor`. */
#include "cli/cli.h"
#include "core/config.h"
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
			      "direction", t->direction == TUNNEL_LOCAL ? "local" : "reverse",
			      "host", t->host, "remote_port", t->remote_port, "local_port",
			      t->local_port, "remote_host", t->remote_host, "actor", t->actor,
			      "actor_class", a && a->cls == ACTOR_HUMAN ? "human" : "automation");
	json_t *h = json_null();
	if (t->health.kind == HEALTH_HTTP)
		h = json_pack("{s:s, s:i, s:i}", "url", t->health.url, "interval_seconds",
			      t->health.interval_s, "timeout_seconds", t->health.timeout_s);
	else if (t->health.kind == HEALTH_TCP)
		h = json_pack("{s:s, s:i, s:i, s:i}", "tcp_host",
			      t->health.tcp_host ? t->health.tcp_host : "127.0.0.1", "tcp_port",
			      t->health.tcp_port, "interval_seconds", t->health.interval_s,
			      "timeout_seconds", t->health.timeout_s);
	json_object_set_new(o, "health_check", h);
	json_object_set_new(o, "reconnect",
			    json_pack("{s:i, s:f, s:f, s:f}", "max_attempts", t->max_attempts,
				      "backoff_initial", t->backoff_initial, "backoff_max",
				      t->backoff_max, "stable_seconds", t->stable_s));
	char **av = NULL;
	json_t *argv = json_array();
	if (ssh_argv_build(t, &av) == 0)
		for (char **p = av; *p; p++)
			json_array_append_new(argv, json_string(*p));
	ssh_argv_free(av);
	json_object_set_new(o, "argv", argv);
	return o;
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
	if (c->json) {
		json_t *tunnels = json_array(), *actors = json_array();
		for (size_t i = 0; i < cfg->n_tunnels; i++)
			json_array_append_new(tunnels, tunnel_plan(cfg, &cfg->tunnels[i]));
		for (size_t i = 0; i < cfg->n_actors; i++)
			json_array_append_new(
			    actors,
			    json_pack("{s:s, s:s, s:s}", "name", cfg->actors[i].name, "class",
				      cfg->actors[i].cls == ACTOR_HUMAN ? "human" : "automation",
				      "description",
				      cfg->actors[i].description ? cfg->actors[i].description
								 : ""));
		json_t *doc = json_pack("{s:s, s:b, s:o, s:o}", "config", c->config_path, "valid",
					1, "tunnels", tunnels, "actors", actors);
		json_object_set_new(doc, "catalog_path",
				    cfg->catalog_path ? json_string(cfg->catalog_path)
						      : json_null());
		json_t *sections = json_array();
		if (cfg->has_bridge)
			json_array_append_new(sections, json_string("bridge"));
		if (cfg->has_services)
			json_array_append_new(sections, json_string("services"));
		if (cfg->has_container)
			json_array_append_new(sections, json_string("container"));
		json_object_set_new(doc, "other_sections", sections);
		cli_print_json(doc);
		return EXIT_OK;
	}
	printf("%s: valid (%zu tunnel%s, %zu actor%s)\n", c->config_path, cfg->n_tunnels,
	       cfg->n_tunnels == 1 ? "" : "s", cfg->n_actors, cfg->n_actors == 1 ? "" : "s");
	for (size_t i = 0; i < cfg->n_tunnels; i++) {
		const struct cfg_tunnel *t = &cfg->tunnels[i];
		const struct cfg_actor *a = cfg_find_actor(cfg, t->actor);
		printf("\n%s (%s, actor %s/%s)\n", t->name,
		       t->direction == TUNNEL_LOCAL ? "local" : "reverse", t->actor,
		       a && a->cls == ACTOR_HUMAN ? "human" : "automation");
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
			       t->max_attempts == 1 ? "" : "s");
		char **av = NULL;
		if (ssh_argv_build(t, &av) == 0) {
			char *line = ssh_argv_format(av);
			printf("  run: %s\n", line ? line : "");
			free(line);
		}
		ssh_argv_free(av);
	}
	if (cfg->catalog_path)
		printf("\ncatalog: %s\n", cfg->catalog_path);
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
}

int cmd_doctor(struct cli *c)
{
	if (cli_scan_opts(c, NULL, 0) < 0)
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
				snprintf(buf, sizeof buf, "%s:%d:%d: %s", path,
					 diags.items[0].mark.line, diags.items[0].mark.col,
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
