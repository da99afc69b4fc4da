/* test-s3store.c — the S3 chunk store (core/store/s3/) against a real
 * radosgw (tests/services/rgw.sh, started here, or MREG_RGW_DIR's): put,
 * sync and get round trips, a multipart object and objects rolling over,
 * two writer sessions that never share a name, damaged and missing
 * objects (-EIO, -ENOENT, never wrong bytes), containers, claim and
 * delete inside and past the grace, batch_check past half the grace,
 * iterate, maint aborting stale multipart uploads, a sync that fails and
 * stays failed until the batch ends, and connections cut mid-GET through
 * tests/services/faultproxy.py. Every test writes under a key prefix of
 * its own. Skipped, with the reason, where Ceph is not installed.
 */
#include "store/store.h"

#include "store/packfmt.h"
#include "store/s3/s3.h"
#include "store/s3/s3store.h"

#include "rgw.h"
#include "chunks.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

static unsigned prefixes;

/* A configuration writing under a key prefix no other test uses. */
static struct s3_store_config config(unsigned grace_s)
{
	struct s3_store_config cfg = {
		.endpoint = endpoint,
		.bucket = getenv("MREG_S3_BUCKET"),
		.region = getenv("MREG_S3_REGION"),
		.path_style = true,
		.gc_grace_s = grace_s,
	};
	static char names[32][64];
	char *p = names[prefixes++ % 32];

	snprintf(p, sizeof(names[0]), "t-s3store-%d-%u/", (int)getpid(),
		 prefixes);
	cfg.key_prefix = p;
	return cfg;
}

static struct mreg_store *open_store(const struct s3_store_config *cfg,
				     uint64_t pack_size)
{
	struct store_options o = { .backend = "s3", .pack_size = pack_size,
				   .sync = true, .backend_cfg = cfg };
	struct mreg_store *s = NULL;
	int r = store_open(&o, &s);

	if (r) {
		printf("Bail out! s3 store open: %s\n", strerror(-r));
		exit(1);
	}
	return s;
}

static int try_open(const struct s3_store_config *cfg)
{
	struct store_options o = { .backend = "s3", .backend_cfg = cfg };
	struct mreg_store *s = NULL;
	int r = store_open(&o, &s);

	if (!r)
		store_close(s);
	return r;
}

static uint64_t container_of(struct mreg_store *s, const struct chunk *c)
{
	struct store_span sp;

	if (store_loc_span(s, &c->loc, &sp))
		return 0;
	return sp.container;
}

static struct s3_client *client(void)
{
	struct s3_config cc = { .endpoint = endpoint,
				.bucket = getenv("MREG_S3_BUCKET"),
				.path_style = true };
	struct s3_client *c = NULL;

	if (s3_open(&cc, &c)) {
		printf("Bail out! s3_open\n");
		exit(1);
	}
	return c;
}

static void key_of(const struct s3_store_config *cfg, uint64_t id,
		   char *key, size_t size)
{
	snprintf(key, size, "%spacks/%016llx", cfg->key_prefix,
		 (unsigned long long)id);
}

/* ---- the tests ---- */

