/* supervisor.h - keeps a child program (ssh, kubectl port-forward) alive:
 * one supervisor per bridge, an object on its caller's event loop.
 *
 * States (SPEC §4): starting -> connected <-> degraded -> reconnecting ->
 * connected | failed, and stopped after sup_stop.  Every transition is an
 * audit event, rewrites NAME.state and is reported to on_state.
 * sup_reconnect reconnects now; sup_check runs the health check now.  The
 * supervisor holds NAME.pid's lock from sup_start to sup_free, so a second
 * supervisor of the same bridge cannot start; it checks every second that
 * NAME.pid is still the file it holds (a deleted state directory) and
 * takes the lock again, or stops when another supervisor already has it.
 * A state file it cannot write (a read-only or full state directory) is
 * retried every second and said in NAME.pid (state_lock_note), which
 * `status` shows; at start it is a failure.
 *
 * The loop is the caller's: several supervisors (and anything else: a
 * relay, a Yamux session) can share one.  Signals are per process, so they
 * are the caller's too: sup_run is the small wrapper for a process that
 * runs one supervisor (`__supervise`, `__k8s-forward`): it makes the loop,
 * turns SIGTERM/SIGINT into sup_stop, SIGHUP into sup_reconnect and
 * SIGUSR1 into sup_check, and returns the exit code.  Each child (the
 * forward, a health check, a driver's own) is reaped by its own watch
 * (loop_child_watch): nothing here reaps every child, so other children of
 * the process are left alone.
 *
 * What differs between worlds is a driver: how to build the child's argv
 * for the next run, how to read its output lines (readiness, reasons for
 * failure), and, optionally, a TCP probe through the new forward before it
 * counts as connected, and a way to retry at once with different
 * arguments (a local port that was taken). */
#ifndef DEVBRIDGE_CORE_SUPERVISOR_H
#define DEVBRIDGE_CORE_SUPERVISOR_H

#include "core/errcode.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct cfg_health;
struct loop;
struct sup;

enum sup_state {
	SUP_STOPPED = 0,
	SUP_STARTING,
	SUP_CONNECTED,
	SUP_DEGRADED,
	SUP_RECONNECTING,
	SUP_FAILED,
};

/* "stopped", "starting", ... as in the state file. */
const char *sup_state_name(enum sup_state st);

/* Lines written once to ready_fd (then closed) so the starting command
 * learns the first outcome: "connected 0 -", "retrying CODE REASON_TEXT",
 * "failed CODE REASON_TEXT", "busy PID -". */
#define SUP_READY_CONNECTED "connected"
#define SUP_READY_RETRYING  "retrying"
#define SUP_READY_FAILED    "failed"
#define SUP_READY_BUSY	    "busy"

enum sup_line {
	SUP_LINE_NOISE = 0, /* chatter */
	SUP_LINE_READY,	    /* the forward is established */
	SUP_LINE_REASON,    /* explains a failure: *reason set */
	SUP_LINE_MESSAGE,   /* worth keeping as detail */
};

struct sup_driver {
	const char *kind;    /* the state file's "kind": "ssh", "k8s" */
	const char *program; /* "ssh", "kubectl": messages, "<program>_pid" */
	bool read_stdout;    /* the child's stdout carries lines too */
	/* Reasons: 0 is "none"; these name the two the supervisor itself
	 * needs. */
	int reason_not_found; /* the program could not be run */
	int reason_other;     /* the run ended and no line said why */
	int exit_not_found;   /* exit code when the program is missing */
	/* The run was killed by the stall watch (sup_opts.stall_ms). */
	int reason_stalled;
	/* Exit code when max_attempts ran out; 0 = the last reason's. */
	enum errcode exit_gave_up;

	/* argv for the next run, NULL-terminated; freed with free_argv.
	 * -EAGAIN (after sup_hold): nothing to run yet, see sup_hold. */
	int (*build_argv)(struct sup *s, char ***ret);
	void (*free_argv)(char **argv);
	/* One line (no newline) from stderr, or stdout when is_stdout. */
	enum sup_line (*classify)(struct sup *s, const char *line, size_t len, bool is_stdout,
				  int *reason);
	const char *(*reason_name)(int reason); /* "remote_forward_failed" */
	const char *(*reason_text)(int reason); /* a sentence for people */
	/* The exit code (and --json name) when it fails for good. */
	enum errcode (*reason_exit)(int reason);

