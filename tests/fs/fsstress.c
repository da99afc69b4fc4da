/* fsstress.c — a small file system stress tool in the spirit of xfstests'
 * fsstress (which Debian does not package).
 *
 * N processes each run a seeded random mix of operations in a directory
 * of their own (DIR/p0, DIR/p1, ...): create, open (some with O_TRUNC),
 * write (as fsstress: open the file, lseek to a random offset, write,
 * close), pwrite and ftruncate through descriptors held open, read,
 * truncate, fsync, close, rename (some over an existing name), unlink
 * (also of files still open), mkdir, rmdir, symlink, stat. As in
 * fsstress, a write or a truncation lands anywhere up to a MiB past the
 * file's end, so files grow sparse and are rewritten in place. Nothing is
 * checked: a failing call is part of the mix.
 *
 * With -c NATIVE the same run (the same seed) is made in NATIVE too, and
 * the two are compared: the result of every operation (its value or
 * errno, and for a read a hash of the bytes read), then the trees (types,
 * sizes, bytes — a hole reads as zeros —, symlink targets). Any
 * difference is printed; the exit status is then 1.
 *
 * usage: fsstress -d DIR [-p PROCS] [-n OPS] [-s SEED] [-m MAXSIZE]
 *                 [-c NATIVE]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NFD 8                  /* files a process holds open at once */
#define MAX_WRITE (128u << 10) /* bytes of one write or read */
#define PATH_LEN 256

enum op {
	OP_CREAT, OP_OPEN, OP_WRITE, OP_PWRITE, OP_READ, OP_TRUNCATE,
	OP_FTRUNCATE, OP_FSYNC, OP_CLOSE, OP_RENAME, OP_UNLINK, OP_MKDIR,
	OP_RMDIR, OP_SYMLINK, OP_STAT, OP_COUNT
};

static const struct {
	const char *name;
	int weight;
} ops[OP_COUNT] = {
	[OP_CREAT] = { "creat", 4 },     [OP_OPEN] = { "open", 3 },
	[OP_WRITE] = { "write", 8 },     [OP_PWRITE] = { "pwrite", 8 },
	[OP_READ] = { "read", 6 },       [OP_TRUNCATE] = { "truncate", 3 },
	[OP_FTRUNCATE] = { "ftruncate", 2 }, [OP_FSYNC] = { "fsync", 2 },
	[OP_CLOSE] = { "close", 4 },     [OP_RENAME] = { "rename", 3 },
	[OP_UNLINK] = { "unlink", 2 },   [OP_MKDIR] = { "mkdir", 2 },
	[OP_RMDIR] = { "rmdir", 1 },     [OP_SYMLINK] = { "symlink", 2 },
	[OP_STAT] = { "stat", 2 },
};

struct ent {
	char path[PATH_LEN];       /* relative to the process's directory */
	char type;                 /* 'f', 'd', 'l' */
};

struct proc {
	uint64_t rng;
	struct ent *v;
	size_t n, cap;
	int fd[NFD];
	unsigned next_name;
	uint64_t maxsize;
	uint8_t *buf;
};

/* What one operation gave: its result and, for a read, a hash. */
struct result {
	int32_t op;
	int32_t ret;
	uint32_t hash;
};

static uint64_t rnd(struct proc *p)
{
	/* xorshift64* */
	p->rng ^= p->rng >> 12;
	p->rng ^= p->rng << 25;
	p->rng ^= p->rng >> 27;
	return p->rng * 0x2545f4914f6cdd1dULL;
}

static uint32_t fnv(const uint8_t *b, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *b++) * 16777619u;
	return h;
}

static int ret_of(long r)
{
	return r < 0 ? -errno : r > INT32_MAX ? INT32_MAX : (int)r;
}

static void ent_add(struct proc *p, const char *path, char type)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->v = realloc(p->v, p->cap * sizeof(*p->v));
		if (!p->v)
			abort();
	}
	snprintf(p->v[p->n].path, PATH_LEN, "%s", path);
	p->v[p->n++].type = type;
}

static void ent_del(struct proc *p, size_t i)
{
	p->v[i] = p->v[--p->n];
}

static long ent_find(struct proc *p, const char *path)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (!strcmp(p->v[i].path, path))
			return (long)i;
	return -1;
}

