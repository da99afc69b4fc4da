/* mreg-maint.c — the commands about the store as a whole: stats, fsck and
 * gc. fsck and gc show a progress bar on a terminal; fsck's exit status
 * tells damage (3) from a check that could not run (1).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mreg.h"

/* ---- stats -------------------------------------------------------------- */

struct srow {
	char *model;            /* NULL: the total */
	uint64_t versions, files, logical, stored, chunks;
};

struct slist {
	struct srow *s;
	size_t n, cap;
};

static int stats_fn(void *arg, const struct reg_stats *s)
{
	struct slist *l = arg;
	struct srow *d;

	XGROW(l->s, l->cap, l->n);
	d = &l->s[l->n++];
	d->model = s->model ? strdup(s->model) : NULL;
	if (s->model && !d->model)
		die_oom();
	d->versions = s->versions;
	d->files = s->files;
	d->logical = s->logical;
	d->stored = s->stored;
	d->chunks = s->chunks;
	return 0;
}

static void srow_json(struct json *j, const struct srow *s)
{
	json_obj_begin(j);
	if (s->model) {
		json_key(j, "model");
		json_str(j, s->model);
	}
	json_key(j, "versions");
	json_u64(j, s->versions);
	json_key(j, "files");
	json_u64(j, s->files);
	json_key(j, "logical_bytes");
	json_u64(j, s->logical);
	json_key(j, "stored_bytes");
	json_u64(j, s->stored);
	json_key(j, "chunks");
	json_u64(j, s->chunks);
	json_key(j, "dedup_ratio");
	if (s->stored)
		json_double(j, (double)s->logical / (double)s->stored);
	else
		json_null(j);
	json_obj_end(j);
}

/* Whether running gc is worth it, or with which option, from ss; NULL
 * when gc has nothing to reclaim. */
static const char *gc_hint(const struct reg_store_stats *ss, char *buf,
			   size_t size)
{
	char b[32];

	if (ss->gc_bytes || ss->trash)
		return "reclaimable data: run 'mreg gc'";
	if (!ss->gc_all_bytes)
		return NULL;
	snprintf(buf, size, "%s dead in packs at most %d %% dead: 'mreg gc "
		 "--all' reclaims it", human_size(ss->gc_all_bytes, b,
						  sizeof(b)),
		 REG_GC_THRESHOLD);
	return buf;
}

static void stats_json(struct cli *c, const struct slist *l,
		       const struct reg_store_stats *ss)
{
	const struct srow *total = NULL;
	struct json j;
	size_t i;

	json_init(&j, stdout);
	json_obj_begin(&j);
	json_key(&j, "store");
	json_str(&j, be_path(c));
	json_key(&j, "models");
	json_arr_begin(&j);
	for (i = 0; i < l->n; i++) {
		if (!l->s[i].model) {
			total = &l->s[i];
			continue;
		}
		srow_json(&j, &l->s[i]);
	}
	json_arr_end(&j);
	json_key(&j, "total");
	if (total)
		srow_json(&j, total);
	else
		json_null(&j);
	json_key(&j, "pack_bytes");
	json_u64(&j, ss->pack_bytes);
	json_key(&j, "live_bytes");
	json_u64(&j, ss->live_bytes);
	json_key(&j, "reclaimable_bytes");
	json_u64(&j, ss->dead_bytes);
	json_key(&j, "gc_reclaimable_bytes");
	json_u64(&j, ss->gc_bytes);
	json_key(&j, "gc_all_reclaimable_bytes");
	json_u64(&j, ss->gc_all_bytes);
	json_key(&j, "removed_waiting_gc");
	json_u64(&j, ss->trash);
	json_key(&j, "index_bytes");
	json_u64(&j, ss->index_bytes);
	json_key(&j, "chunks");
	json_u64(&j, ss->chunks);
	serving_stats(c, &j);
	json_obj_end(&j);
	json_finish(&j);
}

