/* index.h — the metadata index: ordered tables of byte-string keys and
 * values, with transactions run as callbacks. One interface; backends:
 * lmdb (index/lmdb/, the default) and, with issue 14, postgres
 * (index/pg/). index.c checks every call's arguments, refuses nested
 * transactions and writes to a read-only index, and hands the rest to the
 * backend (index/backend.h). Which tables exist and what their keys mean
 * is the registry's (index/records.h writes the key schema down); a backend
 * sees byte strings.
 *
 *	static int fn(struct idx_txn *t, void *arg) { ... idx_put(t, ...) ... }
 *	r = idx_write(db, fn, &arg);
 *
 * Callbacks and retries. A backend may run a callback more than once: it
 * retries inside idx_read()/idx_write() what the caller should never see
 * (lmdb: the map grew, or another process grew it; postgres: a
 * serialization failure or deadlock, a connection lost before COMMIT). So
 * a callback has no effect outside the transaction but on its own arg,
 * which it resets at its start. It returns a negative errno to abort (the
 * transaction is not committed, idx_write() returns it) or >= 0 to commit
 * (idx_write() returns that value). Transactions do not nest: idx_read()
 * or idx_write() inside a callback is -EDEADLK.
 *
 * Values. What idx_get() and idx_last() give stays valid until the
 * transaction ends; what an iterator gives, until its next step. Copy
 * what you keep.
 *
 * Order. Keys sort as memcmp() then length (LMDB's default, PostgreSQL's
 * bytea). Integers in keys are big-endian (be64_put below) so they sort.
 *
 * Errors (every call): -EINVAL (bad argument, key not 1..IDX_KEY_MAX),
 * -ENOENT, -EEXIST (IDX_NOOVERWRITE), -EACCES (a write in a read
 * transaction), -ENOSPC (disk or map full), -EIO, -EROFS (opened
 * read-only), -EDEADLK (nested), -EAGAIN (a read transaction cannot start:
 * lmdb reader slots, postgres connections), -ETIMEDOUT (postgres: the
 * deadline passed). An error other than -ENOENT, -EEXIST, -EINVAL, -EACCES
 * spoils the transaction: it is aborted and that error returned even if
 * the callback returned >= 0.
 */
#ifndef MREG_INDEX_H
#define MREG_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest key every backend holds; the registry's longest is 8 + 255. */
#define IDX_KEY_MAX 320

enum idx_table {
	IDX_META = 0,  /* store-wide settings and counters */
	IDX_NAMES,     /* directory entries: (parent, name) -> inode */
	IDX_INODES,    /* inode -> inode record */
	IDX_EXTENTS,   /* (file inode, offset) -> chunk reference */
	IDX_CHUNKS,    /* (chunk id, n) -> location and reference count */
	IDX_XATTRS,    /* (inode, key) -> metadata value */
	IDX_HISTORY,   /* (model inode, seq) -> stage change */
	IDX_AUDIT,     /* seq -> audit record */
	IDX_TRASH,     /* inode -> removal time: trees gc frees */
	IDX_TABLES     /* count */
};

struct idx_val {
	const void *data;
	size_t len;
};

struct idx_options {
	const char *backend;   /* "lmdb" (NULL: lmdb) or "postgres" */
	const char *path;      /* lmdb: the environment's directory */
	const char *conninfo;  /* postgres: a libpq connection string, with
				* no password in it (PGPASSWORD, or a
				* passfile: passfile=, PGPASSFILE, ~/.pgpass) */
	uint64_t map_size;     /* lmdb: initial map size (0: 64 MiB) */
	unsigned max_readers;  /* lmdb (0: 4096) */
	const char *schema;    /* postgres: the schema of the tables, made
				* when missing (NULL: the connection's
				* search_path decides) */
	unsigned connections;  /* postgres: pool size (0: 8) */
	unsigned deadline_ms;  /* postgres: longest a call may take, retries
				* included (0: 30000) */
	bool sync;             /* false: commits are not made durable */
	bool read_only;        /* open for reading only (fsck on a read-only
				* fs) */
};

struct idx_db;                  /* an open index */
struct idx_txn;                 /* valid inside its callback only */
struct idx_iter;                /* valid inside its transaction only */
typedef int idx_txn_fn(struct idx_txn *t, void *arg);

/* Opens the index of opt->backend. lmdb: opens (creating) the environment
 * in directory opt->path (files data.mdb and lock.mdb; the directory is
 * made with mode 0700 if missing, its parent is not) and clears stale
 * reader slots. One per process: -EBUSY while this process has one open. A
 * forked child may open its own; it must neither use nor close its
 * parent's handle (idx_close() in the child then only frees it).
 * Errors: -EINVAL for a missing opt, path or ret, an unknown backend, or
 * what is not an index of ours (logged with the reason); -ENOMEM, -EACCES,
 * -ENOSPC, -EIO, -ENOTDIR; -ENOENT with read_only when there is no index
 * or it lacks a table. */
