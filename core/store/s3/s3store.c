/* s3store.c — the S3 chunk store (backend "s3", configured by
 * s3store.h): chunks in immutable pack objects of a bucket, written
 * through the S3 client of s3.h. This file: opening, sessions, writing,
 * sync and batches; s3store-read.c: locations, reads, containers and
 * housekeeping.
 *
 * Objects. ROOT"packs/%016llx" (ROOT: key_prefix), the bytes of a pack
 * file (store/packfmt.h) whose header carries the low 32 bits of the
 * object's id. An object is written once, by one process, and never
 * rewritten: gc removes it whole, after copying its live chunks away.
 *
 * Names that never collide. A process's writing session claims a random
 * 40-bit prefix by creating ROOT"sessions/%010llx" with If-None-Match: *
 * (412 from the store: taken, draw again); its objects are prefix << 24 |
 * a 24-bit sequence, and a session whose sequence runs out claims a new
 * prefix. Two hosts, or two processes of one host, never name the same
 * object, and no object is overwritten. The markers are a few bytes each
 * and stay (a prefix must never be used twice).
 *
 * Writing. put() appends the record to the current object's part buffer
 * (part_size); a full buffer goes up as a multipart part in the
 * background, at most parts_inflight at once (a put waits for the oldest
 * beyond that), so a writer holds at most (parts_inflight + 1) * part_size
 * bytes. The object ends when it passes pack_size, at sync() and at
 * close(): a single PUT when it never filled a part, else its last part
 * and CompleteMultipartUpload; either answered 200 before sync() returns
 * 0. Every sync ends an object: a small file's close makes one small
 * object (gc merges them). A get() of this process's own object still
 * being written is served from the part buffer, or ends the object first
 * (its bytes are then in the store). store_options.sync is not read: an
 * object must be in the store before any host can read it.
 *
 * Failures. A part, PUT or completion that fails after the client's
 * retries gives the object up (its multipart upload aborted): the chunks
 * already put in it can never be named. As in the pack store, sync()
 * reports it (the error of the failure) until every batch open when it
 * failed has ended, or until close when a put outside any batch went
 * into the object; the caller puts the chunks again in a new batch.
 *
 * gc's margin. An object is busy (store_container.busy) while its
 * LastModified is younger than gc_grace; the writer measures from the
 * object's first put, before any of its requests, so never later than
 * LastModified; batch_check() answers -EAGAIN once the oldest object put
 * into during the open batches started more than gc_grace / 2 ago. So a
 * chunk is named within gc_grace / 2 of its object's start, while gc sees
 * the object busy for gc_grace after it: half the grace is the margin for
 * clock skew between hosts. A grace, not a lease in the index: a backend
 * never writes the index.
 */
#include "s3store-int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store/packfmt.h"
#include "util.h"

#define DEFAULT_PACK_SIZE (64ull << 20)
#define DEFAULT_PART (8u << 20)
#define MIN_PART (5u << 20)       /* S3's least part but the last */
#define MAX_PART (1u << 30)
#define SESSION_TRIES 8

void s3_store_key(const struct s3_store *s, uint64_t id, char *key)
{
	snprintf(key, S3S_KEY_MAX, "%spacks/%016" PRIx64, s->root, id);
}

/* ---- buffers ---- */

static char *buf_take(struct s3_store *s)
{
	if (s->nspare)
		return s->spare[--s->nspare];
	return malloc(s->part_size);
}

/* Keeps a buffer for reuse, at most as many as can be in use at once. */
static void buf_give(struct s3_store *s, char *b)
{
	if (b && s->nspare < s->parts_max + 1)
		s->spare[s->nspare++] = b;
	else
		free(b);
}

/* ---- sessions ---- */

