/* Fuzz the JSON-lines framing against a naive model.  The first byte picks
 * the line limit and the feeding pattern; the rest is the stream.  The
 * reader must deliver exactly the model's events whether the stream comes
 * in one piece, in random chunks, or with the callback stopping after every
 * event, and what is left pending must be the model's partial line. */
#include "proto/jsonl.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ev {
	int type; /* 0 line, 1 too long */
	size_t len;
	uint64_t hash;
};

struct evs {
	struct ev *v;
	size_t n, cap;
	bool stop; /* stop after every event */
};

static uint64_t fnv(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
	return h;
}

static void push(struct evs *e, int type, const char *p, size_t len)
{
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 64;
		e->v = realloc(e->v, e->cap * sizeof *e->v);
		if (!e->v)
			abort();
	}
	e->v[e->n++] = (struct ev){type, len, type == 0 ? fnv(p, len) : 0};
}

static bool cb(void *data, enum jsonl_event ev, const char *line, size_t len)
{
	struct evs *e = data;
	if (ev == JSONL_LINE) {
		if (len == 0 || memchr(line, '\n', len) || line[len] != '\0')
			abort();
		push(e, 0, line, len);
	} else {
		if (line || len)
			abort();
		push(e, 1, NULL, 0);
	}
	return !e->stop;
}

/* The model: split on '\n', strip one '\r', skip empty lines, a line over
 * max is one TOO_LONG (reported even before its newline arrives). */
static void model(const char *p, size_t n, size_t max, struct evs *e, size_t *pend_off,
		  size_t *pend_len)
{
	size_t i = 0;
	*pend_off = n;
	*pend_len = 0;
	while (i < n) {
		const char *nl = memchr(p + i, '\n', n - i);
		if (!nl) {
			size_t rest = n - i;
			if (rest <= max || (rest == max + 1 && p[n - 1] == '\r')) {
				*pend_off = i;
				*pend_len = rest;
			} else {
				push(e, 1, NULL, 0);
			}
			return;
		}
		size_t len = (size_t)(nl - (p + i));
		size_t ll = len && p[i + len - 1] == '\r' ? len - 1 : len;
		if (ll > max)
			push(e, 1, NULL, 0);
		else if (ll)
			push(e, 0, p + i, ll);
		i += len + 1;
	}
}

static void same(const struct evs *a, const struct evs *b)
{
	if (a->n != b->n)
		abort();
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].type != b->v[i].type || a->v[i].len != b->v[i].len ||
		    a->v[i].hash != b->v[i].hash)
			abort();
}

static void check_pending(struct jsonl_reader *r, const char *p, size_t off, size_t len)
{
	size_t n;
	const char *q = jsonl_pending(r, &n);
	if (n != len || (n && memcmp(q, p + off, n) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const size_t maxes[] = {JSONL_MAX_LINE, 0, 1, 2, 3, 8, 64, 1000};
	size_t max = maxes[data[0] % 8];
	unsigned seed = data[0] >> 3;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;

	/* the pure function on the raw bytes */
	size_t ll;
	ssize_t c = jsonl_next_line(p, n, max, &ll);
	if (c > 0 && ((size_t)c > n || ll > max || ll + 1 > (size_t)c || p[c - 1] != '\n'))
		abort();
	if (c == 0 || c < -2)
		abort();

	/* 0 is only for the pure function: jsonl_reader_new takes it as the
	 * default limit. */
	if (max == 0)
		return 0;
	struct evs want = {0};
	size_t poff, plen;
	model(p, n, max, &want, &poff, &plen);

	/* 1: all at once */
	struct jsonl_reader *r;
	if (jsonl_reader_new(max, &r) < 0)
		abort();
	struct evs got = {0};
	if (jsonl_feed(r, p, n, cb, &got) != 0)
		abort();
	same(&want, &got);
	check_pending(r, p, poff, plen);
	jsonl_reader_free(r);
	free(got.v);

	/* 2: chunks of pseudo-random sizes, stopping after every event */
	for (int stop = 0; stop < 2; stop++) {
		if (jsonl_reader_new(max, &r) < 0)
			abort();
		struct evs g = {0};
		g.stop = stop;
		uint32_t x = seed * 2654435761u + 1;
		size_t off = 0;
		while (off < n) {
			x = x * 1103515245u + 12345u;
			size_t k = (x >> 16) % 97 + 1;
			if ((x & 0xff) == 7)
				k = 70000;
			if (k > n - off)
				k = n - off;
			int rc = jsonl_feed(r, p + off, k, cb, &g);
			/* after a stop, either drain or go on feeding: nothing
			 * fed may be lost either way */
			while (rc == -ECANCELED && (x & 0x100))
				rc = jsonl_feed(r, NULL, 0, cb, &g);
			if (rc != 0 && rc != -ECANCELED)
				abort();
			off += k;
		}
		int rc;
		while ((rc = jsonl_feed(r, NULL, 0, cb, &g)) == -ECANCELED)
			;
		if (rc != 0)
			abort();
		same(&want, &g);
		check_pending(r, p, poff, plen);
		jsonl_reader_free(r);
		free(g.v);
	}
	free(want.v);
	return 0;
}
