/* passthrough.c — hot sealed files served by the kernel (FUSE passthrough).
 *
 * An open of a sealed file that has a hydrated copy in the serving cache
 * (core/serve/serve.h) is answered with FOPEN_PASSTHROUGH and a backing id: the
 * kernel then reads and maps the copy itself, at a native file's speed and
 * in its page cache (large folios, one copy in memory), and no READ reaches
 * the daemon. Everything else is served by the daemon as before: drafts,
 * files without a copy (whose opens count towards hydrating them), and
 * every file when passthrough cannot be had (the config, the kernel, or no
 * CAP_SYS_ADMIN, which FUSE_DEV_IOC_BACKING_OPEN needs).
 *
 * The kernel's rules (Linux 6.9 to 6.18, fs/fuse/iomode.c), which this
 * file keeps per inode (struct pt_inode):
 *  - all the opens of an inode that exist at once are served one way:
 *    a passthrough open while the daemon serves another open of the inode
 *    fails (ETXTBSY), and so does an open the daemon serves while the
 *    inode has a backing file (EINVAL); both reach the caller as EIO;
 *  - they carry one backing id: a second id for the inode is EBUSY (EIO);
 *  - the kernel drops the inode's backing file when its last passthrough
 *    file is released, before it sends that file's RELEASE;
 *  - a passthrough open may carry no open flag but DIRECT_IO, NOFLUSH
 *    and PARALLEL_DIRECT_WRITES (FOPEN_PASSTHROUGH_MASK): KEEP_CACHE, which
 *    sealed files otherwise get, makes it fail (EIO).
 * So the daemon counts the opens it answered each way, reuses the inode's
 * id while any passthrough open lives, serves by itself while any of its
 * own opens lives (fallback "shared"), and closes the id at the last
 * RELEASE: its counts are never below the kernel's.
 *
 * Reads of a passthrough file ignore the size the daemon reports and
 * serve the backing file's bytes, and a backing file replaced under an
 * open keeps serving the old bytes: so a copy is only ever the verified,
 * complete bytes of a sealed file (serve/cache.c checks its size again when it
 * is opened here), and copies are never rewritten, only removed (an open
 * keeps a removed copy's bytes).
 *
 * Why a bridge: libfuse 3.14 (Debian 12) has no passthrough API; 3.17 has
 * (FUSE_CAP_PASSTHROUGH, fuse_passthrough_open(), fuse_file_info's
 * backing_id), and is used when mregfs is built against it. Below 3.17
 * this file installs read/writev hooks on the raw /dev/fuse traffic
 * (fuse_session_custom_io(), after fuse_session_mount()) that:
 *  - note the kernel's FUSE_INIT offer (FUSE_PASSTHROUGH, bit 5 of flags2)
 *    and, when the daemon wants it, set that bit (with FUSE_INIT_EXT) and
 *    max_stack_depth = 1 in the INIT reply; the kernel accepts it although
 *    libfuse 3.14 answers with an older minor version (it is ignored when
 *    the writeback cache is on, which mregfs never asks for);
 *  - set FOPEN_PASSTHROUGH and the backing id in the OPEN reply that the
 *    handler marked: a handler replies on the thread that read its
 *    request, so a thread-local mark and the request's unique id pair
 *    them.
 * With clone_fd (mregfs's multi-threaded loop), each worker reads from and
 * replies on its own clone of /dev/fuse: libfuse hands the hooks that
 * worker's descriptor, and the hooks keep no per-descriptor state. The
 * backing ioctls may use any descriptor of the connection (the backing ids
 * belong to the connection): they use the session's own. libfuse must not
 * splice requests in (that would bypass the read hook): FUSE_CAP_SPLICE_*
 * are turned off. Debian 12's <linux/fuse.h> predates passthrough: the
 * kernel's constants and layouts are defined here. Failures of the kernel
 * are silent (no log): each is checked here (a probe of BACKING_OPEN once
 * the connection is up) and reported in .mreg/metrics.
 */
