/* store.h — the chunk store: where the bytes of chunks live. One
 * interface; backends: pack (store/pack/: pack files on a local disk, the
 * default), s3 (store/s3/s3store.c: pack objects in a bucket) and cache
 * (store/cache/: a host's cache in front of another store). It knows
 * nothing of the index or of the registry's rules.
 *
 * Locations. store_put() tells where it put a chunk as a struct chunk_loc
 * (chunk/loc.h). Nothing above the store looks inside one: the index keeps
 * its bytes, the registry gives them back to store_get(), and what gc and
 * fsck need to know of it, store_loc_span() says.
 *
 * Containers. Chunks live in containers (a pack file, a pack object),
 * each named by a u64. A writer fills containers of its own; after that a
 * container changes only by gc: removed whole (store_delete), cut at a
 * tail no index record names (store_cut, where STORE_CAN_CUT), or emptied
 * by putting its live chunks again, renaming their locations in the index
 * and removing it. A container is busy while some writer may still name a
 * chunk of it in an index transaction; gc leaves busy containers alone.
 * What makes one busy is the backend's business: pack, the writer's
 * flock(2) (see store/pack/pack.c); s3, being younger than a grace
 * period within which every writer either names what it put or puts it
 * again (store_batch_check(); see store/s3/s3store.c).
 *
 * Durability, the contract every backend keeps:
 *  1. store_put() may keep bytes in memory; store_get() in this process
 *     finds them at once.
 *  2. store_sync() returns 0 only when every chunk this process put is
 *     durable where the backend keeps it (pack: written, fdatasync()ed, its
 *     file's directory entry synced; s3: the PUT or the
 *     CompleteMultipartUpload answered 200). A failed sync is reported by
 *     every later store_sync() until every batch open when it failed has
 *     ended: their chunks may never be named; the caller puts them again
 *     in a new batch. What was put outside any batch keeps a failed sync
 *     reported until store_close().
 *  3. A chunk may be named by an index transaction only after a successful
 *     store_sync(), before the store_batch_end() of the batch it was put
 *     in, and when store_batch_check() answers 0 inside that transaction.
 *     A crash leaves chunks nothing names (garbage for gc), never a name
 *     without its chunk.
 *  4. store_get() gives the bytes whose id is id, or fails with -EIO:
 *     never wrong bytes. The hash is checked in store.c, for every
 *     backend; a backend checks its own framing.
 *
 * Every function is thread-safe, returns 0 or a documented positive value,
 * or a negative errno (-EINVAL for a NULL or impossible argument), and
 * writes its output parameters only on success.
 */
#ifndef MREG_STORE_H
#define MREG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk/chunkid.h"
#include "chunk/loc.h"

struct mreg_store;

struct store_options {
	const char *backend;     /* "pack" (NULL: pack), "s3", "cache" */
	const char *dir;         /* pack: the store directory (packs/ in it,
				    created mode 0700 when missing) */
	uint64_t pack_size;      /* containers roll over past this (0: 64M) */
	bool sync;               /* false: nothing is made durable
				    (durability = none) */
	const void *backend_cfg; /* the backend's own configuration (pack:
				    none; s3: struct s3_store_config of
				    store/s3/s3store.h; cache: struct
				    cache_config of store/cache/cache.h) */
};

/* What a backend can do, store_caps(). */
#define STORE_CAN_CUT  0x1u   /* store_cut() works (pack) */
#define STORE_LOCAL    0x2u   /* store_room() is a local disk's free space:
				 a full disk is possible (pack) */
#define STORE_CACHED   0x4u   /* a host cache in front (cache): reads of
				 what it keeps send nothing to the store
				 behind; store_prefetch() and store_fill()
				 bring chunks into it */
#define STORE_CHECKS_ID 0x8u  /* get() with an id checks the data against it
				 itself (cache: it must, to drop a bad copy
				 and fetch again), so store_get() does not
				 hash the chunk a second time */

/* Opens the backend opt->backend. Errors: -EINVAL (unknown backend, bad
 * options, logged), -ENOMEM, and the backend's: pack, -errno of
 * mkdir/open (logged); s3, -EACCES, -ENOENT, -ETIMEDOUT, -EIO (wrong
 * credentials, no bucket, no answer: logged in one line, see
 * store/s3/s3store.h); cache, -errno of its directory (logged). */
