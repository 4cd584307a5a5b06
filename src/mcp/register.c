/* register.c - `devbridge mcp config`: how a client starts this server,
 * as ops-bridge's register script prints it.  Everything absolute: the
 * client starts us from its own directory, with its own environment (the
 * SDK passes only HOME, LOGNAME, PATH, SHELL, TERM and USER). */
#include "core/util.h"
#include "mcp/mcp.h"

#include <stdlib.h>
#include <string.h>

int mcp_register_doc(const char *exe, const char *config_path, const char *profile,
		     const char *state_dir, json_t **ret_doc, char **ret_line)
{
	/* The command line: EXE [--config PATH] [--profile NAME] mcp */
	const char *argv[7];
	size_t n = 0;
	argv[n++] = exe;
	if (config_path) {
		argv[n++] = "--config";
		argv[n++] = config_path;
	}
	if (profile) {
		argv[n++] = "--profile";
		argv[n++] = profile;
	}
	argv[n++] = "mcp";
	argv[n] = NULL;
	json_t *args = json_array(), *env = json_object();
	for (size_t i = 1; i < n; i++)
		json_array_append_new(args, json_string(argv[i]));
	if (state_dir)
		json_object_set_new(env, "DEVBRIDGE_STATE_DIR", json_string(state_dir));
	json_t *doc = json_pack("{s:{s:{s:s, s:o, s:o}}}", "mcpServers", "devbridge", "command",
				exe, "args", args, "env", env);
	/* claude mcp add [--scope user] NAME [-e K=V]... -- COMMAND ARGS... */
	char *cmd = argv_format((char *const *)argv);
	char *q_env = NULL;
	if (state_dir) {
		char *kv = strdup_printf("DEVBRIDGE_STATE_DIR=%s", state_dir);
		q_env = kv ? shell_quote(kv) : NULL;
		free(kv);
	}
	char *line = NULL;
	if (doc && cmd && (!state_dir || q_env))
		line = strdup_printf("claude mcp add --scope user devbridge%s%s -- %s",
				     q_env ? " -e " : "", q_env ? q_env : "", cmd);
	free(cmd);
	free(q_env);
	if (!line) {
		json_decref(doc);
		return -1;
	}
	*ret_doc = doc;
	*ret_line = line;
	return 0;
}
