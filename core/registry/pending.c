/* pending.c — pending files: a file created at a model root becomes the
 * model's next version when it is done (SPEC §2.1).
 *
 * Until then it lives only as long as the process writing it (its note in
 * META "pending/", internal.h). It is registered in the transaction that
 * commits its last bytes at its last close (close.c), or in the one that
 * renames its dot name to a visible name: a new version holds it, sealed.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

int reg_version_register_txn(struct reg_registry *reg, struct idx_txn *t,
			     const struct reg_caller *who, struct inode_rec *f,
			     char *ret_version)
{
	struct inode_rec m, v;
	char name[32];
	int r;

	if ((r = reg_inode_get_txn(t, f->model, &m)) < 0)
		return r;
	reg_version_next_name(&m, name, sizeof(name));
	r = reg_version_create_txn(t, who, &m, name, 0777, &v);
	if (r < 0)
		return r;
	/* a version directory is searchable and readable by all unless
	   the file itself says otherwise: take the model's mode */
	v.mode = S_IFDIR | (m.mode & 07777);
	v.uid = f->uid;
	v.gid = f->gid;
	v.stored = f->stored;
	f->stored = 0;
	if ((r = reg_inode_put_txn(t, &v)) < 0)
		return r;
	if ((r = reg_name_del_txn(t, m.ino, f->name)) < 0 && r != -ENOENT)
		return r;
	if ((r = reg_pending_del_txn(t, f->ino)) < 0)
		return r;
	f->kind = REG_FILE;
	f->parent = v.ino;
	f->version = v.ino;
	f->target = 0;
	if ((r = reg_inode_put_txn(t, f)) < 0 ||
	    (r = reg_name_put_txn(t, v.ino, f->name, f->ino, 0)) < 0)
		return r;
	r = reg_seal_txn(reg, t, who, &v);
	if (r < 0 && r != -EALREADY)
		return r;
	r = reg_audit_put_txn(t, who, &(struct audit_ev){ .op = "register",
		.model = m.name, .version = name, .path = f->name });
	if (r < 0)
		return r;
	if (ret_version)
		snprintf(ret_version, REG_NAME_MAX + 1, "%s", name);
	return 0;
}
