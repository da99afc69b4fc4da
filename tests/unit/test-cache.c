/* test-cache.c — the host cache (core/store/cache/) in front of the S3
 * store, against a real radosgw (tests/services/rgw.sh, started here, or
 * MREG_RGW_DIR's) reached through tests/services/faultproxy.py, whose
 * request count shows what went to the object store: write-through, hits
 * that send nothing, eviction under the size bound in LRU order, the
 * order rebuilt from mtimes at open, a damaged cached copy fetched again,
 * a damaged remote copy -EIO and never kept, prefetch (chunks next to
 * each other in one GET, gets waiting for it, a damaged record failing
 * alone, a full queue taking fewer), a cold read with the connection cut,
 * store_fill() (everything here afterwards, bounded by the cache's size,
 * its errors) and two processes sharing a cache directory. With
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
	char *path, *dead, *live;
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

	/* the order comes back from the mtimes; what a process that is
	   gone left half-written goes, a live one's stays */
	if (asprintf(&dead, "%s/0a/tmp.999999999.1", path) < 0 ||
	    asprintf(&live, "%s/0b/tmp.%d.1", path, (int)getpid()) < 0)
		abort();
	close(open(dead, O_CREAT | O_WRONLY, 0600));
	close(open(live, O_CREAT | O_WRONLY, 0600));
	s = copen(&cfg, path, 2 * FILE_SIZE, NULL);
	CHECK(access(dead, F_OK) != 0 && access(live, F_OK) == 0,
	      "lru: reopened, a dead process's half-written file is removed, "
	      "a live one's kept");
	unlink(live);
	free(dead);
	free(live);
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
	CHECK_EQ(store_prefetch(s, locs, ids, N), (size_t)N,
		 "prefetch: 48 chunks (3 MiB) taken");
	for (i = 0; i < N; i++)
		bad += get(s, &c[i]) != 0;
	CHECK(bad == 0, "prefetch: then 48 gets, the right bytes");
	CHECK(requests() - n0 >= 3 && requests() - n0 <= 6,
	      "prefetch: chunks next to each other in one GET of up to "
	      "1 MiB: %d GETs for 48 chunks; gets waited for them",
	      requests() - n0);
	for (i = 0; i < N; i++)
		bad += !cached(path, &c[i]);
	CHECK(bad == 0, "prefetch: every chunk kept");
	n0 = requests();
	store_prefetch(s, locs, ids, N);
	for (i = 0; i < N; i++)
		bad += get(s, &c[i]) != 0;
	CHECK(bad == 0 && requests() == n0, "prefetch: of cached chunks: "
	      "nothing sent");
	CHECK_EQ(store_prefetch(s, locs, NULL, N), (size_t)N,
		 "prefetch: without ids: taken, as a hint...");
	CHECK(requests() == n0, "... and nothing done");
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

	/* an outage meets 36 prefetches of chunks one GET each (in
	   reverse order: no run): the queue is given up at the first
	   failures, not retried job after job */
	for (i = 0; i < 36; i++) {
		locs[i] = c[47 - i].loc;
		ids[i] = c[47 - i].id;
	}
	proxy("status 503 1000");
	n0 = requests();
	store_prefetch(s, locs, ids, 36);
	CHECK_EQ(get(s, &c[12]), -EIO, "outage: a get of the last chunk "
		 "prefetched is -EIO");
	CHECK(requests() - n0 < 60, "... after %d requests: the queued "
	      "prefetches were given up, not each tried 3 times",
	      requests() - n0);
	proxy("clear");
	CHECK(get(s, &c[12]) == 0 && get(s, &c[47]) == 0,
	      "outage: over, the chunks read");

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

/* A record damaged in the object store: the run it is read in fails
 * alone; the others of the run are read again one by one and kept. */
