/* Unit tests for core/buf: the exact maximum, overflow (never a partial
 * append), reserve/commit, consume/append interleaving against a model,
 * that compaction stays linear, set_max, and out-of-bounds checks: the
 * input read up to a guard page, and every byte of every room handed out
 * written (ASan, in the suite's build, reports a byte outside the
 * allocation). */
#include "core/buf.h"
#include "core/util.h"
#include "test.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t limit_of(size_t max)
{
	return max + max / 4;
}

static void test_empty(void)
{
	struct buf b;
	buf_init(&b, 100);
	ASSERT_EQ(buf_len(&b), 0);
	ASSERT_EQ(buf_max(&b), 100);
	ASSERT_EQ(buf_avail(&b), 100);
	ASSERT_EQ(buf_alloc_size(&b), 0);
	ASSERT(buf_data(&b) != NULL); /* memcpy(dst, buf_data(), 0) is defined */
	ASSERT(buf_mutable(&b) != NULL);
	ASSERT_EQ(buf_append(&b, "", 0), 0);
	ASSERT_EQ(buf_alloc_size(&b), 0); /* nothing appended, nothing taken */
	ASSERT_EQ(buf_consume(&b, 0), 0);
	ASSERT_EQ(buf_consume(&b, 1), -EINVAL);
	buf_free(&b);
	buf_free(&b);
	buf_free(NULL);
	/* a zero maximum holds nothing */
	buf_init(&b, 0);
	ASSERT_EQ(buf_append(&b, "x", 1), -ENOBUFS);
	void *p;
	size_t room;
	ASSERT_EQ(buf_reserve(&b, 1, &p, &room), -ENOBUFS);
	buf_free(&b);
}

static void test_exact_cap(void)
{
	static const size_t maxes[] = {1, 2, 3, 255, 256, 257, 1000, 4096, 65536};
	for (size_t m = 0; m < ARRAY_SIZE(maxes); m++) {
		size_t max = maxes[m];
		unsigned char *src = malloc(max + 1);
		ASSERT(src);
		for (size_t i = 0; i <= max; i++)
			src[i] = (unsigned char)(i * 7 + 1);
		struct buf b;
		buf_init(&b, max);
		/* up to exactly max, in pieces of 1, 2, 3, ... */
		size_t off = 0;
		for (size_t k = 1; off < max; k++) {
			size_t n = k < max - off ? k : max - off;
			ASSERT_EQ(buf_append(&b, src + off, n), 0);
			off += n;
		}
		ASSERT_EQ(buf_len(&b), max);
		ASSERT_EQ(buf_avail(&b), 0);
		ASSERT(memcmp(buf_data(&b), src, max) == 0);
		ASSERT_LE(buf_alloc_size(&b), limit_of(max));
		/* one more byte: refused, nothing changed */
		ASSERT_EQ(buf_append(&b, src, 1), -ENOBUFS);
		void *p;
		size_t room;
		ASSERT_EQ(buf_reserve(&b, 1, &p, &room), -ENOBUFS);
		ASSERT_EQ(buf_len(&b), max);
		ASSERT(memcmp(buf_data(&b), src, max) == 0);
		/* one consumed: one fits again, two do not */
		ASSERT_EQ(buf_consume(&b, 1), 0);
		ASSERT_EQ(buf_append(&b, src + max, 1), 0);
		ASSERT_EQ(buf_append(&b, src, 1), -ENOBUFS);
		ASSERT_EQ(buf_len(&b), max);
		ASSERT(memcmp(buf_data(&b), src + 1, max) == 0);
		/* read every byte of the data (ASan: inside the allocation) */
		unsigned sum = 0;
		for (size_t i = 0; i < buf_len(&b); i++)
			sum += ((const unsigned char *)buf_data(&b))[i];
		(void)sum;
		ASSERT_LE(buf_alloc_size(&b), limit_of(max));
		buf_free(&b);
		ASSERT_EQ(buf_len(&b), 0);
		ASSERT_EQ(buf_alloc_size(&b), 0);
		ASSERT_EQ(buf_max(&b), max); /* reusable after buf_free */
		ASSERT_EQ(buf_append(&b, src, max), 0);
		ASSERT(memcmp(buf_data(&b), src, max) == 0);
		buf_free(&b);
		free(src);
	}
}

