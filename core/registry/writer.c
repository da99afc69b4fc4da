/* writer.c — a file open for writing in this process: its write state,
 * the writes, and the commit that makes them the file's content (SPEC §2,
 * §5).
 *
 * An inode open for writing here has one write state (struct wstate,
 * internal.h), shared by every handle of it, in one of two forms:
 *  - a stream (stream.c): a file written in order from its start (cp,
 *    rsync) is chunked, hashed and stored as its bytes arrive, and its
 *    digest taken on the way; a commit stores the tail and names the
 *    chunks.
 *  - a spool (spool.c): a file opened for writing without O_TRUNC, or
 *    written out of order, read or truncated after a stream began, keeps
 *    the chunks it had (or the stream stored) and writes into a sparse
 *    spool file (an unnamed O_TMPFILE in DIR/spool: a crash leaves nothing
 *    behind); a commit re-chunks only around what changed, holes stay
 *    holes, and the file's digest is left to be computed when it is
 *    sealed (INODE_NODIGEST).
 * A commit (at a close or an fsync: close.c) stores the new chunks, syncs
 * the store, and only then names them in one index transaction: durable
 * before referenced. When gc collects a chunk it keeps meanwhile, or
 * another process commits the same file, it plans the commit again.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "registry/fdcap.h"

#define MAX_FILE_SIZE (1ULL << 42) /* 4 TiB */

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
			atomic_fetch_add(&reg->wfiles_gone, 1);
			break;
		}
	pthread_mutex_unlock(&reg->lock);
	reg_spool_free(reg, ws->sp);
	reg_stream_free(reg, ws->stream);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
}

uint64_t reg_writer_epoch(struct reg_registry *reg)
{
	/* every lookup and getattr asks: no lock for it */
	return atomic_load(&reg->wfiles_gone);
}

bool reg_writer_size(struct reg_registry *reg, struct reg_attr *a,
		     uint64_t since)
{
	struct wstate *w;
	bool again = false;

	if (a->kind != REG_FILE && a->kind != REG_PENDING)
		return false;
	pthread_mutex_lock(&reg->lock);
	if ((w = ws_find(reg, a->ino)))
		a->size = w->size;
	else
		/* its last commit may have come after the record was read
		   (a release, committing, ran meanwhile) */
		again = atomic_load(&reg->wfiles_gone) != since;
	pthread_mutex_unlock(&reg->lock);
	return again;
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
 * stored (spool.c). The digest of the whole content is computed
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
