/* test-serve.c — the serving cache (core/serve/serve.h) against an in-memory
 * source: when a file turns hot, hydration and its digest check, serving
 * a copy, LRU eviction that skips held copies, no room, removal of a
 * version with a copy held (and its bytes counted until let go), copies
 * removed or damaged behind the cache's back, adoption at reopen, one
 * owner per directory, fsck, the sweep, and the metrics.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "chunk/chunkid.h"
#include "log.h"
#include "serve/serve.h"
#include "strbuf.h"

#define NFILES 8
#define FSIZE (300u << 10)      /* not a multiple of the 1 MiB block */

struct file {
	uint64_t ino, version;
	uint8_t *data;
	size_t size;
};

static struct file files[NFILES];
static bool lie;                /* the source returns other bytes */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_closed;        /* hydration waits at open */
static int opened;              /* source opens */

static struct file *file_of(uint64_t ino)
{
	size_t i;

	for (i = 0; i < NFILES; i++)
		if (files[i].ino == ino)
			return &files[i];
	return NULL;
}

static int src_open(void *arg, const struct serve_key *key, void **ret)
{
	struct file *f = file_of(key->ino);

	(void)arg;
	pthread_mutex_lock(&gate_lock);
	opened++;
	while (gate_closed)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
	if (!f)
		return -ENOENT;
	*ret = f;
	return 0;
}

static ssize_t src_read(void *h, void *buf, size_t size, uint64_t off)
{
	struct file *f = h;

	if (off >= f->size)
		return 0;
	if (size > f->size - off)
		size = f->size - off;
	memcpy(buf, f->data + off, size);
	if (lie)
		((uint8_t *)buf)[0] ^= 1;
	return (ssize_t)size;
}

static void src_close(void *h)
{
	(void)h;
}

