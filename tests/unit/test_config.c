/* test_config.c - the YAML configuration loader: the seeds' examples load
 * unchanged with their defaults filled in, and each kind of mistake is
 * reported with the right words at the right line and column. */
#include "app/config.h"
#include "core/util.h"
#include "k8s/target.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

#define CONFIGS SRCDIR "/tests/configs/"
#define HOME	"/home/tester"

/* A valid tunnel t (lines 1-8) using actor a; tests append lines 9.. */
#define TUNNEL_T                                                                                   \
	"tunnels:\n"                                                                               \
	"  t:\n"                                                                                   \
	"    host: h.example.org\n"                                                                \
	"    remote_port: 18000\n"                                                                 \
	"    local_port: 8000\n"                                                                   \
	"    ssh_user: u\n"                                                                        \
	"    ssh_key: /k\n"                                                                        \
	"    actor: a\n"
#define ACTOR_A "actors:\n  a: {class: human}\n"

static struct cfg *load_str_ok(const char *yaml)
{
	struct cfg_diags d = {0};
	struct cfg *cfg = NULL;
	int r = cfg_load_buf("inline.yaml", yaml, strlen(yaml), &cfg, &d);

	if (r != 0)
		fprintf(stderr, "unexpected: %s:%d:%d: %s\n", d.file, d.items[0].mark.line,
			d.items[0].mark.col, d.n ? d.items[0].msg : "(no diagnostic)");
	ASSERT_EQ(r, 0);
	ASSERT_EQ(d.n, 0);
	ASSERT(cfg);
	cfg_diags_clear(&d);
	return cfg;
}

static struct cfg *load_file_ok(const char *name)
{
	struct cfg_diags d = {0};
	struct cfg *cfg = NULL;
	char path[PATH_MAX];
	int r;

	snprintf(path, sizeof path, "%s%s", CONFIGS, name);
	r = cfg_load(path, &cfg, &d);
	if (r != 0)
		fprintf(stderr, "unexpected: %s:%d:%d: %s\n", d.file, d.items[0].mark.line,
			d.items[0].mark.col, d.n ? d.items[0].msg : "(no diagnostic)");
	ASSERT_EQ(r, 0);
	ASSERT_EQ(d.n, 0);
	ASSERT_STR_EQ(cfg->path, path);
	cfg_diags_clear(&d);
	return cfg;
}

/* Loads that must fail with -EINVAL and leave *ret alone. */
static void load_str_bad(const char *yaml, size_t len, struct cfg_diags *d)
{
	struct cfg *cfg = (struct cfg *)0x1;

	ASSERT_EQ(cfg_load_buf("inline.yaml", yaml, len, &cfg, d), -EINVAL);
	ASSERT(cfg == (struct cfg *)0x1);
	ASSERT_GE(d->n, 1);
	ASSERT_STR_EQ(d->file, "inline.yaml");
}

static void load_file_bad(const char *name, struct cfg_diags *d)
{
	struct cfg *cfg = NULL;
	char path[PATH_MAX];

	snprintf(path, sizeof path, "%s%s", CONFIGS, name);
	ASSERT_EQ(cfg_load(path, &cfg, d), -EINVAL);
	ASSERT(!cfg);
	ASSERT_GE(d->n, 1);
	ASSERT_STR_EQ(d->file, path);
}

/* The diagnostic containing `needle`, checked to be at line:col. */
static void expect_diag(const struct cfg_diags *d, const char *needle, int line, int col)
{
	for (size_t i = 0; i < d->n; i++) {
		if (!strstr(d->items[i].msg, needle))
			continue;
		ASSERT_STR_EQ(d->items[i].mark.file, d->file);
		if (d->items[i].mark.line != line || d->items[i].mark.col != col)
			fprintf(stderr, "at %d:%d: %s\n", d->items[i].mark.line,
				d->items[i].mark.col, d->items[i].msg);
		ASSERT_EQ(d->items[i].mark.line, line);
		ASSERT_EQ(d->items[i].mark.col, col);
		return;
	}
	for (size_t i = 0; i < d->n; i++)
		fprintf(stderr, "  have %d:%d: %s\n", d->items[i].mark.line, d->items[i].mark.col,
			d->items[i].msg);
	TEST_FAIL_("no diagnostic contains \"%s\"", needle);
}

/* One inline config, exactly one diagnostic. */
static void expect_one(const char *yaml, const char *needle, int line, int col)
{
	struct cfg_diags d = {0};

	load_str_bad(yaml, strlen(yaml), &d);
	if (d.n != 1)
		for (size_t i = 0; i < d.n; i++)
			fprintf(stderr, "  have %d:%d: %s\n", d.items[i].mark.line,
				d.items[i].mark.col, d.items[i].msg);
	ASSERT_EQ(d.n, 1);
	expect_diag(&d, needle, line, col);
	cfg_diags_clear(&d);
}

static void assert_tunnel_defaults(const struct cfg_tunnel *t)
{
	ASSERT_EQ(t->ssh_port, 0);
	ASSERT_EQ(t->direction, TUNNEL_REVERSE);
	ASSERT_STR_EQ(t->remote_host, "127.0.0.1");
	ASSERT_EQ(t->max_attempts, 0);
	ASSERT(t->backoff_initial == 5);
	ASSERT(t->backoff_max == 60);
	ASSERT(t->stable_s == 30);
	ASSERT_EQ(t->server_alive_interval, 15);
	ASSERT_EQ(t->server_alive_count_max, 3);
	ASSERT(!t->ssh_config);
	ASSERT_EQ(t->n_ssh_options, 0);
	ASSERT_EQ(t->health.interval_s, 30);
	ASSERT_EQ(t->health.timeout_s, 5);
}

static void assert_state_hub(const struct cfg *cfg)
{
	const struct cfg_tunnel *t = cfg_find_tunnel(cfg, "state-hub-coulombcore");

	ASSERT_EQ(cfg->n_tunnels, 1);
	ASSERT(t == &cfg->tunnels[0]);
	ASSERT_STR_EQ(t->host, "coulombcore.local");
	ASSERT_EQ(t->remote_port, 18000);
	ASSERT_EQ(t->local_port, 8000);
	ASSERT_STR_EQ(t->ssh_user, "ubuntu");
	ASSERT_STR_EQ(t->ssh_key, HOME "/.ssh/id_ops");
	ASSERT_STR_EQ(t->actor, "agent.claude-coulombcore");
	ASSERT_EQ(t->mark.line, 2);
	ASSERT_EQ(t->mark.col, 3);
	ASSERT_STR_EQ(t->mark.file, cfg->path);
	ASSERT_EQ(t->ssh_key_mark.line, 7);
	ASSERT_EQ(t->ssh_key_mark.col, 14);
	ASSERT_EQ(t->local_port_mark.line, 5);
	ASSERT_EQ(t->local_port_mark.col, 17);
	ASSERT_EQ(t->remote_port_mark.line, 4);
	ASSERT_EQ(t->actor_mark.line, 8);
	assert_tunnel_defaults(t);

	const struct cfg_actor *a = cfg_find_actor(cfg, "agent.claude-coulombcore");
	ASSERT(a);
	ASSERT_EQ(a->cls, ACTOR_AUTOMATION);
	ASSERT_STR_EQ(a->description, "Claude Code agent on CoulombCore");
	ASSERT(!cfg->catalog_path);
	ASSERT(!cfg->has_bridge && !cfg->has_services && !cfg->has_container);
	ASSERT(!cfg_find_tunnel(cfg, "nope"));
	ASSERT(!cfg_find_actor(cfg, "nope"));
}

static void test_relative_paths(void)
{
	static const char y[] = "catalog_path: cat\n"
				"tunnels:\n"
				"  t:\n"
				"    host: h\n"
				"    remote_port: 1\n"
				"    local_port: 2\n"
				"    ssh_user: u\n"
				"    ssh_key: keys/id\n"
				"    ssh_config: /abs/cfg\n"
				"    actor: a\n"
				"actors:\n"
				"  a: {class: human}\n";
	struct cfg_diags d = {0};
	struct cfg *cfg = NULL;
	ASSERT_EQ(cfg_load_buf("/etc/devbridge/c.yaml", y, sizeof y - 1, &cfg, &d), 0);
	/* relative to the config file, absolute kept as is */
	ASSERT_STR_EQ(cfg->tunnels[0].ssh_key, "/etc/devbridge/keys/id");
	ASSERT_STR_EQ(cfg->tunnels[0].ssh_config, "/abs/cfg");
	ASSERT_STR_EQ(cfg->catalog_path, "/etc/devbridge/cat");
	cfg_free(cfg);
	/* a bare name has no directory to be relative to */
	ASSERT_EQ(cfg_load_buf("c.yaml", y, sizeof y - 1, &cfg, &d), 0);
	ASSERT_STR_EQ(cfg->tunnels[0].ssh_key, "keys/id");
	cfg_free(cfg);
	cfg_diags_clear(&d);
}

static void test_reserved_tunnel_name(void)
{
	static const char y[] = "tunnels:\n"
				"  host-daemon:\n"
				"    host: h\n"
				"    remote_port: 1\n"
				"    local_port: 2\n"
				"    ssh_user: u\n"
				"    ssh_key: /k\n"
				"    actor: a\n"
				"actors:\n"
				"  a: {class: human}\n";
	struct cfg_diags d = {0};
	struct cfg *cfg = NULL;
	ASSERT_EQ(cfg_load_buf("c.yaml", y, sizeof y - 1, &cfg, &d), -EINVAL);
	ASSERT_EQ(d.n, 1);
	ASSERT_EQ(d.items[0].mark.line, 2);
	ASSERT_STR_CONTAINS(d.items[0].msg, "reserved");
	cfg_diags_clear(&d);
}

static void test_container_section_stored(void)
{
	static const char y[] = "container:\n"
				"  control_port: 29999\n"
				"  bind_addr: 127.0.0.1\n"
				"  include_ports: [3000, \"8000-8100\"]\n"
				"  exclude_ports: [8080]\n"
				"  no_auth: true\n"
				"  socket_forwarding:\n"
				"    watch_paths: [\"/tmp/*.sock\", \"/run/**/*.sock\"]\n"
				"    max_socket_forwards: 0\n"
				"    container_path_prefix: /tmp/m\n";
	struct cfg_diags d = {0};
	struct cfg *cfg = NULL;
	ASSERT_EQ(cfg_load_buf("c.yaml", y, sizeof y - 1, &cfg, &d), 0);
	const struct cfg_container *ct = &cfg->container;
	ASSERT(cfg->has_container);
	ASSERT_EQ(ct->control_port, 29999);
	ASSERT_EQ(ct->data_port, 0);
	ASSERT_STR_EQ(ct->bind_addr, "127.0.0.1");
	ASSERT_STR_EQ(ct->include_ports, "3000,8000-8100");
	ASSERT_STR_EQ(ct->exclude_ports, "8080");
	ASSERT(ct->no_auth);
	ASSERT_EQ(ct->socket_forwarding.n_watch_paths, 2);
	ASSERT_STR_EQ(ct->socket_forwarding.watch_paths[1], "/run/**/*.sock");
	ASSERT(ct->socket_forwarding.watch_paths[2] == NULL);
	ASSERT_EQ(ct->socket_forwarding.max_socket_forwards, 0);
	ASSERT_STR_EQ(ct->socket_forwarding.container_path_prefix, "/tmp/m");
	cfg_free(cfg);
	/* absent: the "not set" values */
	ASSERT_EQ(cfg_load_buf("c.yaml", "{}", 2, &cfg, &d), 0);
	ASSERT_EQ(cfg->container.socket_forwarding.max_socket_forwards, -1);
	ASSERT(cfg->container.include_ports == NULL);
	cfg_free(cfg);
	cfg_diags_clear(&d);
}

