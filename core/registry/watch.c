/* watch.c — a daemon learns at once what other hosts changed (issue 14:
 * "changes reach every host at once").
 *
 * Every audited change wakes the index's watchers when it commits
 * (reg_audit_put_txn calls idx_notify: PostgreSQL's NOTIFY). A daemon's
 * watcher thread waits on its watch (a connection that LISTENs), then
 * reads the audit records after the last one it applied and hands each
 * to the daemon's function (mregfs invalidates what the kernel cached of
 * the names it names, fs/inval.c), then says it has applied them (the
 * hosts record, hosts.c). The audit trail is the change sequence, so
 * nothing is missed: a watch that was lost is opened again and the
 * records since the last applied are read; and every WAIT_MS without a
 * wake-up the trail is read anyway (a wake-up lost with its connection
 * costs that much at most).
 *
 * Until it has caught up (after a start or a lost watch) nothing is
 * served from what was last read: names other hosts change have the short
 * kernel timeouts of fs/mregfs.h and stages are asked of the database on
 * every walk, whatever this thread knows.
 *
 * While the watch is open and the trail was read within FRESH_NS, the
 * daemon keeps the records of models, stages and sealed versions it read
 * (current.c): a generation that every change handed on moves on.
 *
 * An index without watchers (lmdb: one host, whose processes share the
 * kernel's caches through one mount) starts no thread.
 */
#include "internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "log.h"
#include "util.h"

/* Longest wait on the watch before the trail is read anyway. */
#define WAIT_MS 1000
/* Records read per transaction. */
#define BATCH 256
/* A lost watch is opened again after this pause. */
#define RETRY_MS 1000
/* The watcher vouches for what is kept (current.c) while its watch is
 * open and it read the trail this recently. */
#define FRESH_NS (3 * WAIT_MS * 1000000LL)

struct reg_watch {
	struct reg_registry *reg;
	reg_change_fn *fn;
	void *arg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	struct idx_watch *w;
	uint64_t applied;       /* the last record handed on */
	bool known;             /* applied is known (the head was read) */
	/* the model the last record named, as read then (one read for a
	   burst of changes to one model); "" none */
	char last_model[256];
	uint64_t last_ino, last_stages;
	/* current.c: the generation, and when the trail was last read
	   with the watch open (0: it was not) */
	atomic_ullong gen;
	atomic_llong fresh_at;
};

struct rec_list {
	uint64_t after;
	char **json;
	uint64_t *seq;
	size_t n;
};

static int one_rec(void *arg, const struct idx_val *k, const struct idx_val *v)
{
	struct rec_list *l = arg;

	if (k->len != 8)
		return -EIO;
	l->seq[l->n] = be64_get(k->data);
	if (!(l->json[l->n] = strndup(v->data, v->len)))
		return -ENOMEM;
	return ++l->n == BATCH ? 1 : 0;
}

static void recs_free(struct rec_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->json[i]);
	l->n = 0;
}

static int recs_txn(struct idx_txn *t, void *arg)
{
	struct rec_list *l = arg;
	uint8_t start[8];
	int r;

	recs_free(l);
	be64_put(start, l->after + 1);
	r = idx_scan(t, IDX_AUDIT, NULL, 0, start, 8, one_rec, l);
	return r < 0 ? r : 0;
}

struct model_arg {
	const char *name;
	struct inode_rec rec;
};

static int model_txn(struct idx_txn *t, void *arg)
{
	struct model_arg *a = arg;
	uint64_t ino;
	int r;

	if ((r = reg_name_get_txn(t, REG_MODELS_INO, a->name, &ino)) < 0)
		return r;
	return reg_inode_get_txn(t, ino, &a->rec);
}

