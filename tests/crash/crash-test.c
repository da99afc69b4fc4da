/* crash-test.c — power loss at every sync point of a registry workload
 * (SPEC §5, issue 6 item 1), with the I/O layer's crash simulation (io.h;
 * this program links the -DMREG_FAULTS core).
 *
 * A workload runs in a forked child: pushes (with dedup against earlier
 * versions, and a file larger than the store's write buffer), a draft
 * written file by file (one in order — streamed —, one seeking back —
 * spooled —, one rewritten with O_TRUNC, one rewritten in place: a few
 * bytes in its middle and more past its end, over a hole), sealing,
 * promotions, a rollback,
 * a stage removal, version removals, gc (which rewrites a pack), and a
 * file registered at a model root. With MREG_CRASH_AT=N (or
 * MREG_CRASH_WRITE=N), at that sync call (or pack write) the child
 * "loses power" — unsynced pack bytes are dropped at random, a write may
 * be torn, a pack whose name was not synced may vanish — and exits with
 * status 99. After every operation returned, the child tells the parent
 * over a pipe. The parent then opens the store and checks, for k
 * operations acknowledged:
 *	- every version and file the first k operations made is there and
 *	  reads back byte for byte; nothing of the operations never started;
 *	- each fact (a version exists, is sealed, a file's content, where a
 *	  stage points) is as after k operations or after k + 1 (the one under
 *	  way at the crash may have committed; a file it was writing may be
 *	  empty); a version is a draft or sealed, never in between;
 *	- every stage points at a sealed version; the history is a chain;
 *	- `mreg fsck --full` exits 0 (the CLI of $MREG_BUILD, which
 *	  tests/run.sh sets) and the in-process fsck --full finds no error;
 *	  a new push works and reads back, gc works, fsck is still clean.
 * The trials: the workload once without a crash (counting its sync calls
 * S and pack writes W), then a crash at each sync point 1..S, then
 * --random more at random sync or write points with random seeds.
 *
 * Usage: test-crash [--random N] [--seed S] [--sync N --crash-seed S]
 *                   [--write N --crash-seed S] [--keep] [-v]
 * Prints TAP lines (tests/run.sh counts them). A failure prints the
 * options that replay it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"
#include "io.h"
#include "log.h"
#include "registry/registry.h"

#define MODEL "m"
#define NVERS 6 /* versions 1..5, and 6 made after the crash */

/* ---- contents ---------------------------------------------------------- */

enum { A, A2, B, C, G, W, X, W2, X2, D, P, E, NCONTENT };

struct content {
	const char *name;
	size_t size;
	uint8_t *bytes;
};

static struct content ct[NCONTENT] = {
	[A] = { "a.bin", 300000, NULL },
	[A2] = { "a.bin", 300100, NULL },  /* A with 100 bytes inserted */
	[B] = { "b.bin", 100000, NULL },
	[C] = { "sub/c.bin", 40000, NULL },
	[G] = { "g.bin", 1200000, NULL },   /* more than a write buffer */
	[W] = { "w.bin", 200000, NULL },
	[X] = { "x.bin", 50000, NULL },
	[W2] = { "w.bin", 150000, NULL }, /* W rewritten in the draft */
	[X2] = { "x.bin", 70000, NULL },  /* X rewritten in place */
	[D] = { "d.bin", 180000, NULL },
	[P] = { "p.bin", 120000, NULL },
	[E] = { "e.bin", 64000, NULL },
};

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull | 1;
	size_t i;

	for (i = 0; i < n; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		p[i] = (uint8_t)((x * 0x2545f4914f6cdd1dull) >> 56);
	}
}

static void make_contents(void)
{
	int i;

	for (i = 0; i < NCONTENT; i++) {
		ct[i].bytes = malloc(ct[i].size);
		if (!ct[i].bytes)
			abort();
		if (i != A2 && i != X2)
			fill(ct[i].bytes, ct[i].size, (uint64_t)i + 1);
	}
	/* X with 4 KiB changed at 20000, a hole, 10000 bytes after it */
	memcpy(ct[X2].bytes, ct[X].bytes, ct[X].size);
	fill(ct[X2].bytes + 20000, 4096, 98);
	memset(ct[X2].bytes + 50000, 0, 10000);
	fill(ct[X2].bytes + 60000, 10000, 97);
	/* an insertion: dedup must keep all but about one chunk */
	memcpy(ct[A2].bytes, ct[A].bytes, 150000);
	fill(ct[A2].bytes + 150000, 100, 99);
	memcpy(ct[A2].bytes + 150100, ct[A].bytes + 150000, 150000);
}

