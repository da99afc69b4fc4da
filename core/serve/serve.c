/* serve.c — the serving cache (see serve.h for the directory's layout and
 * when a file is hot).
 *
 * State, under one mutex:
 *  - copies: complete copies on disk, hashed by inode, with a use clock
 *    for LRU and a count of holders (serve_get()); a copy dropped while
 *    held is unlinked at once and leaves the table, and its bytes are
 *    counted until its last holder puts it (the disk space comes back
 *    then, not at the unlink);
 *  - hot: sealed files seen without a copy (opens, bytes read, where their
 *    hydration stands), bounded: the least recently touched idle one goes
 *    when it is full; the queue of files to hydrate runs through it.
 * The thread pops the queue, makes room (evicting idle copies, least
 * recently used first, outside the lock), writes the copy from the source
 * while hashing it, compares the digest, fsyncs, renames it into place and
 * syncs the directory; only then is it a copy.
 */
#include "serve/serve.h"

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
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define COPY_BUCKETS 256
#define HOT_BUCKETS 256
#define HOT_MAX 4096                    /* files tracked without a copy */
#define BLOCK (1u << 20)                /* fsck reads */
/* Hydration writes: the page cache of the copy is made of folios no
 * larger than the writes that filled it, and only a 2 MiB folio can be
 * mapped by one PMD, as a natively read file's is (mmap at native speed). */
#define HYDRATE_BLOCK (4u << 20)
#define RETRY_NS (60LL * 1000000000)    /* a failed hydration waits */
#define FREE_MIN (1ULL << 30)           /* never fill the disk beyond */
#define FREE_PCT 5                      /* ... 1 GiB and 5 % free */
#define NAME_MAX_LEN 96

struct serve_copy {
	struct serve_key key;
	uint64_t used;          /* the clock at its last serve_get() */
	unsigned holders;
	bool dropped;           /* unlinked, out of the table */
	struct serve_copy *next;
};

struct hot {
	struct serve_key key;
	uint64_t opens, bytes_read;
	uint64_t touched;       /* the clock when last seen */
	enum serve_state state; /* COLD, PENDING, NO_ROOM, FAILED */
	bool running;           /* being written (PENDING) */
	bool dropped;           /* its version went while it was written */
	int64_t retry_at;       /* FAILED: monotonic ns */
	uint64_t room_seen;     /* NO_ROOM: c->room_gen then */
	struct hot *next;       /* hash chain */
	struct hot *qnext;      /* queue */
};

struct serve_cache {
	char *dir;
	int dirfd, lockfd;
	uint64_t capacity;
	bool eager;
	unsigned delay_ms;
	struct serve_source src;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct serve_copy *copies[COPY_BUCKETS];
	struct hot *hot[HOT_BUCKETS];
	size_t ncopies, nhot;
	uint64_t bytes;         /* of copies on disk, dropped ones held */
	uint64_t reserved;      /* of the copy being written */
	uint64_t clock;
	uint64_t room_gen;      /* bumped when a copy may be evicted anew */
	struct hot *qhead, *qtail;
	size_t queued;
	enum serve_open_kind off;
	bool stop, thread;
	pthread_t worker;

	atomic_uint_fast64_t opens[SERVE_OPEN_KINDS];
	atomic_uint_fast64_t daemon_reads;
	uint64_t hydrated_bytes, hydrated, failed, no_room, evictions;
};

static const char *const kind_names[SERVE_OPEN_KINDS] = {
	[SERVE_OPEN_PASSTHROUGH] = "passthrough",
	[SERVE_FALLBACK_DISABLED] = "disabled",
	[SERVE_FALLBACK_KERNEL] = "kernel",
	[SERVE_FALLBACK_PRIVILEGE] = "privilege",
	[SERVE_FALLBACK_COLD] = "cold",
	[SERVE_FALLBACK_HYDRATING] = "hydrating",
	[SERVE_FALLBACK_SHARED] = "shared",
	[SERVE_FALLBACK_UNSEALED] = "unsealed",
	[SERVE_FALLBACK_ERROR] = "error",
};

const char *serve_open_kind_name(enum serve_open_kind kind)
{
	return (unsigned)kind < SERVE_OPEN_KINDS ? kind_names[kind] : "?";
}

/* ---- names --------------------------------------------------------------- */

static void copy_name(const struct serve_key *k, char buf[NAME_MAX_LEN])
{
	char hex[MREG_ID_HEX];

	snprintf(buf, NAME_MAX_LEN, "%" PRIu64 "-%" PRIu64 "-%s", k->version,
		 k->ino, chunkid_hex(&k->digest, hex));
}

/* Parses "V-I-DIGEST" (size is not in the name). */
static bool parse_name(const char *s, struct serve_key *ret)
{
	char *end;

	memset(ret, 0, sizeof(*ret));
	if (*s < '0' || *s > '9')
		return false;
	ret->version = strtoull(s, &end, 10);
	if (*end != '-' || end[1] < '0' || end[1] > '9')
		return false;
	ret->ino = strtoull(end + 1, &end, 10);
	if (*end != '-' || strlen(end + 1) != MREG_ID_HEX - 1)
		return false;
	return chunkid_parse(end + 1, &ret->digest) == 0;
}