static void test_open(void)
{
	struct s3_store_config cfg = config(0);
	char *cred, *secret = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
	FILE *f;

	capture();
	CHECK_EQ(store_open(&(struct store_options){ .backend = "s3" },
			    &(struct mreg_store *){ NULL }),
		 -EINVAL, "open: no s3 configuration is -EINVAL");
	CHECK(strstr(logged, "configuration") != NULL, "... said: %s",
	      logged);
	log_set_sink(NULL, NULL);
	cfg.key_prefix = "noslash";
	CHECK_EQ(try_open(&cfg), -EINVAL, "open: a key prefix without a "
		 "final '/' is -EINVAL");
	cfg = config(0);
	cfg.part_size = MiB;
	CHECK_EQ(try_open(&cfg), -EINVAL, "open: parts under 5 MiB: -EINVAL");
	cfg = config(0);
	capture();
	setenv("AWS_SECRET_ACCESS_KEY", "wrong", 1);
	CHECK_EQ(try_open(&cfg), -EACCES, "open: a wrong secret is -EACCES");
	setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
	CHECK(strstr(logged, "wrong secret key") && lines(logged) == 1,
	      "... said in one line: %s", logged);
	cfg.bucket = "no-such-bucket";
	capture();
	CHECK_EQ(try_open(&cfg), -ENOENT, "open: a missing bucket is -ENOENT");
	CHECK(strstr(logged, "no such bucket") != NULL, "... said: %s", logged);
	cfg = config(0);
	if (asprintf(&cred, "%s/cred", tmp) < 0)
		abort();
	f = fopen(cred, "w");
	fprintf(f, "[default]\naws_access_key_id = %s\n"
		"aws_secret_access_key = %s\n", getenv("AWS_ACCESS_KEY_ID"),
		secret);
	fclose(f);
	chmod(cred, 0644);
	cfg.credentials = cred;
	capture();
	CHECK_EQ(try_open(&cfg), -EACCES, "open: a credentials file others "
		 "may read is refused (-EACCES)");
	CHECK(strstr(logged, "chmod 600") != NULL, "... saying so: %s",
	      logged);
	chmod(cred, 0600);
	CHECK_EQ(try_open(&cfg), 0, "open: the same file mode 600 works");
	log_set_sink(NULL, NULL);
	free(cred);
	free(secret);
}

static void test_roundtrip(void)
{
	struct s3_store_config cfg = config(0);
	struct mreg_store *s = open_store(&cfg, 0), *other;
	static const uint32_t lens[] = { 1, 0, 4096, 65536, 100000, 7, 300000 };
	struct chunk c[7];
	struct store_span sp;
	char name[256];
	int i, bad = 0, bad_other = 0, bad_before = 0;
	struct mreg_id wrong;

	for (i = 0; i < 7; i++) {
		chunk_make(&c[i], lens[i], (uint64_t)i + 1);
		bad += put(s, &c[i]) != 0;
	}
	CHECK(bad == 0, "roundtrip: 7 puts");
	CHECK_EQ(c[0].loc.len, 20, "roundtrip: a location is 20 bytes");
	for (i = 0; i < 7; i++)
		bad_before += get(s, &c[i]) != 0;
	CHECK(bad_before == 0, "roundtrip: gets before sync find the bytes");
	CHECK_EQ(store_sync(s), 0, "roundtrip: sync");
	CHECK_EQ(store_loc_span(s, &c[0].loc, &sp), 0, "roundtrip: span");
	CHECK(sp.off == PACK_HEADER_SIZE && sp.len == 1 &&
	      sp.size == PACK_RECORD_HEADER + 1 && sp.container != 0,
	      "... the first record right after the header");
	store_loc_name(s, &c[3].loc, name, sizeof(name));
	CHECK(strstr(name, cfg.key_prefix) && strstr(name, "(65536 bytes)"),
	      "roundtrip: loc_name says '%s'", name);
	other = open_store(&cfg, 0);
	for (i = 0; i < 7; i++) {
		bad += get(s, &c[i]) != 0;
		bad_other += get(other, &c[i]) != 0;
	}
	CHECK(bad == 0, "roundtrip: gets after sync (ranged GETs)");
	CHECK(bad_other == 0, "roundtrip: another store (host) reads them");
	wrong = c[3].id;
	wrong.b[0] ^= 1;
	capture();
	CHECK_EQ(store_get(s, &c[3].loc, &wrong, c[3].data), -EIO,
		 "roundtrip: a get naming another id is -EIO");
	CHECK(strstr(logged, "record names another chunk") != NULL,
	      "... logged: %s", logged);
	log_set_sink(NULL, NULL);
	sp = (struct store_span){ 0 };
	c[6].loc.len = 16;
	CHECK_EQ(store_loc_span(s, &c[6].loc, &sp), -EIO,
		 "roundtrip: a 16-byte (pack) location is -EIO");
	CHECK_EQ(store_cut(s, sp.container, 16), -EOPNOTSUPP,
		 "roundtrip: cut is -EOPNOTSUPP");
	CHECK(store_caps(s) == 0, "roundtrip: no caps (no cut, not local)");
	{
		uint64_t room = 0;

		CHECK(store_room(s, &room) == 0 && room == UINT64_MAX,
		      "roundtrip: room is UINT64_MAX");
	}
	store_close(other);
	store_close(s);
	chunks_free(c, 7);
}

