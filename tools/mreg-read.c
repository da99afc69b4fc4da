/* mreg-read.c — the commands that read the registry: ls, show, cat (get),
 * history, search, diff and audit.
 *
 * Registry callbacks run inside a read transaction: they copy what they
 * need and return; any further registry call is made after the listing
 * returned, never from inside a callback.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <sha2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mreg.h"

/* ---- versions ----------------------------------------------------------- */

void vinfo_copy(struct vinfo *d, const struct reg_version_info *v)
{
	size_t i, n = 0;

	memset(d, 0, sizeof(*d));
	d->model = xstrdup(v->model);
	d->name = xstrdup(v->name);
	d->sealed = v->sealed;
	d->created = v->created;
	d->sealed_at = v->sealed_at;
	d->creator = v->creator;
	d->size = v->size;
	d->stored = v->stored;
	d->nfiles = v->nfiles;
	d->digest = v->digest;
	while (v->stages && v->stages[n])
		n++;
	d->stages = xcalloc(n + 1, sizeof(*d->stages));
	for (i = 0; i < n; i++)
		d->stages[i] = xstrdup(v->stages[i]);
	d->nstages = n;
}

void vinfo_release(struct vinfo *v)
{
	size_t i;

	for (i = 0; i < v->nstages; i++)
		free(v->stages[i]);
	free(v->stages);
	free(v->model);
	free(v->name);
	memset(v, 0, sizeof(*v));
}

struct vlist {
	struct vinfo *v;
	size_t n, cap;
};

static int vlist_fn(void *arg, const struct reg_version_info *v)
{
	struct vlist *l = arg;

	XGROW(l->v, l->cap, l->n);
	vinfo_copy(&l->v[l->n++], v);
	return 0;
}

