/* relay.c - see relay.h.
 *
 * Two directions, a->b (dir[0]) and b->a (dir[1]); direction i reads fd[i]
 * and writes fd[!i].  Each one runs the same small cycle:
 *
 *   empty --read--> pending --write all--> empty      (repeat)
 *     |                 `--sink full--> wait for LOOP_WRITE on the sink,
 *     |                                 LOOP_READ off on the source
 *     `--EOF--> shutdown(sink, SHUT_WR) --> shut
 *
 * A direction only reads while it holds nothing, and reads at most
 * max_buffered bytes, so what it holds never exceeds max_buffered and the
 * kernel's socket buffers do the pipelining.  The bytes sit either in a pipe
 * (splice, both ends sockets) or in a chunk of max_buffered bytes; both come
 * from a small per-thread pool when a read starts and go back as soon as the
 * direction is empty, so an idle relay holds neither.
 *
 * Small reads (interactive traffic) are copied rather than spliced, which
 * costs less for a few bytes; a read of SPLICE_MIN or more switches the
 * direction back to splice (haproxy's splice-auto does much the same).
 *
 * The loop is level-triggered, so a short read ends a burst without the
 * extra read that would only say EAGAIN: if more arrived meanwhile, epoll
 * reports it again.  A burst is also cut at BURST_BYTES / BURST_ROUNDS so
 * one busy relay cannot starve the others.
 *
 * A side whose interest is empty stays registered, so a reset on an idle
 * half-closed connection is still noticed (EPOLLERR; SO_ERROR says which).
 * EPOLLHUP cannot be masked, so a hung-up side with nothing to do is taken
 * out of epoll ("parked") instead of waking the loop forever.
 *
 * Endpoints (relay_new_ep) run the same cycle with the endpoint's calls in
 * place of the syscalls: a direction reads (read_start) only while it holds
 * nothing; each read lands in a per-thread scratch area and is written to
 * the sink at once; what the sink does not take is copied to the
 * direction's struct buf (at most one read, so at most max_buffered), reads
 * stop, and the sink's `writable` resumes the flush; once empty, reads
 * start again.  So a relay whose sinks keep up holds no memory at all, and
 * a stalled one holds at most max_buffered per direction.  EOF is passed on
 * (shutdown) once the direction is empty; both passed on, or an error, and
 * the relay is done.
 *
 * Freeing: relay_free from inside one of the relay's own callbacks (the
 * done callback, or any owner code they reach) releases everything but the
 * struct at once and leaves the struct to the loop (loop_defer), so the
 * code that called back can still look at it on its way out. */
#include "core/relay.h"
#include "core/buf.h"
#include "core/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RELAY_DEFAULT_BUFFERED ((size_t)256 * 1024)
#define RELAY_LIMIT_BUFFERED   ((size_t)64 * 1024 * 1024) /* pending fits uint32_t */
#ifndef RELAY_PIPE_SIZE
#define RELAY_PIPE_SIZE (256 * 1024) /* best effort, F_SETPIPE_SZ */
#endif
#define SPLICE_MIN   4096 /* smaller reads: copying is cheaper */
#define BURST_BYTES  ((size_t)1024 * 1024)
#define BURST_ROUNDS 16
#define POOL_PIPES   16
#define POOL_CHUNKS  8
#define SCRATCH_MAX  ((size_t)256 * 1024) /* endpoints: the most read at once */
#define SPLICE_FLAGS (SPLICE_F_NONBLOCK | SPLICE_F_MOVE)

struct relay_chunk {
	struct relay_chunk *next; /* in the pool */
	size_t cap;
	unsigned char data[];
};

struct relay_dir {
	struct relay_chunk *chunk; /* pending bytes at data[off] unless in_pipe */
	uint64_t bytes;		   /* delivered */
	int pipe_r, pipe_w;	   /* -1 when none */
	uint32_t off, pending, peak;
	bool splice;  /* both ends are sockets and splice was not refused */
	bool copy;    /* the last read was small: copy the next one */
	bool in_pipe; /* pending bytes are in the pipe */
	bool eof;     /* source said EOF (or cannot say more) */
	bool shut;    /* EOF passed on: shutdown(sink, SHUT_WR) done */
};

