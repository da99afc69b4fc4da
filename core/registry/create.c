/* create.c — making a file: create(2), and mknod(2) of a regular file;
 * link(2) is refused (SPEC §2.5).
 *
 * A file is made inside a draft, or at a model root as a pending file,
 * and is open for writing at once, as a new empty stream (writer.c,
 * stream.c). From then on it lives only as long as the process that made
 * it (its note in META "pending/"): a pending file until it is registered
 * (pending.c), a new file of a draft until the first close by a process
 * that created or wrote it (close.c).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

struct create_arg {
	struct reg_registry *reg;
	const struct reg_caller *who;
	uint64_t parent;
	const char *name;
	mode_t mode;
	bool entered;             /* reg_writers_enter(rec.version) done */
	struct inode_rec rec;
};

static int create_txn(struct idx_txn *t, void *arg)
{
	struct create_arg *a = arg;
	struct inode_rec p;
	uint64_t ino;
	int r;

	if (a->parent == REG_MODELS_INO)
		return -EPERM;
	if ((r = reg_inode_get_txn(t, a->parent, &p)) < 0)
		return r;
	if (!S_ISDIR(p.mode))
		return -ENOTDIR;
	if (reg_name_get_txn(t, p.ino, a->name, &ino) == 0)
		return -EEXIST;
	if (p.kind == REG_MODEL) {
		if (strcmp(a->name, "stages") == 0)
			return -EEXIST;
		if ((r = reg_inode_alloc_txn(t, &ino)) < 0)
			return r;
		reg_inode_init(&a->rec, ino, REG_PENDING, a->who, a->mode,
			       p.ino, p.ino, 0, a->name);
	} else if (p.kind == REG_VERSION || p.kind == REG_DIR) {
		if ((r = reg_sealed_txn(t, &p)) != 0)
			return r < 0 ? r : -EROFS;
		if ((r = reg_inode_alloc_txn(t, &ino)) < 0)
			return r;
		reg_inode_init(&a->rec, ino, REG_FILE, a->who, a->mode, p.ino,
			       p.model,
			       p.kind == REG_VERSION ? p.ino : p.version,
			       a->name);
		p.mtime = p.ctime = now_ns();
		if ((r = reg_inode_put_txn(t, &p)) < 0)
			return r;
		/* no seal runs now: this only counts us */
		if (!a->entered &&
		    (r = reg_writers_enter(a->reg, a->rec.version)) < 0)
			return r;
		a->entered = true;
	} else {
		return -EPERM;
	}
	/* it dies with us until its first commit (a pending file: until
	   it is registered) */
	if ((r = reg_pending_add_txn(a->reg, t, ino)) < 0 ||
	    (r = reg_inode_put_txn(t, &a->rec)) < 0)
		return r;
	return reg_name_put_txn(t, p.ino, a->name, ino, 0);
}

int reg_file_create(struct reg_registry *reg, const struct reg_caller *who,
		    uint64_t parent, const char *name, mode_t mode, int flags,
		    struct reg_attr *ret_attr, struct reg_file **ret_file)
{
	struct create_arg a = { .reg = reg, .who = who, .parent = parent,
				.name = name, .mode = mode };
	struct reg_file *f;
	int r;

	if (!reg || !who || !name || !ret_attr || !ret_file)
		return -EINVAL;
	if ((r = reg_check_fname(name)) < 0)
		return r;
	if (reg_ino_virtual(parent) && parent != REG_MODELS_INO)
		return -EPERM;
	r = reg_change(reg, create_txn, &a);
	reg_audit_ino_failure(reg, who, r, parent, &(struct audit_ev){
		.op = "create", .path = name });
	if (r >= 0 && !(f = reg_file_new(reg, a.rec.ino)))
		r = -ENOMEM;
	if (r < 0) {
		if (a.entered)
			reg_writers_leave(reg, a.rec.version);
		return r;
	}
	f->uid = who->uid;
	f->entered = a.entered;
	f->kind = a.rec.kind;
	f->version = a.rec.version;
	f->flags = flags | O_RDWR;
	f->writer = true;
	r = reg_file_count(reg, f->ino);
	if (r == 0) {
		f->counted = true;
		r = reg_ws_attach(reg, f, true, true);
	}
	if (r < 0) {
		reg_file_free(f);
		return r;
	}
	if (f->kind == REG_FILE) {
		/* (nobody else has the new inode yet) */
		pthread_mutex_lock(&f->ws->lock);
		f->ws->born = false;
		pthread_mutex_unlock(&f->ws->lock);
	}
	reg_inode_attr(&a.rec, ret_attr);
	*ret_file = f;
	return 0;
}

int reg_mknod(struct reg_registry *reg, const struct reg_caller *who,
	      uint64_t parent, const char *name, mode_t mode,
	      struct reg_attr *ret_attr)
{
	struct reg_file *f;
	int r;

	if (!reg || !who || !name || !ret_attr)
		return -EINVAL;
	if (!S_ISREG(mode))
		return -EPERM;
	r = reg_file_create(reg, who, parent, name, mode & 07777,
			    O_WRONLY | O_CREAT | O_EXCL, ret_attr, &f);
	if (r < 0)
		return r;
	/* nobody has a descriptor of it: this close is its last */
	r = reg_file_close(f, who, &(struct reg_closing){ .known = true });
	reg_file_release(f);
	return r;
}

int reg_link(struct reg_registry *reg, const struct reg_caller *who,
	     UNUSED uint64_t ino, UNUSED uint64_t newparent,
	     const char *newname)
{
	int r;

	if (!reg || !who || !newname)
		return -EINVAL;
	r = reg_check_fname(newname);
	return r == -ENAMETOOLONG ? r : -EPERM;
}
