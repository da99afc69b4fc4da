/* setattr.c — chmod, chown, utimens and truncate (SPEC §2.3).
 *
 * Sealed content keeps its bytes and its read-only mode: a sealed version
 * takes a chmod that still grants no write and a chown, anything sealed
 * accepts an atime alone (not kept), and everything else is -EROFS; a
 * stage takes times only (-EPERM). chmod a-w of a draft version seals it.
 * A change of mode or owner of what a protected stage serves is the stage
 * policy's to allow (reg_policy_attr_txn). A truncation goes through the
 * file's write state and is committed before it returns; times set on a
 * file open for writing are kept by its next commit (cp -p; writer.c).
 */
#include "internal.h"

#include <errno.h>
#include <sys/stat.h>

struct setattr_arg {
	struct reg_registry *reg;
	const struct reg_caller *who;
	uint64_t ino;
	const struct reg_setattr *sa;
	struct inode_rec rec, old;
	bool sealed_version;
	char reason[256];             /* a refusal by policy: why */
};

static int64_t set_time(const struct timespec *ts)
{
	if (ts->tv_nsec == UTIME_NOW)
		return now_ns();
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int setattr_txn(struct idx_txn *t, void *arg)
{
	struct setattr_arg *a = arg;
	const struct reg_setattr *sa = a->sa;
	struct inode_rec *r = &a->rec;
	bool sealed;
	int e;

	a->sealed_version = false;
	a->reason[0] = '\0';
	if ((e = reg_inode_get_txn(t, a->ino, r)) < 0)
		return e;
	a->old = *r;
	if ((e = reg_sealed_txn(t, r)) < 0)
		return e;
	sealed = e;
	if (r->kind == REG_STAGE || r->kind == REG_STAGES)
		return (sa->valid & ~(REG_SET_ATIME | REG_SET_MTIME)) ?
		       -EPERM : 0;
	if (sealed) {
		/* chmod a-w again, or chown by an admin: no content change */
		if (r->kind == REG_VERSION &&
		    !(sa->valid & ~(REG_SET_MODE | REG_SET_UID | REG_SET_GID |
				    REG_SET_ATIME)) &&
		    (!(sa->valid & REG_SET_MODE) || !(sa->mode & 0222))) {
			if (sa->valid & REG_SET_MODE)
				r->mode = (r->mode & S_IFMT) |
					  (sa->mode & 07777);
		} else if (sa->valid == REG_SET_ATIME) {
			return 0;
		} else {
			return -EROFS;
		}
	} else if (sa->valid & REG_SET_MODE) {
		r->mode = (r->mode & S_IFMT) | (sa->mode & 07777);
	}
	if (sa->valid & REG_SET_UID)
		r->uid = sa->uid;
	if (sa->valid & REG_SET_GID)
		r->gid = sa->gid;
	if (sa->valid & REG_SET_ATIME)
		r->atime = set_time(&sa->atime);
	if (sa->valid & REG_SET_MTIME)
		r->mtime = set_time(&sa->mtime);
	r->ctime = now_ns();
	if ((e = reg_policy_attr_txn(t, a->who, &a->old, r, a->reason,
				     sizeof(a->reason))) < 0)
		return e;
	if (!sealed && r->kind == REG_VERSION && (sa->valid & REG_SET_MODE) &&
	    !(sa->mode & 0222) && !(r->flags & INODE_DOTDRAFT)) {
		/* chmod a-w of a draft seals it */
		if ((e = reg_inode_put_txn(t, r)) < 0)
			return e;
		e = reg_seal_txn(a->reg, t, a->who, r);
		if (e < 0 && e != -EALREADY)
			return e;
		a->sealed_version = true;
		return reg_inode_get_txn(t, a->ino, r);
	}
	return reg_inode_put_txn(t, r);
}

/* What a setattr is called in the audit trail. */
static const char *setattr_op(const struct reg_setattr *sa)
{
	if (sa->valid & REG_SET_MODE)
		return "chmod";
	if (sa->valid & (REG_SET_UID | REG_SET_GID))
		return "chown";
	return "utimens";
}

int reg_setattr(struct reg_registry *reg, const struct reg_caller *who,
		uint64_t ino, const struct reg_setattr *sa, struct reg_file *fh,
		struct reg_attr *ret)
{
	struct setattr_arg a = { .reg = reg, .who = who, .ino = ino, .sa = sa };
	struct reg_setattr rest;
	int r;

	if (!reg || !who || !sa || !ret)
		return -EINVAL;
	if (reg_ino_virtual(ino))
		return ino == REG_AUDITLOG_INO || (ino & REG_HISTORY_BIT) ?
		       -EACCES : -EPERM;
	rest = *sa;
	if (sa->valid & REG_SET_SIZE) {
		struct reg_attr cur;

		r = reg_getattr(reg, ino, &cur);
		if (r < 0)
			return r;
		if (S_ISDIR(cur.mode))
			return -EISDIR;
		if (cur.sealed) {
			reg_audit_ino_failure(reg, who, -EROFS, ino,
					  &(struct audit_ev){ .op = "truncate" });
			return -EROFS;
		}
		if (cur.kind != REG_FILE && cur.kind != REG_PENDING)
			return -EINVAL;
		(void)fh; /* the write state is shared: any handle will do */
		r = reg_writer_truncate(reg, who, ino, sa->size);
		if (r < 0)
			return r;
		rest.valid &= ~REG_SET_SIZE;
	}
	if (rest.valid) {
		r = reg_change(reg, setattr_txn, &a);
		reg_audit_ino_failure(reg, who, r, ino, &(struct audit_ev){
			.op = setattr_op(sa),
			.reason = a.reason[0] ? a.reason : NULL });
		if (r < 0)
			return r;
		if (a.sealed_version)
			reg_version_writers_seal(reg, a.rec.ino);
		if (rest.valid & REG_SET_MTIME)
			reg_writer_times_kept(reg, ino);
		reg_inode_attr(&a.rec, ret);
		if (fh && fh->ws)
			ret->size = fh->ws->size;
		return 0;
	}
	r = reg_getattr(reg, ino, ret);
	if (r == 0 && fh && fh->ws)
		ret->size = fh->ws->size;
	return r;
}
