/* k8s_config.c - see k8s_config.h. */
#include "k8s/k8s_config.h"

#include <stdlib.h>
#include <string.h>

/* Enum names, in the order of k8s_config.h's enums. */
static const char *const mode_names[] = {"steal", "mirror", NULL};
static const char *const runtime_names[] = {"bridge", "host", NULL};
static const char *const condition_names[] = {"service_started", "service_healthy",
					      "service_completed_successfully", NULL};

static const struct schema service_schema;

static void bridge_post(struct schema_loader *l, const struct schema *s,
			const struct schema_seen *seen, yaml_mark_t at, void *base)
{
	struct cfg_bridge *b = base;

	(void)l;
	(void)at;
	if (!b)
		return;
	/* An empty list in a profile still replaces the top-level one. */
	b->targets_set = schema_seen(s, seen, "targets")->key != NULL;
	b->intercepts_set = schema_seen(s, seen, "intercepts")->key != NULL;
}

static void profile_post(struct schema_loader *l, const struct schema *s,
			 const struct schema_seen *seen, yaml_mark_t at, void *base)
{
	struct cfg_profile *p = base;

	(void)l;
	(void)at;
	if (p)
		p->has_bridge = schema_seen(s, seen, "bridge")->key != NULL;
}

void k8s_profile_init(struct schema_loader *l, const yaml_node_t *key, void *profile)
{
	struct cfg_profile *p = profile;

	if (p && !(p->name = strdup(schema_sval(key))))
		schema_oom(l);
}

static void service_post(struct schema_loader *l, const struct schema *s,
			 const struct schema_seen *seen, yaml_mark_t at, void *base)
{
	const struct schema_seen *rt = schema_seen(s, seen, "runtime");
	const struct schema_seen *bt = schema_seen(s, seen, "bridge_target");
	const struct schema_seen *bi = schema_seen(s, seen, "bridge_intercept");
	bool bridge = rt->val && rt->val->type == YAML_SCALAR_NODE &&
		      strcmp(schema_sval(rt->val), "bridge") == 0;
	struct cfg_service *svc = base;

	if (svc) {
		if (!rt->key)
			svc->runtime = SERVICE_HOST;
		svc->has_target = bt->key != NULL;
		svc->has_intercept = bi->key != NULL;
		if (svc->has_target)
			svc->target.mark = schema_mark(l, bt->key->start_mark);
		if (svc->has_intercept)
			svc->intercept.mark = schema_mark(l, bi->key->start_mark);
	}
	if (bridge && !bt->key && !bi->key)
		schema_pdiag(l, at, "runtime: bridge needs 'bridge_target' or 'bridge_intercept'");
	else if (bridge && bt->key && bi->key)
		schema_pdiag(l, bi->key->start_mark,
			     "'bridge_target' and 'bridge_intercept' are mutually exclusive");
	else if (!bridge && (bt->key || bi->key))
		schema_pdiag(l, (bt->key ? bt : bi)->key->start_mark, "'%s' needs runtime: bridge",
			     bt->key ? "bridge_target" : "bridge_intercept");
}

void k8s_load_services(struct schema_loader *l, yaml_node_t *seq, void *services)
{
	char e[SCHEMA_ESC_BUF];

	schema_walk_list(l, seq, &service_schema, services, sizeof(struct cfg_service),
			 AT(struct cfg_service, mark));
	if (seq->type != YAML_SEQUENCE_NODE)
		return;
	/* Names key the dependency graph and the state files. */
	for (yaml_node_item_t *i = seq->data.sequence.items.start; i < seq->data.sequence.items.top;
	     i++) {
		const yaml_node_t *a = schema_map_get(l, schema_node(l, *i), "name");
		if (!a || a->type != YAML_SCALAR_NODE)
			continue;
		for (yaml_node_item_t *j = seq->data.sequence.items.start; j < i; j++) {
			const yaml_node_t *b = schema_map_get(l, schema_node(l, *j), "name");
			if (b && b->type == YAML_SCALAR_NODE &&
			    strcmp(schema_sval(a), schema_sval(b)) == 0) {
				size_t old = schema_path_index(
				    l, (size_t)(i - seq->data.sequence.items.start));
				schema_path_push(l, "name");
				schema_pdiag(l, a->start_mark,
					     "duplicate service name '%s' (first at line %zu)",
					     schema_esc(e, schema_sval(a)), b->start_mark.line + 1);
				schema_path_pop(l, old);
				break;
			}
		}
	}
}

/* ---- the tables -------------------------------------------------------- */

/* clang-format off */
#define TGT(m) AT(struct cfg_target, m)
#define ICP(m) AT(struct cfg_intercept, m)
#define BRG(m) AT(struct cfg_bridge, m)
_Static_assert(sizeof(enum intercept_mode) == sizeof(int), "K_ENUM stores an int");
/* LISTOF's `T *items; size_t n;` layout, as list_grow reads it. */
_Static_assert(offsetof(struct cfg_bridge, n_targets) ==
		   offsetof(struct cfg_bridge, targets) + sizeof(void *), "targets, n_targets");
_Static_assert(offsetof(struct cfg_bridge, n_intercepts) ==
		   offsetof(struct cfg_bridge, intercepts) + sizeof(void *), "intercepts, n_intercepts");

