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
	/* Kubernetes: seed 000's table, code for code */
	EXIT_K8S_KUBECONFIG_NOT_FOUND = 60,  /* kubeconfig file does not exist */
	EXIT_K8S_CONTEXT_UNREACHABLE = 61,   /* API server unreachable / no such context */
	EXIT_K8S_NAMESPACE_NOT_FOUND = 62,   /* target namespace does not exist */
	EXIT_K8S_SERVICE_NOT_FOUND = 63,     /* target service (or its port) not found */
	EXIT_K8S_PORT_FORWARD_FAILED = 64,   /* port-forward failed after retries */
	EXIT_K8S_AGENT_DEPLOY_FAILED = 65,   /* agent Job failed to deploy */
	EXIT_K8S_AGENT_HEALTH_FAILED = 66,   /* agent health check timed out */
	EXIT_K8S_SELECTOR_PATCH_FAILED = 67, /* failed to patch the Service selector */
	EXIT_K8S_RBAC_INSUFFICIENT = 68,     /* insufficient RBAC permissions */
	EXIT_K8S_INTERCEPT_ACTIVE = 69,	     /* service already intercepted */
	EXIT_K8S_UNSUPPORTED_PROTOCOL = 70,  /* UDP port */
	EXIT_K8S_TUNNEL_FAILED = 71,	     /* Yamux tunnel failed */
	EXIT_K8S_NOT_INTERCEPTABLE = 72,     /* ExternalName or no selector */
};

/* A stable name for a code, for the --json error envelope. */
const char *exit_code_name(int code);

#endif
