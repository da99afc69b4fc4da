/* content.h — the part of internal.h about file content: what ingest.c,
 * stream.c, writer.c, spool.c, reader.c, openfiles.c and prefetch.c
 * share. Included by internal.h, where it stands (it uses the types
 * declared above that point); never on its own.
 */
#ifndef MREG_REGISTRY_CONTENT_H
#define MREG_REGISTRY_CONTENT_H

/* ---- ingest.c ---- */
/* A chunk of content being ingested. */
struct chunk_ent {
	uint64_t off;             /* where it lies in the file */
	struct mreg_id id;
	uint32_t len;
	bool fresh;               /* appended by us (loc is ours) */
	bool heal;                /* fresh, and key names a stored chunk of
				     the same id whose bytes are damaged: our
				     copy replaces them */
	int dup_of;               /* index of an earlier fresh entry, or -1 */
	struct chunk_loc loc;
	struct chunk_key key;     /* known key when !fresh */
	bool has_strong;          /* strong: its bytes' SHA-256 (ingest.c) */
	struct mreg_strong strong;
};
/* Chunks of content, in offset order; a gap between two is a hole. */
struct ingest {
	struct chunk_ent *v;
	size_t n, cap;
	uint64_t end;             /* where the next chunk goes */
	uint64_t size;
	uint64_t new_bytes;
	struct mreg_id digest;
};
void reg_ingest_release(struct ingest *in);
/* Chunks and stores size bytes read from fd at offset 0 (the caller is in
 * a store batch). progress may be NULL. */
int reg_ingest_fd(struct reg_registry *reg, int fd, uint64_t size,
		  struct ingest *in, void (*progress)(void *arg, uint64_t n),
		  void *parg);
/* The chunks an ingest stored itself, by id: a chunk met twice is stored
 * once. Zeroed is empty; reg_fresh_free() frees. heads: id -> the first
 * entry of in->v with that id; next[i]: the next entry with entry i's id
 * (ids collide: entries with one id but other bytes), or -1. */
struct fresh_map {
	struct keymap heads;
	int *next;
	size_t cap;
};
void reg_fresh_free(struct fresh_map *m);
/* Adds the chunk p[0..len) at in->end (the caller is in a store batch):
 * found in the index, met earlier in this ingest, or appended to the
 * store. tmp: max_size bytes of scratch. Counted in reg->chunked_bytes. */
int reg_ingest_chunk(struct reg_registry *reg, struct ingest *in,
		     struct fresh_map *fm, const uint8_t *p, uint32_t len,
		     uint8_t *tmp);
/* Adds a chunk already stored (content kept as it was) at e->off. */
int reg_ingest_keep(struct ingest *in, struct fresh_map *fm,
		    const struct chunk_ent *e);
/* Appends e at in->end. */
int reg_ingest_push(struct ingest *in, const struct chunk_ent *e);
/* In t: references the chunks of in (adding records for fresh ones,
 * counting references) and writes them as extents of file ino (at their
 * offsets; the caller dropped what they replace); sets each entry's key
 * to the chunk record it names. -EAGAIN when a chunk that was found
 * vanished (gc): ingest again. */
int reg_ingest_apply_txn(struct reg_registry *reg, struct idx_txn *t,
			 const struct ingest *in, uint64_t ino);
/* In t: removes file ino's extent at off, which names chunk key, and its
 * reference. */
int reg_extent_unref_txn(struct idx_txn *t, uint64_t ino, uint64_t off,
			 const struct chunk_key *key);
/* In t: drops file ino's extents and their references. */
int reg_extents_drop_txn(struct idx_txn *t, uint64_t ino);
/* In t: the chunk record named k. -ENOENT, -EIO. */
int reg_chunk_get_txn(struct idx_txn *t, const struct chunk_key *k,
		      struct chunk_rec *ret);
/* Reads e's chunk, checked against its id, into buf (e->len bytes). A
 * stored chunk (not fresh) that gc moved is looked up again (e->loc is
 * updated). -EIO when it cannot be read right. */
