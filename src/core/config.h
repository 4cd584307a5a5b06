/* config.h - devbridge configuration: YAML file -> validated, typed plan.
 *
 * One schema for the union of the seeds' files (SPEC §3): ops-bridge
 * `tunnels:`/`actors:`/`catalog_path:`, devx `bridge:`/`profiles:`/
 * `services:`, dbr `container:`.  Every diagnostic carries file, line and
 * column (1-based) and says what was expected; unknown keys get a
 * "did you mean" when a known key is close.
 */
#ifndef DEVBRIDGE_CORE_CONFIG_H
#define DEVBRIDGE_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* Where a value came from.  `file` points into the owning struct cfg. */
struct cfg_mark {
	const char *file;
	int line; /* 1-based; 0 = unknown */
	int col;  /* 1-based */
};

/* One diagnostic: "FILE:LINE:COL: MSG". */
struct cfg_diag {
	struct cfg_mark mark;
	char *msg;
};

/* Diagnostics collected by one load.  At most CFG_MAX_DIAGS are kept.
 * Marks point to `file`, so one cfg_diags describes one file: a load into a
 * cfg_diags that already holds diagnostics of another file keeps the first
 * name.  Zero-initialise before first use. */
#define CFG_MAX_DIAGS 32
struct cfg_diags {
	char *file; /* owned copy of the file name the marks point to */
	struct cfg_diag items[CFG_MAX_DIAGS];
	size_t n;
	size_t dropped; /* diagnostics past CFG_MAX_DIAGS */
};

enum tunnel_dir {
	TUNNEL_REVERSE = 0, /* ssh -R remote_port:remote_host:local_port */
	TUNNEL_LOCAL,	    /* ssh -L 127.0.0.1:local_port:remote_host:remote_port */
};

enum actor_class {
	ACTOR_HUMAN = 0,
	ACTOR_AUTOMATION,
};

enum health_kind {
	HEALTH_NONE = 0,
	HEALTH_HTTP, /* GET url, 2xx/3xx = ok */
	HEALTH_TCP,  /* connect(tcp_host:tcp_port) */
};

struct cfg_kv {
	char *key;
	char *value;
	struct cfg_mark mark;
};

struct cfg_health {
	enum health_kind kind;
	struct cfg_mark mark; /* of the url or tcp value */
	char *url;	      /* HEALTH_HTTP */
	char *tcp_host;	      /* HEALTH_TCP; default 127.0.0.1 */
	int tcp_port;	      /* HEALTH_TCP */
	int interval_s;	      /* default 30 */
	int timeout_s;	      /* default 5 */
};

struct cfg_tunnel {
	char *name;
	struct cfg_mark mark; /* of the tunnel's key */
	char *host;
	int ssh_port; /* 0 = ssh's default (22 or ssh_config) */
	char *ssh_user;
	char *ssh_key; /* ~ expanded */
	struct cfg_mark ssh_key_mark;
	int remote_port;
	struct cfg_mark remote_port_mark;
	int local_port;
	struct cfg_mark local_port_mark;
	char *remote_host; /* default "127.0.0.1" */
	enum tunnel_dir direction;
	char *actor;
	struct cfg_mark actor_mark;
	struct cfg_health health;
	/* reconnect: */
	int max_attempts;	/* 0 = forever; default 0 */
	double backoff_initial; /* seconds; default 5 */
	double backoff_max;	/* seconds; default 60 */
	double stable_s;	/* connected this long resets backoff; default 30 */
	/* keepalive through the encrypted channel: */
	int server_alive_interval;  /* default 15 */
	int server_alive_count_max; /* default 3 */
	char *ssh_config;	    /* -F FILE, ~ expanded, or NULL */
	struct cfg_mark ssh_config_mark;
	struct cfg_kv *ssh_options; /* -o Key=Value, in file order */
	size_t n_ssh_options;
};

struct cfg_actor {
	char *name;
	enum actor_class cls;
	char *description;
	struct cfg_mark mark;
};

/* container: (dbr, seed 002).  0 / NULL = not set: the daemons' own
 * defaults and command-line flags apply (flags win over the file). */
