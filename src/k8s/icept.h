/* icept.h - the CLI's end of an intercept (docs/intercept.md, step 4): a
 * supervised `kubectl port-forward` to the agent pod's control port, the
 * hello, a Yamux client session, and each stream the agent opens dialled
 * to the local port of the Service port its header names.
 *
 * A lost port-forward or session is re-established at once (then every
 * 0.5-2 s), well within the agent's grace period, so the selector does
 * not flap.  The selector swap before and the restore after are the
 * caller's (app/intercept.c). */
#ifndef DEVBRIDGE_K8S_ICEPT_H
#define DEVBRIDGE_K8S_ICEPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "k8s/portforward.h"

#define ICEPT_MAX_PORTS 32

struct icept_map {
	uint16_t service; /* the Service port (what a stream's header says) */
	uint16_t local;	  /* dialled on 127.0.0.1 */
};

struct icept_opts {
	/* kubectl, kubeconfig, context, namespace; pod = the agent pod,
	 * target_port = its control port, local_port 0 */
	struct k8s_fwd fwd;
	const char *token;
	const char *session;
	struct icept_map maps[ICEPT_MAX_PORTS];
	size_t n_maps;
	uint32_t keepalive_ms, keepalive_timeout_ms; /* 0: 10000, 30000 */
	/* --mirror: the streams are copies of what cluster clients send (the
	 * original pods answer them); the local server gets the bytes, and
	 * what it answers is read and thrown away (k8s/mirror.h). */
	bool mirror;
	/* Optional: called once, when the first session is up. */
	void (*on_ready)(void *data);
	void *data;
};

/* Run until SIGTERM/SIGINT (returns 0), or until the agent is gone or
 * keeps refusing us (71, EXIT_K8S_TUNNEL_FAILED, said on stderr). */
int icept_run(const struct icept_opts *o);

#endif
