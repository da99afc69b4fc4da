/* io.c — the test half of the I/O layer (see io.h): crash simulation and
 * named fault points, compiled only with -DMREG_FAULTS. A normal build
 * uses the inline wrappers of io.h and keeps nothing from this file but
 * io_faults_built().
 *
 * Tracking. Each pack this process creates (or first writes to) gets a
 * struct tfile, keyed by device and inode, holding a dup(2) of its
 * descriptor (so the inode cannot be reused while it is tracked, and the
 * crash code can still reach it after the store closed its own) and, when
 * it was created here, a dup of its directory and its name. Before each
 * write or truncation the bytes about to be overwritten (those below the
 * current end of the file) are saved in an undo record. Replaying the undo
 * records backwards over the current bytes gives the content the pack had
 * at its last successful sync; a sync drops them. Everything happens under
 * one mutex, held across the system calls, so that a write never slips
 * between a sync and the bookkeeping that says what the sync covered.
 *
 * Losing power (crash or failed sync), per tracked pack: the range touched
 * since the last sync is rebuilt from the old image (the synced bytes,
 * zeroes past the synced size) and the new one (the current bytes), block
 * by block of 512 bytes, and the file is cut to a size between the synced
 * and the current one. Each crash picks, per pack, one of: everything
 * lost, everything kept, or a random mix of blocks; and maybe one torn
 * block (new prefix, old rest). A failed sync loses everything since the
 * last good one, the worst a kernel may do.
 */
#include "io.h"

bool io_faults_built(void)
{
#ifdef MREG_FAULTS
	return true;
#else
	return false;
#endif
}

#ifdef MREG_FAULTS

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BLOCK 512
#define MAX_FAULTS 16

struct undo {
	uint64_t off;      /* first byte the write or cut touched */
	uint64_t end;      /* end of what it touched */
	uint64_t old_size; /* the file's size before it */
	uint8_t *old;      /* the bytes [off, off + old_len) before it */
	size_t old_len;
};

struct tfile {
	dev_t dev;
	ino_t ino;
	int fd;            /* our dup of the pack */
	int dirfd;         /* our dup of its directory, or -1 */
	dev_t ddev;
	ino_t dino;
	char *name;
	bool name_pending; /* created, its directory not synced since */
	uint64_t synced;   /* size at the last sync */
	struct undo *u;
	size_t n, cap;
	struct tfile *next;
};

struct armed {
	enum io_fault f;
	uint64_t at;
	bool on;  /* "N+": every event from the Nth on */
	int err;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bool loaded;
static uint64_t crash_sync, crash_write, seed;
static struct armed armed[MAX_FAULTS];
static size_t narmed;
static uint64_t events[IO_FAULT_COUNT];
static uint64_t syncs, writes;
static uint64_t rng;
static struct tfile *files;

static const char *const fault_name[IO_FAULT_COUNT] = {
	[IO_FAULT_PACK_WRITE] = "pack_write",
	[IO_FAULT_SPOOL_WRITE] = "spool_write",
	[IO_FAULT_FSYNC] = "fsync",
	[IO_FAULT_READ] = "read",
	[IO_FAULT_MAP_FULL] = "map_full",
	[IO_FAULT_INDEX_READ] = "index_read",
};

static const struct {
	const char *name;
	int err;
} err_names[] = {
	{ "ENOSPC", ENOSPC }, { "EIO", EIO }, { "EDQUOT", EDQUOT },
	{ "EROFS", EROFS }, { "ENOMEM", ENOMEM }, { "EFBIG", EFBIG },
	{ "EINTR", EINTR }, { "EAGAIN", EAGAIN },
};

/* Says why the test setup is wrong and stops: a test that silently runs
 * without its fault would pass for the wrong reason. Straight to fd 2: a
 * program may have pointed stderr elsewhere (the CLI captures the log). */
__attribute__((noreturn, format(printf, 1, 2)))
static void die(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(msg) - 2)
		n = sizeof(msg) - 2;
	msg[n++] = '\n';
	(void)!write(2, "mreg io: ", 9);
	(void)!write(2, msg, (size_t)n);
	_exit(2);
}

static uint64_t env_u64(const char *name)
{
	const char *s = getenv(name);
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		die("bad %s='%s'", name, s);
	return v;
}

