/* server.c - `devbridge mcp`: the session on stdin/stdout (see mcp.h,
 * docs/mcp.md).
 *
 * One loop on the main thread reads stdin (proto/jsonl framing, lines up
 * to JSONRPC_MAX_LINE), answers what needs no app call at once (the
 * handshake, ping, tools/list, resource lists, subscriptions,
 * cancellation) and hands the rest to calls.c's queue.  Replies go
 * through one bounded buffer to stdout; while it is over MCP_OUT_HIGH the
 * loop stops reading stdin, so a client that does not read cannot make us
 * queue without end.
 *
 * stdout carries nothing but MCP: the real stdout is moved to a private
 * fd and fd 1 becomes a copy of stderr, so a stray printf anywhere in the
 * process (or a child's output) lands in the log, not in the stream; fd 0
 * becomes /dev/null, so no child reads the client's messages. */
#include "mcp/mcp.h"
#include "core/log.h"
#include "core/util.h"
#include "mcp/argcheck.h"
#include "mcp/server.h"
#include "proto/jsonl.h"
#include "proto/jsonrpc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef DEVBRIDGE_VERSION
#define DEVBRIDGE_VERSION "0.1.0" /* as cli.c */
#endif

/* The handshake revisions we speak, newest first (docs/mcp.md). */
static const char *const versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};

/* MCP 2026-07-28: a request names its revision in _meta. */
#define META_VERSION		"io.modelcontextprotocol/protocolVersion"
#define MCP_UNSUPPORTED_VERSION -32022
#define MCP_NOT_INITIALIZED	JSONRPC_INVALID_REQUEST

static const char instructions[] =
    "devbridge supervises SSH tunnels, Kubernetes port-forwards and intercepts, and "
    "devcontainer bridges on this machine. Call bridge_status (or read bridge://status) "
    "first to see every bridge and its state. bridge_up, bridge_down and bridge_restart "
    "manage SSH tunnels from the config and the OpsCatalog (the catalog_* tools look up "
    "its domains, targets and bridges); k8s_connect, k8s_disconnect, k8s_env, "
    "intercept_start and intercept_stop the Kubernetes side; container_status the "
    "devcontainers. Results are the documents of `devbridge COMMAND --json`; a failure is "
    "an error result whose text is {\"error\":{\"code\",\"name\",\"message\"}}. "
    "Operations return the current state within seconds: when a bridge is still "
    "starting, call bridge_wait or check again rather than starting it again.";

/* --- output --- */

static void on_stdout(struct loop *l, int fd, unsigned events, void *data);
static void read_stdin(struct mcp_server *s);

static void on_resume(struct loop *l, void *data)
{
	struct mcp_server *s = data;
	if ((!s->in_events || s->in_file) && !s->eof && !s->stopping)
		read_stdin(s);
}

/* Stop at once: stdout is gone or the output cannot be queued. */
static void fail_session(struct mcp_server *s, const char *why)
{
	if (s->stopping)
		return;
	log_error("mcp: %s; stopping", why);
	s->exit_code = EXIT_ERROR;
	s->stopping = true;
	mcp_jobs_shutdown(s);
	mcp_jobs_abandon(s);
	loop_stop(s->loop);
}

/* Write what stdout takes now; arm LOOP_WRITE for the rest. */
static void flush_out(struct mcp_server *s)
{
	while (buf_len(&s->out) > 0) {
		ssize_t n = write(s->out_fd, buf_data(&s->out), buf_len(&s->out));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			fail_session(s, "stdout closed");
			return;
		}
		buf_consume(&s->out, (size_t)n);
	}
	bool want = buf_len(&s->out) > 0;
	if (want != s->out_watched) {
		if (want)
			loop_add_fd(s->loop, s->out_fd, LOOP_WRITE, on_stdout, s);
		else
			loop_del_fd(s->loop, s->out_fd);
		s->out_watched = want;
	}
	/* Back under the mark: read again, once this callback is through
	 * (the lines already buffered are delivered first). */
	if (buf_len(&s->out) <= MCP_OUT_HIGH && !s->in_events && !s->eof && !s->stopping)
		loop_defer(s->loop, &s->resume, on_resume, s);
	if (!want)
		mcp_maybe_finish(s);
}

