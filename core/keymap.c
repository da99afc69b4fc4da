/* keymap.c — the hash map of keymap.h. Keys are hashed with XXH3 (the
 * keys are chunk ids and chunk keys, but the map must not rely on their
 * bytes being random: a crafted id must not make it quadratic). The table
 * doubles when half full, so a probe sequence stays short. */
#include "keymap.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define FIRST_SIZE 4096

static size_t slot_of(const struct keymap *m, const void *key, size_t size)
{
	return (size_t)XXH3_64bits(key, m->ksize) & (size - 1);
}

void keymap_init(struct keymap *m, size_t ksize)
{
	assert(ksize > 0 && ksize <= KEYMAP_KEY_MAX);
	memset(m, 0, sizeof(*m));
	m->ksize = ksize;
}

void keymap_free(struct keymap *m)
{
	size_t ksize = m->ksize;

	free(m->keys);
	free(m->vals);
	free(m->full);
	memset(m, 0, sizeof(*m));
	m->ksize = ksize;
}

static int grow(struct keymap *m)
{
	struct keymap n;
	size_t i, j;

	keymap_init(&n, m->ksize);
	n.size = m->size ? m->size * 2 : FIRST_SIZE;
	n.keys = calloc(n.size, n.ksize);
	n.vals = calloc(n.size, sizeof(*n.vals));
	n.full = calloc(n.size, 1);
	if (!n.keys || !n.vals || !n.full) {
		keymap_free(&n);
		return -1;
	}
	for (j = 0; j < m->size; j++) {
		if (!m->full[j])
			continue;
		i = slot_of(m, m->keys + j * m->ksize, n.size);
		while (n.full[i])
			i = (i + 1) & (n.size - 1);
		memcpy(n.keys + i * n.ksize, m->keys + j * m->ksize, m->ksize);
		n.vals[i] = m->vals[j];
		n.full[i] = 1;
	}
	n.used = m->used;
	keymap_free(m);
	*m = n;
	return 0;
}

/* The slot of key, or of the empty slot where it would go (size > 0). */
static size_t probe(const struct keymap *m, const void *key)
{
	size_t i;

	for (i = slot_of(m, key, m->size); m->full[i];
	     i = (i + 1) & (m->size - 1))
		if (memcmp(m->keys + i * m->ksize, key, m->ksize) == 0)
			break;
	return i;
}

uint64_t *keymap_slot(struct keymap *m, const void *key, bool add,
		      bool *ret_new)
{
	size_t i;

	if (ret_new)
		*ret_new = false;
	if (!m->size) {
		if (!add || grow(m) < 0)
			return NULL;
	}
	i = probe(m, key);
	if (m->full[i])
		return &m->vals[i];
	if (!add)
		return NULL;
	if ((m->used + 1) * 2 > m->size) {
		if (grow(m) < 0)
			return NULL;
		i = probe(m, key);
	}
	memcpy(m->keys + i * m->ksize, key, m->ksize);
	m->vals[i] = 0;
	m->full[i] = 1;
	m->used++;
	if (ret_new)
		*ret_new = true;
	return &m->vals[i];
}

const uint64_t *keymap_find(const struct keymap *m, const void *key)
{
	size_t i;

	if (!m->size)
		return NULL;
	i = probe(m, key);
	return m->full[i] ? &m->vals[i] : NULL;
}

bool keymap_next(const struct keymap *m, size_t *pos, const void **ret_key,
		 uint64_t *ret_val)
{
	for (; *pos < m->size; (*pos)++) {
		if (!m->full[*pos])
			continue;
		*ret_key = m->keys + *pos * m->ksize;
		*ret_val = m->vals[*pos];
		(*pos)++;
		return true;
	}
	return false;
}
