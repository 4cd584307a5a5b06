/* num.c - see num.h. */
#include "core/num.h"

#include <errno.h>
#include <stdbool.h>

int parse_uint_range(const char *s, size_t len, uint64_t lo, uint64_t hi, unsigned flags,
		     uint64_t *ret)
{
	uint64_t v = 0;
	bool over = false;

	if (!s || len == 0)
		return -EINVAL;
	if (s[0] == '0' && len > 1 && !(flags & NUM_LEADING_ZEROS))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9)
			return -EINVAL;
		/* Keep reading after an overflow: "99999999999999999999x" is
		 * not a number at all, which says more than "too big". */
		if (v > (UINT64_MAX - d) / 10)
			over = true;
		else
			v = v * 10 + d;
	}
	if (over || v < lo || v > hi)
		return -ERANGE;
	*ret = v;
	return 0;
}
