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
#include "config/config.h"
#include "registry/internal.h"
#include "registry/registry.h"
#include "util.h"

static char *tmp;
static struct mreg_config cfg;
static struct reg_registry *reg;
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

	if ((e = reg_inode_get_txn(t, a->ino, &r)) < 0)
		return e;
	snprintf(r.target_path, sizeof(r.target_path), "%s", a->target);
	return reg_inode_put_txn(t, &r);
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
	CHECK_EQ(reg_change(reg, do_retarget, &rt), 0, "(a link of an older "
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
	reg_change(reg, do_retarget, &rt);
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

	CHECK_EQ(reg_file_create(reg, &me, ino_of("tm/2"), "f", 0644, O_WRONLY,
				 &a, &f),
		 0, "a file in draft 2");
	CHECK_EQ(reg_file_write(f, "abc", 3, 0), 3, "written");
	CHECK_EQ(reg_file_flush(f, &me), 0, "and closed");
	reg_file_release(f);
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

struct hist {
	char line[64][160];
	int n;
};

static int hist_fn(void *arg, const struct reg_history *h)
{
	struct hist *a = arg;

	if (a->n < 64)
		snprintf(a->line[a->n++], sizeof(a->line[0]), "%s %s %s>%s",
			 h->action, h->stage, h->from, h->to);
	return 0;
}

/* "action stage from>to" of every change of model, joined with ", ". */
static const char *history_of(const char *model, const char *stage)
{
	static char buf[4096];
	struct hist h = { .n = 0 };
	int i;

	buf[0] = '\0';
	if (reg_history(reg, model, stage, hist_fn, &h) < 0)
		return "(error)";
	for (i = 0; i < h.n; i++)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s",
			 i ? ", " : "", h.line[i]);
	return buf;
}

static int policy_fn(void *arg, const char *stage, const char *key,
		     const char *value)
{
	char *buf = arg;
	size_t n = strlen(buf);

	(void)key;
	(void)value;
	if (stage)
		snprintf(buf + n, 256 - n, "%s ", stage);
	return 0;
}

/* The stage of each stored policy setting, each followed by a space. */
static const char *policy_stages(void)
{
	static char buf[256];

	buf[0] = '\0';
	if (reg_policy_list(reg, policy_fn, buf) < 0)
		return "(error)";
	return buf;
}

/* production beside Production: refused by every route, and a policy
 * holds for every spelling of its stage's name. */
static void test_stage_case(void)
{
	struct reg_attr a;
	uint64_t st;

	CHECK_EQ(reg_model_create(reg, &me, "iris"), 0, "a model");
	CHECK(mkdir_in("iris", "1") == 0 && mkdir_in("iris", "2") == 0,
	      "two drafts");
	CHECK_EQ(reg_promote(reg, &me, "iris", "1", "Production"), 0,
		 "Production -> 1");
	CHECK_EQ(reg_promote(reg, &me, "iris", "2", "production"), -EEXIST,
		 "mreg promote iris 2 production: EEXIST");
	st = ino_of("iris/stages");
	CHECK_EQ(reg_symlink(reg, &me, st, "PRODUCTION", "../2", &a), -EEXIST,
		 "ln -s ../2 stages/PRODUCTION: EEXIST");
	CHECK_EQ(reg_symlink(reg, &me, st, "Staging", "../2", &a), 0,
		 "ln -s ../2 stages/Staging");
	CHECK_EQ(reg_rename(reg, &me, st, "Staging", st, "production", 0),
		 -EEXIST, "mv -T stages/Staging stages/production: EEXIST");
	CHECK(ino_of("iris/stages/production") == 0 &&
	      ino_of("iris/stages/Staging") != 0, "nothing changed");
	CHECK_EQ(reg_promote(reg, &me, "iris", "2", "Production"), 0,
		 "Production itself moves on");

	/* [stage Production] protect = true, in a model without one */
	CHECK_EQ(reg_model_create(reg, &me, "iris2"), 0, "another model");
	CHECK_EQ(mkdir_in("iris2", "1"), 0, "a draft");
	CHECK_EQ(reg_promote(reg, &me, "iris2", "1", "production"), 0,
		 "a stage 'production' where no 'Production' is");
	CHECK_EQ(reg_stage_remove(reg, &me, "iris2", "production"), -EACCES,
		 "Production's policy (protect) holds for it");

	/* the stored policy of a stage is one, whatever spelling changes it */
	CHECK_EQ(reg_policy_set(reg, &me, "PRODUCTION", &(struct reg_kv){
		 "require_stage", "Staging" }, 1), 1,
		 "mreg policy set PRODUCTION require_stage=Staging");
	CHECK(!strcmp(policy_stages(), "Production Production "),
	      "stored as Production's: %s", policy_stages());
	CHECK_EQ(mkdir_in("iris2", "2"), 0, "another draft");
	CHECK_EQ(reg_promote(reg, &me, "iris2", "2", "production"), -EACCES,
		 "the gate holds for 'production'");
	CHECK_EQ(reg_policy_unset(reg, &me, "production",
				  (const char *const[]){ "require_stage" }, 1),
		 1, "mreg policy unset production require_stage");
	CHECK(!strcmp(policy_stages(), "Production "),
	      "Production's protect is left: %s", policy_stages());
	CHECK_EQ(reg_promote(reg, &me, "iris2", "2", "production"), 0,
		 "and 'production' moves on");
}