int reg_chunk_read(struct reg_registry *reg, struct chunk_ent *e, void *buf);
/* store_get() of a chunk that its file's extent says is len bytes, into
 * buf of len bytes: a location that says another length (a damaged CHUNKS
 * record) is -EIO before a byte is read, so that the store never writes
 * past the reader's buffer. */
int reg_extent_get(struct reg_registry *reg, const struct chunk_loc *loc,
		   const struct mreg_id *id, uint32_t len, void *buf);
/* The digest of size bytes of content made of the n chunks v (holes
 * between them), read and checked. In a transaction (in_txn), the places
 * in v are current: none is looked up again. */
int reg_content_digest(struct reg_registry *reg, struct chunk_ent *v, size_t n,
		       uint64_t size, bool in_txn, struct mreg_id *ret);
/* In t: sets r->digest when r is a file whose digest is not computed yet
 * (INODE_NODIGEST, cleared); r is not written. */
int reg_file_digest_txn(struct reg_registry *reg, struct idx_txn *t,
			struct inode_rec *r);
struct ext_list {
	struct extent_rec *v;
	size_t n, cap;
	int err;
};
/* In t: file ino's extent records, in offset order, into *l (l->v is the
 * caller's to free; NULL after a failure). -EIO, -ENOMEM. */
int reg_extents_load_txn(struct idx_txn *t, uint64_t ino, struct ext_list *l);

/* ---- stream.c ---- */
struct qbuf;
/* A file written in order from its start (cp, rsync, torch.save of a
 * plain tensor file...) is chunked, hashed and stored as its bytes arrive:
 * no spool file is written and read back, and close() only stores the
 * tail, syncs and commits. The first write out of order (a zip writer
 * seeking back), a read, or a truncation turns the stream into a spool,
 * rebuilt from the chunks stored so far. */
struct stream {
	struct ingest in;
	struct fresh_map fm;
	struct chunker ch;
	struct digest_state ds;
	uint8_t *carry;           /* the chunk being cut (< max_size bytes) */
	size_t ncarry;
	uint8_t *tmp;             /* for comparing bytes on an id match */
	uint64_t pos;             /* bytes fed */
	bool batch;               /* a store batch is open for it */
	bool finished;            /* the tail was stored, the digest taken */
	bool copied;              /* took a whole file's chunks (copy_range) */
	struct mreg_id copied_digest;
	bool nodigest;            /* copied from a file whose digest is not
				     computed yet */
	bool committed;           /* its chunks are the committed content */
	_Atomic int err;          /* a failed store: every later call fails */

	/* Writes queued for the stream's worker (see reg_stream_write). The
	 * fields above belong to whoever feeds: the worker while the queue
	 * is not empty or busy, else the holder of the wstate's lock. */
	struct reg_registry *reg;
	pthread_mutex_t qlock;    /* guards the fields up to busy */
	pthread_cond_t qcond;     /* queued, fed, or stop */
	struct qbuf *qhead, *qtail;
	struct qbuf *spare;       /* fed buffers, for the next writes */
	size_t queued;            /* bytes in the queue */
	bool stop;
	bool busy;                /* the worker is feeding one */
	bool has_worker;
	pthread_t worker;
	uint64_t end;             /* pos + queued: where the next write goes */
};
/* A new, empty stream; NULL when out of memory. */
struct stream *reg_stream_new(struct reg_registry *reg);
/* Frees s (NULL is fine): stops its worker (what is still queued is
 * dropped) and ends its store batch. */
void reg_stream_free(struct reg_registry *reg, struct stream *s);
/* An in-order write of a stream (the wstate's lock held): queued for the
 * worker, or fed here once the queue is empty. */
int reg_stream_write(struct reg_registry *reg, struct stream *s,
		     const uint8_t *p, size_t len);
/* Stores the tail and takes the digest: the content is then s->in. */
int reg_stream_finish(struct reg_registry *reg, struct stream *s);
/* Makes ws's content a spool (ws->lock held): what any access but an
 * in-order write needs; uid (who asks) pays for its descriptor. The
 * chunks the stream stored are its base, the bytes it had not cut into a
 * chunk yet are written to it. */
int reg_stream_to_spool(struct reg_registry *reg, struct wstate *ws, uid_t uid);

