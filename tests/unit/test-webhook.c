/* test-webhook.c — hook URLs (core/webhook/): the URL rule, the shown URL,
 * delivery ids, the MLflow signature (against vectors Python's hmac
 * computed, fixed here and again at run time), and deliveries to a small
 * HTTP server on loopback that answers what each test scripts: retries on
 * 5xx and 429 with the same delivery id and a fresh signature, none on
 * another 4xx, attempts and the deadline bounding them. */
#include "webhook/webhook.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "util.h"

static void test_url_rule(void)
{
	static const char *const good[] = {
		"https://example.com/hook",
		"https://hooks.example.com:8443/a/b?token=x&y=1#frag",
		"HTTPS://Example.COM",
		"https://[2001:db8::1]:443/x",
		"https://ci_runner.internal/x",
		"http://127.0.0.1:9/x",
		"http://127.5.6.7/",
		"http://[::1]:8080/relay",
	};
	static const struct { const char *url, *why; } bad[] = {
		{ "http://example.com/hook", "loopback address only" },
		{ "http://10.0.0.1/x", "loopback address only" },
		{ "http://localhost:8080/", "loopback address only" },
		{ "http://128.0.0.1/", "loopback address only" },
		{ "http://[::2]/", "loopback address only" },
		{ "http://127.1/", "loopback address only" },
		{ "ftp://example.com/x", "not ftp://" },
		{ "https://user:pw@example.com/", "no user or password" },
		{ "https://", "no host" },
		{ "https:///path", "no host" },
		{ "https://example.com:0/", "invalid port" },
		{ "https://example.com:99999/", "invalid port" },
		{ "https://example.com:/", "invalid port" },
		{ "https://example.com:8a/", "invalid port" },
		{ "https://ex ample.com/", "no blank" },
		{ "https://example.com/\x01", "control" },
		{ "https://[::1/", "no ']'" },
		{ "https://[zz::1]/", "invalid IPv6" },
		{ "https://exa%6dple.com/", "invalid host" },
		{ "", "no URL" },
	};
	char why[256], big[1100];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(webhook_is_url(good[i]) &&
		      webhook_url_check(good[i], why, sizeof(why)) == 0,
		      "'%s' is a hook URL (%s)", good[i], why);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = webhook_url_check(bad[i].url, why, sizeof(why));

		CHECK(r == -EINVAL && strstr(why, bad[i].why),
		      "'%s' is refused: %s", bad[i].url, why);
	}
	memcpy(big, "https://example.com/", 20);
	memset(big + 20, 'a', sizeof(big) - 21);
	big[sizeof(big) - 1] = '\0';
	CHECK(webhook_url_check(big, why, sizeof(why)) == -EINVAL &&
	      strstr(why, "at most 1023"), "a URL over 1023 bytes: %s", why);
	big[WEBHOOK_URL_MAX] = '\0';
	CHECK(webhook_url_check(big, NULL, 0) == 0,
	      "one of 1023 bytes is fine (why may be NULL)");
	CHECK(webhook_is_url("ftp://x") && webhook_is_url("git+ssh://x") &&
	      !webhook_is_url("/usr/bin/hook") && !webhook_is_url("hook") &&
	      !webhook_is_url("https:/x") && !webhook_is_url("://x") &&
	      !webhook_is_url(NULL) && !webhook_is_url("/a://b"),
	      "webhook_is_url: SCHEME:// only");
}

static void test_shown(void)
{
	char buf[64];

	CHECK(!strcmp(webhook_url_shown("https://h/p?token=secret#f", buf,
					sizeof(buf)), "https://h/p"),
	      "the shown URL has no query string: %s", buf);
	CHECK(!strcmp(webhook_url_shown("https://h/p#f?x", buf, sizeof(buf)),
		      "https://h/p"), "nor a fragment: %s", buf);
	CHECK(!strcmp(webhook_url_shown("https://h:1/a/b", buf, sizeof(buf)),
		      "https://h:1/a/b"), "a URL without either stays whole");
	CHECK(!strcmp(webhook_url_shown("https://host/long", buf, 11),
		      "https://ho"), "cut to the buffer");
}

