/* ingest.c — content into the store, and the index records that name it:
 * chunking, deduplication, extents (SPEC §5).
 *
 * Ingesting cuts content into chunks (chunk/chunker.h) and stores each
 * distinct chunk once. A chunk whose id the index holds already is named
 * again instead of stored, once proven the same bytes when dedup_verify
 * is on: an id match of other bytes is a collision, and the next record
 * of that id is looked at (a new one is made if none matches:
 * rec_chunk_key_n). A chunk met earlier in the same ingest is stored once
 * (struct fresh_map).
 *
 * Dedup is a trust boundary: the XXH3 id is not collision-resistant, so
 * a user who can register crafted bytes could otherwise make another
 * user's file read them. The proof (same_chunk) is the strong digest
 * (SHA-256, chunk/chunkid.h) that the chunk's record keeps, where it has
 * one; else the stored bytes, read back and compared. Chunks put into a
 * store that is not local (s3: reading one back is a ranged GET, and a
 * new host's cache is empty) get a digest in their record; a local store
 * compares bytes (a read from the page cache costs less than hashing
 * every chunk with SHA-256: README, "Chunks in S3"). Records written
 * before digests existed have none and are compared by their bytes.
 * A stored copy found to no longer hash to its id, while comparing, is
 * damage, not a collision: the bytes being ingested replace it, for
 * every file that names it.
 *
 * Durability is the caller's to order (the writer's commit, push): chunks
 * are put in a store batch, store_sync()ed, and only then named by
 * reg_ingest_apply_txn() in a transaction: a chunk record per chunk with
 * its references counted, an extent record per chunk of the file. A
 * chunk gc took between the ingest and the apply makes it -EAGAIN:
 * ingest again.
 *
 * Also here: a chunk read back and checked (reg_chunk_read: one gc moved
 * is looked up again), a file's extent records, and the digest of content
 * made of chunks, for a file whose digest was left to its seal
 * (INODE_NODIGEST).
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk/chunker.h"
#include "log.h"

#define INGEST_BLOCK (4u << 20)

void reg_ingest_release(struct ingest *in)
{
	free(in->v);
	memset(in, 0, sizeof(*in));
}

int reg_ingest_push(struct ingest *in, const struct chunk_ent *e)
{
	if (ARRAY_GROW(in->v, in->cap, in->n) < 0)
		return -ENOMEM;
	in->v[in->n] = *e;
	in->v[in->n++].off = in->end;
	in->end += e->len;
	return 0;
}

/* The first entry of in->v at or after start with id (struct
 * fresh_map), or -1. */
static int fresh_find(struct fresh_map *m, const struct mreg_id *id,
		      int start)
{
	const uint64_t *head;
	int i;

	if (!m->heads.ksize || !(head = keymap_find(&m->heads, id)))
		return -1;
	for (i = (int)*head; i >= 0; i = m->next[i])
		if (i >= start)
			return i;
	return -1;
}

/* Adds entry idx of in->v, the newest (idx grows with each add). */
static int fresh_add(struct fresh_map *m, const struct ingest *in, int idx)
{
	uint64_t *head;
	bool fresh;
	int i;

	if (!m->heads.ksize)
		keymap_init(&m->heads, MREG_ID_LEN);
	while ((size_t)idx >= m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 1024;
		int *n = reallocarray(m->next, cap, sizeof(*n));

		if (!n)
			return -ENOMEM;
		m->next = n;
		m->cap = cap;
	}
	m->next[idx] = -1;
	head = keymap_slot(&m->heads, in->v[idx].id.b, true, &fresh);
	if (!head)
		return -ENOMEM;
	if (fresh) {
		*head = (uint64_t)idx;
		return 0;
	}
	for (i = (int)*head; m->next[i] >= 0; i = m->next[i])
		;
	m->next[i] = idx;
	return 0;
}

void reg_fresh_free(struct fresh_map *m)
{
	keymap_free(&m->heads);
	free(m->next);
	memset(m, 0, sizeof(*m));
}