/* Direction i of an endpoint relay: reads edir[i].ep, writes edir[!i].ep. */
struct relay_edir {
	struct relay_ep *ep; /* side i */
	struct buf buf;	     /* read, not taken by the sink yet; empty while reading */
	uint64_t bytes;	     /* delivered */
	uint32_t peak;
	bool reading; /* read_start is in effect */
	bool blocked; /* the sink took less than offered: wait for its writable */
	bool eof;     /* the source said EOF */
	bool shut;    /* EOF passed on: shutdown(sink) done */
};

/* What only a relay of endpoints needs, allocated with it (so a relay of
 * fds, the common case, stays small). */
struct relay_gen {
	struct relay_edir edir[2];
	struct loop_defer kick; /* preloaded bytes are flushed from the loop */
};

struct relay {
	struct loop *loop;
	relay_done_cb done;
	void *data;
	struct relay_dir dir[2]; /* relay_new: fd <-> fd */
	int fd[2];
	struct relay_gen *gen; /* relay_new_ep, else NULL */
	uint32_t max_buffered;
	int error;
	int depth;	 /* > 0 while inside our own callbacks */
	uint8_t mask[2]; /* interest registered in the loop */
	bool registered[2], parked[2], sock[2];
	bool closing, stopped;
	struct loop_defer reap; /* relay_free from inside a callback: free later */
};

/* --- per-thread pools of empty pipes and chunks --- */

static _Thread_local int pipe_pool[POOL_PIPES][2];
static _Thread_local unsigned pipe_pool_n;
static _Thread_local struct relay_chunk *chunk_pool;
static _Thread_local unsigned chunk_pool_n;
static _Thread_local unsigned char *scratch; /* SCRATCH_MAX bytes, endpoints */

static int pipe_get(struct relay_dir *d)
{
	if (pipe_pool_n > 0) {
		pipe_pool_n--;
		d->pipe_r = pipe_pool[pipe_pool_n][0];
		d->pipe_w = pipe_pool[pipe_pool_n][1];
		return 0;
	}
	int p[2];
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		return -errno;
	/* More slots mean more skb fragments per splice; refused when over
	 * pipe-max-size or the user's pipe-user-pages-soft: keep the default. */
	(void)fcntl(p[1], F_SETPIPE_SZ, RELAY_PIPE_SIZE);
	d->pipe_r = p[0];
	d->pipe_w = p[1];
	return 0;
}

/* Give back the pipe; it must be empty unless `dirty`, then it is closed. */
static void pipe_put(struct relay_dir *d, bool dirty)
{
	if (d->pipe_r < 0)
		return;
	if (!dirty && pipe_pool_n < POOL_PIPES) {
		pipe_pool[pipe_pool_n][0] = d->pipe_r;
		pipe_pool[pipe_pool_n][1] = d->pipe_w;
		pipe_pool_n++;
	} else {
		close(d->pipe_r);
		close(d->pipe_w);
	}
	d->pipe_r = d->pipe_w = -1;
	d->in_pipe = false;
}

static struct relay_chunk *chunk_get(size_t cap)
{
	for (struct relay_chunk **p = &chunk_pool; *p; p = &(*p)->next) {
		struct relay_chunk *c = *p;
		if (c->cap == cap) {
			*p = c->next;
			chunk_pool_n--;
			return c;
		}
	}
	struct relay_chunk *c = malloc(sizeof *c + cap);
	if (c)
		c->cap = cap;
	return c;
}

static void chunk_put(struct relay_dir *d)
{
	struct relay_chunk *c = d->chunk;
	if (!c)
		return;
	d->chunk = NULL;
	d->off = 0;
	c->next = chunk_pool;
	chunk_pool = c;
	if (++chunk_pool_n <= POOL_CHUNKS)
		return;
	/* full: drop the least recently used, at the tail */
	struct relay_chunk **p = &chunk_pool;
	while ((*p)->next)
		p = &(*p)->next;
	free(*p);
	*p = NULL;
	chunk_pool_n--;
}

void relay_pool_flush(void)
{
	while (pipe_pool_n > 0) {
		pipe_pool_n--;
		close(pipe_pool[pipe_pool_n][0]);
		close(pipe_pool[pipe_pool_n][1]);
	}
	while (chunk_pool) {
		struct relay_chunk *c = chunk_pool;
		chunk_pool = c->next;
		free(c);
	}
	chunk_pool_n = 0;
	free(scratch);
	scratch = NULL;
}

