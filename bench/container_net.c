/* container_net.c - the small TCP client and server bench/container.sh uses.
 *
 * Built by container.sh at run time (cc -O2 into its temp dir); not part of
 * the devbridge build.  Every timestamp is CLOCK_MONOTONIC, the one clock a
 * network namespace shares with the host, so a time printed by the server
 * inside the namespace and one printed by a client on the host can be
 * subtracted.
 *
 *   container_net serve ADDR PORT
 *       epoll echo server (any number of connections); prints
 *       "listening MONO_SECONDS" on stdout right after listen()
 *   container_net pingpong HOST PORT N WARMUP
 *       one connection, TCP_NODELAY, N timed 1-byte round trips after WARMUP
 *       untimed ones -> JSON {n, p50_us, p99_us, mean_us, min_us, max_us}
 *   container_net connrate HOST PORT SECONDS MAXN
 *       connect + 1-byte echo + close, sequentially, until SECONDS have passed
 *       or MAXN connections are done -> JSON {conns, errors, seconds, rate}
 *   container_net hold HOST PORT N SECONDS
 *       open N connections, each proven by a 1-byte echo (at most SECONDS for
 *       the lot), print JSON {opened, errors, seconds}, hold them until stdin
 *       reaches EOF, close them all, print JSON {closed, seconds}
 *   container_net probe HOST PORT INTERVAL_MS TIMEOUT_MS
 *       connect + 1-byte echo every INTERVAL_MS until one works -> JSON
 *       {t1 (MONO_SECONDS of the first success), attempts, refused, other}
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "container_net: %s: %s\n", what, strerror(errno));
	exit(1);
}

static struct sockaddr_in addr_of(const char *host, const char *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port))};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "container_net: bad IPv4 address %s\n", host);
		exit(2);
	}
	return sa;
}

/* ---------------------------------------------------------------- server */

static int serve(const char *host, const char *port)
{
	struct sockaddr_in sa = addr_of(host, port);
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ls < 0)
		die("socket");
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int));
	if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("bind");
	if (listen(ls, 4096) < 0)
		die("listen");
	printf("listening %.9f\n", mono());
	fflush(stdout);

	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev) < 0)
		die("epoll_ctl");
	static char buf[65536];
	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == ls) {
				for (;;) {
					int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (c < 0)
						break; /* EAGAIN, or EMFILE: retried on the next event */
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
					struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
					if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce) < 0)
						close(c);
				}
				continue;
			}
			ssize_t r = read(fd, buf, sizeof buf);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0) {
				close(fd); /* also removes it from the epoll set */
				continue;
			}
			ssize_t off = 0;
			while (off < r) { /* echo all of it, waiting for room if needed */
				ssize_t w = send(fd, buf + off, (size_t)(r - off), MSG_NOSIGNAL);
				if (w > 0) {
					off += w;
				} else if (w < 0 && errno == EAGAIN) {
					struct pollfd p = {.fd = fd, .events = POLLOUT};
					poll(&p, 1, 1000);
				} else if (w < 0 && errno == EINTR) {
					continue;
				} else {
					break;
				}
			}
			if (off < r)
				close(fd);
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- clients */

/* A blocking connected socket with TCP_NODELAY and a receive timeout, or -1
 * (errno set). */
static int dial(const struct sockaddr_in *sa, int timeout_ms)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	return fd;
}

