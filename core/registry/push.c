/* push.c — registering files and directories without a mount
 * (`mreg push`): every file is chunked and stored first, the chunks synced
 * once, and then one transaction creates the version, its tree and its
 * metadata, and seals it. A push that fails or is killed leaves no version,
 * only unreferenced chunks for gc.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

struct push_ent {
	char *rel;            /* path inside the version */
	char *src;            /* path on disk */
	enum reg_kind kind;
	mode_t mode;
	uint64_t size;
	char *target;         /* symlinks */
	struct ingest in;
	uint64_t ino;         /* directories: made by this run of push_txn */
};

struct push {
	struct reg_registry *reg;
	const struct reg_caller *who;
	const char *model, *version;
	const struct reg_kv *meta;
	size_t nmeta;
	struct push_ent *v;
	size_t n, cap;
	uint64_t total, done;
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *parg;
	char result[REG_NAME_MAX + 1];
};

static int push_add(struct push *p, const char *rel, const char *src,
		    const struct stat *st)
{
	struct push_ent *e;
	size_t i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->v[i].rel, rel) == 0)
			return log_err(-EEXIST, "'%s' is given twice", rel);
	if (ARRAY_GROW(p->v, p->cap, p->n) < 0)
		return -ENOMEM;
	e = &p->v[p->n];
	memset(e, 0, sizeof(*e));
	e->rel = strdup(rel);
	e->src = strdup(src);
	if (!e->rel || !e->src) {
		free(e->rel);
		free(e->src);
		return -ENOMEM;
	}
	e->mode = st->st_mode & 07777;
	if (S_ISREG(st->st_mode)) {
		e->kind = REG_FILE;
		e->size = (uint64_t)st->st_size;
		p->total += e->size;
	} else if (S_ISDIR(st->st_mode)) {
		e->kind = REG_DIR;
	} else {
		char buf[4096];
		ssize_t n = readlink(src, buf, sizeof(buf) - 1);

		if (n < 0) {
			int r = -errno;

			free(e->rel);
			free(e->src);
			return log_err(r, "cannot read link '%s'", src);
		}
		buf[n] = '\0';
		e->kind = REG_SYMLINK;
		e->target = strdup(buf);
	}
	p->n++;
	return 0;
}

static int walk_dir(struct push *p, const char *src, const char *rel,
		    int depth)
{
	struct dirent **list;
	struct stat st;
	int n, i, r = 0;

	if (depth > REG_DEPTH_MAX)
		return log_err(-ENAMETOOLONG, "'%.200s%s' is nested too deep "
			       "(more than %d directories)", src,
			       strlen(src) > 200 ? "..." : "", REG_DEPTH_MAX);
	n = scandir(src, &list, NULL, alphasort);
	if (n < 0)
		return log_err(-errno, "cannot read directory '%s'", src);
	for (i = 0; i < n; i++) {
		const char *name = list[i]->d_name;
		char *s = NULL, *sub = NULL;

		if (r < 0 || !strcmp(name, ".") || !strcmp(name, ".."))
			goto next;
		if (strlen(name) > REG_FNAME_MAX) {
			r = log_err(-ENAMETOOLONG, "name too long in '%s'",
				    src);
			goto next;
		}
		if (asprintf(&s, "%s/%s", src, name) < 0 ||
		    asprintf(&sub, "%s%s%s", rel, *rel ? "/" : "", name) < 0) {
			r = -ENOMEM;
			goto next;
		}
		if (lstat(s, &st) < 0) {
			r = log_err(-errno, "cannot read '%s'", s);
			goto next;
		}
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) &&
		    !S_ISLNK(st.st_mode)) {
			r = log_err(-EINVAL, "'%s' is not a file, directory "
				    "or symlink", s);
			goto next;
		}
		r = push_add(p, sub, s, &st);
		if (r == 0 && S_ISDIR(st.st_mode))
			r = walk_dir(p, s, sub, depth + 1);
next:
		free(s);
		free(sub);
		free(list[i]);
	}
	free(list);
	return r;
}

static void push_progress(void *arg, uint64_t n)
{
	struct push *p = arg;

	p->done += n;
	if (p->progress)
		p->progress(p->parg, p->done, p->total);
}

