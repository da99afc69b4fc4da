/* test-index.c — the index's contract: get/put/del and their errors, scans
 * and idx_last() at the edges of a prefix, iterators against a model of
 * the keys, callbacks that abort, the map growing under writers and
 * readers (in this process and in another), a full disk, a file that is
 * not an index, and stale reader slots; and what index.c decides for
 * every backend (arguments, nesting, read-only, keys given back), over a
 * backend of the test's own. Every test opens and closes its own
 * environment (one per process). */
#include "index/index.h"
#include "index/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "util.h"

#define KIB 1024ull
#define MIB (1024ull * 1024)

static char *top;

static char *subdir(const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", top, name) < 0)
		abort();
	return p;
}

/* The options of an index in dir, with sync on. */
#define AT(dir) (&(struct idx_options){ .path = (dir), .sync = true })

static struct idx_db *open_at(const char *dir, uint64_t map_size,
				  bool sync)
{
	struct idx_options o = { .path = dir, .map_size = map_size,
				 .sync = sync };
	struct idx_db *ix = NULL;
	int r = idx_open(&o, &ix);

	if (r < 0) {
		printf("# idx_open('%s'): %s\n", dir, strerror(-r));
		return NULL;
	}
	return ix;
}

/* idx_stats() as two numbers: bytes used, bytes of the map. */
static int stats(struct idx_db *ix, uint64_t *used, uint64_t *map)
{
	struct idx_stats st;
	int r = idx_stats(ix, &st);

	if (r == 0) {
		*used = st.bytes_used;
		*map = st.bytes_alloc;
	}
	return r;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The value stored under number i: n pseudo-random bytes seeded by i. */
static void fill(unsigned char *p, size_t n, uint64_t i)
{
	uint64_t s = i * 7919 + 1, v;
	size_t k;

	for (k = 0; k < n; k += 8) {
		v = splitmix64(&s);
		memcpy(p + k, &v, n - k < 8 ? n - k : 8);
	}
}

/* ---- a small key/value language for the callbacks ---------------------- */

struct kv {
	const char *key;
	const char *val;
};

struct put_arg {
	const struct kv *kv;
	size_t n;
	unsigned flags;
	int fail_with;          /* returned after the puts when nonzero */
};

static int put_all(struct idx_txn *t, void *arg)
{
	struct put_arg *a = arg;
	size_t i;
	int r;

	for (i = 0; i < a->n; i++) {
		r = idx_put(t, IDX_NAMES, a->kv[i].key, strlen(a->kv[i].key),
			    a->kv[i].val, strlen(a->kv[i].val), a->flags);
		if (r < 0)
			return r;
	}
	return a->fail_with;
}

struct get_arg {
	const char *key;
	size_t klen;
	char val[256];
	int writable;
};

static int get_one(struct idx_txn *t, void *arg)
{
	struct get_arg *a = arg;
	struct idx_val v;
	int r;

	a->writable = idx_writable(t);
	r = idx_get(t, IDX_NAMES, a->key, a->klen ? a->klen : strlen(a->key),
		    &v);
	if (r < 0)
		return r;
	if (v.len >= sizeof(a->val))
		return -E2BIG;
	memcpy(a->val, v.data, v.len);
	a->val[v.len] = '\0';
	return 0;
}

static int get_str_txn(struct idx_db *ix, const char *key, char *out)
{
	struct get_arg a = { .key = key };
	int r = idx_read(ix, get_one, &a);

	if (r == 0 && out)
		strcpy(out, a.val);
	return r;
}

static int del_one(struct idx_txn *t, void *arg)
{
	return idx_del(t, IDX_NAMES, arg, strlen(arg));
}

static int put_in_read(struct idx_txn *t, void *arg)
{
	(void)arg;
	return idx_put(t, IDX_NAMES, "k", 1, "v", 1, 0);
}

static int del_in_read(struct idx_txn *t, void *arg)
{
	(void)arg;
	return idx_del(t, IDX_NAMES, "k", 1);
}

static int bad_keys(struct idx_txn *t, void *arg)
{
	static char big[IDX_KEY_MAX + 1];
	struct idx_val v;
	int *res = arg;

	memset(big, 'k', sizeof(big));
	res[0] = idx_put(t, IDX_NAMES, big, sizeof(big), "v", 1, 0);
	res[1] = idx_put(t, IDX_NAMES, big, IDX_KEY_MAX, "v", 1, 0);
	res[2] = idx_get(t, IDX_NAMES, big, sizeof(big), &v);
	res[3] = idx_put(t, IDX_NAMES, "", 0, "v", 1, 0);
	res[4] = idx_put(t, IDX_TABLES, "k", 1, "v", 1, 0);
	res[5] = idx_del(t, IDX_NAMES, big, sizeof(big));
	res[6] = idx_put(t, IDX_NAMES, "empty", 5, NULL, 0, 0);
	return 0;
}

struct count_arg {
	enum idx_table tb;
	uint64_t n;
};

static int count_one(struct idx_txn *t, void *arg)
{
	struct count_arg *a = arg;

	return idx_count(t, a->tb, &a->n);
}

static uint64_t count(struct idx_db *ix, enum idx_table tb)
{
	struct count_arg a = { .tb = tb };

	if (idx_read(ix, count_one, &a) < 0)
		return UINT64_MAX;
	return a.n;
}

static int nested_read(struct idx_txn *t, void *arg)
{
	(void)t;
	return idx_read(arg, get_one, &(struct get_arg){ .key = "a" });
}

static int nested_write(struct idx_txn *t, void *arg)
{
	(void)t;
	return idx_write(arg, put_in_read, NULL);
}

static void test_basic(void)
{
	char *dir = subdir("basic");
	struct idx_db *ix = open_at(dir, 0, true), *ix2 = NULL;
	const struct kv kv[] = { { "a", "1" }, { "b", "2" }, { "c", "3" } };
	const struct kv kv2[] = { { "a", "x" } };
	struct get_arg ga = { .key = "a" };
	char val[256], key_b[] = "b";
	int res[7], r;
	struct stat st;

	CHECK(ix, "index opens in a new directory");
	if (!ix)
		return;
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700,
	      "index directory has mode 0700");
	CHECK(idx_open(AT(dir), &ix2) == -EBUSY && !ix2,
	      "a second open in the same process is -EBUSY");
	CHECK_EQ(idx_write(ix, put_all, &(struct put_arg){ kv, 3, 0, 0 }),
		 0, "three puts commit");
	CHECK(get_str_txn(ix, "b", val) == 0 && strcmp(val, "2") == 0,
	      "get returns the value put");
	CHECK_EQ(get_str_txn(ix, "zz", NULL), -ENOENT,
		 "missing key is -ENOENT");
	CHECK_EQ(idx_write(ix, put_all, &(struct put_arg){ kv2, 1,
					IDX_NOOVERWRITE, 0 }), -EEXIST,
		 "IDX_NOOVERWRITE on an existing key is -EEXIST");
	CHECK(get_str_txn(ix, "a", val) == 0 && strcmp(val, "1") == 0,
	      "the refused put left the old value");
	CHECK_EQ(idx_write(ix, put_all, &(struct put_arg){ kv2, 1, 0, 0 }),
		 0, "a plain put overwrites");
	CHECK(get_str_txn(ix, "a", val) == 0 && strcmp(val, "x") == 0,
	      "get sees the overwritten value");
	CHECK_EQ(idx_write(ix, del_one, key_b), 0, "del of a key");
	CHECK_EQ(get_str_txn(ix, "b", NULL), -ENOENT, "deleted key is gone");
	CHECK_EQ(idx_write(ix, del_one, key_b), -ENOENT,
		 "del of a missing key is -ENOENT");
	CHECK_EQ(idx_read(ix, put_in_read, NULL), -EACCES,
		 "put in a read transaction is -EACCES");
	CHECK_EQ(idx_read(ix, del_in_read, NULL), -EACCES,
		 "del in a read transaction is -EACCES");
	CHECK(idx_read(ix, get_one, &ga) == 0 && !ga.writable,
	      "a read transaction is not writable");
	ga.writable = 0;
	CHECK(idx_write(ix, get_one, &ga) == 0 && ga.writable,
	      "a write transaction is writable");
	CHECK_EQ(idx_write(ix, bad_keys, res), 0,
		 "bad keys leave the transaction usable");
	CHECK_EQ(res[0], -EINVAL, "a key of IDX_KEY_MAX+1 bytes is -EINVAL");
	CHECK_EQ(res[1], 0, "a key of IDX_KEY_MAX bytes is stored");
	CHECK_EQ(res[2], -EINVAL, "get with a key too long is -EINVAL");
	CHECK_EQ(res[3], -EINVAL, "an empty key is -EINVAL");
	CHECK_EQ(res[4], -EINVAL, "an unknown table is -EINVAL");
	CHECK_EQ(res[5], -EINVAL, "del with a key too long is -EINVAL");
	CHECK_EQ(res[6], 0, "an empty value is stored");
	CHECK_EQ(count(ix, IDX_NAMES), 4, "count sees a, c, the long key, "
		 "the empty value and nothing else");
	CHECK_EQ(count(ix, IDX_AUDIT), 0, "count of an empty table is 0");
	r = idx_read(ix, nested_read, ix);
	CHECK_EQ(r, -EDEADLK, "idx_read inside idx_read is -EDEADLK");
	r = idx_read(ix, nested_write, ix);
	CHECK_EQ(r, -EDEADLK, "idx_write inside idx_read is -EDEADLK");
	CHECK_EQ(idx_write(ix, put_all, &(struct put_arg){ kv, 3, 0, 0 }),
		 0, "writes still work after the refused nesting");
	idx_close(ix);

	/* The values are on disk: a new open in read-only mode sees them. */
	{
		struct idx_options o = { .path = dir, .read_only = true };

		ix = NULL;
		r = idx_open(&o, &ix);
		CHECK_EQ(r, 0, "read-only open of an existing index");
		if (ix) {
			CHECK(get_str_txn(ix, "c", val) == 0 &&
			      strcmp(val, "3") == 0,
			      "read-only open sees committed values");
			CHECK_EQ(idx_write(ix, put_all, &(struct put_arg){
					kv, 3, 0, 0 }), -EROFS,
				 "idx_write on a read-only index is "
				 "-EROFS");
			idx_close(ix);
		}
	}
	free(dir);
}

