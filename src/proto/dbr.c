/* dbr.c - see dbr.h.
 *
 * Each message type is a table of fields (name = struct member, kind,
 * required or not).  One decoder walks the table for parsing; one encoder
 * walks it for formatting, in table order after "type".  dbr_format runs
 * its own output back through the decoder, so we never send what we would
 * refuse to receive.
 *
 * | type                 | fields                                            |
 * |----------------------|---------------------------------------------------|
 * | Register             | container_id, hostname, auth_token?, version?,    |
 * |                      | instance?                                         |
 * | RegisterAck          | success, version?, error?, name?                  |
 * | Forward              | port, protocol, process_name?, pid?               |
 * | ForwardAck           | port, success, host_port, remapped?, error?       |
 * | Unforward            | port                                              |
 * | ConnectRequest       | port, conn_id                                     |
 * | ConnectReady         | conn_id                                           |
 * | ConnectFailed        | conn_id, error                                    |
 * | SocketForward        | socket_id, host_path, container_path              |
 * | SocketUnforward      | socket_id                                         |
 * | SocketConnectRequest | socket_id, conn_id                                |
 * | OpenUrl              | url, auth_token?                                  |
 * | OpenUrlAck           | success, error?                                   |
 * | Ping, Pong           | -                                                 |
 * | ListRequest          | auth_token?                                       |
 * | ListResponse         | forwards [ForwardInfo], socket_forwards [...]     |
 *
 * ForwardInfo: container_id, hostname, port, host_port, protocol,
 * process_name (string or null), pid (int or null), since.
 * socket_forwards[]: socket_id, host_path, container_path. */
#include "proto/dbr.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DBR_SINCE_MAX 64 /* ForwardInfo.since: an ISO 8601 timestamp */

enum kind {
	K_PORT,	       /* 0..65535 */
	K_PORT1,       /* 1..65535 */
	K_BOOL,	       /* JSON boolean */
	K_VERSION,     /* integer >= 1; 0 in the struct = absent */
	K_ID,	       /* [A-Za-z0-9._-]{1,256} */
	K_TOKEN,       /* string <= 256 bytes */
	K_CONN_ID,     /* [A-Za-z0-9-]{1,128} */
	K_SOCKET_ID,   /* [A-Za-z0-9._-]{1,128} */
	K_PROTOCOL,    /* "Tcp" */
	K_PROCESS,     /* string <= 256 bytes or null; "" in the struct = null */
	K_PID,	       /* 0..INT32_MAX or null; -1 in the struct = null */
	K_URL,	       /* string <= 2048 bytes */
	K_PATH,	       /* absolute, <= 108 bytes */
	K_ERROR,       /* string <= 1024 bytes */
	K_SINCE,       /* string <= 64 bytes (ForwardInfo only, not stored) */
	K_FORWARDS,    /* array of ForwardInfo */
	K_SOCKET_FWDS, /* array of {socket_id, host_path, container_path} */
};

#define NOWHERE ((size_t)-1)

struct field {
	const char *name;
	enum kind kind;
	size_t off;	   /* in struct dbr_msg, or NOWHERE */
	size_t size;	   /* of a char array member */
	unsigned char opt; /* REQ, OPT, or OPT_IN */
};

#define MEMBER_SIZE(member) sizeof(((struct dbr_msg *)0)->member)
#define FLD(member, k, o)                                                                          \
	{                                                                                          \
		.name = #member, .kind = (k), .off = offsetof(struct dbr_msg, member),             \
		.size = MEMBER_SIZE(member), .opt = (o)                                            \
	}
#define REQ    0 /* must be present */
#define OPT    1 /* may be absent; omitted when sending an empty value */
#define OPT_IN 2 /* may be absent on input; always sent (seed peers need it) */

