/* config.c - see config.h: the top level of the file, and what spans the
 * worlds' sections. */
#include "app/config.h"
#include "core/util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the top level (SPEC §3) ------------------------------------------ */

static void top_post(struct schema_loader *l, const struct schema *s,
		     const struct schema_seen *seen, yaml_mark_t at, void *base)
{
	struct cfg *c = base;

	(void)l;
	(void)at;
	c->has_bridge = schema_seen(s, seen, "bridge")->key != NULL;
	c->has_services = schema_seen(s, seen, "services")->key != NULL;
	c->has_container = schema_seen(s, seen, "container")->key != NULL;
}

#define CFG(m) AT(struct cfg, m)
/* LISTOF's `T *items; size_t n;` layout, as the engine fills it. */
#define PAIR(items, n) (offsetof(struct cfg, n) == offsetof(struct cfg, items) + sizeof(void *))
_Static_assert(PAIR(tunnels, n_tunnels) && PAIR(actors, n_actors) && PAIR(services, n_services) &&
		   PAIR(profiles, n_profiles),
	       "struct cfg: each array is followed by its count");

/* The sections, in the order a "did you mean" or an "expected one of"
 * names them. */
/* clang-format off */
static const struct schema_field top_fields[] = {
	NAMED("tunnels", "tunnel", &ssh_tunnel_schema, CFG(tunnels), struct cfg_tunnel,
	      ssh_tunnel_init),
	NAMED("actors", "actor", &ssh_actor_schema, CFG(actors), struct cfg_actor, ssh_actor_init),
	PATH("catalog_path", 0, CFG(catalog_path), 0),
	MAP("bridge", &k8s_bridge_schema, CFG(bridge)),
	NAMED("profiles", "profile", &k8s_profile_schema, CFG(profiles), struct cfg_profile,
	      k8s_profile_init),
	FUNCAT("services", k8s_load_services, CFG(services)),
	MAP("container", &container_config_schema, CFG(container)),
};
static SCHEMA(top_schema, top_fields, top_post);
/* clang-format on */

/* Checks across entries and sections, once the whole file is read. */
static void check(struct schema_loader *l, void *base)
{
	const struct cfg *c = base;

	ssh_config_check(l, c->tunnels, c->n_tunnels, c->actors, c->n_actors);
}

/* ---- loading ---------------------------------------------------------- */

int cfg_load_buf(const char *name, const char *buf, size_t len, struct cfg **ret,
		 struct cfg_diags *diags)
{
	struct cfg *c = calloc(1, sizeof *c);
	int r;

	if (!c)
		return -ENOMEM;
	container_config_init(&c->container);
	c->path = strdup(name ? name : "<config>");
	if (!c->path) {
		cfg_free(c);
		return -ENOMEM;
	}
	const struct schema_doc doc = {
	    .file = c->path,
	    .top = &top_schema,
	    .top_what = "a mapping of sections (tunnels:, actors:, bridge:, ...)",
	    .check = check,
	};
	r = schema_load(&doc, buf, len, c, diags);
	if (r < 0) {
		cfg_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

int cfg_load(const char *path, struct cfg **ret, struct cfg_diags *diags)
{
	size_t len = 0;
	char *buf = NULL;
	int r;

	r = schema_read_file(path, &buf, &len, diags);
	if (r < 0)
		return r;
	r = cfg_load_buf(path, buf, len, ret, diags);
	free(buf);
	return r;
}

int cfg_check_files(const struct cfg *cfg, const struct cfg_tunnel *only, struct cfg_diags *diags)
{
	if (!cfg)
		return -EINVAL;
	return ssh_config_check_files(cfg->tunnels, cfg->n_tunnels, only, cfg->path, diags);
}

size_t cfg_lint(const struct cfg *cfg, struct cfg_diags *w)
{
	return cfg ? ssh_config_lint(cfg->tunnels, cfg->n_tunnels, w) : 0;
}

void cfg_free(struct cfg *cfg)
{
	if (!cfg)
		return;
	ssh_tunnels_free(cfg->tunnels, cfg->n_tunnels);
	ssh_actors_free(cfg->actors, cfg->n_actors);
	free(cfg->catalog_path);
	container_config_clear(&cfg->container);
	k8s_bridge_clear(&cfg->bridge);
	k8s_services_free(cfg->services, cfg->n_services);
	k8s_profiles_free(cfg->profiles, cfg->n_profiles);
	free(cfg->path);
	free(cfg);
}

/* ---- lookups ---------------------------------------------------------- */

const struct cfg_tunnel *cfg_find_tunnel(const struct cfg *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_tunnels; i++)
		if (cfg->tunnels[i].name && strcmp(cfg->tunnels[i].name, name) == 0)
			return &cfg->tunnels[i];
	return NULL;
}

const struct cfg_actor *cfg_find_actor(const struct cfg *cfg, const char *name)
{
	return cfg ? ssh_find_actor(cfg->actors, cfg->n_actors, name) : NULL;
}

const struct cfg_service *cfg_find_service(const struct cfg *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_services; i++)
		if (cfg->services[i].name && strcmp(cfg->services[i].name, name) == 0)
			return &cfg->services[i];
	return NULL;
}

