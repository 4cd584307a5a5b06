/* cmd_catalog.c - `targets` and `catalog`: the OpsCatalog (app/catalog.h)
 * as tables and short lines, or its documents with --json. */
#include "cli/cli.h"
#include "app/catalog.h"
#include "core/diag.h"
#include "core/util.h"

#include <stdio.h>
#include <string.h>

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

/* "-" for an absent (null) or empty value. */
static const char *dash(const json_t *o, const char *key)
{
	const char *s = str(o, key);
	return *s ? s : "-";
}

static void print_tags(const json_t *row)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(row, "tags"), i, v)
	    printf("%s%s", i ? "," : "", json_string_value(v));
	if (!json_array_size(json_object_get(row, "tags")))
		printf("-");
}

/* An operation's result: its document (--json), or `human` of it. */
static int render(struct cli *c, int r, json_t *doc, const struct err *e,
		  void (*human)(const json_t *doc))
{
	if (r)
		return cli_fail(c, e);
	if (c->json) {
		cli_print_json(doc);
		return EXIT_OK;
	}
	human(doc);
	json_decref(doc);
	fflush(stdout);
	return EXIT_OK;
}

/* --- targets --- */

static void print_targets(const json_t *doc)
{
	const json_t *rows = json_object_get(doc, "targets");
	size_t i;
	json_t *t;

	if (!json_array_size(rows)) {
		printf("no targets in %s\n", str(doc, "catalog_path"));
		return;
	}
	printf("%-24s %-16s %-28s %-6s %s\n", "TARGET", "DOMAIN", "SSH", "PORT", "TAGS");
	json_array_foreach(rows, i, t)
	{
		char ssh[300];
		snprintf(ssh, sizeof ssh, "%s%s%s", *str(t, "ssh_user") ? str(t, "ssh_user") : "",
			 *str(t, "ssh_user") ? "@" : "", str(t, "host"));
		json_t *port = json_object_get(t, "ssh_port");
		printf("%-24s %-16s %-28s ", str(t, "id"), str(t, "domain"), ssh);
		if (json_is_integer(port))
			printf("%-6lld ", (long long)json_integer_value(port));
		else
			printf("%-6s ", "-");
		print_tags(t);
		printf("\n");
	}
}

static void print_target(const json_t *doc)
{
	const json_t *t = json_object_get(doc, "target"), *port = json_object_get(t, "ssh_port");
	size_t i;
	json_t *b;

	printf("%s (domain %s, %s)\n", str(t, "id"), str(t, "domain"), str(t, "file"));
	if (*str(t, "description"))
		printf("  %s\n", str(t, "description"));
	printf("  host:     %s\n", str(t, "host"));
	printf("  ssh_user: %s\n", dash(t, "ssh_user"));
	if (json_is_integer(port))
		printf("  ssh_port: %lld\n", (long long)json_integer_value(port));
	else
		printf("  ssh_port: - (ssh's default)\n");
	printf("  ssh_key:  %s\n", dash(t, "ssh_key"));
	printf("  tags:     ");
	print_tags(t);
	printf("\n  bridges:  ");
	json_array_foreach(json_object_get(t, "bridges"), i, b)
	    printf("%s%s", i ? ", " : "", json_string_value(b));
	printf("%s\n", json_array_size(json_object_get(t, "bridges")) ? "" : "-");
}

int cmd_targets(struct cli *c)
{
	const char *domain = NULL;
	const struct cli_opt opts[] = {{"--domain", 'd', true, &domain, NULL}};
	struct err e = {0};
	json_t *doc = NULL;
	int r;

	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	bool show = c->argc >= 1 && strcmp(c->argv[0], "show") == 0;
	if (show ? c->argc != 2 || domain : c->argc != 0)
		return cli_error(c, EXIT_USAGE,
				 "usage: devbridge targets [--domain DOMAIN] | targets show ID");
	if ((r = cli_load_config(c)))
		return r;
	if (show) {
		r = app_catalog_target(cli_app(c), c->argv[1], &doc, &e);
		return render(c, r, doc, &e, print_target);
	}
	r = app_catalog_targets(cli_app(c), domain, &doc, &e);
	return render(c, r, doc, &e, print_targets);
}

/* --- catalog --- */

static void print_domains(const json_t *doc)
{
	const json_t *rows = json_object_get(doc, "domains"),
		     *bridges = json_object_get(doc, "bridges");
	size_t i;
	json_t *d;

	printf("%s: %zu domain%s\n", str(doc, "catalog_path"), json_array_size(rows),
	       json_array_size(rows) == 1 ? "" : "s");
	if (json_array_size(rows))
		printf("\n%-20s %7s %7s  %-20s %s\n", "DOMAIN", "TARGETS", "BRIDGES", "OWNER",
		       "DESCRIPTION");
	json_array_foreach(rows, i, d)
	    printf("%-20s %7lld %7lld  %-20s %s\n", str(d, "id"),
		   (long long)json_integer_value(json_object_get(d, "targets")),
		   (long long)json_integer_value(json_object_get(d, "bridges")), dash(d, "owner"),
		   str(d, "description"));
	if (json_array_size(bridges))
		printf("\n%-24s %-16s %-20s %-8s %s\n", "BRIDGE", "DOMAIN", "TARGET", "DIRECTION",
		       "PORTS");
	json_array_foreach(bridges, i, d)
	{
		bool local = strcmp(str(d, "direction"), "local") == 0;
		printf("%-24s %-16s %-20s %-8s  %lld %s %lld%s\n", str(d, "id"), str(d, "domain"),
		       str(d, "target"), str(d, "direction"),
		       (long long)json_integer_value(json_object_get(d, "local_port")),
		       local ? "->" : "<-",
		       (long long)json_integer_value(json_object_get(d, "remote_port")),
		       json_is_true(json_object_get(d, "shadowed_by_inline"))
			   ? "  (shadowed by an inline tunnel)"
			   : "");
	}
}

