/* index.c — the index interface (index.h) over its backends (backend.h):
 * picks the backend at open, checks every call's arguments once for all
 * backends, refuses nested transactions and writes to a read-only index,
 * and builds idx_scan() on the iterators. Everything else is the
 * backend's.
 *
 * Nesting. A thread inside a transaction's callback may not begin
 * another: with lmdb it would take the map lock twice (see lmdb/lmdb.h) or
 * wait for the writer lock it holds; with any backend it would see a
 * second snapshot beside its own. txn_depth counts the transactions this
 * thread is inside, whatever the index, so the refusal holds for every
 * backend.
 */
#include "index/backend.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "log.h"

static const struct idx_backend *const backends[] = {
	&idx_lmdb_backend,
	&idx_pg_backend,
};

static const char *const table_name[IDX_TABLES] = {
	[IDX_META] = "meta",
	[IDX_NAMES] = "names",
	[IDX_INODES] = "inodes",
	[IDX_EXTENTS] = "extents",
	[IDX_CHUNKS] = "chunks",
	[IDX_XATTRS] = "xattrs",
	[IDX_HISTORY] = "history",
	[IDX_AUDIT] = "audit",
	[IDX_TRASH] = "trash",
};

/* Transactions this thread is inside; see "Nesting" above. */
static __thread unsigned txn_depth;

static bool table_ok(enum idx_table tb)
{
	return (unsigned)tb < IDX_TABLES;
}

static bool key_ok(const void *key, size_t klen)
{
	return key && klen > 0 && klen <= IDX_KEY_MAX;
}

/* A prefix or a start key: empty, or up to IDX_KEY_MAX bytes. */
static bool bound_ok(const void *p, size_t len)
{
	return (!len || p) && len <= IDX_KEY_MAX;
}

const char *idx_table_name(enum idx_table tb)
{
	return table_ok(tb) ? table_name[tb] : NULL;
}

/* ---- open and close ---------------------------------------------------- */

int idx_open(const struct idx_options *opt, struct idx_db **ret)
{
	const char *name;
	size_t i;
	int r;

	if (!opt || !ret)
		return -EINVAL;
	*ret = NULL;
	name = opt->backend ? opt->backend : "lmdb";
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		if (strcmp(backends[i]->name, name) != 0)
			continue;
		r = backends[i]->open(opt, ret);
		assert(r < 0 || ((*ret)->be == backends[i] &&
				 (*ret)->read_only == opt->read_only));
		return r;
	}
	return log_err(-EINVAL, "no index backend '%s' in this build", name);
}

void idx_close(struct idx_db *db)
{
	if (db)
		db->be->close(db);
}

/* ---- transactions ------------------------------------------------------ */

static int run(struct idx_db *db, bool write, idx_txn_fn *fn, void *arg)
{
	int r;

	if (!db || !fn)
		return -EINVAL;
	if (txn_depth)
		return log_err(-EDEADLK, "%s index: transaction inside a "
			       "transaction", db->be->name);
	if (write && db->read_only)
		return log_err(-EROFS, "%s index is open read-only",
			       db->be->name);
	txn_depth++;
	r = db->be->run(db, write, fn, arg);
	txn_depth--;
	return r;
}

int idx_read(struct idx_db *db, idx_txn_fn *fn, void *arg)
{
	return run(db, false, fn, arg);
}

int idx_write(struct idx_db *db, idx_txn_fn *fn, void *arg)
{
	return run(db, true, fn, arg);
}

bool idx_writable(const struct idx_txn *t)
{
	return t && t->write;
}

/* ---- watchers ---------------------------------------------------------- */

int idx_notify(struct idx_txn *t)
{
	if (!t)
		return -EINVAL;
	if (!t->write)
		return -EACCES;
	return t->db->be->notify ? t->db->be->notify(t) : 0;
}

int idx_watch_open(struct idx_db *db, struct idx_watch **ret)
{
	if (!db || !ret)
		return -EINVAL;
	if (!db->be->watch_open)
		return -ENOTSUP;
	return db->be->watch_open(db, ret);
}

int idx_watch_wait(struct idx_watch *w, int timeout_ms)
{
	if (!w || timeout_ms < 0)
		return -EINVAL;
	return w->db->be->watch_wait(w, timeout_ms);
}

void idx_watch_close(struct idx_watch *w)
{
	if (w)
		w->db->be->watch_close(w);
}

/* ---- operations -------------------------------------------------------- */

/* A key the backend gave back: the registry sizes its buffers by
 * IDX_KEY_MAX, so a longer one (a damaged or foreign index) stops here. */
static int key_back(const struct idx_txn *t, const struct idx_val *k)
{
	if (k->len <= IDX_KEY_MAX)
		return 0;
	return log_err(-EIO, "%s index is damaged: a key of %zu bytes (at "
		       "most %d)", t->db->be->name, k->len, IDX_KEY_MAX);
}

int idx_get(struct idx_txn *t, enum idx_table tb, const void *key,
	    size_t klen, struct idx_val *ret)
{
	if (!t || !table_ok(tb) || !key_ok(key, klen) || !ret)
		return -EINVAL;
	return t->db->be->get(t, tb, key, klen, ret);
}

int idx_put(struct idx_txn *t, enum idx_table tb, const void *key,
	    size_t klen, const void *val, size_t vlen, unsigned flags)
{
	if (!t || !table_ok(tb) || !key_ok(key, klen) || (!val && vlen) ||
	    (flags & ~IDX_NOOVERWRITE))
		return -EINVAL;
	if (!t->write)
		return -EACCES;
	return t->db->be->put(t, tb, key, klen, val, vlen, flags);
}

