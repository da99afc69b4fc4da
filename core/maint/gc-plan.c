/* gc-plan.c — what gc does with the store's containers (packs): which
 * are cut, removed or rewritten, and in which order on a full disk; and
 * what gc would free, for `mreg stats` (reg_gc_estimate).
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* ---- gc: packs ------------------------------------------------------------ *
 *
 * Which packs. A pack some process appends to, or may still name in an
 * index transaction, is locked by it (store.h) and left alone. A writer
 * commits what it names before it lets a pack go, and never takes a pack
 * back: so once the listing found a pack unlocked, every record that will
 * ever name it is committed, and a scan of the chunk records begun after
 * the listing sees them all. Before changing a pack gc locks it and checks
 * that it still has the size listed (a pack made just then may have been
 * taken by its writer after the listing).
 *
 * Making room. What no record names at the end of a pack (the chunks of a
 * copy that failed on a full disk, a crashed writer's last records) is cut
 * off with ftruncate(2), and a pack no record names is removed: neither
 * needs free space nor an index write. A pack with more dead bytes than
 * the threshold allows is rewritten: its live records are copied to a new
 * pack, which needs room for them. Rewrites go smallest live first, each
 * only when its live bytes fit in the free space (with GC_ROOM_SPARE for
 * the index's transaction): every rewrite gives back more than it takes,
 * so a full disk is compacted as far as it can be. (Punching holes with
 * fallocate(2) would need no room at all, but leaves sparse packs whose
 * size lies, readers of whole packs meeting zeroes, and depends on the
 * file system; the dead ranges a full disk leaves are tails.) */

#define GC_ROOM_SPARE (2ull << 20)

/* One container: as listed, then what the chunk records name in it. */
struct pack_use {
	uint64_t pack;
	bool busy;
	uint64_t size;
	uint64_t base;     /* bytes no record can use */
	uint64_t live;     /* records of referenced chunks, headers included */
	uint64_t end;      /* end of the last record any chunk record names */
	uint64_t live_end; /* end of the last record of a referenced chunk */
};

struct pack_uses {
	struct mreg_store *st;
	struct pack_use *v;
	size_t n, cap;
	uint64_t live, chunks; /* data bytes referenced, chunk records */
	int err;
};

static int use_listed(void *arg, const struct store_container *c)
{
	struct pack_uses *u = arg;

	if (ARRAY_GROW(u->v, u->cap, u->n) < 0)
		return -ENOMEM;
	u->v[u->n++] = (struct pack_use){ .pack = c->id, .busy = c->busy,
		.size = c->size, .base = c->base, .end = c->base,
		.live_end = c->base };
	return 0;
}

static int cmp_use(const void *key, const void *elem)
{
	uint64_t x = *(const uint64_t *)key;
	uint64_t y = ((const struct pack_use *)elem)->pack;

	return x < y ? -1 : x > y;
}

static int use_chunk(void *arg, const struct idx_val *k,
		     const struct idx_val *v)
{
	struct pack_uses *u = arg;
	struct store_span sp;
	struct pack_use *p;
	struct chunk_rec c;
	uint64_t end;

	(void)k;
	if (rec_chunk_decode(v->data, v->len, &c) < 0 ||
	    store_loc_span(u->st, &c.loc, &sp) < 0)
		return u->err = -EIO;
	u->chunks++;
	if (c.refs)
		u->live += sp.len;
	/* a container made after the listing, or a missing one (fsck's) */
	p = u->n ? bsearch(&sp.container, u->v, u->n, sizeof(*u->v),
			   cmp_use) : NULL;
	if (!p)
		return 0;
	end = sp.off + sp.size;
	if (end > p->end)
		p->end = end;
	if (c.refs) {
		p->live += sp.size;
		if (end > p->live_end)
			p->live_end = end;
	}
	return 0;
}

static int use_scan_txn(struct idx_txn *t, void *arg)
{
	struct pack_uses *u = arg;

	idx_scan(t, IDX_CHUNKS, NULL, 0, NULL, 0, use_chunk, u);
	return u->err;
}

/* Lists the packs, then reads the chunk records: in this order (see
 * "Which packs"). u->v is the caller's to free. */
