/* mirror.c - see mirror.h.
 *
 * Both wrappers forward their inner endpoint's callbacks to their own
 * user with their own face, counting how deep they are in them, so that a
 * close from inside one (the relay freeing itself) frees the wrapper only
 * once the callback has returned, as relay_fd does.
 *
 * The tee's copy is an object of its own, because it outlives the tee: the
 * relay ends when the client and the pod are through, and the CLI may
 * still be taking the last bytes, or its local server still answering.  A
 * copy whose tee is gone sits on the linger list until it is finished
 * (everything sent, FIN both ways) or its linger timer fires. */
#include "k8s/mirror.h"

#include "core/list.h"
#include "core/loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* What a peer sends where nobody listens is read into this and dropped. */
static _Thread_local unsigned char discard[16384];

struct tee;

struct copy {
	struct copy *prev, *next; /* on `lingering` once the tee is gone */
	struct loop *loop;
	struct relay_ep *ep;
	struct tee *tee; /* NULL once the tee is closed */
	unsigned char *buf;
	size_t len, cap, max;
	bool in_eof;   /* inner said EOF: FIN once buf is out */
	bool shut;     /* FIN sent */
	bool peer_eof; /* the copy's peer sent FIN */
	struct loop_timer linger;
	uint32_t linger_ms;
	void (*dropped)(void *data, int err);
	void *data;
};

struct tee {
	struct relay_ep ep;
	struct relay_ep *inner;
	struct copy *copy;
	void *last; /* what the user's alloc gave: read() says how much of it is new */
	int depth;
	bool closed;
};

static struct copy *lingering;

/* Close the copy and forget it.  Its peer sees FIN+FIN closing quietly, or
 * a reset when either side has not finished. */
static void copy_free(struct copy *c)
{
	if (c->tee)
		c->tee->copy = NULL;
	else
		LIST_UNLINK(lingering, c);
	loop_timer_stop(c->loop, &c->linger);
	c->ep->ops->close(c->ep);
	free(c->buf);
	free(c);
}

static void copy_drop(struct copy *c, int err)
{
	if (c->dropped)
		c->dropped(c->data, err);
	copy_free(c);
}

static void copy_maybe_done(struct copy *c)
{
	if (!c->tee && c->shut && c->peer_eof && c->len == 0)
		copy_free(c);
}

static void copy_shut_if_due(struct copy *c)
{
	if (c->in_eof && !c->shut && c->len == 0) {
		c->shut = true;
		(void)c->ep->ops->shutdown(c->ep);
	}
}

/* 0, or the copy was dropped (-1). */
static int copy_feed(struct copy *c, const unsigned char *p, size_t n)
{
	if (c->len == 0) { /* no writable owed: write now */
		ssize_t w = c->ep->ops->write(c->ep, p, n);
		if (w == -EAGAIN)
			w = 0;
		if (w < 0) {
			copy_drop(c, (int)-w);
			return -1;
		}
		p += w;
		n -= (size_t)w;
		if (n == 0)
			return 0;
	}
	if (n > c->max - c->len) {
		copy_drop(c, ENOBUFS);
		return -1;
	}
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap : 16384;
		while (cap < c->len + n)
			cap *= 2;
		if (cap > c->max)
			cap = c->max;
		unsigned char *b = realloc(c->buf, cap);
		if (!b) {
			copy_drop(c, ENOMEM);
			return -1;
		}
		c->buf = b;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, p, n);
	c->len += n;
	return 0;
}

static void copy_on_alloc(struct relay_ep *ep, size_t suggested, void **ret, size_t *ret_len)
{
	*ret = discard;
	*ret_len = sizeof discard;
}

static void copy_on_read(struct relay_ep *ep, size_t n)
{
	struct copy *c = ep->data;
	if (n)
		return; /* the CLI's replies: nobody wants them */
	c->peer_eof = true;
	copy_maybe_done(c);
}

