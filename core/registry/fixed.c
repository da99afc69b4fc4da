/* fixed.c — this host's copy of what never changes, for a registry whose
 * index is in PostgreSQL (issue 14: "what never changes is cached per
 * host").
 *
 * Sealed content — the directories, files and symlinks inside a sealed
 * version, and a sealed file's extents with its chunks' places — never
 * changes (SPEC §3; setattr.c refuses all but an atime, which is not
 * kept). Once read from the database it is kept in an LMDB environment in
 * the host's directory (index/fixed/), shared by every process of the
 * host, so that the serving path — lookup, getattr and open of sealed
 * files — asks the database nothing after the first time, and goes on
 * working while the database is away. Versions, models and stages change
 * (chown, rm, promotions) and are never kept.
 *
 * While the database is away (a call fails with ETIMEDOUT, EIO, EAGAIN),
 * the names of models and of sealed versions are served as last read
 * here (their records are kept too, as LAST: written when they changed),
 * so that a serving host goes on opening the versioned paths it served
 * before: models/M/V/FILE. Stages are never served so: a promotion is
 * the database's to say (SPEC, issue 14).
 *
 * What a kept record may outlive. A version that `mreg rm` removed is
 * reached by name no more while the database answers (its name is asked
 * of the database first; a LAST record is read only when it cannot
 * answer). A process that had resolved a path inside it before (a working
 * directory, a descriptor it opens relative to) may go on reading its
 * files here after gc freed them in the database: the right bytes (every
 * chunk is checked against its id) or EIO once the chunks are gone, never
 * other bytes. A chunk gc moved is looked up again by the reader
 * (reader.c), as for the tables it keeps in memory.
 *
 * Keys (the index's tables, reused; every key but META's starts with a
 * kind byte, 'F' for sealed content, 'L' for a record as last read):
 *	META    "created" -> i64, the registry's META "created": a copy of
 *	                     another registry (a schema dropped and made
 *	                     again) is emptied at open
 *	NAMES   kind + be64 parent + name -> u64 inode
 *	INODES  kind + be64 inode -> inode record (records.c)
 *	EXTENTS 'F' + be64 inode -> the extent table: per extent u64
 *	                     offset, u32 length, chunk key, u8 location
 *	                     length and the location
 * Records are decoded as strictly as the database's; one that does not
 * decode is a miss (and read from the database again).
 *
 * Durability. Commits are not synced (no fsync on the first read of a
 * file). A process that dies loses nothing; a host that crashes may leave
 * an environment half written, so a cache written during another boot of
 * the host (index/fixed/boot holds the boot id) is removed at open, under
 * a lock, before anyone uses it. It is bounded: past FIXED_MAX bytes it is
 * emptied and fills again with what is read.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define FIXED_DIR "index/fixed"
#define FIXED_MAX (1ull << 30)
#define FIXED_CHECK_EVERY 4096u	/* puts between two size checks */
#define EXT_FIXED (8 + 4 + CHUNK_KEY_LEN + 1)

/* The two kinds of records kept (the first byte of every key). */
#define FIXED 'F'	/* sealed content: never changes */
#define LAST  'L'	/* models and sealed versions as last read */

/* How r is kept: FIXED (sealed, inside a version, not removed), LAST (a
 * model, or a sealed version not removed), or 0 (not). */
static int keeps(const struct inode_rec *r)
{
	if (r->flags & INODE_TRASHED)
		return 0;
	if ((r->flags & INODE_SEALED) &&
	    (r->kind == REG_FILE || r->kind == REG_DIR ||
	     r->kind == REG_SYMLINK))
		return FIXED;
	if (r->kind == REG_MODEL ||
	    (r->kind == REG_VERSION && (r->flags & INODE_SEALED)))
		return LAST;
	return 0;
}

/* A key: the kind byte, be64 n, then len bytes of tail. */
static size_t key_make(uint8_t *k, int kind, uint64_t n, const char *tail,
		       size_t len)
{
	k[0] = (uint8_t)kind;
	be64_put(k + 1, n);
	if (len)
		memcpy(k + 9, tail, len);
	return 9 + len;
}

/* ---- opening ----------------------------------------------------------- */

static int boot_id(char *buf, size_t size)
{
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	return 0;
}

/* Removes an environment written during another boot (or of unknown
 * boot), then says this boot's id; dir's lock file held. */
