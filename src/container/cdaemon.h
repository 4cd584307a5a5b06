/* cdaemon.h - the container daemon (seed 002): finds listening ports in
 * its container, announces them to the host daemon, and answers each
 * ConnectRequest with a reverse data connection to the host.  Every
 * connection is opened from the container to the host (Docker Desktop
 * cannot route to containers). */
#ifndef DEVBRIDGE_CONTAINER_CDAEMON_H
#define DEVBRIDGE_CONTAINER_CDAEMON_H

#include <stdint.h>
#include <sys/types.h>

struct port_filter;

#define CD_DEFAULT_SCAN_MS    50   /* netlink: ~35 us a scan, 0.07% CPU at 20 Hz */
#define CD_PROC_SCAN_MS	      1000 /* /proc/net/tcp walks the whole table: ~7 ms */
#define CD_MIN_SCAN_MS	      20
#define CD_BACKOFF_INITIAL_S  0.1
#define CD_BACKOFF_MAX_S      5.0
#define CD_CONNECT_TIMEOUT_MS 10000

struct cd_opts {
	const char *host_addr; /* NULL: env, host.docker.internal, default gateway */
	uint16_t control_port;
	uint16_t data_port;
	const char *token; /* may be NULL when the host runs --no-auth */
	const char *container_id;
	const char *hostname;
	struct port_filter *filter; /* may be NULL: forward everything */
	unsigned scan_ms;	    /* 0 = CD_DEFAULT_SCAN_MS, or CD_PROC_SCAN_MS without netlink */
	unsigned heartbeat_ms;	    /* host silence of 3x this = reconnect */
	pid_t parent_pid;	    /* exit when it dies; 0 = don't watch */
	const char *control_socket; /* for `forward`/`unforward`; NULL = none */
};

/* Resolve the host address as the seed does: `flag`, $DEVBRIDGE_HOST
 * ($DCBRIDGE_HOST), host.docker.internal, the default route's gateway.
 * Writes a numeric address into buf. */
int cd_resolve_host(const char *flag, char *buf, size_t n);

/* Container id: $DEVBRIDGE_CONTAINER_ID, /etc/hostname, $HOSTNAME,
 * gethostname(); cleaned to [A-Za-z0-9._-]. */
void cd_container_id(char *buf, size_t n);

/* Replace characters outside [A-Za-z0-9._-] with '-', in place. */
void cd_clean_id(char *s);

/* Run until SIGTERM/SIGINT or the parent dies.  Returns an exit code. */
int cd_run(const struct cd_opts *o);

#endif
