/* Unit tests for proto/yamux: the frame header codec, and a session over a
 * socketpair whose other end is this test, writing and reading raw frames
 * (its own big-endian encoding, not the codec under test).
 *
 * What is asserted, on the wire: the opening frames (WindowUpdate|SYN, odd
 * ids for a client, even for a server) and the ACK, once; a larger window
 * announced in the delta of the opening frame or the ACK; window updates
 * as deltas that add up, and the receiver's update sent once half of the
 * window is consumed, not before; data beyond the window ends the session
 * with GoAway 1; data for an unknown stream is dropped and the session goes
 * on; a duplicate SYN ends the session; Ping SYN answered by Ping ACK with
 * the same value; a normal GoAway refuses new streams only, either way;
 * the 257th pending open is reset; FIN and RST honoured on WindowUpdate
 * frames; keepalive and open timeouts; a socket relayed to a stream with
 * relay_new_ep, half-close both ways.
 *
 * "Nothing else was sent" is checked with a Ping: the session answers
 * frames in order, so every frame it queued before our Ping came in is on
 * the wire before the Ping's ACK.  The loop runs until a condition holds,
 * with a deadline (no sleeps). */
#include "proto/yamux.h"

#include "core/loop.h"
#include "core/relay.h"
#include "core/util.h"
#include "run_until.h"
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#define KiB	 1024
#define WIN	 YAMUX_INITIAL_WINDOW
#define DEADLINE 5000

/* --- the header codec --- */

static void test_hdr_layout(void)
{
	struct yamux_hdr h = {.version = 0,
			      .type = YAMUX_WINDOW_UPDATE,
			      .flags = 0x0102,
			      .stream_id = 0x03040506,
			      .length = 0x0708090a};
	unsigned char out[YAMUX_HDR_LEN];
	memset(out, 0xee, sizeof out);
	yamux_hdr_encode(&h, out);
	static const unsigned char want[YAMUX_HDR_LEN] = {0x00, 0x01, 0x01, 0x02, 0x03, 0x04,
							  0x05, 0x06, 0x07, 0x08, 0x09, 0x0a};
	for (size_t i = 0; i < YAMUX_HDR_LEN; i++)
		ASSERT_EQ(out[i], want[i]);

	struct yamux_hdr p;
	ASSERT_EQ(yamux_hdr_parse(want, sizeof want, &p), YAMUX_HDR_LEN);
	ASSERT_EQ(p.version, 0);
	ASSERT_EQ(p.type, YAMUX_WINDOW_UPDATE);
	ASSERT_EQ(p.flags, 0x0102);
	ASSERT_EQ(p.stream_id, 0x03040506u);
	ASSERT_EQ(p.length, 0x0708090au);
}

static void test_hdr_roundtrip(void)
{
	static const uint32_t words[] = {0,	     1,		  2,	       0x7f,	   0x80,
					 0xff,	     0x100,	  0xffff,      0x10000,	   WIN,
					 0x7fffffff, 0x80000000u, 0xfffffffeu, 0xffffffffu};
	static const uint16_t flags[] = {0,    YAMUX_SYN, YAMUX_ACK, YAMUX_FIN, YAMUX_RST,
					 0x0f, 0x10,	  0xfff0,    0xffff};
	unsigned n = 0;
	for (unsigned type = 0; type < 4; type++)
		for (size_t f = 0; f < ARRAY_SIZE(flags); f++)
			for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
				struct yamux_hdr h = {
				    .version = YAMUX_VERSION,
				    .type = (uint8_t)type,
				    .flags = flags[f],
				    .stream_id = words[i],
				    .length = words[ARRAY_SIZE(words) - 1 - i],
				};
				/* trailing bytes are not the header's */
				unsigned char buf[YAMUX_HDR_LEN + 3] = {0};
				memset(buf + YAMUX_HDR_LEN, 0x5a, 3);
				yamux_hdr_encode(&h, buf);
				struct yamux_hdr p;
				memset(&p, 0xcc, sizeof p);
				ASSERT_EQ(yamux_hdr_parse(buf, sizeof buf, &p), YAMUX_HDR_LEN);
				ASSERT_EQ(p.version, h.version);
				ASSERT_EQ(p.type, h.type);
				ASSERT_EQ(p.flags, h.flags); /* unknown bits kept */
				ASSERT_EQ(p.stream_id, h.stream_id);
				ASSERT_EQ(p.length, h.length);
				unsigned char again[YAMUX_HDR_LEN];
				yamux_hdr_encode(&p, again);
				ASSERT(memcmp(again, buf, YAMUX_HDR_LEN) == 0);
				n++;
			}
	printf("# %u headers round-tripped\n", n);
}

static void test_hdr_need_more(void)
{
	unsigned char buf[YAMUX_HDR_LEN];
	struct yamux_hdr h = {.type = YAMUX_DATA, .stream_id = 1, .length = 5};
	yamux_hdr_encode(&h, buf);
	for (size_t len = 0; len < YAMUX_HDR_LEN; len++) {
		/* an exact-size copy: ASan catches a read past len */
		unsigned char *p = malloc(len ? len : 1);
		ASSERT(p);
		memcpy(p, buf, len);
		struct yamux_hdr out;
		ASSERT_EQ(yamux_hdr_parse(p, len, &out), 0);
		free(p);
	}
	/* even when those bytes would be refused once complete */
	unsigned char bad[YAMUX_HDR_LEN] = {1, 9};
	for (size_t len = 0; len < YAMUX_HDR_LEN; len++) {
		struct yamux_hdr out;
		int r = yamux_hdr_parse(bad, len, &out);
		ASSERT(r == 0 || r == -EPROTO); /* never consumed */
	}
}

static void test_hdr_refused(void)
{
	unsigned char buf[YAMUX_HDR_LEN];
	struct yamux_hdr h = {.type = YAMUX_PING, .flags = YAMUX_SYN, .length = 7};
	struct yamux_hdr out;
	static const uint8_t versions[] = {1, 2, 0x7f, 0xff};
	for (size_t i = 0; i < ARRAY_SIZE(versions); i++) {
		yamux_hdr_encode(&h, buf);
		buf[0] = versions[i];
		ASSERT_EQ(yamux_hdr_parse(buf, sizeof buf, &out), -EPROTO);
	}
	for (unsigned type = 4; type < 256; type++) {
		yamux_hdr_encode(&h, buf);
		buf[1] = (uint8_t)type;
		ASSERT_EQ(yamux_hdr_parse(buf, sizeof buf, &out), -EPROTO);
	}
	for (unsigned type = 0; type < 4; type++) {
		yamux_hdr_encode(&h, buf);
		buf[1] = (uint8_t)type;
		ASSERT_EQ(yamux_hdr_parse(buf, sizeof buf, &out), YAMUX_HDR_LEN);
	}
	ASSERT_STR_EQ(yamux_type_name(YAMUX_DATA), "data");
	ASSERT_STR_EQ(yamux_type_name(YAMUX_WINDOW_UPDATE), "window_update");
	ASSERT_STR_EQ(yamux_type_name(YAMUX_PING), "ping");
	ASSERT_STR_EQ(yamux_type_name(YAMUX_GO_AWAY), "go_away");
	ASSERT(yamux_type_name(4) == NULL);
	ASSERT(yamux_type_name(255) == NULL);
}

