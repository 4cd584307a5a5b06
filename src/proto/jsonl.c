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
#include "core/buf.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JSONL_READ_MIN	     16384 /* room for one read when the buffer is empty */
#define JSONL_SLACK	     4096  /* room to read beyond a maximal partial line */
#define JSONL_READS_PER_CALL 64	   /* fairness: the loop is level-triggered */

/* The undelivered bytes are in `in`.  Once every complete line is
 * delivered they are a partial line of at most max + 1 bytes (none while
 * discarding), so the maximum, `limit`, always leaves room to read.
 * jsonl_feed raises the maximum for the caller's own bytes and lowers it
 * again once they are delivered (lines left when the callback stopped may
 * keep it raised until the next call delivers them). */
struct jsonl_reader {
	struct buf in;
	size_t limit; /* the maximum once everything complete is delivered */
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
	buf_init(&r->in, r->limit);
	*ret = r;
	return 0;
}

void jsonl_reader_free(struct jsonl_reader *r)
{
	if (!r)
		return;
	buf_free(&r->in);
	free(r);
}

const char *jsonl_pending(const struct jsonl_reader *r, size_t *len)
{
	*len = buf_len(&r->in);
	return buf_data(&r->in);
}

/* While discarding an oversized line: drop buffered bytes up to and
 * including its newline. */
static void discard_buffered(struct jsonl_reader *r)
{
	const char *p = buf_data(&r->in);
	const char *nl = memchr(p, '\n', buf_len(&r->in));
	if (!nl) {
		buf_consume(&r->in, buf_len(&r->in));
		return;
	}
	buf_consume(&r->in, (size_t)(nl - p) + 1);
	r->discarding = false;
}

/* Deliver every complete line in the buffer.  0, or -ECANCELED when the
 * callback stopped (after which r must not be touched). */
static int deliver(struct jsonl_reader *r, jsonl_line_cb cb, void *data)
{
	for (;;) {
		if (r->discarding)
			discard_buffered(r);
		if (r->discarding || buf_len(&r->in) == 0)
			break;
		char *p = buf_mutable(&r->in);
		size_t ll = 0;
		ssize_t c = jsonl_next_line(p, buf_len(&r->in), r->max, &ll);
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
		/* Consuming only moves an offset: the line stays where it is
		 * until the next append or read. */
		buf_consume(&r->in, (size_t)c);
		if (ll == 0)
			continue;
		p[ll] = '\0'; /* the '\r' or '\n', already consumed: a C string for free */
		if (!cb(data, JSONL_LINE, p, ll))
			return -ECANCELED;
	}
	return 0;
}

/* After a jsonl_feed larger than the limit, or the lines it left when the
 * callback stopped are gone: back to the limit, giving memory back.  Fails
 * (harmlessly, keeping the raised maximum) only while more than the limit
 * is still undelivered, which deliver() leaves only when stopped. */
static void shrink(struct jsonl_reader *r)
{
	if (buf_max(&r->in) != r->limit)
		(void)buf_set_max(&r->in, r->limit);
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
	 * the rest is in jsonl_pending and r is not touched again.  The
	 * maximum grows with the caller's input, not the peer's, and shrinks
	 * back. */
	if (len > 0) {
		size_t have = buf_len(&r->in);
		if (len > BUF_MAX_LIMIT - have)
			return -ENOMEM;
		if (have + len > buf_max(&r->in)) {
			int x = buf_set_max(&r->in, have + len);
			if (x < 0)
				return x;
		}
		int x = buf_append(&r->in, bytes, len);
		if (x < 0)
			return x;
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
		/* Undelivered bytes are a partial line of at most max + 1 bytes,
		 * so the limit always leaves JSONL_SLACK bytes of room. */
		size_t have = buf_len(&r->in);
		size_t want = have < JSONL_READ_MIN ? JSONL_READ_MIN - have : JSONL_SLACK;
		if (want > buf_avail(&r->in))
			want = buf_avail(&r->in); /* a small limit */
		void *p;
		size_t room;
		x = buf_reserve(&r->in, want, &p, &room);
		if (x < 0)
			return x;
		ssize_t n = read(fd, p, room);
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
			buf_consume(&r->in, buf_len(&r->in));
			r->discarding = false;
			return -EPIPE;
		}
		buf_commit(&r->in, (size_t)n);
		x = deliver(r, cb, data);
		if (x < 0)
			return x;
	}
	return 0;
}
