/* Unit tests for core/relay's generic path (relay_new_ep) with an endpoint
 * implemented in memory: a fake multiplexed stream with a send window (what
 * the relay may still write into it, like a Yamux stream's) and bytes
 * arriving from its far end only when the test says so.  It keeps the
 * endpoint rules (no callback from inside an op, read_stop at once, nothing
 * after close) and checks the relay's side of them (no op after close, no
 * write after shutdown, no write beyond the window).
 *
 * What is asserted: half-close each way (EOF passed on only after every
 * byte, the other direction flowing on); backpressure (a sink with a
 * closed window stops reads from its source: at no point are more than
 * max_buffered bytes read and not delivered, and the source is left with
 * input while its reads are stopped), also from a socket to a stream;
 * errors from either side end the relay with that error; freeing from the
 * done callback on every path (the struct goes to the loop: a synchronous
 * free would be a use-after-free under ASan, and a deferral lost to a
 * stopped loop a leak under LSan); preload; refused arguments.
 *
 * The loop runs until a condition holds, with a deadline (no sleeps);
 * windows are granted from the before_sleep hook, one step per turn. */
#include "core/loop.h"
#include "core/relay.h"
#include "core/util.h"
#include "run_until.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define KiB	 1024
#define MiB	 (1024 * 1024)
#define NO_LIMIT SIZE_MAX

/* --- the in-memory stream endpoint --- */

struct mem_ep {
	struct relay_ep ep;
	struct loop *l;
	/* from the far end towards the relay: in[0..in_avail) has arrived */
	const unsigned char *in;
	size_t in_len, in_avail, in_off;
	bool in_eof;	   /* after in_len bytes, EOF */
	bool eof_sent;	   /* read(0) delivered */
	size_t read_chunk; /* most bytes per read callback; 0: what alloc gives */
	int fail;	   /* report this error from the loop */
	bool fail_sent;
	int start_err; /* read_start fails with this */
	/* from the relay: everything it wrote */
	unsigned char *out;
	size_t out_len, out_cap;
	size_t window; /* what write may still take; NO_LIMIT */
	size_t granted;
	int write_err, shutdown_err; /* the next write / shutdown fails */
	bool fin;		     /* shutdown received */
	size_t out_at_fin;
	/* state */
	bool reading, want_writable, closed, in_op;
	int read_starts, read_stops, writables;
	struct loop_defer kick;
};

static void mem_dispatch(struct loop *l, void *data);

static void mem_kick(struct mem_ep *e)
{
	if (!e->closed)
		loop_defer(e->l, &e->kick, mem_dispatch, e);
}

static struct mem_ep *mem_of(struct relay_ep *ep)
{
	struct mem_ep *e = (struct mem_ep *)ep;
	ASSERT(!e->closed); /* the relay never calls an op after close */
	ASSERT(!e->in_op);
	return e;
}

static int mem_read_start(struct relay_ep *ep)
{
	struct mem_ep *e = mem_of(ep);
	if (e->start_err)
		return -e->start_err;
	e->reading = true;
	e->read_starts++;
	mem_kick(e); /* what is waiting comes from the loop, never from here */
	return 0;
}

static void mem_read_stop(struct relay_ep *ep)
{
	struct mem_ep *e = mem_of(ep);
	if (e->reading)
		e->read_stops++;
	e->reading = false;
}

static ssize_t mem_write(struct relay_ep *ep, const void *bytes, size_t len)
{
	struct mem_ep *e = mem_of(ep);
	ASSERT(!e->fin); /* nothing after the half-close */
	ASSERT_GT(len, 0);
	if (e->write_err)
		return -e->write_err;
	size_t n = len < e->window ? len : e->window;
	if (n < len)
		e->want_writable = true;
	if (n == 0)
		return -EAGAIN;
	if (e->out_len + n > e->out_cap) {
		e->out_cap = (e->out_len + n) * 2;
		e->out = realloc(e->out, e->out_cap);
		ASSERT(e->out);
	}
	memcpy(e->out + e->out_len, bytes, n);
	e->out_len += n;
	if (e->window != NO_LIMIT)
		e->window -= n;
	return (ssize_t)n;
}

