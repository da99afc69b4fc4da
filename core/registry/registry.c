/* registry.c — opening a store, and the namespace: lookups, listings,
 * mkdir, rmdir, unlink, symlink, rename, create, setattr, with the rules of
 * SPEC §1–§3 (names, drafts, sealed content, pending files at a model root).
 *
 * Store layout (DIR, mode 0700):
 *	DIR/index/      LMDB environment (index/lmdb/lmdb.c)
 *	DIR/packs/      pack files (store/pack/pack.c)
 *	DIR/spool/      unnamed (O_TMPFILE) spool files of files being written
 *	DIR/run/        pins-PID: versions a live process has open (regmaint.c);
 *	                live, writers: life tokens, writers of drafts (reglive.c)
 *
 * Key schema of the index (integers in keys big-endian, so they sort):
 *	META     "format"   -> u32 1
 *	         "chunker"  -> u32 min, avg, max (refused if the config differs)
 *	         "next_ino" -> u64 next inode number to hand out
 *	         "created"  -> i64 time the store was made (ns)
 *	         "audit_head"  -> SHA-256 hex of the last AUDIT record
 *	         "audit_bytes" -> u64 length of .mreg/audit.log
 *	         "pending/" + be64 inode -> be64 life token of its writer
 *	                       (files that die with their writer: reglive.c)
 *	         "policy/stage/" S "/" KEY, "policy/hook/" EVENT,
 *	         "policy/admin_group", "policy/stored" -> the stage policies
 *	                       and hooks kept in the registry (regpolicy.c)
 *	NAMES    be64 parent + name bytes       -> u64 inode
 *	INODES   be64 inode                     -> inode record (records.c)
 *	EXTENTS  be64 file inode + be64 offset  -> chunk key + u32 length
 *	CHUNKS   16-byte id + be16 n            -> the store's location
 *	                       bytes + u64 refs (records.c)
 *	         (n tells apart chunks whose ids collide but bytes differ)
 *	XATTRS   be64 inode + key ("metric.auc") -> value bytes
 *	         be64 version + "\001held." S  -> "1": it held stage S
 *	                       (require_stage; never listed)
 *	HISTORY  be64 model inode + be64 seq    -> stage change (records.c)
 *	AUDIT    be64 seq                       -> one JSON object
 *	TRASH    be64 inode                     -> i64 time of removal (ns):
 *	                       a removed version, stage, or a file unlinked
 *	                       while open, for gc to free once unpinned
 * Inodes 1-6 and REG_HISTORY_BIT | model are virtual (registry.h): no
 * INODES record.
 *
 * A model M has a NAMES entry (2, "M"); its directory holds "stages" (its
 * stages directory inode), its versions and its pending files; stages are
 * NAMES entries (stages inode, "Production") -> stage inode whose target
 * field is the version's inode and target_path "../V".
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

void reg_caller_self(struct reg_caller *c)
{
	mode_t m = umask(022);

	umask(m);
	memset(c, 0, sizeof(*c));
	c->uid = geteuid();
	c->gid = getegid();
	c->pid = getpid();
	c->umask = m;
}

/* A draft version's temporary name: ".<anything>" of the kernel's names. */
static bool dot_name(const char *s)
{
	return s[0] == '.' && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* ---- index helpers ---------------------------------------------------- */

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

int reg_children_txn(struct idx_txn *t, uint64_t ino, struct child_list *l)
{
	uint8_t p[8];

	memset(l, 0, sizeof(*l));
	be64_put(p, ino);
	idx_scan(t, IDX_NAMES, p, 8, NULL, 0, collect_child, l);
	return l->err;
}

static int first_child(UNUSED void *arg, UNUSED const struct idx_val *k,
		       UNUSED const struct idx_val *v)
{
	return 1;
}

/* 1 when directory ino has any entry, 0 when empty. */
static int dir_has_entries_txn(struct idx_txn *t, uint64_t ino)
{
	uint8_t p[8];

	be64_put(p, ino);
	return idx_scan(t, IDX_NAMES, p, 8, NULL, 0, first_child, NULL);
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
	/* the registry decides who may change a stage (regstage.c), so the
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

/* m now holds a version called name: true when that raised its highest
 * number (m must then be written back). */
static bool version_number_seen(struct inode_rec *m, const char *name)
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
	if (dot_name(name))
		v.flags |= INODE_DOTDRAFT;
	if (version_number_seen(m, name)) {
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

/* ---- transactions and hooks ------------------------------------------ */

/* Hooks noted by the transaction running on this thread. A transaction
 * callback may run more than once (the map grew): the list is reset at
 * each run, and handed to the runner only after the commit. */
#define NOTES_MAX 16
static __thread struct hook_ev notes[NOTES_MAX];
static __thread int nnotes;

void reg_note_txn(enum hook_event event, const char *model, const char *version,
		  const char *stage, const char *previous,
		  const struct reg_caller *who)
{
	struct hook_ev *ev;

	if (nnotes >= NOTES_MAX)
		return;
	ev = &notes[nnotes++];
	memset(ev, 0, sizeof(*ev));
	ev->event = event;
	strlcpy(ev->model, model ? model : "", sizeof(ev->model));
	strlcpy(ev->version, version ? version : "", sizeof(ev->version));
	strlcpy(ev->stage, stage ? stage : "", sizeof(ev->stage));
	strlcpy(ev->previous, previous ? previous : "", sizeof(ev->previous));
	ev->uid = who->uid;
	ev->gid = who->gid;
	ev->pid = who->pid;
}

struct txn_tramp {
	int (*fn)(struct idx_txn *, void *);
	void *arg;
};

/* After fn: each noted hook gets the program stored for its event, read in
 * the transaction that made the change (none stored: it runs nothing). */
static int tramp_txn(struct idx_txn *t, void *arg)
{
	struct txn_tramp *tr = arg;
	int r, i, e;

	nnotes = 0;
	r = tr->fn(t, tr->arg);
	for (i = 0; r >= 0 && i < nnotes; i++) {
		e = reg_policy_hook_program_txn(t, notes[i].event,
						notes[i].program,
						sizeof(notes[i].program));
		if (e < 0)
			notes[i].program[0] = '\0';
		if (e < 0 && e != -ENOENT)
			log_err(e, "cannot read the hook for '%s/%s'",
				notes[i].model, notes[i].version);
	}
	return r;
}

/* A hook that was dropped or failed is audited as op "hook" with its
 * event, on behalf of the user whose change it followed. */
static void hook_report(void *arg, const struct hook_ev *ev,
			const char *result, const char *reason)
{
	struct reg_caller who = { .uid = ev->uid, .gid = ev->gid,
				  .pid = ev->pid };

	reg_audit_refusal(arg, &who, &(struct audit_ev){
		.op = "hook", .result = result,
		.event = ev->event == HOOK_PROMOTE ? "promote" : "register",
		.model = ev->model, .version = ev->version,
		.stage = ev->stage[0] ? ev->stage : NULL,
		.from = ev->previous[0] ? ev->previous : NULL,
		.reason = reason });
}

/* The runner, started with the first hook to run (hooks are stored in the
 * registry and may be set while this process runs). NULL when it cannot
 * start (logged). */
static struct hooks *hooks_of(struct reg_registry *reg)
{
	struct hooks *h;
	int r;

	pthread_mutex_lock(&reg->hooks_lock);
	if (!reg->hooks) {
		r = hooks_start(reg->cfg, reg->path, hook_report, reg,
				&reg->hooks);
		if (r == 0)
			r = hooks_set_mount(reg->hooks, reg->mount);
		if (r < 0)
			log_err(r, "cannot start the hook runner");
	}
	h = reg->hooks;
	pthread_mutex_unlock(&reg->hooks_lock);
	return h;
}

int reg_change(struct reg_registry *reg, int (*fn)(struct idx_txn *, void *),
	       void *arg)
{
	struct txn_tramp tr = { fn, arg };
	struct hook_ev mine[NOTES_MAX];
	int r, i, n = 0;

	r = idx_write(reg->ix, tramp_txn, &tr);
	reg_writers_txn_end();
	/* copied out first: a dropped hook is audited by a transaction of
	 * its own, which resets the notes */
	for (i = 0; r >= 0 && i < nnotes; i++)
		if (notes[i].program[0])
			mine[n++] = notes[i];
	nnotes = 0;
	for (i = 0; i < n; i++)
		hooks_queue(hooks_of(reg), &mine[i]);
	return r;
}

/* ---- opening -------------------------------------------------------- */

static int mkdir_p(const char *path, mode_t mode)
{
	char *p = strdup(path), *s;
	int r = 0;

	if (!p)
		return -ENOMEM;
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			r = -errno;
			break;
		}
		*s = '/';
	}
	if (r == 0 && mkdir(p, mode) < 0 && errno != EEXIST)
		r = -errno;
	free(p);
	return r;
}

struct init_arg {
	const struct chunker_params *want;
	struct chunker_params have;
	bool mismatch;
	unsigned npacks;      /* pack files in the store */
};

static int count_pack(void *arg, UNUSED const struct store_container *c)
{
	unsigned *n = arg;

	(*n)++;
	return 0;
}

static int init_meta_txn(struct idx_txn *t, void *arg)
{
	struct init_arg *a = arg;
	uint32_t fmt = 1, cp[3] = { a->want->min_size, a->want->avg_size,
				    a->want->max_size };
	struct idx_val v;
	int r;

	a->mismatch = false;
	r = idx_get(t, IDX_META, META_FORMAT, strlen(META_FORMAT), &v);
	if (r == -ENOENT) {
		uint64_t next = FIRST_DYN_INO;
		int64_t now = now_ns();

		/* An empty index beside packs was lost (data.mdb removed
		 * or truncated to nothing, which LMDB takes for a new
		 * file): starting afresh would show an empty registry and
		 * let gc delete every pack. */
		if (a->npacks)
			return -EUCLEAN;

		if ((r = idx_put(t, IDX_META, META_FORMAT,
				 strlen(META_FORMAT), &fmt, 4, 0)) < 0 ||
		    (r = idx_put(t, IDX_META, META_CHUNKER,
				 strlen(META_CHUNKER), cp, sizeof(cp), 0)) < 0 ||
		    (r = idx_put(t, IDX_META, META_NEXT_INO,
				 strlen(META_NEXT_INO), &next, 8, 0)) < 0 ||
		    (r = idx_put(t, IDX_META, META_CREATED,
				 strlen(META_CREATED), &now, 8, 0)) < 0)
			return r;
		return 0;
	}
	if (r < 0)
		return r;
	if (v.len != 4 || memcmp(v.data, &fmt, 4) != 0)
		return -EPROTO;
	r = idx_get(t, IDX_META, META_CHUNKER, strlen(META_CHUNKER), &v);
	if (r < 0 || v.len != sizeof(cp))
		return -EIO;
	memcpy(cp, v.data, sizeof(cp));
	a->have.min_size = cp[0];
	a->have.avg_size = cp[1];
	a->have.max_size = cp[2];
	a->mismatch = memcmp(&a->have, a->want, sizeof(a->have)) != 0;
	return 0;
}

/* The store is readable by its owner only: the mount is the only door for
 * other users (SPEC §7). A store directory we own that others may enter
 * (made by hand, or by an older version) is closed, with a warning. */
static void store_private(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid() || !(st.st_mode & 077))
		return;
	if (chmod(path, st.st_mode & 07700) < 0)
		log_err(-errno, "cannot close store '%s' to other users",
			path);
	else
		log_msg(LOG_LVL_WARN, "store '%s' was open to other users "
			"(mode %04o): made %04o", path,
			(unsigned)(st.st_mode & 07777),
			(unsigned)(st.st_mode & 07700));
}

