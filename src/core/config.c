/* config.c - devbridge's YAML configuration: parse, bound, validate, type.
 *
 * libyaml's document API hands us the whole node graph with aliases already
 * resolved into shared nodes.  That graph is walked twice: once to bound it
 * (a few hundred bytes of aliases can expand to billions of nodes, and an
 * anchor that refers to itself makes a cycle), then against table-driven
 * schemas that say, per key, what type the value has and where it goes in
 * struct cfg.  Validation does not stop at the first problem: one
 * `config check` should show every mistake in the file, each with its line
 * and column and what was expected there.
 */
#include "core/config.h"
#include "core/num.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define MAX_NODES  100000    /* nodes visited with aliases expanded */
#define MAX_DEPTH  64	     /* nesting of mappings and lists */
#define MAX_FILE   (4 << 20) /* bytes; a config is a few KiB */
#define MAX_FIELDS 16	     /* keys of the largest schema */
#define ESC_MAX	   60	     /* bytes of user text quoted in a message */
#define ESC_BUF	   (ESC_MAX * 4 + 4)
#define DAY	   86400

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct loader {
	yaml_document_t *doc;
	struct cfg *cfg;
	struct cfg_diags *diags;
	size_t ndiags;	/* produced by this load, kept or dropped */
	int err;	/* -ENOMEM once an allocation failed */
	char path[256]; /* where the walk is: "tunnels.x.remote_port" */
	size_t plen;
};

/* ---- diagnostics ------------------------------------------------------ */

static int diags_vadd(struct cfg_diags *d, const char *file, int line, int col, const char *fmt,
		      va_list ap) __attribute__((format(printf, 5, 0)));

static int diags_vadd(struct cfg_diags *d, const char *file, int line, int col, const char *fmt,
		      va_list ap)
{
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
	if (vasprintf(&msg, fmt, ap) < 0)
		return -ENOMEM;
	d->items[d->n++] = (struct cfg_diag){.mark = {d->file, line, col}, .msg = msg};
	return 0;
}

