/* test-cache.c — the host cache (core/store/cache/) in front of the S3
 * store, against a real radosgw (tests/services/rgw.sh, started here, or
 * MREG_RGW_DIR's) reached through tests/services/faultproxy.py, whose
 * request count shows what went to the object store: write-through, hits
 * that send nothing, eviction under the size bound in LRU order, the
 * order rebuilt from mtimes at open, a damaged cached copy fetched again,
 * a damaged remote copy -EIO and never kept, prefetch (one GET per chunk,
 * gets waiting for it), and a cold read with the connection cut. With
 * MREG_CACHE_BENCH_MB=N it also times a cold sequential read of N MiB of
 * 64 KiB chunks with and without prefetch ("# bench" lines; no check).
 */
#include "store/store.h"

#include "store/cache/cache.h"
#include "store/packfmt.h"
#include "store/s3/s3.h"
#include "store/s3/s3store.h"

#include <dirent.h>

#include "rgw.h"
#include "chunks.h"

#define KiB 1024u
#define CH (64 * KiB)			/* chunk size of most tests */
#define FILE_SIZE (MREG_ID_LEN + CH)	/* a cached chunk's file */

static unsigned ncaches;
static char *proxied_ep;

static struct s3_store_config s3cfg(void)
{
	static char names[16][64];
	static unsigned n;
	struct s3_store_config cfg = {
		.endpoint = proxied_ep,
		.bucket = getenv("MREG_S3_BUCKET"),
		.region = getenv("MREG_S3_REGION"),
		.path_style = true,
		.attempts = 3,
		.max_inflight = 16,
	};
	char *p = names[n++ % 16];

	snprintf(p, sizeof(names[0]), "t-cache-%d-%u/", (int)getpid(), n);
	cfg.key_prefix = p;
	return cfg;
}

static struct mreg_store *s3open(const struct s3_store_config *cfg)
{
	struct store_options o = { .backend = "s3", .sync = true,
				   .backend_cfg = cfg };
	struct mreg_store *s;

	if (store_open(&o, &s)) {
		printf("Bail out! s3 store open\n");
		exit(1);
	}
	return s;
}

/* A cache of size bytes over a new S3 store on cfg; path NULL: a new
 * directory (its name into *ret_path when wanted). */
static struct mreg_store *copen(const struct s3_store_config *cfg,
				const char *path, uint64_t size,
				char **ret_path)
{
	struct cache_config cc = { .size = size, .inner = s3open(cfg) };
	struct store_options o = { .backend = "cache", .backend_cfg = &cc };
	struct mreg_store *s;
	char *p = NULL;

	if (!path) {
		if (asprintf(&p, "%s/cache%u", tmp, ++ncaches) < 0)
			abort();
		path = p;
	}
	cc.path = path;
	if (store_open(&o, &s)) {
		printf("Bail out! cache open\n");
		exit(1);
	}
	if (ret_path)
		*ret_path = p;
	else
		free(p);
	return s;
}

/* The cached file of c under path, as cache.c names it. */
static char *file_of(const char *path, const struct chunk *c)
{
	static const char hx[] = "0123456789abcdef";
	uint32_t h = 2166136261u;
	char *p, hex[2 * CHUNK_LOC_MAX + 1];
	unsigned i;

	for (i = 0; i < c->loc.len; i++) {
		h = (h ^ c->loc.b[i]) * 16777619u;
		hex[2 * i] = hx[c->loc.b[i] >> 4];
		hex[2 * i + 1] = hx[c->loc.b[i] & 15];
	}
	hex[2 * c->loc.len] = '\0';
	if (asprintf(&p, "%s/%02x/%s", path, h & 0xff, hex) < 0)
		abort();
	return p;
}

static bool cached(const char *path, const struct chunk *c)
{
	char *p = file_of(path, c);
	bool r = access(p, F_OK) == 0;

	free(p);
	return r;
}

/* Bytes of chunk files under path. */
static uint64_t cached_bytes(const char *path)
{
	uint64_t n = 0;
	char cmd[512], line[64];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "find '%s' -mindepth 2 -type f "
		 "-printf '%%s\\n'", path);
	f = popen(cmd, "r");
	while (f && fgets(line, sizeof(line), f))
		n += strtoull(line, NULL, 10);
	if (f)
		pclose(f);
	return n;
}

static int requests(void)
{
	return proxy("count");
}

/* ---- the tests ---- */

