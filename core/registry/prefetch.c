/* prefetch.c — a version's chunks into this host's chunk cache (issue
 * 13): mreg prefetch on the store (reg_prefetch()), through a mount (the
 * control attribute user.mreg.cache, read by reg_getxattr()), and by a
 * daemon after each promotion ([cache] prefetch_on_promote).
 *
 * Only a store with a host cache in front of a remote one (STORE_CACHED:
 * backend = s3) has one to fill; a local store's chunks are on this host
 * already (-EOPNOTSUPP). What is filled is sealed content: the chunks of
 * its files, in file order, which the cache fetches as it fetches ahead
 * of sequential reads (store_fill(): several requests at once, chunks
 * next to each other in one request), in batches, waiting for each. A
 * version whose files are more bytes than the cache holds ([cache] size)
 * is refused (-EFBIG) rather than filled only to evict its own first
 * chunks. A chunk gc moved since its file's extents were read (-ENOENT)
 * is found by reading the files of that batch through (reader.c looks
 * chunks up again), which keeps what they read in the cache too.
 *
 * On promotion. The daemon's tick reads the promotions and rollbacks
 * committed since it last looked (the audit trail: every process's, as
 * the serving cache's hydrate_on_promote does) and hands their versions
 * to a thread of its own, which fills them one after another: the
 * promotion never waits for it, and a failure is logged.
 */
#include "internal.h"
#include "registry/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define BATCH 1024              /* chunks handed to store_fill() at once */
#define PENDING_MAX 64          /* promoted versions waiting to be filled */
#define XATTR_MAX 128           /* the longest answer of user.mreg.cache */

/* ---- filling ------------------------------------------------------------ */

struct files {
	struct serve_key *v;
	size_t n, cap;
};

static int add_file(void *arg, const struct serve_key *key)
{
	struct files *fl = arg;

	if (ARRAY_GROW(fl->v, fl->cap, fl->n) < 0)
		return -ENOMEM;
	fl->v[fl->n++] = *key;
	return 0;
}

/* Chunks waiting for store_fill(), from the files [first, last] of the
 * list; once *stop is set (if not NULL), it fills nothing more. */
struct batch {
	struct chunk_loc locs[BATCH];
	struct mreg_id ids[BATCH];
	size_t n, first, last;
	const atomic_bool *stop;
};

/* Reads file key through, to no one: its chunks land in the cache. */
static int read_through(struct reg_registry *reg, const struct serve_key *key)
{
	struct reg_caller self;
	struct reg_file *f;
	uint64_t off = 0;
	ssize_t n = 0;
	uint8_t *buf;
	int r;

	reg_caller_self(&self);
	r = reg_file_open(reg, &self, key->ino, O_RDONLY, &f);
	if (r < 0)
		return r;
	reg_file_read_quietly(f);
	buf = malloc(1u << 20);
	while (buf && (n = reg_file_read(f, buf, 1u << 20, off)) > 0)
		off += (uint64_t)n;
	free(buf);
	reg_file_release(f);
	return !buf ? -ENOMEM : n < 0 ? (int)n : 0;
}

/* Fills the batch's chunks into the cache; it is empty after. */
static int flush(struct reg_registry *reg, const struct files *fl,
		 struct batch *b, struct reg_prefetch_info *info)
{
	uint64_t fetched = 0;
	size_t i;
	int r;

	if (!b->n)
		return 0;
	if (b->stop && atomic_load(b->stop))
		return -ECANCELED;
	r = store_fill(reg->st, b->locs, b->ids, b->n, &fetched);
	if (r == -ENOENT)	/* gc moved a chunk: look them up, reading */
		for (i = b->first, r = 0; i <= b->last && r == 0; i++)
			r = read_through(reg, &fl->v[i]);
	info->fetched += fetched;
	b->n = 0;
	return r;
}

/* Adds the chunks of file i of the list to the batch, filling it into
 * the cache whenever it is full. */
