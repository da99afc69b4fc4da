/* stream.c — a file written in order from its start, chunked and stored
 * as its bytes arrive (cp, rsync, torch.save of a plain tensor file).
 *
 * No spool file is written and read back: every write is fed to the
 * chunker, each chunk cut is ingested (ingest.c), and the file's digest
 * is taken on the way; a commit stores only the tail (reg_stream_finish)
 * and names the chunks. cp waits for each write() to be answered, so
 * writes are queued for a worker thread of the stream and answered at
 * once, within bounds (see "writes handed to a worker" below). The first
 * write out of order, a read or a truncation turns the stream into a
 * spool over the chunks it stored (reg_stream_to_spool, spool.c).
 *
 * The write state's lock (writer.c) guards a stream, but for what its
 * worker feeds while the queue is not empty (struct stream, internal.h).
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "chunk/chunker.h"

struct stream *reg_stream_new(struct reg_registry *reg)
{
	struct stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->carry = malloc(reg->chunker.max_size);
	s->tmp = malloc(reg->chunker.max_size);
	if (!s->carry || !s->tmp) {
		free(s->carry);
		free(s->tmp);
		free(s);
		return NULL;
	}
	chunker_init(&s->ch, &reg->chunker);
	digest_init(&s->ds);
	s->reg = reg;
	pthread_mutex_init(&s->qlock, NULL);
	pthread_cond_init(&s->qcond, NULL);
	return s;
}

static void qbufs_free(struct reg_registry *reg, struct qbuf *b);

void reg_stream_free(struct reg_registry *reg, struct stream *s)
{
	if (!s)
		return;
	if (s->has_worker) {
		/* what is still queued is dropped: nobody will commit it */
		pthread_mutex_lock(&s->qlock);
		s->stop = true;
		pthread_cond_broadcast(&s->qcond);
		pthread_mutex_unlock(&s->qlock);
		pthread_join(s->worker, NULL);
	}
	qbufs_free(reg, s->spare);
	pthread_mutex_destroy(&s->qlock);
	pthread_cond_destroy(&s->qcond);
	if (s->batch)
		store_batch_end(reg->st);
	reg_ingest_release(&s->in);
	reg_fresh_free(&s->fm);
	free(s->carry);
	free(s->tmp);
	free(s);
}

static int stream_feed(struct reg_registry *reg, struct stream *s,
		       const uint8_t *p, size_t len)
{
	size_t cut;
	int r;

	if (s->err)
		return s->err;
	if (!s->batch) {
		store_batch_begin(reg->st);
		s->batch = true;
	}
	digest_update(&s->ds, p, len);
	while (len) {
		cut = chunker_scan(&s->ch, p, len);
		if (cut == CHUNKER_NO_CUT) {
			/* the chunker cuts at max_size: this fits */
			memcpy(s->carry + s->ncarry, p, len);
			s->ncarry += len;
			s->pos += len;
			return 0;
		}
		if (s->ncarry == 0) {
			r = reg_ingest_chunk(reg, &s->in, &s->fm, p,
					     (uint32_t)cut, s->tmp);
		} else {
			memcpy(s->carry + s->ncarry, p, cut);
			r = reg_ingest_chunk(reg, &s->in, &s->fm, s->carry,
					     (uint32_t)(s->ncarry + cut),
					     s->tmp);
			s->ncarry = 0;
		}
		if (r < 0)
			return s->err = r;
		s->pos += cut;
		p += cut;
		len -= cut;
	}
	return 0;
}

/* ---- writes handed to a worker ---------------------------------------- */

/* cp waits for the answer to each write() before it sends the next, and
 * chunking, hashing and storing 1 MiB takes about as long as receiving
 * it. So the in-order writes of a stream are copied into a queue, fed by
 * a worker thread of the stream, and answered at once: receiving the next
 * write overlaps with storing the last. What may be queued is bounded, per
 * stream and for the whole registry (buffers are counted while they
 * exist); beyond that, for small writes and the first MiB of a file (no
 * thread for a small file), and when the disk has little room
 * left (a full disk must be the error of the write that meets it), a write
 * is fed by its caller after the queue drained, as before. A queued write
 * that fails makes every later write and the commit (close(), fsync())
 * fail with its error: success of the commit still means every byte is
 * stored and durable. */