static int count_container(void *arg, const struct store_container *c)
{
	uint64_t *v = arg;

	v[0]++;
	v[1] += c->size;
	v[2] += c->busy;
	return 0;
}

static int count_upload(void *arg, UNUSED const char *key,
			UNUSED const char *id, UNUSED time_t when)
{
	(*(unsigned *)arg)++;
	return 0;
}

static void test_multipart(void)
{
	struct s3_store_config cfg = config(0);
	struct mreg_store *s, *other;
	struct s3_client *cl = client();
	enum { N = 96 };
	struct chunk *c = calloc(N, sizeof(*c));
	uint64_t v[3] = { 0 }, want = 0, c0, c1;
	char key[1200], prefix[1200];
	struct s3_stat st;
	unsigned ups = 0;
	int i, bad = 0;

	cfg.part_size = 5 * MiB;
	cfg.parts_inflight = 2;
	s = open_store(&cfg, 0);
	for (i = 0; i < N / 2; i++) {
		chunk_make(&c[i], 256 * KiB, 100 + (uint64_t)i);
		bad += put(s, &c[i]) != 0;
	}
	CHECK(bad == 0, "multipart: 12 MiB put (two parts sent)");
	CHECK_EQ(get(s, &c[0]), 0, "multipart: a get of a chunk in a part "
		 "already sent ends the object and reads it back");
	for (; i < N; i++) {
		chunk_make(&c[i], 256 * KiB, 100 + (uint64_t)i);
		bad += put(s, &c[i]) != 0;
	}
	CHECK(bad == 0 && store_sync(s) == 0, "multipart: 12 MiB more, "
	      "sync");
	c0 = container_of(s, &c[0]);
	c1 = container_of(s, &c[N - 1]);
	CHECK(c0 && c1 && c0 != c1 && c1 == c0 + 1, "multipart: two objects, "
	      "numbered in sequence");
	key_of(&cfg, c1, key, sizeof(key));
	CHECK(s3_head(cl, key, &st) == 0 && strstr(st.etag, "-3"),
	      "multipart: the second went up in 3 parts (ETag '%s')",
	      st.etag);
	other = open_store(&cfg, 0);
	for (i = 0; i < N; i++)
		bad += get(other, &c[i]) != 0;
	CHECK(bad == 0, "multipart: every chunk read back by another store");
	CHECK_EQ(store_containers(s, count_container, v), 0,
		 "multipart: containers");
	for (i = 0; i < N; i++)
		want += PACK_RECORD_HEADER + c[i].len;
	CHECK(v[0] == 2 && v[1] == want + 2 * PACK_HEADER_SIZE,
	      "... 2 objects holding every record (%llu bytes)",
	      (unsigned long long)v[1]);
	snprintf(prefix, sizeof(prefix), "%spacks/", cfg.key_prefix);
	CHECK(s3_mpu_list(cl, prefix, count_upload, &ups) == 0 && ups == 0,
	      "multipart: no upload left open");
	store_close(other);
	store_close(s);
	chunks_free(c, N);

	/* objects roll over at pack_size */
	cfg = config(0);
	s = open_store(&cfg, 3 * MiB);
	for (i = 0; i < 10; i++) {
		chunk_make(&c[i], MiB, 300 + (uint64_t)i);
		bad += put(s, &c[i]) != 0;
	}
	CHECK(bad == 0 && store_sync(s) == 0, "roll over: 10 MiB put");
	memset(v, 0, sizeof(v));
	store_containers(s, count_container, v);
	CHECK_EQ(v[0], 5, "roll over: 3 MiB objects hold 2 chunks of 1 MiB");
	for (i = 0; i < 10; i++)
		bad += get(s, &c[i]) != 0;
	CHECK(bad == 0, "roll over: all read back");
	store_close(s);
	chunks_free(c, 10);
	free(c);
	s3_close(cl);
}

