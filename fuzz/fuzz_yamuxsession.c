/* Fuzz a Yamux session as a peer drives it: the input after its first byte
 * is written, as the session reads it, into the other end of a socketpair
 * (whatever frames it happens to hold), and the loop turns until the
 * session is idle or ends, a bounded number of turns.  Then the connection
 * is closed and everything is freed: the session must never crash, leak,
 * or call back out of order.
 *
 * The first byte picks the setting:
 *   bit 0     client (odd ids, opens two streams and writes to them first)
 *             or server
 *   bits 1-2  what accepted streams do: read and drop, echo, relay to a
 *             socket (the far end read, then half-closed), or stay pending
 *   bit 3     this end stops reading the session's output (backpressure)
 *   bit 4     a 1 MiB receive window
 *   bit 5     backlog 2, 4 streams at most, 8 KiB of output
 *   bit 6     the session is freed from its closed callback
 *   bit 7     the session ends with yamux_session_close (else the
 *             connection is closed under it)
 */
#include "core/loop.h"
#include "core/relay.h"
#include "core/util.h"
#include "proto/yamux.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_STREAMS 64
#define MAX_RELAYS  16
#define TURNS	    400
#define IDLE_TURNS  3

enum mode { READ, ECHO, RELAY, HOLD };

struct fstream {
	struct ctx *c;
	struct yamux_stream *st;
	unsigned char buf[4096];
	size_t pend_off, pend_len; /* echo bytes not yet taken */
	bool eof, closed, shut;
};

struct frelay {
	struct ctx *c;
	struct relay *r;
	int far;
	bool far_eof, far_shut;
};

struct ctx {
	struct loop *l;
	struct yamux_session *s;
	bool session_freed;
	int fd; /* our end */
	bool fd_open;
	const uint8_t *in;
	size_t in_len, in_off;
	bool no_read;
	enum mode mode;
	bool free_in_closed;
	int closed_calls;
	struct fstream *st[MAX_STREAMS];
	unsigned n_st;
	struct frelay rl[MAX_RELAYS];
	unsigned n_rl;
	int relays_done;
	unsigned turns, idle;
	bool progress;
	struct loop_timer tick;
};

static void fs_close(struct fstream *f)
{
	if (!f->closed) {
		f->closed = true;
		yamux_stream_close(f->st);
	}
}

static void fs_alloc(struct relay_ep *ep, size_t suggested, void **ret, size_t *ret_len)
{
	struct fstream *f = ep->data;
	if (f->closed || f->eof)
		abort(); /* nothing after close or EOF */
	*ret = f->buf;
	*ret_len = sizeof f->buf;
}

static void fs_flush(struct fstream *f)
{
	struct relay_ep *ep = yamux_stream_ep(f->st);
	while (f->pend_len > 0) {
		ssize_t w = ep->ops->write(ep, f->buf + f->pend_off, f->pend_len);
		if (w == -EAGAIN)
			return;
		if (w < 0) {
			fs_close(f);
			return;
		}
		if ((size_t)w > f->pend_len)
			abort();
		f->pend_off += (size_t)w;
		f->pend_len -= (size_t)w;
	}
	if (ep->ops->read_start(ep) < 0) {
		fs_close(f);
		return;
	}
	if (f->eof && !f->shut) {
		f->shut = true;
		if (ep->ops->shutdown(ep) < 0)
			fs_close(f);
	}
}

static void fs_read(struct relay_ep *ep, size_t n)
{
	struct fstream *f = ep->data;
	if (f->closed || f->eof || n > sizeof f->buf)
		abort();
	f->c->progress = true;
	if (n == 0) {
		f->eof = true;
		if (f->c->mode != ECHO || f->pend_len == 0) {
			f->shut = true;
			if (ep->ops->shutdown(ep) < 0)
				fs_close(f);
		}
		return;
	}
	if (f->c->mode != ECHO)
		return;
	ep->ops->read_stop(ep);
	f->pend_off = 0;
	f->pend_len = n;
	fs_flush(f);
}

