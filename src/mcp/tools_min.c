/* tools_min.c - a minimal tools table for the server's own tests until
 * the real one (tools.c and tools_*.c) is merged; that merge deletes this
 * file.  bridge_status returns `status --json`'s document; bridge_wait
 * waits (cancellable) for a bridge's state. */
#include "core/util.h"
#include "mcp/mcp.h"

#include <string.h>
#include <time.h>

static int status_doc(const struct app *a, int n, char **names, json_t **ret_doc, struct err *e)
{
	json_t *rows, *sess;
	int r = app_status(a, n, names, &rows, &sess, e);
	if (r)
		return r;
	*ret_doc = json_pack("{s:o}", "bridges", rows);
	if (sess)
		json_object_set_new(*ret_doc, "session", sess);
	return 0;
}

static int bridge_status(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	json_t *v = json_object_get(c->args, "names");
	char *names[64];
	size_t i, n = 0;
	json_t *x;
	json_array_foreach(v, i, x)
	{
		if (n < ARRAY_SIZE(names))
			names[n++] = (char *)json_string_value(x);
	}
	return status_doc(c->app, (int)n, names, ret_doc, e);
}

static bool all_in(json_t *doc, json_t *states)
{
	size_t i, k;
	json_t *row, *st;
	json_array_foreach(json_object_get(doc, "bridges"), i, row)
	{
		bool ok = false;
		json_array_foreach(states, k, st) ok =
		    ok || json_equal(st, json_object_get(row, "state"));
		if (!ok)
			return false;
	}
	return true;
}

static int bridge_wait(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	char *names[] = {(char *)json_string_value(json_object_get(c->args, "name"))};
	json_t *states = json_object_get(c->args, "states");
	json_t *ti = json_object_get(c->args, "timeout");
	uint64_t deadline = now_mono_ms() + (uint64_t)(ti ? json_integer_value(ti) : 30) * 1000;
	for (unsigned n = 0;; n++) {
		json_t *doc = NULL;
		int r = status_doc(c->app, 1, names, &doc, e);
		if (r)
			return r;
		if (!states || all_in(doc, states) || c->cancelled(c)) {
			*ret_doc = doc;
			return 0;
		}
		c->progress(c, n, 0, "waiting");
		if (now_mono_ms() >= deadline) {
			*ret_doc = doc;
			return err_set(e, EXIT_TIMEOUT, "%s: not in the state asked for in time",
				       names[0]);
		}
		json_decref(doc);
		nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
	}
}

#define STATUS_OUT                                                                                 \
	"{\"type\":\"object\",\"properties\":{\"bridges\":{\"type\":\"array\"},"                   \
	"\"session\":{\"type\":\"object\"}},\"required\":[\"bridges\"]}"

const struct mcp_tool mcp_tools[] = {
    {"bridge_status", "Bridge status", "Every bridge's state (or those named).",
     "{\"type\":\"object\",\"properties\":{\"names\":{\"type\":\"array\",\"maxItems\":64,"
     "\"items\":{\"type\":\"string\"}}},\"additionalProperties\":false}",
     STATUS_OUT, MCP_READ_ONLY | MCP_IDEMPOTENT, bridge_status},
    {"bridge_wait", "Wait for a bridge state",
     "Wait until bridge NAME is in one of STATES (or the timeout).",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
     "\"states\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
     "\"timeout\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":50}},"
     "\"required\":[\"name\"],\"additionalProperties\":false}",
     STATUS_OUT, MCP_READ_ONLY | MCP_IDEMPOTENT, bridge_wait},
};
const size_t mcp_n_tools = ARRAY_SIZE(mcp_tools);

const struct mcp_tool *mcp_tool_find(const char *name)
{
	for (size_t i = 0; i < mcp_n_tools; i++)
		if (strcmp(mcp_tools[i].name, name) == 0)
			return &mcp_tools[i];
	return NULL;
}
