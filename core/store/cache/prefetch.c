/* prefetch.c — the host cache's prefetch and fill (cache.c, "Prefetch",
 * says how they work): the queue of jobs, the fetcher threads that read
 * runs of neighbouring chunks with one request each, giving the queue up
 * when the store fails, and store_fill() for mreg prefetch.
 */
#include "cache-int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Queues a fetch of the chunk of the LOADING entry just added (mu held,
 * room checked). */
static void enqueue(struct cache_store *s, const struct chunk_loc *loc,
		    const struct mreg_id *id, struct fill *f)
{
	struct job *j = &s->q[(s->qhead + s->qlen) % QUEUE_MAX];

	j->loc = *loc;
	j->id = *id;
	j->fill = f;
	s->qlen++;
	pthread_cond_signal(&s->work);
}

/* Job j ended with r, bytes of data fetched: tells its fill. */
static void job_done(struct cache_store *s, const struct job *j, int r,
		     uint64_t bytes)
{
	if (!j->fill)
		return;
	pthread_mutex_lock(&s->mu);
	j->fill->left--;
	if (r < 0 && !j->fill->err)
		j->fill->err = r;
	else if (r == 0)
		j->fill->fetched += bytes;
	pthread_cond_broadcast(&s->loaded);
	pthread_mutex_unlock(&s->mu);
}

/* Queued jobs a fetcher reads with one request. */
struct run {
	struct job j[RUN_CHUNKS];
	struct entry *e[RUN_CHUNKS];	/* their LOADING entries */
	uint32_t len[RUN_CHUNKS];	/* of their data */
	size_t n;
};

/* Pops the first job, and those queued right behind it whose chunks
 * follow its chunk in the same container (mu held). A job whose location
 * the inner store does not make is a run of its own (its get says
 * why). */
static void take_run(struct cache_store *s, struct run *run)
{
	struct store_span first = { 0 }, sp = { 0 };
	uint64_t end = 0;
	struct job *j;
	bool bad = false;

	for (run->n = 0; s->qlen && run->n < RUN_CHUNKS && !bad; run->n++) {
		j = &s->q[s->qhead];
		bad = s->inner->be->loc_span(s->inner, &j->loc, &sp) != 0;
		if (run->n && (bad || sp.container != first.container ||
			       sp.off < end || sp.off - end > RUN_GAP ||
			       sp.off + sp.size - first.off > RUN_MAX))
			break;
		if (run->n == 0)
			first = sp;
		end = sp.off + sp.size;
		run->j[run->n] = *j;
		run->e[run->n] = store_cache_find(s, &j->loc);
		run->len[run->n] = bad ? 0 : sp.len;
		s->qhead = (s->qhead + 1) % QUEUE_MAX;
		s->qlen--;
	}
	pthread_cond_broadcast(&s->room);
}

/* A fetch failed with r: the queued jobs are given up (their fills fail
 * with r, their entries are forgotten: a reader waiting for one fetches
 * it itself, within its own deadline), so that a store in trouble costs
 * one request's retries, not one for every job queued. -ENOENT is one
 * container gone (gc moved its chunks), not trouble. */
void store_cache_give_up(struct cache_store *s, int r)
{
	struct entry *e;
	struct job *j;

	if (r == -ENOENT)
		return;
	pthread_mutex_lock(&s->mu);
	for (; s->qlen; s->qlen--, s->qhead = (s->qhead + 1) % QUEUE_MAX) {
		j = &s->q[s->qhead];
		e = store_cache_find(s, &j->loc);
		if (e && e->state == LOADING)
			store_cache_drop(s, e, false);
		if (j->fill) {
			j->fill->left--;
			if (!j->fill->err)
				j->fill->err = r;
		}
	}
	pthread_cond_broadcast(&s->loaded);
	pthread_cond_broadcast(&s->room);
	pthread_mutex_unlock(&s->mu);
}

/* Fetches a run: what another process kept meanwhile is adopted, the
 * rest read with one request of the inner store (or chunk by chunk
 * without get_run), each checked and kept. A failure fails the run's
 * jobs (readers waiting for a chunk of it then read that one alone: a
 * damaged chunk fails alone) and gives up the queue. */
