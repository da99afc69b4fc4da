/* test-store.c — the chunk store: round trips across pack rollovers, reads
 * that refuse damaged data, two writers on one directory, gc locks, walks,
 * removal, cutting tails, sync failures, threads, and a real full disk (a tiny tmpfs).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "chunk/chunkid.h"
#include "index/records.h"
#include "log.h"
#include "util.h"
#include "store/store.h"

/* The pack backend's formats (store/pack/pack.c), which these tests poke
 * at in the files: a pack starts with a 16-byte header, a record with a
 * 24-byte one, and a location is u32 pack, u32 len, u64 offset of the
 * data, little-endian. Every call goes through store.h. */
#define PACK_HEADER_SIZE 16
#define PACK_RECORD_HEADER 24

struct ploc {
	uint32_t pack, len;
	uint64_t offset;
};

static struct ploc pl(const struct chunk_loc *l)
{
	struct ploc x = { 0 };
	int i;

	/* asked of every location the tests decode: a line only when not */
	if (l->len != 16)
		CHECK(0, "a pack location is 16 bytes (got %u)", l->len);
	for (i = 3; i >= 0; i--) {
		x.pack = x.pack << 8 | l->b[i];
		x.len = x.len << 8 | l->b[4 + i];
	}
	for (i = 7; i >= 0; i--)
		x.offset = x.offset << 8 | l->b[8 + i];
	return x;
}

static struct chunk_loc mkloc(struct ploc x)
{
	struct chunk_loc l = { .len = 16 };
	int i;

	for (i = 0; i < 4; i++) {
		l.b[i] = (uint8_t)(x.pack >> (8 * i));
		l.b[4 + i] = (uint8_t)(x.len >> (8 * i));
	}
	for (i = 0; i < 8; i++)
		l.b[8 + i] = (uint8_t)(x.offset >> (8 * i));
	return l;
}

/* store_open() of a pack store in dir. */
static int open_at(const char *dir, struct store_options *opt,
		   struct mreg_store **ret)
{
	opt->dir = dir;
	return store_open(opt, ret);
}

/* A chunk the tests can make again from its seed. */
struct rec {
	struct chunk_loc loc;
	struct mreg_id id;
	uint64_t seed;
	uint32_t len;
	bool synced;
};

static uint64_t rnd_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void fill(void *buf, uint32_t len, uint64_t seed)
{
	uint8_t *p = buf;
	uint64_t st = seed * 0x9e3779b97f4a7c15ull + 1, v = 0;
	uint32_t i;

	for (i = 0; i < len; i++) {
		if (i % 8 == 0)
			v = rnd_next(&st);
		p[i] = (uint8_t)(v >> (8 * (i % 8)));
	}
}

/* Makes the chunk of r (r->seed, r->len) and appends it. */
static int append_rec(struct mreg_store *s, struct rec *r, void *buf)
{
	fill(buf, r->len, r->seed);
	chunkid_of(buf, r->len, &r->id);
	return store_put(s, &r->id, buf, r->len, &r->loc);
}

/* Reads r back and compares: 0, or the error of store_get, or 1 when the
 * bytes differ. */
static int check_rec(struct mreg_store *s, const struct rec *r, void *buf,
		     void *want)
{
	int e;

	memset(buf, 0xa5, r->len);
	e = store_get(s, &r->loc, &r->id, buf);
	if (e)
		return e;
	fill(want, r->len, r->seed);
	return memcmp(buf, want, r->len) ? 1 : 0;
}

static char *pack_path(const char *dir, uint32_t pack)
{
	char *p;

	if (asprintf(&p, "%s/packs/pack-%08" PRIx32 ".pack", dir, pack) < 0)
		abort();
	return p;
}

static void poke(const char *dir, uint32_t pack, uint64_t off,
		 const void *b, size_t n)
{
	char *p = pack_path(dir, pack);
	int fd = open(p, O_RDWR);

	if (fd < 0 || pwrite(fd, b, n, (off_t)off) != (ssize_t)n)
		abort();
	close(fd);
	free(p);
}

static void peek(const char *dir, uint32_t pack, uint64_t off, void *b,
		 size_t n)
{
	char *p = pack_path(dir, pack);
	int fd = open(p, O_RDONLY);

	if (fd < 0 || pread(fd, b, n, (off_t)off) != (ssize_t)n)
		abort();
	close(fd);
	free(p);
}

static uint64_t file_size(const char *dir, uint32_t pack)
{
	char *p = pack_path(dir, pack);
	struct stat st;

	if (stat(p, &st) < 0)
		st.st_size = -1;
	free(p);
	return (uint64_t)st.st_size;
}

/* store_containers() into a small table. */
struct packs {
	uint32_t num[4096];
	uint64_t size[4096];
	bool busy[4096];
	int n;
};

static int list_cb(void *arg, const struct store_container *c)
{
	struct packs *l = arg;

	if (l->n == 4096)
		return -ENOSPC;
	if (c->base != PACK_HEADER_SIZE)
		CHECK(0, "a pack's base is its header (got %llu)",
		      (unsigned long long)c->base);
	l->num[l->n] = (uint32_t)c->id;
	l->size[l->n] = c->size;
	l->busy[l->n] = c->busy;
	l->n++;
	return 0;
}

static bool is_busy(struct mreg_store *s, uint32_t pack)
{
	static struct packs l;
	int i;

	l.n = 0;
	store_containers(s, list_cb, &l);
	for (i = 0; i < l.n; i++)
		if (l.num[i] == pack)
			return l.busy[i];
	return false;
}

/* ---- the interface: opening, locations, the CHUNKS value ---------------- */

