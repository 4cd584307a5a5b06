/* loop.c - epoll event loop; see loop.h. */
#include "core/loop.h"
#include "core/util.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct fd_entry {
	loop_fd_cb cb;
	void *data;
	unsigned events;
	uint32_t gen; /* bumped on every add/del: stale batch events are dropped */
	bool used;
};

struct loop_timer {
	uint64_t when;
	uint64_t seq; /* FIFO order among equal deadlines */
	size_t idx;   /* position in the heap */
	loop_timer_cb cb;
	void *data;
};

struct loop {
	int epfd;
	struct fd_entry *fds;
	size_t nfds;
	struct loop_timer **heap;
	size_t nheap, capheap;
	uint64_t seq;
	int sigfd;
	loop_signal_cb sig_cb;
	void *sig_data;
	loop_hook_cb before_sleep;
	void *before_sleep_data;
	struct loop_defer *defer_head, *defer_tail;
	bool stop;
	uint64_t wakeups;
};

int loop_new(struct loop **ret)
{
	struct loop *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int e = -errno;
		free(l);
		return e;
	}
	l->sigfd = -1;
	*ret = l;
	return 0;
}

static void run_deferred(struct loop *l);

void loop_free(struct loop *l)
{
	if (!l)
		return;
	/* A deferral armed just before loop_stop (an object freed from its own
	 * callback, then the loop stopped) still runs: none is ever lost. */
	l->stop = false;
	run_deferred(l);
	for (size_t i = 0; i < l->nheap; i++)
		free(l->heap[i]);
	free(l->heap);
	free(l->fds);
	if (l->sigfd >= 0)
		close(l->sigfd);
	close(l->epfd);
	free(l);
}

static uint32_t to_epoll(unsigned ev)
{
	return (ev & LOOP_READ ? EPOLLIN | EPOLLRDHUP : 0) | (ev & LOOP_WRITE ? EPOLLOUT : 0);
}

static int grow_fds(struct loop *l, int fd)
{
	if ((size_t)fd < l->nfds)
		return 0;
	size_t n = l->nfds ? l->nfds : 64;
	while (n <= (size_t)fd)
		n *= 2;
	struct fd_entry *f = realloc(l->fds, n * sizeof *f);
	if (!f)
		return -ENOMEM;
	memset(f + l->nfds, 0, (n - l->nfds) * sizeof *f);
	l->fds = f;
	l->nfds = n;
	return 0;
}

static uint64_t pack(int fd, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}

int loop_add_fd(struct loop *l, int fd, unsigned events, loop_fd_cb cb, void *data)
{
	if (fd < 0)
		return -EBADF;
	int r = grow_fds(l, fd);
	if (r < 0)
		return r;
	struct fd_entry *e = &l->fds[fd];
	if (e->used)
		return -EEXIST;
	e->gen++;
	struct epoll_event ev = {.events = to_epoll(events), .data.u64 = pack(fd, e->gen)};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	e->cb = cb;
	e->data = data;
	e->events = events;
	e->used = true;
	return 0;
}

int loop_mod_fd(struct loop *l, int fd, unsigned events)
{
	if (fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd].used)
		return -ENOENT;
	struct fd_entry *e = &l->fds[fd];
	if (e->events == events)
		return 0;
	struct epoll_event ev = {.events = to_epoll(events), .data.u64 = pack(fd, e->gen)};
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	e->events = events;
	return 0;
}

int loop_del_fd(struct loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd].used)
		return -ENOENT;
	struct fd_entry *e = &l->fds[fd];
	e->used = false;
	e->gen++;
	if (epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF)
		return -errno;
	return 0;
}

/* --- timers: a binary min-heap on (when, seq) --- */

static bool timer_less(const struct loop_timer *a, const struct loop_timer *b)
{
	return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_set(struct loop *l, size_t i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->idx = i;
}

static void heap_up(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!timer_less(t, l->heap[p]))
			break;
		heap_set(l, i, l->heap[p]);
		i = p;
	}
	heap_set(l, i, t);
}

static void heap_down(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= l->nheap)
			break;
		if (c + 1 < l->nheap && timer_less(l->heap[c + 1], l->heap[c]))
			c++;
		if (!timer_less(l->heap[c], t))
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

static void heap_remove(struct loop *l, struct loop_timer *t)
{
	size_t i = t->idx;
	struct loop_timer *last = l->heap[--l->nheap];
	if (last == t)
		return;
	heap_set(l, i, last);
	heap_up(l, i);
	heap_down(l, last->idx);
}

