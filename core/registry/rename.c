/* rename.c — rename(2) in the registry: a stage moved or replaced (a
 * promotion), a pending file or a dot-named draft registered by its
 * visible name, entries moved inside a draft (never out of their version,
 * never deeper than the depth limit, never carrying a symlink out of its
 * version). */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

static int link_inside(UNUSED void *arg, const struct inode_rec *r, int depth)
{
	if (r->kind == REG_SYMLINK &&
	    reg_check_link_target(r->target_path, depth) < 0)
		return log_err(-EINVAL, "symlink '%s' -> '%s' would point "
			       "outside its version from there", r->name,
			       r->target_path);
	return 0;
}

/* Do the symlinks under directory dir, which sits depth levels below its
 * version's root, stay inside the version? A link checked when it was
 * made can leave it once it, or a directory holding it, moves to a
 * shallower place: -EINVAL then (logged). */
static int links_inside_txn(struct idx_txn *t, uint64_t dir, int depth)
{
	return reg_tree_walk_txn(t, dir, depth, link_inside, NULL);
}

/* Entry c moves from directory p into directory np of the same draft: do
 * the symlinks it is or holds still stay inside the version? (Deeper
 * they always do: a target that stays inside from some depth stays inside
 * from any greater one.) */
static int move_keeps_links_txn(struct idx_txn *t, const struct inode_rec *c,
				const struct inode_rec *p,
				const struct inode_rec *np)
{
	int from, to;

	if (!S_ISLNK(c->mode) && !S_ISDIR(c->mode))
		return 0;
	if ((from = reg_depth_txn(t, p)) < 0)
		return from;
	if ((to = reg_depth_txn(t, np)) < 0)
		return to;
	if (to >= from)
		return 0;
	if (S_ISDIR(c->mode))
		return links_inside_txn(t, c->ino, to + 1);
	if (reg_check_link_target(c->target_path, to) < 0)
		return log_err(-EINVAL, "symlink '%s' -> '%s' would point "
			       "outside its version from there", c->name,
			       c->target_path);
	return 0;
}

/* Is a an ancestor of (or equal to) directory d? */
static int is_ancestor_txn(struct idx_txn *t, uint64_t a, uint64_t d)
{
	struct inode_rec cur;
	int r, n = 0;

	while (d) {
		if (d == a)
			return 1;
		r = reg_inode_get_txn(t, d, &cur);
		if (r < 0)
			return r;
		if (cur.kind != REG_DIR)
			return 0;
		d = cur.parent;
		if (++n > 4096)
			return -EIO;
	}
	return 0;
}

static int rename_stage_txn(struct reg_op *o, struct idx_txn *t,
			    struct inode_rec *p)
{
	struct inode_rec m, s, v;
	uint64_t ino;
	int r;

	if (reg_check_stage(o->newname) < 0)
		return -EINVAL;
	if ((r = reg_inode_get_txn(t, p->model, &m)) < 0)
		return r;
	if ((r = reg_name_get_txn(t, p->ino, o->name, &ino)) < 0 ||
	    (r = reg_inode_get_txn(t, ino, &s)) < 0)
		return r;
	if (strcmp(o->name, o->newname) == 0)
		return 0;
	if ((o->flags & REG_RENAME_NOREPLACE) &&
	    reg_name_get_txn(t, p->ino, o->newname, &ino) == 0)
		return -EEXIST;
	if ((r = reg_inode_get_txn(t, s.target, &v)) < 0)
		return r;
	/* the new name keeps its inode and takes the target (for its history
	   a promotion: ln -sfn and mv -T promote this way); the old name's
	   inode stays readable (trashed) for whoever resolved it just now */
	r = reg_stage_set_txn(o->reg, t, o->who, &m, o->newname, &v,
			      HIST_PROMOTE, o->reason, sizeof(o->reason));
	if (r == 0)
		r = reg_stage_remove_txn(o->reg, t, o->who, &m, o->name,
					 HIST_MOVE, o->reason,
					 sizeof(o->reason));
	if (r == -EACCES) {
		o->refused = true;
		o->refusal = (struct audit_ev){ .op = "promote",
			.result = "refused", .model = m.name,
			.version = v.name, .stage = o->newname,
			.from = o->name, .reason = o->reason };
	}
	return r;
}

