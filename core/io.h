/* io.h — the one door through which the store's own writes pass: pack
 * files (store/pack/write.c) and spool files (registry/writer.c,
 * spool.c). LMDB's writes are not here: LMDB with sync on is trusted to
 * be durable at commit.
 *
 * In a normal build every io_*() is an inline call of the system call it
 * names, returning a negative errno instead of -1: nothing is read from
 * the environment and nothing costs more than the call.
 *
 * A test build (-DMREG_FAULTS, what `make test` builds into
 * $(BUILD)/faults/) arms two mechanisms from the environment:
 *
 *   Crash simulation (the way SQLite's crash VFS works). Every write to a
 *   pack first saves the bytes it overwrites, so the content of each pack
 *   at its last successful sync is known. MREG_CRASH_AT=N "loses power" at
 *   the Nth sync call (io_fsync/io_fdatasync, of packs and directories),
 *   before it syncs anything; MREG_CRASH_WRITE=N at the Nth write
 *   (io_pwrite/io_ftruncate of a pack), which may land torn. Losing power
 *   means: for every pack, of the bytes written since its last sync a
 *   random subset of 512-byte blocks goes back to what was there before
 *   (zeroes past the old end), the size ends up anywhere between the old
 *   and the new one, one block may be torn (a prefix of new bytes over
 *   old ones); a pack whose name was not yet made durable by a sync of its
 *   directory may vanish altogether. Then the process ends with
 *   _exit(IO_CRASH_STATUS), syncing nothing. MREG_CRASH_SEED=S seeds the
 *   choices (default: the crash point).
 *
 *   Named fault points. MREG_FAULT="pack_write:N:ENOSPC,read:N:EIO,..."
 *   makes the Nth event of that kind fail, once, with that error ("N+":
 *   the Nth and every later one, a disk that stays full):
 *	pack_write   a write to a pack (half of it lands: a torn write)
 *	spool_write  a write or truncation of a spool file
 *	fsync        a sync call (a pack's unsynced bytes are then lost, as
 *	             a kernel may drop dirty pages whose writeback failed)
 *	read         a chunk read (store_get and store_get_raw)
 *	map_full     an index write transaction, at its commit: -ENOSPC, as
 *	             when LMDB's map is full and cannot grow
 *	index_read   a get or an iterator step of the lmdb index, in any
 *	             transaction (as a damaged page, or a postgres connection
 *	             lost in a scan): it spoils the transaction
 *   The error is a name (ENOSPC, EIO, EDQUOT, EROFS, ENOMEM) or a number;
 *   it may be left out (map_full: ENOSPC, the others: EIO).
 *
 *   Windows. io_window() marks a place between two steps of an operation
 *   where another process may act, so that a test can act there and check
 *   that the second step re-checks what the first one saw. A test sets a
 *   function with io_window_hook(); the next pass through that window
 *   calls it, once. Not set from the environment.
 *	gc_drop      gc, after its scan for chunks nothing references and
 *	             before the transaction that drops their records (which
 *	             must keep a chunk referenced again meanwhile)
 */
#ifndef MREG_IO_H
#define MREG_IO_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

/* What a descriptor is: only packs are durable, so only their writes are
 * tracked for crashes. */
enum io_kind {
	IO_PACK,   /* a pack file of the chunk store */
	IO_SPOOL,  /* an unnamed spool file: gone after a crash anyway */
	IO_DIR,    /* a directory whose entries must become durable */
};

/* Fault points, see above. */
enum io_fault {
	IO_FAULT_PACK_WRITE,
	IO_FAULT_SPOOL_WRITE,
	IO_FAULT_FSYNC,
	IO_FAULT_READ,
	IO_FAULT_MAP_FULL,
	IO_FAULT_INDEX_READ,
	IO_FAULT_COUNT
};

/* Windows, see above. */
enum io_window {
	IO_WINDOW_GC_DROP,
	IO_WINDOW_COUNT
};

/* The exit status of a simulated crash. */
#define IO_CRASH_STATUS 99

#ifdef MREG_FAULTS

/* openat(2); a pack created here (O_CREAT) is tracked from now on.
 * Returns the descriptor or -errno. */
int io_openat(int dirfd, const char *name, int flags, mode_t mode,
	      enum io_kind kind);
/* pwrite(2): the count written (maybe short) or -errno. */
ssize_t io_pwrite(int fd, const void *buf, size_t len, off_t off,
		  enum io_kind kind);
/* ftruncate(2): 0 or -errno. */
int io_ftruncate(int fd, off_t len, enum io_kind kind);
/* fdatasync(2) / fsync(2): 0 or -errno. */
int io_fdatasync(int fd, enum io_kind kind);
int io_fsync(int fd, enum io_kind kind);
/* 0, or the negative errno armed for the next event of kind f. */
int io_fault(enum io_fault f);

/* Calls the function set for window w, if any, and forgets it. */
void io_window(enum io_window w);
/* Sets fn(arg) to be called at the next pass through window w (fn NULL:
 * none). For tests: the function runs on the thread of the operation,
 * outside any transaction of the index. */
void io_window_hook(enum io_window w, void (*fn)(void *arg), void *arg);

/* For tests. io_faults_reload() reads the environment again (a forked
 * child that set its own MREG_CRASH_AT) and resets every counter and
 * every tracked file. io_stats() gives the sync calls and pack writes
 * counted so far. */
void io_faults_reload(void);
void io_stats(uint64_t *ret_syncs, uint64_t *ret_writes);

#else /* !MREG_FAULTS */

static inline int io_openat(int dirfd, const char *name, int flags,
			    mode_t mode, enum io_kind kind)
{
	int fd = openat(dirfd, name, flags, mode);

	(void)kind;
	return fd < 0 ? -errno : fd;
}

static inline ssize_t io_pwrite(int fd, const void *buf, size_t len,
				off_t off, enum io_kind kind)
{
	ssize_t n = pwrite(fd, buf, len, off);

	(void)kind;
	return n < 0 ? -errno : n;
}

static inline int io_ftruncate(int fd, off_t len, enum io_kind kind)
{
	(void)kind;
	return ftruncate(fd, len) < 0 ? -errno : 0;
}

static inline int io_fdatasync(int fd, enum io_kind kind)
{
	(void)kind;
	return fdatasync(fd) < 0 ? -errno : 0;
}

static inline int io_fsync(int fd, enum io_kind kind)
{
	(void)kind;
	return fsync(fd) < 0 ? -errno : 0;
}

static inline int io_fault(enum io_fault f)
{
	(void)f;
	return 0;
}

static inline void io_window(enum io_window w)
{
	(void)w;
}

#endif /* MREG_FAULTS */

/* True in a test build (-DMREG_FAULTS). */
bool io_faults_built(void);

#endif
