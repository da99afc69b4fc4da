/* pack.c — the pack backend of the chunk store (store.h, backend.h):
 * append-only pack files in a directory, the default backend.
 *
 * On disk, under DIR/packs/ (mode 0700), files pack-NNNNNNNN.pack (mode
 * 0600, NNNNNNNN the pack number in 8 lower-case hex digits, from 1 up),
 * each a pack as store/packfmt.h frames it (a header naming the pack
 * number, then records: magic, length, chunk id, data).
 *
 * There is no index and no trailer in a pack: a chunk's location (the
 * opaque struct chunk_loc the index keeps) is 16 bytes, u32 LE pack
 * number, u32 LE length, u64 LE offset of its data: the first 16 bytes of
 * the index's chunk records before locations were opaque, so that those
 * records read as they are. A pack can be walked from its header; its
 * number is its container's name (store_containers()). A pack only grows, by whole records, and only in the
 * process that created it; gc, under its exclusive lock, removes whole
 * packs or cuts off a tail that no index record names (which needs no
 * free space: how gc makes room on a full disk).
 *
 * Writing. A process creates its own packs (O_CREAT|O_EXCL on the next
 * free number) and appends records to a 1 MiB buffer in memory, written
 * with one pwrite(2) when full, by store_sync(), or when the pack rolls
 * over. A write that fails is cut back with ftruncate(2) to the last whole
 * record and the pack is retired (appends go to a new pack); its buffer is
 * kept and written again by the next store_sync() (see "Failures"). With
 * sync on, store_sync() fdatasync()s every pack written since the last
 * one, and packs/ itself when a pack was created since, so that a chunk is
 * never reported durable before its pack's name is; store_open() syncs DIR
 * when it creates packs/.
 *
 * Locks. The writer holds flock(LOCK_SH) on each pack it created while an
 * index transaction may still name it: the active pack, and the packs that
 * rolled over while a batch was open, until no batch is open. gc takes
 * flock(LOCK_EX|LOCK_NB). flock(2) locks belong to an open file
 * description, so the writer's lock and gc's lock are taken on separate
 * open(2)s and conflict even inside one process; read descriptors are
 * separate again and never locked.
 *
 * Failures. A failed fdatasync(2) may have lost the data written since the
 * last good one, and the kernel reports it once only; so the pack is
 * retired and the error is made sticky: store_sync() returns -EIO until
 * every batch that was open when the failure was seen has ended (the count
 * of open batches falls to 0), since one of them may have appended to the
 * pack; for data appended outside any batch there is no such end, and the
 * error stays until store_close(). A failed write keeps its buffer and
 * store_sync() tries it again and fails while it cannot be written; the
 * buffer is given up on the same rule (no batch open, nothing appended
 * outside a batch in it). Nothing is ever reported durable that might not
 * be.
 *
 * Reading. Read descriptors are cached per pack in a small hash table
 * under a rwlock; each entry is reference-counted, so a pread(2) holds no
 * lock and an entry dropped meanwhile is closed by its last user. gc
 * empties a pack as it removes it, so that its blocks come back at once
 * whoever still has it open; a read through such a descriptor comes up
 * short. A failed read checks whether its descriptor still is the file of
 * that name: if the name is gone the chunk moved (-ENOENT: the caller
 * looks it up again), if another file took it, it tries once more. At
 * most once a second, and on every store_bytes() (statfs) and
 * store_containers(), descriptors of unlinked files are dropped. Data
 * still in this process's write buffer is found on the slow path that a
 * short read takes. Every read checks the record header and, unless raw,
 * that it names the chunk asked for; store.c checks the hash of what it
 * returns (store.h, rule 4): never wrong bytes.
 */
#include "store/store.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "store/backend.h"
#include "store/packfmt.h"
#include "util.h"

#define PACK_NAME_LEN 18 /* "pack-NNNNNNNN.pack" */
#define DEFAULT_PACK_SIZE (64ull << 20)
#ifndef WBUF_SIZE
#define WBUF_SIZE (1u << 20)      /* write buffer (-D for benchmarks) */
#endif
#define WALK_BUF_SIZE (4u << 20)  /* read-ahead of store_iterate() */
#define RC_BUCKETS 256            /* read cache: hash buckets */
#define RC_MAX 256                /* read cache: open descriptors at most */

/* A pack this process created and still has business with. */
struct wpack {
	uint32_t num;
	int fd;             /* O_RDWR, holds LOCK_SH while locked */
	bool active;        /* appends go here */
	bool locked;        /* LOCK_SH held */
	bool held;          /* retired in a batch: unlock when none is open */
	bool sync_failed;   /* (synced, disk] may be lost */
	int werr;           /* the last write of buf failed with this */
	int syncing;        /* store_sync() uses fd without the mutex */
	uint64_t size;      /* logical end: disk + blen */
	uint64_t disk;      /* end of what was written to the file */
	uint64_t synced;    /* end of what fdatasync() made durable */
	uint64_t loose_end; /* end of the last append made outside a batch */
	uint64_t kicked;    /* writeback started up to here */
	char *buf;          /* the bytes of [disk, size) */
	size_t blen;
};

/* A cached read descriptor: one reference for the table, one per user. */
struct rfd {
	struct rfd *next;
	uint32_t pack;
	int fd;
	atomic_int refs;
};

struct gclock {
	uint32_t pack;
	int fd; /* O_RDONLY, holds LOCK_EX */
};

/* A location, as this backend reads it. The bytes of a struct chunk_loc
 * (pack_loc_encode) are those of today's CHUNKS records' first 16 bytes:
 * u32 pack LE, u32 len LE, u64 offset of the data LE. */
struct ploc {
	uint32_t pack;
	uint32_t len;
	uint64_t offset; /* of the data in the pack file */
};
#define PLOC_LEN 16

struct pack_store {
	struct mreg_store base; /* first: what store.c sees */
	char *dir; /* DIR/packs */
	int dirfd;
	struct store_options opt;

	/* Writing: mu guards the fields up to spare. */
	pthread_mutex_t mu;
	pthread_mutex_t sync_mu; /* one store_sync() at a time, see there */
	struct wpack **packs;
	size_t npacks, apacks;
	struct wpack *cur;
	uint32_t next;       /* next pack number to try */
	unsigned nbatch;
	bool dir_dirty;      /* a pack was created since the dir was synced */
	bool poison;         /* a sync failed while a batch was open */
	bool poison_forever; /* a sync failed on data appended outside one */
	char *spare;         /* a write buffer to reuse */

	pthread_rwlock_t rc_lock;
	struct rfd *rc[RC_BUCKETS];
	unsigned rc_n, rc_hand;
	atomic_llong rc_swept; /* second of the last pack_rc_sweep() */

