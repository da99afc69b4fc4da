/* listings.c — the read-only listings of the CLI: models, the versions
 * of a model with their stages and facts, one version's details, the
 * files of a version. Each is read in one transaction, so a listing is a
 * consistent view however long it takes to print. */
#include "registry/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

struct model_list {
	struct idx_txn *t;
	int (*fn)(void *arg, const struct reg_model_info *m);
	void *arg;
	int err;
};

/* The entries of model m but "stages": its versions (drafts and pending
 * files included), counted by the index, not read: a model may have a
 * million. */
static int count_versions(struct idx_txn *t, uint64_t m, uint32_t *ret)
{
	uint8_t k[8];
	uint64_t n, stages;
	int r;

	be64_put(k, m);
	if ((r = idx_count_prefix(t, IDX_NAMES, k, 8, &n)) < 0)
		return r;
	r = reg_name_get_txn(t, m, "stages", &stages);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0 && n)
		n--;
	*ret = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
	return 0;
}

/* A model's stages and the versions they point at: read from its stages
 * directory (a few entries), not from its versions (maybe a million). */
struct model_stages {
	struct idx_txn *t;
	char (*names)[REG_STAGE_MAX + 1];
	char (*versions)[REG_NAME_MAX + 1];
	const char **np, **vp;
	size_t n, cap;
	int err;
};

static int model_stage_one(void *arg, const struct idx_val *k,
			   const struct idx_val *v)
{
	struct model_stages *s = arg;
	struct inode_rec st, ver;
	size_t len = k->len - 8;

	if (len > REG_STAGE_MAX)
		return 0;
	if ((s->err = reg_entry_inode_txn(s->t, v, &st)) < 0)
		return s->err;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 8;
		void *a = reallocarray(s->names, cap, sizeof(*s->names));

		if (a)
			s->names = a;
		a = a ? reallocarray(s->versions, cap, sizeof(*s->versions)) :
		    NULL;
		if (!a)
			return s->err = -ENOMEM;
		s->versions = a;
		s->cap = cap;
	}
	memcpy(s->names[s->n], (const char *)k->data + 8, len);
	s->names[s->n][len] = '\0';
	s->versions[s->n][0] = '\0';
	if (st.target && reg_inode_get_txn(s->t, st.target, &ver) == 0)
		strlcpy(s->versions[s->n], ver.name, sizeof(s->versions[0]));
	s->n++;
	return 0;
}

static int model_one(void *arg, UNUSED const struct idx_val *k,
		     const struct idx_val *v)
{
	struct model_list *a = arg;
	struct model_stages ms = { .t = a->t };
	struct reg_model_info mi;
	struct inode_rec m;
	size_t i;
	int r;

	if ((a->err = reg_entry_inode_txn(a->t, v, &m)) < 0)
		return a->err;
	mi.name = m.name;
	mi.ino = m.ino;
	if ((a->err = count_versions(a->t, m.ino, &mi.nversions)) < 0)
		return a->err;
	mi.created = m.btime / 1000000000;
	mi.creator = m.uid;
	if (m.stages_ino)
		reg_entries_scan_txn(a->t, m.stages_ino, model_stage_one, &ms);
	if (ms.err == 0 && ms.n) {
		ms.np = calloc(ms.n, sizeof(*ms.np));
		ms.vp = calloc(ms.n, sizeof(*ms.vp));
		if (!ms.np || !ms.vp)
			ms.err = -ENOMEM;
		for (i = 0; ms.np && ms.vp && i < ms.n; i++) {
			ms.np[i] = ms.names[i];
			ms.vp[i] = ms.versions[i];
		}
	}
	mi.nstages = ms.n;
	mi.stages = ms.np;
	mi.stage_versions = ms.vp;
	r = ms.err < 0 ? (a->err = ms.err) : a->fn(a->arg, &mi);
	free(ms.names);
	free(ms.versions);
	free(ms.np);
	free(ms.vp);
	return r;
}

static int models_txn(struct idx_txn *t, void *arg)
{
	struct model_list *a = arg;

	a->t = t;
	reg_entries_scan_txn(t, REG_MODELS_INO, model_one, a);
	return a->err;
}