static void on_stdout(struct loop *l, int fd, unsigned events, void *data)
{
	flush_out(data);
}

void mcp_send(struct mcp_server *s, json_t *msg)
{
	if (s->stopping) {
		json_decref(msg);
		return;
	}
	size_t len;
	char *line = jsonrpc_dump(msg, &len);
	int r = line ? buf_append(&s->out, line, len) : -ENOMEM;
	free(line);
	if (r < 0) {
		fail_session(s, r == -ENOBUFS ? "the client does not read its replies"
					      : "out of memory");
		return;
	}
	flush_out(s);
}

/* The reply to id could not be built: jansson refuses a string that is
 * not UTF-8 (a message holding a file name's bytes), or memory ran out.
 * The request still gets an answer, a fixed ASCII one, so one bad reply
 * never ends the session; only when even that cannot be built (no
 * memory) does mcp_send end it. */
static void send_unbuilt(struct mcp_server *s, json_t *id)
{
	log_error("mcp: a reply could not be built (not UTF-8, or out of memory): sending %d",
		  JSONRPC_INTERNAL_ERROR);
	mcp_send(s, jsonrpc_error(id, JSONRPC_INTERNAL_ERROR,
				  "Internal error: the reply could not be built", NULL));
}

void mcp_reply(struct mcp_server *s, json_t *id, json_t *result)
{
	json_t *msg = jsonrpc_result(id, result);
	if (msg)
		mcp_send(s, msg);
	else
		send_unbuilt(s, id);
}

void mcp_send_error(struct mcp_server *s, json_t *id, int code, const char *message, json_t *data)
{
	json_t *msg = jsonrpc_error(id, code, message, data);
	if (msg)
		mcp_send(s, msg);
	else
		send_unbuilt(s, id);
}

static json_t *error_member(int code, const char *message)
{
	return json_pack("{s:i, s:s, s:s}", "code", code, "name", errcode_name(code), "message",
			 message);
}

json_t *mcp_error_envelope(int code, const char *message, json_t *doc)
{
	json_t *env = json_is_object(doc) ? doc : json_object();
	if (env != doc)
		json_decref(doc);
	json_t *err = error_member(code, message);
	/* A message that is not UTF-8 (bytes of a file name): the code and
	 * name still say what failed; an envelope never lacks "error". */
	if (!err)
		err = error_member(code, "(the message is not valid UTF-8)");
	json_object_set_new(env, "error", err);
	return env;
}

/* --- the end of the session --- */

void mcp_maybe_finish(struct mcp_server *s)
{
	if (!s->eof || s->stopping || s->running || s->queue || buf_len(&s->out) > 0)
		return;
	s->stopping = true;
	loop_timer_stop(s->loop, &s->grace);
	loop_stop(s->loop);
}

static void on_grace(struct loop *l, void *data)
{
	struct mcp_server *s = data;
	if (s->running)
		log_warn("mcp: stdin closed %d ms ago: leaving the call in flight, dropping %zu "
			 "queued",
			 MCP_EXIT_GRACE_MS, s->n_queued);
	else
		log_warn("mcp: stdin closed %d ms ago: %zu bytes of replies not read",
			 MCP_EXIT_GRACE_MS, buf_len(&s->out));
	mcp_jobs_shutdown(s);
	mcp_jobs_abandon(s);
	s->stopping = true;
	loop_stop(l);
}

/* stdin closed: what was asked is still answered, for MCP_EXIT_GRACE_MS
 * (a client that closes its end after writing still reads the replies;
 * an app operation half-way through finishes its bookkeeping), and a
 * tool that waits is told to stop (mcp_call.cancelled) and answers with
 * what it has.  Then the call still in flight is left to end with the
 * process, the queued ones and replies not read are dropped, and we exit:
 * the SDK sends SIGTERM 2 s after closing stdin, so we are gone before
 * that. */