/* Makes a new directory entry durable: fsync of the directory holding it. */
static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (fsync(fd) < 0)
		log_warn(-errno, "cannot sync directory '%s'", dir);
	close(fd);
}

/* A new store's directories survive a power cut: the store in its parent,
 * index/ in the store, LMDB's files in index/ (packs/ syncs its own). */
static void sync_new_store(const char *path, const char *index)
{
	char *parent = strdup(path), *slash;

	if (parent && (slash = strrchr(parent, '/'))) {
		*slash = '\0';
		fsync_dir(*parent ? parent : "/");
	}
	free(parent);
	fsync_dir(path);
	fsync_dir(index);
}

static bool store_exists(const char *path)
{
	char *p;
	bool ok;

	if (asprintf(&p, "%s/index/data.mdb", path) < 0)
		return false;
	ok = access(p, F_OK) == 0;
	free(p);
	return ok;
}

#define FUSE_SUPER_MAGIC 0x65735546

/* Undoes the octal escapes of a mountinfo field (\040 for a blank). */
static void unescape(char *s)
{
	char *d = s;

	for (; *s; s++, d++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] && s[3]) {
			*d = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				    (s[3] - '0'));
			s += 3;
		} else {
			*d = *s;
		}
	}
	*d = '\0';
}

/* The mount point of the mregfs mount that real path p is in, into mnt
 * (4096 bytes): 1, or 0 when p is on no mregfs mount. */