/* The directory inode that holds rel inside version v. */
static int parent_of_txn(struct idx_txn *t, uint64_t v, const char *rel,
			 uint64_t *ret, const char **ret_base)
{
	char buf[4096], *s, *slash;
	uint64_t cur = v;
	int r;

	if (strlen(rel) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, rel);
	s = buf;
	while ((slash = strchr(s, '/'))) {
		*slash = '\0';
		if ((r = reg_name_get_txn(t, cur, s, &cur)) < 0)
			return r;
		s = slash + 1;
	}
	*ret = cur;
	*ret_base = rel + (s - buf);
	return 0;
}

/* The directory entry i goes in: made earlier in this transaction (the
 * walk lists a directory before what it holds, so it is found a few
 * entries back), else asked of the index. A tree 1,024 deep would
 * otherwise cost half a million lookups: with the index in PostgreSQL,
 * as many round trips. */
static int parent_dir_txn(struct idx_txn *t, const struct push *p, size_t i,
			  uint64_t v, uint64_t *ret, const char **ret_base)
{
	const char *rel = p->v[i].rel, *slash = strrchr(rel, '/');
	size_t dlen, j;

	if (!slash) {
		*ret = v;
		*ret_base = rel;
		return 0;
	}
	dlen = (size_t)(slash - rel);
	for (j = i; j-- > 0;) {
		const struct push_ent *d = &p->v[j];

		if (d->kind == REG_DIR && d->ino && strlen(d->rel) == dlen &&
		    !memcmp(d->rel, rel, dlen)) {
			*ret = d->ino;
			*ret_base = slash + 1;
			return 0;
		}
	}
	return parent_of_txn(t, v, rel, ret, ret_base);
}

static int push_txn(struct idx_txn *t, void *arg)
{
	struct push *p = arg;
	struct inode_rec m, v, e, d;
	char name[REG_NAME_MAX + 1];
	uint64_t ino, parent;
	const char *base;
	size_t i;
	int r;

	r = reg_model_get_txn(t, p->model, &m);
	if (r == -ENOENT)
		r = reg_model_create_txn(t, p->who, p->model, 0777, &m);
	if (r < 0)
		return r;
	if (p->version) {
		if (reg_check_name(p->version) < 0)
			return -EINVAL;
		strlcpy(name, p->version, sizeof(name));
	} else {
		reg_version_next_name(&m, name, sizeof(name));
	}
	if ((r = reg_version_create_txn(t, p->who, &m, name, 0777, &v)) < 0)
		return r;
	for (i = 0; i < p->n; i++)
		p->v[i].ino = 0; /* a rerun makes them again */
	for (i = 0; i < p->n; i++) {
		struct push_ent *pe = &p->v[i];

		if ((r = parent_dir_txn(t, p, i, v.ino, &parent, &base)) < 0)
			return r;
		if ((r = reg_inode_alloc_txn(t, &ino)) < 0)
			return r;
		if (pe->kind == REG_DIR)
			pe->ino = ino;
		reg_inode_init(&e, ino, pe->kind, p->who, pe->mode, parent,
			       m.ino, v.ino, base);
		if (pe->kind == REG_SYMLINK) {
			if (parent == v.ino) {
				r = 0;
			} else {
				if ((r = reg_inode_get_txn(t, parent, &d)) < 0)
					return r;
				r = reg_depth_txn(t, &d);
			}
			if (r < 0)
				return r;
			if (reg_check_link_target(pe->target, r) < 0) {
				log_err(-EINVAL, "symlink '%s' points outside "
					"the version", pe->rel);
				return -EINVAL;
			}
			strlcpy(e.target_path, pe->target,
				sizeof(e.target_path));
			e.size = strlen(pe->target);
		} else if (pe->kind == REG_FILE) {
			if ((r = reg_ingest_apply_txn(p->reg, t, &pe->in,
						      ino)) < 0)
				return r;
			e.size = pe->in.size;
			e.digest = pe->in.digest;
			v.stored += pe->in.new_bytes;
		}
		if ((r = reg_inode_put_txn(t, &e)) < 0 ||
		    (r = reg_name_put_txn(t, parent, base, ino,
					  IDX_NOOVERWRITE)) < 0)
			return r;
	}
	for (i = 0; i < p->nmeta; i++) {
		const char *val = p->meta[i].value;

		r = reg_meta_set_txn(t, p->who, &v, p->meta[i].key, val,
				     strlen(val), 0);
		if (r < 0)
			return log_err(r, "cannot set '%s'", p->meta[i].key);
	}
	if ((r = reg_inode_put_txn(t, &v)) < 0)
		return r;
	if ((r = reg_seal_txn(p->reg, t, p->who, &v)) < 0)
		return r;
	strlcpy(p->result, name, sizeof(p->result));
	return reg_audit_put_txn(t, p->who, &(struct audit_ev){
		.op = "register", .model = m.name, .version = name,
		.path = "(push)" });
}

