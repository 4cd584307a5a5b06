/* buf.c - see buf.h.
 *
 * Compaction, and why it is linear: `off` counts the bytes consumed since
 * the last time the live bytes were moved to the front (an emptied buffer
 * resets it for free).  Moving costs `len`.  A move happens only when the
 * tail is too short and
 *   - off >= len: the move costs no more than what was consumed; or
 *   - the allocation is at its limit A = max + max/4: then
 *     off + len + n > A while len + n <= max, so off > max/4 >= len/4:
 *     the move costs at most 4 * off.
 * Otherwise the allocation doubles (up to A), which is amortised the usual
 * way.  Without the slack, a full buffer fed one byte per consumed byte
 * would move max bytes per append (quadratic). */
#include "core/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_ALLOC 256

static unsigned char buf_empty[1]; /* buf_data() of a buffer with no memory */

static size_t alloc_limit(size_t max)
{
	return max + max / 4; /* max <= BUF_MAX_LIMIT: no overflow */
}

void buf_init(struct buf *b, size_t max)
{
	*b = (struct buf){.max = max > BUF_MAX_LIMIT ? BUF_MAX_LIMIT : max};
}

void buf_free(struct buf *b)
{
	if (!b)
		return;
	free(b->mem);
	b->mem = NULL;
	b->off = b->len = b->cap = b->room = 0;
}

static void compact(struct buf *b)
{
	if (b->off == 0)
		return;
	if (b->len > 0)
		memmove(b->mem, b->mem + b->off, b->len);
	b->off = 0;
}

/* At least n free bytes at the tail; the caller checked n <= max - len. */
static int make_room(struct buf *b, size_t n)
{
	if (b->cap - b->off - b->len >= n)
		return 0;
	size_t need = b->len + n, limit = alloc_limit(b->max);
	if (need <= b->cap && (b->off >= b->len || b->cap >= limit)) {
		compact(b);
		return 0;
	}
	/* Here cap < limit (else need <= max <= limit <= cap, moved above). */
	size_t cap = b->cap <= limit / 2 ? b->cap * 2 : limit;
	if (cap < BUF_MIN_ALLOC)
		cap = BUF_MIN_ALLOC < limit ? BUF_MIN_ALLOC : limit;
	if (cap < need)
		cap = need;
	unsigned char *m;
	if (b->off == 0) {
		m = realloc(b->mem, cap);
		if (!m)
			return -ENOMEM;
	} else {
		/* realloc would copy the consumed bytes too */
		m = malloc(cap);
		if (!m)
			return -ENOMEM;
		memcpy(m, b->mem + b->off, b->len);
		free(b->mem);
	}
	b->mem = m;
	b->cap = cap;
	b->off = 0;
	return 0;
}

int buf_append(struct buf *b, const void *bytes, size_t n)
{
	if (n == 0)
		return 0;
	if (n > b->max - b->len)
		return -ENOBUFS;
	int r = make_room(b, n);
	if (r < 0)
		return r;
	memcpy(b->mem + b->off + b->len, bytes, n);
	b->len += n;
	b->room = 0;
	return 0;
}

int buf_reserve(struct buf *b, size_t min, void **ret, size_t *ret_room)
{
	if (min == 0)
		return -EINVAL;
	if (min > b->max - b->len)
		return -ENOBUFS;
	int r = make_room(b, min);
	if (r < 0)
		return r;
	size_t room = b->cap - b->off - b->len;
	if (room > b->max - b->len)
		room = b->max - b->len;
	b->room = room;
	*ret = b->mem + b->off + b->len;
	*ret_room = room;
	return 0;
}

int buf_commit(struct buf *b, size_t n)
{
	if (n > b->room)
		return -EINVAL;
	b->len += n;
	b->room = 0;
	return 0;
}

int buf_consume(struct buf *b, size_t n)
{
	if (n > b->len)
		return -EINVAL;
	b->len -= n;
	b->off = b->len == 0 ? 0 : b->off + n;
	b->room = 0; /* the tail may have moved (an emptied buffer restarts at 0) */
	return 0;
}

const void *buf_data(const struct buf *b)
{
	return b->mem ? b->mem + b->off : buf_empty;
}

void *buf_mutable(struct buf *b)
{
	return b->mem ? b->mem + b->off : buf_empty;
}

size_t buf_len(const struct buf *b)
{
	return b->len;
}

size_t buf_max(const struct buf *b)
{
	return b->max;
}

size_t buf_avail(const struct buf *b)
{
	return b->max - b->len;
}

int buf_set_max(struct buf *b, size_t max)
{
	if (max > BUF_MAX_LIMIT)
		max = BUF_MAX_LIMIT;
	if (b->len > max)
		return -ENOBUFS;
	b->max = max;
	b->room = 0;
	size_t limit = alloc_limit(max);
	if (b->cap <= limit)
		return 0;
	compact(b);
	if (limit == 0) {
		buf_free(b);
		return 0;
	}
	unsigned char *m = realloc(b->mem, limit);
	if (m) {
		b->mem = m;
		b->cap = limit;
	}
	return 0;
}

size_t buf_alloc_size(const struct buf *b)
{
	return b->cap;
}
