/* filter.h - which detected ports the container daemon forwards.
 *
 * Rules, in order: a port in exclude_ports is never forwarded; if
 * include_ports or forwardPorts (devcontainer.json) is non-empty, only
 * ports in their union are forwarded; a process whose name matches
 * exclude_process (POSIX extended regex) is not forwarded. */
#ifndef DEVBRIDGE_CONTAINER_FILTER_H
#define DEVBRIDGE_CONTAINER_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct port_filter;

/* Ranges "8000-8100,9000" (commas or spaces; single ports or a-b).
 * Returns 0 or -EINVAL with a message in err. */
int port_filter_new(struct port_filter **ret);
void port_filter_free(struct port_filter *f);
int port_filter_include(struct port_filter *f, const char *spec, char *err, size_t errlen);
int port_filter_exclude(struct port_filter *f, const char *spec, char *err, size_t errlen);
int port_filter_include_port(struct port_filter *f, uint16_t port);
int port_filter_exclude_process(struct port_filter *f, const char *regex, char *err, size_t errlen);

/* Add the "forwardPorts" of a devcontainer.json (JSONC: // and block
 * comments and trailing commas tolerated).  Entries are numbers, or strings
 * "PORT" / "host:PORT" (the port is taken).  0 or -EINVAL/-errno with err. */
int port_filter_devcontainer(struct port_filter *f, const char *json, size_t len, char *err,
			     size_t errlen);
/* Strip JSONC comments and trailing commas in place (pure; exposed for
 * tests and fuzzing).  Returns the new length. */
size_t jsonc_strip(char *buf, size_t len);

/* Should `port`, owned by process `comm` (may be "" when unknown), be
 * forwarded? */
bool port_filter_allows(const struct port_filter *f, uint16_t port, const char *comm);

#endif
