/* ops.c — the postgres backend's operations inside a transaction: get,
 * put, del, batched iterators, last, count.
 *
 * Each is one prepared statement (prepared on a connection the first time
 * it runs there), with binary parameters and results: a bytea travels as
 * its raw bytes. Keys compare as bytea does, memcmp() then length, which
 * is LMDB's default order. A prefix becomes a range: k >= prefix AND
 * k < succ(prefix), the successor being the smallest string above every
 * key that starts with prefix (none for a prefix of 0xff bytes only:
 * then every key >= prefix starts with it).
 *
 * Any SQL error aborts a PostgreSQL transaction, so what must not spoil
 * it never reaches the server as an error: absent keys are zero rows, and
 * IDX_NOOVERWRITE is INSERT ... ON CONFLICT DO NOTHING and its row count.
 * Values of get and last are in their PGresult, kept until the
 * transaction ends (the arena); an iterator's are in its batch, freed
 * when the next batch comes.
 */
#include "pg.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char *const table_name[IDX_TABLES] = {
	[IDX_META] = "mreg_meta",
	[IDX_NAMES] = "mreg_names",
	[IDX_INODES] = "mreg_inodes",
	[IDX_EXTENTS] = "mreg_extents",
	[IDX_CHUNKS] = "mreg_chunks",
	[IDX_XATTRS] = "mreg_xattrs",
	[IDX_HISTORY] = "mreg_history",
	[IDX_AUDIT] = "mreg_audit",
	[IDX_TRASH] = "mreg_trash",
};

#define BATCH_SQL " ORDER BY k LIMIT 256"
_Static_assert(PG_BATCH == 256, "BATCH_SQL says 256");
_Static_assert(IDX_TABLES <= 16, "pg_conn.prepared has 16 bits");

/* Each statement is head, the table's name, tail. */
static const char *const stmt_sql[PG_STMTS][2] = {
	[PG_GET] = { "SELECT v FROM ", " WHERE k = $1" },
	[PG_PUT] = { "INSERT INTO ", " (k, v) VALUES ($1, $2) ON CONFLICT "
		     "(k) DO UPDATE SET v = EXCLUDED.v" },
	[PG_PUT_NEW] = { "INSERT INTO ", " (k, v) VALUES ($1, $2) "
			 "ON CONFLICT (k) DO NOTHING" },
	[PG_DEL] = { "DELETE FROM ", " WHERE k = $1" },
	[PG_SCAN_GE] = { "SELECT k, v FROM ", " WHERE k >= $1" BATCH_SQL },
	[PG_SCAN_GE_LT] = { "SELECT k, v FROM ", " WHERE k >= $1 AND "
			    "k < $2" BATCH_SQL },
	[PG_SCAN_GT] = { "SELECT k, v FROM ", " WHERE k > $1" BATCH_SQL },
	[PG_SCAN_GT_LT] = { "SELECT k, v FROM ", " WHERE k > $1 AND "
			    "k < $2" BATCH_SQL },
	[PG_LAST] = { "SELECT k, v FROM ", " ORDER BY k DESC LIMIT 1" },
	[PG_LAST_LT] = { "SELECT k, v FROM ", " WHERE k < $1 "
			 "ORDER BY k DESC LIMIT 1" },
	[PG_COUNT] = { "SELECT count(*) FROM ", "" },
	[PG_COUNT_GE] = { "SELECT count(*) FROM ", " WHERE k >= $1" },
	[PG_COUNT_GE_LT] = { "SELECT count(*) FROM ", " WHERE k >= $1 AND "
			     "k < $2" },
};

const char *idx_pg_table(enum idx_table tb)
{
	return (unsigned)tb < IDX_TABLES ? table_name[tb] : NULL;
}

static struct pg_txn *txn_of(struct idx_txn *t)
{
	return (struct pg_txn *)t;
}

static bool key_ok(const void *key, size_t klen)
{
	return key && klen > 0 && klen <= IDX_KEY_MAX;
}

static bool table_ok(enum idx_table tb)
{
	return (unsigned)tb < IDX_TABLES;
}

/* Spoils t with r (the first error wins) and returns r. */
static int spoil(struct pg_txn *t, int r, enum pg_fate fate)
{
	if (!t->err) {
		t->err = r;
		t->fate = fate;
	}
	return r;
}