static void fs_writable(struct relay_ep *ep)
{
	struct fstream *f = ep->data;
	if (f->closed)
		abort();
	if (f->pend_len)
		fs_flush(f);
}

static void fs_error(struct relay_ep *ep, int err)
{
	struct fstream *f = ep->data;
	if (f->closed || err <= 0)
		abort();
	fs_close(f); /* from inside its own callback */
}

static const struct relay_ep_cb fs_cb = {
    .alloc = fs_alloc, .read = fs_read, .writable = fs_writable, .error = fs_error};

static struct fstream *fs_new(struct ctx *c, struct yamux_stream *st)
{
	struct fstream *f = calloc(1, sizeof *f);
	if (!f)
		abort();
	f->c = c;
	f->st = st;
	struct relay_ep *ep = yamux_stream_ep(st);
	ep->cb = &fs_cb;
	ep->data = f;
	yamux_stream_set_data(st, f);
	c->st[c->n_st++] = f;
	return f;
}

static void far_cb(struct loop *l, int fd, unsigned ev, void *data)
{
	struct frelay *x = data;
	unsigned char b[16384];
	ssize_t n = read(fd, b, sizeof b);
	if (n > 0)
		x->c->progress = true;
	if (n == 0 || (n < 0 && errno != EAGAIN)) {
		x->far_eof = true;
		loop_del_fd(l, fd);
	}
	if (!x->far_shut) { /* say something, then half-close */
		x->far_shut = true;
		(void)!send(fd, "pong", 4, MSG_NOSIGNAL | MSG_DONTWAIT);
		shutdown(fd, SHUT_WR);
	}
}

static void relay_done(struct relay *r, void *data)
{
	struct frelay *x = data;
	x->c->relays_done++;
	relay_free(r); /* from its own callback */
	x->r = NULL;
}

static void on_accept(struct yamux_session *s, struct yamux_stream *st, void *data)
{
	struct ctx *c = data;
	if (s != c->s || c->session_freed)
		abort();
	c->progress = true;
	if (c->mode == HOLD || c->n_st == MAX_STREAMS) {
		if (c->n_st == MAX_STREAMS) {
			yamux_stream_close(st); /* refuse */
			return;
		}
		fs_new(c, st); /* pending until the end */
		return;
	}
	if (c->mode == RELAY && c->n_rl < MAX_RELAYS) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
			abort();
		struct relay_ep *fa;
		if (relay_ep_fd_new(c->l, sv[1], &fa) < 0)
			abort();
		struct frelay *x = &c->rl[c->n_rl];
		*x = (struct frelay){.c = c, .far = sv[0]};
		if (yamux_stream_accept(st) < 0 ||
		    relay_new_ep(c->l, fa, yamux_stream_ep(st), NULL, relay_done, x, &x->r) < 0) {
			fa->ops->close(fa);
			yamux_stream_close(st);
			close(sv[0]);
			return;
		}
		c->n_rl++;
		if (loop_add_fd(c->l, sv[0], LOOP_READ, far_cb, x) < 0)
			abort();
		return;
	}
	struct fstream *f = fs_new(c, st);
	if (yamux_stream_accept(st) < 0) {
		fs_close(f);
		return;
	}
	struct relay_ep *ep = yamux_stream_ep(st);
	if (ep->ops->read_start(ep) < 0)
		fs_close(f);
}

static void on_closed(struct yamux_session *s, int err, void *data)
{
	struct ctx *c = data;
	if (s != c->s || c->closed_calls++ || err < 0)
		abort();
	c->progress = true;
	if (c->free_in_closed) {
		yamux_session_free(s);
		c->session_freed = true;
	}
}

static const struct yamux_session_cb sess_cb = {.accept = on_accept, .closed = on_closed};

