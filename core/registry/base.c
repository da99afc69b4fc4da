/* base.c — opening and closing a registry: the store directory and its
 * privacy, META's first records and the checks a store is opened with
 * (format, chunker, not under a mount of itself), the index and the chunk
 * store, the tick that cleans up after dead processes, statfs.
 *
 * Store layout (DIR, mode 0700):
 *	DIR/index/      LMDB environment (index/lmdb/); with [index] backend =
 *	                postgres, the file "host" only: the index is the
 *	                database's, DIR is this host's (spool, cache)
 *	DIR/packs/      pack files (store/pack/), [store] backend = local
 *	DIR/cache/      this host's chunk cache, backend = s3 (store/cache/)
 *	DIR/spool/      unnamed (O_TMPFILE) spool files of files being written
 *	(pins, life tokens and writers of drafts are the index's locks:
 *	maint/pins.c, registry/live.c)
 *
 * The key schema of the index is in index/records.h.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"
#include "store/cache/cache.h"
#include "store/s3/s3store.h"
#include "util.h"

/* Marks the directory of a host of a registry in PostgreSQL. */
#define HOST_MARK "index/host"

void reg_caller_self(struct reg_caller *c)
{
	mode_t m = umask(022);

	umask(m);
	memset(c, 0, sizeof(*c));
	c->uid = geteuid();
	c->gid = getegid();
	c->pid = getpid();
	c->umask = m;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char *p = strdup(path), *s;
	int r = 0;

	if (!p)
		return -ENOMEM;
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			r = -errno;
			break;
		}
		*s = '/';
	}
	if (r == 0 && mkdir(p, mode) < 0 && errno != EEXIST)
		r = -errno;
	free(p);
	return r;
}

struct init_arg {
	const struct chunker_params *want;
	struct chunker_params have;
	bool mismatch;
	unsigned npacks;      /* pack files in the store */
	const char *backend;  /* the chunk store's: "pack", "s3" */
};

/* The chunk store backend a store's META names: 0 and *ret ("pack" or
 * "s3"), -ENOENT in a new index, -EPROTO for an unknown format, -EIO. */
static int meta_backend_txn(struct idx_txn *t, const char **ret)
{
	struct idx_val v;
	uint32_t fmt;
	int r;

	r = idx_get(t, IDX_META, META_FORMAT, strlen(META_FORMAT), &v);
	if (r < 0)
		return r;
	if (v.len != 4)
		return -EPROTO;
	memcpy(&fmt, v.data, 4);
	if (fmt == 1) {
		*ret = "pack";
		return 0;
	}
	if (fmt != 2)
		return -EPROTO;
	r = idx_get(t, IDX_META, META_STORE, strlen(META_STORE), &v);
	if (r < 0 || v.len != 2 || memcmp(v.data, "s3", 2) != 0)
		return -EIO;
	*ret = "s3";
	return 0;
}

static int backend_read_txn(struct idx_txn *t, void *arg)
{
	return meta_backend_txn(t, arg);
}

/* "local" for a pack store: the word of [store] backend. */
static const char *backend_word(const char *backend)
{
	return strcmp(backend, "pack") ? backend : "local";
}

/* Refuses a store made with another chunk store backend than the config
 * names, before the chunk store is opened (which would reach an object
 * store, or make packs/): -EINVAL (logged), -EINVAL for an unknown
 * format (logged), or the index's error. */
static int check_backend(struct reg_registry *reg, const char *want,
			 bool *ret_new)
{
	const char *have = NULL;
	int r = idx_read(reg->ix, backend_read_txn, &have);

	*ret_new = r == -ENOENT;
	if (r == -ENOENT)
		return 0;
	if (r == -EPROTO)
		return log_err(-EINVAL, "store '%s' has an unknown format",
			       reg->path);
	if (r < 0)
		return r;
	if (strcmp(have, want))
		return log_err(-EINVAL, "store '%s' was made with [store] "
			       "backend = %s, the config asks for %s",
			       reg->path, backend_word(have),
			       backend_word(want));
	return 0;
}

/* Opens the chunk store [store] backend names: the pack files of the
 * store directory; or the S3 store of [s3] behind this host's chunk cache
 * ([cache]: by default the store's cache/), asked at once whether its
 * endpoint, keys and bucket work unless REG_OPEN_LAZY. */
