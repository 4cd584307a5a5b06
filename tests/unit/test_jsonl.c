/* Unit tests for proto/jsonl: the pure line finder, and the bounded reader
 * (split feeds, \r\n, the 64 KiB limit, EOF, stopping, raw bytes after a
 * handshake line, a real non-blocking socket). */
#include "proto/jsonl.h"
#include "core/util.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

/* Events recorded by the callback: "L:<line>" or "TOO_LONG", one per
 * entry; long lines are recorded by length only. */
#define MAX_EVENTS 64

struct rec {
	char *ev[MAX_EVENTS];
	size_t len[MAX_EVENTS];
	int n;
	int stop_after; /* return false after this many events; 0 = never */
	bool nul_ok;	/* every line was NUL-terminated at len */
};

static bool rec_cb(void *data, enum jsonl_event ev, const char *line, size_t len)
{
	struct rec *r = data;
	ASSERT_LT(r->n, MAX_EVENTS);
	if (ev == JSONL_TOO_LONG) {
		r->ev[r->n] = strdup("TOO_LONG");
		r->len[r->n] = 0;
	} else {
		ASSERT(memchr(line, '\n', len) == NULL);
		if (line[len] != '\0')
			r->nul_ok = false;
		if (len > 200) {
			r->ev[r->n] = strdup_printf("L:<%zu bytes>", len);
		} else {
			r->ev[r->n] = strdup_printf("L:%.*s", (int)len, line);
		}
		r->len[r->n] = len;
	}
	r->n++;
	return !(r->stop_after && r->n >= r->stop_after);
}

static void rec_init(struct rec *r)
{
	memset(r, 0, sizeof *r);
	r->nul_ok = true;
}

static void rec_free(struct rec *r)
{
	for (int i = 0; i < r->n; i++)
		free(r->ev[i]);
	r->n = 0;
}

static void test_next_line(void)
{
	size_t ll = 99;
	ASSERT_EQ(jsonl_next_line("", 0, 10, &ll), -2);
	ASSERT_EQ(jsonl_next_line("abc", 3, 10, &ll), -2);
	ASSERT_EQ(jsonl_next_line("abc\nde", 6, 10, &ll), 4);
	ASSERT_EQ(ll, 3);
	ASSERT_EQ(jsonl_next_line("abc\r\nde", 7, 10, &ll), 5);
	ASSERT_EQ(ll, 3);
	ASSERT_EQ(jsonl_next_line("\n", 1, 10, &ll), 1);
	ASSERT_EQ(ll, 0);
	ASSERT_EQ(jsonl_next_line("\r\n", 2, 10, &ll), 2);
	ASSERT_EQ(ll, 0);
	/* only one trailing \r is the terminator's */
	ASSERT_EQ(jsonl_next_line("a\r\r\n", 4, 10, &ll), 4);
	ASSERT_EQ(ll, 2);
	/* a \r in the middle is content */
	ASSERT_EQ(jsonl_next_line("a\rb\n", 4, 10, &ll), 4);
	ASSERT_EQ(ll, 3);
	/* max = 4: exactly 4 bytes accepted, with \n or \r\n */
	ASSERT_EQ(jsonl_next_line("abcd\n", 5, 4, &ll), 5);
	ASSERT_EQ(ll, 4);
	ASSERT_EQ(jsonl_next_line("abcd\r\n", 6, 4, &ll), 6);
	ASSERT_EQ(ll, 4);
	ASSERT_EQ(jsonl_next_line("abcd", 4, 4, &ll), -2);
	ASSERT_EQ(jsonl_next_line("abcd\r", 5, 4, &ll), -2);
	/* 5 bytes: too long, with or without its newline */
	ASSERT_EQ(jsonl_next_line("abcde\n", 6, 4, &ll), -1);
	ASSERT_EQ(jsonl_next_line("abcde", 5, 4, &ll), -1);
	ASSERT_EQ(jsonl_next_line("abcd\rx", 6, 4, &ll), -1);
	ASSERT_EQ(jsonl_next_line("abcdefghij\n", 11, 4, &ll), -1);
	/* max 0: only empty lines */
	ASSERT_EQ(jsonl_next_line("\n", 1, 0, &ll), 1);
	ASSERT_EQ(jsonl_next_line("x", 1, 0, &ll), -1);
}

