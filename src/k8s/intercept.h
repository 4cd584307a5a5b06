/* intercept.h - what `devbridge intercept` decides from what the cluster
 * says, and the objects it would create (docs/intercept.md): pure
 * functions over parsed JSON (jansson), no I/O, fuzzed by
 * fuzz/fuzz_intercept.c.  The app layer (app/intercept.c) asks kubectl and
 * hands the answers here.
 *
 * Ownership: every json_t * returned is a new reference the caller
 * releases; the const json_t * arguments are only read. */
#ifndef DEVBRIDGE_K8S_INTERCEPT_H
#define DEVBRIDGE_K8S_INTERCEPT_H

#include "k8s/k8s_config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define ICPT_SID_LEN	   10 /* lowercase hex: 40 random bits */
#define ICPT_TOKEN_LEN	   64 /* lowercase hex: 256 random bits */
#define ICPT_MAX_PORTS	   32 /* ports of one intercept (a Service rarely has more) */
#define ICPT_CONTROL_PORT  4200
#define ICPT_HEALTH_PORT   4201
#define ICPT_DEADLINE_S	   14400 /* the Job's activeDeadlineSeconds */
#define ICPT_AGENT_UID	   65532
#define ICPT_DEFAULT_IMAGE "ghcr.io/devbridge/agent:"
#define ICPT_NAME_PREFIX   "devbridge-agent-"
#define ICPT_LABEL_MANAGED "app.kubernetes.io/managed-by"
#define ICPT_LABEL_SESSION "devbridge.dev/session"
#define ICPT_LABEL_POD	   "devbridge.dev/intercept"
#define ICPT_ANN_SESSION   "devbridge.dev/session"
#define ICPT_ANN_ORIGINAL  "devbridge.dev/original-selector"
#define ICPT_ANN_MODE	   "devbridge.dev/mode"

/* One -p value: "PORT", "NAME", "PORT:LOCAL" or "NAME:LOCAL" (PORT a
 * Service port number, NAME a Service port name). */
struct icpt_spec {
	char port[64]; /* as given: digits or a port name */
	int local;     /* 0 = not given */
};

/* Parse one -p value; 0, or -EINVAL with a sentence in err. */
int icpt_spec_parse(const char *s, struct icpt_spec *out, char *err, size_t errn);

/* One intercepted Service port. */
struct icpt_port {
	int port;	      /* the Service port */
	char name[64];	      /* its name ("" unnamed) */
	int target;	      /* the targetPort's number; 0 while it is a name not resolved yet */
	char target_name[64]; /* a named targetPort ("" numeric) */
	int local;	      /* the local port its connections go to */
};

/* The verdict on a Service, in the order docs/intercept.md checks. */
enum icpt_verdict {
	ICPT_OK = 0,
	ICPT_BAD_JSON,		/* not a Service object */
	ICPT_NOT_INTERCEPTABLE, /* ExternalName, or no / an empty selector (72) */
	ICPT_NO_PORT,		/* a -p names no port of the Service, or it has no TCP port (63) */
	ICPT_USAGE,		/* the -p / --local-port combination cannot be served (2) */
	ICPT_UDP,		/* a port to intercept is not TCP (70) */
	ICPT_ACTIVE,		/* the devbridge.dev/session annotation is there (69) */
};

/* What the checks found: the ports to intercept, in Service order. */
struct icpt_found {
	struct icpt_port ports[ICPT_MAX_PORTS];
	size_t n_ports;
	bool named_targets; /* a port whose targetPort is a name: see icpt_resolve_targets */
	char session[64];   /* ICPT_ACTIVE: the annotation's value (sanitized, cut) */
};

/* Judge the Service `svc` (`kubectl get service -o json`) for an intercept
 * of the ports `specs` (none: every TCP port), with `local_port` (0 = not
 * given; only with a single port) as the local port.  Local ports default
 * to the Service port.  Fills *out (also when it refuses: what was found
 * so far) and, for a refusal, a sentence in detail. */
enum icpt_verdict icpt_check_service(const json_t *svc, const struct icpt_spec *specs,
				     size_t n_specs, int local_port, struct icpt_found *out,
				     char *detail, size_t n);

/* Ports of the Service that the swap redirects to the agent and the agent
 * does not serve (other ports, non-TCP ones): one sentence each, appended
 * to `warnings` (an array). */
void icpt_port_warnings(const json_t *svc, const struct icpt_found *f, json_t *warnings);

/* Service-mesh sidecars: Istio or Linkerd on the Service's pods (`pods`,
 * a `kubectl get pods -o json` list of its selector; a container, init
 * container included, named istio-proxy / linkerd-proxy, or an injection
 * label or annotation: sidecar.istio.io/inject, linkerd.io/inject) or
 * injection asked for by the namespace (`ns`, `kubectl get namespace -o
 * json`: istio-injection=enabled, istio.io/rev, linkerd.io/inject).
 * Either may be NULL.  One sentence per mesh found, saying what it
 * breaks, appended to `warnings` (an array): an intercept proceeds. */
void icpt_mesh_warnings(const json_t *ns, const json_t *pods, json_t *warnings);