static int open_chunk_store(struct reg_registry *reg, const char *backend,
			    unsigned flags)
{
	const struct mreg_config *cfg = reg->cfg;
	struct store_options so = {
		.backend = backend,
		.dir = reg->path,
		.pack_size = cfg->pack_size,
		.sync = cfg->durability == DURABILITY_FULL,
	};
	struct s3_store_config s3 = {
		.endpoint = cfg->s3_endpoint,
		.bucket = cfg->s3_bucket,
		.region = cfg->s3_region,
		.path_style = cfg->s3_path_style,
		.credentials = cfg->s3_credentials,
		.key_prefix = cfg->s3_key_prefix,
		.gc_grace_s = cfg->s3_gc_grace,
		.timeout_ms = cfg->s3_timeout * 1000,
		.lazy = (flags & REG_OPEN_LAZY) != 0,
	};
	struct cache_config cc = { .path = cfg->cache_path,
				   .size = cfg->cache_size,
				   .min_free = cfg->cache_min_free };
	char *dflt = NULL;
	int r;

	if (!strcmp(backend, "pack"))
		return store_open(&so, &reg->st);
	so.backend_cfg = &s3;
	r = store_open(&so, &cc.inner);
	if (r < 0)
		return r;
	if (!cc.path && asprintf(&dflt, "%s/cache", reg->path) < 0) {
		store_close(cc.inner);
		return -ENOMEM;
	}
	if (!cc.path)
		cc.path = dflt;
	so = (struct store_options){ .backend = "cache", .backend_cfg = &cc };
	r = store_open(&so, &reg->st);
	if (r < 0)
		store_close(cc.inner);
	free(dflt);
	return r;
}

static int count_pack(void *arg, UNUSED const struct store_container *c)
{
	unsigned *n = arg;

	(*n)++;
	return 0;
}

static int init_meta_txn(struct idx_txn *t, void *arg)
{
	struct init_arg *a = arg;
	uint32_t fmt = strcmp(a->backend, "pack") ? 2 : 1,
		 cp[3] = { a->want->min_size, a->want->avg_size,
			   a->want->max_size };
	const char *have;
	struct idx_val v;
	int r;

	a->mismatch = false;
	r = meta_backend_txn(t, &have);
	if (r == -ENOENT) {
		uint64_t next = FIRST_DYN_INO;
		int64_t now = now_ns();

		/* An empty index beside packs was lost (data.mdb removed
		 * or truncated to nothing, which LMDB takes for a new
		 * file): starting afresh would show an empty registry and
		 * let gc delete every pack. */
		if (a->npacks)
			return -EUCLEAN;

		if ((r = idx_put(t, IDX_META, META_FORMAT,
				 strlen(META_FORMAT), &fmt, 4, 0)) < 0 ||
		    (r = idx_put(t, IDX_META, META_CHUNKER,
				 strlen(META_CHUNKER), cp, sizeof(cp), 0)) < 0 ||
		    (r = idx_put(t, IDX_META, META_NEXT_INO,
				 strlen(META_NEXT_INO), &next, 8, 0)) < 0 ||
		    (r = idx_put(t, IDX_META, META_CREATED,
				 strlen(META_CREATED), &now, 8, 0)) < 0 ||
		    (fmt == 2 && (r = idx_put(t, IDX_META, META_STORE,
					      strlen(META_STORE), a->backend,
					      strlen(a->backend), 0)) < 0))
			return r;
		return 0;
	}
	if (r < 0)
		return r;
	if (strcmp(have, a->backend))
		return -EMEDIUMTYPE; /* made meanwhile by another backend */
	r = idx_get(t, IDX_META, META_CHUNKER, strlen(META_CHUNKER), &v);
	if (r < 0 || v.len != sizeof(cp))
		return -EIO;
	memcpy(cp, v.data, sizeof(cp));
	a->have.min_size = cp[0];
	a->have.avg_size = cp[1];
	a->have.max_size = cp[2];
	a->mismatch = memcmp(&a->have, a->want, sizeof(a->have)) != 0;
	return 0;
}

/* The store is readable by its owner only: the mount is the only door for
 * other users (SPEC §7). A store directory we own that others may enter
 * (made by hand, or by an older version) is closed, with a warning. */
