/* internal.h — what the registry's source files share (not an API: fs/ and
 * tools/ use registry.h only).
 *
 * The registry is split by subject:
 *	base.c        opening and closing a registry, statfs, the tick
 *	txn.c         every change: a transaction, then the hooks it noted
 *	inode.c       inodes and names in the index, THE seal check, walks
 *	names.c       the name rules (names.h, pure)
 *	model.c       models and versions are born, the next version number
 *	lookup.c      lookup, getattr, readdir, readlink, a path's inode
 *	namespace.c   mkdir, rmdir, unlink, symlink
 *	create.c      create, mknod, link
 *	setattr.c     chmod, chown, utimens, truncate
 *	rename.c      rename: promotions, registrations, moves in a draft
 *	ingest.c      chunks into the store, deduplicated; extent records
 *	stream.c      files written in order, chunked as the bytes arrive
 *	writer.c      write states and their commits
 *	spool.c       files rewritten in place (a sparse spool)
 *	reader.c      opening sealed and committed content, verified reads
 *	openfiles.c   unsealed files open here (trash on unlink)
 *	close.c       what the close of a written file means (SPEC §2.1)
 *	pending.c     pending files: notes, dead writers, registration
 *	live.c        life tokens, writers of drafts
 *	stages.c      sealing, stages, history, rollback, version removal
 *	policy.c      the stored stage policies: the decisions
 *	policy-store.c  changing and showing them (mreg policy)
 *	metadata.c    user.mreg.*, by name, the control attributes
 *	audit.c       the audit trail, its chain checker, refusals
 *	push.c        mreg push
 *	serve.c       what the serving cache learns (registry/serve.h)
 *	hooks.c, fdcap.c  the hook runner, descriptors per user
 * and, sharing this header, maint/ (pins, fsck, gc) and query/ (listings,
 * search, stats).
 *
 * Below, one section per file that shares something.
 */
#ifndef MREG_REG_INT_H
#define MREG_REG_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "chunk/chunker.h"
#include "index/index.h"
#include "index/records.h"
#include "registry/fdcap.h"
#include "registry/hooks.h"
#include "registry/registry.h"
#include "store/store.h"
#include "json.h"
#include "keymap.h"
#include "strbuf.h"
#include "util.h"

/* ---- key schema (index/records.h describes every table) ---- */
/* META keys */
#define META_FORMAT   "format"
#define META_CHUNKER  "chunker"
#define META_STORE    "store" /* the chunk store's backend, format 2 */
#define META_NEXT_INO "next_ino"
#define META_CREATED  "created"
#define META_AUDIT_HEAD "audit_head" /* SHA-256 hex of the last record */
#define META_AUDIT_BYTES "audit_bytes" /* u64 length of .mreg/audit.log */

#define FIRST_DYN_INO 16

_Static_assert(REC_KIND_FIRST == REG_MODEL && REC_KIND_LAST == REG_PENDING,
	       "index/records.h stores the kinds registry.h names");

/* META keys of the stored policies (policy.c has their schema). */
#define POL_STAGE  "policy/stage/"
#define POL_HOOK   "policy/hook/"
#define POL_ADMIN  "policy/admin_group"
#define POL_STORED "policy/stored"

/* Internal xattr keys (never listed): versions that held a stage. */
#define HELD_PREFIX "\001held."

struct wstate;
struct writer_ref;
struct refusal;

struct reg_registry {
	const struct mreg_config *cfg;
	char *path;               /* the store directory */
	char *spool_dir;
	char *run_dir;
	struct idx_db *ix;
	struct mreg_store *st;
	struct chunker_params chunker;

	pthread_mutex_t lock;     /* guards wfiles, pins */
	struct wstate *wfiles;    /* inodes open for writing here */
	struct pin *pins;         /* versions open for reading here */
	int pin_fd;               /* run/pins-PID, flock'ed for our life */
	bool pins_dirty;
	char *pin_path;

