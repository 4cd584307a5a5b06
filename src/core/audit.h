/* audit.h - the per-bridge audit log: STATE_DIR/NAME.log, one JSON object
 * per line with exactly ts, tunnel, event, actor, actor_class, detail
 * (ops-bridge's format; ts in UTC with a Z). */
#ifndef DEVBRIDGE_CORE_AUDIT_H
#define DEVBRIDGE_CORE_AUDIT_H

#include <jansson.h>
#include <stddef.h>

#define AUDIT_MAX_LINE 4096 /* detail is cut to fit */

/* Append one event.  One write() on an O_APPEND fd, so concurrent writers
 * (a supervisor and `down`) never interleave within a line. */
int audit_append(const char *dir, const char *tunnel, const char *event, const char *actor,
		 const char *actor_class, const char *detail);

/* The last `n` events (n <= 0: all) as a JSON array of objects.  Lines that
 * do not parse are skipped, never fatal.  -ENOENT when there is no log. */
int audit_tail(const char *dir, const char *tunnel, long n, json_t **ret);

/* Parse one audit line into an object with the six fields (missing string
 * fields become ""); -EINVAL if it is not such a line. */
int audit_parse_line(const char *line, size_t len, json_t **ret);

#endif