/* Claims a new session prefix: a marker created only if absent. */
static int session_claim(struct s3_store *s)
{
	char key[S3S_KEY_MAX], body[128], host[64] = "";
	uint64_t cand;
	int i, r = -EEXIST;

	gethostname(host, sizeof(host) - 1);
	for (i = 0; i < SESSION_TRIES && r == -EEXIST; i++) {
		if (i == 0 && s->try_session) {
			cand = s->try_session;
		} else if (getrandom(&cand, sizeof(cand), 0) !=
			   (ssize_t)sizeof(cand)) {
			return log_err(-errno, "s3 store: no random numbers");
		}
		cand &= (1ull << S3S_SESSION_BITS) - 1;
		if (cand == 0)
			continue;
		snprintf(key, sizeof(key), "%ssessions/%010" PRIx64, s->root,
			 cand);
		snprintf(body, sizeof(body), "%s %ld %lld\n", host,
			 (long)getpid(), (long long)time(NULL));
		r = s3_put_new(s->c, key, body, strlen(body));
		if (r == 0) {
			s->session = cand;
			s->seq = 0;
			return 0;
		}
		if (r == -EEXIST)
			log_debug("s3 store: session %010" PRIx64 " is taken",
				  cand);
	}
	if (r == -EEXIST)
		r = log_err(-EIO, "s3 store: no free session prefix after %d "
			    "tries", SESSION_TRIES);
	return r;
}

/* Starts a new object (mu held): its id, its header in the buffer. */
static int object_begin(struct s3_store *s)
{
	int r;

	if (!s->session || s->seq >> S3S_SEQ_BITS) {
		r = session_claim(s);
		if (r)
			return r;
	}
	if (!s->buf) {
		s->buf = buf_take(s);
		if (!s->buf)
			return -ENOMEM;
	}
	s->cur_id = s->session << S3S_SEQ_BITS | s->seq++;
	pack_header_encode((uint8_t *)s->buf, (uint32_t)s->cur_id);
	s->blen = PACK_HEADER_SIZE;
	s->cur_size = PACK_HEADER_SIZE;
	s->cur_sent = 0;
	s->cur_started = (uint64_t)mono_ns() / 1000000;
	s->cur_loose = false;
	s->nparts = 0;
	s->have_cur = true;
	return 0;
}

/* ---- parts ---- */

/* Waits for the oldest part in flight; its buffer goes back. */
static int part_wait_oldest(struct s3_store *s)
{
	struct s3s_part p = s->fly[0];
	int r;

	memmove(s->fly, s->fly + 1, (s->nfly - 1) * sizeof(*s->fly));
	s->nfly--;
	r = (int)s3_op_wait(p.op);
	buf_give(s, p.buf);
	return r;
}

static int parts_wait_all(struct s3_store *s)
{
	int r = 0, k;

	while (s->nfly) {
		k = part_wait_oldest(s);
		if (!r)
			r = k;
	}
	return r;
}

/* Gives the current object up after a failure r (mu held). */
static int object_fail(struct s3_store *s, int r)
{
	char key[S3S_KEY_MAX];

	parts_wait_all(s);
	if (s->mpu)
		s3_mpu_abort(s->mpu);
	s->mpu = NULL;
	s3_store_key(s, s->cur_id, key);
	log_msg(LOG_LVL_ERROR, "s3 store: object '%s' given up: %s", key,
		strerror(-r));
	if (s->nbatch)
		s->poison = r;
	if (s->cur_loose)
		s->poison_forever = r;
	s->have_cur = false;
	s->blen = 0;
	return r;
}

/* Sends the full buffer as the next part (mu held). */
static int part_send(struct s3_store *s)
{
	char key[S3S_KEY_MAX];
	struct s3_op *op;
	char *next;
	int r;

	if (!s->mpu) {
		s3_store_key(s, s->cur_id, key);
		r = s3_mpu_create(s->c, key, &s->mpu);
		if (r)
			return r;
	}
	if (s->nfly == s->parts_max) {
		r = part_wait_oldest(s);
		if (r)
			return r;
	}
	next = buf_take(s);
	if (!next)
		return -ENOMEM;
	r = s3_mpu_put_start(s->mpu, ++s->nparts, s->buf, s->blen, &op);
	if (r) {
		buf_give(s, next);
		return r;
	}
	s->fly[s->nfly].op = op;
	s->fly[s->nfly].buf = s->buf;
	s->nfly++;
	s->cur_sent += s->blen;
	s->buf = next;
	s->blen = 0;
	return 0;
}

