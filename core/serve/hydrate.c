/* hydrate.c — the serving cache's copies made and unmade: removal of the
 * copies of a version or a file, the hydration thread (room made by
 * evicting idle copies, the copy written while hashed, checked, synced
 * and renamed into place), its metrics, and the offline fsck and usage
 * of `mreg fsck` and `mreg stats`. internal.h has the state.
 */
#include "internal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* ---- removal --------------------------------------------------------- */

/* Takes every copy matching (version, or ino when version is 0) out of the
 * table, and returns their names to unlink outside the lock. */
static char *take_out(struct serve_cache *c, uint64_t version, uint64_t ino,
		      size_t *ret_n)
{
	struct serve_copy *p, *next;
	char *names = NULL, *nn;
	size_t b, n = 0;
	struct hot *h;

	for (b = 0; b < COPY_BUCKETS; b++)
		for (p = c->copies[b]; p; p = next) {
			next = p->next;
			if (version ? p->key.version != version :
			    p->key.ino != ino)
				continue;
			nn = realloc(names, (n + 1) * NAME_MAX_LEN);
			if (!nn)
				break; /* left to eviction */
			names = nn;
			serve_copy_name(&p->key, names + n++ * NAME_MAX_LEN);
			serve_copy_unlink(c, p);
		}
	for (b = 0; b < HOT_BUCKETS; b++)
		for (h = c->hot[b]; h; h = h->next)
			if (version ? h->key.version == version :
			    h->key.ino == ino)
				h->dropped = true;
	*ret_n = n;
	return names;
}

static void unlink_names(struct serve_cache *c, char *names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (unlinkat(c->dirfd, names + i * NAME_MAX_LEN, 0) < 0 &&
		    errno != ENOENT)
			log_warn(-errno, "cannot remove serving copy '%s/%s'",
				 c->dir, names + i * NAME_MAX_LEN);
	free(names);
}

void serve_drop_version(struct serve_cache *c, uint64_t version)
{
	char *names;
	size_t n;

	if (!c || !c->dir || !version)
		return;
	pthread_mutex_lock(&c->lock);
	names = take_out(c, version, 0, &n);
	pthread_mutex_unlock(&c->lock);
	unlink_names(c, names, n);
}

void serve_sweep(struct serve_cache *c,
		 bool (*alive)(void *arg, const struct serve_key *key),
		 void *arg)
{
	struct serve_key *keys = NULL;
	struct serve_copy *p;
	size_t n = 0, i, b;

	if (!c || !c->dir || !alive)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->ncopies &&
	    (keys = reallocarray(NULL, c->ncopies, sizeof(*keys))))
		for (b = 0; b < COPY_BUCKETS; b++)
			for (p = c->copies[b]; p; p = p->next)
				keys[n++] = p->key;
	pthread_mutex_unlock(&c->lock);
	for (i = 0; i < n; i++) {
		char *names;
		size_t nn;

		if (alive(arg, &keys[i]))
			continue;
		pthread_mutex_lock(&c->lock);
		p = serve_copy_find(c, keys[i].ino);
		names = p && chunkid_eq(&p->key.digest, &keys[i].digest) ?
			take_out(c, 0, keys[i].ino, &nn) : NULL;
		pthread_mutex_unlock(&c->lock);
		if (names)
			unlink_names(c, names, nn);
	}
	free(keys);
}

/* ---- hydration ------------------------------------------------------- */

void serve_trim(struct serve_cache *c, uint64_t need, bool *ret_fits)
{
	char *names = NULL, *nn;
	uint64_t idle = 0;
	size_t n = 0, b;
	struct serve_copy *p;

	/* evict nothing for a file that would not fit anyway */
	for (b = 0; b < COPY_BUCKETS; b++)
		for (p = c->copies[b]; p; p = p->next)
			if (!p->holders)
				idle += p->key.size;
	if (c->bytes + c->reserved + need > c->capacity + idle && need) {
		*ret_fits = false;
		return;
	}
	while (c->bytes + c->reserved + need > c->capacity) {
		struct serve_copy *victim = NULL;

		for (b = 0; b < COPY_BUCKETS; b++)
			for (p = c->copies[b]; p; p = p->next)
				if (!p->holders &&
				    (!victim || p->used < victim->used))
					victim = p;
		if (!victim)
			break;
		nn = realloc(names, (n + 1) * NAME_MAX_LEN);
		if (!nn)
			break;
		names = nn;
		serve_copy_name(&victim->key, names + n++ * NAME_MAX_LEN);
		serve_copy_unlink(c, victim);
		c->evictions++;
	}
	*ret_fits = c->bytes + c->reserved + need <= c->capacity;
	if (n) {
		pthread_mutex_unlock(&c->lock);
		unlink_names(c, names, n);
		pthread_mutex_lock(&c->lock);
	} else {
		free(names);
	}
}

