/* yamux_raw.h - the raw Yamux peer of the session unit tests (test_yamux.c,
 * test_yamux_life.c): this test's end of a socketpair, which writes frames
 * with its own encoding (not the codec under test) and reads what the
 * session sends, on the test's loop with run_until. */
#ifndef DEVBRIDGE_TESTS_YAMUX_RAW_H
#define DEVBRIDGE_TESTS_YAMUX_RAW_H

#include "core/loop.h"
#include "proto/yamux.h"
#include "run_until.h"
#include "test.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct frame {
	uint8_t version, type;
	uint16_t flags;
	uint32_t id, length;
	unsigned char *payload; /* Data only; malloc'd */
};

struct raw {
	struct loop *l;
	int fd;
	unsigned char *rx;
	size_t rx_off, rx_len, rx_cap;
	unsigned char *tx;
	size_t tx_off, tx_len, tx_cap;
	bool eof, registered;
	int err;
	uint32_t ping_seq;
};

static void raw_sync(struct raw *r);

static void raw_flush(struct raw *r)
{
	while (r->tx_off < r->tx_len) {
		ssize_t w = send(r->fd, r->tx + r->tx_off, r->tx_len - r->tx_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno != EAGAIN)
				r->err = errno;
			break;
		}
		r->tx_off += (size_t)w;
	}
	if (r->tx_off == r->tx_len)
		r->tx_off = r->tx_len = 0;
}

static void raw_cb(struct loop *l, int fd, unsigned ev, void *data)
{
	struct raw *r = data;
	if (ev & LOOP_WRITE)
		raw_flush(r);
	if ((ev & (LOOP_READ | LOOP_ERROR)) && !r->eof) {
		for (;;) {
			if (r->rx_len + 65536 > r->rx_cap) {
				if (r->rx_off > 0) { /* compact */
					memmove(r->rx, r->rx + r->rx_off, r->rx_len - r->rx_off);
					r->rx_len -= r->rx_off;
					r->rx_off = 0;
				}
				if (r->rx_len + 65536 > r->rx_cap) {
					r->rx_cap = (r->rx_len + 65536) * 2;
					r->rx = realloc(r->rx, r->rx_cap);
					ASSERT(r->rx);
				}
			}
			ssize_t n = read(fd, r->rx + r->rx_len, r->rx_cap - r->rx_len);
			if (n == 0) {
				r->eof = true;
				break;
			}
			if (n < 0) {
				if (errno != EAGAIN) {
					r->err = errno;
					r->eof = true;
				}
				break;
			}
			r->rx_len += (size_t)n;
		}
	}
	raw_sync(r);
}

static void raw_sync(struct raw *r)
{
	unsigned m = (r->eof ? 0 : LOOP_READ) | (r->tx_len > r->tx_off ? LOOP_WRITE : 0);
	if (!r->registered) {
		ASSERT_EQ(loop_add_fd(r->l, r->fd, m, raw_cb, r), 0);
		r->registered = true;
	} else {
		ASSERT_EQ(loop_mod_fd(r->l, r->fd, m), 0);
	}
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void raw_put(struct raw *r, const void *bytes, size_t len)
{
	if (r->tx_len + len > r->tx_cap) {
		r->tx_cap = (r->tx_len + len) * 2;
		r->tx = realloc(r->tx, r->tx_cap);
		ASSERT(r->tx);
	}
	memcpy(r->tx + r->tx_len, bytes, len);
	r->tx_len += len;
}

/* Queue one frame (header with version `version`, then len payload bytes;
 * for Data the length field is len) and send what the socket takes. */
static void raw_send_v(struct raw *r, uint8_t version, uint8_t type, uint16_t flags, uint32_t id,
		       uint32_t length, const void *payload, size_t len)
{
	unsigned char h[12] = {version, type, (unsigned char)(flags >> 8), (unsigned char)flags};
	put32(h + 4, id);
	put32(h + 8, length);
	raw_put(r, h, sizeof h);
	if (len)
		raw_put(r, payload, len);
	raw_flush(r);
	raw_sync(r);
}

static void raw_send(struct raw *r, uint8_t type, uint16_t flags, uint32_t id, uint32_t length)
{
	raw_send_v(r, 0, type, flags, id, length, NULL, 0);
}

static void raw_data(struct raw *r, uint16_t flags, uint32_t id, const void *p, size_t len)
{
	raw_send_v(r, 0, YAMUX_DATA, flags, id, (uint32_t)len, p, len);
}

static bool raw_has_frame(void *arg)
{
	struct raw *r = arg;
	size_t have = r->rx_len - r->rx_off;
	if (have < 12)
		return false;
	const unsigned char *p = r->rx + r->rx_off;
	if (p[1] != YAMUX_DATA)
		return true;
	return have >= 12 + (size_t)get32(p + 8);
}

static bool raw_frame_or_eof(void *arg)
{
	struct raw *r = arg;
	return raw_has_frame(r) || r->eof;
}

static void raw_pop(struct raw *r, struct frame *f)
{
	ASSERT(raw_has_frame(r));
	const unsigned char *p = r->rx + r->rx_off;
	f->version = p[0];
	f->type = p[1];
	f->flags = (uint16_t)(p[2] << 8 | p[3]);
	f->id = get32(p + 4);
	f->length = get32(p + 8);
	f->payload = NULL;
	r->rx_off += 12;
	if (f->type == YAMUX_DATA) {
		f->payload = malloc(f->length ? f->length : 1);
		ASSERT(f->payload);
		memcpy(f->payload, r->rx + r->rx_off, f->length);
		r->rx_off += f->length;
	}
	ASSERT_EQ(f->version, 0);

#endif
