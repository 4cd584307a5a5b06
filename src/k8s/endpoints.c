/* endpoints.c - see endpoints.h. */
#include "k8s/endpoints.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

ssize_t k8s_json_next(const char *buf, size_t len, size_t *ret_start)
{
	size_t i = 0;
	while (i < len && is_space(buf[i]))
		i++;
	if (i == len)
		return -2;
	if (buf[i] != '{')
		return -1;
	size_t start = i;
	unsigned depth = 0;
	bool in_str = false, esc = false;
	for (; i < len; i++) {
		char c = buf[i];
		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (++depth > K8S_JSON_MAX_DEPTH)
				return -1;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return -1;
			if (--depth == 0) {
				if (c != '}')
					return -1;
				*ret_start = start;
				return (ssize_t)(i + 1);
			}
		}
	}
	return -2;
}

bool k8s_object_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && !((c == '-' || c == '.') && i > 0 && i < n - 1))
			return false;
	}
	return true;
}

/* The port named `name` of one subset ("" matches a port without a name),
 * or 0. */
static int subset_port(json_t *ports, const char *name)
{
	size_t i;
	json_t *p;
	json_array_foreach(ports, i, p)
	{
		const char *pn = json_string_value(json_object_get(p, "name"));
		const char *proto = json_string_value(json_object_get(p, "protocol"));
		json_int_t num = json_integer_value(json_object_get(p, "port"));
		if (strcmp(pn ? pn : "", name) != 0 || (proto && strcmp(proto, "TCP") != 0))
			continue;
		return num >= 1 && num <= 65535 ? (int)num : 0;
	}
	return 0;
}

static const char *address_pod(json_t *addr)
{
	json_t *ref = json_object_get(addr, "targetRef");
	const char *kind = json_string_value(json_object_get(ref, "kind"));
	const char *name = json_string_value(json_object_get(ref, "name"));
	if (!kind || strcmp(kind, "Pod") != 0 || !name || !k8s_object_name(name))
		return NULL;
	return name;
}

int k8s_endpoints_view(const char *json, size_t len, const char *port_name, const char *current,
		       struct k8s_ep_view *ret)
{
	memset(ret, 0, sizeof *ret);
	json_error_t je;
	json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return -EINVAL;
	}
	json_t *obj = doc;
	json_t *type = json_object_get(doc, "type");
	if (json_is_string(type) && json_is_object(json_object_get(doc, "object"))) {
		const char *t = json_string_value(type);
		if (strcmp(t, "DELETED") == 0) {
			ret->deleted = true;
			json_decref(doc);
			return 0;
		}
		if (strcmp(t, "ADDED") != 0 && strcmp(t, "MODIFIED") != 0) {
			json_decref(doc);
			return -EINVAL;
		}
		obj = json_object_get(doc, "object");
	}
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	json_t *subsets = json_object_get(obj, "subsets");
	if ((kind && strcmp(kind, "Endpoints") != 0) || (subsets && !json_is_array(subsets))) {
		json_decref(doc);
		return -EINVAL;
	}
	const char *pname = port_name ? port_name : "";
	const char *best = NULL;
	int best_port = 0;
	bool keep = false;
	size_t i, k;
	json_t *ss, *a;
	json_array_foreach(subsets, i, ss)
	{
		int port = subset_port(json_object_get(ss, "ports"), pname);
		json_array_foreach(json_object_get(ss, "notReadyAddresses"), k, a)
		{
			if (address_pod(a))
				ret->not_ready++;
		}
		json_array_foreach(json_object_get(ss, "addresses"), k, a)
		{
			const char *pod = address_pod(a);
			if (!pod)
				continue;
			if (!port) {
				ret->no_port = true;
				continue;
			}
			ret->ready++;
			if (keep)
				continue;
			if (current && strcmp(pod, current) == 0) {
				best = pod;
				best_port = port;
				keep = true;
			} else if (!best || strcmp(pod, best) < 0) {
				best = pod;
				best_port = port;
			}
		}
	}
	if (best) {
		snprintf(ret->pod, sizeof ret->pod, "%s", best);
		ret->port = best_port;
		ret->no_port = false;
	}
	json_decref(doc);
	return 0;
}
