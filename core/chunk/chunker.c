/* chunker.c — content-defined chunking: where files are cut into chunks.
 *
 * The cut points decide how well the store deduplicates: the same bytes
 * must always be cut in the same places, and an insertion must move only
 * the cuts near it. A Gear rolling hash (h = (h << 1) + gear[byte]) has a
 * window of 64 bytes, and its top bits depend on all of them, so a cut is
 * taken where the top bits are zero. FastCDC's normalized chunking tightens
 * the mask before the average size and loosens it after, so sizes gather
 * around the average; no byte before min_size is even hashed (the hash
 * starts from 0 at min_size), and max_size forces a cut.
 *
 * All the state lives in struct chunker, and the hash at a byte depends
 * only on the bytes since the last cut, so the boundaries do not depend on
 * how the input is split into buffers.
 */
#include "chunk/chunker.h"

#include <assert.h>
#include <errno.h>

/* gear[b]: 256 random 64-bit constants, from splitmix64 seeded with
 * 0x6d72656763646300 ("mregcdc\0"). They are part of the store format:
 * other constants would cut other boundaries, and a store would stop
 * deduplicating against itself. tests/unit/test-chunker.c regenerates the
 * table in its reference chunker and compares boundaries. */
static const uint64_t gear[256] = {
	0xeb7d562853ba06b2ULL, 0x53a303107a6886ddULL, 0x3086fc347335093aULL,
	0x1b2f9e568060feb6ULL, 0xa5a66a37255b9404ULL, 0xdd6e9022ead8f5c9ULL,
	0x2bf07436b1d0c41eULL, 0xbb6ecb3aac15a6fdULL, 0x113b1e85882210a1ULL,
	0x318af61d9c90434cULL, 0xdd2f6373ae64100aULL, 0xc97d72bdd8ddd942ULL,
	0xabe1357d75600808ULL, 0x48739f7646bfd84eULL, 0x5b50727e8b56e68fULL,
	0xf1e8fda06f62044eULL, 0x5bbe6304681ddab1ULL, 0xe2baf81066f8a8f6ULL,
	0x5fb7c9ed7e19addcULL, 0xc2337265fea9aabaULL, 0xe9801eb8944a32f7ULL,
	0x014d60025cb6c176ULL, 0xa4763a7b03c27eb0ULL, 0x3cfdac6a76dce4feULL,
	0x2c0b2c2681f354e6ULL, 0x8278719f4bab2a56ULL, 0x4ff2c5982647a3e9ULL,
	0xf4577120f6f6d7a0ULL, 0xa1c43073cb25594eULL, 0xb3645861752dbbacULL,
	0x16d17f09e622a843ULL, 0x7015cf0249515188ULL, 0x0f540fc25168863eULL,
	0x2b7b30e0a893cea0ULL, 0x8fedd9cf8078d556ULL, 0xc49dfe410d7ec193ULL,
	0x677079caf69e6f00ULL, 0x2125ecf1b43fd42fULL, 0x109dd4c4e481743bULL,
	0xef75b70f66f95f7dULL, 0x331a565105a1ab51ULL, 0x142f88c2ad2304b0ULL,
	0x50f853d1965d6c9dULL, 0x567990e924d7e2b5ULL, 0x3991eecea60bccfbULL,
	0x84cfcbd171a68d81ULL, 0x0c7b7c2a5afeee8bULL, 0xca3ac6d26cf21349ULL,
	0x3aff48deeb7c6630ULL, 0x45cae00481e0a32dULL, 0x5c6f10cfe5c1b798ULL,
	0x50d39486b96fee38ULL, 0xef467aa67f58459eULL, 0xdc80a49deea23827ULL,
	0xb2ffa4495e447219ULL, 0xbd806961c156c846ULL, 0x3957f4743aed0ecbULL,
	0x8a14ca3b5d569754ULL, 0x493973deddc55c03ULL, 0x04407f35711c51f9ULL,
	0xa303d7b9b9fc0b63ULL, 0xcc983a827ae60cc9ULL, 0xc894b455604c7acdULL,
	0x8a83a27634398bb8ULL, 0x71df74d42e3a8b29ULL, 0x02424f11e44f0053ULL,
	0xe41f29cb0ddc6261ULL, 0x763888da8b352177ULL, 0xfed9b82d3fa16f2aULL,
	0xf5fd493cbfaba8ceULL, 0xe41cf18f0b9940b0ULL, 0xc18bf8a27a1b17b6ULL,
	0x9d221b1cde457c4bULL, 0xc1b4801927e9923bULL, 0x1c050dc7b4b01d2dULL,
	0xc5ef363739a48cbbULL, 0xf8f04b9157ed8e2eULL, 0x79f8c8e627cab401ULL,
	0x77ab9d3286149f4bULL, 0x79521f7cafb5583aULL, 0x76f0dd0dfe3fe396ULL,
	0x64669308c2d8e990ULL, 0xb72029d8f0abdf16ULL, 0x8670c98f0b9348e6ULL,
	0x445991502e7dae89ULL, 0x5f1fb3aca64d1a51ULL, 0xc564f747699fe125ULL,
	0x3bf8a24a432f31cdULL, 0xee8d81f22c721dd3ULL, 0x407b3e1a6e329d4fULL,
	0xb76cf17e528f91ffULL, 0x6b780f9a23aba828ULL, 0xba7eb692f4be46c8ULL,
	0x1a96f86790ce97afULL, 0xd7a365d1bc77f125ULL, 0xcedbfa04f2a4da08ULL,
	0xfc4723c048d19e58ULL, 0xa4ee4e69646b9736ULL, 0xb123d8883836689bULL,
	0xe289ad2956f77217ULL, 0x47cf11a63228457dULL, 0x96820a31ece40b06ULL,
	0xc23183afcbed1f5cULL, 0x0a70a9f08bfb2bc5ULL, 0xfd67eeeb3eebb4ceULL,
	0x930ba75de931599fULL, 0x9d4ef488d1c4735cULL, 0x2803d22e4d729677ULL,
	0x34b1e64344e05b45ULL, 0x7e0e589765a3af9dULL, 0x34b25fe736aaa0a0ULL,
	0x440738e4995aa187ULL, 0x0bf5122e7adb52baULL, 0xaf8d2f233e36e18dULL,
	0x3d28b453e886be41ULL, 0x9d66958cfdb9bc23ULL, 0x587342eb41a37de3ULL,
	0x76cc29a279a19be1ULL, 0xb972beb3f655266aULL, 0x8c58feda8186f38bULL,
	0xd188ba504b974071ULL, 0x8fd569c305b66504ULL, 0x90df7dbea71e37b1ULL,
	0xf670745259022a04ULL, 0xf7ac8fbc6f80037eULL, 0x01f591a40acfa843ULL,
	0x9a276fc84853a85eULL, 0x3d23217eacf62cd7ULL, 0xe7aaf0576e548c54ULL,
	0xdf4efd3cdb0994e1ULL, 0x594e11c00fd49aa6ULL, 0x872091d6f4253da6ULL,
	0xe6d1184a68292163ULL, 0xd6951eb4e6c33161ULL, 0x1155cdb65d606651ULL,
	0x812bf22909f2c9a3ULL, 0xe4a1de8e3973343eULL, 0x9bc6e6e90c73ffa9ULL,
	0x5646b682e7f2f47eULL, 0xb5276c3924e25275ULL, 0x2cf9f9874f42d1fcULL,
	0x1f020499e664f0e3ULL, 0x0471614958daa634ULL, 0x5950529c3fa8a72bULL,
	0xf2e377f245efa592ULL, 0xbaf5796519bbb439ULL, 0x533fac39ee5308e5ULL,
	0xa9b7b230ec9689aeULL, 0xb8107274d7192615ULL, 0x49800f8e4a87d30aULL,
	0x6efc48e0bfbf0df8ULL, 0xf1c8d55e15c89c92ULL, 0xd6f9f4f489d5b0a9ULL,
	0xae75daf8ef9806c3ULL, 0x5138cea513f46d2aULL, 0x17a8d4d720241b31ULL,
	0xf4132a7d3a4f4af3ULL, 0x340ab918d7f4d118ULL, 0x50566c1e9b0674beULL,
	0x6df42171c8751112ULL, 0xbdef9c591fae0d86ULL, 0x8e32fc3135f49b0eULL,
	0x1a1c0bfca7fda2d9ULL, 0xaf972e5a15e8d736ULL, 0xf40dda6f1e7c2923ULL,
	0x811862bbd37cd35cULL, 0x22465ded0f2e19d7ULL, 0x1ca083d7dc69824eULL,
	0x9eb8d1fb29662e33ULL, 0x5080945473946251ULL, 0x7d0dbbf18c5b12c6ULL,
	0x4be056529f0a30ceULL, 0x198929f0103a6d9aULL, 0x5cd6d99c43f44464ULL,
	0x68050e694f530d8eULL, 0xa170a2d8b0f9cc48ULL, 0x9ce47a719c308191ULL,
	0x744407474846534fULL, 0xafd67c70625ccd71ULL, 0x2ab8e89f6ad2291cULL,
	0xace1d27b4d4ebfeaULL, 0xe633ad44f44b93ffULL, 0xd3fa550582db32e1ULL,
	0x6a27c4a4e145d984ULL, 0x7d6cbdd3c7f9b5a2ULL, 0x246bcf693e9ac7b5ULL,
	0xf6cc44009911fe61ULL, 0x0bcaacf294b823baULL, 0x7e73c9297cb0f6cfULL,
	0x2572f324734c96d3ULL, 0x0c4114b6bbf2b074ULL, 0xac8e010cb3dc3f41ULL,
	0xb935e45f0ede642fULL, 0x22d8355e9c248633ULL, 0x191e258345b1e09bULL,
	0x38273e752c97bedaULL, 0xf08ce75109cb02bfULL, 0x1ece108348020506ULL,
	0xb04434695cc3f786ULL, 0x2ebd89bb3f269bfcULL, 0x5e57f3c03c89b17eULL,
	0xe706488f829820d6ULL, 0x4949220f50896661ULL, 0x7d9e76d8f239f7f6ULL,
	0x5150f3b9b0789612ULL, 0x7af3764f16a9e609ULL, 0x0b32ee3313b8808cULL,
	0x0c72bccd2fc6997bULL, 0xb3b695d3db2046daULL, 0x651552723b578cd4ULL,
	0xd63e72dfa3b0caaaULL, 0x964eb3a1c3cd769bULL, 0x3304c6fc52669599ULL,
	0xccd503087e46ef14ULL, 0x58816b9fc29b4212ULL, 0x521e8b9b00a71c1eULL,
	0x4fa6b9e74420062fULL, 0x5b7d092cdb697f4cULL, 0x07aea473d36c574dULL,
	0xc62511c37e080aedULL, 0x6b71e77b4ff489e5ULL, 0xf26bfe5e7f62faacULL,
	0x00480ca833a44d3aULL, 0x1b0c1d7fc942dd4bULL, 0x4969645231db9fffULL,
	0x7f9d2380751473a3ULL, 0x012de9e791d2515eULL, 0x13d0f0ef7a24d9adULL,
	0x7bd86dd4c3107bc1ULL, 0xb54c7efbc3f604fcULL, 0x73752056a1daec54ULL,
	0x6aa11ceb7c594f0cULL, 0x802a98ad7eaef60fULL, 0xaa8785a227af759eULL,
	0x6acc8da17b25d95dULL, 0xd5ac48a359f43742ULL, 0xa20f8993485a2e1fULL,
	0x9a784d7da95b4113ULL, 0x60905d5abcaf7eb9ULL, 0x65c26d323ffdc366ULL,
	0x562657bec6cbdf1dULL, 0x2b4cdc9c4788d6cdULL, 0xc807ed24c55f06cdULL,
	0x260688df9f0ab8caULL, 0xc6b38896bb5e024aULL, 0x908f219188a1c0d7ULL,
	0x3ca174623133c8dfULL, 0xab527b219dd63c8cULL, 0xa7f3a7516824c10cULL,
	0x1cd7390397b27524ULL, 0x6043205a1f2d778dULL, 0xb8220a0a1d22f35fULL,
	0xa8962baae9193cadULL, 0xddc2eb5ceca473f7ULL, 0xe495f43de607e0fdULL,
	0xa8b2c7435a5e5fb1ULL,
};

