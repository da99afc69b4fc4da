/* registry.h — the domain API of mreg: models, versions, drafts, sealing,
 * stages, metadata, audit, search, fsck and gc. fs/ (mregfs) and tools/
 * (mreg) call only this (and the leaf headers config.h, log.h).
 *
 * Every function returns 0 (or a documented positive value) on success and
 * a negative errno on failure; output parameters are written only on
 * success. All functions are thread-safe. Rules (names, seal, policy,
 * the next version number) are decided here, inside the index transaction
 * that makes the change.
 *
 * Namespace, as inodes (numbers are persistent, kept in the index):
 *
 *	1  /                      REG_ROOT_INO
 *	2  /models                REG_MODELS_INO
 *	3  /.mreg                 REG_MREGDIR_INO
 *	4  /.mreg/audit.log       REG_AUDITLOG_INO
 *	5  /.mreg/metrics         REG_METRICS_INO
 *	6  /.mreg/history         REG_HISTDIR_INO
 *	   /.mreg/history/M       the stage history of model M (REG_HISTFILE):
 *	                          the model's inode | REG_HISTORY_BIT
 *	   /models/M              a model           (REG_MODEL)
 *	   /models/M/stages       its stages        (REG_STAGES)
 *	   /models/M/stages/S     a stage symlink   (REG_STAGE) -> ../V
 *	   /models/M/V            a version         (REG_VERSION)
 *	   /models/M/V/...        its tree          (REG_DIR, REG_FILE, REG_SYMLINK)
 *	   /models/M/name         a file being copied in at a model root
 *	                          (REG_PENDING): registered as the next version
 *	                          when closed (or renamed to a visible name)
 */
#ifndef MREG_REGISTRY_H
#define MREG_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "chunk/chunkid.h"
#include "config/config.h"
#include "registry/names.h"

#define REG_ROOT_INO     1
#define REG_MODELS_INO   2
#define REG_MREGDIR_INO  3
#define REG_AUDITLOG_INO 4
#define REG_METRICS_INO  5
#define REG_HISTDIR_INO  6
/* The inode of .mreg/history/M: model M's inode with this bit set (the
 * index hands out inode numbers far below it). */
#define REG_HISTORY_BIT  (1ULL << 62)

/* Directories nest at most this deep below a version's directory: mkdir,
 * a rename that moves a directory deeper, push and seal refuse more with
 * -ENAMETOOLONG. At this depth a path of one-byte names still fits in
 * PATH_MAX (4096) from the mount point, and fsck, seal and find stay
 * quick. */
#define REG_DEPTH_MAX  1024
#define REG_XATTR_PREFIX "user.mreg."

enum reg_kind {
	REG_ROOT = 1,
	REG_MODELS,
	REG_MREGDIR,
	REG_AUDITLOG,
	REG_METRICS,
	REG_MODEL,
	REG_STAGES,
	REG_STAGE,
	REG_VERSION,
	REG_DIR,
	REG_FILE,
	REG_SYMLINK,
	REG_PENDING,
	REG_HISTDIR,            /* virtual, as REG_ROOT to REG_METRICS */
	REG_HISTFILE,
};

/* True for the inodes the registry makes up rather than keeps in its
 * index: /, models, .mreg and what .mreg holds. */
static inline bool reg_ino_virtual(uint64_t ino)
{
	return (ino >= REG_ROOT_INO && ino <= REG_HISTDIR_INO) ||
	       (ino & REG_HISTORY_BIT);
}

/* True for the read-only files of .mreg/, whose content is a snapshot
 * taken at open: a reader must get it from the registry at every read
 * (no page cache; FUSE direct_io), since their size changes under it. */
static inline bool reg_ino_snapshot(uint64_t ino)
{
	return ino == REG_AUDITLOG_INO || ino == REG_METRICS_INO ||
	       (ino & REG_HISTORY_BIT);
}

/* Who makes a call: used for ownership of new entries, policy and audit. */
struct reg_caller {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	mode_t umask;          /* applied to modes of new entries */
	const gid_t *groups;   /* supplementary groups, or NULL: look them up */
	int ngroups;
};

/* Fills c with the calling process's identity (the CLI). */
void reg_caller_self(struct reg_caller *c);

struct reg_attr {
	uint64_t ino;
	enum reg_kind kind;
	mode_t mode;            /* with S_IFMT bits */
	uid_t uid;
	gid_t gid;
	uint64_t size;          /* bytes (files), target length (symlinks) */
	uint32_t nlink;
	struct timespec atime, mtime, ctime, btime;
	uint64_t model;         /* inode of the model (0 above models) */
	uint64_t version;       /* inode of the version (0 above versions) */
	bool sealed;            /* content can never change */
	bool volatile_name;     /* can change behind the caller's back (stages,
				   model directories): short cache timeouts */
};

struct reg_registry;

/* Opens the store at cfg's store path (config_store_path(cfg, NULL) when
 * store is NULL), creating it (mode 0700) when the path does not exist or
 * is an empty directory; a store directory of ours that others may enter
 * is made 0700 (logged). Anything else is refused and left untouched,
 * with what was found in the log: a directory holding other things than
 * a store (-ENOTEMPTY), a file (-ENOTDIR), a path inside an mregfs mount
 * (-EXDEV). Refuses a store made with other chunker parameters (-EINVAL,
 * logged). Errors: also -ENOMEM, -EACCES, -ENOSPC, -EIO. cfg must outlive
 * the registry. */