int reg_models(struct reg_registry *reg,
	       int (*fn)(void *arg, const struct reg_model_info *m), void *arg)
{
	struct model_list a = { .fn = fn, .arg = arg };

	if (!reg || !fn)
		return -EINVAL;
	return idx_read(reg->ix, models_txn, &a);
}

/* ---- versions ------------------------------------------------------------ */

static int stage_name_one(void *arg, const struct idx_val *k,
			  const struct idx_val *v)
{
	struct reg_stage_names *s = arg;
	struct inode_rec rec;
	uint64_t ino;
	size_t n = k->len - 8;

	if (v->len != 8 || n > REG_STAGE_MAX)
		return s->err = -EIO;
	memcpy(&ino, v->data, 8);
	if ((s->err = reg_inode_get_txn(s->t, ino, &rec)) < 0)
		return s->err;
	if (rec.target != s->target)
		return 0;
	if (s->n + 1 >= s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		void *nv = reallocarray(s->v, cap, sizeof(*s->v));

		if (!nv)
			return s->err = -ENOMEM;
		s->v = nv;
		s->cap = cap;
	}
	memcpy(s->v[s->n], (const char *)k->data + 8, n);
	s->v[s->n][n] = '\0';
	s->n++;
	return 0;
}

int reg_version_fill_txn(struct idx_txn *t, const struct inode_rec *m,
			 const struct inode_rec *v,
			 struct reg_version_info *vi, struct reg_stage_names *sn)
{
	size_t i;
	int r;

	memset(sn, 0, sizeof(*sn));
	sn->t = t;
	sn->target = v->ino;
	reg_entries_scan_txn(t, m->stages_ino, stage_name_one, sn);
	if (sn->err < 0)
		return sn->err;
	sn->ptrs = calloc(sn->n + 1, sizeof(*sn->ptrs));
	if (!sn->ptrs)
		return -ENOMEM;
	for (i = 0; i < sn->n; i++)
		sn->ptrs[i] = sn->v[i];
	memset(vi, 0, sizeof(*vi));
	if ((r = reg_version_totals_txn(t, v, &vi->size, &vi->nfiles)) < 0)
		return r;
	vi->model = m->name;
	vi->name = v->name;
	vi->ino = v->ino;
	vi->sealed = (v->flags & INODE_SEALED) != 0;
	vi->created = v->btime / 1000000000;
	vi->sealed_at = v->sealed_at / 1000000000;
	vi->creator = v->uid;
	vi->stored = v->stored;
	vi->digest = v->digest;
	vi->stages = sn->ptrs;
	return 0;
}

void reg_stage_names_free(struct reg_stage_names *sn)
{
	free(sn->v);
	free(sn->ptrs);
}

struct version_list {
	struct idx_txn *t;
	struct inode_rec m;
	const char *only;
	int (*fn)(void *arg, const struct reg_version_info *v);
	void *arg;
	const struct search_query *q;
	int err;
};

static void emit_version(struct version_list *a, const struct inode_rec *v)
{
	struct reg_version_info vi;
	struct reg_stage_names sn;
	int r;

	r = reg_version_fill_txn(a->t, &a->m, v, &vi, &sn);
	if (r == 0)
		r = a->fn(a->arg, &vi);
	reg_stage_names_free(&sn);
	if (r)
		a->err = r;
}

static int version_one(void *arg, UNUSED const struct idx_val *k,
		       const struct idx_val *v)
{
	struct version_list *a = arg;
	struct inode_rec rec;

	if ((a->err = reg_entry_inode_txn(a->t, v, &rec)) < 0)
		return a->err;
	if (rec.kind != REG_VERSION)
		return 0;
	emit_version(a, &rec);
	return a->err;
}

static int versions_txn(struct idx_txn *t, void *arg)
{
	struct version_list *a = arg;
	struct inode_rec v;
	uint64_t ino;
	int r;

	a->t = t;
	if ((r = reg_model_get_txn(t, a->m.name, &a->m)) < 0)
		return r;
	if (a->only) {
		if (reg_check_name(a->only) < 0)
			return -EINVAL;
		if ((r = reg_name_get_txn(t, a->m.ino, a->only, &ino)) < 0 ||
		    (r = reg_inode_get_txn(t, ino, &v)) < 0)
			return r;
		if (v.kind != REG_VERSION)
			return -ENOENT;
		emit_version(a, &v);
		return a->err;
	}
	reg_entries_scan_txn(t, a->m.ino, version_one, a);
	return a->err;
}

