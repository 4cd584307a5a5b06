/* app.h - devbridge's operations: start, stop, inspect and check bridges
 * of every kind, as data.  The layer between the renderers (src/cli: tables
 * and --json; src/mcp later: tool results) and the worlds (ssh, k8s,
 * container): curl's lib/ to their src/tool_*.
 *
 * Rules: nothing here prints.  An operation returns 0 or an exit code
 * (core/errcode.h) with `struct err` filled in, and its results as JSON
 * values the caller owns (the shapes `--json` documents: README).  Some
 * results come with the error (the bridges that did connect when one did
 * not): both are set then. */
#ifndef DEVBRIDGE_APP_APP_H
#define DEVBRIDGE_APP_APP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/errcode.h"

struct cfg;
struct cfg_tunnel;

/* What every operation works on: the loaded config (an empty one when no
 * file was found) and the state directory (resolved and created). */
struct app {
	struct cfg *cfg;
	const char *config_path; /* APP_NO_CONFIG when there is no file */
	const char *state_dir;
	int verbose; /* handed on to supervisors: -v, -vv */
	bool dry_run;
};

#define APP_NO_CONFIG "(no config)"

bool app_no_config(const struct app *a);

/* --- the config (config.c) --- */

struct cfg_diags;
/* Load the config at path (APP_NO_CONFIG: an empty one) with
 * cfg_load_flags' flags into *ret: 0, or EXIT_CONFIG with every
 * diagnostic in d (which the caller clears) and e app_config_error's
 * message; without a diagnostic, "PATH: why" (EXIT_ERROR: out of
 * memory). */
int app_load_config(const char *path, unsigned flags, struct cfg **ret, struct cfg_diags *d,
		    struct err *e);
/* An invalid config as every renderer reports it: EXIT_CONFIG, e
 * "invalid configuration: FILE:LINE:COL: message" (d's first
 * diagnostic), and *ret_diags (when not NULL) d as the --json envelope's
 * "diagnostics" (cfg_diags_json). */
int app_config_error(const struct cfg_diags *d, json_t **ret_diags, struct err *e);

/* --- bridges of every kind (bridge.c) --- */

/* One row of `status --json` for `name`; t is its tunnel, or NULL (the
 * state file tells the kind).  Liveness is the pid file's lock. */
json_t *app_status_row(const struct app *a, const char *name, const struct cfg_tunnel *t);

/* The tunnels named (all of them when n is 0).  An unknown name is
 * EXIT_UNKNOWN_BRIDGE, with a "did you mean" when one is close.  *ret is a
 * malloc'd array of pointers into a->cfg. */
int app_select_tunnels(const struct app *a, int n, char **names, const struct cfg_tunnel ***ret,
		       size_t *ret_n, struct err *e);

/* `status`: rows for the names given (tunnels, Kubernetes bridges by name
 * or service), or for everything (tunnels, containers, and bridges with
 * state left that the config does not list).  *ret_session: the live
 * Kubernetes session's header, or NULL. */
int app_status(const struct app *a, int n, char **names, json_t **ret_rows, json_t **ret_session,
	       struct err *e);

/* A supervisor process being started, and its first outcome. */
struct app_started {
	const struct cfg_tunnel *t; /* ssh tunnels; NULL otherwise */
	const char *name;
	pid_t pid;
	int fd; /* the ready pipe; -1 when none */
	char line[1200];
	size_t len;
	bool done;
	/* outcome */
	const char *result; /* connected | retrying | failed | already_running | timeout */
	int code;
	char message[1200];
};

/* Start this executable with argv[1...] (argv[0] is set to its path),
 * detached (its own session; output to STATE_DIR/NAME.out), with a ready
 * pipe on its fd 3; with `foreground` it dies with us.  0 or -errno. */
int app_spawn_supervisor(const struct app *a, struct app_started *s, char **argv, bool foreground);
/* The same with stdin_fd as its stdin (-1: /dev/null): a secret for it. */
int app_spawn_supervisor_stdin(const struct app *a, struct app_started *s, char **argv,
			       bool foreground, int stdin_fd);
/* Wait for each supervisor's first line on its ready pipe, or the deadline
 * (then result "timeout", EXIT_TIMEOUT). */
void app_wait_ready(struct app_started *v, size_t n, int timeout_s);
/* Stop NAME's supervisor (SIGTERM through a pidfd, SIGKILL after a grace
 * period); 1 if it was running, 0 if not, -errno on error. */
int app_stop_bridge(const struct app *a, const char *name);
/* The same, waiting up to wait_ms before the SIGKILL. */
int app_stop_bridge_wait(const struct app *a, const char *name, int wait_ms);