struct find_arg {
	struct reg_registry *reg;
	const struct chunk_ent *e;
	const struct mreg_id *id;
	const void *data;
	uint32_t len;
	uint8_t *tmp;
	struct chunk_key key;
	struct chunk_loc loc;
	bool found;
	bool damaged;             /* a record of this id holds bad bytes */
	struct chunk_key damaged_key;
	int err;
};

/* Chunks put into this store get a strong digest: dedup_verify is on
 * and reading a chunk back is not a local read. */
static bool wants_strong(const struct reg_registry *reg)
{
	return reg->cfg->dedup_verify &&
	       !(store_caps(reg->st) & STORE_LOCAL);
}

/* Is the stored chunk at loc (strong: its record's digest, or NULL) the
 * same as ours (e: its length and digest; p: its bytes)? Decided by the
 * digests when both have one, else by reading the stored bytes into tmp
 * (e->len bytes) and comparing. 1 yes, 0 no (a chunk gone is not ours),
 * or -errno of the read. */
static int same_chunk(struct reg_registry *reg, const struct chunk_loc *loc,
		      const struct mreg_strong *strong,
		      const struct chunk_ent *e, const void *p, uint8_t *tmp)
{
	struct store_span sp;
	int r;

	if ((r = store_loc_span(reg->st, loc, &sp)) < 0)
		return r;
	if (sp.len != e->len)
		return 0;
	if (strong && e->has_strong)
		return chunk_strong_eq(strong, &e->strong);
	r = store_get_raw(reg->st, loc, tmp);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	return memcmp(tmp, p, e->len) == 0;
}

/* Are the bytes read from a stored chunk (of the same length as ours)
 * not those its id says? Then it is damage, not a collision. */
static bool stored_damaged(const uint8_t *stored, uint32_t len,
			   const struct mreg_id *id)
{
	struct mreg_id got;

	chunkid_of(stored, len, &got);
	return !chunkid_eq(&got, id);
}

static int find_one(void *arg, const struct idx_val *k,
		    const struct idx_val *v)
{
	struct find_arg *a = arg;
	struct store_span sp;
	struct chunk_rec c;
	int r;

	if (k->len != CHUNK_KEY_LEN ||
	    rec_chunk_decode(v->data, v->len, &c) < 0 ||
	    store_loc_span(a->reg->st, &c.loc, &sp) < 0)
		return a->err = -EIO;
	if (a->reg->cfg->dedup_verify) {
		/* only bytes read back can show damage */
		bool by_bytes = !(c.has_strong && a->e->has_strong);

		r = same_chunk(a->reg, &c.loc, c.has_strong ? &c.strong : NULL,
			       a->e, a->data, a->tmp);
		if (by_bytes &&
		    (r == -EIO || (r == 0 && sp.len == a->len &&
				   stored_damaged(a->tmp, a->len, a->id)))) {
			/* the stored copy no longer hashes to its id: ours
			   will replace it (pushing the same bytes heals) */
			if (!a->damaged)
				memcpy(a->damaged_key.b, k->data,
				       CHUNK_KEY_LEN);
			a->damaged = true;
			return 0;
		}
		if (r < 0)
			return a->err = r;
		if (!r)
			return 0; /* a collision: look further */
	} else if (sp.len != a->len) {
		return 0;
	}
	memcpy(a->key.b, k->data, CHUNK_KEY_LEN);
	a->loc = c.loc;
	a->found = true;
	return 1;
}

static int find_chunk_txn(struct idx_txn *t, void *arg)
{
	struct find_arg *a = arg;

	a->found = false;
	a->damaged = false;
	a->err = 0;
	idx_scan(t, IDX_CHUNKS, a->id->b, MREG_ID_LEN, NULL, 0, find_one, a);
	return a->err;
}

