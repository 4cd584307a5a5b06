/* watch.h - hear of files changing in one directory, on the loop: the
 * state directory, where NAME.state is replaced by rename and NAME.log
 * appended to.  No polling.  The Linux backend is inotify
 * (watch_linux.c); another would be kqueue behind the same interface. */
#ifndef DEVBRIDGE_MCP_WATCH_H
#define DEVBRIDGE_MCP_WATCH_H

struct loop;
struct mcp_watch;

/* cb(data, name) for each file of `dir` created, replaced, written to or
 * removed (name: the file's name within dir); NULL name when events were
 * lost (the kernel's queue overflowed): assume everything changed. */
typedef void (*mcp_watch_cb)(void *data, const char *name);

/* 0 with *ret set, or a negative errno. */
int mcp_watch_start(struct loop *loop, const char *dir, mcp_watch_cb cb, void *data,
		    struct mcp_watch **ret);
/* Stop watching; NULL is a no-op. */
void mcp_watch_free(struct mcp_watch *w);

#endif