static int diags_add(struct cfg_diags *d, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int diags_add(struct cfg_diags *d, const char *file, int line, int col, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = diags_vadd(d, file, line, col, fmt, ap);
	va_end(ap);
	return r;
}

void cfg_diags_clear(struct cfg_diags *diags)
{
	if (!diags)
		return;
	for (size_t i = 0; i < diags->n; i++)
		free(diags->items[i].msg);
	free(diags->file);
	memset(diags, 0, sizeof *diags);
}

static int to_int(size_t v)
{
	return v >= INT_MAX ? INT_MAX : (int)v;
}

static struct cfg_mark cmark(const struct loader *l, yaml_mark_t m)
{
	return (struct cfg_mark){l->cfg->path, to_int(m.line + 1), to_int(m.column + 1)};
}

/* Report at `m`, prefixed with the walk's path when `with_path`.  Returns
 * -EINVAL so that a checker can `return pdiag(...)`. */
static int vdiag(struct loader *l, struct cfg_mark m, bool with_path, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static int vdiag(struct loader *l, struct cfg_mark m, bool with_path, const char *fmt, va_list ap)
{
	char *body;
	int r;

	l->ndiags++;
	if (!l->diags)
		return -EINVAL;
	if (l->diags->n >= CFG_MAX_DIAGS) {
		l->diags->dropped++;
		return -EINVAL;
	}
	if (vasprintf(&body, fmt, ap) < 0) {
		l->err = -ENOMEM;
		return -EINVAL;
	}
	if (with_path && l->plen)
		r = diags_add(l->diags, m.file, m.line, m.col, "%s: %s", l->path, body);
	else
		r = diags_add(l->diags, m.file, m.line, m.col, "%s", body);
	free(body);
	if (r < 0)
		l->err = r;
	return -EINVAL;
}

static int diag_at(struct loader *l, struct cfg_mark m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int diag(struct loader *l, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int pdiag(struct loader *l, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int diag_at(struct loader *l, struct cfg_mark m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(l, m, false, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int diag(struct loader *l, yaml_mark_t m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(l, cmark(l, m), false, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int pdiag(struct loader *l, yaml_mark_t m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(l, cmark(l, m), true, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static void *oom(struct loader *l)
{
	l->err = -ENOMEM;
	return NULL;
}

/* Render untrusted text for a message: quotes and control bytes escaped
 * (the message ends up on a terminal), long text cut.  `buf` holds ESC_BUF. */
static const char *esc(char *buf, const char *s, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == ESC_MAX) {
			/* don't leave half a UTF-8 sequence before the "..." */
			size_t lead = o;
			while (lead > 0 && ((unsigned char)buf[lead - 1] & 0xc0) == 0x80)
				lead--;
			if (lead > 0 && (unsigned char)buf[lead - 1] >= 0xc0) {
				unsigned char c0 = (unsigned char)buf[lead - 1];
				size_t need = c0 >= 0xf0 ? 4 : c0 >= 0xe0 ? 3 : 2;
				if (o - (lead - 1) < need)
					o = lead - 1;
			}
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(buf + o, 5, "\\x%02x", c);
			o += 4;
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o] = '\0';
	return buf;
}

static const char *escs(char *buf, const char *s)
{
	return esc(buf, s, strlen(s));
}

/* ---- the walk's path, for messages ----------------------------------- */

/* Append to the path, cut at the buffer's end; returns the old length for
 * path_pop. */
static size_t path_append(struct loader *l, const char *s)
{
	size_t old = l->plen, n = strlen(s), room = sizeof l->path - 1 - old;

	if (n > room)
		n = room;
	memcpy(l->path + old, s, n);
	l->plen = old + n;
	l->path[l->plen] = '\0';
	return old;
}

static size_t path_push(struct loader *l, const char *key)
{
	char e[ESC_BUF + 1] = ".";

	escs(e + 1, key);
	return path_append(l, l->plen ? e : e + 1);
}

static size_t path_index(struct loader *l, size_t i)
{
	char b[32];

	snprintf(b, sizeof b, "[%zu]", i);
	return path_append(l, b);
}

static void path_pop(struct loader *l, size_t old)
{
	l->plen = old;
	l->path[old] = '\0';
}

/* ---- nodes ------------------------------------------------------------ */

static yaml_node_t *node(const struct loader *l, int idx)
{
	return yaml_document_get_node(l->doc, idx);
}

static const char *sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static bool is_plain(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* YAML's null: an empty value, "~" or "null", unquoted. */
static bool is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

	if (!is_plain(n))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(nulls); i++)
		if (strcmp(sval(n), nulls[i]) == 0)
			return true;
	return false;
}

/* A "\0" escape in a quoted scalar would silently cut the C string. */
static bool has_nul(const yaml_node_t *n)
{
	return strlen(sval(n)) != n->data.scalar.length;
}

/* What a node is, for "expected X, got Y". */
static const char *got(char *buf, const yaml_node_t *n)
{
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (is_plain(n) && !*sval(n))
		return "nothing";
	if (is_null(n))
		return "null";
	buf[0] = '"';
	esc(buf + 1, sval(n), n->data.scalar.length);
	strcat(buf, "\"");
	return buf;
}

static int type_error(struct loader *l, const yaml_node_t *n, const char *what)
{
	char g[ESC_BUF + 2];

	return pdiag(l, n->start_mark, "expected %s, got %s", what, got(g, n));
}

/* The key of pair `p` in `map`, or NULL after reporting why it is unusable:
 * keys are strings, and a key given twice is an error rather than YAML's
 * silent "last one wins". */
static const char *map_key(struct loader *l, const yaml_node_t *map, const yaml_node_pair_t *p)
{
	const yaml_node_t *k = node(l, p->key);
	char e[ESC_BUF];

	if (k->type != YAML_SCALAR_NODE) {
		char g[ESC_BUF + 2];
		pdiag(l, k->start_mark, "expected a string key, got %s", got(g, k));
		return NULL;
	}
	if (has_nul(k)) {
		pdiag(l, k->start_mark, "key '%s' contains a NUL byte",
		      esc(e, sval(k), k->data.scalar.length));
		return NULL;
	}
	for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
		const yaml_node_t *k2 = node(l, q->key);
		if (k2->type == YAML_SCALAR_NODE &&
		    k2->data.scalar.length == k->data.scalar.length &&
		    strcmp(sval(k2), sval(k)) == 0) {
			pdiag(l, k->start_mark, "duplicate key '%s' (first at line %zu)",
			      escs(e, sval(k)), k2->start_mark.line + 1);
			return NULL;
		}
	}
	return sval(k);
}

/* The value of `key` in mapping `map`, or NULL. */
static yaml_node_t *map_get(const struct loader *l, const yaml_node_t *map, const char *key)
{
	if (map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const yaml_node_t *k = node(l, p->key);
		if (k->type == YAML_SCALAR_NODE && strcmp(sval(k), key) == 0)
			return node(l, p->value);
	}
	return NULL;
}

/* Walk the graph as the schema walk will, aliases expanded, and refuse it
 * when it is too big or too deep: afterwards every walk is bounded. */
static int bound(struct loader *l, const yaml_node_t *n, int depth, size_t *visited)
{
	int r;

	if (!n)
		return 0;
	if (++*visited > MAX_NODES)
		return diag(l, n->start_mark,
			    "the document expands to more than %d nodes (too many aliases?)",
			    MAX_NODES);
	if (depth > MAX_DEPTH)
		return diag(l, n->start_mark,
			    "nested more than %d levels deep (or an alias refers to itself)",
			    MAX_DEPTH);
	if (n->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *i = n->data.sequence.items.start;
		     i < n->data.sequence.items.top; i++)
			if ((r = bound(l, node(l, *i), depth + 1, visited)) < 0)
				return r;
	} else if (n->type == YAML_MAPPING_NODE) {
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     p < n->data.mapping.pairs.top; p++) {
			if ((r = bound(l, node(l, p->key), depth + 1, visited)) < 0)
				return r;
			if ((r = bound(l, node(l, p->value), depth + 1, visited)) < 0)
				return r;
		}
	}
	return 0;
}

/* ---- scalars ---------------------------------------------------------- */

/* A plain decimal integer in [min, max] (core/num.h's rules: no sign, no
 * leading zeros, which YAML 1.1 reads as octal, no "0x", "1_000" or
 * trailing junk). */
static bool parse_int(const char *s, size_t len, long long min, long long max, long long *ret)
{
	uint64_t v;

	if (parse_uint_range(s, len, min > 0 ? (uint64_t)min : 0, max > 0 ? (uint64_t)max : 0, 0,
			     &v) < 0)
		return false;
	*ret = (long long)v;
	return true;
}

/* -?D+(.D+)?([eE][+-]?D+)? : strtod alone would also take "inf", "nan"
 * and hex. */
static bool parse_num(const char *s, double *ret)
{
	const char *p = s;
	char *end;

	if (*p == '-')
		p++;
	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p)
		return false;
	errno = 0;
	*ret = strtod(s, &end);
	return errno == 0 && *end == '\0' && isfinite(*ret);
}

/* Quoted numbers are strings in YAML; say so rather than leave the user
 * staring at "expected an integer, got \"8080\"". */
static int number_error(struct loader *l, const yaml_node_t *n, const char *what)
{
	char g[ESC_BUF + 2];
	double d;

	if (n->type == YAML_SCALAR_NODE && !is_plain(n) && parse_num(sval(n), &d))
		return pdiag(l, n->start_mark, "expected %s, got %s (quoted, so a string)", what,
			     got(g, n));
	return type_error(l, n, what);
}

static int get_int(struct loader *l, const yaml_node_t *n, long long min, long long max,
		   long long *ret)
{
	char what[80];
	long long v;

	if (max >= INT_MAX)
		snprintf(what, sizeof what, "an integer >= %lld", min);
	else
		snprintf(what, sizeof what, "an integer %lld-%lld", min, max);
	if (!is_plain(n) || !parse_int(sval(n), n->data.scalar.length, min, max, &v))
		return number_error(l, n, what);
	*ret = v;
	return 0;
}

/* Durations and backoffs: positive, at most a day. */
static int get_num(struct loader *l, const yaml_node_t *n, double *ret)
{
	char what[64];
	double v;

	snprintf(what, sizeof what, "a number > 0 and <= %d", DAY);
	if (!is_plain(n) || !parse_num(sval(n), &v) || !(v > 0) || v > DAY)
		return number_error(l, n, what);
	*ret = v;
	return 0;
}

static int get_bool(struct loader *l, const yaml_node_t *n, bool *ret)
{
	static const char *const words[] = {"false", "no", "true", "yes"};

	if (is_plain(n))
		for (size_t i = 0; i < ARRAY_SIZE(words); i++)
			if (strcasecmp(sval(n), words[i]) == 0) {
				*ret = i >= 2;
				return 0;
			}
	return type_error(l, n, "true or false");
}

/* "'a' or 'b'", "'a', 'b' or 'c'" */
static void enum_desc(char *buf, size_t sz, const char *const *names)
{
	size_t n = 0, o = 0;

	while (names[n])
		n++;
	buf[0] = '\0';
	for (size_t i = 0; i < n && o < sz; i++) {
		const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
		int r = snprintf(buf + o, sz - o, "%s'%s'", sep, names[i]);
		if (r < 0)
			break;
		o += (size_t)r;
	}
}

static int get_enum(struct loader *l, const yaml_node_t *n, const char *const *names, int *ret)
{
	char what[160];

	if (n->type == YAML_SCALAR_NODE && !has_nul(n))
		for (int i = 0; names[i]; i++)
			if (strcmp(sval(n), names[i]) == 0) {
				*ret = i;
				return 0;
			}
	enum_desc(what, sizeof what, names);
	return type_error(l, n, what);
}

/* Words that end up as one ssh argument (host, user): a leading '-' would
 * make ssh read them as an option. */
static bool word_ok(const char *s)
{
	if (s[0] == '-')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

static bool url_ok(const char *s)
{
	size_t skip = strncasecmp(s, "http://", 7) == 0	   ? 7
		      : strncasecmp(s, "https://", 8) == 0 ? 8
							   : 0;

	return skip && s[skip] && word_ok(s + skip);
}

enum {
	F_REQ = 1 << 0,	  /* required */
	F_EMPTY = 1 << 1, /* a string that may be empty (or null) */
	F_WORD = 1 << 2,  /* a string passed to ssh as one argument */
	F_HTTP = 1 << 3,  /* an http:// or https:// URL */
	F_NAME = 1 << 4,  /* a bridge name, see cfg_name_valid */
};

static int get_str(struct loader *l, const yaml_node_t *n, unsigned flags, const char **ret)
{
	char e[ESC_BUF];
	const char *s;

	if (n->type != YAML_SCALAR_NODE || (is_null(n) && !(flags & F_EMPTY)))
		return type_error(l, n, "a string");
	if (has_nul(n))
		return pdiag(l, n->start_mark, "contains a NUL byte");
	s = is_null(n) ? "" : sval(n);
	if (!*s && !(flags & F_EMPTY))
		return type_error(l, n, "a non-empty string");
	if ((flags & F_WORD) && !word_ok(s))
		return pdiag(l, n->start_mark,
			     "expected a name without spaces that does not start with '-', "
			     "got \"%s\"",
			     escs(e, s));
	if ((flags & F_HTTP) && !url_ok(s))
		return type_error(l, n, "an http:// or https:// URL");
	if ((flags & F_NAME) && !cfg_name_valid(s))
		return pdiag(l, n->start_mark,
			     "invalid name '%s': use letters, digits, '.', '_', '-' (at most 64)",
			     escs(e, s));
	*ret = s;
	return 0;
}

/* A relative path in a config file means relative to that file, not to
 * wherever the command happens to run (a supervisor runs from elsewhere). */
static char *resolve_path(const struct loader *l, const char *s)
{
	char *v = cfg_expand_home(s);
	const char *name = l->cfg->path, *slash = strrchr(name, '/');
	if (!v || v[0] == '/' || !slash)
		return v;
	char *joined = NULL;
	if (asprintf(&joined, "%.*s/%s", (int)(slash - name), name, v) < 0)
		joined = NULL;
	free(v);
	return joined;
}

static void store_str(struct loader *l, char **slot, const char *s, bool path)
{
	char *v = path ? resolve_path(l, s) : strdup(s);

	if (!v) {
		oom(l);
		return;
	}
	free(*slot);
	*slot = v;
}

/* ---- schemas ---------------------------------------------------------- */

enum kind {
	K_STR,	  /* a string */
	K_PATH,	  /* a string, "~/" expanded, relative to the file */
	K_INT,	  /* a plain decimal integer in [min, max] */
	K_NUM,	  /* a plain decimal number, see get_num */
	K_BOOL,	  /* true/false/yes/no */
	K_ENUM,	  /* one of names[]; stores the index as an int */
	K_MAP,	  /* a mapping checked against schema */
	K_LIST,	  /* a list of mappings checked against schema, see walk_list */
	K_STRS,	  /* a list of strings */
	K_PORTS,  /* a list of ports or "low-high" ranges */
	K_CMD,	  /* a string or a list of strings */
	K_STRMAP, /* a mapping of strings to scalars */
	K_ANYMAP, /* a mapping, contents not ours to judge */
	K_FUNC,	  /* fn does the checking */
};

struct seen {
	yaml_node_t *key, *val;
};

struct schema;
typedef void field_fn(struct loader *l, yaml_node_t *val, void *base);
typedef void post_fn(struct loader *l, const struct schema *s, const struct seen *seen,
		     yaml_mark_t at, void *base);

struct field {
	const char *key;
	enum kind kind;
	unsigned flags;
	long long min, max; /* K_INT; max: bytes for K_STR and K_PATH (0 = any) */
	/* Where the value (and the value's mark) go: 1 + an offset into the
	 * struct being filled, 0 for nowhere.  For K_MAP, where the nested
	 * struct is (1 = the same struct: reconnect's keys live in the
	 * tunnel). */
	size_t at, mark_at;
	const struct schema *schema; /* K_MAP, K_LIST */
	const char *const *names;    /* K_ENUM */
	field_fn *fn;		     /* K_FUNC */
	/* K_LIST stored (at != 0): the size of one element and where in it
	 * the item's mark goes (AT() into the element). */
	size_t elem_size, elem_mark_at;
};

struct schema {
	const struct field *fields;
	size_t n;
	post_fn *post; /* cross-key checks once the keys are read */
};

#define SCHEMA(name, fields, post)                                                                 \
	_Static_assert(ARRAY_SIZE(fields) <= MAX_FIELDS, "raise MAX_FIELDS");                      \
	static const struct schema name = {fields, ARRAY_SIZE(fields), post}

#define AT(type, member) (offsetof(type, member) + 1)
#define TUN(m)		 AT(struct cfg_tunnel, m)
#define HEA(m)		 AT(struct cfg_health, m)
#define ACT(m)		 AT(struct cfg_actor, m)
#define SAME_BASE	 1

/* Table rows.  a: where the value goes (AT(), 0 = nowhere); m: where its
 * mark goes. */
/* clang-format off */
#define STR(k, fl, a, m)  {.key = k, .kind = K_STR, .flags = fl, .at = a, .mark_at = m}
#define PATH(k, fl, a, m) {.key = k, .kind = K_PATH, .flags = fl, .at = a, .mark_at = m}
/* At most mx bytes (K_PATH: once resolved): refused, never cut. */
#define STRMAX(k, mx, a)  {.key = k, .kind = K_STR, .max = mx, .at = a}
#define PATHMAX(k, mx, a) {.key = k, .kind = K_PATH, .max = mx, .at = a}
#define INT(k, lo, hi, a) {.key = k, .kind = K_INT, .min = lo, .max = hi, .at = a}
#define PORT(k, fl, a, m) {.key = k, .kind = K_INT, .flags = fl, .min = 1, .max = 65535, \
			   .at = a, .mark_at = m}
#define NUM(k, a)         {.key = k, .kind = K_NUM, .at = a}
#define ENUM(k, fl, n, a) {.key = k, .kind = K_ENUM, .flags = fl, .names = n, .at = a}
#define MAP(k, s, a)      {.key = k, .kind = K_MAP, .schema = s, .at = a}
#define LIST(k, s)        {.key = k, .kind = K_LIST, .schema = s}
/* A stored list: `a` is the AT() of a `T *items; size_t n;` pair, T has a
 * `struct cfg_mark mark` for the item's mark. */
#define LISTOF(k, s, a, T) {.key = k, .kind = K_LIST, .schema = s, .at = a, \
			    .elem_size = sizeof(T), .elem_mark_at = AT(T, mark)}
#define FUNC(k, f)        {.key = k, .kind = K_FUNC, .fn = f}
#define OF(k, kd)         {.key = k, .kind = kd}
/* clang-format on */

static void *slot(void *base, size_t at)
{
	return base && at ? (char *)base + at - 1 : NULL;
}

static const struct seen *seen_of(const struct schema *s, const struct seen *seen, const char *key)
{
	static const struct seen none;

	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->fields[i].key, key) == 0)
			return &seen[i];
	return &none;
}

/* Did-you-mean: the closest candidate within max(2, len/3) edits. */
static void suggest_step(const char *word, const char *cand, const char **best, int *bestd)
{
	size_t third = strlen(word) / 3;
	int cap = third <= 2 ? 2 : third >= 16 ? 16 : (int)third;
	int d = cfg_edit_distance(word, cand, cap);

	if (d <= cap && d < *bestd) {
		*best = cand;
		*bestd = d;
	}
}

static void unknown_key(struct loader *l, const yaml_node_t *k, const struct schema *s)
{
	const char *best = NULL;
	int bestd = INT_MAX;
	char e[ESC_BUF], list[512];
	size_t o = 0;

	for (size_t i = 0; i < s->n; i++)
		suggest_step(sval(k), s->fields[i].key, &best, &bestd);
	if (best) {
		pdiag(l, k->start_mark, "unknown key '%s' (did you mean '%s'?)", escs(e, sval(k)),
		      best);
		return;
	}
	list[0] = '\0';
	for (size_t i = 0; i < s->n && o < sizeof list; i++) {
		int r =
		    snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", s->fields[i].key);
		if (r < 0)
			break;
		o += (size_t)r;
	}
	pdiag(l, k->start_mark, "unknown key '%s' (expected one of: %s)", escs(e, sval(k)), list);
}

static void walk_map(struct loader *l, yaml_node_t *map, const struct schema *s, void *base,
		     const char *ctx, yaml_mark_t at);

/* One more zeroed element of `size` bytes at the end of the array whose
 * pointer is at `out` and whose size_t count follows that pointer.  The
 * capacity is the count rounded up to a power of two, so a long list is
 * not copied once per item. */
static void *list_grow(struct loader *l, void *out, size_t size)
{
	size_t n;
	char *items;

	memcpy(&items, out, sizeof items);
	memcpy(&n, (char *)out + sizeof(void *), sizeof n);
	if ((n & (n - 1)) == 0) {
		size_t cap = n ? n * 2 : 1;
		char *v = cap <= SIZE_MAX / size ? realloc(items, cap * size) : NULL;
		if (!v)
			return oom(l);
		items = v;
		memcpy(out, &items, sizeof items);
	}
	memset(items + n * size, 0, size);
	n++;
	memcpy((char *)out + sizeof(void *), &n, sizeof n);
	return items + (n - 1) * size;
}

/* A list of mappings of schema `s`.  With `out` (see list_grow), each item
 * is stored in a new element of `size` bytes whose mark, at `mark_at`, is
 * the item's; without, the list is validated only. */
static void walk_list(struct loader *l, yaml_node_t *seq, const struct schema *s, void *out,
		      size_t size, size_t mark_at)
{
	size_t i = 0;

	if (is_null(seq))
		return;
	if (seq->type != YAML_SEQUENCE_NODE) {
		type_error(l, seq, "a list");
		return;
	}
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     it < seq->data.sequence.items.top; it++, i++) {
		yaml_node_t *item = node(l, *it);
		void *base = NULL;
		struct cfg_mark *m;
		size_t old;

		if (out && !(base = list_grow(l, out, size)))
			return;
		if ((m = slot(base, mark_at)))
			*m = cmark(l, item->start_mark);
		old = path_index(l, i);
		walk_map(l, item, s, base, NULL, item->start_mark);
		path_pop(l, old);
	}
}

/* K_STRS, and the list form of K_CMD. */
/* A list of strings; stored, when `out` is given, as a NULL-terminated
 * array whose length is also counted in *out_n. */
static void check_strs(struct loader *l, yaml_node_t *seq, char ***out, size_t *out_n)
{
	const char *s;
	size_t i = 0;

	if (is_null(seq))
		return;
	if (seq->type != YAML_SEQUENCE_NODE) {
		type_error(l, seq, "a list of strings");
		return;
	}
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     it < seq->data.sequence.items.top; it++, i++) {
		size_t old = path_index(l, i);
		if (get_str(l, node(l, *it), 0, &s) == 0 && out) {
			char **v = realloc(*out, (*out_n + 2) * sizeof *v);
			char *copy = strdup(s);
			if (!v || !copy) {
				free(copy);
				if (v)
					*out = v;
				oom(l);
			} else {
				*out = v;
				v[(*out_n)++] = copy;
				v[*out_n] = NULL;
			}
		}
		path_pop(l, old);
	}
}

