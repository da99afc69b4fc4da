/* select.c — reg_search(): the versions a query (query/search.h, the
 * language, pure) selects, with the field values it asks for read from
 * the index in one transaction: metadata, facts, stages. */
#include "registry/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "query/search.h"

struct search_cand {
	struct idx_txn *t;
	const struct inode_rec *m, *v;
	const struct reg_version_info *vi;
};

static void search_get(void *arg, const char *field,
		       void (*emit)(void *ectx, const char *value), void *ectx)
{
	struct search_cand *c = arg;
	struct idx_val val;
	char buf[128], *s;
	size_t i;

	if (!strcmp(field, "name")) {
		emit(ectx, c->m->name);
	} else if (!strcmp(field, "version")) {
		emit(ectx, c->v->name);
	} else if (!strcmp(field, "stage")) {
		for (i = 0; c->vi->stages[i]; i++)
			emit(ectx, c->vi->stages[i]);
	} else if (!strcmp(field, "created")) {
		util_time_iso(c->v->btime, true, buf, sizeof(buf));
		emit(ectx, buf);
	} else if (!strcmp(field, "creator")) {
		util_uid_name(c->v->uid, buf, sizeof(buf));
		emit(ectx, buf);
	} else if (reg_meta_get_txn(c->t, c->v->ino, field, &val) == 0) {
		s = malloc(val.len + 1);
		if (!s)
			return;
		memcpy(s, val.data, val.len);
		s[val.len] = '\0';
		emit(ectx, s);
		free(s);
	}
}

struct search_arg {
	const struct search_query *q;
	int (*fn)(void *arg, const struct reg_version_info *v);
	void *arg;
	struct idx_txn *t;
	struct inode_rec m;
	int err;
};

static int search_version(void *arg, UNUSED const struct idx_val *k,
			  const struct idx_val *v)
{
	struct search_arg *a = arg;
	struct reg_version_info vi;
	struct reg_stage_names sn;
	struct search_cand c;
	struct inode_rec rec;
	int r;

	if ((a->err = reg_entry_inode_txn(a->t, v, &rec)) < 0)
		return a->err;
	if (rec.kind != REG_VERSION)
		return 0;
	if ((r = reg_version_fill_txn(a->t, &a->m, &rec, &vi, &sn)) < 0) {
		reg_stage_names_free(&sn);
		return a->err = r;
	}
	c = (struct search_cand){ a->t, &a->m, &rec, &vi };
	r = search_match(a->q, search_get, &c) ? a->fn(a->arg, &vi) : 0;
	reg_stage_names_free(&sn);
	return r;
}

static int search_model(void *arg, UNUSED const struct idx_val *k,
			const struct idx_val *v)
{
	struct search_arg *a = arg;
	int r;

	if ((a->err = reg_entry_inode_txn(a->t, v, &a->m)) < 0)
		return a->err;
	r = reg_entries_scan_txn(a->t, a->m.ino, search_version, a);
	return a->err < 0 ? a->err : r;
}

static int search_txn(struct idx_txn *t, void *arg)
{
	struct search_arg *a = arg;
	const char *name = search_fixed(a->q, "name");
	int r;

	a->t = t;
	a->err = 0;
	if (!name) {
		reg_entries_scan_txn(t, REG_MODELS_INO, search_model, a);
		return a->err;
	}
	/* `name = M and ...`: the versions of M alone */
	r = reg_model_get_txn(t, name, &a->m);
	if (r == -ENOENT || r == -EINVAL)
		return 0;
	if (r < 0)
		return r;
	r = reg_entries_scan_txn(t, a->m.ino, search_version, a);
	return a->err < 0 ? a->err : r < 0 ? r : 0;
}

int reg_search(struct reg_registry *reg, const char *query, char *err,
	       size_t errlen,
	       int (*fn)(void *arg, const struct reg_version_info *v),
	       void *arg)
{
	struct search_arg a = { .fn = fn, .arg = arg };
	struct search_query *q;
	int r;

	if (!reg || !query || !fn)
		return -EINVAL;
	r = search_parse(query, &q, err, errlen);
	if (r < 0)
		return r;
	a.q = q;
	r = idx_read(reg->ix, search_txn, &a);
	search_free(q);
	return r;
}
