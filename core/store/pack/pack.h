/* pack.h — private to store/pack/: the pack backend's state and what its
 * files share. pack.c: names, locations, containers, open and close;
 * write.c: appending, batches, sync; read.c: the read cache, reads,
 * walks. See pack.c for the packs on disk and their locks. Every function
 * here takes a store pack_open() made; the errors are those of the
 * store.h call each one serves.
 */
#ifndef MREG_STORE_PACK_H
#define MREG_STORE_PACK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/backend.h"

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

static inline struct pack_store *ps(struct mreg_store *ms)
{
	return (struct pack_store *)ms;
}

/* ---- pack.c: names and locations ---- */

/* "pack-NNNNNNNN.pack" of pack number num into buf. */
void pack_name(uint32_t num, char buf[PACK_NAME_LEN + 1]);
/* Opens pack number pack read-only, its file name into name: the
 * descriptor, -ENOENT when there is no such pack, else -errno (logged). */
int pack_open_ro(struct pack_store *s, uint32_t pack,
		 char name[PACK_NAME_LEN + 1]);
/* A container's name as a pack number: false when none can be. */
bool pack_number(uint64_t container, uint32_t *ret);
/* A location's bytes from its fields, and back: pack_loc_fields is false
 * for a location that is not 16 bytes long, pack_loc_decode also for one
 * this backend could not have made. */
void pack_loc_encode(const struct ploc *l, struct chunk_loc *ret);
bool pack_loc_fields(const struct chunk_loc *loc, struct ploc *ret);
bool pack_loc_decode(const struct chunk_loc *loc, struct ploc *ret);
/* The highest pack number in the directory, 0 when there is none. */
int pack_scan_max(struct pack_store *s, uint32_t *ret);

/* ---- write.c ---- */

/* Writes p's buffer out (mu held); a failure retires p. -errno. */
int pack_flush(struct pack_store *s, struct wpack *p);
int pack_put(struct mreg_store *ms, const struct mreg_id *id,
	     const void *data, uint32_t len, struct chunk_loc *ret);
void pack_batch_begin(struct mreg_store *ms);
void pack_batch_end(struct mreg_store *ms);
int pack_sync(struct mreg_store *ms);

/* ---- read.c ---- */

/* Drops a reference to a cached read descriptor. */
void pack_rfd_unref(struct rfd *f);
/* Drops the cached read descriptors of removed packs; of pack. */
void pack_rc_sweep(struct pack_store *s);
void pack_rc_drop(struct pack_store *s, uint32_t pack);
int pack_get(struct mreg_store *ms, const struct chunk_loc *cloc,
	     const struct mreg_id *id, void *buf);
int pack_loc_span(const struct mreg_store *ms, const struct chunk_loc *loc,
		  struct store_span *ret);
const char *pack_loc_name(const struct mreg_store *ms,
			  const struct chunk_loc *loc, char *buf, size_t size);
int pack_iterate(struct mreg_store *ms, uint64_t container,
		 int (*fn)(void *arg, const struct mreg_id *id,
			   const struct chunk_loc *loc, const void *data,
			   uint32_t len),
		 void *arg);

#endif
