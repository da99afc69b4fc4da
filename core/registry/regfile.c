/* regfile.c — file content: chunking and storing what is written,
 * committing it in one transaction, reading it back verified; and the
 * calls that create, open, truncate and register files (SPEC §2, §5).
 *
 * An inode open for writing in this process has one write state (struct
 * wstate), shared by every handle of it, in one of two forms:
 *  - a stream: a file written in order from its start (cp, rsync) is
 *    chunked, hashed and stored as its bytes arrive, by a worker thread,
 *    and its digest taken on the way; a commit stores the tail and names
 *    the chunks.
 *  - a spool (regspool.c): a file opened for writing without O_TRUNC, or
 *    written out of order, read or truncated after a stream began, keeps
 *    the chunks it had (or the stream stored) and writes into a sparse
 *    spool file (an unnamed O_TMPFILE in DIR/spool: a crash leaves nothing
 *    behind); a commit re-chunks only around what changed, holes stay
 *    holes, and the file's digest is left to be computed when it is
 *    sealed (INODE_NODIGEST).
 * Commit (flush) appends new chunks to the pack, fsyncs the pack, and only
 * then names the chunks in one index transaction: durable before
 * referenced. Readers of committed content load the file's extents when
 * they open it (a snapshot: a sealed file's bytes can't change, and its
 * version is pinned against gc), and check every chunk against its id as
 * they read it; a gap between extents is a hole and reads as zeros.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "chunk/chunker.h"
#include "io.h"
#include "log.h"
#include "registry/fdcap.h"
#define MAX_FILE_SIZE (1ULL << 42) /* 4 TiB */

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

/* ---- write states ------------------------------------------------------ */

/* A spool is a descriptor of the daemon's, spent for user uid: within
 * the user's cap and outside the daemon's reserve (fdcap.h), or -EMFILE. */
int reg_spool_fd_open(struct reg_registry *reg, uid_t uid)
{
	int fd = fdcap_take(reg->fdcap, uid);

	if (fd < 0)
		return fd;
	fd = io_openat(AT_FDCWD, reg->spool_dir,
		       O_TMPFILE | O_RDWR | O_CLOEXEC, 0600, IO_SPOOL);
	if (fd < 0) {
		fdcap_give(reg->fdcap, uid);
		return log_err(fd, "cannot create a spool file in '%s'",
			       reg->spool_dir);
	}
	return fdcap_admit(reg->fdcap, uid, fd);
}

void reg_spool_fd_close(struct reg_registry *reg, int fd, uid_t uid)
{
	if (fd < 0)
		return;
	close(fd);
	fdcap_give(reg->fdcap, uid);
}

static struct wstate *ws_find(struct reg_registry *reg, uint64_t ino)
{
	struct wstate *w;

	for (w = reg->wfiles; w; w = w->next)
		if (w->ino == ino)
			return w;
	return NULL;
}

/* The write state of ino when it is open for writing here, referenced
 * (reg_ws_put() it), or NULL. */
static struct wstate *ws_get(struct reg_registry *reg, uint64_t ino)
{
	struct wstate *ws;

	pthread_mutex_lock(&reg->lock);
	ws = ws_find(reg, ino);
	if (ws)
		ws->refs++;
	pthread_mutex_unlock(&reg->lock);
	return ws;
}

void reg_ws_put(struct reg_registry *reg, struct wstate *ws)
{
	struct wstate **pp;

	pthread_mutex_lock(&reg->lock);
	if (--ws->refs > 0) {
		pthread_mutex_unlock(&reg->lock);
		return;
	}
	for (pp = &reg->wfiles; *pp; pp = &(*pp)->next)
		if (*pp == ws) {
			*pp = ws->next;
			break;
		}
	pthread_mutex_unlock(&reg->lock);
	reg_spool_free(reg, ws->sp);
	reg_stream_free(reg, ws->stream);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
}

void reg_writer_size(struct reg_registry *reg, struct reg_attr *a)
{
	struct wstate *w;

	if (a->kind != REG_FILE && a->kind != REG_PENDING)
		return;
	pthread_mutex_lock(&reg->lock);
	if ((w = ws_find(reg, a->ino)))
		a->size = w->size;
	pthread_mutex_unlock(&reg->lock);
}