static void stats_table(struct cli *c, const struct slist *l,
			const struct reg_store_stats *ss)
{
	char v[32], f[32], lg[32], st[32], dd[32], a[1024];
	const char *hint;
	struct table t;
	size_t i;

	table_init(&t, 6, 0x3eu);
	table_row(&t, "MODEL", "VERSIONS", "FILES", "LOGICAL", "STORED",
		  "DEDUP");
	for (i = 0; i < l->n; i++) {
		const struct srow *s = &l->s[i];

		snprintf(v, sizeof(v), "%llu", (unsigned long long)s->versions);
		snprintf(f, sizeof(f), "%llu", (unsigned long long)s->files);
		if (s->stored)
			snprintf(dd, sizeof(dd), "%.2fx",
				 (double)s->logical / (double)s->stored);
		else
			snprintf(dd, sizeof(dd), "-");
		table_row(&t, s->model ? human_str(s->model, a, sizeof(a)) :
			  "(total)", v, f,
			  human_size(s->logical, lg, sizeof(lg)),
			  human_size(s->stored, st, sizeof(st)), dd);
	}
	table_print(&t, stdout);
	table_release(&t);

	printf("\nstore %s\n", human_str(be_path(c), a, sizeof(a)));
	table_init(&t, 2, 0x2u);
	table_row(&t, "  packs", human_size(ss->pack_bytes, lg, sizeof(lg)));
	table_row(&t, "  live", human_size(ss->live_bytes, lg, sizeof(lg)));
	table_row(&t, "  reclaimable", human_size(ss->dead_bytes, lg,
						  sizeof(lg)));
	table_row(&t, "    by gc", human_size(ss->gc_bytes, lg, sizeof(lg)));
	table_row(&t, "    by gc --all", human_size(ss->gc_all_bytes, lg,
						    sizeof(lg)));
	table_row(&t, "  index", human_size(ss->index_bytes, lg, sizeof(lg)));
	snprintf(v, sizeof(v), "%llu", (unsigned long long)ss->chunks);
	table_row(&t, "  chunks", v);
	table_print(&t, stdout);
	table_release(&t);
	if ((hint = gc_hint(ss, a, sizeof(a))))
		printf("\n%s\n", hint);
	serving_stats(c, NULL);
}

/* The row of model (NULL: the total) in l, added when missing. */
static struct srow *srow_of(struct slist *l, const char *model)
{
	struct srow *d;
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!l->s[i].model == !model &&
		    (!model || !strcmp(l->s[i].model, model)))
			return &l->s[i];
	stats_fn(l, &(struct reg_stats){ .model = model });
	d = &l->s[l->n - 1];
	/* the total comes last, as reg_stats() gives it */
	if (model && l->n > 1 && !l->s[l->n - 2].model) {
		struct srow tmp = l->s[l->n - 2];

		l->s[l->n - 2] = *d;
		l->s[l->n - 1] = tmp;
		d = &l->s[l->n - 2];
	}
	return d;
}

/* Through a mount: the numbers of the table, read from .mreg/metrics (the
 * families reg_metrics_text() writes). */
static int stats_from_metrics(struct cli *c, struct slist *l,
			      struct reg_store_stats *ss)
{
	static const char *const field[] = { "versions", "files",
		"logical_bytes", "referenced_bytes", "chunks", NULL };
	char *text, *line, *save = NULL, *sp, *lb, model[256];
	size_t len, i;
	int r;

	r = mount_metrics(c->mnt, &text, &len);
	if (r < 0)
		return r;
	memset(ss, 0, sizeof(*ss));
	srow_of(l, NULL);
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		const char *name = line;
		uint64_t v, *slot = NULL;
		struct srow *row;

		if (line[0] == '#' || !(sp = strrchr(line, ' ')))
			continue;
		*sp = '\0';
		v = strtoull(sp + 1, NULL, 10);
		model[0] = '\0';
		if ((lb = strchr(line, '{'))) {
			*lb = '\0';
			if (sscanf(lb + 1, "model=\"%255[^\"]\"", model) != 1)
				continue;
		}
		if (!strncmp(name, "mreg_model_", 11) && model[0]) {
			row = srow_of(l, model);
			name += 11;
		} else if (!model[0] && !strncmp(name, "mreg_", 5)) {
			row = srow_of(l, NULL);
			name += 5;
		} else {
			continue;
		}
		for (i = 0; field[i]; i++)
			if (!strcmp(name, field[i]))
				slot = (uint64_t *[]){ &row->versions,
					&row->files, &row->logical,
					&row->stored, &row->chunks }[i];
		if (!model[0] && !strcmp(name, "stored_bytes"))
			slot = &ss->pack_bytes;
		else if (!model[0] && !strcmp(name, "live_bytes"))
			slot = &ss->live_bytes;
		else if (!model[0] && !strcmp(name, "reclaimable_bytes"))
			slot = &ss->dead_bytes;
		else if (!model[0] && !strcmp(name, "index_bytes"))
			slot = &ss->index_bytes;
		else if (!model[0] && !strcmp(name, "store_chunks"))
			slot = &ss->chunks;
		if (slot)
			*slot = v;
	}
	free(text);
	return 0;
}

