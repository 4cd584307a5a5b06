/* Fuzz the classifier of ssh's stderr lines (a parser of text an ssh
 * process, and through it a remote server, controls). */
#include "ssh/ssh_argv.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Split into lines the way the supervisor does. */
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		enum ssh_reason r = SSH_R_NONE;
		ssh_classify_line(p, len, 0, 18000, &r);
		ssh_classify_line(p, len, 0, 0, &r);
		ssh_classify_line(p, len, 1, 18000, &r);
		(void)ssh_reason_name(r);
		p += len + 1;
	}
	return 0;
}