static const struct field f_register[] = {
    FLD(container_id, K_ID, REQ),
    FLD(hostname, K_ID, REQ),
    /* A Register without a token is an authentication failure to answer
     * and audit, not a malformed line. */
    FLD(auth_token, K_TOKEN, OPT_IN),
    FLD(version, K_VERSION, OPT),
    FLD(instance, K_CONN_ID, OPT),
};
static const struct field f_register_ack[] = {
    FLD(success, K_BOOL, REQ),
    FLD(version, K_VERSION, OPT),
    FLD(error, K_ERROR, OPT),
    FLD(name, K_ID, OPT),
};
static const struct field f_forward[] = {
    FLD(port, K_PORT1, REQ),
    FLD(protocol, K_PROTOCOL, REQ),
    FLD(process_name, K_PROCESS, OPT),
    FLD(pid, K_PID, OPT),
};
static const struct field f_forward_ack[] = {
    FLD(port, K_PORT, REQ),	 FLD(success, K_BOOL, REQ), FLD(host_port, K_PORT, REQ),
    FLD(remapped, K_ERROR, OPT), /* why host_port != port (version 2) */
    FLD(error, K_ERROR, OPT),	 /* why it failed (version 2) */
};
static const struct field f_unforward[] = {
    FLD(port, K_PORT1, REQ),
};
static const struct field f_connect_request[] = {
    FLD(port, K_PORT1, REQ),
    FLD(conn_id, K_CONN_ID, REQ),
};
static const struct field f_connect_ready[] = {
    FLD(conn_id, K_CONN_ID, REQ),
};
static const struct field f_connect_failed[] = {
    FLD(conn_id, K_CONN_ID, REQ),
    FLD(error, K_ERROR, REQ),
};
static const struct field f_socket_forward[] = {
    FLD(socket_id, K_SOCKET_ID, REQ),
    FLD(host_path, K_PATH, REQ),
    FLD(container_path, K_PATH, REQ),
};
static const struct field f_socket_unforward[] = {
    FLD(socket_id, K_SOCKET_ID, REQ),
};
static const struct field f_socket_connect_request[] = {
    FLD(socket_id, K_SOCKET_ID, REQ),
    FLD(conn_id, K_CONN_ID, REQ),
};
static const struct field f_open_url[] = {
    FLD(url, K_URL, REQ),
    FLD(auth_token, K_TOKEN, OPT),
};
static const struct field f_open_url_ack[] = {
    FLD(success, K_BOOL, REQ),
    FLD(error, K_ERROR, OPT),
};
static const struct field f_list_request[] = {
    FLD(auth_token, K_TOKEN, OPT),
};
static const struct field f_list_response[] = {
    FLD(forwards, K_FORWARDS, REQ),
    FLD(socket_forwards, K_SOCKET_FWDS, REQ),
};

/* Elements of ListResponse arrays, decoded into a scratch message. */
/* clang-format off */
static const struct field f_forward_info[] = {
    FLD(container_id, K_ID, REQ),
    FLD(hostname, K_ID, REQ),
    FLD(port, K_PORT, REQ),
    FLD(host_port, K_PORT, REQ),
    FLD(protocol, K_PROTOCOL, REQ),
    FLD(process_name, K_PROCESS, REQ),
    FLD(pid, K_PID, REQ),
    {.name = "since", .kind = K_SINCE, .off = NOWHERE, .size = 0, .opt = REQ},
};
/* clang-format on */
static const struct field f_socket_info[] = {
    FLD(socket_id, K_SOCKET_ID, REQ),
    FLD(host_path, K_PATH, REQ),
    FLD(container_path, K_PATH, REQ),
};

struct type_desc {
	const char *name;
	const struct field *fields;
	size_t n;
};

#define ARRAY_LEN(a)  (sizeof(a) / sizeof((a)[0]))
#define TYPE(e, s, f) [e] = {s, f, ARRAY_LEN(f)}
#define TYPE0(e, s)   [e] = {s, NULL, 0}

static const struct type_desc types[DBR_TYPE_COUNT] = {
    TYPE(DBR_REGISTER, "Register", f_register),
    TYPE(DBR_REGISTER_ACK, "RegisterAck", f_register_ack),
    TYPE(DBR_FORWARD, "Forward", f_forward),
    TYPE(DBR_FORWARD_ACK, "ForwardAck", f_forward_ack),
    TYPE(DBR_UNFORWARD, "Unforward", f_unforward),
    TYPE(DBR_CONNECT_REQUEST, "ConnectRequest", f_connect_request),
    TYPE(DBR_CONNECT_READY, "ConnectReady", f_connect_ready),
    TYPE(DBR_CONNECT_FAILED, "ConnectFailed", f_connect_failed),
    TYPE(DBR_SOCKET_FORWARD, "SocketForward", f_socket_forward),
    TYPE(DBR_SOCKET_UNFORWARD, "SocketUnforward", f_socket_unforward),
    TYPE(DBR_SOCKET_CONNECT_REQUEST, "SocketConnectRequest", f_socket_connect_request),
    TYPE(DBR_OPEN_URL, "OpenUrl", f_open_url),
    TYPE(DBR_OPEN_URL_ACK, "OpenUrlAck", f_open_url_ack),
    TYPE0(DBR_PING, "Ping"),
    TYPE0(DBR_PONG, "Pong"),
    TYPE(DBR_LIST_REQUEST, "ListRequest", f_list_request),
    TYPE(DBR_LIST_RESPONSE, "ListResponse", f_list_response),
};

