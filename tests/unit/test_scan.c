/* Unit tests for container/scan: the /proc/net/tcp{,6} parser on fixture
 * text (LISTEN filtering, malformed and truncated rows, loopback incl.
 * IPv4-mapped), dedupe across families, and a real listener found by
 * both sources and traced back to this process. */
#include "container/scan.h"
#include "core/util.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR4                                                                                       \
	"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "      \
	"timeout inode                                                     \n"
#define HDR6                                                                                       \
	"  sl  local_address                         remote_address                        st "    \
	"tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
#define TAIL " 1 0000000000000000 100 0 0 10 0"

/* 8080 on 127.0.0.1, 80 on 0.0.0.0, 5432 on 10.0.0.2; an established
 * connection from 8080 (not a listener); a listener on port 0 (ignored). */
static const char tcp_fixture[] =
    HDR4 "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 "
	 "       0 12345" TAIL "\n"
	 "   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 "
	 "       0 222" TAIL "\n"
	 "   2: 0200000A:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 "
	 "       0 333" TAIL "\n"
	 "   3: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000 "
	 "       0 444" TAIL "\n"
	 "   4: 0100007F:0000 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 "
	 "       0 555" TAIL "\n";

/* ::1 port 8080, :: port 3000, ::ffff:127.0.0.1 port 9229, ::ffff:10.0.0.2
 * port 6000 (not loopback), fe80::1 port 7000; the last row without a
 * trailing newline. */
static const char tcp6_fixture[] =
    HDR6 "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A "
	 "00000000:00000000 00:00000000 00000000  1000        0 666" TAIL "\n"
	 "   1: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A "
	 "00000000:00000000 00:00000000 00000000  1000        0 777" TAIL "\n"
	 "   2: 0000000000000000FFFF00000100007F:240D 00000000000000000000000000000000:0000 0A "
	 "00000000:00000000 00:00000000 00000000  1000        0 888" TAIL "\n"
	 "   3: 0000000000000000FFFF00000200000A:1770 00000000000000000000000000000000:0000 0A "
	 "00000000:00000000 00:00000000 00000000  1000        0 999" TAIL "\n"
	 "   4: 000080FE000000000000000001000000:1B58 00000000000000000000000000000000:0000 0A "
	 "00000000:00000000 00:00000000 00000000  1000        0 1010" TAIL;

/* Parse from an exact-size heap copy so ASan sees any overread. */
static int parse(const char *text, size_t len, int family, struct scan_listener *out, size_t max,
		 size_t *n)
{
	char *copy = malloc(len ? len : 1);
	ASSERT(copy);
	memcpy(copy, text, len);
	int r = scan_parse_proc_net(copy, len, family, out, max, n);
	free(copy);
	return r;
}

static const struct scan_listener *find(const struct scan_listener *v, size_t n, uint16_t port)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].port == port)
			return &v[i];
	return NULL;
}

static void test_parse_tcp4(void)
{
	struct scan_listener v[16];
	size_t n = 0;
	ASSERT_EQ(parse(tcp_fixture, strlen(tcp_fixture), AF_INET, v, ARRAY_SIZE(v), &n), 0);
	ASSERT_EQ(n, 3);
	ASSERT_EQ(v[0].port, 8080);
	ASSERT_EQ(v[0].family, AF_INET);
	ASSERT_EQ(v[0].loopback, 1);
	ASSERT_EQ(v[0].inode, 12345);
	ASSERT_EQ(v[1].port, 80);
	ASSERT_EQ(v[1].loopback, 0);
	ASSERT_EQ(v[1].inode, 222);
	ASSERT_EQ(v[2].port, 5432);
	ASSERT_EQ(v[2].loopback, 0);
	ASSERT_EQ(v[2].inode, 333);
}