static void fetch_run(struct cache_store *s, struct run *run)
{
	struct chunk_loc locs[RUN_CHUNKS];
	struct mreg_id ids[RUN_CHUNKS];
	void *bufs[RUN_CHUNKS], *at[RUN_CHUNKS];
	size_t i, k, m = 0, idx[RUN_CHUNKS];
	uint64_t total = 0;
	const char *why;
	uint8_t *data;
	int r, rk, bad;

	for (i = 0; i < run->n; i++)
		total += run->len[i];
	data = malloc(total ? total : 1);
	for (i = 0, total = 0; i < run->n; i++) {
		at[i] = data ? data + total : NULL;
		total += run->len[i];
		if (!run->e[i] || run->e[i]->state != LOADING) {
			job_done(s, &run->j[i], 0, 0);	/* not ours */
		} else if (!data) {
			store_cache_unload(s, run->e[i]);
			job_done(s, &run->j[i], -ENOMEM, 0);
		} else if (store_cache_read_kept(s, &run->j[i].loc, &run->j[i].id,
				     run->len[i], at[i], &why) == 0) {
			store_cache_settle(s, run->e[i], MREG_ID_LEN +
			       (uint64_t)run->len[i]);
			job_done(s, &run->j[i], 0, 0);
		} else {
			locs[m] = run->j[i].loc;
			ids[m] = run->j[i].id;
			bufs[m] = at[i];
			idx[m++] = i;
		}
	}
	r = m > 1 && s->inner->be->get_run ?
	    s->inner->be->get_run(s->inner, locs, ids, m, bufs) : 1;
	for (k = 0, bad = 0; k < m; k++) {
		i = idx[k];
		rk = r == 1 ? store_cache_fetch(s, run->e[i], &locs[k], &ids[k],
				    run->len[i], bufs[k]) :
		     store_cache_landed(s, run->e[i], &locs[k], &ids[k], run->len[i],
			    bufs[k], r);
		job_done(s, &run->j[i], rk, run->len[i]);
		if (rk < 0 && !bad)
			bad = rk;
	}
	free(data);
	if (bad)
		store_cache_give_up(s, bad);
}

void *store_cache_fetcher_main(void *arg)
{
	struct cache_store *s = arg;
	struct run run;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->qlen && !s->stopping)
			pthread_cond_wait(&s->work, &s->mu);
		if (s->stopping)
			break;
		take_run(s, &run);
		pthread_mutex_unlock(&s->mu);
		fetch_run(s, &run);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

size_t store_cache_prefetch(struct mreg_store *ms,
			    const struct chunk_loc *locs,
			    const struct mreg_id *ids, size_t n)
{
	struct cache_store *s = (struct cache_store *)ms;
	size_t i;

	if (!s || !locs || !ids)
		return n;	/* without ids nothing could be checked */
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < n; i++) {
		if (store_cache_find(s, &locs[i]))
			continue;	/* kept, or on its way */
		if (s->qlen == QUEUE_MAX || !store_cache_add(s, &locs[i], LOADING))
			break;
		enqueue(s, &locs[i], &ids[i], NULL);
	}
	pthread_mutex_unlock(&s->mu);
	return i;
}

/* Waits until no fetch of loc is running; true when it is kept (and
 * then the most recently used). mu held. */
static bool settled_kept(struct cache_store *s, const struct chunk_loc *loc)
{
	struct entry *e;

	while ((e = store_cache_find(s, loc)) && e->state == LOADING)
		pthread_cond_wait(&s->loaded, &s->mu);
	if (e)
		store_cache_lru_front(s, e);
	return e != NULL;
}

int store_cache_fill(struct mreg_store *ms, const struct chunk_loc *locs,
		     const struct mreg_id *ids, size_t n,
		     uint64_t *ret_fetched)
{
	struct cache_store *s = (struct cache_store *)ms;
	struct fill f = { 0 };
	struct store_span sp;
	uint64_t need = 0, bound;
	struct entry *e;
	bool kept;
	void *buf;
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		r = s->inner->be->loc_span(s->inner, &locs[i], &sp);
		if (r)
			return log_err(r, "cache: a chunk to fetch has a bad "
				       "location (%u bytes)", locs[i].len);
		need += MREG_ID_LEN + (uint64_t)sp.len;
	}
	pthread_mutex_lock(&s->mu);
	bound = store_cache_bound(s);
	if (need > bound) {
		pthread_mutex_unlock(&s->mu);
		return log_err(-EFBIG, "cache: %" PRIu64 " bytes of chunks "
			       "do not fit in '%s' (%" PRIu64 " bytes at "
			       "most: its size, or less to keep its disk's "
			       "floor free)", need, s->path, bound);
	}
	for (i = 0; i < n && !f.err; i++) {
		while (s->qlen >= FILL_QUEUE)
			pthread_cond_wait(&s->room, &s->mu);
		e = store_cache_find(s, &locs[i]);
		if (e && e->state == READY)
			store_cache_lru_front(s, e);
		if (e)
			continue;	/* kept, or on its way */
		if (!store_cache_add(s, &locs[i], LOADING)) {
			f.err = -ENOMEM;
			break;
		}
		enqueue(s, &locs[i], &ids[i], &f);
		f.left++;
	}
	while (f.left)
		pthread_cond_wait(&s->loaded, &s->mu);
	pthread_mutex_unlock(&s->mu);
	/* What another thread was fetching, or was evicted since: here. */
	for (i = 0, r = f.err; i < n && !r; i++) {
		pthread_mutex_lock(&s->mu);
		kept = settled_kept(s, &locs[i]);
		pthread_mutex_unlock(&s->mu);
		if (kept)
			continue;
		s->inner->be->loc_span(s->inner, &locs[i], &sp);
		buf = malloc(sp.len ? sp.len : 1);
		r = buf ? store_cache_get(ms, &locs[i], &ids[i], buf) : -ENOMEM;
		free(buf);
		if (r == 0)
			f.fetched += sp.len;
	}
	if (r == 0)
		*ret_fetched = f.fetched;
	return r;
}
