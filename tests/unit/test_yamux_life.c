/* Lifetime, re-entrancy and contract tests for proto/yamux's session (the
 * protocol itself is test_yamux.c's): what a user may do from inside each
 * of its callbacks (close this stream or another, free the session, open,
 * read_stop/read_start, write, shutdown), the session freed with streams
 * still held, and the relay_ep rules the streams promise (core/relay.h):
 * no callback after close or after an error, no alloc/read after
 * read_stop, EOF only as the end, one error, one writable per short write.
 * Also what a peer can make the session keep: memory that must be given
 * back (streams opened and reset before the user saw them), and the
 * tuning budget given back by every way a stream leaves.
 *
 * The peer is this test's end of a socketpair writing raw frames (helpers
 * after test_yamux.c's); every callback checks the contract on its way.
 * The loop runs until a condition holds, with a deadline (no sleeps). */
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

/* --- the raw peer: this test's end of the socketpair --- */

#include "yamux_raw.h"
}

/* --- a session under test, its streams, with hooks in every callback --- */

enum what { W_ACCEPT, W_ALLOC, W_READ, W_EOF, W_WRITABLE, W_ERROR, W_CLOSED, W_PONG };

struct sess;
struct tstream;

typedef void (*ts_hook)(struct tstream *t, enum what w);

struct tstream {
	struct sess *c;
	struct yamux_stream *st;
	unsigned char *rx;
	size_t rx_len, rx_cap;
	bool reading; /* between our read_start and read_stop (or EOF/error) */
	bool eof, closed;
	int err, errors, writables, allocs, reads;
	ts_hook hook; /* called at the end of each callback */
	void *arg;
};

#define MAX_TS 64

struct sess {
	struct loop *l;
	struct yamux_session *s;
	struct raw r;
	bool client;
	bool freed; /* by a test, from wherever */
	int closed_calls, closed_err, pongs;
	bool hold;	     /* accept: leave the stream pending, no callbacks set */
	bool no_read;	     /* accept, but do not start reading */
	ts_hook accept_hook; /* on the new stream, after the accept callback's work */
	void (*closed_hook)(struct sess *c);
	void (*pong_hook)(struct sess *c);
	struct tstream *ts[MAX_TS];
	unsigned n_ts;
	unsigned accepts;
};

static void ts_alloc(struct relay_ep *ep, size_t suggested, void **ret, size_t *ret_len)
{
	struct tstream *t = ep->data;
	ASSERT(!t->closed);
	ASSERT(!t->eof);
	ASSERT_EQ(t->errors, 0);
	ASSERT(t->reading); /* read_stop takes effect at once */
	ASSERT_GT(suggested, 0);
	if (t->rx_len + 64 * KiB > t->rx_cap) {
		t->rx_cap = (t->rx_len + 64 * KiB) * 2;
		t->rx = realloc(t->rx, t->rx_cap);
		ASSERT(t->rx);
	}
	*ret = t->rx + t->rx_len;
	*ret_len = t->rx_cap - t->rx_len;
	t->allocs++;
	if (t->hook)
		t->hook(t, W_ALLOC);
}

static void ts_read(struct relay_ep *ep, size_t n)
{
	struct tstream *t = ep->data;
	ASSERT(!t->closed);
	ASSERT(!t->eof);
	ASSERT_EQ(t->errors, 0);
	ASSERT(t->reading);
	if (n == 0) {
		t->eof = true;
		t->reading = false;
	}
	t->rx_len += n;
	t->reads++;
	if (t->hook)
		t->hook(t, n ? W_READ : W_EOF);
}

static void ts_writable(struct relay_ep *ep)
{
	struct tstream *t = ep->data;
	ASSERT(!t->closed);
	ASSERT_EQ(t->errors, 0);
	t->writables++;
	if (t->hook)
		t->hook(t, W_WRITABLE);
}

static void ts_error(struct relay_ep *ep, int err)
{
	struct tstream *t = ep->data;
	ASSERT(!t->closed);
	ASSERT_EQ(t->errors, 0); /* once */
	ASSERT_GT(err, 0);
	t->err = err;
	t->errors++;
	t->reading = false;
	if (t->hook)
		t->hook(t, W_ERROR);
}

static const struct relay_ep_cb ts_cb = {
    .alloc = ts_alloc,
    .read = ts_read,
    .writable = ts_writable,
    .error = ts_error,
};