int reg_ingest_chunk(struct reg_registry *reg, struct ingest *in,
		     struct fresh_map *fm, const uint8_t *p, uint32_t len,
		     uint8_t *tmp)
{
	struct chunk_ent e = { .len = len, .dup_of = -1 };
	struct find_arg fa = { .reg = reg, .data = p, .len = len, .tmp = tmp };
	int r, d, from = 0;

	atomic_fetch_add(&reg->chunked_bytes, len);
	chunkid_of(p, len, &e.id);
	if (wants_strong(reg)) {
		chunk_strong_of(p, len, &e.strong);
		e.has_strong = true;
	}
	/* the same bytes earlier in this ingest */
	while ((d = fresh_find(fm, &e.id, from)) >= 0) {
		if (!reg->cfg->dedup_verify) {
			e.dup_of = d;
			break;
		}
		r = same_chunk(reg, &in->v[d].loc, in->v[d].has_strong ?
			       &in->v[d].strong : NULL, &e, p, tmp);
		if (r < 0)
			return r;
		if (r) {
			e.dup_of = d;
			break;
		}
		from = d + 1;
	}
	if (e.dup_of >= 0) {
		e.fresh = true;
		e.loc = in->v[e.dup_of].loc;
		return reg_ingest_push(in, &e);
	}
	fa.e = &e;
	fa.id = &e.id;
	r = idx_read(reg->ix, find_chunk_txn, &fa);
	if (r < 0)
		return r;
	if (fa.found) {
		e.key = fa.key;
		e.loc = fa.loc; /* to read it back, should the file need a spool */
		return reg_ingest_push(in, &e);
	}
	r = store_put(reg->st, &e.id, p, len, &e.loc);
	if (r < 0)
		return r;
	e.fresh = true;
	if (fa.damaged) {
		e.heal = true;
		e.key = fa.damaged_key;
	}
	in->new_bytes += len;
	r = reg_ingest_push(in, &e);
	if (r < 0)
		return r;
	return fresh_add(fm, in, (int)(in->n - 1));
}

int reg_ingest_keep(struct ingest *in, struct fresh_map *fm,
		    const struct chunk_ent *e)
{
	struct chunk_ent k = *e;
	int d, r;

	k.dup_of = -1;
	if (k.fresh) {
		/* a fresh chunk kept twice (a run of equal chunks stored
		   once) is named once */
		for (d = fresh_find(fm, &k.id, 0); d >= 0;
		     d = fresh_find(fm, &k.id, d + 1))
			if (chunk_loc_eq(&in->v[d].loc, &k.loc)) {
				k.dup_of = d;
				break;
			}
	}
	in->end = e->off;
	if ((r = reg_ingest_push(in, &k)) < 0)
		return r;
	if (k.fresh && k.dup_of < 0)
		return fresh_add(fm, in, (int)(in->n - 1));
	return 0;
}

int reg_ingest_fd(struct reg_registry *reg, int fd, uint64_t size,
		  struct ingest *in, void (*progress)(void *arg, uint64_t n),
		  void *parg)
{
	const struct chunker_params *cp = &reg->chunker;
	struct fresh_map fm = { 0 };
	struct digest_state ds;
	struct chunker ch;
	uint8_t *buf, *tmp;
	size_t have = 0, start = 0, scan = 0, cut;
	uint64_t off = 0;
	ssize_t n;
	int r = 0;

	memset(in, 0, sizeof(*in));
	buf = malloc(INGEST_BLOCK + cp->max_size);
	tmp = malloc(cp->max_size);
	if (!buf || !tmp) {
		r = -ENOMEM;
		goto out;
	}
	digest_init(&ds);
	chunker_init(&ch, cp);
	while (off < size) {
		size_t want = INGEST_BLOCK;

		if (want > size - off)
			want = (size_t)(size - off);
		n = pread(fd, buf + have, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0) {
			r = -EIO; /* the file shrank under us */
			goto out;
		}
		digest_update(&ds, buf + have, (size_t)n);
		off += (uint64_t)n;
		have += (size_t)n;
		while ((cut = chunker_scan(&ch, buf + scan, have - scan)) !=
		       CHUNKER_NO_CUT) {
			r = reg_ingest_chunk(reg, in, &fm, buf + start,
					     (uint32_t)(scan + cut - start),
					     tmp);
			if (r < 0)
				goto out;
			start = scan = scan + cut;
		}
		scan = have;
		memmove(buf, buf + start, have - start);
		have -= start;
		scan -= start;
		start = 0;
		if (progress)
			progress(parg, (uint64_t)n);
	}
	if (have > 0) {
		r = reg_ingest_chunk(reg, in, &fm, buf, (uint32_t)have, tmp);
		if (r < 0)
			goto out;
	}
	in->size = size;
	digest_final(&ds, &in->digest);
out:
	reg_fresh_free(&fm);
	free(buf);
	free(tmp);
	if (r < 0)
		reg_ingest_release(in);
	return r;
}

