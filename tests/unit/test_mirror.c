/* test_mirror.c - the tee and the sink of k8s/mirror.h over socketpairs
 * and fd endpoints: the tee passes the client <-> pod bytes both ways and
 * copies the client's bytes after the first ones; the copy's peer's
 * answers go nowhere; a copy that cannot keep up is dropped while the
 * traffic goes on; the sink passes the stream's bytes and drops the local
 * answers, its EOF still half-closing the stream. */
#include "core/loop.h"
#include "core/relay.h"
#include "k8s/mirror.h"
#include "run_until.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct peer {
	int fd;
	unsigned char got[1 << 21];
	size_t len;
	bool eof;
	const unsigned char *out; /* written in steps, then SHUT_WR */
	size_t out_len, sent;
	bool shut, read_it;
};

static void peer_init(struct peer *p, int fd)
{
	memset(p, 0, sizeof *p);
	p->fd = fd;
	p->read_it = true;
	fcntl(fd, F_SETFL, O_NONBLOCK);
}

static void peer_step(struct peer *p)
{
	while (p->out && p->sent < p->out_len) {
		ssize_t n = send(p->fd, p->out + p->sent, p->out_len - p->sent, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		p->sent += (size_t)n;
	}
	if (p->out && p->sent == p->out_len && !p->shut) {
		shutdown(p->fd, SHUT_WR);
		p->shut = true;
	}
	while (p->read_it && !p->eof && p->len < sizeof p->got) {
		ssize_t n = recv(p->fd, p->got + p->len, sizeof p->got - p->len, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			p->eof = true;
		if (n <= 0)
			break;
		p->len += (size_t)n;
	}
}

struct world {
	struct peer *ps[3];
	bool done;
	int dropped;
};

static void world_step(void *arg)
{
	struct world *w = arg;
	for (int i = 0; i < 3; i++)
		if (w->ps[i])
			peer_step(w->ps[i]);
}

static bool all_eof(void *arg)
{
	struct world *w = arg;
	for (int i = 0; i < 3; i++)
		if (w->ps[i] && w->ps[i]->read_it && !w->ps[i]->eof)
			return false;
	return w->done;
}

static void on_done(struct relay *r, void *data)
{
	struct world *w = data;
	w->done = true;
	relay_free(r);
}

static void on_dropped(void *data, int err)
{
	struct world *w = data;
	w->dropped = err;
}

static struct relay_ep *fd_ep(struct loop *l, int fd)
{
	struct relay_ep *e;
	ASSERT_EQ(relay_ep_fd_new(l, fd, &e), 0);
	return e;
}

static void pair(int sv[2])
{
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static struct peer client, pod, copy, local, stream;

static void test_tee(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	int c[2], p[2], k[2];
	pair(c);
	pair(p);
	pair(k);
	peer_init(&client, c[0]);
	peer_init(&pod, p[0]);
	peer_init(&copy, k[0]);
	struct world w = {.ps = {&client, &pod, &copy}};
	struct mirror_tee_opts mo = {.dropped = on_dropped, .data = &w};
	struct relay_ep *tee, *pe = fd_ep(l, p[1]);
	ASSERT_EQ(mirror_tee_new(l, fd_ep(l, c[1]), fd_ep(l, k[1]), "HDR", 3, &mo, &tee), 0);
	struct relay *r;
	ASSERT_EQ(relay_new_ep(l, tee, pe, NULL, on_done, &w, &r), 0);
	client.out = (const unsigned char *)"request";
	client.out_len = 7;
	pod.out = (const unsigned char *)"answer";
	pod.out_len = 6;
	copy.out = (const unsigned char *)"ignored"; /* the CLI's replies */
	copy.out_len = 7;
	test_run_loop(l, all_eof, world_step, &w, 5000, true);
	ASSERT_EQ(client.len, 6);
	ASSERT(!memcmp(client.got, "answer", 6));
	ASSERT_EQ(pod.len, 7);
	ASSERT(!memcmp(pod.got, "request", 7));
	ASSERT_EQ(copy.len, 10);
	ASSERT(!memcmp(copy.got, "HDRrequest", 10));
	ASSERT_EQ(w.dropped, 0);
	mirror_linger_flush(); /* finished copies are gone already: a no-op */
	close(c[0]);
	close(p[0]);
	close(k[0]);
	loop_free(l);
	relay_pool_flush();
}

static void test_tee_drops_a_slow_copy(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	int c[2], p[2], k[2];
	pair(c);
	pair(p);
	pair(k);
	int small = 4096;
	setsockopt(k[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	setsockopt(k[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	peer_init(&client, c[0]);
	peer_init(&pod, p[0]);
	peer_init(&copy, k[0]);
	copy.read_it = false; /* a CLI that never reads */
	struct world w = {.ps = {&client, &pod, &copy}};
	struct mirror_tee_opts mo = {.max_pending = 16384, .dropped = on_dropped, .data = &w};
	struct relay_ep *tee, *pe = fd_ep(l, p[1]);
	ASSERT_EQ(mirror_tee_new(l, fd_ep(l, c[1]), fd_ep(l, k[1]), "H", 1, &mo, &tee), 0);
	struct relay *r;
	ASSERT_EQ(relay_new_ep(l, tee, pe, NULL, on_done, &w, &r), 0);
	size_t big = 1 << 20;
	unsigned char *blob = malloc(big);
	for (size_t i = 0; i < big; i++)
		blob[i] = (unsigned char)(i * 7 + 3);
	client.out = blob;
	client.out_len = big;
	pod.out = (const unsigned char *)"ok";
	pod.out_len = 2;
	test_run_loop(l, all_eof, world_step, &w, 10000, true);
	ASSERT_EQ(pod.len, big);
	ASSERT(!memcmp(pod.got, blob, big));
	ASSERT_EQ(client.len, 2);
	ASSERT_EQ(w.dropped, ENOBUFS);
	free(blob);
	close(c[0]);
	close(p[0]);
	close(k[0]);
	loop_free(l);
	relay_pool_flush();
}

static void test_sink(void)
{
	struct loop *l;
	ASSERT_EQ(loop_new(&l), 0);
	int lo[2], st[2];
	pair(lo);
	pair(st);
	peer_init(&local, lo[0]);
	peer_init(&stream, st[0]);
	struct world w = {.ps = {&local, &stream}};
	struct relay_ep *sink;
	ASSERT_EQ(mirror_sink_new(fd_ep(l, st[1]), &sink), 0);
	struct relay *r;
	ASSERT_EQ(relay_new_ep(l, fd_ep(l, lo[1]), sink, NULL, on_done, &w, &r), 0);
	stream.out = (const unsigned char *)"the request";
	stream.out_len = 11;
	local.out = (const unsigned char *)"the local answer";
	local.out_len = 16;
	test_run_loop(l, all_eof, world_step, &w, 5000, true);
	ASSERT_EQ(local.len, 11);
	ASSERT(!memcmp(local.got, "the request", 11));
	ASSERT_EQ(stream.len, 0); /* the answer went nowhere; its EOF came through */
	close(lo[0]);
	close(st[0]);
	loop_free(l);
	relay_pool_flush();
}

int main(void)
{
	RUN(test_tee);
	RUN(test_tee_drops_a_slow_copy);
	RUN(test_sink);
	printf("ok - mirror\n");
	return 0;
}