static int mem_shutdown(struct relay_ep *ep)
{
	struct mem_ep *e = mem_of(ep);
	ASSERT(!e->fin); /* once */
	if (e->shutdown_err)
		return -e->shutdown_err;
	e->fin = true;
	e->out_at_fin = e->out_len;
	return 0;
}

static void mem_close(struct relay_ep *ep)
{
	struct mem_ep *e = mem_of(ep);
	e->closed = true;
	e->reading = false;
	loop_defer_cancel(e->l, &e->kick);
}

static const struct relay_ep_ops mem_ops = {
    .read_start = mem_read_start,
    .read_stop = mem_read_stop,
    .write = mem_write,
    .shutdown = mem_shutdown,
    .close = mem_close,
};

/* Callbacks, from the loop only; each one may close the endpoint. */
static void mem_dispatch(struct loop *l, void *data)
{
	struct mem_ep *e = data;
	const struct relay_ep_cb *cb = e->ep.cb;

	if (e->closed)
		return;
	if (e->fail && !e->fail_sent) {
		e->fail_sent = true;
		cb->error(&e->ep, e->fail);
		return;
	}
	if (e->want_writable && e->window > 0) {
		e->want_writable = false;
		e->writables++;
		cb->writable(&e->ep);
		if (e->closed)
			return;
	}
	for (int i = 0; i < 8 && e->reading && e->in_off < e->in_avail; i++) {
		void *p = NULL;
		size_t room = 0;
		cb->alloc(&e->ep, e->in_avail - e->in_off, &p, &room);
		if (e->closed || !e->reading)
			return;
		ASSERT_GT(room, 0);
		size_t n = e->in_avail - e->in_off;
		if (n > room)
			n = room;
		if (e->read_chunk && n > e->read_chunk)
			n = e->read_chunk;
		memset(p, 0xa5, room); /* all of the room is the relay's to hand out */
		memcpy(p, e->in + e->in_off, n);
		e->in_off += n;
		cb->read(&e->ep, n);
		if (e->closed)
			return;
	}
	if (e->reading && e->in_off < e->in_avail)
		mem_kick(e); /* more on the next turn */
	else if (e->reading && e->in_eof && e->in_off == e->in_len && !e->eof_sent) {
		e->eof_sent = true;
		cb->read(&e->ep, 0);
	}
}

static void mem_init(struct mem_ep *e, struct loop *l, const unsigned char *in, size_t in_len)
{
	memset(e, 0, sizeof *e);
	e->ep.ops = &mem_ops;
	e->l = l;
	e->in = in;
	e->in_len = in_len;
	e->window = NO_LIMIT;
}

static void mem_fini(struct mem_ep *e)
{
	loop_defer_cancel(e->l, &e->kick);
	free(e->out);
	e->out = NULL;
}

/* the far end: more of its bytes arrive, more window, an error */
static void mem_arrive(struct mem_ep *e, size_t n, bool then_eof)
{
	e->in_avail = e->in_avail + n > e->in_len ? e->in_len : e->in_avail + n;
	if (then_eof && e->in_avail == e->in_len)
		e->in_eof = true;
	mem_kick(e);
}

static void mem_grant(struct mem_ep *e, size_t n)
{
	e->window += n;
	e->granted += n;
	mem_kick(e);
}

static void mem_fail(struct mem_ep *e, int err)
{
	e->fail = err;
	mem_kick(e);
}

/* --- running the loop until something happens --- */

static unsigned char *random_buf(size_t n)
{
	unsigned char *p = malloc(n ? n : 1);
	ASSERT(p);
	ASSERT_EQ(random_bytes(p, n), 0);
	return p;
}

static uint32_t rnd_state = 2463534242u;
static uint32_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

/* --- a relay between two in-memory streams --- */

struct ctx {
	struct loop *l;
	struct relay *r;
	struct mem_ep a, b;
	size_t max_buffered;
	int done_calls;
	struct relay_stats st;
	bool free_in_done, stop_in_done;
	bool in_owner_call; /* the owner is inside a relay call: done must not come */
	/* per-turn driving */
	size_t grant_step; /* window granted to a sink that waits, per turn */
	bool random_steps;
	size_t stalled_turns; /* turns with a source stopped and input waiting */
	size_t peak_in_flight;
};

