/* serve.c — what the serving cache (serve/serve.h) learns from the registry
 * (see registry/serve.h): a sealed file's identity and bytes, a version's files,
 * promotions, and the cache's lines in .mreg/metrics.
 *
 * Promotions are read back from the audit trail, which every stage change
 * of every process using the store goes through (the daemon, mreg on the
 * store, other mounts): {"op":"promote"|"rollback","result":"ok",
 * "model":M,"version":V,...}. Model and version names are of
 * [A-Za-z0-9._-], so their JSON strings hold no escape.
 */
#include "internal.h"
#include "registry/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a sealed file --------------------------------------------------- */

struct key_arg {
	uint64_t ino;
	bool want_staged;
	struct serve_key key;
	bool staged;
};

/* The version record of sealed file f, which must be alive. */
static int live_version_txn(struct idx_txn *t, const struct inode_rec *f,
			    struct inode_rec *ret)
{
	int r;

	if (f->kind != REG_FILE || !(f->flags & INODE_SEALED))
		return -EINVAL;
	if (f->flags & INODE_TRASHED)
		return -ENOENT;
	if ((r = reg_inode_get_txn(t, f->version, ret)) < 0)
		return r;
	return ret->flags & INODE_TRASHED ? -ENOENT : 0;
}

static void key_of(const struct inode_rec *f, struct serve_key *ret)
{
	ret->ino = f->ino;
	ret->version = f->version;
	ret->size = f->size;
	ret->digest = f->digest;
}

static int key_txn(struct idx_txn *t, void *arg)
{
	struct key_arg *a = arg;
	struct inode_rec f, v, m;
	int r;

	if ((r = reg_inode_get_txn(t, a->ino, &f)) < 0 ||
	    (r = live_version_txn(t, &f, &v)) < 0)
		return r;
	key_of(&f, &a->key);
	a->staged = false;
	if (!a->want_staged)
		return 0;
	if ((r = reg_inode_get_txn(t, v.model, &m)) < 0 ||
	    (r = reg_version_staged_txn(t, &m, v.ino)) < 0)
		return r;
	a->staged = r > 0;
	return 0;
}

int reg_serve_key(struct reg_registry *reg, uint64_t ino, struct serve_key *ret,
		  bool *ret_staged)
{
	struct key_arg a = { .ino = ino, .want_staged = ret_staged != NULL };
	int r;

	if (!reg || !ret)
		return -EINVAL;
	r = idx_read(reg->ix, key_txn, &a);
	if (r < 0)
		return r;
	*ret = a.key;
	if (ret_staged)
		*ret_staged = a.staged;
	return 0;
}

/* ---- the files under an inode ---------------------------------------- */

struct files_arg {
	uint64_t ino;
	struct serve_key *v;
	size_t n, cap;
};

static int add_key(struct files_arg *a, const struct inode_rec *f)
{
	if (ARRAY_GROW(a->v, a->cap, a->n) < 0)
		return -ENOMEM;
	key_of(f, &a->v[a->n++]);
	return 0;
}

/* reg_tree_walk_txn(): adds each sealed regular file. */
static int add_sealed(void *arg, const struct inode_rec *r, int depth)
{
	(void)depth;
	if (r->kind == REG_FILE && (r->flags & INODE_SEALED))
		return add_key(arg, r);
	return 0;
}

static int files_txn(struct idx_txn *t, void *arg)
{
	struct files_arg *a = arg;
	struct inode_rec r, v;
	int e;

	a->n = 0;
	if ((e = reg_inode_get_txn(t, a->ino, &r)) < 0)
		return e;
	if (r.flags & INODE_TRASHED)
		return -ENOENT;
	switch (r.kind) {
	case REG_FILE:
		if ((e = live_version_txn(t, &r, &v)) < 0)
			return e;
		return add_key(a, &r);
	case REG_VERSION:
		if (!(r.flags & INODE_SEALED))
			return -EINVAL;
		return reg_tree_walk_txn(t, r.ino, 0, add_sealed, a);
	case REG_DIR:
		if ((e = reg_inode_get_txn(t, r.version, &v)) < 0)
			return e;
		if (!(v.flags & INODE_SEALED))
			return -EINVAL;
		if (v.flags & INODE_TRASHED)
			return -ENOENT;
		return reg_tree_walk_txn(t, r.ino, 0, add_sealed, a);
	default:
		return -EINVAL;
	}
}

int reg_serve_files(struct reg_registry *reg, uint64_t ino,
		    int (*fn)(void *arg, const struct serve_key *key),
		    void *arg)
{
	struct files_arg a = { .ino = ino };
	size_t i;
	int r;

	if (!reg || !fn)
		return -EINVAL;
	/* collected first: fn runs outside the read transaction */
	r = idx_read(reg->ix, files_txn, &a);
	for (i = 0; r == 0 && i < a.n; i++)
		r = fn(arg, &a.v[i]);
	free(a.v);
	return r;
}

/* ---- the bytes --------------------------------------------------------- */

static int source_open(void *arg, const struct serve_key *key, void **ret)
{
	struct reg_registry *reg = arg;
	struct reg_caller self = {
		.uid = geteuid(), .gid = getegid(), .pid = getpid(),
		.umask = 022,
	};
	struct reg_file *f;
	int r;

	/* read-only: pins the version against gc while the copy is made */
	r = reg_file_open(reg, &self, key->ino, O_RDONLY, &f);
	if (r < 0)
		return r;
	if (!reg_file_sealed(f)) {
		reg_file_release(f);
		return -EINVAL;
	}
	reg_file_read_quietly(f);
	*ret = f;
	return 0;
}