struct locate_arg {
	struct chunk_key key;
	struct chunk_loc loc;
};

static int locate_txn(struct idx_txn *t, void *arg)
{
	struct locate_arg *a = arg;
	struct chunk_rec c;
	int r = reg_chunk_get_txn(t, &a->key, &c);

	if (r == 0)
		a->loc = c.loc;
	return r;
}

int reg_extent_get(struct reg_registry *reg, const struct chunk_loc *loc,
		   const struct mreg_id *id, uint32_t len, void *buf)
{
	struct store_span sp;
	char where[256];

	if (store_loc_span(reg->st, loc, &sp) == 0 && sp.len != len)
		return log_err(-EIO, "bad chunk at %s: %u bytes, where its "
			       "file's extent has %u (a damaged index)",
			       store_loc_name(reg->st, loc, where,
					      sizeof(where)), sp.len, len);
	return store_get(reg->st, loc, id, buf);
}

int reg_chunk_read(struct reg_registry *reg, struct chunk_ent *e, void *buf)
{
	int r = reg_extent_get(reg, &e->loc, &e->id, e->len, buf);

	if (r == -ENOENT && !e->fresh) {
		/* gc moved a chunk we share: find its new place */
		struct locate_arg la = { .key = e->key };

		r = idx_read(reg->ix, locate_txn, &la);
		if (r == 0) {
			e->loc = la.loc;
			r = reg_extent_get(reg, &e->loc, &e->id, e->len, buf);
		}
	}
	return r == -ENOENT ? -EIO : r;
}

int reg_chunk_get_txn(struct idx_txn *t, const struct chunk_key *k,
		      struct chunk_rec *ret)
{
	struct idx_val v;
	int r = idx_get(t, IDX_CHUNKS, k->b, CHUNK_KEY_LEN, &v);

	if (r < 0)
		return r;
	return rec_chunk_decode(v.data, v.len, ret);
}

static int chunk_put_txn(struct idx_txn *t, const struct chunk_key *k,
			 const struct chunk_rec *c)
{
	uint8_t buf[CHUNK_REC_MAX];
	size_t n = rec_chunk_encode(c, buf);

	return idx_put(t, IDX_CHUNKS, k->b, CHUNK_KEY_LEN, buf, n, 0);
}

struct pick_arg {
	struct reg_registry *reg;
	const struct chunk_ent *e;
	uint8_t *a, *b;
	struct chunk_key key;
	int max_n;
	bool found;
	int err;
};

/* A fresh chunk meets what another writer stored meanwhile. */
static int pick_one(void *arg, const struct idx_val *k,
		    const struct idx_val *v)
{
	struct pick_arg *p = arg;
	struct store_span sp;
	struct chunk_key key;
	struct chunk_rec c;
	int r;

	if (k->len != CHUNK_KEY_LEN ||
	    rec_chunk_decode(v->data, v->len, &c) < 0 ||
	    store_loc_span(p->reg->st, &c.loc, &sp) < 0)
		return p->err = -EIO;
	memcpy(key.b, k->data, CHUNK_KEY_LEN);
	if (rec_chunk_key_n(&key) > p->max_n)
		p->max_n = rec_chunk_key_n(&key);
	if (sp.len != p->e->len)
		return 0;
	if (p->reg->cfg->dedup_verify) {
		/* ours read back, unless the digests decide */
		if (!(c.has_strong && p->e->has_strong) &&
		    (r = store_get_raw(p->reg->st, &p->e->loc, p->a)) < 0)
			return p->err = r;
		r = same_chunk(p->reg, &c.loc, c.has_strong ? &c.strong : NULL,
			       p->e, p->a, p->b);
		if (r < 0)
			return p->err = r;
		if (!r)
			return 0;
	}
	p->key = key;
	p->found = true;
	return 1;
}