	pthread_mutex_t hooks_lock; /* guards hooks, mount */
	struct hooks *hooks;      /* started with the first hook to run */
	char *mount;              /* MREG_MOUNT of the hooks (or NULL) */
	struct fdcap *fdcap;      /* spool descriptors per user ([limits]) */
	struct serve_cache *serve;/* mregfs's serving cache, for metrics */

	/* live.c */
	uint64_t live_token;      /* our byte of run/live, locked */
	int live_fd;              /* run/live */
	int writers_fd;           /* run/writers: our writers' read locks */
	pthread_mutex_t writers_lock; /* guards writer_refs */
	struct writer_ref *writer_refs; /* drafts written here, counted */

	pthread_mutex_t refusal_lock;
	struct refusal *refusals; /* recent refusals, coalesced (audit.c) */

	/* sealed files' extent tables, shared by their opens (reader.c);
	   guarded by lock */
	struct ext_table *tables[1024];   /* hashed by inode */
	size_t table_extents;
	size_t table_stale;               /* tables marked stale */
	uint64_t table_clock;

	atomic_size_t stream_bufs;        /* queued writes (stream.c) */
	atomic_uint_fast64_t room_free;   /* the store's free disk, last seen */
	atomic_uint_fast64_t room_used;   /* bytes queued since */

	/* unsealed files open here, hashed by inode (openfiles.c); guarded
	   by lock */
	struct open_file *open_files[256];

	atomic_uint_fast64_t reads, read_bytes, writes, write_bytes;
	atomic_uint_fast64_t promotions, errors, registrations;
	atomic_uint_fast64_t chunked_bytes;  /* cut into chunks and hashed */
};

/* What an audit record says (audit.c, reg_audit_put_txn()). */
struct audit_ev {
	const char *op;       /* "register", "promote", ... */
	const char *result;   /* NULL: "ok" */
	const char *event;    /* a hook's event: "register", "promote" */
	const char *model, *version, *stage, *from, *path;
	const char *key, *old_value, *new_value;
	size_t old_len, new_len;
	const char *reason;
	uint64_t count;       /* > 0: identical refusals this record stands
				 for (see reg_audit_refusal()) */
};

/* ---- txn.c ---- */
/* Runs fn in a write transaction (idx_write), and after it committed
 * queues the hooks its changes noted with reg_note_txn(). Every registry
 * change goes through here. */
int reg_change(struct reg_registry *reg, int (*fn)(struct idx_txn *, void *),
	       void *arg);
/* Notes, inside a transaction run by reg_change, a hook to run if it commits:
 * the change who made. */
void reg_note_txn(enum hook_event event, const char *model, const char *version,
		  const char *stage, const char *previous,
		  const struct reg_caller *who);

/* ---- inode.c ---- */
/* THE seal check (SPEC §3): 1 when r, or the version r is part of, is
 * sealed — its content can never change —, 0 when not, or -errno. Every
 * change of a version's tree asks it (mkdir, rmdir, unlink, symlink,
 * rename and create through reg_draft_dir_txn(), a commit of new content, a
 * setattr). */
int reg_sealed_txn(struct idx_txn *t, const struct inode_rec *r);
/* The entries of a directory, read out of a transaction. */
struct child {
	char name[256];
	uint64_t ino;
};

struct child_list {
	struct child *v;
	size_t n, cap;
	int err;
};

/* idx_scan() of the NAMES entries of directory dir, in name order: fn
 * gets each key (be64 dir + the name) and value (the u64 inode). */
int reg_entries_scan_txn(struct idx_txn *t, uint64_t dir,
			 int (*fn)(void *arg, const struct idx_val *key,
				   const struct idx_val *val),
			 void *arg);
/* The inode a NAMES value (val, from reg_entries_scan_txn()) names:
 * -EIO for a value that is not one, else reg_inode_get_txn()'s. */
int reg_entry_inode_txn(struct idx_txn *t, const struct idx_val *val,
			struct inode_rec *ret);
