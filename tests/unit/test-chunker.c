/* test-chunker.c — the chunker's contract: sizes within bounds, boundaries
 * that depend only on the bytes (not on how they are fed in), an average
 * near the configured one, and cuts that survive an insertion. A naive
 * reference implementation, written from the definition, checks that the
 * fast loop cuts in exactly the same places. */
#include "chunk/chunker.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"

#define DATA_LEN (64u << 20)

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	size_t i;
	uint64_t v;

	for (i = 0; i + 8 <= n; i += 8) {
		v = splitmix64(&seed);
		memcpy(p + i, &v, 8);
	}
	v = splitmix64(&seed);
	memcpy(p + i, &v, n - i);
}

/* ---- the reference: FastCDC as written in the paper ------------------ */

static uint64_t ref_gear[256];

static void ref_init(void)
{
	uint64_t seed = 0x6d72656763646300ULL;
	int i;

	for (i = 0; i < 256; i++)
		ref_gear[i] = splitmix64(&seed);
}

/* The length of the first chunk of p[0..n). */
static size_t ref_cut(const uint8_t *p, size_t n,
		      const struct chunker_params *prm)
{
	unsigned bits = (unsigned)__builtin_ctz(prm->avg_size);
	uint64_t mask_s = ~0ULL << (64 - (bits + 2));
	uint64_t mask_l = ~0ULL << (64 - (bits - 2));
	uint64_t h = 0;
	size_t i;

	if (n <= prm->min_size)
		return n;
	for (i = prm->min_size; i < n && i < prm->max_size; i++) {
		h = (h << 1) + ref_gear[p[i]];
		if (!(h & (i < prm->avg_size ? mask_s : mask_l)))
			return i + 1;
	}
	return i;
}

/* Chunk lengths of the whole of p[0..n) by the reference. */
static size_t ref_chunks(const uint8_t *p, size_t n,
			 const struct chunker_params *prm, size_t *out)
{
	size_t off = 0, k = 0, r;

	while (off < n) {
		r = ref_cut(p + off, n - off, prm);
		out[k++] = r;
		off += r;
	}
	return k;
}

/* ---- the chunker under test, fed in pieces ---------------------------- */

/* Chunk lengths of p[0..n) through chunker_scan(), fed in pieces of step
 * bytes (0: random sizes from 1 to 300000, drawn from seed). */
static size_t stream_chunks(const uint8_t *d, size_t n,
			    const struct chunker_params *prm, size_t step,
			    uint64_t seed, size_t *out)
{
	struct chunker c;
	size_t off = 0, start = 0, k = 0, len, left, r;
	const uint8_t *p;

	chunker_init(&c, prm);
	while (off < n) {
		len = step ? step : 1 + splitmix64(&seed) % 300000;
		if (len > n - off)
			len = n - off;
		p = d + off;
		left = len;
		while ((r = chunker_scan(&c, p, left)) != CHUNKER_NO_CUT) {
			if (r == 0 || r > left)
				return (size_t)-1;
			p += r;
			left -= r;
			out[k++] = (size_t)(p - d) - start;
			start = (size_t)(p - d);
		}
		off += len;
	}
	if (start < n)
		out[k++] = n - start;
	return k;
}

static bool same_list(const size_t *a, size_t na, const size_t *b, size_t nb)
{
	return na == nb && memcmp(a, b, na * sizeof(*a)) == 0;
}