const struct cfg_profile *cfg_find_profile(const struct cfg *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_profiles; i++)
		if (cfg->profiles[i].name && strcmp(cfg->profiles[i].name, name) == 0)
			return &cfg->profiles[i];
	return NULL;
}

int cfg_bridge_resolve(const struct cfg *cfg, const char *profile, struct cfg_bridge *out)
{
	const struct cfg_profile *p = NULL;
	const struct cfg_bridge *o;
	struct cfg_bridge b;

	if (!cfg || !out)
		return -EINVAL;
	if (profile && !(p = cfg_find_profile(cfg, profile)))
		return -ENOENT;
	b = cfg->bridge;
	if (p) {
		o = &p->bridge;
		if (o->kubeconfig)
			b.kubeconfig = o->kubeconfig;
		if (o->context)
			b.context = o->context;
		if (o->namespace)
			b.namespace = o->namespace;
		if (o->agent_image)
			b.agent_image = o->agent_image;
		if (o->targets_set) {
			b.targets = o->targets;
			b.n_targets = o->n_targets;
			b.targets_set = true;
		}
		if (o->intercepts_set) {
			b.intercepts = o->intercepts;
			b.n_intercepts = o->n_intercepts;
			b.intercepts_set = true;
		}
	}
	*out = b;
	return 0;
}

const char *cfg_profile_suggest(const struct cfg *cfg, const char *name)
{
	const char *best = NULL;
	int bestd = INT_MAX;

	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_profiles; i++)
		if (cfg->profiles[i].name)
			schema_suggest(name, cfg->profiles[i].name, &best, &bestd);
	return best;
}

/* ---- which file (SPEC §3) --------------------------------------------- */

static int take_path(const char *p, char **ret_path)
{
	char *s = expand_home(p);

	if (!s)
		return -ENOMEM;
	*ret_path = s;
	return 0;
}

int cfg_resolve_path(const char *opt, char **ret_path)
{
	static const char *const envs[] = {"DEVBRIDGE_CONFIG", "BRIDGE_CONFIG"};
	static const char *const here[] = {"devbridge.yaml", "devx.yaml"};
	static const char *const home[] = {"~/.config/devbridge/config.yaml",
					   "~/.config/bridge/tunnels.yaml"};

	if (opt)
		return take_path(opt, ret_path);
	for (size_t i = 0; i < ARRAY_SIZE(envs); i++) {
		const char *v = getenv(envs[i]);
		if (v && *v)
			return take_path(v, ret_path);
	}
	for (size_t i = 0; i < ARRAY_SIZE(here); i++) {
		char *cwd, *p;
		int n;

		if (access(here[i], F_OK) < 0)
			continue;
		/* Absolute, so that a supervisor started from elsewhere (or
		 * that chdir()s) still finds the same file. */
		cwd = getcwd(NULL, 0);
		n = cwd ? asprintf(&p, "%s/%s", strcmp(cwd, "/") ? cwd : "", here[i])
			: asprintf(&p, "./%s", here[i]);
		free(cwd);
		if (n < 0)
			return -ENOMEM;
		*ret_path = p;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(home); i++) {
		char *p = expand_home(home[i]);

		if (!p)
			return -ENOMEM;
		if (p[0] != '~' && access(p, F_OK) == 0) {
			*ret_path = p;
			return 0;
		}
		free(p);
	}
	return -ENOENT;
}
