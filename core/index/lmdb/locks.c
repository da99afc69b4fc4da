/* locks.c — the locks a process holds while it lives (idx_lock() and its
 * kin, index.h), for an index in LMDB: the processes that share it are
 * this host's, and OFD byte locks on DIR/locks are what the kernel drops
 * when a process dies. A lock's key is its byte.
 *
 * OFD locks (F_OFD_SETLK) belong to the open file description: two
 * descriptions conflict like two processes. So the process's locks are on
 * one description (locks_fd), idx_lock_held() asks through another
 * (probe_fd: it sees this process's locks too), and each write
 * transaction's through one of its own, closed when it ends (which lets
 * them go). A forked child shares the descriptions: what it closes lets
 * nothing go, and O_CLOEXEC keeps them from what it execs.
 */
#include "lmdb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"

static int byte_lock(int fd, int cmd, short type, uint64_t off)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
			    .l_start = (off_t)off, .l_len = 1 };

	while (fcntl(fd, cmd, &fl) < 0) {
		if (errno != EINTR)
			return errno == EACCES ? -EAGAIN : -errno;
	}
	return 0;
}

static int open_locks(struct lmdb_db *ix)
{
	int fd = open(ix->locks_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return log_err(-errno, "cannot open '%s'", ix->locks_path);
	return fd;
}

int idx_lmdb_locks_open(struct lmdb_db *ix)
{
	if (asprintf(&ix->locks_path, "%s/locks", ix->dir) < 0) {
		ix->locks_path = NULL;
		return -ENOMEM;
	}
	if (ix->base.read_only)
		return 0;
	ix->locks_fd = open_locks(ix);
	if (ix->locks_fd < 0)
		return ix->locks_fd;
	ix->probe_fd = open_locks(ix);
	return ix->probe_fd < 0 ? ix->probe_fd : 0;
}

void idx_lmdb_locks_close(struct lmdb_db *ix)
{
	if (ix->locks_fd >= 0)
		close(ix->locks_fd);
	if (ix->probe_fd >= 0)
		close(ix->probe_fd);
	ix->locks_fd = ix->probe_fd = -1;
	free(ix->locks_path);
	ix->locks_path = NULL;
}

void idx_lmdb_txn_locks_end(struct lmdb_db *ix)
{
	if (ix->txn_locks_fd >= 0)
		close(ix->txn_locks_fd);
	ix->txn_locks_fd = -1;
}

int idx_lmdb_plock(struct idx_db *db, uint64_t key, bool shared, bool wait)
{
	struct lmdb_db *ix = lmdb_db(db);
	int r;

	if (ix->locks_fd < 0)
		return -EROFS;
	r = byte_lock(ix->locks_fd, wait ? F_OFD_SETLKW : F_OFD_SETLK,
		      shared ? F_RDLCK : F_WRLCK, key);
	if (r < 0 && r != -EAGAIN)
		log_err(r, "cannot lock '%s'", ix->locks_path);
	return r;
}

void idx_lmdb_punlock(struct idx_db *db, uint64_t key)
{
	struct lmdb_db *ix = lmdb_db(db);

	if (ix->locks_fd >= 0)
		byte_lock(ix->locks_fd, F_OFD_SETLK, F_UNLCK, key);
}

int idx_lmdb_plock_held(struct idx_db *db, uint64_t key)
{
	struct lmdb_db *ix = lmdb_db(db);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = (off_t)key, .l_len = 1 };

	if (ix->probe_fd < 0)
		return -EROFS;
	if (fcntl(ix->probe_fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	return fl.l_type != F_UNLCK;
}

int idx_lmdb_txn_plock(struct idx_txn *t, uint64_t key)
{
	struct lmdb_db *ix = lmdb_db(t->db);
	int r;

	if (ix->txn_locks_fd < 0) {
		ix->txn_locks_fd = open_locks(ix);
		if (ix->txn_locks_fd < 0)
			return ix->txn_locks_fd;
	}
	r = byte_lock(ix->txn_locks_fd, F_OFD_SETLK, F_WRLCK, key);
	return r == -EAGAIN ? -EBUSY : r;
}