static struct tstream *ts_new(struct sess *c, struct yamux_stream *st)
{
	ASSERT_LT(c->n_ts, MAX_TS);
	struct tstream *t = calloc(1, sizeof *t);
	ASSERT(t);
	t->c = c;
	t->st = st;
	yamux_stream_set_data(st, t);
	c->ts[c->n_ts++] = t;
	return t;
}

/* Set the endpoint's callbacks (a relay_new_ep would). */
static void ts_bind(struct tstream *t)
{
	struct relay_ep *ep = yamux_stream_ep(t->st);
	ep->cb = &ts_cb;
	ep->data = t;
}

static struct tstream *ts_attach(struct sess *c, struct yamux_stream *st)
{
	struct tstream *t = ts_new(c, st);
	ts_bind(t);
	return t;
}

static int ts_start(struct tstream *t)
{
	struct relay_ep *ep = yamux_stream_ep(t->st);
	int err = ep->ops->read_start(ep);
	if (err == 0 && !t->eof && t->errors == 0)
		t->reading = true;
	return err;
}

static void ts_read_start(struct tstream *t)
{
	ASSERT_EQ(ts_start(t), 0);
}

static void ts_read_stop(struct tstream *t)
{
	struct relay_ep *ep = yamux_stream_ep(t->st);
	ep->ops->read_stop(ep);
	t->reading = false;
}

static void ts_close(struct tstream *t)
{
	if (t->closed)
		return;
	yamux_stream_close(t->st);
	t->closed = true;
	t->reading = false;
}

static ssize_t ts_write1(struct tstream *t, const void *bytes, size_t len)
{
	struct relay_ep *ep = yamux_stream_ep(t->st);
	return ep->ops->write(ep, bytes, len);
}

static int ts_shutdown(struct tstream *t)
{
	struct relay_ep *ep = yamux_stream_ep(t->st);
	return ep->ops->shutdown(ep);
}

static void sess_free(struct sess *c)
{
	yamux_session_free(c->s);
	c->freed = true;
}

static void sess_accept(struct yamux_session *s, struct yamux_stream *st, void *data)
{
	struct sess *c = data;
	ASSERT(!c->freed);
	ASSERT(s == c->s);
	c->accepts++;
	if (c->hold) {
		ts_new(c, st); /* known, but no callbacks yet */
		return;
	}
	struct tstream *t = ts_attach(c, st);
	ASSERT_EQ(yamux_stream_accept(st), 0);
	if (!c->no_read)
		ts_read_start(t);
	if (c->accept_hook)
		c->accept_hook(t, W_ACCEPT);
}

static void sess_closed(struct yamux_session *s, int err, void *data)
{
	struct sess *c = data;
	ASSERT(!c->freed);
	ASSERT(s == c->s);
	ASSERT_EQ(c->closed_calls, 0);
	ASSERT_GE(err, 0);
	c->closed_calls++;
	c->closed_err = err;
	if (c->closed_hook)
		c->closed_hook(c);
}

static void sess_pong(struct yamux_session *s, uint64_t rtt_us, void *data)
{
	struct sess *c = data;
	ASSERT(!c->freed);
	ASSERT(s == c->s);
	c->pongs++;
	if (c->pong_hook)
		c->pong_hook(c);
}

static const struct yamux_session_cb sess_cb = {
    .accept = sess_accept, .closed = sess_closed, .pong = sess_pong};

static struct yamux_opts test_opts(void)
{
	/* no tuning unless a test asks for it */
	return (struct yamux_opts){.keepalive_off = true, .max_recv_window = WIN};
}