static void test_overflow(void)
{
	struct buf b;
	buf_init(&b, 10);
	ASSERT_EQ(buf_append(&b, "0123456789A", 11), -ENOBUFS); /* never a partial append */
	ASSERT_EQ(buf_len(&b), 0);
	ASSERT_EQ(buf_append(&b, "01234", 5), 0);
	ASSERT_EQ(buf_append(&b, "abcdef", 6), -ENOBUFS);
	ASSERT_EQ(buf_len(&b), 5);
	ASSERT(memcmp(buf_data(&b), "01234", 5) == 0);
	/* sizes that would overflow a naive len + n */
	ASSERT_EQ(buf_append(&b, "x", SIZE_MAX), -ENOBUFS);
	ASSERT_EQ(buf_append(&b, "x", SIZE_MAX - 2), -ENOBUFS);
	void *p;
	size_t room;
	ASSERT_EQ(buf_reserve(&b, SIZE_MAX, &p, &room), -ENOBUFS);
	ASSERT_EQ(buf_reserve(&b, 6, &p, &room), -ENOBUFS);
	ASSERT_EQ(buf_reserve(&b, 0, &p, &room), -EINVAL);
	ASSERT_EQ(buf_len(&b), 5);
	buf_free(&b);
	/* a maximum beyond the limit is clamped, so the arithmetic is safe */
	buf_init(&b, SIZE_MAX);
	ASSERT_EQ(buf_max(&b), BUF_MAX_LIMIT);
	ASSERT_EQ(buf_append(&b, "abc", 3), 0);
	ASSERT_EQ(buf_append(&b, "x", SIZE_MAX), -ENOBUFS);
	ASSERT_EQ(buf_reserve(&b, SIZE_MAX - 1, &p, &room), -ENOBUFS);
	ASSERT_EQ(buf_len(&b), 3);
	buf_free(&b);
}

static void fill_room(void *p, size_t room, unsigned char v)
{
	/* every byte handed out must be writable: ASan reports one outside
	 * the allocation */
	memset(p, v, room);
}

static void test_reserve_commit(void)
{
	struct buf b;
	buf_init(&b, 1000);
	void *p;
	size_t room;
	ASSERT_EQ(buf_reserve(&b, 10, &p, &room), 0);
	ASSERT_GE(room, 10);
	ASSERT_LE(room, 1000);
	fill_room(p, room, 'a');
	ASSERT_EQ(buf_commit(&b, room + 1), -EINVAL); /* more than handed out */
	ASSERT_EQ(buf_len(&b), 0);
	ASSERT_EQ(buf_commit(&b, 4), 0);
	ASSERT_EQ(buf_len(&b), 4);
	ASSERT(memcmp(buf_data(&b), "aaaa", 4) == 0);
	ASSERT_EQ(buf_commit(&b, 1), -EINVAL); /* a commit ends the reservation */
	/* an append in between ends it too */
	ASSERT_EQ(buf_reserve(&b, 1, &p, &room), 0);
	ASSERT_EQ(buf_append(&b, "b", 1), 0);
	ASSERT_EQ(buf_commit(&b, 1), -EINVAL);
	ASSERT_EQ(buf_len(&b), 5);
	/* and so does a consume (an emptied buffer restarts at the front) */
	ASSERT_EQ(buf_reserve(&b, 1, &p, &room), 0);
	ASSERT_EQ(buf_consume(&b, 5), 0);
	ASSERT_EQ(buf_commit(&b, 1), -EINVAL);
	ASSERT_EQ(buf_len(&b), 0);
	/* the room never takes len past the maximum, even when more is
	 * allocated */
	ASSERT_EQ(buf_append(&b, "0123456789", 10), 0);
	ASSERT_EQ(buf_reserve(&b, 990, &p, &room), 0);
	ASSERT_EQ(room, 990);
	fill_room(p, room, 'z');
	ASSERT_EQ(buf_commit(&b, 990), 0);
	ASSERT_EQ(buf_len(&b), 1000);
	ASSERT_EQ(buf_reserve(&b, 1, &p, &room), -ENOBUFS);
	ASSERT(memcmp(buf_data(&b), "0123456789zzz", 13) == 0);
	/* commit 0 is fine */
	ASSERT_EQ(buf_consume(&b, 1000), 0);
	ASSERT_EQ(buf_reserve(&b, 1, &p, &room), 0);
	ASSERT_EQ(buf_commit(&b, 0), 0);
	ASSERT_EQ(buf_len(&b), 0);
	buf_free(&b);
}

/* A small deterministic generator. */
static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

/* Random appends, reserve+commits and consumes against a plain array; the
 * content, the length and the allocation bound hold after every step. */