int loop_timer_add(struct loop *l, uint64_t ms, loop_timer_cb cb, void *data,
		   struct loop_timer **ret)
{
	if (l->nheap == l->capheap) {
		size_t n = l->capheap ? l->capheap * 2 : 16;
		struct loop_timer **h = realloc(l->heap, n * sizeof *h);
		if (!h)
			return -ENOMEM;
		l->heap = h;
		l->capheap = n;
	}
	struct loop_timer *t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	t->when = now_mono_ms() + ms;
	t->seq = l->seq++;
	t->cb = cb;
	t->data = data;
	heap_set(l, l->nheap++, t);
	heap_up(l, t->idx);
	if (ret)
		*ret = t;
	return 0;
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	if (!t)
		return;
	heap_remove(l, t);
	free(t);
}

static void run_timers(struct loop *l)
{
	uint64_t now = now_mono_ms();
	/* Only timers due now: one added by a callback for 0 ms runs on the
	 * next iteration, after I/O, so timers cannot starve the fds. */
	uint64_t limit = l->seq;
	while (l->nheap > 0 && l->heap[0]->when <= now && l->heap[0]->seq < limit && !l->stop) {
		struct loop_timer *t = l->heap[0];
		heap_remove(l, t);
		t->cb(l, t->data);
		free(t);
	}
}

/* --- signals --- */

static void on_signalfd(struct loop *l, int fd, unsigned events, void *data)
{
	struct signalfd_siginfo si;
	for (;;) {
		ssize_t r = read(fd, &si, sizeof si);
		if (r != (ssize_t)sizeof si)
			break;
		l->sig_cb(l, (int)si.ssi_signo, l->sig_data);
	}
}

int loop_watch_signals(struct loop *l, const int *signals, loop_signal_cb cb, void *data)
{
	sigset_t set;
	sigemptyset(&set);
	for (const int *s = signals; *s; s++)
		sigaddset(&set, *s);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	l->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (l->sigfd < 0)
		return -errno;
	l->sig_cb = cb;
	l->sig_data = data;
	return loop_add_fd(l, l->sigfd, LOOP_READ, on_signalfd, NULL);
}

/* --- deferred calls: a FIFO of embedded nodes --- */

void loop_defer(struct loop *l, struct loop_defer *d, loop_hook_cb cb, void *data)
{
	d->cb = cb;
	d->data = data;
	if (d->armed)
		return;
	d->armed = 1;
	d->next = NULL;
	d->prev = l->defer_tail;
	if (l->defer_tail)
		l->defer_tail->next = d;
	else
		l->defer_head = d;
	l->defer_tail = d;
}

void loop_defer_cancel(struct loop *l, struct loop_defer *d)
{
	if (!d->armed)
		return;
	if (d->prev)
		d->prev->next = d->next;
	else
		l->defer_head = d->next;
	if (d->next)
		d->next->prev = d->prev;
	else
		l->defer_tail = d->prev;
	d->prev = d->next = NULL;
	d->armed = 0;
}

static void run_deferred(struct loop *l)
{
	/* A callback may free its owner (and so its node): unlink first. */
	while (l->defer_head && !l->stop) {
		struct loop_defer *d = l->defer_head;
		loop_defer_cancel(l, d);
		d->cb(l, d->data);
	}
}

void loop_set_before_sleep(struct loop *l, loop_hook_cb cb, void *data)
{
	l->before_sleep = cb;
	l->before_sleep_data = data;
}

void loop_stop(struct loop *l)
{
	l->stop = true;
}

uint64_t loop_wakeups(const struct loop *l)
{
	return l->wakeups;
}

int loop_run(struct loop *l)
{
	struct epoll_event evs[64];
	l->stop = false;
	while (!l->stop) {
		run_deferred(l);
		if (l->stop)
			break;
		if (l->before_sleep)
			l->before_sleep(l, l->before_sleep_data);
		if (l->stop)
			break;
		int timeout = -1;
		if (l->defer_head) {
			timeout = 0; /* armed by before_sleep */
		} else if (l->nheap > 0) {
			uint64_t now = now_mono_ms(), when = l->heap[0]->when;
			timeout = when <= now
				      ? 0
				      : (when - now > 86400000u ? 86400000 : (int)(when - now));
		}
		int n = epoll_wait(l->epfd, evs, (int)ARRAY_SIZE(evs), timeout);
		l->wakeups++;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n && !l->stop; i++) {
			int fd = (int)(uint32_t)evs[i].data.u64;
			uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
			if ((size_t)fd >= l->nfds)
				continue;
			struct fd_entry *e = &l->fds[fd];
			if (!e->used || e->gen != gen)
				continue; /* removed by an earlier callback in this batch */
			unsigned ev = 0;
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP))
				ev |= LOOP_READ;
			if (evs[i].events & EPOLLOUT)
				ev |= LOOP_WRITE;
			if (evs[i].events & (EPOLLERR | EPOLLHUP))
				ev |= LOOP_ERROR | (e->events & (LOOP_READ | LOOP_WRITE));
			e->cb(l, fd, ev, e->data);
		}
		run_timers(l);
	}
	return 0;
}