/* ---- a callback that fails aborts ------------------------------------- */

static void test_abort(void)
{
	char *dir = subdir("abort");
	struct idx_db *ix = open_at(dir, 0, true);
	const struct kv kv[] = { { "p", "1" }, { "q", "2" } };

	CHECK(ix, "open for the abort test");
	if (!ix)
		return;
	CHECK_EQ(idx_write(ix, put_all, &(struct put_arg){ kv, 2, 0,
					-ECANCELED }), -ECANCELED,
		 "idx_write returns the callback's error");
	CHECK_EQ(get_str_txn(ix, "p", NULL), -ENOENT,
		 "nothing of an aborted transaction was written");
	CHECK_EQ(count(ix, IDX_NAMES), 0, "the table is still empty");
	CHECK_EQ(idx_write(ix, put_all, &(struct put_arg){ kv, 2, 0, 7 }),
		 7, "a positive return value commits and is returned");
	CHECK_EQ(count(ix, IDX_NAMES), 2, "both puts committed");
	idx_close(ix);
	free(dir);
}

/* ---- scans ------------------------------------------------------------ */

struct scan_arg {
	const void *prefix;
	size_t plen;
	const void *start;
	size_t slen;
	int stop_after;         /* stop with 42 after this many keys */
	int n;
	char seen[16][32];
};

static int collect(void *arg, const struct idx_val *k,
		   const struct idx_val *v)
{
	struct scan_arg *a = arg;

	(void)v;
	if (a->n < 16 && k->len < 32) {
		memcpy(a->seen[a->n], k->data, k->len);
		a->seen[a->n][k->len] = '\0';
	}
	a->n++;
	if (a->stop_after && a->n == a->stop_after)
		return 42;
	return 0;
}

static int scan_cb(struct idx_txn *t, void *arg)
{
	struct scan_arg *a = arg;

	return idx_scan(t, IDX_NAMES, a->prefix, a->plen, a->start, a->slen,
			collect, a);
}

/* Scans and returns the keys seen, joined by spaces, in a static buffer;
 * the scan's return value goes to *ret. */
static const char *scan(struct idx_db *ix, const char *prefix,
			const char *start, int stop_after, int *ret)
{
	static char out[512];
	struct scan_arg a = {
		.prefix = prefix, .plen = prefix ? strlen(prefix) : 0,
		.start = start, .slen = start ? strlen(start) : 0,
		.stop_after = stop_after,
	};
	int i;

	*ret = idx_read(ix, scan_cb, &a);
	out[0] = '\0';
	for (i = 0; i < a.n && i < 16; i++) {
		if (i)
			strcat(out, " ");
		strcat(out, a.seen[i]);
	}
	return out;
}

struct last_arg {
	const void *prefix;
	size_t plen;
	char key[32];
	char val[32];
};

static int last_cb(struct idx_txn *t, void *arg)
{
	struct last_arg *a = arg;
	struct idx_val k, v;
	int r;

	r = idx_last(t, IDX_NAMES, a->prefix, a->plen, &k, &v);
	if (r < 0)
		return r;
	memcpy(a->key, k.data, k.len < 31 ? k.len : 31);
	a->key[k.len < 31 ? k.len : 31] = '\0';
	memcpy(a->val, v.data, v.len < 31 ? v.len : 31);
	a->val[v.len < 31 ? v.len : 31] = '\0';
	return 0;
}

static int last(struct idx_db *ix, const char *prefix, size_t plen,
		char *key)
{
	struct last_arg a = { .prefix = prefix, .plen = plen };
	int r = idx_read(ix, last_cb, &a);

	if (r == 0)
		strcpy(key, a.key);
	return r;
}