char *serve_dir(const struct mreg_config *cfg, const char *store)
{
	char *p;

	if (cfg && cfg->serve_path && cfg->serve_path[0])
		return strdup(cfg->serve_path);
	if (!store || asprintf(&p, "%s/serve", store) < 0)
		return NULL;
	return p;
}

/* ---- tables (lock held) ----------------------------------------------- */

static size_t bucket(uint64_t ino, size_t n)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 40) % n;
}

static struct serve_copy *copy_find(struct serve_cache *c, uint64_t ino)
{
	struct serve_copy *p;

	for (p = c->copies[bucket(ino, COPY_BUCKETS)]; p; p = p->next)
		if (p->key.ino == ino)
			return p;
	return NULL;
}

static void copy_insert(struct serve_cache *c, struct serve_copy *p)
{
	struct serve_copy **b = &c->copies[bucket(p->key.ino, COPY_BUCKETS)];

	p->next = *b;
	*b = p;
	c->ncopies++;
	c->bytes += p->key.size;
}

/* Takes p out of the table; its bytes stay counted while it is held. */
static void copy_unlink_entry(struct serve_cache *c, struct serve_copy *p)
{
	struct serve_copy **pp = &c->copies[bucket(p->key.ino, COPY_BUCKETS)];

	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	c->ncopies--;
	c->room_gen++;
	p->dropped = true;
	if (!p->holders) {
		c->bytes -= p->key.size;
		free(p);
	}
}

static struct hot *hot_find(struct serve_cache *c, uint64_t ino)
{
	struct hot *h;

	for (h = c->hot[bucket(ino, HOT_BUCKETS)]; h; h = h->next)
		if (h->key.ino == ino)
			return h;
	return NULL;
}

static void hot_remove(struct serve_cache *c, struct hot *h)
{
	struct hot **pp = &c->hot[bucket(h->key.ino, HOT_BUCKETS)];

	assert(h->state != SERVE_PENDING);
	while (*pp != h)
		pp = &(*pp)->next;
	*pp = h->next;
	c->nhot--;
	free(h);
}

/* Makes room for one more tracked file: drops the least recently touched
 * one that is not pending. */
static void hot_trim(struct serve_cache *c)
{
	struct hot *h, *victim = NULL;
	size_t b;

	if (c->nhot < HOT_MAX)
		return;
	for (b = 0; b < HOT_BUCKETS; b++)
		for (h = c->hot[b]; h; h = h->next)
			if (h->state != SERVE_PENDING &&
			    (!victim || h->touched < victim->touched))
				victim = h;
	if (victim)
		hot_remove(c, victim);
}

/* The tracking of key, made when missing (NULL: out of memory). */
static struct hot *hot_get(struct serve_cache *c, const struct serve_key *key)
{
	struct hot *h = hot_find(c, key->ino), **b;

	if (h) {
		if (h->state != SERVE_PENDING)
			h->key = *key;
		h->touched = ++c->clock;
		return h;
	}
	hot_trim(c);
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->key = *key;
	h->touched = ++c->clock;
	b = &c->hot[bucket(key->ino, HOT_BUCKETS)];
	h->next = *b;
	*b = h;
	c->nhot++;
	return h;
}

static void enqueue(struct serve_cache *c, struct hot *h)
{
	h->state = SERVE_PENDING;
	h->running = false;
	h->qnext = NULL;
	if (c->qtail)
		c->qtail->qnext = h;
	else
		c->qhead = h;
	c->qtail = h;
	c->queued++;
	pthread_cond_signal(&c->cond);
}

/* Whether h may be queued now (not pending, not failing lately, and the
 * cache makes copies). */
static bool may_queue(struct serve_cache *c, const struct hot *h)
{
	if (c->off != SERVE_OPEN_PASSTHROUGH || !c->dir || c->stop)
		return false;
	if (h->key.size > c->capacity)
		return false;
	switch (h->state) {
	case SERVE_COLD:
		return true;
	case SERVE_NO_ROOM:
		/* again once a copy was let go or removed */
		return h->room_seen != c->room_gen;
	case SERVE_FAILED:
		return mono_ns() >= h->retry_at;
	default:
		return false;
	}
}

/* ---- opening ------------------------------------------------------------- */

/* Adopts the copies left by an earlier run, oldest first (mtime). */
struct found {
	struct serve_key key;
	int64_t mtime;
};

