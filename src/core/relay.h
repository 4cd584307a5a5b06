/* relay.h - the data plane: move bytes both ways between two connected
 * byte streams on the event loop, as fast as the kernel allows.
 *
 * Two ways to make one:
 * - relay_new(fd, fd): two stream fds, the fast path.  splice() socket ->
 *   pipe -> socket when both ends are sockets (no copy through user
 *   space), read()/write() through a bounded buffer otherwise or when
 *   splice is refused (EINVAL);
 * - relay_new_ep(ep, ep): two endpoints (struct relay_ep below: an fd, a
 *   multiplexed stream, a test double), read and written through a
 *   bounded buffer per direction.
 * Both follow the same rules:
 * - correct on partial reads and writes; explicit half-close in each
 *   direction (EOF on A -> shutdown(B, SHUT_WR) once A's bytes are
 *   delivered), like OpenSSH's nchan;
 * - backpressure: a direction stops reading while its bytes wait for the
 *   other side; at most `max_buffered` bytes are held per direction;
 * - an idle relay holds no buffer and no pipe: both are taken on demand and
 *   given back when drained, so 10,000 idle connections cost little;
 * - freed from inside one of its own callbacks, a relay is marked and its
 *   memory released by the loop after the callback (loop_defer).
 *
 * The relay owns both fds (or endpoints) from relay_new on and closes them
 * when freed. */
#ifndef DEVBRIDGE_CORE_RELAY_H
#define DEVBRIDGE_CORE_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/* Stop, close both fds (endpoints), free.  NULL is a no-op.  Safe from the
 * done callback and from any other loop callback: from inside the relay's
 * own callbacks its memory is released by the loop once they return
 * (loop_defer); from anywhere else at once. */
void relay_free(struct relay *r);

/* Bytes read but not yet delivered, per direction, now and the most ever
 * held at once (never above max_buffered); for tests and status output. */
struct relay_buffered {
	size_t a_to_b, b_to_a;
	size_t peak_a_to_b, peak_b_to_a;
};
void relay_get_buffered(const struct relay *r, struct relay_buffered *ret);

/* --- endpoints: the generic path ---
 *
 * An endpoint is one end of a byte stream, modelled on libuv's uv_stream_t:
 * reads are pushed to its user between read_start and read_stop, into
 * memory the user hands out (alloc, then read); a write takes what the
 * endpoint can hold now and, when that was not everything, `writable`
 * says when to try again; shutdown is the half-close; close ends it.
 *
 * An implementation embeds a struct relay_ep and sets `ops`; its user (the
 * relay) sets `cb` and `data`.  The rules, which the relay relies on:
 * - no op calls any of the user's callbacks from inside: what an op causes
 *   is reported later, from the loop (libuv's deferred completions; a
 *   send never calls back);
 * - read_stop takes effect at once: no alloc/read after it returns, even
 *   later in the dispatch that is running;
 * - after close, no callback at all; close may be called from inside the
 *   endpoint's own callbacks (its memory is released after they return);
 * - errors are reported once, through `error` (or as a negative return
 *   of write, then not again), whether reading or not; nothing follows.
 */
struct relay_ep;

struct relay_ep_ops {
	/* Deliver reads (cb->alloc then cb->read) until read_stop, EOF or an
	 * error.  0 or a negative errno. */
	int (*read_start)(struct relay_ep *ep);
	void (*read_stop)(struct relay_ep *ep);
	/* Take up to len (> 0) bytes: how many were taken (> 0), -EAGAIN when
	 * none can be now, or another negative errno (the endpoint failed).
	 * Taking fewer than len, or none, promises one cb->writable once it
	 * can take more. */
	ssize_t (*write)(struct relay_ep *ep, const void *bytes, size_t len);
	/* Half-close: the peer reads EOF after the bytes taken so far.  An end
	 * that cannot half-close (a pipe) ignores it. */
	int (*shutdown)(struct relay_ep *ep);
	/* Stop, release, and (for an fd) close. */
	void (*close)(struct relay_ep *ep);
};

struct relay_ep_cb {
	/* Memory to read into: at least 1 byte, `suggested` is a hint.  A
	 * length of 0 means read nothing now. */
	void (*alloc)(struct relay_ep *ep, size_t suggested, void **ret, size_t *ret_len);
	/* n > 0 bytes were written to the memory from alloc; n == 0 is EOF
	 * (no read follows). */
	void (*read)(struct relay_ep *ep, size_t n);
	/* After a write that took less than offered: it can take more. */
	void (*writable)(struct relay_ep *ep);
	/* The endpoint failed (reset, ...): a positive errno. */
	void (*error)(struct relay_ep *ep, int err);
};

struct relay_ep {
	const struct relay_ep_ops *ops; /* the implementation's */
	const struct relay_ep_cb *cb;	/* the user's */
	void *data;			/* the user's */
};

/* An endpoint for a connected stream fd (socket, pipe, tty), made
 * non-blocking; TCP_NODELAY on TCP.  It owns fd from success on and closes
 * it in close.  0, or a negative errno (fd still the caller's). */
int relay_ep_fd_new(struct loop *loop, int fd, struct relay_ep **ret);

/* Start relaying between two endpoints.  Takes them over on success (they
 * are closed when the relay is freed); on failure they are the caller's,
 * untouched but for their callbacks.  `opts` may be NULL; no_splice has no
 * meaning here.  A relay made this way works with relay_preload_a,
 * relay_get_stats, relay_get_buffered and relay_free like one of
 * relay_new. */
int relay_new_ep(struct loop *loop, struct relay_ep *a, struct relay_ep *b,
		 const struct relay_opts *opts, relay_done_cb done, void *data, struct relay **ret);

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
