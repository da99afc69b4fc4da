/* s3.c — the S3 client of s3.h: requests signed by libcurl, run by one
 * worker thread over a curl multi handle, retried, and mapped to errnos.
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
#include "s3.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <md5.h>
#include <pthread.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"
#include "util.h"

#define S3_MAX_KEY 1024
#define S3_MAX_PARTS 10000
#define S3_MAX_PUT (5ull << 30)
#define RESP_SMALL (64u << 10)	/* error bodies, create, complete */
#define RESP_LIST (16u << 20)	/* a page of 1000 keys of 1 KiB, XML */
#define BACKOFF_MS 50
#define BACKOFF_MAX_MS 2000

enum verb { V_GET, V_PUT, V_HEAD, V_DELETE, V_POST };
static const char *const verb_name[] = { "GET", "PUT", "HEAD", "DELETE",
					 "POST" };

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

/* ---- small helpers ---- */

static uint64_t s3_now_ms(void)
{
	return (uint64_t)mono_ns() / 1000000;
}

static void s3_hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static bool unreserved(unsigned char ch)
{
	return isalnum(ch) || ch == '-' || ch == '_' || ch == '.' ||
	       ch == '~';
}

/* Appends s percent-encoded as SigV4 wants it; '/' kept if keep_slash. */
static void s3_add_encoded(struct strbuf *sb, const char *s, bool keep_slash)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p; p++) {
		if (unreserved(*p) || (keep_slash && *p == '/'))
			strbuf_addch(sb, (char)*p);
		else
			strbuf_addf(sb, "%%%02X", *p);
	}
}

/* A key S3 stores as we send it: 1..1024 bytes, no control character,
 * no empty, "." or ".." segment (curl or a proxy would rewrite those). */
