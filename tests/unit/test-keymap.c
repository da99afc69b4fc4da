/* test-keymap.c — the one hash map of core/ (keymap.h): what fsck counts
 * references in and stats counts distinct chunks in. */
#include "keymap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* A 18-byte key (a chunk key's size) made from i; keys that differ only
 * in their last bytes, as chunk keys of colliding ids do. */
static void key_of(uint64_t i, uint8_t k[18])
{
	memset(k, 0, 18);
	memcpy(k + 10, &i, 8);
}

static void test_basic(void)
{
	struct keymap m;
	uint8_t k[18] = { 0 };
	uint64_t *v;
	bool fresh = true;

	keymap_init(&m, sizeof(k));
	CHECK(keymap_find(&m, k) == NULL, "an empty map finds nothing");
	CHECK(keymap_slot(&m, k, false, &fresh) == NULL && !fresh,
	      "nor adds without add");
	CHECK(m.size == 0, "and allocates nothing");
	v = keymap_slot(&m, k, true, &fresh);
	CHECK(v && *v == 0 && fresh, "the all-zero key is added, value 0");
	*v = 7;
	v = keymap_slot(&m, k, true, &fresh);
	CHECK(v && *v == 7 && !fresh, "added again: the same slot, not new");
	CHECK(keymap_find(&m, k) && *keymap_find(&m, k) == 7, "and found");
	k[17] = 1;
	CHECK(keymap_find(&m, k) == NULL, "a key one byte off is not");
	keymap_free(&m);
	CHECK(m.size == 0 && m.used == 0 && m.ksize == 18,
	      "freed: empty and usable");
	CHECK(keymap_slot(&m, k, true, NULL) != NULL, "and used again");
	keymap_free(&m);
	memset(&m, 0, sizeof(m));
	keymap_free(&m);
	CHECK(m.size == 0 && m.ksize == 0, "a zeroed map, never initialised, "
	      "frees");
}

static void test_many(void)
{
	enum { N = 200000 };
	struct keymap m;
	uint8_t k[18];
	uint8_t *seen = calloc(N, 1);
	const void *kp;
	uint64_t i, v, n = 0, bad = 0, dup = 0;
	size_t pos = 0;
	uint64_t *s;

	keymap_init(&m, sizeof(k));
	for (i = 0; i < N; i++) {
		key_of(i, k);
		s = keymap_slot(&m, k, true, NULL);
		if (!s)
			break;
		*s = i * 3 + 1;
	}
	CHECK(i == N && m.used == N, "%d keys added (%llu)", N,
	      (unsigned long long)m.used);
	CHECK(m.used * 2 <= m.size, "the table is at most half full "
	      "(%zu of %zu)", m.used, m.size);
	for (i = 0; i < N; i++) {
		key_of(i, k);
		if (!keymap_find(&m, k) || *keymap_find(&m, k) != i * 3 + 1)
			bad++;
	}
	CHECK(bad == 0, "each is found with its value after the growths "
	      "(%llu wrong)", (unsigned long long)bad);
	for (i = N; i < N + 1000; i++) {
		key_of(i, k);
		if (keymap_find(&m, k))
			bad++;
	}
	CHECK(bad == 0, "no key that was not added is found");
	while (seen && keymap_next(&m, &pos, &kp, &v)) {
		memcpy(&i, (const uint8_t *)kp + 10, 8);
		if (i >= N || v != i * 3 + 1)
			bad++;
		else if (seen[i]++)
			dup++;
		n++;
	}
	CHECK(seen && n == N && bad == 0 && dup == 0,
	      "a walk gives each entry once with its value (%llu, %llu bad, "
	      "%llu twice)", (unsigned long long)n, (unsigned long long)bad,
	      (unsigned long long)dup);
	free(seen);
	keymap_free(&m);
}

static void test_sizes(void)
{
	struct keymap m;
	uint8_t k[KEYMAP_KEY_MAX];
	size_t ks, i, ok = 0;

	for (ks = 1; ks <= KEYMAP_KEY_MAX; ks *= 2) {
		keymap_init(&m, ks);
		for (i = 0; i < 256; i++) {
			memset(k, 0, sizeof(k));
			k[ks - 1] = (uint8_t)i;
			*keymap_slot(&m, k, true, NULL) = i;
		}
		for (i = 0; i < 256; i++) {
			memset(k, 0, sizeof(k));
			k[ks - 1] = (uint8_t)i;
			if (keymap_find(&m, k) && *keymap_find(&m, k) == i)
				ok++;
		}
		CHECK(m.used == 256, "keys of %zu bytes: 256 distinct", ks);
		keymap_free(&m);
	}
	CHECK(ok == 256 * 7, "every one found for sizes 1 to 64 (%zu)", ok);
}

int main(void)
{
	test_basic();
	test_many();
	test_sizes();
	return check_done();
}