static void ctx_done(struct relay *r, void *data)
{
	struct ctx *c = data;
	ASSERT(r == c->r);
	ASSERT(!c->in_owner_call); /* never from inside relay_new_ep or preload */
	c->done_calls++;
	relay_get_stats(r, &c->st);
	if (c->free_in_done) {
		relay_free(r);
		c->r = NULL;
		ASSERT(c->a.closed); /* the endpoints go at once, the struct later */
		ASSERT(c->b.closed);
	}
	if (c->stop_in_done)
		loop_stop(c->l);
}

static void ctx_init(struct ctx *c, const unsigned char *ab, size_t ab_len, const unsigned char *ba,
		     size_t ba_len, size_t max_buffered)
{
	memset(c, 0, sizeof *c);
	ASSERT_EQ(loop_new(&c->l), 0);
	mem_init(&c->a, c->l, ab, ab_len);
	mem_init(&c->b, c->l, ba, ba_len);
	c->max_buffered = max_buffered ? max_buffered : 256 * KiB;
	struct relay_opts o = {.max_buffered = max_buffered};
	c->in_owner_call = true;
	ASSERT_EQ(relay_new_ep(c->l, &c->a.ep, &c->b.ep, &o, ctx_done, c, &c->r), 0);
	c->in_owner_call = false;
	ASSERT_EQ(c->a.read_starts, 1);
	ASSERT_EQ(c->b.read_starts, 1);
}

static void ctx_fini(struct ctx *c)
{
	relay_free(c->r);
	c->r = NULL;
	ASSERT(c->a.closed);
	ASSERT(c->b.closed);
	mem_fini(&c->a);
	mem_fini(&c->b);
	loop_free(c->l);
}

/* Bytes read from a source and not yet written to its sink never exceed
 * max_buffered; the relay's own count agrees. */
static void ctx_check(struct ctx *c)
{
	if (!c->r || c->done_calls)
		return;
	struct relay_buffered bf;
	relay_get_buffered(c->r, &bf);
	ASSERT_LE(bf.a_to_b, c->max_buffered);
	ASSERT_LE(bf.b_to_a, c->max_buffered);
	ASSERT_LE(c->b.out_len, c->a.in_off);
	ASSERT_LE(c->a.out_len, c->b.in_off);
	size_t ab = c->a.in_off - c->b.out_len, ba = c->b.in_off - c->a.out_len;
	ASSERT_EQ(ab, bf.a_to_b);
	ASSERT_EQ(ba, bf.b_to_a);
	if (ab > c->peak_in_flight)
		c->peak_in_flight = ab;
	if (ba > c->peak_in_flight)
		c->peak_in_flight = ba;
	if ((!c->a.reading && c->a.in_off < c->a.in_avail) ||
	    (!c->b.reading && c->b.in_off < c->b.in_avail))
		c->stalled_turns++;
	/* the sinks never took more than their window */
	if (c->a.granted || c->a.window != NO_LIMIT)
		ASSERT_LE(c->a.out_len, c->a.granted);
	if (c->b.granted || c->b.window != NO_LIMIT)
		ASSERT_LE(c->b.out_len, c->b.granted);
}

static void ctx_step(void *arg)
{
	struct ctx *c = arg;
	ctx_check(c);
	struct mem_ep *sinks[2] = {&c->a, &c->b};
	for (int i = 0; i < 2; i++) {
		struct mem_ep *e = sinks[i];
		if (e->window == NO_LIMIT || e->closed || c->grant_step == 0)
			continue;
		if (c->random_steps) {
			if (rnd() % 3 == 0)
				mem_grant(e, rnd() % (2 * c->grant_step) + 1);
		} else if (e->want_writable && e->window == 0) {
			mem_grant(e, c->grant_step);
		}
	}
	if (c->random_steps) {
		mem_arrive(&c->a, rnd() % (64 * KiB), true);
		mem_arrive(&c->b, rnd() % (64 * KiB), true);
	}
}

static bool ctx_finished(void *arg)
{
	struct ctx *c = arg;
	return c->done_calls > 0;
}

static bool ctx_quiet(void *arg)
{
	/* nothing left to dispatch: no deferral would wake the loop */
	struct ctx *c = arg;
	return !c->a.kick.armed && !c->b.kick.armed;
}

static void run_quiet(struct ctx *c)
{
	run_until2(c->l, ctx_quiet, ctx_step, c, 10000);
}

/* --- tests --- */

