/* test-registry.c — the registry's rules through its API (no mount):
 * names, registering, drafts, sealing, stages, policy, history, metadata,
 * removal, gc and fsck. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"
#include "registry/registry.h"
#include "util.h"

static char *tmp;
static struct mreg_config cfg;
static struct reg_registry *reg;
static struct reg_caller me;

static char *write_file(const char *name, size_t size, unsigned seed)
{
	char *p;
	FILE *f;
	size_t i;

	if (asprintf(&p, "%s/%s", tmp, name) < 0)
		abort();
	f = fopen(p, "w");
	srand(seed);
	for (i = 0; i < size; i++)
		fputc(rand() & 0xff, f);
	fclose(f);
	return p;
}

static int push1(const char *model, const char *path, const char *version,
		 char *ret)
{
	const char *paths[] = { path };

	return reg_push(reg, &me, model, paths, 1, version, NULL, 0, NULL,
			NULL, ret);
}

static int cat_cmp(const char *model, const char *version, const char *file,
		   const char *orig)
{
	char *out, *cmd;
	int fd, r;

	if (asprintf(&out, "%s/cat.out", tmp) < 0)
		abort();
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	r = reg_cat(reg, model, version, file, fd);
	close(fd);
	if (r == 0) {
		if (asprintf(&cmd, "cmp -s '%s' '%s'", out, orig) < 0)
			abort();
		r = system(cmd) == 0 ? 0 : -1;
		free(cmd);
	}
	free(out);
	return r;
}

static int count_cb(void *arg, UNUSED const struct reg_history *h)
{
	(*(int *)arg)++;
	return 0;
}

struct chain {
	char last_to[130];
	int n, broken;
};

static int chain_cb(void *arg, const struct reg_history *h)
{
	struct chain *c = arg;

	if (c->n++ && strcmp(c->last_to, h->from) != 0)
		c->broken++;
	snprintf(c->last_to, sizeof(c->last_to), "%s", h->to);
	return 0;
}

static void test_names(void)
{
	char n129[130];

	memset(n129, 'a', 129);
	n129[129] = 0;
	CHECK_EQ(reg_check_name("churn-v2.1_x"), 0, "a plain name is valid");
	CHECK_EQ(reg_check_name(".hidden"), -EINVAL, "dot names are refused");
	CHECK_EQ(reg_check_name("-x"), -EINVAL, "names starting '-' refused");
	CHECK_EQ(reg_check_name("stages"), -EINVAL, "'stages' is refused");
	CHECK_EQ(reg_check_name("a/b"), -EINVAL, "slashes are refused");
	CHECK_EQ(reg_check_name(""), -EINVAL, "empty names are refused");
	CHECK_EQ(reg_check_name(n129), -EINVAL, "129 bytes is too long");
	n129[128] = 0;
	CHECK_EQ(reg_check_name(n129), 0, "128 bytes is fine");
	CHECK_EQ(reg_check_stage("Production"), 0, "stage name valid");
	memset(n129, 'S', 65);
	n129[65] = 0;
	CHECK_EQ(reg_check_stage(n129), -EINVAL, "65-byte stage refused");
}

/* Names of files inside a version: anything the kernel accepts, up to
 * 255 bytes; longer ones are ENAMETOOLONG, in core (SPEC §1), whatever
 * the caller checked before. */
static void test_name_lengths(void)
{
	char n255[256], n256[257];
	struct reg_attr m, v, a;
	struct reg_file *fh = NULL;

	memset(n255, 'f', 255);
	n255[255] = 0;
	memset(n256, 'f', 256);
	n256[256] = 0;
	CHECK_EQ(reg_resolve(reg, "churn", &m), 0, "model resolves");
	CHECK_EQ(reg_mkdir(reg, &me, m.ino, "long", 0755, &v), 0, "a draft");
	CHECK_EQ(reg_file_create(reg, &me, v.ino, n256, 0644, O_WRONLY, &a,
				 &fh),
		 -ENAMETOOLONG, "create of a 256-byte name: ENAMETOOLONG");
	CHECK_EQ(reg_mkdir(reg, &me, v.ino, n256, 0755, &a), -ENAMETOOLONG,
		 "mkdir of a 256-byte name: ENAMETOOLONG");
	CHECK_EQ(reg_symlink(reg, &me, v.ino, n256, "x", &a), -ENAMETOOLONG,
		 "symlink of a 256-byte name: ENAMETOOLONG");
	CHECK_EQ(reg_lookup(reg, v.ino, n256, &a), -ENAMETOOLONG,
		 "lookup of a 256-byte name: ENAMETOOLONG");
	CHECK_EQ(reg_file_create(reg, &me, v.ino, n255, 0644, O_WRONLY, &a,
				 &fh),
		 0, "create of a 255-byte name works");
	if (fh)
		reg_file_release(fh);
	CHECK_EQ(reg_rename(reg, &me, v.ino, n255, v.ino, n256, 0),
		 -ENAMETOOLONG, "rename to a 256-byte name: ENAMETOOLONG");
	CHECK_EQ(reg_unlink(reg, &me, v.ino, n255), 0, "unlink it");
	CHECK_EQ(reg_mkdir(reg, &me, REG_MODELS_INO, "-dash", 0755, &a),
		 -EINVAL, "a model named '-dash': EINVAL");
	CHECK_EQ(reg_mkdir(reg, &me, m.ino, "a b", 0755, &a), -EINVAL,
		 "a version named 'a b': EINVAL");
	CHECK_EQ(reg_rmdir(reg, &me, m.ino, "long"), 0, "remove the draft");
}

/* SPEC §3: a stage's target is exactly "../V" of a version of the same
 * model; anything else, however close, is EINVAL (never a version found
 * by a looser match), a version that does not exist ENOENT. */
static void test_stage_targets(void)
{
	static const char *const bad[] = {
		"..x1", "...1", "../1/", "../../churn/1", "./../1", "..//1",
		"../1/.", "../.1", "/../1", "../", "..", "1", "./1", "",
		"../1/../1", "../churn/../1", ".../1", "..\\1", " ../1",
	};
	struct reg_attr m, st, a;
	size_t i;
	int r;

	CHECK_EQ(reg_resolve(reg, "churn", &m), 0, "model resolves");
	CHECK_EQ(reg_lookup(reg, m.ino, "stages", &st), 0, "stages/");
	CHECK_EQ(reg_resolve(reg, "churn/1", &a), 0, "version 1 exists");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = reg_symlink(reg, &me, st.ino, "Odd", bad[i], &a);
		CHECK_EQ(r, -EINVAL, "stage target '%s': EINVAL", bad[i]);
		if (r == 0)
			reg_unlink(reg, &me, st.ino, "Odd");
	}
	CHECK_EQ(reg_lookup(reg, st.ino, "Odd", &a), -ENOENT,
		 "no stage was made");
	CHECK_EQ(reg_symlink(reg, &me, st.ino, "Odd", "../99", &a), -ENOENT,
		 "stage target '../99' (no such version): ENOENT");
	CHECK_EQ(reg_symlink(reg, &me, st.ino, "Odd", "../1", &a), 0,
		 "stage target '../1' is right");
	CHECK_EQ(reg_unlink(reg, &me, st.ino, "Odd"), 0, "remove it");
}

/* Renames and removals whose refusal the kernel never decides (a FUSE
 * file system answers them): core must. */
static void test_renames(void)
{
	struct reg_attr m, st, x, v, a, d, e;
	struct reg_file *fh = NULL;
	char tgt[64];

	CHECK_EQ(reg_resolve(reg, "churn", &m), 0, "model resolves");
	CHECK_EQ(reg_rmdir(reg, &me, REG_MODELS_INO, "churn"), -ENOTEMPTY,
		 "rmdir of a model with versions: ENOTEMPTY");
	CHECK_EQ(reg_resolve(reg, "churn/1", &a), 0, "and its versions stay");
	/* RENAME_NOREPLACE onto a stage and onto a file of a draft */
	CHECK_EQ(reg_lookup(reg, m.ino, "stages", &st), 0, "stages/");
	CHECK_EQ(reg_promote(reg, &me, "churn", "3", "Staging"), 0,
		 "Staging -> 3");
	CHECK_EQ(reg_rename(reg, &me, st.ino, "Staging", st.ino, "Production",
			    REG_RENAME_NOREPLACE), -EEXIST,
		 "a no-replace rename of Staging onto Production: EEXIST");
	CHECK(reg_lookup(reg, st.ino, "Production", &a) == 0 &&
	      reg_readlink(reg, a.ino, tgt, sizeof(tgt)) == 0 &&
	      strcmp(tgt, "../1") == 0 &&
	      reg_lookup(reg, st.ino, "Staging", &a) == 0,
	      "both stages are as they were (Production -> %s)", tgt);
	CHECK_EQ(reg_stage_remove(reg, &me, "churn", "Staging"), 0,
		 "remove Staging");
	CHECK_EQ(reg_mkdir(reg, &me, m.ino, "rn", 0755, &v), 0, "a draft");
	CHECK(reg_file_create(reg, &me, v.ino, "a", 0644, O_WRONLY, &a,
			      &fh) == 0 &&
	      reg_file_write(fh, "A", 1, 0) == 1 &&
	      reg_file_flush(fh, &me) == 0, "file a");
	reg_file_release(fh);
	CHECK(reg_file_create(reg, &me, v.ino, "b", 0644, O_WRONLY, &x, &fh) ==
		      0,
	      "file b");
	reg_file_release(fh);
	CHECK_EQ(reg_rename(reg, &me, v.ino, "a", v.ino, "b",
			    REG_RENAME_NOREPLACE), -EEXIST,
		 "a no-replace rename of a onto b: EEXIST");
	CHECK(reg_lookup(reg, v.ino, "a", &a) == 0 &&
	      reg_lookup(reg, v.ino, "b", &e) == 0 && e.ino == x.ino,
	      "both files are as they were");
	/* a directory into itself */
	CHECK(reg_mkdir(reg, &me, v.ino, "d", 0755, &d) == 0 &&
	      reg_mkdir(reg, &me, d.ino, "e", 0755, &e) == 0, "d and d/e");
	CHECK_EQ(reg_rename(reg, &me, v.ino, "d", e.ino, "x", 0), -EINVAL,
		 "d moved into d/e: EINVAL");
	CHECK_EQ(reg_rename(reg, &me, v.ino, "d", d.ino, "x", 0), -EINVAL,
		 "d moved into d: EINVAL");
	CHECK_EQ(reg_lookup(reg, v.ino, "d", &a), 0, "d stays");
	/* between models */
	CHECK_EQ(reg_mkdir(reg, &me, REG_MODELS_INO, "xm", 0755, &x), 0,
		 "another model");
	CHECK_EQ(reg_mkdir(reg, &me, x.ino, "v", 0755, &a), 0,
		 "with a draft and no stage");
	CHECK_EQ(reg_rmdir(reg, &me, REG_MODELS_INO, "xm"), -ENOTEMPTY,
		 "rmdir of it: ENOTEMPTY");
	CHECK_EQ(reg_rmdir(reg, &me, x.ino, "v"), 0, "remove the draft");
	CHECK_EQ(reg_rename(reg, &me, m.ino, "rn", x.ino, "rn2", 0), -EXDEV,
		 "a draft renamed into another model: EXDEV");
	CHECK(reg_resolve(reg, "churn/rn/a", &a) == 0 &&
	      reg_resolve(reg, "churn/rn2", &a) == -ENOENT &&
	      reg_resolve(reg, "xm/rn2", &a) == -ENOENT,
	      "the draft stays where it was, under its name");
	CHECK_EQ(reg_rename(reg, &me, m.ino, "1", x.ino, "1", 0), -EXDEV,
		 "a version renamed into another model: EXDEV");
	CHECK(reg_unlink(reg, &me, v.ino, "a") == 0 &&
	      reg_unlink(reg, &me, v.ino, "b") == 0 &&
	      reg_rmdir(reg, &me, d.ino, "e") == 0 &&
	      reg_rmdir(reg, &me, v.ino, "d") == 0 &&
	      reg_rmdir(reg, &me, m.ino, "rn") == 0 &&
	      reg_rmdir(reg, &me, REG_MODELS_INO, "xm") == 0, "clean up");
}

