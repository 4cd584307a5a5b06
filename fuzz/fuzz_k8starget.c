/* Fuzz what connect parses about its targets: the -t syntax (typed by a
 * user or a script) and `kubectl get service -o json` (what a cluster
 * says).  The first byte picks the parser; both must hold their
 * invariants on any input. */
#include "k8s/target.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	char err[200], detail[300];
	if (data[0] & 1) {
		struct k8s_target t;
		if (k8s_target_parse(s, &t, err, sizeof err) == 0) {
			if (!k8s_dns_label(t.service) ||
			    (t.namespace[0] && !k8s_dns_label(t.namespace)) || t.port < 1 ||
			    t.port > 65535 || t.local < 0 || t.local > 65535)
				abort();
		} else if (!err[0]) {
			abort(); /* a refusal always says why */
		}
	} else {
		int port = 1 + (data[0] >> 1);
		enum k8s_svc_verdict v =
		    k8s_service_check(s, size - 1, port, detail, sizeof detail);
		if (v > K8S_SVC_NO_SELECTOR || (v != K8S_SVC_OK && !detail[0]))
			abort();
		/* The port's name and the selector, into exact-size buffers. */
		size_t nn = 1 + (data[0] & 31), sn = 1 + (data[0] >> 3);
		char *name = malloc(nn), *sel = malloc(sn);
		if (name && sel &&
		    k8s_service_port_info(s, size - 1, port, name, nn, sel, sn) == 0) {
			if (strlen(name) >= nn || strlen(sel) >= sn)
				abort();
			for (const char *c = sel; *c; c++)
				if ((unsigned char)*c < 0x20)
					abort();
			/* A port that passed the check has a name we can use. */
			for (const char *c = name; *c; c++)
				if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
				      *c == '-'))
					abort();
		}
		free(name);
		free(sel);
	}
	free(s);
	return 0;
}