static void vlist_release(struct vlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		vinfo_release(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int vinfo_get(struct cli *c, const char *model, const char *version,
	      struct vinfo *ret)
{
	struct vlist l = { 0 };
	int r;

	r = be_version_info(c, model, version, vlist_fn, &l);
	if (r >= 0 && l.n == 0)
		r = -ENOENT;
	if (r < 0) {
		vlist_release(&l);
		return r;
	}
	*ret = l.v[0];
	l.v[0] = l.v[l.n - 1];
	l.n--;
	vlist_release(&l);
	return 0;
}

void vinfo_json(struct json *j, const struct vinfo *v)
{
	char t[64], u[256], h[33];
	size_t i;

	json_obj_begin(j);
	json_key(j, "model");
	json_str(j, v->model);
	json_key(j, "version");
	json_str(j, v->name);
	json_key(j, "state");
	json_str(j, v->sealed ? "sealed" : "draft");
	json_key(j, "size");
	json_u64(j, v->size);
	json_key(j, "stored");
	json_u64(j, v->stored);
	json_key(j, "files");
	json_u64(j, v->nfiles);
	json_key(j, "created");
	json_str(j, iso_time(v->created, t, sizeof(t)));
	json_key(j, "sealed_at");
	if (v->sealed_at)
		json_str(j, iso_time(v->sealed_at, t, sizeof(t)));
	else
		json_null(j);
	json_key(j, "creator");
	json_str(j, util_uid_name(v->creator, u, sizeof(u)));
	json_key(j, "digest");
	json_str(j, v->sealed ? chunkid_hex(&v->digest, h) : NULL);
	json_key(j, "stages");
	json_arr_begin(j);
	for (i = 0; i < v->nstages; i++)
		json_str(j, v->stages[i]);
	json_arr_end(j);
	json_obj_end(j);
}

static char *stages_str(const struct vinfo *v)
{
	size_t i, n = 1;
	char *s;

	for (i = 0; i < v->nstages; i++)
		n += strlen(v->stages[i]) + 1;
	s = xcalloc(1, n);
	for (i = 0; i < v->nstages; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, v->stages[i]);
	}
	return s;
}

int ref_model_or_version(struct cli *c, struct ref *r, const char *arg,
			 bool follow)
{
	int e;

	if (follow && (e = ref_follow_stage(c, r)))
		return e;
	if (r->nparts > 2)
		return usage_err(c, "expected MODEL or MODEL/VERSION, not '%s'",
				 arg);
	return check_names(c, r->model, r->version, NULL);
}

int ref_follow_stage(struct cli *c, struct ref *r)
{
	struct vlist vl = { 0 };
	char stage[REG_FNAME_MAX + 1], a[1024], b[1024];
	const char *p, *slash;
	size_t i, k;
	int e;

	if (!r->version || strcmp(r->version, "stages") || !r->path)
		return 0;
	p = r->path;
	slash = strchr(p, '/');
	snprintf(stage, sizeof(stage), "%.*s",
		 (int)(slash ? (size_t)(slash - p) : strlen(p)), p);
	e = check_names(c, r->model, NULL, stage);
	if (e)
		return e;
	e = be_versions(c, r->model, vlist_fn, &vl);
	if (e < 0) {
		vlist_release(&vl);
		return fail_errno(c, e, SUBJ(.model = r->model));
	}
	for (i = 0; i < vl.n && !r->vbuf; i++)
		for (k = 0; k < vl.v[i].nstages; k++)
			if (!strcmp(vl.v[i].stages[k], stage)) {
				r->vbuf = xstrdup(vl.v[i].name);
				break;
			}
	vlist_release(&vl);
	if (!r->vbuf)
		return fail(c, "stage '%s' of model '%s' does not exist",
			    human_str(stage, a, sizeof(a)),
			    human_str(r->model, b, sizeof(b)));
	r->version = r->vbuf;
	r->path = slash && slash[1] ? slash + 1 : NULL;
	r->nparts = r->path ? 3 : 2;
	return 0;
}

/* ---- ls ----------------------------------------------------------------- */

struct mlist {
	struct minfo {
		char *name;
		uint32_t nversions;
		int64_t created;
		uid_t creator;
		char **stages, **versions;
		size_t nstages;
	} *m;
	size_t n, cap;
};

static int mlist_fn(void *arg, const struct reg_model_info *m)
{
	struct mlist *l = arg;
	size_t i;

	XGROW(l->m, l->cap, l->n);
	l->m[l->n].name = xstrdup(m->name);
	l->m[l->n].nversions = m->nversions;
	l->m[l->n].created = m->created;
	l->m[l->n].creator = m->creator;
	l->m[l->n].nstages = m->nstages;
	l->m[l->n].stages = xcalloc(m->nstages + 1, sizeof(char *));
	l->m[l->n].versions = xcalloc(m->nstages + 1, sizeof(char *));
	for (i = 0; i < m->nstages; i++) {
		l->m[l->n].stages[i] = xstrdup(m->stages[i]);
		l->m[l->n].versions[i] = xstrdup(m->stage_versions[i]);
	}
	l->n++;
	return 0;
}

static int ls_models(struct cli *c)
{
	struct mlist ml = { 0 };
	struct table t;
	struct json j;
	size_t i, k;
	int r;

	r = be_models(c, mlist_fn, &ml);
	if (r < 0) {
		r = fail_errno(c, r, SUBJ(.model = NULL));
		goto out;
	}
	if (c->json) {
		json_init(&j, stdout);
		json_arr_begin(&j);
	} else {
		table_init(&t, 4, 1u << 1);
		table_row(&t, "MODEL", "VERSIONS", "STAGES", "CREATED");
	}
	for (i = 0; i < ml.n; i++) {
		const struct minfo *mi = &ml.m[i];
		char n[32], tm[64], u[256], a[1024];

		if (c->json) {
			json_obj_begin(&j);
			json_key(&j, "model");
			json_str(&j, mi->name);
			json_key(&j, "versions");
			json_u64(&j, mi->nversions);
			json_key(&j, "stages");
			json_obj_begin(&j);
			for (k = 0; k < mi->nstages; k++) {
				json_key(&j, mi->stages[k]);
				json_str(&j, mi->versions[k]);
			}
			json_obj_end(&j);
			json_key(&j, "created");
			json_str(&j, iso_time(mi->created, tm, sizeof(tm)));
			json_key(&j, "creator");
			json_str(&j, util_uid_name(mi->creator, u, sizeof(u)));
			json_obj_end(&j);
		} else {
			char *stages = NULL;
			size_t len = 0;
			FILE *f = open_memstream(&stages, &len);

			if (!f)
				die_oom();
			for (k = 0; k < mi->nstages; k++)
				fprintf(f, "%s%s=%s", k ? "," : "",
					mi->stages[k], mi->versions[k]);
			fclose(f);
			snprintf(n, sizeof(n), "%u", mi->nversions);
			table_row(&t, human_str(mi->name, a, sizeof(a)),
				  n, len ? stages : NULL,
				  iso_time(mi->created, tm, sizeof(tm)));
			free(stages);
		}
	}
	if (c->json) {
		json_arr_end(&j);
		json_finish(&j);
	} else {
		table_print(&t, stdout);
		table_release(&t);
	}
	r = EXIT_OK;
out:
	for (i = 0; i < ml.n; i++) {
		for (k = 0; k < ml.m[i].nstages; k++) {
			free(ml.m[i].stages[k]);
			free(ml.m[i].versions[k]);
		}
		free(ml.m[i].stages);
		free(ml.m[i].versions);
		free(ml.m[i].name);
	}
	free(ml.m);
	return r;
}

static int ls_versions(struct cli *c, const char *model)
{
	struct vlist vl = { 0 };
	struct table t;
	struct json j;
	size_t i;
	int r;

	r = be_versions(c, model, vlist_fn, &vl);
	if (r < 0) {
		vlist_release(&vl);
		return fail_errno(c, r, SUBJ(.model = model));
	}
	if (c->json) {
		json_init(&j, stdout);
		json_arr_begin(&j);
		for (i = 0; i < vl.n; i++)
			vinfo_json(&j, &vl.v[i]);
		json_arr_end(&j);
		json_finish(&j);
		vlist_release(&vl);
		return EXIT_OK;
	}
	table_init(&t, 6, 1u << 2 | 1u << 3);
	table_row(&t, "VERSION", "STATE", "SIZE", "FILES", "CREATED",
		  "STAGES");
	for (i = 0; i < vl.n; i++) {
		char sz[32], nf[32], tm[64];
		char *stages = stages_str(&vl.v[i]);

		snprintf(nf, sizeof(nf), "%llu",
			 (unsigned long long)vl.v[i].nfiles);
		table_row(&t, vl.v[i].name,
			  vl.v[i].sealed ? "sealed" : "draft",
			  human_size(vl.v[i].size, sz, sizeof(sz)), nf,
			  iso_time(vl.v[i].created, tm, sizeof(tm)),
			  *stages ? stages : NULL);
		free(stages);
	}
	table_print(&t, stdout);
	table_release(&t);
	vlist_release(&vl);
	return EXIT_OK;
}

struct flist {
	struct finfo {
		char *path, *target;
		enum reg_kind kind;
		mode_t mode;
		uint64_t size;
		struct mreg_id digest;
	} *f;
	size_t n, cap;
};

static int flist_fn(void *arg, const struct reg_file_info *fi)
{
	struct flist *l = arg;
	struct finfo *f;

	XGROW(l->f, l->cap, l->n);
	f = &l->f[l->n++];
	memset(f, 0, sizeof(*f));
	f->path = xstrdup(fi->path);
	f->target = fi->kind == REG_SYMLINK ? xstrdup(fi->target) : NULL;
	f->kind = fi->kind;
	f->mode = fi->mode;
	f->size = fi->size;
	f->digest = fi->digest;
	return 0;
}

static void flist_release(struct flist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->f[i].path);
		free(l->f[i].target);
	}
	free(l->f);
	l->f = NULL;
	l->n = 0;
}

static const char *kind_name(enum reg_kind k)
{
	switch (k) {
	case REG_DIR: return "dir";
	case REG_FILE: return "file";
	case REG_SYMLINK: return "symlink";
	default: return "other";
	}
}

