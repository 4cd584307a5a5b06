/* calls.c - the work queue: what needs the app layer (tools/call,
 * resources/read) runs on a worker thread (core/work.h), one job at a
 * time, because tools block (ssh, kubectl, waiting) and the app layer is
 * not known to be thread-safe.  The loop keeps answering meanwhile.
 *
 * Threads: a job's run() and the tool's progress()/cancelled() calls are
 * on the worker.  They touch the job only: its own struct app and
 * config, `cancelled` (atomic), the progress fields and `srv` (under mu),
 * and the outcome (code, doc, err), which the loop reads only after the
 * worker is through.  A progress report wakes the loop through a pipe;
 * the loop sends the latest one (reports between two wake-ups are
 * coalesced: progress only grows). */
#include "app/config.h"
#include "core/log.h"
#include "core/util.h"
#include "core/work.h"
#include "mcp/server.h"
#include "proto/jsonrpc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool call_cancelled(const struct mcp_call *c)
{
	const struct mcp_job *j = c->priv;
	return atomic_load(&j->stop);
}

/* On the worker. */
static void call_progress(struct mcp_call *c, double done, double total, const char *message)
{
	struct mcp_job *j = c->priv;
	if (!j->progress_token) /* set before the job started: read-only since */
		return;
	pthread_mutex_lock(&j->mu);
	j->done = done;
	j->total = total;
	message = message ? message : "";
	snprintf(j->message, sizeof j->message, "%.*s",
		 (int)utf8_trunc(message, sizeof j->message - 1), message);
	if (!j->progress_pending && j->srv) {
		/* Under mu: the server closes the pipe only after letting go
		 * of the job (mcp_jobs_abandon), which takes mu too. */
		ssize_t n;
		do
			n = write(j->srv->wake_w, "p", 1);
		while (n < 0 && errno == EINTR);
	}
	j->progress_pending = true;
	pthread_mutex_unlock(&j->mu);
}

struct mcp_job *mcp_job_new(struct mcp_server *s, json_t *id, json_t *params)
{
	struct mcp_job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->srv = s;
	j->id = json_copy(id);
	json_t *tok = json_object_get(json_object_get(params, "_meta"), "progressToken");
	if (json_is_string(tok) || json_is_integer(tok))
		j->progress_token = json_copy(tok);
	atomic_init(&j->cancelled, false);
	atomic_init(&j->stop, false);
	pthread_mutex_init(&j->mu, NULL);
	j->app = *s->app;
	j->app.cfg = NULL; /* the job's own, loaded when it starts */
	j->call.app = &j->app;
	j->call.progress = call_progress;
	j->call.cancelled = call_cancelled;
	j->call.priv = j;
	if (!j->id) {
		mcp_job_free(j);
		return NULL;
	}
	return j;
}

