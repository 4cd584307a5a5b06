/* ssh_argv.h - the ssh command line devbridge runs for a tunnel, and the
 * reading of what ssh says on stderr.
 *
 * The argv is built without a shell.  The options the supervisor relies on
 * come first: ssh keeps the first value it sees for an option, so neither
 * ssh_options nor an ssh_config file can override them. */
#ifndef DEVBRIDGE_SSH_SSH_ARGV_H
#define DEVBRIDGE_SSH_SSH_ARGV_H

#include "core/errcode.h"

#include <stddef.h>

struct cfg_tunnel;

/* NULL-terminated argv for `t`; free with ssh_argv_free. */
int ssh_argv_build(const struct cfg_tunnel *t, char ***ret_argv);
void ssh_argv_free(char **argv);
/* One shell-quoted line (for --dry-run and the audit log); malloc'd. */
char *ssh_argv_format(char *const *argv);

/* Why an ssh run ended, as far as its stderr tells. */
enum ssh_reason {
	SSH_R_NONE = 0,
	SSH_R_REMOTE_FORWARD, /* remote port forwarding failed (port in use) */
	SSH_R_LOCAL_PORT,     /* local listen port in use */
	SSH_R_AUTH,	      /* Permission denied */
	SSH_R_HOST_KEY,	      /* host key unknown/changed */
	SSH_R_UNREACHABLE,    /* refused, timed out, no route, no such host */
	SSH_R_TIMEOUT,	      /* ServerAlive timeout: peer stopped answering */
	SSH_R_CLOSED,	      /* connection closed/reset by the peer */
	SSH_R_NOT_FOUND,      /* ssh itself could not be run */
	SSH_R_STALLED,	      /* stopped or never scheduled: killed by the supervisor */
	SSH_R_OTHER,
};

enum ssh_line {
	SSH_LINE_NOISE = 0, /* debug chatter */
	SSH_LINE_READY,	    /* the forward is established */
	SSH_LINE_REASON,    /* a line that explains a failure: *ret_reason set */
	SSH_LINE_MESSAGE,   /* a non-debug line worth keeping as detail */
};

/* Classify one stderr line (without its newline) of an `ssh -v` run for a
 * tunnel of direction `local` (else reverse) whose remote port is
 * `remote_port`: a reverse tunnel is ready when ssh reports success for
 * that port's forward, not for one an ssh_config file added.  Pure: no
 * allocation. */
enum ssh_line ssh_classify_line(const char *line, size_t len, int local, int remote_port,
				enum ssh_reason *ret_reason);

/* Forwards that `ssh -G` output `buf` (the resolved configuration of the
 * tunnel's own command line, see ssh_argv_build_dump) holds besides the
 * tunnel's own: RemoteForward, LocalForward and DynamicForward lines that
 * an ssh_config file added.  ssh carries them too, but the supervisor
 * neither shows nor checks them.  Calls `fn` with each line ("remoteforward
 * 19999 [127.0.0.1]:22", without newline) and returns how many there
 * were.  Pure. */
size_t ssh_dump_extra_forwards(const char *buf, size_t len, const struct cfg_tunnel *t,
			       void (*fn)(const char *line, size_t n, void *data), void *data);

/* The argv of `ssh -G` with the tunnel's command line: prints the
 * configuration ssh would use (config files applied) and exits. */
int ssh_argv_build_dump(const struct cfg_tunnel *t, char ***ret_argv);

/* Stable identifier ("remote_forward_failed") and a sentence for users. */
const char *ssh_reason_name(enum ssh_reason r);
const char *ssh_reason_text(enum ssh_reason r);
/* The CLI exit code for a tunnel that stopped for this reason (40-59). */
enum errcode ssh_reason_exit_code(enum ssh_reason r);

#endif