static void test_seed003_minimal(void)
{
	struct cfg *cfg = load_file_ok("seed003_minimal.yaml");

	assert_state_hub(cfg);
	ASSERT_EQ(cfg->n_actors, 1);
	ASSERT_EQ(cfg->tunnels[0].health.kind, HEALTH_NONE);
	cfg_free(cfg);
}

static void test_seed003_full(void)
{
	struct cfg *cfg = load_file_ok("seed003_full.yaml");
	const struct cfg_tunnel *t = &cfg->tunnels[0];

	assert_state_hub(cfg);
	ASSERT_EQ(t->health.kind, HEALTH_HTTP);
	ASSERT_STR_EQ(t->health.url, "http://127.0.0.1:18000/health");
	ASSERT_EQ(cfg->n_actors, 2);
	ASSERT_EQ(cfg_find_actor(cfg, "operator.bernd")->cls, ACTOR_HUMAN);
	ASSERT_STR_EQ(cfg_find_actor(cfg, "operator.bernd")->description, "Bernd Worsch");
	cfg_free(cfg);
}

static void test_seed000(void)
{
	static const char *const files[] = {"seed000_connect.yaml", "seed000_profiles.yaml",
					    "seed000_intercept.yaml", "seed000_services.yaml"};

	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		struct cfg *cfg = load_file_ok(files[i]);
		ASSERT(cfg->has_bridge);
		ASSERT_EQ(cfg->has_services, i == 3);
		ASSERT(!cfg->has_container);
		ASSERT_EQ(cfg->n_tunnels, 0);
		ASSERT_EQ(cfg->n_actors, 0);
		cfg_free(cfg);
	}
}

static void assert_target(const struct cfg_target *t, const char *service, int port, const char *ns,
			  int local_port, int line)
{
	ASSERT_STR_EQ(t->service, service);
	ASSERT_EQ(t->port, port);
	if (ns)
		ASSERT_STR_EQ(t->namespace, ns);
	else
		ASSERT(!t->namespace);
	ASSERT_EQ(t->local_port, local_port);
	ASSERT(t->mark.file);
	ASSERT_EQ(t->mark.line, line);
}

/* seed 000's bridge: stored as written, "~/" expanded. */
static void test_seed000_bridge_stored(void)
{
	struct cfg *cfg = load_file_ok("seed000_connect.yaml");
	const struct cfg_bridge *b = &cfg->bridge;
	struct cfg_bridge r;

	ASSERT_STR_EQ(b->kubeconfig, HOME "/.kube/config");
	ASSERT_STR_EQ(b->context, "gke_my-org_us-central1_staging");
	ASSERT_STR_EQ(b->namespace, "default");
	ASSERT(!b->agent_image);
	ASSERT(b->targets_set);
	ASSERT(!b->intercepts_set);
	ASSERT_EQ(b->n_intercepts, 0);
	ASSERT_EQ(b->n_targets, 3);
	assert_target(&b->targets[0], "payments-api", 8080, NULL, 0, 6);
	assert_target(&b->targets[1], "user-service", 3000, NULL, 0, 8);
	assert_target(&b->targets[2], "redis", 6379, "cache", 16379, 10);
	ASSERT_EQ(b->targets[2].mark.col, 7); /* the item's first key */
	ASSERT_STR_EQ(b->targets[2].mark.file, cfg->path);
	ASSERT_EQ(cfg->n_profiles, 0);
	ASSERT(!cfg_find_profile(cfg, "production-debug"));
	ASSERT(!cfg_profile_suggest(cfg, "production-debug"));
	/* no profile: the top-level bridge itself */
	ASSERT_EQ(cfg_bridge_resolve(cfg, NULL, &r), 0);
	ASSERT(r.targets == b->targets && r.n_targets == 3);
	ASSERT(r.context == b->context);
	ASSERT_EQ(cfg_bridge_resolve(cfg, "staging", &r), -ENOENT);
	cfg_free(cfg);

	cfg = load_file_ok("seed000_intercept.yaml");
	b = &cfg->bridge;
	ASSERT_STR_EQ(b->agent_image, ""); /* set, to the empty string */
	ASSERT_EQ(b->n_targets, 1);
	assert_target(&b->targets[0], "redis", 6379, NULL, 0, 9);
	ASSERT(b->intercepts_set);
	ASSERT_EQ(b->n_intercepts, 1);
	ASSERT_STR_EQ(b->intercepts[0].service, "payments-api");
	ASSERT_EQ(b->intercepts[0].port, 8080);
	ASSERT_EQ(b->intercepts[0].mode, INTERCEPT_STEAL);
	ASSERT_EQ(b->intercepts[0].local_port, 8080);
	ASSERT(!b->intercepts[0].namespace);
	ASSERT_EQ(b->intercepts[0].mark.line, 14);
	ASSERT_EQ(b->intercepts[0].mark.col, 7);
	cfg_free(cfg);

	/* services' bridge_target/bridge_intercept are not the bridge's lists */
	cfg = load_file_ok("seed000_services.yaml");
	b = &cfg->bridge;
	ASSERT_STR_EQ(b->namespace, "staging");
	ASSERT(!b->targets_set && !b->intercepts_set);
	ASSERT_EQ(b->n_targets + b->n_intercepts, 0);
	cfg_free(cfg);
}

/* services: typed, in file order, with their dependencies. */
static void test_seed000_services_stored(void)
{
	struct cfg *cfg = load_file_ok("seed000_services.yaml");
	ASSERT_EQ(cfg->n_services, 3);
	const struct cfg_service *a = &cfg->services[0], *b = &cfg->services[1],
				 *c = &cfg->services[2];
	ASSERT_STR_EQ(a->name, "remote-payments");
	ASSERT_EQ(a->runtime, SERVICE_BRIDGE);
	ASSERT(a->has_target && !a->has_intercept);
	assert_target(&a->target, "payments-api", 8080, NULL, 8080, 10);
	ASSERT_EQ(a->n_depends_on, 0);
	ASSERT(!a->command);
	ASSERT_EQ(a->mark.line, 8);
	ASSERT_STR_EQ(b->name, "user-svc-intercept");
	ASSERT(b->has_intercept && !b->has_target);
	ASSERT_STR_EQ(b->intercept.service, "user-service");
	ASSERT_EQ(b->intercept.port, 3000);
	ASSERT_EQ(b->intercept.mode, INTERCEPT_STEAL);
	ASSERT_EQ(b->n_depends_on, 1);
	ASSERT_STR_EQ(b->depends_on[0].name, "local-user-svc");
	ASSERT_EQ(b->depends_on[0].condition, DEP_HEALTHY);
	ASSERT(!cfg_find_service(cfg, "local-user-svc")); /* the seed names one it lacks */
	ASSERT_STR_EQ(c->name, "local-api");
	ASSERT_EQ(c->runtime, SERVICE_HOST);
	ASSERT_EQ(c->n_command, 3);
	ASSERT(!c->command_shell);
	ASSERT_STR_EQ(c->command[0], "go");
	ASSERT_STR_EQ(c->command[2], "./cmd/api");
	ASSERT(!c->command[3]);
	ASSERT_EQ(c->port, 9090);
	ASSERT(cfg_find_service(cfg, "remote-payments") == a);
	ASSERT_STR_EQ(cfg_condition_name(c->depends_on[0].condition), "service_healthy");
	ASSERT_STR_EQ(cfg_runtime_name(c->runtime), "host");
	cfg_free(cfg);

	cfg = load_str_ok("services:\n  - name: x\n    command: make run\n"
			  "    depends_on: [{name: y}]\n  - {name: y, runtime: host}\n");
	ASSERT_EQ(cfg->services[0].runtime, SERVICE_HOST);
	ASSERT(cfg->services[0].command_shell);
	ASSERT_EQ(cfg->services[0].n_command, 1);
	ASSERT_STR_EQ(cfg->services[0].command[0], "make run");
	ASSERT_EQ(cfg->services[0].depends_on[0].condition, DEP_STARTED);
	ASSERT_EQ(cfg->services[0].depends_on[0].mark.line, 4);
	cfg_free(cfg);
}

/* Kubernetes names devbridge carries are refused when too long, not cut. */
static void test_k8s_lengths(void)
{
	char y[5200], ctx[300];
	memset(ctx, 'c', 256);
	ctx[256] = '\0';
	snprintf(y, sizeof y, "bridge:\n  context: %s\n", ctx);
	expect_one(y,
		   "bridge.context: expected at most 255 bytes, got 256 (longer values are "
		   "refused, not cut)",
		   2, 12);
	ctx[255] = '\0';
	snprintf(y, sizeof y, "bridge:\n  context: %s\n", ctx);
	struct cfg *cfg = load_str_ok(y);
	ASSERT_EQ(strlen(cfg->bridge.context), 255);
	cfg_free(cfg);
	snprintf(y, sizeof y, "profiles:\n  p:\n    bridge: {context: %s%s}\n", ctx, "x");
	expect_one(y, "profiles.p.bridge.context: expected at most 255 bytes", 3, 23);
	char path[4200];
	path[0] = '/';
	memset(path + 1, 'k', 4095);
	path[4096] = '\0';
	snprintf(y, sizeof y, "bridge:\n  kubeconfig: %s\n", path);
	expect_one(y, "bridge.kubeconfig: expected at most 4095 bytes, got 4096", 2, 15);
	/* Relative: too long only once joined with the file's directory. */
	snprintf(y, sizeof y, "bridge:\n  kubeconfig: %s\n", path + 2);
	struct cfg_diags d = {0};
	ASSERT_EQ(cfg_load_buf("/some/dir/x.yaml", y, strlen(y), &cfg, &d), -EINVAL);
	ASSERT_EQ(d.n, 1);
	ASSERT_STR_CONTAINS(d.items[0].msg, "expected at most 4095 bytes once resolved, got 4104");
	cfg_diags_clear(&d);
}