#define STREAM_ASYNC_MIN (16u << 10)      /* smaller writes are fed inline */
#define STREAM_ASYNC_AFTER (1u << 20)     /* and the first MiB of a file */
#define STREAM_BUF (1u << 20)             /* the kernel's largest write */
#define STREAM_QUEUE_MAX (8u << 20)       /* queued bytes, per stream */
#define STREAM_BUFS_MAX (24u << 20)       /* buffers of all streams */
#define STREAM_ROOM_MIN (1ULL << 30)      /* free disk needed to queue */
#define STREAM_ROOM_EVERY (64u << 20)     /* look again after so many bytes,
					     queued by any stream */

struct qbuf {
	struct qbuf *next;
	size_t len, cap;
	uint8_t data[];
};

static void qbufs_free(struct reg_registry *reg, struct qbuf *b)
{
	struct qbuf *next;

	for (; b; b = next) {
		next = b->next;
		atomic_fetch_sub(&reg->stream_bufs, b->cap);
		free(b);
	}
}

/* A buffer for len bytes (s->qlock held): a spare one, or a new one if
 * the registry's budget allows; NULL if not. */
static struct qbuf *qbuf_take(struct reg_registry *reg, struct stream *s,
			      size_t len)
{
	struct qbuf *b = s->spare;
	size_t cap = len > STREAM_BUF ? len : STREAM_BUF;

	if (b && b->cap >= len) {
		s->spare = b->next;
		return b;
	}
	if (atomic_fetch_add(&reg->stream_bufs, cap) + cap > STREAM_BUFS_MAX) {
		atomic_fetch_sub(&reg->stream_bufs, cap);
		return NULL;
	}
	if (!(b = malloc(sizeof(*b) + cap))) {
		atomic_fetch_sub(&reg->stream_bufs, cap);
		return NULL;
	}
	b->cap = cap;
	return b;
}

static void *stream_worker(void *arg)
{
	struct stream *s = arg;
	struct qbuf *b;
	bool feed;

	pthread_mutex_lock(&s->qlock);
	for (;;) {
		while (!s->qhead && !s->stop)
			pthread_cond_wait(&s->qcond, &s->qlock);
		if (!(b = s->qhead))
			break;
		if (!(s->qhead = b->next))
			s->qtail = NULL;
		s->busy = true;
		feed = !s->stop;
		pthread_mutex_unlock(&s->qlock);
		if (feed)
			stream_feed(s->reg, s, b->data, b->len); /* keeps err */
		pthread_mutex_lock(&s->qlock);
		s->queued -= b->len;
		b->next = s->spare;
		s->spare = b;
		s->busy = false;
		pthread_cond_broadcast(&s->qcond);
	}
	pthread_mutex_unlock(&s->qlock);
	return NULL;
}

/* Waits until the worker fed everything queued (the wstate's lock held);
 * an idle stream then gives its buffers back. s->err after that. */
static int stream_drain(struct reg_registry *reg, struct stream *s)
{
	struct qbuf *spare;

	if (!s->has_worker)
		return s->err;
	pthread_mutex_lock(&s->qlock);
	while (s->qhead || s->busy)
		pthread_cond_wait(&s->qcond, &s->qlock);
	spare = s->spare;
	s->spare = NULL;
	pthread_mutex_unlock(&s->qlock);
	qbufs_free(reg, spare);
	return s->err;
}

/* Whether the store's disk has room for len more queued bytes: looked at
 * again after STREAM_ROOM_EVERY bytes queued by all streams of the
 * registry, and whenever what was queued since could eat into the
 * margin. */
static bool stream_roomy(struct reg_registry *reg, size_t len)
{
	uint64_t used = atomic_fetch_add(&reg->room_used, len) + len;
	uint64_t room = atomic_load(&reg->room_free);

	if (used >= STREAM_ROOM_EVERY || room < STREAM_ROOM_MIN + used) {
		if (store_room(reg->st, &room) < 0)
			room = 0;
		atomic_store(&reg->room_free, room);
		atomic_store(&reg->room_used, len);
		used = len;
	}
	return room >= STREAM_ROOM_MIN + used;
}

