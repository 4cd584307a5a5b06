/* jsonrpc.h - JSON-RPC 2.0 messages, one per line (MCP's stdio transport).
 *
 * jsonrpc_parse reads one line (proto/jsonl.h frames the stream) and
 * classifies it: a request (method and id), a notification (method, no
 * id), a response (no method: id and result or error; a malformed one too,
 * since nothing answers a response), or invalid, with the error code and
 * message to reply with (and the id to reply to, when one could be read).  The builders make the
 * replies; jsonrpc_dump turns one into the line to send.
 *
 * Batches (a JSON array) are invalid: MCP 2025-06-18 removed them and no
 * client of the revisions we speak sends one (docs/mcp.md). */
#ifndef DEVBRIDGE_PROTO_JSONRPC_H
#define DEVBRIDGE_PROTO_JSONRPC_H

#include <jansson.h>
#include <stddef.h>

/* The longest line read, without its newline: 4 MiB.  A longer one is
 * answered with JSONRPC_INVALID_REQUEST (id null) and discarded. */
#define JSONRPC_MAX_LINE (4u << 20)

/* JSON-RPC 2.0's error codes. */
enum {
	JSONRPC_PARSE_ERROR = -32700,
	JSONRPC_INVALID_REQUEST = -32600,
	JSONRPC_METHOD_NOT_FOUND = -32601,
	JSONRPC_INVALID_PARAMS = -32602,
	JSONRPC_INTERNAL_ERROR = -32603,
};

enum jsonrpc_kind {
	JSONRPC_INVALID,
	JSONRPC_REQUEST,
	JSONRPC_NOTIFICATION,
	JSONRPC_RESPONSE,
};

/* One parsed line.  Pointers are borrowed from `root` (which the message
 * owns): valid until jsonrpc_msg_clear. */
struct jsonrpc_msg {
	enum jsonrpc_kind kind;
	json_t *root;
	json_t *id; /* request, response (as read: absent or bad in a malformed one); invalid: the
		       id if it could be read, else NULL */
	const char *method; /* request, notification */
	json_t *params;	    /* request, notification: an object or an array; NULL if absent */
	json_t *result;	    /* response: result, or NULL when it carries an error */
	json_t *error;	    /* response: error, or NULL */
	/* invalid: what to answer (JSONRPC_PARSE_ERROR, JSONRPC_INVALID_REQUEST);
	 * response: message is NULL, or why it is malformed (for the log) */
	int code;
	const char *message;
};

/* Parse one line of len bytes.  Always fills *m (kind JSONRPC_INVALID with
 * code and message on a bad line); clear it with jsonrpc_msg_clear.
 * Returns 0, or -1 when the line is invalid. */
int jsonrpc_parse(const char *line, size_t len, struct jsonrpc_msg *m);
void jsonrpc_msg_clear(struct jsonrpc_msg *m);

/* A valid request id: a string or an integer (MCP: never null). */
int jsonrpc_valid_id(const json_t *id);

/* {"jsonrpc":"2.0","id":id,"result":result}; takes result, copies id
 * (NULL: null).  NULL when out of memory. */
json_t *jsonrpc_result(json_t *id, json_t *result);
/* {"jsonrpc":"2.0","id":id,"error":{code,message[,data]}}; takes data
 * (may be NULL), id as for jsonrpc_result. */
json_t *jsonrpc_error(json_t *id, int code, const char *message, json_t *data);
/* {"jsonrpc":"2.0","method":method[,"params":params]}; takes params. */
json_t *jsonrpc_notification(const char *method, json_t *params);

/* msg as one compact line ending in '\n' (malloc'd, *ret_len bytes), or
 * NULL when out of memory.  Takes msg.  Compact JSON escapes every control
 * character, so the line holds no other newline. */
char *jsonrpc_dump(json_t *msg, size_t *ret_len);

#endif
