/* relay_fd.c - the fd endpoint of core/relay (relay.h, "endpoints").
 *
 * One connected stream fd on the loop.  Its interest is exactly what its
 * user wants: LOOP_READ while reading (until EOF), LOOP_WRITE after a write
 * that took less than offered, until the fd is writable again.  Like the
 * fd <-> fd relay, an fd with an empty interest stays registered, so a
 * reset on an idle half-closed connection is still reported (EPOLLERR;
 * SO_ERROR says which), and a hung-up fd with nothing to do is taken out
 * of epoll ("parked") instead of waking the loop forever.
 *
 * Reads are level-triggered bursts: until a read comes back short (the fd
 * is drained for now: epoll says so again if more arrives), or
 * BURST_BYTES / BURST_ROUNDS, so one busy endpoint cannot starve the loop.
 *
 * Closed from inside its own callback, the endpoint closes the fd at once
 * and frees itself when the callback returns. */
#include "core/loop.h"
#include "core/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_SUGGESTED ((size_t)64 * 1024)
#define BURST_BYTES    ((size_t)1024 * 1024)
#define BURST_ROUNDS   16

struct ep_fd {
	struct relay_ep ep;
	struct loop *loop;
	int fd;
	int depth;    /* > 0 while inside our own event callback */
	uint8_t mask; /* interest registered in the loop */
	bool sock, registered, parked;
	bool reading;	 /* between read_start and read_stop */
	bool want_write; /* a write was short: writable is owed */
	bool eof;	 /* read() said 0 */
	bool failed;	 /* an error was reported (or returned by write) */
	bool closed;
};

static void ep_fd_on_event(struct loop *loop, int fd, unsigned events, void *data);

static unsigned ep_fd_mask(const struct ep_fd *e)
{
	if (e->closed || e->failed)
		return 0;
	return (e->reading && !e->eof ? LOOP_READ : 0) | (e->want_write ? LOOP_WRITE : 0);
}

static int ep_fd_sync(struct ep_fd *e)
{
	unsigned m = ep_fd_mask(e);
	int err = 0;

	if (e->closed)
		return 0;
	/* failed: nothing more is wanted from it, and a hang-up must not wake
	 * the loop forever */
	if ((e->parked || e->failed) && m == 0) {
		if (e->registered)
			err = loop_del_fd(e->loop, e->fd);
		e->registered = false;
	} else if (!e->registered) {
		err = loop_add_fd(e->loop, e->fd, m, ep_fd_on_event, e);
		e->registered = err == 0;
	} else if (m != e->mask) {
		err = loop_mod_fd(e->loop, e->fd, m);
	}
	if (err == 0)
		e->mask = (uint8_t)m;
	return err;
}

/* Report a failure once; nothing follows it. */
static void ep_fd_fail(struct ep_fd *e, int err)
{
	if (e->failed || e->closed)
		return;
	e->failed = true;
	(void)ep_fd_sync(e);
	if (e->ep.cb) /* no user yet: it hears of it from its first call */
		e->ep.cb->error(&e->ep, err);
}

static bool ep_fd_live(const struct ep_fd *e)
{
	return !e->closed && !e->failed;
}

static void ep_fd_read_burst(struct ep_fd *e)
{
	size_t moved = 0;

	for (int rounds = 0; rounds < BURST_ROUNDS && moved < BURST_BYTES; rounds++) {
		if (!ep_fd_live(e) || !e->reading || e->eof)
			return;
		void *p = NULL;
		size_t room = 0;
		e->ep.cb->alloc(&e->ep, READ_SUGGESTED, &p, &room);
		if (!ep_fd_live(e) || !e->reading || room == 0)
			return;
		ssize_t n;
		do
			n = read(e->fd, p, room);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			if (errno != EAGAIN)
				ep_fd_fail(e, errno);
			return;
		}
		if (n == 0) {
			e->eof = true;
			e->ep.cb->read(&e->ep, 0);
			return;
		}
		moved += (size_t)n;
		e->ep.cb->read(&e->ep, (size_t)n);
		if ((size_t)n < room)
			return; /* drained for now */
	}
}

