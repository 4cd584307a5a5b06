/* resources.c - MCP resources: the status document, each bridge's audit
 * log, the catalog; subscriptions fed by watching the state directory.
 *
 *   bridge://status     `status --json`: {"bridges":[...], "session":{...}}
 *   bridge://NAME/log   `logs NAME -n 100 --json`: {"name", "events":[...]}
 *   catalog://domains   `catalog list --json`
 *   catalog://targets   `targets --json`
 *
 * Lists and subscriptions are answered on the loop; a read needs the app
 * layer, so it is a job (calls.c).  Updates: a supervisor replaces
 * NAME.state by rename on every state change and appends to NAME.log;
 * watch.h reports both, and each subscribed URI they touch gets one
 * notifications/resources/updated per burst (MCP_COALESCE_MS).  The
 * catalog resources can be subscribed to but send no update: each read
 * loads the catalog afresh (calls.c), nothing watches it. */
#include "app/catalog.h"
#include "app/config.h"
#include "core/log.h"
#include "core/schema.h"
#include "core/util.h"
#include "mcp/server.h"
#include "mcp/watch.h"
#include "proto/jsonrpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MCP_RESOURCE_NOT_FOUND -32002 /* MCP: resources/read of an unknown URI */

#define STATUS_URI  "bridge://status"
#define DOMAINS_URI "catalog://domains"
#define TARGETS_URI "catalog://targets"
#define MIME_JSON   "application/json"

enum uri_kind { URI_NONE, URI_STATUS, URI_LOG, URI_DOMAINS, URI_TARGETS };

/* What `uri` names; for URI_LOG the bridge's name into name[n]. */
static enum uri_kind classify(const char *uri, char *name, size_t n)
{
	if (strcmp(uri, STATUS_URI) == 0)
		return URI_STATUS;
	if (strcmp(uri, DOMAINS_URI) == 0)
		return URI_DOMAINS;
	if (strcmp(uri, TARGETS_URI) == 0)
		return URI_TARGETS;
	static const char pre[] = "bridge://", post[] = "/log";
	size_t len = strlen(uri);
	if (len <= strlen(pre) + strlen(post) || strncmp(uri, pre, strlen(pre)) != 0 ||
	    strcmp(uri + len - strlen(post), post) != 0)
		return URI_NONE;
	size_t nl = len - strlen(pre) - strlen(post);
	if (nl >= n)
		return URI_NONE;
	memcpy(name, uri + strlen(pre), nl);
	name[nl] = '\0';
	return cfg_name_valid(name) ? URI_LOG : URI_NONE;
}

static json_t *resource(const char *uri, const char *name, const char *title, const char *desc)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "uri", uri, "name", name, "title", title,
			 "description", desc, "mimeType", MIME_JSON);
}

/* The catalog's URIs only when the config names a catalog: without one,
 * reading them can only fail. */
void mcp_resources_list(struct mcp_server *s, json_t *id, json_t *params)
{
	json_t *list = json_array();
	json_array_append_new(
	    list,
	    resource(STATUS_URI, "status", "Bridge status",
		     "Every bridge's state, as `devbridge status --json`: {\"bridges\":[...]}. "
		     "Subscribe to hear when a bridge changes state."));
	if (s->app->cfg && s->app->cfg->catalog_path) {
		json_array_append_new(
		    list, resource(DOMAINS_URI, "domains", "Catalog domains",
				   "The OpsCatalog's domains with their target and bridge counts, "
				   "as `devbridge catalog list --json`."));
		json_array_append_new(
		    list,
		    resource(TARGETS_URI, "targets", "Catalog targets",
			     "Every host of the OpsCatalog (host, ssh user and port, tags), as "
			     "`devbridge targets --json`."));
	}
	mcp_reply(s, id, json_pack("{s:o}", "resources", list));
}

