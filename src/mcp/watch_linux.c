/* watch_linux.c - watch.h on inotify. */
#include "mcp/watch.h"
#include "core/loop.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>

struct mcp_watch {
	struct loop *loop;
	int fd;
	mcp_watch_cb cb;
	void *data;
};

static void on_events(struct loop *l, int fd, unsigned events, void *data)
{
	struct mcp_watch *w = data;
	/* Aligned for struct inotify_event; room for several at once. */
	char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n <= 0)
			return; /* EAGAIN: drained (the fd is non-blocking) */
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW)
				w->cb(w->data, NULL);
			else if (ev->len > 0)
				w->cb(w->data, ev->name);
			p += sizeof *ev + ev->len;
		}
	}
}

int mcp_watch_start(struct loop *loop, const char *dir, mcp_watch_cb cb, void *data,
		    struct mcp_watch **ret)
{
	struct mcp_watch *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->loop = loop;
	w->cb = cb;
	w->data = data;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		int e = -errno;
		free(w);
		return e;
	}
	/* NAME.state arrives by rename (IN_MOVED_TO); NAME.log is appended
	 * to (IN_MODIFY) and rotated; files go when a bridge is cleared. */
	int r = 0;
	if (inotify_add_watch(w->fd, dir,
			      IN_MOVED_TO | IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM) < 0)
		r = -errno;
	if (r == 0)
		r = loop_add_fd(loop, w->fd, LOOP_READ, on_events, w);
	if (r < 0) {
		close(w->fd);
		free(w);
		return r;
	}
	*ret = w;
	return 0;
}

void mcp_watch_free(struct mcp_watch *w)
{
	if (!w)
		return;
	loop_del_fd(w->loop, w->fd);
	close(w->fd);
	free(w);
}