/* --- the raw peer: this test's end of the socketpair --- */

#include "yamux_raw.h"
}

/* --- a session under test, its streams --- */

struct tstream {
	struct sess *c;
	struct yamux_stream *st;
	unsigned char *rx;
	size_t rx_len, rx_cap;
	bool eof, closed;
	int err, writables;
};

#define MAX_TS 600

struct sess {
	struct loop *l;
	struct yamux_session *s;
	struct raw r;
	bool client;
	int closed_calls, closed_err;
	/* what the accept callback does */
	bool hold;    /* leave inbound opens pending */
	bool no_read; /* accept, but do not start reading */
	struct tstream *ts[MAX_TS];
	unsigned n_ts;
	unsigned accepts;
};

static void ts_alloc(struct relay_ep *ep, size_t suggested, void **ret, size_t *ret_len)
{
	struct tstream *t = ep->data;
	if (t->rx_len + 64 * KiB > t->rx_cap) {
		t->rx_cap = (t->rx_len + 64 * KiB) * 2;
		t->rx = realloc(t->rx, t->rx_cap);
		ASSERT(t->rx);
	}
	*ret = t->rx + t->rx_len;
	*ret_len = t->rx_cap - t->rx_len;
}

static void ts_read(struct relay_ep *ep, size_t n)
{
	struct tstream *t = ep->data;
	ASSERT(!t->eof);
	ASSERT(!t->closed);
	if (n == 0)
		t->eof = true;
	t->rx_len += n;
}

static void ts_writable(struct relay_ep *ep)
{
	struct tstream *t = ep->data;
	ASSERT(!t->closed);
	t->writables++;
}

static void ts_error(struct relay_ep *ep, int err)
{
	struct tstream *t = ep->data;
	ASSERT(!t->closed);
	ASSERT_EQ(t->err, 0); /* once */
	ASSERT_GT(err, 0);
	t->err = err;
}

static const struct relay_ep_cb ts_cb = {
    .alloc = ts_alloc,
    .read = ts_read,
    .writable = ts_writable,
    .error = ts_error,
};

static struct tstream *ts_attach(struct sess *c, struct yamux_stream *st)
{
	ASSERT_LT(c->n_ts, MAX_TS);
	struct tstream *t = calloc(1, sizeof *t);
	ASSERT(t);
	t->c = c;
	t->st = st;
	struct relay_ep *ep = yamux_stream_ep(st);
	ASSERT(ep);
	ep->cb = &ts_cb;
	ep->data = t;
	yamux_stream_set_data(st, t);
	ASSERT(yamux_stream_get_data(st) == t);
	ASSERT(yamux_stream_session(st) == c->s);
	c->ts[c->n_ts++] = t;
	return t;
}

static void ts_read_start(struct tstream *t)
{
	struct relay_ep *ep = yamux_stream_ep(t->st);
	ASSERT_EQ(ep->ops->read_start(ep), 0);
}

static void ts_close(struct tstream *t)
{
	if (t->closed)
		return;
	yamux_stream_close(t->st);
	t->closed = true;
}

/* Offer len bytes, as a relay would: what the stream takes now. */
static size_t ts_write(struct tstream *t, const void *bytes, size_t len)
{
	struct relay_ep *ep = yamux_stream_ep(t->st);
	size_t off = 0;
	while (off < len) {
		ssize_t w = ep->ops->write(ep, (const char *)bytes + off, len - off);
		if (w == -EAGAIN)
			break;
		ASSERT_GT(w, 0);
		off += (size_t)w;
	}
	return off;
}

static void sess_accept(struct yamux_session *s, struct yamux_stream *st, void *data)
{
	struct sess *c = data;
	ASSERT(s == c->s);
	struct tstream *t = ts_attach(c, st);
	c->accepts++;
	if (c->hold)
		return;
	ASSERT_EQ(yamux_stream_accept(st), 0);
	ASSERT_EQ(yamux_stream_accept(st), -EINVAL); /* once */
	if (!c->no_read)
		ts_read_start(t);
}

static void sess_closed(struct yamux_session *s, int err, void *data)
{
	struct sess *c = data;
	ASSERT(s == c->s);
	ASSERT_EQ(c->closed_calls, 0);
	ASSERT_GE(err, 0);
	c->closed_calls++;
	c->closed_err = err;
}

static const struct yamux_session_cb sess_cb = {.accept = sess_accept, .closed = sess_closed};

static struct yamux_opts test_opts(void)
{
	return (struct yamux_opts){.keepalive_off = true};
}

static void sess_init_opts(struct sess *c, bool client, const struct yamux_opts *opts)
{
	/* no window auto-tuning unless a test asks for it: the window
	 * arithmetic below is hashicorp's fixed window */
	struct yamux_opts copy = *opts, *o = &copy;
	if (!o->max_recv_window)
		o->max_recv_window = o->recv_window ? o->recv_window : YAMUX_INITIAL_WINDOW;
	memset(c, 0, sizeof *c);
	ASSERT_EQ(loop_new(&c->l), 0);
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ASSERT_EQ(fd_set_nonblock(sv[1], true), 0);
	c->client = client;
	ASSERT_EQ(yamux_session_new(c->l, sv[0], client, o, &sess_cb, c, &c->s), 0);
	c->r = (struct raw){.l = c->l, .fd = sv[1]};
	raw_sync(&c->r);
}

static void sess_init(struct sess *c, bool client)
{
	struct yamux_opts o = test_opts();
	sess_init_opts(c, client, &o);
}

static void sess_fini(struct sess *c)
{
	for (unsigned i = 0; i < c->n_ts; i++) {
		ts_close(c->ts[i]);
		free(c->ts[i]->rx);
		free(c->ts[i]);
	}
	yamux_session_free(c->s);
	c->s = NULL;
	ASSERT_EQ(loop_del_fd(c->l, c->r.fd), 0);
	close(c->r.fd);
	free(c->r.rx);
	free(c->r.tx);
	yamux_drain_flush();
	loop_free(c->l);
}

/* The next frame from the session (fails at the deadline or on EOF). */
static void next_frame(struct sess *c, struct frame *f)
{
	run_until(c->l, raw_frame_or_eof, &c->r, DEADLINE);
	if (!raw_has_frame(&c->r))
		TEST_FAIL_("%s", "EOF from the session where a frame was expected");
	raw_pop(&c->r, f);
}

static void expect_frame(struct sess *c, uint8_t type, uint16_t flags, uint32_t id, uint32_t length)
{
	struct frame f;
	next_frame(c, &f);
	if (f.type != type || f.flags != flags || f.id != id || f.length != length)
		TEST_FAIL_("frame: want type %u flags %#x id %u length %u, got type %u flags %#x "
			   "id %u length %u",
			   type, flags, id, length, f.type, f.flags, f.id, f.length);
	free(f.payload);
}

/* Nothing else: our Ping's ACK is the next frame. */
static void expect_quiet(struct sess *c)
{
	uint32_t v = 0x5eed0000u + ++c->r.ping_seq;
	raw_send(&c->r, YAMUX_PING, YAMUX_SYN, 0, v);
	expect_frame(c, YAMUX_PING, YAMUX_ACK, 0, v);
}