struct writer {
	struct mreg_store *s;
	struct chunk c[100];
	int bad;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	int i;

	for (i = 0; i < 100; i++) {
		w->bad += put(w->s, &w->c[i]) != 0;
		if (i % 10 == 9)
			w->bad += store_sync(w->s) != 0;
	}
	return NULL;
}

/* close ends the object being written: nothing put is lost. */
static void test_close(void)
{
	struct s3_store_config cfg = config(0);
	struct mreg_store *s = open_store(&cfg, 0);
	struct chunk c;

	chunk_make(&c, 12345, 31);
	CHECK_EQ(put(s, &c), 0, "close: a put, no sync");
	store_close(s);
	s = open_store(&cfg, 0);
	CHECK_EQ(get(s, &c), 0, "close: ... uploaded it: another store "
		 "reads it");
	store_close(s);
	free(c.data);
}

static void test_sessions(void)
{
	struct s3_store_config cfg = config(0);
	struct mreg_store *a, *b;
	struct writer *w = calloc(2, sizeof(*w));
	pthread_t t[2];
	uint64_t ca, cb;
	int i, j, k, same = 0, bad = 0;

	cfg.try_session = 0x123456789aull;
	a = open_store(&cfg, 0);
	chunk_make(&w[0].c[0], 1000, 1);
	CHECK(put(a, &w[0].c[0]) == 0 && store_sync(a) == 0,
	      "sessions: A writes under session 123456789a");
	ca = container_of(a, &w[0].c[0]);
	CHECK_EQ(ca >> 24, 0x123456789aull, "... its object is 123456789a...");
	b = open_store(&cfg, 0);
	chunk_make(&w[1].c[0], 1000, 2);
	CHECK(put(b, &w[1].c[0]) == 0 && store_sync(b) == 0,
	      "sessions: B, told to try the same session, writes");
	cb = container_of(b, &w[1].c[0]);
	CHECK(cb >> 24 != 0x123456789aull && cb != ca,
	      "... under another session (%010llx): the prefix was taken",
	      (unsigned long long)(cb >> 24));
	CHECK(get(a, &w[0].c[0]) == 0 && get(b, &w[1].c[0]) == 0,
	      "... and both objects hold their own bytes");
	free(w[0].c[0].data);
	free(w[1].c[0].data);

	/* two writers at once, syncing often */
	w[0].s = a;
	w[1].s = b;
	for (i = 0; i < 2; i++)
		for (j = 0; j < 100; j++)
			chunk_make(&w[i].c[j], 20000 + (uint32_t)j,
				   (uint64_t)(1000 * i + j));
	for (i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, writer_main, &w[i]);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHECK(w[0].bad == 0 && w[1].bad == 0, "sessions: two writers, 100 "
	      "puts and 10 syncs each");
	for (j = 0; j < 100; j++)
		for (k = 0; k < 100; k++)
			same += container_of(a, &w[0].c[j]) ==
				container_of(b, &w[1].c[k]);
	CHECK_EQ(same, 0, "sessions: no object of one is an object of the "
		 "other");
	for (i = 0; i < 2; i++)
		for (j = 0; j < 100; j++)
			bad += get(w[1 - i].s, &w[i].c[j]) != 0;
	CHECK(bad == 0, "sessions: each reads every chunk of the other");
	for (i = 0; i < 2; i++)
		chunks_free(w[i].c, 100);
	free(w);
	store_close(a);
	store_close(b);
}

