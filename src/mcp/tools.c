/* tools.c - the MCP tool table: each tool's name, what the model reads
 * about it, its input and output schemas and its annotations; the calls
 * are in tools_bridge.c, tools_catalog.c and tools_k8s.c.
 *
 * A schema is JSON text written with J(), which turns its tokens into a
 * string literal: the JSON reads as JSON here, and the pieces that several
 * schemas share (a status row, the error envelope) are written once.
 * Input schemas keep to the subset the server checks arguments with
 * (argcheck.h); output schemas describe exactly the --json document the
 * call returns, and also the error envelope with the partial results, so
 * a client validating an isError result's structuredContent accepts it.
 * docs/mcp.md ("Tools") lists them for people. */
#include "mcp/tools.h"
#include "core/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define J(...) #__VA_ARGS__

/* --- argument helpers --- */

const char *tool_str(const json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

long tool_int(const json_t *args, const char *key, long dflt)
{
	json_t *v = json_object_get(args, key);
	return json_is_integer(v) ? (long)json_integer_value(v) : dflt;
}

bool tool_bool(const json_t *args, const char *key, bool dflt)
{
	json_t *v = json_object_get(args, key);
	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

int tool_strv(const json_t *args, const char *key, char ***ret, int *ret_n, struct err *e)
{
	json_t *a = json_object_get(args, key);
	size_t n = json_array_size(a);
	*ret = NULL;
	*ret_n = 0;
	if (n == 0)
		return 0;
	char **v = calloc(n + 1, sizeof *v);
	if (!v)
		return err_set(e, EXIT_ERROR, "out of memory");
	for (size_t i = 0; i < n; i++) {
		v[i] = (char *)json_string_value(json_array_get(a, i));
		if (!v[i]) {
			free(v);
			return err_set(e, EXIT_USAGE, "%s: expected strings", key);
		}
	}
	*ret = v;
	*ret_n = (int)n;
	return 0;
}

/* --- children --- */

/* Supervisors started by a tool outlive the call but are this process's
 * children: each is reaped by its own pid once it has exited. */
#define MAX_ADOPTED 256
static pid_t adopted[MAX_ADOPTED];
static size_t n_adopted;

void tool_reap(void)
{
	for (size_t i = 0; i < n_adopted;) {
		pid_t r = waitpid(adopted[i], NULL, WNOHANG);
		if (r == 0 || (r < 0 && errno == EINTR)) {
			i++;
			continue;
		}
		adopted[i] = adopted[--n_adopted]; /* reaped, or not ours */
	}
}

void tool_adopt(pid_t pid)
{
	tool_reap();
	if (n_adopted < MAX_ADOPTED)
		adopted[n_adopted++] = pid;
}

/* --- shared schema pieces --- */

/* The schemas are JSON in J(): clang-format would lay them out as C. */
// clang-format off

/* The --json error envelope, in structuredContent only with isError. */
#define ERROR_PROP J(							\
	"error": {"type": "object",					\
		"description": "only on failure (isError): the --json error envelope", \
		"required": ["code", "name", "message"],		\
		"properties": {						\
			"code": {"type": "integer", "minimum": 1, "maximum": 255}, \
			"name": {"type": "string"},			\
			"message": {"type": "string"},			\
			"diagnostics": {"type": "array", "description":	\
				"an invalid config's: {file, line, column, message}", \
				"items": {"type": "object"}}}})
/* A document: these members (of which `req` are required, unless it is
 * the error envelope), nothing else. */
#define DOC(props, req)							\
	J({"type": "object", "additionalProperties": false, "properties": {) \
	props "," ERROR_PROP						\
	J(}, "anyOf": [{"required": [) req J(]}, {"required": ["error"]}]})

/* One row of `status --json`: what every kind has (kinds add members). */
#define ROW_PROPS J(							\
	"name": {"type": "string",					\
		"description": "tunnel, SVC.NS.PORT, intercept-SVC or container name"}, \
	"kind": {"enum": ["ssh", "k8s", "intercept", "container"]},	\
	"state": {"enum": ["stopped", "starting", "connected", "degraded", \
		"reconnecting", "failed", "stopping"]},			\
	"pid": {"type": ["integer", "null"], "description": "the supervisor, while live"}, \
	"ssh_pid": {"type": ["integer", "null"]},			\
	"since": {"type": ["string", "null"], "description": "when this state began (UTC)"}, \
	"local": {"type": "string"},					\
	"remote": {"type": "string"},					\
	"reconnects": {"type": "integer", "minimum": 0},		\
	"health": {"enum": ["ok", "failing", "unknown"]},		\
	"last_event": {"type": "string"},				\
	"reason": {"type": "string"},					\
	"detail": {"type": "string"},					\
	"direction": {"enum": ["local", "reverse", ""]},		\
	"actor": {"type": "string"},					\
	"catalog": {"type": "object", "required": ["domain", "file"],	\
		"additionalProperties": false,				\
		"properties": {"domain": {"type": "string"}, "file": {"type": "string"}}, \
		"description": "an OpsCatalog bridge: its domain and file"}, \
	"state_error": {"type": "string"})
