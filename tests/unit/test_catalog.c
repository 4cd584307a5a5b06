/* test_catalog.c - the OpsCatalog loader (app/catalog.h): the fixture's
 * bridges become tunnels with their target's connection, and each rule
 * across files (ids, targets, actors, ports, names, shadowing, the tree's
 * bounds and links) is reported at the right file, line and column. */
#include "app/catalog.h"
#include "app/config.h"
#include "core/util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

#define VALID SRCDIR "/tests/catalogs/valid/"

static char root[PATH_MAX]; /* this run's scratch directory */

/* Write root/rel (making its directories). */
static void put(const char *rel, const char *text)
{
	char path[PATH_MAX * 2];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", root, rel);
	for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(path, 0700);
		*p = '/';
	}
	ASSERT((f = fopen(path, "w")));
	fputs(text, f);
	fclose(f);
}

static char *at(const char *rel)
{
	static char buf[4][PATH_MAX * 2];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", root, rel);
	return buf[i];
}

static void fresh(void)
{
	char cmd[PATH_MAX + 16];

	if (root[0]) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
		ASSERT_EQ(system(cmd), 0);
	}
	snprintf(root, sizeof root, "/tmp/test-catalog-XXXXXX");
	ASSERT(mkdtemp(root));
}

/* A config with actor `a` and catalog_path c, plus `extra`, and a catalog
 * with domain d and target t (host h, user u, key /k). */
static void base(const char *extra)
{
	char cfg[2048];

	fresh();
	snprintf(cfg, sizeof cfg, "catalog_path: c\nactors:\n  a: {class: human}\n%s", extra);
	put("config.yaml", cfg);
	put("c/domains/d/domain.yaml", "description: dee\nowner: me\n");
	put("c/domains/d/targets/t.yaml", "host: h\nssh_user: u\nssh_key: /k\n");
}

static const char *B = "target: t\nremote_port: 18000\nlocal_port: 8000\nactor: a\n";

static struct cfg *load_ok(void)
{
	struct cfg_diags d = {0};
	struct cfg *cfg = NULL;
	int r = cfg_load(at("config.yaml"), &cfg, &d);

	if (r)
		fprintf(stderr, "unexpected: %s:%d:%d: %s\n", d.items[0].mark.file,
			d.items[0].mark.line, d.items[0].mark.col, d.n ? d.items[0].msg : "-");
	ASSERT_EQ(r, 0);
	cfg_diags_clear(&d);
	return cfg;
}

static void load_bad(struct cfg_diags *d)
{
	struct cfg *cfg = NULL;

	ASSERT_EQ(cfg_load(at("config.yaml"), &cfg, d), -EINVAL);
	ASSERT(!cfg);
	ASSERT_GE(d->n, 1);
}

/* The diagnostic of file rel (of root) containing `needle`, at line:col. */
static void expect(const struct cfg_diags *d, const char *needle, const char *rel, int line,
		   int col)
{
	for (size_t i = 0; i < d->n; i++) {
		if (!strstr(d->items[i].msg, needle) || strcmp(d->items[i].mark.file, at(rel)) != 0)
			continue;
		if (d->items[i].mark.line != line || d->items[i].mark.col != col)
			fprintf(stderr, "at %d:%d: %s\n", d->items[i].mark.line,
				d->items[i].mark.col, d->items[i].msg);
		ASSERT_EQ(d->items[i].mark.line, line);
		ASSERT_EQ(d->items[i].mark.col, col);
		return;
	}
	for (size_t i = 0; i < d->n; i++)
		fprintf(stderr, "  have: %s:%d:%d: %s\n", d->items[i].mark.file,
			d->items[i].mark.line, d->items[i].mark.col, d->items[i].msg);
	TEST_FAIL_("no diagnostic contains \"%s\"", needle);
}

static void expect_one(const char *needle, const char *rel, int line, int col)
{
	struct cfg_diags d = {0};

	load_bad(&d);
	if (d.n != 1)
		expect(&d, "(exactly one diagnostic)", rel, line, col);
	expect(&d, needle, rel, line, col);
	cfg_diags_clear(&d);
}

/* ---- the fixture ------------------------------------------------------ */

