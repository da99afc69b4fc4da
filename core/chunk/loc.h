/* loc.h — where a store put a chunk: a few bytes that only the backend
 * that wrote them reads. The index keeps them as they are; the registry
 * hands them back to the store. Compare them with chunk_loc_eq(), never
 * look inside. */
#ifndef MREG_CHUNK_LOC_H
#define MREG_CHUNK_LOC_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define CHUNK_LOC_MAX 32

struct chunk_loc {
	uint8_t len;                  /* 1..CHUNK_LOC_MAX; 0: no location */
	uint8_t b[CHUNK_LOC_MAX];
};

/* True when a and b name the same place. */
static inline bool chunk_loc_eq(const struct chunk_loc *a,
				const struct chunk_loc *b)
{
	return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

#endif