/* Every chunk but the last within [min, max]; lengths add up to n. */
static bool sizes_ok(const size_t *v, size_t k, size_t n,
		     const struct chunker_params *prm)
{
	size_t i, sum = 0;

	for (i = 0; i < k; i++) {
		if (v[i] > prm->max_size || v[i] == 0)
			return false;
		if (i + 1 < k && v[i] < prm->min_size)
			return false;
		sum += v[i];
	}
	return sum == n;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (n--)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

static uint64_t *chunk_hashes(const uint8_t *d, const size_t *v, size_t k)
{
	uint64_t *h = calloc(k, sizeof(*h));
	size_t i, off = 0;

	if (!h)
		abort();
	for (i = 0; i < k; i++) {
		h[i] = fnv1a(d + off, v[i]);
		off += v[i];
	}
	return h;
}

/* How many chunks of b do not appear among the chunks of a. */
static size_t chunks_not_in(const uint8_t *a, const size_t *va, size_t ka,
			    const uint8_t *b, const size_t *vb, size_t kb)
{
	uint64_t *ha = chunk_hashes(a, va, ka), *hb = chunk_hashes(b, vb, kb);
	size_t i, j, missing = 0;

	for (j = 0; j < kb; j++) {
		for (i = 0; i < ka && ha[i] != hb[j]; i++)
			;
		if (i == ka)
			missing++;
	}
	free(ha);
	free(hb);
	return missing;
}

/* ---- the tests ---------------------------------------------------------- */

static void test_params_check(void)
{
	struct chunker_params d = CHUNKER_DEFAULT_PARAMS;
	struct chunker_params p;

	CHECK_EQ(chunker_params_check(&d), 0, "default parameters pass");
	CHECK_EQ(chunker_params_check(NULL), -EINVAL, "NULL refused");
	p = (struct chunker_params){ 64, 128, 129 };
	CHECK_EQ(chunker_params_check(&p), 0, "64/128/129 passes (the floor)");
	p = (struct chunker_params){ 1u << 20, 16u << 20, 64u << 20 };
	CHECK_EQ(chunker_params_check(&p), 0, "max of 64 MiB passes");
	p = (struct chunker_params){ 63, 128, 256 };
	CHECK_EQ(chunker_params_check(&p), -EINVAL, "min below 64 refused");
	p = (struct chunker_params){ 0, 128, 256 };
	CHECK_EQ(chunker_params_check(&p), -EINVAL, "min 0 refused");
	p = (struct chunker_params){ 4096, 4096, 65536 };
	CHECK_EQ(chunker_params_check(&p), -EINVAL, "min == avg refused");
	p = (struct chunker_params){ 8192, 4096, 65536 };
	CHECK_EQ(chunker_params_check(&p), -EINVAL, "min > avg refused");
	p = (struct chunker_params){ 1024, 65536, 65536 };
	CHECK_EQ(chunker_params_check(&p), -EINVAL, "avg == max refused");
	p = (struct chunker_params){ 1024, 65536, 32768 };
	CHECK_EQ(chunker_params_check(&p), -EINVAL, "max < avg refused");
	p = (struct chunker_params){ 1024, 65536, (64u << 20) + 1 };
	CHECK_EQ(chunker_params_check(&p), -EINVAL, "max above 64 MiB refused");
	p = (struct chunker_params){ 1024, 65535, 262144 };
	CHECK_EQ(chunker_params_check(&p), -EINVAL, "avg not a power of two");
	p = (struct chunker_params){ 1024, 3u << 14, 262144 };
	CHECK_EQ(chunker_params_check(&p), -EINVAL, "avg 48K refused");
}

static void test_edges(void)
{
	struct chunker_params d = CHUNKER_DEFAULT_PARAMS;
	struct chunker c;
	uint8_t *z = calloc(1, d.max_size * 3);
	size_t r, i;
	bool same = true;

	if (!z)
		abort();
	chunker_init(&c, &d);
	CHECK(chunker_scan(&c, z, 0) == CHUNKER_NO_CUT, "empty buffer: no cut");
	CHECK(chunker_scan(&c, z, d.min_size) == CHUNKER_NO_CUT,
	      "no cut within min_size");

	/* Zeros roll the hash to a constant; whether it cuts or not, the
	 * chunks must repeat so that runs of zeros deduplicate. */
	chunker_init(&c, &d);
	r = chunker_scan(&c, z, d.max_size * 3);
	CHECK(r != CHUNKER_NO_CUT && r >= d.min_size && r <= d.max_size,
	      "zeros: first chunk within bounds (%zu)", r);
	for (i = 0; i < 2 && r != CHUNKER_NO_CUT; i++)
		if (chunker_scan(&c, z, d.max_size * 3) != r)
			same = false;
	CHECK(same, "zeros: every chunk has the same length");

	/* A forced cut that falls on the last byte of a buffer is reported
	 * there, and the next buffer starts a new chunk. */
	{
		struct chunker_params p = { 64, 1u << 20, (1u << 20) + 64 };
		uint8_t *o = malloc(p.max_size);

		if (!o)
			abort();
		/* 0xff bytes: a hash that never has its top bits clear. */
		memset(o, 0xff, p.max_size);
		chunker_init(&c, &p);
		r = chunker_scan(&c, o, p.max_size - 1);
		if (r == CHUNKER_NO_CUT)
			r = chunker_scan(&c, o, 1);
		else
			r = 0;
		CHECK_EQ(r, 1, "forced cut on the last byte of a buffer");
		CHECK_EQ(c.pos, 0, "state reset after the forced cut");
		free(o);
	}
	free(z);
}

static void test_random(const uint8_t *d, size_t n,
			const struct chunker_params *prm, const char *what)
{
	size_t cap = n / prm->min_size + 2;
	size_t *ref = calloc(cap, sizeof(size_t));
	size_t *v = calloc(cap, sizeof(size_t));
	size_t kref, k, mean;
	static const size_t steps[] = { 7, 4096, 65536 + 3, 1u << 20 };
	unsigned i;

	if (!ref || !v)
		abort();
	kref = ref_chunks(d, n, prm, ref);
	k = stream_chunks(d, n, prm, n, 0, v);
	CHECK(k != (size_t)-1 && sizes_ok(v, k, n, prm),
	      "%s: %zu chunks, all within [min, max]", what, k);
	CHECK(same_list(v, k, ref, kref),
	      "%s: same boundaries as the reference (%zu)", what, kref);
	mean = n / (k ? k : 1);
	CHECK(mean >= prm->avg_size / 2 && mean <= prm->avg_size * 2,
	      "%s: mean size %zu within 0.5-2x avg %u", what, mean,
	      prm->avg_size);

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		k = stream_chunks(d, n, prm, steps[i], 0, v);
		CHECK(same_list(v, k, ref, kref),
		      "%s: fed %zu bytes at a time, same boundaries", what,
		      steps[i]);
	}
	for (i = 0; i < 3; i++) {
		k = stream_chunks(d, n, prm, 0, 1000 + i, v);
		CHECK(same_list(v, k, ref, kref),
		      "%s: fed in random pieces (seed %u), same boundaries",
		      what, 1000 + i);
	}
	/* One byte at a time is slow-ish: 8 MiB of it is enough. */
	if (n > (8u << 20)) {
		size_t k8 = ref_chunks(d, 8u << 20, prm, ref);

		k = stream_chunks(d, 8u << 20, prm, 1, 0, v);
		CHECK(same_list(v, k, ref, k8),
		      "%s: fed 1 byte at a time, same boundaries", what);
	} else {
		k = stream_chunks(d, n, prm, 1, 0, v);
		CHECK(same_list(v, k, ref, kref),
		      "%s: fed 1 byte at a time, same boundaries", what);
	}
	free(ref);
	free(v);
}