static void test_valid_fixture(void)
{
	struct cfg_diags d = {0};
	struct cfg *cfg = NULL;
	const struct cfg_tunnel *t;

	ASSERT_EQ(cfg_load(VALID "config.yaml", &cfg, &d), 0);
	ASSERT_EQ(cfg->n_tunnels, 3);
	/* domains sorted, then ids: lab's two, then ops' */
	ASSERT_STR_EQ(cfg->tunnels[0].name, "edge-metrics");
	ASSERT_STR_EQ(cfg->tunnels[1].name, "jupyter");
	ASSERT_STR_EQ(cfg->tunnels[2].name, "state-hub");

	t = cfg_find_tunnel(cfg, "state-hub");
	ASSERT_STR_EQ(t->catalog_domain, "ops");
	ASSERT_STR_EQ(t->catalog_file, VALID "catalog/domains/ops/bridges/state-hub.yaml");
	ASSERT_STR_EQ(t->mark.file, t->catalog_file);
	ASSERT_EQ(t->mark.line, 1);
	/* the target's half */
	ASSERT_STR_EQ(t->host, "hub.example.internal");
	ASSERT_STR_EQ(t->ssh_user, "ubuntu");
	ASSERT_EQ(t->ssh_port, 2222);
	ASSERT_STR_CONTAINS(t->ssh_key, "/.ssh/id_ops");
	ASSERT_STR_EQ(t->ssh_key_mark.file, VALID "catalog/domains/ops/targets/hub.yaml");
	ASSERT_EQ(t->ssh_key_mark.line, 5);
	ASSERT_EQ(t->server_alive_interval, 15);
	/* the bridge's */
	ASSERT_EQ(t->direction, TUNNEL_REVERSE);
	ASSERT_EQ(t->remote_port, 18000);
	ASSERT_EQ(t->local_port, 8000);
	ASSERT_EQ(t->local_port_mark.line, 5);
	ASSERT_STR_EQ(t->remote_host, "127.0.0.1");
	ASSERT_STR_EQ(t->actor, "agent.claude");
	ASSERT_EQ(t->health.kind, HEALTH_HTTP);
	ASSERT_STR_EQ(t->health.url, "http://127.0.0.1:8000/health");

	t = cfg_find_tunnel(cfg, "edge-metrics"); /* target: ops/edge, from lab */
	ASSERT_STR_EQ(t->catalog_domain, "lab");
	ASSERT_STR_EQ(t->host, "edge.example.internal");
	ASSERT_EQ(t->ssh_port, 0);
	ASSERT_EQ(t->health.kind, HEALTH_TCP);
	ASSERT_EQ(cfg_find_tunnel(cfg, "jupyter")->direction, TUNNEL_LOCAL);
	ASSERT_EQ(cfg_lint(cfg, &d), 0); /* health checks aimed at local ports */
	cfg_diags_clear(&d);
	cfg_free(cfg);

	/* Without its catalog: the config alone. */
	ASSERT_EQ(cfg_load_flags(VALID "config.yaml", CFG_LOAD_NO_CATALOG, &cfg, &d), 0);
	ASSERT_EQ(cfg->n_tunnels, 0);
	ASSERT(!cfg->catalog);
	cfg_free(cfg);
	cfg_diags_clear(&d);
}

/* ---- targets ---------------------------------------------------------- */

static void test_target_references(void)
{
	struct cfg *cfg;

	/* DOMAIN/ID, and a plain id across domains */
	base("");
	put("c/domains/e/domain.yaml", "");
	put("c/domains/e/targets/far.yaml",
	    "host: far\nssh_user: u\nssh_key: /k\nssh_port: 2022\n");
	put("c/domains/d/bridges/x.yaml",
	    "target: e/far\nremote_port: 18000\nlocal_port: 8000\nactor: a\n");
	put("c/domains/d/bridges/y.yaml",
	    "target: far\nremote_port: 18001\nlocal_port: 8000\nactor: a\n");
	cfg = load_ok();
	ASSERT_EQ(cfg->n_tunnels, 2);
	ASSERT_STR_EQ(cfg_find_tunnel(cfg, "x")->host, "far");
	ASSERT_EQ(cfg_find_tunnel(cfg, "y")->ssh_port, 2022);
	cfg_free(cfg);

	/* DOMAIN/ID names that domain only */
	base("");
	put("c/domains/d/bridges/x.yaml", "target: e/t\nremote_port: 1\nlocal_port: 2\nactor: a\n");
	expect_one("target: unknown target 'e/t'", "c/domains/d/bridges/x.yaml", 1, 9);

	/* a target a bridge uses needs ssh_user and ssh_key */
	base("");
	put("c/domains/d/targets/bare.yaml", "host: bare\n");
	put("c/domains/d/bridges/x.yaml",
	    "target: bare\nremote_port: 1\nlocal_port: 2\nactor: a\n");
	expect_one("target: target 'bare' (", "c/domains/d/bridges/x.yaml", 1, 9);
	/* ... but one nothing uses is fine */
	base("");
	put("c/domains/d/targets/bare.yaml", "host: bare\n");
	cfg_free(load_ok());

	/* a duplicate target resolves in the bridge's own domain: one
	 * diagnostic (the duplicate), not a second about the bridge */
	base("");
	put("c/domains/e/domain.yaml", "");
	put("c/domains/e/targets/t.yaml", "host: other\nssh_user: u\nssh_key: /k\n");
	put("c/domains/e/bridges/x.yaml", B);
	expect_one("duplicate target id 't': also in domain 'd'", "c/domains/e/targets/t.yaml", 1,
		   1);
}