	/* Optional.  The run ended for `reason`: return true to start the
	 * next run at once without counting a failed attempt (the driver has
	 * changed what build_argv will produce). */
	bool (*retry_now)(struct sup *s, int reason);
	/* Optional.  After a READY line: a TCP port on 127.0.0.1 to probe
	 * through the forward before it counts as connected (0 = none). */
	int (*probe_port)(struct sup *s);
	/* Optional.  "local" and "remote" for the state file and status. */
	void (*describe)(struct sup *s, char *local, size_t ln, char *remote, size_t rn);
	/* Optional.  Extra members for the state file. */
	void (*state_extra)(struct sup *s, json_t *o);
	/* Optional.  Called after every move to connected. */
	void (*connected)(struct sup *s);
	/* Optional.  Called once after the driver's start (sup_start): when
	 * the supervisor stops or fails for good, its child gone, before
	 * on_finished; or from sup_free when it never finished.  The driver
	 * releases here what it added to the loop (fds, timers, children). */
	void (*finished)(struct sup *s);

	/* Optional, for drivers with fds, timers or children of their own
	 * (see "Drivers that watch" below): once the loop exists, before the
	 * first run; a negative errno is logged and ignored.  A driver's own
	 * child gets its own watch (loop_child_watch on sup_loop): nothing
	 * reaps every child. */
	int (*start)(struct sup *s);
};

struct sup_opts {
	const char *name;
	const char *state_dir;
	const char *actor, *actor_class;
	void *ctx;			 /* the driver's, see sup_ctx */
	const struct cfg_health *health; /* NULL = none */
	int max_attempts;		 /* 0 = forever */
	/* Until the first connection, when not 0: a bridge that never came
	 * up fails sooner than one that worked and dropped. */
	int first_max_attempts;
	/* The ready pipe reports only connected or failed, not the first
	 * retry (the caller waits through the retries). */
	bool ready_waits_retries;
	double backoff_initial, backoff_max, stable_s;
	int ready_fd; /* -1 = none */
	/* With a probe_port: once connected, probe through the forward every
	 * this many seconds (0 = never).  A failed probe is a failed health
	 * check (degraded) and restarts the child, so a forward whose far end
	 * went away (a pod replaced) is renewed before a client finds out. */
	unsigned probe_interval_s;
	/* Stall watch (0 = off): the child's process is sampled every second
	 * (core/proc.h).  Stopped (SIGSTOP, a tracer), a connected bridge is
	 * degraded at once and recovers when it runs again; once connected, a
	 * child that has not been scheduled at all for this many milliseconds
	 * (ssh wakes at least once per ServerAliveInterval), or one stopped
	 * that long in any state, is killed and the run counts as failed with
	 * reason_stalled.  A stopped ssh sends no keepalives and prints
	 * nothing, so nothing else would notice. */
	unsigned stall_ms;
	/* SIGTERM -> SIGKILL escalation for the child; 0 = 5000 ms. */
	unsigned kill_grace_ms;

	/* The embedder's callbacks (optional), with `data`.
	 * on_state: after every transition (its audit event and the state
	 * file written); `st` is the state now, which may be the one before
	 * (bridge_disconnected, bridge_waiting, a further
	 * bridge_reconnecting).
	 * on_finished: once, from the loop, after the supervisor stopped
	 * (sup_stop, or another supervisor took its pid file) or failed for
	 * good, every child gone; `code` is the exit code the command reports
	 * (0 after a stop, the reason's code after a failure).
	 * Either may call sup_free: the supervisor is marked and freed when
	 * the callback returns. */
	void (*on_state)(struct sup *s, enum sup_state st, void *data);
	void (*on_finished)(struct sup *s, int code, void *data);
	void *data;
};