/* A command: a list (argv) or one string (for a shell).  Stored, when `out`
 * is given, like K_STRS, followed by a bool that says which form. */
struct cmd_slot {
	char **argv;
	size_t n;
	bool shell;
};

static void check_cmd(struct loader *l, yaml_node_t *n, struct cmd_slot *out)
{
	const char *s;

	if (n->type == YAML_SEQUENCE_NODE) {
		check_strs(l, n, out ? &out->argv : NULL, out ? &out->n : NULL);
	} else if (n->type == YAML_SCALAR_NODE && !is_null(n)) {
		if (get_str(l, n, 0, &s) < 0 || !out)
			return;
		char **v = calloc(2, sizeof *v);
		if (!v || !(v[0] = strdup(s))) {
			free(v);
			oom(l);
			return;
		}
		out->argv = v;
		out->n = 1;
		out->shell = true;
	} else {
		type_error(l, n, "a string or a list of strings");
	}
}

/* dbr's include/exclude ports: 8080 or "9000-9010". */
/* Append `item` to a comma-separated spec in *out. */
static void spec_append(struct loader *l, char **out, const char *item)
{
	size_t n = *out ? strlen(*out) : 0, k = strlen(item);
	char *v = realloc(*out, n + k + 2);
	if (!v) {
		oom(l);
		return;
	}
	if (n)
		v[n++] = ',';
	memcpy(v + n, item, k + 1);
	*out = v;
}

/* A list of ports and "low-high" ranges; stored, when `out` is given, as
 * one spec string "8000-8100,9000" (what the port filter parses). */
static void check_ports(struct loader *l, yaml_node_t *seq, char **out)
{
	static const char what[] = "a port 1-65535 or a \"low-high\" range";
	size_t i = 0;

	if (is_null(seq))
		return;
	if (seq->type != YAML_SEQUENCE_NODE) {
		type_error(l, seq, "a list of ports");
		return;
	}
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     it < seq->data.sequence.items.top; it++, i++) {
		const yaml_node_t *n = node(l, *it);
		size_t old = path_index(l, i);
		char buf[16], *dash;
		long long lo, hi;

		if (is_plain(n) && parse_int(sval(n), n->data.scalar.length, 0, LLONG_MAX, &lo)) {
			if (lo < 1 || lo > 65535)
				type_error(l, n, what);
			else if (out)
				spec_append(l, out, sval(n));
		} else if (n->type != YAML_SCALAR_NODE || n->data.scalar.length >= sizeof buf) {
			type_error(l, n, what);
		} else {
			memcpy(buf, sval(n), n->data.scalar.length + 1);
			dash = strchr(buf, '-');
			if (dash)
				*dash = '\0';
			if (!dash || !parse_int(buf, strlen(buf), 1, 65535, &lo) ||
			    !parse_int(dash + 1, strlen(dash + 1), 1, 65535, &hi) || lo > hi)
				type_error(l, n, what);
			else if (out)
				spec_append(l, out, sval(n));
		}
		path_pop(l, old);
	}
}

/* K_STRMAP (env) and K_ANYMAP (healthcheck): keys still unique strings. */
static void check_anymap(struct loader *l, yaml_node_t *map, bool scalars)
{
	if (is_null(map))
		return;
	if (map->type != YAML_MAPPING_NODE) {
		type_error(l, map, "a mapping");
		return;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const char *key = map_key(l, map, p), *s;
		yaml_node_t *v = node(l, p->value);

		if (!key || !scalars)
			continue;
		size_t old = path_push(l, key);
		get_str(l, v, F_EMPTY, &s);
		path_pop(l, old);
	}
}

static void check_field(struct loader *l, const struct field *f, yaml_node_t *key, yaml_node_t *val,
			void *base)
{
	void *p = slot(base, f->at);
	struct cfg_mark *m = slot(base, f->mark_at);
	const char *s = NULL;
	long long ll = 0;
	double d = 0;
	bool b = false;
	int i = 0;

	if (m)
		*m = cmark(l, val->start_mark);
	switch (f->kind) {
	case K_STR:
	case K_PATH:
		if (get_str(l, val, f->flags, &s) < 0)
			break;
		if (f->max && strlen(s) > (size_t)f->max) {
			pdiag(l, val->start_mark,
			      "expected at most %lld bytes, got %zu (longer values are refused, "
			      "not cut)",
			      f->max, strlen(s));
			break;
		}
		if (!p)
			break;
		store_str(l, p, s, f->kind == K_PATH);
		if (f->max && *(char **)p && strlen(*(char **)p) > (size_t)f->max)
			pdiag(l, val->start_mark,
			      "expected at most %lld bytes once resolved, got %zu: \"%.40s...\"",
			      f->max, strlen(*(char **)p), *(char **)p);
		break;
	case K_INT:
		if (get_int(l, val, f->min, f->max, &ll) == 0 && p)
			*(int *)p = (int)ll;
		break;
	case K_NUM:
		if (get_num(l, val, &d) == 0 && p)
			*(double *)p = d;
		break;
	case K_BOOL:
		if (get_bool(l, val, &b) == 0 && p)
			*(bool *)p = b;
		break;
	case K_ENUM:
		/* The enums in config.h list their values in names[] order;
		 * an enum without negative values is int-sized here. */
		if (get_enum(l, val, f->names, &i) == 0 && p)
			*(int *)p = i;
		break;
	case K_MAP:
		walk_map(l, val, f->schema, p, NULL, key->start_mark);
		break;
	case K_LIST:
		walk_list(l, val, f->schema, p, f->elem_size, f->elem_mark_at);
		break;
	case K_STRS:
		/* Stored lists are followed by their count (see cfg_container). */
		check_strs(l, val, p, p ? (size_t *)((char *)p + sizeof(char **)) : NULL);
		break;
	case K_PORTS:
		check_ports(l, val, p);
		break;
	case K_CMD:
		check_cmd(l, val, p);
		break;
	case K_STRMAP:
	case K_ANYMAP:
		check_anymap(l, val, f->kind == K_STRMAP);
		break;
	case K_FUNC:
		f->fn(l, val, base);
		break;
	}
}

/* Check `map` against `s`, storing into `base` (NULL: validate only).
 * Missing required keys are reported at `at` as "CTX: missing required
 * field 'k'", CTX defaulting to the walk's path.  A null value (an empty
 * "key:") counts as an empty mapping. */
