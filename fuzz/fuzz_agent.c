/* Fuzz what the intercept agent parses from the network and the API: the
 * control port's hello, the health port's request head (both from anyone
 * who can reach the pod), the Service JSON it restores from, and with
 * --mode mirror the selector query and the pod list.  The first byte picks
 * the parser. */
#include "k8s/agent.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	switch (data[0] % 5) {
	case 0: {
		const char *tok;
		size_t tl;
		int r = agent_parse_hello(s, n, &tok, &tl);
		if (r > 0 && ((size_t)r > n || tl == 0 || tl > AGENT_TOKEN_MAX || tok < s ||
			      tok + tl > s + r || s[r - 1] != '\n'))
			abort();
		if (r == 0 && n >= AGENT_HELLO_MAX)
			abort();
		break;
	}
	case 1: {
		const char *m, *p;
		size_t ml, pl;
		int r = agent_parse_http_head(s, n, &m, &ml, &p, &pl);
		if (r > 0 && ((size_t)r > n || (size_t)r > AGENT_HTTP_HEAD_MAX || ml == 0 ||
			      pl == 0 || p[0] != '/' || p + pl > s + r))
			abort();
		break;
	}
	case 3:
	case 4: {
		char *j = malloc(n + 1);
		if (!j)
			return 0;
		memcpy(j, s, n);
		j[n] = 0;
		if (data[0] % 5 == 3) {
			char q[64];
			int r = agent_selector_query(j, q, sizeof q);
			if (r == 0 &&
			    (strncmp(q, "labelSelector=", 14) != 0 || strlen(q) >= sizeof q))
				abort();
		} else {
			char ips[4][AGENT_IP_MAX];
			size_t k = 99;
			int r = agent_ready_pods(j, ips, 4, &k);
			if ((r == 0 && k > 4) || (r < 0 && k != 0))
				abort();
			for (size_t i = 0; r == 0 && i < k; i++)
				if (!memchr(ips[i], 0, AGENT_IP_MAX))
					abort();
		}
		free(j);
		break;
	}
	default: {
		char *j = malloc(n + 1), *out = NULL, why[200] = "";
		if (!j)
			return 0;
		memcpy(j, s, n);
		j[n] = 0;
		int r = agent_restore_body(j, "0123456789", &out, why, sizeof why);
		if ((r == 0) != (out != NULL) || (r != 0 && !why[0]))
			abort();
		free(out);
		free(j);
	}
	}
	return 0;
}
