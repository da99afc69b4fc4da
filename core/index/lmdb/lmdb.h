/* lmdb.h — the lmdb index backend (idx_lmdb_backend): ordered byte-string
 * tables with ACID transactions, kept in LMDB. This is the only file that
 * includes <lmdb.h>; index.c has checked every argument before a call
 * reaches it (backend.h), and the registry sees tables, keys, values and
 * transactions run as callbacks through index.h.
 *
 * Environment layout (DIR is created with mode 0700, files are 0600):
 *	DIR/data.mdb    the B-trees; never MDB_WRITEMAP, so the map is
 *	                read-only and a stray pointer cannot corrupt it
 *	DIR/lock.mdb    reader table and the cross-process writer mutex,
 *	                allocated in full at open (see lock_file_alloc)
 * One named database per enum idx_table ("meta", "names", ...), all
 * created in one write transaction at open. Keys are what the registry
 * writes (index/records.h documents their schema); this module does not look
 * inside them.
 *
 * One MDB_env per process (LMDB's POSIX locks break with two). It is
 * opened with MDB_NOTLS: the FUSE daemon runs read transactions on a
 * thread pool, so a reader slot belongs to a transaction, not to a thread,
 * and is released when the transaction ends. No transaction outlives the
 * callback it was made for.
 *
 * Locking and map growth. mdb_env_set_mapsize() unmaps and remaps the
 * file, which is only safe while no transaction of this process uses the
 * map. Every transaction, read or write, therefore holds ix->lock shared
 * for its whole life; changing the map size holds it exclusive. The lock
 * prefers the exclusive side, so a steady stream of readers cannot starve
 * a growth; in exchange a thread must never take it twice, which is why
 * index.c refuses nested idx_read()/idx_write() calls (-EDEADLK). The map
 * changes size in two cases, both handled here and nowhere else:
 *	- a write transaction hits MDB_MAP_FULL (in a put or at commit): it is
 *	  aborted, the map grows (doubles, by at least 64 MiB) and the
 *	  callback runs again;
 *	- a transaction cannot begin with MDB_MAP_RESIZED because another
 *	  process grew the map: the map adopts the size recorded in the file
 *	  (mdb_env_set_mapsize(env, 0)) and the begin is retried.
 * Without MDB_WRITEMAP a bigger map costs address space, not disk: a full
 * disk shows up as ENOSPC (or, for a write that landed short, as EIO on a
 * file system without room: see disk_full) from the writes at commit, and
 * is returned as -ENOSPC with the store left at its last committed state.
 *
 * Writers across processes. LMDB's writer lock is a robust process-shared
 * pthread mutex in lock.mdb, and such a mutex loses a wake-up when a
 * process waiting for it is killed just as it is handed over (glibc bug
 * 19402): the lock is free, and the other waiters sleep until some later
 * writer happens to contend (a `mreg promote` killed beside others left
 * one waiting for good; tests/fs/test_kills.py). So writers first take
 * flock(LOCK_EX) on lock.mdb, whose waiters the kernel wakes all and
 * forgets when killed; LMDB's mutex then never has a waiter in another
 * process. flock(2) locks belong to the open file description, which all
 * threads share: ix->wlock lets one thread of this process at a time
 * reach it. flock and LMDB's POSIX locks on the same file are independent.
 */
#ifndef MREG_INDEX_LMDB_H
#define MREG_INDEX_LMDB_H

#include "index/backend.h"

#include <assert.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#define MIB (1024ull * 1024)
#define DEFAULT_MAP_SIZE (64 * MIB)
#define DEFAULT_MAX_READERS 4096u
#define MIN_GROWTH (64 * MIB)
/* Far beyond any registry's metadata; stops a callback that can never fit
 * from doubling the map until the address space runs out. */
#define MAX_MAP_SIZE (1ull << 42)
/* Retries of a begin that keeps answering MDB_MAP_RESIZED. */
#define MAX_RESIZE_TRIES 8
/* liblmdb's longest key as built by default (MDB_MAXKEYSIZE): every key
 * of the interface fits. env_open checks the library's own at run time. */
#define LMDB_KEY_MAX 511
_Static_assert(IDX_KEY_MAX <= LMDB_KEY_MAX, "IDX_KEY_MAX fits in LMDB");

