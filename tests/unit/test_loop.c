/* Unit tests for core/loop: timers in order, cancel, fds, removal of a
 * pending fd inside a batch, signals through signalfd. */
#include "core/loop.h"
#include "core/util.h"
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

struct order {
	int seen[8];
	int n;
};

static void record(struct loop *l, void *data)
{
	struct order *o = data;
	(void)l;
	o->seen[o->n++] = 1;
}

static int fired_a, fired_b;
static void fire_a(struct loop *l, void *d)
{
	fired_a = (int)(now_mono_ms() & 0x7fffffff);
	(void)d;
	(void)l;
}
static void fire_b(struct loop *l, void *d)
{
	fired_b = (int)(now_mono_ms() & 0x7fffffff);
	loop_stop(l);
	(void)d;
}

static void test_timers_order(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	uint64_t t0 = now_mono_ms();
	ASSERT_EQ(loop_timer_add(l, 30, fire_b, NULL, NULL), 0);
	ASSERT_EQ(loop_timer_add(l, 10, fire_a, NULL, NULL), 0);
	ASSERT_EQ(loop_run(l), 0);
	ASSERT_LE(fired_a, fired_b);
	ASSERT_GE(now_mono_ms() - t0, 30);
	loop_free(l);
}

static void never(struct loop *l, void *d)
{
	(void)l;
	(void)d;
	ASSERT(!"cancelled timer fired");
}

static void stop_cb(struct loop *l, void *d)
{
	(void)d;
	loop_stop(l);
}

static void test_timer_cancel(void)
{
	struct loop *l;
	struct loop_timer *t[20];
	ASSERT_EQ(loop_new(&l), 0);
	for (int i = 0; i < 20; i++)
		ASSERT_EQ(loop_timer_add(l, 5 + (uint64_t)(i % 7), never, NULL, &t[i]), 0);
	for (int i = 0; i < 20; i++)
		loop_timer_cancel(l, t[i]);
	ASSERT_EQ(loop_timer_add(l, 20, stop_cb, NULL, NULL), 0);
	ASSERT_EQ(loop_run(l), 0);
	/* pending timers are freed with the loop */
	ASSERT_EQ(loop_timer_add(l, 1000, never, NULL, NULL), 0);
	loop_free(l);
	loop_free(NULL);
}

struct pair {
	int a[2], b[2];
	int hits_a, hits_b;
};

static void on_a(struct loop *l, int fd, unsigned ev, void *data)
{
	struct pair *p = data;
	p->hits_a++;
	char c;
	ASSERT_EQ(read(fd, &c, 1), 1);
	/* b is also readable in this batch: removing it must drop its event */
	ASSERT_EQ(loop_del_fd(l, p->b[0]), 0);
	loop_stop(l);
}

static void on_b(struct loop *l, int fd, unsigned ev, void *data)
{
	struct pair *p = data;
	p->hits_b++;
	char c;
	ASSERT_EQ(read(fd, &c, 1), 1);
	ASSERT_EQ(loop_del_fd(l, p->a[0]), 0);
	loop_stop(l);
}

static void test_fd_removed_in_batch(void)
{
	struct loop *l;
	struct pair p = {0};
	ASSERT_EQ(loop_new(&l), 0);
	ASSERT_EQ(pipe(p.a), 0);
	ASSERT_EQ(pipe(p.b), 0);
	ASSERT_EQ(loop_add_fd(l, p.a[0], LOOP_READ, on_a, &p), 0);
	ASSERT_EQ(loop_add_fd(l, p.b[0], LOOP_READ, on_b, &p), 0);
	ASSERT_EQ(loop_add_fd(l, p.b[0], LOOP_READ, on_b, &p), -EEXIST);
	ASSERT_EQ(write(p.a[1], "x", 1), 1);
	ASSERT_EQ(write(p.b[1], "y", 1), 1);
	ASSERT_EQ(loop_run(l), 0);
	ASSERT_EQ(p.hits_a + p.hits_b, 1);
	ASSERT_EQ(loop_mod_fd(l, 9999, LOOP_READ), -ENOENT);
	loop_free(l);
	close(p.a[0]);
	close(p.a[1]);
	close(p.b[0]);
	close(p.b[1]);
}

static int got_sig;
static void on_sig(struct loop *l, int signo, void *data)
{
	got_sig = signo;
	loop_stop(l);
}

static void raise_usr1(struct loop *l, void *d)
{
	raise(SIGUSR1);
}

static void test_signals(void)
{
	struct loop *l;
	static const int sigs[] = {SIGUSR1, 0};
	ASSERT_EQ(loop_new(&l), 0);
	ASSERT_EQ(loop_watch_signals(l, sigs, on_sig, NULL), 0);
	ASSERT_EQ(loop_timer_add(l, 1, raise_usr1, NULL, NULL), 0);
	ASSERT_EQ(loop_run(l), 0);
	ASSERT_EQ(got_sig, SIGUSR1);
	ASSERT_GT(loop_wakeups(l), 0);
	loop_free(l);
}

static void test_zero_timers_fifo(void)
{
	struct loop *l;
	struct order o = {0};
	ASSERT_EQ(loop_new(&l), 0);
	for (int i = 0; i < 5; i++)
		ASSERT_EQ(loop_timer_add(l, 0, record, &o, NULL), 0);
	ASSERT_EQ(loop_timer_add(l, 1, stop_cb, NULL, NULL), 0);
	ASSERT_EQ(loop_run(l), 0);
	ASSERT_EQ(o.n, 5);
	loop_free(l);
}

int main(void)
{
	RUN(test_timers_order);
	RUN(test_timer_cancel);
	RUN(test_fd_removed_in_batch);
	RUN(test_signals);
	RUN(test_zero_timers_fifo);
	return 0;
}
