/* backend.h — what a chunk store backend implements (private to store/).
 *
 * A backend is one struct store_backend: one function per call of the
 * store interface (store.h), and a store that begins with struct
 * mreg_store, whose be names it. store.c checks the arguments once (a
 * backend gets no NULL where store.h forbids one), dispatches, and hashes
 * what get() returned when an id was given: a backend checks only its own
 * framing. Every function but open() gets a store its own open() made;
 * every one is thread-safe.
 *
 * Backends: pack (store/pack/: pack files in a directory), s3
 * (store/s3/s3store.c: pack objects in a bucket) and cache
 * (store/cache/: a host's cache in front of another store). A backend's
 * own configuration (store_options.backend_cfg) is declared in a public
 * header of its directory (store/s3/s3store.h, store/cache/cache.h).
 */
#ifndef MREG_STORE_BACKEND_H
#define MREG_STORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct mreg_store {
	const struct store_backend *be;
};

struct store_backend {
	const char *name;

	/* Opens a store of this backend; opt->backend_cfg is the backend's
	 * own configuration. Errors: -EINVAL (bad options, logged), -ENOMEM,
	 * and the backend's (documented in its header). */
	int (*open)(const struct store_options *opt, struct mreg_store **ret);
	/* Ends what is buffered (not made durable) and frees; takes NULL. */
	void (*close)(struct mreg_store *s);
	/* STORE_CAN_CUT, STORE_LOCAL, STORE_CACHED. */
	unsigned (*caps)(const struct mreg_store *s);

	/* Batches, put, sync, batch_check: rules 1-3 of store.h.
	 * put errors: -EINVAL, -ENOMEM, -ENOSPC, -EDQUOT, -EIO, -EOVERFLOW,
	 * -ETIMEDOUT; a put that fails leaves nothing a later sync reports
	 * durable. sync errors: -EIO, -ENOSPC, -EDQUOT, -ENOMEM, -ETIMEDOUT.
	 * batch_check: 0, or -EAGAIN when the chunks of the batches open
	 * must be put again before they are named. */
	void (*batch_begin)(struct mreg_store *s);
	void (*batch_end)(struct mreg_store *s);
	int (*put)(struct mreg_store *s, const struct mreg_id *id,
		   const void *data, uint32_t len, struct chunk_loc *ret);
	int (*sync)(struct mreg_store *s);
	int (*batch_check)(struct mreg_store *s);

	/* Reads the data of the chunk at loc into buf (the span's len
	 * bytes). id NULL: framing checked, not whose chunk it is (raw);
	 * else the record must name id. -EIO on damage (logged with
	 * loc_name), -ENOENT when the container is gone, -EINVAL,
	 * -ENOMEM; -EIO also for a remote read that failed after its
	 * retries, the deadline's end included. */
	int (*get)(struct mreg_store *s, const struct chunk_loc *loc,
		   const struct mreg_id *id, void *buf);
	/* No I/O; -EIO for a location this backend does not make. */
	int (*loc_span)(const struct mreg_store *s,
			const struct chunk_loc *loc, struct store_span *ret);
	const char *(*loc_name)(const struct mreg_store *s,
				const struct chunk_loc *loc, char *buf,
				size_t size);
	/* Optional (NULL: nothing to do): starts reading the chunks at
	 * locs[0..n) (ids[i] their ids, or ids NULL) so that the gets
	 * about to come find them at once. A hint: never fails; returns
	 * how many, from the first, it took. */
	size_t (*prefetch)(struct mreg_store *s, const struct chunk_loc *locs,
			   const struct mreg_id *ids, size_t n);
	/* Optional (NULL: n gets): reads the chunks at locs[0..n), which lie
	 * in one container in increasing order, in as few requests as it
	 * can (the bytes between them are read and dropped); bufs[i] gets
	 * chunk i's data, whose record must name ids[i]. 0, or the first
	 * error as get's (what bufs hold is then undefined). */
	int (*get_run)(struct mreg_store *s, const struct chunk_loc *locs,
		       const struct mreg_id *ids, size_t n, void *const *bufs);
	/* Optional (NULL: -EOPNOTSUPP): store_fill() of store.h. */
	int (*fill)(struct mreg_store *s, const struct chunk_loc *locs,
		    const struct mreg_id *ids, size_t n,
		    uint64_t *ret_fetched);

	/* Containers, as store_containers() .. store_maint() of store.h.
	 * containers: fn for each, in id order; stops at fn's non-zero.
	 * iterate: the records of one container, in order; -ENOENT, -EIO
	 * (after fn saw the records before the damage), -ENOMEM.
	 * claim: -EBUSY, -ENOENT. del: -EBUSY, -ENOENT, -errno. cut:
	 * -EOPNOTSUPP without STORE_CAN_CUT. room: UINT64_MAX without
	 * STORE_LOCAL. */
	int (*containers)(struct mreg_store *s,
			  int (*fn)(void *arg,
				    const struct store_container *c),
			  void *arg);
	int (*iterate)(struct mreg_store *s, uint64_t container,
		       int (*fn)(void *arg, const struct mreg_id *id,
				 const struct chunk_loc *loc,
				 const void *data, uint32_t len),
		       void *arg);
	int (*claim)(struct mreg_store *s, uint64_t container);
	void (*unclaim)(struct mreg_store *s, uint64_t container);
	int (*container_size)(struct mreg_store *s, uint64_t container,
			      uint64_t *ret);
	int (*del)(struct mreg_store *s, uint64_t container);
	int (*cut)(struct mreg_store *s, uint64_t container, uint64_t size);
	int (*bytes)(struct mreg_store *s, uint64_t *ret);
	int (*room)(struct mreg_store *s, uint64_t *ret);
	int (*maint)(struct mreg_store *s);
};

/* The backends, store.c's table. */
extern const struct store_backend pack_store_backend;
extern const struct store_backend s3_store_backend;
extern const struct store_backend store_cache_backend;

#endif
