/* portforward.h - one supervised kubectl port-forward for a Service port
 * (SPEC §5, devx connect): the kubectl argv, the reading of what kubectl
 * prints, and the driver that plugs both into core/supervisor.
 *
 * The driver follows the Service's endpoints itself (a supervised
 * `kubectl get endpoints SVC --watch`, see endpoints.h) and forwards to
 * `pod/P LOCAL:TARGETPORT` of a Ready endpoint, not to `svc/S`: kubectl
 * picks one pod for svc/ (Ready or not) and never picks again.  When that
 * pod leaves the endpoints (deleted, not Ready, the selector changed) the
 * forward is renewed at once on another Ready pod; with none, the bridge
 * waits (reason no_ready_pod) and reconnects as soon as one is Ready.
 * Should the endpoints be unreadable, it falls back to `svc/S` until they
 * can be read again.
 *
 * kubectl binds the local port itself (`--address 127.0.0.1`, so it cannot
 * fall back to ::1 alone and leave 127.0.0.1:PORT to somebody else).  Its
 * bind is the collision check: on "Unable to listen on port P" the next run
 * asks for P+1, and after K8S_MAX_SHIFTS ports for any free one (":PORT"),
 * so there is no window between a check and the use.  devbridge stays off
 * the data path: bytes go from the client to kubectl and on. */
#ifndef DEVBRIDGE_K8S_PORTFORWARD_H
#define DEVBRIDGE_K8S_PORTFORWARD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/supervisor.h"

#define K8S_MAX_SHIFTS 20

enum k8s_reason {
	K8S_R_NONE = 0,
	K8S_R_PORT_TAKEN,     /* the local port is in use */
	K8S_R_TARGET,	      /* the pod refused the connection to its port */
	K8S_R_LOST,	      /* lost connection to pod */
	K8S_R_NOT_FOUND,      /* service / namespace / port gone */
	K8S_R_NO_POD,	      /* no running pod behind the service */
	K8S_R_FORBIDDEN,      /* RBAC said no */
	K8S_R_UNAUTHORIZED,   /* credentials refused */
	K8S_R_UNREACHABLE,    /* API server unreachable */
	K8S_R_BACKEND,	      /* the API server could not reach the kubelet */
	K8S_R_NOT_FOUND_PROG, /* kubectl could not be run */
	K8S_R_OTHER,
	K8S_R_NO_READY_POD, /* the endpoints have no Ready pod (the driver's own verdict) */
	K8S_R_POD_GONE,	    /* the pod in use left the endpoints */
};

/* Classify one line (no newline) kubectl wrote on stdout (is_stdout) or
 * stderr.  READY lines ("Forwarding from 127.0.0.1:P -> R") store P in
 * *ret_port.  Pure: no allocation. */
enum sup_line k8s_pf_classify(const char *line, size_t len, bool is_stdout, int *ret_reason,
			      int *ret_port);
const char *k8s_reason_name(int r);
const char *k8s_reason_text(int r);

struct k8s_fwd {
	const char *kubectl;	/* program, default "kubectl" (PATH) */
	const char *kubeconfig; /* NULL = kubectl's own default; a ':' list is
				 * not a flag (see kctl_kubeconfig_flag) */
	const char *context;	/* NULL = the kubeconfig's current */
	const char *namespace;
	const char *service;
	const char *port_name; /* the Service port's name ("" unnamed); NULL = do not
				* follow the endpoints: always svc/S */
	int remote_port;
	int requested_port; /* what the user asked for (or remote_port) */
	int local_port;	    /* the port in use now; 0 = any (":PORT") */
	unsigned shifts;
	const char *origin; /* "standalone" */
	char started_at[40];
	char connected_at[40]; /* the last move to connected; "" = never */
	/* The run's target: pod/POD TARGET_PORT, or svc/SERVICE remote_port
	 * when pod is "". */
	char pod[254];
	int target_port;
};

/* argv for the next kubectl run; free with k8s_pf_argv_free. */
int k8s_pf_argv(const struct k8s_fwd *f, char ***ret);

/* argv of the endpoints watch for f's Service; free with
 * k8s_pf_argv_free. */
int k8s_pf_watch_argv(const struct k8s_fwd *f, char ***ret);
void k8s_pf_argv_free(char **argv);

/* Supervise one forward as bridge `name` until stopped or failed (see
 * sup_run for the return value; 64 when it fails for good); the session
 * files are rewritten on every connection (without waiting for their
 * lock on the loop) and once more as it leaves.  Until the
 * first connection at most `max_attempts` runs (0 = forever), with backoff
 * 1 s, 2 s, 4 s ...; once it has worked, it retries forever (backoff up
 * to 30 s) so a pod being replaced or a VPN blip is ridden out.  Once
 * connected, every `health_interval_s` (0 = never) a probe connection
 * goes through the forward: kubectl only notices a pod that went away when
 * a connection fails, so the probe makes that connection instead of the
 * user's next one, and the kubectl is renewed. */
int k8s_pf_supervise(struct k8s_fwd *f, const char *name, const char *state_dir, int max_attempts,
		     unsigned health_interval_s, int ready_fd);

#endif