#include "mregfs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "registry/serve.h"
#include "serve/serve.h"

#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 17)
#define LIBFUSE_PASSTHROUGH 1   /* the library's own API */
#else
#define LIBFUSE_PASSTHROUGH 0   /* the bridge below */
#endif

#define PT_BUCKETS 256
#define TICKS_PER_SWEEP 30              /* copies of removed files: 60 s */
#define PREFETCH_XATTR "user.mreg.prefetch"
#define PREFETCH_VALUE_MAX 256

/* Opens of one inode now, as answered (see the top of the file). */
struct pt_inode {
	uint64_t ino;
	unsigned direct;        /* answered with passthrough */
	unsigned daemon;        /* answered without */
	int backing;            /* the backing id while direct > 0 */
	struct serve_copy *copy;/* the copy held while direct > 0 */
	struct pt_inode *next;
};

struct pt {
	struct mregfs *fs;
	struct serve_cache *cache;
	char *dir;              /* the cache's directory, or NULL */
	int devfd;              /* the session's /dev/fuse (ioctls) */
	pthread_mutex_t lock;   /* inodes */
	struct pt_inode *inodes[PT_BUCKETS];
	bool probed;
	uint64_t promo_pos;     /* audit records seen (promotions) */
	unsigned ticks;
	atomic_int logged;      /* backing errors logged (one per kind) */
};

static bool has_cap_sys_admin(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return false;
	return d[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32));
}

/* From the kernel's include/uapi/linux/fuse.h (7.40 and later): the
 * ioctls on /dev/fuse that register a backing file and let it go. */
struct k_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define K_FUSE_DEV_IOC_BACKING_OPEN  _IOW(229, 1, struct k_backing_map)
#define K_FUSE_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

/* ---- the bridge for libfuse < 3.17 ------------------------------------ */

#if !LIBFUSE_PASSTHROUGH

/* From the kernel's include/uapi/linux/fuse.h (7.40 and later). */
#define K_FUSE_OPEN             14
#define K_FUSE_INIT             26
#define K_FUSE_WRITEBACK_CACHE  (1u << 16)      /* init flags */
#define K_FUSE_INIT_EXT         (1u << 30)      /* init flags */
#define K_FUSE_PASSTHROUGH2     (1u << 5)       /* init flags2: bit 37 */
#define K_FOPEN_PASSTHROUGH     (1u << 7)       /* open_flags */
#define K_IN_HEADER_LEN         40      /* struct fuse_in_header */
#define K_OUT_HEADER_LEN        16      /* struct fuse_out_header */
#define K_INIT_IN_FLAGS         12      /* in struct fuse_init_in */
#define K_INIT_IN_FLAGS2        16
#define K_INIT_OUT_FLAGS        12      /* in struct fuse_init_out */
#define K_INIT_OUT_FLAGS2       32
#define K_INIT_OUT_STACK_DEPTH  36      /* uint32_t max_stack_depth */
#define K_OPEN_OUT_FLAGS        8       /* in struct fuse_open_out */
#define K_OPEN_OUT_BACKING_ID   12

static struct {
	atomic_bool offered;    /* the kernel's INIT offers passthrough */
	atomic_bool want;       /* answer INIT with it */
	atomic_bool pending;    /* INIT read, its reply not written */
	atomic_bool done;       /* the INIT reply is written: decided */
	_Atomic uint64_t init_unique;
} bridge;

/* The request this thread read last, and the backing id its OPEN reply
 * is to carry (0: none). */
static __thread uint64_t tl_unique;
static __thread uint32_t tl_opcode;
static __thread int tl_backing;

