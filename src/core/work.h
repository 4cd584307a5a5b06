/* work.h - run one blocking call (getaddrinfo, a directory walk) on a
 * thread of its own and hear of its end on the loop, so that the loop's
 * relays never wait for it (libuv's uv_queue_work).
 *
 * fn runs on the worker thread and may touch only what `arg` gives it;
 * done runs on the loop thread after fn has returned.  The owner that goes
 * away first calls work_abandon: done is then never called, and `release`
 * frees arg once fn is through (at once if it already is). */
#ifndef DEVBRIDGE_CORE_WORK_H
#define DEVBRIDGE_CORE_WORK_H

struct loop;
struct work;

typedef void (*work_fn)(void *arg);
typedef void (*work_done_cb)(struct loop *loop, void *arg);
typedef void (*work_release_fn)(void *arg);

/* Start fn(arg) on a new thread.  0 with *ret set (the handle is freed by
 * the loop after done, or by work_abandon), or a negative errno. */
int work_start(struct loop *loop, work_fn fn, work_done_cb done, void *arg, struct work **ret);

/* Forget a job that has not reported done; NULL is a no-op. */
void work_abandon(struct work *w, work_release_fn release);

#endif
