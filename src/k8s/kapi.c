/* kapi.c - see kapi.h. */
#include "k8s/kapi.h"

#include "core/curl_dl.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESPONSE ((size_t)4 * 1024 * 1024)
#define MAX_TOKEN    (64 * 1024)

static int read_small(const char *path, char **ret)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	char *b = malloc(MAX_TOKEN + 1);
	size_t n = b ? fread(b, 1, MAX_TOKEN + 1, f) : 0;
	int err = b ? (ferror(f) ? -EIO : 0) : -ENOMEM;
	fclose(f);
	if (err == 0 && n > MAX_TOKEN)
		err = -EFBIG;
	if (err < 0) {
		free(b);
		return err;
	}
	b[n] = 0;
	*ret = b;
	return 0;
}

int kapi_incluster(struct kapi *k, char *why, size_t why_len)
{
	memset(k, 0, sizeof *k);
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	if (!host || !*host || !port || !*port) {
		snprintf(why, why_len, "not in a pod: KUBERNETES_SERVICE_HOST/PORT are not set");
		return -ENOENT;
	}
	if (strpbrk(host, "/?#@ ") || strspn(port, "0123456789") != strlen(port)) {
		snprintf(why, why_len, "KUBERNETES_SERVICE_HOST/PORT: not a host and port");
		return -EINVAL;
	}
	/* an IPv6 address goes in brackets */
	bool v6 = strchr(host, ':') != NULL;
	if ((size_t)snprintf(k->base, sizeof k->base, "https://%s%s%s:%s", v6 ? "[" : "", host,
			     v6 ? "]" : "", port) >= sizeof k->base) {
		snprintf(why, why_len, "KUBERNETES_SERVICE_HOST: too long");
		return -EINVAL;
	}
	const char *dir = getenv("DEVBRIDGE_SA_DIR");
	if (!dir || !*dir)
		dir = KAPI_SA_DIR;
	char tpath[512];
	snprintf(tpath, sizeof tpath, "%s/token", dir);
	snprintf(k->ca_path, sizeof k->ca_path, "%s/ca.crt", dir);
	int err = read_small(tpath, &k->token);
	if (err < 0) {
		snprintf(why, why_len, "%s: %s", tpath, strerror(-err));
		return err == -ENOENT ? -ENOENT : -EINVAL;
	}
	/* the token file may end with a newline */
	k->token[strcspn(k->token, "\r\n")] = 0;
	if (!k->token[0]) {
		snprintf(why, why_len, "%s: empty", tpath);
		kapi_free(k);
		return -EINVAL;
	}
	return 0;
}

void kapi_free(struct kapi *k)
{
	if (k->token) {
		explicit_bzero(k->token, strlen(k->token));
		free(k->token);
	}
	k->token = NULL;
}

struct resp {
	char *p;
	size_t len;
	bool over;
};

static size_t collect(char *p, size_t size, size_t n, void *data)
{
	struct resp *r = data;
	size_t add = size * n;
	if (r->over || add > MAX_RESPONSE - r->len) {
		r->over = true;
		return 0; /* stops the transfer */
	}
	char *q = realloc(r->p, r->len + add + 1);
	if (!q)
		return 0;
	memcpy(q + r->len, p, add);
	r->p = q;
	r->len += add;
	r->p[r->len] = 0;
	return add;
}

int kapi_request(const struct kapi *k, const char *method, const char *path, const char *body,
		 long timeout_ms, long *status, char **ret_body, char *why, size_t why_len)
{
	const struct curl_api *cu = curl_dl();
	*status = 0;
	*ret_body = NULL;
	if (!cu) {
		snprintf(why, why_len, "libcurl (libcurl.so.4) is not available");
		return -ENOSYS;
	}
	char url[1024], auth[MAX_TOKEN + 32];
	if ((size_t)snprintf(url, sizeof url, "%s%s", k->base, path) >= sizeof url) {
		snprintf(why, why_len, "path too long");
		return -EINVAL;
	}
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", k->token);
	CURL *c = cu->easy_init();
	struct curl_slist *h = NULL, *h2;
	if (c && (h2 = cu->slist_append(h, auth)))
		h = h2;
	if (c && h && (h2 = cu->slist_append(h, "Accept: application/json")))
		h = h2;
	if (c && h && body && (h2 = cu->slist_append(h, "Content-Type: application/json")))
		h = h2;
	explicit_bzero(auth, sizeof auth);
	if (!c || !h) {
		if (c)
			cu->easy_cleanup(c);
		cu->slist_free_all(h);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	struct resp r = {0};
	char errbuf[CURL_ERROR_SIZE] = "";
	cu->easy_setopt(c, CURLOPT_URL, url);
	cu->easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	cu->easy_setopt(c, CURLOPT_HTTPHEADER, h);
	cu->easy_setopt(c, CURLOPT_CAINFO, k->ca_path);
	cu->easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	cu->easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	cu->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	cu->easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	cu->easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	cu->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	cu->easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	cu->easy_setopt(c, CURLOPT_NOPROXY, "*");
	cu->easy_setopt(c, CURLOPT_USERAGENT, "devbridge-agent/1");
	cu->easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	cu->easy_setopt(c, CURLOPT_WRITEDATA, &r);
	cu->easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	if (body) {
		cu->easy_setopt(c, CURLOPT_POSTFIELDS, body);
		cu->easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	}
	CURLcode rc = cu->easy_perform(c);
	cu->easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	cu->easy_cleanup(c);
	cu->slist_free_all(h);
	if (rc != CURLE_OK) {
		snprintf(why, why_len, "%s %s: %s", method, path,
			 r.over	     ? "response over 4 MiB"
			 : errbuf[0] ? errbuf
				     : cu->easy_strerror(rc));
		free(r.p);
		*status = 0;
		return -EIO;
	}
	*ret_body = r.p ? r.p : strdup("");
	return *ret_body ? 0 : -ENOMEM;
}