/* Return what an empty direction holds; a stopped one may hold bytes. */
static void dir_release(struct relay_dir *d)
{
	pipe_put(d, d->in_pipe && d->pending > 0);
	chunk_put(d);
	d->pending = 0;
}

/* --- moving bytes --- */

/* Read at most max_buffered bytes from `src` into the empty direction `d`:
 * the byte count, 0 at EOF, -EAGAIN, or another negative errno. */
static ssize_t dir_fill(struct relay *r, struct relay_dir *d, int src)
{
	size_t want = r->max_buffered;
	ssize_t n;

	if (d->splice && !d->copy && (d->pipe_r >= 0 || pipe_get(d) == 0)) {
		do
			n = splice(src, NULL, d->pipe_w, NULL, want, SPLICE_FLAGS);
		while (n < 0 && errno == EINTR);
		if (n > 0) {
			d->in_pipe = true;
			d->pending = (uint32_t)n;
			d->copy = (size_t)n < SPLICE_MIN;
			return n;
		}
		if (n == 0 || (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP))
			return n == 0 ? 0 : -errno;
		/* refused for this pair of fds: read/write from now on */
		d->splice = false;
		pipe_put(d, false);
	}
	/* no pipe to be had (EMFILE...) falls through here for this round */
	if (!d->chunk && !(d->chunk = chunk_get(want)))
		return -ENOMEM;
	do
		n = read(src, d->chunk->data, want);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	d->in_pipe = false; /* the pipe, if any, is empty */
	d->off = 0;
	d->pending = (uint32_t)n;
	d->copy = (size_t)n < SPLICE_MIN;
	return n;
}

