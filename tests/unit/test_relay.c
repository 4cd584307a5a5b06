/* Unit tests for core/relay: bulk both ways over socketpairs and TCP
 * loopback (splice and read/write), backpressure with small socket buffers
 * and a slow reader, half-close, resets, preload, freeing from callbacks,
 * a pipe on one side, the splice EINVAL fallback, and the memory held by
 * idle relays.  Then the same cases (all but splice's) again through the
 * generic path: the fds wrapped in fd endpoints, joined by relay_new_ep
 * (test_relay_ep.c tests that path with in-memory endpoints).
 *
 * The test peers run on the same loop as the relay; run_until() runs the
 * loop until a condition holds, with a deadline (no sleeps). */
#include "core/loop.h"
#include "core/relay.h"
#include "core/util.h"
#include "run_until.h"
#include "test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* --- splice() seen by relay.c: counted, and refused on demand --- */

static unsigned long splice_calls;
static int splice_refuse_in;  /* the next N splices into a pipe fail EINVAL */
static int splice_refuse_out; /* the next N splices out of a pipe fail EINVAL */

static bool is_fifo(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

ssize_t splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
	       unsigned int flags)
{
	splice_calls++;
	if ((splice_refuse_in > 0 && is_fifo(fd_out) && splice_refuse_in--) ||
	    (splice_refuse_out > 0 && is_fifo(fd_in) && splice_refuse_out--)) {
		errno = EINVAL;
		return -1;
	}
	return syscall(SYS_splice, fd_in, off_in, fd_out, off_out, len, flags);
}

/* --- running the loop until something happens --- */

/* --- a test peer: sends a buffer, checks what it receives --- */

struct peer {
	struct loop *l;
	int fd;
	bool registered;
	/* sending */
	const unsigned char *tx;
	size_t tx_len, tx_off;
	bool tx_on_eof; /* start only after EOF was received */
	bool tx_shut;	/* shutdown(SHUT_WR) when all is sent */
	bool tx_close;	/* close() when all is sent and EOF was received */
	bool tx_shut_done;
	/* receiving */
	const unsigned char *rx_expect;
	size_t rx_len, rx_off;
	size_t read_max;  /* per wakeup; 0: 64 KiB */
	unsigned slow_ms; /* pause this long after each read */
	bool paused, eof, bad;
	int rx_error;
	struct loop_timer unpause;
};

static unsigned char rxbuf[256 * 1024];

static void peer_sync(struct peer *p);

static void peer_unpause(struct loop *l, void *data)
{
	struct peer *p = data;
	p->paused = false;
	peer_sync(p);
}

static void peer_cb(struct loop *l, int fd, unsigned ev, void *data)
{
	struct peer *p = data;
	bool may_send = !p->tx_on_eof || p->eof;
	if ((ev & LOOP_WRITE) && may_send && p->tx_off < p->tx_len) {
		size_t n = p->tx_len - p->tx_off;
		ssize_t w = send(fd, p->tx + p->tx_off, n > 65536 ? 65536 : n, MSG_NOSIGNAL);
		if (w > 0)
			p->tx_off += (size_t)w;
	}
	if ((ev & LOOP_READ) && !p->eof && !p->paused) {
		size_t max = p->read_max ? p->read_max : 65536;
		ssize_t n = read(fd, rxbuf, max);
		if (n == 0) {
			p->eof = true;
		} else if (n < 0 && errno != EAGAIN) {
			p->rx_error = errno;
			p->eof = true;
		} else if (n > 0) {
			if (p->rx_off + (size_t)n > p->rx_len ||
			    memcmp(rxbuf, p->rx_expect + p->rx_off, (size_t)n) != 0)
				p->bad = true;
			p->rx_off += (size_t)n;
			if (p->slow_ms) {
				p->paused = true;
				loop_timer_start(l, &p->unpause, p->slow_ms, peer_unpause, p);
			}
		}
	}
	peer_sync(p);
}

static void peer_close(struct peer *p)
{
	loop_timer_stop(p->l, &p->unpause);
	if (p->fd < 0)
		return;
	if (p->registered)
		ASSERT_EQ(loop_del_fd(p->l, p->fd), 0);
	p->registered = false;
	close(p->fd);
	p->fd = -1;
}