/* Queues len bytes at s->end for the worker; false if they must be fed
 * inline (no room, no buffer, no thread). */
static bool stream_queue(struct reg_registry *reg, struct stream *s,
			 const uint8_t *p, size_t len)
{
	struct qbuf *b;
	sigset_t all, old;
	int r;

	/* a small file gains nothing: its close() waits for it anyway */
	if (len < STREAM_ASYNC_MIN || s->end < STREAM_ASYNC_AFTER ||
	    !stream_roomy(reg, len))
		return false;
	pthread_mutex_lock(&s->qlock);
	while (s->queued && s->queued + len > STREAM_QUEUE_MAX && !s->err)
		pthread_cond_wait(&s->qcond, &s->qlock);
	b = s->err ? NULL : qbuf_take(reg, s, len);
	pthread_mutex_unlock(&s->qlock);
	if (!b)
		return false;
	if (!s->has_worker) {
		/* the worker takes no signal: the daemon's main thread does */
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		r = pthread_create(&s->worker, NULL, stream_worker, s);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (r != 0) {
			qbufs_free(reg, b);
			return false;
		}
		s->has_worker = true;
	}
	memcpy(b->data, p, len);
	b->len = len;
	b->next = NULL;
	pthread_mutex_lock(&s->qlock);
	if (s->qtail)
		s->qtail->next = b;
	else
		s->qhead = b;
	s->qtail = b;
	s->queued += len;
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
	s->end += len;
	return true;
}

int reg_stream_write(struct reg_registry *reg, struct stream *s,
		     const uint8_t *p, size_t len)
{
	int r = s->err;

	if (r == 0 && !stream_queue(reg, s, p, len)) {
		r = stream_drain(reg, s);
		if (r == 0)
			r = stream_feed(reg, s, p, len);
		s->end = s->pos;
	}
	return r;
}

int reg_stream_finish(struct reg_registry *reg, struct stream *s)
{
	int r;

	if ((r = stream_drain(reg, s)) < 0)
		return r;
	if (s->finished)
		return 0;
	if (s->copied) {
		s->in.size = s->pos;
		s->in.digest = s->copied_digest;
		s->finished = true;
		return 0;
	}
	if (s->ncarry) {
		r = reg_ingest_chunk(reg, &s->in, &s->fm, s->carry,
				     (uint32_t)s->ncarry, s->tmp);
		if (r < 0)
			return s->err = r;
		s->ncarry = 0;
	}
	s->in.size = s->pos;
	digest_final(&s->ds, &s->in.digest);
	s->finished = true;
	return 0;
}

int reg_stream_to_spool(struct reg_registry *reg, struct wstate *ws, uid_t uid)
{
	struct stream *s = ws->stream;
	struct spool *sp;
	uint64_t chunked;
	size_t i;
	ssize_t n;
	int r;

	if (ws->sp)
		return 0;
	assert(s);
	if ((r = stream_drain(reg, s)) < 0)
		return r;
	if (s->committed) {
		/* reg_ingest_apply_txn() named every chunk: none is fresh
		   now */
		for (i = 0; i < s->in.n; i++) {
			s->in.v[i].fresh = s->in.v[i].heal = false;
			s->in.v[i].dup_of = -1;
		}
	}
	chunked = s->pos - s->ncarry;
	r = reg_spool_new(s->in.v, s->in.n, chunked, s->committed, ws->ctime,
			  s->committed ? 0 : s->in.new_bytes, uid, &sp);
	if (r < 0)
		return r;
	if (s->ncarry) {
		n = reg_spool_write(reg, sp, s->carry, s->ncarry, chunked);
		if (n != (ssize_t)s->ncarry) {
			reg_spool_free(reg, sp);
			return n < 0 ? (int)n : -EIO;
		}
	}
	if (!s->committed && s->batch) {
		/* its fresh chunks are named by no one yet: the batch that
		   keeps them from gc goes with them */
		reg_spool_hold_batch(sp);
		s->batch = false;
	}
	reg_stream_free(reg, s);
	ws->stream = NULL;
	ws->sp = sp;
	return 0;
}
