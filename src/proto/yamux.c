/* yamux.c - the Yamux frame header: 12 big-endian bytes (see yamux.h). */
#include "proto/yamux.h"

#include <errno.h>

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

int yamux_hdr_parse(const void *buf, size_t len, struct yamux_hdr *hdr)
{
	const unsigned char *p = buf;

	if (len < YAMUX_HDR_LEN)
		return 0;
	if (p[0] != YAMUX_VERSION || p[1] > YAMUX_GO_AWAY)
		return -EPROTO;
	hdr->version = p[0];
	hdr->type = p[1];
	hdr->flags = (uint16_t)(p[2] << 8 | p[3]);
	hdr->stream_id = get32(p + 4);
	hdr->length = get32(p + 8);
	return YAMUX_HDR_LEN;
}

void yamux_hdr_encode(const struct yamux_hdr *hdr, unsigned char out[YAMUX_HDR_LEN])
{
	out[0] = hdr->version;
	out[1] = hdr->type;
	out[2] = (unsigned char)(hdr->flags >> 8);
	out[3] = (unsigned char)hdr->flags;
	put32(out + 4, hdr->stream_id);
	put32(out + 8, hdr->length);
}

const char *yamux_type_name(unsigned type)
{
	static const char *const names[] = {"data", "window_update", "ping", "go_away"};
	return type < sizeof names / sizeof names[0] ? names[type] : NULL;
}