static int packs_use(struct reg_registry *reg, struct pack_uses *u)
{
	int r;

	u->st = reg->st;
	r = store_containers(reg->st, use_listed, u);
	return r < 0 ? r : idx_read(reg->ix, use_scan_txn, u);
}

/* What gc with threshold pct does to pack u when nothing may stay past
 * end: removes it (no record left), or cuts it at end. Returns the bytes
 * that frees; *ret_dead gets the dead bytes left in it, *ret_rewrite
 * whether there are more than pct % of them (then gc rewrites it). */
static uint64_t pack_plan(const struct pack_use *u, uint64_t end,
			  unsigned pct, uint64_t *ret_dead, bool *ret_rewrite)
{
	uint64_t size = end < u->size ? end : u->size;

	*ret_dead = 0;
	*ret_rewrite = false;
	if (end <= u->base)
		return u->size;
	if (size > u->base + u->live)
		*ret_dead = size - u->base - u->live;
	*ret_rewrite = *ret_dead && *ret_dead * 100 > size * pct;
	return u->size - size;
}

/* Where gc may end container p, whose records past end are dead: at end
 * when the store can cut a container (STORE_CAN_CUT) or nothing in it
 * lives (it goes whole); else nowhere — its dead bytes, tail included,
 * come back only by a rewrite. */
static uint64_t plan_end(const struct pack_uses *u, const struct pack_use *p,
			 uint64_t end)
{
	if (end <= p->base || (store_caps(u->st) & STORE_CAN_CUT))
		return end;
	return p->size;
}

/* A container to rewrite. */
struct rewrite {
	uint64_t pack;
	uint64_t base, live, dead;
};

static int cmp_rewrite(const void *a, const void *b)
{
	uint64_t x = ((const struct rewrite *)a)->live;
	uint64_t y = ((const struct rewrite *)b)->live;

	return x < y ? -1 : x > y;
}

/* Does a rewrite of live bytes fit in room? */
static bool rewrite_fits(uint64_t live, uint64_t room)
{
	return live + GC_ROOM_SPARE <= room;
}

/* Cuts or removes one pack as listed in u (see pack_plan). */
static int pack_cut(struct reg_gc *g, const struct pack_use *u)
{
	struct mreg_store *st = g->reg->st;
	uint64_t size, dead;
	bool rewrite;
	int r;

	r = store_claim(st, u->pack);
	if (r < 0)
		return r == -EBUSY || r == -ENOENT ? 0 : r;
	r = store_container_size(st, u->pack, &size);
	if (r < 0 || size != u->size) {
		/* taken by a writer since the listing */
		store_unclaim(st, u->pack);
		return r == -ENOENT ? 0 : r;
	}
	if (u->end <= u->base) {
		r = store_delete(st, u->pack);
		if (r == 0) {
			g->res.packs_removed++;
			g->res.bytes_freed += size;
		}
		return r == -EBUSY || r == -ENOENT ? 0 : r;
	}
	r = store_cut(st, u->pack, u->end);
	if (r == 0) {
		g->res.packs_cut++;
		g->res.bytes_freed += pack_plan(u, u->end, 0, &dead, &rewrite);
	}
	store_unclaim(st, u->pack);
	return r;
}

/* Rewrites the packs of v (n), smallest live first, as far as the free
 * space allows. */
static int packs_rewrite(struct reg_gc *g, struct rewrite *v, size_t n)
{
	uint64_t room, freed;
	size_t i;
	int r;

	if (n)
		qsort(v, n, sizeof(*v), cmp_rewrite);
	for (i = 0; i < n; i++) {
		if ((r = store_room(g->reg->st, &room)) < 0)
			return r;
		if (!rewrite_fits(v[i].live, room)) {
			g->res.bytes_no_room += v[i].dead;
			continue;
		}
		r = reg_gc_rewrite(g, v[i].pack, v[i].base, &freed);
		if (r == -ENOSPC) {
			/* the disk filled meanwhile: what was copied is
			   garbage at the end of our pack, for the next gc */
			g->res.bytes_no_room += v[i].dead;
			continue;
		}
		if (r < 0)
			return r;
		g->res.bytes_freed += freed;
	}
	return 0;
}

