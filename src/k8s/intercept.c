/* intercept.c - see intercept.h. */
#include "k8s/intercept.h"
#include "core/num.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DEVBRIDGE_VERSION
#define DEVBRIDGE_VERSION "0.1.0"
#endif

/* --- small readers ----------------------------------------------------- */

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* A port number in [1, 65535] (a JSON integer), or 0. */
static int jport(const json_t *v)
{
	if (!json_is_integer(v))
		return 0;
	json_int_t x = json_integer_value(v);
	return x >= 1 && x <= 65535 ? (int)x : 0;
}

/* A Kubernetes port name as a Service may carry it: [a-z0-9-], 1-63. */
static bool port_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* IANA_SVC_NAME, what a container port's name must be: 1-15 of [a-z0-9-],
 * a letter among them, no '-' at either end, no "--". */
static bool iana_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	bool letter = false;
	if (n == 0 || n > 15 || s[0] == '-' || s[n - 1] == '-' || strstr(s, "--"))
		return false;
	for (size_t i = 0; i < n; i++) {
		letter |= s[i] >= 'a' && s[i] <= 'z';
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	}
	return letter;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static int parse_port(const char *s, size_t len)
{
	uint64_t v;
	return parse_uint_range(s, len, 1, 65535, 0, &v) == 0 ? (int)v : 0;
}

/* A peer's text for a message: control characters out, cut to fit. */
static void copy_clean(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
	text_sanitize(dst);
}