static int boot_check(const char *dir)
{
	char now[64], was[64] = "", path[4200];
	const char *const files[] = { "data.mdb", "lock.mdb", "locks" };
	ssize_t n;
	size_t i;
	int fd, r;

	if ((r = boot_id(now, sizeof(now))) < 0)
		return r;
	snprintf(path, sizeof(path), "%s/boot", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, was, sizeof(was) - 1);
		was[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	if (!strcmp(now, was))
		return 0;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if (unlink(path) < 0 && errno != ENOENT)
			return log_err(-errno, "cannot remove '%s'", path);
	}
	snprintf(path, sizeof(path), "%s/boot", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_err(-errno, "cannot create '%s'", path);
	n = write(fd, now, strlen(now));
	r = n == (ssize_t)strlen(now) ? 0 : n < 0 ? -errno : -EIO;
	close(fd);
	return r < 0 ? log_err(r, "cannot write '%s'", path) : 0;
}

struct created_arg {
	int64_t created;
	bool found;
};

static int created_txn(struct idx_txn *t, void *arg)
{
	struct created_arg *a = arg;
	struct idx_val v;
	int r;

	a->found = false;
	r = idx_get(t, IDX_META, META_CREATED, strlen(META_CREATED), &v);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (v.len != 8)
		return -EIO;
	memcpy(&a->created, v.data, 8);
	a->found = true;
	return 0;
}

static int clear_table(struct idx_txn *t, enum idx_table tb)
{
	struct idx_iter *it;
	struct idx_val k, v;
	uint8_t key[IDX_KEY_MAX];
	size_t klen = 0;
	int r;

	/* one key at a time: a table is not changed under its iterator */
	for (;;) {
		r = idx_iter_begin(t, tb, NULL, 0, NULL, 0, &it);
		if (r == 0 && (r = idx_iter_next(it, &k, &v)) > 0) {
			klen = k.len;
			memcpy(key, k.data, klen);
		}
		idx_iter_end(it);
		if (r <= 0)
			return r;
		if ((r = idx_del(t, tb, key, klen)) < 0)
			return r;
	}
}

/* Empties the cache and names the registry it is of. */
static int reset_txn(struct idx_txn *t, void *arg)
{
	const int64_t *created = arg;
	static const enum idx_table tbs[] = { IDX_NAMES, IDX_INODES,
					      IDX_EXTENTS };
	size_t i;
	int r;

	for (i = 0; i < sizeof(tbs) / sizeof(tbs[0]); i++)
		if ((r = clear_table(t, tbs[i])) < 0)
			return r;
	return idx_put(t, IDX_META, META_CREATED, strlen(META_CREATED),
		       created, 8, 0);
}

/* index/fixed/changes: a counter every process of the host moves on after
 * each change it commits (reg_host_changed), read from memory. */
static int changes_map(struct reg_registry *reg, const char *dir)
{
	char path[4200];
	void *p;
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/changes", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_err(-errno, "cannot open '%s'", path);
	if (ftruncate(fd, sizeof(uint64_t)) < 0) {
		r = log_err(-errno, "cannot size '%s'", path);
	} else {
		p = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE,
			 MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			r = log_err(-errno, "cannot map '%s'", path);
		else
			reg->host_changes = p;
	}
	close(fd);
	return r;
}

void reg_host_changed(struct reg_registry *reg)
{
	if (reg->host_changes)
		__atomic_fetch_add(reg->host_changes, 1, __ATOMIC_SEQ_CST);
}

uint64_t reg_host_changes(const struct reg_registry *reg)
{
	return reg->host_changes ?
	       __atomic_load_n(reg->host_changes, __ATOMIC_SEQ_CST) : 0;
}

int reg_fixed_open(struct reg_registry *reg)
{
	struct created_arg db, here;
	struct idx_options io = { .backend = "lmdb", .sync = false };
	char *dir = NULL, *lock = NULL;
	int r, fd = -1;

	if (reg->cfg->index != CONFIG_INDEX_POSTGRES)
		return 0;
	if ((r = idx_read(reg->ix, created_txn, &db)) < 0)
		return r;
	if (!db.found)
		return 0;	/* no registry yet (init makes it) */
	if (asprintf(&dir, "%s/" FIXED_DIR, reg->path) < 0 ||
	    asprintf(&lock, "%s/lock", dir) < 0) {
		r = -ENOMEM;
		goto out;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		r = log_err(-errno, "cannot create '%s'", dir);
		goto out;
	}
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		r = log_err(-errno, "cannot lock '%s'", lock);
		goto out;
	}
	if ((r = boot_check(dir)) < 0)
		goto out;
	io.path = dir;
	if ((r = changes_map(reg, dir)) < 0)
		goto out;
	if ((r = idx_open(&io, &reg->fixed)) < 0)
		goto out;
	r = idx_read(reg->fixed, created_txn, &here);
	if (r == 0 && (!here.found || here.created != db.created))
		r = idx_write(reg->fixed, reset_txn, &db.created);
out:
	if (r < 0) {
		/* the database serves: slower, never wrong */
		log_err(r, "this host's cache of sealed records in '%s' "
			"cannot be used", dir ? dir : reg->path);
		reg_fixed_close(reg);
	}
	if (fd >= 0)
		close(fd);	/* the lock goes with it */
	free(lock);
	free(dir);
	return 0;
}

