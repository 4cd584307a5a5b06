/* exitcodes.h - every exit code devbridge documents (README "Exit codes").
 * SPEC §6: 0 ok, 1 error, 2 usage, 3 invalid config; 40-59 SSH and
 * container; 60-72 Kubernetes exactly as devx. */
#ifndef DEVBRIDGE_CLI_EXITCODES_H
#define DEVBRIDGE_CLI_EXITCODES_H

enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_CONFIG = 3,
	/* SSH tunnels */
	EXIT_SSH_NOT_FOUND = 40,  /* ssh client not on PATH */
	EXIT_TUNNEL_FAILED = 41,  /* gave up (max_attempts) or ssh failed otherwise */
	EXIT_REMOTE_FORWARD = 42, /* remote port forwarding failed */
	EXIT_SSH_AUTH = 43,	  /* authentication refused */
	EXIT_UNREACHABLE = 44,	  /* host unreachable / refused / unresolvable */
	EXIT_LOCAL_PORT = 45,	  /* local port in use (direction: local) */
	EXIT_HOST_KEY = 46,	  /* host key unknown or changed */
	EXIT_TIMEOUT = 47,	  /* not connected within --timeout */
	EXIT_UNKNOWN_BRIDGE = 48, /* no such bridge in the config */
	EXIT_HEALTH_FAILING = 49, /* check: a health check fails */
	/* devcontainer bridge */
	EXIT_HOST_UNREACHABLE = 50, /* no host daemon answers on the control port */
	EXIT_AUTH_FAILED = 51,	    /* the host daemon refused our token */
	EXIT_PROTOCOL = 52,	    /* protocol version mismatch or malformed reply */
	EXIT_URL_REJECTED = 53,	    /* open: URL refused (scheme, length, rate limit) */
	EXIT_NO_TOKEN = 54,	    /* no auth token configured or readable */
	EXIT_PORT_IN_USE = 55,	    /* host-daemon: control/data port already bound */
	EXIT_ENSURE_FAILED = 56,    /* ensure: could not start a host daemon */
};

/* A stable name for a code, for the --json error envelope. */
const char *exit_code_name(int code);

#endif