static void test_push_and_stages(void)
{
	char *a = write_file("model.bin", 3u << 20, 1);
	char *b = write_file("model2.bin", 3u << 20, 2);
	char v[REG_NAME_MAX + 1], tgt[64];
	struct reg_attr at;
	struct chain c = { 0 };
	int n = 0, r;

	CHECK_EQ(push1("churn", a, NULL, v), 0, "push registers a version");
	CHECK(strcmp(v, "1") == 0, "the first version is 1 (got %s)", v);
	CHECK_EQ(push1("churn", b, NULL, v), 0, "second push");
	CHECK(strcmp(v, "2") == 0, "then 2 (got %s)", v);
	CHECK_EQ(push1("churn", a, "2", v), -EEXIST, "an existing version");
	CHECK_EQ(push1("bad/name", a, NULL, v), -EINVAL, "a bad model name");
	CHECK_EQ(cat_cmp("churn", "1", "model.bin", a), 0,
		 "cat gives the pushed bytes");
	CHECK_EQ(cat_cmp("churn", "9", "model.bin", a), -ENOENT,
		 "cat of a missing version");
	CHECK_EQ(reg_promote(reg, &me, "churn", "1", "Production"), 0,
		 "promote 1 to Production");
	CHECK_EQ(reg_resolve(reg, "churn/stages/Production", &at), 0,
		 "the stage resolves");
	CHECK_EQ(reg_lookup(reg, at.model, "stages", &at), 0, "stages dir");
	CHECK_EQ(reg_lookup(reg, at.ino, "Production", &at), 0, "stage entry");
	CHECK_EQ(reg_readlink(reg, at.ino, tgt, sizeof(tgt)), 0, "readlink");
	CHECK(strcmp(tgt, "../1") == 0, "the stage points at ../1 (%s)", tgt);
	CHECK_EQ(reg_promote(reg, &me, "churn", "9", "Production"), -ENOENT,
		 "promote a missing version");
	CHECK_EQ(reg_promote(reg, &me, "churn", "1", "bad/stage"), -EINVAL,
		 "a bad stage name");
	CHECK_EQ(reg_version_remove(reg, &me, "churn", "1"), -EBUSY,
		 "a staged version cannot be removed");
	CHECK_EQ(reg_promote(reg, &me, "churn", "2", "Production"), 0,
		 "promote 2");
	CHECK_EQ(reg_rollback(reg, &me, "churn", "Production", v), 0,
		 "rollback");
	CHECK(strcmp(v, "1") == 0, "rolled back to 1 (got %s)", v);
	CHECK_EQ(reg_history(reg, "churn", "Production", count_cb, &n), 0,
		 "history");
	CHECK_EQ(n, 3, "three changes in the history");
	reg_history(reg, "churn", "Production", chain_cb, &c);
	CHECK_EQ(c.broken, 0, "the history is a chain");
	CHECK_EQ(reg_version_remove(reg, &me, "churn", "2"), 0,
		 "remove an unstaged version");
	CHECK_EQ(reg_resolve(reg, "churn/2", &at), -ENOENT, "it is gone");
	CHECK_EQ(push1("churn", a, NULL, v), 0, "push after removal");
	CHECK(strcmp(v, "3") == 0, "numbers are never reused (got %s)", v);
	r = reg_stage_remove(reg, &me, "churn", "Production");
	CHECK_EQ(r, -EACCES, "Production is protected by the config");
	CHECK_EQ(reg_promote(reg, &me, "churn", "3", "Staging"), 0,
		 "promote 3 to Staging");
	CHECK_EQ(reg_stage_remove(reg, &me, "churn", "Staging"), 0,
		 "remove Staging");
	free(a);
	free(b);
}

static void test_drafts(void)
{
	struct reg_attr m, v, f, d, tmpa;
	struct reg_file *fh;
	struct reg_setattr sa = { 0 };
	char buf[16];
	ssize_t n;

	CHECK_EQ(reg_resolve(reg, "churn", &m), 0, "model resolves");
	CHECK_EQ(reg_mkdir(reg, &me, m.ino, "7", 0755, &v), 0,
		 "mkdir makes a draft");
	CHECK(!v.sealed, "the draft is not sealed");
	CHECK_EQ(reg_mkdir(reg, &me, m.ino, "bad name", 0755, &tmpa), -EINVAL,
		 "a bad version name");
	CHECK_EQ(reg_mkdir(reg, &me, v.ino, "sub", 0755, &d), 0, "subdir");
	CHECK_EQ(reg_file_create(reg, &me, d.ino, "w.bin", 0644, O_WRONLY, &f,
				 &fh),
		 0, "create in the draft");
	CHECK_EQ(reg_file_write(fh, "hello world!", 12, 0), 12, "write");
	CHECK_EQ(reg_file_write(fh, "J", 1, 6), 1, "seek back and rewrite");
	CHECK_EQ(reg_file_flush(fh, &me), 0, "flush commits");
	reg_file_release(fh);
	CHECK_EQ(reg_file_open(reg, &me, f.ino, O_RDONLY, &fh), 0, "reopen");
	n = reg_file_read(fh, buf, sizeof(buf), 0);
	CHECK(n == 12 && memcmp(buf, "hello Jorld!", 12) == 0,
	      "read back what was written");
	reg_file_release(fh);
	CHECK_EQ(reg_symlink(reg, &me, d.ino, "ok", "../sub/w.bin", &tmpa), 0,
		 "a symlink inside the version");
	CHECK_EQ(reg_symlink(reg, &me, d.ino, "out", "../../x", &tmpa),
		 -EINVAL, "a symlink leaving the version");
	CHECK_EQ(reg_symlink(reg, &me, d.ino, "abs", "/etc/passwd", &tmpa),
		 -EINVAL, "an absolute symlink");
	CHECK_EQ(reg_rename(reg, &me, d.ino, "w.bin", v.ino, "top.bin", 0), 0,
		 "rename inside the draft");
	sa.valid = REG_SET_MODE;
	sa.mode = 0555;
	CHECK_EQ(reg_setattr(reg, &me, v.ino, &sa, NULL, &tmpa), 0,
		 "chmod a-w");
	CHECK(tmpa.sealed, "chmod a-w sealed the draft");
	CHECK_EQ(reg_file_create(reg, &me, v.ino, "x", 0644, O_WRONLY, &f, &fh),
		 -EROFS, "no new files in a sealed version");
	CHECK_EQ(reg_lookup(reg, v.ino, "top.bin", &f), 0, "lookup");
	CHECK_EQ(reg_file_open(reg, &me, f.ino, O_WRONLY, &fh), -EROFS,
		 "sealed files cannot be opened for writing");
	CHECK_EQ(reg_unlink(reg, &me, v.ino, "top.bin"), -EROFS,
		 "sealed files cannot be removed");
	CHECK_EQ(reg_setxattr(reg, &me, v.ino, "user.mreg.param.lr", "0.1", 3,
			      0), -EROFS, "params freeze when sealed");
	CHECK_EQ(reg_setxattr(reg, &me, v.ino, "user.mreg.metric.auc", "hi", 2,
			      0), -EINVAL, "metrics must be numbers");
	CHECK_EQ(reg_setxattr(reg, &me, v.ino, "user.mreg.metric.auc", "0.95",
			      4, 0), 0, "metrics may be set after sealing");
	CHECK_EQ(reg_setxattr(reg, &me, v.ino, "user.mreg.size", "1", 1, 0),
		 -EPERM, "facts are read-only");
	CHECK(reg_getxattr(reg, v.ino, "user.mreg.digest", buf, 0) > 0,
	      "a sealed version has a digest");
	CHECK_EQ(reg_rmdir(reg, &me, m.ino, "7"), 0,
		 "rmdir removes a sealed version whole");
}

static void test_pending(void)
{
	const struct reg_closing shared = { .known = true, .others = true },
		last = { .known = true };
	struct reg_attr m, f, v;
	struct reg_file *fh;

	CHECK_EQ(reg_resolve(reg, "churn", &m), 0, "model");
	CHECK_EQ(reg_file_create(reg, &me, m.ino, ".tmp.onnx", 0644, O_WRONLY,
				 &f, &fh),
		 0, "a dot file at the model root");
	CHECK_EQ(reg_file_write(fh, "onnx", 4, 0), 4, "write it");
	CHECK_EQ(reg_file_flush(fh, &me), 0, "a dot file waits");
	reg_file_release(fh);
	CHECK_EQ(reg_rename(reg, &me, m.ino, ".tmp.onnx", m.ino, "m.onnx", 0),
		 0, "renamed to a visible name");
	CHECK_EQ(reg_lookup(reg, m.ino, "m.onnx", &f), -ENOENT,
		 "the name left the model root");
	CHECK_EQ(reg_resolve(reg, "churn/8/m.onnx", &v), 0,
		 "it became the next version");
	CHECK_EQ(reg_file_create(reg, &me, m.ino, "direct.bin", 0644, O_WRONLY,
				 &f, &fh),
		 0, "a visible file at the model root");
	CHECK_EQ(reg_file_write(fh, "data", 4, 0), 4, "write it");
	CHECK_EQ(reg_file_flush(fh, &me), 0, "fsync commits it");
	CHECK_EQ(reg_lookup(reg, m.ino, "direct.bin", &f), 0,
		 "and it stays pending");
	CHECK_EQ(reg_file_close(fh, &me, &shared), 0,
		 "a close with another descriptor left commits it");
	CHECK_EQ(reg_lookup(reg, m.ino, "direct.bin", &f), 0,
		 "and it stays pending (a shell's dup2, a child's exec)");
	CHECK_EQ(reg_file_write(fh, "more", 4, 4), 4, "the writer goes on");
	CHECK_EQ(reg_file_close(fh, &me, &last), 1,
		 "the last close registers it");
	CHECK_EQ(reg_file_write(fh, "late", 4, 8), -EROFS,
		 "writes after registration fail");
	CHECK_EQ(reg_file_close(fh, &me, &last), 0, "once");
	reg_file_release(fh);
	CHECK_EQ(reg_resolve(reg, "churn/9/direct.bin", &v), 0, "version 9");
	CHECK_EQ(v.size, 8, "with every byte written before its last close");
}

static int find_text(void *arg, uint64_t seq, const char *json, size_t len)
{
	const char **want = arg;

	(void)seq;
	if (memmem(json, len, want[0], strlen(want[0])) &&
	    memmem(json, len, want[1], strlen(want[1])))
		want[2] = "found";
	return 0;
}

/* Is there an audit record holding both a and b? */
static bool audited(const char *a, const char *b)
{
	const char *want[3] = { a, b, NULL };

	return reg_audit(reg, 0, find_text, want) == 0 && want[2];
}

/* A new pending file name at model m, written "part" by process pid (and
 * pid2, when not 0). */
static struct reg_file *written(const struct reg_attr *m, const char *name,
				int pid, int pid2)
{
	struct reg_file *fh = NULL;
	struct reg_attr f;

	CHECK_EQ(reg_file_create(reg, &me, m->ino, name, 0644, O_WRONLY, &f,
				 &fh),
		 0, "create %s", name);
	reg_file_writer(fh, pid);
	if (pid2)
		reg_file_writer(fh, pid2);
	CHECK_EQ(reg_file_write(fh, "part", 4, 0), 4, "write part of it");
	return fh;
}

/* SPEC §2.1: a pending file registers once, complete, when its writer is
 * done; one whose writer dies of a signal never does. */