#define ROW_REQ J("name", "kind", "state", "pid", "since", "local", "remote", \
	"reconnects", "health", "last_event", "reason")
#define ROW J({"type": "object", "required": [) ROW_REQ		\
	J(], "properties": {) ROW_PROPS J(}})
/* A row of up and connect: the status row and the first outcome. */
#define STARTED_ROW(extra_props)					\
	J({"type": "object", "required": [) ROW_REQ J(, "result", "code", "message"], \
	"properties": {) ROW_PROPS J(,					\
		"result": {"enum": ["connected", "retrying", "failed", "already_running", \
			"timeout"]},					\
		"code": {"type": "integer", "description": "0, or this bridge's exit code"}, \
		"message": {"type": "string"}) extra_props J(}})
#define DOWN_ROW J({"type": "object", "required": ["name", "result"],	\
	"additionalProperties": false,					\
	"properties": {							\
		"name": {"type": "string"},				\
		"result": {"enum": ["stopped", "not running", "cleaned up", "error"]},	\
		"message": {"type": "string", "description": "why, when result is error"}}})
#define SESSION J({"type": "object", "description": "the live Kubernetes session", \
	"required": ["kubeconfig", "context", "started_at", "bridges"],	\
	"properties": {							\
		"kubeconfig": {"type": "string"},			\
		"context": {"type": "string"},				\
		"started_at": {"type": "string"},			\
		"bridges": {"type": "integer", "minimum": 0}}})
#define STATUS_DOC DOC(							\
	J("bridges": {"type": "array", "items":) ROW J(},		\
	  "session":) SESSION,						\
	J("bridges"))

/* The catalog's (app/catalog.h). */
#define TARGET_PROPS J(							\
	"id": {"type": "string"},					\
	"domain": {"type": "string"},					\
	"host": {"type": "string"},					\
	"ssh_user": {"type": ["string", "null"]},			\
	"ssh_port": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535}, \
	"ssh_key": {"type": ["string", "null"]},			\
	"description": {"type": ["string", "null"]},			\
	"tags": {"type": "array", "items": {"type": "string"}},		\
	"file": {"type": "string", "description": "where it is defined"})
#define TARGET_REQ J("id", "domain", "host", "ssh_user", "ssh_port", "ssh_key", \
	"description", "tags", "file")
#define STRING_OR_NULL J({"type": ["string", "null"]})

/* Arguments. */
#define IN(props, req)							\
	J({"type": "object", "additionalProperties": false, "properties": {) \
	props J(}, "required": [) req J(]})
/* what: a C string literal, without quotes or backslashes */
#define NAMES_ARG(what) J(						\
	"names": {"type": "array", "maxItems": 64,			\
		"items": {"type": "string", "minLength": 1, "maxLength": 255}, \
		"description":) "\"" what "\"" J(})
#define TIMEOUT_ARG(max, dflt, what) J(				\
	"timeout": {"type": "integer", "minimum": 1, "maximum": max,	\
		"default": dflt, "description":) "\"" what "\"" J(})
#define ID_ARG(what) J(						\
	"id": {"type": "string", "minLength": 1, "maxLength": 255,	\
		"description":) "\"" what "\"" J(})