static void on_eof(struct mcp_server *s)
{
	if (s->eof)
		return;
	s->eof = true;
	log_info("mcp: stdin closed");
	if (s->in_events && !s->in_file)
		loop_del_fd(s->loop, s->in_fd);
	s->in_events = 0;
	mcp_jobs_stop(s);
	mcp_maybe_finish(s);
	if (!s->stopping)
		loop_timer_start(s->loop, &s->grace, MCP_EXIT_GRACE_MS, on_grace, s);
}

static void on_signal(struct loop *l, int signo, void *data)
{
	struct mcp_server *s = data;
	log_info("mcp: %s: stopping", strsignal(signo));
	s->stopping = true;
	mcp_jobs_shutdown(s);
	mcp_jobs_abandon(s);
	loop_stop(l);
}

/* --- requests --- */

static json_t *capabilities(void)
{
	return json_pack("{s:{s:b}, s:{s:b, s:b}}", "tools", "listChanged", 0, "resources",
			 "subscribe", 1, "listChanged", 0);
}

static json_t *server_info(void)
{
	return json_pack("{s:s, s:s, s:s}", "name", "devbridge", "title", "devbridge", "version",
			 DEVBRIDGE_VERSION);
}

static json_t *supported_versions(void)
{
	json_t *a = json_array();
	for (size_t i = 0; i < ARRAY_SIZE(versions); i++)
		json_array_append_new(a, json_string(versions[i]));
	return a;
}

static void do_initialize(struct mcp_server *s, json_t *id, json_t *params)
{
	if (s->version) {
		mcp_send_error(s, id, JSONRPC_INVALID_REQUEST,
			       "Invalid Request: the session is already initialized", NULL);
		return;
	}
	const char *want = json_string_value(json_object_get(params, "protocolVersion"));
	if (!want) {
		mcp_send_error(s, id, JSONRPC_INVALID_PARAMS,
			       "Invalid params: protocolVersion (a string) is required", NULL);
		return;
	}
	/* The client's revision if we speak it, else our newest: the client
	 * decides whether it can live with that (spec: lifecycle). */
	s->version = versions[0];
	for (size_t i = 0; i < ARRAY_SIZE(versions); i++)
		if (strcmp(want, versions[i]) == 0)
			s->version = versions[i];
	json_t *ci = json_object_get(params, "clientInfo");
	const char *cname = json_string_value(json_object_get(ci, "name"));
	const char *cver = json_string_value(json_object_get(ci, "version"));
	log_info("mcp: initialize from %s %s, protocol %s (asked %s)", cname ? cname : "?",
		 cver ? cver : "?", s->version, want);
	mcp_reply(s, id,
		  json_pack("{s:s, s:o, s:o, s:s}", "protocolVersion", s->version, "capabilities",
			    capabilities(), "serverInfo", server_info(), "instructions",
			    instructions));
}

/* server/discover (2026-07-28) without a revision in _meta (a request
 * naming one was refused before it got here): what we can be reached by,
 * which is initialize's revisions. */
static void do_discover(struct mcp_server *s, json_t *id, json_t *params)
{
	mcp_reply(s, id,
		  json_pack("{s:s, s:o, s:o, s:o, s:s}", "resultType", "complete",
			    "supportedVersions", supported_versions(), "capabilities",
			    capabilities(), "serverInfo", server_info(), "instructions",
			    instructions));
}

static void do_ping(struct mcp_server *s, json_t *id, json_t *params)
{
	mcp_reply(s, id, json_object());
}

/* We hand out no cursors: any cursor is one we never gave. */
static bool refuse_cursor(struct mcp_server *s, json_t *id, json_t *params)
{
	if (!json_object_get(params, "cursor"))
		return false;
	mcp_send_error(s, id, JSONRPC_INVALID_PARAMS, "Invalid params: unknown cursor", NULL);
	return true;
}

