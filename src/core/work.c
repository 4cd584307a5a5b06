/* work.c - see work.h.
 *
 * One thread per job (jobs are rare: a name lookup per reconnect, a socket
 * scan every few seconds), reporting through a pipe that the loop watches.
 * The mutex settles the one race there is: the thread finishing while the
 * owner abandons the job.  Whoever comes second frees it. */
#include "core/work.h"
#include "core/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct work {
	struct loop *loop;
	work_fn fn;
	work_done_cb done;
	work_release_fn release;
	void *arg;
	pthread_t tid;
	int rfd, wfd;
	pthread_mutex_t mu;
	bool finished, abandoned;
};

static void work_destroy(struct work *w)
{
	if (w->rfd >= 0)
		close(w->rfd);
	if (w->wfd >= 0)
		close(w->wfd);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

static void *thread_main(void *data)
{
	struct work *w = data;
	w->fn(w->arg);
	pthread_mutex_lock(&w->mu);
	w->finished = true;
	bool abandoned = w->abandoned;
	pthread_mutex_unlock(&w->mu);
	if (abandoned) {
		if (w->release)
			w->release(w->arg);
		work_destroy(w); /* detached: nobody joins us */
		return NULL;
	}
	char x = 1;
	ssize_t r;
	do
		r = write(w->wfd, &x, 1);
	while (r < 0 && errno == EINTR);
	return NULL;
}

static void on_ready(struct loop *l, int fd, unsigned events, void *data)
{
	struct work *w = data;
	loop_del_fd(l, fd);
	pthread_join(w->tid, NULL); /* it has written its byte: it is returning */
	work_done_cb done = w->done;
	void *arg = w->arg;
	work_destroy(w);
	done(l, arg);
}

int work_start(struct loop *loop, work_fn fn, work_done_cb done, void *arg, struct work **ret)
{
	struct work *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->loop = loop;
	w->fn = fn;
	w->done = done;
	w->arg = arg;
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		int e = -errno;
		free(w);
		return e;
	}
	w->rfd = p[0];
	w->wfd = p[1];
	pthread_mutex_init(&w->mu, NULL);
	int r = loop_add_fd(loop, w->rfd, LOOP_READ, on_ready, w);
	if (r < 0) {
		work_destroy(w);
		return r;
	}
	r = -pthread_create(&w->tid, NULL, thread_main, w);
	if (r < 0) {
		loop_del_fd(loop, w->rfd);
		work_destroy(w);
		return r;
	}
	*ret = w;
	return 0;
}

void work_abandon(struct work *w, work_release_fn release)
{
	if (!w)
		return;
	loop_del_fd(w->loop, w->rfd);
	pthread_mutex_lock(&w->mu);
	bool finished = w->finished;
	if (!finished) {
		w->abandoned = true;
		w->release = release;
		pthread_detach(w->tid); /* before unlocking: then it may free w */
	}
	pthread_mutex_unlock(&w->mu);
	if (finished) {
		/* fn is through; the thread is at most writing its byte. */
		pthread_join(w->tid, NULL);
		if (release)
			release(w->arg);
		work_destroy(w);
	}
}
