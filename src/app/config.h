/* config.h - devbridge's configuration: the file found (SPEC §3 lookup
 * order), loaded into one validated, typed struct cfg.
 *
 * One file is the union of the seeds' (SPEC §3): ops-bridge `tunnels:`/
 * `actors:`/`catalog_path:`, devx `bridge:`/`profiles:`/`services:`, dbr
 * `container:`.  Each world declares its sections' schema
 * (ssh/ssh_config.h, k8s/k8s_config.h, container/container_config.h) and
 * core/schema.h does the reading; this layer composes them and checks what
 * spans worlds: bridge names are one namespace, since tunnels, services
 * and connect's Kubernetes bridges (SVC.NS.PORT) all key their files in
 * one state directory.  Every diagnostic carries file, line and column
 * (1-based) and says what was expected.
 */
#ifndef DEVBRIDGE_APP_CONFIG_H
#define DEVBRIDGE_APP_CONFIG_H

#include "container/container_config.h"
#include "core/schema.h"
#include "k8s/k8s_config.h"
#include "ssh/ssh_config.h"

#include <stdbool.h>
#include <stddef.h>

struct cfg {
	char *path; /* the file loaded (owned); marks point here */
	struct cfg_tunnel *tunnels;
	size_t n_tunnels;
	struct cfg_actor *actors;
	size_t n_actors;
	char *catalog_path; /* ~ expanded, or NULL */
	struct cfg_mark catalog_path_mark;
	/* The OpsCatalog read at catalog_path (app/catalog.h), whose bridges
	 * are in tunnels after the config's own (cfg_load). */
	struct catalog *catalog;
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

/* cfg_load_buf on the contents of `path`, then its OpsCatalog when it has
 * a catalog_path (app/catalog.h): the catalog's bridges join the tunnels,
 * and its diagnostics (every file's) are the config's: an invalid catalog
 * is an invalid config.  cfg_load_buf reads no other file.  An
 * unreadable file is one diagnostic at line 0 and returns -errno. */
int cfg_load(const char *path, struct cfg **ret, struct cfg_diags *diags);
/* The same, with CFG_LOAD_NO_CATALOG: the config alone, catalog_path not
 * read (`catalog validate` reads it itself, to report all of it). */
#define CFG_LOAD_NO_CATALOG 1u
int cfg_load_flags(const char *path, unsigned flags, struct cfg **ret, struct cfg_diags *diags);

/* Checks that need the file system, for commands that start tunnels
 * (see ssh_config_check_files).  Restricted to `only` when not NULL.
 * Returns 0 or -EINVAL with diagnostics at the offending key. */
int cfg_check_files(const struct cfg *cfg, const struct cfg_tunnel *only, struct cfg_diags *diags);

/* Warnings about a config that loaded: what is valid but probably not what
 * was meant (see ssh_config_lint), and catalog bridges an inline tunnel
 * shadows (catalog_lint).  Appended to `warnings` (file, line,
 * column); returns how many. */
size_t cfg_lint(const struct cfg *cfg, struct cfg_diags *warnings);

/* Free a config; NULL is a no-op. */
void cfg_free(struct cfg *cfg);

/* Lookups; NULL when absent. */
const struct cfg_tunnel *cfg_find_tunnel(const struct cfg *cfg, const char *name);
const struct cfg_actor *cfg_find_actor(const struct cfg *cfg, const char *name);
const struct cfg_service *cfg_find_service(const struct cfg *cfg, const char *name);
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

#endif
