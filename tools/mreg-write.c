/* mreg-write.c — the commands that change the registry: init, push, seal,
 * promote, rollback, rm and meta. Each one checks the names it was given
 * with core's own rules first (so that the message names the bad one),
 * makes one registry call, and turns its errno into a sentence.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mreg.h"

/* Checks names with core's rules; the message names the bad one. */
int check_names(struct cli *c, const char *model, const char *version,
		const char *stage)
{
	char a[1024];

	if (model && reg_check_name(model) < 0)
		return fail(c, "invalid name '%s'",
			    human_str(model, a, sizeof(a)));
	if (version && reg_check_name(version) < 0)
		return fail(c, "invalid name '%s'",
			    human_str(version, a, sizeof(a)));
	if (stage && reg_check_stage(stage) < 0)
		return fail(c, "invalid stage name '%s'",
			    human_str(stage, a, sizeof(a)));
	return 0;
}

int model_version_args(struct cli *c, size_t i, struct ref *r,
		       size_t *ret_used)
{
	memset(r, 0, sizeof(*r));
	if (i >= c->nargs)
		return usage_err(c, "missing MODEL VERSION");
	if (strchr(c->args[i], '/')) {
		ref_parse(r, c->args[i]);
		if (r->nparts != 2)
			return usage_err(c, "expected MODEL/VERSION, not '%s'",
					 c->args[i]);
		*ret_used = 1;
		return 0;
	}
	if (i + 1 >= c->nargs)
		return usage_err(c, "missing VERSION after '%s'", c->args[i]);
	r->model = c->args[i];
	r->version = c->args[i + 1];
	r->nparts = 2;
	*ret_used = 2;
	return 0;
}

int cmd_init(struct cli *c)
{
	const char *path;
	struct json j;
	int r;

	/* Through a mount there is no store to make or check. */
	if ((r = be_needs_store(c)))
		return r;
	path = reg_path(c->reg);
	if (c->json) {
		json_init(&j, stdout);
		json_obj_begin(&j);
		json_key(&j, "store");
		json_str(&j, path);
		json_obj_end(&j);
		json_finish(&j);
	} else if (!c->quiet) {
		printf("%s\n", path);
	}
	return EXIT_OK;
}

/* ---- push --------------------------------------------------------------- */

struct kvlist {
	struct reg_kv *kv;
	char **owned;
	size_t n, cap, ocap;
};

static void kvlist_release(struct kvlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->owned[i]);
	free(l->owned);
	free(l->kv);
}

static void kvlist_add(struct kvlist *l, char *key, const char *value)
{
	XGROW(l->kv, l->cap, l->n);
	XGROW(l->owned, l->ocap, l->n);
	l->kv[l->n].key = key;
	l->kv[l->n].value = value;
	l->owned[l->n] = key;
	l->n++;
}

/* --metric K=V and friends into "metric.K" = V. */
static int push_meta(struct cli *c, struct kvlist *l)
{
	static const struct { int id; const char *opt, *prefix; } kinds[] = {
		{ OPT_METRIC, "metric", "metric." },
		{ OPT_TAG, "tag", "tag." },
		{ OPT_PARAM, "param", "param." },
		{ OPT_LINEAGE, "lineage", "lineage." },
	};
	char a[1024], b[1024];
	size_t i, k;

	for (i = 0; i < c->nopts; i++) {
		const struct optval *o = &c->opts[i];
		const char *eq;
		char *key;

		if (o->id == OPT_DESCRIPTION) {
			key = xstrdup("description");
			kvlist_add(l, key, o->val);
			continue;
		}
		for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
			if (kinds[k].id == o->id)
				break;
		if (k == sizeof(kinds) / sizeof(kinds[0]))
			continue;
		eq = strchr(o->val, '=');
		if (!eq || eq == o->val)
			return usage_err(c, "--%s needs KEY=VALUE, not '%s'",
					 kinds[k].opt,
					 human_str(o->val, a, sizeof(a)));
		if (o->id == OPT_METRIC &&
		    !util_decimal(eq + 1, strlen(eq + 1), NULL))
			return fail(c, "invalid metric '%.*s': '%s' is not a "
				    "number", (int)(eq - o->val),
				    human_str(o->val, b, sizeof(b)),
				    human_str(eq + 1, a, sizeof(a)));
		key = xasprintf("%s%.*s", kinds[k].prefix,
			     (int)(eq - o->val), o->val);
		kvlist_add(l, key, eq + 1);
	}
	return 0;
}

