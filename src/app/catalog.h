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

#include "core/errcode.h"

struct app;

/* `catalog list`: {catalog_path, domains:[{id, description, owner,
 * targets, bridges}]} (counts). */
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

#endif