static int found_cmp(const void *a, const void *b)
{
	const struct found *x = a, *y = b;

	return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

static int scan_dir(struct serve_cache *c)
{
	struct found *v = NULL;
	size_t n = 0, cap = 0, i;
	struct dirent *d;
	struct stat st;
	DIR *dir;
	int fd;

	fd = openat(c->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return log_err(-errno, "cannot read serving cache '%s'",
			       c->dir);
	}
	while ((d = readdir(dir))) {
		struct serve_key k;

		if (!strncmp(d->d_name, ".tmp-", 5)) {
			/* a copy an earlier run did not finish */
			unlinkat(c->dirfd, d->d_name, 0);
			continue;
		}
		if (!parse_name(d->d_name, &k) ||
		    fstatat(c->dirfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		k.size = (uint64_t)st.st_size;
		if (n == cap) {
			struct found *nv;

			cap = cap ? cap * 2 : 64;
			nv = reallocarray(v, cap, sizeof(*v));
			if (!nv) {
				free(v);
				closedir(dir);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n].key = k;
		v[n].mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 +
			     st.st_mtim.tv_nsec;
		n++;
	}
	closedir(dir);
	if (n)
		qsort(v, n, sizeof(*v), found_cmp);
	for (i = 0; i < n; i++) {
		struct serve_copy *p;
		char name[NAME_MAX_LEN];

		if (copy_find(c, v[i].key.ino)) {
			/* two copies of one inode (cannot be made by one
			   run): keep the newer */
			p = copy_find(c, v[i].key.ino);
			copy_name(&p->key, name);
			unlinkat(c->dirfd, name, 0);
			copy_unlink_entry(c, p);
		}
		p = calloc(1, sizeof(*p));
		if (!p) {
			free(v);
			return -ENOMEM;
		}
		p->key = v[i].key;
		p->used = ++c->clock;
		copy_insert(c, p);
	}
	free(v);
	return 0;
}

/* The directory must be ours and closed to others: copies are served
 * without a check on each read. */
static int open_dir(struct serve_cache *c)
{
	struct stat st;

	if (mkdir(c->dir, 0700) < 0 && errno != EEXIST)
		return log_err(-errno, "cannot make serving cache '%s'",
			       c->dir);
	c->dirfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0)
		return log_err(-errno, "cannot open serving cache '%s'",
			       c->dir);
	if (fstat(c->dirfd, &st) < 0)
		return log_err(-errno, "cannot open serving cache '%s'",
			       c->dir);
	if (st.st_uid != geteuid())
		return log_err(-EPERM, "serving cache '%s' belongs to uid "
			       "%u, not to us", c->dir, (unsigned)st.st_uid);
	if (st.st_mode & 077) {
		log_warn(0, "serving cache '%s' was open to others (mode "
			 "%04o): made 0700", c->dir,
			 (unsigned)(st.st_mode & 07777));
		if (fchmod(c->dirfd, 0700) < 0)
			return log_err(-errno, "cannot close serving cache "
				       "'%s' to others", c->dir);
	}
	c->lockfd = openat(c->dirfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC |
			   O_NOFOLLOW, 0600);
	if (c->lockfd < 0)
		return log_err(-errno, "cannot open '%s/.lock'", c->dir);
	if (flock(c->lockfd, LOCK_EX | LOCK_NB) < 0)
		return log_err(errno == EWOULDBLOCK ? -EBUSY : -errno,
			       "serving cache '%s' is used by another "
			       "process", c->dir);
	return 0;
}

static void *hydrator(void *arg);
static void trim(struct serve_cache *c, uint64_t need, bool *ret_fits);

int serve_open(const struct serve_params *p, struct serve_cache **ret)
{
	struct serve_cache *c;
	bool fits;
	int r;

	if (!p || !ret || (p->dir && (!p->source.open || !p->source.read ||
				      !p->source.close)))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->dirfd = c->lockfd = -1;
	c->capacity = p->capacity;
	c->eager = p->eager;
	c->delay_ms = p->delay_ms;
	c->src = p->source;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (!p->dir) {
		c->off = SERVE_FALLBACK_DISABLED;
		*ret = c;
		return 0;
	}
	c->dir = strdup(p->dir);
	if (!c->dir) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = open_dir(c)) < 0 || (r = scan_dir(c)) < 0)
		goto fail;
	pthread_mutex_lock(&c->lock);
	trim(c, 0, &fits); /* [serve] size may have shrunk */
	pthread_mutex_unlock(&c->lock);
	r = pthread_create(&c->worker, NULL, hydrator, c);
	if (r) {
		r = log_err(-r, "cannot start the hydration thread");
		goto fail;
	}
	c->thread = true;
	log_info("serving cache '%s': %zu copies, %" PRIu64 " bytes of %"
		 PRIu64, c->dir, c->ncopies, c->bytes, c->capacity);
	*ret = c;
	return 0;
fail:
	serve_close(c);
	return r;
}

static void free_tables(struct serve_cache *c)
{
	struct serve_copy *p;
	struct hot *h;
	size_t b;

	for (b = 0; b < COPY_BUCKETS; b++)
		while ((p = c->copies[b])) {
			c->copies[b] = p->next;
			if (p->holders)
				log_warn(0, "serving copy of inode %" PRIu64
					 " still held at close", p->key.ino);
			free(p);
		}
	for (b = 0; b < HOT_BUCKETS; b++)
		while ((h = c->hot[b])) {
			c->hot[b] = h->next;
			free(h);
		}
}

void serve_close(struct serve_cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (c->thread)
		pthread_join(c->worker, NULL);
	free_tables(c);
	if (c->lockfd >= 0)
		close(c->lockfd);
	if (c->dirfd >= 0)
		close(c->dirfd);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c->dir);
	free(c);
}