/* Whether the disk keeps its floor (FREE_MIN, util_disk_free()) free
 * after need more. */
static bool disk_has_room(struct serve_cache *c, uint64_t need)
{
	uint64_t avail, floor;

	if (util_disk_free(c->dirfd, FREE_MIN, &avail, &floor))
		return true; /* the write will tell */
	return avail >= need + floor;
}

static int write_full(int fd, const void *buf, size_t n, uint64_t off)
{
	const char *p = buf;

	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		off += (uint64_t)w;
		n -= (size_t)w;
	}
	return 0;
}

static bool stopping(struct serve_cache *c)
{
	bool s;

	pthread_mutex_lock(&c->lock);
	s = c->stop || c->off != SERVE_OPEN_PASSTHROUGH;
	pthread_mutex_unlock(&c->lock);
	return s;
}

/* Writes key's copy: its bytes from the source into a temporary file,
 * hashed on the way; compared with the digest; fsynced; renamed into
 * place; the directory synced. 0 or a negative errno (logged). */
static int hydrate(struct serve_cache *c, const struct serve_key *key)
{
	char tmp[64], name[NAME_MAX_LEN], hex[MREG_ID_HEX], hex2[MREG_ID_HEX];
	struct digest_state ds;
	struct mreg_id got;
	void *h = NULL;
	uint8_t *buf;
	uint64_t off = 0;
	int fd, r;

	snprintf(tmp, sizeof(tmp), ".tmp-%" PRIu64 "-%d", key->ino,
		 (int)getpid());
	serve_copy_name(key, name);
	buf = malloc(HYDRATE_BLOCK);
	if (!buf)
		return -ENOMEM;
	fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
		    O_NOFOLLOW, 0400);
	if (fd < 0) {
		free(buf);
		return log_err(-errno, "cannot create '%s/%s'", c->dir, tmp);
	}
	/* the space now, so that a short disk fails before the copy */
	if (key->size && fallocate(fd, 0, 0, (off_t)key->size) < 0 &&
	    errno != EOPNOTSUPP && errno != ENOSYS) {
		r = log_err(-errno, "cannot hydrate inode %" PRIu64 " into "
			    "'%s'", key->ino, c->dir);
		goto out;
	}
	r = c->src.open(c->src.arg, key, &h);
	if (r < 0) {
		log_err(r, "cannot open inode %" PRIu64 " to hydrate it",
			key->ino);
		goto out;
	}
	digest_init(&ds);
	while (off < key->size) {
		size_t want = key->size - off < HYDRATE_BLOCK ?
			      (size_t)(key->size - off) : HYDRATE_BLOCK;
		ssize_t n = c->src.read(h, buf, want, off);

		if (n == 0)
			n = log_err(-EIO, "inode %" PRIu64 " ends at %" PRIu64
				    ", before its size %" PRIu64, key->ino,
				    off, key->size);
		if (n < 0) {
			r = (int)n;
			log_err(r, "cannot read inode %" PRIu64 " to hydrate "
				"it", key->ino);
			goto out;
		}
		digest_update(&ds, buf, (size_t)n);
		if ((r = write_full(fd, buf, (size_t)n, off)) < 0) {
			log_err(r, "cannot write '%s/%s'", c->dir, tmp);
			goto out;
		}
		/* start writing it back now, beside the next reads: the
		   fsync at the end then waits for the tail only */
		sync_file_range(fd, (off_t)off, n, SYNC_FILE_RANGE_WRITE);
		off += (uint64_t)n;
		if (stopping(c)) {
			r = -ECANCELED;
			goto out;
		}
		if (c->delay_ms)
			usleep(c->delay_ms * 1000u);
	}
	digest_final(&ds, &got);
	if (!chunkid_eq(&got, &key->digest)) {
		r = log_err(-EIO, "copy of inode %" PRIu64 " hashes to %s, "
			    "not %s: not served", key->ino,
			    chunkid_hex(&got, hex),
			    chunkid_hex(&key->digest, hex2));
		goto out;
	}
	if (fsync(fd) < 0) {
		r = log_err(-errno, "cannot sync '%s/%s'", c->dir, tmp);
		goto out;
	}
	if (renameat(c->dirfd, tmp, c->dirfd, name) < 0) {
		r = log_err(-errno, "cannot rename '%s/%s'", c->dir, tmp);
		goto out;
	}
	if (fsync(c->dirfd) < 0) {
		r = log_err(-errno, "cannot sync '%s'", c->dir);
		unlinkat(c->dirfd, name, 0);
		goto out;
	}
	r = 0;
