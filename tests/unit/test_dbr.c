/* Unit tests for proto/dbr: every message type formats to the exact wire
 * form and round-trips; every rejection class is refused with a precise
 * reason; the seed's own lines parse. */
#include "proto/dbr.h"
#include "core/util.h"
#include "test.h"

#include <errno.h>

static bool arrays_equal(const json_t *a, const json_t *b)
{
	json_t *empty = json_array();
	bool eq = json_equal(a ? a : empty, b ? b : empty);
	json_decref(empty);
	return eq;
}

static void assert_msg_eq(const struct dbr_msg *a, const struct dbr_msg *b)
{
	ASSERT_EQ(a->type, b->type);
	ASSERT_EQ(a->version, b->version);
	ASSERT_EQ(a->success, b->success);
	ASSERT_EQ(a->port, b->port);
	ASSERT_EQ(a->host_port, b->host_port);
	ASSERT_EQ(a->pid, b->pid);
	ASSERT_STR_EQ(a->container_id, b->container_id);
	ASSERT_STR_EQ(a->hostname, b->hostname);
	ASSERT_STR_EQ(a->auth_token, b->auth_token);
	ASSERT_STR_EQ(a->conn_id, b->conn_id);
	ASSERT_STR_EQ(a->socket_id, b->socket_id);
	ASSERT_STR_EQ(a->protocol, b->protocol);
	ASSERT_STR_EQ(a->process_name, b->process_name);
	ASSERT_STR_EQ(a->url, b->url);
	ASSERT_STR_EQ(a->host_path, b->host_path);
	ASSERT_STR_EQ(a->container_path, b->container_path);
	ASSERT_STR_EQ(a->error, b->error);
	ASSERT(arrays_equal(a->forwards, b->forwards));
	ASSERT(arrays_equal(a->socket_forwards, b->socket_forwards));
}

/* Format m, compare with the expected line (without "\n"), parse it back,
 * compare, and format again to the same bytes. */
static void roundtrip(const struct dbr_msg *m, const char *expect)
{
	size_t len = 0;
	char *s = dbr_format(m, &len);
	if (!s)
		TEST_FAIL_("dbr_format(%s) failed", dbr_type_name(m->type));
	ASSERT_EQ(len, strlen(s));
	ASSERT_EQ(s[len - 1], '\n');
	if (expect) {
		char *want = strdup_printf("%s\n", expect);
		ASSERT_STR_EQ(s, want);
		free(want);
	}
	struct dbr_msg back;
	char err[256] = "unset";
	int r = dbr_parse(s, len - 1, &back, err, sizeof err);
	if (r != 0)
		TEST_FAIL_("parse(format(%s)): %s", s, err);
	ASSERT_STR_EQ(err, "");
	assert_msg_eq(m, &back);
	size_t len2 = 0;
	char *s2 = dbr_format(&back, &len2);
	ASSERT(s2);
	ASSERT_STR_EQ(s, s2);
	free(s);
	free(s2);
	dbr_msg_clear(&back);
}

