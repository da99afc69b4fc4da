/* mregfs.h — what the files of mregfs (the FUSE daemon) share: the one
 * place that picks the libfuse API version, the daemon's state, the
 * low-level operations table and the invalidation queue.
 *
 * fs/ is a thin layer over core/registry/registry.h: a handler maps the
 * inode, calls the registry and replies exactly once. No rule of the
 * registry lives here; what lives here is how the kernel caches what the
 * registry says (timeouts, keep_cache, direct_io, invalidation).
 */
#ifndef MREG_FS_MREGFS_H
#define MREG_FS_MREGFS_H

/* The only definition of the API version: FUSE_MAKE_VERSION comes from
 * fuse_common.h, which fuse_lowlevel.h includes before it compares. The
 * two-digit form (e.g. 314 written as 34) would silently pick older
 * APIs. */
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)
#include <errno.h>
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/config.h"
#include "registry/registry.h"
#include "util.h"

/* Replies errno e (0: success) to req. A deadline that passed (the
 * database's, the object store's: -ETIMEDOUT from the core, which logged
 * which) is an I/O error to the program that called: EIO. */
static inline void fs_reply_err(fuse_req_t req, int e)
{
	fuse_reply_err(req, e == ETIMEDOUT ? EIO : e);
}

/* Cache timeouts (seconds) handed to the kernel. Names that can change
 * behind the kernel's back (stages, model directories) are revalidated
 * often enough that a promotion made with the CLI or another mount is
 * seen within one second; sealed content never changes. */
#define MREGFS_TIMEOUT_VOLATILE 0.2
#define MREGFS_TIMEOUT_DRAFT    1.0
#define MREGFS_TIMEOUT_SEALED   3600.0

#define MREGFS_BLKSIZE (1u << 20) /* st_blksize: cp uses it as its buffer */

struct inval_queue;
struct pt;

/* The daemon's state: the userdata of the FUSE session. */
struct mregfs {
	struct reg_registry *reg;
	const struct mreg_config *cfg;
	struct fuse_session *se;
	struct inval_queue *inval;   /* kernel cache invalidations */
	unsigned readahead;          /* bytes, from the config */
	unsigned max_background;
	bool kernel_checks;          /* mounted with default_permissions */
	dev_t dev;                   /* st_dev of the mount */
	bool dev_known;              /* (else no close is known to be last) */
	struct pt *pt;               /* passthrough (fs/passthrough.c) */
};

/* The low-level operations (fs/ops.c). */
extern const struct fuse_lowlevel_ops mregfs_ops;

/* ---- who closes a file, and how (fs/closer.c) ------------------------ */

/* The device number of the FUSE mount at mountpoint (canonical path), from
 * /proc/self/mountinfo. -ENOENT, -errno. */
int closer_mount_dev(const char *mountpoint, dev_t *ret);
/* How thread tid's close of a descriptor of inode ino was made: which
 * process, whether it is dying of a signal, whether another descriptor of
 * ino is left anywhere. ret->known stays false when that could not be
 * found out (fs->dev unknown, no /proc). Costs a look at every process's
 * descriptors: call it only for the files that need it
 * (reg_file_pending()). */
void closer_probe(const struct mregfs *fs, int tid, uint64_t ino,
		  struct reg_closing *ret);
/* The process (thread group) of thread tid: tid when unknown, 0 for 0. */
int closer_tgid(int tid);

/* ---- sealed files served by the kernel (fs/passthrough.c) -----------

 * Every open, create and release of a file goes through here, so that
 * the kernel's rule (all opens of an inode served one way) holds. None of
 * it ever fails the mount: what cannot be had is logged, counted in
 * .mreg/metrics, and the daemon serves the files itself. */

/* Sets up the serving cache and, below libfuse 3.17, the bridge on
 * /dev/fuse: after fuse_session_mount() and the registry's opening, before
 * the loop and the housekeeping thread. */
void pt_start(struct mregfs *fs);
/* Frees it all, after the loop and the housekeeping thread ended, before
 * the registry closes. Takes fs->pt NULL. */
void pt_stop(struct mregfs *fs);
/* The FUSE_INIT part (from the init handler, last). */
void pt_init(struct mregfs *fs, struct fuse_conn_info *conn);
/* Housekeeping: checks the kernel's answer once, hydrates versions
 * promoted ([serve] hydrate_on_promote), drops copies of removed files. */
void pt_tick(struct mregfs *fs);
/* Replies to OPEN of ino, opened in the registry as f: with passthrough
 * when it has a copy and the inode's other opens allow. Returns what
 * fuse_reply_open() returned (or a negative errno after replying an
 * error): on failure no RELEASE will come and f is the caller's to
 * release. */
int pt_reply_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		  struct reg_file *f);
/* Replies to CREATE (as fuse_reply_create(), counted as pt_reply_open()). */
int pt_reply_create(fuse_req_t req, const struct fuse_entry_param *e,
		    struct fuse_file_info *fi);
/* A RELEASE of ino: the backing id goes with the last passthrough open. */
void pt_release(fuse_req_t req, fuse_ino_t ino);
/* A READ of n bytes of ino the daemon answered. */
void pt_read(fuse_req_t req, fuse_ino_t ino, size_t n);
/* Version inode version was removed: its copies go. */
void pt_version_removed(fuse_req_t req, uint64_t version);
/* Handles getxattr of user.mreg.prefetch (replies, returns true); false
 * for any other name. */
bool pt_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 size_t size);

/* A change another process committed (reg_watch_start(), arg the
 * mregfs): what the kernel cached of the model and the stage it names
 * goes (ops.c). */
void fs_changed(void *arg, const struct reg_change *c);

/* ---- invalidation queue (fs/inval.c) --------------------------------

 * Handlers must not tell the kernel to drop a cached entry while they
 * serve a request: the kernel may hold the directory's lock until the
 * reply, and the notification waits for that lock. Handlers push work
 * here; a thread that serves no request sends it. */

/* Starts the worker for session se. -ENOMEM, -errno of pthread_create. */
int inval_start(struct fuse_session *se, struct inval_queue **ret);
/* Stops the worker (after the session was unmounted, so that no
 * notification can block on a request that will never be answered) and
 * frees the queue; takes NULL. */
void inval_stop(struct inval_queue *q);
/* Queues "drop the dentry name in directory parent". Never blocks on the
 * kernel; drops the work when the queue is full or out of memory (the
 * short timeouts bound how stale the cache can be). Takes NULL q. The
 * worker waits for the directory's lock in the kernel, and a daemon killed
 * meanwhile cannot let the connection go: the mount hangs (see
 * stage_changed() in ops.c). Prefer inval_inode(). */
void inval_entry(struct inval_queue *q, uint64_t parent, const char *name);
/* Queues "drop the cached attributes (and data when data) of ino". */
void inval_inode(struct inval_queue *q, uint64_t ino, bool data);

#endif
