/* config.c - see config.h: the top level of the file, and what spans the
 * worlds' sections. */
#include "app/config.h"
#include "app/app.h"
#include "app/catalog.h"
#include "core/state.h"
#include "core/util.h"
#include "k8s/target.h"

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
	PATH("catalog_path", 0, CFG(catalog_path), CFG(catalog_path_mark)),
	MAP("bridge", &k8s_bridge_schema, CFG(bridge)),
	NAMED("profiles", "profile", &k8s_profile_schema, CFG(profiles), struct cfg_profile,
	      k8s_profile_init),
	FUNCAT("services", k8s_load_services, CFG(services)),
	MAP("container", &container_config_schema, CFG(container)),
};
static SCHEMA(top_schema, top_fields, top_post);
/* clang-format on */

/* ---- one namespace of bridge names ------------------------------------ */

/* Tunnels, services and connect's Kubernetes bridges all keep NAME.pid,
 * NAME.state and NAME.log in one state directory, so a name two kinds could
 * take is refused here, at load, rather than found out when the second one
 * starts and finds the first one's lock (or status shows one for the
 * other). */

/* The target of bridge.targets (top level or a profile's) whose connect
 * bridge is named `name`, when its namespace is in the file. */
static const struct cfg_target *target_named(const struct cfg *c, const char *name)
{
	char buf[80];

	for (size_t p = 0; p <= c->n_profiles; p++) {
		struct cfg_bridge b;

		if (cfg_bridge_resolve(c, p ? c->profiles[p - 1].name : NULL, &b) < 0)
			continue;
		for (size_t i = 0; i < b.n_targets; i++) {
			const struct cfg_target *t = &b.targets[i];
			const char *ns = t->namespace ? t->namespace : b.namespace;

			if (!t->service || !t->port || !ns)
				continue;
			k8s_bridge_name(buf, sizeof buf, t->service, ns, t->port);
			if (strcmp(buf, name) == 0)
				return t;
		}
	}
	return NULL;
}

/* A tunnel's or a service's name that connect could give a bridge. */
static void check_k8s_like(struct schema_loader *l, const struct cfg *c, const char *kind,
			   const char *name, struct cfg_mark at)
{
	const struct cfg_target *t;

	if (!k8s_bridge_name_like(name))
		return;
	if ((t = target_named(c, name)))
		schema_diag_at(l, at,
			       "%s name '%s' is the name of the Kubernetes bridge to the target at "
			       "line %d (SERVICE.NAMESPACE.PORT): bridges share one namespace in "
			       "the state directory; rename the %s",
			       kind, name, t->mark.line, kind);
	else
		schema_diag_at(
		    l, at,
		    "%s name '%s' has the form connect gives its Kubernetes bridges (%s): "
		    "bridges share one namespace in the state directory; rename the %s",
		    kind, name,
		    strlen(name) == 64
			? "55 characters of SERVICE.NAMESPACE.PORT and a hash, as a long "
			  "one is cut"
			: "SERVICE.NAMESPACE.PORT, as for `connect -t SERVICE:PORT`",
		    kind);
}

static bool mark_before(struct cfg_mark a, struct cfg_mark b)
{
	return a.line < b.line || (a.line == b.line && a.col < b.col);
}

/* Names here passed cfg_name_valid: safe in a message as they are. */
static void check_names(struct schema_loader *l, const struct cfg *c)
{
	for (size_t i = 0; i < c->n_tunnels; i++) {
		const struct cfg_tunnel *t = &c->tunnels[i];

		/* An invalid or reserved name has had its diagnostic. */
		if (t->name && cfg_name_valid(t->name))
			check_k8s_like(l, c, "tunnel", t->name, t->mark);
	}
	for (size_t i = 0; i < c->n_services; i++) {
		const struct cfg_service *v = &c->services[i];
		const struct cfg_tunnel *t;

		if (!v->name || !cfg_name_valid(v->name))
			continue;
		if (state_name_reserved(v->name)) {
			schema_diag_at(l, v->name_mark,
				       "service name '%s' is reserved for devbridge's daemons",
				       v->name);
			continue;
		}
		check_k8s_like(l, c, "service", v->name, v->name_mark);
		if (!(t = cfg_find_tunnel(c, v->name)))
			continue;
		/* Said where the second one is, naming the first. */
		if (mark_before(t->mark, v->name_mark))
			schema_diag_at(
			    l, v->name_mark,
			    "service name '%s' is taken by the tunnel at line %d: tunnels "
			    "and services share one namespace in the state directory; "
			    "rename one",
			    v->name, t->mark.line);
		else
			schema_diag_at(
			    l, t->mark,
			    "tunnel name '%s' is taken by the service at line %d: tunnels "
			    "and services share one namespace in the state directory; "
			    "rename one",
			    t->name, v->name_mark.line);
	}
}

