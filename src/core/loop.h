/* loop.h - devbridge's event loop (after Redis' ae): an fd table, one-shot
 * timers on the monotonic clock, child processes watched by pidfd, signals
 * delivered through signalfd, deferred calls and a before_sleep hook.
 * Single-threaded.
 *
 * Timers, child watches and deferrals are embedded in their owner (libuv's
 * uv_timer_t, the kernel's timer_list): arming one never allocates, so it
 * cannot fail, and nothing is lost to an allocation.  The loop does not own
 * them: an owner stops what it armed before it frees itself.
 *
 * Callbacks may add and remove fds, timers and watches, including their
 * own.  The backend is epoll (loop_linux.c would hold it if the file grew;
 * kqueue can follow behind the same interface). */
#ifndef DEVBRIDGE_CORE_LOOP_H
#define DEVBRIDGE_CORE_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct loop;

#define LOOP_READ  1u
#define LOOP_WRITE 2u
#define LOOP_ERROR 4u /* reported only: error or hang-up */

typedef void (*loop_fd_cb)(struct loop *loop, int fd, unsigned events, void *data);
typedef void (*loop_timer_cb)(struct loop *loop, void *data);
/* `status` is waitpid()'s: WIFEXITED/WEXITSTATUS, WIFSIGNALED/WTERMSIG. */
typedef void (*loop_child_cb)(struct loop *loop, pid_t pid, int status, void *data);
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

/* A one-shot timer, embedded in its owner and zero-initialised (inactive).
 * The members are the loop's: a node of an intrusive pairing heap ordered
 * by (deadline, arming order), so inserting needs no memory. */
struct loop_timer {
	struct loop_timer *child, *next, *prev; /* prev: the previous sibling, or the parent */
	uint64_t when, seq;
	loop_timer_cb cb;
	void *data;
	bool active;
};

/* A watched child process, embedded in its owner and zero-initialised. */
struct loop_child {
	pid_t pid; /* 0 = not watching */
	int pidfd; /* -1: no pidfd_open here, `poll` asks waitpid(pid) instead */
	loop_child_cb cb;
	void *data;
	struct loop_timer poll;
};

int loop_new(struct loop **ret);
/* Runs the deferred calls still armed (loop_defer: so none is lost when
 * the loop stopped first), then closes the signalfd; NULL is a no-op.
 * Does not close registered fds (they belong to the caller) and does not
 * touch timers or child watches still armed (they belong to their owners,
 * who stop them first). */
void loop_free(struct loop *loop);

/* Watch `fd` for `events` (LOOP_READ|LOOP_WRITE).  -EEXIST if watched. */
int loop_add_fd(struct loop *loop, int fd, unsigned events, loop_fd_cb cb, void *data);
int loop_mod_fd(struct loop *loop, int fd, unsigned events);
/* Stop watching; safe from any callback, even for an fd whose event is
 * still pending in the current batch. */
int loop_del_fd(struct loop *loop, int fd);

/* Call cb(loop, data) once, `ms` milliseconds from now.  Cannot fail; a
 * timer already armed is re-armed (its old deadline forgotten).  The timer
 * is inactive again when cb runs, so cb may start it again or free its
 * owner.  Timers due at the same moment run in the order they were armed;
 * one armed by a callback for 0 ms runs on the next iteration, after I/O. */
void loop_timer_start(struct loop *loop, struct loop_timer *t, uint64_t ms, loop_timer_cb cb,
		      void *data);
/* Disarm; a no-op when not armed. */
void loop_timer_stop(struct loop *loop, struct loop_timer *t);
/* Armed and not yet fired. */
bool loop_timer_active(const struct loop_timer *t);

/* Watch child `pid` (of this process, not yet reaped) through a pidfd:
 * once it exits the loop reaps it (waitpid on that pid only) and calls
 * cb(loop, pid, status, data), the watch already inactive (cb may free its
 * owner).  Called right after the fork there is no window in which the
 * child can exit unnoticed: an unreaped pid cannot be reused.  Where
 * pidfd_open does not exist (Linux before 5.3, valgrind before 3.21) the
 * watch asks waitpid(pid, WNOHANG) every 50 ms instead: later, but still
 * for that pid only.  0, or a negative errno (-EMFILE, -ESRCH): then the
 * child is still the caller's to reap.  -EBUSY when `w` watches already.
 * Nothing in devbridge reaps with waitpid(-1), and SIGCHLD stays at its
 * default: every child has its own watch. */
int loop_child_watch(struct loop *loop, struct loop_child *w, pid_t pid, loop_child_cb cb,
		     void *data);
/* Stop watching without reaping: the child is the caller's again (kill it
 * and waitpid(pid), or leave it to init by exiting).  A no-op when not
 * watching. */
void loop_child_unwatch(struct loop *loop, struct loop_child *w);
bool loop_child_active(const struct loop_child *w);
/* Whatever is left of a watched child when its owner must go at once:
 * SIGKILL it, wait for it (blocking, only for that pid: a killed process
 * exits in microseconds) and stop watching; cb is not called.  A no-op
 * when not watching. */
void loop_child_kill_wait(struct loop *loop, struct loop_child *w);

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
