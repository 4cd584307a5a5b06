/* server.h - the MCP server's parts, private to src/mcp: the session
 * (server.c: stdio, framing, the handshake, dispatch), the work queue
 * (calls.c: tools/call and whatever else needs the app layer, one at a
 * time on a worker thread) and resources (resources.c: the URIs, reads,
 * subscriptions fed by watch.h).
 *
 * Everything here runs on the loop thread except a job's run function
 * and the progress/cancelled callbacks a tool calls (calls.c says which
 * members they may touch). */
#ifndef DEVBRIDGE_MCP_SERVER_H
#define DEVBRIDGE_MCP_SERVER_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/errcode.h"
#include "core/loop.h"
#include "mcp/mcp.h"

#define MCP_MAX_QUEUED	      64	  /* calls waiting behind the one that runs */
#define MCP_MAX_SUBSCRIPTIONS 256	  /* resources/subscribe URIs */
#define MCP_OUT_MAX	      (64u << 20) /* replies not yet written to stdout */
#define MCP_OUT_HIGH	      (1u << 20)  /* above this, stop reading stdin */
#define MCP_EXIT_GRACE_MS     1500	  /* stdin closed: how long calls asked may still finish */
#define MCP_COALESCE_MS	      100	  /* resource updates: one notification per burst */
#define MCP_LOG_EVENTS	      100	  /* bridge://NAME/log: the last N audit events */
#define MCP_PROGRESS_MSG_MAX  256
#define MCP_ECHO_MAX	      256 /* bytes of a peer's text (a method, a URI) an error quotes */

struct jsonl_reader;
struct mcp_job;
struct mcp_watch;

struct mcp_server {
	struct app *app;
	struct loop *loop;
	int in_fd, out_fd;
	struct jsonl_reader *in;
	struct buf out;
	unsigned in_events; /* what stdin is watched for (0: not) */
	bool in_file;	    /* stdin is a file: read from deferred calls, not watched */
	bool out_watched;   /* waiting for stdout to take more */
	bool eof;	    /* stdin closed: finishing */
	bool stopping;	    /* loop_stop called */
	bool abandoned;	    /* a call was left running on its thread: mcp_serve _exits */
	int exit_code;
	struct loop_timer grace;
	struct loop_defer resume; /* read stdin again (backpressure over) */
	/* the session */
	const char *version;		  /* negotiated by initialize; NULL before */
	const char *profile;		  /* --profile: a tool's `profile` when it gives none */
	bool initialized;		  /* notifications/initialized seen */
	json_t **in_schema, **out_schema; /* per tool, parsed once */
	/* the work queue (calls.c) */
	struct mcp_job *running;
	struct mcp_job *queue, **queue_tail;
	size_t n_queued;
	int wake_r, wake_w; /* a worker's progress wakes the loop */
	/* resources (resources.c) */
	struct mcp_sub {
		char *uri;
		bool dirty; /* changed since the last notification */
	} subs[MCP_MAX_SUBSCRIPTIONS];
	size_t n_subs;
	struct mcp_watch *watch;
	struct loop_timer coalesce;
};

/* --- server.c --- */

/* Queue one message for stdout; takes msg.  Never fails for the caller:
 * a message that cannot be queued (NULL: out of memory; MCP_OUT_MAX)
 * ends the session, later, from the loop. */
void mcp_send(struct mcp_server *s, json_t *msg);
/* The reply to request id: a result (taken; NULL when it could not be
 * built) or an error (takes data).  A reply that cannot be built (a
 * message that is not UTF-8) is a fixed JSONRPC_INTERNAL_ERROR for id:
 * a request is always answered, and only out of memory ends the session. */
void mcp_reply(struct mcp_server *s, json_t *id, json_t *result);
void mcp_send_error(struct mcp_server *s, json_t *id, int code, const char *message, json_t *data);
/* A tool's failure as the --json error envelope: doc's members (if doc
 * is an object: the rows that did work) plus "error":{code,name,message}.
 * Takes doc. */
json_t *mcp_error_envelope(int code, const char *message, json_t *doc);
/* Called when the queue is empty and stdin is closed: the session ends. */
void mcp_maybe_finish(struct mcp_server *s);

/* --- calls.c --- */

/* A job: what needs the app layer, run on a worker thread, one at a time.
 * run() fills code/doc/err on the worker; finish() replies on the loop
 * (not called when the request was cancelled). */
struct mcp_job {
	struct mcp_job *next;
	struct mcp_server *srv; /* NULL once the server let go of it (mu) */
	json_t *id;
	json_t *progress_token; /* NULL: the client asked for no progress */
	void (*run)(struct mcp_job *j);
	void (*finish)(struct mcp_server *s, struct mcp_job *j);
	const struct mcp_tool *tool; /* tools/call */
	char *uri;		     /* resources/read */
	/* The server's app with this job's own config, loaded on the
	 * worker when the job starts and freed with the job (calls.c). */
	struct app app;
	struct mcp_call call;
	atomic_bool cancelled; /* by the client: no reply is sent */
	atomic_bool stop;      /* what call.cancelled() says: cancelled, or stdin closed */
	struct work *work;
	uint64_t start_ms;
	/* progress, from the worker to the loop (mu) */
	pthread_mutex_t mu;
	bool progress_pending;
	double done, total;
	char message[MCP_PROGRESS_MSG_MAX];
	/* the outcome */
	int code;
	json_t *doc;
	struct err err;
};

/* A job for request `id` (copied); NULL when out of memory.  `params`
 * gives _meta.progressToken. */
struct mcp_job *mcp_job_new(struct mcp_server *s, json_t *id, json_t *params);
void mcp_job_free(struct mcp_job *j);
/* Run it now, or after those queued before it; a full queue is an error
 * reply and the job is freed. */
void mcp_job_submit(struct mcp_server *s, struct mcp_job *j);
/* notifications/cancelled: the running job's flag is set (its reply will
 * not be sent), a queued one is dropped.  Unknown ids are ignored. */
void mcp_job_cancel(struct mcp_server *s, json_t *id);
/* stdin closed: the running job (and any started later) is asked to
 * stop early; its reply is still sent. */
void mcp_jobs_stop(struct mcp_server *s);
/* Drop the queue and cancel the running job (no reply). */
void mcp_jobs_shutdown(struct mcp_server *s);
/* The grace period is over (or a signal, or stdout is gone): forget the
 * running job.  Its thread ends with the process, which mcp_serve ends
 * without tearing down (s->abandoned). */
void mcp_jobs_abandon(struct mcp_server *s);
int mcp_jobs_init(struct mcp_server *s);
void mcp_jobs_free(struct mcp_server *s);

/* tools/call's outcome as a CallToolResult: the document as text and as
 * structuredContent, or mcp_tool_error's. */
json_t *mcp_tool_result(const struct mcp_job *j);
/* A failed call: isError, the --json error envelope (mcp_error_envelope,
 * takes doc; doc's "error" members join the envelope's) as text, and no structuredContent: the SDK
 * checks that against the outputSchema even on errors (typescript-sdk #1943). */
json_t *mcp_tool_error(int code, const char *message, json_t *doc);

/* --- resources.c --- */

void mcp_resources_list(struct mcp_server *s, json_t *id, json_t *params);
void mcp_resources_templates(struct mcp_server *s, json_t *id, json_t *params);
void mcp_resources_read(struct mcp_server *s, json_t *id, json_t *params);
void mcp_resources_subscribe(struct mcp_server *s, json_t *id, json_t *params, bool on);
void mcp_resources_free(struct mcp_server *s);

#endif
