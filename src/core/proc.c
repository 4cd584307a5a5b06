/* proc.c - the pure parsers of proc.h. */
#include "core/proc.h"
#include "core/num.h"

#include <errno.h>
#include <string.h>

bool proc_state_stopped(char state)
{
	return state == 'T' || state == 't';
}

int proc_parse_stat_state(const char *buf, size_t len, char *ret)
{
	size_t close = len;

	for (size_t i = len; i > 0; i--)
		if (buf[i - 1] == ')') {
			close = i - 1;
			break;
		}
	/* "PID (COMM) S ..." */
	if (close == len || close + 2 >= len || buf[close + 1] != ' ')
		return -EINVAL;
	char c = buf[close + 2];
	if (c < 'A' || c > 'z' ||
	    (close + 3 < len && buf[close + 3] != ' ' && buf[close + 3] != '\n'))
		return -EINVAL;
	*ret = c;
	return 0;
}

int proc_parse_schedstat_runs(const char *buf, size_t len, uint64_t *ret)
{
	size_t i = 0;

	for (int field = 0; field < 3; field++) {
		while (i < len && buf[i] == ' ')
			i++;
		size_t start = i;
		while (i < len && buf[i] >= '0' && buf[i] <= '9')
			i++;
		if (i == start || (i < len && buf[i] != ' ' && buf[i] != '\n'))
			return -EINVAL;
		if (field == 2)
			return parse_uint_range(buf + start, i - start, 0, UINT64_MAX,
						NUM_LEADING_ZEROS, ret) < 0
				   ? -EINVAL
				   : 0;
	}
	return -EINVAL;
}
