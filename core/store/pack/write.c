/* write.c — the pack backend's writing (see pack.c for the packs on
 * disk and their locks): appending to this process's packs, batches and
 * store_sync().
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
 */
#include "pack.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "store/packfmt.h"

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
int pack_flush(struct pack_store *s, struct wpack *p)
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

/* Creates the file of the next free pack number, holding LOCK_SH, with
 * its header written: the descriptor, its number into *ret_num and its
 * name into name; -EOVERFLOW when no number is left, -errno (logged). */
static int create_pack_file(struct pack_store *s, uint32_t *ret_num,
			    char name[PACK_NAME_LEN + 1])
{
	uint8_t hdr[PACK_HEADER_SIZE];
	struct stat a, b;
	uint32_t num, max;
	int fd, r;

	assert(s && ret_num && name);
	for (;;) {
		num = s->next;
		if (num == 0)
			return log_err(-EOVERFLOW, "no pack number left in "
				       "'%s'", s->dir);
		s->next++;
		pack_name(num, name);
		fd = io_openat(s->dirfd, name,
			       O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600,
			       IO_PACK);
		if (fd == -EEXIST) {
			/* Another process is ahead of us: jump past it. */
			r = pack_scan_max(s, &max);
			if (r < 0)
				return r;
			if (max >= s->next && max != UINT32_MAX)
				s->next = max + 1;
			continue;
		}
		if (fd < 0)
			return log_err(fd, "cannot create pack '%s/%s'",
				       s->dir, name);
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
		return log_err(r, "cannot create pack '%s/%s'", s->dir, name);
	}
	*ret_num = num;
	return fd;
}

/* Creates the next pack, locked, with its header written, and makes it
 * the active one. */
static int new_pack(struct pack_store *s, struct wpack **ret)
{
	char name[PACK_NAME_LEN + 1];
	struct wpack *p;
	uint32_t num = 0;
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
	fd = create_pack_file(s, &num, name);
	if (fd < 0) {
		r = fd;
		s->npacks--;
		goto fail;
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

fail:
	if (s->spare)
		free(p->buf);
	else
		s->spare = p->buf;
	free(p);
	return r;
}

int pack_put(struct mreg_store *ms, const struct mreg_id *id,
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

void pack_batch_begin(struct mreg_store *ms)
{
	struct pack_store *s = ps(ms);

	pthread_mutex_lock(&s->mu);
	s->nbatch++;
	pthread_mutex_unlock(&s->mu);
}

void pack_batch_end(struct mreg_store *ms)
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
int pack_sync(struct mreg_store *ms)
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
