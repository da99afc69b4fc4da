/* lookup.c — reading the namespace: lookup, getattr, readdir, readlink,
 * for the stored inodes and for the virtual ones (/, models, .mreg and
 * its files, .mreg/history/M: registry.h), which have no record. A
 * directory listing is read in one transaction when opened (reg_opendir)
 * so that a reader walking it in pieces sees one consistent listing. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static void virt_attr(uint64_t ino, struct reg_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->uid = geteuid();
	a->gid = getegid();
	a->nlink = 2;
	switch (ino) {
	case REG_ROOT_INO:
		a->kind = REG_ROOT;
		a->mode = S_IFDIR | 0755;
		break;
	case REG_MODELS_INO:
		/* like /tmp: any user of an allow_other mount may create a
		   model, and the sticky bit keeps them from removing the
		   models of others (the kernel checks it) */
		a->kind = REG_MODELS;
		a->mode = S_IFDIR | S_ISVTX | 0777;
		a->volatile_name = true;
		break;
	case REG_MREGDIR_INO:
		a->kind = REG_MREGDIR;
		a->mode = S_IFDIR | 0555;
		break;
	case REG_HISTDIR_INO:
		a->kind = REG_HISTDIR;
		a->mode = S_IFDIR | 0555;
		a->volatile_name = true; /* lists the models */
		break;
	case REG_AUDITLOG_INO:
		a->kind = REG_AUDITLOG;
		a->mode = S_IFREG | 0444;
		a->nlink = 1;
		a->volatile_name = true;
		break;
	default:
		a->kind = (ino & REG_HISTORY_BIT) ? REG_HISTFILE : REG_METRICS;
		a->mode = S_IFREG | 0444;
		a->nlink = 1;
		a->volatile_name = true;
	}
	clock_gettime(CLOCK_REALTIME, &a->mtime);
	a->atime = a->ctime = a->btime = a->mtime;
}

/* virt_attr() with the size of the files of .mreg/ (-ENOENT for the
 * history of what is not a model). */
static int virt_getattr(struct reg_registry *reg, uint64_t ino,
			struct reg_attr *a)
{
	virt_attr(ino, a);
	if (reg_ino_snapshot(ino))
		return reg_mregdir_file_size(reg, ino, &a->size);
	return 0;
}

/* .mreg/history/name: the history file of model name. */
static int history_lookup(struct reg_registry *reg, const char *name,
			  struct reg_attr *ret)
{
	struct reg_attr m;
	int r;

	if ((r = reg_lookup(reg, REG_MODELS_INO, name, &m)) < 0)
		return r;
	if (m.kind != REG_MODEL)
		return -ENOENT;
	return virt_getattr(reg, m.ino | REG_HISTORY_BIT, ret);
}

struct lookup_arg {
	uint64_t parent, ino;
	const char *name;
	struct inode_rec rec;
};

static int lookup_txn(struct idx_txn *t, void *arg)
{
	struct lookup_arg *a = arg;
	struct inode_rec p;
	uint64_t ino;
	int r;

	if (a->parent != REG_MODELS_INO) {
		r = reg_inode_get_txn(t, a->parent, &p);
		if (r < 0)
			return r;
		if (S_ISREG(p.mode) || S_ISLNK(p.mode))
			return -ENOTDIR;
	}
	r = reg_name_get_txn(t, a->parent, a->name, &ino);
	if (r < 0)
		return r;
	return reg_inode_get_txn(t, ino, &a->rec);
}

int reg_lookup(struct reg_registry *reg, uint64_t parent, const char *name,
	       struct reg_attr *ret)
{
	struct lookup_arg a = { .parent = parent, .name = name };
	uint64_t gen, since;
	int r, tries = 0;