	pthread_mutex_t gc_mu;
	struct gclock *gc;
	size_t ngc;

	atomic_int fault_write, fault_sync;
};

static void pack_name(uint32_t num, char buf[PACK_NAME_LEN + 1])
{
	snprintf(buf, PACK_NAME_LEN + 1, "pack-%08" PRIx32 ".pack", num);
}

/* Parses a pack file name strictly: other files in the directory (and
 * "pack-1.pack") are not packs. */
static bool parse_pack_name(const char *name, uint32_t *ret)
{
	uint32_t n = 0;
	int i;

	assert(name && ret);
	if (strlen(name) != PACK_NAME_LEN || strncmp(name, "pack-", 5) ||
	    strcmp(name + 13, ".pack"))
		return false;
	for (i = 5; i < 13; i++) {
		char c = name[i];

		if (c >= '0' && c <= '9')
			n = n << 4 | (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			n = n << 4 | (uint32_t)(c - 'a' + 10);
		else
			return false;
	}
	*ret = n;
	return true;
}

/* A container's name as a pack number: false when none can be (packs are
 * numbered 1 to UINT32_MAX). */
static bool pack_number(uint64_t container, uint32_t *ret)
{
	if (container == 0 || container > UINT32_MAX)
		return false;
	*ret = (uint32_t)container;
	return true;
}

static void pack_loc_encode(const struct ploc *l, struct chunk_loc *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->len = PLOC_LEN;
	pack_put_le32(ret->b, l->pack);
	pack_put_le32(ret->b + 4, l->len);
	pack_put_le64(ret->b + 8, l->offset);
}

/* Reads the fields of loc: false when it is not 16 bytes long. */
static bool pack_loc_fields(const struct chunk_loc *loc, struct ploc *ret)
{
	if (loc->len != PLOC_LEN)
		return false;
	ret->pack = pack_get_le32(loc->b);
	ret->len = pack_get_le32(loc->b + 4);
	ret->offset = pack_get_le64(loc->b + 8);
	return true;
}

/* Decodes a location this backend could have made: in a pack (never 0),
 * after its header and its record's, not past what a file can hold. */
static bool pack_loc_decode(const struct chunk_loc *loc, struct ploc *ret)
{
	struct ploc l;

	if (!pack_loc_fields(loc, &l) || l.pack == 0 ||
	    l.offset < PACK_HEADER_SIZE + PACK_RECORD_HEADER ||
	    l.offset > (uint64_t)INT64_MAX - l.len)
		return false;
	*ret = l;
	return true;
}

/* Writes all of len bytes at off, or fails; -errno. */
static int pwrite_full(struct pack_store *s, int fd, const void *buf,
		       size_t len, uint64_t off)
{
	const char *p = buf;
	int fault;
	ssize_t n;

	assert(s && fd >= 0 && (buf || !len));
	fault = atomic_exchange(&s->fault_write, 0);
	if (fault) {
		/* A torn write: half of it lands, then the error. */
		if (len / 2 && (n = io_pwrite(fd, p, len / 2, (off_t)off,
					      IO_PACK)) < 0)
			return (int)n;
		return -fault;
	}
	while (len) {
		n = io_pwrite(fd, p, len, (off_t)off, IO_PACK);
		if (n < 0) {
			if (n == -EINTR)
				continue;
			return (int)n;
		}
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads the record header and the data of loc: 0, -EIO when the file is
 * short, -errno. */
static int pread_record(int fd, const struct ploc *loc, uint8_t *hdr,
			void *buf)
{
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = PACK_RECORD_HEADER },
		{ .iov_base = buf, .iov_len = loc->len },
	};
	off_t off = (off_t)(loc->offset - PACK_RECORD_HEADER);
	int i = 0;
	ssize_t n;

	assert(fd >= 0 && hdr && (buf || !loc->len));
	for (;;) {
		while (i < 2 && iov[i].iov_len == 0)
			i++;
		if (i == 2)
			return 0;
		n = preadv(fd, iov + i, 2 - i, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		off += n;
		while (n > 0) {
			size_t k = (size_t)n < iov[i].iov_len ?
				   (size_t)n : iov[i].iov_len;

			iov[i].iov_base = (char *)iov[i].iov_base + k;
			iov[i].iov_len -= k;
			n -= (ssize_t)k;
			if (iov[i].iov_len == 0)
				i++;
		}
	}
}

/* The highest pack number in the directory, 0 when there is none. */
static int pack_scan_max(struct pack_store *s, uint32_t *ret)
{
	struct dirent *de;
	uint32_t n, max = 0;
	DIR *d;
	int fd;

	assert(s && ret);
	fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return log_err(-errno, "cannot open '%s'", s->dir);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return log_err(-errno, "cannot read '%s'", s->dir);
	}
	while ((de = readdir(d)))
		if (parse_pack_name(de->d_name, &n) && n > max)
			max = n;
	closedir(d);
	*ret = max;
	return 0;
}

/* ---- the read cache ---------------------------------------------------- */

static void pack_rfd_unref(struct rfd *f)
{
	assert(f);
	if (atomic_fetch_sub(&f->refs, 1) == 1) {
		close(f->fd);
		free(f);
	}
}

/* Unlinks f from the table (if it is still there); rc_lock held for
 * writing. The caller drops the table's reference. */
static bool rc_unlink(struct pack_store *s, struct rfd *f)
{
	struct rfd **pp;

	assert(s && f);
	for (pp = &s->rc[f->pack % RC_BUCKETS]; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			s->rc_n--;
			return true;
		}
	return false;
}

static void rc_drop(struct pack_store *s, struct rfd *f);

/* Drops the cached descriptors of packs that were removed (by gc, maybe
 * in another process): an open descriptor would keep their disk space
 * allocated. */
static void pack_rc_sweep(struct pack_store *s)
{
	struct rfd *dead[RC_MAX], *f;
	struct stat st;
	unsigned i, n = 0;

	assert(s);
	pthread_rwlock_rdlock(&s->rc_lock);
	for (i = 0; i < RC_BUCKETS; i++)
		for (f = s->rc[i]; f && n < RC_MAX; f = f->next)
			if (fstat(f->fd, &st) == 0 && st.st_nlink == 0) {
				atomic_fetch_add(&f->refs, 1);
				dead[n++] = f;
			}
	pthread_rwlock_unlock(&s->rc_lock);
	for (i = 0; i < n; i++) {
		rc_drop(s, dead[i]);
		pack_rfd_unref(dead[i]);
	}
}

/* pack_rc_sweep() at most once a second, from the read path: the coarse clock
 * costs nanoseconds. */
static void rc_maybe_sweep(struct pack_store *s)
{
	struct timespec ts;
	long long last;

	assert(s);
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	last = atomic_load_explicit(&s->rc_swept, memory_order_relaxed);
	if (last == (long long)ts.tv_sec ||
	    !atomic_compare_exchange_strong(&s->rc_swept, &last,
					    (long long)ts.tv_sec))
		return;
	pack_rc_sweep(s);
}

/* Takes a reference to the read descriptor of pack, opening it if needed.
 * -ENOENT when there is no such pack. */
static int rc_get(struct pack_store *s, uint32_t pack, struct rfd **ret)
{
	char name[PACK_NAME_LEN + 1];
	struct rfd *f, *nf;
	unsigned b = pack % RC_BUCKETS, i;
	int fd;

	assert(s && ret);
	rc_maybe_sweep(s);
	pthread_rwlock_rdlock(&s->rc_lock);
	for (f = s->rc[b]; f; f = f->next)
		if (f->pack == pack) {
			atomic_fetch_add(&f->refs, 1);
			pthread_rwlock_unlock(&s->rc_lock);
			*ret = f;
			return 0;
		}
	pthread_rwlock_unlock(&s->rc_lock);

	pack_name(pack, name);
	fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		return log_err(-errno, "cannot open pack '%s/%s'", s->dir,
			       name);
	}
	nf = malloc(sizeof(*nf));
	if (!nf) {
		close(fd);
		return -ENOMEM;
	}
	nf->pack = pack;
	nf->fd = fd;
	atomic_init(&nf->refs, 2);

	pthread_rwlock_wrlock(&s->rc_lock);
	for (f = s->rc[b]; f; f = f->next)
		if (f->pack == pack) {
			/* Another reader opened it meanwhile. */
			atomic_fetch_add(&f->refs, 1);
			pthread_rwlock_unlock(&s->rc_lock);
			close(fd);
			free(nf);
			*ret = f;
			return 0;
		}
	if (s->rc_n >= RC_MAX) {
		/* Evict the head of the next non-empty bucket: a clock
		 * hand is good enough for a cache of descriptors. */
		for (i = 0; i < RC_BUCKETS; i++) {
			f = s->rc[s->rc_hand++ % RC_BUCKETS];
			if (f) {
				rc_unlink(s, f);
				pack_rfd_unref(f);
				break;
			}
		}
	}
	nf->next = s->rc[b];
	s->rc[b] = nf;
	s->rc_n++;
	pthread_rwlock_unlock(&s->rc_lock);
	*ret = nf;
	return 0;
}