int idx_del(struct idx_txn *t, enum idx_table tb, const void *key,
	    size_t klen)
{
	if (!t || !table_ok(tb) || !key_ok(key, klen))
		return -EINVAL;
	if (!t->write)
		return -EACCES;
	return t->db->be->del(t, tb, key, klen);
}

int idx_iter_begin(struct idx_txn *t, enum idx_table tb, const void *prefix,
		   size_t plen, const void *start, size_t slen,
		   struct idx_iter **ret)
{
	int r;

	if (!ret)
		return -EINVAL;
	*ret = NULL;
	if (!t || !table_ok(tb) || !bound_ok(prefix, plen) ||
	    slen > IDX_KEY_MAX)
		return -EINVAL;
	if (!start)
		slen = 0;
	r = t->db->be->iter_begin(t, tb, prefix, plen, start, slen, ret);
	assert(r < 0 ? !*ret : *ret && (*ret)->t == t);
	return r;
}

int idx_iter_next(struct idx_iter *it, struct idx_val *ret_key,
		  struct idx_val *ret_val)
{
	int r;

	if (!it || !ret_key || !ret_val)
		return -EINVAL;
	r = it->t->db->be->iter_next(it, ret_key, ret_val);
	if (r > 0 && key_back(it->t, ret_key) < 0)
		return -EIO;
	return r;
}

void idx_iter_end(struct idx_iter *it)
{
	if (it)
		it->t->db->be->iter_end(it);
}

int idx_scan(struct idx_txn *t, enum idx_table tb, const void *prefix,
	     size_t plen, const void *start, size_t slen,
	     int (*fn)(void *arg, const struct idx_val *key,
		       const struct idx_val *val),
	     void *arg)
{
	struct idx_iter *it;
	struct idx_val k, v;
	int r;

	if (!fn)
		return -EINVAL;
	r = idx_iter_begin(t, tb, prefix, plen, start, slen, &it);
	while (r >= 0 && (r = idx_iter_next(it, &k, &v)) > 0) {
		r = fn(arg, &k, &v);
		if (r != 0)
			break;
	}
	idx_iter_end(it);
	return r;
}

int idx_last(struct idx_txn *t, enum idx_table tb, const void *prefix,
	     size_t plen, struct idx_val *ret_key, struct idx_val *ret_val)
{
	int r;

	if (!t || !table_ok(tb) || !bound_ok(prefix, plen) || !ret_key ||
	    !ret_val)
		return -EINVAL;
	r = t->db->be->last(t, tb, prefix, plen, ret_key, ret_val);
	if (r == 0 && key_back(t, ret_key) < 0)
		return -EIO;
	return r;
}

int idx_count(struct idx_txn *t, enum idx_table tb, uint64_t *ret)
{
	if (!t || !table_ok(tb) || !ret)
		return -EINVAL;
	return t->db->be->count(t, tb, ret);
}

int idx_count_prefix(struct idx_txn *t, enum idx_table tb,
		     const void *prefix, size_t plen, uint64_t *ret)
{
	struct idx_iter *it;
	struct idx_val k, v;
	uint64_t n = 0;
	int r;

	if (!t || !table_ok(tb) || !prefix || !key_ok(prefix, plen) || !ret)
		return -EINVAL;
	if (t->db->be->count_prefix)
		return t->db->be->count_prefix(t, tb, prefix, plen, ret);
	r = idx_iter_begin(t, tb, prefix, plen, NULL, 0, &it);
	while (r >= 0 && (r = idx_iter_next(it, &k, &v)) > 0)
		n++;
	idx_iter_end(it);
	if (r < 0)
		return r;
	*ret = n;
	return 0;
}

/* ---- housekeeping ------------------------------------------------------ */

/* ---- locks ------------------------------------------------------------- */

static int lock_key(enum idx_lock_space sp, uint64_t id, uint64_t *ret)
{
	if (sp < IDX_LOCK_LIFE || sp > IDX_LOCK_PIN || id >= IDX_LOCK_ID_MAX)
		return -EINVAL;
	*ret = (uint64_t)sp << 56 | id;
	return 0;
}

int idx_lock(struct idx_db *db, enum idx_lock_space sp, uint64_t id,
	     bool shared, bool wait)
{
	uint64_t key;

	if (!db || lock_key(sp, id, &key) < 0)
		return -EINVAL;
	return db->be->lock(db, key, shared, wait);
}

void idx_unlock(struct idx_db *db, enum idx_lock_space sp, uint64_t id)
{
	uint64_t key;

	if (db && lock_key(sp, id, &key) == 0)
		db->be->unlock(db, key);
}

int idx_lock_held(struct idx_db *db, enum idx_lock_space sp, uint64_t id)
{
	uint64_t key;

	if (!db || lock_key(sp, id, &key) < 0)
		return -EINVAL;
	return db->be->lock_held(db, key);
}

int idx_txn_lock(struct idx_txn *t, enum idx_lock_space sp, uint64_t id,
		 unsigned wait_ms)
{
	struct timespec step = { 0, 5 * 1000 * 1000 };
	uint64_t key;
	unsigned waited = 0;
	int r;

	if (!t || lock_key(sp, id, &key) < 0)
		return -EINVAL;
	if (!t->write)
		return -EACCES;
	/* Nobody waits for the lock while holding it: poll, a holder that
	 * is letting go is seen. */
	while ((r = t->db->be->txn_lock(t, key)) == -EBUSY &&
	       waited < wait_ms) {
		nanosleep(&step, NULL);
		waited += 5;
	}
	return r;
}

int idx_maint(struct idx_db *db)
{
	if (!db)
		return -EINVAL;
	return db->be->maint(db);
}

int idx_stats(struct idx_db *db, struct idx_stats *ret)
{
	if (!db || !ret)
		return -EINVAL;
	return db->be->stats(db, ret);
}