/* ---- the workload, and what each step leaves ----------------------------- */

enum op_kind { OP_PUSH, OP_DRAFT_FILE, OP_REWRITE, OP_PATCH, OP_SEAL,
	       OP_PROMOTE, OP_ROLLBACK, OP_UNSTAGE, OP_RM, OP_GC,
	       OP_PENDING };

#define MAXF 4
struct op {
	enum op_kind kind;
	int version;
	int files[MAXF + 1];     /* contents, -1 ended (OP_REWRITE,
				    OP_PATCH: old, new); OP_ROLLBACK:
				    version is where the
				    stage goes back to */
	const char *stage;
	const char *src;         /* OP_PUSH: source directory */
};

static const struct op ops[] = {
	{ OP_PUSH, 1, { A, B, C, G, -1 }, NULL, "v1" },
	{ OP_PUSH, 2, { A2, B, C, -1 }, NULL, "v2" },
	{ OP_DRAFT_FILE, 3, { W, -1 }, NULL, NULL },
	{ OP_DRAFT_FILE, 3, { X, -1 }, NULL, NULL },
	{ OP_REWRITE, 3, { W, W2, -1 }, NULL, NULL },
	{ OP_PATCH, 3, { X, X2, -1 }, NULL, NULL },
	{ OP_SEAL, 3, { -1 }, NULL, NULL },
	{ OP_PROMOTE, 2, { -1 }, "Staging", NULL },
	{ OP_PROMOTE, 2, { -1 }, "Production", NULL },
	{ OP_PROMOTE, 3, { -1 }, "Staging", NULL },
	{ OP_PROMOTE, 3, { -1 }, "Production", NULL },
	{ OP_ROLLBACK, 2, { -1 }, "Production", NULL },
	{ OP_PROMOTE, 3, { -1 }, "Production", NULL },
	{ OP_RM, 1, { -1 }, NULL, NULL },
	{ OP_GC, 0, { -1 }, NULL, NULL },
	{ OP_PUSH, 4, { D, B, G, -1 }, NULL, "v4" },
	{ OP_PENDING, 5, { P, -1 }, NULL, NULL },
	{ OP_UNSTAGE, 0, { -1 }, "Staging", NULL },
	{ OP_RM, 2, { -1 }, NULL, NULL },
	{ OP_GC, 0, { -1 }, NULL, NULL },
};
#define NOPS ((int)(sizeof(ops) / sizeof(ops[0])))

static const char *const stage_names[] = { "Staging", "Production" };
#define NSTAGES 2

struct vstate {
	bool exists, sealed;
	bool has[NCONTENT];
};

struct state {
	struct vstate v[NVERS + 1];
	int stage[NSTAGES]; /* version, 0 for none */
};

static struct state states[NOPS + 1]; /* states[k]: after k operations */

static int stage_index(const char *s)
{
	return strcmp(s, "Staging") == 0 ? 0 : 1;
}

static void model_states(void)
{
	struct state s;
	int i, j;

	memset(&s, 0, sizeof(s));
	states[0] = s;
	for (i = 0; i < NOPS; i++) {
		const struct op *o = &ops[i];
		struct vstate *v = &s.v[o->version];

		switch (o->kind) {
		case OP_PUSH:
		case OP_PENDING:
			v->exists = v->sealed = true;
			for (j = 0; o->files[j] >= 0; j++)
				v->has[o->files[j]] = true;
			break;
		case OP_DRAFT_FILE:
			v->exists = true;
			v->has[o->files[0]] = true;
			break;
		case OP_REWRITE:
		case OP_PATCH:
			v->has[o->files[0]] = false;
			v->has[o->files[1]] = true;
			break;
		case OP_ROLLBACK:
			s.stage[stage_index(o->stage)] = o->version;
			break;
		case OP_UNSTAGE:
			s.stage[stage_index(o->stage)] = 0;
			break;
		case OP_SEAL:
			v->sealed = true;
			break;
		case OP_PROMOTE:
			v->sealed = true;
			s.stage[stage_index(o->stage)] = o->version;
			break;
		case OP_RM:
			memset(v, 0, sizeof(*v));
			break;
		case OP_GC:
			break;
		}
		states[i + 1] = s;
	}
}