static void copy_on_writable(struct relay_ep *ep)
{
	struct copy *c = ep->data;
	if (c->len == 0)
		return;
	ssize_t w = c->ep->ops->write(c->ep, c->buf, c->len);
	if (w == -EAGAIN)
		return; /* another writable is owed */
	if (w < 0) {
		copy_drop(c, (int)-w);
		return;
	}
	memmove(c->buf, c->buf + w, c->len - (size_t)w);
	c->len -= (size_t)w;
	if (c->len)
		return;
	free(c->buf); /* drained: an idle copy holds no buffer */
	c->buf = NULL;
	c->cap = 0;
	copy_shut_if_due(c);
	copy_maybe_done(c);
}

static void copy_on_error(struct relay_ep *ep, int err)
{
	copy_drop(ep->data, err);
}

static const struct relay_ep_cb copy_cb = {copy_on_alloc, copy_on_read, copy_on_writable,
					   copy_on_error};

static void linger_expired(struct loop *loop, void *data)
{
	copy_free(data);
}

void mirror_linger_flush(void)
{
	while (lingering)
		copy_free(lingering);
}

/* --- the tee --- */

static void tee_leave(struct tee *t)
{
	if (--t->depth == 0 && t->closed)
		free(t);
}

static void tee_on_alloc(struct relay_ep *ep, size_t suggested, void **ret, size_t *ret_len)
{
	struct tee *t = ep->data;
	t->depth++;
	t->ep.cb->alloc(&t->ep, suggested, ret, ret_len);
	t->last = *ret;
	tee_leave(t);
}

static void tee_on_read(struct relay_ep *ep, size_t n)
{
	struct tee *t = ep->data;
	t->depth++;
	if (t->copy && n > 0)
		(void)copy_feed(t->copy, t->last, n);
	else if (t->copy) {
		t->copy->in_eof = true;
		copy_shut_if_due(t->copy);
	}
	t->ep.cb->read(&t->ep, n);
	tee_leave(t);
}

static void tee_on_writable(struct relay_ep *ep)
{
	struct tee *t = ep->data;
	t->depth++;
	t->ep.cb->writable(&t->ep);
	tee_leave(t);
}

static void tee_on_error(struct relay_ep *ep, int err)
{
	struct tee *t = ep->data;
	t->depth++;
	t->ep.cb->error(&t->ep, err);
	tee_leave(t);
}

static const struct relay_ep_cb tee_inner_cb = {tee_on_alloc, tee_on_read, tee_on_writable,
						tee_on_error};

static int tee_read_start(struct relay_ep *ep)
{
	struct tee *t = (struct tee *)ep;
	return t->inner->ops->read_start(t->inner);
}

static void tee_read_stop(struct relay_ep *ep)
{
	struct tee *t = (struct tee *)ep;
	t->inner->ops->read_stop(t->inner);
}

static ssize_t tee_write(struct relay_ep *ep, const void *bytes, size_t len)
{
	struct tee *t = (struct tee *)ep;
	return t->inner->ops->write(t->inner, bytes, len);
}

static int tee_shutdown(struct relay_ep *ep)
{
	struct tee *t = (struct tee *)ep;
	return t->inner->ops->shutdown(t->inner);
}

static void tee_close(struct relay_ep *ep)
{
	struct tee *t = (struct tee *)ep;
	struct copy *c = t->copy;
	t->closed = true;
	t->inner->ops->close(t->inner);
	if (c && !c->in_eof) {
		copy_free(c); /* the connection was cut: so is its copy */
	} else if (c) {
		c->tee = NULL;
		t->copy = NULL;
		LIST_PUSH(lingering, c);
		loop_timer_start(c->loop, &c->linger, c->linger_ms, linger_expired, c);
		copy_maybe_done(c);
	}
	if (t->depth == 0)
		free(t);
}

static const struct relay_ep_ops tee_ops = {tee_read_start, tee_read_stop, tee_write, tee_shutdown,
					    tee_close};

