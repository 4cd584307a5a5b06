/* health.h - a bridge's health check: HTTP GET (libcurl) or TCP connect.
 *
 * Checks block for at most timeout_s, so a supervisor runs them in a forked
 * child (spawn_fork) and its own loop never stalls; the CLI's `check` runs
 * them directly.  Keeping libcurl out of the supervisor's address space
 * also keeps an idle supervisor small. */
#ifndef DEVBRIDGE_CORE_HEALTH_H
#define DEVBRIDGE_CORE_HEALTH_H

#include "core/diag.h"

#include <stdbool.h>
#include <stddef.h>

enum health_kind {
	HEALTH_NONE = 0,
	HEALTH_HTTP, /* GET url, 2xx/3xx = ok */
	HEALTH_TCP,  /* connect(tcp_host:tcp_port) */
};

/* A check as the config gives it (a tunnel's health_check:, read by
 * ssh/ssh_config.c). */
struct cfg_health {
	enum health_kind kind;
	struct cfg_mark mark; /* of the url or tcp value */
	char *url;	      /* HEALTH_HTTP */
	char *tcp_host;	      /* HEALTH_TCP; default 127.0.0.1 */
	int tcp_port;	      /* HEALTH_TCP */
	int interval_s;	      /* default 30 */
	int timeout_s;	      /* default 5 */
};

/* Run the check once.  Returns true when healthy; `detail` always gets a
 * one-line description ("HTTP 200", "connect 127.0.0.1:8000: Connection
 * refused"). */
bool health_run(const struct cfg_health *h, char *detail, size_t n);

#endif
