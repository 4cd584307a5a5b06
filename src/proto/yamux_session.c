/* yamux_session.c - a Yamux session on the core loop (yamux.h).
 *
 * Input.  The socket is read whenever it is readable, into a per-thread
 * scratch buffer, and parsed as it arrives: a frame's payload is handed
 * on in the pieces it came in, so the only state kept between reads is a
 * partial header or "n payload bytes left for stream x".  The session
 * never stops reading (windows bound what a stream can be sent), so
 * control frames always get through: reads stopped while writes are
 * queued is the deadlock other implementations fell into.  A stream that
 * is reading gets its bytes at once (alloc/read from the socket's read
 * callback); what it does not take waits in the stream's receive buffer,
 * which its window bounds.  The window is given back as the user reads:
 * delta = window - buffered - what the peer may still send, sent once it
 * reaches half the window.
 *
 * Output.  Frames are appended to one output buffer and sent by a
 * deferred flush (so an open, its data and its FIN leave in one send); a
 * large write finding the buffer empty goes straight to the socket with
 * writev.  A write takes no more than the send window and the room below
 * max_output; control frames may use 4 KiB more.
 *
 * Callbacks.  Nothing a user calls calls back: the user's callbacks run
 * from the socket's callback or from `kick`, a deferral that works
 * through the streams marked dirty (reads to deliver, EOF, writable,
 * errors).  A stream closed by its user leaves the session's tables at
 * once and its memory goes after the callback (its own deferral); a
 * session freed from a callback is torn down at once and its memory goes
 * when the callback returns (`depth`). */
#include "proto/yamux.h"

#include "core/buf.h"
#include "core/list.h"
#include "core/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_STREAMS  4096u
#define DEFAULT_BACKLOG	     256u
#define DEFAULT_KEEPALIVE    10000u
#define DEFAULT_KA_TIMEOUT   30000u
#define DEFAULT_OPEN_TIMEOUT 75000u
#define DEFAULT_MAX_OUTPUT   ((size_t)1024 * 1024)
#define DEFAULT_MAX_WINDOW   (4u * 1024 * 1024)
#define DEFAULT_TUNE_BUDGET  ((size_t)64 * 1024 * 1024)
#define CONTROL_SLACK	     ((size_t)4096)
#define MAX_WINDOW	     (1u << 30)
#define MAX_PRELOAD	     ((size_t)64 * 1024)
#define SCRATCH_LEN	     ((size_t)256 * 1024)
#define READ_ROUNDS	     8 /* reads per readable event: fairness with other fds */
#define DIRECT_MIN	     ((size_t)16 * 1024) /* writes this large skip the copy */
#define DRAIN_MS	     1000		 /* queued output after a fatal error or close */
#define FIRST_BUCKETS	     64u

enum st_state {
	ST_PENDING, /* inbound, SYN received, not accepted */
	ST_QUEUED,  /* outbound, its SYN waits: max_opening are unACKed */
	ST_SYN_SENT,
	ST_OPEN,
};

struct yamux_stream {
	struct relay_ep ep;	 /* first */
	struct yamux_session *s; /* NULL once the session is freed */
	struct loop *loop;
	uint32_t id;
	enum st_state state;
	struct yamux_stream *hnext;	  /* hash chain, while on the wire */
	struct yamux_stream *prev, *next; /* s->streams: every stream not yet closed by its user */
	struct yamux_stream *dprev, *dnext; /* s->dirty */
	struct yamux_stream *wprev, *wnext; /* s->out_waiters */
	struct yamux_stream *oprev, *onext; /* s->open_queue (ST_QUEUED) */
	bool in_table, dirty, waiting_out;
	bool inbound;
	bool starved;  /* the peer used the whole window since we last grew it */
	bool offered;  /* inbound: the accept callback has had it (the user's from then on) */
	bool need_ack; /* inbound: our next frame carries ACK */
	bool reading;  /* between read_start and read_stop */
	bool want_writable;
	bool fin_recv, fin_sent, eof_given;
	bool reset;  /* RST sent or received: nothing more on the wire */
	bool closed; /* by the user: no callbacks */
	int err;     /* to report (positive), once */
	bool err_given;
	uint32_t send_window; /* what we may still send */
	uint32_t recv_window; /* what the peer may still send */
	uint32_t recv_max;    /* the window we announced */
	struct buf rbuf;
	struct loop_timer open_timer;
	struct loop_defer release;
	void *user;
};

struct yamux_session {
	struct loop *loop;
	int fd;
	bool client;
	struct yamux_opts o;
	const struct yamux_session_cb *cb;
	void *data;

	/* input */
	unsigned char hdr[YAMUX_HDR_LEN];
	size_t hdr_have;
	uint32_t payload_left;
	struct yamux_stream *payload_st; /* NULL: discard the payload */
	uint16_t payload_flags;
	struct buf preload;
	struct loop_defer preload_run;

	/* output */
	struct buf out;
	bool want_write; /* LOOP_WRITE registered */
	struct loop_defer flush;

	/* streams */
	struct yamux_stream **buckets;
	unsigned nbuckets, nstreams, npending;
	uint32_t next_id;
	struct yamux_stream *streams;
	struct yamux_stream *dirty_head, *dirty_tail;
	struct yamux_stream *out_waiters;
	struct yamux_stream *oq_head, *oq_tail; /* opens waiting for their SYN */
	unsigned nopening;			/* SYN sent, no ACK or RST yet */
	size_t tuned; /* receive window added by auto-tuning, all streams */
	struct loop_defer kick;

	/* keepalive */
	struct loop_timer ka_timer, ping_timer;
	uint32_t ping_id;
	bool ping_out;
	uint64_t ping_sent_ns;

	/* the end */
	bool goaway_sent, goaway_received;
	bool ended;	   /* no more streams, frames or input */
	bool closed_given; /* the closed callback ran (or is not owed) */
	int end_err;
	bool freed;
	int depth;

	struct yamux_stats st;
};

static _Thread_local unsigned char *scratch;

static void on_fd(struct loop *loop, int fd, unsigned events, void *data);
static void session_end(struct yamux_session *s, int err);
static void kick_run(struct loop *loop, void *data);
static const struct relay_ep_ops stream_ops;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- the stream table --- */

