/* cli.h - the command layer: global options, output for people (tables)
 * and scripts (--json, one document on stdout, errors included), config
 * loading with diagnostics, and the command table.  Library code returns
 * errors; this layer turns them into one clear message and an exit code. */
#ifndef DEVBRIDGE_CLI_CLI_H
#define DEVBRIDGE_CLI_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "app/app.h"
#include "core/errcode.h"

struct cfg;
struct cfg_tunnel;

struct cli {
	/* global options (SPEC §2) */
	const char *config_opt;
	const char *state_dir_opt;
	const char *profile;
	bool json, yes, dry_run, no_color, help;
	bool no_catalog; /* load the config without its catalog (catalog validate) */
	int verbose;
	/* the command and its own arguments */
	const char *command;
	int argc;
	char **argv;
	const char *self; /* argv[0] as invoked */
	/* loaded on demand */
	struct cfg *cfg;
	char *config_path;
	char *state_dir;
	struct app app; /* what src/app's operations see: cli_app() */
};

struct cli_command {
	const char *name;
	int (*run)(struct cli *c);
	const char *usage;   /* "up [NAME...] [--foreground] [--timeout SECONDS]" */
	const char *summary; /* one line */
	const char *help;    /* options and details, may be NULL */
};

/* Parse argv into c.  Returns 0, or EXIT_USAGE after printing why. */
int cli_parse(struct cli *c, int argc, char **argv);
/* Run the parsed command; returns the process exit code. */
int cli_run(struct cli *c);
void cli_free(struct cli *c);

/* Report an error: human text on stderr, or the JSON envelope
 * {"error":{"code","name","message"}} on stdout.  Returns `code`. */
int cli_error(struct cli *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same envelope with extra members merged into the top-level object
 * (e.g. "bridges"); takes ownership of `extra` (may be NULL). */
int cli_error_json(struct cli *c, int code, json_t *extra, const char *message);

/* A command's --json result: `doc` as is when code is 0, else the error
 * envelope with `message` merged into it.  Takes ownership; returns code. */
int cli_json_result(struct cli *c, int code, json_t *doc, const char *message);

/* An operation's error, reported as cli_error would (returns its code). */
int cli_fail(struct cli *c, const struct err *e);

/* The operations' view of this command line: its config, config path and
 * state directory (load them first), verbosity, dry run. */
struct app *cli_app(struct cli *c);

/* Print one JSON document on stdout; takes ownership of `doc`. */
void cli_print_json(json_t *doc);

/* Load the config (once).  Returns 0 or EXIT_CONFIG after reporting every
 * diagnostic as FILE:LINE:COL: message. */
int cli_load_config(struct cli *c);
/* Report every diagnostic (FILE:LINE:COL: message on stderr, or the JSON
 * error envelope with "diagnostics"); returns EXIT_CONFIG. */
struct cfg_diags;
int cli_report_diags(struct cli *c, struct cfg_diags *d);
/* cfg_check_files with diagnostics reported; 0 or EXIT_CONFIG. */
int cli_check_files(struct cli *c, const struct cfg_tunnel *only);
/* Resolve and create the state directory.  0 or an exit code. */
int cli_state_dir(struct cli *c);

/* Simple option scanning for a command's own arguments.  Returns the
 * positional arguments (in place, compacted) count, or -1 after a usage
 * error was printed. */
struct cli_opt {
	const char *long_name; /* "--timeout" */
	char short_name;       /* 'n' or 0 */
	bool takes_value;
	const char **value; /* set when takes_value */
	bool *flag;	    /* set when !takes_value */
	/* Repeatable: each value is appended here (at most list_max). */
	const char **list;
	size_t *list_n;
	size_t list_max;
};
int cli_scan_opts(struct cli *c, const struct cli_opt *opts, size_t nopts);

/* In a supervisor process started by app_spawn_supervisor: log set-up,
 * and the ready pipe's fd (3), or -1 when there is none. */
int cli_supervisor_begin(struct cli *c);
/* Stay attached to supervisors started with `foreground`: return when
 * they have all exited (the first non-zero exit code), or stop them all on
 * SIGINT/SIGTERM (Ctrl+C) and return 0. */
int cli_run_foreground(struct cli *c, struct app_started *v, size_t n);
/* The status table (status, and what up/connect show). */
void cli_print_status_table(struct cli *c, json_t *rows);

/* An option's decimal value in [lo, hi]: 0, or -1 after a usage error
 * naming `opt` was reported. */
int cli_parse_uint(struct cli *c, const char *opt, const char *v, unsigned lo, unsigned hi,
		   unsigned *ret);

/* `v` (NULL = not given) of at most `max` bytes: 0, or EXIT_USAGE after an
 * error naming `opt`.  Over-long values are refused, never cut: a context
 * name cut at 255 bytes selects another context. */
int cli_check_length(struct cli *c, const char *opt, const char *v, size_t max);

/* Whether to use colour on stdout. */
bool cli_color(const struct cli *c);

/* Command implementations (one file per group). */
int cmd_up(struct cli *c);
int cmd_down(struct cli *c);
int cmd_restart(struct cli *c);
int cmd_status(struct cli *c);
int cmd_logs(struct cli *c);
int cmd_check(struct cli *c);
int cmd_supervise(struct cli *c);
int cmd_intercept_hold(struct cli *c);
int cmd_config(struct cli *c);
int cmd_doctor(struct cli *c);
int cmd_host_daemon(struct cli *c);
int cmd_container_daemon(struct cli *c);
int cmd_open(struct cli *c);
int cmd_ensure(struct cli *c);
int cmd_forward(struct cli *c);
int cmd_rbac(struct cli *c);
int cmd_connect(struct cli *c);
int cmd_intercept(struct cli *c);
int cmd_disconnect(struct cli *c);
int cmd_env(struct cli *c);
int cmd_shell(struct cli *c);
int cmd_k8s_forward(struct cli *c);
int cmd_agent(struct cli *c);
int cmd_unforward(struct cli *c);
int cmd_targets(struct cli *c);
int cmd_catalog(struct cli *c);
/* Like cli_load_config, but a missing config is an empty one (commands
 * that also serve the devcontainer world). */
int cli_load_config_optional(struct cli *c);

#endif