static char *root;          /* scratch directory */
static char *cli;           /* the mreg CLI, for its fsck, or NULL */
static struct mreg_config cfg;
static struct reg_caller me;
static bool verbose, keep;

static void write_src(void)
{
	char *p, *cmd;
	int i, j, fd;

	for (i = 0; i < NOPS; i++) {
		if (ops[i].kind != OP_PUSH)
			continue;
		if (asprintf(&cmd, "mkdir -p '%s/src/%s/sub'", root,
			     ops[i].src) < 0 || system(cmd) != 0)
			abort();
		free(cmd);
		for (j = 0; ops[i].files[j] >= 0; j++) {
			const struct content *c = &ct[ops[i].files[j]];

			if (asprintf(&p, "%s/src/%s/%s", root, ops[i].src,
				     c->name) < 0)
				abort();
			fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd < 0 || write(fd, c->bytes, c->size) !=
			    (ssize_t)c->size)
				abort();
			close(fd);
			free(p);
		}
	}
}

/* Writes c through f in three pieces and commits it: what a program
 * does through the mount, the commit being its close(). x.bin is written
 * last piece first, as a zip writer seeking back does: the registry then
 * takes the spool path rather than the stream. */
static int write_commit(struct reg_file *f, const struct content *c)
{
	size_t cuts[4] = { 0, c->size / 3, c->size / 3 * 2 + 7, c->size };
	static const int in_order[3] = { 0, 1, 2 }, seek_back[3] = { 2, 0, 1 };
	const int *order = c == &ct[X] ? seek_back : in_order;
	ssize_t n;
	int k, i, r;

	for (k = 0; k < 3; k++) {
		i = order[k];
		n = reg_file_write(f, c->bytes + cuts[i], cuts[i + 1] - cuts[i],
			      cuts[i]);
		if (n != (ssize_t)(cuts[i + 1] - cuts[i])) {
			reg_file_release(f);
			return n < 0 ? (int)n : -EIO;
		}
	}
	r = reg_file_flush(f, &me);
	reg_file_release(f);
	return r < 0 ? r : 0;
}

/* A new file name under directory ino. */
static int write_file(struct reg_registry *reg, uint64_t dir,
		      const char *name, const struct content *c)
{
	struct reg_attr a;
	struct reg_file *f;
	int r;

	r = reg_file_create(reg, &me, dir, name, 0644, O_WRONLY, &a, &f);
	if (r < 0)
		return r;
	return write_commit(f, c);
}

/* X's file, opened without O_TRUNC: what X2 changes is written in place
 * (the hole between is not written). */
static int patch_file(struct reg_registry *reg, uint64_t ino)
{
	struct reg_file *f;
	int r;

	r = reg_file_open(reg, &me, ino, O_RDWR, &f);
	if (r < 0)
		return r;
	if (reg_file_write(f, ct[X2].bytes + 60000, 10000, 60000) != 10000 ||
	    reg_file_write(f, ct[X2].bytes + 20000, 4096, 20000) != 4096) {
		reg_file_release(f);
		return -EIO;
	}
	r = reg_file_flush(f, &me);
	reg_file_release(f);
	return r < 0 ? r : 0;
}

/* An existing file of a draft, opened with O_TRUNC and written again. */
static int rewrite_file(struct reg_registry *reg, uint64_t ino,
			const struct content *c)
{
	struct reg_file *f;
	int r;

	r = reg_file_open(reg, &me, ino, O_WRONLY | O_TRUNC, &f);
	if (r < 0)
		return r;
	return write_commit(f, c);
}

