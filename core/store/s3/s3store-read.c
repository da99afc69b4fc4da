/* s3store-read.c — the S3 store's locations, reads, containers and
 * housekeeping (see s3store.c for the objects and the writing).
 *
 * Location, 20 bytes: u64 LE object id, u64 LE offset of the data in the
 * object, u32 LE length. A read is one ranged GET of the record (its
 * 24-byte header and the data), whose framing is checked here: magic,
 * length and the id it names; the hash is store.c's (every backend's).
 * A run of records one after another (the host cache's prefetch) is one
 * ranged GET of them all.
 *
 * Containers are the objects under ROOT"packs/", listed; busy while their
 * LastModified is younger than gc_grace (plus a second: LastModified has
 * whole seconds), or while this process still writes them. claim is a
 * HEAD (exists, not busy): no lock, objects never change. maint aborts
 * the multipart uploads older than gc_grace (a writer that died).
 */
#include "s3store-int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store/packfmt.h"
#include "util.h"

#define WALK_WINDOW (8u << 20)	/* iterate() reads this much at a time */

void s3_store_loc_make(uint64_t container, uint64_t data_off, uint32_t len,
		       struct chunk_loc *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->len = S3S_LOC_LEN;
	pack_put_le64(ret->b, container);
	pack_put_le64(ret->b + 8, data_off);
	pack_put_le32(ret->b + 16, len);
}

int s3_store_loc_span(const struct mreg_store *ms,
		      const struct chunk_loc *loc, struct store_span *ret)
{
	uint64_t c, off;
	uint32_t len;

	if (!ms || !loc || !ret)
		return -EINVAL;
	if (loc->len != S3S_LOC_LEN)
		return -EIO;
	c = pack_get_le64(loc->b);
	off = pack_get_le64(loc->b + 8);
	len = pack_get_le32(loc->b + 16);
	if (c == 0 || off < PACK_HEADER_SIZE + PACK_RECORD_HEADER ||
	    off > UINT64_MAX / 2)
		return -EIO;
	ret->container = c;
	ret->off = off - PACK_RECORD_HEADER;
	ret->len = len;
	ret->size = PACK_RECORD_HEADER + (uint64_t)len;
	return 0;
}

const char *s3_store_loc_name(const struct mreg_store *ms,
			      const struct chunk_loc *loc, char *buf,
			      size_t size)
{
	const struct s3_store *s = (const struct s3_store *)ms;
	char key[S3S_KEY_MAX];
	struct store_span sp;

	if (!buf || !size)
		return buf;
	if (s3_store_loc_span(ms, loc, &sp)) {
		snprintf(buf, size, "a bad s3 location");
		return buf;
	}
	s3_store_key(s, sp.container, key);
	snprintf(buf, size, "object '%s' at %" PRIu64 " (%" PRIu32 " bytes)",
		 key, sp.off + PACK_RECORD_HEADER, sp.len);
	return buf;
}

/* The client's errors as the store's: what is not gone or memory is
 * -EIO. A read whose deadline passed (-ETIMEDOUT, the client logged it)
 * is one that could not get its bytes, as a 5xx after the retries: a
 * reader through the mount gets EIO for both (issue 13). */
static int read_err(int r)
{
	return r == -ENOENT || r == -ENOMEM || r == -EINVAL ? r : -EIO;
}

/* Reads a record of this process's object still being written, from the
 * part buffer; 1 when it was not there (read it from the store). */
