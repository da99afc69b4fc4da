/* metadata.c — metadata of models and versions (SPEC §4): the extended
 * attributes user.mreg.* through the mount and reg_meta_* by name for the
 * CLI, with one set of rules (which keys, who may set them, sealed
 * versions keep their metrics), and the control attributes the CLI uses
 * through a mount (user.mreg.rollback, user.mreg.register; reading
 * user.mreg.cache is prefetch.c's).
 *
 * Metadata keys live in IDX_XATTRS as (inode, "metric.auc") -> bytes. The
 * facts (created, creator, sealed, size, stored, digest) are computed from
 * the inode record, never stored, so they can't be set.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

enum meta_class { META_BAD, META_FREE, META_FROZEN, META_FACT };

static bool key_chars(const char *s)
{
	if (!*s || strlen(s) > 200)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' ||
		      *s == '.'))
			return false;
	return true;
}

static const char *const facts[] = { "created", "creator", "sealed", "size",
				     "stored", "digest", NULL };

/* Which rule applies to key (without "user.mreg."). */
static enum meta_class meta_class(const char *key)
{
	size_t i;

	if (strcmp(key, "description") == 0)
		return META_FREE;
	if ((strncmp(key, "tag.", 4) == 0 && key_chars(key + 4)) ||
	    (strncmp(key, "metric.", 7) == 0 && key_chars(key + 7)))
		return META_FREE;
	if ((strncmp(key, "param.", 6) == 0 && key_chars(key + 6)) ||
	    (strncmp(key, "lineage.", 8) == 0 && key_chars(key + 8)))
		return META_FROZEN;
	for (i = 0; facts[i]; i++)
		if (strcmp(key, facts[i]) == 0)
			return META_FACT;
	return META_BAD;
}

static size_t xkey(uint8_t *k, uint64_t ino, const char *key)
{
	size_t n = strlen(key);

	be64_put(k, ino);
	memcpy(k + 8, key, n);
	return 8 + n;
}

int reg_meta_get_txn(struct idx_txn *t, uint64_t ino, const char *key,
		     struct idx_val *ret)
{
	uint8_t k[IDX_KEY_MAX];

	if (strlen(key) > IDX_KEY_MAX - 8)
		return -EINVAL;
	return idx_get(t, IDX_XATTRS, k, xkey(k, ino, key), ret);
}

int reg_meta_set_txn(struct idx_txn *t, const struct reg_caller *who,
		     const struct inode_rec *rec, const char *key,
		     const void *val, size_t len, int flags)
{
	enum meta_class c = meta_class(key);
	struct inode_rec m;
	struct idx_val old;
	uint8_t k[8 + 256];
	size_t kl;
	char *oldcopy = NULL;
	size_t oldlen = 0;
	int r, have;

	if (rec->kind != REG_MODEL && rec->kind != REG_VERSION)
		return -ENOTSUP;
	if (c == META_BAD)
		return -EINVAL;
	if (c == META_FACT)
		return -EPERM;
	if (c == META_FROZEN && (rec->flags & INODE_SEALED))
		return -EROFS;
	if (val && strncmp(key, "metric.", 7) == 0 &&
	    !util_decimal(val, len, NULL))
		return -EINVAL;
	if (val && len > 65536)
		return -E2BIG;
	kl = xkey(k, rec->ino, key);
	have = idx_get(t, IDX_XATTRS, k, kl, &old);
	if (have < 0 && have != -ENOENT)
		return have;
	if ((flags & XATTR_CREATE) && have == 0)
		return -EEXIST;
	if (((flags & XATTR_REPLACE) || !val) && have == -ENOENT)
		return -ENODATA;
	if (have == 0) {
		oldcopy = malloc(old.len + 1);
		if (!oldcopy)
			return -ENOMEM;
		memcpy(oldcopy, old.data, old.len);
		oldlen = old.len;
	}
	r = val ? idx_put(t, IDX_XATTRS, k, kl, val, len, 0) :
		  idx_del(t, IDX_XATTRS, k, kl);
	if (r == 0) {
		const char *model = rec->name, *version = NULL;

		if (rec->kind == REG_VERSION) {
			r = reg_inode_get_txn(t, rec->model, &m);
			model = r == 0 ? m.name : "";
			version = rec->name;
		}
		if (r == 0)
			r = reg_audit_put_txn(t, who, &(struct audit_ev){
				.op = val ? "meta.set" : "meta.unset",
				.model = model, .version = version, .key = key,
				.old_value = oldcopy, .old_len = oldlen,
				.new_value = val, .new_len = len });
	}
	free(oldcopy);
	return r;
}