#define MIN_SIZE_FLOOR 64u
#define MAX_SIZE_CEIL (64u << 20)

int chunker_params_check(const struct chunker_params *p)
{
	if (!p)
		return -EINVAL;
	if (p->min_size < MIN_SIZE_FLOOR || p->min_size >= p->avg_size ||
	    p->avg_size >= p->max_size || p->max_size > MAX_SIZE_CEIL)
		return -EINVAL;
	if (p->avg_size & (p->avg_size - 1))
		return -EINVAL;
	return 0;
}

/* A mask of the top n bits: a hash passes when they are all zero, which
 * happens once in 2^n bytes on random data. */
static uint64_t top_bits(unsigned n)
{
	assert(n >= 1 && n < 64);
	return ~0ULL << (64 - n);
}

void chunker_init(struct chunker *c, const struct chunker_params *p)
{
	unsigned bits = 0;

	assert(c && p && chunker_params_check(p) == 0);
	c->p = *p;
	while ((1u << bits) < p->avg_size)
		bits++;
	/* Normalization level 2, as FastCDC recommends: 4x less likely to
	 * cut than the average before it, 4x more likely after. avg >= 128
	 * keeps bits - 2 >= 5. */
	c->mask_s = top_bits(bits + 2);
	c->mask_l = top_bits(bits - 2);
	c->hash = 0;
	c->pos = 0;
}