static void sess_init_opts(struct sess *c, bool client, const struct yamux_opts *o)
{
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
	if (!c->freed)
		yamux_session_free(c->s);
	c->s = NULL;
	ASSERT_EQ(loop_del_fd(c->l, c->r.fd), 0);
	close(c->r.fd);
	free(c->r.rx);
	free(c->r.tx);
	yamux_drain_flush();
	loop_free(c->l); /* runs the streams' releases: LSan sees the rest */
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

static bool sess_closed_cond(void *arg)
{
	return ((struct sess *)arg)->closed_calls > 0;
}

static bool ts_has_err(void *arg)
{
	return ((struct tstream *)arg)->errors > 0;
}

static bool ts_has_writable(void *arg)
{
	return ((struct tstream *)arg)->writables > 0;
}

static bool ts_has_err_or_writable(void *arg)
{
	struct tstream *t = arg;
	return t->errors > 0 || t->writables > 0;
}

struct want_rx {
	struct tstream *t;
	size_t n;
};

static bool rx_reached(void *arg)
{
	struct want_rx *w = arg;
	return w->t->rx_len >= w->n;
}

static void wait_rx(struct sess *c, struct tstream *t, size_t n)
{
	struct want_rx w = {t, n};
	run_until(c->l, rx_reached, &w, DEADLINE);
	ASSERT_EQ(t->rx_len, n);
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

/* An inbound stream from the peer (its id), accepted by sess_accept. */
static struct tstream *peer_open(struct sess *c, uint32_t id)
{
	unsigned before = c->accepts;
	raw_send(&c->r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, id, 0);
	wait_accepts(c, before + 1);
	struct tstream *t = c->ts[c->n_ts - 1];
	ASSERT_EQ(yamux_stream_id(t->st), id);
	if (!c->hold)
		expect_frame(c, YAMUX_WINDOW_UPDATE, YAMUX_ACK, id, 0);
	return t;
}

static struct tstream *open_stream(struct sess *c, uint32_t want_id)
{
	struct yamux_stream *st = NULL;
	ASSERT_EQ(yamux_open(c->s, &st), 0);
	ASSERT_EQ(yamux_stream_id(st), want_id);
	struct tstream *t = ts_attach(c, st);
	expect_frame(c, YAMUX_WINDOW_UPDATE, YAMUX_SYN, want_id, 0);
	return t;
}

static size_t sess_memory(struct sess *c)
{
	struct yamux_stats st;
	yamux_session_get_stats(c->s, &st);
	return st.memory;
}

/* Streams closed after the session ended (not freed): each had its error,
 * reading or not; closing them gives their memory back. */
static void test_close_after_end(void)
{
	struct sess c;
	sess_init(&c, true);
	expect_quiet(&c);
	size_t base = sess_memory(&c);
	struct tstream *a = open_stream(&c, 1);
	struct tstream *b = open_stream(&c, 3);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	raw_data(&c.r, 0, 1, "unread", 6);
	ts_read_start(b);
	expect_quiet(&c);
	ASSERT_GT(sess_memory(&c), base);
	yamux_session_close(c.s);
	run_until(c.l, sess_closed_cond, &c, DEADLINE);
	run_until(c.l, ts_has_err_or_writable, b, DEADLINE);
	ASSERT_EQ(b->err, ECONNABORTED);
	run_until(c.l, ts_has_err, a, DEADLINE); /* reading or not */
	ASSERT_EQ(a->err, ECONNABORTED);
	ASSERT_EQ(a->rx_len, 0); /* its bytes went with the session */
	ts_close(a);
	ts_close(b);
	/* at most what it had: the output buffer left with the drainer */
	ASSERT_LE(sess_memory(&c), base);
	sess_fini(&c);
}

/* --- bugs: each test names what it shows --- */

/* An open whose SYN no longer fits the output (the peer reads nothing:
 * control frames past max_output's slack) ends the session with ENOBUFS
 * and fails; the stream it made must not stay on the session's lists
 * (it was freed while still marked dirty: a use-after-free in kick). */
static void test_open_enobufs(void)
{
	struct yamux_opts o = test_opts();
	o.max_output = 1;
	o.max_opening = 4096;
	struct sess c;
	sess_init_opts(&c, true, &o);
	static struct yamux_stream *held[1000];
	unsigned n = 0;
	int err;
	struct yamux_stream *st = NULL;
	while ((err = yamux_open(c.s, &st)) == 0) {
		ASSERT_LT(n, 1000);
		held[n++] = st;
	}
	ASSERT_EQ(err, -ENOBUFS);
	ASSERT_GT(n, 0);
	run_until(c.l, sess_closed_cond, &c, DEADLINE);
	ASSERT_EQ(c.closed_err, ENOBUFS);
	for (unsigned i = 0; i < n; i++)
		yamux_stream_close(held[i]);
	sess_fini(&c);
}

/* A peer that opens and resets streams faster than the loop offers them
 * (SYN and RST in one read) must not make the session keep them: nobody
 * will ever see or close them.  They stayed on s->streams until the
 * session was freed: memory without bound, outside max_streams. */
static void test_syn_rst_forgotten(void)
{
	struct sess c;
	sess_init(&c, false);
	expect_quiet(&c);
	size_t base = sess_memory(&c);
	for (uint32_t i = 0; i < 500; i++) {
		uint32_t id = 1 + 2 * i;
		raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, id, 0);
		raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_RST, id, 0);
	}
	expect_quiet(&c);
	ASSERT_EQ(c.accepts, 0); /* reset before offered: nothing to accept */
	struct yamux_stats st;
	yamux_session_get_stats(c.s, &st);
	ASSERT_EQ(st.streams, 0);
	ASSERT_EQ(st.pending, 0);
	ASSERT_EQ(sess_memory(&c), base);
	/* and the same when the session ends before it could offer them */
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 2001, 0);
	raw_send(&c.r, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_INTERNAL);
	run_until(c.l, sess_closed_cond, &c, DEADLINE);
	ASSERT_EQ(c.accepts, 0);
	ASSERT_LE(sess_memory(&c), base); /* the output buffer went too */
	sess_fini(&c);
}

