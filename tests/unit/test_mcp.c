/* Unit tests for src/mcp: every tool's schemas load and stay within what
 * the argument checker checks (a bad schema text is a programming error,
 * caught here, never at a user's); the checker itself; the `mcp config`
 * document; the state directory watch. */
#include "core/util.h"
#include "mcp/argcheck.h"
#include "mcp/mcp.h"
#include "mcp/server.h"
#include "mcp/watch.h"
#include "proto/jsonrpc.h"
#include "run_until.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_every_tool_schema(void)
{
	ASSERT_GT(mcp_n_tools, 0);
	for (size_t i = 0; i < mcp_n_tools; i++) {
		const struct mcp_tool *t = &mcp_tools[i];
		ASSERT(t->name && t->title && t->description && t->call);
		ASSERT(mcp_tool_find(t->name) == t);
		for (size_t k = 0; k < i; k++)
			if (strcmp(mcp_tools[k].name, t->name) == 0)
				TEST_FAIL_("tool %s listed twice", t->name);
		json_error_t jerr;
		json_t *in = json_loads(t->input_schema, 0, &jerr);
		if (!in)
			TEST_FAIL_("%s: inputSchema: %s (line %d)", t->name, jerr.text, jerr.line);
		char why[300];
		if (argcheck_schema_ok(in, why, sizeof why) < 0)
			TEST_FAIL_("%s: %s", t->name, why);
		/* {} is what a client sends for "no arguments" */
		json_t *empty = json_object();
		if (!json_object_get(in, "required") && argcheck(in, empty, why, sizeof why) < 0)
			TEST_FAIL_("%s: {} refused: %s", t->name, why);
		json_decref(empty);
		json_decref(in);
		json_t *out = json_loads(t->output_schema, 0, &jerr);
		if (!json_is_object(out))
			TEST_FAIL_("%s: outputSchema: %s", t->name,
				   out ? "not an object" : jerr.text);
		ASSERT_STR_EQ(json_string_value(json_object_get(out, "type")), "object");
		json_decref(out);
	}
	ASSERT(mcp_tool_find("no_such_tool") == NULL);
}

static const char schema_text[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"name\":{\"type\":\"string\",\"description\":\"d\",\"minLength\":1,\"maxLength\":8},"
    "\"mode\":{\"type\":\"string\",\"enum\":[\"steal\",\"mirror\"]},"
    "\"timeout\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":60,\"default\":30},"
    "\"ratio\":{\"type\":\"number\",\"minimum\":0},"
    "\"yes\":{\"type\":\"boolean\"},"
    "\"names\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":2}},"
    "\"required\":[\"name\"],\"additionalProperties\":false}";

/* args, then NULL (valid) or a piece of the message expected. */
static void check(json_t *schema, const char *args, const char *want)
{
	json_t *a = json_loads(args, 0, NULL);
	ASSERT(a);
	char msg[512] = "";
	int r = argcheck(schema, a, msg, sizeof msg);
	if (!want && r != 0)
		TEST_FAIL_("%s: refused: %s", args, msg);
	if (want && (r == 0 || !strstr(msg, want)))
		TEST_FAIL_("%s: expected an error with \"%s\", got %d \"%s\"", args, want, r, msg);
	json_decref(a);
}

