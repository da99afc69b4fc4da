/* collide.c — collision handling with real collisions: linked against a
 * chunkid.c built with MREG_TEST_ID_BITS=8, so that chunk ids keep 8 bits
 * and different chunks share ids all the time. Built as
 * build/tests/test-collide. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"
#include "registry/registry.h"
#include "util.h"

static void report(UNUSED void *arg, const char *sev, const char *msg)
{
	printf("# fsck %s: %s\n", sev, msg);
}

/* 0 when model/version/name holds exactly the n bytes of want. */
static int reads_back(struct reg_registry *reg, const char *model,
		      const char *version, const char *name,
		      const uint8_t *want, size_t n)
{
	uint8_t got[512];
	int fd = memfd_create("cat", MFD_CLOEXEC), r;

	if (fd < 0)
		abort();
	r = reg_cat(reg, model, version, name, fd);
	if (r == 0)
		r = lseek(fd, 0, SEEK_END) == (off_t)n &&
		    pread(fd, got, n, 0) == (ssize_t)n &&
		    memcmp(got, want, n) == 0 ? 0 : -1;
	close(fd);
	return r;
}

/* Collisions of chunks of equal length: 300 files of 200 bytes, one
 * chunk each, over 256 ids. A length check cannot tell them apart, only
 * the byte comparison can: pushed one per version (a match found in the
 * index) and all in one version (a match earlier in the same push), every
 * file must read back exactly. */
#define NSAME 300
#define LSAME 200
static void same_length(struct reg_registry *reg, const struct reg_caller *me,
			const char *tmp)
{
	static uint8_t b[NSAME][LSAME];
	char *dir, *path, v[REG_NAME_MAX + 1], name[32];
	const char *paths[1];
	int i, bad_push = 0, wrong = 0, fd;
	size_t j;

	if (asprintf(&dir, "%s/same", tmp) < 0 || mkdir(dir, 0700) < 0)
		abort();
	srand(7);
	for (i = 0; i < NSAME; i++) {
		for (j = 0; j < LSAME; j++)
			b[i][j] = (uint8_t)rand();
		snprintf(name, sizeof(name), "s%03d", i);
		if (asprintf(&path, "%s/%s", dir, name) < 0)
			abort();
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, b[i], LSAME) != LSAME)
			abort();
		close(fd);
		paths[0] = path;
		if (reg_push(reg, me, "same", paths, 1, NULL, NULL, 0, NULL,
			     NULL, v) < 0)
			bad_push++;
		free(path);
	}
	CHECK_EQ(bad_push, 0, "%d files of %d bytes pushed, one per version",
		 NSAME, LSAME);
	for (i = 0; i < NSAME; i++) {
		snprintf(name, sizeof(name), "s%03d", i);
		snprintf(v, sizeof(v), "%d", i + 1);
		if (reads_back(reg, "same", v, name, b[i], LSAME) < 0)
			wrong++;
	}
	CHECK_EQ(wrong, 0, "every one reads back exactly (equal lengths, "
		 "8-bit ids)");
	paths[0] = dir;
	CHECK_EQ(reg_push(reg, me, "same1", paths, 1, NULL, NULL, 0, NULL,
			  NULL, v), 0, "the same %d files in one version", NSAME);
	for (i = wrong = 0; i < NSAME; i++) {
		snprintf(name, sizeof(name), "s%03d", i);
		if (reads_back(reg, "same1", "1", name, b[i], LSAME) < 0)
			wrong++;
	}
	CHECK_EQ(wrong, 0, "every one of them reads back exactly");
	free(dir);
}

int main(void)
{
	struct mreg_config cfg;
	struct reg_registry *reg;
	struct reg_caller me;
	struct reg_stats_sum { uint64_t logical, stored; } sum = { 0, 0 };
	char *tmp = check_tmpdir("collide"), *store, *src[3], *out, *cmd;
	char v[REG_NAME_MAX + 1];
	struct reg_store_stats st;
	int i, fd;
	FILE *f;
	size_t j;

	(void)sum;
	config_init(&cfg);
	cfg.chunker.min_size = 1024;
	cfg.chunker.avg_size = 4096;
	cfg.chunker.max_size = 16384;
	reg_caller_self(&me);
	if (asprintf(&store, "%s/store", tmp) < 0)
		abort();
	CHECK_EQ(reg_open(&cfg, store, &reg), 0, "open");
	/* three files of random bytes: ~600 chunks over 256 ids */
	for (i = 0; i < 3; i++) {
		if (asprintf(&src[i], "%s/f%d", tmp, i) < 0)
			abort();
		f = fopen(src[i], "w");
		srand(100 + i);
		for (j = 0; j < (800u << 10); j++)
			fputc(rand() & 0xff, f);
		fclose(f);
		CHECK_EQ(reg_push(reg, &me, "m", (const char *[]){ src[i] }, 1,
				  NULL, NULL, 0, NULL, NULL, v), 0,
			 "push file %d", i);
	}
	/* the same bytes again: stored once */
	CHECK_EQ(reg_store_stats(reg, &st), 0, "stats");
	{
		uint64_t before = st.live_bytes, packed = st.pack_bytes;

		CHECK_EQ(reg_push(reg, &me, "m", (const char *[]){ src[0] }, 1,
				  NULL, NULL, 0, NULL, NULL, v), 0,
			 "push file 0 again");
		CHECK_EQ(reg_store_stats(reg, &st), 0, "stats");
		CHECK(st.live_bytes == before, "identical bytes are stored once "
		      "(%llu vs %llu)", (unsigned long long)st.live_bytes,
		      (unsigned long long)before);
		CHECK(st.pack_bytes == packed, "and not one byte was written to "
		      "the packs for them (%llu vs %llu)",
		      (unsigned long long)st.pack_bytes,
		      (unsigned long long)packed);
		CHECK(st.live_bytes >= 3 * (800u << 10),
		      "colliding chunks were all kept (%llu bytes live)",
		      (unsigned long long)st.live_bytes);
	}
	for (i = 0; i < 3; i++) {
		char ver[8];

		snprintf(ver, sizeof(ver), "%d", i + 1);
		if (asprintf(&out, "%s/out", tmp) < 0)
			abort();
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		CHECK_EQ(reg_cat(reg, "m", ver, strrchr(src[i], '/') + 1, fd),
			 0, "cat version %s", ver);
		close(fd);
		if (asprintf(&cmd, "cmp -s %s %s", out, src[i]) < 0)
			abort();
		CHECK(system(cmd) == 0, "version %s reads back exactly", ver);
		free(cmd);
		free(out);
	}
	CHECK_EQ(reg_fsck(reg, REG_FSCK_FULL, report, NULL, NULL), 0,
		 "fsck --full is clean");
	same_length(reg, &me, tmp);
	CHECK_EQ(reg_fsck(reg, REG_FSCK_FULL, report, NULL, NULL), 0,
		 "fsck --full is clean");
	reg_close(reg);
	config_release(&cfg);
	for (i = 0; i < 3; i++)
		free(src[i]);
	free(store);
	check_rmtree(tmp);
	free(tmp);
	return check_done();
}