void reg_version_writers_seal(struct reg_registry *reg, uint64_t v)
{
	struct wstate *w;

	pthread_mutex_lock(&reg->lock);
	for (w = reg->wfiles; w; w = w->next)
		if (w->version == v)
			w->sealed = true;
	pthread_mutex_unlock(&reg->lock);
}

struct commit_arg {
	struct reg_registry *reg;
	const struct reg_caller *who;
	struct wstate *ws;
	struct ingest *in;        /* a stream's content, or */
	struct spool_plan *plan;  /* what a spool changes (neither: nothing
				     new to store) */
	bool nodigest;            /* the content's digest is not known */
	struct mreg_id digest;    /* else, with plan: the digest */
	int64_t ctime;            /* the inode's after the commit */
	unsigned how;             /* COMMIT_* */
	bool registered;
	bool gone;                /* unlinked while open: nothing committed */
	char version[REG_NAME_MAX + 1];
};

static int commit_txn(struct idx_txn *t, void *arg)
{
	struct commit_arg *a = arg;
	bool content = a->in || a->plan;
	struct inode_rec f, v;
	uint64_t new_bytes;
	int r;

	a->registered = false;
	r = reg_inode_get_txn(t, a->ws->ino, &f);
	a->gone = r == -ENOENT || (r == 0 && (f.flags & INODE_TRASHED));
	if (a->gone)
		return 0; /* unlinked while open: nothing to keep */
	if (r < 0)
		return r;
	/* new content needs its version a draft too (reg_sealed_txn) */
	r = f.kind == REG_FILE && content ? reg_sealed_txn(t, &f) :
	    (f.flags & INODE_SEALED) != 0;
	if (r != 0)
		return r < 0 ? r : -EROFS;
	new_bytes = a->plan ? a->plan->in.new_bytes :
		    a->in ? a->in->new_bytes : 0;
	if (f.kind == REG_FILE && content) {
		if ((r = reg_inode_get_txn(t, f.version, &v)) < 0)
			return r;
		v.stored += new_bytes;
		if ((r = reg_inode_put_txn(t, &v)) < 0)
			return r;
	}
	/* a new file of a draft outlives its writer from now on */
	if (f.kind == REG_FILE && (a->how & COMMIT_BIRTH) &&
	    (r = reg_pending_del_txn(t, f.ino)) < 0)
		return r;
	if (a->plan) {
		if ((r = reg_spool_plan_apply_txn(a->reg, t, a->plan, &f)) < 0)
			return r;
		f.size = a->plan->size;
		f.digest = a->digest;
	} else if (a->in) {
		if ((r = reg_extents_drop_txn(t, f.ino)) < 0 ||
		    (r = reg_ingest_apply_txn(a->reg, t, a->in, f.ino)) < 0)
			return r;
		f.size = a->in->size;
		f.digest = a->in->digest;
	}
	if (content) {
		if (a->nodigest)
			f.flags |= INODE_NODIGEST;
		else
			f.flags &= (uint16_t)~INODE_NODIGEST;
		f.ctime = now_ns();
		if (!a->ws->times_kept)
			f.mtime = f.ctime;
		if (f.kind == REG_PENDING)
			f.stored += new_bytes; /* the version's, once made */
	}
	a->ctime = f.ctime;
	if ((a->how & COMMIT_REGISTER) && f.kind == REG_PENDING &&
	    f.name[0] != '.') {
		a->registered = true;
		return reg_version_register_txn(a->reg, t, a->who, &f,
						a->version);
	}
	return reg_inode_put_txn(t, &f);
}

/* Commits a spool (ws->lock held): only what changed is chunked and
 * stored (regspool.c). The digest of the whole content is computed
 * when the file is sealed; a pending file is sealed by the commit of its
 * last close, which may have nothing new to store, so its digest is taken
 * at each commit, before the transaction. */
static int spool_commit(struct reg_registry *reg, struct wstate *ws,
			struct commit_arg *a)
{
	struct spool_plan pl;
	bool full = false;
	int r = 0, tries;