int reg_rename_in_model_txn(struct reg_op *o, struct idx_txn *t,
			       struct inode_rec *m)
{
	struct inode_rec c;
	uint64_t ino;
	int r;

	if ((r = reg_name_get_txn(t, m->ino, o->name, &ino)) < 0 ||
	    (r = reg_inode_get_txn(t, ino, &c)) < 0)
		return r;
	if (c.kind == REG_STAGES)
		return -EPERM;
	if (reg_name_get_txn(t, m->ino, o->newname, &ino) == 0)
		return -EEXIST;
	if (c.kind == REG_PENDING) {
		if ((r = reg_name_del_txn(t, m->ino, o->name)) < 0)
			return r;
		snprintf(c.name, sizeof(c.name), "%s", o->newname);
		c.ctime = now_ns();
		if (reg_name_dot(o->newname)) {
			if ((r = reg_inode_put_txn(t, &c)) < 0)
				return r;
			return reg_name_put_txn(t, m->ino, o->newname, c.ino,
						0);
		}
		o->registered = true;
		o->registered_ino = c.ino;
		return reg_version_register_txn(o->reg, t, o->who, &c, NULL);
	}
	if (c.kind != REG_VERSION)
		return -EPERM;
	if (c.flags & INODE_SEALED)
		return -EROFS;
	if (!reg_name_dot(o->newname) && reg_check_name(o->newname) < 0)
		return -EINVAL;
	if ((r = reg_version_staged_txn(t, m, c.ino)) != 0)
		return r < 0 ? r : -EBUSY;
	if ((r = reg_name_del_txn(t, m->ino, o->name)) < 0 ||
	    (r = reg_name_put_txn(t, m->ino, o->newname, c.ino, 0)) < 0)
		return r;
	snprintf(c.name, sizeof(c.name), "%s", o->newname);
	if (reg_version_number_seen(m, c.name) &&
	    (r = reg_inode_put_txn(t, m)) < 0)
		return r;
	if (reg_name_dot(o->name) && !reg_name_dot(o->newname)) {
		/* mv .7.part 7: the write-then-rename idiom seals */
		c.flags &= (uint16_t)~INODE_DOTDRAFT;
		o->sealed_version = true;
		o->sealed_ino = c.ino;
		r = reg_seal_txn(o->reg, t, o->who, &c);
		return r == -EALREADY ? 0 : r;
	}
	if (!reg_name_dot(o->newname))
		c.flags &= (uint16_t)~INODE_DOTDRAFT;
	else
		c.flags |= INODE_DOTDRAFT;
	return reg_inode_put_txn(t, &c);
}

/* Directory c moves from p into np: -ENAMETOOLONG when its tree would
 * reach below REG_DEPTH_MAX. Only a move deeper walks c's tree. */
static int moved_depth_check_txn(struct idx_txn *t, const struct inode_rec *p,
				 const struct inode_rec *np,
				 const struct inode_rec *c)
{
	int from, to, h;

	if (p->ino == np->ino)
		return 0;
	if ((from = reg_depth_txn(t, p)) < 0)
		return from;
	if ((to = reg_depth_txn(t, np)) < 0)
		return to;
	if (to <= from)
		return 0; /* not deeper: its tree fits where it lands */
	if ((h = reg_depth_check(to)) < 0)
		return h;
	/* c lands at depth to + 1, its deepest directory h below it */
	h = reg_tree_height_txn(t, c->ino, REG_DEPTH_MAX - to - 1);
	return h < 0 ? h : 0;
}