static json_t *tool_json(const struct mcp_server *s, size_t i)
{
	const struct mcp_tool *t = &mcp_tools[i];
	/* Every hint explicit: MCP's defaults (destructive, open world) are
	 * the pessimistic ones. */
	json_t *ann = json_pack("{s:s, s:b, s:b, s:b, s:b}", "title", t->title, "readOnlyHint",
				!!(t->hints & MCP_READ_ONLY), "destructiveHint",
				!!(t->hints & MCP_DESTRUCTIVE), "idempotentHint",
				!!(t->hints & MCP_IDEMPOTENT), "openWorldHint",
				!!(t->hints & MCP_OPEN_WORLD));
	json_t *o = json_pack("{s:s, s:s, s:s, s:O, s:o}", "name", t->name, "title", t->title,
			      "description", t->description, "inputSchema", s->in_schema[i],
			      "annotations", ann);
	if (o && s->out_schema[i])
		json_object_set(o, "outputSchema", s->out_schema[i]);
	return o;
}

static void do_tools_list(struct mcp_server *s, json_t *id, json_t *params)
{
	if (refuse_cursor(s, id, params))
		return;
	json_t *tools = json_array();
	for (size_t i = 0; i < mcp_n_tools; i++)
		json_array_append_new(tools, tool_json(s, i));
	mcp_reply(s, id, json_pack("{s:o}", "tools", tools));
}

static void run_tool(struct mcp_job *j)
{
	j->code = j->tool->call(&j->call, &j->doc, &j->err);
	if (j->code == 0 && !j->doc)
		j->code = err_set(&j->err, EXIT_ERROR, "%s returned no document", j->tool->name);
}

static void finish_tool(struct mcp_server *s, struct mcp_job *j)
{
	mcp_reply(s, j->id, mcp_tool_result(j));
}

/* Per the 2025-11-25 spec (server/tools, "Error Handling"): an unknown
 * tool and a malformed request are protocol errors; arguments that do
 * not satisfy the inputSchema are a tool execution error (isError), so
 * the model reads the message and corrects itself. */
static void do_tools_call(struct mcp_server *s, json_t *id, json_t *params)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	if (!name) {
		mcp_send_error(s, id, JSONRPC_INVALID_PARAMS,
			       "Invalid params: name (a string) is required", NULL);
		return;
	}
	const struct mcp_tool *t = mcp_tool_find(name);
	if (!t) {
		char msg[MCP_ECHO_MAX + 64];
		snprintf(msg, sizeof msg, "Unknown tool: %.*s", (int)utf8_trunc(name, MCP_ECHO_MAX),
			 name);
		mcp_send_error(s, id, JSONRPC_INVALID_PARAMS, msg, NULL);
		return;
	}
	json_t *args = json_object_get(params, "arguments");
	if (args && !json_is_object(args)) {
		mcp_send_error(s, id, JSONRPC_INVALID_PARAMS,
			       "Invalid params: arguments must be an object", NULL);
		return;
	}
	size_t i = (size_t)(t - mcp_tools);
	/* A copy: the worker thread will own it, nothing else holds it. */
	json_t *own = args ? json_deep_copy(args) : json_object();
	/* --profile NAME: the default of a tool's `profile`, as it is for
	 * `connect` and `intercept`; the call's own wins. */
	if (own && s->profile && !json_object_get(own, "profile") &&
	    json_object_get(json_object_get(s->in_schema[i], "properties"), "profile"))
		json_object_set_new(own, "profile", json_string(s->profile));
	char why[512];
	if (own && argcheck(s->in_schema[i], own, why, sizeof why) < 0) {
		json_decref(own);
		char msg[600];
		snprintf(msg, sizeof msg, "invalid arguments: %s", why);
		log_info("mcp: tools/call %s: %s", name, msg);
		mcp_reply(s, id, mcp_tool_error(EXIT_USAGE, msg, NULL));
		return;
	}
	struct mcp_job *j = own ? mcp_job_new(s, id, params) : NULL;
	if (!j) {
		json_decref(own);
		mcp_send_error(s, id, JSONRPC_INTERNAL_ERROR, "Internal error: out of memory",
			       NULL);
		return;
	}
	j->tool = t;
	j->run = run_tool;
	j->finish = finish_tool;
	j->call.args = own;
	mcp_job_submit(s, j);
}

