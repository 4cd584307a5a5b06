/* health.h - a bridge's health check: HTTP GET (libcurl) or TCP connect.
 *
 * Checks block for at most timeout_s, so a supervisor runs them in a forked
 * child (spawn_fork) and its own loop never stalls; the CLI's `check` runs
 * them directly.  Keeping libcurl out of the supervisor's address space
 * also keeps an idle supervisor small. */
#ifndef DEVBRIDGE_CORE_HEALTH_H
#define DEVBRIDGE_CORE_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

struct cfg_health;

/* Run the check once.  Returns true when healthy; `detail` always gets a
 * one-line description ("HTTP 200", "connect 127.0.0.1:8000: Connection
 * refused"). */
bool health_run(const struct cfg_health *h, char *detail, size_t n);

#endif
