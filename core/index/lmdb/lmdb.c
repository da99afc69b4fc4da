/* lmdb.c — the lmdb index backend (idx_lmdb_backend): ordered byte-string
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
#include "index/backend.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "io.h"
#include "log.h"

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

static struct lmdb_db *lmdb_db(struct idx_db *db)
{
	assert(db && db->be == &idx_lmdb_backend);
	return (struct lmdb_db *)db;
}

static struct lmdb_txn *lmdb_txn(struct idx_txn *t)
{
	assert(t && t->db->be == &idx_lmdb_backend);
	return (struct lmdb_txn *)t;
}

/* The process that has the environment open (LMDB allows one env per
 * process). A forked child inherits the parent's handle but must not use
 * it: it may open its own, hence the pid rather than a flag. */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t open_pid;

/* ---- errors ------------------------------------------------------------ */

/* LMDB reports a write that landed short as EIO ("short write, filesystem
 * full?" in mdb_page_flush): on a disk that fills up part of the way
 * through one of its multi-page writes, that is what a full disk looks
 * like. So an EIO is called ENOSPC when the index's file system has less
 * room left than one such write (LMDB writes at most 64 pages at a time,
 * more only for a record of overflow pages): a real I/O error on a disk
 * with room stays EIO. Root may fill the blocks reserved for it, others
 * only what f_bavail counts. */
#define FULL_DISK_ROOM (1 * MIB)

static bool disk_full(const struct lmdb_db *ix)
{
	struct statvfs st;
	uint64_t room;

	assert(ix);
	if (statvfs(ix->dir, &st) < 0)
		return false;
	room = (uint64_t)(geteuid() == 0 ? st.f_bfree : st.f_bavail) *
	       st.f_frsize;
	return room < FULL_DISK_ROOM;
}

/* Translates an LMDB return code into a negative errno, the one place that
 * does. LMDB's own codes whose reason would otherwise be lost (damage,
 * internal limits) are logged here; system errors are logged by the
 * caller, which knows what it was doing. */
static int lmdb_err(const struct lmdb_db *ix, int rc)
{
	assert(ix);
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
		return -ENOSPC;
	case MDB_BAD_VALSIZE:
		return -EINVAL;
	case MDB_READERS_FULL:
		return log_err(-EAGAIN, "index '%s' has no free reader slot",
			       ix->dir);
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		return log_err(-EIO, "index '%s' is damaged (%s)",
			       ix->data_path, mdb_strerror(rc));
	case MDB_PANIC:
		return log_err(-EIO, "index '%s' had a fatal error and must "
			       "be reopened", ix->data_path);
	case MDB_TXN_FULL:
		return log_err(-E2BIG, "index '%s': transaction too large",
			       ix->data_path);
	case ENOSPC:
		return -ENOSPC;
	case EIO:
		return disk_full(ix) ? -ENOSPC : -EIO;
	default:
		if (rc > 0)
			return -rc;
		return log_err(-EIO, "index '%s': %s", ix->data_path,
			       mdb_strerror(rc));
	}
}

/* Records an error of an operation inside t and translates it. After most
 * LMDB failures the transaction can no longer commit (MDB_TXN_ERROR), so
 * the first such error is kept and returned by idx_write() even if the
 * callback swallows it. Not-found, exists and bad sizes leave t usable. */
static int txn_fail(struct lmdb_txn *t, int rc)
{
	int r;

	assert(t && rc != MDB_SUCCESS);
	if (rc == MDB_MAP_FULL) {
		t->map_full = true;
		return -ENOSPC;
	}
	r = lmdb_err(t->ix, rc);
	if (rc != MDB_NOTFOUND && rc != MDB_KEYEXIST &&
	    rc != MDB_BAD_VALSIZE && rc != EINVAL && rc != EACCES &&
	    !t->err)
		t->err = r;
	return r;
}

/* ---- the map lock and growth ------------------------------------------- */

static void lock_shared(struct lmdb_db *ix)
{
	int r = pthread_rwlock_rdlock(&ix->lock);

	assert(r == 0);
	(void)r;
}

static void lock_excl(struct lmdb_db *ix)
{
	int r = pthread_rwlock_wrlock(&ix->lock);

	assert(r == 0);
	(void)r;
}

static void unlock(struct lmdb_db *ix)
{
	int r = pthread_rwlock_unlock(&ix->lock);

	assert(r == 0);
	(void)r;
}