/* A cache that cannot open leaves the inner store to its caller. */
static void test_open(void)
{
	struct s3_store_config cfg = s3cfg();
	struct cache_config cc = { .size = 1 << 20, .inner = s3open(&cfg) };
	struct store_options o = { .backend = "cache" };
	struct mreg_store *s = NULL;
	struct chunk c;
	char *path;

	capture();
	CHECK_EQ(store_open(&o, &s), -EINVAL, "open: no cache configuration "
		 "is -EINVAL");
	o.backend_cfg = &cc;
	CHECK_EQ(store_open(&o, &s), -EINVAL, "open: no path is -EINVAL");
	CHECK(strstr(logged, "no configuration") &&
	      strstr(logged, "a path, a size"), "... both said: %s", logged);
	if (asprintf(&path, "%s/not-a-dir", tmp) < 0)
		abort();
	close(open(path, O_CREAT | O_WRONLY, 0600));
	cc.path = path;
	CHECK(store_open(&o, &s) < 0, "open: a path that is a file fails");
	log_set_sink(NULL, NULL);
	chunk_make(&c, 1000, 1);
	CHECK(put(cc.inner, &c) == 0 && store_sync(cc.inner) == 0 &&
	      get(cc.inner, &c) == 0, "open: after failed opens the inner "
	      "store is still the caller's, and works");
	store_close(cc.inner);
	free(c.data);
	free(path);
}

static void test_lru(void)
{
	struct s3_store_config cfg = s3cfg();
	enum { N = 25 };
	struct chunk c[N];
	struct mreg_store *s;
	char *path;
	int i, bad = 0, n0;

	s = copen(&cfg, NULL, 10 * FILE_SIZE, &path);
	for (i = 0; i < N; i++)
		chunk_make(&c[i], CH, 900 + (uint64_t)i);
	for (i = 0; i < 20; i++)
		bad += put(s, &c[i]) != 0;
	CHECK(bad == 0 && store_sync(s) == 0, "cache: 20 puts of 64 KiB "
	      "through a cache of 10, synced");
	CHECK(!cached(path, &c[9]) && cached(path, &c[10]) &&
	      cached(path, &c[19]), "lru: written through, the 10 most recent "
	      "kept");
	CHECK(cached_bytes(path) <= 10 * FILE_SIZE, "lru: within the bound "
	      "(%llu bytes)", (unsigned long long)cached_bytes(path));
	n0 = requests();
	for (i = 10; i < 20; i++)
		bad += get(s, &c[i]) != 0;
	CHECK(bad == 0 && requests() == n0, "lru: 10 hits send no request");
	CHECK(get(s, &c[0]) == 0 && requests() == n0 + 1 &&
	      cached(path, &c[0]) && !cached(path, &c[10]),
	      "lru: a miss is one GET, kept, the least recent evicted");
	CHECK(get(s, &c[11]) == 0, "lru: chunk 11 used again");
	for (i = 20; i < 24; i++) {
		usleep(20000);	/* mtimes tick every few ms */
		bad += put(s, &c[i]) != 0;
	}
	CHECK(bad == 0 && cached(path, &c[11]) && !cached(path, &c[12]) &&
	      !cached(path, &c[15]) && cached(path, &c[16]),
	      "lru: 4 more puts evict 12..15, not 11 used since");
	usleep(20000);
	CHECK(get(s, &c[16]) == 0, "lru: chunk 16 used last");
	store_close(s);

	/* the order comes back from the mtimes */
	s = copen(&cfg, path, 2 * FILE_SIZE, NULL);
	CHECK(cached(path, &c[16]) && cached(path, &c[23]) &&
	      !cached(path, &c[22]) && !cached(path, &c[11]) &&
	      cached_bytes(path) == 2 * FILE_SIZE,
	      "lru: reopened with room for 2: the 2 most recently used stay");
	n0 = requests();
	CHECK(get(s, &c[16]) == 0 && get(s, &c[23]) == 0 && requests() == n0,
	      "lru: ... and are hits");
	CHECK(get(s, &c[3]) == 0 && requests() == n0 + 1,
	      "lru: another chunk is fetched from the store");
	store_close(s);
	chunks_free(c, N);
	free(path);
}

/* Flips one byte of a file at off. */
static void poke(const char *p, off_t off)
{
	int fd = open(p, O_RDWR);
	uint8_t b;

	if (fd < 0 || pread(fd, &b, 1, off) != 1)
		abort();
	b ^= 0x01;
	if (pwrite(fd, &b, 1, off) != 1)
		abort();
	close(fd);
}