static void test_parse_tcp6(void)
{
	struct scan_listener v[16];
	size_t n = 0;
	ASSERT_EQ(parse(tcp6_fixture, strlen(tcp6_fixture), AF_INET6, v, ARRAY_SIZE(v), &n), 0);
	ASSERT_EQ(n, 5);
	const struct scan_listener *l = find(v, n, 8080);
	ASSERT(l);
	ASSERT_EQ(l->family, AF_INET6);
	ASSERT_EQ(l->loopback, 1);
	ASSERT_EQ(l->inode, 666);
	ASSERT((l = find(v, n, 3000)) && !l->loopback && l->inode == 777);
	ASSERT((l = find(v, n, 9229)) && l->loopback && l->inode == 888);
	ASSERT((l = find(v, n, 6000)) && !l->loopback);
	ASSERT((l = find(v, n, 7000)) && !l->loopback && l->inode == 1010);
	/* v4 text read as v6 (and the reverse): every row has the wrong
	 * address width, so every row is malformed */
	n = 0;
	ASSERT_EQ(parse(tcp_fixture, strlen(tcp_fixture), AF_INET6, v, ARRAY_SIZE(v), &n), 5);
	ASSERT_EQ(n, 0);
	ASSERT_EQ(parse(tcp6_fixture, strlen(tcp6_fixture), AF_INET, v, ARRAY_SIZE(v), &n), 5);
	ASSERT_EQ(n, 0);
}

static void test_parse_malformed(void)
{
	static const char text[] =
	    HDR4 "\n"
		 "   \t  \n"
		 "   0: 0100007F:1F90 00000000:0000 0A\n"			 /* short */
		 "   1: 0100007F:1F9 00000000:0000 0A 0:0 0:0 0 0 0 1" TAIL "\n" /* port 3 digits */
		 "   2: 0100007G:1F90 00000000:0000 0A 0:0 0:0 0 0 0 1" TAIL "\n"  /* not hex */
		 "   3: 0100007F:1F90 00000000:0000 0AA 0:0 0:0 0 0 0 1" TAIL "\n" /* state */
		 "   4: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 -1" TAIL "\n" /* inode */
		 "   5: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 "
		 "99999999999999999999999" TAIL "\n"				   /* huge */
		 "   6: FFFFFFFFF0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 1\n" /* huge hex */
		 "   7: 0100007F:0001F90 00000000:0000 0A 0:0 0:0 0 0 0 1\n"	   /* huge port */
		 "   x 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 1\n"	   /* no colon */
		 "   8: 0100007F1F90: 00000000:0000 0A 0:0 0:0 0 0 0 1\n"	   /* colon place */
		 "   9: 0100007F:1F91 00000000:0000 0a 0:0 0:0 0 0 0 18446744073709551615\n"
		 "  10: 0100007F:1F92 00000000:0000 0A 0:0 0:0 0 0 0 7";
	struct scan_listener v[16];
	size_t n = 0;
	ASSERT_EQ(parse(text, strlen(text), AF_INET, v, ARRAY_SIZE(v), &n), 10);
	ASSERT_EQ(n, 2);
	ASSERT_EQ(v[0].port, 0x1F91);
	ASSERT_EQ(v[0].inode, 18446744073709551615ul);
	ASSERT_EQ(v[1].port, 0x1F92); /* no trailing newline */
	ASSERT_EQ(v[1].inode, 7);

	/* truncated at every byte: never reads past len, never invents a
	 * row, and a row cut inside its first ten fields is malformed */
	size_t len = strlen(tcp_fixture);
	for (size_t cut = 0; cut <= len; cut++) {
		n = 0;
		int r = parse(tcp_fixture, cut, AF_INET, v, ARRAY_SIZE(v), &n);
		ASSERT_GE(r, 0);
		ASSERT_LE(r, 1);
		ASSERT_LE(n, 3);
	}
	/* empty input, bad family, NULL count */
	n = 0;
	ASSERT_EQ(scan_parse_proc_net("", 0, AF_INET, v, ARRAY_SIZE(v), &n), 0);
	ASSERT_EQ(scan_parse_proc_net(NULL, 0, AF_INET6, NULL, 0, &n), 0);
	ASSERT_EQ(n, 0);
	ASSERT_EQ(scan_parse_proc_net("x", 1, AF_UNIX, v, ARRAY_SIZE(v), &n), -EINVAL);
	ASSERT_EQ(scan_parse_proc_net("x", 1, AF_INET, v, ARRAY_SIZE(v), NULL), -EINVAL);
}