/* The entries of directory ino, in name order: 0 or a negative errno
 * (l->v is the caller's to free either way). */
int reg_children_txn(struct idx_txn *t, uint64_t ino, struct child_list *l);
int reg_inode_get_txn(struct idx_txn *t, uint64_t ino, struct inode_rec *ret);
int reg_inode_put_txn(struct idx_txn *t, const struct inode_rec *r);
int reg_inode_alloc_txn(struct idx_txn *t, uint64_t *ret);
int reg_name_get_txn(struct idx_txn *t, uint64_t parent, const char *name,
		     uint64_t *ret);
int reg_name_put_txn(struct idx_txn *t, uint64_t parent, const char *name,
		     uint64_t ino, unsigned flags);
int reg_name_del_txn(struct idx_txn *t, uint64_t parent, const char *name);
void reg_inode_attr(const struct inode_rec *r, struct reg_attr *a);
/* Fills a new inode record of kind under parent (a version's tree when
 * version != 0), owned by who, mode masked with its umask. */
void reg_inode_init(struct inode_rec *r, uint64_t ino, enum reg_kind kind,
		    const struct reg_caller *who, mode_t mode, uint64_t parent,
		    uint64_t model, uint64_t version, const char *name);
/* Looks up model name: its record. -ENOENT, -EINVAL. */
int reg_model_get_txn(struct idx_txn *t, const char *model,
		      struct inode_rec *ret);
/* Looks up model/version: both records (ret_model may be NULL). */
int reg_version_get_txn(struct idx_txn *t, const char *model,
			const char *version, struct inode_rec *ret_model,
			struct inode_rec *ret_version);
/* Calls fn with each entry under directory dir, depth first in name
 * order; depth is dir's below its version's root (the entries of a
 * version's root are at 0), deeper for the entries of subdirectories.
 * fn returns a negative errno to stop. */
int reg_tree_walk_txn(struct idx_txn *t, uint64_t dir, int depth,
		      int (*fn)(void *arg, const struct inode_rec *r,
				int depth),
		      void *arg);
/* Depth of directory p below its version's root (0 for the root), at
 * most REG_DEPTH_MAX + 1 (deeper: the walk stops there). */
int reg_depth_txn(struct idx_txn *t, const struct inode_rec *p);
/* In t: marks inode r removed, for gc to free (with its tree or extents)
 * once no live process has it open; its name must be gone already. */
int reg_inode_trash_txn(struct idx_txn *t, struct inode_rec *r);
/* In t: deletes a childless inode, its name gone already, and what
 * hangs off it (extents, xattrs). */
int reg_inode_delete_txn(struct idx_txn *t, const struct inode_rec *r);
/* 0 when names may change in directory p (a directory of a draft):
 * -EPERM for any other directory, -EROFS once sealed (reg_sealed_txn()). */
int reg_draft_dir_txn(struct idx_txn *t, const struct inode_rec *p);
/* The version inode p belongs to (p itself for a version). */
uint64_t reg_version_of(const struct inode_rec *p);
/* In t: sets directory p's mtime and ctime to now (an entry changed). */
int reg_touch_dir_txn(struct idx_txn *t, struct inode_rec *p);
/* 1 when directory ino has any entry, 0 when empty, or -errno. */
int reg_dir_has_entries_txn(struct idx_txn *t, uint64_t ino);
/* Height of the directory tree below dir (0: no subdirectory), or
 * -ENAMETOOLONG as soon as it passes max. */
int reg_tree_height_txn(struct idx_txn *t, uint64_t dir, int max);

/* ---- inode.c, model.c, namespace.c: rules that need the records ---- */
/* Next integer version name of model m (model.c). */
void reg_version_next_name(const struct inode_rec *m, char *buf, size_t size);
/* 0 when a directory of depth depth (below its version's root) may hold a
 * directory, -ENAMETOOLONG when that would pass REG_DEPTH_MAX. */
int reg_depth_check(int depth);
/* A symlink inside a version must stay inside it, lexically: -EINVAL. */
int reg_check_link_target(const char *target, int depth);

