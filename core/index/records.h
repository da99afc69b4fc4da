/* records.h — the binary records the registry keeps in the index, with
 * their encoders and (checking) decoders. Layouts are written down in
 * records.c. A decoder never trusts its input: a short, long or otherwise
 * impossible record is -EIO (a damaged index), never a crash.
 */
#ifndef MREG_RECORDS_H
#define MREG_RECORDS_H

/* Key schema of the index (integers in keys big-endian, so they sort):
 *	META     "format"   -> u32 1 (chunks in packs), 2 (elsewhere: "store")
 *	         "store"    -> the chunk store's backend, "s3"; absent with
 *	                       format 1 (refused if the config differs)
 *	         "chunker"  -> u32 min, avg, max (refused if the config differs)
 *	         "next_ino" -> u64 next inode number to hand out
 *	         "created"  -> i64 time the store was made (ns)
 *	         "audit_head"  -> SHA-256 hex of the last AUDIT record
 *	         "audit_bytes" -> u64 length of .mreg/audit.log
 *	         "pending/" + be64 inode -> be64 life token of its writer
 *	                       (files that die with their writer: registry/live.c)
 *	         "policy/stage/" S "/" KEY, "policy/hook/" EVENT,
 *	         "policy/admin_group", "policy/stored" -> the stage policies
 *	                       and hooks kept in the registry (registry/policy.c)
 *	NAMES    be64 parent + name bytes       -> u64 inode
 *	INODES   be64 inode                     -> inode record (records.c)
 *	EXTENTS  be64 file inode + be64 offset  -> chunk key + u32 length
 *	CHUNKS   16-byte id + be16 n            -> the store's location
 *	                       bytes + u64 refs [+ SHA-256] (records.c)
 *	         (n tells apart chunks whose ids collide but bytes differ)
 *	XATTRS   be64 inode + key ("metric.auc") -> value bytes
 *	         be64 version + "\001held." S  -> "1": it held stage S
 *	                       (require_stage; never listed)
 *	HISTORY  be64 model inode + be64 seq    -> stage change (records.c)
 *	AUDIT    be64 seq                       -> one JSON object
 *	TRASH    be64 inode                     -> i64 time of removal (ns):
 *	                       a removed version, stage, or a file unlinked
 *	                       while open, for gc to free once unpinned
 * Inodes 1-6 and REG_HISTORY_BIT | model are virtual (registry.h): no
 * INODES record.
 *
 * A model M has a NAMES entry (2, "M"); its directory holds "stages" (its
 * stages directory inode), its versions and its pending files; stages are
 * NAMES entries (stages inode, "Production") -> stage inode whose target
 * field is the version's inode and target_path "../V".
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk/chunkid.h"
#include "chunk/loc.h"

/* The kinds an INODES record may hold: enum reg_kind's REG_MODEL to
 * REG_PENDING (registry.h; registry/internal.h checks they agree). The
 * others are virtual and never stored. */
#define REC_KIND_FIRST 6
#define REC_KIND_LAST  13

#define INODE_SEALED  0x0001u  /* content can never change */
#define INODE_TRASHED 0x0002u  /* removed; gc frees the tree */
#define INODE_DOTDRAFT 0x0004u /* a version with a dot name: a draft */
#define INODE_NODIGEST 0x0008u /* a file rewritten in place: its digest is
				  computed when it is sealed (or listed) */

/* One inode: models, stages directories, stages, versions, and the
 * directories, files and symlinks inside versions. */
