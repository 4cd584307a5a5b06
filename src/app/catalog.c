/* catalog.c - see catalog.h and docs/catalog.md.
 *
 * A target's file and a bridge's are the two halves of a tunnel: their
 * tables are ssh/ssh_config.c's tunnel table split by
 * ssh_tunnel_key_connects (where ssh connects: the target; what it
 * forwards: the bridge), so a key, a range or a check added to tunnels is
 * one of the catalog's too.  Each file is one schema_load; what spans
 * files (ids, targets, actors, ports, names) is checked once all are read.
 */
#include "app/catalog.h"
#include "app/app.h"
#include "app/config.h"
#include "core/schema.h"
#include "core/state.h"
#include "core/util.h"
#include "k8s/target.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

struct cat_domain {
	char *id, *file; /* file: its domain.yaml */
	char *description, *owner;
	size_t n_targets, n_bridges;
};

struct cat_target {
	struct cfg_tunnel conn; /* first: the tunnel table's rows fill it */
	char *description;
	char **tags; /* K_STRS: the array, then its count */
	size_t n_tags;
	char *id, *file;
	size_t domain;
	struct cfg_mark mark; /* the file's start */
};

struct cat_bridge {
	struct cfg_tunnel t; /* first, as for targets; t.name is the id */
	char *target;	     /* as written: ID or DOMAIN/ID */
	struct cfg_mark target_mark;
	char *description;
	char *file;
	size_t domain;
	const struct cat_target *to; /* resolved; NULL: unknown */
	bool shadowed;		     /* by an inline tunnel of its name */
	struct cfg_mark shadow_mark; /* that tunnel's */
};

struct catalog {
	char *root; /* catalog_path, without trailing slashes */
	struct cat_domain *domains;
	size_t n_domains;
	struct cat_target *targets;
	size_t n_targets;
	struct cat_bridge *bridges;
	size_t n_bridges;
	size_t files, bytes; /* read so far, against the bounds */
	bool over;	     /* a bound was hit (said once) */
	/* While it is read: where diagnostics go, and -ENOMEM once one could
	 * not be kept (a lost diagnostic must not pass for a valid catalog). */
	struct cfg_diags *diags;
	int err;
};

/* ---- the tables -------------------------------------------------------- */

#define DOM(m) AT(struct cat_domain, m)
#define TGT(m) AT(struct cat_target, m)
#define BRG(m) AT(struct cat_bridge, m)
_Static_assert(offsetof(struct cat_target, conn) == 0 && offsetof(struct cat_bridge, t) == 0,
	       "the tunnel table's offsets are into the struct's first member");
_Static_assert(offsetof(struct cat_target, n_tags) ==
		   offsetof(struct cat_target, tags) + sizeof(char **),
	       "K_STRS: the array, then its count");

/* clang-format off */
static const struct schema_field domain_fields[] = {
	STR("description", F_EMPTY, DOM(description), 0),
	STR("owner", F_EMPTY, DOM(owner), 0),
};
static SCHEMA(domain_schema, domain_fields, NULL);

static const struct schema_field target_own[] = {
	STR("description", F_EMPTY, TGT(description), 0),
	{.key = "tags", .kind = K_STRS, .at = TGT(tags)},
};
static const struct schema_field bridge_first[] = {
	STR("target", F_REQ, BRG(target), BRG(target_mark)),
};
static const struct schema_field bridge_own[] = {
	STR("description", F_EMPTY, BRG(description), 0),
};
/* clang-format on */

/* ssh_config in a target: refused.  ssh reads the file it names (-F) as
 * its own config, where ProxyCommand and Match exec run commands: a
 * catalog is data whoever can push to it writes, never code run as each
 * of its users (docs/catalog.md, "Trust"). */
static void refuse_ssh_config(struct schema_loader *l, yaml_node_t *val, void *base)
{
	(void)base;
	schema_pdiag(l, val->start_mark,
		     "refused in a catalog: ssh reads the file (-F) as its config, where "
		     "ProxyCommand and Match exec run commands, and a catalog is data anyone who "
		     "can push to it writes, never code run as you; put what the host needs in "
		     "~/.ssh/config (a Host block), which you control");
}

/* One half of the tunnel table, between rows of the file's own. */
struct half {
	struct schema_field f[SCHEMA_MAX_FIELDS];
	struct schema s;
};

static void half_add(struct half *h, const struct schema_field *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		assert(h->s.n < SCHEMA_MAX_FIELDS);
		h->f[h->s.n++] = rows[i];
	}
}

static void half_make(struct half *h, bool connects, const struct schema_field *pre, size_t npre,
		      const struct schema_field *post, size_t npost)
{
	h->s = (struct schema){h->f, 0, ssh_tunnel_schema.post};
	half_add(h, pre, npre);
	for (size_t i = 0; i < ssh_tunnel_schema.n; i++) {
		struct schema_field f = ssh_tunnel_schema.fields[i];

		if (ssh_tunnel_key_connects(f.key) != connects)
			continue;
		/* A target needs only its host: what a bridge needs of it
		 * (ssh_user, ssh_key) is checked with the bridges, so that a
		 * target nothing bridges to can be described alone. */
		if (connects && strcmp(f.key, "host") != 0)
			f.flags &= ~(unsigned)F_REQ;
		/* What runs code is the user's to write, not the catalog's. */
		if (strcmp(f.key, "ssh_options") == 0)
			f.fn = ssh_load_shared_options;
		if (strcmp(f.key, "ssh_config") == 0)
			f = (struct schema_field)FUNC("ssh_config", refuse_ssh_config);
		half_add(h, &f, 1);
	}
	half_add(h, post, npost);
}