int cmd_push(struct cli *c)
{
	const char *model = c->args[0];
	const char *version = opt_get(c, OPT_VERSION);
	char made[REG_NAME_MAX + 1], a[1024], why[1024];
	struct kvlist meta = { 0 };
	struct progress prog;
	struct stat st;
	const char *rs;
	struct json j;
	size_t i;
	int r;

	r = check_names(c, model, version, NULL);
	if (r)
		return r;
	r = push_meta(c, &meta);
	if (r)
		goto out;
	/* A missing or unreadable path is the user's, said before any byte
	 * is stored. */
	for (i = 1; i < c->nargs; i++) {
		const char *p = c->args[i];

		if (stat(p, &st) < 0 || access(p, R_OK) < 0) {
			r = fail(c, "cannot read '%s': %s",
				 human_str(p, a, sizeof(a)), errstr(errno));
			goto out;
		}
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
			r = fail(c, "'%s' is not a file or directory",
				 human_str(p, a, sizeof(a)));
			goto out;
		}
	}
	progress_init(&prog, c, "push", true);
	r = be_push(c, model, (const char *const *)c->args + 1,
		    c->nargs - 1, version, meta.kv, meta.n, progress_cb, &prog,
		    made);
	progress_end(&prog);
	if (r == -ENOENT) {
		r = fail(c, "a file to push vanished while it was read");
		goto out;
	}
	if (r == -EINVAL) {
		rs = last_logged(c, why, sizeof(why));
		r = fail(c, "cannot push to '%s': %s",
			 human_str(model, a, sizeof(a)),
			 rs ? rs : "invalid metadata or file name");
		goto out;
	}
	if (r == -EIO) {
		/* Writing or syncing the new chunks failed (nothing was
		 * registered): core logged which pack and why. */
		rs = last_logged(c, why, sizeof(why));
		r = fail(c, "cannot store '%s': %s",
			 human_str(model, a, sizeof(a)),
			 rs ? rs : "input/output error");
		goto out;
	}
	if (r < 0) {
		r = fail_errno(c, r, SUBJ(.model = model, .version = version));
		goto out;
	}
	if (c->json) {
		json_init(&j, stdout);
		json_obj_begin(&j);
		json_key(&j, "model");
		json_str(&j, model);
		json_key(&j, "version");
		json_str(&j, made);
		json_obj_end(&j);
		json_finish(&j);
	} else {
		printf("%s\n", made);
	}
	r = EXIT_OK;
out:
	kvlist_release(&meta);
	return r;
}

/* ---- seal, promote, rollback, rm ---------------------------------------- */

int cmd_seal(struct cli *c)
{
	struct ref ref;
	size_t used;
	int r;

	r = model_version_args(c, 0, &ref, &used);
	if (r)
		goto out;
	if (used != c->nargs) {
		r = usage_err(c, "unexpected argument '%s'", c->args[used]);
		goto out;
	}
	r = check_names(c, ref.model, ref.version, NULL);
	if (r)
		goto out;
	r = be_seal(c, ref.model, ref.version);
	if (r == -EALREADY)
		r = 0;
	if (r < 0)
		r = fail_errno(c, r, SUBJ(.model = ref.model,
					  .version = ref.version));
out:
	ref_release(&ref);
	return r;
}

int cmd_promote(struct cli *c)
{
	const char *stage;
	struct ref ref;
	size_t used;
	int r;

	r = model_version_args(c, 0, &ref, &used);
	if (r)
		goto out;
	if (used + 1 != c->nargs) {
		r = used + 1 > c->nargs ?
		    usage_err(c, "missing STAGE") :
		    usage_err(c, "unexpected argument '%s'",
			      c->args[used + 1]);
		goto out;
	}
	stage = c->args[used];
	r = check_names(c, ref.model, ref.version, stage);
	if (r)
		goto out;
	r = be_promote(c, ref.model, ref.version, stage);
	if (r < 0)
		r = fail_errno(c, r, SUBJ(.model = ref.model,
					  .version = ref.version,
					  .stage = stage));
out:
	ref_release(&ref);
	return r;
}

static int count_fn(void *arg, const struct reg_history *h)
{
	(void)h;
	(*(size_t *)arg)++;
	return 0;
}