static void rc_drop(struct pack_store *s, struct rfd *f)
{
	bool was;

	assert(s && f);
	pthread_rwlock_wrlock(&s->rc_lock);
	was = rc_unlink(s, f);
	pthread_rwlock_unlock(&s->rc_lock);
	if (was)
		pack_rfd_unref(f);
}

static void pack_rc_drop(struct pack_store *s, uint32_t pack)
{
	struct rfd *f;

	assert(s);
	pthread_rwlock_wrlock(&s->rc_lock);
	for (f = s->rc[pack % RC_BUCKETS]; f; f = f->next)
		if (f->pack == pack)
			break;
	if (f)
		rc_unlink(s, f);
	pthread_rwlock_unlock(&s->rc_lock);
	if (f)
		pack_rfd_unref(f);
}

/* Whether the cached f still is the file named pack: gc may have removed
 * it, and a later pack may have taken its number. 0: it is; 1: it was
 * replaced (f dropped); -ENOENT: it is gone (f dropped). */
static int rc_stale(struct pack_store *s, struct rfd *f)
{
	char name[PACK_NAME_LEN + 1];
	struct stat a, b;

	assert(s && f);
	pack_name(f->pack, name);
	if (fstat(f->fd, &a) < 0)
		return 0;
	if (fstatat(s->dirfd, name, &b, 0) < 0) {
		if (errno != ENOENT)
			return 0;
		rc_drop(s, f);
		return -ENOENT;
	}
	if (a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		return 0;
	rc_drop(s, f);
	return 1;
}

/* ---- writing ----------------------------------------------------------- */

static void unlock_wpack(struct wpack *p)
{
	assert(p && p->locked);
	flock(p->fd, LOCK_UN);
	p->locked = false;
	p->held = false;
}

static void release_buf(struct pack_store *s, struct wpack *p)
{
	assert(s && p && !p->blen);
	if (!p->buf)
		return;
	if (!s->spare)
		s->spare = p->buf;
	else
		free(p->buf);
	p->buf = NULL;
}

/* Takes p off appending. Its lock stays while a batch is open, as an
 * index transaction in that batch may name p's chunks. */
static void retire(struct pack_store *s, struct wpack *p)
{
	assert(s && p);
	if (!p->active)
		return;
	p->active = false;
	if (s->cur == p)
		s->cur = NULL;
	if (s->nbatch)
		p->held = true;
	else
		unlock_wpack(p);
}

static bool pack_done(const struct pack_store *s, const struct wpack *p)
{
	assert(s && p);
	return !p->active && !p->locked && !p->blen && !p->syncing &&
	       (p->synced >= p->disk || !s->opt.sync || p->sync_failed);
}

/* Forgets the packs this process has no more business with. */
static void sweep(struct pack_store *s)
{
	struct wpack *p;
	size_t i = 0;

	assert(s);
	while (i < s->npacks) {
		p = s->packs[i];
		if (!pack_done(s, p)) {
			i++;
			continue;
		}
		s->packs[i] = s->packs[--s->npacks];
		release_buf(s, p);
		close(p->fd);
		free(p);
	}
}

/* Gives up the unwritten buffer of a retired pack when nobody can name its
 * chunks any more: every batch open at the failure ended, and nothing in
 * it was appended outside a batch. */
static void maybe_drop_buf(struct pack_store *s, struct wpack *p)
{
	assert(s && p);
	if (p->active || !p->blen || s->nbatch || p->loose_end > p->disk)
		return;
	p->blen = 0;
	p->size = p->disk;
	p->werr = 0;
	release_buf(s, p);
}

/* Starts the kernel writing what we wrote, a few MiB at a time, so that
 * the fdatasync() before a commit finds little left to write: a large file
 * then costs its disk time while it is being written, not all of it at
 * close(). Durability still comes from store_sync() alone. */
#define KICK_BYTES (8u << 20)

static void kick_writeback(struct pack_store *s, struct wpack *p)
{
	assert(s && p);
	if (!s->opt.sync || p->disk - p->kicked < KICK_BYTES)
		return;
	if (sync_file_range(p->fd, (off_t)p->kicked,
			    (off_t)(p->disk - p->kicked),
			    SYNC_FILE_RANGE_WRITE) == 0)
		p->kicked = p->disk;
}

/* Writes p's buffer at p->disk. A failure cuts the file back to the last
 * whole record, so that no record ever follows a torn one, retires p and
 * keeps the buffer for another try. */
static int pack_flush(struct pack_store *s, struct wpack *p)
{
	char name[PACK_NAME_LEN + 1];
	int r, k;

	assert(s && p);
	if (!p->blen)
		return 0;
	r = pwrite_full(s, p->fd, p->buf, p->blen, p->disk);
	if (r == 0) {
		p->disk += p->blen;
		p->blen = 0;
		p->werr = 0;
		if (!p->active)
			release_buf(s, p);
		kick_writeback(s, p);
		return 0;
	}
	pack_name(p->num, name);
	k = io_ftruncate(p->fd, (off_t)p->disk, IO_PACK);
	if (k < 0)
		log_err(k, "cannot cut pack '%s/%s' back to %" PRIu64
			" bytes", s->dir, name, p->disk);
	p->werr = r;
	retire(s, p);
	maybe_drop_buf(s, p);
	return log_err(r, "cannot write to pack '%s/%s'", s->dir, name);
}

/* Writes the buffers of retired packs whose write failed; the first error
 * is returned. */
static int flush_retired(struct pack_store *s)
{
	size_t i;
	int r = 0, k;

	assert(s);
	for (i = 0; i < s->npacks; i++)
		if (!s->packs[i]->active && s->packs[i]->blen) {
			k = pack_flush(s, s->packs[i]);
			if (k < 0 && !r)
				r = k;
		}
	return r;
}

static int add_wpack(struct pack_store *s, struct wpack *p)
{
	struct wpack **np;
	size_t n;

	assert(s && p);
	if (s->npacks == s->apacks) {
		n = s->apacks ? 2 * s->apacks : 8;
		np = reallocarray(s->packs, n, sizeof(*np));
		if (!np)
			return -ENOMEM;
		s->packs = np;
		s->apacks = n;
	}
	s->packs[s->npacks++] = p;
	return 0;
}

/* Creates the next pack, locked, with its header written, and makes it
 * the active one. */
static int new_pack(struct pack_store *s, struct wpack **ret)
{
	char name[PACK_NAME_LEN + 1];
	uint8_t hdr[PACK_HEADER_SIZE];
	struct stat a, b;
	struct wpack *p;
	uint32_t num, max;
	int fd, r;

	assert(s && ret && !s->cur);
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (s->spare) {
		p->buf = s->spare;
		s->spare = NULL;
	} else {
		p->buf = malloc(WBUF_SIZE);
		if (!p->buf) {
			free(p);
			return -ENOMEM;
		}
	}
	r = add_wpack(s, p);
	if (r < 0)
		goto fail;
	for (;;) {
		num = s->next;
		if (num == 0) {
			r = log_err(-EOVERFLOW, "no pack number left in '%s'",
				    s->dir);
			goto fail_remove;
		}
		s->next++;
		pack_name(num, name);
		fd = io_openat(s->dirfd, name,
			       O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600,
			       IO_PACK);
		if (fd == -EEXIST) {
			/* Another process is ahead of us: jump past it. */
			r = pack_scan_max(s, &max);
			if (r < 0)
				goto fail_remove;
			if (max >= s->next && max != UINT32_MAX)
				s->next = max + 1;
			continue;
		}
		if (fd < 0) {
			r = log_err(fd, "cannot create pack '%s/%s'",
				    s->dir, name);
			goto fail_remove;
		}
		/* gc may have found the empty file and locked it (to remove
		 * it) before we locked it: never write into that one. */
		if (fstat(fd, &a) < 0 || fstatat(s->dirfd, name, &b, 0) < 0 ||
		    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
			close(fd);
			continue;
		}
		if (flock(fd, LOCK_SH | LOCK_NB) < 0) {
			/* Still empty and ours: leave no junk behind. */
			unlinkat(s->dirfd, name, 0);
			close(fd);
			continue;
		}
		if (fstatat(s->dirfd, name, &b, 0) < 0 ||
		    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
			close(fd);
			continue;
		}
		break;
	}
	pack_header_encode(hdr, num);
	r = pwrite_full(s, fd, hdr, sizeof(hdr), 0);
	if (r < 0) {
		unlinkat(s->dirfd, name, 0);
		close(fd);
		r = log_err(r, "cannot create pack '%s/%s'", s->dir, name);
		goto fail_remove;
	}
	p->num = num;
	p->fd = fd;
	p->active = true;
	p->locked = true;
	p->size = p->disk = PACK_HEADER_SIZE;
	s->cur = p;
	s->dir_dirty = true;
	*ret = p;
	return 0;

fail_remove:
	s->npacks--;
fail:
	if (s->spare)
		free(p->buf);
	else
		s->spare = p->buf;
	free(p);
	return r;
}

static struct pack_store *ps(struct mreg_store *ms)
{
	return (struct pack_store *)ms;
}

static int pack_put(struct mreg_store *ms, const struct mreg_id *id,
		    const void *data, uint32_t len, struct chunk_loc *ret)
{
	struct pack_store *s = ps(ms);
	uint64_t rec = (uint64_t)PACK_RECORD_HEADER + len;
	uint8_t hdr[PACK_RECORD_HEADER];
	struct ploc loc;
	struct wpack *p;
	int r, k;

	assert(s && id && (data || !len) && ret);
	pack_record_encode(hdr, id, len);
	pthread_mutex_lock(&s->mu);
	p = s->cur;
	if (p && p->size > PACK_HEADER_SIZE &&
	    p->size + rec > s->opt.pack_size) {
		r = pack_flush(s, p);
		retire(s, p);
		/* a retired pack written out needs no buffer: without this
		   every pack of a long batch kept 1 MiB until its end */
		if (!p->blen)
			release_buf(s, p);
		sweep(s);
		p = NULL;
		if (r < 0)
			goto out;
	}
	if (!p) {
		/* Older buffers first: this bounds what a full disk can
		 * leave waiting in memory to about one buffer. */
		r = flush_retired(s);
		if (r < 0)
			goto out;
		sweep(s);
		r = new_pack(s, &p);
		if (r < 0)
			goto out;
	}
	if (rec <= WBUF_SIZE) {
		if (p->blen + rec > WBUF_SIZE) {
			r = pack_flush(s, p);
			if (r < 0)
				goto out;
		}
		memcpy(p->buf + p->blen, hdr, sizeof(hdr));
		if (len)
			memcpy(p->buf + p->blen + sizeof(hdr), data, len);
		p->blen += rec;
	} else {
		/* Too big to buffer: written straight to the file. */
		r = pack_flush(s, p);
		if (r < 0)
			goto out;
		r = pwrite_full(s, p->fd, hdr, sizeof(hdr), p->disk);
		if (r == 0)
			r = pwrite_full(s, p->fd, data, len,
					p->disk + sizeof(hdr));
		if (r < 0) {
			char name[PACK_NAME_LEN + 1];

			pack_name(p->num, name);
			k = io_ftruncate(p->fd, (off_t)p->disk, IO_PACK);
			if (k < 0)
				log_err(k, "cannot cut pack '%s/%s' back",
					s->dir, name);
			retire(s, p);
			r = log_err(r, "cannot write to pack '%s/%s'", s->dir,
				    name);
			goto out;
		}
		p->disk += rec;
		kick_writeback(s, p);
	}
	loc.pack = p->num;
	loc.len = len;
	loc.offset = p->size + PACK_RECORD_HEADER;
	pack_loc_encode(&loc, ret);
	p->size += rec;
	if (!s->nbatch)
		p->loose_end = p->size;
	r = 0;
out:
	pthread_mutex_unlock(&s->mu);
	return r;
}

static void pack_batch_begin(struct mreg_store *ms)
{
	struct pack_store *s = ps(ms);

	pthread_mutex_lock(&s->mu);
	s->nbatch++;
	pthread_mutex_unlock(&s->mu);
}

static void pack_batch_end(struct mreg_store *ms)
{
	struct pack_store *s = ps(ms);
	size_t i;

	pthread_mutex_lock(&s->mu);
	if (s->nbatch && --s->nbatch == 0) {
		for (i = 0; i < s->npacks; i++) {
			if (s->packs[i]->held)
				unlock_wpack(s->packs[i]);
			maybe_drop_buf(s, s->packs[i]);
		}
		s->poison = false;
		sweep(s);
	}
	pthread_mutex_unlock(&s->mu);
}

/* pack_sync() holds sync_mu throughout, so that two syncs never run
 * fdatasync() on one pack at the same time: the kernel reports a writeback
 * error to one of them only, and the other would call lost data durable.
 * The append mutex is not held during fdatasync(), so appends go on. */
static int pack_sync(struct mreg_store *ms)
{
	struct pack_store *s = ps(ms);
	struct wpack **todo = NULL;
	uint64_t *upto = NULL;
	size_t i, n = 0;
	bool dir = false;
	int r = 0, k, *res = NULL;

	pthread_mutex_lock(&s->sync_mu);
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->npacks; i++) {
		k = pack_flush(s, s->packs[i]);
		if (k < 0 && !r)
			r = k;
	}
	if (!s->opt.sync)
		goto out;
	todo = calloc(s->npacks + 1, sizeof(*todo));
	upto = calloc(s->npacks + 1, sizeof(*upto));
	res = calloc(s->npacks + 1, sizeof(*res));
	if (!todo || !upto || !res) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < s->npacks; i++) {
		struct wpack *p = s->packs[i];

		if (p->disk > p->synced && !p->sync_failed) {
			p->syncing++;
			todo[n] = p;
			upto[n++] = p->disk;
		}
	}
	dir = s->dir_dirty;
	s->dir_dirty = false;
	pthread_mutex_unlock(&s->mu);

	for (i = 0; i < n; i++) {
		res[i] = io_fdatasync(todo[i]->fd, IO_PACK);
		k = atomic_exchange(&s->fault_sync, 0);
		if (k)
			res[i] = -k;
	}
	/* The names of new packs must be durable too. */
	k = dir ? io_fsync(s->dirfd, IO_DIR) : 0;
	if (k < 0)
		log_err(k, "cannot sync '%s'", s->dir);

	pthread_mutex_lock(&s->mu);
	if (k < 0) {
		s->dir_dirty = true;
		if (!r)
			r = -EIO;
	}
	for (i = 0; i < n; i++) {
		struct wpack *p = todo[i];
		char name[PACK_NAME_LEN + 1];

		p->syncing--;
		if (!res[i]) {
			if (upto[i] > p->synced)
				p->synced = upto[i];
			continue;
		}
		pack_name(p->num, name);
		log_err(res[i], "cannot sync pack '%s/%s'", s->dir, name);
		p->sync_failed = true;
		retire(s, p);
		if (p->loose_end > p->synced)
			s->poison_forever = true;
		else if (s->nbatch)
			s->poison = true;
		if (!r)
			r = -EIO;
	}
