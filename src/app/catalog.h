/* catalog.h - OpsCatalog (seed 003): infrastructure described once, in a
 * directory tree under `catalog_path`:
 *
 *   domains/<domain>/domain.yaml              description, owner
 *   domains/<domain>/targets/<target>.yaml    host, ssh_user, ssh_port, ...
 *   domains/<domain>/bridges/<bridge>.yaml    target, remote_port, ...
 *
 * read with the config's schema engine (core/schema.h), every diagnostic
 * FILE:LINE:COL.  A catalog bridge is a tunnel: cfg_load adds it to
 * cfg->tunnels unless an inline tunnel has its name (the inline one wins;
 * `config check` says so), so up/status/down/logs/check need nothing of
 * their own.  docs/catalog.md is the schema.
 *
 * The operations below are the renderers' (cli: tables and --json; mcp:
 * tool results): each returns 0 and its --json document, or an exit code
 * with e set.  No catalog_path in the config is EXIT_CONFIG ("the config
 * has no catalog_path"). */
#ifndef DEVBRIDGE_APP_CATALOG_H
#define DEVBRIDGE_APP_CATALOG_H

#include <jansson.h>
#include <stddef.h>

#include "core/errcode.h"

struct app;

/* `catalog list`: {catalog_path, domains:[{id, description, owner,
 * targets, bridges, file}] (counts), bridges:[{id, domain, target,
 * direction, local_port, remote_port, shadowed_by_inline}]}.  Every
 * operation reads the catalog afresh; an invalid one is EXIT_CONFIG (the
 * first diagnostic in e) but for validate.  An unknown domain or target
 * is EXIT_NOT_IN_CATALOG, an unknown bridge EXIT_UNKNOWN_BRIDGE, each
 * with a "did you mean". */
int app_catalog_domains(const struct app *a, json_t **ret_doc, struct err *e);
/* `targets [--domain D]`: {catalog_path, targets:[{id, domain, host,
 * ssh_user, ssh_port, ssh_key, description, tags[]}]}; domain NULL: all. */
int app_catalog_targets(const struct app *a, const char *domain, json_t **ret_doc, struct err *e);
/* `targets show ID`: {target:{... as a row ..., file, bridges:[ids]}}. */
int app_catalog_target(const struct app *a, const char *id, json_t **ret_doc, struct err *e);
/* `catalog show ID`: {bridge:{id, domain, file, target, host, remote_port,
 * local_port, direction, actor, health_check, reconnect, shadowed_by_inline}}. */
int app_catalog_bridge(const struct app *a, const char *id, json_t **ret_doc, struct err *e);
/* `catalog validate`: {valid, catalog_path, domains, targets, bridges,
 * diagnostics:[{file, line, column, message}]}; EXIT_CONFIG (with the doc
 * too) when a diagnostic was found. */
int app_catalog_validate(const struct app *a, json_t **ret_doc, struct err *e);

/* ---- the catalog as cfg_load reads it (app/config.c) ----------------- */

/* Bounds: a catalog is a few dozen small files. */
#define CATALOG_MAX_DOMAINS 256
#define CATALOG_MAX_FILES   4096       /* targets and bridges, all domains */
#define CATALOG_MAX_BYTES   (64 << 20) /* all files; each at most SCHEMA_MAX_FILE */

struct cfg;
struct cfg_diags;
struct cfg_tunnel;
struct catalog;

/* Read the catalog at cfg->catalog_path and check it against cfg (its
 * actors, its own tunnels: those with no catalog_file, its services):
 * every diagnostic of every file into `diags`.  A new catalog in *ret,
 * filled as far as the files allowed even when diagnostics were found
 * (validate counts it); 0, -EINVAL (diagnostics) or -ENOMEM (*ret NULL). */
int catalog_read(const struct cfg *cfg, struct catalog **ret, struct cfg_diags *diags);
/* Move the bridges an inline tunnel does not shadow into cfg->tunnels
 * (after the config's own, marked with catalog_domain and catalog_file);
 * cfg takes cat (their marks point into it).  0 or -ENOMEM (cat is then
 * cfg's all the same). */
int catalog_merge(struct cfg *cfg, struct catalog *cat);
/* A warning for each catalog bridge an inline tunnel shadows, at the
 * tunnel, naming the bridge's file; returns how many. */
size_t catalog_lint(const struct catalog *cat, struct cfg_diags *warnings);
void catalog_free(struct catalog *cat);

/* One file's text, as catalog_read loads it (`file` names it in marks):
 * its diagnostics into diags; 0, -EINVAL or -ENOMEM.  Reads nothing else
 * and keeps nothing (the fuzz harness, tests). */
enum catalog_kind {
	CATALOG_DOMAIN = 0, /* domain.yaml */
	CATALOG_TARGET,	    /* targets/ID.yaml */
	CATALOG_BRIDGE,	    /* bridges/ID.yaml */
};
int catalog_parse_file(enum catalog_kind kind, const char *file, const char *buf, size_t len,
		       struct cfg_diags *diags);

/* A tunnel's health_check ({url|tcp_host, tcp_port, interval_seconds,
 * timeout_seconds} or null) and reconnect ({max_attempts, backoff_initial,
 * backoff_max, stable_seconds}), as config check and catalog show give them. */
json_t *app_tunnel_health_json(const struct cfg_tunnel *t);
json_t *app_tunnel_reconnect_json(const struct cfg_tunnel *t);

#endif