static void test_run_damage(void)
{
	struct s3_store_config cfg = s3cfg();
	struct s3_config cc = { .endpoint = endpoint, .bucket = cfg.bucket,
				.path_style = true };
	enum { N = 8 };
	struct chunk c[N];
	struct chunk_loc locs[N];
	struct mreg_id ids[N];
	struct mreg_store *w, *s;
	struct s3_client *cl;
	struct store_span sp;
	char *path, key[1200];
	uint8_t *obj;
	ssize_t n;
	int i, bad = 0;

	w = s3open(&cfg);
	for (i = 0; i < N; i++) {
		chunk_make(&c[i], CH, 300 + (uint64_t)i);
		bad += put(w, &c[i]) != 0;
		locs[i] = c[i].loc;
		ids[i] = c[i].id;
	}
	CHECK(bad == 0 && store_sync(w) == 0, "run damage: 8 chunks in one "
	      "object");
	store_loc_span(w, &c[3].loc, &sp);
	store_close(w);
	if (s3_open(&cc, &cl))
		abort();
	snprintf(key, sizeof(key), "%spacks/%016llx", cfg.key_prefix,
		 (unsigned long long)sp.container);
	obj = malloc(16 * CH);
	n = s3_get(cl, key, 0, 16 * CH, obj);
	obj[sp.off + PACK_RECORD_HEADER + 77] ^= 0x40;
	CHECK(n > 0 && s3_put(cl, key, obj, (size_t)n) == 0,
	      "run damage: a data byte of chunk 3 flipped in the object");
	s = copen(&cfg, NULL, 64 << 20, &path);
	capture();
	store_prefetch(s, locs, ids, N);
	for (i = 0; i < N; i++)
		if (i != 3)
			bad += get(s, &c[i]) != 0;
	CHECK(bad == 0, "run damage: the 7 others read right");
	CHECK_EQ(get(s, &c[3]), -EIO, "run damage: chunk 3 is -EIO");
	for (i = 0; i < N; i++)
		bad += cached(path, &c[i]) != (i != 3);
	CHECK(bad == 0, "run damage: the 7 others kept, not chunk 3");
	log_set_sink(NULL, NULL);
	store_close(s);
	s3_close(cl);
	free(obj);
	free(path);
	chunks_free(c, N);
}

/* More chunks than the queue holds: prefetch takes what fits and says
 * so; the rest is read on demand. */
static void test_queue_full(void)
{
	struct s3_store_config cfg = s3cfg();
	enum { N = 1100 };
	struct chunk *c = calloc(N, sizeof(*c));
	struct chunk_loc *locs = calloc(N, sizeof(*locs));
	struct mreg_id *ids = calloc(N, sizeof(*ids));
	struct mreg_store *w, *s;
	size_t took;
	int i, bad = 0;

	w = s3open(&cfg);
	for (i = 0; i < N; i++) {
		chunk_make(&c[i], 1000, 20000 + (uint64_t)i);
		bad += put(w, &c[i]) != 0;
		locs[i] = c[i].loc;
		ids[i] = c[i].id;
	}
	CHECK(bad == 0 && store_sync(w) == 0, "queue: 1100 small chunks");
	store_close(w);
	s = copen(&cfg, NULL, 64 << 20, NULL);
	took = store_prefetch(s, locs, ids, N);
	CHECK_EQ(took, (size_t)1024, "queue: a prefetch of 1100 takes the "
		 "1024 the queue holds");
	for (i = 0; i < N; i++)
		bad += get(s, &c[i]) != 0;
	CHECK(bad == 0, "queue: all 1100 read right");
	store_close(s);
	chunks_free(c, N);
	free(c);
	free(locs);
	free(ids);
}