static void test_roundtrip_all_types(void)
{
	struct dbr_msg m;
	bool seen[DBR_TYPE_COUNT] = {0};
#define SEEN(t) seen[t] = true

	dbr_msg_init(&m, DBR_REGISTER);
	SEEN(DBR_REGISTER);
	strcpy(m.container_id, "abc123def456");
	strcpy(m.hostname, "dev-box.local_1");
	strcpy(m.auth_token, "0123456789abcdef");
	roundtrip(&m, "{\"type\":\"Register\",\"container_id\":\"abc123def456\","
		      "\"hostname\":\"dev-box.local_1\",\"auth_token\":\"0123456789abcdef\"}");
	m.version = DBR_PROTOCOL_VERSION;
	roundtrip(&m, "{\"type\":\"Register\",\"container_id\":\"abc123def456\","
		      "\"hostname\":\"dev-box.local_1\",\"auth_token\":\"0123456789abcdef\","
		      "\"version\":2}");
	m.auth_token[0] = '\0'; /* --no-auth: an empty token is still a token */
	roundtrip(&m, NULL);

	dbr_msg_init(&m, DBR_REGISTER_ACK);
	SEEN(DBR_REGISTER_ACK);
	m.success = true;
	roundtrip(&m, "{\"type\":\"RegisterAck\",\"success\":true}");
	m.version = 2;
	roundtrip(&m, "{\"type\":\"RegisterAck\",\"success\":true,\"version\":2}");
	m.success = false;
	strcpy(m.error, "unsupported protocol version 7");
	roundtrip(&m, "{\"type\":\"RegisterAck\",\"success\":false,\"version\":2,"
		      "\"error\":\"unsupported protocol version 7\"}");

	dbr_msg_init(&m, DBR_FORWARD);
	SEEN(DBR_FORWARD);
	m.port = 8080;
	roundtrip(&m, "{\"type\":\"Forward\",\"port\":8080,\"protocol\":\"Tcp\","
		      "\"process_name\":null,\"pid\":null}");
	strcpy(m.process_name, "node \"server\" \xc3\xa9");
	m.pid = 4242;
	roundtrip(&m, "{\"type\":\"Forward\",\"port\":8080,\"protocol\":\"Tcp\","
		      "\"process_name\":\"node \\\"server\\\" \xc3\xa9\",\"pid\":4242}");
	m.port = 65535;
	m.pid = 0;
	roundtrip(&m, NULL);

	dbr_msg_init(&m, DBR_FORWARD_ACK);
	SEEN(DBR_FORWARD_ACK);
	m.port = 8080;
	m.success = true;
	m.host_port = 8081;
	roundtrip(&m,
		  "{\"type\":\"ForwardAck\",\"port\":8080,\"success\":true,\"host_port\":8081}");
	m.success = false;
	m.host_port = 0;
	roundtrip(&m, "{\"type\":\"ForwardAck\",\"port\":8080,\"success\":false,\"host_port\":0}");

	dbr_msg_init(&m, DBR_UNFORWARD);
	SEEN(DBR_UNFORWARD);
	m.port = 1;
	roundtrip(&m, "{\"type\":\"Unforward\",\"port\":1}");

	dbr_msg_init(&m, DBR_CONNECT_REQUEST);
	SEEN(DBR_CONNECT_REQUEST);
	m.port = 3000;
	strcpy(m.conn_id, "6f1c2a9e-3b4d-4c5e-8f70-1a2b3c4d5e6f");
	roundtrip(&m, "{\"type\":\"ConnectRequest\",\"port\":3000,"
		      "\"conn_id\":\"6f1c2a9e-3b4d-4c5e-8f70-1a2b3c4d5e6f\"}");

	dbr_msg_init(&m, DBR_CONNECT_READY);
	SEEN(DBR_CONNECT_READY);
	strcpy(m.conn_id, "c-1");
	roundtrip(&m, "{\"type\":\"ConnectReady\",\"conn_id\":\"c-1\"}");

	dbr_msg_init(&m, DBR_CONNECT_FAILED);
	SEEN(DBR_CONNECT_FAILED);
	strcpy(m.conn_id, "c-1");
	strcpy(m.error, "connection refused\n(line two)");
	roundtrip(&m, "{\"type\":\"ConnectFailed\",\"conn_id\":\"c-1\","
		      "\"error\":\"connection refused\\n(line two)\"}");
	m.error[0] = '\0'; /* required, so written even when empty */
	roundtrip(&m, "{\"type\":\"ConnectFailed\",\"conn_id\":\"c-1\",\"error\":\"\"}");

	dbr_msg_init(&m, DBR_SOCKET_FORWARD);
	SEEN(DBR_SOCKET_FORWARD);
	strcpy(m.socket_id, "ssh-agent.0_x");
	strcpy(m.host_path, "/tmp/ssh-XXXX/agent.123");
	strcpy(m.container_path, "/tmp/dbr-ssh-agent.sock");
	roundtrip(&m, "{\"type\":\"SocketForward\",\"socket_id\":\"ssh-agent.0_x\","
		      "\"host_path\":\"/tmp/ssh-XXXX/agent.123\","
		      "\"container_path\":\"/tmp/dbr-ssh-agent.sock\"}");

	dbr_msg_init(&m, DBR_SOCKET_UNFORWARD);
	SEEN(DBR_SOCKET_UNFORWARD);
	strcpy(m.socket_id, "s1");
	roundtrip(&m, "{\"type\":\"SocketUnforward\",\"socket_id\":\"s1\"}");

	dbr_msg_init(&m, DBR_SOCKET_CONNECT_REQUEST);
	SEEN(DBR_SOCKET_CONNECT_REQUEST);
	strcpy(m.socket_id, "s1");
	strcpy(m.conn_id, "c2");
	roundtrip(&m,
		  "{\"type\":\"SocketConnectRequest\",\"socket_id\":\"s1\",\"conn_id\":\"c2\"}");

	dbr_msg_init(&m, DBR_OPEN_URL);
	SEEN(DBR_OPEN_URL);
	strcpy(m.url, "http://localhost:8080/callback?code=x&state=y");
	roundtrip(
	    &m, "{\"type\":\"OpenUrl\",\"url\":\"http://localhost:8080/callback?code=x&state=y\"}");
	strcpy(m.url, "javascript:alert(1)"); /* the scheme is the browser module's business */
	roundtrip(&m, NULL);

	dbr_msg_init(&m, DBR_OPEN_URL_ACK);
	SEEN(DBR_OPEN_URL_ACK);
	m.success = false;
	roundtrip(&m, "{\"type\":\"OpenUrlAck\",\"success\":false}");

	dbr_msg_init(&m, DBR_PING);
	SEEN(DBR_PING);
	roundtrip(&m, "{\"type\":\"Ping\"}");
	dbr_msg_init(&m, DBR_PONG);
	SEEN(DBR_PONG);
	roundtrip(&m, "{\"type\":\"Pong\"}");

	dbr_msg_init(&m, DBR_LIST_REQUEST);
	SEEN(DBR_LIST_REQUEST);
	roundtrip(&m, "{\"type\":\"ListRequest\"}");
	strcpy(m.auth_token, "tok");
	roundtrip(&m, "{\"type\":\"ListRequest\",\"auth_token\":\"tok\"}");

	dbr_msg_init(&m, DBR_LIST_RESPONSE);
	SEEN(DBR_LIST_RESPONSE);
	roundtrip(&m, "{\"type\":\"ListResponse\",\"forwards\":[],\"socket_forwards\":[]}");
	m.forwards = json_pack("[{s:s, s:s, s:i, s:i, s:s, s:s, s:i, s:s},"
			       " {s:s, s:s, s:i, s:i, s:s, s:n, s:n, s:s}]",
			       "container_id", "c1", "hostname", "h1", "port", 8080, "host_port",
			       8081, "protocol", "Tcp", "process_name", "node", "pid", 12, "since",
			       "2026-03-12T14:23:01Z", "container_id", "c2", "hostname", "h2",
			       "port", 5432, "host_port", 5432, "protocol", "Tcp", "process_name",
			       "pid", "since", "2026-03-12T14:23:02Z");
	m.socket_forwards = json_pack("[{s:s, s:s, s:s}]", "socket_id", "s1", "host_path",
				      "/run/a.sock", "container_path", "/tmp/a.sock");
	ASSERT(m.forwards && m.socket_forwards);
	roundtrip(&m, NULL);
	dbr_msg_clear(&m);
	ASSERT(m.forwards == NULL);
	dbr_msg_clear(&m); /* twice is fine */
	dbr_msg_clear(NULL);

	for (int t = 0; t < DBR_TYPE_COUNT; t++)
		ASSERT(seen[t]);
#undef SEEN
}