/* A random entry of type t (any type: 0), or -1. "." is the process's
 * directory: a directory that is never removed or renamed. */
static long pick(struct proc *p, char t)
{
	size_t i, k = 0, want;

	for (i = 0; i < p->n; i++)
		k += !t || p->v[i].type == t;
	if (!k)
		return -1;
	want = rnd(p) % k;
	for (i = 0; i < p->n; i++)
		if ((!t || p->v[i].type == t) && want-- == 0)
			return (long)i;
	return -1;
}

/* A directory for a new entry: ".", or one of the process's. */
static const char *pick_dir(struct proc *p)
{
	long d = rnd(p) % 3 ? pick(p, 'd') : -1;

	return d < 0 ? "." : p->v[d].path;
}

static void new_name(struct proc *p, char prefix, char *buf)
{
	const char *d = pick_dir(p);

	if (strlen(d) > PATH_LEN - 32)
		d = ".";
	snprintf(buf, PATH_LEN, "%s/%c%u", d, prefix, p->next_name++);
}

/* Do the names under directory from still fit once it is renamed to? */
static bool fits(struct proc *p, const char *from, const char *to)
{
	size_t i, n = strlen(from);

	for (i = 0; i < p->n; i++)
		if (!strncmp(p->v[i].path, from, n) && p->v[i].path[n] == '/' &&
		    strlen(to) + strlen(p->v[i].path + n) >= PATH_LEN)
			return false;
	return true;
}

/* A held descriptor, or -1. */
static int pick_fd(struct proc *p)
{
	int i, k = 0, want;

	for (i = 0; i < NFD; i++)
		k += p->fd[i] >= 0;
	if (!k)
		return -1;
	want = (int)(rnd(p) % (uint64_t)k);
	for (i = 0; i < NFD; i++)
		if (p->fd[i] >= 0 && want-- == 0)
			return i;
	return -1;
}

static void hold(struct proc *p, int fd)
{
	int i;

	for (i = 0; i < NFD && p->fd[i] >= 0; i++)
		;
	if (i == NFD) {
		/* full: the oldest goes */
		i = 0;
		close(p->fd[0]);
	}
	p->fd[i] = fd;
}

static void fill(struct proc *p, size_t len)
{
	size_t i;
	uint64_t x = rnd(p);

	if (x % 5 == 0) {
		memset(p->buf, 0, len); /* zeros written are data too */
		return;
	}
	for (i = 0; i < len; i++) {
		if (i % 8 == 0)
			x = rnd(p);
		p->buf[i] = (uint8_t)(x >> (i % 8 * 8));
	}
}

/* A random offset up to a MiB past the end of fd's file, as fsstress. */
static uint64_t pick_off(struct proc *p, int fd, size_t len)
{
	struct stat st;
	uint64_t span = (1u << 20), off;

	if (fstat(fd, &st) == 0)
		span += (uint64_t)st.st_size;
	off = rnd(p) % span;
	if (off + len > p->maxsize)
		off = p->maxsize > len ? p->maxsize - len : 0;
	return off;
}

