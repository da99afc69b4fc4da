/* cache.c — a host's cache of chunks in front of another store (backend
 * "cache", issue 13, configured by cache.h): chunks read or written on
 * this host are kept in a local directory, evicted least recently used
 * past a size bound, and verified on every read.
 *
 * On disk, under PATH (mode 0700):
 *	HH/LOC      one file per chunk: its 16-byte id, then its data. LOC
 *	            is the hex of the location's bytes (the inner store's,
 *	            unread here), HH two hex digits of a hash of them
 *	            (256 directories, so that none grows huge).
 *	HH/tmp.PID.N  a file being written by process PID, renamed into
 *	            place (in its directory) when whole; left by a crash,
 *	            removed at open once PID is gone.
 * Nothing is fsynced: a copy lost or torn by a crash is found bad on its
 * next read and fetched again.
 *
 * Reading. A hit reads the file and checks its bytes against the id the
 * caller asked for (or, for a raw read, the id the file names): a bad
 * copy is unlinked and fetched again from the inner store. A miss gets
 * the chunk from the inner store (which checks its framing), hashes it,
 * and keeps it: a bad remote copy is -EIO and is never kept. While a
 * chunk is being fetched, other reads of it wait for that fetch rather
 * than start their own. A raw read that misses is not kept (no id to
 * check it by).
 *
 * LRU. The entries are in memory: a hash table by location and a list in
 * order of use, rebuilt at open from the files' mtimes (a hit sets the
 * file's mtime). Past its bound (ids included) the least recently used
 * files are removed. The bound is `size`, or less when the cache's file
 * system (the store's disk by default, which the index needs) would keep
 * less than its floor free, min_free and 5 % of it (store_cache_bound()):
 * a disk something else fills makes the cache give its room back. A
 * chunk that does not fit is not kept; a write that meets a full disk
 * (ENOSPC, EDQUOT) evicts and keeps nothing: the reader has its bytes.
 *
 * Several processes of a host may share the directory (mregfs, and mreg
 * on the store: mreg prefetch, push): a miss looks for the chunk's file
 * before it fetches, and adopts a good one another process kept. Each
 * process bounds what it knows of; a file another one removed is a miss.
 *
 * Prefetch. prefetch() queues fetches of the next chunks of a sequential
 * read (the registry's reader decides what is next) for a few threads
 * (cache_config.fetchers). A thread takes the first queued chunk and the
 * ones queued right behind it that follow it in the same container (at
 * most RUN_GAP bytes apart, RUN_MAX bytes in all) and reads them with
 * one request (get_run of the inner store): a cold read of a large file
 * runs several large requests at once instead of one round trip per
 * chunk. Memory: each thread holds one run (RUN_MAX bytes, twice while
 * the S3 store splits it), the queue QUEUE_MAX jobs of 64 bytes. It is
 * a hint: a full queue takes no more (prefetch() says how many it took,
 * and the reader asks again later), and a prefetch without ids is
 * ignored (nothing fetched could be checked before it is kept). A
 * fetch that fails gives the queue up (store_cache_give_up()): a store
 * in trouble costs one request's retries, and a reader waiting for a
 * prefetch then fetches its chunk itself, within its own deadline.
 * fill() (store_fill: mreg prefetch) queues the same jobs, waiting for
 * room instead, in at most half of the queue (the other half stays for
 * readers), and waits until its chunks are here; the first failure ends
 * it. (prefetch.c holds the queue, the fetchers and fill.)
 *
 * Writing goes to the inner store, then through to the cache. Containers,
 * batches, sync and housekeeping are the inner store's; delete and cut
 * also drop the cached chunks they take away.
 */
#include "cache-int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store/backend.h"
#include "util.h"

/* ---- names ---- */

static uint32_t loc_hash(const struct chunk_loc *loc)
{
	uint32_t h = 2166136261u;	/* FNV-1a */
	unsigned i;

	for (i = 0; i < loc->len; i++)
		h = (h ^ loc->b[i]) * 16777619u;
	return h;
}