static void test_type_names(void)
{
	for (int t = 0; t < DBR_TYPE_COUNT; t++) {
		const char *n = dbr_type_name((enum dbr_type)t);
		ASSERT(n && *n && strcmp(n, "?") != 0);
		enum dbr_type back;
		ASSERT_EQ(dbr_type_from_name(n, &back), 0);
		ASSERT_EQ(back, t);
	}
	ASSERT_STR_EQ(dbr_type_name(DBR_SOCKET_CONNECT_REQUEST), "SocketConnectRequest");
	ASSERT_STR_EQ(dbr_type_name(DBR_TYPE_COUNT), "?");
	ASSERT_STR_EQ(dbr_type_name((enum dbr_type) - 1), "?");
	enum dbr_type t;
	ASSERT_EQ(dbr_type_from_name("ping", &t), -EINVAL);
	ASSERT_EQ(dbr_type_from_name("", &t), -EINVAL);
}

static void test_ids(void)
{
	ASSERT(dbr_id_valid("a"));
	ASSERT(dbr_id_valid("A-z_0.9"));
	ASSERT(!dbr_id_valid(""));
	ASSERT(!dbr_id_valid(NULL));
	ASSERT(!dbr_id_valid("a b"));
	ASSERT(!dbr_id_valid("a/b"));
	ASSERT(!dbr_id_valid("caf\xc3\xa9"));
	char s[300];
	memset(s, 'a', 256);
	s[256] = '\0';
	ASSERT(dbr_id_valid(s));
	s[256] = 'a';
	s[257] = '\0';
	ASSERT(!dbr_id_valid(s));

	ASSERT(dbr_conn_id_valid("6f1c2a9e-3b4d-4c5e-8f70-1a2b3c4d5e6f"));
	ASSERT(!dbr_conn_id_valid("a_b"));
	ASSERT(!dbr_conn_id_valid("a.b"));
	ASSERT(!dbr_conn_id_valid(""));
	memset(s, 'a', 128);
	s[128] = '\0';
	ASSERT(dbr_conn_id_valid(s));
	ASSERT(dbr_socket_id_valid(s));
	s[128] = 'a';
	s[129] = '\0';
	ASSERT(!dbr_conn_id_valid(s));
	ASSERT(!dbr_socket_id_valid(s));
	ASSERT(dbr_socket_id_valid("a.b_c-d"));
	ASSERT(!dbr_socket_id_valid("a/b"));
}

/* The seed's own lines (no version, seed field order). */
static void test_seed_lines(void)
{
	struct dbr_msg m;
	char err[256];
	const char *reg = "{\"type\":\"Register\",\"container_id\":\"3f2a\",\"hostname\":\"3f2a\","
			  "\"auth_token\":\"aa\"}";
	ASSERT_EQ(dbr_parse(reg, strlen(reg), &m, err, sizeof err), 0);
	ASSERT_EQ(m.type, DBR_REGISTER);
	ASSERT_EQ(m.version, 0); /* absent: the seed's version 1 */
	ASSERT_STR_EQ(m.container_id, "3f2a");
	ASSERT_STR_EQ(m.auth_token, "aa");
	dbr_msg_clear(&m);

	/* any key order, whitespace around */
	const char *fwd = "  { \"pid\" : 17 , \"process_name\":\"python3\", \"protocol\":\"Tcp\","
			  "\"port\":8000, \"type\":\"Forward\" }  ";
	ASSERT_EQ(dbr_parse(fwd, strlen(fwd), &m, err, sizeof err), 0);
	ASSERT_EQ(m.type, DBR_FORWARD);
	ASSERT_EQ(m.port, 8000);
	ASSERT_EQ(m.pid, 17);
	ASSERT_STR_EQ(m.process_name, "python3");
	dbr_msg_clear(&m);

	/* optional process_name and pid absent */
	const char *fwd2 = "{\"type\":\"Forward\",\"port\":8000,\"protocol\":\"Tcp\"}";
	ASSERT_EQ(dbr_parse(fwd2, strlen(fwd2), &m, err, sizeof err), 0);
	ASSERT_EQ(m.pid, -1);
	ASSERT_STR_EQ(m.process_name, "");
	ASSERT_STR_EQ(m.protocol, "Tcp");
	dbr_msg_clear(&m);

	/* only len bytes are parsed: the rest of the buffer is not looked at */
	const char *two = "{\"type\":\"Ping\"}{\"type\":\"Pong\"}";
	ASSERT_EQ(dbr_parse(two, 15, &m, err, sizeof err), 0);
	ASSERT_EQ(m.type, DBR_PING);
	dbr_msg_clear(&m);

	const char *list = "{\"type\":\"ListResponse\",\"forwards\":[{\"container_id\":\"c\","
			   "\"hostname\":\"h\",\"port\":1,\"host_port\":2,\"protocol\":\"Tcp\","
			   "\"process_name\":null,\"pid\":null,\"since\":\"x\"}],"
			   "\"socket_forwards\":[]}";
	ASSERT_EQ(dbr_parse(list, strlen(list), &m, err, sizeof err), 0);
	ASSERT_EQ(json_array_size(m.forwards), 1);
	ASSERT_EQ(json_array_size(m.socket_forwards), 0);
	ASSERT_EQ(json_integer_value(json_object_get(json_array_get(m.forwards, 0), "host_port")),
		  2);
	dbr_msg_clear(&m);
}