struct totals {
	uint64_t size, nfiles;
};

static int count_file(void *arg, const struct inode_rec *r, UNUSED int depth)
{
	struct totals *a = arg;

	if (r->kind == REG_FILE) {
		a->size += r->size;
		a->nfiles++;
	}
	return 0;
}

int reg_version_totals_txn(struct idx_txn *t, const struct inode_rec *v,
			   uint64_t *ret_size, uint64_t *ret_nfiles)
{
	struct totals a = { v->size, v->nfiles };
	int r;

	if (!(v->flags & INODE_SEALED)) {
		a = (struct totals){ 0, 0 };
		if ((r = reg_tree_walk_txn(t, v->ino, 0, count_file, &a)) < 0)
			return r;
	}
	*ret_size = a.size;
	*ret_nfiles = a.nfiles;
	return 0;
}

/* The read-only facts, as text. 0 and buf set, or -ENODATA. */
static int fact_value_txn(struct idx_txn *t, const struct inode_rec *rec,
			  const char *key, char *buf, size_t size)
{
	char hex[MREG_ID_HEX];

	if (!strcmp(key, "created")) {
		util_time_iso(rec->btime, true, buf, size);
	} else if (!strcmp(key, "creator")) {
		util_uid_name(rec->uid, buf, size);
	} else if (!strcmp(key, "sealed")) {
		if (rec->kind != REG_VERSION)
			return -ENODATA;
		if (rec->flags & INODE_SEALED)
			util_time_iso(rec->sealed_at, true, buf, size);
		else
			snprintf(buf, size, "false");
	} else if (!strcmp(key, "size")) {
		uint64_t bytes, nfiles;
		int r;

		if (rec->kind != REG_VERSION)
			return -ENODATA;
		if ((r = reg_version_totals_txn(t, rec, &bytes, &nfiles)) < 0)
			return r;
		snprintf(buf, size, "%llu", (unsigned long long)bytes);
	} else if (!strcmp(key, "stored")) {
		/* what its chunks added to the store: known when sealed */
		if (rec->kind != REG_VERSION || !(rec->flags & INODE_SEALED))
			return -ENODATA;
		snprintf(buf, size, "%llu", (unsigned long long)rec->stored);
	} else if (!strcmp(key, "digest")) {
		if ((rec->kind != REG_VERSION && rec->kind != REG_FILE) ||
		    !(rec->flags & INODE_SEALED))
			return -ENODATA;
		snprintf(buf, size, "xxh128:%s", chunkid_hex(&rec->digest, hex));
	} else {
		return -ENODATA;
	}
	return 0;
}

struct xattr_arg {
	struct reg_registry *reg;
	const struct reg_caller *who;
	uint64_t ino;
	const char *key;
	void *buf;
	const void *val;
	size_t size;
	int flags;
	ssize_t len;
	struct strbuf sb;
};

static int getxattr_txn(struct idx_txn *t, void *arg)
{
	struct xattr_arg *a = arg;
	struct inode_rec rec;
	struct idx_val v;
	char fact[128];
	const void *p;
	size_t n;
	int r;

	if ((r = reg_inode_get_txn(t, a->ino, &rec)) < 0)
		return r;
	if (rec.kind == REG_FILE) {
		if (strcmp(a->key, "digest") != 0)
			return -ENODATA;
	} else if (rec.kind != REG_MODEL && rec.kind != REG_VERSION) {
		return -ENODATA;
	}
	if (meta_class(a->key) == META_FACT) {
		if ((r = fact_value_txn(t, &rec, a->key, fact,
					sizeof(fact))) < 0)
			return r;
		p = fact;
		n = strlen(fact);
	} else if (meta_class(a->key) != META_BAD) {
		r = reg_meta_get_txn(t, a->ino, a->key, &v);
		if (r == -ENOENT || r == -EINVAL)
			return -ENODATA;
		if (r < 0)
			return r;
		p = v.data;
		n = v.len;
	} else {
		return -ENODATA;
	}
	a->len = (ssize_t)n;
	if (a->size) {
		if (n > a->size)
			return -ERANGE;
		memcpy(a->buf, p, n);
	}
	return 0;
}

