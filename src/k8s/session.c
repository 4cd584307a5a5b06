/* session.c - see session.h. */
#include "k8s/session.h"
#include "core/schema.h"
#include "core/state.h"
#include "core/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define SESSION_FILE "session.json"
#define ENV_FILE     "bridge.env"
#define LOCK_FILE    "session.lock"

/* --- entries from the state files --- */

static void copy_str(char *dst, size_t n, json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	snprintf(dst, n, "%s", s ? s : "");
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct k8s_entry *)a)->name, ((const struct k8s_entry *)b)->name);
}

/* k8s bridges from their state files: the live ones (their supervisor
 * holds the lock), and with `dead` also those without one (pid 0).
 * `self` is the calling supervisor's own bridge, live or not as
 * `self_live` says, never probed: opening and closing its own pid file
 * would drop the POSIX lock it holds (see state.h). */
static int list(const char *dir, const char *self, bool self_live, bool dead,
		struct k8s_entry **ret, size_t *ret_n)
{
	*ret = NULL;
	*ret_n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct k8s_entry *v = NULL;
	size_t n = 0;
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len <= 6 || len - 6 >= sizeof v->name || strcmp(de->d_name + len - 6, ".state"))
			continue;
		char name[sizeof v->name];
		snprintf(name, sizeof name, "%.*s", (int)(len - 6), de->d_name);
		json_t *st = NULL;
		if (state_read(dir, name, &st) < 0 || !st)
			continue;
		const char *kind = json_string_value(json_object_get(st, "kind"));
		if (!kind || strcmp(kind, "k8s") != 0) {
			json_decref(st);
			continue;
		}
		pid_t live = !self || strcmp(self, name) != 0 ? state_probe(dir, name)
			     : self_live		      ? getpid()
							      : 0;
		if (!live && !dead) {
			json_decref(st);
			continue;
		}
		struct k8s_entry *nv = realloc(v, (n + 1) * sizeof *v);
		if (!nv) {
			json_decref(st);
			r = -ENOMEM;
			break;
		}
		v = nv;
		struct k8s_entry *e = &v[n++];
		memset(e, 0, sizeof *e);
		snprintf(e->name, sizeof e->name, "%s", name);
		copy_str(e->service, sizeof e->service, st, "service");
		copy_str(e->namespace, sizeof e->namespace, st, "namespace");
		copy_str(e->state, sizeof e->state, st, "state");
		copy_str(e->started_at, sizeof e->started_at, st, "started_at");
		copy_str(e->origin, sizeof e->origin, st, "origin");
		copy_str(e->kubeconfig, sizeof e->kubeconfig, st, "kubeconfig");
		copy_str(e->context, sizeof e->context, st, "context");
		copy_str(e->connected_at, sizeof e->connected_at, st, "connected_at");
		copy_str(e->pod, sizeof e->pod, st, "pod");
		e->target_port = (int)json_integer_value(json_object_get(st, "target_port"));
		e->remote_port = (int)json_integer_value(json_object_get(st, "remote_port"));
		e->local_port = (int)json_integer_value(json_object_get(st, "local_port"));
		e->requested_port = (int)json_integer_value(json_object_get(st, "requested_port"));
		e->pid = (long)live;
		json_decref(st);
	}
	closedir(d);
	if (r < 0) {
		free(v);
		return r;
	}
	if (n)
		qsort(v, n, sizeof *v, cmp_entry);
	k8s_env_names(v, n);
	*ret = v;
	*ret_n = n;
	return 0;
}

int k8s_session_list(const char *dir, bool dead, struct k8s_entry **ret, size_t *ret_n)
{
	return list(dir, NULL, true, dead, ret, ret_n);
}

bool k8s_entry_exported(const struct k8s_entry *e)
{
	if (!e->pid || e->local_port <= 0)
		return false;
	if (strcmp(e->state, "connected") == 0 || strcmp(e->state, "degraded") == 0)
		return true;
	return strcmp(e->state, "reconnecting") == 0 && e->connected_at[0];
}