static int mregfs_mount_of(const char *p, char *mnt)
{
	char line[8192], best[4096] = "", type[256];
	size_t n, bestlen = 0;
	bool mregfs = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *mp, *sep, *save = NULL;
		int i;

		sep = strstr(line, " - ");
		if (!sep || sscanf(sep + 3, "%255s", type) != 1)
			continue;
		*sep = '\0';
		/* the fifth field is the mount point */
		mp = strtok_r(line, " ", &save);
		for (i = 0; mp && i < 4; i++)
			mp = strtok_r(NULL, " ", &save);
		if (!mp)
			continue;
		unescape(mp);
		n = strlen(mp);
		/* the deepest mount whose point is p or holds it (a later
		   line on the same point is mounted over an earlier one) */
		if (n < bestlen || strncmp(p, mp, n) != 0 ||
		    (p[n] && p[n] != '/' && strcmp(mp, "/") != 0))
			continue;
		strlcpy(best, mp, sizeof(best));
		bestlen = n;
		mregfs = strcmp(type, "fuse.mregfs") == 0;
	}
	fclose(f);
	if (!mregfs)
		return 0;
	strlcpy(mnt, best, 4096);
	return 1;
}

/* What may be opened (or made) as a store at path: an existing store; or,
 * with create, a missing path or an empty directory. Anything else is
 * refused and left as it is: no store there (-ENOENT: a missing path or
 * an empty directory; the caller says it), and, with what was found in
 * the log, a file (-ENOTDIR), a directory holding other things
 * (-ENOTEMPTY), a path inside an mregfs mount (-EXDEV: a mount is used
 * through its root, and a store inside one would be written through
 * itself). */
static int store_check(const char *path, bool create)
{
	char *probe = strdup(path), *slash, real[4096], mnt[4096];
	char found[512] = "";
	struct statfs sf;
	struct stat st;
	struct dirent *de;
	unsigned nfound = 0;
	DIR *d;
	int r = 0;

	if (!probe)
		return -ENOMEM;
	/* the nearest part of path that exists tells where it would be */
	while (stat(probe, &st) < 0 && (slash = strrchr(probe, '/')) &&
	       slash != probe)
		*slash = '\0';
	if (statfs(probe, &sf) == 0 && sf.f_type == FUSE_SUPER_MAGIC &&
	    realpath(probe, real) && mregfs_mount_of(real, mnt)) {
		log_msg(LOG_LVL_ERROR, "'%s' is inside the mregfs mount '%s': "
			"a mount is used through its root (--store %s), and a "
			"store cannot live in one", path, mnt, mnt);
		r = -EXDEV;
	}
	free(probe);
	if (r < 0)
		return r;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT && create)
			return 0;
		if (errno != ENOENT)
			return log_err(-errno, "cannot open store '%s'", path);
		/* nothing to name: the caller says it */
		return -ENOENT;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_msg(LOG_LVL_ERROR, "'%s' is not a store: not a directory",
			path);
		return -ENOTDIR;
	}
	if (store_exists(path))
		return 0;
	d = opendir(path);
	if (!d)
		return log_err(-errno, "cannot open store '%s'", path);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (nfound++ < 4)
			snprintf(found + strlen(found),
				 sizeof(found) - strlen(found), "%s'%.100s'",
				 nfound > 1 ? ", " : "", de->d_name);
	}
	closedir(d);
	if (nfound > 4)
		snprintf(found + strlen(found), sizeof(found) - strlen(found),
			 " and %u more", nfound - 4);
	if (!nfound && create)
		return 0;
	if (!nfound)
		return -ENOENT; /* the caller says it */
	log_msg(LOG_LVL_ERROR, "'%s' is not a store: it has no "
		"'%s/index/data.mdb' but holds %s", path, path, found);
	return -ENOTEMPTY;
}

int reg_open(const struct mreg_config *cfg, const char *store,
	     struct reg_registry **ret)
{
	return reg_open_flags(cfg, store, 0, ret);
}

