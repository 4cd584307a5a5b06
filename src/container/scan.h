/* scan.h - which TCP ports are listening in this (network namespace of a)
 * container, and which process owns each.
 *
 * Two sources: the text of /proc/net/tcp and /proc/net/tcp6 (portable
 * across kernels, world-readable: the seed's way), parsed by a pure
 * function that is fuzzed; and NETLINK_SOCK_DIAG (Linux, asks the kernel
 * for LISTEN sockets only: cheap enough to poll every 50 ms).  Both give
 * the socket inode; scan_owner maps an inode to a pid and process name
 * through /proc/PID/fd. */
#ifndef DEVBRIDGE_CONTAINER_SCAN_H
#define DEVBRIDGE_CONTAINER_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SCAN_MAX_LISTENERS 1024

struct scan_listener {
	uint16_t port;
	uint8_t family;	  /* AF_INET or AF_INET6 */
	uint8_t loopback; /* bound to 127.0.0.0/8 or ::1 only */
	unsigned long inode;
};

/* Parse the text of /proc/net/tcp (family AF_INET) or /proc/net/tcp6
 * (AF_INET6).  Appends LISTEN sockets (state 0A) to out (at most `max`
 * entries in total, *n is the running count).  Malformed lines are skipped.
 * Pure: no allocation, no I/O.  Returns the number of lines skipped. */
int scan_parse_proc_net(const char *buf, size_t len, int family, struct scan_listener *out,
			size_t max, size_t *n);

/* Sort by port and drop duplicates (the same port on v4 and v6). */
void scan_dedupe(struct scan_listener *v, size_t *n);

/* Read the listeners of the current network namespace (netlink first,
 * /proc/net as a fallback).  Returns 0 or -errno; results deduped. */
int scan_listeners(struct scan_listener *out, size_t max, size_t *n);

/* Find the process owning socket `inode`: pid and comm (the name in
 * /proc/PID/comm).  -ENOENT if not found (e.g. another user's process). */
int scan_owner(unsigned long inode, pid_t *ret_pid, char *comm, size_t commlen);

/* The two sources of scan_listeners, callable on their own (tests, and the
 * benchmark that compares their cost).  Same contract as scan_listeners;
 * scan_listeners_netlink fails (-errno) instead of falling back. */
int scan_listeners_netlink(struct scan_listener *out, size_t max, size_t *n);
int scan_listeners_proc(struct scan_listener *out, size_t max, size_t *n);

/* Is `addr` (4 bytes for AF_INET, 16 for AF_INET6, network order) a
 * loopback address: 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104? */
bool scan_addr_is_loopback(int family, const uint8_t *addr);

#endif
