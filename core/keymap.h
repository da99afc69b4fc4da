/* keymap.h — a hash map from fixed-size byte-string keys (chunk keys,
 * chunk ids) to a 64-bit value, by open addressing with linear probing:
 * one allocation per array, no allocation per entry, so that counting the
 * references of millions of chunks (fsck) or the distinct chunks of a
 * model (stats) costs ~40 bytes a key. Not thread-safe.
 *
 *	struct keymap m;
 *	keymap_init(&m, sizeof(struct chunk_key));
 *	uint64_t *n = keymap_slot(&m, &key, true, NULL);  // NULL: -ENOMEM
 *	(*n)++;
 *	for (size_t pos = 0; keymap_next(&m, &pos, &k, &v); ) ...
 *	keymap_free(&m);
 */
#ifndef MREG_KEYMAP_H
#define MREG_KEYMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYMAP_KEY_MAX 64

struct keymap {
	size_t ksize;            /* bytes of a key, 1..KEYMAP_KEY_MAX */
	size_t size, used;       /* slots (a power of two, or 0), in use */
	uint8_t *keys;           /* size * ksize */
	uint64_t *vals;
	uint8_t *full;           /* slot in use (any key, all-zero too) */
};

/* An empty map of keys of ksize bytes (1..KEYMAP_KEY_MAX); allocates
 * nothing until the first key. */
void keymap_init(struct keymap *m, size_t ksize);
/* Frees the arrays; m is empty (and usable) again. A zeroed map (never
 * initialised) may be freed too. */
void keymap_free(struct keymap *m);
/* The value of key: a pointer into the map, valid until the next add.
 * A key not in the map: added with value 0 when add (*ret_new, which may
 * be NULL, says so), else NULL. NULL with add: out of memory (the map is
 * unchanged). */
uint64_t *keymap_slot(struct keymap *m, const void *key, bool add,
		      bool *ret_new);
/* The value of key, or NULL when it is not in the map. */
const uint64_t *keymap_find(const struct keymap *m, const void *key);
/* Walks the entries, in no particular order: start with *pos = 0; each
 * call gives the next key and value and returns true, false at the end.
 * The map must not change during a walk. */
bool keymap_next(const struct keymap *m, size_t *pos, const void **ret_key,
		 uint64_t *ret_val);

#endif
