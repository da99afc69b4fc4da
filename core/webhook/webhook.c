/* webhook.c — hook URLs: their rule, the MLflow-style signature, and a
 * delivery with retries over libcurl (see webhook.h).
 *
 * One easy handle a delivery, on the caller's thread (the hook runner's):
 * a delivery is rare and small, and the runner runs one hook at a time.
 * The signature is made again for each attempt, with the attempt's time;
 * the delivery id stays.
 */
#include "webhook/webhook.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "util.h"

/* Retry-After is taken up to this (a receiver cannot park the runner). */
#define RETRY_AFTER_MAX_S 60
#define BACKOFF_MAX_MS 60000u
/* Bytes of an answer kept for the reason of a failure. */
#define ANSWER_KEEP 160

static int why_set(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Writes the reason into why (when given); returns -EINVAL. */
static int why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* ---- the URL rule ---------------------------------------------------------- */

bool webhook_is_url(const char *s)
{
	size_t n;

	if (!s || !isalpha((unsigned char)s[0]))
		return false;
	n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789+.-");
	return strncmp(s + n, "://", 3) == 0;
}

/* What the rule and the delivery need of a URL. */
struct url_parts {
	bool https;
	bool loopback;            /* 127.0.0.0/8 or [::1] */
};

static int url_parse(const char *url, struct url_parts *ret, char *why,
		     size_t whylen)
{
	const char *auth, *end, *host, *hend, *after;
	char hbuf[256];
	size_t n, len, i;
	bool bracket;

	assert(url && ret);
	len = strlen(url);
	if (len > WEBHOOK_URL_MAX)
		return why_set(why, whylen, "a hook URL is at most %d bytes",
			       WEBHOOK_URL_MAX);
	for (i = 0; i < len; i++)
		if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f)
			return why_set(why, whylen, "a hook URL holds no blank, "
				       "control or non-ASCII character");
	if (!strncasecmp(url, "https://", 8)) {
		ret->https = true;
		auth = url + 8;
	} else if (!strncasecmp(url, "http://", 7)) {
		ret->https = false;
		auth = url + 7;
	} else {
		n = strcspn(url, ":");
		return why_set(why, whylen, "a hook URL is https:// (or "
			       "http:// to a loopback address), not %.*s://",
			       (int)(n > 16 ? 16 : n), url);
	}
	end = auth + strcspn(auth, "/?#");
	if (memchr(auth, '@', (size_t)(end - auth)))
		return why_set(why, whylen, "a hook URL holds no user or "
			       "password (the URL is logged and audited)");
	bracket = *auth == '[';
	if (bracket) {
		host = auth + 1;
		hend = memchr(host, ']', (size_t)(end - host));
		if (!hend)
			return why_set(why, whylen, "no ']' after the IPv6 "
				       "address of the hook URL");
		after = hend + 1;
	} else {
		host = auth;
		hend = memchr(host, ':', (size_t)(end - host));
		if (!hend)
			hend = end;
		after = hend;
	}
	n = (size_t)(hend - host);
	if (n == 0)
		return why_set(why, whylen, "no host in the hook URL");
	if (n >= sizeof(hbuf))
		return why_set(why, whylen, "the host of the hook URL is too "
			       "long");
	memcpy(hbuf, host, n);
	hbuf[n] = '\0';
	if (after < end) {
		const char *p = after + 1;
		size_t d = (size_t)(end - p);
		unsigned long port;

		if (*after != ':' || d == 0 || d > 5 ||
		    strspn(p, "0123456789") < d ||
		    (port = strtoul(p, NULL, 10)) == 0 || port > 65535)
			return why_set(why, whylen, "invalid port in the hook "
				       "URL");
	}
	if (bracket) {
		struct in6_addr a6;

		if (inet_pton(AF_INET6, hbuf, &a6) != 1)
			return why_set(why, whylen, "invalid IPv6 address "
				       "'%s' in the hook URL", hbuf);
		ret->loopback = IN6_IS_ADDR_LOOPBACK(&a6);
	} else {
		struct in_addr a4;

		if (strspn(hbuf, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
			   "OPQRSTUVWXYZ0123456789.-_") != n)
			return why_set(why, whylen, "invalid host '%s' in the "
				       "hook URL", hbuf);
		ret->loopback = inet_pton(AF_INET, hbuf, &a4) == 1 &&
				(ntohl(a4.s_addr) >> 24) == 127;
	}
	/* an event in clear text only where it never leaves the machine */
	if (!ret->https && !ret->loopback)
		return why_set(why, whylen, "http:// is for a loopback address "
			       "only (127.0.0.0/8 or [::1]): use https:// for "
			       "'%s'", hbuf);
	return 0;
}

