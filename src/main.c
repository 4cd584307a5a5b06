/* main.c - devbridge entry point.  Invoked as `devbridge-open` it behaves as
 * `devbridge open URL` (SPEC §1).  The two renderers of src/app sit side by
 * side: cli runs every command but `mcp`, which the mcp layer serves (cli
 * may not call up into it, so the dispatch is here). */
#include "app/config.h"
#include "cli/cli.h"
#include "core/state.h"
#include "core/log.h"
#include "core/util.h"
#include "mcp/mcp.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* dir made absolute against the working directory; it need not exist. */
static char *absolute(const char *dir)
{
	if (dir[0] == '/')
		return strdup(dir);
	char *cwd = getcwd(NULL, 0);
	char *abs = cwd ? strdup_printf("%s/%s", cwd, dir) : NULL;
	free(cwd);
	return abs;
}

/* `devbridge mcp config`: the .mcp.json entry and the `claude mcp add` line. */
static int mcp_config(struct cli *c)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n < 0)
		return cli_error(c, EXIT_ERROR, "cannot find this executable's path");
	exe[n] = '\0';
	/* The state directory only when one was chosen: else the server
	 * finds the same default the client's user has.  Only named here:
	 * the server creates it when it starts. */
	bool chosen =
	    c->state_dir_opt || getenv("DEVBRIDGE_STATE_DIR") || getenv("BRIDGE_STATE_DIR");
	char *dir = NULL, *state = NULL;
	if (chosen && state_dir_resolve(c->state_dir_opt, &dir) == 0 &&
	    !(state = realpath(dir, NULL)))
		state = absolute(dir);
	if (chosen && !state) {
		free(dir);
		return cli_error(c, EXIT_ERROR, "out of memory");
	}
	json_t *doc;
	char *line;
	int r = mcp_register_doc(exe, app_no_config(cli_app(c)) ? NULL : c->config_path, c->profile,
				 state, &doc, &line);
	free(dir);
	free(state);
	if (r < 0)
		return cli_error(c, EXIT_ERROR, "out of memory");
	if (c->json) {
		cli_print_json(doc);
	} else {
		char *text = json_dumps(doc, JSON_INDENT(2));
		printf("Add to .mcp.json (a project) or ~/.claude.json (mcpServers):\n%s\n\n"
		       "or register it with Claude Code:\n  %s\n",
		       text ? text : "", line);
		free(text);
		json_decref(doc);
	}
	free(line);
	return EXIT_OK;
}

/* The server's config, read to refuse one that does not load (exit 3,
 * the diagnostics on stderr) before speaking; each call then loads it
 * afresh (mcp/calls.c).  Its catalog refuses nothing: a catalog that
 * does not load is the EXIT_CONFIG of each call that needs it, and what
 * catalog_validate is for; a warning in the log says so at start. */
static int load_mcp_config(struct cli *c)
{
	c->no_catalog = true;
	int r = cli_load_config_optional(c);
	if (r || !c->cfg->catalog_path || c->argc > 0)
		return r;
	struct cfg *full = NULL;
	struct cfg_diags d = {0};
	struct err e = {0};
	if (app_load_config(c->config_path, 0, &full, &d, &e))
		log_warn("mcp: the catalog does not load (%s); serving anyway: the calls that need "
			 "it fail with that, catalog_validate lists every problem",
			 e.message);
	cfg_diags_clear(&d);
	cfg_free(full);
	return 0;
}

static int run_mcp(struct cli *c)
{
	int r = load_mcp_config(c);
	if (r)
		return r;
	if (c->argc == 1 && strcmp(c->argv[0], "config") == 0)
		return mcp_config(c);
	if (c->argc > 0)
		return cli_error(c, EXIT_USAGE,
				 "mcp: unexpected '%s' (usage: devbridge mcp [config])",
				 c->argv[0]);
	if ((r = cli_state_dir(c)))
		return r;
	return mcp_serve(cli_app(c), c->profile);
}

int main(int argc, char **argv)
{
	struct cli c = {0};
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	char **args = argv;
	char *open_argv[argc + 2];
	if (strcmp(base, "devbridge-open") == 0) {
		open_argv[0] = argv[0];
		open_argv[1] = "open";
		for (int i = 1; i < argc; i++)
			open_argv[i + 1] = argv[i];
		open_argv[argc + 1] = NULL;
		args = open_argv;
		argc++;
	}
	int code = cli_parse(&c, argc, args);
	if (code == 0)
		code = c.command && strcmp(c.command, "mcp") == 0 && !c.help ? run_mcp(&c)
									     : cli_run(&c);
	cli_free(&c);
	fflush(stdout);
	return code;
}
