/* jsonrpc.c - see jsonrpc.h.
 *
 * What is invalid follows JSON-RPC 2.0 §4-5 with MCP's narrowing: an id is
 * a string or an integer (MCP forbids null; a fractional number is not an
 * integer), "jsonrpc" is exactly "2.0", params an object or an array (the
 * server says which it wants).  An invalid message is answered with the id
 * it carried when that id is valid, else with null, as §5 says.  A message
 * with no method but an id, a result or an error is a response, even a
 * malformed one: it is never answered (the id is one the client chose for
 * a request of its own, and a reply to a reply could bounce for ever). */
#include "proto/jsonrpc.h"

#include <stdlib.h>
#include <string.h>

static int invalid(struct jsonrpc_msg *m, int code, const char *message)
{
	m->kind = JSONRPC_INVALID;
	m->code = code;
	m->message = message;
	m->method = NULL;
	m->params = m->result = m->error = NULL;
	return -1;
}

int jsonrpc_valid_id(const json_t *id)
{
	return id && (json_is_string(id) || json_is_integer(id));
}

/* A response (no method): well formed, or with `message` saying why not. */
static int response(struct jsonrpc_msg *m, json_t *id, json_t *result, json_t *error)
{
	m->kind = JSONRPC_RESPONSE;
	m->id = id;
	m->result = result;
	m->error = error;
	const char *v = json_string_value(json_object_get(m->root, "jsonrpc"));
	if (!v || strcmp(v, "2.0") != 0)
		m->message = "jsonrpc is not \"2.0\"";
	else if (!jsonrpc_valid_id(id) && !json_is_null(id))
		m->message = "no valid id";
	else if (!result == !error)
		m->message = "not exactly one of result and error";
	else if (error && !json_is_object(error))
		m->message = "error is not an object";
	return 0;
}

int jsonrpc_parse(const char *line, size_t len, struct jsonrpc_msg *m)
{
	memset(m, 0, sizeof *m);
	/* JSON_DECODE_ANY: a scalar is valid JSON, so an invalid request
	 * rather than a parse error.  jansson caps the nesting depth. */
	m->root = json_loadb(line, len, JSON_DECODE_ANY, NULL);
	if (!m->root)
		return invalid(m, JSONRPC_PARSE_ERROR, "Parse error: not a JSON document");
	if (json_is_array(m->root))
		return invalid(m, JSONRPC_INVALID_REQUEST,
			       "Invalid Request: batches (JSON arrays) are not supported");
	if (!json_is_object(m->root))
		return invalid(m, JSONRPC_INVALID_REQUEST, "Invalid Request: not a JSON object");
	json_t *id = json_object_get(m->root, "id");
	json_t *method = json_object_get(m->root, "method");
	json_t *result = json_object_get(m->root, "result");
	json_t *error = json_object_get(m->root, "error");
	if (!method && (id || result || error))
		return response(m, id, result, error);
	if (jsonrpc_valid_id(id))
		m->id = id;
	else if (id && !(json_is_null(id) && !method))
		/* null is a response's id when the request could not be read */
		return invalid(m, JSONRPC_INVALID_REQUEST,
			       "Invalid Request: id must be a string or an integer");
	const char *v = json_string_value(json_object_get(m->root, "jsonrpc"));
	if (!v || strcmp(v, "2.0") != 0)
		return invalid(m, JSONRPC_INVALID_REQUEST,
			       "Invalid Request: jsonrpc must be \"2.0\"");
	if (!method)
		return invalid(m, JSONRPC_INVALID_REQUEST,
			       "Invalid Request: neither a request nor a response");
	if (!json_is_string(method))
		return invalid(m, JSONRPC_INVALID_REQUEST,
			       "Invalid Request: method must be a string");
	json_t *params = json_object_get(m->root, "params");
	if (params && !json_is_object(params) && !json_is_array(params))
		return invalid(m, JSONRPC_INVALID_REQUEST,
			       "Invalid Request: params must be an object or an array");
	m->method = json_string_value(method);
	m->params = params;
	m->kind = id ? JSONRPC_REQUEST : JSONRPC_NOTIFICATION;
	return 0;
}

void jsonrpc_msg_clear(struct jsonrpc_msg *m)
{
	json_decref(m->root);
	memset(m, 0, sizeof *m);
}

/* The envelope with id (copied; NULL: null); NULL when out of memory. */
static json_t *envelope(json_t *id)
{
	json_t *id_copy = id ? json_copy(id) : json_null();
	json_t *msg = id_copy ? json_pack("{s:s, s:o}", "jsonrpc", "2.0", "id", id_copy) : NULL;
	return msg;
}

json_t *jsonrpc_result(json_t *id, json_t *result)
{
	json_t *msg = envelope(id);
	if (!msg || !result || json_object_set_new(msg, "result", result) < 0) {
		if (!msg)
			json_decref(result);
		json_decref(msg);
		return NULL;
	}
	return msg;
}

json_t *jsonrpc_error(json_t *id, int code, const char *message, json_t *data)
{
	json_t *err = json_pack("{s:i, s:s}", "code", code, "message", message);
	if (err && data)
		json_object_set_new(err, "data", data);
	else
		json_decref(data);
	json_t *msg = envelope(id);
	if (!msg || !err || json_object_set_new(msg, "error", err) < 0) {
		if (!msg)
			json_decref(err);
		json_decref(msg);
		return NULL;
	}
	return msg;
}

json_t *jsonrpc_notification(const char *method, json_t *params)
{
	json_t *msg = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
	if (msg && params && json_object_set_new(msg, "params", params) < 0) {
		json_decref(msg);
		return NULL;
	}
	if (!msg)
		json_decref(params);
	return msg;
}

char *jsonrpc_dump(json_t *msg, size_t *ret_len)
{
	if (!msg)
		return NULL;
	char *s = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	*ret_len = n + 1;
	return line;
}
