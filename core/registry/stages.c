/* stages.c — sealing, stages, history, rollback and removal of versions
 * (SPEC §2.3, §3).
 *
 * Every rule is decided inside the write transaction that makes the change
 * (no check-then-act): the version a stage points at exists and is sealed,
 * the stage's stored policy admits the caller and the version
 * (policy.c), no stage points at a version being removed, the history
 * stays a chain.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* ---- sealing ------------------------------------------------------------ */

struct seal_walk {
	struct reg_registry *reg;
	struct idx_txn *t;
	struct digest_state ds;
	uint64_t size, nfiles;
	int err;
};


/* Seals dir's tree and adds it to the manifest digest. path holds dir's
 * path in the version ("" or ending in '/'), and is given back so: one
 * buffer for the whole walk, not one copy of the path per level. */
static int seal_tree(struct seal_walk *w, uint64_t dir, struct strbuf *path,
		     int depth)
{
	struct child_list l;
	struct inode_rec *r;
	size_t i, len = path->len;
	int e = 0;

	if (depth > REG_DEPTH_MAX)
		return log_err(-ENAMETOOLONG, "cannot seal: '%s' is nested "
			       "more than %d directories deep", path->buf,
			       REG_DEPTH_MAX);
	if ((e = reg_children_txn(w->t, dir, &l)) < 0) {
		free(l.v);
		return e;
	}
	r = malloc(sizeof(*r));
	if (!r) {
		free(l.v);
		return -ENOMEM;
	}
	for (i = 0; i < l.n && e == 0; i++) {
		uint8_t kind;
		uint32_t mode;

		if ((e = reg_inode_get_txn(w->t, l.v[i].ino, r)) < 0 ||
		    (e = reg_file_digest_txn(w->reg, w->t, r)) < 0)
			break;
		strbuf_adds(path, l.v[i].name);
		kind = r->kind;
		mode = r->mode & ~0222u;
		digest_update(&w->ds, path->buf, path->len + 1);
		digest_update(&w->ds, &kind, 1);
		digest_update(&w->ds, &mode, 4);
		if (r->kind == REG_FILE) {
			digest_update(&w->ds, r->digest.b, MREG_ID_LEN);
			w->size += r->size;
			w->nfiles++;
		} else if (r->kind == REG_SYMLINK) {
			/* checked when made and when moved; once more here,
			   for a tree made by an older mreg */
			if (reg_check_link_target(r->target_path, depth) < 0) {
				e = log_err(-EINVAL, "cannot seal: symlink '%s' "
					    "-> '%s' points outside its "
					    "version", path->buf,
					    r->target_path);
				break;
			}
			digest_update(&w->ds, r->target_path,
				      strlen(r->target_path) + 1);
		}
		r->flags |= INODE_SEALED;
		if ((e = reg_inode_put_txn(w->t, r)) == 0 &&
		    r->kind == REG_DIR) {
			strbuf_addch(path, '/');
			e = seal_tree(w, r->ino, path, depth + 1);
		}
		strbuf_setlen(path, len);
	}
	free(r);
	free(l.v);
	return e;
}

int reg_seal_txn(struct reg_registry *reg, struct idx_txn *t,
		 const struct reg_caller *who, struct inode_rec *v)
{
	struct seal_walk w = { .reg = reg, .t = t };
	struct inode_rec m;
	struct strbuf path;
	int r;

	assert(v->kind == REG_VERSION);
	if (v->flags & INODE_SEALED)
		return -EALREADY;
	if (v->flags & INODE_DOTDRAFT)
		return -EINVAL; /* a temporary name: rename it first */
	/* no process writes in it (SPEC §2.3), nor can start to before
	   this transaction ended; files a dead process never finished go */
	if ((r = reg_writers_none_txn(t, v->ino)) < 0 ||
	    (r = reg_pending_reap_txn(reg, t)) < 0)
		return r;
	digest_init(&w.ds);
	strbuf_init(&path);
	r = seal_tree(&w, v->ino, &path, 0);
	strbuf_release(&path);
	if (r < 0)
		return r;
	digest_final(&w.ds, &v->digest);
	v->size = w.size;
	v->nfiles = w.nfiles;
	v->flags |= INODE_SEALED;
	v->sealed_at = now_ns();
	v->ctime = v->sealed_at;
	if ((r = reg_inode_put_txn(t, v)) < 0)
		return r;
	if ((r = reg_inode_get_txn(t, v->model, &m)) < 0)
		return r;
	reg_note_txn(HOOK_REGISTER, m.name, v->name, NULL, NULL, who);
	return reg_audit_put_txn(t, who, &(struct audit_ev){ .op = "seal",
		.model = m.name, .version = v->name });
}

