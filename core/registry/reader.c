/* reader.c — opening a file and reading it: committed content, read
 * chunk by chunk and checked, and the snapshots of the .mreg files.
 *
 * An open loads the file's extents and their chunks' places in one read
 * transaction: a snapshot. A sealed file's bytes never change and its
 * version is pinned against gc while it is open, so its table is shared
 * by every open of it and kept a while after the last close (struct
 * ext_table). Every chunk is checked against its id as it is read; one
 * gc moved since the open, or a damaged one that a push of the same bytes
 * healed, is looked up again. A gap between extents is a hole and reads
 * as zeros. A file open for writing here is read through its write state
 * instead (writer.c, stream.c, spool.c).
 *
 * Read-ahead. When the chunk store keeps a host cache in front of a
 * remote one (STORE_CACHED), each open follows its reads (readahead.h):
 * while they are sequential, the chunks of the read and of a window
 * ahead of it are handed to store_prefetch(), which fetches them several
 * at a time, so that a cold first read is bound by the object store
 * rather than by one round trip per chunk. A local store has no such
 * cost: nothing is followed.
 *
 * .mreg/audit.log, .mreg/metrics and .mreg/history/M are snapshots taken
 * at open; audit.log reads on past its snapshot as records are appended
 * (tail -f).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* A sealed file's extents with their chunks' places, loaded once and
 * shared by every open of the inode (sealed content never changes), and
 * kept a while after the last close: serving containers open the same
 * files again and again, and each load reads one index record per chunk.
 * A table whose chunk gc moved is marked stale and loaded again. */
struct ext_table {
	uint64_t ino, version, size;
	struct mreg_id digest;
	struct rext *ext;
	size_t next;
	int refs;                 /* opens using it */
	bool stale;
	uint64_t used;            /* for dropping the least recently used */
	struct ext_table *link;
};

/* Extents kept in tables nobody has open (about 56 bytes each). */
#define TABLE_CACHE_EXTENTS (128u << 10)

/* ---- opening ----------------------------------------------------------- */

struct open_arg {
	uint64_t ino;
	struct inode_rec rec;
	struct reg_file *f;
	int err;
};

static int resolve_loc_txn(struct idx_txn *t, struct rext *x)
{
	struct chunk_rec c;
	int r = reg_chunk_get_txn(t, &x->key, &c);

	if (r == -ENOENT)
		return -EIO; /* a reference to nothing: damage */
	if (r < 0)
		return r;
	x->loc = c.loc;
	return 0;
}

static int open_txn(struct idx_txn *t, void *arg)
{
	struct open_arg *a = arg;
	struct ext_list l;
	size_t i;
	int r;

	r = reg_inode_get_txn(t, a->ino, &a->rec);
	if (r < 0)
		return r;
	if (a->rec.kind != REG_FILE && a->rec.kind != REG_PENDING)
		return S_ISDIR(a->rec.mode) ? -EISDIR : -EINVAL;
	if ((r = reg_extents_load_txn(t, a->ino, &l)) < 0)
		return r;
	a->f->ext = calloc(l.n ? l.n : 1, sizeof(*a->f->ext));
	if (!a->f->ext) {
		free(l.v);
		return -ENOMEM;
	}
	for (i = 0; i < l.n; i++) {
		a->f->ext[i].off = l.v[i].offset;
		a->f->ext[i].len = l.v[i].len;
		a->f->ext[i].key = l.v[i].chunk;
		if ((r = resolve_loc_txn(t, &a->f->ext[i])) < 0) {
			char hex[MREG_ID_HEX];
			struct mreg_id id;

			rec_chunk_key_id(&l.v[i].chunk, &id);
			log_err(r, "file '%s' (inode %llu): chunk %s is missing",
				a->rec.name, (unsigned long long)a->ino,
				chunkid_hex(&id, hex));
			break;
		}
	}
	a->f->next = l.n;
	free(l.v);
	if (r < 0) {
		free(a->f->ext);
		a->f->ext = NULL;
	}
	return r;
}

#define TABLE_BUCKETS (sizeof(((struct reg_registry *)0)->tables) / \
		       sizeof(struct ext_table *))

static struct ext_table **table_bucket(struct reg_registry *reg, uint64_t ino)
{
	return &reg->tables[(ino * 0x9e3779b97f4a7c15ULL >> 54) %
			    TABLE_BUCKETS];
}

/* Frees unused tables, least recently used first, down to the cap (all of
 * them with cap 0); reg->lock held. */