bool icpt_hex_ok(const char *s, size_t len)
{
	if (!s || strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* --- -p ------------------------------------------------------------------ */

int icpt_spec_parse(const char *s, struct icpt_spec *out, char *err, size_t errn)
{
	memset(out, 0, sizeof *out);
	const char *colon = strchr(s, ':');
	size_t plen = colon ? (size_t)(colon - s) : strlen(s);
	if (plen == 0 || plen >= sizeof out->port) {
		snprintf(err, errn, "expected PORT, NAME, PORT:LOCAL_PORT or NAME:LOCAL_PORT");
		return -EINVAL;
	}
	memcpy(out->port, s, plen);
	out->port[plen] = '\0';
	if (all_digits(out->port)) {
		if (!parse_port(out->port, plen)) {
			snprintf(err, errn, "port %s: expected 1-65535", out->port);
			return -EINVAL;
		}
	} else if (!port_name_ok(out->port)) {
		snprintf(err, errn,
			 "'%s' is neither a port number nor a port name (lowercase letters, "
			 "digits, '-')",
			 out->port);
		text_sanitize(err);
		return -EINVAL;
	}
	if (colon) {
		const char *l = colon + 1;
		if (!(out->local = parse_port(l, strlen(l)))) {
			snprintf(err, errn, "local port '%s': expected 1-65535", l);
			text_sanitize(err);
			return -EINVAL;
		}
	}
	return 0;
}

/* --- the Service --------------------------------------------------------- */

/* A port of spec.ports[] read into p: 0, or -EINVAL.  *proto the
 * protocol (default TCP). */
static int read_port(const json_t *v, struct icpt_port *p, const char **proto)
{
	memset(p, 0, sizeof *p);
	if (!json_is_object(v) || !(p->port = jport(json_object_get(v, "port"))))
		return -EINVAL;
	const char *name = jstr(v, "name");
	if (name && *name) {
		if (!port_name_ok(name))
			return -EINVAL;
		snprintf(p->name, sizeof p->name, "%s", name);
	}
	*proto = jstr(v, "protocol");
	if (!*proto || !**proto)
		*proto = "TCP";
	const json_t *tp = json_object_get(v, "targetPort");
	if (!tp) {
		p->target = p->port;
	} else if (json_is_integer(tp)) {
		if (!(p->target = jport(tp)))
			return -EINVAL;
	} else if (json_is_string(tp)) {
		const char *t = json_string_value(tp);
		if (all_digits(t)) {
			if (!(p->target = parse_port(t, strlen(t))))
				return -EINVAL;
		} else if (port_name_ok(t)) {
			snprintf(p->target_name, sizeof p->target_name, "%s", t);
		} else {
			return -EINVAL;
		}
	} else {
		return -EINVAL;
	}
	p->local = p->port;
	return 0;
}

/* "80/TCP (http), 53/UDP" */
static void list_ports(const json_t *ports, char *buf, size_t n)
{
	size_t i, off = 0;
	const json_t *v;
	buf[0] = '\0';
	json_array_foreach(ports, i, v)
	{
		int port = jport(json_object_get(v, "port"));
		const char *name = jstr(v, "name"), *proto = jstr(v, "protocol");
		if (!port || off >= n)
			continue;
		int w = snprintf(buf + off, n - off, "%s%d/%s%s%s%s", off ? ", " : "", port,
				 proto && *proto ? proto : "TCP", name && *name ? " (" : "",
				 name && *name ? name : "", name && *name ? ")" : "");
		off += w > 0 ? (size_t)w : 0;
	}
	if (!buf[0])
		snprintf(buf, n, "none");
	text_sanitize(buf);
}

/* A non-empty map of strings (what the API server's spec.selector is). */
static bool selector_ok(const json_t *sel)
{
	const char *k;
	json_t *v;
	if (!json_is_object(sel) || json_object_size(sel) == 0)
		return false;
	json_object_foreach((json_t *)sel, k, v)
	{
		if (!json_is_string(v))
			return false;
	}
	return true;
}

enum icpt_verdict icpt_check_service(const json_t *svc, const struct icpt_spec *specs,
				     size_t n_specs, int local_port, struct icpt_found *out,
				     char *detail, size_t n)
{
	char shown[600];
	memset(out, 0, sizeof *out);
	if (n)
		detail[0] = '\0';
	const json_t *spec = json_object_get(svc, "spec");
	const char *kind = jstr(svc, "kind");
	if (!json_is_object(svc) || !json_is_object(spec) || (kind && strcmp(kind, "Service"))) {
		snprintf(detail, n, "not a Service object");
		return ICPT_BAD_JSON;
	}
	/* 72: nothing to swap. */
	const char *type = jstr(spec, "type");
	if (type && strcmp(type, "ExternalName") == 0) {
		copy_clean(shown, sizeof shown, jstr(spec, "externalName"));
		snprintf(detail, n, "it is of type ExternalName (%s): no pods to swap away from",
			 shown[0] ? shown : "no name");
		return ICPT_NOT_INTERCEPTABLE;
	}
	const json_t *sel = json_object_get(spec, "selector");
	if (json_object_size(sel) > 0 && !selector_ok(sel)) {
		snprintf(detail, n, "spec.selector is not a map of strings");
		return ICPT_BAD_JSON;
	}
	if (!selector_ok(sel)) {
		snprintf(detail, n,
			 "it has no pod selector (its endpoints are managed by hand): there is no "
			 "selector to swap");
		return ICPT_NOT_INTERCEPTABLE;
	}
	/* The ports: read all, then pick. */
	const json_t *ports = json_object_get(spec, "ports");
	struct icpt_port all[ICPT_MAX_PORTS * 2];
	const char *proto[ICPT_MAX_PORTS * 2];
	size_t n_all = 0, i;
	const json_t *v;
	if (!json_is_array(ports) || json_array_size(ports) > ARRAY_SIZE(all)) {
		snprintf(detail, n, "spec.ports is not a list of at most %zu ports",
			 ARRAY_SIZE(all));
		return json_is_array(ports) ? ICPT_USAGE : ICPT_BAD_JSON;
	}
	json_array_foreach(ports, i, v)
	{
		if (read_port(v, &all[n_all], &proto[n_all]) < 0) {
			snprintf(detail, n, "spec.ports[%zu] is not a port devbridge can read", i);
			return ICPT_BAD_JSON;
		}
		n_all++;
	}
	list_ports(ports, shown, sizeof shown);
	if (n_all == 0) {
		snprintf(detail, n, "it has no ports");
		return ICPT_NO_PORT;
	}
	bool chosen[ARRAY_SIZE(all)] = {false};
	int locals[ARRAY_SIZE(all)] = {0};
	if (n_specs) {
		for (size_t s = 0; s < n_specs; s++) {
			bool num = all_digits(specs[s].port);
			int want = num ? parse_port(specs[s].port, strlen(specs[s].port)) : 0;
			size_t k;
			for (k = 0; k < n_all; k++)
				if (num ? all[k].port == want
					: strcmp(all[k].name, specs[s].port) == 0)
					break;
			if (k == n_all) {
				snprintf(detail, n, "it has no port %s (ports: %s)", specs[s].port,
					 shown);
				return ICPT_NO_PORT;
			}
			if (chosen[k]) {
				snprintf(detail, n, "port %d is asked for twice", all[k].port);
				return ICPT_USAGE;
			}
			chosen[k] = true;
			locals[k] = specs[s].local;
		}
	} else {
		for (size_t k = 0; k < n_all; k++)
			chosen[k] = strcmp(proto[k], "TCP") == 0;
	}
	for (size_t k = 0; k < n_all; k++) {
		if (!chosen[k])
			continue;
		if (out->n_ports == ICPT_MAX_PORTS) {
			snprintf(detail, n, "at most %d ports in one intercept: choose with -p",
				 ICPT_MAX_PORTS);
			return ICPT_USAGE;
		}
		struct icpt_port *p = &out->ports[out->n_ports++];
		*p = all[k];
		if (locals[k])
			p->local = locals[k];
		out->named_targets |= p->target_name[0] != '\0';
	}
	if (out->n_ports == 0) {
		snprintf(detail, n, "it has no TCP port (ports: %s): the agent relays TCP only",
			 shown);
		return ICPT_UDP;
	}
	if (local_port) {
		if (out->n_ports > 1) {
			snprintf(
			    detail, n,
			    "--local-port needs a single port, and %zu are intercepted (ports: "
			    "%s): choose one with -p, or give -p PORT:LOCAL_PORT for each",
			    out->n_ports, shown);
			return ICPT_USAGE;
		}
		if (n_specs && specs[0].local) {
			snprintf(detail, n, "give the local port once: -p %s:%d or --local-port %d",
				 specs[0].port, specs[0].local, local_port);
			return ICPT_USAGE;
		}
		out->ports[0].local = local_port;
	}
	for (size_t a = 0; a < out->n_ports; a++)
		for (size_t b = 0; b < a; b++)
			if (out->ports[a].local == out->ports[b].local) {
				snprintf(
				    detail, n, "ports %d and %d would both go to local port %d",
				    out->ports[b].port, out->ports[a].port, out->ports[a].local);
				return ICPT_USAGE;
			}
	/* 70: among the intercepted ones (asked for with -p). */
	for (size_t k = 0; k < n_all; k++)
		if (chosen[k] && strcmp(proto[k], "TCP") != 0) {
			copy_clean(shown, 32, proto[k]);
			snprintf(detail, n, "port %d is %s: the agent relays TCP only", all[k].port,
				 shown);
			return ICPT_UDP;
		}
	/* 69 */
	const json_t *ann = json_object_get(json_object_get(svc, "metadata"), "annotations");
	const json_t *sess = json_object_get(ann, ICPT_ANN_SESSION);
	if (sess) {
		copy_clean(out->session, sizeof out->session,
			   json_is_string(sess) ? json_string_value(sess) : "?");
		snprintf(detail, n, "it is already intercepted (annotation %s: %s)",
			 ICPT_ANN_SESSION, out->session);
		return ICPT_ACTIVE;
	}
	return ICPT_OK;
}

void icpt_port_warnings(const json_t *svc, const struct icpt_found *f, json_t *warnings)
{
	const json_t *ports = json_object_get(json_object_get(svc, "spec"), "ports");
	size_t i;
	const json_t *v;
	json_array_foreach(ports, i, v)
	{
		struct icpt_port p;
		const char *proto;
		if (read_port(v, &p, &proto) < 0)
			continue;
		bool served = false;
		for (size_t k = 0; k < f->n_ports; k++)
			served |= f->ports[k].port == p.port;
		if (served)
			continue;
		char pr[32], *s;
		copy_clean(pr, sizeof pr, proto);
		s = strdup_printf(
		    "port %d/%s%s%s%s is not intercepted: while the selector points at "
		    "the agent, the Service's connections to it fail",
		    p.port, pr, p.name[0] ? " (" : "", p.name, p.name[0] ? ")" : "");
		if (s)
			json_array_append_new(warnings, json_string(s));
		free(s);
	}
}

/* --- service meshes --- */

enum { MESH_ISTIO, MESH_LINKERD, N_MESH };

static const struct mesh {
	const char *name, *proxy; /* the mesh, its sidecar container */
} meshes[N_MESH] = {
    [MESH_ISTIO] = {"Istio", "istio-proxy"},
    [MESH_LINKERD] = {"Linkerd", "linkerd-proxy"},
};

/* What was seen of one mesh: the first few pieces of evidence. */
struct mesh_seen {
	char why[400];
	size_t n;
};

static void mesh_note(struct mesh_seen *m, const char *fmt, const char *a, const char *b,
		      const char *c)
{
	char one[200], ca[80], cb[80], cc[80];
	copy_clean(ca, sizeof ca, a);
	copy_clean(cb, sizeof cb, b);
	copy_clean(cc, sizeof cc, c);
	if (m->n++ >= 3)
		return; /* enough to say why */
	snprintf(one, sizeof one, fmt, ca, cb, cc);
	size_t len = strlen(m->why);
	snprintf(m->why + len, sizeof m->why - len, "%s%s", len ? "; " : "", one);
}

/* metadata.labels[key] or metadata.annotations[key] of obj (a string),
 * and which of the two in *where. */
static const char *meta_value(const json_t *obj, const char *key, const char **where)
{
	const json_t *md = json_object_get(obj, "metadata");
	const char *v = json_string_value(json_object_get(json_object_get(md, "labels"), key));
	*where = "label";
	if (v)
		return v;
	*where = "annotation";
	return json_string_value(json_object_get(json_object_get(md, "annotations"), key));
}

static const char *obj_name(const json_t *obj)
{
	const char *s =
	    json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
	return s ? s : "?";
}

/* Injection asked for on obj (a namespace or a pod): key=value, for the
 * values that turn it on. */
static void mesh_injection(const json_t *obj, const char *what, struct mesh_seen *seen)
{
	static const struct {
		int mesh;
		const char *key, *on; /* on: NULL = any value */
	} keys[] = {
	    {MESH_ISTIO, "istio-injection", "enabled"},
	    {MESH_ISTIO, "istio.io/rev", NULL},
	    {MESH_ISTIO, "sidecar.istio.io/inject", "true"},
	    {MESH_LINKERD, "linkerd.io/inject", "enabled"},
	    {MESH_LINKERD, "linkerd.io/inject", "ingress"},
	};
	for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
		const char *where, *v = meta_value(obj, keys[k].key, &where);
		if (!v || (keys[k].on && strcmp(v, keys[k].on) != 0))
			continue;
		char fmt[64];
		snprintf(fmt, sizeof fmt, "%s %%s has %s %%s=%%s", what, where);
		mesh_note(&seen[keys[k].mesh], fmt, obj_name(obj), keys[k].key, v);
	}
}

void icpt_mesh_warnings(const json_t *ns, const json_t *pods, json_t *warnings)
{
	struct mesh_seen seen[N_MESH] = {0};
	if (ns)
		mesh_injection(ns, "namespace", seen);
	size_t i;
	const json_t *pod;
	json_array_foreach(json_object_get(pods, "items"), i, pod)
	{
		static const char *const lists[] = {"containers", "initContainers"};
		const json_t *spec = json_object_get(pod, "spec");
		for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
			size_t k;
			const json_t *c;
			json_array_foreach(json_object_get(spec, lists[l]), k, c)
			{
				const char *cn = json_string_value(json_object_get(c, "name"));
				for (int m = 0; cn && m < N_MESH; m++)
					if (strcmp(cn, meshes[m].proxy) == 0)
						mesh_note(&seen[m], "pod %s has container %s",
							  obj_name(pod), cn, "");
			}
		}
		mesh_injection(pod, "pod", seen);
	}
	for (int m = 0; m < N_MESH; m++) {
		if (!seen[m].n)
			continue;
		char *s = strdup_printf(
		    "service mesh %s (%s%s): devbridge does not support service meshes in this "
		    "version and goes on anyway. The mesh may inject a %s sidecar into the "
		    "agent's pod too, and may override or ignore the selector swap; clients "
		    "whose sidecars speak mTLS reach the agent, and so this machine, encrypted "
		    "(or are refused: the agent has no mesh identity). Exclude the agent from "
		    "injection or intercept a Service outside the mesh",
		    meshes[m].name, seen[m].why, seen[m].n > 3 ? "; ..." : "", meshes[m].proxy);
		if (s)
			json_array_append_new(warnings, json_string(s));
		free(s);
	}
}

