/* schema.h - the configuration engine: YAML text -> typed structs, driven
 * by tables, with file:line:col diagnostics.
 *
 * A schema is a table of fields: per key, what type its value has and
 * where in the struct being filled it goes (and its mark).  The engine
 * knows no section of devbridge's file: each world declares its own tables
 * (ssh/ssh_config.c, k8s/k8s_config.c, container/container_config.c) and
 * app/config.c composes them into the top level.  Validation does not stop
 * at the first problem: one `config check` shows every mistake in a file,
 * each with its line and column and what was expected there; an unknown
 * key gets a "did you mean" when a known one is close.
 *
 * The document is bounded before any table sees it: nesting deeper than
 * SCHEMA_MAX_DEPTH is refused on libyaml's events (before the document is
 * built), aliases are expanded at most SCHEMA_MAX_NODES nodes, YAML 1.1
 * merge keys ('<<') and a second document are refused.
 */
#ifndef DEVBRIDGE_CORE_SCHEMA_H
#define DEVBRIDGE_CORE_SCHEMA_H

#include "core/diag.h"

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

/* A valid bridge name: [A-Za-z0-9_][A-Za-z0-9._-]{0,63}.  Keeps names
 * from escaping the state directory (F_NAME checks it). */
bool cfg_name_valid(const char *name);

/* ---- tables ----------------------------------------------------------- */

#define SCHEMA_MAX_FIELDS 16	    /* keys of the largest schema */
#define SCHEMA_MAX_NODES  100000    /* nodes visited with aliases expanded */
#define SCHEMA_MAX_DEPTH  64	    /* nesting of mappings and lists */
#define SCHEMA_MAX_FILE	  (4 << 20) /* bytes; a config is a few KiB */
#define SCHEMA_DAY	  86400	    /* seconds: the bound of durations */
/* Room for schema_esc's rendering of user text in a message. */
#define SCHEMA_ESC_BUF (60 * 4 + 4)

enum schema_kind {
	K_STR,	  /* a string */
	K_PATH,	  /* a string, "~/" expanded, relative to the file */
	K_INT,	  /* a plain decimal integer in [min, max] */
	K_NUM,	  /* a plain decimal number > 0 and <= SCHEMA_DAY */
	K_BOOL,	  /* true/false/yes/no */
	K_ENUM,	  /* one of names[]; stores the index as an int */
	K_MAP,	  /* a mapping checked against schema */
	K_LIST,	  /* a list of mappings checked against schema */
	K_NAMED,  /* a mapping of names to mappings checked against schema */
	K_STRS,	  /* a list of strings */
	K_PORTS,  /* a list of ports or "low-high" ranges */
	K_CMD,	  /* a string or a list of strings */
	K_STRMAP, /* a mapping of strings to scalars */
	K_ANYMAP, /* a mapping, contents not ours to judge */
	K_FUNC,	  /* fn does the checking */
};

enum {
	F_REQ = 1 << 0,	  /* required */
	F_EMPTY = 1 << 1, /* a string that may be empty (or null) */
	F_WORD = 1 << 2,  /* a string passed to a program as one argument */
	F_HTTP = 1 << 3,  /* an http:// or https:// URL */
	F_NAME = 1 << 4,  /* a bridge name, see cfg_name_valid */
};

/* One load in progress: where the walk is, the diagnostics so far. */
struct schema_loader;

/* The key and value nodes a mapping gave each field (NULL: absent). */
struct schema_seen {
	yaml_node_t *key, *val;
};

struct schema;
/* K_FUNC: check `val` and store into `base` (NULL: validate only). */
typedef void schema_field_fn(struct schema_loader *l, yaml_node_t *val, void *base);
/* Cross-key checks of one mapping once its keys are read; `at` is where
 * the mapping is (or its key), `base` as for schema_field_fn. */
typedef void schema_post_fn(struct schema_loader *l, const struct schema *s,
			    const struct schema_seen *seen, yaml_mark_t at, void *base);
/* K_NAMED: a new entry for the name `key` (a string): check the name,
 * store it and the entry's defaults into `elem` (NULL: validate only). */
