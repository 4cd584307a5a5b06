/* Unit tests for core/loop: embedded timers (order, stop, re-arming from
 * their own callback, thousands at once), child watches (exit status,
 * signal death, several children, unwatch, kill_wait), fds, removal of a
 * pending fd inside a batch, signals through signalfd. */
#include "core/loop.h"
#include "core/spawn.h"
#include "core/util.h"
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
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
	struct loop_timer a = {0}, b = {0};
	ASSERT_EQ(loop_new(&l), 0);
	uint64_t t0 = now_mono_ms();
	loop_timer_start(l, &b, 30, fire_b, NULL);
	loop_timer_start(l, &a, 10, fire_a, NULL);
	ASSERT(loop_timer_active(&a));
	ASSERT_EQ(loop_run(l), 0);
	ASSERT(!loop_timer_active(&a));
	ASSERT(!loop_timer_active(&b));
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

static void test_timer_stop(void)
{
	struct loop *l;
	struct loop_timer t[20] = {{0}}, stop = {0};
	ASSERT_EQ(loop_new(&l), 0);
	for (int i = 0; i < 20; i++)
		loop_timer_start(l, &t[i], 5 + (uint64_t)(i % 7), never, NULL);
	for (int i = 0; i < 20; i++) {
		loop_timer_stop(l, &t[i]);
		ASSERT(!loop_timer_active(&t[i]));
		loop_timer_stop(l, &t[i]); /* idempotent */
	}
	loop_timer_start(l, &stop, 20, stop_cb, NULL);
	ASSERT_EQ(loop_run(l), 0);
	/* Re-arming an armed timer moves it: the first deadline is gone. */
	loop_timer_start(l, &t[0], 1, never, NULL);
	loop_timer_start(l, &t[0], 60000, never, NULL);
	loop_timer_start(l, &stop, 10, stop_cb, NULL);
	ASSERT_EQ(loop_run(l), 0);
	ASSERT(loop_timer_active(&t[0]));
	loop_timer_stop(l, &t[0]);
	/* A timer still armed when the loop goes is its owner's: untouched. */
	loop_timer_start(l, &t[1], 1000, never, NULL);
	loop_free(l);
	ASSERT(loop_timer_active(&t[1]));
	loop_free(NULL);
}

/* A callback that re-arms its own timer, and one that stops another timer
 * due in the same pass. */
struct rearm {
	struct loop_timer self, victim;
	int runs;
};

static void rearm_cb(struct loop *l, void *data)
{
	struct rearm *r = data;
	ASSERT(!loop_timer_active(&r->self)); /* inactive in its own callback */
	if (++r->runs < 5)
		loop_timer_start(l, &r->self, 1, rearm_cb, r);
	else
		loop_stop(l);
}

static void stopper_cb(struct loop *l, void *data)
{
	struct rearm *r = data;
	loop_timer_stop(l, &r->victim);
	r->runs++;
}

static void test_timer_rearm_in_callback(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	struct rearm r = {0};
	loop_timer_start(l, &r.self, 1, rearm_cb, &r);
	ASSERT_EQ(loop_run(l), 0);
	ASSERT_EQ(r.runs, 5);
	ASSERT(!loop_timer_active(&r.self));

	/* Both due in one pass (same deadline, stopper armed first). */
	struct rearm k = {0};
	struct loop_timer end = {0};
	loop_timer_start(l, &k.self, 2, stopper_cb, &k);
	loop_timer_start(l, &k.victim, 2, never, NULL);
	loop_timer_start(l, &end, 15, stop_cb, NULL);
	usleep(5000);
	ASSERT_EQ(loop_run(l), 0);
	ASSERT_EQ(k.runs, 1);
	ASSERT(!loop_timer_active(&k.victim));
	loop_free(l);
}

/* Thousands of timers, a third stopped, some re-armed: every one left
 * fires once, in (deadline, arming order). */
#define MANY 6000

struct many {
	struct loop_timer t[MANY];
	int fired[MANY];
	uint64_t last_when, last_seq;
	int n, expect;
};

static struct many many;

