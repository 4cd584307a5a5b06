/* backoff.c - see backoff.h. */
#include "core/backoff.h"
#include "core/util.h"

void backoff_init(struct backoff *b, double initial, double max)
{
	b->initial = initial > 0 ? initial : 0.001;
	b->max = max >= b->initial ? max : b->initial;
	b->step = 0;
	if (random_bytes(&b->rng, sizeof b->rng) < 0 || b->rng == 0)
		b->rng = 0x9e3779b97f4a7c15ull ^ now_mono_ms();
}

static double next_unit(struct backoff *b)
{
	/* xorshift64*: plenty for jitter, needs no global state. */
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return (double)((b->rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

double backoff_next(struct backoff *b)
{
	double d = b->initial;
	for (unsigned i = 0; i < b->step && d < b->max; i++)
		d *= 2;
	if (d > b->max)
		d = b->max;
	else
		b->step++;
	d *= 0.8 + 0.4 * next_unit(b);
	if (d < b->initial)
		d = b->initial;
	if (d > b->max)
		d = b->max;
	return d;
}

void backoff_reset(struct backoff *b)
{
	b->step = 0;
}