/* ---- namespace.c ---- */
/* Everything a namespace change needs, passed to its transaction. */
struct reg_op {
	struct reg_registry *reg;
	const struct reg_caller *who;
	uint64_t parent, newparent, ino;
	const char *name, *newname, *target;
	mode_t mode;
	unsigned flags;
	const struct reg_setattr *sa;
	struct inode_rec rec;         /* the result */
	char reason[256];             /* a policy refusal's reason */
	char refused_version[REG_NAME_MAX + 1]; /* of a refused removal */
	struct audit_ev refusal;      /* audited after the abort */
	bool refused;
	bool sealed_version;          /* a version got sealed */
	uint64_t sealed_ino;
	bool registered;              /* a pending file became a version */
	uint64_t registered_ino;      /* ... this one */
	uint64_t keep;                /* a file open here, pinned: trash it */
	bool trashed;                 /* ... and it was */
	uint64_t want_keep;           /* open here but not pinned: rerun */
	char name_buf[REG_FNAME_MAX + 1], newname_buf[32]; /* register */
};
/* Reads the directory parent of a change into p and sorts out where it
 * is (the models directory, a model, a version's tree). */
int reg_op_parent_txn(struct idx_txn *t, uint64_t parent, struct inode_rec *p);
/* In t: file c lost its last name. Deleted; or, when it is open here
 * (see reg_file_open_here()), trashed once the caller has pinned it (so
 * that no gc of another process frees it): -EAGAIN asks for the pin and a
 * rerun (reg_txn_keeping()). */
int reg_file_gone_txn(struct reg_op *o, struct idx_txn *t,
		      struct inode_rec *c);
/* Runs fn, which may remove the last name of a file (unlink, rename over
 * it), with what reg_file_gone_txn() needs: the file pinned when it is
 * open here (pinned outside the transaction, which then runs again). */
int reg_txn_keeping(struct reg_registry *reg,
		    int (*fn)(struct idx_txn *, void *), struct reg_op *o);

/* ---- rename.c ---- */
/* A name at a model root changes (in t): a pending file or a draft
 * version. */
int reg_rename_in_model_txn(struct reg_op *o, struct idx_txn *t,
			    struct inode_rec *m);

/* ---- model.c ---- */
/* m now holds a version called name: true when that raised its highest
 * number (m must then be written back). */
bool reg_version_number_seen(struct inode_rec *m, const char *name);
/* Creates a model (in t). */
int reg_model_create_txn(struct idx_txn *t, const struct reg_caller *who,
			 const char *name, mode_t mode, struct inode_rec *ret);
/* Creates a version (draft) of model m named name; updates max_version. */
int reg_version_create_txn(struct idx_txn *t, const struct reg_caller *who,
			   struct inode_rec *m, const char *name, mode_t mode,
			   struct inode_rec *ret);

/* ---- pending.c ---- */
/* Files that live only as long as the process writing them are listed in
 * META under "pending/" + be64 inode -> u64 life token of that process
 * (live.c), so that the ones a dead process left are found without a
 * scan: pending files at model roots until they are registered or
 * discarded, and new files of drafts until their first commit (a file
 * whose first close never completed is absent after a crash). */
#define PENDING_PREFIX "pending/"
int reg_pending_add_txn(struct reg_registry *reg, struct idx_txn *t,
			uint64_t ino);
/* Drops the note of ino (none: 0). */
int reg_pending_del_txn(struct idx_txn *t, uint64_t ino);
/* In t: removes the files noted by dead processes (their names, records
 * and extents) and their notes. */
int reg_pending_reap_txn(struct reg_registry *reg, struct idx_txn *t);
/* Removes what dead processes left (reg_open, reg_tick): a
 * read first, a write transaction only when there is something to do. */
int reg_pending_cleanup(struct reg_registry *reg);
/* In t: removes pending file f (name, record, extents, note): a file
 * discarded (reg_file_close) or left by a dead process. */