/* cfg_lint: valid, but probably not what was meant. */
static void test_lint(void)
{
	struct cfg *cfg =
	    load_str_ok(TUNNEL_T "    health_check:\n"
				 "      url: http://127.0.0.1:18000/health?x=1\n"
				 "  u:\n    host: h2\n    remote_port: 18001\n"
				 "    local_port: 8001\n    ssh_user: u\n    ssh_key: /k\n"
				 "    actor: a\n    health_check: {tcp: \"localhost:18001\"}\n"
				 "  ok:\n    host: h3\n    remote_port: 18002\n"
				 "    local_port: 8002\n    ssh_user: u\n    ssh_key: /k\n"
				 "    actor: a\n    health_check: {url: "
				 "\"http://[::1]:8002/\"}\n"
				 "  loc:\n    host: h4\n    direction: local\n"
				 "    remote_port: 18003\n    local_port: 8003\n"
				 "    ssh_user: u\n    ssh_key: /k\n    actor: a\n"
				 "    health_check: {url: \"http://127.0.0.1:18003/\"}\n"
				 "  far:\n    host: h5\n    remote_port: 18004\n"
				 "    local_port: 8004\n    ssh_user: u\n    ssh_key: /k\n"
				 "    actor: a\n    health_check: {url: "
				 "\"https://user@127.0.0.2:18004\"}\n" ACTOR_A);
	struct cfg_diags w = {0};
	ASSERT_EQ(cfg_lint(cfg, &w), 3);
	ASSERT_EQ(w.n, 3);
	ASSERT_STR_EQ(w.items[0].msg,
		      "tunnels.t.health_check.url: port 18000 is the tunnel's remote_port, which "
		      "listens on h.example.org; health checks run on this machine, where the "
		      "service is local_port 8000: did you mean "
		      "http://127.0.0.1:8000/health?x=1?");
	ASSERT_EQ(w.items[0].mark.line, 10);
	ASSERT_EQ(w.items[0].mark.col, 12);
	ASSERT_STR_CONTAINS(w.items[1].msg,
			    "tunnels.u.health_check.tcp: port 18001 is the tunnel's "
			    "remote_port");
	ASSERT_STR_CONTAINS(w.items[1].msg, "did you mean tcp: 8001?");
	ASSERT_EQ(w.items[1].mark.line, 18);
	ASSERT_STR_CONTAINS(w.items[2].msg, "did you mean https://127.0.0.2:8004?");
	cfg_diags_clear(&w);
	cfg_free(cfg);
}

static void test_seed000_profiles(void)
{
	struct cfg *cfg = load_file_ok("seed000_profiles.yaml");
	const struct cfg_profile *p = cfg_find_profile(cfg, "production-debug");
	struct cfg_bridge r;

	ASSERT_STR_EQ(cfg->bridge.context, "staging");
	ASSERT_STR_EQ(cfg->bridge.namespace, "default");
	ASSERT(!cfg->bridge.kubeconfig);
	ASSERT_EQ(cfg->bridge.n_targets, 1);
	assert_target(&cfg->bridge.targets[0], "api", 8080, NULL, 0, 5);

	ASSERT_EQ(cfg->n_profiles, 1);
	ASSERT(p == &cfg->profiles[0]);
	ASSERT_STR_EQ(p->name, "production-debug");
	ASSERT_EQ(p->mark.line, 9);
	ASSERT_EQ(p->mark.col, 3);
	ASSERT(p->has_bridge);
	ASSERT_STR_EQ(p->bridge.context, "production");
	ASSERT_STR_EQ(p->bridge.namespace, "critical");
	ASSERT(!p->bridge.kubeconfig);
	ASSERT(p->bridge.targets_set);
	ASSERT_EQ(p->bridge.n_targets, 1);
	assert_target(&p->bridge.targets[0], "api", 8080, NULL, 0, 14);
	ASSERT_EQ(p->bridge.targets[0].mark.col, 11);

	/* without the profile: the top level */
	ASSERT_EQ(cfg_bridge_resolve(cfg, NULL, &r), 0);
	ASSERT_STR_EQ(r.context, "staging");
	ASSERT_STR_EQ(r.namespace, "default");
	ASSERT(r.targets == cfg->bridge.targets);
	/* with it: its strings and its own list */
	ASSERT_EQ(cfg_bridge_resolve(cfg, "production-debug", &r), 0);
	ASSERT_STR_EQ(r.context, "production");
	ASSERT_STR_EQ(r.namespace, "critical");
	ASSERT(!r.kubeconfig);
	ASSERT(r.targets == p->bridge.targets);
	ASSERT_EQ(r.n_targets, 1);
	ASSERT(r.targets_set);
	ASSERT(!r.intercepts_set && r.n_intercepts == 0);
	/* unknown: -ENOENT, *out untouched, and a suggestion */
	memset(&r, 0x5a, sizeof r);
	ASSERT_EQ(cfg_bridge_resolve(cfg, "production-debgu", &r), -ENOENT);
	ASSERT(r.n_targets == (size_t)0x5a5a5a5a5a5a5a5aULL);
	ASSERT_STR_EQ(cfg_profile_suggest(cfg, "production-debgu"), "production-debug");
	ASSERT_STR_EQ(cfg_profile_suggest(cfg, "Production-Debug"), "production-debug");
	ASSERT(!cfg_profile_suggest(cfg, "staging"));
	ASSERT(!cfg_profile_suggest(cfg, NULL));
	ASSERT(!cfg_find_profile(cfg, "staging"));
	cfg_free(cfg);
}

/* Overlay rules: strings the profile sets win, a list the profile names
 * (even empty) replaces the base list, the rest comes from the base. */
static void test_profile_overlay(void)
{
	static const char y[] = "bridge:\n"
				"  kubeconfig: kube/cfg\n"
				"  context: base\n"
				"  agent_image: img:1\n"
				"  targets: [{service: a, port: 1}, {service: b, port: 2}]\n"
				"  intercepts:\n"
				"    - {service: web, mode: mirror, namespace: front}\n"
				"profiles:\n"
				"  empty:\n"
				"  notargets:\n"
				"    bridge:\n"
				"      targets: []\n"
				"      intercepts:\n"
				"      kubeconfig: ~/other\n"
				"      agent_image: \"\"\n"
				"  ns:\n"
				"    bridge: {namespace: n}\n";
	struct cfg_diags d = {0};
	struct cfg *cfg = NULL;
	const struct cfg_profile *p;
	struct cfg_bridge r;

	ASSERT_EQ(cfg_load_buf("/etc/devbridge/c.yaml", y, sizeof y - 1, &cfg, &d), 0);
	ASSERT_STR_EQ(cfg->bridge.kubeconfig, "/etc/devbridge/kube/cfg");
	ASSERT_EQ(cfg->bridge.n_targets, 2);
	ASSERT_EQ(cfg->bridge.targets[1].mark.line, 5);
	ASSERT_EQ(cfg->bridge.targets[1].mark.col, 36); /* a flow item: its '{' */
	ASSERT_EQ(cfg->bridge.n_intercepts, 1);
	ASSERT_EQ(cfg->bridge.intercepts[0].mode, INTERCEPT_MIRROR);
	ASSERT_EQ(cfg->bridge.intercepts[0].port, 0);
	ASSERT_STR_EQ(cfg->bridge.intercepts[0].namespace, "front");
	ASSERT_EQ(cfg->n_profiles, 3);
	ASSERT_STR_EQ(cfg->profiles[0].name, "empty");
	ASSERT_STR_EQ(cfg->profiles[2].name, "ns");

	p = cfg_find_profile(cfg, "empty");
	ASSERT(p && !p->has_bridge && !p->bridge.targets_set);
	ASSERT_EQ(cfg_bridge_resolve(cfg, "empty", &r), 0);
	ASSERT(r.kubeconfig == cfg->bridge.kubeconfig && r.targets == cfg->bridge.targets);
	ASSERT(r.intercepts == cfg->bridge.intercepts && r.n_intercepts == 1);

	p = cfg_find_profile(cfg, "notargets");
	ASSERT(p->has_bridge && p->bridge.targets_set && p->bridge.intercepts_set);
	ASSERT_EQ(cfg_bridge_resolve(cfg, "notargets", &r), 0);
	ASSERT_EQ(r.n_targets, 0);
	ASSERT_EQ(r.n_intercepts, 0);
	ASSERT(r.targets_set && r.intercepts_set);
	ASSERT_STR_EQ(r.kubeconfig, HOME "/other");
	ASSERT_STR_EQ(r.agent_image, "");
	ASSERT_STR_EQ(r.context, "base");

	ASSERT_EQ(cfg_bridge_resolve(cfg, "ns", &r), 0);
	ASSERT_STR_EQ(r.namespace, "n");
	ASSERT_STR_EQ(r.agent_image, "img:1");
	ASSERT_EQ(r.n_targets, 2);
	ASSERT_EQ(r.n_intercepts, 1);
	ASSERT_STR_EQ(cfg_profile_suggest(cfg, "nss"), "ns");
	cfg_free(cfg);

	/* no bridge: at all */
	ASSERT_EQ(cfg_load_buf("c.yaml", "{}", 2, &cfg, &d), 0);
	ASSERT_EQ(cfg_bridge_resolve(cfg, NULL, &r), 0);
	ASSERT(!r.context && !r.targets && r.n_targets == 0 && !r.targets_set);
	ASSERT_EQ(cfg_bridge_resolve(cfg, "x", &r), -ENOENT);
	ASSERT(!cfg_profile_suggest(cfg, "x"));
	cfg_free(cfg);
	ASSERT_EQ(d.n, 0);
	cfg_diags_clear(&d);
}

/* A long list grows past several capacities; a broken one is freed. */
static void test_bridge_lists(void)
{
	static const char bad[] = "bridge:\n"
				  "  targets: [{service: a, port: 1, namespace: n}, {port: 0}, 3]\n"
				  "profiles:\n"
				  "  p: {bridge: {intercepts: [{service: b, namespace: m}, {}]}}\n";
	char y[16384];
	size_t o = 0;
	struct cfg_diags d = {0};
	struct cfg *cfg = NULL;

	o += (size_t)snprintf(y + o, sizeof y - o, "bridge:\n  targets:\n");
	for (int i = 0; i < 100; i++)
		o += (size_t)snprintf(y + o, sizeof y - o, "    - {service: s%d, port: %d}\n", i,
				      1000 + i);
	ASSERT_LT(o, sizeof y);
	ASSERT_EQ(cfg_load_buf("c.yaml", y, o, &cfg, &d), 0);
	ASSERT_EQ(cfg->bridge.n_targets, 100);
	for (int i = 0; i < 100; i++) {
		char name[16];
		snprintf(name, sizeof name, "s%d", i);
		ASSERT_STR_EQ(cfg->bridge.targets[i].service, name);
		ASSERT_EQ(cfg->bridge.targets[i].port, 1000 + i);
		ASSERT_EQ(cfg->bridge.targets[i].mark.line, 3 + i);
	}
	cfg_free(cfg);
	/* errors after some items were stored: nothing leaks */
	load_str_bad(bad, sizeof bad - 1, &d);
	ASSERT_EQ(d.n, 4);
	expect_diag(&d, "bridge.targets[2]: expected a mapping, got \"3\"", 2, 61);
	cfg_diags_clear(&d);
}