/* --- variable names --- */

static void mangle_into(char *dst, size_t n, const char *s)
{
	size_t o = strlen(dst);
	for (; *s && o + 1 < n; s++)
		dst[o++] = isalnum((unsigned char)*s) ? (char)toupper((unsigned char)*s) : '_';
	dst[o] = '\0';
}

static size_t count_env(const struct k8s_entry *v, size_t n, const char *env)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += strcmp(v[i].env, env) == 0;
	return c;
}

static void set_env(struct k8s_entry *e, bool ns, bool port, unsigned num)
{
	char p[24];
	snprintf(e->env, sizeof e->env, "BRIDGE_");
	if (ns) {
		mangle_into(e->env, sizeof e->env, e->namespace);
		mangle_into(e->env, sizeof e->env, "_");
	}
	mangle_into(e->env, sizeof e->env, e->service);
	if (port) {
		snprintf(p, sizeof p, "_%d", e->remote_port);
		mangle_into(e->env, sizeof e->env, p);
	}
	if (num) {
		snprintf(p, sizeof p, "_%u", num);
		mangle_into(e->env, sizeof e->env, p);
	}
}

void k8s_env_names(struct k8s_entry *v, size_t n)
{
	if (n == 0)
		return;
	/* Per entry: qualified by namespace, by port. */
	bool ns[n], port[n];
	for (size_t i = 0; i < n; i++) {
		ns[i] = port[i] = false;
		set_env(&v[i], false, false, 0);
	}
	/* 1: every party to a clash is qualified by namespace, 2: then by
	 * port; each repeated until it changes nothing, since qualifying one
	 * name can make it meet another. */
	for (int step = 0; step < 2; step++) {
		bool changed = true;
		while (changed) {
			changed = false;
			bool clash[n];
			for (size_t i = 0; i < n; i++)
				clash[i] = count_env(v, n, v[i].env) > 1;
			for (size_t i = 0; i < n; i++) {
				bool *flag = step == 0 ? &ns[i] : &port[i];
				if (!clash[i] || *flag)
					continue;
				*flag = true;
				set_env(&v[i], ns[i], port[i], 0);
				changed = true;
			}
		}
	}
	/* 3: whatever still clashes (the same forward twice, names that
	 * mangle alike) is numbered with the first number no entry has. */
	for (size_t i = 1; i < n; i++) {
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(v[j].env, v[i].env) == 0;
		for (unsigned k = 2; dup; k++) {
			set_env(&v[i], ns[i], port[i], k);
			dup = count_env(v, n, v[i].env) > 1;
		}
	}
}

/* --- output --- */

int k8s_env_format_parse(const char *s, enum env_format *ret)
{
	static const char *const names[] = {"sh", "fish", "dotenv", "json"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(s, names[i]) == 0) {
			*ret = (enum env_format)i;
			return 0;
		}
	return -EINVAL;
}

json_t *k8s_env_json(const struct k8s_entry *v, size_t n)
{
	json_t *o = json_object();
	for (size_t i = 0; i < n; i++) {
		char k[640], val[64];
		if (!k8s_entry_exported(&v[i]))
			continue;
		snprintf(k, sizeof k, "%s_URL", v[i].env);
		snprintf(val, sizeof val, "http://127.0.0.1:%d", v[i].local_port);
		json_object_set_new(o, k, json_string(val));
		snprintf(k, sizeof k, "%s_HOST", v[i].env);
		json_object_set_new(o, k, json_string("127.0.0.1"));
		snprintf(k, sizeof k, "%s_PORT", v[i].env);
		snprintf(val, sizeof val, "%d", v[i].local_port);
		json_object_set_new(o, k, json_string(val));
	}
	return o;
}