static void le_put(uint8_t *p, uint64_t v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void test_interface(void)
{
	struct store_options opt = { .sync = false };
	char *dir = check_tmpdir("store-if");
	struct mreg_store *s;
	struct store_span sp;
	struct chunk_rec c, d;
	struct chunk_loc bad;
	struct ploc x;
	struct rec r[3] = { { .seed = 1, .len = 100 }, { .seed = 2, .len = 0 },
			    { .seed = 3, .len = 5000 } };
	uint8_t buf[8192], cmp[8192], val[CHUNK_REC_MAX], want[24];
	char name[256];
	int i, ok;

	CHECK_EQ(store_open(NULL, &s), -EINVAL, "store_open(NULL): EINVAL");
	opt.backend = "nope";
	opt.dir = dir;
	CHECK_EQ(store_open(&opt, &s), -EINVAL,
		 "an unknown backend: EINVAL");
	opt.backend = "pack";
	opt.dir = NULL;
	CHECK_EQ(store_open(&opt, &s), -EINVAL, "pack without a dir: EINVAL");
	opt.dir = dir;
	CHECK_EQ(store_open(&opt, &s), 0, "the pack backend by name");
	CHECK_EQ(store_caps(s), STORE_CAN_CUT | STORE_LOCAL,
		 "pack can cut and is local");
	CHECK_EQ(store_batch_check(s), 0, "pack: batch_check is 0");
	CHECK_EQ(store_maint(s), 0, "pack: maint is 0");
	CHECK_EQ(store_prefetch(s, &r[0].loc, NULL, 1), 1,
		 "pack: a prefetch is a hint that costs nothing: taken");
	CHECK_EQ(store_fill(s, &r[0].loc, &r[0].id, 1, NULL), -EOPNOTSUPP,
		 "pack: store_fill is -EOPNOTSUPP (no host cache)");

	for (i = 0, ok = 1; i < 3; i++) {
		uint64_t data = PACK_HEADER_SIZE + PACK_RECORD_HEADER;

		CHECK_EQ(append_rec(s, &r[i], buf), 0, "store_put");
		x = pl(&r[i].loc);
		if (i)
			data = pl(&r[i - 1].loc).offset + r[i - 1].len +
			       PACK_RECORD_HEADER;
		ok &= store_loc_span(s, &r[i].loc, &sp) == 0 &&
		      sp.container == 1 && x.pack == 1 &&
		      x.offset == data && x.len == r[i].len &&
		      sp.off == data - PACK_RECORD_HEADER &&
		      sp.len == r[i].len &&
		      sp.size == PACK_RECORD_HEADER + r[i].len;
	}
	CHECK(ok, "store_loc_span: pack, record offset, length, record size");
	CHECK(strcmp(store_loc_name(s, &r[2].loc, name, sizeof(name)),
		     "pack 00000001, offset 188") == 0,
	      "store_loc_name: the pack and the data's offset (as fsck "
	      "said before)");
	CHECK_EQ(check_rec(s, &r[2], buf, cmp), 0, "store_get");

	memset(&bad, 0, sizeof(bad));
	CHECK_EQ(store_loc_span(s, &bad, &sp), -EIO, "an empty loc: EIO");
	bad = r[0].loc;
	bad.len = 15;
	CHECK_EQ(store_loc_span(s, &bad, &sp), -EIO, "a short loc: EIO");
	x = pl(&r[0].loc);
	x.pack = 0;
	bad = mkloc(x);
	CHECK_EQ(store_loc_span(s, &bad, &sp), -EIO, "pack 0: EIO");
	x = pl(&r[0].loc);
	x.offset = PACK_HEADER_SIZE + PACK_RECORD_HEADER - 1;
	bad = mkloc(x);
	CHECK_EQ(store_loc_span(s, &bad, &sp), -EIO,
		 "a record inside the pack header: EIO");
	CHECK_EQ(store_get(s, &bad, &r[0].id, buf), -EIO,
		 "store_get of such a loc: EIO");
	x.offset = UINT64_MAX - 10;
	bad = mkloc(x);
	CHECK_EQ(store_loc_span(s, &bad, &sp), -EIO,
		 "an offset past what a file holds: EIO");
	CHECK_EQ(store_get_raw(s, &r[0].loc, NULL), -EINVAL,
		 "no buffer for data: EINVAL");
	CHECK_EQ(store_get_raw(s, &r[1].loc, NULL), 0,
		 "no buffer for an empty chunk: fine");
	CHECK_EQ(store_claim(s, (uint64_t)1 << 32), -ENOENT,
		 "no pack numbered past 32 bits: ENOENT");
	CHECK_EQ(store_cut(s, 1, 100), -EINVAL, "cut unclaimed: EINVAL");

	/* CHUNKS values: the pack's loc bytes and u64 refs, which is the
	 * 24-byte value of before the store interface, byte for byte. */
	memset(&c, 0, sizeof(c));
	c.loc = r[2].loc;
	c.refs = 7;
	x = pl(&r[2].loc);
	le_put(want, x.pack, 4);
	le_put(want + 4, x.len, 4);
	le_put(want + 8, x.offset, 8);
	le_put(want + 16, 7, 8);
	CHECK_EQ(rec_chunk_encode(&c, val), 24, "a pack's CHUNKS value: 24");
	CHECK(memcmp(val, want, 24) == 0,
	      "u32 pack, u32 len, u64 offset, u64 refs (LE), as before");
	CHECK(rec_chunk_decode(want, 24, &d) == 0 &&
	      chunk_loc_eq(&d.loc, &r[2].loc) && d.refs == 7,
	      "an old 24-byte value decodes to the same loc and refs");
	CHECK(rec_chunk_decode(want, 24, &d) == 0 && !d.has_strong,
	      "... and has no strong digest (dedup compares bytes)");
	CHECK_EQ(rec_chunk_decode(want, 8, &d), -EIO, "8 bytes: EIO");
	CHECK_EQ(rec_chunk_decode(val, CHUNK_REC_MAX + 1, &d), -EIO,
		 "73 bytes: EIO");
	CHECK(rec_chunk_decode(want, 9, &d) == 0 && d.loc.len == 1,
	      "9 bytes: a 1-byte loc");
	/* with a strong digest: loc, refs, then the 32 bytes; the longest
	 * value without one (40 bytes) is shorter than the shortest with */
	chunk_strong_of("abc", 3, &c.strong);
	c.has_strong = true;
	CHECK_EQ(rec_chunk_encode(&c, val), 24 + MREG_STRONG_LEN,
		 "a CHUNKS value with a strong digest: 56 bytes");
	CHECK(memcmp(val, want, 24) == 0 &&
	      memcmp(val + 24, c.strong.b, MREG_STRONG_LEN) == 0,
	      "the 24 bytes of before, then the digest");
	CHECK(rec_chunk_decode(val, 56, &d) == 0 &&
	      chunk_loc_eq(&d.loc, &r[2].loc) && d.refs == 7 &&
	      d.has_strong && chunk_strong_eq(&d.strong, &c.strong),
	      "it decodes to the same loc, refs and digest");
	CHECK(d.strong.b[0] == 0xba && d.strong.b[31] == 0xad,
	      "the digest is SHA-256 (of \"abc\": ba7816bf...f20015ad)");
	memset(val, 0, sizeof(val));
	CHECK(rec_chunk_decode(val, CHUNK_LOC_MAX + 8, &d) == 0 &&
	      d.loc.len == CHUNK_LOC_MAX && !d.has_strong &&
	      rec_chunk_decode(val, CHUNK_LOC_MAX + 9, &d) == 0 &&
	      d.loc.len == 1 && d.has_strong,
	      "40 bytes: the longest loc, no digest; 41: a 1-byte loc and "
	      "a digest");
	store_close(s);
	check_rmtree(dir);
	free(dir);
}

/* ---- round trips -------------------------------------------------------- */

#define BIG (3u << 20) /* larger than the write buffer */

static void test_roundtrip(void)
{
	struct store_options opt = { .pack_size = 256 << 10, .sync = false };
	char *dir = check_tmpdir("store");
	uint8_t *buf = malloc(BIG), *want = malloc(BIG);
	struct rec *r = calloc(600, sizeof(*r));
	struct mreg_store *s;
	static struct packs l;
	uint64_t seed = 42, total, bytes = 0, maxrec = 0;
	char *path;
	struct stat st;
	int i, bad = 0, bad_now = 0, e, big_packs = 0;
	bool sizes_ok = true, order_ok = true;

	CHECK_EQ(open_at(dir, &opt, &s), 0, "store_open creates packs/");
	if (asprintf(&path, "%s/packs", dir) < 0)
		abort();
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0700,
	      "packs/ has mode 0700");
	free(path);
	CHECK_EQ(store_bytes(s, &total), 0, "store_bytes on an empty store");
	CHECK_EQ(total, 0, "an empty store has no pack bytes");
	l.n = 0;
	store_containers(s, list_cb, &l);
	CHECK_EQ(l.n, 0, "no pack before the first append");

	for (i = 0; i < 600; i++) {
		r[i].seed = (uint64_t)i + 1;
		r[i].len = (uint32_t)(rnd_next(&seed) % 20000);
		if (i % 150 == 7)
			r[i].len = BIG; /* written around the buffer */
		if (i == 3)
			r[i].len = 0;
		e = append_rec(s, &r[i], buf);
		if (e) {
			bad++;
			continue;
		}
		bytes += PACK_RECORD_HEADER + r[i].len;
		if (PACK_RECORD_HEADER + r[i].len > maxrec)
			maxrec = PACK_RECORD_HEADER + r[i].len;
		/* Read the one just appended (still in the write buffer)
		 * and one from before. */
		if (check_rec(s, &r[i], buf, want))
			bad_now++;
		if (i && check_rec(s, &r[rnd_next(&seed) % i], buf, want))
			bad_now++;
	}
	CHECK_EQ(bad, 0, "600 appends of random sizes succeed");
	CHECK_EQ(bad_now, 0, "chunks read back at once, from the buffer too");
	CHECK_EQ(pl(&r[0].loc).pack, 1, "the first pack is number 1");
	CHECK_EQ(pl(&r[0].loc).offset, PACK_HEADER_SIZE + PACK_RECORD_HEADER,
		 "the first chunk's data follows the headers");
	for (i = 0, bad = 0; i < 600; i++)
		if (check_rec(s, &r[i], buf, want))
			bad++;
	CHECK_EQ(bad, 0, "every chunk reads back right");

	CHECK_EQ(store_sync(s), 0, "store_sync without fsync writes out");
	l.n = 0;
	CHECK_EQ(store_containers(s, list_cb, &l), 0, "store_containers");
	CHECK(l.n >= 10, "rolled over into %d packs", l.n);
	total = 0;
	for (i = 0; i < l.n; i++) {
		total += l.size[i] - PACK_HEADER_SIZE;
		if (l.size[i] > opt.pack_size)
			big_packs++;
		if (l.size[i] > opt.pack_size + maxrec)
			sizes_ok = false;
		if (i && l.num[i] <= l.num[i - 1])
			order_ok = false;
	}
	CHECK(sizes_ok && big_packs <= 4,
	      "packs stay within pack_size but for a big chunk (%d)",
	      big_packs);
	CHECK(order_ok, "packs are listed in order");
	CHECK_EQ(total, bytes, "the packs hold exactly the records");
	CHECK_EQ(store_bytes(s, &total), 0, "store_bytes");
	CHECK_EQ(total, bytes + (uint64_t)l.n * PACK_HEADER_SIZE,
		 "store_bytes counts every pack byte");
	path = pack_path(dir, pl(&r[0].loc).pack);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600,
	      "packs have mode 0600");
	free(path);
	CHECK(l.busy[l.n - 1] && !l.busy[0],
	      "the active pack is busy, a rolled-over one is not");
	/* Other files in packs/ are not packs. */
	{
		static const char *const junk[] = {
			"pack-1.pack", "pack-0000000G.pack", "notes",
			"pack-00000001.pack.tmp", "pack-0000000A.pack",
		};
		struct packs l2 = { .n = 0 };
		int fd;

		for (i = 0; i < 5; i++) {
			if (asprintf(&path, "%s/packs/%s", dir, junk[i]) < 0)
				abort();
			fd = open(path, O_WRONLY | O_CREAT, 0600);
			if (fd < 0)
				abort();
			close(fd);
			free(path);
		}
		store_containers(s, list_cb, &l2);
		CHECK_EQ(l2.n, l.n, "files not named like packs are ignored");
	}
	memset(buf, 0, 100);
	CHECK_EQ(store_get_raw(s, &r[5].loc, buf), 0, "store_get_raw");
	fill(want, r[5].len, r[5].seed);
	CHECK(!memcmp(buf, want, r[5].len), "store_get_raw gives the bytes");

	/* Closing writes the buffer out: a new instance reads everything. */
	for (i = 0; i < 3; i++) {
		r[i].seed += 1000;
		append_rec(s, &r[i], buf);
	}
	store_close(s);
	CHECK_EQ(open_at(dir, &opt, &s), 0, "store_open again");
	for (i = 0, bad = 0; i < 600; i++)
		if (check_rec(s, &r[i], buf, want))
			bad++;
	CHECK_EQ(bad, 0, "every chunk reads back after store_close/open");
	CHECK_EQ(append_rec(s, &r[0], buf), 0, "append after reopening");
	CHECK_EQ(pl(&r[0].loc).pack, (uint32_t)l.num[l.n - 1] + 1,
		 "a reopened store starts a new pack past the last one");
	store_close(s);
	store_close(NULL);
	check_rmtree(dir);
	free(dir);
	free(r);
	free(buf);
	free(want);
}