static void store_private(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid() || !(st.st_mode & 077))
		return;
	if (chmod(path, st.st_mode & 07700) < 0)
		log_err(-errno, "cannot close store '%s' to other users",
			path);
	else
		log_msg(LOG_LVL_WARN, "store '%s' was open to other users "
			"(mode %04o): made %04o", path,
			(unsigned)(st.st_mode & 07777),
			(unsigned)(st.st_mode & 07700));
}

/* Makes a new directory entry durable: fsync of the directory holding it. */
static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (fsync(fd) < 0)
		log_warn(-errno, "cannot sync directory '%s'", dir);
	close(fd);
}

/* A new store's directories survive a power cut: the store in its parent,
 * index/ in the store, LMDB's files in index/ (packs/ syncs its own). */
static void sync_new_store(const char *path, const char *index)
{
	char *parent = strdup(path), *slash;

	if (parent && (slash = strrchr(parent, '/'))) {
		*slash = '\0';
		fsync_dir(*parent ? parent : "/");
	}
	free(parent);
	fsync_dir(path);
	fsync_dir(index);
}

/* Whether path is the directory of a host of a registry in PostgreSQL. */
static bool store_marked(const char *path)
{
	char *p;
	bool ok;

	if (asprintf(&p, "%s/" HOST_MARK, path) < 0)
		return false;
	ok = access(p, F_OK) == 0;
	free(p);
	return ok;
}

/* A store directory: an LMDB index in it, or the mark of a host's
 * directory of a registry whose index is in PostgreSQL. */
static bool store_exists(const char *path)
{
	char *p;
	bool ok;

	if (store_marked(path))
		return true;
	if (asprintf(&p, "%s/index/data.mdb", path) < 0)
		return false;
	ok = access(p, F_OK) == 0;
	free(p);
	return ok;
}

#define FUSE_SUPER_MAGIC 0x65735546

/* Undoes the octal escapes of a mountinfo field (\040 for a blank). */
static void unescape(char *s)
{
	char *d = s;

	for (; *s; s++, d++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] && s[3]) {
			*d = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				    (s[3] - '0'));
			s += 3;
		} else {
			*d = *s;
		}
	}
	*d = '\0';
}

/* The mount point of the mregfs mount that real path p is in, into mnt
 * (4096 bytes): 1, or 0 when p is on no mregfs mount. */
static int mregfs_mount_of(const char *p, char *mnt)
{
	char line[8192], best[4096] = "", type[256];
	size_t n, bestlen = 0;
	bool mregfs = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *mp, *sep, *save = NULL;
		int i;

		sep = strstr(line, " - ");
		if (!sep || sscanf(sep + 3, "%255s", type) != 1)
			continue;
		*sep = '\0';
		/* the fifth field is the mount point */
		mp = strtok_r(line, " ", &save);
		for (i = 0; mp && i < 4; i++)
			mp = strtok_r(NULL, " ", &save);
		if (!mp)
			continue;
		unescape(mp);
		n = strlen(mp);
		/* the deepest mount whose point is p or holds it (a later
		   line on the same point is mounted over an earlier one) */
		if (n < bestlen || strncmp(p, mp, n) != 0 ||
		    (p[n] && p[n] != '/' && strcmp(mp, "/") != 0))
			continue;
		strlcpy(best, mp, sizeof(best));
		bestlen = n;
		mregfs = strcmp(type, "fuse.mregfs") == 0;
	}
	fclose(f);
	if (!mregfs)
		return 0;
	strlcpy(mnt, best, 4096);
	return 1;
}

/* What may be opened (or made) as a store at path: an existing store; or,
 * with create, a missing path or an empty directory. Anything else is
 * refused and left as it is: no store there (-ENOENT: a missing path or
 * an empty directory; the caller says it), and, with what was found in
 * the log, a file (-ENOTDIR), a directory holding other things
 * (-ENOTEMPTY), a path inside an mregfs mount (-EXDEV: a mount is used
 * through its root, and a store inside one would be written through
 * itself). */
