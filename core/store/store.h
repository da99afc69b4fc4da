/* store.h — the chunk store: append-only pack files of chunks.
 *
 * The only module that touches chunk files. It knows nothing of the index:
 * the registry asks it to append chunks, to make them durable, and to read
 * them back; the index records where each one is (struct chunk_loc).
 *
 * Pack files live in DIR/packs/, named pack-NNNNNNNN.pack (8 hex digits).
 * A process appends only to packs it created itself (O_CREAT|O_EXCL picks
 * the next free number, so several processes never share a pack), and
 * holds a shared flock(2) on each pack it may still name in an index
 * transaction; gc takes an exclusive non-blocking flock before it rewrites,
 * cuts or removes a pack, and skips packs it cannot lock.
 *
 * Pack format (little-endian):
 *	header  16 bytes: "MREGPACK" magic, u32 format (1), u32 pack number
 *	records, each:
 *	        u32 magic 0x4b4e4843 ("CHNK"), u32 length,
 *	        16-byte chunk id, then length bytes of data
 * A chunk_loc's offset points at the data, after the record header.
 * Pack numbers start at 1: a zeroed chunk_loc names no chunk.
 *
 * Locks are flock(2) locks, which belong to an open file description: the
 * writer's shared lock and gc's exclusive lock are taken on separate
 * open(2)s of the pack, so they conflict within one process too.
 */
#ifndef MREG_STORE_H
#define MREG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk/chunkid.h"

#define PACK_HEADER_SIZE 16
#define PACK_RECORD_HEADER 24
#define PACK_RECORD_MAGIC 0x4b4e4843u

struct chunk_loc {
	uint32_t pack;
	uint32_t len;
	uint64_t offset; /* of the data in the pack file */
};

struct store_options {
	uint64_t pack_size;    /* roll to a new pack past this size (0: 64M) */
	bool sync;             /* false: never fsync (durability = none) */
};

struct mreg_store;

/* Opens (creating DIR/packs, mode 0700, if needed) the chunk store under
 * dir, which must exist. opt may be NULL (64M packs, sync on). No pack is
 * created before the first append. Errors: -EINVAL, -ENOMEM, -errno from
 * mkdir/open. */
int store_open(const char *dir, const struct store_options *opt,
	       struct mreg_store **ret);
/* Closes every pack; takes NULL. Appended data still in the write buffer
 * is written out, but unsynced data is not synced. */
void store_close(struct mreg_store *s);

/* A batch brackets the appends whose locations one index transaction will
 * name: packs written in it stay locked against gc until the batch ends,
 * which the caller does after its transaction committed (or failed).
 * Batches of several threads may overlap; thread-safe. Packs retired in a
 * batch are unlocked when the count of open batches falls to 0. Appends
 * meant to be named by an index transaction belong in a batch: outside
 * one, gc may remove a retired pack before it is named, and a failed sync
 * stays reported until store_close() (see store_sync()). */
void store_batch_begin(struct mreg_store *s);
void store_batch_end(struct mreg_store *s);

/* Appends one chunk (its id computed by the caller) to this process's
 * current pack, rolling to a new pack past pack_size. Thread-safe.
 * The record goes to a write buffer (1 MiB); store_sync() writes it out,
 * and store_get() already finds it. A chunk larger than the buffer is
 * written at once. Errors: -EINVAL, -ENOMEM, -ENOSPC, -EIO, -EOVERFLOW
 * (no pack number left), -errno of write(2). When writing the buffer out
 * fails (this append did it, as the buffer was full), the pack is cut
 * back to its last whole record and retired: nothing that was reported
 * appended is lost (the buffer is kept and written again by the next
 * store_sync()), and the failed record is never named. */
int store_put(struct mreg_store *s, const struct mreg_id *id, const void *data,
	      uint32_t len, struct chunk_loc *ret);

/* Makes every chunk appended so far (by any thread) durable: writes out
 * buffers and fdatasync()s the packs touched since the last sync. Must
 * return 0 before an index transaction names those chunks. With
 * opt->sync false it only writes the buffers out.
 * A failed fdatasync() retires the pack (later appends go to a new one)
 * and is reported again, as -EIO, by every later store_sync() until every
 * batch that was open when it failed has ended (the count of open batches
 * fell to 0): one of them may hold chunks of that pack, and they can never
 * be made durable; the caller appends them again in a new batch. When the
 * lost data was appended outside any batch, the error stays until
 * store_close(). A buffer that cannot be written is tried again by every
 * store_sync(), which fails until it is written or given up on by the
 * same rule. Errors: -EIO, -ENOSPC, -ENOMEM, -errno of write(2). */
int store_sync(struct mreg_store *s);