static void tables_trim(struct reg_registry *reg, size_t cap)
{
	struct ext_table **pp, **victim, *t;
	size_t b;

	/* the common case costs nothing: under the cap, nothing stale */
	while (reg->table_extents > cap || reg->table_stale) {
		victim = NULL;
		for (b = 0; b < TABLE_BUCKETS; b++)
			for (pp = &reg->tables[b]; (t = *pp); pp = &t->link)
				if (!t->refs && (t->stale || !victim ||
						 t->used < (*victim)->used))
					victim = pp;
		if (!victim)
			return;
		t = *victim;
		if (!t->stale && reg->table_extents <= cap)
			return;
		*victim = t->link;
		reg->table_extents -= t->next;
		if (t->stale)
			reg->table_stale--;
		free(t->ext);
		free(t);
	}
}

static struct ext_table *table_get(struct reg_registry *reg, uint64_t ino)
{
	struct ext_table *t;

	pthread_mutex_lock(&reg->lock);
	for (t = *table_bucket(reg, ino); t; t = t->link)
		if (t->ino == ino && !t->stale) {
			t->refs++;
			t->used = ++reg->table_clock;
			break;
		}
	pthread_mutex_unlock(&reg->lock);
	return t;
}

static void table_put(struct reg_registry *reg, struct ext_table *t)
{
	pthread_mutex_lock(&reg->lock);
	t->refs--;
	tables_trim(reg, TABLE_CACHE_EXTENTS);
	pthread_mutex_unlock(&reg->lock);
}

/* Makes f's freshly loaded extents a shared table (or uses one another
 * thread made meanwhile). */
static void table_adopt(struct reg_registry *reg, struct reg_file *f)
{
	struct ext_table *t = calloc(1, sizeof(*t)), *o;

	if (!t)
		return; /* f keeps its own copy */
	pthread_mutex_lock(&reg->lock);
	for (o = *table_bucket(reg, f->ino); o; o = o->link)
		if (o->ino == f->ino && !o->stale)
			break;
	if (o) {
		o->refs++;
		o->used = ++reg->table_clock;
		pthread_mutex_unlock(&reg->lock);
		free(t);
		free(f->ext);
		f->tab = o;
		f->ext = o->ext;
		f->next = o->next;
		return;
	}
	t->ino = f->ino;
	t->version = f->version;
	t->size = f->size;
	t->digest = f->digest;
	t->ext = f->ext;
	t->next = f->next;
	t->refs = 1;
	t->used = ++reg->table_clock;
	t->link = *table_bucket(reg, f->ino);
	*table_bucket(reg, f->ino) = t;
	reg->table_extents += t->next;
	f->tab = t;
	pthread_mutex_unlock(&reg->lock);
}

void reg_tables_free(struct reg_registry *reg)
{
	struct ext_table *t;
	size_t b;

	pthread_mutex_lock(&reg->lock);
	for (b = 0; b < TABLE_BUCKETS; b++)
		while ((t = reg->tables[b])) {
			reg->tables[b] = t->link;
			free(t->ext);
			free(t);
		}
	reg->table_extents = reg->table_stale = 0;
	pthread_mutex_unlock(&reg->lock);
}

struct reg_file *reg_file_new(struct reg_registry *reg, uint64_t ino)
{
	struct reg_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->reg = reg;
	f->ino = ino;
	f->cidx = SIZE_MAX;
	pthread_mutex_init(&f->lock, NULL);
	pthread_mutex_init(&f->ra_lock, NULL);
	return f;
}

void reg_file_free(struct reg_file *f)
{
	if (!f)
		return;
	if (f->counted)
		reg_file_uncount(f->reg, f->ino);
	if (f->entered)
		reg_writers_leave(f->reg, f->version);
	if (f->pinned)
		reg_unpin(f->reg, f->version);
	pthread_mutex_destroy(&f->lock);
	pthread_mutex_destroy(&f->ra_lock);
	if (f->tab)
		table_put(f->reg, f->tab);
	else
		free(f->ext);
	free(f->cbuf);
	free(f->snap);
	free(f);
}

static int audit_snapshot(struct reg_registry *reg, struct reg_file *f);
static int history_snapshot(struct reg_registry *reg, struct reg_file *f);
static void audit_more(struct reg_file *f);

static int version_state_txn(struct idx_txn *t, void *arg)
{
	struct inode_rec *v = arg;

	return reg_inode_get_txn(t, v->ino, v);
}