struct lmdb_db {
	struct idx_db base;
	MDB_env *env;
	MDB_dbi dbi[IDX_TABLES];
	char *dir;
	char *data_path;          /* DIR/data.mdb, for messages */
	int lock_fd;              /* DIR/lock.mdb, kept open: see env_open */
	int locks_fd;             /* DIR/locks: this process's idx_lock()s */
	int probe_fd;             /* DIR/locks again: idx_lock_held() */
	int txn_locks_fd;         /* DIR/locks for the write transaction's
				     idx_txn_lock()s (under wlock), or -1 */
	char *locks_path;
	pthread_rwlock_t lock;    /* shared: a transaction; exclusive: remap */
	pthread_mutex_t wlock;    /* one writer of this process: see above */
	size_t map_size;          /* changes only under lock exclusive */
	pid_t pid;                /* the process that opened it */
	bool broken;              /* a remap failed: the map is gone */
};

struct lmdb_txn {
	struct idx_txn base;
	struct lmdb_db *ix;
	MDB_txn *txn;
	bool map_full;            /* a put hit MDB_MAP_FULL: grow and rerun */
	int err;                  /* first error that spoilt the txn, or 0 */
	struct lmdb_iter *iters;  /* open iterators: closed at the end */
};

/* An iterator: a cursor, and the bounds it runs between. */
struct lmdb_iter {
	struct idx_iter base;
	struct lmdb_iter *next;   /* in its transaction's list */
	MDB_cursor *cur;
	size_t plen, slen;
	bool started, done;
	unsigned char prefix[IDX_KEY_MAX];
	unsigned char start[IDX_KEY_MAX];
};

static inline struct lmdb_db *lmdb_db(struct idx_db *db)
{
	assert(db && db->be == &idx_lmdb_backend);
	return (struct lmdb_db *)db;
}

static inline struct lmdb_txn *lmdb_txn(struct idx_txn *t)
{
	assert(t && t->db->be == &idx_lmdb_backend);
	return (struct lmdb_txn *)t;
}

/* ---- env.c: errors, the map lock and growth, open and close ---- */
/* Translates an LMDB return code into a negative errno, the one place that
 * does. LMDB's own codes whose reason would otherwise be lost (damage,
 * internal limits) are logged here; system errors are logged by the
 * caller, which knows what it was doing. */
int idx_lmdb_err(const struct lmdb_db *ix, int rc);
/* Records an error of an operation inside t and translates it. After most
 * LMDB failures the transaction can no longer commit (MDB_TXN_ERROR), so
 * the first such error is kept and returned by idx_write() even if the
 * callback swallows it. Not-found, exists and bad sizes leave t usable. */
int idx_lmdb_txn_fail(struct lmdb_txn *t, int rc);
/* ix->lock shared (a transaction), and its release (either side). */
void idx_lmdb_lock_shared(struct lmdb_db *ix);
void idx_lmdb_unlock(struct lmdb_db *ix);
/* Grows the map after MDB_MAP_FULL. seen is the map size the failed
 * transaction ran with: if another thread grew the map meanwhile, that
 * growth is enough for a retry. Takes the lock exclusive; the caller
 * holds no transaction. */
int idx_lmdb_map_grow(struct lmdb_db *ix, size_t seen);
/* Begins a transaction, with ix->lock held shared (it may be dropped and
 * retaken while the map is adopted; the caller's snapshot of map_size is
 * refreshed through *seen). */
int idx_lmdb_txn_begin(struct lmdb_db *ix, bool write, MDB_txn **ret,
		       size_t *seen);
/* The backend's open and close (backend.h). */
int idx_lmdb_open(const struct idx_options *opt, struct idx_db **ret);
void idx_lmdb_close(struct idx_db *db);

/* ---- locks.c: idx_lock() and its kin, OFD byte locks on DIR/locks ---- */
/* Opens DIR/locks (not on a read-only index: its locks then fail with
 * -EROFS, and idx_lock_held() says it cannot tell). */
int idx_lmdb_locks_open(struct lmdb_db *ix);
void idx_lmdb_locks_close(struct lmdb_db *ix);
/* Lets the write transaction's locks go (its end, under wlock). */
void idx_lmdb_txn_locks_end(struct lmdb_db *ix);
int idx_lmdb_plock(struct idx_db *db, uint64_t key, bool shared, bool wait);
void idx_lmdb_punlock(struct idx_db *db, uint64_t key);
int idx_lmdb_plock_held(struct idx_db *db, uint64_t key);
int idx_lmdb_txn_plock(struct idx_txn *t, uint64_t key);

/* ---- txn.c: transactions, operations, iterators, the backend table ---- */
/* Runs fn in a transaction (idx_read()/idx_write() of index.h). */
int idx_lmdb_run(struct idx_db *db, bool write, idx_txn_fn *fn, void *arg);

#endif