static void hook_session_close(struct tstream *t, enum what w)
{
	if (w == W_ALLOC && t->c->s)
		yamux_session_close(t->c->s);
}

/* The session closed from inside alloc while buffered bytes are being
 * handed out: the bytes go with the session (its error follows), but no
 * read of 0 may come: that is EOF, which the peer never sent. */
static void test_close_in_alloc_no_eof(void)
{
	struct sess c;
	sess_init(&c, true);
	struct tstream *t = open_stream(&c, 1);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	raw_data(&c.r, 0, 1, "buffered", 8);
	expect_quiet(&c); /* in the stream's buffer: it is not reading */
	t->hook = hook_session_close;
	ts_read_start(t);
	run_until(c.l, ts_has_err, t, DEADLINE);
	ASSERT(!t->eof);
	ASSERT_EQ(t->err, ECONNABORTED);
	sess_fini(&c);
}

/* An error that comes while the user has set no callbacks (a stream held
 * from the accept callback until, say, a local connect completes) is owed
 * once they are set: a write that takes nothing promises a writable or
 * the error, and neither came (the write said -EAGAIN "the error is on
 * its way", but it was not). */
static void test_error_while_unbound(void)
{
	struct sess c;
	sess_init(&c, false);
	c.hold = true;
	struct tstream *t = peer_open(&c, 1);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_RST, 1, 0);
	expect_quiet(&c);
	ts_bind(t);
	ASSERT_EQ(ts_write1(t, "x", 1), -EAGAIN);
	run_until(c.l, ts_has_err_or_writable, t, DEADLINE);
	ASSERT_EQ(t->errors, 1);
	ASSERT_EQ(t->err, ECONNRESET);
	ASSERT_EQ(t->writables, 0);
	sess_fini(&c);
}

/* --- the tuning budget is given back by every way a stream leaves --- */

/* Pop frames up to our Ping's ACK; the window updates on `id` add up to
 * the return. */
static uint32_t updates_until_quiet(struct sess *c, uint32_t id)
{
	uint32_t sum = 0, v = 0x5eed0000u + ++c->r.ping_seq;
	raw_send(&c->r, YAMUX_PING, YAMUX_SYN, 0, v);
	for (;;) {
		struct frame f;
		next_frame(c, &f);
		free(f.payload);
		if (f.type == YAMUX_PING && f.flags == YAMUX_ACK && f.length == v)
			return sum;
		if (f.type == YAMUX_WINDOW_UPDATE && f.id == id &&
		    !(f.flags & (YAMUX_SYN | YAMUX_RST)))
			sum += f.length;
	}
}

/* Starve t (the whole window while not reading), then read: the window
 * doubles when the budget allows. */
static uint32_t starve_and_read(struct sess *c, struct tstream *t, const unsigned char *buf)
{
	uint32_t id = yamux_stream_id(t->st);
	raw_data(&c->r, 0, id, buf, WIN);
	expect_quiet(c);
	size_t before = t->rx_len;
	ts_read_start(t);
	wait_rx(c, t, before + WIN);
	return updates_until_quiet(c, id);
}

enum leave { L_CLOSE, L_RST, L_FINS, L_OPEN_TIMEOUT, L_END };