static int run_op(struct reg_registry *reg, const struct op *o)
{
	char v[16], path[32], got[REG_NAME_MAX + 1], *src;
	const char *paths[1];
	struct reg_attr m, d;
	struct reg_gc_result g;
	int r;

	snprintf(v, sizeof(v), "%d", o->version);
	switch (o->kind) {
	case OP_PUSH:
		if (asprintf(&src, "%s/src/%s", root, o->src) < 0)
			return -ENOMEM;
		paths[0] = src;
		r = reg_push(reg, &me, MODEL, paths, 1, v, NULL, 0, NULL,
			     NULL, got);
		free(src);
		return r;
	case OP_DRAFT_FILE:
		if ((r = reg_resolve(reg, MODEL, &m)) < 0)
			return r;
		snprintf(path, sizeof(path), MODEL "/%s", v);
		r = reg_resolve(reg, path, &d);
		if (r == -ENOENT)
			r = reg_mkdir(reg, &me, m.ino, v, 0755, &d);
		if (r < 0)
			return r;
		return write_file(reg, d.ino, ct[o->files[0]].name,
				  &ct[o->files[0]]);
	case OP_REWRITE:
		snprintf(path, sizeof(path), MODEL "/%s/%s", v,
			 ct[o->files[1]].name);
		if ((r = reg_resolve(reg, path, &d)) < 0)
			return r;
		return rewrite_file(reg, d.ino, &ct[o->files[1]]);
	case OP_PATCH:
		snprintf(path, sizeof(path), MODEL "/%s/%s", v,
			 ct[o->files[1]].name);
		if ((r = reg_resolve(reg, path, &d)) < 0)
			return r;
		return patch_file(reg, d.ino);
	case OP_ROLLBACK:
		return reg_rollback(reg, &me, MODEL, o->stage, got);
	case OP_UNSTAGE:
		return reg_stage_remove(reg, &me, MODEL, o->stage);
	case OP_SEAL:
		return reg_seal(reg, &me, MODEL, v);
	case OP_PROMOTE:
		return reg_promote(reg, &me, MODEL, v, o->stage);
	case OP_RM:
		return reg_version_remove(reg, &me, MODEL, v);
	case OP_GC:
		r = reg_gc(reg, NULL, NULL, NULL, &g);
		if (r == 0 && verbose)
			fprintf(stderr, "gc: %llu versions, %llu chunks, "
				"%llu packs removed, %llu rewritten\n",
				(unsigned long long)g.versions_freed,
				(unsigned long long)g.chunks_freed,
				(unsigned long long)g.packs_removed,
				(unsigned long long)g.packs_rewritten);
		return r;
	case OP_PENDING:
		if ((r = reg_resolve(reg, MODEL, &m)) < 0)
			return r;
		return write_file(reg, m.ino, ct[o->files[0]].name,
				  &ct[o->files[0]]);
	}
	return -EINVAL;
}

/* The child: runs the workload, reporting each operation that returned.
 * Messages: an int, the index of the operation done; -1 then the two
 * counters when all is done; -2 - i when operation i failed. */
__attribute__((noreturn))
static void child(const char *store, int wfd)
{
	struct reg_registry *reg;
	uint64_t st[2];
	int i, r, msg;

	io_faults_reload();
	r = reg_open(&cfg, store, &reg);
	if (r < 0) {
		msg = -2 - NOPS;
		(void)!write(wfd, &msg, sizeof(msg));
		_exit(3);
	}
	for (i = 0; i < NOPS; i++) {
		r = run_op(reg, &ops[i]);
		if (r < 0) {
			fprintf(stderr, "operation %d failed: %s\n", i,
				strerror(-r));
			msg = -2 - i;
			(void)!write(wfd, &msg, sizeof(msg));
			_exit(3);
		}
		(void)!write(wfd, &i, sizeof(i));
	}
	reg_close(reg);
	io_stats(&st[0], &st[1]);
	msg = -1;
	(void)!write(wfd, &msg, sizeof(msg));
	(void)!write(wfd, st, sizeof(st));
	_exit(0);
}

/* ---- checking a store after the crash ---------------------------------- */

struct verdict {
	char why[1024];
	bool bad;
};

__attribute__((format(printf, 2, 3)))
static void bad(struct verdict *vd, const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(vd->why);

	if (n + 4 >= sizeof(vd->why))
		return;
	if (n)
		strcat(vd->why, "; ");
	n = strlen(vd->why);
	va_start(ap, fmt);
	vsnprintf(vd->why + n, sizeof(vd->why) - n, fmt, ap);
	va_end(ap);
	vd->bad = true;
}

