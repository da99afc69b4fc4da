/* spool.c — a file rewritten in place (SPEC §2.2: write at any offset,
 * seek back, truncate), at a cost in proportion to what changed.
 *
 * A file opened for writing without O_TRUNC, or written out of order after
 * it was streamed (stream.c), keeps the chunks it had as its base, and
 * what is written goes into a sparse spool file (an unnamed O_TMPFILE in
 * DIR/spool) at the offsets written; the spans of the bytes written since
 * the last commit say which bytes the spool holds. The content at x is:
 * the spool's byte when x is in a span; else base's when x is below the
 * limit (the lowest size the file was cut to since: above it, what base
 * held is gone); else zero. The spool holds zeros outside the spans.
 *
 * Holes stay holes. Base names no chunk for a hole (records.h: a gap
 * between extents), the spool file has no block of one, and neither a
 * read, nor a commit, nor SEEK_DATA/SEEK_HOLE looks at its bytes.
 *
 * A commit re-chunks only around the changes. Content-defined chunking
 * cuts a chunk where the bytes since the last cut say so (chunker.h), so
 * the boundaries from any boundary on depend only on the bytes from there.
 * For each changed range the chunker restarts at the old boundary before
 * its first byte and runs until, past its last byte, a cut falls where an
 * old chunk starts (or in a hole): from there on the old chunks are the
 * new ones. A run of data between holes is chunked on its own (a hole
 * ends a chunk and the next run starts afresh). So the chunks are those
 * that chunking the whole file would give, and the index changes only by
 * the extents replaced and the chunks that replace them: a 4 KiB write
 * into a 2 GiB file costs a chunk or two of reading, hashing and index
 * work. When the index no longer holds the base (another process wrote
 * the file; base came from a stream not committed yet), the commit
 * rewrites every extent, still chunking only around the changes.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk/chunker.h"
#include "io.h"
#include "log.h"
#include "util.h"

/* Spans kept apart at most: past it, the two closest are joined by
 * copying what base holds between them into the spool. */
#define SPANS_MAX 4096
/* Bytes of the spool read at once when re-chunking. */
#define SPOOL_BLOCK (1u << 20)

struct span {
	uint64_t a, b;            /* [a, b) */
};

struct spool {
	struct chunk_ent *base;   /* offsets ascending, holes between */
	size_t nbase;
	uint64_t base_size;       /* the size base describes */
	uint64_t limit;           /* base holds below it (<= size) */
	bool committed;           /* base is what the index holds */
	int64_t ctime;            /* the inode's ctime when it was */
	bool batch;               /* base's fresh chunks keep a batch open */
	uint64_t new_bytes;       /* bytes base's fresh chunks stored */
	int fd;                   /* the spool file, or -1 */
	uid_t uid;                /* who its descriptor is spent for */
	struct span *sp;          /* bytes written since, ascending, apart */
	size_t nsp, csp;
	uint64_t size;
	uint8_t *cbuf;            /* base chunk cidx, read and checked */
	size_t cidx;
};

int reg_spool_new(const struct chunk_ent *base, size_t n, uint64_t base_size,
		  bool committed, int64_t ctime, uint64_t new_bytes, uid_t uid,
		  struct spool **ret)
{
	struct spool *sp;

	if ((!base && n) || !ret)
		return -EINVAL;
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	if (n && !(sp->base = reallocarray(NULL, n, sizeof(*base)))) {
		free(sp);
		return -ENOMEM;
	}
	if (n)
		memcpy(sp->base, base, n * sizeof(*base));
	sp->nbase = n;
	sp->base_size = sp->limit = sp->size = base_size;
	sp->committed = committed;
	sp->ctime = ctime;
	sp->new_bytes = new_bytes;
	sp->fd = -1;
	sp->uid = uid;
	sp->cidx = SIZE_MAX;
	*ret = sp;
	return 0;
}

void reg_spool_free(struct reg_registry *reg, struct spool *sp)
{
	if (!sp)
		return;
	if (sp->batch)
		store_batch_end(reg->st);
	reg_spool_fd_close(reg, sp->fd, sp->uid);
	free(sp->base);
	free(sp->sp);
	free(sp->cbuf);
	free(sp);
}

void reg_spool_hold_batch(struct spool *sp)
{
	sp->batch = true;
}