static void test_scan(void)
{
	char *dir = subdir("scan");
	struct idx_db *ix = open_at(dir, 0, false);
	const struct kv kv[] = {
		{ "a/3", "3" }, { "a/1", "1" }, { "b/1", "b" }, { "a/2", "2" },
		{ "a", "root" }, { "ab", "ab" }, { "a/\xff\x01", "ff1" },
		{ "\xff\x01", "f1" }, { "\xff\xff\x02", "ff2" },
		{ "0", "zero" },
	};
	char key[64];
	const char *s;
	int r;

	CHECK(ix, "open for the scan test");
	if (!ix)
		return;
	CHECK_EQ(idx_write(ix, put_all, &(struct put_arg){ kv, 10, 0, 0 }),
		 0, "scan fixture written");

	s = scan(ix, "a/", NULL, 0, &r);
	CHECK(r == 0 && strcmp(s, "a/1 a/2 a/3 a/\xff\x01") == 0,
	      "scan of a prefix sees its keys in order: '%s'", s);
	s = scan(ix, "a/", "a/2", 0, &r);
	CHECK(r == 0 && strcmp(s, "a/2 a/3 a/\xff\x01") == 0,
	      "scan from a start key inside the prefix: '%s'", s);
	s = scan(ix, "a/", "a/25", 0, &r);
	CHECK(r == 0 && strcmp(s, "a/3 a/\xff\x01") == 0,
	      "scan from a start between keys: '%s'", s);
	s = scan(ix, "a/", "0", 0, &r);
	CHECK(r == 0 && strcmp(s, "a/1 a/2 a/3 a/\xff\x01") == 0,
	      "a start before the prefix begins at the prefix: '%s'", s);
	s = scan(ix, "a/", "b", 0, &r);
	CHECK(r == 0 && !*s, "a start after the prefix sees nothing");
	s = scan(ix, "a/", NULL, 2, &r);
	CHECK(r == 42 && strcmp(s, "a/1 a/2") == 0,
	      "the callback's stop value is returned: %d '%s'", r, s);
	s = scan(ix, "c", NULL, 0, &r);
	CHECK(r == 0 && !*s, "a prefix with no keys sees nothing");
	s = scan(ix, NULL, NULL, 0, &r);
	CHECK(r == 0 && strcmp(s, "0 a a/1 a/2 a/3 a/\xff\x01 ab b/1 "
			       "\xff\x01 \xff\xff\x02") == 0,
	      "an empty prefix sees the whole table in order");
	s = scan(ix, NULL, "ab", 0, &r);
	CHECK(r == 0 && strcmp(s, "ab b/1 \xff\x01 \xff\xff\x02") == 0,
	      "an empty prefix with a start: '%s'", s);
	s = scan(ix, "\xff", NULL, 0, &r);
	CHECK(r == 0 && strcmp(s, "\xff\x01 \xff\xff\x02") == 0,
	      "a prefix of 0xff");

	CHECK(last(ix, "a/", 2, key) == 0 && strcmp(key, "a/\xff\x01") == 0,
	      "idx_last of a prefix");
	CHECK(last(ix, "a/1", 3, key) == 0 && strcmp(key, "a/1") == 0,
	      "idx_last when the prefix is a whole key");
	CHECK(last(ix, "a", 1, key) == 0 && strcmp(key, "ab") == 0,
	      "idx_last of a prefix of several groups");
	CHECK_EQ(last(ix, "a/25", 4, key), -ENOENT,
		 "idx_last with no key under the prefix is -ENOENT");
	CHECK_EQ(last(ix, "c", 1, key), -ENOENT,
		 "idx_last past every key is -ENOENT");
	CHECK_EQ(last(ix, "/", 1, key), -ENOENT,
		 "idx_last before the first matching key is -ENOENT");
	CHECK(last(ix, "0", 1, key) == 0 && strcmp(key, "0") == 0,
	      "idx_last of the first key of the table");
	CHECK(last(ix, "a/\xff", 3, key) == 0 &&
	      strcmp(key, "a/\xff\x01") == 0,
	      "idx_last of a prefix that ends in 0xff");
	CHECK(last(ix, "\xff", 1, key) == 0 &&
	      strcmp(key, "\xff\xff\x02") == 0,
	      "idx_last of the prefix 0xff");
	CHECK(last(ix, "\xff\xff", 2, key) == 0 &&
	      strcmp(key, "\xff\xff\x02") == 0,
	      "idx_last of the prefix 0xff 0xff");
	CHECK_EQ(last(ix, "\xff\xff\xff", 3, key), -ENOENT,
		 "idx_last of an all-0xff prefix with no key is -ENOENT");
	CHECK(last(ix, NULL, 0, key) == 0 &&
	      strcmp(key, "\xff\xff\x02") == 0,
	      "idx_last of the empty prefix is the last key");
	idx_close(ix);
	free(dir);
}

/* ---- map growth --------------------------------------------------------- */

#define GROW_VAL 4000
#define GROW_PER_TXN 128

struct grow_arg {
	uint64_t first, n;
};

static int grow_put(struct idx_txn *t, void *arg)
{
	struct grow_arg *a = arg;
	unsigned char key[8], val[GROW_VAL];
	uint64_t i;
	int r;

	for (i = a->first; i < a->first + a->n; i++) {
		be64_put(key, i);
		fill(val, sizeof(val), i);
		r = idx_put(t, IDX_EXTENTS, key, 8, val, sizeof(val), 0);
		if (r < 0)
			return r;
	}
	return 0;
}

struct verify_arg {
	uint64_t n, bad;
};

static int verify_one(void *arg, const struct idx_val *k,
		      const struct idx_val *v)
{
	struct verify_arg *a = arg;
	unsigned char want[GROW_VAL];

	fill(want, sizeof(want), be64_get(k->data));
	if (k->len != 8 || be64_get(k->data) != a->n || v->len != GROW_VAL ||
	    memcmp(v->data, want, GROW_VAL) != 0)
		a->bad++;
	a->n++;
	return 0;
}

static int verify_all(struct idx_txn *t, void *arg)
{
	return idx_scan(t, IDX_EXTENTS, NULL, 0, NULL, 0, verify_one, arg);
}

static void test_growth(void)
{
	char *dir = subdir("growth");
	struct idx_db *ix = open_at(dir, 256 * KIB, false);
	uint64_t total = 50 * MIB / GROW_VAL + 1, i, used = 0, map = 0;
	struct verify_arg va = { 0 };
	int r = 0;

	CHECK(ix, "open with a 256 KiB map");
	if (!ix)
		return;
	CHECK(stats(ix, &used, &map) == 0 && map == 256 * KIB,
	      "the map starts at 256 KiB (%llu)", (unsigned long long)map);
	for (i = 0; i < total && r == 0; i += GROW_PER_TXN)
		r = idx_write(ix, grow_put, &(struct grow_arg){ i,
				total - i < GROW_PER_TXN ? total - i :
				GROW_PER_TXN });
	CHECK_EQ(r, 0, "50 MiB of values written through a 256 KiB map");
	CHECK(idx_read(ix, verify_all, &va) == 0 && va.n == total &&
	      va.bad == 0, "every value reads back (%llu of %llu, %llu bad)",
	      (unsigned long long)va.n, (unsigned long long)total,
	      (unsigned long long)va.bad);
	CHECK(stats(ix, &used, &map) == 0 && map > 50 * MIB &&
	      used >= 50 * MIB && used <= map,
	      "idx_stats: the map grew (%llu MiB used of %llu MiB)",
	      (unsigned long long)(used / MIB),
	      (unsigned long long)(map / MIB));
	idx_close(ix);

	/* Reopening with the same small option maps the whole file. */
	ix = open_at(dir, 256 * KIB, false);
	CHECK(ix && stats(ix, &used, &map) == 0 && map >= used &&
	      used >= 50 * MIB, "reopen with a small map_size maps the file");
	va = (struct verify_arg){ 0 };
	CHECK(ix && idx_read(ix, verify_all, &va) == 0 && va.n == total &&
	      va.bad == 0, "every value reads back after reopening");
	idx_close(ix);
	check_rmtree(dir);
	free(dir);
}

/* A callback that must run twice: the first run overflows the map. */
struct rerun_arg {
	int runs;               /* not reset: counts the runs */
	int puts;               /* reset at the start of every run */
	uint64_t counter_seen;
};

static int rerun_cb(struct idx_txn *t, void *arg)
{
	struct rerun_arg *a = arg;
	unsigned char key[8], c[8];
	static unsigned char big[512 * 1024];
	struct idx_val v;
	uint64_t n = 0;
	int i, r;

	a->runs++;
	a->puts = 0;
	r = idx_get(t, IDX_META, "counter", 7, &v);
	if (r == 0 && v.len == 8)
		n = be64_get(v.data);
	else if (r != -ENOENT)
		return r;
	a->counter_seen = n;
	be64_put(c, n + 1);
	if ((r = idx_put(t, IDX_META, "counter", 7, c, 8, 0)) < 0)
		return r;
	for (i = 0; i < 4; i++) {
		be64_put(key, (uint64_t)i);
		big[0] = (unsigned char)i;
		r = idx_put(t, IDX_CHUNKS, key, 8, big, sizeof(big), 0);
		if (r < 0)
			return r;
		a->puts++;
	}
	return 0;
}

static int careless_cb(struct idx_txn *t, void *arg)
{
	struct rerun_arg *a = arg;
	static unsigned char big[512 * 1024];
	unsigned char key[8];
	int i;

	a->runs++;
	a->puts = 0;
	for (i = 0; i < 4; i++) {
		be64_put(key, (uint64_t)i);
		if (idx_put(t, IDX_CHUNKS, key, 8, big, sizeof(big), 0) == 0)
			a->puts++;
	}
	return 0;
}

