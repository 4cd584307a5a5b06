/* fuzz_num.c - libFuzzer harness for parse_uint_range (core/num.h).
 *
 * The first byte picks the range and the flags; the rest is the text.  An
 * accepted number must be within the range and print back as the digits it
 * came from (less leading zeros); a refusal must leave the result alone. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/num.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t his[] = {1, 255, 65535, 86400, UINT32_MAX, UINT64_MAX};
	if (size == 0)
		return 0;
	unsigned sel = data[0];
	uint64_t hi = his[sel % 6], lo = (sel & 0x40) ? 1 : 0;
	unsigned flags = (sel & 0x80) ? NUM_LEADING_ZEROS : 0;
	const char *s = (const char *)data + 1;
	size_t len = size - 1;
	uint64_t v = 0x5a5a5a5a5a5a5a5aull;
	int r = parse_uint_range(s, len, lo, hi, flags, &v);
	if (r != 0) {
		if ((r != -EINVAL && r != -ERANGE) || v != 0x5a5a5a5a5a5a5a5aull)
			abort();
		return 0;
	}
	if (v < lo || v > hi || len == 0)
		abort();
	size_t z = 0;
	while (z + 1 < len && s[z] == '0')
		z++;
	if (z && !(flags & NUM_LEADING_ZEROS))
		abort();
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%" PRIu64, v);
	if (n < 0 || (size_t)n != len - z || memcmp(buf, s + z, len - z) != 0)
		abort();
	return 0;
}