static int ls_files(struct cli *c, const char *model, const char *version)
{
	struct flist fl = { 0 };
	struct table t;
	struct json j;
	size_t i;
	int r;

	r = be_files(c, model, version, flist_fn, &fl);
	if (r < 0) {
		flist_release(&fl);
		return fail_errno(c, r, SUBJ(.model = model,
					     .version = version));
	}
	if (c->json) {
		char h[33];

		json_init(&j, stdout);
		json_arr_begin(&j);
		for (i = 0; i < fl.n; i++) {
			const struct finfo *f = &fl.f[i];

			json_obj_begin(&j);
			json_key(&j, "path");
			json_str(&j, f->path);
			json_key(&j, "kind");
			json_str(&j, kind_name(f->kind));
			json_key(&j, "mode");
			json_u64(&j, f->mode & 07777);
			json_key(&j, "size");
			json_u64(&j, f->size);
			if (f->kind == REG_FILE) {
				json_key(&j, "digest");
				json_str(&j, chunkid_hex(&f->digest, h));
			}
			if (f->kind == REG_SYMLINK) {
				json_key(&j, "target");
				json_str(&j, f->target);
			}
			json_obj_end(&j);
		}
		json_arr_end(&j);
		json_finish(&j);
		flist_release(&fl);
		return EXIT_OK;
	}
	table_init(&t, 4, 1u << 1);
	table_row(&t, "MODE", "SIZE", "DIGEST", "PATH");
	for (i = 0; i < fl.n; i++) {
		const struct finfo *f = &fl.f[i];
		char m[16], sz[32], h[33], p[4096], tg[4096], *line;

		human_str(f->path, p, sizeof(p));
		if (f->kind == REG_SYMLINK) {
			line = xasprintf("%s -> %s", p,
				     human_str(f->target, tg, sizeof(tg)));
		} else {
			line = xstrdup(p);
		}
		table_row(&t, mode_str(f->mode, m, sizeof(m)),
			  f->kind == REG_DIR ? NULL :
			  human_size(f->size, sz, sizeof(sz)),
			  f->kind == REG_FILE ? chunkid_hex(&f->digest, h) : NULL,
			  line);
		free(line);
	}
	table_print(&t, stdout);
	table_release(&t);
	flist_release(&fl);
	return EXIT_OK;
}

int cmd_ls(struct cli *c)
{
	struct ref ref;
	int r;

	if (c->nargs == 0)
		return ls_models(c);
	ref_parse(&ref, c->args[0]);
	r = ref_model_or_version(c, &ref, c->args[0], true);
	if (r)
		goto out;
	if (ref.version)
		r = ls_files(c, ref.model, ref.version);
	else
		r = ls_versions(c, ref.model);
out:
	ref_release(&ref);
	return r;
}

/* ---- show --------------------------------------------------------------- */

static bool is_fact(const char *k)
{
	return strcmp(k, "description") && strncmp(k, "tag.", 4) &&
	       strncmp(k, "metric.", 7) && strncmp(k, "param.", 6) &&
	       strncmp(k, "lineage.", 8);
}

/* The metadata keys with prefix p, as one JSON object {K: value}. */
static void meta_group_json(struct json *j, const char *name, const char *p,
			    const struct meta_ent *e, size_t n)
{
	size_t i, pl = strlen(p);

	json_key(j, name);
	json_obj_begin(j);
	for (i = 0; i < n; i++) {
		if (strncmp(e[i].key, p, pl))
			continue;
		json_key(j, e[i].key + pl);
		if (!strcmp(p, "metric."))
			json_number_or_str(j, e[i].value, e[i].len);
		else
			json_strn(j, e[i].value, e[i].len);
	}
	json_obj_end(j);
}

static void meta_json(struct json *j, const struct meta_ent *e, size_t n)
{
	size_t i;

	json_key(j, "description");
	for (i = 0; i < n; i++)
		if (!strcmp(e[i].key, "description"))
			break;
	if (i < n)
		json_strn(j, e[i].value, e[i].len);
	else
		json_null(j);
	meta_group_json(j, "tags", "tag.", e, n);
	meta_group_json(j, "metrics", "metric.", e, n);
	meta_group_json(j, "params", "param.", e, n);
	meta_group_json(j, "lineage", "lineage.", e, n);
	json_key(j, "facts");
	json_obj_begin(j);
	for (i = 0; i < n; i++)
		if (is_fact(e[i].key)) {
			json_key(j, e[i].key);
			json_strn(j, e[i].value, e[i].len);
		}
	json_obj_end(j);
}

/* Key/value rows of the metadata; sizes get their human form too. */
static void meta_rows(struct table *t, const struct meta_ent *e, size_t n)
{
	char a[4096], b[256], hs[32], *v;
	size_t i;

	for (i = 0; i < n; i++) {
		double d;

		human_str(e[i].value, a, sizeof(a));
		if ((!strcmp(e[i].key, "size") || !strcmp(e[i].key, "stored"))
		    && util_decimal(e[i].value, strlen(e[i].value), &d)
		    && d >= 0) {
			v = xasprintf("%s (%s)", a,
				     human_size((uint64_t)d, hs,
						sizeof(hs)));
		} else {
			v = xstrdup(a);
		}
		table_row(t, human_str(e[i].key, b, sizeof(b)), v);
		free(v);
	}
}