/* One turn: feed input, drain output, count idle turns. */
static void pump(struct ctx *c)
{
	if (c->fd_open && c->in_off < c->in_len) {
		ssize_t w = send(c->fd, c->in + c->in_off, c->in_len - c->in_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			c->in_off += (size_t)w;
			c->progress = true;
		}
	}
	if (c->fd_open && !c->no_read) {
		unsigned char b[65536];
		for (int i = 0; i < 16; i++) {
			ssize_t n = recv(c->fd, b, sizeof b, MSG_DONTWAIT);
			if (n <= 0)
				break;
			c->progress = true;
		}
	}
}

static void tick(struct loop *l, void *data)
{
	struct ctx *c = data;
	c->turns++;
	pump(c);
	if (c->progress)
		c->idle = 0;
	else
		c->idle++;
	c->progress = false;
	if (c->turns >= TURNS || c->idle >= IDLE_TURNS || c->closed_calls) {
		loop_stop(l);
		return;
	}
	loop_timer_start(l, &c->tick, 0, tick, c);
}

static void run(struct ctx *c)
{
	c->turns = c->idle = 0;
	loop_timer_start(c->l, &c->tick, 0, tick, c);
	if (loop_run(c->l) < 0)
		abort();
	loop_timer_stop(c->l, &c->tick);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t cfg = data[0];
	struct ctx *c = calloc(1, sizeof *c);
	if (!c)
		abort();
	c->in = data + 1;
	c->in_len = size - 1;
	c->mode = (enum mode)((cfg >> 1) & 3);
	c->no_read = cfg & 0x08;
	c->free_in_closed = cfg & 0x40;
	bool client = cfg & 1;
	struct yamux_opts o = {.keepalive_off = true};
	if (cfg & 0x10)
		o.recv_window = 1024 * 1024;
	if (cfg & 0x20) {
		o.accept_backlog = 2;
		o.max_streams = 4;
		o.max_output = 8192;
	}
	if (loop_new(&c->l) < 0)
		abort();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	c->fd = sv[1];
	c->fd_open = true;
	if (yamux_session_new(c->l, sv[0], client, &o, &sess_cb, c, &c->s) < 0)
		abort();
	if (client) {
		for (int i = 0; i < 2; i++) {
			struct yamux_stream *st;
			if (yamux_open(c->s, &st) < 0)
				abort();
			if (yamux_stream_id(st) != (uint32_t)(1 + 2 * i))
				abort();
			struct fstream *f = fs_new(c, st);
			struct relay_ep *ep = yamux_stream_ep(st);
			if (ep->ops->read_start(ep) < 0)
				abort();
			static const char hello[] = "hello, yamux";
			ssize_t w = ep->ops->write(ep, hello, sizeof hello - 1);
			if (w <= 0 || (size_t)w > sizeof hello - 1)
				abort();
			(void)f;
		}
	}
	run(c);

	/* the end: our own close, or the connection gone, then some turns */
	if (!c->closed_calls && !c->session_freed) {
		if (cfg & 0x80) {
			(void)yamux_session_ping(c->s);
			(void)yamux_session_goaway(c->s);
			yamux_session_close(c->s);
		} else {
			close(c->fd);
			c->fd_open = false;
		}
		c->no_read = false;
		run(c);
	}
	if (c->closed_calls > 1)
		abort();

	for (unsigned i = 0; i < c->n_st; i++) {
		fs_close(c->st[i]);
		free(c->st[i]);
	}
	for (unsigned i = 0; i < c->n_rl; i++) {
		relay_free(c->rl[i].r);
		if (!c->rl[i].far_eof)
			loop_del_fd(c->l, c->rl[i].far);
		close(c->rl[i].far);
	}
	if (!c->session_freed)
		yamux_session_free(c->s);
	if (c->fd_open)
		close(c->fd);
	yamux_drain_flush();
	loop_free(c->l);
	relay_pool_flush();
	free(c);
	return 0;
}
