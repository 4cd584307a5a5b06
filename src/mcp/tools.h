/* tools.h - what the tool files share: the calls the table in tools.c
 * names (one file per world: tools_bridge.c, tools_catalog.c,
 * tools_k8s.c) and the helpers that read a call's arguments.
 *
 * A call's arguments were checked against its input_schema by the
 * server, so a member is absent or of the declared type; the helpers
 * still read defensively (a unit test calls the tools directly). */
#ifndef DEVBRIDGE_MCP_TOOLS_H
#define DEVBRIDGE_MCP_TOOLS_H

#include <sys/types.h>

#include "mcp/mcp.h"

/* The string member `key` of args, or NULL. */
const char *tool_str(const json_t *args, const char *key);
/* The integer member `key` of args, or dflt. */
long tool_int(const json_t *args, const char *key, long dflt);
bool tool_bool(const json_t *args, const char *key, bool dflt);
/* The array of strings `key` of args as a malloc'd vector of pointers
 * into args (free it, not its strings); *ret_n 0 (and *ret NULL) when
 * absent.  0, or EXIT_ERROR with e set. */
int tool_strv(const json_t *args, const char *key, char ***ret, int *ret_n, struct err *e);
/* A supervisor or holder started by a tool is this server's child: reap
 * it once it has exited (tool_reap: after a stop, and at status), so none
 * is left a zombie. */
void tool_adopt(pid_t pid);
void tool_reap(void);

/* tools_bridge.c */
int tool_bridge_up(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_bridge_down(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_bridge_restart(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_bridge_status(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_bridge_logs(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_bridge_check(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_bridge_wait(struct mcp_call *c, json_t **ret_doc, struct err *e);

/* tools_catalog.c */
int tool_catalog_list_targets(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_catalog_show_target(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_catalog_list_domains(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_catalog_validate(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_catalog_show_bridge(struct mcp_call *c, json_t **ret_doc, struct err *e);

/* tools_k8s.c: Kubernetes, intercepts, containers */
int tool_k8s_connect(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_k8s_disconnect(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_k8s_env(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_intercept_start(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_intercept_stop(struct mcp_call *c, json_t **ret_doc, struct err *e);
int tool_container_status(struct mcp_call *c, json_t **ret_doc, struct err *e);

#endif
