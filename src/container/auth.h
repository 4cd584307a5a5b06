/* auth.h - the devcontainer bridge's shared token (seed 002): 32 random
 * bytes as 64 lowercase hex characters, kept in
 * ~/.config/devbridge/auth-token with mode 0600.
 *
 * Resolution (container side and clients): --auth-token, then
 * $DEVBRIDGE_AUTH_TOKEN ($DCBRIDGE_AUTH_TOKEN), then --auth-token-file,
 * then the default file.  The token is a secret: never logged. */
#ifndef DEVBRIDGE_CONTAINER_AUTH_H
#define DEVBRIDGE_CONTAINER_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_TOKEN_LEN 64

/* ~/.config/devbridge/auth-token (malloc'd), or NULL without HOME. */
char *auth_default_path(void);

/* Resolve the token for a client; `flag` and `file` may be NULL.
 * Returns 0 with the token in buf, -ENOENT when none is configured,
 * -EINVAL when the file is malformed, -EPERM when the file is readable by
 * others. */
int auth_resolve(const char *flag, const char *file, char *buf, size_t n);

/* Host side: read the token from `path` (default path if NULL), or create
 * it (0600, directory 0700) when absent. */
int auth_load_or_create(const char *path, char *buf, size_t n);

/* Host side, in the same order as auth_resolve, so that one environment
 * serves both sides: `flag`, $DEVBRIDGE_AUTH_TOKEN, $DCBRIDGE_AUTH_TOKEN,
 * `file`, then the default file (a file is created when absent).  *ret_source says
 * where it came from, for the log (never the token itself). */
int auth_resolve_host(const char *flag, const char *file, char *buf, size_t n,
		      const char **ret_source);

/* Constant-time: does `given` equal `expected`? */
bool auth_check(const char *expected, const char *given);

#endif
