/* portforward.c - see portforward.h. */
#include "k8s/portforward.h"
#include "cli/exitcodes.h"
#include "core/log.h"
#include "core/util.h"
#include "k8s/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- what kubectl says --- */

static bool has(const char *line, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; n <= len && i + n <= len; i++)
		if (memcmp(line + i, needle, n) == 0)
			return true;
	return false;
}

static bool starts(const char *line, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(line, prefix, n) == 0;
}

/* "Forwarding from 127.0.0.1:9000 -> 8080" or "Forwarding from [::1]:9000 -> 8080". */
static bool forwarding_port(const char *line, size_t len, int *port)
{
	static const char pre[] = "Forwarding from ";
	if (!starts(line, len, pre))
		return false;
	size_t i = sizeof pre - 1, colon = 0;
	for (; i < len && line[i] != ' '; i++)
		if (line[i] == ':')
			colon = i;
	if (!colon || i + 4 > len || memcmp(line + i, " -> ", 4) != 0)
		return false;
	long p = 0;
	size_t k = colon + 1;
	if (k == i)
		return false;
	for (; k < i; k++) {
		if (line[k] < '0' || line[k] > '9')
			return false;
		p = p * 10 + (line[k] - '0');
		if (p > 65535)
			return false;
	}
	if (p < 1)
		return false;
	*port = (int)p;
	return true;
}