struct seen {
	struct chunk *c;
	int n, bad;
};

static int seen_one(void *arg, const struct mreg_id *id,
		    const struct chunk_loc *loc, const void *data,
		    uint32_t len)
{
	struct seen *sn = arg;
	const struct chunk *c = &sn->c[sn->n++];

	sn->bad += !chunkid_eq(id, &c->id) || !chunk_loc_eq(loc, &c->loc) ||
		   len != c->len || memcmp(data, c->data, len);
	return 0;
}

/* Rewrites object key through f: the damage a test wants. */
static void tamper(struct s3_client *cl, const char *key,
		   size_t (*f)(uint8_t *b, size_t n, size_t at), size_t at)
{
	struct s3_stat st;
	uint8_t *b;
	ssize_t n;

	if (s3_head(cl, key, &st))
		abort();
	b = malloc(st.size);
	n = s3_get(cl, key, 0, st.size, b);
	if (n != (ssize_t)st.size || s3_put(cl, key, b, f(b, st.size, at)))
		abort();
	free(b);
}

static size_t flip_at(uint8_t *b, size_t n, size_t at)
{
	b[at] ^= 0x40;
	return n;
}

static size_t cut_at(UNUSED uint8_t *b, UNUSED size_t n, size_t at)
{
	return at;
}

static void test_damage(void)
{
	struct s3_store_config cfg = config(0);
	struct mreg_store *s = open_store(&cfg, 0);
	struct s3_client *cl = client();
	struct chunk c[4];
	struct seen sn = { c, 0, 0 };
	struct store_span sp;
	char key[1200];
	int i, bad = 0;

	for (i = 0; i < 4; i++) {
		chunk_make(&c[i], 5000, 50 + (uint64_t)i);
		bad += put(s, &c[i]) != 0;
	}
	CHECK(bad == 0 && store_sync(s) == 0, "damage: 4 chunks in one "
	      "object");
	CHECK(store_iterate(s, container_of(s, &c[0]), seen_one, &sn) == 0 &&
	      sn.n == 4 && sn.bad == 0, "iterate: the 4 records in order, "
	      "with their ids, locations and bytes");
	key_of(&cfg, container_of(s, &c[0]), key, sizeof(key));
	store_loc_span(s, &c[1].loc, &sp);
	tamper(cl, key, flip_at, sp.off + 1);	/* record 1's magic */
	capture();
	CHECK_EQ(get(s, &c[1]), -EIO, "damage: a bad record header is -EIO");
	CHECK(strstr(logged, "bad record magic") && strstr(logged, key),
	      "... logged with the object: %s", logged);
	CHECK_EQ(get(s, &c[0]), 0, "damage: the record before still reads");
	sn.n = sn.bad = 0;
	CHECK(store_iterate(s, container_of(s, &c[0]), seen_one, &sn) ==
	      -EIO && sn.n == 1 && sn.bad == 0, "iterate: the damage ends "
	      "the walk with -EIO after the record before it");
	store_loc_span(s, &c[3].loc, &sp);
	tamper(cl, key, cut_at, sp.off + sp.size - 10);
	capture();
	CHECK_EQ(get(s, &c[3]), -EIO, "damage: a record cut short by the "
	      "object's end is -EIO");
	CHECK(strstr(logged, "ends inside") != NULL, "... logged: %s",
	      logged);
	log_set_sink(NULL, NULL);
	s3_delete(cl, key);
	CHECK_EQ(get(s, &c[0]), -ENOENT, "damage: an object gone is -ENOENT");
	CHECK_EQ(store_iterate(s, container_of(s, &c[0]), seen_one, &sn),
		 -ENOENT, "iterate: an object gone is -ENOENT");
	store_close(s);
	s3_close(cl);
	chunks_free(c, 4);
}