static void test_close_rule(void)
{
	const struct reg_closing others = { .known = true, .others = true },
		unknown = { 0 },
		killed = { .known = true, .pid = 4242, .signal = 9 },
		killed_shared = { .known = true, .others = true, .pid = 4242,
				  .signal = 15 },
		bystander = { .known = true, .others = true, .pid = 777,
			      .signal = 13 },
		last_live = { .known = true, .pid = 4243 };
	struct reg_attr m, f, v;
	struct reg_setattr sa = { 0 };
	struct reg_file *fh, *rd;

	CHECK_EQ(reg_resolve(reg, "churn", &m), 0, "model");

	/* killed while it was the only holder (cp & kill -9) */
	fh = written(&m, "killed.bin", 4242, 0);
	CHECK_EQ(reg_file_close(fh, &me, &killed), 0,
		 "its writer's death closes it");
	CHECK_EQ(reg_file_write(fh, "more", 4, 4), -EROFS,
		 "a discarded file takes no more writes");
	reg_file_release(fh);
	CHECK_EQ(reg_lookup(reg, m.ino, "killed.bin", &f), -ENOENT,
		 "the partial file is gone");
	CHECK(audited("\"refused\"", "killed by signal 9"),
	      "the refusal is audited");

	/* killed while another process still holds it: discarded at the
	   last close, whoever makes it */
	fh = written(&m, "shared.bin", 4242, 4243);
	CHECK_EQ(reg_file_close(fh, &me, &killed_shared), 0,
		 "one writer dies of SIGTERM, another holds it");
	CHECK_EQ(reg_lookup(reg, m.ino, "shared.bin", &f), 0,
		 "it stays until the last close");
	CHECK_EQ(reg_file_close(fh, &me, &last_live), -EIO,
		 "the live writer's last close is told it went");
	reg_file_release(fh);
	CHECK_EQ(reg_lookup(reg, m.ino, "shared.bin", &f), -ENOENT,
		 "and it is gone");

	/* a process that never wrote it dies (SIGPIPE in a pipeline) */
	fh = written(&m, "by.bin", 4243, 0);
	CHECK_EQ(reg_file_close(fh, &me, &bystander), 0,
		 "a child that inherited it dies of a signal");
	CHECK_EQ(reg_file_close(fh, &me, &last_live), 1,
		 "the writer's last close registers it");
	reg_file_release(fh);

	/* the last close cannot be told: its last handle's release is */
	CHECK_EQ(reg_file_create(reg, &me, m.ino, "late.bin", 0644, O_WRONLY,
				 &f, &fh),
		 0, "create late.bin");
	CHECK_EQ(reg_file_write(fh, "late", 4, 0), 4, "write it");
	CHECK_EQ(reg_file_close(fh, &me, &unknown), 0,
		 "a close of unknown kind");
	CHECK_EQ(reg_lookup(reg, m.ino, "late.bin", &f), 0, "stays pending");
	CHECK_EQ(reg_file_close(fh, &me, &others), 0, "another one");
	reg_file_release(fh);
	CHECK_EQ(reg_lookup(reg, m.ino, "late.bin", &f), -ENOENT,
		 "the release of its last handle registers it");

	/* a reader kept it open past its writer's close (tail -f): its
	   release is the last one */
	CHECK_EQ(reg_file_create(reg, &me, m.ino, "read.bin", 0644, O_WRONLY,
				 &f, &fh),
		 0, "create read.bin");
	CHECK_EQ(reg_file_write(fh, "read", 4, 0), 4, "write it");
	CHECK_EQ(reg_file_open(reg, &me, f.ino, O_RDONLY, &rd), 0,
		 "a reader opens it");
	CHECK_EQ(reg_file_close(fh, &me, &others), 0,
		 "the writer's close sees the reader's descriptor");
	reg_file_release(fh);
	CHECK_EQ(reg_lookup(reg, m.ino, "read.bin", &f), 0, "still pending");
	reg_file_release(rd);
	CHECK_EQ(reg_lookup(reg, m.ino, "read.bin", &f), -ENOENT,
		 "the reader's release registers it");

	/* cp -p: times set on the descriptor before the close are kept */
	CHECK_EQ(reg_file_create(reg, &me, m.ino, "timed.bin", 0644, O_WRONLY,
				 &f, &fh),
		 0, "create timed.bin");
	CHECK_EQ(reg_file_write(fh, "t", 1, 0), 1, "write it");
	sa.valid = REG_SET_MTIME | REG_SET_ATIME;
	sa.mtime.tv_sec = sa.atime.tv_sec = 981173106;
	sa.mtime.tv_nsec = sa.atime.tv_nsec = 5000;
	CHECK_EQ(reg_setattr(reg, &me, f.ino, &sa, fh, &v), 0, "futimens");
	CHECK_EQ(reg_file_close(fh, &me,
				&(struct reg_closing){ .known = true }), 1,
		 "close registers it");
	reg_file_release(fh);
	CHECK(reg_resolve(reg, "churn/10/by.bin", &v) == 0 && v.size == 4,
	      "by.bin became version 10, whole");
	CHECK(reg_resolve(reg, "churn/11/late.bin", &v) == 0 && v.size == 4,
	      "late.bin version 11");
	CHECK(reg_resolve(reg, "churn/12/read.bin", &v) == 0 && v.size == 4,
	      "read.bin version 12");
	CHECK(reg_resolve(reg, "churn/13/timed.bin", &v) == 0 &&
	      v.mtime.tv_sec == 981173106 && v.mtime.tv_nsec == 5000,
	      "timed.bin version 13, with the mtime set on its descriptor");
	CHECK_EQ(reg_resolve(reg, "churn/14", &v), -ENOENT,
		 "the discarded files made no version");
}


static int count_entries(void *arg, UNUSED const char *name,
			 UNUSED const struct reg_attr *a, UNUSED uint64_t next)
{
	(*(int *)arg)++;
	return 0;
}

/* Lists directory ino whole, through a handle of its own. */
static int list_dir(uint64_t ino,
		    int (*fn)(void *arg, const char *name,
			      const struct reg_attr *a, uint64_t next),
		    void *arg)
{
	struct reg_dir *d;
	int r;

	r = reg_opendir(reg, ino, &d);
	if (r < 0)
		return r;
	r = reg_readdir(d, 0, fn, arg);
	reg_closedir(d);
	return r;
}

/* A file unlinked (or renamed over) while open stays readable and
 * writable through its handles until the last close, as on any Unix file
 * system; then it is gone, and gc frees it meanwhile only if no live
 * process has it open. */
static void test_unlink_open(void)
{
	struct reg_attr m, v, f, g2, a;
	struct reg_file *r1, *w;
	struct reg_gc_result gr;
	char buf[32];
	int before = 0, after = 0;

	CHECK_EQ(reg_resolve(reg, "churn", &m), 0, "model");
	CHECK_EQ(reg_mkdir(reg, &me, m.ino, "u", 0755, &v), 0, "a draft");
	CHECK_EQ(reg_file_create(reg, &me, v.ino, "f", 0644, O_WRONLY, &f, &w),
		 0, "create f");
	CHECK_EQ(reg_file_write(w, "hello world", 11, 0), 11, "write it");
	CHECK_EQ(reg_file_flush(w, &me), 0, "commit it");
	reg_file_release(w);
	CHECK_EQ(reg_file_open(reg, &me, f.ino, O_RDONLY, &r1), 0,
		 "open to read");
	CHECK_EQ(reg_file_open(reg, &me, f.ino, O_RDWR, &w), 0, "and to write");
	CHECK_EQ(reg_unlink(reg, &me, v.ino, "f"), 0, "unlink it");
	CHECK_EQ(reg_lookup(reg, v.ino, "f", &a), -ENOENT, "the name is gone");
	CHECK(reg_getattr(reg, f.ino, &a) == 0 && a.nlink == 0 &&
	      a.size == 11, "the open inode: no link, its size");
	CHECK(reg_file_read(r1, buf, sizeof(buf), 0) == 11 &&
	      memcmp(buf, "hello world", 11) == 0,
	      "the reader still reads it");
	CHECK_EQ(reg_file_write(w, "J", 1, 6), 1, "the writer still writes");
	CHECK_EQ(reg_file_flush(w, &me), 0, "and closes it");
	CHECK(reg_file_read(w, buf, sizeof(buf), 0) == 11 &&
	      memcmp(buf, "hello Jorld", 11) == 0, "and reads its write");
	CHECK_EQ(reg_gc(reg, NULL, NULL, NULL, &gr), 0, "gc while it is open");
	CHECK(reg_file_read(r1, buf, sizeof(buf), 0) == 11 &&
	      memcmp(buf, "hello world", 11) == 0,
	      "after gc the reader still reads it");
	CHECK_EQ(reg_fsck(reg, REG_FSCK_FULL, NULL, NULL, NULL), 0,
		 "fsck --full is clean while it is open");
	reg_file_release(w);
	CHECK_EQ(reg_getattr(reg, f.ino, &a), 0, "one handle left: it stays");
	reg_file_release(r1);
	CHECK_EQ(reg_getattr(reg, f.ino, &a), -ENOENT,
		 "the last close frees it");
	CHECK_EQ(reg_fsck(reg, REG_FSCK_FULL, NULL, NULL, NULL), 0,
		 "fsck --full is clean");

	/* written in order after its unlink, committed, then gc: the
	 * bytes live in the file's spool, not in chunks nothing names */
	{
		size_t n2 = 3u << 20, i;
		uint8_t *big = malloc(n2), *back = malloc(n2);

		if (!big || !back)
			abort();
		for (i = 0; i < n2; i++)
			big[i] = (uint8_t)(i * 7 + (i >> 12));
		CHECK_EQ(reg_file_create(reg, &me, v.ino, "s", 0644, O_RDWR, &a,
				    &w), 0, "create s");
		CHECK_EQ(reg_file_write(w, big, n2 / 3, 0), (ssize_t)(n2 / 3),
			 "write its first MiB");
		CHECK_EQ(reg_unlink(reg, &me, v.ino, "s"), 0, "unlink it");
		CHECK_EQ(reg_file_write(w, big + n2 / 3, n2 - n2 / 3, n2 / 3),
			 (ssize_t)(n2 - n2 / 3), "write the rest in order");
		CHECK_EQ(reg_file_flush(w, &me), 0, "fsync");
		CHECK_EQ(reg_gc(reg, NULL, NULL, NULL, &gr), 0, "gc");
		CHECK(reg_file_read(w, back, n2, 0) == (ssize_t)n2 &&
		      memcmp(big, back, n2) == 0,
		      "every byte reads back through the handle");
		reg_file_release(w);
		CHECK_EQ(reg_getattr(reg, a.ino, &a), -ENOENT,
			 "the last close frees it");
		free(big);
		free(back);
	}

	/* renamed over while open */
	CHECK_EQ(reg_file_create(reg, &me, v.ino, "old", 0644, O_WRONLY, &f,
				 &w),
		 0, "create old");
	CHECK_EQ(reg_file_write(w, "old bytes", 9, 0), 9, "write it");
	reg_file_release(w);
	CHECK_EQ(reg_file_create(reg, &me, v.ino, "new", 0644, O_WRONLY, &g2,
				 &w),
		 0, "create new");
	CHECK_EQ(reg_file_write(w, "new", 3, 0), 3, "write it");
	reg_file_release(w);
	CHECK_EQ(reg_file_open(reg, &me, f.ino, O_RDONLY, &r1), 0, "open old");
	CHECK_EQ(reg_rename(reg, &me, v.ino, "new", v.ino, "old", 0), 0,
		 "rename new over old");
	CHECK(reg_file_read(r1, buf, sizeof(buf), 0) == 9 &&
	      memcmp(buf, "old bytes", 9) == 0,
	      "the open handle reads the replaced bytes");
	reg_file_release(r1);
	CHECK_EQ(reg_getattr(reg, f.ino, &a), -ENOENT,
		 "its last close frees it");

	/* a pending file unlinked while open is not registered */
	CHECK_EQ(list_dir(m.ino, count_entries, &before), 0,
		 "list the model");
	CHECK_EQ(reg_file_create(reg, &me, m.ino, "p.bin", 0644, O_WRONLY, &f,
				 &w),
		 0, "a pending file at the model root");
	CHECK_EQ(reg_file_write(w, "data", 4, 0), 4, "write it");
	CHECK_EQ(reg_unlink(reg, &me, m.ino, "p.bin"), 0, "unlink it");
	CHECK_EQ(reg_file_flush(w, &me), 0, "close() succeeds");
	reg_file_release(w);
	CHECK_EQ(reg_getattr(reg, f.ino, &a), -ENOENT, "and it is gone");
	CHECK_EQ(list_dir(m.ino, count_entries, &after), 0,
		 "list the model again");
	CHECK(before > 0 && after == before, "no version came of it (%d "
	      "entries, %d before)", after, before);

	/* a file nobody has open is deleted at once */
	CHECK_EQ(reg_file_create(reg, &me, v.ino, "z", 0644, O_WRONLY, &f, &w),
		 0, "create z");
	reg_file_release(w);
	CHECK_EQ(reg_unlink(reg, &me, v.ino, "z"), 0, "unlink it");
	CHECK_EQ(reg_getattr(reg, f.ino, &a), -ENOENT, "it is gone at once");
	reg_unlink(reg, &me, v.ino, "old");
	CHECK_EQ(reg_rmdir(reg, &me, m.ino, "u"), 0, "remove the draft");
	CHECK_EQ(reg_fsck(reg, REG_FSCK_FULL, NULL, NULL, NULL), 0,
		 "fsck --full is clean");
}

