/* inode.c — inodes and names in the index, read and written inside a
 * transaction: records, directory entries, models and versions by name,
 * attributes, and THE seal check (reg_sealed_txn()) every change of a
 * version's tree asks. Also the tree walks (depth, height) the depth
 * limit and the symlink rule need, and the removal of an inode (deleted
 * outright, or trashed for gc while it may be open). */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

int reg_inode_get_txn(struct idx_txn *t, uint64_t ino, struct inode_rec *ret)
{
	uint8_t k[8];
	struct idx_val v;
	int r;

	be64_put(k, ino);
	r = idx_get(t, IDX_INODES, k, 8, &v);
	if (r < 0)
		return r;
	r = rec_inode_decode(v.data, v.len, ret);
	if (r < 0)
		return log_err(r, "inode %llu: damaged record",
			       (unsigned long long)ino);
	return 0;
}

int reg_inode_put_txn(struct idx_txn *t, const struct inode_rec *r)
{
	uint8_t k[8];
	uint8_t buf[sizeof(struct inode_rec) + 128];
	size_t n;

	assert(rec_inode_max() <= sizeof(buf));
	be64_put(k, r->ino);
	n = rec_inode_encode(r, buf);
	return idx_put(t, IDX_INODES, k, 8, buf, n, 0);
}

static int meta_u64_txn(struct idx_txn *t, const char *key, uint64_t *ret)
{
	struct idx_val v;
	int r = idx_get(t, IDX_META, key, strlen(key), &v);

	if (r < 0)
		return r;
	if (v.len != 8)
		return -EIO;
	memcpy(ret, v.data, 8);
	return 0;
}

int reg_inode_alloc_txn(struct idx_txn *t, uint64_t *ret)
{
	uint64_t next;
	int r = meta_u64_txn(t, META_NEXT_INO, &next);

	if (r == -ENOENT)
		next = FIRST_DYN_INO;
	else if (r < 0)
		return r;
	*ret = next++;
	return idx_put(t, IDX_META, META_NEXT_INO, strlen(META_NEXT_INO),
		       &next, 8, 0);
}

static size_t name_key(uint8_t *k, uint64_t parent, const char *name)
{
	size_t n = strlen(name);

	assert(n <= 255);
	be64_put(k, parent);
	memcpy(k + 8, name, n);
	return 8 + n;
}

int reg_name_get_txn(struct idx_txn *t, uint64_t parent, const char *name,
		     uint64_t *ret)
{
	uint8_t k[8 + 256];
	struct idx_val v;
	int r;

	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	r = idx_get(t, IDX_NAMES, k, name_key(k, parent, name), &v);
	if (r < 0)
		return r;
	if (v.len != 8)
		return -EIO;
	memcpy(ret, v.data, 8);
	return 0;
}

int reg_name_put_txn(struct idx_txn *t, uint64_t parent, const char *name,
		     uint64_t ino, unsigned flags)
{
	uint8_t k[8 + 256];

	return idx_put(t, IDX_NAMES, k, name_key(k, parent, name), &ino, 8,
		       flags);
}

int reg_name_del_txn(struct idx_txn *t, uint64_t parent, const char *name)
{
	uint8_t k[8 + 256];

	return idx_del(t, IDX_NAMES, k, name_key(k, parent, name));
}

static int collect_child(void *arg, const struct idx_val *k,
			 const struct idx_val *v)
{
	struct child_list *l = arg;
	size_t n = k->len - 8;

	if (n > 255 || v->len != 8)
		return l->err = -EIO;
	if (ARRAY_GROW(l->v, l->cap, l->n) < 0)
		return l->err = -ENOMEM;
	memcpy(l->v[l->n].name, (const char *)k->data + 8, n);
	l->v[l->n].name[n] = '\0';
	memcpy(&l->v[l->n].ino, v->data, 8);
	l->n++;
	return 0;
}

int reg_entries_scan_txn(struct idx_txn *t, uint64_t dir,
			 int (*fn)(void *arg, const struct idx_val *key,
				   const struct idx_val *val),
			 void *arg)
{
	uint8_t p[8];

	be64_put(p, dir);
	return idx_scan(t, IDX_NAMES, p, 8, NULL, 0, fn, arg);
}

int reg_entry_inode_txn(struct idx_txn *t, const struct idx_val *val,
			struct inode_rec *ret)
{
	uint64_t ino;

	if (val->len != 8)
		return -EIO;
	memcpy(&ino, val->data, 8);
	return reg_inode_get_txn(t, ino, ret);
}