void mcp_job_free(struct mcp_job *j)
{
	if (!j)
		return;
	json_decref(j->id);
	json_decref(j->progress_token);
	json_decref(j->call.args);
	json_decref(j->doc);
	free(j->uri);
	cfg_free(j->app.cfg);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

static void release_job(void *arg)
{
	mcp_job_free(arg);
}

/* Send the job's latest progress report, if there is a new one. */
static void send_progress(struct mcp_server *s, struct mcp_job *j)
{
	pthread_mutex_lock(&j->mu);
	bool pending = j->progress_pending;
	double done = j->done, total = j->total;
	char message[MCP_PROGRESS_MSG_MAX];
	memcpy(message, j->message, sizeof message);
	j->progress_pending = false;
	pthread_mutex_unlock(&j->mu);
	if (!pending || atomic_load(&j->cancelled))
		return;
	json_t *p = json_pack("{s:O, s:f}", "progressToken", j->progress_token, "progress", done);
	if (p && total > 0)
		json_object_set_new(p, "total", json_real(total));
	if (p && message[0])
		json_object_set_new(p, "message", json_string(message));
	mcp_send(s, jsonrpc_notification("notifications/progress", p));
}

static void on_wake(struct loop *l, int fd, unsigned events, void *data)
{
	struct mcp_server *s = data;
	char buf[64];
	while (read(fd, buf, sizeof buf) > 0)
		;
	if (s->running)
		send_progress(s, s->running);
}

static void start_next(struct mcp_server *s);

/* On the worker, before the job runs: the config afresh, from the file
 * the server found at start, into the job's own struct app (the loop's
 * is never changed).  So each call sees the config and the catalog as
 * they are now (a bridge added to the catalog is there for every tool),
 * and a config that does not load is this call's EXIT_CONFIG, its
 * diagnostics in the envelope as the CLI's --json has them, not the
 * server's end.  The catalog tools load the config alone and read the
 * catalog themselves.  0, or the job's outcome set. */
static int load_config(struct mcp_job *j)
{
	struct cfg_diags d = {0};
	unsigned flags =
	    j->tool && (j->tool->flags & MCP_TOOL_NO_CATALOG) ? CFG_LOAD_NO_CATALOG : 0;
	int r = app_load_config(j->app.config_path, flags, &j->app.cfg, &d, &j->err);

	if (r && d.n)
		j->doc = json_pack("{s:{s:o*}}", "error", "diagnostics", cfg_diags_json(&d));
	cfg_diags_clear(&d);
	j->code = r;
	return r;
}

static void job_thread(void *arg)
{
	struct mcp_job *j = arg;
	if (load_config(j) == 0)
		j->run(j);
}

static void job_done(struct loop *l, void *arg)
{
	struct mcp_job *j = arg;
	struct mcp_server *s = j->srv;
	j->work = NULL;
	s->running = NULL;
	send_progress(s, j); /* a last report goes before the result */
	bool cancelled = atomic_load(&j->cancelled);
	log_info("mcp: %s%s%s: %s (%llu ms)%s", j->tool ? "tools/call " : "resources/read ",
		 j->tool ? j->tool->name : "", j->uri ? j->uri : "",
		 j->code ? errcode_name(j->code) : "ok",
		 (unsigned long long)(now_mono_ms() - j->start_ms),
		 cancelled ? ", cancelled: no reply" : "");
	/* The spec: no response for a cancelled request. */
	if (!cancelled)
		j->finish(s, j);
	mcp_job_free(j);
	start_next(s);
	mcp_maybe_finish(s);
}

static void start_next(struct mcp_server *s)
{
	while (!s->running && s->queue) {
		struct mcp_job *j = s->queue;
		s->queue = j->next;
		if (!s->queue)
			s->queue_tail = &s->queue;
		s->n_queued--;
		j->next = NULL;
		j->start_ms = now_mono_ms();
		if (s->eof)
			atomic_store(&j->stop, true);
		int r = work_start(s->loop, job_thread, job_done, j, &j->work);
		if (r < 0) {
			char msg[200];
			snprintf(msg, sizeof msg, "Internal error: cannot start a thread: %s",
				 strerror(-r));
			mcp_send_error(s, j->id, JSONRPC_INTERNAL_ERROR, msg, NULL);
			mcp_job_free(j);
			continue;
		}
		s->running = j;
	}
}

void mcp_job_submit(struct mcp_server *s, struct mcp_job *j)
{
	if (s->n_queued >= MCP_MAX_QUEUED) {
		char msg[160];
		snprintf(msg, sizeof msg,
			 "Internal error: %d calls already wait behind the one running; try again",
			 MCP_MAX_QUEUED);
		mcp_send_error(s, j->id, JSONRPC_INTERNAL_ERROR, msg, NULL);
		mcp_job_free(j);
		return;
	}
	*s->queue_tail = j;
	s->queue_tail = &j->next;
	s->n_queued++;
	start_next(s);
}

void mcp_job_cancel(struct mcp_server *s, json_t *id)
{
	if (!id)
		return;
	if (s->running && json_equal(s->running->id, id)) {
		atomic_store(&s->running->cancelled, true);
		atomic_store(&s->running->stop, true);
		log_info("mcp: request cancelled while running: its reply will not be sent");
		return;
	}
	for (struct mcp_job **p = &s->queue; *p; p = &(*p)->next) {
		if (!json_equal((*p)->id, id))
			continue;
		struct mcp_job *j = *p;
		*p = j->next;
		if (s->queue_tail == &j->next)
			s->queue_tail = p;
		s->n_queued--;
		log_info("mcp: a queued request cancelled: dropped");
		mcp_job_free(j);
		return;
	}
}

void mcp_jobs_stop(struct mcp_server *s)
{
	if (s->running)
		atomic_store(&s->running->stop, true);
}

void mcp_jobs_shutdown(struct mcp_server *s)
{
	while (s->queue) {
		struct mcp_job *j = s->queue;
		s->queue = j->next;
		mcp_job_free(j);
	}
	s->queue_tail = &s->queue;
	s->n_queued = 0;
	if (s->running) {
		atomic_store(&s->running->cancelled, true);
		atomic_store(&s->running->stop, true);
	}
}

void mcp_jobs_abandon(struct mcp_server *s)
{
	struct mcp_job *j = s->running;
	if (!j)
		return;
	s->running = NULL;
	s->abandoned = true;
	atomic_store(&j->cancelled, true);
	atomic_store(&j->stop, true);
	pthread_mutex_lock(&j->mu);
	j->srv = NULL;
	pthread_mutex_unlock(&j->mu);
	work_abandon(j->work, release_job);
}

int mcp_jobs_init(struct mcp_server *s)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	s->wake_r = p[0];
	s->wake_w = p[1];
	return loop_add_fd(s->loop, s->wake_r, LOOP_READ, on_wake, s);
}

void mcp_jobs_free(struct mcp_server *s)
{
	mcp_jobs_shutdown(s);
	if (s->wake_r >= 0) {
		if (s->loop)
			loop_del_fd(s->loop, s->wake_r);
		close(s->wake_r);
	}
	if (s->wake_w >= 0)
		close(s->wake_w);
	s->wake_r = s->wake_w = -1;
}

/* content: the document as one text item. */
static json_t *text_result(json_t *doc, bool is_error)
{
	char *text = json_dumps(doc, JSON_COMPACT);
	json_t *res = text ? json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text",
				       text, "isError", is_error)
			   : NULL;
	free(text);
	return res;
}

json_t *mcp_tool_error(int code, const char *message, json_t *doc)
{
	/* Members a tool gave the envelope's error (an invalid config's
	 * diagnostics, where the CLI's --json has them) join code, name
	 * and message. */
	json_t *more = json_incref(json_object_get(doc, "error"));
	if (more)
		json_object_del(doc, "error");
	json_t *env = mcp_error_envelope(code, message, doc);
	json_object_update_missing(json_object_get(env, "error"), more);
	json_decref(more);
	json_t *res = text_result(env, true);
	json_decref(env);
	return res;
}

json_t *mcp_tool_result(const struct mcp_job *j)
{
	if (j->code)
		return mcp_tool_error(j->code, j->err.message[0] ? j->err.message : "failed",
				      json_incref(j->doc));
	json_t *res = text_result(j->doc, false);
	if (res)
		json_object_set(res, "structuredContent", j->doc);
	return res;
}