int reg_ingest_apply_txn(struct reg_registry *reg, struct idx_txn *t,
			 const struct ingest *in_c, uint64_t ino)
{
	struct ingest *in = (struct ingest *)in_c;
	uint8_t ek[EXTENT_KEY_LEN], ev[EXTENT_VAL_LEN];
	struct chunk_key *keys;
	struct chunk_rec c;
	struct extent_rec x;
	size_t i;
	int r = 0;

	keys = calloc(in->n ? in->n : 1, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (i = 0; i < in->n; i++) {
		struct chunk_ent *e = &in->v[i];

		if (!e->fresh) {
			keys[i] = e->key;
			r = reg_chunk_get_txn(t, &keys[i], &c);
			if (r == -ENOENT)
				r = -EAGAIN; /* gc took it: ingest again */
			if (r < 0)
				goto out;
			c.refs++;
		} else if (e->dup_of >= 0) {
			keys[i] = keys[e->dup_of];
			if ((r = reg_chunk_get_txn(t, &keys[i], &c)) < 0)
				goto out;
			c.refs++;
		} else if (e->heal && reg_chunk_get_txn(t, &e->key, &c) == 0) {
			/* our good copy takes the damaged one's place, for
			   every file that names it */
			keys[i] = e->key;
			c.loc = e->loc;
			c.has_strong = e->has_strong;
			c.strong = e->strong;
			c.refs++;
		} else {
			struct pick_arg p = { .reg = reg, .e = e, .max_n = -1 };

			if (reg->cfg->dedup_verify) {
				p.a = malloc(e->len);
				p.b = malloc(e->len);
				if (!p.a || !p.b) {
					free(p.a);
					free(p.b);
					r = -ENOMEM;
					goto out;
				}
			}
			idx_scan(t, IDX_CHUNKS, e->id.b, MREG_ID_LEN, NULL, 0,
				 pick_one, &p);
			free(p.a);
			free(p.b);
			if ((r = p.err) < 0)
				goto out;
			if (p.found) {
				keys[i] = p.key;
				r = reg_chunk_get_txn(t, &keys[i], &c);
				if (r < 0)
					goto out;
				c.refs++;
			} else {
				if (p.max_n >= 0xffff) {
					r = -ENOSPC;
					goto out;
				}
				rec_chunk_key_make(&e->id,
						   (uint16_t)(p.max_n + 1),
						   &keys[i]);
				memset(&c, 0, sizeof(c));
				c.loc = e->loc;
				c.refs = 1;
				c.has_strong = e->has_strong;
				c.strong = e->strong;
			}
		}
		if ((r = chunk_put_txn(t, &keys[i], &c)) < 0)
			goto out;
		x.offset = e->off;
		x.len = e->len;
		x.chunk = keys[i];
		rec_extent_key(ino, e->off, ek);
		rec_extent_encode(&x, ev);
		r = idx_put(t, IDX_EXTENTS, ek, sizeof(ek), ev, sizeof(ev), 0);
		if (r < 0)
			goto out;
	}
	/* what each chunk is named by, for whoever keeps the content */
	for (i = 0; i < in->n; i++)
		in->v[i].key = keys[i];
out:
	free(keys);
	return r;
}

static int collect_ext(void *arg, const struct idx_val *k,
		       const struct idx_val *v)
{
	struct ext_list *l = arg;
	struct extent_rec x;

	if (rec_extent_decode(k->data, k->len, v->data, v->len, &x) < 0)
		return l->err = -EIO;
	if (ARRAY_GROW(l->v, l->cap, l->n) < 0)
		return l->err = -ENOMEM;
	l->v[l->n++] = x;
	return 0;
}

int reg_extents_load_txn(struct idx_txn *t, uint64_t ino, struct ext_list *l)
{
	uint8_t p[8];

	memset(l, 0, sizeof(*l));
	be64_put(p, ino);
	idx_scan(t, IDX_EXTENTS, p, 8, NULL, 0, collect_ext, l);
	if (l->err < 0) {
		free(l->v);
		l->v = NULL;
	}
	return l->err;
}

int reg_extent_unref_txn(struct idx_txn *t, uint64_t ino, uint64_t off,
			 const struct chunk_key *key)
{
	uint8_t ek[EXTENT_KEY_LEN];
	struct chunk_rec c;
	int r;

	rec_extent_key(ino, off, ek);
	if ((r = idx_del(t, IDX_EXTENTS, ek, sizeof(ek))) < 0)
		return r;
	r = reg_chunk_get_txn(t, key, &c);
	if (r == -ENOENT)
		return 0; /* fsck reports it; nothing to count down */
	if (r < 0)
		return r;
	if (c.refs > 0)
		c.refs--;
	return chunk_put_txn(t, key, &c);
}

int reg_extents_drop_txn(struct idx_txn *t, uint64_t ino)
{
	struct ext_list l;
	size_t i;
	int r;

	r = reg_extents_load_txn(t, ino, &l);
	if (r < 0)
		return r;
	for (i = 0; i < l.n && r == 0; i++)
		r = reg_extent_unref_txn(t, ino, l.v[i].offset, &l.v[i].chunk);
	free(l.v);
	return r;
}

int reg_content_digest(struct reg_registry *reg, struct chunk_ent *v, size_t n,
		       uint64_t size, bool in_txn, struct mreg_id *ret)
{
	static const uint8_t zeros[64u << 10];
	struct digest_state ds;
	uint8_t *buf = malloc(reg->chunker.max_size);
	uint64_t x = 0, next, k;
	size_t i;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	digest_init(&ds);
	for (i = 0; i <= n; i++) {
		next = i < n ? v[i].off : size;
		for (; x < next; x += k) {
			k = next - x < sizeof(zeros) ? next - x : sizeof(zeros);
			digest_update(&ds, zeros, (size_t)k);
		}
		if (i == n)
			break;
		r = in_txn ? reg_extent_get(reg, &v[i].loc, &v[i].id,
					    v[i].len, buf) :
			     reg_chunk_read(reg, &v[i], buf);
		if (r < 0)
			break;
		digest_update(&ds, buf, v[i].len);
		x += v[i].len;
	}
	free(buf);
	if (r < 0)
		return r == -ENOENT ? -EIO : r;
	digest_final(&ds, ret);
	return 0;
}

int reg_file_digest_txn(struct reg_registry *reg, struct idx_txn *t,
			struct inode_rec *rec)
{
	struct chunk_ent *v;
	struct chunk_rec c;
	struct ext_list l;
	size_t i;
	int r;

	if ((rec->kind != REG_FILE && rec->kind != REG_PENDING) ||
	    !(rec->flags & INODE_NODIGEST))
		return 0;
	if ((r = reg_extents_load_txn(t, rec->ino, &l)) < 0)
		return r;
	v = calloc(l.n ? l.n : 1, sizeof(*v));
	r = v ? 0 : -ENOMEM;
	for (i = 0; i < l.n && r == 0; i++) {
		v[i].off = l.v[i].offset;
		v[i].len = l.v[i].len;
		v[i].key = l.v[i].chunk;
		rec_chunk_key_id(&v[i].key, &v[i].id);
		if ((r = reg_chunk_get_txn(t, &v[i].key, &c)) == 0)
			v[i].loc = c.loc;
	}
	if (r == 0)
		r = reg_content_digest(reg, v, l.n, rec->size, true,
				       &rec->digest);
	free(v);
	free(l.v);
	if (r < 0)
		return log_err(r == -ENOENT ? -EIO : r, "cannot compute the "
			       "digest of file '%s' (inode %llu)", rec->name,
			       (unsigned long long)rec->ino);
	rec->flags &= (uint16_t)~INODE_NODIGEST;
	return 0;
}