static void test_parse_capacity(void)
{
	struct scan_listener v[2];
	size_t n = 0;
	ASSERT_EQ(parse(tcp_fixture, strlen(tcp_fixture), AF_INET, v, 2, &n), 0);
	ASSERT_EQ(n, 2);
	/* the running count: v6 appends after v4, full stays full */
	ASSERT_EQ(parse(tcp6_fixture, strlen(tcp6_fixture), AF_INET6, v, 2, &n), 0);
	ASSERT_EQ(n, 2);
	ASSERT_EQ(v[1].family, AF_INET);

	struct scan_listener w[16];
	n = 0;
	parse(tcp_fixture, strlen(tcp_fixture), AF_INET, w, ARRAY_SIZE(w), &n);
	ASSERT_EQ(n, 3);
	parse(tcp6_fixture, strlen(tcp6_fixture), AF_INET6, w, ARRAY_SIZE(w), &n);
	ASSERT_EQ(n, 8);
}

static void test_dedupe(void)
{
	struct scan_listener v[16];
	size_t n = 0;
	parse(tcp_fixture, strlen(tcp_fixture), AF_INET, v, ARRAY_SIZE(v), &n);
	parse(tcp6_fixture, strlen(tcp6_fixture), AF_INET6, v, ARRAY_SIZE(v), &n);
	ASSERT_EQ(n, 8);
	scan_dedupe(v, &n);
	/* 80 3000 5432 6000 7000 8080 9229: 8080 was on v4 and v6 */
	static const uint16_t want[] = {80, 3000, 5432, 6000, 7000, 8080, 9229};
	ASSERT_EQ(n, ARRAY_SIZE(want));
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(v[i].port, want[i]);
	ASSERT_EQ(v[5].loopback, 1); /* 127.0.0.1 and ::1: both loopback */
	ASSERT_EQ(v[5].family, AF_INET);
	ASSERT_EQ(v[5].inode, 12345);

	/* loopback only if all duplicates are; a non-zero inode wins */
	struct scan_listener d[] = {
	    {.port = 443, .family = AF_INET6, .loopback = 1, .inode = 0},
	    {.port = 22, .family = AF_INET, .loopback = 0, .inode = 5},
	    {.port = 443, .family = AF_INET, .loopback = 0, .inode = 0},
	    {.port = 443, .family = AF_INET6, .loopback = 1, .inode = 77},
	    {.port = 22, .family = AF_INET6, .loopback = 0, .inode = 6},
	    {.port = 1, .family = AF_INET6, .loopback = 1, .inode = 9},
	};
	size_t dn = ARRAY_SIZE(d);
	scan_dedupe(d, &dn);
	ASSERT_EQ(dn, 3);
	ASSERT_EQ(d[0].port, 1);
	ASSERT_EQ(d[0].loopback, 1);
	ASSERT_EQ(d[1].port, 22);
	ASSERT_EQ(d[1].family, AF_INET);
	ASSERT_EQ(d[1].inode, 5);
	ASSERT_EQ(d[2].port, 443);
	ASSERT_EQ(d[2].inode, 77);
	ASSERT_EQ(d[2].family, AF_INET6);
	ASSERT_EQ(d[2].loopback, 0);

	dn = 0;
	scan_dedupe(d, &dn);
	ASSERT_EQ(dn, 0);
	scan_dedupe(NULL, NULL);
}

