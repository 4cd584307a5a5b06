/* browser.c - see browser.h. */
#include "container/browser.h"
#include "core/spawn.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int browser_validate(const char *url, char *err, size_t errlen)
{
	size_t n = strlen(url);
	if (n == 0 || n > BROWSER_URL_MAX) {
		snprintf(err, errlen, "URL must be 1-%d characters (got %zu)", BROWSER_URL_MAX, n);
		return -EINVAL;
	}
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
		snprintf(err, errlen, "only http:// and https:// URLs can be opened");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= ' ' || c == 0x7f) {
			snprintf(err, errlen, "URL contains a space or control character");
			return -EINVAL;
		}
	}
	const char *host = strstr(url, "://") + 3;
	if (*host == '\0' || *host == '/' || *host == '-') {
		snprintf(err, errlen, "URL has no host");
		return -EINVAL;
	}
	return 0;
}

int browser_rewrite(const char *url, uint16_t (*map)(void *data, uint16_t port), void *data,
		    char *out, size_t n)
{
	static const char *const hosts[] = {"localhost:", "127.0.0.1:"};
	const char *p = strstr(url, "://");
	size_t len = strlen(url);
	if (len + 8 > n)
		return -ENAMETOOLONG;
	memcpy(out, url, len + 1);
	if (!p)
		return 0;
	p += 3;
	for (size_t i = 0; i < ARRAY_SIZE(hosts); i++) {
		size_t hl = strlen(hosts[i]);
		if (strncasecmp(p, hosts[i], hl) != 0)
			continue;
		const char *d = p + hl, *e = d;
		unsigned long port = 0;
		while (*e >= '0' && *e <= '9' && e - d < 6)
			port = port * 10 + (unsigned long)(*e++ - '0');
		if (e == d || port == 0 || port > 65535 || (*e && !strchr("/?#", *e)))
			return 0;
		uint16_t h = map(data, (uint16_t)port);
		if (h == 0 || h == port)
			return 0;
		int w = snprintf(out, n, "%.*s%u%s", (int)(d - url), url, h, e);
		return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 1;
	}
	return 0;
}

bool browser_rate_allow(struct browser_rate *r, uint64_t now_ms)
{
	/* The oldest of the last RATE_MAX opens must be out of the window. */
	uint64_t oldest = r->stamps[r->next];
	if (oldest != 0 && now_ms - oldest < BROWSER_RATE_MS)
		return false;
	r->stamps[r->next] = now_ms ? now_ms : 1;
	r->next = (r->next + 1) % BROWSER_RATE_MAX;
	return true;
}

int browser_open(const char *cmd, const char *url, pid_t *ret_pid)
{
	char *argv[34];
	size_t k = 0;
	char *copy = NULL;
	if (cmd && *cmd) {
		copy = strdup(cmd);
		if (!copy)
			return -ENOMEM;
		for (char *save = NULL, *tok = strtok_r(copy, " \t", &save); tok && k < 32;
		     tok = strtok_r(NULL, " \t", &save))
			argv[k++] = tok;
	} else {
#ifdef __APPLE__
		argv[k++] = "open";
#else
		argv[k++] = "xdg-open";
#endif
	}
	if (k == 0) {
		free(copy);
		return -EINVAL;
	}
	/* The URL is one argument, never parsed by a shell. */
	argv[k++] = (char *)url;
	argv[k] = NULL;
	struct spawn_opts o = {.argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
	int r = spawn_process(&o, ret_pid);
	free(copy);
	return r;
}