static void test_tune_budget_given_back(void)
{
	unsigned char *buf = calloc(1, WIN);
	ASSERT(buf);
	struct yamux_opts o = test_opts();
	o.max_recv_window = 2 * WIN;
	o.tune_budget = WIN; /* one doubling at a time */
	o.open_timeout_ms = 500;
	struct sess c;
	sess_init_opts(&c, false, &o);
	c.no_read = true;
	uint32_t next_in = 1;
	uint64_t grows = 0;
	for (enum leave how = L_CLOSE; how < L_END; how++) {
		struct tstream *t;
		if (how == L_OPEN_TIMEOUT) {
			/* ours, never ACKed: the peer sends anyway */
			struct yamux_stream *st;
			ASSERT_EQ(yamux_open(c.s, &st), 0);
			t = ts_attach(&c, st);
			expect_frame(&c, YAMUX_WINDOW_UPDATE, YAMUX_SYN, yamux_stream_id(st), 0);
		} else {
			t = peer_open(&c, next_in);
			next_in += 2;
		}
		ASSERT_EQ(starve_and_read(&c, t, buf), 2 * WIN); /* read + grown */
		struct yamux_stats st;
		yamux_session_get_stats(c.s, &st);
		ASSERT_EQ(st.window_grows, ++grows);
		uint32_t id = yamux_stream_id(t->st);
		switch (how) {
		case L_CLOSE:
			ts_close(t);
			break;
		case L_RST:
			raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_RST, id, 0);
			run_until(c.l, ts_has_err, t, DEADLINE);
			break;
		case L_FINS:
			raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_FIN, id, 0);
			ASSERT_EQ(ts_shutdown(t), 0);
			break;
		case L_OPEN_TIMEOUT:
			run_until(c.l, ts_has_err, t, DEADLINE);
			ASSERT_EQ(t->err, ETIMEDOUT);
			break;
		case L_END:
			break;
		}
		(void)updates_until_quiet(&c, 0); /* its RST or FIN */
		/* a stream that still holds its grown window would hold the
		 * budget: the next one could not grow */
	}
	/* the last one, after all of them */
	struct tstream *t = peer_open(&c, next_in);
	ASSERT_EQ(starve_and_read(&c, t, buf), 2 * WIN);
	struct yamux_stats st;
	yamux_session_get_stats(c.s, &st);
	ASSERT_EQ(st.window_grows, grows + 1);
	/* and the budget holds: a second stream at once cannot grow */
	struct tstream *u = peer_open(&c, next_in + 2);
	ASSERT_EQ(starve_and_read(&c, u, buf), WIN);
	sess_fini(&c);
	free(buf);
}

/* --- what a user may do from inside each callback --- */

enum trig {
	T_ACCEPT,
	T_ALLOC_DIRECT,	  /* bytes from the socket's callback, to a reader */
	T_ALLOC_BUFFERED, /* bytes from the stream's buffer (kick) */
	T_READ_DIRECT,
	T_READ_BUFFERED,
	T_EOF,
	T_WRITABLE,
	T_ERROR,
	T_CLOSED,
	T_PONG,
	T_COUNT,
};

enum act {
	A_FREE_SESSION,
	A_CLOSE_SESSION,
	A_CLOSE_SELF,
	A_CLOSE_OTHER,
	A_OPEN,
	A_GOAWAY,
	A_READ_STOP,
	A_READ_RESTART,
	A_WRITE,
	A_SHUTDOWN,
	A_CLOSE_ALL,
	A_COUNT,
};

static const char *const trig_names[] = {
    "accept", "alloc_direct", "alloc_buffered", "read_direct", "read_buffered",
    "eof",    "writable",     "error",		"closed",      "pong"};
static const char *const act_names[] = {
    "free_session", "close_session", "close_self", "close_other", "open",     "goaway",
    "read_stop",    "read_restart",  "write",	   "shutdown",	  "close_all"};

struct matrix {
	enum trig trig;
	enum act act;
	bool fired;
	struct tstream *subject, *other;
	int subj_calls; /* the subject's callbacks when it was closed */
};

static struct matrix mx;

static int ts_calls(const struct tstream *t)
{
	return t->allocs + t->reads + t->writables + t->errors;
}

