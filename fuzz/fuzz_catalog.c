/* fuzz_catalog.c - libFuzzer harness for one OpsCatalog file's parse
 * (app/catalog.h: a domain.yaml, a target's or a bridge's file).
 *
 * The first byte picks the kind, the rest is the file.  Any bytes must load
 * or give diagnostics (never none on failure), never crash, leak or take
 * unbounded time; the checks abort so that a broken invariant counts. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "app/catalog.h"
#include "core/diag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"domain.yaml", "targets/t.yaml", "bridges/b.yaml"};
	struct cfg_diags d = {0};
	enum catalog_kind kind;
	int r;

	if (size < 1)
		return 0;
	kind = (enum catalog_kind)(data[0] % 3);
	r = catalog_parse_file(kind, names[kind], (const char *)data + 1, size - 1, &d);
	if (d.n > CFG_MAX_DIAGS || (r == 0 && d.n) || (r == -EINVAL && !d.n))
		abort();
	for (size_t i = 0; i < d.n; i++)
		if (!d.items[i].msg || d.items[i].mark.file != d.file || d.items[i].mark.line < 0 ||
		    d.items[i].mark.col < 0)
			abort();
	cfg_diags_clear(&d);
	return 0;
}