int reg_open(const struct mreg_config *cfg, const char *store,
	     struct reg_registry **ret);
/* reg_open() with flags: REG_OPEN_EXISTING opens a store that exists
 * and creates nothing (-ENOENT when there is none: a missing path or an
 * empty directory). */
#define REG_OPEN_EXISTING 0x1u
/* ... REG_OPEN_LAZY sends a remote chunk store (S3) nothing at open: what
 * is wrong with its endpoint, keys or bucket is said by the first request
 * that needs it. For short commands, most of which read only the index
 * and the cache: hundreds at once must not each ask the object store. A
 * daemon opens without it, to stop at start with the reason. */
#define REG_OPEN_LAZY 0x2u
int reg_open_flags(const struct mreg_config *cfg, const char *store,
		   unsigned flags, struct reg_registry **ret);
/* Closes; takes NULL. Open files must have been released. */
void reg_close(struct reg_registry *reg);
/* The store directory (owned by reg). */
const char *reg_path(const struct reg_registry *reg);
/* statfs(2) of the registry: the space is the store's (what runs out),
 * names are at most REG_FNAME_MAX bytes. -errno of statvfs. */
struct statvfs;
int reg_statfs(struct reg_registry *reg, struct statvfs *ret);
/* Tells the registry where it is mounted (hooks see it as MREG_MOUNT).
 * -EINVAL, -ENOMEM. */
int reg_set_mount(struct reg_registry *reg, const char *mount);

/* A change another process (on any host) committed, as its audit record
 * names it (registry/watch.c). Names are NULL when the record has none;
 * model_ino and stages_ino are the model's now (0: it is gone, or
 * none). */
struct reg_change {
	uint64_t seq;              /* the audit record's */
	const char *op;            /* "promote", "seal", "version.remove" ... */
	const char *model, *version, *stage;
	uint64_t model_ino, stages_ino;
};
typedef void reg_change_fn(void *arg, const struct reg_change *c);
/* Starts a thread that calls fn for every change committed from now on,
 * in order, soon after its commit (a daemon: what the kernel cached of
 * those names goes). An index without watchers (lmdb) starts nothing: 0.
 * reg_close() stops it. -EINVAL, -ENOMEM, -errno of pthread_create. */
int reg_watch_start(struct reg_registry *reg, reg_change_fn *fn, void *arg);
/* Stops it (before what fn uses goes); takes a registry without one. */
void reg_watch_stop(struct reg_registry *reg);
/* Housekeeping a long-running process calls every few seconds: clears
 * dead reader slots, removes what dead processes left half written,
 * writes the counts of coalesced refusals; with [cache]
 * prefetch_on_promote, starts filling the chunk cache with the versions
 * promoted since (reg_prefetch_ino(), in the background). */
void reg_tick(struct reg_registry *reg);

/* ---- names: registry/names.h ---------------------------------------- */

/* ---- the namespace, by inode (what mregfs uses) ----------------------- */

/* Looks name up in directory parent. -ENOENT, -ENOTDIR, -ENAMETOOLONG. */
int reg_lookup(struct reg_registry *reg, uint64_t parent, const char *name,
	       struct reg_attr *ret);
int reg_getattr(struct reg_registry *reg, uint64_t ino, struct reg_attr *ret);

/* An open listing of a directory (what opendir(3) gives). A listing read
 * in pieces resumes after the name it reached, so an entry that exists
 * throughout the listing shows exactly once, however many entries are
 * added or removed meanwhile (those may show or not). */
struct reg_dir;
/* Opens directory ino for listing. -ENOTDIR, -ENOENT, -ENOMEM. */
int reg_opendir(struct reg_registry *reg, uint64_t ino, struct reg_dir **ret);
/* Lists from position pos: 0 for the start, else a position this handle
 * gave (a later one than the handle's last piece lists nothing). "." and
 * ".." are not listed. fn gets each entry and the position after it, and
 * returns non-zero to stop (the entry is not taken: the next piece starts
 * with it; reg_readdir returns 0 then). Positions after pos given earlier
 * are forgotten. One call at a time per handle. -ENOTDIR, -ENOENT (the
 * directory was removed), -ENOMEM. */
int reg_readdir(struct reg_dir *d, uint64_t pos,
		int (*fn)(void *arg, const char *name,
			  const struct reg_attr *attr, uint64_t next),
		void *arg);
/* Closes a listing; takes NULL. */
void reg_closedir(struct reg_dir *d);

/* Copies the target of a symlink (NUL-terminated) into buf.
 * -EINVAL when ino is not a symlink, -ERANGE when buf is too small. */
int reg_readlink(struct reg_registry *reg, uint64_t ino, char *buf,
		 size_t size);

/* mkdir: under /models a model; under a model a draft version (a name of
 * the model/version form); inside a draft a directory. -EEXIST, -EINVAL
 * (bad name), -EROFS (sealed), -EPERM (elsewhere). */
int reg_mkdir(struct reg_registry *reg, const struct reg_caller *who,
	      uint64_t parent, const char *name, mode_t mode,
	      struct reg_attr *ret);

/* rmdir: a model with no versions; a version (sealed: whole, -EBUSY while
 * a stage points at it; draft: must be empty); a directory in a draft
 * (-ENOTEMPTY). */
int reg_rmdir(struct reg_registry *reg, const struct reg_caller *who,
	      uint64_t parent, const char *name);