/* n bytes each way, in random pieces, through random windows; each side
 * ends with EOF.  Everything arrives, in order, FIN after the last byte. */
static void test_bulk(void)
{
	static const size_t caps[] = {0, 1, 100, 4096, 16 * KiB, 300 * KiB};
	for (size_t k = 0; k < ARRAY_SIZE(caps); k++) {
		size_t n = caps[k] == 1 ? 20 * KiB : 2 * MiB;
		unsigned char *ab = random_buf(n), *ba = random_buf(n);
		struct ctx c;
		ctx_init(&c, ab, n, ba, n, caps[k]);
		c.a.window = c.b.window = 0;
		c.a.read_chunk = k % 2 ? 0 : 3000;
		c.grant_step = 32 * KiB;
		c.random_steps = true;
		run_until2(c.l, ctx_finished, ctx_step, &c, 30000);
		ASSERT_EQ(c.done_calls, 1);
		ASSERT_EQ(c.st.error, 0);
		ASSERT_EQ(c.st.a_to_b, n);
		ASSERT_EQ(c.st.b_to_a, n);
		ASSERT_EQ(c.b.out_len, n);
		ASSERT_EQ(c.a.out_len, n);
		ASSERT(memcmp(c.b.out, ab, n) == 0);
		ASSERT(memcmp(c.a.out, ba, n) == 0);
		ASSERT(c.a.fin && c.b.fin);
		ASSERT_EQ(c.b.out_at_fin, n);
		ASSERT_EQ(c.a.out_at_fin, n);
		ASSERT_LE(c.peak_in_flight, c.max_buffered);
		struct relay_buffered bf;
		relay_get_buffered(c.r, &bf);
		ASSERT_EQ(bf.a_to_b + bf.b_to_a, 0);
		ASSERT_LE(bf.peak_a_to_b, c.max_buffered);
		ASSERT_GT(bf.peak_a_to_b, 0);
		ctx_fini(&c);
		free(ab);
		free(ba);
	}
}

/* One side half-closes first; the other direction flows on, and only its
 * EOF ends the relay.  Both orders. */
static void half_close(bool a_first)
{
	size_t n1 = 300 * KiB, n2 = 200 * KiB;
	unsigned char *first = random_buf(n1), *second = random_buf(n2);
	struct ctx c;
	ctx_init(&c, a_first ? first : second, a_first ? n1 : n2, a_first ? second : first,
		 a_first ? n2 : n1, 64 * KiB);
	struct mem_ep *early = a_first ? &c.a : &c.b, *late = a_first ? &c.b : &c.a;
	mem_arrive(early, n1, true);
	run_quiet(&c);
	/* early's bytes and EOF went through, then FIN; nothing came back */
	ASSERT(late->fin);
	ASSERT_EQ(late->out_at_fin, n1);
	ASSERT(memcmp(late->out, first, n1) == 0);
	ASSERT(!early->fin);
	ASSERT_EQ(c.done_calls, 0);
	ASSERT(late->reading); /* still reading the side that has not ended */
	/* now the late side answers, in pieces, then ends */
	for (size_t off = 0; off < n2; off += 50 * KiB) {
		mem_arrive(late, 50 * KiB, true);
		run_quiet(&c);
		ASSERT_EQ(c.done_calls, 0 + (early->fin ? 1 : 0));
	}
	run_until(c.l, ctx_finished, &c, 10000);
	ASSERT(early->fin);
	ASSERT_EQ(early->out_at_fin, n2);
	ASSERT(memcmp(early->out, second, n2) == 0);
	ASSERT_EQ(c.done_calls, 1);
	ASSERT_EQ(c.st.error, 0);
	ASSERT_EQ(a_first ? c.st.a_to_b : c.st.b_to_a, n1);
	ASSERT_EQ(a_first ? c.st.b_to_a : c.st.a_to_b, n2);
	ctx_fini(&c);
	free(first);
	free(second);
}

static void test_half_close(void)
{
	half_close(true);
	half_close(false);
}

/* b's window opens 4 KiB at a time while a has 1 MiB waiting: reads from a
 * stop whenever b is full, so a keeps input it has not been asked for, and
 * no more than max_buffered is ever read and not delivered. */