int cmd_stats(struct cli *c)
{
	struct slist l = { 0 };
	struct reg_store_stats ss;
	size_t i;
	int r;

	if (c->mnt) {
		r = stats_from_metrics(c, &l, &ss);
		if (r < 0) {
			r = fail(c, "cannot read '%s/.mreg/metrics': %s",
				 mount_path(c->mnt), errstr(-r));
			goto out;
		}
	} else {
		r = reg_stats(c->reg, stats_fn, &l);
		if (r >= 0)
			r = reg_store_stats(c->reg, &ss);
		if (r < 0) {
			r = fail_errno(c, r, SUBJ(.model = NULL));
			goto out;
		}
	}
	if (c->json)
		stats_json(c, &l, &ss);
	else
		stats_table(c, &l, &ss);
	r = EXIT_OK;
out:
	for (i = 0; i < l.n; i++)
		free(l.s[i].model);
	free(l.s);
	return r;
}

/* ---- fsck --------------------------------------------------------------- */

struct fsck_arg {
	struct cli *c;
	struct progress prog;
	struct json j;
	uint64_t errors, infos;
};

static void fsck_report(void *arg, const char *severity, const char *msg)
{
	struct fsck_arg *a = arg;

	if (!strcmp(severity, "error"))
		a->errors++;
	else
		a->infos++;
	if (a->c->json) {
		json_obj_begin(&a->j);
		json_key(&a->j, "severity");
		json_str(&a->j, severity);
		json_key(&a->j, "message");
		json_str(&a->j, msg);
		json_obj_end(&a->j);
		return;
	}
	/* The bar is redrawn by the next report of progress. */
	progress_end(&a->prog);
	printf("%s: %s\n", severity, msg);
	fflush(stdout);
}

/* reg_fsck() hands report and progress the same arg. */
static void fsck_progress(void *arg, uint64_t done, uint64_t total)
{
	struct fsck_arg *a = arg;

	progress_cb(&a->prog, done, total);
}

int cmd_fsck(struct cli *c)
{
	unsigned flags = opt_has(c, OPT_FULL) ? REG_FSCK_FULL : 0;
	struct reg_store_stats ss;
	struct fsck_arg a;
	const char *why;
	char hint[128];
	int r;

	if ((r = be_needs_store(c)))
		return r;
	memset(&a, 0, sizeof(a));
	a.c = c;
	progress_init(&a.prog, c, "fsck", false);
	if (c->json) {
		json_init(&a.j, stdout);
		json_obj_begin(&a.j);
		json_key(&a.j, "findings");
		json_arr_begin(&a.j);
	}
	r = reg_fsck(c->reg, flags, fsck_report, fsck_progress, &a);
	progress_end(&a.prog);
	if (r < 0) {
		if (c->json) {
			json_arr_end(&a.j);
			json_obj_end(&a.j);
			json_finish(&a.j);
		}
		if (r == -EIO)
			return fail(c, "the index is damaged: cannot check "
				    "the store");
		return fail_errno(c, r, SUBJ(.model = NULL));
	}
	/* Core's count is the authority for errors (it may count damage it
	 * reports in one finding as several). */
	if ((uint64_t)r > a.errors)
		a.errors = (uint64_t)r;
	/* the hydrated copies, which passthrough reads do not check */
	serving_fsck(c, fsck_report, &a);
	if (c->json) {
		json_arr_end(&a.j);
		json_key(&a.j, "errors");
		json_u64(&a.j, a.errors);
		json_key(&a.j, "infos");
		json_u64(&a.j, a.infos);
		json_key(&a.j, "clean");
		json_bool(&a.j, a.errors == 0);
		json_obj_end(&a.j);
		json_finish(&a.j);
	} else if (a.errors) {
		printf("%llu error%s found: damaged data (see above)\n",
		       (unsigned long long)a.errors, a.errors == 1 ? "" : "s");
	} else if (!c->quiet) {
		if (reg_store_stats(c->reg, &ss) == 0 &&
		    (why = gc_hint(&ss, hint, sizeof(hint))))
			printf("clean (%s)\n", why);
		else
			printf("clean\n");
	}
	return a.errors ? EXIT_DAMAGE : EXIT_OK;
}

/* ---- gc ----------------------------------------------------------------- */