struct method {
	const char *name;
	void (*fn)(struct mcp_server *s, json_t *id, json_t *params);
	bool needs_session; /* refused before initialize */
};

static void do_resources_list(struct mcp_server *s, json_t *id, json_t *params)
{
	if (!refuse_cursor(s, id, params))
		mcp_resources_list(s, id, params);
}

static void do_templates_list(struct mcp_server *s, json_t *id, json_t *params)
{
	if (!refuse_cursor(s, id, params))
		mcp_resources_templates(s, id, params);
}

static void do_subscribe(struct mcp_server *s, json_t *id, json_t *params)
{
	mcp_resources_subscribe(s, id, params, true);
}

static void do_unsubscribe(struct mcp_server *s, json_t *id, json_t *params)
{
	mcp_resources_subscribe(s, id, params, false);
}

static const struct method methods[] = {
    {"initialize", do_initialize, false},
    {"ping", do_ping, false},
    {"server/discover", do_discover, false},
    {"tools/list", do_tools_list, true},
    {"tools/call", do_tools_call, true},
    {"resources/list", do_resources_list, true},
    {"resources/templates/list", do_templates_list, true},
    {"resources/read", mcp_resources_read, true},
    {"resources/subscribe", do_subscribe, true},
    {"resources/unsubscribe", do_unsubscribe, true},
};

/* A revision named in _meta (2026-07-28 style) that this session does not
 * speak: UnsupportedProtocolVersionError, with the revisions a client can
 * reach us by (through initialize).  NULL when the message is fine. */
static const char *unsupported_version(const struct mcp_server *s, json_t *params)
{
	json_t *v = json_object_get(json_object_get(params, "_meta"), META_VERSION);
	if (!v)
		return NULL;
	const char *want = json_string_value(v);
	if (want && s->version && strcmp(want, s->version) == 0)
		return NULL;
	return want ? want : "(not a string)";
}

static void on_request(struct mcp_server *s, struct jsonrpc_msg *m)
{
	const char *want;
	if (strcmp(m->method, "initialize") != 0 && (want = unsupported_version(s, m->params))) {
		log_info("mcp: %s asks for protocol %s: refused", m->method, want);
		mcp_send_error(
		    s, m->id, MCP_UNSUPPORTED_VERSION, "Unsupported protocol version",
		    json_pack("{s:o, s:s}", "supported", supported_versions(), "requested", want));
		return;
	}
	const struct method *f = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(methods) && !f; i++)
		if (strcmp(m->method, methods[i].name) == 0)
			f = &methods[i];
	char msg[MCP_ECHO_MAX + 100];
	if (!f) {
		snprintf(msg, sizeof msg, "Method not found: %.*s",
			 (int)utf8_trunc(m->method, MCP_ECHO_MAX), m->method);
		mcp_send_error(s, m->id, JSONRPC_METHOD_NOT_FOUND, msg, NULL);
		return;
	}
	if (f->needs_session && !s->version) {
		snprintf(msg, sizeof msg,
			 "Invalid Request: %s before initialize (the session starts with "
			 "initialize)",
			 f->name);
		mcp_send_error(s, m->id, MCP_NOT_INITIALIZED, msg, NULL);
		return;
	}
	if (m->params && !json_is_object(m->params)) {
		mcp_send_error(s, m->id, JSONRPC_INVALID_PARAMS,
			       "Invalid params: params must be an object", NULL);
		return;
	}
	log_debug("mcp: %s", m->method);
	f->fn(s, m->id, m->params);
}

static void on_notification(struct mcp_server *s, struct jsonrpc_msg *m)
{
	if (unsupported_version(s, m->params))
		return; /* nothing to answer a notification with */
	if (strcmp(m->method, "notifications/initialized") == 0)
		s->initialized = true;
	else if (strcmp(m->method, "notifications/cancelled") == 0)
		mcp_job_cancel(s, json_object_get(m->params, "requestId"));
	else
		log_debug("mcp: notification %s ignored", m->method);
}