void icpt_pod_security(const json_t *ns, char *buf, size_t n)
{
	const char *v = json_string_value(
	    json_object_get(json_object_get(json_object_get(ns, "metadata"), "labels"),
			    "pod-security.kubernetes.io/enforce"));
	copy_clean(buf, n, v ? v : "");
}

/* Label keys ([prefix/]name) and values: letters, digits, '-', '_', '.',
 * and '/' in keys. */
static bool label_chars_ok(const char *s, bool key)
{
	size_t n = strlen(s);
	if (n > 316 || (key && n == 0))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || (key && c == '/')))
			return false;
	}
	return true;
}

int icpt_selector_string(const json_t *svc, char *buf, size_t n)
{
	const json_t *sel = json_object_get(json_object_get(svc, "spec"), "selector");
	const char *k;
	const json_t *v;
	size_t off = 0;
	if (n == 0 || !selector_ok(sel))
		return -EINVAL;
	buf[0] = '\0';
	json_object_foreach((json_t *)sel, k, v)
	{
		const char *s = json_string_value(v);
		if (!s || !label_chars_ok(k, true) || !label_chars_ok(s, false))
			return -EINVAL;
		int w = snprintf(buf + off, n - off, "%s%s=%s", off ? "," : "", k, s);
		if (w < 0 || (size_t)w >= n - off)
			return -EINVAL;
		off += (size_t)w;
	}
	return 0;
}