/* ---- writer.c ---- */
/* Writers of a new file remembered (beyond: any process counts as one). */
#define WS_WRITERS 8
/* An inode open for writing in this process. Its content is either being
 * streamed (written in order from the start: chunked and stored as it
 * arrives) or a spool (anything else). */
struct wstate {
	uint64_t ino;
	uint64_t version;         /* 0 for a pending file */
	int refs;                 /* handles */
	struct spool *sp;         /* the spool, or NULL while streaming */
	struct stream *stream;    /* or NULL */
	int64_t ctime;            /* the inode's, as last committed here */
	_Atomic uint64_t size;    /* written under lock, read by getattr too */
	bool dirty;               /* written since the last commit */
	bool sealed;              /* its version was sealed: writes fail */
	bool times_kept;          /* mtime set since the last write: the
				     commit keeps it (cp -p) */
	bool born;                /* not a new file of a draft whose first
				     close by its writer is still to come */
	int wpids[WS_WRITERS];    /* processes that created or wrote it
				     (while pending or not born) */
	int nwpids;               /* > WS_WRITERS: too many to tell */
	/* a pending file (reg_file_close): */
	bool registered;          /* became a version */
	bool done;                /* its last descriptor was closed */
	bool discarded;           /* removed instead of registered */
	bool discarding;          /* to be removed (its removal failed:
				     tried again at the release) */
	int failed;               /* its registration failed with this */
	int killed_pid, killed_sig; /* that writer and its signal */
	struct reg_caller closer; /* who closed it last (groups: none) */
	bool closer_known;
	pthread_mutex_t lock;     /* writes, truncation and commits */
	struct wstate *next;
};
#define COMMIT_REGISTER 0x1u
#define COMMIT_BIRTH    0x2u
/* Commits ws (its lock held): what was written since the last commit, if
 * anything. how: COMMIT_REGISTER, a pending file with a visible name
 * becomes a version in the same transaction; COMMIT_BIRTH, a new file of
 * a draft outlives its writer from now on. 1 when it was registered. */
int reg_ws_commit(struct reg_registry *reg, const struct reg_caller *who,
		  struct wstate *ws, unsigned how);
/* Drops a reference to ws; the last one frees it, with its spool or
 * stream. */
void reg_ws_put(struct reg_registry *reg, struct wstate *ws);
/* Empties ws's content (its lock held): a new stream, nothing written.
 * -ENOMEM. */
int reg_ws_empty(struct reg_registry *reg, struct wstate *ws);
/* Attaches f to the inode's write state, creating it: a stream for a new
 * content (trunc), else a spool over what it has. */
int reg_ws_attach(struct reg_registry *reg, struct reg_file *f, bool writer,
		  bool trunc);
/* Truncates file ino to size: through its write state when it is open
 * here, else through a short-lived one; committed before returning. */
int reg_writer_truncate(struct reg_registry *reg, const struct reg_caller *who,
			uint64_t ino, uint64_t size);
/* Times were set on file ino: when it is open for writing here, its next
 * commit keeps them (unless it is written again first). */
void reg_writer_times_kept(struct reg_registry *reg, uint64_t ino);
/* A new unnamed spool file in DIR/spool, a descriptor of the daemon's
 * spent for user uid (fdcap.h): its descriptor, or -errno (-EMFILE past
 * the user's cap or into the daemon's reserve). */
int reg_spool_fd_open(struct reg_registry *reg, uid_t uid);
/* Closes a descriptor reg_spool_fd_open() gave for uid (none: fd < 0). */
void reg_spool_fd_close(struct reg_registry *reg, int fd, uid_t uid);
/* Sets a->size to the size written so far when the file is open for
 * writing here (a stat must show what was written before close). A
 * record read before a write state ended may predate its last commit:
 * with since, what reg_writer_epoch() said before the record was read,
 * returns true when a->ino has no write state but one ended meanwhile
 * (read the record again), else false. */
uint64_t reg_writer_epoch(struct reg_registry *reg);
bool reg_writer_size(struct reg_registry *reg, struct reg_attr *a,
		     uint64_t since);
/* Makes open writers of version v fail from now on. */
void reg_version_writers_seal(struct reg_registry *reg, uint64_t v);
/* Commits a pending file's open writer now (before a rename). */
int reg_writer_commit(struct reg_registry *reg, const struct reg_caller *who,
		      uint64_t ino);
