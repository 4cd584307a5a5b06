/* jsonl.h - newline-delimited JSON framing (dbr control channel).
 *
 * jsonl_next_line is the pure parser (picohttpparser style): no
 * allocation, returns bytes consumed, -2 for need more, -1 for a line over
 * the limit.  struct jsonl_reader wraps it with a bounded buffer for a
 * non-blocking socket: an oversized line is reported once, the rest of it
 * is discarded up to its newline, and the connection keeps going (dbr). */
#ifndef DEVBRIDGE_PROTO_JSONL_H
#define DEVBRIDGE_PROTO_JSONL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define JSONL_MAX_LINE 65536 /* bytes, without the newline */

/* Find the first line in buf[0..len).  On success returns the bytes to
 * consume (line + '\n') and sets *line_len (without '\n', and without a
 * trailing '\r').  -2: no newline yet and len <= max.  -1: no newline
 * within max bytes (the line is too long). */
ssize_t jsonl_next_line(const char *buf, size_t len, size_t max, size_t *line_len);

struct jsonl_reader;

enum jsonl_event {
	JSONL_LINE,	/* a complete line: (line, len) */
	JSONL_TOO_LONG, /* a line exceeded the limit; it is being discarded */
};

/* Return false from the callback to stop (e.g. the connection was closed
 * inside it); jsonl_read then returns -ECANCELED. */
typedef bool (*jsonl_line_cb)(void *data, enum jsonl_event ev, const char *line, size_t len);

int jsonl_reader_new(size_t max_line, struct jsonl_reader **ret);
void jsonl_reader_free(struct jsonl_reader *r);

/* Read what is available from non-blocking `fd` and deliver each line.
 * Returns 0 (would block), -EPIPE at EOF (a final unterminated line is
 * dropped), -ECANCELED if the callback stopped, or -errno. */
int jsonl_read(struct jsonl_reader *r, int fd, jsonl_line_cb cb, void *data);

/* Feed bytes directly (tests, fuzzing, data already read). */
int jsonl_feed(struct jsonl_reader *r, const char *bytes, size_t len, jsonl_line_cb cb, void *data);

/* Bytes buffered but not yet delivered (e.g. raw bytes after a handshake
 * line on a data connection); valid until the next call. */
const char *jsonl_pending(const struct jsonl_reader *r, size_t *len);

#endif
