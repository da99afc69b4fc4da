/* request.c — the S3 client's requests (see client.c): an s3_op is
 * built, signed, queued, run by the worker thread over the curl multi
 * handle, retried with a backoff within its deadline, and its answer
 * mapped to an errno.
 *
 * Signing (SigV4, libcurl 7.88's CURLOPT_AWS_SIGV4 "aws:amz:REGION:s3").
 * libcurl signs the method, the path and query as written, the host, its
 * x-amz-date, and every header we set; what it leaves to us:
 *	- it sends no x-amz-content-sha256, which S3 and radosgw require: we
 *	  set it (the body's SHA-256, or UNSIGNED-PAYLOAD);
 *	- it does not canonicalise the query: we write it canonical, names
 *	  in byte order, values percent-encoded (all but A-Z a-z 0-9 - _ . ~),
 *	  and "name=" for a bare flag ("?uploads=", never "?uploads");
 *	- the path goes as written: keys are percent-encoded here the same
 *	  way ('/' kept), and CURLOPT_PATH_AS_IS stops curl from squashing
 *	  dot segments (keys with them are refused anyway);
 *	- a header set empty to suppress it ("Expect:") is signed but not
 *	  sent, so the server's signature differs: never do that. The
 *	  "Expect: 100-continue" that curl adds to large PUTs is not signed
 *	  and harmless; CURLOPT_EXPECT_100_TIMEOUT_MS bounds the wait for a
 *	  server that never answers 100.
 * A wrong secret key and a signing mistake look alike (403
 * SignatureDoesNotMatch): s3_check's message names both.
 *
 * Threads. Callers build an s3_op (URL, headers, body pointers), queue it
 * and wait on the client's condition variable. Only the worker touches
 * curl handles: it starts queued ops while fewer than max_inflight run,
 * lets curl_multi_poll() drive them, and on each end either completes the
 * op or puts it back in the queue with a not-before time (the backoff).
 * curl_multi_wakeup() tells it of new work. Easy handles are kept for
 * reuse; connections live in the multi handle's cache.
 *
 * Lock order: c->lock, then u->lock (the worker records a part's ETag
 * while holding c->lock).
 */
#include "s3-int.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <md5.h>
#include <pthread.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strbuf.h"
#include "util.h"

static const char *const verb_name[] = { "GET", "PUT", "HEAD", "DELETE",
					 "POST" };

/* ---- ops ---- */

void s3_op_free(struct s3_op *op)
{
	if (!op)
		return;
	free(op->url);
	free(op->what);
	curl_slist_free_all(op->hdrs);
	free(op->body_own);
	strbuf_release(&op->resp);
	free(op);
}

void s3_op_header(struct s3_op *op, const char *h)
{
	struct curl_slist *l = curl_slist_append(op->hdrs, h);

	if (!l)
		abort();	/* as strbuf: small, and nothing better to do */
	op->hdrs = l;
}

/* A new op on key (NULL: the bucket) with query (canonical, or NULL). */
struct s3_op *s3_op_new(struct s3_client *c, enum verb verb,
			const char *key, const char *query)
{
	struct s3_op *op = calloc(1, sizeof(*op));
	struct strbuf sb;

	if (!op)
		return NULL;
	op->c = c;
	op->verb = verb;
	strbuf_init(&op->resp);
	op->resp_max = RESP_SMALL;
	strbuf_init(&sb);
	strbuf_adds(&sb, c->prefix);
	if (key)
		s3_add_encoded(&sb, key, true);
	if (query)
		strbuf_addf(&sb, "?%s", query);
	op->url = strbuf_detach(&sb, NULL);
	strbuf_init(&sb);
	strbuf_addf(&sb, "%s '%s'", verb_name[verb], key ? key : "/");
	op->what = strbuf_detach(&sb, NULL);
	if (c->token_hdr)
		s3_op_header(op, c->token_hdr);
	return op;
}

/* Sets the body (not copied) and the headers that protect it. */
void s3_op_body(struct s3_op *op, const void *buf, size_t len,
		enum s3_payload how)
{
	char h[128], digest[SHA256_DIGEST_STRING_LENGTH];