static void walk_map(struct loader *l, yaml_node_t *map, const struct schema *s, void *base,
		     const char *ctx, yaml_mark_t at)
{
	struct seen seen[MAX_FIELDS] = {{0}};

	if (!is_null(map) && map->type != YAML_MAPPING_NODE) {
		type_error(l, map, "a mapping");
		return;
	}
	if (map->type == YAML_MAPPING_NODE)
		for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
		     p < map->data.mapping.pairs.top; p++) {
			const char *k = map_key(l, map, p);
			yaml_node_t *kn = node(l, p->key), *vn = node(l, p->value);
			size_t i, old;

			if (!k)
				continue;
			for (i = 0; i < s->n && strcmp(s->fields[i].key, k) != 0; i++)
				;
			if (i == s->n) {
				unknown_key(l, kn, s);
				continue;
			}
			seen[i] = (struct seen){kn, vn};
			old = path_push(l, k);
			check_field(l, &s->fields[i], kn, vn, base);
			path_pop(l, old);
		}
	for (size_t i = 0; i < s->n; i++)
		if ((s->fields[i].flags & F_REQ) && !seen[i].key)
			diag(l, at, "%s: missing required field '%s'", ctx ? ctx : l->path,
			     s->fields[i].key);
	if (s->post)
		s->post(l, s, seen, at, base);
}

/* A mapping of names to entries of schema `s` (tunnels:, actors:,
 * profiles:).  `add` makes the entry for a name and returns where its
 * values go, or NULL to validate only. */
static void walk_named(struct loader *l, yaml_node_t *map, const char *what, const struct schema *s,
		       void *(*add)(struct loader *, const yaml_node_t *key))
{
	if (is_null(map))
		return;
	if (map->type != YAML_MAPPING_NODE) {
		char desc[64];
		snprintf(desc, sizeof desc, "a mapping of %s names to %ss", what, what);
		type_error(l, map, desc);
		return;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const char *name = map_key(l, map, p);
		yaml_node_t *kn = node(l, p->key);
		char ctx[ESC_BUF + 32], e[ESC_BUF];
		void *base = NULL;
		size_t old;

		if (!name)
			continue;
		if (add && !(base = add(l, kn)) && l->err)
			return;
		snprintf(ctx, sizeof ctx, "%s '%s'", what, escs(e, name));
		old = path_push(l, name);
		walk_map(l, node(l, p->value), s, base, ctx, kn->start_mark);
		path_pop(l, old);
	}
}

/* ---- tunnels ---------------------------------------------------------- */

/* Defined with the other tables below. */
static const struct schema tunnel_schema, actor_schema, profile_schema, service_schema;

/* Options the supervisor sets itself (SPEC §5; ssh_argv.c puts them first,
 * so a value here would be silently ignored) or that would take ssh out
 * of its hands: a user's "ControlMaster auto" makes ssh exit 0 at once,
 * ForkAfterAuthentication puts it in the background, forwards belong to
 * the tunnel's own fields, -v is what tells the supervisor the forward is
 * up. */
/* clang-format off */
static const char *const managed_opts[] = {
	"BatchMode", "ExitOnForwardFailure", "ServerAliveInterval", "ServerAliveCountMax",
	"ControlMaster", "ControlPath", "ControlPersist",
	"RemoteForward", "LocalForward", "DynamicForward", "ClearAllForwardings", "Tunnel",
	"PermitLocalCommand", "LocalCommand", "IdentitiesOnly", "LogLevel",
	"ForkAfterAuthentication", "SessionType", "StdinNull", "RequestTTY", "RemoteCommand",
};

/* Options that say what one of the tunnel's own fields says: given here
 * they would win over the field (they come before -p, -l, -i and the host
 * on the command line) while `config check` shows the field. */
static const struct {
	const char *opt, *field;
} field_opts[] = {
	{"Port", "ssh_port"}, {"User", "ssh_user"}, {"Hostname", "host"},
	{"IdentityFile", "ssh_key"},
};

/* Keywords ssh refuses on the command line ("not supported as a
 * command-line option"): every attempt would fail. */
static const char *const file_only_opts[] = {"Host", "Match", "Include"};
/* clang-format on */

static bool opt_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

static void load_ssh_options(struct loader *l, yaml_node_t *map, void *base)
{
	struct cfg_tunnel *t = base;
	char e[ESC_BUF];

	if (is_null(map))
		return;
	if (map->type != YAML_MAPPING_NODE) {
		type_error(l, map, "a mapping of ssh option names to values");
		return;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const char *key = map_key(l, map, p), *v = NULL;
		yaml_node_t *kn = node(l, p->key), *vn = node(l, p->value);
		bool bad = false;
		size_t old;

		if (!key)
			continue;
		if (!opt_name_ok(key)) {
			pdiag(l, kn->start_mark,
			      "invalid ssh option name '%s': use letters and digits", escs(e, key));
			continue;
		}
		for (size_t i = 0; i < ARRAY_SIZE(managed_opts); i++)
			if (strcasecmp(key, managed_opts[i]) == 0) {
				diag(l, kn->start_mark,
				     "%s.%s is managed by devbridge and cannot be overridden",
				     l->path, key);
				bad = true;
			}
		for (size_t i = 0; i < ARRAY_SIZE(field_opts); i++)
			if (strcasecmp(key, field_opts[i].opt) == 0) {
				char tun[ESC_BUF + 16];
				size_t cut = l->plen > 12 ? l->plen - 12 : 0; /* ".ssh_options" */
				snprintf(tun, sizeof tun, "%.*s", (int)cut, l->path);
				diag(l, kn->start_mark,
				     "%s.%s would override the tunnel's own field: set %s.%s "
				     "instead",
				     l->path, key, tun, field_opts[i].field);
				bad = true;
			}
		for (size_t i = 0; i < ARRAY_SIZE(file_only_opts); i++)
			if (strcasecmp(key, file_only_opts[i]) == 0) {
				diag(l, kn->start_mark,
				     "%s.%s: ssh does not accept '%s' on the command line; put it "
				     "in the file named by ssh_config",
				     l->path, key, file_only_opts[i]);
				bad = true;
			}
		/* ssh's option names are case-insensitive and the first
		 * setting wins: "proxyjump" after "ProxyJump" would be
		 * silently ignored. */
		for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p && !bad;
		     q++) {
			const yaml_node_t *k2 = node(l, q->key);
			if (k2->type == YAML_SCALAR_NODE && strcasecmp(sval(k2), key) == 0) {
				pdiag(l, kn->start_mark,
				      "duplicate ssh option '%s' (first at line %zu as '%s')", key,
				      k2->start_mark.line + 1, escs(e, sval(k2)));
				bad = true;
			}
		}
		if (bad)
			continue;
		old = path_push(l, key);
		if (get_str(l, vn, 0, &v) < 0) {
			bad = true;
		} else if (strpbrk(v, "\r\n")) {
			pdiag(l, vn->start_mark, "value must not contain a newline");
			bad = true;
		}
		path_pop(l, old);
		if (bad || !t)
			continue;

		struct cfg_kv *kv =
		    realloc(t->ssh_options, (t->n_ssh_options + 1) * sizeof *t->ssh_options);
		if (!kv) {
			oom(l);
			return;
		}
		t->ssh_options = kv;
		kv += t->n_ssh_options++;
		*kv = (struct cfg_kv){strdup(key), strdup(v), cmark(l, vn->start_mark)};
		if (!kv->key || !kv->value) {
			oom(l);
			return;
		}
	}
}

/* health_check.tcp: a port on 127.0.0.1, or "host:port". */
static void load_health_tcp(struct loader *l, yaml_node_t *n, void *base)
{
	static const char what[] = "a port 1-65535 or \"host:port\"";
	struct cfg_health *h = base;
	char *host = NULL, *colon;
	long long port;

	if (is_plain(n) && parse_int(sval(n), n->data.scalar.length, 0, LLONG_MAX, &port)) {
		if (port < 1 || port > 65535) {
			type_error(l, n, what);
			return;
		}
		host = strdup("127.0.0.1");
	} else {
		if (n->type != YAML_SCALAR_NODE || has_nul(n) || !(colon = strrchr(sval(n), ':')) ||
		    colon == sval(n) || !parse_int(colon + 1, strlen(colon + 1), 1, 65535, &port)) {
			type_error(l, n, what);
			return;
		}
		host = strndup(sval(n), (size_t)(colon - sval(n)));
		size_t hl = host ? strlen(host) : 0;
		if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') { /* "[::1]:80" */
			memmove(host, host + 1, hl - 2);
			host[hl - 2] = '\0';
		}
		if (host && (!*host || !word_ok(host))) {
			free(host);
			type_error(l, n, what);
			return;
		}
	}
	if (!host) {
		oom(l);
		return;
	}
	if (!h) {
		free(host);
		return;
	}
	free(h->tcp_host);
	h->tcp_host = host;
	h->tcp_port = (int)port;
	h->mark = cmark(l, n->start_mark);
}

static void health_post(struct loader *l, const struct schema *s, const struct seen *seen,
			yaml_mark_t at, void *base)
{
	const struct seen *url = seen_of(s, seen, "url"), *tcp = seen_of(s, seen, "tcp");
	struct cfg_health *h = base;

	if (url->key && tcp->key)
		pdiag(l, tcp->key->start_mark, "'url' and 'tcp' are mutually exclusive");
	else if (!url->key && !tcp->key)
		pdiag(l, at, "expected 'url' or 'tcp'");
	if (h)
		h->kind = url->key ? HEALTH_HTTP : tcp->key ? HEALTH_TCP : HEALTH_NONE;
}

static void reconnect_post(struct loader *l, const struct schema *s, const struct seen *seen,
			   yaml_mark_t at, void *base)
{
	const struct seen *max = seen_of(s, seen, "backoff_max");
	struct cfg_tunnel *t = base;

	(void)at;
	if (!t || t->backoff_max >= t->backoff_initial)
		return;
	/* Only backoff_initial given, above the default maximum: the user
	 * meant a constant delay, not an error. */
	if (!max->key)
		t->backoff_max = t->backoff_initial;
	else
		pdiag(l, max->val->start_mark, "backoff_max (%g) must be >= backoff_initial (%g)",
		      t->backoff_max, t->backoff_initial);
}

/* host: "user@h" or "ssh://user@h:port" would carry a user (and port)
 * past ssh_user and ssh_port: ssh reads them from the destination. */