static int show_version(struct cli *c, const char *model, const char *version)
{
	struct meta_ent *e = NULL;
	struct vinfo v;
	struct table t;
	struct json j;
	char a[1024], nf[32], *stages;
	size_t n = 0;
	int r;

	r = vinfo_get(c, model, version, &v);
	if (r < 0)
		return fail_errno(c, r, SUBJ(.model = model,
					     .version = version));
	r = meta_collect(c, model, version, true, &e, &n);
	if (r < 0) {
		vinfo_release(&v);
		return fail_errno(c, r, SUBJ(.model = model,
					     .version = version));
	}
	if (c->json) {
		size_t i;

		json_init(&j, stdout);
		json_obj_begin(&j);
		json_key(&j, "model");
		json_str(&j, model);
		json_key(&j, "version");
		json_str(&j, version);
		json_key(&j, "state");
		json_str(&j, v.sealed ? "sealed" : "draft");
		json_key(&j, "files");
		json_u64(&j, v.nfiles);
		json_key(&j, "size");
		json_u64(&j, v.size);
		json_key(&j, "stored");
		json_u64(&j, v.stored);
		json_key(&j, "stages");
		json_arr_begin(&j);
		for (i = 0; i < v.nstages; i++)
			json_str(&j, v.stages[i]);
		json_arr_end(&j);
		meta_json(&j, e, n);
		json_obj_end(&j);
		json_finish(&j);
	} else {
		snprintf(a, sizeof(a), "%s/%s", model, version);
		printf("%s\n", human_str(a, a, sizeof(a)));
		stages = stages_str(&v);
		snprintf(nf, sizeof(nf), "%llu", (unsigned long long)v.nfiles);
		table_init(&t, 2, 0);
		table_row(&t, "  state", v.sealed ? "sealed" : "draft");
		table_row(&t, "  stages", *stages ? stages : NULL);
		table_row(&t, "  files", nf);
		free(stages);
		meta_rows(&t, e, n);
		/* Indent the metadata rows like the first ones. */
		table_indent(&t, 3, "  ");
		table_print(&t, stdout);
		table_release(&t);
	}
	meta_free(e, n);
	vinfo_release(&v);
	return EXIT_OK;
}

static int show_model(struct cli *c, const char *model)
{
	struct vlist vl = { 0 };
	struct meta_ent *e = NULL;
	struct table t;
	struct json j;
	char a[1024], nv[32];
	size_t n = 0, i, s;
	int r;

	r = be_versions(c, model, vlist_fn, &vl);
	if (r >= 0)
		r = meta_collect(c, model, NULL, true, &e, &n);
	if (r < 0) {
		vlist_release(&vl);
		return fail_errno(c, r, SUBJ(.model = model));
	}
	if (c->json) {
		json_init(&j, stdout);
		json_obj_begin(&j);
		json_key(&j, "model");
		json_str(&j, model);
		json_key(&j, "versions");
		json_arr_begin(&j);
		for (i = 0; i < vl.n; i++)
			json_str(&j, vl.v[i].name);
		json_arr_end(&j);
		json_key(&j, "stages");
		json_obj_begin(&j);
		for (i = 0; i < vl.n; i++)
			for (s = 0; s < vl.v[i].nstages; s++) {
				json_key(&j, vl.v[i].stages[s]);
				json_str(&j, vl.v[i].name);
			}
		json_obj_end(&j);
		meta_json(&j, e, n);
		json_obj_end(&j);
		json_finish(&j);
	} else {
		printf("%s\n", human_str(model, a, sizeof(a)));
		table_init(&t, 2, 0);
		snprintf(nv, sizeof(nv), "%zu", vl.n);
		table_row(&t, "versions", nv);
		for (i = 0; i < vl.n; i++)
			for (s = 0; s < vl.v[i].nstages; s++) {
				char *k;

				k = xasprintf("stage %s",
					     vl.v[i].stages[s]);
				table_row(&t, k, vl.v[i].name);
				free(k);
			}
		meta_rows(&t, e, n);
		table_indent(&t, 0, "  ");
		table_print(&t, stdout);
		table_release(&t);
	}
	meta_free(e, n);
	vlist_release(&vl);
	return EXIT_OK;
}

int cmd_show(struct cli *c)
{
	struct ref ref;
	size_t used;
	int r;

	if (c->nargs == 2) {
		r = model_version_args(c, 0, &ref, &used);
		if (r)
			return r;
	} else {
		ref_parse(&ref, c->args[0]);
	}
	r = ref_model_or_version(c, &ref, c->args[0], c->nargs != 2);
	if (r)
		goto out;
	if (ref.version)
		r = show_version(c, ref.model, ref.version);
	else
		r = show_model(c, ref.model);
out:
	ref_release(&ref);
	return r;
}

/* ---- cat ---------------------------------------------------------------- */

/* Opens a temporary file beside path; the caller renames it into place
 * once the content is complete, so that a failed get leaves nothing
 * half-written under the name asked for. */