void reg_fixed_close(struct reg_registry *reg)
{
	idx_close(reg->fixed);
	reg->fixed = NULL;
	if (reg->host_changes)
		munmap(reg->host_changes, sizeof(uint64_t));
	reg->host_changes = NULL;
}

/* ---- reading ----------------------------------------------------------- */

struct get_arg {
	int kind;                   /* FIXED or LAST */
	uint64_t ino;
	uint64_t parent;
	const char *name;
	struct inode_rec *rec;
	struct rext *ext;
	size_t n;
	bool want_ext;
};

static int ext_decode(const uint8_t *p, size_t len, struct get_arg *a)
{
	const uint8_t *e = p + len;
	size_t n = 0, cap = 16;
	struct rext *x;

	a->ext = malloc(cap * sizeof(*a->ext));
	if (!a->ext)
		return -ENOMEM;
	while (p < e) {
		if ((size_t)(e - p) < EXT_FIXED)
			return -EIO;
		if (n == cap) {
			x = realloc(a->ext, 2 * cap * sizeof(*x));
			if (!x)
				return -ENOMEM;
			a->ext = x;
			cap *= 2;
		}
		x = &a->ext[n];
		memset(x, 0, sizeof(*x));
		x->off = be64_get(p);
		memcpy(&x->len, p + 8, 4);
		memcpy(x->key.b, p + 12, CHUNK_KEY_LEN);
		x->loc.len = p[12 + CHUNK_KEY_LEN];
		p += EXT_FIXED;
		if (!x->loc.len || x->loc.len > CHUNK_LOC_MAX ||
		    (size_t)(e - p) < x->loc.len || !x->len ||
		    (n && x->off < a->ext[n - 1].off + a->ext[n - 1].len) ||
		    x->off + x->len > a->rec->size)
			return -EIO;
		memcpy(x->loc.b, p, x->loc.len);
		p += x->loc.len;
		n++;
	}
	a->n = n;
	return 0;
}

static int get_txn(struct idx_txn *t, void *arg)
{
	struct get_arg *a = arg;
	uint8_t k[9 + 256];
	struct idx_val v;
	int r;

	free(a->ext);
	a->ext = NULL;
	a->n = 0;
	if (a->name) {
		r = idx_get(t, IDX_NAMES, k, key_make(k, a->kind, a->parent,
						       a->name,
						       strlen(a->name)), &v);
		if (r < 0)
			return r;
		if (v.len != 8)
			return -EIO;
		memcpy(&a->ino, v.data, 8);
	}
	r = idx_get(t, IDX_INODES, k, key_make(k, a->kind, a->ino, NULL, 0),
		    &v);
	if (r < 0)
		return r;
	if ((r = rec_inode_decode(v.data, v.len, a->rec)) < 0)
		return r;
	if (a->rec->ino != a->ino || keeps(a->rec) != a->kind ||
	    (a->name && a->rec->parent != a->parent))
		return -EIO;
	if (!a->want_ext)
		return 0;
	if (a->rec->kind != REG_FILE)
		return -ENOENT;
	r = idx_get(t, IDX_EXTENTS, k, key_make(k, a->kind, a->ino, NULL, 0),
		    &v);
	if (r < 0)
		return r;
	return ext_decode(v.data, v.len, a);
}