static int get_own(struct s3_store *s, const struct store_span *sp,
		   uint8_t *rec)
{
	int r = 1;

	pthread_mutex_lock(&s->mu);
	if (s->have_cur && sp->container == s->cur_id) {
		if (sp->off >= s->cur_sent &&
		    sp->off + sp->size <= s->cur_size) {
			memcpy(rec, s->buf + (sp->off - s->cur_sent),
			       sp->size);
			r = 0;
		} else {
			/* in a part sent: end the object, read it back */
			r = s3_store_end_object(s);
			if (r == 0)
				r = 1;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

int s3_store_get(struct mreg_store *ms, const struct chunk_loc *loc,
		 const struct mreg_id *id, void *buf)
{
	struct s3_store *s = (struct s3_store *)ms;
	char key[S3S_KEY_MAX], name[S3S_KEY_MAX + 64];
	struct store_span sp;
	const char *why;
	uint8_t *rec;
	ssize_t n;
	int r;

	if (!s || !loc || !buf)
		return -EINVAL;
	if (s3_store_loc_span(ms, loc, &sp))
		return log_err(-EIO, "s3 store: a location that is not one "
			       "of an s3 store (%u bytes)", loc->len);
	rec = malloc(sp.size);
	if (!rec)
		return -ENOMEM;
	r = get_own(s, &sp, rec);
	if (r == 1) {
		s3_store_key(s, sp.container, key);
		n = s3_get(s->c, key, sp.off, sp.size, rec);
		r = n < 0 ? read_err((int)n) : 0;
		if (n >= 0 && (uint64_t)n < sp.size) {
			free(rec);
			return log_err(-EIO, "s3 store: bad chunk at %s "
				       "(the object ends inside it)",
				       s3_store_loc_name(ms, loc, name,
							 sizeof(name)));
		}
	}
	if (r) {
		free(rec);
		return r;
	}
	why = pack_record_check(rec, sp.len, id);
	if (why) {
		free(rec);
		return log_err(-EIO, "s3 store: bad chunk at %s (%s)",
			       s3_store_loc_name(ms, loc, name, sizeof(name)),
			       why);
	}
	memcpy(buf, rec + PACK_RECORD_HEADER, sp.len);
	free(rec);
	return 0;
}

/* Reads a run of records (get_run of backend.h) with one ranged GET of
 * the bytes from the first record to the end of the last: a cold
 * sequential read fetches many chunks in a request instead of paying a
 * round trip for each. A run in the object this process is still
 * writing is read chunk by chunk (get_own). */
int s3_store_get_run(struct mreg_store *ms, const struct chunk_loc *locs,
		     const struct mreg_id *ids, size_t n, void *const *bufs)
{
	struct s3_store *s = (struct s3_store *)ms;
	char key[S3S_KEY_MAX], name[S3S_KEY_MAX + 64];
	struct store_span first, sp;
	uint64_t end = 0;
	const char *why;
	bool own;
	uint8_t *run;
	ssize_t got;
	size_t i;
	int r = 0;

	if (!s || !locs || !ids || !bufs || !n)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (s3_store_loc_span(ms, &locs[i], &sp))
			return log_err(-EIO, "s3 store: a location that is not "
				       "one of an s3 store (%u bytes)",
				       locs[i].len);
		if (i == 0)
			first = sp;
		if (sp.container != first.container || sp.off < end ||
		    sp.off + sp.size - first.off > SIZE_MAX / 2)
			return -EINVAL;
		end = sp.off + sp.size;
	}
	pthread_mutex_lock(&s->mu);
	own = s->have_cur && s->cur_id == first.container;
	pthread_mutex_unlock(&s->mu);
	if (own) {
		for (i = 0; i < n && !r; i++)
			r = s3_store_get(ms, &locs[i], &ids[i], bufs[i]);
		return r;
	}
	run = malloc(end - first.off);
	if (!run)
		return -ENOMEM;
	s3_store_key(s, first.container, key);
	got = s3_get(s->c, key, first.off, end - first.off, run);
	if (got < 0) {
		free(run);
		return read_err((int)got);
	}
	for (i = 0; i < n; i++) {
		s3_store_loc_span(ms, &locs[i], &sp);
		why = sp.off + sp.size > first.off + (uint64_t)got ?
		      "the object ends inside it" :
		      pack_record_check(run + (sp.off - first.off), sp.len,
					&ids[i]);
		if (why) {
			r = log_err(-EIO, "s3 store: bad chunk at %s (%s)",
				    s3_store_loc_name(ms, &locs[i], name,
						      sizeof(name)), why);
			break;
		}
		memcpy(bufs[i], run + (sp.off - first.off + PACK_RECORD_HEADER),
		       sp.len);
	}
	free(run);
	return r;
}

/* ---- containers ---- */

/* The id of a key ROOT"packs/%016llx"; false for another key. */
static bool key_id(const struct s3_store *s, const char *key, uint64_t *ret)
{
	size_t rl = strlen(s->root);
	const char *h = key + rl + 6;

	if (strncmp(key, s->root, rl) || strncmp(key + rl, "packs/", 6) ||
	    strlen(h) != 16 || strspn(h, "0123456789abcdef") != 16)
		return false;
	*ret = strtoull(h, NULL, 16);
	return *ret != 0;
}

/* Busy: younger than the grace, or still being written here. */
static bool busy(struct s3_store *s, uint64_t id, time_t mtime)
{
	time_t now = time(NULL);
	bool own;

	pthread_mutex_lock(&s->mu);
	own = s->have_cur && s->cur_id == id;
	pthread_mutex_unlock(&s->mu);
	return own || mtime == 0 ||
	       (int64_t)now < (int64_t)mtime + (int64_t)(s->grace_ms / 1000) +
			      1;
}

int s3_store_containers(struct mreg_store *ms,
			int (*fn)(void *arg, const struct store_container *c),
			void *arg)
{
	struct s3_store *s = (struct s3_store *)ms;
	char prefix[S3S_KEY_MAX];
	struct s3_list l = { 0 };
	char *token = NULL;
	size_t i;
	int r;

	if (!s || !fn)
		return -EINVAL;
	snprintf(prefix, sizeof(prefix), "%spacks/", s->root);
	do {
		r = s3_list(s->c, prefix, token, 0, &l);
		free(token);
		token = NULL;
		if (r)
			return r;
		for (i = 0; i < l.n && !r; i++) {
			struct store_container c = { .base = PACK_HEADER_SIZE };

			if (!key_id(s, l.v[i].key, &c.id))
				continue;
			c.size = l.v[i].size;
			c.busy = busy(s, c.id, l.v[i].mtime);
			r = fn(arg, &c);
		}
		if (!r && l.next) {
			token = strdup(l.next);
			if (!token)
				r = -ENOMEM;
		}
		s3_list_release(&l);
	} while (!r && token);
	return r;
}

static int add_size(void *arg, const struct store_container *c)
{
	*(uint64_t *)arg += c->size;
	return 0;
}

int s3_store_bytes(struct mreg_store *ms, uint64_t *ret)
{
	uint64_t n = 0;
	int r = s3_store_containers(ms, add_size, &n);

	if (!r && ret)
		*ret = n;
	return ret ? r : -EINVAL;
}

/* HEAD of an object; -EBUSY when busy (unless only size is wanted). */
static int head(struct s3_store *s, uint64_t id, bool check_busy,
		uint64_t *ret_size)
{
	char key[S3S_KEY_MAX];
	struct s3_stat st;
	int r;

	if (!s || !id)
		return -EINVAL;
	s3_store_key(s, id, key);
	r = s3_head(s->c, key, &st);
	if (r)
		return r;
	if (check_busy && busy(s, id, st.mtime))
		return -EBUSY;
	if (ret_size)
		*ret_size = st.size;
	return 0;
}

int s3_store_claim(struct mreg_store *ms, uint64_t container)
{
	return head((struct s3_store *)ms, container, true, NULL);
}

void s3_store_unclaim(UNUSED struct mreg_store *ms,
		      UNUSED uint64_t container)
{
	/* claim holds nothing: objects never change */
}

int s3_store_container_size(struct mreg_store *ms, uint64_t container,
			    uint64_t *ret)
{
	if (!ret)
		return -EINVAL;
	return head((struct s3_store *)ms, container, false, ret);
}

int s3_store_del(struct mreg_store *ms, uint64_t container)
{
	struct s3_store *s = (struct s3_store *)ms;
	char key[S3S_KEY_MAX];
	int r;

	r = head(s, container, true, NULL);
	if (r)
		return r;
	s3_store_key(s, container, key);
	r = s3_delete(s->c, key);
	if (r)
		return log_err(r, "s3 store: cannot delete '%s'", key);
	return 0;
}

/* ---- iterate ---- */

struct walk {
	struct s3_store *s;
	char key[S3S_KEY_MAX];
	uint64_t container;
	int (*fn)(void *arg, const struct mreg_id *id,
		  const struct chunk_loc *loc, const void *data,
		  uint32_t len);
	void *arg;
	int err;	/* of a GET, logged by the client */
};

static ssize_t walk_read(void *arg, uint64_t off, void *buf, size_t n)
{
	struct walk *w = arg;
	ssize_t k = s3_get(w->s->c, w->key, off, n, buf);

	if (k < 0)
		w->err = read_err((int)k);
	return k < 0 ? w->err : k;
}

static int walk_one(void *arg, const struct mreg_id *id, uint64_t data_off,
		    const void *data, uint32_t len)
{
	struct walk *w = arg;
	struct chunk_loc loc;

	s3_store_loc_make(w->container, data_off, len, &loc);
	return w->fn(w->arg, id, &loc, data, len);
}

int s3_store_iterate(struct mreg_store *ms, uint64_t container,
		     int (*fn)(void *arg, const struct mreg_id *id,
			       const struct chunk_loc *loc, const void *data,
			       uint32_t len),
		     void *arg)
{
	struct s3_store *s = (struct s3_store *)ms;
	struct walk w = { .s = s, .container = container, .fn = fn,
			  .arg = arg };
	struct pack_source pw = { .read = walk_read, .arg = &w,
				   .window = WALK_WINDOW };
	const char *why;
	uint64_t off = 0;
	int r;

	if (!s || !fn || !container)
		return -EINVAL;
	/* this process's latest records may still be in a part buffer */
	pthread_mutex_lock(&s->mu);
	r = s->have_cur && s->cur_id == container ?
	    s3_store_end_object(s) : 0;
	pthread_mutex_unlock(&s->mu);
	if (!r)
		r = head(s, container, false, &pw.size);
	if (r)
		return r;
	s3_store_key(s, container, w.key);
	r = pack_walk(&pw, (uint32_t)container, walk_one, &w, &why, &off);
	if (r == -EIO && why && !w.err)
		return log_err(-EIO, "s3 store: bad object '%s' at offset %"
			       PRIu64 " (%s)", w.key, off, why);
	return w.err ? w.err : r;
}

/* ---- housekeeping ---- */

struct abort_ctx {
	struct s3_store *s;
	time_t before;
	char own[S3S_KEY_MAX];
	unsigned n;
	int err;
};

static int abort_old(void *arg, const char *key, const char *upload_id,
		     time_t initiated)
{
	struct abort_ctx *a = arg;
	uint64_t id;
	int r;

	if (!key_id(a->s, key, &id) || !strcmp(key, a->own) ||
	    initiated == 0 || initiated >= a->before)
		return 0;
	r = s3_mpu_abort_id(a->s->c, key, upload_id);
	if (r)
		a->err = r;
	else
		a->n++;
	return 0;
}

int s3_store_maint(struct mreg_store *ms)
{
	struct s3_store *s = (struct s3_store *)ms;
	struct abort_ctx a = { .s = s };
	char prefix[S3S_KEY_MAX];
	int r;

	if (!s)
		return -EINVAL;
	a.before = time(NULL) - (time_t)(s->grace_ms / 1000);
	pthread_mutex_lock(&s->mu);
	if (s->have_cur)
		s3_store_key(s, s->cur_id, a.own);
	pthread_mutex_unlock(&s->mu);
	snprintf(prefix, sizeof(prefix), "%spacks/", s->root);
	r = s3_mpu_list(s->c, prefix, abort_old, &a);
	if (a.n)
		log_msg(LOG_LVL_INFO, "s3 store: aborted %u multipart "
			"upload%s older than the grace", a.n,
			a.n == 1 ? "" : "s");
	return r ? r : a.err;
}