/* Rolls the hash over p[0..n) and returns the index of the first byte
 * after which (hash & mask) == 0, or n when there is none. This loop is
 * the chunker's whole cost. h = (h << 1) + g is a chain of one or two
 * dependent operations a byte, depending on the CPU's lea; four bytes at a
 * time, the hash four bytes on is (h << 4) + t, where t mixes the four
 * gear values off the chain, and the hashes in between are only tested.
 * About 3.8 GB/s hashed on a Zen 5 core, where the plain loop is as fast;
 * the unrolled one is meant to keep it on cores with a slow lea. */
static inline size_t gear_run(uint64_t *hp, const uint8_t *p, size_t n,
			      uint64_t mask)
{
	uint64_t h = *hp;
	size_t i = 0;

	for (; i + 4 <= n; i += 4) {
		uint64_t g0 = gear[p[i]], g1 = gear[p[i + 1]];
		uint64_t g2 = gear[p[i + 2]], g3 = gear[p[i + 3]];
		uint64_t h0 = (h << 1) + g0;
		uint64_t h1 = (h0 << 1) + g1;
		uint64_t h2 = (h1 << 1) + g2;
		uint64_t t = (((g0 << 1) + g1) << 1) + g2;

		if (__builtin_expect(!(h0 & mask), 0)) {
			*hp = h0;
			return i;
		}
		if (__builtin_expect(!(h1 & mask), 0)) {
			*hp = h1;
			return i + 1;
		}
		if (__builtin_expect(!(h2 & mask), 0)) {
			*hp = h2;
			return i + 2;
		}
		h = (h << 4) + ((t << 1) + g3);
		if (__builtin_expect(!(h & mask), 0)) {
			*hp = h;
			return i + 3;
		}
	}
	for (; i < n; i++) {
		h = (h << 1) + gear[p[i]];
		if (!(h & mask)) {
			*hp = h;
			return i;
		}
	}
	*hp = h;
	return n;
}