int idx_pg_stmt_run(struct pg_txn *t, enum pg_stmt s, enum idx_table tb,
		int n, const void *const *vals, const size_t *lens,
		PGresult **ret)
{
	static const int fmts[2] = { 1, 1 };
	const char *cvals[2];
	struct pg_conn *c = t->c;
	char name[16], sql[160];
	enum pg_fate fate;
	PGresult *res;
	int i, ilens[2], r;

	assert(t && (unsigned)s < PG_STMTS && table_ok(tb) && n <= 2 && ret);
	if (t->err)
		return t->err;
	snprintf(name, sizeof(name), "m%d_%d", (int)s, (int)tb);
	if (!(c->prepared[s] & (1u << tb))) {
		snprintf(sql, sizeof(sql), "%s%s%s", stmt_sql[s][0],
			 table_name[tb], stmt_sql[s][1]);
		/* Prepared statements outlive the transaction that
		 * prepared them (they are not transactional). */
		r = PQsendPrepare(c->conn, name, sql, n, NULL) ?
		    idx_pg_wait(c, t->deadline, &res, &fate) :
		    idx_pg_send_err(c, &fate);
		if (r < 0)
			return spoil(t, r, fate);
		PQclear(res);
		c->prepared[s] |= (uint16_t)(1u << tb);
	}
	for (i = 0; i < n; i++) {
		/* A NULL pointer would be SQL NULL, not an empty bytea. */
		cvals[i] = vals[i] ? vals[i] : "";
		ilens[i] = (int)lens[i];
	}
	r = PQsendQueryPrepared(c->conn, name, n, cvals, ilens, fmts, 1) ?
	    idx_pg_wait(c, t->deadline, &res, &fate) : idx_pg_send_err(c, &fate);
	if (r < 0)
		return spoil(t, r, fate);
	*ret = res;
	return 0;
}

/* Keeps res until the end of t. */
static int keep(struct pg_txn *t, PGresult *res)
{
	PGresult **p;
	size_t n;

	if (t->nkeep == t->akeep) {
		n = t->akeep ? t->akeep * 2 : 8;
		p = reallocarray(t->keep, n, sizeof(*p));
		if (!p) {
			PQclear(res);
			return spoil(t, -ENOMEM, PG_FAIL);
		}
		t->keep = p;
		t->akeep = n;
	}
	t->keep[t->nkeep++] = res;
	return 0;
}

static void val_set(struct idx_val *v, const PGresult *res, int row, int col)
{
	v->data = PQgetvalue(res, row, col);
	v->len = (size_t)PQgetlength(res, row, col);
}

void idx_pg_txn_release(struct pg_txn *t)
{
	size_t i;

	for (i = 0; i < t->nkeep; i++)
		PQclear(t->keep[i]);
	free(t->keep);
	t->keep = NULL;
	t->nkeep = t->akeep = 0;
	while (t->iters)
		idx_pg_iter_end(&t->iters->base);
}

int idx_pg_get(struct idx_txn *tx, enum idx_table tb, const void *key,
	   size_t klen, struct idx_val *ret)
{
	struct pg_txn *t = txn_of(tx);
	PGresult *res;
	int r;

	if (!tx || !table_ok(tb) || !key_ok(key, klen) || !ret)
		return -EINVAL;
	r = idx_pg_stmt_run(t, PG_GET, tb, 1, (const void *[]){ key },
			(size_t[]){ klen }, &res);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return -ENOENT;
	}
	r = keep(t, res);
	if (r == 0)
		val_set(ret, res, 0, 0);
	return r;
}

int idx_pg_put(struct idx_txn *tx, enum idx_table tb, const void *key,
	   size_t klen, const void *val, size_t vlen, unsigned flags)
{
	struct pg_txn *t = txn_of(tx);
	bool added;
	PGresult *res;
	int r;

	if (!tx || !table_ok(tb) || !key_ok(key, klen) || (!val && vlen) ||
	    vlen > INT_MAX || (flags & ~IDX_NOOVERWRITE))
		return -EINVAL;
	if (!tx->write)
		return -EACCES;
	r = idx_pg_stmt_run(t, flags & IDX_NOOVERWRITE ? PG_PUT_NEW : PG_PUT, tb,
			2, (const void *[]){ key, val },
			(size_t[]){ klen, vlen }, &res);
	if (r < 0)
		return r;
	added = strcmp(PQcmdTuples(res), "0") != 0;
	PQclear(res);
	return added ? 0 : -EEXIST;
}