/* Data frames for stream `id` until `n` payload bytes, into out (may be
 * NULL); any other frame fails.  Returns the flags seen, or'ed. */
static unsigned collect_data(struct sess *c, uint32_t id, size_t n, unsigned char *out)
{
	size_t got = 0;
	unsigned flags = 0;
	while (got < n) {
		struct frame f;
		next_frame(c, &f);
		if (f.type != YAMUX_DATA || f.id != id)
			TEST_FAIL_("want data on %u, got type %u flags %#x id %u length %u", id,
				   f.type, f.flags, f.id, f.length);
		ASSERT_LE(got + f.length, n);
		if (out)
			memcpy(out + got, f.payload, f.length);
		got += f.length;
		flags |= f.flags;
		free(f.payload);
	}
	return flags;
}

/* Window updates for `id` adding up to `total`, each at least half the
 * window (none is sent before half is consumed). */
/* The window updates for `id` after `total` bytes were read: each at
 * least half the window, and all of them together give back everything
 * read but less than half a window (that much is owed until more is
 * read: a frame's bytes count only once they have arrived, so where the
 * reads split it decides the rest).  Nothing else is sent before the
 * ping's ACK. */
static void expect_updates(struct sess *c, uint32_t id, uint32_t total, uint32_t window)
{
	uint32_t sum = 0, v = 0x5eed0000u + ++c->r.ping_seq;
	raw_send(&c->r, YAMUX_PING, YAMUX_SYN, 0, v);
	for (;;) {
		struct frame f;
		next_frame(c, &f);
		if (f.type == YAMUX_PING && f.flags == YAMUX_ACK && f.length == v)
			break;
		if (f.type != YAMUX_WINDOW_UPDATE || f.flags != 0 || f.id != id)
			TEST_FAIL_("want an update on %u, got type %u flags %#x id %u length %u",
				   id, f.type, f.flags, f.id, f.length);
		ASSERT_GE(f.length, window / 2);
		sum += f.length;
	}
	ASSERT_LE(sum, total);
	ASSERT_GT(sum + window / 2, total);
}

static bool sess_closed_cond(void *arg)
{
	return ((struct sess *)arg)->closed_calls > 0;
}

static bool sess_closed_and_eof(void *arg)
{
	struct sess *c = arg;
	return c->closed_calls > 0 && c->r.eof;
}

struct want_accepts {
	struct sess *c;
	unsigned n;
};

static bool accepts_reached(void *arg)
{
	struct want_accepts *w = arg;
	return w->c->accepts >= w->n;
}

static void wait_accepts(struct sess *c, unsigned n)
{
	struct want_accepts w = {c, n};
	run_until(c->l, accepts_reached, &w, DEADLINE);
}

struct want_rx {
	struct tstream *t;
	size_t n;
	bool eof;
};

static bool rx_reached(void *arg)
{
	struct want_rx *w = arg;
	return w->t->rx_len >= w->n && (!w->eof || w->t->eof);
}

static void wait_rx(struct sess *c, struct tstream *t, size_t n, bool eof)
{
	struct want_rx w = {t, n, eof};
	run_until(c->l, rx_reached, &w, DEADLINE);
	ASSERT_EQ(t->rx_len, n);
}

static bool ts_has_err(void *arg)
{
	return ((struct tstream *)arg)->err != 0;
}

static bool ts_has_writable(void *arg)
{
	return ((struct tstream *)arg)->writables > 0;
}

static unsigned char *pattern(size_t n, unsigned seed)
{
	unsigned char *p = malloc(n ? n : 1);
	ASSERT(p);
	uint32_t x = 2463534242u + seed;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
	return p;
}

static struct tstream *open_stream(struct sess *c, uint32_t want_id)
{
	struct yamux_stream *st = NULL;
	ASSERT_EQ(yamux_open(c->s, &st), 0);
	ASSERT(st);
	ASSERT_EQ(yamux_stream_id(st), want_id);
	struct tstream *t = ts_attach(c, st);
	expect_frame(c, YAMUX_WINDOW_UPDATE, YAMUX_SYN, want_id, 0);
	return t;
}

/* --- session tests --- */

/* A client's opens are WindowUpdate|SYN with odd ids 1, 3, 5; a server's
 * even 2, 4, 6; nothing goes on the wire before the first open. */
static void test_open_ids(void)
{
	for (int client = 1; client >= 0; client--) {
		struct sess c;
		sess_init(&c, client);
		expect_quiet(&c);
		uint32_t first = client ? 1 : 2;
		for (uint32_t i = 0; i < 3; i++)
			open_stream(&c, first + 2 * i);
		struct yamux_stats st;
		yamux_session_get_stats(c.s, &st);
		ASSERT_EQ(st.streams, 3);
		ASSERT_EQ(st.opened, 3);
		ASSERT_EQ(st.pending, 0);
		sess_fini(&c);
	}
}

/* Opens beyond max_opening unanswered succeed, but their SYN waits for an
 * answer to an earlier one (hashicorp's peers reset opens beyond their
 * backlog); a queued stream's writes and FIN wait with it, and closing it
 * before its SYN went says nothing on the wire. */
static void test_open_queue(void)
{
	struct yamux_opts o = test_opts();
	o.max_opening = 2;
	struct sess c;
	sess_init_opts(&c, true, &o);
	struct tstream *a = open_stream(&c, 1);
	struct tstream *b = open_stream(&c, 3);
	struct yamux_stream *st3 = NULL, *st4 = NULL;
	ASSERT_EQ(yamux_open(c.s, &st3), 0);
	ASSERT_EQ(yamux_open(c.s, &st4), 0);
	struct tstream *t3 = ts_attach(&c, st3);
	ASSERT_EQ(ts_write(t3, "queued", 6), 0); /* -EAGAIN: its SYN waits */
	ASSERT_EQ(yamux_stream_ep(st3)->ops->shutdown(yamux_stream_ep(st3)), 0);
	yamux_stream_close(st4); /* never on the wire */
	expect_quiet(&c);
	/* an ACK for 1: the SYN of 5 goes, then its FIN; a writable follows */
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 5, 0);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_FIN, 5, 0);
	run_until(c.l, ts_has_writable, t3, DEADLINE);
	expect_quiet(&c);
	/* a reset of 3 answers it too; nothing is queued now */
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_RST, 3, 0);
	run_until(c.l, ts_has_err, b, DEADLINE);
	ASSERT_EQ(b->err, ECONNREFUSED);
	expect_quiet(&c);
	(void)a;
	sess_fini(&c);
}

/* The peer opens with WindowUpdate|SYN: accepted, ACKed once (a
 * WindowUpdate|ACK, delta 0 with the default window); data both ways,
 * and bytes sent before our ACK count. */