/* f, a file of a draft, is opened for writing: from now until its release
 * no process can seal the draft; one that sealed it meanwhile makes the
 * open fail with -EROFS. */
static int draft_enter(struct reg_registry *reg, struct reg_file *f)
{
	struct inode_rec v = { .ino = f->version };
	int r;

	if ((r = reg_writers_enter(reg, f->version)) < 0)
		return r;
	f->entered = true;
	if ((r = idx_read(reg->ix, version_state_txn, &v)) < 0)
		return r;
	return (v.flags & INODE_SEALED) ? -EROFS : 0;
}

int reg_file_open(struct reg_registry *reg, const struct reg_caller *who,
		  uint64_t ino, int flags, struct reg_file **ret)
{
	struct open_arg a = { .ino = ino };
	struct reg_file *f;
	bool writer = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
	int r;

	if (!reg || !who || !ret)
		return -EINVAL;
	if (reg_ino_snapshot(ino)) {
		if (writer)
			return -EACCES;
		f = reg_file_new(reg, ino);
		if (!f)
			return -ENOMEM;
		f->kind = ino == REG_AUDITLOG_INO ? REG_AUDITLOG :
			  ino == REG_METRICS_INO ? REG_METRICS : REG_HISTFILE;
		f->sealed = false;
		r = ino == REG_AUDITLOG_INO ? audit_snapshot(reg, f) :
		    ino == REG_METRICS_INO ?
		    reg_metrics_text(reg, &f->snap, &f->snap_len) :
		    history_snapshot(reg, f);
		if (r < 0) {
			reg_file_free(f);
			return r;
		}
		f->size = f->snap_len;
		*ret = f;
		return 0;
	}
	if (reg_ino_virtual(ino))
		return -EISDIR;
	f = reg_file_new(reg, ino);
	if (!f)
		return -ENOMEM;
	f->uid = who->uid;
	if (!writer && (f->tab = table_get(reg, ino))) {
		/* opened before: no index work at all */
		f->kind = REG_FILE;
		f->version = f->tab->version;
		f->size = f->tab->size;
		f->digest = f->tab->digest;
		f->ext = f->tab->ext;
		f->next = f->tab->next;
		f->sealed = true;
		f->flags = flags;
		reg_pin(reg, f->version);
		f->pinned = true;
		*ret = f;
		return 0;
	}
	a.f = f;
	if ((r = reg_file_count(reg, ino)) < 0)
		goto fail;
	f->counted = true;
	/* sealed: this host may have it (fixed.c) */
	if (writer || reg_fixed_file(reg, ino, &a.rec, &f->ext, &f->next) < 0) {
		r = idx_read(reg->ix, open_txn, &a);
		if (r < 0)
			goto fail;
		if (!writer && a.rec.kind == REG_FILE)
			reg_fixed_keep_file(reg, &a.rec, f->ext, f->next);
	}
	f->kind = a.rec.kind;
	f->version = a.rec.version;
	f->size = a.rec.size;
	f->ctime = a.rec.ctime;
	f->digest = a.rec.digest;
	f->nodigest = (a.rec.flags & INODE_NODIGEST) != 0;
	f->sealed = (a.rec.flags & INODE_SEALED) != 0;
	f->flags = flags;
	f->writer = writer;
	if (writer && f->sealed) {
		r = -EROFS;
		reg_audit_ino_failure(reg, who, r, ino, &(struct audit_ev){
			.op = "open" });
		goto fail;
	}
	if (f->sealed) {
		reg_file_uncount(reg, ino); /* cannot be unlinked */
		f->counted = false;
		reg_pin(reg, f->version);
		f->pinned = true;
		if (f->kind == REG_FILE)
			table_adopt(reg, f);
	} else {
		if (writer && f->kind == REG_FILE &&
		    (r = draft_enter(reg, f)) < 0)
			goto fail;
		if (a.rec.flags & INODE_TRASHED) {
			/* opened again after its unlink (/proc/PID/fd) */
			reg_pin(reg, ino);
			reg_file_trashed_here(reg, ino);
		}
		r = reg_ws_attach(reg, f, writer, (flags & O_TRUNC) != 0);
		if (r < 0)
			goto fail;
	}
	*ret = f;
	return 0;
fail:
	reg_file_free(f);
	return r;
}

void reg_file_read_quietly(struct reg_file *f)
{
	f->quiet = true;
}

bool reg_file_sealed(const struct reg_file *f)
{
	return f && f->sealed;
}