int idx_open(const struct idx_options *opt, struct idx_db **ret);
/* Closes; takes NULL. No transaction may be running. Another index may be
 * opened afterwards. */
void idx_close(struct idx_db *db);

/* Runs fn in a read transaction (a consistent snapshot). Returns what fn
 * returned; the error that spoilt the transaction (above) whatever fn
 * returned; or a negative errno if the transaction could not start:
 * -EAGAIN, -EIO, -EDEADLK from inside a callback. Safe from many
 * threads. */
int idx_read(struct idx_db *db, idx_txn_fn *fn, void *arg);
/* Runs fn in the write transaction (one at a time across every process
 * and host using the index) and commits when fn returns >= 0; returns
 * fn's value then. Errors: fn's, -ENOSPC (disk or the map's size limit),
 * -EIO, -EROFS on an index opened read_only, -EDEADLK from inside a
 * callback, and the error that spoilt the transaction (above). */
int idx_write(struct idx_db *db, idx_txn_fn *fn, void *arg);

/* True when t may write. */
bool idx_writable(const struct idx_txn *t);

/* Looks key up. 0 and *ret set, or -ENOENT. Keys must be 1 to
 * IDX_KEY_MAX bytes in every call below, or -EINVAL. */
int idx_get(struct idx_txn *t, enum idx_table tb, const void *key,
	    size_t klen, struct idx_val *ret);

#define IDX_NOOVERWRITE 1u
/* Stores key -> val. With IDX_NOOVERWRITE, -EEXIST when key exists.
 * Errors: -EACCES in a read transaction, -EINVAL for a key too long or
 * an unknown flag. */
int idx_put(struct idx_txn *t, enum idx_table tb, const void *key,
	    size_t klen, const void *val, size_t vlen, unsigned flags);
/* Removes key: 0, or -ENOENT. -EACCES in a read transaction. */
int idx_del(struct idx_txn *t, enum idx_table tb, const void *key,
	    size_t klen);

/* Ordered iteration over the keys that start with prefix, from the first
 * key >= start (start NULL: the first with prefix). An empty prefix (plen
 * 0, prefix may be NULL) matches every key. Table tb must not be changed
 * while an iterator on it is open (other tables may). -EINVAL for a
 * prefix or start over IDX_KEY_MAX bytes.
 *	struct idx_iter *it;
 *	struct idx_val k, v;
 *	r = idx_iter_begin(t, IDX_NAMES, p, 8, NULL, 0, &it);
 *	while (r >= 0 && (r = idx_iter_next(it, &k, &v)) > 0) { ... }
 *	idx_iter_end(it);
 * idx_iter_begin: 0 and *ret set, or -errno (then *ret is NULL, and
 * idx_iter_end(NULL) does nothing). idx_iter_next: 1 and the key and
 * value set; 0 at the end (and on every call after it); -errno. End every
 * iterator before its transaction ends. */
int idx_iter_begin(struct idx_txn *t, enum idx_table tb, const void *prefix,
		   size_t plen, const void *start, size_t slen,
		   struct idx_iter **ret);
int idx_iter_next(struct idx_iter *it, struct idx_val *ret_key,
		  struct idx_val *ret_val);
void idx_iter_end(struct idx_iter *it);

/* The callback form, over an iterator: calls fn for each key as above. fn
 * returns 0 to go on, anything else to stop; idx_scan() returns that
 * value, or 0 when the keys ran out, or -errno. */
int idx_scan(struct idx_txn *t, enum idx_table tb, const void *prefix,
	     size_t plen, const void *start, size_t slen,
	     int (*fn)(void *arg, const struct idx_val *key,
		       const struct idx_val *val),
	     void *arg);

/* The last key (in key order) that starts with prefix: 0 and *ret_key /
 * *ret_val set, or -ENOENT. An empty prefix gives the table's last key. */
int idx_last(struct idx_txn *t, enum idx_table tb, const void *prefix,
	     size_t plen, struct idx_val *ret_key, struct idx_val *ret_val);

/* Number of entries in a table (fsck's progress; postgres: may be an
 * estimate). */
int idx_count(struct idx_txn *t, enum idx_table tb, uint64_t *ret);
/* Number of keys that start with prefix (plen 1..IDX_KEY_MAX), exactly:
 * counted where the keys are (postgres: by the server, no row comes
 * back; lmdb: a cursor walk, nothing copied). -EINVAL, and the errors
 * that spoil the transaction. */
int idx_count_prefix(struct idx_txn *t, enum idx_table tb,
		     const void *prefix, size_t plen, uint64_t *ret);

/* Housekeeping a long-running process calls now and then (the daemon:
 * every tick, 2 s). lmdb: clears reader slots of dead processes and
 * returns how many; postgres: pings idle connections. Returns >= 0 or
 * -errno. */