static int store_check(const char *path, bool create)
{
	char *probe = strdup(path), *slash, real[4096], mnt[4096];
	char found[512] = "";
	struct statfs sf;
	struct stat st;
	struct dirent *de;
	unsigned nfound = 0;
	DIR *d;
	int r = 0;

	if (!probe)
		return -ENOMEM;
	/* the nearest part of path that exists tells where it would be */
	while (stat(probe, &st) < 0 && (slash = strrchr(probe, '/')) &&
	       slash != probe)
		*slash = '\0';
	if (statfs(probe, &sf) == 0 && sf.f_type == FUSE_SUPER_MAGIC &&
	    realpath(probe, real) && mregfs_mount_of(real, mnt)) {
		log_msg(LOG_LVL_ERROR, "'%s' is inside the mregfs mount '%s': "
			"a mount is used through its root (--store %s), and a "
			"store cannot live in one", path, mnt, mnt);
		r = -EXDEV;
	}
	free(probe);
	if (r < 0)
		return r;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT && create)
			return 0;
		if (errno != ENOENT)
			return log_err(-errno, "cannot open store '%s'", path);
		/* nothing to name: the caller says it */
		return -ENOENT;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_msg(LOG_LVL_ERROR, "'%s' is not a store: not a directory",
			path);
		return -ENOTDIR;
	}
	if (store_exists(path))
		return 0;
	d = opendir(path);
	if (!d)
		return log_err(-errno, "cannot open store '%s'", path);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (nfound++ < 4)
			snprintf(found + strlen(found),
				 sizeof(found) - strlen(found), "%s'%.100s'",
				 nfound > 1 ? ", " : "", de->d_name);
	}
	closedir(d);
	if (nfound > 4)
		snprintf(found + strlen(found), sizeof(found) - strlen(found),
			 " and %u more", nfound - 4);
	if (!nfound && create)
		return 0;
	if (!nfound)
		return -ENOENT; /* the caller says it */
	log_msg(LOG_LVL_ERROR, "'%s' is not a store: it has no "
		"'%s/index/data.mdb' but holds %s", path, path, found);
	return -ENOTEMPTY;
}

static int host_index_read_txn(struct idx_txn *t, UNUSED void *arg)
{
	struct idx_val v;

	return idx_get(t, IDX_META, META_FORMAT, strlen(META_FORMAT), &v);
}

/* Opens the index [index] backend names: the LMDB environment dir (the
 * store's index/), or the PostgreSQL database of [postgres], the store
 * directory then being this host's (marked HOST_MARK). A directory made
 * for the one is refused for the other. With REG_OPEN_EXISTING, a
 * database that holds no registry yet is refused (-ENOENT, before the
 * host's directory is made): 'mreg init' makes one. */
static int open_index(struct reg_registry *reg, const char *dir, bool fresh,
		      unsigned flags)
{
	const struct mreg_config *cfg = reg->cfg;
	bool pg = cfg->index == CONFIG_INDEX_POSTGRES;
	struct idx_options io = {
		.backend = pg ? "postgres" : "lmdb",
		.path = dir,
		.conninfo = cfg->pg_conninfo,
		.schema = cfg->pg_schema,
		.map_size = cfg->map_size,
		.connections = cfg->pg_connections,
		.deadline_ms = cfg->pg_timeout * 1000,
		.sync = cfg->durability == DURABILITY_FULL,
	};
	int r;

	if (!fresh && store_marked(reg->path) != pg)
		return log_err(-EINVAL, "store '%s' was made with [index] "
			       "backend = %s, the config asks for %s",
			       reg->path, pg ? "lmdb" : "postgres",
			       pg ? "postgres" : "lmdb");
	r = idx_open(&io, &reg->ix);
	if (r < 0)
		return r;
	if (!pg && fresh && io.sync)
		sync_new_store(reg->path, dir);
	if (pg && (flags & REG_OPEN_EXISTING)) {
		r = idx_read(reg->ix, host_index_read_txn, NULL);
		if (r == -ENOENT) {
			log_msg(LOG_LVL_ERROR, "the database '%s' holds no "
				"registry: 'mreg init' makes one",
				cfg->pg_conninfo);
			return -ENOENT;
		}
	}
	return r < 0 ? r : 0;
}