static ssize_t source_read(void *handle, void *buf, size_t size, uint64_t off)
{
	return reg_file_read(handle, buf, size, off);
}

static void source_close(void *handle)
{
	reg_file_release(handle);
}

void reg_serve_source(struct reg_registry *reg, struct serve_source *ret)
{
	if (!ret)
		return;
	ret->open = source_open;
	ret->read = source_read;
	ret->close = source_close;
	ret->arg = reg;
}

/* ---- promotions -------------------------------------------------------- */

struct promo {
	char model[REG_NAME_MAX + 1], version[REG_NAME_MAX + 1];
};

struct promo_arg {
	uint64_t last;
	struct promo *v;
	size_t n, cap;
	int err;
	uint64_t *versions;     /* resolved, 0 for gone */
};

static int promo_one(void *arg, uint64_t seq, const char *json, size_t len)
{
	struct promo_arg *a = arg;
	struct promo p;
	char op[16], result[8];

	a->last = seq;
	if (json_get(json, len, "op", op, sizeof(op)) < 0 ||
	    (strcmp(op, "promote") && strcmp(op, "rollback")) ||
	    json_get(json, len, "result", result, sizeof(result)) < 0 ||
	    strcmp(result, "ok") ||
	    json_get(json, len, "model", p.model, sizeof(p.model)) < 0 ||
	    json_get(json, len, "version", p.version, sizeof(p.version)) < 0)
		return 0;
	if (ARRAY_GROW(a->v, a->cap, a->n) < 0)
		return a->err = -ENOMEM;
	a->v[a->n++] = p;
	return 0;
}

static int last_txn(struct idx_txn *t, void *arg)
{
	struct idx_val k, v;
	int r;

	r = idx_last(t, IDX_AUDIT, NULL, 0, &k, &v);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (k.len != 8)
		return -EIO;
	*(uint64_t *)arg = be64_get(k.data);
	return 0;
}

static int resolve_promos_txn(struct idx_txn *t, void *arg)
{
	struct promo_arg *a = arg;
	struct inode_rec v;
	size_t i;

	for (i = 0; i < a->n; i++)
		a->versions[i] = reg_version_get_txn(t, a->v[i].model,
					a->v[i].version, NULL, &v) == 0 &&
				 !(v.flags & INODE_TRASHED) ? v.ino : 0;
	return 0;
}

int reg_serve_promotions(struct reg_registry *reg, uint64_t *pos,
			 int (*fn)(void *arg, uint64_t version), void *arg)
{
	struct promo_arg a = { 0 };
	size_t i;
	int r;

	if (!reg || !pos || !fn)
		return -EINVAL;
	if (*pos == REG_SERVE_START) {
		uint64_t last = 0;

		r = idx_read(reg->ix, last_txn, &last);
		if (r == 0)
			*pos = last;
		return r;
	}
	a.last = *pos;
	r = reg_audit(reg, *pos + 1, promo_one, &a);
	if (r == 0)
		r = a.err;
	if (r == 0 && a.n) {
		a.versions = calloc(a.n, sizeof(*a.versions));
		r = a.versions ? idx_read(reg->ix, resolve_promos_txn, &a) :
				 -ENOMEM;
	}
	if (r == 0)
		*pos = a.last;
	for (i = 0; r == 0 && i < a.n; i++)
		if (a.versions[i])
			r = fn(arg, a.versions[i]);
	free(a.versions);
	free(a.v);
	return r;
}

/* ---- names ------------------------------------------------------------- */

struct name_arg {
	uint64_t ino;
	char *buf;
	size_t size;
};

static int name_txn(struct idx_txn *t, void *arg)
{
	struct name_arg *a = arg;
	struct inode_rec r;
	char *tmp;
	size_t len = 0;
	uint64_t ino = a->ino;
	int depth, e;

	tmp = malloc(a->size);
	if (!tmp)
		return -ENOMEM;
	a->buf[0] = '\0';
	/* from the file up to its model, prepending each name */
	for (depth = 0; depth < 300; depth++) {
		size_t n;

		if ((e = reg_inode_get_txn(t, ino, &r)) < 0) {
			free(tmp);
			return e;
		}
		n = strlen(r.name);
		if (len + n + 2 > a->size) {
			free(tmp);
			return -ERANGE;
		}
		memcpy(tmp, a->buf, len + 1);
		memcpy(a->buf, r.name, n);
		if (len) {
			a->buf[n] = '/';
			memcpy(a->buf + n + 1, tmp, len + 1);
			len += n + 1;
		} else {
			a->buf[n] = '\0';
			len = n;
		}
		if (r.kind == REG_MODEL)
			break;
		ino = r.parent;
	}
	free(tmp);
	return r.kind == REG_MODEL ? 0 : -ENOENT;
}

void reg_serve_name(struct reg_registry *reg, uint64_t ino, char *buf,
		    size_t size)
{
	struct name_arg a = { ino, buf, size };

	if (!buf || !size)
		return;
	if (!reg || idx_read(reg->ix, name_txn, &a) < 0)
		snprintf(buf, size, "inode %" PRIu64, ino);
}

void reg_set_serve(struct reg_registry *reg, struct serve_cache *c)
{
	if (reg)
		reg->serve = c;
}
