/* collide.c — collision handling with real collisions: linked against a
 * chunkid.c built with MREG_TEST_ID_BITS=8, so that chunk ids keep 8 bits
 * and different chunks share ids all the time. Built as
 * build/tests/test-collide. The same against the S3 store on radosgw
 * (tests/services/rgw.sh; skipped where it cannot run), where an id match
 * is decided by the strong digest of the chunk's record. */
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
#include "rgw.h"
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

/* Files of one chunk each, of equal length. */
#define NSAME 300
#define LSAME 200

/* Writes NSAME files of LSAME bytes (seed: their bytes, kept in b) into
 * DIR/NAME, made here; returns that directory. */
static char *write_set(const char *dir, const char *name, unsigned seed,
		       uint8_t b[NSAME][LSAME])
{
	char *d, *path;
	int i, fd;
	size_t j;

	if (asprintf(&d, "%s/%s", dir, name) < 0 || mkdir(d, 0700) < 0)
		abort();
	srand(seed);
	for (i = 0; i < NSAME; i++) {
		for (j = 0; j < LSAME; j++)
			b[i][j] = (uint8_t)rand();
		if (asprintf(&path, "%s/s%03d", d, i) < 0)
			abort();
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, b[i], LSAME) != LSAME)
			abort();
		close(fd);
		free(path);
	}
	return d;
}

/* Files of model/version s000.. that do not read back as b: 0 when all
 * do. */
static int wrong_in(struct reg_registry *reg, const char *model,
		    const char *version, uint8_t b[NSAME][LSAME])
{
	char name[32];
	int i, wrong = 0;

	for (i = 0; i < NSAME; i++) {
		snprintf(name, sizeof(name), "s%03d", i);
		if (reads_back(reg, model, version, name, b[i], LSAME) < 0)
			wrong++;
	}
	return wrong;
}

/* Collisions of chunks of equal length: 300 files of 200 bytes, one
 * chunk each, over 256 ids. A length check cannot tell them apart, only
 * the byte comparison (on S3, the strong digest) can: pushed one per
 * version (a match found in the index) and all in one version (a match
 * earlier in the same push), every file must read back exactly. */
static void same_length(struct reg_registry *reg, const struct reg_caller *me,
			const char *where)
{
	static uint8_t b[NSAME][LSAME];
	char *dir, *path, v[REG_NAME_MAX + 1], name[32];
	const char *paths[1];
	int i, bad_push = 0, wrong = 0;

	dir = write_set(where, "same", 7, b);
	for (i = 0; i < NSAME; i++) {
		snprintf(name, sizeof(name), "s%03d", i);
		if (asprintf(&path, "%s/%s", dir, name) < 0)
			abort();
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
	CHECK_EQ(wrong_in(reg, "same1", "1", b), 0,
		 "every one of them reads back exactly");
	free(dir);
}


/* Opens a registry on the S3 store of radosgw (the env rgw.h loaded),
 * under key prefix, with its cache at cache, through the fault proxy when
 * proxied: one check, named what. NULL when it fails. */
static struct reg_registry *host_open(struct mreg_config *cfg,
				      const char *store, const char *prefix,
				      const char *cache, bool proxied,
				      const char *what)
{
	char *text, ep[64], err[256];
	struct reg_registry *reg = NULL;

	config_init(cfg);
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%u",
		 proxied ? proxy_port : rgw_port);
	if (asprintf(&text, "[store]\nbackend = s3\n[chunker]\n"
		     "min_size = 1024\navg_size = 4096\nmax_size = 16384\n"
		     "[s3]\nendpoint = %s\nbucket = %s\nregion = %s\n"
		     "path_style = yes\nkey_prefix = %s\n"
		     "[cache]\npath = %s\nsize = 64M\n", ep,
		     getenv("MREG_S3_BUCKET"), getenv("MREG_S3_REGION"),
		     prefix, cache) < 0)
		abort();
	if (config_parse(cfg, "collide-s3.conf", text, strlen(text), err,
			 sizeof(err)) < 0) {
		printf("# %s\n", err);
		abort();
	}
	free(text);
	if (reg_open(cfg, store, &reg) < 0)
		reg = NULL;
	CHECK(reg != NULL, "%s", what);
	if (!reg)
		config_release(cfg);
	return reg;
}

static void host_close(struct reg_registry *reg, struct mreg_config *cfg)
{
	reg_close(reg);
	config_release(cfg);
}

/* Pushes the files of dir as a new version of model: 0 or -errno. */
static int push_dir(struct reg_registry *reg, const struct reg_caller *me,
		    const char *model, const char *dir)
{
	char v[REG_NAME_MAX + 1];

	return reg_push(reg, me, model, (const char *[]){ dir }, 1, NULL,
			NULL, 0, NULL, NULL, v);
}

/* Dedup in a store shared by hosts (issue 13): the chunks in S3, each
 * host with its own cache. With 8-bit ids every chunk collides with
 * others, as crafted bytes would: a version must never read another's
 * bytes, and deciding an id match must not need the stored chunk (a new
 * host's cache is empty: that would be a ranged GET per chunk). */
