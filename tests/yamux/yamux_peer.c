/* yamux_peer.c - devbridge's Yamux test and benchmark peer: the command line
 * of tests/yamux/PEER.md, on src/proto/yamux and core/relay.
 *
 * Every stream handler here is a user of struct relay_ep, so the same
 * echo, discard and bench code runs on a Yamux stream and (--raw) on a
 * plain TCP socket. */
#include "core/buf.h"
#include "core/loop.h"
#include "core/net.h"
#include "core/relay.h"
#include "proto/yamux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum accept_mode { ACC_ECHO, ACC_DISCARD, ACC_FORWARD, ACC_REFUSE, ACC_HOLD, ACC_STALL };
enum bench_mode { B_NONE, B_CHECK, B_TPUT, B_RR, B_IDLE };

static struct {
	const char *listen, *connect, *forward_listen, *hello;
	int role; /* -1 default, 0 server, 1 client */
	bool raw, verbose;
	struct yamux_opts yo;
	enum accept_mode acc;
	const char *fwd_host, *fwd_port, *stall;
	enum bench_mode bench;
	uint64_t bytes;
	unsigned streams, count, size;
} opt = {.role = -1, .streams = 1, .size = 32};

static struct loop *L;
static struct yamux_session *S;
static int exit_code;
static bool session_up;

/* ---------- output ---------- */

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static const char *errname(int e)
{
	switch (e) {
	case 0:
		return NULL;
	case ETIMEDOUT:
		return "ETIMEDOUT";
	case EPROTO:
		return "EPROTO";
	case ECONNRESET:
		return "ECONNRESET";
	case ECONNABORTED:
		return "ECONNABORTED";
	case ECONNREFUSED:
		return "ECONNREFUSED";
	case ENOBUFS:
		return "ENOBUFS";
	case ENOMEM:
		return "ENOMEM";
	case EPIPE:
		return "EPIPE";
	default:
		return "EIO";
	}
}