static bool s3_key_ok(const char *key)
{
	size_t len, seg = 0;
	const char *p, *s;

	if (!key)
		return false;
	len = strlen(key);
	if (len == 0 || len > S3_MAX_KEY)
		return false;
	for (p = key; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	for (s = key;; s = p + 1) {
		p = strchr(s, '/');
		seg = p ? (size_t)(p - s) : strlen(s);
		if (seg == 0 || (seg == 1 && s[0] == '.') ||
		    (seg == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		if (!p)
			return true;
	}
}

/* The text of <tag>...</tag> at or after *pos in [s, end), entities
 * decoded, in a new string; *pos moves past it. NULL if absent. */
static char *s3_xml_take(UNUSED const char *s, const char *end, const char *tag,
			 const char **pos)
{
	char open[64], close[64];
	const char *a, *b, *p;
	struct strbuf sb;
	size_t ol;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	ol = strlen(open);
	a = memmem(*pos, (size_t)(end - *pos), open, ol);
	if (!a)
		return NULL;
	a += ol;
	b = memmem(a, (size_t)(end - a), close, strlen(close));
	if (!b)
		return NULL;
	*pos = b + strlen(close);
	strbuf_init(&sb);
	for (p = a; p < b; p++) {
		static const struct { const char *name; char ch; } ent[] = {
			{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
			{ "&quot;", '"' }, { "&apos;", '\'' },
		};
		size_t i;

		if (*p != '&') {
			strbuf_addch(&sb, *p);
			continue;
		}
		for (i = 0; i < sizeof(ent) / sizeof(ent[0]); i++) {
			size_t n = strlen(ent[i].name);

			if ((size_t)(b - p) >= n &&
			    !memcmp(p, ent[i].name, n)) {
				strbuf_addch(&sb, ent[i].ch);
				p += n - 1;
				break;
			}
		}
		if (i < sizeof(ent) / sizeof(ent[0]))
			continue;
		if (p + 2 < b && p[1] == '#') {
			/* &#NN; or &#xHH; of a byte-sized character */
			char *e;
			unsigned long v = p[2] == 'x' ?
				strtoul(p + 3, &e, 16) : strtoul(p + 2, &e, 10);

			if (e < b && *e == ';' && v > 0 && v < 0x80) {
				strbuf_addch(&sb, (char)v);
				p = e;
				continue;
			}
		}
		strbuf_addch(&sb, *p);
	}
	return strbuf_detach(&sb, NULL);
}

/* Copies an ETag without its quotes. */
static void s3_etag_copy(char *dst, size_t size, const char *src)
{
	size_t n;

	while (*src == '"' || *src == ' ')
		src++;
	n = strcspn(src, "\"");
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static time_t s3_parse_iso8601(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return timegm(&tm);
}

/* ---- credentials ---- */

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Reads [profile] of an AWS shared credentials file into c. The file
 * holds a secret: refused if others may read it or anyone but its owner
 * (and group) may write it. */
static int read_credentials(struct s3_client *c, const char *path,
			    const char *profile)
{
	char line[4096], *token = NULL;
	bool in = false, found = false;
	struct stat st;
	FILE *f;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return log_err(-errno, "s3: cannot open credentials file '%s'",
			       path);
	if (fstat(fd, &st) < 0) {
		r = log_err(-errno, "s3: cannot stat credentials file '%s'",
			    path);
		close(fd);
		return r;
	}
	if (st.st_mode & (S_IRWXO | S_IWGRP)) {
		close(fd);
		log_msg(LOG_LVL_ERROR, "s3: credentials file '%s' is open to "
			"others (mode %04o): chmod 600 it", path,
			(unsigned)(st.st_mode & 07777));
		return -EACCES;
	}
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	while (fgets(line, sizeof(line), f)) {
		char *s = trim(line), *eq, *k, *v, **dst = NULL;

		if (*s == '#' || *s == ';' || *s == '\0')
			continue;
		if (*s == '[') {
			char *e = strchr(s, ']');

			if (e)
				*e = '\0';
			s = trim(s + 1);
			if (!strncmp(s, "profile ", 8))
				s = trim(s + 8);
			in = !strcmp(s, profile);
			found |= in;
			continue;
		}
		eq = strchr(s, '=');
		if (!in || !eq)
			continue;
		*eq = '\0';
		k = trim(s);
		v = trim(eq + 1);
		if (!strcmp(k, "aws_access_key_id"))
			dst = &c->access;
		else if (!strcmp(k, "aws_secret_access_key"))
			dst = &c->secret;
		else if (!strcmp(k, "aws_session_token"))
			dst = &token;
		if (dst) {
			free(*dst);
			*dst = strdup(v);
			if (!*dst)
				r = -ENOMEM;
		}
	}
	fclose(f);
	if (!r && token && asprintf(&c->token_hdr, "x-amz-security-token: %s",
				    token) < 0) {
		c->token_hdr = NULL;
		r = -ENOMEM;
	}
	explicit_bzero(line, sizeof(line));
	free(token);
	if (r)
		return r;
	if (!found)
		return log_err(-EINVAL, "s3: credentials file '%s' has no "
			       "[%s] section", path, profile);
	if (!c->access || !c->secret || !*c->access || !*c->secret)
		return log_err(-EINVAL, "s3: credentials file '%s': [%s] needs "
			       "aws_access_key_id and aws_secret_access_key",
			       path, profile);
	return 0;
}

static int env_credentials(struct s3_client *c)
{
	const char *a = getenv("AWS_ACCESS_KEY_ID");
	const char *s = getenv("AWS_SECRET_ACCESS_KEY");
	const char *t = getenv("AWS_SESSION_TOKEN");

	if (!a || !*a || !s || !*s)
		return log_err(-EINVAL, "s3: no credentials: set "
			       "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
			       "or name a credentials file");
	c->access = strdup(a);
	c->secret = strdup(s);
	if (t && *t && asprintf(&c->token_hdr, "x-amz-security-token: %s",
				t) < 0)
		c->token_hdr = NULL;
	if (!c->access || !c->secret || (t && *t && !c->token_hdr))
		return -ENOMEM;
	return 0;
}

/* ---- the bucket's URL ---- */

static bool bucket_ok(const char *b, bool path_style)
{
	size_t n = strlen(b), i;

	if (n == 0 || n > 255 || (!path_style && (n < 3 || n > 63)))
		return false;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)b[i];

		if (path_style ? !(isalnum(ch) || strchr("._-", ch)) :
				 !(islower(ch) || isdigit(ch) ||
				   strchr(".-", ch)))
			return false;
	}
	return true;
}

static int make_prefix(struct s3_client *c, const struct s3_config *cfg)
{
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	char *query = NULL, *user = NULL;
	struct strbuf sb;
	CURLU *u;
	int r = -EINVAL;

	u = curl_url();
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, cfg->endpoint, 0) ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0)) {
		log_msg(LOG_LVL_ERROR, "s3: endpoint '%s' is not a URL",
			cfg->endpoint);
		goto out;
	}
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	curl_url_get(u, CURLUPART_USER, &user, 0);
	if ((strcmp(scheme, "http") && strcmp(scheme, "https")) || query ||
	    user || (path && strcmp(path, "/") && strcmp(path, ""))) {
		log_msg(LOG_LVL_ERROR, "s3: endpoint '%s': want "
			"http[s]://host[:port] and nothing more",
			cfg->endpoint);
		goto out;
	}
	if (!bucket_ok(cfg->bucket, cfg->path_style)) {
		log_msg(LOG_LVL_ERROR, "s3: bad bucket name '%s'%s",
			cfg->bucket, cfg->path_style ? "" :
			" (virtual-host style needs 3 to 63 of a-z 0-9 . -)");
		goto out;
	}
	if (!cfg->path_style && (host[0] == '[' ||
				 strspn(host, "0123456789.") == strlen(host))) {
		log_msg(LOG_LVL_ERROR, "s3: endpoint '%s': virtual-host style "
			"needs a host name, not an address (or set path style)",
			cfg->endpoint);
		goto out;
	}
	strbuf_init(&sb);
	strbuf_addf(&sb, "%s://", scheme);
	if (!cfg->path_style)
		strbuf_addf(&sb, "%s.", cfg->bucket);
	strbuf_adds(&sb, host);
	if (port)
		strbuf_addf(&sb, ":%s", port);
	strbuf_addch(&sb, '/');
	if (cfg->path_style)
		strbuf_addf(&sb, "%s/", cfg->bucket);
	c->prefix = strbuf_detach(&sb, NULL);
	r = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_free(user);
	curl_url_cleanup(u);
	return r;
}