int reg_versions(struct reg_registry *reg, const char *model,
		 int (*fn)(void *arg, const struct reg_version_info *v),
		 void *arg)
{
	struct version_list a = { .fn = fn, .arg = arg };

	if (!reg || !model || !fn)
		return -EINVAL;
	if (reg_check_name(model) < 0)
		return -EINVAL;
	strlcpy(a.m.name, model, sizeof(a.m.name));
	return idx_read(reg->ix, versions_txn, &a);
}

int reg_version_info(struct reg_registry *reg, const char *model,
		     const char *version,
		     int (*fn)(void *arg, const struct reg_version_info *v),
		     void *arg)
{
	struct version_list a = { .fn = fn, .arg = arg, .only = version };
	char buf[2 * REG_NAME_MAX + 2], *slash;

	if (!reg || !model || !fn)
		return -EINVAL;
	if (!version) {
		if (strlen(model) >= sizeof(buf))
			return -EINVAL;
		strcpy(buf, model);
		slash = strchr(buf, '/');
		if (!slash)
			return -EINVAL;
		*slash = '\0';
		model = buf;
		a.only = slash + 1;
	}
	if (reg_check_name(model) < 0)
		return -EINVAL;
	strlcpy(a.m.name, model, sizeof(a.m.name));
	return idx_read(reg->ix, versions_txn, &a);
}

/* ---- files of a version --------------------------------------------------- */

int reg_files_dir(struct reg_files_walk *w, uint64_t dir, const char *prefix,
		  int depth)
{
	struct child_list c;
	struct inode_rec *rec;
	struct reg_file_info fi;
	size_t i;
	int r = 0;

	if (depth > 2048)
		return -EIO;
	if ((r = reg_children_txn(w->t, dir, &c)) < 0) {
		free(c.v);
		return r;
	}
	rec = malloc(sizeof(*rec));
	if (!rec) {
		free(c.v);
		return -ENOMEM;
	}
	for (i = 0; i < c.n && r == 0; i++) {
		char *path;

		/* a draft's file rewritten in place: its digest is taken
		   now (it is not stored: sealing does that) */
		if ((r = reg_inode_get_txn(w->t, c.v[i].ino, rec)) < 0 ||
		    (w->reg &&
		     (r = reg_file_digest_txn(w->reg, w->t, rec)) < 0))
			break;
		if (asprintf(&path, "%s%s", prefix, c.v[i].name) < 0) {
			r = -ENOMEM;
			break;
		}
		memset(&fi, 0, sizeof(fi));
		fi.path = path;
		fi.kind = rec->kind;
		fi.mode = rec->mode;
		fi.size = rec->kind == REG_FILE ? rec->size :
			  rec->kind == REG_SYMLINK ? strlen(rec->target_path) : 0;
		fi.digest = rec->digest;
		fi.target = rec->kind == REG_SYMLINK ? rec->target_path : NULL;
		fi.ino = rec->ino;
		r = w->fn(w->arg, &fi);
		if (r == 0 && rec->kind == REG_DIR) {
			char *sub;

			if (asprintf(&sub, "%s/", path) < 0) {
				r = -ENOMEM;
			} else {
				r = reg_files_dir(w, rec->ino, sub, depth + 1);
				free(sub);
			}
		}
		free(path);
	}
	free(rec);
	free(c.v);
	return r;
}

struct files_arg {
	const char *model, *version;
	struct reg_files_walk w;
};

static int files_txn(struct idx_txn *t, void *arg)
{
	struct files_arg *a = arg;
	struct inode_rec v;
	int r;

	if ((r = reg_version_get_txn(t, a->model, a->version, NULL, &v)) < 0)
		return r;
	a->w.t = t;
	return reg_files_dir(&a->w, v.ino, "", 0);
}

int reg_files(struct reg_registry *reg, const char *model, const char *version,
	      int (*fn)(void *arg, const struct reg_file_info *f), void *arg)
{
	struct files_arg a = { .model = model, .version = version };

	if (!reg || !model || !version || !fn)
		return -EINVAL;
	a.w.reg = reg;
	a.w.fn = fn;
	a.w.arg = arg;
	return idx_read(reg->ix, files_txn, &a);
}
