/* state.h - the runtime state directory (SPEC §4).
 *
 * Per bridge: NAME.pid held under a POSIX record lock by its live
 * supervisor, NAME.state (JSON, replaced atomically), NAME.log (audit).
 * Liveness is the lock, never kill(pid, 0): the kernel drops the lock when
 * the supervisor dies however it dies, and F_GETLK names the holder's pid,
 * so a reused pid in a stale file can never pass for a live supervisor.
 * Directory 0700, files 0600. */
#ifndef DEVBRIDGE_CORE_STATE_H
#define DEVBRIDGE_CORE_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* --state-dir, $DEVBRIDGE_STATE_DIR, $BRIDGE_STATE_DIR,
 * $XDG_STATE_HOME/devbridge, ~/.local/state/devbridge.  malloc'd. */
int state_dir_resolve(const char *opt, char **ret);

/* Create the directory (0700) if needed; an existing one that others can
 * read or write is tightened to 0700 if we own it, else -EPERM. */
int state_dir_ensure(const char *dir);

/* Names whose files in the state directory belong to devbridge's daemons
 * ("host-daemon", "container-daemon"): no bridge may take them. */
bool state_name_reserved(const char *name);

/* DIR/NAME.EXT into buf; -ENAMETOOLONG if it does not fit. */
int state_path(char *buf, size_t n, const char *dir, const char *name, const char *ext);

/* Take NAME.pid's lock and write our pid into it.  Returns the open fd
 * (keep it open for the life of the process; never open the file again in
 * this process, or closing that fd would drop the lock).  -EBUSY with the
 * holder's pid in *holder when another supervisor holds it. */
int state_lock(const char *dir, const char *name, pid_t *holder);

/* The pid of the live supervisor of NAME, or 0 when none. */
pid_t state_probe(const char *dir, const char *name);

/* Whether DIR/NAME.pid is still the file that `lock_fd` (from state_lock)
 * holds: 1 yes, 0 when it was removed or replaced (the state directory
 * deleted under a running supervisor: then nobody can see its lock, and
 * another supervisor of NAME could start), or -errno. */
int state_lock_is_current(int lock_fd, const char *dir, const char *name);

/* Rewrite the pid file held through `lock_fd` as "PID\n", plus "NOTE\n"
 * when `note` is not NULL: how a supervisor that cannot write NAME.state
 * (a read-only or full state directory) still tells `status` so, through
 * the one file it already has open.  0 or -errno. */
int state_lock_note(int lock_fd, const char *note);

/* The note of NAME's pid file into buf ("" when none).  0 or -errno. */
int state_read_note(const char *dir, const char *name, char *buf, size_t n);

/* Replace NAME.state with `obj` (atomic rename, 0600). */
int state_write(const char *dir, const char *name, json_t *obj);

/* Parse NAME.state; -ENOENT when absent, -EINVAL when not a JSON object. */
int state_read(const char *dir, const char *name, json_t **ret);

/* Parse a state document from memory (the fuzzed parser behind state_read). */
int state_parse(const char *buf, size_t len, json_t **ret);

#endif