/* ---- on/off ------------------------------------------------------------ */

void serve_set_off(struct serve_cache *c, enum serve_open_kind kind)
{
	struct hot *h;

	if (!c || (unsigned)kind >= SERVE_OPEN_KINDS)
		return;
	pthread_mutex_lock(&c->lock);
	if (!c->dir && kind == SERVE_OPEN_PASSTHROUGH)
		kind = SERVE_FALLBACK_DISABLED; /* no copies to serve */
	c->off = kind;
	if (kind != SERVE_OPEN_PASSTHROUGH) {
		/* nothing could serve them: drop what waits */
		while ((h = c->qhead)) {
			c->qhead = h->qnext;
			c->queued--;
			h->state = SERVE_COLD;
		}
		c->qtail = NULL;
	}
	pthread_mutex_unlock(&c->lock);
}

enum serve_open_kind serve_off(struct serve_cache *c)
{
	enum serve_open_kind k;

	if (!c)
		return SERVE_FALLBACK_DISABLED;
	pthread_mutex_lock(&c->lock);
	k = c->off;
	pthread_mutex_unlock(&c->lock);
	return k;
}

/* ---- serving --------------------------------------------------------- */

/* Gives back one hold of p (lock held). */
static void put_locked(struct serve_cache *c, struct serve_copy *p)
{
	assert(p->holders > 0);
	if (--p->holders)
		return;
	c->room_gen++;
	if (p->dropped) {
		c->bytes -= p->key.size;
		free(p);
	}
}

int serve_get(struct serve_cache *c, const struct serve_key *key,
	      struct serve_copy **ret)
{
	char name[NAME_MAX_LEN];
	struct serve_copy *p;
	struct hot *h;
	struct stat st;
	int fd, r;

	if (!c || !key || !ret)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	p = c->dir ? copy_find(c, key->ino) : NULL;
	if (!p || !chunkid_eq(&p->key.digest, &key->digest) ||
	    p->key.version != key->version) {
		h = hot_find(c, key->ino);
		r = h && h->state == SERVE_PENDING ? -EINPROGRESS : -ENOENT;
		pthread_mutex_unlock(&c->lock);
		return r;
	}
	p->holders++;
	p->used = ++c->clock;
	pthread_mutex_unlock(&c->lock);

	copy_name(key, name);
	fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	r = fd < 0 ? -errno : 0;
	if (fd >= 0 && fstat(fd, &st) < 0)
		r = -errno;
	else if (fd >= 0 && (uint64_t)st.st_size != key->size)
		r = log_err(-EIO, "serving copy '%s/%s' has %lld bytes, the "
			    "file %" PRIu64 ": dropped", c->dir, name,
			    (long long)st.st_size, key->size);
	if (r == 0) {
		*ret = p;
		return fd;
	}
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&c->lock);
	if ((r == -ENOENT || r == -EIO) && !p->dropped) {
		/* removed behind our back (mreg fsck dropped it), or
		   damaged: forget it; the file is hydrated again when hot */
		if (r == -ENOENT)
			log_warn(0, "serving copy '%s/%s' is gone", c->dir,
				 name);
		else
			unlinkat(c->dirfd, name, 0);
		copy_unlink_entry(c, p);
	}
	put_locked(c, p);
	pthread_mutex_unlock(&c->lock);
	return r;
}

void serve_put(struct serve_cache *c, struct serve_copy *p)
{
	if (!c || !p)
		return;
	pthread_mutex_lock(&c->lock);
	put_locked(c, p);
	pthread_mutex_unlock(&c->lock);
}

/* ---- what is hot ------------------------------------------------------- */

void serve_note_open(struct serve_cache *c, const struct serve_key *key,
		     bool staged)
{
	struct hot *h;

	if (!c || !key || !c->dir)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->off == SERVE_OPEN_PASSTHROUGH && !copy_find(c, key->ino) &&
	    (h = hot_get(c, key))) {
		h->opens++;
		if ((staged || c->eager || h->opens >= SERVE_HOT_OPENS ||
		     h->bytes_read >= key->size) && may_queue(c, h))
			enqueue(c, h);
	}
	pthread_mutex_unlock(&c->lock);
}

void serve_note_read(struct serve_cache *c, uint64_t ino, uint64_t len)
{
	struct hot *h;

	if (!c)
		return;
	atomic_fetch_add(&c->daemon_reads, 1);
	if (!c->dir)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->nhot && (h = hot_find(c, ino))) {
		h->bytes_read += len;
		if (h->bytes_read >= h->key.size && h->state == SERVE_COLD &&
		    may_queue(c, h))
			enqueue(c, h);
	}
	pthread_mutex_unlock(&c->lock);
}

