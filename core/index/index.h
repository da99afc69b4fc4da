/* index.h — the metadata index: ordered key/value tables with ACID
 * transactions, kept in LMDB. The only module that includes <lmdb.h>.
 *
 * The registry calls it through transactions run as callbacks, so that the
 * retry rules (grow the map on MDB_MAP_FULL, adopt a map another process
 * grew) live in one place:
 *
 *	static int fn(struct idx_txn *t, void *arg) { ... idx_put(t, ...) ... }
 *	r = idx_write(ix, fn, &arg);
 *
 * A write callback may run more than once (after the map grew): it must not
 * have effects outside the transaction other than on its own arg, which it
 * must reset at its start. Values returned by idx_get() and passed to scan
 * callbacks point into the map and are valid only inside the callback's
 * transaction: copy what you need. Return a negative errno from a callback
 * to abort (the transaction is not committed) and have idx_write()
 * return it; return 0 to commit. Transactions do not nest: calling
 * idx_read() or idx_write() from inside a callback is -EDEADLK.
 *
 * Which tables exist and what their keys are is the registry's business
 * (registry.c writes its key schema down); this module sees byte strings.
 * Keys are at most IDX_KEY_MAX bytes.
 */
#ifndef MREG_INDEX_H
#define MREG_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDX_KEY_MAX 511

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
	const char *path;      /* the environment's directory */
	uint64_t map_size;     /* initial map size (0: 64 MiB) */
	unsigned max_readers;  /* 0: 4096 */
	bool sync;             /* false: commits are not made durable */
	bool read_only;        /* open for reading only (fsck on a read-only
				* fs) */
};

struct idx_db;
struct idx_txn;

/* Opens (creating) the environment in directory opt->path (files data.mdb
 * and lock.mdb; the directory is made with mode 0700 if missing, its
 * parent is not). Clears stale reader slots.
 * One per process: -EBUSY while this process has one open. A forked child
 * may open its own; it must neither use nor close its parent's handle
 * (idx_close() in the child then only frees it).
 * Errors: -ENOMEM, -EACCES, -ENOSPC, -EIO, -ENOTDIR; -EINVAL for a missing
 * opt, path or ret, or a file that is not an LMDB environment (logged with
 * the reason); -ENOENT with read_only when there is no environment or it
 * lacks a table. */
int idx_open(const struct idx_options *opt, struct idx_db **ret);
/* Closes; takes NULL. No transaction may be running. Another index may be
 * opened afterwards. */
void idx_close(struct idx_db *ix);

/* Runs fn in a read-only transaction (a consistent snapshot). Returns what
 * fn returned, or a negative errno if the transaction could not start:
 * -EAGAIN when every reader slot is taken (after clearing stale ones),
 * -EIO, -EDEADLK from inside a callback. Safe from many threads. */
int idx_read(struct idx_db *ix, int (*fn)(struct idx_txn *, void *), void *arg);
/* Runs fn in the write transaction (one at a time across all processes)
 * and commits when fn returns >= 0; returns fn's value then. Grows the map
 * and runs fn again on MDB_MAP_FULL, whatever fn returned. An idx_* error
 * other than -ENOENT, -EEXIST, -EINVAL, -EACCES leaves the transaction
 * unable to commit: it is aborted and that error returned even if fn
 * returned >= 0. Errors: fn's, -ENOSPC (disk or the map's size limit),
 * -EIO, -EROFS on an index opened read_only, -EDEADLK from inside a
 * callback. */
int idx_write(struct idx_db *ix, int (*fn)(struct idx_txn *, void *),
	      void *arg);

/* True when t may write. */
bool idx_writable(const struct idx_txn *t);

/* Looks key up. 0 and *ret set, or -ENOENT. Keys must be 1 to
 * IDX_KEY_MAX bytes in every call below, or -EINVAL. */
int idx_get(struct idx_txn *t, enum idx_table tb, const void *key,
	    size_t klen, struct idx_val *ret);

#define IDX_NOOVERWRITE 1u
/* Stores key -> val. With IDX_NOOVERWRITE, -EEXIST when key exists.
 * Errors: -EACCES in a read transaction, -EINVAL for a key too long. */
int idx_put(struct idx_txn *t, enum idx_table tb, const void *key,
	    size_t klen, const void *val, size_t vlen, unsigned flags);
/* Removes key: 0, or -ENOENT. */
int idx_del(struct idx_txn *t, enum idx_table tb, const void *key,
	    size_t klen);

/* Calls fn for each key that starts with prefix, in key order, starting
 * at the first key >= start (start may be NULL: the first with prefix).
 * An empty prefix (plen 0, prefix may be NULL) matches every key.
 * fn returns 0 to go on, anything else to stop; idx_scan() returns that
 * value, or 0 when the keys ran out. fn must not change table tb (other
 * tables it may). -EINVAL for a prefix or start over IDX_KEY_MAX bytes. */
int idx_scan(struct idx_txn *t, enum idx_table tb, const void *prefix,
	     size_t plen, const void *start, size_t slen,
	     int (*fn)(void *arg, const struct idx_val *key,
		       const struct idx_val *val),
	     void *arg);

/* The last key (in key order) that starts with prefix: 0 and *ret_key /
 * *ret_val set, or -ENOENT. An empty prefix gives the table's last key. */
int idx_last(struct idx_txn *t, enum idx_table tb, const void *prefix,
	     size_t plen, struct idx_val *ret_key, struct idx_val *ret_val);

/* Number of entries in a table. */
int idx_count(struct idx_txn *t, enum idx_table tb, uint64_t *ret);

/* Clears reader slots of dead processes; returns how many. Call it now and
 * then in long-running processes (the daemon does, every minute). */
int idx_maint(struct idx_db *ix);

struct idx_stats {
	uint64_t bytes_used;    /* pages in data.mdb up to the last one
				 * written */
	uint64_t bytes_alloc;   /* this process's map */
};
/* What the index takes: 0 and *ret set, or -errno. */
int idx_stats(struct idx_db *ix, struct idx_stats *ret);

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
