/* relay.h - the data plane: move bytes both ways between two connected
 * stream fds on the event loop, as fast as the kernel allows.
 *
 * - splice() socket -> pipe -> socket when both ends are sockets (no copy
 *   through user space), read()/write() through a bounded buffer otherwise
 *   or when splice is refused (EINVAL);
 * - correct on partial reads and writes; explicit half-close in each
 *   direction (EOF on A -> shutdown(B, SHUT_WR) once A's bytes are
 *   delivered), like OpenSSH's nchan;
 * - backpressure: a direction stops reading while its bytes wait for the
 *   other side; at most `max_buffered` bytes are held per direction;
 * - an idle relay holds no buffer and no pipe: both are taken on demand and
 *   given back when drained, so 10,000 idle connections cost little;
 * - no allocation per read.
 *
 * The relay owns both fds from relay_new on and closes them when freed. */
#ifndef DEVBRIDGE_CORE_RELAY_H
#define DEVBRIDGE_CORE_RELAY_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct relay;

struct relay_stats {
	uint64_t a_to_b; /* bytes delivered to b */
	uint64_t b_to_a;
	int error; /* first fatal errno (ECONNRESET, EPIPE, ...) or 0 */
};

/* Called once, when both directions are finished (both EOFs delivered) or
 * on a fatal error.  The callback may call relay_free(r). */
typedef void (*relay_done_cb)(struct relay *r, void *data);

struct relay_opts {
	size_t max_buffered; /* per direction; default 256 KiB */
	int no_splice;	     /* force read/write (tests, benchmarks) */
};

/* Start relaying between fd_a and fd_b (made non-blocking here).  `opts`
 * may be NULL.  Returns 0 or a negative errno (the fds are then still the
 * caller's). */
int relay_new(struct loop *loop, int fd_a, int fd_b, const struct relay_opts *opts,
	      relay_done_cb done, void *data, struct relay **ret);

/* Bytes that were read from fd_a before the relay started (for example what
 * followed a handshake line) are sent to fd_b first.  Call right after
 * relay_new.  0 or -ENOMEM / -E2BIG (over max_buffered). */
int relay_preload_a(struct relay *r, const void *bytes, size_t len);

void relay_get_stats(const struct relay *r, struct relay_stats *ret);

/* Stop, close both fds, free.  NULL is a no-op.  Safe from the done
 * callback and from any other loop callback. */
void relay_free(struct relay *r);

/* Bytes read but not yet delivered, per direction, now and the most ever
 * held at once (never above max_buffered); for tests and status output. */
struct relay_buffered {
	size_t a_to_b, b_to_a;
	size_t peak_a_to_b, peak_b_to_a;
};
void relay_get_buffered(const struct relay *r, struct relay_buffered *ret);

/* Empty pipes and buffers are kept per thread for the next relay that
 * needs one (a few of each).  Close and free them: at exit, after a burst
 * of connections, or before counting fds in a test. */
void relay_pool_flush(void);

/* Notes on the behaviour above:
 * - relay_new also sets TCP_NODELAY on TCP sockets (a relay forwards at
 *   once; Nagle here would only add latency);
 * - the program must ignore SIGPIPE: splice() into a closed socket raises
 *   it (plain writes use MSG_NOSIGNAL, but splice has no such flag);
 * - a non-socket end cannot be half-closed: EOF towards it is delivered
 *   when the relay is freed;
 * - the done callback runs once, from inside the loop, after the relay
 *   has deregistered both fds; relay_get_stats() then tells why. */

#endif
