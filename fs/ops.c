/* ops.c — the low-level FUSE operations of mregfs.
 *
 * Each handler maps the request onto one registry call
 * (core/registry/registry.h) and replies exactly once: fs_reply_err(req,
 * -r) when the registry refused. Inode numbers are the registry's
 * persistent ones, so lookup counts need no bookkeeping (forget just
 * replies).
 *
 * What this file decides is caching, from reg_attr:
 *  - sealed content: long entry/attr timeouts, files opened with
 *    keep_cache (never direct_io, so mmap works and re-reads come from the
 *    page cache), directory listings cached;
 *  - names other processes can change (stages, model directories): short
 *    timeouts, so a promotion made elsewhere is seen within a second;
 *    symlinks are never cached (FUSE_CAP_CACHE_SYMLINKS stays off);
 *  - pending files at a model root: no caching at all, since the name
 *    leaves the model root when the file is registered;
 *  - .mreg/audit.log and .mreg/metrics: direct_io (their size changes).
 * Changes made through this mount in stages/ are also pushed out of the
 * kernel's caches by the invalidation thread (fs/inval.c).
 */
#include "mregfs.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* Supplementary groups read per request when a call may apply stage
 * policy; a caller in more groups lets the registry look them up. */
#define CALLER_GROUPS_MAX 256

static struct mregfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct reg_file *file_of(const struct fuse_file_info *fi)
{
	return (struct reg_file *)(uintptr_t)fi->fh;
}

/* Fills who with the identity of the process behind req. With groups, the
 * supplementary groups are read into buf (policy decisions need them). */
static void caller_of(fuse_req_t req, struct reg_caller *who, gid_t *buf,
		      int nbuf)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	int n;

	memset(who, 0, sizeof(*who));
	who->uid = ctx->uid;
	who->gid = ctx->gid;
	who->pid = ctx->pid;
	who->umask = ctx->umask;
	if (!buf)
		return;
	n = fuse_req_getgroups(req, nbuf, buf);
	if (n >= 0 && n <= nbuf) {
		who->groups = buf;
		who->ngroups = n;
	}
}

/* The kernel does not limit name length for FUSE; the registry's limit is
 * what statfs reports. */
static double attr_timeout(const struct reg_attr *a)
{
	if (a->kind == REG_PENDING)
		return 0;
	if (a->volatile_name)
		return MREGFS_TIMEOUT_VOLATILE;
	if (a->sealed)
		return MREGFS_TIMEOUT_SEALED;
	return MREGFS_TIMEOUT_DRAFT;
}

static double entry_timeout(const struct reg_attr *a)
{
	/* A pending file's name leaves the model root when it registers:
	 * the next cp of the same name must create, not open, it. */
	if (a->kind == REG_PENDING)
		return 0;
	/* A stage is updated in place, but a rename onto it (ln -sfn, mv -T)
	 * leaves the kernel's dentry on the inode that was renamed, which
	 * the registry drops: revalidate on every walk, so that the next open
	 * resolves the stage's own inode and reads its current target. */
	if (a->kind == REG_STAGE)
		return 0;
	if (a->volatile_name)
		return MREGFS_TIMEOUT_VOLATILE;
	/* A version's content is sealed, but the name can be removed with
	 * `mreg rm` and given to a new version. */
	if (a->kind == REG_VERSION)
		return MREGFS_TIMEOUT_DRAFT;
	if (a->sealed)
		return MREGFS_TIMEOUT_SEALED;
	return MREGFS_TIMEOUT_DRAFT;
}

static void attr_to_stat(const struct reg_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blksize = MREGFS_BLKSIZE;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

static void reply_entry(fuse_req_t req, struct reg_attr *a)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = a->ino;
	attr_to_stat(a, &e.attr);
	e.attr_timeout = attr_timeout(a);
	e.entry_timeout = entry_timeout(a);
	fuse_reply_entry(req, &e);
}

static void reply_attr(fuse_req_t req, struct reg_attr *a)
{
	struct stat st;

	attr_to_stat(a, &st);
	fuse_reply_attr(req, &st, attr_timeout(a));
}

