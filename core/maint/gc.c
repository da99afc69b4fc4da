/* gc.c — reg_gc(), in order, each step in transactions of its own so the
 * store is usable throughout: (0) containers: dead tails cut off and
 * containers no record names removed, which needs neither free space nor
 * an index write (room on a full disk first), (1) removed versions'
 * trees, (2) chunk records no extent references, (3) containers again:
 * cut, removed, and rewritten when more than the threshold dead — never
 * one some process still appends to or names in an open batch (the
 * store's claims say which; gc-plan.c). Trees of removed versions are
 * freed only when no live process has them pinned (pins.c).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "util.h"

static int gc_push(struct reg_gc *g, uint64_t v)
{
	if (ARRAY_GROW(g->list, g->cap, g->n) < 0)
		return g->err = -ENOMEM;
	g->list[g->n++] = v;
	return 0;
}

static int trash_one(void *arg, const struct idx_val *k,
		     UNUSED const struct idx_val *v)
{
	struct reg_gc *g = arg;

	if (k->len == 8)
		return gc_push(g, be64_get(k->data));
	return 0;
}

static int trash_list_txn(struct idx_txn *t, void *arg)
{
	struct reg_gc *g = arg;

	g->n = 0;
	idx_scan(t, IDX_TRASH, NULL, 0, NULL, 0, trash_one, g);
	return g->err;
}

struct kv_keys {
	uint8_t (*k)[8 + 300];
	size_t *len;
	size_t n, cap;
	int err;
};

static int xattr_key(void *arg, const struct idx_val *k,
		     UNUSED const struct idx_val *v)
{
	struct kv_keys *l = arg;

	if (k->len > 8 + 300)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		void *nk = reallocarray(l->k, cap, sizeof(*l->k));
		void *nl;

		if (!nk)
			return l->err = -ENOMEM;
		l->k = nk;
		nl = reallocarray(l->len, cap, sizeof(*l->len));
		if (!nl)
			return l->err = -ENOMEM;
		l->len = nl;
		l->cap = cap;
	}
	memcpy(l->k[l->n], k->data, k->len);
	l->len[l->n++] = k->len;
	return 0;
}

/* Deletes ino's xattrs. */
static int xattrs_drop_txn(struct idx_txn *t, uint64_t ino)
{
	struct kv_keys l = { 0 };
	uint8_t p[8];
	size_t i;
	int r = 0;

	be64_put(p, ino);
	idx_scan(t, IDX_XATTRS, p, 8, NULL, 0, xattr_key, &l);
	r = l.err;
	for (i = 0; i < l.n && r == 0; i++)
		r = idx_del(t, IDX_XATTRS, l.k[i], l.len[i]);
	free(l.k);
	free(l.len);
	return r;
}

/* Deletes directory dir's tree (not dir itself). */
static int tree_drop_txn(struct idx_txn *t, uint64_t dir, int depth)
{
	struct child_list l;
	struct inode_rec *r;
	uint8_t k[8];
	size_t i;
	int e;

	if (depth > 2048)
		return -EIO;
	if ((e = reg_children_txn(t, dir, &l)) < 0)
		goto out;
	r = malloc(sizeof(*r));
	if (!r) {
		e = -ENOMEM;
		goto out;
	}
	for (i = 0; i < l.n && e == 0; i++) {
		if ((e = reg_name_del_txn(t, dir, l.v[i].name)) < 0)
			break;
		e = reg_inode_get_txn(t, l.v[i].ino, r);
		if (e == -ENOENT) {
			e = 0;
			continue;
		}
		if (e < 0)
			break;
		if (r->kind == REG_DIR &&
		    (e = tree_drop_txn(t, r->ino, depth + 1)) < 0)
			break;
		if (r->kind == REG_FILE &&
		    (e = reg_extents_drop_txn(t, r->ino)) < 0)
			break;
		be64_put(k, r->ino);
		e = idx_del(t, IDX_INODES, k, 8);
	}
	free(r);
out:
	free(l.v);
	return e;
}

struct free_arg {
	struct reg_registry *reg;
	uint64_t v;
	bool freed, version;
};

static int free_version_txn(struct idx_txn *t, void *arg)
{
	struct free_arg *a = arg;
	struct inode_rec rec;
	bool file;
	uint8_t k[8];
	int r;

	a->freed = false;
	r = reg_inode_get_txn(t, a->v, &rec);
	a->version = r == 0 && rec.kind == REG_VERSION;
	file = r == 0 && (rec.kind == REG_FILE || rec.kind == REG_PENDING);
	if (file && reg_file_open_here(a->reg, a->v))
		return 0; /* opened again (through /proc/PID/fd) */
	be64_put(k, a->v);
	if (file && (r = reg_extents_drop_txn(t, a->v)) < 0)
		return r;
	if ((r = tree_drop_txn(t, a->v, 0)) < 0 ||
	    (r = xattrs_drop_txn(t, a->v)) < 0)
		return r;
	r = idx_del(t, IDX_INODES, k, 8);
	if (r < 0 && r != -ENOENT)
		return r;
	r = idx_del(t, IDX_TRASH, k, 8);
	if (r < 0 && r != -ENOENT)
		return r;
	a->freed = true;
	return 0;
}