void k8s_env_print(FILE *f, const struct k8s_entry *v, size_t n, enum env_format fmt)
{
	if (fmt == ENV_JSON) {
		json_t *o = k8s_env_json(v, n);
		char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		json_decref(o);
		if (s)
			fprintf(f, "%s\n", s);
		free(s);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct k8s_entry *e = &v[i];
		if (!k8s_entry_exported(e))
			continue;
		/* Names and values are [A-Z0-9_] and a URL of digits: no
		 * quoting is needed, but the comment line holds names a cluster
		 * chose, so it is cleaned. */
		char ns[256], svc[256];
		snprintf(ns, sizeof ns, "%s", e->namespace);
		snprintf(svc, sizeof svc, "%s", e->service);
		text_sanitize(ns);
		text_sanitize(svc);
		fprintf(f, "# %s/%s (remote :%d \u2192 local :%d)\n", ns, svc, e->remote_port,
			e->local_port);
		const char *pre = fmt == ENV_SH ? "export " : fmt == ENV_FISH ? "set -gx " : "";
		const char *eq = fmt == ENV_FISH ? " " : "=";
		const char *q = fmt == ENV_DOTENV ? "" : "'";
		fprintf(f, "%s%s_URL%s%shttp://127.0.0.1:%d%s\n", pre, e->env, eq, q, e->local_port,
			q);
		fprintf(f, "%s%s_HOST%s%s127.0.0.1%s\n", pre, e->env, eq, q, q);
		fprintf(f, "%s%s_PORT%s%s%d%s\n", pre, e->env, eq, q, e->local_port, q);
	}
}

json_t *k8s_entry_json(const struct k8s_entry *e)
{
	return json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:s, s:I, s:s, s:s, s:s, s:s?, s:i, s:b}",
			 "name", e->name, "service", e->service, "namespace", e->namespace,
			 "remote_port", e->remote_port, "local_port", e->local_port,
			 "requested_port", e->requested_port, "state", e->state, "pid",
			 (json_int_t)e->pid, "started_at", e->started_at, "origin", e->origin,
			 "env_prefix", e->env, "pod", e->pod[0] ? e->pod : NULL, "target_port",
			 e->target_port, "exported", k8s_entry_exported(e));
}

/* --- the files --- */

/* The live intercepts (kind "intercept" state files whose holder has the
 * lock; `self` live without a probe, as for list()), as session.json
 * lists them. */
static json_t *intercepts(const char *dir, const char *self)
{
	json_t *out = json_array();
	DIR *d = opendir(dir);
	if (!d)
		return out;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len <= 6 || len - 6 >= 80 || strcmp(de->d_name + len - 6, ".state"))
			continue;
		char name[80];
		snprintf(name, sizeof name, "%.*s", (int)(len - 6), de->d_name);
		json_t *st = NULL;
		if (state_read(dir, name, &st) < 0 || !st)
			continue;
		const char *kind = json_string_value(json_object_get(st, "kind"));
		pid_t live = 0;
		if (kind && strcmp(kind, "intercept") == 0)
			live = self && strcmp(self, name) == 0 ? getpid() : state_probe(dir, name);
		if (live) {
			json_t *e = json_object();
			static const char *const keys[] = {
			    "name",  "namespace", "service",	"session",
			    "mode",  "agent_pod", "ports",	"original_selector",
			    "state", "context",	  "kubeconfig", "started_at"};
			for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
				json_t *v = json_object_get(st, keys[i]);
				if (v)
					json_object_set(e, keys[i], v);
			}
			json_object_set_new(e, "pid", json_integer(live));
			json_array_append_new(out, e);
		}
		json_decref(st);
	}
	closedir(d);
	return out;
}

static int dir_file(char *buf, size_t n, const char *dir, const char *name)
{
	int r = snprintf(buf, n, "%s/%s", dir, name);
	return r < 0 || (size_t)r >= n ? -ENAMETOOLONG : 0;
}