static void test_backpressure_window(void)
{
	size_t n = 1 * MiB, max = 16 * KiB;
	unsigned char *ab = random_buf(n);
	struct ctx c;
	ctx_init(&c, ab, n, NULL, 0, max);
	c.b.window = 0;
	c.grant_step = 4 * KiB;
	mem_arrive(&c.a, n, true);
	mem_arrive(&c.b, 0, true); /* b says nothing: EOF at once, which must travel */
	run_until2(c.l, ctx_finished, ctx_step, &c, 30000);
	ASSERT_EQ(c.st.error, 0);
	ASSERT_EQ(c.b.out_len, n);
	ASSERT(memcmp(c.b.out, ab, n) == 0);
	ASSERT(c.a.fin); /* b's EOF reached a */
	ASSERT_EQ(c.a.out_len, 0);
	ASSERT_LE(c.peak_in_flight, max);
	ASSERT_GT(c.peak_in_flight, 0);
	ASSERT_GT(c.stalled_turns, 100); /* a was left unread, again and again */
	ASSERT_GT(c.a.read_stops, 10);
	ASSERT_GT(c.b.writables, 10);
	printf("# window backpressure: %zu turns with a stopped, %d stops, peak %zu of %zu\n",
	       c.stalled_turns, c.a.read_stops, c.peak_in_flight, max);
	ctx_fini(&c);
	free(ab);
}

/* Errors from either side end the relay with that error, whatever it was
 * doing; then both endpoints are closed and nothing more is called. */
enum fault { SRC_ERROR, SINK_ERROR, SINK_WRITE, SINK_SHUTDOWN, IDLE_ERROR };

static void fault_case(enum fault f, bool free_in_done)
{
	size_t n = 256 * KiB;
	unsigned char *ab = random_buf(n);
	struct ctx c;
	ctx_init(&c, ab, n, NULL, 0, 8 * KiB);
	c.free_in_done = free_in_done;
	int want = 0;
	switch (f) {
	case SRC_ERROR: /* a resets halfway */
		mem_arrive(&c.a, n / 2, false);
		run_quiet(&c);
		mem_fail(&c.a, ECONNRESET);
		want = ECONNRESET;
		break;
	case SINK_ERROR: /* b resets while its window is shut */
		c.b.window = 0;
		mem_arrive(&c.a, n, false);
		run_quiet(&c);
		ASSERT(!c.a.reading);
		mem_fail(&c.b, ECONNRESET);
		want = ECONNRESET;
		break;
	case SINK_WRITE: /* b's write fails */
		c.b.write_err = EPIPE;
		mem_arrive(&c.a, 100, false);
		want = EPIPE;
		break;
	case SINK_SHUTDOWN: /* passing a's EOF on fails */
		c.b.shutdown_err = ENOTCONN;
		mem_arrive(&c.a, n, true);
		want = ENOTCONN;
		break;
	case IDLE_ERROR: /* a finished (EOF passed on), then fails while idle */
		mem_arrive(&c.a, n, true);
		run_quiet(&c);
		ASSERT(c.b.fin);
		ASSERT(!c.a.reading);
		mem_fail(&c.a, ECONNRESET);
		want = ECONNRESET;
		break;
	}
	run_until(c.l, ctx_finished, &c, 10000);
	ASSERT_EQ(c.done_calls, 1);
	ASSERT_EQ(c.st.error, want);
	ASSERT(!c.a.reading && !c.b.reading); /* stopped at once */
	if (free_in_done) {
		ASSERT(c.r == NULL);
	} else {
		ASSERT(!c.a.closed); /* the owner decides when */
		relay_free(c.r);
		c.r = NULL;
	}
	ASSERT(c.a.closed && c.b.closed);
	/* nothing after close: more input, window and errors go nowhere */
	mem_arrive(&c.a, n, true);
	mem_grant(&c.b, n);
	loop_defer_cancel(c.l, &c.a.kick);
	ctx_fini(&c);
	free(ab);
}

static void test_errors(void)
{
	for (int f = SRC_ERROR; f <= IDLE_ERROR; f++) {
		fault_case((enum fault)f, false);
		fault_case((enum fault)f, true);
	}
}

/* relay_free from the done callback on each path that can end a relay:
 * the EOF that completes it (from a read callback), an error callback, a
 * write failing (inside a read callback), the writable callback.  The
 * relay's code runs on after `done` returns: had relay_free released it
 * there, ASan would report it. */
