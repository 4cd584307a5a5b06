/* mirror.h - the two endpoint wrappers of `intercept --mirror`
 * (docs/intercept.md "--mode mirror"), both relay endpoints
 * (core/relay.h) around another endpoint:
 *
 * - the tee (agent side): an endpoint that is `inner` (the cluster
 *   client's connection) for its user (the relay to the original pod),
 *   and that also writes every byte read from inner to `copy` (a stream
 *   to the CLI).  The copy never slows or breaks the relayed traffic:
 *   what copy cannot take now waits in a buffer of at most max_pending
 *   bytes; over that, or when copy fails, the copy is dropped (closed:
 *   its peer sees a reset) and the tee goes on without it.  Whatever
 *   copy's peer sends is read and thrown away.
 * - the sink (CLI side): an endpoint that is `inner` (the stream from the
 *   agent) for reading, shutdown and close, but whose writes are thrown
 *   away (taken whole): relayed to the local port, the local server gets
 *   the stream's bytes and its answers go nowhere, while its EOF still
 *   half-closes the stream.
 */
#ifndef DEVBRIDGE_K8S_MIRROR_H
#define DEVBRIDGE_K8S_MIRROR_H

#include <stddef.h>
#include <stdint.h>

#include "core/relay.h"

struct loop;

#define MIRROR_MAX_PENDING ((size_t)1024 * 1024)
#define MIRROR_LINGER_MS   10000

struct mirror_tee_opts {
	size_t max_pending; /* 0: MIRROR_MAX_PENDING */
	/* After the tee is closed, the copy waits this long (0:
	 * MIRROR_LINGER_MS) for its pending bytes to go out and for its
	 * peer's EOF, then is closed (reset). */
	uint32_t linger_ms;
	/* Optional: the copy was dropped (err: ENOBUFS over max_pending, or
	 * the copy's error).  Called from the loop; `data` must outlive every
	 * tee made with it (the copy can outlive the tee). */
	void (*dropped)(void *data, int err);
	void *data;
};

/* Wrap inner and copy.  `first` (len bytes, may be 0) goes to copy before
 * anything read from inner.  Takes both endpoints over on success (the
 * tee's close closes inner at once; copy lingers as described above);
 * on failure they are untouched.  0 or -ENOMEM. */
int mirror_tee_new(struct loop *loop, struct relay_ep *inner, struct relay_ep *copy,
		   const void *first, size_t len, const struct mirror_tee_opts *opts,
		   struct relay_ep **ret);

/* Copies left lingering after their tees closed: close them now (at exit,
 * before loop_free). */
void mirror_linger_flush(void);

/* Wrap inner (see above).  Takes it over on success.  0 or -ENOMEM. */
int mirror_sink_new(struct relay_ep *inner, struct relay_ep **ret);

#endif