static void test_inbound_open_ack(void)
{
	struct sess c;
	sess_init(&c, false);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
	raw_data(&c.r, 0, 1, "early", 5); /* before the ACK arrives */
	wait_accepts(&c, 1);
	struct tstream *t = c.ts[0];
	ASSERT_EQ(yamux_stream_id(t->st), 1);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	wait_rx(&c, t, 5, false);
	ASSERT(memcmp(t->rx, "early", 5) == 0);
	ASSERT_EQ(ts_write(t, "reply", 5), 5);
	unsigned char got[5];
	ASSERT_EQ(collect_data(&c, 1, 5, got), 0); /* no second ACK */
	ASSERT(memcmp(got, "reply", 5) == 0);
	expect_quiet(&c);
	struct yamux_stats st;
	yamux_session_get_stats(c.s, &st);
	ASSERT_EQ(st.accepted, 1);
	ASSERT_EQ(st.streams, 1);
	ASSERT_EQ(st.bytes_in, 5);
	ASSERT_EQ(st.bytes_out, 5);
	sess_fini(&c);
}

/* Data|SYN opens too, its payload the stream's first bytes; a write before
 * accepting carries the ACK, and the ACK is not sent again. */
static void test_inbound_data_syn_write_before_accept(void)
{
	struct sess c;
	sess_init(&c, false);
	c.hold = true;
	raw_data(&c.r, YAMUX_SYN, 3, "hello", 5);
	wait_accepts(&c, 1);
	struct tstream *t = c.ts[0];
	ASSERT_EQ(yamux_stream_id(t->st), 3);
	struct yamux_stats st;
	yamux_session_get_stats(c.s, &st);
	ASSERT_EQ(st.pending, 1);
	expect_quiet(&c); /* pending: no ACK yet */
	ts_read_start(t);
	ASSERT_EQ(ts_write(t, "hi", 2), 2);
	/* a write before the accept accepts: WindowUpdate|ACK (so a larger
	 * window's delta goes with it), then the data */
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 3, 0);
	struct frame f;
	next_frame(&c, &f);
	ASSERT_EQ(f.type, YAMUX_DATA);
	ASSERT_EQ(f.id, 3);
	ASSERT_EQ(f.flags, 0);
	ASSERT_EQ(f.length, 2);
	free(f.payload);
	wait_rx(&c, t, 5, false);
	ASSERT(memcmp(t->rx, "hello", 5) == 0);
	yamux_session_get_stats(c.s, &st);
	ASSERT_EQ(st.pending, 0);
	ASSERT_EQ(ts_write(t, "!", 1), 1);
	ASSERT_EQ(collect_data(&c, 3, 1, NULL), 0);
	expect_quiet(&c);
	sess_fini(&c);
}

/* Refusing a pending open is RST; a peer's RST before our ACK fails the
 * open with ECONNREFUSED. */
static void test_refuse(void)
{
	struct sess c;
	sess_init(&c, false);
	c.hold = true;
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
	wait_accepts(&c, 1);
	ts_close(c.ts[0]);
	struct frame f;
	next_frame(&c, &f);
	ASSERT_EQ(f.id, 1);
	ASSERT(f.type == YAMUX_WINDOW_UPDATE || f.type == YAMUX_DATA);
	ASSERT_EQ(f.flags & YAMUX_RST, YAMUX_RST);
	ASSERT_EQ(f.flags & YAMUX_ACK, 0);
	free(f.payload);
	expect_quiet(&c);
	sess_fini(&c);

	sess_init(&c, true);
	struct tstream *t = open_stream(&c, 1);
	ts_read_start(t);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_RST, 1, 0);
	run_until(c.l, ts_has_err, t, DEADLINE);
	ASSERT_EQ(t->err, ECONNREFUSED);
	sess_fini(&c);
}

/* Window updates are deltas that add to the send window: 256 KiB at first,
 * then exactly 1000 more, then 2000 more (read as totals, the updates would
 * allow nothing).  A larger window announced with the ACK adds too. */
static void test_send_window_deltas(void)
{
	size_t n = 400 * KiB;
	unsigned char *buf = pattern(n, 1), *got = malloc(n);
	ASSERT(got);
	struct sess c;
	sess_init(&c, true);
	struct tstream *t = open_stream(&c, 1);
	size_t sent = ts_write(t, buf, n);
	ASSERT_EQ(sent, WIN); /* the initial window, before any ACK */
	ASSERT_EQ(collect_data(&c, 1, WIN, got) & ~(unsigned)YAMUX_SYN, 0);
	ASSERT(memcmp(got, buf, WIN) == 0);
	expect_quiet(&c);
	ASSERT_EQ(t->writables, 0);

	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 1000);
	run_until(c.l, ts_has_writable, t, DEADLINE);
	size_t more = ts_write(t, buf + sent, n - sent);
	ASSERT_EQ(more, 1000);
	sent += more;
	collect_data(&c, 1, 1000, got + WIN);
	expect_quiet(&c);

	t->writables = 0;
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, 0, 1, 2000);
	run_until(c.l, ts_has_writable, t, DEADLINE);
	more = ts_write(t, buf + sent, n - sent);
	ASSERT_EQ(more, 2000);
	sent += more;
	collect_data(&c, 1, 2000, got + WIN + 1000);
	ASSERT(memcmp(got, buf, sent) == 0);
	expect_quiet(&c);
	ASSERT_EQ(ts_write(t, buf + sent, n - sent), 0);

	/* two updates in a row add up */
	t->writables = 0;
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, 0, 1, 3000);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, 0, 1, 4000);
	expect_quiet(&c);
	run_until(c.l, ts_has_writable, t, DEADLINE);
	ASSERT_EQ(ts_write(t, buf + sent, n - sent), 7000);
	collect_data(&c, 1, 7000, NULL);
	expect_quiet(&c);
	sess_fini(&c);

	/* the peer's larger window, in the delta of its opening frame */
	sess_init(&c, false);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 100000);
	wait_accepts(&c, 1);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	ASSERT_EQ(ts_write(c.ts[0], buf, n), WIN + 100000);
	collect_data(&c, 1, WIN + 100000, NULL);
	expect_quiet(&c);
	sess_fini(&c);
	free(buf);
	free(got);
}

/* The receiver's side: an update only once half the window is consumed
 * (read by the application), as the delta of what was consumed. */
static void test_recv_window_update(void)
{
	unsigned char *buf = pattern(WIN, 2);
	struct sess c;
	sess_init(&c, false);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
	wait_accepts(&c, 1);
	struct tstream *t = c.ts[0];
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	raw_data(&c.r, 0, 1, buf, WIN / 2 - 1);
	wait_rx(&c, t, WIN / 2 - 1, false);
	expect_quiet(&c); /* not yet */
	raw_data(&c.r, 0, 1, buf + WIN / 2 - 1, 1);
	wait_rx(&c, t, WIN / 2, false);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, 0, 1, WIN / 2);
	expect_quiet(&c);
	/* the whole window may now be sent again: 128 KiB left + 128 KiB */
	raw_data(&c.r, 0, 1, buf, WIN);
	wait_rx(&c, t, WIN / 2 + WIN, false);
	ASSERT(memcmp(t->rx + WIN / 2, buf, WIN) == 0);
	expect_updates(&c, 1, WIN, WIN);
	expect_quiet(&c);
	struct yamux_stats st;
	yamux_session_get_stats(c.s, &st);
	ASSERT_EQ(st.bytes_in, WIN / 2 + WIN);
	sess_fini(&c);

	/* not reading: the bytes wait, no update; reading: the update */
	sess_init(&c, false);
	c.no_read = true;
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
	wait_accepts(&c, 1);
	t = c.ts[0];
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	raw_data(&c.r, 0, 1, buf, WIN);
	expect_quiet(&c);
	ASSERT_EQ(t->rx_len, 0);
	ts_read_start(t);
	wait_rx(&c, t, WIN, false);
	ASSERT(memcmp(t->rx, buf, WIN) == 0);
	expect_updates(&c, 1, WIN, WIN);
	expect_quiet(&c);
	sess_fini(&c);
	free(buf);
}