struct pieces {
	int n, limit;
	uint64_t next;
	char seen[600][8];
	int nseen;
};

static int piece_cb(void *arg, const char *name,
		    UNUSED const struct reg_attr *a, uint64_t next)
{
	struct pieces *p = arg;

	if (p->n == p->limit)
		return 1; /* "the buffer is full" */
	p->n++;
	p->next = next;
	if (p->nseen < 600)
		snprintf(p->seen[p->nseen++], 8, "%s", name);
	return 0;
}

static void test_readdir_pieces(void)
{
	struct reg_attr m, v;
	struct pieces p = { 0 };
	struct reg_dir *d;
	uint64_t pos = 0, at250 = 0;
	char name[16];
	int i, ok = 1, calls = 0;

	CHECK_EQ(reg_mkdir(reg, &me, REG_MODELS_INO, "many", 0755, &m), 0,
		 "a model for a long listing");
	for (i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "d%03d", i);
		if (reg_mkdir(reg, &me, m.ino, name, 0755, &v) < 0)
			ok = 0;
	}
	CHECK(ok, "500 drafts");
	CHECK_EQ(reg_opendir(reg, m.ino, &d), 0, "open the listing");
	do {
		p.n = 0;
		p.limit = 5;
		if (reg_readdir(d, pos, piece_cb, &p) < 0)
			break;
		pos = p.next;
		if (p.nseen == 250)
			at250 = pos;
		calls++;
	} while (p.n == p.limit && calls < 1000);
	CHECK_EQ(p.nseen, 501, "read 5 at a time, every entry once "
		 "(500 drafts and stages)");
	for (i = 0; i < 500 && i + 1 < p.nseen; i++) {
		snprintf(name, sizeof(name), "d%03d", i);
		if (strcmp(p.seen[i], name) != 0)
			ok = 0;
	}
	CHECK(ok && strcmp(p.seen[500], "stages") == 0, "in name order");
	/* a place given before (seekdir to what telldir said) */
	memset(&p, 0, sizeof(p));
	p.limit = 3;
	CHECK(at250 > 0, "the place after 250 entries was given");
	CHECK_EQ(reg_readdir(d, at250, piece_cb, &p), 0,
		 "readdir from an earlier place");
	CHECK(p.nseen == 3 && strcmp(p.seen[0], "d250") == 0,
	      "starts at the right entry (%s)", p.seen[0]);
	reg_closedir(d);
}

/* A listing read in pieces while entries before and after where it is are
 * added and removed: each entry there throughout shows exactly once. */
static void test_readdir_changing(void)
{
	struct reg_attr m, v;
	struct pieces p = { 0 };
	struct reg_dir *d;
	uint64_t pos = 0;
	char name[16];
	int i, k, calls = 0, twice = 0, missing = 0, extra = 0;

	CHECK_EQ(reg_mkdir(reg, &me, REG_MODELS_INO, "churn-list", 0755, &m),
		 0, "a model whose listing changes");
	for (i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "s%03d", i);
		reg_mkdir(reg, &me, m.ino, name, 0755, &v);
	}
	CHECK_EQ(reg_opendir(reg, m.ino, &d), 0, "open the listing");
	do {
		p.n = 0;
		p.limit = 5;
		if (reg_readdir(d, pos, piece_cb, &p) < 0)
			break;
		pos = p.next;
		/* three new names before everything, one removed: the
		   entries shift forward; then two removed: backward */
		for (k = 0; k < 3; k++) {
			snprintf(name, sizeof(name), "a%04d", calls * 3 + k);
			reg_mkdir(reg, &me, m.ino, name, 0755, &v);
		}
		if (calls % 2 == 0) {
			snprintf(name, sizeof(name), "a%04d", calls * 3);
			reg_rmdir(reg, &me, m.ino, name);
		} else {
			for (k = 0; k < 3; k++) {
				snprintf(name, sizeof(name), "a%04d",
					 (calls - 1) * 3 + 1 + k % 2);
				reg_rmdir(reg, &me, m.ino, name);
			}
		}
		calls++;
	} while (p.n == p.limit && calls < 1000);
	reg_closedir(d);
	for (i = 0; i < 300; i++) {
		int n = 0;

		snprintf(name, sizeof(name), "s%03d", i);
		for (k = 0; k < p.nseen; k++)
			n += strcmp(p.seen[k], name) == 0;
		twice += n > 1;
		missing += n == 0;
	}
	for (k = 0; k < p.nseen; k++)
		extra += p.seen[k][0] != 's' && p.seen[k][0] != 'a' &&
			 strcmp(p.seen[k], "stages") != 0;
	CHECK(twice == 0 && missing == 0 && extra == 0, "each of the 300 "
	      "entries there throughout shows once (%d twice, %d missing, "
	      "%d unknown, %d listed)", twice, missing, extra, p.nseen);
}

/* Writes in order go through a queue to a worker thread; reads, writes
 * out of order, the commit and a registry-wide buffer budget all have to
 * meet the bytes where they belong. */
#define QMIB (1u << 20)

struct qwriter {
	uint64_t dir;
	char name[32];
	const uint8_t *b;
	size_t size, step;
	int err;
};

static void *qwrite(void *arg)
{
	struct qwriter *w = arg;
	struct reg_attr a;
	struct reg_file *f;
	size_t off, n;
	ssize_t k;

	w->err = reg_file_create(reg, &me, w->dir, w->name, 0644, O_WRONLY, &a,
			    &f);
	if (w->err)
		return NULL;
	for (off = 0; off < w->size && !w->err; off += n) {
		n = w->size - off < w->step ? w->size - off : w->step;
		k = reg_file_write(f, w->b + off, n, off);
		if (k != (ssize_t)n)
			w->err = k < 0 ? (int)k : -EIO;
	}
	if (!w->err)
		w->err = reg_file_flush(f, &me);
	reg_file_release(f);
	return NULL;
}

static void test_queued_writes(void)
{
	size_t size = 20 * QMIB + 12345, i;
	uint8_t *b = malloc(size), *rb = malloc(QMIB);
	struct reg_attr m, v, a;
	struct reg_file *f;
	struct qwriter w[4];
	pthread_t th[4];
	char *src;
	FILE *fp;

	if (!b || !rb || asprintf(&src, "%s/q.src", tmp) < 0)
		abort();
	srand(41);
	for (i = 0; i < size; i++)
		b[i] = (uint8_t)rand();
	fp = fopen(src, "w");
	if (!fp || fwrite(b, 1, size, fp) != size)
		abort();
	fclose(fp);
	CHECK_EQ(reg_resolve(reg, "churn", &m), 0, "model resolves");
	CHECK_EQ(reg_mkdir(reg, &me, m.ino, "q", 0755, &v), 0, "a draft");

	/* 1 MiB writes (queued), then small ones (fed inline) */
	CHECK_EQ(reg_file_create(reg, &me, v.ino, "a.bin", 0644, O_WRONLY, &a,
				 &f),
		 0, "create a.bin");
	for (i = 0; i < 20; i++)
		if (reg_file_write(f, b + i * QMIB, QMIB, i * QMIB) != QMIB)
			break;
	CHECK_EQ(i, 20, "20 writes of 1 MiB are answered");
	CHECK_EQ(reg_file_write(f, b + 20 * QMIB, 5000, 20 * QMIB), 5000,
		 "a small write after them");
	CHECK_EQ(reg_file_write(f, b + 20 * QMIB + 5000, 7345,
				20 * QMIB + 5000),
		 7345, "and another");
	CHECK_EQ(reg_getattr(reg, a.ino, &a), 0, "getattr while queued");
	CHECK_EQ(a.size, size, "the size counts the queued bytes");
	CHECK_EQ(reg_file_flush(f, &me), 0, "close() commits");
	reg_file_release(f);
	CHECK_EQ(cat_cmp("churn", "q", "a.bin", src), 0,
		 "a.bin reads back as written");

	/* a read while writes are queued sees them; writing goes on */
	CHECK_EQ(reg_file_create(reg, &me, v.ino, "b.bin", 0644, O_RDWR, &a,
				 &f),
		 0, "create b.bin for reading and writing");
	for (i = 0; i < 8; i++)
		reg_file_write(f, b + i * QMIB, QMIB, i * QMIB);
	CHECK(reg_file_read(f, rb, QMIB, 3 * QMIB + 17) == QMIB &&
	      memcmp(rb, b + 3 * QMIB + 17, QMIB) == 0,
	      "a read in the middle sees the queued bytes");
	for (; i < 20; i++)
		reg_file_write(f, b + i * QMIB, QMIB, i * QMIB);
	reg_file_write(f, b + 20 * QMIB, size - 20 * QMIB, 20 * QMIB);
	CHECK_EQ(reg_file_flush(f, &me), 0, "close() commits");
	reg_file_release(f);
	CHECK_EQ(cat_cmp("churn", "q", "b.bin", src), 0,
		 "b.bin reads back as written");

	/* a write back over queued bytes */
	CHECK_EQ(reg_file_create(reg, &me, v.ino, "c.bin", 0644, O_WRONLY, &a,
				 &f),
		 0, "create c.bin");
	for (i = 0; i < 20; i++)
		reg_file_write(f, i == 5 ? b : b + i * QMIB, QMIB, i * QMIB);
	reg_file_write(f, b, QMIB, 20 * QMIB); /* wrong bytes, past the end */
	CHECK_EQ(reg_file_write(f, b + 5 * QMIB, QMIB, 5 * QMIB), QMIB,
		 "a write back at 5 MiB");
	CHECK_EQ(reg_file_write(f, b + 20 * QMIB, size - 20 * QMIB, 20 * QMIB),
		 (ssize_t)(size - 20 * QMIB), "and the right tail");
	CHECK_EQ(reg_setattr(reg, &me, a.ino,
			     &(struct reg_setattr){ .valid = REG_SET_SIZE,
						    .size = size },
			     f, &a), 0, "truncate to the source's size");
	CHECK_EQ(reg_file_flush(f, &me), 0, "close() commits");
	reg_file_release(f);
	CHECK_EQ(cat_cmp("churn", "q", "c.bin", src), 0,
		 "c.bin reads back as written");

	/* released without a flush while writes are queued */
	CHECK_EQ(reg_file_create(reg, &me, v.ino, "d.bin", 0644, O_WRONLY, &a,
				 &f),
		 0, "create d.bin");
	for (i = 0; i < 12; i++)
		reg_file_write(f, b + i * QMIB, QMIB, i * QMIB);
	reg_file_release(f);
	CHECK(reg_resolve(reg, "churn/q/d.bin", &a) == 0 &&
	      (a.size == 0 || a.size == 12 * QMIB),
	      "a release leaves the file empty or whole (%llu)",
	      (unsigned long long)a.size);

	/* four writers at once: more than the registry's queue budget */
	for (i = 0; i < 4; i++) {
		w[i] = (struct qwriter){ .dir = v.ino, .b = b, .size = size,
					 .step = i == 3 ? 128u << 10 : QMIB };
		snprintf(w[i].name, sizeof(w[i].name), "w%zu.bin", i);
		if (pthread_create(&th[i], NULL, qwrite, &w[i]))
			abort();
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(w[i].err, 0, "writer %zu of 4 at once", i);
		CHECK_EQ(cat_cmp("churn", "q", w[i].name, src), 0,
			 "and %s reads back as written", w[i].name);
	}
	{
		static const char *const names[] = {
			"a.bin", "b.bin", "c.bin", "d.bin",
			"w0.bin", "w1.bin", "w2.bin", "w3.bin"
		};

		for (i = 0; i < 8; i++)
			reg_unlink(reg, &me, v.ino, names[i]);
	}
	CHECK_EQ(reg_rmdir(reg, &me, m.ino, "q"), 0, "remove the draft");
	unlink(src);
	free(src);
	free(b);
	free(rb);
}