struct cfg_container {
	int control_port;
	int data_port;
	char *bind_addr;
	int scan_interval_ms;
	char *include_ports; /* "8000-8100,9000" (the list joined) */
	char *exclude_ports;
	char *exclude_process;
	bool no_auth;
	char *browser_cmd;
	struct {
		char **watch_paths; /* NULL-terminated */
		size_t n_watch_paths;
		int scan_interval_ms;
		int max_socket_forwards; /* -1 = not set */
		char *container_path_prefix;
	} socket_forwarding;
};

enum intercept_mode { INTERCEPT_STEAL = 0, INTERCEPT_MIRROR };

/* Longest values devbridge carries for Kubernetes; longer ones are refused
 * (file:line:col, or a usage error for a flag), never cut: a context name
 * cut short names another context. */
#define CFG_CONTEXT_MAX 255
#define CFG_PATH_MAX	4095 /* PATH_MAX - 1, e.g. bridge.kubeconfig once resolved */

struct cfg_target { /* bridge.targets[] and services[].bridge_target later */
	char *service;
	int port;
	char *namespace;      /* NULL = the bridge's namespace */
	int local_port;	      /* 0 = not set */
	struct cfg_mark mark; /* of the list item (its first key) */
};

struct cfg_intercept {
	char *service;
	int port; /* 0 = not set */
	enum intercept_mode mode;
	int local_port;	 /* 0 = not set */
	char *namespace; /* NULL = the bridge's namespace */
	struct cfg_mark mark;
};

/* bridge: (devx, seed 000), at the top level or in a profile. */
struct cfg_bridge {
	char *kubeconfig;  /* "~/" expanded, relative to the config file; NULL = not set */
	char *context;	   /* NULL = not set */
	char *namespace;   /* NULL = not set */
	char *agent_image; /* NULL = not set ("" is stored as "") */
	struct cfg_target *targets;
	size_t n_targets;
	bool targets_set; /* the key `targets:` was present (even if empty) */
	struct cfg_intercept *intercepts;
	size_t n_intercepts;
	bool intercepts_set;
};

/* services: (devx `up`, seed 000), in file order. */
enum service_runtime { SERVICE_BRIDGE = 0, SERVICE_HOST };
enum dep_condition { DEP_STARTED = 0, DEP_HEALTHY, DEP_COMPLETED };

struct cfg_dep {
	char *name;
	enum dep_condition condition; /* default service_started */
	struct cfg_mark mark;
};

struct cfg_service {
	char *name;
	enum service_runtime runtime; /* default host */
	struct cfg_target target;     /* bridge_target, when has_target */
	bool has_target;
	struct cfg_intercept intercept; /* bridge_intercept, when has_intercept */
	bool has_intercept;
	char **command; /* NULL-terminated; NULL = none */
	size_t n_command;
	bool command_shell; /* given as one string (for a shell), not a list */
	int port;	    /* 0 = not set */
	struct cfg_dep *depends_on;
	size_t n_depends_on;
	struct cfg_mark mark; /* of the list item */
};

struct cfg_profile {
	char *name;
	struct cfg_mark mark; /* of the profile's key */
	struct cfg_bridge bridge;
	bool has_bridge;
};

struct cfg {
	char *path; /* the file loaded (owned); marks point here */
	struct cfg_tunnel *tunnels;
	size_t n_tunnels;
	struct cfg_actor *actors;
	size_t n_actors;
	char *catalog_path; /* ~ expanded, or NULL */
	bool has_bridge, has_services, has_container;
	struct cfg_service *services; /* services:, for `config check` and `up` */
	size_t n_services;
	struct cfg_container container;
	struct cfg_bridge bridge;
	struct cfg_profile *profiles; /* in file order */
	size_t n_profiles;
};

/* Parse and validate `len` bytes of YAML named `name` (used in marks).
 * On success stores a new config in *ret and returns 0.  On a parse or
 * validation error returns -EINVAL and fills `diags` (which the caller
 * releases with cfg_diags_clear).  -ENOMEM on allocation failure. */
