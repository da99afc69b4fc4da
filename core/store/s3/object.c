/* object.c — the S3 client's object calls (s3.h): whole-object PUT,
 * ranged GET, HEAD, DELETE, LIST, and multipart uploads (create, parts,
 * complete, abort, and the listing of uploads left open), each built as
 * an s3_op and run by request.c. */
#include "s3-int.h"

#include <errno.h>
#include <inttypes.h>
#include <md5.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strbuf.h"
#include "util.h"

int s3_put_start(struct s3_client *c, const char *key, const void *buf,
		 size_t len, struct s3_op **ret)
{
	struct s3_op *op;

	if (!c || !s3_key_ok(key) || (!buf && len) || !ret)
		return -EINVAL;
	if (len > S3_MAX_PUT)
		return log_err(-EINVAL, "s3: PUT '%s': %zu bytes: more than "
			       "one PUT takes, use a multipart upload", key,
			       len);
	op = s3_op_new(c, V_PUT, key, NULL);
	if (!op)
		return -ENOMEM;
	s3_op_body(op, buf, len, c->payload);
	s3_op_submit(c, op);
	*ret = op;
	return 0;
}

int s3_put_new(struct s3_client *c, const char *key, const void *buf,
	       size_t len)
{
	struct s3_op *op;
	int r;

	if (!c || !s3_key_ok(key) || (!buf && len) || len > S3_MAX_PUT)
		return -EINVAL;
	op = s3_op_new(c, V_PUT, key, NULL);
	if (!op)
		return -ENOMEM;
	s3_op_header(op, "If-None-Match: *");
	s3_op_body(op, buf, len, c->payload);
	op->quiet = true;
	r = (int)s3_op_run(op);
	if (r && r != -EEXIST)
		log_err(r, "s3: %s: %s, %u attempt%s", op->what, op->why,
			op->attempt, op->attempt == 1 ? "" : "s");
	s3_op_free(op);
	return r;
}

int s3_put(struct s3_client *c, const char *key, const void *buf,
	   size_t len)
{
	struct s3_op *op;
	int r = s3_put_start(c, key, buf, len, &op);

	return r ? r : (int)s3_op_wait(op);
}

int s3_get_start(struct s3_client *c, const char *key, uint64_t off,
		 size_t len, void *buf, struct s3_op **ret)
{
	struct s3_op *op;
	char range[64];

	if (!c || !s3_key_ok(key) || (!buf && len) || !ret ||
	    off > UINT64_MAX - len)
		return -EINVAL;
	op = s3_op_new(c, V_GET, key, NULL);
	if (!op)
		return -ENOMEM;
	if (len == 0) {
		s3_op_done_now(op, 0);
		*ret = op;
		return 0;
	}
	op->dst = buf;
	op->dst_len = len;
	op->off = off;
	snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64,
		 off, off + len - 1);
	s3_op_header(op, range);
	free(op->what);
	if (asprintf(&op->what, "GET '%s' [%" PRIu64 ", +%zu)", key, off,
		     len) < 0) {
		op->what = NULL;
		s3_op_free(op);
		return -ENOMEM;
	}
	s3_op_submit(c, op);
	*ret = op;
	return 0;
}

ssize_t s3_get(struct s3_client *c, const char *key, uint64_t off,
	       size_t len, void *buf)
{
	struct s3_op *op;
	int r = s3_get_start(c, key, off, len, buf, &op);

	return r ? r : s3_op_wait(op);
}

int s3_head(struct s3_client *c, const char *key, struct s3_stat *ret)
{
	struct s3_op *op;
	int r;

	if (!c || !s3_key_ok(key) || !ret)
		return -EINVAL;
	op = s3_op_new(c, V_HEAD, key, NULL);
	if (!op)
		return -ENOMEM;
	r = (int)s3_op_run(op);
	if (r == 0) {
		ret->size = op->length;
		ret->mtime = op->mtime;
		snprintf(ret->etag, sizeof(ret->etag), "%s", op->etag);
	}
	s3_op_free(op);
	return r;
}

