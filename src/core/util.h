/* util.h - small helpers shared by every module: clocks, timestamps, fd and
 * file utilities.  All return 0 or a negative errno unless stated. */
#ifndef DEVBRIDGE_CORE_UTIL_H
#define DEVBRIDGE_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Milliseconds on the monotonic clock. */
uint64_t now_mono_ms(void);

/* "2026-03-12T14:23:01.456789Z" for `ts` (CLOCK_REALTIME); buf >= 32. */
void fmt_iso8601(char *buf, size_t n, const struct timespec *ts);
/* The same for now. */
void now_iso8601(char *buf, size_t n);
/* Parse the format above (fraction optional); returns 0 and seconds since
 * the epoch in *ret, or -EINVAL. */
int parse_iso8601(const char *s, double *ret);

/* "3d4h", "2h5m", "4m10s", "12s" */
void fmt_duration(char *buf, size_t n, double seconds);

int fd_set_nonblock(int fd, bool on);
int fd_set_cloexec(int fd, bool on);

/* write() until done, retrying EINTR/EAGAIN-free blocking fds. */
int write_all(int fd, const void *buf, size_t len);

/* Read a whole regular file of at most `max` bytes into a NUL-terminated
 * malloc'd buffer.  -EFBIG when larger. */
int read_file(const char *path, size_t max, char **ret, size_t *ret_len);

/* Write `len` bytes to `path` atomically: a temporary file in the same
 * directory with `mode`, fsync-free (state, not data), then rename(). */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* mkdir -p with `mode` for each created component. */
int mkdir_p(const char *path, mode_t mode);

/* Quote `s` for a POSIX shell if it needs it; malloc'd. */
char *shell_quote(const char *s);

/* argv as one shell-quoted line (for --dry-run and the audit log);
 * malloc'd, NULL on allocation failure. */
char *argv_format(char *const *argv);

/* asprintf that returns NULL on failure. */
char *strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Constant-time comparison of two equal-length byte strings; returns true
 * when equal.  Different lengths compare unequal (length is not secret). */
bool const_time_eq(const void *a, size_t alen, const void *b, size_t blen);

/* Random bytes from getrandom(); falls back to /dev/urandom. */
int random_bytes(void *buf, size_t n);
/* `len` random lowercase hex characters and a NUL into buf (len + 1
 * bytes): session ids, tokens.  0 or -errno (buf is zeroed then). */
int random_hex(char *buf, size_t len);

/* Replace control characters (and DEL) in s with '?', in place: text a
 * peer chose must not drive the terminal that later shows it. */
void text_sanitize(char *s);

/* How many bytes of s, at most max, to keep so the cut does not split a
 * UTF-8 character: "%.*s" with it echoes peer text (or cuts a formatted
 * message) and stays valid UTF-8, which JSON needs.  Reads at most max
 * bytes of s. */
size_t utf8_trunc(const char *s, size_t max);

/* Expand a leading "~/" (or a lone "~") with $HOME.  Returns a malloc'd
 * string (a copy when there is nothing to expand) or NULL. */
char *expand_home(const char *path);

/* Levenshtein distance, capped at `cap` (returns cap+1 beyond it): the
 * "did you mean" of commands and config keys. */
int edit_distance(const char *a, const char *b, int cap);

/* Free *p and set it to NULL; for __attribute__((cleanup)). */
void freep(void *p);
#define _cleanup_free_ __attribute__((cleanup(freep)))
void closep(int *fd);
#define _cleanup_close_ __attribute__((cleanup(closep)))

#endif