static bool on_line(void *data, enum jsonl_event ev, const char *line, size_t len)
{
	struct mcp_server *s = data;
	if (ev == JSONL_TOO_LONG) {
		log_warn("mcp: a line over %u bytes: discarded", JSONRPC_MAX_LINE);
		char msg[80];
		snprintf(msg, sizeof msg, "Invalid Request: message over %u bytes, discarded",
			 JSONRPC_MAX_LINE);
		mcp_send_error(s, NULL, JSONRPC_INVALID_REQUEST, msg, NULL);
	} else {
		struct jsonrpc_msg m;
		jsonrpc_parse(line, len, &m);
		switch (m.kind) {
		case JSONRPC_INVALID:
			log_info("mcp: %s", m.message);
			mcp_send_error(s, m.id, m.code, m.message, NULL);
			break;
		case JSONRPC_REQUEST:
			on_request(s, &m);
			break;
		case JSONRPC_NOTIFICATION:
			on_notification(s, &m);
			break;
		case JSONRPC_RESPONSE: /* we never send requests: nothing to answer */
			log_info("mcp: a response%s%s: dropped",
				 m.message ? ", malformed: " : " to nothing we asked",
				 m.message ? m.message : "");
			break;
		}
		jsonrpc_msg_clear(&m);
	}
	/* Over the mark: stop here; flush_out reads on once stdout drains. */
	return !s->stopping && buf_len(&s->out) <= MCP_OUT_HIGH;
}

static void on_stdin(struct loop *l, int fd, unsigned events, void *data)
{
	read_stdin(data);
}

static void read_stdin(struct mcp_server *s)
{
	if (!s->in_events && !s->in_file) {
		int r = loop_add_fd(s->loop, s->in_fd, LOOP_READ, on_stdin, s);
		/* epoll refuses a regular file and /dev/null: both are always
		 * readable, so they are read from deferred calls instead. */
		if (r == -EPERM) {
			s->in_file = true;
		} else if (r < 0) {
			fail_session(s, "cannot watch stdin");
			return;
		}
	}
	s->in_events = LOOP_READ;
	int r = jsonl_read(s->in, s->in_fd, on_line, s);
	if (r == 0 && s->in_file) {
		loop_defer(s->loop, &s->resume, on_resume,
			   s); /* the rest, after what else is due */
	} else if (r == -ECANCELED) {
		if (!s->stopping) { /* backpressure: wait for stdout */
			if (!s->in_file)
				loop_del_fd(s->loop, s->in_fd);
			s->in_events = 0;
		}
	} else if (r < 0) {
		if (r != -EPIPE)
			log_error("mcp: reading stdin: %s", strerror(-r));
		on_eof(s);
	}
}

/* --- set-up --- */

static void free_schemas(struct mcp_server *s)
{
	for (size_t i = 0; s->in_schema && i < mcp_n_tools; i++) {
		json_decref(s->in_schema[i]);
		json_decref(s->out_schema[i]);
	}
	free(s->in_schema);
	free(s->out_schema);
}

/* Each tool's schemas, parsed once.  A bad one is a programming error
 * (tests/unit/test_mcp.c loads them all). */