static void loc_path(const struct chunk_loc *loc, char *buf)
{
	static const char hx[] = "0123456789abcdef";
	uint32_t h = loc_hash(loc);
	unsigned i;

	buf[0] = hx[(h >> 4) & 15];
	buf[1] = hx[h & 15];
	buf[2] = '/';
	for (i = 0; i < loc->len; i++) {
		buf[3 + 2 * i] = hx[loc->b[i] >> 4];
		buf[4 + 2 * i] = hx[loc->b[i] & 15];
	}
	buf[3 + 2 * loc->len] = '\0';
}

static bool parse_loc(const char *name, struct chunk_loc *ret)
{
	size_t n = strlen(name), i;
	unsigned v;

	if (n == 0 || n % 2 || n > 2 * CHUNK_LOC_MAX ||
	    strspn(name, "0123456789abcdef") != n)
		return false;
	ret->len = (uint8_t)(n / 2);
	for (i = 0; i < n / 2; i++) {
		sscanf(name + 2 * i, "%2x", &v);
		ret->b[i] = (uint8_t)v;
	}
	return true;
}

/* ---- entries (mu held) ---- */

struct entry *store_cache_find(struct cache_store *s,
			       const struct chunk_loc *loc)
{
	struct entry *e;

	for (e = s->tab[loc_hash(loc) % s->nbuckets]; e; e = e->hnext)
		if (chunk_loc_eq(&e->loc, loc))
			return e;
	return NULL;
}

static int grow(struct cache_store *s)
{
	size_t nb = s->nbuckets * 2, i;
	struct entry **t = calloc(nb, sizeof(*t)), *e, *next;

	if (!t)
		return -ENOMEM;
	for (i = 0; i < s->nbuckets; i++)
		for (e = s->tab[i]; e; e = next) {
			next = e->hnext;
			e->hnext = t[loc_hash(&e->loc) % nb];
			t[loc_hash(&e->loc) % nb] = e;
		}
	free(s->tab);
	s->tab = t;
	s->nbuckets = nb;
	return 0;
}

struct entry *store_cache_add(struct cache_store *s,
			      const struct chunk_loc *loc, int state)
{
	struct entry *e;
	size_t b;

	if (s->n >= s->nbuckets && grow(s))
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->loc = *loc;
	e->state = state;
	b = loc_hash(loc) % s->nbuckets;
	e->hnext = s->tab[b];
	s->tab[b] = e;
	s->n++;
	return e;
}

static void lru_unlink(struct entry *e)
{
	if (e->prev) {
		e->prev->next = e->next;
		e->next->prev = e->prev;
		e->prev = e->next = NULL;
	}
}

void store_cache_lru_front(struct cache_store *s, struct entry *e)
{
	lru_unlink(e);
	e->next = s->lru.next;
	e->prev = &s->lru;
	s->lru.next->prev = e;
	s->lru.next = e;
}

/* Forgets e; its file too when unlink_file. */
void store_cache_drop(struct cache_store *s, struct entry *e, bool unlink_file)
{
	struct entry **pp = &s->tab[loc_hash(&e->loc) % s->nbuckets];
	char name[NAME_MAX_LEN];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	s->n--;
	if (e->state == READY) {
		lru_unlink(e);
		s->used -= e->size;
	}
	if (unlink_file) {
		loc_path(&e->loc, name);
		unlinkat(s->dirfd, name, 0);
	}
	free(e);
}

/* The bytes of files the cache may hold now (mu held): [cache] size, or
 * less where its file system would have less than its floor free
 * (util_disk_free()), counting what the cache holds as room it can give
 * back. Whatever else grows on that disk (the index, the serving cache,
 * another process's cache files) lowers it. */
uint64_t store_cache_bound(struct cache_store *s)
{
	uint64_t avail, floor, b;

	if (util_disk_free(s->dirfd, s->min_free, &avail, &floor))
		return s->limit;	/* a write will tell */
	b = s->used + avail > floor ? s->used + avail - floor : 0;
	return b < s->limit ? b : s->limit;
}

