/* cache.h — the configuration of a host's chunk cache (backend "cache",
 * store/cache/cache.c): what store_options.backend_cfg points to when
 * store_options.backend is "cache". The [cache] section of mreg.conf.
 *
 * The cache is a store in front of another one, the inner store, which
 * the caller opens first (store_open() of its own backend) and hands
 * over here: from a successful store_open() of the cache on, the cache
 * owns it (store_close() of the cache closes it); after a failed one the
 * caller still does. store_options' other fields are not read.
 * store_open() errors of this backend, besides -EINVAL (a field missing,
 * logged) and -ENOMEM: -errno of making or reading the cache directory
 * (logged), -EAGAIN (its threads cannot start, logged).
 */
#ifndef MREG_STORE_CACHE_H
#define MREG_STORE_CACHE_H

#include <stdint.h>

struct mreg_store;

struct cache_config {
	const char *path;         /* the cache directory (made mode 0700
				     when missing): required */
	uint64_t size;            /* bytes of chunks kept at most: required */
	uint64_t min_free;        /* bytes its file system keeps free, at
				     least (util_disk_room(): and 5 %) */
	struct mreg_store *inner; /* the store it caches: required */
	unsigned fetchers;        /* threads of prefetch: 8 */
};

#endif