/* Rollback walks back through the stage's history; any route that
 * points the stage back is a rollback; temporary names make no history. */
static void test_rollback(void)
{
	char v[REG_NAME_MAX + 1] = "";
	struct reg_attr a;
	uint64_t st;

	CHECK_EQ(reg_model_create(reg, &me, "rb"), 0, "a model");
	CHECK(mkdir_in("rb", "1") == 0 && mkdir_in("rb", "2") == 0 &&
	      mkdir_in("rb", "3") == 0 && mkdir_in("rb", "4") == 0,
	      "four drafts");
	CHECK(reg_promote(reg, &me, "rb", "1", "Production") == 0 &&
	      reg_promote(reg, &me, "rb", "2", "Production") == 0 &&
	      reg_promote(reg, &me, "rb", "3", "Production") == 0,
	      "Production: 1 -> 2 -> 3");
	CHECK(reg_rollback(reg, &me, "rb", "Production", v) == 0 &&
	      !strcmp(v, "2"), "a rollback gives 2 (%s)", v);
	CHECK(reg_rollback(reg, &me, "rb", "Production", v) == 0 &&
	      !strcmp(v, "1"), "the next one gives 1 (%s)", v);
	CHECK_EQ(reg_rollback(reg, &me, "rb", "Production", v), -ENOENT,
		 "and then there is nothing earlier");
	CHECK(!strcmp(history_of("rb", "Production"),
		      "promote Production >1, promote Production 1>2, "
		      "promote Production 2>3, rollback Production 3>2, "
		      "rollback Production 2>1"),
	      "history: %s", history_of("rb", "Production"));
	CHECK(reg_promote(reg, &me, "rb", "4", "Production") == 0 &&
	      reg_rollback(reg, &me, "rb", "Production", v) == 0 &&
	      !strcmp(v, "1"), "promoted to 4 and rolled back: 1 (%s)", v);

	/* other routes: a promotion back to where the latest promotion in
	   effect came from is a rollback */
	CHECK(reg_promote(reg, &me, "rb", "2", "Staging") == 0 &&
	      reg_promote(reg, &me, "rb", "3", "Staging") == 0 &&
	      reg_promote(reg, &me, "rb", "4", "Staging") == 0,
	      "Staging: 2 -> 3 -> 4");
	st = ino_of("rb/stages");
	/* ln -sfn ../3 stages/Staging: a temporary name renamed over it */
	CHECK(reg_symlink(reg, &me, st, "CuA9zQ7x", "../3", &a) == 0 &&
	      reg_rename(reg, &me, st, "CuA9zQ7x", st, "Staging", 0) == 0,
	      "ln -sfn ../3 stages/Staging");
	/* mreg promote through a mount: its own temporary name */
	CHECK(reg_symlink(reg, &me, st, "mreg-tmp.77.0badf00d", "../2", &a)
	      == 0 && reg_rename(reg, &me, st, "mreg-tmp.77.0badf00d", st,
				 "Staging", 0) == 0,
	      "mreg's symlink-and-rename to 2");
	CHECK(!strcmp(history_of("rb", "Staging"),
		      "promote Staging >2, promote Staging 2>3, "
		      "promote Staging 3>4, rollback Staging 4>3, "
		      "rollback Staging 3>2"),
	      "each is one record, a rollback: %s", history_of("rb", "Staging"));
	CHECK(!strstr(history_of("rb", NULL), "Cu") &&
	      !strstr(history_of("rb", NULL), "mreg-tmp"),
	      "no temporary name in the model's history");
	CHECK(reg_promote(reg, &me, "rb", "3", "Staging") == 0 &&
	      strstr(history_of("rb", "Staging"), "promote Staging 2>3, "
		     "promote Staging 3>4, rollback Staging 4>3, rollback "
		     "Staging 3>2, promote Staging 2>3"),
	      "forward again is a promotion: %s", history_of("rb", "Staging"));
	CHECK(reg_stage_temporary("CuA9zQ7x") &&
	      reg_stage_temporary("mreg-tmp.1.2") &&
	      reg_stage_temporary("Customer") && !reg_stage_temporary("Cu") &&
	      !reg_stage_temporary("CuA9zQ7") &&
	      !reg_stage_temporary("Cu-9zQ7x") &&
	      !reg_stage_temporary("Production"), "which names are temporary");
}