int webhook_url_check(const char *url, char *why, size_t whylen)
{
	struct url_parts u;

	if (why && whylen)
		why[0] = '\0';
	if (!url || !*url)
		return why_set(why, whylen, "no URL");
	return url_parse(url, &u, why, whylen);
}

const char *webhook_url_shown(const char *url, char *buf, size_t size)
{
	size_t n;

	if (!buf || !size)
		return buf;
	if (!url)
		url = "";
	n = strcspn(url, "?#");
	if (n >= size)
		n = size - 1;
	memcpy(buf, url, n);
	buf[n] = '\0';
	return buf;
}

/* ---- ids and signatures -------------------------------------------------- */

int webhook_new_id(char id[WEBHOOK_ID_LEN])
{
	unsigned char b[16];
	size_t got = 0;
	ssize_t n;

	if (!id)
		return -EINVAL;
	while (got < sizeof(b)) {
		n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(id, WEBHOOK_ID_LEN, "%02x%02x%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
		 b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
	return 0;
}

int webhook_sign(const void *key, size_t keylen, const char *id,
		 const char *timestamp, const void *body, size_t len,
		 char sig[WEBHOOK_SIG_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t il, tl, n;
	char *msg;

	if (!key || !keylen || keylen > INT_MAX || !id || !timestamp ||
	    (!body && len) || !sig)
		return -EINVAL;
	il = strlen(id);
	tl = strlen(timestamp);
	if (len > SIZE_MAX - il - tl - 2)
		return -EINVAL;
	n = il + 1 + tl + 1 + len;
	msg = malloc(n ? n : 1);
	if (!msg)
		return -ENOMEM;
	/* DELIVERY_ID "." TIMESTAMP "." BODY, as MLflow signs it */
	memcpy(msg, id, il);
	msg[il] = '.';
	memcpy(msg + il + 1, timestamp, tl);
	msg[il + 1 + tl] = '.';
	if (len)
		memcpy(msg + il + tl + 2, body, len);
	if (!HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)msg, n, md,
		  &mdlen) || mdlen != 32) {
		free(msg);
		return -EIO;
	}
	free(msg);
	memcpy(sig, "v1,", 3);
	/* 32 bytes: 44 characters of base64 and a NUL */
	EVP_EncodeBlock((unsigned char *)sig + 3, md, 32);
	return 0;
}

/* ---- a delivery ------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The start of an answer's body, for the reason of a failure. */
struct answer {
	char text[ANSWER_KEEP];
	size_t used;
};

static size_t answer_cb(char *p, size_t size, size_t n, void *arg)
{
	struct answer *a = arg;
	size_t i, len = size * n;

	for (i = 0; i < len && a->used < sizeof(a->text) - 1; i++)
		a->text[a->used++] = isprint((unsigned char)p[i]) ? p[i] : ' ';
	a->text[a->used] = '\0';
	return len;
}

/* Failures worth another attempt: the receiver or the way to it may be
 * back in a moment. */
static bool retried(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

/* TLS failures that another attempt would meet again. */
static bool tls_failure(CURLcode c)
{
	switch (c) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
		return true;
	default:
		return false;
	}
}

/* Sleeps ns (in full, whatever signals come). */
static void pause_ns(int64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000),
			       (long)(ns % 1000000000) };

	while (ns > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The headers of one attempt, signed with the time it starts. */
static int attempt_headers(const struct webhook_req *q, struct curl_slist **ret)
{
	char sig[WEBHOOK_SIG_LEN], ts[24], line[6][128];
	struct curl_slist *h = NULL, *n;
	size_t i;
	int r;

	snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
	r = webhook_sign(q->secret, q->secret_len, q->id, ts, q->body,
			 q->body_len, sig);
	if (r < 0)
		return r;
	snprintf(line[0], sizeof(line[0]), "Content-Type: application/json");
	snprintf(line[1], sizeof(line[1]), "X-MLflow-Delivery-Id: %s", q->id);
	snprintf(line[2], sizeof(line[2]), "X-MLflow-Timestamp: %s", ts);
	snprintf(line[3], sizeof(line[3]), "X-MLflow-Signature: %s", sig);
	snprintf(line[4], sizeof(line[4]), "User-Agent: mreg-webhook");
	/* no 100-continue round trip for a small body */
	snprintf(line[5], sizeof(line[5]), "Expect:");
	for (i = 0; i < 6; i++) {
		n = curl_slist_append(h, line[i]);
		if (!n) {
			curl_slist_free_all(h);
			return -ENOMEM;
		}
		h = n;
	}
	*ret = h;
	return 0;
}

static CURL *easy_new(const struct webhook_req *q, const struct url_parts *u,
		      struct answer *a, char *err)
{
	CURL *e = curl_easy_init();

	if (!e)
		return NULL;
	curl_easy_setopt(e, CURLOPT_URL, q->url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, u->https ? "https" : "http");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (q->ca_file) {
		/* that CA, not the system's too */
		curl_easy_setopt(e, CURLOPT_CAINFO, q->ca_file);
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
	}
	/* the machine itself is never reached through a proxy */
	if (u->loopback)
		curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, answer_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
	return e;
}

/* One attempt: 0 (taken), 1 (to try again), or the final -errno; the
 * reason in ret->why, the Retry-After asked for in *retry_after. */
static int attempt(CURL *e, const struct webhook_req *q, struct answer *a,
		   const char *err, struct webhook_result *ret,
		   int64_t *retry_after)
{
	int64_t left = q->deadline_ns - mono_ns();
	long ms = (long)(left / 1000000), status = 0;
	struct curl_slist *h = NULL;
	curl_off_t ra = 0;
	CURLcode cc;
	int r;

	if (ms > (long)q->attempt_ms)
		ms = (long)q->attempt_ms;
	if (ms < 1)
		ms = 1;
	if ((r = attempt_headers(q, &h)) < 0) {
		snprintf(ret->why, sizeof(ret->why), "cannot sign: %s",
			 strerror(-r));
		return r;
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ms);
	a->used = 0;
	a->text[0] = '\0';
	cc = curl_easy_perform(e);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	ret->attempts++;
	ret->status = 0;
	if (cc != CURLE_OK) {
		snprintf(ret->why, sizeof(ret->why), "%s",
			 err[0] ? err : curl_easy_strerror(cc));
		if (tls_failure(cc))
			return -EPROTO;
		return retried(cc) ? 1 : -EIO;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	ret->status = status;
	if (status >= 200 && status < 300) {
		ret->why[0] = '\0';
		return 0;
	}
	snprintf(ret->why, sizeof(ret->why), "HTTP %ld%s%s", status,
		 a->used ? ": " : "", a->text);
	if (status != 429 && status < 500)
		return -EREMOTEIO;
	if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK &&
	    ra > 0)
		*retry_after = (ra > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S :
				(int64_t)ra) * 1000000000;
	return 1;
}

int webhook_post(const struct webhook_req *q, struct webhook_result *ret)
{
	char err[CURL_ERROR_SIZE] = "";
	struct answer a = { .used = 0 };
	struct url_parts u;
	int64_t wait, retry_after;
	unsigned backoff;
	CURL *e;
	int r;

	if (!q || !ret || !q->url || !q->id || !q->body || !q->secret ||
	    !q->secret_len || !q->attempts || url_parse(q->url, &u, NULL, 0) < 0)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_result != CURLE_OK) {
		snprintf(ret->why, sizeof(ret->why), "libcurl: %s",
			 curl_easy_strerror(curl_init_result));
		return -EIO;
	}
	e = easy_new(q, &u, &a, err);
	if (!e) {
		snprintf(ret->why, sizeof(ret->why), "cannot start libcurl");
		return -ENOMEM;
	}
	backoff = q->backoff_ms;
	for (;;) {
		if (mono_ns() >= q->deadline_ns) {
			if (!ret->attempts)
				snprintf(ret->why, sizeof(ret->why), "no time "
					 "left for a first attempt");
			r = -EAGAIN;
			break;
		}
		err[0] = '\0';
		retry_after = 0;
		r = attempt(e, q, &a, err, ret, &retry_after);
		if (r <= 0)
			break;
		r = -EAGAIN;
		if (ret->attempts >= q->attempts)
			break;
		wait = (int64_t)backoff * 1000000;
		if (retry_after > wait)
			wait = retry_after;
		/* another attempt only if it can start in time */
		if (mono_ns() + wait >= q->deadline_ns)
			break;
		pause_ns(wait);
		backoff = backoff > BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS :
							 backoff * 2;
	}
	curl_easy_cleanup(e);
	return r;
}