static void peer_sync(struct peer *p)
{
	if (p->fd < 0)
		return;
	bool may_send = !p->tx_on_eof || p->eof;
	if (p->tx_shut && !p->tx_shut_done && may_send && p->tx_off == p->tx_len) {
		ASSERT_EQ(shutdown(p->fd, SHUT_WR), 0);
		p->tx_shut_done = true;
	}
	unsigned m = (!p->eof && !p->paused ? LOOP_READ : 0) |
		     (may_send && p->tx_off < p->tx_len ? LOOP_WRITE : 0);
	if (p->tx_close && p->eof && p->tx_off == p->tx_len) {
		peer_close(p);
		return;
	}
	if (m == 0 && p->registered) {
		ASSERT_EQ(loop_del_fd(p->l, p->fd), 0);
		p->registered = false;
	} else if (m && !p->registered) {
		ASSERT_EQ(loop_add_fd(p->l, p->fd, m, peer_cb, p), 0);
		p->registered = true;
	} else if (m) {
		ASSERT_EQ(loop_mod_fd(p->l, p->fd, m), 0);
	}
}

static bool peer_complete(const struct peer *p)
{
	return p->eof && p->tx_off == p->tx_len;
}

/* --- pairs of connected fds --- */

enum kind { UNIX, TCP };

