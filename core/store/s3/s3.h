/* s3.h — a small S3 client: objects in one bucket of an S3-compatible
 * store (AWS S3, Ceph radosgw, MinIO), over libcurl with SigV4 signing.
 *
 * A leaf: it knows buckets, keys and byte ranges, nothing of chunks, packs
 * or the registry. It gives:
 *	- whole-object PUT, multipart upload (create, parts, complete, abort),
 *	  ranged GET into the caller's buffer, HEAD, DELETE, LIST by prefix;
 *	- a bucket check for start-up, failing with a one-line reason;
 *	- several requests in flight: each call has a _start form that
 *	  returns at once and an s3_op to wait for; the plain form is
 *	  _start then s3_op_wait.
 *
 * Usage:
 *	struct s3_config cfg = { .endpoint = "http://127.0.0.1:7480",
 *				 .bucket = "mreg", .path_style = true };
 *	struct s3_client *c;
 *	r = s3_open(&cfg, &c);	(credentials from the environment)
 *	r = s3_check(c);		(-EACCES, -ENOENT: say why, stop)
 *	r = s3_put(c, "packs/p1", buf, len);
 *	n = s3_get(c, "packs/p1", off, sizeof(out), out);
 *	s3_close(c);
 *
 * How requests run. One thread per client drives every transfer through
 * one curl multi handle: connections are reused across requests, at most
 * max_inflight transfers run at once and further requests wait in a queue
 * of at most 4 * max_inflight (a _start call blocks while it is full).
 * The client never buffers an object: a PUT reads from the caller's
 * buffer, a GET writes into it, so memory is bounded by what callers have
 * in flight plus small responses (errors, listings, capped at 16 MiB).
 * Every function is thread-safe; a client does not survive fork().
 *
 * Deadline and retries. Every request has a deadline, timeout_ms after it
 * was started (the time it waits in the queue counts). A failure that a
 * retry may cure (HTTP 500, 502, 503 SlowDown, 504, 408, 429, a refused
 * or reset connection, a response cut short, a connect timeout, a
 * transfer that stalls for stall_ms, a body the server saw corrupted) is
 * retried up to attempts times in all, after a jittered exponential
 * backoff (50 ms doubling, at most 2 s), never past the deadline. Every
 * object operation is idempotent, so a retry is safe; a CompleteMultipart
 * whose answer was lost is recognised on its retry by the object's ETag.
 *
 * Errors, every call (the reason is logged where it is known; 404 is not
 * logged, since callers probe with HEAD and GET):
 *	-EINVAL     bad argument, or the server refused the request (400)
 *	-EACCES     403/401: wrong key or secret, no permission, clock skew
 *	-ENOENT     404: no such key, bucket or upload
 *	-EEXIST     409: conflict (the bucket exists, owned by another);
 *	            412: s3_put_new's key exists
 *	-EDQUOT     the user's or bucket's quota is exceeded
 *	-ETIMEDOUT  the deadline passed, or the last attempt timed out
 *	-EIO        any other failure, once the retries are spent: 5xx,
 *	            connection refused or reset, a malformed response
 *	-ENOMEM     out of memory
 * 416 (a range past the end) is not an error: s3_get returns 0 bytes.
 */
#ifndef MREG_S3_H
#define MREG_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* How a PUT's body is protected; every choice signs the headers. */
enum s3_payload {
	/* UNSIGNED-PAYLOAD and a signed Content-MD5: the server checks the
	 * body (BadDigest otherwise) at MD5's speed (~440 MB/s here). */
	S3_PAYLOAD_MD5 = 0,
	/* The body's SHA-256 in x-amz-content-sha256, signed: the body is
	 * part of the signature, at SHA-256's speed (~130 MB/s here, with
	 * libmd). */
	S3_PAYLOAD_SHA256,
	/* UNSIGNED-PAYLOAD alone: TLS or the caller checks the bytes. */
	S3_PAYLOAD_UNSIGNED,
};

/* A zeroed field takes the default named beside it. */
struct s3_config {
	/* "http[s]://host[:port]", no path: required */
	const char *endpoint;
	/* required; virtual-host style needs a DNS-compatible name */
	const char *bucket;
	/* "us-east-1"; the signature's scope */
	const char *region;
	/* true: endpoint/bucket/key; false: bucket.host/key */
	bool path_style;
	/* An AWS shared credentials file ([profile] with aws_access_key_id,
	 * aws_secret_access_key, aws_session_token): refused unless only its
	 * owner (and group) can read it. NULL: the environment's
	 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN. */
	const char *credentials;
	/* the section of the credentials file: "default" */
	const char *profile;
	/* transfers at once: 8 */
	unsigned max_inflight;
	/* one request's deadline, retries and queueing included: 30000 */
	unsigned timeout_ms;
	/* one connection attempt: 3000 */
	unsigned connect_timeout_ms;
	/* an attempt that moves no byte for this long is retried: 10000
	 * (curl counts whole seconds, so this rounds up to one) */
	unsigned stall_ms;
	/* attempts in all, the first included: 6 */
	unsigned attempts;
	enum s3_payload payload;
};

struct s3_client;
struct s3_op;
struct s3_upload;

/* What HEAD tells of an object. */
struct s3_stat {
	uint64_t size;
	time_t mtime;		/* Last-Modified; 0 if not sent */
	char etag[80];		/* as sent, quotes removed: "" if none */
};

