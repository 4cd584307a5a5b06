/* jsonl.c - see jsonl.h.
 *
 * The limit counts the bytes of a line without its terminator; the
 * terminator is "\n" or "\r\n", so a line of exactly `max` bytes followed by
 * "\r\n" is accepted.  Empty lines (keep-alives, a stray "\r\n") are skipped
 * by the reader and never reach the callback.
 *
 * The reader never touches itself after the callback returned false, so a
 * callback may free the reader (or the connection owning it) and stop. */
#include "proto/jsonl.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JSONL_INITIAL_CAP    16384
#define JSONL_SLACK	     4096 /* room to read beyond a maximal partial line */
#define JSONL_READS_PER_CALL 64	  /* fairness: the loop is level-triggered */

struct jsonl_reader {
	char *buf;
	size_t cap;   /* allocated */
	size_t limit; /* cap between calls never exceeds this */
	size_t start; /* first undelivered byte */
	size_t end;   /* end of buffered bytes */
	size_t max;   /* longest line, without terminator */
	bool discarding;
};

ssize_t jsonl_next_line(const char *buf, size_t len, size_t max, size_t *line_len)
{
	/* A maximal line may be followed by "\r\n": look at most max + 2 bytes
	 * ahead, so a flood without newlines costs O(max), not O(len). */
	size_t window = len;
	if (max <= SIZE_MAX - 2 && window > max + 2)
		window = max + 2;
	const char *nl = window ? memchr(buf, '\n', window) : NULL;
	if (nl) {
		size_t n = (size_t)(nl - buf);
		size_t ll = n > 0 && buf[n - 1] == '\r' ? n - 1 : n;
		if (ll > max || n >= (size_t)SSIZE_MAX)
			return -1;
		*line_len = ll;
		return (ssize_t)(n + 1);
	}
	if (len <= max)
		return -2;
	/* max bytes then '\r': the '\n' may still come. */
	if (len == max + 1 && buf[max] == '\r')
		return -2;
	return -1;
}

int jsonl_reader_new(size_t max_line, struct jsonl_reader **ret)
{
	if (max_line == 0)
		max_line = JSONL_MAX_LINE;
	if (max_line > (SIZE_MAX / 4))
		return -EINVAL;
	struct jsonl_reader *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->max = max_line;
	r->limit = max_line + 2 + JSONL_SLACK;
	r->cap = r->limit < JSONL_INITIAL_CAP ? r->limit : JSONL_INITIAL_CAP;
	r->buf = malloc(r->cap);
	if (!r->buf) {
		free(r);
		return -ENOMEM;
	}
	*ret = r;
	return 0;
}

void jsonl_reader_free(struct jsonl_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

const char *jsonl_pending(const struct jsonl_reader *r, size_t *len)
{
	*len = r->end - r->start;
	return r->buf + r->start;
}

/* While discarding an oversized line: drop buffered bytes up to and
 * including its newline. */
static void discard_buffered(struct jsonl_reader *r)
{
	const char *p = r->buf + r->start;
	const char *nl = memchr(p, '\n', r->end - r->start);
	if (!nl) {
		r->start = r->end = 0;
		return;
	}
	r->start += (size_t)(nl - p) + 1;
	r->discarding = false;
}

/* Deliver every complete line in the buffer.  0, or -ECANCELED when the
 * callback stopped (after which r must not be touched). */
static int deliver(struct jsonl_reader *r, jsonl_line_cb cb, void *data)
{
	for (;;) {
		if (r->discarding)
			discard_buffered(r);
		if (r->discarding || r->start == r->end)
			break;
		char *p = r->buf + r->start;
		size_t ll = 0;
		ssize_t c = jsonl_next_line(p, r->end - r->start, r->max, &ll);
		if (c == -2)
			break;
		if (c == -1) {
			/* Consume what we can before telling, so that jsonl_pending
			 * never returns part of the oversized line. */
			r->discarding = true;
			discard_buffered(r);
			if (!cb(data, JSONL_TOO_LONG, NULL, 0))
				return -ECANCELED;
			continue;
		}
		r->start += (size_t)c;
		if (ll == 0)
			continue;
		p[ll] = '\0'; /* the '\r' or '\n', already consumed: a C string for free */
		if (!cb(data, JSONL_LINE, p, ll))
			return -ECANCELED;
	}
	if (r->start == r->end)
		r->start = r->end = 0;
	return 0;
}

static void compact(struct jsonl_reader *r)
{
	if (r->start == 0)
		return;
	size_t n = r->end - r->start;
	if (n)
		memmove(r->buf, r->buf + r->start, n);
	r->start = 0;
	r->end = n;
}

static int reserve(struct jsonl_reader *r, size_t cap)
{
	if (cap <= r->cap)
		return 0;
	char *b = realloc(r->buf, cap);
	if (!b)
		return -ENOMEM;
	r->buf = b;
	r->cap = cap;
	return 0;
}

/* After a large jsonl_feed, give memory back: between calls at most `limit`
 * bytes are kept. */
static void shrink(struct jsonl_reader *r)
{
	if (r->cap <= r->limit)
		return;
	compact(r);
	if (r->end > r->limit)
		return; /* cannot happen: undelivered bytes are < max + 2 */
	char *b = realloc(r->buf, r->limit);
	if (b) {
		r->buf = b;
		r->cap = r->limit;
	}
}

int jsonl_feed(struct jsonl_reader *r, const char *bytes, size_t len, jsonl_line_cb cb, void *data)
{
	/* While discarding, the buffer is empty (deliver drops what it can
	 * before anything else): skip straight through the input. */
	if (r->discarding) {
		const char *nl = len ? memchr(bytes, '\n', len) : NULL;
		if (!nl)
			return 0;
		size_t skip = (size_t)(nl - bytes) + 1;
		bytes += skip;
		len -= skip;
		r->discarding = false;
	}
	/* All of the input goes into the buffer before any callback runs, after
	 * lines left over from a call the callback stopped: if one stops now,
	 * the rest is in jsonl_pending and r is not touched again.  The buffer
	 * grows with the caller's input, not the peer's, and shrinks back. */
	if (len > 0) {
		compact(r);
		if (len > SIZE_MAX - r->end)
			return -ENOMEM;
		int x = reserve(r, r->end + len);
		if (x < 0)
			return x;
		memcpy(r->buf + r->end, bytes, len);
		r->end += len;
	}
	int x = deliver(r, cb, data);
	if (x < 0)
		return x;
	shrink(r);
	return 0;
}

int jsonl_read(struct jsonl_reader *r, int fd, jsonl_line_cb cb, void *data)
{
	int x = deliver(r, cb, data);
	if (x < 0)
		return x;
	shrink(r);
	for (int reads = 0; reads < JSONL_READS_PER_CALL; reads++) {
		compact(r);
		/* Undelivered bytes are a partial line of at most max + 1 bytes,
		 * so growing up to limit always leaves room. */
		if (r->cap - r->end < JSONL_SLACK && r->cap < r->limit) {
			size_t want = r->cap * 2;
			if (want > r->limit || want < r->cap)
				want = r->limit;
			x = reserve(r, want);
			if (x < 0)
				return x;
		}
		ssize_t n = read(fd, r->buf + r->end, r->cap - r->end);
		if (n < 0) {
			if (errno == EINTR) {
				reads--;
				continue;
			}
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		if (n == 0) {
			/* A final unterminated line is dropped. */
			r->start = r->end = 0;
			r->discarding = false;
			return -EPIPE;
		}
		r->end += (size_t)n;
		x = deliver(r, cb, data);
		if (x < 0)
			return x;
	}
	return 0;
}