/* ---- bridges ---------------------------------------------------------- */

static void test_bridge_fields(void)
{
	struct cfg_diags d = {0};

	/* the tunnel table's checks, in a bridge's file */
	base("");
	put("c/domains/d/bridges/x.yaml", "target: t\nremote_port: 18000\nlocal_port: 8000\n"
					  "actor: a\nreconnect:\n  backoff_initial: 9\n"
					  "  backoff_max: 2\nhealth_check: {}\nhost: h\n");
	load_bad(&d);
	expect(&d, "backoff_max (2) must be >= backoff_initial (9)", "c/domains/d/bridges/x.yaml",
	       7, 16);
	expect(&d, "expected 'url' or 'tcp'", "c/domains/d/bridges/x.yaml", 8, 1);
	/* where ssh connects is the target's: said with the keys a bridge has */
	expect(&d, "unknown key 'host' (expected one of: target, remote_port, local_port, actor,",
	       "c/domains/d/bridges/x.yaml", 9, 1);
	cfg_diags_clear(&d);

	/* required keys, said without a path at a file's top level */
	base("");
	put("c/domains/d/bridges/x.yaml", "remote_port: 1\nlocal_port: 2\nactor: a\n");
	expect_one("missing required field 'target'", "c/domains/d/bridges/x.yaml", 1, 1);

	/* the target's: host's form, ssh_options' policy */
	base("");
	put("c/domains/d/targets/t.yaml", "host: me@h\nssh_user: u\nssh_key: /k\nssh_options:\n"
					  "  Port: 2222\n");
	load_bad(&d);
	expect(&d, "host 'me@h' names a user", "c/domains/d/targets/t.yaml", 1, 7);
	expect(&d, "ssh_options.Port would override the tunnel's own field: set ssh_port instead",
	       "c/domains/d/targets/t.yaml", 5, 3);
	cfg_diags_clear(&d);

	/* a relative ssh_key is the target file's neighbour */
	base("");
	put("c/domains/d/targets/t.yaml", "host: h\nssh_user: u\nssh_key: keys/id\ntags: [a, b]\n");
	put("c/domains/d/bridges/x.yaml", B);
	struct cfg *cfg = load_ok();
	ASSERT_STR_EQ(cfg->tunnels[0].ssh_key, at("c/domains/d/targets/keys/id"));
	cfg_free(cfg);
}

static void test_actor_and_names(void)
{
	base("");
	put("c/domains/d/bridges/x.yaml",
	    "target: t\nremote_port: 1\nlocal_port: 2\nactor: nobody\n");
	expect_one("actor: unknown actor 'nobody': define it under 'actors:'",
		   "c/domains/d/bridges/x.yaml", 4, 8);

	base("");
	put("c/domains/d/bridges/host-daemon.yaml", B);
	expect_one("bridge id 'host-daemon' is reserved", "c/domains/d/bridges/host-daemon.yaml", 1,
		   1);

	base("");
	put("c/domains/d/bridges/api.default.80.yaml", B);
	expect_one("has the form connect gives its Kubernetes bridges",
		   "c/domains/d/bridges/api.default.80.yaml", 1, 1);

	base("services:\n  - {name: x, command: make run}\n");
	put("c/domains/d/bridges/x.yaml", B);
	expect_one("bridge id 'x' is taken by the service at", "c/domains/d/bridges/x.yaml", 1, 1);

	base("");
	put("c/domains/d/bridges/web.yaml", B);
	put("c/domains/d/bridges/bad name.yaml", B);
	expect_one("invalid bridge id 'bad name'", "c/domains/d/bridges/bad name.yaml", 0, 0);
}