static void test_interleaving_model(void)
{
	static const size_t maxes[] = {1, 3, 7, 100, 256, 4096, 65536};
	for (size_t m = 0; m < ARRAY_SIZE(maxes); m++) {
		size_t max = maxes[m];
		unsigned char *model = malloc(max), *tmp = malloc(max + 1);
		ASSERT(model && tmp);
		size_t mlen = 0;
		unsigned char next = 0;
		struct buf b;
		buf_init(&b, max);
		for (int step = 0; step < 20000; step++) {
			uint32_t op = rnd() % 3;
			size_t n = rnd() % (max < 64 ? max + 1 : (rnd() & 1 ? 64 : max + 1));
			for (size_t i = 0; i < n && i <= max; i++)
				tmp[i] = next++;
			if (op == 0) {
				int r = buf_append(&b, tmp, n);
				if (mlen + n > max) {
					ASSERT_EQ(r, -ENOBUFS);
				} else {
					ASSERT_EQ(r, 0);
					memcpy(model + mlen, tmp, n);
					mlen += n;
				}
			} else if (op == 1) {
				void *p;
				size_t room;
				size_t want = n ? n : 1;
				int r = buf_reserve(&b, want, &p, &room);
				if (mlen + want > max) {
					ASSERT_EQ(r, -ENOBUFS);
				} else {
					ASSERT_EQ(r, 0);
					ASSERT_GE(room, want);
					ASSERT_LE(room, max - mlen);
					fill_room(p, room, 0xee);
					size_t k = rnd() % (room + 1);
					for (size_t i = 0; i < k; i++)
						((unsigned char *)p)[i] = next++;
					memcpy(model + mlen, p, k);
					ASSERT_EQ(buf_commit(&b, k), 0);
					mlen += k;
				}
			} else {
				size_t k = mlen ? rnd() % (mlen + 1) : 0;
				if (rnd() % 8 == 0)
					k = mlen + 1;
				int r = buf_consume(&b, k);
				if (k > mlen) {
					ASSERT_EQ(r, -EINVAL);
				} else {
					ASSERT_EQ(r, 0);
					memmove(model, model + k, mlen - k);
					mlen -= k;
				}
			}
			ASSERT_EQ(buf_len(&b), mlen);
			ASSERT_EQ(buf_avail(&b), max - mlen);
			ASSERT(mlen == 0 || memcmp(buf_data(&b), model, mlen) == 0);
			ASSERT_LE(buf_alloc_size(&b), limit_of(max));
		}
		buf_free(&b);
		free(model);
		free(tmp);
	}
}

/* The bytes compaction moves stay within a constant of the bytes consumed.
 * A move is seen as buf_data() going back to the front of the allocation
 * with bytes in it; without a move it only advances.  The worst case for
 * a naive buffer: kept full, one byte consumed and one appended. */
static void test_linear_compaction(void)
{
	static const size_t maxes[] = {4096, 1024 * 1024};
	static const size_t steps[] = {1, 7, 100};
	for (size_t m = 0; m < ARRAY_SIZE(maxes); m++) {
		for (size_t s = 0; s < ARRAY_SIZE(steps); s++) {
			size_t max = maxes[m], k = steps[s];
			struct buf b;
			buf_init(&b, max);
			unsigned char *fill = calloc(1, max);
			ASSERT(fill);
			ASSERT_EQ(buf_append(&b, fill, max), 0); /* full */
			uint64_t consumed = 0, moved = 0;
			size_t rounds = 4 * max / k + 100;
			for (size_t i = 0; i < rounds; i++) {
				ASSERT_EQ(buf_consume(&b, k), 0);
				consumed += k;
				const unsigned char *before = buf_data(&b);
				ASSERT_EQ(buf_append(&b, fill, k), 0);
				const unsigned char *after = buf_data(&b);
				if (after != before)
					moved += buf_len(&b) - k;
			}
			ASSERT_EQ(buf_len(&b), max);
			ASSERT_LE(moved, 4 * consumed + max);
			ASSERT_LE(buf_alloc_size(&b), limit_of(max));
			printf("# max %zu, step %zu: moved %llu bytes for %llu consumed\n", max, k,
			       (unsigned long long)moved, (unsigned long long)consumed);
			buf_free(&b);
			free(fill);
		}
	}
}

static void test_consume_restarts_at_front(void)
{
	struct buf b;
	buf_init(&b, 64);
	ASSERT_EQ(buf_append(&b, "abcdef", 6), 0);
	const char *front = buf_data(&b);
	ASSERT_EQ(buf_consume(&b, 2), 0);
	ASSERT(buf_data(&b) == front + 2); /* consuming only moves an offset */
	ASSERT_EQ(buf_consume(&b, 4), 0);
	ASSERT_EQ(buf_append(&b, "g", 1), 0);
	ASSERT(buf_data(&b) == front); /* emptied: the next bytes go to the front */
	buf_free(&b);
}