static void test_containers(void)
{
	struct s3_store_config cfg = config(2);
	struct mreg_store *s = open_store(&cfg, 0);
	struct chunk c;
	uint64_t v[3] = { 0 }, id, size = 0, bytes = 0;

	chunk_make(&c, 10000, 77);
	CHECK(put(&*s, &c) == 0 && store_sync(s) == 0, "containers: one "
	      "object, grace 2 s");
	id = container_of(s, &c);
	store_containers(s, count_container, v);
	CHECK(v[0] == 1 && v[2] == 1, "containers: listed, busy");
	CHECK_EQ(store_claim(s, id), -EBUSY, "claim: busy in the grace");
	CHECK_EQ(store_delete(s, id), -EBUSY, "delete: busy in the grace");
	CHECK(store_container_size(s, id, &size) == 0 &&
	      size == PACK_HEADER_SIZE + PACK_RECORD_HEADER + 10000,
	      "container_size: %llu", (unsigned long long)size);
	CHECK(store_bytes(s, &bytes) == 0 && bytes == size,
	      "bytes: the sum of the objects");
	sleep(4);
	memset(v, 0, sizeof(v));
	store_containers(s, count_container, v);
	CHECK(v[0] == 1 && v[2] == 0, "containers: past the grace, not busy");
	CHECK_EQ(store_claim(s, id), 0, "claim: past the grace");
	store_unclaim(s, id);
	CHECK_EQ(store_delete(s, id), 0, "delete: past the grace");
	CHECK_EQ(get(s, &c), -ENOENT, "delete: its chunks are -ENOENT");
	CHECK_EQ(store_claim(s, id), -ENOENT, "claim: -ENOENT once gone");
	CHECK_EQ(store_delete(s, id), -ENOENT, "delete: -ENOENT once gone");
	memset(v, 0, sizeof(v));
	store_containers(s, count_container, v);
	CHECK_EQ(v[0], 0, "containers: none left");
	store_close(s);
	free(c.data);
}

static void test_batch_check(void)
{
	struct s3_store_config cfg = config(2);
	struct mreg_store *s = open_store(&cfg, 0);
	struct chunk c;

	chunk_make(&c, 1000, 5);
	store_batch_begin(s);
	CHECK(put(s, &c) == 0 && store_sync(s) == 0 &&
	      store_batch_check(s) == 0, "batch_check: 0 at once");
	usleep(1300 * 1000);
	CHECK_EQ(store_batch_check(s), -EAGAIN, "batch_check: -EAGAIN past "
		 "half the grace (1 s of 2)");
	store_batch_end(s);
	store_batch_begin(s);
	CHECK(put(s, &c) == 0 && store_sync(s) == 0 &&
	      store_batch_check(s) == 0, "batch_check: a new batch, put "
	      "again: 0");
	store_batch_end(s);
	CHECK_EQ(store_batch_check(s), 0, "batch_check: 0 with no batch");
	store_close(s);
	free(c.data);
}

static void test_maint(void)
{
	struct s3_store_config cfg = config(2);
	struct mreg_store *s = open_store(&cfg, 0);
	struct s3_client *cl = client();
	struct s3_upload *u, *dead;
	char key[1200], prefix[1200], other[1200];
	unsigned n = 0;

	key_of(&cfg, 0xdead000001ull, key, sizeof(key));
	snprintf(other, sizeof(other), "%sother/x", cfg.key_prefix);
	snprintf(prefix, sizeof(prefix), "%s", cfg.key_prefix);
	CHECK(s3_mpu_create(cl, key, &dead) == 0, "maint: a writer begins "
	      "an upload and dies (it is never completed)");
	CHECK(s3_mpu_create(cl, other, &u) == 0, "maint: an upload of "
	      "another key");
	CHECK(store_maint(s) == 0 && s3_mpu_list(cl, prefix, count_upload,
						 &n) == 0 && n == 2,
	      "maint: both kept in the grace");
	sleep(4);
	n = 0;
	CHECK(store_maint(s) == 0 && s3_mpu_list(cl, prefix, count_upload,
						 &n) == 0 && n == 1,
	      "maint: past the grace, the pack upload is aborted, not the "
	      "other key's");
	s3_mpu_abort(dead);	/* frees it: the upload is gone already */
	s3_mpu_abort(u);
	store_close(s);
	s3_close(cl);
}