/* Hands one record on: its names, and the inodes of its model now. */
static void hand_on(struct reg_watch *wt, uint64_t seq, const char *json)
{
	char op[64], model[256], version[256], stage[128];
	struct reg_change c = { .seq = seq };
	struct model_arg m = { .name = model };
	size_t len = strlen(json);

	if (json_get(json, len, "op", op, sizeof(op)) < 0 ||
	    !strcmp(op, "open"))
		return;	/* a refusal to open: nothing changed */
	c.op = op;
	if (json_get(json, len, "model", model, sizeof(model)) < 0)
		model[0] = '\0';
	if (json_get(json, len, "version", version, sizeof(version)) < 0)
		version[0] = '\0';
	if (json_get(json, len, "stage", stage, sizeof(stage)) < 0)
		stage[0] = '\0';
	/* before the kernel is told: what it asks next is read anew */
	atomic_fetch_add(&wt->gen, 1);
	c.model = model[0] ? model : NULL;
	c.version = version[0] ? version : NULL;
	c.stage = stage[0] ? stage : NULL;
	if (c.model && !strcmp(model, wt->last_model)) {
		c.model_ino = wt->last_ino;
		c.stages_ino = wt->last_stages;
	} else if (c.model && strlen(model) <= 255 &&
		   idx_read(wt->reg->ix, model_txn, &m) == 0 &&
		   m.rec.kind == REG_MODEL) {
		c.model_ino = m.rec.ino;
		c.stages_ino = m.rec.stages_ino;
		strlcpy(wt->last_model, model, sizeof(wt->last_model));
		wt->last_ino = c.model_ino;
		wt->last_stages = c.stages_ino;
	}
	wt->fn(wt->arg, &c);
}

/* Reads and hands on the records after applied: 0 once caught up, or
 * -errno (the database away: tried again). */
static int catch_up(struct reg_watch *wt)
{
	struct rec_list l = { 0 };
	uint64_t head;
	size_t i;
	int r;

	if (!wt->known) {
		/* a start: what came before is not this mount's to apply */
		if ((r = reg_audit_head(wt->reg, &head)) < 0)
			return r;
		pthread_mutex_lock(&wt->lock);
		wt->applied = head;
		wt->known = true;
		pthread_mutex_unlock(&wt->lock);
		return 0;
	}
	l.json = calloc(BATCH, sizeof(*l.json));
	l.seq = calloc(BATCH, sizeof(*l.seq));
	if (!l.json || !l.seq) {
		free(l.json);
		free(l.seq);
		return -ENOMEM;
	}
	wt->last_model[0] = '\0';	/* a model read in this catch-up only */
	for (;;) {
		l.after = wt->applied;
		if ((r = idx_read(wt->reg->ix, recs_txn, &l)) < 0)
			break;
		for (i = 0; i < l.n; i++)
			hand_on(wt, l.seq[i], l.json[i]);
		if (l.n) {
			pthread_mutex_lock(&wt->lock);
			wt->applied = l.seq[l.n - 1];
			pthread_mutex_unlock(&wt->lock);
		}
		if (l.n < BATCH)
			break;
		recs_free(&l);
	}
	recs_free(&l);
	free(l.json);
	free(l.seq);
	return r;
}

/* Waits ms unless stopped: true when stopped. */
static bool pause_ms(struct reg_watch *wt, unsigned ms)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&wt->lock);
	while (!wt->stop &&
	       pthread_cond_timedwait(&wt->cond, &wt->lock, &ts) == 0)
		;
	stop = wt->stop;
	pthread_mutex_unlock(&wt->lock);
	return stop;
}

static bool stopped(struct reg_watch *wt)
{
	bool stop;

	pthread_mutex_lock(&wt->lock);
	stop = wt->stop;
	pthread_mutex_unlock(&wt->lock);
	return stop;
}

