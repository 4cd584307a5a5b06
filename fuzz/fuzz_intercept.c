/* Fuzz what intercept reads from a cluster: `kubectl get service -o json`
 * and `kubectl get pods -o json`, and everything it then builds from them
 * (the verdict, named targetPorts, the objects, the swap and its
 * restore).  Input: one option byte, the Service's JSON, and optionally a
 * NUL and the pod list's JSON.  The option byte picks the -p values and
 * --local-port (bit 0: "-p 80"; bit 1: "-p http:8081"; bit 2:
 * --local-port 9999; bit 3: mirror). */
#include "core/util.h"
#include "k8s/intercept.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void clean_text(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			abort();
}

/* The Service comes back exactly when nothing of ours was there. */
static bool restorable_exactly(const json_t *svc)
{
	const json_t *md = json_object_get(svc, "metadata");
	const json_t *ann = json_object_get(md, "annotations");
	if (!json_is_object(md))
		return false;
	if (!ann)
		return true;
	return json_is_object(ann) && json_object_size(ann) > 0 &&
	       !json_object_get(ann, ICPT_ANN_ORIGINAL) && !json_object_get(ann, ICPT_ANN_MODE);
}

static void built(const json_t *svc, struct icpt_found *f, enum intercept_mode mode)
{
	static const char sid[] = "0123456789";
	static const char token[] =
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	struct icpt_params p = {.namespace = "ns",
				.service = "svc",
				.sid = sid,
				.token = token,
				.image = "img",
				.mode = mode,
				.ports = f->ports,
				.n_ports = f->n_ports};
	json_t *objs = icpt_objects(&p);
	if (!objs || json_array_size(objs) != 5)
		abort();
	json_decref(objs);
	json_t *w = json_array();
	icpt_port_warnings(svc, f, w);
	json_decref(w);
	json_t *s = icpt_swapped_service(svc, sid, mode), *back = NULL;
	if (!s)
		abort(); /* it passed the check: it has a selector */
	const json_t *sel = json_object_get(json_object_get(s, "spec"), "selector");
	if (json_object_size(sel) != 1)
		abort();
	if (icpt_restored_service(s, sid, &back) != 0)
		abort();
	json_t *orig = json_deep_copy(svc);
	json_object_del(orig, "status");
	if (restorable_exactly(svc) && !json_equal(orig, back))
		abort();
	json_decref(orig);
	json_decref(back);
	json_decref(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t opt = data[0];
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	const char *nul = memchr(body, '\0', len);
	size_t slen = nul ? (size_t)(nul - body) : len;
	json_t *svc = json_loadb(body, slen, JSON_REJECT_DUPLICATES, NULL);
	json_t *pods = nul ? json_loadb(nul + 1, len - slen - 1, 0, NULL) : NULL;
	/* the pods part read as kubectl's answer to the rights List too */
	if (nul) {
		char *ans = strndup(nul + 1, len - slen - 1);
		int answers[64];
		size_t nr;
		(void)icpt_rights(&nr);
		if (ans && nr <= 64 && icpt_ssar_answers(ans, answers, nr) == 0)
			for (size_t i = 0; i < nr; i++)
				if (answers[i] != 0 && answers[i] != 1)
					abort();
		free(ans);
	}

	struct icpt_spec specs[2];
	size_t n = 0;
	char err[200], detail[800], sel[512];
	if ((opt & 1) && icpt_spec_parse("80", &specs[n], err, sizeof err) == 0)
		n++;
	if ((opt & 2) && icpt_spec_parse("http:8081", &specs[n], err, sizeof err) == 0)
		n++;
	struct icpt_found f;
	enum icpt_verdict v =
	    icpt_check_service(svc, specs, n, opt & 4 ? 9999 : 0, &f, detail, sizeof detail);
	if (v > ICPT_ACTIVE || (v != ICPT_OK && !detail[0]))
		abort();
	clean_text(detail);
	clean_text(f.session);
	if (icpt_selector_string(svc, sel, sizeof sel) == 0)
		for (const char *c = sel; *c; c++)
			if (*c == ' ' || *c == '(' || *c == '!' || (unsigned char)*c < 0x20)
				abort();
	const json_t *pod = icpt_ready_pod(pods);
	if (v == ICPT_OK) {
		if (f.n_ports == 0 || f.n_ports > ICPT_MAX_PORTS)
			abort();
		for (size_t i = 0; i < f.n_ports; i++)
			if (f.ports[i].port < 1 || f.ports[i].port > 65535 ||
			    f.ports[i].local < 1 || f.ports[i].local > 65535 ||
			    (!f.ports[i].target_name[0] && f.ports[i].target < 1))
				abort();
		int r = 0;
		if (f.named_targets)
			r = pod ? icpt_resolve_targets(&f, pod, detail, sizeof detail) : -1;
		if (r == 0 && icpt_check_targets(&f, detail, sizeof detail) == 0)
			built(svc, &f, opt & 8 ? INTERCEPT_MIRROR : INTERCEPT_STEAL);
	}
	json_decref(svc);
	json_decref(pods);
	return 0;
}
