/* buf.h - the one byte buffer: growable, with a mandatory maximum (OpenSSH's
 * sshbuf, curl's dynbuf).
 *
 * Bytes are appended at the tail and consumed from the head.  buf_len()
 * never exceeds the maximum given to buf_init: an append or a reservation
 * that would pass it fails with -ENOBUFS and changes nothing; nothing is
 * ever silently truncated.
 *
 * Memory is taken on the first append or reservation and grows by
 * doubling.  Consuming only moves an offset (and an emptied buffer starts
 * again at the front); bytes are moved back to the front only when that
 * costs no more than what was consumed since the last move, or, once the
 * allocation is at its limit, at most four times that.  So any mix of small
 * appends and consumes costs linear time.  The allocation never exceeds
 * max + max / 4: that slack is what keeps compaction linear.
 *
 * A struct buf is embedded in its owner; its members are private (use the
 * functions).  Zero-initialised it is a buffer with a maximum of 0, so
 * call buf_init first.  Single-threaded like its owner. */
#ifndef DEVBRIDGE_CORE_BUF_H
#define DEVBRIDGE_CORE_BUF_H

#include <stddef.h>

/* The largest maximum; buf_init and buf_set_max clamp to it. */
#define BUF_MAX_LIMIT ((size_t)-1 / 2)

struct buf {
	unsigned char *mem;
	size_t off;  /* first unconsumed byte */
	size_t len;  /* unconsumed bytes, at mem + off */
	size_t cap;  /* allocated */
	size_t max;  /* len never exceeds this */
	size_t room; /* writable bytes handed out by the last buf_reserve */
};

/* An empty buffer that will never hold more than `max` bytes.  Allocates
 * nothing; cannot fail. */
void buf_init(struct buf *b, size_t max);

/* Release the memory; the buffer is empty again, with the same maximum,
 * and can be used on.  NULL is a no-op. */
void buf_free(struct buf *b);

/* Append n bytes (which must not point into b).  0; -ENOBUFS when
 * buf_len() + n would pass the maximum; -ENOMEM.  On failure nothing was
 * appended. */
int buf_append(struct buf *b, const void *bytes, size_t n);

/* Make room to read into: at least `min` (>= 1) writable bytes at the tail,
 * returned in *ret and their number in *ret_room (never taking buf_len()
 * past the maximum).  Fill some of them and buf_commit() how many, with no
 * other call on b in between.  0; -ENOBUFS when fewer than `min` bytes are
 * left below the maximum; -ENOMEM; -EINVAL when min is 0. */
int buf_reserve(struct buf *b, size_t min, void **ret, size_t *ret_room);

/* The first n bytes of the room from the last buf_reserve now hold data.
 * 0, or -EINVAL when n is more than that room (nothing changes). */
int buf_commit(struct buf *b, size_t n);

/* Drop the first n bytes.  0, or -EINVAL when n > buf_len() (nothing
 * changes).  Never moves or frees memory. */
int buf_consume(struct buf *b, size_t n);

/* The unconsumed bytes: buf_len() of them at buf_data().  Valid until the
 * next append, reserve or set_max; never NULL. */
const void *buf_data(const struct buf *b);
void *buf_mutable(struct buf *b);
size_t buf_len(const struct buf *b);

size_t buf_max(const struct buf *b);
/* buf_max() - buf_len(): what an append may still add. */
size_t buf_avail(const struct buf *b);

/* Change the maximum.  0, or -ENOBUFS when buf_len() is above it (nothing
 * changes).  Memory above the new allocation limit is given back (a
 * failed shrink keeps it, which is harmless). */
int buf_set_max(struct buf *b, size_t max);

/* Bytes allocated now (tests, memory accounting). */
size_t buf_alloc_size(const struct buf *b);

#endif