/* Runs a lookup in the host's copy: 0, or -ENOENT for a miss (a record
 * that does not decode is one too, said at debug level). */
static int get(struct reg_registry *reg, struct get_arg *a)
{
	int r;

	if (!reg->fixed)
		return -ENOENT;
	r = idx_read(reg->fixed, get_txn, a);
	if (r < 0) {
		free(a->ext);
		a->ext = NULL;
		if (r != -ENOENT)
			log_debug("the host's copy of sealed records: %s",
				  strerror(-r));
		if (a->kind == FIXED)
			atomic_fetch_add(&reg->fixed_misses, 1);
		return -ENOENT;
	}
	atomic_fetch_add(a->kind == FIXED ? &reg->fixed_hits :
			 &reg->fixed_stale, 1);
	return 0;
}


/* Whether r, an index error, says that the database is away (not that
 * what was asked for is not there, or is refused). */
static bool db_away(int r)
{
	return r == -ETIMEDOUT || r == -EIO || r == -EAGAIN;
}

/* ---- the database away ------------------------------------------------ */

/* After the database failed a call, for AWAY_NS the calls that have a
 * record as last read take it without asking (one thread asks, and pays
 * the deadline, when that time is up): a serving host whose database is
 * gone does not wait a deadline per path component. */
#define AWAY_NS (5 * 1000000000ull)

bool reg_db_away(struct reg_registry *reg)
{
	uint64_t until = atomic_load(&reg->fixed_away);

	return until && (uint64_t)mono_ns() < until;
}

bool reg_fixed_away(struct reg_registry *reg)
{
	uint64_t now, until = atomic_load(&reg->fixed_away);

	if (!until || !reg->fixed)
		return false;
	now = (uint64_t)mono_ns();
	if (now < until)
		return true;
	/* this thread asks; the others go on with what was last read */
	return !atomic_compare_exchange_strong(
		&reg->fixed_away, &until,
		now + (uint64_t)reg->cfg->pg_timeout * 1000000000ull + AWAY_NS);
}

void reg_fixed_said(struct reg_registry *reg, int r)
{
	static atomic_llong said;
	int64_t now, last;

	if (!reg->fixed)
		return;
	if (r == 0 || !db_away(r)) {
		if (atomic_load(&reg->fixed_away))
			atomic_store(&reg->fixed_away, 0);
		return;
	}
	now = mono_ns();
	atomic_store(&reg->fixed_away, (uint64_t)now + AWAY_NS);
	last = atomic_load(&said);
	if (now - last > 60 * 1000000000ll &&
	    atomic_compare_exchange_strong(&said, &last, now))
		log_msg(LOG_LVL_WARN, "the database does not answer (%s): "
			"models and versions are served as this host last "
			"read them, their sealed files from its copy; stages "
			"and anything else fail", strerror(-r));
}

int reg_fixed_name(struct reg_registry *reg, uint64_t parent,
		   const char *name, int err, struct inode_rec *ret)
{
	struct get_arg a = { .kind = FIXED, .parent = parent, .name = name,
			     .rec = ret };

	if (strlen(name) > 255)
		return -ENOENT;
	if (err) {
		if (!db_away(err))
			return -ENOENT;
		a.kind = LAST;
	}
	return get(reg, &a);
}

int reg_fixed_inode(struct reg_registry *reg, uint64_t ino, int err,
		    struct inode_rec *ret)
{
	struct get_arg a = { .kind = FIXED, .ino = ino, .rec = ret };

	if (err) {
		if (!db_away(err))
			return -ENOENT;
		a.kind = LAST;
	}
	return get(reg, &a);
}

int reg_fixed_file(struct reg_registry *reg, uint64_t ino,
		   struct inode_rec *ret, struct rext **ext, size_t *n)
{
	struct get_arg a = { .kind = FIXED, .ino = ino, .rec = ret,
			     .want_ext = true };
	int r = get(reg, &a);

	if (r < 0)
		return r;
	*ext = a.ext;
	*n = a.n;
	return 0;
}

/* ---- keeping ----------------------------------------------------------- */

struct keep_arg {
	int kind;
	const struct inode_rec *rec;
	uint8_t *rbuf;              /* the encoded record */
	size_t rlen;
	uint8_t *buf;               /* the encoded extents, or NULL */
	size_t len;
};