/* Edits shift every later byte; content-defined cuts move with them, so
 * only the chunks around the edit change. */
static void test_shift(const uint8_t *d, size_t n,
		       const struct chunker_params *prm)
{
	size_t cap = n / prm->min_size + 4;
	size_t *va = calloc(cap, sizeof(size_t));
	size_t *vb = calloc(cap, sizeof(size_t));
	uint8_t *e = malloc(n + 16);
	size_t ka, kb, at;

	if (!va || !vb || !e)
		abort();
	ka = stream_chunks(d, n, prm, 4096, 0, va);

	/* Insert 5 bytes 1000 bytes in. */
	at = 1000;
	memcpy(e, d, at);
	memcpy(e + at, "hello", 5);
	memcpy(e + at + 5, d + at, n - at);
	kb = stream_chunks(e, n + 5, prm, 4096, 0, vb);
	CHECK(chunks_not_in(d, va, ka, e, vb, kb) <= 2,
	      "insert near the start changes at most two chunks (%zu new)",
	      chunks_not_in(d, va, ka, e, vb, kb));

	/* Insert 3 bytes in the middle. */
	at = n / 2 + 12345;
	memcpy(e, d, at);
	memcpy(e + at, "abc", 3);
	memcpy(e + at + 3, d + at, n - at);
	kb = stream_chunks(e, n + 3, prm, 4096, 0, vb);
	CHECK(chunks_not_in(d, va, ka, e, vb, kb) <= 2,
	      "insert in the middle changes at most two chunks (%zu new)",
	      chunks_not_in(d, va, ka, e, vb, kb));

	/* Delete 7 bytes near the start. */
	at = 5000;
	memcpy(e, d, at);
	memcpy(e + at, d + at + 7, n - at - 7);
	kb = stream_chunks(e, n - 7, prm, 4096, 0, vb);
	CHECK(chunks_not_in(d, va, ka, e, vb, kb) <= 2,
	      "delete near the start changes at most two chunks (%zu new)",
	      chunks_not_in(d, va, ka, e, vb, kb));

	/* Overwrite one byte: exactly one chunk differs, or two. */
	memcpy(e, d, n);
	e[n / 3] ^= 0x5a;
	kb = stream_chunks(e, n, prm, 4096, 0, vb);
	CHECK(chunks_not_in(d, va, ka, e, vb, kb) >= 1 &&
	      chunks_not_in(d, va, ka, e, vb, kb) <= 2,
	      "a flipped byte changes one or two chunks");

	free(va);
	free(vb);
	free(e);
}

int main(void)
{
	struct chunker_params def = CHUNKER_DEFAULT_PARAMS;
	struct chunker_params small = { 2048, 8192, 32768 };
	struct chunker_params tiny = { 64, 128, 512 };
	struct chunker_params big = { 256u << 10, 1u << 20, 4u << 20 };
	uint8_t *d = malloc(DATA_LEN);

	if (!d)
		abort();
	ref_init();
	fill_random(d, DATA_LEN, 42);

	test_params_check();
	test_edges();
	test_random(d, DATA_LEN, &def, "default 16K/64K/256K");
	test_random(d, 8u << 20, &small, "2K/8K/32K");
	test_random(d, 1u << 20, &tiny, "64/128/512");
	test_random(d, DATA_LEN, &big, "256K/1M/4M");
	test_shift(d, 16u << 20, &def);
	test_shift(d, 2u << 20, &small);

	free(d);
	return check_done();
}
