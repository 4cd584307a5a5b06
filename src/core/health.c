/* health.c - see health.h. */
#include "core/health.h"

#include "core/curl_dl.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static size_t discard(char *p, size_t size, size_t n, void *data)
{
	return size * n;
}

static bool check_http(const struct cfg_health *h, char *detail, size_t n)
{
	const struct curl_api *cu = curl_dl();
	if (!cu) {
		snprintf(detail, n, "libcurl (libcurl.so.4) is not available: install libcurl4");
		return false;
	}
	CURL *c = cu->easy_init();
	if (!c) {
		snprintf(detail, n, "libcurl initialisation failed");
		return false;
	}
	char errbuf[CURL_ERROR_SIZE] = "";
	cu->easy_setopt(c, CURLOPT_URL, h->url);
	cu->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	cu->easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)h->timeout_s * 1000L);
	cu->easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)h->timeout_s * 1000L);
	cu->easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	cu->easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	cu->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	cu->easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	cu->easy_setopt(c, CURLOPT_USERAGENT, "devbridge-health/1");
	/* Never through a proxy: the check is about this machine's port. */
	cu->easy_setopt(c, CURLOPT_NOPROXY, "*");
	CURLcode rc = cu->easy_perform(c);
	long status = 0;
	cu->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	cu->easy_cleanup(c);
	if (rc != CURLE_OK) {
		snprintf(detail, n, "GET %s: %s", h->url,
			 errbuf[0] ? errbuf : cu->easy_strerror(rc));
		return false;
	}
	snprintf(detail, n, "GET %s: HTTP %ld", h->url, status);
	return status >= 200 && status < 400;
}

static bool check_tcp(const struct cfg_health *h, char *detail, size_t n)
{
	char port[16];
	snprintf(port, sizeof port, "%d", h->tcp_port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	const char *host = h->tcp_host ? h->tcp_host : "127.0.0.1";
	int gr = getaddrinfo(host, port, &hints, &res);
	if (gr != 0) {
		snprintf(detail, n, "resolve %s: %s", host, gai_strerror(gr));
		return false;
	}
	int err = ECONNREFUSED;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			err = 0;
		} else if (errno == EINPROGRESS) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			int pr = poll(&p, 1, h->timeout_s * 1000);
			if (pr == 0) {
				err = ETIMEDOUT;
			} else {
				socklen_t sl = sizeof err;
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
					err = errno;
			}
		} else {
			err = errno;
		}
		close(fd);
		if (err == 0)
			break;
	}
	freeaddrinfo(res);
	if (err) {
		snprintf(detail, n, "connect %s:%d: %s", host, h->tcp_port, strerror(err));
		return false;
	}
	snprintf(detail, n, "connect %s:%d: ok", host, h->tcp_port);
	return true;
}

bool health_run(const struct cfg_health *h, char *detail, size_t n)
{
	switch (h->kind) {
	case HEALTH_HTTP:
		return check_http(h, detail, n);
	case HEALTH_TCP:
		return check_tcp(h, detail, n);
	case HEALTH_NONE:
		break;
	}
	snprintf(detail, n, "no health check configured");
	return true;
}