int reg_file_attr(struct reg_file *f, struct reg_attr *ret)
{
	int r;

	if (!f || !ret)
		return -EINVAL;
	if (f->snap) {
		/* audit.log grows as it is read (tail -f): its size is the
		   log's; metrics is what was rendered at open */
		r = reg_getattr(f->reg, f->ino, ret);
		if (r == 0 && f->kind == REG_METRICS)
			ret->size = f->snap_len;
		return r;
	}
	r = reg_getattr(f->reg, f->ino, ret);
	if (r < 0)
		return r;
	if (f->ws)
		ret->size = f->ws->size;
	return 0;
}

/* ---- reading ------------------------------------------------------------ */

struct reloc_arg {
	struct rext *x;
};

static int reloc_txn(struct idx_txn *t, void *arg)
{
	return resolve_loc_txn(t, ((struct reloc_arg *)arg)->x);
}

/* Reads extent i verified into buf (x->len bytes). A pack gc removed since
 * we opened, or a damaged copy that pushing the same bytes again replaced
 * (healing, after the extents were loaded): look the chunk's place up and
 * read again. */
static int read_extent(struct reg_file *f, size_t i, uint8_t *buf)
{
	struct rext *x = &f->ext[i];
	struct mreg_id id;
	int r, tries;

	struct rext moved;

	rec_chunk_key_id(&x->key, &id);
	r = reg_extent_get(f->reg, &x->loc, &id, x->len, buf);
	for (tries = 0; tries < 3 && (r == -ENOENT || (r == -EIO && !tries));
	     tries++) {
		/* gc moved it: find its place; the table (shared, read
		   without a lock) is not written but loaded again later */
		struct reloc_arg ra = { &moved };
		int was = r;

		moved = *x;
		if (was == -EIO) {
			/* damaged: a healed copy lives elsewhere, if any */
			r = idx_read(f->reg->ix, reloc_txn, &ra);
			if (r < 0 || chunk_loc_eq(&moved.loc, &x->loc)) {
				r = -EIO;
				break;
			}
		}
		if (f->tab) {
			pthread_mutex_lock(&f->reg->lock);
			if (!f->tab->stale) {
				f->tab->stale = true;
				f->reg->table_stale++;
			}
			pthread_mutex_unlock(&f->reg->lock);
		}
		if (was == -ENOENT)
			r = idx_read(f->reg->ix, reloc_txn, &ra);
		if (r == 0)
			r = reg_extent_get(f->reg, &moved.loc, &id, x->len,
					   buf);
	}
	if (r < 0) {
		atomic_fetch_add(&f->reg->errors, 1);
		if (r == -ENOENT)
			r = -EIO;
	}
	return r;
}