static struct schema_doc file_doc(enum catalog_kind kind, const char *file,
				  const struct schema *top)
{
	static const char *const what[] = {
	    [CATALOG_DOMAIN] = "a mapping of a domain's keys (description:, owner:)",
	    [CATALOG_TARGET] = "a mapping of a target's keys (host:, ssh_user:, ...)",
	    [CATALOG_BRIDGE] = "a mapping of a bridge's keys (target:, remote_port:, ...)",
	};

	return (struct schema_doc){.file = file, .top = top, .top_what = what[kind]};
}

/* ---- diagnostics ------------------------------------------------------ */

static struct cfg_mark file_mark(const char *file)
{
	return (struct cfg_mark){file, 1, 1};
}

static void say(struct catalog *cat, struct cfg_mark m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(struct catalog *cat, struct cfg_mark m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (cfg_diag_addv(cat->diags, m, fmt, ap) < 0)
		cat->err = -ENOMEM;
	va_end(ap);
}

/* A problem with a file as a whole (its name, its type): no line. */
#define say_file(cat, file, ...) say(cat, (struct cfg_mark){file, 0, 0}, __VA_ARGS__)

/* ---- walking the tree ------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* The entries of directory dfd but dotfiles (.git, .gitkeep, editors'
 * files), sorted (readdir's order is the file system's); at most max + 1,
 * so that the caller sees it went over.  dfd stays open.  0 or -errno. */
static int list_dir(int dfd, size_t max, char ***ret, size_t *ret_n)
{
	int fd = dup(dfd);
	DIR *dir = fd < 0 ? NULL : fdopendir(fd);
	char **v = NULL;
	size_t n = 0;
	struct dirent *de;

	if (!dir) {
		int r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	rewinddir(dir);
	while (n <= max && (de = readdir(dir))) {
		char **nv;

		if (de->d_name[0] == '.')
			continue;
		if (!(nv = realloc(v, (n + 1) * sizeof *v)))
			goto oom;
		v = nv;
		if (!(v[n] = strdup(de->d_name)))
			goto oom;
		n++;
	}
	closedir(dir);
	if (n)
		qsort(v, n, sizeof *v, cmp_str);
	*ret = v;
	*ret_n = n;
	return 0;
oom:
	names_free(v, n);
	closedir(dir);
	return -ENOMEM;
}

/* openat without following a symlink: the catalog is read from inside
 * catalog_path only (a link could name any file this user can read). */
static int open_in(struct catalog *cat, int dfd, const char *name, const char *path, bool dir)
{
	int fd =
	    openat(dfd, name,
		   (dir ? O_DIRECTORY : O_NONBLOCK | O_NOCTTY) | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	if (fd < 0) {
		int r = -errno;
		/* O_NOFOLLOW says ENOTDIR, not ELOOP, with O_DIRECTORY */
		if (r == -ENOTDIR && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode))
			r = -ELOOP;
		if (r == -ELOOP)
			say_file(cat, path,
				 "a symbolic link: not followed (the catalog is read only from "
				 "inside catalog_path)");
		else if (r == -ENOTDIR)
			say_file(cat, path, "not a directory");
		else if (r != -ENOENT)
			say_file(cat, path, "cannot open: %s", strerror(-r));
		return r;
	}
	if (!dir && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		say_file(cat, path, "not a regular file");
		close(fd);
		return -EINVAL;
	}
	return fd;
}

/* Whether another file may be read; says why not once. */
static bool budget(struct catalog *cat, const char *path)
{
	if (cat->files < CATALOG_MAX_FILES && cat->bytes < CATALOG_MAX_BYTES)
		return true;
	if (!cat->over)
		say_file(cat, path,
			 "not read: the catalog is over its bounds (%d files, %d MiB in all)",
			 CATALOG_MAX_FILES, CATALOG_MAX_BYTES >> 20);
	cat->over = true;
	return false;
}

/* Read NAME in dfd and load it as doc into base.  0, -EINVAL, -ENOMEM. */
static int load_file(struct catalog *cat, int dfd, const char *name, const struct schema_doc *doc,
		     void *base)
{
	char *buf = NULL;
	size_t len = 0;
	int fd, r;

	if (!budget(cat, doc->file))
		return -EINVAL;
	if ((fd = open_in(cat, dfd, name, doc->file, false)) < 0) {
		if (fd == -ENOENT) /* only domain.yaml is opened unlisted */
			say_file(
			    cat, doc->file,
			    "missing: every domain has its domain.yaml (description:, owner:)");
		return -EINVAL;
	}
	if ((r = schema_read_fd(fd, doc->file, &buf, &len, cat->diags)) < 0)
		return r == -ENOMEM ? r : -EINVAL;
	cat->files++;
	cat->bytes += len;
	r = schema_load(doc, buf, len, base, cat->diags);
	free(buf);
	return r;
}

static char *join(const char *a, const char *b)
{
	return strdup_printf("%s/%s", a, b);
}

/* One more zeroed element of an array of `size` bytes; NULL: no memory. */
static void *grow(void *pitems, size_t *n, size_t size)
{
	char *items = *(char **)pitems, *v = realloc(items, (*n + 1) * size);

	if (!v)
		return NULL;
	*(char **)pitems = v;
	memset(v + *n * size, 0, size);
	return v + (*n)++ * size;
}

/* "ID.yaml" in targets/ or bridges/: the id, or NULL after saying why
 * the name is not one. */
static char *file_id(struct catalog *cat, const char *name, const char *path, const char *what)
{
	size_t n = strlen(name);
	char *id;

	if (n <= 5 || strcmp(name + n - 5, ".yaml") != 0) {
		say_file(cat, path,
			 "not a .yaml file: %ss/ holds one ID.yaml per %s (rename it, or move it "
			 "out of the catalog)",
			 what, what);
		return NULL;
	}
	if (!(id = strndup(name, n - 5)))
		return NULL;
	if (!cfg_name_valid(id)) {
		char e[SCHEMA_ESC_BUF];
		say_file(cat, path,
			 "invalid %s id '%s' (the file's name without .yaml): use letters, "
			 "digits, '.', '_', '-' (at most 64)",
			 what, schema_esc(e, id));
		free(id);
		return NULL;
	}
	return id;
}

/* targets/ or bridges/ of domain `di`, when it exists. */
static int read_entries(struct catalog *cat, int ddir, const char *dpath, size_t di, bool bridges,
			const struct half *h)
{
	const char *sub = bridges ? "bridges" : "targets", *what = bridges ? "bridge" : "target";
	char *spath = join(dpath, sub), **names = NULL;
	size_t n = 0;
	int fd, r = 0;

	if (!spath)
		return -ENOMEM;
	if ((fd = open_in(cat, ddir, sub, spath, true)) < 0) {
		free(spath);
		return fd == -ENOENT ? 0 : -EINVAL;
	}
	if ((r = list_dir(fd, CATALOG_MAX_FILES, &names, &n)) < 0) {
		if (r != -ENOMEM)
			say_file(cat, spath, "cannot list: %s", strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < n && r != -ENOMEM; i++) {
		char *path = join(spath, names[i]), *id;
		void *base;

		if (!path) {
			r = -ENOMEM;
			break;
		}
		if (!(id = file_id(cat, names[i], path, what))) {
			free(path);
			continue;
		}
		if (bridges) {
			struct cat_bridge *b = grow(&cat->bridges, &cat->n_bridges, sizeof *b);
			if (!b) {
				free(id);
				free(path);
				r = -ENOMEM;
				break;
			}
			ssh_tunnel_defaults(&b->t);
			b->t.name = id;
			b->t.mark = file_mark(path);
			b->file = path;
			b->domain = di;
			cat->domains[di].n_bridges++;
			base = b;
		} else {
			struct cat_target *t = grow(&cat->targets, &cat->n_targets, sizeof *t);
			if (!t) {
				free(id);
				free(path);
				r = -ENOMEM;
				break;
			}
			ssh_tunnel_defaults(&t->conn);
			t->id = id;
			t->file = path;
			t->mark = file_mark(path);
			t->domain = di;
			cat->domains[di].n_targets++;
			base = t;
		}
		const struct schema_doc doc =
		    file_doc(bridges ? CATALOG_BRIDGE : CATALOG_TARGET, path, &h->s);
		if (load_file(cat, fd, names[i], &doc, base) == -ENOMEM)
			r = -ENOMEM;
	}
out:
	names_free(names, n);
	close(fd);
	free(spath);
	return r;
}

static int read_domain(struct catalog *cat, int domains, const char *name, const char *dpath,
		       const struct half *th, const struct half *bh)
{
	struct cat_domain *dom;
	size_t di = cat->n_domains;
	int fd, r;

	if (!cfg_name_valid(name)) {
		char e[SCHEMA_ESC_BUF];
		say_file(cat, dpath,
			 "invalid domain id '%s' (the directory's name): use letters, digits, "
			 "'.', '_', '-' (at most 64)",
			 schema_esc(e, name));
		return 0;
	}
	if ((fd = open_in(cat, domains, name, dpath, true)) < 0)
		return 0;
	if (!(dom = grow(&cat->domains, &cat->n_domains, sizeof *dom)) ||
	    !(dom->id = strdup(name)) || !(dom->file = join(dpath, "domain.yaml"))) {
		close(fd);
		return -ENOMEM;
	}
	const struct schema_doc doc = file_doc(CATALOG_DOMAIN, dom->file, &domain_schema);
	r = load_file(cat, fd, "domain.yaml", &doc, dom);
	if (r != -ENOMEM)
		r = read_entries(cat, fd, dpath, di, false, th);
	if (r != -ENOMEM)
		r = read_entries(cat, fd, dpath, di, true, bh);
	close(fd);
	return r == -ENOMEM ? r : 0;
}

static int read_tree(struct catalog *cat, const struct cfg *cfg)
{
	struct half th, bh;
	char *dpath = join(cat->root, "domains"), **names = NULL;
	size_t n = 0;
	int root, domains = -1, r = 0;

	if (!dpath)
		return -ENOMEM;
	half_make(&th, true, NULL, 0, target_own, ARRAY_SIZE(target_own));
	half_make(&bh, false, bridge_first, ARRAY_SIZE(bridge_first), bridge_own,
		  ARRAY_SIZE(bridge_own));
	/* catalog_path itself may be a link (~/ops -> a checkout). */
	root = open(cat->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		say(cat, cfg->catalog_path_mark, "catalog_path: %s: %s", cat->root,
		    strerror(errno));
		goto out;
	}
	domains = open_in(cat, root, "domains", dpath, true);
	if (domains == -ENOENT)
		say(cat, cfg->catalog_path_mark,
		    "catalog_path: %s has no domains/ directory (the layout is "
		    "domains/DOMAIN/domain.yaml, targets/, bridges/)",
		    cat->root);
	if (domains < 0)
		goto out;
	if ((r = list_dir(domains, CATALOG_MAX_DOMAINS, &names, &n)) < 0) {
		if (r != -ENOMEM)
			say_file(cat, dpath, "cannot list: %s", strerror(-r));
		goto out;
	}
	if (n > CATALOG_MAX_DOMAINS) {
		say_file(cat, dpath, "more than %d domains: the first %d are read",
			 CATALOG_MAX_DOMAINS, CATALOG_MAX_DOMAINS);
		n--;
		free(names[n]);
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		char *p = join(dpath, names[i]);
		r = p ? read_domain(cat, domains, names[i], p, &th, &bh) : -ENOMEM;
		free(p);
	}
out:
	names_free(names, n);
	if (domains >= 0)
		close(domains);
	if (root >= 0)
		close(root);
	free(dpath);
	return r;
}

int catalog_parse_file(enum catalog_kind kind, const char *file, const char *buf, size_t len,
		       struct cfg_diags *diags)
{
	struct half h;
	int r;

	if (kind == CATALOG_DOMAIN) {
		struct cat_domain m = {0};
		const struct schema_doc doc = file_doc(kind, file, &domain_schema);

		r = schema_load(&doc, buf, len, &m, diags);
		free(m.description);
		free(m.owner);
		return r;
	}
	if (kind == CATALOG_TARGET) {
		struct cat_target t = {0};

		half_make(&h, true, NULL, 0, target_own, ARRAY_SIZE(target_own));
		const struct schema_doc doc = file_doc(kind, file, &h.s);
		ssh_tunnel_defaults(&t.conn);
		r = schema_load(&doc, buf, len, &t, diags);
		ssh_tunnel_clear(&t.conn);
		free(t.description);
		names_free(t.tags, t.n_tags);
		return r;
	}
	struct cat_bridge b = {0};

	half_make(&h, false, bridge_first, ARRAY_SIZE(bridge_first), bridge_own,
		  ARRAY_SIZE(bridge_own));
	const struct schema_doc doc = file_doc(kind, file, &h.s);
	ssh_tunnel_defaults(&b.t);
	r = schema_load(&doc, buf, len, &b, diags);
	ssh_tunnel_clear(&b.t);
	free(b.target);
	free(b.description);
	return r;
}

/* ---- checks across files ---------------------------------------------- */

/* For a "did you mean": the closest to word of the n names at `off` (a
 * char *) in each of the elements of array v (`size` bytes each), or
 * NULL when none is close (schema_suggest's rule). */
static const char *closest(const char *word, const void *v, size_t n, size_t size, size_t off)
{
	const char *best = NULL;
	int bestd = INT_MAX;

	for (size_t i = 0; i < n; i++)
		schema_suggest(word, *(char *const *)((const char *)v + i * size + off), &best,
			       &bestd);
	return best;
}
#define CLOSEST(word, v, n, type, member) closest(word, v, n, sizeof(type), offsetof(type, member))

static const char *domain_of(const struct catalog *cat, size_t i)
{
	return cat->domains[i].id;
}

/* `target: ID` (ids are unique across the catalog; with a duplicate, the
 * bridge's own domain first) or `target: DOMAIN/ID`. */
static const struct cat_target *find_target(const struct catalog *cat, const char *ref, size_t own)
{
	const char *slash = strchr(ref, '/');
	const struct cat_target *any = NULL;

	for (size_t i = 0; i < cat->n_targets; i++) {
		const struct cat_target *t = &cat->targets[i];
		const char *dom = domain_of(cat, t->domain);

		if (slash) {
			if (strncmp(ref, dom, (size_t)(slash - ref)) == 0 && !dom[slash - ref] &&
			    strcmp(slash + 1, t->id) == 0)
				return t;
			continue;
		}
		if (strcmp(ref, t->id) != 0)
			continue;
		if (t->domain == own)
			return t;
		if (!any)
			any = t;
	}
	return any;
}

static void check_ids(struct catalog *cat)
{
	for (size_t i = 0; i < cat->n_targets; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(cat->targets[i].id, cat->targets[j].id) == 0) {
				say(cat, cat->targets[i].mark,
				    "duplicate target id '%s': also in domain '%s' (%s); "
				    "target ids are unique across the catalog",
				    cat->targets[i].id, domain_of(cat, cat->targets[j].domain),
				    cat->targets[j].file);
				break;
			}
	for (size_t i = 0; i < cat->n_bridges; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(cat->bridges[i].t.name, cat->bridges[j].t.name) == 0) {
				say(cat, cat->bridges[i].t.mark,
				    "duplicate bridge id '%s': also in domain '%s' (%s); "
				    "bridges are tunnels, one namespace of names",
				    cat->bridges[i].t.name, domain_of(cat, cat->bridges[j].domain),
				    cat->bridges[j].file);
				break;
			}
}

static void check_target(struct catalog *cat, struct cat_bridge *b)
{
	char e[SCHEMA_ESC_BUF], e2[SCHEMA_ESC_BUF];
	const char *best, *missing;

	if (!b->target)
		return; /* missing: said by the schema */
	if ((b->to = find_target(cat, b->target, b->domain))) {
		missing = !b->to->conn.ssh_user	 ? "ssh_user"
			  : !b->to->conn.ssh_key ? "ssh_key"
						 : NULL;
		if (missing) {
			say(cat, b->target_mark,
			    "target: target '%s' (%s) has no %s, which a bridge needs "
			    "(ssh runs with -l USER -i KEY)",
			    b->to->id, b->to->file, missing);
			b->to = NULL;
		}
		return;
	}
	best = CLOSEST(b->target, cat->targets, cat->n_targets, struct cat_target, id);
	if (best)
		say(cat, b->target_mark, "target: unknown target '%s' (did you mean '%s'?)",
		    schema_esc(e, b->target), schema_esc(e2, best));
	else
		say(cat, b->target_mark,
		    "target: unknown target '%s': no domains/*/targets/%s.yaml in the "
		    "catalog",
		    schema_esc(e, b->target), schema_esc(e2, b->target));
}

static void check_actor(struct catalog *cat, const struct cfg *cfg, const struct cat_bridge *b)
{
	char e[SCHEMA_ESC_BUF], e2[SCHEMA_ESC_BUF];
	const char *best;

	if (!b->t.actor || cfg_find_actor(cfg, b->t.actor))
		return;
	best = CLOSEST(b->t.actor, cfg->actors, cfg->n_actors, struct cfg_actor, name);
	if (best)
		say(cat, b->t.actor_mark, "actor: unknown actor '%s' (did you mean '%s'?)",
		    schema_esc(e, b->t.actor), schema_esc(e2, best));
	else
		say(cat, b->t.actor_mark,
		    "actor: unknown actor '%s': define it under 'actors:' in %s",
		    schema_esc(e, b->t.actor), cfg->path);
}

/* Bridge ids are tunnel names in the state directory: the same rules as
 * the config's (app/config.c), an inline tunnel of the name aside. */
static void check_name(struct catalog *cat, const struct cfg *cfg, const struct cat_bridge *b)
{
	const char *id = b->t.name;

	if (state_name_reserved(id))
		say(cat, b->t.mark, "bridge id '%s' is reserved for devbridge's daemons", id);
	else if (k8s_bridge_name_like(id))
		say(cat, b->t.mark,
		    "bridge id '%s' has the form connect gives its Kubernetes bridges "
		    "(SERVICE.NAMESPACE.PORT): bridges share one namespace in the state "
		    "directory; rename the file",
		    id);
	else if (cfg_find_service(cfg, id))
		say(cat, b->t.mark,
		    "bridge id '%s' is taken by the service at %s:%d: tunnels and "
		    "services share one namespace in the state directory; rename one",
		    id, cfg->path, cfg_find_service(cfg, id)->name_mark.line);
}

static void clash_diag(struct catalog *cat, const struct cat_bridge *b, enum ssh_clash c,
		       const char *kind, const struct cfg_tunnel *u)
{
	const struct cfg_tunnel *t = &b->t;
	struct cfg_mark um = c == SSH_CLASH_LOCAL_PORT ? u->local_port_mark : u->remote_port_mark;

	if (c == SSH_CLASH_LOCAL_PORT)
		say(cat, t->local_port_mark,
		    "local_port: port %d is already used by %s '%s' (%s:%d)", t->local_port, kind,
		    u->name, um.file, um.line);
	else
		say(cat, t->remote_port_mark,
		    "remote_port: port %d on %s is already forwarded by %s '%s' (%s:%d)",
		    t->remote_port, t->host, kind, u->name, um.file, um.line);
}

/* Bridges that will run (resolved, not shadowed) against each other and
 * against the config's own tunnels. */
static void check_ports(struct catalog *cat, const struct cfg *cfg)
{
	for (size_t i = 0; i < cat->n_bridges; i++) {
		const struct cat_bridge *b = &cat->bridges[i];
		enum ssh_clash c = SSH_CLASH_NONE;

		if (!b->to || b->shadowed)
			continue;
		for (size_t j = 0; j < i && !c; j++) {
			const struct cat_bridge *o = &cat->bridges[j];
			if (o->to && !o->shadowed && (c = ssh_tunnels_clash(&b->t, &o->t)))
				clash_diag(cat, b, c, "bridge", &o->t);
		}
		for (size_t j = 0; j < cfg->n_tunnels && !c; j++) {
			const struct cfg_tunnel *u = &cfg->tunnels[j];
			if (!u->catalog_file && (c = ssh_tunnels_clash(&b->t, u)))
				clash_diag(cat, b, c, "tunnel", u);
		}
	}
}

static const struct cfg_tunnel *inline_tunnel(const struct cfg *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_tunnels; i++)
		if (!cfg->tunnels[i].catalog_file && strcmp(cfg->tunnels[i].name, name) == 0)
			return &cfg->tunnels[i];
	return NULL;
}

static int check(struct catalog *cat, const struct cfg *cfg)
{
	check_ids(cat);
	for (size_t i = 0; i < cat->n_bridges; i++) {
		struct cat_bridge *b = &cat->bridges[i];

		check_target(cat, b);
		check_actor(cat, cfg, b);
		const struct cfg_tunnel *u = inline_tunnel(cfg, b->t.name);

		if (u) {
			b->shadowed = true;
			b->shadow_mark = u->mark;
		} else {
			check_name(cat, cfg, b);
		}
		/* The target's half: the bridge is a whole tunnel now. */
		if (b->to && ssh_tunnel_copy_connection(&b->t, &b->to->conn) < 0)
			return -ENOMEM;
	}
	check_ports(cat, cfg);
	return 0;
}

/* ---- the catalog as cfg_load reads it --------------------------------- */

int catalog_read(const struct cfg *cfg, struct catalog **ret, struct cfg_diags *diags)
{
	struct catalog *cat = calloc(1, sizeof *cat);
	size_t before = diags ? diags->n + diags->dropped : 0, len;
	int r;

	if (!cat || !(cat->root = strdup(cfg->catalog_path))) {
		free(cat);
		return -ENOMEM;
	}
	len = strlen(cat->root);
	while (len > 1 && cat->root[len - 1] == '/')
		cat->root[--len] = '\0';
	cat->diags = diags;
	r = read_tree(cat, cfg);
	if (r == 0)
		r = check(cat, cfg);
	if (r == 0)
		r = cat->err;
	cat->diags = NULL;
	if (r < 0) {
		catalog_free(cat);
		return r;
	}
	*ret = cat;
	return diags && diags->n + diags->dropped > before ? -EINVAL : 0;
}

int catalog_merge(struct cfg *cfg, struct catalog *cat)
{
	size_t n = cfg->n_tunnels;

	cfg->catalog = cat;
	for (size_t i = 0; i < cat->n_bridges; i++)
		n += cat->bridges[i].to && !cat->bridges[i].shadowed;
	if (n == cfg->n_tunnels)
		return 0;
	struct cfg_tunnel *v = realloc(cfg->tunnels, n * sizeof *v);
	if (!v)
		return -ENOMEM;
	cfg->tunnels = v;
	for (size_t i = 0; i < cat->n_bridges; i++) {
		struct cat_bridge *b = &cat->bridges[i];

		if (!b->to || b->shadowed)
			continue;
		b->t.catalog_domain = cat->domains[b->domain].id;
		b->t.catalog_file = b->file;
		v[cfg->n_tunnels++] = b->t;
		memset(&b->t, 0, sizeof b->t);
	}
	return 0;
}

size_t catalog_lint(const struct catalog *cat, struct cfg_diags *w)
{
	size_t n = 0;

	for (size_t i = 0; cat && i < cat->n_bridges; i++) {
		const struct cat_bridge *b = &cat->bridges[i];

		if (!b->shadowed)
			continue;
		cfg_diag_add(w, b->shadow_mark,
			     "tunnel '%s' shadows the catalog bridge of the same name (%s:1:1): "
			     "the inline tunnel is the one used",
			     b->t.name, b->file);
		n++;
	}
	return n;
}

void catalog_free(struct catalog *cat)
{
	if (!cat)
		return;
	for (size_t i = 0; i < cat->n_domains; i++) {
		free(cat->domains[i].id);
		free(cat->domains[i].file);
		free(cat->domains[i].description);
		free(cat->domains[i].owner);
	}
	for (size_t i = 0; i < cat->n_targets; i++) {
		struct cat_target *t = &cat->targets[i];
		ssh_tunnel_clear(&t->conn);
		free(t->description);
		names_free(t->tags, t->n_tags);
		free(t->id);
		free(t->file);
	}
	for (size_t i = 0; i < cat->n_bridges; i++) {
		struct cat_bridge *b = &cat->bridges[i];
		ssh_tunnel_clear(&b->t);
		free(b->target);
		free(b->description);
		free(b->file);
	}
	free(cat->domains);
	free(cat->targets);
	free(cat->bridges);
	free(cat->root);
	free(cat);
}

/* ---- the operations ---------------------------------------------------- */

json_t *app_tunnel_health_json(const struct cfg_tunnel *t)
{
	const struct cfg_health *h = &t->health;

	if (h->kind == HEALTH_HTTP)
		return json_pack("{s:s, s:i, s:i}", "url", h->url, "interval_seconds",
				 h->interval_s, "timeout_seconds", h->timeout_s);
	if (h->kind == HEALTH_TCP)
		return json_pack("{s:s, s:i, s:i, s:i}", "tcp_host",
				 h->tcp_host ? h->tcp_host : "127.0.0.1", "tcp_port", h->tcp_port,
				 "interval_seconds", h->interval_s, "timeout_seconds",
				 h->timeout_s);
	return json_null();
}

json_t *app_tunnel_reconnect_json(const struct cfg_tunnel *t)
{
	return json_pack("{s:i, s:f, s:f, s:f}", "max_attempts", t->max_attempts, "backoff_initial",
			 t->backoff_initial, "backoff_max", t->backoff_max, "stable_seconds",
			 t->stable_s);
}

static json_t *jstr(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* The catalog of a's config, read now (the files may have changed since
 * the config was loaded; and a config loaded without its catalog, for
 * validate, has none).  With `valid`, a catalog with diagnostics is
 * EXIT_CONFIG; without, they are left in *d for the caller. */
static int open_catalog(const struct app *a, bool valid, struct catalog **ret, struct cfg_diags *d,
			struct err *e)
{
	char first[1024];
	int r;

	if (!a->cfg || !a->cfg->catalog_path)
		return err_set(e, EXIT_CONFIG, "the config has no catalog_path");
	r = catalog_read(a->cfg, ret, d);
	if (r == -ENOMEM)
		return err_set(e, EXIT_ERROR, "out of memory");
	if (r < 0 && valid) {
		cfg_diag_format(first, sizeof first, d->items[0].mark, "%s", d->items[0].msg);
		catalog_free(*ret);
		*ret = NULL;
		return err_set(e, EXIT_CONFIG,
			       "invalid catalog: %s (%zu error%s; `devbridge catalog validate` "
			       "lists them)",
			       first, d->n + d->dropped, d->n + d->dropped == 1 ? "" : "s");
	}
	return 0;
}

static json_t *strs_json(char **v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *target_row(const struct catalog *cat, const struct cat_target *t)
{
	return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:o, s:s}", "id", t->id, "domain",
			 domain_of(cat, t->domain), "host", t->conn.host ? t->conn.host : "",
			 "ssh_user", jstr(t->conn.ssh_user), "ssh_port",
			 t->conn.ssh_port ? json_integer(t->conn.ssh_port) : json_null(), "ssh_key",
			 jstr(t->conn.ssh_key), "description", t->description ? t->description : "",
			 "tags", strs_json(t->tags, t->n_tags), "file", t->file);
}

static const struct cat_domain *find_domain(const struct catalog *cat, const char *id)
{
	for (size_t i = 0; i < cat->n_domains; i++)
		if (strcmp(cat->domains[i].id, id) == 0)
			return &cat->domains[i];
	return NULL;
}

/* `code` for an unknown `what` id; `best`: the closest known one. */
static int unknown(struct err *e, int code, const char *what, const char *id, const char *best,
		   const char *lister)
{
	char x[SCHEMA_ESC_BUF];

	if (best)
		return err_set(e, code, "no %s '%s' in the catalog (did you mean '%s'?)", what,
			       schema_esc(x, id), best);
	return err_set(e, code, "no %s '%s' in the catalog (`devbridge %s` lists them)", what,
		       schema_esc(x, id), lister);
}

int app_catalog_domains(const struct app *a, json_t **ret_doc, struct err *e)
{
	struct cfg_diags d = {0};
	struct catalog *cat = NULL;
	int r = open_catalog(a, true, &cat, &d, e);
	json_t *rows;

	cfg_diags_clear(&d);
	if (r)
		return r;
	rows = json_array();
	for (size_t i = 0; i < cat->n_domains; i++) {
		const struct cat_domain *m = &cat->domains[i];
		json_array_append_new(
		    rows, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "id", m->id, "description",
				    m->description ? m->description : "", "owner",
				    m->owner ? m->owner : "", "targets", (json_int_t)m->n_targets,
				    "bridges", (json_int_t)m->n_bridges, "file", m->file));
	}
	json_t *bridges = json_array();
	for (size_t i = 0; i < cat->n_bridges; i++) {
		const struct cat_bridge *b = &cat->bridges[i];
		json_array_append_new(
		    bridges,
		    json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:b}", "id", b->t.name, "domain",
			      domain_of(cat, b->domain), "target", b->to->id, "direction",
			      cfg_direction_name(b->t.direction), "local_port", b->t.local_port,
			      "remote_port", b->t.remote_port, "shadowed_by_inline", b->shadowed));
	}
	*ret_doc = json_pack("{s:s, s:o, s:o}", "catalog_path", cat->root, "domains", rows,
			     "bridges", bridges);
	catalog_free(cat);
	return 0;
}