static void test_ids(void)
{
	char a[WEBHOOK_ID_LEN], b[WEBHOOK_ID_LEN];
	size_t i;
	bool form = true;

	CHECK(webhook_new_id(a) == 0 && webhook_new_id(b) == 0, "two ids");
	for (i = 0; i < 36; i++)
		form &= (i == 8 || i == 13 || i == 18 || i == 23) ?
			a[i] == '-' : strchr("0123456789abcdef", a[i]) != NULL;
	CHECK(form && strlen(a) == 36 && a[14] == '4' && strchr("89ab", a[19]),
	      "a random UUID (version 4, RFC 4122 variant): %s", a);
	CHECK(strcmp(a, b) != 0, "two ids differ");
}

/* The signature of Python's hmac, base64 and "v1," (MLflow's
 * _generate_hmac_signature()), computed with
 *   /usr/bin/python3 -c 'import hmac,hashlib,base64; print("v1," +
 *     base64.b64encode(hmac.new(KEY, ID + b"." + TS + b"." + BODY,
 *     hashlib.sha256).digest()).decode())' */
static void test_sign_vectors(void)
{
	static const struct {
		const char *key;
		size_t keylen;
		const char *id, *ts, *body, *sig;
	} v[] = {
		{ "test_webhook_secret", 19,
		  "3f2c1a9e-7b4d-4e8f-9a6b-2c5d8e1f0a3b", "1700000000",
		  "{\"event\":\"register\",\"model\":\"m\"}",
		  "v1,XZO+2MlcwP+0PicWYjokbBNu4iBuJ06Z3msIjXYttZ4=" },
		/* RFC 4231 case 2's key and words, cut at the dots */
		{ "Jefe", 4, "what do ya want", "for", "nothing?",
		  "v1,jV0+bHlE9kBGGHaX+RN26Jz11KW4GqkKHhB/I9KzxI0=" },
	};
	char sig[WEBHOOK_SIG_LEN], key[131];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		CHECK(webhook_sign(v[i].key, v[i].keylen, v[i].id, v[i].ts,
				   v[i].body, strlen(v[i].body), sig) == 0 &&
		      !strcmp(sig, v[i].sig), "vector %zu: %s", i, sig);
	}
	/* a key longer than SHA-256's block is hashed first (RFC 2104) */
	memset(key, 0x0b, sizeof(key));
	CHECK(webhook_sign(key, sizeof(key), "", "", NULL, 0, sig) == 0 &&
	      !strcmp(sig, "v1,rAWtno0dGkD/J37GzT8+Vvo00/sUPVtRFt8yFIrW/4I="),
	      "a 131-byte key, empty id, time and body: %s", sig);
	CHECK(webhook_sign("", 0, "i", "t", "b", 1, sig) == -EINVAL,
	      "an empty key is refused");
}

static void hex(const void *p, size_t n, char *out)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = '\0';
}

/* The same, against Python's hmac at run time, on random inputs. */
static void test_sign_python(void)
{
	static const char prog[] =
		"import sys,hmac,hashlib,base64\n"
		"k,i,t,b=(bytes.fromhex(a) for a in sys.argv[1:5])\n"
		"print('v1,'+base64.b64encode(hmac.new(k,i+b'.'+t+b'.'+b,"
		"hashlib.sha256).digest()).decode())\n";
	unsigned char key[40], body[300];
	char hk[81], hi[80], ht[40], hb[601], cmd[1200], id[WEBHOOK_ID_LEN];
	char ts[24], want[80], sig[WEBHOOK_SIG_LEN], *nl;
	int n, ok = 0, runs = 4;
	FILE *f;

	if (access("/usr/bin/python3", X_OK) != 0) {
		CHECK(1, "against Python # SKIP no /usr/bin/python3");
		return;
	}
	for (n = 0; n < runs; n++) {
		if (getrandom(key, sizeof(key), 0) != sizeof(key) ||
		    getrandom(body, sizeof(body), 0) != sizeof(body) ||
		    webhook_new_id(id) < 0)
			break;
		snprintf(ts, sizeof(ts), "%d", 1700000000 + n);
		hex(key, 1 + (size_t)n * 13, hk);
		hex(id, strlen(id), hi);
		hex(ts, strlen(ts), ht);
		hex(body, (size_t)n * 97, hb);
		snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -c \"%s\" %s %s %s "
			 "'%s'", prog, hk, hi, ht, hb);
		f = popen(cmd, "r");
		if (!f)
			break;
		want[0] = '\0';
		if (!fgets(want, sizeof(want), f))
			want[0] = '\0';
		pclose(f);
		if ((nl = strchr(want, '\n')))
			*nl = '\0';
		if (webhook_sign(key, 1 + (size_t)n * 13, id, ts, body,
				 (size_t)n * 97, sig) == 0 && !strcmp(sig, want))
			ok++;
		else
			printf("# got %s, Python %s\n", sig, want);
	}
	CHECK(ok == runs, "%d random keys, ids and bodies: the signature "
	      "Python's hmac computes", ok);
}