static void reply_status(fuse_req_t req, int r)
{
	fs_reply_err(req, r < 0 ? -r : 0);
}

static bool is_stages(struct mregfs *fs, uint64_t ino)
{
	struct reg_attr a;

	return reg_getattr(fs->reg, ino, &a) == 0 && a.kind == REG_STAGES;
}

/* After a change in stages/ made through this mount: drop the cached
 * attributes of the stage (updated in place) and of stages/ (sent later, by
 * the invalidation thread). Not the name's dentry: the kernel updated it
 * itself for a call made through this mount, and stage names are never
 * cached (entry timeout 0), so every walk revalidates them. And an entry
 * invalidation takes the directory's lock in the kernel: if the daemon
 * dies while the worker waits for that lock behind another ln -sfn whose
 * request the daemon had read, the worker's hold on /dev/fuse keeps the
 * connection from being aborted and the client waits uninterruptibly for
 * a reply that never comes: the mount and the client hang for good
 * (tests/fs/test_kills.py). Inode invalidations without data take no lock
 * that a request holds. */
static void stage_changed(struct mregfs *fs, uint64_t stages,
			  const char *name)
{
	struct reg_attr a;

	if (reg_lookup(fs->reg, stages, name, &a) == 0)
		inval_inode(fs->inval, a.ino, false);
	inval_inode(fs->inval, stages, false);
}

void fs_changed(void *arg, const struct reg_change *c)
{
	struct mregfs *fs = arg;

	/* inode invalidations only: they wait for no directory lock (see
	   stage_changed) */
	if (!c->model_ino)
		return;
	inval_inode(fs->inval, c->model_ino, false);
	if (c->stages_ino && c->stage)
		stage_changed(fs, c->stages_ino, c->stage);
}

/* ---- per-thread read buffer ------------------------------------------- */

static pthread_key_t rbuf_key;
static pthread_once_t rbuf_once = PTHREAD_ONCE_INIT;

struct rbuf {
	size_t cap;
	char data[];
};

static void rbuf_make_key(void)
{
	if (pthread_key_create(&rbuf_key, free) != 0)
		abort();
}

/* A buffer of at least size bytes owned by the calling worker thread
 * (freed when the thread exits): reads of 1 MiB would otherwise mmap and
 * unmap on every request. */
static void *rbuf_get(size_t size)
{
	struct rbuf *b;

	pthread_once(&rbuf_once, rbuf_make_key);
	b = pthread_getspecific(rbuf_key);
	if (b && b->cap >= size)
		return b->data;
	free(b);
	size = (size + 0xffff) & ~(size_t)0xffff;
	b = malloc(sizeof(*b) + size);
	pthread_setspecific(rbuf_key, b);
	if (!b)
		return NULL;
	b->cap = size;
	return b->data;
}

/* ---- the operations ---------------------------------------------------- */

static void mfs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct mregfs *fs = userdata;

	/* The registry keeps no open-by-handle state: no NFS export. Stage
	 * targets change behind the kernel's back: no symlink caching. */
	conn->want &= ~(FUSE_CAP_EXPORT_SUPPORT | FUSE_CAP_CACHE_SYMLINKS |
			FUSE_CAP_WRITEBACK_CACHE);
	if (fs->readahead && fs->readahead < conn->max_readahead)
		conn->max_readahead = fs->readahead;
	if (fs->max_background > conn->max_background) {
		conn->max_background = fs->max_background;
		conn->congestion_threshold = fs->max_background * 3 / 4;
	}
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* No file here has an ACL (setting one is EOPNOTSUPP), but without
	 * this capability the kernel forwards every ACL read (ls -l asks two
	 * per entry); with it, the kernel keeps the answer with the inode.
	 * It also makes the kernel check permissions, so only when it does
	 * anyway (default_permissions). */
	if (fs->kernel_checks && (conn->capable & FUSE_CAP_POSIX_ACL))
		conn->want |= FUSE_CAP_POSIX_ACL;
	pt_init(fs, conn);
	log_debug("fuse init: proto %u.%u, max_write %u, max_readahead %u, "
		  "max_background %u", conn->proto_major, conn->proto_minor,
		  conn->max_write, conn->max_readahead, conn->max_background);
}