static void many_cb(struct loop *l, void *data)
{
	struct loop_timer *t = data;
	size_t i = (size_t)(t - many.t);
	many.fired[i]++;
	ASSERT(t->when > many.last_when || (t->when == many.last_when && t->seq > many.last_seq));
	many.last_when = t->when;
	many.last_seq = t->seq;
	if (++many.n == many.expect)
		loop_stop(l);
}

static void test_timer_many(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	memset(&many, 0, sizeof many);
	unsigned seed = 12345;
	for (int i = 0; i < MANY; i++) {
		seed = seed * 1103515245u + 12345u;
		loop_timer_start(l, &many.t[i], (seed >> 16) % 40, many_cb, &many.t[i]);
	}
	for (int i = 0; i < MANY; i += 3)
		loop_timer_stop(l, &many.t[i]);
	for (int i = 1; i < MANY; i += 7) /* re-armed while armed (or after a stop) */
		loop_timer_start(l, &many.t[i], 10 + (uint64_t)(i % 13), many_cb, &many.t[i]);
	for (int i = 0; i < MANY; i++)
		many.expect += loop_timer_active(&many.t[i]);
	struct loop_timer guard = {0};
	loop_timer_start(l, &guard, 5000, never, NULL);
	ASSERT_EQ(loop_run(l), 0);
	loop_timer_stop(l, &guard);
	ASSERT_EQ(many.n, many.expect);
	for (int i = 0; i < MANY; i++) {
		bool stopped = i % 3 == 0 && (i - 1) % 7 != 0;
		ASSERT_EQ(many.fired[i], stopped ? 0 : 1);
		ASSERT(!loop_timer_active(&many.t[i]));
	}
	loop_free(l);
}

/* --- child watches --- */

struct kid {
	struct loop_child w;
	pid_t pid;
	int status;
	int calls;
};

static int kids_left;

static void on_kid(struct loop *l, pid_t pid, int status, void *data)
{
	struct kid *k = data;
	ASSERT_EQ(pid, k->pid);
	ASSERT(!loop_child_active(&k->w));
	k->status = status;
	k->calls++;
	if (--kids_left == 0)
		loop_stop(l);
}

static pid_t sh(const char *script)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	struct spawn_opts o = {.argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
	pid_t pid = 0;
	ASSERT_EQ(spawn_process(&o, &pid), 0);
	return pid;
}

static void run_kids(struct loop *l)
{
	struct loop_timer guard = {0};
	loop_timer_start(l, &guard, 10000, never, NULL);
	ASSERT_EQ(loop_run(l), 0);
	loop_timer_stop(l, &guard);
}

static void test_child_exit_and_signal(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	struct kid a = {0}, b = {0};
	a.pid = sh("exit 3");
	b.pid = sh("kill -TERM $$; sleep 5");
	ASSERT_EQ(loop_child_watch(l, &a.w, a.pid, on_kid, &a), 0);
	ASSERT_EQ(loop_child_watch(l, &b.w, b.pid, on_kid, &b), 0);
	ASSERT_EQ(loop_child_watch(l, &a.w, a.pid, on_kid, &a), -EBUSY);
	ASSERT(loop_child_active(&a.w));
	kids_left = 2;
	run_kids(l);
	ASSERT_EQ(a.calls, 1);
	ASSERT(WIFEXITED(a.status));
	ASSERT_EQ(WEXITSTATUS(a.status), 3);
	ASSERT_EQ(b.calls, 1);
	ASSERT(WIFSIGNALED(b.status));
	ASSERT_EQ(WTERMSIG(b.status), SIGTERM);
	/* Reaped: nothing of them is left to wait for. */
	ASSERT_EQ(waitpid(a.pid, NULL, WNOHANG), -1);
	ASSERT_EQ(errno, ECHILD);
	ASSERT_EQ(loop_child_watch(l, &a.w, 0, on_kid, &a), -EINVAL);
	loop_free(l);
}

/* Several children ending in an order of their own; one already a zombie
 * when it is watched (no window: its exit is still seen). */
