/* chunks.h — test chunks for the store backend tests (test-s3store,
 * test-cache): pseudo-random bytes with their id, put and read back
 * through the store interface. Include after rgw.h (fill()). */
#ifndef MREG_TEST_CHUNKS_H
#define MREG_TEST_CHUNKS_H

#include "store/store.h"

/* A chunk of the test: its bytes, id and where it went. */
struct chunk {
	uint8_t *data;
	uint32_t len;
	struct mreg_id id;
	struct chunk_loc loc;
};

static inline void chunk_make(struct chunk *c, uint32_t len, uint64_t seed)
{
	c->data = malloc(len ? len : 1);
	c->len = len;
	fill(c->data, len, seed);
	chunkid_of(c->data, len, &c->id);
}

static inline int put(struct mreg_store *s, struct chunk *c)
{
	return store_put(s, &c->id, c->data, c->len, &c->loc);
}

/* 0 and the right bytes, or the error (-EBADMSG for wrong bytes). */
static inline int get(struct mreg_store *s, const struct chunk *c)
{
	uint8_t *b = malloc(c->len ? c->len : 1);
	int r;

	memset(b, 0x5a, c->len);
	r = store_get(s, &c->loc, &c->id, b);
	if (r == 0 && memcmp(b, c->data, c->len))
		r = -EBADMSG;
	free(b);
	return r;
}

static inline void chunks_free(struct chunk *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].data);
}

#endif
