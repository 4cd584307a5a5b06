/* cmd_k8s.c - Kubernetes commands: connect, disconnect, env, shell, rbac,
 * and the hidden __k8s-forward that connect runs once per target: their
 * flags and their rendering.  The operations are src/app's (connect.c). */
#include "cli/cli.h"
#include "app/config.h"
#include "core/log.h"
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

/* A user's text, safe to echo on a terminal. */
static const char *clean(const char *s, char *buf, size_t n)
{
	snprintf(buf, n, "%s", s);
	text_sanitize(buf);
	return buf;
}

static const char *row_str(json_t *row, const char *key)
{
	const char *s = json_string_value(json_object_get(row, key));
	return s ? s : "";
}

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

/* What connect says on a terminal: a line per target, then where the
 * variables are. */
static void print_connected(struct cli *c, json_t *doc)
{
	size_t i;
	json_t *row;
	json_array_foreach(json_object_get(doc, "bridges"), i, row)
	{
		json_t *t = json_object_get(row, "target");
		const char *ns = row_str(t, "namespace"), *svc = row_str(t, "service");
		int port = (int)json_integer_value(json_object_get(t, "port"));
		const char *result = row_str(row, "result");
		int lp = (int)json_integer_value(json_object_get(row, "local_port"));
		int rp = (int)json_integer_value(json_object_get(row, "requested_port"));
		if (strcmp(result, "connected") == 0 || strcmp(result, "already_running") == 0) {
			char shifted[64] = "";
			if (rp && lp && rp != lp)
				snprintf(shifted, sizeof shifted, " (port %d was in use)", rp);
			printf("%s/%s:%d -> 127.0.0.1:%d %s%s (bridge %s, %s_*)\n", ns, svc, port,
			       lp,
			       strcmp(result, "connected") == 0 ? "connected" : "already connected",
			       shifted, row_str(row, "name"), row_str(row, "env_prefix"));
		} else {
			fprintf(stderr, "%s/%s:%d: %s: %s\n", ns, svc, port, result,
				row_str(row, "message"));
		}
	}
	if (json_integer_value(json_object_get(doc, "exported")) > 0)
		printf("variables: %s/bridge.env (`devbridge env`, `devbridge shell`)\n",
		       c->state_dir);
}

int cmd_connect(struct cli *c)
{
	uint64_t start_ms = now_mono_ms();
	const char *kubeconfig = NULL, *context = NULL, *ns = NULL, *timeout = NULL,
		   *attempts = NULL, *health = NULL, *targets[APP_MAX_TARGETS];
	size_t ntargets = 0;
	bool foreground = false;
	const struct cli_opt opts[] = {
	    {"--target", 't', true, NULL, NULL, targets, &ntargets, APP_MAX_TARGETS},
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
	unsigned timeout_s = APP_CONNECT_TIMEOUT_S, max_attempts = APP_CONNECT_MAX_ATTEMPTS,
		 health_interval = APP_CONNECT_HEALTH_INTERVAL;
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
	/* --dry-run reads the state directory (the session), but makes none. */
	if (c->dry_run && !c->state_dir)
		(void)state_dir_resolve(c->state_dir_opt, &c->state_dir);
	if (!c->state_dir && (r = cli_state_dir(c)))
		return r;
	struct app_connect_opts o = {.targets = targets,
				     .n_targets = ntargets,
				     .kubeconfig = kubeconfig,
				     .context = context,
				     .namespace = ns,
				     .profile = c->profile,
				     .timeout_s = timeout_s,
				     .max_attempts = max_attempts,
				     .health_interval = health_interval,
				     .start_ms = start_ms};
	struct app *a = cli_app(c);
	struct app_kplan *p;
	struct err e = {0};
	if (app_connect_plan(a, &o, &p, &e))
		return cli_fail(c, &e);
	if (c->dry_run) {
		json_t *doc = app_connect_dry_run(p);
		app_kplan_free(p);
		if (c->json) {
			cli_print_json(doc);
			return EXIT_OK;
		}
		size_t i;
		json_t *b;
		json_array_foreach(json_object_get(doc, "bridges"), i, b)
		{
			json_t *av = json_object_get(b, "argv");
			char **v = calloc(json_array_size(av) + 1, sizeof *v);
			size_t k;
			json_t *s;
			json_array_foreach(av, k, s) v[k] = (char *)json_string_value(s);
			char *line = v ? argv_format(v) : NULL;
			printf("%s: %s%s\n", row_str(b, "name"), line ? line : "",
			       json_object_get(b, "pod")
				   ? ""
				   : "  (no Ready pod yet: it would wait for one)");
			free(line);
			free(v);
		}
		json_decref(doc);
		return EXIT_OK;
	}
	if ((r = cli_state_dir(c))) {
		app_kplan_free(p);
		return r;
	}
	json_t *doc = NULL;
	struct app_started *sv = NULL;
	size_t nsv = 0;
	int code = app_connect(cli_app(c), p, foreground, &doc, &sv, &nsv, &e);
	app_kplan_free(p);
	if (!doc) {
		free(sv);
		return cli_fail(c, &e);
	}
	if (c->json) {
		cli_json_result(c, code, app_connect_doc(doc), e.message);
	} else {
		print_connected(c, doc);
		json_decref(doc);
	}
	if (foreground && code == EXIT_OK)
		code = cli_run_foreground(c, sv, nsv);
	free(sv);
	return code;
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
	unsigned rp = 0, lp = 0, max_attempts = APP_CONNECT_MAX_ATTEMPTS,
		 health_interval = APP_CONNECT_HEALTH_INTERVAL;
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
	struct k8s_fwd f = {.kubeconfig = kc,
			    .context = cx,
			    .namespace = ns,
			    .service = svc,
			    .port_name = pname,
			    .remote_port = (int)rp,
			    .requested_port = (int)lp,
			    .local_port = (int)lp,
			    .origin = "standalone"};
	return app_supervise_forward(cli_app(c), &f, c->argv[0], (int)max_attempts, health_interval,
				     ready);
}

/* --- env, shell --- */

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
	int r = cli_state_dir(c);
	if (r)
		return r;
	struct err e = {0};
	if (fmt == ENV_JSON) {
		json_t *doc;
		if (app_env_doc(cli_app(c), &doc, &e))
			return cli_fail(c, &e);
		cli_print_json(doc);
		return EXIT_OK;
	}
	if (app_k8s_entries(cli_app(c), &v, &n, &e))
		return cli_fail(c, &e);
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
	int r = cli_state_dir(c);
	if (r)
		return r;
	struct err e = {0};
	if (app_k8s_entries(cli_app(c), &v, &n, &e))
		return cli_fail(c, &e);
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
	int en = errno;
	return cli_error(c, en == ENOENT ? 127 : 126, "cannot run %s: %s", argv[0], strerror(en));
}

