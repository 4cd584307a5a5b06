/* supervisor.h - one process per SSH tunnel, keeping `ssh -N` alive.
 *
 * States (SPEC §4): starting -> connected <-> degraded -> reconnecting ->
 * connected | failed, and stopped on SIGTERM/SIGINT.  Every transition is
 * an audit event and rewrites NAME.state.  SIGHUP reconnects now; SIGUSR1
 * runs the health check now.  The supervisor holds NAME.pid's lock for its
 * whole life, so a second supervisor of the same tunnel cannot start. */
#ifndef DEVBRIDGE_SSH_SUPERVISOR_H
#define DEVBRIDGE_SSH_SUPERVISOR_H

struct cfg;
struct cfg_tunnel;

/* Lines written once to ready_fd (then closed) so `up` learns the first
 * outcome: "connected 0 -", "retrying CODE REASON_TEXT",
 * "failed CODE REASON_TEXT", "busy PID -". */
#define SUP_READY_CONNECTED "connected"
#define SUP_READY_RETRYING  "retrying"
#define SUP_READY_FAILED    "failed"
#define SUP_READY_BUSY	    "busy"

/* Supervise `t` until stopped or failed.  `ready_fd` may be -1.  Returns the
 * process exit code: 0 after a clean stop, the reason's code (41-46) when
 * the tunnel failed for good, 1 on an internal error. */
int ssh_supervise(const struct cfg *cfg, const struct cfg_tunnel *t, const char *state_dir,
		  int ready_fd);

#endif