static void mfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct reg_attr a;
	int r;

	r = reg_lookup(fs_of(req)->reg, parent, name, &a);
	if (r < 0)
		fs_reply_err(req, -r);
	else
		reply_entry(req, &a);
}

static void mfs_forget(fuse_req_t req, UNUSED fuse_ino_t ino,
		       UNUSED uint64_t nlookup)
{
	fuse_reply_none(req);
}

static void mfs_forget_multi(fuse_req_t req, UNUSED size_t count,
			     UNUSED struct fuse_forget_data *forgets)
{
	fuse_reply_none(req);
}

static void mfs_getattr(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct reg_attr a;
	int r;

	/* An open file's size includes what was written but not flushed. */
	if (fi && fi->fh)
		r = reg_file_attr(file_of(fi), &a);
	else
		r = reg_getattr(fs_of(req)->reg, ino, &a);
	if (r < 0)
		fs_reply_err(req, -r);
	else
		reply_attr(req, &a);
}

static void mfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int to_set, struct fuse_file_info *fi)
{
	struct mregfs *fs = fs_of(req);
	struct reg_caller who;
	struct reg_setattr sa;
	struct reg_attr a;
	int r;

	caller_of(req, &who, NULL, 0);
	memset(&sa, 0, sizeof(sa));
	if (to_set & FUSE_SET_ATTR_MODE) {
		sa.valid |= REG_SET_MODE;
		sa.mode = attr->st_mode;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		sa.valid |= REG_SET_UID;
		sa.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		sa.valid |= REG_SET_GID;
		sa.gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		sa.valid |= REG_SET_SIZE;
		sa.size = (uint64_t)attr->st_size;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		sa.valid |= REG_SET_ATIME;
		sa.atime = attr->st_atim;
		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			sa.atime.tv_nsec = UTIME_NOW;
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		sa.valid |= REG_SET_MTIME;
		sa.mtime = attr->st_mtim;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			sa.mtime.tv_nsec = UTIME_NOW;
	}
	if (!sa.valid) {
		/* ctime only: nothing the registry keeps changes */
		mfs_getattr(req, ino, fi);
		return;
	}
	r = reg_setattr(fs->reg, &who, ino, &sa,
			fi && fi->fh ? file_of(fi) : NULL, &a);
	if (r < 0)
		fs_reply_err(req, -r);
	else
		reply_attr(req, &a);
}

static void mfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX];
	int r;

	r = reg_readlink(fs_of(req)->reg, ino, buf, sizeof(buf));
	if (r < 0)
		fs_reply_err(req, -r);
	else
		fuse_reply_readlink(req, buf);
}

static void mfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, UNUSED dev_t rdev)
{
	struct reg_caller who;
	struct reg_attr a;
	int r;

	caller_of(req, &who, NULL, 0);
	r = reg_mknod(fs_of(req)->reg, &who, parent, name, mode, &a);
	if (r < 0)
		fs_reply_err(req, -r);
	else
		reply_entry(req, &a);
}

static void mfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode)
{
	struct reg_caller who;
	struct reg_attr a;
	int r;

	caller_of(req, &who, NULL, 0);
	r = reg_mkdir(fs_of(req)->reg, &who, parent, name, mode & 07777, &a);
	if (r < 0)
		fs_reply_err(req, -r);
	else
		reply_entry(req, &a);
}

static void mfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mregfs *fs = fs_of(req);
	gid_t groups[CALLER_GROUPS_MAX];
	struct reg_caller who;
	int r;

	caller_of(req, &who, groups, CALLER_GROUPS_MAX);
	r = reg_unlink(fs->reg, &who, parent, name);
	reply_status(req, r);
	if (r == 0 && is_stages(fs, parent))
		stage_changed(fs, parent, name);
}

static void mfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	gid_t groups[CALLER_GROUPS_MAX];
	struct reg_caller who;
	struct reg_attr a;
	int r;

	caller_of(req, &who, groups, CALLER_GROUPS_MAX);
	if (reg_lookup(fs_of(req)->reg, parent, name, &a) < 0)
		a.kind = REG_ROOT;
	r = reg_rmdir(fs_of(req)->reg, &who, parent, name);
	if (r == 0 && a.kind == REG_VERSION)
		pt_version_removed(req, a.ino);
	reply_status(req, r);
}