static void test_ports(void)
{
	struct cfg_diags d = {0};

	/* two reverse bridges on one remote port of one sshd */
	base("");
	put("c/domains/d/bridges/x.yaml", B);
	put("c/domains/d/bridges/y.yaml",
	    "target: t\nremote_port: 18000\nlocal_port: 9000\nactor: a\n");
	expect_one("remote_port: port 18000 on h is already forwarded by bridge 'x'",
		   "c/domains/d/bridges/y.yaml", 2, 14);

	/* two reverse bridges may share a local_port: one service, two hosts */
	base("");
	put("c/domains/d/targets/t2.yaml", "host: h2\nssh_user: u\nssh_key: /k\n");
	put("c/domains/d/bridges/x.yaml", B);
	put("c/domains/d/bridges/y.yaml",
	    "target: t2\nremote_port: 18000\nlocal_port: 8000\nactor: a\n");
	cfg_free(load_ok());

	/* a bridge against an inline tunnel, on one local port */
	base("tunnels:\n  i:\n    host: h\n    ssh_user: u\n    ssh_key: /k\n    direction: local\n"
	     "    local_port: 5432\n    remote_port: 5432\n    actor: a\n");
	put("c/domains/d/bridges/x.yaml", "target: t\ndirection: local\nremote_port: 5432\n"
					  "local_port: 5432\nactor: a\n");
	load_bad(&d);
	ASSERT_EQ(d.n, 1);
	ASSERT_STR_CONTAINS(d.items[0].msg,
			    "local_port: port 5432 is already used by tunnel 'i' (");
	ASSERT_STR_CONTAINS(d.items[0].msg, "config.yaml:10)");
	cfg_diags_clear(&d);
}

static void test_inline_wins(void)
{
	struct cfg_diags w = {0};
	struct cfg *cfg;

	base("tunnels:\n  x:\n    host: elsewhere\n    ssh_user: u\n    ssh_key: /k\n"
	     "    local_port: 8000\n    remote_port: 18000\n    actor: a\n");
	put("c/domains/d/bridges/x.yaml", B);
	put("c/domains/d/bridges/y.yaml",
	    "target: t\nremote_port: 18001\nlocal_port: 8000\nactor: a\n");
	cfg = load_ok();
	ASSERT_EQ(cfg->n_tunnels, 2);
	ASSERT_STR_EQ(cfg_find_tunnel(cfg, "x")->host, "elsewhere");
	ASSERT(!cfg_find_tunnel(cfg, "x")->catalog_file);
	ASSERT_STR_EQ(cfg_find_tunnel(cfg, "y")->catalog_file, at("c/domains/d/bridges/y.yaml"));
	ASSERT_EQ(cfg_lint(cfg, &w), 1);
	ASSERT_STR_EQ(w.items[0].mark.file, at("config.yaml"));
	ASSERT_EQ(w.items[0].mark.line, 5);
	ASSERT_EQ(w.items[0].mark.col, 3);
	ASSERT_STR_CONTAINS(w.items[0].msg,
			    "tunnel 'x' shadows the catalog bridge of the same name");
	ASSERT_STR_CONTAINS(w.items[0].msg, "c/domains/d/bridges/x.yaml:1:1)");
	cfg_diags_clear(&w);
	cfg_free(cfg);
}

/* ---- the tree --------------------------------------------------------- */

