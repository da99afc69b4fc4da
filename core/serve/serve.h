/* serve.h — the serving cache: flat copies of hot sealed files on the
 * host's own disk, which the kernel reads and maps directly (FUSE
 * passthrough, fs/passthrough.c) at the speed of a native file.
 *
 * A leaf: it knows no registry and no FUSE. It gets a sealed file's bytes
 * through struct serve_source (the registry's verified reads), decides
 * which files are hot, writes ("hydrates") their copies on a thread of its
 * own, and evicts the least recently used copies beyond [serve] size,
 * never one in use. A sealed file's bytes never change, so a copy is never
 * stale; it can only be damaged on disk: each copy is checked against the
 * file's digest when it is made, and again by serve_fsck() (mreg fsck).
 *
 * The directory ([serve] path, mode 0700, owned by the daemon's user):
 *
 *	V-I-DIGEST    the complete copy of file inode I of version inode V
 *	              (decimal), whose bytes hash (XXH3-128) to DIGEST (32
 *	              hex digits); written under a temporary name, fsynced,
 *	              then renamed, so that a name of this form is always
 *	              complete
 *	.tmp-I-PID    a copy being written (removed when the cache opens)
 *	.lock         flock'ed by the process that owns the cache: one
 *	              daemon per directory
 *
 * A file is hot when a stage points at its version, when it was opened
 * SERVE_HOT_OPENS times, or read in full through the daemon (its size in
 * bytes read), or when it is asked for (serve_hydrate(): mreg prefetch,
 * [serve] hydrate_on_promote). Hydration never delays a caller: it is
 * queued for the cache's thread.
 */
#ifndef MREG_SERVE_H
#define MREG_SERVE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "chunk/chunkid.h"
#include "config/config.h"
#include "strbuf.h"

#define SERVE_HOT_OPENS 3       /* opens that make a file hot */

/* A sealed file, as the cache knows it. */
struct serve_key {
	uint64_t ino;           /* the file's inode (the registry's) */
	uint64_t version;       /* its version's inode */
	uint64_t size;
	struct mreg_id digest;  /* XXH3-128 of its bytes */
};

/* Where hydration gets a sealed file's bytes. Reads must be verified (the
 * registry checks every chunk against its id) and return the count read
 * (short only at the end), or a negative errno. */
struct serve_source {
	int (*open)(void *arg, const struct serve_key *key, void **ret);
	ssize_t (*read)(void *handle, void *buf, size_t size, uint64_t off);
	void (*close)(void *handle);
	void *arg;
};

struct serve_params {
	const char *dir;        /* NULL: no copies at all (counting only) */
	uint64_t capacity;      /* bytes of copies at most ([serve] size) */
	bool eager;             /* every sealed file is hot at its first
				   open (tests: MREG_SERVE_EAGER) */
	unsigned delay_ms;      /* pause after each 4 MiB hydrated (tests) */
	struct serve_source source;
};

/* How an open of a file was served, for .mreg/metrics: by the kernel
 * (passthrough), or by the daemon, and why. */
enum serve_open_kind {
	SERVE_OPEN_PASSTHROUGH = 0,
	SERVE_FALLBACK_DISABLED,   /* [serve] passthrough = no, no cache */
	SERVE_FALLBACK_KERNEL,     /* the kernel offers no passthrough */
	SERVE_FALLBACK_PRIVILEGE,  /* the daemon lacks CAP_SYS_ADMIN */
	SERVE_FALLBACK_COLD,       /* not hydrated (yet) */
	SERVE_FALLBACK_HYDRATING,  /* its copy is being made */
	SERVE_FALLBACK_SHARED,     /* another open of it is the daemon's */
	SERVE_FALLBACK_UNSEALED,   /* a draft or a file being written */
	SERVE_FALLBACK_ERROR,      /* the copy could not be used (logged) */
	SERVE_OPEN_KINDS
};
/* The label of kind in metrics ("passthrough", "cold", ...). */
const char *serve_open_kind_name(enum serve_open_kind kind);

/* Where a copy stands. */
enum serve_state {
	SERVE_COLD = 0,         /* no copy, none asked for */
	SERVE_PENDING,          /* queued or being written */
	SERVE_READY,            /* a complete, verified copy */
	SERVE_NO_ROOM,          /* no room: the cache is full of copies in
				   use, or the disk is short */
	SERVE_FAILED,           /* the last try failed (tried again after a
				   minute) */
	SERVE_OFF,              /* copies are not made (see serve_set_off) */
};

