/* test-regserve.c — the registry's side of the serving cache: a sealed
 * file's identity (and whether a stage points at its version), drafts and
 * removed versions refused, the files under a version, the registry as a
 * source of verified bytes, promotions and rollbacks read back from the
 * audit trail (from now on), names for messages, and the cache's lines in
 * .mreg/metrics. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"
#include "log.h"
#include "registry/registry.h"
#include "registry/serve.h"
#include "serve/serve.h"

static char *tmp;
static struct mreg_config cfg;
static struct reg_registry *reg;
static struct reg_caller me;

static char *make_file(const char *name, size_t size, unsigned seed,
		       uint8_t **ret_data)
{
	uint8_t *d = malloc(size);
	char *p;
	FILE *f;
	size_t i;

	if (!d || asprintf(&p, "%s/%s", tmp, name) < 0)
		abort();
	srand(seed);
	for (i = 0; i < size; i++)
		d[i] = (uint8_t)(rand() & 0xff);
	f = fopen(p, "w");
	if (!f || fwrite(d, 1, size, f) != size)
		abort();
	fclose(f);
	*ret_data = d;
	return p;
}

static int push(const char *model, const char *const *paths, size_t n,
		char *ret)
{
	return reg_push(reg, &me, model, paths, n, NULL, NULL, 0, NULL, NULL,
			ret);
}

struct keys {
	struct serve_key v[8];
	int n;
};

static int collect(void *arg, const struct serve_key *k)
{
	struct keys *ks = arg;

	if (ks->n < 8)
		ks->v[ks->n++] = *k;
	return 0;
}

struct promos {
	uint64_t v[8];
	int n;
};

static int on_promo(void *arg, uint64_t version)
{
	struct promos *p = arg;

	if (p->n < 8)
		p->v[p->n++] = version;
	return 0;
}

static void test_keys_and_files(void)
{
	static const size_t sz[2] = { 300000, 5000 };
	char ver[REG_NAME_MAX + 1], name[512];
	struct reg_attr fa, va, da;
	struct serve_source src;
	struct serve_key k;
	struct keys ks = { .n = 0 };
	uint8_t *data[2], *buf;
	const char *paths[2];
	void *h = NULL;
	bool staged = true;
	ssize_t n;
	char *p0, *p1;
	int r;

	p0 = make_file("a.bin", sz[0], 1, &data[0]);
	p1 = make_file("b.bin", sz[1], 2, &data[1]);
	paths[0] = p0;
	paths[1] = p1;
	CHECK_EQ(push("m", paths, 2, ver), 0, "a version of two files");
	CHECK_EQ(reg_resolve(reg, "m/1/a.bin", &fa), 0, "its first file");
	CHECK_EQ(reg_resolve(reg, "m/1", &va), 0, "and the version");
	r = reg_serve_key(reg, fa.ino, &k, &staged);
	CHECK_EQ(r, 0, "a sealed file has a serving key");
	CHECK(k.ino == fa.ino && k.version == va.ino && k.size == sz[0],
	      "its inode, version and size");
	{
		struct mreg_id want;

		chunkid_of(data[0], sz[0], &want);
		CHECK(chunkid_eq(&k.digest, &want), "and its digest (XXH3-128 "
		      "of its bytes)");
	}
	CHECK(!staged, "no stage points at its version");
	CHECK_EQ(reg_promote(reg, &me, "m", "1", "Production"), 0, "promoted");
	CHECK_EQ(reg_serve_key(reg, fa.ino, &k, &staged), 0, "asked again");
	CHECK(staged, "now a stage points at its version");
	CHECK_EQ(reg_serve_key(reg, va.ino, &k, NULL), -EINVAL,
		 "a version has no serving key");

	CHECK_EQ(reg_serve_files(reg, va.ino, collect, &ks), 0,
		 "the files of a version");
	CHECK(ks.n == 2 && ks.v[0].size + ks.v[1].size == sz[0] + sz[1],
	      "both of them");
	ks.n = 0;
	CHECK_EQ(reg_serve_files(reg, fa.ino, collect, &ks), 0, "of a file");
	CHECK(ks.n == 1 && ks.v[0].ino == fa.ino, "itself");

	reg_serve_source(reg, &src);
	buf = malloc(sz[0]);
	CHECK_EQ(src.open(src.arg, &k, &h), 0, "the registry opens it as a "
		 "source");
	n = h ? src.read(h, buf, sz[0], 0) : -1;
	CHECK(n == (ssize_t)sz[0] && !memcmp(buf, data[0], sz[0]),
	      "and reads its bytes");
	if (h)
		src.close(h);
	free(buf);

	reg_serve_name(reg, fa.ino, name, sizeof(name));
	CHECK(!strcmp(name, "m/1/a.bin"), "its name for messages is "
	      "model/version/path (%s)", name);

	/* a draft */
	CHECK_EQ(reg_mkdir(reg, &me, va.model, "2", 0755, &da), 0, "a draft");
	CHECK_EQ(reg_serve_files(reg, da.ino, collect, &ks), -EINVAL,
		 "a draft has nothing to serve");

	/* a removed version */
	{
		char v2[REG_NAME_MAX + 1];
		struct reg_attr f2;

		CHECK_EQ(push("m", paths + 1, 1, v2), 0, "another version");
		snprintf(name, sizeof(name), "m/%s/b.bin", v2);
		CHECK_EQ(reg_resolve(reg, name, &f2), 0, "its file");
		CHECK_EQ(reg_version_remove(reg, &me, "m", v2), 0,
			 "the version removed");
		CHECK_EQ(reg_serve_key(reg, f2.ino, &k, NULL), -ENOENT,
			 "the file of a removed version is gone to the cache");
	}
	free(data[0]);
	free(data[1]);
	free(p0);
	free(p1);
}