/* Reads the chunk at loc into buf (loc->len bytes) and checks it against
 * id: -EIO on a mismatch, a short file or a bad record header — never
 * wrong bytes (each -EIO is logged with the pack and offset). -ENOENT when
 * the pack does not exist (gc may have moved the chunk: look its location
 * up again). -EINVAL on NULL arguments, -errno of open/pread. Thread-safe;
 * pack descriptors are cached (up to 256) and no lock is held across the
 * pread(2). A pack gc removed is emptied at once (store_delete):
 * a read through a cached descriptor of it finds the name gone and
 * answers -ENOENT. Descriptors of removed packs are dropped within a
 * second of reading, and by store_bytes() and store_containers(). */
int store_get(struct mreg_store *s, const struct chunk_loc *loc,
	      const struct mreg_id *id, void *buf);

/* Reads without checking the id (for comparing bytes on an id match and
 * for fsck, which wants to tell a bad record from a bad hash). Errors as
 * store_get() but never -EIO for a hash mismatch. */
int store_get_raw(struct mreg_store *s, const struct chunk_loc *loc, void *buf);

/* Calls fn for every pack file, in the order of their numbers: its number,
 * size in bytes, and whether another process (or this one) holds it open
 * for appending (a pack under this store's own gc lock is not busy). Stops
 * when fn returns non-zero and returns that. Errors: -EINVAL, -ENOMEM,
 * -errno of reading the directory. */
int store_containers(struct mreg_store *s,
		     int (*fn)(void *arg, uint32_t pack, uint64_t size,
			       bool busy),
		     void *arg);

/* Walks the records of one pack in order, calling fn with each record's
 * id, location and a pointer to its data (valid during the call only).
 * A record whose header is damaged ends the walk with -EIO after fn was
 * called for every record before it; a record cut short at the end of the
 * file (a torn write) counts as damaged. Stops when fn returns non-zero
 * and returns that. Records this process still buffers are written out
 * first; a pack another process is appending to may end in a record being
 * written (-EIO): walk packs that are not busy. Errors: -EINVAL, -ENOENT,
 * -EIO, -ENOMEM, -errno of open/pread. Used by fsck and gc. */
int store_iterate(struct mreg_store *s, uint32_t pack,
		  int (*fn)(void *arg, const struct mreg_id *id,
			    const struct chunk_loc *loc, const void *data),
		  void *arg);

/* Removes a pack that no index record names any more. Takes an exclusive
 * flock first (or uses this store's store_claim() lock, which it then
 * releases): -EBUSY when some process still appends to or holds it in a
 * batch. The file is emptied as it is unlinked, so that its disk space
 * comes back at once even where other processes still have it open (their
 * reads of it then fail with -ENOENT: the chunk moved). Drops the cached
 * read descriptor. Errors: -EINVAL, -EBUSY, -ENOENT, -errno of unlink. */
int store_delete(struct mreg_store *s, uint32_t pack);

/* Cuts a pack locked with store_claim() back to size bytes (the
 * header at least), giving the tail back to the disk with no free space
 * needed; nothing when it is not longer. The caller makes sure that no
 * index record names a byte at or past size: under the lock nobody
 * appends, so no record can come to name one. Errors: -EINVAL (not
 * locked by this store, size below the header), -errno of ftruncate. */
int store_cut(struct mreg_store *s, uint32_t pack, uint64_t size);

/* The size in bytes of a pack (through this store's gc lock on it when
 * it holds one, so that it is the locked file's). Errors: -EINVAL,
 * -ENOENT, -errno of stat. */
int store_container_size(struct mreg_store *s, uint32_t pack, uint64_t *ret);

/* Tries to take the exclusive lock gc needs before it copies a pack's live
 * chunks away; the lock is held until store_delete() or
 * store_unclaim(). Taking it again through the same store returns 0
 * (one unlock releases it). -EBUSY when some process (this one included,
 * as a writer) holds it; -ENOENT when there is no such pack. */
int store_claim(struct mreg_store *s, uint32_t pack);
void store_unclaim(struct mreg_store *s, uint32_t pack);

/* Bytes in all pack files (for stats and statfs; what is still in a write
 * buffer is not counted). Errors: -EINVAL, -ENOMEM, -errno of readdir. */
int store_bytes(struct mreg_store *s, uint64_t *ret);

/* Bytes free for new packs on the store's file system. Errors: -EINVAL,
 * -errno of fstatvfs(). */
int store_room(struct mreg_store *s, uint64_t *ret);

/* Fault injection for tests: the next write to a pack (STORE_FAULT_WRITE:
 * half of it lands, then the error, as a torn write on a full disk) or the
 * next fdatasync() of a pack (STORE_FAULT_SYNC: the call happens, then
 * reports the error) fails with -err. */
enum store_fault { STORE_FAULT_WRITE, STORE_FAULT_SYNC };
void pack_inject_fault(struct mreg_store *s, enum store_fault f, int err);

#endif