static uint32_t get32(const void *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static void put32(void *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* The len bytes at off of a reply's payload (iov[1..]), when one iovec
 * holds them all (libfuse passes each argument in one). */
static uint8_t *payload_at(struct iovec *iov, int count, size_t off,
			   size_t len)
{
	int i;

	for (i = 1; i < count; i++) {
		if (off + len <= iov[i].iov_len)
			return (uint8_t *)iov[i].iov_base + off;
		if (off < iov[i].iov_len)
			return NULL;
		off -= iov[i].iov_len;
	}
	return NULL;
}

static ssize_t bridge_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);
	const uint8_t *p = buf;

	(void)userdata;
	if (n < K_IN_HEADER_LEN)
		return n;
	tl_opcode = get32(p + 4);
	memcpy(&tl_unique, p + 8, 8);
	if (tl_opcode == K_FUSE_INIT &&
	    n >= K_IN_HEADER_LEN + K_INIT_IN_FLAGS2 + 4) {
		uint32_t flags = get32(p + K_IN_HEADER_LEN + K_INIT_IN_FLAGS);
		uint32_t flags2 = get32(p + K_IN_HEADER_LEN + K_INIT_IN_FLAGS2);

		atomic_store(&bridge.offered, (flags & K_FUSE_INIT_EXT) &&
			     (flags2 & K_FUSE_PASSTHROUGH2));
		atomic_store(&bridge.init_unique, tl_unique);
		atomic_store(&bridge.pending, true);
	}
	return n;
}

static void patch_init(struct iovec *iov, int count)
{
	uint8_t *flags = payload_at(iov, count, K_INIT_OUT_FLAGS, 4);
	uint8_t *flags2 = payload_at(iov, count, K_INIT_OUT_FLAGS2, 4);
	uint8_t *depth = payload_at(iov, count, K_INIT_OUT_STACK_DEPTH, 4);

	if (!flags || !flags2 || !depth) {
		log_warn(0, "fuse init reply too short for passthrough");
		return;
	}
	if (get32(flags) & K_FUSE_WRITEBACK_CACHE)
		return; /* the kernel would refuse passthrough */
	put32(flags, get32(flags) | K_FUSE_INIT_EXT);
	put32(flags2, get32(flags2) | K_FUSE_PASSTHROUGH2);
	put32(depth, 1);
}

static void patch_open(struct iovec *iov, int count, int id)
{
	uint8_t *flags = payload_at(iov, count, K_OPEN_OUT_FLAGS, 4);
	uint8_t *backing = payload_at(iov, count, K_OPEN_OUT_BACKING_ID, 4);

	if (!flags || !backing)
		return;
	put32(flags, get32(flags) | K_FOPEN_PASSTHROUGH);
	put32(backing, (uint32_t)id);
}

static ssize_t bridge_writev(int fd, struct iovec *iov, int count,
			     void *userdata)
{
	bool init = false;
	uint64_t unique;
	int32_t error;
	ssize_t n;

	(void)userdata;
	if (count >= 2 && iov[0].iov_len == K_OUT_HEADER_LEN) {
		memcpy(&error, (uint8_t *)iov[0].iov_base + 4, 4);
		memcpy(&unique, (uint8_t *)iov[0].iov_base + 8, 8);
		if (error == 0 && unique && unique == tl_unique &&
		    tl_backing > 0 && tl_opcode == K_FUSE_OPEN) {
			patch_open(iov, count, tl_backing);
		} else if (error == 0 && unique &&
			   atomic_load(&bridge.pending) &&
			   unique == atomic_load(&bridge.init_unique)) {
			init = true;
			if (atomic_load(&bridge.want))
				patch_init(iov, count);
		}
	}
	n = writev(fd, iov, count);
	if (init) {
		/* the kernel took the reply in this write: decided */
		atomic_store(&bridge.pending, false);
		atomic_store(&bridge.done, true);
	}
	return n;
}

static int bridge_install(struct fuse_session *se)
{
	static const struct fuse_custom_io io = {
		.read = bridge_read,
		.writev = bridge_writev,
	};
	int r;

	r = fuse_session_custom_io(se, &io, fuse_session_fd(se));
	return r > 0 ? -r : r;
}

#endif /* !LIBFUSE_PASSTHROUGH */

/* ---- backing ids -------------------------------------------------------- */