/* `down`: stop the named bridges (all running ones when n is 0); rows
 * {name, result: stopped|not running|cleaned up|error, message (an
 * error's)} (with dry_run {name, running, pid}).  EXIT_ERROR when one
 * could not be stopped. */
int app_down(const struct app *a, int n, char **names, json_t **ret_rows, struct err *e);

/* `logs`: the last n audit events of NAME (n <= 0: all). */
int app_logs(const struct app *a, const char *name, long n, json_t **ret_events, struct err *e);
/* Follow NAME's audit log from `from` (a byte offset; the size of the log
 * when the last app_logs read it: app_logs_size), calling cb for each new
 * event, across rotations, until cb returns false or reading fails.
 * Blocking: for a command, not for a loop. */
int app_logs_follow(const struct app *a, const char *name, off_t from,
		    bool (*cb)(json_t *ev, void *data), void *data, struct err *e);
off_t app_logs_size(const struct app *a, const char *name);

/* `check`: run each named bridge's health check now (tunnels: the
 * configured check; Kubernetes bridges: a connection through the forward)
 * and ask live supervisors to check too.  Rows {name, health, detail};
 * EXIT_HEALTH_FAILING when one fails. */
int app_check(const struct app *a, int n, char **names, json_t **ret_rows, struct err *e);

/* --- SSH tunnels (up.c) --- */

/* What `up` checks before anything runs: the tunnels named (all when n
 * is 0; an unknown name is app_select_tunnels' error) and the key and
 * config files of each (cfg_check_files): 0, or EXIT_CONFIG with the
 * first failing tunnel's diagnostics in d (which the caller clears) and
 * e app_config_error's message. */
int app_up_check(const struct app *a, int n, char **names, struct cfg_diags *d, struct err *e);
/* `up --dry-run`: [{name, argv}] of the ssh command lines. */
int app_up_plan(const struct app *a, int n, char **names, json_t **ret_plan, struct err *e);
/* `up`: start a supervisor for each named tunnel (all when n is 0) and
 * wait up to timeout_s for their first outcome.  Rows: the status row
 * plus result, code, message.  *ret_started (with foreground: the
 * supervisors to stay attached to; free it) may be NULL.  The first
 * non-zero code of a tunnel is returned (e says "not every bridge
 * connected"). */
int app_up(const struct app *a, int n, char **names, int timeout_s, bool foreground,
	   json_t **ret_rows, struct app_started **ret_started, size_t *ret_n, struct err *e);
/* `__supervise NAME`: run the tunnel's supervisor in this process. */
int app_supervise_tunnel(const struct app *a, const char *name, int ready_fd, struct err *e);

/* --- Kubernetes (connect.c) --- */

#define APP_MAX_TARGETS 64 /* targets of one connect */

/* What `connect` was asked for. */
struct app_connect_opts {
	const char *const *targets; /* -t specs; none: bridge.targets (profile applied) */
	size_t n_targets;
	const char *kubeconfig, *context, *namespace, *profile; /* NULL: not given */
	unsigned timeout_s, max_attempts, health_interval;
	uint64_t start_ms; /* --timeout counts from here (the command's start) */
};
#define APP_CONNECT_TIMEOUT_S	    60
#define APP_CONNECT_MAX_ATTEMPTS    4  /* seed 000: retries at 1 s, 2 s, 4 s, then fail */
#define APP_CONNECT_HEALTH_INTERVAL 30 /* seconds between probes through a forward */

struct app_kplan;
/* Resolve the kubeconfig and the context once, then every pre-check
 * (cluster, namespaces, services, endpoints, one session per state
 * directory): the plan, or the first failure (60-63, 68, 70, 1). */
int app_connect_plan(const struct app *a, const struct app_connect_opts *o, struct app_kplan **ret,
		     struct err *e);
void app_kplan_free(struct app_kplan *p);
/* `connect --dry-run`: {kubeconfig, context, bridges[{name, argv, pod, ready_pods}]} */
json_t *app_connect_dry_run(const struct app_kplan *p);
/* `connect`: a supervisor per target, waited for; *ret_doc is connect's
 * --json document {context, kubeconfig, namespace, session_file, env_file,
 * bridges[status row + result, code, message, env_prefix]}; *ret_started
 * as for app_up.  The first non-zero code of a target is returned. */
int app_connect(const struct app *a, struct app_kplan *p, bool foreground, json_t **ret_doc,
		struct app_started **ret_started, size_t *ret_n, struct err *e);
/* `__k8s-forward`: run one target's supervisor in this process. */
struct k8s_fwd;
int app_supervise_forward(const struct app *a, struct k8s_fwd *f, const char *name,
			  int max_attempts, unsigned health_interval, int ready_fd);

/* Rows of the Kubernetes bridges that answer to `name` (bridge name,
 * service, NS/SERVICE) and are not in rows yet: how many were added. */