int reg_pending_drop_txn(struct idx_txn *t, const struct inode_rec *f);
/* In t: true when this process noted ino (reg_pending_add_txn), false
 * when another process did or none did (an error reads as another's). */
bool reg_pending_ours_txn(struct reg_registry *reg, struct idx_txn *t,
			  uint64_t ino);
/* Registers a pending file (in t) as the next version; sets the file's
 * record (already holding its content) sealed inside it. */
int reg_version_register_txn(struct reg_registry *reg, struct idx_txn *t,
			     const struct reg_caller *who, struct inode_rec *f,
			     char *ret_version);

/* ---- audit.c ---- */
/* Appends an audit record in t. */
int reg_audit_put_txn(struct idx_txn *t, const struct reg_caller *who,
		      const struct audit_ev *ev);
/* The size of .mreg/audit.log (or of .mreg/metrics, rendered now, or of
 * a model's .mreg/history/M: -ENOENT when it is not a model) into *ret:
 * what stat shows, so that a reader polling it (tail -f) sees it grow. */
int reg_mregdir_file_size(struct reg_registry *reg, uint64_t ino,
			  uint64_t *ret);
/* Audits a refused change (EROFS, EPERM, EINVAL, EBUSY, ENOTSUP) in a
 * transaction of its own; other errors are not refusals. */
void reg_audit_failure(struct reg_registry *reg, const struct reg_caller *who,
		       int r, const struct audit_ev *ev);
/* Audits a refusal in a transaction of its own. Identical refusals (same
 * pid, uid, op, result, event, model, version, stage, from and reason) are
 * coalesced: the first
 * is written at once, those that follow within REFUSAL_WINDOW_S seconds
 * are counted and written as one record with "count" when the window has
 * passed (at the next such refusal, at reg_refusals_flush(), or at close). */
#define REFUSAL_WINDOW_S 5
void reg_audit_refusal(struct reg_registry *reg, const struct reg_caller *who,
		       const struct audit_ev *ev);
/* As reg_audit_failure() for a change of inode ino, or of the entry ev->path
 * of directory ino (a model, a version, a directory of one): ev gives op,
 * key, path and reason (NULL: strerror), the record gets the model and
 * version they are in. Refusals outside a model are not audited. */
void reg_audit_ino_failure(struct reg_registry *reg,
			   const struct reg_caller *who, int r, uint64_t ino,
			   const struct audit_ev *ev);
/* Writes the counts of coalesced refusals whose window has passed (all of
 * them with all); frees the table with all. */
void reg_refusals_flush(struct reg_registry *reg, bool all);

/* ---- metadata.c ---- */
/* The stored value of metadata key ("metric.auc", without the
 * "user.mreg." prefix) of inode ino, in t: -ENOENT when it has none,
 * -EINVAL for a key longer than any stored one. The one reader of XATTRS
 * values (getxattr, search, stage policy gates). */
int reg_meta_get_txn(struct idx_txn *t, uint64_t ino, const char *key,
		     struct idx_val *ret);
/* Sets (val != NULL) or removes one metadata key of model or version rec
 * (in t), with SPEC §4's rules, audited with the old value. key without
 * the "user.mreg." prefix. flags: XATTR_CREATE/XATTR_REPLACE or 0. */
int reg_meta_set_txn(struct idx_txn *t, const struct reg_caller *who,
		     const struct inode_rec *rec, const char *key,
		     const void *val, size_t len, int flags);

/* The size and file count of version v: recorded when sealed; for a
 * draft, those of its committed files now. */
int reg_version_totals_txn(struct idx_txn *t, const struct inode_rec *v,
			   uint64_t *ret_size, uint64_t *ret_nfiles);

/* ---- query/listings.c ---- */
/* The names of the stages that point at one version. */
struct reg_stage_names {
	char (*v)[REG_STAGE_MAX + 1];
	const char **ptrs;
	size_t n, cap;
	uint64_t target;
	struct idx_txn *t;
	int err;
};

