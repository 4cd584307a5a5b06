/* Fuzz the dbr control protocol as the daemons see it: the stream is split
 * by the JSON-lines reader and each line parsed.  Whatever parses must
 * format, parse back to an equal message, and format to the same bytes;
 * whatever fails must say why. */
#include "proto/dbr.h"
#include "proto/jsonl.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool arrays_equal(const json_t *a, const json_t *b)
{
	if (!a || !b)
		return json_array_size(a) == 0 && json_array_size(b) == 0;
	return json_equal(a, b);
}

static bool msg_equal(const struct dbr_msg *a, const struct dbr_msg *b)
{
	return a->type == b->type && a->version == b->version && a->success == b->success &&
	       a->port == b->port && a->host_port == b->host_port && a->pid == b->pid &&
	       !strcmp(a->container_id, b->container_id) && !strcmp(a->hostname, b->hostname) &&
	       !strcmp(a->auth_token, b->auth_token) && !strcmp(a->conn_id, b->conn_id) &&
	       !strcmp(a->socket_id, b->socket_id) && !strcmp(a->protocol, b->protocol) &&
	       !strcmp(a->process_name, b->process_name) && !strcmp(a->url, b->url) &&
	       !strcmp(a->host_path, b->host_path) &&
	       !strcmp(a->container_path, b->container_path) && !strcmp(a->error, b->error) &&
	       !strcmp(a->instance, b->instance) && !strcmp(a->name, b->name) &&
	       !strcmp(a->remapped, b->remapped) && arrays_equal(a->forwards, b->forwards) &&
	       arrays_equal(a->socket_forwards, b->socket_forwards);
}

static void check_line(const char *line, size_t len)
{
	struct dbr_msg m;
	char err[256];
	int r = dbr_parse(line, len, &m, err, sizeof err);
	if (r < 0) {
		if (r != -EINVAL || err[0] == '\0' || m.forwards || m.socket_forwards)
			abort();
		/* A rejected line is sniffed for the reply it deserves. */
		struct dbr_sniff sn;
		if (dbr_sniff(line, len, &sn) == 0 &&
		    ((unsigned)sn.type >= DBR_TYPE_COUNT || sn.port < -1 || sn.port > 65535))
			abort();
		return;
	}
	if ((unsigned)m.type >= DBR_TYPE_COUNT)
		abort();
	if ((m.type == DBR_REGISTER &&
	     (!dbr_id_valid(m.container_id) || !dbr_id_valid(m.hostname))) ||
	    (m.type == DBR_CONNECT_READY && !dbr_conn_id_valid(m.conn_id)))
		abort();
	size_t n1;
	char *s1 = dbr_format(&m, &n1);
	if (!s1 || n1 == 0 || s1[n1 - 1] != '\n' || memchr(s1, '\n', n1 - 1) || strlen(s1) != n1)
		abort();
	struct dbr_msg back;
	if (dbr_parse(s1, n1 - 1, &back, err, sizeof err) != 0)
		abort();
	if (!msg_equal(&m, &back))
		abort();
	size_t n2;
	char *s2 = dbr_format(&back, &n2);
	if (!s2 || n2 != n1 || memcmp(s1, s2, n1) != 0)
		abort();
	free(s1);
	free(s2);
	dbr_msg_clear(&back);
	dbr_msg_clear(&m);
}

static bool on_line(void *data, enum jsonl_event ev, const char *line, size_t len)
{
	if (ev == JSONL_LINE)
		check_line(line, len);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jsonl_reader *r;
	if (jsonl_reader_new(JSONL_MAX_LINE, &r) < 0)
		abort();
	if (jsonl_feed(r, (const char *)data, size, on_line, NULL) != 0)
		abort();
	jsonl_reader_free(r);

	/* The whole input as one line too (what a caller without the reader
	 * would pass), and as a NUL-terminated id. */
	if (size <= JSONL_MAX_LINE)
		check_line((const char *)data, size);
	char id[DBR_ID_MAX + 2];
	size_t k = size < sizeof id - 1 ? size : sizeof id - 1;
	memcpy(id, data, k);
	id[k] = '\0';
	bool v = dbr_id_valid(id);
	if (v && (strlen(id) == 0 || strlen(id) > DBR_ID_MAX ||
		  strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
		      strlen(id)))
		abort();
	return 0;
}