out:
	if (!r && (s->poison || s->poison_forever))
		r = -EIO;
	sweep(s);
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_unlock(&s->sync_mu);
	free(todo);
	free(upto);
	free(res);
	return r;
}

/* ---- reading ----------------------------------------------------------- */

/* The slow path of a read of one of our own packs: its data may still be
 * in a write buffer, or under a write that the mutex waits for. Returns
 * 1 with *r set when pack is ours, 0 when it is not. */
static int read_own(struct pack_store *s, int fd, const struct ploc *loc,
		    const struct mreg_id *id, void *buf, const char **why,
		    int *r)
{
	uint8_t hdr[PACK_RECORD_HEADER];
	struct wpack *p = NULL;
	uint64_t start;
	size_t i;

	assert(s && fd >= 0 && loc && (buf || !loc->len) && why && r);
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->npacks; i++)
		if (s->packs[i]->num == loc->pack) {
			p = s->packs[i];
			break;
		}
	if (!p) {
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	start = loc->offset - PACK_RECORD_HEADER;
	if (p->blen && start >= p->disk &&
	    loc->offset + loc->len <= p->size) {
		memcpy(hdr, p->buf + (start - p->disk), sizeof(hdr));
		if (loc->len)
			memcpy(buf, p->buf + (loc->offset - p->disk),
			       loc->len);
		*r = 0;
	} else {
		*r = pread_record(fd, loc, hdr, buf);
		if (*r == -EIO)
			*why = "short read";
	}
	pthread_mutex_unlock(&s->mu);
	if (*r == 0) {
		*why = pack_record_check(hdr, loc->len, id);
		if (*why)
			*r = -EIO;
	}
	return 1;
}

