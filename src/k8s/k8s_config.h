/* k8s_config.h - the Kubernetes world's part of the config (devx, seed
 * 000): `bridge:` (kubeconfig, context, namespace, agent_image, targets[],
 * intercepts[]), `profiles:` (bridge overrides) and `services:` (what `up`
 * will start, typed: runtime, bridge_target, bridge_intercept, command,
 * port, depends_on), with their schema (core/schema.h).  app/config.c puts
 * the sections into struct cfg. */
#ifndef DEVBRIDGE_K8S_K8S_CONFIG_H
#define DEVBRIDGE_K8S_K8S_CONFIG_H

#include "core/schema.h"

#include <stdbool.h>
#include <stddef.h>

enum intercept_mode { INTERCEPT_STEAL = 0, INTERCEPT_MIRROR };

/* Longest values devbridge carries for Kubernetes; longer ones are refused
 * (file:line:col, or a usage error for a flag), never cut: a context name
 * cut short names another context. */
#define CFG_CONTEXT_MAX 255
#define CFG_PATH_MAX	4095 /* PATH_MAX - 1, e.g. bridge.kubeconfig once resolved */

struct cfg_target { /* bridge.targets[] and services[].bridge_target */
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
	char *name; /* not checked against the services: seed 000 names one it lacks */
	enum dep_condition condition; /* default service_started */
	struct cfg_mark mark;
};

struct cfg_service {
	char *name;
	struct cfg_mark name_mark;    /* of the name's value */
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

/* bridge:'s keys, for a MAP() row at a struct cfg_bridge. */
extern const struct schema k8s_bridge_schema;

/* One profile's keys, for a NAMED() row of struct cfg_profile. */
extern const struct schema k8s_profile_schema;
void k8s_profile_init(struct schema_loader *l, const yaml_node_t *key, void *profile);

/* services:, for a FUNCAT() row at a `struct cfg_service *services;
 * size_t n_services;` pair: the list, and each name once. */
void k8s_load_services(struct schema_loader *l, yaml_node_t *seq, void *services);

/* Release what they own (not the struct itself) / the arrays and what
 * they own; NULL is a no-op. */
void k8s_bridge_clear(struct cfg_bridge *b);
void k8s_services_free(struct cfg_service *services, size_t n);
void k8s_profiles_free(struct cfg_profile *profiles, size_t n);

/* Names for messages and plans: "steal", "bridge", "service_healthy". */
const char *cfg_mode_name(enum intercept_mode m);
const char *cfg_runtime_name(enum service_runtime r);
const char *cfg_condition_name(enum dep_condition c);

#endif