size_t app_k8s_status_rows(const struct app *a, const char *name, json_t *rows);
/* The live session: {kubeconfig, context, started_at, bridges}, or NULL. */
json_t *app_k8s_session(const struct app *a);
/* A connection through a connected bridge's forward now: true when it
 * passed; detail says what happened. */
bool app_k8s_check_row(const struct app *a, json_t *row, char *detail, size_t n);

/* The bridges `disconnect` takes down: live standalone ones, and dead ones
 * whose state is left (a failure can be cleared). */
json_t *app_k8s_bridges(const struct app *a);
/* `disconnect`: stop them (those named, by name, service or NS/SERVICE;
 * all when n is 0) and the intercepts (app_intercept_disconnect), remove
 * their files, rewrite the session files.  Rows {name, result:
 * stopped|cleared|removed|error|would_stop|would_clear}. */
int app_disconnect(const struct app *a, int n, char **names, json_t **ret_rows, struct err *e);

struct k8s_entry;
/* The session's live entries, after taking out those whose supervisor
 * died without saying so. */
int app_k8s_entries(const struct app *a, struct k8s_entry **ret, size_t *ret_n, struct err *e);

/* --- Kubernetes: intercept (intercept.c) --- */

/* What `intercept` was asked for. */
struct app_intercept_opts {
	const char *service;	  /* NULL: the one entry of bridge.intercepts (profile applied) */
	int mode;		  /* enum intercept_mode, or -1: not given (a config entry's) */
	const char *const *ports; /* -p specs (PORT, NAME, PORT:LOCAL, NAME:LOCAL) */
	size_t n_ports;
	int local_port;		 /* 0: not given */
	const char *agent_image; /* NULL: bridge.agent_image, the default */
	const char *kubeconfig, *context, *namespace, *profile; /* NULL: not given */
	unsigned timeout_s;
	uint64_t start_ms; /* --timeout counts from here */
};
#define APP_INTERCEPT_TIMEOUT_S 60

/* What an intercept would do, validated against the cluster: the Service
 * as read (its resourceVersion), the ports with every targetPort a
 * number, a fresh session id and token, the objects to create and the
 * Service after the swap.  Nothing in the cluster is created or changed
 * by making it. */
struct app_iplan;
/* Resolve the kubeconfig and context, then validate touching nothing
 * (docs/intercept.md, "The CLI's order", step 1): 60-63, 72, 70, 69, 68
 * (every missing right named), 2 (ports that cannot be served), 3 (a bad
 * bridge.intercepts entry), 1.  *ret on success. */
int app_intercept_plan(const struct app *a, const struct app_intercept_opts *o,
		       struct app_iplan **ret, struct err *e);
void app_iplan_free(struct app_iplan *p);
/* The plan as a document: {dry_run, kubeconfig, context, namespace,
 * service, mode, session, image, resolved_from, ports[{port, name,
 * target_port, target_port_name, local_port}], objects[ServiceAccount,
 * Role, RoleBinding, Secret, Job], service_after, warnings[]}.  The
 * Secret's token is replaced by "REDACTED" with `redact`. */
json_t *app_intercept_describe(const struct app_iplan *p, bool redact);
/* Progress of a long operation: a step, a detail (may be NULL), the
 * milliseconds since it began.  The app layer never prints: the CLI
 * renders these (the MCP server can send notifications). */
typedef void (*app_progress_fn)(void *data, const char *step, const char *detail, unsigned ms);
/* `intercept` (steps 2-5 of docs/intercept.md): create the agent's
 * objects, wait for its pod (65 failed, 66 not Ready in time), swap the
 * selector (67), then tunnel in this process until SIGINT/SIGTERM or the
 * agent is gone (71); then restore the selector and delete the objects,
 * also after a failure of any step.  --steal only in this version (2 for
 * --mirror, nothing created).  *ret_doc: what ran. */
int app_intercept(const struct app *a, struct app_iplan *p, bool foreground,
		  app_progress_fn progress, void *pdata, json_t **ret_doc, struct err *e);

/* --- Kubernetes: intercept readiness, for doctor (intercept_ready.c) --- */

struct cfg_bridge;
/* Whether `intercept` could run in the cluster of bridge `b` (NULL: kubectl's
 * defaults): its kubeconfig and context (or the current one), the first
 * bridge.intercepts entry's namespace and Service, else bridge.namespace
 * (or the context's, or default) and any Service.  Appends rows {check,
 * ok, detail} to `rows`: "intercept rights" (every right intercept's
 * pre-checks ask for, by the same SelfSubjectAccessReviews) and "pod
 * security" (the namespace's pod-security.kubernetes.io/enforce level; the
 * agent meets restricted).  Changes nothing.  0; -EINVAL when the
 * kubeconfig or context cannot be resolved (one row says why); -ENOMEM. */