static void test_argcheck(void)
{
	json_t *s = json_loads(schema_text, 0, NULL);
	char why[300];
	ASSERT_EQ(argcheck_schema_ok(s, why, sizeof why), 0);
	check(s, "{\"name\":\"a\"}", NULL);
	check(s,
	      "{\"name\":\"a\",\"mode\":\"mirror\",\"timeout\":60,\"ratio\":0.5,\"yes\":true,"
	      "\"names\":[\"x\",\"y\"]}",
	      NULL);
	check(s, "{}", "argument 'name' is required");
	check(s, "{\"name\":3}", "argument 'name': expected a string, got an integer");
	check(s, "{\"name\":\"\"}", "0 bytes, expected at least 1");
	check(s, "{\"name\":\"123456789\"}", "9 bytes, expected at most 8");
	check(s, "{\"name\":\"a\",\"mode\":\"copy\"}", "must be one of \"steal\", \"mirror\"");
	check(s, "{\"name\":\"a\",\"timeout\":\"5\"}", "expected an integer, got a string");
	check(s, "{\"name\":\"a\",\"timeout\":5.5}", "expected an integer, got a number");
	check(s, "{\"name\":\"a\",\"timeout\":0}", "must be between 1 and 60, got 0");
	check(s, "{\"name\":\"a\",\"timeout\":61}", "must be between 1 and 60, got 61");
	check(s, "{\"name\":\"a\",\"ratio\":-1}", "must be at least 0, got -1");
	check(s, "{\"name\":\"a\",\"ratio\":1}", NULL); /* an integer is a number */
	check(s, "{\"name\":\"a\",\"yes\":1}", "expected a boolean, got an integer");
	check(s, "{\"name\":\"a\",\"names\":\"x\"}", "expected an array, got a string");
	check(s, "{\"name\":\"a\",\"names\":[\"x\",2]}", "argument 'names[1]': expected a string");
	check(s, "{\"name\":\"a\",\"names\":[\"x\",\"y\",\"z\"]}", "3 items, expected at most 2");
	check(s, "{\"name\":\"a\",\"nmae\":1}", "unknown argument 'nmae' (this tool takes 'name'");
	check(s, "{\"name\":null}", "got null");
	json_decref(s);
	/* without additionalProperties:false, others pass */
	s = json_loads("{\"type\":\"object\",\"properties\":{}}", 0, NULL);
	check(s, "{\"anything\":1}", NULL);
	json_decref(s);
	s = json_loads("{\"type\":\"object\",\"additionalProperties\":false}", 0, NULL);
	check(s, "{\"x\":1}", "this tool takes no arguments");
	json_decref(s);
}

/* Schemas the checker would not enforce fully are refused up front. */
static void test_schema_subset(void)
{
	static const struct {
		const char *schema, *why;
	} bad[] = {
	    {"[]", "not an object"},
	    {"{\"type\":\"string\"}", "type must be \"object\""},
	    {"{\"type\":\"object\",\"oneOf\":[]}", "keyword 'oneOf'"},
	    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"x\"}}}",
	     "properties.a: keyword 'pattern'"},
	    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"object\"}}}",
	     "type 'object' is not supported"},
	    {"{\"type\":\"object\",\"properties\":{\"a\":{}}}", "no \"type\""},
	    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":[\"string\",\"null\"]}}}",
	     "no \"type\""},
	    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\"}}}",
	     "without \"items\""},
	    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":"
	     "\"array\",\"items\":{\"type\":\"string\"}}}}}",
	     "items: type 'array'"},
	    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":\"1\"}}"
	     "}",
	     "'minimum' is not a number"},
	    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"enum\":[]}}}",
	     "'enum'"},
	    {"{\"type\":\"object\",\"properties\":{},\"required\":[\"a\"]}", "undeclared property"},
	    {"{\"type\":\"object\",\"additionalProperties\":{}}", "true or false"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		json_t *s = json_loads(bad[i].schema, JSON_DECODE_ANY, NULL);
		char why[300] = "";
		if (argcheck_schema_ok(s, why, sizeof why) == 0 || !strstr(why, bad[i].why))
			TEST_FAIL_("%s: expected \"%s\", got \"%s\"", bad[i].schema, bad[i].why,
				   why);
		json_decref(s);
	}
}

static void test_register_doc(void)
{
	json_t *doc;
	char *line;
	ASSERT_EQ(
	    mcp_register_doc("/opt/db/devbridge", "/etc/my cfg.yaml", NULL, "/var/st", &doc, &line),
	    0);
	char *text = json_dumps(doc, JSON_COMPACT);
	ASSERT_STR_EQ(text, "{\"mcpServers\":{\"devbridge\":{\"command\":\"/opt/db/devbridge\","
			    "\"args\":[\"--config\",\"/etc/my cfg.yaml\",\"mcp\"],"
			    "\"env\":{\"DEVBRIDGE_STATE_DIR\":\"/var/st\"}}}}");
	ASSERT_STR_EQ(line,
		      "claude mcp add --scope user devbridge -e DEVBRIDGE_STATE_DIR=/var/st -- "
		      "/opt/db/devbridge --config '/etc/my cfg.yaml' mcp");
	free(text);
	free(line);
	json_decref(doc);
	ASSERT_EQ(mcp_register_doc("/bin/devbridge", NULL, NULL, NULL, &doc, &line), 0);
	text = json_dumps(doc, JSON_COMPACT);
	ASSERT_STR_EQ(text, "{\"mcpServers\":{\"devbridge\":{\"command\":\"/bin/devbridge\","
			    "\"args\":[\"mcp\"],\"env\":{}}}}");
	ASSERT_STR_EQ(line, "claude mcp add --scope user devbridge -- /bin/devbridge mcp");
	free(text);
	free(line);
	json_decref(doc);
	/* --profile goes with the config, before the command */
	ASSERT_EQ(mcp_register_doc("/bin/devbridge", "/c.yaml", "stag ing", NULL, &doc, &line), 0);
	text = json_dumps(
	    json_object_get(json_object_get(json_object_get(doc, "mcpServers"), "devbridge"),
			    "args"),
	    JSON_COMPACT);
	ASSERT_STR_EQ(text, "[\"--config\",\"/c.yaml\",\"--profile\",\"stag ing\",\"mcp\"]");
	ASSERT_STR_EQ(line,
		      "claude mcp add --scope user devbridge -- /bin/devbridge --config /c.yaml "
		      "--profile 'stag ing' mcp");
	free(text);
	free(line);
	json_decref(doc);
}