out:
	if (h)
		c->src.close(h);
	close(fd);
	if (r < 0)
		unlinkat(c->dirfd, tmp, 0);
	free(buf);
	return r;
}

/* Runs one queued file (lock held on entry and return). */
static void hydrate_one(struct serve_cache *c, struct hot *h)
{
	struct serve_key key = h->key;
	struct serve_copy *p;
	bool fits;
	int r;

	h->running = true;
	serve_trim(c, key.size, &fits);
	if (!fits || !disk_has_room(c, key.size)) {
		log_info("no room to hydrate inode %" PRIu64 " (%" PRIu64
			 " bytes) in '%s'", key.ino, key.size, c->dir);
		c->no_room++;
		h->state = SERVE_NO_ROOM;
		h->room_seen = c->room_gen;
		h->running = false;
		return;
	}
	c->reserved += key.size;
	pthread_mutex_unlock(&c->lock);
	r = hydrate(c, &key);
	p = r == 0 ? calloc(1, sizeof(*p)) : NULL;
	pthread_mutex_lock(&c->lock);
	c->reserved -= key.size;
	h->running = false;
	if (r == 0 && p && !h->dropped) {
		p->key = key;
		p->used = ++c->clock;
		serve_copy_insert(c, p);
		c->hydrated++;
		c->hydrated_bytes += key.size;
		h->state = SERVE_COLD;
		serve_hot_remove(c, h);
		log_info("hydrated inode %" PRIu64 " (%" PRIu64 " bytes)",
			 key.ino, key.size);
		return;
	}
	if (r == 0) {
		/* out of memory, or its version went meanwhile */
		char name[NAME_MAX_LEN];

		serve_copy_name(&key, name);
		unlinkat(c->dirfd, name, 0);
		free(p);
		h->state = SERVE_COLD;
		serve_hot_remove(c, h);
		return;
	}
	if (r == -ECANCELED) {
		h->state = SERVE_COLD;
		return;
	}
	c->failed++;
	h->state = SERVE_FAILED;
	h->retry_at = mono_ns() + RETRY_NS;
}