int s3_delete(struct s3_client *c, const char *key)
{
	struct s3_op *op;
	int r;

	if (!c || !s3_key_ok(key))
		return -EINVAL;
	op = s3_op_new(c, V_DELETE, key, NULL);
	if (!op)
		return -ENOMEM;
	r = (int)s3_op_run(op);
	s3_op_free(op);
	return r == -ENOENT ? 0 : r;
}

void s3_list_release(struct s3_list *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++)
		free(l->v[i].key);
	free(l->v);
	free(l->next);
	memset(l, 0, sizeof(*l));
}

/* Parses a ListObjectsV2 page into ret. */
static int parse_list(const char *s, size_t len, struct s3_list *ret)
{
	const char *end = s + len, *pos = s, *p;
	struct s3_list l = { NULL, 0, NULL };
	size_t alloc = 0;
	char *trunc, *block;
	int r = 0;

	while ((block = s3_xml_take(s, end, "Contents", &pos))) {
		const char *bend = block + strlen(block), *bp = block;
		char *key, *size, *etag, *mtime;
		struct s3_object *o;

		key = s3_xml_take(block, bend, "Key", &bp);
		bp = block;
		size = s3_xml_take(block, bend, "Size", &bp);
		bp = block;
		etag = s3_xml_take(block, bend, "ETag", &bp);
		bp = block;
		mtime = s3_xml_take(block, bend, "LastModified", &bp);
		free(block);
		if (!key || !size) {
			free(key);
			r = -EIO;
		} else if (l.n == alloc) {
			size_t na = alloc ? 2 * alloc : 64;
			struct s3_object *v = reallocarray(l.v, na, sizeof(*v));

			if (v) {
				l.v = v;
				alloc = na;
			} else {
				free(key);
				r = -ENOMEM;
			}
		}
		if (!r) {
			o = &l.v[l.n++];
			o->key = key;
			o->size = strtoull(size, NULL, 10);
			o->mtime = s3_parse_iso8601(mtime);
			o->etag[0] = '\0';
			if (etag)
				s3_etag_copy(o->etag, sizeof(o->etag), etag);
		}
		free(size);
		free(etag);
		free(mtime);
		if (r)
			break;
	}
	p = s;
	trunc = s3_xml_take(s, end, "IsTruncated", &p);
	if (!r && trunc && !strcmp(trunc, "true")) {
		p = s;
		l.next = s3_xml_take(s, end, "NextContinuationToken", &p);
		if (!l.next)
			r = -EIO;
	}
	free(trunc);
	if (r) {
		s3_list_release(&l);
		return r;
	}
	*ret = l;
	return 0;
}

/* Runs a listing (a GET of the bucket with query); the op, with its
 * answer in resp, for the caller to parse and free; NULL without memory. */
static struct s3_op *bucket_get(struct s3_client *c, const char *query,
				int *ret)
{
	struct s3_op *op = s3_op_new(c, V_GET, NULL, query);

	if (!op) {
		*ret = -ENOMEM;
		return NULL;
	}
	op->resp_max = RESP_LIST;
	*ret = (int)s3_op_run(op);
	return op;
}

int s3_list(struct s3_client *c, const char *prefix, const char *token,
	    unsigned max, struct s3_list *ret)
{
	struct strbuf q;
	struct s3_op *op;
	int r;

	if (!c || !ret || max > 1000)
		return -EINVAL;
	strbuf_init(&q);
	if (token) {
		strbuf_adds(&q, "continuation-token=");
		s3_add_encoded(&q, token, false);
		strbuf_addch(&q, '&');
	}
	strbuf_addf(&q, "list-type=2&max-keys=%u&prefix=", max ? max : 1000);
	s3_add_encoded(&q, prefix ? prefix : "", false);
	op = bucket_get(c, q.buf, &r);
	strbuf_release(&q);
	if (!op)
		return r;
	if (r == 0) {
		r = parse_list(op->resp.buf, op->resp.len, ret);
		if (r == -EIO)
			log_err(r, "s3: %s: a listing that does not parse",
				op->what);
	}
	s3_op_free(op);
	return r;
}

