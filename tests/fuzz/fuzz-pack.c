/* fuzz-pack.c — libFuzzer entry point for the pack reader
 * (core/store/pack/pack.c).
 *
 * The input is written as pack 1 of a store in a scratch directory and
 * walked with store_iterate(), as fsck and gc do. Beyond the sanitizers
 * it checks: the walk ends in 0 or -EIO (a damaged or torn pack), every
 * record it hands over lies inside the file, store_get_raw() at that
 * location gives the same bytes, and store_get() accepts them exactly
 * when they hash to the record's id. Then a location taken from the
 * input's last 8 bytes is read: 0 or -EIO, and on success the bytes of
 * the file there — never anything else (the reader checks the record
 * header in front of every chunk).
 */
#include "chunk/chunkid.h"
#include "log.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The pack backend's formats (store/pack/pack.c): a 16-byte pack header,
 * 24-byte record headers starting with "CHNK", and locations of u32 pack,
 * u32 len, u64 offset of the data, little-endian. */
#define PACK_HEADER_SIZE 16
#define PACK_RECORD_HEADER 24
#define PACK_RECORD_MAGIC 0x4b4e4843u

static struct mreg_store *st;
static char *dir, *pack_path;

static void quiet(void *arg, enum log_level lvl, const char *msg)
{
	(void)arg;
	(void)lvl;
	(void)msg;
}

/* Leaves nothing behind when the fuzzer (or the replay) stops. */
static void cleanup(void)
{
	char *packs;

	store_close(st);
	unlink(pack_path);
	if (asprintf(&packs, "%s/packs", dir) >= 0) {
		rmdir(packs);
		free(packs);
	}
	rmdir(dir);
}

static void setup(void)
{
	const char *base = getenv("TMPDIR");

	if (!base)
		base = "/tmp";
	if (asprintf(&dir, "%s/mreg-fuzz-pack-XXXXXX", base) < 0 ||
	    !mkdtemp(dir))
		abort();
	if (store_open(&(struct store_options){ .dir = dir, .sync = true },
		       &st) < 0)
		abort();
	if (asprintf(&pack_path, "%s/packs/pack-00000001.pack", dir) < 0)
		abort();
	log_set_sink(quiet, NULL);
	atexit(cleanup);
}

struct walk {
	const uint8_t *file;
	size_t size;
	unsigned records;
};

static int on_record(void *arg, const struct mreg_id *id,
		     const struct chunk_loc *loc, const void *data,
		     uint32_t len)
{
	struct walk *w = arg;
	struct store_span sp;
	struct mreg_id got;
	uint8_t *buf;
	int r;

	if (store_loc_span(st, loc, &sp) != 0 || sp.container != 1 ||
	    sp.len != len || sp.size != PACK_RECORD_HEADER + (uint64_t)len ||
	    sp.off < PACK_HEADER_SIZE || sp.off + sp.size > w->size ||
	    memcmp(data, w->file + sp.off + PACK_RECORD_HEADER, len) != 0)
		abort();
	buf = malloc(len ? len : 1);
	if (!buf)
		abort();
	if (store_get_raw(st, loc, buf) != 0 || memcmp(buf, data, len) != 0)
		abort();
	chunkid_of(data, len, &got);
	r = store_get(st, loc, id, buf);
	if (r != (chunkid_eq(&got, id) ? 0 : -EIO))
		abort();
	free(buf);
	w->records++;
	return 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* A pack location as the backend writes it. */
static void put_loc(struct chunk_loc *l, uint32_t pack, uint32_t len,
		    uint64_t off)
{
	int i;

	memset(l, 0, sizeof(*l));
	l->len = 16;
	for (i = 0; i < 4; i++) {
		l->b[i] = (uint8_t)(pack >> (8 * i));
		l->b[4 + i] = (uint8_t)(len >> (8 * i));
	}
	for (i = 0; i < 8; i++)
		l->b[8 + i] = (uint8_t)(off >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct walk w = { data, size, 0 };
	struct chunk_loc loc;
	uint64_t off;
	uint32_t len;
	uint8_t *buf;
	int fd, r;

	if (!st)
		setup();
	fd = open(pack_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);

	r = store_iterate(st, 1, on_record, &w);
	if (r != 0 && r != -EIO)
		abort();

	if (size >= 8) {
		off = le32(data + size - 8) % (size + 64);
		len = le32(data + size - 4) % (size + 64);
		put_loc(&loc, 1, len, off);
		buf = malloc(len ? len : 1);
		if (!buf)
			abort();
		r = store_get_raw(st, &loc, buf);
		if (r != 0 && r != -EIO)
			abort();
		if (r == 0 && (off < PACK_HEADER_SIZE + PACK_RECORD_HEADER ||
			       off + len > size ||
			       le32(data + off - PACK_RECORD_HEADER) !=
			       PACK_RECORD_MAGIC ||
			       le32(data + off - PACK_RECORD_HEADER + 4) !=
			       len ||
			       memcmp(buf, data + off, len) != 0))
			abort();
		free(buf);
	}
	return 0;
}