int reg_trash_free(struct reg_registry *reg, uint64_t ino)
{
	struct free_arg fa = { .reg = reg, .v = ino };

	return reg_change(reg, free_version_txn, &fa);
}

struct dead_chunks {
	struct chunk_key *k;
	size_t n, cap;
	int err;
};

static int dead_one(void *arg, const struct idx_val *k,
		    const struct idx_val *v)
{
	struct dead_chunks *d = arg;
	struct chunk_rec c;

	if (k->len != CHUNK_KEY_LEN ||
	    rec_chunk_decode(v->data, v->len, &c) < 0)
		return d->err = -EIO;
	if (c.refs)
		return 0;
	if (ARRAY_GROW(d->k, d->cap, d->n) < 0)
		return d->err = -ENOMEM;
	memcpy(d->k[d->n++].b, k->data, CHUNK_KEY_LEN);
	return 0;
}

static int dead_scan_txn(struct idx_txn *t, void *arg)
{
	struct dead_chunks *d = arg;

	d->n = 0;
	idx_scan(t, IDX_CHUNKS, NULL, 0, NULL, 0, dead_one, d);
	return d->err;
}

struct drop_arg {
	struct mreg_store *st;
	struct dead_chunks *d;
	uint64_t freed, bytes;
};

static int drop_dead_txn(struct idx_txn *t, void *arg)
{
	struct drop_arg *a = arg;
	struct store_span sp;
	struct idx_val v;
	struct chunk_rec c;
	size_t i;
	int r;

	a->freed = a->bytes = 0;
	for (i = 0; i < a->d->n; i++) {
		r = idx_get(t, IDX_CHUNKS, a->d->k[i].b, CHUNK_KEY_LEN, &v);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		if (rec_chunk_decode(v.data, v.len, &c) < 0 ||
		    store_loc_span(a->st, &c.loc, &sp) < 0)
			return -EIO;
		if (c.refs)
			continue; /* referenced again meanwhile */
		if ((r = idx_del(t, IDX_CHUNKS, a->d->k[i].b,
				 CHUNK_KEY_LEN)) < 0)
			return r;
		a->freed++;
		a->bytes += sp.len;
	}
	return 0;
}

/* Live chunks of one container, to move. */
struct move {
	struct chunk_key key;
	struct chunk_loc from, to;
	uint32_t len;      /* of the data */
	uint64_t size;     /* of its record in the container */
};

struct pack_moves {
	struct mreg_store *st;
	uint64_t container;
	struct move *v;
	size_t n, cap;
	int err;
};

static int move_one(void *arg, const struct idx_val *k,
		    const struct idx_val *v)
{
	struct pack_moves *m = arg;
	struct store_span sp;
	struct chunk_rec c;

	if (rec_chunk_decode(v->data, v->len, &c) < 0 ||
	    store_loc_span(m->st, &c.loc, &sp) < 0)
		return m->err = -EIO;
	if (sp.container != m->container || !c.refs)
		return 0;
	if (ARRAY_GROW(m->v, m->cap, m->n) < 0)
		return m->err = -ENOMEM;
	memcpy(m->v[m->n].key.b, k->data, CHUNK_KEY_LEN);
	m->v[m->n].from = c.loc;
	m->v[m->n].len = sp.len;
	m->v[m->n].size = sp.size;
	m->n++;
	return 0;
}

static int move_scan_txn(struct idx_txn *t, void *arg)
{
	struct pack_moves *m = arg;

	m->n = 0;
	idx_scan(t, IDX_CHUNKS, NULL, 0, NULL, 0, move_one, m);
	return m->err;
}

static int move_apply_txn(struct idx_txn *t, void *arg)
{
	struct pack_moves *m = arg;
	struct idx_val v;
	struct chunk_rec c;
	uint8_t buf[CHUNK_REC_MAX];
	size_t i, n;
	int r;

	for (i = 0; i < m->n; i++) {
		r = idx_get(t, IDX_CHUNKS, m->v[i].key.b, CHUNK_KEY_LEN, &v);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		if (rec_chunk_decode(v.data, v.len, &c) < 0)
			return -EIO;
		if (!chunk_loc_eq(&c.loc, &m->v[i].from))
			continue;
		c.loc = m->v[i].to;
		n = rec_chunk_encode(&c, buf);
		r = idx_put(t, IDX_CHUNKS, m->v[i].key.b, CHUNK_KEY_LEN, buf,
			    n, 0);
		if (r < 0)
			return r;
	}
	/* anything still in the pack? (then it must stay) */
	m->n = 0;
	idx_scan(t, IDX_CHUNKS, NULL, 0, NULL, 0, move_one, m);
	return m->err < 0 ? m->err : (m->n ? -EBUSY : 0);
}