static void do_act(struct sess *c, struct tstream *t)
{
	struct yamux_stream *st;
	mx.fired = true;
	switch (mx.act) {
	case A_FREE_SESSION:
		sess_free(c);
		break;
	case A_CLOSE_SESSION:
		yamux_session_close(c->s);
		break;
	case A_CLOSE_SELF:
		ts_close(t);
		break;
	case A_CLOSE_OTHER:
		ts_close(mx.other);
		break;
	case A_OPEN:
		if (yamux_open(c->s, &st) == 0)
			ts_attach(c, st);
		break;
	case A_GOAWAY:
		(void)yamux_session_goaway(c->s);
		break;
	case A_READ_STOP:
		ts_read_stop(t);
		break;
	case A_READ_RESTART:
		ts_read_stop(t);
		(void)ts_start(t);
		break;
	case A_WRITE:
		(void)ts_write1(t, "w", 1);
		break;
	case A_SHUTDOWN:
		(void)ts_shutdown(t);
		break;
	case A_CLOSE_ALL:
		for (unsigned i = 0; i < c->n_ts; i++)
			ts_close(c->ts[i]);
		break;
	case A_COUNT:
		break;
	}
	mx.subj_calls = ts_calls(mx.subject);
}

static bool trig_matches(enum what w)
{
	switch (mx.trig) {
	case T_ACCEPT:
		return w == W_ACCEPT;
	case T_ALLOC_DIRECT:
	case T_ALLOC_BUFFERED:
		return w == W_ALLOC;
	case T_READ_DIRECT:
	case T_READ_BUFFERED:
		return w == W_READ;
	case T_EOF:
		return w == W_EOF;
	case T_WRITABLE:
		return w == W_WRITABLE;
	case T_ERROR:
		return w == W_ERROR;
	case T_CLOSED:
		return w == W_CLOSED;
	case T_PONG:
		return w == W_PONG;
	case T_COUNT:
		break;
	}
	return false;
}

static void mx_hook(struct tstream *t, enum what w)
{
	if (mx.fired || t != mx.subject || !trig_matches(w))
		return;
	do_act(t->c, t);
}

static void mx_accept_hook(struct tstream *t, enum what w)
{
	if (mx.trig != T_ACCEPT || mx.fired)
		return;
	mx.subject = t;
	do_act(t->c, t);
}

static void mx_closed_hook(struct sess *c)
{
	if (mx.trig == T_CLOSED && !mx.fired)
		do_act(c, mx.subject);
}

static void mx_pong_hook(struct sess *c)
{
	if (mx.trig == T_PONG && !mx.fired)
		do_act(c, mx.subject);
}

static bool mx_fired(void *arg)
{
	return mx.fired;
}

/* After the act: more of everything from the peer; nothing may reach a
 * closed stream (its callbacks assert it), nor alloc/read one stopped. */
static void mx_aftermath(struct sess *c)
{
	if (!c->freed && c->closed_calls == 0 && yamux_session_ping(c->s) == 0) {
		for (uint32_t id = 1; id <= 5; id += 2) {
			raw_data(&c->r, 0, id, "more", 4);
			raw_send(&c->r, YAMUX_WINDOW_UPDATE, 0, id, 1000);
		}
		raw_data(&c->r, YAMUX_FIN, 1, "last", 4);
		raw_send(&c->r, YAMUX_WINDOW_UPDATE, YAMUX_FIN, 3, 0);
		/* the session may have ended by the act (close, ENOBUFS...) */
		uint32_t v = 0x5eed0000u + ++c->r.ping_seq;
		raw_send(&c->r, YAMUX_PING, YAMUX_SYN, 0, v);
		for (;;) {
			run_until(c->l, raw_frame_or_eof, &c->r, DEADLINE);
			if (!raw_has_frame(&c->r))
				break;
			struct frame f;
			raw_pop(&c->r, &f);
			free(f.payload);
			if (f.type == YAMUX_PING && f.flags == YAMUX_ACK && f.length == v)
				break;
		}
	}
	if (mx.subject->closed)
		ASSERT_EQ(ts_calls(mx.subject), mx.subj_calls);
	/* then the session goes with streams still held: each call on them
	 * fails cleanly, close frees (LSan) */
	if (!c->freed)
		sess_free(c);
	for (unsigned i = 0; i < c->n_ts; i++) {
		struct tstream *t = c->ts[i];
		if (t->closed)
			continue;
		ASSERT(yamux_stream_session(t->st) == NULL);
		ASSERT_EQ(ts_start(t), -ENOTCONN);
		ASSERT_EQ(ts_write1(t, "z", 1), -ENOTCONN);
		ASSERT_EQ(ts_shutdown(t), -ENOTCONN);
		ASSERT_EQ(yamux_stream_accept(t->st), -ENOTCONN);
		ts_read_stop(t);
	}
}