/* ---- files rewritten in place (issue 11) ---- */

static uint64_t chunked(void)
{
	struct reg_store_stats st;

	return reg_store_stats(reg, &st) == 0 ? st.chunked_bytes : 0;
}

/* Do the two versions hold the same chunks? (What both hold counts each
 * chunk once, at its length.) */
static bool same_chunks(const char *ma, const char *va, const char *mb,
			const char *vb)
{
	uint64_t ab, aa, bb;

	return reg_shared_bytes(reg, ma, va, mb, vb, &ab) == 0 &&
	       reg_shared_bytes(reg, ma, va, ma, va, &aa) == 0 &&
	       reg_shared_bytes(reg, mb, vb, mb, vb, &bb) == 0 &&
	       ab == aa && ab == bb && ab > 0;
}

/* Opens file ino again, writes n bytes at off and closes it: the bytes
 * that cost cutting and hashing (UINT64_MAX when a call failed). */
static uint64_t rewrite(uint64_t ino, const void *p, size_t n, uint64_t off)
{
	struct reg_file *f;
	uint64_t before;
	bool ok;

	if (reg_file_open(reg, &me, ino, O_RDWR, &f) != 0)
		return UINT64_MAX;
	before = chunked();
	ok = reg_file_write(f, p, n, off) == (ssize_t)n &&
	     reg_file_flush(f, &me) == 0;
	reg_file_release(f);
	return ok ? chunked() - before : UINT64_MAX;
}

static char *save_bytes(const char *name, const uint8_t *b, size_t n)
{
	char *p;
	FILE *f;

	if (asprintf(&p, "%s/%s", tmp, name) < 0)
		abort();
	f = fopen(p, "w");
	if (!f || (n && fwrite(b, 1, n, f) != n))
		abort();
	fclose(f);
	return p;
}

/* File name of draft churn/draft holds b[0..n): it reads back so, and a
 * push of the same bytes (file base, to a new model ref) has the same
 * chunks. */
static void as_pushed(const char *draft, const char *name, const uint8_t *b,
		      size_t n, const char *ref, const char *base)
{
	char v[REG_NAME_MAX + 1], *src = save_bytes(base, b, n);

	CHECK_EQ(cat_cmp("churn", draft, name, src), 0,
		 "%s reads back as written", name);
	CHECK_EQ(push1(ref, src, NULL, v), 0, "push the same bytes");
	CHECK(same_chunks("churn", draft, ref, v), "they have the same chunks "
	      "as the file rewritten in place");
	unlink(src);
	free(src);
}

