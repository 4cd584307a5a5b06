/* fuzz_procpid.c - libFuzzer harness for the /proc/PID/stat and
 * /proc/PID/schedstat parsers (core/proc.h) that the supervisor's stall
 * watch reads.  The text comes from the kernel, but a command name in
 * /proc/PID/stat is chosen by whoever ran the program: the parsers must
 * never read past len and only ever report a letter. */
#include <stdint.h>
#include <stdlib.h>

#include "core/proc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char c = 0;
	uint64_t runs;
	if (proc_parse_stat_state((const char *)data, size, &c) == 0 && (c < 'A' || c > 'z'))
		abort();
	(void)proc_parse_schedstat_runs((const char *)data, size, &runs);
	return 0;
}