#define KUBE_ARGS J(							\
	"kubeconfig": {"type": "string", "minLength": 1, "maxLength": 4095, \
		"description": "kubeconfig file (else bridge.kubeconfig, $KUBECONFIG, ~/.kube/config)"}, \
	"context": {"type": "string", "minLength": 1, "maxLength": 255, \
		"description": "kubeconfig context (else bridge.context, the current one)"}, \
	"namespace": {"type": "string", "minLength": 1, "maxLength": 63, \
		"description": "for targets without one (else bridge.namespace, the context's)"}, \
	"profile": {"type": "string", "minLength": 1, "maxLength": 255, \
		"description": "a bridge.profiles entry, applied first"})

const struct mcp_tool mcp_tools[] = {
/* --- bridges of every kind --- */
{
	.name = "bridge_status",
	.title = "Bridge status",
	.description =
	    "Show the state of bridges: SSH tunnels, Kubernetes port-forwards (SVC.NS.PORT), "
	    "intercepts (intercept-SVC) and connected devcontainers. Use it first to see what "
	    "exists and whether it works. Returns {bridges:[{name, kind, state (stopped, "
	    "starting, connected, degraded, reconnecting, failed, stopping), pid, local, remote, "
	    "reconnects, health, last_event, reason, ...}], session} exactly as `devbridge "
	    "status --json`; session is the live Kubernetes session, if any.",
	.input_schema = IN(NAMES_ARG("bridges to show (a tunnel, SVC.NS.PORT, a service: all its bridges, or intercept-SVC); omit for all"), ),
	.output_schema = STATUS_DOC,
	.hints = MCP_READ_ONLY | MCP_IDEMPOTENT,
	.call = tool_bridge_status,
},
{
	.name = "bridge_up",
	.title = "Start SSH tunnels",
	.description =
	    "Start supervised SSH tunnels from the config and the catalog: one detached "
	    "supervisor per tunnel keeps it connected and reconnects with backoff. A tunnel "
	    "already running is left alone. Waits at most `timeout` seconds (default 15) for each "
	    "first outcome, then returns the rows as `devbridge up --json`: {bridges:[status row "
	    "+ result (connected, retrying, failed, already_running, timeout), code, message]}. "
	    "When not every tunnel connected the result is an error that still carries the rows "
	    "(42-46: the first attempt failed and it keeps retrying in the background; 41: it "
	    "gave up; 47 timeout: still starting): call bridge_wait to wait for connected, "
	    "bridge_logs to see why.",
	.input_schema = IN(NAMES_ARG("tunnels to start; omit for every tunnel") ","
			   TIMEOUT_ARG(45, 15, "seconds to wait for the first outcome"), ),
	.output_schema = DOC(J("bridges": {"type": "array", "items":) STARTED_ROW() J(}),
			     J("bridges")),
	.hints = MCP_IDEMPOTENT | MCP_OPEN_WORLD,
	.call = tool_bridge_up,
},
{
	.name = "bridge_down",
	.title = "Stop bridges",
	.description =
	    "Stop supervised bridges: the supervisor ends ssh (or kubectl) and exits; an "
	    "intercept (intercept-SVC) restores its Service first. Omitting names stops EVERY "
	    "running bridge. Stopping one that is not running is not an error. Returns "
	    "{bridges:[{name, result: stopped | not running | cleaned up | error}]} as "
	    "`devbridge down --json`.",
	.input_schema = IN(NAMES_ARG("bridges to stop; omit to stop all"), ),
	.output_schema = DOC(J("bridges": {"type": "array", "items":) DOWN_ROW J(}),
			     J("bridges")),
	.hints = MCP_DESTRUCTIVE | MCP_IDEMPOTENT | MCP_OPEN_WORLD,
	.call = tool_bridge_down,
},
{
	.name = "bridge_restart",
	.title = "Restart SSH tunnels",
	.description =
	    "Stop, then start SSH tunnels again (a new ssh connection each): for a tunnel that is "
	    "connected but does not carry traffic. Returns what bridge_up returns (`devbridge "
	    "restart --json`), or bridge_down's rows when one could not be stopped.",
	.input_schema = IN(NAMES_ARG("tunnels to restart; omit for all") ","
			   TIMEOUT_ARG(45, 15, "seconds to wait for the first outcome"), ),
	.output_schema = DOC(J("bridges": {"type": "array", "items": {"anyOf": [)
				 STARTED_ROW() "," DOWN_ROW J(]}}),
			     J("bridges")),
	.hints = MCP_DESTRUCTIVE | MCP_OPEN_WORLD,
	.call = tool_bridge_restart,
},
{
	.name = "bridge_logs",
	.title = "Bridge audit log",
	.description =
	    "Read a bridge's audit log: bridge_started, bridge_connected, bridge_disconnected, "
	    "health_check_failed, reconnecting, ... with who (actor) and why (detail). Use it to "
	    "learn why a bridge is failing or reconnecting. Returns the last `lines` events "
	    "(default 20) as `devbridge logs NAME -n N --json`: {name, events:[{ts, tunnel, "
	    "event, actor, actor_class, detail}]}.",
	.input_schema = IN(J(
		"name": {"type": "string", "minLength": 1, "maxLength": 255,
			"description": "the bridge"},
		"lines": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20,
			"description": "how many of the last events"}),
		J("name")),
	.output_schema = DOC(J(
		"name": {"type": "string"},
		"events": {"type": "array", "items": {"type": "object",
			"required": ["ts", "tunnel", "event", "actor", "actor_class", "detail"],
			"properties": {
				"ts": {"type": "string"},
				"tunnel": {"type": "string"},
				"event": {"type": "string"},
				"actor": {"type": ["string", "null"]},
				"actor_class": {"type": ["string", "null"]},
				"detail": {"type": "string"}}}}),
		J("name", "events")),
	.hints = MCP_READ_ONLY | MCP_IDEMPOTENT,
	.call = tool_bridge_logs,
},
{
	.name = "bridge_check",
	.title = "Run health checks",
	.description =
	    "Run each bridge's health check now (its configured HTTP or TCP check; for a "
	    "Kubernetes bridge a connection through the forward) and ask live supervisors to "
	    "re-check too. Use it to confirm the service behind a connected bridge answers. "
	    "Returns {checks:[{name, health: ok | failing, detail}]} as `devbridge check "
	    "--json`; an error (49) when one is failing, with the checks.",
	.input_schema = IN(NAMES_ARG("bridges to check; omit for every tunnel"), ),
	.output_schema = DOC(J(
		"checks": {"type": "array", "items": {"type": "object",
			"required": ["name", "health", "detail"],
			"additionalProperties": false,
			"properties": {
				"name": {"type": "string"},
				"health": {"enum": ["ok", "failing"]},
				"detail": {"type": "string"}}}}),
		J("checks")),
	.hints = MCP_READ_ONLY | MCP_IDEMPOTENT | MCP_OPEN_WORLD,
	.call = tool_bridge_check,
},
{
	.name = "bridge_wait",
	.title = "Wait for a bridge state",
	.description =
	    "Wait until bridge NAME (every bridge of it, for a service) is in one of `states` "
	    "(default connected, failed or stopped), at most `timeout` seconds (default 20, at "
	    "most 50): after bridge_up or k8s_connect returned a bridge still starting or "
	    "reconnecting. Returns NAME's bridge_status document once the state is reached; an "
	    "error 47 (timeout) with the same document when it was not (at the timeout, or "
	    "when the wait was interrupted). Sends progress "
	    "notifications (the state) when the request has a progressToken.",
	.input_schema = IN(J(
		"name": {"type": "string", "minLength": 1, "maxLength": 255,
			"description": "a tunnel, SVC.NS.PORT, a service (all its bridges), or intercept-SVC"},
		"states": {"type": "array", "minItems": 1, "maxItems": 7,
			"items": {"type": "string", "enum": ["stopped", "starting", "connected",
				"degraded", "reconnecting", "failed", "stopping"]},
			"description": "the states that end the wait"}) ","
		TIMEOUT_ARG(50, 20, "seconds"),
		J("name")),
	.output_schema = STATUS_DOC,
	.hints = MCP_READ_ONLY | MCP_IDEMPOTENT,
	.call = tool_bridge_wait,
},

