/* txn.c — the lmdb backend's transactions (lmdb.h says how they work):
 * read and write transactions with their retries (a map grown by
 * another process, MDB_MAP_FULL, the writer lock across processes), the
 * operations inside them, iterators over cursors, maintenance and
 * statistics, and the backend table idx_lmdb_backend.
 */
#include "lmdb.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "io.h"
#include "log.h"

/* ---- transactions ------------------------------------------------------ */

static void iter_free(struct lmdb_iter *it);

/* Runs fn in t, then closes the iterators fn left open: a cursor of a
 * read transaction must be closed before the transaction ends. */
static int txn_call(struct lmdb_txn *t, idx_txn_fn *fn, void *arg)
{
	int r = fn(&t->base, arg);

	while (t->iters)
		iter_free(t->iters);
	return r;
}

/* A read transaction returns what fn returned, unless an error spoilt it
 * (index.h): a scan cut short by damage must not pass for a short
 * table, whether or not the callback looked at what the scan returned. */
static int read_txn(struct lmdb_db *ix, idx_txn_fn *fn, void *arg)
{
	struct lmdb_txn t = { .base.db = &ix->base, .ix = ix };
	size_t seen;
	int r;

	idx_lmdb_lock_shared(ix);
	r = idx_lmdb_txn_begin(ix, false, &t.txn, &seen);
	if (r == 0) {
		r = txn_call(&t, fn, arg);
		if (t.err)
			r = t.err;
		/* Abort ends a read transaction and, with MDB_NOTLS,
		 * frees its reader slot. */
		mdb_txn_abort(t.txn);
	}
	idx_lmdb_unlock(ix);
	return r;
}

/* Takes the writer locks (see "Writers across processes" above). */
static void writer_lock(struct lmdb_db *ix)
{
	pthread_mutex_lock(&ix->wlock);
	if (ix->lock_fd < 0)
		return;
	while (flock(ix->lock_fd, LOCK_EX) < 0)
		if (errno != EINTR) {
			/* LMDB's own lock still serializes writers */
			log_warn(-errno, "cannot lock '%s/lock.mdb'", ix->dir);
			break;
		}
}

static void writer_unlock(struct lmdb_db *ix)
{
	if (ix->lock_fd >= 0)
		flock(ix->lock_fd, LOCK_UN);
	pthread_mutex_unlock(&ix->wlock);
}

static int write_txn(struct lmdb_db *ix, idx_txn_fn *fn, void *arg)
{
	struct lmdb_txn t;
	size_t seen;
	int r, rc;

	for (;;) {
		t = (struct lmdb_txn){ .base.db = &ix->base,
				       .base.write = true, .ix = ix };
		idx_lmdb_lock_shared(ix);
		r = idx_lmdb_txn_begin(ix, true, &t.txn, &seen);
		if (r < 0) {
			idx_lmdb_unlock(ix);
			return r;
		}
		r = txn_call(&t, fn, arg);
		if (t.map_full || r < 0 || t.err) {
			mdb_txn_abort(t.txn);
			idx_lmdb_unlock(ix);
			if (!t.map_full)
				return r < 0 ? r : t.err;
		} else if ((rc = io_fault(IO_FAULT_MAP_FULL)) < 0) {
			/* -DMREG_FAULTS only (else io_fault() is 0): a
			 * full map that cannot grow, on demand. */
			mdb_txn_abort(t.txn);
			idx_lmdb_unlock(ix);
			return log_err(rc, "index '%s' is full (injected "
				       "fault)", ix->data_path);
		} else {
			rc = mdb_txn_commit(t.txn);
			idx_lmdb_unlock(ix);
			if (rc == MDB_SUCCESS)
				return r;
			if (rc != MDB_MAP_FULL) {
				r = idx_lmdb_err(ix, rc);
				if (rc > 0)
					log_err(r, "cannot commit to index "
						"'%s'", ix->data_path);
				return r;
			}
		}
		/* The map is full: grow it and run fn again. */
		r = idx_lmdb_map_grow(ix, seen);
		if (r < 0)
			return r;
	}
}

int idx_lmdb_run(struct idx_db *db, bool write, idx_txn_fn *fn, void *arg)
{
	struct lmdb_db *ix = lmdb_db(db);
	int r;

	if (!write)
		return read_txn(ix, fn, arg);
	writer_lock(ix);
	r = write_txn(ix, fn, arg);
	idx_lmdb_txn_locks_end(ix);
	writer_unlock(ix);
	return r;
}

/* ---- operations -------------------------------------------------------- */