int idx_pg_del(struct idx_txn *tx, enum idx_table tb, const void *key,
	   size_t klen)
{
	struct pg_txn *t = txn_of(tx);
	bool gone;
	PGresult *res;
	int r;

	if (!tx || !table_ok(tb) || !key_ok(key, klen))
		return -EINVAL;
	if (!tx->write)
		return -EACCES;
	r = idx_pg_stmt_run(t, PG_DEL, tb, 1, (const void *[]){ key },
			(size_t[]){ klen }, &res);
	if (r < 0)
		return r;
	gone = strcmp(PQcmdTuples(res), "0") != 0;
	PQclear(res);
	return gone ? 0 : -ENOENT;
}

int idx_pg_iter_begin(struct idx_txn *tx, enum idx_table tb,
		      const void *prefix, size_t plen, const void *start,
		      size_t slen, struct idx_iter **ret)
{
	struct pg_txn *t = txn_of(tx);
	struct pg_iter *it;

	if (!tx || !table_ok(tb) || (plen && !prefix) || plen > IDX_KEY_MAX ||
	    slen > IDX_KEY_MAX || !ret)
		return -EINVAL;
	if (t->err)
		return t->err;
	if (!start)
		slen = 0;
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->base.t = tx;
	it->t = t;
	it->tb = tb;
	/* Begin at the larger of prefix and start. */
	if (slen && idx_key_cmp(start, slen, prefix, plen) > 0) {
		memcpy(it->lo, start, slen);
		it->lo_len = slen;
	} else if (plen) {
		memcpy(it->lo, prefix, plen);
		it->lo_len = plen;
	}
	it->hi_len = idx_key_successor(prefix, plen, it->hi);
	it->bounded = it->hi_len > 0;
	if (it->bounded &&
	    idx_key_cmp(it->lo, it->lo_len, it->hi, it->hi_len) >= 0)
		it->done = true;
	it->next = t->iters;
	t->iters = it;
	*ret = &it->base;
	return 0;
}

/* Fetches the batch after the current one (or the first). */
static int fetch(struct pg_iter *it)
{
	const void *vals[2];
	size_t lens[2];
	enum pg_stmt s;
	PGresult *res;
	int r;

	if (it->fetched) {
		/* after the last key of this batch */
		vals[0] = PQgetvalue(it->res, it->rows - 1, 0);
		lens[0] = (size_t)PQgetlength(it->res, it->rows - 1, 0);
		s = it->bounded ? PG_SCAN_GT_LT : PG_SCAN_GT;
	} else {
		vals[0] = it->lo;
		lens[0] = it->lo_len;
		s = it->bounded ? PG_SCAN_GE_LT : PG_SCAN_GE;
	}
	vals[1] = it->hi;
	lens[1] = it->hi_len;
	r = idx_pg_stmt_run(it->t, s, it->tb, it->bounded ? 2 : 1, vals, lens,
			&res);
	if (r < 0)
		return r;
	PQclear(it->res);
	it->res = res;
	it->rows = PQntuples(res);
	it->row = 0;
	it->fetched = true;
	it->done = it->rows < PG_BATCH;
	return 0;
}

int idx_pg_iter_next(struct idx_iter *base, struct idx_val *ret_key,
		     struct idx_val *ret_val)
{
	struct pg_iter *it = (struct pg_iter *)base;
	int r;

	if (!it || !ret_key || !ret_val)
		return -EINVAL;
	if (it->row >= it->rows) {
		if (it->done)
			return 0;
		r = fetch(it);
		if (r < 0)
			return r;
		if (it->rows == 0)
			return 0;
	}
	val_set(ret_key, it->res, it->row, 0);
	val_set(ret_val, it->res, it->row, 1);
	it->row++;
	return 1;
}

void idx_pg_iter_end(struct idx_iter *base)
{
	struct pg_iter *it = (struct pg_iter *)base;
	struct pg_iter **p;

	if (!it)
		return;
	for (p = &it->t->iters; *p; p = &(*p)->next)
		if (*p == it) {
			*p = it->next;
			break;
		}
	PQclear(it->res);
	free(it);
}