/* Registers fd as a backing file: its id (> 0), or a negative errno. req
 * may be NULL (the probe) with the bridge only. */
static int backing_open(struct pt *pt, fuse_req_t req, int fd)
{
#if LIBFUSE_PASSTHROUGH
	int id;

	(void)pt;
	errno = 0;
	id = req ? fuse_passthrough_open(req, fd) : 0;
	return id > 0 ? id : -(errno ? errno : EIO);
#else
	struct k_backing_map map = { .fd = fd };
	int id;

	(void)req;
	id = ioctl(pt->devfd, K_FUSE_DEV_IOC_BACKING_OPEN, &map);
	return id > 0 ? id : id == 0 ? -EIO : -errno;
#endif
}

/* Lets backing id go. req may be NULL: after a reply, which frees it. */
static void backing_close(struct pt *pt, fuse_req_t req, int id)
{
	uint32_t v = (uint32_t)id;

#if LIBFUSE_PASSTHROUGH
	if (req) {
		fuse_passthrough_close(req, id);
		return;
	}
#else
	(void)req;
#endif
	if (ioctl(pt->devfd, K_FUSE_DEV_IOC_BACKING_CLOSE, &v) < 0)
		log_warn(-errno, "cannot close backing id %d", id);
}

/* Why BACKING_OPEN failed with r, as an open kind; passthrough is turned
 * off for the run when it cannot work at all. Logged once per kind. */
static enum serve_open_kind backing_failed(struct pt *pt, int r)
{
	enum serve_open_kind kind;
	bool off = true;

	switch (r) {
	case -EPERM:
		/* no CAP_SYS_ADMIN, or the connection has no passthrough */
		kind = has_cap_sys_admin() ? SERVE_FALLBACK_KERNEL :
					     SERVE_FALLBACK_PRIVILEGE;
		break;
	case -ELOOP: /* the serving cache is on a stacked file system */
	case -EINVAL:
	case -ENOTTY:
	case -EOPNOTSUPP:
		kind = SERVE_FALLBACK_ERROR;
		break;
	default:
		kind = SERVE_FALLBACK_ERROR;
		off = false;
	}
	if (!(atomic_fetch_or(&pt->logged, 1 << kind) & (1 << kind))) {
		if (kind == SERVE_FALLBACK_PRIVILEGE)
			log_info("no FUSE passthrough: mregfs lacks "
				 "CAP_SYS_ADMIN; it serves every file itself");
		else if (kind == SERVE_FALLBACK_KERNEL)
			log_info("no FUSE passthrough: the kernel did not "
				 "take it; mregfs serves every file itself");
		else
			log_warn(r, "cannot hand a hydrated copy in '%s' to "
				 "the kernel%s", pt->dir ? pt->dir : "",
				 off ? ": mregfs serves every file itself" :
				 "");
	}
	if (off)
		serve_set_off(pt->cache, kind);
	return kind;
}

/* ---- the inodes --------------------------------------------------------- */

static struct pt_inode **inode_slot(struct pt *pt, uint64_t ino)
{
	struct pt_inode **pp = &pt->inodes[ino % PT_BUCKETS];

	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->next;
	return pp;
}

/* The inode's record, made when missing (NULL: ENOMEM); lock held. */
static struct pt_inode *inode_get(struct pt *pt, uint64_t ino)
{
	struct pt_inode **pp = inode_slot(pt, ino);

	if (!*pp && (*pp = calloc(1, sizeof(**pp))))
		(*pp)->ino = ino;
	return *pp;
}

/* One open of ino ended (a RELEASE, or an open whose reply failed): the
 * backing id and copy to let go when it was the last passthrough one. */
static void inode_drop(struct pt *pt, uint64_t ino, int *ret_id,
		       struct serve_copy **ret_copy)
{
	struct pt_inode **pp, *pi;