/* Appends n bytes to the current object, sending full parts. */
static int object_add(struct s3_store *s, const void *p, size_t n)
{
	const char *src = p;
	size_t k;
	int r;

	while (n) {
		k = s->part_size - s->blen;
		if (k > n)
			k = n;
		memcpy(s->buf + s->blen, src, k);
		s->blen += k;
		s->cur_size += k;
		src += k;
		n -= k;
		if (s->blen == s->part_size) {
			r = part_send(s);
			if (r)
				return r;
		}
	}
	return 0;
}

int s3_store_end_object(struct s3_store *s)
{
	char key[S3S_KEY_MAX];
	int r;

	if (!s->have_cur)
		return 0;
	s3_store_key(s, s->cur_id, key);
	if (!s->mpu) {
		r = s3_put(s->c, key, s->buf, s->blen);
	} else {
		r = s->blen ? part_send(s) : 0;
		if (!r)
			r = parts_wait_all(s);
		if (!r) {
			r = s3_mpu_complete(s->mpu);
			s->mpu = NULL;	/* freed, aborted on failure */
		}
	}
	if (r)
		return object_fail(s, r);
	s->have_cur = false;
	s->blen = 0;
	return 0;
}

/* ---- the backend: writing ---- */

static int s3s_put(struct mreg_store *ms, const struct mreg_id *id,
		   const void *data, uint32_t len, struct chunk_loc *ret)
{
	struct s3_store *s = (struct s3_store *)ms;
	uint64_t rec = (uint64_t)PACK_RECORD_HEADER + len;
	uint8_t hdr[PACK_RECORD_HEADER];
	uint64_t off;
	int r = 0;

	if (!s || !id || (!data && len) || !ret)
		return -EINVAL;
	pack_record_encode(hdr, id, len);
	pthread_mutex_lock(&s->mu);
	if (s->have_cur && s->cur_size > PACK_HEADER_SIZE &&
	    s->cur_size + rec > s->pack_size)
		r = s3_store_end_object(s);
	if (!r && !s->have_cur)
		r = object_begin(s);
	if (r)
		goto out;
	off = s->cur_size + PACK_RECORD_HEADER;
	r = object_add(s, hdr, sizeof(hdr));
	if (!r)
		r = object_add(s, data, len);
	if (r) {
		object_fail(s, r);
		goto out;
	}
	if (!s->nbatch)
		s->cur_loose = true;
	else if (!s->batch_oldest || s->cur_started < s->batch_oldest)
		s->batch_oldest = s->cur_started;
	s3_store_loc_make(s->cur_id, off, len, ret);
out:
	pthread_mutex_unlock(&s->mu);
	return r;
}

static int s3s_sync(struct mreg_store *ms)
{
	struct s3_store *s = (struct s3_store *)ms;
	int r;

	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	r = s3_store_end_object(s);
	if (!r)
		r = s->poison_forever ? s->poison_forever : s->poison;
	pthread_mutex_unlock(&s->mu);
	return r;
}

static void s3s_batch_begin(struct mreg_store *ms)
{
	struct s3_store *s = (struct s3_store *)ms;

	pthread_mutex_lock(&s->mu);
	s->nbatch++;
	pthread_mutex_unlock(&s->mu);
}

static void s3s_batch_end(struct mreg_store *ms)
{
	struct s3_store *s = (struct s3_store *)ms;

	pthread_mutex_lock(&s->mu);
	if (s->nbatch && --s->nbatch == 0) {
		s->poison = 0;
		s->batch_oldest = 0;
	}
	pthread_mutex_unlock(&s->mu);
}

