/* fuzz_procnet.c - libFuzzer harness for the /proc/net/tcp{,6} parser.
 *
 * The text comes from the kernel, but the parser must still never read
 * past len, never report a port 0 or more rows than it was given room for,
 * and dedupe must leave strictly increasing ports.  The input is parsed as
 * both families, whole and split at a byte the input chooses (the reader
 * streams the file in chunks). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "container/scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct scan_listener *v, size_t n, size_t max, int family)
{
	if (n > max)
		abort();
	for (size_t i = 0; i < n; i++)
		if (v[i].port == 0 || v[i].family != family || v[i].loopback > 1)
			abort();
}

static void check_deduped(struct scan_listener *v, size_t n)
{
	size_t before = n;
	scan_dedupe(v, &n);
	if (n > before)
		abort();
	for (size_t i = 1; i < n; i++)
		if (v[i - 1].port >= v[i].port)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct scan_listener v[SCAN_MAX_LISTENERS], small[3];
	static const int families[] = {AF_INET, AF_INET6};
	const char *text = (const char *)data;

	for (size_t k = 0; k < 2; k++) {
		int fam = families[k];
		size_t n = 0, n2 = 0;
		int skipped = scan_parse_proc_net(text, size, fam, v, SCAN_MAX_LISTENERS, &n);
		if (skipped < 0)
			abort();
		check(v, n, SCAN_MAX_LISTENERS, fam);

		/* a small array fills up and stays full; same first rows */
		if (scan_parse_proc_net(text, size, fam, small, 3, &n2) != skipped)
			abort();
		check(small, n2, 3, fam);
		if (n2 != (n < 3 ? n : 3) || memcmp(small, v, n2 * sizeof *v) != 0)
			abort();

		/* split at a line boundary chosen by the first byte: the same
		 * rows in the same order */
		if (size > 1) {
			size_t cut = data[0] % size;
			const char *nl = memchr(text + cut, '\n', size - cut);
			if (nl) {
				static struct scan_listener w[SCAN_MAX_LISTENERS];
				size_t nw = 0, a = (size_t)(nl - text) + 1;
				int s1 =
				    scan_parse_proc_net(text, a, fam, w, SCAN_MAX_LISTENERS, &nw);
				int s2 = scan_parse_proc_net(text + a, size - a, fam, w,
							     SCAN_MAX_LISTENERS, &nw);
				if (s1 < 0 || s2 < 0 || s1 + s2 != skipped || nw != n ||
				    memcmp(w, v, n * sizeof *v) != 0)
					abort();
			}
		}
		check_deduped(v, n);
	}
	return 0;
}
