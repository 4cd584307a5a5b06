/* session.h - the Kubernetes session files (SPEC §4-5, seed 000):
 * `session.json` (what is bridged) and `bridge.env` (BRIDGE_<SVC>_URL,
 * _HOST, _PORT per forward), both derived from the state files of the live
 * k8s bridges in the state directory, so they can never disagree with
 * what is actually running.
 *
 * Variable names: the service name upper-cased, every other character than
 * A-Z and 0-9 made '_'.  When two forwards would get the same name (the
 * same service in two namespaces, or two ports of one service) none of
 * them keeps the short name: each is qualified by namespace
 * (BRIDGE_<NS>_<SVC>), then by port (..._<PORT>), never overwritten. */
#ifndef DEVBRIDGE_K8S_SESSION_H
#define DEVBRIDGE_K8S_SESSION_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct k8s_entry {
	char name[80];
	char service[256], namespace[256];
	int remote_port, local_port, requested_port;
	char state[24];
	long pid; /* the supervisor's */
	char started_at[40], origin[24];
	char connected_at[40]; /* the last connection; "" = never connected */
	char pod[254];	       /* the pod forwarded to; "" = none now */
	int target_port;       /* its port */
	char kubeconfig[PATH_MAX], context[256];
	char env[600]; /* "BRIDGE_PAYMENTS_API" (without _URL) */
};

/* Whether an entry's variables are exported (bridge.env, env, shell): it
 * is connected or degraded, or reconnecting after it had connected (a pod
 * being replaced keeps the variables of its stable local port).  A bridge
 * that never connected, or that failed or stopped, exports nothing. */
bool k8s_entry_exported(const struct k8s_entry *e);

/* The live k8s bridges in `dir` (their supervisor holds the lock), and
 * with `dead` also those whose state file outlived their supervisor (pid
 * 0), sorted by name, with env names assigned.  *ret is malloc'd (NULL when
 * none). */
int k8s_session_list(const char *dir, bool dead, struct k8s_entry **ret, size_t *ret_n);

/* Assign e->env for every entry (pure; see the rules above). */
void k8s_env_names(struct k8s_entry *v, size_t n);

/* Rewrite session.json and bridge.env (0600, atomically) from the live
 * bridges; removes both when there are none.  Serialised by a lock file so
 * concurrent supervisors cannot lose each other's update.  A supervisor
 * passes its own bridge's name as `self` (NULL otherwise): it counts as
 * live without a probe (probing would drop its own lock, see state.h).
 * Waits for the lock: for the CLI and for a supervisor off its loop. */
int k8s_session_write(const char *dir, const char *self);
/* The same without waiting, for an event loop: -EWOULDBLOCK when another
 * writer holds the lock (try again later, from a timer). */
int k8s_session_try_write(const char *dir, const char *self);

/* For the CLI: when session.json still lists a bridge whose supervisor is
 * gone (killed without cleaning up), rewrite both files from the live
 * bridges, so no BRIDGE_* variable names a port nobody serves.  0, or
 * -errno from the rewrite. */
int k8s_session_prune(const char *dir);

/* Remove session.json and bridge.env. */
void k8s_session_remove(const char *dir);

enum env_format { ENV_SH = 0, ENV_FISH, ENV_DOTENV, ENV_JSON };

/* Parse "sh" | "fish" | "dotenv" | "json"; -EINVAL otherwise. */
int k8s_env_format_parse(const char *s, enum env_format *ret);

/* Print the variables of `v` in `fmt`.  ENV_DOTENV is bridge.env's text. */
void k8s_env_print(FILE *f, const struct k8s_entry *v, size_t n, enum env_format fmt);

/* The variables as a JSON object {"BRIDGE_X_URL": "...", ...}. */
json_t *k8s_env_json(const struct k8s_entry *v, size_t n);

/* One entry as session.json lists it. */
json_t *k8s_entry_json(const struct k8s_entry *e);

#endif
