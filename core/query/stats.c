/* stats.c — what `mreg stats` and .mreg/metrics show: bytes per model
 * and version (logical, stored, shared between versions), the store's
 * figures (live, dead, what gc would free), and the Prometheus text of
 * .mreg/metrics (counters of this process, open files, hooks, the serving
 * cache). */
#include "registry/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymap.h"
#include "log.h"
#include "serve/serve.h"

/* A set of chunk keys (open addressing), to count distinct chunks. */
/* Adds chunk key k to the set s: 1 if it was new, 0 if there, -ENOMEM. */
static int key_add(struct keymap *s, const struct chunk_key *k)
{
	bool fresh;

	if (!keymap_slot(s, k, true, &fresh))
		return -ENOMEM;
	return fresh;
}

struct tree_stats {
	struct idx_txn *t;
	struct keymap *model_set, *total_set;
	struct reg_stats *ms, *ts;
	const struct keymap *other;   /* reg_shared_bytes */
	uint64_t shared;
	int err;
};

static int stat_extent(void *arg, const struct idx_val *k,
		       const struct idx_val *v)
{
	struct tree_stats *s = arg;
	struct extent_rec x;
	int r;

	if (rec_extent_decode(k->data, k->len, v->data, v->len, &x) < 0)
		return s->err = -EIO;
	if (s->other) {
		if (keymap_find(s->other, &x.chunk) &&
		    (r = key_add(s->model_set, &x.chunk)) != 0) {
			if (r < 0)
				return s->err = r;
			s->shared += x.len;
		}
		return 0;
	}
	if (s->model_set) {
		if ((r = key_add(s->model_set, &x.chunk)) < 0)
			return s->err = r;
		if (r) {
			s->ms->stored += x.len;
			s->ms->chunks++;
		}
	}
	if (s->total_set) {
		if ((r = key_add(s->total_set, &x.chunk)) < 0)
			return s->err = r;
		if (r) {
			s->ts->stored += x.len;
			s->ts->chunks++;
		}
	}
	return 0;
}

static int stat_file_cb(void *arg, const struct reg_file_info *f)
{
	struct tree_stats *s = arg;
	uint8_t p[8];

	if (f->kind != REG_FILE)
		return 0;
	if (s->ms) {
		s->ms->files++;
		s->ms->logical += f->size;
	}
	if (s->ts) {
		s->ts->files++;
		s->ts->logical += f->size;
	}
	be64_put(p, f->ino);
	idx_scan(s->t, IDX_EXTENTS, p, 8, NULL, 0, stat_extent, s);
	return s->err;
}

struct stats_arg {
	int (*fn)(void *arg, const struct reg_stats *s);
	void *arg;
	struct idx_txn *t;
	struct keymap total_set;
	struct reg_stats total;
	int err;
};

static int stats_model(void *arg, UNUSED const struct idx_val *k,
		       const struct idx_val *v)
{
	struct stats_arg *a = arg;
	struct keymap ms;
	struct reg_stats st = { 0 };
	struct tree_stats ts = { .t = a->t, .model_set = &ms,
				 .total_set = &a->total_set, .ms = &st,
				 .ts = &a->total };
	struct child_list c;
	struct inode_rec m, rec;
	struct reg_files_walk w = { .t = a->t, .fn = stat_file_cb, .arg = &ts };
	size_t i;
	int r = 0;

	keymap_init(&ms, sizeof(struct chunk_key));
	if ((a->err = reg_entry_inode_txn(a->t, v, &m)) < 0)
		return a->err;
	reg_children_txn(a->t, m.ino, &c);
	for (i = 0; i < c.n && r == 0 && c.err == 0; i++) {
		if ((r = reg_inode_get_txn(a->t, c.v[i].ino, &rec)) < 0)
			break;
		if (rec.kind != REG_VERSION)
			continue;
		st.versions++;
		a->total.versions++;
		r = reg_files_dir(&w, rec.ino, "", 0);
	}
	free(c.v);
	keymap_free(&ms);
	if (c.err < 0 || r < 0)
		return a->err = c.err < 0 ? c.err : r;
	st.model = m.name;
	return a->fn(a->arg, &st);
}

