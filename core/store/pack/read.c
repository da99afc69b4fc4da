/* read.c — the pack backend's reading (see pack.c for the packs on
 * disk): the cache of read descriptors, reads of a chunk, and walks over
 * a pack's records.
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
#include "pack.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "store/packfmt.h"
#include "util.h"

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

/* ---- the read cache ---------------------------------------------------- */

void pack_rfd_unref(struct rfd *f)
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
void pack_rc_sweep(struct pack_store *s)
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

	fd = pack_open_ro(s, pack, name);
	if (fd < 0)
		return fd;
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

void pack_rc_drop(struct pack_store *s, uint32_t pack)
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
int pack_get(struct mreg_store *ms, const struct chunk_loc *cloc,
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

int pack_loc_span(UNUSED const struct mreg_store *ms,
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
const char *pack_loc_name(UNUSED const struct mreg_store *ms,
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

int pack_iterate(struct mreg_store *ms, uint64_t container,
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

	w.fd = pack_open_ro(s, w.pack, name);
	if (w.fd < 0)
		return w.fd;
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