static void one_op(struct proc *p, enum op op, struct result *res)
{
	char path[PATH_LEN], path2[PATH_LEN];
	long i, j, r = 0;
	int k, fd;
	size_t len;
	uint64_t off;
	struct stat st;

	res->op = op;
	res->hash = 0;
	switch (op) {
	case OP_CREAT:
		new_name(p, 'f', path);
		r = fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0644);
		if (fd >= 0) {
			ent_add(p, path, 'f');
			hold(p, fd);
			r = 0;
		}
		break;
	case OP_OPEN:
		if ((i = pick(p, 'f')) < 0)
			break;
		r = fd = open(p->v[i].path,
			      O_RDWR | (rnd(p) % 8 == 0 ? O_TRUNC : 0));
		if (fd >= 0) {
			hold(p, fd);
			r = 0;
		}
		break;
	case OP_WRITE:
		/* as fsstress: open the file, write, close it */
		if ((i = pick(p, 'f')) < 0)
			break;
		if ((r = fd = open(p->v[i].path, O_WRONLY)) < 0)
			break;
		len = 1 + rnd(p) % MAX_WRITE;
		off = pick_off(p, fd, len);
		fill(p, len);
		r = lseek(fd, (off_t)off, SEEK_SET);
		if (r >= 0)
			r = write(fd, p->buf, len);
		if (close(fd) < 0 && r >= 0)
			r = -1;
		break;
	case OP_PWRITE:
		/* through a descriptor held open */
		if ((k = pick_fd(p)) < 0)
			break;
		len = 1 + rnd(p) % MAX_WRITE;
		off = pick_off(p, p->fd[k], len);
		fill(p, len);
		r = pwrite(p->fd[k], p->buf, len, (off_t)off);
		break;
	case OP_READ:
		if ((i = pick(p, 'f')) < 0)
			break;
		if ((r = fd = open(p->v[i].path, O_RDONLY)) < 0)
			break;
		len = 1 + rnd(p) % MAX_WRITE;
		off = pick_off(p, fd, 0);
		r = pread(fd, p->buf, len, (off_t)off);
		if (r > 0)
			res->hash = fnv(p->buf, (size_t)r);
		close(fd);
		break;
	case OP_TRUNCATE:
		if ((i = pick(p, 'f')) < 0)
			break;
		r = stat(p->v[i].path, &st);
		if (r == 0)
			r = truncate(p->v[i].path, (off_t)(rnd(p) %
					((uint64_t)st.st_size + (1u << 20))));
		break;
	case OP_FTRUNCATE:
		if ((k = pick_fd(p)) < 0)
			break;
		r = ftruncate(p->fd[k], (off_t)pick_off(p, p->fd[k], 0));
		break;
	case OP_FSYNC:
		if ((i = pick(p, 'f')) < 0)
			break;
		if ((r = fd = open(p->v[i].path, O_WRONLY)) < 0)
			break;
		r = fsync(fd);
		close(fd);
		break;
	case OP_CLOSE:
		if ((k = pick_fd(p)) >= 0) {
			r = close(p->fd[k]);
			p->fd[k] = -1;
		}
		break;
	case OP_RENAME:
		if ((i = pick(p, 0)) < 0)
			break;
		j = rnd(p) % 4 == 0 ? pick(p, p->v[i].type) : -1;
		if (j >= 0)
			snprintf(path2, PATH_LEN, "%s", p->v[j].path);
		else
			new_name(p, p->v[i].type, path2);
		snprintf(path, PATH_LEN, "%s", p->v[i].path);
		if (!fits(p, path, path2))
			break; /* names would get too long to track */
		r = rename(path, path2);
		if (r == 0 && strcmp(path, path2)) {
			size_t n = strlen(path);

			if ((j = ent_find(p, path2)) >= 0)
				ent_del(p, (size_t)j);
			for (j = 0; j < (long)p->n; j++) {
				char *q = p->v[j].path;

				if (!strcmp(q, path)) {
					snprintf(q, PATH_LEN, "%s", path2);
				} else if (!strncmp(q, path, n) &&
					   q[n] == '/') {
					/* under the directory renamed */
					size_t l2 = strlen(path2);
					size_t lr = strlen(q + n);

					memmove(q + l2, q + n, lr + 1);
					memcpy(q, path2, l2);
				}
			}
		}
		break;
	case OP_UNLINK:
		if ((i = pick(p, rnd(p) % 3 ? 'f' : 'l')) < 0)
			break;
		r = unlink(p->v[i].path);
		if (r == 0)
			ent_del(p, (size_t)i);
		break;
	case OP_MKDIR:
		new_name(p, 'd', path);
		r = mkdir(path, 0755);
		if (r == 0)
			ent_add(p, path, 'd');
		break;
	case OP_RMDIR:
		if ((i = pick(p, 'd')) < 0)
			break;
		r = rmdir(p->v[i].path);
		if (r == 0)
			ent_del(p, (size_t)i);
		break;
	case OP_SYMLINK: {
		/* a relative link to a neighbour (or to nothing) */
		const char *target;

		new_name(p, 'l', path);
		i = pick(p, 0);
		target = i >= 0 && rnd(p) % 4 ? strrchr(p->v[i].path, '/') + 1 :
						"missing";
		r = symlink(target, path);
		if (r == 0)
			ent_add(p, path, 'l');
		break;
	}
	case OP_STAT:
		if ((i = pick(p, 0)) >= 0)
			r = lstat(p->v[i].path, &st) == 0 ?
			    (p->v[i].type == 'f' ? (long)st.st_size : 0) : -1;
		break;
	case OP_COUNT:
		break;
	}
	res->ret = ret_of(r);
}