/* ---- a scripted HTTP server on loopback ---------------------------------- */

#define SRV_MAX 8

struct srv {
	int fd, port;
	const int *status;        /* the answers, one per connection */
	int n;
	char req[SRV_MAX][4096];  /* what came */
	pthread_t thread;
};

/* Reads one request (headers and a Content-Length body) into buf. */
static void srv_read(int c, char *buf, size_t size)
{
	size_t used = 0, need = 0;
	char *end;
	ssize_t r;

	while (used < size - 1) {
		r = read(c, buf + used, size - 1 - used);
		if (r <= 0)
			break;
		used += (size_t)r;
		buf[used] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end && !need) {
			char *cl = strcasestr(buf, "\r\nContent-Length:");

			need = (size_t)(end + 4 - buf) +
			       (cl ? strtoul(cl + 17, NULL, 10) : 0);
		}
		if (need && used >= need)
			break;
	}
	buf[used] = '\0';
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	char out[128];
	int i, c;

	for (i = 0; i < s->n; i++) {
		c = accept(s->fd, NULL, NULL);
		if (c < 0)
			break;
		srv_read(c, s->req[i], sizeof(s->req[i]));
		snprintf(out, sizeof(out), "HTTP/1.1 %d Scripted\r\n"
			 "Content-Length: 4\r\nConnection: close\r\n\r\nnope",
			 s->status[i]);
		if (write(c, out, strlen(out)) < 0)
			perror("write");
		close(c);
	}
	return NULL;
}

/* A listening socket on 127.0.0.1 (port 0: any); its port. */
static int listen_loopback(int *ret_port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(fd, 8) < 0 || getsockname(fd, (struct sockaddr *)&a,
					     &len) < 0)
		abort();
	*ret_port = ntohs(a.sin_port);
	return fd;
}

static void srv_start(struct srv *s, const int *status, int n)
{
	memset(s, 0, sizeof(*s));
	s->status = status;
	s->n = n;
	s->fd = listen_loopback(&s->port);
	if (pthread_create(&s->thread, NULL, srv_main, s))
		abort();
}

static void srv_stop(struct srv *s)
{
	pthread_join(s->thread, NULL);
	close(s->fd);
}