/* Fills vi for version v of model m; stage names in *sn (free them with
 * reg_stage_names_free(), whatever it returns). */
int reg_version_fill_txn(struct idx_txn *t, const struct inode_rec *m,
			 const struct inode_rec *v,
			 struct reg_version_info *vi, struct reg_stage_names *sn);
void reg_stage_names_free(struct reg_stage_names *sn);
/* A walk over the files of a version's tree (reg_files_dir()). */
struct reg_files_walk {
	struct reg_registry *reg; /* to compute digests not computed yet
				      (NULL: the walker needs none) */
	struct idx_txn *t;
	int (*fn)(void *arg, const struct reg_file_info *f);
	void *arg;
};

/* Calls w->fn for each file under directory dir (names prefixed with
 * prefix, depth below the version's root), in name order, depth first. */
int reg_files_dir(struct reg_files_walk *w, uint64_t dir, const char *prefix,
		  int depth);

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
 * writing here (a stat must show what was written before close). */
void reg_writer_size(struct reg_registry *reg, struct reg_attr *a);
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

/* ---- live.c ---- */
/* Takes a life token and opens run/writers (reg_open). */
int reg_live_open(struct reg_registry *reg);
/* Drops the token and every writer lock. */
void reg_live_close(struct reg_registry *reg);
/* Does the process that holds token live? (Ours: yes; cannot tell: yes.) */
bool reg_live_token_alive(struct reg_registry *reg, uint64_t token);
/* A file of draft version is open for writing here, from now until
 * reg_writers_leave(): a seal of it in any process fails with EBUSY. Waits
 * while a seal's transaction holds the version; call it outside any
 * transaction (then check again that the version is a draft) or inside a
 * write transaction (no seal can be running). -ENOMEM, -errno. */
int reg_writers_enter(struct reg_registry *reg, uint64_t version);
void reg_writers_leave(struct reg_registry *reg, uint64_t version);
/* In a write transaction: 0 when no process writes a file of version
 * (which nobody can open for writing until the transaction ended), else
 * -EBUSY after waiting a moment. */
int reg_writers_none_txn(struct reg_registry *reg, uint64_t version);
/* Ends what reg_writers_none_txn() holds (reg_change, after the
 * transaction). */
void reg_writers_txn_end(void);

/* ---- stages.c ---- */
/* Seals version v (in t): computes size, digest, flags. 0, or -EALREADY. */
int reg_seal_txn(struct reg_registry *reg, struct idx_txn *t,
		 const struct reg_caller *who, struct inode_rec *v);

/* Appends to sb the stage history of model model_ino, as reg_history()
 * gives it (oldest first, trimmed), one JSON object a line:
 * {"seq":N,"time":"ISO 8601, seconds","uid":U,"user":"name","stage":"S",
 *  "from":"V","to":"V","action":"promote|move|remove|rollback"} — the
 * content of .mreg/history/M. -ENOENT when model_ino is not a model. */
int reg_history_text_txn(struct idx_txn *t, uint64_t model_ino,
			 struct strbuf *sb);
/* The same in a read transaction of its own: *ret (the caller frees it)
 * and its length. */
int reg_history_text(struct reg_registry *reg, uint64_t model_ino,
		     char **ret, size_t *ret_len);
/* Points stage of model m at version v (in t), policy first. reason gets
 * a refusal's reason. action HIST_*. */
int reg_stage_set_txn(struct reg_registry *reg, struct idx_txn *t,
		      const struct reg_caller *who, struct inode_rec *m,
		      const char *stage, struct inode_rec *v, int action,
		      char *reason, size_t rlen);
/* Removes stage (in t), policy first. Its inode is trashed, not deleted:
 * a reader that resolved the name a moment ago can still read the link;
 * gc deletes it. */
int reg_stage_remove_txn(struct reg_registry *reg, struct idx_txn *t,
			 const struct reg_caller *who, struct inode_rec *m,
			 const char *stage, int action, char *reason,
			 size_t rlen);