static void test_free_in_done_paths(void)
{
	for (int path = 0; path < 4; path++) {
		size_t n = 64 * KiB;
		unsigned char *ab = random_buf(n);
		struct ctx c;
		ctx_init(&c, ab, n, NULL, 0, 16 * KiB);
		c.free_in_done = true;
		mem_arrive(&c.b, 0, true);
		run_quiet(&c); /* b's EOF is through: a's EOF will complete it */
		ASSERT(c.a.fin);
		if (path == 0) {
			mem_arrive(&c.a, n, true);
		} else if (path == 1) {
			mem_fail(&c.b, EPIPE);
		} else if (path == 2) {
			c.b.write_err = ECONNRESET;
			mem_arrive(&c.a, 10, false);
		} else {
			c.b.window = 0;
			mem_arrive(&c.a, n, true);
			run_quiet(&c);
			struct relay_buffered bf;
			relay_get_buffered(c.r, &bf);
			ASSERT_GT(bf.a_to_b, 0);
			c.b.write_err = EPIPE; /* fails on the flush the writable starts */
			mem_grant(&c.b, 1);
		}
		run_until(c.l, ctx_finished, &c, 10000);
		ASSERT_EQ(c.done_calls, 1);
		ASSERT(c.r == NULL);
		ASSERT_EQ(c.st.error, path == 0	  ? 0
				      : path == 1 ? EPIPE
				      : path == 2 ? ECONNRESET
						  : EPIPE);
		ctx_fini(&c);
		free(ab);
	}
	/* freed in done, and the loop stopped in the same callback, before its
	 * deferral could run: loop_free still releases it (LSan would say) */
	struct ctx c;
	ctx_init(&c, NULL, 0, NULL, 0, 0);
	c.free_in_done = true;
	c.stop_in_done = true;
	mem_arrive(&c.a, 0, true);
	mem_arrive(&c.b, 0, true);
	ASSERT_EQ(loop_run(c.l), 0);
	ASSERT_EQ(c.done_calls, 1);
	ASSERT(c.r == NULL);
	ctx_fini(&c);
}

/* Bytes read before the relay started go first; a preload never calls
 * back, even when the sink then fails. */
static void test_preload(void)
{
	static const unsigned char rest[] = "world", all[] = "HELLO-world";
	struct ctx c;
	ctx_init(&c, rest, 5, NULL, 0, 64);
	c.in_owner_call = true;
	ASSERT_EQ(relay_preload_a(c.r, "HELLO-", 6), 0);
	ASSERT_EQ(relay_preload_a(c.r, "", 0), 0);
	unsigned char big[64] = {0};
	ASSERT_EQ(relay_preload_a(c.r, big, sizeof big - 5), -E2BIG); /* 6 + 59 > 64 */
	c.in_owner_call = false;
	mem_arrive(&c.a, 5, true); /* there already: must come after */
	mem_arrive(&c.b, 0, true);
	run_until(c.l, ctx_finished, &c, 10000);
	ASSERT_EQ(c.st.error, 0);
	ASSERT_EQ(c.b.out_len, 11);
	ASSERT(memcmp(c.b.out, all, 11) == 0);
	ASSERT_EQ(c.st.a_to_b, 11);
	ctx_fini(&c);

	ctx_init(&c, NULL, 0, NULL, 0, 0);
	c.b.write_err = EPIPE;
	c.in_owner_call = true;
	ASSERT_EQ(relay_preload_a(c.r, "x", 1), 0);
	c.in_owner_call = false;
	ASSERT_EQ(c.done_calls, 0);
	run_until(c.l, ctx_finished, &c, 10000);
	ASSERT_EQ(c.st.error, EPIPE);
	ctx_fini(&c);
}