/* --- the OpsCatalog --- */
{
	.name = "catalog_list_domains",
	.title = "Catalog domains",
	.description =
	    "List the OpsCatalog (the config's catalog_path: infrastructure described once, per "
	    "domain): each domain with its description, owner and how many targets and bridges "
	    "it has, and every bridge with its target, direction and ports. Start here to find "
	    "where a host or a bridge is. Returns {catalog_path, domains:[{id, description, "
	    "owner, targets, bridges, file}], bridges:[{id, domain, target, direction, "
	    "local_port, remote_port, shadowed_by_inline}]} as `devbridge catalog list --json`.",
	.input_schema = IN(, ),
	.output_schema = DOC(J(
		"catalog_path": {"type": "string"},
		"domains": {"type": "array", "items": {"type": "object",
			"required": ["id", "description", "owner", "targets", "bridges", "file"],
			"properties": {
				"id": {"type": "string"},
				"description":) STRING_OR_NULL J(,
				"owner":) STRING_OR_NULL J(,
				"targets": {"type": "integer", "minimum": 0},
				"bridges": {"type": "integer", "minimum": 0},
				"file": {"type": "string"}}}},
		"bridges": {"type": "array", "items": {"type": "object",
			"required": ["id", "domain", "target", "direction", "local_port",
				"remote_port", "shadowed_by_inline"],
			"properties": {
				"id": {"type": "string"},
				"domain": {"type": "string"},
				"target": {"type": "string"},
				"direction": {"enum": ["local", "reverse"]},
				"local_port": {"type": "integer"},
				"remote_port": {"type": "integer"},
				"shadowed_by_inline": {"type": "boolean"}}}}),
		J("catalog_path", "domains", "bridges")),
	.hints = MCP_READ_ONLY | MCP_IDEMPOTENT,
	.flags = MCP_TOOL_NO_CATALOG, /* reads the catalog itself */
	.call = tool_catalog_list_domains,
},
{
	.name = "catalog_list_targets",
	.title = "Catalog targets",
	.description =
	    "List the catalog's targets (the hosts its bridges reach over SSH), of one domain or "
	    "all. Returns {catalog_path, targets:[{id, domain, host, ssh_user, ssh_port, "
	    "ssh_key, description, tags, file}]} as `devbridge targets [--domain D] --json`; "
	    "error 57 for an unknown domain.",
	.input_schema = IN(J(
		"domain": {"type": "string", "minLength": 1, "maxLength": 255,
			"description": "only this domain's targets"}), ),
	.output_schema = DOC(J(
		"catalog_path": {"type": "string"},
		"targets": {"type": "array", "items": {"type": "object", "required": [)
			TARGET_REQ J(], "properties": {) TARGET_PROPS J(}}}),
		J("catalog_path", "targets")),
	.hints = MCP_READ_ONLY | MCP_IDEMPOTENT,
	.flags = MCP_TOOL_NO_CATALOG, /* reads the catalog itself */
	.call = tool_catalog_list_targets,
},
{
	.name = "catalog_show_target",
	.title = "Catalog target",
	.description =
	    "Show one catalog target: its host and SSH settings, the file it is defined in, and "
	    "the ids of the bridges that reach it. Returns {target:{id, domain, host, ssh_user, "
	    "ssh_port, ssh_key, description, tags, file, bridges}} as `devbridge targets show ID "
	    "--json`; error 57 for an unknown id.",
	.input_schema = IN(ID_ARG("the target's id"), J("id")),
	.output_schema = DOC(J(
		"target": {"type": "object", "required": [) TARGET_REQ J(, "bridges"],
			"properties": {) TARGET_PROPS J(,
				"bridges": {"type": "array", "items": {"type": "string"}}}}),
		J("target")),
	.hints = MCP_READ_ONLY | MCP_IDEMPOTENT,
	.flags = MCP_TOOL_NO_CATALOG, /* reads the catalog itself */
	.call = tool_catalog_show_target,
},
{
	.name = "catalog_show_bridge",
	.title = "Catalog bridge",
	.description =
	    "Show one catalog bridge as it resolves: its target and host, remote and local port, "
	    "direction, actor, health check and reconnect policy, the file it is defined in, and "
	    "whether an inline tunnel of the config shadows it (then the inline one is what "
	    "bridge_up starts). A catalog bridge is a tunnel: bridge_up ID starts it. Returns "
	    "{bridge:{...}} as `devbridge catalog show ID --json`; error 48 for an unknown id.",
	.input_schema = IN(ID_ARG("the bridge's id"), J("id")),
	.output_schema = DOC(J(
		"bridge": {"type": "object",
			"required": ["id", "domain", "file", "target", "host", "remote_port",
				"local_port", "direction", "actor", "health_check", "reconnect",
				"shadowed_by_inline"],
			"properties": {
				"id": {"type": "string"},
				"domain": {"type": "string"},
				"file": {"type": "string"},
				"target": {"type": "string"},
				"target_domain": {"type": "string"},
				"host": {"type": "string"},
				"ssh_user":) STRING_OR_NULL J(,
				"ssh_port": {"type": ["integer", "null"]},
				"remote_port": {"type": "integer"},
				"local_port": {"type": "integer"},
				"remote_host": {"type": "string"},
				"direction": {"enum": ["local", "reverse"]},
				"actor":) STRING_OR_NULL J(,
				"description":) STRING_OR_NULL J(,
				"health_check": {"type": ["object", "null"]},
				"reconnect": {"type": ["object", "null"]},
				"shadowed_by_inline": {"type": "boolean"},
				"inline_tunnel":) STRING_OR_NULL J(}}),
		J("bridge")),
	.hints = MCP_READ_ONLY | MCP_IDEMPOTENT,
	.flags = MCP_TOOL_NO_CATALOG, /* reads the catalog itself */
	.call = tool_catalog_show_bridge,
},
{
	.name = "catalog_validate",
	.title = "Validate the catalog",
	.description =
	    "Check the whole catalog: unknown targets, ids used twice across domains, bad fields, "
	    "undefined actors, two bridges on one local port. Use it after editing catalog "
	    "files. Returns {valid, catalog_path, domains, targets, bridges (counts), "
	    "diagnostics:[{file, line, column, message}], more_diagnostics} as `devbridge catalog "
	    "validate --json`; an error (3) with that document when a diagnostic was found.",
	.input_schema = IN(, ),
	.output_schema = DOC(J(
		"valid": {"type": "boolean"},
		"catalog_path": {"type": "string"},
		"domains": {"type": "integer", "minimum": 0},
		"targets": {"type": "integer", "minimum": 0},
		"bridges": {"type": "integer", "minimum": 0},
		"diagnostics": {"type": "array", "items": {"type": "object",
			"required": ["file", "line", "column", "message"],
			"properties": {
				"file": {"type": "string"},
				"line": {"type": "integer"},
				"column": {"type": "integer"},
				"message": {"type": "string"}}}},
		"more_diagnostics": {"type": "integer", "minimum": 0}),
		J("valid", "catalog_path", "domains", "targets", "bridges", "diagnostics")),
	.hints = MCP_READ_ONLY | MCP_IDEMPOTENT,
	.flags = MCP_TOOL_NO_CATALOG, /* reads the catalog itself */
	.call = tool_catalog_validate,
},

