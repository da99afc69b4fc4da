/* client.c — the S3 client of s3.h: requests signed by libcurl, run by
 * one worker thread over a curl multi handle, retried, and mapped to
 * errnos. This file: small helpers, credentials, the bucket's URL, and
 * s3_open/s3_close/s3_check; request.c: ops, signing, the worker,
 * retries and deadlines; object.c: the object calls (put, get, head,
 * delete, list) and multipart uploads. s3-int.h: what they share.
 */
#include "s3-int.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"
#include "util.h"

/* ---- small helpers ---- */

uint64_t s3_now_ms(void)
{
	return (uint64_t)mono_ns() / 1000000;
}

void s3_hex(const unsigned char *p, size_t n, char *out)
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
void s3_add_encoded(struct strbuf *sb, const char *s, bool keep_slash)
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
bool s3_key_ok(const char *key)
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
char *s3_xml_take(UNUSED const char *s, const char *end, const char *tag,
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
void s3_etag_copy(char *dst, size_t size, const char *src)
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

time_t s3_parse_iso8601(const char *s)
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
	hint = s3_op_hint(op, r);
	if (!hint)
		hint = r == -ENOENT ? "no such bucket" :
		       "the store refused the request";
	log_err(r, "s3: bucket '%s' at '%s': %s (%s)", c->bucket, c->prefix,
		hint, op->why);
	s3_op_free(op);
	return r;
}