static const char *strip_prefix(const char *name)
{
	size_t n = strlen(REG_XATTR_PREFIX);

	if (strncmp(name, REG_XATTR_PREFIX, n) != 0)
		return NULL;
	return name + n;
}

/* .mreg/audit.log carries user.mreg.head: "SEQ SHA256HEX" of the last
 * record, so that a reader of the log (mreg audit --verify through a mount)
 * can check the last record too. */
static int audit_head_txn(struct idx_txn *t, void *arg)
{
	struct xattr_arg *a = arg;
	struct idx_val k, v, head;
	int r;

	r = idx_last(t, IDX_AUDIT, NULL, 0, &k, &v);
	if (r < 0 || k.len != 8)
		return r < 0 ? (r == -ENOENT ? -ENODATA : r) : -EIO;
	r = idx_get(t, IDX_META, META_AUDIT_HEAD, strlen(META_AUDIT_HEAD),
		    &head);
	if (r < 0)
		return r == -ENOENT ? -ENODATA : r;
	strbuf_addf(&a->sb, "%llu ", (unsigned long long)be64_get(k.data));
	strbuf_add(&a->sb, head.data, head.len);
	return 0;
}

/* Runs fn, which builds a value in a->sb, and answers as getxattr(2)
 * does: the length (only the length when size is 0), or -ERANGE. */
static ssize_t xattr_reply(struct reg_registry *reg, struct xattr_arg *a,
			   int (*fn)(struct idx_txn *, void *), void *buf,
			   size_t size)
{
	ssize_t n;
	int r;

	strbuf_init(&a->sb);
	r = idx_read(reg->ix, fn, a);
	n = r < 0 ? r : (ssize_t)a->sb.len;
	if (r == 0 && size) {
		if (a->sb.len > size)
			n = -ERANGE;
		else
			memcpy(buf, a->sb.buf, a->sb.len);
	}
	strbuf_release(&a->sb);
	return n;
}

static ssize_t audit_head_xattr(struct reg_registry *reg, void *buf,
				size_t size)
{
	struct xattr_arg a = { .reg = reg };

	return xattr_reply(reg, &a, audit_head_txn, buf, size);
}

ssize_t reg_getxattr(struct reg_registry *reg, uint64_t ino, const char *name,
		     void *buf, size_t size)
{
	struct xattr_arg a = { .reg = reg, .ino = ino, .buf = buf,
			       .size = size };
	int r;

	if (!reg || !name || (size && !buf))
		return -EINVAL;
	a.key = strip_prefix(name);
	if (a.key && ino == REG_AUDITLOG_INO && strcmp(a.key, "head") == 0)
		return audit_head_xattr(reg, buf, size);
	if (a.key && strcmp(a.key, "cache") == 0 && !reg_ino_virtual(ino))
		return reg_prefetch_xattr(reg, ino, buf, size);
	if (!a.key || reg_ino_virtual(ino))
		return -ENODATA;
	r = idx_read(reg->ix, getxattr_txn, &a);
	return r < 0 ? r : a.len;
}

static int setxattr_txn(struct idx_txn *t, void *arg)
{
	struct xattr_arg *a = arg;
	struct inode_rec rec;
	int r;

	if ((r = reg_inode_get_txn(t, a->ino, &rec)) < 0)
		return r;
	if (rec.kind != REG_MODEL && rec.kind != REG_VERSION)
		return rec.kind == REG_FILE && (rec.flags & INODE_SEALED) ?
		       -EROFS : -ENOTSUP;
	return reg_meta_set_txn(t, a->who, &rec, a->key, a->val, a->size,
				a->flags);
}

struct rollback_ctl_arg {
	uint64_t ino;
	char model[REG_NAME_MAX + 1];
};

static int rollback_ctl_txn(struct idx_txn *t, void *arg)
{
	struct rollback_ctl_arg *a = arg;
	struct inode_rec s, m;
	int r;

	if ((r = reg_inode_get_txn(t, a->ino, &s)) < 0)
		return r;
	if (s.kind != REG_STAGES)
		return -EINVAL;
	if ((r = reg_inode_get_txn(t, s.model, &m)) < 0)
		return r;
	if (strlen(m.name) >= sizeof(a->model))
		return -EIO;
	strcpy(a->model, m.name);
	return 0;
}

