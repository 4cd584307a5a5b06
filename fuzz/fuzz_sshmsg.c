/* Fuzz the readers of what ssh prints: the classifier of its stderr lines
 * (text an ssh process, and through it a remote server, controls) and the
 * reader of `ssh -G` output (what ssh_config files say) that config check
 * uses to find forwards the tunnel does not own. */
#include "ssh/ssh_config.h"
#include "ssh/ssh_argv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void count(const char *line, size_t n, void *data)
{
	if (n == 0 || line[n - 1] == '\n')
		abort();
	++*(size_t *)data;
}

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
	struct cfg_tunnel t = {
	    .remote_host = "127.0.0.1", .remote_port = 18000, .local_port = 8000};
	for (int dir = 0; dir < 2; dir++) {
		size_t seen = 0;
		t.direction = dir ? TUNNEL_LOCAL : TUNNEL_REVERSE;
		if (ssh_dump_extra_forwards((const char *)data, size, &t, count, &seen) != seen)
			abort();
	}
	return 0;
}