static void mfs_symlink(fuse_req_t req, const char *target, fuse_ino_t parent,
			const char *name)
{
	struct mregfs *fs = fs_of(req);
	gid_t groups[CALLER_GROUPS_MAX];
	struct reg_caller who;
	struct reg_attr a;
	int r;

	caller_of(req, &who, groups, CALLER_GROUPS_MAX);
	r = reg_symlink(fs->reg, &who, parent, name, target, &a);
	if (r < 0) {
		fs_reply_err(req, -r);
		return;
	}
	reply_entry(req, &a);
	if (a.kind == REG_STAGE)
		stage_changed(fs, parent, name);
}

static void mfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname,
		       unsigned int flags)
{
	struct mregfs *fs = fs_of(req);
	gid_t groups[CALLER_GROUPS_MAX];
	struct reg_caller who;
	struct reg_attr a;
	int r;

	/* the kernel's flags as they are: REG_RENAME_* are its values */
	_Static_assert(REG_RENAME_NOREPLACE == RENAME_NOREPLACE &&
		       REG_RENAME_EXCHANGE == RENAME_EXCHANGE,
		       "REG_RENAME_* are Linux's RENAME_* flags");
	caller_of(req, &who, groups, CALLER_GROUPS_MAX);
	r = reg_rename(fs->reg, &who, parent, name, newparent, newname, flags);
	reply_status(req, r);
	if (r < 0)
		return;
	if (is_stages(fs, newparent))
		stage_changed(fs, newparent, newname);
	/* A renamed draft may have been sealed by the rename (mv .7.part 7):
	 * its cached mode must not outlive it. */
	if (reg_lookup(fs->reg, newparent, newname, &a) == 0 &&
	    a.kind == REG_VERSION)
		inval_inode(fs->inval, a.ino, false);
}

static void mfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		     const char *newname)
{
	struct reg_caller who;

	caller_of(req, &who, NULL, 0);
	fs_reply_err(req, -reg_link(fs_of(req)->reg, &who, ino, newparent,
				      newname));
}

/* A new file's writers are remembered by process (reg_file_writer()). */
static void note_writer(fuse_req_t req, struct reg_file *f)
{
	if (reg_file_unfinished(f))
		reg_file_writer(f, closer_tgid((int)fuse_req_ctx(req)->pid));
}

static void mfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct reg_caller who;
	struct reg_file *f;
	int r;

	caller_of(req, &who, NULL, 0);
	r = reg_file_open(fs_of(req)->reg, &who, ino, fi->flags, &f);
	if (r < 0) {
		fs_reply_err(req, -r);
		return;
	}
	fi->fh = (uintptr_t)f;
	if (reg_ino_snapshot(ino))
		fi->direct_io = 1;
	else if (reg_file_sealed(f))
		fi->keep_cache = 1;
	/* Nothing to commit on close of a read-only descriptor, but for
	 * O_RDONLY|O_TRUNC: its truncation commits at close, not at the
	 * release the kernel sends after close() returned. */
	if ((fi->flags & O_ACCMODE) == O_RDONLY && !(fi->flags & O_TRUNC))
		fi->noflush = 1;
	if (pt_reply_open(req, ino, fi, f) < 0) {
		/* the opener was interrupted: no release will come */
		reg_file_release(f);
	}
}

static void mfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	struct reg_caller who;
	struct reg_file *f;
	struct reg_attr a;
	int r;

	caller_of(req, &who, NULL, 0);
	r = reg_file_create(fs_of(req)->reg, &who, parent, name, mode & 07777,
			    fi->flags, &a, &f);
	if (r < 0) {
		fs_reply_err(req, -r);
		return;
	}
	fi->fh = (uintptr_t)f;
	note_writer(req, f);
	memset(&e, 0, sizeof(e));
	e.ino = a.ino;
	attr_to_stat(&a, &e.attr);
	e.attr_timeout = attr_timeout(&a);
	e.entry_timeout = entry_timeout(&a);
	if (pt_reply_create(req, &e, fi) < 0)
		reg_file_release(f);
}