int idx_maint(struct idx_db *db);

struct idx_stats {
	uint64_t bytes_used;    /* lmdb: pages in data.mdb up to the last
				 * one written; pg: relation sizes */
	uint64_t bytes_alloc;   /* lmdb: this process's map; pg: 0 */
};
/* What the index takes: 0 and *ret set, or -errno. */
int idx_stats(struct idx_db *db, struct idx_stats *ret);

/* ---- locks a process holds while it lives --------------------------------
 * What a process holds for as long as it lives, seen by every process of
 * every host using the index and let go by the system when the holder
 * dies: life tokens, writers of drafts, pins of versions (registry/live.c,
 * maint/pins.c). A lock is (space, id), id below IDX_LOCK_ID_MAX.
 *	lmdb:     OFD byte locks on the file "locks" beside the environment;
 *	postgres: advisory locks, on a session the index keeps for them. A
 *	          lost session loses them: the next call or idx_maint()
 *	          connects again and takes them again; until a server that
 *	          (re)started has been up for the grace of idx_lock_held(),
 *	          every lock counts as held.
 * The locks of idx_lock() are the process's (one holder, whatever the
 * thread); those of idx_txn_lock() the transaction's, a holder of its own
 * that conflicts with the process's. */
enum idx_lock_space {
	IDX_LOCK_LIFE = 1,  /* a process's life token: exclusive */
	IDX_LOCK_WRITER,    /* a draft version written: shared; its seal:
			     * exclusive (idx_txn_lock) */
	IDX_LOCK_PIN,       /* a version open for reading: shared */
};
#define IDX_LOCK_ID_MAX (1ULL << 56)

/* Takes lock (sp, id), shared or exclusive, for this process. With wait,
 * waits while another holder has it in a conflicting mode (lmdb: as
 * long as it takes; postgres: until the deadline), else fails at once.
 * Taking a lock this process holds in the same mode succeeds and counts
 * nothing: one idx_unlock() lets it go. Errors: -EAGAIN (held by
 * another), -EINVAL (space, id), -ETIMEDOUT, -EIO, -ENOMEM. */
int idx_lock(struct idx_db *db, enum idx_lock_space sp, uint64_t id,
	     bool shared, bool wait);
/* Lets (sp, id) go; a lock not held is ignored. */
void idx_unlock(struct idx_db *db, enum idx_lock_space sp, uint64_t id);
/* Whether any holder, this process included, holds (sp, id): 1 or 0, or
 * -errno when it cannot be told (callers then keep what the holder
 * left). */
int idx_lock_held(struct idx_db *db, enum idx_lock_space sp, uint64_t id);
/* Inside write transaction t: takes (sp, id) exclusive until t ends,
 * trying for up to wait_ms (a lock let go on its way is seen). Errors:
 * -EBUSY (held), -EACCES (a read transaction), -EINVAL, -EIO. */
int idx_txn_lock(struct idx_txn *t, enum idx_lock_space sp, uint64_t id,
		 unsigned wait_ms);

/* ---- commits that wake watchers -------------------------------------------
 * A write transaction that calls idx_notify() wakes, once it commits,
 * every watcher of the index, in any process on any host (nothing when
 * it does not commit). A watcher learns that something committed, not
 * what: it reads what changed itself (the registry: the audit trail).
 *	postgres: NOTIFY in the transaction; a watcher is a connection of its
 *	          own that LISTENs.
 *	lmdb:     one host; idx_notify() does nothing and idx_watch_open()
 *	          is -ENOTSUP: a watcher polls.
 * A watch that failed (-errno from idx_watch_wait: the connection was
 * lost) may have missed wake-ups: close it, open another, and read what
 * changed since the last read. */
struct idx_watch;
/* Marks write transaction t: its commit wakes the watchers. Errors:
 * -EACCES (a read transaction), and those that spoil t. */
int idx_notify(struct idx_txn *t);
/* A watcher of db. Errors: -ENOTSUP (the backend has none), -ETIMEDOUT,
 * -EIO, -EACCES, -ENOMEM (connecting). */
int idx_watch_open(struct idx_db *db, struct idx_watch **ret);
/* Waits up to timeout_ms for commits that notified: 1 when some did
 * (every wake-up that had arrived is taken), 0 when none came in time,
 * -EIO when the watch is lost. */
int idx_watch_wait(struct idx_watch *w, int timeout_ms);
/* Closes; takes NULL. */
void idx_watch_close(struct idx_watch *w);

/* Big-endian helpers for keys that sort in numeric order. */
static inline void be64_put(void *p, uint64_t v)
{
	unsigned char *c = p;
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		c[i] = (unsigned char)v;
}

static inline uint64_t be64_get(const void *p)
{
	const unsigned char *c = p;
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | c[i];
	return v;
}

#endif