static void test_damage(void)
{
	struct s3_store_config cfg = s3cfg();
	struct s3_config cc = { .endpoint = endpoint, .bucket = cfg.bucket,
				.path_style = true };
	struct s3_client *cl;
	struct mreg_store *s;
	struct store_span sp;
	struct chunk c[3];
	char *path, *f, key[1200];
	uint8_t *obj, *b;
	int i, bad = 0, n0;

	s = copen(&cfg, NULL, 1 << 20, &path);
	for (i = 0; i < 3; i++) {
		chunk_make(&c[i], CH, 700 + (uint64_t)i);
		bad += put(s, &c[i]) != 0;
	}
	CHECK(bad == 0 && store_sync(s) == 0, "damage: 3 chunks, cached");
	f = file_of(path, &c[0]);
	poke(f, MREG_ID_LEN + 1000);
	n0 = requests();
	capture();
	CHECK(get(s, &c[0]) == 0 && requests() == n0 + 1,
	      "damage: a bad cached copy is fetched again: the right bytes");
	CHECK(strstr(logged, "fetched again") != NULL, "... said: %s", logged);
	n0 = requests();
	CHECK(get(s, &c[0]) == 0 && requests() == n0,
	      "damage: ... and kept good: the next get is a hit");
	poke(f, 3);	/* the id the file names */
	CHECK(get(s, &c[0]) == 0, "damage: a copy naming another id: "
	      "fetched again");
	free(f);

	/* a bad copy in the object store */
	if (s3_open(&cc, &cl))
		abort();
	store_loc_span(s, &c[1].loc, &sp);
	snprintf(key, sizeof(key), "%spacks/%016llx", cfg.key_prefix,
		 (unsigned long long)sp.container);
	obj = malloc(4 * CH);
	n0 = (int)s3_get(cl, key, 0, 4 * CH, obj);
	obj[sp.off + PACK_RECORD_HEADER + 500] ^= 0x10;
	CHECK(n0 > 0 && s3_put(cl, key, obj, (size_t)n0) == 0,
	      "damage: a data byte of chunk 1 flipped in the object store");
	f = file_of(path, &c[1]);
	unlink(f);
	capture();
	b = malloc(CH);
	memset(b, 0, CH);
	CHECK_EQ(store_get(s, &c[1].loc, &c[1].id, b), -EIO,
		 "damage: uncached, the bad remote copy is -EIO");
	CHECK(strstr(logged, "does not match its id") != NULL,
	      "... logged: %s", logged);
	CHECK(!cached(path, &c[1]), "damage: ... and not kept");
	CHECK_EQ(get(s, &c[2]), 0, "damage: the chunk after it still reads");
	log_set_sink(NULL, NULL);
	free(b);
	free(f);
	free(obj);
	s3_close(cl);
	store_close(s);
	chunks_free(c, 3);
	free(path);
}

static void test_prefetch(void)
{
	struct s3_store_config cfg = s3cfg();
	enum { N = 48 };
	struct chunk c[N];
	struct chunk_loc locs[N];
	struct mreg_id ids[N];
	struct mreg_store *w, *s;
	char *path;
	int i, bad = 0, n0;

	w = s3open(&cfg);
	for (i = 0; i < N; i++) {
		chunk_make(&c[i], CH + (uint32_t)i, 500 + (uint64_t)i);
		bad += put(w, &c[i]) != 0;
		locs[i] = c[i].loc;
		ids[i] = c[i].id;
	}
	CHECK(bad == 0 && store_sync(w) == 0, "prefetch: 48 chunks written "
	      "by another host");
	store_close(w);
	s = copen(&cfg, NULL, 64 << 20, &path);
	n0 = requests();
	store_prefetch(s, locs, ids, N);
	for (i = 0; i < N; i++)
		bad += get(s, &c[i]) != 0;
	CHECK(bad == 0, "prefetch: then 48 gets, the right bytes");
	CHECK_EQ(requests() - n0, N, "prefetch: one GET per chunk: gets "
		 "waited for the prefetches in flight");
	for (i = 0; i < N; i++)
		bad += !cached(path, &c[i]);
	CHECK(bad == 0, "prefetch: every chunk kept");
	n0 = requests();
	store_prefetch(s, locs, ids, N);
	for (i = 0; i < N; i++)
		bad += get(s, &c[i]) != 0;
	CHECK(bad == 0 && requests() == n0, "prefetch: of cached chunks: "
	      "nothing sent");
	store_prefetch(s, locs, NULL, N);
	CHECK(requests() == n0, "prefetch: without ids: nothing");
	store_close(s);
	free(path);

	/* cold again, the connection cut mid-GET: retried, or -EIO */
	s = copen(&cfg, NULL, 64 << 20, &path);
	proxy("cut 20000 2 on=GET");
	store_prefetch(s, locs, ids, 4);
	for (i = 0; i < 4; i++)
		bad += get(s, &c[i]) != 0;
	CHECK(bad == 0, "prefetch: two GETs cut short: retried, the right "
	      "bytes");
	proxy("cut 20000 3 on=GET");
	CHECK_EQ(get(s, &c[10]), -EIO, "cache: a GET cut on every attempt "
		 "is -EIO");
	CHECK(!cached(path, &c[10]), "... and nothing kept");
	proxy("clear");
	CHECK_EQ(get(s, &c[10]), 0, "cache: the next get works");

	/* the object store answers nothing but errors */
	proxy("status 503 1000");
	for (i = 0; i < 4; i++)
		bad += get(s, &c[i]) != 0;
	CHECK(bad == 0, "outage: cached chunks still read");
	CHECK_EQ(get(s, &c[20]), -EIO, "outage: an uncached one is -EIO "
		 "once the retries are spent");
	proxy("clear");
	CHECK_EQ(get(s, &c[20]), 0, "outage: over: it reads, same store");
	store_close(s);
	free(path);
	chunks_free(c, N);
}