static void mx_run(enum trig trig, enum act act)
{
	static unsigned char big[WIN + 16];
	struct sess c;
	sess_init(&c, true);
	memset(&mx, 0, sizeof mx);
	mx.trig = trig;
	mx.act = act;
	c.accept_hook = mx_accept_hook;
	c.closed_hook = mx_closed_hook;
	c.pong_hook = mx_pong_hook;
	struct tstream *a = open_stream(&c, 1);
	struct tstream *b = open_stream(&c, 3);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 3, 0);
	a->hook = mx_hook;
	b->hook = mx_hook;
	mx.subject = a;
	mx.other = b;
	ts_read_start(b);
	switch (trig) {
	case T_ACCEPT:
		raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 2, 0);
		break;
	case T_ALLOC_DIRECT:
	case T_READ_DIRECT:
	case T_EOF:
		ts_read_start(a);
		expect_quiet(&c);
		/* two frames in one read: an act in the first callback holds
		 * for the second */
		raw_data(&c.r, 0, 1, "first", 5);
		raw_data(&c.r, trig == T_EOF ? YAMUX_FIN : 0, 1, "second", 6);
		break;
	case T_ALLOC_BUFFERED:
	case T_READ_BUFFERED:
		raw_data(&c.r, 0, 1, "first", 5);
		raw_data(&c.r, 0, 1, "second", 6);
		expect_quiet(&c);
		ts_read_start(a);
		break;
	case T_WRITABLE:
		ASSERT_EQ(ts_write1(a, big, sizeof big), WIN); /* the window: short */
		(void)updates_until_quiet(&c, 0);
		raw_send(&c.r, YAMUX_WINDOW_UPDATE, 0, 1, 16);
		break;
	case T_ERROR:
		ts_read_start(a);
		raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_RST, 1, 0);
		break;
	case T_CLOSED:
		ts_read_start(a);
		raw_send(&c.r, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_INTERNAL);
		break;
	case T_PONG: {
		ts_read_start(a);
		ASSERT_EQ(yamux_session_ping(c.s), 0);
		struct frame f;
		next_frame(&c, &f);
		while (f.type != YAMUX_PING)
			next_frame(&c, &f);
		ASSERT_EQ(f.flags, YAMUX_SYN);
		raw_send(&c.r, YAMUX_PING, YAMUX_ACK, 0, f.length);
		break;
	}
	case T_COUNT:
		break;
	}
	run_until(c.l, mx_fired, NULL, DEADLINE);
	mx_aftermath(&c);
	sess_fini(&c);
}

static void test_callback_matrix(void)
{
	unsigned n = 0;
	for (enum trig t = 0; t < T_COUNT; t++)
		for (enum act a = 0; a < A_COUNT; a++) {
			printf("# %s / %s\n", trig_names[t], act_names[a]);
			mx_run(t, a);
			n++;
		}
	printf("# %u callback/act pairs\n", n);
}

/* A short write owes exactly one writable, however many updates come. */
static void test_one_writable(void)
{
	static unsigned char big[WIN + 100];
	struct sess c;
	sess_init(&c, true);
	struct tstream *t = open_stream(&c, 1);
	raw_send(&c.r, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
	ASSERT_EQ(ts_write1(t, big, sizeof big), WIN);
	(void)updates_until_quiet(&c, 0); /* the data, then nothing */
	ASSERT_EQ(t->writables, 0);
	for (int i = 0; i < 5; i++)
		raw_send(&c.r, YAMUX_WINDOW_UPDATE, 0, 1, 10);
	run_until(c.l, ts_has_writable, t, DEADLINE);
	expect_quiet(&c);
	ASSERT_EQ(t->writables, 1);
	sess_fini(&c);
}

/* With arguments: only the tests named (to run one under a debugger). */
static bool wanted(int argc, char **argv, const char *name)
{
	if (argc < 2)
		return true;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return true;
	return false;
}

#define RUN_IF(fn)                                                                                 \
	do {                                                                                       \
		if (wanted(argc, argv, #fn))                                                       \
			RUN(fn);                                                                   \
	} while (0)

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	RUN_IF(test_one_writable);
	RUN_IF(test_tune_budget_given_back);
	RUN_IF(test_callback_matrix);
	RUN_IF(test_close_after_end);
	RUN_IF(test_open_enobufs);
	RUN_IF(test_syn_rst_forgotten);
	RUN_IF(test_close_in_alloc_no_eof);
	RUN_IF(test_error_while_unbound);
	relay_pool_flush();
	return 0;
}