static void test_new_ep_refused(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	struct mem_ep a, b;
	mem_init(&a, l, NULL, 0);
	mem_init(&b, l, NULL, 0);
	struct relay *r = NULL;
	ASSERT_EQ(relay_new_ep(l, &a.ep, &a.ep, NULL, NULL, NULL, &r), -EINVAL);
	ASSERT_EQ(relay_new_ep(l, &a.ep, NULL, NULL, NULL, NULL, &r), -EINVAL);
	struct relay_opts o = {.max_buffered = (size_t)1 << 40};
	ASSERT_EQ(relay_new_ep(l, &a.ep, &b.ep, &o, NULL, NULL, &r), -EINVAL);
	/* b cannot start reading: refused, a stopped again, both the caller's */
	b.start_err = EMFILE;
	ASSERT_EQ(relay_new_ep(l, &a.ep, &b.ep, NULL, NULL, NULL, &r), -EMFILE);
	ASSERT(r == NULL);
	ASSERT(!a.reading && !a.closed && !b.closed);
	ASSERT_EQ(a.read_starts, 1);
	ASSERT_EQ(a.read_stops, 1);
	ASSERT(a.ep.cb == NULL && b.ep.cb == NULL);
	mem_fini(&a);
	mem_fini(&b);
	loop_free(l);
}

/* --- a socket relayed to a stream --- */

struct speer {
	struct loop *l;
	int fd;
	const unsigned char *tx;
	size_t tx_len, tx_off;
	bool tx_shut, shut_done;
	unsigned char *rx;
	size_t rx_len, rx_cap;
	bool eof, registered;
	int err;
};

static void speer_sync(struct speer *p);

static void speer_cb(struct loop *l, int fd, unsigned ev, void *data)
{
	struct speer *p = data;
	if ((ev & LOOP_WRITE) && p->tx_off < p->tx_len) {
		size_t n = p->tx_len - p->tx_off;
		ssize_t w = send(fd, p->tx + p->tx_off, n > 65536 ? 65536 : n, MSG_NOSIGNAL);
		if (w > 0)
			p->tx_off += (size_t)w;
	}
	if ((ev & LOOP_READ) && !p->eof) {
		unsigned char b[65536];
		ssize_t n = read(fd, b, sizeof b);
		if (n == 0) {
			p->eof = true;
		} else if (n < 0 && errno != EAGAIN) {
			p->err = errno;
			p->eof = true;
		} else if (n > 0) {
			if (p->rx_len + (size_t)n > p->rx_cap) {
				p->rx_cap = (p->rx_len + (size_t)n) * 2;
				p->rx = realloc(p->rx, p->rx_cap);
				ASSERT(p->rx);
			}
			memcpy(p->rx + p->rx_len, b, (size_t)n);
			p->rx_len += (size_t)n;
		}
	}
	speer_sync(p);
}

static void speer_sync(struct speer *p)
{
	if (p->tx_shut && !p->shut_done && p->tx_off == p->tx_len) {
		ASSERT_EQ(shutdown(p->fd, SHUT_WR), 0);
		p->shut_done = true;
	}
	unsigned m = (!p->eof ? LOOP_READ : 0) | (p->tx_off < p->tx_len ? LOOP_WRITE : 0);
	if (!p->registered) {
		ASSERT_EQ(loop_add_fd(p->l, p->fd, m, speer_cb, p), 0);
		p->registered = true;
	} else {
		ASSERT_EQ(loop_mod_fd(p->l, p->fd, m), 0);
	}
}

struct sctx {
	struct ctx c; /* c.a unused: side a is the socket */
	struct speer p;
	int relay_fd;
	int seen_unread; /* most bytes left unread on the relay's socket */
};

static void sctx_step(void *arg)
{
	struct sctx *s = arg;
	struct ctx *c = &s->c;
	if (c->r && !c->done_calls) {
		struct relay_buffered bf;
		relay_get_buffered(c->r, &bf);
		ASSERT_LE(bf.a_to_b, c->max_buffered);
		ASSERT_LE(bf.b_to_a, c->max_buffered);
		int inq = 0;
		if (bf.a_to_b > 0 && ioctl(s->relay_fd, FIONREAD, &inq) == 0 &&
		    inq > s->seen_unread)
			s->seen_unread = inq;
	}
	if (c->b.want_writable && c->b.window == 0)
		mem_grant(&c->b, c->grant_step);
}

static bool sctx_finished(void *arg)
{
	struct sctx *s = arg;
	return s->c.done_calls > 0 && s->p.eof;
}

static bool sctx_b_fin(void *arg)
{
	return ((struct sctx *)arg)->c.b.fin;
}

/* The socket sends 1 MiB and half-closes, into a stream whose window opens
 * 8 KiB at a time: the socket is left unread while the stream is full; the
 * stream gets every byte, then FIN; then the stream answers and ends, the
 * socket gets that and EOF. */