/* unlink: a file or symlink in a draft, a stage (policy applies), a
 * pending file. -EROFS in a sealed version, -EISDIR. */
int reg_unlink(struct reg_registry *reg, const struct reg_caller *who,
	       uint64_t parent, const char *name);

/* symlink: in stages/ (target must be exactly "../V" of an existing
 * version: -EINVAL / -ENOENT; a draft is sealed first; policy applies;
 * -EEXIST when the stage exists), or inside a draft (target relative and
 * not leaving the version lexically, else -EINVAL). */
int reg_symlink(struct reg_registry *reg, const struct reg_caller *who,
		uint64_t parent, const char *name, const char *target,
		struct reg_attr *ret);

/* The dot-named draft version ino (a push filled it) becomes its model's
 * next version: named as a file copied to the model root would be,
 * sealed, in one transaction, as rename(draft, N) would (the daemon picks
 * N, so pushers on many clients never race for a number). The name into
 * ret_version (REG_NAME_MAX + 1 bytes; may be NULL). -EINVAL (not a
 * dot-named draft), -EROFS (sealed), and rename's errors. */
int reg_version_register(struct reg_registry *reg,
			 const struct reg_caller *who, uint64_t ino,
			 char *ret_version);

/* rename flags: Linux's RENAME_* values, so that a file system passes the
 * kernel's flags as they come. Any flag but NOREPLACE is -EINVAL. */
#define REG_RENAME_NOREPLACE 1u  /* RENAME_NOREPLACE */
#define REG_RENAME_EXCHANGE  2u  /* RENAME_EXCHANGE: -EINVAL (unsupported) */
/* rename: within a draft (files, dirs, symlinks; across drafts of the same
 * model is -EXDEV); a stage over a stage (promotion, atomic; a temporary
 * stage name renamed over a stage is how ln -sfn promotes); a dot-named
 * pending file at a model root to a visible name (registers it); a
 * dot-named draft version to a visible name (seals it). With NOREPLACE an
 * existing target answers -EEXIST. -EROFS when sealed content would
 * change, -EXDEV across models. */
int reg_rename(struct reg_registry *reg, const struct reg_caller *who,
	       uint64_t parent, const char *name, uint64_t newparent,
	       const char *newname, unsigned flags);

/* Creates a regular file: inside a draft, or at a model root (a pending
 * file). The file is empty and open for writing through *ret_file.
 * -EEXIST, -EROFS, -EPERM (anywhere else), -EINVAL (bad name at a model
 * root: none; any kernel-accepted name works inside a version). */
struct reg_file;
int reg_file_create(struct reg_registry *reg, const struct reg_caller *who,
		    uint64_t parent, const char *name, mode_t mode, int flags,
		    struct reg_attr *ret_attr, struct reg_file **ret_file);
/* mknod(2): a regular file is created and closed, as create and close
 * would (an empty file at a model root registers); any other node type
 * (device, FIFO, socket) is -EPERM: it has no place in a version (SPEC
 * §2.5). Its attributes into *ret_attr. */
int reg_mknod(struct reg_registry *reg, const struct reg_caller *who,
	      uint64_t parent, const char *name, mode_t mode,
	      struct reg_attr *ret_attr);
/* link(2): always refused, -EPERM (a hard link would let one file live in
 * two versions), after the name's own checks (-ENAMETOOLONG). */
int reg_link(struct reg_registry *reg, const struct reg_caller *who,
	     uint64_t ino, uint64_t newparent, const char *newname);

/* Which attributes reg_setattr() changes. */
#define REG_SET_MODE  0x01u
#define REG_SET_UID   0x02u
#define REG_SET_GID   0x04u
#define REG_SET_SIZE  0x08u
#define REG_SET_ATIME 0x10u
#define REG_SET_MTIME 0x20u
struct reg_setattr {
	unsigned valid;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	uint64_t size;
	struct timespec atime, mtime; /* tv_nsec UTIME_NOW allowed */
};
/* chmod/chown/truncate/utimens. On a draft version directory, a mode
 * without any write bit seals it (chmod a-w). On sealed content: -EROFS
 * (except a mode that still grants no write, which is accepted as is on a
 * version). fh, when not NULL, is the open file truncated. */
int reg_setattr(struct reg_registry *reg, const struct reg_caller *who,
		uint64_t ino, const struct reg_setattr *sa, struct reg_file *fh,
		struct reg_attr *ret);

/* ---- file I/O ---------------------------------------------------------- */

/* Opens a regular file. flags as open(2): O_WRONLY/O_RDWR/O_TRUNC on sealed
 * content answer -EROFS. A read-only open of a sealed file pins its
 * version: the bytes read stay those of that version until release, and
 * gc keeps them. .mreg/audit.log and .mreg/metrics open as snapshots. */
int reg_file_open(struct reg_registry *reg, const struct reg_caller *who,
		  uint64_t ino, int flags, struct reg_file **ret);

/* Reads up to size bytes at off; returns the count (short only at end of
 * file). -EIO when a chunk fails its check. */
ssize_t reg_file_read(struct reg_file *f, void *buf, size_t size, uint64_t off);
/* Writes at off: in order from the start, chunked and stored as the
 * bytes arrive (a stream); otherwise into the file's sparse spool, over
 * the chunks it had kept (writer.c says how). -EROFS when the file was
 * sealed (e.g. its version was sealed while it was open), -EBADF when not
 * open for writing, -ENOSPC, -EFBIG. */