void mcp_resources_templates(struct mcp_server *s, json_t *id, json_t *params)
{
	char desc[256];
	snprintf(desc, sizeof desc,
		 "The last %d audit events of bridge NAME, as `devbridge logs NAME -n %d --json`: "
		 "{\"name\", \"events\":[...]}.",
		 MCP_LOG_EVENTS, MCP_LOG_EVENTS);
	mcp_reply(s, id,
		  json_pack("{s:[{s:s, s:s, s:s, s:s, s:s}]}", "resourceTemplates", "uriTemplate",
			    "bridge://{name}/log", "name", "log", "title", "Bridge audit log",
			    "description", desc, "mimeType", MIME_JSON));
}

/* --- reads (jobs) --- */

static void run_read(struct mcp_job *j)
{
	const struct app *a = j->call.app;
	char name[256];
	switch (classify(j->uri, name, sizeof name)) {
	case URI_STATUS:
		j->code = app_status_doc(a, 0, NULL, &j->doc, &j->err);
		break;
	case URI_LOG:
		j->code = app_logs_doc(a, name, MCP_LOG_EVENTS, &j->doc, &j->err);
		break;
	case URI_DOMAINS:
		j->code = app_catalog_domains(a, &j->doc, &j->err);
		break;
	case URI_TARGETS:
		j->code = app_catalog_targets(a, NULL, &j->doc, &j->err);
		break;
	case URI_NONE:
		j->code = err_set(&j->err, EXIT_ERROR, "unknown resource");
		break;
	}
	if (j->code == 0 && !j->doc)
		j->code = err_set(&j->err, EXIT_ERROR, "out of memory");
}

static void finish_read(struct mcp_server *s, struct mcp_job *j)
{
	if (j->code) {
		/* An unknown bridge is an unknown resource (spec: -32002 with
		 * the uri); anything else is the operation's failure, its
		 * envelope in data. */
		bool unknown = j->code == EXIT_UNKNOWN_BRIDGE;
		json_t *data = mcp_error_envelope(j->code, j->err.message, NULL);
		json_object_set_new(data, "uri", json_string(j->uri));
		char msg[ERR_MESSAGE_MAX + 64];
		snprintf(msg, sizeof msg, "%s: %s",
			 unknown ? "Resource not found" : "Internal error", j->err.message);
		mcp_send_error(s, j->id, unknown ? MCP_RESOURCE_NOT_FOUND : JSONRPC_INTERNAL_ERROR,
			       msg, data);
		return;
	}
	char *text = json_dumps(j->doc, JSON_COMPACT);
	if (!text) {
		mcp_send_error(s, j->id, JSONRPC_INTERNAL_ERROR, "Internal error: out of memory",
			       NULL);
		return;
	}
	mcp_reply(s, j->id,
		  json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", j->uri, "mimeType",
			    MIME_JSON, "text", text));
	free(text);
}

/* The uri of params, known to us; NULL after replying with an error. */
static const char *take_uri(struct mcp_server *s, json_t *id, json_t *params)
{
	const char *uri = json_string_value(json_object_get(params, "uri"));
	char name[256];
	if (!uri) {
		mcp_send_error(s, id, JSONRPC_INVALID_PARAMS,
			       "Invalid params: uri (a string) is required", NULL);
		return NULL;
	}
	if (classify(uri, name, sizeof name) == URI_NONE) {
		char msg[MCP_ECHO_MAX + 64];
		snprintf(msg, sizeof msg, "Resource not found: %.*s",
			 (int)utf8_trunc(uri, MCP_ECHO_MAX), uri);
		mcp_send_error(s, id, MCP_RESOURCE_NOT_FOUND, msg, json_pack("{s:s}", "uri", uri));
		return NULL;
	}
	return uri;
}

