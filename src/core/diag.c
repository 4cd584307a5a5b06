/* diag.c - see diag.h. */
#include "core/diag.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cfg_diag_addv(struct cfg_diags *d, struct cfg_mark m, const char *fmt, va_list ap)
{
	const char *file = m.file ? m.file : "?";
	char *msg;

	if (!d)
		return 0;
	if (d->n >= CFG_MAX_DIAGS) {
		d->dropped++;
		return 0;
	}
	if (!d->file || (d->n == 0 && strcmp(d->file, file) != 0)) {
		char *f = strdup(file);
		if (!f)
			return -ENOMEM;
		free(d->file);
		d->file = f;
	}
	char *own = strcmp(d->file, file) != 0 ? strdup(file) : NULL;
	if (strcmp(d->file, file) != 0 && !own)
		return -ENOMEM;
	if (vasprintf(&msg, fmt, ap) < 0) {
		free(own);
		return -ENOMEM;
	}
	d->items[d->n++] = (struct cfg_diag){
	    .mark = {own ? own : d->file, m.line, m.col}, .msg = msg, .file = own};
	return 0;
}

int cfg_diag_add(struct cfg_diags *d, struct cfg_mark m, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = cfg_diag_addv(d, m, fmt, ap);
	va_end(ap);
	return r;
}

void cfg_diags_clear(struct cfg_diags *diags)
{
	if (!diags)
		return;
	for (size_t i = 0; i < diags->n; i++) {
		free(diags->items[i].msg);
		free(diags->items[i].file);
	}
	free(diags->file);
	memset(diags, 0, sizeof *diags);
}

const char *cfg_diag_format(char *buf, size_t n, struct cfg_mark m, const char *fmt, ...)
{
	int at;
	va_list ap;

	if (m.line > 0)
		at = snprintf(buf, n, "%s:%d:%d: ", m.file, m.line, m.col);
	else
		at = snprintf(buf, n, "%s: ", m.file);
	if (at >= 0 && (size_t)at < n) {
		va_start(ap, fmt);
		vsnprintf(buf + at, n - (size_t)at, fmt, ap);
		va_end(ap);
	}
	return buf;
}

json_t *cfg_diags_json(const struct cfg_diags *d)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < d->n; i++) {
		const struct cfg_diag *g = &d->items[i];
		if (json_array_append_new(a, json_pack("{s:s, s:i, s:i, s:s}", "file", g->mark.file,
						       "line", g->mark.line, "column", g->mark.col,
						       "message", g->msg)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}
