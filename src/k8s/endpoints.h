/* endpoints.h - which pod a forward should use, from what the cluster says
 * about a Service's Endpoints: `kubectl get endpoints SVC -o json` (one
 * object) or `kubectl get endpoints SVC --watch --output-watch-events
 * -o json` (a stream of {"type":..., "object":...} events, one after the
 * other, compact or indented).
 *
 * Only Ready addresses count (`subsets[].addresses`; `notReadyAddresses`
 * are counted, never chosen), each with the port of its own subset whose
 * name is the Service port's name: that port is the Service's targetPort
 * already resolved for that pod (a named targetPort included).  Pure
 * functions over bytes (fuzzed: fuzz/fuzz_k8sendpoints.c). */
#ifndef DEVBRIDGE_K8S_ENDPOINTS_H
#define DEVBRIDGE_K8S_ENDPOINTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Nesting deeper than this is refused (no real Endpoints comes close). */
#define K8S_JSON_MAX_DEPTH 64

/* The extent of the next top-level JSON object in buf[0, len): skips
 * leading white space, sets *ret_start to the '{' and returns the number
 * of bytes up to and including its closing '}'; -2 when the object is not
 * complete yet (or only white space was seen), -1 when the next
 * non-white byte is not '{' or the nesting is deeper than
 * K8S_JSON_MAX_DEPTH.  Strings (with escapes) are skipped, so braces
 * inside them do not count.  Pure: no allocation. */
ssize_t k8s_json_next(const char *buf, size_t len, size_t *ret_start);

/* What the Endpoints say, for a forward to the Service port named
 * `port_name` ("" for an unnamed one). */
struct k8s_ep_view {
	bool deleted;	    /* a DELETED event: the Service (and its endpoints) went away */
	unsigned ready;	    /* Ready addresses of a pod, with the port */
	unsigned not_ready; /* addresses of pods that are not Ready */
	bool no_port;	    /* there are addresses, but none has the port */
	char pod[254];	    /* the pod to use, "" when none: `current` while it
			     * stays Ready, else the Ready one first by name */
	int port;	    /* that pod's port (the resolved targetPort) */
};

/* Judge one Endpoints object or one watch event.  `current` (may be NULL)
 * is the pod in use, kept while it is Ready.  0, or -EINVAL when it is
 * neither (an ERROR event, a Status, garbage).  Pod names that are not
 * valid Kubernetes names are ignored. */
int k8s_endpoints_view(const char *json, size_t len, const char *port_name, const char *current,
		       struct k8s_ep_view *ret);

/* A Kubernetes object name (RFC 1123 subdomain): [a-z0-9.-], 1-253,
 * alphanumeric at both ends. */
bool k8s_object_name(const char *s);

#endif