/* The error t can no longer run operations for, or 0. */
static int txn_spoilt(const struct lmdb_txn *t)
{
	return t->map_full ? -ENOSPC : t->err;
}

/* The index_read fault point of a -DMREG_FAULTS build (else 0): the error
 * spoils t, as a failing mdb_get or cursor step would. */
static int read_fault(struct lmdb_txn *t)
{
	int r = io_fault(IO_FAULT_INDEX_READ);

	if (r < 0 && !t->err)
		t->err = r;
	return r;
}

static int lmdb_get(struct idx_txn *it, enum idx_table tb, const void *key,
		    size_t klen, struct idx_val *ret)
{
	struct lmdb_txn *t = lmdb_txn(it);
	MDB_val k = { klen, (void *)key }, v;
	int rc;

	if (txn_spoilt(t))
		return txn_spoilt(t);
	if ((rc = read_fault(t)) < 0)
		return rc;
	rc = mdb_get(t->txn, t->ix->dbi[tb], &k, &v);
	if (rc != 0)
		return idx_lmdb_txn_fail(t, rc);
	ret->data = v.mv_data;
	ret->len = v.mv_size;
	return 0;
}

static int lmdb_put(struct idx_txn *it, enum idx_table tb, const void *key,
		    size_t klen, const void *val, size_t vlen, unsigned flags)
{
	struct lmdb_txn *t = lmdb_txn(it);
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	int rc;

	if (txn_spoilt(t))
		return txn_spoilt(t);
	rc = mdb_put(t->txn, t->ix->dbi[tb], &k, &v,
		     flags & IDX_NOOVERWRITE ? MDB_NOOVERWRITE : 0);
	return rc ? idx_lmdb_txn_fail(t, rc) : 0;
}

static int lmdb_del(struct idx_txn *it, enum idx_table tb, const void *key,
		    size_t klen)
{
	struct lmdb_txn *t = lmdb_txn(it);
	MDB_val k = { klen, (void *)key };
	int rc;

	if (txn_spoilt(t))
		return txn_spoilt(t);
	rc = mdb_del(t->txn, t->ix->dbi[tb], &k, NULL);
	return rc ? idx_lmdb_txn_fail(t, rc) : 0;
}

static bool has_prefix(const MDB_val *k, const void *prefix, size_t plen)
{
	return plen == 0 ||
	       (k->mv_size >= plen && memcmp(k->mv_data, prefix, plen) == 0);
}

/* ---- iterators --------------------------------------------------------- */

static int lmdb_iter_begin(struct idx_txn *tx, enum idx_table tb,
			   const void *prefix, size_t plen, const void *start,
			   size_t slen, struct idx_iter **ret)
{
	struct lmdb_txn *t = lmdb_txn(tx);
	struct lmdb_iter *it;
	int rc;

	if (txn_spoilt(t))
		return txn_spoilt(t);
	it = malloc(sizeof(*it));
	if (!it)
		return -ENOMEM;
	rc = mdb_cursor_open(t->txn, t->ix->dbi[tb], &it->cur);
	if (rc != 0) {
		free(it);
		return idx_lmdb_txn_fail(t, rc);
	}
	it->base.t = &t->base;
	it->plen = plen;
	it->slen = slen;
	it->started = it->done = false;
	if (plen)
		memcpy(it->prefix, prefix, plen);
	if (slen)
		memcpy(it->start, start, slen);
	it->next = t->iters;
	t->iters = it;
	*ret = &it->base;
	return 0;
}

static int lmdb_iter_next(struct idx_iter *base, struct idx_val *ret_key,
			  struct idx_val *ret_val)
{
	struct lmdb_iter *it = (struct lmdb_iter *)base;
	struct lmdb_txn *t = lmdb_txn(base->t);
	MDB_cursor_op op = MDB_NEXT;
	MDB_val k, v;
	int rc;

	if (it->done)
		return 0;
	if ((rc = read_fault(t)) < 0) {
		it->done = true;
		return rc;
	}
	if (!it->started) {
		/* Begin at the larger of prefix and start. */
		if (it->slen && idx_key_cmp(it->start, it->slen, it->prefix,
					    it->plen) > 0)
			k = (MDB_val){ it->slen, it->start };
		else
			k = (MDB_val){ it->plen, it->prefix };
		op = k.mv_size ? MDB_SET_RANGE : MDB_FIRST;
		it->started = true;
	}
	rc = mdb_cursor_get(it->cur, &k, &v, op);
	if (rc == MDB_SUCCESS && !has_prefix(&k, it->prefix, it->plen))
		rc = MDB_NOTFOUND;
	if (rc != MDB_SUCCESS) {
		it->done = true;
		return rc == MDB_NOTFOUND ? 0 : idx_lmdb_txn_fail(t, rc);
	}
	*ret_key = (struct idx_val){ k.mv_data, k.mv_size };
	*ret_val = (struct idx_val){ v.mv_data, v.mv_size };
	return 1;
}