/* Removes the least recently used files until the cache is under its
 * bound with need more bytes, or (when need would not fit even in an
 * empty cache) under its bound: whether need fits. */
static bool evict(struct cache_store *s, uint64_t need)
{
	uint64_t bound = store_cache_bound(s);
	uint64_t target = need <= bound ? bound - need : bound;

	while (s->used > target && s->lru.prev != &s->lru)
		store_cache_drop(s, s->lru.prev, true);
	return s->used + need <= bound;
}

/* A fetch of e ended without a copy: forget it, wake its waiters. */
void store_cache_unload(struct cache_store *s, struct entry *e)
{
	pthread_mutex_lock(&s->mu);
	store_cache_drop(s, e, false);
	pthread_cond_broadcast(&s->loaded);
	pthread_mutex_unlock(&s->mu);
}

/* The LOADING entry e has its file of size bytes: the most recently
 * used, its waiters woken. */
void store_cache_settle(struct cache_store *s, struct entry *e, uint64_t size)
{
	pthread_mutex_lock(&s->mu);
	e->size = size;
	e->state = READY;
	s->used += size;
	store_cache_lru_front(s, e);
	evict(s, 0);	/* what other threads kept meanwhile */
	pthread_cond_broadcast(&s->loaded);
	pthread_mutex_unlock(&s->mu);
}

/* ---- files ---- */

/* A write of size bytes met a full disk: evicts to the bound, and at
 * least size bytes (a file at least) in any case, for a disk full in a
 * way the bound does not see (its inodes, another writer's race). */
static void give_back(struct cache_store *s, uint64_t size)
{
	uint64_t was;

	pthread_mutex_lock(&s->mu);
	was = s->used;
	evict(s, size);
	while (was - s->used < size && s->lru.prev != &s->lru)
		store_cache_drop(s, s->lru.prev, true);
	pthread_mutex_unlock(&s->mu);
}

/* Writes id + data as loc's file (a temporary file renamed into place)
 * and makes it the most recently used. Best effort: a cache that cannot
 * keep a chunk still serves it. A write that meets a full disk (another
 * writer took the room the bound counted on) gives room back. */
static void keep(struct cache_store *s, struct entry *e,
		 const struct mreg_id *id, const void *data, uint32_t len)
{
	uint64_t size = MREG_ID_LEN + (uint64_t)len;
	char tmp[64], name[NAME_MAX_LEN];
	struct iovec iov[2] = {
		{ .iov_base = (void *)id->b, .iov_len = MREG_ID_LEN },
		{ .iov_base = (void *)data, .iov_len = len },
	};
	ssize_t n = -1;
	int fd, err;
	bool fits;

	pthread_mutex_lock(&s->mu);
	fits = evict(s, size);
	loc_path(&e->loc, name);
	snprintf(tmp, sizeof(tmp), "%.3stmp.%ld.%" PRIu64, name,
		 (long)getpid(), s->tmpseq++);
	pthread_mutex_unlock(&s->mu);
	if (!fits) {
		store_cache_unload(s, e);
		return;
	}
	fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	if (fd >= 0)
		n = writev(fd, iov, 2);
	err = n < 0 ? errno : ENOSPC;	/* a short write: the disk is full */
	if (fd >= 0)
		close(fd);
	if (n == (ssize_t)size && renameat(s->dirfd, tmp, s->dirfd, name) == 0) {
		store_cache_settle(s, e, size);
		return;
	}
	if (n == (ssize_t)size)
		err = errno;
	log_debug("cache: cannot keep '%s/%s': %s", s->path, name,
		  strerror(err));
	unlinkat(s->dirfd, tmp, 0);
	if (err == ENOSPC || err == EDQUOT)
		give_back(s, size);
	store_cache_unload(s, e);
}

/* Reads loc's file into buf and checks it: 0, or 1 when it is missing or
 * bad (why says which). id NULL: checked against the id it names. */