static int pick_op(struct proc *p)
{
	int total = 0, i, x;

	for (i = 0; i < OP_COUNT; i++)
		total += ops[i].weight;
	x = (int)(rnd(p) % (uint64_t)total);
	for (i = 0; i < OP_COUNT; i++) {
		if (x < ops[i].weight)
			return i;
		x -= ops[i].weight;
	}
	return OP_STAT;
}

static void run_proc(const char *dir, int id, long nops, uint64_t seed,
		     uint64_t maxsize, struct result *res)
{
	struct proc p = { .maxsize = maxsize };
	char sub[PATH_LEN];
	long i;

	p.rng = (seed + 1) * 0x9e3779b97f4a7c15ULL + (uint64_t)id * 7919 + 1;
	p.buf = malloc(MAX_WRITE);
	if (!p.buf)
		abort();
	for (i = 0; i < NFD; i++)
		p.fd[i] = -1;
	snprintf(sub, sizeof(sub), "%s/p%d", dir, id);
	if ((mkdir(sub, 0755) < 0 && errno != EEXIST) || chdir(sub) < 0) {
		fprintf(stderr, "fsstress: cannot use '%s': %s\n", sub,
			strerror(errno));
		_exit(2);
	}
	for (i = 0; i < nops; i++)
		one_op(&p, (enum op)pick_op(&p), &res[i]);
	_exit(0);
}

/* Runs every process in dir; their results go to res (procs x nops). */
static int run_all(const char *dir, int nproc, long nops, uint64_t seed,
		   uint64_t maxsize, struct result *res)
{
	int i, st, bad = 0;
	pid_t pid;

	for (i = 0; i < nproc; i++) {
		pid = fork();
		if (pid < 0) {
			perror("fsstress: fork");
			return -1;
		}
		if (pid == 0)
			run_proc(dir, i, nops, seed, maxsize,
				 res + (size_t)i * (size_t)nops);
	}
	for (i = 0; i < nproc; i++)
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			bad = 1;
	return bad ? -1 : 0;
}

/* ---- comparing two trees -------------------------------------------- */

static int diffs;

static void differ(const char *path, const char *what)
{
	if (diffs++ < 50)
		printf("differ: %s: %s\n", path, what);
}

static off_t next_data(int fd, off_t pos, off_t size)
{
	off_t d = lseek(fd, pos, SEEK_DATA);

	return d < 0 ? size : d; /* ENXIO: only a hole follows */
}

/* Compares two files' bytes, reading only where either has data. */
static void cmp_files(const char *path, const char *a, const char *b)
{
	int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
	static uint8_t ba[1u << 20], bb[1u << 20];
	struct stat sa, sb;
	off_t pos = 0, d, db;
	ssize_t na, nb;

	if (fa < 0 || fb < 0 || fstat(fa, &sa) || fstat(fb, &sb)) {
		differ(path, "cannot open or stat");
		goto out;
	}
	if (sa.st_size != sb.st_size) {
		differ(path, "sizes differ");
		goto out;
	}
	while (pos < sa.st_size) {
		d = next_data(fa, pos, sa.st_size);
		db = next_data(fb, pos, sa.st_size);
		if (db < d)
			d = db;
		if (d >= sa.st_size)
			break;
		na = pread(fa, ba, sizeof(ba), d);
		nb = pread(fb, bb, sizeof(bb), d);
		if (na <= 0 || na != nb || memcmp(ba, bb, (size_t)na)) {
			differ(path, "bytes differ");
			break;
		}
		pos = d + na;
	}
out:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **list_dir(const char *dir, size_t *ret_n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL;
	size_t n = 0;

	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		v = realloc(v, (n + 1) * sizeof(*v));
		if (!v || !(v[n++] = strdup(e->d_name)))
			abort();
	}
	if (d)
		closedir(d);
	if (n > 0)  /* an empty directory: v is NULL, which qsort may not get */
		qsort(v, n, sizeof(*v), name_cmp);
	*ret_n = n;
	return v;
}