const json_t *icpt_ready_pod(const json_t *list)
{
	size_t i, j;
	const json_t *pod, *c;
	json_array_foreach(json_object_get(list, "items"), i, pod)
	{
		const json_t *md = json_object_get(pod, "metadata");
		if (json_object_get(md, "deletionTimestamp") ||
		    !json_is_string(json_object_get(md, "name")))
			continue;
		json_array_foreach(json_object_get(json_object_get(pod, "status"), "conditions"), j,
				   c)
		{
			const char *t = jstr(c, "type"), *s = jstr(c, "status");
			if (t && s && strcmp(t, "Ready") == 0 && strcmp(s, "True") == 0)
				return pod;
		}
	}
	return NULL;
}

int icpt_resolve_targets(struct icpt_found *f, const json_t *pod, char *detail, size_t n)
{
	const json_t *containers = json_object_get(json_object_get(pod, "spec"), "containers");
	char pod_name[128];
	copy_clean(pod_name, sizeof pod_name, jstr(json_object_get(pod, "metadata"), "name"));
	for (size_t k = 0; k < f->n_ports; k++) {
		struct icpt_port *p = &f->ports[k];
		if (!p->target_name[0])
			continue;
		size_t i, j;
		const json_t *c, *cp;
		int found = 0;
		json_array_foreach(containers, i, c)
		{
			json_array_foreach(json_object_get(c, "ports"), j, cp)
			{
				const char *name = jstr(cp, "name"), *proto = jstr(cp, "protocol");
				if (!found && name && strcmp(name, p->target_name) == 0 &&
				    (!proto || !*proto || strcmp(proto, "TCP") == 0))
					found = jport(json_object_get(cp, "containerPort"));
			}
		}
		if (!found) {
			snprintf(detail, n,
				 "port %d targets the container port named '%s', which pod %s does "
				 "not have",
				 p->port, p->target_name, pod_name[0] ? pod_name : "?");
			return -ENOENT;
		}
		p->target = found;
	}
	f->named_targets = false;
	return 0;
}