static int parse_err(const char *s)
{
	char *end;
	long v;
	size_t i;

	for (i = 0; i < sizeof(err_names) / sizeof(err_names[0]); i++)
		if (strcmp(s, err_names[i].name) == 0)
			return err_names[i].err;
	v = strtol(s, &end, 10);
	if (*s && !*end && v > 0 && v < 4096)
		return (int)v;
	die("unknown error '%s' in MREG_FAULT", s);
}

/* MREG_FAULT="name:N[+][:ERR],..." */
static void parse_faults(const char *spec)
{
	char *copy, *item, *save = NULL, *name, *n, *e, *end;
	struct armed *a;
	int f;

	copy = strdup(spec);
	if (!copy)
		die("out of memory");
	for (item = strtok_r(copy, ",", &save); item;
	     item = strtok_r(NULL, ",", &save)) {
		name = item;
		n = strchr(name, ':');
		if (!n)
			die("fault '%s' has no count (name:N[:ERR])", item);
		*n++ = '\0';
		e = strchr(n, ':');
		if (e)
			*e++ = '\0';
		for (f = 0; f < IO_FAULT_COUNT; f++)
			if (strcmp(name, fault_name[f]) == 0)
				break;
		if (f == IO_FAULT_COUNT)
			die("unknown fault point '%s'", name);
		if (narmed == MAX_FAULTS)
			die("more than %d faults", MAX_FAULTS);
		a = &armed[narmed++];
		memset(a, 0, sizeof(*a));
		a->f = (enum io_fault)f;
		a->at = strtoull(n, &end, 10);
		if (*end == '+') {
			a->on = true;
			end++;
		}
		if (!*n || *end || a->at == 0)
			die("bad count '%s' for fault '%s'", n, name);
		if (e)
			a->err = parse_err(e);
		else
			a->err = f == IO_FAULT_MAP_FULL ? ENOSPC : EIO;
	}
	free(copy);
}

static void tfile_free(struct tfile *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->u[i].old);
	free(t->u);
	free(t->name);
	close(t->fd);
	if (t->dirfd >= 0)
		close(t->dirfd);
	free(t);
}

/* mu held. */
static void load(void)
{
	const char *spec;

	if (loaded)
		return;
	loaded = true;
	crash_sync = env_u64("MREG_CRASH_AT");
	crash_write = env_u64("MREG_CRASH_WRITE");
	seed = env_u64("MREG_CRASH_SEED");
	if (!seed)
		seed = crash_sync * 1000003 + crash_write + 1;
	rng = seed * 0x9e3779b97f4a7c15ull | 1;
	spec = getenv("MREG_FAULT");
	if (spec && *spec)
		parse_faults(spec);
}

static uint64_t rnd(void)
{
	/* xorshift64*: plenty for picking blocks */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* mu held: counts an event of f; its armed error or 0. */
static int hit(enum io_fault f)
{
	size_t i;

	load();
	events[f]++;
	for (i = 0; i < narmed; i++)
		if (armed[i].f == f && (armed[i].at == events[f] ||
					(armed[i].on && events[f] > armed[i].at)))
			return -armed[i].err;
	return 0;
}

static struct tfile *find(int fd)
{
	struct tfile *t;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return NULL;
	for (t = files; t; t = t->next)
		if (t->dev == st.st_dev && t->ino == st.st_ino)
			return t;
	return NULL;
}

/* Starts tracking the pack behind fd; dirfd/name when it was created by
 * this call. Dies when it cannot: a crash test that loses track of a pack
 * would check nothing. */
static struct tfile *track(int fd, int dirfd, const char *name, bool created)
{
	struct tfile *t;
	struct stat st, ds;

	if (fstat(fd, &st) < 0)
		die("cannot stat a pack: %s", strerror(errno));
	t = calloc(1, sizeof(*t));
	if (!t)
		die("out of memory");
	t->dev = st.st_dev;
	t->ino = st.st_ino;
	t->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	t->dirfd = -1;
	if (t->fd < 0)
		die("cannot dup a pack descriptor: %s", strerror(errno));
	t->synced = created ? 0 : (uint64_t)st.st_size;
	if (created && name) {
		t->dirfd = dirfd == AT_FDCWD ?
			   open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) :
			   fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
		t->name = strdup(name);
		if (t->dirfd < 0 || !t->name || fstat(t->dirfd, &ds) < 0)
			die("cannot track pack '%s'", name);
		t->ddev = ds.st_dev;
		t->dino = ds.st_ino;
		t->name_pending = true;
	}
	t->next = files;
	files = t;
	return t;
}

