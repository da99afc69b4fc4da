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
 * transaction; gc takes an exclusive non-blocking flock before it rewrites
 * or removes a pack, and skips packs it cannot lock.
 *
 * Pack format (little-endian):
 *	header  16 bytes: "MREGPACK" magic, u32 format (1), u32 pack number
 *	records, each:
 *	        u32 magic 0x4b4e4843 ("CHNK"), u32 length,
 *	        16-byte chunk id, then length bytes of data
 * A chunk_loc's offset points at the data, after the record header.
 */
#ifndef MREG_STORE_H
#define MREG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkid.h"

#define PACK_HEADER_SIZE 16
#define PACK_RECORD_HEADER 24
#define PACK_RECORD_MAGIC 0x4b4e4843u

struct chunk_loc {
	uint32_t pack;
	uint32_t len;
	uint64_t offset; /* of the data in the pack file */
};

struct store_options {
	uint64_t pack_size;    /* roll to a new pack past this size */
	bool sync;             /* false: never fsync (durability = none) */
};

struct mreg_store;

/* Opens (creating DIR/packs if needed) the chunk store under dir.
 * Errors: -ENOMEM, -errno from mkdir/open. */
int store_open(const char *dir, const struct store_options *opt,
	       struct mreg_store **ret);
/* Closes every pack; takes NULL. Appended but unsynced data is not synced. */
void store_close(struct mreg_store *s);

/* A batch brackets the appends whose locations one index transaction will
 * name: packs written in it stay locked against gc until the batch ends,
 * which the caller does after its transaction committed (or failed).
 * Batches of several threads may overlap; thread-safe. */
void store_batch_begin(struct mreg_store *s);
void store_batch_end(struct mreg_store *s);

/* Appends one chunk (its id computed by the caller) to this process's
 * current pack, rolling to a new pack past pack_size. Thread-safe.
 * Errors: -ENOSPC, -EIO, -errno of write(2). On error nothing that was
 * reported appended is lost, and the failed record is never named. */
int store_append(struct mreg_store *s, const struct mreg_id *id,
		 const void *data, uint32_t len, struct chunk_loc *ret);

/* Makes every chunk appended so far (by any thread) durable: writes out
 * buffers and fdatasync()s the packs touched since the last sync. Must
 * return 0 before an index transaction names those chunks. A failed sync
 * is reported again by every later sync of the same pack (the pack is
 * retired: later appends go to a new one). Errors: -EIO, -ENOSPC. */
int store_sync(struct mreg_store *s);

/* Reads the chunk at loc into buf (loc->len bytes) and checks it against
 * id: -EIO on a mismatch, a short file or a bad record header — never
 * wrong bytes. -ENOENT when the pack does not exist (gc may have moved the
 * chunk: look its location up again). Thread-safe; pack descriptors are
 * cached. */
int store_read(struct mreg_store *s, const struct chunk_loc *loc,
	       const struct mreg_id *id, void *buf);

/* Reads without checking the id (for comparing bytes on an id match and
 * for fsck, which wants to tell a bad record from a bad hash). Errors as
 * store_read() but never -EIO for a hash mismatch. */
int store_read_raw(struct mreg_store *s, const struct chunk_loc *loc,
		   void *buf);

/* Calls fn for every pack file: its number, size in bytes, and whether
 * another process (or this one) holds it open for appending. Stops when fn
 * returns non-zero and returns that. */
int store_list_packs(struct mreg_store *s,
		     int (*fn)(void *arg, uint32_t pack, uint64_t size,
			       bool busy),
		     void *arg);

/* Walks the records of one pack in order, calling fn with each record's
 * id, location and a pointer to its data (valid during the call only).
 * A record whose header is damaged ends the walk with -EIO after fn was
 * called for every record before it. Used by fsck and gc. */
int store_walk_pack(struct mreg_store *s, uint32_t pack,
		    int (*fn)(void *arg, const struct mreg_id *id,
			      const struct chunk_loc *loc, const void *data),
		    void *arg);

/* Removes a pack that no index record names any more. Takes an exclusive
 * flock first: -EBUSY when some process still appends to or holds it in a
 * batch. */
int store_remove_pack(struct mreg_store *s, uint32_t pack);

/* Tries to take the exclusive lock gc needs before it copies a pack's live
 * chunks away; the lock is held until store_remove_pack() or
 * store_unlock_pack(). -EBUSY when some process holds it. */
int store_lock_pack(struct mreg_store *s, uint32_t pack);
void store_unlock_pack(struct mreg_store *s, uint32_t pack);

/* Bytes in all packs (for stats and statfs). */
int store_bytes(struct mreg_store *s, uint64_t *ret);

#endif
