/* loop.h - devbridge's event loop (after Redis' ae): an fd table, one-shot
 * timers on the monotonic clock kept in a binary heap, signals delivered
 * through signalfd, and a before_sleep hook.  Single-threaded.
 *
 * Callbacks may add and remove fds and timers, including their own.  The
 * backend is epoll (loop_linux.c would hold it if the file grew; kqueue can
 * follow behind the same interface). */
#ifndef DEVBRIDGE_CORE_LOOP_H
#define DEVBRIDGE_CORE_LOOP_H

#include <stdint.h>

struct loop;
struct loop_timer;

#define LOOP_READ  1u
#define LOOP_WRITE 2u
#define LOOP_ERROR 4u /* reported only: error or hang-up */

typedef void (*loop_fd_cb)(struct loop *loop, int fd, unsigned events, void *data);
/* The timer is freed after its callback returns: drop your pointer to it. */
typedef void (*loop_timer_cb)(struct loop *loop, void *data);
typedef void (*loop_signal_cb)(struct loop *loop, int signo, void *data);
typedef void (*loop_hook_cb)(struct loop *loop, void *data);

/* A deferred call, embedded in its owner (zero-initialised).  This is how
 * an object that cannot be freed where it noticed its end (inside a send,
 * inside a peer's callback) gets freed: it marks itself and defers; the
 * loop calls back once the current callback has returned (Redis
 * freeClientAsync, libuv's deferred completions). */
struct loop_defer {
	struct loop_defer *prev, *next;
	loop_hook_cb cb;
	void *data;
	int armed;
};

int loop_new(struct loop **ret);
/* Runs the deferred calls still armed (loop_defer: so none is lost when
 * the loop stopped first), then closes the signalfd and frees pending
 * timers; NULL is a no-op.  Does not close registered fds: they belong to
 * the caller. */
void loop_free(struct loop *loop);

/* Watch `fd` for `events` (LOOP_READ|LOOP_WRITE).  -EEXIST if watched. */
int loop_add_fd(struct loop *loop, int fd, unsigned events, loop_fd_cb cb, void *data);
int loop_mod_fd(struct loop *loop, int fd, unsigned events);
/* Stop watching; safe from any callback, even for an fd whose event is
 * still pending in the current batch. */
int loop_del_fd(struct loop *loop, int fd);

/* Call cb once after `ms` milliseconds.  *ret (optional) identifies it for
 * loop_timer_cancel until it fires. */
int loop_timer_add(struct loop *loop, uint64_t ms, loop_timer_cb cb, void *data,
		   struct loop_timer **ret);
/* Cancel and free a timer that has not fired yet; NULL is a no-op. */
void loop_timer_cancel(struct loop *loop, struct loop_timer *t);

/* Block `signals` (0-terminated) in this thread and deliver them to cb
 * through a signalfd.  One call per loop. */
int loop_watch_signals(struct loop *loop, const int *signals, loop_signal_cb cb, void *data);

/* Call cb(loop, data) once, after the callback that is running returns and
 * before the loop sleeps again.  Cannot fail; arming an armed deferral only
 * replaces cb/data.  Deferrals run in the order they were armed; one armed
 * from a deferred callback runs in the same drain. */
void loop_defer(struct loop *loop, struct loop_defer *d, loop_hook_cb cb, void *data);
/* Disarm; a no-op when not armed.  The owner calls it before freeing. */
void loop_defer_cancel(struct loop *loop, struct loop_defer *d);

void loop_set_before_sleep(struct loop *loop, loop_hook_cb cb, void *data);

/* Run until loop_stop().  Returns 0, or a negative errno if epoll fails. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);

/* Number of epoll_wait returns so far (for the idle-wakeup benchmark). */
uint64_t loop_wakeups(const struct loop *loop);

#endif