/* Auto-tuning: a peer that used the whole window while the reader had
 * nothing waiting gets it doubled with the next update (up to the cap);
 * it may send that much at once, and a stream that never runs dry keeps
 * its window. */
static void test_window_autotune(void)
{
	unsigned char *buf = pattern(2 * WIN, 5);
	struct yamux_opts o = test_opts();
	o.max_recv_window = 2 * WIN;
	struct sess c;
	sess_init_opts(&c, false, &o);
	c.no_read = true;
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
	wait_accepts(&c, 1);
	struct tstream *t = c.ts[0];
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	raw_data(&c.r, 0, 1, buf, WIN); /* the whole window: it runs dry */
	expect_quiet(&c);
	ts_read_start(t);
	wait_rx(&c, t, WIN, false);
	/* what was read, and the window doubled on top */
	uint32_t sum = 0, v = 0x5eed0000u + ++c.r.ping_seq;
	raw_send(&c.r, YAMUX_PING, YAMUX_SYN, 0, v);
	for (;;) {
		struct frame f;
		next_frame(&c, &f);
		if (f.type == YAMUX_PING)
			break;
		ASSERT_EQ(f.type, YAMUX_WINDOW_UPDATE);
		sum += f.length;
	}
	ASSERT_EQ(sum, 2 * WIN);
	struct yamux_stats st;
	yamux_session_get_stats(c.s, &st);
	ASSERT_EQ(st.window_grows, 1);
	/* the new window, in one frame, is no protocol error */
	raw_data(&c.r, 0, 1, buf, 2 * WIN);
	wait_rx(&c, t, 3 * WIN, false);
	ASSERT(memcmp(t->rx + WIN, buf, 2 * WIN) == 0);
	yamux_session_get_stats(c.s, &st);
	ASSERT_EQ(st.window_grows, 1); /* at the cap */
	ASSERT_EQ(c.closed_calls, 0);
	sess_fini(&c);
	free(buf);
}

/* A larger receive window is announced as the delta of the opening frame
 * (ours) or of the ACK (theirs), and that much may be sent at once. */
static void test_large_window(void)
{
	uint32_t w = 1024 * KiB;
	struct yamux_opts o = test_opts();
	o.recv_window = w;
	unsigned char *buf = pattern(w, 3);
	struct sess c;
	sess_init_opts(&c, true, &o);
	struct yamux_stream *st;
	ASSERT_EQ(yamux_open(c.s, &st), 0);
	struct tstream *t = ts_attach(&c, st);
	ts_read_start(t);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, w - WIN);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	raw_data(&c.r, 0, 1, buf, w); /* one frame, the whole window */
	wait_rx(&c, t, w, false);
	ASSERT(memcmp(t->rx, buf, w) == 0);
	expect_updates(&c, 1, w, w);
	expect_quiet(&c);
	sess_fini(&c);

	sess_init_opts(&c, false, &o);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
	wait_accepts(&c, 1);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, w - WIN);
	expect_quiet(&c);
	sess_fini(&c);

	/* below the minimum (hashicorp's initial window): refused */
	o.recv_window = WIN - 1;
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct yamux_session *s = NULL;
	ASSERT_EQ(yamux_session_new(l, sv[0], true, &o, &sess_cb, NULL, &s), -EINVAL);
	ASSERT(s == NULL);
	close(sv[0]); /* still ours */
	close(sv[1]);
	yamux_drain_flush();
	loop_free(l);
	free(buf);
}

/* One Data frame of exactly the window is accepted; one byte over the
 * window is a protocol error: GoAway 1, then the connection closed, the
 * session's end EPROTO and its streams' errors. */
static void test_over_window(void)
{
	unsigned char *buf = pattern(WIN + 1, 4);
	struct sess c;
	sess_init(&c, false);
	c.no_read = true;
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 3, 0);
	wait_accepts(&c, 2);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 3, 0);
	raw_data(&c.r, 0, 1, buf, WIN); /* exactly the window: fine */
	expect_quiet(&c);
	ASSERT_EQ(c.closed_calls, 0);
	raw_data(&c.r, 0, 3, buf, WIN + 1);
	expect_frame(&c, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_PROTOCOL);
	run_until(c.l, sess_closed_and_eof, &c, DEADLINE);
	ASSERT(!raw_has_frame(&c.r));
	ASSERT_EQ(c.closed_err, EPROTO);
	ASSERT_NE(c.ts[0]->err, 0);
	ASSERT_NE(c.ts[1]->err, 0);
	struct yamux_stream *st;
	ASSERT_EQ(yamux_open(c.s, &st), -ESHUTDOWN);
	sess_fini(&c);

	/* in two frames, one byte over */
	sess_init(&c, false);
	c.no_read = true;
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
	raw_data(&c.r, 0, 1, buf, WIN - 10);
	raw_data(&c.r, 0, 1, buf, 11);
	wait_accepts(&c, 1);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	expect_frame(&c, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_PROTOCOL);
	run_until(c.l, sess_closed_and_eof, &c, DEADLINE);
	ASSERT_EQ(c.closed_err, EPROTO);
	sess_fini(&c);
	free(buf);
}

/* Data for a stream that does not exist (never opened, or gone) is read
 * and dropped; the session goes on. */
static void test_unknown_stream(void)
{
	unsigned char *buf = pattern(100 * KiB, 5);
	struct sess c;
	sess_init(&c, false);
	raw_data(&c.r, 0, 7, buf, 100);
	raw_data(&c.r, 0, 9, buf, 100 * KiB);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, 0, 11, 5000);
	expect_quiet(&c);
	ASSERT_EQ(c.closed_calls, 0);
	ASSERT_EQ(c.accepts, 0);
	/* a stream opened, then reset, then data for it */
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
	wait_accepts(&c, 1);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_RST, 1, 0);
	run_until(c.l, ts_has_err, c.ts[0], DEADLINE);
	ASSERT_EQ(c.ts[0]->err, ECONNRESET);
	ts_close(c.ts[0]);
	raw_data(&c.r, 0, 1, buf, 1000);
	expect_quiet(&c);
	ASSERT_EQ(c.closed_calls, 0);
	/* a new stream still works */
	raw_data(&c.r, YAMUX_SYN, 3, "x", 1);
	wait_accepts(&c, 2);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 3, 0);
	wait_rx(&c, c.ts[1], 1, false);
	struct yamux_stats st;
	yamux_session_get_stats(c.s, &st);
	ASSERT_EQ(st.resets_received, 1);
	sess_fini(&c);
	free(buf);
}

