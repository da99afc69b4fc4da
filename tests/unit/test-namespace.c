/* test-namespace.c — namespace integrity through the registry's API (issue
 * 10): symlinks that a rename would take out of their version, errno of
 * changes to sealed content, times, stage names, rollback and history,
 * what drafts and the .mreg files report, and what may be opened as a
 * store. White-box where a store written by an older mreg is needed (a
 * record changed in the index directly). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "reg-int.h"
#include "registry.h"

static char *tmp;
static struct mreg_config cfg;
static struct mreg_registry *reg;
static struct reg_caller me;

static uint64_t ino_of(const char *path)
{
	struct reg_attr a;

	return reg_resolve(reg, path, &a) == 0 ? a.ino : 0;
}

static int mkdir_in(const char *parent, const char *name)
{
	struct reg_attr a;

	return reg_mkdir(reg, &me, ino_of(parent), name, 0755, &a);
}

struct retarget {
	uint64_t ino;
	const char *target;
};

/* What an older mreg could leave behind: a link's target changed in the
 * index directly. */
static int do_retarget(struct idx_txn *t, void *arg)
{
	struct retarget *a = arg;
	struct inode_rec r;
	int e;

	if ((e = ino_get(t, a->ino, &r)) < 0)
		return e;
	snprintf(r.target_path, sizeof(r.target_path), "%s", a->target);
	return ino_put(t, &r);
}

struct findings {
	int errors;
	char last[1024];
};

static void on_finding(void *arg, const char *severity, const char *msg)
{
	struct findings *f = arg;

	if (strcmp(severity, "error") == 0) {
		f->errors++;
		snprintf(f->last, sizeof(f->last), "%s", msg);
	}
}

/* A symlink made deep inside a draft stays inside its version there; moved
 * (itself, or a directory holding it) to a shallower place it would
 * point outside: the rename is refused, sealing refuses such a tree, and
 * fsck calls it an error. */
static void test_link_escape(void)
{
	struct reg_attr a;
	struct retarget rt;
	struct findings fi = { 0 };
	uint64_t v, c;

	CHECK_EQ(reg_model_create(reg, &me, "esc"), 0, "a model");
	CHECK_EQ(mkdir_in("esc", "1"), 0, "a draft");
	CHECK(mkdir_in("esc/1", "a") == 0 && mkdir_in("esc/1/a", "b") == 0 &&
	      mkdir_in("esc/1/a/b", "c") == 0 && mkdir_in("esc/1/a/b", "d") == 0,
	      "a/b/c and a/b/d");
	v = ino_of("esc/1");
	c = ino_of("esc/1/a/b/c");
	CHECK_EQ(reg_symlink(reg, &me, c, "l", "../../../x", &a), 0,
		 "a/b/c/l -> ../../../x stays inside at that depth");
	CHECK_EQ(reg_symlink(reg, &me, c, "m", "../../../../x", &a), -EINVAL,
		 "one more .. leaves it: refused when made");
	CHECK_EQ(reg_rename(reg, &me, c, "l", v, "l", 0), -EINVAL,
		 "the link moved to the version's root: EINVAL");
	CHECK_EQ(reg_rename(reg, &me, c, "l", ino_of("esc/1/a"), "l", 0),
		 -EINVAL, "the link moved up one level: EINVAL");
	CHECK_EQ(reg_rename(reg, &me, ino_of("esc/1/a/b"), "c", v, "c", 0),
		 -EINVAL, "the directory holding it moved to the root: EINVAL");
	CHECK_EQ(reg_rename(reg, &me, ino_of("esc/1/a"), "b", v, "b", 0),
		 -EINVAL, "a directory further up moved to the root: EINVAL");
	CHECK(ino_of("esc/1/a/b/c/l") != 0, "and the link is where it was");
	CHECK_EQ(reg_rename(reg, &me, c, "l", ino_of("esc/1/a/b/d"), "l2", 0),
		 0, "a move to the same depth is fine");
	CHECK_EQ(reg_rename(reg, &me, ino_of("esc/1/a/b"), "d", c, "d", 0), 0,
		 "and one deeper");
	CHECK_EQ(reg_rename(reg, &me, ino_of("esc/1/a/b/c"), "d", v, "d", 0),
		 -EINVAL, "then back to the root: EINVAL");

	/* a store an older mreg wrote: the link points outside already */
	rt.ino = ino_of("esc/1/a/b/c/d/l2");
	rt.target = "../../../../../../../etc/hostname";
	CHECK_EQ(reg_txn(reg, do_retarget, &rt), 0, "(a link of an older "
		 "store, pointing outside)");
	CHECK_EQ(reg_fsck(reg, 0, on_finding, NULL, &fi), 1,
		 "fsck finds one error");
	CHECK(strstr(fi.last, "esc/1/a/b/c/d/l2") &&
	      strstr(fi.last, "outside"), "naming the link: %s", fi.last);
	CHECK_EQ(reg_seal(reg, &me, "esc", "1"), -EINVAL,
		 "sealing refuses the tree");
	CHECK_EQ(reg_promote(reg, &me, "esc", "1", "Production"), -EINVAL,
		 "so does promoting it");
	CHECK(reg_resolve(reg, "esc/1", &a) == 0 && !a.sealed,
	      "it is still a draft");
	rt.target = "../../x";
	reg_txn(reg, do_retarget, &rt);
	CHECK_EQ(reg_seal(reg, &me, "esc", "1"), 0, "fixed, it seals");
	CHECK_EQ(reg_fsck(reg, 0, NULL, NULL, NULL), 0, "and fsck is clean");
}