ssize_t reg_file_write(struct reg_file *f, const void *buf, size_t size,
		       uint64_t off);
/* Commits what was written (fsync): chunks stored and synced, the file's
 * content replaced in one transaction. On return >= 0 the bytes are
 * durable. Nothing to do (0) when nothing was written since the last
 * commit. A pending file at a model root stays pending (see reg_file_close).
 * -EROFS when the version was sealed meanwhile (the bytes were not
 * committed). */
int reg_file_flush(struct reg_file *f, const struct reg_caller *who);
/* How a descriptor of an open file was closed, as far as the caller (the
 * file system, which knows the kernel) could learn it. */
struct reg_closing {
	bool known;             /* others was found out */
	bool others;            /* another descriptor (any process) still
				   refers to the file: not its last close */
	int pid;                /* the closing process (thread group), 0
				   when unknown */
	int signal;             /* it is dying of this signal, else 0 */
};
/* close(2) of a descriptor of f: commits what was written, as reg_file_flush;
 * the first close by a process that created or wrote a new file of a
 * draft (how->pid, see reg_file_writer) makes it outlive a crash (before
 * it, a crash removes it: SPEC §5).
 * A pending file at a model root (SPEC §2.1) is registered once, when its
 * last descriptor is closed (how->known && !how->others; else when its
 * last handle is released): it becomes the next version, and reg_file_close
 * returns 1 (the name left the model root: a file system should drop it
 * from its caches). A pending file that a process dying of a signal wrote
 * (see reg_file_writer) is never registered: at its last close it is
 * removed and the refusal audited (0 to the dying process; -EIO to a live
 * one, whose bytes went too). One whose registration fails is removed too
 * (unless its name is a dot name, which waits for its rename, or another
 * process created it), and reg_file_close returns why it failed (-ENOSPC...).
 * Errors as reg_file_flush. */
int reg_file_close(struct reg_file *f, const struct reg_caller *who,
		   const struct reg_closing *how);
/* Is f a pending file (a model root's) open for writing, not registered
 * yet: the one kind of file whose close needs reg_closing known? */
bool reg_file_pending(const struct reg_file *f);
/* Is f a file just created (a pending file, a new file of a draft whose
 * writer did not close it yet), whose writers reg_file_close needs to know? */
bool reg_file_unfinished(const struct reg_file *f);
/* Notes that process pid (its thread group) creates or writes f, when f
 * is unfinished (else nothing): the close of a process that never wrote
 * it (a child closing an inherited descriptor at exec) does not make a
 * new draft file outlive a crash, and a writer's death by a signal keeps
 * a pending file from registering. */
void reg_file_writer(struct reg_file *f, int pid);
/* copy_file_range: a whole committed file copied into a new file shares
 * its chunks (metadata only: no byte is read or written). Returns the
 * bytes copied (0 at the end of in); -EOPNOTSUPP for any other copy (the
 * caller then reads and writes), -EBADF, -EROFS, -EXDEV. */
ssize_t reg_file_copy_range(struct reg_file *in, uint64_t off_in,
			    struct reg_file *out, uint64_t off_out, size_t len);
/* lseek(2) with SEEK_DATA or SEEK_HOLE: in *ret, the offset of the first
 * byte of data (or of a hole: the end of the file counts as one) at or
 * after off, in the content as this handle reads it. A hole is a range
 * never written (or cut off by a truncation and extended again): it reads
 * as zeros and takes no room. -ENXIO when off is at or past the end (for
 * SEEK_DATA also when only a hole follows), -EINVAL for another whence. */
int reg_file_lseek(struct reg_file *f, uint64_t off, int whence, uint64_t *ret);
/* Releases the handle (commits first if needed; errors are logged). The
 * last handle of a pending file whose last close reg_file_close could not tell
 * registers it; one that is still not registered then is removed (see
 * reg_file_close). */
void reg_file_release(struct reg_file *f);
/* True when the file's content is sealed (keep_cache is safe). */
bool reg_file_sealed(const struct reg_file *f);
/* Current attributes of the open file (size includes unflushed writes). */
int reg_file_attr(struct reg_file *f, struct reg_attr *ret);

/* ---- extended attributes (SPEC §4) ----------------------------------- */

/* name is the full name, e.g. "user.mreg.metric.auc". Models and versions
 * carry description, tag.*, metric.*, param.*, lineage.* and the read-only
 * facts; files inside a version carry user.mreg.digest. Returns the length
 * of the value; with size 0 only the length. -ENODATA, -ERANGE. A
 * control, not stored: reading user.mreg.cache of sealed content (a
 * version, a directory in one, a file) is reg_prefetch_ino() of it,
 * answered "files=N bytes=N chunks=N fetched=N" (its errors); with size 0
 * it does nothing and answers the longest such value's length. */
ssize_t reg_getxattr(struct reg_registry *reg, uint64_t ino, const char *name,
		     void *buf, size_t size);
/* Sets a value. -EINVAL (non-numeric metric, bad key), -EROFS (param or
 * lineage after sealing), -EPERM (read-only facts; names outside
 * user.mreg.), -ENOTSUP (not a model or version). Audited with the old
 * value. flags: XATTR_CREATE / XATTR_REPLACE (-EEXIST / -ENODATA).
 * Two controls, not stored: user.mreg.rollback = S on a model's stages
 * directory is reg_rollback() of stage S by who (its errors; -EINVAL on
 * anything else); user.mreg.register = "" on a dot-named draft is
 * reg_version_register(). */