int cmd_rollback(struct cli *c)
{
	const char *model = c->args[0], *stage = c->args[1];
	char to[REG_NAME_MAX + 1], a[1024], b[1024], why[1024];
	size_t n = 0;
	struct json j;
	int r;

	r = check_names(c, model, NULL, stage);
	if (r)
		return r;
	r = be_rollback(c, model, stage, to);
	if (r == -ENOENT && be_history(c, model, stage, count_fn,
					&n) == 0) {
		human_str(stage, a, sizeof(a));
		human_str(model, b, sizeof(b));
		if (n == 0)
			return fail(c, "stage '%s' of model '%s' does not "
				    "exist", a, b);
		return fail(c, "stage '%s' of model '%s' has no earlier "
			    "version to roll back to", a, b);
	}
	if (r == -EACCES) {
		const char *rs = last_logged(c, why, sizeof(why));

		/* "refused: ..." from a mount, "denied: ..." from its mode
		 * bits; core's own reason as it is */
		if (rs && !strncmp(rs, "refused: ", 9))
			rs += 9;
		else if (rs && !strncmp(rs, "denied: ", 8))
			rs += 8;
		return fail(c, "rolling back stage '%s' of '%s' refused%s%s",
			    human_str(stage, a, sizeof(a)),
			    human_str(model, b, sizeof(b)), rs ? ": " : "",
			    rs ? rs : "");
	}
	if (r < 0)
		return fail_errno(c, r, SUBJ(.model = model, .stage = stage));
	if (c->json) {
		json_init(&j, stdout);
		json_obj_begin(&j);
		json_key(&j, "model");
		json_str(&j, model);
		json_key(&j, "stage");
		json_str(&j, stage);
		json_key(&j, "version");
		json_str(&j, to);
		json_obj_end(&j);
		json_finish(&j);
	} else {
		printf("%s\n", to);
	}
	return EXIT_OK;
}

/* The stages pointing at model/version, "A, B" (for the EBUSY message). */
static void stages_of(struct cli *c, const char *model, const char *version,
		      char *buf, size_t size)
{
	struct vinfo v;
	size_t i, n = 0;

	buf[0] = 0;
	if (vinfo_get(c, model, version, &v) < 0)
		return;
	for (i = 0; i < v.nstages && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%s",
				      i ? ", " : "", v.stages[i]);
	vinfo_release(&v);
}

int cmd_rm(struct cli *c)
{
	const char *stage = opt_get(c, OPT_STAGE);
	char a[1024], b[512];
	struct ref ref;
	size_t used;
	int r;

	memset(&ref, 0, sizeof(ref));
	if (stage) {
		if (c->nargs != 1 || strchr(c->args[0], '/'))
			return usage_err(c, "--stage takes one MODEL");
		r = check_names(c, c->args[0], NULL, stage);
		if (r)
			return r;
		r = be_stage_remove(c, c->args[0], stage);
		if (r < 0)
			return fail_errno(c, r, SUBJ(.model = c->args[0],
						     .stage = stage));
		return EXIT_OK;
	}
	if (c->nargs == 1 && !strchr(c->args[0], '/')) {
		/* A model without versions. */
		r = check_names(c, c->args[0], NULL, NULL);
		if (r)
			return r;
		r = be_model_remove(c, c->args[0]);
		if (r < 0)
			return fail_errno(c, r, SUBJ(.model = c->args[0]));
		return EXIT_OK;
	}
	r = model_version_args(c, 0, &ref, &used);
	if (r)
		goto out;
	if (used != c->nargs) {
		r = usage_err(c, "unexpected argument '%s'", c->args[used]);
		goto out;
	}
	r = check_names(c, ref.model, ref.version, NULL);
	if (r)
		goto out;
	r = be_version_remove(c, ref.model, ref.version);
	if (r == -EBUSY) {
		stages_of(c, ref.model, ref.version, b, sizeof(b));
		snprintf(a, sizeof(a), "%s/%s", ref.model, ref.version);
		if (b[0])
			r = fail(c, "version '%s' is in use: a stage points "
				 "at it (%s)", a, b);
		else    /* a draft: some process writes in it */
			r = fail(c, "version '%s' has a file open for "
				 "writing", a);
		goto out;
	}
	if (r < 0)
		r = fail_errno(c, r, SUBJ(.model = ref.model,
					  .version = ref.version));
out:
	ref_release(&ref);
	return r;
}