static void test_child_several(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	enum { N = 6 };
	struct kid k[N] = {{{0}}};
	static const char *const scripts[N] = {"sleep 0.2; exit 1",   "exit 0",
					       "sleep 0.1; exit 7",   "kill -KILL $$",
					       "sleep 0.05; exit 42", "exit 9"};
	for (int i = 0; i < N; i++)
		k[i].pid = sh(scripts[i]);
	/* Let the fast ones become zombies before they are watched. */
	usleep(30000);
	for (int i = 0; i < N; i++)
		ASSERT_EQ(loop_child_watch(l, &k[i].w, k[i].pid, on_kid, &k[i]), 0);
	kids_left = N;
	run_kids(l);
	static const int codes[N] = {1, 0, 7, -SIGKILL, 42, 9};
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(k[i].calls, 1);
		if (codes[i] < 0) {
			ASSERT(WIFSIGNALED(k[i].status));
			ASSERT_EQ(WTERMSIG(k[i].status), -codes[i]);
		} else {
			ASSERT(WIFEXITED(k[i].status));
			ASSERT_EQ(WEXITSTATUS(k[i].status), codes[i]);
		}
	}
	loop_free(l);
}

/* The exit callback may free the watch's owner. */
static void on_kid_free(struct loop *l, pid_t pid, int status, void *data)
{
	free(data);
	loop_stop(l);
}

static void test_child_unwatch_and_kill(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	/* Unwatched: the caller reaps it itself, the callback never runs. */
	struct kid a = {0};
	a.pid = sh("exit 5");
	ASSERT_EQ(loop_child_watch(l, &a.w, a.pid, on_kid, &a), 0);
	loop_child_unwatch(l, &a.w);
	loop_child_unwatch(l, &a.w); /* idempotent */
	ASSERT(!loop_child_active(&a.w));
	int st = 0;
	ASSERT_EQ(waitpid(a.pid, &st, 0), a.pid);
	ASSERT_EQ(WEXITSTATUS(st), 5);
	ASSERT_EQ(a.calls, 0);

	/* kill_wait: a child that ignores SIGTERM is gone at once. */
	struct kid b = {0};
	b.pid = sh("trap '' TERM; sleep 30");
	ASSERT_EQ(loop_child_watch(l, &b.w, b.pid, on_kid, &b), 0);
	loop_child_kill_wait(l, &b.w);
	ASSERT(!loop_child_active(&b.w));
	ASSERT_EQ(waitpid(b.pid, NULL, WNOHANG), -1);
	ASSERT_EQ(b.calls, 0);
	loop_child_kill_wait(l, &b.w); /* a no-op now */

	struct kid *c = calloc(1, sizeof *c);
	ASSERT(c);
	c->pid = sh("exit 0");
	ASSERT_EQ(loop_child_watch(l, &c->w, c->pid, on_kid_free, c), 0);
	run_kids(l);
	loop_free(l);
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
	struct loop_timer t = {0};
	ASSERT_EQ(loop_watch_signals(l, sigs, on_sig, NULL), 0);
	loop_timer_start(l, &t, 1, raise_usr1, NULL);
	ASSERT_EQ(loop_run(l), 0);
	ASSERT_EQ(got_sig, SIGUSR1);
	ASSERT_GT(loop_wakeups(l), 0);
	loop_free(l);
}

static void test_zero_timers_fifo(void)
{
	struct loop *l;
	struct order o = {0};
	struct loop_timer t[5] = {{0}}, stop = {0};
	ASSERT_EQ(loop_new(&l), 0);
	for (int i = 0; i < 5; i++)
		loop_timer_start(l, &t[i], 0, record, &o);
	loop_timer_start(l, &stop, 1, stop_cb, NULL);
	ASSERT_EQ(loop_run(l), 0);
	ASSERT_EQ(o.n, 5);
	loop_free(l);
}

int main(void)
{
	RUN(test_timers_order);
	RUN(test_timer_stop);
	RUN(test_timer_rearm_in_callback);
	RUN(test_timer_many);
	RUN(test_child_exit_and_signal);
	RUN(test_child_several);
	RUN(test_child_unwatch_and_kill);
	RUN(test_fd_removed_in_batch);
	RUN(test_signals);
	RUN(test_zero_timers_fifo);
	return 0;
}
