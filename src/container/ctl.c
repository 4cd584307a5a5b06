/* ctl.c - see ctl.h. */
#include "container/ctl.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/util.h"
#include "proto/dbr.h"
#include "proto/jsonl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct ctl_conn {
	struct loop *loop;
	int fd;
	struct jsonl_reader *rd;
	const struct ctl_ops *ops;
	void *data;
	struct buf out; /* what the peer has not taken yet, at most CTL_MAX_OUT */
	int bad_lines;
	int depth;	  /* > 0 while inside our own callbacks */
	bool dead;	  /* freed by the owner while depth > 0 */
	bool closed_sent; /* ops->closed already called */
	bool failed;	  /* a send failed: closed is reported from `later` */
	int fail_err;
	struct loop_defer later;
};

static void conn_release(struct ctl_conn *c)
{
	loop_defer_cancel(c->loop, &c->later);
	if (c->fd >= 0) {
		loop_del_fd(c->loop, c->fd);
		close(c->fd);
	}
	jsonl_reader_free(c->rd);
	buf_free(&c->out);
	free(c);
}

static void report_closed(struct ctl_conn *c, int err)
{
	if (c->closed_sent)
		return;
	c->closed_sent = true;
	if (c->fd >= 0)
		loop_del_fd(c->loop, c->fd);
	c->ops->closed(c, err, c->data);
}

static void on_failed_later(struct loop *l, void *data)
{
	struct ctl_conn *c = data;
	c->depth++;
	report_closed(c, c->fail_err);
	c->depth--;
	if (c->dead && c->depth == 0)
		conn_release(c);
}

/* A send cannot go on (the peer does not read, or the socket failed).  The
 * caller of ctl_send may hold pointers into the owner's objects, so the
 * owner hears of it from the loop, never from inside the send. */
static void fail_later(struct ctl_conn *c, int err)
{
	if (c->failed || c->closed_sent)
		return;
	c->failed = true;
	c->fail_err = err;
	if (c->fd >= 0)
		loop_del_fd(c->loop, c->fd); /* read nothing more from it */
	loop_defer(c->loop, &c->later, on_failed_later, c);
}

static bool on_line(void *data, enum jsonl_event ev, const char *line, size_t len)
{
	struct ctl_conn *c = data;
	if (c->dead || c->closed_sent || c->failed)
		return false;
	if (ev == JSONL_TOO_LONG) {
		c->ops->bad(c, line, len, "line longer than 65536 bytes", c->data);
	} else {
		struct dbr_msg m;
		char err[256];
		if (dbr_parse(line, len, &m, err, sizeof err) == 0) {
			c->bad_lines = 0;
			c->ops->msg(c, &m, c->data);
			dbr_msg_clear(&m);
			return !c->dead && !c->closed_sent && !c->failed;
		}
		c->ops->bad(c, line, len, err, c->data);
	}
	if (!c->dead && !c->closed_sent && !c->failed && ++c->bad_lines > CTL_MAX_BAD_LINES)
		report_closed(c, EPROTO);
	return !c->dead && !c->closed_sent && !c->failed;
}

static int flush_out(struct ctl_conn *c)
{
	while (buf_len(&c->out) > 0) {
		ssize_t w = write(c->fd, buf_data(&c->out), buf_len(&c->out));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		buf_consume(&c->out, (size_t)w);
	}
	return 0;
}

static void on_io(struct loop *l, int fd, unsigned events, void *data)
{
	struct ctl_conn *c = data;
	c->depth++;
	if (events & LOOP_WRITE) {
		int r = flush_out(c);
		if (r == 0 && buf_len(&c->out) == 0)
			r = loop_mod_fd(l, fd, LOOP_READ);
		if (r < 0)
			report_closed(c, -r);
	}
	if ((events & LOOP_READ) && !c->dead && !c->closed_sent && !c->failed) {
		int r = jsonl_read(c->rd, fd, on_line, c);
		if (r < 0 && r != -ECANCELED)
			report_closed(c, r == -EPIPE ? 0 : -r);
	}
	c->depth--;
	if (c->dead && c->depth == 0)
		conn_release(c);
}

int ctl_conn_new(struct loop *loop, int fd, const struct ctl_ops *ops, void *data,
		 struct ctl_conn **ret)
{
	struct ctl_conn *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->loop = loop;
	c->fd = fd;
	c->ops = ops;
	c->data = data;
	buf_init(&c->out, CTL_MAX_OUT);
	int r = jsonl_reader_new(JSONL_MAX_LINE, &c->rd);
	if (r == 0)
		r = fd_set_nonblock(fd, true);
	if (r == 0)
		r = loop_add_fd(loop, fd, LOOP_READ, on_io, c);
	if (r < 0) {
		c->fd = -1; /* the fd stays the caller's on failure */
		jsonl_reader_free(c->rd);
		free(c);
		return r;
	}
	*ret = c;
	return 0;
}

int ctl_send(struct ctl_conn *c, const struct dbr_msg *m)
{
	if (c->dead || c->closed_sent || c->failed)
		return -EPIPE;
	size_t len;
	char *line = dbr_format(m, &len);
	if (!line)
		return -ENOMEM;
	/* Only what the peer has not taken yet counts against the cap. */
	int r = buf_append(&c->out, line, len);
	free(line);
	if (r == -ENOBUFS) {
		fail_later(c, ENOBUFS);
		return -ENOBUFS;
	}
	if (r < 0)
		return r;
	r = flush_out(c);
	if (r < 0) {
		fail_later(c, -r);
		return r;
	}
	if (buf_len(&c->out) > 0 && (r = loop_mod_fd(c->loop, c->fd, LOOP_READ | LOOP_WRITE)) < 0) {
		fail_later(c, -r);
		return r;
	}
	return 0;
}

void ctl_conn_free(struct ctl_conn *c)
{
	if (!c)
		return;
	if (c->depth > 0) {
		c->dead = true;
		if (c->fd >= 0)
			loop_del_fd(c->loop, c->fd);
		return;
	}
	conn_release(c);
}

int ctl_conn_fd(const struct ctl_conn *c)
{
	return c->fd;
}

void *ctl_conn_data(const struct ctl_conn *c)
{
	return c->data;
}

void ctl_conn_set_data(struct ctl_conn *c, void *data)
{
	c->data = data;
}