int store_cache_read_kept(struct cache_store *s, const struct chunk_loc *loc,
			  const struct mreg_id *id, uint32_t len, void *buf,
			  const char **why)
{
	char name[NAME_MAX_LEN];
	struct mreg_id kept, got;
	struct iovec iov[2] = {
		{ .iov_base = kept.b, .iov_len = MREG_ID_LEN },
		{ .iov_base = buf, .iov_len = len },
	};
	struct stat st;
	ssize_t n;
	int fd;

	loc_path(loc, name);
	fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*why = "gone";
		return 1;
	}
	n = fstat(fd, &st) ? -1 : readv(fd, iov, 2);
	close(fd);
	*why = "short";
	if (n != (ssize_t)(MREG_ID_LEN + (uint64_t)len) ||
	    (uint64_t)st.st_size != MREG_ID_LEN + (uint64_t)len)
		return 1;
	*why = "names another chunk";
	if (id && !chunkid_eq(id, &kept))
		return 1;
	*why = "data does not match its id";
	chunkid_of(buf, len, &got);
	if (!chunkid_eq(&got, &kept))
		return 1;
	utimensat(s->dirfd, name, NULL, 0);	/* its use, for the LRU */
	return 0;
}

/* What a get from the inner store gave (r, the data in buf): checks its
 * hash, and keeps it unless the read is raw or failed. e: the LOADING
 * entry, or NULL. */
int store_cache_landed(struct cache_store *s, struct entry *e,
		       const struct chunk_loc *loc, const struct mreg_id *id,
		       uint32_t len, void *buf, int r)
{
	char name[256];
	struct mreg_id got;

	if (!r && id) {
		chunkid_of(buf, len, &got);
		if (!chunkid_eq(&got, id))
			r = log_err(-EIO, "cache: bad chunk at %s in the "
				    "store (data does not match its id)",
				    s->inner->be->loc_name(inner_c(s), loc,
							   name, sizeof(name)));
	}
	if (e && !r)
		keep(s, e, id, buf, len);
	else if (e)
		store_cache_unload(s, e);
	return r;
}

/* Gets the chunk from the inner store: store_cache_landed(). */
int store_cache_fetch(struct cache_store *s, struct entry *e,
		      const struct chunk_loc *loc, const struct mreg_id *id,
		      uint32_t len, void *buf)
{
	return store_cache_landed(s, e, loc, id, len, buf,
		      s->inner->be->get(s->inner, loc, id, buf));
}

/* ---- reading ---- */

int store_cache_get(struct mreg_store *ms, const struct chunk_loc *loc,
		    const struct mreg_id *id, void *buf)
{
	struct cache_store *s = (struct cache_store *)ms;
	struct store_span sp;
	struct entry *e;
	const char *why;
	char name[NAME_MAX_LEN];
	int r;

	if (!s || !loc || !buf)
		return -EINVAL;
	r = s->inner->be->loc_span(s->inner, loc, &sp);
	if (r)
		return r;
	pthread_mutex_lock(&s->mu);
	while ((e = store_cache_find(s, loc)) && e->state == LOADING)
		pthread_cond_wait(&s->loaded, &s->mu);
	if (e)
		store_cache_lru_front(s, e);
	pthread_mutex_unlock(&s->mu);
	if (e) {
		r = store_cache_read_kept(s, loc, id, sp.len, buf, &why);
		if (r == 0)
			return 0;
		loc_path(loc, name);
		if (strcmp(why, "gone"))
			log_warn(0, "cache: copy '%s/%s' is bad (%s): fetched "
				 "again", s->path, name, why);
		pthread_mutex_lock(&s->mu);
		e = store_cache_find(s, loc);
		if (e && e->state == READY)
			store_cache_drop(s, e, true);
		pthread_mutex_unlock(&s->mu);
	}
	if (!id)
		return store_cache_fetch(s, NULL, loc, NULL, sp.len, buf);
	pthread_mutex_lock(&s->mu);
	e = store_cache_find(s, loc) ? NULL : store_cache_add(s, loc, LOADING);
	pthread_mutex_unlock(&s->mu);
	if (e && store_cache_read_kept(s, loc, id, sp.len, buf, &why) == 0) {
		/* another process of this host kept it */
		store_cache_settle(s, e, MREG_ID_LEN + (uint64_t)sp.len);
		return 0;
	}
	return store_cache_fetch(s, e, loc, id, sp.len, buf);
}