struct serve_cache;
/* A copy held by serve_get() until serve_put(). */
struct serve_copy;

/* Opens the cache in p->dir, creating it (mode 0700); a directory of ours
 * that others may enter is closed to 0700 (logged). Copies found there
 * are adopted (least recently used: oldest first), half-written ones
 * removed, and the cache is trimmed to p->capacity. Starts the hydration
 * thread. Errors: -EINVAL, -ENOMEM, -EBUSY (another process owns the
 * directory), -EPERM (a directory of another user), -errno of mkdir,
 * open, flock, pthread_create. */
int serve_open(const struct serve_params *p, struct serve_cache **ret);
/* Stops the thread (a copy being written is abandoned and removed) and
 * frees; takes NULL. Every serve_get() must have been put. */
void serve_close(struct serve_cache *c);

/* Whether copies are made and served: kind SERVE_OPEN_PASSTHROUGH for yes,
 * else the reason they are not (the kernel, privileges, the config).
 * Queued work is dropped when it turns off. Takes NULL c. */
void serve_set_off(struct serve_cache *c, enum serve_open_kind kind);
/* SERVE_OPEN_PASSTHROUGH when copies are served, else why not. */
enum serve_open_kind serve_off(struct serve_cache *c);

/* The copy of key, for serving: returns a descriptor of it opened
 * read-only (the caller closes it) and the copy in *ret, held (never
 * evicted, and its bytes counted after a removal) until serve_put().
 * -ENOENT (no copy), -EINPROGRESS (being made), -EIO (the copy found was
 * damaged: its size is wrong; it is dropped, logged), -EMFILE, -ENOMEM. */
int serve_get(struct serve_cache *c, const struct serve_key *key,
	      struct serve_copy **ret);
/* Gives back what serve_get() held; takes NULL copy. */
void serve_put(struct serve_cache *c, struct serve_copy *copy);

/* An open of sealed file key that was not served from a copy: counts
 * towards making it hot; staged: a stage points at its version. */
void serve_note_open(struct serve_cache *c, const struct serve_key *key,
		     bool staged);
/* A read the daemon served (a READ request): counts it, and counts len
 * bytes towards making file ino hot (read in full). */
void serve_note_read(struct serve_cache *c, uint64_t ino, uint64_t len);
/* Counts one open served as kind. */
void serve_count_open(struct serve_cache *c, enum serve_open_kind kind);

/* Asks for a copy of key now (prefetch, promotion): queues it unless it
 * is there or on its way. Returns where it stands. */
enum serve_state serve_hydrate(struct serve_cache *c,
			       const struct serve_key *key);

/* Where key stands, without asking for anything. */
enum serve_state serve_state(struct serve_cache *c,
			     const struct serve_key *key);

/* Drops the copies of version (removed): each is unlinked now; one in use
 * keeps serving its holders (an open file keeps its bytes on Linux) and
 * its bytes stay counted until its last serve_put(). */
void serve_drop_version(struct serve_cache *c, uint64_t version);
/* Drops the copies alive() says no longer belong to a sealed file (a
 * version removed by another process). alive is called without the
 * cache's lock held. */
void serve_sweep(struct serve_cache *c,
		 bool (*alive)(void *arg, const struct serve_key *key),
		 void *arg);

/* Appends the cache's metrics (Prometheus text) to sb. Takes NULL c. */
void serve_metrics(struct serve_cache *c, struct strbuf *sb);

/* The serving cache directory of store under cfg: [serve] path, else
 * STORE/serve. malloc'ed, or NULL (ENOMEM). */
char *serve_dir(const struct mreg_config *cfg, const char *store);

/* mreg fsck: re-hashes every copy in dir against the digest in its name;
 * a copy that does not match (or cannot be read) is removed, and bad()
 * told which and why. Returns the number of damaged copies, or a negative
 * errno (-ENOENT: no such directory is 0). */
int serve_fsck(const char *dir,
	       void (*bad)(void *arg, const struct serve_key *key,
			   const char *why),
	       void *arg);
/* Copies in dir and their bytes (mreg stats). A missing dir is empty. */
int serve_usage(const char *dir, uint64_t *ret_files, uint64_t *ret_bytes);

#endif
