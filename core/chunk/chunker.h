/* chunker.h — content-defined chunking (pure: no I/O, no allocation).
 *
 * A Gear rolling hash judged on its top bits, with normalized chunking
 * (FastCDC): below the average size a stricter mask (more bits must be
 * zero), above it a looser one, so chunk sizes gather around the average.
 * No cut before min_size; a forced cut at max_size. The same bytes always
 * give the same boundaries, whatever the sizes of the buffers fed in.
 *
 *	struct chunker c;
 *	chunker_init(&c, &params);
 *	while ((n = chunker_scan(&c, p, len)) != CHUNKER_NO_CUT) {
 *		... a chunk ends n bytes into p ...
 *		p += n; len -= n;
 *	}
 *	... at end of input the bytes since the last cut are the last chunk ...
 */
#ifndef MREG_CHUNKER_H
#define MREG_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

#define CHUNKER_NO_CUT ((size_t)-1)

struct chunker_params {
	uint32_t min_size; /* default 16 KiB */
	uint32_t avg_size; /* default 64 KiB; a power of two */
	uint32_t max_size; /* default 256 KiB */
};

#define CHUNKER_DEFAULT_PARAMS { 16u << 10, 64u << 10, 256u << 10 }

/* Checks that 64 <= min < avg < max <= 64 MiB and avg is a power of two.
 * Returns 0 or -EINVAL. */
int chunker_params_check(const struct chunker_params *p);

struct chunker {
	struct chunker_params p;
	uint64_t mask_s;  /* before avg: harder to cut */
	uint64_t mask_l;  /* after avg: easier to cut */
	uint64_t hash;
	size_t pos;       /* bytes since the last cut */
};

/* Prepares c for a new stream. p must pass chunker_params_check(). */
void chunker_init(struct chunker *c, const struct chunker_params *p);

/* Feeds len bytes. Returns how many of them belong to the current chunk
 * when a boundary falls in this buffer (the chunk ends after that many
 * bytes; the state is reset for the next chunk), or CHUNKER_NO_CUT when the
 * whole buffer belongs to the current chunk. */
size_t chunker_scan(struct chunker *c, const void *buf, size_t len);

#endif