/* The namespace's Pod Security Admission level: the value of its label
 * pod-security.kubernetes.io/enforce ("privileged", "baseline",
 * "restricted"), sanitized into buf; "" when unlabelled.  The agent's pod
 * meets "restricted", so every level admits it. */
void icpt_pod_security(const json_t *ns, char *buf, size_t n);

/* The Service's selector as a label selector for `kubectl get pods -l`:
 * "k=v,k2=v2".  0, or -EINVAL (none, or a key or value with characters a
 * label cannot have: nothing that could change the selector's meaning is
 * passed on). */
int icpt_selector_string(const json_t *svc, char *buf, size_t n);

/* The first Ready pod (condition Ready True, not being deleted) of a
 * `kubectl get pods -o json` list, or NULL.  Borrowed from `list`. */
const json_t *icpt_ready_pod(const json_t *list);

/* Resolve each named targetPort of f from the container ports of `pod`
 * (a pod of the Service's selector).  0, or -ENOENT with a sentence in
 * detail (no container port of that name). */
int icpt_resolve_targets(struct icpt_found *f, const json_t *pod, char *detail, size_t n);

/* Two intercepted ports on one target port (the agent could not tell
 * their connections apart), or a target port the agent needs for
 * itself after moving its control and health ports: 0, or -EINVAL with a
 * sentence in detail.  Call once every target is a number. */
int icpt_check_targets(const struct icpt_found *f, char *detail, size_t n);

/* What the objects are built from. */
struct icpt_params {
	const char *namespace, *service;
	const char *sid;   /* ICPT_SID_LEN hex */
	const char *token; /* ICPT_TOKEN_LEN hex */
	const char *image;
	enum intercept_mode mode;
	const struct icpt_port *ports; /* targets resolved */
	size_t n_ports;
};

/* "devbridge-agent-SID" into buf (at least 27 bytes). */
void icpt_object_name(char *buf, size_t n, const char *sid);

/* The agent's control and health ports: 4200 and 4201 unless a target
 * port takes one, then the next free ones. */
void icpt_agent_ports(const struct icpt_port *ports, size_t n, int *control, int *health);

/* The objects, in creation order: ServiceAccount, Role, RoleBinding,
 * Secret, Job (an array).  NULL on allocation failure. */
json_t *icpt_objects(const struct icpt_params *p);

/* The agent's command line as the Job runs it: ["devbridge", "agent",
 * "--namespace", NS, ...]. */
json_t *icpt_agent_command(const struct icpt_params *p);

/* The Service after the swap: a copy of `svc` with spec.selector exactly
 * {"devbridge.dev/intercept": SID} and the three annotations (session,
 * original selector as compact JSON, mode) added; metadata.resourceVersion
 * kept (the update is conditional on it), status dropped.  NULL when svc
 * has no selector (or on allocation failure). */
json_t *icpt_swapped_service(const json_t *svc, const char *sid, enum intercept_mode mode);

/* The restore of a swapped Service `svc` (as read now) for session `sid`:
 * the original selector back exactly and the three annotations gone,
 * resourceVersion kept.  0 and *ret; -ENOENT when the Service is not
 * intercepted by sid (nothing to restore); -EINVAL when the original
 * selector annotation is not a JSON object of strings. */
int icpt_restored_service(const json_t *svc, const char *sid, json_t **ret);

/* A right the CLI uses (docs/intercept.md, "The CLI's order", step 1). */
struct icpt_right {
	const char *verb;
	const char *group; /* "" = core */
	const char *resource;
	const char *subresource; /* NULL = none */
	bool named;		 /* asked about the Service by name */
};
/* The table; *n its length. */
const struct icpt_right *icpt_rights(size_t *n);
/* "create jobs.batch", "create pods/portforward", "update services/NAME"
 * into buf, for messages. */
void icpt_right_str(const struct icpt_right *r, const char *service, char *buf, size_t n);

/* `kubectl auth can-i` for right r in namespace ns: the arguments,
 * NULL-terminated, into args (at least ICPT_CAN_I_ARGS entries), with the
 * resource word ("services/NAME", "jobs.batch") written into res (n
 * bytes), which args points into.  service: the Service a named right is
 * about; NULL asks about every Service. */
#define ICPT_CAN_I_ARGS 10
void icpt_can_i_args(const struct icpt_right *r, const char *service, const char *ns, char *res,
		     size_t n, const char **args);
/* kubectl's answer to it (exit status, stdout): 1 yes, 0 no, -1 no
 * answer (kubectl could not ask). */
int icpt_can_i_answer(int status, const char *out);

/* The same questions as one document, a List of SelfSubjectAccessReviews
 * in icpt_rights order, for a single `kubectl create -f FILE -o json` (one
 * kubectl instead of one per right). */
json_t *icpt_ssar_list(const char *service, const char *ns);
/* kubectl's answer to it: answers[i] 1 allowed, 0 not.  0, or -EINVAL
 * when it is not n reviews with a status. */
int icpt_ssar_answers(const char *out, int *answers, size_t n);

/* The agent image when none is given: ghcr.io/devbridge/agent:VERSION. */
const char *icpt_default_image(void);

/* Whether s is a hex string of exactly `len` lowercase characters. */
bool icpt_hex_ok(const char *s, size_t len);

#endif
