/* agent.h - the intercept agent (`devbridge agent`), run in the agent pod
 * (docs/intercept.md "The agent").
 *
 * It listens on the Service's target ports, a control port and a health
 * port; one authenticated CLI at a time holds a Yamux session over the
 * control port, and every cluster connection becomes a stream to it,
 * headed by the Service port it came in on.  When the session is gone for
 * longer than the grace period, or on SIGTERM/SIGINT, the agent restores
 * the Service's selector itself through the API and exits.
 *
 * With --mode mirror, the original pods keep answering: each cluster
 * connection is relayed to a Ready pod of the original selector (a list
 * the agent refreshes through the API every few seconds, on a thread),
 * and the bytes the client sends are copied to a stream to the CLI, best
 * effort (k8s/mirror.h). */
#ifndef DEVBRIDGE_K8S_AGENT_H
#define DEVBRIDGE_K8S_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_MAX_PORTS 32
#define AGENT_TOKEN_MIN 32
#define AGENT_TOKEN_MAX 128

/* Names, ports and the session id's length: k8s/intercept.h (ICPT_*),
 * shared with the CLI. */

/* A stream's first bytes: magic, version, the Service port. */
#define AGENT_HDR_LEN	  4
#define AGENT_HDR_MAGIC	  0xdb
#define AGENT_HDR_VERSION 1

struct agent_port {
	uint16_t service; /* the Service's port: what the stream header says */
	uint16_t target;  /* what the agent listens on */
};

struct agent_opts {
	const char *namespace, *service, *session;
	struct agent_port ports[AGENT_MAX_PORTS];
	size_t n_ports;
	bool mirror;
	uint16_t control_port, health_port;
	const char *bind_addr;	       /* default "0.0.0.0" */
	unsigned grace_s;	       /* default 10 */
	uint32_t keepalive_ms;	       /* default 10000 */
	uint32_t keepalive_timeout_ms; /* default 30000 */
	const char *token;	       /* from DEVBRIDGE_AGENT_TOKEN */
};

/* Run until restored (0), or 1 when the restore failed, 2 for bad
 * options or a port that cannot be bound (said on stderr). */
int agent_run(const struct agent_opts *o);

/* --- pure parts (fuzzed) --- */

/* The control port's first line, "DEVBRIDGE-AGENT/1 TOKEN\n", at the
 * front of buf.  > 0: the line's length with its newline, and the token's
 * place in *tok / *tok_len; 0: no newline yet (and len is under the
 * limit); -EPROTO: not such a line (or too long). */
int agent_parse_hello(const char *buf, size_t len, const char **tok, size_t *tok_len);
#define AGENT_HELLO_MAX 256

/* An HTTP/1.x request head at the front of buf: > 0, its length through
 * the blank line, with the method and path found; 0: incomplete (and
 * under the limit); -EPROTO: not a request (or the head is too long). */
int agent_parse_http_head(const char *buf, size_t len, const char **method, size_t *method_len,
			  const char **path, size_t *path_len);
#define AGENT_HTTP_HEAD_MAX 4096

/* "SVCPORT:TARGETPORT" (1-65535 each).  0 or -EINVAL. */
int agent_parse_port(const char *s, struct agent_port *ret);

/* The Service as the agent read it (JSON) -> the body that restores it:
 * the selector from the original-selector annotation, the three
 * annotations removed, everything else (resourceVersion included) as it
 * was.  0 with *ret (malloc'd JSON); 1 when there is nothing to restore
 * (the session annotation is absent or another session's: *why says
 * which); a negative errno with *why (-EINVAL: not a Service, or the
 * original selector is not a JSON object of strings). */
int agent_restore_body(const char *service_json, const char *session, char **ret, char *why,
		       size_t why_len);

/* --mode mirror: the Service as read (JSON) -> the query that lists the
 * original pods, "labelSelector=K%3DV%2CK2%3DV2" (keys sorted,
 * percent-encoded), from the original-selector annotation; or, before
 * the swap (no session nor original-selector annotation, and a selector
 * without our label: the agent starts before the CLI swaps), from
 * spec.selector.  0 with the query in buf; -EINVAL (not a Service, no
 * selector to use, or not a JSON object of strings), -ENAMETOOLONG
 * (over len). */
int agent_selector_query(const char *service_json, char *buf, size_t len);

/* A pod list (JSON) -> the addresses of its Ready pods: phase Running, a
 * Ready condition "True", no deletionTimestamp, and a status.podIP that is
 * a numeric IPv4 or IPv6 address.  At most `max` are written to ips (each
 * NUL-terminated); *n says how many.  0 or -EINVAL (not a list). */
#define AGENT_IP_MAX   46 /* INET6_ADDRSTRLEN */
#define AGENT_PODS_MAX 64
int agent_ready_pods(const char *list_json, char (*ips)[AGENT_IP_MAX], size_t max, size_t *n);

#endif