static void test_all_fields(void)
{
	struct cfg *cfg =
	    load_str_ok("catalog_path: ~/ops-infra/opscatalog/\n"
			"tunnels:\n"
			"  db:\n"
			"    direction: local\n"
			"    host: db.example.org\n"
			"    ssh_port: 2222\n"
			"    ssh_user: ops\n"
			"    ssh_key: /keys/id_db\n"
			"    actor: operator.bernd\n"
			"    remote_host: 10.0.0.5\n"
			"    remote_port: 5432\n"
			"    local_port: 15432\n"
			"    health_check:\n"
			"      tcp: \"db.local:5432\"\n"
			"      interval_seconds: 10\n"
			"      timeout_seconds: 2\n"
			"    reconnect:\n"
			"      max_attempts: 7\n"
			"      backoff_initial: 0.5\n"
			"      backoff_max: 30\n"
			"      stable_seconds: 12.5\n"
			"    server_alive_interval: 20\n"
			"    server_alive_count_max: 4\n"
			"    ssh_config: ~/.ssh/config.devbridge\n"
			"    ssh_options:\n"
			"      ProxyJump: bastion.example.org\n"
			"      StrictHostKeyChecking: no\n"
			"      ConnectTimeout: 10\n"
			"      ProxyCommand: ssh -W %h:%p gw\n"
			"  hub:\n"
			"    host: hub\n"
			"    remote_port: 18000\n"
			"    local_port: 8000\n"
			"    ssh_user: ops\n"
			"    ssh_key: k\n"
			"    actor: operator.bernd\n"
			"    health_check: {tcp: 8000}\n"
			"    reconnect: {backoff_initial: 120}\n"
			"  v6:\n"
			"    host: hub\n"
			"    ssh_port: 22\n"
			"    remote_port: 18001\n"
			"    local_port: 8000\n"
			"    ssh_user: ops\n"
			"    ssh_key: k\n"
			"    actor: operator.bernd\n"
			"    health_check: {tcp: \"[::1]:8000\"}\n"
			"actors:\n"
			"  operator.bernd: {class: human}\n"
			"container:\n"
			"  control_port: 19285\n"
			"  data_port: 19286\n"
			"  bind_addr: 127.0.0.1\n"
			"  scan_interval_ms: 1000\n"
			"  include_ports: [8080, \"9000-9010\", 9100-9200]\n"
			"  exclude_ports: [22]\n"
			"  exclude_process: \"^(sshd|node)$\"\n"
			"  no_auth: no\n"
			"  browser_cmd: xdg-open\n"
			"  socket_forwarding:\n"
			"    watch_paths: [\"/tmp/*.sock\", \"/run/user/1000/**/*.sock\"]\n"
			"    scan_interval_ms: 5000\n"
			"    max_socket_forwards: 16\n"
			"    container_path_prefix: /tmp\n"
			"services:\n"
			"  - name: api\n"
			"    runtime: host\n"
			"    command: go run ./cmd/api\n"
			"    port: 9090\n"
			"    env: {A: \"1\", B: }\n"
			"    healthcheck: {test: [CMD, \"true\"], interval: 5s}\n"
			"    depends_on:\n"
			"      - name: db\n"
			"        condition: service_completed_successfully\n"
			"profiles:\n"
			"  p: {bridge: {namespace: x}}\n");
	const struct cfg_tunnel *t = cfg_find_tunnel(cfg, "db");

	ASSERT_STR_EQ(cfg->catalog_path, HOME "/ops-infra/opscatalog/");
	ASSERT(cfg->has_container && cfg->has_services && !cfg->has_bridge);
	ASSERT_EQ(cfg->n_tunnels, 3);
	ASSERT_EQ(t->direction, TUNNEL_LOCAL);
	ASSERT_EQ(t->ssh_port, 2222);
	ASSERT_STR_EQ(t->remote_host, "10.0.0.5");
	ASSERT_EQ(t->health.kind, HEALTH_TCP);
	ASSERT_STR_EQ(t->health.tcp_host, "db.local");
	ASSERT_EQ(t->health.tcp_port, 5432);
	ASSERT_EQ(t->health.interval_s, 10);
	ASSERT_EQ(t->health.timeout_s, 2);
	ASSERT_EQ(t->max_attempts, 7);
	ASSERT(t->backoff_initial == 0.5);
	ASSERT(t->backoff_max == 30);
	ASSERT(t->stable_s == 12.5);
	ASSERT_EQ(t->server_alive_interval, 20);
	ASSERT_EQ(t->server_alive_count_max, 4);
	ASSERT_STR_EQ(t->ssh_config, HOME "/.ssh/config.devbridge");
	ASSERT_EQ(t->ssh_config_mark.line, 24);
	ASSERT_EQ(t->n_ssh_options, 4);
	ASSERT_STR_EQ(t->ssh_options[0].key, "ProxyJump");
	ASSERT_STR_EQ(t->ssh_options[0].value, "bastion.example.org");
	ASSERT_STR_EQ(t->ssh_options[1].key, "StrictHostKeyChecking");
	ASSERT_STR_EQ(t->ssh_options[1].value, "no");
	ASSERT_STR_EQ(t->ssh_options[2].value, "10");
	ASSERT_EQ(t->ssh_options[2].mark.line, 28);
	ASSERT_EQ(t->ssh_options[2].mark.col, 23);
	ASSERT_STR_EQ(t->ssh_options[3].value, "ssh -W %h:%p gw");

	t = cfg_find_tunnel(cfg, "hub");
	ASSERT_EQ(t->health.kind, HEALTH_TCP);
	ASSERT_STR_EQ(t->health.tcp_host, "127.0.0.1");
	ASSERT_EQ(t->health.tcp_port, 8000);
	ASSERT(t->backoff_initial == 120);
	ASSERT(t->backoff_max == 120); /* raised to meet backoff_initial */
	ASSERT_STR_EQ(t->ssh_key, "k");

	t = cfg_find_tunnel(cfg, "v6");
	ASSERT_STR_EQ(t->health.tcp_host, "::1");
	cfg_free(cfg);
}

/* Aliases are resolved, so shared settings work. */
static void test_aliases(void)
{
	struct cfg *cfg = load_str_ok("tunnels:\n"
				      "  a:\n"
				      "    host: h\n"
				      "    remote_port: 1\n"
				      "    local_port: 2\n"
				      "    ssh_user: u\n"
				      "    ssh_key: k\n"
				      "    actor: &who ops\n"
				      "    reconnect: &rc {max_attempts: 3, backoff_max: 9}\n"
				      "  b:\n"
				      "    host: h\n"
				      "    remote_port: 3\n"
				      "    local_port: 2\n"
				      "    ssh_user: u\n"
				      "    ssh_key: k\n"
				      "    actor: *who\n"
				      "    reconnect: *rc\n"
				      "actors: {ops: {class: automation}}\n");

	ASSERT_EQ(cfg->tunnels[1].max_attempts, 3);
	ASSERT(cfg->tunnels[1].backoff_max == 9);
	ASSERT_STR_EQ(cfg->tunnels[1].actor, "ops");
	cfg_free(cfg);
}

static void test_empty(void)
{
	static const char *const docs[] = {"", "# only a comment\n\n   # another\n", "---\n", "~\n",
					   "tunnels:\nactors:\n"};

	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
		struct cfg *cfg = load_str_ok(docs[i]);
		ASSERT_EQ(cfg->n_tunnels, 0);
		ASSERT_EQ(cfg->n_actors, 0);
		cfg_free(cfg);
	}
}

static void test_bad_files(void)
{
	struct cfg_diags d = {0};

	load_file_bad("bad_missing_field.yaml", &d);
	ASSERT_EQ(d.n, 1);
	expect_diag(&d, "tunnel 'hub': missing required field 'ssh_user'", 5, 3);
	cfg_diags_clear(&d);

	load_file_bad("bad_wrong_type.yaml", &d);
	ASSERT_EQ(d.n, 1);
	expect_diag(&d, "tunnels.hub.remote_port: expected an integer 1-65535, got \"abc\"", 7, 18);
	cfg_diags_clear(&d);

	load_file_bad("bad_unknown_key.yaml", &d);
	ASSERT_EQ(d.n, 2);
	expect_diag(&d, "tunnels.hub: unknown key 'remote_prot' (did you mean 'remote_port'?)", 9,
		    5);
	expect_diag(&d, "tunnel 'hub': missing required field 'remote_port'", 7, 3);
	cfg_diags_clear(&d);

	load_file_bad("bad_actor_class.yaml", &d);
	ASSERT_EQ(d.n, 1);
	expect_diag(&d, "actors.bot.class: expected 'human' or 'automation', got \"robot\"", 16,
		    12);
	cfg_diags_clear(&d);

	load_file_bad("bad_duplicate_local_port.yaml", &d);
	ASSERT_EQ(d.n, 1);
	expect_diag(&d,
		    "tunnels.db-replica.local_port: port 15432 is already used by tunnel "
		    "'db-primary' (line 13)",
		    23, 17);
	cfg_diags_clear(&d);

	load_file_bad("bad_name.yaml", &d);
	ASSERT_EQ(d.n, 1);
	expect_diag(&d,
		    "invalid tunnel name '../x': use letters, digits, '.', '_', '-' (at most 64)",
		    6, 3);
	cfg_diags_clear(&d);
}

static void test_missing_file(void)
{
	struct cfg_diags d = {0};
	struct cfg *cfg = NULL;

	ASSERT_EQ(cfg_load(CONFIGS "does-not-exist.yaml", &cfg, &d), -ENOENT);
	ASSERT(!cfg);
	ASSERT_EQ(d.n, 1);
	ASSERT_EQ(d.items[0].mark.line, 0);
	ASSERT_STR_CONTAINS(d.items[0].msg, "No such file or directory");
	cfg_diags_clear(&d);

	ASSERT_EQ(cfg_load(CONFIGS, &cfg, &d), -EISDIR);
	ASSERT_EQ(d.n, 1);
	cfg_diags_clear(&d);
}

