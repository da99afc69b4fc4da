/* readahead.c — sequential reads and their window (readahead.h). */
#include "registry/readahead.h"

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

bool reg_readahead(struct reg_readahead *ra, uint64_t off, uint64_t len,
		   uint64_t size, uint64_t max, uint64_t *ret_from,
		   uint64_t *ret_to)
{
	uint64_t end = off + len, slack, from, to;

	if (!ra || !max || !len || off >= size || end < off)
		return false;
	slack = ra->win ? max64(ra->win, REG_RA_SLACK) : len;
	if (off + slack < ra->pos || off > ra->pos + slack) {
		/* a seek: a stream may start where this read ends */
		ra->win = 0;
		ra->pos = ra->done = end;
		return false;
	}
	ra->win = ra->win ? min64(2 * ra->win, max) :
			    min64(max64(2 * len, REG_RA_MIN), max);
	ra->pos = max64(ra->pos, end);
	from = max64(ra->done, off);
	to = min64(ra->pos + ra->win, size);
	if (to <= from)
		return false;
	ra->done = to;
	if (ret_from)
		*ret_from = from;
	if (ret_to)
		*ret_to = to;
	return true;
}