int app_intercept_ready(const struct cfg_bridge *b, json_t *rows);

/* Without `foreground` the tunnel is held by a detached process
 * (`__intercept NAME`, NAME "intercept-SVC") once the selector is
 * swapped: app_intercept returns when it is up ({name, pid, state,
 * detached: true, ...}), and that process restores and cleans up on
 * SIGTERM.  Either way NAME.state (kind "intercept") says what is held:
 * namespace, service, session, agent_pod, ports[{port, local_port}],
 * original_selector, state; `status` shows it, session.json lists it. */
void app_intercept_name(const char *service, char *buf, size_t n);
/* `__intercept NAME`: hold NAME's intercept (its state file, the token
 * read by the caller) in this process until SIGTERM, then restore the
 * selector and delete the objects; ready_fd gets the first outcome. */
int app_intercept_hold(const struct app *a, const char *name, const char *token, int ready_fd,
		       struct err *e);
/* Stop NAME's intercept: SIGTERM its process and wait for it (it
 * restores and cleans up); when that process is gone, restore (if the
 * Service still carries its session) and delete from the state file
 * here.  1 stopped, 0 cleaned up without it, -1 failed (e set). */
int app_intercept_stop(const struct app *a, const char *name, struct err *e);
/* The intercepts with a state file here, live or not (names, sorted as
 * the directory lists them). */
json_t *app_intercept_names(const struct app *a);
bool app_is_intercept(const struct app *a, const char *name);
/* Leftovers in namespace ns: sessions recorded here whose process is
 * gone, and sessions labelled app.kubernetes.io/managed-by=devbridge that
 * no process here holds and whose agent is gone (its Job finished, or no
 * Job and nothing newer than a minute): the Service restored if it still
 * carries the session's annotation, the objects deleted.  Each session id
 * removed is appended to `removed`.  0 or -EIO (kubectl failed). */
struct kctl;
int app_intercept_sweep(const struct app *a, const struct kctl *k, const char *ns,
			app_progress_fn progress, void *pdata, json_t *removed);
/* Leftovers everywhere this machine knows of: every namespace of an
 * intercept state file here (with its kubeconfig and context), and ns
 * with kube (when not NULL).  For disconnect and doctor --fix. */
int app_intercept_sweep_all(const struct app *a, const struct kctl *k, const char *ns,
			    json_t *removed);

/* disconnect's part for intercepts: stop those named (by name or
 * service; all when n is 0), then remove leftovers in every namespace an
 * intercept here was in.  Rows {name, kind: intercept|leftover, result:
 * stopped|cleared|removed|error|would_stop|would_clear} appended. */
int app_intercept_disconnect(const struct app *a, int n, char **names, json_t *rows, struct err *e);

/* --- containers (container.c) --- */

/* Rows of kind "container" from a live host daemon's state file. */
void app_container_rows(const struct app *a, json_t *rows);

/* --- each command's --json document (doc.c) ---
 *
 * One document, two renderers: the CLI prints it with --json, an MCP tool
 * returns it as structuredContent.  An exit code comes with e set to the
 * message the command's error envelope carries, and *ret_doc (when not
 * NULL) holding what did work, as that envelope carries it. */

/* `status`: {bridges, session} (session only with a live Kubernetes
 * session). */
int app_status_doc(const struct app *a, int n, char **names, json_t **ret_doc, struct err *e);
/* `up`: {bridges} of app_up's rows (the rest as app_up). */
int app_up_doc(const struct app *a, int n, char **names, int timeout_s, bool foreground,
	       json_t **ret_doc, struct app_started **ret_started, size_t *ret_n, struct err *e);
/* `down`, of app_down's code and rows (taken): {bridges}, an error row
 * with its message, without what only a terminal shows (a dry run's
 * pid).  Returns code. */
int app_down_doc(const struct app *a, int code, json_t *rows, json_t **ret_doc, struct err *e);
/* `logs NAME -n N`: {name, events}. */
int app_logs_doc(const struct app *a, const char *name, long n, json_t **ret_doc, struct err *e);
/* `check`: {checks}. */
int app_check_doc(const struct app *a, int n, char **names, json_t **ret_doc, struct err *e);
/* `connect`, of app_connect's document (taken, returned): without what
 * only a terminal shows (each row's target, exported). */
json_t *app_connect_doc(json_t *doc);
/* `disconnect`, of app_disconnect's code and rows (taken): {dry_run,
 * bridges}, an error row with its message.  Returns code. */
int app_disconnect_doc(const struct app *a, int code, json_t *rows, json_t **ret_doc,
		       struct err *e);
/* `env --format json`: {BRIDGE_...: value}. */
int app_env_doc(const struct app *a, json_t **ret_doc, struct err *e);

#endif
