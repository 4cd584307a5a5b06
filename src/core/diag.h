/* diag.h - diagnostics that name a place in a file, "FILE:LINE:COL: MSG":
 * what the config loader (core/schema.h) and the checks after it report,
 * and what the command layer prints or puts in the --json envelope. */
#ifndef DEVBRIDGE_CORE_DIAG_H
#define DEVBRIDGE_CORE_DIAG_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>

/* Where a value came from.  `file` points into the owner of the loaded
 * struct (e.g. struct cfg's path). */
struct cfg_mark {
	const char *file;
	int line; /* 1-based; 0 = unknown */
	int col;  /* 1-based */
};

/* One diagnostic: "FILE:LINE:COL: MSG". */
struct cfg_diag {
	struct cfg_mark mark;
	char *msg;
	char *file; /* owned: the mark's file when it is not diags->file */
};

/* Diagnostics collected by one load.  At most CFG_MAX_DIAGS are kept.
 * Marks point to `file`, the first file named, or to the diagnostic's own
 * copy of another file's name (an OpsCatalog is many files): marks stay
 * valid as long as the cfg_diags does.  Zero-initialise before first use. */
#define CFG_MAX_DIAGS 32
struct cfg_diags {
	char *file; /* owned copy of the file name the marks point to */
	struct cfg_diag items[CFG_MAX_DIAGS];
	size_t n;
	size_t dropped; /* diagnostics past CFG_MAX_DIAGS */
};

/* Append a diagnostic at `m` to `d` (NULL: counted nowhere, 0); past
 * CFG_MAX_DIAGS it is counted in d->dropped.  A NULL file is "?".  0 or
 * -ENOMEM. */
int cfg_diag_add(struct cfg_diags *d, struct cfg_mark m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cfg_diag_addv(struct cfg_diags *d, struct cfg_mark m, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Release the messages held by diags and reset it to empty; NULL is a
 * no-op. */
void cfg_diags_clear(struct cfg_diags *diags);

/* Room for one diagnostic's line as printed; a longer one is cut. */
#define CFG_DIAG_LINE_MAX 1200

/* "FILE:LINE:COL: " and the message fmt makes, or "FILE: " and it for a
 * mark with no line (a file as a whole), into buf (n bytes, cut to fit):
 * how every diagnostic is printed and quoted.  Returns buf. */
const char *cfg_diag_format(char *buf, size_t n, struct cfg_mark m, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The diagnostics kept, as the --json documents carry them:
 * [{file, line, column, message}] (line and column 0: the file as a
 * whole).  NULL when out of memory. */
json_t *cfg_diags_json(const struct cfg_diags *d);

#endif