/* 1 when what a keeps is there already (a LAST record read again). */
static int same_txn(struct idx_txn *t, void *arg)
{
	struct keep_arg *a = arg;
	uint8_t k[9 + 256];
	struct idx_val v;
	int r;

	r = idx_get(t, IDX_INODES, k, key_make(k, a->kind, a->rec->ino, NULL,
					       0), &v);
	if (r < 0 || v.len != a->rlen || memcmp(v.data, a->rbuf, a->rlen))
		return 0;
	r = idx_get(t, IDX_NAMES, k, key_make(k, a->kind, a->rec->parent,
					      a->rec->name,
					      strlen(a->rec->name)), &v);
	return r == 0 && v.len == 8 && !memcmp(v.data, &a->rec->ino, 8);
}

static int keep_txn(struct idx_txn *t, void *arg)
{
	struct keep_arg *a = arg;
	uint8_t k[9 + 256];
	int r;

	r = idx_put(t, IDX_INODES, k, key_make(k, a->kind, a->rec->ino, NULL,
					       0), a->rbuf, a->rlen, 0);
	if (r == 0 && a->buf)
		r = idx_put(t, IDX_EXTENTS, k, key_make(k, a->kind,
							a->rec->ino, NULL, 0),
			    a->buf, a->len, 0);
	if (r == 0)
		r = idx_put(t, IDX_NAMES, k,
			    key_make(k, a->kind, a->rec->parent, a->rec->name,
				     strlen(a->rec->name)), &a->rec->ino, 8, 0);
	return r;
}

static void trim(struct reg_registry *reg)
{
	struct idx_stats st;
	struct created_arg c;

	if (idx_stats(reg->fixed, &st) < 0 || st.bytes_used < FIXED_MAX)
		return;
	if (idx_read(reg->fixed, created_txn, &c) < 0 || !c.found)
		return;
	log_msg(LOG_LVL_INFO, "the host's copy of sealed records passed "
		"%llu MiB: emptied", (unsigned long long)(FIXED_MAX >> 20));
	idx_write(reg->fixed, reset_txn, &c.created);
}

static void keep(struct reg_registry *reg, struct keep_arg *a)
{
	int r;

	a->rbuf = malloc(rec_inode_max());
	if (!a->rbuf)
		return;
	a->rlen = rec_inode_encode(a->rec, a->rbuf);
	/* a LAST record is read again and again: written when it changed */
	if (a->kind == LAST && idx_read(reg->fixed, same_txn, a) == 1) {
		free(a->rbuf);
		return;
	}
	r = idx_write(reg->fixed, keep_txn, a);
	free(a->rbuf);
	if (r < 0)
		log_debug("the host's copy of sealed records: cannot keep "
			  "inode %llu: %s", (unsigned long long)a->rec->ino,
			  strerror(-r));
	if (atomic_fetch_add(&reg->fixed_puts, 1) % FIXED_CHECK_EVERY ==
	    FIXED_CHECK_EVERY - 1)
		trim(reg);
}

void reg_fixed_keep(struct reg_registry *reg, const struct inode_rec *rec)
{
	struct keep_arg a = { .rec = rec };

	if (!reg->fixed || !(a.kind = keeps(rec)))
		return;
	keep(reg, &a);
}

void reg_fixed_keep_file(struct reg_registry *reg, const struct inode_rec *rec,
			 const struct rext *ext, size_t n)
{
	struct keep_arg a = { .rec = rec };
	uint8_t *p;
	size_t i;

	if (!reg->fixed || (a.kind = keeps(rec)) != FIXED ||
	    rec->kind != REG_FILE)
		return;
	a.buf = malloc(n ? n * (EXT_FIXED + CHUNK_LOC_MAX) : 1);
	if (!a.buf)
		return;
	for (p = a.buf, i = 0; i < n; i++) {
		be64_put(p, ext[i].off);
		memcpy(p + 8, &ext[i].len, 4);
		memcpy(p + 12, ext[i].key.b, CHUNK_KEY_LEN);
		p[12 + CHUNK_KEY_LEN] = ext[i].loc.len;
		p += EXT_FIXED;
		memcpy(p, ext[i].loc.b, ext[i].loc.len);
		p += ext[i].loc.len;
	}
	a.len = (size_t)(p - a.buf);
	keep(reg, &a);
	free(a.buf);
}
