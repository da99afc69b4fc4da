/* test-readahead.c — when the reads of an open file are sequential and
 * what is fetched ahead of them (registry/readahead.h, pure): the window
 * starts at the first read from the start of a file, doubles while reads
 * follow each other up to the maximum, covers the read itself, is never
 * asked for twice, stops at the end of the file, tolerates reads sent at
 * once arriving out of order, and starts again after a seek; random
 * reads fetch nothing ahead, nor does a maximum of 0. */
#include "registry/readahead.h"

#include <stdint.h>

#include "check.h"

#define KiB 1024ull
#define MiB (1024 * KiB)

static struct reg_readahead ra;
static uint64_t from, to;

/* A read of the 100 MiB file with at most 8 MiB ahead. */
static bool rd(uint64_t off, uint64_t len)
{
	return reg_readahead(&ra, off, len, 100 * MiB, 8 * MiB, &from, &to);
}

static void test_stream(void)
{
	uint64_t off, done;
	bool ok;
	int i;

	CHECK(rd(0, 128 * KiB) && from == 0 && to == 128 * KiB + 256 * KiB,
	      "the first read at 0 is sequential: itself and 256 KiB ahead "
	      "(%llu..%llu)", (unsigned long long)from,
	      (unsigned long long)to);
	CHECK(rd(128 * KiB, 128 * KiB) && from == 384 * KiB &&
	      to == 256 * KiB + 512 * KiB, "the next: from where the last "
	      "stopped, the window doubled to 512 KiB");
	for (i = 2, off = 256 * KiB, ok = true; i < 12; i++, off += 128 * KiB) {
		done = ra.done;
		ok &= rd(off, 128 * KiB) && from == done;
	}
	CHECK(ok && ra.win == 8 * MiB, "read after read: never the same "
	      "bytes twice, the window grows to the 8 MiB maximum");
	CHECK(rd(off, 128 * KiB) && to - from == 128 * KiB &&
	      to == off + 128 * KiB + 8 * MiB, "then each read adds its own "
	      "length, 8 MiB ahead of it");
	off += 128 * KiB;
	/* reads FUSE sends at once arrive out of order */
	CHECK(rd(off + 128 * KiB, 128 * KiB) && ra.win == 8 * MiB,
	      "a read a little ahead is still the stream");
	CHECK(!rd(off, 128 * KiB) && ra.win == 8 * MiB, "and the one it "
	      "overtook too: nothing new, the window kept");
	CHECK(!rd(60 * MiB, 128 * KiB) && ra.win == 0, "a seek: nothing "
	      "ahead, no window");
	CHECK(rd(60 * MiB + 128 * KiB, 128 * KiB) &&
	      from == 60 * MiB + 128 * KiB &&
	      to == 60 * MiB + 256 * KiB + 256 * KiB, "a stream starts "
	      "again where the seek's read ended");
	for (off = 60 * MiB + 256 * KiB; off < 100 * MiB; off += MiB)
		rd(off, MiB);
	CHECK(ra.done == 100 * MiB, "never past the end of the file");
	CHECK(!rd(100 * MiB - MiB, MiB), "nothing left to fetch at its end");
}

static void test_random(void)
{
	static const uint64_t offs[] = { 50, 3, 77, 12, 90, 41, 5, 63 };
	unsigned i;
	bool any = false;

	ra = (struct reg_readahead){ 0 };
	for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		any |= rd(offs[i] * MiB, 4 * KiB);
	CHECK(!any && ra.win == 0, "random reads: nothing ahead");
	ra = (struct reg_readahead){ 0 };
	CHECK(!rd(3 * MiB, 64 * KiB), "a first read far from the start is "
	      "not (yet) a stream");
	CHECK(rd(3 * MiB + 64 * KiB, 64 * KiB), "... the read after it is");
	ra = (struct reg_readahead){ 0 };
	CHECK(!reg_readahead(&ra, 0, 128 * KiB, 100 * MiB, 0, &from, &to),
	      "a maximum of 0: never");
	CHECK(!reg_readahead(&ra, 0, 0, 100 * MiB, 8 * MiB, &from, &to) &&
	      !reg_readahead(&ra, 200 * MiB, 4 * KiB, 100 * MiB, 8 * MiB,
			     &from, &to),
	      "an empty read, a read past the end: nothing");
	ra = (struct reg_readahead){ 0 };
	CHECK(rd(0, 4 * MiB) && to == 4 * MiB + 8 * MiB,
	      "a first read larger than the minimum window: twice it, at "
	      "most the maximum");
	ra = (struct reg_readahead){ 0 };
	CHECK(reg_readahead(&ra, 0, 4 * KiB, 100 * KiB, 8 * MiB, &from,
			    &to) && to == 100 * KiB,
	      "a small file: all of it at the first read");
}

int main(void)
{
	test_stream();
	test_random();
	return check_done();
}