/* One 1-byte round trip: 0 or -1. */
static int echo1(int fd, char c)
{
	char r;
	if (send(fd, &c, 1, MSG_NOSIGNAL) != 1)
		return -1;
	ssize_t n;
	do
		n = recv(fd, &r, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n != 1) {
		if (n == 0)
			errno = ECONNRESET;
		return -1;
	}
	return r == c ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* nearest rank */
static double pct(const double *sorted, int n, double p)
{
	int k = (int)(p / 100.0 * n + 0.999999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return sorted[k - 1];
}

static int pingpong(const char *host, const char *port, int n, int warmup)
{
	struct sockaddr_in sa = addr_of(host, port);
	int fd = dial(&sa, 5000);
	if (fd < 0)
		die("connect");
	for (int i = 0; i < warmup; i++)
		if (echo1(fd, (char)('a' + i % 26)) < 0)
			die("warm-up round trip");
	double *t = malloc(sizeof(double) * (size_t)n), sum = 0;
	if (!t)
		die("malloc");
	for (int i = 0; i < n; i++) {
		double t0 = mono();
		if (echo1(fd, (char)('A' + i % 26)) < 0)
			die("round trip");
		t[i] = (mono() - t0) * 1e6;
		sum += t[i];
	}
	close(fd);
	qsort(t, (size_t)n, sizeof *t, cmp_double);
	printf("{\"n\": %d, \"p50_us\": %.2f, \"p99_us\": %.2f, \"mean_us\": %.2f, \"min_us\": %.2f, "
	       "\"max_us\": %.2f}\n",
	       n, pct(t, n, 50), pct(t, n, 99), sum / n, t[0], t[n - 1]);
	return 0;
}

static int connrate(const char *host, const char *port, double seconds, int maxn)
{
	struct sockaddr_in sa = addr_of(host, port);
	int conns = 0, errors = 0;
	double t0 = mono(), now = t0;
	while (conns + errors < maxn && (now = mono()) - t0 < seconds) {
		int fd = dial(&sa, 2000);
		if (fd < 0 || echo1(fd, 'x') < 0)
			errors++;
		else
			conns++;
		if (fd >= 0)
			close(fd);
	}
	now = mono();
	printf("{\"conns\": %d, \"errors\": %d, \"seconds\": %.4f, \"rate\": %.1f}\n", conns, errors,
	       now - t0, conns / (now - t0));
	return 0;
}

static int hold(const char *host, const char *port, int n, double seconds)
{
	struct sockaddr_in sa = addr_of(host, port);
	int *fds = malloc(sizeof(int) * (size_t)n), opened = 0, errors = 0, first_errno = 0;
	if (!fds)
		die("malloc");
	double t0 = mono();
	for (int i = 0; i < n; i++) {
		if (mono() - t0 > seconds) { /* out of time: the rest count as errors */
			errors += n - i;
			break;
		}
		int fd = dial(&sa, 5000);
		if (fd >= 0 && echo1(fd, (char)('a' + i % 26)) == 0) {
			fds[opened++] = fd;
			continue;
		}
		if (!first_errno)
			first_errno = errno;
		errors++;
		if (fd >= 0)
			close(fd);
	}
	printf("{\"opened\": %d, \"errors\": %d, \"first_error\": \"%s\", \"seconds\": %.3f}\n", opened,
	       errors, first_errno ? strerror(first_errno) : "", mono() - t0);
	fflush(stdout);
	char b[64];
	while (read(0, b, sizeof b) > 0) /* held until the script closes our stdin */
		;
	double t1 = mono();
	for (int i = 0; i < opened; i++)
		close(fds[i]);
	printf("{\"closed\": %d, \"seconds\": %.3f}\n", opened, mono() - t1);
	return 0;
}

static int probe(const char *host, const char *port, int interval_ms, int timeout_ms)
{
	struct sockaddr_in sa = addr_of(host, port);
	int attempts = 0, refused = 0, other = 0;
	double t0 = mono(), next = t0;
	for (;;) {
		attempts++;
		int fd = dial(&sa, 1000);
		if (fd >= 0 && echo1(fd, 'p') == 0) {
			double t1 = mono();
			close(fd);
			printf("{\"t1\": %.9f, \"attempts\": %d, \"refused\": %d, \"other\": %d}\n", t1,
			       attempts, refused, other);
			return 0;
		}
		if (fd < 0 && errno == ECONNREFUSED)
			refused++;
		else
			other++;
		if (fd >= 0)
			close(fd);
		double now = mono();
		if ((now - t0) * 1000 > timeout_ms) {
			printf("{\"t1\": null, \"attempts\": %d, \"refused\": %d, \"other\": %d}\n", attempts,
			       refused, other);
			return 1;
		}
		next += interval_ms / 1000.0;
		if (next > now) {
			double d = next - now;
			struct timespec ts = {.tv_sec = (time_t)d, .tv_nsec = (long)((d - (time_t)d) * 1e9)};
			nanosleep(&ts, NULL);
		} else {
			next = now;
		}
	}
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	if (!strcmp(cmd, "serve") && argc == 4)
		return serve(argv[2], argv[3]);
	if (!strcmp(cmd, "pingpong") && argc == 6)
		return pingpong(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	if (!strcmp(cmd, "connrate") && argc == 6)
		return connrate(argv[2], argv[3], atof(argv[4]), atoi(argv[5]));
	if (!strcmp(cmd, "hold") && argc == 6)
		return hold(argv[2], argv[3], atoi(argv[4]), atof(argv[5]));
	if (!strcmp(cmd, "probe") && argc == 6)
		return probe(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	fprintf(stderr, "usage: container_net serve ADDR PORT | pingpong HOST PORT N WARMUP | "
			"connrate HOST PORT SECONDS MAXN | hold HOST PORT N SECONDS | "
			"probe HOST PORT INTERVAL_MS TIMEOUT_MS\n");
	return 2;
}
