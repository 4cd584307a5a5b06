/* state.c - see state.h. */
#include "core/state.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_MAX_BYTES (64 * 1024)
#define PIDFILE_MAX	4096 /* "PID\n" and a note */

int state_dir_resolve(const char *opt, char **ret)
{
	const char *v = opt;
	if (!v || !*v)
		v = getenv("DEVBRIDGE_STATE_DIR");
	if (!v || !*v)
		v = getenv("BRIDGE_STATE_DIR");
	char *s;
	if (v && *v) {
		s = strdup(v);
	} else {
		const char *xdg = getenv("XDG_STATE_HOME");
		const char *home = getenv("HOME");
		if (xdg && *xdg == '/')
			s = strdup_printf("%s/devbridge", xdg);
		else if (home && *home)
			s = strdup_printf("%s/.local/state/devbridge", home);
		else
			return -ENOENT;
	}
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int state_dir_ensure(const char *dir)
{
	int r = mkdir_p(dir, 0700);
	if (r < 0)
		return r;
	struct stat st;
	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if ((st.st_mode & 077) != 0) {
		if (st.st_uid != geteuid())
			return -EPERM;
		if (chmod(dir, 0700) < 0)
			return -errno;
	}
	return 0;
}

int state_path(char *buf, size_t n, const char *dir, const char *name, const char *ext)
{
	int w = snprintf(buf, n, "%s/%s.%s", dir, name, ext);
	return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 0;
}

static int lock_op(int fd, int cmd, struct flock *fl)
{
	memset(fl, 0, sizeof *fl);
	fl->l_type = F_WRLCK;
	fl->l_whence = SEEK_SET;
	while (fcntl(fd, cmd, fl) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int state_lock(const char *dir, const char *name, pid_t *holder)
{
	char path[4096];
	int r = state_path(path, sizeof path, dir, name, "pid");
	if (r < 0)
		return r;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	struct flock fl;
	r = lock_op(fd, F_SETLK, &fl);
	if (r == -EAGAIN || r == -EACCES) {
		if (holder && lock_op(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
			*holder = fl.l_pid;
		close(fd);
		return -EBUSY;
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	r = state_lock_note(fd, NULL);
	if (r == 0 && fchmod(fd, 0600) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int state_lock_note(int lock_fd, const char *note)
{
	char buf[PIDFILE_MAX];
	int n = snprintf(buf, sizeof buf, "%ld\n%.*s%s", (long)getpid(), PIDFILE_MAX - 32,
			 note ? note : "", note ? "\n" : "");
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sizeof buf)
		n = (int)sizeof buf - 1;
	/* Write first, then cut: a reader never sees an empty file. */
	ssize_t w = pwrite(lock_fd, buf, (size_t)n, 0);
	if (w < 0)
		return -errno;
	if (w != n)
		return -ENOSPC;
	if (ftruncate(lock_fd, n) < 0)
		return -errno;
	return 0;
}

int state_lock_is_current(int lock_fd, const char *dir, const char *name)
{
	char path[4096];
	struct stat a, b;
	int r = state_path(path, sizeof path, dir, name, "pid");
	if (r < 0)
		return r;
	if (fstat(lock_fd, &a) < 0)
		return -errno;
	if (lstat(path, &b) < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int state_read_note(const char *dir, const char *name, char *buf, size_t n)
{
	char path[4096], data[PIDFILE_MAX];
	int r = state_path(path, sizeof path, dir, name, "pid");
	if (r < 0)
		return r;
	if (n)
		buf[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	ssize_t len = pread(fd, data, sizeof data - 1, 0);
	r = len < 0 ? -errno : 0;
	close(fd);
	if (len <= 0)
		return r;
	data[len] = '\0';
	char *nl = strchr(data, '\n');
	if (!nl || !nl[1])
		return 0;
	char *note = nl + 1;
	note[strcspn(note, "\n")] = '\0';
	snprintf(buf, n, "%s", note);
	return 0;
}

pid_t state_probe(const char *dir, const char *name)
{
	char path[4096];
	if (state_path(path, sizeof path, dir, name, "pid") < 0)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	struct flock fl;
	/* F_GETLK only asks: it never takes the lock, so a probe cannot make a
	 * starting supervisor believe another one is running. */
	int r = lock_op(fd, F_GETLK, &fl);
	close(fd);
	if (r < 0 || fl.l_type == F_UNLCK)
		return 0;
	return fl.l_pid;
}

int state_write(const char *dir, const char *name, json_t *obj)
{
	char path[4096];
	int r = state_path(path, sizeof path, dir, name, "state");
	if (r < 0)
		return r;
	char *s = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	s[n] = '\0';
	char *line = strdup_printf("%s\n", s);
	free(s);
	if (!line)
		return -ENOMEM;
	r = write_file_atomic(path, line, strlen(line), 0600);
	free(line);
	return r;
}

int state_parse(const char *buf, size_t len, json_t **ret)
{
	json_error_t err;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
	if (!j)
		return -EINVAL;
	if (!json_is_object(j)) {
		json_decref(j);
		return -EINVAL;
	}
	*ret = j;
	return 0;
}

int state_read(const char *dir, const char *name, json_t **ret)
{
	char path[4096];
	int r = state_path(path, sizeof path, dir, name, "state");
	if (r < 0)
		return r;
	char *buf;
	size_t len;
	r = read_file(path, STATE_MAX_BYTES, &buf, &len);
	if (r < 0)
		return r;
	r = state_parse(buf, len, ret);
	free(buf);
	return r;
}

bool state_name_reserved(const char *name)
{
	return name && (strcmp(name, "host-daemon") == 0 || strcmp(name, "container-daemon") == 0);
}