void serve_count_open(struct serve_cache *c, enum serve_open_kind kind)
{
	if (c && (unsigned)kind < SERVE_OPEN_KINDS)
		atomic_fetch_add(&c->opens[kind], 1);
}

/* Where key stands (lock held); with ask, queued unless there or on
 * its way. */
static enum serve_state state_locked(struct serve_cache *c,
				     const struct serve_key *key, bool ask)
{
	struct serve_copy *p;
	struct hot *h;

	if (c->off != SERVE_OPEN_PASSTHROUGH || !c->dir)
		return SERVE_OFF;
	if ((p = copy_find(c, key->ino)) &&
	    chunkid_eq(&p->key.digest, &key->digest))
		return SERVE_READY;
	if (key->size > c->capacity)
		return SERVE_NO_ROOM;
	if (!ask)
		return (h = hot_find(c, key->ino)) ? h->state : SERVE_COLD;
	if (!(h = hot_get(c, key)))
		return SERVE_FAILED;
	if (may_queue(c, h))
		enqueue(c, h);
	return h->state;
}

enum serve_state serve_hydrate(struct serve_cache *c,
			       const struct serve_key *key)
{
	enum serve_state s;

	if (!c || !key)
		return SERVE_OFF;
	pthread_mutex_lock(&c->lock);
	s = state_locked(c, key, true);
	pthread_mutex_unlock(&c->lock);
	return s;
}

enum serve_state serve_state(struct serve_cache *c,
			     const struct serve_key *key)
{
	enum serve_state s;

	if (!c || !key)
		return SERVE_OFF;
	pthread_mutex_lock(&c->lock);
	s = state_locked(c, key, false);
	pthread_mutex_unlock(&c->lock);
	return s;
}

/* ---- removal --------------------------------------------------------- */

/* Takes every copy matching (version, or ino when version is 0) out of the
 * table, and returns their names to unlink outside the lock. */
static char *take_out(struct serve_cache *c, uint64_t version, uint64_t ino,
		      size_t *ret_n)
{
	struct serve_copy *p, *next;
	char *names = NULL, *nn;
	size_t b, n = 0;
	struct hot *h;

	for (b = 0; b < COPY_BUCKETS; b++)
		for (p = c->copies[b]; p; p = next) {
			next = p->next;
			if (version ? p->key.version != version :
			    p->key.ino != ino)
				continue;
			nn = realloc(names, (n + 1) * NAME_MAX_LEN);
			if (!nn)
				break; /* left to eviction */
			names = nn;
			copy_name(&p->key, names + n++ * NAME_MAX_LEN);
			copy_unlink_entry(c, p);
		}
	for (b = 0; b < HOT_BUCKETS; b++)
		for (h = c->hot[b]; h; h = h->next)
			if (version ? h->key.version == version :
			    h->key.ino == ino)
				h->dropped = true;
	*ret_n = n;
	return names;
}

static void unlink_names(struct serve_cache *c, char *names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (unlinkat(c->dirfd, names + i * NAME_MAX_LEN, 0) < 0 &&
		    errno != ENOENT)
			log_warn(-errno, "cannot remove serving copy '%s/%s'",
				 c->dir, names + i * NAME_MAX_LEN);
	free(names);
}

void serve_drop_version(struct serve_cache *c, uint64_t version)
{
	char *names;
	size_t n;

	if (!c || !c->dir || !version)
		return;
	pthread_mutex_lock(&c->lock);
	names = take_out(c, version, 0, &n);
	pthread_mutex_unlock(&c->lock);
	unlink_names(c, names, n);
}

void serve_sweep(struct serve_cache *c,
		 bool (*alive)(void *arg, const struct serve_key *key),
		 void *arg)
{
	struct serve_key *keys = NULL;
	struct serve_copy *p;
	size_t n = 0, i, b;

	if (!c || !c->dir || !alive)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->ncopies &&
	    (keys = reallocarray(NULL, c->ncopies, sizeof(*keys))))
		for (b = 0; b < COPY_BUCKETS; b++)
			for (p = c->copies[b]; p; p = p->next)
				keys[n++] = p->key;
	pthread_mutex_unlock(&c->lock);
	for (i = 0; i < n; i++) {
		char *names;
		size_t nn;

		if (alive(arg, &keys[i]))
			continue;
		pthread_mutex_lock(&c->lock);
		p = copy_find(c, keys[i].ino);
		names = p && chunkid_eq(&p->key.digest, &keys[i].digest) ?
			take_out(c, 0, keys[i].ino, &nn) : NULL;
		pthread_mutex_unlock(&c->lock);
		if (names)
			unlink_names(c, names, nn);
	}
	free(keys);
}

/* ---- hydration ------------------------------------------------------- */

/* Evicts idle copies, least recently used first, until need more bytes
 * fit the capacity (lock held; files unlinked with the lock dropped).
 * *ret_fits tells whether they do now. */
