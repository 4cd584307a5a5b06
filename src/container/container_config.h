/* container_config.h - the devcontainer world's part of the config (dbr,
 * seed 002): `container:`, the daemons' settings, with its schema
 * (core/schema.h).  app/config.c puts the section into struct cfg. */
#ifndef DEVBRIDGE_CONTAINER_CONTAINER_CONFIG_H
#define DEVBRIDGE_CONTAINER_CONTAINER_CONFIG_H

#include "core/schema.h"

#include <stdbool.h>
#include <stddef.h>

/* container: (dbr, seed 002).  0 / NULL = not set: the daemons' own
 * defaults and command-line flags apply (flags win over the file). */
struct cfg_container {
	int control_port;
	int data_port;
	char *bind_addr;
	int scan_interval_ms;
	char *include_ports; /* "8000-8100,9000" (the list joined) */
	char *exclude_ports;
	char *exclude_process;
	bool no_auth;
	char *browser_cmd;
	struct {
		char **watch_paths; /* NULL-terminated */
		size_t n_watch_paths;
		int scan_interval_ms;
		int max_socket_forwards; /* -1 = not set */
		char *container_path_prefix;
	} socket_forwarding;
};

/* container:'s keys, for a MAP() row at a struct cfg_container. */
extern const struct schema container_config_schema;

/* Set `c` to "nothing set" (what container_config_schema expects before
 * it fills c: 0 is a value for max_socket_forwards). */
void container_config_init(struct cfg_container *c);

/* Release what `c` owns (not c itself) and reset it; NULL is a no-op. */
void container_config_clear(struct cfg_container *c);

#endif