static int open_beside(const char *path, char **ret_tmp)
{
	char *d = xstrdup(path), *tmp;
	mode_t um;
	int fd;

	tmp = xasprintf("%s/.%s.mreg-XXXXXX", dirname(d),
		     strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
	free(d);
	fd = mkstemp(tmp);
	if (fd < 0) {
		free(tmp);
		return -errno;
	}
	um = umask(0);
	umask(um);
	if (fchmod(fd, 0666 & ~um) < 0) {
		/* the default 0600 is safe: keep it */
	}
	*ret_tmp = tmp;
	return fd;
}

int cmd_cat(struct cli *c)
{
	const char *out = opt_get(c, OPT_OUTPUT), *path;
	char *tmp = NULL, a[1024];
	struct ref ref;
	int fd = STDOUT_FILENO, r;

	ref_parse(&ref, c->args[0]);
	r = ref_follow_stage(c, &ref);
	if (r)
		goto out;
	if (c->nargs == 2) {
		if (ref.nparts != 2) {
			r = usage_err(c, "expected MODEL/VERSION PATH");
			goto out;
		}
		path = c->args[1];
	} else if (ref.nparts != 3) {
		r = usage_err(c, "expected MODEL/VERSION/PATH, not '%s'",
			      c->args[0]);
		goto out;
	} else {
		path = ref.path;
	}
	while (*path == '/')
		path++;
	r = check_names(c, ref.model, ref.version, NULL);
	if (r)
		goto out;
	if (out && strcmp(out, "-")) {
		fd = open_beside(out, &tmp);
		if (fd < 0) {
			r = fail(c, "cannot write '%s': %s",
				 human_str(out, a, sizeof(a)), errstr(-fd));
			goto out;
		}
	}
	fflush(stdout);
	r = be_cat(c, ref.model, ref.version, path, fd);
	if (r == -EISDIR) {
		r = fail(c, "'%s/%s/%s' is a directory", ref.model,
			 ref.version, human_str(path, a, sizeof(a)));
	} else if (r == -EPIPE) {
		r = EXIT_FAIL;
	} else if (r < 0) {
		r = fail_errno(c, r, SUBJ(.model = ref.model,
					  .version = ref.version,
					  .path = path));
	} else {
		r = EXIT_OK;
	}
	if (tmp) {
		if (r == EXIT_OK && (fsync(fd) < 0 || close(fd) < 0)) {
			r = fail(c, "cannot write '%s': %s",
				 human_str(out, a, sizeof(a)), errstr(errno));
		} else if (r != EXIT_OK) {
			close(fd);
		}
		if (r == EXIT_OK && rename(tmp, out) < 0)
			r = fail(c, "cannot write '%s': %s",
				 human_str(out, a, sizeof(a)), errstr(errno));
		if (r != EXIT_OK)
			unlink(tmp);
		free(tmp);
	}
out:
	ref_release(&ref);
	return r;
}

/* ---- history ------------------------------------------------------------ */

struct hlist {
	struct hent {
		uint64_t seq;
		int64_t time;
		uid_t uid;
		char *stage, *from, *to, *action;
	} *h;
	size_t n, cap;
};

static int hlist_fn(void *arg, const struct reg_history *h)
{
	struct hlist *l = arg;
	struct hent *e;

	XGROW(l->h, l->cap, l->n);
	e = &l->h[l->n++];
	e->seq = h->seq;
	e->time = h->time;
	e->uid = h->uid;
	e->stage = xstrdup(h->stage ? h->stage : "");
	e->from = xstrdup(h->from ? h->from : "");
	e->to = xstrdup(h->to ? h->to : "");
	e->action = xstrdup(h->action ? h->action : "");
	return 0;
}

int cmd_history(struct cli *c)
{
	const char *model = c->args[0];
	const char *stage = c->nargs > 1 ? c->args[1] : NULL;
	struct hlist l = { 0 };
	struct table t;
	struct json j;
	size_t i;
	int r;

	r = check_names(c, model, NULL, stage);
	if (r)
		return r;
	r = be_history(c, model, stage, hlist_fn, &l);
	if (r < 0) {
		r = fail_errno(c, r, SUBJ(.model = model));
		goto out;
	}
	if (c->json) {
		json_init(&j, stdout);
		json_arr_begin(&j);
	} else {
		table_init(&t, 6, 0);
		table_row(&t, "TIME", "USER", "STAGE", "FROM", "TO", "ACTION");
	}
	for (i = 0; i < l.n; i++) {
		const struct hent *h = &l.h[i];
		char tm[64], u[256];

		iso_time(h->time, tm, sizeof(tm));
		util_uid_name(h->uid, u, sizeof(u));
		if (c->json) {
			json_obj_begin(&j);
			json_key(&j, "seq");
			json_u64(&j, h->seq);
			json_key(&j, "time");
			json_str(&j, tm);
			json_key(&j, "user");
			json_str(&j, u);
			json_key(&j, "uid");
			json_u64(&j, h->uid);
			json_key(&j, "stage");
			json_str(&j, h->stage);
			json_key(&j, "from");
			json_str(&j, *h->from ? h->from : NULL);
			json_key(&j, "to");
			json_str(&j, *h->to ? h->to : NULL);
			json_key(&j, "action");
			json_str(&j, h->action);
			json_obj_end(&j);
		} else {
			table_row(&t, tm, u, h->stage,
				  *h->from ? h->from : NULL,
				  *h->to ? h->to : NULL, h->action);
		}
	}
	if (c->json) {
		json_arr_end(&j);
		json_finish(&j);
	} else {
		table_print(&t, stdout);
		table_release(&t);
	}
	r = EXIT_OK;
out:
	for (i = 0; i < l.n; i++) {
		free(l.h[i].stage);
		free(l.h[i].from);
		free(l.h[i].to);
		free(l.h[i].action);
	}
	free(l.h);
	return r;
}

/* ---- search ------------------------------------------------------------- */

int cmd_search(struct cli *c)
{
	struct vlist vl = { 0 };
	char err[512], a[1024];
	char *q = NULL;
	size_t len = 0, i;
	struct json j;
	FILE *f;
	int r;

	/* Several arguments are one query: mreg search metric.auc '>=' 0.9 */
	f = open_memstream(&q, &len);
	if (!f)
		die_oom();
	for (i = 0; i < c->nargs; i++)
		fprintf(f, "%s%s", i ? " " : "", c->args[i]);
	fclose(f);
	err[0] = 0;
	r = be_search(c, q, err, sizeof(err), vlist_fn, &vl);
	free(q);
	if (r == -EINVAL) {
		vlist_release(&vl);
		fprintf(c->err, "mreg: search: %s\n",
			err[0] ? err : "malformed query");
		return EXIT_USAGE;
	}
	if (r < 0) {
		vlist_release(&vl);
		return fail_errno(c, r, SUBJ(.model = NULL));
	}
	if (c->json) {
		json_init(&j, stdout);
		json_arr_begin(&j);
		for (i = 0; i < vl.n; i++)
			vinfo_json(&j, &vl.v[i]);
		json_arr_end(&j);
		json_finish(&j);
	} else {
		for (i = 0; i < vl.n; i++) {
			snprintf(a, sizeof(a), "%s/%s", vl.v[i].model,
				 vl.v[i].name);
			printf("%s\n", a);
		}
	}
	vlist_release(&vl);
	return EXIT_OK;
}

/* ---- diff --------------------------------------------------------------- */

static int finfo_cmp(const void *a, const void *b)
{
	return strcmp(((const struct finfo *)a)->path,
		      ((const struct finfo *)b)->path);
}

static bool same_entry(const struct finfo *a, const struct finfo *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == REG_FILE)
		return a->size == b->size &&
		       !memcmp(&a->digest, &b->digest, sizeof(a->digest));
	if (a->kind == REG_SYMLINK)
		return !strcmp(a->target, b->target);
	return true;
}

static void diff_entry_json(struct json *j, const struct finfo *f)
{
	char h[33];

	json_obj_begin(j);
	json_key(j, "path");
	json_str(j, f->path);
	json_key(j, "kind");
	json_str(j, kind_name(f->kind));
	json_key(j, "size");
	json_u64(j, f->size);
	if (f->kind == REG_FILE) {
		json_key(j, "digest");
		json_str(j, chunkid_hex(&f->digest, h));
	}
	json_obj_end(j);
}