static int load_schemas(struct mcp_server *s)
{
	s->in_schema = calloc(mcp_n_tools + 1, sizeof *s->in_schema);
	s->out_schema = calloc(mcp_n_tools + 1, sizeof *s->out_schema);
	if (!s->in_schema || !s->out_schema)
		return -ENOMEM;
	for (size_t i = 0; i < mcp_n_tools; i++) {
		const struct mcp_tool *t = &mcp_tools[i];
		char why[300] = "not JSON";
		s->in_schema[i] = json_loads(t->input_schema, 0, NULL);
		if (!s->in_schema[i] || argcheck_schema_ok(s->in_schema[i], why, sizeof why) < 0) {
			log_error("mcp: tool %s: %s", t->name, why);
			return -EINVAL;
		}
		if (t->output_schema) {
			s->out_schema[i] = json_loads(t->output_schema, 0, NULL);
			if (!json_is_object(s->out_schema[i])) {
				log_error("mcp: tool %s: outputSchema is not a JSON object",
					  t->name);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* Take stdin and stdout for the protocol (see the top of the file). */
static int take_stdio(struct mcp_server *s)
{
	s->in_fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
	s->out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (s->in_fd < 0 || s->out_fd < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 ||
	    dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
		int e = -errno;
		if (null >= 0)
			close(null);
		return e;
	}
	close(null);
	if (fd_set_nonblock(s->in_fd, true) < 0 || fd_set_nonblock(s->out_fd, true) < 0)
		return -errno;
	return 0;
}

static void release_stdio(struct mcp_server *s, int in_flags, int out_flags)
{
	/* The descriptions may be a terminal the shell uses on. */
	if (s->in_fd >= 0) {
		fcntl(s->in_fd, F_SETFL, in_flags);
		close(s->in_fd);
	}
	if (s->out_fd >= 0) {
		fcntl(s->out_fd, F_SETFL, out_flags);
		close(s->out_fd);
	}
}

int mcp_serve(struct app *a, const char *profile)
{
	struct mcp_server s = {
	    .app = a, .profile = profile, .in_fd = -1, .out_fd = -1, .wake_r = -1, .wake_w = -1};
	s.queue_tail = &s.queue;
	buf_init(&s.out, MCP_OUT_MAX);
	int in_flags = fcntl(STDIN_FILENO, F_GETFL), out_flags = fcntl(STDOUT_FILENO, F_GETFL);
	int r;
	if (in_flags < 0 || out_flags < 0) {
		log_error("mcp: stdin and stdout must be open");
		return EXIT_ERROR;
	}
	if ((r = load_schemas(&s)) < 0) {
		free_schemas(&s);
		return EXIT_ERROR;
	}
	signal(SIGPIPE, SIG_IGN); /* a closed stdout is EPIPE, handled */
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, 0};
	if ((r = take_stdio(&s)) < 0 || (r = loop_new(&s.loop)) < 0 ||
	    (r = loop_watch_signals(s.loop, sigs, on_signal, &s)) < 0 ||
	    (r = jsonl_reader_new(JSONRPC_MAX_LINE, &s.in)) < 0 || (r = mcp_jobs_init(&s)) < 0) {
		log_error("mcp: cannot start: %s", strerror(-r));
		s.exit_code = EXIT_ERROR;
	} else {
		log_info("mcp: serving on stdio (%zu tools, state %s%s%s)", mcp_n_tools,
			 a->state_dir, profile ? ", profile " : "", profile ? profile : "");
		read_stdin(&s);
		if (!s.stopping && (r = loop_run(s.loop)) < 0) {
			log_error("mcp: event loop: %s", strerror(-r));
			s.exit_code = EXIT_ERROR;
		}
	}
	mcp_jobs_abandon(&s);
	mcp_jobs_free(&s);
	mcp_resources_free(&s);
	if (s.loop) {
		loop_timer_stop(s.loop, &s.grace);
		loop_defer_cancel(s.loop, &s.resume);
		if (s.in_events && !s.in_file)
			loop_del_fd(s.loop, s.in_fd);
		if (s.out_watched)
			loop_del_fd(s.loop, s.out_fd);
	}
	release_stdio(&s, in_flags, out_flags);
	buf_free(&s.out);
	jsonl_reader_free(s.in);
	loop_free(s.loop);
	free_schemas(&s);
	if (s.abandoned) {
		/* A call still runs on its thread, inside the app layer (ssh,
		 * curl, kubectl) with the caller's config: returning would free
		 * that config under it and run exit()'s handlers beside it.  End
		 * here instead; what the thread holds goes with the process. */
		log_info("mcp: a call is still running: exiting without tearing down");
		fflush(stdout);
		fflush(stderr);
		_exit(s.exit_code);
	}
	return s.exit_code;
}