enum sup_line k8s_pf_classify(const char *line, size_t len, bool is_stdout, int *ret_reason,
			      int *ret_port)
{
	int port;
	*ret_reason = K8S_R_NONE;
	if (is_stdout) {
		if (forwarding_port(line, len, &port)) {
			if (ret_port)
				*ret_port = port;
			return SUP_LINE_READY;
		}
		return SUP_LINE_NOISE; /* "Handling connection for 9000" */
	}
	/* stderr.  The most specific first: a refused pod port also says
	 * "connection refused", like an unreachable API server. */
	int r = K8S_R_NONE;
	/* One client connection that went wrong is not the forward's
	 * failure ("error copying from local connection to remote stream:
	 * ... connection reset by peer"). */
	if (has(line, len, "error copying from"))
		return SUP_LINE_MESSAGE;
	if (has(line, len, "an error occurred forwarding") ||
	    has(line, len, "error forwarding port"))
		r = K8S_R_TARGET;
	else if (has(line, len, "Unable to listen on port") ||
		 has(line, len, "unable to listen on any of the requested ports") ||
		 has(line, len, "address already in use"))
		r = K8S_R_PORT_TAKEN;
	else if (has(line, len, "lost connection to pod"))
		r = K8S_R_LOST;
	else if (has(line, len, "orbidden"))
		r = K8S_R_FORBIDDEN;
	else if (has(line, len, "Unauthorized") || has(line, len, "must be logged in"))
		r = K8S_R_UNAUTHORIZED;
	else if (has(line, len, "pod is not running") ||
		 has(line, len, "timed out waiting for the condition") ||
		 has(line, len, "no pods") || has(line, len, "pods not found"))
		r = K8S_R_NO_POD;
	else if (has(line, len, "NotFound") || has(line, len, "not found") ||
		 has(line, len, "does not have a service port") ||
		 has(line, len, "does not have a named port"))
		r = K8S_R_NOT_FOUND;
	else if (has(line, len, "error dialing backend"))
		r = K8S_R_BACKEND;
	else if (has(line, len, "Unable to connect to the server") ||
		 has(line, len, "connection refused") || has(line, len, "no such host") ||
		 has(line, len, "i/o timeout") || has(line, len, "TLS handshake timeout"))
		r = K8S_R_UNREACHABLE;
	if (r) {
		*ret_reason = r;
		return SUP_LINE_REASON;
	}
	for (size_t i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t')
			return SUP_LINE_MESSAGE;
	return SUP_LINE_NOISE;
}

static const struct {
	const char *name, *text;
} reasons[] = {
    [K8S_R_NONE] = {"", ""},
    [K8S_R_PORT_TAKEN] = {"local_port_in_use",
			  "the local port cannot be bound (in use, or not permitted)"},
    [K8S_R_TARGET] = {"target_refused", "the pod refused the connection to its port"},
    [K8S_R_LOST] = {"lost_connection", "lost the connection to the pod"},
    [K8S_R_NOT_FOUND] = {"not_found", "the service or its port was not found"},
    [K8S_R_NO_POD] = {"no_running_pod", "no running pod behind the service"},
    [K8S_R_FORBIDDEN] = {"forbidden", "the cluster refused (RBAC)"},
    [K8S_R_UNAUTHORIZED] = {"unauthorized", "the cluster refused the credentials"},
    [K8S_R_UNREACHABLE] = {"unreachable", "the API server is unreachable"},
    [K8S_R_BACKEND] = {"node_unreachable", "the API server could not reach the pod's node"},
    [K8S_R_NOT_FOUND_PROG] = {"kubectl_not_found", "kubectl could not be run"},
    [K8S_R_OTHER] = {"port_forward_failed", "kubectl port-forward ended"},
};

const char *k8s_reason_name(int r)
{
	return r >= 0 && (size_t)r < ARRAY_SIZE(reasons) ? reasons[r].name : "unknown";
}

const char *k8s_reason_text(int r)
{
	return r >= 0 && (size_t)r < ARRAY_SIZE(reasons) ? reasons[r].text : "unknown";
}

/* --- the kubectl command line --- */

int k8s_pf_argv(const struct k8s_fwd *f, char ***ret)
{
	char **v = calloc(16, sizeof *v);
	size_t n = 0;
	if (!v)
		return -ENOMEM;
#define ADD(s)                                                                                     \
	do {                                                                                       \
		if (!(v[n++] = strdup(s)))                                                         \
			goto oom;                                                                  \
	} while (0)
	ADD(f->kubectl ? f->kubectl : "kubectl");
	if (f->kubeconfig) {
		ADD("--kubeconfig");
		ADD(f->kubeconfig);
	}
	if (f->context) {
		ADD("--context");
		ADD(f->context);
	}
	ADD("--namespace");
	ADD(f->namespace);
	ADD("port-forward");
	ADD("--address");
	ADD("127.0.0.1");
	char buf[300];
	snprintf(buf, sizeof buf, "svc/%s", f->service);
	ADD(buf);
	if (f->local_port)
		snprintf(buf, sizeof buf, "%d:%d", f->local_port, f->remote_port);
	else
		snprintf(buf, sizeof buf, ":%d", f->remote_port);
	ADD(buf);
#undef ADD
	*ret = v;
	return 0;
oom:
	k8s_pf_argv_free(v);
	return -ENOMEM;
}

void k8s_pf_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

/* --- the driver --- */

struct k8s_sup {
	struct k8s_fwd *f;
	const char *state_dir;
};

static struct k8s_fwd *fwd(struct sup *s)
{
	return ((struct k8s_sup *)sup_ctx(s))->f;
}

static int build_argv(struct sup *s, char ***ret)
{
	return k8s_pf_argv(fwd(s), ret);
}

static enum sup_line classify(struct sup *s, const char *line, size_t len, bool is_stdout,
			      int *reason)
{
	int port = 0;
	enum sup_line k = k8s_pf_classify(line, len, is_stdout, reason, &port);
	if (k == SUP_LINE_READY && port)
		fwd(s)->local_port = port; /* the one kubectl bound (":PORT" picks) */
	return k;
}

static int reason_exit(int r)
{
	return r == K8S_R_NOT_FOUND_PROG ? EXIT_ERROR : EXIT_K8S_PORT_FORWARD_FAILED;
}

/* kubectl could not bind: ask for the next port, then for any port. */
static bool retry_now(struct sup *s, int reason)
{
	struct k8s_fwd *f = fwd(s);
	if (reason != K8S_R_PORT_TAKEN || f->local_port == 0)
		return false;
	int was = f->local_port;
	f->shifts++;
	int next = f->requested_port + (int)f->shifts;
	f->local_port = f->shifts > K8S_MAX_SHIFTS || next > 65535 ? 0 : next;
	char d[160];
	if (f->local_port)
		snprintf(d, sizeof d, "127.0.0.1:%d is in use; trying %d", was, f->local_port);
	else
		snprintf(d, sizeof d,
			 "127.0.0.1:%d is in use; %u ports tried, asking for any free port", was,
			 f->shifts);
	sup_event(s, "port_shifted", d);
	return true;
}

static int probe_port(struct sup *s)
{
	return fwd(s)->local_port;
}

static void describe(struct sup *s, char *local, size_t ln, char *remote, size_t rn)
{
	const struct k8s_fwd *f = fwd(s);
	if (f->local_port)
		snprintf(local, ln, "127.0.0.1:%d", f->local_port);
	else
		snprintf(local, ln, "127.0.0.1:*");
	snprintf(remote, rn, "%s/svc/%s:%d", f->namespace, f->service, f->remote_port);
}

static void state_extra(struct sup *s, json_t *o)
{
	const struct k8s_fwd *f = fwd(s);
	json_object_set_new(o, "service", json_string(f->service));
	json_object_set_new(o, "namespace", json_string(f->namespace));
	json_object_set_new(o, "remote_port", json_integer(f->remote_port));
	json_object_set_new(o, "local_port", json_integer(f->local_port));
	json_object_set_new(o, "requested_port", json_integer(f->requested_port));
	json_object_set_new(o, "kubeconfig",
			    f->kubeconfig ? json_string(f->kubeconfig) : json_null());
	json_object_set_new(o, "context", f->context ? json_string(f->context) : json_null());
	json_object_set_new(o, "origin", json_string(f->origin ? f->origin : "standalone"));
	json_object_set_new(o, "started_at", json_string(f->started_at));
}

/* Keep session.json and bridge.env true: a reconnect may have moved the
 * local port, and the entry's state is "connected" again. */
static void connected(struct sup *s)
{
	struct k8s_sup *k = sup_ctx(s);
	int r = k8s_session_write(k->state_dir, sup_name(s));
	if (r < 0)
		log_error("%s: cannot write the session files: %s", sup_name(s), strerror(-r));
}

/* Leaving: the session files must not keep advertising this port. */
static void finished(struct sup *s)
{
	struct k8s_sup *k = sup_ctx(s);
	int r = k8s_session_write_without(k->state_dir, sup_name(s));
	if (r < 0)
		log_error("%s: cannot write the session files: %s", sup_name(s), strerror(-r));
}

static const struct sup_driver k8s_driver = {
    .kind = "k8s",
    .program = "kubectl",
    .read_stdout = true,
    .reason_not_found = K8S_R_NOT_FOUND_PROG,
    .reason_other = K8S_R_OTHER,
    .exit_not_found = EXIT_ERROR,
    .build_argv = build_argv,
    .free_argv = k8s_pf_argv_free,
    .classify = classify,
    .reason_name = k8s_reason_name,
    .reason_text = k8s_reason_text,
    .reason_exit = reason_exit,
    .retry_now = retry_now,
    .probe_port = probe_port,
    .describe = describe,
    .state_extra = state_extra,
    .connected = connected,
    .finished = finished,
};

int k8s_pf_supervise(struct k8s_fwd *f, const char *name, const char *state_dir, int max_attempts,
		     unsigned health_interval_s, int ready_fd)
{
	struct k8s_sup k = {.f = f, .state_dir = state_dir};
	if (!f->started_at[0])
		now_iso8601(f->started_at, sizeof f->started_at);
	const char *user = getenv("USER");
	struct sup_opts o = {
	    .name = name,
	    .state_dir = state_dir,
	    .actor = user && *user ? user : "devbridge",
	    .actor_class = "human",
	    .drv = &k8s_driver,
	    .ctx = &k,
	    .max_attempts = 0,
	    .first_max_attempts = max_attempts,
	    .ready_waits_retries = true,
	    .probe_interval_s = health_interval_s,
	    .backoff_initial = 1,
	    .backoff_max = 30,
	    .stable_s = 30,
	    .ready_fd = ready_fd,
	};
	return sup_run(&o);
}