int reg_open_flags(const struct mreg_config *cfg, const char *store,
		   unsigned flags, struct reg_registry **ret)
{
	struct reg_registry *reg;
	struct idx_options io = { 0 };
	struct store_options so = { 0 };
	struct init_arg ia;
	char *p = NULL;
	bool fresh;
	int r;

	if (!cfg || !ret)
		return -EINVAL;
	reg = calloc(1, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	reg->cfg = cfg;
	reg->pin_fd = -1;
	reg->live_fd = reg->writers_fd = -1;
	pthread_mutex_init(&reg->lock, NULL);
	pthread_mutex_init(&reg->writers_lock, NULL);
	pthread_mutex_init(&reg->hooks_lock, NULL);
	pthread_mutex_init(&reg->refusal_lock, NULL);
	reg->chunker = cfg->chunker;
	reg->path = store ? strdup(store) : config_store_path(cfg, NULL);
	if (!reg->path) {
		r = -ENOMEM;
		goto fail;
	}
	r = store_check(reg->path, !(flags & REG_OPEN_EXISTING));
	if (r < 0)
		goto fail;
	fresh = !store_exists(reg->path);
	if (fresh) {
		r = mkdir_p(reg->path, 0700);
		if (r < 0) {
			log_err(r, "cannot create store '%s'", reg->path);
			goto fail;
		}
	}
	store_private(reg->path);
	if (asprintf(&reg->spool_dir, "%s/spool", reg->path) < 0 ||
	    asprintf(&reg->run_dir, "%s/run", reg->path) < 0 ||
	    asprintf(&p, "%s/index", reg->path) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	if ((mkdir(reg->spool_dir, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(reg->run_dir, 0700) < 0 && errno != EEXIST)) {
		r = -errno;
		if (r == -EACCES || r == -EPERM)
			log_err(r, "cannot open store '%s'", reg->path);
		else
			log_err(r, "cannot create '%s/spool'", reg->path);
		goto fail;
	}
	io.path = p;
	io.map_size = cfg->map_size;
	io.sync = cfg->durability == DURABILITY_FULL;
	r = idx_open(&io, &reg->ix);
	if (r < 0)
		goto fail;
	if (fresh && io.sync)
		sync_new_store(reg->path, p);
	so.pack_size = cfg->pack_size;
	so.sync = cfg->durability == DURABILITY_FULL;
	so.dir = reg->path;
	r = store_open(&so, &reg->st);
	if (r < 0)
		goto fail;
	ia.want = &cfg->chunker;
	ia.npacks = 0;
	r = store_containers(reg->st, count_pack, &ia.npacks);
	if (r < 0)
		goto fail;
	r = reg_change(reg, init_meta_txn, &ia);
	if (r == -EUCLEAN) {
		r = log_err(-EIO, "store '%s' holds %u pack files but its index "
			    "'%s/data.mdb' is empty: the index was lost or "
			    "truncated", reg->path, ia.npacks, p);
		goto fail;
	}
	if (r == -EPROTO) {
		r = log_err(-EINVAL, "store '%s' has an unknown format",
			    reg->path);
		goto fail;
	}
	if (r < 0)
		goto fail;
	if (ia.mismatch) {
		r = log_err(-EINVAL,
			    "store '%s' was made with chunk sizes %u/%u/%u, "
			    "the config asks for %u/%u/%u",
			    reg->path, ia.have.min_size, ia.have.avg_size,
			    ia.have.max_size, cfg->chunker.min_size,
			    cfg->chunker.avg_size, cfg->chunker.max_size);
		goto fail;
	}
	r = reg_pins_open(reg);
	if (r < 0)
		goto fail;
	r = reg_live_open(reg);
	if (r < 0)
		goto fail;
	r = reg_pending_cleanup(reg);
	if (r < 0)
		goto fail;
	r = fdcap_new(cfg->open_files_per_user, cfg->open_files_reserve,
		      &reg->fdcap);
	if (r < 0)
		goto fail;
	free(p);
	*ret = reg;
	return 0;
fail:
	free(p);
	reg_close(reg);
	return r;
}

void reg_close(struct reg_registry *reg)
{
	if (!reg)
		return;
	if (reg->ix)
		reg_refusals_flush(reg, true);
	hooks_stop(reg->hooks);
	reg_files_close(reg);
	reg_tables_free(reg);
	reg_pins_close(reg);
	reg_live_close(reg);
	store_close(reg->st);
	idx_close(reg->ix);
	fdcap_free(reg->fdcap);
	pthread_mutex_destroy(&reg->lock);
	pthread_mutex_destroy(&reg->writers_lock);
	pthread_mutex_destroy(&reg->hooks_lock);
	pthread_mutex_destroy(&reg->refusal_lock);
	free(reg->mount);
	free(reg->path);
	free(reg->spool_dir);
	free(reg->run_dir);
	free(reg);
}

int reg_set_mount(struct reg_registry *reg, const char *mount)
{
	char *m = NULL;
	int r;

	if (!reg)
		return -EINVAL;
	if (mount && *mount && !(m = strdup(mount)))
		return -ENOMEM;
	pthread_mutex_lock(&reg->hooks_lock);
	free(reg->mount);
	reg->mount = m;
	r = hooks_set_mount(reg->hooks, m);
	pthread_mutex_unlock(&reg->hooks_lock);
	return r;
}

const char *reg_path(const struct reg_registry *reg)
{
	return reg->path;
}

int reg_statfs(struct reg_registry *reg, struct statvfs *ret)
{
	if (!reg || !ret)
		return -EINVAL;
	/* the store's file system: where packs, spools and the index grow */
	if (statvfs(reg->path, ret) < 0)
		return -errno;
	ret->f_namemax = REG_FNAME_MAX;
	return 0;
}

void reg_tick(struct reg_registry *reg)
{
	int r;

	idx_maint(reg->ix);
	reg_pins_flush(reg);
	r = reg_pending_cleanup(reg);
	if (r < 0)
		log_err(r, "cannot remove files left by dead processes");
	reg_refusals_flush(reg, false);
}

/* ---- the namespace ---------------------------------------------------- */

static void virt_attr(uint64_t ino, struct reg_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->uid = geteuid();
	a->gid = getegid();
	a->nlink = 2;
	switch (ino) {
	case REG_ROOT_INO:
		a->kind = REG_ROOT;
		a->mode = S_IFDIR | 0755;
		break;
	case REG_MODELS_INO:
		/* like /tmp: any user of an allow_other mount may create a
		   model, and the sticky bit keeps them from removing the
		   models of others (the kernel checks it) */
		a->kind = REG_MODELS;
		a->mode = S_IFDIR | S_ISVTX | 0777;
		a->volatile_name = true;
		break;
	case REG_MREGDIR_INO:
		a->kind = REG_MREGDIR;
		a->mode = S_IFDIR | 0555;
		break;
	case REG_HISTDIR_INO:
		a->kind = REG_HISTDIR;
		a->mode = S_IFDIR | 0555;
		a->volatile_name = true; /* lists the models */
		break;
	case REG_AUDITLOG_INO:
		a->kind = REG_AUDITLOG;
		a->mode = S_IFREG | 0444;
		a->nlink = 1;
		a->volatile_name = true;
		break;
	default:
		a->kind = (ino & REG_HISTORY_BIT) ? REG_HISTFILE : REG_METRICS;
		a->mode = S_IFREG | 0444;
		a->nlink = 1;
		a->volatile_name = true;
	}
	clock_gettime(CLOCK_REALTIME, &a->mtime);
	a->atime = a->ctime = a->btime = a->mtime;
}

/* virt_attr() with the size of the files of .mreg/ (-ENOENT for the
 * history of what is not a model). */
static int virt_getattr(struct reg_registry *reg, uint64_t ino,
			struct reg_attr *a)
{
	virt_attr(ino, a);
	if (reg_ino_snapshot(ino))
		return reg_mregdir_file_size(reg, ino, &a->size);
	return 0;
}

/* .mreg/history/name: the history file of model name. */
static int history_lookup(struct reg_registry *reg, const char *name,
			  struct reg_attr *ret)
{
	struct reg_attr m;
	int r;

	if ((r = reg_lookup(reg, REG_MODELS_INO, name, &m)) < 0)
		return r;
	if (m.kind != REG_MODEL)
		return -ENOENT;
	return virt_getattr(reg, m.ino | REG_HISTORY_BIT, ret);
}

struct lookup_arg {
	uint64_t parent, ino;
	const char *name;
	struct inode_rec rec;
};

static int lookup_txn(struct idx_txn *t, void *arg)
{
	struct lookup_arg *a = arg;
	struct inode_rec p;
	uint64_t ino;
	int r;

	if (a->parent != REG_MODELS_INO) {
		r = reg_inode_get_txn(t, a->parent, &p);
		if (r < 0)
			return r;
		if (S_ISREG(p.mode) || S_ISLNK(p.mode))
			return -ENOTDIR;
	}
	r = reg_name_get_txn(t, a->parent, a->name, &ino);
	if (r < 0)
		return r;
	return reg_inode_get_txn(t, ino, &a->rec);
}

int reg_lookup(struct reg_registry *reg, uint64_t parent, const char *name,
	       struct reg_attr *ret)
{
	struct lookup_arg a = { .parent = parent, .name = name };
	int r;

	if (!reg || !name || !ret)
		return -EINVAL;
	if ((r = reg_check_fname(name)) < 0)
		return r;
	if (parent == REG_ROOT_INO) {
		if (strcmp(name, "models") == 0)
			virt_attr(REG_MODELS_INO, ret);
		else if (strcmp(name, ".mreg") == 0)
			virt_attr(REG_MREGDIR_INO, ret);
		else
			return -ENOENT;
		return 0;
	}
	if (parent == REG_MREGDIR_INO) {
		if (strcmp(name, "audit.log") == 0)
			return virt_getattr(reg, REG_AUDITLOG_INO, ret);
		if (strcmp(name, "metrics") == 0)
			return virt_getattr(reg, REG_METRICS_INO, ret);
		if (strcmp(name, "history") == 0)
			return virt_getattr(reg, REG_HISTDIR_INO, ret);
		return -ENOENT;
	}
	if (parent == REG_HISTDIR_INO)
		return history_lookup(reg, name, ret);
	if (reg_ino_virtual(parent) && parent != REG_MODELS_INO)
		return -ENOTDIR;
	r = idx_read(reg->ix, lookup_txn, &a);
	if (r < 0)
		return r;
	reg_inode_attr(&a.rec, ret);
	reg_writer_size(reg, ret);
	return 0;
}

struct getattr_arg {
	uint64_t ino;
	struct inode_rec rec;
};

static int getattr_txn(struct idx_txn *t, void *arg)
{
	struct getattr_arg *a = arg;

	return reg_inode_get_txn(t, a->ino, &a->rec);
}

int reg_getattr(struct reg_registry *reg, uint64_t ino, struct reg_attr *ret)
{
	struct getattr_arg a = { .ino = ino };
	int r;

	if (!reg || !ret || ino == 0)
		return -EINVAL;
	if (reg_ino_virtual(ino))
		return virt_getattr(reg, ino, ret);
	r = idx_read(reg->ix, getattr_txn, &a);
	if (r < 0)
		return r;
	reg_inode_attr(&a.rec, ret);
	reg_writer_size(reg, ret);
	return 0;
}

/* An open listing of a directory. A listing read in pieces (the kernel
 * asks for a page at a time, and starts again in the middle of the last
 * piece when the reader's buffer was smaller) resumes after the *name* it
 * had reached, never at a count of entries: an entry added or removed
 * meanwhile cannot make the rest of the listing shift, so every entry
 * that is there throughout shows exactly once. Position p (p >= 1) is the
 * place after names[p - 1], the p-th entry this handle gave. */
struct reg_dir {
	struct reg_registry *reg;
	uint64_t ino;
	pthread_mutex_t lock;     /* one reader at a time */
	char **names;
	size_t n, cap;
};

struct readdir_arg {
	struct reg_dir *d;
	struct idx_txn *t;
	int (*fn)(void *arg, const char *name, const struct reg_attr *attr,
		  uint64_t next);
	void *arg;
	int err;
};

static int readdir_one(void *arg, const struct idx_val *k,
		       const struct idx_val *v)
{
	struct readdir_arg *a = arg;
	struct reg_dir *d = a->d;
	struct inode_rec rec;
	struct reg_attr attr;
	char name[256], *copy;
	uint64_t ino;
	size_t n = k->len - 8;

	if (n > 255 || v->len != 8)
		return a->err = -EIO;
	memcpy(name, (const char *)k->data + 8, n);
	name[n] = '\0';
	memcpy(&ino, v->data, 8);
	if ((a->err = reg_inode_get_txn(a->t, ino, &rec)) < 0)
		return a->err;
	if (d->ino == REG_HISTDIR_INO) {
		/* .mreg/history lists the models: their history files */
		struct strbuf sb = STRBUF_INIT;

		if (rec.kind != REG_MODEL)
			return 0;
		virt_attr(rec.ino | REG_HISTORY_BIT, &attr);
		a->err = reg_history_text_txn(a->t, rec.ino, &sb);
		attr.size = sb.len;
		strbuf_release(&sb);
		if (a->err < 0)
			return a->err;
	} else {
		reg_inode_attr(&rec, &attr);
		reg_writer_size(d->reg, &attr);
	}
	if (ARRAY_GROW(d->names, d->cap, d->n) < 0 || !(copy = strdup(name)))
		return a->err = -ENOMEM;
	if (a->fn(a->arg, name, &attr, d->n + 1)) {
		free(copy); /* not taken: the next piece starts with it */
		return 1;
	}
	d->names[d->n++] = copy;
	return 0;
}

/* Lists, in t, the entries of the directory after where position pos is. */
static int readdir_txn(struct idx_txn *t, void *arg)
{
	struct readdir_arg *a = arg;
	struct reg_dir *d = a->d;
	struct inode_rec rec;
	uint8_t p[8], start[8 + 257];
	size_t slen = 0, n;
	int r;

	a->t = t;
	a->err = 0;
	if (d->ino != REG_MODELS_INO && d->ino != REG_HISTDIR_INO) {
		r = reg_inode_get_txn(t, d->ino, &rec);
		if (r < 0)
			return r;
		if (!S_ISDIR(rec.mode))
			return -ENOTDIR;
	}
	be64_put(p, d->ino == REG_HISTDIR_INO ? REG_MODELS_INO : d->ino);
	if (d->n) {
		/* the smallest key after (ino, name): name + NUL */
		n = strlen(d->names[d->n - 1]);
		memcpy(start, p, 8);
		memcpy(start + 8, d->names[d->n - 1], n);
		start[8 + n] = '\0';
		slen = 8 + n + 1;
	}
	idx_scan(t, IDX_NAMES, p, 8, slen ? start : NULL, slen, readdir_one,
		 a);
	return a->err < 0 ? a->err : 0;
}

int reg_opendir(struct reg_registry *reg, uint64_t ino, struct reg_dir **ret)
{
	struct reg_attr a;
	struct reg_dir *d;
	int r;

	if (!reg || !ret)
		return -EINVAL;
	r = reg_getattr(reg, ino, &a);
	if (r < 0)
		return r;
	if (!S_ISDIR(a.mode))
		return -ENOTDIR;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->reg = reg;
	d->ino = ino;
	pthread_mutex_init(&d->lock, NULL);
	*ret = d;
	return 0;
}

/* Forgets the names given after position pos (0: all of them). */
static void dir_rewind(struct reg_dir *d, uint64_t pos)
{
	while (d->n > pos)
		free(d->names[--d->n]);
}

void reg_closedir(struct reg_dir *d)
{
	if (!d)
		return;
	dir_rewind(d, 0);
	free(d->names);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* The fixed directories: "/" and .mreg/. */
static int readdir_virtual(struct reg_registry *reg, uint64_t ino, uint64_t pos,
			   int (*fn)(void *arg, const char *name,
				     const struct reg_attr *attr,
				     uint64_t next),
			   void *arg)
{
	static const struct { uint64_t dir, ino; const char *name; } virt[] = {
		{ REG_ROOT_INO, REG_MODELS_INO, "models" },
		{ REG_ROOT_INO, REG_MREGDIR_INO, ".mreg" },
		{ REG_MREGDIR_INO, REG_AUDITLOG_INO, "audit.log" },
		{ REG_MREGDIR_INO, REG_METRICS_INO, "metrics" },
		{ REG_MREGDIR_INO, REG_HISTDIR_INO, "history" },
	};
	struct reg_attr attr;
	uint64_t at = 0;
	size_t i;
	int r;

	for (i = 0; i < sizeof(virt) / sizeof(virt[0]); i++) {
		if (virt[i].dir != ino)
			continue;
		if (at++ < pos)
			continue;
		if ((r = virt_getattr(reg, virt[i].ino, &attr)) < 0)
			return r;
		if (fn(arg, virt[i].name, &attr, at))
			break;
	}
	return 0;
}

int reg_readdir(struct reg_dir *d, uint64_t pos,
		int (*fn)(void *arg, const char *name,
			  const struct reg_attr *attr, uint64_t next),
		void *arg)
{
	struct readdir_arg a = { .d = d, .fn = fn, .arg = arg };
	int r;

	if (!d || !fn)
		return -EINVAL;
	if (d->ino == REG_ROOT_INO || d->ino == REG_MREGDIR_INO)
		return readdir_virtual(d->reg, d->ino, pos, fn, arg);
	if (reg_ino_virtual(d->ino) && d->ino != REG_MODELS_INO &&
	    d->ino != REG_HISTDIR_INO)
		return -ENOTDIR;
	pthread_mutex_lock(&d->lock);
	if (pos > d->n) {
		/* not a place this handle gave: nothing more */
		pthread_mutex_unlock(&d->lock);
		return 0;
	}
	dir_rewind(d, pos);
	r = idx_read(d->reg->ix, readdir_txn, &a);
	pthread_mutex_unlock(&d->lock);
	return r;
}

int reg_readlink(struct reg_registry *reg, uint64_t ino, char *buf, size_t size)
{
	struct getattr_arg a = { .ino = ino };
	int r;

	if (!reg || !buf || reg_ino_virtual(ino))
		return -EINVAL;
	r = idx_read(reg->ix, getattr_txn, &a);
	if (r < 0)
		return r;
	if (!S_ISLNK(a.rec.mode))
		return -EINVAL;
	if (strlen(a.rec.target_path) >= size)
		return -ERANGE;
	strcpy(buf, a.rec.target_path);
	return 0;
}

/* ---- changes ---------------------------------------------------------- */

/* Everything a namespace change needs, passed to its transaction. */
struct op {
	struct reg_registry *reg;
	const struct reg_caller *who;
	uint64_t parent, newparent, ino;
	const char *name, *newname, *target;
	mode_t mode;
	unsigned flags;
	const struct reg_setattr *sa;
	struct inode_rec rec;         /* the result */
	char reason[256];             /* a policy refusal's reason */
	char refused_version[REG_NAME_MAX + 1]; /* of a refused removal */
	struct audit_ev refusal;      /* audited after the abort */
	bool refused;
	bool sealed_version;          /* a version got sealed */
	uint64_t sealed_ino;
	bool registered;              /* a pending file became a version */
	uint64_t registered_ino;      /* ... this one */
	uint64_t keep;                /* a file open here, pinned: trash it */
	bool trashed;                 /* ... and it was */
	uint64_t want_keep;           /* open here but not pinned: rerun */
	char name_buf[REG_FNAME_MAX + 1], newname_buf[32]; /* register */
};

/* Reads the directory parent of a change and sorts out where it is. */
static int op_parent_txn(struct idx_txn *t, uint64_t parent,
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

/* A directory of a draft, in which names may change: -EPERM for any
 * other directory, -EROFS once sealed. */
static int draft_dir_txn(struct idx_txn *t, const struct inode_rec *p)
{
	int r;

	if (p->kind != REG_VERSION && p->kind != REG_DIR)
		return -EPERM;
	if ((r = reg_sealed_txn(t, p)) != 0)
		return r < 0 ? r : -EROFS;
	return 0;
}

static uint64_t version_of(const struct inode_rec *p)
{
	return p->kind == REG_VERSION ? p->ino : p->version;
}

static int touch_dir_txn(struct idx_txn *t, struct inode_rec *p)
{
	if (p->ino == REG_MODELS_INO)
		return 0;
	p->mtime = p->ctime = now_ns();
	return reg_inode_put_txn(t, p);
}

static int mkdir_txn(struct idx_txn *t, void *arg)
{
	struct op *o = arg;
	struct inode_rec p, d;
	uint64_t ino;
	int r;

	if ((r = op_parent_txn(t, o->parent, &p)) < 0)
		return r;
	switch (p.kind) {
	case REG_MODELS:
		return reg_model_create_txn(t, o->who, o->name, o->mode,
					    &o->rec);
	case REG_MODEL:
		if (!dot_name(o->name) && reg_check_name(o->name) < 0)
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
	if ((r = draft_dir_txn(t, &p)) < 0)
		return r;
	if (reg_name_get_txn(t, p.ino, o->name, &ino) == 0)
		return -EEXIST;
	if ((r = reg_depth_txn(t, &p)) < 0 || (r = reg_depth_check(r)) < 0)
		return r;
	if ((r = reg_inode_alloc_txn(t, &ino)) < 0)
		return r;
	reg_inode_init(&d, ino, REG_DIR, o->who, o->mode, p.ino, p.model,
		       version_of(&p), o->name);
	if ((r = reg_inode_put_txn(t, &d)) < 0 ||
	    (r = reg_name_put_txn(t, p.ino, o->name, ino, 0)) < 0 ||
	    (r = touch_dir_txn(t, &p)) < 0)
		return r;
	o->rec = d;
	return 0;
}

int reg_mkdir(struct reg_registry *reg, const struct reg_caller *who,
	      uint64_t parent, const char *name, mode_t mode,
	      struct reg_attr *ret)
{
	struct op o = { .reg = reg, .who = who, .parent = parent,
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

/* Deletes a childless inode and what hangs off it (extents, xattrs). */
static int inode_delete_txn(struct idx_txn *t, const struct inode_rec *r)
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

/* In t: file c lost its last name. Deleted; or, when it is open here
 * (see reg_file_open_here()), trashed once the caller has pinned it (so that
 * no gc of another process frees it): -EAGAIN asks for the pin and a
 * rerun (txn_keeping()). */
static int file_gone_txn(struct op *o, struct idx_txn *t, struct inode_rec *c)
{
	int r;

	if (!reg_file_open_here(o->reg, c->ino))
		return inode_delete_txn(t, c);
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

static void keep_done(struct reg_registry *reg, const struct op *o, int r)
{
	if (!o->keep)
		return;
	if (r >= 0 && o->trashed)
		reg_file_trashed_here(reg, o->keep);
	else
		reg_unpin(reg, o->keep);
}

/* Runs fn, which may remove the last name of a file (unlink, rename over
 * it), with what file_gone_txn() needs: the file pinned when it is open here
 * (pinned outside the transaction, which then runs again). */
static int txn_keeping(struct reg_registry *reg,
		       int (*fn)(struct idx_txn *, void *), struct op *o)
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
	struct op *o = arg;
	struct inode_rec p, c, s;
	uint64_t ino;
	int r;

	if ((r = op_parent_txn(t, o->parent, &p)) < 0)
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
		if ((r = dir_has_entries_txn(t, s.ino)) != 0)
			return r < 0 ? r : -ENOTEMPTY;
		if ((r = reg_name_del_txn(t, c.ino, "stages")) < 0)
			return r;
		if ((r = dir_has_entries_txn(t, c.ino)) != 0)
			return r < 0 ? r : -ENOTEMPTY;
		if ((r = inode_delete_txn(t, &s)) < 0 ||
		    (r = inode_delete_txn(t, &c)) < 0 ||
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
		if ((r = dir_has_entries_txn(t, c.ino)) != 0)
			return r < 0 ? r : -ENOTEMPTY;
		if ((r = reg_version_staged_txn(t, &p, c.ino)) != 0)
			return r < 0 ? r : -EBUSY;
		if ((r = inode_delete_txn(t, &c)) < 0 ||
		    (r = reg_name_del_txn(t, p.ino, o->name)) < 0)
			return r;
		return reg_audit_put_txn(t, o->who, &(struct audit_ev){
			.op = "version.remove", .model = p.name,
			.version = c.name });
	default:
		break;
	}
	if ((r = draft_dir_txn(t, &p)) < 0)
		return r;
	if ((r = dir_has_entries_txn(t, c.ino)) != 0)
		return r < 0 ? r : -ENOTEMPTY;
	if ((r = inode_delete_txn(t, &c)) < 0 ||
	    (r = reg_name_del_txn(t, p.ino, o->name)) < 0)
		return r;
	return touch_dir_txn(t, &p);
}

/* Removes one name of directory parent with fn (op, for the audit), in a
 * transaction; a refusal is audited after it. */
static int remove_name(struct reg_registry *reg, const struct reg_caller *who,
		       uint64_t parent, const char *name,
		       int (*fn)(struct idx_txn *, void *), const char *op)
{
	struct op o = { .reg = reg, .who = who, .parent = parent,
			.name = name };
	int r;

	if (!reg || !who || !name)
		return -EINVAL;
	if ((r = reg_check_fname(name)) < 0)
		return r;
	if (reg_ino_virtual(parent) && parent != REG_MODELS_INO)
		return -EPERM; /* "/" and .mreg/ are fixed */
	r = txn_keeping(reg, fn, &o);
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
	struct op *o = arg;
	struct inode_rec p, c, m;
	uint64_t ino;
	int r;

	if ((r = op_parent_txn(t, o->parent, &p)) < 0)
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
	if (c.kind != REG_PENDING && (r = draft_dir_txn(t, &p)) < 0)
		return r;
	if ((r = reg_name_del_txn(t, p.ino, o->name)) < 0 ||
	    (r = file_gone_txn(o, t, &c)) < 0)
		return r;
	return p.kind == REG_MODEL ? 0 : touch_dir_txn(t, &p);
}

int reg_unlink(struct reg_registry *reg, const struct reg_caller *who,
	       uint64_t parent, const char *name)
{
	return remove_name(reg, who, parent, name, unlink_txn, "unlink");
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

/* Height of the directory tree below dir (0: no subdirectory), or
 * -ENAMETOOLONG as soon as it passes max. */
static int tree_height_txn(struct idx_txn *t, uint64_t dir, int max)
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
		e = tree_height_txn(t, r->ino, max - 1);
		if (e >= 0 && e + 1 > h)
			h = e + 1;
	}
	free(r);
out:
	free(l.v);
	return e < 0 ? e : h;
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
	struct op *o = arg;
	struct inode_rec p, m, v, l;
	uint64_t ino;
	int r;

	if ((r = op_parent_txn(t, o->parent, &p)) < 0)
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
	if ((r = draft_dir_txn(t, &p)) < 0)
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
		       version_of(&p), o->name);
	snprintf(l.target_path, sizeof(l.target_path), "%s", o->target);
	l.size = strlen(o->target);
	if ((r = reg_inode_put_txn(t, &l)) < 0 ||
	    (r = reg_name_put_txn(t, p.ino, o->name, ino, 0)) < 0 ||
	    (r = touch_dir_txn(t, &p)) < 0)
		return r;
	o->rec = l;
	return 0;
}

int reg_symlink(struct reg_registry *reg, const struct reg_caller *who,
		uint64_t parent, const char *name, const char *target,
		struct reg_attr *ret)
{
	struct op o = { .reg = reg, .who = who, .parent = parent,
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

static int rename_stage_txn(struct op *o, struct idx_txn *t,
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

/* A name at a model root changes: a pending file or a draft version. */
static int rename_in_model_txn(struct op *o, struct idx_txn *t,
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
		if (dot_name(o->newname)) {
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
	if (!dot_name(o->newname) && reg_check_name(o->newname) < 0)
		return -EINVAL;
	if ((r = reg_version_staged_txn(t, m, c.ino)) != 0)
		return r < 0 ? r : -EBUSY;
	if ((r = reg_name_del_txn(t, m->ino, o->name)) < 0 ||
	    (r = reg_name_put_txn(t, m->ino, o->newname, c.ino, 0)) < 0)
		return r;
	snprintf(c.name, sizeof(c.name), "%s", o->newname);
	if (version_number_seen(m, c.name) &&
	    (r = reg_inode_put_txn(t, m)) < 0)
		return r;
	if (dot_name(o->name) && !dot_name(o->newname)) {
		/* mv .7.part 7: the write-then-rename idiom seals */
		c.flags &= (uint16_t)~INODE_DOTDRAFT;
		o->sealed_version = true;
		o->sealed_ino = c.ino;
		r = reg_seal_txn(o->reg, t, o->who, &c);
		return r == -EALREADY ? 0 : r;
	}
	if (!dot_name(o->newname))
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
	h = tree_height_txn(t, c->ino, REG_DEPTH_MAX - to - 1);
	return h < 0 ? h : 0;
}

static int rename_txn(struct idx_txn *t, void *arg)
{
	struct op *o = arg;
	struct inode_rec p, np, c, old;
	uint64_t ino, oino;
	int r;

	if ((r = op_parent_txn(t, o->parent, &p)) < 0 ||
	    (r = op_parent_txn(t, o->newparent, &np)) < 0)
		return r;
	if (p.kind == REG_STAGES || np.kind == REG_STAGES) {
		if (p.ino == np.ino)
			return rename_stage_txn(o, t, &p);
		if (p.kind == np.kind)
			return -EXDEV;
		/* into (or out of) a version: sealed content does not
		   change, whatever would come or go (`mv stages/A
		   stages/B` without -T moves A into B's version) */
		r = draft_dir_txn(t, p.kind == REG_STAGES ? &np : &p);
		return r == -EROFS ? r : -EINVAL;
	}
	if (p.kind == REG_MODEL || np.kind == REG_MODEL) {
		if (p.ino != np.ino)
			return -EXDEV;
		return rename_in_model_txn(o, t, &p);
	}
	if (p.kind == REG_MODELS || np.kind == REG_MODELS)
		return -EPERM;
	/* inside drafts */
	if ((r = draft_dir_txn(t, &p)) < 0 || (r = draft_dir_txn(t, &np)) < 0)
		return r;
	if (version_of(&p) != version_of(&np))
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
		    (r = dir_has_entries_txn(t, old.ino)) != 0)
			return r < 0 ? r : -ENOTEMPTY;
		if ((r = reg_name_del_txn(t, np.ino, o->newname)) < 0 ||
		    (r = S_ISDIR(old.mode) ? inode_delete_txn(t, &old) :
					     file_gone_txn(o, t, &old)) < 0)
			return r;
	}
	if ((r = reg_name_del_txn(t, p.ino, o->name)) < 0 ||
	    (r = reg_name_put_txn(t, np.ino, o->newname, c.ino, 0)) < 0)
		return r;
	c.parent = np.ino;
	snprintf(c.name, sizeof(c.name), "%s", o->newname);
	c.ctime = now_ns();
	if ((r = reg_inode_put_txn(t, &c)) < 0 ||
	    (r = touch_dir_txn(t, &p)) < 0)
		return r;
	if (np.ino != p.ino)
		return touch_dir_txn(t, &np);
	return 0;
}

/* A dot-named draft registered as its model's next version: the rename
 * of the draft to that name, in the transaction that picks it. */
static int register_draft_txn(struct idx_txn *t, void *arg)
{
	struct op *o = arg;
	struct inode_rec c, m;
	int r;

	if ((r = reg_inode_get_txn(t, o->ino, &c)) < 0)
		return r;
	if (c.kind != REG_VERSION || !dot_name(c.name))
		return -EINVAL;
	if (c.flags & INODE_SEALED)
		return -EROFS;
	if ((r = reg_inode_get_txn(t, c.model, &m)) < 0)
		return r;
	snprintf(o->name_buf, sizeof(o->name_buf), "%s", c.name);
	reg_version_next_name(&m, o->newname_buf, sizeof(o->newname_buf));
	o->name = o->name_buf;
	o->newname = o->newname_buf;
	return rename_in_model_txn(o, t, &m);
}

int reg_version_register(struct reg_registry *reg,
			 const struct reg_caller *who, uint64_t ino,
			 char *ret_version)
{
	struct op o = { .reg = reg, .who = who, .ino = ino };
	int r;

	if (!reg || !who)
		return -EINVAL;
	if (reg_ino_virtual(ino))
		return -EINVAL;
	r = txn_keeping(reg, register_draft_txn, &o);
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

int reg_rename(struct reg_registry *reg, const struct reg_caller *who,
	       uint64_t parent, const char *name, uint64_t newparent,
	       const char *newname, unsigned flags)
{
	struct op o = { .reg = reg, .who = who, .parent = parent,
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
	r = txn_keeping(reg, rename_txn, &o);
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