/* Two versions' files compared: both lists (sorted by path), and what
 * was added (entries of b), removed (of a) and changed (pairs). */
struct diff {
	struct flist a, b;
	const struct finfo **added, **removed, *(*changed)[2];
	size_t nadd, ndel, nchg, nsame;
};

static void diff_release(struct diff *d)
{
	flist_release(&d->a);
	flist_release(&d->b);
	free(d->added);
	free(d->removed);
	free(d->changed);
}

/* Reads both versions' files, sorted: 0, or the CLI's exit status. */
static int diff_load(struct cli *c, const char *am, const char *av,
		     const char *bm, const char *bv, struct diff *d)
{
	int r;

	r = be_files(c, am, av, flist_fn, &d->a);
	if (r < 0)
		return fail_errno(c, r, SUBJ(.model = am, .version = av));
	r = be_files(c, bm, bv, flist_fn, &d->b);
	if (r < 0)
		return fail_errno(c, r, SUBJ(.model = bm, .version = bv));
	if (d->a.n)  /* an empty version's list is NULL: not for qsort */
		qsort(d->a.f, d->a.n, sizeof(*d->a.f), finfo_cmp);
	if (d->b.n)
		qsort(d->b.f, d->b.n, sizeof(*d->b.f), finfo_cmp);
	return 0;
}

/* One merge of the two sorted lists into added, removed and changed. */
static int diff_merge(struct diff *d)
{
	const struct flist *a = &d->a, *b = &d->b;
	size_t i = 0, k = 0;

	d->added = calloc(b->n + 1, sizeof(*d->added));
	d->removed = calloc(a->n + 1, sizeof(*d->removed));
	d->changed = calloc((a->n < b->n ? a->n : b->n) + 1,
			    sizeof(*d->changed));
	if (!d->added || !d->removed || !d->changed)
		return -ENOMEM;
	while (i < a->n || k < b->n) {
		int cmp = i == a->n ? 1 : k == b->n ? -1 :
			  strcmp(a->f[i].path, b->f[k].path);

		if (cmp < 0) {
			d->removed[d->ndel++] = &a->f[i++];
		} else if (cmp > 0) {
			d->added[d->nadd++] = &b->f[k++];
		} else {
			if (same_entry(&a->f[i], &b->f[k])) {
				d->nsame++;
			} else {
				d->changed[d->nchg][0] = &a->f[i];
				d->changed[d->nchg++][1] = &b->f[k];
			}
			i++, k++;
		}
	}
	return 0;
}

/* shared: the bytes of the chunks both versions reference (a file with a
 * few bytes inserted still shares nearly all of itself), or NULL when
 * not known (through a mount the chunks are not visible). */
static void diff_print_text(const struct diff *d, const uint64_t *shared)
{
	char p[4096], s1[32], s2[32];
	size_t i;

	for (i = 0; i < d->nadd; i++)
		printf("+ %s (%s)\n", human_str(d->added[i]->path, p, sizeof(p)),
		       human_size(d->added[i]->size, s1, sizeof(s1)));
	for (i = 0; i < d->ndel; i++)
		printf("- %s (%s)\n",
		       human_str(d->removed[i]->path, p, sizeof(p)),
		       human_size(d->removed[i]->size, s1, sizeof(s1)));
	for (i = 0; i < d->nchg; i++)
		printf("~ %s (%s -> %s)\n",
		       human_str(d->changed[i][0]->path, p, sizeof(p)),
		       human_size(d->changed[i][0]->size, s1, sizeof(s1)),
		       human_size(d->changed[i][1]->size, s2, sizeof(s2)));
	printf("%llu added, %llu removed, %llu changed, %llu unchanged; %s%s\n",
	       (unsigned long long)d->nadd, (unsigned long long)d->ndel,
	       (unsigned long long)d->nchg, (unsigned long long)d->nsame,
	       shared ? human_size(*shared, s1, sizeof(s1)) :
	       "shared bytes unknown (through a mount)",
	       shared ? " shared" : "");
}

static void diff_changed_json(struct json *j, const struct finfo *x,
			      const struct finfo *y)
{
	char h1[33], h2[33];

	json_obj_begin(j);
	json_key(j, "path");
	json_str(j, x->path);
	json_key(j, "kind_a");
	json_str(j, kind_name(x->kind));
	json_key(j, "kind_b");
	json_str(j, kind_name(y->kind));
	json_key(j, "size_a");
	json_u64(j, x->size);
	json_key(j, "size_b");
	json_u64(j, y->size);
	json_key(j, "digest_a");
	json_str(j, x->kind == REG_FILE ? chunkid_hex(&x->digest, h1) : NULL);
	json_key(j, "digest_b");
	json_str(j, y->kind == REG_FILE ? chunkid_hex(&y->digest, h2) : NULL);
	json_obj_end(j);
}

static void diff_print_json(const struct diff *d, const char *na,
			    const char *nb, const uint64_t *shared)
{
	struct json j;
	size_t i;

	json_init(&j, stdout);
	json_obj_begin(&j);
	json_key(&j, "a");
	json_str(&j, na);
	json_key(&j, "b");
	json_str(&j, nb);
	json_key(&j, "added");
	json_arr_begin(&j);
	for (i = 0; i < d->nadd; i++)
		diff_entry_json(&j, d->added[i]);
	json_arr_end(&j);
	json_key(&j, "removed");
	json_arr_begin(&j);
	for (i = 0; i < d->ndel; i++)
		diff_entry_json(&j, d->removed[i]);
	json_arr_end(&j);
	json_key(&j, "changed");
	json_arr_begin(&j);
	for (i = 0; i < d->nchg; i++)
		diff_changed_json(&j, d->changed[i][0], d->changed[i][1]);
	json_arr_end(&j);
	json_key(&j, "unchanged");
	json_u64(&j, d->nsame);
	json_key(&j, "shared_bytes");
	if (shared)
		json_u64(&j, *shared);
	else
		json_null(&j);
	json_obj_end(&j);
	json_finish(&j);
}