struct vinfo {
	bool exists, sealed;
	char stages[NSTAGES];
};

static int vinfo_cb(void *arg, const struct reg_version_info *v)
{
	struct vinfo *vi = arg;
	int i;

	vi->exists = true;
	vi->sealed = v->sealed;
	for (i = 0; v->stages && v->stages[i]; i++)
		vi->stages[stage_index(v->stages[i])] = 1;
	return 0;
}

/* Reads model/v/path into a memfd and compares: 0 same, 1 empty, -1
 * different or unreadable. */
static int compare(struct reg_registry *reg, const char *v, const char *path,
		   const struct content *c)
{
	struct stat st;
	uint8_t *buf;
	int fd, r, res = -1;

	fd = memfd_create("cat", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	r = reg_cat(reg, MODEL, v, path, fd);
	if (r == 0 && fstat(fd, &st) == 0) {
		if (st.st_size == 0) {
			res = 1;
		} else if ((size_t)st.st_size == c->size) {
			buf = malloc(c->size);
			if (buf && pread(fd, buf, c->size, 0) ==
			    (ssize_t)c->size)
				res = memcmp(buf, c->bytes, c->size) ? -1 : 0;
			free(buf);
		}
	}
	close(fd);
	return res;
}

struct files_arg {
	char *path[16];
	size_t n;
	bool overflow;
};

/* Collects the paths of a version's files (reading them inside the
 * listing's transaction would nest transactions). */
static int files_cb(void *arg, const struct reg_file_info *f)
{
	struct files_arg *a = arg;

	if (f->kind != REG_FILE)
		return 0;
	if (a->n == sizeof(a->path) / sizeof(a->path[0])) {
		a->overflow = true;
		return 1;
	}
	a->path[a->n] = strdup(f->path);
	if (!a->path[a->n])
		abort();
	a->n++;
	return 0;
}

/* Checks the files of version i against the states around the crash:
 * each file named in now must be there and read back as there (or, for a
 * file the operation under way rewrote, as in next); a file only next
 * names may be missing, or empty when empty_ok is set (the operation under
 * way created it, and the crash came before its commit). */
static void check_files(struct reg_registry *reg, int i,
			const struct vstate *now, const struct vstate *next,
			bool empty_ok, struct verdict *vd)
{
	struct files_arg fa = { .n = 0 };
	bool seen[NCONTENT] = { false }, named, must;
	char v[16];
	size_t j;
	int c, r, match;

	snprintf(v, sizeof(v), "%d", i);
	r = reg_files(reg, MODEL, v, files_cb, &fa);
	if (r < 0 || fa.overflow)
		bad(vd, "version %d cannot be listed: %s", i,
		    r < 0 ? strerror(-r) : "too many files");
	for (j = 0; j < fa.n; j++) {
		named = must = false;
		match = -1;
		for (c = 0; c < NCONTENT; c++) {
			if (strcmp(ct[c].name, fa.path[j]) != 0 ||
			    !(now->has[c] || next->has[c]))
				continue;
			named = true;
			must |= now->has[c];
			r = compare(reg, v, fa.path[j], &ct[c]);
			if (r == 0)
				match = c;
			else if (r == 1 && empty_ok && !now->has[c])
				match = match < 0 ? NCONTENT : match;
		}
		if (!named)
			bad(vd, "%d/%s should not exist", i, fa.path[j]);
		else if (match < 0 || (match == NCONTENT && must))
			bad(vd, "%d/%s reads back wrong", i, fa.path[j]);
		/* a name now holds is there, under one of its contents */
		for (c = 0; c < NCONTENT; c++)
			if (strcmp(ct[c].name, fa.path[j]) == 0)
				seen[c] = true;
		free(fa.path[j]);
	}
	for (c = 0; c < NCONTENT; c++)
		if (now->has[c] && !seen[c])
			bad(vd, "%d/%s is missing", i, ct[c].name);
}

struct hist_arg {
	char last[NSTAGES][130];
	int n;
	bool broken;
};

static int hist_cb(void *arg, const struct reg_history *h)
{
	struct hist_arg *a = arg;
	int s = stage_index(h->stage);

	if (strcmp(h->from, a->last[s]) != 0)
		a->broken = true;
	snprintf(a->last[s], sizeof(a->last[s]), "%s", h->to);
	a->n++;
	return 0;
}

static void fsck_cb(void *arg, const char *severity, const char *msg)
{
	struct verdict *vd = arg;

	if (strcmp(severity, "error") == 0)
		bad(vd, "fsck: %s", msg);
}

/* `mreg fsck --full` on the store as the crash left it: exit 0. */
static void cli_fsck(const char *store, struct verdict *vd)
{
	char *cmd;
	int st;

	if (!cli)
		return;
	if (asprintf(&cmd, "'%s' -q -c '%s/mreg.conf' --store '%s' fsck "
		     "--full >'%s/fsck.out' 2>&1", cli, root, store, root) < 0)
		abort();
	st = system(cmd);
	free(cmd);
	if (st != 0)
		bad(vd, "mreg fsck --full: status %d (see %s/fsck.out)",
		    WIFEXITED(st) ? WEXITSTATUS(st) : st, root);
}

/* k operations were acknowledged. */
static void verify(const char *store, int k, struct verdict *vd)
{
	const struct state *now = &states[k];
	const struct state *next = k < NOPS ? &states[k + 1] : NULL;
	struct reg_registry *reg;
	struct reg_gc_result g;
	struct hist_arg h;
	struct vinfo vi[NVERS + 1];
	char v[16], got[REG_NAME_MAX + 1], *src;
	const char *paths[1];
	int i, s, r, target;

	cli_fsck(store, vd);
	r = reg_open(&cfg, store, &reg);
	if (r < 0) {
		bad(vd, "the store does not open: %s", strerror(-r));
		return;
	}
	memset(vi, 0, sizeof(vi));
	for (i = 1; i <= NVERS; i++) {
		const struct vstate *a = &now->v[i];
		const struct vstate *b = next ? &next->v[i] : a;

		snprintf(v, sizeof(v), "%d", i);
		r = reg_version_info(reg, MODEL, v, vinfo_cb, &vi[i]);
		if (r < 0 && r != -ENOENT) {
			bad(vd, "version %d: %s", i, strerror(-r));
			continue;
		}
		if (vi[i].exists != a->exists &&
		    vi[i].exists != b->exists) {
			bad(vd, "version %d %s", i, vi[i].exists ?
			    "exists" : "is missing");
			continue;
		}
		if (!vi[i].exists)
			continue;
		if (!((a->exists && vi[i].sealed == a->sealed) ||
		      (b->exists && vi[i].sealed == b->sealed)))
			bad(vd, "version %d is %s", i, vi[i].sealed ?
			    "sealed" : "a draft");
		/* A version that a push under way made appears whole; one
		 * that a draft's first file made may hold that file empty. */
		check_files(reg, i, a->exists || (k < NOPS &&
			    ops[k].kind == OP_DRAFT_FILE) ? a : b, b,
			    k < NOPS && ops[k].kind == OP_DRAFT_FILE, vd);
	}
	for (s = 0; s < NSTAGES; s++) {
		target = 0;
		for (i = 1; i <= NVERS; i++)
			if (vi[i].stages[s])
				target = i;
		if (target != now->stage[s] &&
		    (!next || target != next->stage[s]))
			bad(vd, "stage %s points at %d", stage_names[s],
			    target);
		if (target && !vi[target].sealed)
			bad(vd, "stage %s points at draft %d", stage_names[s],
			    target);
	}
	memset(&h, 0, sizeof(h));
	r = reg_history(reg, MODEL, NULL, hist_cb, &h);
	if (r < 0 && r != -ENOENT)
		bad(vd, "history: %s", strerror(-r));
	if (h.broken)
		bad(vd, "the history is not a chain");

	r = reg_fsck(reg, REG_FSCK_FULL, fsck_cb, NULL, vd);
	if (r != 0)
		bad(vd, "fsck --full: %d", r);

	/* The store goes on working. */
	if (asprintf(&src, "%s/src/e.bin", root) < 0)
		abort();
	paths[0] = src;
	r = reg_push(reg, &me, MODEL, paths, 1, "6", NULL, 0, NULL, NULL,
		     got);
	free(src);
	if (r < 0)
		bad(vd, "a push after the crash fails: %s", strerror(-r));
	else if (compare(reg, "6", "e.bin", &ct[E]) != 0)
		bad(vd, "a push after the crash reads back wrong");
	r = reg_gc(reg, NULL, NULL, NULL, &g);
	if (r < 0)
		bad(vd, "gc after the crash fails: %s", strerror(-r));
	r = reg_fsck(reg, REG_FSCK_FULL, fsck_cb, NULL, vd);
	if (r != 0)
		bad(vd, "fsck --full after gc: %d", r);
	if (compare(reg, "6", "e.bin", &ct[E]) != 0)
		bad(vd, "the new version reads back wrong after gc");
	reg_close(reg);
}

/* ---- trials ------------------------------------------------------------ */

struct trial {
	const char *what;     /* "sync", "write" or "none" */
	uint64_t at, seed;
	uint64_t syncs, writes; /* counted by a run without a crash */
};

static int trial_no;

static void rmtree(const char *dir)
{
	check_rmtree(dir);
}

/* Runs one trial; returns false when it failed. */
static bool run_trial(struct trial *t)
{
	char *dir, *store, buf[32];
	struct verdict vd = { "", false };
	int fds[2], status, k = 0, msg, failed_op = -1;
	bool done = false;
	pid_t pid;

	trial_no++;
	if (asprintf(&dir, "%s/t%d", root, trial_no) < 0 ||
	    asprintf(&store, "%s/store", dir) < 0)
		abort();
	if (mkdir(dir, 0700) < 0 || pipe(fds) < 0)
		abort();
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		close(fds[0]);
		unsetenv("MREG_CRASH_AT");
		unsetenv("MREG_CRASH_WRITE");
		if (strcmp(t->what, "none") != 0) {
			snprintf(buf, sizeof(buf), "%llu",
				 (unsigned long long)t->at);
			setenv(strcmp(t->what, "sync") == 0 ?
			       "MREG_CRASH_AT" : "MREG_CRASH_WRITE", buf, 1);
			snprintf(buf, sizeof(buf), "%llu",
				 (unsigned long long)t->seed);
			setenv("MREG_CRASH_SEED", buf, 1);
		}
		child(store, fds[1]);
	}
	close(fds[1]);
	while (read(fds[0], &msg, sizeof(msg)) == sizeof(msg)) {
		if (msg >= 0) {
			k = msg + 1;
		} else if (msg == -1) {
			uint64_t st[2];

			if (read(fds[0], st, sizeof(st)) == sizeof(st)) {
				t->syncs = st[0];
				t->writes = st[1];
			}
			done = true;
		} else {
			failed_op = -2 - msg;
		}
	}
	close(fds[0]);
	if (waitpid(pid, &status, 0) < 0)
		abort();
	if (failed_op >= 0)
		bad(&vd, "the workload failed at operation %d without a "
		    "crash", failed_op);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == IO_CRASH_STATUS)
		verify(store, k, &vd);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && done)
		verify(store, NOPS, &vd);
	else
		bad(&vd, "the workload ended with status %#x", status);
	CHECK(!vd.bad, "crash at %s %llu (seed %llu): %d of %d operations "
	      "acknowledged%s%s", t->what, (unsigned long long)t->at,
	      (unsigned long long)t->seed, k, NOPS, vd.bad ? ": " : "",
	      vd.why);
	if (vd.bad)
		printf("#   replay: test-crash --%s %llu --crash-seed %llu\n",
		       strcmp(t->what, "none") ? t->what : "sync",
		       (unsigned long long)t->at,
		       (unsigned long long)t->seed);
	if (!vd.bad || !keep)
		rmtree(dir);
	else
		printf("#   kept in %s\n", dir);
	free(dir);
	free(store);
	return !vd.bad;
}

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 0x2545f4914f6cdd1dull;
}

