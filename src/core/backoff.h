/* backoff.h - exponential backoff with jitter.
 *
 * Step n waits min(max, initial * 2^n), scaled by a random factor in
 * [0.8, 1.2] and clamped to [initial, max], so reconnect storms of many
 * supervisors spread out while the bounds the user configured hold. */
#ifndef DEVBRIDGE_CORE_BACKOFF_H
#define DEVBRIDGE_CORE_BACKOFF_H

#include <stdint.h>

struct backoff {
	double initial, max; /* seconds */
	unsigned step;
	uint64_t rng;
};

void backoff_init(struct backoff *b, double initial, double max);
/* Delay in seconds before the next attempt; advances the step. */
double backoff_next(struct backoff *b);
/* Back to the first step (after a stable period). */
void backoff_reset(struct backoff *b);

#endif
