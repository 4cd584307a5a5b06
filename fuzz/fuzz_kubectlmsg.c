/* Fuzz the readers of what kubectl prints (text a cluster and its API
 * server control): k8s_pf_classify on each line, as stdout and as stderr,
 * and kctl_message on the whole input, checking their contracts. */
#include "k8s/kubectl.h"
#include "k8s/portforward.h"

#include <stdbool.h>
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

static void classify_line(const char *line, size_t len, bool is_stdout)
{
	int reason = -1, port = -1;
	enum sup_line k = k8s_pf_classify(line, len, is_stdout, &reason, &port);
	CHECK(k == SUP_LINE_NOISE || k == SUP_LINE_READY || k == SUP_LINE_REASON ||
	      k == SUP_LINE_MESSAGE);
	/* A reason is set iff the line is one, and is one a line can give. */
	CHECK((k == SUP_LINE_REASON) == (reason != K8S_R_NONE));
	if (k == SUP_LINE_REASON) {
		CHECK(reason >= K8S_R_PORT_TAKEN && reason <= K8S_R_OTHER);
		CHECK(reason != K8S_R_NOT_FOUND_PROG && reason != K8S_R_OTHER);
		CHECK(k8s_reason_name(reason)[0] != '\0');
		CHECK(k8s_reason_text(reason)[0] != '\0');
	}
	/* READY only from stdout, with a port that can be bound; the port
	 * is written for READY only. */
	if (k == SUP_LINE_READY) {
		CHECK(is_stdout);
		CHECK(port >= 1 && port <= 65535);
		CHECK(len > 16 && memcmp(line, "Forwarding from ", 16) == 0);
	} else {
		CHECK(port == -1);
	}
	/* Pure: the same answer again, and without ret_port. */
	int reason2 = -1;
	CHECK(k8s_pf_classify(line, len, is_stdout, &reason2, NULL) == k);
	CHECK(reason2 == reason);
}

static void message(const char *text, const char *clean, size_t n)
{
	char *buf = malloc(n); /* exact size: ASan sees any overrun */
	if (!buf)
		return;
	kctl_message(text, buf, n);
	size_t len = strlen(buf);
	CHECK(len < n);
	for (size_t i = 0; i < len; i++)
		CHECK((unsigned char)buf[i] >= 0x20 && buf[i] != 0x7f);
	/* A (cleaned) piece of what kubectl said, never invented. */
	CHECK(strstr(clean, buf) != NULL);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Split into lines the way the supervisor does; each line in its own
	 * allocation so a read past `len` is caught. */
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *line = malloc(len ? len : 1);
		if (!line)
			return 0;
		memcpy(line, p, len);
		classify_line(line, len, true);
		classify_line(line, len, false);
		free(line);
		p += len + 1;
	}

	/* kctl_message takes a string: the input up to its first NUL. */
	char *text = malloc(size + 1), *clean = malloc(size + 1);
	if (!text || !clean) {
		free(text);
		free(clean);
		return 0;
	}
	memcpy(text, data, size);
	text[size] = '\0';
	for (size_t i = 0; i <= size; i++)
		clean[i] =
		    text[i] && ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) ? '?' : text[i];
	message(text, clean, 1);
	message(text, clean, 2);
	message(text, clean, 17);
	message(text, clean, 512);
	message(text, clean, size + 2);
	free(text);
	free(clean);
	return 0;
}
