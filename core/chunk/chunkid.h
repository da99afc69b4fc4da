/* chunkid.h — chunk ids and file digests: XXH3-128 through libxxhash's
 * _dispatch entry points (AVX2 where the CPU has it: twice the plain
 * symbols' speed).
 *
 * A chunk id is the 128-bit XXH3 of the chunk's bytes. A build with
 * -DMREG_TEST_ID_BITS=N keeps only the low N bits of every id, so that the
 * collision handling of the store can be tested with real collisions.
 *
 * A chunk's strong digest is the SHA-256 of its bytes (OpenSSL's
 * libcrypto: SHA-NI where the CPU has it, ~1.2 GB/s here, 7x libmd's
 * portable code), never truncated: what decides that two chunks of one
 * id are the same bytes where reading the stored one back costs a
 * request (registry/ingest.c).
 */
#ifndef MREG_CHUNKID_H
#define MREG_CHUNKID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MREG_ID_LEN 16
#define MREG_ID_HEX (2 * MREG_ID_LEN + 1)

struct mreg_id {
	uint8_t b[MREG_ID_LEN]; /* big-endian: high 64 bits first */
};

/* Computes the id of len bytes at p. */
void chunkid_of(const void *p, size_t len, struct mreg_id *ret);
/* True when a and b are the same id. */
bool chunkid_eq(const struct mreg_id *a, const struct mreg_id *b);
/* Writes the 32 hex digits and a NUL into buf (MREG_ID_HEX bytes). */
char *chunkid_hex(const struct mreg_id *id, char buf[MREG_ID_HEX]);
/* Parses 32 hex digits. -EINVAL if s is not that. */
int chunkid_parse(const char *s, struct mreg_id *ret);

#define MREG_STRONG_LEN 32

struct mreg_strong {
	uint8_t b[MREG_STRONG_LEN];
};

/* Computes the strong digest (SHA-256) of len bytes at p. */
void chunk_strong_of(const void *p, size_t len, struct mreg_strong *ret);
/* True when a and b are the same digest. */
bool chunk_strong_eq(const struct mreg_strong *a,
		     const struct mreg_strong *b);

/* Streaming digest of a whole file's content (XXH3-128, never truncated). */
struct digest_state {
	uint64_t opaque[80] /* >= sizeof(XXH3_state_t), 576 */ __attribute__((aligned(64)));
};
void digest_init(struct digest_state *st);
void digest_update(struct digest_state *st, const void *p, size_t len);
void digest_final(struct digest_state *st, struct mreg_id *ret);

#endif