const char *dbr_type_name(enum dbr_type t)
{
	if ((unsigned)t >= DBR_TYPE_COUNT)
		return "?";
	return types[t].name;
}

int dbr_type_from_name(const char *name, enum dbr_type *ret)
{
	for (size_t i = 0; i < DBR_TYPE_COUNT; i++) {
		if (strcmp(types[i].name, name) == 0) {
			*ret = (enum dbr_type)i;
			return 0;
		}
	}
	return -EINVAL;
}

static bool charset_valid(const char *s, size_t max, bool dot_underscore)
{
	size_t n = 0;
	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];
		if (n >= max)
			return false;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-')
			continue;
		if (dot_underscore && (c == '.' || c == '_'))
			continue;
		return false;
	}
	return n >= 1;
}

bool dbr_id_valid(const char *s)
{
	return s && charset_valid(s, DBR_ID_MAX, true);
}

bool dbr_conn_id_valid(const char *s)
{
	return s && charset_valid(s, DBR_CONN_ID_MAX, false);
}

bool dbr_socket_id_valid(const char *s)
{
	return s && charset_valid(s, DBR_SOCKET_ID_MAX, true);
}

void dbr_msg_init(struct dbr_msg *m, enum dbr_type type)
{
	memset(m, 0, sizeof *m);
	m->type = type;
	m->pid = -1;
	memcpy(m->protocol, "Tcp", 4);
}

void dbr_msg_clear(struct dbr_msg *m)
{
	if (!m)
		return;
	json_decref(m->forwards);
	json_decref(m->socket_forwards);
	memset(m, 0, sizeof *m);
}

/* ---- decoding ---- */

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
						      ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A peer-chosen name for an error message: at most 32 bytes, printable
 * ASCII only, so a reason can be logged as is. */
static void sanitize(char *out, size_t n, const char *s, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 1 < n; i++) {
		if (i == 32) {
			for (int k = 0; k < 3 && o + 1 < n; k++)
				out[o++] = '.';
			break;
		}
		unsigned char c = (unsigned char)s[i];
		out[o++] = c >= 0x20 && c < 0x7f && c != '\'' ? (char)c : '?';
	}
	out[o] = '\0';
}