/* Reads the map size LMDB uses now. Called with the lock exclusive, or
 * before the index is shared. */
static void map_size_refresh(struct lmdb_db *ix)
{
	MDB_envinfo info;

	assert(ix);
	if (mdb_env_info(ix->env, &info) == 0)
		ix->map_size = info.me_mapsize;
}

/* Sets the map size, with the lock exclusive. A failed mmap inside
 * mdb_env_set_mapsize() leaves the environment without a map, so first
 * make sure the address space is there; if the remap fails anyway the
 * index is marked broken and every later call fails with -EIO. */
static int remap(struct lmdb_db *ix, size_t size)
{
	void *p;
	int rc;

	assert(ix);
	if (size) {
		p = mmap(NULL, size, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			return log_err(-ENOSPC, "cannot grow index '%s' to "
				       "%zu MiB: no address space",
				       ix->data_path, (size_t)(size / MIB));
		munmap(p, size);
	}
	rc = mdb_env_set_mapsize(ix->env, size);
	if (rc != 0) {
		ix->broken = true;
		return log_err(rc == ENOMEM ? -ENOSPC : -EIO,
			       "cannot remap index '%s' (%s): it must be "
			       "reopened", ix->data_path, mdb_strerror(rc));
	}
	map_size_refresh(ix);
	return 0;
}

/* Grows the map after MDB_MAP_FULL. seen is the map size the failed
 * transaction ran with: if another thread grew the map meanwhile, that
 * growth is enough for a retry. Takes the lock exclusive; the caller
 * holds no transaction. */
static int map_grow(struct lmdb_db *ix, size_t seen)
{
	size_t cur, want;
	int r = 0;

	assert(ix);
	lock_excl(ix);
	cur = ix->map_size;
	if (ix->broken) {
		r = -EIO;
	} else if (cur <= seen) {
		want = cur > MIN_GROWTH ? cur * 2 : cur + MIN_GROWTH;
		if (cur >= MAX_MAP_SIZE || want > MAX_MAP_SIZE)
			r = log_err(-ENOSPC, "index '%s' reached its size "
				    "limit of %zu MiB", ix->data_path,
				    (size_t)(cur / MIB));
		else
			r = remap(ix, want);
		if (r == 0)
			log_info("index '%s' map grew from %zu to %zu MiB",
				 ix->data_path, (size_t)(cur / MIB),
				 (size_t)(ix->map_size / MIB));
	}
	unlock(ix);
	return r;
}

/* Adopts the map size another process recorded (MDB_MAP_RESIZED). */
static int map_adopt(struct lmdb_db *ix)
{
	int r;

	assert(ix);
	lock_excl(ix);
	r = ix->broken ? -EIO : remap(ix, 0);
	unlock(ix);
	return r;
}

/* Begins a transaction, with ix->lock held shared (it may be dropped and
 * retaken while the map is adopted; the caller's snapshot of map_size is
 * refreshed through *seen). */
static int txn_begin(struct lmdb_db *ix, bool write, MDB_txn **ret, size_t *seen)
{
	bool checked = false;
	int tries = 0, rc, r, dead;

	assert(ix && ret && seen);
	for (;;) {
		if (ix->broken)
			return -EIO;
		*seen = ix->map_size;
		rc = mdb_txn_begin(ix->env, NULL, write ? 0 : MDB_RDONLY, ret);
		if (rc == MDB_SUCCESS)
			return 0;
		if (rc == MDB_MAP_RESIZED && tries++ < MAX_RESIZE_TRIES) {
			unlock(ix);
			r = map_adopt(ix);
			lock_shared(ix);
			if (r < 0)
				return r;
			continue;
		}
		if (rc == MDB_READERS_FULL && !checked) {
			/* Slots of crashed processes may be the cause. */
			checked = true;
			if (mdb_reader_check(ix->env, &dead) == 0 && dead > 0)
				log_info("index '%s': cleared %d stale "
					 "readers", ix->dir, dead);
			continue;
		}
		r = lmdb_err(ix, rc);
		if (rc > 0)
			log_err(r, "cannot begin a transaction on index '%s'",
				ix->dir);
		return r;
	}
}

/* ---- open and close ---------------------------------------------------- */

static size_t page_round(uint64_t n)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);

	assert(pg > 0);
	if (n > SIZE_MAX - pg)
		return SIZE_MAX / pg * pg;
	return (size_t)((n + pg - 1) / pg * pg);
}