/* `line` must be rejected with a reason containing `why`. */
static void reject_(int lineno, const char *line, size_t len, const char *why)
{
	struct dbr_msg m;
	memset(&m, 0xa5, sizeof m); /* garbage in: zeroed on failure */
	char err[256] = "";
	int r = dbr_parse(line, len, &m, err, sizeof err);
	if (r != -EINVAL) {
		fprintf(stderr, "line %d: %.*s\n", lineno, (int)(len > 300 ? 300 : len), line);
		TEST_FAIL_("expected -EINVAL, got %d", r);
	}
	if (!strstr(err, why)) {
		fprintf(stderr, "line %d: %.*s\n", lineno, (int)(len > 300 ? 300 : len), line);
		TEST_FAIL_("reason \"%s\" lacks \"%s\"", err, why);
	}
	ASSERT(m.forwards == NULL && m.socket_forwards == NULL);
	dbr_msg_clear(&m); /* safe after a failure */
}
#define REJECT(line, why) reject_(__LINE__, line, strlen(line), why)

static void test_reject_structure(void)
{
	REJECT("", "invalid JSON");
	REJECT("{", "invalid JSON");
	REJECT("not json", "invalid JSON");
	REJECT("{\"type\":\"Ping\"} x", "invalid JSON");
	REJECT("{\"type\":\"Ping\"}\n{\"type\":\"Ping\"}", "invalid JSON");
	REJECT("[]", "expected a JSON object");
	REJECT("[{\"type\":\"Ping\"}]", "expected a JSON object");
	REJECT("\"Ping\"", "invalid JSON");
	REJECT("42", "invalid JSON");
	REJECT("{}", "missing field 'type'");
	REJECT("{\"port\":1}", "missing field 'type'");
	REJECT("{\"type\":1}", "type: expected a string");
	REJECT("{\"type\":null}", "type: expected a string");
	REJECT("{\"type\":[\"Ping\"]}", "type: expected a string");
	REJECT("{\"type\":\"Foo\"}", "unknown type 'Foo'");
	REJECT("{\"type\":\"ping\"}", "unknown type 'ping'");
	REJECT("{\"type\":\"\"}", "unknown type ''");
	REJECT("{\"type\":\"Ping\\u0000\"}", "invalid JSON");
	REJECT("{\"type\":\"Ping\",\"type\":\"Pong\"}", "invalid JSON"); /* duplicate */
	REJECT("{\"type\":\"Forward\",\"port\":1,\"port\":2,\"protocol\":\"Tcp\"}", "duplicate");
	REJECT("{\"type\":\"Ping\",\"foo\":1}", "unknown field 'foo' in Ping");
	REJECT("{\"type\":\"Forward\",\"port\":1,\"protocol\":\"Tcp\",\"foo\":null}",
	       "unknown field 'foo' in Forward");
	REJECT("{\"type\":\"Forward\",\"port\":1,\"protocol\":\"Tcp\",\"Port\":1}",
	       "unknown field 'Port' in Forward");
	/* a field of another type is unknown here */
	REJECT("{\"type\":\"Unforward\",\"port\":1,\"conn_id\":\"x\"}",
	       "unknown field 'conn_id' in Unforward");
	/* a peer-chosen name is shortened and made printable in the reason */
	REJECT("{\"type\":\"Ping\",\"a\\u001b[31mbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\":1}",
	       "unknown field 'a?[31mbbbbbbbbbbbbbbbbbbbbbbbbbb...' in Ping");
	/* invalid UTF-8 */
	REJECT("{\"type\":\"OpenUrl\",\"url\":\"http://\xff\xfe\"}", "invalid JSON");
	REJECT("{\"type\":\"Ping\xc3\"}", "invalid JSON");
	/* raw NUL inside the line */
	static const char nul[] = "{\"type\":\"Ping\"\0}";
	reject_(__LINE__, nul, sizeof nul - 1, "invalid JSON");
	/* NUL escaped in a field */
	REJECT("{\"type\":\"ConnectReady\",\"conn_id\":\"a\\u0000b\"}", "invalid JSON");
}

