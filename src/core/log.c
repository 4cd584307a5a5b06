/* log.c - see log.h. */
#include "core/log.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static enum log_level current = LOG_WARN;
static int timestamps;

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
	fprintf(stderr, "%s\n", line);
}