/* Reads the chunk at loc into buf; its record must name id unless id is
 * NULL. */
static int pack_get(struct mreg_store *ms, const struct chunk_loc *cloc,
		    const struct mreg_id *id, void *buf)
{
	struct pack_store *s = ps(ms);
	char name[PACK_NAME_LEN + 1];
	uint8_t hdr[PACK_RECORD_HEADER];
	const char *why = "short read";
	struct ploc l, *loc = &l;
	struct rfd *f = NULL;
	int r, k, tries;

	assert(s && cloc);
	if (!pack_loc_decode(cloc, &l))
		return -EIO; /* store.c said so, having asked pack_loc_span() */
	assert(buf || !loc->len);
	r = io_fault(IO_FAULT_READ); /* 0 but in a test build */
	if (r < 0)
		return log_err(r, "cannot read pack '%s/pack-%08" PRIx32
			       ".pack' (injected fault)", s->dir, loc->pack);
	for (tries = 0; tries < 2; tries++) {
		r = rc_get(s, loc->pack, &f);
		if (r < 0)
			return r;
		r = pread_record(f->fd, loc, hdr, buf);
		if (r == 0) {
			why = pack_record_check(hdr, loc->len, id);
			if (!why) {
				pack_rfd_unref(f);
				return 0;
			}
			r = -EIO;
		} else if (r == -EIO) {
			why = "short read";
		}
		if (tries == 0 && read_own(s, f->fd, loc, id, buf, &why, &r) &&
		    r == 0) {
			pack_rfd_unref(f);
			return 0;
		}
		/* gc may have removed the pack (emptying it: see
		 * store_delete), and a new pack may have taken its
		 * number: look again, once. */
		k = rc_stale(s, f);
		pack_rfd_unref(f);
		if (k < 0)
			return k;
		if (k == 0)
			break;
	}
	if (r == 0)
		return 0;
	if (r != -EIO)
		return log_err(r, "cannot read pack '%s/pack-%08" PRIx32
			       ".pack'", s->dir, loc->pack);
	pack_name(loc->pack, name);
	return log_err(-EIO, "bad chunk at offset %" PRIu64 " of pack "
		       "'%s/%s' (%s)", loc->offset, s->dir, name, why);
}