/* ---- multipart ---- */

static char *upload_query(const struct s3_upload *u, unsigned part)
{
	struct strbuf q;

	strbuf_init(&q);
	if (part)
		strbuf_addf(&q, "partNumber=%u&", part);
	strbuf_adds(&q, "uploadId=");
	s3_add_encoded(&q, u->id, false);
	return strbuf_detach(&q, NULL);
}

static void upload_free(struct s3_upload *u)
{
	unsigned i;

	if (!u)
		return;
	for (i = 0; i < u->nparts; i++)
		free(u->etags[i]);
	free(u->etags);
	free(u->key);
	free(u->id);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

int s3_mpu_create(struct s3_client *c, const char *key,
		  struct s3_upload **ret)
{
	struct s3_upload *u;
	struct s3_op *op;
	const char *pos;
	int r;

	if (!c || !s3_key_ok(key) || !ret)
		return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	pthread_mutex_init(&u->lock, NULL);
	u->c = c;
	u->key = strdup(key);
	op = s3_op_new(c, V_POST, key, "uploads=");
	if (!u->key || !op) {
		s3_op_free(op);
		upload_free(u);
		return -ENOMEM;
	}
	s3_op_header(op, "Content-Type: application/octet-stream");
	s3_op_body(op, NULL, 0, S3_PAYLOAD_SHA256);
	r = (int)s3_op_run(op);
	if (r == 0) {
		pos = op->resp.buf;
		u->id = s3_xml_take(op->resp.buf, op->resp.buf + op->resp.len,
				    "UploadId", &pos);
		if (!u->id || !*u->id)
			r = log_err(-EIO, "s3: %s: no UploadId in the answer",
				    op->what);
	}
	s3_op_free(op);
	if (r) {
		upload_free(u);
		return r;
	}
	*ret = u;
	return 0;
}

int s3_mpu_put_start(struct s3_upload *u, unsigned part, const void *buf,
		     size_t len, struct s3_op **ret)
{
	struct s3_op *op;
	char *q;
	int r = 0;

	if (!u || part < 1 || part > S3_MAX_PARTS || (!buf && len) || !ret ||
	    len > S3_MAX_PUT)
		return -EINVAL;
	pthread_mutex_lock(&u->lock);
	if (part > u->nparts) {
		unsigned n = u->nparts ? u->nparts : 16;
		char **v;

		while (n < part)
			n *= 2;
		if (n > S3_MAX_PARTS)
			n = S3_MAX_PARTS;
		v = reallocarray(u->etags, n, sizeof(*v));
		if (v) {
			memset(v + u->nparts, 0, (n - u->nparts) * sizeof(*v));
			u->etags = v;
			u->nparts = n;
		} else {
			r = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&u->lock);
	if (r)
		return r;
	q = upload_query(u, part);
	op = s3_op_new(u->c, V_PUT, u->key, q);
	free(q);
	if (!op)
		return -ENOMEM;
	free(op->what);
	if (asprintf(&op->what, "PUT '%s' part %u", u->key, part) < 0) {
		op->what = NULL;
		s3_op_free(op);
		return -ENOMEM;
	}
	op->upload = u;
	op->part = part;
	s3_op_body(op, buf, len, u->c->payload);
	s3_op_submit(u->c, op);
	*ret = op;
	return 0;
}

int s3_mpu_put(struct s3_upload *u, unsigned part, const void *buf,
	       size_t len)
{
	struct s3_op *op;
	int r = s3_mpu_put_start(u, part, buf, len, &op);

	return r ? r : (int)s3_op_wait(op);
}

/* The ETag S3 gives an object made of these parts: the MD5 of the parts'
 * MD5s, then "-N". False if a part's ETag is not an MD5. */
static bool composite_etag(struct s3_upload *u, unsigned n, char *out,
			   size_t size)
{
	uint8_t d[MD5_DIGEST_LENGTH];
	char digest[2 * MD5_DIGEST_LENGTH + 1];
	MD5_CTX ctx;
	unsigned i, j;

	MD5Init(&ctx);
	for (i = 0; i < n; i++) {
		const char *t = u->etags[i];
		uint8_t b[MD5_DIGEST_LENGTH];

		if (strlen(t) != 32 || strspn(t, "0123456789abcdef") != 32)
			return false;
		for (j = 0; j < 16; j++) {
			unsigned v;

			sscanf(t + 2 * j, "%2x", &v);
			b[j] = (uint8_t)v;
		}
		MD5Update(&ctx, b, sizeof(b));
	}
	MD5Final(d, &ctx);
	s3_hex(d, sizeof(d), digest);
	snprintf(out, size, "%s-%u", digest, n);
	return true;
}

int s3_mpu_complete(struct s3_upload *u)
{
	struct s3_client *c;
	struct s3_op *op;
	struct strbuf body;
	unsigned n = 0, i;
	char *q;
	int r;

	if (!u)
		return -EINVAL;
	c = u->c;
	pthread_mutex_lock(&u->lock);
	while (n < u->nparts && u->etags[n])
		n++;
	for (i = n; i < u->nparts; i++)
		if (u->etags[i])
			break;
	pthread_mutex_unlock(&u->lock);
	if (n == 0 || i < u->nparts) {
		log_msg(LOG_LVL_ERROR, "s3: complete '%s': %s", u->key,
			n ? "the parts have a gap" : "no part uploaded");
		s3_mpu_abort(u);
		return -EINVAL;
	}
	strbuf_init(&body);
	strbuf_adds(&body, "<CompleteMultipartUpload>");
	for (i = 0; i < n; i++)
		strbuf_addf(&body, "<Part><PartNumber>%u</PartNumber>"
			    "<ETag>\"%s\"</ETag></Part>", i + 1, u->etags[i]);
	strbuf_adds(&body, "</CompleteMultipartUpload>");
	q = upload_query(u, 0);
	op = s3_op_new(c, V_POST, u->key, q);
	free(q);
	if (!op) {
		strbuf_release(&body);
		s3_mpu_abort(u);
		return -ENOMEM;
	}
	op->body_own = strbuf_detach(&body, NULL);
	s3_op_header(op, "Content-Type: application/xml");
	s3_op_body(op, op->body_own, strlen(op->body_own), S3_PAYLOAD_SHA256);
	op->body_errors = true;
	op->quiet = true;
	r = (int)s3_op_run(op);
	if (r == -ENOENT && op->attempt > 1) {
		/* The upload is gone: was it our own earlier attempt that
		 * completed it, with its answer lost on the way? */
		struct s3_stat st;
		char want[80];

		if (composite_etag(u, n, want, sizeof(want)) &&
		    s3_head(c, u->key, &st) == 0 && !strcmp(st.etag, want))
			r = 0;
	}
	if (r) {
		log_err(r, "s3: complete '%s' (%u parts): %s, %u attempt%s",
			u->key, n, op->why, op->attempt,
			op->attempt == 1 ? "" : "s");
		s3_op_free(op);
		s3_mpu_abort(u);
		return r;
	}
	s3_op_free(op);
	upload_free(u);
	return 0;
}

int s3_mpu_abort(struct s3_upload *u)
{
	struct s3_op *op;
	char *q;
	int r;

	if (!u)
		return 0;
	q = upload_query(u, 0);
	op = s3_op_new(u->c, V_DELETE, u->key, q);
	free(q);
	if (!op) {
		upload_free(u);
		return -ENOMEM;
	}
	r = (int)s3_op_run(op);
	s3_op_free(op);
	upload_free(u);
	return r == -ENOENT ? 0 : r;
}

int s3_mpu_abort_id(struct s3_client *c, const char *key,
		    const char *upload_id)
{
	struct s3_upload u = { .c = c, .key = (char *)key,
			       .id = (char *)upload_id };
	struct s3_op *op;
	char *q;
	int r;

	if (!c || !s3_key_ok(key) || !upload_id || !*upload_id)
		return -EINVAL;
	q = upload_query(&u, 0);
	op = s3_op_new(c, V_DELETE, key, q);
	free(q);
	if (!op)
		return -ENOMEM;
	r = (int)s3_op_run(op);
	s3_op_free(op);
	return r == -ENOENT ? 0 : r;
}

/* Calls fn for each <Upload> of a ListMultipartUploads page; the markers
 * of the next page into *key_marker and *id_marker (NULL: the last). */
static int parse_uploads(const char *s, size_t len,
			 int (*fn)(void *arg, const char *key,
				   const char *upload_id, time_t initiated),
			 void *arg, char **key_marker, char **id_marker)
{
	const char *end = s + len, *pos = s, *p;
	char *block, *trunc;
	int r = 0;

	while (!r && (block = s3_xml_take(s, end, "Upload", &pos))) {
		const char *bend = block + strlen(block), *bp = block;
		char *key, *id, *when;

		key = s3_xml_take(block, bend, "Key", &bp);
		bp = block;
		id = s3_xml_take(block, bend, "UploadId", &bp);
		bp = block;
		when = s3_xml_take(block, bend, "Initiated", &bp);
		if (!key || !id)
			r = -EIO;
		else
			r = fn(arg, key, id, s3_parse_iso8601(when));
		free(key);
		free(id);
		free(when);
		free(block);
	}
	p = s;
	trunc = s3_xml_take(s, end, "IsTruncated", &p);
	if (!r && trunc && !strcmp(trunc, "true")) {
		p = s;
		*key_marker = s3_xml_take(s, end, "NextKeyMarker", &p);
		p = s;
		*id_marker = s3_xml_take(s, end, "NextUploadIdMarker", &p);
		if (!*key_marker)
			r = -EIO;
	}
	free(trunc);
	return r;
}

int s3_mpu_list(struct s3_client *c, const char *prefix,
		int (*fn)(void *arg, const char *key, const char *upload_id,
			  time_t initiated),
		void *arg)
{
	char *km = NULL, *im = NULL;
	struct strbuf q;
	struct s3_op *op;
	int r;

	if (!c || !fn)
		return -EINVAL;
	do {
		/* canonical: names in byte order */
		strbuf_init(&q);
		if (km) {
			strbuf_adds(&q, "key-marker=");
			s3_add_encoded(&q, km, false);
			strbuf_addch(&q, '&');
		}
		strbuf_adds(&q, "max-uploads=1000&prefix=");
		s3_add_encoded(&q, prefix ? prefix : "", false);
		if (im && *im) {
			strbuf_adds(&q, "&upload-id-marker=");
			s3_add_encoded(&q, im, false);
		}
		strbuf_adds(&q, "&uploads=");
		free(km);
		free(im);
		km = im = NULL;
		op = bucket_get(c, q.buf, &r);
		strbuf_release(&q);
		if (!op)
			return r;
		if (r == 0) {
			r = parse_uploads(op->resp.buf, op->resp.len, fn, arg,
					  &km, &im);
			if (r == -EIO)
				log_err(r, "s3: %s: a listing of uploads that "
					"does not parse", op->what);
		}
		s3_op_free(op);
	} while (r == 0 && km);
	free(km);
	free(im);
	return r;
}