	*ret_id = 0;
	*ret_copy = NULL;
	pthread_mutex_lock(&pt->lock);
	pp = inode_slot(pt, ino);
	if ((pi = *pp)) {
		if (pi->direct) {
			if (--pi->direct == 0) {
				*ret_id = pi->backing;
				*ret_copy = pi->copy;
			}
		} else if (pi->daemon) {
			pi->daemon--;
		}
		if (!pi->direct && !pi->daemon) {
			*pp = pi->next;
			free(pi);
		}
	}
	pthread_mutex_unlock(&pt->lock);
}

static void open_ended(struct pt *pt, fuse_req_t req, uint64_t ino)
{
	struct serve_copy *copy;
	int id;

	inode_drop(pt, ino, &id, &copy);
	if (id > 0)
		backing_close(pt, req, id);
	serve_put(pt->cache, copy);
}

/* ---- the handlers' side ------------------------------------------------- */

static struct pt *pt_of(fuse_req_t req)
{
	return ((struct mregfs *)fuse_req_userdata(req))->pt;
}

static int reply_open_with(fuse_req_t req, struct fuse_file_info *fi,
			   int id)
{
#if LIBFUSE_PASSTHROUGH
	fi->backing_id = id;
	return fuse_reply_open(req, fi);
#else
	int r;

	tl_backing = id;
	r = fuse_reply_open(req, fi);
	tl_backing = 0;
	return r;
#endif
}

/* Decides how an open of ino (sealed or not) is served; lock held. */
static enum serve_open_kind decide(struct pt *pt, fuse_req_t req,
				   struct pt_inode *pi, bool sealed,
				   enum serve_open_kind off, int key_err,
				   const struct serve_key *key, int *ret_id)
{
	struct serve_copy *copy;
	int fd, id;

	if (pi->direct) {
		pi->direct++;
		*ret_id = pi->backing;
		return SERVE_OPEN_PASSTHROUGH;
	}
	pi->daemon++;
	if (!sealed)
		return SERVE_FALLBACK_UNSEALED;
	if (off != SERVE_OPEN_PASSTHROUGH)
		return off;
	if (key_err < 0)
		return SERVE_FALLBACK_ERROR;
	if (pi->daemon > 1) {
		/* the daemon serves another open of it: so this one too;
		   "shared" only when that is what stood in the way */
		switch (serve_state(pt->cache, key)) {
		case SERVE_READY:
			return SERVE_FALLBACK_SHARED;
		case SERVE_PENDING:
			return SERVE_FALLBACK_HYDRATING;
		default:
			return SERVE_FALLBACK_COLD;
		}
	}
	fd = serve_get(pt->cache, key, &copy);
	if (fd == -EINPROGRESS)
		return SERVE_FALLBACK_HYDRATING;
	if (fd == -ENOENT)
		return SERVE_FALLBACK_COLD;
	if (fd < 0)
		return SERVE_FALLBACK_ERROR;
	id = backing_open(pt, req, fd);
	close(fd);
	if (id < 0) {
		serve_put(pt->cache, copy);
		return backing_failed(pt, id);
	}
	pi->daemon--;
	pi->direct = 1;
	pi->backing = id;
	pi->copy = copy;
	*ret_id = id;
	return SERVE_OPEN_PASSTHROUGH;
}