/* --- Kubernetes --- */
{
	.name = "k8s_connect",
	.title = "Connect Kubernetes services",
	.description =
	    "Forward Kubernetes services to local ports: after pre-checks (kubeconfig, context, "
	    "cluster, namespace, service and port, a Ready pod), one detached supervisor per "
	    "target runs kubectl port-forward to a Ready pod and follows the service's endpoints. "
	    "Targets are [NAMESPACE/]SERVICE:PORT[:LOCAL_PORT]; omit them for the config's "
	    "bridge.targets. Returns within `timeout` seconds (default 30) {context, kubeconfig, "
	    "namespace, session_file, env_file, bridges:[status row + result, code, message, "
	    "env_prefix]} as `devbridge connect --json`. Errors: 60 no kubeconfig, 61 cluster "
	    "unreachable, 62 namespace, 63 service or port not found, 64 port-forward failed, 68 "
	    "RBAC forbids, 47 still connecting (call bridge_wait). k8s_env gives the BRIDGE_* "
	    "variables.",
	.input_schema = IN(J(
		"targets": {"type": "array", "maxItems": 64,
			"items": {"type": "string", "minLength": 3, "maxLength": 600},
			"description": "[NAMESPACE/]SERVICE:PORT[:LOCAL_PORT] each"},) KUBE_ARGS ","
		TIMEOUT_ARG(50, 30, "seconds for the whole connect, pre-checks included") J(,
		"max_attempts": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 4,
			"description": "kubectl runs before a target that never connected fails (0: forever)"},
		"health_interval": {"type": "integer", "minimum": 0, "maximum": 86400, "default": 30,
			"description": "seconds between probes through a forward once connected (0: never)"}), ),
	.output_schema = DOC(J(
		"context": {"type": "string"},
		"kubeconfig": {"type": "string"},
		"namespace": {"type": "string"},
		"session_file": {"type": "string"},
		"env_file": {"type": "string"},
		"bridges": {"type": "array", "items":)
			STARTED_ROW(J(, "env_prefix": {"type": "string"})) J(}),
		J("context", "kubeconfig", "namespace", "session_file", "env_file", "bridges")),
	.hints = MCP_IDEMPOTENT | MCP_OPEN_WORLD,
	.call = tool_k8s_connect,
},
{
	.name = "k8s_disconnect",
	.title = "Disconnect Kubernetes bridges",
	.description =
	    "Stop the Kubernetes bridges k8s_connect started (their kubectl with them) and every "
	    "intercept (restoring its Service), remove what dead intercept sessions left, and "
	    "rewrite session.json and bridge.env. Omitting names disconnects EVERYTHING; "
	    "dry_run says what it would do. Returns {dry_run, bridges:[{name, kind, result: "
	    "stopped | cleared | removed | error | would_stop | would_clear}]} as `devbridge "
	    "disconnect -y --json`.",
	.input_schema = IN(NAMES_ARG("bridge or intercept names, services or NS/SERVICE; omit for all") J(,
		"dry_run": {"type": "boolean", "default": false,
			"description": "change nothing, say what would be done"}), ),
	.output_schema = DOC(J(
		"dry_run": {"type": "boolean"},
		"bridges": {"type": "array", "items": {"type": "object",
			"required": ["name", "result"],
			"additionalProperties": false,
			"properties": {
				"name": {"type": "string"},
				"kind": {"enum": ["intercept", "leftover"]},
				"result": {"enum": ["stopped", "cleared", "removed", "error",
					"would_stop", "would_clear", "cleaned up"]},
				"message": {"type": "string",
					"description": "why, when result is error"}}}}),
		J("dry_run", "bridges")),
	.hints = MCP_DESTRUCTIVE | MCP_IDEMPOTENT | MCP_OPEN_WORLD,
	.call = tool_k8s_disconnect,
},
{
	.name = "k8s_env",
	.title = "Kubernetes bridge variables",
	.description =
	    "The environment variables of the connected Kubernetes bridges: "
	    "BRIDGE_<SERVICE>_URL, _HOST and _PORT (e.g. BRIDGE_PAYMENTS_API_URL="
	    "http://127.0.0.1:9501), for configuring a program to reach the services. Returns "
	    "{NAME: value} as `devbridge env --format json`; {} when none is connected.",
	.input_schema = IN(, ),
	.output_schema = J({"type": "object",
		"patternProperties": {"^BRIDGE_[A-Z0-9_]+$": {"type": "string"}},
		"additionalProperties": false,
		"properties": {) ERROR_PROP J(}}),
	.hints = MCP_READ_ONLY | MCP_IDEMPOTENT,
	.call = tool_k8s_env,
},
{
	.name = "intercept_start",
	.title = "Intercept a Service",
	.description =
	    "Route a Kubernetes Service's cluster traffic to local ports: steal (the cluster's "
	    "clients reach this machine instead of the pods) or mirror (the pods still answer; a "
	    "copy of each client's bytes comes here). After validation touching nothing, it "
	    "creates an agent Job, swaps the Service's selector, and returns once the tunnel is "
	    "held by a detached process intercept-SVC (always detached); progress notifications "
	    "name each step. Stop it with intercept_stop. Returns {name, namespace, service, "
	    "mode, session, agent_pod, ports:[{port, local_port}], detached, pid, state, "
	    "restored, leftovers_removed} as `devbridge intercept SVC --json`. Errors: 60-63 as "
	    "k8s_connect, 65 the agent Job failed, 66 not Ready in time, 67 swap failed, 68 "
	    "missing rights (each named), 69 already intercepted, 70 UDP port, 72 no selector.",
	.input_schema = IN(J(
		"service": {"type": "string", "minLength": 1, "maxLength": 63,
			"description": "the Service (omit: the config's only bridge.intercepts entry)"},
		"mode": {"type": "string", "enum": ["steal", "mirror"],
			"description": "omit: the config entry's, else steal"},
		"ports": {"type": "array", "maxItems": 32,
			"items": {"type": "string", "minLength": 1, "maxLength": 80},
			"description": "PORT, NAME, PORT:LOCAL or NAME:LOCAL; omit for every TCP port"},
		"local_port": {"type": "integer", "minimum": 1, "maximum": 65535,
			"description": "the local port, for a single port"},
		"agent_image": {"type": "string", "minLength": 1, "maxLength": 1024,
			"description": "the agent image (else bridge.agent_image, the default)"},)
		KUBE_ARGS "," TIMEOUT_ARG(50, 45, "seconds, validation included"), ),
	.output_schema = DOC(J(
		"name": {"type": "string"},
		"namespace": {"type": "string"},
		"service": {"type": "string"},
		"mode": {"enum": ["steal", "mirror"]},
		"session": {"type": "string"},
		"agent_pod": {"type": "string"},
		"ports": {"type": "array", "items": {"type": "object",
			"required": ["port", "local_port"],
			"properties": {
				"port": {"type": "integer"},
				"local_port": {"type": "integer"}}}},
		"detached": {"type": "boolean"},
		"restored": {"type": "boolean"},
		"leftovers_removed": {"type": "array", "items": {"type": "string"}},
		"pid": {"type": "integer"},
		"state": {"enum": ["connected"]}),
		J("name", "namespace", "service", "mode", "session", "agent_pod", "ports",
		  "detached", "restored")),
	/* Destructive: steal swaps a live Service's selector (its clients
	 * stop reaching its pods), not an additive change (MCP's meaning). */
	.hints = MCP_DESTRUCTIVE | MCP_OPEN_WORLD,
	.call = tool_intercept_start,
},
{
	.name = "intercept_stop",
	.title = "Stop an intercept",
	.description =
	    "Stop intercepting a Service: its holder restores the Service's selector exactly and "
	    "deletes the agent's objects (or, when that process is gone, this does from the saved "
	    "state). Returns {bridges:[{name: intercept-SVC, result: stopped | cleaned up | "
	    "error}]} as `devbridge down intercept-SVC --json`; error 48 when SVC is not "
	    "intercepted from here.",
	.input_schema = IN(J(
		"service": {"type": "string", "minLength": 1, "maxLength": 63,
			"description": "the intercepted Service"}),
		J("service")),
	.output_schema = DOC(J("bridges": {"type": "array", "items":) DOWN_ROW J(}),
			     J("bridges")),
	.hints = MCP_DESTRUCTIVE | MCP_OPEN_WORLD,
	.call = tool_intercept_stop,
},

/* --- devcontainers --- */
{
	.name = "container_status",
	.title = "Devcontainer status",
	.description =
	    "The devcontainers connected to this machine's host daemon, each with the ports it "
	    "forwards (forwards:[{port, host_port, remapped, process_name}]) and the host "
	    "sockets mirrored into it. Returns {bridges:[status row of kind container]}: those "
	    "rows of `devbridge status --json`; [] when no host daemon runs; error 48 for a "
	    "name that is not connected.",
	.input_schema = IN(J(
		"name": {"type": "string", "minLength": 1, "maxLength": 255,
			"description": "only this container (its hostname)"}), ),
	.output_schema = DOC(J("bridges": {"type": "array", "items":) ROW J(}), J("bridges")),
	.hints = MCP_READ_ONLY | MCP_IDEMPOTENT,
	.call = tool_container_status,
},
};
// clang-format on

const size_t mcp_n_tools = ARRAY_SIZE(mcp_tools);

const struct mcp_tool *mcp_tool_find(const char *name)
{
	for (size_t i = 0; name && i < mcp_n_tools; i++)
		if (strcmp(mcp_tools[i].name, name) == 0)
			return &mcp_tools[i];
	return NULL;
}
