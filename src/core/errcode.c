/* errcode.c - see errcode.h. */
#include "core/errcode.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct row {
	int code;
	const char *name, *help;
	unsigned flags;
} rows[] = {
#define ERRCODE_ROW(e, num, name, help, flags) {num, name, help, flags},
    ERRCODE_TABLE(ERRCODE_ROW)
#undef ERRCODE_ROW
};

#define N_ROWS (sizeof rows / sizeof rows[0])

static const struct row *find(int code)
{
	for (size_t i = 0; i < N_ROWS; i++)
		if (rows[i].code == code)
			return &rows[i];
	return NULL;
}

const char *errcode_name(int code)
{
	const struct row *r = find(code);

	return r ? r->name : "error";
}

const char *errcode_help(int code)
{
	const struct row *r = find(code);

	return r ? r->help : NULL;
}

bool errcode_reserved(int code)
{
	const struct row *r = find(code);

	return r && (r->flags & ERRCODE_RESERVED);
}

/* Text filled word by word, wrapped at `width`; len counts what did not
 * fit too. */
struct out {
	char *buf;
	size_t size, len, col, width;
};

static void put(struct out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++, o->len++)
		if (o->len + 1 < o->size)
			o->buf[o->len] = s[i];
	if (o->size)
		o->buf[o->len < o->size ? o->len : o->size - 1] = '\0';
}

/* The words of `s` (split at spaces), then `end` glued to the last.  A
 * number stays on the line of the word after it ("41 tunnel"). */
static void words(struct out *o, const char *s, const char *end)
{
	while (*s) {
		size_t n = strcspn(s, " ");
		if (n && strspn(s, "0123456789") == n && s[n] == ' ' && s[n + 1])
			n += 1 + strcspn(s + n + 1, " ");
		size_t w = n + (s[n] ? 0 : strlen(end));

		if (o->col && o->col + 1 + w > o->width) {
			put(o, "\n", 1);
			o->col = 0;
		} else if (o->col) {
			put(o, " ", 1);
			o->col++;
		}
		put(o, s, n);
		o->col += n;
		s += n;
		while (*s == ' ')
			s++;
	}
	put(o, end, strlen(end));
	o->col += strlen(end);
}

size_t errcode_usage(char *buf, size_t size, size_t width)
{
	struct out o = {buf, size, 0, 0, width ? width : 79};
	char item[128], reserved[128] = "";
	size_t last = 0, rl = 0;

	if (size)
		buf[0] = '\0';
	/* The reserved codes as runs: "65-67, 69, 71, 72". */
	for (size_t i = 0; i < N_ROWS; i++) {
		size_t j = i;
		int r;

		if (!(rows[i].flags & ERRCODE_RESERVED)) {
			last = i;
			continue;
		}
		while (j + 1 < N_ROWS && (rows[j + 1].flags & ERRCODE_RESERVED) &&
		       rows[j + 1].code == rows[j].code + 1)
			j++;
		if (j >= i + 2) {
			r = snprintf(reserved + rl, sizeof reserved - rl, "%s%d-%d", rl ? ", " : "",
				     rows[i].code, rows[j].code);
			i = j;
		} else { /* two in a row are "71, 72" */
			r = snprintf(reserved + rl, sizeof reserved - rl, "%s%d", rl ? ", " : "",
				     rows[i].code);
		}
		if (r > 0 && (size_t)r < sizeof reserved - rl)
			rl += (size_t)r;
	}
	words(&o, "Exit codes:", "");
	for (size_t i = 0; i <= last; i++) {
		if (rows[i].flags & ERRCODE_RESERVED)
			continue;
		snprintf(item, sizeof item, "%d %s", rows[i].code, rows[i].help);
		words(&o, item, i < last ? "," : rl ? ";" : ".\n");
	}
	if (rl) {
		words(&o, reserved, "");
		words(&o, "are reserved for a later version.", "\n");
	}
	return o.len;
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	if (!e)
		return code;
	e->code = code;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
	/* Cut whole characters: the message goes into JSON (--json, MCP),
	 * which must be valid UTF-8. */
	if (n >= (int)sizeof e->message)
		e->message[utf8_trunc(e->message, sizeof e->message - 1)] = '\0';
	return code;
}
