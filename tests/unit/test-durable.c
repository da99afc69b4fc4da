/* test-durable.c — "durable before referenced" (SPEC §5, STYLE 7) seen
 * from the registry: a chunk is named by an index transaction only after
 * store_sync() said its bytes are on disk. With the store's own fault
 * injection (pack_inject_fault(): the fdatasync() happens, then reports
 * EIO, as when the kernel lost the bytes of a failed writeback), every
 * path that commits chunks — a push, a file written in order, a file
 * written out of order (spool) — must fail, and the index must not name
 * the chunks: no new chunk record, no version, no committed content.
 *
 * A second guard beside tests/crash/ (crash simulation and the I/O
 * layer's fault points, in the -DMREG_FAULTS build): this one runs on
 * the ordinary build, and so reaches the store through registry/internal.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"
#include "registry/internal.h"
#include "registry/registry.h"

static char *tmp;
static struct mreg_config cfg;
static struct reg_registry *reg;
static struct reg_caller me;

static uint8_t *bytes(size_t size, unsigned seed)
{
	uint8_t *b = malloc(size);
	size_t i;

	if (!b)
		abort();
	srand(seed);
	for (i = 0; i < size; i++)
		b[i] = (uint8_t)rand();
	return b;
}

static char *write_file(const char *name, const uint8_t *b, size_t size)
{
	char *p;
	FILE *f;

	if (asprintf(&p, "%s/%s", tmp, name) < 0)
		abort();
	f = fopen(p, "w");
	if (!f || fwrite(b, 1, size, f) != size)
		abort();
	fclose(f);
	return p;
}

static uint64_t chunks(void)
{
	struct reg_store_stats st;

	return reg_store_stats(reg, &st) == 0 ? st.chunks : UINT64_MAX;
}

/* 0 when model/version/file holds exactly b. */
static int same(const char *path, const uint8_t *b, size_t size)
{
	char model[64], version[64], file[64];
	uint8_t *got;
	off_t n;
	int fd, r;

	if (sscanf(path, "%63[^/]/%63[^/]/%63s", model, version, file) != 3)
		abort();
	fd = memfd_create("cat", MFD_CLOEXEC);
	r = reg_cat(reg, model, version, file, fd);
	if (r == 0) {
		n = lseek(fd, 0, SEEK_END);
		got = malloc(size + 1);
		if (!got)
			abort();
		r = n != (off_t)size || pread(fd, got, size, 0) != n ||
		    memcmp(got, b, size) ? -1 : 0;
		free(got);
	}
	close(fd);
	return r;
}

static int fsck(void)
{
	return reg_fsck(reg, REG_FSCK_FULL, NULL, NULL, NULL);
}

static void test_push(void)
{
	size_t size = 700000;
	uint8_t *b = bytes(size, 1);
	char *src = write_file("push.bin", b, size);
	const char *paths[] = { src };
	char v[REG_NAME_MAX + 1];
	struct reg_attr a;
	uint64_t before = chunks();

	pack_inject_fault(reg->st, STORE_FAULT_SYNC, EIO);
	CHECK_EQ(reg_push(reg, &me, "d", paths, 1, "1", NULL, 0, NULL, NULL,
			  v), -EIO, "a push whose fdatasync fails: EIO");
	CHECK_EQ(chunks(), before,
		 "no chunk record names its bytes (%llu before)",
		 (unsigned long long)before);
	CHECK_EQ(reg_resolve(reg, "d/1", &a), -ENOENT, "no version was made");
	CHECK_EQ(fsck(), 0, "fsck --full is clean");
	CHECK_EQ(reg_push(reg, &me, "d", paths, 1, "1", NULL, 0, NULL, NULL,
			  v), 0, "the same push again works");
	CHECK(chunks() > before, "and its chunks are recorded now");
	CHECK_EQ(same("d/1/push.bin", b, size), 0, "and read back right");
	free(src);
	free(b);
}

/* A file of a draft, written with the given step (in order: the bytes
 * stream to the store as they come; "back": its last write goes back to
 * offset 0, which moves it to a spool), committed while the sync fails. */
static void test_flush(const char *name, bool back)
{
	size_t size = 500000, off, n;
	uint8_t *b = bytes(size, back ? 3 : 2);
	struct reg_attr m, v, a;
	struct reg_file *f = NULL;
	char path[64];
	uint64_t before;
	int r;

	snprintf(path, sizeof(path), "d/draft/%s", name);
	CHECK_EQ(reg_resolve(reg, "d/draft", &v), 0, "the draft");
	CHECK_EQ(reg_file_create(reg, &me, v.ino, name, 0644, O_WRONLY, &a, &f),
		 0, "create %s", name);
	if (!f)
		goto out;
	for (off = back ? 1 : 0; off < size; off += n) {
		n = size - off < 65536 ? size - off : 65536;
		if (reg_file_write(f, b + off, n, off) != (ssize_t)n)
			break;
	}
	if (back)
		reg_file_write(f, b, 1, 0);
	before = chunks();
	pack_inject_fault(reg->st, STORE_FAULT_SYNC, EIO);
	CHECK_EQ(reg_file_flush(f, &me), -EIO, "close() of %s (%s) whose "
		 "fdatasync fails: EIO", name, back ? "spooled" : "in order");
	CHECK_EQ(chunks(), before, "no chunk record names its bytes");
	CHECK(reg_resolve(reg, path, &m) == 0 && m.size == 0,
	      "its committed content is still empty");
	reg_file_release(f);
	CHECK_EQ(fsck(), 0, "fsck --full is clean");
	/* written again: the store took the failure in its stride */
	r = reg_file_open(reg, &me, a.ino, O_WRONLY | O_TRUNC, &f);
	CHECK_EQ(r, 0, "open %s again", name);
	if (r == 0) {
		CHECK_EQ(reg_file_write(f, b, size, 0), (ssize_t)size,
			 "write it");
		CHECK_EQ(reg_file_flush(f, &me), 0, "close() commits now");
		reg_file_release(f);
	}
	CHECK_EQ(same(path, b, size), 0, "and %s reads back right", name);
out:
	free(b);
}

int main(void)
{
	struct reg_attr m, v;
	char *store;

	tmp = check_tmpdir("durable");
	config_init(&cfg);
	cfg.chunker.min_size = 4096;
	cfg.chunker.avg_size = 16384;
	cfg.chunker.max_size = 65536;
	reg_caller_self(&me);
	if (asprintf(&store, "%s/store", tmp) < 0)
		abort();
	CHECK_EQ(reg_open(&cfg, store, &reg), 0, "open a new store");
	if (!reg)
		return check_done();
	test_push();
	CHECK(reg_resolve(reg, "d", &m) == 0 &&
	      reg_mkdir(reg, &me, m.ino, "draft", 0755, &v) == 0, "a draft");
	test_flush("stream.bin", false);
	test_flush("spool.bin", true);
	reg_close(reg);
	CHECK_EQ(reg_open(&cfg, store, &reg), 0, "the store reopens");
	CHECK_EQ(fsck(), 0, "fsck --full is clean");
	reg_close(reg);
	config_release(&cfg);
	check_rmtree(tmp);
	free(tmp);
	free(store);
	return check_done();
}