int store_open(const struct store_options *opt, struct mreg_store **ret);
/* Writes out what is buffered (not synced) and frees; takes NULL. */
void store_close(struct mreg_store *s);
/* STORE_CAN_CUT, STORE_LOCAL, STORE_CACHED, STORE_CHECKS_ID; 0 for NULL. */
unsigned store_caps(const struct mreg_store *s);

/* ---- writing -------------------------------------------------------- */

/* A batch brackets the puts whose locations one index transaction will
 * name (rule 3): their containers stay protected from gc until the batch
 * ends, after that transaction committed or failed. Batches of several
 * threads may overlap. Puts outside a batch: gc may remove their
 * container before anything names them. */
void store_batch_begin(struct mreg_store *s);
void store_batch_end(struct mreg_store *s);

/* Stores one chunk (id computed by the caller) and says where: *ret.
 * Errors: -EINVAL, -ENOMEM, -ENOSPC, -EDQUOT, -EIO, -EOVERFLOW (no
 * container name left), -ETIMEDOUT (a remote backend), -errno of the
 * backend's writes. A put that fails
 * leaves nothing that a later sync would report durable, and loses
 * nothing put before it. */
int store_put(struct mreg_store *s, const struct mreg_id *id,
	      const void *data, uint32_t len, struct chunk_loc *ret);

/* Makes every chunk put so far (by any thread) durable (rule 2); with
 * opt->sync false it only writes out what is buffered. Errors: -EIO,
 * -ENOSPC, -EDQUOT, -ENOMEM, -ETIMEDOUT, -errno of the backend's
 * writes. */
int store_sync(struct mreg_store *s);

/* Called inside the index transaction that names chunks of the batches
 * open in this thread: 0 when they may be named, -EAGAIN when gc may no
 * longer respect their containers; the caller ends the batch and puts the
 * chunks again. pack: always 0 (its flock protects them). */
int store_batch_check(struct mreg_store *s);

/* ---- reading -------------------------------------------------------- */

/* Reads the chunk at loc into buf (its length: store_loc_span()'s len)
 * and checks it against id. -EIO on damage (framing, a record of another
 * chunk, or data whose hash is not id; logged with store_loc_name()),
 * -ENOENT when its container is gone (gc moved the chunk: look its
 * location up again), -EINVAL, -ENOMEM, -errno of the backend's reads
 * (a remote backend: -EIO once its retries and deadline are spent). */
int store_get(struct mreg_store *s, const struct chunk_loc *loc,
	      const struct mreg_id *id, void *buf);
/* The same without the id and hash checks (comparing bytes on an id
 * match; fsck telling a bad record from a bad hash). Never -EIO for a
 * hash. */
int store_get_raw(struct mreg_store *s, const struct chunk_loc *loc,
		  void *buf);
/* A hint that the chunks at locs[0..n) (ids[i] their ids, or ids NULL)
 * will be read soon; never fails. pack, s3: nothing to do; cache: starts
 * fetching them, several requests at once, chunks that lie one after
 * another in a container in one request (only with ids: what it keeps,
 * it checks first). Returns how many of them, from the first, it took
 * (n unless its queue is full: the caller may hint the rest later). */
size_t store_prefetch(struct mreg_store *s, const struct chunk_loc *locs,
		      const struct mreg_id *ids, size_t n);
/* Brings the chunks at locs[0..n) (ids[i] their ids) into the host cache
 * (STORE_CACHED) and waits until they are all there, fetching what it
 * lacks as store_prefetch() does, with a bounded queue and requests in
 * flight. *ret_fetched (may be NULL): the bytes of data it had to fetch.
 * Errors (the first failure ends it): -EINVAL, -EOPNOTSUPP (no host
 * cache: pack, s3 alone), -EFBIG (the chunks are more bytes than the
 * cache holds at once; logged, nothing fetched), -ENOMEM, and
 * store_get()'s: -EIO (a bad copy in the store behind, or the store
 * failing; logged), -ENOENT (a container is gone: gc moved a chunk),
 * -ETIMEDOUT. */
int store_fill(struct mreg_store *s, const struct chunk_loc *locs,
	       const struct mreg_id *ids, size_t n, uint64_t *ret_fetched);