/* Only a store, or with creation a missing path or an empty directory, is
 * opened; anything else is refused and left as it was. Run with no other
 * registry open (one LMDB environment per process). */
static void test_store_check(void)
{
	struct reg_registry *r2 = NULL;
	struct stat st;
	char *p, *txt;
	FILE *f;

	if (asprintf(&p, "%s/notes/index", tmp) < 0 ||
	    asprintf(&txt, "%s/notes/a.txt", tmp) < 0)
		abort();
	p[strlen(p) - 6] = '\0';
	mkdir(p, 0755);
	f = fopen(txt, "w");
	fclose(f);
	free(txt);
	CHECK_EQ(reg_open(&cfg, p, &r2), -ENOTEMPTY,
		 "a directory holding other things: -ENOTEMPTY");
	CHECK_EQ(reg_open_flags(&cfg, p, REG_OPEN_EXISTING, &r2),
		 -ENOTEMPTY, "also when not asked to create");
	CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0755,
	      "its mode is left as it was (%o)", st.st_mode & 0777);
	p[strlen(p)] = '/';
	CHECK(stat(p, &st) < 0, "and nothing was made in it");
	free(p);
	if (asprintf(&p, "%s/missing/x", tmp) < 0)
		abort();
	CHECK_EQ(reg_open_flags(&cfg, p, REG_OPEN_EXISTING, &r2),
		 -ENOENT, "a missing path, not to be created: -ENOENT");
	CHECK(stat(p, &st) < 0, "and it is not made");
	free(p);
	if (asprintf(&p, "%s/empty", tmp) < 0)
		abort();
	mkdir(p, 0755);
	CHECK_EQ(reg_open_flags(&cfg, p, REG_OPEN_EXISTING, &r2),
		 -ENOENT, "an empty directory is no store");
	CHECK_EQ(reg_open(&cfg, p, &r2), 0, "but one can be made there");
	reg_close(r2);
	r2 = NULL;
	CHECK_EQ(reg_open_flags(&cfg, p, REG_OPEN_EXISTING, &r2), 0,
		 "and then it opens");
	reg_close(r2);
	free(p);
}

static int audit_len(void *arg, UNUSED uint64_t seq, UNUSED const char *json,
		     size_t len)
{
	*(uint64_t *)arg += len + 1;
	return 0;
}

static int size_of(void *arg, const struct reg_version_info *v)
{
	*(struct reg_version_info *)arg = *v;
	return 0;
}