/* Opens (creating) every table in one transaction. Read-only envs open
 * them in a read transaction, committed so that the handles outlive it. */
static int open_tables(struct idx_txn *it, void *arg)
{
	struct lmdb_txn *t = lmdb_txn(it);
	struct lmdb_db *ix = t->ix;
	unsigned flags = t->base.write ? MDB_CREATE : 0;
	const char *name;
	int i, rc;

	(void)arg;
	for (i = 0; i < IDX_TABLES; i++) {
		name = idx_table_name((enum idx_table)i);
		rc = mdb_dbi_open(t->txn, name, flags, &ix->dbi[i]);
		if (rc == MDB_NOTFOUND)
			return log_err(-ENOENT, "index '%s' has no table '%s'",
				       ix->dir, name);
		if (rc == MDB_INCOMPATIBLE)
			return log_err(-EIO, "index '%s': '%s' is not a table",
				       ix->dir, name);
		if (rc != 0)
			return txn_fail(t, rc);
	}
	return 0;
}

static int open_tables_ro(struct lmdb_db *ix)
{
	struct lmdb_txn t = { .base.db = &ix->base, .ix = ix };
	size_t seen;
	int r, rc;

	lock_shared(ix);
	r = txn_begin(ix, false, &t.txn, &seen);
	if (r == 0) {
		r = open_tables(&t.base, NULL);
		if (r < 0) {
			mdb_txn_abort(t.txn);
		} else {
			rc = mdb_txn_commit(t.txn);
			r = lmdb_err(ix, rc);
		}
	}
	unlock(ix);
	return r;
}