/* A second SYN for a stream that is open ends the session (GoAway 1). */
static void test_duplicate_syn(void)
{
	struct sess c;
	sess_init(&c, false);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
	wait_accepts(&c, 1);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
	expect_frame(&c, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_PROTOCOL);
	run_until(c.l, sess_closed_and_eof, &c, DEADLINE);
	ASSERT_EQ(c.closed_err, EPROTO);
	ASSERT_EQ(c.accepts, 1);
	ASSERT_NE(c.ts[0]->err, 0);
	sess_fini(&c);

	/* also while still pending, and with Data|SYN */
	sess_init(&c, false);
	c.hold = true;
	raw_data(&c.r, YAMUX_SYN, 1, "a", 1);
	raw_data(&c.r, YAMUX_SYN, 1, "b", 1);
	expect_frame(&c, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_PROTOCOL);
	run_until(c.l, sess_closed_and_eof, &c, DEADLINE);
	ASSERT_EQ(c.closed_err, EPROTO);
	sess_fini(&c);
}

/* Ping SYN is answered by Ping ACK with the same value; our Ping is
 * counted once answered. */
static void test_ping(void)
{
	struct sess c;
	sess_init(&c, false);
	static const uint32_t vals[] = {0, 1, 0xdeadbeef, 0xffffffffu};
	for (size_t i = 0; i < ARRAY_SIZE(vals); i++) {
		raw_send(&c.r, YAMUX_PING, YAMUX_SYN, 0, vals[i]);
		expect_frame(&c, YAMUX_PING, YAMUX_ACK, 0, vals[i]);
	}
	ASSERT_EQ(yamux_session_ping(c.s), 0);
	struct frame f;
	next_frame(&c, &f);
	ASSERT_EQ(f.type, YAMUX_PING);
	ASSERT_EQ(f.flags, YAMUX_SYN);
	ASSERT_EQ(f.id, 0);
	struct yamux_stats st;
	yamux_session_get_stats(c.s, &st);
	ASSERT_EQ(st.pings_sent, 1);
	ASSERT_EQ(st.pings_answered, 0);
	ASSERT_EQ(st.pings_received, ARRAY_SIZE(vals));
	raw_send(&c.r, YAMUX_PING, YAMUX_ACK, 0, f.length);
	expect_quiet(&c); /* the ACK was taken before our Ping */
	yamux_session_get_stats(c.s, &st);
	ASSERT_EQ(st.pings_answered, 1);
	ASSERT_EQ(c.closed_calls, 0);
	sess_fini(&c);
}

/* Keepalive: a Ping every interval; unanswered within the timeout, the
 * session ends with ETIMEDOUT. */
static void test_keepalive_timeout(void)
{
	struct yamux_opts o = {.keepalive_ms = 30, .keepalive_timeout_ms = 150};
	struct sess c;
	sess_init_opts(&c, true, &o);
	struct frame f;
	next_frame(&c, &f);
	ASSERT_EQ(f.type, YAMUX_PING);
	ASSERT_EQ(f.flags, YAMUX_SYN);
	/* answered: the session goes on past the timeout */
	raw_send(&c.r, YAMUX_PING, YAMUX_ACK, 0, f.length);
	struct yamux_stats st;
	for (int i = 0; i < 6; i++) {
		next_frame(&c, &f);
		ASSERT_EQ(f.type, YAMUX_PING);
		if (f.flags == YAMUX_SYN)
			raw_send(&c.r, YAMUX_PING, YAMUX_ACK, 0, f.length);
	}
	ASSERT_EQ(c.closed_calls, 0);
	yamux_session_get_stats(c.s, &st);
	ASSERT_GE(st.pings_answered, 5);
	/* then no answers */
	run_until(c.l, sess_closed_cond, &c, DEADLINE);
	ASSERT_EQ(c.closed_err, ETIMEDOUT);
	sess_fini(&c);
}

/* An open not ACKed in time is reset and fails with ETIMEDOUT. */
static void test_open_timeout(void)
{
	struct yamux_opts o = test_opts();
	o.open_timeout_ms = 100;
	struct sess c;
	sess_init_opts(&c, true, &o);
	struct tstream *t = open_stream(&c, 1);
	struct tstream *u = open_stream(&c, 3);
	ts_read_start(t);
	ts_read_start(u);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 3, 0);
	run_until(c.l, ts_has_err, t, DEADLINE);
	ASSERT_EQ(t->err, ETIMEDOUT);
	struct frame f;
	next_frame(&c, &f);
	ASSERT_EQ(f.id, 1);
	ASSERT_EQ(f.flags & YAMUX_RST, YAMUX_RST);
	free(f.payload);
	ASSERT_EQ(u->err, 0);
	ASSERT_EQ(c.closed_calls, 0);
	/* the ACKed one works on */
	raw_data(&c.r, 0, 3, "ok", 2);
	wait_rx(&c, u, 2, false);
	expect_quiet(&c);
	sess_fini(&c);
}

/* The peer's normal GoAway: our opens fail with ECONNREFUSED, the streams
 * open go on both ways. */
static void test_goaway_received(void)
{
	struct sess c;
	sess_init(&c, true);
	struct tstream *t = open_stream(&c, 1);
	ts_read_start(t);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	raw_send(&c.r, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_NORMAL);
	expect_quiet(&c);
	struct yamux_stream *st = NULL;
	ASSERT_EQ(yamux_open(c.s, &st), -ECONNREFUSED);
	struct yamux_stats s;
	yamux_session_get_stats(c.s, &s);
	ASSERT(s.goaway_received);
	ASSERT_EQ(ts_write(t, "after", 5), 5);
	collect_data(&c, 1, 5, NULL);
	raw_data(&c.r, YAMUX_FIN, 1, "back", 4);
	wait_rx(&c, t, 4, true);
	ASSERT_EQ(c.closed_calls, 0);
	ASSERT_EQ(t->err, 0);
	sess_fini(&c);

	/* GoAway 1 or 2 (or an unknown code) ends the session: ECONNABORTED */
	static const uint32_t codes[] = {YAMUX_GOAWAY_PROTOCOL, YAMUX_GOAWAY_INTERNAL, 77};
	for (size_t i = 0; i < ARRAY_SIZE(codes); i++) {
		sess_init(&c, true);
		t = open_stream(&c, 1);
		ts_read_start(t);
		raw_send(&c.r, YAMUX_GO_AWAY, 0, 0, codes[i]);
		run_until(c.l, sess_closed_cond, &c, DEADLINE);
		ASSERT_EQ(c.closed_err, ECONNABORTED);
		run_until(c.l, ts_has_err, t, DEADLINE);
		sess_fini(&c);
	}
}

/* Our normal GoAway: the frame, then the peer's new opens are reset; ours
 * go on (as hashicorp's), and so do the streams open. */