/* splice() into the sink was refused: move the pipe's bytes to a chunk. */
static int dir_unpipe(struct relay *r, struct relay_dir *d)
{
	if (!d->chunk && !(d->chunk = chunk_get(r->max_buffered)))
		return -ENOMEM;
	size_t got = 0;
	while (got < d->pending) {
		ssize_t n = read(d->pipe_r, d->chunk->data + got, d->pending - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	pipe_put(d, false);
	d->off = 0;
	d->splice = false;
	return 0;
}

/* Write what `d` holds to `sink` until done or the sink is full.  0 (bytes
 * may remain: wait for LOOP_WRITE) or a negative errno. */
static int dir_flush(struct relay *r, struct relay_dir *d, int sink, bool sink_is_sock)
{
	while (d->pending > 0) {
		ssize_t n;
		if (d->in_pipe)
			n = splice(d->pipe_r, NULL, sink, NULL, d->pending, SPLICE_FLAGS);
		else if (sink_is_sock)
			n = send(sink, d->chunk->data + d->off, d->pending, MSG_NOSIGNAL);
		else
			n = write(sink, d->chunk->data + d->off, d->pending);
		if (n < 0) {
			int e = errno;
			if (e == EINTR)
				continue;
			if (e == EAGAIN)
				return 0;
			if (d->in_pipe && (e == EINVAL || e == ENOSYS || e == EOPNOTSUPP)) {
				int rr = dir_unpipe(r, d);
				if (rr < 0)
					return rr;
				continue;
			}
			return -e;
		}
		bool whole = (size_t)n == d->pending;
		d->pending -= (uint32_t)n;
		d->off += d->in_pipe ? 0 : (uint32_t)n;
		d->bytes += (uint64_t)n;
		if (!whole)
			return 0; /* short write: the sink is full */
	}
	return 0;
}

/* Pass EOF on to the sink. */
static int dir_shut(struct relay *r, struct relay_dir *d, int sink)
{
	d->shut = true;
	if (shutdown(sink, SHUT_WR) < 0 && errno != ENOTSOCK && errno != ENOTCONN)
		return -errno;
	/* not a socket: no half-close; the sink sees EOF when the relay is
	 * freed.  ENOTCONN: reset, the other direction will tell. */
	return 0;
}

/* Move bytes along direction i: flush what it holds, then read and flush
 * again, until the source is drained for now, the sink is full, EOF was
 * passed on, or the burst budget is spent.  0 or a fatal negative errno. */
static int dir_pump(struct relay *r, int i)
{
	struct relay_dir *d = &r->dir[i];
	int src = r->fd[i], sink = r->fd[!i];
	size_t moved = 0;
	int rounds = 0, err = 0;
	bool drained = false;

	for (;;) {
		if (d->pending > 0) {
			err = dir_flush(r, d, sink, r->sock[!i]);
			if (err < 0 || d->pending > 0)
				break;
		}
		if (d->eof) {
			if (!d->shut)
				err = dir_shut(r, d, sink);
			break;
		}
		if (drained || moved >= BURST_BYTES || ++rounds > BURST_ROUNDS)
			break;
		ssize_t n = dir_fill(r, d, src);
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			err = (int)n;
			break;
		}
		if (n == 0) {
			d->eof = true;
			continue;
		}
		if ((uint32_t)n > d->peak)
			d->peak = (uint32_t)n;
		moved += (size_t)n;
		drained = (size_t)n < r->max_buffered;
	}
	if (d->pending == 0)
		dir_release(d);
	return err;
}

/* --- loop registration --- */

static void on_event(struct loop *loop, int fd, unsigned events, void *data);

/* The interest of side s: read while its outgoing direction is empty and
 * open, write while its incoming direction holds bytes. */
static unsigned side_mask(const struct relay *r, int s)
{
	const struct relay_dir *in = &r->dir[s], *out = &r->dir[!s];
	return (!in->eof && in->pending == 0 ? LOOP_READ : 0) | (out->pending > 0 ? LOOP_WRITE : 0);
}

static int side_sync(struct relay *r, int s)
{
	unsigned m = side_mask(r, s);
	int e = 0;

	if (r->parked[s] && m == 0) {
		if (r->registered[s])
			e = loop_del_fd(r->loop, r->fd[s]);
		r->registered[s] = false;
	} else if (!r->registered[s]) {
		e = loop_add_fd(r->loop, r->fd[s], m, on_event, r);
		r->registered[s] = e == 0;
	} else if (m != r->mask[s]) {
		e = loop_mod_fd(r->loop, r->fd[s], m);
	}
	if (e == 0)
		r->mask[s] = (uint8_t)m;
	return e;
}

static void gen_stop(struct relay *r);

/* Deregister both fds and return the pipes and chunks: the relay no longer
 * touches anything but its own memory. */
static void relay_stop(struct relay *r)
{
	if (r->stopped)
		return;
	r->stopped = true;
	if (r->gen) {
		gen_stop(r);
		return;
	}
	for (int s = 0; s < 2; s++) {
		if (r->registered[s])
			loop_del_fd(r->loop, r->fd[s]);
		r->registered[s] = false;
		dir_release(&r->dir[s]);
	}
}

/* Stop and tell the owner, who may free r: touch nothing after this. */
static void relay_finish(struct relay *r, int err)
{
	if (r->stopped)
		return;
	if (err < 0 && r->error == 0)
		r->error = -err;
	relay_stop(r);
	if (r->done)
		r->done(r, r->data);
}

/* An error or hang-up on a side we wanted nothing from. */
static int side_hangup(struct relay *r, int s)
{
	int e = 0;
	socklen_t len = sizeof e;
	if (r->sock[s] && getsockopt(r->fd[s], SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e != 0)
		return -e;
	r->parked[s] = true;
	return 0;
}

static void on_event(struct loop *loop, int fd, unsigned events, void *data)
{
	struct relay *r = data;
	int s = fd == r->fd[1];
	const struct relay_dir *in = &r->dir[s], *out = &r->dir[!s];
	int err = 0;

	r->depth++;
	/* the guards drop events that an earlier callback made stale */
	if ((events & LOOP_WRITE) && out->pending > 0)
		err = dir_pump(r, !s);
	if (err == 0 && (events & LOOP_READ) && !in->eof && in->pending == 0)
		err = dir_pump(r, s);
	if (err == 0 && (events & LOOP_ERROR) && side_mask(r, s) == 0)
		err = side_hangup(r, s);
	if (err == 0 && r->dir[0].shut && r->dir[1].shut)
		relay_finish(r, 0);
	else if (err == 0 && (err = side_sync(r, 0)) == 0)
		err = side_sync(r, 1);
	if (err < 0)
		relay_finish(r, err);
	r->depth--;
}

/* --- API --- */

int relay_new(struct loop *loop, int fd_a, int fd_b, const struct relay_opts *opts,
	      relay_done_cb done, void *data, struct relay **ret)
{
	size_t max = opts && opts->max_buffered ? opts->max_buffered : RELAY_DEFAULT_BUFFERED;
	int fds[2] = {fd_a, fd_b}, fl[2];
	bool sock[2];

	if (!loop || !ret || fd_a == fd_b || max > RELAY_LIMIT_BUFFERED)
		return -EINVAL;
	for (int s = 0; s < 2; s++) {
		struct stat st;
		if (fds[s] < 0)
			return -EBADF;
		if (fstat(fds[s], &st) < 0 || (fl[s] = fcntl(fds[s], F_GETFL)) < 0)
			return -errno;
		sock[s] = S_ISSOCK(st.st_mode);
	}
	struct relay *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->loop = loop;
	r->done = done;
	r->data = data;
	r->max_buffered = (uint32_t)max;
	for (int s = 0; s < 2; s++) {
		r->fd[s] = fds[s];
		r->sock[s] = sock[s];
		r->dir[s].pipe_r = r->dir[s].pipe_w = -1;
		r->dir[s].splice = sock[0] && sock[1] && !(opts && opts->no_splice);
	}
	int e = 0;
	for (int s = 0; s < 2 && e == 0; s++) {
		if (!(fl[s] & O_NONBLOCK) && fcntl(fds[s], F_SETFL, fl[s] | O_NONBLOCK) < 0)
			e = -errno;
		else
			e = side_sync(r, s);
	}
	if (e < 0) {
		for (int s = 0; s < 2; s++) {
			if (r->registered[s])
				loop_del_fd(loop, fds[s]);
			(void)fcntl(fds[s], F_SETFL, fl[s]);
		}
		free(r);
		return e;
	}
	/* A relay forwards what it has at once; Nagle on top of the sender's
	 * own would only add delay.  Not TCP: ignored. */
	for (int s = 0; s < 2; s++)
		if (sock[s])
			(void)setsockopt(fds[s], IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	*ret = r;
	return 0;
}

static int gen_preload(struct relay *r, const void *bytes, size_t len);

int relay_preload_a(struct relay *r, const void *bytes, size_t len)
{
	struct relay_dir *d = &r->dir[0];

	if (len == 0)
		return 0;
	if (r->gen)
		return gen_preload(r, bytes, len);
	if (r->stopped || d->eof || d->in_pipe)
		return -EBUSY;
	if (len > r->max_buffered - d->pending)
		return -E2BIG;
	if (!d->chunk && !(d->chunk = chunk_get(r->max_buffered)))
		return -ENOMEM;
	memmove(d->chunk->data, d->chunk->data + d->off, d->pending);
	d->off = 0;
	memcpy(d->chunk->data + d->pending, bytes, len);
	d->pending += (uint32_t)len;
	if (d->pending > d->peak)
		d->peak = d->pending;
	int e = side_sync(r, 0);
	return e < 0 ? e : side_sync(r, 1);
}

void relay_get_stats(const struct relay *r, struct relay_stats *ret)
{
	*ret = (struct relay_stats){
	    .a_to_b = r->gen ? r->gen->edir[0].bytes : r->dir[0].bytes,
	    .b_to_a = r->gen ? r->gen->edir[1].bytes : r->dir[1].bytes,
	    .error = r->error,
	};
}

void relay_get_buffered(const struct relay *r, struct relay_buffered *ret)
{
	if (r->gen) {
		*ret = (struct relay_buffered){
		    .a_to_b = buf_len(&r->gen->edir[0].buf),
		    .b_to_a = buf_len(&r->gen->edir[1].buf),
		    .peak_a_to_b = r->gen->edir[0].peak,
		    .peak_b_to_a = r->gen->edir[1].peak,
		};
		return;
	}
	*ret = (struct relay_buffered){
	    .a_to_b = r->dir[0].pending,
	    .b_to_a = r->dir[1].pending,
	    .peak_a_to_b = r->dir[0].peak,
	    .peak_b_to_a = r->dir[1].peak,
	};
}

static void relay_release(struct relay *r)
{
	free(r->gen);
	free(r);
}

static void relay_reap(struct loop *loop, void *data)
{
	relay_release(data);
}

void relay_free(struct relay *r)
{
	if (!r || r->closing)
		return;
	r->closing = true;
	relay_stop(r);
	for (int s = 0; s < 2; s++) {
		if (r->gen) {
			struct relay_ep *ep = r->gen->edir[s].ep;
			r->gen->edir[s].ep = NULL;
			ep->ops->close(ep);
		} else {
			close(r->fd[s]);
			r->fd[s] = -1;
		}
	}
	if (r->depth > 0)
		loop_defer(r->loop, &r->reap, relay_reap, r);
	else
		relay_release(r);
}

/* --- the generic path: endpoint <-> endpoint --- */

static int scratch_get(void)
{
	if (!scratch && !(scratch = malloc(SCRATCH_MAX)))
		return -ENOMEM;
	return 0;
}

static struct relay *ep_relay(struct relay_ep *ep, int *ret_side)
{
	struct relay *r = ep->data;
	*ret_side = ep == r->gen->edir[1].ep;
	return r;
}

static void gen_stop(struct relay *r)
{
	loop_defer_cancel(r->loop, &r->gen->kick);
	for (int s = 0; s < 2; s++) {
		struct relay_edir *d = &r->gen->edir[s];
		if (d->reading)
			d->ep->ops->read_stop(d->ep);
		d->reading = false;
		buf_free(&d->buf);
	}
}

/* Write up to n bytes to the sink of direction i until it takes less than
 * offered (then direction i is blocked until the sink's writable).  The
 * bytes taken, or a negative errno. */
static ssize_t gen_write(struct relay *r, int i, const unsigned char *p, size_t n)
{
	struct relay_edir *d = &r->gen->edir[i];
	struct relay_ep *sink = r->gen->edir[!i].ep;
	size_t done = 0;

	while (done < n && !d->blocked) {
		ssize_t w = sink->ops->write(sink, p + done, n - done);
		if (w == -EAGAIN) {
			d->blocked = true;
			break;
		}
		if (w < 0)
			return w;
		if (w == 0 || (size_t)w > n - done)
			return -EIO; /* a broken endpoint */
		done += (size_t)w;
		d->bytes += (uint64_t)w;
		if (done < n)
			d->blocked = true; /* short: writable follows */
	}
	return (ssize_t)done;
}

/* n bytes just read from side i (direction i holds nothing): to the sink,
 * and what it does not take into the direction's buffer. */
static int gen_offer(struct relay *r, int i, const unsigned char *p, size_t n)
{
	ssize_t w = gen_write(r, i, p, n);
	if (w < 0)
		return (int)w;
	return (size_t)w < n ? buf_append(&r->gen->edir[i].buf, p + w, n - (size_t)w) : 0;
}

/* Flush what direction i holds if it may, pass EOF on once empty, and read
 * exactly while it holds nothing.  0 or a negative errno. */
static int gen_step(struct relay *r, int i)
{
	struct relay_edir *d = &r->gen->edir[i];
	struct relay_ep *sink = r->gen->edir[!i].ep;
	int err;

	if (buf_len(&d->buf) > 0) {
		ssize_t w = gen_write(r, i, buf_data(&d->buf), buf_len(&d->buf));
		if (w < 0)
			return (int)w;
		buf_consume(&d->buf, (size_t)w);
	}
	if (buf_len(&d->buf) == 0) {
		buf_free(&d->buf); /* idle: hold nothing */
		if (d->eof && !d->shut) {
			d->shut = true;
			if ((err = sink->ops->shutdown(sink)) < 0)
				return err;
		}
	}
	bool want = !d->eof && buf_len(&d->buf) == 0;
	if (want && !d->reading) {
		if ((err = d->ep->ops->read_start(d->ep)) < 0)
			return err;
		d->reading = true;
	} else if (!want && d->reading) {
		d->ep->ops->read_stop(d->ep);
		d->reading = false;
	}
	return 0;
}

/* The end of every callback: an error or both EOFs passed on finish the
 * relay (the owner may free it in its done callback: r stays valid until
 * the loop's deferral). */
static void gen_leave(struct relay *r, int err)
{
	if (!r->stopped) {
		if (err < 0)
			relay_finish(r, err);
		else if (r->gen->edir[0].shut && r->gen->edir[1].shut)
			relay_finish(r, 0);
	}
	r->depth--;
}

static void gen_on_alloc(struct relay_ep *ep, size_t suggested, void **ret, size_t *ret_len)
{
	int s;
	struct relay *r = ep_relay(ep, &s);
	struct relay_edir *d = &r->gen->edir[s];

	*ret = NULL;
	*ret_len = 0;
	if (r->stopped || !d->reading || d->eof || buf_len(&d->buf) > 0)
		return;
	r->depth++;
	int err = scratch_get();
	if (err == 0) {
		*ret = scratch;
		*ret_len = r->max_buffered < SCRATCH_MAX ? r->max_buffered : SCRATCH_MAX;
	}
	gen_leave(r, err);
}

static void gen_on_read(struct relay_ep *ep, size_t n)
{
	int s;
	struct relay *r = ep_relay(ep, &s);
	struct relay_edir *d = &r->gen->edir[s];
	int err = 0;

	if (r->stopped)
		return;
	r->depth++;
	if (n == 0) {
		d->eof = true;
	} else if (!d->reading || buf_len(&d->buf) > 0 || n > SCRATCH_MAX || n > r->max_buffered) {
		err = -EIO; /* bytes we did not hand out room for: a broken endpoint */
	} else {
		if ((uint32_t)n > d->peak)
			d->peak = (uint32_t)n;
		err = gen_offer(r, s, scratch, n);
	}
	if (err == 0)
		err = gen_step(r, s);
	gen_leave(r, err);
}

/* Side s can take more: the direction writing to it goes on. */
static void gen_on_writable(struct relay_ep *ep)
{
	int s;
	struct relay *r = ep_relay(ep, &s);

	if (r->stopped)
		return;
	r->depth++;
	r->gen->edir[!s].blocked = false;
	gen_leave(r, gen_step(r, !s));
}

static void gen_on_error(struct relay_ep *ep, int err)
{
	int s;
	struct relay *r = ep_relay(ep, &s);

	if (r->stopped)
		return;
	r->depth++;
	gen_leave(r, err > 0 ? -err : -EIO);
}

static void gen_on_kick(struct loop *loop, void *data)
{
	struct relay *r = data;

	if (r->stopped)
		return;
	r->depth++;
	gen_leave(r, gen_step(r, 0));
}

static const struct relay_ep_cb gen_cb = {
    .alloc = gen_on_alloc,
    .read = gen_on_read,
    .writable = gen_on_writable,
    .error = gen_on_error,
};

/* Preloaded bytes wait in direction 0's buffer, with reads from a stopped,
 * until the loop flushes them: a call from the owner never calls back. */
static int gen_preload(struct relay *r, const void *bytes, size_t len)
{
	struct relay_edir *d = &r->gen->edir[0];

	if (r->stopped || d->eof)
		return -EBUSY;
	if (len > r->max_buffered - buf_len(&d->buf))
		return -E2BIG;
	int err = buf_append(&d->buf, bytes, len);
	if (err < 0)
		return err;
	if (buf_len(&d->buf) > d->peak)
		d->peak = (uint32_t)buf_len(&d->buf);
	if (d->reading) {
		d->ep->ops->read_stop(d->ep);
		d->reading = false;
	}
	loop_defer(r->loop, &r->gen->kick, gen_on_kick, r);
	return 0;
}

int relay_new_ep(struct loop *loop, struct relay_ep *a, struct relay_ep *b,
		 const struct relay_opts *opts, relay_done_cb done, void *data, struct relay **ret)
{
	size_t max = opts && opts->max_buffered ? opts->max_buffered : RELAY_DEFAULT_BUFFERED;

	if (!loop || !a || !b || !ret || a == b || max > RELAY_LIMIT_BUFFERED)
		return -EINVAL;
	struct relay *r = calloc(1, sizeof *r);
	if (r && !(r->gen = calloc(1, sizeof *r->gen))) {
		free(r);
		r = NULL;
	}
	if (!r)
		return -ENOMEM;
	r->loop = loop;
	r->done = done;
	r->data = data;
	r->max_buffered = (uint32_t)max;
	struct relay_ep *eps[2] = {a, b};
	for (int s = 0; s < 2; s++) {
		r->gen->edir[s].ep = eps[s];
		buf_init(&r->gen->edir[s].buf, max);
		eps[s]->cb = &gen_cb;
		eps[s]->data = r;
	}
	int err = 0;
	for (int s = 0; s < 2 && err == 0; s++) {
		err = eps[s]->ops->read_start(eps[s]);
		r->gen->edir[s].reading = err == 0;
	}
	if (err < 0) {
		for (int s = 0; s < 2; s++) {
			if (r->gen->edir[s].reading)
				eps[s]->ops->read_stop(eps[s]);
			eps[s]->cb = NULL;
			eps[s]->data = NULL;
		}
		free(r->gen);
		free(r);
		return err;
	}
	*ret = r;
	return 0;
}