static int pack_loc_span(UNUSED const struct mreg_store *ms,
			 const struct chunk_loc *loc, struct store_span *ret)
{
	struct ploc l;

	if (!pack_loc_decode(loc, &l))
		return -EIO;
	ret->container = l.pack;
	ret->off = l.offset - PACK_RECORD_HEADER;
	ret->len = l.len;
	ret->size = PACK_RECORD_HEADER + (uint64_t)l.len;
	return 0;
}

/* "pack 00000003, offset 4096": what fsck said before locations were
 * opaque, and says still. */
static const char *pack_loc_name(UNUSED const struct mreg_store *ms,
				 const struct chunk_loc *loc, char *buf,
				 size_t size)
{
	struct ploc l;

	if (!pack_loc_fields(loc, &l))
		snprintf(buf, size, "a location of %u bytes, not a pack's",
			 loc->len);
	else
		snprintf(buf, size, "pack %08" PRIx32 ", offset %" PRIu64,
			 l.pack, l.offset);
	return buf;
}

/* ---- packs as wholes: listing, walking, gc locks ------------------------ */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The numbers of all packs, sorted; *ret malloc'ed. */
static int list_numbers(struct pack_store *s, uint32_t **ret, size_t *ret_n)
{
	uint32_t *v = NULL, *nv, num;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd;

	assert(s && ret && ret_n);
	fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return log_err(-errno, "cannot open '%s'", s->dir);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return log_err(-errno, "cannot read '%s'", s->dir);
	}
	while ((de = readdir(d))) {
		if (!parse_pack_name(de->d_name, &num))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			nv = reallocarray(v, cap, sizeof(*v));
			if (!nv) {
				closedir(d);
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n++] = num;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_u32);
	*ret = v;
	*ret_n = n;
	return 0;
}

/* The descriptor of our gc lock on pack, or -1; gc_mu held. */
static ssize_t gc_find(struct pack_store *s, uint32_t pack)
{
	size_t i;

	assert(s);
	for (i = 0; i < s->ngc; i++)
		if (s->gc[i].pack == pack)
			return (ssize_t)i;
	return -1;
}

/* Opens pack and takes LOCK_EX|LOCK_NB on the new open file description,
 * checking that the name still is that file. */
static int lock_ex(struct pack_store *s, uint32_t pack, int *ret_fd)
{
	char name[PACK_NAME_LEN + 1];
	struct stat a, b;
	int fd;

	assert(s && ret_fd);
	pack_name(pack, name);
	fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		return log_err(-errno, "cannot open pack '%s/%s'", s->dir,
			       name);
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		close(fd);
		if (e == EWOULDBLOCK)
			return -EBUSY;
		return log_err(-e, "cannot lock pack '%s/%s'", s->dir, name);
	}
	if (fstat(fd, &a) < 0 || fstatat(s->dirfd, name, &b, 0) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		close(fd);
		return -ENOENT;
	}
	*ret_fd = fd;
	return 0;
}

static bool pack_busy(struct pack_store *s, uint32_t pack)
{
	bool ours;
	int fd, r;

	assert(s);
	pthread_mutex_lock(&s->gc_mu);
	ours = gc_find(s, pack) >= 0;
	pthread_mutex_unlock(&s->gc_mu);
	if (ours)
		return false;
	r = lock_ex(s, pack, &fd);
	if (r < 0)
		return r == -EBUSY;
	close(fd);
	return false;
}

static int pack_containers(struct mreg_store *ms,
			   int (*fn)(void *arg, const struct store_container *c),
			   void *arg)
{
	struct pack_store *s = ps(ms);
	char name[PACK_NAME_LEN + 1];
	struct store_container c;
	uint32_t *v;
	struct stat st;
	size_t i, n;
	int r;

	pack_rc_sweep(s);
	r = list_numbers(s, &v, &n);
	if (r < 0)
		return r;
	for (i = 0; i < n && r == 0; i++) {
		pack_name(v[i], name);
		if (fstatat(s->dirfd, name, &st, 0) < 0)
			continue; /* removed meanwhile */
		c = (struct store_container){ .id = v[i],
			.size = (uint64_t)st.st_size, .base = PACK_HEADER_SIZE,
			.busy = pack_busy(s, v[i]) };
		r = fn(arg, &c);
	}
	free(v);
	return r;
}

/* pack_iterate()'s reads of one pack file and its callback. */
struct walk {
	int fd;
	uint32_t pack;
	int (*fn)(void *arg, const struct mreg_id *id,
		  const struct chunk_loc *loc, const void *data, uint32_t len);
	void *arg;
	int err; /* of pread */
};

static ssize_t walk_read(void *arg, uint64_t off, void *buf, size_t n)
{
	struct walk *w = arg;
	ssize_t k;

	do
		k = pread(w->fd, buf, n, (off_t)off);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		w->err = -errno;
	return k < 0 ? w->err : k;
}

static int walk_one(void *arg, const struct mreg_id *id, uint64_t data_off,
		    const void *data, uint32_t len)
{
	struct walk *w = arg;
	struct ploc loc = { .pack = w->pack, .len = len, .offset = data_off };
	struct chunk_loc cloc;

	pack_loc_encode(&loc, &cloc);
	return w->fn(w->arg, id, &cloc, data, len);
}

