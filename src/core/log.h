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

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