void mcp_resources_read(struct mcp_server *s, json_t *id, json_t *params)
{
	const char *uri = take_uri(s, id, params);
	if (!uri)
		return;
	struct mcp_job *j = mcp_job_new(s, id, params);
	if (!j || !(j->uri = strdup(uri))) {
		mcp_job_free(j);
		mcp_send_error(s, id, JSONRPC_INTERNAL_ERROR, "Internal error: out of memory",
			       NULL);
		return;
	}
	j->run = run_read;
	j->finish = finish_read;
	mcp_job_submit(s, j);
}

/* --- subscriptions --- */

static void on_coalesced(struct loop *l, void *data)
{
	struct mcp_server *s = data;
	for (size_t i = 0; i < s->n_subs; i++) {
		if (!s->subs[i].dirty)
			continue;
		s->subs[i].dirty = false;
		mcp_send(s, jsonrpc_notification("notifications/resources/updated",
						 json_pack("{s:s}", "uri", s->subs[i].uri)));
	}
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A file of the state directory changed (NULL: maybe all of them). */
static void on_change(void *data, const char *file)
{
	struct mcp_server *s = data;
	/* Temporary files of atomic writes, supervisors' own output and
	 * rotated logs say nothing about a bridge's state. */
	if (file && (strstr(file, ".tmp.") || has_suffix(file, ".out") || has_suffix(file, ".1")))
		return;
	bool log = file && has_suffix(file, ".log");
	bool any = false;
	for (size_t i = 0; i < s->n_subs; i++) {
		struct mcp_sub *sub = &s->subs[i];
		char name[256];
		enum uri_kind k = classify(sub->uri, name, sizeof name);
		bool hit = false;
		if (k == URI_STATUS)
			hit = !log;
		else if (k == URI_LOG)
			hit = !file || (log && strlen(file) == strlen(name) + 4 &&
					strncmp(file, name, strlen(name)) == 0);
		if (hit) {
			sub->dirty = true;
			any = true;
		}
	}
	if (any && !loop_timer_active(&s->coalesce))
		loop_timer_start(s->loop, &s->coalesce, MCP_COALESCE_MS, on_coalesced, s);
}

void mcp_resources_subscribe(struct mcp_server *s, json_t *id, json_t *params, bool on)
{
	const char *uri = take_uri(s, id, params);
	if (!uri)
		return;
	size_t i = 0;
	while (i < s->n_subs && strcmp(s->subs[i].uri, uri) != 0)
		i++;
	if (!on) {
		if (i < s->n_subs) {
			free(s->subs[i].uri);
			s->subs[i] = s->subs[--s->n_subs];
		}
		mcp_reply(s, id, json_object());
		return;
	}
	if (i == s->n_subs && s->n_subs == MCP_MAX_SUBSCRIPTIONS) {
		mcp_send_error(s, id, JSONRPC_INVALID_PARAMS,
			       "Invalid params: too many subscriptions (256)", NULL);
		return;
	}
	if (!s->watch) {
		int r = mcp_watch_start(s->loop, s->app->state_dir, on_change, s, &s->watch);
		if (r < 0) {
			char msg[4200];
			snprintf(msg, sizeof msg, "Internal error: cannot watch %s: %s",
				 s->app->state_dir, strerror(-r));
			mcp_send_error(s, id, JSONRPC_INTERNAL_ERROR, msg, NULL);
			return;
		}
	}
	if (i == s->n_subs) {
		char *copy = strdup(uri);
		if (!copy) {
			mcp_send_error(s, id, JSONRPC_INTERNAL_ERROR,
				       "Internal error: out of memory", NULL);
			return;
		}
		s->subs[s->n_subs++] = (struct mcp_sub){copy, false};
		log_info("mcp: subscribed to %s", uri);
	}
	mcp_reply(s, id, json_object());
}

void mcp_resources_free(struct mcp_server *s)
{
	if (s->loop)
		loop_timer_stop(s->loop, &s->coalesce);
	mcp_watch_free(s->watch);
	s->watch = NULL;
	for (size_t i = 0; i < s->n_subs; i++)
		free(s->subs[i].uri);
	s->n_subs = 0;
}