/* Closes it and takes it off its transaction's list. */
static void iter_free(struct lmdb_iter *it)
{
	struct lmdb_txn *t = lmdb_txn(it->base.t);
	struct lmdb_iter **p;

	for (p = &t->iters; *p != it; p = &(*p)->next)
		assert(*p);
	*p = it->next;
	mdb_cursor_close(it->cur);
	free(it);
}

static void lmdb_iter_end(struct idx_iter *base)
{
	iter_free((struct lmdb_iter *)base);
}

static int lmdb_last(struct idx_txn *tx, enum idx_table tb,
		     const void *prefix, size_t plen, struct idx_val *ret_key,
		     struct idx_val *ret_val)
{
	struct lmdb_txn *t = lmdb_txn(tx);
	unsigned char succ[IDX_KEY_MAX];
	size_t n;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if (txn_spoilt(t))
		return txn_spoilt(t);
	n = idx_key_successor(prefix, plen, succ);
	rc = mdb_cursor_open(t->txn, t->ix->dbi[tb], &cur);
	if (rc != 0)
		return idx_lmdb_txn_fail(t, rc);
	k = (MDB_val){ n, succ };
	rc = n ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : MDB_NOTFOUND;
	if (rc == MDB_SUCCESS)
		rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
	else if (rc == MDB_NOTFOUND)
		rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	if (rc == MDB_SUCCESS && !has_prefix(&k, prefix, plen))
		rc = MDB_NOTFOUND;
	if (rc != MDB_SUCCESS)
		return idx_lmdb_txn_fail(t, rc);
	ret_key->data = k.mv_data;
	ret_key->len = k.mv_size;
	ret_val->data = v.mv_data;
	ret_val->len = v.mv_size;
	return 0;
}

static int lmdb_count(struct idx_txn *tx, enum idx_table tb, uint64_t *ret)
{
	struct lmdb_txn *t = lmdb_txn(tx);
	MDB_stat st;
	int rc;

	if (txn_spoilt(t))
		return txn_spoilt(t);
	rc = mdb_stat(t->txn, t->ix->dbi[tb], &st);
	if (rc != 0)
		return idx_lmdb_txn_fail(t, rc);
	*ret = st.ms_entries;
	return 0;
}

/* ---- maintenance ------------------------------------------------------- */

static int lmdb_maint(struct idx_db *db)
{
	struct lmdb_db *ix = lmdb_db(db);
	int dead = 0, rc;

	rc = mdb_reader_check(ix->env, &dead);
	if (rc != 0)
		return idx_lmdb_err(ix, rc);
	if (dead > 0)
		log_info("index '%s': cleared %d stale readers", ix->dir, dead);
	return dead;
}

static int lmdb_stats(struct idx_db *db, struct idx_stats *ret)
{
	struct lmdb_db *ix = lmdb_db(db);
	MDB_envinfo info;
	MDB_stat st;
	int rc;

	idx_lmdb_lock_shared(ix);
	if (ix->broken) {
		idx_lmdb_unlock(ix);
		return -EIO;
	}
	rc = mdb_env_info(ix->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(ix->env, &st);
	idx_lmdb_unlock(ix);
	if (rc != 0)
		return idx_lmdb_err(ix, rc);
	ret->bytes_used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	ret->bytes_alloc = info.me_mapsize;
	return 0;
}

const struct idx_backend idx_lmdb_backend = {
	.name = "lmdb",
	.open = idx_lmdb_open,
	.close = idx_lmdb_close,
	.run = idx_lmdb_run,
	.get = lmdb_get,
	.put = lmdb_put,
	.del = lmdb_del,
	.iter_begin = lmdb_iter_begin,
	.iter_next = lmdb_iter_next,
	.iter_end = lmdb_iter_end,
	.last = lmdb_last,
	.count = lmdb_count,
	.maint = lmdb_maint,
	.stats = lmdb_stats,
	.lock = idx_lmdb_plock,
	.unlock = idx_lmdb_punlock,
	.lock_held = idx_lmdb_plock_held,
	.txn_lock = idx_lmdb_txn_plock,
};