/* ---- reads refuse damaged data ------------------------------------------ */

static void test_damage(void)
{
	struct store_options opt = { .pack_size = 1 << 20, .sync = false };
	char *dir = check_tmpdir("store");
	uint8_t buf[8192], want[8192], b;
	struct rec r[8];
	struct mreg_store *s;
	struct chunk_loc loc;
	struct ploc x;
	struct mreg_id other;
	int i;

	CHECK_EQ(open_at(dir, &opt, &s), 0, "store_open");
	for (i = 0; i < 8; i++) {
		r[i].seed = 100 + (uint64_t)i;
		r[i].len = 4000 + (uint32_t)i;
		append_rec(s, &r[i], buf);
	}
	CHECK_EQ(store_sync(s), 0, "store_sync");
	CHECK_EQ(check_rec(s, &r[1], buf, want), 0, "chunk 1 reads back");

	/* One flipped byte in the data. */
	peek(dir, pl(&r[1].loc).pack, pl(&r[1].loc).offset + 1234, &b, 1);
	b ^= 0x10;
	poke(dir, pl(&r[1].loc).pack, pl(&r[1].loc).offset + 1234, &b, 1);
	CHECK_EQ(store_get(s, &r[1].loc, &r[1].id, buf), -EIO,
		 "a flipped byte: store_get says EIO");
	CHECK_EQ(store_get_raw(s, &r[1].loc, buf), 0,
		 "a flipped byte: store_get_raw reads");
	fill(want, r[1].len, r[1].seed);
	want[1234] ^= 0x10;
	CHECK(!memcmp(buf, want, r[1].len),
	      "store_get_raw gives the flipped bytes as they are");
	CHECK_EQ(check_rec(s, &r[2], buf, want), 0,
		 "the next chunk still reads");

	/* A damaged record header. */
	peek(dir, pl(&r[3].loc).pack, pl(&r[3].loc).offset - PACK_RECORD_HEADER, &b, 1);
	b ^= 1;
	poke(dir, pl(&r[3].loc).pack, pl(&r[3].loc).offset - PACK_RECORD_HEADER, &b, 1);
	CHECK_EQ(store_get(s, &r[3].loc, &r[3].id, buf), -EIO,
		 "a bad record magic: store_get says EIO");
	CHECK_EQ(store_get_raw(s, &r[3].loc, buf), -EIO,
		 "a bad record magic: store_get_raw says EIO");
	peek(dir, pl(&r[4].loc).pack, pl(&r[4].loc).offset - 16 + 3, &b, 1);
	b ^= 1;
	poke(dir, pl(&r[4].loc).pack, pl(&r[4].loc).offset - 16 + 3, &b, 1);
	CHECK_EQ(store_get(s, &r[4].loc, &r[4].id, buf), -EIO,
		 "a damaged id in the header: store_get says EIO");

	/* Locations that do not fit the record. */
	x = pl(&r[5].loc);
	x.len--;
	loc = mkloc(x);
	CHECK_EQ(store_get_raw(s, &loc, buf), -EIO,
		 "a wrong length: EIO");
	x = pl(&r[5].loc);
	x.offset += 8;
	loc = mkloc(x);
	CHECK_EQ(store_get_raw(s, &loc, buf), -EIO, "a wrong offset: EIO");
	x.offset = 3;
	loc = mkloc(x);
	CHECK_EQ(store_get_raw(s, &loc, buf), -EIO,
		 "an offset in the pack header: EIO");
	chunkid_of("x", 1, &other);
	CHECK_EQ(store_get(s, &r[5].loc, &other, buf), -EIO,
		 "another chunk's id: EIO");
	x = pl(&r[7].loc);
	x.offset = file_size(dir, x.pack) - 100;
	loc = mkloc(x);
	CHECK_EQ(store_get_raw(s, &loc, buf), -EIO, "past the end: EIO");
	x = pl(&r[7].loc);
	x.pack = 999;
	loc = mkloc(x);
	CHECK_EQ(store_get(s, &loc, &r[7].id, buf), -ENOENT,
		 "a missing pack: ENOENT");
	CHECK_EQ(store_get(NULL, &loc, &r[7].id, buf), -EINVAL,
		 "NULL store: EINVAL");

	/* A truncated pack: the last chunk is short. */
	{
		char *p = pack_path(dir, pl(&r[7].loc).pack);

		if (truncate(p, (off_t)(pl(&r[7].loc).offset + 10)) < 0)
			abort();
		free(p);
	}
	CHECK_EQ(store_get(s, &r[7].loc, &r[7].id, buf), -EIO,
		 "a pack cut short: EIO");
	CHECK_EQ(check_rec(s, &r[6], buf, want), 0,
		 "the chunk before the cut reads");
	store_close(s);
	check_rmtree(dir);
	free(dir);
}