static void test_socket_to_stream(void)
{
	size_t n = 1 * MiB, m = 300 * KiB, max = 16 * KiB;
	unsigned char *up = random_buf(n), *down = random_buf(m);
	struct sctx s;
	memset(&s, 0, sizeof s);
	struct ctx *c = &s.c;
	ASSERT_EQ(loop_new(&c->l), 0);
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ASSERT_EQ(fd_set_nonblock(sv[0], true), 0);
	s.relay_fd = sv[1];
	mem_init(&c->b, c->l, down, m);
	c->b.window = 0;
	c->grant_step = 8 * KiB;
	c->max_buffered = max;
	struct relay_ep *fa;
	ASSERT_EQ(relay_ep_fd_new(c->l, sv[1], &fa), 0);
	struct relay_opts o = {.max_buffered = max};
	ASSERT_EQ(relay_new_ep(c->l, fa, &c->b.ep, &o, ctx_done, c, &c->r), 0);
	s.p = (struct speer){.l = c->l, .fd = sv[0], .tx = up, .tx_len = n, .tx_shut = true};
	speer_sync(&s.p);
	run_until2(c->l, sctx_b_fin, sctx_step, &s, 30000);
	ASSERT_EQ(c->b.out_at_fin, n);
	ASSERT(memcmp(c->b.out, up, n) == 0);
	ASSERT_GT(s.seen_unread, (int)max); /* the socket waited while the stream was full */
	ASSERT_EQ(c->done_calls, 0);
	ASSERT(!s.p.eof);
	mem_arrive(&c->b, m, true);
	run_until2(c->l, sctx_finished, sctx_step, &s, 30000);
	ASSERT_EQ(s.p.rx_len, m);
	ASSERT(memcmp(s.p.rx, down, m) == 0);
	ASSERT_EQ(s.p.err, 0);
	ASSERT_EQ(c->st.error, 0);
	ASSERT_EQ(c->st.a_to_b, n);
	ASSERT_EQ(c->st.b_to_a, m);
	printf("# socket -> stream: socket left with up to %d unread bytes (cap %zu)\n",
	       s.seen_unread, max);
	relay_free(c->r);
	ASSERT_EQ(fcntl(sv[1], F_GETFD), -1); /* closed with the relay */
	ASSERT(c->b.closed);
	ASSERT_EQ(loop_del_fd(c->l, sv[0]), 0);
	close(sv[0]);
	mem_fini(&c->b);
	free(s.p.rx);
	loop_free(c->l);
	free(up);
	free(down);
}

static bool done_called(void *arg)
{
	return ((struct ctx *)arg)->done_calls > 0;
}

/* The socket's peer resets while the stream is sending to it: the relay
 * ends with the socket's error, and the stream is closed. */
static void test_socket_reset(void)
{
	size_t m = 4 * MiB;
	unsigned char *down = random_buf(m);
	struct ctx c;
	memset(&c, 0, sizeof c);
	ASSERT_EQ(loop_new(&c.l), 0);
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	mem_init(&c.b, c.l, down, m);
	struct relay_ep *fa;
	ASSERT_EQ(relay_ep_fd_new(c.l, sv[1], &fa), 0);
	ASSERT_EQ(relay_new_ep(c.l, fa, &c.b.ep, NULL, ctx_done, &c, &c.r), 0);
	mem_arrive(&c.b, m, false); /* more than the socket holds: the relay waits */
	run_until(c.l, ctx_quiet, &c, 10000);
	ASSERT(!c.b.reading);
	close(sv[0]); /* unread bytes: the relay's next write fails */
	run_until(c.l, done_called, &c, 10000);
	ASSERT(c.st.error == ECONNRESET || c.st.error == EPIPE);
	relay_free(c.r);
	ASSERT(c.b.closed);
	mem_fini(&c.b);
	loop_free(c.l);
	free(down);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as the program does */
	setvbuf(stdout, NULL, _IOLBF, 0);
	RUN(test_new_ep_refused);
	RUN(test_bulk);
	RUN(test_half_close);
	RUN(test_backpressure_window);
	RUN(test_errors);
	RUN(test_free_in_done_paths);
	RUN(test_preload);
	RUN(test_socket_to_stream);
	RUN(test_socket_reset);
	relay_pool_flush();
	return 0;
}