int reg_gc_rewrite(struct reg_gc *g, uint64_t pack, uint64_t base,
		   uint64_t *freed)
{
	struct reg_registry *reg = g->reg;
	struct pack_moves m = { .st = reg->st, .container = pack };
	struct mreg_id id;
	uint8_t *buf = malloc(reg->chunker.max_size);
	uint64_t size = 0, moved = 0;
	size_t i;
	int r;

	*freed = 0;
	if (!buf)
		return -ENOMEM;
	if ((r = store_claim(reg->st, pack)) < 0) {
		free(buf);
		return r == -EBUSY || r == -ENOENT ? 0 : r;
	}
	store_batch_begin(reg->st);
	r = store_container_size(reg->st, pack, &size);
	if (r == 0)
		r = idx_read(reg->ix, move_scan_txn, &m);
	for (i = 0; i < m.n && r == 0; i++) {
		rec_chunk_key_id(&m.v[i].key, &id);
		if (m.v[i].len > reg->chunker.max_size) {
			r = -EIO;
			break;
		}
		r = store_get(reg->st, &m.v[i].from, &id, buf);
		if (r == 0)
			r = store_put(reg->st, &id, buf, m.v[i].len,
				      &m.v[i].to);
		moved += m.v[i].size;
	}
	if (r == 0)
		r = store_sync(reg->st);
	if (r == 0)
		r = reg_change(reg, move_apply_txn, &m);
	store_batch_end(reg->st);
	if (r == 0) {
		r = store_delete(reg->st, pack);
		if (r == 0) {
			g->res.packs_rewritten++;
			/* its dead bytes: our new container's base, if
			   this made one, is not counted as freed */
			*freed = size > moved + base ?
				 size - moved - base : 0;
		}
	} else {
		store_unclaim(reg->st, pack);
		if (r == -EBUSY)
			r = 0;
	}
	free(m.v);
	free(buf);
	return r;
}

/* ---- gc -------------------------------------------------------------------- */

int reg_gc(struct reg_registry *reg, const struct reg_gc_options *opt,
	   void (*progress)(void *arg, uint64_t done, uint64_t total),
	   void *arg, struct reg_gc_result *ret)
{
	struct reg_gc g = { .reg = reg };
	struct dead_chunks d = { 0 };
	struct drop_arg da = { NULL, &d, 0, 0 };
	unsigned pct = opt ? opt->threshold : REG_GC_THRESHOLD;
	size_t i;
	int r;

	if (!reg || pct > 100)
		return -EINVAL;
	da.st = reg->st;
	/* the store's own housekeeping (store.h; the pack store has none) */
	if ((r = store_maint(reg->st)) < 0)
		goto out;
	/* (0) room first: dead tails and dead packs go without an index
	   write or a byte of free space, which a full disk may lack */
	if ((r = reg_gc_containers(&g, pct, false, NULL, NULL)) < 0)
		goto out;
	/* (1) removed versions (and files unlinked while open) nobody has
	   open. The trash is listed before the pins are asked for: whatever was
	   trashed by then was pinned before its trash committed (a file
	   unlinked while open is pinned first), so its pin is seen. */
	if ((r = idx_read(reg->ix, trash_list_txn, &g)) < 0)
		goto out;
	for (i = 0; i < g.n; i++) {
		struct free_arg fa = { .reg = reg, .v = g.list[i] };

		if (reg_pinned(reg, g.list[i]))
			continue;
		if ((r = reg_change(reg, free_version_txn, &fa)) < 0)
			goto out;
		if (fa.freed && fa.version)
			g.res.versions_freed++;
	}
	/* (2) chunk records nothing references */
	if ((r = idx_read(reg->ix, dead_scan_txn, &d)) < 0)
		goto out;
	io_window(IO_WINDOW_GC_DROP); /* a test pushes here (MREG_FAULTS) */
	if (d.n && (r = reg_change(reg, drop_dead_txn, &da)) < 0)
		goto out;
	g.res.chunks_freed = da.freed;
	/* (3) packs again, with what (1) and (2) left dead */
	r = reg_gc_containers(&g, pct, true, progress, arg);
out:
	free(g.list);
	free(d.k);
	if (r == 0 && ret)
		*ret = g.res;
	return r;
}