/* A draft's size and files; the sizes of the .mreg files. */
static void test_sizes(void)
{
	struct reg_version_info vi = { 0 };
	struct reg_attr a;
	struct reg_file *f;
	uint64_t total = 0;
	char buf[32], *text = NULL;
	size_t len;
	ssize_t n;
	int tries;

	CHECK_EQ(reg_model_create(reg, &me, "sz"), 0, "a model");
	CHECK(mkdir_in("sz", "1") == 0 && mkdir_in("sz/1", "d") == 0,
	      "a draft with a directory");
	CHECK(reg_file_create(reg, &me, ino_of("sz/1"), "a", 0644, O_WRONLY,
			      &a, &f) == 0 &&
	      reg_file_write(f, "0123456789", 10, 0) == 10 &&
	      reg_file_flush(f, &me) == 0, "a file of 10 bytes");
	reg_file_release(f);
	CHECK(reg_file_create(reg, &me, ino_of("sz/1/d"), "b", 0644, O_WRONLY,
			      &a, &f) == 0 &&
	      reg_file_write(f, "abc", 3, 0) == 3 &&
	      reg_file_flush(f, &me) == 0, "and one of 3 in the directory");
	reg_file_release(f);
	CHECK(reg_version_info(reg, "sz", "1", size_of, &vi) == 0 &&
	      vi.size == 13 && vi.nfiles == 2, "the draft has 13 bytes in 2 "
	      "files (%llu, %llu)", (unsigned long long)vi.size,
	      (unsigned long long)vi.nfiles);
	n = reg_getxattr(reg, ino_of("sz/1"), "user.mreg.size", buf,
			 sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	CHECK(n == 2 && !strcmp(buf, "13"), "user.mreg.size of the draft: %s",
	      buf);
	CHECK_EQ(reg_audit(reg, 0, audit_len, &total), 0, "read the trail");
	CHECK(reg_getattr(reg, REG_AUDITLOG_INO, &a) == 0 && a.size == total,
	      "audit.log's size is the trail's (%llu, %llu)",
	      (unsigned long long)a.size, (unsigned long long)total);
	/* The store's figures may move between two renderings while the
	 * pack writer flushes in the background: a getattr between two
	 * renderings of one length must give that length. */
	for (tries = 0; tries < 20; tries++) {
		size_t len2 = 0;
		char *text2 = NULL;

		free(text);
		text = NULL;
		if (reg_metrics_text(reg, &text, &len) < 0 ||
		    reg_getattr(reg, REG_METRICS_INO, &a) < 0 ||
		    reg_metrics_text(reg, &text2, &len2) < 0) {
			free(text2);
			break;
		}
		free(text2);
		if (len == len2)
			break;
		usleep(50 * 1000);
	}
	CHECK(text && tries < 20 && a.size == len,
	      "metrics' size is its text's (%llu, %zu)",
	      (unsigned long long)a.size, len);
	CHECK(strstr(text, "# HELP mreg_model_versions ") &&
	      strstr(text, "# TYPE mreg_model_versions gauge\n"
			   "mreg_model_versions{model=\""),
	      "families come with HELP and TYPE, then their samples");
	free(text);
}

/* The on_promote hook ran once per promotion, never for a temporary
 * name (its output: "MODEL STAGE VERSION PREVIOUS" per line). */
static void check_hooks(void)
{
	char *out, line[256];
	int staging = 0, temporary = 0;
	FILE *f;

	if (asprintf(&out, "%s/hook.out", tmp) < 0)
		abort();
	f = fopen(out, "r");
	CHECK(f != NULL, "the on_promote hook ran");
	while (f && fgets(line, sizeof(line), f)) {
		staging += strncmp(line, "rb Staging ", 11) == 0;
		temporary += strstr(line, " Cu") || strstr(line, "mreg-tmp");
	}
	if (f)
		fclose(f);
	CHECK_EQ(temporary, 0, "never for a temporary stage name");
	CHECK_EQ(staging, 6, "once for each change of Staging");
	free(out);
}

int main(void)
{
	char *store, *conf, *hook, err[256];
	FILE *f;

	tmp = check_tmpdir("namespace");
	config_init(&cfg);
	if (asprintf(&conf, "%s/mreg.conf", tmp) < 0 ||
	    asprintf(&hook, "%s/hook.sh", tmp) < 0 ||
	    asprintf(&store, "%s/store", tmp) < 0)
		abort();
	f = fopen(hook, "w");
	fprintf(f, "#!/bin/sh\necho \"$MREG_MODEL $MREG_STAGE $MREG_VERSION "
		"$MREG_PREVIOUS\" >> %s/hook.out\n", tmp);
	fclose(f);
	chmod(hook, 0755);
	f = fopen(conf, "w");
	fprintf(f, "[stage Production]\nprotect = true\n"
		"[hooks]\non_promote = %s\ntimeout = 5\n", hook);
	fclose(f);
	if (config_load(&cfg, conf, err, sizeof(err)) < 0) {
		printf("not ok 1 - config: %s\n", err);
		return 1;
	}
	reg_caller_self(&me);
	CHECK_EQ(reg_open(&cfg, store, &reg), 0, "open a new store");
	if (!reg)
		return check_done();
	/* the config's [stage] and [hooks], stored in the registry */
	CHECK_EQ(reg_policy_import(reg, &me, &cfg, 0), 2,
		 "the config's policy and hook imported");
	test_link_escape();
	test_errno_times();
	test_stage_case();
	test_rollback();
	test_sizes();
	reg_close(reg); /* runs the hooks still queued */
	check_hooks();
	test_store_check();
	config_release(&cfg);
	free(store);
	free(conf);
	free(hook);
	check_rmtree(tmp);
	return check_done();
}