/* Through the fault proxy: a client that gives up after 3 attempts. */
static struct s3_store_config proxied(char **ep)
{
	struct s3_store_config cfg = config(0);

	if (asprintf(ep, "http://127.0.0.1:%u", proxy_port) < 0)
		abort();
	cfg.endpoint = *ep;
	cfg.attempts = 3;
	cfg.timeout_ms = 20000;
	return cfg;
}

static void test_faults(void)
{
	char *ep;
	struct s3_store_config cfg = proxied(&ep);
	struct mreg_store *s = open_store(&cfg, 0);
	struct chunk c[2];
	uint8_t *b;

	chunk_make(&c[0], 200000, 7);
	chunk_make(&c[1], 3000, 8);
	CHECK(put(s, &c[1]) == 0 && store_sync(s) == 0, "fault: a session "
	      "begins (its marker and a first object)");
	store_batch_begin(s);
	proxy("status 500 3 on=PUT");
	CHECK(put(s, &c[0]) == 0, "fault: a put (buffered)");
	capture();
	CHECK_EQ(store_sync(s), -EIO, "fault: sync meets 500 three times: "
		 "-EIO");
	CHECK(strstr(logged, "given up") != NULL, "... the object is given "
	      "up: %s", logged);
	CHECK(put(s, &c[1]) == 0 && store_sync(s) == -EIO,
	      "fault: a later sync in the same batch still fails");
	store_batch_end(s);
	log_set_sink(NULL, NULL);
	store_batch_begin(s);
	CHECK(put(s, &c[0]) == 0 && store_sync(s) == 0 &&
	      get(s, &c[0]) == 0, "fault: once the batch ended, put again "
	      "in a new one: synced and read back");
	store_batch_end(s);

	/* a failure of chunks put outside any batch stays until close */
	CHECK(put(s, &c[1]) == 0, "fault: a put outside any batch");
	proxy("status 500 3 on=PUT");
	CHECK_EQ(store_sync(s), -EIO, "fault: its sync fails");
	store_batch_begin(s);
	store_batch_end(s);
	CHECK_EQ(store_sync(s), -EIO, "fault: ... and keeps failing after "
		 "batches came and went: nothing could name them");
	store_close(s);
	s = open_store(&cfg, 0);

	proxy("cut 5000 1 on=GET");
	CHECK_EQ(get(s, &c[0]), 0, "fault: a GET cut mid-body is retried: "
		 "the right bytes");
	proxy("cut 5000 3 on=GET");
	b = malloc(c[0].len);
	memset(b, 0x5a, c[0].len);
	CHECK_EQ(store_get(s, &c[0].loc, &c[0].id, b), -EIO,
		 "fault: cut on every attempt: -EIO");
	CHECK(b[0] == 0x5a && b[c[0].len - 1] == 0x5a, "... and nothing "
	      "written into the caller's buffer");
	proxy("reset 2 on=GET");
	CHECK_EQ(get(s, &c[0]), 0, "fault: two resets, then the bytes");
	proxy("clear");
	free(b);
	store_close(s);
	chunks_free(c, 2);
	free(ep);
}

int main(void)
{
	char why[256];

	if (!rgw_setup("s3store", why, sizeof(why))) {
		printf("ok 1 - s3 store # SKIP %s\n", why);
		return 0;
	}
	log_set_level(LOG_LVL_WARN);
	test_open();
	test_roundtrip();
	test_multipart();
	test_close();
	test_sessions();
	test_damage();
	test_containers();
	test_batch_check();
	test_maint();
	proxy_up();
	test_faults();
	return check_done();
}