/* user.mreg.rollback = S on a model's stages directory: reg_rollback() of
 * stage S, for a client of the mount (mreg rollback through it), so that
 * the daemon alone decides where a stage goes back to. A control, not
 * metadata: never stored, so getxattr and listxattr do not show it. On
 * the stages directory, not the stage: the kernel refuses user.* keys on
 * a symlink before FUSE sees them. */
static int rollback_control(struct reg_registry *reg,
			    const struct reg_caller *who, uint64_t ino,
			    const void *value, size_t size)
{
	struct rollback_ctl_arg a = { .ino = ino };
	char stage[REG_STAGE_MAX + 1];
	int r;

	if (!value || size == 0 || size > REG_STAGE_MAX ||
	    memchr(value, '\0', size))
		return -EINVAL;
	memcpy(stage, value, size);
	stage[size] = '\0';
	if ((r = idx_read(reg->ix, rollback_ctl_txn, &a)) < 0)
		return r;
	return reg_rollback(reg, who, a.model, stage, NULL);
}

int reg_setxattr(struct reg_registry *reg, const struct reg_caller *who,
		 uint64_t ino, const char *name, const void *value, size_t size,
		 int flags)
{
	struct xattr_arg a = { .reg = reg, .who = who, .ino = ino,
			       .val = value ? value : "", .size = size,
			       .flags = flags };
	int r;

	if (!reg || !who || !name)
		return -EINVAL;
	if (reg_ino_virtual(ino))
		return -EPERM;
	a.key = strip_prefix(name);
	if (!a.key)
		return -ENOTSUP; /* ACLs, security labels, other users' keys */
	if (strcmp(a.key, "rollback") == 0)
		return rollback_control(reg, who, ino, value, size);
	if (strcmp(a.key, "register") == 0)
		return size ? -EINVAL :
		       reg_version_register(reg, who, ino, NULL);
	r = reg_change(reg, setxattr_txn, &a);
	reg_audit_ino_failure(reg, who, r, ino, &(struct audit_ev){
		.op = "meta.set", .key = a.key });
	return r;
}

int reg_removexattr(struct reg_registry *reg, const struct reg_caller *who,
		    uint64_t ino, const char *name)
{
	struct xattr_arg a = { .reg = reg, .who = who, .ino = ino };
	int r;

	if (!reg || !who || !name)
		return -EINVAL;
	if (reg_ino_virtual(ino))
		return -EPERM;
	a.key = strip_prefix(name);
	if (!a.key)
		return -ENODATA;
	r = reg_change(reg, setxattr_txn, &a);
	reg_audit_ino_failure(reg, who, r, ino, &(struct audit_ev){
		.op = "meta.unset", .key = a.key });
	return r;
}

struct list_arg {
	int (*fn)(void *arg, const char *key, const char *value, size_t len);
	void *arg;
	int err;
};

static int list_one(void *arg, const struct idx_val *k,
		    const struct idx_val *v)
{
	struct list_arg *a = arg;
	char key[300], *val;
	size_t n = k->len - 8;
	int r;

	if (n >= sizeof(key))
		return a->err = -EIO;
	memcpy(key, (const char *)k->data + 8, n);
	key[n] = '\0';
	if (key[0] == HELD_PREFIX[0])
		return 0;
	val = malloc(v->len + 1);
	if (!val)
		return a->err = -ENOMEM;
	memcpy(val, v->data, v->len);
	val[v->len] = '\0';
	r = a->fn(a->arg, key, val, v->len);
	free(val);
	return r;
}