/* Marks the store directory as a host's of a registry in PostgreSQL. */
static int host_mark(const char *path)
{
	char *mark;
	int r = 0, fd;

	if (asprintf(&mark, "%s/" HOST_MARK, path) < 0)
		return -ENOMEM;
	*strrchr(mark, '/') = '\0';
	if (mkdir(mark, 0700) < 0 && errno != EEXIST)
		r = log_err(-errno, "cannot create '%s'", mark);
	mark[strlen(mark)] = '/';
	fd = r ? -1 : open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (!r && fd < 0)
		r = log_err(-errno, "cannot create '%s'", mark);
	if (fd >= 0)
		close(fd);
	free(mark);
	return r;
}

int reg_open(const struct mreg_config *cfg, const char *store,
	     struct reg_registry **ret)
{
	return reg_open_flags(cfg, store, 0, ret);
}

int reg_open_flags(const struct mreg_config *cfg, const char *store,
		   unsigned flags, struct reg_registry **ret)
{
	struct reg_registry *reg;
	struct init_arg ia;
	char *p = NULL;
	bool fresh, pg, index_new;
	int r;

	if (!cfg || !ret)
		return -EINVAL;
	pg = cfg->index == CONFIG_INDEX_POSTGRES;
	reg = calloc(1, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	reg->cfg = cfg;
	pthread_mutex_init(&reg->lock, NULL);
	pthread_mutex_init(&reg->pins_lock, NULL);
	pthread_mutex_init(&reg->writers_lock, NULL);
	pthread_mutex_init(&reg->hooks_lock, NULL);
	pthread_mutex_init(&reg->refusal_lock, NULL);
	reg->chunker = cfg->chunker;
	reg->path = store ? strdup(store) : config_store_path(cfg, NULL);
	if (!reg->path) {
		r = -ENOMEM;
		goto fail;
	}
	/* With the index in PostgreSQL, DIR is this host's: made at need,
	   whether the registry exists is the database's to say. */
	r = store_check(reg->path, !(flags & REG_OPEN_EXISTING) || pg);
	if (r < 0)
		goto fail;
	fresh = !store_exists(reg->path);
	if (asprintf(&p, "%s/index", reg->path) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	/* the database first: a host's directory is made for a registry
	   that exists */
	if (pg && (r = open_index(reg, p, fresh, flags)) < 0)
		goto fail;
	if (fresh) {
		r = mkdir_p(reg->path, 0700);
		if (r < 0) {
			log_err(r, "cannot create store '%s'", reg->path);
			goto fail;
		}
		if (pg && (r = host_mark(reg->path)) < 0)
			goto fail;
	}
	store_private(reg->path);
	if (asprintf(&reg->spool_dir, "%s/spool", reg->path) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	if (mkdir(reg->spool_dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		if (r == -EACCES || r == -EPERM)
			log_err(r, "cannot open store '%s'", reg->path);
		else
			log_err(r, "cannot create '%s/spool'", reg->path);
		goto fail;
	}
	if (!pg && (r = open_index(reg, p, fresh, flags)) < 0)
		goto fail;
	ia.backend = cfg->backend == CONFIG_BACKEND_S3 ? "s3" : "pack";
	r = check_backend(reg, ia.backend, &index_new);
	if (r == 0)
		r = open_chunk_store(reg, ia.backend, flags);
	if (r < 0)
		goto fail;
	ia.want = &cfg->chunker;
	ia.npacks = 0;
	/* containers beside an empty index: a lost index, or another
	   registry's objects. Only a new index is asked: listing a bucket
	   at every open would cost every command a LIST per 1,000 objects */
	if (index_new &&
	    (r = store_containers(reg->st, count_pack, &ia.npacks)) < 0)
		goto fail;
	r = reg_change(reg, init_meta_txn, &ia);
	if (r == -EUCLEAN && cfg->index == CONFIG_INDEX_POSTGRES) {
		r = log_err(-EIO, "the chunk store holds %u pack objects but "
			    "the database '%s' holds no registry: they are "
			    "another registry's (give this one another [s3] "
			    "key_prefix), or the database was lost",
			    ia.npacks, cfg->pg_conninfo);
		goto fail;
	}
	if (r == -EUCLEAN && cfg->backend == CONFIG_BACKEND_S3) {
		r = log_err(-EIO, "bucket '%s' holds %u pack objects under "
			    "'%s' but the index '%s/data.mdb' of store '%s' "
			    "is empty: they are another registry's (give this "
			    "one another [s3] key_prefix), or this index was "
			    "lost", cfg->s3_bucket, ia.npacks,
			    cfg->s3_key_prefix ? cfg->s3_key_prefix : "", p,
			    reg->path);
		goto fail;
	}
	if (r == -EUCLEAN) {
		r = log_err(-EIO, "store '%s' holds %u pack files but its index "
			    "'%s/data.mdb' is empty: the index was lost or "
			    "truncated", reg->path, ia.npacks, p);
		goto fail;
	}
	if (r == -EPROTO) {
		r = log_err(-EINVAL, "store '%s' has an unknown format",
			    reg->path);
		goto fail;
	}
	if (r == -EMEDIUMTYPE) {
		r = log_err(-EINVAL, "store '%s' was made meanwhile with "
			    "another [store] backend", reg->path);
		goto fail;
	}
	if (r < 0)
		goto fail;
	if (ia.mismatch) {
		r = log_err(-EINVAL,
			    "store '%s' was made with chunk sizes %u/%u/%u, "
			    "the config asks for %u/%u/%u",
			    reg->path, ia.have.min_size, ia.have.avg_size,
			    ia.have.max_size, cfg->chunker.min_size,
			    cfg->chunker.avg_size, cfg->chunker.max_size);
		goto fail;
	}
	r = reg_live_open(reg);
	if (r < 0)
		goto fail;
	r = reg_fixed_open(reg);
	if (r < 0)
		goto fail;
	r = reg_pending_cleanup(reg);
	if (r < 0)
		goto fail;
	r = fdcap_new(cfg->open_files_per_user, cfg->open_files_reserve,
		      &reg->fdcap);
	if (r < 0)
		goto fail;
	if (store_caps(reg->st) & STORE_CACHED)
		reg->readahead = cfg->cache_readahead;
	r = reg_prefetcher_start(reg);
	if (r < 0)
		goto fail;
	free(p);
	*ret = reg;
	return 0;
fail:
	free(p);
	reg_close(reg);
	return r;
}

void reg_close(struct reg_registry *reg)
{
	if (!reg)
		return;
	reg_prefetcher_stop(reg);
	reg_watch_stop(reg);
	if (reg->ix) {
		reg_refusals_flush(reg, true);
		reg_hosts_close(reg);
	}
	hooks_stop(reg->hooks);
	reg_files_close(reg);
	reg_tables_free(reg);
	reg_pins_close(reg);
	reg_live_close(reg);
	store_close(reg->st);
	reg_fixed_close(reg);
	idx_close(reg->ix);
	fdcap_free(reg->fdcap);
	pthread_mutex_destroy(&reg->lock);
	pthread_mutex_destroy(&reg->pins_lock);
	pthread_mutex_destroy(&reg->writers_lock);
	pthread_mutex_destroy(&reg->hooks_lock);
	pthread_mutex_destroy(&reg->refusal_lock);
	free(reg->mount);
	free(reg->path);
	free(reg->spool_dir);
	free(reg);
}

int reg_set_mount(struct reg_registry *reg, const char *mount)
{
	char *m = NULL;
	int r;

	if (!reg)
		return -EINVAL;
	if (mount && *mount && !(m = strdup(mount)))
		return -ENOMEM;
	pthread_mutex_lock(&reg->hooks_lock);
	free(reg->mount);
	reg->mount = m;
	r = hooks_set_mount(reg->hooks, m);
	pthread_mutex_unlock(&reg->hooks_lock);
	return r;
}

const char *reg_path(const struct reg_registry *reg)
{
	return reg->path;
}

int reg_statfs(struct reg_registry *reg, struct statvfs *ret)
{
	if (!reg || !ret)
		return -EINVAL;
	/* the store's file system: where packs, spools and the index grow */
	if (statvfs(reg->path, ret) < 0)
		return -errno;
	ret->f_namemax = REG_FNAME_MAX;
	return 0;
}

void reg_tick(struct reg_registry *reg)
{
	int r;

	idx_maint(reg->ix);
	reg_pins_flush(reg);
	r = reg_pending_cleanup(reg);
	if (r < 0)
		log_err(r, "cannot remove files left by dead processes");
	reg_refusals_flush(reg, false);
	reg_prefetcher_tick(reg);
	reg_hosts_tick(reg);
	if (reg->mount)
		reg_hooks_tick(reg);
}
