/* audit.c - see audit.h. */
#include "core/audit.h"
#include "core/state.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AUDIT_MAX_FILE (64u * 1024 * 1024)

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

int audit_tail(const char *dir, const char *tunnel, long n, json_t **ret)
{
	char path[4096];
	int r = state_path(path, sizeof path, dir, tunnel, "log");
	if (r < 0)
		return r;
	char *buf;
	size_t len;
	r = read_file(path, AUDIT_MAX_FILE, &buf, &len);
	if (r < 0)
		return r;
	json_t *all = json_array();
	for (char *p = buf, *end; p < buf + len; p = end + 1) {
		end = memchr(p, '\n', (size_t)(buf + len - p));
		if (!end)
			end = buf + len;
		json_t *ev;
		if (end > p && audit_parse_line(p, (size_t)(end - p), &ev) == 0)
			json_array_append_new(all, ev);
	}
	free(buf);
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