static void test_byte_by_byte(void)
{
	struct jsonl_reader *rd;
	ASSERT_EQ(jsonl_reader_new(0, &rd), 0);
	struct rec r;
	rec_init(&r);
	const char *in = "{\"type\":\"Ping\"}\nsecond\r\n\n\r\nthird\npartial";
	for (size_t i = 0; in[i]; i++)
		ASSERT_EQ(jsonl_feed(rd, in + i, 1, rec_cb, &r), 0);
	ASSERT_EQ(r.n, 3);
	ASSERT_STR_EQ(r.ev[0], "L:{\"type\":\"Ping\"}");
	ASSERT_STR_EQ(r.ev[1], "L:second");
	ASSERT_STR_EQ(r.ev[2], "L:third");
	ASSERT(r.nul_ok);
	size_t plen;
	const char *p = jsonl_pending(rd, &plen);
	ASSERT_EQ(plen, 7);
	ASSERT(memcmp(p, "partial", 7) == 0);
	/* the partial line completes with a later feed */
	ASSERT_EQ(jsonl_feed(rd, "!\n", 2, rec_cb, &r), 0);
	ASSERT_EQ(r.n, 4);
	ASSERT_STR_EQ(r.ev[3], "L:partial!");
	jsonl_pending(rd, &plen);
	ASSERT_EQ(plen, 0);
	/* a zero-length feed is harmless */
	ASSERT_EQ(jsonl_feed(rd, NULL, 0, rec_cb, &r), 0);
	ASSERT_EQ(r.n, 4);
	rec_free(&r);
	jsonl_reader_free(rd);
	jsonl_reader_free(NULL);
}

static void test_crlf_split(void)
{
	/* \r and \n in separate feeds */
	struct jsonl_reader *rd;
	ASSERT_EQ(jsonl_reader_new(0, &rd), 0);
	struct rec r;
	rec_init(&r);
	ASSERT_EQ(jsonl_feed(rd, "abc\r", 4, rec_cb, &r), 0);
	ASSERT_EQ(r.n, 0);
	ASSERT_EQ(jsonl_feed(rd, "\ndef\r\n", 6, rec_cb, &r), 0);
	ASSERT_EQ(r.n, 2);
	ASSERT_STR_EQ(r.ev[0], "L:abc");
	ASSERT_STR_EQ(r.ev[1], "L:def");
	rec_free(&r);
	jsonl_reader_free(rd);
}

static char *make_line(size_t n, const char *term)
{
	size_t tl = strlen(term);
	char *s = malloc(n + tl + 1);
	ASSERT(s);
	memset(s, 'x', n);
	memcpy(s + n, term, tl + 1);
	return s;
}

/* Feed `in` in chunks of `chunk` bytes (0 = all at once). */
static void feed_chunks(struct jsonl_reader *rd, const char *in, size_t len, size_t chunk,
			struct rec *r)
{
	if (chunk == 0)
		chunk = len;
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		ASSERT_EQ(jsonl_feed(rd, in + off, n, rec_cb, r), 0);
	}
}

static void test_limit(void)
{
	static const size_t chunks[] = {0, 1, 7, 1000, 65536, 65537};
	for (size_t c = 0; c < ARRAY_SIZE(chunks); c++) {
		struct jsonl_reader *rd;
		ASSERT_EQ(jsonl_reader_new(JSONL_MAX_LINE, &rd), 0);
		struct rec r;
		rec_init(&r);
		/* exactly 64 KiB: accepted, with \n and with \r\n */
		char *ok = make_line(JSONL_MAX_LINE, "\n");
		feed_chunks(rd, ok, strlen(ok), chunks[c], &r);
		char *okcr = make_line(JSONL_MAX_LINE, "\r\n");
		feed_chunks(rd, okcr, strlen(okcr), chunks[c], &r);
		ASSERT_EQ(r.n, 2);
		ASSERT_EQ(r.len[0], JSONL_MAX_LINE);
		ASSERT_EQ(r.len[1], JSONL_MAX_LINE);
		/* 64 KiB + 1: reported once, then the next line still arrives */
		char *big = make_line(JSONL_MAX_LINE + 1, "\nnext\n");
		feed_chunks(rd, big, strlen(big), chunks[c], &r);
		ASSERT_EQ(r.n, 4);
		ASSERT_STR_EQ(r.ev[2], "TOO_LONG");
		ASSERT_STR_EQ(r.ev[3], "L:next");
		/* a much longer one, still once */
		char *huge = make_line(5 * JSONL_MAX_LINE, "\r\nafter\n");
		feed_chunks(rd, huge, strlen(huge), chunks[c], &r);
		ASSERT_EQ(r.n, 6);
		ASSERT_STR_EQ(r.ev[4], "TOO_LONG");
		ASSERT_STR_EQ(r.ev[5], "L:after");
		size_t plen;
		jsonl_pending(rd, &plen);
		ASSERT_EQ(plen, 0);
		free(ok);
		free(okcr);
		free(big);
		free(huge);
		rec_free(&r);
		jsonl_reader_free(rd);
	}
}