static void test_reject_fields(void)
{
	/* missing required fields */
	REJECT("{\"type\":\"Forward\",\"port\":1}", "missing field 'protocol' in Forward");
	REJECT("{\"type\":\"Forward\",\"protocol\":\"Tcp\"}", "missing field 'port' in Forward");
	REJECT("{\"type\":\"RegisterAck\"}", "missing field 'success' in RegisterAck");
	REJECT("{\"type\":\"ForwardAck\",\"port\":1,\"success\":true}",
	       "missing field 'host_port' in ForwardAck");
	REJECT("{\"type\":\"ConnectFailed\",\"conn_id\":\"a\"}",
	       "missing field 'error' in ConnectFailed");
	REJECT("{\"type\":\"ListResponse\",\"forwards\":[]}",
	       "missing field 'socket_forwards' in ListResponse");

	/* ports */
	REJECT("{\"type\":\"Unforward\",\"port\":65536}", "port: expected an integer 1-65535");
	REJECT("{\"type\":\"Unforward\",\"port\":0}", "port: expected an integer 1-65535");
	REJECT("{\"type\":\"Unforward\",\"port\":-1}", "port: expected an integer 1-65535");
	REJECT("{\"type\":\"Unforward\",\"port\":80.0}", "port: expected an integer 1-65535");
	REJECT("{\"type\":\"Unforward\",\"port\":8e1}", "port: expected an integer 1-65535");
	REJECT("{\"type\":\"Unforward\",\"port\":\"80\"}", "port: expected an integer 1-65535");
	REJECT("{\"type\":\"Unforward\",\"port\":null}", "port: expected an integer 1-65535");
	REJECT("{\"type\":\"Unforward\",\"port\":true}", "port: expected an integer 1-65535");
	REJECT("{\"type\":\"Unforward\",\"port\":99999999999999999999999}", "invalid JSON");
	REJECT("{\"type\":\"Unforward\",\"port\":4294967376}", "port: expected");
	REJECT("{\"type\":\"ConnectRequest\",\"port\":0,\"conn_id\":\"a\"}",
	       "port: expected an integer 1-65535");
	REJECT("{\"type\":\"Forward\",\"port\":0,\"protocol\":\"Tcp\"}",
	       "port: expected an integer 1-65535");
	REJECT("{\"type\":\"ForwardAck\",\"port\":1,\"success\":true,\"host_port\":65536}",
	       "host_port: expected an integer 0-65535");
	REJECT("{\"type\":\"ForwardAck\",\"port\":1,\"success\":true,\"host_port\":-1}",
	       "host_port: expected an integer 0-65535");

	/* booleans must be booleans */
	REJECT("{\"type\":\"OpenUrlAck\",\"success\":1}", "success: expected a boolean");
	REJECT("{\"type\":\"OpenUrlAck\",\"success\":\"true\"}", "success: expected a boolean");
	REJECT("{\"type\":\"OpenUrlAck\",\"success\":null}", "success: expected a boolean");

	/* version */
	REJECT("{\"type\":\"RegisterAck\",\"success\":true,\"version\":0}", "version: expected");
	REJECT("{\"type\":\"RegisterAck\",\"success\":true,\"version\":-2}", "version: expected");
	REJECT("{\"type\":\"RegisterAck\",\"success\":true,\"version\":\"2\"}",
	       "version: expected");
	REJECT("{\"type\":\"RegisterAck\",\"success\":true,\"version\":2.5}", "version: expected");
	REJECT("{\"type\":\"RegisterAck\",\"success\":true,\"version\":null}", "version: expected");
	REJECT("{\"type\":\"RegisterAck\",\"success\":true,\"version\":2147483648}",
	       "version: expected");

	/* ids */
	REJECT("{\"type\":\"Register\",\"container_id\":\"a b\",\"hostname\":\"h\","
	       "\"auth_token\":\"\"}",
	       "container_id: expected 1-256 characters of [A-Za-z0-9._-]");
	REJECT("{\"type\":\"Register\",\"container_id\":\"\",\"hostname\":\"h\","
	       "\"auth_token\":\"\"}",
	       "container_id: expected");
	REJECT("{\"type\":\"Register\",\"container_id\":\"a\",\"hostname\":\"../x\","
	       "\"auth_token\":\"\"}",
	       "hostname: expected");
	REJECT("{\"type\":\"Register\",\"container_id\":1,\"hostname\":\"h\","
	       "\"auth_token\":\"\"}",
	       "container_id: expected");
	REJECT("{\"type\":\"ConnectReady\",\"conn_id\":\"a_b\"}",
	       "conn_id: expected 1-128 characters of [A-Za-z0-9-]");
	REJECT("{\"type\":\"ConnectReady\",\"conn_id\":\"\"}", "conn_id: expected");
	REJECT("{\"type\":\"ConnectReady\",\"conn_id\":7}", "conn_id: expected");
	REJECT("{\"type\":\"SocketUnforward\",\"socket_id\":\"a/b\"}",
	       "socket_id: expected 1-128 characters of [A-Za-z0-9._-]");
	REJECT("{\"type\":\"SocketUnforward\",\"socket_id\":\"\"}", "socket_id: expected");

	/* protocol */
	REJECT("{\"type\":\"Forward\",\"port\":1,\"protocol\":\"Udp\"}",
	       "protocol: expected \"Tcp\"");
	REJECT("{\"type\":\"Forward\",\"port\":1,\"protocol\":\"tcp\"}", "protocol: expected");
	REJECT("{\"type\":\"Forward\",\"port\":1,\"protocol\":null}", "protocol: expected");

	/* process_name / pid */
	REJECT("{\"type\":\"Forward\",\"port\":1,\"protocol\":\"Tcp\",\"process_name\":5}",
	       "process_name: expected a string of at most 256 bytes or null");
	REJECT("{\"type\":\"Forward\",\"port\":1,\"protocol\":\"Tcp\",\"pid\":-5}",
	       "pid: expected an integer 0-2147483647 or null");
	REJECT("{\"type\":\"Forward\",\"port\":1,\"protocol\":\"Tcp\",\"pid\":2147483648}",
	       "pid: expected");
	REJECT("{\"type\":\"Forward\",\"port\":1,\"protocol\":\"Tcp\",\"pid\":1.5}",
	       "pid: expected");
	REJECT("{\"type\":\"Forward\",\"port\":1,\"protocol\":\"Tcp\",\"pid\":\"1\"}",
	       "pid: expected");

	/* paths */
	REJECT("{\"type\":\"SocketForward\",\"socket_id\":\"s\",\"host_path\":\"rel/a\","
	       "\"container_path\":\"/a\"}",
	       "host_path: expected an absolute path of at most 108 bytes");
	REJECT("{\"type\":\"SocketForward\",\"socket_id\":\"s\",\"host_path\":\"/a\","
	       "\"container_path\":\"\"}",
	       "container_path: expected");

	/* nested junk where a scalar belongs */
	REJECT("{\"type\":\"OpenUrl\",\"url\":{\"a\":[1,2,{\"b\":null}]}}", "url: expected");
	REJECT("{\"type\":\"OpenUrl\",\"url\":[\"http://x\"]}", "url: expected");
}