/* The options of gc: 0, or the exit status of a usage error. */
static int gc_options(struct cli *c, struct reg_gc_options *ret)
{
	const char *pct = opt_get(c, OPT_THRESHOLD);
	unsigned long v;
	char *end;

	ret->threshold = REG_GC_THRESHOLD;
	if (opt_has(c, OPT_ALL) && pct)
		return usage_err(c, "--all and --threshold exclude each "
				 "other");
	if (opt_has(c, OPT_ALL))
		ret->threshold = 0;
	if (pct) {
		errno = 0;
		v = strtoul(pct, &end, 10);
		if (!*pct || *end || errno || *pct == '-' || v > 100)
			return usage_err(c, "--threshold needs a percentage "
					 "from 0 to 100, not '%s'", pct);
		ret->threshold = (unsigned)v;
	}
	return 0;
}

int cmd_gc(struct cli *c)
{
	struct reg_gc_options opt;
	struct reg_gc_result res;
	struct progress prog;
	struct json j;
	char b[32], why[1024];
	const char *rs;
	int r;

	if ((r = gc_options(c, &opt)))
		return r;
	if ((r = be_needs_store(c)))
		return r;
	progress_init(&prog, c, "gc", false);
	r = reg_gc(c->reg, &opt, progress_cb, &prog, &res);
	progress_end(&prog);
	if (r == -EIO) {
		/* A chunk that would not read or a pack that would not
		 * sync: core logged which. */
		rs = last_logged(c, why, sizeof(why));
		return fail(c, "gc stopped: %s",
			    rs ? rs : "input/output error");
	}
	if (r < 0)
		return fail_errno(c, r, SUBJ(.model = NULL));
	if (c->json) {
		json_init(&j, stdout);
		json_obj_begin(&j);
		json_key(&j, "versions_freed");
		json_u64(&j, res.versions_freed);
		json_key(&j, "chunks_freed");
		json_u64(&j, res.chunks_freed);
		json_key(&j, "bytes_freed");
		json_u64(&j, res.bytes_freed);
		json_key(&j, "packs_removed");
		json_u64(&j, res.packs_removed);
		json_key(&j, "packs_cut");
		json_u64(&j, res.packs_cut);
		json_key(&j, "packs_rewritten");
		json_u64(&j, res.packs_rewritten);
		json_key(&j, "bytes_kept");
		json_u64(&j, res.bytes_kept);
		json_key(&j, "bytes_no_room");
		json_u64(&j, res.bytes_no_room);
		json_obj_end(&j);
		json_finish(&j);
		return EXIT_OK;
	}
	if (c->quiet)
		return EXIT_OK;
	printf("freed %s: %llu chunk%s, %llu removed version%s; "
	       "%llu pack%s removed, %llu cut, %llu rewritten\n",
	       human_size(res.bytes_freed, b, sizeof(b)),
	       (unsigned long long)res.chunks_freed,
	       res.chunks_freed == 1 ? "" : "s",
	       (unsigned long long)res.versions_freed,
	       res.versions_freed == 1 ? "" : "s",
	       (unsigned long long)res.packs_removed,
	       res.packs_removed == 1 ? "" : "s",
	       (unsigned long long)res.packs_cut,
	       (unsigned long long)res.packs_rewritten);
	if (res.bytes_no_room)
		printf("left %s dead in packs too large to rewrite in the "
		       "free space\n", human_size(res.bytes_no_room, b,
						  sizeof(b)));
	if (res.bytes_kept)
		printf("left %s dead in packs at most %u %% dead: 'mreg gc "
		       "--all' reclaims it\n",
		       human_size(res.bytes_kept, b, sizeof(b)),
		       opt.threshold);
	return EXIT_OK;
}

/* ---- hosts -------------------------------------------------------------- */

struct hosts_arg {
	struct reg_host *v;
	size_t n, cap;
};

static int hosts_one(void *arg, const struct reg_host *h)
{
	struct hosts_arg *a = arg;

	XGROW(a->v, a->cap, a->n);
	a->v[a->n++] = *h;
	return 0;
}

static int host_cmp(const void *x, const void *y)
{
	const struct reg_host *a = x, *b = y;
	int c = strcmp(a->host, b->host);

	return c ? c : strcmp(a->mount, b->mount);
}

/* Whether every live mount has applied change seq. */
static bool hosts_all_seen(const struct hosts_arg *a, uint64_t seq)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (a->v[i].alive && a->v[i].applied < seq)
			return false;
	return true;
}