static void test_small_limit(void)
{
	struct jsonl_reader *rd;
	ASSERT_EQ(jsonl_reader_new(4, &rd), 0);
	struct rec r;
	rec_init(&r);
	const char *in = "abcd\nabcde\nab\nabcdefgh";
	for (size_t i = 0; in[i]; i++)
		ASSERT_EQ(jsonl_feed(rd, in + i, 1, rec_cb, &r), 0);
	ASSERT_EQ(r.n, 4);
	ASSERT_STR_EQ(r.ev[0], "L:abcd");
	ASSERT_STR_EQ(r.ev[1], "TOO_LONG");
	ASSERT_STR_EQ(r.ev[2], "L:ab");
	ASSERT_STR_EQ(r.ev[3], "TOO_LONG"); /* reported before its newline */
	/* still discarding the rest of it */
	ASSERT_EQ(jsonl_feed(rd, "ijkl", 4, rec_cb, &r), 0);
	ASSERT_EQ(r.n, 4);
	ASSERT_EQ(jsonl_feed(rd, "m\nok\n", 5, rec_cb, &r), 0);
	ASSERT_EQ(r.n, 5);
	ASSERT_STR_EQ(r.ev[4], "L:ok");
	rec_free(&r);
	jsonl_reader_free(rd);
}

static void test_stop_and_pending(void)
{
	struct jsonl_reader *rd;
	ASSERT_EQ(jsonl_reader_new(0, &rd), 0);
	struct rec r;
	rec_init(&r);
	r.stop_after = 1;
	ASSERT_EQ(jsonl_feed(rd, "one\ntwo\nthree\n", 14, rec_cb, &r), -ECANCELED);
	ASSERT_EQ(r.n, 1);
	size_t plen;
	const char *p = jsonl_pending(rd, &plen);
	ASSERT_EQ(plen, 10);
	ASSERT(memcmp(p, "two\nthree\n", 10) == 0);
	/* the next call delivers what was left first */
	r.stop_after = 0;
	ASSERT_EQ(jsonl_feed(rd, "four\n", 5, rec_cb, &r), 0);
	ASSERT_EQ(r.n, 4);
	ASSERT_STR_EQ(r.ev[1], "L:two");
	ASSERT_STR_EQ(r.ev[2], "L:three");
	ASSERT_STR_EQ(r.ev[3], "L:four");
	rec_free(&r);

	/* stopping again on a left-over line keeps the new input too */
	rec_init(&r);
	r.stop_after = 1;
	ASSERT_EQ(jsonl_feed(rd, "a\nb\n", 4, rec_cb, &r), -ECANCELED);
	ASSERT_EQ(jsonl_feed(rd, "c\nd", 3, rec_cb, &r), -ECANCELED);
	ASSERT_EQ(r.n, 2);
	ASSERT_STR_EQ(r.ev[1], "L:b");
	p = jsonl_pending(rd, &plen);
	ASSERT_EQ(plen, 3);
	ASSERT(memcmp(p, "c\nd", 3) == 0);
	r.stop_after = 0;
	ASSERT_EQ(jsonl_feed(rd, "\n", 1, rec_cb, &r), 0);
	ASSERT_EQ(r.n, 4);
	ASSERT_STR_EQ(r.ev[2], "L:c");
	ASSERT_STR_EQ(r.ev[3], "L:d");
	rec_free(&r);

	/* data connection: the handshake line and raw bytes in one read */
	static const char hs[] = "{\"type\":\"ConnectReady\",\"conn_id\":\"c1\"}\n"
				 "\x00\x01\xff raw\nbytes\r\n";
	rec_init(&r);
	r.stop_after = 1;
	ASSERT_EQ(jsonl_feed(rd, hs, sizeof hs - 1, rec_cb, &r), -ECANCELED);
	ASSERT_STR_EQ(r.ev[0], "L:{\"type\":\"ConnectReady\",\"conn_id\":\"c1\"}");
	p = jsonl_pending(rd, &plen);
	ASSERT_EQ(plen, 15);
	ASSERT(memcmp(p, "\x00\x01\xff raw\nbytes\r\n", 15) == 0);
	rec_free(&r);
	jsonl_reader_free(rd);

	/* stopping on TOO_LONG: the long line is not in pending */
	ASSERT_EQ(jsonl_reader_new(4, &rd), 0);
	rec_init(&r);
	r.stop_after = 1;
	ASSERT_EQ(jsonl_feed(rd, "abcdefg\nrest", 12, rec_cb, &r), -ECANCELED);
	ASSERT_STR_EQ(r.ev[0], "TOO_LONG");
	p = jsonl_pending(rd, &plen);
	ASSERT_EQ(plen, 4);
	ASSERT(memcmp(p, "rest", 4) == 0);
	rec_free(&r);
	jsonl_reader_free(rd);
}

