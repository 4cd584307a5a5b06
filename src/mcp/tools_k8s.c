/* tools_k8s.c - the tools of the other worlds: Kubernetes bridges
 * (connect, disconnect, env), intercepts (start, stop) and devcontainers
 * (status).  Each returns the document of its command's --json; nothing
 * stays attached to the server (connect and intercept always detach).
 * See tools.h. */
#include "mcp/tools.h"
#include "core/util.h"
#include "k8s/k8s_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_TIMEOUT_S   30 /* k8s_connect's default: pre-checks and first outcome */
#define INTERCEPT_TIMEOUT_S 45 /* intercept_start's default: up to the tunnel */

int tool_k8s_connect(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	uint64_t start_ms = now_mono_ms();
	char **targets;
	int nt, r = tool_strv(c->args, "targets", &targets, &nt, e);
	if (r)
		return r;
	struct app_connect_opts o = {
	    .targets = (const char *const *)targets,
	    .n_targets = (size_t)nt,
	    .kubeconfig = tool_str(c->args, "kubeconfig"),
	    .context = tool_str(c->args, "context"),
	    .namespace = tool_str(c->args, "namespace"),
	    .profile = tool_str(c->args, "profile"),
	    .timeout_s = (unsigned)tool_int(c->args, "timeout", CONNECT_TIMEOUT_S),
	    .max_attempts = (unsigned)tool_int(c->args, "max_attempts", APP_CONNECT_MAX_ATTEMPTS),
	    .health_interval =
		(unsigned)tool_int(c->args, "health_interval", APP_CONNECT_HEALTH_INTERVAL),
	    .start_ms = start_ms};
	struct app_kplan *p;
	if ((r = app_connect_plan(c->app, &o, &p, e))) {
		free(targets);
		return r;
	}
	json_t *doc = NULL;
	struct app_started *sv = NULL;
	size_t nsv = 0;
	r = app_connect(c->app, p, false, &doc, &sv, &nsv, e);
	app_kplan_free(p);
	free(targets);
	for (size_t i = 0; i < nsv; i++)
		if (sv[i].pid > 0)
			tool_adopt(sv[i].pid);
	free(sv);
	if (doc)
		*ret_doc = app_connect_doc(doc);
	return r;
}

int tool_k8s_disconnect(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	struct app a = *c->app;
	a.dry_run = tool_bool(c->args, "dry_run", false);
	char **names;
	int n, r = tool_strv(c->args, "names", &names, &n, e);
	json_t *rows = NULL;
	if (r == 0)
		r = app_disconnect(&a, n, names, &rows, e);
	tool_reap();
	if (rows)
		r = app_disconnect_doc(&a, r, rows, ret_doc, e);
	free(names);
	return r;
}

int tool_k8s_env(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	return app_env_doc(c->app, ret_doc, e);
}

/* intercept's steps, as progress notifications (a step per message). */
static void on_step(void *data, const char *step, const char *detail, unsigned ms)
{
	struct mcp_call *c = data;
	char msg[600];
	snprintf(msg, sizeof msg, "%s%s%s", step, detail ? ": " : "", detail ? detail : "");
	c->progress(c, ms / 1000.0, 0, msg);
}

int tool_intercept_start(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	uint64_t start_ms = now_mono_ms();
	const char *mode = tool_str(c->args, "mode");
	char **ports;
	int np, r = tool_strv(c->args, "ports", &ports, &np, e);
	if (r)
		return r;
	const char *svc = tool_str(c->args, "service");
	struct app_intercept_opts o = {
	    .service = svc,
	    .mode = !mode			  ? -1
		    : strcmp(mode, "mirror") == 0 ? INTERCEPT_MIRROR
						  : INTERCEPT_STEAL,
	    .ports = (const char *const *)ports,
	    .n_ports = (size_t)np,
	    .local_port = (int)tool_int(c->args, "local_port", 0),
	    .agent_image = tool_str(c->args, "agent_image"),
	    .kubeconfig = tool_str(c->args, "kubeconfig"),
	    .context = tool_str(c->args, "context"),
	    .namespace = tool_str(c->args, "namespace"),
	    .profile = tool_str(c->args, "profile"),
	    .timeout_s = (unsigned)tool_int(c->args, "timeout", INTERCEPT_TIMEOUT_S),
	    .start_ms = start_ms};
	struct app_iplan *p;
	if ((r = app_intercept_plan(c->app, &o, &p, e))) {
		free(ports);
		return r;
	}
	json_t *doc = NULL;
	r = app_intercept(c->app, p, false, on_step, c, &doc, e);
	app_iplan_free(p);
	free(ports);
	json_int_t pid = json_integer_value(json_object_get(doc, "pid"));
	if (pid > 0)
		tool_adopt((pid_t)pid);
	*ret_doc = doc;
	return r;
}

/* `down intercept-SVC`: its holder restores the Service and deletes the
 * agent's objects (or this process does, from the saved state). */
int tool_intercept_stop(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	const char *svc = tool_str(c->args, "service");
	if (!svc)
		return err_set(e, EXIT_USAGE, "intercept_stop: no service");
	char name[300], *names[] = {name};
	app_intercept_name(svc, name, sizeof name);
	json_t *rows = NULL;
	int r = app_down(c->app, 1, names, &rows, e);
	tool_reap();
	if (rows)
		r = app_down_doc(c->app, r, rows, ret_doc, e);
	return r;
}

/* The container rows of `status --json` (those of NAME only, when given). */
int tool_container_status(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	const char *name = tool_str(c->args, "name");
	json_t *rows = json_array();
	app_container_rows(c->app, rows);
	for (size_t i = json_array_size(rows); name && i-- > 0;)
		if (strcmp(json_string_value(json_object_get(json_array_get(rows, i), "name"))
			       ?: "",
			   name) != 0)
			json_array_remove(rows, i);
	if (name && json_array_size(rows) == 0) {
		json_decref(rows);
		return err_set(e, EXIT_UNKNOWN_BRIDGE, "no container named '%s' is connected",
			       name);
	}
	*ret_doc = json_pack("{s:o}", "bridges", rows);
	return 0;
}