/* ---- open and close ---- */

struct scanned {
	struct chunk_loc loc;
	uint64_t size;
	struct timespec mtime;
};

static int by_mtime(const void *a, const void *b)
{
	const struct timespec *x = &((const struct scanned *)a)->mtime;
	const struct timespec *y = &((const struct scanned *)b)->mtime;

	if (x->tv_sec != y->tv_sec)
		return x->tv_sec < y->tv_sec ? -1 : 1;
	return x->tv_nsec < y->tv_nsec ? -1 : x->tv_nsec > y->tv_nsec;
}

/* A file a process that is gone left half-written: "tmp.PID.N". */
static bool left_behind(const char *name)
{
	long pid;

	if (strncmp(name, "tmp.", 4) || sscanf(name + 4, "%ld.", &pid) != 1)
		return false;
	return pid > 0 && kill((pid_t)pid, 0) && errno == ESRCH;
}

/* Reads one HH directory (made if missing) into *v, removing what
 * processes that are gone left half-written. */
static int scan_dir(struct cache_store *s, const char *hh,
		    struct scanned **v, size_t *n, size_t *cap)
{
	struct dirent *d;
	struct stat st;
	DIR *dir;
	int fd;

	if (mkdirat(s->dirfd, hh, 0700) && errno != EEXIST)
		return log_err(-errno, "cache: cannot make '%s/%s'", s->path,
			       hh);
	fd = openat(s->dirfd, hh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dir = fd < 0 ? NULL : fdopendir(fd);
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return log_err(-errno, "cache: cannot read '%s/%s'", s->path,
			       hh);
	}
	while ((d = readdir(dir))) {
		struct scanned *x;

		if (d->d_name[0] == '.')
			continue;
		if (left_behind(d->d_name)) {
			unlinkat(dirfd(dir), d->d_name, 0);
			continue;
		}
		if (*n == *cap) {
			size_t nc = *cap ? 2 * *cap : 1024;
			struct scanned *nv = reallocarray(*v, nc, sizeof(*nv));

			if (!nv) {
				closedir(dir);
				return -ENOMEM;
			}
			*v = nv;
			*cap = nc;
		}
		x = &(*v)[*n];
		if (!parse_loc(d->d_name, &x->loc) ||
		    fstatat(dirfd(dir), d->d_name, &st, 0) ||
		    !S_ISREG(st.st_mode))
			continue;	/* not ours: left alone */
		x->size = (uint64_t)st.st_size;
		x->mtime = st.st_mtim;
		(*n)++;
	}
	closedir(dir);
	return 0;
}

/* Rebuilds the entries from the files, least recently used first, and
 * applies the size bound. */
static int rebuild(struct cache_store *s)
{
	struct scanned *v = NULL;
	size_t n = 0, cap = 0, i;
	char hh[3];
	int r = 0;

	for (i = 0; i < 256 && !r; i++) {
		snprintf(hh, sizeof(hh), "%02zx", i);
		r = scan_dir(s, hh, &v, &n, &cap);
	}
	if (!r && n)
		qsort(v, n, sizeof(*v), by_mtime);
	for (i = 0; i < n && !r; i++) {
		struct entry *e = store_cache_find(s, &v[i].loc) ? NULL :
				  store_cache_add(s, &v[i].loc, READY);

		if (!e)
			continue;
		e->size = v[i].size;
		s->used += e->size;
		store_cache_lru_front(s, e);
	}
	free(v);
	evict(s, 0);
	return r;
}

static void cache_free(struct cache_store *s)
{
	size_t i;
	struct entry *e, *next;

	for (i = 0; i < s->nbuckets; i++)
		for (e = s->tab[i]; e; e = next) {
			next = e->hnext;
			free(e);
		}
	free(s->tab);
	free(s->q);
	free(s->thr);
	free(s->path);
	if (s->dirfd >= 0)
		close(s->dirfd);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->loaded);
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->room);
	free(s);
}

