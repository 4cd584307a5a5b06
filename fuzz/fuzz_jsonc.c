/* fuzz_jsonc.c - libFuzzer harness for the devcontainer.json reader: the
 * JSONC stripper and forwardPorts extraction.  The file is written by the
 * user (or a repository they cloned), so any bytes must give a filter or a
 * message, never a crash, leak or overread.  jsonc_strip must keep the
 * length (positions in errors), every newline, and be idempotent. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "container/filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *a = malloc(size ? size : 1), *b = malloc(size ? size : 1);
	if (!a || !b)
		abort();
	if (size)
		memcpy(a, data, size);
	size_t n = jsonc_strip(a, size);
	if (n != size)
		abort();
	for (size_t i = 0; i < size; i++)
		if ((data[i] == '\n') != (a[i] == '\n') || (a[i] != (char)data[i] && a[i] != ' '))
			abort();
	memcpy(b, a, n);
	if (jsonc_strip(b, n) != n || memcmp(a, b, n) != 0)
		abort();
	free(a);
	free(b);

	struct port_filter *f = NULL;
	if (port_filter_new(&f) < 0)
		abort();
	char err[256];
	err[0] = '\0';
	int r = port_filter_devcontainer(f, (const char *)data, size, err, sizeof err);
	if (r < 0 && ((r != -EINVAL && r != -EFBIG) || !err[0] || !memchr(err, '\0', sizeof err)))
		abort();
	if (r == 0 && port_filter_allows(f, 0, ""))
		abort();
	/* one more source for the same filter: the spec parser on the input
	 * as text (bounded, NUL-terminated) */
	char spec[128];
	size_t sl = size < sizeof spec - 1 ? size : sizeof spec - 1;
	memcpy(spec, data, sl);
	spec[sl] = '\0';
	err[0] = '\0';
	r = port_filter_exclude(f, spec, err, sizeof err);
	if (r < 0 && (r != -EINVAL || !strstr(err, "invalid port spec")))
		abort();
	port_filter_free(f);
	return 0;
}