static void *watch_main(void *arg)
{
	struct reg_watch *wt = arg;
	bool said = false;
	int r;

	while (!stopped(wt)) {
		if (!wt->w) {
			r = idx_watch_open(wt->reg->ix, &wt->w);
			if (r < 0) {
				if (!said)
					log_err(r, "cannot watch the registry "
						"for changes: other hosts' "
						"changes are seen as the "
						"kernel's caches expire");
				said = true;
				if (pause_ms(wt, RETRY_MS))
					break;
				continue;
			}
			if (said)
				log_msg(LOG_LVL_INFO, "watching the registry "
					"for changes again");
			said = false;
		} else {
			/* a wake-up, or the time to read anyway */
			r = idx_watch_wait(wt->w, WAIT_MS);
			if (r < 0) {
				atomic_store(&wt->fresh_at, 0);
				atomic_fetch_add(&wt->gen, 1);
				idx_watch_close(wt->w);
				wt->w = NULL;
				continue;
			}
		}
		r = catch_up(wt);
		if (r == 0) {
			atomic_store(&wt->fresh_at, mono_ns());
		} else {
			atomic_store(&wt->fresh_at, 0);
			atomic_fetch_add(&wt->gen, 1);
			if (pause_ms(wt, RETRY_MS))
				break;
		}
	}
	idx_watch_close(wt->w);
	wt->w = NULL;
	return NULL;
}

int reg_watch_start(struct reg_registry *reg, reg_change_fn *fn, void *arg)
{
	struct reg_watch *wt;
	struct idx_watch *probe;
	pthread_condattr_t ca;
	int r;

	if (!reg || !fn)
		return -EINVAL;
	/* an index without watchers: nothing to start */
	r = idx_watch_open(reg->ix, &probe);
	if (r == -ENOTSUP)
		return 0;
	wt = calloc(1, sizeof(*wt));
	if (!wt) {
		idx_watch_close(r == 0 ? probe : NULL);
		return -ENOMEM;
	}
	wt->reg = reg;
	wt->fn = fn;
	wt->arg = arg;
	wt->w = r == 0 ? probe : NULL;
	atomic_init(&wt->gen, 1);
	atomic_init(&wt->fresh_at, 0);
	/* without the host's change counter a command's change on this
	   host could go unseen: nothing is kept then */
	if (reg->host_changes && (r = reg_current_open(reg)) < 0) {
		idx_watch_close(wt->w);
		free(wt);
		return r;
	}
	pthread_mutex_init(&wt->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wt->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* what came before the start is not ours to apply */
	catch_up(wt);
	r = -pthread_create(&wt->thread, NULL, watch_main, wt);
	if (r < 0) {
		idx_watch_close(wt->w);
		pthread_cond_destroy(&wt->cond);
		pthread_mutex_destroy(&wt->lock);
		free(wt);
		reg_current_close(reg);
		return log_err(r, "cannot start the watcher thread");
	}
	reg->watch = wt;
	return 0;
}

void reg_watch_stop(struct reg_registry *reg)
{
	struct reg_watch *wt = reg ? reg->watch : NULL;

	if (!wt)
		return;
	pthread_mutex_lock(&wt->lock);
	wt->stop = true;
	pthread_cond_broadcast(&wt->cond);
	pthread_mutex_unlock(&wt->lock);
	pthread_join(wt->thread, NULL);
	reg->watch = NULL;
	reg_current_close(reg);
	pthread_cond_destroy(&wt->cond);
	pthread_mutex_destroy(&wt->lock);
	free(wt);
}

bool reg_watch_applied(struct reg_registry *reg, uint64_t *ret)
{
	struct reg_watch *wt = reg->watch;
	bool known;

	if (!wt)
		return false;
	pthread_mutex_lock(&wt->lock);
	known = wt->known;
	*ret = wt->applied;
	pthread_mutex_unlock(&wt->lock);
	return known;
}

bool reg_watch_fresh(struct reg_registry *reg, uint64_t *gen)
{
	struct reg_watch *wt = reg->watch;
	int64_t at;

	if (!wt)
		return false;
	at = atomic_load(&wt->fresh_at);
	/* both only grow: any change moves the sum */
	*gen = atomic_load(&wt->gen) + reg_host_changes(reg);
	return at && mono_ns() - at < FRESH_NS;
}
