/* packfmt.h — the bytes of a pack: its header and the framing of its
 * records (private to store/). Shared by the backends that keep packs:
 * the pack files of store/pack/ and the pack objects of store/s3/ (an S3
 * pack object holds exactly a pack file's bytes). Pure but for the
 * walker's reads, which go through the caller's callback.
 *
 * Format (little-endian):
 *	offset 0   8 bytes   "MREGPACK"
 *	offset 8   u32       format, 1
 *	offset 12  u32       pack number (the S3 store writes the low 32
 *	                     bits of its 64-bit object id)
 *	offset 16  records, back to back, until the end:
 *	           u32       0x4b4e4843 ("CHNK")
 *	           u32       length of the data
 *	           16 bytes  chunk id (XXH3-128, big-endian, chunkid.h)
 *	           length bytes of data
 * A location's offset points at the data, after the record header.
 *
 * The functions carry the store layer's prefix pack_ (tests/layers.sh).
 */
#ifndef MREG_STORE_PACKFMT_H
#define MREG_STORE_PACKFMT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "chunk/chunkid.h"

#define PACK_MAGIC "MREGPACK"
#define PACK_FORMAT 1
#define PACK_HEADER_SIZE 16
#define PACK_RECORD_HEADER 24
#define PACK_RECORD_MAGIC 0x4b4e4843u

static inline void pack_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t pack_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline void pack_put_le64(uint8_t *p, uint64_t v)
{
	pack_put_le32(p, (uint32_t)v);
	pack_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t pack_get_le64(const uint8_t *p)
{
	return (uint64_t)pack_get_le32(p) |
	       (uint64_t)pack_get_le32(p + 4) << 32;
}

/* Writes the 16-byte header of pack number num at p. */
void pack_header_encode(uint8_t *p, uint32_t num);

/* Checks a pack header (PACK_HEADER_SIZE bytes at p) for pack number num:
 * NULL when it is right, else what is wrong ("bad pack header"). */
const char *pack_header_check(const uint8_t *p, uint32_t num);

/* Writes the 24-byte record header of a chunk id of len bytes at p. */
void pack_record_encode(uint8_t *p, const struct mreg_id *id,
			   uint32_t len);

/* Checks a record header (PACK_RECORD_HEADER bytes at p) that should
 * frame len bytes of data, and name id unless id is NULL: NULL when it
 * does, else what is wrong ("bad record magic", "record length differs",
 * "record names another chunk"). */
const char *pack_record_check(const uint8_t *p, uint32_t len,
				 const struct mreg_id *id);

/* The length and the id a record header names (its magic unchecked). */
uint32_t pack_record_len(const uint8_t *p);
void pack_record_id(const uint8_t *p, struct mreg_id *ret);

/* Walking a pack's records in order, whatever holds its bytes (a file,
 * an object): src->read(arg, off, buf, n) reads up to n bytes at off and
 * returns how many (fewer only at the end) or a negative errno. The walk
 * reads ahead a window of bytes at a time (more for a larger record;
 * a pack smaller than the window is read whole into a buffer of its
 * size), checks the header for pack number num and each record's
 * framing, and calls fn with each record's id, data offset, data (valid
 * during the call) and length. Returns 0, fn's non-zero, a negative
 * errno of read, -ENOMEM, or -EIO for damage (a bad header or magic, a
 * record cut short by the end: a torn write counts as damage) with *why
 * saying what and *at where (*why NULL for any other result); fn saw
 * every record before it. */
struct pack_source {
	ssize_t (*read)(void *arg, uint64_t off, void *buf, size_t n);
	void *arg;
	uint64_t size;           /* of the pack */
	size_t window;           /* bytes read ahead at a time */
};
int pack_walk(const struct pack_source *src, uint32_t num,
	      int (*fn)(void *arg, const struct mreg_id *id, uint64_t data_off,
			const void *data, uint32_t len),
	      void *arg, const char **why, uint64_t *at);

#endif
