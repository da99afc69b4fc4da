/* cache-int.h — what cache.c and prefetch.c of the host cache share (not
 * an API: cache.h is). cache.c says how the cache works.
 */
#ifndef MREG_STORE_CACHE_INT_H
#define MREG_STORE_CACHE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache.h"
#include "store/backend.h"

#define NAME_MAX_LEN (3 + 2 * CHUNK_LOC_MAX + 1)	/* "HH/" + hex */
#define QUEUE_MAX 1024		/* prefetches waiting at most */
#define FILL_QUEUE (QUEUE_MAX / 2)	/* of them, a fill's at most */
#define RUN_MAX (1u << 20)	/* bytes of records one request reads */
#define RUN_GAP (64u << 10)	/* bytes between two chunks of a run */
#define RUN_CHUNKS 64		/* chunks of a run at most */

enum { READY, LOADING };

struct entry {
	struct entry *hnext;		/* hash chain */
	struct entry *prev, *next;	/* use order, READY only */
	struct chunk_loc loc;
	uint64_t size;			/* of the file */
	int state;
};

/* A store_fill() waiting for its jobs. */
struct fill {
	size_t left;			/* jobs not done */
	int err;			/* the first failure */
	uint64_t fetched;		/* bytes of data fetched */
};

struct job {
	struct chunk_loc loc;
	struct mreg_id id;
	struct fill *fill;		/* or NULL: a prefetch */
};

struct cache_store {
	struct mreg_store base;
	struct mreg_store *inner;
	char *path;
	int dirfd;
	uint64_t limit;			/* [cache] size */
	uint64_t min_free;		/* [cache] min_free */

	pthread_mutex_t mu;		/* everything below */
	pthread_cond_t loaded;		/* a fetch ended */
	pthread_cond_t work;		/* a job was queued, or stop */
	pthread_cond_t room;		/* a job left the queue */
	struct entry **tab;
	size_t nbuckets, n;
	struct entry lru;		/* sentinel: next = most recent */
	uint64_t used;
	uint64_t tmpseq;
	struct job *q;
	unsigned qhead, qlen;
	bool stopping;
	pthread_t *thr;
	unsigned nthr;
};

static inline const struct mreg_store *inner_c(const struct cache_store *s)
{
	return s->inner;
}

/* ---- cache.c ---- */
/* The entries (s->mu held): found, added, dropped, moved to the front of
 * the use order, unloaded (a failed fetch), settled (a fetch kept). */
struct entry *store_cache_add(struct cache_store *s,
			      const struct chunk_loc *loc, int state);
void store_cache_drop(struct cache_store *s, struct entry *e, bool unlink_file);
int store_cache_fetch(struct cache_store *s, struct entry *e,
		      const struct chunk_loc *loc, const struct mreg_id *id,
		      uint32_t len, void *buf);
struct entry *store_cache_find(struct cache_store *s,
			       const struct chunk_loc *loc);
int store_cache_landed(struct cache_store *s, struct entry *e,
		       const struct chunk_loc *loc, const struct mreg_id *id,
		       uint32_t len, void *buf, int r);
void store_cache_lru_front(struct cache_store *s, struct entry *e);
int store_cache_read_kept(struct cache_store *s, const struct chunk_loc *loc,
			  const struct mreg_id *id, uint32_t len, void *buf,
			  const char **why);
void store_cache_settle(struct cache_store *s, struct entry *e, uint64_t size);
void store_cache_unload(struct cache_store *s, struct entry *e);
uint64_t store_cache_bound(struct cache_store *s);
int store_cache_get(struct mreg_store *ms, const struct chunk_loc *loc,
		    const struct mreg_id *id, void *buf);
void store_cache_give_up(struct cache_store *s, int r);

/* ---- prefetch.c ---- */
/* The fetcher threads' body (arg: the store), until s->stopping. */
void *store_cache_fetcher_main(void *arg);
/* The backend's prefetch and fill (backend.h). */
size_t store_cache_prefetch(struct mreg_store *ms,
			    const struct chunk_loc *locs,
			    const struct mreg_id *ids, size_t n);
int store_cache_fill(struct mreg_store *ms, const struct chunk_loc *locs,
		     const struct mreg_id *ids, size_t n,
		     uint64_t *ret_fetched);

#endif
