/* store.c — the store interface (store.h) over its backends (backend.h):
 * store_open() picks a backend by name; every other call checks its
 * arguments here, once, and goes to the store's backend. One rule lives
 * here and nowhere else: the data store_get() returns is hashed and
 * compared to its id (rule 4 of store.h), so that no backend, and no
 * damaged copy it keeps, can hand out wrong bytes — unless the backend
 * says it checks that itself (STORE_CHECKS_ID: the host cache, which must
 * to drop a bad copy and fetch again), so that no read is hashed twice.
 */
#include "store/store.h"

#include <errno.h>
#include <string.h>

#include "log.h"
#include "store/backend.h"

static const struct store_backend *const backends[] = {
	&pack_store_backend,
	&s3_store_backend,
	&store_cache_backend,
};

int store_open(const struct store_options *opt, struct mreg_store **ret)
{
	const char *name;
	size_t i;

	if (!opt || !ret)
		return -EINVAL;
	name = opt->backend ? opt->backend : "pack";
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i]->open(opt, ret);
	return log_err(-EINVAL, "unknown store backend '%s'", name);
}

void store_close(struct mreg_store *s)
{
	if (s)
		s->be->close(s);
}

unsigned store_caps(const struct mreg_store *s)
{
	return s ? s->be->caps(s) : 0;
}

void store_batch_begin(struct mreg_store *s)
{
	if (s)
		s->be->batch_begin(s);
}

void store_batch_end(struct mreg_store *s)
{
	if (s)
		s->be->batch_end(s);
}

int store_put(struct mreg_store *s, const struct mreg_id *id,
	      const void *data, uint32_t len, struct chunk_loc *ret)
{
	if (!s || !id || (!data && len) || !ret)
		return -EINVAL;
	return s->be->put(s, id, data, len, ret);
}

int store_sync(struct mreg_store *s)
{
	if (!s)
		return -EINVAL;
	return s->be->sync(s);
}

int store_batch_check(struct mreg_store *s)
{
	if (!s)
		return -EINVAL;
	return s->be->batch_check(s);
}

/* The checks both reads share: a location the backend makes (damage
 * otherwise: -EIO, logged), and buf NULL only for no data. */
static int get_args(const struct mreg_store *s, const struct chunk_loc *loc,
		    const void *buf, struct store_span *sp)
{
	char where[256];
	int r;

	if (!s || !loc)
		return -EINVAL;
	r = s->be->loc_span(s, loc, sp);
	if (r == -EIO)
		return log_err(r, "bad chunk at %s (bad location)",
			       s->be->loc_name(s, loc, where, sizeof(where)));
	if (r == 0 && !buf && sp->len)
		return -EINVAL;
	return r;
}

int store_get(struct mreg_store *s, const struct chunk_loc *loc,
	      const struct mreg_id *id, void *buf)
{
	struct store_span sp;
	struct mreg_id got;
	char where[256];
	int r;

	if (!id)
		return -EINVAL;
	if ((r = get_args(s, loc, buf, &sp)) < 0)
		return r;
	r = s->be->get(s, loc, id, buf);
	if (r < 0 || (s->be->caps(s) & STORE_CHECKS_ID))
		return r;
	chunkid_of(buf, sp.len, &got);
	if (!chunkid_eq(&got, id))
		return log_err(-EIO, "bad chunk at %s (data does not match "
			       "its id)", s->be->loc_name(s, loc, where,
							  sizeof(where)));
	return 0;
}

int store_get_raw(struct mreg_store *s, const struct chunk_loc *loc,
		  void *buf)
{
	struct store_span sp;
	int r;

	if ((r = get_args(s, loc, buf, &sp)) < 0)
		return r;
	return s->be->get(s, loc, NULL, buf);
}

size_t store_prefetch(struct mreg_store *s, const struct chunk_loc *locs,
		      const struct mreg_id *ids, size_t n)
{
	if (s && locs && n && s->be->prefetch)
		return s->be->prefetch(s, locs, ids, n);
	return n;
}

int store_fill(struct mreg_store *s, const struct chunk_loc *locs,
	       const struct mreg_id *ids, size_t n, uint64_t *ret_fetched)
{
	uint64_t fetched = 0;
	int r;

	if (!s || (n && (!locs || !ids)))
		return -EINVAL;
	if (!s->be->fill)
		return -EOPNOTSUPP;
	r = n ? s->be->fill(s, locs, ids, n, &fetched) : 0;
	if (r == 0 && ret_fetched)
		*ret_fetched = fetched;
	return r;
}

int store_loc_span(const struct mreg_store *s, const struct chunk_loc *loc,
		   struct store_span *ret)
{
	if (!s || !loc || !ret)
		return -EINVAL;
	return s->be->loc_span(s, loc, ret);
}

const char *store_loc_name(const struct mreg_store *s,
			   const struct chunk_loc *loc, char *buf,
			   size_t size)
{
	if (!buf || !size)
		return buf;
	if (!s || !loc) {
		buf[0] = '\0';
		return buf;
	}
	return s->be->loc_name(s, loc, buf, size);
}

int store_containers(struct mreg_store *s,
		     int (*fn)(void *arg, const struct store_container *c),
		     void *arg)
{
	if (!s || !fn)
		return -EINVAL;
	return s->be->containers(s, fn, arg);
}

int store_iterate(struct mreg_store *s, uint64_t container,
		  int (*fn)(void *arg, const struct mreg_id *id,
			    const struct chunk_loc *loc, const void *data,
			    uint32_t len),
		  void *arg)
{
	if (!s || !fn)
		return -EINVAL;
	return s->be->iterate(s, container, fn, arg);
}

int store_claim(struct mreg_store *s, uint64_t container)
{
	if (!s)
		return -EINVAL;
	return s->be->claim(s, container);
}

void store_unclaim(struct mreg_store *s, uint64_t container)
{
	if (s)
		s->be->unclaim(s, container);
}

int store_container_size(struct mreg_store *s, uint64_t container,
			 uint64_t *ret)
{
	if (!s || !ret)
		return -EINVAL;
	return s->be->container_size(s, container, ret);
}

int store_delete(struct mreg_store *s, uint64_t container)
{
	if (!s)
		return -EINVAL;
	return s->be->del(s, container);
}

int store_cut(struct mreg_store *s, uint64_t container, uint64_t size)
{
	if (!s)
		return -EINVAL;
	if (!(s->be->caps(s) & STORE_CAN_CUT))
		return -EOPNOTSUPP;
	return s->be->cut(s, container, size);
}

int store_bytes(struct mreg_store *s, uint64_t *ret)
{
	if (!s || !ret)
		return -EINVAL;
	return s->be->bytes(s, ret);
}

int store_room(struct mreg_store *s, uint64_t *ret)
{
	if (!s || !ret)
		return -EINVAL;
	return s->be->room(s, ret);
}

int store_maint(struct mreg_store *s)
{
	if (!s)
		return -EINVAL;
	return s->be->maint(s);
}