static void trim(struct serve_cache *c, uint64_t need, bool *ret_fits)
{
	char *names = NULL, *nn;
	uint64_t idle = 0;
	size_t n = 0, b;
	struct serve_copy *p;

	/* evict nothing for a file that would not fit anyway */
	for (b = 0; b < COPY_BUCKETS; b++)
		for (p = c->copies[b]; p; p = p->next)
			if (!p->holders)
				idle += p->key.size;
	if (c->bytes + c->reserved + need > c->capacity + idle && need) {
		*ret_fits = false;
		return;
	}
	while (c->bytes + c->reserved + need > c->capacity) {
		struct serve_copy *victim = NULL;

		for (b = 0; b < COPY_BUCKETS; b++)
			for (p = c->copies[b]; p; p = p->next)
				if (!p->holders &&
				    (!victim || p->used < victim->used))
					victim = p;
		if (!victim)
			break;
		nn = realloc(names, (n + 1) * NAME_MAX_LEN);
		if (!nn)
			break;
		names = nn;
		copy_name(&victim->key, names + n++ * NAME_MAX_LEN);
		copy_unlink_entry(c, victim);
		c->evictions++;
	}
	*ret_fits = c->bytes + c->reserved + need <= c->capacity;
	if (n) {
		pthread_mutex_unlock(&c->lock);
		unlink_names(c, names, n);
		pthread_mutex_lock(&c->lock);
	} else {
		free(names);
	}
}

/* Whether the disk keeps FREE_MIN and FREE_PCT free after need more. */
static bool disk_has_room(struct serve_cache *c, uint64_t need)
{
	struct statvfs sv;
	uint64_t avail, total, floor;

	if (fstatvfs(c->dirfd, &sv) < 0)
		return true; /* the write will tell */
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	total = (uint64_t)sv.f_blocks * sv.f_frsize;
	floor = total / 100 * FREE_PCT;
	if (floor < FREE_MIN)
		floor = FREE_MIN;
	return avail >= need + floor;
}

static int write_full(int fd, const void *buf, size_t n, uint64_t off)
{
	const char *p = buf;

	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		off += (uint64_t)w;
		n -= (size_t)w;
	}
	return 0;
}

static bool stopping(struct serve_cache *c)
{
	bool s;

	pthread_mutex_lock(&c->lock);
	s = c->stop || c->off != SERVE_OPEN_PASSTHROUGH;
	pthread_mutex_unlock(&c->lock);
	return s;
}

/* Writes key's copy: its bytes from the source into a temporary file,
 * hashed on the way; compared with the digest; fsynced; renamed into
 * place; the directory synced. 0 or a negative errno (logged). */
static int hydrate(struct serve_cache *c, const struct serve_key *key)
{
	char tmp[64], name[NAME_MAX_LEN], hex[MREG_ID_HEX], hex2[MREG_ID_HEX];
	struct digest_state ds;
	struct mreg_id got;
	void *h = NULL;
	uint8_t *buf;
	uint64_t off = 0;
	int fd, r;

	snprintf(tmp, sizeof(tmp), ".tmp-%" PRIu64 "-%d", key->ino,
		 (int)getpid());
	copy_name(key, name);
	buf = malloc(HYDRATE_BLOCK);
	if (!buf)
		return -ENOMEM;
	fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
		    O_NOFOLLOW, 0400);
	if (fd < 0) {
		free(buf);
		return log_err(-errno, "cannot create '%s/%s'", c->dir, tmp);
	}
	/* the space now, so that a short disk fails before the copy */
	if (key->size && fallocate(fd, 0, 0, (off_t)key->size) < 0 &&
	    errno != EOPNOTSUPP && errno != ENOSYS) {
		r = log_err(-errno, "cannot hydrate inode %" PRIu64 " into "
			    "'%s'", key->ino, c->dir);
		goto out;
	}
	r = c->src.open(c->src.arg, key, &h);
	if (r < 0) {
		log_err(r, "cannot open inode %" PRIu64 " to hydrate it",
			key->ino);
		goto out;
	}
	digest_init(&ds);
	while (off < key->size) {
		size_t want = key->size - off < HYDRATE_BLOCK ?
			      (size_t)(key->size - off) : HYDRATE_BLOCK;
		ssize_t n = c->src.read(h, buf, want, off);

		if (n == 0)
			n = log_err(-EIO, "inode %" PRIu64 " ends at %" PRIu64
				    ", before its size %" PRIu64, key->ino,
				    off, key->size);
		if (n < 0) {
			r = (int)n;
			log_err(r, "cannot read inode %" PRIu64 " to hydrate "
				"it", key->ino);
			goto out;
		}
		digest_update(&ds, buf, (size_t)n);
		if ((r = write_full(fd, buf, (size_t)n, off)) < 0) {
			log_err(r, "cannot write '%s/%s'", c->dir, tmp);
			goto out;
		}
		/* start writing it back now, beside the next reads: the
		   fsync at the end then waits for the tail only */
		sync_file_range(fd, (off_t)off, n, SYNC_FILE_RANGE_WRITE);
		off += (uint64_t)n;
		if (stopping(c)) {
			r = -ECANCELED;
			goto out;
		}
		if (c->delay_ms)
			usleep(c->delay_ms * 1000u);
	}
	digest_final(&ds, &got);
	if (!chunkid_eq(&got, &key->digest)) {
		r = log_err(-EIO, "copy of inode %" PRIu64 " hashes to %s, "
			    "not %s: not served", key->ino,
			    chunkid_hex(&got, hex),
			    chunkid_hex(&key->digest, hex2));
		goto out;
	}
	if (fsync(fd) < 0) {
		r = log_err(-errno, "cannot sync '%s/%s'", c->dir, tmp);
		goto out;
	}
	if (renameat(c->dirfd, tmp, c->dirfd, name) < 0) {
		r = log_err(-errno, "cannot rename '%s/%s'", c->dir, tmp);
		goto out;
	}
	if (fsync(c->dirfd) < 0) {
		r = log_err(-errno, "cannot sync '%s'", c->dir);
		unlinkat(c->dirfd, name, 0);
		goto out;
	}
	r = 0;