static void test_promotions(void)
{
	uint64_t pos = REG_SERVE_START;
	struct promos pr = { .n = 0 };
	struct reg_attr v1, v4;
	char ver[REG_NAME_MAX + 1];
	const char *paths[1];
	uint8_t *d;
	char *p;

	CHECK_EQ(reg_serve_promotions(reg, &pos, on_promo, &pr), 0,
		 "start reading promotions");
	CHECK(pos != REG_SERVE_START && pr.n == 0,
	      "from now on: earlier ones are not reported");
	p = make_file("c.bin", 1000, 3, &d);
	paths[0] = p;
	CHECK_EQ(push("m", paths, 1, ver), 0, "version %s", ver);
	CHECK_EQ(reg_resolve(reg, "m/1", &v1), 0, "version 1");
	{
		char path[REG_NAME_MAX + 8];

		snprintf(path, sizeof(path), "m/%s", ver);
		CHECK_EQ(reg_resolve(reg, path, &v4), 0, "the new version");
	}
	CHECK_EQ(reg_promote(reg, &me, "m", ver, "Production"), 0,
		 "promoted");
	CHECK_EQ(reg_serve_promotions(reg, &pos, on_promo, &pr), 0, "read");
	CHECK(pr.n == 1 && pr.v[0] == v4.ino, "the promotion is reported "
	      "with its version's inode");
	pr.n = 0;
	CHECK_EQ(reg_serve_promotions(reg, &pos, on_promo, &pr), 0, "again");
	CHECK_EQ(pr.n, 0, "once");
	CHECK_EQ(reg_rollback(reg, &me, "m", "Production", ver), 0,
		 "rolled back");
	CHECK_EQ(reg_serve_promotions(reg, &pos, on_promo, &pr), 0, "read");
	CHECK(pr.n == 1 && pr.v[0] == v1.ino, "a rollback is reported too");
	free(d);
	free(p);
}

static void test_metrics(void)
{
	struct serve_params sp = { 0 };
	struct serve_cache *c = NULL;
	size_t len;
	char *text;

	CHECK_EQ(reg_metrics_text(reg, &text, &len), 0, "metrics");
	CHECK(!strstr(text, "mreg_serve_"), "without a cache, no serving "
	      "lines");
	free(text);
	CHECK_EQ(serve_open(&sp, &c), 0, "a cache");
	reg_set_serve(reg, c);
	CHECK_EQ(reg_metrics_text(reg, &text, &len), 0, "metrics");
	CHECK(strstr(text, "mreg_serve_opens_total{mode=\"passthrough\"} 0") &&
	      strstr(text, "mreg_serve_passthrough{state=\"disabled\"} 0"),
	      "with it, its lines");
	free(text);
	reg_set_serve(reg, NULL);
	serve_close(c);
}

int main(void)
{
	char *store;

	log_set_level(LOG_LVL_ERROR);
	tmp = check_tmpdir("regserve");
	config_init(&cfg);
	if (asprintf(&store, "%s/store", tmp) < 0)
		abort();
	reg_caller_self(&me);
	if (reg_open(&cfg, store, &reg) < 0) {
		printf("not ok 1 - reg_open\n");
		return 1;
	}
	test_keys_and_files();
	test_promotions();
	test_metrics();
	reg_close(reg);
	config_release(&cfg);
	check_rmtree(tmp);
	free(store);
	free(tmp);
	return check_done();
}
