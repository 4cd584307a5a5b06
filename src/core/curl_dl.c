/* curl_dl.c - see curl_dl.h. */
#include "core/curl_dl.h"

#include <dlfcn.h>

const struct curl_api *curl_dl(void)
{
	static struct curl_api api;
	static int state; /* 0 untried, 1 loaded, -1 unavailable */
	if (state)
		return state > 0 ? &api : NULL;
	state = -1;
	void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return NULL;
	*(void **)&api.easy_init = dlsym(h, "curl_easy_init");
	*(void **)&api.easy_setopt = dlsym(h, "curl_easy_setopt");
	*(void **)&api.easy_perform = dlsym(h, "curl_easy_perform");
	*(void **)&api.easy_getinfo = dlsym(h, "curl_easy_getinfo");
	*(void **)&api.easy_cleanup = dlsym(h, "curl_easy_cleanup");
	*(void **)&api.easy_strerror = dlsym(h, "curl_easy_strerror");
	*(void **)&api.slist_append = dlsym(h, "curl_slist_append");
	*(void **)&api.slist_free_all = dlsym(h, "curl_slist_free_all");
	if (!api.easy_init || !api.easy_setopt || !api.easy_perform || !api.easy_getinfo ||
	    !api.easy_cleanup || !api.easy_strerror || !api.slist_append || !api.slist_free_all)
		return NULL;
	state = 1;
	return &api;
}