typedef void schema_init_fn(struct schema_loader *l, const yaml_node_t *key, void *elem);

struct schema_field {
	const char *key;
	enum schema_kind kind;
	unsigned flags;
	long long min, max; /* K_INT; max: bytes for K_STR and K_PATH (0 = any) */
	/* Where the value (and the value's mark) go: 1 + an offset into the
	 * struct being filled (AT()), 0 for nowhere.  For K_MAP, where the
	 * nested struct is (SAME_BASE: the same struct, as reconnect's keys
	 * live in the tunnel).  For K_FUNC, 0 gives fn the struct being
	 * filled, an offset the member there (FUNCAT). */
	size_t at, mark_at;
	const struct schema *schema; /* K_MAP, K_LIST, K_NAMED */
	const char *const *names;    /* K_ENUM, NULL-terminated */
	schema_field_fn *fn;	     /* K_FUNC */
	/* K_LIST and K_NAMED stored (at != 0): the size of one element and
	 * where in it the item's mark goes (AT() into the element). */
	size_t elem_size, elem_mark_at;
	const char *what;     /* K_NAMED: "tunnel", for messages */
	schema_init_fn *init; /* K_NAMED */
};

struct schema {
	const struct schema_field *fields;
	size_t n;
	schema_post_fn *post; /* cross-key checks once the keys are read */
};

/* `static SCHEMA(x, x_fields, post);` or, exported, `SCHEMA(...)` with an
 * extern declaration in the world's header. */
#define SCHEMA(name, fields, post)                                                                 \
	const struct schema name = {fields, sizeof(fields) / sizeof((fields)[0]), post};           \
	_Static_assert(sizeof(fields) / sizeof((fields)[0]) <= SCHEMA_MAX_FIELDS,                  \
		       "raise SCHEMA_MAX_FIELDS")

#define AT(type, member) (offsetof(type, member) + 1)
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
/* Named entries, stored as LISTOF in file order; each T's mark is its
 * key's; `in` (a schema_init_fn) makes each entry. */
#define NAMED(k, wh, s, a, T, in) {.key = k, .kind = K_NAMED, .schema = s, .at = a, \
				   .elem_size = sizeof(T), .elem_mark_at = AT(T, mark), \
				   .what = wh, .init = in}
#define FUNC(k, f)        {.key = k, .kind = K_FUNC, .fn = f}
#define FUNCAT(k, f, a)   {.key = k, .kind = K_FUNC, .fn = f, .at = a}
#define OF(k, kd)         {.key = k, .kind = kd}
/* clang-format on */

/* What K_CMD stores at its AT(): the argv (NULL-terminated; for a string,
 * one element) and its count, and whether it was one string (for a
 * shell).  K_STRS stores the first two. */
struct schema_cmd {
	char **argv;
	size_t n;
	bool shell;
};

/* ---- loading ---------------------------------------------------------- */

/* What a document is. */
struct schema_doc {
	/* The name in marks and messages; relative K_PATH values resolve
	 * against its directory.  Marks stored into base point here, so it
	 * must live as long as they do. */
	const char *file;
	const struct schema *top; /* the root mapping */
	/* "a mapping of sections (...)": "expected %s at the top level". */
	const char *top_what;
	/* Optional: checks across entries once the root is walked (even
	 * when it had errors: every mistake is shown). */
	void (*check)(struct schema_loader *l, void *base);
};

/* Parse `len` bytes of YAML as doc and store into `base`, which the caller
 * has zeroed (and given its defaults).  0; -EINVAL with diagnostics in
 * `diags` (which the caller releases with cfg_diags_clear; base is then
 * partly filled, for the caller to free); -ENOMEM. */
int schema_load(const struct schema_doc *doc, const char *buf, size_t len, void *base,
		struct cfg_diags *diags);

/* The whole of `path` (at most SCHEMA_MAX_FILE bytes), malloc'd.  A file
 * that cannot be read is one diagnostic at line 0 naming it, and -errno
 * (-EFBIG when too large). */
