/* yamux.h - the Yamux stream multiplexer, wire-compatible with
 * hashicorp/yamux (docs/protocol-yamux.md has the wire format and the
 * rules this implementation keeps).
 *
 * Two parts:
 * - the frame header codec: pure functions, no allocation (fuzzed);
 * - a session on the core loop over one connected stream socket, client
 *   or server role, whose streams are relay endpoints (core/relay.h): a
 *   TCP socket relays to a stream with relay_new_ep and the same
 *   half-close and backpressure rules as fd <-> fd.
 *
 * The session keeps the relay's rules: no call on a session or a stream
 * calls any user callback from inside (what it causes is reported later,
 * from the loop); a session or stream freed from inside its own callbacks
 * is released by the loop once they return (loop_defer).  Memory is
 * bounded: a stream's receive buffer by its window, the session's output
 * by `max_output`, the streams by `max_streams`. */
#ifndef DEVBRIDGE_PROTO_YAMUX_H
#define DEVBRIDGE_PROTO_YAMUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/relay.h"

/* --- the frame header --- */

#define YAMUX_VERSION 0
#define YAMUX_HDR_LEN 12

enum yamux_type {
	YAMUX_DATA = 0,		 /* length: payload bytes that follow */
	YAMUX_WINDOW_UPDATE = 1, /* length: window delta */
	YAMUX_PING = 2,		 /* length: opaque value; stream 0 */
	YAMUX_GO_AWAY = 3,	 /* length: enum yamux_goaway; stream 0 */
};

#define YAMUX_SYN 0x1u
#define YAMUX_ACK 0x2u
#define YAMUX_FIN 0x4u
#define YAMUX_RST 0x8u

enum yamux_goaway {
	YAMUX_GOAWAY_NORMAL = 0,
	YAMUX_GOAWAY_PROTOCOL = 1,
	YAMUX_GOAWAY_INTERNAL = 2,
};

/* hashicorp's initial (and minimum) stream window. */
#define YAMUX_INITIAL_WINDOW (256u * 1024)

struct yamux_hdr {
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint32_t stream_id;
	uint32_t length;
};

/* Parse the header at the front of buf.  YAMUX_HDR_LEN (consumed), 0 when
 * fewer than YAMUX_HDR_LEN bytes are there (need more), -EPROTO for a
 * version other than 0 or an unknown type.  Unknown flag bits are kept
 * in hdr->flags (the session ignores them, as hashicorp does). */
int yamux_hdr_parse(const void *buf, size_t len, struct yamux_hdr *hdr);

/* Write hdr as 12 big-endian bytes. */
void yamux_hdr_encode(const struct yamux_hdr *hdr, unsigned char out[YAMUX_HDR_LEN]);

/* "data", "window_update", "ping", "go_away", or NULL; for logs. */
const char *yamux_type_name(unsigned type);

/* --- the session --- */

struct loop;
struct yamux_session;
struct yamux_stream;

struct yamux_opts {
	/* Receive window per stream: what a peer may send before we have
	 * read it.  Default and minimum YAMUX_INITIAL_WINDOW; a larger one
	 * is announced in the delta of the opening frame. */
	uint32_t recv_window;
	/* Auto-tuning: a stream whose peer used up the whole window while
	 * its reader kept up gets the window doubled with the next update,
	 * up to max_recv_window (default 4 MiB; equal to recv_window: no
	 * tuning; at most 1 GiB), and the streams of a session together get
	 * at most tune_budget bytes more than recv_window (default 64 MiB).
	 * A stream whose reader lags keeps its window. */
	uint32_t max_recv_window;
	size_t tune_budget;
	/* Streams open at once, both directions (default 4096); an inbound
	 * open over it is refused with RST, an outbound one fails with
	 * -EMFILE. */
	unsigned max_streams;
	/* Inbound streams not yet accepted (default 256); further opens are
	 * refused with RST. */
	unsigned accept_backlog;
	/* Keepalive: a Ping every interval, the session ends (ETIMEDOUT) when
	 * one is not answered within timeout.  Defaults 10000 / 30000 ms (as
	 * devx); interval 0 with keepalive_off = true sends none. */
	uint32_t keepalive_ms;
	uint32_t keepalive_timeout_ms;
	bool keepalive_off;
	/* An outbound open not ACKed within this is reset and its stream
	 * fails with ETIMEDOUT.  Default 75000 ms (hashicorp's). */
	uint32_t open_timeout_ms;
	/* Outbound opens not yet answered (default 256, hashicorp's
	 * backlog, which resets any beyond it): further opens succeed, but
	 * their SYN (and writes) wait for an answer to an earlier one. */
	unsigned max_opening;
	/* Bytes queued for the socket (default 1 MiB): writes take no more
	 * than fits; control frames may pass it by a little (4 KiB); a peer
	 * that lets even those pile up ends the session (ENOBUFS). */
	size_t max_output;
};

/* Why a session ended, as a positive errno in the closed callback:
 *   0            the peer closed the connection after a normal GoAway,
 *                or yamux_session_close
 *   ECONNRESET   the connection broke or the peer closed it
 *   EPROTO       the peer broke the protocol (we sent GoAway 1)
 *   ECONNABORTED the peer sent GoAway 1, 2 or an unknown code
 *   ETIMEDOUT    a keepalive Ping was not answered
 *   ENOBUFS      the peer stopped reading even control frames
 *   ENOMEM       out of memory */