static void cmp_trees(const char *rel, const char *a, const char *b)
{
	size_t na, nb, i = 0, j = 0;
	char **la = list_dir(a, &na), **lb = list_dir(b, &nb);

	while (i < na || j < nb) {
		int c = i >= na ? 1 : j >= nb ? -1 : strcmp(la[i], lb[j]);
		char r[4096], pa[4096], pb[4096];
		struct stat sa, sb;

		if (c) {
			snprintf(r, sizeof(r), "%s/%s", rel,
				 c < 0 ? la[i] : lb[j]);
			differ(r, c < 0 ? "only in the first tree" :
					  "only in the second tree");
			c < 0 ? i++ : j++;
			continue;
		}
		snprintf(r, sizeof(r), "%s/%s", rel, la[i]);
		snprintf(pa, sizeof(pa), "%s/%s", a, la[i]);
		snprintf(pb, sizeof(pb), "%s/%s", b, lb[j]);
		i++;
		j++;
		if (lstat(pa, &sa) || lstat(pb, &sb) ||
		    (sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) {
			differ(r, "types differ");
		} else if (S_ISDIR(sa.st_mode)) {
			cmp_trees(r, pa, pb);
		} else if (S_ISREG(sa.st_mode)) {
			cmp_files(r, pa, pb);
		} else if (S_ISLNK(sa.st_mode)) {
			char ta[4096] = "", tb[4096] = "";

			if (readlink(pa, ta, sizeof(ta) - 1) < 0 ||
			    readlink(pb, tb, sizeof(tb) - 1) < 0 ||
			    strcmp(ta, tb))
				differ(r, "link targets differ");
		}
	}
	for (i = 0; i < na; i++)
		free(la[i]);
	for (j = 0; j < nb; j++)
		free(lb[j]);
	free(la);
	free(lb);
}

static void cmp_results(const struct result *a, const struct result *b,
			int nproc, long nops)
{
	long i;
	int k;

	for (k = 0; k < nproc; k++)
		for (i = 0; i < nops; i++) {
			const struct result *x = &a[k * nops + i];
			const struct result *y = &b[k * nops + i];
			char what[128];

			if (x->ret == y->ret && x->hash == y->hash)
				continue;
			snprintf(what, sizeof(what), "operation %ld (%s): %d "
				 "(hash %08x), natively %d (hash %08x)", i,
				 ops[x->op].name, x->ret, x->hash, y->ret,
				 y->hash);
			{
				char who[32];

				snprintf(who, sizeof(who), "process %d", k);
				differ(who, what);
			}
		}
}

static void usage(void)
{
	fprintf(stderr, "usage: fsstress -d DIR [-p PROCS] [-n OPS] "
		"[-s SEED] [-m MAXSIZE] [-c NATIVE]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *native = NULL;
	long nops = 100;
	int nproc = 1, c;
	uint64_t seed = 1, maxsize = 1ULL << 30;
	struct result *res, *nres = NULL;
	size_t bytes;

	while ((c = getopt(argc, argv, "d:p:n:s:m:c:")) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'p': nproc = atoi(optarg); break;
		case 'n': nops = atol(optarg); break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'm': maxsize = strtoull(optarg, NULL, 0); break;
		case 'c': native = optarg; break;
		default: usage();
		}
	}
	if (!dir || nproc < 1 || nproc > 1000 || nops < 0 || optind != argc ||
	    maxsize < MAX_WRITE)
		usage();
	bytes = (size_t)nproc * (size_t)nops * sizeof(*res) + 1;
	res = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (native)
		nres = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED || nres == MAP_FAILED) {
		perror("fsstress: mmap");
		return 2;
	}
	if (run_all(dir, nproc, nops, seed, maxsize, res) < 0) {
		fprintf(stderr, "fsstress: a process failed in '%s'\n", dir);
		return 2;
	}
	if (!native)
		return 0;
	if (run_all(native, nproc, nops, seed, maxsize, nres) < 0) {
		fprintf(stderr, "fsstress: a process failed in '%s'\n",
			native);
		return 2;
	}
	cmp_results(res, nres, nproc, nops);
	cmp_trees(".", dir, native);
	if (diffs) {
		printf("fsstress: %d differences between '%s' and '%s'\n",
		       diffs, dir, native);
		return 1;
	}
	printf("fsstress: %d processes x %ld operations: '%s' and '%s' "
	       "agree\n", nproc, nops, dir, native);
	return 0;
}
