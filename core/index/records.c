/* records.c — encoders and decoders of the registry's index records.
 *
 * All integers little-endian (the machines mreg runs on; a big-endian port
 * would add byte swaps here and nowhere else).
 *
 * inode (IDX_INODES value), format 2:
 *	u8 format=2, u8 kind, u16 flags, u32 mode, u32 uid, u32 gid,
 *	u64 ino, parent, model, version, size,
 *	i64 mtime, ctime, btime, atime,
 *	u64 max_version, stages_ino, target, i64 sealed_at, u64 nfiles, stored,
 *	16-byte digest, u16 name length, u16 target length, name, target
 *	(format 1, still read, has no atime: it reads as mtime)
 * chunk (IDX_CHUNKS value): the bytes of the chunk's location (1 to
 *	CHUNK_LOC_MAX, as its store wrote them: chunk/loc.h), then u64 refs,
 *	then, in a record that has one, the chunk's 32-byte strong digest.
 *	The length tells which: 9 to CHUNK_LOC_MAX + 8 bytes without a
 *	digest (refs the last 8 bytes: every record before digests, and
 *	every record of a pack store), 41 and more with one (refs before the
 *	last 32). The pack store's locations are 16 bytes (u32 pack, u32
 *	len, u64 offset), so that its values are 24 bytes; the s3 store's
 *	are 20, its values 60 bytes.
 * extent (IDX_EXTENTS): key be64 ino + be64 offset; value 18-byte chunk
 *	key + u32 len (no extent over a hole: its bytes read as zeros)
 * history (IDX_HISTORY value): u64 seq, i64 time, u32 uid, u8 action,
 *	u64 from, u64 to, u8 len + stage, u8 len + from name, u8 len + to name
 */
#include "index/records.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "index/index.h"

struct wbuf {
	uint8_t *p;
	size_t n, size;
	bool overflow;
};

static void put(struct wbuf *w, const void *v, size_t len)
{
	if (w->n + len > w->size) {
		w->overflow = true;
		return;
	}
	memcpy(w->p + w->n, v, len);
	w->n += len;
}

#define PUT(w, v) put(w, &(v), sizeof(v))

struct rbuf {
	const uint8_t *p;
	size_t n, len;
	bool bad;
};

static void get(struct rbuf *r, void *v, size_t len)
{
	if (r->bad || r->n + len > r->len) {
		r->bad = true;
		memset(v, 0, len);
		return;
	}
	memcpy(v, r->p + r->n, len);
	r->n += len;
}

#define GET(r, v) get(r, &(v), sizeof(v))

#define INODE_FIXED (4 + 4 * 3 + 8 * 5 + 8 * 4 + 8 * 6 + 16 + 4)

size_t rec_inode_max(void)
{
	return INODE_FIXED + 256 + 4096;
}

size_t rec_inode_encode(const struct inode_rec *r, void *buf)
{
	struct wbuf w = { buf, 0, rec_inode_max(), false };
	uint8_t format = 2;
	uint16_t nl = (uint16_t)strnlen(r->name, sizeof(r->name) - 1);
	uint16_t tl = (uint16_t)strnlen(r->target_path,
					sizeof(r->target_path) - 1);

	PUT(&w, format);
	PUT(&w, r->kind);
	PUT(&w, r->flags);
	PUT(&w, r->mode);
	PUT(&w, r->uid);
	PUT(&w, r->gid);
	PUT(&w, r->ino);
	PUT(&w, r->parent);
	PUT(&w, r->model);
	PUT(&w, r->version);
	PUT(&w, r->size);
	PUT(&w, r->mtime);
	PUT(&w, r->ctime);
	PUT(&w, r->btime);
	PUT(&w, r->atime);
	PUT(&w, r->max_version);
	PUT(&w, r->stages_ino);
	PUT(&w, r->target);
	PUT(&w, r->sealed_at);
	PUT(&w, r->nfiles);
	PUT(&w, r->stored);
	put(&w, r->digest.b, MREG_ID_LEN);
	PUT(&w, nl);
	PUT(&w, tl);
	put(&w, r->name, nl);
	put(&w, r->target_path, tl);
	assert(!w.overflow);
	return w.n;
}

int rec_inode_decode(const void *p, size_t len, struct inode_rec *ret)
{
	struct rbuf r = { p, 0, len, false };
	struct inode_rec x;
	uint8_t format = 0;
	uint16_t nl = 0, tl = 0;

	memset(&x, 0, sizeof(x));
	GET(&r, format);
	GET(&r, x.kind);
	GET(&r, x.flags);
	GET(&r, x.mode);
	GET(&r, x.uid);
	GET(&r, x.gid);
	GET(&r, x.ino);
	GET(&r, x.parent);
	GET(&r, x.model);
	GET(&r, x.version);
	GET(&r, x.size);
	GET(&r, x.mtime);
	GET(&r, x.ctime);
	GET(&r, x.btime);
	if (format == 2)
		GET(&r, x.atime);
	else
		x.atime = x.mtime;
	GET(&r, x.max_version);
	GET(&r, x.stages_ino);
	GET(&r, x.target);
	GET(&r, x.sealed_at);
	GET(&r, x.nfiles);
	GET(&r, x.stored);
	get(&r, x.digest.b, MREG_ID_LEN);
	GET(&r, nl);
	GET(&r, tl);
	if (r.bad || (format != 1 && format != 2) || nl > 255 || tl > 4095 ||
	    x.kind < REC_KIND_FIRST || x.kind > REC_KIND_LAST)
		return -EIO;
	get(&r, x.name, nl);
	get(&r, x.target_path, tl);
	if (r.bad || r.n != len || memchr(x.name, 0, nl) ||
	    memchr(x.target_path, 0, tl))
		return -EIO;
	x.name[nl] = '\0';
	x.target_path[tl] = '\0';
	*ret = x;
	return 0;
}

