/* pending.c — pending files: a file created at a model root becomes the
 * model's next version when it is done (SPEC §2.1).
 *
 * Until then it lives only as long as the process writing it: its note in
 * META "pending/" + be64 inode names the life token of that process
 * (live.c), so that what a dead process left is found without a scan and
 * removed (reg_pending_cleanup(), at open and each tick). The same notes
 * keep the new files of drafts until their first commit. A pending file
 * is registered in the transaction that commits its last bytes at its
 * last close (close.c), or in the one that renames its dot name to a
 * visible name: a new version holds it, sealed.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

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

/* ---- the notes, and what dead writers left ---------------------------- */

static void pending_key(uint64_t ino, uint8_t *k)
{
	memcpy(k, PENDING_PREFIX, sizeof(PENDING_PREFIX) - 1);
	be64_put(k + sizeof(PENDING_PREFIX) - 1, ino);
}

int reg_pending_add_txn(struct reg_registry *reg, struct idx_txn *t,
			uint64_t ino)
{
	uint8_t k[sizeof(PENDING_PREFIX) - 1 + 8], v[8];

	pending_key(ino, k);
	be64_put(v, reg->live_token);
	return idx_put(t, IDX_META, k, sizeof(k), v, sizeof(v), 0);
}

int reg_pending_del_txn(struct idx_txn *t, uint64_t ino)
{
	uint8_t k[sizeof(PENDING_PREFIX) - 1 + 8];
	int r;

	pending_key(ino, k);
	r = idx_del(t, IDX_META, k, sizeof(k));
	return r == -ENOENT ? 0 : r;
}

bool reg_pending_ours_txn(struct reg_registry *reg, struct idx_txn *t,
			  uint64_t ino)
{
	uint8_t k[sizeof(PENDING_PREFIX) - 1 + 8];
	struct idx_val v;

	pending_key(ino, k);
	return idx_get(t, IDX_META, k, sizeof(k), &v) == 0 && v.len == 8 &&
	       be64_get(v.data) == reg->live_token;
}

struct pending_list {
	struct reg_registry *reg;
	uint64_t *v;
	size_t n, cap;
};

static int pending_one(void *arg, const struct idx_val *k,
		       const struct idx_val *v)
{
	struct pending_list *l = arg;
	uint32_t pid;

	if (k->len != sizeof(PENDING_PREFIX) - 1 + 8)
		return 0;
	if (v->len == 8) {
		if (reg_live_token_alive(l->reg, be64_get(v->data)))
			return 0;
	} else if (v->len == 4) {
		/* a note of an older mreg: a PID, the best it had */
		memcpy(&pid, v->data, 4);
		if (pid != (uint32_t)getpid() &&
		    (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			return 0;
	}
	if (ARRAY_GROW(l->v, l->cap, l->n) < 0)
		return -ENOMEM;
	l->v[l->n++] = be64_get((const uint8_t *)k->data + k->len - 8);
	return 0;
}

/* The inodes noted by dead processes, into l. */
static int pending_dead_txn(struct idx_txn *t, void *arg)
{
	struct pending_list *l = arg;

	l->n = 0;
	return idx_scan(t, IDX_META, PENDING_PREFIX,
			sizeof(PENDING_PREFIX) - 1, NULL, 0, pending_one, l);
}

int reg_pending_drop_txn(struct idx_txn *t, const struct inode_rec *f)
{
	uint8_t k[8];
	int r;

	be64_put(k, f->ino);
	if ((r = reg_extents_drop_txn(t, f->ino)) < 0 ||
	    ((r = reg_name_del_txn(t, f->parent, f->name)) < 0 &&
	     r != -ENOENT) ||
	    (r = idx_del(t, IDX_INODES, k, 8)) < 0)
		return r;
	return reg_pending_del_txn(t, f->ino);
}

/* Is f, noted by a dead process, still what it left: a pending file, or a
 * file of a draft never committed (not unlinked meanwhile)? */
static int left_unfinished_txn(struct idx_txn *t, const struct inode_rec *f)
{
	struct inode_rec v;
	uint64_t ino;
	int r;

	if (f->flags & (INODE_TRASHED | INODE_SEALED))
		return 0;
	if (f->kind == REG_PENDING)
		return 1;
	if (f->kind != REG_FILE)
		return 0;
	if (reg_name_get_txn(t, f->parent, f->name, &ino) < 0 || ino != f->ino)
		return 0;
	if ((r = reg_inode_get_txn(t, f->version, &v)) < 0)
		return r == -ENOENT ? 0 : r;
	return !(v.flags & INODE_SEALED);
}

static int reap_txn(struct idx_txn *t, struct pending_list *l)
{
	struct inode_rec f;
	size_t i;
	int r;

	if ((r = pending_dead_txn(t, l)) < 0)
		return r;
	for (i = 0; i < l->n; i++) {
		r = reg_inode_get_txn(t, l->v[i], &f);
		if (r == 0)
			r = left_unfinished_txn(t, &f);
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == 1) {
			if ((r = reg_pending_drop_txn(t, &f)) < 0)
				return r;
			log_msg(LOG_LVL_INFO, "removed '%s', left half "
				"written by a process that died", f.name);
		} else if ((r = reg_pending_del_txn(t, l->v[i])) < 0) {
			return r;
		}
	}
	return 0;
}

int reg_pending_reap_txn(struct reg_registry *reg, struct idx_txn *t)
{
	struct pending_list l = { .reg = reg };
	int r = reap_txn(t, &l);

	free(l.v);
	return r;
}

static int pending_cleanup_txn(struct idx_txn *t, void *arg)
{
	return reap_txn(t, arg);
}

int reg_pending_cleanup(struct reg_registry *reg)
{
	struct pending_list l = { .reg = reg };
	int r = idx_read(reg->ix, pending_dead_txn, &l);

	if (r == 0 && l.n > 0)
		r = reg_change(reg, pending_cleanup_txn, &l);
	free(l.v);
	return r;
}