/* ---- meta --------------------------------------------------------------- */

static bool writable_key(const char *k)
{
	return !strcmp(k, "description") || !strncmp(k, "tag.", 4) ||
	       !strncmp(k, "metric.", 7) || !strncmp(k, "param.", 6) ||
	       !strncmp(k, "lineage.", 8);
}

struct meta_list {
	struct meta_ent *e;
	size_t n;
	bool all;               /* facts too */
	size_t cap;
};

static int meta_fn(void *arg, const char *key, const char *value,
		   size_t len)
{
	struct meta_list *l = arg;
	struct meta_ent *e;

	if (!l->all && !writable_key(key))
		return 0;
	XGROW(l->e, l->cap, l->n);
	e = &l->e[l->n++];
	e->key = strdup(key);
	e->value = malloc(len + 1);
	if (!e->key || !e->value)
		die_oom();
	memcpy(e->value, value, len);
	e->value[len] = 0;
	e->len = len;
	return 0;
}

static void meta_list_release(struct meta_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->e[i].key);
		free(l->e[i].value);
	}
	free(l->e);
	l->e = NULL;
	l->n = 0;
}

int meta_collect(struct cli *c, const char *model, const char *version,
		 bool all, struct meta_ent **ret, size_t *ret_n)
{
	struct meta_list l = { .all = all };
	int r;

	r = be_meta_list(c, model, version, meta_fn, &l);
	if (r < 0) {
		meta_list_release(&l);
		return r;
	}
	*ret = l.e;
	*ret_n = l.n;
	return 0;
}

void meta_free(struct meta_ent *e, size_t n)
{
	struct meta_list l = { .e = e, .n = n };

	meta_list_release(&l);
}

static int meta_print(struct cli *c, const char *model, const char *version)
{
	struct meta_ent *e;
	struct table t;
	struct json j;
	char a[4096], b[256];
	size_t n, i;
	int r;

	r = meta_collect(c, model, version, false, &e, &n);
	if (r < 0)
		return fail_errno(c, r, SUBJ(.model = model,
					     .version = version));
	if (c->json) {
		json_init(&j, stdout);
		json_obj_begin(&j);
		for (i = 0; i < n; i++) {
			json_key(&j, e[i].key);
			if (!strncmp(e[i].key, "metric.", 7))
				json_number_or_str(&j, e[i].value, e[i].len);
			else
				json_strn(&j, e[i].value, e[i].len);
		}
		json_obj_end(&j);
		json_finish(&j);
	} else {
		table_init(&t, 2, 0);
		for (i = 0; i < n; i++)
			table_row(&t, human_str(e[i].key, b, sizeof(b)),
				  human_str(e[i].value, a, sizeof(a)));
		table_print(&t, stdout);
		table_release(&t);
	}
	meta_free(e, n);
	return EXIT_OK;
}

int cmd_meta(struct cli *c)
{
	const char *op = c->args[1], *key = NULL, *value = NULL;
	struct ref ref;
	int r;

	ref_parse(&ref, c->args[0]);
	r = ref_model_or_version(c, &ref, c->args[0], false);
	if (r)
		goto out;
	if (!strcmp(op, "list")) {
		if (c->nargs != 2) {
			r = usage_err(c, "unexpected argument '%s'",
				      c->args[2]);
			goto out;
		}
		r = meta_print(c, ref.model, ref.version);
		goto out;
	} else if (!strcmp(op, "set")) {
		if (c->nargs != 4) {
			r = usage_err(c, "usage: mreg meta MODEL[/VERSION] set "
				      "KEY VALUE");
			goto out;
		}
		key = c->args[2];
		value = c->args[3];
	} else if (!strcmp(op, "unset")) {
		if (c->nargs != 3) {
			r = usage_err(c, "usage: mreg meta MODEL[/VERSION] "
				      "unset KEY");
			goto out;
		}
		key = c->args[2];
	} else {
		r = usage_err(c, "unknown operation '%s' (set, unset or list)",
			      op);
		goto out;
	}
	r = be_meta_set(c, ref.model, ref.version, key, value);
	if (r < 0)
		r = fail_errno(c, r, SUBJ(.model = ref.model,
					  .version = ref.version, .key = key,
					  .value = value));
out:
	ref_release(&ref);
	return r;
}