static void gate(bool closed)
{
	pthread_mutex_lock(&gate_lock);
	gate_closed = closed;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

static void key_of(const struct file *f, struct serve_key *k)
{
	k->ino = f->ino;
	k->version = f->version;
	k->size = f->size;
	chunkid_of(f->data, f->size, &k->digest);
}

static void make_files(void)
{
	size_t i, j;

	for (i = 0; i < NFILES; i++) {
		files[i].ino = 100 + i;
		files[i].version = 10 + i / 2;  /* two files a version */
		files[i].size = FSIZE + i;
		files[i].data = malloc(files[i].size);
		if (!files[i].data)
			abort();
		for (j = 0; j < files[i].size; j++)
			files[i].data[j] = (uint8_t)(j * 7 + i * 13 + (j >> 9));
	}
}

/* The digest of a whole file is XXH3-128 of its bytes: chunkid_of() of
 * the whole buffer gives the same as the streaming digest. */
static void check_digest_matches_stream(void)
{
	struct digest_state ds;
	struct mreg_id a, b;

	chunkid_of(files[0].data, files[0].size, &a);
	digest_init(&ds);
	digest_update(&ds, files[0].data, 1000);
	digest_update(&ds, files[0].data + 1000, files[0].size - 1000);
	digest_final(&ds, &b);
	CHECK(chunkid_eq(&a, &b), "a file's digest is the XXH3-128 of its "
	      "bytes, streamed or not");
}

static struct serve_cache *open_cache(const char *dir, uint64_t capacity)
{
	struct serve_params p = {
		.dir = dir,
		.capacity = capacity,
		.source = { src_open, src_read, src_close, NULL },
	};
	struct serve_cache *c = NULL;
	int r = serve_open(&p, &c);

	if (r < 0)
		printf("#   serve_open: %s\n", strerror(-r));
	return c;
}

/* Waits until key's hydration is over; its state. */
static enum serve_state settle(struct serve_cache *c,
			       const struct serve_key *k)
{
	enum serve_state s = SERVE_PENDING;
	int i;

	for (i = 0; i < 1000; i++) {
		s = serve_hydrate(c, k);
		if (s != SERVE_PENDING)
			break;
		usleep(10000);
	}
	return s;
}

static bool copy_exists(const char *dir, const struct serve_key *k)
{
	char path[512], hex[MREG_ID_HEX];

	snprintf(path, sizeof(path), "%s/%" PRIu64 "-%" PRIu64 "-%s", dir,
		 k->version, k->ino, chunkid_hex(&k->digest, hex));
	return access(path, F_OK) == 0;
}

static uint64_t metric(struct serve_cache *c, const char *name)
{
	struct strbuf sb;
	const char *p;
	uint64_t v = UINT64_MAX;
	char pat[160];

	strbuf_init(&sb);
	serve_metrics(c, &sb);
	snprintf(pat, sizeof(pat), "\n%s ", name);
	p = strstr(sb.buf, pat);
	if (p)
		v = strtoull(p + strlen(pat), NULL, 10);
	strbuf_release(&sb);
	return v;
}

/* Whether fd holds exactly f's bytes. */
static bool fd_holds(int fd, const struct file *f)
{
	uint8_t *buf = malloc(f->size + 1);
	ssize_t n;
	bool ok;

	if (!buf)
		abort();
	n = pread(fd, buf, f->size + 1, 0);
	ok = n == (ssize_t)f->size && !memcmp(buf, f->data, f->size);
	free(buf);
	return ok;
}

static void test_hot_and_serve(const char *dir)
{
	struct serve_cache *c = open_cache(dir, 64u << 20), *c2 = NULL;
	struct serve_params p = { .dir = dir, .capacity = 1 };
	struct serve_copy *copy = NULL;
	struct serve_key k0, k1, k2;
	struct stat st;
	int fd;

	CHECK(c != NULL, "a cache opens on a new directory");
	if (!c)
		return;
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700,
	      "its directory is 0700");
	p.source = (struct serve_source){ src_open, src_read, src_close, 0 };
	CHECK_EQ(serve_open(&p, &c2), -EBUSY,
		 "a second owner of the directory is refused");

	key_of(&files[0], &k0);
	key_of(&files[1], &k1);
	key_of(&files[2], &k2);
	CHECK_EQ(serve_get(c, &k0, &copy), -ENOENT, "no copy at first");
	serve_note_open(c, &k0, false);
	serve_note_open(c, &k0, false);
	usleep(50000);
	CHECK_EQ(serve_get(c, &k0, &copy), -ENOENT,
		 "two opens do not make a file hot");
	serve_note_open(c, &k0, false);
	CHECK_EQ(settle(c, &k0), SERVE_READY, "the third open makes it hot, "
		 "and it is hydrated");
	fd = serve_get(c, &k0, &copy);
	CHECK(fd >= 0, "serve_get gives its copy");
	if (fd >= 0) {
		CHECK(fd_holds(fd, &files[0]), "the copy holds the file's "
		      "bytes, no more, no less");
		CHECK(fstat(fd, &st) == 0 && (st.st_mode & 0777) == 0400,
		      "the copy is read-only");
		close(fd);
		serve_put(c, copy);
	}

	serve_note_open(c, &k1, true);
	CHECK_EQ(settle(c, &k1), SERVE_READY,
		 "a file of a staged version is hot at its first open");

	serve_note_open(c, &k2, false);
	serve_note_read(c, k2.ino, k2.size - 1);
	usleep(50000);
	CHECK_EQ(serve_get(c, &k2, &copy), -ENOENT, "not read in full: cold");
	serve_note_read(c, k2.ino, 1);
	CHECK_EQ(settle(c, &k2), SERVE_READY, "read in full: hydrated");
	CHECK_EQ(metric(c, "mreg_serve_files"), 3, "three copies");
	CHECK_EQ(metric(c, "mreg_serve_hydrated_bytes_total"),
		 k0.size + k1.size + k2.size, "their bytes are counted");
	CHECK_EQ(metric(c, "mreg_serve_daemon_reads_total"), 2,
		 "reads the daemon answered are counted");
	serve_close(c);
}

static void test_digest_mismatch(const char *dir)
{
	struct serve_cache *c = open_cache(dir, 64u << 20);
	struct serve_copy *copy;
	struct serve_key k;

	if (!c)
		return;
	key_of(&files[3], &k);
	lie = true;
	CHECK_EQ(settle(c, &k), SERVE_FAILED,
		 "a copy whose bytes do not hash to the digest is refused");
	lie = false;
	CHECK_EQ(serve_get(c, &k, &copy), -ENOENT, "and not served");
	CHECK(!copy_exists(dir, &k), "nor left in the directory");
	CHECK_EQ(metric(c, "mreg_serve_hydrations_total{result=\"failed\"}"),
		 1, "counted as failed");
	CHECK_EQ(serve_hydrate(c, &k), SERVE_FAILED,
		 "and not tried again at once");
	serve_close(c);
}

