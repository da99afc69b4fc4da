/* chunkid.c — XXH3-128 ids and digests, SHA-256 strong digests (see
 * chunkid.h). */
#include "chunk/chunkid.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <openssl/sha.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#include <xxh_x86dispatch.h>

static void from_hash(XXH128_hash_t h, struct mreg_id *ret)
{
	int i;

	for (i = 0; i < 8; i++) {
		ret->b[i] = (uint8_t)(h.high64 >> (56 - 8 * i));
		ret->b[8 + i] = (uint8_t)(h.low64 >> (56 - 8 * i));
	}
}

void chunkid_of(const void *p, size_t len, struct mreg_id *ret)
{
	XXH128_hash_t h = XXH3_128bits_dispatch(p, len);

#ifdef MREG_TEST_ID_BITS
	h.high64 = 0;
	h.low64 &= (MREG_TEST_ID_BITS >= 64) ? ~0ULL :
		   ((1ULL << MREG_TEST_ID_BITS) - 1);
#endif
	from_hash(h, ret);
}

bool chunkid_eq(const struct mreg_id *a, const struct mreg_id *b)
{
	return memcmp(a->b, b->b, MREG_ID_LEN) == 0;
}

char *chunkid_hex(const struct mreg_id *id, char buf[MREG_ID_HEX])
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 0; i < MREG_ID_LEN; i++) {
		buf[2 * i] = hex[id->b[i] >> 4];
		buf[2 * i + 1] = hex[id->b[i] & 15];
	}
	buf[2 * MREG_ID_LEN] = '\0';
	return buf;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int chunkid_parse(const char *s, struct mreg_id *ret)
{
	struct mreg_id id;
	int i, hi, lo;

	if (!s || strlen(s) != 2 * MREG_ID_LEN)
		return -EINVAL;
	for (i = 0; i < MREG_ID_LEN; i++) {
		hi = hexval(s[2 * i]);
		lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		id.b[i] = (uint8_t)(hi << 4 | lo);
	}
	*ret = id;
	return 0;
}

_Static_assert(MREG_STRONG_LEN == SHA256_DIGEST_LENGTH, "a SHA-256");

void chunk_strong_of(const void *p, size_t len, struct mreg_strong *ret)
{
	SHA256(p, len, ret->b);
}

bool chunk_strong_eq(const struct mreg_strong *a,
		     const struct mreg_strong *b)
{
	return memcmp(a->b, b->b, MREG_STRONG_LEN) == 0;
}

_Static_assert(sizeof(struct digest_state) >= sizeof(XXH3_state_t),
	       "digest_state too small");

void digest_init(struct digest_state *st)
{
	XXH3_INITSTATE((XXH3_state_t *)st);
	XXH3_128bits_reset((XXH3_state_t *)st);
}

void digest_update(struct digest_state *st, const void *p, size_t len)
{
	XXH3_128bits_update_dispatch((XXH3_state_t *)st, p, len);
}

void digest_final(struct digest_state *st, struct mreg_id *ret)
{
	from_hash(XXH3_128bits_digest((XXH3_state_t *)st), ret);
}