static int write_files(const char *dir, const struct k8s_entry *v, size_t n, json_t *icpts)
{
	char path[PATH_MAX];
	int r;
	size_t ni = json_array_size(icpts);
	if (n == 0 && ni == 0) {
		k8s_session_remove(dir);
		json_decref(icpts);
		return 0;
	}
	/* session.json: seed 000's fields; with only intercepts, the first
	 * one's cluster. */
	json_t *i0 = json_array_get(icpts, 0);
	const char *kc = n ? v[0].kubeconfig : json_string_value(json_object_get(i0, "kubeconfig"));
	const char *cx = n ? v[0].context : json_string_value(json_object_get(i0, "context"));
	const char *started = n ? v[0].started_at : NULL;
	for (size_t i = 1; i < n; i++)
		if (strcmp(v[i].started_at, started) < 0)
			started = v[i].started_at;
	for (size_t i = 0; i < ni; i++) {
		const char *s =
		    json_string_value(json_object_get(json_array_get(icpts, i), "started_at"));
		if (s && (!started || strcmp(s, started) < 0))
			started = s;
	}
	json_t *entries = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(entries, k8s_entry_json(&v[i]));
	json_t *doc =
	    json_pack("{s:s?, s:s?, s:s, s:o, s:o}", "kubeconfig", kc && kc[0] ? kc : NULL,
		      "context", cx && cx[0] ? cx : NULL, "started_at", started ? started : "",
		      "entries", entries, "intercepts", icpts);
	if (!doc)
		return -ENOMEM;
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (!text)
		return -ENOMEM;
	if ((r = dir_file(path, sizeof path, dir, SESSION_FILE)) == 0) {
		size_t len = strlen(text);
		text[len] = '\n';
		r = write_file_atomic(path, text, len + 1, 0600);
	}
	free(text);
	if (r < 0)
		return r;

	/* bridge.env */
	char *buf = NULL;
	size_t blen = 0;
	FILE *f = open_memstream(&buf, &blen);
	if (!f)
		return -ENOMEM;
	fprintf(f, "# devbridge: Kubernetes bridges; rewritten on every change, do not edit\n");
	k8s_env_print(f, v, n, ENV_DOTENV);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	if ((r = dir_file(path, sizeof path, dir, ENV_FILE)) == 0)
		r = write_file_atomic(path, buf, blen, 0600);
	free(buf);
	return r;
}

static int write_session(const char *dir, const char *self, bool wait)
{
	char path[PATH_MAX];
	int r = dir_file(path, sizeof path, dir, LOCK_FILE);
	if (r < 0)
		return r;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	/* Each writer updates its own state file first, then reads them all
	 * under this lock: the last writer sees every update. */
	while (flock(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB) < 0)
		if (errno != EINTR) {
			r = errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
			close(fd);
			return r;
		}
	struct k8s_entry *v;
	size_t n;
	r = list(dir, self, true, false, &v, &n);
	if (r == 0)
		r = write_files(dir, v, n, intercepts(dir, self));
	free(v);
	close(fd);
	return r;
}

int k8s_session_write(const char *dir, const char *self)
{
	return write_session(dir, self, true);
}

int k8s_session_try_write(const char *dir, const char *self)
{
	return write_session(dir, self, false);
}

int k8s_session_prune(const char *dir)
{
	char path[PATH_MAX];
	int r = dir_file(path, sizeof path, dir, SESSION_FILE);
	if (r < 0)
		return r;
	json_error_t je;
	json_t *doc = json_load_file(path, 0, &je);
	if (!doc)
		return 0; /* none (or not ours to judge) */
	bool stale = false;
	size_t i;
	json_t *e;
	static const char *const lists[] = {"entries", "intercepts"};
	for (size_t l = 0; l < 2; l++)
		json_array_foreach(json_object_get(doc, lists[l]), i, e)
		{
			const char *name = json_string_value(json_object_get(e, "name"));
			if (name && cfg_name_valid(name) && state_probe(dir, name) == 0)
				stale = true;
		}
	json_decref(doc);
	return stale ? k8s_session_write(dir, NULL) : 0;
}

void k8s_session_remove(const char *dir)
{
	char path[PATH_MAX];
	if (dir_file(path, sizeof path, dir, SESSION_FILE) == 0)
		unlink(path);
	if (dir_file(path, sizeof path, dir, ENV_FILE) == 0)
		unlink(path);
}