static void print_bridge(const json_t *doc)
{
	const json_t *b = json_object_get(doc, "bridge"), *h = json_object_get(b, "health_check"),
		     *rc = json_object_get(b, "reconnect");
	bool local = strcmp(str(b, "direction"), "local") == 0;

	printf("%s (domain %s, %s)\n", str(b, "id"), str(b, "domain"), str(b, "file"));
	if (*str(b, "description"))
		printf("  %s\n", str(b, "description"));
	printf("  target:    %s/%s (%s)\n", str(b, "target_domain"), str(b, "target"),
	       str(b, "host"));
	if (local)
		printf("  forward:   local: 127.0.0.1:%lld here -> %s:%lld via %s\n",
		       (long long)json_integer_value(json_object_get(b, "local_port")),
		       str(b, "remote_host"),
		       (long long)json_integer_value(json_object_get(b, "remote_port")),
		       str(b, "host"));
	else
		printf("  forward:   reverse: port %lld on %s -> %s:%lld here\n",
		       (long long)json_integer_value(json_object_get(b, "remote_port")),
		       str(b, "host"), str(b, "remote_host"),
		       (long long)json_integer_value(json_object_get(b, "local_port")));
	printf("  actor:     %s\n", str(b, "actor"));
	if (json_object_get(h, "url"))
		printf("  health:    GET %s every %llds\n", str(h, "url"),
		       (long long)json_integer_value(json_object_get(h, "interval_seconds")));
	else if (json_object_get(h, "tcp_port"))
		printf("  health:    connect %s:%lld every %llds\n", str(h, "tcp_host"),
		       (long long)json_integer_value(json_object_get(h, "tcp_port")),
		       (long long)json_integer_value(json_object_get(h, "interval_seconds")));
	else
		printf("  health:    -\n");
	printf("  reconnect: max_attempts %lld, backoff %gs..%gs\n",
	       (long long)json_integer_value(json_object_get(rc, "max_attempts")),
	       json_real_value(json_object_get(rc, "backoff_initial")),
	       json_real_value(json_object_get(rc, "backoff_max")));
	if (json_is_true(json_object_get(b, "shadowed_by_inline")))
		printf("  shadowed:  by the inline tunnel at %s, which `up %s` runs\n",
		       str(b, "inline_tunnel"), str(b, "id"));
}

static void print_valid(const json_t *doc)
{
	printf("%s: valid (%lld domains, %lld targets, %lld bridges)\n", str(doc, "catalog_path"),
	       (long long)json_integer_value(json_object_get(doc, "domains")),
	       (long long)json_integer_value(json_object_get(doc, "targets")),
	       (long long)json_integer_value(json_object_get(doc, "bridges")));
}

/* Every diagnostic as FILE:LINE:COL: message on stderr, then the verdict;
 * with --json the document, its error merged in. */
static int validate(struct cli *c)
{
	struct err e = {0};
	json_t *doc = NULL;
	int r;

	/* The config alone: the catalog's problems are validate's output. */
	c->no_catalog = true;
	if ((r = cli_load_config(c)))
		return r;
	r = app_catalog_validate(cli_app(c), &doc, &e);
	if (!doc || c->json)
		return doc ? cli_json_result(c, r, doc, e.message) : cli_fail(c, &e);
	if (r == 0)
		return render(c, r, doc, &e, print_valid);
	size_t i;
	json_t *g;
	char line[CFG_DIAG_LINE_MAX];
	json_array_foreach(json_object_get(doc, "diagnostics"), i, g)
	{
		struct cfg_mark m = {str(g, "file"),
				     (int)json_integer_value(json_object_get(g, "line")),
				     (int)json_integer_value(json_object_get(g, "column"))};
		fprintf(stderr, "%s\n",
			cfg_diag_format(line, sizeof line, m, "%s", str(g, "message")));
	}
	long long more = json_integer_value(json_object_get(doc, "more_diagnostics"));
	if (more)
		fprintf(stderr, "(%lld more errors not shown)\n", more);
	fprintf(stderr, "devbridge: invalid catalog %s: %zu error%s\n", str(doc, "catalog_path"),
		json_array_size(json_object_get(doc, "diagnostics")) + (size_t)more,
		json_array_size(json_object_get(doc, "diagnostics")) + (size_t)more == 1 ? ""
											 : "s");
	json_decref(doc);
	return r;
}

int cmd_catalog(struct cli *c)
{
	static const char usage[] = "usage: devbridge catalog list | validate | show ID";
	struct err e = {0};
	json_t *doc = NULL;
	int r;

	if (cli_scan_opts(c, NULL, 0) < 0)
		return EXIT_USAGE;
	const char *sub = c->argc ? c->argv[0] : "";
	if (strcmp(sub, "validate") == 0 && c->argc == 1)
		return validate(c);
	if (!(strcmp(sub, "list") == 0 && c->argc == 1) &&
	    !(strcmp(sub, "show") == 0 && c->argc == 2))
		return cli_error(c, EXIT_USAGE, "%s", usage);
	if ((r = cli_load_config(c)))
		return r;
	if (strcmp(sub, "list") == 0) {
		r = app_catalog_domains(cli_app(c), &doc, &e);
		return render(c, r, doc, &e, print_domains);
	}
	r = app_catalog_bridge(cli_app(c), c->argv[1], &doc, &e);
	return render(c, r, doc, &e, print_bridge);
}