static int stats_txn(struct idx_txn *t, void *arg)
{
	struct stats_arg *a = arg;
	int r;

	a->t = t;
	r = reg_entries_scan_txn(t, REG_MODELS_INO, stats_model, a);
	if (a->err < 0)
		return a->err;
	if (r)
		return r;
	a->total.model = NULL;
	return a->fn(a->arg, &a->total);
}

int reg_stats(struct reg_registry *reg,
	      int (*fn)(void *arg, const struct reg_stats *s), void *arg)
{
	struct stats_arg a = { .fn = fn, .arg = arg };
	int r;

	if (!reg || !fn)
		return -EINVAL;
	keymap_init(&a.total_set, sizeof(struct chunk_key));
	r = idx_read(reg->ix, stats_txn, &a);
	keymap_free(&a.total_set);
	return r;
}

struct shared_arg {
	const char *ma, *va, *mb, *vb;
	uint64_t shared;
};

static int shared_txn(struct idx_txn *t, void *arg)
{
	struct shared_arg *a = arg;
	struct keymap sa, seen;
	struct tree_stats ts = { .t = t, .model_set = &sa };
	struct reg_stats dummy = { 0 };
	struct reg_files_walk w = { .t = t, .fn = stat_file_cb, .arg = &ts };
	struct inode_rec va, vb;
	int r;

	keymap_init(&sa, sizeof(struct chunk_key));
	keymap_init(&seen, sizeof(struct chunk_key));
	if ((r = reg_version_get_txn(t, a->ma, a->va, NULL, &va)) < 0 ||
	    (r = reg_version_get_txn(t, a->mb, a->vb, NULL, &vb)) < 0)
		return r;
	ts.ms = &dummy;
	r = reg_files_dir(&w, va.ino, "", 0);
	if (r == 0) {
		ts.other = &sa;
		ts.model_set = &seen;
		ts.ms = NULL;
		r = reg_files_dir(&w, vb.ino, "", 0);
		a->shared = ts.shared;
	}
	keymap_free(&sa);
	keymap_free(&seen);
	return r;
}

int reg_shared_bytes(struct reg_registry *reg, const char *model_a,
		     const char *version_a, const char *model_b,
		     const char *version_b, uint64_t *ret)
{
	struct shared_arg a = { model_a, version_a, model_b, version_b, 0 };
	int r;

	if (!reg || !model_a || !version_a || !model_b || !version_b || !ret)
		return -EINVAL;
	r = idx_read(reg->ix, shared_txn, &a);
	if (r == 0)
		*ret = a.shared;
	return r;
}

int reg_store_stats(struct reg_registry *reg, struct reg_store_stats *ret)
{
	struct reg_store_stats st = { 0 };
	struct idx_stats is = { 0 };
	int r;

	if (!reg || !ret)
		return -EINVAL;
	if ((r = reg_gc_estimate(reg, &st)) < 0)
		return r;
	if ((r = store_bytes(reg->st, &st.pack_bytes)) < 0)
		return r;
	idx_stats(reg->ix, &is);
	st.index_bytes = is.bytes_used;
	st.reads = atomic_load(&reg->reads);
	st.read_bytes = atomic_load(&reg->read_bytes);
	st.writes = atomic_load(&reg->writes);
	st.write_bytes = atomic_load(&reg->write_bytes);
	st.promotions = atomic_load(&reg->promotions);
	st.errors = atomic_load(&reg->errors);
	st.chunked_bytes = atomic_load(&reg->chunked_bytes);
	*ret = st;
	return 0;
}

/* .mreg/metrics, in the Prometheus text format: each family once, with
 * its HELP and TYPE lines and then all its samples (per-model families
 * carry a model label), so that `promtool check metrics` accepts it and
 * `mreg --store MNT stats` can print the same table as on the store. */
struct metrics_arg {
	struct strbuf fam[5];     /* the per-model families, one each */
	struct reg_stats total;
	uint64_t models;
};

static const struct {
	const char *name, *help;
} model_fams[5] = {
	{ "mreg_model_versions", "Versions of the model." },
	{ "mreg_model_files", "Files of all versions of the model." },
	{ "mreg_model_logical_bytes", "Bytes of all files of all versions "
	  "of the model." },
	{ "mreg_model_referenced_bytes", "Bytes of the distinct chunks the "
	  "model's versions reference." },
	{ "mreg_model_chunks", "Distinct chunks the model's versions "
	  "reference." },
};