static void tunnel_post(struct loader *l, const struct schema *s, const struct seen *seen,
			yaml_mark_t at, void *base)
{
	const struct seen *h = seen_of(s, seen, "host");
	char e[ESC_BUF];

	(void)at;
	(void)base;
	if (!h->val || h->val->type != YAML_SCALAR_NODE)
		return;
	if (strncasecmp(sval(h->val), "ssh://", 6) == 0)
		pdiag(l, h->val->start_mark,
		      "host '%s' is an ssh:// URI: give the host name only, with ssh_user and "
		      "ssh_port",
		      escs(e, sval(h->val)));
	else if (strchr(sval(h->val), '@'))
		pdiag(l, h->val->start_mark,
		      "host '%s' names a user, which would override ssh_user: give the host "
		      "name only and the user in ssh_user",
		      escs(e, sval(h->val)));
}

static void *add_tunnel(struct loader *l, const yaml_node_t *key)
{
	struct cfg *c = l->cfg;
	struct cfg_tunnel *t;
	char e[ESC_BUF];

	if (!cfg_name_valid(sval(key)))
		diag(l, key->start_mark,
		     "invalid tunnel name '%s': use letters, digits, '.', '_', '-' (at most 64)",
		     escs(e, sval(key)));
	else if (strcmp(sval(key), "host-daemon") == 0 ||
		 strcmp(sval(key), "container-daemon") == 0)
		/* Their files in the state directory belong to the daemons. */
		diag(l, key->start_mark, "tunnel name '%s' is reserved for devbridge's daemons",
		     sval(key));
	t = realloc(c->tunnels, (c->n_tunnels + 1) * sizeof *t);
	if (!t)
		return oom(l);
	c->tunnels = t;
	t += c->n_tunnels++;
	*t = (struct cfg_tunnel){
	    .mark = cmark(l, key->start_mark),
	    .direction = TUNNEL_REVERSE,
	    .health = {.kind = HEALTH_NONE, .interval_s = 30, .timeout_s = 5},
	    .max_attempts = 0,
	    .backoff_initial = 5,
	    .backoff_max = 60,
	    .stable_s = 30,
	    .server_alive_interval = 15,
	    .server_alive_count_max = 3,
	};
	t->name = strdup(sval(key));
	return t->name ? t : oom(l);
}

static void load_tunnels(struct loader *l, yaml_node_t *map, void *base)
{
	(void)base;
	walk_named(l, map, "tunnel", &tunnel_schema, add_tunnel);
}

/* ---- actors ----------------------------------------------------------- */

static void *add_actor(struct loader *l, const yaml_node_t *key)
{
	struct cfg *c = l->cfg;
	struct cfg_actor *a = realloc(c->actors, (c->n_actors + 1) * sizeof *a);

	if (!a)
		return oom(l);
	c->actors = a;
	a += c->n_actors++;
	*a = (struct cfg_actor){.cls = ACTOR_HUMAN, .mark = cmark(l, key->start_mark)};
	a->name = strdup(sval(key));
	return a->name ? a : oom(l);
}

static void load_actors(struct loader *l, yaml_node_t *map, void *base)
{
	(void)base;
	walk_named(l, map, "actor", &actor_schema, add_actor);
}

/* ---- bridge:, profiles:, services: (devx) ------------------------------ */

static void bridge_post(struct loader *l, const struct schema *s, const struct seen *seen,
			yaml_mark_t at, void *base)
{
	struct cfg_bridge *b = base;

	(void)l;
	(void)at;
	if (!b)
		return;
	/* An empty list in a profile still replaces the top-level one. */
	b->targets_set = seen_of(s, seen, "targets")->key != NULL;
	b->intercepts_set = seen_of(s, seen, "intercepts")->key != NULL;
}

static void profile_post(struct loader *l, const struct schema *s, const struct seen *seen,
			 yaml_mark_t at, void *base)
{
	struct cfg_profile *p = base;

	(void)l;
	(void)at;
	if (p)
		p->has_bridge = seen_of(s, seen, "bridge")->key != NULL;
}

static void *add_profile(struct loader *l, const yaml_node_t *key)
{
	struct cfg *c = l->cfg;
	struct cfg_profile *p = realloc(c->profiles, (c->n_profiles + 1) * sizeof *p);

	if (!p)
		return oom(l);
	c->profiles = p;
	p += c->n_profiles++;
	*p = (struct cfg_profile){.mark = cmark(l, key->start_mark)};
	p->name = strdup(sval(key));
	return p->name ? p : oom(l);
}

static void load_profiles(struct loader *l, yaml_node_t *map, void *base)
{
	(void)base;
	walk_named(l, map, "profile", &profile_schema, add_profile);
}

static void service_post(struct loader *l, const struct schema *s, const struct seen *seen,
			 yaml_mark_t at, void *base)
{
	const struct seen *rt = seen_of(s, seen, "runtime");
	const struct seen *bt = seen_of(s, seen, "bridge_target");
	const struct seen *bi = seen_of(s, seen, "bridge_intercept");
	bool bridge =
	    rt->val && rt->val->type == YAML_SCALAR_NODE && strcmp(sval(rt->val), "bridge") == 0;
	struct cfg_service *svc = base;

	if (svc) {
		if (!rt->key)
			svc->runtime = SERVICE_HOST;
		svc->has_target = bt->key != NULL;
		svc->has_intercept = bi->key != NULL;
		if (svc->has_target)
			svc->target.mark = cmark(l, bt->key->start_mark);
		if (svc->has_intercept)
			svc->intercept.mark = cmark(l, bi->key->start_mark);
	}
	if (bridge && !bt->key && !bi->key)
		pdiag(l, at, "runtime: bridge needs 'bridge_target' or 'bridge_intercept'");
	else if (bridge && bt->key && bi->key)
		pdiag(l, bi->key->start_mark,
		      "'bridge_target' and 'bridge_intercept' are mutually exclusive");
	else if (!bridge && (bt->key || bi->key))
		pdiag(l, (bt->key ? bt : bi)->key->start_mark, "'%s' needs runtime: bridge",
		      bt->key ? "bridge_target" : "bridge_intercept");
}

static void load_services(struct loader *l, yaml_node_t *seq, void *base)
{
	char e[ESC_BUF];

	(void)base;
	walk_list(l, seq, &service_schema, &l->cfg->services, sizeof(struct cfg_service),
		  AT(struct cfg_service, mark));
	if (seq->type != YAML_SEQUENCE_NODE)
		return;
	/* Names key the dependency graph and the state files. */
	for (yaml_node_item_t *i = seq->data.sequence.items.start; i < seq->data.sequence.items.top;
	     i++) {
		const yaml_node_t *a = map_get(l, node(l, *i), "name");
		if (!a || a->type != YAML_SCALAR_NODE)
			continue;
		for (yaml_node_item_t *j = seq->data.sequence.items.start; j < i; j++) {
			const yaml_node_t *b = map_get(l, node(l, *j), "name");
			if (b && b->type == YAML_SCALAR_NODE && strcmp(sval(a), sval(b)) == 0) {
				size_t old =
				    path_index(l, (size_t)(i - seq->data.sequence.items.start));
				path_push(l, "name");
				pdiag(l, a->start_mark,
				      "duplicate service name '%s' (first at line %zu)",
				      escs(e, sval(a)), b->start_mark.line + 1);
				path_pop(l, old);
				break;
			}
		}
	}
}

/* ---- top level ------------------------------------------------------- */

static void top_post(struct loader *l, const struct schema *s, const struct seen *seen,
		     yaml_mark_t at, void *base)
{
	struct cfg *c = base;

	(void)l;
	(void)at;
	c->has_bridge = seen_of(s, seen, "bridge")->key != NULL;
	c->has_services = seen_of(s, seen, "services")->key != NULL;
	c->has_container = seen_of(s, seen, "container")->key != NULL;
}

/* ---- the schema (SPEC §3) --------------------------------------------- */

/* Each table lists the keys valid at one level, in the order a "did you
 * mean" or an "expected one of" names them; see struct field for the
 * columns.  Enum names are in the order of config.h's enums. */
/* clang-format off */
static const char *const dir_names[] = {"reverse", "local", NULL};
static const char *const class_names[] = {"human", "automation", NULL};
static const char *const mode_names[] = {"steal", "mirror", NULL};
static const char *const runtime_names[] = {"bridge", "host", NULL};
static const char *const condition_names[] = {
	"service_started", "service_healthy", "service_completed_successfully", NULL};

static const struct field health_fields[] = {
	STR("url", F_HTTP, HEA(url), HEA(mark)),
	FUNC("tcp", load_health_tcp),
	INT("interval_seconds", 1, DAY, HEA(interval_s)),
	INT("timeout_seconds", 1, DAY, HEA(timeout_s)),
};
SCHEMA(health_schema, health_fields, health_post);

static const struct field reconnect_fields[] = {
	INT("max_attempts", 0, INT_MAX, TUN(max_attempts)),
	NUM("backoff_initial", TUN(backoff_initial)),
	NUM("backoff_max", TUN(backoff_max)),
	NUM("stable_seconds", TUN(stable_s)),
};
SCHEMA(reconnect_schema, reconnect_fields, reconnect_post);

static const struct field tunnel_fields[] = {
	STR("host", F_REQ | F_WORD, TUN(host), 0),
	PORT("remote_port", F_REQ, TUN(remote_port), TUN(remote_port_mark)),
	PORT("local_port", F_REQ, TUN(local_port), TUN(local_port_mark)),
	STR("ssh_user", F_REQ | F_WORD, TUN(ssh_user), 0),
	PATH("ssh_key", F_REQ, TUN(ssh_key), TUN(ssh_key_mark)),
	STR("actor", F_REQ, TUN(actor), TUN(actor_mark)),
	PORT("ssh_port", 0, TUN(ssh_port), 0),
	ENUM("direction", 0, dir_names, TUN(direction)),
	STR("remote_host", F_WORD, TUN(remote_host), 0),
	MAP("health_check", &health_schema, TUN(health)),
	MAP("reconnect", &reconnect_schema, SAME_BASE),
	INT("server_alive_interval", 1, 3600, TUN(server_alive_interval)),
	INT("server_alive_count_max", 1, 1000, TUN(server_alive_count_max)),
	PATH("ssh_config", 0, TUN(ssh_config), TUN(ssh_config_mark)),
	FUNC("ssh_options", load_ssh_options),
};
SCHEMA(tunnel_schema, tunnel_fields, tunnel_post);

static const struct field actor_fields[] = {
	ENUM("class", F_REQ, class_names, ACT(cls)),
	STR("description", F_EMPTY, ACT(description), 0),
};
SCHEMA(actor_schema, actor_fields, NULL);

