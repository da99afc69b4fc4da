/* namespace.c — changing the namespace: mkdir, rmdir, unlink, symlink,
 * with the rules of SPEC §1–§3 (names, drafts, sealed content, pending
 * files at a model root, stages, the depth limit, symlinks that stay in
 * their version). Each call builds a struct reg_op and runs its
 * transaction through reg_change() (reg_txn_keeping() when a file may
 * lose its last name while open here). */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

int reg_op_parent_txn(struct idx_txn *t, uint64_t parent,
			 struct inode_rec *p)
{
	int r;

	if (parent == REG_MODELS_INO) {
		memset(p, 0, sizeof(*p));
		p->ino = REG_MODELS_INO;
		p->kind = REG_MODELS;
		p->mode = S_IFDIR | 0755;
		return 0;
	}
	if (reg_ino_virtual(parent))
		return -EPERM;
	r = reg_inode_get_txn(t, parent, p);
	if (r < 0)
		return r;
	if (!S_ISDIR(p->mode))
		return -ENOTDIR;
	return 0;
}

static int mkdir_txn(struct idx_txn *t, void *arg)
{
	struct reg_op *o = arg;
	struct inode_rec p, d;
	uint64_t ino;
	int r;

	if ((r = reg_op_parent_txn(t, o->parent, &p)) < 0)
		return r;
	switch (p.kind) {
	case REG_MODELS:
		return reg_model_create_txn(t, o->who, o->name, o->mode,
					    &o->rec);
	case REG_MODEL:
		if (!reg_name_dot(o->name) && reg_check_name(o->name) < 0)
			return strcmp(o->name, "stages") ? -EINVAL : -EEXIST;
		r = reg_version_create_txn(t, o->who, &p, o->name, o->mode,
					   &o->rec);
		if (r < 0)
			return r;
		return reg_audit_put_txn(t, o->who, &(struct audit_ev){
			.op = "version.create", .model = p.name,
			.version = o->name });
	case REG_STAGES:
		return -EPERM;
	default:
		break;
	}
	if ((r = reg_draft_dir_txn(t, &p)) < 0)
		return r;
	if (reg_name_get_txn(t, p.ino, o->name, &ino) == 0)
		return -EEXIST;
	if ((r = reg_depth_txn(t, &p)) < 0 || (r = reg_depth_check(r)) < 0)
		return r;
	if ((r = reg_inode_alloc_txn(t, &ino)) < 0)
		return r;
	reg_inode_init(&d, ino, REG_DIR, o->who, o->mode, p.ino, p.model,
		       reg_version_of(&p), o->name);
	if ((r = reg_inode_put_txn(t, &d)) < 0 ||
	    (r = reg_name_put_txn(t, p.ino, o->name, ino, 0)) < 0 ||
	    (r = reg_touch_dir_txn(t, &p)) < 0)
		return r;
	o->rec = d;
	return 0;
}

int reg_mkdir(struct reg_registry *reg, const struct reg_caller *who,
	      uint64_t parent, const char *name, mode_t mode,
	      struct reg_attr *ret)
{
	struct reg_op o = { .reg = reg, .who = who, .parent = parent,
			.name = name, .mode = mode };
	int r;

	if (!reg || !who || !name || !ret)
		return -EINVAL;
	if ((r = reg_check_fname(name)) < 0)
		return r;
	if (parent == REG_ROOT_INO || parent == REG_MREGDIR_INO)
		return -EPERM;
	r = reg_change(reg, mkdir_txn, &o);
	reg_audit_ino_failure(reg, who, r, parent, &(struct audit_ev){
		.op = "mkdir", .path = name });
	if (r < 0)
		return r;
	reg_inode_attr(&o.rec, ret);
	return 0;
}

int reg_file_gone_txn(struct reg_op *o, struct idx_txn *t, struct inode_rec *c)
{
	int r;

	if (!reg_file_open_here(o->reg, c->ino))
		return reg_inode_delete_txn(t, c);
	if (o->keep != c->ino) {
		o->want_keep = c->ino;
		return -EAGAIN;
	}
	if ((c->kind == REG_PENDING || c->kind == REG_FILE) &&
	    (r = reg_pending_del_txn(t, c->ino)) < 0)
		return r;
	if ((r = reg_inode_trash_txn(t, c)) < 0)
		return r;
	o->trashed = true;
	return 0;
}

static void keep_done(struct reg_registry *reg, const struct reg_op *o, int r)
{
	if (!o->keep)
		return;
	if (r >= 0 && o->trashed)
		reg_file_trashed_here(reg, o->keep);
	else
		reg_unpin(reg, o->keep);
}

int reg_txn_keeping(struct reg_registry *reg,
		       int (*fn)(struct idx_txn *, void *), struct reg_op *o)
{
	int r, tries;

	o->keep = 0;
	for (tries = 0;; tries++) {
		o->trashed = false;
		o->want_keep = 0;
		r = reg_change(reg, fn, o);
		if (r != -EAGAIN || !o->want_keep || tries == 3)
			break;
		keep_done(reg, o, r);
		o->keep = o->want_keep;
		reg_pin(reg, o->keep);
	}
	keep_done(reg, o, r);
	return r;
}