/* A supervisor of `o` (copied; the strings and `health` it points to must
 * outlive the supervisor) with driver `drv` (static) on `loop` (the
 * caller's, which must outlive it).  Nothing starts yet: no lock, no
 * child.  0 and *ret, or -ENOMEM, -EINVAL (no name, state_dir or
 * driver).  The supervisor owns o->ready_fd from here. */
int sup_new(struct loop *loop, const struct sup_opts *o, const struct sup_driver *drv,
	    struct sup **ret);

/* Take NAME.pid's lock, record bridge_started (state starting) and run the
 * first attempt.  0: on_finished will follow, once.  -EBUSY: another
 * supervisor holds the lock (the ready pipe said "busy PID").  Another
 * negative errno: the lock or the state directory failed (logged; the
 * ready pipe said "failed").  -EALREADY when started before.  on_state may
 * run before it returns (starting; failed when the program is missing). */
int sup_start(struct sup *s);

/* Stop: SIGTERM to the child, SIGKILL after kill_grace_ms, then state
 * stopped (bridge_stopped) and on_finished.  sup_stop, sup_reconnect and
 * sup_check never call back: they take effect from the loop once the
 * running callback has returned (callable from any callback).  Nothing
 * once stopping or finished, or before sup_start. */
void sup_stop(struct sup *s);
/* Reconnect now, uncounted (SIGHUP): a running child is stopped and the
 * next run starts at once; a supervisor waiting for a retry (or held by
 * its driver) runs now. */
void sup_reconnect(struct sup *s);
/* Run the health check now (SIGUSR1) when connected or degraded; without
 * one, the periodic probe through the forward. */
void sup_check(struct sup *s);

/* Free; NULL is a no-op.  From inside a callback of this supervisor (or
 * one of its driver's), it is marked and freed when that returns.  A
 * supervisor that has not finished ends at once: its children are killed
 * and reaped, the driver's finished runs, no callback and no state change
 * follow (the state file keeps the last state: sup_stop first for a clean
 * end).  Releases NAME.pid's lock; the file stays. */
void sup_free(struct sup *s);

enum sup_state sup_get_state(const struct sup *s);

/* The wrapper for a process that runs one supervisor (see the top): a
 * loop, signals, sup_new + sup_start, the loop until on_finished.
 * Returns the process exit code: 0 after a clean stop (or when another
 * supervisor already runs: the ready pipe said busy), the reason's code
 * when the bridge failed for good, 1 on an internal error. */
int sup_run(const struct sup_opts *o, const struct sup_driver *drv);

/* For drivers, from their callbacks. */
void *sup_ctx(struct sup *s);
const char *sup_name(struct sup *s);
/* Audit event without a state change (e.g. "port_shifted"). */
void sup_event(struct sup *s, const char *ev, const char *detail);

/* --- Drivers that watch something of their own ---
 *
 * A driver may follow the world outside its child (the k8s driver follows
 * a Service's endpoints) and decide when a run is pointless or stale.
 * These are the only entry points for that; all run on the supervisor's
 * loop, from the driver's own callbacks. */

/* The supervisor's loop, for the driver's own fds, timers and child
 * watches (they must be gone by the time `finished` returns).  Also the
 * embedder's. */
struct loop *sup_loop(struct sup *s);

/* From build_argv, before it returns -EAGAIN: there is nothing worth
 * running now, for `reason` (the driver's, shown as the state's reason)
 * and `detail`.  The supervisor starts no child, counts no attempt and
 * sets no retry timer: it waits (state starting, or reconnecting once it
 * has run; audit event bridge_waiting when reason or detail change) until
 * the driver calls sup_renew. */
void sup_hold(struct sup *s, int reason, const char *detail);

/* The next run should start now, uncounted: the current child (if any)
 * is stopped and its exit recorded with `reason` and `why` (not what the
 * child said), then a new run starts at once; a supervisor that waits
 * (held, or for a retry) runs now.  Nothing while stopping. */
void sup_renew(struct sup *s, int reason, const char *why);

/* Whether a child runs now (a run is in progress). */
bool sup_running(struct sup *s);

#endif