static void on_s3(const struct reg_caller *me)
{
	static uint8_t victim[NSAME][LSAME], crafted[NSAME][LSAME];
	struct mreg_config cfg;
	struct reg_registry *reg;
	struct reg_store_stats st;
	char *work, *store, *ca, *cb, *prefix, *vdir, *cdir, *get_packs;
	char why[256];
	uint64_t before;
	int i;

	if (!rgw_setup("collide-s3", why, sizeof(why))) {
		check_n++;
		printf("ok %d - collisions in an S3 store # SKIP %s\n",
		       check_n, why);
		return;
	}
	proxy_up();
	work = check_tmpdir("collide-s3w");
	if (asprintf(&store, "%s/store", work) < 0 ||
	    asprintf(&ca, "%s/cache-a", work) < 0 ||
	    asprintf(&cb, "%s/cache-b", work) < 0 ||
	    asprintf(&prefix, "t-collide-%ld/", (long)getpid()) < 0 ||
	    asprintf(&get_packs, "status 403 100000 on=/%s/%spacks/",
		     getenv("MREG_S3_BUCKET"), prefix) < 0)
		abort();
	/* host A: the byte-exact checks of the local store, on S3 */
	reg = host_open(&cfg, store, prefix, ca, false,
			"host A opens a registry on S3 (8-bit ids)");
	if (!reg)
		goto out;
	same_length(reg, me, work);
	vdir = write_set(work, "victim", 11, victim);
	CHECK_EQ(push_dir(reg, me, "victim", vdir), 0,
		 "host A pushes %d chunks over 256 ids", NSAME);
	host_close(reg, &cfg);

	/* host B, its cache empty, every GET of a chunk refused: an id match
	 * is decided without reading the stored chunk back */
	reg = host_open(&cfg, store, prefix, cb, true,
			"host B, an empty cache, opens the same store");
	if (!reg)
		goto out;
	CHECK_EQ(reg_store_stats(reg, &st), 0, "stats");
	before = st.pack_bytes;
	CHECK(proxy("%s", get_packs) == 0, "the proxy refuses chunk GETs");
	CHECK_EQ(push_dir(reg, me, "again", vdir), 0,
		 "host B pushes the same bytes: no chunk read back to compare");
	CHECK(proxy("clear") == 0, "the proxy passes everything again");
	CHECK_EQ(reg_store_stats(reg, &st), 0, "stats");
	CHECK(st.pack_bytes == before, "... and stores none of them again "
	      "(%llu bytes of objects, %llu before)",
	      (unsigned long long)st.pack_bytes,
	      (unsigned long long)before);

	/* crafted: other bytes on the same ids, pushed by host B */
	cdir = write_set(work, "crafted", 12, crafted);
	for (i = 0; i < NSAME && memcmp(victim[i], crafted[i], LSAME); i++)
		;
	CHECK(i == NSAME, "the crafted chunks differ from the victim's");
	CHECK_EQ(push_dir(reg, me, "crafted", cdir), 0,
		 "host B pushes %d chunks colliding with them", NSAME);
	CHECK_EQ(reg_store_stats(reg, &st), 0, "stats");
	CHECK(st.pack_bytes >= before + NSAME * LSAME,
	      "the colliding chunks are stored apart (%llu bytes more)",
	      (unsigned long long)(st.pack_bytes - before));
	CHECK_EQ(wrong_in(reg, "victim", "1", victim), 0,
		 "every victim file reads its own bytes on host B");
	CHECK_EQ(wrong_in(reg, "again", "1", victim), 0,
		 "so does every file pushed again");
	CHECK_EQ(wrong_in(reg, "crafted", "1", crafted), 0,
		 "and every crafted file its own");
	CHECK_EQ(reg_fsck(reg, REG_FSCK_FULL, report, NULL, NULL), 0,
		 "fsck --full is clean");
	host_close(reg, &cfg);

	/* back on host A, whose cache holds the victim's chunks */
	reg = host_open(&cfg, store, prefix, ca, false,
			"host A opens the store again");
	if (!reg)
		goto out;
	CHECK(wrong_in(reg, "victim", "1", victim) == 0 &&
	      wrong_in(reg, "crafted", "1", crafted) == 0,
	      "host A reads the victim's and the crafted bytes apart");
	host_close(reg, &cfg);
	free(vdir);
	free(cdir);
out:
	check_rmtree(work);
	free(work);
	free(store);
	free(ca);
	free(cb);
	free(prefix);
	free(get_packs);
}

int main(void)
{
	struct mreg_config cfg;
	struct reg_registry *reg;
	struct reg_caller me;
	struct reg_stats_sum { uint64_t logical, stored; } sum = { 0, 0 };
	char *top_tmp = check_tmpdir("collide"), *store, *src[3], *out, *cmd;
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
	if (asprintf(&store, "%s/store", top_tmp) < 0)
		abort();
	CHECK_EQ(reg_open(&cfg, store, &reg), 0, "open");
	/* three files of random bytes: ~600 chunks over 256 ids */
	for (i = 0; i < 3; i++) {
		if (asprintf(&src[i], "%s/f%d", top_tmp, i) < 0)
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
		if (asprintf(&out, "%s/out", top_tmp) < 0)
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
	same_length(reg, &me, top_tmp);
	CHECK_EQ(reg_fsck(reg, REG_FSCK_FULL, report, NULL, NULL), 0,
		 "fsck --full is clean");
	reg_close(reg);
	config_release(&cfg);
	on_s3(&me);
	for (i = 0; i < 3; i++)
		free(src[i]);
	free(store);
	check_rmtree(top_tmp);
	free(top_tmp);
	return check_done();
}
