/* audit.c - see audit.h. */
#include "core/audit.h"
#include "core/log.h"
#include "core/state.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define AUDIT_MAX_FILE (64u * 1024 * 1024)

/* Past log_max_bytes() the log becomes NAME.log.1 and a new one starts.
 * Several processes append (a supervisor, `down`): whoever gets the lock
 * without waiting rotates, after checking that the path is still the file
 * it has open; the others append to the file they have, which is the old
 * one at worst: nothing is lost, nobody waits. */
static int maybe_rotate(const char *path, int fd, size_t add)
{
	struct stat st, pst;
	if (fstat(fd, &st) < 0 || (unsigned long long)st.st_size + add <= log_max_bytes())
		return fd;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return fd;
	char old[4096 + 4];
	if (stat(path, &pst) < 0 || pst.st_ino != st.st_ino || pst.st_dev != st.st_dev ||
	    (size_t)snprintf(old, sizeof old, "%s.1", path) >= sizeof old || rename(path, old) < 0)
		return fd; /* rotated by someone else meanwhile, or cannot: append */
	int nfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (nfd < 0)
		return fd;
	close(fd);
	return nfd;
}

int audit_append(const char *dir, const char *tunnel, const char *event, const char *actor,
		 const char *actor_class, const char *detail)
{
	char path[4096], ts[40];
	int r = state_path(path, sizeof path, dir, tunnel, "log");
	if (r < 0)
		return r;
	now_iso8601(ts, sizeof ts);
	char cut[AUDIT_MAX_LINE / 2];
	snprintf(cut, sizeof cut, "%s", detail ? detail : "");
	json_t *o =
	    json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s}", "ts", ts, "tunnel", tunnel, "event",
		      event, "actor", actor, "actor_class", actor_class, "detail", cut);
	if (!o)
		return -ENOMEM;
	if (!actor)
		json_object_set_new(o, "actor", json_null());
	if (!actor_class)
		json_object_set_new(o, "actor_class", json_null());
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	char *line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return -ENOMEM;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		free(line);
		return -errno;
	}
	fd = maybe_rotate(path, fd, n + 1);
	if (fd < 0) {
		free(line);
		return fd;
	}
	r = write_all(fd, line, n + 1);
	close(fd);
	free(line);
	return r;
}

int audit_parse_line(const char *line, size_t len, json_t **ret)
{
	json_error_t err;
	json_t *j = json_loadb(line, len, 0, &err);
	if (!j || !json_is_object(j) || !json_is_string(json_object_get(j, "event"))) {
		json_decref(j);
		return -EINVAL;
	}
	static const char *const fields[] = {"ts",    "tunnel",	     "event",
					     "actor", "actor_class", "detail"};
	json_t *o = json_object();
	for (size_t i = 0; o && i < ARRAY_SIZE(fields); i++) {
		json_t *v = json_object_get(j, fields[i]);
		json_object_set_new(o, fields[i],
				    json_is_string(v)
					? json_copy(v)
					: (json_is_null(v) ? json_null() : json_string("")));
	}
	json_decref(j);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

static void parse_into(json_t *all, const char *buf, size_t len)
{
	for (const char *p = buf, *end; p < buf + len; p = end + 1) {
		end = memchr(p, '\n', (size_t)(buf + len - p));
		if (!end)
			end = buf + len;
		json_t *ev;
		if (end > p && audit_parse_line(p, (size_t)(end - p), &ev) == 0)
			json_array_append_new(all, ev);
	}
}

int audit_tail(const char *dir, const char *tunnel, long n, json_t **ret)
{
	char path[4096], old[4096 + 4];
	int r = state_path(path, sizeof path, dir, tunnel, "log");
	if (r < 0)
		return r;
	snprintf(old, sizeof old, "%s.1", path);
	char *buf;
	size_t len;
	r = read_file(path, AUDIT_MAX_FILE, &buf, &len);
	if (r < 0)
		return r;
	json_t *all = json_array();
	parse_into(all, buf, len);
	free(buf);
	/* Not enough in the current file: the rotated one comes first. */
	if (n <= 0 || json_array_size(all) < (size_t)n) {
		if (read_file(old, AUDIT_MAX_FILE, &buf, &len) == 0) {
			json_t *older = json_array();
			parse_into(older, buf, len);
			free(buf);
			json_array_extend(older, all);
			json_decref(all);
			all = older;
		}
	}
	if (n > 0 && json_array_size(all) > (size_t)n) {
		json_t *tail = json_array();
		for (size_t i = json_array_size(all) - (size_t)n; i < json_array_size(all); i++)
			json_array_append(tail, json_array_get(all, i));
		json_decref(all);
		all = tail;
	}
	*ret = all;
	return 0;
}