static void test_tree(void)
{
	struct cfg_diags d = {0};

	/* links are not followed, strays named, dotfiles and domain notes left */
	base("");
	put("c/domains/d/bridges/x.yaml", B);
	put("c/domains/d/bridges/.gitkeep", "");
	put("c/domains/d/bridges/x.yml", B);
	put("c/domains/d/README.md", "notes\n");
	put("outside.yaml", B);
	ASSERT_EQ(symlink(at("outside.yaml"), at("c/domains/d/bridges/z.yaml")), 0);
	ASSERT_EQ(symlink(at("c/domains/d"), at("c/domains/linked")), 0);
	load_bad(&d);
	ASSERT_EQ(d.n, 3);
	expect(&d, "not a .yaml file", "c/domains/d/bridges/x.yml", 0, 0);
	expect(&d, "a symbolic link: not followed", "c/domains/d/bridges/z.yaml", 0, 0);
	expect(&d, "a symbolic link: not followed", "c/domains/linked", 0, 0);
	cfg_diags_clear(&d);

	/* a domain needs its domain.yaml; domains/ must exist */
	base("");
	ASSERT_EQ(unlink(at("c/domains/d/domain.yaml")), 0);
	expect_one("missing: every domain has its domain.yaml", "c/domains/d/domain.yaml", 0, 0);
	base("");
	char cmd[PATH_MAX * 2 + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", at("c/domains"));
	ASSERT_EQ(system(cmd), 0);
	expect_one("has no domains/ directory", "config.yaml", 1, 15);

	/* bounds: domains */
	base("");
	for (int i = 0; i <= CATALOG_MAX_DOMAINS; i++) {
		char rel[64];
		snprintf(rel, sizeof rel, "c/domains/x%03d/domain.yaml", i);
		put(rel, "");
	}
	expect_one("more than 256 domains: the first 256 are read", "c/domains", 0, 0);
}

/* A catalog is data: nothing in it may make ssh run a command or load
 * code (docs/catalog.md, "Trust"); the user's own config may. */
static void test_trust(void)
{
	static const char *const refused[] = {
	    "ProxyCommand",
	    "proxycommand",
	    "KnownHostsCommand",
	    "LocalCommand",
	    "PermitLocalCommand",
	    "XAuthLocation",
	    "PKCS11Provider",
	    "SmartcardDevice",
	    "SecurityKeyProvider",
	    "Match",
	    "INCLUDE",
	    "ForwardAgent",
	    "forwardx11",
	    "ForwardX11Trusted",
	};
	struct cfg_diags d = {0};
	char text[512], want[128];

	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		base("");
		snprintf(text, sizeof text,
			 "host: h\nssh_user: u\nssh_key: /k\nssh_options:\n  ProxyJump: gw\n"
			 "  %s: x\n",
			 refused[i]);
		put("c/domains/d/targets/t.yaml", text);
		snprintf(want, sizeof want, "ssh_options.%s: refused in a catalog: ", refused[i]);
		expect_one(want, "c/domains/d/targets/t.yaml", 6, 3);
		load_bad(&d);
		ASSERT_STR_CONTAINS(d.items[0].msg, "never code run as you");
		if (i == 0) /* and where it goes instead */
			ASSERT_STR_CONTAINS(d.items[0].msg,
					    "set it in a tunnel of your own config or in "
					    "~/.ssh/config, which you control, or use ProxyJump");
		cfg_diags_clear(&d);
	}
	base("");
	put("c/domains/d/targets/t.yaml", "host: h\nssh_user: u\nssh_key: /k\n"
					  "ssh_config: ~/ops/ssh_config\n");
	expect_one("ssh_config: refused in a catalog: ssh reads the file (-F) as its config",
		   "c/domains/d/targets/t.yaml", 4, 13);

	/* ProxyJump runs only ssh; the config's own tunnel keeps the rest */
	base("tunnels:\n  mine:\n    host: h\n    remote_port: 1\n    local_port: 2\n"
	     "    ssh_user: u\n    ssh_key: /k\n    actor: a\n    ssh_config: /etc/x\n"
	     "    ssh_options: {ProxyCommand: nc %h %p, KnownHostsCommand: /bin/true}\n");
	put("c/domains/d/targets/t.yaml", "host: h\nssh_user: u\nssh_key: /k\n"
					  "ssh_options: {ProxyJump: gw}\n");
	put("c/domains/d/bridges/x.yaml", B);
	struct cfg *cfg = load_ok();
	ASSERT_EQ(cfg->n_tunnels, 2);
	ASSERT_STR_EQ(cfg->tunnels[0].ssh_options[0].key, "ProxyCommand");
	ASSERT_STR_EQ(cfg->tunnels[0].ssh_config, "/etc/x");
	ASSERT_STR_EQ(cfg->tunnels[1].ssh_options[0].key, "ProxyJump");
	cfg_free(cfg);
}

static void test_parse_file(void)
{
	struct cfg_diags d = {0};
	static const char t[] = "host: h\nssh_usr: u\n";

	ASSERT_EQ(catalog_parse_file(CATALOG_TARGET, "t.yaml", t, strlen(t), &d), -EINVAL);
	ASSERT_EQ(d.n, 1);
	ASSERT_STR_EQ(d.items[0].msg, "unknown key 'ssh_usr' (did you mean 'ssh_user'?)");
	cfg_diags_clear(&d);
	ASSERT_EQ(catalog_parse_file(CATALOG_DOMAIN, "domain.yaml", "owner: x\n", 9, &d), 0);
	ASSERT_EQ(catalog_parse_file(CATALOG_BRIDGE, "b.yaml", "[1]\n", 4, &d), -EINVAL);
	ASSERT_STR_CONTAINS(d.items[0].msg, "expected a mapping of a bridge's keys");
	cfg_diags_clear(&d);
}

int main(void)
{
	setenv("HOME", "/home/tester", 1);
	RUN(test_valid_fixture);
	RUN(test_target_references);
	RUN(test_bridge_fields);
	RUN(test_actor_and_names);
	RUN(test_ports);
	RUN(test_inline_wins);
	RUN(test_tree);
	RUN(test_trust);
	RUN(test_parse_file);
	if (root[0]) {
		char cmd[PATH_MAX + 16];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
		ASSERT_EQ(system(cmd), 0);
	}
	return 0;
}