/* ---- two writers on one directory --------------------------------------- */

static void test_two_writers(void)
{
	struct store_options opt = { .pack_size = 64 << 10, .sync = false };
	char *dir = check_tmpdir("store");
	static uint8_t buf[16384], want[16384];
	static struct rec ra[400], rb[400];
	struct mreg_store *a, *b;
	uint64_t seed = 7;
	int i, j, bad = 0, shared = 0, na = 0, nb = 0;

	CHECK_EQ(open_at(dir, &opt, &a), 0, "open instance A");
	CHECK_EQ(open_at(dir, &opt, &b), 0, "open instance B");
	for (i = 0; i < 400; i++) {
		ra[i].seed = 5000 + (uint64_t)i;
		ra[i].len = 1 + (uint32_t)(rnd_next(&seed) % 16000);
		rb[i].seed = 9000 + (uint64_t)i;
		rb[i].len = 1 + (uint32_t)(rnd_next(&seed) % 16000);
		if (append_rec(a, &ra[i], buf) || append_rec(b, &rb[i], buf))
			bad++;
	}
	CHECK_EQ(bad, 0, "both instances append, interleaved");
	for (i = 0; i < 400; i++)
		for (j = 0; j < 400; j++)
			if (pl(&ra[i].loc).pack == pl(&rb[j].loc).pack)
				shared++;
	for (i = 1; i < 400; i++) {
		na += pl(&ra[i].loc).pack != pl(&ra[i - 1].loc).pack;
		nb += pl(&rb[i].loc).pack != pl(&rb[i - 1].loc).pack;
	}
	CHECK(na >= 10 && nb >= 10, "both rolled over (%d, %d times)", na, nb);
	CHECK_EQ(shared, 0, "no pack was written by both");
	store_sync(a);
	store_sync(b);
	for (i = 0, bad = 0; i < 400; i++)
		if (check_rec(a, &rb[i], buf, want) ||
		    check_rec(b, &ra[i], buf, want))
			bad++;
	CHECK_EQ(bad, 0, "each reads the other's chunks");
	store_close(a);
	store_close(b);
	check_rmtree(dir);
	free(dir);
}

/* ---- pack numbers -------------------------------------------------------- */

/* Another process's pack takes the next number: a new pack jumps past
 * the highest one; when no number is left a put is -EOVERFLOW. */
static void test_numbers(void)
{
	struct store_options opt = { .pack_size = 64 << 10, .sync = false };
	char *dir = check_tmpdir("store"), *p;
	static uint8_t buf[100], want[100];
	struct mreg_store *s;
	struct rec r = { .seed = 1, .len = 100 };
	int fd;

	CHECK_EQ(open_at(dir, &opt, &s), 0, "numbers: open an empty store");
	p = pack_path(dir, 7);
	fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0600);
	close(fd);
	free(p);
	p = pack_path(dir, 1);
	fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0600);
	close(fd);
	free(p);
	CHECK(fd >= 0 && append_rec(s, &r, buf) == 0 &&
	      pl(&r.loc).pack == 8, "numbers: pack 1 taken since open (and "
	      "7): the first pack is 8 (%u)", pl(&r.loc).pack);
	CHECK_EQ(check_rec(s, &r, buf, want), 0, "numbers: ... and reads "
		 "back");
	store_close(s);
	check_rmtree(dir);
	free(dir);

	dir = check_tmpdir("store");
	CHECK_EQ(open_at(dir, &opt, &s), 0, "numbers: open another");
	store_close(s);
	p = pack_path(dir, UINT32_MAX);
	fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0600);
	close(fd);
	free(p);
	CHECK_EQ(open_at(dir, &opt, &s), 0, "numbers: open with pack "
		 "ffffffff there");
	CHECK_EQ(append_rec(s, &r, buf), -EOVERFLOW, "numbers: no number "
		 "left: a put is -EOVERFLOW");
	store_close(s);
	check_rmtree(dir);
	free(dir);
}

/* ---- gc locks, removal -------------------------------------------------- */