/* errno of a stage moved into a version; atime set in a draft is kept. */
static void test_errno_times(void)
{
	struct reg_setattr sa = { 0 };
	struct reg_attr a, st;
	struct reg_file *f;

	CHECK_EQ(reg_model_create(reg, &me, "tm"), 0, "a model");
	CHECK(mkdir_in("tm", "1") == 0 && mkdir_in("tm", "2") == 0,
	      "drafts 1 and 2");
	CHECK_EQ(reg_promote(reg, &me, "tm", "1", "Production"), 0,
		 "Production -> 1 (sealed by it)");
	CHECK_EQ(reg_resolve(reg, "tm/stages", &st), 0, "stages/");
	CHECK_EQ(reg_rename(reg, &me, st.ino, "Production", ino_of("tm/1"),
			    "Production", 0), -EROFS,
		 "a stage moved into a sealed version: EROFS (mv without -T)");
	CHECK_EQ(reg_rename(reg, &me, st.ino, "Production", ino_of("tm/2"),
			    "Production", 0), -EINVAL,
		 "into a draft: EINVAL");
	CHECK(ino_of("tm/stages/Production") != 0, "the stage stays");

	CHECK_EQ(reg_create(reg, &me, ino_of("tm/2"), "f", 0644, O_WRONLY, &a,
			    &f), 0, "a file in draft 2");
	CHECK_EQ(reg_write(f, "abc", 3, 0), 3, "written");
	CHECK_EQ(reg_flush(f, &me), 0, "and closed");
	reg_release(f);
	sa.valid = REG_SET_ATIME | REG_SET_MTIME;
	sa.atime.tv_sec = 1000000000;
	sa.atime.tv_nsec = 123456789;
	sa.mtime.tv_sec = 1600000000;
	sa.mtime.tv_nsec = 7;
	CHECK_EQ(reg_setattr(reg, &me, a.ino, &sa, NULL, &a), 0, "utimensat");
	CHECK(a.atime.tv_sec == 1000000000 && a.atime.tv_nsec == 123456789 &&
	      a.mtime.tv_sec == 1600000000 && a.mtime.tv_nsec == 7,
	      "the reply has both times (atime %lld.%09ld)",
	      (long long)a.atime.tv_sec, a.atime.tv_nsec);
	CHECK(reg_getattr(reg, a.ino, &a) == 0 &&
	      a.atime.tv_sec == 1000000000 && a.atime.tv_nsec == 123456789,
	      "stat shows the atime set (%lld.%09ld)",
	      (long long)a.atime.tv_sec, a.atime.tv_nsec);
	sa.valid = REG_SET_ATIME;
	sa.atime.tv_sec = 5;
	sa.atime.tv_nsec = 0;
	CHECK(reg_setattr(reg, &me, a.ino, &sa, NULL, &a) == 0 &&
	      a.atime.tv_sec == 5 && a.mtime.tv_sec == 1600000000,
	      "atime alone changes atime only");
	CHECK(reg_seal(reg, &me, "tm", "2") == 0 &&
	      reg_resolve(reg, "tm/2/f", &a) == 0 && a.atime.tv_sec == 5,
	      "sealed, the file keeps it");
}

int main(void)
{
	char *store;

	tmp = check_tmpdir("namespace");
	config_init(&cfg);
	reg_caller_self(&me);
	if (asprintf(&store, "%s/store", tmp) < 0)
		abort();
	CHECK_EQ(registry_open(&cfg, store, &reg), 0, "open a new store");
	if (!reg)
		return check_done();
	test_link_escape();
	test_errno_times();
	registry_close(reg);
	free(store);
	check_rmtree(tmp);
	return check_done();
}