/* Saves what a write of [off, end) or a cut to off is about to change. */
static void save_undo(struct tfile *t, uint64_t off, uint64_t end)
{
	struct undo *u;
	struct stat st;
	ssize_t k;

	if (fstat(t->fd, &st) < 0)
		die("cannot stat a pack: %s", strerror(errno));
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->u = reallocarray(t->u, t->cap, sizeof(*t->u));
		if (!t->u)
			die("out of memory");
	}
	u = &t->u[t->n++];
	memset(u, 0, sizeof(*u));
	u->off = off;
	u->end = end;
	u->old_size = (uint64_t)st.st_size;
	if (off < u->old_size) {
		u->old_len = (size_t)((end < u->old_size ? end : u->old_size) -
				      off);
		u->old = malloc(u->old_len ? u->old_len : 1);
		if (!u->old)
			die("out of memory");
		k = pread(t->fd, u->old, u->old_len, (off_t)off);
		if (k != (ssize_t)u->old_len)
			die("cannot read a pack back: %s", strerror(errno));
	}
}

static void drop_undo(struct tfile *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->u[i].old);
	t->n = 0;
}

enum lose { LOSE_ALL, LOSE_SOME };

/* Puts the pack into a state power loss could leave, see the top. */
static void lose(struct tfile *t, enum lose how)
{
	uint64_t cur, lo, hi, rsize, x, len, tear_at = UINT64_MAX, cut = 0;
	uint8_t *c, *d, *r;
	struct stat st, now;
	size_t i;
	int mix = 0;

	if (fstat(t->fd, &st) < 0 || st.st_nlink == 0)
		return; /* removed: nothing to lose */
	if (how == LOSE_SOME && t->name_pending && rnd_below(2) &&
	    fstatat(t->dirfd, t->name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_dev == t->dev && now.st_ino == t->ino) {
		/* Its name never reached the disk. */
		unlinkat(t->dirfd, t->name, 0);
		return;
	}
	cur = (uint64_t)st.st_size;
	if (!t->n && cur == t->synced)
		return;
	lo = cur < t->synced ? cur : t->synced;
	hi = cur > t->synced ? cur : t->synced;
	for (i = 0; i < t->n; i++) {
		if (t->u[i].off < lo)
			lo = t->u[i].off;
		if (t->u[i].end > hi)
			hi = t->u[i].end;
		if (t->u[i].old_size > hi)
			hi = t->u[i].old_size;
	}
	len = hi - lo;
	c = calloc(1, len + 1);
	d = calloc(1, len + 1);
	r = calloc(1, len + 1);
	if (!c || !d || !r)
		die("out of memory");
	if (cur > lo && pread(t->fd, c, cur - lo, (off_t)lo) !=
	    (ssize_t)(cur - lo))
		die("cannot read a pack back: %s", strerror(errno));
	memcpy(d, c, len);
	for (i = t->n; i-- > 0;) {
		struct undo *u = &t->u[i];

		/* bytes past the old end did not exist before */
		x = u->old_size > u->off ? u->old_size : u->off;
		if (u->end > x)
			memset(d + (x - lo), 0, u->end - x);
		if (u->old_len)
			memcpy(d + (u->off - lo), u->old, u->old_len);
	}
	if (t->synced < hi)
		memset(d + (t->synced - lo), 0, hi - t->synced);

	if (how == LOSE_ALL) {
		rsize = t->synced;
		mix = 0; /* everything old */
	} else {
		switch (rnd_below(4)) {
		case 0:
			rsize = t->synced;
			break;
		case 1:
			rsize = cur;
			break;
		default:
			/* anywhere between the old end and the new */
			x = cur < t->synced ? cur : t->synced;
			rsize = x + rnd_below((cur > t->synced ? cur :
					       t->synced) - x + 1);
		}
		mix = (int)rnd_below(4); /* 0 old, 1 new, 2-3 a mix */
		if (rsize > lo && rnd_below(2)) {
			tear_at = lo + rnd_below(rsize - lo);
			cut = rnd_below(BLOCK);
		}
	}
	for (x = lo; x < rsize; x += BLOCK) {
		uint64_t bend = x + BLOCK < rsize ? x + BLOCK : rsize;
		bool fresh = mix == 1 || (mix >= 2 && rnd_below(2));

		memcpy(r + (x - lo), (fresh ? c : d) + (x - lo), bend - x);
		if (tear_at >= x && tear_at < bend) {
			/* a torn block: a prefix of new bytes */
			uint64_t k = x + cut < bend ? x + cut : bend;

			memcpy(r + (x - lo), c + (x - lo), k - x);
			memcpy(r + (k - lo), d + (k - lo), bend - k);
		}
	}
	if (rsize > lo && pwrite(t->fd, r, rsize - lo, (off_t)lo) !=
	    (ssize_t)(rsize - lo))
		die("cannot rewrite a pack: %s", strerror(errno));
	if (ftruncate(t->fd, (off_t)rsize) < 0)
		die("cannot cut a pack: %s", strerror(errno));
	free(c);
	free(d);
	free(r);
	drop_undo(t);
	t->synced = rsize;
}

__attribute__((noreturn))
static void crash(const char *where, uint64_t n)
{
	struct tfile *t;
	char msg[160];
	int len;

	for (t = files; t; t = t->next)
		lose(t, LOSE_SOME);
	len = snprintf(msg, sizeof(msg), "mreg io: simulated power loss "
		       "at %s %llu (seed %llu)\n", where,
		       (unsigned long long)n, (unsigned long long)seed);
	if (getenv("MREG_CRASH_VERBOSE") && len > 0)
		(void)!write(2, msg, (size_t)len);
	_exit(IO_CRASH_STATUS);
}

int io_openat(int dirfd, const char *name, int flags, mode_t mode,
	      enum io_kind kind)
{
	struct stat st;
	bool existed = true;
	int fd;

	if (kind != IO_PACK || !(flags & O_CREAT)) {
		fd = openat(dirfd, name, flags, mode);
		return fd < 0 ? -errno : fd;
	}
	pthread_mutex_lock(&mu);
	load();
	if (flags & O_EXCL)
		existed = false;
	else
		existed = fstatat(dirfd, name, &st, 0) == 0;
	fd = openat(dirfd, name, flags, mode);
	if (fd < 0) {
		fd = -errno;
	} else if (!find(fd)) {
		track(fd, dirfd, name, !existed);
	}
	pthread_mutex_unlock(&mu);
	return fd;
}

/* mu held: a write to a pack, tracked. */
static ssize_t pack_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	struct tfile *t = find(fd);
	ssize_t n;

	if (!t)
		t = track(fd, -1, NULL, false);
	save_undo(t, (uint64_t)off, (uint64_t)off + len);
	n = pwrite(fd, buf, len, off);
	return n < 0 ? -errno : n;
}