struct inode_rec {
	uint8_t kind;          /* enum reg_kind, REC_KIND_FIRST..LAST */
	uint16_t flags;        /* INODE_* */
	uint32_t mode;         /* with S_IFMT */
	uint32_t uid, gid;
	uint64_t ino;
	uint64_t parent;       /* directory holding its name */
	uint64_t model, version;
	uint64_t size;         /* files: bytes; versions: bytes of files */
	int64_t mtime, ctime, btime; /* nanoseconds since the epoch */
	int64_t atime;         /* as set by utimensat (reads leave it) */
	uint64_t max_version;  /* models: highest integer version ever */
	uint64_t stages_ino;   /* models: their stages directory */
	uint64_t target;       /* stages: the version inode */
	int64_t sealed_at;     /* versions: when sealed (ns), 0 for drafts */
	uint64_t nfiles;       /* versions: files */
	uint64_t stored;       /* versions: chunk bytes it added */
	struct mreg_id digest; /* files: content; versions: manifest */
	char name[256];        /* the entry's name (NUL-terminated) */
	char target_path[4096];/* symlinks inside versions */
};

/* Encodes r into buf (at least rec_inode_max() bytes); returns length. */
size_t rec_inode_encode(const struct inode_rec *r, void *buf);
size_t rec_inode_max(void);
/* Decodes; -EIO when malformed. */
int rec_inode_decode(const void *p, size_t len, struct inode_rec *ret);

/* A chunk: key is chunk_key (id + collision number), value chunk_rec. */
#define CHUNK_KEY_LEN (MREG_ID_LEN + 2)
struct chunk_key {
	uint8_t b[CHUNK_KEY_LEN];
};
void rec_chunk_key_make(const struct mreg_id *id, uint16_t n,
			struct chunk_key *k);
void rec_chunk_key_id(const struct chunk_key *k, struct mreg_id *ret);
uint16_t rec_chunk_key_n(const struct chunk_key *k);

/* Where the store put the chunk (opaque: store_loc_span() reads it), how
 * many extents name it, and, when has_strong, the strong digest of its
 * bytes (chunk/chunkid.h): what an id match is checked against without
 * reading the chunk (registry/ingest.c). Records of older stores, and of
 * pack stores, have none. */
struct chunk_rec {
	struct chunk_loc loc;
	uint64_t refs;
	bool has_strong;
	struct mreg_strong strong;
};
#define CHUNK_REC_MAX (CHUNK_LOC_MAX + 8 + MREG_STRONG_LEN)
/* Encodes c (its loc 1..CHUNK_LOC_MAX bytes) into buf; returns the
 * length. */
size_t rec_chunk_encode(const struct chunk_rec *c,
			uint8_t buf[CHUNK_REC_MAX]);
/* Decodes a value of 9..CHUNK_LOC_MAX + 8 bytes (no digest) or 41..
 * CHUNK_REC_MAX (a digest); -EIO for another length. The location is not
 * checked here: the store does (store_loc_span(), and every read). */
int rec_chunk_decode(const void *p, size_t len, struct chunk_rec *ret);

/* An extent of a file: key (file ino, offset), value chunk key + length.
 * A file's extents are in offset order and never overlap; bytes below its
 * size that no extent covers are a hole and read as zeros. */
#define EXTENT_KEY_LEN 16
#define EXTENT_VAL_LEN (CHUNK_KEY_LEN + 4)
struct extent_rec {
	uint64_t offset;
	uint32_t len;
	struct chunk_key chunk;
};
void rec_extent_key(uint64_t ino, uint64_t offset, uint8_t buf[EXTENT_KEY_LEN]);
void rec_extent_encode(const struct extent_rec *e, uint8_t buf[EXTENT_VAL_LEN]);
int rec_extent_decode(const void *key, size_t klen, const void *val,
		      size_t vlen, struct extent_rec *ret);

/* A stage change: key (model ino, seq), value history_rec. */
struct history_rec {
	uint64_t seq;
	int64_t time;          /* ns */
	uint32_t uid;
	uint8_t action;        /* HIST_* */
	uint64_t from, to;     /* version inodes, 0 for none */
	char stage[65];
	char from_name[129], to_name[129];
};
enum { HIST_PROMOTE = 1, HIST_MOVE, HIST_REMOVE, HIST_ROLLBACK };
size_t rec_history_encode(const struct history_rec *h, void *buf, size_t size);
int rec_history_decode(const void *p, size_t len, struct history_rec *ret);
const char *rec_history_action(int action);

#endif