static int pack_iterate(struct mreg_store *ms, uint64_t container,
			int (*fn)(void *arg, const struct mreg_id *id,
				  const struct chunk_loc *loc,
				  const void *data, uint32_t len),
			void *arg)
{
	struct pack_store *s = ps(ms);
	char name[PACK_NAME_LEN + 1];
	struct walk w = { .fd = -1, .fn = fn, .arg = arg };
	struct pack_source src = { .read = walk_read, .arg = &w,
				   .window = WALK_BUF_SIZE };
	const char *why;
	uint64_t off = 0;
	struct stat st;
	size_t i;
	int r;

	if (!pack_number(container, &w.pack))
		return -ENOENT;
	/* Our own latest records may still sit in a write buffer. */
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->npacks; i++)
		if (s->packs[i]->num == w.pack)
			pack_flush(s, s->packs[i]);
	pthread_mutex_unlock(&s->mu);

	pack_name(w.pack, name);
	w.fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (w.fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		return log_err(-errno, "cannot open pack '%s/%s'", s->dir,
			       name);
	}
	if (fstat(w.fd, &st) < 0) {
		r = log_err(-errno, "cannot stat pack '%s/%s'", s->dir, name);
		close(w.fd);
		return r;
	}
	src.size = (uint64_t)st.st_size;
	posix_fadvise(w.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	r = pack_walk(&src, w.pack, walk_one, &w, &why, &off);
	close(w.fd);
	if (w.err)
		return log_err(w.err, "cannot read pack '%s/%s'", s->dir, name);
	if (r == -EIO && why)
		return log_err(-EIO, "bad pack '%s/%s' at offset %" PRIu64
			       " (%s)", s->dir, name, off, why);
	return r;
}

static int pack_claim(struct mreg_store *ms, uint64_t container)
{
	struct pack_store *s = ps(ms);
	struct gclock *ng;
	uint32_t pack;
	int fd, r;

	if (!pack_number(container, &pack))
		return -ENOENT;
	pthread_mutex_lock(&s->gc_mu);
	if (gc_find(s, pack) >= 0) {
		pthread_mutex_unlock(&s->gc_mu);
		return 0;
	}
	r = lock_ex(s, pack, &fd);
	if (r < 0)
		goto out;
	ng = reallocarray(s->gc, s->ngc + 1, sizeof(*ng));
	if (!ng) {
		close(fd);
		r = -ENOMEM;
		goto out;
	}
	s->gc = ng;
	s->gc[s->ngc].pack = pack;
	s->gc[s->ngc].fd = fd;
	s->ngc++;
out:
	pthread_mutex_unlock(&s->gc_mu);
	return r;
}

/* Drops our gc lock on pack; gc_mu held. */
static void gc_release(struct pack_store *s, uint32_t pack)
{
	ssize_t i;

	assert(s);
	i = gc_find(s, pack);
	if (i < 0)
		return;
	close(s->gc[i].fd);
	s->gc[i] = s->gc[--s->ngc];
}

static void pack_unclaim(struct mreg_store *ms, uint64_t container)
{
	struct pack_store *s = ps(ms);
	uint32_t pack;

	if (!pack_number(container, &pack))
		return;
	pthread_mutex_lock(&s->gc_mu);
	gc_release(s, pack);
	pthread_mutex_unlock(&s->gc_mu);
}

/* A read-write descriptor of pack name, which must be the file locked
 * through lockfd (gc's lock descriptors are read-only, as are the probes
 * of pack_containers). -errno. */
static int open_locked_rw(struct pack_store *s, const char *name, int lockfd)
{
	struct stat a, b;
	int fd;

	assert(s && name && lockfd >= 0);
	fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &a) < 0 || fstat(lockfd, &b) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		close(fd);
		return -ENOENT;
	}
	return fd;
}

static int pack_delete(struct mreg_store *ms, uint64_t container)
{
	struct pack_store *s = ps(ms);
	char name[PACK_NAME_LEN + 1];
	uint32_t pack;
	ssize_t i;
	int fd = -1, rw = -1, r = 0;

	if (!pack_number(container, &pack))
		return -ENOENT;
	pack_name(pack, name);
	pthread_mutex_lock(&s->gc_mu);
	/* Under our own gc lock already, or a fresh one. */
	i = gc_find(s, pack);
	if (i < 0)
		r = lock_ex(s, pack, &fd);
	if (r == 0)
		rw = open_locked_rw(s, name, i < 0 ? fd : s->gc[i].fd);
	if (r == 0 && unlinkat(s->dirfd, name, 0) < 0)
		r = log_err(-errno, "cannot remove pack '%s/%s'", s->dir, name);
	/* Another process may still hold the file open (a cached read
	 * descriptor, a retired pack not yet synced): emptied, its blocks
	 * come back now and not when the last descriptor closes. A reader
	 * of it then finds it gone and looks its chunk up again. */
	if (r == 0 && (rw < 0 || ftruncate(rw, 0) < 0))
		log_warn(rw < 0 ? rw : -errno, "cannot empty removed pack "
			 "'%s/%s'", s->dir, name);
	if (r == 0)
		gc_release(s, pack);
	if (rw >= 0)
		close(rw);
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&s->gc_mu);
	if (r == 0)
		pack_rc_drop(s, pack);
	return r;
}

static int pack_cut(struct mreg_store *ms, uint64_t container, uint64_t size)
{
	struct pack_store *s = ps(ms);
	char name[PACK_NAME_LEN + 1];
	struct stat st;
	uint32_t pack;
	ssize_t i;
	int r = 0, fd = -1;

	if (!pack_number(container, &pack) || size < PACK_HEADER_SIZE ||
	    size > (uint64_t)INT64_MAX)
		return -EINVAL;
	pack_name(pack, name);
	pthread_mutex_lock(&s->gc_mu);
	i = gc_find(s, pack);
	if (i < 0)
		r = -EINVAL; /* only under our gc lock: nobody appends */
	else if ((fd = open_locked_rw(s, name, s->gc[i].fd)) < 0)
		r = log_err(fd, "cannot open pack '%s/%s'", s->dir, name);
	else if (fstat(fd, &st) < 0)
		r = log_err(-errno, "cannot stat pack '%s/%s'", s->dir, name);
	else if ((uint64_t)st.st_size > size &&
		 (r = io_ftruncate(fd, (off_t)size, IO_PACK)) < 0)
		log_err(r, "cannot cut pack '%s/%s' to %" PRIu64 " bytes",
			s->dir, name, size);
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&s->gc_mu);
	return r;
}

