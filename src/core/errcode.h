/* errcode.h - devbridge's error vocabulary: every exit code it documents.
 *
 * One table (OpenSSH's ssherr.h) is the process exit status, the --json
 * error envelope's {"code", "name"} (a stable API: never renumber or
 * rename), the help text of `devbridge --help`, and what README "Exit
 * codes" lists (tests/integration/test_errcodes.py holds the README and
 * --help to it).  SPEC §6: 0 ok, 1 error, 2 usage, 3 invalid config;
 * 40-59 SSH, container and the catalog; 60-72 Kubernetes exactly as devx. */
#ifndef DEVBRIDGE_CORE_ERRCODE_H
#define DEVBRIDGE_CORE_ERRCODE_H

#include <stdbool.h>
#include <stddef.h>

/* A code that is part of the vocabulary (names and numbers taken) but that
 * this version never returns (none at present: intercept's 65-67 and 71
 * were, until it ran for real). */
#define ERRCODE_RESERVED 1

/* X(ENUM, number, "json_name", "help text", flags) */
/* clang-format off */
#define ERRCODE_TABLE(X)                                                                          \
	X(EXIT_OK, 0, "ok", "ok", 0)                                                              \
	X(EXIT_ERROR, 1, "error", "error", 0)                                                     \
	X(EXIT_USAGE, 2, "usage", "usage", 0)                                                     \
	X(EXIT_CONFIG, 3, "invalid_config", "invalid config", 0)                                  \
	/* SSH tunnels */                                                                          \
	X(EXIT_SSH_NOT_FOUND, 40, "ssh_not_found", "ssh not found", 0)                            \
	X(EXIT_TUNNEL_FAILED, 41, "tunnel_failed", "tunnel failed", 0)                            \
	X(EXIT_REMOTE_FORWARD, 42, "remote_forward_failed", "remote port forwarding failed", 0)  \
	X(EXIT_SSH_AUTH, 43, "ssh_auth_failed", "ssh authentication failed", 0)                   \
	X(EXIT_UNREACHABLE, 44, "host_unreachable", "host unreachable", 0)                        \
	X(EXIT_LOCAL_PORT, 45, "local_port_in_use", "local port in use", 0)                       \
	X(EXIT_HOST_KEY, 46, "host_key_failed", "host key verification failed", 0)                \
	X(EXIT_TIMEOUT, 47, "timeout", "not connected in time", 0)                                \
	X(EXIT_UNKNOWN_BRIDGE, 48, "unknown_bridge", "unknown bridge", 0)                         \
	X(EXIT_HEALTH_FAILING, 49, "health_failing", "health check failing", 0)                   \
	/* devcontainer bridge */                                                                  \
	X(EXIT_HOST_UNREACHABLE, 50, "host_daemon_unreachable", "no host daemon", 0)              \
	X(EXIT_AUTH_FAILED, 51, "auth_failed", "token refused", 0)                                \
	X(EXIT_PROTOCOL, 52, "protocol_error", "protocol mismatch", 0)                            \
	X(EXIT_URL_REJECTED, 53, "url_rejected", "URL refused", 0)                                \
	X(EXIT_NO_TOKEN, 54, "no_auth_token", "no auth token", 0)                                 \
	X(EXIT_PORT_IN_USE, 55, "port_in_use", "port in use", 0)                                  \
	X(EXIT_ENSURE_FAILED, 56, "ensure_failed", "ensure failed", 0)                            \
	/* OpsCatalog */                                                                           \
	X(EXIT_NOT_IN_CATALOG, 57, "not_in_catalog", "not in the catalog", 0)                     \
	/* Kubernetes: seed 000's table, code for code */                                          \
	X(EXIT_K8S_KUBECONFIG_NOT_FOUND, 60, "kubeconfig_not_found", "kubeconfig not found", 0)   \
	X(EXIT_K8S_CONTEXT_UNREACHABLE, 61, "context_unreachable", "cluster unreachable", 0)      \
	X(EXIT_K8S_NAMESPACE_NOT_FOUND, 62, "namespace_not_found", "namespace not found", 0)      \
	X(EXIT_K8S_SERVICE_NOT_FOUND, 63, "service_not_found", "service not found", 0)            \
	X(EXIT_K8S_PORT_FORWARD_FAILED, 64, "port_forward_failed", "port-forward failed", 0)      \
	X(EXIT_K8S_AGENT_DEPLOY_FAILED, 65, "agent_deploy_failed", "agent deploy failed", 0)                                                                        \
	X(EXIT_K8S_AGENT_HEALTH_FAILED, 66, "agent_health_failed", "agent health check failed", 0)                                                                        \
	X(EXIT_K8S_SELECTOR_PATCH_FAILED, 67, "selector_patch_failed", "selector patch failed", 0)                                                                        \
	X(EXIT_K8S_RBAC_INSUFFICIENT, 68, "rbac_insufficient", "RBAC insufficient", 0)            \
	X(EXIT_K8S_INTERCEPT_ACTIVE, 69, "intercept_active", "already intercepted", 0)            \
	X(EXIT_K8S_UNSUPPORTED_PROTOCOL, 70, "unsupported_protocol", "unsupported protocol", 0)   \
	X(EXIT_K8S_TUNNEL_FAILED, 71, "tunnel_failed", "Yamux tunnel failed", 0)   \
	X(EXIT_K8S_NOT_INTERCEPTABLE, 72, "service_not_interceptable", "not interceptable", 0)
/* clang-format on */

enum errcode {
#define ERRCODE_ENUM(e, num, name, help, flags) e = num,
	ERRCODE_TABLE(ERRCODE_ENUM)
#undef ERRCODE_ENUM
};

/* The stable name of `code` for the --json envelope ("ssh_auth_failed");
 * "error" for a number that is not in the table. */
const char *errcode_name(int code);

/* The short help text of `code` ("ssh authentication failed"), or NULL
 * for a number that is not in the table. */
const char *errcode_help(int code);

/* Whether `code` is in the table but reserved (never returned yet). */
bool errcode_reserved(int code);

/* The "Exit codes: 0 ok, 1 error, ..." paragraph of --help, lines at most
 * `width` columns (ending in '\n'), into buf (always NUL-terminated when
 * size > 0).  Returns the length of the whole text, as snprintf does: a
 * result >= size means buf holds a cut copy. */
size_t errcode_usage(char *buf, size_t size, size_t width);

/* An error for people and programs at once: a code of the table and one
 * sentence.  What the operations of src/app (and the worlds below them)
 * fill in instead of printing; the CLI prints it, the --json envelope
 * (and the MCP server) carry it as {code, name, message}. */
#define ERR_MESSAGE_MAX 2048
struct err {
	int code; /* 0 = no error */
	char message[ERR_MESSAGE_MAX];
};

/* Set e (NULL: nothing is kept) and return `code`, so that
 * `return err_set(e, EXIT_X, "...")` reads like the CLI's cli_error. */
int err_set(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