static void test_set_max(void)
{
	struct buf b;
	buf_init(&b, 100);
	ASSERT_EQ(buf_append(&b, "0123456789", 10), 0);
	ASSERT_EQ(buf_set_max(&b, 9), -ENOBUFS);
	ASSERT_EQ(buf_max(&b), 100);
	ASSERT_EQ(buf_set_max(&b, 10), 0);
	ASSERT_EQ(buf_append(&b, "x", 1), -ENOBUFS);
	/* raised: a large input fits, then lowered again gives memory back */
	ASSERT_EQ(buf_set_max(&b, 100000), 0);
	unsigned char *big = calloc(1, 90000);
	ASSERT(big);
	ASSERT_EQ(buf_append(&b, big, 90000), 0);
	ASSERT_GE(buf_alloc_size(&b), 90010);
	ASSERT_EQ(buf_consume(&b, 90005), 0);
	ASSERT_EQ(buf_set_max(&b, 100), 0);
	ASSERT_LE(buf_alloc_size(&b), limit_of(100));
	ASSERT_EQ(buf_len(&b), 5);
	ASSERT(memcmp(buf_data(&b), "\0\0\0\0\0", 5) == 0);
	ASSERT_EQ(buf_set_max(&b, SIZE_MAX), 0);
	ASSERT_EQ(buf_max(&b), BUF_MAX_LIMIT);
	ASSERT_EQ(buf_consume(&b, 5), 0);
	ASSERT_EQ(buf_set_max(&b, 0), 0);
	ASSERT_EQ(buf_alloc_size(&b), 0);
	free(big);
	buf_free(&b);
}

/* The input of an append ends right before a PROT_NONE page: reading one
 * byte too many faults.  Every size around a page and a half. */
static void test_guard_page_input(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	ASSERT_GT(pg, 0);
	size_t ps = (size_t)pg;
	unsigned char *m =
	    mmap(NULL, 3 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT(m != MAP_FAILED);
	ASSERT_EQ(mprotect(m + 2 * ps, ps, PROT_NONE), 0);
	unsigned char *end = m + 2 * ps;
	for (size_t i = 0; i < 2 * ps; i++)
		m[i] = (unsigned char)i;
	static const size_t sizes[] = {0, 1, 2, 255, 256, 257, 4095, 4096, 4097, 6000};
	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++) {
		size_t n = sizes[s];
		if (n > 2 * ps)
			continue;
		struct buf b;
		buf_init(&b, 2 * ps);
		ASSERT_EQ(buf_append(&b, end - n, n), 0);
		ASSERT_EQ(buf_len(&b), n);
		ASSERT(n == 0 || memcmp(buf_data(&b), end - n, n) == 0);
		buf_free(&b);
	}
	ASSERT_EQ(munmap(m, 3 * ps), 0);
}

/* At the allocation limit, the room handed out is exactly what is
 * allocated past the data (ASan checks every byte is inside). */
static void test_room_at_limit(void)
{
	struct buf b;
	buf_init(&b, 1000);
	unsigned char fill[1000] = {0};
	void *p;
	size_t room;
	for (int round = 0; round < 200; round++) {
		size_t n = (size_t)(rnd() % 300) + 1;
		if (n > buf_avail(&b))
			ASSERT_EQ(buf_consume(&b, buf_len(&b) / 2 + 1), 0);
		if (n > buf_avail(&b))
			continue;
		ASSERT_EQ(buf_reserve(&b, n, &p, &room), 0);
		fill_room(p, room, 0x55);
		ASSERT_EQ(buf_commit(&b, n), 0);
		ASSERT_EQ(buf_append(&b, fill, buf_avail(&b) < 3 ? 0 : 3), 0);
		ASSERT_LE(buf_alloc_size(&b), limit_of(1000));
	}
	buf_free(&b);
}

int main(void)
{
#if defined(__SANITIZE_ADDRESS__)
	printf("# ASan build: out-of-bounds accesses are reported\n");
#endif
	RUN(test_empty);
	RUN(test_exact_cap);
	RUN(test_overflow);
	RUN(test_reserve_commit);
	RUN(test_interleaving_model);
	RUN(test_linear_compaction);
	RUN(test_consume_restarts_at_front);
	RUN(test_set_max);
	RUN(test_guard_page_input);
	RUN(test_room_at_limit);
	return 0;
}