static bool all_zero(const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* A 4 KiB write into a sparse 2 GiB file, then close(): the holes stay
 * holes and only a chunk or two is cut and hashed, not the file. */
static void test_sparse_write(void)
{
	const uint64_t big = 2ULL << 30, at = (1ULL << 30) + 123;
	uint64_t max = cfg.chunker.max_size, before, pos = 0, cost;
	struct reg_attr m, v, a;
	struct reg_file *f;
	uint8_t w[4096], rb[8192];
	size_t i;
	int r;

	for (i = 0; i < sizeof(w); i++)
		w[i] = (uint8_t)(i * 7 + 1);
	CHECK_EQ(reg_resolve(reg, "churn", &m), 0, "model resolves");
	CHECK_EQ(reg_mkdir(reg, &me, m.ino, "sparse", 0755, &v), 0,
		 "a draft");
	CHECK_EQ(reg_file_create(reg, &me, v.ino, "big.bin", 0644, O_RDWR, &a,
				 &f),
		 0, "create big.bin");
	before = chunked();
	CHECK_EQ(reg_setattr(reg, &me, a.ino,
			     &(struct reg_setattr){ .valid = REG_SET_SIZE,
						    .size = big }, f, &a), 0,
		 "extend it to 2 GiB");
	CHECK_EQ(reg_file_flush(f, &me), 0, "close()");
	reg_file_release(f);
	CHECK_EQ(chunked() - before, 0, "a hole of 2 GiB is not chunked");

	cost = rewrite(a.ino, w, sizeof(w), at);
	CHECK(cost <= 2 * max, "open, a 4 KiB write at 1 GiB + 123, close(): "
	      "%llu bytes cut and hashed, at most two chunks, not the file",
	      (unsigned long long)cost);

	CHECK_EQ(reg_file_open(reg, &me, a.ino, O_RDONLY, &f), 0,
		 "open to read");
	CHECK(reg_file_attr(f, &a) == 0 && a.size == big, "the size is 2 GiB");
	CHECK(reg_file_read(f, rb, sizeof(rb), at - 100) ==
		      (ssize_t)sizeof(rb) &&
	      all_zero(rb, 100) && !memcmp(rb + 100, w, sizeof(w)) &&
	      all_zero(rb + 100 + sizeof(w), sizeof(rb) - 100 - sizeof(w)),
	      "the 4 KiB read back, between zeros");
	CHECK(reg_file_read(f, rb, sizeof(rb), 0) == (ssize_t)sizeof(rb) &&
	      all_zero(rb, sizeof(rb)), "the hole at the start reads zeros");
	CHECK(reg_file_read(f, rb, sizeof(rb), big - 100) == 100 &&
	      all_zero(rb, 100), "the hole at the end reads zeros, to the "
	      "end");
	r = reg_file_lseek(f, 0, SEEK_DATA, &pos);
	CHECK(r == 0 && pos == at, "SEEK_DATA from 0: the written bytes (%d, "
	      "%llu)", r, (unsigned long long)pos);
	r = reg_file_lseek(f, at + 1, SEEK_HOLE, &pos);
	CHECK(r == 0 && pos == at + sizeof(w), "SEEK_HOLE: after them");
	CHECK_EQ(reg_file_lseek(f, at + sizeof(w), SEEK_DATA, &pos), -ENXIO,
		 "SEEK_DATA after them: nothing");
	CHECK(reg_file_lseek(f, 5, SEEK_HOLE, &pos) == 0 && pos == 5,
	      "SEEK_HOLE in a hole: where it is");
	reg_file_release(f);
	CHECK_EQ(reg_unlink(reg, &me, v.ino, "big.bin"), 0, "unlink it");
	CHECK_EQ(reg_rmdir(reg, &me, m.ino, "sparse"), 0, "remove the draft");
}

/* A 4 KiB write into the middle of a dense file cuts a few chunks again,
 * and the file ends with the chunks chunking it whole would give. */
static void test_dense_rewrite(void)
{
	const size_t n = 24u << 20, at = (10u << 20) + 5;
	uint64_t max = cfg.chunker.max_size, cost;
	uint8_t *b = malloc(n);
	struct reg_attr m, d, a;
	struct reg_file *f;
	size_t i;

	if (!b)
		abort();
	srand(31);
	for (i = 0; i < n; i++)
		b[i] = (uint8_t)rand();
	CHECK_EQ(reg_resolve(reg, "churn", &m), 0, "model resolves");
	CHECK_EQ(reg_mkdir(reg, &me, m.ino, "dense", 0755, &d), 0, "a draft");
	CHECK_EQ(reg_file_create(reg, &me, d.ino, "d.bin", 0644, O_WRONLY, &a,
				 &f),
		 0, "create d.bin");
	for (i = 0; i < n; i += QMIB)
		reg_file_write(f, b + i, QMIB, i);
	CHECK_EQ(reg_file_flush(f, &me), 0, "24 MiB written in order");
	reg_file_release(f);
	for (i = 0; i < 4096; i++)
		b[at + i] = (uint8_t)~b[at + i];
	cost = rewrite(a.ino, b + at, 4096, at);
	CHECK(cost <= 4 * max, "open, a 4 KiB write in the middle, close(): "
	      "%llu bytes cut and hashed, a few chunks, not the file's 24 MiB",
	      (unsigned long long)cost);
	as_pushed("dense", "d.bin", b, n, "denseref", "dense.ref");
	CHECK_EQ(reg_seal(reg, &me, "churn", "dense"), 0, "seal the draft");
	{
		char d1[80] = "", d2[80] = "";
		struct reg_attr x;

		CHECK(reg_resolve(reg, "churn/dense/d.bin", &a) == 0 &&
		      reg_getxattr(reg, a.ino, "user.mreg.digest", d1,
				   sizeof(d1) - 1) > 0 &&
		      reg_resolve(reg, "denseref/1/dense.ref", &x) == 0 &&
		      reg_getxattr(reg, x.ino, "user.mreg.digest", d2,
				   sizeof(d2) - 1) > 0 &&
		      strcmp(d1, d2) == 0,
		      "sealing computed its digest: that of the same bytes "
		      "pushed (%s, %s)", d1, d2);
	}
	free(b);
}

/* Writes in the middle and at the end of a file of one chunk, committed
 * together: the chunk is cut again once (the change in the middle and
 * the one at the end both restart at its start). */
static void test_end_rewrite(void)
{
	uint8_t b[10100], rb[10100];
	struct reg_attr m, d, a;
	struct reg_file *f;
	size_t i;

	for (i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(i * 13 + 5);
	CHECK_EQ(reg_resolve(reg, "churn", &m), 0, "model resolves");
	CHECK_EQ(reg_mkdir(reg, &me, m.ino, "end", 0755, &d), 0, "a draft");
	CHECK_EQ(reg_file_create(reg, &me, d.ino, "e.bin", 0644, O_WRONLY, &a,
				 &f),
		 0, "create e.bin");
	CHECK_EQ(reg_file_write(f, b, 10000, 0), 10000,
		 "10000 bytes: one chunk");
	CHECK_EQ(reg_file_flush(f, &me), 0, "close()");
	reg_file_release(f);
	CHECK_EQ(reg_file_open(reg, &me, a.ino, O_RDWR, &f), 0,
		 "open it again");
	memset(b + 4000, 'x', 100);
	CHECK_EQ(reg_file_write(f, b + 4000, 100, 4000), 100,
		 "write in the middle");
	CHECK_EQ(reg_file_write(f, b + 10000, 100, 10000), 100, "append");
	CHECK_EQ(reg_file_flush(f, &me), 0, "close() commits");
	reg_file_release(f);
	CHECK_EQ(reg_file_open(reg, &me, a.ino, O_RDONLY, &f), 0,
		 "open to read");
	CHECK(reg_file_read(f, rb, sizeof(rb), 0) == (ssize_t)sizeof(b) &&
	      !memcmp(rb, b, sizeof(b)), "it reads back as written");
	reg_file_release(f);
	CHECK_EQ(reg_fsck(reg, 0, NULL, NULL, NULL), 0, "fsck is clean: one "
		 "extent and one reference for the chunk");
}

/* Random writes (some far past the end: holes), truncations, reads,
 * commits and reopens of one file, checked against the same operations
 * on a buffer; then its holes are written over with zeros and it must
 * hold the chunks a push of its bytes gives. */
static void test_rewrite_random(void)
{
	const size_t cap = 6u << 20;
	uint8_t *ref = calloc(1, cap), *b = malloc(512u << 10);
	size_t size = 0, i, off, len, k;
	struct reg_attr m, d, a;
	struct reg_file *f;
	int bad_reads = 0, bad_seeks = 0, fails = 0;
	uint64_t pos, end;
	ssize_t n;

	if (!ref || !b)
		abort();
	srand(77);
	CHECK_EQ(reg_resolve(reg, "churn", &m), 0, "model resolves");
	CHECK_EQ(reg_mkdir(reg, &me, m.ino, "rand", 0755, &d), 0, "a draft");
	CHECK_EQ(reg_file_create(reg, &me, d.ino, "r.bin", 0644, O_RDWR, &a,
				 &f),
		 0, "create r.bin");
	for (i = 0; i < 400 && f; i++) {
		int op = rand() % 12;

		if (op <= 4 || op == 11) {
			/* a write, near the content or (11) far past it */
			len = 1 + (size_t)rand() % (200u << 10);
			off = (size_t)rand() % (size + (op == 11 ? 2u << 20 :
							      1u << 20));
			if (off + len > cap)
				off = cap - len;
			for (k = 0; k < len; k++)
				b[k] = op == 4 ? 0 : (uint8_t)rand();
			if (op == 3 && off > len)
				memcpy(b, ref, len); /* bytes seen before */
			if (reg_file_write(f, b, len, off) != (ssize_t)len)
				fails++;
			memcpy(ref + off, b, len);
			if (off + len > size)
				size = off + len;
		} else if (op == 5) {
			size_t ns = (size_t)rand() % (size + (1u << 20));

			if (ns > cap)
				ns = cap;
			if (reg_setattr(reg, &me, a.ino, &(struct reg_setattr){
					.valid = REG_SET_SIZE, .size = ns },
					f, &a) != 0)
				fails++;
			if (ns < size)
				memset(ref + ns, 0, size - ns);
			size = ns;
		} else if (op <= 7) {
			off = (size_t)rand() % (size + 1000);
			len = 1 + (size_t)rand() % (300u << 10);
			n = reg_file_read(f, b, len, off);
			k = off >= size ? 0 : size - off < len ? size - off :
			    len;
			if (n != (ssize_t)k || (k && memcmp(b, ref + off, k)))
				bad_reads++;
		} else if (op == 8) {
			if (reg_file_flush(f, &me) != 0)
				fails++;
		} else if (op == 9) {
			reg_file_release(f);
			f = NULL;
			if (reg_file_open(reg, &me, a.ino, O_RDWR, &f) != 0)
				fails++;
		} else if (size) {
			/* what SEEK_DATA/SEEK_HOLE skip is zeros */
			off = (size_t)rand() % size;
			if (reg_file_lseek(f, off, SEEK_DATA, &pos) != 0)
				pos = size;
			if (pos < off || !all_zero(ref + off, pos - off))
				bad_seeks++;
			if (reg_file_lseek(f, off, SEEK_HOLE, &pos) != 0 ||
			    pos < off || pos > size)
				bad_seeks++;
		}
	}
	CHECK_EQ(fails, 0, "400 random operations: none failed");
	CHECK_EQ(bad_reads, 0, "every read saw what was written");
	CHECK_EQ(bad_seeks, 0, "SEEK_DATA and SEEK_HOLE skip only zeros");
	CHECK(f && reg_file_attr(f, &a) == 0 && a.size == size,
	      "the size is right (%llu, %zu)", (unsigned long long)a.size,
	      size);
	/* zeros over every hole: chunked whole, as a push chunks them */
	for (pos = 0; f && reg_file_lseek(f, pos, SEEK_HOLE, &pos) == 0 &&
	     pos < size; pos = end) {
		if (reg_file_lseek(f, pos, SEEK_DATA, &end) != 0)
			end = size;
		memset(b, 0, 512u << 10);
		for (; pos < end; pos += len) {
			len = end - pos < (512u << 10) ? end - pos : 512u << 10;
			if (reg_file_write(f, b, len, pos) != (ssize_t)len)
				fails++;
		}
	}
	CHECK(f && reg_file_lseek(f, 0, SEEK_HOLE, &pos) == 0 && pos == size &&
	      fails == 0, "the holes are written over");
	CHECK(f && reg_file_flush(f, &me) == 0, "close() commits");
	reg_file_release(f);
	as_pushed("rand", "r.bin", ref, size, "randref", "r.ref");
	CHECK_EQ(reg_fsck(reg, REG_FSCK_FULL, NULL, NULL, NULL), 0,
		 "fsck --full is clean");
	free(ref);
	free(b);
}

static void test_gc_fsck(void)
{
	struct reg_gc_result g;
	char *a = write_file("big.bin", 5u << 20, 9), v[REG_NAME_MAX + 1];

	CHECK_EQ(push1("gcme", a, NULL, v), 0, "push a version to remove");
	CHECK_EQ(reg_version_remove(reg, &me, "gcme", v), 0, "remove it");
	CHECK_EQ(reg_gc(reg, NULL, NULL, NULL, &g), 0, "gc");
	CHECK(g.versions_freed == 3, "gc freed the 3 removed versions (%llu)",
	      (unsigned long long)g.versions_freed);
	CHECK(g.chunks_freed > 0, "gc freed its chunks (%llu)",
	      (unsigned long long)g.chunks_freed);
	CHECK_EQ(reg_fsck(reg, REG_FSCK_FULL, NULL, NULL, NULL), 0,
		 "fsck --full is clean after gc");
	free(a);
	a = write_file("model.bin", 3u << 20, 1);
	CHECK_EQ(cat_cmp("churn", "1", "model.bin", a), 0,
		 "other versions still read right after gc");
	free(a);
}

/* Never released: a handle the kernel never sent RELEASE for. */
static struct reg_file *volatile abandoned;

/* Refusals of one caller that are alike are coalesced: the first is
 * written at once, the rest are counted in one record written when the
 * window closes or the registry does. */
struct refusals {
	pid_t pid;
	unsigned records;
	unsigned long long total;
};

static int refusal_cb(void *arg, uint64_t seq, const char *json, size_t len)
{
	struct refusals *a = arg;
	char pid[32];
	const char *c;

	(void)seq;
	snprintf(pid, sizeof(pid), "\"pid\":%d,", (int)a->pid);
	if (!memmem(json, len, pid, strlen(pid)) ||
	    !memmem(json, len, "\"op\":\"unlink\"", 13) ||
	    !memmem(json, len, "\"version\":\"1\"", 13))
		return 0;
	a->records++;
	c = memmem(json, len, "\"count\":", 8);
	a->total += c ? strtoull(c + 8, NULL, 10) : 1;
	return 0;
}

static void test_refusals(void)
{
	struct reg_caller who = me;
	struct refusals a = { 0 };
	struct reg_attr v;
	char *path;
	int i, bad = 0;

	if (asprintf(&path, "%s/store", tmp) < 0)
		abort();
	who.pid = 424242; /* a caller of its own */
	CHECK_EQ(reg_resolve(reg, "refuse/1", &v), -ENOENT, "a new model");
	{
		char *f = write_file("r.bin", 1000, 9), ver[REG_NAME_MAX + 1];

		CHECK_EQ(push1("refuse", f, NULL, ver), 0, "a sealed version");
		free(f);
	}
	CHECK_EQ(reg_resolve(reg, "refuse/1", &v), 0, "resolves");
	for (i = 0; i < 50; i++)
		bad += reg_unlink(reg, &who, v.ino, "r.bin") != -EROFS;
	CHECK_EQ(bad, 0, "50 unlinks in a sealed version: EROFS");
	a.pid = who.pid;
	reg_audit(reg, 0, refusal_cb, &a);
	CHECK(a.records == 1 && a.total == 1, "one record at once (%u, %llu)",
	      a.records, a.total);
	reg_close(reg);
	CHECK_EQ(reg_open(&cfg, path, &reg), 0, "reopen");
	a.records = 0;
	a.total = 0;
	reg_audit(reg, 0, refusal_cb, &a);
	CHECK(a.records == 2 && a.total == 50, "the close wrote one more, "
	      "with the count of the other 49 (%u records, %llu)", a.records,
	      a.total);
	free(path);
}

/* The registry closes under a file still open for writing with writes
 * queued (a mount that went away under its writers): the worker stops
 * before the store closes, and the store reopens clean, without the
 * uncommitted bytes. Ends with the registry closed. */
static void test_close_with_writers(void)
{
	size_t size = 16 * QMIB, i;
	uint8_t *b = malloc(size);
	struct reg_attr m, v, a;
	struct reg_file *f = NULL;
	char *store;

	if (!b || asprintf(&store, "%s/store", tmp) < 0)
		abort();
	memset(b, 0x5a, size);
	for (i = 0; i < size; i += 4096)
		b[i] = (uint8_t)(i >> 12);
	CHECK_EQ(reg_resolve(reg, "churn", &m), 0, "model");
	CHECK_EQ(reg_mkdir(reg, &me, m.ino, "open", 0755, &v), 0, "a draft");
	CHECK_EQ(reg_file_create(reg, &me, v.ino, "w.bin", 0644, O_WRONLY, &a,
				 &f),
		 0, "create a file");
	for (i = 0; f && i < 16; i++)
		reg_file_write(f, b + i * QMIB, QMIB, i * QMIB);
	abandoned = f;
	reg_close(reg); /* f stays open, never released */
	CHECK_EQ(reg_open(&cfg, store, &reg), 0, "the store reopens");
	CHECK(reg && reg_resolve(reg, "churn/open", &a) == 0 &&
	      reg_resolve(reg, "churn/open/w.bin", &a) == -ENOENT,
	      "the draft is there, without the file whose first close never "
	      "came");
	CHECK(reg && reg_fsck(reg, REG_FSCK_FULL, NULL, NULL, NULL) == 0,
	      "fsck --full is clean");
	reg_close(reg);
	reg = NULL;
	free(store);
	free(b);
}

/* Runs fn in a child process that opens the store itself (never the
 * parent's LMDB environment) and reports through fd: the child's pid.
 * The parent's registry must be closed or idle. */
static pid_t child(void (*fn)(int fd, int go), int *ret_fd, int *ret_go)
{
	int up[2], down[2];
	pid_t pid;

	if (pipe(up) < 0 || pipe(down) < 0)
		abort();
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		fn(up[1], down[0]);
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	*ret_fd = up[0];
	*ret_go = down[1];
	return pid;
}

static char *store_path(void)
{
	char *p;

	if (asprintf(&p, "%s/store", tmp) < 0)
		abort();
	return p;
}

/* The child of test_dead_writers: leaves a pending file, a draft file
 * never committed and one committed, says so, and waits for the word to
 * die without closing anything (as a crashed daemon). */
static void leave_files(int fd, int go)
{
	struct reg_registry *r;
	struct reg_attr m, v, a;
	struct reg_file *f;
	char *store = store_path(), c = 'x';
	int ok;

	ok = reg_open(&cfg, store, &r) == 0 &&
	     reg_resolve(r, "churn", &m) == 0 &&
	     reg_file_create(r, &me, m.ino, "orphan.bin", 0644, O_WRONLY, &a,
			&f) == 0 && reg_file_write(f, "half", 4, 0) == 4 &&
	     reg_file_flush(f, &me) == 0 &&
	     reg_mkdir(r, &me, m.ino, "crashed", 0755, &v) == 0 &&
	     reg_file_create(r, &me, v.ino, "born.bin", 0644, O_WRONLY, &a,
			&f) == 0 && reg_file_write(f, "born", 4, 0) == 4 &&
	     reg_file_close(f, &me, &(struct reg_closing){ 0 }) == 0 &&
	     reg_file_create(r, &me, v.ino, "unborn.bin", 0644, O_WRONLY, &a,
			&f) == 0 && reg_file_write(f, "unborn", 6, 0) == 6 &&
	     /* written out of order: committed from a spool, in place */
	     reg_file_create(r, &me, v.ino, "spooled.bin", 0644, O_WRONLY, &a,
			&f) == 0 && reg_file_write(f, "tail", 4, 8192) == 4 &&
	     reg_file_write(f, "head", 4, 0) == 4 &&
	     reg_file_close(f, &me, &(struct reg_closing){ 0 }) == 0 &&
	     /* the same, committed by the close of a process that did not
		write it (a child closing an inherited descriptor) */
	     reg_file_create(r, &me, v.ino, "unborn-spool.bin", 0644, O_WRONLY,
			&a, &f) == 0 &&
	     (reg_file_writer(f, 4242),
	      reg_file_write(f, "tail", 4, 8192)) == 4 &&
	     reg_file_write(f, "head", 4, 0) == 4 &&
	     reg_file_close(f, &me,
			    &(struct reg_closing){ .pid = 4243 }) == 0 &&
	     /* a file whose close completed, opened without O_TRUNC and
		written in place, not closed */
	     reg_resolve(r, "churn/crashed/born.bin", &a) == 0 &&
	     reg_file_open(r, &me, a.ino, O_RDWR, &f) == 0 &&
	     reg_file_write(f, "BO", 2, 0) == 2 &&
	     reg_file_write(f, "x", 1, 9000) == 1;
	if (!ok)
		c = '!';
	if (write(fd, &c, 1) != 1 || read(go, &c, 1) < 0)
		_exit(1);
	_exit(0); /* nothing closed, released or unlocked */
}

/* Do the first n bytes of file ino read as want? */
static bool read_is(uint64_t ino, const char *want, size_t n)
{
	struct reg_file *f;
	char buf[64];
	bool same;

	if (n > sizeof(buf) || reg_file_open(reg, &me, ino, O_RDONLY, &f) < 0)
		return false;
	same = reg_file_read(f, buf, n, 0) == (ssize_t)n &&
	       !memcmp(buf, want, n);
	reg_file_release(f);
	return same;
}

/* SPEC §5, §7: what a dead process left half written goes, found by a
 * token no PID reuse can fake (here a zombie: kill(pid, 0) says it
 * lives), by a process that runs meanwhile. */
static void test_dead_writers(void)
{
	struct reg_attr a;
	siginfo_t si;
	int fd, go;
	pid_t pid;
	char c = 0;

	reg_close(reg);
	reg = NULL;
	pid = child(leave_files, &fd, &go);
	CHECK(read(fd, &c, 1) == 1 && c == 'x',
	      "a child process leaves half-written files");
	{
		char *store = store_path();

		CHECK_EQ(reg_open(&cfg, store, &reg), 0,
			 "the store opens beside it");
		free(store);
	}
	CHECK_EQ(reg_resolve(reg, "churn/orphan.bin", &a), 0,
		 "its pending file stays while it lives");
	CHECK_EQ(reg_resolve(reg, "churn/crashed/unborn.bin", &a), 0,
		 "its new draft file too");
	reg_tick(reg);
	CHECK_EQ(reg_resolve(reg, "churn/orphan.bin", &a), 0,
		 "housekeeping leaves a live process's files alone");
	CHECK(write(go, &c, 1) == 1, "the child dies");
	CHECK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) == 0 &&
	      kill(pid, 0) == 0, "a zombie: kill(pid, 0) says it lives");
	reg_tick(reg);
	CHECK_EQ(reg_resolve(reg, "churn/orphan.bin", &a), -ENOENT,
		 "housekeeping removed its pending file");
	CHECK_EQ(reg_resolve(reg, "churn/crashed/unborn.bin", &a), -ENOENT,
		 "and the draft file whose first close never came");
	CHECK(reg_resolve(reg, "churn/crashed/born.bin", &a) == 0 &&
	      a.size == 4 && read_is(a.ino, "born", 4),
	      "the draft file whose close completed is intact (what was "
	      "written in place since, never closed, is not there)");
	CHECK_EQ(reg_resolve(reg, "churn/crashed/unborn-spool.bin", &a),
		 -ENOENT, "a file written out of order and committed, but "
		 "never closed by its writer, went too");
	CHECK(reg_resolve(reg, "churn/crashed/spooled.bin", &a) == 0 &&
	      a.size == 8196 && read_is(a.ino, "head", 4),
	      "one written out of order and closed is intact");
	CHECK_EQ(reg_fsck(reg, REG_FSCK_FULL, NULL, NULL, NULL), 0,
		 "fsck --full is clean");
	waitpid(pid, NULL, 0);
	close(fd);
	close(go);
}

