/* Fuzz the readers of files in the state directory: NAME.state documents
 * and NAME.log audit lines (a file another local process could corrupt). */
#include "core/audit.h"
#include "core/state.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = NULL;
	if (state_parse((const char *)data, size, &j) == 0)
		json_decref(j);
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		json_t *ev = NULL;
		if (audit_parse_line(p, len, &ev) == 0)
			json_decref(ev);
		p += len + 1;
	}
	return 0;
}