static void tcp_pair(int rcvbuf, int *ret_c, int *ret_s)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(l, 0);
	if (rcvbuf) /* inherited by the accepted socket, before the handshake */
		ASSERT_EQ(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
	ASSERT_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
	ASSERT_EQ(listen(l, 1), 0);
	ASSERT_EQ(getsockname(l, (struct sockaddr *)&a, &len), 0);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(c, 0);
	if (rcvbuf)
		ASSERT_EQ(setsockopt(c, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
	ASSERT_EQ(connect(c, (struct sockaddr *)&a, sizeof a), 0);
	int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	ASSERT_GE(s, 0);
	close(l);
	*ret_c = c;
	*ret_s = s;
}

/* peer <-> relay end */
static void make_pair(enum kind k, int rcvbuf, int *ret_peer, int *ret_end)
{
	if (k == UNIX) {
		int sv[2];
		ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		*ret_peer = sv[0];
		*ret_end = sv[1];
	} else {
		tcp_pair(rcvbuf, ret_peer, ret_end);
	}
}

static void set_nonblock(int fd)
{
	ASSERT_EQ(fd_set_nonblock(fd, true), 0);
}

/* --- a relay between two peers --- */

/* Make the relay of two fds: relay_new, or (use_ep) two fd endpoints and
 * relay_new_ep, which must behave the same but for splice. */
static bool use_ep;

static int relay_make(struct loop *l, int fd_a, int fd_b, const struct relay_opts *opts,
		      relay_done_cb done, void *data, struct relay **ret)
{
	if (!use_ep)
		return relay_new(l, fd_a, fd_b, opts, done, data, ret);
	struct relay_ep *a, *b;
	int e = relay_ep_fd_new(l, fd_a, &a);
	if (e < 0)
		return e;
	if ((e = relay_ep_fd_new(l, fd_b, &b)) == 0) {
		if ((e = relay_new_ep(l, a, b, opts, done, data, ret)) == 0)
			return 0;
		b->ops->close(b);
	}
	a->ops->close(a);
	return e;
}

struct ctx {
	struct loop *l;
	struct relay *r;
	int fd_a, fd_b;
	struct peer pa, pb;
	int done_calls;
	struct relay_stats st;
	bool free_in_done;
	size_t max_buffered;
	size_t seen_pending_ab, seen_pending_ba; /* max sampled between wakeups */
	int seen_inq_a;				 /* max unread bytes in a while a->b held bytes */
};

static void ctx_done(struct relay *r, void *data)
{
	struct ctx *c = data;
	ASSERT(r == c->r);
	c->done_calls++;
	relay_get_stats(r, &c->st);
	if (c->free_in_done) {
		relay_free(r);
		c->r = NULL;
	}
}

/* rcvbuf_b: SO_RCVBUF on b and its peer (TCP) */
static void ctx_init(struct ctx *c, enum kind k, const struct relay_opts *opts, int rcvbuf_b)
{
	memset(c, 0, sizeof *c);
	ASSERT_EQ(loop_new(&c->l), 0);
	make_pair(k, 0, &c->pa.fd, &c->fd_a);
	make_pair(k, rcvbuf_b, &c->pb.fd, &c->fd_b);
	c->pa.l = c->pb.l = c->l;
	set_nonblock(c->pa.fd);
	set_nonblock(c->pb.fd);
	ASSERT_EQ(relay_make(c->l, c->fd_a, c->fd_b, opts, ctx_done, c, &c->r), 0);
	c->max_buffered = opts && opts->max_buffered ? opts->max_buffered : 256 * 1024;
}

static void ctx_start(struct ctx *c)
{
	peer_sync(&c->pa);
	peer_sync(&c->pb);
}

static void ctx_sample(void *arg)
{
	struct ctx *c = arg;
	struct relay_buffered b;
	if (!c->r || c->done_calls)
		return;
	relay_get_buffered(c->r, &b);
	ASSERT_LE(b.a_to_b, c->max_buffered);
	ASSERT_LE(b.b_to_a, c->max_buffered);
	if (b.a_to_b > c->seen_pending_ab)
		c->seen_pending_ab = b.a_to_b;
	int inq = 0;
	if (b.a_to_b > 0 && ioctl(c->fd_a, FIONREAD, &inq) == 0 && inq > c->seen_inq_a)
		c->seen_inq_a = inq;
	if (b.b_to_a > c->seen_pending_ba)
		c->seen_pending_ba = b.b_to_a;
}

static bool ctx_finished(void *arg)
{
	struct ctx *c = arg;
	return c->done_calls > 0 && peer_complete(&c->pa) && peer_complete(&c->pb);
}

static void ctx_fini(struct ctx *c)
{
	relay_free(c->r);
	c->r = NULL;
	peer_close(&c->pa);
	peer_close(&c->pb);
	loop_free(c->l);
}

static unsigned char *random_buf(size_t n)
{
	unsigned char *p = malloc(n);
	ASSERT(p);
	ASSERT_EQ(random_bytes(p, n), 0);
	return p;
}

/* --- tests --- */

#define MiB (1024 * 1024)

/* n bytes each way at once; both peers half-close when done sending. */
static void bulk(enum kind k, bool no_splice, size_t max_buffered, size_t n)
{
	struct relay_opts o = {.no_splice = no_splice, .max_buffered = max_buffered};
	struct ctx c;
	unsigned char *ab = random_buf(n), *ba = random_buf(n);

	ctx_init(&c, k, &o, 0);
	c.pa = (struct peer){.l = c.l,
			     .fd = c.pa.fd,
			     .tx = ab,
			     .tx_len = n,
			     .tx_shut = true,
			     .rx_expect = ba,
			     .rx_len = n};
	c.pb = (struct peer){.l = c.l,
			     .fd = c.pb.fd,
			     .tx = ba,
			     .tx_len = n,
			     .tx_shut = true,
			     .rx_expect = ab,
			     .rx_len = n};
	unsigned long calls0 = splice_calls;
	ctx_start(&c);
	run_until2(c.l, ctx_finished, ctx_sample, &c, 30000);
	ASSERT(!c.pa.bad);
	ASSERT(!c.pb.bad);
	ASSERT_EQ(c.pa.rx_off, n);
	ASSERT_EQ(c.pb.rx_off, n);
	ASSERT_EQ(c.done_calls, 1);
	ASSERT_EQ(c.st.error, 0);
	ASSERT_EQ(c.st.a_to_b, n);
	ASSERT_EQ(c.st.b_to_a, n);
	if (no_splice)
		ASSERT_EQ(splice_calls, calls0);
	else if (max_buffered == 0)
		ASSERT_GT(splice_calls, calls0);
	struct relay_buffered b;
	relay_get_buffered(c.r, &b);
	ASSERT_EQ(b.a_to_b, 0);
	ASSERT_EQ(b.b_to_a, 0);
	ASSERT_LE(b.peak_a_to_b, c.max_buffered);
	ASSERT_LE(b.peak_b_to_a, c.max_buffered);
	ctx_fini(&c);
	free(ab);
	free(ba);
}

static void bulk_both_ways(enum kind k, bool no_splice)
{
	bulk(k, no_splice, 0, 8 * MiB);
}

static void test_bulk_unix_splice(void)
{
	bulk_both_ways(UNIX, false);
}

static void test_bulk_unix_rw(void)
{
	bulk_both_ways(UNIX, true);
}

static void test_bulk_tcp_splice(void)
{
	bulk_both_ways(TCP, false);
}

static void test_bulk_tcp_rw(void)
{
	bulk_both_ways(TCP, true);
}

/* Caps around the size where small reads are copied instead of spliced,
 * so that a direction switches between pipe and copy mid-stream. */
static void test_bulk_small_caps(void)
{
	static const size_t caps[] = {1, 1000, 4095, 4096, 5000, 65536};
	for (size_t i = 0; i < ARRAY_SIZE(caps); i++) {
		bulk(TCP, false, caps[i], caps[i] < 1000 ? 64 * 1024 : 2 * MiB);
		bulk(UNIX, false, caps[i], caps[i] < 1000 ? 64 * 1024 : 2 * MiB);
	}
}

/* Small socket buffers towards b, a 16 KiB cap and a reader that takes
 * 8 KiB a millisecond: writes are partial, the relay holds at most 16 KiB,
 * and while it holds bytes it leaves a's (more than 16 KiB) unread. */
static void backpressure(bool no_splice)
{
	struct relay_opts o = {.max_buffered = 16 * 1024, .no_splice = no_splice};
	struct ctx c;
	size_t n = 2 * MiB;
	unsigned char *ab = random_buf(n);
	int small = 4096;

	ctx_init(&c, TCP, &o, small);
	ASSERT_EQ(setsockopt(c.fd_b, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
	c.pa = (struct peer){.l = c.l, .fd = c.pa.fd, .tx = ab, .tx_len = n, .tx_shut = true};
	c.pb = (struct peer){.l = c.l,
			     .fd = c.pb.fd,
			     .tx_shut = true,
			     .rx_expect = ab,
			     .rx_len = n,
			     .read_max = 8192,
			     .slow_ms = 1};
	/* b says nothing (tx_shut: EOF at once), which must still travel */
	ctx_start(&c);
	run_until2(c.l, ctx_finished, ctx_sample, &c, 30000);
	ASSERT(!c.pb.bad);
	ASSERT_EQ(c.pb.rx_off, n);
	ASSERT_EQ(c.st.error, 0);
	ASSERT_EQ(c.st.a_to_b, n);
	ASSERT_EQ(c.st.b_to_a, 0);
	struct relay_buffered b;
	relay_get_buffered(c.r, &b);
	ASSERT_LE(b.peak_a_to_b, o.max_buffered);
	ASSERT_GT(b.peak_a_to_b, 0);
	ASSERT_GT(c.seen_pending_ab, 0);	      /* a partial write left bytes */
	ASSERT_GT(c.seen_inq_a, (int)o.max_buffered); /* and a was not read meanwhile */
	printf("# backpressure %s: peak %zu of %zu, waited holding %zu, a unread %d\n",
	       no_splice ? "rw" : "splice", b.peak_a_to_b, (size_t)o.max_buffered,
	       c.seen_pending_ab, c.seen_inq_a);
	ctx_fini(&c);
	free(ab);
}

static void test_backpressure_splice(void)
{
	backpressure(false);
}

static void test_backpressure_rw(void)
{
	backpressure(true);
}

/* a half-closes after 1 MiB; b answers 1 MiB only after seeing that EOF,
 * then closes: a gets it all, done once, no error. */
static void half_close(enum kind k, bool no_splice)
{
	struct relay_opts o = {.no_splice = no_splice};
	struct ctx c;
	size_t n = 1 * MiB;
	unsigned char *ab = random_buf(n), *ba = random_buf(n);

	ctx_init(&c, k, &o, 0);
	c.pa = (struct peer){.l = c.l,
			     .fd = c.pa.fd,
			     .tx = ab,
			     .tx_len = n,
			     .tx_shut = true,
			     .rx_expect = ba,
			     .rx_len = n};
	c.pb = (struct peer){.l = c.l,
			     .fd = c.pb.fd,
			     .tx = ba,
			     .tx_len = n,
			     .tx_on_eof = true,
			     .tx_close = true,
			     .rx_expect = ab,
			     .rx_len = n};
	ctx_start(&c);
	run_until(c.l, ctx_finished, &c, 30000);
	ASSERT_EQ(c.pb.fd, -1); /* b closed after answering */
	ASSERT(!c.pa.bad);
	ASSERT(!c.pb.bad);
	ASSERT_EQ(c.pa.rx_off, n);
	ASSERT_EQ(c.pb.rx_off, n);
	ASSERT_EQ(c.st.error, 0);
	ASSERT_EQ(c.st.a_to_b, n);
	ASSERT_EQ(c.st.b_to_a, n);
	run_for(c.l, 20);
	ASSERT_EQ(c.done_calls, 1);
	ctx_fini(&c);
	free(ab);
	free(ba);
}

static void test_half_close(void)
{
	half_close(UNIX, false);
	half_close(UNIX, true);
	half_close(TCP, false);
	half_close(TCP, true);
}

static bool ctx_done_called(void *arg)
{
	return ((struct ctx *)arg)->done_calls > 0;
}

static void rst(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
}

static bool pb_got_all(void *arg)
{
	struct ctx *c = arg;
	return c->pb.rx_off == c->pb.rx_len || c->done_calls;
}

static bool relay_blocked_ba(void *arg)
{
	struct ctx *c = arg;
	struct relay_buffered b;
	relay_get_buffered(c->r, &b);
	return b.b_to_a > 0;
}

static bool pb_got_eof(void *arg)
{
	struct ctx *c = arg;
	return c->pb.eof || c->done_calls;
}

/* Resets: (1) while a is sending, (2) while b's data waits for a, which
 * does not read, (3) on an idle, half-closed a (nothing to read or write
 * there: only EPOLLERR tells). */
static void reset_case(int which, bool no_splice)
{
	struct relay_opts o = {.no_splice = no_splice};
	struct ctx c;
	size_t n = 4 * MiB;
	unsigned char *buf = random_buf(n);

	ctx_init(&c, TCP, &o, 0);
	int pa = c.pa.fd;
	if (which == 1) {
		c.pa = (struct peer){.l = c.l, .fd = pa, .tx = buf, .tx_len = 64 * 1024};
		c.pb.rx_expect = buf;
		c.pb.rx_len = 64 * 1024;
		ctx_start(&c);
		run_until(c.l, pb_got_all, &c, 10000);
		/* now a resets with the relay reading it */
		ASSERT_EQ(c.pb.rx_off, c.pb.rx_len);
	} else if (which == 2) {
		int small = 65536; /* so that 4 MiB cannot all fit in front of a */
		ASSERT_EQ(setsockopt(c.fd_a, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
		c.pb = (struct peer){.l = c.l, .fd = c.pb.fd, .tx = buf, .tx_len = n};
		c.pa.fd = -1; /* a never reads: not registered */
		ctx_start(&c);
		c.pa.fd = pa;
		/* b's bytes pile up in front of a until the relay waits */
		run_until(c.l, relay_blocked_ba, &c, 10000);
	} else {
		c.pb.rx_len = 0;
		ctx_start(&c);
		ASSERT_EQ(shutdown(pa, SHUT_WR), 0);
		run_until(c.l, pb_got_eof, &c, 10000);
		ASSERT(c.pb.eof);
		ASSERT_EQ(c.done_calls, 0);
	}
	rst(pa);
	if (c.pa.registered)
		ASSERT_EQ(loop_del_fd(c.l, pa), 0);
	c.pa.registered = false;
	close(pa);
	c.pa.fd = -1;
	run_until(c.l, ctx_done_called, &c, 10000);
	ASSERT_EQ(c.done_calls, 1);
	ASSERT(c.st.error == ECONNRESET || c.st.error == EPIPE);
	run_for(c.l, 10);
	ASSERT_EQ(c.done_calls, 1);
	ctx_fini(&c);
	free(buf);
}

static void test_reset(void)
{
	for (int which = 1; which <= 3; which++) {
		reset_case(which, false);
		reset_case(which, true);
	}
}

static void preload(bool no_splice)
{
	struct relay_opts o = {.no_splice = no_splice, .max_buffered = 64};
	static const unsigned char pre[] = "HELLO-", rest[] = "world", all[] = "HELLO-world";
	struct ctx c;

	ctx_init(&c, UNIX, &o, 0);
	ASSERT_EQ(relay_preload_a(c.r, pre, 6), 0);
	ASSERT_EQ(relay_preload_a(c.r, pre, 0), 0);
	unsigned char big[64] = {0};
	ASSERT_EQ(relay_preload_a(c.r, big, sizeof big - 5), -E2BIG); /* 6 + 59 > 64 */
	/* a's bytes are there before the loop runs; they must come after */
	ASSERT_EQ(write(c.pa.fd, rest, 5), 5);
	c.pa = (struct peer){.l = c.l, .fd = c.pa.fd, .tx_shut = true};
	c.pb =
	    (struct peer){.l = c.l, .fd = c.pb.fd, .tx_shut = true, .rx_expect = all, .rx_len = 11};
	ctx_start(&c);
	run_until(c.l, ctx_finished, &c, 10000);
	ASSERT(!c.pb.bad);
	ASSERT_EQ(c.pb.rx_off, 11);
	ASSERT_EQ(c.st.a_to_b, 11);
	ASSERT_EQ(c.st.error, 0);
	ctx_fini(&c);
}

static void test_preload(void)
{
	preload(false);
	preload(true);
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* The done callback frees the relay: both fds closed, nothing touched
 * after (ASan). */
static void test_free_in_done(void)
{
	struct ctx c;
	static const unsigned char msg[] = "ping";

	ctx_init(&c, UNIX, NULL, 0);
	c.free_in_done = true;
	c.pa = (struct peer){.l = c.l, .fd = c.pa.fd, .tx = msg, .tx_len = 4, .tx_shut = true};
	c.pb =
	    (struct peer){.l = c.l, .fd = c.pb.fd, .tx_shut = true, .rx_expect = msg, .rx_len = 4};
	ctx_start(&c);
	run_until(c.l, ctx_finished, &c, 10000);
	ASSERT(c.r == NULL);
	ASSERT(!fd_is_open(c.fd_a));
	ASSERT(!fd_is_open(c.fd_b));
	ASSERT_EQ(c.st.a_to_b, 4);
	ctx_fini(&c);
}

/* Another callback in the same batch frees the relay while its own events
 * are pending; once with the killer first in the batch, once last. */
struct killer {
	struct ctx *c;
	int pipe[2];
	bool fired;
};

static void killer_cb(struct loop *l, int fd, unsigned ev, void *data)
{
	struct killer *k = data;
	relay_free(k->c->r);
	k->c->r = NULL;
	k->fired = true;
	ASSERT_EQ(loop_del_fd(l, fd), 0);
}

static bool killer_fired(void *arg)
{
	return ((struct killer *)arg)->fired;
}

static void free_from_other(bool killer_first)
{
	struct ctx c;
	struct killer k = {.c = &c};
	ASSERT_EQ(pipe2(k.pipe, O_CLOEXEC | O_NONBLOCK), 0);
	ASSERT_EQ(write(k.pipe[1], "k", 1), 1);
	memset(&c, 0, sizeof c);
	ASSERT_EQ(loop_new(&c.l), 0);
	if (killer_first)
		ASSERT_EQ(loop_add_fd(c.l, k.pipe[0], LOOP_READ, killer_cb, &k), 0);
	make_pair(UNIX, 0, &c.pa.fd, &c.fd_a);
	make_pair(UNIX, 0, &c.pb.fd, &c.fd_b);
	/* both relay ends readable before the loop runs */
	ASSERT_EQ(write(c.pa.fd, "aaaa", 4), 4);
	ASSERT_EQ(write(c.pb.fd, "bbbb", 4), 4);
	ASSERT_EQ(relay_make(c.l, c.fd_a, c.fd_b, NULL, ctx_done, &c, &c.r), 0);
	if (!killer_first)
		ASSERT_EQ(loop_add_fd(c.l, k.pipe[0], LOOP_READ, killer_cb, &k), 0);
	run_until(c.l, killer_fired, &k, 10000);
	run_for(c.l, 5);
	ASSERT_EQ(c.done_calls, 0);
	ASSERT(!fd_is_open(c.fd_a));
	ASSERT(!fd_is_open(c.fd_b));
	close(k.pipe[0]);
	close(k.pipe[1]);
	c.pa.l = c.pb.l = c.l;
	ctx_fini(&c);
}

static void test_free_from_other_callback(void)
{
	free_from_other(true);
	free_from_other(false);
}

/* a is the read end of a pipe: read/write path, EOF from the pipe is
 * passed on to b, b's EOF ends it (a pipe cannot be half-closed). */
struct pipe_writer {
	struct loop *l;
	int fd;
	const unsigned char *buf;
	size_t len, off;
};

static void pipe_writer_cb(struct loop *l, int fd, unsigned ev, void *data)
{
	struct pipe_writer *w = data;
	ssize_t n = write(fd, w->buf + w->off, w->len - w->off > 65536 ? 65536 : w->len - w->off);
	if (n > 0)
		w->off += (size_t)n;
	if (w->off == w->len) {
		ASSERT_EQ(loop_del_fd(l, fd), 0);
		close(fd);
		w->fd = -1;
	}
}

static void test_pipe_side(void)
{
	struct ctx c;
	size_t n = 1 * MiB;
	unsigned char *buf = random_buf(n);
	int p[2];

	memset(&c, 0, sizeof c);
	ASSERT_EQ(loop_new(&c.l), 0);
	ASSERT_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	make_pair(TCP, 0, &c.pb.fd, &c.fd_b);
	c.fd_a = p[0];
	c.pa.fd = -1;
	c.pb = (struct peer){.l = c.l, .fd = c.pb.fd, .rx_expect = buf, .rx_len = n};
	set_nonblock(c.pb.fd);
	struct pipe_writer w = {.l = c.l, .fd = p[1], .buf = buf, .len = n};
	unsigned long calls0 = splice_calls;
	ASSERT_EQ(relay_make(c.l, c.fd_a, c.fd_b, NULL, ctx_done, &c, &c.r), 0);
	ASSERT_EQ(loop_add_fd(c.l, p[1], LOOP_WRITE, pipe_writer_cb, &w), 0);
	ctx_start(&c);
	run_until(c.l, pb_got_eof, &c, 10000);
	ASSERT(!c.pb.bad);
	ASSERT_EQ(c.pb.rx_off, n);
	ASSERT_EQ(c.done_calls, 0);
	ASSERT_EQ(shutdown(c.pb.fd, SHUT_WR), 0);
	run_until(c.l, ctx_done_called, &c, 10000);
	ASSERT_EQ(c.st.error, 0);
	ASSERT_EQ(c.st.a_to_b, n);
	ASSERT_EQ(splice_calls, calls0); /* not both sockets: read/write */
	ASSERT_EQ(w.fd, -1);
	ctx_fini(&c);
	free(buf);
}

/* splice refused (EINVAL) into the pipe, then out of it: the direction
 * goes on with read/write and no byte is lost or reordered. */
static void test_splice_einval_fallback(void)
{
	for (int out = 0; out < 2; out++) {
		struct ctx c;
		size_t n = 4 * MiB;
		unsigned char *ab = random_buf(n), *ba = random_buf(n);

		ctx_init(&c, TCP, NULL, 0);
		c.pa = (struct peer){.l = c.l,
				     .fd = c.pa.fd,
				     .tx = ab,
				     .tx_len = n,
				     .tx_shut = true,
				     .rx_expect = ba,
				     .rx_len = n};
		c.pb = (struct peer){.l = c.l,
				     .fd = c.pb.fd,
				     .tx = ba,
				     .tx_len = n,
				     .tx_shut = true,
				     .rx_expect = ab,
				     .rx_len = n};
		if (out)
			splice_refuse_out = 1;
		else
			splice_refuse_in = 1;
		ctx_start(&c);
		run_until(c.l, ctx_finished, &c, 30000);
		ASSERT_EQ(splice_refuse_in + splice_refuse_out, 0);
		ASSERT(!c.pa.bad);
		ASSERT(!c.pb.bad);
		ASSERT_EQ(c.pa.rx_off, n);
		ASSERT_EQ(c.pb.rx_off, n);
		ASSERT_EQ(c.st.error, 0);
		ctx_fini(&c);
		free(ab);
		free(ba);
	}
}

static void test_errors(void)
{
	struct loop *l;
	struct relay *r = NULL;
	int sv[2];
	ASSERT_EQ(loop_new(&l), 0);
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ASSERT_EQ(relay_new(l, -1, sv[1], NULL, NULL, NULL, &r), -EBADF);
	ASSERT_EQ(relay_new(l, sv[0], sv[0], NULL, NULL, NULL, &r), -EINVAL);
	struct relay_opts o = {.max_buffered = (size_t)1 << 40};
	ASSERT_EQ(relay_new(l, sv[0], sv[1], &o, NULL, NULL, &r), -EINVAL);
	/* a regular file cannot be polled: refused, fd left as it was */
	int f = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(f, 0);
	ASSERT_EQ(relay_new(l, sv[0], f, NULL, NULL, NULL, &r), -EPERM);
	ASSERT(r == NULL);
	ASSERT_EQ(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
	ASSERT(fd_is_open(f));
	/* sv[0] is not left registered: the loop takes it again */
	ASSERT_EQ(loop_add_fd(l, sv[0], LOOP_READ, NULL, NULL), 0);
	ASSERT_EQ(loop_del_fd(l, sv[0]), 0);
	close(f);
	close(sv[0]);
	close(sv[1]);
	relay_free(NULL);
	loop_free(l);
}

/* --- idle cost --- */

static long rss_bytes(void)
{
	long size, resident;
	FILE *f = fopen("/proc/self/statm", "re");
	ASSERT(f);
	ASSERT_EQ(fscanf(f, "%ld %ld", &size, &resident), 2);
	fclose(f);
	return resident * sysconf(_SC_PAGESIZE);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	ASSERT(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

struct idle {
	struct relay **r;
	int n;
};

static bool idle_all_moved(void *arg)
{
	struct idle *id = arg;
	for (int i = 0; i < id->n; i++) {
		struct relay_stats st;
		relay_get_stats(id->r[i], &st);
		if (st.a_to_b != 1 || st.b_to_a != 1)
			return false;
	}
	return true;
}

/* 1,000 relays that each moved a byte each way and went idle: they hold no
 * buffer and no pipe; print the RSS they cost. */
static void test_idle_memory(void)
{
	int n = 1000;
	struct rlimit rl;
	ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < (rlim_t)(4 * n + 256)) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < (rlim_t)(4 * n + 256))
			n = ((int)rl.rlim_cur - 256) / 4;
	}
	ASSERT_GT(n, 10);
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	int *peers = calloc((size_t)n * 2, sizeof *peers);
	struct relay **rs = calloc((size_t)n, sizeof *rs);
	int(*ends)[2] = calloc((size_t)n, sizeof *ends);
	ASSERT(peers && rs && ends);
	for (int i = 0; i < n; i++) {
		make_pair(UNIX, 0, &peers[2 * i], &ends[i][0]);
		make_pair(UNIX, 0, &peers[2 * i + 1], &ends[i][1]);
	}
	/* warm up: one relay, used, so pools and loop internals exist */
	{
		struct ctx c;
		static const unsigned char m[] = "x";
		ctx_init(&c, TCP, NULL, 0);
		c.pa =
		    (struct peer){.l = c.l, .fd = c.pa.fd, .tx = m, .tx_len = 1, .tx_shut = true};
		c.pb = (struct peer){
		    .l = c.l, .fd = c.pb.fd, .tx_shut = true, .rx_expect = m, .rx_len = 1};
		ctx_start(&c);
		run_until(c.l, ctx_finished, &c, 10000);
		ctx_fini(&c);
	}
	int fds0 = count_fds();
	long rss0 = rss_bytes();
	for (int i = 0; i < n; i++) {
		ASSERT_EQ(relay_new(l, ends[i][0], ends[i][1], NULL, NULL, NULL, &rs[i]), 0);
		ASSERT_EQ(write(peers[2 * i], "a", 1), 1);
		ASSERT_EQ(write(peers[2 * i + 1], "b", 1), 1);
	}
	struct idle id = {.r = rs, .n = n};
	run_until(l, idle_all_moved, &id, 30000);
	long rss1 = rss_bytes();
	int fds1 = count_fds();
	for (int i = 0; i < n; i++) {
		char ch;
		ASSERT_EQ(read(peers[2 * i], &ch, 1), 1);
		ASSERT_EQ(ch, 'b');
		ASSERT_EQ(read(peers[2 * i + 1], &ch, 1), 1);
		ASSERT_EQ(ch, 'a');
		struct relay_buffered b;
		relay_get_buffered(rs[i], &b);
		ASSERT_EQ(b.a_to_b + b.b_to_a, 0);
	}
	long per = (rss1 - rss0) / n;
	printf("# %d idle relays: RSS +%ld KiB (%ld bytes each), fds +%d (pooled pipes only)\n", n,
	       (rss1 - rss0) / 1024, per, fds1 - fds0);
	ASSERT_LT(per, 8192);
	ASSERT_LE(fds1 - fds0, 2 * 64); /* a bounded pool, not a pipe per relay */
	for (int i = 0; i < n; i++) {
		relay_free(rs[i]);
		close(peers[2 * i]);
		close(peers[2 * i + 1]);
	}
	free(peers);
	free(rs);
	free(ends);
	loop_free(l);
}

/* The cases above through fd endpoints and relay_new_ep: read/write
 * only (no splice), the same half-close, backpressure, resets, preload and
 * freeing. */
static void test_generic_path(void)
{
	use_ep = true;
	bulk_both_ways(UNIX, true);
	bulk_both_ways(TCP, true);
	static const size_t caps[] = {1, 1000, 4096, 65536};
	for (size_t i = 0; i < ARRAY_SIZE(caps); i++)
		bulk(TCP, true, caps[i], caps[i] < 1000 ? 64 * 1024 : 2 * MiB);
	backpressure(true);
	half_close(UNIX, true);
	half_close(TCP, true);
	for (int which = 1; which <= 3; which++)
		reset_case(which, true);
	preload(true);
	test_free_in_done();
	test_free_from_other_callback();
	test_pipe_side();
	/* a regular file is refused by the endpoint, as by relay_new */
	struct loop *l;
	struct relay_ep *ep;
	ASSERT_EQ(loop_new(&l), 0);
	int f = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(f, 0);
	ASSERT_EQ(relay_ep_fd_new(l, f, &ep), -EPERM);
	ASSERT_EQ(fcntl(f, F_GETFL) & O_NONBLOCK, 0);
	ASSERT_EQ(relay_ep_fd_new(l, -1, &ep), -EBADF);
	close(f);
	loop_free(l);
	use_ep = false;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as the program does */
	setvbuf(stdout, NULL, _IOLBF, 0);
	int fds0 = count_fds();

	RUN(test_errors);
	RUN(test_bulk_unix_splice);
	RUN(test_bulk_unix_rw);
	RUN(test_bulk_tcp_splice);
	RUN(test_bulk_tcp_rw);
	RUN(test_bulk_small_caps);
	RUN(test_backpressure_splice);
	RUN(test_backpressure_rw);
	RUN(test_half_close);
	RUN(test_reset);
	RUN(test_preload);
	RUN(test_free_in_done);
	RUN(test_free_from_other_callback);
	RUN(test_pipe_side);
	RUN(test_splice_einval_fallback);
	RUN(test_idle_memory);
	RUN(test_generic_path);

	relay_pool_flush();
	ASSERT_EQ(count_fds(), fds0); /* nothing leaked */
	return 0;
}
