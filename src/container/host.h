/* host.h - the devcontainer bridge's host daemon (seed 002, SPEC §5).
 *
 * Accepts container daemons on the control port (JSON lines), binds a
 * loopback listener for every port they forward, and for each client that
 * connects asks the owning container for a reverse data connection on the
 * data port, then relays bytes between the two.  Each host listener
 * belongs to exactly one container's forward, so a port remapped because
 * of a conflict (8080 -> 8081) always reaches the container that owns it
 * (seed 002's own code looks the container up by container port and can
 * pick the wrong one). */
#ifndef DEVBRIDGE_CONTAINER_HOST_H
#define DEVBRIDGE_CONTAINER_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOST_MAX_CONTAINERS 64
#define HOST_MAX_FORWARDS   128 /* per container */
#define HOST_MAX_PENDING    1024
/* Connections that have not registered (yet): a budget of their own, the
 * oldest evicted when it is full, each closed after a short deadline, so
 * that idle connections can never keep a container from registering. */
#define HOST_MAX_UNREGISTERED	 64
#define HOST_REGISTER_TIMEOUT_MS 5000
#define HOST_PENDING_TIMEOUT_MS	 10000 /* default of host_opts.pending_timeout_ms */
/* A container port below 1024 is bound at this offset on the host (80 ->
 * 10080) unless host_opts.allow_privileged_ports. */
#define HOST_PRIVILEGED_OFFSET	  10000
#define HOST_DRAIN_MS		  5000
#define HOST_DEFAULT_HEARTBEAT_MS 30000
#define HOST_MISSED_PONGS	  3
#define HOST_MAX_SOCKETS	  64 /* hard cap on max_sockets */
#define HOST_REMAP_TRIES	  100

struct host_opts {
	const char *bind_addr; /* control and data listeners; default 127.0.0.1 */
	uint16_t control_port; /* default 19285; 0 = any (tests) */
	uint16_t data_port;    /* default 19286; 0 = any */
	bool no_auth;
	const char *token; /* required unless no_auth */
	const char *browser_cmd;
	bool exit_on_idle;
	unsigned idle_timeout_ms;
	unsigned heartbeat_ms;
	unsigned pending_timeout_ms; /* a client waiting for its data connection */
	bool allow_privileged_ports; /* bind container ports < 1024 as they are */
	const char *state_dir;	     /* host-daemon.state / .log / .pid */
	int ready_fd;		     /* -1, or a pipe: "ready CONTROL_PORT DATA_PORT\n" */
	/* Unix socket forwarding host -> containers (seed 002): only sockets
	 * matching these globs ("**" matches across directories) are offered;
	 * none by default. */
	const char *const *watch_paths;
	size_t n_watch_paths;
	unsigned socket_scan_ms;	   /* default 5000 */
	unsigned max_sockets;		   /* 0 = none; the CLI's default is 16 */
	const char *container_path_prefix; /* default "/tmp" */
};

/* Run the host daemon until SIGTERM/SIGINT (or idle exit).  Returns an exit
 * code (0, or 55 when the ports cannot be bound, 1 on other errors). */
int host_run(const struct host_opts *o);

#endif