/* What a location takes in its container: container, the offset of its
 * record, the data length and the bytes the record occupies (framing
 * included). No I/O. -EIO when loc is not one this backend makes (a
 * damaged index record). */
struct store_span {
	uint64_t container;
	uint64_t off;            /* of the record */
	uint32_t len;            /* of the chunk's data */
	uint64_t size;           /* bytes of the record, framing included */
};
int store_loc_span(const struct mreg_store *s, const struct chunk_loc *loc,
		   struct store_span *ret);
/* Where loc is, for messages ("offset 40 of pack 'DIR/packs/pack-...'");
 * writes at most size bytes to buf and returns buf. */
const char *store_loc_name(const struct mreg_store *s,
			   const struct chunk_loc *loc, char *buf,
			   size_t size);

/* ---- containers (gc, fsck, stats) ----------------------------------- */

struct store_container {
	uint64_t id;
	uint64_t size;           /* bytes */
	uint64_t base;           /* bytes no record can use (a header) */
	bool busy;               /* a writer may still name chunks of it (a
				    container under this store's own
				    store_claim() is not busy) */
};
/* Calls fn for every container, in id order; stops when fn returns
 * non-zero and returns that. A snapshot: gc lists before it reads the
 * chunk records (see maint/). Errors: -EINVAL, -ENOMEM, -errno of the
 * listing. */
int store_containers(struct mreg_store *s,
		     int (*fn)(void *arg, const struct store_container *c),
		     void *arg);
/* Walks the records of one container in order, fn getting each record's
 * id, location, data (valid during the call only) and length. A damaged
 * record (a torn one at the end included) ends the walk with -EIO after
 * fn saw the ones before; walk containers that are not busy. Stops when
 * fn returns non-zero and returns that. Errors: -EINVAL, -ENOENT, -EIO,
 * -ENOMEM, -errno of the backend's reads. */
int store_iterate(struct mreg_store *s, uint64_t container,
		  int (*fn)(void *arg, const struct mreg_id *id,
			    const struct chunk_loc *loc, const void *data,
			    uint32_t len),
		  void *arg);
/* gc's hold on a container before it changes it. Taking it again through
 * the same store returns 0 (one store_unclaim() releases it). Held until
 * store_unclaim() or store_delete(). -EBUSY (a writer holds it, this
 * process's included), -ENOENT. */
int store_claim(struct mreg_store *s, uint64_t container);
void store_unclaim(struct mreg_store *s, uint64_t container);
/* Its size in bytes now (through gc's hold when there is one). -EINVAL,
 * -ENOENT, -errno. */
int store_container_size(struct mreg_store *s, uint64_t container,
			 uint64_t *ret);
/* Removes a container no index record names (under this store's claim,
 * or claiming it first), its space given back at once even where other
 * processes still read it (their reads of it then fail with -ENOENT: the
 * chunk moved). -EINVAL, -EBUSY, -ENOENT, -errno. */
int store_delete(struct mreg_store *s, uint64_t container);
/* Cuts a container claimed by this store back to size bytes (base at
 * least; nothing when it is not longer): the caller makes sure that no
 * index record names a byte at or past size. -EINVAL (not claimed, size
 * below base), -EOPNOTSUPP without STORE_CAN_CUT, -errno. */
int store_cut(struct mreg_store *s, uint64_t container, uint64_t size);

/* Bytes in all containers (what is still buffered is not counted);
 * bytes free for new ones (UINT64_MAX when the backend has no such limit:
 * !STORE_LOCAL). -EINVAL, -ENOMEM, -errno. */
int store_bytes(struct mreg_store *s, uint64_t *ret);
int store_room(struct mreg_store *s, uint64_t *ret);
/* Housekeeping, every few seconds in a daemon and at the start of gc.
 * pack: nothing to do. */
int store_maint(struct mreg_store *s);

/* Fault injection for tests, pack backend only (nothing elsewhere): the
 * next write to a pack (STORE_FAULT_WRITE: half of it lands, then the
 * error, as a torn write on a full disk) or the next fdatasync() of a
 * pack (STORE_FAULT_SYNC: the call happens, then reports the error)
 * fails with -err. */
enum store_fault { STORE_FAULT_WRITE, STORE_FAULT_SYNC };
void pack_inject_fault(struct mreg_store *s, enum store_fault f, int err);

#endif