/* A callback that frees the reader and stops: the reader must not touch
 * itself afterwards (ASan would catch it). */
struct freeing {
	struct jsonl_reader *rd;
	int n;
};

static bool freeing_cb(void *data, enum jsonl_event ev, const char *line, size_t len)
{
	struct freeing *f = data;
	f->n++;
	jsonl_reader_free(f->rd);
	f->rd = NULL;
	return false;
}

static void test_free_inside_callback(void)
{
	struct freeing f = {0};
	ASSERT_EQ(jsonl_reader_new(0, &f.rd), 0);
	ASSERT_EQ(jsonl_feed(f.rd, "a\nb\nc", 5, freeing_cb, &f), -ECANCELED);
	ASSERT_EQ(f.n, 1);

	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	ASSERT_EQ(write_all(sv[1], "x\ny\n", 4), 0);
	f.n = 0;
	ASSERT_EQ(jsonl_reader_new(0, &f.rd), 0);
	ASSERT_EQ(jsonl_read(f.rd, sv[0], freeing_cb, &f), -ECANCELED);
	ASSERT_EQ(f.n, 1);
	close(sv[0]);
	close(sv[1]);
}

static void test_socketpair(void)
{
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ASSERT_EQ(fd_set_nonblock(sv[0], true), 0);
	struct jsonl_reader *rd;
	ASSERT_EQ(jsonl_reader_new(0, &rd), 0);
	struct rec r;
	rec_init(&r);

	/* nothing to read: would block */
	ASSERT_EQ(jsonl_read(rd, sv[0], rec_cb, &r), 0);
	ASSERT_EQ(r.n, 0);

	ASSERT_EQ(write_all(sv[1], "{\"type\":\"Ping\"}\r\n{\"type\":", 25), 0);
	ASSERT_EQ(jsonl_read(rd, sv[0], rec_cb, &r), 0);
	ASSERT_EQ(r.n, 1);
	ASSERT_STR_EQ(r.ev[0], "L:{\"type\":\"Ping\"}");
	ASSERT_EQ(write_all(sv[1], "\"Pong\"}\n", 8), 0);
	ASSERT_EQ(jsonl_read(rd, sv[0], rec_cb, &r), 0);
	ASSERT_EQ(r.n, 2);
	ASSERT_STR_EQ(r.ev[1], "L:{\"type\":\"Pong\"}");

	/* an oversized line across many reads, then a normal line */
	size_t big = 3 * JSONL_MAX_LINE;
	char *b = make_line(big, "\nnext\n");
	size_t blen = strlen(b), off = 0;
	while (off < blen) {
		ssize_t w = write(sv[1], b + off, blen - off > 50000 ? 50000 : blen - off);
		ASSERT_GT(w, 0);
		off += (size_t)w;
		ASSERT_EQ(jsonl_read(rd, sv[0], rec_cb, &r), 0);
	}
	ASSERT_EQ(r.n, 4);
	ASSERT_STR_EQ(r.ev[2], "TOO_LONG");
	ASSERT_STR_EQ(r.ev[3], "L:next");
	free(b);

	/* EOF: complete lines are delivered, the partial one dropped */
	ASSERT_EQ(write_all(sv[1], "last\npart", 9), 0);
	ASSERT_EQ(shutdown(sv[1], SHUT_WR), 0);
	ASSERT_EQ(jsonl_read(rd, sv[0], rec_cb, &r), -EPIPE);
	ASSERT_EQ(r.n, 5);
	ASSERT_STR_EQ(r.ev[4], "L:last");
	size_t plen;
	jsonl_pending(rd, &plen);
	ASSERT_EQ(plen, 0);
	ASSERT(r.nul_ok);
	rec_free(&r);
	jsonl_reader_free(rd);
	close(sv[0]);
	close(sv[1]);

	/* a read error is returned as -errno */
	ASSERT_EQ(jsonl_reader_new(0, &rd), 0);
	int dead = dup(0);
	ASSERT_GE(dead, 0);
	close(dead);
	ASSERT_EQ(jsonl_read(rd, dead, rec_cb, &r), -EBADF);
	jsonl_reader_free(rd);
}