static void hosts_print(struct cli *c, const struct hosts_arg *a,
			uint64_t head, const char *model, const char *stage,
			uint64_t seq, const char *version)
{
	int64_t now = now_ns();
	struct json j;
	size_t i;

	if (c->json) {
		json_init(&j, stdout);
		json_obj_begin(&j);
		json_key(&j, "head");
		json_u64(&j, head);
		if (model) {
			json_key(&j, "change");
			json_obj_begin(&j);
			json_key(&j, "model");
			json_str(&j, model);
			json_key(&j, "stage");
			json_str(&j, stage);
			json_key(&j, "version");
			json_str(&j, version);
			json_key(&j, "seq");
			json_u64(&j, seq);
			json_obj_end(&j);
			json_key(&j, "all_seen");
			json_bool(&j, hosts_all_seen(a, seq));
		}
		json_key(&j, "hosts");
		json_arr_begin(&j);
		for (i = 0; i < a->n; i++) {
			const struct reg_host *h = &a->v[i];

			json_obj_begin(&j);
			json_key(&j, "host");
			json_str(&j, h->host);
			json_key(&j, "pid");
			json_i64(&j, h->pid);
			json_key(&j, "mount");
			json_str(&j, h->mount);
			json_key(&j, "alive");
			json_bool(&j, h->alive);
			json_key(&j, "applied");
			json_u64(&j, h->applied);
			json_key(&j, "lag");
			json_u64(&j, head > h->applied ? head - h->applied : 0);
			json_key(&j, "age_s");
			json_double(&j, (double)(now - h->time_ns) / 1e9);
			if (model) {
				json_key(&j, "seen");
				json_bool(&j, h->applied >= seq);
			}
			json_obj_end(&j);
		}
		json_arr_end(&j);
		json_obj_end(&j);
		json_finish(&j);
		return;
	}
	if (c->quiet)
		return;
	if (model)
		printf("%s/%s: version %s, change %llu\n", model, stage,
		       *version ? version : "(none)",
		       (unsigned long long)seq);
	printf("%-20s %8s  %-28s %8s %6s %8s  %s\n", "HOST", "PID", "MOUNT",
	       "APPLIED", "LAG", "SAID", model ? "SEEN" : "STATE");
	for (i = 0; i < a->n; i++) {
		const struct reg_host *h = &a->v[i];
		char age[32];

		snprintf(age, sizeof(age), "%.0fs", (double)(now - h->time_ns)
			 / 1e9);
		printf("%-20s %8d  %-28s %8llu %6llu %8s  %s\n", h->host,
		       h->pid, h->mount, (unsigned long long)h->applied,
		       (unsigned long long)(head > h->applied ?
					    head - h->applied : 0), age,
		       !h->alive ? "gone" : !model ? "live" :
		       h->applied >= seq ? "yes" : "no");
	}
}

int cmd_hosts(struct cli *c)
{
	const char *model = c->nargs > 0 ? c->args[0] : NULL;
	const char *stage = c->nargs > 1 ? c->args[1] : NULL;
	const char *wait = opt_get(c, OPT_WAIT);
	struct hosts_arg a = { 0 };
	char version[129] = "";
	uint64_t head = 0, seq = 0;
	double secs = 0;
	int64_t until;
	char *end;
	int r;

	if ((r = be_needs_store(c)))
		return r;
	if (c->nargs == 1)
		return usage_err(c, "give MODEL and STAGE, or neither");
	if (wait) {
		errno = 0;
		secs = strtod(wait, &end);
		if (!*wait || *end || errno || !(secs >= 0 && secs <= 86400))
			return usage_err(c, "--wait takes seconds (0 to "
					 "86400), not '%s'", wait);
		if (!model)
			return usage_err(c, "--wait needs MODEL and STAGE");
	}
	if (model) {
		r = reg_stage_change_seq(c->reg, model, stage, &seq, version,
					 sizeof(version));
		if (r == -ENOENT)
			return fail(c, "no change of stage '%s' of model '%s' "
				    "in the audit trail", stage, model);
		if (r < 0)
			return fail_errno(c, r, SUBJ(.model = model));
	}
	until = now_ns() + (int64_t)(secs * 1e9);
	for (;;) {
		a.n = 0;
		r = reg_audit_head(c->reg, &head);
		if (r == 0)
			r = reg_hosts(c->reg, hosts_one, &a);
		if (r < 0) {
			free(a.v);
			return fail_errno(c, r, SUBJ(.model = NULL));
		}
		if (!model || hosts_all_seen(&a, seq) || now_ns() >= until)
			break;
		usleep(200000);
	}
	qsort(a.v, a.n, sizeof(*a.v), host_cmp);
	hosts_print(c, &a, head, model, stage, seq, version);
	r = model && !hosts_all_seen(&a, seq) ? EXIT_FAIL : EXIT_OK;
	free(a.v);
	return r;
}