int pt_reply_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		  struct reg_file *f)
{
	struct pt *pt = pt_of(req);
	enum serve_open_kind off, kind;
	struct serve_key key = { 0 };
	struct pt_inode *pi;
	bool sealed, staged = false;
	int key_err = -ENOENT, id = 0, r;

	if (!pt || reg_ino_virtual(ino))
		return fuse_reply_open(req, fi);
	sealed = reg_file_sealed(f);
	off = serve_off(pt->cache);
	if (sealed && off == SERVE_OPEN_PASSTHROUGH)
		key_err = reg_serve_key(pt->fs->reg, ino, &key, &staged);
	pthread_mutex_lock(&pt->lock);
	pi = inode_get(pt, ino);
	kind = pi ? decide(pt, req, pi, sealed, off, key_err, &key, &id) :
		    SERVE_FALLBACK_ERROR;
	pthread_mutex_unlock(&pt->lock);
	if (!pi) {
		/* untracked, a later passthrough open could fail: refuse */
		fs_reply_err(req, ENOMEM);
		return -ENOMEM;
	}
	serve_count_open(pt->cache, kind);
	if (key_err == 0 && kind != SERVE_OPEN_PASSTHROUGH)
		serve_note_open(pt->cache, &key, staged);
	if (kind == SERVE_OPEN_PASSTHROUGH)
		fi->keep_cache = 0; /* the kernel refuses it with passthrough */
	r = reply_open_with(req, fi, kind == SERVE_OPEN_PASSTHROUGH ? id : 0);
	if (r < 0)
		open_ended(pt, NULL, ino); /* no RELEASE will come */
	return r;
}

int pt_reply_create(fuse_req_t req, const struct fuse_entry_param *e,
		    struct fuse_file_info *fi)
{
	struct pt *pt = pt_of(req);
	struct pt_inode *pi;
	int r;

	if (!pt)
		return fuse_reply_create(req, e, fi);
	/* a new file is never sealed: the daemon serves it, and its open
	   keeps the inode from passthrough until released */
	pthread_mutex_lock(&pt->lock);
	pi = inode_get(pt, e->ino);
	if (pi)
		pi->daemon++;
	pthread_mutex_unlock(&pt->lock);
	if (!pi) {
		fs_reply_err(req, ENOMEM);
		return -ENOMEM;
	}
	r = fuse_reply_create(req, e, fi);
	if (r < 0)
		open_ended(pt, NULL, e->ino);
	return r;
}

void pt_release(fuse_req_t req, fuse_ino_t ino)
{
	struct pt *pt = pt_of(req);

	if (pt && !reg_ino_virtual(ino))
		open_ended(pt, req, ino);
}

void pt_read(fuse_req_t req, fuse_ino_t ino, size_t n)
{
	struct pt *pt = pt_of(req);

	if (pt && !reg_ino_virtual(ino)) /* not .mreg/ */
		serve_note_read(pt->cache, ino, n);
}

void pt_version_removed(fuse_req_t req, uint64_t version)
{
	struct pt *pt = pt_of(req);

	if (pt)
		serve_drop_version(pt->cache, version);
}

/* ---- prefetch: getxattr user.mreg.prefetch ---------------------------- */

struct prefetch {
	struct serve_cache *cache;
	unsigned files, ready, pending, no_room, failed, off;
	uint64_t bytes;
};

static int prefetch_one(void *arg, const struct serve_key *key)
{
	struct prefetch *p = arg;

	p->files++;
	p->bytes += key->size;
	switch (serve_hydrate(p->cache, key)) {
	case SERVE_READY:
		p->ready++;
		break;
	case SERVE_COLD:
	case SERVE_PENDING:
		p->pending++;
		break;
	case SERVE_NO_ROOM:
		p->no_room++;
		break;
	case SERVE_FAILED:
		p->failed++;
		break;
	case SERVE_OFF:
		p->off++;
		break;
	}
	return 0;
}

/* Reading user.mreg.prefetch of a sealed version (a stage follows to
 * one), a directory in one, or a sealed file asks the daemon to hydrate
 * what it holds, and tells where that stands: "STATE files=N ready=N
 * pending=N no_room=N failed=N bytes=N", STATE ready, pending, incomplete
 * (some could not be made) or off:REASON. The daemon decides: nothing is
 * made when copies could not be served. Like readahead, it needs only
 * read access. */
