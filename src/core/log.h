/* log.h - diagnostics for humans on stderr.  Library code returns errors;
 * only the command layer and daemons' main loops log. */
#ifndef DEVBRIDGE_CORE_LOG_H
#define DEVBRIDGE_CORE_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Prefix every line with a timestamp and pid (daemons writing to a file). */
void log_set_timestamps(int on);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Logs in the state directory (NAME.log, NAME.out, host-daemon.log) stay
 * under this size: past it the file becomes FILE.1 (replacing an older
 * one) and a new one starts.  10 MiB, or $DEVBRIDGE_LOG_MAX_BYTES (4096
 * to 64 MiB). */
#define LOG_MAX_BYTES_DEFAULT (10ull * 1024 * 1024)
#define LOG_MAX_BYTES_LIMIT   (64ull * 1024 * 1024)
unsigned long long log_max_bytes(void);

/* When stderr is a regular file (a supervisor's NAME.out), rotate it at
 * log_max_bytes(): rename to FILE.1, reopen FILE onto fds 1 and 2.  A
 * no-op for a terminal or a pipe. */
void log_rotate_stderr(void);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
