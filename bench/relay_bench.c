/* relay_bench.c - single-stream throughput and 1-byte ping-pong latency
 * over TCP loopback: client -> [relay] -> server, with the relay in splice
 * mode, read/write mode, absent (direct), or (built with -DWITH_EP) the
 * generic path: both fds wrapped in fd endpoints and joined by
 * relay_new_ep.
 *
 *   relay_bench tput MODE [GiB]      MODE: direct | splice | rw | ep
 *   relay_bench ping MODE [ROUNDS]
 *
 * The server (a child) drains or echoes; the client (a child) measures
 * from its first byte to the server's EOF coming back (tput), or each
 * round trip (ping: mean, p50, p99); the relay runs in the parent on
 * core/loop and prints the CPU time it used.  Not built by meson (a
 * measuring tool, not part of the suite); bench/relay_ab.sh builds it
 * against two source trees and runs them side by side:
 *
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -DWITH_EP -Isrc bench/relay_bench.c \
 *       src/core/relay.c src/core/relay_fd.c src/core/buf.c src/core/loop.c \
 *       src/core/util.c -o /tmp/relay_bench
 *
 * (a tree without endpoints, such as 81c0100: drop -DWITH_EP, relay_fd.c
 * and buf.c). */
#include "core/loop.h"
#include "core/relay.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int listen_any(struct sockaddr_in *ret)
{
	socklen_t len = sizeof *ret;
	*ret =
	    (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)ret, sizeof *ret) < 0 || listen(fd, 4) < 0 ||
	    getsockname(fd, (struct sockaddr *)ret, &len) < 0)
		die("listen");
	return fd;
}

static int dial(const struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)a, sizeof *a) < 0)
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	return fd;
}

/* drain (tput) or echo (ping) one connection, then close */
static void server(int lfd, int echo)
{
	static char buf[1 << 20];
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		die("accept");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	for (;;) {
		ssize_t n = read(fd, buf, echo ? 1 : sizeof buf);
		if (n <= 0)
			break;
		if (echo && write_all(fd, buf, (size_t)n) < 0)
			break;
	}
	close(fd);
	_exit(0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void client(const struct sockaddr_in *to, int ping, uint64_t amount)
{
	static char buf[256 * 1024];
	int fd = dial(to);
	double t0 = now_s();
	if (ping) {
		double *rt = malloc(amount * sizeof *rt);
		if (!rt || amount == 0)
			die("ping rounds");
		for (uint64_t i = 0; i < amount; i++) {
			char c = 'x';
			double t = now_s();
			if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1)
				die("ping");
			rt[i] = now_s() - t;
		}
		double dt = now_s() - t0;
		qsort(rt, amount, sizeof *rt, cmp_double);
		/* nearest rank */
		printf("%.2f us/round trip, p50 %.2f us, p99 %.2f us (%llu rounds)\n",
		       dt / (double)amount * 1e6, rt[(amount * 50 + 99) / 100 - 1] * 1e6,
		       rt[(amount * 99 + 99) / 100 - 1] * 1e6, (unsigned long long)amount);
		free(rt);
	} else {
		for (uint64_t left = amount; left > 0;) {
			size_t n = left < sizeof buf ? (size_t)left : sizeof buf;
			if (write_all(fd, buf, n) < 0)
				die("write");
			left -= n;
		}
		shutdown(fd, SHUT_WR);
		while (read(fd, buf, sizeof buf) > 0)
			;
		double dt = now_s() - t0;
		printf("%.3f GiB/s (%.2f s)\n", (double)amount / dt / (1u << 30), dt);
	}
	fflush(stdout);
	_exit(0);
}

static void on_done(struct relay *r, void *data)
{
	struct relay_stats st;
	relay_get_stats(r, &st);
	if (st.error)
		fprintf(stderr, "relay: %s\n", strerror(st.error));
	loop_stop(data);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return fprintf(stderr, "usage: %s tput|ping direct|splice|rw [amount]\n", argv[0]),
		       2;
	int ping = strcmp(argv[1], "ping") == 0;
	const char *mode = argv[2];
	uint64_t amount = ping ? 50000 : (uint64_t)2 << 30;
	if (argc > 3)
		amount =
		    ping ? strtoull(argv[3], NULL, 10) : (uint64_t)(atof(argv[3]) * (1u << 30));
	signal(SIGPIPE, SIG_IGN);

	struct sockaddr_in srv_addr, relay_addr;
	int srv = listen_any(&srv_addr);
	pid_t sp = fork();
	if (sp == 0)
		server(srv, ping);
	close(srv);

	if (strcmp(mode, "direct") == 0) {
		pid_t cp = fork();
		if (cp == 0)
			client(&srv_addr, ping, amount);
		waitpid(cp, NULL, 0);
		waitpid(sp, NULL, 0);
		return 0;
	}

	int lfd = listen_any(&relay_addr);
	pid_t cp = fork();
	if (cp == 0)
		client(&relay_addr, ping, amount);
	int a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (a < 0)
		die("accept");
	close(lfd);
	int b = dial(&srv_addr);
	struct loop *l;
	struct relay *r;
	struct relay_opts o = {.no_splice = strcmp(mode, "rw") == 0};
	if (loop_new(&l) < 0)
		die("loop");
	if (strcmp(mode, "ep") == 0) {
#ifdef WITH_EP
		struct relay_ep *ea, *eb;
		if (relay_ep_fd_new(l, a, &ea) < 0 || relay_ep_fd_new(l, b, &eb) < 0 ||
		    relay_new_ep(l, ea, eb, NULL, on_done, l, &r) < 0)
			die("relay (endpoints)");
#else
		fprintf(stderr, "built without -DWITH_EP\n");
		return 2;
#endif
	} else if (strcmp(mode, "splice") != 0 && strcmp(mode, "rw") != 0) {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	} else if (relay_new(l, a, b, &o, on_done, l, &r) < 0) {
		die("relay");
	}
	loop_run(l);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	fprintf(stderr, "relay cpu: user %.4f s sys %.4f s\n",
		(double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
		(double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
	relay_free(r);
	loop_free(l);
	waitpid(cp, NULL, 0);
	waitpid(sp, NULL, 0);
	return 0;
}
