/* scan.c - see scan.h.  The portable half: the /proc/net/tcp text parser
 * (pure, fuzzed), dedupe, and inode -> owner through /proc/PID/fd.  The
 * kernel queries (netlink, reading /proc/net) are in scan_linux.c. */
#include "container/scan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Fields of a /proc/net/tcp row, 0-based: "sl:", local, remote, st,
 * tx:rx queue, tr:when, retrnsmt, uid, timeout, inode, ... */
#define F_SL	 0
#define F_LOCAL	 1
#define F_STATE	 3
#define F_INODE	 9
#define F_NEEDED 10

#define TCP_STATE_LISTEN 0x0A

struct field {
	const char *p;
	size_t len;
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly `len` (1..8) hex digits. */
static bool parse_hex32(const char *p, size_t len, uint32_t *ret)
{
	uint32_t v = 0;
	if (len == 0 || len > 8)
		return false;
	for (size_t i = 0; i < len; i++) {
		int d = hexval(p[i]);
		if (d < 0)
			return false;
		v = v << 4 | (uint32_t)d;
	}
	*ret = v;
	return true;
}

static bool parse_ulong_dec(const char *p, size_t len, unsigned long *ret)
{
	unsigned long v = 0;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (ULONG_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*ret = v;
	return true;
}

bool scan_addr_is_loopback(int family, const uint8_t *a)
{
	static const uint8_t v6_loop[16] = {[15] = 1};
	static const uint8_t v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
	if (family == AF_INET)
		return a[0] == 127;
	if (family == AF_INET6)
		return memcmp(a, v6_loop, 16) == 0 ||
		       (memcmp(a, v4_mapped, 12) == 0 && a[12] == 127);
	return false;
}

/* "0100007F:1F90": the address as the kernel prints it, one %08X per
 * 32-bit word of the network-order address read as a host integer (so
 * byte-swapped on little-endian machines), then the port as %04X. */
static bool parse_local(const struct field *f, int family, uint16_t *ret_port, bool *ret_loop)
{
	size_t words = family == AF_INET ? 1 : 4;
	uint8_t addr[16];
	uint32_t v;

	if (f->len != words * 8 + 1 + 4 || f->p[words * 8] != ':')
		return false;
	for (size_t i = 0; i < words; i++) {
		if (!parse_hex32(f->p + i * 8, 8, &v))
			return false;
		memcpy(addr + i * 4, &v, 4);
	}
	if (!parse_hex32(f->p + words * 8 + 1, 4, &v))
		return false;
	*ret_port = (uint16_t)v;
	*ret_loop = scan_addr_is_loopback(family, addr);
	return true;
}

/* One line without its newline.  Returns 1 when it is malformed (to be
 * counted), 0 otherwise (appended, filtered out, blank or the header). */
static int parse_line(const char *p, const char *end, int family, struct scan_listener *out,
		      size_t max, size_t *n)
{
	struct field f[F_NEEDED];
	size_t nf = 0;

	while (nf < F_NEEDED) {
		while (p < end && is_blank(*p))
			p++;
		if (p == end)
			break;
		f[nf].p = p;
		while (p < end && !is_blank(*p))
			p++;
		f[nf].len = (size_t)(p - f[nf].p);
		nf++;
	}
	if (nf == 0)
		return 0;
	if (f[F_SL].len == 2 && memcmp(f[F_SL].p, "sl", 2) == 0)
		return 0; /* the header */
	if (nf < F_NEEDED)
		return 1;

	/* "  12:" - hex slot number and a colon */
	uint32_t sl;
	if (f[F_SL].len < 2 || f[F_SL].p[f[F_SL].len - 1] != ':' ||
	    !parse_hex32(f[F_SL].p, f[F_SL].len - 1, &sl))
		return 1;
	uint16_t port;
	bool loop;
	uint32_t st;
	unsigned long inode;
	if (!parse_local(&f[F_LOCAL], family, &port, &loop) || f[F_STATE].len != 2 ||
	    !parse_hex32(f[F_STATE].p, 2, &st) ||
	    !parse_ulong_dec(f[F_INODE].p, f[F_INODE].len, &inode))
		return 1;

	if (st != TCP_STATE_LISTEN || port == 0 || *n >= max)
		return 0;
	out[*n] = (struct scan_listener){
	    .port = port,
	    .family = (uint8_t)family,
	    .loopback = loop,
	    .inode = inode,
	};
	(*n)++;
	return 0;
}

int scan_parse_proc_net(const char *buf, size_t len, int family, struct scan_listener *out,
			size_t max, size_t *n)
{
	const char *p = buf, *end = buf + len;
	int skipped = 0;

	if ((family != AF_INET && family != AF_INET6) || !n || (len && !buf) || (max && !out))
		return -EINVAL;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		if (parse_line(p, eol, family, out, max, n) && skipped < INT_MAX)
			skipped++;
		p = nl ? nl + 1 : end;
	}
	return skipped;
}

static int cmp_listener(const void *a, const void *b)
{
	const struct scan_listener *x = a, *y = b;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	/* within one port: a socket with an inode first (its owner can be
	 * found), then IPv4 before IPv6, so the pick is deterministic */
	if ((x->inode == 0) != (y->inode == 0))
		return x->inode == 0 ? 1 : -1;
	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	if (x->inode != y->inode)
		return x->inode < y->inode ? -1 : 1;
	return (int)x->loopback - (int)y->loopback;
}

void scan_dedupe(struct scan_listener *v, size_t *n)
{
	size_t w = 0;

	if (!v || !n || *n == 0)
		return;
	qsort(v, *n, sizeof *v, cmp_listener);
	for (size_t i = 0; i < *n;) {
		struct scan_listener keep = v[i];
		size_t j = i + 1;
		for (; j < *n && v[j].port == keep.port; j++)
			if (!v[j].loopback)
				keep.loopback = 0;
		v[w++] = keep;
		i = j;
	}
	*n = w;
}

/* A /proc entry name that is a pid; 0 otherwise. */
static pid_t parse_pid(const char *s)
{
	long v = 0;
	if (!*s || strlen(s) > 10)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		v = v * 10 + (*s - '0');
	}
	return v > 0 && v <= INT_MAX ? (pid_t)v : 0;
}

