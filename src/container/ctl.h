/* ctl.h - one dbr control-channel connection on the event loop: JSON lines
 * in (bounded, strict parse), JSON lines out (bounded queue), shared by the
 * host daemon and the container daemon.
 *
 * A peer that sends a bad line gets it rejected and the connection kept
 * (seed 002); one that sends too many, or never reads what we send, is
 * closed.  Freeing from inside a callback is safe: the connection is
 * marked and released after the callback returns.
 *
 * A send never calls back: when the peer does not read (the queue would
 * pass CTL_MAX_OUT) or the socket fails, ctl_send returns the error, reads
 * stop, and ops->closed is called from the loop after the current callback
 * has returned.  So a caller of ctl_send may go on using everything it
 * holds (docs/architecture.md, "Lifetimes"). */
#ifndef DEVBRIDGE_CONTAINER_CTL_H
#define DEVBRIDGE_CONTAINER_CTL_H

#include <stddef.h>

struct loop;
struct dbr_msg;
struct ctl_conn;

#define CTL_MAX_OUT	  (1024 * 1024) /* queued output before the peer is dropped */
#define CTL_MAX_BAD_LINES 16

struct ctl_ops {
	/* A valid message. */
	void (*msg)(struct ctl_conn *c, const struct dbr_msg *m, void *data);
	/* A rejected line (too long, not JSON, unknown type/field...): the
	 * line itself (NULL when too long) and why. */
	void (*bad)(struct ctl_conn *c, const char *line, size_t len, const char *why, void *data);
	/* The connection ended (EOF, error, too many bad lines, output
	 * overflow: err ENOBUFS).  Never called from inside ctl_send.  The
	 * owner frees it (ctl_conn_free) here or later. */
	void (*closed)(struct ctl_conn *c, int err, void *data);
};

int ctl_conn_new(struct loop *loop, int fd, const struct ctl_ops *ops, void *data,
		 struct ctl_conn **ret);
/* Queue a message; 0, or -ENOBUFS when the peer is not reading, another
 * negative errno when the socket failed.  On failure ops->closed follows
 * from the loop, never from inside this call; later sends fail with
 * -EPIPE. */
int ctl_send(struct ctl_conn *c, const struct dbr_msg *m);
/* Close the fd and free; NULL is a no-op; safe inside callbacks. */
void ctl_conn_free(struct ctl_conn *c);
int ctl_conn_fd(const struct ctl_conn *c);
void *ctl_conn_data(const struct ctl_conn *c);
void ctl_conn_set_data(struct ctl_conn *c, void *data);

#endif