static void test_goaway_sent(void)
{
	struct sess c;
	sess_init(&c, false);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
	wait_accepts(&c, 1);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	ASSERT_EQ(yamux_session_goaway(c.s), 0);
	expect_frame(&c, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_NORMAL);
	struct yamux_stream *st = NULL;
	ASSERT_EQ(yamux_open(c.s, &st), 0);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 2, 0);
	yamux_stream_close(st);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_RST, 2, 0);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 3, 0);
	struct frame f;
	next_frame(&c, &f);
	ASSERT_EQ(f.id, 3);
	ASSERT_EQ(f.flags & YAMUX_RST, YAMUX_RST);
	free(f.payload);
	ASSERT_EQ(c.accepts, 1);
	raw_data(&c.r, 0, 1, "still", 5);
	wait_rx(&c, c.ts[0], 5, false);
	ASSERT_EQ(ts_write(c.ts[0], "yes", 3), 3);
	collect_data(&c, 1, 3, NULL);
	struct yamux_stats s;
	yamux_session_get_stats(c.s, &s);
	ASSERT(s.goaway_sent);
	ASSERT_EQ(c.closed_calls, 0);
	sess_fini(&c);
}

/* 256 opens wait to be accepted; the 257th is reset. */
static void test_backlog(void)
{
	struct sess c;
	sess_init(&c, false);
	c.hold = true;
	for (uint32_t i = 0; i < 257; i++)
		raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1 + 2 * i, 0);
	struct frame f;
	next_frame(&c, &f);
	ASSERT_EQ(f.id, 1 + 2 * 256);
	ASSERT_EQ(f.flags & YAMUX_RST, YAMUX_RST);
	free(f.payload);
	expect_quiet(&c);
	ASSERT_EQ(c.accepts, 256);
	struct yamux_stats s;
	yamux_session_get_stats(c.s, &s);
	ASSERT_EQ(s.pending, 256);
	ASSERT_EQ(s.refused, 1);
	/* one accepted: room for one more */
	ASSERT_EQ(yamux_stream_accept(c.ts[0]->st), 0);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1001, 0);
	expect_quiet(&c);
	ASSERT_EQ(c.accepts, 257);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1003, 0);
	next_frame(&c, &f);
	ASSERT_EQ(f.id, 1003);
	ASSERT_EQ(f.flags & YAMUX_RST, YAMUX_RST);
	free(f.payload);
	ASSERT_EQ(c.closed_calls, 0);
	sess_fini(&c);

	/* a smaller backlog, and max_streams */
	struct yamux_opts o = test_opts();
	o.accept_backlog = 4;
	o.max_streams = 6;
	sess_init_opts(&c, false, &o);
	c.hold = true;
	for (uint32_t i = 0; i < 5; i++)
		raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1 + 2 * i, 0);
	next_frame(&c, &f);
	ASSERT_EQ(f.id, 9);
	ASSERT_EQ(f.flags & YAMUX_RST, YAMUX_RST);
	free(f.payload);
	ASSERT_EQ(c.accepts, 4);
	struct yamux_stream *st;
	ASSERT_EQ(yamux_open(c.s, &st), 0);
	ts_attach(&c, st);
	ASSERT_EQ(yamux_open(c.s, &st), 0);
	ts_attach(&c, st);
	ASSERT_EQ(yamux_open(c.s, &st), -EMFILE);
	sess_fini(&c);
}

/* FIN and RST on WindowUpdate frames: EOF after the bytes before it, and
 * a reset; our FIN after theirs lets the stream go without RST. */
static void test_fin_rst_on_window_update(void)
{
	struct sess c;
	sess_init(&c, false);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 3, 0);
	wait_accepts(&c, 2);
	struct tstream *a = c.ts[0], *b = c.ts[1];
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 3, 0);
	raw_data(&c.r, 0, 1, "abc", 3);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_FIN, 1, 0);
	wait_rx(&c, a, 3, true);
	ASSERT_EQ(a->err, 0);
	/* half-closed by the peer: we still send */
	ASSERT_EQ(ts_write(a, "xyz", 3), 3);
	collect_data(&c, 1, 3, NULL);
	struct relay_ep *ep = yamux_stream_ep(a->st);
	ASSERT_EQ(ep->ops->shutdown(ep), 0);
	struct frame f;
	next_frame(&c, &f);
	ASSERT_EQ(f.id, 1);
	ASSERT_EQ(f.flags & YAMUX_FIN, YAMUX_FIN);
	ASSERT_EQ(f.flags & YAMUX_RST, 0);
	ASSERT(f.type == YAMUX_WINDOW_UPDATE || (f.type == YAMUX_DATA && f.length == 0));
	free(f.payload);
	ts_close(a); /* both FINs: no RST */
	expect_quiet(&c);

	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_RST, 3, 0);
	run_until(c.l, ts_has_err, b, DEADLINE);
	ASSERT_EQ(b->err, ECONNRESET);
	ts_close(b); /* after their RST: nothing to send */
	expect_quiet(&c);
	struct yamux_stats s;
	yamux_session_get_stats(c.s, &s);
	ASSERT_EQ(s.streams, 0);
	ASSERT_EQ(s.resets_received, 1);
	ASSERT_EQ(s.resets_sent, 0);

	/* a FIN with a window delta: both honoured */
	struct yamux_stream *st;
	ASSERT_EQ(yamux_open(c.s, &st), 0);
	struct tstream *o = ts_attach(&c, st);
	ts_read_start(o);
	expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 2, 0);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_ACK | YAMUX_FIN, 2, 10);
	wait_rx(&c, o, 0, true);
	unsigned char *buf = pattern(WIN + 10, 6);
	ASSERT_EQ(ts_write(o, buf, WIN + 100), WIN + 10);
	collect_data(&c, 2, WIN + 10, NULL);
	free(buf);
	/* closing a stream that is not finished our way: RST */
	ts_close(o);
	next_frame(&c, &f);
	ASSERT_EQ(f.id, 2);
	ASSERT_EQ(f.flags & YAMUX_RST, YAMUX_RST);
	free(f.payload);
	sess_fini(&c);
}