/* The value of header name in request req, into buf. */
static const char *header(const char *req, const char *name, char *buf,
			  size_t size)
{
	char pat[64];
	const char *p;
	size_t n;

	snprintf(pat, sizeof(pat), "\r\n%s: ", name);
	p = strcasestr(req, pat);
	buf[0] = '\0';
	if (!p)
		return buf;
	p += strlen(pat);
	n = strcspn(p, "\r\n");
	if (n >= size)
		n = size - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

static const char SECRET[] = "s3cr3t";
static const char BODY[] = "{\"event\":\"promote\",\"model\":\"m\"}";

static void req_init(struct webhook_req *q, char *url, size_t size, int port,
		     const char *id, unsigned attempts, unsigned backoff_ms)
{
	snprintf(url, size, "http://127.0.0.1:%d/hook?token=t", port);
	*q = (struct webhook_req){ .url = url, .secret = SECRET,
		.secret_len = strlen(SECRET), .id = id, .body = BODY,
		.body_len = strlen(BODY), .attempts = attempts,
		.attempt_ms = 5000, .backoff_ms = backoff_ms,
		.deadline_ns = mono_ns() + 30000000000LL };
}

/* Whether request req is the delivery: a POST to /hook?token=t with the
 * body, signed with the secret for its id and time. */
static bool req_signed(const char *req, const char *id)
{
	char hid[64], ts[32], sig[80], want[WEBHOOK_SIG_LEN], ct[64];
	const char *body = strstr(req, "\r\n\r\n");

	header(req, "X-MLflow-Delivery-Id", hid, sizeof(hid));
	header(req, "X-MLflow-Timestamp", ts, sizeof(ts));
	header(req, "X-MLflow-Signature", sig, sizeof(sig));
	header(req, "Content-Type", ct, sizeof(ct));
	return !strncmp(req, "POST /hook?token=t HTTP/1.1\r\n", 29) &&
	       body && !strcmp(body + 4, BODY) && !strcmp(hid, id) &&
	       ts[0] && strspn(ts, "0123456789") == strlen(ts) &&
	       !strcmp(ct, "application/json") &&
	       webhook_sign(SECRET, strlen(SECRET), id, ts, BODY,
			    strlen(BODY), want) == 0 && !strcmp(sig, want);
}

static void test_post_retries(void)
{
	static const int st[] = { 503, 429, 200 };
	struct webhook_result res;
	struct webhook_req q;
	char url[80], id[WEBHOOK_ID_LEN];
	struct srv s;
	int r, i, good = 0;

	webhook_new_id(id);
	srv_start(&s, st, 3);
	req_init(&q, url, sizeof(url), s.port, id, 4, 10);
	r = webhook_post(&q, &res);
	srv_stop(&s);
	CHECK(r == 0 && res.status == 200 && res.attempts == 3 && !res.why[0],
	      "503, 429, then 200: taken at the third attempt (%d, HTTP %ld, "
	      "%u attempts, '%s')", r, res.status, res.attempts, res.why);
	for (i = 0; i < 3; i++)
		good += req_signed(s.req[i], id);
	CHECK(good == 3, "each attempt a POST with the body, the same "
	      "delivery id and a valid signature (%d of 3)", good);
	if (good != 3)
		printf("# %s\n", s.req[0]);
}

static void test_post_final(void)
{
	static const int st401[] = { 401 }, st503[] = { 503, 503 };
	struct webhook_result res;
	struct webhook_req q;
	char url[80], id[WEBHOOK_ID_LEN] = "id-1";
	struct srv s;
	int r;

	srv_start(&s, st401, 1);
	req_init(&q, url, sizeof(url), s.port, id, 4, 10);
	r = webhook_post(&q, &res);
	srv_stop(&s);
	CHECK(r == -EREMOTEIO && res.status == 401 && res.attempts == 1 &&
	      !strcmp(res.why, "HTTP 401: nope"),
	      "a 401 is final: -EREMOTEIO after one attempt, the answer in "
	      "why (%d, %u, '%s')", r, res.attempts, res.why);

	srv_start(&s, st503, 2);
	req_init(&q, url, sizeof(url), s.port, id, 2, 10);
	r = webhook_post(&q, &res);
	srv_stop(&s);
	CHECK(r == -EAGAIN && res.status == 503 && res.attempts == 2,
	      "503 at every attempt: -EAGAIN once the attempts are used up "
	      "(%d, HTTP %ld, %u)", r, res.status, res.attempts);
}

static void test_post_unreachable(void)
{
	struct webhook_result res;
	struct webhook_req q;
	char url[80];
	int fd, port, r;

	/* a port nobody listens on: connect() is refused at once */
	fd = listen_loopback(&port);
	close(fd);
	req_init(&q, url, sizeof(url), port, "id-2", 3, 10);
	r = webhook_post(&q, &res);
	CHECK(r == -EAGAIN && res.attempts == 3 && res.status == 0 &&
	      strcasestr(res.why, "connect"),
	      "nobody listening: tried 3 times, no status ('%s')", res.why);

	/* a deadline the backoff would pass: no second attempt, no sleep */
	req_init(&q, url, sizeof(url), port, "id-3", 5, 60000);
	q.deadline_ns = mono_ns() + 20000000000LL;
	r = webhook_post(&q, &res);
	CHECK(r == -EAGAIN && res.attempts == 1 && mono_ns() < q.deadline_ns,
	      "a backoff past the deadline ends it after one attempt, "
	      "without waiting for the deadline");
	q.deadline_ns = mono_ns() - 1;
	r = webhook_post(&q, &res);
	CHECK(r == -EAGAIN && res.attempts == 0 && strstr(res.why, "no time"),
	      "a deadline passed: no attempt ('%s')", res.why);
	q.attempts = 0;
	CHECK(webhook_post(&q, &res) == -EINVAL, "0 attempts: -EINVAL");
	q.attempts = 1;
	q.url = "http://example.com/";
	CHECK(webhook_post(&q, &res) == -EINVAL,
	      "a URL the rule refuses: -EINVAL");
}

int main(void)
{
	test_url_rule();
	test_shown();
	test_ids();
	test_sign_vectors();
	test_sign_python();
	test_post_retries();
	test_post_final();
	test_post_unreachable();
	return check_done();
}