static void test_gc_locks(void)
{
	struct store_options opt = { .pack_size = 64 << 10, .sync = false };
	char *dir = check_tmpdir("store");
	static uint8_t buf[40000], want[40000];
	struct rec r[8];
	struct mreg_store *a, *g;
	uint64_t before, after;
	int i;

	CHECK_EQ(open_at(dir, &opt, &a), 0, "open the writer");
	CHECK_EQ(open_at(dir, &opt, &g), 0, "open the gc instance");
	for (i = 0; i < 8; i++) {
		r[i].seed = 300 + (uint64_t)i;
		r[i].len = 30000;
	}
	store_batch_begin(a);
	append_rec(a, &r[0], buf);
	CHECK_EQ(store_claim(g, pl(&r[0].loc).pack), -EBUSY,
		 "the active pack of another instance: EBUSY");
	CHECK_EQ(store_claim(a, pl(&r[0].loc).pack), -EBUSY,
		 "the active pack of the same instance: EBUSY");
	CHECK(is_busy(g, pl(&r[0].loc).pack), "store_containers: active is busy");
	append_rec(a, &r[1], buf);
	append_rec(a, &r[2], buf); /* rolls over */
	CHECK(pl(&r[2].loc).pack != pl(&r[0].loc).pack, "the third chunk rolled over");
	CHECK_EQ(store_claim(g, pl(&r[0].loc).pack), -EBUSY,
		 "a pack rolled over in an open batch: EBUSY");
	CHECK_EQ(store_delete(g, pl(&r[0].loc).pack), -EBUSY,
		 "store_delete of it: EBUSY");
	store_batch_begin(a);
	store_batch_end(a);
	CHECK_EQ(store_claim(g, pl(&r[0].loc).pack), -EBUSY,
		 "still EBUSY while one batch is open");
	store_batch_end(a);
	CHECK_EQ(store_claim(g, pl(&r[0].loc).pack), 0,
		 "after store_batch_end: the gc lock is taken");
	CHECK_EQ(store_claim(g, pl(&r[0].loc).pack), 0,
		 "taking it again through the same store: 0");
	CHECK(!is_busy(g, pl(&r[0].loc).pack),
	      "a pack under our own gc lock is not busy");
	CHECK(is_busy(a, pl(&r[0].loc).pack),
	      "a pack under another's gc lock is busy");
	CHECK_EQ(store_claim(g, pl(&r[2].loc).pack), -EBUSY,
		 "the new active pack: EBUSY");
	CHECK_EQ(store_delete(g, pl(&r[2].loc).pack), -EBUSY,
		 "store_delete of the active pack: EBUSY");
	store_unclaim(g, pl(&r[0].loc).pack);
	CHECK_EQ(store_claim(a, pl(&r[0].loc).pack), 0,
		 "after store_unclaim another can lock it");
	store_unclaim(a, pl(&r[0].loc).pack);

	/* Rolled over outside a batch: unlocked at once. */
	append_rec(a, &r[3], buf);
	append_rec(a, &r[4], buf);
	CHECK(pl(&r[4].loc).pack != pl(&r[2].loc).pack, "rolled over again");
	CHECK_EQ(store_claim(g, pl(&r[2].loc).pack), 0,
		 "a pack rolled over outside a batch can be locked");
	store_unclaim(g, pl(&r[2].loc).pack);

	/* Removal: by the writer (which caches a descriptor) and by gc. */
	store_sync(a);
	CHECK_EQ(check_rec(a, &r[0], buf, want), 0, "chunk in the old pack");
	store_bytes(a, &before);
	CHECK_EQ(store_delete(a, pl(&r[0].loc).pack), 0,
		 "store_delete of an unlocked pack");
	CHECK(file_size(dir, pl(&r[0].loc).pack) == (uint64_t)-1,
	      "its file is gone");
	CHECK_EQ(store_get(a, &r[0].loc, &r[0].id, buf), -ENOENT,
		 "reading from a removed pack: ENOENT");
	store_bytes(a, &after);
	CHECK_EQ(before - after, 16 + 2 * (24 + 30000),
		 "store_bytes drops by the pack's size");
	CHECK_EQ(store_delete(a, pl(&r[0].loc).pack), -ENOENT,
		 "removing it again: ENOENT");
	CHECK_EQ(store_claim(g, pl(&r[0].loc).pack), -ENOENT,
		 "locking a missing pack: ENOENT");
	CHECK_EQ(store_claim(g, pl(&r[2].loc).pack), 0, "gc locks a pack");
	CHECK_EQ(store_delete(g, pl(&r[2].loc).pack), 0,
		 "and removes it under its own lock");
	CHECK_EQ(store_claim(a, pl(&r[4].loc).pack), -EBUSY,
		 "the writer still has its active pack");
	store_close(a);
	CHECK_EQ(store_claim(g, pl(&r[4].loc).pack), 0,
		 "store_close releases the writer's locks");
	store_close(g);
	check_rmtree(dir);
	free(dir);
}

/* How many of our descriptors name deleted files. */
static int deleted_fds(void)
{
	char path[64], target[4096];
	ssize_t n;
	int fd, count = 0;

	for (fd = 0; fd < 1024; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (strstr(target, " (deleted)"))
			count++;
	}
	return count;
}

/* gc cuts a dead tail off a pack under its lock: no free space needed. */
static void test_truncate(void)
{
	struct store_options opt = { .sync = false };
	char *dir = check_tmpdir("store");
	static uint8_t buf[20000], want[20000];
	struct mreg_store *w, *g;
	struct rec r[3];
	uint64_t size = 0, end;
	int i;

	CHECK_EQ(open_at(dir, &opt, &w), 0, "open a writer");
	CHECK_EQ(open_at(dir, &opt, &g), 0, "open gc");
	for (i = 0; i < 3; i++) {
		r[i].seed = 700 + (uint64_t)i;
		r[i].len = 20000;
		append_rec(w, &r[i], buf);
	}
	store_sync(w);
	end = pl(&r[0].loc).offset + pl(&r[0].loc).len;
	CHECK_EQ(store_cut(g, pl(&r[0].loc).pack, end), -EINVAL,
		 "cutting a pack without gc's lock: EINVAL");
	CHECK_EQ(store_claim(g, pl(&r[0].loc).pack), -EBUSY,
		 "the writer's active pack cannot be locked");
	store_close(w);
	CHECK_EQ(store_claim(g, pl(&r[0].loc).pack), 0, "gc locks it");
	CHECK_EQ(store_container_size(g, pl(&r[0].loc).pack, &size), 0,
		 "store_container_size");
	CHECK_EQ(size, pl(&r[2].loc).offset + pl(&r[2].loc).len, "is the pack's end");
	CHECK_EQ(store_cut(g, pl(&r[0].loc).pack, 15), -EINVAL,
		 "cutting into the header: EINVAL");
	CHECK_EQ(store_cut(g, pl(&r[0].loc).pack, size + 100), 0,
		 "cutting past the end: nothing to do");
	CHECK_EQ(file_size(dir, pl(&r[0].loc).pack), size, "the size is the same");
	CHECK_EQ(store_cut(g, pl(&r[0].loc).pack, end), 0,
		 "cut after the first record");
	CHECK_EQ(file_size(dir, pl(&r[0].loc).pack), end, "the file ends there");
	CHECK_EQ(store_container_size(g, pl(&r[0].loc).pack, &size), 0,
		 "store_container_size again");
	CHECK_EQ(size, end, "says so");
	store_unclaim(g, pl(&r[0].loc).pack);
	CHECK_EQ(check_rec(g, &r[0], buf, want), 0, "the first record reads");
	CHECK_EQ(store_get(g, &r[1].loc, &r[1].id, buf), -EIO,
		 "the cut ones do not: EIO, never wrong bytes");
	store_close(g);
	check_rmtree(dir);
	free(dir);
}

/* Blocks of the unlinked files this process has open, in bytes. */
static long long deleted_bytes(void)
{
	char path[64], target[4096];
	struct stat st;
	long long sum = 0;
	ssize_t n;
	int fd;

	for (fd = 0; fd < 1024; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (strstr(target, " (deleted)") && fstat(fd, &st) == 0)
			sum += (long long)st.st_blocks * 512;
	}
	return sum;
}

/* A reader's cached descriptor outlives the pack: gc (another process)
 * removes it, and a new writer reuses its number. */