/* delete through the cache drops the cached chunks of the object */
static void test_delete(void)
{
	struct s3_store_config cfg = s3cfg();
	struct mreg_store *s;
	struct store_span sp;
	struct chunk c;
	char *path;

	cfg.gc_grace_s = 1;
	s = copen(&cfg, NULL, 1 << 20, &path);
	chunk_make(&c, 3000, 44);
	CHECK(put(s, &c) == 0 && store_sync(s) == 0 && cached(path, &c),
	      "delete: a chunk written through");
	store_loc_span(s, &c.loc, &sp);
	sleep(3);
	CHECK_EQ(store_delete(s, sp.container), 0, "delete: its object, past "
		 "the grace");
	CHECK(!cached(path, &c), "delete: ... and its cached copy");
	CHECK_EQ(get(s, &c), -ENOENT, "delete: a get is -ENOENT, not a "
		 "stale copy");
	store_close(s);
	free(c.data);
	free(path);
}

static double cold_read(const struct s3_store_config *cfg,
			const struct chunk *c, size_t n, unsigned window)
{
	struct chunk_loc locs[64];
	struct mreg_id ids[64];
	struct mreg_store *s = copen(cfg, NULL, 1ull << 40, NULL);
	uint8_t *b = malloc(CH);
	double t0 = now_s(), t;
	size_t i, j, ahead = 0;
	int bad = 0;

	for (i = 0; i < n; i++) {
		/* as a sequential reader: keep `window` chunks ahead */
		for (j = 0; window && ahead < i + window && ahead < n &&
		     j < 64; j++, ahead++) {
			locs[j] = c[ahead].loc;
			ids[j] = c[ahead].id;
		}
		if (j)
			store_prefetch(s, locs, ids, j);
		bad += store_get(s, &c[i].loc, &c[i].id, b) != 0;
	}
	t = now_s() - t0;
	CHECK(bad == 0, "bench: cold read, prefetch window %u", window);
	store_close(s);
	free(b);
	return t;
}

static void bench(unsigned mb)
{
	struct s3_store_config cfg = s3cfg();
	size_t n = (size_t)mb * 16, i;
	struct chunk *c = calloc(n, sizeof(*c));
	struct mreg_store *w;
	uint8_t *data = malloc(CH);
	double plain, pre, raw, t0;
	int bad = 0;

	cfg.endpoint = endpoint;	/* no proxy in the way */
	w = s3open(&cfg);
	for (i = 0; i < n; i++) {
		fill(data, CH, 10000 + i);
		c[i].data = NULL;
		c[i].len = CH;
		chunkid_of(data, CH, &c[i].id);
		bad += store_put(w, &c[i].id, data, CH, &c[i].loc) != 0;
	}
	CHECK(bad == 0 && store_sync(w) == 0, "bench: %u MiB written", mb);
	store_close(w);
	w = s3open(&cfg);
	t0 = now_s();
	for (i = 0; i < n; i++)
		bad += store_get(w, &c[i].loc, &c[i].id, data) != 0;
	raw = now_s() - t0;
	CHECK(bad == 0, "bench: the S3 store alone, one get after another");
	store_close(w);
	plain = cold_read(&cfg, c, n, 0);
	pre = cold_read(&cfg, c, n, 16);
	printf("# bench: cold sequential read of %u MiB (%zu chunks of 64 "
	       "KiB): S3 store alone %.2f s (%.0f MB/s); through the cache "
	       "%.2f s without prefetch (%.0f MB/s), %.2f s with prefetch 16 "
	       "ahead (%.0f MB/s): %.1fx\n", mb, n, raw, mb * 1.048576 / raw,
	       plain, mb * 1.048576 / plain, pre, mb * 1.048576 / pre,
	       plain / pre);
	free(data);
	free(c);
}

int main(void)
{
	char why[256];
	const char *mb = getenv("MREG_CACHE_BENCH_MB");

	if (!rgw_setup("cache", why, sizeof(why))) {
		printf("ok 1 - cache # SKIP %s\n", why);
		return 0;
	}
	log_set_level(LOG_LVL_WARN);
	proxy_up();
	if (asprintf(&proxied_ep, "http://127.0.0.1:%u", proxy_port) < 0)
		abort();
	test_open();
	test_lru();
	test_damage();
	test_prefetch();
	test_delete();
	if (mb && atoi(mb) > 0)
		bench((unsigned)atoi(mb));
	return check_done();
}