static int metrics_model(void *arg, const struct reg_stats *s)
{
	struct metrics_arg *a = arg;
	const uint64_t v[5] = { s->versions, s->files, s->logical, s->stored,
				s->chunks };
	int i;

	if (!s->model) {
		a->total = *s;
		return 0;
	}
	a->models++;
	for (i = 0; i < 5; i++) {
		/* model names are [A-Za-z0-9._-]: nothing to escape */
		strbuf_addf(&a->fam[i], "%s{model=\"%s\"} %llu\n",
			    model_fams[i].name, s->model,
			    (unsigned long long)v[i]);
	}
	return 0;
}

/* What became of the hooks. */
static void metrics_hooks(struct reg_registry *reg, struct strbuf *sb)
{
	struct hook_counts hc;
	int i;

	hooks_counts(reg->hooks, &hc);
	strbuf_adds(sb, "# HELP mreg_hooks_total Hooks by outcome: ok, error "
		    "(exited non-zero; a URL's receiver refused it), failed "
		    "(did not start or timed out; a URL's delivery did not "
		    "come through), dropped (too many waiting).\n"
		    "# TYPE mreg_hooks_total counter\n");
	for (i = 0; i < HOOK_NRESULTS; i++)
		strbuf_addf(sb, "mreg_hooks_total{result=\"%s\"} %llu\n",
			    hooks_result_name((enum hook_result)i),
			    (unsigned long long)hc.n[i]);
	strbuf_addf(sb, "# HELP mreg_hooks_queued Hook events waiting to run.\n"
		    "# TYPE mreg_hooks_queued gauge\n"
		    "mreg_hooks_queued %llu\n", (unsigned long long)hc.queued);
}

/* The descriptors held for users (fdcap.h). */
static void metrics_open_files(struct reg_registry *reg, struct strbuf *sb)
{
	struct fdcap_stats fc;

	fdcap_stats(reg->fdcap, &fc);
	strbuf_addf(sb, "# HELP mreg_open_files Spool descriptors held for "
		    "files open for writing.\n# TYPE mreg_open_files gauge\n"
		    "mreg_open_files %llu\n", (unsigned long long)fc.held);
	strbuf_addf(sb, "# HELP mreg_open_files_refused_total Spools refused "
		    "with EMFILE ([limits]).\n"
		    "# TYPE mreg_open_files_refused_total counter\n"
		    "mreg_open_files_refused_total %llu\n",
		    (unsigned long long)fc.refused);
}

/* This host's copy of sealed records (registry/fixed.c), when there is
 * one. */
static void metrics_fixed(struct reg_registry *reg, struct strbuf *sb)
{
	if (reg->current)
		strbuf_addf(sb, "# HELP mreg_current_hits_total Lookups of "
			    "models, stages and versions this daemon answered "
			    "from what it keeps while its watcher vouches "
			    "(registry/current.c).\n"
			    "# TYPE mreg_current_hits_total counter\n"
			    "mreg_current_hits_total %llu\n",
			    (unsigned long long)atomic_load(
				    &reg->current_hits));
	if (!reg->fixed)
		return;
	strbuf_addf(sb, "# HELP mreg_fixed_lookups_total Reads of records "
		    "by this process from the host's copy (registry/fixed.c): "
		    "hit and miss of sealed content, stale: a model or "
		    "version as last read, the database being away.\n"
		    "# TYPE mreg_fixed_lookups_total counter\n"
		    "mreg_fixed_lookups_total{result=\"hit\"} %llu\n"
		    "mreg_fixed_lookups_total{result=\"miss\"} %llu\n"
		    "mreg_fixed_lookups_total{result=\"stale\"} %llu\n",
		    (unsigned long long)atomic_load(&reg->fixed_hits),
		    (unsigned long long)atomic_load(&reg->fixed_misses),
		    (unsigned long long)atomic_load(&reg->fixed_stale));
}

/* One family of one sample: its HELP and TYPE lines, then the sample. */
static void metric(struct strbuf *sb, const char *name, const char *help,
		   bool counter, const char *value)
{
	strbuf_addf(sb, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help,
		    name, counter ? "counter" : "gauge", name, value);
}