/* Marks the open writer of pending file ino registered (a rename made it
 * a version): its later writes fail, its close has nothing to do. */
void reg_writer_registered(struct reg_registry *reg, uint64_t ino);

/* ---- spool.c ---- */
/* A file being rewritten in place: the chunks it had (base), a sparse
 * spool file holding the bytes written since at their offsets, and the
 * spans of those bytes. Not thread-safe: the caller's lock guards it. */
struct spool;
/* A spool over the n chunks base (offsets ascending, holes between them)
 * of content of base_size bytes. committed: they are the file's extents in
 * the index, and ctime the inode's ctime when they were. new_bytes: bytes
 * the fresh ones among them added to the store. uid pays for its spool
 * file's descriptor, opened at the first write (and given back at each
 * commit). The spool makes its own copy of base. -ENOMEM. */
int reg_spool_new(const struct chunk_ent *base, size_t n, uint64_t base_size,
		  bool committed, int64_t ctime, uint64_t new_bytes, uid_t uid,
		  struct spool **ret);
/* Frees sp (NULL is fine): closes its spool file, ends its store batch. */
void reg_spool_free(struct reg_registry *reg, struct spool *sp);
/* The spool now holds the store batch its base's fresh chunks were
 * appended in (they are not named yet): it ends it once they are. */
void reg_spool_hold_batch(struct spool *sp);
uint64_t reg_spool_size(const struct spool *sp);
/* pwrite(2) into the content: the count written, or -errno (-ENOSPC...). */
ssize_t reg_spool_write(struct reg_registry *reg, struct spool *sp,
			const void *buf, size_t len, uint64_t off);
/* pread(2) of the content: the count (short only at its end), or -EIO. */
ssize_t reg_spool_read(struct reg_registry *reg, struct spool *sp, void *buf,
		       size_t len, uint64_t off);
/* ftruncate(2) of the content. */
int reg_spool_truncate(struct reg_registry *reg, struct spool *sp,
		       uint64_t size);
/* lseek(2) SEEK_DATA / SEEK_HOLE from off: *ret, or -ENXIO past the end. */
int reg_spool_seek(const struct spool *sp, uint64_t off, int whence,
		   uint64_t *ret);
/* Copies every byte base gives into the spool file: for a file whose
 * chunks nothing names any more (unlinked while open), which gc may take. */
int reg_spool_detach(struct reg_registry *reg, struct spool *sp);

/* What a commit of a spool changes: the chunks of the changed parts
 * (re-chunked from the chunk boundary before each change to where the
 * boundaries meet the old ones again), the old extents they replace. */
struct spool_plan {
	struct ingest in;         /* chunks to name (full: every chunk) */
	bool full;                /* replaces every extent of the file */
	struct extent_rec *drop;  /* else: the old extents replaced */
	size_t ndrop, cap_drop;
	struct chunk_ent *all;    /* the content after the commit */
	long *all_in;             /* each one's entry in in.v, or -1 */
	size_t nall, cap_all;
	uint64_t size;
	uint64_t base_size;       /* what the commit expects to find */
	int64_t base_ctime;
};
/* Plans the commit of sp (in a store batch: new chunks are appended to
 * the store). full: plan a rewrite of every extent (else only when the
 * base is not what the index holds). */
int reg_spool_plan(struct reg_registry *reg, struct spool *sp, bool full,
		   struct spool_plan *ret);
void reg_spool_plan_release(struct spool_plan *pl);
/* In t: applies pl to file f (its record, not written): -ESTALE when the
 * file's extents are no longer those pl was planned over (plan it full). */
int reg_spool_plan_apply_txn(struct reg_registry *reg, struct idx_txn *t,
			     struct spool_plan *pl, const struct inode_rec *f);
/* After pl committed (the inode's ctime now ctime): its content is sp's
 * new base, and the spool is empty. */
void reg_spool_committed(struct reg_registry *reg, struct spool *sp,
			 struct spool_plan *pl, int64_t ctime);

