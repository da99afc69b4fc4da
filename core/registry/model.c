/* model.c — models and versions are born here: a model's record, a
 * version's (a draft), the next version number (SPEC §2.1: N is one more
 * than the highest the model ever had), and the registration of a
 * pending file or a dot-named draft as the next version. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

int reg_model_create_txn(struct idx_txn *t, const struct reg_caller *who,
			 const char *name, mode_t mode, struct inode_rec *ret)
{
	struct inode_rec m, s;
	uint64_t ino, sino;
	int r;

	if (reg_check_name(name) < 0)
		return -EINVAL;
	if (reg_name_get_txn(t, REG_MODELS_INO, name, &ino) == 0)
		return -EEXIST;
	if ((r = reg_inode_alloc_txn(t, &ino)) < 0 ||
	    (r = reg_inode_alloc_txn(t, &sino)) < 0)
		return r;
	reg_inode_init(&m, ino, REG_MODEL, who, mode, REG_MODELS_INO, ino, 0,
		       name);
	m.stages_ino = sino;
	reg_inode_init(&s, sino, REG_STAGES, who, mode, ino, ino, 0, "stages");
	/* the registry decides who may change a stage (stages.c), so the
	   kernel's mode check must let everyone through */
	s.mode = S_IFDIR | 0777;
	if ((r = reg_inode_put_txn(t, &m)) < 0 ||
	    (r = reg_inode_put_txn(t, &s)) < 0 ||
	    (r = reg_name_put_txn(t, REG_MODELS_INO, name, ino, 0)) < 0 ||
	    (r = reg_name_put_txn(t, ino, "stages", sino, 0)) < 0)
		return r;
	r = reg_audit_put_txn(t, who, &(struct audit_ev){ .op = "model.create",
						  .model = name });
	if (r < 0)
		return r;
	*ret = m;
	return 0;
}

/* Version numbers are never reused: a model remembers the highest
 * integer version it ever held (max_version, kept whoever names a version
 * and however), and its next version is the one after it. */
void reg_version_next_name(const struct inode_rec *m, char *buf, size_t size)
{
	snprintf(buf, size, "%llu", (unsigned long long)m->max_version + 1);
}

bool reg_version_number_seen(struct inode_rec *m, const char *name)
{
	uint64_t num;

	if (!reg_name_is_integer(name, &num) || num <= m->max_version)
		return false;
	m->max_version = num;
	return true;
}

int reg_version_create_txn(struct idx_txn *t, const struct reg_caller *who,
			   struct inode_rec *m, const char *name, mode_t mode,
			   struct inode_rec *ret)
{
	struct inode_rec v;
	uint64_t ino;
	int r;

	if (reg_name_get_txn(t, m->ino, name, &ino) == 0)
		return -EEXIST;
	if ((r = reg_inode_alloc_txn(t, &ino)) < 0)
		return r;
	reg_inode_init(&v, ino, REG_VERSION, who, mode, m->ino, m->ino, 0,
		       name);
	if (reg_name_dot(name))
		v.flags |= INODE_DOTDRAFT;
	if (reg_version_number_seen(m, name)) {
		m->mtime = m->ctime = now_ns();
		if ((r = reg_inode_put_txn(t, m)) < 0)
			return r;
	}
	if ((r = reg_inode_put_txn(t, &v)) < 0 ||
	    (r = reg_name_put_txn(t, m->ino, name, ino, 0)) < 0)
		return r;
	*ret = v;
	return 0;
}

/* A dot-named draft registered as its model's next version: the rename
 * of the draft to that name, in the transaction that picks it. */
static int register_draft_txn(struct idx_txn *t, void *arg)
{
	struct reg_op *o = arg;
	struct inode_rec c, m;
	int r;

	if ((r = reg_inode_get_txn(t, o->ino, &c)) < 0)
		return r;
	if (c.kind != REG_VERSION || !reg_name_dot(c.name))
		return -EINVAL;
	if (c.flags & INODE_SEALED)
		return -EROFS;
	if ((r = reg_inode_get_txn(t, c.model, &m)) < 0)
		return r;
	snprintf(o->name_buf, sizeof(o->name_buf), "%s", c.name);
	reg_version_next_name(&m, o->newname_buf, sizeof(o->newname_buf));
	o->name = o->name_buf;
	o->newname = o->newname_buf;
	return reg_rename_in_model_txn(o, t, &m);
}

int reg_version_register(struct reg_registry *reg,
			 const struct reg_caller *who, uint64_t ino,
			 char *ret_version)
{
	struct reg_op o = { .reg = reg, .who = who, .ino = ino };
	int r;

	if (!reg || !who)
		return -EINVAL;
	if (reg_ino_virtual(ino))
		return -EINVAL;
	r = reg_txn_keeping(reg, register_draft_txn, &o);
	reg_audit_ino_failure(reg, who, r, ino, &(struct audit_ev){
		.op = "register" });
	if (r < 0)
		return r;
	if (o.sealed_version)
		reg_version_writers_seal(reg, o.sealed_ino);
	if (ret_version)
		snprintf(ret_version, REG_NAME_MAX + 1, "%s", o.newname_buf);
	return 0;
}

struct mcreate_arg {
	const struct reg_caller *who;
	const char *model;
	struct inode_rec rec;
};

static int model_create_txn(struct idx_txn *t, void *arg)
{
	struct mcreate_arg *a = arg;

	return reg_model_create_txn(t, a->who, a->model, 0777, &a->rec);
}

int reg_model_create(struct reg_registry *reg, const struct reg_caller *who,
		     const char *model)
{
	struct mcreate_arg a = { .who = who, .model = model };

	if (!reg || !who || !model)
		return -EINVAL;
	return reg_change(reg, model_create_txn, &a);
}