static void test_reject_sizes(void)
{
	/* exact limits accepted, one more rejected, for every capped string */
	struct {
		const char *fmt; /* %s is the value */
		size_t max;
		char fill;
		const char *prefix; /* value starts with this */
		const char *why;
	} cases[] = {
	    {"{\"type\":\"Register\",\"container_id\":\"%s\",\"hostname\":\"h\",\"auth_token\":"
	     "\"\"}",
	     DBR_ID_MAX, 'a', "", "container_id: expected"},
	    {"{\"type\":\"Register\",\"container_id\":\"c\",\"hostname\":\"%s\",\"auth_token\":"
	     "\"\"}",
	     DBR_ID_MAX, 'a', "", "hostname: expected"},
	    {"{\"type\":\"Register\",\"container_id\":\"c\",\"hostname\":\"h\",\"auth_token\":\"%"
	     "s\"}",
	     DBR_TOKEN_MAX, 'f', "", "auth_token: expected a string of at most 256 bytes"},
	    {"{\"type\":\"ListRequest\",\"auth_token\":\"%s\"}", DBR_TOKEN_MAX, 'f', "",
	     "auth_token: expected"},
	    {"{\"type\":\"ConnectReady\",\"conn_id\":\"%s\"}", DBR_CONN_ID_MAX, 'a', "",
	     "conn_id: expected"},
	    {"{\"type\":\"SocketUnforward\",\"socket_id\":\"%s\"}", DBR_SOCKET_ID_MAX, 'a', "",
	     "socket_id: expected"},
	    {"{\"type\":\"OpenUrl\",\"url\":\"%s\"}", DBR_URL_MAX, 'a', "http://x/",
	     "url: expected a string of at most 2048 bytes"},
	    {"{\"type\":\"SocketForward\",\"socket_id\":\"s\",\"host_path\":\"%s\","
	     "\"container_path\":\"/c\"}",
	     DBR_PATH_MAX, 'p', "/", "host_path: expected"},
	    {"{\"type\":\"SocketForward\",\"socket_id\":\"s\",\"host_path\":\"/h\","
	     "\"container_path\":\"%s\"}",
	     DBR_PATH_MAX, 'p', "/", "container_path: expected"},
	    {"{\"type\":\"ConnectFailed\",\"conn_id\":\"c\",\"error\":\"%s\"}", DBR_ERROR_MAX, 'e',
	     "", "error: expected a string of at most 1024 bytes"},
	    {"{\"type\":\"RegisterAck\",\"success\":false,\"error\":\"%s\"}", DBR_ERROR_MAX, 'e',
	     "", "error: expected"},
	    {"{\"type\":\"Forward\",\"port\":1,\"protocol\":\"Tcp\",\"process_name\":\"%s\","
	     "\"pid\":null}",
	     DBR_PROCESS_MAX, 'n', "", "process_name: expected"},
	};
	char *val = malloc(DBR_URL_MAX + 2);
	ASSERT(val);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		for (size_t extra = 0; extra < 2; extra++) {
			size_t n = cases[i].max + extra;
			size_t pl = strlen(cases[i].prefix);
			memset(val, cases[i].fill, n);
			memcpy(val, cases[i].prefix, pl);
			val[n] = '\0';
			char *line = strdup_printf(cases[i].fmt, val);
			struct dbr_msg m;
			char err[256];
			int r = dbr_parse(line, strlen(line), &m, err, sizeof err);
			if (extra == 0) {
				if (r != 0)
					TEST_FAIL_("case %zu at the limit: %s", i, err);
				/* and it formats back to the same line */
				size_t fl;
				char *f = dbr_format(&m, &fl);
				ASSERT(f);
				ASSERT_EQ(fl, strlen(line) + 1);
				ASSERT(memcmp(f, line, fl - 1) == 0);
				free(f);
				dbr_msg_clear(&m);
			} else {
				ASSERT_EQ(r, -EINVAL);
				ASSERT_STR_CONTAINS(err, cases[i].why);
			}
			free(line);
		}
	}
	free(val);
	/* multi-byte UTF-8 counts in bytes: 129 two-byte characters are 258 */
	char pn[600] = "";
	for (int i = 0; i < 129; i++)
		strcat(pn, "\xc3\xa9");
	char *line = strdup_printf(
	    "{\"type\":\"Forward\",\"port\":1,\"protocol\":\"Tcp\",\"process_name\":\"%s\"}", pn);
	REJECT(line, "process_name: expected");
	free(line);
}