static void test_stale(void)
{
	struct store_options opt = { .pack_size = 1 << 20, .sync = false };
	char *dir = check_tmpdir("store");
	static uint8_t buf[9000], want[9000];
	struct mreg_store *rd, *w, *g;
	struct rec x = { .seed = 1, .len = 8000 }, y = { .seed = 3 };
	uint64_t size;

	CHECK_EQ(open_at(dir, &opt, &rd), 0, "open a reader");
	CHECK_EQ(open_at(dir, &opt, &w), 0, "open a writer");
	CHECK_EQ(open_at(dir, &opt, &g), 0, "open gc");
	append_rec(w, &x, buf);
	store_sync(w);
	CHECK_EQ(check_rec(rd, &x, buf, want), 0, "the reader reads x");
	store_close(w);
	CHECK_EQ(store_delete(g, pl(&x.loc).pack), 0, "gc removes its pack");
	CHECK_EQ(store_get(rd, &x.loc, &x.id, buf), -ENOENT,
		 "a descriptor still open finds the removed pack emptied: "
		 "ENOENT (the chunk moved), never wrong bytes");
	CHECK_EQ(open_at(dir, &opt, &w), 0, "open a new writer");
	y.len = 9000;
	append_rec(w, &y, buf);
	store_sync(w);
	CHECK_EQ(pl(&y.loc).pack, pl(&x.loc).pack, "which reuses the pack number");
	CHECK_EQ(check_rec(rd, &y, buf, want), 0,
		 "the reader sees its stale descriptor and reads the new pack");
	CHECK_EQ(store_get(rd, &x.loc, &x.id, buf), -EIO,
		 "and x is gone from it: EIO, never wrong bytes");
	store_close(w);
	CHECK_EQ(store_delete(g, pl(&y.loc).pack), 0, "gc removes it again");
	CHECK_EQ(deleted_fds(), 1, "the reader's descriptor holds it");
	CHECK_EQ(deleted_bytes(), 0, "but not its disk space: gc emptied it");
	store_bytes(rd, &size);
	CHECK_EQ(deleted_fds(), 0,
		 "store_bytes (statfs) lets go of removed packs");
	CHECK_EQ(store_get(rd, &y.loc, &y.id, buf), -ENOENT,
		 "then reading it: ENOENT");
	store_close(rd);
	store_close(g);
	check_rmtree(dir);
	free(dir);
}

/* ---- walking a pack ----------------------------------------------------- */

struct walk_ctx {
	const struct rec *r;
	int n, bad, stop_at;
};

static int walk_cb(void *arg, const struct mreg_id *id,
		   const struct chunk_loc *loc, const void *data, uint32_t len)
{
	struct walk_ctx *w = arg;
	struct mreg_id got;

	if (w->n == w->stop_at)
		return 77;
	chunkid_of(data, len, &got);
	if (!chunkid_eq(id, &w->r[w->n].id) || !chunkid_eq(&got, id) ||
	    !chunk_loc_eq(loc, &w->r[w->n].loc) || len != w->r[w->n].len)
		w->bad++;
	w->n++;
	return 0;
}

static void test_walk(void)
{
	struct store_options opt = { .pack_size = 64 << 20, .sync = false };
	char *dir = check_tmpdir("store");
	uint8_t *buf = malloc(8 << 20);
	static struct rec r[1000];
	struct walk_ctx w = { .r = r, .stop_at = -1 };
	struct mreg_store *s;
	uint64_t seed = 99;
	uint8_t b;
	uint32_t pack;
	int i;

	CHECK_EQ(open_at(dir, &opt, &s), 0, "store_open");
	for (i = 0; i < 1000; i++) {
		r[i].seed = 20000 + (uint64_t)i;
		r[i].len = (uint32_t)(rnd_next(&seed) % 30000);
		if (i == 500)
			r[i].len = 6 << 20; /* more than the walk's buffer */
		append_rec(s, &r[i], buf);
	}
	pack = pl(&r[0].loc).pack;
	CHECK(pl(&r[999].loc).pack == pack, "1000 chunks in one pack");
	/* Unsynced: the walk writes our buffer out first. */
	CHECK_EQ(store_iterate(s, pack, walk_cb, &w), 0, "store_iterate");
	CHECK_EQ(w.n, 1000, "visits every record");
	CHECK_EQ(w.bad, 0, "in order, with the right ids, places and data");
	w.n = w.bad = 0;
	w.stop_at = 10;
	CHECK_EQ(store_iterate(s, pack, walk_cb, &w), 77,
		 "a non-zero return of fn stops the walk and is returned");
	CHECK_EQ(w.n, 10, "after ten records");
	CHECK_EQ(store_iterate(s, 4242, walk_cb, &w), -ENOENT,
		 "walking a missing pack: ENOENT");

	/* Damage record 700's header: 700 records, then EIO. */
	peek(dir, pack, pl(&r[700].loc).offset - PACK_RECORD_HEADER + 1, &b, 1);
	b ^= 0x40;
	poke(dir, pack, pl(&r[700].loc).offset - PACK_RECORD_HEADER + 1, &b, 1);
	w.n = w.bad = 0;
	w.stop_at = -1;
	CHECK_EQ(store_iterate(s, pack, walk_cb, &w), -EIO,
		 "a damaged record header ends the walk with EIO");
	CHECK_EQ(w.n, 700, "after every record before it");
	CHECK_EQ(w.bad, 0, "all of them right");
	b ^= 0x40;
	poke(dir, pack, pl(&r[700].loc).offset - PACK_RECORD_HEADER + 1, &b, 1);

	/* A record length that runs past the end. */
	{
		uint8_t len[4] = { 0xff, 0xff, 0xff, 0x7f };

		poke(dir, pack, pl(&r[998].loc).offset - PACK_RECORD_HEADER + 4,
		     len, 4);
	}
	w.n = w.bad = 0;
	CHECK_EQ(store_iterate(s, pack, walk_cb, &w), -EIO,
		 "a length past the end of the pack: EIO");
	CHECK_EQ(w.n, 998, "after the records before it");
	store_close(s);

	/* A torn tail: the last record cut short. */
	{
		char *p = pack_path(dir, pack);
		off_t cut = (off_t)(pl(&r[999].loc).offset + r[999].len / 2);

		if (truncate(p, cut) < 0)
			abort();
		free(p);
	}
	CHECK_EQ(open_at(dir, &opt, &s), 0, "store_open");
	{
		uint8_t fix[4];
		uint32_t v = r[998].len;

		fix[0] = (uint8_t)v;
		fix[1] = (uint8_t)(v >> 8);
		fix[2] = (uint8_t)(v >> 16);
		fix[3] = (uint8_t)(v >> 24);
		poke(dir, pack, pl(&r[998].loc).offset - PACK_RECORD_HEADER + 4,
		     fix, 4);
	}
	w.n = w.bad = 0;
	CHECK_EQ(store_iterate(s, pack, walk_cb, &w), -EIO,
		 "a torn last record: EIO");
	CHECK_EQ(w.n, 999, "after all the whole records");
	CHECK_EQ(w.bad, 0, "all right");
	poke(dir, pack, 0, "MREGPACX", 8);
	w.n = 0;
	CHECK_EQ(store_iterate(s, pack, walk_cb, &w), -EIO,
		 "a bad pack header: EIO");
	CHECK_EQ(w.n, 0, "before any record");
	store_close(s);
	check_rmtree(dir);
	free(dir);
	free(buf);
}

/* ---- sync and its failures ---------------------------------------------- */

/* Checks every record's hash; counts them into *(int *)arg if not NULL. */
static int walk_cb_count(void *arg, const struct mreg_id *id,
			 UNUSED const struct chunk_loc *loc, const void *data,
			 uint32_t len)
{
	struct mreg_id got;

	chunkid_of(data, len, &got);
	if (!chunkid_eq(&got, id))
		return -EBADMSG;
	if (arg)
		++*(int *)arg;
	return 0;
}