/* ---- stages -------------------------------------------------------------- */

int reg_stage_target_parse_txn(struct idx_txn *t, const struct inode_rec *m,
			       const char *target, struct inode_rec *ret)
{
	uint64_t ino;
	int r;

	if (strncmp(target, "../", 3) != 0 || reg_check_name(target + 3) < 0)
		return -EINVAL;
	r = reg_name_get_txn(t, m->ino, target + 3, &ino);
	if (r < 0)
		return r;
	r = reg_inode_get_txn(t, ino, ret);
	if (r < 0)
		return r;
	return ret->kind == REG_VERSION ? 0 : -ENOENT;
}

static int history_add_txn(struct idx_txn *t, const struct reg_caller *who,
			   const struct inode_rec *m, const char *stage,
			   const struct inode_rec *from,
			   const struct inode_rec *to, int action)
{
	struct history_rec h = { 0 };
	struct idx_val k, v;
	uint8_t key[16], prefix[8], buf[512];
	size_t n;
	int r;

	be64_put(prefix, m->ino);
	r = idx_last(t, IDX_HISTORY, prefix, 8, &k, &v);
	if (r == 0 && k.len == 16)
		h.seq = be64_get((const uint8_t *)k.data + 8) + 1;
	else if (r < 0 && r != -ENOENT)
		return r;
	else
		h.seq = 1;
	h.time = now_ns();
	h.uid = who->uid;
	h.action = (uint8_t)action;
	h.from = from ? from->ino : 0;
	h.to = to ? to->ino : 0;
	strlcpy(h.stage, stage, sizeof(h.stage));
	strlcpy(h.from_name, from ? from->name : "", sizeof(h.from_name));
	strlcpy(h.to_name, to ? to->name : "", sizeof(h.to_name));
	n = rec_history_encode(&h, buf, sizeof(buf));
	if (!n)
		return -EINVAL;
	be64_put(key, m->ino);
	be64_put(key + 8, h.seq);
	return idx_put(t, IDX_HISTORY, key, 16, buf, n, 0);
}

