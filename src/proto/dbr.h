/* dbr.h - the devcontainer bridge wire protocol (seed 002), as JSON lines.
 *
 * Internally tagged: {"type":"Forward","port":8080,...}.  Parsing is
 * strict, like the seed: unknown types and unknown fields are rejected,
 * ports must fit u16, ids are validated.  devbridge adds a protocol
 * version: Register and RegisterAck carry "version" (DBR_PROTOCOL_VERSION);
 * a Register without it is taken as version 1 (the seed's), a RegisterAck
 * can refuse with "error". */
#ifndef DEVBRIDGE_PROTO_DBR_H
#define DEVBRIDGE_PROTO_DBR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DBR_PROTOCOL_VERSION 2 /* 1 = the seed's, no version field */
#define DBR_CONTROL_PORT     19285
#define DBR_DATA_PORT	     19286

#define DBR_ID_MAX	  256 /* container_id, hostname: [A-Za-z0-9._-]{1,256} */
#define DBR_CONN_ID_MAX	  128
#define DBR_TOKEN_MAX	  256
#define DBR_URL_MAX	  2048
#define DBR_PATH_MAX	  108 /* sun_path */
#define DBR_PROCESS_MAX	  256
#define DBR_ERROR_MAX	  1024
#define DBR_SOCKET_ID_MAX 128

enum dbr_type {
	DBR_REGISTER = 0,
	DBR_REGISTER_ACK,
	DBR_FORWARD,
	DBR_FORWARD_ACK,
	DBR_UNFORWARD,
	DBR_CONNECT_REQUEST,
	DBR_CONNECT_READY,
	DBR_CONNECT_FAILED,
	DBR_SOCKET_FORWARD,
	DBR_SOCKET_UNFORWARD,
	DBR_SOCKET_CONNECT_REQUEST,
	DBR_OPEN_URL,
	DBR_OPEN_URL_ACK,
	DBR_PING,
	DBR_PONG,
	DBR_LIST_REQUEST,
	DBR_LIST_RESPONSE,
	DBR_TYPE_COUNT,
};

/* One message.  Which fields are meaningful depends on `type` (see the
 * table in dbr.c); strings are NUL-terminated and already validated. */
struct dbr_msg {
	enum dbr_type type;
	int version;  /* Register, RegisterAck; 0 = absent */
	bool success; /* RegisterAck, ForwardAck, OpenUrlAck */
	uint16_t port;
	uint16_t host_port; /* ForwardAck */
	int32_t pid;	    /* Forward: -1 = absent */
	char container_id[DBR_ID_MAX + 1];
	char hostname[DBR_ID_MAX + 1];
	char auth_token[DBR_TOKEN_MAX + 1];
	char conn_id[DBR_CONN_ID_MAX + 1];
	char socket_id[DBR_SOCKET_ID_MAX + 1];
	char protocol[8];			/* Forward: "Tcp" */
	char process_name[DBR_PROCESS_MAX + 1]; /* Forward: "" = absent */
	char url[DBR_URL_MAX + 1];
	char host_path[DBR_PATH_MAX + 1];
	char container_path[DBR_PATH_MAX + 1];
	char error[DBR_ERROR_MAX + 1];	    /* ConnectFailed; RegisterAck, OpenUrlAck refusal */
	char instance[DBR_CONN_ID_MAX + 1]; /* Register: this daemon process ("" = absent) */
	char name[DBR_ID_MAX + 1];	    /* RegisterAck: the name the host shows */
	char remapped[16];		    /* ForwardAck: "privileged", "in_use", "" */
	json_t *forwards;		    /* ListResponse: array of ForwardInfo (owned) */
	json_t *socket_forwards;	    /* ListResponse: array (owned) */
};

/* Parse one line (without newline).  Returns 0, or -EINVAL with a short
 * reason in err ("unknown type 'Foo'", "unknown field 'x' in Forward",
 * "port: expected an integer 0-65535").  Call dbr_msg_clear afterwards. */
int dbr_parse(const char *line, size_t len, struct dbr_msg *ret, char *err, size_t errlen);

/* Serialise to one line ending in '\n'.  malloc'd, NULL on failure. */
char *dbr_format(const struct dbr_msg *m, size_t *ret_len);

/* What a rejected line says about itself, read from its bytes (it may not
 * even be JSON), so that the refusal can be answered in kind: the type it
 * names, the integer after "port" when it fits u16, whether it has a
 * "version" key (a devbridge peer, which takes an "error" field).  The
 * first `"type"` key wins.  Pure; 0, or -EINVAL when no known type shows. */
struct dbr_sniff {
	enum dbr_type type;
	int port; /* -1 when absent or not 0-65535 */
	bool has_version;
};
int dbr_sniff(const char *line, size_t len, struct dbr_sniff *ret);

/* Release forwards/socket_forwards and zero the message. */
void dbr_msg_clear(struct dbr_msg *m);

/* Initialise an empty message of `type` (pid = -1, protocol "Tcp"). */
void dbr_msg_init(struct dbr_msg *m, enum dbr_type type);

const char *dbr_type_name(enum dbr_type t);

/* [A-Za-z0-9._-]{1,256} */
bool dbr_id_valid(const char *s);

/* [A-Za-z0-9-]{1,128} (a UUID fits) */
bool dbr_conn_id_valid(const char *s);

/* [A-Za-z0-9._-]{1,128} */
bool dbr_socket_id_valid(const char *s);

/* "Forward" -> DBR_FORWARD; 0 or -EINVAL (case-sensitive). */
int dbr_type_from_name(const char *name, enum dbr_type *ret);

#endif