#define TGT(m) AT(struct cfg_target, m)
#define ICP(m) AT(struct cfg_intercept, m)
#define BRG(m) AT(struct cfg_bridge, m)
_Static_assert(sizeof(enum intercept_mode) == sizeof(int), "K_ENUM stores an int");
/* LISTOF's `T *items; size_t n;` layout, as list_grow reads it. */
_Static_assert(offsetof(struct cfg_bridge, n_targets) ==
		   offsetof(struct cfg_bridge, targets) + sizeof(void *), "targets, n_targets");
_Static_assert(offsetof(struct cfg_bridge, n_intercepts) ==
		   offsetof(struct cfg_bridge, intercepts) + sizeof(void *), "intercepts, n_intercepts");

static const struct field target_fields[] = {
	STR("service", F_REQ, TGT(service), 0),
	PORT("port", F_REQ, TGT(port), 0),
	STR("namespace", 0, TGT(namespace), 0),
	PORT("local_port", 0, TGT(local_port), 0),
};
SCHEMA(target_schema, target_fields, NULL);

static const struct field intercept_fields[] = {
	STR("service", F_REQ, ICP(service), 0),
	PORT("port", 0, ICP(port), 0),
	ENUM("mode", 0, mode_names, ICP(mode)),
	PORT("local_port", 0, ICP(local_port), 0),
	STR("namespace", 0, ICP(namespace), 0),
};
SCHEMA(intercept_schema, intercept_fields, NULL);

static const struct field bridge_fields[] = {
	PATHMAX("kubeconfig", CFG_PATH_MAX, BRG(kubeconfig)),
	STRMAX("context", CFG_CONTEXT_MAX, BRG(context)),
	STR("namespace", 0, BRG(namespace), 0),
	STR("agent_image", F_EMPTY, BRG(agent_image), 0),
	LISTOF("targets", &target_schema, BRG(targets), struct cfg_target),
	LISTOF("intercepts", &intercept_schema, BRG(intercepts), struct cfg_intercept),
};
SCHEMA(bridge_schema, bridge_fields, bridge_post);

static const struct field profile_fields[] = {
	MAP("bridge", &bridge_schema, AT(struct cfg_profile, bridge)),
};
SCHEMA(profile_schema, profile_fields, profile_post);

#define SVC(m) AT(struct cfg_service, m)
#define DEP(m) AT(struct cfg_dep, m)
_Static_assert(sizeof(enum service_runtime) == sizeof(int) &&
		   sizeof(enum dep_condition) == sizeof(int), "K_ENUM stores an int");
_Static_assert(offsetof(struct cfg, n_services) == offsetof(struct cfg, services) + sizeof(void *),
	       "services, n_services");
_Static_assert(offsetof(struct cfg_service, n_depends_on) ==
		   offsetof(struct cfg_service, depends_on) + sizeof(void *), "depends_on, n");
_Static_assert(offsetof(struct cfg_service, n_command) ==
			   offsetof(struct cfg_service, command) + offsetof(struct cmd_slot, n) &&
		   offsetof(struct cfg_service, command_shell) ==
			   offsetof(struct cfg_service, command) + offsetof(struct cmd_slot, shell),
	       "command, n_command, command_shell as struct cmd_slot");

static const struct field depends_fields[] = {
	STR("name", F_REQ, DEP(name), 0),
	ENUM("condition", 0, condition_names, DEP(condition)),
};
SCHEMA(depends_schema, depends_fields, NULL);

static const struct field service_fields[] = {
	STR("name", F_REQ | F_NAME, SVC(name), 0),
	ENUM("runtime", 0, runtime_names, SVC(runtime)),
	MAP("bridge_target", &target_schema, SVC(target)),
	MAP("bridge_intercept", &intercept_schema, SVC(intercept)),
	{.key = "command", .kind = K_CMD, .at = SVC(command)},
	PORT("port", 0, SVC(port), 0),
	LISTOF("depends_on", &depends_schema, SVC(depends_on), struct cfg_dep),
	OF("env", K_STRMAP),
	OF("healthcheck", K_ANYMAP),
};
SCHEMA(service_schema, service_fields, service_post);

#define SF(m) AT(struct cfg_container, socket_forwarding.m)
#define CT(m) AT(struct cfg_container, m)
static const struct field socket_fields[] = {
	{.key = "watch_paths", .kind = K_STRS, .at = SF(watch_paths) - CT(socket_forwarding) + 1},
	INT("scan_interval_ms", 1, DAY * 1000LL, SF(scan_interval_ms) - CT(socket_forwarding) + 1),
	INT("max_socket_forwards", 0, 1024, SF(max_socket_forwards) - CT(socket_forwarding) + 1),
	STR("container_path_prefix", 0, SF(container_path_prefix) - CT(socket_forwarding) + 1, 0),
};
SCHEMA(socket_schema, socket_fields, NULL);

static const struct field container_fields[] = {
	PORT("control_port", 0, CT(control_port), 0),
	PORT("data_port", 0, CT(data_port), 0),
	STR("bind_addr", F_WORD, CT(bind_addr), 0),
	INT("scan_interval_ms", 1, DAY * 1000LL, CT(scan_interval_ms)),
	{.key = "include_ports", .kind = K_PORTS, .at = CT(include_ports)},
	{.key = "exclude_ports", .kind = K_PORTS, .at = CT(exclude_ports)},
	STR("exclude_process", 0, CT(exclude_process), 0),
	{.key = "no_auth", .kind = K_BOOL, .at = CT(no_auth)},
	STR("browser_cmd", 0, CT(browser_cmd), 0),
	MAP("socket_forwarding", &socket_schema, CT(socket_forwarding)),
};
SCHEMA(container_schema, container_fields, NULL);

static const struct field top_fields[] = {
	FUNC("tunnels", load_tunnels),
	FUNC("actors", load_actors),
	PATH("catalog_path", 0, AT(struct cfg, catalog_path), 0),
	MAP("bridge", &bridge_schema, AT(struct cfg, bridge)),
	FUNC("profiles", load_profiles),
	FUNC("services", load_services),
	MAP("container", &container_schema, AT(struct cfg, container)),
};
SCHEMA(top_schema, top_fields, top_post);
/* clang-format on */

/* ---- loading ---------------------------------------------------------- */

/* ssh_port 0 means "ssh's default", which is 22 unless ssh_config says
 * otherwise; treat the two as the same port rather than miss a clash. */
static int eff_ssh_port(const struct cfg_tunnel *t)
{
	return t->ssh_port ? t->ssh_port : 22;
}

/* Checks across entries, once the whole file is read (actors may follow
 * the tunnels that name them). */
static void check_tunnels(struct loader *l)
{
	const struct cfg *c = l->cfg;
	char e[ESC_BUF], e2[ESC_BUF], e3[ESC_BUF];

	for (size_t i = 0; i < c->n_tunnels; i++) {
		const struct cfg_tunnel *t = &c->tunnels[i];

		if (t->actor && !cfg_find_actor(c, t->actor)) {
			const char *best = NULL;
			int bestd = INT_MAX;

			for (size_t j = 0; j < c->n_actors; j++)
				suggest_step(t->actor, c->actors[j].name, &best, &bestd);
			if (best)
				diag_at(l, t->actor_mark,
					"tunnels.%s.actor: unknown actor '%s' (did you mean '%s'?)",
					escs(e, t->name), escs(e2, t->actor), escs(e3, best));
			else
				diag_at(l, t->actor_mark,
					"tunnels.%s.actor: unknown actor '%s': define it under "
					"'actors:'",
					escs(e, t->name), escs(e2, t->actor));
		}
		for (size_t j = 0; j < i; j++) {
			const struct cfg_tunnel *u = &c->tunnels[j];

			if (t->direction == TUNNEL_LOCAL && u->direction == TUNNEL_LOCAL &&
			    t->local_port && t->local_port == u->local_port) {
				diag_at(l, t->local_port_mark,
					"tunnels.%s.local_port: port %d is already used by tunnel "
					"'%s' (line %d)",
					escs(e, t->name), t->local_port, escs(e2, u->name),
					u->local_port_mark.line);
				break;
			}
			if (t->direction == TUNNEL_REVERSE && u->direction == TUNNEL_REVERSE &&
			    t->host && u->host && t->remote_port &&
			    t->remote_port == u->remote_port && strcasecmp(t->host, u->host) == 0 &&
			    eff_ssh_port(t) == eff_ssh_port(u)) {
				diag_at(
				    l, t->remote_port_mark,
				    "tunnels.%s.remote_port: port %d on %s is already forwarded "
				    "by tunnel '%s' (line %d)",
				    escs(e, t->name), t->remote_port, escs(e2, t->host),
				    escs(e3, u->name), u->remote_port_mark.line);
				break;
			}
		}
	}
}

static int fill_defaults(struct cfg *c)
{
	for (size_t i = 0; i < c->n_tunnels; i++)
		if (!c->tunnels[i].remote_host &&
		    !(c->tunnels[i].remote_host = strdup("127.0.0.1")))
			return -ENOMEM;
	return 0;
}

static void load_root(struct loader *l, yaml_node_t *root)
{
	char g[ESC_BUF + 2];

	/* An empty file, one of only comments, or a lone "---". */
	if (!root || is_null(root))
		return;
	if (root->type != YAML_MAPPING_NODE) {
		diag(l, root->start_mark,
		     "expected a mapping of sections (tunnels:, actors:, bridge:, ...) at the top "
		     "level, got %s",
		     got(g, root));
		return;
	}
	walk_map(l, root, &top_schema, l->cfg, NULL, root->start_mark);
	check_tunnels(l);
}

/* libyaml's reader errors (bad UTF-8, control characters) carry a byte
 * offset, not a mark. */
static yaml_mark_t mark_at_offset(const char *buf, size_t len, size_t off)
{
	yaml_mark_t m = {0};

	for (size_t i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			m.line++;
			m.column = 0;
		} else {
			m.column++;
		}
	}
	m.index = off;
	return m;
}

static void syntax_error(struct loader *l, const yaml_parser_t *p, const char *buf, size_t len)
{
	const char *problem = p->problem ? p->problem : "cannot parse";

	if (p->error == YAML_MEMORY_ERROR) {
		l->err = -ENOMEM;
	} else if (p->error == YAML_READER_ERROR) {
		yaml_mark_t m = mark_at_offset(buf, len, p->problem_offset);
		if (p->problem_value >= 0)
			diag(l, m, "invalid YAML: %s (byte 0x%02x)", problem, p->problem_value);
		else
			diag(l, m, "invalid YAML: %s", problem);
	} else if (p->context) {
		diag(l, p->problem_mark, "invalid YAML: %s (%s at line %zu, column %zu)", problem,
		     p->context, p->context_mark.line + 1, p->context_mark.column + 1);
	} else {
		diag(l, p->problem_mark, "invalid YAML: %s", problem);
	}
}