static void test_unknown_keys(void)
{
	expect_one("tunels: {}\n", "unknown key 'tunels' (did you mean 'tunnels'?)", 1, 1);
	expect_one("actors: {}\nzzz: 1\n", "unknown key 'zzz' (expected one of: tunnels, actors,",
		   2, 1);
	expect_one("container:\n  data_prot: 1\n",
		   "container: unknown key 'data_prot' (did you mean 'data_port'?)", 2, 3);
	expect_one("bridge:\n  targets:\n    - service: a\n      port: 1\n      namspace: x\n",
		   "bridge.targets[0]: unknown key 'namspace' (did you mean 'namespace'?)", 5, 7);
	/* Keys are known per level: "host" is a tunnel key, not a top one. */
	expect_one("host: x\n", "unknown key 'host'", 1, 1);
}

static void test_syntax_error(void)
{
	struct cfg_diags d = {0};
	const char *y = "tunnels:\n  a: [1, 2\n  b: 3\n";

	load_str_bad(y, strlen(y), &d);
	ASSERT_EQ(d.n, 1);
	ASSERT_STR_CONTAINS(d.items[0].msg, "invalid YAML: ");
	ASSERT_GE(d.items[0].mark.line, 2);
	cfg_diags_clear(&d);

	y = "a: b: c\n";
	load_str_bad(y, strlen(y), &d);
	ASSERT_EQ(d.n, 1);
	ASSERT_EQ(d.items[0].mark.line, 1);
	ASSERT_STR_CONTAINS(d.items[0].msg, "mapping values are not allowed");
	cfg_diags_clear(&d);

	/* libyaml's reader checks UTF-8; the error still gets a line. */
	y = "actors: {}\ncatalog_path: \xc3\x28\n";
	load_str_bad(y, strlen(y), &d);
	ASSERT_EQ(d.n, 1);
	ASSERT_STR_CONTAINS(d.items[0].msg, "UTF-8");
	ASSERT_EQ(d.items[0].mark.line, 2);
	cfg_diags_clear(&d);

	/* An undefined alias. */
	expect_one("actors: *nope\n", "undefined alias", 1, 9);
	/* A second document would be ignored; it is an error instead. */
	expect_one("actors: {}\n---\ntunnels: {}\n", "second YAML document", 3, 1);
}

static void test_duplicate_key(void)
{
	expect_one(ACTOR_A "  a: {class: automation}\n",
		   "actors: duplicate key 'a' (first at line 2)", 3, 3);
	expect_one("actors:\n  a:\n    class: human\n    class: human\n",
		   "actors.a: duplicate key 'class' (first at line 3)", 4, 5);
	expect_one("actors: {}\nactors: {}\n", "duplicate key 'actors' (first at line 1)", 2, 1);
}

