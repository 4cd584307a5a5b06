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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct fd_entry {
	loop_fd_cb cb;
	void *data;
	unsigned events;
	uint32_t gen; /* bumped on every add/del: stale batch events are dropped */
	bool used;
};

struct loop {
	int epfd;
	struct fd_entry *fds;
	size_t nfds;
	struct loop_timer *timers; /* the heap's root, the earliest deadline */
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

/* --- timers: an intrusive pairing heap on (when, seq) ---
 *
 * Fredman, Sedgewick, Sleator and Tarjan's pairing heap: insert and meld
 * are O(1) and need no memory (the nodes are the embedded timers), delete
 * is O(log n) amortised.  Each node keeps its first child, its next
 * sibling, and prev: its previous sibling, or its parent when it is the
 * first child, so any node can be unlinked (loop_timer_stop). */

static bool timer_less(const struct loop_timer *a, const struct loop_timer *b)
{
	return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

/* Two detached roots -> one root (detached). */
static struct loop_timer *meld(struct loop_timer *a, struct loop_timer *b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	if (timer_less(b, a)) {
		struct loop_timer *t = a;
		a = b;
		b = t;
	}
	b->prev = a;
	b->next = a->child;
	if (a->child)
		a->child->prev = b;
	a->child = b;
	a->next = a->prev = NULL;
	return a;
}

/* A list of siblings -> one root: meld pairs left to right, then the
 * results right to left (the two-pass variant, iterative: no recursion
 * however many timers share a parent). */
static struct loop_timer *merge_pairs(struct loop_timer *first)
{
	struct loop_timer *acc = NULL; /* the pairs' results, last first */
	while (first) {
		struct loop_timer *a = first, *b = a->next;
		first = b ? b->next : NULL;
		a->next = a->prev = NULL;
		if (b)
			b->next = b->prev = NULL;
		struct loop_timer *m = meld(a, b);
		m->next = acc;
		acc = m;
	}
	struct loop_timer *root = NULL;
	while (acc) {
		struct loop_timer *n = acc->next;
		acc->next = NULL;
		root = meld(root, acc);
		acc = n;
	}
	return root;
}

static void heap_remove(struct loop *l, struct loop_timer *t)
{
	if (t == l->timers) {
		l->timers = merge_pairs(t->child);
	} else {
		if (t->prev->child == t)
			t->prev->child = t->next;
		else
			t->prev->next = t->next;
		if (t->next)
			t->next->prev = t->prev;
		l->timers = meld(l->timers, merge_pairs(t->child));
	}
	t->child = t->next = t->prev = NULL;
	t->active = false;
}

void loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t ms, loop_timer_cb cb,
		      void *data)
{
	if (t->active)
		heap_remove(l, t);
	uint64_t now = now_mono_ms();
	t->when = ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
	t->seq = l->seq++;
	t->cb = cb;
	t->data = data;
	t->child = t->next = t->prev = NULL;
	t->active = true;
	l->timers = meld(l->timers, t);
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
	if (t->active)
		heap_remove(l, t);
}

bool loop_timer_active(const struct loop_timer *t)
{
	return t->active;
}

static void run_timers(struct loop *l)
{
	uint64_t now = now_mono_ms();
	/* Only timers due now: one added by a callback for 0 ms runs on the
	 * next iteration, after I/O, so timers cannot starve the fds. */
	uint64_t limit = l->seq;
	while (l->timers && l->timers->when <= now && l->timers->seq < limit && !l->stop) {
		struct loop_timer *t = l->timers;
		heap_remove(l, t);
		t->cb(l, t->data);
	}
}

/* --- child processes: one pidfd each --- */

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Without pidfd_open: how often a watch asks. */
#define CHILD_POLL_MS 50

static void child_stop(struct loop *l, struct loop_child *w)
{
	if (w->pidfd >= 0) {
		loop_del_fd(l, w->pidfd);
		close(w->pidfd);
	} else {
		loop_timer_stop(l, &w->poll);
	}
	w->pidfd = -1;
	w->pid = 0;
}

/* Reap w's child if it has exited; true when it was and cb ran. */
static bool child_reap(struct loop *l, struct loop_child *w)
{
	int status = 0;
	pid_t r;
	do
		r = waitpid(w->pid, &status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return false;
	if (r < 0)
		status = 255 << 8; /* reaped elsewhere, against the rule: say "exited 255" */
	pid_t pid = w->pid;
	loop_child_cb cb = w->cb;
	void *cb_data = w->data;
	child_stop(l, w);
	cb(l, pid, status, cb_data);
	return true;
}

static void on_pidfd(struct loop *l, int fd, unsigned events, void *data)
{
	/* Not gone yet would be odd (a pidfd reads ready only at exit): then
	 * the next event asks again. */
	child_reap(l, data);
}

static void on_child_poll(struct loop *l, void *data)
{
	struct loop_child *w = data;
	if (!child_reap(l, w))
		loop_timer_start(l, &w->poll, CHILD_POLL_MS, on_child_poll, w);
}

int loop_child_watch(struct loop *l, struct loop_child *w, pid_t pid, loop_child_cb cb, void *data)
{
	if (pid <= 0)
		return -EINVAL;
	if (w->pid > 0)
		return -EBUSY;
	int fd = pidfd_open_(pid);
	if (fd < 0 && errno != ENOSYS)
		return -errno;
	if (fd >= 0) {
		int r = loop_add_fd(l, fd, LOOP_READ, on_pidfd, w);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	w->pid = pid;
	w->pidfd = fd;
	w->cb = cb;
	w->data = data;
	if (fd < 0)
		loop_timer_start(l, &w->poll, CHILD_POLL_MS, on_child_poll, w);
	return 0;
}

void loop_child_unwatch(struct loop *l, struct loop_child *w)
{
	if (w->pid > 0)
		child_stop(l, w);
}

bool loop_child_active(const struct loop_child *w)
{
	return w->pid > 0;
}

void loop_child_kill_wait(struct loop *l, struct loop_child *w)
{
	if (w->pid <= 0)
		return;
	pid_t pid = w->pid;
	/* The pid is still ours: an unreaped child's pid cannot be reused. */
	kill(pid, SIGKILL);
	child_stop(l, w);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
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
		} else if (l->timers) {
			uint64_t now = now_mono_ms(), when = l->timers->when;
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
