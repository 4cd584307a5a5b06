/* curl_dl.h - libcurl, loaded on first use instead of linked.
 *
 * A supervisor runs for days and its HTTP checks run in a forked child, so
 * the long-lived process never maps libcurl and the ~30 libraries behind
 * it (TLS, Kerberos, LDAP), which would multiply its resident size; the
 * intercept agent calls the Kubernetes API only when it restores.  Calls
 * go through these pointers (no type-checking macros). */
#ifndef DEVBRIDGE_CORE_CURL_DL_H
#define DEVBRIDGE_CORE_CURL_DL_H

#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

struct curl_api {
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
};

/* libcurl.so.4's functions, or NULL when it cannot be loaded (the first
 * call tries; the answer is kept).  Not thread-safe on the first call. */
const struct curl_api *curl_dl(void);

#endif