static int ingest_all(struct push *p)
{
	size_t i;
	int fd, r;

	p->done = 0;
	for (i = 0; i < p->n; i++) {
		struct push_ent *e = &p->v[i];
		struct stat st;

		reg_ingest_release(&e->in);
		if (e->kind != REG_FILE)
			continue;
		fd = open(e->src, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return log_err(-errno, "cannot open '%s'", e->src);
		if (fstat(fd, &st) < 0) {
			r = -errno;
			close(fd);
			return r;
		}
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		e->size = (uint64_t)st.st_size;
		r = reg_ingest_fd(p->reg, fd, e->size, &e->in, push_progress,
				  p);
		close(fd);
		if (r < 0)
			return r == -ENOSPC || r == -EIO ? r :
			       log_err(r, "cannot store '%s'", e->src);
	}
	return store_sync(p->reg->st);
}

int reg_push(struct reg_registry *reg, const struct reg_caller *who,
	     const char *model, const char *const *paths, size_t npaths,
	     const char *version, const struct reg_kv *meta, size_t nmeta,
	     void (*progress)(void *arg, uint64_t done, uint64_t total),
	     void *parg, char *ret_version)
{
	struct push p = { .reg = reg, .who = who, .model = model,
			  .version = version, .meta = meta, .nmeta = nmeta,
			  .progress = progress, .parg = parg };
	struct stat st;
	size_t i;
	int r = 0, tries;

	if (!reg || !who || !model || !paths || !npaths)
		return -EINVAL;
	if (reg_check_name(model) < 0 || (version && reg_check_name(version) < 0))
		return -EINVAL;
	for (i = 0; i < npaths && r == 0; i++) {
		char *copy;

		if (stat(paths[i], &st) < 0) {
			r = log_err(-errno, "cannot read '%s'", paths[i]);
			break;
		}
		if (S_ISDIR(st.st_mode) && npaths == 1) {
			/* one directory: its content is the version */
			r = walk_dir(&p, paths[i], "", 0);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			/* several paths: each directory keeps its name, as
			   with cp -r a b dest/ */
			copy = strdup(paths[i]);
			if (!copy) {
				r = -ENOMEM;
				break;
			}
			while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
				copy[strlen(copy) - 1] = '\0';
			r = push_add(&p, basename(copy), paths[i], &st);
			if (r == 0)
				r = walk_dir(&p, paths[i], p.v[p.n - 1].rel, 1);
			free(copy);
			continue;
		}
		if (!S_ISREG(st.st_mode)) {
			r = log_err(-EINVAL, "'%s' is not a file or directory",
				    paths[i]);
			break;
		}
		copy = strdup(paths[i]);
		if (!copy) {
			r = -ENOMEM;
			break;
		}
		r = push_add(&p, basename(copy), paths[i], &st);
		free(copy);
	}
	for (tries = 0; r == 0 && tries < 4; tries++) {
		store_batch_begin(reg->st);
		r = ingest_all(&p);
		if (r == 0)
			r = reg_change(reg, push_txn, &p);
		store_batch_end(reg->st);
		if (r != -EAGAIN)
			break;
		r = 0;
	}
	if (r == 0 && ret_version)
		strlcpy(ret_version, p.result, REG_NAME_MAX + 1);
	for (i = 0; i < p.n; i++) {
		free(p.v[i].rel);
		free(p.v[i].src);
		free(p.v[i].target);
		reg_ingest_release(&p.v[i].in);
	}
	free(p.v);
	if (r == 0)
		atomic_fetch_add(&reg->registrations, 1);
	return r;
}