/* The families of one sample: the totals, the store, the counters. */
static void metrics_totals(struct strbuf *sb, const struct metrics_arg *a,
			   const struct reg_store_stats *st)
{
	const struct reg_stats *t = &a->total;
	const struct {
		const char *name, *help;
		bool counter;
		uint64_t v;
	} one[] = {
		{ "mreg_models", "Registered models.", false, a->models },
		{ "mreg_versions", "Versions of all models.", false,
		  t->versions },
		{ "mreg_files", "Files of all versions.", false, t->files },
		{ "mreg_logical_bytes", "Bytes of all files of all versions.",
		  false, t->logical },
		{ "mreg_referenced_bytes", "Bytes of the distinct chunks the "
		  "versions reference.", false, t->stored },
		{ "mreg_chunks", "Distinct chunks the versions reference.",
		  false, t->chunks },
		{ "mreg_stored_bytes", "Bytes of the pack files.", false,
		  st->pack_bytes },
		{ "mreg_live_bytes", "Bytes of the chunks that something "
		  "references.", false, st->live_bytes },
		{ "mreg_reclaimable_bytes", "Pack bytes mreg gc can reclaim.",
		  false, st->dead_bytes },
		{ "mreg_index_bytes", "Bytes the index uses.", false,
		  st->index_bytes },
		{ "mreg_store_chunks", "Chunk records in the store.", false,
		  st->chunks },
		{ "mreg_reads_total", "Reads of file content by this process.",
		  true, st->reads },
		{ "mreg_read_bytes_total", "Bytes read by this process.", true,
		  st->read_bytes },
		{ "mreg_commits_total", "File commits by this process.", true,
		  st->writes },
		{ "mreg_written_bytes_total", "Bytes committed by this "
		  "process.", true, st->write_bytes },
		{ "mreg_promotions_total", "Stage changes by this process.",
		  true, st->promotions },
		{ "mreg_errors_total", "Failed calls in this process.", true,
		  st->errors },
		{ "mreg_chunked_bytes_total", "Bytes cut into chunks and hashed "
		  "to store written files.", true, st->chunked_bytes },
	};
	char num[32];
	size_t k;

	for (k = 0; k < sizeof(one) / sizeof(one[0]); k++) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)one[k].v);
		metric(sb, one[k].name, one[k].help, one[k].counter, num);
	}
	snprintf(num, sizeof(num), "%.4f", t->stored ?
		 (double)t->logical / (double)t->stored : 1.0);
	metric(sb, "mreg_dedup_ratio", "Logical bytes per referenced byte.",
	       false, num);
}

int reg_metrics_text(struct reg_registry *reg, char **ret, size_t *ret_len)
{
	struct metrics_arg a = { .models = 0 };
	struct reg_store_stats st;
	struct strbuf sb;
	int i, r;

	if (!reg || !ret || !ret_len)
		return -EINVAL;
	for (i = 0; i < 5; i++)
		strbuf_init(&a.fam[i]);
	strbuf_init(&sb);
	r = reg_stats(reg, metrics_model, &a);
	if (r == 0)
		r = reg_store_stats(reg, &st);
	/* the index away: what this process knows is said all the same,
	   the registry's totals are not (mreg_index_up 0) */
	if (r < 0)
		reg_fixed_said(reg, r);
	if (r < 0 && reg_db_away(reg)) {
		for (i = 0; i < 5; i++)
			strbuf_reset(&a.fam[i]);
		r = 0;
	} else if (r < 0) {
		goto out;
	} else {
		metrics_totals(&sb, &a, &st);
	}
	metric(&sb, "mreg_index_up", "1 when the registry's index answered "
	       "this scrape, 0 when it is away (the totals are then left "
	       "out).", false, reg_db_away(reg) ? "0" : "1");
	metrics_hooks(reg, &sb);
	metrics_open_files(reg, &sb);
	metrics_fixed(reg, &sb);
	serve_metrics(reg->serve, &sb);
	for (i = 0; i < 5; i++) {
		if (!a.fam[i].len)
			continue;
		strbuf_addf(&sb, "# HELP %s %s\n# TYPE %s gauge\n",
			    model_fams[i].name, model_fams[i].help,
			    model_fams[i].name);
		strbuf_add(&sb, a.fam[i].buf, a.fam[i].len);
	}
out:
	for (i = 0; i < 5; i++)
		strbuf_release(&a.fam[i]);
	if (r < 0) {
		strbuf_release(&sb);
		return r;
	}
	*ret = strbuf_detach(&sb, ret_len);
	return 0;
}