	op->body = buf;
	op->body_len = len;
	op->payload_set = true;
	if (how == S3_PAYLOAD_SHA256) {
		SHA256Data(buf, len, digest);
		snprintf(h, sizeof(h), "x-amz-content-sha256: %s", digest);
		s3_op_header(op, h);
		return;
	}
	s3_op_header(op, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
	if (how == S3_PAYLOAD_MD5) {
		static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			"abcdefghijklmnopqrstuvwxyz0123456789+/";
		MD5_CTX ctx;
		uint8_t d[MD5_DIGEST_LENGTH];
		char *o = digest;
		int i;

		MD5Init(&ctx);
		MD5Update(&ctx, buf, len);
		MD5Final(d, &ctx);
		for (i = 0; i < 15; i += 3) {
			uint32_t v = (uint32_t)d[i] << 16 | d[i + 1] << 8 |
				     d[i + 2];

			*o++ = b64[v >> 18];
			*o++ = b64[(v >> 12) & 63];
			*o++ = b64[(v >> 6) & 63];
			*o++ = b64[v & 63];
		}
		*o++ = b64[d[15] >> 2];
		*o++ = b64[(d[15] & 3) << 4];
		*o++ = '=';
		*o++ = '=';
		*o = '\0';
		snprintf(h, sizeof(h), "Content-MD5: %s", digest);
		s3_op_header(op, h);
	}
}

/* ---- the worker ---- */

static size_t read_cb(char *dst, size_t size, size_t n, void *arg)
{
	struct s3_op *op = arg;
	size_t want = size * n, left = op->body_len - op->body_pos;

	if (want > left)
		want = left;
	memcpy(dst, op->body + op->body_pos, want);
	op->body_pos += want;
	return want;
}

static int seek_cb(void *arg, curl_off_t off, int origin)
{
	struct s3_op *op = arg;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > op->body_len)
		return CURL_SEEKFUNC_FAIL;
	op->body_pos = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

/* A GET's bytes into the caller's buffer: a 206 is the range asked; a
 * 200 is the whole object (a server that ignores Range), cut here. */
static size_t to_dst(struct s3_op *op, long status, const char *src,
		     size_t len)
{
	size_t skip = 0, take;

	if (status == 206) {
		if (len > op->dst_len - op->got) {
			op->too_much = true;
			return 0;
		}
		memcpy(op->dst + op->got, src, len);
		op->got += len;
		return len;
	}
	if (op->pos < op->off)
		skip = (size_t)(op->off - op->pos < len ? op->off - op->pos :
				len);
	op->pos += len;
	take = len - skip;
	if (take > op->dst_len - op->got)
		take = op->dst_len - op->got;
	memcpy(op->dst + op->got, src + skip, take);
	op->got += take;
	if (op->got == op->dst_len) {
		op->enough = true;
		return 0;
	}
	return len;
}

static size_t write_cb(char *src, size_t size, size_t n, void *arg)
{
	struct s3_op *op = arg;
	size_t len = size * n;
	long status = 0;

	curl_easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE, &status);
	if (op->dst && (status == 200 || status == 206))
		return to_dst(op, status, src, len);
	if (op->resp.len + len > op->resp_max) {
		op->overflow = true;
		return 0;
	}
	strbuf_add(&op->resp, src, len);
	return len;
}

static CURL *easy_get(struct s3_client *c)
{
	if (c->nidle)
		return c->idle[--c->nidle];
	return curl_easy_init();
}

static void easy_put(struct s3_client *c, CURL *e)
{
	if (c->nidle < c->max_inflight)
		c->idle[c->nidle++] = e;
	else
		curl_easy_cleanup(e);
}

/* Sets up one attempt of op on a fresh easy handle. */
static int attempt_setup(struct s3_client *c, struct s3_op *op,
			 uint64_t now)
{
	uint64_t left = op->deadline - now;
	CURL *e = easy_get(c);

	if (!e)
		return -ENOMEM;
	curl_easy_reset(e);
	op->easy = e;
	op->body_pos = 0;
	op->got = 0;
	op->pos = 0;
	op->enough = op->too_much = op->overflow = false;
	strbuf_reset(&op->resp);
	op->code[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, op->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, op);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_AWS_SIGV4, c->sigv4);
	curl_easy_setopt(e, CURLOPT_USERNAME, c->access);
	curl_easy_setopt(e, CURLOPT_PASSWORD, c->secret);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, op->hdrs);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(left ? left : 1));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(left < c->connect_ms ? (left ? left : 1) :
				c->connect_ms));
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)c->stall_s);
	curl_easy_setopt(e, CURLOPT_EXPECT_100_TIMEOUT_MS, 300L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, op);
	switch (op->verb) {
	case V_GET:
		break;
	case V_HEAD:
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
		curl_easy_setopt(e, CURLOPT_FILETIME, 1L);
		break;
	case V_DELETE:
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
		break;
	case V_PUT:
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(e, CURLOPT_READDATA, op);
		curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(e, CURLOPT_SEEKDATA, op);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)op->body_len);
		break;
	case V_POST:
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS,
				 op->body ? (const char *)op->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)op->body_len);
		break;
	}
	return 0;
}