int idx_pg_last(struct idx_txn *tx, enum idx_table tb, const void *prefix,
	    size_t plen, struct idx_val *ret_key, struct idx_val *ret_val)
{
	struct pg_txn *t = txn_of(tx);
	unsigned char succ[IDX_KEY_MAX];
	size_t n;
	PGresult *res;
	int r;

	if (!tx || !table_ok(tb) || (plen && !prefix) || plen > IDX_KEY_MAX ||
	    !ret_key || !ret_val)
		return -EINVAL;
	n = idx_key_successor(prefix, plen, succ);
	if (n)
		r = idx_pg_stmt_run(t, PG_LAST_LT, tb, 1, (const void *[]){ succ },
				(size_t[]){ n }, &res);
	else
		r = idx_pg_stmt_run(t, PG_LAST, tb, 0, NULL, NULL, &res);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0 ||
	    (size_t)PQgetlength(res, 0, 0) < plen ||
	    (plen && memcmp(PQgetvalue(res, 0, 0), prefix, plen) != 0)) {
		PQclear(res);
		return -ENOENT;
	}
	r = keep(t, res);
	if (r == 0) {
		val_set(ret_key, res, 0, 0);
		val_set(ret_val, res, 0, 1);
	}
	return r;
}

/* Runs count statement s with its n bounds: the int8 it gives. */
static int count_run(struct idx_txn *tx, enum pg_stmt s, enum idx_table tb,
		     int n, const void *const *vals, const size_t *lens,
		     uint64_t *ret)
{
	const unsigned char *p;
	uint64_t v = 0;
	PGresult *res;
	int i, r;

	r = idx_pg_stmt_run(txn_of(tx), s, tb, n, vals, lens, &res);
	if (r < 0)
		return r;
	/* count(*) is an int8: 8 bytes, big-endian, in binary. */
	if (PQntuples(res) != 1 || PQgetlength(res, 0, 0) != 8) {
		PQclear(res);
		return spoil(txn_of(tx), log_err(-EIO, "postgres: count of "
				"'%s' is not an int8", table_name[tb]),
			     PG_FAIL);
	}
	p = (const unsigned char *)PQgetvalue(res, 0, 0);
	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	PQclear(res);
	*ret = v;
	return 0;
}

int idx_pg_count(struct idx_txn *tx, enum idx_table tb, uint64_t *ret)
{
	if (!tx || !table_ok(tb) || !ret)
		return -EINVAL;
	return count_run(tx, PG_COUNT, tb, 0, NULL, NULL, ret);
}

int idx_pg_count_prefix(struct idx_txn *tx, enum idx_table tb,
			const void *prefix, size_t plen, uint64_t *ret)
{
	unsigned char hi[IDX_KEY_MAX];
	const void *vals[2] = { prefix, hi };
	size_t lens[2] = { plen, idx_key_successor(prefix, plen, hi) };

	return count_run(tx, lens[1] ? PG_COUNT_GE_LT : PG_COUNT_GE, tb,
			 lens[1] ? 2 : 1, vals, lens, ret);
}

/* ---- a transaction's lock ------------------------------------------------ */

int idx_pg_txn_lock(struct idx_txn *tx, uint64_t key)
{
	struct pg_txn *t = (struct pg_txn *)tx;
	enum pg_fate fate;
	PGresult *res;
	char sql[80];
	bool got;
	int r;

	if (t->err)
		return t->err;
	/* the transaction's connection: a holder other than the process's
	 * lock session, so it conflicts with this process's locks too */
	snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_xact_lock(%lld)",
		 (long long)key);
	r = idx_pg_exec(t->c, sql, t->deadline, &res, &fate);
	if (r < 0)
		return spoil(t, r, fate);
	got = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t");
	PQclear(res);
	return got ? 0 : -EBUSY;
}

int idx_pg_notify(struct idx_txn *tx)
{
	struct pg_txn *t = (struct pg_txn *)tx;
	enum pg_fate fate;
	PGresult *res;
	char sql[80];
	int r;

	if (t->err)
		return t->err;
	if (t->notified)
		return 0;	/* one wake-up a commit */
	/* delivered at COMMIT, to every session LISTENing (watch.c) */
	snprintf(sql, sizeof(sql), "NOTIFY %s", t->db->channel);
	r = idx_pg_exec(t->c, sql, t->deadline, &res, &fate);
	PQclear(res);
	if (r < 0)
		return spoil(t, r, fate);
	t->notified = true;
	return 0;
}