	if (!reg || !name || !ret)
		return -EINVAL;
	if ((r = reg_check_fname(name)) < 0)
		return r;
	if (parent == REG_ROOT_INO) {
		if (strcmp(name, "models") == 0)
			virt_attr(REG_MODELS_INO, ret);
		else if (strcmp(name, ".mreg") == 0)
			virt_attr(REG_MREGDIR_INO, ret);
		else
			return -ENOENT;
		return 0;
	}
	if (parent == REG_MREGDIR_INO) {
		if (strcmp(name, "audit.log") == 0)
			return virt_getattr(reg, REG_AUDITLOG_INO, ret);
		if (strcmp(name, "metrics") == 0)
			return virt_getattr(reg, REG_METRICS_INO, ret);
		if (strcmp(name, "history") == 0)
			return virt_getattr(reg, REG_HISTDIR_INO, ret);
		return -ENOENT;
	}
	if (parent == REG_HISTDIR_INO)
		return history_lookup(reg, name, ret);
	if (reg_ino_virtual(parent) && parent != REG_MODELS_INO)
		return -ENOTDIR;
again:
	since = reg_writer_epoch(reg);
	/* sealed content from this host's copy; models and versions from
	   it too while the database is away (fixed.c) */
	if (reg_fixed_name(reg, parent, name, 0, &a.rec) < 0 &&
	    reg_current_get(reg, parent, name, 0, &a.rec, &gen) < 0 &&
	    !(reg_fixed_away(reg) &&
	      reg_fixed_name(reg, parent, name, -EIO, &a.rec) == 0)) {
		r = idx_read(reg->ix, lookup_txn, &a);
		reg_fixed_said(reg, r);
		if (r < 0 && reg_fixed_name(reg, parent, name, r, &a.rec) < 0)
			return r;
		if (r == 0) {
			reg_fixed_keep(reg, &a.rec);
			reg_current_put(reg, name, &a.rec, gen);
		}
	}
	reg_inode_attr(&a.rec, ret);
	if (reg_writer_size(reg, ret, since) && ++tries < 3)
		goto again;
	return 0;
}

struct getattr_arg {
	uint64_t ino;
	struct inode_rec rec;
};

static int getattr_txn(struct idx_txn *t, void *arg)
{
	struct getattr_arg *a = arg;

	return reg_inode_get_txn(t, a->ino, &a->rec);
}

/* a->ino's record: from this host's copy when sealed content (kept there
 * once read from the index), from what the daemon keeps while its watcher
 * vouches (current.c), or a model or version as last read while the
 * database is away (fixed.c) */
static int inode_read(struct reg_registry *reg, struct getattr_arg *a)
{
	int r;

	uint64_t gen;

	if (reg_fixed_inode(reg, a->ino, 0, &a->rec) == 0 ||
	    reg_current_get(reg, 0, NULL, a->ino, &a->rec, &gen) == 0 ||
	    (reg_fixed_away(reg) &&
	     reg_fixed_inode(reg, a->ino, -EIO, &a->rec) == 0))
		return 0;
	r = idx_read(reg->ix, getattr_txn, a);
	reg_fixed_said(reg, r);
	if (r < 0)
		return reg_fixed_inode(reg, a->ino, r, &a->rec) == 0 ? 0 : r;
	reg_fixed_keep(reg, &a->rec);
	reg_current_put(reg, NULL, &a->rec, gen);
	return 0;
}

int reg_getattr(struct reg_registry *reg, uint64_t ino, struct reg_attr *ret)
{
	struct getattr_arg a = { .ino = ino };
	uint64_t since;
	int r, tries = 0;

	if (!reg || !ret || ino == 0)
		return -EINVAL;
	if (reg_ino_virtual(ino))
		return virt_getattr(reg, ino, ret);
	do {
		/* a write state that ended while the record was read: its
		   commit may be newer than the record */
		since = reg_writer_epoch(reg);
		if ((r = inode_read(reg, &a)) < 0)
			return r;
		reg_inode_attr(&a.rec, ret);
	} while (reg_writer_size(reg, ret, since) && ++tries < 3);
	return 0;
}

/* An open listing of a directory. A listing read in pieces (the kernel
 * asks for a page at a time, and starts again in the middle of the last
 * piece when the reader's buffer was smaller) resumes after the *name* it
 * had reached, never at a count of entries: an entry added or removed
 * meanwhile cannot make the rest of the listing shift, so every entry
 * that is there throughout shows exactly once. Position p (p >= 1) is the
 * place after names[p - 1], the p-th entry this handle gave. */
struct reg_dir {
	struct reg_registry *reg;
	uint64_t ino;
	pthread_mutex_t lock;     /* one reader at a time */
	char **names;
	size_t n, cap;
};

struct readdir_arg {
	struct reg_dir *d;
	struct idx_txn *t;
	int (*fn)(void *arg, const char *name, const struct reg_attr *attr,
		  uint64_t next);
	void *arg;
	int err;
};