static void usage(void)
{
	fprintf(stderr, "usage: test-crash [--random N] [--seed S] "
		"[--sync N | --write N] [--crash-seed S] [--keep] [-v]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct trial base = { "none", 0, 0, 0, 0 }, t;
	uint64_t random_n = 50, seed = 1, one = 0, one_seed = 0, x, n;
	const char *one_what = NULL, *tmp;
	char *src;
	int i, fd;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "-v") == 0) {
			verbose = true;
			continue;
		}
		if (strcmp(a, "--keep") == 0) {
			keep = true;
			continue;
		}
		if (!val)
			usage();
		i++;
		if (strcmp(a, "--random") == 0)
			random_n = strtoull(val, NULL, 10);
		else if (strcmp(a, "--seed") == 0)
			seed = strtoull(val, NULL, 10);
		else if (strcmp(a, "--sync") == 0 || strcmp(a, "--write") == 0)
			one_what = a + 2, one = strtoull(val, NULL, 10);
		else if (strcmp(a, "--crash-seed") == 0)
			one_seed = strtoull(val, NULL, 10);
		else
			usage();
	}
	if (!io_faults_built()) {
		printf("ok 1 - crash simulation # SKIP not a -DMREG_FAULTS "
		       "build\n");
		return 0;
	}
	/* The parent must never crash itself. */
	unsetenv("MREG_CRASH_AT");
	unsetenv("MREG_CRASH_WRITE");
	unsetenv("MREG_FAULT");
	io_faults_reload();
	if (verbose)
		setenv("MREG_CRASH_VERBOSE", "1", 1);
	log_set_level(verbose ? LOG_LVL_WARN : LOG_LVL_ERROR);

	/* Small chunks and packs: many chunks, several packs, rollovers. */
	config_init(&cfg);
	cfg.chunker.min_size = 4096;
	cfg.chunker.avg_size = 16384;
	cfg.chunker.max_size = 65536;
	cfg.pack_size = 256 << 10;
	reg_caller_self(&me);

	/* tmpfs when it is there: the index's fsyncs cost nothing there,
	 * and they are not what is tested. */
	tmp = getenv("TMPDIR");
	if (!tmp && access("/dev/shm", W_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	root = check_tmpdir("crash");
	/* The CLI next to the tests (tests/run.sh sets MREG_BUILD), with a
	 * config of the store's chunk sizes. */
	if (getenv("MREG_BUILD") &&
	    asprintf(&cli, "%s/mreg", getenv("MREG_BUILD")) >= 0 &&
	    access(cli, X_OK) < 0) {
		free(cli);
		cli = NULL;
	}
	if (asprintf(&src, "%s/mreg.conf", root) < 0)
		abort();
	fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || dprintf(fd, "[chunker]\nmin_size = %u\navg_size = %u\n"
			      "max_size = %u\n", cfg.chunker.min_size,
			      cfg.chunker.avg_size, cfg.chunker.max_size) < 0)
		abort();
	close(fd);
	free(src);
	printf("# mreg fsck --full: %s\n", cli ? cli : "not run (set "
	       "MREG_BUILD to the build directory)");
	make_contents();
	model_states();
	write_src();
	if (asprintf(&src, "%s/src/e.bin", root) < 0)
		abort();
	fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, ct[E].bytes, ct[E].size) !=
	    (ssize_t)ct[E].size)
		abort();
	close(fd);
	free(src);

	if (one_what) {
		t = (struct trial){ one_what, one, one_seed ? one_seed : one,
				    0, 0 };
		run_trial(&t);
		goto out;
	}
	if (!run_trial(&base) || !base.syncs)
		goto out;
	printf("# the workload: %d operations, %llu sync calls, %llu pack "
	       "writes\n", NOPS, (unsigned long long)base.syncs,
	       (unsigned long long)base.writes);
	for (n = 1; n <= base.syncs; n++) {
		t = (struct trial){ "sync", n, n, 0, 0 };
		run_trial(&t);
	}
	x = seed * 0x9e3779b97f4a7c15ull | 1;
	for (n = 0; n < random_n; n++) {
		bool w = next_rand(&x) & 1;

		t.what = w ? "write" : "sync";
		t.at = 1 + next_rand(&x) % (w ? base.writes : base.syncs);
		t.seed = next_rand(&x) % 1000000 + 1;
		run_trial(&t);
	}
out:
	if (!keep || !check_failed)
		rmtree(root);
	free(root);
	return check_done();
}
