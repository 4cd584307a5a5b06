/* scan_linux.c - scan_listeners for Linux: ask the kernel for LISTEN TCP
 * sockets over NETLINK_SOCK_DIAG (the filter runs in the kernel, so the
 * cost does not grow with established connections), or read
 * /proc/net/tcp{,6} when sock_diag is unavailable (module missing, seccomp,
 * gVisor).  Both see the caller's network namespace. */
#include "container/scan.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NL_BUF_SIZE   32768
#define PROC_BUF_SIZE 65536

/* Collect up to this many raw entries (both families, before dedupe). */
static size_t raw_cap(size_t max)
{
	size_t m = max > SCAN_MAX_LISTENERS ? max : SCAN_MAX_LISTENERS;
	return m > 65536 ? 2 * 65536 : 2 * m;
}

/* Dedupe `tmp` and copy the lowest `max` ports to out. */
static void finish(struct scan_listener *tmp, size_t ntmp, struct scan_listener *out, size_t max,
		   size_t *n)
{
	scan_dedupe(tmp, &ntmp);
	if (ntmp > max)
		ntmp = max;
	if (ntmp)
		memcpy(out, tmp, ntmp * sizeof *tmp);
	*n = ntmp;
}

/* One SOCK_DIAG_BY_FAMILY dump of LISTEN sockets of `family`; `buf` holds
 * NL_BUF_SIZE bytes. */
static int nl_dump(int fd, int family, uint32_t seq, void *buf, struct scan_listener *out,
		   size_t max, size_t *n)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};

	memset(&req, 0, sizeof req);
	req.nlh.nlmsg_len = sizeof req;
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nlh.nlmsg_seq = seq;
	req.r.sdiag_family = (uint8_t)family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = 1u << TCP_LISTEN;
	for (;;) {
		if (sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&sa, sizeof sa) >= 0)
			break;
		if (errno != EINTR)
			return -errno;
	}

	for (;;) {
		struct iovec iov = {.iov_base = buf, .iov_len = NL_BUF_SIZE};
		struct msghdr mh = {
		    .msg_name = &sa, .msg_namelen = sizeof sa, .msg_iov = &iov, .msg_iovlen = 1};
		ssize_t r = recvmsg(fd, &mh, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		if (mh.msg_flags & MSG_TRUNC)
			return -EMSGSIZE;
		if (sa.nl_pid != 0)
			continue; /* not from the kernel */
		size_t len = (size_t)r;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len);
		     h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_seq != seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE) {
				int err = 0;
				if (h->nlmsg_len >= NLMSG_LENGTH(sizeof err))
					memcpy(&err, NLMSG_DATA(h), sizeof err);
				return err < 0 ? err : 0;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr e;
				if (h->nlmsg_len < NLMSG_LENGTH(sizeof e))
					return -EIO;
				memcpy(&e, NLMSG_DATA(h), sizeof e);
				return e.error < 0 ? e.error : -EIO;
			}
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
			    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
				continue;
			const struct inet_diag_msg *m = NLMSG_DATA(h);
			uint16_t port = ntohs(m->id.idiag_sport);
			if (m->idiag_family != family || m->idiag_state != TCP_LISTEN ||
			    port == 0 || *n >= max)
				continue; /* keep reading up to NLMSG_DONE */
			uint8_t addr[16];
			memcpy(addr, m->id.idiag_src, sizeof addr);
			out[*n] = (struct scan_listener){
			    .port = port,
			    .family = (uint8_t)family,
			    .loopback = scan_addr_is_loopback(family, addr),
			    .inode = m->idiag_inode,
			};
			(*n)++;
		}
	}
}

int scan_listeners_netlink(struct scan_listener *out, size_t max, size_t *n)
{
	size_t cap = raw_cap(max), ntmp = 0;
	int r;

	if (!n || (max && !out))
		return -EINVAL;
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -errno;
	struct scan_listener *tmp = malloc(cap * sizeof *tmp);
	void *buf = malloc(NL_BUF_SIZE);
	if (!tmp || !buf) {
		free(tmp);
		free(buf);
		close(fd);
		return -ENOMEM;
	}
	r = nl_dump(fd, AF_INET, 1, buf, tmp, cap, &ntmp);
	if (r == 0) {
		r = nl_dump(fd, AF_INET6, 2, buf, tmp, cap, &ntmp);
		/* IPv6 disabled or its diag module absent: no v6 listeners */
		if (r == -ENOENT || r == -EAFNOSUPPORT || r == -EPROTONOSUPPORT)
			r = 0;
	}
	close(fd);
	if (r == 0)
		finish(tmp, ntmp, out, max, n);
	free(tmp);
	free(buf);
	return r;
}

/* Stream one /proc/net file through scan_parse_proc_net in whole lines,
 * without holding the whole file (it lists every socket, not only
 * listeners). */
static int read_proc_net(const char *path, int family, char *buf, struct scan_listener *out,
			 size_t max, size_t *n)
{
	size_t have = 0;
	bool overlong = false; /* dropping the rest of a line longer than buf */

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t r = read(fd, buf + have, PROC_BUF_SIZE - have);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			close(fd);
			return e;
		}
		if (r == 0)
			break;
		have += (size_t)r;
		const char *nl = memrchr(buf, '\n', have);
		if (!nl) {
			if (have == PROC_BUF_SIZE) {
				overlong = true;
				have = 0;
			}
			continue;
		}
		size_t start = 0, upto = (size_t)(nl - buf) + 1;
		if (overlong) {
			start = (size_t)((const char *)memchr(buf, '\n', have) - buf) + 1;
			overlong = false;
		}
		if (upto > start)
			scan_parse_proc_net(buf + start, upto - start, family, out, max, n);
		memmove(buf, buf + upto, have - upto);
		have -= upto;
	}
	close(fd);
	if (have && !overlong)
		scan_parse_proc_net(buf, have, family, out, max, n);
	return 0;
}

int scan_listeners_proc(struct scan_listener *out, size_t max, size_t *n)
{
	size_t cap = raw_cap(max), ntmp = 0;
	int r;

	if (!n || (max && !out))
		return -EINVAL;
	struct scan_listener *tmp = malloc(cap * sizeof *tmp);
	char *buf = malloc(PROC_BUF_SIZE);
	if (!tmp || !buf) {
		free(tmp);
		free(buf);
		return -ENOMEM;
	}
	r = read_proc_net("/proc/net/tcp", AF_INET, buf, tmp, cap, &ntmp);
	if (r == 0) {
		r = read_proc_net("/proc/net/tcp6", AF_INET6, buf, tmp, cap, &ntmp);
		if (r == -ENOENT) /* IPv6 disabled */
			r = 0;
	}
	if (r == 0)
		finish(tmp, ntmp, out, max, n);
	free(tmp);
	free(buf);
	return r;
}

int scan_listeners(struct scan_listener *out, size_t max, size_t *n)
{
	int r = scan_listeners_netlink(out, max, n);
	if (r == 0)
		return 0;
	return scan_listeners_proc(out, max, n);
}