/* A bad version byte or an unknown type is a protocol error. */
static void test_bad_header(void)
{
	static const unsigned char bad[][12] = {
	    {1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0},
	    {0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct sess c;
		sess_init(&c, false);
		raw_put(&c.r, bad[i], 12);
		raw_flush(&c.r);
		expect_frame(&c, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_PROTOCOL);
		run_until(c.l, sess_closed_and_eof, &c, DEADLINE);
		ASSERT_EQ(c.closed_err, EPROTO);
		sess_fini(&c);
	}
}

/* The peer closes the connection: ECONNRESET for the session and its
 * streams; and yamux_session_close: our streams ECONNABORTED, closed 0. */
static void test_session_end(void)
{
	struct sess c;
	sess_init(&c, true);
	struct tstream *t = open_stream(&c, 1);
	ts_read_start(t);
	ASSERT_EQ(shutdown(c.r.fd, SHUT_RDWR), 0);
	run_until(c.l, sess_closed_cond, &c, DEADLINE);
	ASSERT_EQ(c.closed_err, ECONNRESET);
	run_until(c.l, ts_has_err, t, DEADLINE);
	sess_fini(&c);

	sess_init(&c, true);
	t = open_stream(&c, 1);
	ts_read_start(t);
	yamux_session_close(c.s);
	run_until(c.l, sess_closed_cond, &c, DEADLINE);
	ASSERT_EQ(c.closed_err, 0);
	ASSERT_EQ(t->err, ECONNABORTED);
	struct yamux_stream *st;
	ASSERT_EQ(yamux_open(c.s, &st), -ESHUTDOWN);
	ASSERT_EQ(yamux_session_goaway(c.s), -ESHUTDOWN);
	ASSERT_EQ(yamux_session_ping(c.s), -ESHUTDOWN);
	sess_fini(&c);

	/* freed with a stream still held: the stream's calls fail */
	sess_init(&c, true);
	ASSERT_EQ(yamux_open(c.s, &st), 0);
	yamux_session_free(c.s);
	c.s = NULL;
	struct relay_ep *ep = yamux_stream_ep(st);
	ASSERT(ep->ops->write(ep, "x", 1) < 0);
	ASSERT_EQ(yamux_stream_accept(st), -ENOTCONN);
	yamux_stream_close(st);
	sess_fini(&c);
}

/* --- a socket relayed to a stream --- */

struct rctx {
	struct sess c;
	struct relay *r;
	int done;
	struct relay_stats st;
	/* the socket's far end */
	int fd;
	unsigned char *rx;
	size_t rx_len;
	bool eof;
};

static void rctx_done(struct relay *r, void *data)
{
	struct rctx *x = data;
	x->done++;
	relay_get_stats(r, &x->st);
}

static bool rctx_read_sock(void *arg)
{
	struct rctx *x = arg;
	while (!x->eof) {
		ssize_t n = recv(x->fd, x->rx + x->rx_len, 1024 * KiB - x->rx_len, MSG_DONTWAIT);
		if (n == 0)
			x->eof = true;
		if (n <= 0)
			break;
		x->rx_len += (size_t)n;
	}
	return x->eof;
}

static bool rctx_is_done(void *arg)
{
	return ((struct rctx *)arg)->done > 0;
}

static void test_relay(void)
{
	size_t up_n = 600 * KiB, down_n = 200 * KiB;
	unsigned char *up = pattern(up_n, 7), *down = pattern(down_n, 8), *got = malloc(up_n);
	ASSERT(got);
	struct rctx x;
	memset(&x, 0, sizeof x);
	struct sess *c = &x.c;
	sess_init(c, true);
	x.rx = malloc(1024 * KiB);
	ASSERT(x.rx);
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	x.fd = sv[0];
	struct yamux_stream *st;
	ASSERT_EQ(yamux_open(c->s, &st), 0);
	struct relay_ep *fa;
	ASSERT_EQ(relay_ep_fd_new(c->l, sv[1], &fa), 0);
	ASSERT_EQ(relay_new_ep(c->l, fa, yamux_stream_ep(st), NULL, rctx_done, &x, &x.r), 0);
	expect_frame(c, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);

	/* the socket's side: bytes, then its half-close, which is a FIN once
	 * every byte is through; the peer's window opens as it reads */
	struct raw *r = &c->r;
	ASSERT_EQ(write_all(x.fd, up, 100 * KiB), 0);
	raw_send(r, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	size_t got_n = 0, granted = 0;
	bool fin = false;
	size_t written = 100 * KiB;
	while (!fin) {
		if (written < up_n) {
			ssize_t w = send(x.fd, up + written, up_n - written, MSG_DONTWAIT);
			if (w > 0)
				written += (size_t)w;
			if (written == up_n)
				ASSERT_EQ(shutdown(x.fd, SHUT_WR), 0);
		}
		struct frame f;
		next_frame(c, &f);
		ASSERT_EQ(f.id, 1);
		ASSERT_EQ(f.flags & YAMUX_RST, 0);
		if (f.type == YAMUX_DATA) {
			ASSERT_LE(got_n + f.length, up_n);
			memcpy(got + got_n, f.payload, f.length);
			got_n += f.length;
			ASSERT_LE(got_n, WIN + granted); /* never beyond the window */
			if (got_n - granted >= WIN / 2) {
				raw_send(r, YAMUX_WINDOW_UPDATE, 0, 1, (uint32_t)(got_n - granted));
				granted = got_n;
			}
		}
		if (f.flags & YAMUX_FIN) {
			ASSERT_EQ(got_n, up_n);
			fin = true;
		}
		free(f.payload);
	}
	ASSERT(memcmp(got, up, up_n) == 0);
	ASSERT_EQ(x.done, 0);

	/* the other way, after our half-close (within the window: 200 KiB),
	 * then the peer's FIN: the socket reads it all and EOF, the relay
	 * ends without error */
	for (size_t off = 0; off < down_n; off += 50 * KiB)
		raw_data(r, 0, 1, down + off, 50 * KiB);
	raw_send(r, YAMUX_WINDOW_UPDATE, YAMUX_FIN, 1, 0);
	run_until(c->l, rctx_read_sock, &x, DEADLINE);
	ASSERT_EQ(x.rx_len, down_n);
	ASSERT(memcmp(x.rx, down, down_n) == 0);
	run_until(c->l, rctx_is_done, &x, DEADLINE);
	ASSERT_EQ(x.done, 1);
	ASSERT_EQ(x.st.error, 0);
	ASSERT_EQ(x.st.a_to_b, up_n);
	ASSERT_EQ(x.st.b_to_a, down_n);
	/* on the way, only our window updates (deltas of what was read) */
	size_t delta = 0;
	while (raw_has_frame(r)) {
		struct frame f;
		raw_pop(r, &f);
		ASSERT_EQ(f.type, YAMUX_WINDOW_UPDATE);
		ASSERT_EQ(f.flags, 0);
		ASSERT_EQ(f.id, 1);
		delta += f.length;
	}
	ASSERT_LE(delta, down_n);
	ASSERT_GE(delta, WIN / 2);
	/* freeing the relay closes a stream finished both ways: no RST */
	relay_free(x.r);
	x.r = NULL;
	expect_quiet(c);
	struct yamux_stats s;
	yamux_session_get_stats(c->s, &s);
	ASSERT_EQ(s.streams, 0);
	ASSERT_EQ(s.resets_sent, 0);
	sess_fini(c);
	free(up);
	free(down);
	free(got);
	free(x.rx);
	close(x.fd);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	RUN(test_hdr_layout);
	RUN(test_hdr_roundtrip);
	RUN(test_hdr_need_more);
	RUN(test_hdr_refused);
	RUN(test_open_ids);
	RUN(test_open_queue);
	RUN(test_inbound_open_ack);
	RUN(test_inbound_data_syn_write_before_accept);
	RUN(test_refuse);
	RUN(test_send_window_deltas);
	RUN(test_recv_window_update);
	RUN(test_large_window);
	RUN(test_window_autotune);
	RUN(test_over_window);
	RUN(test_unknown_stream);
	RUN(test_duplicate_syn);
	RUN(test_ping);
	RUN(test_keepalive_timeout);
	RUN(test_open_timeout);
	RUN(test_goaway_received);
	RUN(test_goaway_sent);
	RUN(test_backlog);
	RUN(test_fin_rst_on_window_update);
	RUN(test_bad_header);
	RUN(test_session_end);
	RUN(test_relay);
	relay_pool_flush();
	return 0;
}
