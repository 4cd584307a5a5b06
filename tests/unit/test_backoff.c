/* Unit tests for core/backoff: bounds, growth, reset. */
#include "core/backoff.h"
#include "test.h"

static void test_bounds_and_growth(void)
{
	for (int run = 0; run < 200; run++) {
		struct backoff b;
		backoff_init(&b, 1.0, 60.0);
		double prev = 0;
		for (int i = 0; i < 12; i++) {
			double d = backoff_next(&b);
			ASSERT(d >= 1.0 && d <= 60.0);
			/* doubling beats +-20% jitter until the cap */
			if (prev > 0 && prev < 30)
				ASSERT(d > prev);
			prev = d;
		}
		ASSERT(prev >= 48.0); /* at the cap, only jitter below it */
	}
}

static void test_reset(void)
{
	struct backoff b;
	backoff_init(&b, 0.5, 8);
	for (int i = 0; i < 10; i++)
		backoff_next(&b);
	backoff_reset(&b);
	double d = backoff_next(&b);
	ASSERT(d >= 0.5 && d <= 0.6 + 1e-9);
}

static void test_degenerate(void)
{
	struct backoff b;
	backoff_init(&b, 5, 1); /* max below initial: initial wins */
	ASSERT(backoff_next(&b) == 5);
	backoff_init(&b, 0, 0);
	ASSERT(backoff_next(&b) > 0);
}

int main(void)
{
	RUN(test_bounds_and_growth);
	RUN(test_reset);
	RUN(test_degenerate);
	return 0;
}