int schema_read_file(const char *path, char **ret, size_t *ret_len, struct cfg_diags *diags);
/* The same for an open fd (closed here), named `path` in diagnostics. */
int schema_read_fd(int fd, const char *path, char **ret, size_t *ret_len, struct cfg_diags *diags);

/* ---- for a table's functions (schema_field_fn, post, init, check) ----- */

/* Report at a mark, a node's mark, or a node's mark prefixed with the
 * walk's path ("tunnels.x.remote_port: ...").  All return -EINVAL, so
 * that a checker can `return schema_pdiag(...)`. */
int schema_diag_at(struct schema_loader *l, struct cfg_mark m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int schema_diag(struct schema_loader *l, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int schema_pdiag(struct schema_loader *l, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "PATH: expected WHAT, got "..."". */
int schema_type_error(struct schema_loader *l, const yaml_node_t *n, const char *what);
/* Record an allocation failure (the load returns -ENOMEM); NULL. */
void *schema_oom(struct schema_loader *l);

/* A mark for a libyaml mark, in the loaded file. */
struct cfg_mark schema_mark(const struct schema_loader *l, yaml_mark_t m);

/* Where the walk is ("tunnels.x.ssh_options"); push/index return the old
 * length for schema_path_pop. */
const char *schema_path(const struct schema_loader *l);
size_t schema_path_push(struct schema_loader *l, const char *key);
size_t schema_path_index(struct schema_loader *l, size_t i);
void schema_path_pop(struct schema_loader *l, size_t old);

/* Nodes. */
yaml_node_t *schema_node(const struct schema_loader *l, int idx);
const char *schema_sval(const yaml_node_t *n); /* a scalar's text */
bool schema_is_plain(const yaml_node_t *n);    /* an unquoted scalar */
bool schema_is_null(const yaml_node_t *n);     /* "", "~", "null", unquoted */
bool schema_has_nul(const yaml_node_t *n);     /* a "\0" in the scalar */
/* The key of pair `p` in `map`, or NULL after reporting why it is not
 * usable (not a string, a NUL byte, given twice). */
const char *schema_map_key(struct schema_loader *l, const yaml_node_t *map,
			   const yaml_node_pair_t *p);
/* The value of `key` in `map`, or NULL. */
yaml_node_t *schema_map_get(const struct schema_loader *l, const yaml_node_t *map, const char *key);

/* A string value under F_* `flags`, into *ret (valid while the document
 * lives); 0 or a diagnostic and -EINVAL. */
int schema_get_str(struct schema_loader *l, const yaml_node_t *n, unsigned flags, const char **ret);
/* A plain decimal integer in [min, max] (core/num.h's rules). */
bool schema_parse_int(const char *s, size_t len, long long min, long long max, long long *ret);
/* A word passed as one argument: no spaces or control bytes, no leading '-'. */
bool schema_word_ok(const char *s);

/* Walks, for K_FUNC fields that hold a schema's entries themselves: see
 * K_MAP and LISTOF.  ctx (NULL = the walk's path) prefixes "missing
 * required field"; at is where that is reported. */
void schema_walk_map(struct schema_loader *l, yaml_node_t *map, const struct schema *s, void *base,
		     const char *ctx, yaml_mark_t at);
void schema_walk_list(struct schema_loader *l, yaml_node_t *seq, const struct schema *s, void *out,
		      size_t size, size_t mark_at);

/* The seen[] slot of `key` in a post function (all NULL when absent). */
const struct schema_seen *schema_seen(const struct schema *s, const struct schema_seen *seen,
				      const char *key);

/* Did-you-mean: keep in *best the closest candidate within max(2, len/3)
 * edits of word (*bestd its distance; start with NULL and INT_MAX). */
void schema_suggest(const char *word, const char *cand, const char **best, int *bestd);

/* Render untrusted text for a message into buf (SCHEMA_ESC_BUF bytes):
 * quotes and control bytes escaped, long text cut.  Returns buf. */
const char *schema_esc(char *buf, const char *s);

#endif