int app_catalog_targets(const struct app *a, const char *domain, json_t **ret_doc, struct err *e)
{
	struct cfg_diags d = {0};
	struct catalog *cat = NULL;
	int r = open_catalog(a, true, &cat, &d, e);
	json_t *rows;

	cfg_diags_clear(&d);
	if (r)
		return r;
	if (domain && !find_domain(cat, domain)) {
		r = unknown(e, EXIT_NOT_IN_CATALOG, "domain", domain,
			    CLOSEST(domain, cat->domains, cat->n_domains, struct cat_domain, id),
			    "catalog list");
		catalog_free(cat);
		return r;
	}
	rows = json_array();
	for (size_t i = 0; i < cat->n_targets; i++)
		if (!domain || strcmp(domain_of(cat, cat->targets[i].domain), domain) == 0)
			json_array_append_new(rows, target_row(cat, &cat->targets[i]));
	*ret_doc = json_pack("{s:s, s:o}", "catalog_path", cat->root, "targets", rows);
	catalog_free(cat);
	return 0;
}

int app_catalog_target(const struct app *a, const char *id, json_t **ret_doc, struct err *e)
{
	struct cfg_diags d = {0};
	struct catalog *cat = NULL;
	const struct cat_target *t = NULL;
	int r = open_catalog(a, true, &cat, &d, e);

	cfg_diags_clear(&d);
	if (r)
		return r;
	/* ID or DOMAIN/ID, as a bridge's target: names it. */
	t = find_target(cat, id, SIZE_MAX);
	if (!t) {
		r = unknown(e, EXIT_NOT_IN_CATALOG, "target", id,
			    CLOSEST(id, cat->targets, cat->n_targets, struct cat_target, id),
			    "targets");
		catalog_free(cat);
		return r;
	}
	json_t *row = target_row(cat, t), *bridges = json_array();
	for (size_t i = 0; i < cat->n_bridges; i++)
		if (cat->bridges[i].to == t)
			json_array_append_new(bridges, json_string(cat->bridges[i].t.name));
	json_object_set_new(row, "bridges", bridges);
	*ret_doc = json_pack("{s:o}", "target", row);
	catalog_free(cat);
	return 0;
}