/* A pass over libyaml's events before the document is built, refusing
 * what must not reach the loader: nesting deeper than MAX_DEPTH (libyaml's
 * scanner re-checks every open flow level for each token, and building
 * the document of "[[[[..." 100,000 levels deep took a minute before the
 * walk could refuse it; here it stops at level MAX_DEPTH + 1) and YAML 1.1
 * merge keys, which libyaml does not implement: "<<: *base" would be read
 * as a key named "<<".  Syntax errors are reported as the loader would.
 * Returns 0, or -EINVAL with diagnostics. */
static int prescan(struct loader *l, const char *buf, size_t len)
{
	struct frame {
		bool map, key; /* a mapping whose next node is a key */
	} st[MAX_DEPTH];
	yaml_parser_t parser;
	size_t open = 0, before = l->ndiags;
	bool done = false;

	if (!yaml_parser_initialize(&parser)) {
		l->err = -ENOMEM;
		return -EINVAL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	while (!done) {
		yaml_event_t ev;

		if (!yaml_parser_parse(&parser, &ev)) {
			syntax_error(l, &parser, buf, len);
			break;
		}
		switch (ev.type) {
		case YAML_SCALAR_EVENT:
		case YAML_ALIAS_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			/* A node at depth open + 1, as bound() counts. */
			if (open >= MAX_DEPTH) {
				diag(l, ev.start_mark, "nested more than %d levels deep",
				     MAX_DEPTH);
				done = true;
				break;
			}
			if (open && st[open - 1].map) {
				if (st[open - 1].key && ev.type == YAML_SCALAR_EVENT &&
				    ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
				    strcmp((const char *)ev.data.scalar.value, "<<") == 0)
					diag(l, ev.start_mark,
					     "merge keys ('<<') are not supported: write the keys "
					     "out (a whole mapping can still be an alias: key: "
					     "*anchor)");
				st[open - 1].key = !st[open - 1].key;
			}
			if (ev.type == YAML_SEQUENCE_START_EVENT ||
			    ev.type == YAML_MAPPING_START_EVENT)
				st[open++] =
				    (struct frame){ev.type == YAML_MAPPING_START_EVENT, true};
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (open)
				open--;
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return l->ndiags > before || l->err ? -EINVAL : 0;
}

int cfg_load_buf(const char *name, const char *buf, size_t len, struct cfg **ret,
		 struct cfg_diags *diags)
{
	struct loader l = {.diags = diags};
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	size_t visited = 0;
	int r;

	if (!buf) {
		buf = "";
		len = 0;
	}
	l.cfg = calloc(1, sizeof *l.cfg);
	if (!l.cfg)
		return -ENOMEM;
	l.cfg->container.socket_forwarding.max_socket_forwards = -1; /* 0 is a value */
	l.cfg->path = strdup(name ? name : "<config>");
	if (!l.cfg->path || !yaml_parser_initialize(&parser)) {
		cfg_free(l.cfg);
		return -ENOMEM;
	}
	if (prescan(&l, buf, len) < 0) {
		yaml_parser_delete(&parser);
		goto out;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		syntax_error(&l, &parser, buf, len);
		yaml_parser_delete(&parser);
		goto out;
	}
	l.doc = &doc;
	/* A second document would be silently ignored; say so instead. */
	if (!yaml_parser_load(&parser, &extra)) {
		syntax_error(&l, &parser, buf, len);
	} else {
		yaml_node_t *root2 = yaml_document_get_root_node(&extra);
		if (root2)
			diag(&l, root2->start_mark,
			     "a second YAML document; the configuration is one document");
		yaml_document_delete(&extra);
	}
	yaml_parser_delete(&parser);
	if (!l.ndiags && !l.err && bound(&l, yaml_document_get_root_node(&doc), 1, &visited) == 0)
		load_root(&l, yaml_document_get_root_node(&doc));
	yaml_document_delete(&doc);
	if (!l.err && !l.ndiags)
		l.err = fill_defaults(l.cfg);
out:
	r = l.err ? l.err : l.ndiags ? -EINVAL : 0;
	if (r < 0) {
		cfg_free(l.cfg);
		return r;
	}
	*ret = l.cfg;
	return 0;
}

/* Whole file into memory, up to MAX_FILE bytes. */
static int read_file(const char *path, char **ret, size_t *ret_len)
{
	size_t len = 0, cap = 0;
	char *buf = NULL;
	struct stat st;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		r = -EISDIR;
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *nb;
			if (cap > MAX_FILE) {
				r = -EFBIG;
				goto out;
			}
			cap = cap ? cap * 2 : 4096;
			nb = realloc(buf, cap);
			if (!nb) {
				r = -ENOMEM;
				goto out;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > MAX_FILE)
		r = -EFBIG;
out:
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

int cfg_load(const char *path, struct cfg **ret, struct cfg_diags *diags)
{
	size_t len = 0;
	char *buf = NULL;
	int r;

	r = read_file(path, &buf, &len);
	if (r < 0) {
		int q;
		if (r == -EFBIG)
			q = diags_add(diags, path, 0, 0, "cannot read: larger than %d bytes",
				      MAX_FILE);
		else
			q = diags_add(diags, path, 0, 0, "cannot read: %s", strerror(-r));
		return q < 0 ? q : r;
	}
	r = cfg_load_buf(path, buf, len, ret, diags);
	free(buf);
	return r;
}

/* ---- after loading ---------------------------------------------------- */

static int check_tunnel_files(const struct cfg *cfg, const struct cfg_tunnel *t,
			      struct cfg_diags *d, size_t *bad)
{
	const struct cfg_mark *m = &t->ssh_key_mark;
	const char *file = m->file ? m->file : cfg->path;
	char e[ESC_BUF];
	struct stat st;
	int r = 0;

	if (t->ssh_key) {
		mode_t mode;
		const char *k = t->ssh_key;

		if (stat(k, &st) < 0) {
			r = diags_add(d, file, m->line, m->col, "tunnels.%s.ssh_key: %s: %s",
				      escs(e, t->name), k, strerror(errno));
			++*bad;
		} else if (!S_ISREG(st.st_mode)) {
			r = diags_add(d, file, m->line, m->col,
				      "tunnels.%s.ssh_key: %s is not a regular file",
				      escs(e, t->name), k);
			++*bad;
		} else if (access(k, R_OK) < 0) {
			r = diags_add(d, file, m->line, m->col, "tunnels.%s.ssh_key: %s: %s",
				      escs(e, t->name), k, strerror(errno));
			++*bad;
		} else if ((mode = st.st_mode & 07777) & 077) {
			/* ssh itself refuses such a key ("UNPROTECTED PRIVATE
			 * KEY FILE"), but only in its log, after a connect. */
			r = diags_add(d, file, m->line, m->col,
				      "tunnels.%s.ssh_key: %s is %s by group or others (mode "
				      "%04o); chmod 600 it",
				      escs(e, t->name), k, mode & 044 ? "readable" : "accessible",
				      (unsigned)mode);
			++*bad;
		}
	}
	if (r == 0 && t->ssh_config && access(t->ssh_config, R_OK) < 0) {
		m = &t->ssh_config_mark;
		r = diags_add(d, m->file ? m->file : cfg->path, m->line, m->col,
			      "tunnels.%s.ssh_config: %s: %s", escs(e, t->name), t->ssh_config,
			      strerror(errno));
		++*bad;
	}
	return r;
}

int cfg_check_files(const struct cfg *cfg, const struct cfg_tunnel *only, struct cfg_diags *diags)
{
	size_t bad = 0;
	int r = 0;

	if (!cfg)
		return -EINVAL;
	if (only)
		r = check_tunnel_files(cfg, only, diags, &bad);
	else
		for (size_t i = 0; i < cfg->n_tunnels && r == 0; i++)
			r = check_tunnel_files(cfg, &cfg->tunnels[i], diags, &bad);
	return r < 0 ? r : bad ? -EINVAL : 0;
}

static void free_bridge(struct cfg_bridge *b)
{
	free(b->kubeconfig);
	free(b->context);
	free(b->namespace);
	free(b->agent_image);
	for (size_t i = 0; i < b->n_targets; i++) {
		free(b->targets[i].service);
		free(b->targets[i].namespace);
	}
	free(b->targets);
	for (size_t i = 0; i < b->n_intercepts; i++) {
		free(b->intercepts[i].service);
		free(b->intercepts[i].namespace);
	}
	free(b->intercepts);
}

void cfg_free(struct cfg *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_tunnels; i++) {
		struct cfg_tunnel *t = &cfg->tunnels[i];
		free(t->name);
		free(t->host);
		free(t->ssh_user);
		free(t->ssh_key);
		free(t->remote_host);
		free(t->actor);
		free(t->health.url);
		free(t->health.tcp_host);
		free(t->ssh_config);
		for (size_t j = 0; j < t->n_ssh_options; j++) {
			free(t->ssh_options[j].key);
			free(t->ssh_options[j].value);
		}
		free(t->ssh_options);
	}
	free(cfg->tunnels);
	for (size_t i = 0; i < cfg->n_actors; i++) {
		free(cfg->actors[i].name);
		free(cfg->actors[i].description);
	}
	free(cfg->actors);
	free(cfg->catalog_path);
	struct cfg_container *ct = &cfg->container;
	free(ct->bind_addr);
	free(ct->include_ports);
	free(ct->exclude_ports);
	free(ct->exclude_process);
	free(ct->browser_cmd);
	for (size_t i = 0; i < ct->socket_forwarding.n_watch_paths; i++)
		free(ct->socket_forwarding.watch_paths[i]);
	free(ct->socket_forwarding.watch_paths);
	free(ct->socket_forwarding.container_path_prefix);
	free_bridge(&cfg->bridge);
	for (size_t i = 0; i < cfg->n_services; i++) {
		struct cfg_service *v = &cfg->services[i];
		free(v->name);
		free(v->target.service);
		free(v->target.namespace);
		free(v->intercept.service);
		free(v->intercept.namespace);
		for (size_t j = 0; j < v->n_command; j++)
			free(v->command[j]);
		free(v->command);
		for (size_t j = 0; j < v->n_depends_on; j++)
			free(v->depends_on[j].name);
		free(v->depends_on);
	}
	free(cfg->services);
	for (size_t i = 0; i < cfg->n_profiles; i++) {
		free(cfg->profiles[i].name);
		free_bridge(&cfg->profiles[i].bridge);
	}
	free(cfg->profiles);
	free(cfg->path);
	free(cfg);
}

const struct cfg_tunnel *cfg_find_tunnel(const struct cfg *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_tunnels; i++)
		if (cfg->tunnels[i].name && strcmp(cfg->tunnels[i].name, name) == 0)
			return &cfg->tunnels[i];
	return NULL;
}

const struct cfg_actor *cfg_find_actor(const struct cfg *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_actors; i++)
		if (cfg->actors[i].name && strcmp(cfg->actors[i].name, name) == 0)
			return &cfg->actors[i];
	return NULL;
}

const struct cfg_profile *cfg_find_profile(const struct cfg *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_profiles; i++)
		if (cfg->profiles[i].name && strcmp(cfg->profiles[i].name, name) == 0)
			return &cfg->profiles[i];
	return NULL;
}

