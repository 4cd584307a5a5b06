/* run_until.h - drive a loop in a unit test until a condition holds, with
 * a deadline (never a fixed sleep): the condition is checked before every
 * sleep; `step` (optional) runs just before each check.  A missed deadline
 * fails the test.  Header-only, for the tests of loop users. */
#ifndef DEVBRIDGE_TEST_RUN_UNTIL_H
#define DEVBRIDGE_TEST_RUN_UNTIL_H

#include "core/loop.h"
#include "test.h"

#include <stdbool.h>

struct test_waiter {
	bool (*cond)(void *);
	void (*step)(void *);
	void *arg;
	bool timed_out;
	struct loop_timer t;
};

static inline void test_waiter_check(struct loop *l, void *data)
{
	struct test_waiter *w = data;
	if (w->step)
		w->step(w->arg);
	if (w->cond(w->arg))
		loop_stop(l);
}

static inline void test_waiter_deadline(struct loop *l, void *data)
{
	struct test_waiter *w = data;
	w->timed_out = true;
	loop_stop(l);
}

/* Turn the loop until cond(arg), or fail after ms; `fail` false: just
 * turn it for ms (to show that nothing more happens). */
static inline void test_run_loop(struct loop *l, bool (*cond)(void *), void (*step)(void *),
				 void *arg, unsigned ms, bool fail)
{
	struct test_waiter w = {.cond = cond, .step = step, .arg = arg};
	loop_set_before_sleep(l, test_waiter_check, &w);
	loop_timer_start(l, &w.t, ms, test_waiter_deadline, &w);
	ASSERT_EQ(loop_run(l), 0);
	loop_set_before_sleep(l, NULL, NULL);
	loop_timer_stop(l, &w.t);
	if (fail && w.timed_out && !cond(arg))
		TEST_FAIL_("condition not met within %u ms", ms);
}

static inline void run_until2(struct loop *l, bool (*cond)(void *), void (*step)(void *), void *arg,
			      unsigned ms)
{
	test_run_loop(l, cond, step, arg, ms, true);
}

static inline void run_until(struct loop *l, bool (*cond)(void *), void *arg, unsigned ms)
{
	test_run_loop(l, cond, NULL, arg, ms, true);
}

static inline bool test_never(void *arg)
{
	(void)arg;
	return false;
}

/* Let the loop turn for `ms`. */
static inline void run_for(struct loop *l, unsigned ms)
{
	test_run_loop(l, test_never, NULL, NULL, ms, false);
}

#endif