out:
	if (h)
		c->src.close(h);
	close(fd);
	if (r < 0)
		unlinkat(c->dirfd, tmp, 0);
	free(buf);
	return r;
}

/* Runs one queued file (lock held on entry and return). */
static void hydrate_one(struct serve_cache *c, struct hot *h)
{
	struct serve_key key = h->key;
	struct serve_copy *p;
	bool fits;
	int r;

	h->running = true;
	trim(c, key.size, &fits);
	if (!fits || !disk_has_room(c, key.size)) {
		log_info("no room to hydrate inode %" PRIu64 " (%" PRIu64
			 " bytes) in '%s'", key.ino, key.size, c->dir);
		c->no_room++;
		h->state = SERVE_NO_ROOM;
		h->room_seen = c->room_gen;
		h->running = false;
		return;
	}
	c->reserved += key.size;
	pthread_mutex_unlock(&c->lock);
	r = hydrate(c, &key);
	p = r == 0 ? calloc(1, sizeof(*p)) : NULL;
	pthread_mutex_lock(&c->lock);
	c->reserved -= key.size;
	h->running = false;
	if (r == 0 && p && !h->dropped) {
		p->key = key;
		p->used = ++c->clock;
		copy_insert(c, p);
		c->hydrated++;
		c->hydrated_bytes += key.size;
		h->state = SERVE_COLD;
		hot_remove(c, h);
		log_info("hydrated inode %" PRIu64 " (%" PRIu64 " bytes)",
			 key.ino, key.size);
		return;
	}
	if (r == 0) {
		/* out of memory, or its version went meanwhile */
		char name[NAME_MAX_LEN];

		copy_name(&key, name);
		unlinkat(c->dirfd, name, 0);
		free(p);
		h->state = SERVE_COLD;
		hot_remove(c, h);
		return;
	}
	if (r == -ECANCELED) {
		h->state = SERVE_COLD;
		return;
	}
	c->failed++;
	h->state = SERVE_FAILED;
	h->retry_at = mono_ns() + RETRY_NS;
}

