/* Fuzz the Yamux frame header codec: every 12-byte window of the input is
 * parsed; what parses has exactly the fields of its bytes and encodes back
 * to them; what is refused has a bad version or type; fewer than 12 bytes
 * always ask for more.  Headers built from the input's words (version 0, a
 * known type, any flags, id and length) encode and parse back unchanged. */
#include "proto/yamux.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void check_at(const uint8_t *p, size_t len)
{
	struct yamux_hdr h;
	memset(&h, 0xa5, sizeof h);
	int r = yamux_hdr_parse(p, len, &h);
	if (len < YAMUX_HDR_LEN) {
		if (r != 0)
			abort();
		return;
	}
	if (p[0] != YAMUX_VERSION || p[1] > YAMUX_GO_AWAY) {
		if (r != -EPROTO)
			abort();
		return;
	}
	if (r != YAMUX_HDR_LEN)
		abort();
	if (h.version != p[0] || h.type != p[1] || h.flags != (uint16_t)(p[2] << 8 | p[3]) ||
	    h.stream_id != be32(p + 4) || h.length != be32(p + 8))
		abort();
	if (!yamux_type_name(h.type))
		abort();
	unsigned char out[YAMUX_HDR_LEN];
	yamux_hdr_encode(&h, out);
	if (memcmp(out, p, YAMUX_HDR_LEN) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* every offset, the real length after it (ASan sees an overread) */
	for (size_t off = 0; off <= size; off++)
		check_at(data + off, size - off);
	/* short prefixes of the start */
	for (size_t len = 0; len < YAMUX_HDR_LEN && len <= size; len++)
		check_at(data, len);

	for (size_t off = 0; off + 10 <= size; off += 10) {
		const uint8_t *p = data + off;
		struct yamux_hdr h = {
		    .version = YAMUX_VERSION,
		    .type = p[0] % 4,
		    .flags = (uint16_t)(p[1] << 8 | p[0]),
		    .stream_id = be32(p + 2),
		    .length = be32(p + 6),
		};
		unsigned char out[YAMUX_HDR_LEN + 1];
		out[YAMUX_HDR_LEN] = 0x5a;
		yamux_hdr_encode(&h, out);
		if (out[YAMUX_HDR_LEN] != 0x5a)
			abort();
		struct yamux_hdr back;
		if (yamux_hdr_parse(out, YAMUX_HDR_LEN, &back) != YAMUX_HDR_LEN)
			abort();
		if (back.version != h.version || back.type != h.type || back.flags != h.flags ||
		    back.stream_id != h.stream_id || back.length != h.length)
			abort();
	}
	return 0;
}