static int rmdir_txn(struct idx_txn *t, void *arg)
{
	struct reg_op *o = arg;
	struct inode_rec p, c, s;
	uint64_t ino;
	int r;

	if ((r = reg_op_parent_txn(t, o->parent, &p)) < 0)
		return r;
	if ((r = reg_name_get_txn(t, p.ino, o->name, &ino)) < 0)
		return r;
	if ((r = reg_inode_get_txn(t, ino, &c)) < 0)
		return r;
	if (!S_ISDIR(c.mode))
		return -ENOTDIR;
	switch (c.kind) {
	case REG_MODEL:
		/* only "stages" left, and no stage in it */
		if ((r = reg_inode_get_txn(t, c.stages_ino, &s)) < 0)
			return r;
		if ((r = reg_dir_has_entries_txn(t, s.ino)) != 0)
			return r < 0 ? r : -ENOTEMPTY;
		if ((r = reg_name_del_txn(t, c.ino, "stages")) < 0)
			return r;
		if ((r = reg_dir_has_entries_txn(t, c.ino)) != 0)
			return r < 0 ? r : -ENOTEMPTY;
		if ((r = reg_inode_delete_txn(t, &s)) < 0 ||
		    (r = reg_inode_delete_txn(t, &c)) < 0 ||
		    (r = reg_name_del_txn(t, p.ino, o->name)) < 0)
			return r;
		return reg_audit_put_txn(t, o->who, &(struct audit_ev){
			.op = "model.remove", .model = c.name });
	case REG_STAGES:
		return -EPERM;
	case REG_VERSION:
		if (c.flags & INODE_SEALED)
			return reg_version_remove_txn(o->reg, t, o->who, &p,
						      &c);
		if ((r = reg_dir_has_entries_txn(t, c.ino)) != 0)
			return r < 0 ? r : -ENOTEMPTY;
		if ((r = reg_version_staged_txn(t, &p, c.ino)) != 0)
			return r < 0 ? r : -EBUSY;
		if ((r = reg_inode_delete_txn(t, &c)) < 0 ||
		    (r = reg_name_del_txn(t, p.ino, o->name)) < 0)
			return r;
		return reg_audit_put_txn(t, o->who, &(struct audit_ev){
			.op = "version.remove", .model = p.name,
			.version = c.name });
	default:
		break;
	}
	if ((r = reg_draft_dir_txn(t, &p)) < 0)
		return r;
	if ((r = reg_dir_has_entries_txn(t, c.ino)) != 0)
		return r < 0 ? r : -ENOTEMPTY;
	if ((r = reg_inode_delete_txn(t, &c)) < 0 ||
	    (r = reg_name_del_txn(t, p.ino, o->name)) < 0)
		return r;
	return reg_touch_dir_txn(t, &p);
}

/* Removes one name of directory parent with fn (op, for the audit), in a
 * transaction; a refusal is audited after it. */
static int remove_name(struct reg_registry *reg, const struct reg_caller *who,
		       uint64_t parent, const char *name,
		       int (*fn)(struct idx_txn *, void *), const char *op)
{
	struct reg_op o = { .reg = reg, .who = who, .parent = parent,
			.name = name };
	int r;

	if (!reg || !who || !name)
		return -EINVAL;
	if ((r = reg_check_fname(name)) < 0)
		return r;
	if (reg_ino_virtual(parent) && parent != REG_MODELS_INO)
		return -EPERM; /* "/" and .mreg/ are fixed */
	r = reg_txn_keeping(reg, fn, &o);
	if (o.refused)
		reg_audit_refusal(reg, who, &o.refusal);
	else
		reg_audit_ino_failure(reg, who, r, parent, &(struct audit_ev){
		.op = op, .path = name });
	return r;
}

int reg_rmdir(struct reg_registry *reg, const struct reg_caller *who,
	      uint64_t parent, const char *name)
{
	return remove_name(reg, who, parent, name, rmdir_txn, "rmdir");
}

