/* Unit tests for proto/jsonrpc: classifying lines (requests, notifications,
 * responses, every kind of invalid with the code and id to answer), the
 * builders, and the dump (one line, control characters escaped). */
#include "proto/jsonrpc.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static struct jsonrpc_msg parse(const char *line)
{
	struct jsonrpc_msg m;
	jsonrpc_parse(line, strlen(line), &m);
	return m;
}

static void test_request_and_notification(void)
{
	struct jsonrpc_msg m = parse("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\","
				     "\"params\":{\"name\":\"x\"}}");
	ASSERT_EQ(m.kind, JSONRPC_REQUEST);
	ASSERT_EQ(json_integer_value(m.id), 7);
	ASSERT_STR_EQ(m.method, "tools/call");
	ASSERT_STR_EQ(json_string_value(json_object_get(m.params, "name")), "x");
	jsonrpc_msg_clear(&m);

	m = parse("{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"ping\"}");
	ASSERT_EQ(m.kind, JSONRPC_REQUEST);
	ASSERT_STR_EQ(json_string_value(m.id), "abc");
	ASSERT(m.params == NULL);
	jsonrpc_msg_clear(&m);

	m = parse("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
	ASSERT_EQ(m.kind, JSONRPC_NOTIFICATION);
	ASSERT(m.id == NULL);
	jsonrpc_msg_clear(&m);

	m = parse("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[1,2]}");
	ASSERT_EQ(m.kind, JSONRPC_NOTIFICATION);
	ASSERT(json_is_array(m.params));
	jsonrpc_msg_clear(&m);
}

static void test_responses(void)
{
	struct jsonrpc_msg m = parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
	ASSERT_EQ(m.kind, JSONRPC_RESPONSE);
	ASSERT(m.result && !m.error && !m.message);
	jsonrpc_msg_clear(&m);
	m = parse(
	    "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"x\"}}");
	ASSERT_EQ(m.kind, JSONRPC_RESPONSE);
	ASSERT(m.error && json_is_null(m.id) && !m.message);
	jsonrpc_msg_clear(&m);
	/* Malformed, but no method: still a response, never answered (an
	 * error for id 1 would answer the client's own request 1). */
	const char *bad[] = {
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{}}",
	    "{\"jsonrpc\":\"2.0\",\"id\":1}",
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":3}",
	    "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"result\":{}}",
	    "{\"jsonrpc\":\"2.0\",\"result\":{}}",
	    "{\"id\":1,\"result\":{}}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		m = parse(bad[i]);
		ASSERT_EQ(m.kind, JSONRPC_RESPONSE);
		ASSERT(m.message && m.message[0]);
		jsonrpc_msg_clear(&m);
	}
	/* Neither a method nor anything of a response: invalid (JSON-RPC's
	 * own example answers {"foo":"boo"} with -32600, id null). */
	m = parse("{\"jsonrpc\":\"2.0\"}");
	ASSERT_EQ(m.kind, JSONRPC_INVALID);
	ASSERT_EQ(m.code, JSONRPC_INVALID_REQUEST);
	jsonrpc_msg_clear(&m);
}

/* Each bad line, the code to answer and the id to answer with (-1: null). */
static void test_invalid(void)
{
	static const struct {
		const char *line;
		int code;
		long long id;
	} cases[] = {
	    {"", JSONRPC_PARSE_ERROR, -1},
	    {"{", JSONRPC_PARSE_ERROR, -1},
	    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} trailing", JSONRPC_PARSE_ERROR,
	     -1},
	    {"nul", JSONRPC_PARSE_ERROR, -1},
	    {"{\"a\":\"\\u0000\"}", JSONRPC_PARSE_ERROR, -1},
	    {"[]", JSONRPC_INVALID_REQUEST, -1},
	    {"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", JSONRPC_INVALID_REQUEST, -1},
	    {"3", JSONRPC_INVALID_REQUEST, -1},
	    {"null", JSONRPC_INVALID_REQUEST, -1},
	    {"\"x\"", JSONRPC_INVALID_REQUEST, -1},
	    {"{}", JSONRPC_INVALID_REQUEST, -1},
	    {"{\"id\":5,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST, 5},
	    {"{\"jsonrpc\":2.0,\"id\":5,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST, 5},
	    {"{\"jsonrpc\":\"2.1\",\"id\":5,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST, 5},
	    {"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":5}", JSONRPC_INVALID_REQUEST, 5},
	    {"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"m\",\"params\":\"p\"}",
	     JSONRPC_INVALID_REQUEST, 5},
	    {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST, -1},
	    {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST, -1},
	    {"{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST, -1},
	    {"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST, -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct jsonrpc_msg m = parse(cases[i].line);
		if (m.kind != JSONRPC_INVALID || m.code != cases[i].code)
			TEST_FAIL_("%s: kind %d code %d, expected code %d", cases[i].line, m.kind,
				   m.code, cases[i].code);
		ASSERT(m.message && m.message[0]);
		if (cases[i].id < 0)
			ASSERT(m.id == NULL);
		else
			ASSERT_EQ(json_integer_value(m.id), cases[i].id);
		/* the reply it gets is a valid response */
		size_t len;
		char *line = jsonrpc_dump(jsonrpc_error(m.id, m.code, m.message, NULL), &len);
		struct jsonrpc_msg r;
		ASSERT_EQ(jsonrpc_parse(line, len - 1, &r), 0);
		ASSERT_EQ(r.kind, JSONRPC_RESPONSE);
		ASSERT_EQ(json_integer_value(json_object_get(r.error, "code")), cases[i].code);
		jsonrpc_msg_clear(&r);
		free(line);
		jsonrpc_msg_clear(&m);
	}
}

static void test_builders(void)
{
	json_t *id = json_string("q");
	size_t len;
	char *line = jsonrpc_dump(jsonrpc_result(id, json_pack("{s:s}", "t", "a\nb\x01")), &len);
	ASSERT_STR_EQ(line,
		      "{\"jsonrpc\":\"2.0\",\"id\":\"q\",\"result\":{\"t\":\"a\\nb\\u0001\"}}\n");
	ASSERT_EQ(len, strlen(line));
	ASSERT_EQ(memchr(line, '\n', len - 1), NULL);
	free(line);
	line = jsonrpc_dump(jsonrpc_error(NULL, -32022, "Unsupported protocol version",
					  json_pack("{s:s}", "requested", "2026-07-28")),
			    &len);
	ASSERT_STR_EQ(
	    line, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32022,\"message\":"
		  "\"Unsupported protocol version\",\"data\":{\"requested\":\"2026-07-28\"}}}\n");
	free(line);
	line = jsonrpc_dump(jsonrpc_notification("notifications/resources/updated",
						 json_pack("{s:s}", "uri", "bridge://status")),
			    &len);
	ASSERT_STR_EQ(line, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/updated\","
			    "\"params\":{\"uri\":\"bridge://status\"}}\n");
	free(line);
	/* the id is copied: the caller keeps its own */
	json_t *r = jsonrpc_result(id, json_object());
	json_decref(id);
	ASSERT_STR_EQ(json_string_value(json_object_get(r, "id")), "q");
	json_decref(r);
	/* NULL in, NULL out; nothing leaks */
	ASSERT(jsonrpc_result(NULL, NULL) == NULL);
	ASSERT(jsonrpc_dump(NULL, &len) == NULL);
	ASSERT(jsonrpc_valid_id(NULL) == 0);
}

int main(void)
{
	RUN(test_request_and_notification);
	RUN(test_responses);
	RUN(test_invalid);
	RUN(test_builders);
	return 0;
}
