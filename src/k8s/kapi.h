/* kapi.h - the Kubernetes API from inside a pod: what the intercept agent
 * uses to restore a selector (libcurl, loaded on first use).
 *
 * The in-cluster configuration, as client-go's rest.InClusterConfig:
 * https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the bearer
 * token and CA from /var/run/secrets/kubernetes.io/serviceaccount/
 * (`token`, `ca.crt`); $DEVBRIDGE_SA_DIR names another directory (an agent
 * run outside a pod, in tests).  Calls block (up to a timeout): the agent
 * makes them only when it is about to exit. */
#ifndef DEVBRIDGE_K8S_KAPI_H
#define DEVBRIDGE_K8S_KAPI_H

#include <stddef.h>

#define KAPI_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kapi {
	char base[300]; /* https://HOST:PORT */
	char ca_path[512];
	char *token; /* heap, wiped at kapi_free */
};

/* Fill k from the environment and the service account directory.  0, or
 * a negative errno with a sentence in why: -ENOENT (not in a pod: no
 * KUBERNETES_SERVICE_HOST, or no token file), -EINVAL (a bad value). */
int kapi_incluster(struct kapi *k, char *why, size_t why_len);
void kapi_free(struct kapi *k);

/* METHOD path (e.g. "/api/v1/namespaces/default/services/web"), with an
 * optional JSON body.  On return *status is the HTTP status (0 when none
 * came back) and *ret_body the response (NUL-terminated, at most 4 MiB,
 * the caller frees).  0 when a response came back (any status), or a
 * negative errno with a sentence in why (-EIO: the transfer failed,
 * -ENOSYS: no libcurl). */
int kapi_request(const struct kapi *k, const char *method, const char *path, const char *body,
		 long timeout_ms, long *status, char **ret_body, char *why, size_t why_len);

#endif