	for (tries = 0; tries < 4; tries++) {
		store_batch_begin(reg->st);
		r = reg_spool_plan(reg, ws->sp, full, &pl);
		a->nodigest = ws->version != 0;
		if (r == 0 && !a->nodigest)
			r = reg_content_digest(reg, pl.all, pl.nall, pl.size,
					       false, &a->digest);
		if (r == 0)
			r = store_sync(reg->st);
		if (r == 0) {
			a->plan = &pl;
			r = reg_change(reg, commit_txn, a);
			a->plan = NULL;
		}
		if (r >= 0 && !a->gone)
			reg_spool_committed(reg, ws->sp, &pl, a->ctime);
		store_batch_end(reg->st);
		reg_spool_plan_release(&pl);
		if (r == -ESTALE) {
			/* another process committed the file meanwhile:
			   ours replaces every extent */
			full = true;
		} else if (r == -EAGAIN) {
			/* a chunk it kept was collected meanwhile: its
			   bytes (read where they were) go to the spool */
			if ((r = reg_spool_detach(reg, ws->sp)) < 0)
				return r;
			full = true;
		} else {
			break;
		}
	}
	if (r == -ESTALE || r == -EAGAIN)
		return log_err(-EIO, "cannot commit inode %llu: its chunks "
			       "keep changing under it",
			       (unsigned long long)ws->ino);
	return r;
}

int reg_ws_commit(struct reg_registry *reg, const struct reg_caller *who,
		  struct wstate *ws, unsigned how)
{
	struct commit_arg a = { .reg = reg, .who = who, .ws = ws,
				.how = how };
	int r;

	if (ws->sealed)
		return -EROFS;
	if (ws->born)
		a.how &= ~COMMIT_BIRTH;
	if (!ws->dirty) {
		if (!a.how)
			return 0;
		r = reg_change(reg, commit_txn, &a);
		if (r < 0)
			return r;
		goto done;
	}
	if (ws->stream && !ws->stream->committed) {
		struct stream *s = ws->stream;

		r = reg_stream_finish(reg, s);
		if (r == 0)
			r = store_sync(reg->st);
		if (r == 0) {
			a.in = &s->in;
			a.nodigest = s->nodigest;
			r = reg_change(reg, commit_txn, &a);
		}
		if (r >= 0 && a.gone) {
			/* unlinked while open: nothing names its chunks (gc
			   may take them), so its bytes move to its spool
			   until the last close */
			if ((r = reg_stream_to_spool(reg, ws, who->uid)) < 0 ||
			    (r = reg_spool_detach(reg, ws->sp)) < 0)
				return r;
			goto done;
		}
		if (r >= 0) {
			s->committed = true;
			ws->ctime = a.ctime;
			if (s->batch) {
				store_batch_end(reg->st);
				s->batch = false;
			}
			goto done;
		}
		if (r != -EAGAIN)
			return r;
		/* a chunk it shared was collected meanwhile: start over
		   from a spool of the same bytes (read where they were) */
		if ((r = reg_stream_to_spool(reg, ws, who->uid)) < 0 ||
		    (r = reg_spool_detach(reg, ws->sp)) < 0)
			return r;
	}
	if (!ws->sp && (r = reg_stream_to_spool(reg, ws, who->uid)) < 0)
		return r;
	a.in = NULL;
	if ((r = spool_commit(reg, ws, &a)) < 0)
		return r;
	if (a.gone && (r = reg_spool_detach(reg, ws->sp)) < 0)
		return r;
	if (!a.gone)
		ws->ctime = a.ctime;
done:
	if (ws->dirty)
		atomic_fetch_add(&reg->writes, 1);
	ws->dirty = false;
	if (a.how & COMMIT_BIRTH)
		ws->born = true;
	if (a.registered) {
		ws->registered = true;
		ws->sealed = true;
		atomic_fetch_add(&reg->registrations, 1);
		return 1;
	}
	return 0;
}

int reg_writer_commit(struct reg_registry *reg, const struct reg_caller *who,
		      uint64_t ino)
{
	struct wstate *ws;
	int r = 0;

	ws = ws_get(reg, ino);
	if (!ws)
		return 0;
	pthread_mutex_lock(&ws->lock);
	if (ws->dirty)
		r = reg_ws_commit(reg, who, ws, 0);
	pthread_mutex_unlock(&ws->lock);
	reg_ws_put(reg, ws);
	return r < 0 ? r : 0;
}

void reg_writer_registered(struct reg_registry *reg, uint64_t ino)
{
	struct wstate *ws;

	ws = ws_get(reg, ino);
	if (!ws)
		return;
	pthread_mutex_lock(&ws->lock);
	ws->registered = ws->sealed = true;
	pthread_mutex_unlock(&ws->lock);
	reg_ws_put(reg, ws);
}