static void test_alias_bomb(void)
{
	const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
			   "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
			   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
			   "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
			   "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
			   "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
			   "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
	char deep[512];
	struct cfg_diags d = {0};

	load_str_bad(bomb, strlen(bomb), &d);
	ASSERT_EQ(d.n, 1);
	ASSERT_STR_CONTAINS(d.items[0].msg, "more than 100000 nodes");
	cfg_diags_clear(&d);

	snprintf(deep, sizeof deep, "actors: %.70s%.70s\n",
		 "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
		 "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
	load_str_bad(deep, strlen(deep), &d);
	ASSERT_EQ(d.n, 1);
	ASSERT_STR_CONTAINS(d.items[0].msg, "nested more than 64 levels");
	cfg_diags_clear(&d);

	/* An anchor used inside itself: a cycle, or an undefined alias. */
	load_str_bad("actors: &x [*x]\n", 16, &d);
	ASSERT_EQ(d.n, 1);
	cfg_diags_clear(&d);
}

/* Depth is refused while parsing, before the document is built: 100,000
 * levels of "[" used to take about a minute in libyaml's scanner. */
static void test_deep_nesting_while_parsing(void)
{
	static const char *const open[] = {"[", "{a: ", "- "};
	for (size_t k = 0; k < 3; k++) {
		size_t n = 100000, ol = strlen(open[k]);
		char *y = malloc(16 + n * (ol + 1));
		size_t o = 0;
		ASSERT(y);
		o += (size_t)sprintf(y, k == 2 ? "actors:\n  " : "actors: ");
		for (size_t i = 0; i < n; i++, o += ol)
			memcpy(y + o, open[k], ol);
		y[o++] = 'x';
		for (size_t i = 0; k < 2 && i < n; i++)
			y[o++] = k == 0 ? ']' : '}';
		y[o++] = '\n';
		struct cfg_diags d = {0};
		load_str_bad(y, o, &d);
		ASSERT_EQ(d.n, 1);
		ASSERT_STR_CONTAINS(d.items[0].msg, "nested more than 64 levels deep");
		/* At the node 65 levels down, as before: the 64th "[" or
		 * "- ", or the key of the 63rd "{a: ". */
		static const int col[] = {9 + 63, 9 + 62 * 4 + 1, 3 + 63 * 2};
		ASSERT_EQ(d.items[0].mark.line, k == 2 ? 2 : 1);
		ASSERT_EQ(d.items[0].mark.col, col[k]);
		cfg_diags_clear(&d);
		free(y);
	}
}

/* libyaml does not implement YAML 1.1 merge keys: "<<" would be a key. */
static void test_merge_keys(void)
{
	expect_one("base: &b {class: human}\nactors:\n  a:\n    <<: *b\n",
		   "merge keys ('<<') are not supported", 4, 5);
	expect_one("actors: {a: {<<: {class: human}}}\n", "merge keys ('<<') are not supported", 1,
		   14);
	/* Every one is reported, wherever it is. */
	struct cfg_diags d = {0};
	const char *y = "x: &x {a: 1}\nservices:\n  - name: s\n    env: {<<: *x}\n"
			"  - <<: *x\n";
	load_str_bad(y, strlen(y), &d);
	ASSERT_EQ(d.n, 2);
	for (size_t i = 0; i < 2; i++)
		ASSERT_STR_CONTAINS(d.items[i].msg, "merge keys ('<<') are not supported");
	ASSERT_EQ(d.items[0].mark.line, 4);
	ASSERT_EQ(d.items[0].mark.col, 11);
	ASSERT_EQ(d.items[1].mark.line, 5);
	ASSERT_EQ(d.items[1].mark.col, 5);
	cfg_diags_clear(&d);
	/* Quoted, it is an ordinary (here unknown) key; as a value, a string. */
	expect_one("actors: {\"<<\": 1}\n", "actors.<<: expected a mapping", 1, 16);
	cfg_free(load_str_ok("actors: {a: {class: human, description: <<}}\n"));
}

static void test_types(void)
{
	expect_one(TUNNEL_T "    ssh_port: \"22\"\n" ACTOR_A,
		   "tunnels.t.ssh_port: expected an integer 1-65535, got \"22\" (quoted, so a "
		   "string)",
		   9, 15);
	expect_one(
	    TUNNEL_T "    ssh_port: 99999999999999999999999\n" ACTOR_A,
	    "tunnels.t.ssh_port: expected an integer 1-65535, got \"99999999999999999999999\"", 9,
	    15);
	expect_one(TUNNEL_T "    ssh_port: 0x16\n" ACTOR_A, "expected an integer 1-65535", 9, 15);
	expect_one(TUNNEL_T "    ssh_port: 022\n" ACTOR_A, "expected an integer 1-65535", 9, 15);
	expect_one(TUNNEL_T "    ssh_port: 22abc\n" ACTOR_A, "expected an integer 1-65535", 9, 15);
	expect_one(TUNNEL_T "    ssh_port: [22]\n" ACTOR_A, "got a list", 9, 15);
	expect_one(TUNNEL_T "    host: {a: 1}\n" ACTOR_A, "duplicate key 'host'", 9, 5);
	expect_one(TUNNEL_T "    direction: sideways\n" ACTOR_A,
		   "tunnels.t.direction: expected 'reverse' or 'local', got \"sideways\"", 9, 16);
	expect_one(TUNNEL_T "    reconnect: {max_attempts: -1}\n" ACTOR_A,
		   "tunnels.t.reconnect.max_attempts: expected an integer >= 0, got \"-1\"", 9, 31);
	expect_one(TUNNEL_T "    reconnect: {backoff_initial: 0}\n" ACTOR_A,
		   "tunnels.t.reconnect.backoff_initial: expected a number > 0", 9, 34);
	expect_one(TUNNEL_T "    reconnect: {backoff_initial: .inf}\n" ACTOR_A,
		   "expected a number > 0", 9, 34);
	expect_one(TUNNEL_T "    reconnect: {backoff_initial: 10, backoff_max: 5}\n" ACTOR_A,
		   "tunnels.t.reconnect: backoff_max (5) must be >= backoff_initial (10)", 9, 51);
	expect_one(TUNNEL_T "    remote_host: \"\"\n" ACTOR_A,
		   "tunnels.t.remote_host: expected a non-empty string, got \"\"", 9, 18);
	expect_one(TUNNEL_T "    remote_host:\n" ACTOR_A,
		   "tunnels.t.remote_host: expected a string, got nothing", 9, 17);
	expect_one(TUNNEL_T "    remote_host: -oProxyCommand=x\n" ACTOR_A,
		   "does not start with '-'", 9, 18);
	expect_one(TUNNEL_T "    remote_host: \"a\\0b\"\n" ACTOR_A, "contains a NUL byte", 9, 18);
	expect_one(TUNNEL_T "    remote_host: \"a\\nb\"\n" ACTOR_A, "got \"a\\x0ab\"", 9, 18);
	expect_one("container: {no_auth: maybe}\n",
		   "container.no_auth: expected true or false, got \"maybe\"", 1, 22);
	expect_one("container: {no_auth: yes, include_ports: [1, \"9010-9000\"]}\n",
		   "container.include_ports[1]: expected a port 1-65535 or a \"low-high\" range", 1,
		   46);
	expect_one("container: []\n", "container: expected a mapping, got a list", 1, 12);
	expect_one("- tunnels\n", "expected a mapping of sections", 1, 1);
	expect_one("tunnels: [a]\n", "tunnels: expected a mapping of tunnel names to tunnels", 1,
		   10);
	expect_one("catalog_path: [a]\n", "catalog_path: expected a string, got a list", 1, 15);
}

/* The less common shapes of a wrong value, and how they are quoted. */
static void test_messages(void)
{
	char y[512];

	snprintf(y, sizeof y, "catalog_path: [%s]\n", "x");
	expect_one(y, "catalog_path: expected a string, got a list", 1, 15);
	expect_one("actors: {[a]: 1}\n", "actors: expected a string key, got a list", 1, 10);
	expect_one("actors: {\"a\\0b\": {class: human}}\n", "key 'a\\x00b' contains a NUL byte", 1,
		   10);
	expect_one("container: {bind_addr: null}\n", "expected a string, got null", 1, 24);
	expect_one("container: {bind_addr: \"a \\\"b\\\"\"}\n", "got \"a \\\"b\\\"\"", 1, 24);
	expect_one("container: {exclude_ports: 22}\n",
		   "container.exclude_ports: expected a list of ports, got \"22\"", 1, 28);
	expect_one("container: {exclude_ports: [[22]]}\n", "expected a port 1-65535", 1, 29);
	expect_one("container: {exclude_ports: [70000]}\n", "expected a port 1-65535", 1, 29);
	expect_one("container: {exclude_ports: [\"1-2-3-4-5-6-7-8-9\"]}\n",
		   "expected a port 1-65535", 1, 29);
	expect_one("container: {socket_forwarding: {watch_paths: /tmp}}\n",
		   "container.socket_forwarding.watch_paths: expected a list of strings", 1, 46);
	expect_one("services: [{name: a, command: {go: run}}]\n",
		   "services[0].command: expected a string or a list of strings, got a mapping", 1,
		   31);
	expect_one("services: [{name: a, env: [A]}]\n",
		   "services[0].env: expected a mapping, got a list", 1, 27);
	expect_one("services: [{name: a, env: {A: [1]}}]\n",
		   "services[0].env.A: expected a string, got a list", 1, 31);
	expect_one("services: [{name: a, runtime: bridge, bridge_target: {service: s, port: 1}, "
		   "bridge_intercept: {service: s}}]\n",
		   "'bridge_target' and 'bridge_intercept' are mutually exclusive", 1, 77);
	expect_one(TUNNEL_T "    health_check: {tcp: \"a b:80\"}\n" ACTOR_A,
		   "expected a port 1-65535 or \"host:port\"", 9, 25);
	expect_one(TUNNEL_T "    reconnect: {stable_seconds: 2.5e1x}\n" ACTOR_A,
		   "expected a number > 0 and <= 86400, got \"2.5e1x\"", 9, 33);

	/* Long values are cut after 60 bytes, without splitting a UTF-8
	 * character: "x" + 30 two-byte characters cuts inside the last. */
	char e30[64] = "", want[80];
	for (int i = 0; i < 30; i++)
		strcat(e30, "\u00e9");
	snprintf(y, sizeof y, "container: {bind_addr: \"x%s z\"}\n", e30);
	struct cfg_diags d = {0};
	load_str_bad(y, strlen(y), &d);
	ASSERT_EQ(d.n, 1);
	snprintf(want, sizeof want, "got \"x%.58s...\"", e30);
	ASSERT_STR_CONTAINS(d.items[0].msg, want);
	cfg_diags_clear(&d);
	snprintf(y, sizeof y, "container: {bind_addr: \"%s z\"}\n", e30);
	load_str_bad(y, strlen(y), &d);
	snprintf(want, sizeof want, "got \"%s...\"", e30);
	ASSERT_STR_CONTAINS(d.items[0].msg, want);
	cfg_diags_clear(&d);

	/* Numbers in other notations are fine where numbers go. */
	struct cfg *cfg =
	    load_str_ok(TUNNEL_T "    reconnect: {backoff_initial: 2.5e1, backoff_max: "
				 "1E2}\n" ACTOR_A);
	ASSERT(cfg->tunnels[0].backoff_initial == 25);
	ASSERT(cfg->tunnels[0].backoff_max == 100);
	cfg_free(cfg);
	cfg = NULL;
	ASSERT_EQ(cfg_load_buf(NULL, NULL, 0, &cfg, NULL), 0);
	ASSERT_STR_EQ(cfg->path, "<config>");
	cfg_free(cfg);
}

static void test_tunnel_checks(void)
{
	expect_one(TUNNEL_T "actors:\n  operator: {class: human}\n",
		   "tunnels.t.actor: unknown actor 'a': define it under 'actors:'", 8, 12);
	expect_one(TUNNEL_T "actors:\n  aa: {class: human}\n",
		   "tunnels.t.actor: unknown actor 'a' (did you mean 'aa'?)", 8, 12);
	expect_one(TUNNEL_T "  t2:\n    host: H.example.org\n    remote_port: 18000\n"
			    "    local_port: 9000\n    ssh_user: u\n    ssh_key: /k\n"
			    "    actor: a\n" ACTOR_A,
		   "tunnels.t2.remote_port: port 18000 on H.example.org is already forwarded by "
		   "tunnel 't' (line 4)",
		   11, 18);
	/* Different ssh ports: different sshd, no clash. */
	cfg_free(load_str_ok(TUNNEL_T "  t2:\n    host: h.example.org\n    ssh_port: 2222\n"
				      "    remote_port: 18000\n    local_port: 9000\n"
				      "    ssh_user: u\n    ssh_key: /k\n    actor: a\n" ACTOR_A));
	expect_one(TUNNEL_T "    health_check: {url: http://x/, tcp: 80}\n" ACTOR_A,
		   "tunnels.t.health_check: 'url' and 'tcp' are mutually exclusive", 9, 36);
	expect_one(TUNNEL_T "    health_check: {interval_seconds: 3}\n" ACTOR_A,
		   "tunnels.t.health_check: expected 'url' or 'tcp'", 9, 5);
	expect_one(TUNNEL_T "    health_check: {url: ftp://x/}\n" ACTOR_A,
		   "tunnels.t.health_check.url: expected an http:// or https:// URL, got "
		   "\"ftp://x/\"",
		   9, 25);
	expect_one(TUNNEL_T "    health_check: {tcp: \"host:\"}\n" ACTOR_A,
		   "tunnels.t.health_check.tcp: expected a port 1-65535 or \"host:port\"", 9, 25);
	expect_one(TUNNEL_T "    health_check: {tcp: 70000}\n" ACTOR_A,
		   "expected a port 1-65535 or \"host:port\"", 9, 25);

	/* Several problems, all reported. */
	struct cfg_diags d = {0};
	const char *y = "tunnels:\n  x:\n    host: h\n    remote_port: \"abc\"\n"
			"    local_port: 0\n    ssh_key: k\n    actor: a\n" ACTOR_A;
	load_str_bad(y, strlen(y), &d);
	ASSERT_EQ(d.n, 3);
	expect_diag(&d, "tunnels.x.remote_port: expected an integer 1-65535, got \"abc\"", 4, 18);
	expect_diag(&d, "tunnels.x.local_port: expected an integer 1-65535, got \"0\"", 5, 17);
	expect_diag(&d, "tunnel 'x': missing required field 'ssh_user'", 2, 3);
	cfg_diags_clear(&d);
}

static void test_ssh_options(void)
{
	expect_one(TUNNEL_T "    ssh_options:\n      ControlMaster: auto\n" ACTOR_A,
		   "tunnels.t.ssh_options.ControlMaster is managed by devbridge and cannot be "
		   "overridden",
		   10, 7);
	expect_one(TUNNEL_T "    ssh_options: {controlpath: none}\n" ACTOR_A,
		   "tunnels.t.ssh_options.controlpath is managed by devbridge", 9, 19);
	expect_one(TUNNEL_T "    ssh_options: {ProxyJump: j, BatchMode: no}\n" ACTOR_A,
		   "BatchMode is managed", 9, 33);
	expect_one(TUNNEL_T "    ssh_options: {\"Proxy Jump\": x}\n" ACTOR_A,
		   "tunnels.t.ssh_options: invalid ssh option name 'Proxy Jump'", 9, 19);
	expect_one(TUNNEL_T "    ssh_options: {ProxyCommand: \"nc %h\\n%p\"}\n" ACTOR_A,
		   "tunnels.t.ssh_options.ProxyCommand: value must not contain a newline", 9, 33);
	expect_one(TUNNEL_T "    ssh_options: {ProxyJump: }\n" ACTOR_A,
		   "tunnels.t.ssh_options.ProxyJump: expected a string, got nothing", 9, 30);
	expect_one(TUNNEL_T "    ssh_options: {ProxyJump: a, proxyjump: b}\n" ACTOR_A,
		   "duplicate ssh option 'proxyjump' (first at line 9 as 'ProxyJump')", 9, 33);
	expect_one(TUNNEL_T "    ssh_options: [a]\n" ACTOR_A,
		   "tunnels.t.ssh_options: expected a mapping of ssh option names to values", 9,
		   18);

	/* Options that say what a tunnel field says: refused, naming the field. */
	expect_one(TUNNEL_T "    ssh_options: {Port: 2222}\n" ACTOR_A,
		   "tunnels.t.ssh_options.Port would override the tunnel's own field: set "
		   "tunnels.t.ssh_port instead",
		   9, 19);
	expect_one(TUNNEL_T "    ssh_options: {user: root}\n" ACTOR_A,
		   "set tunnels.t.ssh_user instead", 9, 19);
	expect_one(TUNNEL_T "    ssh_options: {HostName: other}\n" ACTOR_A,
		   "set tunnels.t.host instead", 9, 19);
	expect_one(TUNNEL_T "    ssh_options: {IdentityFile: /k2}\n" ACTOR_A,
		   "set tunnels.t.ssh_key instead", 9, 19);
	/* Keywords ssh refuses on its command line. */
	expect_one(TUNNEL_T "    ssh_options: {Match: all}\n" ACTOR_A,
		   "tunnels.t.ssh_options.Match: ssh does not accept 'Match' on the command line; "
		   "put it in the file named by ssh_config",
		   9, 19);
	expect_one(TUNNEL_T "    ssh_options: {include: x}\n" ACTOR_A,
		   "ssh does not accept 'Include' on the command line", 9, 19);
	expect_one(TUNNEL_T "    ssh_options: {Host: x}\n" ACTOR_A,
		   "ssh does not accept 'Host' on the command line", 9, 19);
	expect_one(TUNNEL_T "    ssh_options: {IdentitiesOnly: no}\n" ACTOR_A,
		   "IdentitiesOnly is managed by devbridge", 9, 19);
	/* host: user@h and ssh:// URIs. */
	expect_one("tunnels:\n  t:\n    host: alice@h.example.org\n    remote_port: 18000\n"
		   "    local_port: 8000\n    ssh_user: u\n    ssh_key: /k\n    actor: a\n" ACTOR_A,
		   "tunnels.t: host 'alice@h.example.org' names a user, which would override "
		   "ssh_user",
		   3, 11);
	expect_one("tunnels:\n  t:\n    host: ssh://h:2222\n    remote_port: 18000\n"
		   "    local_port: 8000\n    ssh_user: u\n    ssh_key: /k\n    actor: a\n" ACTOR_A,
		   "is an ssh:// URI", 3, 11);

	/* Every managed option, any case. */
	struct cfg_diags d = {0};
	const char *y = TUNNEL_T "    ssh_options:\n"
				 "      batchmode: no\n      EXITONFORWARDFAILURE: no\n"
				 "      ServerAliveInterval: 1\n      ServerAliveCountMax: 1\n"
				 "      ControlMaster: auto\n      ControlPath: x\n"
				 "      ControlPersist: yes\n      RemoteForward: x\n"
				 "      LocalForward: x\n      DynamicForward: x\n"
				 "      ClearAllForwardings: yes\n      PermitLocalCommand: yes\n"
				 "      LocalCommand: x\n      ProxyJump: ok\n"
				 "      UserKnownHostsFile: /dev/null\n" ACTOR_A;
	load_str_bad(y, strlen(y), &d);
	ASSERT_EQ(d.n, 13);
	cfg_diags_clear(&d);
}

static void test_services(void)
{
	expect_one("services:\n  - name: a\n    runtime: bridge\n",
		   "services[0]: runtime: bridge needs 'bridge_target' or 'bridge_intercept'", 2,
		   5);
	expect_one("services:\n  - name: a\n    runtime: host\n    bridge_target: {service: s, "
		   "port: 1}\n",
		   "services[0]: 'bridge_target' needs runtime: bridge", 4, 5);
	expect_one("services:\n  - name: a\n  - name: b\n  - name: a\n",
		   "services[2].name: duplicate service name 'a' (first at line 2)", 4, 11);
	expect_one("services:\n  - name: a/b\n",
		   "services[0].name: invalid name 'a/b': use letters, digits", 2, 11);
	expect_one("services:\n  - runtime: host\n", "services[0]: missing required field 'name'",
		   2, 5);
	expect_one("services:\n  - name: a\n    depends_on:\n      - {name: b, condition: up}\n",
		   "services[0].depends_on[0].condition: expected 'service_started', "
		   "'service_healthy' or 'service_completed_successfully', got \"up\"",
		   4, 30);
	expect_one("services:\n  - name: a\n    command: [go, [run]]\n",
		   "services[0].command[1]: expected a string, got a list", 3, 19);
	expect_one("services:\n  - name: a\n    runtime: bridge\n    bridge_intercept: {port: 1, "
		   "mode: copy, service: s}\n",
		   "services[0].bridge_intercept.mode: expected 'steal' or 'mirror', got \"copy\"",
		   4, 39);
	expect_one("services: {name: a}\n", "services: expected a list, got a mapping", 1, 11);
	expect_one("profiles:\n  p:\n    bridge:\n      targets:\n        - port: 1\n",
		   "profiles.p.bridge.targets[0]: missing required field 'service'", 5, 11);
	expect_one("profiles:\n  p: {bridge: {context: 1}, extra: 2}\n",
		   "profiles.p: unknown key 'extra'", 2, 29);
}

static void test_diag_cap(void)
{
	char y[1024];
	size_t o = 0;
	struct cfg_diags d = {0};

	for (int i = 0; i < CFG_MAX_DIAGS + 8; i++)
		o += (size_t)snprintf(y + o, sizeof y - o, "k%d: 1\n", i);
	load_str_bad(y, o, &d);
	ASSERT_EQ(d.n, CFG_MAX_DIAGS);
	ASSERT_EQ(d.dropped, 8);
	cfg_diags_clear(&d);
	ASSERT_EQ(d.n, 0);
	ASSERT(!d.file);
	cfg_diags_clear(&d);
	cfg_diags_clear(NULL);
	cfg_free(NULL);

	/* No diags to fill is allowed too. */
	struct cfg *cfg = NULL;
	ASSERT_EQ(cfg_load_buf("x", "zzz: 1\n", 7, &cfg, NULL), -EINVAL);
	ASSERT(!cfg);
}

static void test_name_valid(void)
{
	char n65[66];

	ASSERT(!cfg_name_valid("../x"));
	ASSERT(!cfg_name_valid("/"));
	ASSERT(!cfg_name_valid(""));
	ASSERT(!cfg_name_valid(NULL));
	ASSERT(!cfg_name_valid("a/b"));
	ASSERT(!cfg_name_valid("."));
	ASSERT(!cfg_name_valid(".."));
	ASSERT(!cfg_name_valid("-x"));
	ASSERT(!cfg_name_valid("a b"));
	ASSERT(!cfg_name_valid("a\nb"));
	ASSERT(cfg_name_valid("ok-name.1"));
	ASSERT(cfg_name_valid("_x"));
	ASSERT(cfg_name_valid("state-hub-coulombcore"));
	memset(n65, 'a', 65);
	n65[65] = '\0';
	ASSERT(!cfg_name_valid(n65));
	n65[64] = '\0';
	ASSERT(cfg_name_valid(n65));
}

static void test_edit_distance(void)
{
	ASSERT_EQ(edit_distance("kitten", "sitting", 5), 3);
	ASSERT_EQ(edit_distance("remote_prot", "remote_port", 2), 2);
	ASSERT_EQ(edit_distance("same", "same", 0), 0);
	ASSERT_EQ(edit_distance("", "abc", 5), 3);
	ASSERT_EQ(edit_distance("abc", "", 5), 3);
	ASSERT_EQ(edit_distance("abc", "xyz", 1), 2);  /* capped */
	ASSERT_EQ(edit_distance("a", "abcdef", 2), 3); /* length gap alone */
	ASSERT_EQ(edit_distance("abcdefgh", "hgfedcba", 3), 4);
	ASSERT_EQ(edit_distance("tunels", "tunnels", 2), 1);
	ASSERT_EQ(edit_distance("x", "y", INT_MAX), 1);
}

static void test_expand_home(void)
{
	char *s;

	setenv("HOME", "/h", 1);
	ASSERT_STR_EQ(s = expand_home("~/x/y"), "/h/x/y");
	free(s);
	ASSERT_STR_EQ(s = expand_home("~"), "/h");
	free(s);
	ASSERT_STR_EQ(s = expand_home("/abs/~/x"), "/abs/~/x");
	free(s);
	ASSERT_STR_EQ(s = expand_home("~user/x"), "~user/x");
	free(s);
	ASSERT_STR_EQ(s = expand_home("rel"), "rel");
	free(s);
	setenv("HOME", "/h/", 1);
	ASSERT_STR_EQ(s = expand_home("~/x"), "/h/x");
	free(s);
	setenv("HOME", "/", 1);
	ASSERT_STR_EQ(s = expand_home("~/x"), "/x");
	free(s);
	ASSERT_STR_EQ(s = expand_home("~"), "/");
	free(s);
	ASSERT(!expand_home(NULL));
	setenv("HOME", HOME, 1);
}

static void write_file(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ASSERT_GE(fd, 0);
	ASSERT_EQ(write(fd, "key\n", 4), 4);
	ASSERT_EQ(fchmod(fd, mode), 0);
	close(fd);
}

static void test_check_files(void)
{
	char dir[] = "/tmp/test_config.XXXXXX", key[128], sshcfg[128], yaml[1024];
	struct cfg_diags d = {0};
	struct cfg *cfg;

	ASSERT(mkdtemp(dir));
	snprintf(key, sizeof key, "%s/id_ops", dir);
	snprintf(sshcfg, sizeof sshcfg, "%s/ssh_config", dir);
	snprintf(yaml, sizeof yaml,
		 "tunnels:\n  t:\n    host: h\n    remote_port: 1\n    local_port: 2\n"
		 "    ssh_user: u\n    ssh_key: %s\n    actor: a\n    ssh_config: %s\n" ACTOR_A,
		 key, sshcfg);
	cfg = load_str_ok(yaml);
	ASSERT_EQ(cfg->tunnels[0].ssh_key_mark.line, 7);
	ASSERT_EQ(cfg->tunnels[0].ssh_key_mark.col, 14);

	write_file(key, 0644);
	write_file(sshcfg, 0644);
	ASSERT_EQ(cfg_check_files(cfg, NULL, &d), -EINVAL);
	ASSERT_EQ(d.n, 1);
	ASSERT_STR_CONTAINS(d.items[0].msg, "tunnels.t.ssh_key: ");
	ASSERT_STR_CONTAINS(d.items[0].msg, key);
	ASSERT_STR_CONTAINS(d.items[0].msg,
			    " is readable by group or others (mode 0644); chmod 600 it");
	ASSERT_EQ(d.items[0].mark.line, 7);
	ASSERT_EQ(d.items[0].mark.col, 14);
	ASSERT_STR_EQ(d.file, "inline.yaml");
	cfg_diags_clear(&d);

	ASSERT_EQ(chmod(key, 0600), 0);
	ASSERT_EQ(cfg_check_files(cfg, NULL, &d), 0);
	ASSERT_EQ(cfg_check_files(cfg, &cfg->tunnels[0], &d), 0);
	ASSERT_EQ(d.n, 0);

	ASSERT_EQ(unlink(sshcfg), 0);
	ASSERT_EQ(cfg_check_files(cfg, &cfg->tunnels[0], &d), -EINVAL);
	ASSERT_EQ(d.n, 1);
	ASSERT_STR_CONTAINS(d.items[0].msg, "tunnels.t.ssh_config: ");
	ASSERT_STR_CONTAINS(d.items[0].msg, ": No such file or directory");
	ASSERT_EQ(d.items[0].mark.line, 9);
	cfg_diags_clear(&d);
	write_file(sshcfg, 0644); /* only the key's mode matters */

	ASSERT_EQ(unlink(key), 0);
	ASSERT_EQ(cfg_check_files(cfg, NULL, &d), -EINVAL);
	ASSERT_EQ(d.n, 1);
	char want[256];
	snprintf(want, sizeof want, "tunnels.t.ssh_key: %s: No such file or directory", key);
	ASSERT_STR_EQ(d.items[0].msg, want);
	cfg_diags_clear(&d);

	ASSERT_EQ(mkdir(key, 0700), 0);
	ASSERT_EQ(cfg_check_files(cfg, NULL, &d), -EINVAL);
	ASSERT_STR_CONTAINS(d.items[0].msg, "is not a regular file");
	cfg_diags_clear(&d);
	ASSERT_EQ(rmdir(key), 0);
	ASSERT_EQ(unlink(sshcfg), 0);
	ASSERT_EQ(rmdir(dir), 0);
	cfg_free(cfg);
}

static void touch(const char *path)
{
	write_file(path, 0600);
}

static void expect_resolved(const char *want)
{
	char *p = NULL;

	ASSERT_EQ(cfg_resolve_path(NULL, &p), 0);
	ASSERT_STR_EQ(p, want);
	free(p);
}

static void test_resolve_path(void)
{
	char dir[] = "/tmp/test_config.XXXXXX", old[PATH_MAX], path[PATH_MAX * 2],
	     home[PATH_MAX + 8], cwd[PATH_MAX];
	char *p = NULL;

	ASSERT(getcwd(old, sizeof old));
	ASSERT(mkdtemp(dir));
	ASSERT_EQ(chdir(dir), 0);
	ASSERT(getcwd(cwd, sizeof cwd));
	snprintf(home, sizeof home, "%s/home", cwd);
	ASSERT_EQ(mkdir(home, 0700), 0);
	setenv("HOME", home, 1);
	unsetenv("DEVBRIDGE_CONFIG");
	unsetenv("BRIDGE_CONFIG");

	ASSERT_EQ(cfg_resolve_path(NULL, &p), -ENOENT);
	ASSERT(!p);

	/* Explicit ones win and need not exist. */
	ASSERT_EQ(cfg_resolve_path("/nonexistent/x.yaml", &p), 0);
	ASSERT_STR_EQ(p, "/nonexistent/x.yaml");
	free(p);
	setenv("BRIDGE_CONFIG", "/b.yaml", 1);
	expect_resolved("/b.yaml");
	setenv("DEVBRIDGE_CONFIG", "~/d.yaml", 1);
	snprintf(path, sizeof path, "%s/d.yaml", home);
	expect_resolved(path);
	ASSERT_EQ(cfg_resolve_path("opt.yaml", &p), 0);
	ASSERT_STR_EQ(p, "opt.yaml");
	free(p);
	setenv("DEVBRIDGE_CONFIG", "", 1); /* empty = unset */
	expect_resolved("/b.yaml");
	unsetenv("DEVBRIDGE_CONFIG");
	unsetenv("BRIDGE_CONFIG");

	/* The implicit ones only when they exist, in order. */
	ASSERT_EQ(mkdir("home/.config", 0700), 0);
	ASSERT_EQ(mkdir("home/.config/bridge", 0700), 0);
	ASSERT_EQ(mkdir("home/.config/devbridge", 0700), 0);
	touch("home/.config/bridge/tunnels.yaml");
	snprintf(path, sizeof path, "%s/.config/bridge/tunnels.yaml", home);
	expect_resolved(path);
	touch("home/.config/devbridge/config.yaml");
	snprintf(path, sizeof path, "%s/.config/devbridge/config.yaml", home);
	expect_resolved(path);
	touch("devx.yaml");
	snprintf(path, sizeof path, "%s/devx.yaml", cwd);
	expect_resolved(path);
	touch("devbridge.yaml");
	snprintf(path, sizeof path, "%s/devbridge.yaml", cwd);
	expect_resolved(path);

	ASSERT_EQ(unlink("devbridge.yaml"), 0);
	ASSERT_EQ(unlink("devx.yaml"), 0);
	ASSERT_EQ(unlink("home/.config/devbridge/config.yaml"), 0);
	ASSERT_EQ(unlink("home/.config/bridge/tunnels.yaml"), 0);
	ASSERT_EQ(rmdir("home/.config/devbridge"), 0);
	ASSERT_EQ(rmdir("home/.config/bridge"), 0);
	ASSERT_EQ(rmdir("home/.config"), 0);
	ASSERT_EQ(rmdir("home"), 0);
	ASSERT_EQ(chdir(old), 0);
	ASSERT_EQ(rmdir(dir), 0);
	setenv("HOME", HOME, 1);
}

/* Two loads of the same file into one cfg_diags: marks stay valid. */
static void test_diags_reuse(void)
{
	struct cfg_diags d = {0};
	struct cfg *cfg = NULL;

	load_str_bad("zzz: 1\n", 7, &d);
	ASSERT_EQ(cfg_load_buf("inline.yaml", "yyy: 1\n", 7, &cfg, &d), -EINVAL);
	ASSERT_EQ(d.n, 2);
	ASSERT(d.items[0].mark.file == d.file && d.items[1].mark.file == d.file);
	cfg_diags_clear(&d);
}

/* One namespace of bridge names (REVIEW 7): tunnels, services and
 * connect's Kubernetes bridges (SVC.NS.PORT) share the state directory, so
 * a name two of them could take is refused at load, where it is. */
#define T_AT(name)                                                                                 \
	"tunnels:\n"                                                                               \
	"  " name ":\n"                                                                            \
	"    host: h\n"                                                                            \
	"    remote_port: 1\n"                                                                     \
	"    local_port: 2\n"                                                                      \
	"    ssh_user: u\n"                                                                        \
	"    ssh_key: /k\n"                                                                        \
	"    actor: a\n" ACTOR_A

static void test_names_k8s_form(void)
{
	/* exactly the name `connect -t web:80` gives its bridge */
	expect_one(T_AT("web.default.80"),
		   "tunnel name 'web.default.80' has the form connect gives its Kubernetes "
		   "bridges (SERVICE.NAMESPACE.PORT, as for `connect -t SERVICE:PORT`)",
		   2, 3);
	/* ... and one of bridge.targets: the message names its line */
	expect_one(
	    T_AT("payments-api.staging.8080") "bridge:\n"
					      "  namespace: staging\n"
					      "  targets:\n"
					      "    - service: payments-api\n"
					      "      port: 8080\n",
	    "tunnel name 'payments-api.staging.8080' is the name of the Kubernetes bridge to "
	    "the target at line 14",
	    2, 3);
	/* a profile's targets, in the profile's namespace */
	expect_one(
	    T_AT("api.critical.8080") "profiles:\n"
				      "  debug:\n"
				      "    bridge: {namespace: critical, targets: [{service: api, "
				      "port: 8080}]}\n",
	    "the Kubernetes bridge to the target at line 13", 2, 3);
	/* the target's own namespace wins */
	expect_one(
	    T_AT(
		"redis.cache.6379") "bridge:\n"
				    "  namespace: default\n"
				    "  targets: [{service: redis, namespace: cache, port: 6379}]\n",
	    "the Kubernetes bridge to the target at line 13", 2, 3);
	/* the hashed form of a long name (55 characters, '-', 8 hex digits) */
	expect_one(T_AT("a123456789b123456789c123456789d123456789e123456789f1234-0123abcd"),
		   "has the form connect gives its Kubernetes bridges", 2, 3);
	/* near misses are ordinary names */
	static const char *const fine[] = {
	    "web.default",
	    "web.default.80.x",
	    "web.Default.80",
	    "web.default.080",
	    "web.default.70000",
	    "web..80",
	    "-web.default.80",
	    "a123456789b123456789c123456789d123456789e123456789f1234-0123abcG"};
	for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
		char y[512];
		snprintf(y, sizeof y,
			 "tunnels:\n  '%s':\n    host: h\n    remote_port: 1\n    local_port: 2\n"
			 "    ssh_user: u\n    ssh_key: /k\n    actor: a\n" ACTOR_A,
			 fine[i]);
		struct cfg_diags d = {0};
		struct cfg *cfg = NULL;
		int r = cfg_load_buf("inline.yaml", y, strlen(y), &cfg, &d);
		for (size_t j = 0; j < d.n; j++)
			ASSERT(!strstr(d.items[j].msg, "Kubernetes"));
		ASSERT(r == 0 || !cfg_name_valid(fine[i]));
		cfg_free(cfg);
		cfg_diags_clear(&d);
	}
}