static int s3s_batch_check(struct mreg_store *ms)
{
	struct s3_store *s = (struct s3_store *)ms;
	int r = 0;

	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	if (s->batch_oldest &&
	    (uint64_t)mono_ns() / 1000000 - s->batch_oldest > s->grace_ms / 2)
		r = -EAGAIN;
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* ---- open and close ---- */

static void store_free(struct s3_store *s)
{
	unsigned i;

	for (i = 0; i < s->nspare; i++)
		free(s->spare[i]);
	free(s->spare);
	free(s->fly);
	free(s->buf);
	free(s->root);
	s3_close(s->c);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static int s3s_open(const struct store_options *opt, struct mreg_store **ret)
{
	const struct s3_store_config *cfg;
	struct s3_config cc;
	struct s3_store *s;
	const char *root;
	int r;

	if (!opt->backend_cfg)
		return log_err(-EINVAL, "s3 store: no configuration (the [s3] "
			       "section)");
	cfg = opt->backend_cfg;
	if (!cfg->endpoint || !cfg->bucket)
		return log_err(-EINVAL, "s3 store: an endpoint and a bucket "
			       "are required");
	root = cfg->key_prefix ? cfg->key_prefix : "";
	if (strlen(root) > 1000 || (*root && root[strlen(root) - 1] != '/'))
		return log_err(-EINVAL, "s3 store: key prefix '%s' must be "
			       "empty or end in '/' (at most 1000 bytes)",
			       root);
	if (cfg->part_size && (cfg->part_size < MIN_PART ||
			       cfg->part_size > MAX_PART))
		return log_err(-EINVAL, "s3 store: part size %" PRIu32 " is "
			       "not within 5 MiB .. 1 GiB", cfg->part_size);
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->mu, NULL);
	s->base.be = &s3_store_backend;
	s->pack_size = opt->pack_size ? opt->pack_size : DEFAULT_PACK_SIZE;
	s->part_size = cfg->part_size ? cfg->part_size : DEFAULT_PART;
	s->parts_max = cfg->parts_inflight ? cfg->parts_inflight : 2;
	s->grace_ms = (uint64_t)(cfg->gc_grace_s ? cfg->gc_grace_s : 3600) *
		      1000;
	s->try_session = cfg->try_session;
	s->root = strdup(root);
	s->fly = calloc(s->parts_max, sizeof(*s->fly));
	s->spare = calloc(s->parts_max + 1, sizeof(*s->spare));
	if (!s->root || !s->fly || !s->spare) {
		r = -ENOMEM;
		goto fail;
	}
	cc = (struct s3_config){
		.endpoint = cfg->endpoint,
		.bucket = cfg->bucket,
		.region = cfg->region,
		.path_style = cfg->path_style,
		.credentials = cfg->credentials,
		.profile = cfg->profile,
		.max_inflight = cfg->max_inflight,
		.timeout_ms = cfg->timeout_ms,
		.attempts = cfg->attempts,
		.payload = S3_PAYLOAD_MD5,
	};
	r = s3_open(&cc, &s->c);
	if (!r && !cfg->lazy)
		r = s3_check(s->c);	/* logs the one-line reason */
	if (r)
		goto fail;
	*ret = &s->base;
	return 0;
fail:
	store_free(s);
	return r;
}

static void s3s_close(struct mreg_store *ms)
{
	struct s3_store *s = (struct s3_store *)ms;

	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s3_store_end_object(s);	/* what is buffered goes up; logged */
	parts_wait_all(s);
	pthread_mutex_unlock(&s->mu);
	store_free(s);
}

static unsigned s3s_caps(UNUSED const struct mreg_store *ms)
{
	return 0;	/* no cut, no local disk */
}

static int s3s_cut(UNUSED struct mreg_store *ms, UNUSED uint64_t container,
		   UNUSED uint64_t size)
{
	return -EOPNOTSUPP;	/* objects are immutable: gc rewrites */
}

static int s3s_room(struct mreg_store *ms, uint64_t *ret)
{
	if (!ms || !ret)
		return -EINVAL;
	*ret = UINT64_MAX;
	return 0;
}

const struct store_backend s3_store_backend = {
	.name = "s3",
	.open = s3s_open,
	.close = s3s_close,
	.caps = s3s_caps,
	.batch_begin = s3s_batch_begin,
	.batch_end = s3s_batch_end,
	.put = s3s_put,
	.sync = s3s_sync,
	.batch_check = s3s_batch_check,
	.get = s3_store_get,
	.loc_span = s3_store_loc_span,
	.loc_name = s3_store_loc_name,
	.prefetch = NULL,
	.get_run = s3_store_get_run,
	.containers = s3_store_containers,
	.iterate = s3_store_iterate,
	.claim = s3_store_claim,
	.unclaim = s3_store_unclaim,
	.container_size = s3_store_container_size,
	.del = s3_store_del,
	.cut = s3s_cut,
	.bytes = s3_store_bytes,
	.room = s3s_room,
	.maint = s3_store_maint,
};