ssize_t io_pwrite(int fd, const void *buf, size_t len, off_t off,
		  enum io_kind kind)
{
	ssize_t n;
	int r;

	pthread_mutex_lock(&mu);
	if (kind != IO_PACK) {
		r = hit(IO_FAULT_SPOOL_WRITE);
		pthread_mutex_unlock(&mu);
		if (r)
			return r;
		n = pwrite(fd, buf, len, off);
		return n < 0 ? -errno : n;
	}
	load();
	writes++;
	if (crash_write && writes == crash_write) {
		/* the write under way may land in part */
		pack_pwrite(fd, buf, (size_t)rnd_below(len + 1), off);
		crash("write", writes);
	}
	r = hit(IO_FAULT_PACK_WRITE);
	if (r) {
		/* a full disk takes part of the write, then refuses */
		if (len / 2)
			pack_pwrite(fd, buf, len / 2, off);
		pthread_mutex_unlock(&mu);
		return r;
	}
	n = pack_pwrite(fd, buf, len, off);
	pthread_mutex_unlock(&mu);
	return n;
}

int io_ftruncate(int fd, off_t len, enum io_kind kind)
{
	struct tfile *t;
	struct stat st;
	int r;

	pthread_mutex_lock(&mu);
	if (kind != IO_PACK) {
		r = hit(IO_FAULT_SPOOL_WRITE);
		pthread_mutex_unlock(&mu);
		if (r)
			return r;
		return ftruncate(fd, len) < 0 ? -errno : 0;
	}
	load();
	writes++;
	if (crash_write && writes == crash_write)
		crash("write", writes);
	t = find(fd);
	if (!t)
		t = track(fd, -1, NULL, false);
	if (fstat(fd, &st) < 0)
		die("cannot stat a pack: %s", strerror(errno));
	if ((uint64_t)len < (uint64_t)st.st_size)
		save_undo(t, (uint64_t)len, (uint64_t)st.st_size);
	else
		save_undo(t, (uint64_t)st.st_size, (uint64_t)len);
	r = ftruncate(fd, len) < 0 ? -errno : 0;
	pthread_mutex_unlock(&mu);
	return r;
}