static const struct cat_bridge *find_bridge(const struct catalog *cat, const char *id)
{
	for (size_t i = 0; i < cat->n_bridges; i++)
		if (strcmp(cat->bridges[i].t.name, id) == 0)
			return &cat->bridges[i];
	return NULL;
}

int app_catalog_bridge(const struct app *a, const char *id, json_t **ret_doc, struct err *e)
{
	struct cfg_diags d = {0};
	struct catalog *cat = NULL;
	const struct cat_bridge *b;
	char at[1100] = "";
	int r = open_catalog(a, true, &cat, &d, e);

	cfg_diags_clear(&d);
	if (r)
		return r;
	if (!(b = find_bridge(cat, id))) {
		r = unknown(e, EXIT_UNKNOWN_BRIDGE, "bridge", id,
			    CLOSEST(id, cat->bridges, cat->n_bridges, struct cat_bridge, t.name),
			    "catalog list");
		catalog_free(cat);
		return r;
	}
	const struct cfg_tunnel *t = &b->t;
	if (b->shadowed)
		snprintf(at, sizeof at, "%s:%d:%d", b->shadow_mark.file, b->shadow_mark.line,
			 b->shadow_mark.col);
	json_t *o = json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:i, s:i, s:s, s:s, s:s, s:s}", "id", t->name,
	    "domain", domain_of(cat, b->domain), "file", b->file, "target", b->to->id,
	    "target_domain", domain_of(cat, b->to->domain), "host", t->host, "ssh_user",
	    jstr(t->ssh_user), "ssh_port", t->ssh_port ? json_integer(t->ssh_port) : json_null(),
	    "remote_port", t->remote_port, "local_port", t->local_port, "remote_host",
	    t->remote_host, "direction", cfg_direction_name(t->direction), "actor", t->actor,
	    "description", b->description ? b->description : "");
	json_object_set_new(o, "health_check", app_tunnel_health_json(t));
	json_object_set_new(o, "reconnect", app_tunnel_reconnect_json(t));
	json_object_set_new(o, "shadowed_by_inline", json_boolean(b->shadowed));
	json_object_set_new(o, "inline_tunnel", b->shadowed ? json_string(at) : json_null());
	*ret_doc = json_pack("{s:o}", "bridge", o);
	catalog_free(cat);
	return 0;
}

int app_catalog_validate(const struct app *a, json_t **ret_doc, struct err *e)
{
	struct cfg_diags d = {0};
	struct catalog *cat = NULL;
	char first[1024];
	int r = open_catalog(a, false, &cat, &d, e);
	json_t *diags;

	if (r) {
		cfg_diags_clear(&d);
		return r;
	}
	diags = cfg_diags_json(&d);
	*ret_doc =
	    json_pack("{s:b, s:s, s:I, s:I, s:I, s:o, s:I}", "valid", d.n == 0, "catalog_path",
		      cat->root, "domains", (json_int_t)cat->n_domains, "targets",
		      (json_int_t)cat->n_targets, "bridges", (json_int_t)cat->n_bridges,
		      "diagnostics", diags, "more_diagnostics", (json_int_t)d.dropped);
	catalog_free(cat);
	if (d.n) {
		cfg_diag_format(first, sizeof first, d.items[0].mark, "%s", d.items[0].msg);
		r = err_set(e, EXIT_CONFIG, "invalid catalog: %zu error%s, the first: %s",
			    d.n + d.dropped, d.n + d.dropped == 1 ? "" : "s", first);
	}
	cfg_diags_clear(&d);
	return r;
}
