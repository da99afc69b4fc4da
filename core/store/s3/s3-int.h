/* s3-int.h — private to the S3 client (store/s3/client.c, request.c,
 * object.c): its structs, its limits, and the functions one file calls
 * in another. The client's API is s3.h.
 *
 * Lock order: c->lock, then u->lock (the worker records a part's ETag
 * while holding c->lock).
 */
#ifndef MREG_STORE_S3_INT_H
#define MREG_STORE_S3_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "s3.h"
#include "strbuf.h"

#define S3_MAX_KEY 1024
#define S3_MAX_PARTS 10000
#define S3_MAX_PUT (5ull << 30)
#define RESP_SMALL (64u << 10)	/* error bodies, create, complete */
#define RESP_LIST (16u << 20)	/* a page of 1000 keys of 1 KiB, XML */
#define BACKOFF_MS 50
#define BACKOFF_MAX_MS 2000

enum verb { V_GET, V_PUT, V_HEAD, V_DELETE, V_POST };

struct s3_client {
	char *prefix;		/* URL of the bucket, ending in '/' */
	char *bucket;
	char *sigv4;		/* "aws:amz:REGION:s3" */
	char *access, *secret;
	char *token_hdr;	/* "x-amz-security-token: ..." or NULL */
	unsigned max_inflight, queue_max, timeout_ms, connect_ms, stall_s;
	unsigned attempts;
	enum s3_payload payload;

	pthread_mutex_t lock;
	pthread_cond_t cond;	/* an op ended, or the queue has room */
	struct s3_op *queue, **queue_tail; /* to start, or to start again */
	unsigned queued;	/* ops in the queue */
	unsigned running;	/* ops in the multi handle */
	unsigned outstanding;	/* started, not yet waited for */
	bool stopping;
	CURLM *multi;
	pthread_t worker;

	/* the worker's own */
	CURL **idle;
	unsigned nidle;
	uint64_t rnd;
};

struct s3_upload {
	struct s3_client *c;
	char *key;
	char *id;		/* UploadId */
	pthread_mutex_t lock;
	char **etags;		/* [part - 1], NULL until uploaded */
	unsigned nparts;	/* slots in etags */
};

struct s3_op {
	struct s3_client *c;
	struct s3_op *next;
	enum verb verb;
	char *url;
	char *what;		/* "GET 'key'", for the log */
	struct curl_slist *hdrs;
	bool quiet;		/* the caller logs a failure itself */
	bool body_errors;	/* a 200 may carry <Error> (Complete) */
	bool payload_set;	/* x-amz-content-sha256 is in hdrs */

	/* the request body: the caller's, or owned */
	const unsigned char *body;
	size_t body_len, body_pos;
	char *body_own;

	/* the response body: into the caller's buffer, or into resp */
	unsigned char *dst;
	size_t dst_len;
	uint64_t off;		/* of dst in the object */
	uint64_t pos;		/* bytes of a 200 (whole object) seen */
	size_t got;
	bool enough;		/* a 200 gave all we want: stop it */
	bool too_much;		/* a 206 sent more than asked */
	struct strbuf resp;
	size_t resp_max;
	bool overflow;

	/* what the response said */
	long status;
	char etag[80];
	uint64_t length;
	time_t mtime;
	char code[64];		/* S3 error code from the body */

	/* the multipart part it uploads */
	struct s3_upload *upload;
	unsigned part;

	/* scheduling, by the worker */
	CURL *easy;
	uint64_t deadline, not_before;
	unsigned attempt;
	char why[192];		/* the last failure, for the log */

	bool done;
	ssize_t result;
};

/* ---- client.c: helpers ---- */

/* Monotonic milliseconds. */
uint64_t s3_now_ms(void);
/* The n bytes at p as 2n lower-case hex digits and a NUL into out. */
void s3_hex(const unsigned char *p, size_t n, char *out);
/* Appends s percent-encoded as SigV4 wants it; '/' kept if keep_slash. */
void s3_add_encoded(struct strbuf *sb, const char *s, bool keep_slash);
/* Whether S3 stores key as it is sent (see client.c). */
bool s3_key_ok(const char *key);
/* The text of <tag>...</tag> at or after *pos in [s, end), entities
 * decoded, in a new string; *pos moves past it. NULL if absent. */
char *s3_xml_take(const char *s, const char *end, const char *tag,
		  const char **pos);
/* Copies an ETag without its quotes into dst (size bytes). */
void s3_etag_copy(char *dst, size_t size, const char *src);
/* An ISO 8601 time ("2026-01-02T03:04:05...", UTC) as time_t; 0 when
 * s is NULL or does not parse. */
time_t s3_parse_iso8601(const char *s);

/* ---- request.c: ops and the worker ---- */

/* A new op of verb on key (NULL: the bucket) with query (canonical, or
 * NULL); NULL without memory. */
struct s3_op *s3_op_new(struct s3_client *c, enum verb verb,
			const char *key, const char *query);
void s3_op_free(struct s3_op *op);
/* Adds the header line h (signed). */
void s3_op_header(struct s3_op *op, const char *h);
/* Sets the body (not copied) and the headers that protect it. */
void s3_op_body(struct s3_op *op, const void *buf, size_t len,
		enum s3_payload how);
/* Queues op (its deadline starts now), waiting for room until then. */
void s3_op_submit(struct s3_client *c, struct s3_op *op);
/* Queues op and waits for it: its result; op is kept (the caller reads
 * the response, then frees it). */
ssize_t s3_op_run(struct s3_op *op);
/* Ends op at once with result r, without running it (a zero-length
 * GET): s3_op_wait() then returns r. */
void s3_op_done_now(struct s3_op *op, ssize_t r);
/* What to fix, in a few words, for a failed op's result r ("wrong
 * secret key", "no such bucket", "cannot reach the endpoint"); NULL when
 * the answer says nothing a user can act on. */
const char *s3_op_hint(const struct s3_op *op, int r);
/* The worker thread's body (arg: the client). */
void *s3_worker_main(void *arg);

#endif