static int read_counter(struct idx_txn *t, void *arg)
{
	struct idx_val v;
	int r = idx_get(t, IDX_META, "counter", 7, &v);

	if (r < 0)
		return r;
	*(uint64_t *)arg = be64_get(v.data);
	return 0;
}

static void test_rerun(void)
{
	char *dir = subdir("rerun");
	struct idx_db *ix = open_at(dir, 256 * KIB, true);
	struct rerun_arg a = { 0 };
	uint64_t c = 0, used, map;

	CHECK(ix, "open for the rerun test");
	if (!ix)
		return;
	CHECK_EQ(idx_write(ix, rerun_cb, &a), 0,
		 "a 2 MiB transaction in a 256 KiB map commits");
	CHECK_EQ(a.runs, 2, "the callback ran twice (once more after growth)");
	CHECK(a.puts == 4 && a.counter_seen == 0,
	      "the second run started from a clean state");
	CHECK(idx_read(ix, read_counter, &c) == 0 && c == 1,
	      "the transaction committed exactly once (counter %llu)",
	      (unsigned long long)c);
	CHECK_EQ(count(ix, IDX_CHUNKS), 4, "its four values are there");
	a.runs = 0;
	CHECK(idx_write(ix, rerun_cb, &a) == 0 && a.runs == 1,
	      "the same transaction now fits in one run");
	CHECK(idx_read(ix, read_counter, &c) == 0 && c == 2,
	      "counter incremented once more");
	CHECK(stats(ix, &used, &map) == 0 && map >= 64 * MIB,
	      "growth added at least 64 MiB (%llu KiB)",
	      (unsigned long long)(map / KIB));
	idx_close(ix);
	check_rmtree(dir);
	free(dir);

	/* A callback that ignores the failed put is run again all the
	 * same: the transaction it saw can no longer commit. */
	dir = subdir("rerun2");
	ix = open_at(dir, 256 * KIB, false);
	CHECK(ix, "open for the careless callback");
	if (!ix)
		return;
	a = (struct rerun_arg){ 0 };
	CHECK_EQ(idx_write(ix, careless_cb, &a), 0,
		 "a callback that ignores -ENOSPC still commits");
	CHECK(a.runs == 2 && a.puts == 4,
	      "it ran again after growth (%d runs, %d puts)", a.runs, a.puts);
	CHECK_EQ(count(ix, IDX_CHUNKS), 4, "every value of the second run "
		 "is there");
	idx_close(ix);
	check_rmtree(dir);
	free(dir);
}

/* ---- two processes ------------------------------------------------------ */

/* Runs fn in a child process with its own environment; returns the
 * child's exit status (0 on success). */
static int in_child(const char *dir, uint64_t map_size,
		    int (*fn)(struct idx_db *, void *), void *arg)
{
	struct idx_db *ix;
	pid_t pid;
	int st, r;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		ix = open_at(dir, map_size, false);
		if (!ix)
			_exit(2);
		r = fn(ix, arg);
		idx_close(ix);
		_exit(r < 0 ? 3 : 0);
	}
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int child_write_many(struct idx_db *ix, void *arg)
{
	const uint64_t *range = arg;
	uint64_t i;
	int r = 0;

	for (i = range[0]; i < range[1] && r == 0; i += GROW_PER_TXN)
		r = idx_write(ix, grow_put, &(struct grow_arg){ i,
				range[1] - i < GROW_PER_TXN ? range[1] - i :
				GROW_PER_TXN });
	return r;
}

static int child_put_kv(struct idx_db *ix, void *arg)
{
	return idx_write(ix, put_all, arg);
}

static void test_two_processes(void)
{
	char *dir = subdir("procs");
	struct idx_db *ix = open_at(dir, 0, true);
	const struct kv kv[] = { { "from-child", "hello" } };
	const struct kv kv2[] = { { "from-parent", "hi" } };
	char val[256];
	int st;

	CHECK(ix, "open for the two-process test");
	if (!ix)
		return;
	CHECK_EQ(idx_write(ix, put_all, &(struct put_arg){ kv2, 1, 0, 0 }),
		 0, "parent writes");
	st = in_child(dir, 0, child_put_kv, &(struct put_arg){ kv, 1, 0, 0 });
	CHECK_EQ(st, 0, "a child process opens the same index and writes");
	CHECK(get_str_txn(ix, "from-child", val) == 0 &&
	      strcmp(val, "hello") == 0, "the parent reads the child's commit");
	CHECK(get_str_txn(ix, "from-parent", val) == 0,
	      "the parent still reads its own commit");
	idx_close(ix);
	free(dir);
}

static void test_map_resized(void)
{
	char *dir = subdir("resized");
	char *dir2 = subdir("resized2");
	struct idx_db *ix = open_at(dir, 256 * KIB, false);
	const struct kv kv[] = { { "parent", "1" } };
	uint64_t range[2] = { 0, 4 * MIB / GROW_VAL }, used, map0 = 0, map;
	struct verify_arg va = { 0 };
	int st;

	CHECK(ix, "open with a 256 KiB map for the resize test");
	if (!ix)
		return;
	stats(ix, &used, &map0);
	st = in_child(dir, 256 * KIB, child_write_many, range);
	CHECK_EQ(st, 0, "a child grows the map by writing 4 MiB");
	CHECK(idx_read(ix, verify_all, &va) == 0 && va.n == range[1] &&
	      va.bad == 0, "the parent's next read adopts the bigger map "
	      "and sees every value (%llu)", (unsigned long long)va.n);
	CHECK(stats(ix, &used, &map) == 0 && map > map0 && used <= map,
	      "the parent's map grew with the file (%llu KiB)",
	      (unsigned long long)(map / KIB));
	idx_close(ix);

	/* The same through a write transaction's begin. */
	ix = open_at(dir2, 256 * KIB, false);
	CHECK(ix, "reopen with a 256 KiB map");
	if (!ix)
		goto out;
	st = in_child(dir2, 256 * KIB, child_write_many, range);
	CHECK_EQ(st, 0, "a child grows the map again");
	CHECK_EQ(idx_write(ix, put_all, &(struct put_arg){ kv, 1, 0, 0 }),
		 0, "the parent's next write adopts the bigger map");
	CHECK_EQ(count(ix, IDX_EXTENTS), range[1],
		 "the parent sees the child's values");
	CHECK_EQ(get_str_txn(ix, "parent", NULL), 0,
		 "the parent's write committed");
	idx_close(ix);
out:
	check_rmtree(dir);
	check_rmtree(dir2);
	free(dir);
	free(dir2);
}

/* A child that dies inside a read transaction leaves its slot taken. */
static int die_in_txn(struct idx_txn *t, void *arg)
{
	(void)t;
	(void)arg;
	_exit(0);
}

static int child_die_reading(struct idx_db *ix, void *arg)
{
	(void)arg;
	return idx_read(ix, die_in_txn, NULL);
}

static void test_reader_check(void)
{
	char *dir = subdir("readers");
	struct idx_db *ix = open_at(dir, 0, false);
	int st, r;

	CHECK(ix, "open for the reader check test");
	if (!ix)
		return;
	CHECK_EQ(idx_maint(ix), 0, "no stale readers at first");
	st = in_child(dir, 0, child_die_reading, NULL);
	CHECK_EQ(st, 0, "a child dies inside a read transaction");
	r = idx_maint(ix);
	CHECK_EQ(r, 1, "idx_maint clears the dead child's slot");
	CHECK_EQ(idx_maint(ix), 0, "and then there is none");
	CHECK_EQ(idx_maint(NULL), -EINVAL, "NULL is -EINVAL");
	idx_close(ix);
	free(dir);
}

/* ---- threads ------------------------------------------------------------ */

#define READERS 16
#define PAIRS 1200

struct thread_state {
	struct idx_db *ix;
	atomic_bool done;
	atomic_ulong reads, torn, errors;
};

struct pair {
	uint64_t x, y;
	bool have;
};

