/* filter.c - see filter.h.  Port sets are two 65536-bit bitmaps (8 KiB
 * each): a membership test is one load, and "1-65535" costs no more than
 * one port. */
#include "container/filter.h"

#include <errno.h>
#include <jansson.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PORT_WORDS (65536 / 64)
/* a devcontainer.json is a few KiB; refuse anything absurd */
#define DEVCONTAINER_MAX (4u << 20)

struct port_filter {
	uint64_t include[PORT_WORDS];
	uint64_t exclude[PORT_WORDS];
	bool have_include; /* include_ports or forwardPorts named a port */
	bool have_regex;
	regex_t regex;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void bit_set(uint64_t *bm, unsigned port)
{
	bm[port / 64] |= UINT64_C(1) << (port % 64);
}

static bool bit_get(const uint64_t *bm, unsigned port)
{
	return bm[port / 64] >> (port % 64) & 1;
}

static void bit_set_range(uint64_t *bm, unsigned a, unsigned b)
{
	while (a <= b && a % 64)
		bit_set(bm, a++);
	for (; a <= b && b - a >= 63; a += 64)
		bm[a / 64] = UINT64_MAX;
	while (a <= b)
		bit_set(bm, a++);
}

int port_filter_new(struct port_filter **ret)
{
	struct port_filter *f = calloc(1, sizeof *f);
	if (!f)
		return -ENOMEM;
	*ret = f;
	return 0;
}

void port_filter_free(struct port_filter *f)
{
	if (!f)
		return;
	if (f->have_regex)
		regfree(&f->regex);
	free(f);
}

/* Decimal 1..65535, the whole of [p, p+len). */
static bool parse_port(const char *p, size_t len, unsigned *ret)
{
	unsigned v = 0;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned)(p[i] - '0');
		if (v > 65535)
			return false;
	}
	if (v == 0)
		return false;
	*ret = v;
	return true;
}

static bool is_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parse `spec` and, when `bm` is not NULL, set its ports.  Called once to
 * validate and once to apply, so an error leaves the filter unchanged. */
static int parse_spec(const char *spec, uint64_t *bm, size_t *count, char *err, size_t errlen)
{
	const char *p = spec;
	*count = 0;
	while (*p) {
		while (is_sep(*p))
			p++;
		if (!*p)
			break;
		const char *tok = p;
		while (*p && !is_sep(*p))
			p++;
		size_t len = (size_t)(p - tok);
		const char *dash = memchr(tok, '-', len);
		unsigned a, b;
		bool ok;
		if (dash)
			ok = parse_port(tok, (size_t)(dash - tok), &a) &&
			     parse_port(dash + 1, len - (size_t)(dash - tok) - 1, &b) && a <= b;
		else
			ok = parse_port(tok, len, &a) && (b = a, true);
		if (!ok) {
			set_err(err, errlen,
				"invalid port spec \"%.*s%s\": expected PORT or FIRST-LAST with "
				"1 <= FIRST <= LAST <= 65535",
				len > 40 ? 40 : (int)len, tok, len > 40 ? "..." : "");
			return -EINVAL;
		}
		if (bm)
			bit_set_range(bm, a, b);
		(*count)++;
	}
	return 0;
}

/* Validate the whole spec first, then set its bits: all or nothing.
 * Returns the number of items via *count. */
static int add_spec(uint64_t *bm, const char *spec, size_t *count, char *err, size_t errlen)
{
	int r = parse_spec(spec, NULL, count, err, errlen);
	if (r < 0)
		return r;
	return parse_spec(spec, bm, count, NULL, 0);
}

int port_filter_include(struct port_filter *f, const char *spec, char *err, size_t errlen)
{
	size_t count;
	if (!f || !spec)
		return -EINVAL;
	int r = add_spec(f->include, spec, &count, err, errlen);
	if (r == 0 && count)
		f->have_include = true;
	return r;
}

int port_filter_exclude(struct port_filter *f, const char *spec, char *err, size_t errlen)
{
	size_t count;
	if (!f || !spec)
		return -EINVAL;
	return add_spec(f->exclude, spec, &count, err, errlen);
}

int port_filter_include_port(struct port_filter *f, uint16_t port)
{
	if (!f || port == 0)
		return -EINVAL;
	bit_set(f->include, port);
	f->have_include = true;
	return 0;
}

int port_filter_exclude_process(struct port_filter *f, const char *regex, char *err, size_t errlen)
{
	regex_t re;
	if (!f || !regex)
		return -EINVAL;
	/* "" (an empty --exclude-process) clears the rule: an empty ERE is
	 * undefined in POSIX and glibc's matches every process */
	if (!*regex) {
		if (f->have_regex)
			regfree(&f->regex);
		f->have_regex = false;
		return 0;
	}
	int r = regcomp(&re, regex, REG_EXTENDED | REG_NOSUB);
	if (r != 0) {
		char msg[128];
		regerror(r, &re, msg, sizeof msg);
		set_err(err, errlen, "invalid process regex \"%.*s%s\": %s",
			strlen(regex) > 60 ? 60 : (int)strlen(regex), regex,
			strlen(regex) > 60 ? "..." : "", msg);
		return -EINVAL;
	}
	/* a later --exclude-process replaces an earlier one */
	if (f->have_regex)
		regfree(&f->regex);
	f->regex = re;
	f->have_regex = true;
	return 0;
}