static void mfs_read(fuse_req_t req, fuse_ino_t ino, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	ssize_t n;
	void *buf;

	buf = rbuf_get(size);
	if (!buf) {
		fs_reply_err(req, ENOMEM);
		return;
	}
	n = reg_file_read(file_of(fi), buf, size, (uint64_t)off);
	pt_read(req, ino, n > 0 ? (size_t)n : 0);
	if (n < 0)
		fs_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void mfs_write(fuse_req_t req, UNUSED fuse_ino_t ino, const char *buf,
		      size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t n;

	note_writer(req, file_of(fi));
	n = reg_file_write(file_of(fi), buf, size, (uint64_t)off);
	if (n < 0)
		fs_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

/* close(2) returns what this returns: the commit of what was written. A
 * file at a model root registers at its last close, unless a process that
 * wrote it is dying of a signal: the kernel says neither, /proc tells. */
static void mfs_flush(fuse_req_t req, fuse_ino_t ino,
		      struct fuse_file_info *fi)
{
	struct reg_file *f = file_of(fi);
	struct reg_closing how = { 0 };
	struct reg_caller who;

	caller_of(req, &who, NULL, 0);
	if (reg_file_pending(f))
		closer_probe(fs_of(req), (int)who.pid, ino, &how);
	else if (reg_file_unfinished(f))
		how.pid = closer_tgid((int)who.pid);
	reply_status(req, reg_file_close(f, &who, &how));
}

static void mfs_release(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	reg_file_release(file_of(fi));
	pt_release(req, ino);
	fs_reply_err(req, 0);
}

static void mfs_fsync(fuse_req_t req, UNUSED fuse_ino_t ino,
		      UNUSED int datasync, struct fuse_file_info *fi)
{
	struct reg_caller who;

	caller_of(req, &who, NULL, 0);
	reply_status(req, reg_file_flush(file_of(fi), &who));
}

static struct reg_dir *dir_of(const struct fuse_file_info *fi)
{
	return (struct reg_dir *)(uintptr_t)fi->fh;
}

static void mfs_opendir(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct reg_dir *d;
	struct reg_attr a;
	int r;

	r = reg_getattr(fs_of(req)->reg, ino, &a);
	if (r < 0) {
		fs_reply_err(req, -r);
		return;
	}
	if (!S_ISDIR(a.mode)) {
		fs_reply_err(req, ENOTDIR);
		return;
	}
	r = reg_opendir(fs_of(req)->reg, ino, &d);
	if (r < 0) {
		fs_reply_err(req, -r);
		return;
	}
	fi->fh = (uintptr_t)d;
	/* A sealed tree never changes: let the kernel keep its listing. */
	if (a.sealed && !a.volatile_name) {
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	if (fuse_reply_open(req, fi) < 0)
		reg_closedir(d); /* interrupted: no releasedir will come */
}

static void mfs_releasedir(fuse_req_t req, UNUSED fuse_ino_t ino,
			   struct fuse_file_info *fi)
{
	reg_closedir(dir_of(fi));
	fs_reply_err(req, 0);
}

struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, len;
	bool plus;                /* readdirplus: entries with attributes */
};

/* Adds an entry; a is NULL for "." and "..", which readdirplus sends
 * without attributes (node 0: the kernel looks nothing up for them). */
static int dir_add(struct dirbuf *d, const char *name, uint64_t ino,
		   mode_t mode, const struct reg_attr *a, off_t next)
{
	struct fuse_entry_param e;
	size_t n;

	memset(&e, 0, sizeof(e));
	if (a) {
		e.ino = a->ino;
		attr_to_stat(a, &e.attr);
		e.attr_timeout = attr_timeout(a);
		e.entry_timeout = entry_timeout(a);
	} else {
		e.attr.st_ino = ino;
		e.attr.st_mode = mode;
	}
	if (d->plus)
		n = fuse_add_direntry_plus(d->req, d->buf + d->len,
					   d->size - d->len, name, &e, next);
	else
		n = fuse_add_direntry(d->req, d->buf + d->len,
				      d->size - d->len, name, &e.attr, next);
	if (n > d->size - d->len)
		return 1; /* full: this entry comes first next time */
	d->len += n;
	return 0;
}

/* Offsets the kernel sees: 1 after ".", 2 after "..", 2 + the registry's
 * position after each entry. */
static int dir_fill(void *arg, const char *name, const struct reg_attr *a,
		    uint64_t next)
{
	return dir_add(arg, name, a->ino, a->mode, a, (off_t)(next + 2));
}

static uint64_t parent_ino(const struct reg_attr *a)
{
	switch (a->kind) {
	case REG_ROOT:
	case REG_MODELS:
	case REG_MREGDIR:
		return REG_ROOT_INO;
	case REG_MODEL:
		return REG_MODELS_INO;
	case REG_STAGES:
	case REG_VERSION:
		return a->model;
	default:
		/* a directory inside a version: readdir's ".." inode is
		 * informative only; the kernel resolves ".." itself */
		return a->version ? a->version : a->ino;
	}
}

/* readdir and readdirplus. The entries' attributes come with the listing
 * (reg_readdir reads each entry's record anyway), so readdirplus saves
 * ls -l a LOOKUP per entry. Lookup counts need no bookkeeping here (see
 * the top of the file), so the kernel may keep what it likes. */
static void read_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi, bool plus)
{
	struct mregfs *fs = fs_of(req);
	struct dirbuf d;
	struct reg_attr a;
	int r;

	d.req = req;
	d.size = size;
	d.len = 0;
	d.plus = plus;
	d.buf = malloc(size);
	if (!d.buf) {
		fs_reply_err(req, ENOMEM);
		return;
	}
	if (off < 2) {
		r = reg_getattr(fs->reg, ino, &a);
		if (r < 0)
			goto fail;
		if (off < 1 && dir_add(&d, ".", ino, S_IFDIR, NULL, 1))
			goto done;
		if (dir_add(&d, "..", parent_ino(&a), S_IFDIR, NULL, 2))
			goto done;
		off = 2;
	}
	r = reg_readdir(dir_of(fi), (uint64_t)off - 2, dir_fill, &d);
	if (r < 0 && d.len == 0)
		goto fail;
done:
	fuse_reply_buf(req, d.buf, d.len);
	free(d.buf);
	return;
fail:
	fs_reply_err(req, -r);
	free(d.buf);
}

static void mfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			off_t off, struct fuse_file_info *fi)
{
	read_dir(req, ino, size, off, fi, false);
}