static int read_pair(struct idx_txn *t, void *arg)
{
	struct pair *p = arg;
	struct idx_val a, b;
	int r1, r2;

	r1 = idx_get(t, IDX_INODES, "x", 1, &a);
	r2 = idx_get(t, IDX_INODES, "y", 1, &b);
	if (r1 == -ENOENT && r2 == -ENOENT) {
		p->have = false;
		return 0;
	}
	if (r1 < 0 || r2 < 0 || a.len != 8 || b.len != 8)
		return -EIO;
	p->x = be64_get(a.data);
	p->y = be64_get(b.data);
	p->have = true;
	return 0;
}

static void *reader_main(void *arg)
{
	struct thread_state *s = arg;
	struct pair p;

	while (!atomic_load(&s->done)) {
		if (idx_read(s->ix, read_pair, &p) < 0)
			atomic_fetch_add(&s->errors, 1);
		else if (p.have && p.x != p.y)
			atomic_fetch_add(&s->torn, 1);
		atomic_fetch_add(&s->reads, 1);
	}
	return NULL;
}

static int write_pair(struct idx_txn *t, void *arg)
{
	uint64_t i = *(uint64_t *)arg;
	static unsigned char filler[64 * 1024];
	unsigned char k[8], v[8];
	int r;

	be64_put(v, i);
	be64_put(k, i);
	if ((r = idx_put(t, IDX_INODES, "x", 1, v, 8, 0)) < 0 ||
	    (r = idx_put(t, IDX_TRASH, k, 8, filler, sizeof(filler), 0)) < 0)
		return r;
	return idx_put(t, IDX_INODES, "y", 1, v, 8, 0);
}

static void test_threads(void)
{
	char *dir = subdir("threads");
	struct thread_state s = { .ix = open_at(dir, 256 * KIB, false) };
	pthread_t th[READERS];
	uint64_t i, map0 = 0, map = 0, used;
	int r = 0, n;

	CHECK(s.ix, "open for the thread test");
	if (!s.ix)
		return;
	stats(s.ix, &used, &map0);
	for (n = 0; n < READERS; n++)
		if (pthread_create(&th[n], NULL, reader_main, &s) != 0)
			break;
	/* Let the readers get going, so that the map grows under them. */
	while (atomic_load(&s.reads) < 100 * READERS)
		usleep(1000);
	for (i = 1; i <= PAIRS && r == 0; i++)
		r = idx_write(s.ix, write_pair, &i);
	atomic_store(&s.done, true);
	while (n-- > 0)
		pthread_join(th[n], NULL);
	CHECK_EQ(r, 0, "%d writes (75 MiB) beside %d reading threads",
		 PAIRS, READERS);
	CHECK(atomic_load(&s.reads) > 0, "readers ran (%lu reads)",
	      (unsigned long)atomic_load(&s.reads));
	CHECK_EQ(atomic_load(&s.errors), 0, "no read failed");
	CHECK_EQ(atomic_load(&s.torn), 0,
		 "no reader saw half a transaction");
	CHECK(stats(s.ix, &used, &map) == 0 && map > map0 &&
	      map >= 128 * MIB,
	      "the map grew twice while the readers ran (%llu MiB)",
	      (unsigned long long)(map / MIB));
	CHECK_EQ(count(s.ix, IDX_TRASH), PAIRS, "every write is there");
	idx_close(s.ix);
	check_rmtree(dir);
	free(dir);
}

/* With one reader slot, a second concurrent reader gets -EAGAIN. */
struct hold_arg {
	atomic_int state;       /* 1: inside the transaction, 2: let go */
};

static int hold_cb(struct idx_txn *t, void *arg)
{
	struct hold_arg *h = arg;

	(void)t;
	atomic_store(&h->state, 1);
	while (atomic_load(&h->state) != 2)
		usleep(1000);
	return 0;
}

static struct idx_db *hold_ix;

static void *hold_main(void *arg)
{
	idx_read(hold_ix, hold_cb, arg);
	return NULL;
}

static void test_readers_full(void)
{
	char *dir = subdir("onereader");
	struct idx_options o = { .path = dir, .max_readers = 1 };
	struct hold_arg h = { 0 };
	pthread_t th;
	int r;

	hold_ix = NULL;
	CHECK_EQ(idx_open(&o, &hold_ix), 0,
		 "open with one reader slot");
	if (!hold_ix)
		return;
	if (pthread_create(&th, NULL, hold_main, &h) != 0)
		abort();
	while (atomic_load(&h.state) != 1)
		usleep(1000);
	r = idx_read(hold_ix, get_one, &(struct get_arg){ .key = "k" });
	CHECK_EQ(r, -EAGAIN, "a reader beyond max_readers gets -EAGAIN");
	atomic_store(&h.state, 2);
	pthread_join(th, NULL);
	r = idx_read(hold_ix, get_one, &(struct get_arg){ .key = "k" });
	CHECK_EQ(r, -ENOENT, "the slot is free again once the reader ended");
	idx_close(hold_ix);
	free(dir);
}

/* ---- a file that is not an index --------------------------------------- */

static int write_file(const char *path, size_t n)
{
	unsigned char *buf = malloc(n);
	int fd, ok;

	if (!buf)
		return -1;
	fill(buf, n, 99);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ok = fd >= 0 && write(fd, buf, n) == (ssize_t)n;
	if (fd >= 0)
		close(fd);
	free(buf);
	return ok ? 0 : -1;
}

static void test_garbage(void)
{
	char *dir = subdir("garbage"), *file, *notdir = subdir("plainfile");
	struct idx_db *ix = NULL;
	int r;

	if (mkdir(dir, 0700) < 0 || asprintf(&file, "%s/data.mdb", dir) < 0)
		abort();
	CHECK_EQ(write_file(file, 64 * 1024), 0, "write a garbage data.mdb");
	r = idx_open(AT(dir), &ix);
	CHECK((r == -EINVAL || r == -EIO) && !ix,
	      "opening garbage fails cleanly (%d)", r);
	CHECK_EQ(write_file(file, 100), 0, "write a short garbage data.mdb");
	r = idx_open(AT(dir), &ix);
	CHECK((r == -EINVAL || r == -EIO) && !ix,
	      "opening a short garbage file fails cleanly (%d)", r);
	CHECK_EQ(write_file(notdir, 10), 0, "write a plain file");
	r = idx_open(AT(notdir), &ix);
	CHECK(r < 0 && !ix, "opening a plain file as a directory fails (%d)",
	      r);
	CHECK_EQ(idx_open(AT(NULL), &ix), -EINVAL, "NULL dir is -EINVAL");

	/* A failed open leaves the process free to open a good index. */
	unlink(file);
	ix = open_at(dir, 0, true);
	CHECK(ix, "an index opens where the garbage was");
	idx_close(ix);
	free(file);
	free(notdir);
	free(dir);
}

/* ---- a full disk -------------------------------------------------------- */

#define FULL_VAL (8 * 1024)

static int full_put(struct idx_txn *t, void *arg)
{
	uint64_t i = *(uint64_t *)arg;
	unsigned char key[8], val[FULL_VAL];

	be64_put(key, i);
	fill(val, sizeof(val), i);
	return idx_put(t, IDX_EXTENTS, key, 8, val, sizeof(val), 0);
}

static int full_check(struct idx_txn *t, void *arg)
{
	uint64_t n = *(uint64_t *)arg, i;
	unsigned char key[8], want[FULL_VAL];
	struct idx_val v;
	int r;

	for (i = 0; i < n; i++) {
		be64_put(key, i);
		fill(want, sizeof(want), i);
		r = idx_get(t, IDX_EXTENTS, key, 8, &v);
		if (r < 0)
			return r;
		if (v.len != FULL_VAL || memcmp(v.data, want, FULL_VAL))
			return -EBADMSG;
	}
	return 0;
}

/* Mounts a tmpfs of size at TOP/name; NULL (a SKIP printed for what)
 * when that is not possible (not root). */