/* --- disconnect --- */

int cmd_disconnect(struct cli *c)
{
	if (cli_scan_opts(c, NULL, 0) < 0)
		return EXIT_USAGE;
	int r = cli_state_dir(c);
	if (r)
		return r;
	struct app *a = cli_app(c);
	json_t *names = app_k8s_bridges(a);
	size_t n = json_array_size(names);
	json_decref(names);
	names = app_intercept_names(a);
	n += json_array_size(names);
	json_decref(names);
	if (!c->dry_run && !c->yes && n > 0) {
		if (!isatty(STDIN_FILENO))
			return cli_error(c, EXIT_USAGE,
					 "disconnect would stop %zu bridge%s: refusing without -y "
					 "(stdin is not a terminal)",
					 n, n == 1 ? "" : "s");
		fprintf(stderr, "Disconnect %zu Kubernetes bridge%s? [y/N] ", n, n == 1 ? "" : "s");
		char ans[16] = "";
		if (!fgets(ans, sizeof ans, stdin) || (ans[0] != 'y' && ans[0] != 'Y'))
			return cli_error(c, EXIT_ERROR, "not confirmed: nothing stopped");
	}
	json_t *rows;
	struct err e = {0};
	int code = app_disconnect(a, c->argc, c->argv, &rows, &e);
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row)
	{
		const char *name = row_str(row, "name"), *what = row_str(row, "result");
		if (strcmp(what, "error") == 0)
			fprintf(stderr, "devbridge: %s\n", row_str(row, "message"));
		else if (c->json)
			continue;
		else if (c->dry_run)
			printf("%s: would %s\n", name,
			       strcmp(what, "would_stop") == 0 ? "stop it (and its kubectl)"
							       : "clear its failed state");
		else if (strcmp(row_str(row, "kind"), "leftover") == 0)
			printf("session %s: leftover objects removed\n", name);
		else if (strcmp(row_str(row, "kind"), "intercept") == 0)
			printf("%s: %s (the Service restored, the agent removed)\n", name, what);
		else
			printf("%s: %s\n", name, what);
	}
	if (!c->json && n == 0 && json_array_size(rows) == 0)
		printf("no Kubernetes bridges to disconnect\n");
	if (c->json) {
		json_t *doc;
		code = app_disconnect_doc(a, code, rows, &doc, &e);
		return cli_json_result(c, code, doc, e.message);
	}
	json_decref(rows);
	return code;
}
