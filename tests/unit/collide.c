/* collide.c — collision handling with real collisions: linked against a
 * chunkid.c built with MREG_TEST_ID_BITS=8, so that chunk ids keep 8 bits
 * and different chunks share ids all the time. Built as
 * build/tests/test-collide. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "registry.h"

static void report(void *arg, const char *sev, const char *msg)
{
	printf("# fsck %s: %s\n", sev, msg);
}

int main(void)
{
	struct mreg_config cfg;
	struct mreg_registry *reg;
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
	CHECK_EQ(registry_open(&cfg, store, &reg), 0, "open");
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
		uint64_t before = st.live_bytes;

		CHECK_EQ(reg_push(reg, &me, "m", (const char *[]){ src[0] }, 1,
				  NULL, NULL, 0, NULL, NULL, v), 0,
			 "push file 0 again");
		CHECK_EQ(reg_store_stats(reg, &st), 0, "stats");
		CHECK(st.live_bytes == before, "identical bytes are stored once "
		      "(%llu vs %llu)", (unsigned long long)st.live_bytes,
		      (unsigned long long)before);
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
	registry_close(reg);
	config_release(&cfg);
	for (i = 0; i < 3; i++)
		free(src[i]);
	free(store);
	check_rmtree(tmp);
	free(tmp);
	return check_done();
}