/* The errno of an HTTP status and S3 error code; *retry when another
 * attempt may cure it. */
static int status_err(long status, const char *code, bool *retry)
{
	*retry = false;
	if (status >= 200 && status < 300)
		return 0;
	if (!strcmp(code, "QuotaExceeded"))
		return -EDQUOT;
	switch (status) {
	case 400:
		/* the body was damaged on the way, or arrived too slowly */
		if (!strcmp(code, "BadDigest") ||
		    !strcmp(code, "XAmzContentSHA256Mismatch") ||
		    !strcmp(code, "IncompleteBody") ||
		    !strcmp(code, "RequestTimeout")) {
			*retry = true;
			return -EIO;
		}
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 408:
		*retry = true;
		return -ETIMEDOUT;
	case 409:
	case 412:	/* If-None-Match: the key exists */
		return -EEXIST;
	case 416:
		return -EINVAL;
	case 429:
	case 500:
	case 502:
	case 503:
	case 504:
		*retry = true;
		return -EIO;
	case 507:
		return -ENOSPC;
	default:
		return -EIO;
	}
}

/* The result of one attempt; fills op->why on failure. */
static int attempt_result(struct s3_op *op, CURLcode cres, bool *retry)
{
	CURL *e = op->easy;
	struct curl_header *h;
	curl_off_t cl = -1, ft = -1;

	*retry = false;
	op->status = 0;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &op->status);
	if (cres == CURLE_WRITE_ERROR && op->enough)
		cres = CURLE_OK;
	if (cres != CURLE_OK) {
		if (op->too_much || op->overflow) {
			snprintf(op->why, sizeof(op->why), "%s",
				 op->too_much ? "more bytes than the range" :
				 "response too large");
			return -EIO;
		}
		snprintf(op->why, sizeof(op->why), "%s",
			 curl_easy_strerror(cres));
		switch (cres) {
		case CURLE_OUT_OF_MEMORY:
			return -ENOMEM;
		case CURLE_OPERATION_TIMEDOUT:
			*retry = true;
			return -ETIMEDOUT;
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_CONNECT:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_WEIRD_SERVER_REPLY:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
			*retry = true;
			return -EIO;
		default:
			return -EIO;
		}
	}
	if (op->status >= 300 || (op->body_errors && op->resp.len &&
				  strstr(op->resp.buf, "<Error>"))) {
		const char *pos = op->resp.buf;
		char *code = s3_xml_take(op->resp.buf,
					 op->resp.buf + op->resp.len, "Code",
					 &pos);
		long status = op->status;

		snprintf(op->code, sizeof(op->code), "%s", code ? code : "");
		free(code);
		if (status < 300)	/* an error in a 200 (Complete) */
			status = strcmp(op->code, "InternalError") &&
				 strcmp(op->code, "SlowDown") &&
				 strcmp(op->code, "ServiceUnavailable") ?
				 400 : 500;
		snprintf(op->why, sizeof(op->why), "HTTP %ld%s%s", op->status,
			 op->code[0] ? " " : "", op->code);
		if (op->verb == V_GET && op->dst && status == 416)
			return 0;	/* past the end: 0 bytes */
		return status_err(status, op->code, retry);
	}
	if (op->verb == V_GET && op->dst && op->status == 206 &&
	    curl_easy_header(e, "Content-Range", 0, CURLH_HEADER, -1, &h) ==
	    CURLHE_OK) {
		uint64_t start;

		if (sscanf(h->value, "bytes %" SCNu64, &start) != 1 ||
		    start != op->off) {
			snprintf(op->why, sizeof(op->why),
				 "Content-Range '%s' for offset %" PRIu64,
				 h->value, op->off);
			return -EIO;
		}
	}
	if (curl_easy_header(e, "ETag", 0, CURLH_HEADER, -1, &h) ==
	    CURLHE_OK)
		s3_etag_copy(op->etag, sizeof(op->etag), h->value);
	curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	op->length = cl > 0 ? (uint64_t)cl : 0;
	curl_easy_getinfo(e, CURLINFO_FILETIME_T, &ft);
	op->mtime = ft > 0 ? (time_t)ft : 0;
	return 0;
}