static size_t find_extent(const struct reg_file *f, uint64_t off)
{
	size_t lo = 0, hi = f->next;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->ext[mid].off <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Chunks handed to store_prefetch() at a time. */
#define RA_BATCH 64

/* Hands the chunks of extents [i, i + n) to store_prefetch(): false when
 * it took fewer (its queue is full). */
static bool prefetch_extents(struct reg_file *f, size_t i, size_t n)
{
	struct chunk_loc locs[RA_BATCH];
	struct mreg_id ids[RA_BATCH];
	size_t k;

	for (k = 0; k < n; k++) {
		locs[k] = f->ext[i + k].loc;
		rec_chunk_key_id(&f->ext[i + k].key, &ids[k]);
	}
	return store_prefetch(f->reg->st, locs, ids, n) == n;
}

/* A read of [off, off + size) of committed content: when it is part of a
 * sequential stream, the chunks of what the window adds are prefetched
 * (see the top of this file). What the store had no room for is asked
 * for again at the next read. */
static void read_ahead(struct reg_file *f, uint64_t off, size_t size)
{
	uint64_t from, to;
	size_t i, n;
	bool go;

	if (!f->reg->readahead)
		return;
	pthread_mutex_lock(&f->ra_lock);
	go = reg_readahead(&f->ra, off, size, f->size, f->reg->readahead,
			   &from, &to);
	pthread_mutex_unlock(&f->ra_lock);
	if (!go)
		return;
	for (i = find_extent(f, from); i < f->next &&
	     f->ext[i].off + f->ext[i].len <= from; i++)
		;
	for (; i < f->next && f->ext[i].off < to; i += n) {
		for (n = 1; n < RA_BATCH && i + n < f->next &&
		     f->ext[i + n].off < to; n++)
			;
		if (!prefetch_extents(f, i, n)) {
			pthread_mutex_lock(&f->ra_lock);
			if (f->ra.done > f->ext[i].off)
				f->ra.done = f->ext[i].off;
			pthread_mutex_unlock(&f->ra_lock);
			return;
		}
	}
}

/* Reads committed content. When a chunk fails its check after some bytes
 * were read: with partial, those bytes (a CLI copying a file writes what
 * is right); else the error, since a short read means the end of the file
 * to FUSE, whose kernel then shrinks the file it caches (cat through the
 * mount would copy a truncated file and exit 0). */
static ssize_t read_committed(struct reg_file *f, uint8_t *buf, size_t size,
			      uint64_t off, bool partial)
{
	size_t i, done = 0, n;
	uint64_t in, end;
	struct rext *x;
	int r;

	if (off >= f->size)
		return 0;
	if (size > f->size - off)
		size = (size_t)(f->size - off);
	read_ahead(f, off, size);
	for (i = find_extent(f, off); done < size; done += n) {
		while (i < f->next && f->ext[i].off + f->ext[i].len <=
		       off + done)
			i++;
		if (i >= f->next || f->ext[i].off > off + done) {
			/* a hole */
			end = i < f->next ? f->ext[i].off : f->size;
			n = end - (off + done) < size - done ?
			    (size_t)(end - (off + done)) : size - done;
			memset(buf + done, 0, n);
			continue;
		}
		x = &f->ext[i];
		in = off + done - x->off;
		n = x->len - in;
		if (n > size - done)
			n = size - done;
		if (in == 0 && n == x->len) {
			/* the whole chunk: verify in place, no copy */
			r = read_extent(f, i, buf + done);
			if (r < 0)
				return partial && done ? (ssize_t)done : r;
		} else {
			pthread_mutex_lock(&f->lock);
			if (f->cidx != i) {
				if (!f->cbuf)
					f->cbuf = malloc(f->reg->chunker.max_size);
				r = f->cbuf ? read_extent(f, i, f->cbuf) :
					      -ENOMEM;
				if (r < 0) {
					f->cidx = SIZE_MAX;
					pthread_mutex_unlock(&f->lock);
					return partial && done ? (ssize_t)done
							       : r;
				}
				f->cidx = i;
			}
			memcpy(buf + done, f->cbuf + in, n);
			pthread_mutex_unlock(&f->lock);
		}
	}
	return (ssize_t)done;
}

static ssize_t read_at(struct reg_file *f, void *buf, size_t size,
		       uint64_t off, bool partial)
{
	ssize_t n;

	if (f->snap) {
		pthread_mutex_lock(&f->lock);
		/* records appended since: read on, as from any log file */
		if (f->kind == REG_AUDITLOG && off + size > f->snap_len)
			audit_more(f);
		if (off >= f->snap_len)
			size = 0;
		else if (size > f->snap_len - off)
			size = (size_t)(f->snap_len - off);
		if (size)
			memcpy(buf, f->snap + off, size);
		pthread_mutex_unlock(&f->lock);
		return (ssize_t)size;
	}
	if (f->ws) {
		struct wstate *ws = f->ws;

		pthread_mutex_lock(&ws->lock);
		n = reg_stream_to_spool(f->reg, ws, f->uid);
		if (n == 0)
			n = reg_spool_read(f->reg, ws->sp, buf, size, off);
		pthread_mutex_unlock(&ws->lock);
	} else {
		n = read_committed(f, buf, size, off, partial);
	}
	if (n > 0 && !f->quiet) {
		atomic_fetch_add(&f->reg->reads, 1);
		atomic_fetch_add(&f->reg->read_bytes, (uint64_t)n);
	}
	return n;
}

ssize_t reg_file_read(struct reg_file *f, void *buf, size_t size, uint64_t off)
{
	if (!f || (!buf && size))
		return -EINVAL;
	return read_at(f, buf, size, off, false);
}

/* lseek SEEK_DATA/SEEK_HOLE in content without holes (a stream, a
 * snapshot). */
static int seek_dense(uint64_t size, uint64_t off, int whence, uint64_t *ret)
{
	if (off >= size)
		return -ENXIO;
	*ret = whence == SEEK_DATA ? off : size;
	return 0;
}

int reg_file_lseek(struct reg_file *f, uint64_t off, int whence, uint64_t *ret)
{
	uint64_t x = off;
	size_t i;
	int r;

	if (!f || !ret || (whence != SEEK_DATA && whence != SEEK_HOLE))
		return -EINVAL;
	if (f->ws) {
		pthread_mutex_lock(&f->ws->lock);
		r = f->ws->sp ? reg_spool_seek(f->ws->sp, off, whence, ret) :
				seek_dense(f->ws->size, off, whence, ret);
		pthread_mutex_unlock(&f->ws->lock);
		return r;
	}
	if (f->snap)
		return seek_dense(f->snap_len, off, whence, ret);
	if (off >= f->size)
		return -ENXIO;
	for (i = find_extent(f, off); i < f->next &&
	     f->ext[i].off + f->ext[i].len <= off; i++)
		;
	if (whence == SEEK_DATA) {
		if (i >= f->next)
			return -ENXIO;
		x = f->ext[i].off > off ? f->ext[i].off : off;
	} else {
		for (; i < f->next && f->ext[i].off <= x; i++)
			x = f->ext[i].off + f->ext[i].len;
		if (x > f->size)
			x = f->size;
	}
	*ret = x;
	return 0;
}

/* ---- .mreg/audit.log and .mreg/history/M as files ---------------------- */

struct snap_arg {
	struct strbuf sb;
	uint64_t last;
};

static int snap_line(void *arg, uint64_t seq, const char *json, size_t len)
{
	struct snap_arg *a = arg;

	strbuf_add(&a->sb, json, len);
	strbuf_addch(&a->sb, '\n');
	a->last = seq;
	return 0;
}

static int audit_snapshot(struct reg_registry *reg, struct reg_file *f)
{
	struct snap_arg a = { .last = 0 };
	int r;

	strbuf_init(&a.sb);
	r = reg_audit(reg, 0, snap_line, &a);
	if (r < 0) {
		strbuf_release(&a.sb);
		return r;
	}
	f->snap = strbuf_detach(&a.sb, &f->snap_len);
	f->snap_seq = a.last;
	return 0;
}

/* .mreg/history/M, read at open as audit.log is. */
static int history_snapshot(struct reg_registry *reg, struct reg_file *f)
{
	return reg_history_text(reg, f->ino & ~REG_HISTORY_BIT, &f->snap,
				&f->snap_len);
}

/* Appends to an open audit.log the records written since it was read
 * last (f->lock held). A failure leaves it as it was: the reader sees
 * the end of the file, and tries again at its next read. */
static void audit_more(struct reg_file *f)
{
	struct snap_arg a = { .last = f->snap_seq };
	char *n;

	strbuf_init(&a.sb);
	if (reg_audit(f->reg, f->snap_seq + 1, snap_line, &a) < 0 ||
	    !a.sb.len || !(n = realloc(f->snap, f->snap_len + a.sb.len))) {
		strbuf_release(&a.sb);
		return;
	}
	memcpy(n + f->snap_len, a.sb.buf, a.sb.len);
	f->snap = n;
	f->snap_len += a.sb.len;
	f->snap_seq = a.last;
	strbuf_release(&a.sb);
}

/* ---- cat ---------------------------------------------------------------- */

int reg_cat(struct reg_registry *reg, const char *model, const char *version,
	    const char *path, int fd)
{
	struct reg_caller self;
	struct reg_attr a;
	struct reg_file *f;
	char *full;
	uint8_t *buf;
	uint64_t off = 0;
	ssize_t n, w;
	int r;

	if (!reg || !model || !version || !path || fd < 0)
		return -EINVAL;
	if (asprintf(&full, "%s/%s/%s", model, version, path) < 0)
		return -ENOMEM;
	r = reg_resolve(reg, full, &a);
	free(full);
	if (r < 0)
		return r;
	if (S_ISDIR(a.mode))
		return -EISDIR;
	if (a.kind != REG_FILE)
		return -EINVAL;
	reg_caller_self(&self);
	r = reg_file_open(reg, &self, a.ino, O_RDONLY, &f);
	if (r < 0)
		return r;
	buf = malloc(1u << 20);
	if (!buf) {
		reg_file_release(f);
		return -ENOMEM;
	}
	for (;;) {
		n = read_at(f, buf, 1u << 20, off, true);
		if (n <= 0) {
			r = (int)n;
			break;
		}
		for (w = 0; w < n;) {
			ssize_t k = write(fd, buf + w, (size_t)(n - w));

			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				r = -errno;
				goto out;
			}
			w += k;
		}
		off += (uint64_t)n;
	}
out:
	free(buf);
	reg_file_release(f);
	return r;
}