bool pt_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 size_t size)
{
	struct pt *pt = pt_of(req);
	struct prefetch p = { 0 };
	char val[PREFETCH_VALUE_MAX], state[32];
	enum serve_open_kind off;
	int n, r;

	if (strcmp(name, PREFETCH_XATTR) != 0)
		return false;
	if (!pt) {
		fs_reply_err(req, ENODATA);
		return true;
	}
	p.cache = pt->cache;
	r = reg_serve_files(pt->fs->reg, ino, prefetch_one, &p);
	if (r < 0) {
		/* not sealed content (a draft: EINVAL), or gone */
		fs_reply_err(req, r == -EINVAL ? EINVAL : -r);
		return true;
	}
	off = serve_off(pt->cache);
	if (off != SERVE_OPEN_PASSTHROUGH)
		snprintf(state, sizeof(state), "off:%s",
			 serve_open_kind_name(off));
	else
		snprintf(state, sizeof(state), "%s", p.pending ? "pending" :
			 p.no_room || p.failed ? "incomplete" : "ready");
	n = snprintf(val, sizeof(val), "%s files=%u ready=%u pending=%u "
		     "no_room=%u failed=%u bytes=%" PRIu64, state, p.files,
		     p.ready, p.pending, p.no_room, p.failed, p.bytes);
	if (size == 0)
		/* the value changes as copies are made: room for any */
		fuse_reply_xattr(req, PREFETCH_VALUE_MAX);
	else if (size < (size_t)n)
		fs_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, (size_t)n);
	return true;
}

/* ---- set-up, the kernel's answer, housekeeping -------------------------- */

static unsigned env_uint(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? (unsigned)strtoul(v, NULL, 10) : 0;
}

void pt_start(struct mregfs *fs)
{
	enum serve_open_kind off = SERVE_OPEN_PASSTHROUGH;
	struct serve_params p = { 0 };
	struct pt *pt;
	int r;

	pt = calloc(1, sizeof(*pt));
	if (!pt) {
		log_err(-ENOMEM, "cannot set up passthrough");
		return;
	}
	pthread_mutex_init(&pt->lock, NULL);
	pt->fs = fs;
	pt->devfd = fuse_session_fd(fs->se);
	pt->promo_pos = REG_SERVE_START;
	if (!fs->cfg->serve_passthrough || !fs->cfg->serve_size)
		off = SERVE_FALLBACK_DISABLED;
	else if (!has_cap_sys_admin())
		off = SERVE_FALLBACK_PRIVILEGE;
	if (off == SERVE_OPEN_PASSTHROUGH) {
		pt->dir = serve_dir(fs->cfg, reg_path(fs->reg));
		p.dir = pt->dir;
		p.capacity = fs->cfg->serve_size;
		/* test knobs: hot at the first open; slow hydration */
		p.eager = env_uint("MREG_SERVE_EAGER") > 0;
		p.delay_ms = env_uint("MREG_SERVE_DELAY_MS");
		reg_serve_source(fs->reg, &p.source);
	}
	r = serve_open(&p, &pt->cache);
	if (r < 0 && p.dir) {
		log_warn(r, "no serving cache: mregfs serves every file itself");
		p.dir = NULL;
		off = SERVE_FALLBACK_ERROR;
		r = serve_open(&p, &pt->cache);
	}
	if (r < 0) {
		log_err(r, "cannot set up passthrough");
		free(pt->dir);
		free(pt);
		return;
	}
#if !LIBFUSE_PASSTHROUGH
	if (off == SERVE_OPEN_PASSTHROUGH && (r = bridge_install(fs->se)) < 0) {
		log_warn(r, "cannot hook /dev/fuse for passthrough");
		off = SERVE_FALLBACK_ERROR;
	}
	atomic_store(&bridge.want, off == SERVE_OPEN_PASSTHROUGH);
#endif
	if (off == SERVE_FALLBACK_PRIVILEGE)
		log_info("no FUSE passthrough: mregfs lacks CAP_SYS_ADMIN; it "
			 "serves every file itself");
	serve_set_off(pt->cache, off);
	fs->pt = pt;
	reg_set_serve(fs->reg, pt->cache);
}

