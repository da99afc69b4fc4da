/* cache.c — the serving cache (see serve.h for the directory's layout and
 * when a file is hot; internal.h for its state).
 *
 * cache.c: names, the tables, opening and closing, on/off, serving,
 * what is hot. hydrate.c: removal, hydration, metrics, offline fsck.
 */
#include "internal.h"

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

void serve_copy_name(const struct serve_key *k, char buf[NAME_MAX_LEN])
{
	char hex[MREG_ID_HEX];

	snprintf(buf, NAME_MAX_LEN, "%" PRIu64 "-%" PRIu64 "-%s", k->version,
		 k->ino, chunkid_hex(&k->digest, hex));
}

/* Parses "V-I-DIGEST" (size is not in the name). */
bool serve_parse_name(const char *s, struct serve_key *ret)
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

struct serve_copy *serve_copy_find(struct serve_cache *c, uint64_t ino)
{
	struct serve_copy *p;

	for (p = c->copies[bucket(ino, COPY_BUCKETS)]; p; p = p->next)
		if (p->key.ino == ino)
			return p;
	return NULL;
}

void serve_copy_insert(struct serve_cache *c, struct serve_copy *p)
{
	struct serve_copy **b = &c->copies[bucket(p->key.ino, COPY_BUCKETS)];

	p->next = *b;
	*b = p;
	c->ncopies++;
	c->bytes += p->key.size;
}

/* Takes p out of the table; its bytes stay counted while it is held. */
void serve_copy_unlink(struct serve_cache *c, struct serve_copy *p)
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

void serve_hot_remove(struct serve_cache *c, struct hot *h)
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
		serve_hot_remove(c, victim);
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
		if (!serve_parse_name(d->d_name, &k) ||
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

		if (serve_copy_find(c, v[i].key.ino)) {
			/* two copies of one inode (cannot be made by one
			   run): keep the newer */
			p = serve_copy_find(c, v[i].key.ino);
			serve_copy_name(&p->key, name);
			unlinkat(c->dirfd, name, 0);
			serve_copy_unlink(c, p);
		}
		p = calloc(1, sizeof(*p));
		if (!p) {
			free(v);
			return -ENOMEM;
		}
		p->key = v[i].key;
		p->used = ++c->clock;
		serve_copy_insert(c, p);
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
	serve_trim(c, 0, &fits); /* [serve] size may have shrunk */
	pthread_mutex_unlock(&c->lock);
	r = pthread_create(&c->worker, NULL, serve_hydrator, c);
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
	p = c->dir ? serve_copy_find(c, key->ino) : NULL;
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

	serve_copy_name(key, name);
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
		serve_copy_unlink(c, p);
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
	if (c->off == SERVE_OPEN_PASSTHROUGH && !serve_copy_find(c, key->ino) &&
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
	if ((p = serve_copy_find(c, key->ino)) &&
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