struct yamux_session_cb {
	/* A peer opened `st` (state pending).  Accept it with
	 * yamux_stream_accept (now or later), or refuse it with
	 * yamux_stream_close (RST).  Until then it counts against the
	 * backlog.  NULL: every inbound open is refused. */
	void (*accept)(struct yamux_session *s, struct yamux_stream *st, void *data);
	/* The session ended (see above); once.  Streams still open have had
	 * their error callbacks.  May call yamux_session_free. */
	void (*closed)(struct yamux_session *s, int err, void *data);
	/* Optional: a Ping we sent was answered, after rtt_us. */
	void (*pong)(struct yamux_session *s, uint64_t rtt_us, void *data);
};

/* A session over the connected stream socket `fd` (made non-blocking;
 * owned from success on, closed at free).  `client` picks odd stream ids,
 * else even.  `opts` may be NULL.  0 or a negative errno. */
int yamux_session_new(struct loop *loop, int fd, bool client, const struct yamux_opts *opts,
		      const struct yamux_session_cb *cb, void *data, struct yamux_session **ret);

/* Bytes already read from fd before the session started (what followed an
 * authentication line), parsed first.  Call right after
 * yamux_session_new.  0, -E2BIG (over 64 KiB), -ENOMEM. */
int yamux_session_preload(struct yamux_session *s, const void *bytes, size_t len);

/* Open a stream: a WindowUpdate with SYN is queued at once (or, with
 * max_opening opens unanswered, once one is) and the stream can be
 * written to before the peer's ACK.  0; -ECONNREFUSED after the peer's
 * GoAway, -ESHUTDOWN once the session has ended, -EMFILE over
 * max_streams, -EOVERFLOW when the ids are used up.  Our own GoAway does
 * not stop our opens (as hashicorp: it refuses the peer's). */
int yamux_open(struct yamux_session *s, struct yamux_stream **ret);

/* Send a normal GoAway: the peer may open no more streams (its opens are
 * reset); streams open go on, and so may our opens.  0, or -ESHUTDOWN
 * when the session has ended. */
int yamux_session_goaway(struct yamux_session *s);

/* End the session now: streams still open get ECONNABORTED (their error
 * callbacks, from the loop), the closed callback follows with 0.
 * Queued output is sent first for up to a second. */
void yamux_session_close(struct yamux_session *s);

/* What a session had queued when it ended or was freed (a GoAway) is sent
 * after it, for up to a second, by a small object on the loop that owns
 * the socket from then on (then half-close, drop the peer's input to its
 * EOF, close).  Close those at once, e.g. before exit or loop_free: */
void yamux_drain_flush(void);

/* Free the session and close its socket.  Streams the user still holds
 * stay valid until closed (every call on them then fails with -ENOTCONN).
 * NULL is a no-op; safe from the session's callbacks. */
void yamux_session_free(struct yamux_session *s);

/* Send a Ping now (also what the keepalive does); its answer is counted
 * in the stats.  0 or -ESHUTDOWN. */
int yamux_session_ping(struct yamux_session *s);

struct yamux_stats {
	unsigned streams;	   /* open now */
	unsigned pending;	   /* inbound, not yet accepted */
	uint64_t opened, accepted; /* outbound opens, inbound accepts */
	uint64_t refused;	   /* inbound opens we reset (backlog, cap, ...) */
	uint64_t resets_sent, resets_received;
	uint64_t pings_sent, pings_answered, pings_received;
	uint64_t bytes_out, bytes_in; /* stream payload */
	uint64_t frames_out, frames_in;
	uint64_t window_grows; /* auto-tuning steps */
	size_t output_queued;  /* bytes waiting for the socket */
	size_t memory;	       /* bytes allocated by the session and its streams */
	bool goaway_sent, goaway_received;
};
void yamux_session_get_stats(const struct yamux_session *s, struct yamux_stats *ret);

/* --- streams: relay endpoints ---
 *
 * yamux_stream_ep() is the stream as a struct relay_ep (see core/relay.h
 * for the rules): read_start/read_stop deliver the peer's bytes, write
 * takes what the send window and the session's output can hold now (then
 * -EAGAIN and one writable later), shutdown sends FIN, close ends the
 * stream: after both FINs it just lets go; otherwise it sends RST.
 * The peer's FIN is EOF (a read of 0) after the bytes before it; its RST
 * is error ECONNRESET; the session's end is error ECONNABORTED (or the
 * session's reason); an open not ACKed in time is error ETIMEDOUT; a
 * refused open (RST before ACK) is ECONNREFUSED. */
struct relay_ep *yamux_stream_ep(struct yamux_stream *st);

/* Accept a pending inbound stream: queue its ACK (with the larger window's
 * delta).  A write or shutdown before accepting accepts first.  0, or -EINVAL
 * when not pending, -ENOTCONN when its session is gone. */
int yamux_stream_accept(struct yamux_stream *st);

/* Shorthand for yamux_stream_ep(st)->ops->close(...). */
void yamux_stream_close(struct yamux_stream *st);

uint32_t yamux_stream_id(const struct yamux_stream *st);
struct yamux_session *yamux_stream_session(const struct yamux_stream *st);

/* A user pointer on the stream, for the accept callback's user before
 * the stream's endpoint callbacks are set. */
void yamux_stream_set_data(struct yamux_stream *st, void *data);
void *yamux_stream_get_data(const struct yamux_stream *st);

#endif