const char *s3_op_hint(const struct s3_op *op, int r)
{
	if (!strcmp(op->code, "InvalidAccessKeyId"))
		return "unknown access key";
	if (!strcmp(op->code, "SignatureDoesNotMatch"))
		return "wrong secret key";
	if (!strcmp(op->code, "RequestTimeTooSkewed"))
		return "this host's clock is wrong";
	if (!strcmp(op->code, "NoSuchBucket"))
		return "no such bucket";
	if (r == -EACCES)
		return "access denied";
	if (!op->status)
		return "cannot reach the endpoint";
	return NULL;
}

static void op_complete(struct s3_client *c, struct s3_op *op, ssize_t r)
{
	const char *hint;

	/* Callers probe with GET and HEAD: a missing key is no news. */
	if (r < 0 && !op->quiet && !(r == -ENOENT && op->verb != V_PUT &&
				     op->verb != V_POST &&
				     strcmp(op->code, "NoSuchBucket"))) {
		hint = s3_op_hint(op, (int)r);
		log_err((int)r, "s3: %s: %s%s%s%s, %u attempt%s", op->what,
			hint ? hint : "", hint ? " (" : "", op->why,
			hint ? ")" : "", op->attempt,
			op->attempt == 1 ? "" : "s");
	}
	op->result = r;
	op->done = true;
	pthread_cond_broadcast(&c->cond);
}

static void queue_push(struct s3_client *c, struct s3_op *op)
{
	op->next = NULL;
	*c->queue_tail = op;
	c->queue_tail = &op->next;
	c->queued++;
}

/* Ends an attempt (c->lock held): completes op, or queues it again. */
static void attempt_end(struct s3_client *c, struct s3_op *op,
			CURLcode cres)
{
	uint64_t now = s3_now_ms(), base, delay;
	bool retry;
	int r;

	r = attempt_result(op, cres, &retry);
	easy_put(c, op->easy);
	op->easy = NULL;
	c->running--;
	if (r == 0 && op->upload) {
		struct s3_upload *u = op->upload;
		char *tag = strdup(op->etag);

		pthread_mutex_lock(&u->lock);
		if (!tag || !op->etag[0]) {
			r = tag ? -EIO : -ENOMEM;
			snprintf(op->why, sizeof(op->why), "no ETag for part");
		} else {
			free(u->etags[op->part - 1]);
			u->etags[op->part - 1] = tag;
			tag = NULL;
		}
		pthread_mutex_unlock(&u->lock);
		free(tag);
	}
	if (r == 0) {
		op_complete(c, op, op->verb == V_GET && op->dst ?
			    (ssize_t)op->got : 0);
		return;
	}
	if (retry && op->attempt < c->attempts) {
		unsigned shift = op->attempt - 1 < 8 ? op->attempt - 1 : 8;

		base = BACKOFF_MS << shift;
		if (base > BACKOFF_MAX_MS)
			base = BACKOFF_MAX_MS;
		c->rnd ^= c->rnd << 13;
		c->rnd ^= c->rnd >> 7;
		c->rnd ^= c->rnd << 17;
		delay = base / 2 + c->rnd % (base / 2 + 1);
		if (now + delay < op->deadline) {
			log_debug("s3: %s: %s, again in %" PRIu64 " ms",
				  op->what, op->why, delay);
			op->not_before = now + delay;
			queue_push(c, op);
			return;
		}
	}
	op_complete(c, op, r);
}

/* Fails the queued ops whose deadline has passed; lowers *wait to the
 * time until the next op may start or expire. */