static void ep_fd_on_event(struct loop *loop, int fd, unsigned events, void *data)
{
	struct ep_fd *e = data;

	e->depth++;
	/* the guards drop events that an earlier callback made stale */
	if ((events & LOOP_WRITE) && e->want_write && ep_fd_live(e)) {
		e->want_write = false;
		e->ep.cb->writable(&e->ep);
	}
	if ((events & LOOP_READ) && e->reading && !e->eof && ep_fd_live(e))
		ep_fd_read_burst(e);
	if ((events & LOOP_ERROR) && ep_fd_live(e) && ep_fd_mask(e) == 0) {
		/* an error or hang-up on an fd we want nothing from */
		int err = 0;
		socklen_t len = sizeof err;
		if (e->sock && getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
			ep_fd_fail(e, err);
		else
			e->parked = true;
	}
	if (ep_fd_live(e)) {
		int err = ep_fd_sync(e);
		if (err < 0)
			ep_fd_fail(e, -err);
	}
	e->depth--;
	if (e->closed && e->depth == 0)
		free(e);
}

static int ep_fd_read_start(struct relay_ep *ep)
{
	struct ep_fd *e = (struct ep_fd *)ep;
	if (!ep_fd_live(e))
		return -EPIPE;
	bool was = e->reading;
	e->reading = true;
	int err = ep_fd_sync(e);
	if (err < 0)
		e->reading = was;
	return err;
}

static void ep_fd_read_stop(struct relay_ep *ep)
{
	struct ep_fd *e = (struct ep_fd *)ep;
	e->reading = false;
	/* A failed epoll_ctl leaves LOOP_READ set: its events are dropped by
	 * the `reading` guard. */
	(void)ep_fd_sync(e);
}

static ssize_t ep_fd_write(struct relay_ep *ep, const void *bytes, size_t len)
{
	struct ep_fd *e = (struct ep_fd *)ep;
	ssize_t n;

	if (!ep_fd_live(e))
		return -EPIPE;
	do
		n = e->sock ? send(e->fd, bytes, len, MSG_NOSIGNAL) : write(e->fd, bytes, len);
	while (n < 0 && errno == EINTR);
	int err = 0;
	if (n < 0 && errno != EAGAIN) {
		/* returned, so not reported again */
		err = -errno;
		e->failed = true;
		(void)ep_fd_sync(e);
		return err;
	}
	if (n < 0 || (size_t)n < len) {
		e->want_write = true;
		if ((err = ep_fd_sync(e)) < 0) {
			e->failed = true;
			return err;
		}
	}
	return n < 0 ? -EAGAIN : n;
}

static int ep_fd_shutdown(struct relay_ep *ep)
{
	struct ep_fd *e = (struct ep_fd *)ep;
	if (e->closed)
		return -EPIPE;
	/* Not a socket: no half-close; the other end sees EOF when the fd is
	 * closed.  ENOTCONN: reset, which the other direction will tell. */
	if (shutdown(e->fd, SHUT_WR) < 0 && errno != ENOTSOCK && errno != ENOTCONN)
		return -errno;
	return 0;
}

static void ep_fd_close(struct relay_ep *ep)
{
	struct ep_fd *e = (struct ep_fd *)ep;
	if (e->closed)
		return;
	if (e->registered)
		loop_del_fd(e->loop, e->fd);
	e->registered = false;
	close(e->fd);
	e->fd = -1;
	e->closed = true;
	if (e->depth == 0)
		free(e);
}

static const struct relay_ep_ops ep_fd_ops = {
    .read_start = ep_fd_read_start,
    .read_stop = ep_fd_read_stop,
    .write = ep_fd_write,
    .shutdown = ep_fd_shutdown,
    .close = ep_fd_close,
};

int relay_ep_fd_new(struct loop *loop, int fd, struct relay_ep **ret)
{
	struct stat st;
	int fl;

	if (!loop || !ret)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	if (fstat(fd, &st) < 0 || (fl = fcntl(fd, F_GETFL)) < 0)
		return -errno;
	struct ep_fd *e = calloc(1, sizeof *e);
	if (!e)
		return -ENOMEM;
	e->ep.ops = &ep_fd_ops;
	e->loop = loop;
	e->fd = fd;
	e->sock = S_ISSOCK(st.st_mode);
	int err = 0;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		err = -errno;
	if (err == 0) {
		/* registered at once, with no interest: errors are seen, and an fd
		 * epoll refuses (a regular file) is refused here */
		err = loop_add_fd(loop, fd, 0, ep_fd_on_event, e);
		e->registered = err == 0;
	}
	if (err < 0) {
		(void)fcntl(fd, F_SETFL, fl);
		free(e);
		return err;
	}
	/* A relay forwards what it has at once; Nagle on top of the sender's
	 * own would only add delay.  Not TCP: ignored. */
	if (e->sock)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	*ret = &e->ep;
	return 0;
}