static void mfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			    off_t off, struct fuse_file_info *fi)
{
	read_dir(req, ino, size, off, fi, true);
}

static void mfs_statfs(fuse_req_t req, UNUSED fuse_ino_t ino)
{
	struct statvfs st;
	int r = reg_statfs(fs_of(req)->reg, &st);

	if (r < 0)
		fs_reply_err(req, -r);
	else
		fuse_reply_statfs(req, &st);
}

/* The registry's metadata lives in the user. namespace. For the kernel's
 * own namespaces (system.posix_acl_*, security.*, trusted.*) the answer a
 * file system without them gives is EOPNOTSUPP: cp -p, rsync -X and tar
 * then fall back (to chmod) instead of failing. */
static bool foreign_xattr(const char *name)
{
	return strncmp(name, "user.", 5) != 0;
}

static void mfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 const char *value, size_t size, int flags)
{
	gid_t groups[CALLER_GROUPS_MAX];
	char stage[REG_STAGE_MAX + 1];
	struct reg_caller who;
	int r;

	if (foreign_xattr(name)) {
		fs_reply_err(req, EOPNOTSUPP);
		return;
	}

	/* with the caller's groups: a rollback (user.mreg.rollback) applies
	   stage policy, as unlink and symlink of a stage do */
	caller_of(req, &who, groups, CALLER_GROUPS_MAX);
	r = reg_setxattr(fs_of(req)->reg, &who, ino, name, value, size, flags);
	if (r == 0 && !strcmp(name, REG_XATTR_PREFIX "rollback") &&
	    size < sizeof(stage)) {
		memcpy(stage, value, size);
		stage[size] = '\0';
		stage_changed(fs_of(req), ino, stage);
	}
	reply_status(req, r);
}