int reg_children_txn(struct idx_txn *t, uint64_t ino, struct child_list *l)
{
	int r;

	memset(l, 0, sizeof(*l));
	r = reg_entries_scan_txn(t, ino, collect_child, l);
	if (r < 0 && !l->err)
		l->err = r; /* the scan itself failed: not a short directory */
	return l->err;
}

static int first_child(UNUSED void *arg, UNUSED const struct idx_val *k,
		       UNUSED const struct idx_val *v)
{
	return 1;
}

int reg_dir_has_entries_txn(struct idx_txn *t, uint64_t ino)
{
	return reg_entries_scan_txn(t, ino, first_child, NULL);
}

void reg_inode_init(struct inode_rec *r, uint64_t ino, enum reg_kind kind,
		    const struct reg_caller *who, mode_t mode, uint64_t parent,
		    uint64_t model, uint64_t version, const char *name)
{
	int64_t now = now_ns();

	memset(r, 0, sizeof(*r));
	r->ino = ino;
	r->kind = (uint8_t)kind;
	r->mode = (uint32_t)(mode & ~(who ? who->umask : 022) & 07777);
	switch (kind) {
	case REG_FILE:
	case REG_PENDING:
		r->mode |= S_IFREG;
		break;
	case REG_SYMLINK:
	case REG_STAGE:
		r->mode = S_IFLNK | 0777;
		break;
	default:
		r->mode |= S_IFDIR;
	}
	r->uid = who ? who->uid : 0;
	r->gid = who ? who->gid : 0;
	r->parent = parent;
	r->model = model;
	r->version = version;
	r->atime = r->mtime = r->ctime = r->btime = now;
	snprintf(r->name, sizeof(r->name), "%s", name);
}

static void ns_to_ts(int64_t ns, struct timespec *ts)
{
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
}

void reg_inode_attr(const struct inode_rec *r, struct reg_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = r->ino;
	a->kind = r->kind;
	a->mode = r->mode;
	a->uid = r->uid;
	a->gid = r->gid;
	a->model = r->model;
	a->version = r->kind == REG_VERSION ? r->ino : r->version;
	a->sealed = (r->flags & INODE_SEALED) != 0;
	if (a->sealed && !S_ISLNK(a->mode))
		a->mode &= ~(mode_t)0222;
	switch (r->kind) {
	case REG_FILE:
	case REG_PENDING:
		a->size = r->size;
		a->nlink = (r->flags & INODE_TRASHED) ? 0 : 1; /* open, unlinked */
		break;
	case REG_SYMLINK:
	case REG_STAGE:
		a->size = strlen(r->target_path);
		a->nlink = 1;
		break;
	default:
		a->size = 0;
		a->nlink = 2;
	}
	a->volatile_name = r->kind == REG_MODEL || r->kind == REG_STAGES ||
			   r->kind == REG_STAGE || r->kind == REG_PENDING ||
			   (r->kind == REG_VERSION && !a->sealed);
	ns_to_ts(r->atime, &a->atime);
	ns_to_ts(r->mtime, &a->mtime);
	ns_to_ts(r->ctime, &a->ctime);
	ns_to_ts(r->btime, &a->btime);
}

int reg_model_get_txn(struct idx_txn *t, const char *model,
		      struct inode_rec *ret)
{
	uint64_t ino;
	int r;

	if (reg_check_name(model) < 0)
		return -EINVAL;
	r = reg_name_get_txn(t, REG_MODELS_INO, model, &ino);
	if (r < 0)
		return r;
	r = reg_inode_get_txn(t, ino, ret);
	if (r < 0)
		return r;
	return ret->kind == REG_MODEL ? 0 : -EIO;
}

int reg_version_get_txn(struct idx_txn *t, const char *model,
			const char *version, struct inode_rec *ret_model,
			struct inode_rec *ret_version)
{
	struct inode_rec m, v;
	uint64_t ino;
	int r;

	r = reg_model_get_txn(t, model, &m);
	if (r < 0)
		return r;
	if (reg_check_name(version) < 0)
		return -EINVAL;
	r = reg_name_get_txn(t, m.ino, version, &ino);
	if (r < 0)
		return r;
	r = reg_inode_get_txn(t, ino, &v);
	if (r < 0)
		return r;
	if (v.kind != REG_VERSION)
		return -ENOENT;
	if (ret_model)
		*ret_model = m;
	*ret_version = v;
	return 0;
}