static int pack_container_size(struct mreg_store *ms, uint64_t container,
			       uint64_t *ret)
{
	struct pack_store *s = ps(ms);
	char name[PACK_NAME_LEN + 1];
	struct stat st;
	uint32_t pack;
	ssize_t i;
	int r;

	if (!pack_number(container, &pack))
		return -ENOENT;
	pack_name(pack, name);
	pthread_mutex_lock(&s->gc_mu);
	i = gc_find(s, pack);
	r = i >= 0 ? fstat(s->gc[i].fd, &st) : fstatat(s->dirfd, name, &st, 0);
	if (r < 0)
		r = -errno;
	pthread_mutex_unlock(&s->gc_mu);
	if (r < 0)
		return r == -ENOENT ? r : log_err(r, "cannot stat pack '%s/%s'",
						  s->dir, name);
	*ret = (uint64_t)st.st_size;
	return 0;
}

static int pack_bytes(struct mreg_store *ms, uint64_t *ret)
{
	struct pack_store *s = ps(ms);
	char name[PACK_NAME_LEN + 1];
	uint64_t sum = 0;
	struct stat st;
	uint32_t *v;
	size_t i, n;
	int r;

	pack_rc_sweep(s);
	r = list_numbers(s, &v, &n);
	if (r < 0)
		return r;
	for (i = 0; i < n; i++) {
		pack_name(v[i], name);
		if (fstatat(s->dirfd, name, &st, 0) == 0)
			sum += (uint64_t)st.st_size;
	}
	free(v);
	*ret = sum;
	return 0;
}

static int pack_room(struct mreg_store *ms, uint64_t *ret)
{
	struct pack_store *s = ps(ms);
	struct statvfs st;

	if (fstatvfs(s->dirfd, &st) < 0)
		return -errno;
	*ret = (uint64_t)st.f_bavail * st.f_frsize;
	return 0;
}

static unsigned pack_caps(UNUSED const struct mreg_store *ms)
{
	return STORE_CAN_CUT | STORE_LOCAL;
}

/* The flock(2) of a pack protects what a batch put in it: nothing to
 * check. */
static int pack_batch_check(UNUSED struct mreg_store *ms)
{
	return 0;
}

static int pack_maint(UNUSED struct mreg_store *ms)
{
	return 0;
}

void pack_inject_fault(struct mreg_store *ms, enum store_fault f, int err)
{
	struct pack_store *s = ps(ms);

	if (!ms || ms->be != &pack_store_backend || err <= 0)
		return;
	if (f == STORE_FAULT_WRITE)
		atomic_store(&s->fault_write, err);
	else if (f == STORE_FAULT_SYNC)
		atomic_store(&s->fault_sync, err);
}

/* ---- opening and closing ------------------------------------------------ */

static int pack_open(const struct store_options *opt, struct mreg_store **ret)
{
	const char *dir = opt->dir;
	struct pack_store *s;
	uint32_t max;
	bool made = false;
	int r, pfd;

	if (!dir || !*dir)
		return log_err(-EINVAL, "the pack store needs a directory");
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base.be = &pack_store_backend;
	s->dirfd = -1;
	s->opt = *opt;
	s->opt.backend = "pack";
	s->opt.dir = NULL; /* not kept: the caller's */
	s->opt.backend_cfg = NULL;
	if (!s->opt.pack_size)
		s->opt.pack_size = DEFAULT_PACK_SIZE;
	if (asprintf(&s->dir, "%s/packs", dir) < 0) {
		s->dir = NULL;
		r = -ENOMEM;
		goto fail;
	}
	if (mkdir(s->dir, 0700) == 0)
		made = true;
	else if (errno != EEXIST) {
		r = log_err(-errno, "cannot create '%s'", s->dir);
		goto fail;
	}
	s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = log_err(-errno, "cannot open '%s'", s->dir);
		goto fail;
	}
	if (made && s->opt.sync) {
		/* The new directory's name must survive a crash too. */
		pfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = pfd < 0 ? -errno : io_fsync(pfd, IO_DIR);
		if (r < 0) {
			log_err(r, "cannot sync '%s'", dir);
			if (pfd >= 0)
				close(pfd);
			goto fail;
		}
		close(pfd);
	}
	r = pack_scan_max(s, &max);
	if (r < 0)
		goto fail;
	/* Pack 0 is never used, so that a zeroed chunk_loc names nothing. */
	s->next = max + 1; /* 0 after the last number: none left */
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->sync_mu, NULL);
	pthread_mutex_init(&s->gc_mu, NULL);
	pthread_rwlock_init(&s->rc_lock, NULL);
	atomic_init(&s->fault_write, 0);
	atomic_init(&s->fault_sync, 0);
	atomic_init(&s->rc_swept, 0);
	*ret = &s->base;
	return 0;

fail:
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->dir);
	free(s);
	return r;
}

static void pack_close(struct mreg_store *ms)
{
	struct pack_store *s = ps(ms);
	struct rfd *f;
	size_t i;

	if (!s)
		return;
	/* Appended data is written (not synced), so that it is not lost
	 * by closing alone. */
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->npacks; i++) {
		pack_flush(s, s->packs[i]);
		s->packs[i]->blen = 0;
		free(s->packs[i]->buf);
		close(s->packs[i]->fd);
		free(s->packs[i]);
	}
	free(s->packs);
	free(s->spare);
	pthread_mutex_unlock(&s->mu);
	for (i = 0; i < RC_BUCKETS; i++)
		while ((f = s->rc[i])) {
			s->rc[i] = f->next;
			pack_rfd_unref(f);
		}
	for (i = 0; i < s->ngc; i++)
		close(s->gc[i].fd);
	free(s->gc);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->sync_mu);
	pthread_mutex_destroy(&s->gc_mu);
	pthread_rwlock_destroy(&s->rc_lock);
	close(s->dirfd);
	free(s->dir);
	free(s);
}

const struct store_backend pack_store_backend = {
	.name = "pack",
	.open = pack_open,
	.close = pack_close,
	.caps = pack_caps,
	.batch_begin = pack_batch_begin,
	.batch_end = pack_batch_end,
	.put = pack_put,
	.sync = pack_sync,
	.batch_check = pack_batch_check,
	.get = pack_get,
	.loc_span = pack_loc_span,
	.loc_name = pack_loc_name,
	.prefetch = NULL,
	.containers = pack_containers,
	.iterate = pack_iterate,
	.claim = pack_claim,
	.unclaim = pack_unclaim,
	.container_size = pack_container_size,
	.del = pack_delete,
	.cut = pack_cut,
	.bytes = pack_bytes,
	.room = pack_room,
	.maint = pack_maint,
};
