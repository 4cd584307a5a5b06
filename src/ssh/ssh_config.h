/* ssh_config.h - the SSH world's part of the config (ops-bridge, seed 003):
 * `tunnels:` and `actors:`, their schema (core/schema.h) and the ssh
 * policy checked at load: the options devbridge manages itself and those
 * that would override a tunnel's own fields, a user or ssh:// URI smuggled
 * in through host, names reserved for the daemons, port clashes between
 * tunnels; and, for commands that start tunnels, the key files'
 * permissions.  app/config.c puts the sections into struct cfg. */
#ifndef DEVBRIDGE_SSH_SSH_CONFIG_H
#define DEVBRIDGE_SSH_SSH_CONFIG_H

#include "core/health.h"
#include "core/schema.h"

#include <stdbool.h>
#include <stddef.h>

enum tunnel_dir {
	TUNNEL_REVERSE = 0, /* ssh -R remote_port:remote_host:local_port */
	TUNNEL_LOCAL,	    /* ssh -L 127.0.0.1:local_port:remote_host:remote_port */
};

enum actor_class {
	ACTOR_HUMAN = 0,
	ACTOR_AUTOMATION,
};

struct cfg_kv {
	char *key;
	char *value;
	struct cfg_mark mark;
};

struct cfg_tunnel {
	char *name;
	struct cfg_mark mark; /* of the tunnel's key */
	char *host;
	int ssh_port; /* 0 = ssh's default (22 or ssh_config) */
	char *ssh_user;
	char *ssh_key; /* ~ expanded */
	struct cfg_mark ssh_key_mark;
	int remote_port;
	struct cfg_mark remote_port_mark;
	int local_port;
	struct cfg_mark local_port_mark;
	char *remote_host; /* default "127.0.0.1" */
	enum tunnel_dir direction;
	char *actor;
	struct cfg_mark actor_mark;
	struct cfg_health health;
	/* reconnect: */
	int max_attempts;	/* 0 = forever; default 0 */
	double backoff_initial; /* seconds; default 5 */
	double backoff_max;	/* seconds; default 60 */
	double stable_s;	/* connected this long resets backoff; default 30 */
	/* keepalive through the encrypted channel: */
	int server_alive_interval;  /* default 15 */
	int server_alive_count_max; /* default 3 */
	char *ssh_config;	    /* -F FILE, ~ expanded, or NULL */
	struct cfg_mark ssh_config_mark;
	struct cfg_kv *ssh_options; /* -o Key=Value, in file order */
	size_t n_ssh_options;
	/* An OpsCatalog bridge's (app/catalog.h): its domain and file, which
	 * the loaded catalog owns; NULL for the config's own tunnels. */
	const char *catalog_domain, *catalog_file;
};

struct cfg_actor {
	char *name;
	enum actor_class cls;
	char *description;
	struct cfg_mark mark;
};

/* One tunnel's and one actor's keys, for NAMED() rows:
 *   NAMED("tunnels", "tunnel", &ssh_tunnel_schema, AT(..., tunnels),
 *         struct cfg_tunnel, ssh_tunnel_init)
 * The init functions check the name and set the defaults. */
extern const struct schema ssh_tunnel_schema, ssh_actor_schema;
void ssh_tunnel_init(struct schema_loader *l, const yaml_node_t *key, void *tunnel);
void ssh_actor_init(struct schema_loader *l, const yaml_node_t *key, void *actor);

/* A tunnel's defaults (a zeroed tunnel's mark is kept), as ssh_tunnel_init
 * sets them: for a tunnel read from elsewhere (an OpsCatalog bridge). */
void ssh_tunnel_defaults(struct cfg_tunnel *t);

/* ssh_tunnel_schema's ssh_options row (a K_FUNC) for a file others write
 * (an OpsCatalog's target): the same policy, and the options that make
 * ssh run a command or load code on this machine (ProxyCommand,
 * KnownHostsCommand, LocalCommand, PKCS11Provider, Match exec, ...) are
 * refused, with where to put them instead. */
void ssh_load_shared_options(struct schema_loader *l, yaml_node_t *map, void *base);

/* Whether a key of ssh_tunnel_schema says where and how ssh connects
 * (host, ssh_user, ssh_port, ssh_key, ssh_config, ssh_options,
 * server_alive_*) rather than what it forwards: an OpsCatalog has the
 * first kind in a target's file, the second in a bridge's. */
bool ssh_tunnel_key_connects(const char *key);
/* Copy the members of those keys from src into dst (whose own are
 * unset).  0 or -ENOMEM (dst then partly filled, for ssh_tunnels_free). */
int ssh_tunnel_copy_connection(struct cfg_tunnel *dst, const struct cfg_tunnel *src);

/* Whether two tunnels cannot run together: two local tunnels on one local
 * port, or two reverse tunnels on one remote port of one sshd (two
 * reverse tunnels may well share a local_port: one service offered to
 * several hosts). */
enum ssh_clash {
	SSH_CLASH_NONE = 0,
	SSH_CLASH_LOCAL_PORT,
	SSH_CLASH_REMOTE_PORT,
};
enum ssh_clash ssh_tunnels_clash(const struct cfg_tunnel *t, const struct cfg_tunnel *u);

/* Checks across entries once the file is read (actors may follow the
 * tunnels that name them): each tunnel's actor exists, no two local
 * tunnels share a local port, no two reverse tunnels the same port of one
 * sshd.  Diagnostics through l. */
void ssh_config_check(struct schema_loader *l, const struct cfg_tunnel *tunnels, size_t n_tunnels,
		      const struct cfg_actor *actors, size_t n_actors);

/* Checks that need the file system, for commands that start tunnels:
 * each tunnel's ssh_key exists, is a readable regular file not readable by
 * group/other; ssh_config, if set, is readable.  Restricted to `only` when
 * not NULL.  `file` names the config for marks that have none.  Returns 0
 * or -EINVAL with diagnostics at the offending key (-ENOMEM). */
int ssh_config_check_files(const struct cfg_tunnel *tunnels, size_t n,
			   const struct cfg_tunnel *only, const char *file,
			   struct cfg_diags *diags);

/* Warnings about tunnels that loaded: what is valid but probably not what
 * was meant (a reverse tunnel's health check aimed at its remote_port,
 * which is on the remote host while checks run here).  Appended to
 * `warnings`; returns how many. */
size_t ssh_config_lint(const struct cfg_tunnel *tunnels, size_t n, struct cfg_diags *warnings);

/* NULL when absent. */
const struct cfg_actor *ssh_find_actor(const struct cfg_actor *actors, size_t n, const char *name);

/* Release what one tunnel owns and zero it. */
void ssh_tunnel_clear(struct cfg_tunnel *t);
/* Release the arrays and everything they own; NULL is a no-op. */
void ssh_tunnels_free(struct cfg_tunnel *tunnels, size_t n);
void ssh_actors_free(struct cfg_actor *actors, size_t n);

/* Names for messages and plans: "reverse", "human". */
const char *cfg_direction_name(enum tunnel_dir d);
const char *cfg_class_name(enum actor_class c);

#endif