static void *hydrator(void *arg)
{
	struct serve_cache *c = arg;
	struct hot *h;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		if (!(h = c->qhead)) {
			pthread_cond_wait(&c->cond, &c->lock);
			continue;
		}
		c->qhead = h->qnext;
		if (!c->qhead)
			c->qtail = NULL;
		c->queued--;
		hydrate_one(c, h);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- metrics ---------------------------------------------------------- */

/* One family of one sample, as Prometheus wants it (HELP and TYPE). */
static void family(struct strbuf *sb, const char *name, const char *type,
		   const char *help, uint64_t v)
{
	strbuf_addf(sb, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name,
		    help, name, type, name, v);
}

void serve_metrics(struct serve_cache *c, struct strbuf *sb)
{
	size_t k;
	uint64_t pending;

	if (!c || !sb)
		return;
	pthread_mutex_lock(&c->lock);
	pending = c->queued + (c->reserved ? 1 : 0);
	strbuf_addf(sb, "# HELP mreg_serve_passthrough Whether the kernel "
		    "serves hydrated sealed files (FUSE passthrough): 1, or 0 "
		    "with the reason.\n# TYPE mreg_serve_passthrough gauge\n"
		    "mreg_serve_passthrough{state=\"%s\"} %d\n",
		    c->off == SERVE_OPEN_PASSTHROUGH ? "on" :
		    kind_names[c->off], c->off == SERVE_OPEN_PASSTHROUGH);
	strbuf_adds(sb, "# HELP mreg_serve_opens_total Opens of files by "
		    "who serves them: the kernel (passthrough) or the daemon "
		    "(fallback, with why).\n"
		    "# TYPE mreg_serve_opens_total counter\n");
	for (k = 0; k < SERVE_OPEN_KINDS; k++) {
		uint64_t v = atomic_load(&c->opens[k]);

		if (k == SERVE_OPEN_PASSTHROUGH)
			strbuf_addf(sb, "mreg_serve_opens_total{mode="
				    "\"passthrough\"} %" PRIu64 "\n", v);
		else
			strbuf_addf(sb, "mreg_serve_opens_total{mode="
				    "\"fallback\",reason=\"%s\"} %" PRIu64
				    "\n", kind_names[k], v);
	}
	family(sb, "mreg_serve_daemon_reads_total", "counter", "READ requests "
	       "the daemon answered (passthrough reads never reach it).",
	       (uint64_t)atomic_load(&c->daemon_reads));
	family(sb, "mreg_serve_files", "gauge", "Hydrated copies in the "
	       "serving cache.", c->ncopies);
	family(sb, "mreg_serve_bytes", "gauge", "Bytes of hydrated copies "
	       "(removed ones still open included).", c->bytes);
	family(sb, "mreg_serve_capacity_bytes", "gauge", "Bytes the serving "
	       "cache may hold ([serve] size).", c->dir ? c->capacity : 0);
	family(sb, "mreg_serve_pending", "gauge", "Files queued for "
	       "hydration or being hydrated.", pending);
	family(sb, "mreg_serve_hydrated_bytes_total", "counter", "Bytes of "
	       "copies made.", c->hydrated_bytes);
	strbuf_addf(sb, "# HELP mreg_serve_hydrations_total Hydrations by "
		    "result.\n# TYPE mreg_serve_hydrations_total counter\n"
		    "mreg_serve_hydrations_total{result=\"ok\"} %" PRIu64 "\n"
		    "mreg_serve_hydrations_total{result=\"failed\"} %" PRIu64
		    "\nmreg_serve_hydrations_total{result=\"no_room\"} %"
		    PRIu64 "\n", c->hydrated, c->failed, c->no_room);
	family(sb, "mreg_serve_evictions_total", "counter", "Copies removed "
	       "to make room.", c->evictions);
	pthread_mutex_unlock(&c->lock);
}

/* ---- offline: fsck, usage ------------------------------------------ */

/* Re-hashes the copy at dirfd/name against key: 0, or why not in why. */
static int check_copy(int dirfd, const char *name, struct serve_key *key,
		      uint8_t *buf, char *why, size_t wlen)
{
	char hex[MREG_ID_HEX];
	struct digest_state ds;
	struct mreg_id got;
	struct stat st;
	ssize_t n;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(why, wlen, "cannot be read: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	key->size = (uint64_t)st.st_size;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	digest_init(&ds);
	while ((n = read(fd, buf, BLOCK)) > 0)
		digest_update(&ds, buf, (size_t)n);
	if (n < 0) {
		snprintf(why, wlen, "cannot be read: %s", strerror(errno));
		close(fd);
		return -EIO;
	}
	close(fd);
	digest_final(&ds, &got);
	if (!chunkid_eq(&got, &key->digest)) {
		snprintf(why, wlen, "its bytes hash to xxh128:%s",
			 chunkid_hex(&got, hex));
		return -EIO;
	}
	return 0;
}

int serve_fsck(const char *dir,
	       void (*bad)(void *arg, const struct serve_key *key,
			   const char *why),
	       void *arg)
{
	struct dirent *d;
	uint8_t *buf;
	int dirfd, n = 0, fd;
	DIR *dp;

	if (!dir || !bad)
		return -EINVAL;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return errno == ENOENT ? 0 : -errno;
	fd = dup(dirfd);
	if (fd < 0 || !(dp = fdopendir(fd))) {
		int e = -errno;

		if (fd >= 0)
			close(fd);
		close(dirfd);
		return e;
	}
	buf = malloc(BLOCK);
	if (!buf) {
		closedir(dp);
		close(dirfd);
		return -ENOMEM;
	}
	while ((d = readdir(dp))) {
		struct serve_key key;
		char why[256];

		if (!parse_name(d->d_name, &key))
			continue;
		if (check_copy(dirfd, d->d_name, &key, buf, why,
			       sizeof(why)) == 0)
			continue;
		/* a later serve_get() finds it gone and serves the file
		   from the store; an open using it keeps its bytes */
		if (unlinkat(dirfd, d->d_name, 0) < 0 && errno != ENOENT)
			snprintf(why + strlen(why), sizeof(why) - strlen(why),
				 " (and cannot be removed: %s)",
				 strerror(errno));
		bad(arg, &key, why);
		n++;
	}
	free(buf);
	closedir(dp);
	close(dirfd);
	return n;
}

int serve_usage(const char *dir, uint64_t *ret_files, uint64_t *ret_bytes)
{
	uint64_t files = 0, bytes = 0;
	struct dirent *d;
	struct stat st;
	DIR *dp;

	if (!dir || !ret_files || !ret_bytes)
		return -EINVAL;
	dp = opendir(dir);
	if (!dp && errno != ENOENT)
		return -errno;
	while (dp && (d = readdir(dp))) {
		struct serve_key key;

		if (!parse_name(d->d_name, &key) ||
		    fstatat(dirfd(dp), d->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		files++;
		bytes += (uint64_t)st.st_size;
	}
	if (dp)
		closedir(dp);
	*ret_files = files;
	*ret_bytes = bytes;
	return 0;
}
