/* Unit tests for container/ctl's out queue (a core/buf with CTL_MAX_OUT as
 * its maximum): with a peer that does not read, sends succeed until the
 * bytes not yet taken by the kernel would pass CTL_MAX_OUT, exactly there;
 * the failing send returns -ENOBUFS and never calls back: `closed`
 * (ENOBUFS) comes from the loop, once, and later sends say -EPIPE.  Only
 * unsent bytes count: a peer that reads lets far more than CTL_MAX_OUT
 * through in total.  Lines in, also: a valid one, a bad one.
 *
 * How many bytes wait in user space: everything formatted so far minus
 * what the peer's socket holds (a Unix stream socket queues what is sent
 * on the receiver: FIONREAD there) minus what the peer read. */
#include "container/ctl.h"
#include "core/loop.h"
#include "core/util.h"
#include "proto/dbr.h"
#include "run_until.h"
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

struct rec {
	int msgs, bads, closed;
	int closed_err;
	bool in_send; /* a callback now would be from inside ctl_send */
	enum dbr_type last;
};

static void on_msg(struct ctl_conn *c, const struct dbr_msg *m, void *data)
{
	struct rec *r = data;
	ASSERT(!r->in_send);
	r->msgs++;
	r->last = m->type;
}

static void on_bad(struct ctl_conn *c, const char *line, size_t len, const char *why, void *data)
{
	struct rec *r = data;
	ASSERT(!r->in_send);
	r->bads++;
}

static void on_closed(struct ctl_conn *c, int err, void *data)
{
	struct rec *r = data;
	ASSERT(!r->in_send);
	r->closed++;
	r->closed_err = err;
}

static const struct ctl_ops ops = {.msg = on_msg, .bad = on_bad, .closed = on_closed};

static size_t ping_len(void)
{
	struct dbr_msg m;
	dbr_msg_init(&m, DBR_PING);
	size_t len;
	char *line = dbr_format(&m, &len);
	ASSERT(line);
	free(line);
	dbr_msg_clear(&m);
	return len;
}

static int send_ping(struct ctl_conn *c, struct rec *r)
{
	struct dbr_msg m;
	dbr_msg_init(&m, DBR_PING);
	r->in_send = true;
	int e = ctl_send(c, &m);
	r->in_send = false;
	dbr_msg_clear(&m);
	return e;
}

static size_t in_kernel(int peer)
{
	int n = 0;
	ASSERT_EQ(ioctl(peer, FIONREAD, &n), 0);
	return (size_t)n;
}

static bool got_closed(void *arg)
{
	return ((struct rec *)arg)->closed > 0;
}

static void test_overflow_exactly_at_cap(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct rec r = {0};
	struct ctl_conn *c;
	ASSERT_EQ(ctl_conn_new(l, sv[0], &ops, &r, &c), 0);
	size_t len = ping_len(), sent = 0;
	int e;
	for (;;) {
		size_t unsent = sent - in_kernel(sv[1]);
		ASSERT_LE(unsent, CTL_MAX_OUT);
		e = send_ping(c, &r);
		if (e != 0) {
			/* refused exactly when this line would pass the cap */
			ASSERT_EQ(e, -ENOBUFS);
			ASSERT_GT(unsent + len, CTL_MAX_OUT);
			break;
		}
		ASSERT_LE(unsent + len, CTL_MAX_OUT);
		sent += len;
		ASSERT_LT(sent, 64 * CTL_MAX_OUT); /* the kernel does fill up */
	}
	ASSERT_GT(sent - in_kernel(sv[1]), CTL_MAX_OUT - len); /* user space held ~1 MiB */
	ASSERT_EQ(r.closed, 0);				       /* not from inside ctl_send */
	ASSERT_EQ(send_ping(c, &r), -EPIPE);
	run_until(l, got_closed, &r, 5000);
	ASSERT_EQ(r.closed, 1);
	ASSERT_EQ(r.closed_err, ENOBUFS);
	ASSERT_EQ(send_ping(c, &r), -EPIPE);
	ctl_conn_free(c);
	ctl_conn_free(NULL);
	close(sv[1]);
	loop_free(l);
}

struct drain {
	int peer;
	size_t read, want;
};

/* The peer reads what there is; done when everything sent arrived (the
 * loop meanwhile flushes the queue on LOOP_WRITE). */
static bool drained(void *arg)
{
	struct drain *d = arg;
	char buf[65536];
	ssize_t n;
	while ((n = read(d->peer, buf, sizeof buf)) > 0)
		d->read += (size_t)n;
	return d->read == d->want;
}

/* The peer reads everything between bursts: 4 MiB go through a 1 MiB cap
 * without a refusal, because written bytes no longer count. */
static void test_only_unsent_bytes_count(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ASSERT_EQ(fd_set_nonblock(sv[1], true), 0);
	struct rec r = {0};
	struct ctl_conn *c;
	ASSERT_EQ(ctl_conn_new(l, sv[0], &ops, &r, &c), 0);
	size_t len = ping_len(), sent = 0;
	struct drain d = {.peer = sv[1]};
	while (sent < 4 * (size_t)CTL_MAX_OUT) {
		/* a burst up to ~3/4 of the cap in user space */
		while (sent - d.read - in_kernel(sv[1]) + len <= CTL_MAX_OUT * 3 / 4) {
			ASSERT_EQ(send_ping(c, &r), 0);
			sent += len;
		}
		/* the peer reads; the loop flushes the queue (LOOP_WRITE) */
		d.want = sent;
		run_until(l, drained, &d, 10000);
	}
	ASSERT_EQ(d.read, sent);
	ASSERT_EQ(r.closed, 0);
	ctl_conn_free(c);
	close(sv[1]);
	loop_free(l);
}

static bool got_two(void *arg)
{
	struct rec *r = arg;
	return r->msgs + r->bads >= 2;
}

static void test_lines_in(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct rec r = {0};
	struct ctl_conn *c;
	ASSERT_EQ(ctl_conn_new(l, sv[0], &ops, &r, &c), 0);
	static const char in[] = "{\"type\":\"Ping\"}\nnot json\n";
	ASSERT_EQ(write_all(sv[1], in, sizeof in - 1), 0);
	run_until(l, got_two, &r, 5000);
	ASSERT_EQ(r.msgs, 1);
	ASSERT_EQ(r.last, DBR_PING);
	ASSERT_EQ(r.bads, 1);
	close(sv[1]);
	run_until(l, got_closed, &r, 5000);
	ASSERT_EQ(r.closed_err, 0); /* EOF */
	ctl_conn_free(c);
	loop_free(l);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	RUN(test_overflow_exactly_at_cap);
	RUN(test_only_unsent_bytes_count);
	RUN(test_lines_in);
	return 0;
}