/* Is directory p inside a version whose content may change? */
int reg_sealed_txn(struct idx_txn *t, const struct inode_rec *r)
{
	struct inode_rec v;
	int e;

	if (r->flags & INODE_SEALED)
		return 1;
	/* sealing flags every inode of the version's tree, so this asks
	   only for one outside it: a file unlinked while open (trashed) */
	if (!r->version || r->kind == REG_VERSION)
		return 0;
	if ((e = reg_inode_get_txn(t, r->version, &v)) < 0)
		return e;
	return (v.flags & INODE_SEALED) ? 1 : 0;
}

int reg_draft_dir_txn(struct idx_txn *t, const struct inode_rec *p)
{
	int r;

	if (p->kind != REG_VERSION && p->kind != REG_DIR)
		return -EPERM;
	if ((r = reg_sealed_txn(t, p)) != 0)
		return r < 0 ? r : -EROFS;
	return 0;
}

uint64_t reg_version_of(const struct inode_rec *p)
{
	return p->kind == REG_VERSION ? p->ino : p->version;
}

int reg_touch_dir_txn(struct idx_txn *t, struct inode_rec *p)
{
	if (p->ino == REG_MODELS_INO)
		return 0;
	p->mtime = p->ctime = now_ns();
	return reg_inode_put_txn(t, p);
}

int reg_inode_delete_txn(struct idx_txn *t, const struct inode_rec *r)
{
	uint8_t k[8];
	int e;

	if (r->kind == REG_FILE || r->kind == REG_PENDING) {
		e = reg_extents_drop_txn(t, r->ino);
		if (e < 0)
			return e;
	}
	/* a pending file, or a draft's file unlinked before its first
	   commit */
	if ((r->kind == REG_PENDING || r->kind == REG_FILE) &&
	    (e = reg_pending_del_txn(t, r->ino)) < 0)
		return e;
	be64_put(k, r->ino);
	e = idx_del(t, IDX_INODES, k, 8);
	return e == -ENOENT ? 0 : e;
}

int reg_inode_trash_txn(struct idx_txn *t, struct inode_rec *r)
{
	int64_t now = now_ns();
	uint8_t k[8];
	int e;

	r->flags |= INODE_TRASHED;
	if ((e = reg_inode_put_txn(t, r)) < 0)
		return e;
	be64_put(k, r->ino);
	return idx_put(t, IDX_TRASH, k, 8, &now, 8, 0);
}

int reg_depth_txn(struct idx_txn *t, const struct inode_rec *p)
{
	struct inode_rec cur = *p;
	int depth = 0, r;

	while (cur.kind == REG_DIR) {
		if (++depth > REG_DEPTH_MAX)
			return depth; /* a tree made before the limit */
		r = reg_inode_get_txn(t, cur.parent, &cur);
		if (r < 0)
			return r;
	}
	return depth;
}

int reg_depth_check(int depth)
{
	return depth < REG_DEPTH_MAX ? 0 : -ENAMETOOLONG;
}

int reg_tree_height_txn(struct idx_txn *t, uint64_t dir, int max)
{
	struct child_list l;
	struct inode_rec *r;
	size_t i;
	int h = 0, e;

	if (max < 0)
		return -ENAMETOOLONG;
	if ((e = reg_children_txn(t, dir, &l)) < 0)
		goto out;
	if (!(r = malloc(sizeof(*r)))) {
		e = -ENOMEM;
		goto out;
	}
	for (i = 0; i < l.n && e >= 0; i++) {
		if ((e = reg_inode_get_txn(t, l.v[i].ino, r)) < 0)
			break;
		if (r->kind != REG_DIR)
			continue;
		e = reg_tree_height_txn(t, r->ino, max - 1);
		if (e >= 0 && e + 1 > h)
			h = e + 1;
	}
	free(r);
out:
	free(l.v);
	return e < 0 ? e : h;
}

int reg_tree_walk_txn(struct idx_txn *t, uint64_t dir, int depth,
		      int (*fn)(void *arg, const struct inode_rec *r,
				int depth),
		      void *arg)
{
	struct child_list l;
	struct inode_rec *r;
	size_t i;
	int e;

	if (depth > 4096)
		return -EIO;
	if ((e = reg_children_txn(t, dir, &l)) < 0) {
		free(l.v);
		return e;
	}
	if (!(r = malloc(sizeof(*r))))
		e = -ENOMEM;
	for (i = 0; i < l.n && e == 0; i++) {
		if ((e = reg_inode_get_txn(t, l.v[i].ino, r)) < 0 ||
		    (e = fn(arg, r, depth)) < 0)
			break;
		if (r->kind == REG_DIR)
			e = reg_tree_walk_txn(t, r->ino, depth + 1, fn, arg);
	}
	free(r);
	free(l.v);
	return e;
}