static void test_loopback(void)
{
	uint8_t a[16] = {0};
	ASSERT(!scan_addr_is_loopback(AF_INET6, a)); /* :: */
	a[15] = 1;
	ASSERT(scan_addr_is_loopback(AF_INET6, a)); /* ::1 */
	ASSERT(inet_pton(AF_INET6, "::ffff:127.3.2.1", a) == 1);
	ASSERT(scan_addr_is_loopback(AF_INET6, a));
	ASSERT(inet_pton(AF_INET6, "::ffff:128.0.0.1", a) == 1);
	ASSERT(!scan_addr_is_loopback(AF_INET6, a));
	ASSERT(inet_pton(AF_INET6, "::127.0.0.1", a) == 1); /* IPv4-compatible: not */
	ASSERT(!scan_addr_is_loopback(AF_INET6, a));
	ASSERT(inet_pton(AF_INET, "127.255.0.9", a) == 1);
	ASSERT(scan_addr_is_loopback(AF_INET, a));
	ASSERT(inet_pton(AF_INET, "10.127.0.1", a) == 1);
	ASSERT(!scan_addr_is_loopback(AF_INET, a));
}

static int listen_on(int family, const char *addr, uint16_t port, uint16_t *ret_port,
		     unsigned long *ret_inode)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;
		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		ASSERT_EQ(inet_pton(AF_INET, addr, &s->sin_addr), 1);
		sl = sizeof *s;
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
		int one = 1;
		s->sin6_family = AF_INET6;
		s->sin6_port = htons(port);
		ASSERT_EQ(inet_pton(AF_INET6, addr, &s->sin6_addr), 1);
		sl = sizeof *s;
		/* so that [::]:P can coexist with 127.0.0.1:P */
		ASSERT_EQ(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one), 0);
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 4) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	*ret_port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					    : ((struct sockaddr_in6 *)&ss)->sin6_port);
	struct stat st;
	ASSERT_EQ(fstat(fd, &st), 0);
	*ret_inode = (unsigned long)st.st_ino;
	return fd;
}

/* 127.0.0.1:P and v6addr:P.  Returns false when this host has no IPv6. */
static bool listen_dual(const char *v6addr, int fds[2], uint16_t *ret_port)
{
	for (int tries = 0; tries < 50; tries++) {
		uint16_t p4 = 0, p6 = 0;
		unsigned long i4, i6;
		fds[0] = listen_on(AF_INET, "127.0.0.1", 0, &p4, &i4);
		ASSERT_GE(fds[0], 0);
		fds[1] = listen_on(AF_INET6, v6addr, p4, &p6, &i6);
		if (fds[1] >= 0) {
			ASSERT_EQ(p6, p4);
			*ret_port = p4;
			return true;
		}
		close(fds[0]);
		if (fds[1] != -EADDRINUSE)
			return false;
	}
	return false;
}

struct want {
	uint16_t port;
	uint8_t loopback;
	unsigned long inode; /* 0: do not check */
};

typedef int (*scan_fn)(struct scan_listener *, size_t, size_t *);

