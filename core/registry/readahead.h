/* readahead.h — whether the reads of an open file are sequential, and
 * what to fetch ahead of them (pure: reader.c asks the chunk store to
 * prefetch it, store_prefetch()). The rule is the kernel's read-ahead: a
 * window that doubles while reads follow each other, up to a maximum,
 * and starts again after a seek.
 *
 * A read is sequential when it starts where the reads of the stream
 * reached (within one read's length: the first read of a file at its
 * start is one), or, once a stream runs, within its window of that point
 * (at least REG_RA_SLACK): reads that FUSE sends several at a time reach
 * the daemon a little out of order. Any other read is a seek: no window,
 * and a stream may start again where it ends.
 */
#ifndef MREG_REGISTRY_READAHEAD_H
#define MREG_REGISTRY_READAHEAD_H

#include <stdbool.h>
#include <stdint.h>

#define REG_RA_MIN   (256u << 10) /* the first window, at least */
#define REG_RA_SLACK (1u << 20)   /* out of order, at least, in a stream */

/* One open file's state; all zero to begin. */
struct reg_readahead {
	uint64_t pos;             /* where the stream's reads reached */
	uint64_t done;            /* asked for up to here */
	uint64_t win;             /* bytes ahead; 0: not sequential */
};

/* A read of [off, off + len) of a file of size bytes, with at most max
 * bytes ahead (0: never). True when it is sequential and there is
 * something not asked for yet in [*ret_from, *ret_to): the bytes of the
 * read itself (so that its own chunks come in parallel too) and of the
 * window past it, within the file. */
bool reg_readahead(struct reg_readahead *ra, uint64_t off, uint64_t len,
		   uint64_t size, uint64_t max, uint64_t *ret_from,
		   uint64_t *ret_to);

#endif