static unsigned bucket_of(const struct yamux_session *s, uint32_t id)
{
	return (id * 2654435761u) & (s->nbuckets - 1);
}

static struct yamux_stream *lookup(const struct yamux_session *s, uint32_t id)
{
	for (struct yamux_stream *st = s->buckets[bucket_of(s, id)]; st; st = st->hnext)
		if (st->id == id)
			return st;
	return NULL;
}

/* Grow the table to keep chains short; a failed grow only makes them
 * longer. */
static void table_grow(struct yamux_session *s)
{
	unsigned n = s->nbuckets * 2;
	struct yamux_stream **b = calloc(n, sizeof *b);
	if (!b)
		return;
	struct yamux_stream **old = s->buckets;
	unsigned oldn = s->nbuckets;
	s->buckets = b;
	s->nbuckets = n;
	for (unsigned i = 0; i < oldn; i++) {
		for (struct yamux_stream *st = old[i], *nx; st; st = nx) {
			nx = st->hnext;
			unsigned k = bucket_of(s, st->id);
			st->hnext = b[k];
			b[k] = st;
		}
	}
	free(old);
}

static void table_add(struct yamux_session *s, struct yamux_stream *st)
{
	if (s->nstreams >= s->nbuckets * 2)
		table_grow(s);
	unsigned k = bucket_of(s, st->id);
	st->hnext = s->buckets[k];
	s->buckets[k] = st;
	st->in_table = true;
	s->nstreams++;
}

static void unqueue_open(struct yamux_session *s, struct yamux_stream *st)
{
	if (st->oprev)
		st->oprev->onext = st->onext;
	else if (s->oq_head == st)
		s->oq_head = st->onext;
	if (st->onext)
		st->onext->oprev = st->oprev;
	else if (s->oq_tail == st)
		s->oq_tail = st->oprev;
	st->oprev = st->onext = NULL;
}

static void syn_settled(struct yamux_session *s, struct yamux_stream *st);

static void table_del(struct yamux_session *s, struct yamux_stream *st)
{
	if (!st->in_table)
		return;
	for (struct yamux_stream **pp = &s->buckets[bucket_of(s, st->id)]; *pp;
	     pp = &(*pp)->hnext) {
		if (*pp == st) {
			*pp = st->hnext;
			break;
		}
	}
	st->hnext = NULL;
	st->in_table = false;
	s->nstreams--;
	s->tuned -= st->recv_max - s->o.recv_window;
	if (st->state == ST_PENDING) {
		s->npending--;
		st->state = ST_OPEN; /* counted once */
	}
	if (st->state == ST_QUEUED) {
		unqueue_open(s, st);
		st->state = ST_OPEN;
	}
	if (st->state == ST_SYN_SENT)
		syn_settled(s, st);
	if (s->payload_st == st)
		s->payload_st = NULL; /* the rest of its frame is discarded */
}

/* --- output --- */

static int sync_interest(struct yamux_session *s)
{
	bool want = buf_len(&s->out) > 0;
	if (want == s->want_write || s->fd < 0)
		return 0;
	unsigned ev = LOOP_READ | (want ? LOOP_WRITE : 0);
	int err = loop_mod_fd(s->loop, s->fd, ev);
	if (err == 0)
		s->want_write = want;
	return err;
}

static void wake_out_waiters(struct yamux_session *s);

/* Send what is queued, as much as the socket takes.  On a socket error the
 * session ends (reported from the loop). */
