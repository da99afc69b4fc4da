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
 *	readahead.c   whether reads are sequential (readahead.h, pure)
 *	prefetch.c    a version's chunks into this host's cache
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
 *	hosts.c       the mounts of a registry and what each applied
 *	watch.c       other hosts' changes, as they commit
 *	current.c     models and stages kept while the watcher vouches
 *	fixed.c       this host's copy of sealed records
 *	hooks.c, fdcap.c  the hook runner, descriptors per user
 * and, sharing this header, maint/ (pins, fsck, gc) and query/ (listings,
 * search, stats).
 *
 * Below, one section per file that shares something (file content's in
 * content.h, included where it stands).
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
#include "registry/readahead.h"
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
	struct idx_db *ix;
	struct mreg_store *st;
	struct chunker_params chunker;

	pthread_mutex_t lock;     /* guards wfiles */
	struct wstate *wfiles;    /* inodes open for writing here */
	atomic_ullong wfiles_gone; /* write states ended */
	pthread_mutex_t pins_lock; /* guards pins: held across the index's
				     lock call (a round trip to PostgreSQL),
				     which reg->lock's users need not wait */
	struct pin *pins;         /* versions open for reading here */
	bool pins_dirty;

	pthread_mutex_t hooks_lock; /* guards hooks, mount */
	struct hooks *hooks;      /* started with the first hook to run */
	char *mount;              /* MREG_MOUNT of the hooks (or NULL) */
	struct fdcap *fdcap;      /* spool descriptors per user ([limits]) */
	struct serve_cache *serve;/* mregfs's serving cache, for metrics */
	uint64_t readahead;       /* bytes sequential reads prefetch ahead
				     (0: the store has no host cache) */
	struct reg_prefetcher *prefetcher; /* prefetch.c: on promotion */

	/* live.c */
	uint64_t live_token;      /* our life token, locked (live.c) */
	pthread_mutex_t writers_lock; /* guards writer_refs */
	struct writer_ref *writer_refs; /* drafts written here, counted */

	/* hosts.c: this mount's record (daemons only) */
	uint64_t hosts_head;      /* the audit head read at the last tick */
	bool hosts_said;          /* a record was written */
	uint64_t hosts_written;   /* the applied it said */
	int64_t hosts_pruned;     /* when gone mounts' records were last
				     looked for */

	pthread_mutex_t refusal_lock;
	struct refusal *refusals; /* recent refusals, coalesced (audit.c) */

	struct reg_watch *watch;  /* watch.c: other hosts' changes */
	struct reg_current *current; /* current.c (with a watcher) */
	atomic_ullong current_hits;

	/* fixed.c: this host's copy of sealed records (postgres only) */
	struct idx_db *fixed;
	uint64_t *host_changes;   /* index/fixed/changes, mapped shared */
	atomic_ullong fixed_hits, fixed_misses, fixed_stale, fixed_puts;
	atomic_ullong fixed_away; /* until when (mono ns) the database is
				     taken as away: 0, it answers */

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
	/* a URL hook's delivery (url not NULL): where to (without its query
	   string), the last HTTP status (0: none came), attempts, its id */
	const char *url;
	long status;
	unsigned attempts;
	const char *delivery;
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

/* ---- file content: content.h (ingest, stream, writer, spool, reader,
 * openfiles, prefetch) ---- */
#include "content.h"

/* ---- live.c ---- */
/* Takes a life token (reg_open). */
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
int reg_writers_none_txn(struct idx_txn *t, uint64_t version);

/* ---- txn.c ---- */
/* A daemon's tick: the hooks that processes which died left in the
 * registry's queue, taken over and run here. */
void reg_hooks_tick(struct reg_registry *reg);

/* ---- audit.c ---- */
/* This host's name (gethostname, once; "?" when there is none). */
const char *reg_host_name(void);

/* ---- fixed.c ---- */
/* Opens this host's copy of sealed records when the index is in
 * PostgreSQL (nothing else: 0). A cache that cannot be used is logged and
 * left out (0): the database serves. */
int reg_fixed_open(struct reg_registry *reg);
void reg_fixed_close(struct reg_registry *reg);
/* Looks up, in the host's copy: the entry name of directory parent and
 * its inode; inode ino; file ino with its extents and their places (*ext
 * the caller's to free). 0, or -ENOENT when not kept (or no copy). With
 * err 0, sealed content alone; with err the index's error for the same
 * question, a model's or sealed version's record as last read when err
 * says the database is away (else -ENOENT). */
int reg_fixed_name(struct reg_registry *reg, uint64_t parent,
		   const char *name, int err, struct inode_rec *ret);
int reg_fixed_inode(struct reg_registry *reg, uint64_t ino, int err,
		    struct inode_rec *ret);
int reg_fixed_file(struct reg_registry *reg, uint64_t ino,
		   struct inode_rec *ret, struct rext **ext, size_t *n);
/* True while the database is taken as away (it failed a call within the
 * last few seconds): what was last read is served without asking it.
 * reg_fixed_said() tells the outcome of each call asked (0 or -errno);
 * the first failure is said in the log, once a minute at most. */
bool reg_fixed_away(struct reg_registry *reg);
/* The same without taking the turn to ask: for what can wait (pins). */
bool reg_db_away(struct reg_registry *reg);
void reg_fixed_said(struct reg_registry *reg, int r);
/* Keeps rec (and its entry, rec->name in rec->parent) when it is sealed
 * content, a model or a sealed version; a file with its extents. Failures are logged at debug
 * level: the database has it. */
void reg_fixed_keep(struct reg_registry *reg, const struct inode_rec *rec);
void reg_fixed_keep_file(struct reg_registry *reg, const struct inode_rec *rec,
			 const struct rext *ext, size_t n);

/* ---- watch.c ---- */
/* The last audit record the watcher applied: true and *ret, or false
 * (no watcher, or it has not read the trail yet). */
bool reg_watch_applied(struct reg_registry *reg, uint64_t *ret);
/* Whether the watcher vouches for what is kept now (current.c), and the
 * generation of what it vouches for (moved on by every change it handed
 * on, and every change committed on this host: reg_host_changed). */
bool reg_watch_fresh(struct reg_registry *reg, uint64_t *gen);

/* This process committed a change: every process of the host learns it
 * from a counter in shared memory (index/fixed/changes; postgres only),
 * so that what a daemon keeps (current.c) never outlives a change made by
 * a command on the same host: read-your-writes, not "soon". */
void reg_host_changed(struct reg_registry *reg);
uint64_t reg_host_changes(const struct reg_registry *reg);

/* ---- current.c ---- */
int reg_current_open(struct reg_registry *reg);
void reg_current_close(struct reg_registry *reg);
/* A model, stages directory, stage or sealed version kept while the
 * watcher vouches: by entry (name in parent) or, name NULL, by inode ino.
 * 0 and *ret; else -ENOENT and *gen, to give reg_current_put() with what
 * the index then says (0: nothing may be kept now). */
int reg_current_get(struct reg_registry *reg, uint64_t parent,
		    const char *name, uint64_t ino, struct inode_rec *ret,
		    uint64_t *gen);
/* Keeps rec (by its entry name, or by inode with name NULL), read in
 * generation gen, when it is of a kind kept and gen is still current. */
void reg_current_put(struct reg_registry *reg, const char *name,
		     const struct inode_rec *rec, uint64_t gen);

/* ---- hosts.c ---- */
/* A daemon's tick: its record of what it has applied; gone mounts'
 * records out, now and then. */
void reg_hosts_tick(struct reg_registry *reg);
/* Its record out (a clean close). */
void reg_hosts_close(struct reg_registry *reg);

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