int reg_setxattr(struct reg_registry *reg, const struct reg_caller *who,
		 uint64_t ino, const char *name, const void *value, size_t size,
		 int flags);
int reg_removexattr(struct reg_registry *reg, const struct reg_caller *who,
		    uint64_t ino, const char *name);
/* NUL-separated names, as listxattr(2). Returns the length. */
ssize_t reg_listxattr(struct reg_registry *reg, uint64_t ino, char *buf,
		      size_t size);

/* ---- domain operations, by name (what mreg uses) ----------------------- */

/* Resolves "model" or "model/version" or "model/version/path..." to an
 * inode. -ENOENT, -EINVAL. */
int reg_resolve(struct reg_registry *reg, const char *path,
		struct reg_attr *ret);

/* Creates a model; -EEXIST. */
int reg_model_create(struct reg_registry *reg, const struct reg_caller *who,
		     const char *model);

/* A key=value for push: key is "description" or "tag.K", "metric.K",
 * "param.K", "lineage.K". */
struct reg_kv {
	const char *key;
	const char *value;
};

/* Registers files or directories (recursively) as a new sealed version of
 * model, created if missing. version NULL: the next integer. Metadata is
 * set before sealing. The version name is written to ret_version
 * (REG_NAME_MAX + 1 bytes). progress, if not NULL, gets bytes done of the
 * total. Errors: -EEXIST (version exists), -EINVAL, -ENOENT (a path),
 * -ENOSPC, -EIO. Nothing is left behind on failure but unreferenced
 * chunks (gc). */
int reg_push(struct reg_registry *reg, const struct reg_caller *who,
	     const char *model, const char *const *paths, size_t npaths,
	     const char *version, const struct reg_kv *meta, size_t nmeta,
	     void (*progress)(void *arg, uint64_t done, uint64_t total),
	     void *parg, char *ret_version);

/* Seals a draft. -EALREADY when sealed already (callers may ignore it),
 * -EBUSY when a file of it is open for writing in this process. */
int reg_seal(struct reg_registry *reg, const struct reg_caller *who,
	     const char *model, const char *version);

/* Points stage at version (sealing a draft first), the stored policy
 * applies:
 * -EACCES (refused; audited), -ENOENT, -EINVAL. */
int reg_promote(struct reg_registry *reg, const struct reg_caller *who,
		const char *model, const char *version, const char *stage);
/* Removes a stage. -EACCES (protected or not allowed), -ENOENT. */
int reg_stage_remove(struct reg_registry *reg, const struct reg_caller *who,
		     const char *model, const char *stage);
/* Points stage back at the target it had before its latest promotion
 * still in effect (see reg_rollback_pick()): after 1 -> 2 -> 3, rollbacks
 * give 2, then 1. The version rolled back to is written to ret_version.
 * -ENOENT when no earlier target exists (or it was removed since). Any
 * change that points a stage there is recorded as a rollback. */
int reg_rollback(struct reg_registry *reg, const struct reg_caller *who,
		 const char *model, const char *stage, char *ret_version);
/* Removes a version: -EBUSY while a stage points at it. */
int reg_version_remove(struct reg_registry *reg, const struct reg_caller *who,
		       const char *model, const char *version);

/* ---- this host's chunk cache (prefetch.c) ----------------------------- */

/* What a prefetch found and did. */
struct reg_prefetch_info {
	uint64_t files;         /* sealed files */
	uint64_t bytes;         /* their sizes */
	uint64_t chunks;        /* their chunks (each extent) */
	uint64_t fetched;       /* bytes fetched now (the rest was here) */
};
/* Brings the chunks of the sealed content under ino (a sealed version, a
 * directory in one, a sealed file) into this host's chunk cache, several
 * requests at once, and waits. Errors: -EOPNOTSUPP (the store keeps its
 * chunks on this host: no cache to fill), -EINVAL (not sealed content: a
 * draft), -ENOENT, -EFBIG (its files are more bytes than [cache] size;
 * logged), -EIO, -ETIMEDOUT (a chunk could not be fetched; logged),
 * -ENOMEM. */
int reg_prefetch_ino(struct reg_registry *reg, uint64_t ino,
		     struct reg_prefetch_info *ret);
/* reg_prefetch_ino() of the version stage what of model points at, else
 * of its version what; the version's name into ret_version
 * (REG_NAME_MAX + 1 bytes; may be NULL). -ENOENT (no such model, or no
 * stage or version what), -EINVAL (a bad name, a draft), and
 * reg_prefetch_ino()'s. */
int reg_prefetch(struct reg_registry *reg, const char *model,
		 const char *what, char *ret_version,
		 struct reg_prefetch_info *ret);

/* ---- stage policies and hooks, stored in the registry (SPEC §3, §6) ---- */

/* Sets keys of stage's policy, in one transaction: promote_users,
 * promote_groups (names separated by commas), require_stage,
 * require_metric ("auc >= 0.9"), protect (a boolean), with the syntax and
 * rules of mreg.conf's [stage NAME] (users and groups must exist). A
 * stage's policy holds for every spelling of its name: when one is stored
 * under another spelling ("Production" for "production"), that one is
 * changed. Each
 * key that changes is audited with its old and new value. Only root or a
 * member of the admin group (reg_policy_admins()) may: -EPERM otherwise
 * (audited). Returns the number of keys that changed; -EINVAL on a bad
 * key or value (the reason is logged). */