static const struct schema_field target_fields[] = {
	STR("service", F_REQ, TGT(service), 0),
	PORT("port", F_REQ, TGT(port), 0),
	STR("namespace", 0, TGT(namespace), 0),
	PORT("local_port", 0, TGT(local_port), 0),
};
static SCHEMA(target_schema, target_fields, NULL);

static const struct schema_field intercept_fields[] = {
	STR("service", F_REQ, ICP(service), 0),
	PORT("port", 0, ICP(port), 0),
	ENUM("mode", 0, mode_names, ICP(mode)),
	PORT("local_port", 0, ICP(local_port), 0),
	STR("namespace", 0, ICP(namespace), 0),
};
static SCHEMA(intercept_schema, intercept_fields, NULL);

static const struct schema_field bridge_fields[] = {
	PATHMAX("kubeconfig", CFG_PATH_MAX, BRG(kubeconfig)),
	STRMAX("context", CFG_CONTEXT_MAX, BRG(context)),
	STR("namespace", 0, BRG(namespace), 0),
	STR("agent_image", F_EMPTY, BRG(agent_image), 0),
	LISTOF("targets", &target_schema, BRG(targets), struct cfg_target),
	LISTOF("intercepts", &intercept_schema, BRG(intercepts), struct cfg_intercept),
};
SCHEMA(k8s_bridge_schema, bridge_fields, bridge_post);

static const struct schema_field profile_fields[] = {
	MAP("bridge", &k8s_bridge_schema, AT(struct cfg_profile, bridge)),
};
SCHEMA(k8s_profile_schema, profile_fields, profile_post);

#define SVC(m) AT(struct cfg_service, m)
#define DEP(m) AT(struct cfg_dep, m)
_Static_assert(sizeof(enum service_runtime) == sizeof(int) &&
		   sizeof(enum dep_condition) == sizeof(int), "K_ENUM stores an int");
_Static_assert(offsetof(struct cfg_service, n_depends_on) ==
		   offsetof(struct cfg_service, depends_on) + sizeof(void *), "depends_on, n");
_Static_assert(offsetof(struct cfg_service, n_command) ==
			   offsetof(struct cfg_service, command) + offsetof(struct schema_cmd, n) &&
		   offsetof(struct cfg_service, command_shell) ==
			   offsetof(struct cfg_service, command) + offsetof(struct schema_cmd, shell),
	       "command, n_command, command_shell as struct schema_cmd");

static const struct schema_field depends_fields[] = {
	STR("name", F_REQ, DEP(name), 0),
	ENUM("condition", 0, condition_names, DEP(condition)),
};
static SCHEMA(depends_schema, depends_fields, NULL);

static const struct schema_field service_fields[] = {
	STR("name", F_REQ | F_NAME, SVC(name), SVC(name_mark)),
	ENUM("runtime", 0, runtime_names, SVC(runtime)),
	MAP("bridge_target", &target_schema, SVC(target)),
	MAP("bridge_intercept", &intercept_schema, SVC(intercept)),
	{.key = "command", .kind = K_CMD, .at = SVC(command)},
	PORT("port", 0, SVC(port), 0),
	LISTOF("depends_on", &depends_schema, SVC(depends_on), struct cfg_dep),
	OF("env", K_STRMAP),
	OF("healthcheck", K_ANYMAP),
};
static SCHEMA(service_schema, service_fields, service_post);
/* clang-format on */

/* ---- names, freeing --------------------------------------------------- */

const char *cfg_mode_name(enum intercept_mode m)
{
	return m == INTERCEPT_MIRROR ? mode_names[1] : mode_names[0];
}

const char *cfg_runtime_name(enum service_runtime r)
{
	return r == SERVICE_HOST ? runtime_names[1] : runtime_names[0];
}

const char *cfg_condition_name(enum dep_condition c)
{
	return (unsigned)c < 3 ? condition_names[c] : condition_names[0];
}

void k8s_bridge_clear(struct cfg_bridge *b)
{
	if (!b)
		return;
	free(b->kubeconfig);
	free(b->context);
	free(b->namespace);
	free(b->agent_image);
	for (size_t i = 0; i < b->n_targets; i++) {
		free(b->targets[i].service);
		free(b->targets[i].namespace);
	}
	free(b->targets);
	for (size_t i = 0; i < b->n_intercepts; i++) {
		free(b->intercepts[i].service);
		free(b->intercepts[i].namespace);
	}
	free(b->intercepts);
	memset(b, 0, sizeof *b);
}

void k8s_services_free(struct cfg_service *services, size_t n)
{
	for (size_t i = 0; services && i < n; i++) {
		struct cfg_service *v = &services[i];
		free(v->name);
		free(v->target.service);
		free(v->target.namespace);
		free(v->intercept.service);
		free(v->intercept.namespace);
		for (size_t j = 0; j < v->n_command; j++)
			free(v->command[j]);
		free(v->command);
		for (size_t j = 0; j < v->n_depends_on; j++)
			free(v->depends_on[j].name);
		free(v->depends_on);
	}
	free(services);
}

void k8s_profiles_free(struct cfg_profile *profiles, size_t n)
{
	for (size_t i = 0; profiles && i < n; i++) {
		free(profiles[i].name);
		k8s_bridge_clear(&profiles[i].bridge);
	}
	free(profiles);
}