/* The name of the version stage of model m points at, into buf ("" when
 * there is none): what a refused removal is audited with. */
void reg_stage_target_name_txn(struct idx_txn *t, const struct inode_rec *m,
			       const char *stage, char *buf, size_t size);
/* Parses a stage symlink target "../V": the version record. */
int reg_stage_target_parse_txn(struct idx_txn *t, const struct inode_rec *m,
			       const char *target, struct inode_rec *ret);
/* Removes version v (in t): -EBUSY when a stage points at it. */
int reg_version_remove_txn(struct reg_registry *reg, struct idx_txn *t,
			   const struct reg_caller *who, struct inode_rec *m,
			   struct inode_rec *v);
/* Does any stage of model m point at version v? */
int reg_version_staged_txn(struct idx_txn *t, const struct inode_rec *m,
			   uint64_t v);

/* ---- policy.c ---- */
/* Appends v[0..n) to sb as a quoted config value (\" and \\ escaped). */
void reg_policy_add_quoted(struct strbuf *sb, const char *v, size_t n);
/* The value of key in table tb, NUL-terminated into buf. -ENOENT, -ERANGE
 * when it does not fit. */
int reg_policy_get_str_txn(struct idx_txn *t, enum idx_table tb,
			   const void *key, size_t klen, char *buf, size_t size);
/* Reads every stored stage policy and hook definition into ret, as if a
 * config held them (ret is config_init()ed here; config_release() it).
 * -EIO when a stored record is damaged or does not parse (logged). */
int reg_policy_load_txn(struct idx_txn *t, struct mreg_config *ret);
/* The program stored for event, NUL-terminated into buf. -ENOENT when
 * there is none, -ERANGE when it does not fit. */
int reg_policy_hook_program_txn(struct idx_txn *t, enum hook_event event,
				char *buf, size_t size);
/* May the caller point stage of model m at version v? 0, or -EACCES with
 * the reason in reason; -EIO (a stored policy that does not read). */
int reg_policy_check_promote_txn(struct idx_txn *t,
				 const struct reg_caller *who,
				 const struct inode_rec *m, const char *stage,
				 const struct inode_rec *v, char *reason,
				 size_t rlen);
/* May the caller remove stage s of model m (protect, who)? As above. */
int reg_policy_check_remove_txn(struct idx_txn *t, const struct reg_caller *who,
				const struct inode_rec *m,
				const struct inode_rec *s, char *reason,
				size_t rlen);
/* A model or version record changes from old to new (in t): a change of
 * its mode or owner is refused (-EACCES, reason) on what a protected stage
 * serves unless the caller may change that stage, and audited otherwise
 * (with the old and new value). Other records and changes: 0. */
int reg_policy_attr_txn(struct idx_txn *t, const struct reg_caller *who,
			const struct inode_rec *old,
			const struct inode_rec *new, char *reason, size_t rlen);
/* Is gid the caller's primary or a supplementary group? */
bool reg_caller_in_gid(const struct reg_caller *who, gid_t gid);

/* ---- maint/pins.c ---- */
/* Pins version v against gc while a file of it is open here. */
void reg_pin(struct reg_registry *reg, uint64_t v);
void reg_unpin(struct reg_registry *reg, uint64_t v);
void reg_pins_flush(struct reg_registry *reg);
int reg_pins_open(struct reg_registry *reg);
void reg_pins_close(struct reg_registry *reg);

/* ---- maint/gc.c ---- */
/* Frees trashed inode ino (its tree or its extents) in a transaction,
 * unless it is a file open here. */
int reg_trash_free(struct reg_registry *reg, uint64_t ino);

/* ---- maint/gc-plan.c ---- */
/* The gc figures of reg_store_stats (live_bytes, chunks, dead_bytes,
 * gc_bytes, gc_all_bytes, trash) in st. */
int reg_gc_estimate(struct reg_registry *reg, struct reg_store_stats *st);
#endif