int reg_ws_empty(struct reg_registry *reg, struct wstate *ws)
{
	struct stream *s = reg_stream_new(reg);

	if (!s)
		return -ENOMEM;
	reg_stream_free(reg, ws->stream);
	ws->stream = s;
	reg_spool_free(reg, ws->sp);
	ws->sp = NULL;
	ws->size = 0;
	return 0;
}

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

/* Frees unused tables, least recently used first, down to the cap (all of
 * them with cap 0); reg->lock held. */
#define TABLE_BUCKETS (sizeof(((struct reg_registry *)0)->tables) / \
		       sizeof(struct ext_table *))

static struct ext_table **table_bucket(struct reg_registry *reg, uint64_t ino)
{
	return &reg->tables[(ino * 0x9e3779b97f4a7c15ULL >> 54) %
			    TABLE_BUCKETS];
}

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

/* A spool over f's committed content, to write it in place. */
static int spool_of(struct reg_file *f, struct spool **ret)
{
	struct chunk_ent *v = calloc(f->next ? f->next : 1, sizeof(*v));
	size_t i;
	int r;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < f->next; i++) {
		v[i].off = f->ext[i].off;
		v[i].len = f->ext[i].len;
		v[i].key = f->ext[i].key;
		v[i].loc = f->ext[i].loc;
		rec_chunk_key_id(&v[i].key, &v[i].id);
		v[i].dup_of = -1;
	}
	r = reg_spool_new(v, f->next, f->size, true, f->ctime, 0, f->uid, ret);
	free(v);
	return r;
}

int reg_ws_attach(struct reg_registry *reg, struct reg_file *f, bool writer,
		  bool trunc)
{
	struct wstate *ws;
	struct spool *sp = NULL;
	int r;

	pthread_mutex_lock(&reg->lock);
	ws = ws_find(reg, f->ino);
	if (ws || !writer) {
		if (ws)
			ws->refs++;
		pthread_mutex_unlock(&reg->lock);
		f->ws = ws;
		goto have;
	}
	pthread_mutex_unlock(&reg->lock);
	/* a new content is streamed; else what it has is written in place */
	if (!trunc && (r = spool_of(f, &sp)) < 0)
		return r;
	ws = calloc(1, sizeof(*ws));
	if (!ws || (trunc && !(ws->stream = reg_stream_new(reg)))) {
		reg_spool_free(reg, sp);
		free(ws);
		return -ENOMEM;
	}
	ws->ino = f->ino;
	ws->version = f->version;
	ws->sp = sp;
	ws->ctime = f->ctime;
	ws->born = true;
	ws->size = trunc ? 0 : f->size;
	ws->refs = 1;
	pthread_mutex_init(&ws->lock, NULL);
	pthread_mutex_lock(&reg->lock);
	if (ws_find(reg, f->ino)) {
		/* another thread won: use its state */
		struct wstate *other = ws_find(reg, f->ino);

		other->refs++;
		pthread_mutex_unlock(&reg->lock);
		reg_spool_free(reg, ws->sp);
		reg_stream_free(reg, ws->stream);
		pthread_mutex_destroy(&ws->lock);
		free(ws);
		ws = other;
	} else {
		ws->next = reg->wfiles;
		reg->wfiles = ws;
		pthread_mutex_unlock(&reg->lock);
	}
	f->ws = ws;
have:
	if (ws && trunc) {
		pthread_mutex_lock(&ws->lock);
		if (ws->stream && ws->stream->end == 0 &&
		    !ws->stream->committed)
			ws->dirty = true; /* empty already */
		else if (reg_ws_empty(reg, ws) == 0)
			ws->dirty = true; /* stream the new content */
		pthread_mutex_unlock(&ws->lock);
	}
	return 0;
}

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
	r = idx_read(reg->ix, open_txn, &a);
	if (r < 0)
		goto fail;
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

