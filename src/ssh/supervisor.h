/* supervisor.h - one process per SSH tunnel, keeping `ssh -N` alive: the
 * SSH driver of the generic supervisor (core/supervisor.h), which holds
 * the state machine, the lock, backoff and health checks. */
#ifndef DEVBRIDGE_SSH_SUPERVISOR_H
#define DEVBRIDGE_SSH_SUPERVISOR_H

struct cfg_actor;
struct cfg_tunnel;

#include "core/supervisor.h" /* SUP_READY_* */

/* Supervise `t`, run for `actor` (NULL: class automation), until stopped
 * or failed.  `ready_fd` may be -1.  Returns the process exit code: 0
 * after a clean stop, 41 when it gave up after max_attempts (40 when ssh
 * is missing), 1 on an internal error or an unwritable state directory. */
int ssh_supervise(const struct cfg_actor *actor, const struct cfg_tunnel *t, const char *state_dir,
		  int ready_fd);

#endif
