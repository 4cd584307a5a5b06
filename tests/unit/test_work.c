/* Unit tests for core/work (a blocking call on a worker thread) and
 * loop_defer: the loop keeps running while the call blocks, done runs on
 * the loop after it, an abandoned job is released exactly once, and a
 * deferred call runs after the callback that armed it. */
#include "core/loop.h"
#include "core/util.h"
#include "core/work.h"
#include "test.h"

#include <stdatomic.h>
#include <time.h>

struct job {
	int ms;		/* how long fn blocks */
	atomic_int ran; /* fn finished */
	int done;	/* done called (loop thread) */
	int ticks_seen; /* loop ticks when done ran */
	atomic_int released;
};

static int ticks;

static void blocking(void *arg)
{
	struct job *j = arg;
	struct timespec ts = {j->ms / 1000, (long)(j->ms % 1000) * 1000000L};
	nanosleep(&ts, NULL); /* the blocking call under test, not a wait */
	atomic_store(&j->ran, 1);
}

static void on_done(struct loop *l, void *arg)
{
	struct job *j = arg;
	ASSERT_EQ(atomic_load(&j->ran), 1);
	j->done++;
	j->ticks_seen = ticks;
	loop_stop(l);
}

static struct loop_timer tick_timer;

static void tick(struct loop *l, void *data)
{
	ticks++;
	loop_timer_start(l, &tick_timer, 5, tick, NULL);
}

static void test_loop_runs_while_work_blocks(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	struct job j = {.ms = 300};
	struct work *w;
	ticks = 0;
	ASSERT_EQ(work_start(l, blocking, on_done, &j, &w), 0);
	loop_timer_start(l, &tick_timer, 5, tick, NULL);
	ASSERT_EQ(loop_run(l), 0);
	loop_timer_stop(l, &tick_timer);
	ASSERT_EQ(j.done, 1);
	/* 300 ms of blocking, a 5 ms timer: the loop kept going meanwhile */
	ASSERT_GE(j.ticks_seen, 10);
	loop_free(l);
}

static void release(void *arg)
{
	struct job *j = arg;
	atomic_fetch_add(&j->released, 1);
}

static void never_done(struct loop *l, void *arg)
{
	(void)l;
	(void)arg;
	ASSERT(!"done called for an abandoned job");
}

/* Poll (with a deadline) until *v is 1: the thread may still be finishing. */
static void wait_one(atomic_int *v)
{
	uint64_t deadline = now_mono_ms() + 5000;
	while (atomic_load(v) == 0 && now_mono_ms() < deadline) {
		struct timespec ts = {0, 1000000L};
		nanosleep(&ts, NULL);
	}
	ASSERT_EQ(atomic_load(v), 1);
}

static void test_abandon(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	/* abandoned while running: released by the thread when fn returns */
	struct job a = {.ms = 100};
	struct work *w;
	ASSERT_EQ(work_start(l, blocking, never_done, &a, &w), 0);
	work_abandon(w, release);
	wait_one(&a.released);
	/* abandoned after fn returned, before done ran: released once */
	struct job b = {.ms = 0};
	ASSERT_EQ(work_start(l, blocking, never_done, &b, &w), 0);
	wait_one(&b.ran);
	work_abandon(w, release);
	wait_one(&b.released);
	work_abandon(NULL, release); /* a no-op */
	loop_free(l);
}

struct dctx {
	struct loop_defer d, e;
	int order[4];
	int n;
	int in_cb;
};

static void deferred_e(struct loop *l, void *data)
{
	struct dctx *c = data;
	c->order[c->n++] = 2;
	loop_stop(l);
}

static void deferred_d(struct loop *l, void *data)
{
	struct dctx *c = data;
	ASSERT_EQ(c->in_cb, 0); /* never from inside the arming callback */
	c->order[c->n++] = 1;
	loop_defer(l, &c->e, deferred_e, c); /* armed from a deferred call: same drain */
}

static void arm(struct loop *l, void *data)
{
	struct dctx *c = data;
	c->in_cb = 1;
	loop_defer(l, &c->d, deferred_d, c);
	loop_defer(l, &c->d, deferred_d, c); /* re-arming an armed one: once */
	c->in_cb = 0;
}

static void test_defer(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	struct dctx c = {0};
	struct loop_timer t = {0};
	loop_timer_start(l, &t, 1, arm, &c);
	ASSERT_EQ(loop_run(l), 0);
	ASSERT_EQ(c.n, 2);
	ASSERT_EQ(c.order[0], 1);
	ASSERT_EQ(c.order[1], 2);
	/* cancel: a cancelled deferral never runs */
	struct dctx k = {0};
	loop_defer(l, &k.d, deferred_d, &k);
	loop_defer_cancel(l, &k.d);
	loop_defer_cancel(l, &k.d); /* idempotent */
	loop_timer_start(l, &t, 20, deferred_e, &k);
	ASSERT_EQ(loop_run(l), 0);
	ASSERT_EQ(k.n, 1);
	ASSERT_EQ(k.order[0], 2);
	loop_free(l);
}

int main(void)
{
	RUN(test_loop_runs_while_work_blocks);
	RUN(test_abandon);
	RUN(test_defer);
	return 0;
}