ssize_t reg_file_write(struct reg_file *f, const void *buf, size_t size,
		       uint64_t off)
{
	struct wstate *ws;
	ssize_t n;

	if (!f || (!buf && size))
		return -EINVAL;
	if (f->sealed)
		return -EROFS;
	if (!f->writer || !f->ws)
		return -EBADF;
	if (off + size > MAX_FILE_SIZE)
		return -EFBIG;
	ws = f->ws;
	pthread_mutex_lock(&ws->lock);
	if (ws->sealed) {
		pthread_mutex_unlock(&ws->lock);
		return -EROFS;
	}
	if (f->flags & O_APPEND)
		off = ws->size;
	if (ws->stream && !ws->stream->committed && !ws->stream->copied &&
	    !ws->stream->finished && off == ws->stream->end) {
		/* in order from the start: chunk and store it now (not after
		   a commit that failed past reg_stream_finish(): its size and
		   digest are taken) */
		n = reg_stream_write(f->reg, ws->stream, buf, size);
		if (n == 0)
			n = (ssize_t)size;
	} else {
		n = reg_stream_to_spool(f->reg, ws, f->uid);
		if (n == 0)
			n = reg_spool_write(f->reg, ws->sp, buf, size, off);
	}
	if (n >= 0) {
		if (ws->sp)
			ws->size = reg_spool_size(ws->sp);
		else if (off + (uint64_t)n > ws->size)
			ws->size = off + (uint64_t)n;
		ws->dirty = true;
		ws->times_kept = false;
		atomic_fetch_add(&f->reg->write_bytes, (uint64_t)n);
	}
	pthread_mutex_unlock(&ws->lock);
	return n;
}

ssize_t reg_file_copy_range(struct reg_file *in, uint64_t off_in,
			    struct reg_file *out, uint64_t off_out, size_t len)
{
	struct wstate *ws;
	struct stream *s;
	ssize_t r;
	size_t i;

	if (!in || !out)
		return -EINVAL;
	if (in->reg != out->reg)
		return -EXDEV;
	if (in->snap || in->ws)
		return -EOPNOTSUPP; /* no committed content to share */
	if (off_in >= in->size)
		return 0;
	if (!out->writer || !out->ws)
		return -EBADF;
	ws = out->ws;
	pthread_mutex_lock(&ws->lock);
	s = ws->stream;
	if (ws->sealed) {
		r = -EROFS;
	} else if (!s || s->committed || s->copied || s->err || s->end ||
		   off_in || off_out || len < in->size) {
		/* only a whole file into a new one: anything else is copied
		   by the caller through read and write */
		r = -EOPNOTSUPP;
	} else {
		r = 0;
		for (i = 0; i < in->next && r == 0; i++) {
			struct chunk_ent e = { .len = in->ext[i].len,
					       .dup_of = -1,
					       .key = in->ext[i].key,
					       .loc = in->ext[i].loc };

			rec_chunk_key_id(&in->ext[i].key, &e.id);
			s->in.end = in->ext[i].off; /* holes stay */
			r = reg_ingest_push(&s->in, &e);
		}
		if (r == 0) {
			s->copied = true;
			s->copied_digest = in->digest;
			s->nodigest = in->nodigest;
			s->pos = s->end = in->size;
			ws->size = in->size;
			ws->dirty = true;
			ws->times_kept = false;
			r = (ssize_t)in->size;
		} else {
			s->err = (int)r;
		}
	}
	pthread_mutex_unlock(&ws->lock);
	return r;
}

void reg_writer_times_kept(struct reg_registry *reg, uint64_t ino)
{
	struct wstate *ws;

	ws = ws_get(reg, ino);
	if (!ws)
		return;
	pthread_mutex_lock(&ws->lock);
	ws->times_kept = true;
	pthread_mutex_unlock(&ws->lock);
	reg_ws_put(reg, ws);
}

int reg_writer_truncate(struct reg_registry *reg, const struct reg_caller *who,
			uint64_t ino, uint64_t size)
{
	struct reg_file *f;
	struct wstate *ws;
	int r;

	if (size > MAX_FILE_SIZE)
		return -EFBIG;
	r = reg_file_open(reg, who, ino, O_RDWR, &f);
	if (r < 0)
		return r;
	ws = f->ws;
	pthread_mutex_lock(&ws->lock);
	f->internal = true;
	if (ws->sealed) {
		r = -EROFS;
	} else if ((r = reg_stream_to_spool(reg, ws, who->uid)) == 0) {
		r = reg_spool_truncate(reg, ws->sp, size);
		if (r == 0) {
			ws->size = size;
			ws->dirty = true;
			ws->times_kept = false;
			/* another handle has it open: its flush commits (and
			   a pending file registers when its writer closes
			   it) */
			r = ws->refs > 1 ? 0 : reg_ws_commit(reg, who, ws, 0);
		}
	}
	pthread_mutex_unlock(&ws->lock);
	reg_file_release(f);
	return r < 0 ? r : 0;
}

/* ---- the audit log as a file ------------------------------------------- */

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