uint64_t reg_spool_size(const struct spool *sp)
{
	return sp->size;
}

/* The first base chunk that ends after x. */
static size_t base_after(const struct spool *sp, uint64_t x)
{
	size_t lo = 0, hi = sp->nbase;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sp->base[mid].off + sp->base[mid].len <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The first span that ends at or after x (after it, when strict). */
static size_t span_from(const struct spool *sp, uint64_t x, bool strict)
{
	size_t lo = 0, hi = sp->nsp;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sp->sp[mid].b < x || (strict && sp->sp[mid].b == x))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* What the content holds from x (< size) on, and how far. */
enum piece_kind { PIECE_SPOOL, PIECE_BASE, PIECE_HOLE };

struct piece {
	enum piece_kind kind;
	uint64_t len;
	size_t i;                 /* PIECE_BASE: the base chunk */
};

static void piece_at(const struct spool *sp, uint64_t x, struct piece *ret)
{
	size_t s = span_from(sp, x, true), i;
	uint64_t next = sp->size, end;

	assert(x < sp->size);
	if (s < sp->nsp) {
		if (sp->sp[s].a <= x) {
			ret->kind = PIECE_SPOOL;
			ret->len = sp->sp[s].b - x;
			return;
		}
		next = sp->sp[s].a;
	}
	ret->kind = PIECE_HOLE;
	if (x < sp->limit) {
		if (next > sp->limit)
			next = sp->limit;
		i = base_after(sp, x);
		if (i < sp->nbase && sp->base[i].off <= x) {
			end = sp->base[i].off + sp->base[i].len;
			ret->kind = PIECE_BASE;
			ret->i = i;
			if (next > end)
				next = end;
		} else if (i < sp->nbase && sp->base[i].off < next) {
			next = sp->base[i].off;
		}
	}
	ret->len = next - x;
}

/* Base chunk i, read and checked; the last one read is kept (re-chunking
 * and small reads come back to the same chunk). */
static int base_chunk(struct reg_registry *reg, struct spool *sp, size_t i,
		      const uint8_t **ret)
{
	int r;

	if (sp->cidx != i) {
		if (!sp->cbuf && !(sp->cbuf = malloc(reg->chunker.max_size)))
			return -ENOMEM;
		sp->cidx = SIZE_MAX;
		if ((r = reg_chunk_read(reg, &sp->base[i], sp->cbuf)) < 0)
			return r;
		sp->cidx = i;
	}
	*ret = sp->cbuf;
	return 0;
}

/* Reads len bytes of the spool file at off (within a span). */
static int spool_pread(struct spool *sp, uint8_t *p, size_t len,
		       uint64_t off)
{
	ssize_t n;

	while (len) {
		n = pread(sp->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return log_err(-errno, "cannot read a spool file");
		if (n == 0)
			return log_err(-EIO, "a spool file is shorter than "
				       "what was written to it");
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

ssize_t reg_spool_read(struct reg_registry *reg, struct spool *sp, void *buf,
		       size_t len, uint64_t off)
{
	uint8_t *p = buf;
	const uint8_t *c;
	struct piece pc;
	size_t done = 0, k;
	int r;

	if (off >= sp->size)
		return 0;
	if (len > sp->size - off)
		len = (size_t)(sp->size - off);
	while (done < len) {
		uint64_t x = off + done;

		piece_at(sp, x, &pc);
		k = pc.len < len - done ? (size_t)pc.len : len - done;
		if (pc.kind == PIECE_SPOOL) {
			if ((r = spool_pread(sp, p + done, k, x)) < 0)
				return r;
		} else if (pc.kind == PIECE_BASE) {
			if ((r = base_chunk(reg, sp, pc.i, &c)) < 0)
				return r;
			memcpy(p + done, c + (x - sp->base[pc.i].off), k);
		} else {
			memset(p + done, 0, k);
		}
		done += k;
	}
	return (ssize_t)done;
}

/* Marks [a, b) written, joining the spans it meets; the caller made room
 * for one more span. */
static void span_add(struct spool *sp, uint64_t a, uint64_t b)
{
	size_t i = span_from(sp, a, false), j = i;

	while (j < sp->nsp && sp->sp[j].a <= b) {
		if (sp->sp[j].a < a)
			a = sp->sp[j].a;
		if (sp->sp[j].b > b)
			b = sp->sp[j].b;
		j++;
	}
	if (j == i) {
		memmove(sp->sp + i + 1, sp->sp + i,
			(sp->nsp - i) * sizeof(*sp->sp));
		sp->nsp++;
	} else {
		memmove(sp->sp + i + 1, sp->sp + j,
			(sp->nsp - j) * sizeof(*sp->sp));
		sp->nsp -= j - i - 1;
	}
	sp->sp[i] = (struct span){ a, b };
}

static int spool_fd(struct reg_registry *reg, struct spool *sp)
{
	int fd;

	if (sp->fd >= 0)
		return 0;
	if ((fd = reg_spool_fd_open(reg, sp->uid)) < 0)
		return fd;
	sp->fd = fd;
	return 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	ssize_t n;

	while (len) {
		n = io_pwrite(fd, p, len, (off_t)off, IO_SPOOL);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Copies what base holds in [a, b) into the spool and marks it written:
 * as one span (whole: the spool's zeros stand for base's holes), or a
 * span for each of base's chunks (holes stay holes). */
static int spool_fill(struct reg_registry *reg, struct spool *sp, uint64_t a,
		      uint64_t b, bool whole)
{
	const uint8_t *c;
	struct piece pc;
	uint64_t x, k;
	int r;

	if ((r = spool_fd(reg, sp)) < 0)
		return r;
	for (x = a; x < b; x += k) {
		piece_at(sp, x, &pc);
		k = pc.len < b - x ? pc.len : b - x;
		if (pc.kind != PIECE_BASE)
			continue;
		if ((r = base_chunk(reg, sp, pc.i, &c)) < 0 ||
		    (r = pwrite_all(sp->fd, c + (x - sp->base[pc.i].off),
				    (size_t)k, x)) < 0)
			return r;
		if (!whole) {
			if (ARRAY_GROW(sp->sp, sp->csp, sp->nsp) < 0)
				return -ENOMEM;
			span_add(sp, x, x + k);
		}
	}
	if (whole && a < b) {
		if (ARRAY_GROW(sp->sp, sp->csp, sp->nsp) < 0)
			return -ENOMEM;
		span_add(sp, a, b);
	}
	return 0;
}

/* Joins the two spans closest to each other. */
static int spans_join(struct reg_registry *reg, struct spool *sp)
{
	uint64_t gap = UINT64_MAX;
	size_t i, best = 0;

	for (i = 0; i + 1 < sp->nsp; i++)
		if (sp->sp[i + 1].a - sp->sp[i].b < gap) {
			gap = sp->sp[i + 1].a - sp->sp[i].b;
			best = i;
		}
	return spool_fill(reg, sp, sp->sp[best].b, sp->sp[best + 1].a, true);
}

ssize_t reg_spool_write(struct reg_registry *reg, struct spool *sp,
			const void *buf, size_t len, uint64_t off)
{
	ssize_t n;
	int r;

	if (!len)
		return 0;
	if ((r = spool_fd(reg, sp)) < 0)
		return r;
	/* room first: bytes written must never be left out of the spans */
	if (ARRAY_GROW(sp->sp, sp->csp, sp->nsp) < 0)
		return -ENOMEM;
	n = io_pwrite(sp->fd, buf, len, (off_t)off, IO_SPOOL);
	if (n <= 0)
		return n < 0 ? n : -EIO;
	span_add(sp, off, off + (uint64_t)n);
	if (off + (uint64_t)n > sp->size)
		sp->size = off + (uint64_t)n;
	/* a soft bound: failing only leaves the spans apart */
	if (sp->nsp > SPANS_MAX && (r = spans_join(reg, sp)) < 0)
		log_err(r, "cannot join the spans of a spool file");
	return n;
}

int reg_spool_truncate(UNUSED struct reg_registry *reg, struct spool *sp,
		       uint64_t size)
{
	size_t i;
	int r;

	/* the spool keeps zeros outside the spans: cut what is cut off */
	if (size < sp->size && sp->fd >= 0 &&
	    (r = io_ftruncate(sp->fd, (off_t)size, IO_SPOOL)) < 0)
		return r;
	i = span_from(sp, size, true);
	if (i < sp->nsp && sp->sp[i].a < size) {
		sp->sp[i].b = size;
		i++;
	}
	sp->nsp = i;
	if (size < sp->limit)
		sp->limit = size;
	sp->size = size;
	return 0;
}

int reg_spool_seek(const struct spool *sp, uint64_t off, int whence,
		   uint64_t *ret)
{
	struct piece pc;
	uint64_t x = off;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (off >= sp->size)
		return -ENXIO;
	for (; x < sp->size; x += pc.len) {
		piece_at(sp, x, &pc);
		if ((pc.kind == PIECE_HOLE) == (whence == SEEK_HOLE))
			break;
	}
	if (x >= sp->size && whence == SEEK_DATA)
		return -ENXIO;
	*ret = x < sp->size ? x : sp->size;
	return 0;
}

int reg_spool_detach(struct reg_registry *reg, struct spool *sp)
{
	int r;

	r = spool_fill(reg, sp, 0, sp->limit, false);
	if (r < 0)
		return r;
	if (sp->batch)
		store_batch_end(reg->st);
	sp->batch = false;
	free(sp->base);
	sp->base = NULL;
	sp->nbase = 0;
	sp->base_size = sp->limit = 0;
	sp->committed = false;
	sp->new_bytes = 0;
	sp->cidx = SIZE_MAX;
	return 0;
}

/* ---- planning a commit -------------------------------------------------- */

struct planner {
	struct reg_registry *reg;
	struct spool *sp;
	struct spool_plan *pl;
	struct fresh_map fm;
	struct chunker ch;
	uint8_t *cur;             /* the chunk being cut */
	size_t ncur;
	uint64_t cur_off;         /* where it starts */
	uint8_t *tmp;             /* reg_ingest_chunk's scratch */
	uint8_t *buf;             /* spool bytes read */
	struct span *cl;          /* changed ranges, ascending, apart */
	uint64_t *restart;        /* where each one's re-chunking starts */
	size_t ncl, ci;           /* ci: the next one not reached yet */
};

/* The changed ranges: the spans, and when the size or the limit moved,
 * [limit, size) (empty when the file was only cut: the chunk at the new
 * end is cut anew all the same). */
static int changes(struct planner *p)
{
	struct spool *sp = p->sp;
	bool tail = sp->limit < sp->base_size || sp->size != sp->base_size;
	uint64_t t0 = sp->limit;
	size_t i;

	p->cl = reallocarray(NULL, sp->nsp + 1, sizeof(*p->cl));
	p->restart = reallocarray(NULL, sp->nsp + 1, sizeof(*p->restart));
	if (!p->cl || !p->restart)
		return -ENOMEM;
	for (i = 0; i < sp->nsp; i++) {
		if (tail && sp->sp[i].b >= t0) {
			/* this span and the ones after it meet the tail */
			if (sp->sp[i].a < t0)
				t0 = sp->sp[i].a;
			break;
		}
		p->cl[p->ncl++] = sp->sp[i];
	}
	if (tail)
		p->cl[p->ncl++] = (struct span){ t0, sp->size };
	for (i = 0; i < p->ncl; i++) {
		uint64_t c = p->cl[i].a;
		size_t k;

		/* the start of the old chunk holding the byte before the
		   change; the change itself when that byte is in a hole */
		p->restart[i] = c;
		if (c > 0 && (k = base_after(sp, c - 1)) < sp->nbase &&
		    sp->base[k].off < c)
			p->restart[i] = sp->base[k].off;
	}
	return 0;
}

static int all_push(struct spool_plan *pl, const struct chunk_ent *e,
		    long in)
{
	size_t cap = pl->cap_all;
	long *v;

	if (ARRAY_GROW(pl->all, pl->cap_all, pl->nall) < 0)
		return -ENOMEM;
	if (pl->cap_all != cap) {
		v = reallocarray(pl->all_in, pl->cap_all, sizeof(*v));
		if (!v) {
			pl->cap_all = cap; /* all_in stays the smaller */
			return -ENOMEM;
		}
		pl->all_in = v;
	}
	pl->all[pl->nall] = *e;
	pl->all_in[pl->nall++] = in;
	return 0;
}

static int keep(struct planner *p, const struct chunk_ent *e)
{
	struct spool_plan *pl = p->pl;
	int r;

	if (!pl->full)
		return all_push(pl, e, -1);
	if ((r = reg_ingest_keep(&pl->in, &p->fm, e)) < 0)
		return r;
	return all_push(pl, &pl->in.v[pl->in.n - 1], (long)pl->in.n - 1);
}

static int drop(struct planner *p, const struct chunk_ent *e)
{
	struct spool_plan *pl = p->pl;

	if (pl->full)
		return 0; /* every old extent goes */
	if (ARRAY_GROW(pl->drop, pl->cap_drop, pl->ndrop) < 0)
		return -ENOMEM;
	pl->drop[pl->ndrop++] = (struct extent_rec){ .offset = e->off,
		.len = e->len, .chunk = e->key };
	return 0;
}

/* Ends the chunk being cut at the current position. */
static int emit(struct planner *p)
{
	struct spool_plan *pl = p->pl;
	int r;

	if (!p->ncur)
		return 0;
	pl->in.end = p->cur_off;
	r = reg_ingest_chunk(p->reg, &pl->in, &p->fm, p->cur, (uint32_t)p->ncur,
			     p->tmp);
	if (r < 0)
		return r;
	p->cur_off += p->ncur;
	p->ncur = 0;
	return all_push(pl, &pl->in.v[pl->in.n - 1], (long)pl->in.n - 1);
}

/* May re-chunking stop at x, where the chunker starts afresh? When x is
 * past every change reached so far and old chunking starts afresh there
 * too (an old chunk starts there, or x is in a hole). Changes whose
 * restart point x passed are taken in first: their *e extends. */
static bool aligned(struct planner *p, uint64_t x, uint64_t *e)
{
	struct spool *sp = p->sp;
	size_t i;

	while (p->ci < p->ncl && p->restart[p->ci] < x) {
		if (p->cl[p->ci].b > *e)
			*e = p->cl[p->ci].b;
		p->ci++;
	}
	if (x < *e)
		return false;
	if (x >= sp->size)
		return true;
	i = base_after(sp, x);
	return !(i < sp->nbase && sp->base[i].off < x);
}

/* Chunks the content from x (where old chunking started afresh) until
 * aligned() lets it stop; *ret_stop: where it stopped. */
static int chunk_from(struct planner *p, uint64_t x, uint64_t e,
		      uint64_t *ret_stop)
{
	struct spool *sp = p->sp;
	const uint8_t *d;
	struct piece pc;
	size_t k, cut;
	int r;

	chunker_init(&p->ch, &p->reg->chunker);
	p->ncur = 0;
	p->cur_off = x;
	for (;;) {
		if (x >= sp->size) {
			/* the end: every change was reached */
			p->ci = p->ncl;
			*ret_stop = sp->size;
			return emit(p);
		}
		piece_at(sp, x, &pc);
		if (pc.kind == PIECE_HOLE) {
			/* a hole ends the chunk; the data after it starts
			   afresh */
			if (p->ncur) {
				if ((r = emit(p)) < 0)
					return r;
				if (aligned(p, x, &e))
					break;
			}
			x += pc.len;
			chunker_init(&p->ch, &p->reg->chunker);
			p->cur_off = x;
			if (x < sp->size && aligned(p, x, &e))
				break;
			continue;
		}
		if (pc.kind == PIECE_BASE) {
			if ((r = base_chunk(p->reg, sp, pc.i, &d)) < 0)
				return r;
			d += x - sp->base[pc.i].off;
			k = (size_t)pc.len;
		} else {
			k = pc.len < SPOOL_BLOCK ? (size_t)pc.len : SPOOL_BLOCK;
			if ((r = spool_pread(sp, p->buf, k, x)) < 0)
				return r;
			d = p->buf;
		}
		while (k) {
			cut = chunker_scan(&p->ch, d, k);
			if (cut == CHUNKER_NO_CUT) {
				/* the chunker cuts at max_size: this fits */
				memcpy(p->cur + p->ncur, d, k);
				p->ncur += k;
				x += k;
				break;
			}
			memcpy(p->cur + p->ncur, d, cut);
			p->ncur += cut;
			x += cut;
			d += cut;
			k -= cut;
			if ((r = emit(p)) < 0)
				return r;
			if (aligned(p, x, &e)) {
				*ret_stop = x;
				return 0;
			}
		}
	}
	*ret_stop = x;
	return 0;
}

int reg_spool_plan(struct reg_registry *reg, struct spool *sp, bool full,
		   struct spool_plan *pl)
{
	struct planner p = { .reg = reg, .sp = sp, .pl = pl };
	size_t bi = 0;
	uint64_t stop;
	int r;

	if (!reg || !sp || !pl)
		return -EINVAL;
	memset(pl, 0, sizeof(*pl));
	pl->full = full || !sp->committed;
	pl->size = sp->size;
	pl->base_size = sp->base_size;
	pl->base_ctime = sp->ctime;
	if (pl->full)
		pl->in.new_bytes = sp->new_bytes;
	p.cur = malloc(reg->chunker.max_size);
	p.tmp = malloc(reg->chunker.max_size);
	p.buf = malloc(SPOOL_BLOCK);
	if (!p.cur || !p.tmp || !p.buf) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = changes(&p)) < 0)
		goto out;
	stop = 0;
	while (p.ci < p.ncl) {
		uint64_t from = p.restart[p.ci], e = p.cl[p.ci].b;

		/* aligned() took in every change starting before stop */
		assert(from >= stop);
		p.ci++;
		while (bi < sp->nbase && sp->base[bi].off < from)
			if ((r = keep(&p, &sp->base[bi++])) < 0)
				goto out;
		if ((r = chunk_from(&p, from, e, &stop)) < 0)
			goto out;
		while (bi < sp->nbase && sp->base[bi].off < stop)
			if ((r = drop(&p, &sp->base[bi++])) < 0)
				goto out;
	}
	for (; bi < sp->nbase; bi++) {
		const struct chunk_ent *x = &sp->base[bi];

		/* past a change of size only what was cut off is left */
		if (x->off + x->len <= sp->limit && x->off + x->len <= sp->size)
			r = keep(&p, x);
		else
			r = drop(&p, x);
		if (r < 0)
			goto out;
	}
	pl->in.size = sp->size;
out:
	reg_fresh_free(&p.fm);
	free(p.cur);
	free(p.tmp);
	free(p.buf);
	free(p.cl);
	free(p.restart);
	if (r < 0)
		reg_spool_plan_release(pl);
	return r;
}

void reg_spool_plan_release(struct spool_plan *pl)
{
	if (!pl)
		return;
	reg_ingest_release(&pl->in);
	free(pl->drop);
	free(pl->all);
	free(pl->all_in);
	memset(pl, 0, sizeof(*pl));
}

int reg_spool_plan_apply_txn(struct reg_registry *reg, struct idx_txn *t,
			     struct spool_plan *pl, const struct inode_rec *f)
{
	size_t i;
	int r;

	if (pl->full) {
		if ((r = reg_extents_drop_txn(t, f->ino)) < 0)
			return r;
	} else {
		/* another process committed the file meanwhile: base is
		   not what the index holds */
		if (f->ctime != pl->base_ctime || f->size != pl->base_size)
			return -ESTALE;
		for (i = 0; i < pl->ndrop; i++) {
			r = reg_extent_unref_txn(t, f->ino, pl->drop[i].offset,
						 &pl->drop[i].chunk);
			if (r < 0)
				return r == -ENOENT ? -ESTALE : r;
		}
	}
	return reg_ingest_apply_txn(reg, t, &pl->in, f->ino);
}

void reg_spool_committed(struct reg_registry *reg, struct spool *sp,
			 struct spool_plan *pl, int64_t ctime)
{
	size_t i;

	for (i = 0; i < pl->nall; i++) {
		struct chunk_ent *e = &pl->all[i];

		if (pl->all_in[i] >= 0) {
			e->key = pl->in.v[pl->all_in[i]].key;
			e->loc = pl->in.v[pl->all_in[i]].loc;
		}
		e->fresh = e->heal = false;
		e->dup_of = -1;
	}
	free(sp->base);
	sp->base = pl->all;
	sp->nbase = pl->nall;
	pl->all = NULL;
	pl->nall = 0;
	sp->base_size = sp->limit = sp->size = pl->size;
	sp->committed = true;
	sp->ctime = ctime;
	sp->new_bytes = 0;
	sp->cidx = SIZE_MAX;
	/* the spool file is empty now: give its descriptor back */
	sp->nsp = 0;
	reg_spool_fd_close(reg, sp->fd, sp->uid);
	sp->fd = -1;
	if (sp->batch)
		store_batch_end(reg->st);
	sp->batch = false;
}
