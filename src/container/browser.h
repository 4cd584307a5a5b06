/* browser.h - opening URLs on the host for containers (seed 002):
 * http/https only, at most 2048 characters, no control characters or
 * spaces, rewriting of localhost:PORT / 127.0.0.1:PORT to the host port a
 * container port was forwarded to, a rate limit of 5 opens per second
 * (sliding window), and the browser run without a shell. */
#ifndef DEVBRIDGE_CONTAINER_BROWSER_H
#define DEVBRIDGE_CONTAINER_BROWSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BROWSER_URL_MAX	 2048
#define BROWSER_RATE_MAX 5    /* opens ... */
#define BROWSER_RATE_MS	 1000 /* ... per this window */

/* 0 when `url` may be opened, else -EINVAL with the reason in err. */
int browser_validate(const char *url, char *err, size_t errlen);

/* If url is http(s)://localhost:P or http(s)://127.0.0.1:P (optionally
 * followed by / ? or #) and map(P) returns a host port H != 0, write the
 * URL with P replaced by H into out and return 1; else copy url and
 * return 0.  -ENAMETOOLONG if out is too small. */
int browser_rewrite(const char *url, uint16_t (*map)(void *data, uint16_t port), void *data,
		    char *out, size_t n);

struct browser_rate {
	uint64_t stamps[BROWSER_RATE_MAX];
	size_t next;
};
/* true if an open at `now_ms` is within the limit (and records it). */
bool browser_rate_allow(struct browser_rate *r, uint64_t now_ms);

/* Run `cmd URL` (cmd split on spaces, no shell), or xdg-open/open.  The
 * child is not waited for: the caller reaps it.  0 with *ret_pid. */
int browser_open(const char *cmd, const char *url, pid_t *ret_pid);

#endif
