/* env.c — the lmdb backend's environment (lmdb.h says how it works):
 * LMDB codes translated to errno, the map lock and the map's growth, the
 * beginning of a transaction (adopting a map another process grew),
 * opening (tables, lock file, data size checks) and closing.
 */
#include "lmdb.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
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

int idx_lmdb_err(const struct lmdb_db *ix, int rc)
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

int idx_lmdb_txn_fail(struct lmdb_txn *t, int rc)
{
	int r;

	assert(t && rc != MDB_SUCCESS);
	if (rc == MDB_MAP_FULL) {
		t->map_full = true;
		return -ENOSPC;
	}
	r = idx_lmdb_err(t->ix, rc);
	if (rc != MDB_NOTFOUND && rc != MDB_KEYEXIST &&
	    rc != MDB_BAD_VALSIZE && rc != EINVAL && rc != EACCES &&
	    !t->err)
		t->err = r;
	return r;
}

/* ---- the map lock and growth ------------------------------------------- */

void idx_lmdb_lock_shared(struct lmdb_db *ix)
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

void idx_lmdb_unlock(struct lmdb_db *ix)
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

int idx_lmdb_map_grow(struct lmdb_db *ix, size_t seen)
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
	idx_lmdb_unlock(ix);
	return r;
}

/* Adopts the map size another process recorded (MDB_MAP_RESIZED). */
static int map_adopt(struct lmdb_db *ix)
{
	int r;

	assert(ix);
	lock_excl(ix);
	r = ix->broken ? -EIO : remap(ix, 0);
	idx_lmdb_unlock(ix);
	return r;
}

int idx_lmdb_txn_begin(struct lmdb_db *ix, bool write, MDB_txn **ret,
		       size_t *seen)
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
			idx_lmdb_unlock(ix);
			r = map_adopt(ix);
			idx_lmdb_lock_shared(ix);
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
		r = idx_lmdb_err(ix, rc);
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
			return idx_lmdb_txn_fail(t, rc);
	}
	return 0;
}

static int open_tables_ro(struct lmdb_db *ix)
{
	struct lmdb_txn t = { .base.db = &ix->base, .ix = ix };
	size_t seen;
	int r, rc;

	idx_lmdb_lock_shared(ix);
	r = idx_lmdb_txn_begin(ix, false, &t.txn, &seen);
	if (r == 0) {
		r = open_tables(&t.base, NULL);
		if (r < 0) {
			mdb_txn_abort(t.txn);
		} else {
			rc = mdb_txn_commit(t.txn);
			r = idx_lmdb_err(ix, rc);
		}
	}
	idx_lmdb_unlock(ix);
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
		return idx_lmdb_err(ix, rc);
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
		return log_err(idx_lmdb_err(ix, rc), "cannot open index '%s'",
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



int idx_lmdb_open(const struct idx_options *opt, struct idx_db **ret)
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
	ix->lock_fd = ix->locks_fd = ix->probe_fd = ix->txn_locks_fd = -1;
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
		r = idx_lmdb_run(&ix->base, true, open_tables, NULL);
	if (r == 0)
		r = idx_lmdb_locks_open(ix);
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
	idx_lmdb_locks_close(ix);
	pthread_rwlock_destroy(&ix->lock);
	pthread_mutex_destroy(&ix->wlock);
	free(ix->data_path);
	free(ix->dir);
	free(ix);
	pthread_mutex_unlock(&open_lock);
	return r;
}

void idx_lmdb_close(struct idx_db *db)
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
	/* a forked child's copies: the parent's locks stay its own (the
	 * descriptions are shared, closing a copy lets nothing go) */
	idx_lmdb_locks_close(ix);
	pthread_rwlock_destroy(&ix->lock);
	pthread_mutex_destroy(&ix->wlock);
	free(ix->data_path);
	free(ix->dir);
	free(ix);
	pthread_mutex_unlock(&open_lock);
}