static void test_sync(void)
{
	struct store_options opt = { .pack_size = 1 << 20, .sync = true };
	char *dir = check_tmpdir("store");
	static uint8_t buf[65536], want[65536];
	struct rec r[40];
	struct mreg_store *s;
	uint64_t before;
	uint32_t failed;
	int i, bad;

	CHECK_EQ(open_at(dir, &opt, &s), 0, "store_open with sync");
	for (i = 0; i < 40; i++) {
		r[i].seed = 700 + (uint64_t)i;
		r[i].len = 5000;
	}
	for (i = 0; i < 5; i++)
		append_rec(s, &r[i], buf);
	CHECK_EQ(file_size(dir, pl(&r[0].loc).pack), PACK_HEADER_SIZE,
		 "appends are buffered");
	CHECK_EQ(store_sync(s), 0, "store_sync");
	CHECK_EQ(file_size(dir, pl(&r[0].loc).pack),
		 PACK_HEADER_SIZE + 5 * (24 + 5000), "and written out");
	CHECK_EQ(store_sync(s), 0, "store_sync with nothing new");

	/* A failed fdatasync in a batch: reported until the batch ends. */
	store_batch_begin(s);
	append_rec(s, &r[5], buf);
	failed = pl(&r[5].loc).pack;
	pack_inject_fault(s, STORE_FAULT_SYNC, EIO);
	CHECK_EQ(store_sync(s), -EIO, "a failed fdatasync: EIO");
	CHECK_EQ(store_sync(s), -EIO, "reported again while the batch is open");
	append_rec(s, &r[6], buf);
	CHECK(pl(&r[6].loc).pack != failed, "the failed pack was retired");
	CHECK_EQ(store_sync(s), -EIO,
		 "still EIO with new data elsewhere in the batch");
	store_batch_end(s);
	store_batch_begin(s);
	append_rec(s, &r[7], buf);
	CHECK_EQ(store_sync(s), 0, "a new batch syncs again");
	store_batch_end(s);
	CHECK_EQ(check_rec(s, &r[7], buf, want), 0, "its chunk reads back");

	/* Overlapping batches: the error stays until none is open. */
	store_batch_begin(s);
	store_batch_begin(s);
	append_rec(s, &r[8], buf);
	pack_inject_fault(s, STORE_FAULT_SYNC, EIO);
	CHECK_EQ(store_sync(s), -EIO, "a failed fdatasync, two batches open");
	store_batch_end(s);
	store_batch_begin(s);
	CHECK_EQ(store_sync(s), -EIO, "one of them still open: EIO");
	store_batch_end(s);
	store_batch_end(s);
	CHECK_EQ(store_sync(s), 0, "none open: 0");

	/* A failed write of the buffer: kept, and written by the next sync. */
	for (i = 10; i < 20; i++)
		append_rec(s, &r[i], buf);
	failed = pl(&r[10].loc).pack;
	before = file_size(dir, failed);
	pack_inject_fault(s, STORE_FAULT_WRITE, ENOSPC);
	CHECK_EQ(store_sync(s), -ENOSPC, "a torn write: ENOSPC");
	CHECK_EQ(file_size(dir, failed), before,
		 "the pack is cut back to its last whole record");
	for (i = 10, bad = 0; i < 20; i++)
		if (check_rec(s, &r[i], buf, want))
			bad++;
	CHECK_EQ(bad, 0, "the unwritten chunks still read (from memory)");
	append_rec(s, &r[20], buf);
	CHECK(pl(&r[20].loc).pack != failed, "the pack was retired");
	CHECK_EQ(store_sync(s), 0, "the next store_sync writes the buffer");
	for (i = 10, bad = 0; i <= 20; i++)
		if (check_rec(s, &r[i], buf, want))
			bad++;
	CHECK_EQ(bad, 0, "and all of them read back");
	store_close(s);

	CHECK_EQ(open_at(dir, &opt, &s), 0, "store_open again");
	for (i = 0, bad = 0; i <= 20; i++)
		if (i != 5 && i != 6 && i != 8 && i != 9 &&
		    check_rec(s, &r[i], buf, want))
			bad++;
	CHECK_EQ(bad, 0, "synced chunks read back in a new instance");

	/* A failed append of a chunk too big for the buffer. */
	{
		static uint8_t big[2 << 20], bigwant[2 << 20];
		struct rec rb = { .seed = 1, .len = sizeof(big) };
		uint32_t was;

		append_rec(s, &r[21], buf);
		was = pl(&r[21].loc).pack;
		store_sync(s);
		before = file_size(dir, was);
		pack_inject_fault(s, STORE_FAULT_WRITE, ENOSPC);
		CHECK_EQ(append_rec(s, &rb, big), -ENOSPC,
			 "a big chunk's torn write: ENOSPC");
		CHECK_EQ(file_size(dir, was), before,
			 "its pack is cut back");
		CHECK_EQ(append_rec(s, &rb, big), 0, "the next try succeeds");
		CHECK(pl(&rb.loc).pack != was, "in a new pack");
		CHECK_EQ(store_sync(s), 0, "store_sync");
		CHECK_EQ(check_rec(s, &rb, big, bigwant), 0,
			 "the big chunk reads back");
	}

	/* A failed write in a batch: given up once the batch ended. */
	store_batch_begin(s);
	append_rec(s, &r[22], buf);
	append_rec(s, &r[23], buf);
	failed = pl(&r[22].loc).pack;
	before = file_size(dir, failed);
	pack_inject_fault(s, STORE_FAULT_WRITE, ENOSPC);
	CHECK_EQ(store_sync(s), -ENOSPC, "a torn write in a batch: ENOSPC");
	store_batch_end(s);
	CHECK_EQ(store_sync(s), 0,
		 "after the batch ended, store_sync succeeds again");
	CHECK_EQ(file_size(dir, failed), before,
		 "the unwritten records were given up, not written");
	CHECK_EQ(store_iterate(s, failed, walk_cb_count, NULL), 0,
		 "and the pack has no torn record");
	{
		struct chunk_loc z = { .len = 0 };
		struct ploc zp = { 0 };

		CHECK_EQ(store_get_raw(s, &z, NULL), -EIO,
			 "an empty location names no chunk: EIO");
		z = mkloc(zp);
		CHECK_EQ(store_get_raw(s, &z, NULL), -EIO,
			 "a zeroed location names no chunk: EIO");
	}
	append_rec(s, &r[24], buf);
	r[25].len = 0;
	CHECK_EQ(append_rec(s, &r[25], buf), 0, "an empty chunk appends");
	CHECK_EQ(store_get(s, &r[25].loc, &r[25].id, NULL), 0,
		 "and reads back into no buffer");

	/* Outside any batch, a lost sync stays reported. */
	append_rec(s, &r[30], buf);
	pack_inject_fault(s, STORE_FAULT_SYNC, EIO);
	CHECK_EQ(store_sync(s), -EIO, "a failed fdatasync outside a batch");
	store_batch_begin(s);
	store_batch_end(s);
	append_rec(s, &r[31], buf);
	CHECK_EQ(store_sync(s), -EIO, "stays EIO until store_close");
	store_close(s);
	check_rmtree(dir);
	free(dir);
}

/* ---- threads ------------------------------------------------------------ */

#define NTHREADS 4
#define PER_THREAD 3000

struct thr {
	struct mreg_store *s;
	struct rec *r;
	int id, bad;
};

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	uint8_t *buf = malloc(70000), *want = malloc(70000);
	uint64_t seed = 1234567 + (uint64_t)t->id;
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		struct rec *r = &t->r[i];

		if (i % 50 == 0)
			store_batch_begin(t->s);
		r->seed = (uint64_t)t->id << 32 | (uint64_t)i;
		r->len = 1 + (uint32_t)(rnd_next(&seed) % 65536);
		if (append_rec(t->s, r, buf))
			t->bad++;
		/* Read back something of our own, new or old. */
		if (check_rec(t->s, &t->r[rnd_next(&seed) % (i + 1)], buf,
			      want))
			t->bad++;
		if (i % 50 == 49) {
			if (store_sync(t->s))
				t->bad++;
			store_batch_end(t->s);
		}
	}
	free(buf);
	free(want);
	return NULL;
}

