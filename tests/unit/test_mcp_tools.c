/* test_mcp_tools.c - the MCP tool table (src/mcp/tools.c): every tool is
 * described, its schemas are JSON objects of the right shape, its
 * annotations are the ones its name promises; and the calls that need
 * neither ssh nor a cluster return their command's document or error. */
#include "test.h"
#include "app/config.h"
#include "core/diag.h"
#include "core/util.h"
#include "mcp/argcheck.h"
#include "mcp/mcp.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_t *parse(const char *text, const char *what, const char *tool)
{
	json_error_t je;
	json_t *v = json_loads(text, 0, &je);
	if (!v)
		TEST_FAIL_("%s of %s: line %d: %s\n%s", what, tool, je.line, je.text, text);
	ASSERT(json_is_object(v));
	ASSERT_STR_EQ(json_string_value(json_object_get(v, "type")), "object");
	ASSERT(json_is_object(json_object_get(v, "properties")));
	return v;
}

static bool named(const char *name, const char *word)
{
	return strstr(name, word) != NULL;
}

static void test_table(void)
{
	ASSERT_GE(mcp_n_tools, 18);
	for (size_t i = 0; i < mcp_n_tools; i++) {
		const struct mcp_tool *t = &mcp_tools[i];
		ASSERT(t->name && t->title && t->description && t->call);
		ASSERT(strspn(t->name, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(t->name));
		ASSERT_GT(strlen(t->description), 80);
		ASSERT(mcp_tool_find(t->name) == t);
		json_t *in = parse(t->input_schema, "input_schema", t->name);
		ASSERT(json_is_false(json_object_get(in, "additionalProperties")));
		/* only what the server checks arguments with */
		char msg[300];
		if (argcheck_schema_ok(in, msg, sizeof msg) < 0)
			TEST_FAIL_("input_schema of %s: %s", t->name, msg);
		/* every required argument is described */
		size_t k;
		json_t *req;
		json_array_foreach(json_object_get(in, "required"), k, req) ASSERT(
		    json_object_get(json_object_get(in, "properties"), json_string_value(req)));
		const char *key;
		json_t *p;
		json_object_foreach(json_object_get(in, "properties"), key, p)
		{
			ASSERT(json_is_string(json_object_get(p, "type")));
		}
		json_t *out = parse(t->output_schema, "output_schema", t->name);
		/* the error envelope, for isError results */
		ASSERT(json_object_get(json_object_get(out, "properties"), "error"));
		json_decref(in);
		json_decref(out);

		bool ro = t->hints & MCP_READ_ONLY, destructive = t->hints & MCP_DESTRUCTIVE;
		ASSERT(!(ro && destructive));
		if (named(t->name, "status") || named(t->name, "logs") || named(t->name, "list") ||
		    named(t->name, "show") || named(t->name, "validate") || named(t->name, "wait"))
			ASSERT(ro);
		/* intercept_start: steal swaps a live Service's selector */
		if (named(t->name, "down") || named(t->name, "disconnect") ||
		    named(t->name, "intercept_"))
			ASSERT(destructive);
		if (named(t->name, "_up") || named(t->name, "connect") ||
		    named(t->name, "intercept_"))
			ASSERT(t->hints & MCP_OPEN_WORLD);
		/* the catalog tools read the catalog themselves: the call's
		 * config is loaded without it (an invalid one is theirs to say) */
		ASSERT_EQ(!!(t->flags & MCP_TOOL_NO_CATALOG), strncmp(t->name, "catalog_", 8) == 0);
		for (size_t j = 0; j < i; j++)
			ASSERT(strcmp(mcp_tools[j].name, t->name) != 0);
	}
	static const char *const want[] = {
	    "bridge_up",	   "bridge_down",	   "bridge_restart",
	    "bridge_status",	   "bridge_logs",	   "catalog_list_targets",
	    "catalog_show_target", "catalog_list_domains", "catalog_validate",
	    "catalog_show_bridge", "bridge_check",	   "bridge_wait",
	    "k8s_connect",	   "k8s_disconnect",	   "k8s_env",
	    "intercept_start",	   "intercept_stop",	   "container_status"};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		if (!mcp_tool_find(want[i]))
			TEST_FAIL_("no tool %s", want[i]);
	ASSERT(mcp_tool_find("nope") == NULL);
	ASSERT(mcp_tool_find(NULL) == NULL);
}

/* --- calls, in a config of one tunnel that never ran --- */

static char state_dir[] = "/tmp/test-mcp-tools.XXXXXX";
static struct app app;
static int progressed;

static void progress(struct mcp_call *c, double done, double total, const char *message)
{
	progressed++;
	ASSERT_LE(done, total);
	ASSERT(message && *message);
}

static bool told_to_stop; /* what cancelled() says */

static bool cancelled(const struct mcp_call *c)
{
	return told_to_stop;
}

static int call(const char *tool, const char *args, json_t **ret_doc, struct err *e)
{
	const struct mcp_tool *t = mcp_tool_find(tool);
	ASSERT(t);
	json_error_t je;
	struct mcp_call c = {.app = &app,
			     .args = json_loads(args, 0, &je),
			     .progress = progress,
			     .cancelled = cancelled};
	ASSERT(c.args);
	*ret_doc = NULL;
	memset(e, 0, sizeof *e);
	int r = t->call(&c, ret_doc, e);
	json_decref(c.args);
	if (r)
		ASSERT_EQ(e->code, r);
	return r;
}

static void test_calls(void)
{
	static const char yaml[] = "tunnels:\n"
				   "  web:\n"
				   "    host: 127.0.0.1\n"
				   "    remote_port: 18000\n"
				   "    local_port: 8000\n"
				   "    ssh_user: u\n"
				   "    ssh_key: /k\n"
				   "    actor: tester\n"
				   "actors:\n"
				   "  tester: {class: automation}\n";
	struct cfg_diags d = {0};
	ASSERT(mkdtemp(state_dir));
	ASSERT_EQ(cfg_load_buf("(test)", yaml, strlen(yaml), &app.cfg, &d), 0);
	cfg_diags_clear(&d);
	app.config_path = "(test)";
	app.state_dir = state_dir;

	json_t *doc;
	struct err e;
	ASSERT_EQ(call("bridge_status", "{}", &doc, &e), 0);
	json_t *row = json_array_get(json_object_get(doc, "bridges"), 0);
	ASSERT_STR_EQ(json_string_value(json_object_get(row, "name")), "web");
	ASSERT_STR_EQ(json_string_value(json_object_get(row, "state")), "stopped");
	ASSERT(!json_object_get(doc, "session"));
	json_decref(doc);

	ASSERT_EQ(call("bridge_status", "{\"names\":[\"wbe\"]}", &doc, &e), EXIT_UNKNOWN_BRIDGE);
	ASSERT_STR_CONTAINS(e.message, "did you mean 'web'");
	ASSERT(!doc);

	ASSERT_EQ(call("bridge_logs", "{\"name\":\"web\"}", &doc, &e), 0);
	ASSERT_STR_EQ(json_string_value(json_object_get(doc, "name")), "web");
	ASSERT_EQ(json_array_size(json_object_get(doc, "events")), 0);
	json_decref(doc);

	/* reached at once; then not reached within a second, with progress */
	ASSERT_EQ(call("bridge_wait", "{\"name\":\"web\",\"states\":[\"stopped\"]}", &doc, &e), 0);
	json_decref(doc);
	progressed = 0;
	ASSERT_EQ(call("bridge_wait", "{\"name\":\"web\",\"states\":[\"connected\"],\"timeout\":1}",
		       &doc, &e),
		  EXIT_TIMEOUT);
	ASSERT_STR_EQ(e.message, "web: not connected after 1 s (now stopped)");
	ASSERT_GE(progressed, 1);
	ASSERT_EQ(json_array_size(json_object_get(doc, "bridges")), 1);
	json_decref(doc);
	/* told to stop (cancelled, stdin closed) before the state: not reached
	 * either, said at once, with the document */
	told_to_stop = true;
	uint64_t t0 = now_mono_ms();
	ASSERT_EQ(call("bridge_wait", "{\"name\":\"web\",\"states\":[\"connected\"]}", &doc, &e),
		  EXIT_TIMEOUT);
	ASSERT_LT(now_mono_ms() - t0, 5000);
	ASSERT_STR_CONTAINS(e.message, "web: not connected: the wait was interrupted after ");
	ASSERT_STR_CONTAINS(e.message, "(the request was cancelled or stdin closed; now stopped)");
	ASSERT_STR_EQ(json_string_value(json_object_get(
			  json_array_get(json_object_get(doc, "bridges"), 0), "state")),
		      "stopped");
	json_decref(doc);
	/* a state reached is success, told to stop or not */
	ASSERT_EQ(call("bridge_wait", "{\"name\":\"web\",\"states\":[\"stopped\"]}", &doc, &e), 0);
	json_decref(doc);
	told_to_stop = false;

	ASSERT_EQ(call("bridge_down", "{\"names\":[\"web\"]}", &doc, &e), 0);
	row = json_array_get(json_object_get(doc, "bridges"), 0);
	ASSERT_STR_EQ(json_string_value(json_object_get(row, "result")), "not running");
	json_decref(doc);

	ASSERT_EQ(call("intercept_stop", "{\"service\":\"api\"}", &doc, &e), EXIT_UNKNOWN_BRIDGE);
	ASSERT_STR_CONTAINS(e.message, "intercept-api");

	ASSERT_EQ(call("container_status", "{}", &doc, &e), 0);
	ASSERT_EQ(json_array_size(json_object_get(doc, "bridges")), 0);
	json_decref(doc);
	ASSERT_EQ(call("container_status", "{\"name\":\"dev\"}", &doc, &e), EXIT_UNKNOWN_BRIDGE);

	ASSERT_EQ(call("k8s_env", "{}", &doc, &e), 0);
	ASSERT_EQ(json_object_size(doc), 0);
	json_decref(doc);

	ASSERT_EQ(call("k8s_connect", "{\"namespace\":\"Not_A_Label\"}", &doc, &e), EXIT_USAGE);

	ASSERT_EQ(call("catalog_list_domains", "{}", &doc, &e), EXIT_CONFIG);

	cfg_free(app.cfg);
	char cmd[sizeof state_dir + 16];
	snprintf(cmd, sizeof cmd, "rm -rf %s", state_dir);
	ASSERT_EQ(system(cmd), 0);
}

int main(void)
{
	RUN(test_table);
	RUN(test_calls);
	return 0;
}