/* Calls fn for each stored key of rec, then each fact it has. */
static int meta_walk_txn(struct idx_txn *t, const struct inode_rec *rec,
			 int (*fn)(void *arg, const char *key,
				   const char *value, size_t len),
			 void *arg)
{
	struct list_arg a = { fn, arg, 0 };
	char fact[128];
	uint8_t p[8];
	size_t i;
	int r = 0;

	if (rec->kind == REG_MODEL || rec->kind == REG_VERSION) {
		be64_put(p, rec->ino);
		r = idx_scan(t, IDX_XATTRS, p, 8, NULL, 0, list_one, &a);
		if (a.err < 0)
			return a.err;
		if (r)
			return r;
	}
	for (i = 0; facts[i]; i++) {
		if (rec->kind == REG_FILE && strcmp(facts[i], "digest"))
			continue;
		if (fact_value_txn(t, rec, facts[i], fact, sizeof(fact)) < 0)
			continue;
		if ((r = fn(arg, facts[i], fact, strlen(fact))) != 0)
			return r;
	}
	return 0;
}

static int listx_one(void *arg, const char *key, UNUSED const char *value,
		     UNUSED size_t len)
{
	struct strbuf *sb = arg;

	strbuf_adds(sb, REG_XATTR_PREFIX);
	strbuf_add(sb, key, strlen(key) + 1);
	return 0;
}

static int listxattr_txn(struct idx_txn *t, void *arg)
{
	struct xattr_arg *a = arg;
	struct inode_rec rec;
	int r;

	if ((r = reg_inode_get_txn(t, a->ino, &rec)) < 0)
		return r;
	if (rec.kind != REG_MODEL && rec.kind != REG_VERSION &&
	    rec.kind != REG_FILE)
		return 0;
	return meta_walk_txn(t, &rec, listx_one, &a->sb);
}

ssize_t reg_listxattr(struct reg_registry *reg, uint64_t ino, char *buf,
		      size_t size)
{
	struct xattr_arg a = { .reg = reg, .ino = ino };

	if (!reg || (size && !buf))
		return -EINVAL;
	if (ino == REG_AUDITLOG_INO) {
		static const char head[] = REG_XATTR_PREFIX "head";

		if (size && size < sizeof(head))
			return -ERANGE;
		if (size)
			memcpy(buf, head, sizeof(head));
		return sizeof(head);
	}
	if (reg_ino_virtual(ino))
		return 0;
	return xattr_reply(reg, &a, listxattr_txn, buf, size);
}

/* ---- by name ----------------------------------------------------------- */

struct meta_arg {
	struct reg_registry *reg;
	const struct reg_caller *who;
	const char *model, *version, *key, *value;
	int (*fn)(void *arg, const char *key, const char *value, size_t len);
	void *arg;
};

static int target_get_txn(struct idx_txn *t, const char *model,
			  const char *version, struct inode_rec *ret)
{
	if (version)
		return reg_version_get_txn(t, model, version, NULL, ret);
	return reg_model_get_txn(t, model, ret);
}

static int meta_list_txn(struct idx_txn *t, void *arg)
{
	struct meta_arg *a = arg;
	struct inode_rec rec;
	int r;

	if ((r = target_get_txn(t, a->model, a->version, &rec)) < 0)
		return r;
	return meta_walk_txn(t, &rec, a->fn, a->arg);
}

int reg_meta_list(struct reg_registry *reg, const char *model,
		  const char *version,
		  int (*fn)(void *arg, const char *key, const char *value,
			    size_t len),
		  void *arg)
{
	struct meta_arg a = { .reg = reg, .model = model, .version = version,
			      .fn = fn, .arg = arg };

	if (!reg || !model || !fn)
		return -EINVAL;
	return idx_read(reg->ix, meta_list_txn, &a);
}

static int meta_set_txn(struct idx_txn *t, void *arg)
{
	struct meta_arg *a = arg;
	struct inode_rec rec;
	int r;

	if ((r = target_get_txn(t, a->model, a->version, &rec)) < 0)
		return r;
	return reg_meta_set_txn(t, a->who, &rec, a->key, a->value,
				a->value ? strlen(a->value) : 0, 0);
}

int reg_meta_set(struct reg_registry *reg, const struct reg_caller *who,
		 const char *model, const char *version, const char *key,
		 const char *value)
{
	struct meta_arg a = { .reg = reg, .who = who, .model = model,
			      .version = version, .key = key, .value = value };

	int r;

	if (!reg || !who || !model || !key)
		return -EINVAL;
	r = reg_change(reg, meta_set_txn, &a);
	reg_audit_failure(reg, who, r, &(struct audit_ev){
		.op = value ? "meta.set" : "meta.unset", .model = model,
		.version = version, .key = key });
	return r;
}

