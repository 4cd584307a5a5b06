/* mcp.h - devbridge's MCP server: the third renderer of src/app's
 * operations (after tables and --json), for AI agents, on stdio.
 *
 * server.c speaks the protocol (proto/jsonrpc.h framing, the handshake,
 * tools/list and tools/call, resources and subscriptions, cancellation,
 * progress); tools*.c declare the tools in one table.  A tool never
 * prints: it returns the document its command prints with --json, and
 * the server renders it as structuredContent (and as text content), or an
 * exit code and a struct err, rendered as an isError result whose text is
 * the --json error envelope {"error":{"code","name","message"}}.
 * docs/mcp.md lists the tools and the protocol revisions spoken. */
#ifndef DEVBRIDGE_MCP_MCP_H
#define DEVBRIDGE_MCP_MCP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "app/app.h"
#include "core/errcode.h"

/* Tool annotations (MCP ToolAnnotations). */
enum {
	MCP_READ_ONLY = 1 << 0,	  /* readOnlyHint: changes nothing */
	MCP_DESTRUCTIVE = 1 << 1, /* destructiveHint: stops or removes something */
	MCP_IDEMPOTENT = 1 << 2,  /* idempotentHint: a second call changes nothing more */
	MCP_OPEN_WORLD = 1 << 3,  /* openWorldHint: reaches hosts or clusters */
};

/* What a tool's call needs of the server (struct mcp_tool's flags). */
enum {
	/* The config is loaded without its catalog: the tool reads the
	 * catalog itself and reports on it (a catalog that does not load
	 * is what catalog_validate is for). */
	MCP_TOOL_NO_CATALOG = 1 << 0,
};

/* One tools/call in progress, as a tool sees it.  Runs off the server's
 * loop thread (tool calls block: ssh, kubectl); one at a time. */
struct mcp_call {
	/* This call's own: the config loaded afresh for it (the catalog
	 * too, unless MCP_TOOL_NO_CATALOG), the state dir made. */
	const struct app *app;
	json_t *args; /* the arguments, checked against input_schema */
	/* Report progress; does nothing unless the client sent a
	 * progressToken with this request.  total 0: unknown. */
	void (*progress)(struct mcp_call *c, double done, double total, const char *message);
	/* True once the client cancelled this request (notifications/
	 * cancelled) or closed stdin: a waiting tool returns early. */
	bool (*cancelled)(const struct mcp_call *c);
	void *priv; /* the server's */
};

struct mcp_tool {
	const char *name;	   /* bridge_status */
	const char *title;	   /* "Bridge status" */
	const char *description;   /* for the model: what, when, what it returns */
	const char *input_schema;  /* JSON Schema (an object schema), as JSON text */
	const char *output_schema; /* JSON Schema of structuredContent, as JSON text */
	unsigned hints;		   /* MCP_READ_ONLY | ... */
	unsigned flags;		   /* MCP_TOOL_NO_CATALOG */
	/* 0 and *ret_doc (the command's --json document, owned by the
	 * caller), or an exit code with e set; *ret_doc may then hold the
	 * rows that did work, and "error" members besides code, name and
	 * message ("diagnostics"), as the CLI's error envelope carries them. */
	int (*call)(struct mcp_call *c, json_t **ret_doc, struct err *e);
};

/* The tools, in the order tools/list gives them (tools.c). */
extern const struct mcp_tool mcp_tools[];
extern const size_t mcp_n_tools;
const struct mcp_tool *mcp_tool_find(const char *name);

/* `devbridge mcp`: serve on stdin/stdout until stdin closes.  Logs go to
 * stderr.  profile (--profile; NULL: none) is the default of the tools'
 * `profile` argument (k8s_connect, intercept_start), as for the CLI.  Returns the process exit
 * code, or, when a call had to be left running on its thread (stdin closed 1.5 s ago, a signal),
 * ends the process with it (_exit): nothing of `a` may be freed under that call. */
int mcp_serve(struct app *a, const char *profile);

/* `devbridge mcp config`: the .mcp.json entry {"mcpServers":{"devbridge":
 * {command, args, env}}} that starts `exe` (absolute) with config_path
 * (absolute; NULL: none), profile (--profile; NULL: none) and state_dir
 * (NULL: the default one), and the same as a `claude mcp add` line
 * (malloc'd).  0, or -1 when out of memory. */
int mcp_register_doc(const char *exe, const char *config_path, const char *profile,
		     const char *state_dir, json_t **ret_doc, char **ret_line);

#endif