static int readdir_one(void *arg, const struct idx_val *k,
		       const struct idx_val *v)
{
	struct readdir_arg *a = arg;
	struct reg_dir *d = a->d;
	struct inode_rec rec;
	struct reg_attr attr;
	char name[256], *copy;
	uint64_t ino;
	size_t n = k->len - 8;

	if (n > 255 || v->len != 8)
		return a->err = -EIO;
	memcpy(name, (const char *)k->data + 8, n);
	name[n] = '\0';
	memcpy(&ino, v->data, 8);
	if ((a->err = reg_inode_get_txn(a->t, ino, &rec)) < 0)
		return a->err;
	if (d->ino == REG_HISTDIR_INO) {
		/* .mreg/history lists the models: their history files */
		struct strbuf sb = STRBUF_INIT;

		if (rec.kind != REG_MODEL)
			return 0;
		virt_attr(rec.ino | REG_HISTORY_BIT, &attr);
		a->err = reg_history_text_txn(a->t, rec.ino, &sb);
		attr.size = sb.len;
		strbuf_release(&sb);
		if (a->err < 0)
			return a->err;
	} else {
		reg_inode_attr(&rec, &attr);
		/* a listing is a snapshot: read again it is not */
		reg_writer_size(d->reg, &attr, reg_writer_epoch(d->reg));
	}
	if (ARRAY_GROW(d->names, d->cap, d->n) < 0 || !(copy = strdup(name)))
		return a->err = -ENOMEM;
	if (a->fn(a->arg, name, &attr, d->n + 1)) {
		free(copy); /* not taken: the next piece starts with it */
		return 1;
	}
	d->names[d->n++] = copy;
	return 0;
}

/* Lists, in t, the entries of the directory after where position pos is. */
static int readdir_txn(struct idx_txn *t, void *arg)
{
	struct readdir_arg *a = arg;
	struct reg_dir *d = a->d;
	struct inode_rec rec;
	uint8_t p[8], start[8 + 257];
	size_t slen = 0, n;
	int r;

	a->t = t;
	a->err = 0;
	if (d->ino != REG_MODELS_INO && d->ino != REG_HISTDIR_INO) {
		r = reg_inode_get_txn(t, d->ino, &rec);
		if (r < 0)
			return r;
		if (!S_ISDIR(rec.mode))
			return -ENOTDIR;
	}
	be64_put(p, d->ino == REG_HISTDIR_INO ? REG_MODELS_INO : d->ino);
	if (d->n) {
		/* the smallest key after (ino, name): name + NUL */
		n = strlen(d->names[d->n - 1]);
		memcpy(start, p, 8);
		memcpy(start + 8, d->names[d->n - 1], n);
		start[8 + n] = '\0';
		slen = 8 + n + 1;
	}
	idx_scan(t, IDX_NAMES, p, 8, slen ? start : NULL, slen, readdir_one,
		 a);
	return a->err < 0 ? a->err : 0;
}

int reg_opendir(struct reg_registry *reg, uint64_t ino, struct reg_dir **ret)
{
	struct reg_attr a;
	struct reg_dir *d;
	int r;

	if (!reg || !ret)
		return -EINVAL;
	r = reg_getattr(reg, ino, &a);
	if (r < 0)
		return r;
	if (!S_ISDIR(a.mode))
		return -ENOTDIR;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->reg = reg;
	d->ino = ino;
	pthread_mutex_init(&d->lock, NULL);
	*ret = d;
	return 0;
}

/* Forgets the names given after position pos (0: all of them). */
static void dir_rewind(struct reg_dir *d, uint64_t pos)
{
	while (d->n > pos)
		free(d->names[--d->n]);
}