int reg_policy_set(struct reg_registry *reg, const struct reg_caller *who,
		   const char *stage, const struct reg_kv *kv, size_t n);
/* Removes keys of stage's policy (n 0: all of them). As reg_policy_set(). */
int reg_policy_unset(struct reg_registry *reg, const struct reg_caller *who,
		     const char *stage, const char *const *keys, size_t n);
/* Sets (program != NULL) or removes the hook of event ("on_register",
 * "on_promote"); program must be an absolute path to an executable file
 * (-EINVAL, logged). As reg_policy_set(). */
int reg_policy_hook(struct reg_registry *reg, const struct reg_caller *who,
		    const char *event, const char *program);
/* Names (group != NULL) or forgets the group whose members may change
 * policies besides root. Only root may: -EPERM (audited). -EINVAL for a
 * group that does not exist. Returns 1 when it changed, 0 when not. */
int reg_policy_admins(struct reg_registry *reg, const struct reg_caller *who,
		      const char *group);
/* Makes the stored policy the config's: its [stage] sections and [hooks]
 * programs (the hook timeout stays a setting of each process). Stored
 * stages and hooks the config lacks are removed; every change is audited
 * (op "policy.import", path the config). As reg_policy_set() otherwise.
 * With REG_POLICY_IF_NONE (a daemon's first start) it imports only into
 * a registry that never had a policy stored, whoever the caller is:
 * -EEXIST when it has one, 0 when the config has none to give; the import
 * is logged. Returns the number of changes. */
#define REG_POLICY_IF_NONE 1u
int reg_policy_import(struct reg_registry *reg, const struct reg_caller *who,
		      const struct mreg_config *cfg, unsigned flags);
/* Calls fn for each stored setting: stage's key and value, or (stage
 * NULL) a hook ("on_register", "on_promote") or "admin_group", in key
 * order. fn returns non-zero to stop. */
int reg_policy_list(struct reg_registry *reg,
		    int (*fn)(void *arg, const char *stage, const char *key,
			      const char *value),
		    void *arg);
/* True when cfg sets any stage policy or hook. */
bool reg_policy_in_config(const struct mreg_config *cfg);
/* Compares cfg's stage policies and hooks with the stored ones: fn (may
 * be NULL) gets one sentence per difference. A config that sets none
 * agrees with anything. Returns the number of differences. */
int reg_policy_compare(struct reg_registry *reg, const struct mreg_config *cfg,
		       void (*fn)(void *arg, const char *msg), void *arg);

struct reg_history {
	uint64_t seq;
	int64_t time;          /* seconds since the epoch */
	uid_t uid;
	const char *stage;
	const char *from;      /* "" when the stage did not exist */
	const char *to;        /* "" when the stage was removed */
	const char *action;    /* "promote", "move", "remove", "rollback" */
	uint64_t from_ino;     /* the version "from" names (0 when unknown) */
};
/* Calls fn for each stage change of model (of stage only, when not NULL),
 * oldest first, trimmed of the temporary stages of ln -sfn and mreg
 * (reg_history_trim()): one promotion is one record. fn returns non-zero
 * to stop. -ENOENT (model). */
int reg_history(struct reg_registry *reg, const char *model, const char *stage,
		int (*fn)(void *arg, const struct reg_history *h), void *arg);

/* Which change a rollback undoes: given the changes of one stage, oldest
 * first (what reg_history() gives), the index of its latest promotion
 * still in effect (each rollback after it undid one promotion), whose
 * "from" the stage goes back to. -ENOENT when there is none: the first
 * promotion of the stage, or the stage was removed since. */
int reg_rollback_pick(const struct reg_history *h, size_t n);

/* Leaves out of h (stage changes oldest first, as reg_history() gives)
 * the life of each temporary stage (reg_stage_temporary()) that was made
 * and then moved or removed with nothing in between: what ln -sfn does on
 * the way to a promotion, which the move's promotion of the real stage
 * records. Returns the number of changes kept at the front of h. */
size_t reg_history_trim(struct reg_history *h, size_t n);

/* True for the temporary stage names that tools use on the way to a
 * promotion: coreutils' "Cu" + 6 of [A-Za-z0-9] (ln -sfn makes one and
 * renames it over the stage) and mreg's "mreg-tmp.*". Such a stage is a
 * stage like any other, except that making it runs no on_promote hook (the
 * rename over the real stage runs one) and reg_history_trim() leaves out
 * a life of it that ended in a move. A real stage with such a name (say
 * "Customer") runs no hook when it is first made. */
bool reg_stage_temporary(const char *name);

struct reg_model_info {
	const char *name;
	uint64_t ino;
	uint32_t nversions;
	int64_t created;
	uid_t creator;
	/* its stages, in name order, and the version each points at (""
	 * for none): valid during the callback */
	size_t nstages;
	const char *const *stages;
	const char *const *stage_versions;
};
int reg_models(struct reg_registry *reg,
	       int (*fn)(void *arg, const struct reg_model_info *m), void *arg);