static int unlink_txn(struct idx_txn *t, void *arg)
{
	struct reg_op *o = arg;
	struct inode_rec p, c, m;
	uint64_t ino;
	int r;

	if ((r = reg_op_parent_txn(t, o->parent, &p)) < 0)
		return r;
	if (p.kind == REG_STAGES) {
		if ((r = reg_inode_get_txn(t, p.model, &m)) < 0)
			return r;
		r = reg_stage_remove_txn(o->reg, t, o->who, &m, o->name,
					 HIST_REMOVE, o->reason,
					 sizeof(o->reason));
		if (r == -EACCES) {
			reg_stage_target_name_txn(t, &m, o->name,
						  o->refused_version,
						  sizeof(o->refused_version));
			o->refused = true;
			o->refusal = (struct audit_ev){ .op = "stage.remove",
				.result = "refused", .model = m.name,
				.version = o->refused_version[0] ?
					o->refused_version : NULL,
				.stage = o->name, .reason = o->reason };
		}
		return r;
	}
	if ((r = reg_name_get_txn(t, p.ino, o->name, &ino)) < 0)
		return r;
	if ((r = reg_inode_get_txn(t, ino, &c)) < 0)
		return r;
	if (S_ISDIR(c.mode))
		return -EISDIR;
	if (c.kind != REG_PENDING && (r = reg_draft_dir_txn(t, &p)) < 0)
		return r;
	if ((r = reg_name_del_txn(t, p.ino, o->name)) < 0 ||
	    (r = reg_file_gone_txn(o, t, &c)) < 0)
		return r;
	return p.kind == REG_MODEL ? 0 : reg_touch_dir_txn(t, &p);
}

int reg_unlink(struct reg_registry *reg, const struct reg_caller *who,
	       uint64_t parent, const char *name)
{
	return remove_name(reg, who, parent, name, unlink_txn, "unlink");
}

int reg_check_link_target(const char *target, int depth)
{
	const char *s = target, *e;
	int d = depth;

	if (!*target || target[0] == '/' || strlen(target) >= 4096)
		return -EINVAL;
	while (*s) {
		e = strchrnul(s, '/');
		if (e - s == 2 && s[0] == '.' && s[1] == '.') {
			if (--d < 0)
				return -EINVAL;
		} else if (e - s > 0 && !(e - s == 1 && s[0] == '.')) {
			d++;
		}
		s = *e ? e + 1 : e;
	}
	return 0;
}

static int symlink_txn(struct idx_txn *t, void *arg)
{
	struct reg_op *o = arg;
	struct inode_rec p, m, v, l;
	uint64_t ino;
	int r;

	if ((r = reg_op_parent_txn(t, o->parent, &p)) < 0)
		return r;
	if (p.kind == REG_STAGES) {
		if (reg_check_stage(o->name) < 0)
			return -EINVAL;
		if ((r = reg_inode_get_txn(t, p.model, &m)) < 0)
			return r;
		if (reg_name_get_txn(t, p.ino, o->name, &ino) == 0)
			return -EEXIST;
		if ((r = reg_stage_target_parse_txn(t, &m, o->target, &v)) < 0)
			return r;
		r = reg_stage_set_txn(o->reg, t, o->who, &m, o->name, &v,
				      HIST_PROMOTE, o->reason,
				      sizeof(o->reason));
		if (r == -EACCES) {
			o->refused = true;
			o->refusal = (struct audit_ev){ .op = "promote",
				.result = "refused", .model = m.name,
				.version = v.name, .stage = o->name,
				.reason = o->reason };
		}
		if (r < 0)
			return r;
		return reg_name_get_txn(t, p.ino, o->name, &ino) < 0 ? -EIO :
		       reg_inode_get_txn(t, ino, &o->rec);
	}
	if (p.kind == REG_MODEL || p.kind == REG_MODELS)
		return -EPERM;
	if ((r = reg_draft_dir_txn(t, &p)) < 0)
		return r;
	if ((r = reg_depth_txn(t, &p)) < 0)
		return r;
	if ((r = reg_check_link_target(o->target, r)) < 0)
		return r;
	if (reg_name_get_txn(t, p.ino, o->name, &ino) == 0)
		return -EEXIST;
	if ((r = reg_inode_alloc_txn(t, &ino)) < 0)
		return r;
	reg_inode_init(&l, ino, REG_SYMLINK, o->who, 0777, p.ino, p.model,
		       reg_version_of(&p), o->name);
	snprintf(l.target_path, sizeof(l.target_path), "%s", o->target);
	l.size = strlen(o->target);
	if ((r = reg_inode_put_txn(t, &l)) < 0 ||
	    (r = reg_name_put_txn(t, p.ino, o->name, ino, 0)) < 0 ||
	    (r = reg_touch_dir_txn(t, &p)) < 0)
		return r;
	o->rec = l;
	return 0;
}

int reg_symlink(struct reg_registry *reg, const struct reg_caller *who,
		uint64_t parent, const char *name, const char *target,
		struct reg_attr *ret)
{
	struct reg_op o = { .reg = reg, .who = who, .parent = parent,
			.name = name, .target = target };
	int r;

	if (!reg || !who || !name || !target || !ret)
		return -EINVAL;
	if ((r = reg_check_fname(name)) < 0)
		return r;
	if (reg_ino_virtual(parent))
		return -EPERM;
	r = reg_change(reg, symlink_txn, &o);
	if (o.refused)
		reg_audit_refusal(reg, who, &o.refusal);
	else
		reg_audit_ino_failure(reg, who, r, parent, &(struct audit_ev){
		.op = "symlink", .path = name });
	if (r < 0)
		return r;
	reg_inode_attr(&o.rec, ret);
	return 0;
}