static void stop_fetchers(struct cache_store *s)
{
	unsigned i;

	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->mu);
	for (i = 0; i < s->nthr; i++)
		pthread_join(s->thr[i], NULL);
	s->nthr = 0;
}

static int cache_open(const struct store_options *opt, struct mreg_store **ret)
{
	const struct cache_config *cfg;
	struct cache_store *s;
	unsigned want, i;
	int r;

	if (!opt->backend_cfg)
		return log_err(-EINVAL, "cache: no configuration (the [cache] "
			       "section)");
	cfg = opt->backend_cfg;
	if (!cfg->path || !*cfg->path || !cfg->inner || !cfg->size)
		return log_err(-EINVAL, "cache: a path, a size and a store "
			       "to cache are required");
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base.be = &store_cache_backend;
	s->dirfd = -1;
	s->limit = cfg->size;
	s->min_free = cfg->min_free;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->loaded, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->room, NULL);
	s->lru.next = s->lru.prev = &s->lru;
	s->nbuckets = 1024;
	s->tab = calloc(s->nbuckets, sizeof(*s->tab));
	s->q = calloc(QUEUE_MAX, sizeof(*s->q));
	want = cfg->fetchers ? cfg->fetchers : 8;
	s->thr = calloc(want, sizeof(*s->thr));
	s->path = strdup(cfg->path);
	if (!s->tab || !s->q || !s->thr || !s->path) {
		r = -ENOMEM;
		goto fail;
	}
	if (mkdir(cfg->path, 0700) && errno != EEXIST) {
		r = log_err(-errno, "cache: cannot make '%s'", cfg->path);
		goto fail;
	}
	s->dirfd = open(cfg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = log_err(-errno, "cache: cannot open '%s'", cfg->path);
		goto fail;
	}
	r = rebuild(s);
	if (r)
		goto fail;
	for (i = 0; i < want; i++) {
		r = -pthread_create(&s->thr[i], NULL, store_cache_fetcher_main, s);
		if (r) {
			log_err(r, "cache: cannot start its threads");
			stop_fetchers(s);
			goto fail;
		}
		s->nthr++;
	}
	s->inner = cfg->inner;	/* ours from here on */
	*ret = &s->base;
	return 0;
fail:
	cache_free(s);
	return r;
}

static void cache_close(struct mreg_store *ms)
{
	struct cache_store *s = (struct cache_store *)ms;

	if (!s)
		return;
	stop_fetchers(s);
	s->inner->be->close(s->inner);
	cache_free(s);
}

/* ---- writing, and what is the inner store's ---- */

static int cache_put(struct mreg_store *ms, const struct mreg_id *id,
		     const void *data, uint32_t len, struct chunk_loc *ret)
{
	struct cache_store *s = (struct cache_store *)ms;
	struct chunk_loc loc;
	struct entry *e;
	int r;

	if (!s || !id || (!data && len) || !ret)
		return -EINVAL;
	r = s->inner->be->put(s->inner, id, data, len, &loc);
	if (r)
		return r;
	pthread_mutex_lock(&s->mu);
	e = store_cache_find(s, &loc) ? NULL : store_cache_add(s, &loc, LOADING);
	pthread_mutex_unlock(&s->mu);
	if (e)
		keep(s, e, id, data, len);	/* write-through */
	*ret = loc;
	return 0;
}

/* Drops the cached chunks of container at or past off. */
static void drop_container(struct cache_store *s, uint64_t container,
			   uint64_t off)
{
	struct entry *e, *next;
	struct store_span sp;
	size_t i;

	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->nbuckets; i++)
		for (e = s->tab[i]; e; e = next) {
			next = e->hnext;
			if (e->state == READY &&
			    !s->inner->be->loc_span(s->inner, &e->loc, &sp) &&
			    sp.container == container && sp.off >= off)
				store_cache_drop(s, e, true);
		}
	pthread_mutex_unlock(&s->mu);
}