/* ---- ops ---- */

static void s3_op_free(struct s3_op *op)
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

static void s3_op_header(struct s3_op *op, const char *h)
{
	struct curl_slist *l = curl_slist_append(op->hdrs, h);

	if (!l)
		abort();	/* as strbuf: small, and nothing better to do */
	op->hdrs = l;
}

/* A new op on key (NULL: the bucket) with query (canonical, or NULL). */
static struct s3_op *s3_op_new(struct s3_client *c, enum verb verb,
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
static void s3_op_body(struct s3_op *op, const void *buf, size_t len,
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

static void op_complete(struct s3_client *c, struct s3_op *op, ssize_t r)
{
	/* Callers probe with GET and HEAD: a missing key is no news. */
	if (r < 0 && !op->quiet && !(r == -ENOENT && op->verb != V_PUT &&
				     op->verb != V_POST))
		log_err((int)r, "s3: %s: %s, %u attempt%s", op->what, op->why,
			op->attempt, op->attempt == 1 ? "" : "s");
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

static void *s3_worker_main(void *arg)
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
static void s3_op_submit(struct s3_client *c, struct s3_op *op)
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

static ssize_t s3_op_run(struct s3_op *op)
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
static void s3_op_done_now(struct s3_op *op, ssize_t r)
{
	struct s3_client *c = op->c;

	pthread_mutex_lock(&c->lock);
	c->outstanding++;
	op->result = r;
	op->done = true;
	pthread_mutex_unlock(&c->lock);
}

/* ---- the client ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void client_free(struct s3_client *c)
{
	unsigned i;

	if (c->multi)
		curl_multi_cleanup(c->multi);
	for (i = 0; i < c->nidle; i++)
		curl_easy_cleanup(c->idle[i]);
	free(c->idle);
	free(c->prefix);
	free(c->bucket);
	free(c->sigv4);
	if (c->secret)
		explicit_bzero(c->secret, strlen(c->secret));
	free(c->access);
	free(c->secret);
	free(c->token_hdr);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

int s3_open(const struct s3_config *cfg, struct s3_client **ret)
{
	const char *region;
	pthread_condattr_t ca;
	struct s3_client *c;
	int r;

	if (!cfg || !ret)
		return -EINVAL;
	if (!cfg->endpoint || !*cfg->endpoint || !cfg->bucket ||
	    !*cfg->bucket)
		return log_err(-EINVAL, "s3: the endpoint and the bucket are "
			       "required");
	region = cfg->region && *cfg->region ? cfg->region : "us-east-1";
	if (strpbrk(region, ": /"))
		return log_err(-EINVAL, "s3: bad region '%s'", region);
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_result != CURLE_OK)
		return log_err(-EIO, "s3: cannot start libcurl: %s",
			       curl_easy_strerror(curl_init_result));
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	c->queue_tail = &c->queue;
	c->max_inflight = cfg->max_inflight ? cfg->max_inflight : 8;
	c->queue_max = 4 * c->max_inflight;
	c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000;
	c->connect_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms :
			3000;
	c->stall_s = ((cfg->stall_ms ? cfg->stall_ms : 10000) + 999) / 1000;
	c->attempts = cfg->attempts ? cfg->attempts : 6;
	c->payload = cfg->payload;
	c->rnd = s3_now_ms() ^ (uintptr_t)c ^ 0x9e3779b97f4a7c15ull;
	if (c->payload > S3_PAYLOAD_UNSIGNED) {
		r = log_err(-EINVAL, "s3: bad payload mode %d", cfg->payload);
		goto fail;
	}
	r = make_prefix(c, cfg);
	if (r)
		goto fail;
	c->bucket = strdup(cfg->bucket);
	if (asprintf(&c->sigv4, "aws:amz:%s:s3", region) < 0)
		c->sigv4 = NULL;
	c->idle = calloc(c->max_inflight, sizeof(*c->idle));
	c->multi = curl_multi_init();
	if (!c->bucket || !c->sigv4 || !c->idle || !c->multi) {
		r = -ENOMEM;
		goto fail;
	}
	curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
			  (long)c->max_inflight);
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS,
			  (long)c->max_inflight);
	r = cfg->credentials ? read_credentials(c, cfg->credentials,
						cfg->profile ? cfg->profile :
						"default") :
			       env_credentials(c);
	if (r)
		goto fail;
	r = -pthread_create(&c->worker, NULL, s3_worker_main, c);
	if (r) {
		log_err(r, "s3: cannot start its thread");
		goto fail;
	}
	*ret = c;
	return 0;
fail:
	client_free(c);
	return r;
}

void s3_close(struct s3_client *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->outstanding)
		log_msg(LOG_LVL_WARN, "s3: closed with %u request(s) not "
			"waited for", c->outstanding);
	c->stopping = true;
	pthread_mutex_unlock(&c->lock);
	curl_multi_wakeup(c->multi);
	pthread_join(c->worker, NULL);
	client_free(c);
}

int s3_check(struct s3_client *c)
{
	struct s3_op *op;
	const char *hint;
	int r;

	if (!c)
		return -EINVAL;
	op = s3_op_new(c, V_GET, NULL, "list-type=2&max-keys=1");
	if (!op)
		return -ENOMEM;
	op->quiet = true;
	r = (int)s3_op_run(op);
	if (r == 0) {
		s3_op_free(op);
		return 0;
	}
	if (!strcmp(op->code, "InvalidAccessKeyId"))
		hint = "unknown access key";
	else if (!strcmp(op->code, "SignatureDoesNotMatch"))
		hint = "wrong secret key";
	else if (!strcmp(op->code, "RequestTimeTooSkewed"))
		hint = "this host's clock is wrong";
	else if (r == -EACCES)
		hint = "access denied";
	else if (r == -ENOENT)
		hint = "no such bucket";
	else if (!op->status)
		hint = "cannot reach the endpoint";
	else
		hint = "the store refused the request";
	log_err(r, "s3: bucket '%s' at '%s': %s (%s)", c->bucket, c->prefix,
		hint, op->why);
	s3_op_free(op);
	return r;
}

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
