/* backend.h — what an index backend provides: the vtable index.c
 * dispatches to, and the base structs a backend's handle, transaction and
 * iterator begin with. Private to core/index/: the registry includes
 * index.h only.
 *
 * The contract of every call is its idx_* counterpart's (index.h):
 * callbacks may run more than once, a callback returns a negative errno to
 * abort or >= 0 to commit, values of get/last live until the transaction
 * ends and an iterator's until its next step, keys sort as memcmp() then
 * length, an error other than -ENOENT, -EEXIST, -EINVAL, -EACCES spoils
 * the transaction.
 *
 * What index.c does before it calls, once for every backend, so that a
 * backend need not: a NULL handle, transaction, iterator, callback or
 * result pointer, an unknown table, a key not 1..IDX_KEY_MAX bytes, a
 * prefix or start longer than IDX_KEY_MAX, a value NULL with a length, an
 * unknown put flag (all -EINVAL); a put or del in a read transaction
 * (-EACCES); a write on an index opened read-only (-EROFS); a transaction
 * begun inside another on the same thread (-EDEADLK, whatever the
 * backend: that is what lets lmdb hold its map lock across a callback).
 * After: a key given back longer than IDX_KEY_MAX (-EIO, logged: the
 * registry's buffers are sized by it).
 */
#ifndef MREG_INDEX_BACKEND_H
#define MREG_INDEX_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "index/index.h"

/* A backend's handle, transaction and iterator begin with these; the
 * backend fills them in (open, run, iter_begin). */
struct idx_db {
	const struct idx_backend *be;
	bool read_only;
};

struct idx_txn {
	struct idx_db *db;
	bool write;            /* valid inside its callback only */
};

struct idx_iter {
	struct idx_txn *t;     /* the transaction it belongs to */
};

/* One backend. Each call is documented by its idx_* counterpart. */
struct idx_backend {
	const char *name;
	int  (*open)(const struct idx_options *o, struct idx_db **ret);
	void (*close)(struct idx_db *db);
	/* Runs fn in a read (write false) or write transaction, retrying
	 * inside what the caller should never see. */
	int  (*run)(struct idx_db *db, bool write, idx_txn_fn *fn, void *arg);
	int  (*get)(struct idx_txn *t, enum idx_table tb, const void *key,
		    size_t klen, struct idx_val *ret);
	int  (*put)(struct idx_txn *t, enum idx_table tb, const void *key,
		    size_t klen, const void *val, size_t vlen, unsigned flags);
	int  (*del)(struct idx_txn *t, enum idx_table tb, const void *key,
		    size_t klen);
	int  (*iter_begin)(struct idx_txn *t, enum idx_table tb,
			   const void *prefix, size_t plen, const void *start,
			   size_t slen, struct idx_iter **ret);
	/* 1 and the key and value set; 0 at the end; -errno. */
	int  (*iter_next)(struct idx_iter *it, struct idx_val *ret_key,
			  struct idx_val *ret_val);
	void (*iter_end)(struct idx_iter *it);
	int  (*last)(struct idx_txn *t, enum idx_table tb, const void *prefix,
		     size_t plen, struct idx_val *ret_key,
		     struct idx_val *ret_val);
	int  (*count)(struct idx_txn *t, enum idx_table tb, uint64_t *ret);
	/* NULL: index.c counts with an iterator */
	int  (*count_prefix)(struct idx_txn *t, enum idx_table tb,
			     const void *prefix, size_t plen, uint64_t *ret);
	int  (*maint)(struct idx_db *db);
	/* Locks (index.h): key is sp << 56 | id, below 2^63. txn_lock
	 * tries once: index.c polls. */
	int  (*lock)(struct idx_db *db, uint64_t key, bool shared, bool wait);
	void (*unlock)(struct idx_db *db, uint64_t key);
	int  (*lock_held)(struct idx_db *db, uint64_t key);
	int  (*txn_lock)(struct idx_txn *t, uint64_t key);
	int  (*stats)(struct idx_db *db, struct idx_stats *ret);
	/* Watchers (index.h); NULL: the backend has none (notify then
	 * does nothing, watch_open is -ENOTSUP). */
	int  (*notify)(struct idx_txn *t);
	int  (*watch_open)(struct idx_db *db, struct idx_watch **ret);
	int  (*watch_wait)(struct idx_watch *w, int timeout_ms);
	void (*watch_close)(struct idx_watch *w);
};

/* A backend's watch begins with this. */
struct idx_watch {
	struct idx_db *db;
};

/* The name of table tb ("meta", "names", ...): LMDB's database names,
 * PostgreSQL's table names after its prefix. */
const char *idx_table_name(enum idx_table tb);

/* Compares byte strings in the index's order: memcmp(), then length. */
static inline int idx_key_cmp(const void *a, size_t alen, const void *b,
			      size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* The successor of prefix (plen <= IDX_KEY_MAX) into succ: the smallest
 * string above every key that starts with prefix. Returns its length, 0
 * when there is none (prefix empty or all 0xff bytes: then every key
 * >= prefix starts with it). */
static inline size_t idx_key_successor(const void *prefix, size_t plen,
				       unsigned char succ[IDX_KEY_MAX])
{
	size_t n = plen;

	if (plen)
		memcpy(succ, prefix, plen);
	while (n > 0 && succ[n - 1] == 0xff)
		n--;
	if (n > 0)
		succ[n - 1]++;
	return n;
}

/* The backends (index.c lists them). */
extern const struct idx_backend idx_lmdb_backend;
/* PostgreSQL (index/pg/): its backend, and what the tests see of it. */
extern const struct idx_backend idx_pg_backend;

/* What the postgres backend did, since open: transactions run, callbacks
 * run again (a serialization failure or deadlock; of them, at COMMIT),
 * connections made after a lost one, and commits whose answer was lost,
 * decided from mreg_txn: committed, or not (run again). */
struct idx_pg_counters {
	uint64_t runs, reruns, commit_reruns, reconnects;
	uint64_t committed_unseen, lost_uncommitted;
};
/* Fills ret; db must be a postgres index. */
void idx_pg_counters(struct idx_db *db, struct idx_pg_counters *ret);

/* Fault points for tests (as io.h's, but in every build: a test runs
 * against a real server): fn is called in the thread running a write
 * transaction, with the server process of its connection and its mreg_txn
 * id (PG_TXN_ID bytes). At IDX_PG_COMMIT_SENT a non-zero return makes the
 * backend drop the connection without reading COMMIT's answer, as if it
 * were lost then. NULL removes it; set it while no transaction runs. */
enum idx_pg_point { IDX_PG_BEFORE_COMMIT, IDX_PG_COMMIT_SENT };
void idx_pg_set_hook(struct idx_db *db,
		     int (*fn)(void *arg, enum idx_pg_point p, int pid,
			       const unsigned char *id),
		     void *arg);


#endif