/* The child of test_seal_writers: seals churn/busy from its own process
 * and reports the result. */
static void seal_from_child(int fd, int go)
{
	struct reg_registry *r;
	char *store = store_path();
	int res;

	(void)go;
	res = reg_open(&cfg, store, &r);
	if (res == 0)
		res = reg_seal(r, &me, "churn", "busy");
	if (write(fd, &res, sizeof(res)) != sizeof(res))
		_exit(1);
	_exit(0);
}

static int seal_elsewhere(void)
{
	int fd, go, res = 1;
	pid_t pid = child(seal_from_child, &fd, &go);

	if (read(fd, &res, sizeof(res)) != sizeof(res))
		res = 1;
	waitpid(pid, NULL, 0);
	close(fd);
	close(go);
	return res;
}

/* SPEC §2.3: sealing a draft while a file of it is open for writing, from
 * this process or another, fails with EBUSY; the sealed bytes never
 * change. */
static void test_seal_writers(void)
{
	struct reg_attr m, v, f, a;
	struct reg_file *w;
	char buf[8];

	CHECK_EQ(reg_resolve(reg, "churn", &m), 0, "model");
	CHECK_EQ(reg_mkdir(reg, &me, m.ino, "busy", 0755, &v), 0, "a draft");
	CHECK_EQ(reg_file_create(reg, &me, v.ino, "w.bin", 0644, O_WRONLY, &f,
				 &w),
		 0, "a file open for writing in it");
	CHECK_EQ(reg_file_write(w, "abc", 3, 0), 3, "written");
	CHECK_EQ(reg_file_flush(w, &me), 0, "and committed");
	CHECK_EQ(reg_seal(reg, &me, "churn", "busy"), -EBUSY,
		 "mreg seal here: EBUSY");
	CHECK_EQ(reg_promote(reg, &me, "churn", "busy", "Busy"),
		 -EBUSY, "mreg promote of the draft here: EBUSY");
	CHECK_EQ(seal_elsewhere(), -EBUSY,
		 "mreg seal from another process: EBUSY");
	CHECK_EQ(reg_file_write(w, "d", 1, 3), 1, "the writer goes on");
	CHECK_EQ(reg_file_flush(w, &me), 0, "and commits");
	reg_file_release(w);
	CHECK_EQ(seal_elsewhere(), 0,
		 "once it is closed, another process seals it");
	CHECK_EQ(reg_file_open(reg, &me, f.ino, O_RDWR, &w), -EROFS,
		 "and nobody opens its files for writing");
	CHECK_EQ(reg_file_open(reg, &me, f.ino, O_RDONLY, &w), 0, "read it");
	CHECK(reg_file_read(w, buf, sizeof(buf), 0) == 4 &&
	      memcmp(buf, "abcd", 4) == 0, "the sealed bytes");
	reg_file_release(w);
	CHECK(reg_getattr(reg, v.ino, &a) == 0 && a.sealed, "sealed");
}

/* SPEC §5: a chunk that fails its check makes the read fail with EIO,
 * never wrong bytes. One byte of a pack flipped under a sealed file, in a
 * store of its own opened afresh (nothing of it in memory): every read
 * that succeeds returns the right bytes, the reads over the chunk fail
 * with EIO, reg_cat fails and writes nothing wrong; fsck --full finds it;
 * pushing the same bytes again heals it. */
static void test_bad_byte(void)
{
	size_t size = 1u << 20, flip_at = 600000, off, k, wrong = 0, eio = 0;
	uint8_t *b = malloc(size), *got = malloc(size), *pack = NULL;
	char *store, *packs, *path, *src, ver[REG_NAME_MAX + 1];
	struct reg_attr a;
	struct reg_file *fh = NULL;
	int found = 0, fd;
	ssize_t n;

	if (!b || !got || asprintf(&store, "%s/bad", tmp) < 0 ||
	    asprintf(&packs, "%s/packs", store) < 0)
		abort();
	src = write_file("bad.bin", size, 77);
	fd = open(src, O_RDONLY);
	if (fd < 0 || read(fd, b, size) != (ssize_t)size)
		abort();
	close(fd);
	CHECK_EQ(reg_open(&cfg, store, &reg), 0, "a store of its own");
	CHECK_EQ(push1("bad", src, NULL, ver), 0, "push a 1 MiB file");
	reg_close(reg);
	/* the pack that holds the bytes at flip_at: found by its content */
	for (k = 1; k < 16 && !found; k++) {
		struct stat st;
		uint8_t *hit;

		if (asprintf(&path, "%s/pack-%08zx.pack", packs, k) < 0)
			abort();
		fd = open(path, O_RDWR);
		if (fd >= 0 && fstat(fd, &st) == 0 &&
		    (pack = malloc((size_t)st.st_size)) &&
		    read(fd, pack, (size_t)st.st_size) == st.st_size &&
		    (hit = memmem(pack, (size_t)st.st_size, b + flip_at,
				  64))) {
			uint8_t x = (uint8_t)(b[flip_at] ^ 0x5a);

			found = pwrite(fd, &x, 1, hit - pack) == 1;
		}
		if (fd >= 0)
			close(fd);
		free(pack);
		pack = NULL;
		free(path);
	}
	CHECK(found, "one byte of the pack flipped");
	CHECK_EQ(reg_open(&cfg, store, &reg), 0, "the store reopens");
	CHECK_EQ(reg_resolve(reg, "bad/1/bad.bin", &a), 0, "the file");
	CHECK_EQ(reg_file_open(reg, &me, a.ino, O_RDONLY, &fh), 0, "open it");
	for (off = 0; fh && off < size; off += 4096) {
		n = reg_file_read(fh, got, 4096, off);
		if (n == -EIO)
			eio++;
		else if (n != 4096 || memcmp(got, b + off, 4096) != 0)
			wrong++;
	}
	CHECK(wrong == 0 && eio > 0, "4 KiB reads: right bytes or EIO, and "
	      "EIO over the damage (%zu wrong, %zu EIO)", wrong, eio);
	CHECK_EQ(fh ? reg_file_read(fh, got, 1, flip_at) : 0, -EIO,
		 "a read of the flipped byte alone: EIO");
	n = fh ? reg_file_read(fh, got, size, 0) : 0;
	CHECK(n == -EIO || (n >= 0 && (size_t)n <= flip_at &&
			    memcmp(got, b, (size_t)n) == 0),
	      "a read of the whole file: EIO, or right bytes up to the damage "
	      "(%zd)", n);
	if (fh)
		reg_file_release(fh);
	fd = memfd_create("cat", 0);
	CHECK_EQ(reg_cat(reg, "bad", "1", "bad.bin", fd), -EIO,
		 "reg_cat: EIO");
	n = lseek(fd, 0, SEEK_END);
	CHECK(n >= 0 && (size_t)n <= flip_at &&
	      pread(fd, got, (size_t)n, 0) == n &&
	      memcmp(got, b, (size_t)n) == 0,
	      "and what it wrote is right (%zd bytes)", n);
	close(fd);
	CHECK(reg_fsck(reg, REG_FSCK_FULL, NULL, NULL, NULL) > 0,
	      "fsck --full finds the damage");
	CHECK_EQ(push1("bad", src, NULL, ver), 0, "push the same bytes again");
	CHECK_EQ(cat_cmp("bad", "1", "bad.bin", src), 0,
		 "the damaged version reads right again");
	CHECK_EQ(reg_fsck(reg, REG_FSCK_FULL, NULL, NULL, NULL), 0,
		 "fsck --full is clean");
	reg_close(reg);
	reg = NULL;
	free(src);
	free(store);
	free(packs);
	free(b);
	free(got);
}

/* A caller who is not this process: uid, primary gid and exactly these
 * supplementary groups. */
static struct reg_caller caller(uid_t uid, gid_t gid, const gid_t *groups,
				int ngroups)
{
	struct reg_caller c = me;

	c.uid = uid;
	c.gid = gid;
	c.groups = groups;
	c.ngroups = ngroups;
	c.umask = 022;
	return c;
}

static int refused_cb(void *arg, UNUSED uint64_t seq, const char *json,
		      size_t len)
{
	int *n = arg;

	if (memmem(json, len, "\"uid\":4243,", 11) &&
	    memmem(json, len, "\"result\":\"refused\"", 18))
		(*n)++;
	return 0;
}

/* Stage policies (SPEC §3), stored in the registry, decided by core for
 * callers other than this process: promote_users, promote_groups
 * (primary and supplementary groups), require_stage, require_metric,
 * protect; a stage without a policy follows the model's own permissions,
 * whatever other stages' policies say. Ends with reg closed. */