static void test_reject_list_elements(void)
{
	const char *fi = "\"container_id\":\"c\",\"hostname\":\"h\",\"port\":1,\"host_port\":2,"
			 "\"protocol\":\"Tcp\",\"process_name\":null,\"pid\":null,\"since\":\"t\"";
	char *l;
#define LIST(fw, sf)                                                                               \
	strdup_printf("{\"type\":\"ListResponse\",\"forwards\":%s,\"socket_forwards\":%s}", fw, sf)
	l = LIST("{}", "[]");
	REJECT(l, "forwards: expected an array of objects");
	free(l);
	l = LIST("[]", "null");
	REJECT(l, "socket_forwards: expected an array of objects");
	free(l);
	l = LIST("[1]", "[]");
	REJECT(l, "forwards[0]: expected an object");
	free(l);
	char *ok = strdup_printf("[{%s},{%s}]", fi, fi);
	char *bad = strdup_printf("[{%s},{%s,\"extra\":1}]", fi, fi);
	l = LIST(bad, "[]");
	REJECT(l, "unknown field 'extra' in forwards[1]");
	free(l);
	free(bad);
	bad = strdup_printf("[{%s},{\"container_id\":\"c\"}]", fi);
	l = LIST(bad, "[]");
	REJECT(l, "missing field 'hostname' in forwards[1]");
	free(l);
	free(bad);
	bad = strdup_printf("[{%s,\"type\":\"Forward\"}]", fi);
	l = LIST(bad, "[]");
	REJECT(l, "unknown field 'type' in forwards[0]");
	free(l);
	free(bad);
	const char *bads[][2] = {
	    {"\"port\":1,", "\"port\":70000,"},
	    {"\"host_port\":2,", "\"host_port\":\"2\","},
	    {"\"protocol\":\"Tcp\"", "\"protocol\":\"Udp\""},
	    {"\"pid\":null", "\"pid\":-3"},
	    {"\"process_name\":null", "\"process_name\":[]"},
	    {"\"since\":\"t\"", "\"since\":5"},
	    {"\"container_id\":\"c\"", "\"container_id\":\"c c\""},
	};
	const char *whys[] = {
	    "forwards[0].port: expected",	  "forwards[0].host_port: expected",
	    "forwards[0].protocol: expected",	  "forwards[0].pid: expected",
	    "forwards[0].process_name: expected", "forwards[0].since: expected",
	    "forwards[0].container_id: expected"};
	for (size_t i = 0; i < ARRAY_SIZE(bads); i++) {
		char *el = strdup_printf("{%s}", fi);
		char *at = strstr(el, bads[i][0]);
		ASSERT(at);
		*at = '\0';
		char *el2 = strdup_printf("[%s%s%s]", el, bads[i][1], at + strlen(bads[i][0]));
		l = LIST(el2, "[]");
		REJECT(l, whys[i]);
		free(l);
		free(el2);
		free(el);
	}
	/* socket_forwards elements */
	l = LIST(ok, "[{\"socket_id\":\"s\",\"host_path\":\"/a\",\"container_path\":\"b\"}]");
	REJECT(l, "socket_forwards[0].container_path: expected");
	free(l);
	l = LIST(ok, "[{\"socket_id\":\"s\",\"host_path\":\"/a\"}]");
	REJECT(l, "missing field 'container_path' in socket_forwards[0]");
	free(l);
	/* and the good one parses */
	l = LIST(ok, "[{\"socket_id\":\"s\",\"host_path\":\"/a\",\"container_path\":\"/b\"}]");
	struct dbr_msg m;
	char err[256];
	ASSERT_EQ(dbr_parse(l, strlen(l), &m, err, sizeof err), 0);
	ASSERT_EQ(json_array_size(m.forwards), 2);
	ASSERT_EQ(json_array_size(m.socket_forwards), 1);
	dbr_msg_clear(&m);
	free(l);
	free(ok);
#undef LIST
}

/* dbr_format refuses what dbr_parse would refuse. */
static void test_format_refuses(void)
{
	struct dbr_msg m;
	dbr_msg_init(&m, DBR_REGISTER);
	strcpy(m.container_id, "bad id");
	strcpy(m.hostname, "h");
	errno = 0;
	ASSERT(dbr_format(&m, NULL) == NULL);
	ASSERT_EQ(errno, EINVAL);

	dbr_msg_init(&m, DBR_FORWARD);
	m.port = 0; /* Forward needs 1-65535 */
	ASSERT(dbr_format(&m, NULL) == NULL);
	m.port = 80;
	strcpy(m.protocol, "Udp");
	ASSERT(dbr_format(&m, NULL) == NULL);

	dbr_msg_init(&m, DBR_CONNECT_READY); /* empty conn_id */
	ASSERT(dbr_format(&m, NULL) == NULL);

	dbr_msg_init(&m, DBR_OPEN_URL);
	strcpy(m.url, "http://\xff");
	ASSERT(dbr_format(&m, NULL) == NULL); /* not UTF-8 */
	memset(m.url, 'a', sizeof m.url);     /* unterminated */
	ASSERT(dbr_format(&m, NULL) == NULL);

	dbr_msg_init(&m, DBR_REGISTER_ACK);
	m.version = -1;
	ASSERT(dbr_format(&m, NULL) == NULL);

	dbr_msg_init(&m, DBR_FORWARD);
	m.port = 80;
	m.pid = -7;
	ASSERT(dbr_format(&m, NULL) == NULL);

	dbr_msg_init(&m, DBR_LIST_RESPONSE);
	m.forwards = json_pack("[{s:i}]", "port", 1);
	ASSERT(dbr_format(&m, NULL) == NULL);
	dbr_msg_clear(&m);

	dbr_msg_init(&m, DBR_PING);
	m.type = DBR_TYPE_COUNT;
	ASSERT(dbr_format(&m, NULL) == NULL);
}

