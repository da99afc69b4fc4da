/* fsck.c — reg_fsck(): the index checked against itself (names, inodes,
 * extents, reference counts, sealed digests, the audit chain) and, with
 * --full, every chunk read back through the store and checked against its
 * id; damaged files are named by path, and the repairs that are safe
 * (counts, a chunk another file holds intact) are made when asked.
 */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keymap.h"
#include "log.h"
#include "util.h"

struct fsck {
	struct reg_registry *reg;
	struct idx_txn *t;
	unsigned flags;
	void (*report)(void *arg, const char *severity, const char *msg);
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *arg;
	struct keymap refs;       /* chunk key -> extents naming it */
	struct chunk_key *bad;   /* damaged chunks, to name their users */
	size_t nbad, capbad;
	uint64_t *live;          /* containers holding referenced chunks
				    (--full) */
	size_t nlive, caplive;
	uint64_t errors, chunks_total, chunks_done, reclaimable;
	uint8_t *buf;
	int err;
};

static void finding(struct fsck *f, bool error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void finding(struct fsck *f, bool error, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (error)
		f->errors++;
	if (f->report)
		f->report(f->arg, error ? "error" : "info", msg);
}

/* "model/version/path" of inode ino, for messages (cut to size). Walks
 * up the parents once, keeping their names: fsck builds a path only for
 * a finding, so that a clean pass stays linear in the tree however deep
 * it is (rebuilding every inode's path made it quadratic in the depth). */
static void inode_path_txn(struct idx_txn *t, uint64_t ino, char *buf,
			   size_t size)
{
	struct inode_rec *r = malloc(sizeof(*r));
	char (*names)[256] = NULL;
	size_t n = 0, cap = 0, len = 0, k;
	bool cut = false;

	snprintf(buf, size, "inode %llu", (unsigned long long)ino);
	if (!r)
		return;
	while (ino && reg_inode_get_txn(t, ino, r) == 0 &&
	       r->kind != REG_STAGES) {
		if (ARRAY_GROW(names, cap, n) < 0)
			goto out;
		memcpy(names[n++], r->name, sizeof(r->name));
		if (r->kind == REG_MODEL)
			break;
		if (n > REG_DEPTH_MAX + 8) {
			cut = true; /* a tree made before the limit */
			break;
		}
		ino = r->parent;
	}
	len = (size_t)snprintf(buf, size, "%s", cut ? ".../" : "");
	while (n-- > 0 && len + 1 < size) {
		k = (size_t)snprintf(buf + len, size - len, "%s%s", names[n],
				     n ? "/" : "");
		len += k < size - len ? k : size - len - 1;
	}
out:
	free(names);
	free(r);
}

static int fsck_extent(void *arg, const struct idx_val *k,
		       const struct idx_val *v)
{
	struct fsck *f = arg;
	struct extent_rec x;
	uint64_t *c;

	if (rec_extent_decode(k->data, k->len, v->data, v->len, &x) < 0) {
		finding(f, true, "damaged extent record of inode %llu",
			(unsigned long long)(k->len >= 8 ?
					     be64_get(k->data) : 0));
		return 0;
	}
	c = keymap_slot(&f->refs, &x.chunk, true, NULL);
	if (!c)
		return f->err = -ENOMEM;
	(*c)++;
	return 0;
}

struct file_check {
	uint64_t next;     /* the next extent may not start before it (a
			      gap between two is a hole) */
	bool overlap;
	int err;
};

static int check_contig(void *arg, const struct idx_val *k,
			const struct idx_val *v)
{
	struct file_check *c = arg;
	struct extent_rec x;

	if (rec_extent_decode(k->data, k->len, v->data, v->len, &x) < 0)
		return 0;
	if (x.offset < c->next)
		c->overlap = true;
	c->next = x.offset + x.len;
	return 0;
}

/* A symlink inside a version must point inside it (a store written by an
 * older mreg may hold one that a rename took outside). */
static void fsck_link(struct fsck *f, const struct inode_rec *l)
{
	struct inode_rec *d = malloc(sizeof(*d));
	char path[1024];
	int depth = -1;

	if (!d) {
		f->err = -ENOMEM;
		return;
	}
	if (reg_inode_get_txn(f->t, l->parent, d) == 0)
		depth = reg_depth_txn(f->t, d);
	free(d);
	if (depth >= 0 && reg_check_link_target(l->target_path, depth) == 0)
		return;
	inode_path_txn(f->t, l->ino, path, sizeof(path));
	if (depth < 0)
		finding(f, true, "'%s': a symlink whose directory is missing",
			path);
	else
		finding(f, true, "'%s': symlink -> '%s' points outside its "
			"version", path, l->target_path);
}

static int fsck_inode(void *arg, const struct idx_val *k,
		      const struct idx_val *v)
{
	struct fsck *f = arg;
	struct inode_rec *r = malloc(sizeof(*r));
	struct file_check fc = { 0 };
	char path[1024];
	uint64_t ino = k->len == 8 ? be64_get(k->data) : 0, child;
	uint8_t p[8];

	if (!r)
		return f->err = -ENOMEM;
	if (rec_inode_decode(v->data, v->len, r) < 0 || r->ino != ino) {
		finding(f, true, "damaged inode record %llu",
			(unsigned long long)ino);
		goto out;
	}
	if (r->flags & INODE_TRASHED) {
		/* gc's business; a file unlinked while open still holds
		   its chunks */
		if (r->kind == REG_FILE || r->kind == REG_PENDING) {
			be64_put(p, ino);
			idx_scan(f->t, IDX_EXTENTS, p, 8, NULL, 0,
				 fsck_extent, f);
		}
		goto out;
	}
	if (r->kind != REG_MODEL && r->kind != REG_STAGES &&
	    r->kind != REG_STAGE && !(r->kind == REG_VERSION) &&
	    reg_name_get_txn(f->t, r->parent, r->name, &child) == 0 &&
	    child != ino) {
		inode_path_txn(f->t, ino, path, sizeof(path));
		finding(f, true, "'%s': its name names inode %llu",
			path, (unsigned long long)child);
	}
	if (r->kind == REG_STAGE) {
		struct inode_rec *tv = malloc(sizeof(*tv));

		if (!tv)
			return f->err = -ENOMEM;
		if (reg_inode_get_txn(f->t, r->target, tv) < 0 ||
		    tv->kind != REG_VERSION)
			finding(f, true, "stage '%s' points at a missing "
				"version", r->name);
		else if (!(tv->flags & INODE_SEALED))
			finding(f, true, "stage '%s' points at draft '%s'",
				r->name, tv->name);
		free(tv);
	}
	if (r->kind == REG_SYMLINK)
		fsck_link(f, r);
	if (r->kind == REG_FILE || r->kind == REG_PENDING) {
		be64_put(p, ino);
		idx_scan(f->t, IDX_EXTENTS, p, 8, NULL, 0, fsck_extent, f);
		idx_scan(f->t, IDX_EXTENTS, p, 8, NULL, 0, check_contig, &fc);
		if (fc.overlap || fc.next > r->size) {
			inode_path_txn(f->t, ino, path, sizeof(path));
			if (fc.overlap)
				finding(f, true, "'%s': its extents overlap",
					path);
			else
				finding(f, true, "'%s': its extents run to "
					"%llu, past its %llu bytes", path,
					(unsigned long long)fc.next,
					(unsigned long long)r->size);
		}
	}
out:
	free(r);
	return f->err;
}

static int fsck_chunk(void *arg, const struct idx_val *k,
		      const struct idx_val *v)
{
	struct fsck *f = arg;
	struct chunk_key key;
	struct store_span sp;
	struct chunk_rec c;
	struct mreg_id id;
	char hex[MREG_ID_HEX], where[256];
	uint64_t *n, want;
	int r;

	if (f->progress)
		f->progress(f->arg, ++f->chunks_done, f->chunks_total);
	if (k->len != CHUNK_KEY_LEN ||
	    rec_chunk_decode(v->data, v->len, &c) < 0 ||
	    store_loc_span(f->reg->st, &c.loc, &sp) < 0) {
		finding(f, true, "damaged chunk record");
		return 0;
	}
	memcpy(key.b, k->data, CHUNK_KEY_LEN);
	rec_chunk_key_id(&key, &id);
	chunkid_hex(&id, hex);
	n = keymap_slot(&f->refs, &key, false, NULL);
	want = n ? *n : 0;
	if (n)
		*n = UINT64_MAX; /* seen */
	if (c.refs != want)
		finding(f, true, "chunk %s: reference count %llu, but %llu "
			"extents name it", hex, (unsigned long long)c.refs,
			(unsigned long long)want);
	if (want == 0) {
		f->reclaimable += sp.len;
		return 0;
	}
	if ((f->flags & REG_FSCK_FULL) &&
	    (!f->nlive || f->live[f->nlive - 1] != sp.container)) {
		if (ARRAY_GROW(f->live, f->caplive, f->nlive) < 0)
			return f->err = -ENOMEM;
		f->live[f->nlive++] = sp.container;
	}
	if (f->flags & REG_FSCK_FULL)
		r = store_get(f->reg->st, &c.loc, &id, f->buf);
	else
		r = store_get_raw(f->reg->st, &c.loc, f->buf);
	if (r < 0) {
		finding(f, true, "chunk %s (%s, %u bytes): %s", hex,
			store_loc_name(f->reg->st, &c.loc, where,
				       sizeof(where)), sp.len,
			r == -ENOENT ? "its pack is missing" :
			r == -EIO ? "damaged" : strerror(-r));
		if (ARRAY_GROW(f->bad, f->capbad, f->nbad) < 0)
			return f->err = -ENOMEM;
		f->bad[f->nbad++] = key;
	}
	return 0;
}

static int fsck_users(void *arg, const struct idx_val *k,
		      const struct idx_val *v)
{
	struct fsck *f = arg;
	struct extent_rec x;
	char path[1024], hex[MREG_ID_HEX];
	struct mreg_id id;
	size_t i;

	if (rec_extent_decode(k->data, k->len, v->data, v->len, &x) < 0)
		return 0;
	for (i = 0; i < f->nbad; i++) {
		if (memcmp(&f->bad[i], &x.chunk, sizeof(x.chunk)) != 0)
			continue;
		inode_path_txn(f->t, be64_get(k->data), path, sizeof(path));
		rec_chunk_key_id(&x.chunk, &id);
		finding(f, true, "chunk %s is used by '%s' at offset %llu",
			chunkid_hex(&id, hex), path,
			(unsigned long long)x.offset);
	}
	return 0;
}

static int fsck_missing(struct fsck *f)
{
	size_t pos = 0;
	char hex[MREG_ID_HEX];
	struct chunk_key key;
	struct mreg_id id;
	const void *k;
	uint64_t n;

	while (keymap_next(&f->refs, &pos, &k, &n)) {
		if (n == UINT64_MAX)
			continue;
		memcpy(&key, k, sizeof(key));
		rec_chunk_key_id(&key, &id);
		finding(f, true, "chunk %s is named by %llu extents but has no "
			"record", chunkid_hex(&id, hex), (unsigned long long)n);
		if (ARRAY_GROW(f->bad, f->capbad, f->nbad) < 0)
			return -ENOMEM;
		f->bad[f->nbad++] = key;
	}
	return 0;
}

/* A name whose inode is missing or trashed: the entry lists, lookups
 * fail (a damaged index or a bug; nothing the registry does leaves one). */
static int fsck_name(void *arg, const struct idx_val *k,
		     const struct idx_val *v)
{
	struct fsck *f = arg;
	struct inode_rec *r;
	char path[1024];
	uint64_t parent, child;
	int e;

	if (k->len < 9 || v->len != 8) {
		finding(f, true, "damaged name record");
		return 0;
	}
	parent = be64_get(k->data);
	memcpy(&child, v->data, 8);
	if (!(r = malloc(sizeof(*r))))
		return f->err = -ENOMEM;
	e = reg_inode_get_txn(f->t, child, r);
	if (e == -ENOENT || (e == 0 && (r->flags & INODE_TRASHED))) {
		inode_path_txn(f->t, parent, path, sizeof(path));
		finding(f, true, "'%s%s%.*s' names inode %llu, which %s",
			path, path[0] ? "/" : "", (int)(k->len - 8),
			(const char *)k->data + 8,
			(unsigned long long)child,
			e ? "does not exist" : "was removed");
	}
	free(r);
	return 0;
}

static int fsck_txn(struct idx_txn *t, void *arg)
{
	struct fsck *f = arg;
	int r;

	f->t = t;
	if ((r = idx_count(t, IDX_CHUNKS, &f->chunks_total)) < 0)
		return r;
	idx_scan(t, IDX_INODES, NULL, 0, NULL, 0, fsck_inode, f);
	if (f->err < 0)
		return f->err;
	idx_scan(t, IDX_NAMES, NULL, 0, NULL, 0, fsck_name, f);
	if (f->err < 0)
		return f->err;
	idx_scan(t, IDX_CHUNKS, NULL, 0, NULL, 0, fsck_chunk, f);
	if (f->err < 0)
		return f->err;
	if ((r = fsck_missing(f)) < 0)
		return r;
	if (f->nbad)
		idx_scan(t, IDX_EXTENTS, NULL, 0, NULL, 0, fsck_users, f);
	return f->err;
}

static int first_record(UNUSED void *arg, UNUSED const struct mreg_id *id,
			UNUSED const struct chunk_loc *loc,
			UNUSED const void *data, UNUSED uint32_t len)
{
	return 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* --full: the framing of every container that holds referenced chunks
 * (they were checked one by one, which never reads a pack's header). A
 * container nothing references may be cut short by a crash (garbage for
 * gc), and a busy one may not have its header yet: left alone. */
static int fsck_container(void *arg, const struct store_container *c)
{
	struct fsck *f = arg;

	if (c->busy || !f->nlive || !bsearch(&c->id, f->live, f->nlive,
					     sizeof(*f->live), cmp_u64))
		return 0;
	if (store_iterate(f->reg->st, c->id, first_record, NULL) == -EIO)
		finding(f, true, "pack %08" PRIx64 " is damaged: its header "
			"or first record is bad", c->id);
	return 0;
}

/* What gc would reclaim, as info: only what it would reclaim as run by
 * default is said to be gc's; what it would only with a lower threshold
 * says so. */
static void gc_findings(struct fsck *f, const struct reg_store_stats *st)
{
	if (st->trash)
		finding(f, false, "%llu removed version%s or file%s wait%s "
			"for gc", (unsigned long long)st->trash,
			st->trash == 1 ? "" : "s", st->trash == 1 ? "" : "s",
			st->trash == 1 ? "s" : "");
	if (st->gc_bytes)
		finding(f, false, "%llu bytes are reclaimable by gc",
			(unsigned long long)st->gc_bytes);
	if (st->gc_all_bytes > st->gc_bytes)
		finding(f, false, "%llu bytes more are dead in packs at most "
			"%d %% dead: gc --all reclaims them",
			(unsigned long long)(st->gc_all_bytes - st->gc_bytes),
			REG_GC_THRESHOLD);
}

int reg_fsck(struct reg_registry *reg, unsigned flags,
	     void (*report)(void *arg, const char *severity, const char *msg),
	     void (*progress)(void *arg, uint64_t done, uint64_t total),
	     void *arg)
{
	struct fsck f = { .reg = reg, .flags = flags, .report = report,
			  .progress = progress, .arg = arg };
	struct reg_store_stats st;
	int r;

	if (!reg)
		return -EINVAL;
	keymap_init(&f.refs, sizeof(struct chunk_key));
	f.buf = malloc(reg->chunker.max_size > (64u << 20) ?
		       reg->chunker.max_size : reg->chunker.max_size + 1);
	if (!f.buf)
		return -ENOMEM;
	r = idx_read(reg->ix, fsck_txn, &f);
	keymap_free(&f.refs);
	free(f.bad);
	free(f.buf);
	if (r == 0 && (flags & REG_FSCK_FULL)) {
		if (f.nlive)
			qsort(f.live, f.nlive, sizeof(*f.live), cmp_u64);
		r = store_containers(reg->st, fsck_container, &f);
	}
	free(f.live);
	if (r < 0)
		return r;
	if (reg_store_stats(reg, &st) == 0)
		gc_findings(&f, &st);
	return (int)(f.errors > INT32_MAX ? INT32_MAX : f.errors);
}