bool reg_stage_temporary(const char *s)
{
	size_t i;

	if (!s)
		return false;
	if (strncmp(s, "mreg-tmp.", 9) == 0)
		return true;
	/* coreutils' ln -sfn, mv and cp: "Cu" and six of [A-Za-z0-9] */
	if (strlen(s) != 8 || s[0] != 'C' || s[1] != 'u')
		return false;
	for (i = 2; i < 8; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

struct clash_arg {
	const char *stage;
	char found[REG_STAGE_MAX + 1];
};

static int clash_one(void *arg, const struct idx_val *k,
		     UNUSED const struct idx_val *v)
{
	struct clash_arg *a = arg;
	size_t n = k->len - 8;

	if (n != strlen(a->stage) ||
	    strncasecmp((const char *)k->data + 8, a->stage, n) != 0)
		return 0;
	memcpy(a->found, (const char *)k->data + 8, n);
	a->found[n] = '\0';
	return 1;
}

/* A new stage of model m may not differ from an existing one only in case:
 * `production` beside `Production` would be a second stage that serving
 * containers do not read and whose name looks like the one a policy
 * guards. -EEXIST (logged with both names). */
static int stage_name_free_txn(struct idx_txn *t, const struct inode_rec *m,
			       const char *stage)
{
	struct clash_arg a = { .stage = stage };
	int r;

	r = reg_entries_scan_txn(t, m->stages_ino, clash_one, &a);
	if (r < 0)
		return r;
	if (r == 0)
		return 0;
	return log_err(-EEXIST, "model '%s' has a stage '%s': stage '%s' "
		       "would differ from it only in case", m->name, a.found,
		       stage);
}

int reg_rollback_pick(const struct reg_history *h, size_t n)
{
	size_t i = n, undone = 0;

	if (!h && n)
		return -EINVAL;
	while (i-- > 0) {
		if (strcmp(h[i].action, "rollback") == 0) {
			undone++; /* it undid the promotion in effect then */
			continue;
		}
		if (strcmp(h[i].action, "promote") != 0)
			return -ENOENT; /* the stage was removed since */
		if (undone) {
			undone--;
			continue;
		}
		return h[i].from[0] ? (int)i : -ENOENT;
	}
	return -ENOENT;
}

size_t reg_history_trim(struct reg_history *h, size_t n)
{
	size_t i, j, out = 0;

	for (i = 0; i < n; i++) {
		if (!h[i].stage || strcmp(h[i].action, "promote") != 0 ||
		    h[i].from[0] || !reg_stage_temporary(h[i].stage))
			continue;
		for (j = i + 1; j < n; j++)
			if (h[j].stage && !strcmp(h[j].stage, h[i].stage))
				break;
		if (j < n && (!strcmp(h[j].action, "move") ||
			      !strcmp(h[j].action, "remove")))
			h[i].stage = h[j].stage = NULL; /* left out */
	}
	for (i = 0; i < n; i++)
		if (h[i].stage)
			h[out++] = h[i];
	return out;
}

/* The stage changes of a model (of one stage, when stage is not NULL),
 * oldest first, as reg_history() shows them: rec holds the records, h
 * the views of them (trimmed). */
struct stage_hist {
	const char *stage;
	struct history_rec *rec;
	struct reg_history *h;
	size_t n, nrec, cap;
	int err;
};

static int stage_hist_one(void *arg, UNUSED const struct idx_val *k,
			  const struct idx_val *v)
{
	struct stage_hist *a = arg;
	struct history_rec h;

	if (rec_history_decode(v->data, v->len, &h) < 0)
		return a->err = -EIO;
	if (a->stage && strcmp(h.stage, a->stage) != 0)
		return 0;
	if (ARRAY_GROW(a->rec, a->cap, a->nrec) < 0)
		return a->err = -ENOMEM;
	a->rec[a->nrec++] = h;
	return 0;
}

static void stage_hist_release(struct stage_hist *a)
{
	free(a->rec);
	free(a->h);
}

static int stage_hist_load_txn(struct idx_txn *t, const struct inode_rec *m,
			       const char *stage, struct stage_hist *a)
{
	uint8_t p[8];
	size_t i;

	memset(a, 0, sizeof(*a));
	a->stage = stage;
	be64_put(p, m->ino);
	idx_scan(t, IDX_HISTORY, p, 8, NULL, 0, stage_hist_one, a);
	if (a->err < 0)
		return a->err;
	if (a->nrec && !(a->h = calloc(a->nrec, sizeof(*a->h))))
		return -ENOMEM;
	for (i = 0; i < a->nrec; i++) {
		struct history_rec *r = &a->rec[i];

		a->h[i] = (struct reg_history){
			.seq = r->seq, .time = r->time / 1000000000,
			.uid = r->uid, .stage = r->stage,
			.from = r->from_name, .to = r->to_name,
			.action = rec_history_action(r->action),
			.from_ino = r->from };
	}
	a->n = reg_history_trim(a->h, a->nrec);
	return 0;
}

/* The version a rollback of stage of model m goes back to (per
 * reg_rollback_pick()): its inode into *ret. -ENOENT when there is none. */
static int rollback_target_txn(struct idx_txn *t, const struct inode_rec *m,
			       const char *stage, uint64_t *ret)
{
	struct stage_hist a;
	int r;

	r = stage_hist_load_txn(t, m, stage, &a);
	if (r == 0 && (r = reg_rollback_pick(a.h, a.n)) >= 0) {
		*ret = a.h[r].from_ino;
		r = 0;
	}
	stage_hist_release(&a);
	return r;
}

int reg_stage_set_txn(struct reg_registry *reg, struct idx_txn *t,
		      const struct reg_caller *who, struct inode_rec *m,
		      const char *stage, struct inode_rec *v, int action,
		      char *reason, size_t rlen)
{
	struct inode_rec s, old;
	bool have_old = false;
	uint64_t ino, back;
	uint8_t k[8 + 80];
	size_t kl;
	int r;

	if (reg_check_stage(stage) < 0)
		return -EINVAL;
	if (v->kind != REG_VERSION || v->model != m->ino)
		return -EINVAL;
	if ((r = reg_policy_check_promote_txn(t, who, m, stage, v, reason,
					      rlen)) < 0)
		return r;
	if (!(v->flags & INODE_SEALED)) {
		/* a draft is sealed first, then pointed at */
		r = reg_seal_txn(reg, t, who, v);
		if (r < 0 && r != -EALREADY)
			return r;
		reg_version_writers_seal(reg, v->ino);
	}
	r = reg_name_get_txn(t, m->stages_ino, stage, &ino);
	if (r == 0) {
		if ((r = reg_inode_get_txn(t, ino, &s)) < 0)
			return r;
		if (s.target == v->ino)
			return 0; /* already there: nothing changes */
		if (reg_inode_get_txn(t, s.target, &old) == 0)
			have_old = true;
	} else if (r == -ENOENT) {
		if ((r = stage_name_free_txn(t, m, stage)) < 0 ||
		    (r = reg_inode_alloc_txn(t, &ino)) < 0)
			return r;
		reg_inode_init(&s, ino, REG_STAGE, who, 0777, m->stages_ino,
			       m->ino, 0, stage);
		if ((r = reg_name_put_txn(t, m->stages_ino, stage, ino, 0)) < 0)
			return r;
	} else {
		return r;
	}
	s.target = v->ino;
	snprintf(s.target_path, sizeof(s.target_path), "../%s", v->name);
	s.size = strlen(s.target_path);
	s.mtime = s.ctime = now_ns();
	s.uid = who->uid;
	s.gid = who->gid;
	if ((r = reg_inode_put_txn(t, &s)) < 0)
		return r;
	/* remember that v held this stage (require_stage) */
	be64_put(k, v->ino);
	kl = 8 + (size_t)snprintf((char *)k + 8, sizeof(k) - 8, HELD_PREFIX "%s",
				  stage);
	if ((r = idx_put(t, IDX_XATTRS, k, kl, "1", 1, 0)) < 0)
		return r;
	/* pointing the stage back where its latest promotion in effect took
	   it from is a rollback, whichever route does it (ln -sfn, mv -T,
	   mreg promote, mreg rollback through a mount) */
	if (action == HIST_PROMOTE && have_old &&
	    rollback_target_txn(t, m, stage, &back) == 0 && back == v->ino)
		action = HIST_ROLLBACK;
	if ((r = history_add_txn(t, who, m, stage, have_old ? &old : NULL, v,
				 action)) < 0)
		return r;
	/* a temporary name made on the way (ln -sfn's, mreg's) is no
	   promotion of its own: the rename over the real stage is (and
	   reg_history() leaves the temporary stage out) */
	if (have_old || !reg_stage_temporary(stage))
		reg_note_txn(HOOK_PROMOTE, m->name, v->name, stage,
			     have_old ? old.name : NULL, who);
	atomic_fetch_add(&reg->promotions, 1);
	return reg_audit_put_txn(t, who, &(struct audit_ev){
		.op = action == HIST_ROLLBACK ? "rollback" : "promote",
		.model = m->name, .version = v->name, .stage = stage,
		.from = have_old ? old.name : NULL });
}

void reg_stage_target_name_txn(struct idx_txn *t, const struct inode_rec *m,
			       const char *stage, char *buf, size_t size)
{
	struct inode_rec s, v;
	uint64_t ino;

	buf[0] = '\0';
	if (reg_check_stage(stage) == 0 &&
	    reg_name_get_txn(t, m->stages_ino, stage, &ino) == 0 &&
	    reg_inode_get_txn(t, ino, &s) == 0 &&
	    reg_inode_get_txn(t, s.target, &v) == 0)
		strlcpy(buf, v.name, size);
}

int reg_stage_remove_txn(UNUSED struct reg_registry *reg, struct idx_txn *t,
			 const struct reg_caller *who, struct inode_rec *m,
			 const char *stage, int action, char *reason,
			 size_t rlen)
{
	struct inode_rec s, old;
	bool have_old;
	uint64_t ino;
	int r;

	if (reg_check_stage(stage) < 0)
		return -ENOENT;
	if ((r = reg_name_get_txn(t, m->stages_ino, stage, &ino)) < 0 ||
	    (r = reg_inode_get_txn(t, ino, &s)) < 0)
		return r;
	if ((r = reg_policy_check_remove_txn(t, who, m, &s, reason, rlen)) < 0)
		return r;
	have_old = reg_inode_get_txn(t, s.target, &old) == 0;
	if ((r = reg_name_del_txn(t, m->stages_ino, stage)) < 0)
		return r;
	if ((r = reg_inode_trash_txn(t, &s)) < 0)
		return r;
	if ((r = history_add_txn(t, who, m, stage, have_old ? &old : NULL, NULL,
				 action == HIST_MOVE ? HIST_MOVE :
						       HIST_REMOVE)) < 0)
		return r;
	return reg_audit_put_txn(t, who, &(struct audit_ev){
		.op = "stage.remove", .model = m->name, .stage = stage,
		.from = have_old ? old.name : NULL });
}

struct staged_arg {
	struct idx_txn *t;
	uint64_t v;
	int err;
};

static int staged_one(void *arg, UNUSED const struct idx_val *k,
		      const struct idx_val *v)
{
	struct staged_arg *a = arg;
	struct inode_rec s;

	if ((a->err = reg_entry_inode_txn(a->t, v, &s)) < 0)
		return a->err;
	return s.target == a->v ? 1 : 0;
}

int reg_version_staged_txn(struct idx_txn *t, const struct inode_rec *m,
			   uint64_t v)
{
	struct staged_arg a = { .t = t, .v = v };
	int r;

	r = reg_entries_scan_txn(t, m->stages_ino, staged_one, &a);
	return a.err < 0 ? a.err : r;
}

int reg_version_remove_txn(UNUSED struct reg_registry *reg, struct idx_txn *t,
			   const struct reg_caller *who, struct inode_rec *m,
			   struct inode_rec *v)
{
	int r;

	if ((r = reg_version_staged_txn(t, m, v->ino)) != 0)
		return r < 0 ? r : -EBUSY;
	if ((r = reg_name_del_txn(t, m->ino, v->name)) < 0)
		return r;
	if ((r = reg_inode_trash_txn(t, v)) < 0)
		return r;
	return reg_audit_put_txn(t, who, &(struct audit_ev){
		.op = "version.remove", .model = m->name, .version = v->name });
}

/* ---- by name (the CLI) --------------------------------------------------- */

struct named_op {
	struct reg_registry *reg;
	const struct reg_caller *who;
	const char *model, *version, *stage;
	char reason[256];
	struct audit_ev refusal;
	bool refused;
	uint64_t sealed;
	char result[REG_NAME_MAX + 1];
	char refused_version[REG_NAME_MAX + 1]; /* of a refused removal */
};

static int seal_txn(struct idx_txn *t, void *arg)
{
	struct named_op *o = arg;
	struct inode_rec v;
	int r;

	if ((r = reg_version_get_txn(t, o->model, o->version, NULL, &v)) < 0)
		return r;
	if (v.flags & INODE_SEALED)
		return -EALREADY;
	o->sealed = v.ino;
	return reg_seal_txn(o->reg, t, o->who, &v);
}

int reg_seal(struct reg_registry *reg, const struct reg_caller *who,
	     const char *model, const char *version)
{
	struct named_op o = { .reg = reg, .who = who, .model = model,
			      .version = version };
	int r;

	if (!reg || !who || !model || !version)
		return -EINVAL;
	r = reg_change(reg, seal_txn, &o);
	if (r == 0)
		reg_version_writers_seal(reg, o.sealed);
	return r;
}

static int promote_txn(struct idx_txn *t, void *arg)
{
	struct named_op *o = arg;
	struct inode_rec m, v;
	int r;

	o->refused = false;
	if (reg_check_stage(o->stage) < 0)
		return -EINVAL;
	if ((r = reg_version_get_txn(t, o->model, o->version, &m, &v)) < 0)
		return r;
	r = reg_stage_set_txn(o->reg, t, o->who, &m, o->stage, &v, HIST_PROMOTE,
			      o->reason, sizeof(o->reason));
	if (r == -EACCES) {
		o->refused = true;
		o->refusal = (struct audit_ev){ .op = "promote",
			.result = "refused", .model = o->model,
			.version = o->version, .stage = o->stage,
			.reason = o->reason };
	}
	return r;
}

static int named_write(struct named_op *o, int (*fn)(struct idx_txn *, void *),
		       const char *op)
{
	int r = reg_change(o->reg, fn, o);

	if (o->refused) {
		reg_audit_refusal(o->reg, o->who, &o->refusal);
		log_msg(LOG_LVL_WARN, "refused: %s", o->reason);
	} else {
		reg_audit_failure(o->reg, o->who, r, &(struct audit_ev){
			.op = op, .model = o->model, .version = o->version,
			.stage = o->stage });
	}
	return r;
}

int reg_promote(struct reg_registry *reg, const struct reg_caller *who,
		const char *model, const char *version, const char *stage)
{
	struct named_op o = { .reg = reg, .who = who, .model = model,
			      .version = version, .stage = stage };

	if (!reg || !who || !model || !version || !stage)
		return -EINVAL;
	return named_write(&o, promote_txn, "promote");
}

static int stage_remove_txn(struct idx_txn *t, void *arg)
{
	struct named_op *o = arg;
	struct inode_rec m;
	int r;

	o->refused = false;
	if ((r = reg_model_get_txn(t, o->model, &m)) < 0)
		return r;
	r = reg_stage_remove_txn(o->reg, t, o->who, &m, o->stage, HIST_REMOVE,
				 o->reason, sizeof(o->reason));
	if (r == -EACCES) {
		reg_stage_target_name_txn(t, &m, o->stage, o->refused_version,
					  sizeof(o->refused_version));
		o->refused = true;
		o->refusal = (struct audit_ev){ .op = "stage.remove",
			.result = "refused", .model = o->model,
			.version = o->refused_version[0] ?
				o->refused_version : NULL,
			.stage = o->stage, .reason = o->reason };
	}
	return r;
}

int reg_stage_remove(struct reg_registry *reg, const struct reg_caller *who,
		     const char *model, const char *stage)
{
	struct named_op o = { .reg = reg, .who = who, .model = model,
			      .stage = stage };

	if (!reg || !who || !model || !stage)
		return -EINVAL;
	return named_write(&o, stage_remove_txn, "stage.remove");
}

static int rollback_txn(struct idx_txn *t, void *arg)
{
	struct named_op *o = arg;
	struct inode_rec m, v;
	uint64_t ino;
	int r;

	o->refused = false;
	if ((r = reg_model_get_txn(t, o->model, &m)) < 0)
		return r;
	if (reg_check_stage(o->stage) < 0)
		return -EINVAL;
	if ((r = reg_name_get_txn(t, m.stages_ino, o->stage, &ino)) < 0 ||
	    (r = rollback_target_txn(t, &m, o->stage, &ino)) < 0)
		return r;
	r = reg_inode_get_txn(t, ino, &v);
	if (r < 0 || (v.flags & INODE_TRASHED))
		return -ENOENT;
	strlcpy(o->result, v.name, sizeof(o->result));
	r = reg_stage_set_txn(o->reg, t, o->who, &m, o->stage, &v,
			      HIST_ROLLBACK, o->reason, sizeof(o->reason));
	if (r == -EACCES) {
		o->refused = true;
		o->refusal = (struct audit_ev){ .op = "rollback",
			.result = "refused", .model = o->model,
			.version = v.name, .stage = o->stage,
			.reason = o->reason };
	}
	return r;
}

int reg_rollback(struct reg_registry *reg, const struct reg_caller *who,
		 const char *model, const char *stage, char *ret_version)
{
	struct named_op o = { .reg = reg, .who = who, .model = model,
			      .stage = stage };
	int r;

	if (!reg || !who || !model || !stage)
		return -EINVAL;
	r = named_write(&o, rollback_txn, "rollback");
	if (r == 0 && ret_version)
		snprintf(ret_version, REG_NAME_MAX + 1, "%s", o.result);
	return r;
}

static int version_remove_txn(struct idx_txn *t, void *arg)
{
	struct named_op *o = arg;
	struct inode_rec m, v;
	int r;

	if ((r = reg_version_get_txn(t, o->model, o->version, &m, &v)) < 0)
		return r;
	if (!(v.flags & INODE_SEALED) &&
	    (r = reg_writers_none_txn(t, v.ino)) < 0)
		return r;
	return reg_version_remove_txn(o->reg, t, o->who, &m, &v);
}

int reg_version_remove(struct reg_registry *reg, const struct reg_caller *who,
		       const char *model, const char *version)
{
	struct named_op o = { .reg = reg, .who = who, .model = model,
			      .version = version };

	int r;

	if (!reg || !who || !model || !version)
		return -EINVAL;
	r = reg_change(reg, version_remove_txn, &o);
	reg_audit_failure(reg, who, r, &(struct audit_ev){
		.op = "version.remove", .model = model, .version = version });
	return r;
}

struct history_arg {
	const char *model, *stage;
	int (*fn)(void *arg, const struct reg_history *h);
	void *arg;
};

static int history_txn(struct idx_txn *t, void *arg)
{
	struct history_arg *a = arg;
	struct stage_hist sh;
	struct inode_rec m;
	size_t i;
	int r;

	if ((r = reg_model_get_txn(t, a->model, &m)) < 0)
		return r;
	r = stage_hist_load_txn(t, &m, a->stage, &sh);
	for (i = 0; r == 0 && i < sh.n; i++)
		if (a->fn(a->arg, &sh.h[i]))
			break;
	stage_hist_release(&sh);
	return r;
}

int reg_history(struct reg_registry *reg, const char *model, const char *stage,
		int (*fn)(void *arg, const struct reg_history *h), void *arg)
{
	struct history_arg a = { .model = model, .stage = stage, .fn = fn,
				 .arg = arg };

	if (!reg || !model || !fn)
		return -EINVAL;
	if (stage && reg_check_stage(stage) < 0)
		return -EINVAL;
	return idx_read(reg->ix, history_txn, &a);
}

int reg_history_text_txn(struct idx_txn *t, uint64_t model_ino,
			 struct strbuf *sb)
{
	static const char *const key[4] = { "stage", "from", "to", "action" };
	struct stage_hist sh;
	struct inode_rec m;
	char when[32], user[256];
	size_t i;
	int r, k;

	if ((r = reg_inode_get_txn(t, model_ino, &m)) < 0)
		return r;
	if (m.kind != REG_MODEL)
		return -ENOENT;
	r = stage_hist_load_txn(t, &m, NULL, &sh);
	for (i = 0; r == 0 && i < sh.n; i++) {
		const struct reg_history *h = &sh.h[i];
		util_time_iso(h->time * 1000000000, false, when, sizeof(when));
		strbuf_addf(sb, "{\"seq\":%llu,\"time\":\"%s\",\"uid\":%u,"
			    "\"user\":", (unsigned long long)h->seq, when,
			    (unsigned)h->uid);
		json_quotes(sb, util_uid_name(h->uid, user, sizeof(user)));
		for (k = 0; k < 4; k++) {
			strbuf_addf(sb, ",\"%s\":", key[k]);
			json_quotes(sb, k == 0 ? h->stage : k == 1 ? h->from :
					k == 2 ? h->to : h->action);
		}
		strbuf_adds(sb, "}\n");
	}
	stage_hist_release(&sh);
	return r;
}

struct history_text_arg {
	uint64_t model;
	struct strbuf sb;
};

static int history_text_txn(struct idx_txn *t, void *arg)
{
	struct history_text_arg *a = arg;

	strbuf_reset(&a->sb); /* the callback may run again */
	return reg_history_text_txn(t, a->model, &a->sb);
}

int reg_history_text(struct reg_registry *reg, uint64_t model_ino,
		     char **ret, size_t *ret_len)
{
	struct history_text_arg a = { .model = model_ino };
	int r;

	strbuf_init(&a.sb);
	r = idx_read(reg->ix, history_text_txn, &a);
	if (r < 0) {
		strbuf_release(&a.sb);
		return r;
	}
	*ret = strbuf_detach(&a.sb, ret_len);
	return 0;
}