static int add_chunks(struct reg_registry *reg, const struct files *fl,
		      size_t i, struct batch *b, struct reg_prefetch_info *info)
{
	struct reg_caller self;
	struct reg_file *f;
	size_t k;
	int r;

	reg_caller_self(&self);
	r = reg_file_open(reg, &self, fl->v[i].ino, O_RDONLY, &f);
	if (r < 0)
		return r;
	for (k = 0, r = 0; k < f->next && r == 0; k++) {
		if (!b->n)
			b->first = i;
		b->last = i;
		b->locs[b->n] = f->ext[k].loc;
		rec_chunk_key_id(&f->ext[k].key, &b->ids[b->n]);
		info->chunks++;
		if (++b->n == BATCH)
			r = flush(reg, fl, b, info);
	}
	reg_file_release(f);
	return r;
}

/* reg_prefetch_ino(), ending with -ECANCELED between two batches once
 * *stop is set (NULL: never). */
static int prefetch_ino(struct reg_registry *reg, uint64_t ino,
			const atomic_bool *stop, struct reg_prefetch_info *ret)
{
	struct reg_prefetch_info info = { 0 };
	struct files fl = { 0 };
	struct batch *b = NULL;
	char name[512];
	size_t i;
	int r;

	if (!(store_caps(reg->st) & STORE_CACHED))
		return -EOPNOTSUPP;
	r = reg_serve_files(reg, ino, add_file, &fl);
	for (i = 0; r == 0 && i < fl.n; i++)
		info.bytes += fl.v[i].size;
	info.files = fl.n;
	if (r == 0 && info.bytes > reg->cfg->cache_size) {
		reg_serve_name(reg, ino, name, sizeof(name));
		r = log_err(-EFBIG, "'%s' (%" PRIu64 " bytes of files) does "
			    "not fit in this host's chunk cache ([cache] "
			    "size = %" PRIu64 ")", name, info.bytes,
			    reg->cfg->cache_size);
	}
	if (r == 0 && !(b = calloc(1, sizeof(*b))))
		r = -ENOMEM;
	if (b)
		b->stop = stop;
	for (i = 0; r == 0 && i < fl.n; i++)
		r = add_chunks(reg, &fl, i, b, &info);
	if (r == 0)
		r = flush(reg, &fl, b, &info);
	free(b);
	free(fl.v);
	if (r == 0)
		*ret = info;
	return r;
}

int reg_prefetch_ino(struct reg_registry *reg, uint64_t ino,
		     struct reg_prefetch_info *ret)
{
	if (!reg || !ret)
		return -EINVAL;
	return prefetch_ino(reg, ino, NULL, ret);
}

struct target_arg {
	const char *model, *what;
	char version[REG_NAME_MAX + 1];
	uint64_t ino;
};

/* Stage what of model, else its version what. */
static int target_txn(struct idx_txn *t, void *arg)
{
	struct target_arg *a = arg;
	struct inode_rec m, r;
	uint64_t ino;
	int e;

	if ((e = reg_model_get_txn(t, a->model, &m)) < 0)
		return e;
	e = reg_name_get_txn(t, m.stages_ino, a->what, &ino);
	if (e == -ENOENT)
		e = reg_name_get_txn(t, m.ino, a->what, &ino);
	else if (e == 0 && (e = reg_inode_get_txn(t, ino, &r)) == 0)
		ino = r.target;
	if (e < 0 || (e = reg_inode_get_txn(t, ino, &r)) < 0)
		return e;
	if (r.kind != REG_VERSION || (r.flags & INODE_TRASHED))
		return -ENOENT;
	if (strlen(r.name) >= sizeof(a->version))
		return -EIO;
	strcpy(a->version, r.name);
	a->ino = r.ino;
	return 0;
}

int reg_prefetch(struct reg_registry *reg, const char *model,
		 const char *what, char *ret_version,
		 struct reg_prefetch_info *ret)
{
	struct target_arg a = { .model = model, .what = what };
	int r;

	if (!reg || !model || !what || !ret)
		return -EINVAL;
	if (reg_check_name(model) < 0 ||
	    (reg_check_stage(what) < 0 && reg_check_name(what) < 0))
		return -EINVAL;
	r = idx_read(reg->ix, target_txn, &a);
	if (r == 0)
		r = reg_prefetch_ino(reg, a.ino, ret);
	if (r == 0 && ret_version)
		strcpy(ret_version, a.version);
	return r;
}

