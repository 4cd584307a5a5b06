/* target.c - see target.h. */
#include "k8s/target.h"
#include "core/num.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool k8s_dns_label(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
			return false;
	return true;
}

/* 1-65535 from [s, s+len), written as in bridge.targets (no leading
 * zeros). */
static int parse_port(const char *s, size_t len, int *ret)
{
	uint64_t v;
	if (parse_uint_range(s, len, 1, 65535, 0, &v) < 0)
		return -EINVAL;
	*ret = (int)v;
	return 0;
}

void k8s_bridge_name(char *buf, size_t n, const char *svc, const char *ns, int port)
{
	char full[200];
	snprintf(full, sizeof full, "%s.%s.%d", svc, ns, port);
	if (strlen(full) <= 64) {
		snprintf(buf, n, "%s", full);
		return;
	}
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = full; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	snprintf(buf, n, "%.55s-%08x", full, h);
}

/* [s, s+len) is a DNS label. */
static bool label_n(const char *s, size_t len)
{
	char label[64];

	if (len >= sizeof label)
		return false;
	memcpy(label, s, len);
	label[len] = '\0';
	return k8s_dns_label(label);
}

bool k8s_bridge_name_like(const char *name)
{
	size_t n = strlen(name);
	const char *d1 = strchr(name, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	int port;

	if (n == 64 && name[55] == '-') { /* the hashed form */
		for (size_t i = 56; i < 64; i++)
			if (!isdigit((unsigned char)name[i]) && !(name[i] >= 'a' && name[i] <= 'f'))
				return false;
		return true;
	}
	return d2 && !strchr(d2 + 1, '.') && parse_port(d2 + 1, strlen(d2 + 1), &port) == 0 &&
	       label_n(name, (size_t)(d1 - name)) && label_n(d1 + 1, (size_t)(d2 - d1 - 1));
}

int k8s_target_parse(const char *spec, struct k8s_target *t, char *err, size_t errn)
{
	memset(t, 0, sizeof *t);
	const char *c1 = strchr(spec, ':');
	const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (!c1 || c1 == spec || (c2 && strchr(c2 + 1, ':')) ||
	    parse_port(c1 + 1, c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1), &t->port) < 0 ||
	    (c2 && parse_port(c2 + 1, strlen(c2 + 1), &t->local) < 0)) {
		snprintf(
		    err, errn,
		    "expected SERVICE:PORT[:LOCAL_PORT] or NAMESPACE/SERVICE:PORT[:LOCAL_PORT], "
		    "ports 1-65535");
		return -EINVAL;
	}
	/* name = [spec, c1): "NS/SVC" or "SVC". */
	size_t nl = (size_t)(c1 - spec);
	const char *slash = memchr(spec, '/', nl);
	size_t svc_off = slash ? (size_t)(slash - spec) + 1 : 0;
	if (slash) {
		size_t l = (size_t)(slash - spec);
		if (l >= sizeof t->namespace) {
			snprintf(err, errn, "the namespace is longer than 63 characters");
			return -EINVAL;
		}
		memcpy(t->namespace, spec, l);
		t->namespace[l] = '\0';
		if (!k8s_dns_label(t->namespace)) {
			snprintf(err, errn, "'%.63s' is not a valid namespace name", t->namespace);
			return -EINVAL;
		}
	}
	size_t sl = nl - svc_off;
	if (sl >= sizeof t->service) {
		snprintf(err, errn, "the service name is longer than 63 characters");
		return -EINVAL;
	}
	memcpy(t->service, spec + svc_off, sl);
	t->service[sl] = '\0';
	if (!k8s_dns_label(t->service)) {
		snprintf(err, errn,
			 "'%.63s' is not a valid service name (lowercase letters, digits, '-')",
			 t->service);
		return -EINVAL;
	}
	return 0;
}

enum k8s_svc_verdict k8s_service_check(const char *json, size_t len, int port, char *detail,
				       size_t n)
{
	json_error_t je;
	json_t *svc = json_loadb(json, len, 0, &je);
	json_t *spec = json_object_get(svc, "spec");
	json_t *ports = json_object_get(spec, "ports");
	enum k8s_svc_verdict v = K8S_SVC_OK;
	if (n)
		detail[0] = '\0';
	if (!json_is_object(spec) || (ports && !json_is_array(ports))) {
		snprintf(detail, n, "not a Service object");
		json_decref(svc);
		return K8S_SVC_BAD_JSON;
	}
	char have[256] = "";
	size_t off = 0, i;
	json_t *pt;
	const char *proto = NULL;
	json_array_foreach(ports, i, pt)
	{
		json_int_t num = json_integer_value(json_object_get(pt, "port"));
		int w = snprintf(have + off, sizeof have - off, "%s%lld", off ? ", " : "",
				 (long long)num);
		if (w > 0 && (size_t)w < sizeof have - off)
			off += (size_t)w;
		if (num == port && !proto) {
			/* Unset (or empty) is TCP, the API's default. */
			const char *pr = json_string_value(json_object_get(pt, "protocol"));
			proto = pr && *pr ? pr : "TCP";
		}
	}
	const char *type = json_string_value(json_object_get(spec, "type"));
	json_t *sel = json_object_get(spec, "selector");
	if (!proto) {
		snprintf(detail, n, "its ports: %s", *have ? have : "none");
		v = K8S_SVC_NO_PORT;
	} else if (strcmp(proto, "TCP") != 0) {
		snprintf(detail, n, "%.16s", proto);
		v = K8S_SVC_UDP;
	} else if (type && strcmp(type, "ExternalName") == 0) {
		snprintf(detail, n, "ExternalName");
		v = K8S_SVC_NO_SELECTOR;
	} else if (!json_is_object(sel) || json_object_size(sel) == 0) {
		snprintf(detail, n, "no selector");
		v = K8S_SVC_NO_SELECTOR;
	}
	json_decref(svc);
	return v;
}

int k8s_service_port_info(const char *json, size_t len, int port, char *name, size_t nn,
			  char *selector, size_t sn)
{
	json_error_t je;
	json_t *svc = json_loadb(json, len, 0, &je);
	json_t *spec = json_object_get(svc, "spec");
	json_t *pt, *found = NULL;
	size_t i;
	int r = -EINVAL;
	json_array_foreach(json_object_get(spec, "ports"), i, pt)
	{
		if (json_integer_value(json_object_get(pt, "port")) == port) {
			found = pt;
			break;
		}
	}
	if (found) {
		json_t *jn = json_object_get(found, "name");
		const char *pn = json_is_string(jn) ? json_string_value(jn) : "";
		size_t l = strlen(pn);
		bool ok = !jn || json_is_string(jn);
		for (size_t k = 0; ok && k < l; k++)
			ok = islower((unsigned char)pn[k]) || isdigit((unsigned char)pn[k]) ||
			     pn[k] == '-';
		if (ok && l < 64 && l < nn) {
			memcpy(name, pn, l + 1);
			r = 0;
		}
	}
	if (r == 0 && sn) {
		size_t off = 0;
		const char *k;
		json_t *v;
		selector[0] = '\0';
		json_object_foreach(json_object_get(spec, "selector"), k, v)
		{
			const char *vs = json_is_string(v) ? json_string_value(v) : "?";
			int w =
			    snprintf(selector + off, sn - off, "%s%s=%s", off ? "," : "", k, vs);
			if (w < 0 || (size_t)w >= sn - off) {
				off = sn - 1;
				break;
			}
			off += (size_t)w;
		}
		selector[off < sn ? off : sn - 1] = '\0';
		for (char *c = selector; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				*c = '?';
	}
	json_decref(svc);
	return r;
}
