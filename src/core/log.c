/* log.c - see log.h. */
#include "core/log.h"
#include "core/num.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static enum log_level current = LOG_WARN;
static int timestamps;

/* stderr rotation: the file's path, its size so far, and the limit. */
static char rot_path[PATH_MAX];
static unsigned long long rot_size, rot_max;

unsigned long long log_max_bytes(void)
{
	const char *v = getenv("DEVBRIDGE_LOG_MAX_BYTES");
	uint64_t n;
	if (v && *v &&
	    parse_uint_range(v, strlen(v), 4096, LOG_MAX_BYTES_LIMIT, NUM_LEADING_ZEROS, &n) == 0)
		return n;
	return LOG_MAX_BYTES_DEFAULT;
}

void log_rotate_stderr(void)
{
	struct stat fst, pst;
	char link[64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", STDERR_FILENO);
	ssize_t n = readlink(link, rot_path, sizeof rot_path - 1);
	if (n <= 0 || fstat(STDERR_FILENO, &fst) < 0 || !S_ISREG(fst.st_mode)) {
		rot_path[0] = '\0';
		return;
	}
	rot_path[n] = '\0';
	/* The path must still name our file (not "... (deleted)"). */
	if (stat(rot_path, &pst) < 0 || pst.st_dev != fst.st_dev || pst.st_ino != fst.st_ino) {
		rot_path[0] = '\0';
		return;
	}
	rot_size = (unsigned long long)fst.st_size;
	rot_max = log_max_bytes();
}

static void rotate_now(void)
{
	char old[PATH_MAX + 4];
	snprintf(old, sizeof old, "%s.1", rot_path);
	fflush(stderr);
	fflush(stdout);
	if (rename(rot_path, old) < 0)
		goto off;
	int fd =
	    open(rot_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		goto off;
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	rot_size = 0;
	return;
off:
	rot_path[0] = '\0'; /* keep logging where we are; try no more */
}

void log_set_level(enum log_level level)
{
	current = level;
}

enum log_level log_get_level(void)
{
	return current;
}

void log_set_timestamps(int on)
{
	timestamps = on;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	if (level > current)
		return;
	char line[2048];
	int off = 0;
	if (timestamps) {
		char ts[40];
		now_iso8601(ts, sizeof ts);
		off =
		    snprintf(line, sizeof line, "%s [%ld] %s: ", ts, (long)getpid(), names[level]);
	} else {
		off = snprintf(line, sizeof line, "devbridge: %s",
			       level == LOG_WARN ? "warning: " : "");
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + off, sizeof line - (size_t)off - 1, fmt, ap);
	va_end(ap);
	int len = fprintf(stderr, "%s\n", line);
	if (rot_path[0] && len > 0 && (rot_size += (unsigned long long)len) > rot_max)
		rotate_now();
}