/* One object of a listing. */
struct s3_object {
	char *key;
	uint64_t size;
	time_t mtime;
	char etag[80];
};

/* One page of a listing: s3_list_release() frees it. */
struct s3_list {
	struct s3_object *v;
	size_t n;
	/* the token of the next page, NULL when this one is the last */
	char *next;
};

/* Makes a client; sends nothing (s3_check does). Reads the credentials,
 * from cfg->credentials or the environment. Errors: -EINVAL (a missing or
 * malformed field, no credentials: logged), -EACCES (a credentials file
 * others can read: logged), -errno of reading the file, -ENOMEM, -EIO
 * (libcurl cannot start). */
int s3_open(const struct s3_config *cfg, struct s3_client **ret);

/* Waits for what is in flight, then frees the client; takes NULL. Every
 * s3_op started must have been waited for before. */
void s3_close(struct s3_client *c);

/* Proves the endpoint, the credentials and the bucket with one LIST of
 * at most one key. A failure is logged in one line that says what to fix
 * ("wrong secret key", "no such bucket", "cannot connect"). Errors: the
 * list above (-EACCES for wrong credentials, -ENOENT for no bucket). */
int s3_check(struct s3_client *c);

/* Waits for op, frees it, and returns its result: 0 or a byte count
 * (s3_get), or a negative errno. Every started op is waited for exactly
 * once. */
ssize_t s3_op_wait(struct s3_op *op);

/* PUTs buf[0..len) as the whole object key (replacing any). buf must stay
 * valid and unchanged until the op is waited for. Objects over 5 GiB need
 * a multipart upload (-EINVAL). Keys: 1 to 1024 bytes, no control
 * character, no empty, "." or ".." segment (-EINVAL). */
int s3_put(struct s3_client *c, const char *key, const void *buf,
	   size_t len);
int s3_put_start(struct s3_client *c, const char *key, const void *buf,
		 size_t len, struct s3_op **ret);

/* PUTs buf[0..len) as key only if no object of that name exists
 * (If-None-Match: *): -EEXIST when one does (or when a retry finds the
 * object its own first attempt made). Errors otherwise as s3_put. */
int s3_put_new(struct s3_client *c, const char *key, const void *buf,
	       size_t len);

/* Reads up to len bytes of key from offset off into buf. Returns the
 * number of bytes read: less than len at the object's end, 0 past it.
 * buf must stay valid until the op is waited for; its bytes past the
 * returned count are unspecified. */
ssize_t s3_get(struct s3_client *c, const char *key, uint64_t off,
	       size_t len, void *buf);
int s3_get_start(struct s3_client *c, const char *key, uint64_t off,
		 size_t len, void *buf, struct s3_op **ret);

/* Size, mtime and ETag of key. -ENOENT when it does not exist. */
int s3_head(struct s3_client *c, const char *key, struct s3_stat *ret);

/* Deletes key. Deleting a key that does not exist succeeds (S3's rule). */
int s3_delete(struct s3_client *c, const char *key);

/* Lists keys that start with prefix ("" for all), in key order, one page
 * of at most max keys (0: 1000, the most S3 gives): token NULL for the
 * first page, then ret->next of the page before. */
int s3_list(struct s3_client *c, const char *prefix, const char *token,
	    unsigned max, struct s3_list *ret);
void s3_list_release(struct s3_list *l);

/* Multipart upload of one object, for objects larger than one PUT should
 * carry. Parts are numbered 1..10000; every part but the last must be at
 * least 5 MiB (S3's rule, checked by the server at completion); parts may
 * be uploaded in any order, from several threads, and again (the last
 * upload of a number wins). Nothing is visible under key before
 * s3_mpu_complete succeeds.
 *
 * s3_mpu_create: starts one. Errors: the list above.
 * s3_mpu_put_start / s3_mpu_put: uploads part number part from buf[0..len)
 *	(buf valid until the op is waited for). -EINVAL for a bad number.
 * s3_mpu_complete: makes the object of the parts uploaded so far, which
 *	must be numbered 1..N without a gap (-EINVAL otherwise, nothing
 *	sent); waits for no op: wait for the parts first. Frees u whatever
 *	the result; on failure the upload is aborted (best effort).
 * s3_mpu_abort: discards the upload and its parts; frees u (takes NULL).
 *	Parts still in flight must have been waited for. */
int s3_mpu_create(struct s3_client *c, const char *key,
		  struct s3_upload **ret);
int s3_mpu_put(struct s3_upload *u, unsigned part, const void *buf,
	       size_t len);
int s3_mpu_put_start(struct s3_upload *u, unsigned part, const void *buf,
		     size_t len, struct s3_op **ret);
int s3_mpu_complete(struct s3_upload *u);
int s3_mpu_abort(struct s3_upload *u);

/* Multipart uploads begun and neither completed nor aborted, of keys
 * that start with prefix: fn(arg, key, upload id, time initiated) for
 * each, in key order, all pages; stops at fn's non-zero and returns it.
 * s3_mpu_abort_id discards one by its key and id (an upload already gone
 * is no error). Errors: the list above; -EIO for a listing that does not
 * parse. For housekeeping: uploads a crashed writer left behind keep
 * their parts' bytes until they are aborted. */
int s3_mpu_list(struct s3_client *c, const char *prefix,
		int (*fn)(void *arg, const char *key, const char *upload_id,
			  time_t initiated),
		void *arg);
int s3_mpu_abort_id(struct s3_client *c, const char *key,
		    const char *upload_id);

#endif