static void queue_expire(struct s3_client *c, uint64_t now, long *wait)
{
	struct s3_op **pp = &c->queue, *op;
	uint64_t next;

	while ((op = *pp)) {
		if (now >= op->deadline) {
			*pp = op->next;
			c->queued--;
			if (!op->why[0])
				snprintf(op->why, sizeof(op->why),
					 "queued past the deadline");
			op_complete(c, op, -ETIMEDOUT);
			continue;
		}
		next = op->not_before > now ? op->not_before : op->deadline;
		if ((long)(next - now) < *wait)
			*wait = (long)(next - now);
		pp = &op->next;
	}
	c->queue_tail = pp;
}

/* Takes the first queued op that may start now, or NULL. */
static struct s3_op *queue_take(struct s3_client *c, uint64_t now)
{
	struct s3_op **pp, *op;

	for (pp = &c->queue; (op = *pp); pp = &op->next)
		if (op->not_before <= now)
			break;
	if (!op)
		return NULL;
	*pp = op->next;
	if (!*pp)
		c->queue_tail = pp;
	c->queued--;
	pthread_cond_broadcast(&c->cond);	/* room in the queue */
	return op;
}

void *s3_worker_main(void *arg)
{
	struct s3_client *c = arg;
	struct s3_op *op;
	CURLMsg *msg;
	int left;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		uint64_t now = s3_now_ms();
		long wait = 1000;

		queue_expire(c, now, &wait);
		while (c->running < c->max_inflight &&
		       (op = queue_take(c, now))) {
			int r;

			op->attempt++;
			r = attempt_setup(c, op, now);
			if (!r && curl_multi_add_handle(c->multi, op->easy))
				r = -ENOMEM;
			if (r) {
				if (op->easy)
					easy_put(c, op->easy);
				op->easy = NULL;
				snprintf(op->why, sizeof(op->why),
					 "cannot start a transfer");
				op_complete(c, op, r);
				continue;
			}
			c->running++;
		}
		if (c->stopping && !c->queue && !c->running)
			break;
		pthread_mutex_unlock(&c->lock);
		curl_multi_poll(c->multi, NULL, 0, (int)wait, NULL);
		curl_multi_perform(c->multi, &left);
		pthread_mutex_lock(&c->lock);
		while ((msg = curl_multi_info_read(c->multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&op);
			curl_multi_remove_handle(c->multi, msg->easy_handle);
			attempt_end(c, op, msg->data.result);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Queues op (its deadline starts now), waiting for room until then. */
void s3_op_submit(struct s3_client *c, struct s3_op *op)
{
	struct timespec ts;
	uint64_t d;

	/* A request without a body signs no payload. */
	if (!op->payload_set) {
		s3_op_header(op, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
		op->payload_set = true;
	}
	op->deadline = s3_now_ms() + c->timeout_ms;
	d = op->deadline;
	ts.tv_sec = (time_t)(d / 1000);
	ts.tv_nsec = (long)(d % 1000) * 1000000;
	pthread_mutex_lock(&c->lock);
	c->outstanding++;
	while (c->queued >= c->queue_max && s3_now_ms() < op->deadline)
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
	if (c->queued >= c->queue_max) {
		snprintf(op->why, sizeof(op->why), "no room in the queue");
		op_complete(c, op, -ETIMEDOUT);
	} else {
		queue_push(c, op);
	}
	pthread_mutex_unlock(&c->lock);
	curl_multi_wakeup(c->multi);
}

/* Waits for op; keeps it (the caller reads the response, then frees). */
static ssize_t op_run_wait(struct s3_op *op)
{
	struct s3_client *c = op->c;
	ssize_t r;

	pthread_mutex_lock(&c->lock);
	while (!op->done)
		pthread_cond_wait(&c->cond, &c->lock);
	c->outstanding--;
	r = op->result;
	pthread_mutex_unlock(&c->lock);
	return r;
}

ssize_t s3_op_run(struct s3_op *op)
{
	s3_op_submit(op->c, op);
	return op_run_wait(op);
}

ssize_t s3_op_wait(struct s3_op *op)
{
	ssize_t r;

	if (!op)
		return -EINVAL;
	r = op_run_wait(op);
	s3_op_free(op);
	return r;
}

/* An op that never runs: its result is known (a zero-length GET). */
void s3_op_done_now(struct s3_op *op, ssize_t r)
{
	struct s3_client *c = op->c;

	pthread_mutex_lock(&c->lock);
	c->outstanding++;
	op->result = r;
	op->done = true;
	pthread_mutex_unlock(&c->lock);
}