struct seen {
	char names[16][64];
	int n;
};

static void on_seen(void *data, const char *name)
{
	struct seen *s = data;
	if (s->n < 16)
		snprintf(s->names[s->n++], sizeof s->names[0], "%s", name ? name : "(lost)");
}

static bool saw(void *data)
{
	struct seen *s = data;
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->names[i], "b1.state") == 0)
			return true;
	return false;
}

/* What a supervisor does (write a temporary file, rename it over
 * NAME.state) is reported with NAME.state's name. */
static void test_watch(void)
{
	char dir[] = "/tmp/test-mcp-watch-XXXXXX";
	ASSERT(mkdtemp(dir));
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	struct seen seen = {0};
	struct mcp_watch *w;
	ASSERT_EQ(mcp_watch_start(l, dir, on_seen, &seen, &w), 0);
	char path[256];
	snprintf(path, sizeof path, "%s/b1.state", dir);
	ASSERT_EQ(write_file_atomic(path, "{}", 2, 0600), 0);
	test_run_loop(l, saw, NULL, &seen, 5000, true);
	mcp_watch_free(w);
	struct mcp_watch *none = NULL;
	ASSERT_EQ(mcp_watch_start(l, "/nonexistent/dir", on_seen, &seen, &none), -ENOENT);
	ASSERT(none == NULL);
	loop_free(l);
	unlink(path);
	ASSERT_EQ(rmdir(dir), 0);
}

/* A reply that cannot be built (here: a message that is not UTF-8, which
 * jansson refuses) is a fixed -32603 for its id, and the session goes on;
 * an error envelope keeps its code and name. */
static void test_unbuilt_reply(void)
{
	struct mcp_server s = {.in_fd = -1, .wake_r = -1, .wake_w = -1};
	int p[2];
	ASSERT_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	s.out_fd = p[1];
	ASSERT_EQ(loop_new(&s.loop), 0);
	buf_init(&s.out, MCP_OUT_MAX);
	json_t *id = json_integer(7);
	mcp_send_error(&s, id, JSONRPC_METHOD_NOT_FOUND, "Method not found: \xc3", json_object());
	mcp_reply(&s, id, NULL);
	ASSERT(!s.stopping);
	char out[1024];
	ssize_t n = read(p[0], out, sizeof out - 1);
	ASSERT_GT(n, 0);
	out[n] = '\0';
	const char *want = "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32603,"
			   "\"message\":\"Internal error: the reply could not be built\"}}\n";
	ASSERT_EQ(strlen(out), 2 * strlen(want));
	ASSERT(strncmp(out, want, strlen(want)) == 0 && strcmp(out + strlen(want), want) == 0);
	json_decref(id);
	loop_defer_cancel(s.loop, &s.resume);
	loop_free(s.loop);
	buf_free(&s.out);
	close(p[0]);
	close(p[1]);

	json_t *env =
	    mcp_error_envelope(48, "no bridge named '\xff'", json_pack("{s:[]}", "bridges"));
	json_t *err = json_object_get(env, "error");
	ASSERT_EQ(json_integer_value(json_object_get(err, "code")), 48);
	ASSERT_STR_EQ(json_string_value(json_object_get(err, "name")), "unknown_bridge");
	ASSERT(json_is_string(json_object_get(err, "message")));
	ASSERT(json_is_array(json_object_get(env, "bridges")));
	json_decref(env);
}

int main(void)
{
	RUN(test_every_tool_schema);
	RUN(test_argcheck);
	RUN(test_schema_subset);
	RUN(test_register_doc);
	RUN(test_watch);
	RUN(test_unbuilt_reply);
	return 0;
}
