/* Fuzz the JSON-RPC classifier: any bytes give a message of one kind,
 * the pointers it hands out point into its own document, an invalid one
 * carries a code and a message, and the reply built for it (the error,
 * or a result for a request, and the "Method not found" that quotes its
 * method as server.c does: at most 256 bytes, cut between characters)
 * dumps to one line that parses back as a response to the same id. */
#include "core/util.h"
#include "proto/jsonrpc.h"

#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void reply_roundtrip(json_t *reply, json_t *id)
{
	size_t len;
	char *line = jsonrpc_dump(reply, &len);
	if (!line)
		abort();
	if (len == 0 || line[len - 1] != '\n' || memchr(line, '\n', len - 1))
		abort();
	struct jsonrpc_msg r;
	if (jsonrpc_parse(line, len - 1, &r) != 0 || r.kind != JSONRPC_RESPONSE)
		abort();
	if (id ? !json_equal(r.id, id) : !json_is_null(r.id))
		abort();
	jsonrpc_msg_clear(&r);
	free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jsonrpc_msg m;
	int r = jsonrpc_parse((const char *)data, size, &m);
	switch (m.kind) {
	case JSONRPC_INVALID:
		if (r != -1 || !m.message ||
		    (m.code != JSONRPC_PARSE_ERROR && m.code != JSONRPC_INVALID_REQUEST))
			abort();
		if (m.id && !jsonrpc_valid_id(m.id))
			abort();
		reply_roundtrip(jsonrpc_error(m.id, m.code, m.message, NULL), m.id);
		break;
	case JSONRPC_REQUEST:
		if (r != 0 || !m.method || !jsonrpc_valid_id(m.id))
			abort();
		if (m.params && !json_is_object(m.params) && !json_is_array(m.params))
			abort();
		reply_roundtrip(
		    jsonrpc_result(m.id, json_incref(m.params ? m.params : json_null())), m.id);
		char msg[320];
		snprintf(msg, sizeof msg, "Method not found: %.*s", (int)utf8_trunc(m.method, 256),
			 m.method);
		reply_roundtrip(jsonrpc_error(m.id, JSONRPC_METHOD_NOT_FOUND, msg, NULL), m.id);
		break;
	case JSONRPC_NOTIFICATION:
		if (r != 0 || !m.method || m.id)
			abort();
		break;
	case JSONRPC_RESPONSE: /* never answered; well formed unless message says why */
		if (r != 0 || m.method || (!m.id && !m.result && !m.error))
			abort();
		if (!m.message &&
		    (!(jsonrpc_valid_id(m.id) || json_is_null(m.id)) || !m.result == !m.error))
			abort();
		break;
	}
	jsonrpc_msg_clear(&m);
	return 0;
}