static void test_eviction(const char *dir)
{
	/* room for three copies (of the four first files, sizes ~ FSIZE) */
	struct serve_cache *c = open_cache(dir, 3 * FSIZE + 100);
	struct serve_copy *held;
	struct serve_key k[5];
	int i, fd;

	if (!c)
		return;
	for (i = 0; i < 5; i++)
		key_of(&files[i], &k[i]);
	/* the cache kept what test_hot_and_serve made (0, 1, 2): adopted,
	   oldest first */
	CHECK_EQ(metric(c, "mreg_serve_files"), 3, "copies are adopted "
		 "at reopen");
	fd = serve_get(c, &k[0], &held);        /* 0: held ... */
	CHECK(fd >= 0, "a copy is held");
	if (fd >= 0)
		close(fd);
	for (i = 1; i <= 2; i++) {              /* ... and least recently used */
		struct serve_copy *x;

		if ((fd = serve_get(c, &k[i], &x)) >= 0) {
			close(fd);
			serve_put(c, x);
		}
	}
	CHECK_EQ(settle(c, &k[4]), SERVE_READY,
		 "a new copy fits after an eviction");
	CHECK(copy_exists(dir, &k[0]), "the held copy was not evicted, "
	      "although least recently used");
	CHECK(!copy_exists(dir, &k[1]), "the least recently used idle one "
	      "was");
	CHECK(copy_exists(dir, &k[2]) && copy_exists(dir, &k[4]),
	      "the others stay");
	CHECK_EQ(metric(c, "mreg_serve_evictions_total"), 1, "one eviction");

	/* hold every copy: no room for another */
	{
		struct serve_copy *h2 = NULL, *h4 = NULL;

		if ((fd = serve_get(c, &k[2], &h2)) >= 0)
			close(fd);
		if ((fd = serve_get(c, &k[4], &h4)) >= 0)
			close(fd);
		CHECK_EQ(settle(c, &k[1]), SERVE_NO_ROOM,
			 "no room when every copy is held");
		CHECK_EQ(metric(c, "mreg_serve_hydrations_total{result="
				"\"no_room\"}"), 1, "counted as no room");
		serve_put(c, h2);
		serve_put(c, h4);
		serve_put(c, held);
	}
	CHECK_EQ(settle(c, &k[1]), SERVE_READY,
		 "once let go, room is made again");
	serve_close(c);
}

static void test_removal(const char *dir)
{
	struct serve_cache *c = open_cache(dir, 64u << 20);
	struct serve_copy *held;
	struct serve_key k0, k1, k4;
	uint64_t before;
	int fd;

	if (!c)
		return;
	key_of(&files[0], &k0);  /* version 10 */
	key_of(&files[1], &k1);  /* version 10 */
	key_of(&files[4], &k4);  /* version 12 */
	CHECK_EQ(settle(c, &k0), SERVE_READY, "copy of version 10, file 0");
	CHECK_EQ(settle(c, &k1), SERVE_READY, "copy of version 10, file 1");
	before = metric(c, "mreg_serve_bytes");
	fd = serve_get(c, &k0, &held);
	CHECK(fd >= 0, "one of them is held (open)");
	serve_drop_version(c, 10);
	CHECK(!copy_exists(dir, &k0) && !copy_exists(dir, &k1),
	      "removing the version unlinks both copies");
	if (fd >= 0) {
		CHECK(fd_holds(fd, &files[0]), "the open copy still reads "
		      "whole after its unlink");
		close(fd);
	}
	CHECK_EQ(metric(c, "mreg_serve_bytes"), before - k1.size,
		 "the held copy's bytes stay counted (its disk space is "
		 "not free yet)");
	CHECK_EQ(serve_get(c, &k0, &held) == -ENOENT ? 1 : 0, 1,
		 "a removed copy is not served again");
	serve_put(c, held);
	CHECK_EQ(metric(c, "mreg_serve_bytes"), before - k1.size - k0.size,
		 "its bytes go with its last holder");

	/* removed or damaged behind the cache's back */
	CHECK_EQ(settle(c, &k4), SERVE_READY, "another copy");
	{
		char path[512], hex[MREG_ID_HEX];

		snprintf(path, sizeof(path), "%s/%" PRIu64 "-%" PRIu64 "-%s",
			 dir, k4.version, k4.ino,
			 chunkid_hex(&k4.digest, hex));
		CHECK(truncate(path, 100) == 0, "truncated behind its back");
		CHECK_EQ(serve_get(c, &k4, &held), -EIO,
			 "a copy of the wrong size is refused");
		CHECK(!copy_exists(dir, &k4), "and dropped");
		CHECK_EQ(settle(c, &k4), SERVE_READY, "and made again");
		CHECK(unlink(path) == 0, "removed behind its back");
		CHECK_EQ(serve_get(c, &k4, &held), -ENOENT,
			 "a vanished copy is forgotten");
	}
	serve_close(c);
}

static bool alive_none_of_6(void *arg, const struct serve_key *k)
{
	(void)arg;
	return k->ino != files[6].ino;
}