/* Does process `pid` (a directory in /proc) hold `want` ("socket:[N]")? */
static bool pid_has_socket(int procfd, pid_t pid, const char *want, size_t wantlen)
{
	char path[64], link[64];
	bool found = false;

	snprintf(path, sizeof path, "%d/fd", (int)pid);
	int fd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false; /* gone, or not ours (EACCES) */
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		ssize_t r = readlinkat(fd, de->d_name, link, sizeof link);
		found = r == (ssize_t)wantlen && memcmp(link, want, wantlen) == 0;
	}
	closedir(d);
	return found;
}

static void read_comm(int procfd, pid_t pid, char *comm, size_t commlen)
{
	char path[64], buf[64];
	ssize_t r = -1;

	if (!comm || commlen == 0)
		return;
	comm[0] = '\0';
	snprintf(path, sizeof path, "%d/comm", (int)pid);
	int fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		do
			r = read(fd, buf, sizeof buf - 1);
		while (r < 0 && errno == EINTR);
		close(fd);
	}
	if (r <= 0)
		return;
	buf[r] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	snprintf(comm, commlen, "%s", buf);
}

int scan_owner(unsigned long inode, pid_t *ret_pid, char *comm, size_t commlen)
{
	char want[48];

	if (inode == 0)
		return -ENOENT;
	int wantlen = snprintf(want, sizeof want, "socket:[%lu]", inode);
	DIR *proc = opendir("/proc");
	if (!proc)
		return -errno;
	int procfd = dirfd(proc);
	struct dirent *de;
	int r = -ENOENT;
	while ((de = readdir(proc))) {
		pid_t pid = parse_pid(de->d_name);
		if (!pid || !pid_has_socket(procfd, pid, want, (size_t)wantlen))
			continue;
		read_comm(procfd, pid, comm, commlen);
		if (ret_pid)
			*ret_pid = pid;
		r = 0;
		break;
	}
	closedir(proc);
	return r;
}