void reg_closedir(struct reg_dir *d)
{
	if (!d)
		return;
	dir_rewind(d, 0);
	free(d->names);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* The fixed directories: "/" and .mreg/. */
static int readdir_virtual(struct reg_registry *reg, uint64_t ino, uint64_t pos,
			   int (*fn)(void *arg, const char *name,
				     const struct reg_attr *attr,
				     uint64_t next),
			   void *arg)
{
	static const struct { uint64_t dir, ino; const char *name; } virt[] = {
		{ REG_ROOT_INO, REG_MODELS_INO, "models" },
		{ REG_ROOT_INO, REG_MREGDIR_INO, ".mreg" },
		{ REG_MREGDIR_INO, REG_AUDITLOG_INO, "audit.log" },
		{ REG_MREGDIR_INO, REG_METRICS_INO, "metrics" },
		{ REG_MREGDIR_INO, REG_HISTDIR_INO, "history" },
	};
	struct reg_attr attr;
	uint64_t at = 0;
	size_t i;
	int r;

	for (i = 0; i < sizeof(virt) / sizeof(virt[0]); i++) {
		if (virt[i].dir != ino)
			continue;
		if (at++ < pos)
			continue;
		if ((r = virt_getattr(reg, virt[i].ino, &attr)) < 0)
			return r;
		if (fn(arg, virt[i].name, &attr, at))
			break;
	}
	return 0;
}

int reg_readdir(struct reg_dir *d, uint64_t pos,
		int (*fn)(void *arg, const char *name,
			  const struct reg_attr *attr, uint64_t next),
		void *arg)
{
	struct readdir_arg a = { .d = d, .fn = fn, .arg = arg };
	int r;

	if (!d || !fn)
		return -EINVAL;
	if (d->ino == REG_ROOT_INO || d->ino == REG_MREGDIR_INO)
		return readdir_virtual(d->reg, d->ino, pos, fn, arg);
	if (reg_ino_virtual(d->ino) && d->ino != REG_MODELS_INO &&
	    d->ino != REG_HISTDIR_INO)
		return -ENOTDIR;
	pthread_mutex_lock(&d->lock);
	if (pos > d->n) {
		/* not a place this handle gave: nothing more */
		pthread_mutex_unlock(&d->lock);
		return 0;
	}
	dir_rewind(d, pos);
	r = idx_read(d->reg->ix, readdir_txn, &a);
	pthread_mutex_unlock(&d->lock);
	return r;
}

int reg_readlink(struct reg_registry *reg, uint64_t ino, char *buf, size_t size)
{
	struct getattr_arg a = { .ino = ino };
	int r;

	if (!reg || !buf || reg_ino_virtual(ino))
		return -EINVAL;
	if ((r = inode_read(reg, &a)) < 0)
		return r;
	if (!S_ISLNK(a.rec.mode))
		return -EINVAL;
	if (strlen(a.rec.target_path) >= size)
		return -ERANGE;
	strcpy(buf, a.rec.target_path);
	return 0;
}

/* ---- a path to an inode ---------------------------------------------------- */

struct resolve_arg {
	const char *path;
	struct inode_rec rec;
};

static int resolve_txn(struct idx_txn *t, void *arg)
{
	struct resolve_arg *a = arg;
	char *copy = strdup(a->path), *save = NULL, *part;
	uint64_t cur = REG_MODELS_INO, ino;
	int r = -ENOENT, n = 0;

	if (!copy)
		return -ENOMEM;
	if (!copy[strspn(copy, "/")]) {
		free(copy);
		return -EINVAL;
	}
	for (part = strtok_r(copy, "/", &save); part;
	     part = strtok_r(NULL, "/", &save), n++) {
		if (n < 2 && reg_check_name(part) < 0 &&
		    !(n == 1 && strcmp(part, "stages") == 0)) {
			r = -EINVAL;
			break;
		}
		if (strlen(part) > 255) {
			r = -ENAMETOOLONG;
			break;
		}
		if ((r = reg_name_get_txn(t, cur, part, &ino)) < 0 ||
		    (r = reg_inode_get_txn(t, ino, &a->rec)) < 0)
			break;
		/* stages/S: follow the stage to its version */
		if (a->rec.kind == REG_STAGE &&
		    (r = reg_inode_get_txn(t, a->rec.target, &a->rec)) < 0)
			break;
		cur = a->rec.ino;
	}
	free(copy);
	return r;
}

int reg_resolve(struct reg_registry *reg, const char *path,
		struct reg_attr *ret)
{
	struct resolve_arg a = { .path = path };
	int r;

	if (!reg || !path || !ret)
		return -EINVAL;
	r = idx_read(reg->ix, resolve_txn, &a);
	if (r < 0)
		return r;
	reg_inode_attr(&a.rec, ret);
	return 0;
}