/* A Register without a token is an authentication failure for the host to
 * answer and audit, so it parses (token ""); ours always carries the field,
 * for seed hosts that require it. */
static void test_register_token_optional(void)
{
	struct dbr_msg m;
	char err[256];
	const char *l = "{\"type\":\"Register\",\"container_id\":\"a\",\"hostname\":\"b\"}";
	ASSERT_EQ(dbr_parse(l, strlen(l), &m, err, sizeof err), 0);
	ASSERT_STR_EQ(m.auth_token, "");
	size_t n;
	char *out = dbr_format(&m, &n);
	ASSERT(out != NULL);
	ASSERT(strstr(out, "\"auth_token\":\"\"") != NULL);
	ASSERT(strstr(out, "instance") == NULL); /* empty optional fields stay out */
	free(out);
	dbr_msg_clear(&m);
	const char *v2 = "{\"type\":\"Register\",\"container_id\":\"a\",\"hostname\":\"b\","
			 "\"auth_token\":\"t\",\"version\":2,\"instance\":\"0f-1\"}";
	ASSERT_EQ(dbr_parse(v2, strlen(v2), &m, err, sizeof err), 0);
	ASSERT_STR_EQ(m.instance, "0f-1");
	dbr_msg_clear(&m);
	REJECT("{\"type\":\"Register\",\"container_id\":\"a\",\"hostname\":\"b\","
	       "\"auth_token\":\"t\",\"instance\":\"a b\"}",
	       "instance: expected 1-128 characters");
}

static void sniff_(int lineno, const char *line, int type, int port, bool has_version)
{
	struct dbr_sniff sn;
	int r = dbr_sniff(line, strlen(line), &sn);
	if (type < 0) {
		if (r != -EINVAL)
			TEST_FAIL_("line %d: expected no type, got %d", lineno, (int)sn.type);
		return;
	}
	if (r != 0)
		TEST_FAIL_("line %d: no type sniffed in %s", lineno, line);
	if ((int)sn.type != type || sn.port != port || sn.has_version != has_version)
		TEST_FAIL_("line %d: got type %d port %d version %d", lineno, (int)sn.type, sn.port,
			   (int)sn.has_version);
}
#define SNIFF(line, type, port, v) sniff_(__LINE__, line, type, port, v)

static void test_sniff(void)
{
	SNIFF("{\"type\":\"Forward\",\"port\":0,\"protocol\":\"Tcp\"}", DBR_FORWARD, 0, false);
	SNIFF("{\"port\": 70000, \"type\" : \"Forward\"}", DBR_FORWARD, -1, false);
	SNIFF("{\"type\":\"Forward\",\"port\":\"80\"}", DBR_FORWARD, -1, false);
	SNIFF("{\"type\":\"Register\",\"version\":2,\"container_id\":1}", DBR_REGISTER, -1, true);
	/* not even JSON (invalid UTF-8): the bytes still tell */
	SNIFF("{\"type\":\"OpenUrl\",\"url\":\"http://\xff\xfe\"}", DBR_OPEN_URL, -1, false);
	SNIFF("{\"type\":\"Nope\"}", -1, 0, false);
	SNIFF("{\"type\":1}", -1, 0, false);
	SNIFF("{\"type\":\"Forward", -1, 0, false);
	SNIFF("{\"typo\":\"Forward\"}", -1, 0, false);
	SNIFF("", -1, 0, false);
	SNIFF("\"type\"", -1, 0, false);
	SNIFF("{\"type\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}", -1, 0, false);
}

static void test_err_optional(void)
{
	/* err may be NULL; a tiny buffer truncates */
	struct dbr_msg m;
	ASSERT_EQ(dbr_parse("{}", 2, &m, NULL, 0), -EINVAL);
	char err[8];
	ASSERT_EQ(dbr_parse("{\"type\":\"Nope\"}", 15, &m, err, sizeof err), -EINVAL);
	ASSERT_STR_EQ(err, "unknown");
	ASSERT_EQ(dbr_parse("{\"type\":\"Ping\"}", 15, &m, NULL, 0), 0);
	ASSERT_EQ(m.type, DBR_PING);
}

int main(void)
{
	RUN(test_roundtrip_all_types);
	RUN(test_type_names);
	RUN(test_ids);
	RUN(test_seed_lines);
	RUN(test_reject_structure);
	RUN(test_reject_fields);
	RUN(test_reject_sizes);
	RUN(test_reject_list_elements);
	RUN(test_format_refuses);
	RUN(test_err_optional);
	RUN(test_register_token_optional);
	RUN(test_sniff);
	return 0;
}