int cfg_bridge_resolve(const struct cfg *cfg, const char *profile, struct cfg_bridge *out)
{
	const struct cfg_profile *p = NULL;
	const struct cfg_bridge *o;
	struct cfg_bridge b;

	if (!cfg || !out)
		return -EINVAL;
	if (profile && !(p = cfg_find_profile(cfg, profile)))
		return -ENOENT;
	b = cfg->bridge;
	if (p) {
		o = &p->bridge;
		if (o->kubeconfig)
			b.kubeconfig = o->kubeconfig;
		if (o->context)
			b.context = o->context;
		if (o->namespace)
			b.namespace = o->namespace;
		if (o->agent_image)
			b.agent_image = o->agent_image;
		if (o->targets_set) {
			b.targets = o->targets;
			b.n_targets = o->n_targets;
			b.targets_set = true;
		}
		if (o->intercepts_set) {
			b.intercepts = o->intercepts;
			b.n_intercepts = o->n_intercepts;
			b.intercepts_set = true;
		}
	}
	*out = b;
	return 0;
}

const char *cfg_profile_suggest(const struct cfg *cfg, const char *name)
{
	const char *best = NULL;
	int bestd = INT_MAX;

	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_profiles; i++)
		if (cfg->profiles[i].name)
			suggest_step(name, cfg->profiles[i].name, &best, &bestd);
	return best;
}

/* ---- paths and names -------------------------------------------------- */

static int take_path(const char *p, char **ret_path)
{
	char *s = cfg_expand_home(p);

	if (!s)
		return -ENOMEM;
	*ret_path = s;
	return 0;
}

int cfg_resolve_path(const char *opt, char **ret_path)
{
	static const char *const envs[] = {"DEVBRIDGE_CONFIG", "BRIDGE_CONFIG"};
	static const char *const here[] = {"devbridge.yaml", "devx.yaml"};
	static const char *const home[] = {"~/.config/devbridge/config.yaml",
					   "~/.config/bridge/tunnels.yaml"};

	if (opt)
		return take_path(opt, ret_path);
	for (size_t i = 0; i < ARRAY_SIZE(envs); i++) {
		const char *v = getenv(envs[i]);
		if (v && *v)
			return take_path(v, ret_path);
	}
	for (size_t i = 0; i < ARRAY_SIZE(here); i++) {
		char *cwd, *p;
		int n;

		if (access(here[i], F_OK) < 0)
			continue;
		/* Absolute, so that a supervisor started from elsewhere (or
		 * that chdir()s) still finds the same file. */
		cwd = getcwd(NULL, 0);
		n = cwd ? asprintf(&p, "%s/%s", strcmp(cwd, "/") ? cwd : "", here[i])
			: asprintf(&p, "./%s", here[i]);
		free(cwd);
		if (n < 0)
			return -ENOMEM;
		*ret_path = p;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(home); i++) {
		char *p = cfg_expand_home(home[i]);

		if (!p)
			return -ENOMEM;
		if (p[0] != '~' && access(p, F_OK) == 0) {
			*ret_path = p;
			return 0;
		}
		free(p);
	}
	return -ENOENT;
}

static bool is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool cfg_name_valid(const char *name)
{
	size_t i;

	if (!name || !(is_alnum(name[0]) || name[0] == '_'))
		return false;
	for (i = 1; name[i]; i++)
		if (i >= 64 || !(is_alnum(name[i]) || strchr("._-", name[i])))
			return false;
	return true;
}

char *cfg_expand_home(const char *path)
{
	const char *home = getenv("HOME");
	size_t hl;
	char *r;

	if (!path)
		return NULL;
	if (path[0] != '~' || (path[1] != '/' && path[1] != '\0') || !home || !*home)
		return strdup(path);
	hl = strlen(home);
	while (hl > 0 && home[hl - 1] == '/')
		hl--;
	if (asprintf(&r, "%.*s%s", (int)hl, home, path[1] ? path + 1 : hl ? "" : "/") < 0)
		return NULL;
	return r;
}

int cfg_edit_distance(const char *a, const char *b, int cap)
{
	size_t la, lb;
	int *row, d;

	a = a ? a : "";
	b = b ? b : "";
	cap = cap < 0 ? 0 : cap >= INT_MAX ? INT_MAX - 1 : cap;
	la = strlen(a);
	lb = strlen(b);
	if ((la > lb ? la - lb : lb - la) > (size_t)cap)
		return cap + 1;
	if (lb >= (size_t)INT_MAX || !(row = malloc((lb + 1) * sizeof *row)))
		return cap + 1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (int)j;
	/* One row of the Wagner-Fischer table; stop once a whole row is
	 * past the cap, since no later row can come back under it. */
	for (size_t i = 1; i <= la; i++) {
		int prev = row[0], best;

		row[0] = best = (int)(i > (size_t)cap ? (size_t)cap + 1 : i);
		for (size_t j = 1; j <= lb; j++) {
			int up = row[j], v = prev + (a[i - 1] != b[j - 1]);

			if (up + 1 < v)
				v = up + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			prev = up;
			row[j] = v;
			if (v < best)
				best = v;
		}
		if (best > cap) {
			free(row);
			return cap + 1;
		}
	}
	d = row[lb];
	free(row);
	return d > cap ? cap + 1 : d;
}

/* ---- after loading: names, warnings ----------------------------------- */

const char *cfg_direction_name(enum tunnel_dir d)
{
	return d == TUNNEL_LOCAL ? dir_names[1] : dir_names[0];
}

const char *cfg_class_name(enum actor_class c)
{
	return c == ACTOR_AUTOMATION ? class_names[1] : class_names[0];
}

const char *cfg_mode_name(enum intercept_mode m)
{
	return m == INTERCEPT_MIRROR ? mode_names[1] : mode_names[0];
}

const char *cfg_runtime_name(enum service_runtime r)
{
	return r == SERVICE_HOST ? runtime_names[1] : runtime_names[0];
}

const char *cfg_condition_name(enum dep_condition c)
{
	return (unsigned)c < 3 ? condition_names[c] : condition_names[0];
}

const struct cfg_service *cfg_find_service(const struct cfg *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_services; i++)
		if (cfg->services[i].name && strcmp(cfg->services[i].name, name) == 0)
			return &cfg->services[i];
	return NULL;
}

int cfg_diag_add(struct cfg_diags *d, struct cfg_mark m, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = diags_vadd(d, m.file ? m.file : "?", m.line, m.col, fmt, ap);
	va_end(ap);
	return r;
}

/* "http://HOST:PORT/PATH": the host (brackets of an IPv6 literal kept),
 * the port (the scheme's default when absent) and where the path starts.
 * false when the URL has no usable authority. */
static bool url_split(const char *url, char *host, size_t hn, int *port, const char **path)
{
	size_t skip = strncasecmp(url, "http://", 7) == 0    ? 7
		      : strncasecmp(url, "https://", 8) == 0 ? 8
							     : 0;
	const char *a = url + skip, *end = a + strcspn(a, "/?#"), *at;
	long long p = skip == 7 ? 80 : 443;

	if (!skip)
		return false;
	/* user:password@ */
	while ((at = memchr(a, '@', (size_t)(end - a))))
		a = at + 1;
	const char *colon = NULL;
	if (*a == '[') {
		const char *rb = memchr(a, ']', (size_t)(end - a));
		if (!rb)
			return false;
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(a, ':', (size_t)(end - a));
	}
	const char *hend = colon ? colon : end;
	if (hend == a || (size_t)(hend - a) >= hn)
		return false;
	if (colon && !parse_int(colon + 1, (size_t)(end - colon - 1), 1, 65535, &p))
		return false;
	memcpy(host, a, (size_t)(hend - a));
	host[hend - a] = '\0';
	*port = (int)p;
	*path = end;
	return true;
}

/* This machine, as a health check's host would name it. */
static bool is_loopback_name(const char *h)
{
	struct in_addr a;

	if (inet_pton(AF_INET, h, &a) == 1)
		return (ntohl(a.s_addr) >> 24) == 127;
	return strcasecmp(h, "localhost") == 0 || strcmp(h, "::1") == 0 || strcmp(h, "[::1]") == 0;
}

size_t cfg_lint(const struct cfg *cfg, struct cfg_diags *w)
{
	size_t n = 0;
	char e[ESC_BUF];

	for (size_t i = 0; cfg && i < cfg->n_tunnels; i++) {
		const struct cfg_tunnel *t = &cfg->tunnels[i];
		const struct cfg_health *h = &t->health;
		char host[256];
		int port = 0;
		const char *path = "";

		/* A reverse tunnel's remote_port listens on the remote host;
		 * the check runs here, so 127.0.0.1:remote_port is whatever
		 * happens to listen on this machine (seed 003's own example,
		 * the mistake its notes warn about). */
		if (t->direction != TUNNEL_REVERSE || t->remote_port == t->local_port)
			continue;
		if (h->kind == HEALTH_HTTP && url_split(h->url, host, sizeof host, &port, &path) &&
		    is_loopback_name(host) && port == t->remote_port) {
			cfg_diag_add(w, h->mark,
				     "tunnels.%s.health_check.url: port %d is the tunnel's "
				     "remote_port, which listens on %s; health checks run on this "
				     "machine, where the service is local_port %d: did you mean "
				     "%.*s//%s:%d%s?",
				     escs(e, t->name), port, t->host, t->local_port,
				     (int)strcspn(h->url, "/"), h->url, host, t->local_port, path);
			n++;
		} else if (h->kind == HEALTH_TCP && h->tcp_host && is_loopback_name(h->tcp_host) &&
			   h->tcp_port == t->remote_port) {
			cfg_diag_add(w, h->mark,
				     "tunnels.%s.health_check.tcp: port %d is the tunnel's "
				     "remote_port, which listens on %s; health checks run on this "
				     "machine, where the service is local_port %d: did you mean "
				     "tcp: %d?",
				     escs(e, t->name), h->tcp_port, t->host, t->local_port,
				     t->local_port);
			n++;
		}
	}
	return n;
}
