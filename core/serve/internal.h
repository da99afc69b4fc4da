/* internal.h — what cache.c and hydrate.c of the serving cache share (not
 * an API: serve.h is).
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
#ifndef MREG_SERVE_INTERNAL_H
#define MREG_SERVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "serve/serve.h"

#define COPY_BUCKETS 256
#define HOT_BUCKETS 256
#define HOT_MAX 4096                    /* files tracked without a copy */
#define BLOCK (1u << 20)                /* fsck reads */
/* Hydration writes: the page cache of the copy is made of folios no
 * larger than the writes that filled it, and only a 2 MiB folio can be
 * mapped by one PMD, as a natively read file's is (mmap at native speed). */
#define HYDRATE_BLOCK (4u << 20)
#define RETRY_NS (60LL * 1000000000)    /* a failed hydration waits */
#define FREE_MIN (1ULL << 30)           /* never fill the disk beyond 1 GiB
					   (and 5 %) free */
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

/* ---- cache.c ---- */
/* A copy's file name: "V-I-DIGEST" (the size is not in the name). */
void serve_copy_name(const struct serve_key *k, char buf[NAME_MAX_LEN]);
/* Parses a copy's file name "V-I-DIGEST" into ret (size not in it). */
bool serve_parse_name(const char *s, struct serve_key *ret);
/* The copy of inode ino in the table (lock held), or NULL. */
struct serve_copy *serve_copy_find(struct serve_cache *c, uint64_t ino);
void serve_copy_insert(struct serve_cache *c, struct serve_copy *p);
/* Takes p out of the table; its bytes stay counted while it is held. */
void serve_copy_unlink(struct serve_cache *c, struct serve_copy *p);
/* Forgets hot file h, which is not pending (lock held). */
void serve_hot_remove(struct serve_cache *c, struct hot *h);

/* ---- hydrate.c ---- */
/* Evicts idle copies, least recently used first, until need more bytes
 * fit the capacity (lock held; files unlinked with the lock dropped).
 * *ret_fits tells whether they do now. */
void serve_trim(struct serve_cache *c, uint64_t need, bool *ret_fits);
/* The hydration thread (arg: the cache), until c->stop. */
void *serve_hydrator(void *arg);

#endif