int cmd_diff(struct cli *c)
{
	struct diff d = { 0 };
	struct ref ra, rb;
	const char *bm, *bv;
	uint64_t shared = 0;
	char na[1024], nb[1024];
	int r;

	ref_parse(&ra, c->args[0]);
	ref_parse(&rb, c->args[1]);
	r = ref_follow_stage(c, &ra);
	if (!r)
		r = ref_follow_stage(c, &rb);
	if (r)
		goto out;
	if (ra.nparts != 2 || rb.nparts > 2) {
		r = usage_err(c, "expected MODEL/VERSION MODEL/VERSION");
		goto out;
	}
	/* "churn/3 4" compares two versions of one model. */
	bm = rb.nparts == 2 ? rb.model : ra.model;
	bv = rb.nparts == 2 ? rb.version : rb.model;
	r = check_names(c, ra.model, ra.version, NULL);
	if (!r)
		r = check_names(c, bm, bv, NULL);
	if (!r)
		r = diff_load(c, ra.model, ra.version, bm, bv, &d);
	if (r)
		goto out;
	if ((r = diff_merge(&d)) < 0) {
		r = fail_errno(c, r, SUBJ(.model = bm, .version = bv));
		goto out;
	}
	r = be_shared_bytes(c, ra.model, ra.version, bm, bv, &shared);
	if (r < 0 && r != -ENOTSUP) {
		r = fail_errno(c, r, SUBJ(.model = bm, .version = bv));
		goto out;
	}
	snprintf(na, sizeof(na), "%s/%s", ra.model, ra.version);
	snprintf(nb, sizeof(nb), "%s/%s", bm, bv);
	if (c->json)
		diff_print_json(&d, na, nb, r == -ENOTSUP ? NULL : &shared);
	else
		diff_print_text(&d, r == -ENOTSUP ? NULL : &shared);
	r = EXIT_OK;
out:
	diff_release(&d);
	ref_release(&ra);
	ref_release(&rb);
	return r;
}

/* ---- audit -------------------------------------------------------------- */

struct audit_arg {
	struct cli *c;
	struct json j;
	const char *model;      /* filter, or NULL */
	const char *user;       /* filter by name, or NULL */
	bool by_uid;
	uid_t uid;
	uint64_t n;
};

static bool audit_match(struct audit_arg *a, const char *rec, size_t len)
{
	char v[1024];

	if (a->model && (json_get(rec, len, "model", v, sizeof(v)) < 0 ||
			 strcmp(v, a->model)))
		return false;
	if (a->by_uid) {
		char *end;

		if (json_get(rec, len, "uid", v, sizeof(v)) < 0)
			return false;
		errno = 0;
		if (strtoull(v, &end, 10) != a->uid || *end || errno)
			return false;
	} else if (a->user) {
		if (json_get(rec, len, "user", v, sizeof(v)) < 0 ||
		    strcmp(v, a->user))
			return false;
	}
	return true;
}

static int audit_fn(void *arg, uint64_t seq, const char *json, size_t len)
{
	struct audit_arg *a = arg;

	(void)seq;
	if (!audit_match(a, json, len))
		return 0;
	a->n++;
	if (a->c->json) {
		json_raw(&a->j, json, len);
	} else {
		fwrite(json, 1, len, stdout);
		putchar('\n');
	}
	return 0;
}

struct verify_arg {
	struct cli *c;
	struct json j;
	uint64_t findings;
};

static void verify_report(void *arg, uint64_t seq, const char *msg)
{
	struct verify_arg *v = arg;

	v->findings++;
	if (v->c->json) {
		json_obj_begin(&v->j);
		json_key(&v->j, "record");
		json_u64(&v->j, seq);
		json_key(&v->j, "message");
		json_str(&v->j, msg);
		json_obj_end(&v->j);
	} else {
		printf("record %llu: %s\n", (unsigned long long)seq, msg);
	}
}

static int count_record(void *arg, uint64_t seq, const char *json,
			size_t len)
{
	(void)seq;
	(void)json;
	(void)len;
	(*(uint64_t *)arg)++;
	return 0;
}

/* The head of the audit chain: the last record's number and the SHA-256
 * of its exact text. The chain has no key: whoever can write the store can
 * cut its last records and rewrite what is left so that it verifies. A
 * head copied elsewhere (audit --head) is an anchor: the record it names
 * must still be there, with that text (audit --verify --head). */
struct head {
	uint64_t seq;
	char hash[SHA256_DIGEST_STRING_LENGTH];
	bool found;
	bool stop_at_seq;         /* find seq; else the last record */
};

static int head_fn(void *arg, uint64_t seq, const char *json, size_t len)
{
	struct head *h = arg;

	if (h->stop_at_seq && seq != h->seq) {
		h->found = false;
		return 1;
	}
	h->seq = seq;
	SHA256Data((const uint8_t *)json, len, h->hash);
	h->found = true;
	return h->stop_at_seq ? 1 : 0;
}

/* "SEQ:HASH" (or "SEQ HASH", as .mreg/audit.log's user.mreg.head). */
static bool head_parse(const char *s, struct head *ret)
{
	char *end;
	size_t i;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	ret->seq = strtoull(s, &end, 10);
	if (errno || !ret->seq || (*end != ':' && *end != ' ') ||
	    strlen(end + 1) != SHA256_DIGEST_STRING_LENGTH - 1)
		return false;
	for (i = 0; end[1 + i]; i++) {
		char ch = end[1 + i];

		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return false;
		ret->hash[i] = ch;
	}
	ret->hash[i] = '\0';
	return true;
}