static void sanitize_all(char *out, size_t n, const char *s)
{
	size_t o = 0;
	for (; *s && o + 1 < n; s++) {
		unsigned char c = (unsigned char)*s;
		out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[o] = '\0';
}

static const char *expect_text(enum kind k)
{
	switch (k) {
	case K_PORT:
		return "expected an integer 0-65535";
	case K_PORT1:
		return "expected an integer 1-65535";
	case K_BOOL:
		return "expected a boolean";
	case K_VERSION:
		return "expected an integer 1-2147483647";
	case K_ID:
		return "expected 1-256 characters of [A-Za-z0-9._-]";
	case K_TOKEN:
		return "expected a string of at most 256 bytes";
	case K_CONN_ID:
		return "expected 1-128 characters of [A-Za-z0-9-]";
	case K_SOCKET_ID:
		return "expected 1-128 characters of [A-Za-z0-9._-]";
	case K_PROTOCOL:
		return "expected \"Tcp\"";
	case K_PROCESS:
		return "expected a string of at most 256 bytes or null";
	case K_PID:
		return "expected an integer 0-2147483647 or null";
	case K_URL:
		return "expected a string of at most 2048 bytes";
	case K_PATH:
		return "expected an absolute path of at most 108 bytes";
	case K_ERROR:
		return "expected a string of at most 1024 bytes";
	case K_SINCE:
		return "expected a string of at most 64 bytes";
	case K_FORWARDS:
	case K_SOCKET_FWDS:
		return "expected an array of objects";
	}
	return "invalid";
}

/* A JSON string without NUL of at most max bytes, or NULL. */
static const char *get_str(const json_t *v, size_t max)
{
	if (!json_is_string(v))
		return NULL;
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (n > max || strlen(s) != n)
		return NULL;
	return s;
}

static bool get_int(const json_t *v, json_int_t lo, json_int_t hi, json_int_t *ret)
{
	if (!json_is_integer(v))
		return false;
	json_int_t x = json_integer_value(v);
	if (x < lo || x > hi)
		return false;
	*ret = x;
	return true;
}

static int decode_fields(const json_t *obj, const struct field *fields, size_t n, const char *what,
			 const char *prefix, bool has_type, struct dbr_msg *m, char *err,
			 size_t errlen);

/* Validate every element of a ListResponse array. */
static int decode_array(const json_t *v, const struct field *f, char *err, size_t errlen)
{
	const struct field *ef = f->kind == K_FORWARDS ? f_forward_info : f_socket_info;
	size_t en = f->kind == K_FORWARDS ? ARRAY_LEN(f_forward_info) : ARRAY_LEN(f_socket_info);
	size_t i;
	json_t *e;
	struct dbr_msg *scratch = malloc(sizeof *scratch);
	if (!scratch)
		return fail(err, errlen, "out of memory");
	json_array_foreach(v, i, e)
	{
		char what[64];
		snprintf(what, sizeof what, "%s[%zu]", f->name, i);
		if (!json_is_object(e)) {
			free(scratch);
			return fail(err, errlen, "%s: expected an object", what);
		}
		char prefix[72];
		snprintf(prefix, sizeof prefix, "%s.", what);
		dbr_msg_init(scratch, DBR_LIST_RESPONSE);
		int r = decode_fields(e, ef, en, what, prefix, false, scratch, err, errlen);
		if (r < 0) {
			free(scratch);
			return r;
		}
	}
	free(scratch);
	return 0;
}

static int decode_field(const json_t *v, const struct field *f, const char *prefix,
			struct dbr_msg *m, char *err, size_t errlen)
{
	char *dst = f->off == NOWHERE ? NULL : (char *)m + f->off;
	const char *s = NULL;
	json_int_t x = 0;
	bool ok = false;

	switch (f->kind) {
	case K_PORT:
	case K_PORT1:
		ok = get_int(v, f->kind == K_PORT1 ? 1 : 0, 65535, &x);
		if (ok)
			*(uint16_t *)dst = (uint16_t)x;
		break;
	case K_BOOL:
		ok = json_is_boolean(v);
		if (ok)
			*(bool *)dst = json_is_true(v);
		break;
	case K_VERSION:
		ok = get_int(v, 1, INT32_MAX, &x);
		if (ok)
			*(int *)dst = (int)x;
		break;
	case K_PID:
		if (json_is_null(v)) {
			*(int32_t *)dst = -1;
			ok = true;
		} else if ((ok = get_int(v, 0, INT32_MAX, &x))) {
			*(int32_t *)dst = (int32_t)x;
		}
		break;
	case K_PROCESS:
		if (json_is_null(v)) {
			dst[0] = '\0';
			ok = true;
			break;
		}
		s = get_str(v, f->size - 1);
		ok = s != NULL;
		break;
	case K_ID:
		s = get_str(v, f->size - 1);
		ok = s && dbr_id_valid(s);
		break;
	case K_CONN_ID:
		s = get_str(v, f->size - 1);
		ok = s && dbr_conn_id_valid(s);
		break;
	case K_SOCKET_ID:
		s = get_str(v, f->size - 1);
		ok = s && dbr_socket_id_valid(s);
		break;
	case K_PROTOCOL:
		s = get_str(v, f->size - 1);
		ok = s && strcmp(s, "Tcp") == 0;
		break;
	case K_PATH:
		s = get_str(v, f->size - 1);
		ok = s && s[0] == '/';
		break;
	case K_TOKEN:
	case K_URL:
	case K_ERROR:
		s = get_str(v, f->size - 1);
		ok = s != NULL;
		break;
	case K_SINCE:
		ok = get_str(v, DBR_SINCE_MAX) != NULL;
		break;
	case K_FORWARDS:
	case K_SOCKET_FWDS: {
		if (!json_is_array(v))
			break;
		if (decode_array(v, f, err, errlen) < 0)
			return -EINVAL;
		json_t **slot = (json_t **)dst;
		json_decref(*slot);
		*slot = json_incref((json_t *)v);
		ok = true;
		break;
	}
	}
	if (!ok)
		return fail(err, errlen, "%s%s: %s", prefix, f->name, expect_text(f->kind));
	if (s && dst)
		memcpy(dst, s, strlen(s) + 1); /* length checked against f->size */
	return 0;
}

static int decode_fields(const json_t *obj, const struct field *fields, size_t n, const char *what,
			 const char *prefix, bool has_type, struct dbr_msg *m, char *err,
			 size_t errlen)
{
	/* Unknown keys first: a misspelt optional field must not pass as
	 * absent. */
	for (void *it = json_object_iter((json_t *)obj); it;
	     it = json_object_iter_next((json_t *)obj, it)) {
		const char *key = json_object_iter_key(it);
		size_t klen = strlen(key);
#if JANSSON_VERSION_HEX >= 0x020e00
		klen = json_object_iter_key_len(it);
#endif
		bool known = strlen(key) == klen && has_type && strcmp(key, "type") == 0;
		for (size_t i = 0; !known && i < n; i++)
			known = strlen(key) == klen && strcmp(key, fields[i].name) == 0;
		if (!known) {
			char name[40];
			sanitize(name, sizeof name, key, klen);
			return fail(err, errlen, "unknown field '%s' in %s", name, what);
		}
	}
	for (size_t i = 0; i < n; i++) {
		const json_t *v = json_object_get(obj, fields[i].name);
		if (!v) {
			if (fields[i].opt)
				continue;
			return fail(err, errlen, "missing field '%s' in %s", fields[i].name, what);
		}
		int r = decode_field(v, &fields[i], prefix, m, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Decode a parsed object into m (zeroed here first). */
static int decode(const json_t *root, struct dbr_msg *m, char *err, size_t errlen)
{
	if (!json_is_object(root))
		return fail(err, errlen, "expected a JSON object");
	const json_t *t = json_object_get(root, "type");
	if (!t)
		return fail(err, errlen, "missing field 'type'");
	const char *name = get_str(t, 64);
	if (!json_is_string(t))
		return fail(err, errlen, "type: expected a string");
	enum dbr_type type;
	if (!name || dbr_type_from_name(name, &type) < 0) {
		char shown[40];
		sanitize(shown, sizeof shown, json_string_value(t), json_string_length(t));
		return fail(err, errlen, "unknown type '%s'", shown);
	}
	dbr_msg_init(m, type);
	const struct type_desc *d = &types[type];
	int r = decode_fields(root, d->fields, d->n, d->name, "", true, m, err, errlen);
	if (r < 0)
		dbr_msg_clear(m);
	return r;
}

int dbr_parse(const char *line, size_t len, struct dbr_msg *ret, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!line)
		line = "", len = 0;
	json_error_t je;
	json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		memset(ret, 0, sizeof *ret);
		/* jansson quotes the input ("near '...'"): keep the reason ASCII
		 * and printable, so it can be logged as is. */
		char text[sizeof je.text];
		sanitize_all(text, sizeof text, je.text);
		return fail(err, errlen, "invalid JSON at column %d: %s", je.column, text);
	}
	/* The message is large: decode on the heap, so a failure leaves *ret
	 * merely zeroed (safe for dbr_msg_clear) and a success copies once. */
	struct dbr_msg *m = malloc(sizeof *m);
	if (!m) {
		json_decref(root);
		memset(ret, 0, sizeof *ret);
		return -ENOMEM;
	}
	int r = decode(root, m, err, errlen);
	json_decref(root); /* arrays kept in m hold their own references */
	if (r < 0)
		memset(ret, 0, sizeof *ret);
	else
		*ret = *m;
	free(m);
	return r;
}

/* ---- sniffing a rejected line ---- */

static size_t skip_ws(const char *p, size_t i, size_t len)
{
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	return i;
}

/* The index just after `"key"` followed by a colon (and blanks), or 0. */
static size_t find_key(const char *p, size_t len, const char *key)
{
	size_t kl = strlen(key);
	for (size_t i = 0; i + kl + 2 <= len; i++) {
		if (p[i] != '"' || memcmp(p + i + 1, key, kl) != 0 || p[i + 1 + kl] != '"')
			continue;
		size_t j = skip_ws(p, i + kl + 2, len);
		if (j < len && p[j] == ':')
			return skip_ws(p, j + 1, len);
	}
	return 0;
}

int dbr_sniff(const char *line, size_t len, struct dbr_sniff *ret)
{
	if (!line)
		return -EINVAL;
	size_t i = find_key(line, len, "type");
	if (i == 0 || i >= len || line[i] != '"')
		return -EINVAL;
	char name[32];
	size_t n = 0;
	for (i++; i < len && line[i] != '"'; i++) {
		if (n + 1 >= sizeof name)
			return -EINVAL;
		name[n++] = line[i];
	}
	if (i >= len)
		return -EINVAL;
	name[n] = '\0';
	enum dbr_type t;
	if (dbr_type_from_name(name, &t) < 0)
		return -EINVAL;
	int port = -1;
	size_t j = find_key(line, len, "port");
	if (j > 0 && j < len && line[j] >= '0' && line[j] <= '9') {
		long v = 0;
		size_t k = j;
		for (; k < len && k - j < 6 && line[k] >= '0' && line[k] <= '9'; k++)
			v = v * 10 + (line[k] - '0');
		if (k - j < 6 && v <= 65535 && (k == len || line[k] < '0' || line[k] > '9'))
			port = (int)v;
	}
	ret->type = t;
	ret->port = port;
	ret->has_version = find_key(line, len, "version") > 0;
	return 0;
}

/* ---- encoding ---- */

/* A NUL-terminated char array member, or NULL if unterminated. */
static const char *member_str(const struct dbr_msg *m, const struct field *f)
{
	const char *s = (const char *)m + f->off;
	return memchr(s, '\0', f->size) ? s : NULL;
}

static json_t *encode_field(const struct dbr_msg *m, const struct field *f, bool *omit)
{
	const char *p = (const char *)m + f->off;
	const char *s;
	*omit = false;
	switch (f->kind) {
	case K_PORT:
	case K_PORT1:
		return json_integer(*(const uint16_t *)p);
	case K_BOOL:
		return json_boolean(*(const bool *)p);
	case K_VERSION:
		if (*(const int *)p == 0) {
			*omit = true;
			return NULL;
		}
		return json_integer(*(const int *)p);
	case K_PID:
		if (*(const int32_t *)p == -1)
			return json_null();
		return json_integer(*(const int32_t *)p);
	case K_PROCESS:
		s = member_str(m, f);
		if (s && !*s)
			return json_null();
		return s ? json_string(s) : NULL;
	case K_TOKEN:
	case K_ERROR:
		s = member_str(m, f);
		if (s && !*s && f->opt == OPT) {
			*omit = true;
			return NULL;
		}
		return s ? json_string(s) : NULL;
	case K_ID:
	case K_CONN_ID:
	case K_SOCKET_ID:
	case K_PROTOCOL:
	case K_URL:
	case K_PATH:
		s = member_str(m, f);
		if (s && !*s && f->opt == OPT) {
			*omit = true;
			return NULL;
		}
		return s ? json_string(s) : NULL;
	case K_SINCE:
		return NULL; /* not a message field */
	case K_FORWARDS:
	case K_SOCKET_FWDS: {
		json_t *a = *(json_t *const *)p;
		return a ? json_incref(a) : json_array();
	}
	}
	return NULL;
}

static json_t *encode(const struct dbr_msg *m)
{
	if ((unsigned)m->type >= DBR_TYPE_COUNT)
		return NULL;
	const struct type_desc *d = &types[m->type];
	json_t *o = json_object();
	if (!o || json_object_set_new(o, "type", json_string(d->name)) < 0)
		goto fail;
	for (size_t i = 0; i < d->n; i++) {
		bool omit;
		json_t *v = encode_field(m, &d->fields[i], &omit);
		if (omit)
			continue;
		/* set_new consumes v, and fails on NULL (bad UTF-8, OOM). */
		if (json_object_set_new(o, d->fields[i].name, v) < 0)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

char *dbr_format(const struct dbr_msg *m, size_t *ret_len)
{
	json_t *o = encode(m);
	if (!o) {
		errno = EINVAL;
		return NULL;
	}
	/* Refuse to send what we would refuse to receive. */
	struct dbr_msg *check = malloc(sizeof *check);
	if (!check) {
		json_decref(o);
		errno = ENOMEM;
		return NULL;
	}
	int r = decode(o, check, NULL, 0);
	if (r == 0)
		dbr_msg_clear(check);
	free(check);
	if (r < 0) {
		json_decref(o);
		errno = EINVAL;
		return NULL;
	}
	const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
	size_t n = json_dumpb(o, NULL, 0, flags);
	char *buf = n ? malloc(n + 2) : NULL;
	if (!buf || json_dumpb(o, buf, n, flags) != n) {
		free(buf);
		json_decref(o);
		errno = n ? ENOMEM : EINVAL;
		return NULL;
	}
	json_decref(o);
	buf[n] = '\n';
	buf[n + 1] = '\0';
	if (ret_len)
		*ret_len = n + 1;
	return buf;
}