/* Ends the current chunk: the next byte starts a new one. */
static void chunker_reset(struct chunker *c)
{
	assert(c);
	c->hash = 0;
	c->pos = 0;
}

size_t chunker_scan(struct chunker *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t i = 0, n, r;

	if (!c || (!buf && len))
		return CHUNKER_NO_CUT;

	/* No cut can fall before min_size, so those bytes are not hashed:
	 * a third of the work saved at the default sizes. */
	if (c->pos < c->p.min_size) {
		n = c->p.min_size - c->pos;
		if (n >= len) {
			c->pos += len;
			return CHUNKER_NO_CUT;
		}
		i = n;
		c->pos = c->p.min_size;
	}

	/* Before avg_size: the stricter mask. */
	if (c->pos < c->p.avg_size) {
		n = c->p.avg_size - c->pos;
		if (n > len - i)
			n = len - i;
		r = gear_run(&c->hash, p + i, n, c->mask_s);
		if (r < n) {
			chunker_reset(c);
			return i + r + 1;
		}
		i += n;
		c->pos += n;
		if (i == len)
			return CHUNKER_NO_CUT;
	}

	/* From avg_size to max_size: the looser mask, then a forced cut. */
	n = c->p.max_size - c->pos;
	if (n > len - i)
		n = len - i;
	r = gear_run(&c->hash, p + i, n, c->mask_l);
	if (r < n) {
		chunker_reset(c);
		return i + r + 1;
	}
	i += n;
	c->pos += n;
	if (c->pos == c->p.max_size) {
		chunker_reset(c);
		return i;
	}
	return CHUNKER_NO_CUT;
}