static char *tmpfs_mount(const char *name, const char *size,
			 const char *what)
{
	char *mnt = subdir(name), *opts;

	if (mkdir(mnt, 0700) < 0)
		abort();
	if (asprintf(&opts, "size=%s,mode=0700", size) < 0)
		abort();
	if (mount("tmpfs", mnt, "tmpfs", 0, opts) < 0) {
		check_n++;
		printf("ok %d - %s # SKIP cannot mount tmpfs: %s\n", check_n,
		       what, strerror(errno));
		rmdir(mnt);
		free(mnt);
		mnt = NULL;
	}
	free(opts);
	return mnt;
}

static void tmpfs_unmount(char *mnt)
{
	if (umount2(mnt, 0) < 0)
		printf("# cannot unmount '%s': %s\n", mnt, strerror(errno));
	rmdir(mnt);
	free(mnt);
}

/* Opens an index in mnt (*ret_dir: its path) and runs fn, counting *n up
 * by step after each commit, until a write fails (*ret_r, its error) or
 * 1000 commits. NULL (checked) when it does not open. */
static struct idx_db *open_full(const char *mnt, char **ret_dir,
				    int (*fn)(struct idx_txn *, void *),
				    uint64_t *n, uint64_t step, int *ret_r)
{
	struct idx_db *ix;
	int r = 0, i;

	if (asprintf(ret_dir, "%s/index", mnt) < 0)
		abort();
	ix = open_at(*ret_dir, 0, true);
	CHECK(ix, "open an index on a 1 MiB tmpfs");
	for (i = 0; ix && i < 1000; i++) {
		r = idx_write(ix, fn, n);
		if (r < 0)
			break;
		*n += step;
	}
	*ret_r = r;
	return ix;
}

static void test_enospc(void)
{
	char *mnt = tmpfs_mount("tmpfs", "1m", "a full disk is -ENOSPC");
	char *dir = NULL;
	struct idx_db *ix;
	uint64_t n = 0, c = 0;
	int r = 0;

	if (!mnt)
		return;
	ix = open_full(mnt, &dir, full_put, &n, 1, &r);
	if (!ix)
		goto out;
	CHECK_EQ(r, -ENOSPC, "writing until the disk is full ends in -ENOSPC "
		 "(after %llu values)", (unsigned long long)n);
	CHECK(n > 10, "values were committed before");
	CHECK_EQ(idx_read(ix, full_check, &n), 0,
		 "committed values read back after -ENOSPC");
	r = idx_write(ix, full_put, &n);
	CHECK_EQ(r, -ENOSPC, "the next write fails the same way");
	idx_close(ix);
	ix = open_at(dir, 0, true);
	CHECK(ix, "the index reopens after the disk filled");
	CHECK(ix && idx_read(ix, full_check, &n) == 0,
	      "every committed value reads back after reopening");
	CHECK(ix && idx_read(ix, count_one, &(struct count_arg){
		IDX_EXTENTS, 0 }) == 0, "count works");
	if (ix) {
		struct count_arg ca = { IDX_EXTENTS, 0 };

		idx_read(ix, count_one, &ca);
		c = ca.n;
	}
	CHECK_EQ(c, n, "nothing of the failed transactions is there");
	idx_close(ix);
out:
	tmpfs_unmount(mnt);
	free(dir);
}

/* Small records, many to a transaction: LMDB writes several pages at a
 * time, and on a disk that fills part of the way through one write it
 * sees a short write, which it reports as EIO. */
#define SMALL_VAL 100
#define SMALL_PER_TXN 64

static int small_put(struct idx_txn *t, void *arg)
{
	uint64_t first = *(uint64_t *)arg, i;
	unsigned char key[8], val[SMALL_VAL];
	int r;

	for (i = first; i < first + SMALL_PER_TXN; i++) {
		be64_put(key, i);
		fill(val, sizeof(val), i);
		r = idx_put(t, IDX_META, key, 8, val, sizeof(val), 0);
		if (r < 0)
			return r;
	}
	return 0;
}

static void test_enospc_short_write(void)
{
	char *mnt = tmpfs_mount("tmpfs-short", "1m", "a short write on a "
				"full disk is -ENOSPC"), *dir = NULL;
	struct idx_db *ix;
	uint64_t n = 0;
	int r = 0, i;

	if (!mnt)
		return;
	ix = open_full(mnt, &dir, small_put, &n, SMALL_PER_TXN, &r);
	if (!ix)
		goto out;
	CHECK_EQ(r, -ENOSPC, "small records until the disk is full: -ENOSPC, "
		 "not -EIO (after %llu records)", (unsigned long long)n);
	for (i = 0; i < 3; i++) {
		r = idx_write(ix, small_put, &n);
		if (r != -ENOSPC)
			break;
	}
	CHECK_EQ(r, -ENOSPC, "and the next writes too");
	idx_close(ix);
out:
	tmpfs_unmount(mnt);
	free(dir);
}

/* ---- iterators: the same keys as a model, and as idx_scan ------------- */

#define MODEL_KEYS 400
#define MODEL_KEY_LEN 6

struct mkey {
	unsigned char k[MODEL_KEY_LEN];
	size_t len;
};

static int mkey_cmp(const void *a, const void *b)
{
	const struct mkey *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->k, y->k, n);

	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* n pseudo-random keys of 1 to MODEL_KEY_LEN bytes over a few letters,
 * 0x00 and 0xff among them (the edges of a prefix), sorted in the
 * index's order without repeats; returns how many are left. */
static size_t model_keys(struct mkey *m, size_t n, uint64_t seed)
{
	static const unsigned char abc[] = { 0x00, 'a', 'b', 0xfe, 0xff };
	size_t i, j, out = 0;

	for (i = 0; i < n; i++) {
		m[i].len = 1 + splitmix64(&seed) % MODEL_KEY_LEN;
		for (j = 0; j < m[i].len; j++)
			m[i].k[j] = abc[splitmix64(&seed) % sizeof(abc)];
	}
	qsort(m, n, sizeof(*m), mkey_cmp);
	for (i = 0; i < n; i++)
		if (out == 0 || mkey_cmp(&m[out - 1], &m[i]) != 0)
			m[out++] = m[i];
	return out;
}

struct model_put_arg {
	const struct mkey *m;
	size_t n;
};

/* Each key's value is its length and its bytes reversed. */
static void model_val(const struct mkey *k, unsigned char *v)
{
	size_t i;

	v[0] = (unsigned char)k->len;
	for (i = 0; i < k->len; i++)
		v[1 + i] = k->k[k->len - 1 - i];
}