/* The size to map at open: the asked size, or the file's if larger. */
static size_t initial_map_size(const char *data_path, uint64_t want)
{
	struct stat st;

	if (stat(data_path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size > want)
		want = (uint64_t)st.st_size;
	return page_round(want);
}

/* The reader table in lock.mdb is a sparse file written through a shared
 * map: on a full disk, the first touch of a page of it would kill the
 * process with SIGBUS instead of failing a call. Allocate it up front.
 * The descriptor stays open until the environment is closed, because
 * closing any descriptor of a file drops this process's POSIX locks on
 * it, and LMDB's are on this one. */
static int lock_file_alloc(struct lmdb_db *ix)
{
	struct stat st;
	char *p;
	int r;

	assert(ix && ix->lock_fd < 0);
	if (asprintf(&p, "%s/lock.mdb", ix->dir) < 0)
		return -ENOMEM;
	ix->lock_fd = open(p, O_RDWR | O_CLOEXEC);
	r = ix->lock_fd < 0 || fstat(ix->lock_fd, &st) < 0 ? -errno : 0;
	if (r == 0)
		r = -posix_fallocate(ix->lock_fd, 0, st.st_size);
	if (r == -EOPNOTSUPP || r == -EINVAL)
		r = 0;
	if (r < 0)
		log_err(r, "cannot allocate '%s'", p);
	free(p);
	return r;
}

/* LMDB maps data.mdb and trusts its meta page: a file cut short (truncated
 * by hand, a copy that stopped, a disk that lost its tail) would fault with
 * SIGBUS on the first read of a page past its end. The file only ever
 * grows, and a meta page names no page beyond what was written before it,
 * so a file shorter than the meta page's last page is damaged: refuse it
 * before any page is read. */
static int check_data_size(struct lmdb_db *ix)
{
	MDB_envinfo info;
	MDB_stat ms;
	struct stat st;
	uint64_t need;
	int rc;

	if ((rc = mdb_env_info(ix->env, &info)) != 0 ||
	    (rc = mdb_env_stat(ix->env, &ms)) != 0)
		return lmdb_err(ix, rc);
	if (stat(ix->data_path, &st) < 0)
		return log_err(-errno, "cannot stat '%s'", ix->data_path);
	need = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
	if ((uint64_t)st.st_size < need)
		return log_err(-EIO, "index '%s' is damaged: the file has %llu "
			       "bytes, its pages need %llu (truncated?)",
			       ix->data_path, (unsigned long long)st.st_size,
			       (unsigned long long)need);
	return 0;
}

static int env_open(struct lmdb_db *ix, const struct idx_options *opt)
{
	unsigned flags = MDB_NOTLS;
	int r, rc, dead;

	assert(ix && opt);
	if (!opt->sync)
		flags |= MDB_NOSYNC;
	if (opt->read_only)
		flags |= MDB_RDONLY;
	if ((rc = mdb_env_create(&ix->env)) != 0)
		return log_err(-rc, "cannot create index '%s'", ix->dir);
	if ((rc = mdb_env_set_maxreaders(ix->env, opt->max_readers ?
					 opt->max_readers :
					 DEFAULT_MAX_READERS)) != 0 ||
	    (rc = mdb_env_set_maxdbs(ix->env, IDX_TABLES)) != 0 ||
	    (rc = mdb_env_set_mapsize(ix->env, initial_map_size(ix->data_path,
			opt->map_size ? opt->map_size :
			DEFAULT_MAP_SIZE))) != 0)
		return log_err(-EINVAL, "cannot configure index '%s' (%s)",
			       ix->dir, mdb_strerror(rc));
	rc = mdb_env_open(ix->env, ix->dir, flags, 0600);
	switch (rc) {
	case MDB_SUCCESS:
		break;
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		return log_err(-EINVAL, "'%s' is not an lmdb environment of "
			       "this version (%s)", ix->data_path,
			       mdb_strerror(rc));
	case ENOENT:
		return log_err(-ENOENT, "cannot open index '%s'", ix->dir);
	default:
		return log_err(lmdb_err(ix, rc), "cannot open index '%s'",
			       ix->dir);
	}
	r = check_data_size(ix);
	if (r < 0)
		return r;
	if (!opt->read_only) {
		r = lock_file_alloc(ix);
		if (r < 0)
			return r;
	}
	if (mdb_env_get_maxkeysize(ix->env) < IDX_KEY_MAX)
		return log_err(-EINVAL, "liblmdb allows keys of %d bytes, "
			       "mreg needs %d", mdb_env_get_maxkeysize(ix->env),
			       IDX_KEY_MAX);
	if (mdb_reader_check(ix->env, &dead) == 0 && dead > 0)
		log_info("index '%s': cleared %d stale readers", ix->dir, dead);
	map_size_refresh(ix);
	return 0;
}


static int lmdb_run(struct idx_db *db, bool write, idx_txn_fn *fn, void *arg);

static int lmdb_open(const struct idx_options *opt, struct idx_db **ret)
{
	const char *dir = opt->path;
	pthread_rwlockattr_t attr;
	struct lmdb_db *ix;
	int r;

	if (!dir || !*dir)
		return -EINVAL;
	pthread_mutex_lock(&open_lock);
	if (open_pid == getpid()) {
		pthread_mutex_unlock(&open_lock);
		return log_err(-EBUSY, "cannot open index '%s': this process "
			       "has an index open", dir);
	}
	ix = calloc(1, sizeof(*ix));
	if (!ix) {
		pthread_mutex_unlock(&open_lock);
		return -ENOMEM;
	}
	ix->base.be = &idx_lmdb_backend;
	ix->base.read_only = opt->read_only;
	ix->lock_fd = -1;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
		PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	r = pthread_rwlock_init(&ix->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (r != 0) {
		free(ix);
		pthread_mutex_unlock(&open_lock);
		return -r;
	}
	pthread_mutex_init(&ix->wlock, NULL);
	ix->dir = strdup(dir);
	if (!ix->dir || asprintf(&ix->data_path, "%s/data.mdb", dir) < 0) {
		ix->data_path = NULL;
		r = -ENOMEM;
		goto fail;
	}
	if (!opt->read_only && mkdir(dir, 0700) < 0 && errno != EEXIST) {
		r = log_err(-errno, "cannot create index '%s'", dir);
		goto fail;
	}
	r = env_open(ix, opt);
	if (r < 0)
		goto fail;
	if (opt->read_only)
		r = open_tables_ro(ix);
	else
		r = lmdb_run(&ix->base, true, open_tables, NULL);
	if (r < 0)
		goto fail;
	ix->pid = open_pid = getpid();
	pthread_mutex_unlock(&open_lock);
	*ret = &ix->base;
	return 0;
fail:
	if (ix->env)
		mdb_env_close(ix->env);
	if (ix->lock_fd >= 0)
		close(ix->lock_fd);
	pthread_rwlock_destroy(&ix->lock);
	pthread_mutex_destroy(&ix->wlock);
	free(ix->data_path);
	free(ix->dir);
	free(ix);
	pthread_mutex_unlock(&open_lock);
	return r;
}

static void lmdb_close(struct idx_db *db)
{
	struct lmdb_db *ix = lmdb_db(db);

	pthread_mutex_lock(&open_lock);
	/* Closing in a forked child would clear the parent's reader slots
	 * (LMDB matches them by the pid recorded at open): leave it be. */
	if (ix->pid == getpid()) {
		mdb_env_close(ix->env);
		if (ix->lock_fd >= 0)
			close(ix->lock_fd);
		open_pid = 0;
	}
	pthread_rwlock_destroy(&ix->lock);
	pthread_mutex_destroy(&ix->wlock);
	free(ix->data_path);
	free(ix->dir);
	free(ix);
	pthread_mutex_unlock(&open_lock);
}

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

static int read_txn(struct lmdb_db *ix, idx_txn_fn *fn, void *arg)
{
	struct lmdb_txn t = { .base.db = &ix->base, .ix = ix };
	size_t seen;
	int r;

	lock_shared(ix);
	r = txn_begin(ix, false, &t.txn, &seen);
	if (r == 0) {
		r = txn_call(&t, fn, arg);
		/* Abort ends a read transaction and, with MDB_NOTLS,
		 * frees its reader slot. */
		mdb_txn_abort(t.txn);
	}
	unlock(ix);
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
		lock_shared(ix);
		r = txn_begin(ix, true, &t.txn, &seen);
		if (r < 0) {
			unlock(ix);
			return r;
		}
		r = txn_call(&t, fn, arg);
		if (t.map_full || r < 0 || t.err) {
			mdb_txn_abort(t.txn);
			unlock(ix);
			if (!t.map_full)
				return r < 0 ? r : t.err;
		} else if ((rc = io_fault(IO_FAULT_MAP_FULL)) < 0) {
			/* -DMREG_FAULTS only (else io_fault() is 0): a
			 * full map that cannot grow, on demand. */
			mdb_txn_abort(t.txn);
			unlock(ix);
			return log_err(rc, "index '%s' is full (injected "
				       "fault)", ix->data_path);
		} else {
			rc = mdb_txn_commit(t.txn);
			unlock(ix);
			if (rc == MDB_SUCCESS)
				return r;
			if (rc != MDB_MAP_FULL) {
				r = lmdb_err(ix, rc);
				if (rc > 0)
					log_err(r, "cannot commit to index "
						"'%s'", ix->data_path);
				return r;
			}
		}
		/* The map is full: grow it and run fn again. */
		r = map_grow(ix, seen);
		if (r < 0)
			return r;
	}
}

static int lmdb_run(struct idx_db *db, bool write, idx_txn_fn *fn, void *arg)
{
	struct lmdb_db *ix = lmdb_db(db);
	int r;

	if (!write)
		return read_txn(ix, fn, arg);
	writer_lock(ix);
	r = write_txn(ix, fn, arg);
	writer_unlock(ix);
	return r;
}

/* ---- operations -------------------------------------------------------- */

/* The error t can no longer run operations for, or 0. */
static int txn_spoilt(const struct lmdb_txn *t)
{
	return t->map_full ? -ENOSPC : t->err;
}

static int lmdb_get(struct idx_txn *it, enum idx_table tb, const void *key,
		    size_t klen, struct idx_val *ret)
{
	struct lmdb_txn *t = lmdb_txn(it);
	MDB_val k = { klen, (void *)key }, v;
	int rc;

	if (txn_spoilt(t))
		return txn_spoilt(t);
	rc = mdb_get(t->txn, t->ix->dbi[tb], &k, &v);
	if (rc != 0)
		return txn_fail(t, rc);
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
	return rc ? txn_fail(t, rc) : 0;
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
	return rc ? txn_fail(t, rc) : 0;
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
		return txn_fail(t, rc);
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
		return rc == MDB_NOTFOUND ? 0 : txn_fail(t, rc);
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
		return txn_fail(t, rc);
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
		return txn_fail(t, rc);
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
		return txn_fail(t, rc);
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
		return lmdb_err(ix, rc);
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

	lock_shared(ix);
	if (ix->broken) {
		unlock(ix);
		return -EIO;
	}
	rc = mdb_env_info(ix->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(ix->env, &st);
	unlock(ix);
	if (rc != 0)
		return lmdb_err(ix, rc);
	ret->bytes_used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	ret->bytes_alloc = info.me_mapsize;
	return 0;
}

const struct idx_backend idx_lmdb_backend = {
	.name = "lmdb",
	.open = lmdb_open,
	.close = lmdb_close,
	.run = lmdb_run,
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
};