static void test_names_long_target(void)
{
	/* a target whose SVC.NS.PORT is past 64 characters: the name connect
	 * gives it is cut and hashed, and still refused for a tunnel */
	char name[80];
	k8s_bridge_name(name, sizeof name,
			"a-service-name-that-is-long-enough-to-need-cutting-when-named", "ns",
			8080);
	ASSERT_EQ(strlen(name), 64);
	char y[1024];
	snprintf(y, sizeof y,
		 "tunnels:\n  %s:\n    host: h\n    remote_port: 1\n    local_port: 2\n"
		 "    ssh_user: u\n    ssh_key: /k\n    actor: a\n" ACTOR_A
		 "bridge:\n  namespace: ns\n  targets:\n"
		 "    - {service: a-service-name-that-is-long-enough-to-need-cutting-when-named, "
		 "port: 8080}\n",
		 name);
	expect_one(y, "the Kubernetes bridge to the target at line 14", 2, 3);
}

static void test_names_services(void)
{
	/* a tunnel and a service of one name: said at the second, naming the
	 * first */
	expect_one(T_AT("api") "services:\n"
			       "  - name: api\n"
			       "    runtime: host\n",
		   "service name 'api' is taken by the tunnel at line 2: tunnels and services "
		   "share one namespace",
		   12, 11);
	expect_one("services:\n"
		   "  - name: api\n" T_AT("api"),
		   "tunnel name 'api' is taken by the service at line 2", 4, 3);
	/* services: the daemons' names and connect's are not theirs either */
	expect_one("services:\n  - name: host-daemon\n",
		   "service name 'host-daemon' is reserved for devbridge's daemons", 2, 11);
	expect_one("services:\n  - {name: container-daemon}\n", "is reserved", 2, 12);
	expect_one(
	    "services:\n  - name: web.default.80\n",
	    "service name 'web.default.80' has the form connect gives its Kubernetes bridges", 2,
	    11);
	/* depends_on names stay shown, not refused (seed 000 names one it
	 * lacks), and a service may depend on a tunnel's name */
	struct cfg *cfg = load_str_ok(T_AT("db") "services:\n"
						 "  - name: web\n"
						 "    depends_on: [{name: nowhere}, {name: db}]\n");
	ASSERT_EQ(cfg->n_services, 1);
	ASSERT_EQ(cfg->services[0].name_mark.line, 12);
	ASSERT_EQ(cfg->services[0].name_mark.col, 11);
	cfg_free(cfg);
}