static void test_fill(void)
{
	struct s3_store_config cfg = s3cfg();
	enum { N = 40 };
	struct chunk c[N];
	struct chunk_loc locs[N];
	struct mreg_id ids[N];
	struct mreg_store *w, *s, *t;
	uint64_t fetched = 0, want = 0;
	struct store_span sp;
	char *path;
	int i, bad = 0, n0;

	w = s3open(&cfg);
	for (i = 0; i < N; i++) {
		chunk_make(&c[i], CH - 100 * (uint32_t)i, 600 + (uint64_t)i);
		bad += put(w, &c[i]) != 0;
		locs[i] = c[i].loc;
		ids[i] = c[i].id;
		want += c[i].len;
	}
	CHECK(bad == 0 && store_sync(w) == 0, "fill: 40 chunks written by "
	      "another host");
	CHECK_EQ(store_fill(w, locs, ids, N, NULL), -EOPNOTSUPP,
		 "fill: the s3 store alone has no cache to fill");
	store_close(w);

	s = copen(&cfg, NULL, 64 << 20, &path);
	/* a second process of this host, on the same directory */
	t = copen(&cfg, path, 64 << 20, NULL);
	n0 = requests();
	CHECK_EQ(store_fill(s, locs, ids, N, &fetched), 0, "fill: 40 chunks "
		 "into an empty cache");
	CHECK(fetched == want, "fill: ... all fetched (%llu bytes)",
	      (unsigned long long)fetched);
	CHECK(requests() - n0 <= 6, "fill: in few GETs (%d)",
	      requests() - n0);
	for (i = 0; i < N; i++)
		bad += !cached(path, &c[i]);
	CHECK(bad == 0, "fill: every chunk in the cache when it returns");
	n0 = requests();
	for (i = 0; i < N; i++)
		bad += get(s, &c[i]) != 0;
	CHECK(bad == 0 && requests() == n0, "fill: then gets send nothing");
	CHECK_EQ(store_fill(s, locs, ids, N, &fetched), 0, "fill: again...");
	CHECK(fetched == 0 && requests() == n0, "... fetches nothing");
	for (i = 0; i < N; i++)
		bad += get(t, &c[i]) != 0;
	CHECK(bad == 0 && requests() == n0, "shared: another process's "
	      "cache on the same directory reads them without a GET");
	store_close(t);
	store_close(s);
	free(path);

	s = copen(&cfg, NULL, 20 * CH, &path);
	capture();
	n0 = requests();
	CHECK_EQ(store_fill(s, locs, ids, N, &fetched), -EFBIG,
		 "fill: more than the cache holds is -EFBIG");
	CHECK(strstr(logged, "do not fit in") != NULL, "... said: %s",
	      logged);
	CHECK(requests() == n0, "... before anything is fetched");
	CHECK_EQ(store_fill(s, locs, ids, 10, &fetched), 0,
		 "fill: 10 of them fit");
	store_close(s);
	free(path);

	/* the object store answers errors: a bounded failure, nothing kept */
	s = copen(&cfg, NULL, 64 << 20, &path);
	proxy("status 503 1000");
	CHECK_EQ(store_fill(s, locs, ids, N, &fetched), -EIO,
		 "fill: the object store answering 503 is -EIO once the "
		 "retries are spent");
	proxy("clear");
	for (i = 0; i < N; i++)
		bad += cached(path, &c[i]);
	CHECK(bad == 0, "fill: ... and nothing kept");
	CHECK_EQ(store_fill(s, locs, ids, N, &fetched), 0,
		 "fill: then it works, same store");
	store_close(s);
	free(path);

	/* a chunk whose object is gone (gc moved it) */
	cfg.gc_grace_s = 1;
	w = s3open(&cfg);
	store_loc_span(w, &c[0].loc, &sp);
	sleep(3);
	CHECK_EQ(store_delete(w, sp.container), 0, "fill: the object deleted");
	store_close(w);
	s = copen(&cfg, NULL, 64 << 20, NULL);
	CHECK_EQ(store_fill(s, locs, ids, N, &fetched), -ENOENT,
		 "fill: a chunk whose object is gone is -ENOENT");
	store_close(s);
	chunks_free(c, N);
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
	test_run_damage();
	test_queue_full();
	test_fill();
	if (mb && atoi(mb) > 0)
		bench((unsigned)atoi(mb));
	return check_done();
}