/* Checks across entries and sections, once the whole file is read. */
static void check(struct schema_loader *l, void *base)
{
	const struct cfg *c = base;

	ssh_config_check(l, c->tunnels, c->n_tunnels, c->actors, c->n_actors);
	check_names(l, c);
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

/* The catalog's bridges into c (docs/catalog.md). */
static int load_catalog(struct cfg *c, struct cfg_diags *diags)
{
	struct catalog *cat = NULL;
	int r = catalog_read(c, &cat, diags);

	if (r < 0) {
		catalog_free(cat);
		return r;
	}
	return catalog_merge(c, cat);
}

int cfg_load_flags(const char *path, unsigned flags, struct cfg **ret, struct cfg_diags *diags)
{
	struct cfg *c = NULL;
	size_t len = 0;
	char *buf = NULL;
	int r;

	r = schema_read_file(path, &buf, &len, diags);
	if (r < 0)
		return r;
	r = cfg_load_buf(path, buf, len, &c, diags);
	free(buf);
	if (r == 0 && c->catalog_path && !(flags & CFG_LOAD_NO_CATALOG))
		r = load_catalog(c, diags);
	if (r < 0) {
		cfg_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

int cfg_load(const char *path, struct cfg **ret, struct cfg_diags *diags)
{
	return cfg_load_flags(path, 0, ret, diags);
}

int app_config_error(const struct cfg_diags *d, json_t **ret_diags, struct err *e)
{
	char first[CFG_DIAG_LINE_MAX] = "";

	if (d->n)
		cfg_diag_format(first, sizeof first, d->items[0].mark, "%s", d->items[0].msg);
	if (ret_diags)
		*ret_diags = cfg_diags_json(d);
	return err_set(e, EXIT_CONFIG, "invalid configuration: %s", first);
}

int app_load_config(const char *path, unsigned flags, struct cfg **ret, struct cfg_diags *d,
		    struct err *e)
{
	int r;

	if (strcmp(path, APP_NO_CONFIG) == 0)
		r = cfg_load_buf(path, "", 0, ret, d);
	else
		r = cfg_load_flags(path, flags, ret, d);
	if (r == 0)
		return 0;
	if (d->n)
		return app_config_error(d, NULL, e);
	if (r == -ENOMEM)
		return err_set(e, EXIT_ERROR, "out of memory");
	return err_set(e, EXIT_CONFIG, "%s: %s", path, strerror(-r));
}

int cfg_check_files(const struct cfg *cfg, const struct cfg_tunnel *only, struct cfg_diags *diags)
{
	if (!cfg)
		return -EINVAL;
	return ssh_config_check_files(cfg->tunnels, cfg->n_tunnels, only, cfg->path, diags);
}

size_t cfg_lint(const struct cfg *cfg, struct cfg_diags *w)
{
	return cfg ? ssh_config_lint(cfg->tunnels, cfg->n_tunnels, w) +
			 catalog_lint(cfg->catalog, w)
		   : 0;
}

void cfg_free(struct cfg *cfg)
{
	if (!cfg)
		return;
	ssh_tunnels_free(cfg->tunnels, cfg->n_tunnels);
	ssh_actors_free(cfg->actors, cfg->n_actors);
	free(cfg->catalog_path);
	catalog_free(cfg->catalog);
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
