/* packfmt.c — pack header and record framing, and the one pack walker
 * (see packfmt.h): the one place that writes and checks them, for the
 * pack files of store/pack/ and the pack objects of store/s3/ alike. */
#include "packfmt.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void pack_header_encode(uint8_t *p, uint32_t num)
{
	assert(p);
	memcpy(p, PACK_MAGIC, 8);
	pack_put_le32(p + 8, PACK_FORMAT);
	pack_put_le32(p + 12, num);
}

const char *pack_header_check(const uint8_t *p, uint32_t num)
{
	assert(p);
	if (memcmp(p, PACK_MAGIC, 8) || pack_get_le32(p + 8) != PACK_FORMAT ||
	    pack_get_le32(p + 12) != num)
		return "bad pack header";
	return NULL;
}

void pack_record_encode(uint8_t *p, const struct mreg_id *id, uint32_t len)
{
	assert(p && id);
	pack_put_le32(p, PACK_RECORD_MAGIC);
	pack_put_le32(p + 4, len);
	memcpy(p + 8, id->b, MREG_ID_LEN);
}

const char *pack_record_check(const uint8_t *p, uint32_t len,
			      const struct mreg_id *id)
{
	assert(p);
	if (pack_get_le32(p) != PACK_RECORD_MAGIC)
		return "bad record magic";
	if (pack_get_le32(p + 4) != len)
		return "record length differs";
	if (id && memcmp(p + 8, id->b, MREG_ID_LEN))
		return "record names another chunk";
	return NULL;
}

uint32_t pack_record_len(const uint8_t *p)
{
	assert(p);
	return pack_get_le32(p + 4);
}

void pack_record_id(const uint8_t *p, struct mreg_id *ret)
{
	assert(p && ret);
	memcpy(ret->b, p + 8, MREG_ID_LEN);
}

/* The walk's read-ahead buffer over a source. */
struct window {
	const struct pack_source *src;
	uint8_t *buf;
	size_t cap;
	uint64_t bstart;         /* buf holds [bstart, bstart + have) */
	size_t have;
};

/* Makes the bytes [off, off + n) available at buf + off - bstart: 0, 1
 * when the pack ends before, or read's error. */
static int fill(struct window *v, uint64_t off, uint64_t n)
{
	uint64_t want;
	uint8_t *nb;
	ssize_t k;

	assert(v && v->buf);
	if (off >= v->bstart && off + n <= v->bstart + v->have)
		return 0;
	if (off + n > v->src->size)
		return 1;
	if (n > v->cap) {
		nb = realloc(v->buf, n);
		if (!nb)
			return -ENOMEM;
		v->buf = nb;
		v->cap = n;
	}
	want = v->src->size - off < v->cap ? v->src->size - off : v->cap;
	v->bstart = off;
	v->have = 0;
	while (v->have < want) {
		k = v->src->read(v->src->arg, off + v->have, v->buf + v->have,
				 want - v->have);
		if (k < 0)
			return (int)k;
		if (k == 0)
			break;
		v->have += (size_t)k;
	}
	return v->have >= n ? 0 : 1;
}

int pack_walk(const struct pack_source *src, uint32_t num,
	      int (*fn)(void *arg, const struct mreg_id *id, uint64_t data_off,
			const void *data, uint32_t len),
	      void *arg, const char **why, uint64_t *at)
{
	struct window v = { .src = src };
	const uint8_t *h;
	struct mreg_id id;
	uint64_t off = 0;
	uint32_t len;
	int r;

	assert(src && src->read && src->window && fn && why && at);
	*why = NULL;
	/* Small packs are common (each process starts its own): read them
	 * whole without taking the full read-ahead buffer. */
	v.cap = src->size < src->window ? (size_t)src->size + 1 : src->window;
	v.buf = malloc(v.cap);
	if (!v.buf)
		return -ENOMEM;
	r = fill(&v, 0, PACK_HEADER_SIZE);
	if (r == 1)
		*why = "short pack header";
	else if (r == 0)
		*why = pack_header_check(v.buf, num);
	if (!r && !*why)
		off = PACK_HEADER_SIZE;
	while (!r && !*why && off < src->size) {
		r = fill(&v, off, PACK_RECORD_HEADER);
		if (r == 1)
			*why = "torn record header";
		if (r)
			break;
		h = v.buf + (off - v.bstart);
		len = pack_record_len(h);
		*why = pack_record_check(h, len, NULL);
		if (*why)
			break;
		r = fill(&v, off, PACK_RECORD_HEADER + (uint64_t)len);
		if (r == 1)
			*why = "record runs past the end";
		if (r)
			break;
		h = v.buf + (off - v.bstart);
		pack_record_id(h, &id);
		r = fn(arg, &id, off + PACK_RECORD_HEADER,
		       h + PACK_RECORD_HEADER, len);
		if (!r)
			off += PACK_RECORD_HEADER + (uint64_t)len;
	}
	free(v.buf);
	if (*why) {
		*at = off;
		return -EIO;
	}
	return r;
}
