/* fuzz-records.c — libFuzzer entry point for the decoders of the records
 * kept in LMDB (records.c): a damaged index must give -EIO, never a crash.
 *
 * The first byte picks the decoder (inode, chunk, extent, history); the
 * rest is the record (for an extent, the second byte is the key's length,
 * then the key, then the value). When a decoder accepts the bytes, the
 * record is encoded again: the encoding must be the input byte for byte
 * (records have one encoding, so nothing can be read one way and written
 * back another), and must decode again. An inode record of the older
 * format 1 (no atime) is written back as format 2 and must decode to the
 * same record.
 */
#include "index/records.h"
#include "index/index.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inode(const uint8_t *p, size_t n)
{
	struct inode_rec *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	uint8_t *buf = malloc(rec_inode_max());
	size_t len;
	int r;

	if (!a || !b || !buf)
		abort();
	r = rec_inode_decode(p, n, a);
	if (r != 0 && r != -EIO)
		abort();
	if (r == 0) {
		if (strlen(a->name) > 255 || strlen(a->target_path) > 4095)
			abort();
		len = rec_inode_encode(a, buf);
		if (p[0] != 1 && (len != n || memcmp(buf, p, n) != 0))
			abort();
		if (rec_inode_decode(buf, len, b) != 0 || b->ino != a->ino ||
		    b->atime != a->atime || b->mtime != a->mtime ||
		    b->size != a->size || b->mode != a->mode ||
		    strcmp(b->name, a->name) != 0 ||
		    strcmp(b->target_path, a->target_path) != 0)
			abort();
		if (p[0] == 1 && a->atime != a->mtime)
			abort();
	}
	free(a);
	free(b);
	free(buf);
}

static void chunk(const uint8_t *p, size_t n)
{
	struct chunk_rec a, b;
	uint8_t buf[CHUNK_REC_MAX];
	int r;

	r = rec_chunk_decode(p, n, &a);
	if (r != 0 && r != -EIO)
		abort();
	if (r == 0) {
		if (n < 9 || n > CHUNK_REC_MAX || a.loc.len != n - 8)
			abort();
		if (rec_chunk_encode(&a, buf) != n ||
		    memcmp(buf, p, n) != 0 ||
		    rec_chunk_decode(buf, n, &b) != 0 ||
		    memcmp(&a.loc, &b.loc, sizeof(a.loc)) != 0 ||
		    a.refs != b.refs)
			abort();
	}
}

static void extent(const uint8_t *p, size_t n)
{
	struct extent_rec a, b;
	uint8_t k[EXTENT_KEY_LEN], v[EXTENT_VAL_LEN];
	size_t klen;
	int r;

	if (n < 1)
		return;
	klen = p[0] % 32;
	if (klen > n - 1)
		klen = n - 1;
	r = rec_extent_decode(p + 1, klen, p + 1 + klen, n - 1 - klen, &a);
	if (r != 0 && r != -EIO)
		abort();
	if (r == 0) {
		if (a.len == 0)
			abort();
		rec_extent_encode(&a, v);
		rec_extent_key(be64_get(p + 1), a.offset, k);
		if (memcmp(v, p + 1 + klen, sizeof(v)) != 0 ||
		    memcmp(k, p + 1, sizeof(k)) != 0)
			abort();
		if (rec_extent_decode(k, sizeof(k), v, sizeof(v), &b) != 0 ||
		    b.offset != a.offset || b.len != a.len ||
		    memcmp(&b.chunk, &a.chunk, sizeof(a.chunk)) != 0)
			abort();
	}
}

static void history(const uint8_t *p, size_t n)
{
	struct history_rec a, b;
	uint8_t buf[512];
	size_t len;
	int r;

	r = rec_history_decode(p, n, &a);
	if (r != 0 && r != -EIO)
		abort();
	if (r == 0) {
		if (strlen(a.stage) > 64 || strlen(a.from_name) > 128 ||
		    strlen(a.to_name) > 128 || rec_history_action(a.action)
		    [0] == 'u')
			abort();
		len = rec_history_encode(&a, buf, sizeof(buf));
		if (len != n || memcmp(buf, p, n) != 0)
			abort();
		if (rec_history_decode(buf, len, &b) != 0 || b.seq != a.seq ||
		    strcmp(b.to_name, a.to_name) != 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p;

	if (size < 1)
		return 0;
	/* a copy of exactly the record's length, so that ASan sees any
	 * read past its end */
	p = malloc(size - 1 ? size - 1 : 1);
	if (!p)
		return 0;
	memcpy(p, data + 1, size - 1);
	switch (data[0] % 4) {
	case 0:
		inode(p, size - 1);
		break;
	case 1:
		chunk(p, size - 1);
		break;
	case 2:
		extent(p, size - 1);
		break;
	case 3:
		history(p, size - 1);
		break;
	}
	free(p);
	return 0;
}