static void flush_now(struct yamux_session *s)
{
	while (buf_len(&s->out) > 0 && s->fd >= 0) {
		ssize_t n =
		    send(s->fd, buf_data(&s->out), buf_len(&s->out), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			buf_consume(&s->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		buf_free(&s->out);
		session_end(s, ECONNRESET);
		return;
	}
	if (sync_interest(s) < 0)
		session_end(s, ENOMEM);
	if (s->out_waiters && buf_len(&s->out) <= s->o.max_output / 2)
		wake_out_waiters(s);
}

static void flush_deferred(struct loop *loop, void *data)
{
	flush_now(data);
}

static void arm_flush(struct yamux_session *s)
{
	if (!s->want_write)
		loop_defer(s->loop, &s->flush, flush_deferred, s);
}

/* Queue one frame.  Control frames (payload NULL) may pass max_output by
 * CONTROL_SLACK; past that the peer is not reading at all: ENOBUFS. */
static int queue_frame(struct yamux_session *s, unsigned type, unsigned flags, uint32_t id,
		       uint32_t length, const void *payload, size_t plen)
{
	struct yamux_hdr h = {YAMUX_VERSION, (uint8_t)type, (uint16_t)flags, id, length};
	unsigned char raw[YAMUX_HDR_LEN];

	if (s->fd < 0 || s->ended)
		return -ESHUTDOWN;
	yamux_hdr_encode(&h, raw);
	int err = buf_append(&s->out, raw, sizeof raw);
	if (err == 0 && plen > 0 && (err = buf_append(&s->out, payload, plen)) < 0)
		buf_consume(&s->out, 0); /* cannot happen: room was checked */
	if (err < 0) {
		session_end(s, err == -ENOBUFS ? ENOBUFS : ENOMEM);
		return err;
	}
	s->st.frames_out++;
	arm_flush(s);
	return 0;
}

static int send_control(struct yamux_session *s, unsigned type, unsigned flags, uint32_t id,
			uint32_t length)
{
	return queue_frame(s, type, flags, id, length, NULL, 0);
}

/* --- the dirty list: work for `kick` --- */

static void mark_dirty(struct yamux_stream *st)
{
	struct yamux_session *s = st->s;
	if (!s || st->dirty || st->closed)
		return;
	st->dirty = true;
	st->dnext = NULL;
	st->dprev = s->dirty_tail;
	if (s->dirty_tail)
		s->dirty_tail->dnext = st;
	else
		s->dirty_head = st;
	s->dirty_tail = st;
	loop_defer(s->loop, &s->kick, kick_run, s);
}

static void unmark_dirty(struct yamux_session *s, struct yamux_stream *st)
{
	if (!st->dirty)
		return;
	if (st->dprev)
		st->dprev->dnext = st->dnext;
	else
		s->dirty_head = st->dnext;
	if (st->dnext)
		st->dnext->dprev = st->dprev;
	else
		s->dirty_tail = st->dprev;
	st->dirty = false;
	st->dprev = st->dnext = NULL;
}

static void wait_out(struct yamux_session *s, struct yamux_stream *st)
{
	if (st->waiting_out)
		return;
	st->waiting_out = true;
	st->wprev = NULL;
	st->wnext = s->out_waiters;
	if (s->out_waiters)
		s->out_waiters->wprev = st;
	s->out_waiters = st;
}

static void unwait_out(struct yamux_session *s, struct yamux_stream *st)
{
	if (!st->waiting_out)
		return;
	if (st->wprev)
		st->wprev->wnext = st->wnext;
	else
		s->out_waiters = st->wnext;
	if (st->wnext)
		st->wnext->wprev = st->wprev;
	st->wprev = st->wnext = NULL;
	st->waiting_out = false;
}

static void wake_out_waiters(struct yamux_session *s)
{
	while (s->out_waiters) {
		struct yamux_stream *st = s->out_waiters;
		unwait_out(s, st);
		mark_dirty(st);
	}
}

/* --- streams --- */

static struct yamux_stream *stream_new(struct yamux_session *s, uint32_t id, enum st_state state)
{
	struct yamux_stream *st = calloc(1, sizeof *st);
	if (!st)
		return NULL;
	st->ep.ops = &stream_ops;
	st->s = s;
	st->loop = s->loop;
	st->id = id;
	st->state = state;
	st->send_window = YAMUX_INITIAL_WINDOW;
	st->recv_max = s->o.recv_window;
	st->recv_window = YAMUX_INITIAL_WINDOW; /* until our opening frame grows it */
	buf_init(&st->rbuf, st->recv_max);
	LIST_PUSH(s->streams, st);
	table_add(s, st);
	if (state == ST_PENDING) {
		s->npending++;
		st->inbound = true;
	}
	return st;
}

/* The delta that grows the window from the initial one to ours, sent with
 * our first frame (SYN or ACK). */
static uint32_t opening_delta(struct yamux_stream *st)
{
	uint32_t d = st->recv_max - YAMUX_INITIAL_WINDOW;
	st->recv_window += d;
	return d;
}

/* An inbound stream's first frame of ours carries ACK (and the window). */
static unsigned take_ack(struct yamux_stream *st)
{
	if (!st->need_ack)
		return 0;
	st->need_ack = false;
	if (st->state == ST_PENDING) {
		st->s->npending--;
		st->state = ST_OPEN;
		st->s->st.accepted++;
	}
	return YAMUX_ACK;
}

/* Give the window back once half of it has been read. */
static void credit(struct yamux_stream *st)
{
	struct yamux_session *s = st->s;
	if (!s || !st->in_table || st->fin_recv || st->reset || st->need_ack)
		return;
	/* recv_window + buffered <= recv_max always: the peer's bytes are
	 * taken off the window as they arrive, not when their header does */
	uint32_t delta = st->recv_max - (uint32_t)buf_len(&st->rbuf) - st->recv_window;
	if (delta < st->recv_max / 2)
		return;
	/* Auto-tuning: the peer ran out of window while our reader kept up
	 * (nothing waits here): the window, not the reader, is what limits
	 * the stream, so double it, up to the cap.  A stream whose reader
	 * lags never grows (its bytes wait in rbuf), nor one that never
	 * fills its window. */
	uint32_t grow = 0;
	if (st->starved && buf_len(&st->rbuf) == 0 && st->recv_max < s->o.max_recv_window) {
		grow = s->o.max_recv_window - st->recv_max;
		if (grow > st->recv_max)
			grow = st->recv_max;
		if (grow > s->o.tune_budget - s->tuned)
			grow = (uint32_t)(s->o.tune_budget - s->tuned);
	}
	if (send_control(s, YAMUX_WINDOW_UPDATE, 0, st->id, delta + grow) < 0)
		return;
	if (grow) {
		s->tuned += grow;
		st->recv_max += grow;
		buf_set_max(&st->rbuf, st->recv_max); /* growing: cannot fail */
		st->starved = false;
		s->st.window_grows++;
	}
	st->recv_window += delta + grow;
}

/* The stream is off the wire (reset either way, or both FINs): it leaves
 * the table so its id's late frames are discarded. */
static void stream_done_on_wire(struct yamux_stream *st)
{
	struct yamux_session *s = st->s;
	loop_timer_stop(st->loop, &st->open_timer);
	if (s) {
		table_del(s, st);
		unwait_out(s, st);
	}
}

static void stream_fail(struct yamux_stream *st, int err)
{
	if (st->err == 0 && !st->err_given)
		st->err = err;
	buf_free(&st->rbuf);
	mark_dirty(st);
}

static void send_rst(struct yamux_stream *st)
{
	struct yamux_session *s = st->s;
	if (!st->reset && st->in_table && s && !s->ended) {
		if (send_control(s, YAMUX_WINDOW_UPDATE, YAMUX_RST, st->id, 0) == 0)
			s->st.resets_sent++;
	}
	st->reset = true;
	stream_done_on_wire(st);
}

static void st_close(struct relay_ep *ep);

static void stream_release(struct loop *loop, void *data)
{
	struct yamux_stream *st = data;
	buf_free(&st->rbuf);
	free(st);
}

/* --- the session's end --- */

/* A drainer: what a session had queued when it ended (a GoAway, say),
 * sent after it, by itself, for up to DRAIN_MS; then a half-close, and the
 * peer's input read and dropped until its EOF or the deadline, so the
 * close sends a FIN, not a reset that could make the peer drop the
 * GoAway unread.  It owns the socket and frees itself; the session (and
 * its user) need not wait. */
struct drainer {
	struct drainer *prev, *next;
	struct loop *loop;
	int fd;
	bool shut;
	struct buf out;
	struct loop_timer deadline;
};

static _Thread_local struct drainer *drainers;

static void drainer_free(struct drainer *d)
{
	loop_timer_stop(d->loop, &d->deadline);
	loop_del_fd(d->loop, d->fd);
	close(d->fd);
	buf_free(&d->out);
	LIST_UNLINK(drainers, d);
	free(d);
}

static void drainer_deadline(struct loop *loop, void *data)
{
	drainer_free(data);
}

static void drainer_io(struct loop *loop, int fd, unsigned events, void *data)
{
	struct drainer *d = data;
	unsigned char sink[4096];
	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
		if (n == 0 ||
		    (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			drainer_free(d); /* the peer is done (or gone) */
			return;
		}
		if (n < 0)
			break;
	}
	while (buf_len(&d->out) > 0) {
		ssize_t n =
		    send(fd, buf_data(&d->out), buf_len(&d->out), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			buf_consume(&d->out, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		drainer_free(d);
		return;
	}
	if (!d->shut) {
		d->shut = true;
		(void)shutdown(fd, SHUT_WR);
		loop_mod_fd(d->loop, fd, LOOP_READ);
	}
}

/* Hand fd and the session's output over; the fd is closed on failure. */
static void drain_start(struct yamux_session *s)
{
	struct drainer *d = calloc(1, sizeof *d);
	if (d) {
		d->loop = s->loop;
		d->fd = s->fd;
		d->out = s->out; /* the memory moves with it */
		buf_init(&s->out, 0);
		if (loop_del_fd(s->loop, s->fd) == 0 &&
		    loop_add_fd(s->loop, d->fd, LOOP_READ | LOOP_WRITE, drainer_io, d) == 0) {
			LIST_PUSH(drainers, d);
			loop_timer_start(s->loop, &d->deadline, DRAIN_MS, drainer_deadline, d);
			s->fd = -1;
			s->want_write = false;
			/* the socket usually takes it all now: then even a user
			 * who exits at once (yamux_drain_flush) has sent it */
			drainer_io(d->loop, d->fd, LOOP_WRITE, d);
			return;
		}
		buf_free(&d->out);
		free(d);
	}
	loop_del_fd(s->loop, s->fd);
	close(s->fd);
	s->fd = -1;
	buf_free(&s->out);
}

void yamux_drain_flush(void)
{
	while (drainers)
		drainer_free(drainers);
}

/* End the session (once): streams get their errors and the user the
 * closed callback, from the loop.  With output queued (a GoAway, say) the
 * socket stays open for up to DRAIN_MS to send it. */
static void session_end(struct yamux_session *s, int err)
{
	if (s->ended)
		return;
	s->ended = true;
	s->end_err = err;
	loop_timer_stop(s->loop, &s->ka_timer);
	loop_timer_stop(s->loop, &s->ping_timer);
	int serr = err == 0 ? ECONNABORTED : err;
	for (struct yamux_stream *st = s->streams; st; st = st->next) {
		loop_timer_stop(s->loop, &st->open_timer);
		if (!(st->fin_recv && st->fin_sent) && !st->reset)
			stream_fail(st, serr);
		st->reset = true;
	}
	for (struct yamux_stream *st = s->streams; st; st = st->next)
		if (st->in_table)
			table_del(s, st);
	s->out_waiters = NULL;
	for (struct yamux_stream *st = s->streams; st; st = st->next)
		st->waiting_out = false, st->wprev = st->wnext = NULL;
	if (s->fd >= 0 && buf_len(&s->out) > 0 && err != ECONNRESET && err != ENOBUFS) {
		drain_start(s);
	} else if (s->fd >= 0) {
		buf_free(&s->out);
		loop_del_fd(s->loop, s->fd);
		close(s->fd);
		s->fd = -1;
	}
	loop_defer(s->loop, &s->kick, kick_run, s);
}

static void protocol_error(struct yamux_session *s)
{
	if (s->ended)
		return;
	send_control(s, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_PROTOCOL);
	session_end(s, EPROTO);
}

/* --- kick: the user's callbacks, from the loop --- */

static bool session_gone(const struct yamux_session *s)
{
	return s->freed;
}

/* Deliver to one dirty stream what it is owed.  False when the session
 * was freed by a callback (stop touching it). */
static bool stream_work(struct yamux_session *s, struct yamux_stream *st)
{
	if (st->closed)
		return true;
	if (st->inbound && !st->offered) {
		/* a new inbound stream: offered once.  One already off the
		 * wire (reset, or the session ended, before the loop got here:
		 * table_del made it ST_OPEN) nobody will ever see or close:
		 * let it go now. */
		st->offered = true;
		if (!st->in_table) {
			st_close(&st->ep);
			return true;
		}
		if (!s->cb || !s->cb->accept) {
			st_close(&st->ep);
			return true;
		}
		s->cb->accept(s, st, s->data);
		if (session_gone(s))
			return false;
		if (st->closed)
			return true;
	}
	if (!st->ep.cb)
		return true; /* nobody to tell yet: kept for later */
	while (st->reading && buf_len(&st->rbuf) > 0 && !st->closed) {
		void *mem = NULL;
		size_t room = 0;
		st->ep.cb->alloc(&st->ep, buf_len(&st->rbuf), &mem, &room);
		if (session_gone(s))
			return false;
		/* alloc may have ended the session, which dropped rbuf: a
		 * read of what is left then would be a read of 0, EOF */
		if (st->closed || !st->reading || room == 0 || !mem || buf_len(&st->rbuf) == 0)
			break;
		size_t n = buf_len(&st->rbuf) < room ? buf_len(&st->rbuf) : room;
		memcpy(mem, buf_data(&st->rbuf), n);
		buf_consume(&st->rbuf, n);
		if (buf_len(&st->rbuf) == 0)
			buf_free(&st->rbuf);
		st->ep.cb->read(&st->ep, n);
		if (session_gone(s))
			return false;
		credit(st);
	}
	if (st->closed)
		return true;
	if (st->reading && st->fin_recv && !st->eof_given && buf_len(&st->rbuf) == 0 && !st->err) {
		st->eof_given = true;
		st->reading = false;
		st->ep.cb->read(&st->ep, 0);
		if (session_gone(s))
			return false;
		if (st->closed)
			return true;
	}
	if (st->err && !st->err_given) {
		st->err_given = true;
		st->reading = false;
		st->want_writable = false;
		st->ep.cb->error(&st->ep, st->err);
		if (session_gone(s))
			return false;
		return true;
	}
	if (st->want_writable && !st->err && !s->ended && st->send_window > 0 &&
	    st->state != ST_QUEUED) {
		if (buf_len(&s->out) >= s->o.max_output) {
			wait_out(s, st);
			return true;
		}
		st->want_writable = false;
		st->ep.cb->writable(&st->ep);
		if (session_gone(s))
			return false;
	}
	return true;
}

static void kick_run(struct loop *loop, void *data)
{
	struct yamux_session *s = data;

	s->depth++;
	/* Only what is dirty now: a stream marked again by its own callback
	 * waits for the next round (the loop runs it before sleeping). */
	struct yamux_stream *last = s->dirty_tail;
	while (s->dirty_head && !s->freed) {
		struct yamux_stream *st = s->dirty_head;
		unmark_dirty(s, st);
		if (!stream_work(s, st) || st == last)
			break;
	}
	if (!s->freed && s->ended && !s->closed_given && !s->dirty_head) {
		s->closed_given = true;
		if (s->cb && s->cb->closed)
			s->cb->closed(s, s->end_err, s->data);
	}
	s->depth--;
	if (s->freed && s->depth == 0)
		free(s);
}

/* --- input --- */

/* Payload for st (may be NULL: discarded). */
static bool take_payload(struct yamux_session *s, const unsigned char *p, size_t n)
{
	struct yamux_stream *st = s->payload_st;
	s->st.bytes_in += n;
	if (!st || st->closed || st->reset)
		return true;
	st->recv_window -= (uint32_t)n; /* on_frame checked the frame fits */
	if (st->recv_window == 0)
		st->starved = true;
	/* straight to a reader with nothing queued */
	while (n > 0 && st->reading && st->ep.cb && buf_len(&st->rbuf) == 0 && !st->closed &&
	       !st->err) {
		void *mem = NULL;
		size_t room = 0;
		st->ep.cb->alloc(&st->ep, n, &mem, &room);
		if (session_gone(s))
			return false;
		if (st->closed || !st->reading || room == 0 || !mem)
			break;
		size_t c = n < room ? n : room;
		memcpy(mem, p, c);
		p += c;
		n -= c;
		st->ep.cb->read(&st->ep, c);
		if (session_gone(s))
			return false;
	}
	if (st->closed || st->reset || s->ended)
		return true;
	if (n > 0 && buf_append(&st->rbuf, p, n) < 0) {
		/* the window bounds rbuf, so only ENOMEM gets here */
		session_end(s, ENOMEM);
		return true;
	}
	if (n > 0)
		mark_dirty(st);
	credit(st);
	return true;
}

/* FIN and RST of a stream frame, after its payload. */
static void stream_flags(struct yamux_session *s, struct yamux_stream *st, unsigned flags)
{
	if (!st || st->reset)
		return;
	if (flags & YAMUX_RST) {
		s->st.resets_received++;
		int err = st->state == ST_SYN_SENT ? ECONNREFUSED : ECONNRESET;
		st->reset = true;
		stream_done_on_wire(st);
		if (!st->closed)
			stream_fail(st, err);
		return;
	}
	if ((flags & YAMUX_FIN) && !st->fin_recv) {
		st->fin_recv = true;
		if (st->fin_sent)
			stream_done_on_wire(st);
		mark_dirty(st);
	}
}

static void inbound_open(struct yamux_session *s, const struct yamux_hdr *h)
{
	uint32_t id = h->stream_id;
	bool theirs = s->client ? (id % 2 == 0) : (id % 2 == 1);

	if (id == 0 || !theirs || lookup(s, id)) {
		protocol_error(s); /* a duplicate open, or an id of our own */
		return;
	}
	bool refuse =
	    s->goaway_sent || s->nstreams >= s->o.max_streams || s->npending >= s->o.accept_backlog;
	struct yamux_stream *st = refuse ? NULL : stream_new(s, id, ST_PENDING);
	if (!st) {
		s->st.refused++;
		s->st.resets_sent++;
		send_control(s, YAMUX_WINDOW_UPDATE, YAMUX_RST, id, 0);
		return;
	}
	st->need_ack = true;
	if (h->type == YAMUX_WINDOW_UPDATE)
		st->send_window += h->length > MAX_WINDOW ? MAX_WINDOW : h->length;
	mark_dirty(st);
}

static void on_frame(struct yamux_session *s, const struct yamux_hdr *h)
{
	s->st.frames_in++;
	switch (h->type) {
	case YAMUX_PING:
		if (h->flags & YAMUX_SYN) {
			s->st.pings_received++;
			send_control(s, YAMUX_PING, YAMUX_ACK, 0, h->length);
		} else if ((h->flags & YAMUX_ACK) && s->ping_out && h->length == s->ping_id) {
			s->ping_out = false;
			loop_timer_stop(s->loop, &s->ping_timer);
			s->st.pings_answered++;
			if (s->cb && s->cb->pong) {
				uint64_t rtt = (now_ns() - s->ping_sent_ns) / 1000;
				s->cb->pong(s, rtt, s->data);
			}
		}
		return;
	case YAMUX_GO_AWAY:
		if (h->length == YAMUX_GOAWAY_NORMAL)
			s->goaway_received = true;
		else
			session_end(s, ECONNABORTED);
		return;
	default:
		break;
	}

	if (h->flags & YAMUX_SYN) {
		inbound_open(s, h);
		if (s->ended)
			return;
	}
	struct yamux_stream *st = lookup(s, h->stream_id);
	if (h->type == YAMUX_DATA) {
		s->payload_st = NULL;
		s->payload_left = h->length;
		s->payload_flags = h->flags;
	}
	if (!st) {
		if (h->type == YAMUX_DATA && h->length > 0)
			return; /* discarded as it arrives, then nothing */
		return;
	}
	if ((h->flags & YAMUX_ACK) && st->state == ST_SYN_SENT)
		syn_settled(s, st);
	if (h->type == YAMUX_WINDOW_UPDATE) {
		if (!(h->flags & YAMUX_SYN)) {
			uint64_t w = (uint64_t)st->send_window + h->length;
			if (w > UINT32_MAX) {
				protocol_error(s);
				return;
			}
			st->send_window = (uint32_t)w;
		}
		if (st->want_writable && st->send_window > 0)
			mark_dirty(st);
		stream_flags(s, st, h->flags);
		return;
	}
	/* data */
	if (h->length > st->recv_window) {
		protocol_error(s); /* over the window */
		return;
	}
	if (!st->fin_recv)
		s->payload_st = st;
	if (h->length == 0)
		stream_flags(s, st, h->flags);
}

/* Parse and act on n bytes of input.  False when the session was freed. */
static bool take_input(struct yamux_session *s, const unsigned char *p, size_t n)
{
	while (n > 0 && !s->ended) {
		if (s->payload_left > 0) {
			size_t c = n < s->payload_left ? n : s->payload_left;
			if (!take_payload(s, p, c))
				return false;
			p += c;
			n -= c;
			s->payload_left -= (uint32_t)c;
			if (s->payload_left == 0 && !s->ended) {
				struct yamux_stream *st = s->payload_st;
				s->payload_st = NULL;
				if (st)
					stream_flags(s, st, s->payload_flags);
			}
			continue;
		}
		size_t c = YAMUX_HDR_LEN - s->hdr_have;
		if (c > n)
			c = n;
		memcpy(s->hdr + s->hdr_have, p, c);
		s->hdr_have += c;
		p += c;
		n -= c;
		if (s->hdr_have < YAMUX_HDR_LEN)
			break;
		s->hdr_have = 0;
		struct yamux_hdr h;
		if (yamux_hdr_parse(s->hdr, YAMUX_HDR_LEN, &h) < 0) {
			protocol_error(s);
			break;
		}
		on_frame(s, &h);
		if (s->freed)
			return false;
	}
	return true;
}

static void on_readable(struct yamux_session *s)
{
	if (!scratch && !(scratch = malloc(SCRATCH_LEN))) {
		session_end(s, ENOMEM);
		return;
	}
	for (int round = 0; round < READ_ROUNDS && !s->ended; round++) {
		ssize_t n = recv(s->fd, scratch, SCRATCH_LEN, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* EOF: after our normal GoAway or theirs it is the
			 * expected end */
			session_end(
			    s, n == 0 && (s->goaway_received || s->goaway_sent) ? 0 : ECONNRESET);
			return;
		}
		if (!take_input(s, scratch, (size_t)n))
			return;
		if ((size_t)n < SCRATCH_LEN)
			return;
	}
}

static void on_fd(struct loop *loop, int fd, unsigned events, void *data)
{
	struct yamux_session *s = data;

	s->depth++;
	if (events & LOOP_WRITE)
		flush_now(s);
	if (!s->freed && s->fd >= 0 && !s->ended && (events & (LOOP_READ | LOOP_ERROR)))
		on_readable(s);
	s->depth--;
	if (s->freed && s->depth == 0)
		free(s);
}

static void preload_run(struct loop *loop, void *data)
{
	struct yamux_session *s = data;
	s->depth++;
	struct buf b = s->preload;
	buf_init(&s->preload, 0);
	take_input(s, buf_data(&b), buf_len(&b));
	buf_free(&b);
	s->depth--;
	if (s->freed && s->depth == 0)
		free(s);
}

/* --- keepalive --- */

static void ping_timeout(struct loop *loop, void *data)
{
	struct yamux_session *s = data;
	session_end(s, ETIMEDOUT);
}

static int ping_send(struct yamux_session *s)
{
	if (s->ended)
		return -ESHUTDOWN;
	if (s->ping_out)
		return 0; /* its answer will do */
	s->ping_id++;
	int err = send_control(s, YAMUX_PING, YAMUX_SYN, 0, s->ping_id);
	if (err < 0)
		return err;
	s->ping_out = true;
	s->ping_sent_ns = now_ns();
	s->st.pings_sent++;
	loop_timer_start(s->loop, &s->ping_timer, s->o.keepalive_timeout_ms, ping_timeout, s);
	return 0;
}

static void ka_tick(struct loop *loop, void *data)
{
	struct yamux_session *s = data;
	ping_send(s);
	if (!s->ended)
		loop_timer_start(loop, &s->ka_timer, s->o.keepalive_ms, ka_tick, s);
}

/* --- the public session calls --- */

int yamux_session_new(struct loop *loop, int fd, bool client, const struct yamux_opts *opts,
		      const struct yamux_session_cb *cb, void *data, struct yamux_session **ret)
{
	struct yamux_opts o = opts ? *opts : (struct yamux_opts){0};

	if (!loop || fd < 0 || !ret)
		return -EINVAL;
	if (o.recv_window == 0)
		o.recv_window = YAMUX_INITIAL_WINDOW;
	if (o.recv_window < YAMUX_INITIAL_WINDOW || o.recv_window > MAX_WINDOW)
		return -EINVAL;
	if (o.max_recv_window == 0)
		o.max_recv_window =
		    o.recv_window > DEFAULT_MAX_WINDOW ? o.recv_window : DEFAULT_MAX_WINDOW;
	if (o.max_recv_window < o.recv_window || o.max_recv_window > MAX_WINDOW)
		return -EINVAL;
	if (!o.tune_budget)
		o.tune_budget = DEFAULT_TUNE_BUDGET;
	if (!o.max_streams)
		o.max_streams = DEFAULT_MAX_STREAMS;
	if (!o.accept_backlog)
		o.accept_backlog = DEFAULT_BACKLOG;
	if (!o.keepalive_ms && !o.keepalive_off)
		o.keepalive_ms = DEFAULT_KEEPALIVE;
	if (!o.keepalive_timeout_ms)
		o.keepalive_timeout_ms = DEFAULT_KA_TIMEOUT;
	if (!o.open_timeout_ms)
		o.open_timeout_ms = DEFAULT_OPEN_TIMEOUT;
	if (!o.max_output)
		o.max_output = DEFAULT_MAX_OUTPUT;
	if (!o.max_opening)
		o.max_opening = DEFAULT_BACKLOG;

	struct yamux_session *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->buckets = calloc(FIRST_BUCKETS, sizeof *s->buckets);
	if (!s->buckets) {
		free(s);
		return -ENOMEM;
	}
	s->nbuckets = FIRST_BUCKETS;
	s->loop = loop;
	s->fd = fd;
	s->client = client;
	s->o = o;
	s->cb = cb;
	s->data = data;
	s->next_id = client ? 1 : 2;
	buf_init(&s->out, o.max_output + CONTROL_SLACK);
	buf_init(&s->preload, MAX_PRELOAD);

	int fl = fcntl(fd, F_GETFL);
	int err = 0;
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		err = -errno;
	if (err == 0) {
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		err = loop_add_fd(loop, fd, LOOP_READ, on_fd, s);
	}
	if (err < 0) {
		free(s->buckets);
		free(s);
		return err;
	}
	if (!o.keepalive_off && o.keepalive_ms)
		loop_timer_start(loop, &s->ka_timer, o.keepalive_ms, ka_tick, s);
	*ret = s;
	return 0;
}

int yamux_session_preload(struct yamux_session *s, const void *bytes, size_t len)
{
	if (len > MAX_PRELOAD - buf_len(&s->preload))
		return -E2BIG;
	int err = buf_append(&s->preload, bytes, len);
	if (err == 0)
		loop_defer(s->loop, &s->preload_run, preload_run, s);
	return err;
}

static void open_timeout(struct loop *loop, void *data)
{
	struct yamux_stream *st = data;
	if (st->state != ST_SYN_SENT || st->reset)
		return;
	send_rst(st);
	stream_fail(st, ETIMEDOUT);
}

/* The SYN of st: WindowUpdate|SYN with our window's delta, then its FIN if
 * the user half-closed while it waited in the queue. */
static int send_syn(struct yamux_session *s, struct yamux_stream *st)
{
	int err = send_control(s, YAMUX_WINDOW_UPDATE, YAMUX_SYN, st->id, opening_delta(st));
	if (err < 0)
		return err;
	st->state = ST_SYN_SENT;
	s->nopening++;
	loop_timer_start(s->loop, &st->open_timer, s->o.open_timeout_ms, open_timeout, st);
	if (st->fin_sent)
		send_control(s, YAMUX_WINDOW_UPDATE, YAMUX_FIN, st->id, 0);
	return 0;
}

/* An open was answered (ACK or RST) or given up: the next queued SYN goes.
 * hashicorp's peers reset opens beyond their backlog (256) instead of
 * waiting, and its own OpenStream blocks at that many: so do we, without
 * blocking (the queued stream's writes wait). */
static void syn_settled(struct yamux_session *s, struct yamux_stream *st)
{
	st->state = ST_OPEN;
	loop_timer_stop(s->loop, &st->open_timer);
	s->nopening--;
	while (s->oq_head && s->nopening < s->o.max_opening && !s->ended) {
		struct yamux_stream *q = s->oq_head;
		unqueue_open(s, q);
		if (send_syn(s, q) < 0)
			break;
		if (q->want_writable)
			mark_dirty(q);
	}
}

int yamux_open(struct yamux_session *s, struct yamux_stream **ret)
{
	if (s->ended)
		return -ESHUTDOWN;
	if (s->goaway_received)
		return -ECONNREFUSED;
	if (s->nstreams >= s->o.max_streams)
		return -EMFILE;
	if (s->next_id == 0 || s->next_id > UINT32_MAX - 2)
		return -EOVERFLOW;
	struct yamux_stream *st = stream_new(s, s->next_id, ST_QUEUED);
	if (!st)
		return -ENOMEM;
	s->next_id += 2;
	if (s->nopening < s->o.max_opening) {
		int err = send_syn(s, st);
		if (err < 0) {
			/* the failed SYN ended the session, which marked st
			 * dirty with the others: off that list too */
			unmark_dirty(s, st);
			table_del(s, st);
			LIST_UNLINK(s->streams, st);
			buf_free(&st->rbuf);
			free(st);
			return err;
		}
	} else {
		st->oprev = s->oq_tail;
		if (s->oq_tail)
			s->oq_tail->onext = st;
		else
			s->oq_head = st;
		s->oq_tail = st;
	}
	s->st.opened++;
	*ret = st;
	return 0;
}

int yamux_session_goaway(struct yamux_session *s)
{
	if (s->ended)
		return -ESHUTDOWN;
	if (s->goaway_sent)
		return 0;
	int err = send_control(s, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_NORMAL);
	if (err == 0)
		s->goaway_sent = true;
	return err;
}

void yamux_session_close(struct yamux_session *s)
{
	if (!s || s->ended)
		return;
	if (!s->goaway_sent)
		yamux_session_goaway(s);
	session_end(s, 0);
}

int yamux_session_ping(struct yamux_session *s)
{
	return ping_send(s);
}

void yamux_session_free(struct yamux_session *s)
{
	if (!s || s->freed)
		return;
	if (s->fd >= 0 && buf_len(&s->out) > 0) {
		drain_start(s); /* what is queued (a GoAway at exit) still goes */
	} else if (s->fd >= 0) {
		loop_del_fd(s->loop, s->fd);
		close(s->fd);
		s->fd = -1;
	}
	loop_timer_stop(s->loop, &s->ka_timer);
	loop_timer_stop(s->loop, &s->ping_timer);
	loop_defer_cancel(s->loop, &s->flush);
	loop_defer_cancel(s->loop, &s->kick);
	loop_defer_cancel(s->loop, &s->preload_run);
	s->oq_head = s->oq_tail = NULL;
	while (s->streams) {
		struct yamux_stream *st = s->streams;
		LIST_UNLINK(s->streams, st);
		loop_timer_stop(s->loop, &st->open_timer);
		buf_free(&st->rbuf);
		if (st->inbound && !st->offered) {
			free(st); /* nobody else knows it */
			continue;
		}
		st->s = NULL;
		st->in_table = false;
		st->dirty = false;
		st->waiting_out = false;
	}
	buf_free(&s->out);
	buf_free(&s->preload);
	free(s->buckets);
	s->buckets = NULL;
	s->freed = true;
	if (s->depth == 0)
		free(s);
}

void yamux_session_get_stats(const struct yamux_session *s, struct yamux_stats *ret)
{
	*ret = s->st;
	ret->streams = s->nstreams;
	ret->pending = s->npending;
	ret->output_queued = buf_len(&s->out);
	ret->goaway_sent = s->goaway_sent;
	ret->goaway_received = s->goaway_received;
	size_t mem = sizeof *s + s->nbuckets * sizeof *s->buckets + buf_alloc_size(&s->out) +
		     buf_alloc_size(&s->preload);
	for (const struct yamux_stream *st = s->streams; st; st = st->next)
		mem += sizeof *st + buf_alloc_size(&st->rbuf);
	ret->memory = mem;
}

/* --- streams: the endpoint --- */

struct relay_ep *yamux_stream_ep(struct yamux_stream *st)
{
	return &st->ep;
}

uint32_t yamux_stream_id(const struct yamux_stream *st)
{
	return st->id;
}

struct yamux_session *yamux_stream_session(const struct yamux_stream *st)
{
	return st->s;
}

void yamux_stream_set_data(struct yamux_stream *st, void *data)
{
	st->user = data;
}

void *yamux_stream_get_data(const struct yamux_stream *st)
{
	return st->user;
}

int yamux_stream_accept(struct yamux_stream *st)
{
	struct yamux_session *s = st->s;
	if (!s)
		return -ENOTCONN;
	if (st->state != ST_PENDING || !st->need_ack)
		return -EINVAL;
	if (s->ended || st->reset)
		return -ECONNRESET;
	unsigned ack = take_ack(st);
	int err = send_control(s, YAMUX_WINDOW_UPDATE, ack, st->id, opening_delta(st));
	if (err < 0)
		return err;
	credit(st); /* data read before the ACK */
	return 0;
}

static struct yamux_stream *ep_stream(struct relay_ep *ep)
{
	return (struct yamux_stream *)ep;
}

static int st_read_start(struct relay_ep *ep)
{
	struct yamux_stream *st = ep_stream(ep);
	if (!st->s)
		return -ENOTCONN;
	if (st->eof_given || st->err_given)
		return 0;
	st->reading = true;
	if (buf_len(&st->rbuf) > 0 || st->fin_recv || st->err)
		mark_dirty(st);
	return 0;
}

static void st_read_stop(struct relay_ep *ep)
{
	ep_stream(ep)->reading = false;
}

/* Take what the window and the output allow; -EAGAIN for nothing. */
static ssize_t st_write(struct relay_ep *ep, const void *bytes, size_t len)
{
	struct yamux_stream *st = ep_stream(ep);
	struct yamux_session *s = st->s;

	if (!s)
		return -ENOTCONN;
	if (st->err_given || st->err) {
		/* the error callback is on its way: make sure of it (it came
		 * when no callbacks were set, and stream_work kept it) */
		if (!st->err_given)
			mark_dirty(st);
		return -EAGAIN;
	}
	if (st->fin_sent)
		return -EPIPE;
	if (s->ended || st->reset)
		return -EAGAIN;
	if (st->state == ST_QUEUED) {
		st->want_writable = true; /* once its SYN has gone */
		return -EAGAIN;
	}
	size_t out = buf_len(&s->out);
	size_t room = out < s->o.max_output ? s->o.max_output - out : 0;
	size_t n = len;
	if (n > st->send_window)
		n = st->send_window;
	if (n > room)
		n = room;
	if (n < len) {
		st->want_writable = true;
		if (n == room)
			wait_out(s, st);
	}
	if (n == 0)
		return -EAGAIN;

	/* Written before it was accepted: accept it now, so the ACK carries
	 * our window's delta (a Data|ACK could not). */
	if (st->need_ack && yamux_stream_accept(st) < 0)
		return -EAGAIN; /* the session is ending: its error follows */
	struct yamux_hdr h = {YAMUX_VERSION, YAMUX_DATA, 0, st->id, (uint32_t)n};
	unsigned char raw[YAMUX_HDR_LEN];
	yamux_hdr_encode(&h, raw);
	size_t sent = 0;
	if (out == 0 && n >= DIRECT_MIN && !s->want_write) {
		struct iovec iov[2] = {{raw, sizeof raw}, {(void *)bytes, n}};
		ssize_t w = writev(s->fd, iov, 2);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			session_end(s, ECONNRESET);
			return (ssize_t)n; /* lost with the session, which says so */
		}
		sent = w > 0 ? (size_t)w : 0;
	}
	int err = 0;
	if (sent < sizeof raw)
		err = buf_append(&s->out, raw + sent, sizeof raw - sent);
	if (err == 0) {
		size_t off = sent > sizeof raw ? sent - sizeof raw : 0;
		if (off < n)
			err = buf_append(&s->out, (const unsigned char *)bytes + off, n - off);
	}
	if (err < 0) {
		session_end(s, ENOMEM);
		return (ssize_t)n;
	}
	st->send_window -= (uint32_t)n;
	s->st.bytes_out += n;
	s->st.frames_out++;
	if (buf_len(&s->out) > 0)
		arm_flush(s);
	return (ssize_t)n;
}

static int st_shutdown(struct relay_ep *ep)
{
	struct yamux_stream *st = ep_stream(ep);
	struct yamux_session *s = st->s;

	if (!s)
		return -ENOTCONN;
	if (st->fin_sent || st->reset || s->ended)
		return 0;
	st->fin_sent = true;
	if (st->state == ST_QUEUED)
		return 0; /* sent after its SYN */
	int err = st->need_ack ? yamux_stream_accept(st) : 0;
	if (err == 0)
		err = send_control(s, YAMUX_WINDOW_UPDATE, YAMUX_FIN, st->id, 0);
	if (st->fin_recv)
		stream_done_on_wire(st);
	return err < 0 ? err : 0;
}

static void st_close(struct relay_ep *ep)
{
	struct yamux_stream *st = ep_stream(ep);
	struct yamux_session *s = st->s;

	if (st->closed)
		return;
	st->closed = true;
	st->reading = false;
	if (s) {
		if (st->state == ST_PENDING && st->in_table)
			s->st.refused++;
		if (st->state == ST_QUEUED)
			st->reset = true; /* never on the wire: nothing to say */
		if (!(st->fin_sent && st->fin_recv))
			send_rst(st);
		stream_done_on_wire(st);
		unmark_dirty(s, st);
		LIST_UNLINK(s->streams, st);
	}
	loop_timer_stop(st->loop, &st->open_timer);
	buf_free(&st->rbuf);
	loop_defer(st->loop, &st->release, stream_release, st);
}

void yamux_stream_close(struct yamux_stream *st)
{
	st_close(&st->ep);
}

static const struct relay_ep_ops stream_ops = {
    .read_start = st_read_start,
    .read_stop = st_read_stop,
    .write = st_write,
    .shutdown = st_shutdown,
    .close = st_close,
};