int cfg_load_buf(const char *name, const char *buf, size_t len, struct cfg **ret,
		 struct cfg_diags *diags);

/* cfg_load_buf on the contents of `path`.  An unreadable file is one
 * diagnostic at line 0 and returns -errno. */
int cfg_load(const char *path, struct cfg **ret, struct cfg_diags *diags);

/* Checks that need the file system, for commands that start tunnels:
 * each tunnel's ssh_key exists, is a readable regular file not readable by
 * group/other; ssh_config, if set, is readable.  Restricted to `only` when
 * not NULL.  Returns 0 or -EINVAL with diagnostics at the offending key. */
int cfg_check_files(const struct cfg *cfg, const struct cfg_tunnel *only, struct cfg_diags *diags);

/* Warnings about a config that loaded: what is valid but probably not what
 * was meant (a reverse tunnel's health check aimed at its remote_port,
 * which is on the remote host while checks run here).  Appended to
 * `warnings` (file, line, column); returns how many. */
size_t cfg_lint(const struct cfg *cfg, struct cfg_diags *warnings);

/* Append a diagnostic at `m` to `d`, for checks made outside the loader
 * (marks must point to the same file).  0 or -ENOMEM. */
int cfg_diag_add(struct cfg_diags *d, struct cfg_mark m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* NULL when absent. */
const struct cfg_service *cfg_find_service(const struct cfg *cfg, const char *name);

/* Names for messages and plans: "reverse", "human", "steal",
 * "bridge", "service_healthy". */
const char *cfg_direction_name(enum tunnel_dir d);
const char *cfg_class_name(enum actor_class c);
const char *cfg_mode_name(enum intercept_mode m);
const char *cfg_runtime_name(enum service_runtime r);
const char *cfg_condition_name(enum dep_condition c);

/* Free a config; NULL is a no-op. */
void cfg_free(struct cfg *cfg);

/* Release the messages held by diags and reset it to empty. */
void cfg_diags_clear(struct cfg_diags *diags);

/* Lookups; NULL when absent. */
const struct cfg_tunnel *cfg_find_tunnel(const struct cfg *cfg, const char *name);
const struct cfg_actor *cfg_find_actor(const struct cfg *cfg, const char *name);

/* NULL when absent. */
const struct cfg_profile *cfg_find_profile(const struct cfg *cfg, const char *name);

/* The bridge settings with profile `profile` (NULL = none) laid over the
 * top-level bridge: each string the profile sets wins; a targets/intercepts
 * list present in the profile replaces the base list.  *out is a shallow
 * copy pointing into cfg (valid while cfg lives; nothing to free).
 * -ENOENT when the profile does not exist. */
int cfg_bridge_resolve(const struct cfg *cfg, const char *profile, struct cfg_bridge *out);

/* Closest profile name for a "did you mean", or NULL. */
const char *cfg_profile_suggest(const struct cfg *cfg, const char *name);

/* Resolve which file to load (SPEC §3): `opt` (--config), then
 * $DEVBRIDGE_CONFIG, $BRIDGE_CONFIG, ./devbridge.yaml, ./devx.yaml,
 * ~/.config/devbridge/config.yaml, ~/.config/bridge/tunnels.yaml.  An
 * explicit path (opt or env) is returned even if missing, so the load
 * reports it; the implicit ones only if they exist.  Returns 0 and a
 * malloc'd path, or -ENOENT when no candidate exists.  A leading "~/" is
 * expanded; ./devbridge.yaml and ./devx.yaml come back absolute. */
int cfg_resolve_path(const char *opt, char **ret_path);

/* A valid bridge name: [A-Za-z0-9_][A-Za-z0-9._-]{0,63}.  Keeps names
 * from escaping the state directory. */
bool cfg_name_valid(const char *name);

/* Expand a leading "~/" with $HOME.  Returns malloc'd string or NULL. */
char *cfg_expand_home(const char *path);

/* Levenshtein distance, capped at `cap` (returns cap+1 beyond it). */
int cfg_edit_distance(const char *a, const char *b, int cap);

#endif