void icpt_agent_ports(const struct icpt_port *ports, size_t n, int *control, int *health)
{
	int pick[2] = {ICPT_CONTROL_PORT, ICPT_HEALTH_PORT};
	for (int w = 0; w < 2; w++) {
		for (;;) {
			bool taken = w == 1 && pick[1] == pick[0];
			for (size_t k = 0; k < n && !taken; k++)
				taken = ports[k].target == pick[w];
			if (!taken)
				break;
			pick[w]++;
		}
	}
	*control = pick[0];
	*health = pick[1];
}

int icpt_check_targets(const struct icpt_found *f, char *detail, size_t n)
{
	for (size_t a = 0; a < f->n_ports; a++) {
		if (f->ports[a].target < 1 || f->ports[a].target > 65535) {
			snprintf(detail, n, "port %d: its target port is not resolved",
				 f->ports[a].port);
			return -EINVAL;
		}
		for (size_t b = 0; b < a; b++)
			if (f->ports[a].target == f->ports[b].target) {
				snprintf(
				    detail, n,
				    "ports %d and %d both target port %d: the agent could not "
				    "tell their connections apart (intercept one of them with -p)",
				    f->ports[b].port, f->ports[a].port, f->ports[a].target);
				return -EINVAL;
			}
	}
	int control, health;
	icpt_agent_ports(f->ports, f->n_ports, &control, &health);
	if (control > 65535 || health > 65535) {
		snprintf(detail, n, "no port is left for the agent's control and health ports");
		return -EINVAL;
	}
	return 0;
}

/* --- the objects --------------------------------------------------------- */

void icpt_object_name(char *buf, size_t n, const char *sid)
{
	snprintf(buf, n, ICPT_NAME_PREFIX "%s", sid);
}

static json_t *labels(const struct icpt_params *p, bool pod)
{
	json_t *l =
	    json_pack("{s:s, s:s}", ICPT_LABEL_MANAGED, "devbridge", ICPT_LABEL_SESSION, p->sid);
	if (l && pod)
		json_object_set_new(l, ICPT_LABEL_POD, json_string(p->sid));
	return l;
}

static json_t *metadata(const struct icpt_params *p)
{
	char name[64];
	icpt_object_name(name, sizeof name, p->sid);
	return json_pack("{s:s, s:s, s:o}", "name", name, "namespace", p->namespace, "labels",
			 labels(p, false));
}

static json_t *service_account(const struct icpt_params *p)
{
	return json_pack("{s:s, s:s, s:o, s:b}", "apiVersion", "v1", "kind", "ServiceAccount",
			 "metadata", metadata(p), "automountServiceAccountToken", 1);
}

static json_t *role(const struct icpt_params *p)
{
	json_t *rules =
	    json_pack("[{s:[s], s:[s], s:[s], s:[s, s, s]}]", "apiGroups", "", "resources",
		      "services", "resourceNames", p->service, "verbs", "get", "update", "patch");
	if (rules && p->mode == INTERCEPT_MIRROR)
		json_array_append_new(rules,
				      json_pack("{s:[s], s:[s], s:[s, s]}", "apiGroups", "",
						"resources", "pods", "verbs", "get", "list"));
	return json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "rbac.authorization.k8s.io/v1",
			 "kind", "Role", "metadata", metadata(p), "rules", rules);
}

static json_t *role_binding(const struct icpt_params *p)
{
	char name[64];
	icpt_object_name(name, sizeof name, p->sid);
	return json_pack("{s:s, s:s, s:o, s:[{s:s, s:s, s:s}], s:{s:s, s:s, s:s}}", "apiVersion",
			 "rbac.authorization.k8s.io/v1", "kind", "RoleBinding", "metadata",
			 metadata(p), "subjects", "kind", "ServiceAccount", "name", name,
			 "namespace", p->namespace, "roleRef", "apiGroup",
			 "rbac.authorization.k8s.io", "kind", "Role", "name", name);
}

