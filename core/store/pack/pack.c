/* pack.c — the pack backend of the chunk store (store.h, backend.h):
 * append-only pack files in a directory, the default backend. This file:
 * names, locations, packs as containers (listing, gc's locks, removal,
 * cutting), opening and closing; write.c: appending, batches and sync;
 * read.c: the read cache, reads and walks. pack.h: what they share.
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
 * number is its container's name (store_containers()). A pack only
 * grows, by whole records, and only in the process that created it; gc,
 * under its exclusive lock, removes whole packs or cuts off a tail that
 * no index record names (which needs no free space: how gc makes room on
 * a full disk).
 *
 * Locks. The writer holds flock(LOCK_SH) on each pack it created while an
 * index transaction may still name it: the active pack, and the packs that
 * rolled over while a batch was open, until no batch is open. gc takes
 * flock(LOCK_EX|LOCK_NB). flock(2) locks belong to an open file
 * description, so the writer's lock and gc's lock are taken on separate
 * open(2)s and conflict even inside one process; read descriptors are
 * separate again and never locked.
 */
#include "pack.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "store/packfmt.h"
#include "util.h"

void pack_name(uint32_t num, char buf[PACK_NAME_LEN + 1])
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

int pack_open_ro(struct pack_store *s, uint32_t pack,
		 char name[PACK_NAME_LEN + 1])
{
	int fd;

	assert(s && name);
	pack_name(pack, name);
	fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT)
		return log_err(-errno, "cannot open pack '%s/%s'", s->dir,
			       name);
	return fd < 0 ? -ENOENT : fd;
}

/* A container's name as a pack number: false when none can be (packs are
 * numbered 1 to UINT32_MAX). */
bool pack_number(uint64_t container, uint32_t *ret)
{
	if (container == 0 || container > UINT32_MAX)
		return false;
	*ret = (uint32_t)container;
	return true;
}

void pack_loc_encode(const struct ploc *l, struct chunk_loc *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->len = PLOC_LEN;
	pack_put_le32(ret->b, l->pack);
	pack_put_le32(ret->b + 4, l->len);
	pack_put_le64(ret->b + 8, l->offset);
}

/* Reads the fields of loc: false when it is not 16 bytes long. */
bool pack_loc_fields(const struct chunk_loc *loc, struct ploc *ret)
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
bool pack_loc_decode(const struct chunk_loc *loc, struct ploc *ret)
{
	struct ploc l;

	if (!pack_loc_fields(loc, &l) || l.pack == 0 ||
	    l.offset < PACK_HEADER_SIZE + PACK_RECORD_HEADER ||
	    l.offset > (uint64_t)INT64_MAX - l.len)
		return false;
	*ret = l;
	return true;
}

/* The highest pack number in the directory, 0 when there is none. */
int pack_scan_max(struct pack_store *s, uint32_t *ret)
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

/* ---- packs as wholes: listing, gc locks, removal ----------------------- */

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
	fd = pack_open_ro(s, pack, name);
	if (fd < 0)
		return fd;
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