static int cache_del(struct mreg_store *ms, uint64_t container)
{
	struct cache_store *s = (struct cache_store *)ms;
	int r = s->inner->be->del(s->inner, container);

	if (r == 0 || r == -ENOENT)
		drop_container(s, container, 0);
	return r;
}

static int cache_cut(struct mreg_store *ms, uint64_t container, uint64_t size)
{
	struct cache_store *s = (struct cache_store *)ms;
	int r = s->inner->be->cut(s->inner, container, size);

	if (r == 0)
		drop_container(s, container, size);
	return r;
}

#define INNER(s) (((struct cache_store *)(s))->inner)

static unsigned cache_caps(const struct mreg_store *ms)
{
	const struct mreg_store *in = inner_c((const struct cache_store *)ms);

	return in->be->caps(in) | STORE_CACHED | STORE_CHECKS_ID;
}

static void cache_batch_begin(struct mreg_store *ms)
{
	INNER(ms)->be->batch_begin(INNER(ms));
}

static void cache_batch_end(struct mreg_store *ms)
{
	INNER(ms)->be->batch_end(INNER(ms));
}

static int cache_sync(struct mreg_store *ms)
{
	return INNER(ms)->be->sync(INNER(ms));
}

static int cache_batch_check(struct mreg_store *ms)
{
	return INNER(ms)->be->batch_check(INNER(ms));
}

static int cache_loc_span(const struct mreg_store *ms,
			  const struct chunk_loc *loc, struct store_span *ret)
{
	const struct mreg_store *in = inner_c((const struct cache_store *)ms);

	return in->be->loc_span(in, loc, ret);
}

static const char *cache_loc_name(const struct mreg_store *ms,
				  const struct chunk_loc *loc, char *buf,
				  size_t size)
{
	const struct mreg_store *in = inner_c((const struct cache_store *)ms);

	return in->be->loc_name(in, loc, buf, size);
}

static int cache_containers(struct mreg_store *ms,
			    int (*fn)(void *arg,
				      const struct store_container *c),
			    void *arg)
{
	return INNER(ms)->be->containers(INNER(ms), fn, arg);
}

static int cache_iterate(struct mreg_store *ms, uint64_t container,
			 int (*fn)(void *arg, const struct mreg_id *id,
				   const struct chunk_loc *loc,
				   const void *data, uint32_t len),
			 void *arg)
{
	return INNER(ms)->be->iterate(INNER(ms), container, fn, arg);
}

static int cache_claim(struct mreg_store *ms, uint64_t container)
{
	return INNER(ms)->be->claim(INNER(ms), container);
}

static void cache_unclaim(struct mreg_store *ms, uint64_t container)
{
	INNER(ms)->be->unclaim(INNER(ms), container);
}

static int cache_container_size(struct mreg_store *ms, uint64_t container,
				uint64_t *ret)
{
	return INNER(ms)->be->container_size(INNER(ms), container, ret);
}

static int cache_bytes(struct mreg_store *ms, uint64_t *ret)
{
	return INNER(ms)->be->bytes(INNER(ms), ret);
}

static int cache_room(struct mreg_store *ms, uint64_t *ret)
{
	return INNER(ms)->be->room(INNER(ms), ret);
}

static int cache_maint(struct mreg_store *ms)
{
	return INNER(ms)->be->maint(INNER(ms));
}

const struct store_backend store_cache_backend = {
	.name = "cache",
	.open = cache_open,
	.close = cache_close,
	.caps = cache_caps,
	.batch_begin = cache_batch_begin,
	.batch_end = cache_batch_end,
	.put = cache_put,
	.sync = cache_sync,
	.batch_check = cache_batch_check,
	.get = store_cache_get,
	.loc_span = cache_loc_span,
	.loc_name = cache_loc_name,
	.prefetch = store_cache_prefetch,
	.fill = store_cache_fill,
	.containers = cache_containers,
	.iterate = cache_iterate,
	.claim = cache_claim,
	.unclaim = cache_unclaim,
	.container_size = cache_container_size,
	.del = cache_del,
	.cut = cache_cut,
	.bytes = cache_bytes,
	.room = cache_room,
	.maint = cache_maint,
};