static void base64(const char *in, char *out, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t len = strlen(in), o = 0;
	for (size_t i = 0; i < len && o + 5 <= n; i += 3) {
		unsigned v = (unsigned char)in[i] << 16;
		if (i + 1 < len)
			v |= (unsigned char)in[i + 1] << 8;
		if (i + 2 < len)
			v |= (unsigned char)in[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? tab[v & 63] : '=';
	}
	out[o] = '\0';
}

static json_t *secret(const struct icpt_params *p)
{
	char b64[2 * ICPT_TOKEN_LEN];
	base64(p->token, b64, sizeof b64);
	json_t *s = json_pack("{s:s, s:s, s:o, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Secret",
			      "metadata", metadata(p), "type", "Opaque", "data", "token", b64);
	explicit_bzero(b64, sizeof b64);
	return s;
}

json_t *icpt_agent_command(const struct icpt_params *p)
{
	int control, health;
	char num[32];
	icpt_agent_ports(p->ports, p->n_ports, &control, &health);
	json_t *a = json_pack("[s, s, s, s, s, s, s, s]", "devbridge", "agent", "--namespace",
			      p->namespace, "--service", p->service, "--session", p->sid);
	if (!a)
		return NULL;
	for (size_t k = 0; k < p->n_ports; k++) {
		snprintf(num, sizeof num, "%d:%d", p->ports[k].port, p->ports[k].target);
		json_array_append_new(a, json_string("--port"));
		json_array_append_new(a, json_string(num));
	}
	json_array_append_new(a, json_string("--mode"));
	json_array_append_new(a, json_string(cfg_mode_name(p->mode)));
	if (control != ICPT_CONTROL_PORT) {
		snprintf(num, sizeof num, "%d", control);
		json_array_append_new(a, json_string("--control-port"));
		json_array_append_new(a, json_string(num));
	}
	if (health != ICPT_HEALTH_PORT) {
		snprintf(num, sizeof num, "%d", health);
		json_array_append_new(a, json_string("--health-port"));
		json_array_append_new(a, json_string(num));
	}
	return a;
}

static bool name_used(const json_t *cports, const char *name)
{
	size_t i;
	const json_t *v;
	json_array_foreach(cports, i, v)
	{
		const char *s = jstr(v, "name");
		if (s && strcmp(s, name) == 0)
			return true;
	}
	return false;
}

/* Container ports: every target port, named after its named targetPort
 * (what the endpoints controller looks up by name once the selector
 * points here), else after the Service port's name where that is a valid
 * container port name; then the agent's control and health ports. */
static json_t *container_ports(const struct icpt_params *p, int control, int health)
{
	json_t *a = json_array();
	for (size_t k = 0; a && k < p->n_ports; k++) {
		const struct icpt_port *q = &p->ports[k];
		const char *name = q->target_name[0] ? q->target_name : q->name;
		json_t *cp = json_pack("{s:i, s:s}", "containerPort", q->target, "protocol", "TCP");
		if (cp && iana_name_ok(name) && !name_used(a, name))
			json_object_set_new(cp, "name", json_string(name));
		json_array_append_new(a, cp);
	}
	const char *cn = name_used(a, "control") ? "db-control" : "control";
	const char *hn = name_used(a, "health") ? "db-health" : "health";
	json_array_append_new(a, json_pack("{s:s, s:i, s:s}", "name", cn, "containerPort", control,
					   "protocol", "TCP"));
	json_array_append_new(a, json_pack("{s:s, s:i, s:s}", "name", hn, "containerPort", health,
					   "protocol", "TCP"));
	return a;
}

static json_t *job(const struct icpt_params *p)
{
	char name[64];
	int control, health;
	icpt_object_name(name, sizeof name, p->sid);
	icpt_agent_ports(p->ports, p->n_ports, &control, &health);
	json_t *container = json_pack(
	    "{s:s, s:s, s:o, s:o, s:[{s:s, s:{s:{s:s, s:s}}}], s:{s:{s:s, s:i}, s:i, s:i, s:i},"
	    " s:{s:b, s:b, s:b, s:{s:[s]}}}",
	    "name", "agent", "image", p->image, "command", icpt_agent_command(p), "ports",
	    container_ports(p, control, health), "env", "name", "DEVBRIDGE_AGENT_TOKEN",
	    "valueFrom", "secretKeyRef", "name", name, "key", "token", "readinessProbe", "httpGet",
	    "path", "/healthz", "port", health, "periodSeconds", 1, "timeoutSeconds", 1,
	    "failureThreshold", 3, "securityContext", "allowPrivilegeEscalation", 0,
	    "readOnlyRootFilesystem", 1, "runAsNonRoot", 1, "capabilities", "drop", "ALL");
	json_t *pod_spec =
	    json_pack("{s:s, s:s, s:b, s:i, s:{s:b, s:i, s:i, s:{s:s}}, s:[o]}", "restartPolicy",
		      "Never", "serviceAccountName", name, "automountServiceAccountToken", 1,
		      "terminationGracePeriodSeconds", 30, "securityContext", "runAsNonRoot", 1,
		      "runAsUser", ICPT_AGENT_UID, "runAsGroup", ICPT_AGENT_UID, "seccompProfile",
		      "type", "RuntimeDefault", "containers", container);
	return json_pack("{s:s, s:s, s:o, s:{s:i, s:i, s:i, s:{s:{s:o}, s:o}}}", "apiVersion",
			 "batch/v1", "kind", "Job", "metadata", metadata(p), "spec", "backoffLimit",
			 0, "activeDeadlineSeconds", ICPT_DEADLINE_S, "ttlSecondsAfterFinished", 60,
			 "template", "metadata", "labels", labels(p, true), "spec", pod_spec);
}

json_t *icpt_objects(const struct icpt_params *p)
{
	json_t *objs[] = {service_account(p), role(p), role_binding(p), secret(p), job(p)};
	json_t *a = json_array();
	bool ok = a != NULL;
	for (size_t i = 0; i < ARRAY_SIZE(objs); i++) {
		ok &= objs[i] != NULL;
		if (a && objs[i])
			json_array_append_new(a, objs[i]);
	}
	if (!ok) {
		json_decref(a);
		return NULL;
	}
	return a;
}

/* --- the swap and the restore ------------------------------------------- */

/* metadata.annotations of a copy, created when absent. */
static json_t *annotations(json_t *svc)
{
	json_t *md = json_object_get(svc, "metadata");
	if (!json_is_object(md)) {
		md = json_object();
		json_object_set_new(svc, "metadata", md);
	}
	json_t *ann = json_object_get(md, "annotations");
	if (!json_is_object(ann)) {
		ann = json_object();
		json_object_set_new(md, "annotations", ann);
	}
	return ann;
}

json_t *icpt_swapped_service(const json_t *svc, const char *sid, enum intercept_mode mode)
{
	const json_t *sel = json_object_get(json_object_get(svc, "spec"), "selector");
	if (!selector_ok(sel))
		return NULL;
	char *orig = json_dumps(sel, JSON_COMPACT | JSON_SORT_KEYS);
	json_t *s = json_deep_copy(svc);
	if (!orig || !s) {
		free(orig);
		json_decref(s);
		return NULL;
	}
	json_object_del(s, "status");
	json_object_set_new(json_object_get(s, "spec"), "selector",
			    json_pack("{s:s}", ICPT_LABEL_POD, sid));
	json_t *ann = annotations(s);
	json_object_set_new(ann, ICPT_ANN_SESSION, json_string(sid));
	json_object_set_new(ann, ICPT_ANN_ORIGINAL, json_string(orig));
	json_object_set_new(ann, ICPT_ANN_MODE, json_string(cfg_mode_name(mode)));
	free(orig);
	return s;
}

int icpt_restored_service(const json_t *svc, const char *sid, json_t **ret)
{
	const json_t *ann = json_object_get(json_object_get(svc, "metadata"), "annotations");
	const char *have = jstr(ann, ICPT_ANN_SESSION), *orig = jstr(ann, ICPT_ANN_ORIGINAL);
	if (!have || !sid || strcmp(have, sid) != 0)
		return -ENOENT;
	if (!orig || !json_is_object(json_object_get(svc, "spec")))
		return -EINVAL;
	json_t *sel = json_loads(orig, JSON_REJECT_DUPLICATES, NULL);
	if (!selector_ok(sel)) {
		json_decref(sel);
		return -EINVAL;
	}
	json_t *s = json_deep_copy(svc);
	if (!s) {
		json_decref(sel);
		return -ENOMEM;
	}
	json_object_del(s, "status");
	json_object_set_new(json_object_get(s, "spec"), "selector", sel);
	json_t *a = annotations(s);
	json_object_del(a, ICPT_ANN_SESSION);
	json_object_del(a, ICPT_ANN_ORIGINAL);
	json_object_del(a, ICPT_ANN_MODE);
	if (json_object_size(a) == 0)
		json_object_del(json_object_get(s, "metadata"), "annotations");
	*ret = s;
	return 0;
}

/* --- rights -------------------------------------------------------------- */

static const struct icpt_right rights[] = {
    {"create", "batch", "jobs", NULL, false},
    {"delete", "batch", "jobs", NULL, false},
    {"get", "batch", "jobs", NULL, false},
    {"list", "batch", "jobs", NULL, false},
    {"create", "", "serviceaccounts", NULL, false},
    {"delete", "", "serviceaccounts", NULL, false},
    {"create", "rbac.authorization.k8s.io", "roles", NULL, false},
    {"delete", "rbac.authorization.k8s.io", "roles", NULL, false},
    {"create", "rbac.authorization.k8s.io", "rolebindings", NULL, false},
    {"delete", "rbac.authorization.k8s.io", "rolebindings", NULL, false},
    {"create", "", "secrets", NULL, false},
    {"delete", "", "secrets", NULL, false},
    {"get", "", "services", NULL, true},
    {"update", "", "services", NULL, true},
    {"patch", "", "services", NULL, true},
    {"get", "", "pods", NULL, false},
    {"list", "", "pods", NULL, false},
    {"create", "", "pods", "portforward", false},
};

const struct icpt_right *icpt_rights(size_t *n)
{
	*n = ARRAY_SIZE(rights);
	return rights;
}

void icpt_right_str(const struct icpt_right *r, const char *service, char *buf, size_t n)
{
	snprintf(buf, n, "%s %s%s%s%s%s", r->verb, r->resource, r->group[0] ? "." : "", r->group,
		 r->subresource	       ? "/"
		 : r->named && service ? "/"
				       : "",
		 r->subresource	       ? r->subresource
		 : r->named && service ? service
				       : "");
}

void icpt_can_i_args(const struct icpt_right *r, const char *service, const char *ns, char *res,
		     size_t n, const char **args)
{
	size_t a = 0;
	bool named = r->named && service;
	snprintf(res, n, "%s%s%s%s%s", r->resource, r->group[0] ? "." : "", r->group,
		 named ? "/" : "", named ? service : "");
	args[a++] = "auth";
	args[a++] = "can-i";
	args[a++] = r->verb;
	args[a++] = res;
	args[a++] = "--namespace";
	args[a++] = ns;
	if (r->subresource) {
		args[a++] = "--subresource";
		args[a++] = r->subresource;
	}
	args[a] = NULL;
}

json_t *icpt_ssar_list(const char *service, const char *ns)
{
	size_t nr;
	const struct icpt_right *rt = icpt_rights(&nr);
	json_t *items = json_array();
	for (size_t i = 0; items && i < nr; i++) {
		json_t *ra = json_pack("{s:s, s:s, s:s, s:s}", "namespace", ns, "verb", rt[i].verb,
				       "group", rt[i].group, "resource", rt[i].resource);
		if (ra && rt[i].subresource)
			json_object_set_new(ra, "subresource", json_string(rt[i].subresource));
		if (ra && rt[i].named && service)
			json_object_set_new(ra, "name", json_string(service));
		json_t *o =
		    ra ? json_pack("{s:s, s:s, s:{s:o}}", "apiVersion", "authorization.k8s.io/v1",
				   "kind", "SelfSubjectAccessReview", "spec", "resourceAttributes",
				   ra)
		       : NULL;
		if (!o || json_array_append_new(items, o) < 0) {
			json_decref(items);
			return NULL;
		}
	}
	return items ? json_pack("{s:s, s:s, s:o}", "apiVersion", "v1", "kind", "List", "items",
				 items)
		     : NULL;
}

int icpt_ssar_answers(const char *out, int *answers, size_t n)
{
	/* kubectl prints the created objects one after the other (not as a
	 * List); a List is taken too */
	json_t *items = json_array();
	size_t len = out ? strlen(out) : 0, off = 0;
	int r = items && out ? 0 : -EINVAL;
	while (r == 0) {
		while (off < len && (out[off] == ' ' || out[off] == '\n' || out[off] == '\t' ||
				     out[off] == '\r'))
			off++;
		if (off == len)
			break;
		json_error_t je;
		json_t *v = json_loadb(out + off, len - off, JSON_DISABLE_EOF_CHECK, &je);
		if (!v || je.position <= 0) {
			json_decref(v);
			r = -EINVAL;
			break;
		}
		off += (size_t)je.position;
		json_t *list = json_object_get(v, "items");
		if (json_is_array(list))
			json_array_extend(items, list);
		else
			json_array_append(items, v);
		json_decref(v);
	}
	if (r == 0 && json_array_size(items) != n)
		r = -EINVAL;
	for (size_t i = 0; r == 0 && i < n; i++) {
		json_t *st =
		    json_object_get(json_object_get(json_array_get(items, i), "status"), "allowed");
		if (!json_is_boolean(st))
			r = -EINVAL;
		else
			answers[i] = json_is_true(st) ? 1 : 0;
	}
	json_decref(items);
	return r;
}

int icpt_can_i_answer(int status, const char *out)
{
	out = out ? out : "";
	if (status == 0 && strncmp(out, "yes", 3) == 0)
		return 1;
	return strncmp(out, "no", 2) == 0 ? 0 : -1;
}

const char *icpt_default_image(void)
{
	return ICPT_DEFAULT_IMAGE DEVBRIDGE_VERSION;
}