bool port_filter_allows(const struct port_filter *f, uint16_t port, const char *comm)
{
	if (port == 0)
		return false;
	if (!f)
		return true;
	if (bit_get(f->exclude, port))
		return false;
	if (f->have_include && !bit_get(f->include, port))
		return false;
	/* an unknown owner (another user's process) is not matched: the
	 * regex names processes, and "" would match patterns like "x*" */
	if (f->have_regex && comm && *comm && regexec(&f->regex, comm, 0, NULL, 0) == 0)
		return false;
	return true;
}

size_t jsonc_strip(char *buf, size_t len)
{
	enum { CODE, STRING, ESCAPE, LINE_COMMENT, BLOCK_COMMENT } st = CODE;
	/* the last byte of code that is not blank: a comma directly after
	 * '[', '{' or ',' is an error for the JSON parser to report, not a
	 * trailing comma to forgive */
	char last = 0;
	size_t comma = 0;
	bool have_comma = false;

	if (!buf)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		switch (st) {
		case STRING:
			if (c == '\\')
				st = ESCAPE;
			else if (c == '"')
				st = CODE;
			continue;
		case ESCAPE:
			st = STRING;
			continue;
		case LINE_COMMENT:
			if (c == '\n')
				st = CODE;
			else
				buf[i] = ' ';
			continue;
		case BLOCK_COMMENT:
			if (c == '*' && i + 1 < len && buf[i + 1] == '/') {
				buf[i] = buf[i + 1] = ' ';
				i++;
				st = CODE;
			} else if (c != '\n') {
				buf[i] = ' ';
			}
			continue;
		case CODE:
			break;
		}
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			continue;
		if (c == '/' && i + 1 < len && (buf[i + 1] == '/' || buf[i + 1] == '*')) {
			st = buf[i + 1] == '/' ? LINE_COMMENT : BLOCK_COMMENT;
			buf[i] = buf[i + 1] = ' ';
			i++;
			continue;
		}
		if ((c == ']' || c == '}') && have_comma)
			buf[comma] = ' ';
		have_comma = c == ',' && last != 0 && last != '[' && last != '{' && last != ',';
		if (have_comma)
			comma = i;
		if (c == '"')
			st = STRING;
		last = c;
	}
	/* comments become blanks of the same length, so the line and column
	 * of a JSON error still point into the original text */
	return len;
}

/* "3000", "db:5432", "[::1]:8080": the digits after the last ':'. */
static bool parse_port_string(const char *s, size_t len, unsigned *ret)
{
	const char *colon = len ? memrchr(s, ':', len) : NULL;
	const char *p = colon ? colon + 1 : s;
	return parse_port(p, len - (size_t)(p - s), ret);
}

/* forwardPorts[i] as a port, or false. */
static bool forward_port(json_t *v, unsigned *ret)
{
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n < 1 || n > 65535)
			return false;
		*ret = (unsigned)n;
		return true;
	}
	if (json_is_string(v))
		return parse_port_string(json_string_value(v), json_string_length(v), ret);
	return false;
}

int port_filter_devcontainer(struct port_filter *f, const char *json, size_t len, char *err,
			     size_t errlen)
{
	int r = 0;

	if (!f || (!json && len))
		return -EINVAL;
	if (len > DEVCONTAINER_MAX) {
		set_err(err, errlen, "devcontainer.json: larger than %u bytes", DEVCONTAINER_MAX);
		return -EFBIG;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, json, len);
	copy[len] = '\0';
	/* a UTF-8 byte order mark, as some editors write */
	if (len >= 3 && memcmp(copy, "\xEF\xBB\xBF", 3) == 0)
		memset(copy, ' ', 3);
	len = jsonc_strip(copy, len);

	json_error_t jerr;
	json_t *root = json_loadb(copy, len, 0, &jerr);
	free(copy);
	if (!root) {
		set_err(err, errlen, "devcontainer.json:%d:%d: %s", jerr.line, jerr.column,
			jerr.text);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		set_err(err, errlen, "devcontainer.json: the top level is not an object");
		r = -EINVAL;
		goto out;
	}
	json_t *fp = json_object_get(root, "forwardPorts");
	if (!fp)
		goto out;
	if (!json_is_array(fp)) {
		set_err(err, errlen, "devcontainer.json: \"forwardPorts\" is not an array");
		r = -EINVAL;
		goto out;
	}
	/* validate every entry before adding any */
	size_t i;
	json_t *v;
	unsigned port;
	json_array_foreach(fp, i, v)
	{
		if (forward_port(v, &port))
			continue;
		char *dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		set_err(err, errlen,
			"devcontainer.json: forwardPorts[%zu] = %.40s%s: expected a port 1-65535 "
			"or \"host:PORT\"",
			i, dump ? dump : "?", dump && strlen(dump) > 40 ? "..." : "");
		free(dump);
		r = -EINVAL;
		goto out;
	}
	json_array_foreach(fp, i, v)
	{
		if (forward_port(v, &port))
			port_filter_include_port(f, (uint16_t)port);
	}
out:
	json_decref(root);
	return r;
}