static void mfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 size_t size)
{
	struct mregfs *fs = fs_of(req);
	ssize_t n;
	char *buf;

	if (pt_getxattr(req, ino, name, size))
		return;
	if (size == 0) {
		n = reg_getxattr(fs->reg, ino, name, NULL, 0);
		if (n < 0)
			fs_reply_err(req, (int)-n);
		else
			fuse_reply_xattr(req, (size_t)n);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fs_reply_err(req, ENOMEM);
		return;
	}
	n = reg_getxattr(fs->reg, ino, name, buf, size);
	if (n < 0)
		fs_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void mfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct mregfs *fs = fs_of(req);
	ssize_t n;
	char *buf;

	if (size == 0) {
		n = reg_listxattr(fs->reg, ino, NULL, 0);
		if (n < 0)
			fs_reply_err(req, (int)-n);
		else
			fuse_reply_xattr(req, (size_t)n);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fs_reply_err(req, ENOMEM);
		return;
	}
	n = reg_listxattr(fs->reg, ino, buf, size);
	if (n < 0)
		fs_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void mfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct reg_caller who;

	if (foreign_xattr(name)) {
		fs_reply_err(req, EOPNOTSUPP);
		return;
	}

	caller_of(req, &who, NULL, 0);
	reply_status(req, reg_removexattr(fs_of(req)->reg, &who, ino, name));
}

/* cp within the mount: a whole file copied into a new one shares its
 * chunks; for any other copy the registry says EOPNOTSUPP and the kernel
 * or cp falls back to read and write. */
static void mfs_copy_file_range(fuse_req_t req, UNUSED fuse_ino_t ino_in,
				off_t off_in, struct fuse_file_info *fi_in,
				UNUSED fuse_ino_t ino_out, off_t off_out,
				struct fuse_file_info *fi_out, size_t len,
				UNUSED int flags)
{
	ssize_t n;

	n = reg_file_copy_range(file_of(fi_in), (uint64_t)off_in,
				file_of(fi_out), (uint64_t)off_out, len);
	if (n < 0)
		fs_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

/* SEEK_DATA and SEEK_HOLE (cp, tar and rsync keep holes as holes with
 * them); the kernel answers the other whences itself. */
static void mfs_lseek(fuse_req_t req, UNUSED fuse_ino_t ino, off_t off,
		      int whence, struct fuse_file_info *fi)
{
	uint64_t pos;
	int r;

	r = off < 0 ? -ENXIO :
	    reg_file_lseek(file_of(fi), (uint64_t)off, whence, &pos);
	if (r < 0)
		fs_reply_err(req, -r);
	else
		fuse_reply_lseek(req, (off_t)pos);
}

/* Left out on purpose: fallocate, locks (the kernel keeps them locally), access
 * (default_permissions). */
const struct fuse_lowlevel_ops mregfs_ops = {
	.init         = mfs_init,
	.lookup       = mfs_lookup,
	.forget       = mfs_forget,
	.forget_multi = mfs_forget_multi,
	.getattr      = mfs_getattr,
	.setattr      = mfs_setattr,
	.readlink     = mfs_readlink,
	.mknod        = mfs_mknod,
	.mkdir        = mfs_mkdir,
	.unlink       = mfs_unlink,
	.rmdir        = mfs_rmdir,
	.symlink      = mfs_symlink,
	.rename       = mfs_rename,
	.link         = mfs_link,
	.open         = mfs_open,
	.create       = mfs_create,
	.read         = mfs_read,
	.write        = mfs_write,
	.flush        = mfs_flush,
	.release      = mfs_release,
	.fsync        = mfs_fsync,
	.copy_file_range = mfs_copy_file_range,
	.lseek        = mfs_lseek,
	.opendir      = mfs_opendir,
	.readdir      = mfs_readdir,
	.readdirplus  = mfs_readdirplus,
	.releasedir   = mfs_releasedir,
	.statfs       = mfs_statfs,
	.setxattr     = mfs_setxattr,
	.getxattr     = mfs_getxattr,
	.listxattr    = mfs_listxattr,
	.removexattr  = mfs_removexattr,
};