/* ---- reader.c ---- */
struct ext_table;
/* A part of a committed file, as loaded at open. */
struct rext {
	uint64_t off;
	uint32_t len;
	struct chunk_key key;
	struct chunk_loc loc;
};
/* An open file (registry.h): the committed content as loaded at open
 * (reader.c) or, when it is open for writing here, its write state. */
struct reg_file {
	struct reg_registry *reg;
	uint64_t ino, version;
	enum reg_kind kind;
	int flags;
	bool writer, sealed, pinned;
	bool counted;             /* in reg->open_files */
	uid_t uid;                /* the opener: a spool it needs is its own */
	bool entered;             /* writes draft version (reg_writers_enter) */
	bool internal;            /* ours (truncate): its release is no close */
	bool quiet;               /* ours (hydration): reads are not counted */
	struct wstate *ws;        /* reads and writes go to the spool */
	struct ext_table *tab;    /* sealed: the shared table ext points in */
	struct rext *ext;         /* committed content */
	size_t next;
	uint64_t size;
	int64_t ctime;            /* the inode's, when ext was loaded */
	struct mreg_id digest;    /* of the committed content */
	bool nodigest;            /* not computed yet (INODE_NODIGEST) */
	pthread_mutex_t lock;     /* the chunk cache below */
	uint8_t *cbuf;
	size_t cidx;              /* which extent cbuf holds, or SIZE_MAX */
	pthread_mutex_t ra_lock;  /* ra: the reads of this open */
	struct reg_readahead ra;
	char *snap;               /* .mreg files: a snapshot */
	size_t snap_len;
	uint64_t snap_seq;        /* audit.log: the last record in snap */
};
/* A new handle of inode ino that holds nothing yet; NULL when out of
 * memory. */
struct reg_file *reg_file_new(struct reg_registry *reg, uint64_t ino);
/* Frees f (NULL is fine) and gives back what it holds: its count as an
 * open file, its draft's writer lock, its pin, its extent table. */
void reg_file_free(struct reg_file *f);
/* Frees the cached extent tables (reg_close). */
void reg_tables_free(struct reg_registry *reg);
/* Marks f as the registry's own reader (the serving cache's hydration):
 * its bytes are not counted as bytes read for a client
 * (mreg_read_bytes_total); the serving cache counts them as hydrated. */
void reg_file_read_quietly(struct reg_file *f);

/* ---- openfiles.c ---- */
/* Unsealed files open here. A file unlinked (or renamed over) while open
 * here is trashed, not deleted, and stays readable and writable through
 * its descriptors until the last one is closed, as on any Unix file
 * system. */
bool reg_file_open_here(struct reg_registry *reg, uint64_t ino);
/* At reg_close(), with files still open (the mount went away under
 * them): stops their writers' workers before the store closes. What they
 * had not committed is dropped, as a crash would; a trashed file is left
 * to gc. */
void reg_files_close(struct reg_registry *reg);
/* File ino, which the caller pinned, was trashed: the pin is kept until
 * its last close here, which frees it (now, if it was closed meanwhile). */
void reg_file_trashed_here(struct reg_registry *reg, uint64_t ino);
/* Counts a new handle of file ino, before its record is read: an unlink
 * from then on trashes it instead of deleting it. */
int reg_file_count(struct reg_registry *reg, uint64_t ino);
/* Gives back a count reg_file_count() took; the last one of a file
 * trashed meanwhile frees it (reg_trash_free) and its pin. */
void reg_file_uncount(struct reg_registry *reg, uint64_t ino);

/* ---- prefetch.c ---- */
struct reg_prefetcher;
/* With [cache] prefetch_on_promote and a store with a host cache: follows
 * the promotions committed from now on (reg_open). -ENOMEM, -errno. */
int reg_prefetcher_start(struct reg_registry *reg);
/* reg_tick(): the versions promoted since go to the thread that fills
 * them into the cache. */
void reg_prefetcher_tick(struct reg_registry *reg);
/* Stops that thread (reg_close, before the store closes). */
void reg_prefetcher_stop(struct reg_registry *reg);
/* getxattr of user.mreg.cache (see reg_getxattr()). */
ssize_t reg_prefetch_xattr(struct reg_registry *reg, uint64_t ino, void *buf,
			   size_t size);

#endif