ssize_t reg_prefetch_xattr(struct reg_registry *reg, uint64_t ino, void *buf,
			   size_t size)
{
	struct reg_prefetch_info info;
	char val[XATTR_MAX];
	int n, r;

	if (size == 0)
		return XATTR_MAX;	/* asks nothing of the store yet */
	r = reg_prefetch_ino(reg, ino, &info);
	if (r < 0)
		return r;
	n = snprintf(val, sizeof(val), "files=%" PRIu64 " bytes=%" PRIu64
		     " chunks=%" PRIu64 " fetched=%" PRIu64, info.files,
		     info.bytes, info.chunks, info.fetched);
	if ((size_t)n > size)
		return -ERANGE;
	memcpy(buf, val, (size_t)n);
	return n;
}

/* ---- on promotion ------------------------------------------------------- */

struct reg_prefetcher {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thr;
	bool running;
	atomic_bool stopping;     /* also ends a fill between batches */
	uint64_t pos;             /* the audit records seen */
	uint64_t q[PENDING_MAX];  /* versions to fill, oldest first */
	unsigned n;
};

static void *prefetcher_main(void *arg)
{
	struct reg_registry *reg = arg;
	struct reg_prefetcher *p = reg->prefetcher;
	struct reg_prefetch_info info;
	char name[512];
	uint64_t v;
	int r;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->n && !p->stopping)
			pthread_cond_wait(&p->cond, &p->mu);
		if (p->stopping)
			break;
		v = p->q[0];
		memmove(p->q, p->q + 1, --p->n * sizeof(p->q[0]));
		pthread_mutex_unlock(&p->mu);
		r = prefetch_ino(reg, v, &p->stopping, &info);
		reg_serve_name(reg, v, name, sizeof(name));
		if (r == 0)
			log_info("prefetched '%s' after its promotion: %"
				 PRIu64 " bytes, %" PRIu64 " fetched", name,
				 info.bytes, info.fetched);
		else if (r != -ENOENT && r != -ECANCELED) /* removed since,
							       or we stop */
			log_warn(r, "cannot prefetch '%s' after its promotion",
				 name);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static int queue_version(void *arg, uint64_t version)
{
	struct reg_registry *reg = arg;
	struct reg_prefetcher *p = reg->prefetcher;
	unsigned i;
	int r;

	pthread_mutex_lock(&p->mu);
	for (i = 0; i < p->n && p->q[i] != version; i++)
		;
	if (i == p->n && p->n < PENDING_MAX)
		p->q[p->n++] = version;
	else if (i == p->n)
		log_warn(0, "too many promotions to prefetch: version inode "
			 "%" PRIu64 " left out", version);
	if (!p->running) {
		r = -pthread_create(&p->thr, NULL, prefetcher_main, reg);
		if (r < 0)
			log_warn(r, "cannot start the thread that prefetches "
				 "promoted versions");
		p->running = r == 0;
	}
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int reg_prefetcher_start(struct reg_registry *reg)
{
	struct reg_prefetcher *p;
	int r;

	if (!reg->cfg->cache_prefetch_on_promote ||
	    !(store_caps(reg->st) & STORE_CACHED))
		return 0;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->pos = REG_SERVE_START;
	reg->prefetcher = p;
	/* promotions from now on */
	r = reg_serve_promotions(reg, &p->pos, queue_version, reg);
	if (r < 0)
		reg_prefetcher_stop(reg);
	return r;
}

void reg_prefetcher_tick(struct reg_registry *reg)
{
	int r;

	if (!reg->prefetcher)
		return;
	r = reg_serve_promotions(reg, &reg->prefetcher->pos, queue_version,
				 reg);
	if (r < 0)
		log_debug("cannot read promotions to prefetch: %s",
			  strerror(-r));
}

void reg_prefetcher_stop(struct reg_registry *reg)
{
	struct reg_prefetcher *p = reg->prefetcher;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
	if (p->running)
		pthread_join(p->thr, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cond);
	free(p);
	reg->prefetcher = NULL;
}
