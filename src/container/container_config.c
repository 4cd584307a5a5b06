/* container_config.c - see container_config.h. */
#include "container/container_config.h"

#include <stdlib.h>
#include <string.h>

/* The keys valid at each level, in the order a "did you mean" or an
 * "expected one of" names them; see struct schema_field for the columns. */
/* clang-format off */
#define SF(m) AT(struct cfg_container, socket_forwarding.m)
#define CT(m) AT(struct cfg_container, m)
static const struct schema_field socket_fields[] = {
	{.key = "watch_paths", .kind = K_STRS, .at = SF(watch_paths) - CT(socket_forwarding) + 1},
	INT("scan_interval_ms", 1, SCHEMA_DAY * 1000LL, SF(scan_interval_ms) - CT(socket_forwarding) + 1),
	INT("max_socket_forwards", 0, 1024, SF(max_socket_forwards) - CT(socket_forwarding) + 1),
	STR("container_path_prefix", 0, SF(container_path_prefix) - CT(socket_forwarding) + 1, 0),
};
static SCHEMA(socket_schema, socket_fields, NULL);

static const struct schema_field container_fields[] = {
	PORT("control_port", 0, CT(control_port), 0),
	PORT("data_port", 0, CT(data_port), 0),
	STR("bind_addr", F_WORD, CT(bind_addr), 0),
	INT("scan_interval_ms", 1, SCHEMA_DAY * 1000LL, CT(scan_interval_ms)),
	{.key = "include_ports", .kind = K_PORTS, .at = CT(include_ports)},
	{.key = "exclude_ports", .kind = K_PORTS, .at = CT(exclude_ports)},
	STR("exclude_process", 0, CT(exclude_process), 0),
	{.key = "no_auth", .kind = K_BOOL, .at = CT(no_auth)},
	STR("browser_cmd", 0, CT(browser_cmd), 0),
	MAP("socket_forwarding", &socket_schema, CT(socket_forwarding)),
};
SCHEMA(container_config_schema, container_fields, NULL);
/* clang-format on */

void container_config_init(struct cfg_container *c)
{
	memset(c, 0, sizeof *c);
	c->socket_forwarding.max_socket_forwards = -1;
}

void container_config_clear(struct cfg_container *c)
{
	if (!c)
		return;
	free(c->bind_addr);
	free(c->include_ports);
	free(c->exclude_ports);
	free(c->exclude_process);
	free(c->browser_cmd);
	for (size_t i = 0; i < c->socket_forwarding.n_watch_paths; i++)
		free(c->socket_forwarding.watch_paths[i]);
	free(c->socket_forwarding.watch_paths);
	free(c->socket_forwarding.container_path_prefix);
	container_config_init(c);
}