static int audit_head(struct cli *c)
{
	char hs[SHA256_DIGEST_STRING_LENGTH + 24];
	struct head h = { 0 };
	struct json j;
	int r;

	if (opt_has(c, OPT_SINCE) || opt_has(c, OPT_MODEL) ||
	    opt_has(c, OPT_USER) || c->nargs)
		return usage_err(c, "--head takes no filter and no argument "
				 "(to check one: --verify --head SEQ:HASH)");
	r = be_audit(c, 0, head_fn, &h);
	if (r < 0)
		return fail_errno(c, r, SUBJ(.model = NULL));
	if (!h.found)
		return fail(c, "the audit trail is empty");
	if (c->json) {
		json_init(&j, stdout);
		json_obj_begin(&j);
		json_key(&j, "seq");
		json_u64(&j, h.seq);
		json_key(&j, "hash");
		json_str(&j, h.hash);
		json_key(&j, "head");
		snprintf(hs, sizeof(hs), "%llu:%s", (unsigned long long)h.seq,
			 h.hash);
		json_str(&j, hs);
		json_obj_end(&j);
		json_finish(&j);
	} else {
		printf("%llu:%s\n", (unsigned long long)h.seq, h.hash);
	}
	return EXIT_OK;
}

/* The anchor of --verify --head: record want.seq must be there and hash
 * to want.hash. A finding is reported as the chain's are. */
static void check_anchor(struct cli *c, const struct head *want,
			 struct verify_arg *v, uint64_t *first)
{
	struct head h = { .seq = want->seq, .stop_at_seq = true };
	char msg[256];
	int r;

	r = be_audit(c, want->seq, head_fn, &h);
	if (r < 0)
		snprintf(msg, sizeof(msg), "cannot read the trail to check the "
			 "head %llu: %s", (unsigned long long)want->seq,
			 errstr(-r));
	else if (!h.found)
		snprintf(msg, sizeof(msg), "record %llu, the head given, is "
			 "gone: records were removed from the end of the trail",
			 (unsigned long long)want->seq);
	else if (strcmp(h.hash, want->hash))
		snprintf(msg, sizeof(msg), "record %llu is not the head given "
			 "(its SHA-256 is %.12s..., not %.12s...): the trail "
			 "was rewritten from there on",
			 (unsigned long long)want->seq, h.hash, want->hash);
	else
		return;
	verify_report(v, want->seq, msg);
	if (!*first || want->seq < *first)
		*first = want->seq;
}

/* audit --verify: the chain of SHA-256 "prev" hashes (and, with --head, the
 * anchor). Status 0 when intact, EXIT_DAMAGE (3) naming the first bad
 * record when not. */
static int audit_verify(struct cli *c)
{
	struct verify_arg v = { .c = c };
	struct head anchor = { 0 };
	uint64_t first = 0, n = 0;
	bool anchored = opt_has(c, OPT_HEAD);
	int r;

	if (opt_has(c, OPT_SINCE) || opt_has(c, OPT_MODEL) ||
	    opt_has(c, OPT_USER))
		return usage_err(c, "--verify checks the whole trail: no "
				 "--since, --model or --user");
	if (anchored && c->nargs != 1)
		return usage_err(c, "--verify --head needs the head to check: "
				 "SEQ:HASH, as 'mreg audit --head' printed it");
	if (!anchored && c->nargs)
		return usage_err(c, "unexpected argument '%s'", c->args[0]);
	if (anchored && !head_parse(c->args[0], &anchor))
		return usage_err(c, "'%s' is not a head: SEQ:HASH (a number, "
				 "':', 64 hex digits)", c->args[0]);
	if (c->json) {
		json_init(&v.j, stdout);
		json_obj_begin(&v.j);
		json_key(&v.j, "findings");
		json_arr_begin(&v.j);
	}
	r = be_audit_verify(c, verify_report, &v, &first);
	if (r >= 0 && anchored) {
		check_anchor(c, &anchor, &v, &first);
		if (first)
			r = 1;
	}
	if (r >= 0)
		be_audit(c, 0, count_record, &n);
	if (c->json) {
		json_arr_end(&v.j);
		if (r >= 0) {
			json_key(&v.j, "records");
			json_u64(&v.j, n);
			json_key(&v.j, "intact");
			json_bool(&v.j, r == 0);
			json_key(&v.j, "first_bad");
			if (r)
				json_u64(&v.j, first);
			else
				json_null(&v.j);
		}
		json_obj_end(&v.j);
		json_finish(&v.j);
	}
	if (r < 0)
		return fail_errno(c, r, SUBJ(.model = NULL));
	if (r) {
		fprintf(c->err, "mreg: audit: the audit trail is broken: "
			"record %llu is the first bad one\n",
			(unsigned long long)first);
		return EXIT_DAMAGE;
	}
	if (!c->json && !c->quiet)
		printf("intact: %llu record%s, each holding the SHA-256 of "
		       "the one before%s\n", (unsigned long long)n,
		       n == 1 ? "" : "s", anchored ? "; the head given is "
		       "in it" : "");
	return EXIT_OK;
}

int cmd_audit(struct cli *c)
{
	const char *since = opt_get(c, OPT_SINCE), *user = opt_get(c, OPT_USER);
	struct audit_arg a;
	uint64_t from = 0;
	char *end;
	int r;

	if (opt_has(c, OPT_VERIFY))
		return audit_verify(c);
	if (opt_has(c, OPT_HEAD))
		return audit_head(c);
	if (c->nargs)
		return usage_err(c, "unexpected argument '%s'", c->args[0]);
	memset(&a, 0, sizeof(a));
	a.c = c;
	a.model = opt_get(c, OPT_MODEL);
	if (since) {
		errno = 0;
		from = strtoull(since, &end, 10);
		if (!*since || *end || errno || *since == '-')
			return usage_err(c, "--since needs a sequence number, "
					 "not '%s'", since);
	}
	if (user) {
		struct passwd *pw;
		unsigned long long u;

		errno = 0;
		u = strtoull(user, &end, 10);
		if (*user && !*end && !errno && *user != '-') {
			a.by_uid = true;
			a.uid = (uid_t)u;
		} else if ((pw = getpwnam(user))) {
			a.by_uid = true;
			a.uid = pw->pw_uid;
		} else {
			/* Not a user here: match the name the record
			 * carries. */
			a.user = user;
		}
	}
	if (c->json) {
		json_init(&a.j, stdout);
		json_arr_begin(&a.j);
	}
	r = be_audit(c, from, audit_fn, &a);
	if (r < 0)
		return fail_errno(c, r, SUBJ(.model = NULL));
	if (c->json) {
		json_arr_end(&a.j);
		json_finish(&a.j);
	}
	return EXIT_OK;
}