struct reg_version_info {
	const char *model;
	const char *name;
	uint64_t ino;
	bool sealed;
	int64_t created, sealed_at; /* seconds; sealed_at 0 for drafts */
	uid_t creator;
	uint64_t size;        /* logical bytes of its files */
	uint64_t stored;      /* bytes of chunks first stored by it */
	uint64_t nfiles;
	struct mreg_id digest;/* of its manifest (paths, kinds, file digests) */
	const char *const *stages; /* NULL-terminated stage names pointing here */
};
/* Lists versions of model in name order. -ENOENT. */
int reg_versions(struct reg_registry *reg, const char *model,
		 int (*fn)(void *arg, const struct reg_version_info *v),
		 void *arg);
/* One version ("model/version" or model, version). */
int reg_version_info(struct reg_registry *reg, const char *model,
		     const char *version,
		     int (*fn)(void *arg, const struct reg_version_info *v),
		     void *arg);

/* Calls fn for each metadata key of a model (version NULL) or version,
 * e.g. ("metric.auc", "0.93"), in key order, then the read-only facts
 * ("created", "creator", "sealed", "size", "stored", "digest"). */
int reg_meta_list(struct reg_registry *reg, const char *model,
		  const char *version,
		  int (*fn)(void *arg, const char *key, const char *value,
			    size_t len),
		  void *arg);
/* Sets (value != NULL) or removes (value == NULL) one key. Rules as
 * reg_setxattr(). */
int reg_meta_set(struct reg_registry *reg, const struct reg_caller *who,
		 const char *model, const char *version, const char *key,
		 const char *value);

struct reg_file_info {
	const char *path;     /* relative to the version */
	enum reg_kind kind;
	mode_t mode;
	uint64_t size;
	struct mreg_id digest;/* REG_FILE only */
	const char *target;   /* REG_SYMLINK only */
	uint64_t ino;
};
/* Walks a version's tree depth first in name order. */
int reg_files(struct reg_registry *reg, const char *model, const char *version,
	      int (*fn)(void *arg, const struct reg_file_info *f), void *arg);

/* Writes the content of model/version/path to fd. -EIO on a bad chunk
 * (nothing wrong is written: the failing chunk is not written at all). */
int reg_cat(struct reg_registry *reg, const char *model, const char *version,
	    const char *path, int fd);

/* Bytes of the distinct chunks both versions reference (each counted once,
 * at its length): what `mreg diff` reports as shared. -ENOENT. */
int reg_shared_bytes(struct reg_registry *reg, const char *model_a,
		     const char *version_a, const char *model_b,
		     const char *version_b, uint64_t *ret);

/* Search (see search.h for the language). fn gets each matching version. A
 * malformed query is -EINVAL with "column N: reason" in err. */
int reg_search(struct reg_registry *reg, const char *query, char *err,
	       size_t errlen,
	       int (*fn)(void *arg, const struct reg_version_info *v),
	       void *arg);

/* Audit: calls fn with each record (one JSON object, no newline) from
 * sequence number since on. */
int reg_audit(struct reg_registry *reg, uint64_t since,
	      int (*fn)(void *arg, uint64_t seq, const char *json, size_t len),
	      void *arg);

/* The sequence number of the last audit record (0: none). */
int reg_audit_head(struct reg_registry *reg, uint64_t *ret);

/* The mounts of the registry (every host's, with the index in
 * PostgreSQL): each daemon says at every tick (2 s) which changes it has
 * applied: a new open through it sees every change up to that audit
 * sequence number (registry/hosts.c). */
struct reg_host {
	char host[256];           /* its host name */
	char mount[4096];         /* its mount point */
	int pid;
	uint64_t token;           /* its life token */
	uint64_t applied;         /* audit seq it has applied (0: none yet) */
	int64_t time_ns;          /* when it said so (its clock) */
	bool alive;               /* its process lives (else: gone, its
				     record removed a minute on) */
};
/* Calls fn with each mount's record, in no set order. fn returns 0 to go
 * on, a negative errno to stop (returned). */
int reg_hosts(struct reg_registry *reg,
	      int (*fn)(void *arg, const struct reg_host *h), void *arg);
/* The audit sequence number of the last change of model's stage (a
 * promotion, a rollback, a removal), looked for back from the head among
 * the last million records: 0 and *ret_seq (the version it was set to in
 * version, "" for none), or -ENOENT. */
int reg_stage_change_seq(struct reg_registry *reg, const char *model,
			 const char *stage, uint64_t *ret_seq,
			 char *version, size_t vlen);

/* The audit chain's check, pure: fed the records (from the index, or the
 * lines of .mreg/audit.log through a mount) and the head kept beside the
 * chain, it finds what reg_audit_verify() reports. Every record's "prev"
 * is the SHA-256 (hex) of the exact bytes of the one before, the numbers
 * run without a gap, and the head names the last record's hash.
 *
 *	struct reg_audit_check c;
 *	reg_audit_check_init(&c, report, arg);
 *	reg_audit_check_head(&c, head_seq, head_hash);  (before or after)
 *	for each record: reg_audit_check_record(&c, key_seq, json, len);
 *	bad = reg_audit_check_end(&c, &first_bad);
 */
struct reg_audit_check {
	void (*report)(void *arg, uint64_t seq, const char *msg);
	void *arg;
	uint64_t last, first_bad, n;
	char prev[65];
	bool head_known;          /* reg_audit_check_head() was called */
	uint64_t head_seq;        /* 0: the head is the last record's */
	char head[65];            /* "" when the chain has no head */
	bool head_seen;
};
void reg_audit_check_init(struct reg_audit_check *c,
			  void (*report)(void *arg, uint64_t seq,
					 const char *msg),
			  void *arg);