static void emit_err_field(const char *event, const char *extra, int e)
{
	const char *n = errname(e);
	if (n)
		emit("{\"event\":\"%s\"%s,\"error\":\"%s\"}", event, extra, n);
	else
		emit("{\"event\":\"%s\"%s,\"error\":null}", event, extra);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void finish(int code)
{
	exit_code = code;
	loop_stop(L);
}

/* ---------- handlers: every open stream has one ---------- */

struct handler {
	struct handler *prev, *next;
	void (*destroy)(struct handler *h);
};
static struct handler *handlers;

static void handler_add(struct handler *h, void (*destroy)(struct handler *))
{
	h->destroy = destroy;
	h->prev = NULL;
	h->next = handlers;
	if (handlers)
		handlers->prev = h;
	handlers = h;
}

static void handler_del(struct handler *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		handlers = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->prev = h->next = NULL;
}

static void stream_ended(uint32_t id, int err)
{
	if (opt.verbose) {
		char extra[48];
		snprintf(extra, sizeof extra, ",\"id\":%" PRIu32, id);
		emit_err_field("stream_end", extra, err);
	}
}

/* --- echo / discard / stall: the accepting side --- */

struct echo {
	struct handler h;
	struct relay_ep *ep;
	uint32_t id;
	struct buf b;
	bool discard, eof, stalled;
	size_t seen; /* bytes compared against the stall prefix */
};

static void echo_free(struct echo *e, int err)
{
	stream_ended(e->id, err);
	handler_del(&e->h);
	e->ep->ops->close(e->ep);
	buf_free(&e->b);
	free(e);
}

static void echo_destroy(struct handler *h)
{
	struct echo *e = (struct echo *)h;
	e->ep->ops->close(e->ep);
	buf_free(&e->b);
	free(e);
}

static void echo_pump(struct echo *e)
{
	while (buf_len(&e->b) > 0) {
		ssize_t w = e->ep->ops->write(e->ep, buf_data(&e->b), buf_len(&e->b));
		if (w == -EAGAIN)
			break;
		if (w < 0) {
			echo_free(e, (int)-w);
			return;
		}
		buf_consume(&e->b, (size_t)w);
	}
	if (buf_len(&e->b) == 0) {
		buf_free(&e->b);
		if (e->eof) {
			int err = e->ep->ops->shutdown(e->ep);
			echo_free(e, err < 0 ? -err : 0);
			return;
		}
		if (!e->stalled && e->ep->ops->read_start(e->ep) < 0)
			echo_free(e, EIO);
		return;
	}
	e->ep->ops->read_stop(e->ep); /* until writable */
}

static unsigned char sink[256 * 1024];

static void echo_alloc(struct relay_ep *ep, size_t suggested, void **ret, size_t *ret_len)
{
	struct echo *e = ep->data;
	*ret = NULL;
	*ret_len = 0;
	if (e->stalled)
		return;
	if (e->discard) {
		*ret = sink;
		*ret_len = sizeof sink;
		return;
	}
	(void)buf_reserve(&e->b, 1, ret, ret_len);
}

static void echo_read(struct relay_ep *ep, size_t n)
{
	struct echo *e = ep->data;
	if (n == 0) {
		e->eof = true;
		echo_pump(e);
		return;
	}
	if (e->discard)
		return;
	size_t before = buf_len(&e->b);
	buf_commit(&e->b, n);
	if (opt.stall && e->seen < strlen(opt.stall)) {
		size_t plen = strlen(opt.stall);
		const unsigned char *p = (const unsigned char *)buf_data(&e->b) + before;
		size_t c = n < plen - e->seen ? n : plen - e->seen;
		if (memcmp(p, opt.stall + e->seen, c) != 0) {
			e->seen = plen; /* not a stalled stream */
		} else if ((e->seen += c) == plen) {
			e->stalled = true;
			ep->ops->read_stop(ep);
			buf_free(&e->b);
			return;
		}
	}
	echo_pump(e);
}

static void echo_writable(struct relay_ep *ep)
{
	echo_pump(ep->data);
}

static void echo_error(struct relay_ep *ep, int err)
{
	echo_free(ep->data, err);
}

static const struct relay_ep_cb echo_cb = {echo_alloc, echo_read, echo_writable, echo_error};

static int echo_start(struct relay_ep *ep, uint32_t id, bool discard)
{
	struct echo *e = calloc(1, sizeof *e);
	if (!e)
		return -ENOMEM;
	e->ep = ep;
	e->id = id;
	e->discard = discard;
	buf_init(&e->b, 256 * 1024);
	ep->cb = &echo_cb;
	ep->data = e;
	handler_add(&e->h, echo_destroy);
	int err = ep->ops->read_start(ep);
	if (err < 0) {
		handler_del(&e->h);
		buf_free(&e->b);
		free(e);
	}
	return err;
}

/* --- relays: forward-listen and --accept forward --- */

struct fwd {
	struct handler h;
	struct relay *r;
	int fd; /* the TCP side, owned by the relay */
	uint32_t id;
};

static void fwd_destroy(struct handler *h)
{
	struct fwd *f = (struct fwd *)h;
	relay_free(f->r);
	free(f);
}

static void fwd_done(struct relay *r, void *data)
{
	struct fwd *f = data;
	struct relay_stats rs;
	relay_get_stats(r, &rs);
	if (rs.error) {
		/* a reset stream resets the TCP connection */
		struct linger lg = {1, 0};
		(void)setsockopt(f->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
	stream_ended(f->id, rs.error);
	handler_del(&f->h);
	relay_free(r);
	free(f);
}

static void reset_close(int fd)
{
	struct linger lg = {1, 0};
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
}

/* Relay TCP fd <-> stream; on failure both are closed (the stream reset). */
static void fwd_start(int fd, struct yamux_stream *st)
{
	struct relay_ep *fe = NULL;
	struct fwd *f = calloc(1, sizeof *f);
	if (!f || relay_ep_fd_new(L, fd, &fe) < 0) {
		free(f);
		reset_close(fd);
		yamux_stream_close(st);
		return;
	}
	f->fd = fd;
	f->id = yamux_stream_id(st);
	if (relay_new_ep(L, fe, yamux_stream_ep(st), NULL, fwd_done, f, &f->r) < 0) {
		fe->ops->close(fe);
		yamux_stream_close(st);
		free(f);
		return;
	}
	handler_add(&f->h, fwd_destroy);
}

static int dial(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return -EINVAL;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -e;
	}
	freeaddrinfo(ai);
	return fd;
}

/* ---------- the session ---------- */

/* --accept hold: kept pending, closed at exit */
struct held {
	struct handler h;
	struct yamux_stream *st;
};

static void held_destroy(struct handler *h)
{
	struct held *hd = (struct held *)h;
	yamux_stream_close(hd->st);
	free(hd);
}

static void on_accept(struct yamux_session *s, struct yamux_stream *st, void *data)
{
	uint32_t id = yamux_stream_id(st);
	if (opt.verbose)
		emit("{\"event\":\"stream\",\"id\":%" PRIu32 ",\"dir\":\"in\"}", id);
	switch (opt.acc) {
	case ACC_REFUSE:
		yamux_stream_close(st);
		return;
	case ACC_HOLD: {
		struct held *hd = calloc(1, sizeof *hd);
		if (!hd) {
			yamux_stream_close(st);
			return;
		}
		hd->st = st;
		handler_add(&hd->h, held_destroy);
		return;
	}
	case ACC_FORWARD: {
		int fd = dial(opt.fwd_host, opt.fwd_port);
		if (fd < 0) {
			yamux_stream_close(st);
			return;
		}
		yamux_stream_accept(st);
		fwd_start(fd, st);
		return;
	}
	default:
		yamux_stream_accept(st);
		if (echo_start(yamux_stream_ep(st), id, opt.acc == ACC_DISCARD) < 0)
			yamux_stream_close(st);
	}
}

static void on_closed(struct yamux_session *s, int err, void *data)
{
	emit_err_field("closed", "", err);
	finish(exit_code);
}

static void on_pong(struct yamux_session *s, uint64_t rtt_us, void *data)
{
	emit("{\"event\":\"ping\",\"rtt_us\":%" PRIu64 "}", rtt_us);
}

static const struct yamux_session_cb session_cb = {on_accept, on_closed, on_pong};

static void emit_stats(void)
{
	if (!S) {
		emit("{\"event\":\"stats\",\"streams\":null}");
		return;
	}
	struct yamux_stats st;
	yamux_session_get_stats(S, &st);
	emit("{\"event\":\"stats\",\"streams\":%u,\"pending\":%u,\"opened\":%" PRIu64
	     ",\"accepted\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"pings_sent\":%" PRIu64
	     ",\"pings_answered\":%" PRIu64 ",\"pings_received\":%" PRIu64
	     ",\"resets_sent\":%" PRIu64 ",\"resets_received\":%" PRIu64
	     ",\"goaway_sent\":%s,\"goaway_received\":%s,\"bytes_in\":%" PRIu64
	     ",\"bytes_out\":%" PRIu64 ",\"output_queued\":%zu,\"memory\":%zu,"
	     "\"window_grows\":%" PRIu64 "}",
	     st.streams, st.pending, st.opened, st.accepted, st.refused, st.pings_sent,
	     st.pings_answered, st.pings_received, st.resets_sent, st.resets_received,
	     st.goaway_sent ? "true" : "false", st.goaway_received ? "true" : "false", st.bytes_in,
	     st.bytes_out, st.output_queued, st.memory, st.window_grows);
}

/* ---------- the client side's modes ---------- */

/* A new outbound stream as an endpoint: a Yamux stream, or (--raw) a TCP
 * connection. */
static int open_ep(struct relay_ep **ret, uint32_t *ret_id)
{
	if (opt.raw) {
		static uint32_t n;
		char host[256];
		const char *colon = strrchr(opt.connect, ':');
		snprintf(host, sizeof host, "%.*s", (int)(colon - opt.connect), opt.connect);
		int fd = dial(host, colon + 1);
		if (fd < 0)
			return fd;
		int err = relay_ep_fd_new(L, fd, ret);
		if (err < 0)
			close(fd);
		*ret_id = ++n;
		return err;
	}
	struct yamux_stream *st;
	int err = yamux_open(S, &st);
	if (err < 0)
		return err;
	*ret = yamux_stream_ep(st);
	*ret_id = yamux_stream_id(st);
	return 0;
}

/* xorshift32: the same sequence for the writer and the checker */
static void pattern(uint32_t *state, unsigned char *p, size_t n)
{
	uint32_t x = *state;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
	*state = x;
}

#define CHUNK	  (64 * 1024)	/* --check-echo: written and checked this much at a time */
#define BIG_CHUNK (1024 * 1024) /* --bench-throughput writes (raw and Yamux alike, as Go's) */

/* Reads are checked or counted as they come, so every client reads into
 * the same memory; only --check-echo needs a write buffer of its own (an
 * idle stream should cost what the session makes it cost). */
static unsigned char rshared[BIG_CHUNK];
static const unsigned char zeros[BIG_CHUNK];

struct client {
	struct handler h;
	struct relay_ep *ep;
	uint32_t id;
	uint64_t total, wrote, got;
	uint32_t wstate, rstate;
	unsigned char *wbuf; /* --check-echo: its own pattern; else `zeros` */
	size_t wlen, woff;
	bool shut, eof, bad;
	uint64_t t0;
};

static unsigned clients_left, clients_ok, clients_failed;
static uint64_t bench_t0, bytes_done;
static uint64_t *lat_ns;
static unsigned rr_done;

static void client_next(void);

static void client_free(struct client *c)
{
	c->ep->ops->close(c->ep);
	if (c->wbuf != zeros)
		free(c->wbuf);
	free(c);
}

static void client_destroy(struct handler *h)
{
	client_free((struct client *)h);
}

static void report(void)
{
	double secs = (double)(now_ns() - bench_t0) / 1e9;
	if (opt.bench == B_CHECK) {
		emit(
		    "{\"event\":\"check\",\"streams\":%u,\"ok\":%u,\"failed\":%u,\"bytes\":%" PRIu64
		    ",\"seconds\":%.6f}",
		    opt.streams, clients_ok, clients_failed, bytes_done, secs);
		finish(clients_failed ? 1 : 0);
	} else if (opt.bench == B_TPUT) {
		emit(
		    "{\"event\":\"bench\",\"mode\":\"throughput\",\"streams\":%u,\"bytes\":%" PRIu64
		    ",\"seconds\":%.6f,\"gib_per_s\":%.4f}",
		    opt.streams, bytes_done, secs, (double)bytes_done / secs / (1u << 30));
		finish(clients_failed ? 1 : 0);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report_rr(void)
{
	qsort(lat_ns, rr_done, sizeof *lat_ns, cmp_u64);
	double sum = 0;
	for (unsigned i = 0; i < rr_done; i++)
		sum += (double)lat_ns[i];
	unsigned i99 = rr_done ? (unsigned)((rr_done - 1) * 0.99) : 0;
	emit("{\"event\":\"bench\",\"mode\":\"rr\",\"count\":%u,\"p50_us\":%.2f,\"p99_us\":%.2f,"
	     "\"mean_us\":%.2f,\"failed\":%u}",
	     rr_done, rr_done ? (double)lat_ns[rr_done / 2] / 1e3 : 0,
	     rr_done ? (double)lat_ns[i99] / 1e3 : 0, rr_done ? sum / rr_done / 1e3 : 0,
	     clients_failed);
	finish(clients_failed ? 1 : 0);
}

static void client_end(struct client *c, bool ok)
{
	if (ok)
		clients_ok++;
	else
		clients_failed++;
	if (opt.bench == B_IDLE) {
		/* keep it open; just count */
		clients_left--;
		if (clients_left == 0) {
			struct yamux_stats st = {0};
			if (S)
				yamux_session_get_stats(S, &st);
			if (S)
				emit("{\"event\":\"idle\",\"streams\":%u,\"ok\":%u,\"rss_kib\":%ld,"
				     "\"session_bytes\":%zu}",
				     opt.streams, clients_ok, rss_kib(), st.memory);
			else
				emit("{\"event\":\"idle\",\"streams\":%u,\"ok\":%u,\"rss_kib\":%ld,"
				     "\"session_bytes\":null}",
				     opt.streams, clients_ok, rss_kib());
		}
		return;
	}
	bytes_done += c->got + (opt.bench == B_TPUT ? c->wrote : 0);
	if (opt.bench == B_RR && ok)
		lat_ns[rr_done++] = now_ns() - c->t0;
	stream_ended(c->id, ok ? 0 : EIO);
	handler_del(&c->h);
	client_free(c);
	if (opt.bench == B_RR) {
		if (rr_done + clients_failed >= opt.count)
			report_rr();
		else
			client_next();
		return;
	}
	if (--clients_left == 0)
		report();
}

static void client_pump(struct client *c)
{
	while (!c->shut) {
		if (c->woff == c->wlen) {
			uint64_t left = c->total - c->wrote;
			if (left == 0) {
				c->shut = true;
				if (opt.bench != B_IDLE && c->ep->ops->shutdown(c->ep) < 0) {
					client_end(c, false);
					return;
				}
				break;
			}
			size_t chunk = opt.bench == B_CHECK ? CHUNK : BIG_CHUNK;
			c->wlen = left < chunk ? (size_t)left : chunk;
			c->woff = 0;
			if (opt.bench == B_CHECK)
				pattern(&c->wstate, c->wbuf, c->wlen);
		}
		ssize_t w = c->ep->ops->write(c->ep, c->wbuf + c->woff, c->wlen - c->woff);
		if (w == -EAGAIN)
			return;
		if (w < 0) {
			client_end(c, false);
			return;
		}
		c->woff += (size_t)w;
		c->wrote += (uint64_t)w;
	}
}

static void client_alloc(struct relay_ep *ep, size_t suggested, void **ret, size_t *ret_len)
{
	*ret = rshared;
	*ret_len = sizeof rshared;
}

static void client_read(struct relay_ep *ep, size_t n)
{
	struct client *c = ep->data;
	if (n == 0) {
		bool ok = !c->bad && (opt.bench == B_TPUT || c->got == c->total);
		client_end(c, ok);
		return;
	}
	if (opt.bench == B_CHECK) {
		static unsigned char want[BIG_CHUNK];
		pattern(&c->rstate, want, n);
		if (memcmp(want, rshared, n) != 0)
			c->bad = true;
	}
	c->got += n;
	if (c->got > c->total && opt.bench != B_TPUT)
		c->bad = true;
	if (opt.bench == B_IDLE && c->got == c->total)
		client_end(c, !c->bad);
}

static void client_writable(struct relay_ep *ep)
{
	client_pump(ep->data);
}

static void client_error(struct relay_ep *ep, int err)
{
	client_end(ep->data, false);
}

static const struct relay_ep_cb client_cb = {client_alloc, client_read, client_writable,
					     client_error};

static int client_start(uint64_t total, uint32_t seed)
{
	struct client *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->wbuf = opt.bench == B_CHECK ? malloc(CHUNK) : (unsigned char *)zeros;
	int err = c->wbuf ? open_ep(&c->ep, &c->id) : -ENOMEM;
	if (err < 0) {
		if (c->wbuf != zeros)
			free(c->wbuf);
		free(c);
		return err;
	}
	if (opt.verbose)
		emit("{\"event\":\"stream\",\"id\":%" PRIu32 ",\"dir\":\"out\"}", c->id);
	c->total = total;
	c->wstate = c->rstate = seed * 2654435761u + 1;
	c->t0 = now_ns();
	c->ep->cb = &client_cb;
	c->ep->data = c;
	handler_add(&c->h, client_destroy);
	if ((err = c->ep->ops->read_start(c->ep)) < 0) {
		handler_del(&c->h);
		client_free(c);
		return err;
	}
	client_pump(c);
	return 0;
}

static void client_next(void)
{
	int err = client_start(opt.size, rr_done + 1);
	if (err < 0) {
		fprintf(stderr, "yamux-peer: open: %s\n", strerror(-err));
		clients_failed++;
		report_rr();
	}
}

static void start_bench(void)
{
	bench_t0 = now_ns();
	if (opt.bench == B_RR) {
		lat_ns = calloc(opt.count ? opt.count : 1, sizeof *lat_ns);
		if (!lat_ns) {
			finish(1);
			return;
		}
		client_next();
		return;
	}
	uint64_t each = opt.bench == B_IDLE ? 1 : opt.bytes;
	clients_left = opt.streams;
	for (unsigned i = 0; i < opt.streams; i++) {
		int err = client_start(each, i + 1);
		if (err < 0) {
			fprintf(stderr, "yamux-peer: open: %s\n", strerror(-err));
			clients_failed++;
			if (--clients_left == 0) {
				report();
				return;
			}
		}
	}
}

/* ---------- sockets ---------- */

static int listen_fd = -1, fwd_listen_fd = -1;

static int split_listen(const char *spec, uint16_t *ret_port)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	if (!colon) {
		fprintf(stderr, "yamux-peer: %s: want HOST:PORT\n", spec);
		return -EINVAL;
	}
	snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
	return net_listen_tcp(host, (uint16_t)atoi(colon + 1), ret_port);
}

/* --hello LINE: one line before the session, and the peer's one-line
 * answer, which must start with "OK" (the intercept agent's handshake). */
static int hello(int fd)
{
	char line[512], reply[256];
	size_t n = 0;
	snprintf(line, sizeof line, "%s\n", opt.hello);
	struct timeval tv = {5, 0};
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line))
		return -1;
	while (n < sizeof reply - 1) {
		ssize_t r = recv(fd, reply + n, 1, 0); /* byte by byte: the session follows */
		if (r <= 0)
			break;
		if (reply[n++] == '\n')
			break;
	}
	reply[n] = 0;
	reply[strcspn(reply, "\r\n")] = 0;
	if (strncmp(reply, "OK", 2) != 0) {
		emit("{\"event\":\"denied\",\"reply\":\"%.64s\"}", reply);
		return -1;
	}
	emit("{\"event\":\"hello\",\"reply\":\"%.64s\"}", reply);
	return 0;
}

static void session_start(int fd)
{
	bool client = opt.role >= 0 ? opt.role == 1 : opt.connect != NULL;
	int err = yamux_session_new(L, fd, client, &opt.yo, &session_cb, NULL, &S);
	if (err < 0) {
		fprintf(stderr, "yamux-peer: session: %s\n", strerror(-err));
		close(fd);
		finish(1);
		return;
	}
	session_up = true;
	emit("{\"event\":\"session\"}");
	if (opt.bench != B_NONE)
		start_bench();
}

static void on_listen(struct loop *loop, int fd, unsigned events, void *data)
{
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (c < 0)
		return;
	if (opt.raw) {
		struct relay_ep *ep;
		static uint32_t n;
		if (relay_ep_fd_new(L, c, &ep) < 0 ||
		    echo_start(ep, ++n, opt.acc == ACC_DISCARD) < 0)
			close(c);
		return;
	}
	loop_del_fd(L, fd);
	close(fd);
	listen_fd = -1;
	session_start(c);
}

static void on_fwd_listen(struct loop *loop, int fd, unsigned events, void *data)
{
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	struct yamux_stream *st;
	if (!S || yamux_open(S, &st) < 0) {
		reset_close(c);
		return;
	}
	if (opt.verbose)
		emit("{\"event\":\"stream\",\"id\":%" PRIu32 ",\"dir\":\"out\"}",
		     yamux_stream_id(st));
	fwd_start(c, st);
}

/* ---------- stdin commands ---------- */

static char cmdbuf[512];
static size_t cmdlen;

static void command(const char *c)
{
	if (!strcmp(c, "ping")) {
		if (S)
			yamux_session_ping(S);
	} else if (!strcmp(c, "stats")) {
		emit_stats();
	} else if (!strcmp(c, "goaway")) {
		if (S)
			yamux_session_goaway(S);
	} else if (!strcmp(c, "close")) {
		if (S)
			yamux_session_close(S);
		else
			finish(0);
	} else if (!strcmp(c, "quit")) {
		finish(exit_code);
	} else if (*c) {
		fprintf(stderr, "yamux-peer: unknown command: %s\n", c);
	}
}

static void on_stdin(struct loop *loop, int fd, unsigned events, void *data)
{
	ssize_t n = read(fd, cmdbuf + cmdlen, sizeof cmdbuf - 1 - cmdlen);
	if (n <= 0) {
		loop_del_fd(L, fd);
		if (opt.bench == B_NONE || opt.bench == B_IDLE)
			finish(exit_code);
		return;
	}
	cmdlen += (size_t)n;
	char *nl;
	while ((nl = memchr(cmdbuf, '\n', cmdlen))) {
		*nl = 0;
		command(cmdbuf);
		size_t used = (size_t)(nl - cmdbuf) + 1;
		memmove(cmdbuf, nl + 1, cmdlen - used);
		cmdlen -= used;
	}
	if (cmdlen == sizeof cmdbuf - 1)
		cmdlen = 0;
}

/* ---------- main ---------- */

static void usage(FILE *f)
{
	fputs("usage: yamux-peer (--listen HOST:PORT | --connect HOST:PORT) [--client|--server]\n"
	      "  [--window BYTES] [--max-window BYTES] [--keepalive MS] [--keepalive-timeout MS] "
	      "[--backlog N]\n"
	      "  [--max-streams N] [--open-timeout MS] [--max-output BYTES] [--verbose]\n"
	      "  [--accept echo|discard|forward:HOST:PORT|refuse|hold|stall-prefix:TEXT]\n"
	      "  [--forward-listen HOST:PORT] [--raw] [--hello LINE]\n"
	      "  [--check-echo BYTES | --bench-throughput BYTES | --bench-rr COUNT [--size N] |\n"
	      "   --idle-streams N] [--streams N]\n"
	      "See tests/yamux/PEER.md.\n",
	      f);
}

static uint64_t num(const char *s, const char *what)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end) {
		fprintf(stderr, "yamux-peer: %s: not a number: %s\n", what, s);
		exit(2);
	}
	return v;
}