int reg_gc_containers(struct reg_gc *g, unsigned pct, bool rewrite,
		      void (*progress)(void *arg, uint64_t done, uint64_t total),
		      void *arg)
{
	struct pack_uses u = { 0 };
	struct rewrite *rw = NULL;
	size_t i, nrw = 0, caprw = 0;
	uint64_t cut, dead;
	bool again;
	int r;

	if ((r = packs_use(g->reg, &u)) < 0)
		goto out;
	for (i = 0; i < u.n; i++) {
		const struct pack_use *p = &u.v[i];

		if (progress)
			progress(arg, i + 1, u.n);
		if (p->busy)
			continue;
		cut = pack_plan(p, plan_end(&u, p, p->end), pct, &dead, &again);
		if (cut && (r = pack_cut(g, p)) < 0)
			goto out;
		if (!rewrite || p->end <= p->base)
			continue;
		if (!again) {
			g->res.bytes_kept += dead;
			continue;
		}
		if (ARRAY_GROW(rw, caprw, nrw) < 0) {
			r = -ENOMEM;
			goto out;
		}
		rw[nrw++] = (struct rewrite){ p->pack, p->base, p->live,
					      dead };
	}
	r = packs_rewrite(g, rw, nrw);
out:
	free(u.v);
	free(rw);
	return r;
}

/* ---- what gc would do ------------------------------------------------------- */

struct trash_count {
	struct reg_registry *reg;
	uint64_t n;
};

static int trash_count_one(void *arg, const struct idx_val *k,
			   const struct idx_val *v)
{
	struct trash_count *c = arg;

	(void)v;
	if (k->len == 8 && !reg_pinned(c->reg, be64_get(k->data)))
		c->n++;
	return 0;
}

static int trash_count_txn(struct idx_txn *t, void *arg)
{
	return idx_scan(t, IDX_TRASH, NULL, 0, NULL, 0, trash_count_one, arg);
}

/* The bytes gc with threshold pct would give back now, as reg_gc_containers()
 * decides, with the records of unreferenced chunks already dropped. */
static uint64_t gc_would_free(const struct pack_uses *u, unsigned pct,
			      uint64_t room, struct rewrite *rw)
{
	uint64_t freed = 0, cut, dead;
	size_t i, n = 0;
	bool again;

	for (i = 0; i < u->n; i++) {
		const struct pack_use *p = &u->v[i];

		if (p->busy)
			continue;
		cut = pack_plan(p, plan_end(u, p, p->live_end), pct, &dead,
				&again);
		freed += cut;
		if (again)
			rw[n++] = (struct rewrite){ p->pack, p->base,
						    p->live, dead };
	}
	room += freed;
	if (n)
		qsort(rw, n, sizeof(*rw), cmp_rewrite);
	for (i = 0; i < n; i++)
		if (rewrite_fits(rw[i].live, room)) {
			freed += rw[i].dead;
			room += rw[i].dead;
		}
	return freed;
}

int reg_gc_estimate(struct reg_registry *reg, struct reg_store_stats *st)
{
	struct trash_count tc = { 0 };
	struct pack_uses u = { 0 };
	struct rewrite *rw = NULL;
	uint64_t room = 0, used;
	size_t i;
	int r;

	if ((r = packs_use(reg, &u)) < 0)
		goto out;
	rw = calloc(u.n ? u.n : 1, sizeof(*rw));
	if (!rw) {
		r = -ENOMEM;
		goto out;
	}
	st->live_bytes = u.live;
	st->chunks = u.chunks;
	st->dead_bytes = 0;
	for (i = 0; i < u.n; i++) {
		used = u.v[i].base + u.v[i].live;
		if (u.v[i].size > used)
			st->dead_bytes += u.v[i].size - used;
	}
	store_room(reg->st, &room);
	st->gc_bytes = gc_would_free(&u, REG_GC_THRESHOLD, room, rw);
	st->gc_all_bytes = gc_would_free(&u, 0, room, rw);
	tc.reg = reg;
	if ((r = idx_read(reg->ix, trash_count_txn, &tc)) < 0)
		goto out;
	st->trash = tc.n;
out:
	free(u.v);
	free(rw);
	return r;
}
