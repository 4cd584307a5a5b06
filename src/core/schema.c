/* schema.c - see schema.h.
 *
 * libyaml's document API hands us the whole node graph with aliases already
 * resolved into shared nodes.  That graph is walked twice: once to bound it
 * (a few hundred bytes of aliases can expand to billions of nodes, and an
 * anchor that refers to itself makes a cycle), then against the tables,
 * which say, per key, what type the value has and where it goes in the
 * struct being filled.
 */
#include "core/schema.h"
#include "core/num.h"
#include "core/util.h"

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

#define ESC_MAX 60 /* bytes of user text quoted in a message */
_Static_assert(SCHEMA_ESC_BUF == ESC_MAX * 4 + 4, "SCHEMA_ESC_BUF");

struct schema_loader {
	yaml_document_t *doc;
	const char *file; /* marks point here (schema_doc.file) */
	struct cfg_diags *diags;
	size_t ndiags;	/* produced by this load, kept or dropped */
	int err;	/* -ENOMEM once an allocation failed */
	char path[256]; /* where the walk is: "tunnels.x.remote_port" */
	size_t plen;
};

/* ---- diagnostics ------------------------------------------------------ */

static int diags_add(struct cfg_diags *d, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int diags_add(struct cfg_diags *d, const char *file, int line, int col, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = cfg_diag_addv(d, (struct cfg_mark){file, line, col}, fmt, ap);
	va_end(ap);
	return r;
}

static int to_int(size_t v)
{
	return v >= INT_MAX ? INT_MAX : (int)v;
}

struct cfg_mark schema_mark(const struct schema_loader *l, yaml_mark_t m)
{
	return (struct cfg_mark){l->file, to_int(m.line + 1), to_int(m.column + 1)};
}

/* Report at `m`, prefixed with the walk's path when `with_path`.  Returns
 * -EINVAL so that a checker can `return schema_pdiag(...)`. */
static int vdiag(struct schema_loader *l, struct cfg_mark m, bool with_path, const char *fmt,
		 va_list ap) __attribute__((format(printf, 4, 0)));

static int vdiag(struct schema_loader *l, struct cfg_mark m, bool with_path, const char *fmt,
		 va_list ap)
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

int schema_diag_at(struct schema_loader *l, struct cfg_mark m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(l, m, false, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int schema_diag(struct schema_loader *l, yaml_mark_t m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(l, schema_mark(l, m), false, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int schema_pdiag(struct schema_loader *l, yaml_mark_t m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(l, schema_mark(l, m), true, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

void *schema_oom(struct schema_loader *l)
{
	l->err = -ENOMEM;
	return NULL;
}

/* Render untrusted text for a message: quotes and control bytes escaped
 * (the message ends up on a terminal), long text cut.  `buf` holds SCHEMA_ESC_BUF. */
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

const char *schema_esc(char *buf, const char *s)
{
	return esc(buf, s, strlen(s));
}

/* ---- the walk's path, for messages ----------------------------------- */

/* Append to the path, cut at the buffer's end; returns the old length for
 * path_pop. */
static size_t path_append(struct schema_loader *l, const char *s)
{
	size_t old = l->plen, n = strlen(s), room = sizeof l->path - 1 - old;

	if (n > room)
		n = room;
	memcpy(l->path + old, s, n);
	l->plen = old + n;
	l->path[l->plen] = '\0';
	return old;
}

size_t schema_path_push(struct schema_loader *l, const char *key)
{
	char e[SCHEMA_ESC_BUF + 1] = ".";

	schema_esc(e + 1, key);
	return path_append(l, l->plen ? e : e + 1);
}

size_t schema_path_index(struct schema_loader *l, size_t i)
{
	char b[32];

	snprintf(b, sizeof b, "[%zu]", i);
	return path_append(l, b);
}

void schema_path_pop(struct schema_loader *l, size_t old)
{
	l->plen = old;
	l->path[old] = '\0';
}

const char *schema_path(const struct schema_loader *l)
{
	return l->path;
}

/* ---- nodes ------------------------------------------------------------ */

yaml_node_t *schema_node(const struct schema_loader *l, int idx)
{
	return yaml_document_get_node(l->doc, idx);
}

const char *schema_sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

bool schema_is_plain(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* YAML's null: an empty value, "~" or "null", unquoted. */
bool schema_is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

	if (!schema_is_plain(n))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(nulls); i++)
		if (strcmp(schema_sval(n), nulls[i]) == 0)
			return true;
	return false;
}

/* A "\0" escape in a quoted scalar would silently cut the C string. */
bool schema_has_nul(const yaml_node_t *n)
{
	return strlen(schema_sval(n)) != n->data.scalar.length;
}

/* What a node is, for "expected X, got Y". */
static const char *got(char *buf, const yaml_node_t *n)
{
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (schema_is_plain(n) && !*schema_sval(n))
		return "nothing";
	if (schema_is_null(n))
		return "null";
	buf[0] = '"';
	esc(buf + 1, schema_sval(n), n->data.scalar.length);
	strcat(buf, "\"");
	return buf;
}

int schema_type_error(struct schema_loader *l, const yaml_node_t *n, const char *what)
{
	char g[SCHEMA_ESC_BUF + 2];

	return schema_pdiag(l, n->start_mark, "expected %s, got %s", what, got(g, n));
}

/* The key of pair `p` in `map`, or NULL after reporting why it is unusable:
 * keys are strings, and a key given twice is an error rather than YAML's
 * silent "last one wins". */
const char *schema_map_key(struct schema_loader *l, const yaml_node_t *map,
			   const yaml_node_pair_t *p)
{
	const yaml_node_t *k = schema_node(l, p->key);
	char e[SCHEMA_ESC_BUF];

	if (k->type != YAML_SCALAR_NODE) {
		char g[SCHEMA_ESC_BUF + 2];
		schema_pdiag(l, k->start_mark, "expected a string key, got %s", got(g, k));
		return NULL;
	}
	if (schema_has_nul(k)) {
		schema_pdiag(l, k->start_mark, "key '%s' contains a NUL byte",
			     esc(e, schema_sval(k), k->data.scalar.length));
		return NULL;
	}
	for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
		const yaml_node_t *k2 = schema_node(l, q->key);
		if (k2->type == YAML_SCALAR_NODE &&
		    k2->data.scalar.length == k->data.scalar.length &&
		    strcmp(schema_sval(k2), schema_sval(k)) == 0) {
			schema_pdiag(l, k->start_mark, "duplicate key '%s' (first at line %zu)",
				     schema_esc(e, schema_sval(k)), k2->start_mark.line + 1);
			return NULL;
		}
	}
	return schema_sval(k);
}

/* The value of `key` in mapping `map`, or NULL. */
yaml_node_t *schema_map_get(const struct schema_loader *l, const yaml_node_t *map, const char *key)
{
	if (map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const yaml_node_t *k = schema_node(l, p->key);
		if (k->type == YAML_SCALAR_NODE && strcmp(schema_sval(k), key) == 0)
			return schema_node(l, p->value);
	}
	return NULL;
}

/* Walk the graph as the schema walk will, aliases expanded, and refuse it
 * when it is too big or too deep: afterwards every walk is bounded. */
static int bound(struct schema_loader *l, const yaml_node_t *n, int depth, size_t *visited)
{
	int r;

	if (!n)
		return 0;
	if (++*visited > SCHEMA_MAX_NODES)
		return schema_diag(l, n->start_mark,
				   "the document expands to more than %d nodes (too many aliases?)",
				   SCHEMA_MAX_NODES);
	if (depth > SCHEMA_MAX_DEPTH)
		return schema_diag(l, n->start_mark,
				   "nested more than %d levels deep (or an alias refers to itself)",
				   SCHEMA_MAX_DEPTH);
	if (n->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *i = n->data.sequence.items.start;
		     i < n->data.sequence.items.top; i++)
			if ((r = bound(l, schema_node(l, *i), depth + 1, visited)) < 0)
				return r;
	} else if (n->type == YAML_MAPPING_NODE) {
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     p < n->data.mapping.pairs.top; p++) {
			if ((r = bound(l, schema_node(l, p->key), depth + 1, visited)) < 0)
				return r;
			if ((r = bound(l, schema_node(l, p->value), depth + 1, visited)) < 0)
				return r;
		}
	}
	return 0;
}

/* ---- scalars ---------------------------------------------------------- */

/* A plain decimal integer in [min, max] (core/num.h's rules: no sign, no
 * leading zeros, which YAML 1.1 reads as octal, no "0x", "1_000" or
 * trailing junk). */
bool schema_parse_int(const char *s, size_t len, long long min, long long max, long long *ret)
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
static int number_error(struct schema_loader *l, const yaml_node_t *n, const char *what)
{
	char g[SCHEMA_ESC_BUF + 2];
	double d;

	if (n->type == YAML_SCALAR_NODE && !schema_is_plain(n) && parse_num(schema_sval(n), &d))
		return schema_pdiag(l, n->start_mark, "expected %s, got %s (quoted, so a string)",
				    what, got(g, n));
	return schema_type_error(l, n, what);
}

static int get_int(struct schema_loader *l, const yaml_node_t *n, long long min, long long max,
		   long long *ret)
{
	char what[80];
	long long v;

	if (max >= INT_MAX)
		snprintf(what, sizeof what, "an integer >= %lld", min);
	else
		snprintf(what, sizeof what, "an integer %lld-%lld", min, max);
	if (!schema_is_plain(n) ||
	    !schema_parse_int(schema_sval(n), n->data.scalar.length, min, max, &v))
		return number_error(l, n, what);
	*ret = v;
	return 0;
}

/* Durations and backoffs: positive, at most a day. */
static int get_num(struct schema_loader *l, const yaml_node_t *n, double *ret)
{
	char what[64];
	double v;

	snprintf(what, sizeof what, "a number > 0 and <= %d", SCHEMA_DAY);
	if (!schema_is_plain(n) || !parse_num(schema_sval(n), &v) || !(v > 0) || v > SCHEMA_DAY)
		return number_error(l, n, what);
	*ret = v;
	return 0;
}

static int get_bool(struct schema_loader *l, const yaml_node_t *n, bool *ret)
{
	static const char *const words[] = {"false", "no", "true", "yes"};

	if (schema_is_plain(n))
		for (size_t i = 0; i < ARRAY_SIZE(words); i++)
			if (strcasecmp(schema_sval(n), words[i]) == 0) {
				*ret = i >= 2;
				return 0;
			}
	return schema_type_error(l, n, "true or false");
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

static int get_enum(struct schema_loader *l, const yaml_node_t *n, const char *const *names,
		    int *ret)
{
	char what[160];

	if (n->type == YAML_SCALAR_NODE && !schema_has_nul(n))
		for (int i = 0; names[i]; i++)
			if (strcmp(schema_sval(n), names[i]) == 0) {
				*ret = i;
				return 0;
			}
	enum_desc(what, sizeof what, names);
	return schema_type_error(l, n, what);
}

/* Words that end up as one ssh argument (host, user): a leading '-' would
 * make ssh read them as an option. */
bool schema_word_ok(const char *s)
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

	return skip && s[skip] && schema_word_ok(s + skip);
}

int schema_get_str(struct schema_loader *l, const yaml_node_t *n, unsigned flags, const char **ret)
{
	char e[SCHEMA_ESC_BUF];
	const char *s;

	if (n->type != YAML_SCALAR_NODE || (schema_is_null(n) && !(flags & F_EMPTY)))
		return schema_type_error(l, n, "a string");
	if (schema_has_nul(n))
		return schema_pdiag(l, n->start_mark, "contains a NUL byte");
	s = schema_is_null(n) ? "" : schema_sval(n);
	if (!*s && !(flags & F_EMPTY))
		return schema_type_error(l, n, "a non-empty string");
	if ((flags & F_WORD) && !schema_word_ok(s))
		return schema_pdiag(l, n->start_mark,
				    "expected a name without spaces that does not start with '-', "
				    "got \"%s\"",
				    schema_esc(e, s));
	if ((flags & F_HTTP) && !url_ok(s))
		return schema_type_error(l, n, "an http:// or https:// URL");
	if ((flags & F_NAME) && !cfg_name_valid(s))
		return schema_pdiag(
		    l, n->start_mark,
		    "invalid name '%s': use letters, digits, '.', '_', '-' (at most 64)",
		    schema_esc(e, s));
	*ret = s;
	return 0;
}

/* A relative path in a config file means relative to that file, not to
 * wherever the command happens to run (a supervisor runs from elsewhere). */
static char *resolve_path(const struct schema_loader *l, const char *s)
{
	char *v = expand_home(s);
	const char *name = l->file, *slash = strrchr(name, '/');
	if (!v || v[0] == '/' || !slash)
		return v;
	char *joined = NULL;
	if (asprintf(&joined, "%.*s/%s", (int)(slash - name), name, v) < 0)
		joined = NULL;
	free(v);
	return joined;
}

static void store_str(struct schema_loader *l, char **slot, const char *s, bool path)
{
	char *v = path ? resolve_path(l, s) : strdup(s);

	if (!v) {
		schema_oom(l);
		return;
	}
	free(*slot);
	*slot = v;
}

/* ---- schemas ---------------------------------------------------------- */

static void *slot(void *base, size_t at)
{
	return base && at ? (char *)base + at - 1 : NULL;
}

const struct schema_seen *schema_seen(const struct schema *s, const struct schema_seen *seen,
				      const char *key)
{
	static const struct schema_seen none;

	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->fields[i].key, key) == 0)
			return &seen[i];
	return &none;
}

/* Did-you-mean: the closest candidate within max(2, len/3) edits. */
void schema_suggest(const char *word, const char *cand, const char **best, int *bestd)
{
	size_t third = strlen(word) / 3;
	int cap = third <= 2 ? 2 : third >= 16 ? 16 : (int)third;
	int d = edit_distance(word, cand, cap);

	if (d <= cap && d < *bestd) {
		*best = cand;
		*bestd = d;
	}
}

static void unknown_key(struct schema_loader *l, const yaml_node_t *k, const struct schema *s)
{
	const char *best = NULL;
	int bestd = INT_MAX;
	char e[SCHEMA_ESC_BUF], list[512];
	size_t o = 0;

	for (size_t i = 0; i < s->n; i++)
		schema_suggest(schema_sval(k), s->fields[i].key, &best, &bestd);
	if (best) {
		schema_pdiag(l, k->start_mark, "unknown key '%s' (did you mean '%s'?)",
			     schema_esc(e, schema_sval(k)), best);
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
	schema_pdiag(l, k->start_mark, "unknown key '%s' (expected one of: %s)",
		     schema_esc(e, schema_sval(k)), list);
}

/* One more zeroed element of `size` bytes at the end of the array whose
 * pointer is at `out` and whose size_t count follows that pointer.  The
 * capacity is the count rounded up to a power of two, so a long list is
 * not copied once per item. */
static void *list_grow(struct schema_loader *l, void *out, size_t size)
{
	size_t n;
	char *items;

	memcpy(&items, out, sizeof items);
	memcpy(&n, (char *)out + sizeof(void *), sizeof n);
	if ((n & (n - 1)) == 0) {
		size_t cap = n ? n * 2 : 1;
		char *v = cap <= SIZE_MAX / size ? realloc(items, cap * size) : NULL;
		if (!v)
			return schema_oom(l);
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
void schema_walk_list(struct schema_loader *l, yaml_node_t *seq, const struct schema *s, void *out,
		      size_t size, size_t mark_at)
{
	size_t i = 0;

	if (schema_is_null(seq))
		return;
	if (seq->type != YAML_SEQUENCE_NODE) {
		schema_type_error(l, seq, "a list");
		return;
	}
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     it < seq->data.sequence.items.top; it++, i++) {
		yaml_node_t *item = schema_node(l, *it);
		void *base = NULL;
		struct cfg_mark *m;
		size_t old;

		if (out && !(base = list_grow(l, out, size)))
			return;
		if ((m = slot(base, mark_at)))
			*m = schema_mark(l, item->start_mark);
		old = schema_path_index(l, i);
		schema_walk_map(l, item, s, base, NULL, item->start_mark);
		schema_path_pop(l, old);
	}
}

/* K_NAMED: a mapping of names to entries of f->schema (tunnels:,
 * actors:, profiles:).  Stored, when `out` is given (see list_grow), as one
 * element per name in file order, its mark the name's, made by f->init
 * before the entry's keys are read; without, validated only. */
static void walk_named(struct schema_loader *l, yaml_node_t *map, const struct schema_field *f,
		       void *out)
{
	const char *what = f->what ? f->what : "entry";

	if (schema_is_null(map))
		return;
	if (map->type != YAML_MAPPING_NODE) {
		char desc[64];
		snprintf(desc, sizeof desc, "a mapping of %s names to %ss", what, what);
		schema_type_error(l, map, desc);
		return;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const char *name = schema_map_key(l, map, p);
		yaml_node_t *kn = schema_node(l, p->key);
		char ctx[SCHEMA_ESC_BUF + 32], e[SCHEMA_ESC_BUF];
		struct cfg_mark *m;
		void *base = NULL;
		size_t old;

		if (!name)
			continue;
		if (out && !(base = list_grow(l, out, f->elem_size)))
			return;
		if ((m = slot(base, f->elem_mark_at)))
			*m = schema_mark(l, kn->start_mark);
		if (f->init)
			f->init(l, kn, base);
		if (l->err)
			return;
		snprintf(ctx, sizeof ctx, "%s '%s'", what, schema_esc(e, name));
		old = schema_path_push(l, name);
		schema_walk_map(l, schema_node(l, p->value), f->schema, base, ctx, kn->start_mark);
		schema_path_pop(l, old);
	}
}

/* K_STRS, and the list form of K_CMD. */
/* A list of strings; stored, when `out` is given, as a NULL-terminated
 * array whose length is also counted in *out_n. */
static void check_strs(struct schema_loader *l, yaml_node_t *seq, char ***out, size_t *out_n)
{
	const char *s;
	size_t i = 0;

	if (schema_is_null(seq))
		return;
	if (seq->type != YAML_SEQUENCE_NODE) {
		schema_type_error(l, seq, "a list of strings");
		return;
	}
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     it < seq->data.sequence.items.top; it++, i++) {
		size_t old = schema_path_index(l, i);
		if (schema_get_str(l, schema_node(l, *it), 0, &s) == 0 && out) {
			char **v = realloc(*out, (*out_n + 2) * sizeof *v);
			char *copy = strdup(s);
			if (!v || !copy) {
				free(copy);
				if (v)
					*out = v;
				schema_oom(l);
			} else {
				*out = v;
				v[(*out_n)++] = copy;
				v[*out_n] = NULL;
			}
		}
		schema_path_pop(l, old);
	}
}

/* A command: a list (argv) or one string (for a shell), see struct
 * schema_cmd. */
static void check_cmd(struct schema_loader *l, yaml_node_t *n, struct schema_cmd *out)
{
	const char *s;

	if (n->type == YAML_SEQUENCE_NODE) {
		check_strs(l, n, out ? &out->argv : NULL, out ? &out->n : NULL);
	} else if (n->type == YAML_SCALAR_NODE && !schema_is_null(n)) {
		if (schema_get_str(l, n, 0, &s) < 0 || !out)
			return;
		char **v = calloc(2, sizeof *v);
		if (!v || !(v[0] = strdup(s))) {
			free(v);
			schema_oom(l);
			return;
		}
		out->argv = v;
		out->n = 1;
		out->shell = true;
	} else {
		schema_type_error(l, n, "a string or a list of strings");
	}
}

/* dbr's include/exclude ports: 8080 or "9000-9010". */
/* Append `item` to a comma-separated spec in *out. */
static void spec_append(struct schema_loader *l, char **out, const char *item)
{
	size_t n = *out ? strlen(*out) : 0, k = strlen(item);
	char *v = realloc(*out, n + k + 2);
	if (!v) {
		schema_oom(l);
		return;
	}
	if (n)
		v[n++] = ',';
	memcpy(v + n, item, k + 1);
	*out = v;
}

/* A list of ports and "low-high" ranges; stored, when `out` is given, as
 * one spec string "8000-8100,9000" (what the port filter parses). */
static void check_ports(struct schema_loader *l, yaml_node_t *seq, char **out)
{
	static const char what[] = "a port 1-65535 or a \"low-high\" range";
	size_t i = 0;

	if (schema_is_null(seq))
		return;
	if (seq->type != YAML_SEQUENCE_NODE) {
		schema_type_error(l, seq, "a list of ports");
		return;
	}
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     it < seq->data.sequence.items.top; it++, i++) {
		const yaml_node_t *n = schema_node(l, *it);
		size_t old = schema_path_index(l, i);
		char buf[16], *dash;
		long long lo, hi;

		if (schema_is_plain(n) &&
		    schema_parse_int(schema_sval(n), n->data.scalar.length, 0, LLONG_MAX, &lo)) {
			if (lo < 1 || lo > 65535)
				schema_type_error(l, n, what);
			else if (out)
				spec_append(l, out, schema_sval(n));
		} else if (n->type != YAML_SCALAR_NODE || n->data.scalar.length >= sizeof buf) {
			schema_type_error(l, n, what);
		} else {
			memcpy(buf, schema_sval(n), n->data.scalar.length + 1);
			dash = strchr(buf, '-');
			if (dash)
				*dash = '\0';
			if (!dash || !schema_parse_int(buf, strlen(buf), 1, 65535, &lo) ||
			    !schema_parse_int(dash + 1, strlen(dash + 1), 1, 65535, &hi) || lo > hi)
				schema_type_error(l, n, what);
			else if (out)
				spec_append(l, out, schema_sval(n));
		}
		schema_path_pop(l, old);
	}
}

/* K_STRMAP (env) and K_ANYMAP (healthcheck): keys still unique strings. */
static void check_anymap(struct schema_loader *l, yaml_node_t *map, bool scalars)
{
	if (schema_is_null(map))
		return;
	if (map->type != YAML_MAPPING_NODE) {
		schema_type_error(l, map, "a mapping");
		return;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const char *key = schema_map_key(l, map, p), *s;
		yaml_node_t *v = schema_node(l, p->value);

		if (!key || !scalars)
			continue;
		size_t old = schema_path_push(l, key);
		schema_get_str(l, v, F_EMPTY, &s);
		schema_path_pop(l, old);
	}
}

static void check_field(struct schema_loader *l, const struct schema_field *f, yaml_node_t *key,
			yaml_node_t *val, void *base)
{
	void *p = slot(base, f->at);
	struct cfg_mark *m = slot(base, f->mark_at);
	const char *s = NULL;
	long long ll = 0;
	double d = 0;
	bool b = false;
	int i = 0;

	if (m)
		*m = schema_mark(l, val->start_mark);
	switch (f->kind) {
	case K_STR:
	case K_PATH:
		if (schema_get_str(l, val, f->flags, &s) < 0)
			break;
		if (f->max && strlen(s) > (size_t)f->max) {
			schema_pdiag(
			    l, val->start_mark,
			    "expected at most %lld bytes, got %zu (longer values are refused, "
			    "not cut)",
			    f->max, strlen(s));
			break;
		}
		if (!p)
			break;
		store_str(l, p, s, f->kind == K_PATH);
		if (f->max && *(char **)p && strlen(*(char **)p) > (size_t)f->max)
			schema_pdiag(
			    l, val->start_mark,
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
		/* The enums of the world headers list their values in names[] order;
		 * an enum without negative values is int-sized here. */
		if (get_enum(l, val, f->names, &i) == 0 && p)
			*(int *)p = i;
		break;
	case K_MAP:
		schema_walk_map(l, val, f->schema, p, NULL, key->start_mark);
		break;
	case K_LIST:
		schema_walk_list(l, val, f->schema, p, f->elem_size, f->elem_mark_at);
		break;
	case K_NAMED:
		walk_named(l, val, f, p);
		break;
	case K_STRS:
		/* Stored lists are followed by their count (struct schema_cmd). */
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
		f->fn(l, val, f->at ? p : base);
		break;
	}
}

/* Check `map` against `s`, storing into `base` (NULL: validate only).
 * Missing required keys are reported at `at` as "CTX: missing required
 * field 'k'", CTX defaulting to the walk's path.  A null value (an empty
 * "key:") counts as an empty mapping. */
void schema_walk_map(struct schema_loader *l, yaml_node_t *map, const struct schema *s, void *base,
		     const char *ctx, yaml_mark_t at)
{
	struct schema_seen seen[SCHEMA_MAX_FIELDS] = {{0}};

	if (!schema_is_null(map) && map->type != YAML_MAPPING_NODE) {
		schema_type_error(l, map, "a mapping");
		return;
	}
	if (map->type == YAML_MAPPING_NODE)
		for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
		     p < map->data.mapping.pairs.top; p++) {
			const char *k = schema_map_key(l, map, p);
			yaml_node_t *kn = schema_node(l, p->key), *vn = schema_node(l, p->value);
			size_t i, old;

			if (!k)
				continue;
			for (i = 0; i < s->n && strcmp(s->fields[i].key, k) != 0; i++)
				;
			if (i == s->n) {
				unknown_key(l, kn, s);
				continue;
			}
			seen[i] = (struct schema_seen){kn, vn};
			old = schema_path_push(l, k);
			check_field(l, &s->fields[i], kn, vn, base);
			schema_path_pop(l, old);
		}
	for (size_t i = 0; i < s->n; i++) {
		if (!(s->fields[i].flags & F_REQ) || seen[i].key)
			continue;
		/* At the top level of a file (a catalog's) there is no path. */
		if (ctx || l->plen)
			schema_diag(l, at, "%s: missing required field '%s'", ctx ? ctx : l->path,
				    s->fields[i].key);
		else
			schema_diag(l, at, "missing required field '%s'", s->fields[i].key);
	}
	if (s->post)
		s->post(l, s, seen, at, base);
}

/* ---- loading ---------------------------------------------------------- */

static void load_root(struct schema_loader *l, const struct schema_doc *doc, yaml_node_t *root,
		      void *base)
{
	char g[SCHEMA_ESC_BUF + 2];

	/* An empty file, one of only comments, or a lone "---". */
	if (!root || schema_is_null(root))
		return;
	if (root->type != YAML_MAPPING_NODE) {
		schema_diag(l, root->start_mark, "expected %s at the top level, got %s",
			    doc->top_what ? doc->top_what : "a mapping", got(g, root));
		return;
	}
	schema_walk_map(l, root, doc->top, base, NULL, root->start_mark);
	if (doc->check)
		doc->check(l, base);
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

static void syntax_error(struct schema_loader *l, const yaml_parser_t *p, const char *buf,
			 size_t len)
{
	const char *problem = p->problem ? p->problem : "cannot parse";

	if (p->error == YAML_MEMORY_ERROR) {
		l->err = -ENOMEM;
	} else if (p->error == YAML_READER_ERROR) {
		yaml_mark_t m = mark_at_offset(buf, len, p->problem_offset);
		if (p->problem_value >= 0)
			schema_diag(l, m, "invalid YAML: %s (byte 0x%02x)", problem,
				    p->problem_value);
		else
			schema_diag(l, m, "invalid YAML: %s", problem);
	} else if (p->context) {
		schema_diag(l, p->problem_mark, "invalid YAML: %s (%s at line %zu, column %zu)",
			    problem, p->context, p->context_mark.line + 1,
			    p->context_mark.column + 1);
	} else {
		schema_diag(l, p->problem_mark, "invalid YAML: %s", problem);
	}
}

/* A pass over libyaml's events before the document is built, refusing
 * what must not reach the loader: nesting deeper than SCHEMA_MAX_DEPTH (libyaml's
 * scanner re-checks every open flow level for each token, and building
 * the document of "[[[[..." 100,000 levels deep took a minute before the
 * walk could refuse it; here it stops at level SCHEMA_MAX_DEPTH + 1) and YAML 1.1
 * merge keys, which libyaml does not implement: "<<: *base" would be read
 * as a key named "<<".  Syntax errors are reported as the loader would.
 * Returns 0, or -EINVAL with diagnostics. */
static int prescan(struct schema_loader *l, const char *buf, size_t len)
{
	struct frame {
		bool map, key; /* a mapping whose next node is a key */
	} st[SCHEMA_MAX_DEPTH];
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
			if (open >= SCHEMA_MAX_DEPTH) {
				schema_diag(l, ev.start_mark, "nested more than %d levels deep",
					    SCHEMA_MAX_DEPTH);
				done = true;
				break;
			}
			if (open && st[open - 1].map) {
				if (st[open - 1].key && ev.type == YAML_SCALAR_EVENT &&
				    ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
				    strcmp((const char *)ev.data.scalar.value, "<<") == 0)
					schema_diag(
					    l, ev.start_mark,
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

int schema_load(const struct schema_doc *doc, const char *buf, size_t len, void *base,
		struct cfg_diags *diags)
{
	struct schema_loader l = {.diags = diags, .file = doc->file};
	yaml_parser_t parser;
	yaml_document_t ydoc, extra;
	size_t visited = 0;

	if (!buf) {
		buf = "";
		len = 0;
	}
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	if (prescan(&l, buf, len) < 0) {
		yaml_parser_delete(&parser);
		goto out;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &ydoc)) {
		syntax_error(&l, &parser, buf, len);
		yaml_parser_delete(&parser);
		goto out;
	}
	l.doc = &ydoc;
	/* A second document would be silently ignored; say so instead. */
	if (!yaml_parser_load(&parser, &extra)) {
		syntax_error(&l, &parser, buf, len);
	} else {
		yaml_node_t *root2 = yaml_document_get_root_node(&extra);
		if (root2)
			schema_diag(&l, root2->start_mark,
				    "a second YAML document; the configuration is one document");
		yaml_document_delete(&extra);
	}
	yaml_parser_delete(&parser);
	if (!l.ndiags && !l.err && bound(&l, yaml_document_get_root_node(&ydoc), 1, &visited) == 0)
		load_root(&l, doc, yaml_document_get_root_node(&ydoc), base);
	yaml_document_delete(&ydoc);
out:
	return l.err ? l.err : l.ndiags ? -EINVAL : 0;
}

/* Whole file into memory, up to SCHEMA_MAX_FILE bytes; closes fd. */
static int slurp_fd(int fd, char **ret, size_t *ret_len)
{
	size_t len = 0, cap = 0;
	char *buf = NULL;
	struct stat st;
	int r = 0;

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
			if (cap > SCHEMA_MAX_FILE) {
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
	if (len > SCHEMA_MAX_FILE)
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

static int read_diag(int r, const char *path, struct cfg_diags *diags)
{
	int q;

	if (r == -EFBIG)
		q = diags_add(diags, path, 0, 0, "cannot read: larger than %d bytes",
			      SCHEMA_MAX_FILE);
	else
		q = diags_add(diags, path, 0, 0, "cannot read: %s", strerror(-r));
	return q < 0 ? q : r;
}

int schema_read_fd(int fd, const char *path, char **ret, size_t *ret_len, struct cfg_diags *diags)
{
	int r = slurp_fd(fd, ret, ret_len);

	return r < 0 ? read_diag(r, path, diags) : 0;
}

int schema_read_file(const char *path, char **ret, size_t *ret_len, struct cfg_diags *diags)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	return fd < 0 ? read_diag(-errno, path, diags)
		      : schema_read_fd(fd, path, ret, ret_len, diags);
}

/* ---- names ------------------------------------------------------------ */

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