int mirror_tee_new(struct loop *loop, struct relay_ep *inner, struct relay_ep *copy,
		   const void *first, size_t len, const struct mirror_tee_opts *opts,
		   struct relay_ep **ret)
{
	struct tee *t = calloc(1, sizeof *t);
	struct copy *c = calloc(1, sizeof *c);
	if (!t || !c) {
		free(t);
		free(c);
		return -ENOMEM;
	}
	c->loop = loop;
	c->ep = copy;
	c->tee = t;
	c->max = opts && opts->max_pending ? opts->max_pending : MIRROR_MAX_PENDING;
	c->linger_ms = opts && opts->linger_ms ? opts->linger_ms : MIRROR_LINGER_MS;
	if (opts) {
		c->dropped = opts->dropped;
		c->data = opts->data;
	}
	if (len && len <= c->max) {
		c->buf = malloc(len);
		if (!c->buf) {
			free(t);
			free(c);
			return -ENOMEM;
		}
		memcpy(c->buf, first, len);
		c->len = c->cap = len;
	}
	t->ep.ops = &tee_ops;
	t->inner = inner;
	t->copy = c;
	inner->cb = &tee_inner_cb;
	inner->data = t;
	copy->cb = &copy_cb;
	copy->data = c;
	/* the first bytes go out as soon as the copy says it can take them */
	ssize_t w = c->len ? copy->ops->write(copy, c->buf, c->len) : 0;
	if (w > 0) {
		memmove(c->buf, c->buf + w, c->len - (size_t)w);
		c->len -= (size_t)w;
	}
	if (c->len == 0) {
		free(c->buf);
		c->buf = NULL;
		c->cap = 0;
	}
	int err = w < 0 && w != -EAGAIN ? (int)w : copy->ops->read_start(copy);
	if (err < 0) {
		/* the copy is broken from the start: the tee is just inner */
		copy->ops->close(copy);
		free(c->buf);
		free(c);
		t->copy = NULL;
	}
	*ret = &t->ep;
	return 0;
}

/* --- the sink --- */

struct sink {
	struct relay_ep ep;
	struct relay_ep *inner;
	int depth;
	bool closed;
};

static void sink_leave(struct sink *s)
{
	if (--s->depth == 0 && s->closed)
		free(s);
}

static void sink_on_alloc(struct relay_ep *ep, size_t suggested, void **ret, size_t *ret_len)
{
	struct sink *s = ep->data;
	s->depth++;
	s->ep.cb->alloc(&s->ep, suggested, ret, ret_len);
	sink_leave(s);
}

static void sink_on_read(struct relay_ep *ep, size_t n)
{
	struct sink *s = ep->data;
	s->depth++;
	s->ep.cb->read(&s->ep, n);
	sink_leave(s);
}

static void sink_on_writable(struct relay_ep *ep)
{
	/* nothing is ever written to inner: nothing is owed */
}

static void sink_on_error(struct relay_ep *ep, int err)
{
	struct sink *s = ep->data;
	s->depth++;
	s->ep.cb->error(&s->ep, err);
	sink_leave(s);
}

static const struct relay_ep_cb sink_inner_cb = {sink_on_alloc, sink_on_read, sink_on_writable,
						 sink_on_error};

static int sink_read_start(struct relay_ep *ep)
{
	struct sink *s = (struct sink *)ep;
	return s->inner->ops->read_start(s->inner);
}

static void sink_read_stop(struct relay_ep *ep)
{
	struct sink *s = (struct sink *)ep;
	s->inner->ops->read_stop(s->inner);
}

static ssize_t sink_write(struct relay_ep *ep, const void *bytes, size_t len)
{
	return (ssize_t)len; /* the local server's answers: thrown away */
}

static int sink_shutdown(struct relay_ep *ep)
{
	struct sink *s = (struct sink *)ep;
	return s->inner->ops->shutdown(s->inner);
}

static void sink_close(struct relay_ep *ep)
{
	struct sink *s = (struct sink *)ep;
	s->closed = true;
	s->inner->ops->close(s->inner);
	if (s->depth == 0)
		free(s);
}

static const struct relay_ep_ops sink_ops = {sink_read_start, sink_read_stop, sink_write,
					     sink_shutdown, sink_close};

int mirror_sink_new(struct relay_ep *inner, struct relay_ep **ret)
{
	struct sink *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->ep.ops = &sink_ops;
	s->inner = inner;
	inner->cb = &sink_inner_cb;
	inner->data = s;
	*ret = &s->ep;
	return 0;
}