void rec_chunk_key_make(const struct mreg_id *id, uint16_t n,
			struct chunk_key *k)
{
	memcpy(k->b, id->b, MREG_ID_LEN);
	k->b[MREG_ID_LEN] = (uint8_t)(n >> 8);
	k->b[MREG_ID_LEN + 1] = (uint8_t)n;
}

void rec_chunk_key_id(const struct chunk_key *k, struct mreg_id *ret)
{
	memcpy(ret->b, k->b, MREG_ID_LEN);
}

uint16_t rec_chunk_key_n(const struct chunk_key *k)
{
	return (uint16_t)(k->b[MREG_ID_LEN] << 8 | k->b[MREG_ID_LEN + 1]);
}

_Static_assert(CHUNK_LOC_MAX + 8 < 1 + 8 + MREG_STRONG_LEN,
	       "a record with a digest is longer than any without");

size_t rec_chunk_encode(const struct chunk_rec *c,
			uint8_t buf[CHUNK_REC_MAX])
{
	assert(c->loc.len >= 1 && c->loc.len <= CHUNK_LOC_MAX);
	memcpy(buf, c->loc.b, c->loc.len);
	memcpy(buf + c->loc.len, &c->refs, 8);
	if (!c->has_strong)
		return c->loc.len + 8u;
	memcpy(buf + c->loc.len + 8, c->strong.b, MREG_STRONG_LEN);
	return c->loc.len + 8u + MREG_STRONG_LEN;
}

int rec_chunk_decode(const void *p, size_t len, struct chunk_rec *ret)
{
	const uint8_t *b = p;
	bool strong = len > CHUNK_LOC_MAX + 8;
	size_t n = len - 8 - (strong ? MREG_STRONG_LEN : 0);

	if (len < 9 || len > CHUNK_REC_MAX)
		return -EIO;
	memset(ret, 0, sizeof(*ret));
	ret->loc.len = (uint8_t)n;
	memcpy(ret->loc.b, b, n);
	memcpy(&ret->refs, b + n, 8);
	if (strong) {
		ret->has_strong = true;
		memcpy(ret->strong.b, b + n + 8, MREG_STRONG_LEN);
	}
	return 0;
}

void rec_extent_key(uint64_t ino, uint64_t offset, uint8_t buf[EXTENT_KEY_LEN])
{
	be64_put(buf, ino);
	be64_put(buf + 8, offset);
}

void rec_extent_encode(const struct extent_rec *e, uint8_t buf[EXTENT_VAL_LEN])
{
	memcpy(buf, e->chunk.b, CHUNK_KEY_LEN);
	memcpy(buf + CHUNK_KEY_LEN, &e->len, 4);
}

int rec_extent_decode(const void *key, size_t klen, const void *val,
		      size_t vlen, struct extent_rec *ret)
{
	if (klen != EXTENT_KEY_LEN || vlen != EXTENT_VAL_LEN)
		return -EIO;
	ret->offset = be64_get((const uint8_t *)key + 8);
	memcpy(ret->chunk.b, val, CHUNK_KEY_LEN);
	memcpy(&ret->len, (const uint8_t *)val + CHUNK_KEY_LEN, 4);
	if (ret->len == 0)
		return -EIO;
	return 0;
}

static void put_str8(struct wbuf *w, const char *s, size_t max)
{
	uint8_t l = (uint8_t)strnlen(s, max - 1);

	PUT(w, l);
	put(w, s, l);
}

static void get_str8(struct rbuf *r, char *s, size_t size)
{
	uint8_t l = 0;

	GET(r, l);
	if (l >= size) {
		r->bad = true;
		s[0] = '\0';
		return;
	}
	get(r, s, l);
	s[r->bad ? 0 : l] = '\0';
	if (!r->bad && memchr(s, 0, l))
		r->bad = true;
}

size_t rec_history_encode(const struct history_rec *h, void *buf, size_t size)
{
	struct wbuf w = { buf, 0, size, false };

	PUT(&w, h->seq);
	PUT(&w, h->time);
	PUT(&w, h->uid);
	PUT(&w, h->action);
	PUT(&w, h->from);
	PUT(&w, h->to);
	put_str8(&w, h->stage, sizeof(h->stage));
	put_str8(&w, h->from_name, sizeof(h->from_name));
	put_str8(&w, h->to_name, sizeof(h->to_name));
	return w.overflow ? 0 : w.n;
}

int rec_history_decode(const void *p, size_t len, struct history_rec *ret)
{
	struct rbuf r = { p, 0, len, false };
	struct history_rec h;

	memset(&h, 0, sizeof(h));
	GET(&r, h.seq);
	GET(&r, h.time);
	GET(&r, h.uid);
	GET(&r, h.action);
	GET(&r, h.from);
	GET(&r, h.to);
	get_str8(&r, h.stage, sizeof(h.stage));
	get_str8(&r, h.from_name, sizeof(h.from_name));
	get_str8(&r, h.to_name, sizeof(h.to_name));
	if (r.bad || r.n != len || h.action < HIST_PROMOTE ||
	    h.action > HIST_ROLLBACK)
		return -EIO;
	*ret = h;
	return 0;
}

const char *rec_history_action(int action)
{
	static const char *const names[] = {
		[HIST_PROMOTE] = "promote",
		[HIST_MOVE] = "move",
		[HIST_REMOVE] = "remove",
		[HIST_ROLLBACK] = "rollback",
	};

	if (action < HIST_PROMOTE || action > HIST_ROLLBACK)
		return "unknown";
	return names[action];
}