static int do_sync(int fd, enum io_kind kind, bool data_only)
{
	struct tfile *t, **pp;
	struct stat st;
	int r;

	pthread_mutex_lock(&mu);
	load();
	syncs++;
	if (crash_sync && syncs == crash_sync)
		crash("sync", syncs);
	t = kind == IO_PACK ? find(fd) : NULL;
	r = hit(IO_FAULT_FSYNC);
	if (r) {
		/* What the failed writeback held is gone. */
		if (t)
			lose(t, LOSE_ALL);
		pthread_mutex_unlock(&mu);
		return r;
	}
	r = (data_only ? fdatasync(fd) : fsync(fd)) < 0 ? -errno : 0;
	if (r == 0 && t && fstat(t->fd, &st) == 0) {
		drop_undo(t);
		t->synced = (uint64_t)st.st_size;
	}
	if (r == 0 && kind == IO_DIR && fstat(fd, &st) == 0)
		for (t = files; t; t = t->next)
			if (t->name_pending && t->ddev == st.st_dev &&
			    t->dino == st.st_ino)
				t->name_pending = false;
	/* Forget packs that were removed. */
	pp = &files;
	while ((t = *pp)) {
		if (fstat(t->fd, &st) == 0 && st.st_nlink == 0) {
			*pp = t->next;
			tfile_free(t);
		} else {
			pp = &t->next;
		}
	}
	pthread_mutex_unlock(&mu);
	return r;
}

int io_fdatasync(int fd, enum io_kind kind)
{
	return do_sync(fd, kind, true);
}

int io_fsync(int fd, enum io_kind kind)
{
	return do_sync(fd, kind, false);
}

int io_fault(enum io_fault f)
{
	int r;

	if ((unsigned)f >= IO_FAULT_COUNT)
		return 0;
	pthread_mutex_lock(&mu);
	r = hit(f);
	pthread_mutex_unlock(&mu);
	return r;
}

static struct {
	void (*fn)(void *arg);
	void *arg;
} windows[IO_WINDOW_COUNT];

void io_window(enum io_window w)
{
	void (*fn)(void *arg) = NULL;
	void *arg = NULL;

	if ((unsigned)w >= IO_WINDOW_COUNT)
		return;
	pthread_mutex_lock(&mu);
	fn = windows[w].fn;
	arg = windows[w].arg;
	windows[w].fn = NULL;
	pthread_mutex_unlock(&mu);
	/* outside the mutex: what the test does there writes packs too */
	if (fn)
		fn(arg);
}

void io_window_hook(enum io_window w, void (*fn)(void *arg), void *arg)
{
	if ((unsigned)w >= IO_WINDOW_COUNT)
		return;
	pthread_mutex_lock(&mu);
	windows[w].fn = fn;
	windows[w].arg = arg;
	pthread_mutex_unlock(&mu);
}

void io_faults_reload(void)
{
	struct tfile *t;

	pthread_mutex_lock(&mu);
	while ((t = files)) {
		files = t->next;
		tfile_free(t);
	}
	loaded = false;
	narmed = 0;
	memset(events, 0, sizeof(events));
	syncs = writes = 0;
	load();
	pthread_mutex_unlock(&mu);
}

void io_stats(uint64_t *ret_syncs, uint64_t *ret_writes)
{
	pthread_mutex_lock(&mu);
	if (ret_syncs)
		*ret_syncs = syncs;
	if (ret_writes)
		*ret_writes = writes;
	pthread_mutex_unlock(&mu);
}

#endif /* MREG_FAULTS */
