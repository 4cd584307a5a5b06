/* Fuzz what the k8s driver reads from `kubectl get endpoints --watch`
 * (bytes a cluster controls): k8s_json_next splitting the stream into
 * objects, and k8s_endpoints_view judging each, with their contracts. */
#include "k8s/endpoints.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(e)                                                                                   \
	do {                                                                                       \
		if (!(e)) {                                                                        \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #e);  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void view(const char *obj, size_t len, const char *port_name, const char *current)
{
	struct k8s_ep_view v;
	int r = k8s_endpoints_view(obj, len, port_name, current, &v);
	CHECK(r == 0 || r == -22);
	if (r < 0)
		return;
	CHECK(memchr(v.pod, '\0', sizeof v.pod) != NULL);
	/* A pod is chosen iff one is Ready with the port; it is a valid name. */
	CHECK((v.pod[0] != '\0') == (v.ready > 0));
	if (v.pod[0]) {
		CHECK(k8s_object_name(v.pod));
		CHECK(v.port >= 1 && v.port <= 65535);
		CHECK(!v.no_port && !v.deleted);
	}
	if (v.deleted)
		CHECK(v.ready == 0 && v.not_ready == 0);
	/* Sticky: asking again with the chosen pod as current keeps it. */
	if (v.pod[0]) {
		char again[sizeof v.pod];
		memcpy(again, v.pod, sizeof again);
		struct k8s_ep_view w;
		CHECK(k8s_endpoints_view(obj, len, port_name, again, &w) == 0);
		CHECK(strcmp(w.pod, again) == 0 && w.ready == v.ready);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exact-size copy: ASan sees any read past the end. */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	size_t off = 0;
	while (off < size) {
		size_t start = 0;
		ssize_t n = k8s_json_next(buf + off, size - off, &start);
		CHECK(n == -1 || n == -2 || (n > 0 && (size_t)n <= size - off));
		if (n < 0)
			break;
		CHECK(start < (size_t)n && buf[off + start] == '{' &&
		      buf[off + (size_t)n - 1] == '}');
		const char *obj = buf + off + start;
		size_t len = (size_t)n - start;
		view(obj, len, "", NULL);
		view(obj, len, "http", NULL);
		view(obj, len, "http", "web-1");
		off += (size_t)n;
	}
	free(buf);
	return 0;
}