int main(void)
{
	setenv("HOME", HOME, 1);
	RUN(test_seed003_minimal);
	RUN(test_relative_paths);
	RUN(test_container_section_stored);
	RUN(test_reserved_tunnel_name);
	RUN(test_seed003_full);
	RUN(test_seed000);
	RUN(test_seed000_bridge_stored);
	RUN(test_seed000_services_stored);
	RUN(test_k8s_lengths);
	RUN(test_lint);
	RUN(test_seed000_profiles);
	RUN(test_profile_overlay);
	RUN(test_bridge_lists);
	RUN(test_all_fields);
	RUN(test_aliases);
	RUN(test_empty);
	RUN(test_bad_files);
	RUN(test_missing_file);
	RUN(test_unknown_keys);
	RUN(test_syntax_error);
	RUN(test_duplicate_key);
	RUN(test_alias_bomb);
	RUN(test_deep_nesting_while_parsing);
	RUN(test_merge_keys);
	RUN(test_types);
	RUN(test_messages);
	RUN(test_tunnel_checks);
	RUN(test_ssh_options);
	RUN(test_services);
	RUN(test_diag_cap);
	RUN(test_diags_reuse);
	RUN(test_name_valid);
	RUN(test_edit_distance);
	RUN(test_expand_home);
	RUN(test_check_files);
	RUN(test_resolve_path);
	RUN(test_names_k8s_form);
	RUN(test_names_long_target);
	RUN(test_names_services);
	return 0;
}