static void parse_accept(const char *m)
{
	if (!strcmp(m, "echo"))
		opt.acc = ACC_ECHO;
	else if (!strcmp(m, "discard"))
		opt.acc = ACC_DISCARD;
	else if (!strcmp(m, "refuse"))
		opt.acc = ACC_REFUSE;
	else if (!strcmp(m, "hold"))
		opt.acc = ACC_HOLD;
	else if (!strncmp(m, "stall-prefix:", 13) && m[13]) {
		opt.acc = ACC_STALL;
		opt.stall = m + 13;
	} else if (!strncmp(m, "forward:", 8) && strrchr(m + 8, ':')) {
		static char host[256];
		const char *colon = strrchr(m + 8, ':');
		snprintf(host, sizeof host, "%.*s", (int)(colon - (m + 8)), m + 8);
		opt.acc = ACC_FORWARD;
		opt.fwd_host = host;
		opt.fwd_port = colon + 1;
	} else {
		fprintf(stderr, "yamux-peer: --accept: unknown mode: %s\n", m);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	enum {
		O_LISTEN = 256,
		O_CONNECT,
		O_CLIENT,
		O_SERVER,
		O_WINDOW,
		O_MAXWIN,
		O_HELLO,
		O_KA,
		O_KAT,
		O_BACKLOG,
		O_MAXS,
		O_OPENT,
		O_ACCEPT,
		O_FWDL,
		O_RAW,
		O_CHECK,
		O_TPUT,
		O_RR,
		O_SIZE,
		O_IDLE,
		O_STREAMS,
		O_VERBOSE,
		O_MAXOUT,
		O_HELP
	};
	static const struct option lo[] = {
	    {"listen", 1, 0, O_LISTEN},
	    {"connect", 1, 0, O_CONNECT},
	    {"client", 0, 0, O_CLIENT},
	    {"server", 0, 0, O_SERVER},
	    {"window", 1, 0, O_WINDOW},
	    {"max-window", 1, 0, O_MAXWIN},
	    {"hello", 1, 0, O_HELLO},
	    {"keepalive", 1, 0, O_KA},
	    {"keepalive-timeout", 1, 0, O_KAT},
	    {"backlog", 1, 0, O_BACKLOG},
	    {"max-streams", 1, 0, O_MAXS},
	    {"open-timeout", 1, 0, O_OPENT},
	    {"max-output", 1, 0, O_MAXOUT},
	    {"accept", 1, 0, O_ACCEPT},
	    {"forward-listen", 1, 0, O_FWDL},
	    {"raw", 0, 0, O_RAW},
	    {"check-echo", 1, 0, O_CHECK},
	    {"bench-throughput", 1, 0, O_TPUT},
	    {"bench-rr", 1, 0, O_RR},
	    {"size", 1, 0, O_SIZE},
	    {"idle-streams", 1, 0, O_IDLE},
	    {"streams", 1, 0, O_STREAMS},
	    {"verbose", 0, 0, O_VERBOSE},
	    {"help", 0, 0, O_HELP},
	    {0, 0, 0, 0},
	};
	int c;
	opt.yo.keepalive_off = true;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_LISTEN:
			opt.listen = optarg;
			break;
		case O_CONNECT:
			opt.connect = optarg;
			break;
		case O_CLIENT:
			opt.role = 1;
			break;
		case O_SERVER:
			opt.role = 0;
			break;
		case O_WINDOW:
			opt.yo.recv_window = (uint32_t)num(optarg, "--window");
			break;
		case O_HELLO:
			opt.hello = optarg;
			break;
		case O_MAXWIN:
			opt.yo.max_recv_window = (uint32_t)num(optarg, "--max-window");
			break;
		case O_KA:
			opt.yo.keepalive_ms = (uint32_t)num(optarg, "--keepalive");
			opt.yo.keepalive_off = opt.yo.keepalive_ms == 0;
			break;
		case O_KAT:
			opt.yo.keepalive_timeout_ms = (uint32_t)num(optarg, "--keepalive-timeout");
			break;
		case O_BACKLOG:
			opt.yo.accept_backlog = (unsigned)num(optarg, "--backlog");
			break;
		case O_MAXS:
			opt.yo.max_streams = (unsigned)num(optarg, "--max-streams");
			break;
		case O_OPENT:
			opt.yo.open_timeout_ms = (uint32_t)num(optarg, "--open-timeout");
			break;
		case O_MAXOUT:
			opt.yo.max_output = (size_t)num(optarg, "--max-output");
			break;
		case O_ACCEPT:
			parse_accept(optarg);
			break;
		case O_FWDL:
			opt.forward_listen = optarg;
			break;
		case O_RAW:
			opt.raw = true;
			break;
		case O_CHECK:
			opt.bench = B_CHECK;
			opt.bytes = num(optarg, "--check-echo");
			break;
		case O_TPUT:
			opt.bench = B_TPUT;
			opt.bytes = num(optarg, "--bench-throughput");
			break;
		case O_RR:
			opt.bench = B_RR;
			opt.count = (unsigned)num(optarg, "--bench-rr");
			break;
		case O_SIZE:
			opt.size = (unsigned)num(optarg, "--size");
			break;
		case O_IDLE:
			opt.bench = B_IDLE;
			opt.streams = (unsigned)num(optarg, "--idle-streams");
			break;
		case O_STREAMS:
			opt.streams = (unsigned)num(optarg, "--streams");
			break;
		case O_VERBOSE:
			opt.verbose = true;
			break;
		case O_HELP:
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!opt.yo.max_recv_window) /* the peer's default: no tuning unless --max-window */
		opt.yo.max_recv_window =
		    opt.yo.recv_window ? opt.yo.recv_window : YAMUX_INITIAL_WINDOW;
	if (!!opt.listen == !!opt.connect || optind < argc) {
		usage(stderr);
		return 2;
	}
	if (opt.bench != B_NONE && !opt.connect) {
		fprintf(stderr, "yamux-peer: bench and check modes run on the --connect side\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (loop_new(&L) < 0)
		return 1;

	if (opt.listen) {
		uint16_t port;
		listen_fd = split_listen(opt.listen, &port);
		if (listen_fd < 0 || loop_add_fd(L, listen_fd, LOOP_READ, on_listen, NULL) < 0) {
			fprintf(stderr, "yamux-peer: listen %s: %s\n", opt.listen,
				strerror(-listen_fd));
			return 1;
		}
		emit("{\"event\":\"listening\",\"port\":%u}", port);
	}
	if (opt.forward_listen) {
		uint16_t port;
		fwd_listen_fd = split_listen(opt.forward_listen, &port);
		if (fwd_listen_fd < 0 ||
		    loop_add_fd(L, fwd_listen_fd, LOOP_READ, on_fwd_listen, NULL) < 0) {
			fprintf(stderr, "yamux-peer: listen %s: %s\n", opt.forward_listen,
				strerror(-fwd_listen_fd));
			return 1;
		}
		emit("{\"event\":\"forwarding\",\"port\":%u}", port);
	}
	if (opt.connect) {
		if (opt.raw) {
			session_up = true;
			emit("{\"event\":\"session\"}");
			start_bench();
		} else {
			char host[256];
			const char *colon = strrchr(opt.connect, ':');
			if (!colon) {
				fprintf(stderr, "yamux-peer: %s: want HOST:PORT\n", opt.connect);
				return 2;
			}
			snprintf(host, sizeof host, "%.*s", (int)(colon - opt.connect),
				 opt.connect);
			int fd = dial(host, colon + 1);
			if (fd < 0) {
				fprintf(stderr, "yamux-peer: connect %s: %s\n", opt.connect,
					strerror(-fd));
				return 1;
			}
			if (opt.hello && hello(fd) < 0) {
				close(fd);
				yamux_drain_flush();
				loop_free(L);
				return 1;
			}
			session_start(fd);
		}
	}
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	if (loop_add_fd(L, 0, LOOP_READ, on_stdin, NULL) < 0 && opt.bench == B_NONE)
		fprintf(stderr, "yamux-peer: stdin is not pollable; commands are off\n");

	loop_run(L);

	while (handlers) {
		struct handler *h = handlers;
		handler_del(h);
		h->destroy(h);
	}
	if (S)
		yamux_session_goaway(S); /* the peer sees a normal end */
	yamux_session_free(S);
	if (listen_fd >= 0)
		close(listen_fd);
	if (fwd_listen_fd >= 0)
		close(fwd_listen_fd);
	yamux_drain_flush();
	loop_free(L);
	relay_pool_flush();
	free(lat_ns);
	return exit_code;
}
