/* tools_bridge.c - the bridge tools (every kind of bridge: up, down,
 * restart, status, logs, check, wait): each returns the document of its
 * command's --json (src/app/doc.c), never text.  See tools.h. */
#include "mcp/tools.h"
#include "app/config.h"
#include "core/util.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UP_TIMEOUT_S	 15  /* bridge_up's default wait for the first outcome */
#define WAIT_TIMEOUT_S	 20  /* bridge_wait's default */
#define WAIT_STEP_MS	 200 /* how often bridge_wait reads the state */
#define WAIT_PROGRESS_MS 1000

/* `up NAMES --timeout T`, detached: the supervisors started are adopted. */
static int up(struct mcp_call *c, int n, char **names, json_t **ret_doc, struct err *e)
{
	/* The key and config files first, as `up`: an invalid one is its
	 * error envelope, diagnostics in it (up --json's). */
	struct cfg_diags d = {0};
	int r = app_up_check(c->app, n, names, &d, e);
	if (r && d.n)
		*ret_doc = json_pack("{s:{s:o*}}", "error", "diagnostics", cfg_diags_json(&d));
	cfg_diags_clear(&d);
	if (r)
		return r;
	struct app_started *v = NULL;
	size_t nv = 0;
	int timeout_s = (int)tool_int(c->args, "timeout", UP_TIMEOUT_S);
	r = app_up_doc(c->app, n, names, timeout_s, false, ret_doc, &v, &nv, e);
	for (size_t i = 0; i < nv; i++)
		if (v[i].pid > 0 && strcmp(v[i].result, "already_running") != 0)
			tool_adopt(v[i].pid);
	free(v);
	return r;
}

int tool_bridge_up(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	char **names;
	int n, r = tool_strv(c->args, "names", &names, &n, e);
	if (r == 0)
		r = up(c, n, names, ret_doc, e);
	free(names);
	return r;
}

int tool_bridge_down(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	char **names;
	int n, r = tool_strv(c->args, "names", &names, &n, e);
	json_t *rows = NULL;
	if (r == 0)
		r = app_down(c->app, n, names, &rows, e);
	tool_reap();
	if (rows)
		r = app_down_doc(c->app, r, rows, ret_doc, e);
	free(names);
	return r;
}

int tool_bridge_restart(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	char **names;
	int n, r = tool_strv(c->args, "names", &names, &n, e);
	json_t *rows = NULL;
	if (r == 0)
		r = app_down(c->app, n, names, &rows, e);
	tool_reap();
	if (r && rows) /* as `restart --json`: down's document when it failed */
		r = app_down_doc(c->app, r, rows, ret_doc, e);
	else
		json_decref(rows);
	if (r == 0)
		r = up(c, n, names, ret_doc, e);
	free(names);
	return r;
}

int tool_bridge_status(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	char **names;
	int n, r = tool_strv(c->args, "names", &names, &n, e);
	tool_reap(); /* a supervisor that gave up on its own */
	if (r == 0)
		r = app_status_doc(c->app, n, names, ret_doc, e);
	free(names);
	return r;
}

int tool_bridge_logs(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	const char *name = tool_str(c->args, "name");
	if (!name)
		return err_set(e, EXIT_USAGE, "usage: devbridge logs NAME [-n N] [-f]");
	return app_logs_doc(c->app, name, tool_int(c->args, "lines", 20), ret_doc, e);
}

int tool_bridge_check(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	char **names;
	int n, r = tool_strv(c->args, "names", &names, &n, e);
	if (r == 0)
		r = app_check_doc(c->app, n, names, ret_doc, e);
	free(names);
	return r;
}

/* --- bridge_wait --- */

/* The first row of a status document whose state is not one of `want`
 * (NULL when every row's is). */
static json_t *row_not_in(json_t *doc, char **want, int nwant)
{
	size_t i;
	json_t *row;
	json_array_foreach(json_object_get(doc, "bridges"), i, row)
	{
		const char *st = json_string_value(json_object_get(row, "state")) ?: "";
		bool ok = false;
		for (int k = 0; k < nwant && !ok; k++)
			ok = strcmp(st, want[k]) == 0;
		if (!ok)
			return row;
	}
	return NULL;
}

/* EXIT_TIMEOUT: `row` of NAME is in none of the states asked for, at the
 * timeout or when the wait was stopped `waited_ms` in. */
static int not_reached(const char *name, char **states, int nstates, json_t *row, bool stopped,
		       long timeout_s, uint64_t waited_ms, struct err *e)
{
	const char *now = json_string_value(json_object_get(row, "state")) ?: "";
	char asked[256] = "";

	for (int k = 0, o = 0; k < nstates && o < (int)sizeof asked; k++)
		o += snprintf(asked + o, sizeof asked - (size_t)o, "%s%s", k ? "|" : "", states[k]);
	if (stopped)
		return err_set(e, EXIT_TIMEOUT,
			       "%s: not %s: the wait was interrupted after %.1f s (the request "
			       "was cancelled or stdin closed; now %s)",
			       name, asked, (double)waited_ms / 1000, now);
	return err_set(e, EXIT_TIMEOUT, "%s: not %s after %ld s (now %s)", name, asked, timeout_s,
		       now);
}

/* Read NAME's state every WAIT_STEP_MS until each of its rows is in one
 * of the states wanted, the timeout, or the call is told to stop (the
 * client cancelled, or closed stdin: that reply is still sent): the
 * status document of NAME then (as `status NAME --json`), EXIT_TIMEOUT
 * with it when the state was not reached, whatever stopped the wait. */
int tool_bridge_wait(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	static char *dflt[] = {"connected", "failed", "stopped"};
	char *name = (char *)tool_str(c->args, "name");
	if (!name)
		return err_set(e, EXIT_USAGE, "bridge_wait: no name");
	char **want;
	int nwant, r = tool_strv(c->args, "states", &want, &nwant, e);
	if (r)
		return r;
	char **states = nwant ? want : dflt;
	int nstates = nwant ? nwant : (int)ARRAY_SIZE(dflt);
	long timeout_s = tool_int(c->args, "timeout", WAIT_TIMEOUT_S);
	uint64_t start = now_mono_ms(), deadline = start + (uint64_t)timeout_s * 1000, reported = 0;
	char last[64] = "";
	for (;;) {
		json_t *doc = NULL;
		if ((r = app_status_doc(c->app, 1, &name, &doc, e)))
			break;
		json_t *row = row_not_in(doc, states, nstates);
		uint64_t now = now_mono_ms();
		bool stopped = c->cancelled(c);
		if (!row || stopped || now >= deadline) {
			*ret_doc = doc;
			if (row)
				r = not_reached(name, states, nstates, row, stopped, timeout_s,
						now - start, e);
			break;
		}
		const char *st = json_string_value(json_object_get(row, "state")) ?: "";
		if (strcmp(st, last) != 0 || now - reported >= WAIT_PROGRESS_MS) {
			char msg[128];
			snprintf(msg, sizeof msg, "%s: %s", name, st);
			snprintf(last, sizeof last, "%s", st);
			c->progress(c, (double)(now - start) / 1000, (double)timeout_s, msg);
			reported = now;
		}
		json_decref(doc);
		uint64_t left = deadline - now;
		poll(NULL, 0, (int)(left < WAIT_STEP_MS ? left : WAIT_STEP_MS));
	}
	free(want);
	return r;
}