void *serve_hydrator(void *arg)
{
	struct serve_cache *c = arg;
	struct hot *h;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		if (!(h = c->qhead)) {
			pthread_cond_wait(&c->cond, &c->lock);
			continue;
		}
		c->qhead = h->qnext;
		if (!c->qhead)
			c->qtail = NULL;
		c->queued--;
		hydrate_one(c, h);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- metrics ---------------------------------------------------------- */

/* One family of one sample, as Prometheus wants it (HELP and TYPE). */
static void family(struct strbuf *sb, const char *name, const char *type,
		   const char *help, uint64_t v)
{
	strbuf_addf(sb, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name,
		    help, name, type, name, v);
}

void serve_metrics(struct serve_cache *c, struct strbuf *sb)
{
	size_t k;
	uint64_t pending;

	if (!c || !sb)
		return;
	pthread_mutex_lock(&c->lock);
	pending = c->queued + (c->reserved ? 1 : 0);
	strbuf_addf(sb, "# HELP mreg_serve_passthrough Whether the kernel "
		    "serves hydrated sealed files (FUSE passthrough): 1, or 0 "
		    "with the reason.\n# TYPE mreg_serve_passthrough gauge\n"
		    "mreg_serve_passthrough{state=\"%s\"} %d\n",
		    c->off == SERVE_OPEN_PASSTHROUGH ? "on" :
		    serve_open_kind_name(c->off), c->off == SERVE_OPEN_PASSTHROUGH);
	strbuf_adds(sb, "# HELP mreg_serve_opens_total Opens of files by "
		    "who serves them: the kernel (passthrough) or the daemon "
		    "(fallback, with why).\n"
		    "# TYPE mreg_serve_opens_total counter\n");
	for (k = 0; k < SERVE_OPEN_KINDS; k++) {
		uint64_t v = atomic_load(&c->opens[k]);

		if (k == SERVE_OPEN_PASSTHROUGH)
			strbuf_addf(sb, "mreg_serve_opens_total{mode="
				    "\"passthrough\"} %" PRIu64 "\n", v);
		else
			strbuf_addf(sb, "mreg_serve_opens_total{mode="
				    "\"fallback\",reason=\"%s\"} %" PRIu64
				    "\n", serve_open_kind_name(k), v);
	}
	family(sb, "mreg_serve_daemon_reads_total", "counter", "READ requests "
	       "the daemon answered (passthrough reads never reach it).",
	       (uint64_t)atomic_load(&c->daemon_reads));
	family(sb, "mreg_serve_files", "gauge", "Hydrated copies in the "
	       "serving cache.", c->ncopies);
	family(sb, "mreg_serve_bytes", "gauge", "Bytes of hydrated copies "
	       "(removed ones still open included).", c->bytes);
	family(sb, "mreg_serve_capacity_bytes", "gauge", "Bytes the serving "
	       "cache may hold ([serve] size).", c->dir ? c->capacity : 0);
	family(sb, "mreg_serve_pending", "gauge", "Files queued for "
	       "hydration or being hydrated.", pending);
	family(sb, "mreg_serve_hydrated_bytes_total", "counter", "Bytes of "
	       "copies made.", c->hydrated_bytes);
	strbuf_addf(sb, "# HELP mreg_serve_hydrations_total Hydrations by "
		    "result.\n# TYPE mreg_serve_hydrations_total counter\n"
		    "mreg_serve_hydrations_total{result=\"ok\"} %" PRIu64 "\n"
		    "mreg_serve_hydrations_total{result=\"failed\"} %" PRIu64
		    "\nmreg_serve_hydrations_total{result=\"no_room\"} %"
		    PRIu64 "\n", c->hydrated, c->failed, c->no_room);
	family(sb, "mreg_serve_evictions_total", "counter", "Copies removed "
	       "to make room.", c->evictions);
	pthread_mutex_unlock(&c->lock);
}

/* ---- offline: fsck, usage ------------------------------------------ */

/* Re-hashes the copy at dirfd/name against key: 0, or why not in why. */
static int check_copy(int dirfd, const char *name, struct serve_key *key,
		      uint8_t *buf, char *why, size_t wlen)
{
	char hex[MREG_ID_HEX];
	struct digest_state ds;
	struct mreg_id got;
	struct stat st;
	ssize_t n;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(why, wlen, "cannot be read: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	key->size = (uint64_t)st.st_size;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	digest_init(&ds);
	while ((n = read(fd, buf, BLOCK)) > 0)
		digest_update(&ds, buf, (size_t)n);
	if (n < 0) {
		snprintf(why, wlen, "cannot be read: %s", strerror(errno));
		close(fd);
		return -EIO;
	}
	close(fd);
	digest_final(&ds, &got);
	if (!chunkid_eq(&got, &key->digest)) {
		snprintf(why, wlen, "its bytes hash to xxh128:%s",
			 chunkid_hex(&got, hex));
		return -EIO;
	}
	return 0;
}

int serve_fsck(const char *dir,
	       void (*bad)(void *arg, const struct serve_key *key,
			   const char *why),
	       void *arg)
{
	struct dirent *d;
	uint8_t *buf;
	int dirfd, n = 0, fd;
	DIR *dp;

	if (!dir || !bad)
		return -EINVAL;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return errno == ENOENT ? 0 : -errno;
	fd = dup(dirfd);
	if (fd < 0 || !(dp = fdopendir(fd))) {
		int e = -errno;

		if (fd >= 0)
			close(fd);
		close(dirfd);
		return e;
	}
	buf = malloc(BLOCK);
	if (!buf) {
		closedir(dp);
		close(dirfd);
		return -ENOMEM;
	}
	while ((d = readdir(dp))) {
		struct serve_key key;
		char why[256];

		if (!serve_parse_name(d->d_name, &key))
			continue;
		if (check_copy(dirfd, d->d_name, &key, buf, why,
			       sizeof(why)) == 0)
			continue;
		/* a later serve_get() finds it gone and serves the file
		   from the store; an open using it keeps its bytes */
		if (unlinkat(dirfd, d->d_name, 0) < 0 && errno != ENOENT)
			snprintf(why + strlen(why), sizeof(why) - strlen(why),
				 " (and cannot be removed: %s)",
				 strerror(errno));
		bad(arg, &key, why);
		n++;
	}
	free(buf);
	closedir(dp);
	close(dirfd);
	return n;
}

int serve_usage(const char *dir, uint64_t *ret_files, uint64_t *ret_bytes)
{
	uint64_t files = 0, bytes = 0;
	struct dirent *d;
	struct stat st;
	DIR *dp;

	if (!dir || !ret_files || !ret_bytes)
		return -EINVAL;
	dp = opendir(dir);
	if (!dp && errno != ENOENT)
		return -errno;
	while (dp && (d = readdir(dp))) {
		struct serve_key key;

		if (!serve_parse_name(d->d_name, &key) ||
		    fstatat(dirfd(dp), d->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		files++;
		bytes += (uint64_t)st.st_size;
	}
	if (dp)
		closedir(dp);
	*ret_files = files;
	*ret_bytes = bytes;
	return 0;
}