void pt_init(struct mregfs *fs, struct fuse_conn_info *conn)
{
	struct pt *pt = fs->pt;

	if (!pt || serve_off(pt->cache) != SERVE_OPEN_PASSTHROUGH)
		return;
#if LIBFUSE_PASSTHROUGH
	if (!fuse_set_feature_flag(conn, FUSE_CAP_PASSTHROUGH))
		serve_set_off(pt->cache, SERVE_FALLBACK_KERNEL);
#else
	/* spliced requests would not pass the read hook */
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
			FUSE_CAP_SPLICE_MOVE);
	if (!atomic_load(&bridge.offered)) {
		atomic_store(&bridge.want, false);
		serve_set_off(pt->cache, SERVE_FALLBACK_KERNEL);
		log_info("no FUSE passthrough: the kernel does not offer it "
			 "(Linux >= 6.9 with CONFIG_FUSE_PASSTHROUGH)");
	}
#endif
}

/* Once the kernel took the INIT reply: does BACKING_OPEN work? A file of
 * the cache's file system is registered and let go. */
static void probe(struct pt *pt)
{
#if !LIBFUSE_PASSTHROUGH
	int fd, id;

	if (pt->probed || !atomic_load(&bridge.done))
		return;
	pt->probed = true;
	if (serve_off(pt->cache) != SERVE_OPEN_PASSTHROUGH || !pt->dir)
		return;
	fd = open(pt->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_debug("cannot probe passthrough in '%s': %s", pt->dir,
			  strerror(errno));
		return;
	}
	id = backing_open(pt, NULL, fd);
	close(fd);
	if (id > 0) {
		backing_close(pt, NULL, id);
		log_info("FUSE passthrough on: hydrated copies in '%s'",
			 pt->dir);
	} else {
		backing_failed(pt, id);
	}
#else
	pt->probed = true;
#endif
}

static int hydrate_one(void *arg, const struct serve_key *key)
{
	serve_hydrate(arg, key);
	return 0;
}

static int promoted(void *arg, uint64_t version)
{
	struct pt *pt = arg;
	int r;

	r = reg_serve_files(pt->fs->reg, version, hydrate_one, pt->cache);
	if (r < 0 && r != -ENOENT)
		log_warn(r, "cannot hydrate version inode %" PRIu64
			 " after its promotion", version);
	return 0;
}

static int ignore_promotion(void *arg, uint64_t version)
{
	(void)arg;
	(void)version;
	return 0;
}

static bool copy_alive(void *arg, const struct serve_key *key)
{
	struct serve_key now;
	int r;

	r = reg_serve_key(arg, key->ino, &now, NULL);
	if (r == -ENOENT || r == -EINVAL)
		return false;
	return r < 0 || chunkid_eq(&now.digest, &key->digest);
}

void pt_tick(struct mregfs *fs)
{
	struct pt *pt = fs->pt;
	bool on;
	int r;

	if (!pt)
		return;
	probe(pt);
	on = serve_off(pt->cache) == SERVE_OPEN_PASSTHROUGH;
	r = reg_serve_promotions(fs->reg, &pt->promo_pos,
				 on && fs->cfg->serve_hydrate_on_promote ?
				 promoted : ignore_promotion, pt);
	if (r < 0)
		log_debug("cannot read promotions: %s", strerror(-r));
	if (on && ++pt->ticks % TICKS_PER_SWEEP == 0)
		serve_sweep(pt->cache, copy_alive, fs->reg);
}

void pt_stop(struct mregfs *fs)
{
	struct pt *pt = fs->pt;
	struct pt_inode *pi;
	size_t b;

	if (!pt)
		return;
	reg_set_serve(fs->reg, NULL);
	/* the connection is gone, and the backing ids with it */
	for (b = 0; b < PT_BUCKETS; b++)
		while ((pi = pt->inodes[b])) {
			pt->inodes[b] = pi->next;
			serve_put(pt->cache, pi->copy);
			free(pi);
		}
	serve_close(pt->cache);
	pthread_mutex_destroy(&pt->lock);
	free(pt->dir);
	free(pt);
	fs->pt = NULL;
}