static void test_sweep_and_off(const char *dir)
{
	struct serve_cache *c = open_cache(dir, 64u << 20);
	struct serve_copy *copy;
	struct serve_key k5, k6;

	if (!c)
		return;
	key_of(&files[5], &k5);
	key_of(&files[6], &k6);
	CHECK_EQ(settle(c, &k5), SERVE_READY, "copy of file 5");
	CHECK_EQ(settle(c, &k6), SERVE_READY, "copy of file 6");
	serve_sweep(c, alive_none_of_6, NULL);
	CHECK(!copy_exists(dir, &k6) && copy_exists(dir, &k5),
	      "the sweep drops only the copies of files gone");

	gate(true);
	{
		struct serve_key k7;

		key_of(&files[7], &k7);
		CHECK_EQ(serve_hydrate(c, &k7), SERVE_PENDING, "queued");
		usleep(50000);
		CHECK_EQ(serve_get(c, &k7, &copy), -EINPROGRESS,
			 "while it is made, serve_get says so");
		serve_set_off(c, SERVE_FALLBACK_PRIVILEGE);
		gate(false);
		CHECK_EQ(settle(c, &k7), SERVE_OFF, "turned off: no copies");
		CHECK(!copy_exists(dir, &k7), "the one being made is "
		      "abandoned");
		CHECK_EQ(metric(c, "mreg_serve_passthrough{state="
				"\"privilege\"}"), 0,
			 "the metrics say why it is off");
	}
	serve_close(c);
}

struct bad_arg {
	int n;
	uint64_t ino;
};

static void on_bad(void *arg, const struct serve_key *key, const char *why)
{
	struct bad_arg *a = arg;

	a->n++;
	a->ino = key->ino;
	printf("#   fsck: inode %" PRIu64 ": %s\n", key->ino, why);
}

static void test_fsck(const char *dir)
{
	struct bad_arg a = { 0 };
	struct serve_key k5;
	char path[512], hex[MREG_ID_HEX];
	uint64_t files_n, bytes;
	int fd, tmpfd;
	uint8_t b;

	key_of(&files[5], &k5);
	CHECK_EQ(serve_fsck(dir, on_bad, &a), 0, "fsck of sound copies: "
		 "nothing to say");
	snprintf(path, sizeof(path), "%s/%" PRIu64 "-%" PRIu64 "-%s", dir,
		 k5.version, k5.ino, chunkid_hex(&k5.digest, hex));
	fd = open(path, O_RDWR);
	CHECK(fd >= 0, "a copy is opened to damage it");
	if (fd < 0)
		return;
	CHECK(pread(fd, &b, 1, 4097) == 1, "a byte read");
	b ^= 0x40;
	CHECK(pwrite(fd, &b, 1, 4097) == 1, "and flipped");
	close(fd);
	CHECK_EQ(serve_fsck(dir, on_bad, &a), 1, "fsck finds the damaged "
		 "copy");
	CHECK(a.n == 1 && a.ino == k5.ino, "and names its inode");
	CHECK(access(path, F_OK) != 0, "and drops it");
	CHECK_EQ(serve_fsck(dir, on_bad, &a), 0, "then the cache is clean");

	/* a half-written copy of a killed run: removed at the next open */
	snprintf(path, sizeof(path), "%s/.tmp-999-1", dir);
	tmpfd = open(path, O_WRONLY | O_CREAT, 0400);
	if (tmpfd >= 0)
		close(tmpfd);
	{
		struct serve_cache *c = open_cache(dir, 64u << 20);

		CHECK(access(path, F_OK) != 0, "a half-written copy is "
		      "removed when the cache opens");
		serve_close(c);
	}
	CHECK_EQ(serve_usage(dir, &files_n, &bytes), 0, "usage");
	CHECK(files_n >= 1 && bytes >= FSIZE, "usage counts the copies");
	CHECK_EQ(serve_fsck("/nonexistent/serve", on_bad, &a), 0,
		 "no directory: nothing to check");
}

static void test_counting_only(void)
{
	struct serve_params p = { 0 };
	struct serve_cache *c = NULL;
	struct serve_copy *copy;
	struct serve_key k;

	key_of(&files[0], &k);
	CHECK_EQ(serve_open(&p, &c), 0, "a cache without a directory opens");
	CHECK_EQ(serve_off(c), SERVE_FALLBACK_DISABLED, "and is off");
	CHECK_EQ(serve_hydrate(c, &k), SERVE_OFF, "it makes no copy");
	CHECK_EQ(serve_get(c, &k, &copy), -ENOENT, "and serves none");
	serve_count_open(c, SERVE_FALLBACK_DISABLED);
	CHECK_EQ(metric(c, "mreg_serve_opens_total{mode=\"fallback\","
			"reason=\"disabled\"}"), 1, "but counts opens");
	serve_close(c);
}

int main(void)
{
	char *top = check_tmpdir("serve"), *dir;

	log_set_level(LOG_LVL_ERROR);
	if (asprintf(&dir, "%s/serve", top) < 0)
		abort();
	make_files();
	check_digest_matches_stream();
	test_hot_and_serve(dir);
	test_digest_mismatch(dir);
	test_eviction(dir);
	test_removal(dir);
	test_sweep_and_off(dir);
	test_fsck(dir);
	test_counting_only();
	check_rmtree(top);
	free(dir);
	free(top);
	return check_done();
}