/* jsonl_read after a stop delivers the buffered lines before reading. */
static void test_read_after_stop(void)
{
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	struct jsonl_reader *rd;
	ASSERT_EQ(jsonl_reader_new(0, &rd), 0);
	struct rec r;
	rec_init(&r);
	r.stop_after = 1;
	ASSERT_EQ(write_all(sv[1], "one\ntwo\nthree\n", 14), 0);
	ASSERT_EQ(jsonl_read(rd, sv[0], rec_cb, &r), -ECANCELED);
	ASSERT_EQ(r.n, 1);
	ASSERT_EQ(write_all(sv[1], "four\n", 5), 0);
	ASSERT_EQ(jsonl_read(rd, sv[0], rec_cb, &r), -ECANCELED);
	ASSERT_EQ(r.n, 2);
	ASSERT_STR_EQ(r.ev[1], "L:two");
	r.stop_after = 0;
	ASSERT_EQ(jsonl_read(rd, sv[0], rec_cb, &r), 0);
	ASSERT_EQ(r.n, 4);
	ASSERT_STR_EQ(r.ev[2], "L:three");
	ASSERT_STR_EQ(r.ev[3], "L:four");
	rec_free(&r);
	jsonl_reader_free(rd);
	close(sv[0]);
	close(sv[1]);
}

static void test_socket_handshake_then_raw(void)
{
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	struct jsonl_reader *rd;
	ASSERT_EQ(jsonl_reader_new(0, &rd), 0);
	struct rec r;
	rec_init(&r);
	r.stop_after = 1;
	static const char hs[] =
	    "{\"type\":\"ConnectReady\",\"conn_id\":\"abc-1\"}\nGET / HTTP/1.1\r\n";
	ASSERT_EQ(write_all(sv[1], hs, sizeof hs - 1), 0);
	ASSERT_EQ(jsonl_read(rd, sv[0], rec_cb, &r), -ECANCELED);
	ASSERT_EQ(r.n, 1);
	size_t plen;
	const char *p = jsonl_pending(rd, &plen);
	ASSERT_EQ(plen, 16);
	ASSERT(memcmp(p, "GET / HTTP/1.1\r\n", 16) == 0);
	rec_free(&r);
	jsonl_reader_free(rd);
	close(sv[0]);
	close(sv[1]);
}

/* Many lines in one read, more than fit the initial buffer. */
static void test_many_lines(void)
{
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	struct jsonl_reader *rd;
	ASSERT_EQ(jsonl_reader_new(0, &rd), 0);
	struct rec r;
	rec_init(&r);
	/* 60 lines of 1000 bytes */
	char *line = make_line(999, "\n");
	for (int i = 0; i < 60; i++)
		ASSERT_EQ(write_all(sv[1], line, 1000), 0);
	int rc;
	do
		rc = jsonl_read(rd, sv[0], rec_cb, &r);
	while (rc == 0 && r.n < 60);
	ASSERT_EQ(rc, 0);
	ASSERT_EQ(r.n, 60);
	for (int i = 0; i < 60; i++)
		ASSERT_EQ(r.len[i], 999);
	free(line);
	rec_free(&r);
	jsonl_reader_free(rd);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	RUN(test_next_line);
	RUN(test_byte_by_byte);
	RUN(test_crlf_split);
	RUN(test_limit);
	RUN(test_small_limit);
	RUN(test_stop_and_pending);
	RUN(test_free_inside_callback);
	RUN(test_socketpair);
	RUN(test_read_after_stop);
	RUN(test_socket_handshake_then_raw);
	RUN(test_many_lines);
	return 0;
}