static void test_threads(void)
{
	struct store_options opt = { .pack_size = 4 << 20, .sync = false };
	char *dir = check_tmpdir("store");
	uint8_t *buf = malloc(70000), *want = malloc(70000);
	struct thr t[NTHREADS];
	pthread_t th[NTHREADS];
	struct mreg_store *s;
	int i, j, bad = 0, overlap = 0;

	CHECK_EQ(open_at(dir, &opt, &s), 0, "store_open");
	for (i = 0; i < NTHREADS; i++) {
		t[i] = (struct thr){ .s = s, .id = i + 1 };
		t[i].r = calloc(PER_THREAD, sizeof(struct rec));
		pthread_create(&th[i], NULL, thr_main, &t[i]);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		bad += t[i].bad;
	}
	CHECK_EQ(bad, 0, "4 threads append, read and sync concurrently");
	for (i = 0, bad = 0; i < NTHREADS; i++)
		for (j = 0; j < PER_THREAD; j++)
			if (check_rec(s, &t[i].r[j], buf, want))
				bad++;
	CHECK_EQ(bad, 0, "all %d chunks read back", NTHREADS * PER_THREAD);
	/* No two records overlap: sort-free check per pack by walking. */
	{
		static struct packs l;
		uint64_t recs = 0, bytes = 0, total;

		l.n = 0;
		store_containers(s, list_cb, &l);
		for (i = 0; i < NTHREADS; i++)
			for (j = 0; j < PER_THREAD; j++) {
				recs++;
				bytes += 24 + t[i].r[j].len;
			}
		store_bytes(s, &total);
		overlap = total != bytes + (uint64_t)l.n * PACK_HEADER_SIZE;
		CHECK(!overlap, "the packs hold exactly %" PRIu64
		      " records, none lost or doubled", recs);
	}
	store_close(s);
	for (i = 0; i < NTHREADS; i++)
		free(t[i].r);
	check_rmtree(dir);
	free(dir);
	free(buf);
	free(want);
}

/* ---- a full disk -------------------------------------------------------- */

struct count_ctx {
	int n;
};

static int count_cb(void *arg, const struct mreg_id *id,
		    UNUSED const struct chunk_loc *loc, const void *data,
		    uint32_t len)
{
	struct count_ctx *c = arg;
	struct mreg_id got;

	chunkid_of(data, len, &got);
	if (!chunkid_eq(&got, id))
		return -EBADMSG;
	c->n++;
	return 0;
}

static int walk_all(struct mreg_store *s, int *ret_records)
{
	static struct packs l;
	struct count_ctx c = { 0 };
	int i, r, bad = 0;

	l.n = 0;
	store_containers(s, list_cb, &l);
	for (i = 0; i < l.n; i++) {
		r = store_iterate(s, l.num[i], count_cb, &c);
		if (r)
			bad++;
	}
	*ret_records = c.n;
	return bad;
}

static void test_enospc(void)
{
	struct store_options opt = { .pack_size = 256 << 10, .sync = true };
	char *dir = check_tmpdir("store-full");
	static uint8_t buf[65536], want[65536], filler[256 << 10];
	static struct rec r[2000];
	struct mreg_store *s;
	char *fill_path;
	uint64_t seed = 5;
	int i, n = 0, e = 0, bad, synced = 0, records, fd;

	if (mount("tmpfs", dir, "tmpfs", 0, "size=2m,mode=0700") < 0) {
		printf("ok %d - full disk # SKIP cannot mount a tmpfs: %s\n",
		       ++check_n, strerror(errno));
		check_rmtree(dir);
		free(dir);
		return;
	}
	/* Room to give back once the disk is full. */
	if (asprintf(&fill_path, "%s/filler", dir) < 0)
		abort();
	fd = open(fill_path, O_WRONLY | O_CREAT, 0600);
	if (fd < 0 || write(fd, filler, sizeof(filler)) != sizeof(filler))
		abort();
	close(fd);

	CHECK_EQ(open_at(dir, &opt, &s), 0, "store_open on a 2M tmpfs");
	for (i = 0; i < 2000; i++) {
		r[i].seed = 40000 + (uint64_t)i;
		r[i].len = 4096 + (uint32_t)(rnd_next(&seed) % 40000);
		e = append_rec(s, &r[i], buf);
		if (e)
			break;
		n++;
		if (i % 8 == 7) {
			e = store_sync(s);
			if (e)
				break;
			synced = n;
		}
	}
	CHECK_EQ(e, -ENOSPC, "appending until the disk is full: ENOSPC "
		 "(after %d chunks, %d synced)", n, synced);
	CHECK(synced > 10, "a good many chunks were synced first");
	for (i = 0, bad = 0; i < synced; i++)
		if (check_rec(s, &r[i], buf, want))
			bad++;
	CHECK_EQ(bad, 0, "every synced chunk reads back right");
	for (i = 0, bad = 0; i < n; i++)
		if (check_rec(s, &r[i], buf, want))
			bad++;
	CHECK_EQ(bad, 0, "every appended chunk reads back (some from memory)");
	CHECK_EQ(walk_all(s, &records), 0,
		 "no pack holds a torn record");
	CHECK_EQ(store_sync(s), -ENOSPC,
		 "store_sync fails while the disk is full");
	CHECK_EQ(append_rec(s, &r[1999], buf), -ENOSPC,
		 "and so do appends");

	unlink(fill_path);
	CHECK_EQ(store_sync(s), 0, "with room again, store_sync succeeds");
	for (i = 0, bad = 0; i < n; i++)
		if (check_rec(s, &r[i], buf, want))
			bad++;
	CHECK_EQ(bad, 0, "every appended chunk reads back");
	CHECK_EQ(walk_all(s, &records), 0, "every pack walks cleanly");
	CHECK_EQ(records, n, "and holds exactly the %d chunks appended", n);
	store_close(s);
	CHECK_EQ(open_at(dir, &opt, &s), 0, "store_open again");
	for (i = 0, bad = 0; i < n; i++)
		if (check_rec(s, &r[i], buf, want))
			bad++;
	CHECK_EQ(bad, 0, "all read back in a new instance");
	store_close(s);
	if (umount(dir) < 0)
		fprintf(stderr, "cannot unmount '%s': %s\n", dir,
			strerror(errno));
	free(fill_path);
	check_rmtree(dir);
	free(dir);
}

static int count_fds(void)
{
	char path[64];
	int fd, n = 0;

	for (fd = 0; fd < 1024; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (access(path, F_OK) == 0)
			n++;
	}
	return n;
}

int main(void)
{
	int fds = count_fds();

	/* The anomaly tests log errors on purpose (to stderr); the checks
	 * on stdout tell. */
	log_set_prog("test-store");
	test_interface();
	test_roundtrip();
	test_damage();
	test_two_writers();
	test_numbers();
	test_gc_locks();
	test_stale();
	test_truncate();
	test_walk();
	test_sync();
	test_threads();
	test_enospc();
	CHECK_EQ(count_fds(), fds, "no descriptor is left open");
	return check_done();
}