static void check_source(scan_fn fn, const char *name, const struct want *w, size_t nw)
{
	static struct scan_listener v[SCAN_MAX_LISTENERS];
	size_t n = 0;
	int r = fn(v, ARRAY_SIZE(v), &n);
	if (r == -EPERM || r == -EACCES || r == -EPROTONOSUPPORT || r == -EAFNOSUPPORT) {
		printf("# %s unavailable here (%s); skipped\n", name, strerror(-r));
		return;
	}
	ASSERT_EQ(r, 0);
	for (size_t i = 1; i < n; i++)
		ASSERT_LT(v[i - 1].port, v[i].port); /* sorted, deduped */
	for (size_t i = 0; i < nw; i++) {
		const struct scan_listener *l = find(v, n, w[i].port);
		if (!l)
			TEST_FAIL_("%s: port %u not found", name, w[i].port);
		ASSERT_EQ(l->family, AF_INET); /* the v4 twin is preferred */
		ASSERT_EQ(l->loopback, w[i].loopback);
		ASSERT_NE(l->inode, 0);
		if (w[i].inode)
			ASSERT_EQ(l->inode, w[i].inode);
	}
	/* a small max truncates (to the lowest port: not compared with v[0],
	 * other processes on this machine may open or close listeners) */
	struct scan_listener one[1];
	size_t n1 = 0;
	ASSERT_EQ(fn(one, 1, &n1), 0);
	ASSERT_EQ(n1, 1);
	ASSERT_NE(one[0].port, 0);
	ASSERT_EQ(fn(NULL, 0, &n1), 0);
	ASSERT_EQ(n1, 0);
}

static void test_real_listener(void)
{
	uint16_t port = 0;
	unsigned long inode = 0;
	int fd = listen_on(AF_INET, "127.0.0.1", 0, &port, &inode);
	ASSERT_GE(fd, 0);
	struct want w[3] = {{port, 1, inode}};
	size_t nw = 1;
	/* the same port on v4 and v6: one entry, loopback only if both are */
	int both_lo[2] = {-1, -1}, one_lo[2] = {-1, -1};
	uint16_t p;
	if (listen_dual("::1", both_lo, &p))
		w[nw++] = (struct want){p, 1, 0};
	if (listen_dual("::", one_lo, &p))
		w[nw++] = (struct want){p, 0, 0};
	if (nw < 3)
		printf("# no IPv6 listeners here; dual-stack cases skipped\n");

	check_source(scan_listeners, "scan_listeners", w, nw);
	check_source(scan_listeners_netlink, "netlink", w, nw);
	check_source(scan_listeners_proc, "/proc/net", w, nw);

	pid_t pid = 0;
	char comm[32], want[32] = "";
	ASSERT_EQ(scan_owner(inode, &pid, comm, sizeof comm), 0);
	ASSERT_EQ(pid, getpid());
	char *self = NULL;
	size_t len = 0;
	ASSERT_EQ(read_file("/proc/self/comm", 64, &self, &len), 0);
	snprintf(want, sizeof want, "%.*s", (int)strcspn(self, "\n"), self);
	free(self);
	ASSERT_STR_EQ(comm, want);
	/* comm is optional, and truncated to fit */
	pid = 0;
	ASSERT_EQ(scan_owner(inode, &pid, NULL, 0), 0);
	ASSERT_EQ(pid, getpid());
	char small[3];
	ASSERT_EQ(scan_owner(inode, NULL, small, sizeof small), 0);
	ASSERT_EQ(strlen(small), 2);
	ASSERT_EQ(memcmp(small, want, 2), 0);

	/* closed: gone from both the scan and the owner lookup */
	close(fd);
	pid = 12345;
	ASSERT_EQ(scan_owner(inode, &pid, comm, sizeof comm), -ENOENT);
	ASSERT_EQ(pid, 12345); /* untouched on failure */
	static struct scan_listener v[SCAN_MAX_LISTENERS];
	size_t n = 0;
	ASSERT_EQ(scan_listeners(v, ARRAY_SIZE(v), &n), 0);
	ASSERT(!find(v, n, port));
	ASSERT_EQ(scan_owner(0, &pid, comm, sizeof comm), -ENOENT);
	for (int i = 0; i < 2; i++) {
		if (both_lo[i] >= 0)
			close(both_lo[i]);
		if (one_lo[i] >= 0)
			close(one_lo[i]);
	}
}

int main(void)
{
	RUN(test_parse_tcp4);
	RUN(test_parse_tcp6);
	RUN(test_parse_malformed);
	RUN(test_parse_capacity);
	RUN(test_dedupe);
	RUN(test_loopback);
	RUN(test_real_listener);
	return 0;
}