static int rename_txn(struct idx_txn *t, void *arg)
{
	struct reg_op *o = arg;
	struct inode_rec p, np, c, old;
	uint64_t ino, oino;
	int r;

	if ((r = reg_op_parent_txn(t, o->parent, &p)) < 0 ||
	    (r = reg_op_parent_txn(t, o->newparent, &np)) < 0)
		return r;
	if (p.kind == REG_STAGES || np.kind == REG_STAGES) {
		if (p.ino == np.ino)
			return rename_stage_txn(o, t, &p);
		if (p.kind == np.kind)
			return -EXDEV;
		/* into (or out of) a version: sealed content does not
		   change, whatever would come or go (`mv stages/A
		   stages/B` without -T moves A into B's version) */
		r = reg_draft_dir_txn(t, p.kind == REG_STAGES ? &np : &p);
		return r == -EROFS ? r : -EINVAL;
	}
	if (p.kind == REG_MODEL || np.kind == REG_MODEL) {
		if (p.ino != np.ino)
			return -EXDEV;
		return reg_rename_in_model_txn(o, t, &p);
	}
	if (p.kind == REG_MODELS || np.kind == REG_MODELS)
		return -EPERM;
	/* inside drafts */
	if ((r = reg_draft_dir_txn(t, &p)) < 0 || (r = reg_draft_dir_txn(t, &np)) < 0)
		return r;
	if (reg_version_of(&p) != reg_version_of(&np))
		return -EXDEV;
	if ((r = reg_name_get_txn(t, p.ino, o->name, &ino)) < 0 ||
	    (r = reg_inode_get_txn(t, ino, &c)) < 0)
		return r;
	if (S_ISDIR(c.mode)) {
		r = is_ancestor_txn(t, c.ino, np.ino);
		if (r != 0)
			return r < 0 ? r : -EINVAL;
		if ((r = moved_depth_check_txn(t, &p, &np, &c)) < 0)
			return r;
	}
	if ((r = move_keeps_links_txn(t, &c, &p, &np)) < 0)
		return r;
	if (reg_name_get_txn(t, np.ino, o->newname, &oino) == 0) {
		if (oino == c.ino)
			return 0;
		if (o->flags & REG_RENAME_NOREPLACE)
			return -EEXIST;
		if ((r = reg_inode_get_txn(t, oino, &old)) < 0)
			return r;
		if (S_ISDIR(old.mode) && !S_ISDIR(c.mode))
			return -EISDIR;
		if (!S_ISDIR(old.mode) && S_ISDIR(c.mode))
			return -ENOTDIR;
		if (S_ISDIR(old.mode) &&
		    (r = reg_dir_has_entries_txn(t, old.ino)) != 0)
			return r < 0 ? r : -ENOTEMPTY;
		if ((r = reg_name_del_txn(t, np.ino, o->newname)) < 0 ||
		    (r = S_ISDIR(old.mode) ? reg_inode_delete_txn(t, &old) :
					     reg_file_gone_txn(o, t, &old)) < 0)
			return r;
	}
	if ((r = reg_name_del_txn(t, p.ino, o->name)) < 0 ||
	    (r = reg_name_put_txn(t, np.ino, o->newname, c.ino, 0)) < 0)
		return r;
	c.parent = np.ino;
	snprintf(c.name, sizeof(c.name), "%s", o->newname);
	c.ctime = now_ns();
	if ((r = reg_inode_put_txn(t, &c)) < 0 ||
	    (r = reg_touch_dir_txn(t, &p)) < 0)
		return r;
	if (np.ino != p.ino)
		return reg_touch_dir_txn(t, &np);
	return 0;
}

int reg_rename(struct reg_registry *reg, const struct reg_caller *who,
	       uint64_t parent, const char *name, uint64_t newparent,
	       const char *newname, unsigned flags)
{
	struct reg_op o = { .reg = reg, .who = who, .parent = parent,
			.name = name, .newparent = newparent,
			.newname = newname, .flags = flags };
	struct reg_attr a;
	int r;

	if (!reg || !who || !name || !newname)
		return -EINVAL;
	if ((r = reg_check_fname(name)) < 0 || (r = reg_check_fname(newname)) < 0)
		return r;
	if (flags & ~REG_RENAME_NOREPLACE)
		return -EINVAL; /* exchange, whiteout, what comes next */
	if (reg_ino_virtual(parent) || reg_ino_virtual(newparent))
		return (parent == REG_MODELS_INO &&
			newparent == REG_MODELS_INO) ? -EPERM : -EPERM;
	/* a pending file still open for writing here: commit it first */
	if (reg_lookup(reg, parent, name, &a) == 0 &&
	    a.kind == REG_PENDING) {
		r = reg_writer_commit(reg, who, a.ino);
		if (r < 0)
			return r;
	}
	r = reg_txn_keeping(reg, rename_txn, &o);
	if (o.refused)
		reg_audit_refusal(reg, who, &o.refusal);
	else
		reg_audit_ino_failure(reg, who, r, parent, &(struct audit_ev){
		.op = "rename", .path = name });
	if (r < 0)
		return r;
	if (o.sealed_version)
		reg_version_writers_seal(reg, o.sealed_ino);
	if (o.registered)
		reg_writer_registered(reg, o.registered_ino);
	return 0;
}