static int model_put(struct idx_txn *t, void *arg)
{
	struct model_put_arg *a = arg;
	unsigned char v[1 + MODEL_KEY_LEN];
	size_t i;
	int r;

	for (i = 0; i < a->n; i++) {
		model_val(&a->m[i], v);
		r = idx_put(t, IDX_HISTORY, a->m[i].k, a->m[i].len, v,
			    1 + a->m[i].len, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

/* What one walk saw, checked against the model as it goes. */
struct walk {
	const struct mkey *m;  /* the expected keys, in order */
	size_t n, at;
	int bad;
};

static int walk_one(void *arg, const struct idx_val *k,
		    const struct idx_val *v)
{
	struct walk *w = arg;
	unsigned char want[1 + MODEL_KEY_LEN];

	if (w->at >= w->n || k->len != w->m[w->at].len ||
	    memcmp(k->data, w->m[w->at].k, k->len) != 0) {
		w->bad++;
		return 1;
	}
	model_val(&w->m[w->at], want);
	if (v->len != 1 + k->len || memcmp(v->data, want, v->len) != 0)
		w->bad++;
	w->at++;
	return 0;
}

struct query {
	struct mkey prefix, start;
	bool has_start;
	const struct mkey *want;
	size_t nwant;
	int scan_bad, iter_bad;
};

static int query_txn(struct idx_txn *t, void *arg)
{
	struct query *q = arg;
	struct walk w = { q->want, q->nwant, 0, 0 };
	const void *start = q->has_start ? q->start.k : NULL;
	struct idx_iter *it;
	struct idx_val k, v;
	int r;

	r = idx_scan(t, IDX_HISTORY, q->prefix.k, q->prefix.len, start,
		     q->start.len, walk_one, &w);
	q->scan_bad = r != 0 || w.bad || w.at != w.n;
	w = (struct walk){ q->want, q->nwant, 0, 0 };
	r = idx_iter_begin(t, IDX_HISTORY, q->prefix.k, q->prefix.len, start,
			   q->start.len, &it);
	while (r >= 0 && (r = idx_iter_next(it, &k, &v)) > 0)
		if (walk_one(&w, &k, &v))
			break;
	/* once at the end, it stays there */
	if (r == 0)
		r = idx_iter_next(it, &k, &v);
	idx_iter_end(it);
	q->iter_bad = r != 0 || w.bad || w.at != w.n;
	return 0;
}

static bool mkey_has_prefix(const struct mkey *k, const struct mkey *p)
{
	return k->len >= p->len && memcmp(k->k, p->k, p->len) == 0;
}

/* Two iterators on one table at once, stepped in turn, each see it all;
 * a third is left open for the transaction to close. */
static int two_iters_txn(struct idx_txn *t, void *arg)
{
	struct walk *w = arg;       /* two walks */
	struct idx_iter *a, *b, *c;
	struct idx_val k, v;
	int ra = 1, rb = 1, r;

	if ((r = idx_iter_begin(t, IDX_HISTORY, NULL, 0, NULL, 0, &a)) < 0)
		return r;
	if ((r = idx_iter_begin(t, IDX_HISTORY, NULL, 0, NULL, 0, &b)) < 0) {
		idx_iter_end(a);
		return r;
	}
	while (ra > 0 || rb > 0) {
		if (ra > 0 && (ra = idx_iter_next(a, &k, &v)) > 0)
			walk_one(&w[0], &k, &v);
		if (rb > 0 && (rb = idx_iter_next(b, &k, &v)) > 0)
			walk_one(&w[1], &k, &v);
	}
	idx_iter_end(b);
	idx_iter_end(a);
	if (ra < 0 || rb < 0)
		return ra < 0 ? ra : rb;
	r = idx_iter_begin(t, IDX_HISTORY, NULL, 0, NULL, 0, &c);
	return r < 0 ? r : idx_iter_next(c, &k, &v);
}

static int long_bounds_txn(struct idx_txn *t, void *arg)
{
	static char big[IDX_KEY_MAX + 1];
	struct idx_iter *it = (struct idx_iter *)&it;
	struct walk none = { 0 };
	struct idx_val k, v;
	int *res = arg;

	memset(big, 'a', sizeof(big));
	res[0] = idx_iter_begin(t, IDX_HISTORY, big, sizeof(big), NULL, 0,
				&it);
	res[1] = it == NULL;
	res[2] = idx_iter_begin(t, IDX_HISTORY, "a", 1, big, sizeof(big),
				&it);
	res[3] = idx_scan(t, IDX_HISTORY, big, sizeof(big), NULL, 0,
			  walk_one, &none);
	res[4] = idx_last(t, IDX_HISTORY, big, sizeof(big), &k, &v);
	res[5] = idx_iter_begin(t, IDX_HISTORY, big, IDX_KEY_MAX, big,
				IDX_KEY_MAX, &it);
	if (res[5] == 0) {
		res[5] = idx_iter_next(it, &k, &v);
		idx_iter_end(it);
	}
	return 0;
}

static void test_iter(void)
{
	static struct mkey m[MODEL_KEYS], want[MODEL_KEYS];
	char *dir = subdir("iter");
	struct idx_db *ix = open_at(dir, 0, false);
	struct query q;
	struct walk w[2];
	uint64_t seed = 11;
	size_t n, i, j, nq = 0;
	int scan_bad = 0, iter_bad = 0, res[6], r;

	CHECK(ix, "open for the iterator test");
	if (!ix)
		return;
	n = model_keys(m, MODEL_KEYS, 5);
	CHECK_EQ(idx_write(ix, model_put, &(struct model_put_arg){ m, n }), 0,
		 "%zu keys written", n);
	for (i = 0; i < 300; i++) {
		memset(&q, 0, sizeof(q));
		q.prefix.len = splitmix64(&seed) % 4;
		q.start.len = splitmix64(&seed) % 5;
		q.has_start = q.start.len > 0;
		/* prefixes and starts: pieces of stored keys, and others */
		memcpy(q.prefix.k, m[splitmix64(&seed) % n].k, MODEL_KEY_LEN);
		memcpy(q.start.k, m[splitmix64(&seed) % n].k, MODEL_KEY_LEN);
		if (i % 3 == 0 && q.start.len)
			q.start.k[q.start.len - 1] ^= 0x41;
		q.want = want;
		for (j = 0; j < n; j++)
			if (mkey_has_prefix(&m[j], &q.prefix) &&
			    (!q.has_start || mkey_cmp(&m[j], &q.start) >= 0))
				want[q.nwant++] = m[j];
		r = idx_read(ix, query_txn, &q);
		scan_bad += r != 0 || q.scan_bad;
		iter_bad += r != 0 || q.iter_bad;
		nq++;
	}
	CHECK_EQ(iter_bad, 0, "the iterator gives the model's keys and "
		 "values in order (%zu prefix/start pairs)", nq);
	CHECK_EQ(scan_bad, 0, "idx_scan gives the same");
	w[0] = w[1] = (struct walk){ m, n, 0, 0 };
	CHECK_EQ(idx_read(ix, two_iters_txn, w), 1,
		 "two iterators on one table at once, and one left open");
	CHECK(w[0].at == n && !w[0].bad && w[1].at == n && !w[1].bad,
	      "each of the two saw every key (%zu, %zu of %zu)", w[0].at,
	      w[1].at, n);
	CHECK_EQ(idx_write(ix, two_iters_txn, w), 1,
		 "the same in a write transaction");
	CHECK_EQ(idx_read(ix, long_bounds_txn, res), 0,
		 "bounds over IDX_KEY_MAX");
	CHECK_EQ(res[0], -EINVAL, "a prefix of IDX_KEY_MAX+1 bytes is -EINVAL");
	CHECK(res[1], "and the iterator is NULL");
	CHECK_EQ(res[2], -EINVAL, "a start of IDX_KEY_MAX+1 bytes is -EINVAL");
	CHECK_EQ(res[3], -EINVAL, "idx_scan with a prefix too long: -EINVAL");
	CHECK_EQ(res[4], -EINVAL, "idx_last with a prefix too long: -EINVAL");
	CHECK_EQ(res[5], 0, "a prefix and a start of IDX_KEY_MAX bytes are "
		 "fine (no key)");
	idx_close(ix);
	check_rmtree(dir);
	free(dir);
}

/* ---- index.c's rules, over a backend of the test's own ------------------ */

/* A backend that counts the calls index.c lets through, and gives back
 * a key longer than IDX_KEY_MAX (as a damaged index could). */
static struct fake {
	struct idx_db base;
	int runs, calls;
	struct idx_iter it;
	bool it_done;
} fake;
static unsigned char fake_key[IDX_KEY_MAX + 1];

static int fake_run(struct idx_db *db, bool write, idx_txn_fn *fn, void *arg)
{
	struct idx_txn t = { db, write };

	fake.runs++;
	return fn(&t, arg);
}

static int fake_get(UNUSED struct idx_txn *t, UNUSED enum idx_table tb,
		    UNUSED const void *key, UNUSED size_t klen,
		    UNUSED struct idx_val *ret)
{
	fake.calls++;
	return -ENOENT;
}

static int fake_put(UNUSED struct idx_txn *t, UNUSED enum idx_table tb,
		    UNUSED const void *key, UNUSED size_t klen,
		    UNUSED const void *val, UNUSED size_t vlen,
		    UNUSED unsigned flags)
{
	fake.calls++;
	return 0;
}

static int fake_del(UNUSED struct idx_txn *t, UNUSED enum idx_table tb,
		    UNUSED const void *key, UNUSED size_t klen)
{
	fake.calls++;
	return 0;
}

static int fake_iter_begin(struct idx_txn *t, UNUSED enum idx_table tb,
			   UNUSED const void *prefix, UNUSED size_t plen,
			   UNUSED const void *start, UNUSED size_t slen,
			   struct idx_iter **ret)
{
	fake.calls++;
	fake.it.t = t;
	fake.it_done = false;
	*ret = &fake.it;
	return 0;
}

static int fake_iter_next(UNUSED struct idx_iter *it,
			  struct idx_val *ret_key, struct idx_val *ret_val)
{
	if (fake.it_done)
		return 0;
	fake.it_done = true;
	*ret_key = (struct idx_val){ fake_key, sizeof(fake_key) };
	*ret_val = (struct idx_val){ "v", 1 };
	return 1;
}

static void fake_iter_end(UNUSED struct idx_iter *it)
{
}

static int fake_last(UNUSED struct idx_txn *t, UNUSED enum idx_table tb,
		     UNUSED const void *prefix, UNUSED size_t plen,
		     struct idx_val *ret_key, struct idx_val *ret_val)
{
	fake.calls++;
	*ret_key = (struct idx_val){ fake_key, sizeof(fake_key) };
	*ret_val = (struct idx_val){ "v", 1 };
	return 0;
}

static int fake_count(UNUSED struct idx_txn *t, UNUSED enum idx_table tb,
		      uint64_t *ret)
{
	fake.calls++;
	*ret = 0;
	return 0;
}

static int fake_maint(UNUSED struct idx_db *db)
{
	fake.calls++;
	return 0;
}

static int fake_stats(UNUSED struct idx_db *db, struct idx_stats *ret)
{
	fake.calls++;
	*ret = (struct idx_stats){ 0 };
	return 0;
}

static const struct idx_backend fake_backend = {
	.name = "fake", .run = fake_run, .get = fake_get, .put = fake_put,
	.del = fake_del, .iter_begin = fake_iter_begin,
	.iter_next = fake_iter_next, .iter_end = fake_iter_end,
	.last = fake_last, .count = fake_count, .maint = fake_maint,
	.stats = fake_stats,
};

/* Every bad call index.c must stop before the backend. */
static int fake_bad_calls(struct idx_txn *t, void *arg)
{
	static char big[IDX_KEY_MAX + 1];
	struct idx_iter *it;
	struct idx_val k, v;
	uint64_t n;
	int *bad = arg;

	*bad = 0;
	*bad += idx_get(t, IDX_NAMES, big, sizeof(big), &v) != -EINVAL;
	*bad += idx_get(t, IDX_NAMES, "", 0, &v) != -EINVAL;
	*bad += idx_get(t, IDX_TABLES, "k", 1, &v) != -EINVAL;
	*bad += idx_get(t, IDX_NAMES, "k", 1, NULL) != -EINVAL;
	*bad += idx_put(t, IDX_NAMES, big, sizeof(big), "v", 1, 0) != -EINVAL;
	*bad += idx_put(t, IDX_NAMES, "k", 1, NULL, 1, 0) != -EINVAL;
	*bad += idx_put(t, IDX_NAMES, "k", 1, "v", 1, 2) != -EINVAL;
	*bad += idx_del(t, IDX_NAMES, big, sizeof(big)) != -EINVAL;
	*bad += idx_iter_begin(t, IDX_NAMES, big, sizeof(big), NULL, 0,
			       &it) != -EINVAL;
	*bad += idx_iter_begin(t, IDX_NAMES, NULL, 1, NULL, 0, &it) != -EINVAL;
	*bad += idx_last(t, IDX_NAMES, big, sizeof(big), &k, &v) != -EINVAL;
	*bad += idx_count(t, IDX_TABLES, &n) != -EINVAL;
	*bad += idx_scan(t, IDX_NAMES, NULL, 0, NULL, 0, NULL, NULL) != -EINVAL;
	if (!idx_writable(t)) {
		*bad += idx_put(t, IDX_NAMES, "k", 1, "v", 1, 0) != -EACCES;
		*bad += idx_del(t, IDX_NAMES, "k", 1) != -EACCES;
	}
	return 0;
}

static int fake_long_keys(struct idx_txn *t, void *arg)
{
	struct walk none = { 0 };
	struct idx_val k, v;
	int *res = arg;

	res[0] = idx_scan(t, IDX_NAMES, NULL, 0, NULL, 0, walk_one, &none);
	res[1] = idx_last(t, IDX_NAMES, NULL, 0, &k, &v);
	return 0;
}

static void test_dispatch(void)
{
	char *dir = subdir("dispatch");
	struct idx_db *ix = open_at(dir, 0, false), *none = NULL;
	struct idx_options o = { .backend = "nosuch", .path = dir };
	int bad = -1, res[2], r;

	fake = (struct fake){ .base.be = &fake_backend };
	memset(fake_key, 'k', sizeof(fake_key));
	CHECK(ix, "open an lmdb index beside the test's backend");
	CHECK(idx_open(&o, &none) == -EINVAL && !none,
	      "an unknown backend is -EINVAL");

	r = idx_read(&fake.base, nested_read, &fake.base);
	CHECK(r == -EDEADLK && fake.runs == 1,
	      "idx_read inside idx_read is -EDEADLK before any backend "
	      "(%d, %d runs)", r, fake.runs);
	r = idx_write(&fake.base, nested_write, &fake.base);
	CHECK(r == -EDEADLK && fake.runs == 2,
	      "idx_write inside idx_write is -EDEADLK before any backend "
	      "(%d, %d runs)", r, fake.runs);
	if (ix) {
		r = idx_read(&fake.base, nested_read, ix);
		CHECK_EQ(r, -EDEADLK, "an lmdb transaction inside another "
			 "backend's is -EDEADLK");
		r = idx_read(ix, nested_write, &fake.base);
		CHECK(r == -EDEADLK && fake.runs == 3, "and the other way "
		      "round (%d, %d runs)", r, fake.runs);
	}

	fake.base.read_only = true;
	CHECK(idx_write(&fake.base, put_in_read, NULL) == -EROFS &&
	      fake.runs == 3, "idx_write on a read-only index is -EROFS "
	      "before the backend");
	CHECK(idx_read(&fake.base, fake_bad_calls, &bad) == 0 && bad == 0,
	      "bad arguments and writes in a read transaction are refused "
	      "(%d not)", bad);
	fake.base.read_only = false;
	CHECK(idx_write(&fake.base, fake_bad_calls, &bad) == 0 && bad == 0,
	      "the same in a write transaction (%d not)", bad);
	CHECK_EQ(fake.calls, 0, "none of them reached the backend");
	CHECK(idx_read(NULL, get_one, NULL) == -EINVAL &&
	      idx_write(&fake.base, NULL, NULL) == -EINVAL &&
	      idx_maint(NULL) == -EINVAL && idx_stats(NULL, NULL) == -EINVAL,
	      "a NULL index or callback is -EINVAL");

	CHECK_EQ(idx_read(&fake.base, fake_long_keys, res), 0,
		 "a backend gives back a key of IDX_KEY_MAX+1 bytes");
	CHECK_EQ(res[0], -EIO, "idx_scan stops it: -EIO");
	CHECK_EQ(res[1], -EIO, "idx_last stops it: -EIO");
	idx_close(ix);
	check_rmtree(dir);
	free(dir);
}

int main(void)
{
	log_set_level(getenv("MREG_TEST_VERBOSE") ? LOG_LVL_DEBUG :
		      LOG_LVL_ERROR);
	top = check_tmpdir("index");
	test_basic();
	test_abort();
	test_scan();
	test_iter();
	test_dispatch();
	test_growth();
	test_rerun();
	test_two_processes();
	test_map_resized();
	test_reader_check();
	test_threads();
	test_readers_full();
	test_garbage();
	test_enospc();
	test_enospc_short_write();
	check_rmtree(top);
	free(top);
	return check_done();
}
