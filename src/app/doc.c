/* doc.c - each command's --json document, built once for both renderers:
 * the CLI prints it, an MCP tool returns it as structuredContent.  See
 * app.h ("the --json documents"). */
#include "app/app.h"
#include "k8s/session.h"

#include <stdlib.h>

int app_status_doc(const struct app *a, int n, char **names, json_t **ret_doc, struct err *e)
{
	json_t *rows, *sess;
	int r = app_status(a, n, names, &rows, &sess, e);
	if (r)
		return r;
	json_t *doc = json_pack("{s:o}", "bridges", rows);
	if (!doc) {
		json_decref(sess);
		return err_set(e, EXIT_ERROR, "out of memory");
	}
	if (sess)
		json_object_set_new(doc, "session", sess);
	*ret_doc = doc;
	return 0;
}

int app_up_doc(const struct app *a, int n, char **names, int timeout_s, bool foreground,
	       json_t **ret_doc, struct app_started **ret_started, size_t *ret_n, struct err *e)
{
	json_t *rows = NULL;
	int code = app_up(a, n, names, timeout_s, foreground, &rows, ret_started, ret_n, e);
	if (rows)
		*ret_doc = json_pack("{s:o}", "bridges", rows);
	return code;
}

int app_down_doc(const struct app *a, int code, json_t *rows, json_t **ret_doc, struct err *e)
{
	size_t i;
	json_t *row;
	/* The pid a dry run would stop is for a terminal. */
	if (a->dry_run)
		json_array_foreach(rows, i, row) json_object_del(row, "pid");
	*ret_doc = json_pack("{s:o}", "bridges", rows);
	if (code)
		err_set(e, code, "some bridges could not be stopped");
	return code;
}

int app_logs_doc(const struct app *a, const char *name, long n, json_t **ret_doc, struct err *e)
{
	json_t *events;
	int r = app_logs(a, name, n, &events, e);
	if (r)
		return r;
	*ret_doc = json_pack("{s:s, s:o}", "name", name, "events", events);
	return *ret_doc ? 0 : err_set(e, EXIT_ERROR, "out of memory");
}

int app_check_doc(const struct app *a, int n, char **names, json_t **ret_doc, struct err *e)
{
	json_t *rows = NULL;
	int code = app_check(a, n, names, &rows, e);
	if (rows)
		*ret_doc = json_pack("{s:o}", "checks", rows);
	return code;
}

json_t *app_connect_doc(json_t *doc)
{
	size_t i;
	json_t *row;
	json_array_foreach(json_object_get(doc, "bridges"), i, row) json_object_del(row, "target");
	json_object_del(doc, "exported");
	return doc;
}

int app_disconnect_doc(const struct app *a, int code, json_t *rows, json_t **ret_doc, struct err *e)
{
	*ret_doc = json_pack("{s:b, s:o}", "dry_run", a->dry_run, "bridges", rows);
	if (code)
		err_set(e, code, "some bridges could not be stopped");
	return code;
}

int app_env_doc(const struct app *a, json_t **ret_doc, struct err *e)
{
	struct k8s_entry *v = NULL;
	size_t n = 0;
	int r = app_k8s_entries(a, &v, &n, e);
	if (r)
		return r;
	*ret_doc = k8s_env_json(v, n);
	free(v);
	return *ret_doc ? 0 : err_set(e, EXIT_ERROR, "out of memory");
}