/* The head kept beside the chain: the hash of record seq (0: of the last
 * record, read in the same transaction as the records), or hash NULL when
 * there is none (a chain with records then is damaged). */
void reg_audit_check_head(struct reg_audit_check *c, uint64_t seq,
			  const char *hash);
/* One record, in order. key_seq is its number as the index keeps it (the
 * record's "seq" must say the same), 0 when the record's text is all
 * there is. */
void reg_audit_check_record(struct reg_audit_check *c, uint64_t key_seq,
			    const char *json, size_t len);
/* 0 when the chain is intact, 1 when not (*ret_first_bad, may be NULL:
 * the first bad record's number). */
int reg_audit_check_end(struct reg_audit_check *c, uint64_t *ret_first_bad);

/* Checks the audit chain of the index (reg_audit_check_*). Returns 0 when
 * intact, 1 when not (report gets each finding; *ret_first_bad the first
 * bad record's number), or a negative errno. */
int reg_audit_verify(struct reg_registry *reg,
		     void (*report)(void *arg, uint64_t seq, const char *msg),
		     void *arg, uint64_t *ret_first_bad);

struct reg_stats {
	const char *model;     /* NULL for the total */
	uint64_t versions;
	uint64_t files;
	uint64_t logical;      /* bytes of all files of all versions */
	uint64_t stored;       /* bytes of distinct chunks referenced */
	uint64_t chunks;
};
/* Per model, then the total (model NULL), with the pack bytes on disk and
 * reclaimable bytes in the total's extra fields via reg_store_stats(). */
int reg_stats(struct reg_registry *reg,
	      int (*fn)(void *arg, const struct reg_stats *s), void *arg);

struct reg_store_stats {
	uint64_t pack_bytes;   /* size of all pack files */
	uint64_t live_bytes;   /* chunk bytes referenced */
	uint64_t dead_bytes;   /* pack bytes no referenced chunk needs */
	uint64_t gc_bytes;     /* of those, what reg_gc() with the default
				  threshold would give back now */
	uint64_t gc_all_bytes; /* ... with threshold 0 (mreg gc --all) */
	uint64_t trash;        /* removed versions (and files unlinked while
				  open) gc would free: nobody has them open */
	uint64_t index_bytes;  /* LMDB file */
	uint64_t chunks;
	uint64_t reads, read_bytes, writes, write_bytes, promotions, errors;
	uint64_t chunked_bytes; /* bytes cut into chunks and hashed to store
				   file content (what writing cost) */
};
/* Sizes and counters of the store. dead_bytes also counts packs that
 * some process is still writing (gc leaves those alone), and the gc
 * figures assume the free space gc would find (rewrites need room): they
 * tell whether running gc, or gc with which threshold, is worth it. Reads
 * every chunk record. Errors: -EINVAL, -ENOMEM, -EIO, -errno of reading
 * the pack directory. */
int reg_store_stats(struct reg_registry *reg, struct reg_store_stats *ret);

/* fsck: read-only. Checks that every reference resolves, every chunk's
 * record is sound and (full) hashes right, reference counts match.
 * fn gets each finding: severity "error" (damage) or "info" (reclaimable),
 * and a message naming the chunk and every model/version/file using it.
 * Returns the number of errors found (0 clean) or a negative errno. */
#define REG_FSCK_FULL 1u
int reg_fsck(struct reg_registry *reg, unsigned flags,
	     void (*report)(void *arg, const char *severity, const char *msg),
	     void (*progress)(void *arg, uint64_t done, uint64_t total),
	     void *arg);

/* gc rewrites a pack when more than this percentage of it is dead. */
#define REG_GC_THRESHOLD 30

struct reg_gc_options {
	unsigned threshold;        /* percent, 0-100: rewrite packs more
				      than this dead; 0 rewrites every pack
				      with a dead byte, 100 none */
};

struct reg_gc_result {
	uint64_t versions_freed;
	uint64_t chunks_freed;
	uint64_t bytes_freed;      /* pack bytes given back to the disk */
	uint64_t packs_removed;
	uint64_t packs_cut;        /* dead tails cut off */
	uint64_t packs_rewritten;
	uint64_t bytes_kept;       /* dead, in packs under the threshold */
	uint64_t bytes_no_room;    /* dead, in packs whose live bytes did not
				      fit in the free space to be rewritten */
};
/* gc: frees removed versions' trees (unless some process still has them
 * open) and chunks no longer referenced; removes packs nothing lives in,
 * cuts off dead pack tails (these two first, and needing no free space:
 * gc makes room on a full disk), and rewrites packs more than the
 * threshold dead, smallest first, as far as the free space allows. The
 * bytes it reports freed are free when it returns. opt NULL: threshold
 * REG_GC_THRESHOLD. Safe beside other processes using the store. Errors:
 * -EINVAL (threshold above 100), -ENOMEM, -EIO, -ENOSPC (an index
 * transaction on a full disk), -errno of the pack files. */
int reg_gc(struct reg_registry *reg, const struct reg_gc_options *opt,
	   void (*progress)(void *arg, uint64_t done, uint64_t total),
	   void *arg, struct reg_gc_result *ret);

/* Renders .mreg/metrics (Prometheus text) into a malloc'ed buffer. */
int reg_metrics_text(struct reg_registry *reg, char **ret, size_t *ret_len);

#endif