static void test_policy(void)
{
	static const gid_t none[1], adm_g[] = { 4 }, sys_g[] = { 3 },
			   tty_g[] = { 5 };
	struct mreg_config pc;
	struct passwd *pw;
	struct group *gr;
	char user1[64] = "", group3[64] = "", group4[64] = "";
	struct reg_caller alice, bob, bob0, carol, dave, erin, frank, gina,
			  team;
	struct reg_kv good = { "metric.auc", "0.95" },
		      poor = { "metric.auc", "0.5" };
	char *store, *src, ver[REG_NAME_MAX + 1], err[256];
	const char *paths[1];
	struct reg_attr a, v;
	int refused = 0;

	/* names of this machine's (the config refuses unknown ones);
	 * getpwuid() and getgrgid() answer in static storage */
	if ((pw = getpwuid(1)))
		snprintf(user1, sizeof(user1), "%s", pw->pw_name);
	if ((gr = getgrgid(3)))
		snprintf(group3, sizeof(group3), "%s", gr->gr_name);
	if ((gr = getgrgid(4)))
		snprintf(group4, sizeof(group4), "%s", gr->gr_name);
	if (!user1[0] || !group3[0] || !group4[0] || !getgrgid(5)) {
		CHECK(1, "stage policies # SKIP uid 1 or gids 3, 4, 5 unknown");
		return;
	}
	/* alice: in promote_users; bob: in promote_groups of Staging by a
	 * supplementary group only (bob0: the same without it); carol:
	 * nobody; dave: Production's group, supplementary; erin: the
	 * same, primary; frank: no group of any policy; gina: the group of
	 * model "team" (tty), supplementary */
	alice = caller(1, 1, none, 0);
	bob = caller(4242, 4242, adm_g, 1);
	bob0 = caller(4242, 4242, none, 0);
	carol = caller(4243, 4243, none, 0);
	dave = caller(4244, 4244, sys_g, 1);
	erin = caller(4245, 3, none, 0);
	frank = caller(4246, 4246, none, 0);
	gina = caller(4247, 4247, tty_g, 1);
	team = caller(0, 5, none, 0);
	team.umask = 0;
	config_init(&pc);
	if (asprintf(&store, "%s/policy", tmp) < 0)
		abort();
	CHECK_EQ(reg_open(&pc, store, &reg), 0, "a store of its own");
	CHECK_EQ(reg_policy_set(reg, &me, "Staging", (struct reg_kv[]){
			{ "promote_users", user1 },
			{ "promote_groups", group4 } }, 2), 2,
		 "Staging: promote_users %s, promote_groups %s", user1,
		 group4);
	CHECK_EQ(reg_policy_set(reg, &carol, "Staging", (struct reg_kv[]){
			{ "protect", "true" } }, 1), -EPERM,
		 "a user who is not root (nor an admin) may not set a policy");
	CHECK_EQ(reg_policy_set(reg, &me, "Production", (struct reg_kv[]){
			{ "promote_groups", group3 },
			{ "require_stage", "Staging" },
			{ "require_metric", "auc >= 0.9" },
			{ "protect", "true" } }, 4), 4,
		 "Production: promote_groups %s, require_stage Staging, "
		 "require_metric auc >= 0.9, protect", group3);
	src = write_file("p.bin", 5000, 5);
	paths[0] = src;
	CHECK(reg_push(reg, &me, "pm", paths, 1, NULL, &good, 1, NULL, NULL,
		       ver) == 0 &&
	      reg_push(reg, &me, "pm", paths, 1, NULL, &poor, 1, NULL, NULL,
		       ver) == 0 &&
	      reg_push(reg, &me, "pm", paths, 1, NULL, NULL, 0, NULL, NULL,
		       ver) == 0 &&
	      reg_push(reg, &me, "pm", paths, 1, NULL, &good, 1, NULL, NULL,
		       ver) == 0,
	      "model pm (root's, 0755): 1 auc 0.95, 2 auc 0.5, 3 no metric, "
	      "4 auc 0.95");

	/* promote_users, promote_groups */
	CHECK_EQ(reg_promote(reg, &carol, "pm", "1", "Staging"), -EACCES,
		 "Staging: a user in neither list is refused");
	CHECK_EQ(reg_promote(reg, &bob0, "pm", "1", "Staging"), -EACCES,
		 "Staging: a user without the group is refused");
	CHECK_EQ(reg_promote(reg, &alice, "pm", "1", "Staging"), 0,
		 "Staging: a user of promote_users may");
	CHECK_EQ(reg_promote(reg, &bob, "pm", "2", "Staging"), 0,
		 "Staging: a supplementary group of promote_groups counts");
	CHECK_EQ(reg_promote(reg, &bob, "pm", "3", "Staging"), 0,
		 "Staging: 3 too");
	CHECK_EQ(reg_promote(reg, &bob, "pm", "1", "Production"), -EACCES,
		 "Production: a group of another stage's policy does not");
	CHECK_EQ(reg_promote(reg, &erin, "pm", "1", "Production"), 0,
		 "Production: the primary group counts (1 held Staging, "
		 "auc 0.95)");
	CHECK_EQ(reg_promote(reg, &dave, "pm", "1", "Production"), 0,
		 "Production: so does a supplementary one");

	/* require_stage, require_metric: for every caller, root too */
	CHECK_EQ(reg_promote(reg, &dave, "pm", "4", "Production"), -EACCES,
		 "require_stage: 4 never was in Staging");
	CHECK_EQ(reg_promote(reg, &dave, "pm", "2", "Production"), -EACCES,
		 "require_metric: 2 has auc 0.5");
	CHECK_EQ(reg_promote(reg, &dave, "pm", "3", "Production"), -EACCES,
		 "require_metric: 3 has no auc");
	CHECK_EQ(reg_promote(reg, &me, "pm", "2", "Production"), -EACCES,
		 "root passes the lists, not the gates");
	CHECK(reg_resolve(reg, "pm", &a) == 0 &&
	      reg_lookup(reg, a.ino, "stages", &a) == 0 &&
	      reg_lookup(reg, a.ino, "Production", &a) == 0,
	      "Production exists");
	CHECK_EQ(reg_readlink(reg, a.ino, err, sizeof(err)), 0, "readlink");
	CHECK(strcmp(err, "../1") == 0, "and still points at 1 (%s)", err);

	/* protect, and removal by the lists */
	CHECK_EQ(reg_stage_remove(reg, &dave, "pm", "Production"), -EACCES,
		 "protect: Production cannot be removed by its group");
	CHECK_EQ(reg_stage_remove(reg, &me, "pm", "Production"), -EACCES,
		 "nor by root");
	CHECK_EQ(reg_promote(reg, &dave, "pm", "1", "Production"), 0,
		 "but it may be set");
	CHECK_EQ(reg_stage_remove(reg, &carol, "pm", "Staging"), -EACCES,
		 "Staging: carol may not remove it");
	CHECK_EQ(reg_stage_remove(reg, &alice, "pm", "Staging"), 0,
		 "alice may");

	/* a stage without a policy: the model's own permissions */
	CHECK_EQ(reg_promote(reg, &frank, "pm", "1", "Dev"), -EACCES,
		 "Dev (no policy) on root's 0755 model: frank is refused");
	CHECK_EQ(reg_mkdir(reg, &carol, REG_MODELS_INO, "own", 0755, &a), 0,
		 "carol makes model 'own' (0755)");
	CHECK_EQ(reg_mkdir(reg, &carol, a.ino, "1", 0755, &v), 0,
		 "and a draft 1 in it");
	CHECK_EQ(reg_promote(reg, &carol, "own", "1", "Dev"), 0,
		 "Dev on her model: carol, its owner, may");
	CHECK_EQ(reg_promote(reg, &frank, "own", "1", "Test"), -EACCES,
		 "frank may not");
	/* SPEC §3: being admitted by another stage's policy gives no say
	 * over a stage without one */
	CHECK_EQ(reg_promote(reg, &bob, "own", "1", "Test"), -EACCES,
		 "bob, admitted by Staging's policy, may not set Test (no "
		 "policy) on carol's model");
	CHECK_EQ(reg_stage_remove(reg, &bob, "own", "Dev"), -EACCES,
		 "nor remove Dev (no policy) there");
	CHECK_EQ(reg_mkdir(reg, &team, REG_MODELS_INO, "team", 0775, &a), 0,
		 "model 'team': root's, group tty, 0775");
	CHECK_EQ(a.gid, 5, "its group is tty");
	CHECK_EQ(reg_mkdir(reg, &me, a.ino, "1", 0755, &v), 0, "a draft 1");
	CHECK_EQ(reg_promote(reg, &gina, "team", "1", "Dev"), 0,
		 "Dev on 'team': gina, of its group (supplementary), may");
	CHECK_EQ(reg_promote(reg, &frank, "team", "1", "Test"), -EACCES,
		 "frank may not");
	CHECK_EQ(reg_stage_remove(reg, &frank, "team", "Dev"), -EACCES,
		 "nor remove Dev");
	CHECK_EQ(reg_stage_remove(reg, &gina, "team", "Dev"), 0,
		 "gina may remove it");
	reg_audit(reg, 0, refused_cb, &refused);
	CHECK(refused >= 2, "carol's refusals are audited (%d)", refused);
	reg_close(reg);
	reg = NULL;
	config_release(&pc);
	free(store);
	free(src);
}

int main(void)
{
	char *conf;
	char err[256];
	FILE *f;

	tmp = check_tmpdir("registry");
	config_init(&cfg);
	if (asprintf(&conf, "%s/mreg.conf", tmp) < 0)
		abort();
	f = fopen(conf, "w");
	fprintf(f, "[stage Production]\nprotect = true\n"
		"[hooks]\non_promote = %s/hook.sh\ntimeout = 5\n", tmp);
	fclose(f);
	{
		char *hook;

		if (asprintf(&hook, "%s/hook.sh", tmp) < 0)
			abort();
		f = fopen(hook, "w");
		fprintf(f, "#!/bin/sh\necho \"$MREG_MODEL $MREG_VERSION "
			"$MREG_STAGE $MREG_PREVIOUS $MREG_UID\" >> %s/hook.out\n",
			tmp);
		fclose(f);
		chmod(hook, 0755);
		free(hook);
	}
	if (config_load(&cfg, conf, err, sizeof(err)) < 0) {
		printf("not ok 1 - config: %s\n", err);
		return 1;
	}
	reg_caller_self(&me);
	{
		char *store;

		if (asprintf(&store, "%s/store", tmp) < 0)
			abort();
		CHECK_EQ(reg_open(&cfg, store, &reg), 0, "open a new store");
		free(store);
		/* the config's [stage] and [hooks], stored in the registry */
		CHECK_EQ(reg_policy_import(reg, &me, &cfg, 0), 2,
			 "the config's policy and hook imported");
	}
	test_names();
	test_push_and_stages();
	test_name_lengths();
	test_stage_targets();
	test_renames();
	test_drafts();
	test_pending();
	test_close_rule();
	test_readdir_pieces();
	test_readdir_changing();
	test_queued_writes();
	test_gc_fsck();
	test_unlink_open();
	test_sparse_write();
	test_dense_rewrite();
	test_end_rewrite();
	test_rewrite_random();
	test_seal_writers();
	test_dead_writers();
	{
		uint64_t bad = 0;

		CHECK_EQ(reg_audit_verify(reg, NULL, NULL, &bad), 0,
			 "the audit chain verifies");
	}
	test_refusals();
	test_close_with_writers();
	test_bad_byte();
	test_policy();
	{
		char *out, line[256] = "";

		if (asprintf(&out, "%s/hook.out", tmp) < 0)
			abort();
		f = fopen(out, "r");
		CHECK(f != NULL, "the on_promote hook ran");
		if (f) {
			if (!fgets(line, sizeof(line), f))
				line[0] = 0;
			fclose(f);
		}
		CHECK(strncmp(line, "churn 1 Production  ", 20) == 0,
		      "the hook saw model, version, stage, previous, uid: %s",
		      line);
		free(out);
	}
	config_release(&cfg);
	check_rmtree(tmp);
	free(tmp);
	free(conf);
	return check_done();
}
