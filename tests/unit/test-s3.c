/* test-s3.c — the S3 client against a real radosgw (tests/services/rgw.sh,
 * started here and stopped at the end; MREG_RGW_DIR=DIR uses one already
 * started in DIR instead): round trips, ranges, listing pages, multipart,
 * the errors of wrong credentials and a missing bucket, credentials
 * files, many requests in flight from several threads, and faults — 503,
 * 500, resets, cut and lost answers, corrupted bodies, stalls — through
 * tests/services/faultproxy.py, and radosgw stopped and started again.
 * Skipped, with the reason, where Ceph's packages are not installed.
 */
#include "store/s3/s3.h"

#include "rgw.h"

static struct s3_config base(void)
{
	struct s3_config cfg = {
		.endpoint = endpoint,
		.bucket = getenv("MREG_S3_BUCKET"),
		.region = getenv("MREG_S3_REGION"),
		.path_style = true,
	};

	return cfg;
}

static struct s3_client *open_cfg(const struct s3_config *cfg)
{
	struct s3_client *c = NULL;
	int r = s3_open(cfg, &c);

	if (r) {
		printf("Bail out! s3_open: %s\n", strerror(-r));
		exit(1);
	}
	return c;
}

/* A client through the fault proxy that gives up soon. */
static struct s3_client *open_proxied(unsigned attempts, unsigned timeout_ms,
				      enum s3_payload payload)
{
	struct s3_config cfg = base();
	char *ep;
	struct s3_client *c;

	if (asprintf(&ep, "http://127.0.0.1:%u", proxy_port) < 0)
		abort();
	cfg.endpoint = ep;
	cfg.attempts = attempts;
	cfg.timeout_ms = timeout_ms;
	cfg.stall_ms = 1000;
	cfg.payload = payload;
	c = open_cfg(&cfg);
	free(ep);
	return c;
}

/* Whether key holds exactly the len bytes of seed. */
static bool holds(struct s3_client *c, const char *key, size_t len,
		  uint64_t seed)
{
	char *want = malloc(len + 1), *got = malloc(len + 1);
	ssize_t n;
	bool ok;

	fill(want, len, seed);
	n = s3_get(c, key, 0, len + 1, got);
	ok = n == (ssize_t)len && !memcmp(want, got, len);
	if (!ok)
		printf("#   '%s': got %zd bytes, want %zu\n", key, n, len);
	free(want);
	free(got);
	return ok;
}

static int put_seed(struct s3_client *c, const char *key, size_t len,
		    uint64_t seed)
{
	char *buf = malloc(len ? len : 1);
	int r;

	fill(buf, len, seed);
	r = s3_put(c, key, buf, len);
	free(buf);
	return r;
}

/* ---- the tests ---- */

static void test_config(void)
{
	struct s3_config cfg = base();
	struct s3_client *c = NULL;

	capture();
	cfg.endpoint = NULL;
	CHECK_EQ(s3_open(&cfg, &c), -EINVAL, "no endpoint: -EINVAL");
	cfg = base();
	cfg.endpoint = "ftp://127.0.0.1:1";
	CHECK_EQ(s3_open(&cfg, &c), -EINVAL, "an ftp endpoint: -EINVAL");
	cfg.endpoint = "http://127.0.0.1:1/some/path";
	CHECK_EQ(s3_open(&cfg, &c), -EINVAL, "an endpoint with a path: "
		 "-EINVAL");
	cfg = base();
	cfg.bucket = "a/b";
	CHECK_EQ(s3_open(&cfg, &c), -EINVAL, "a bucket with '/': -EINVAL");
	cfg = base();
	cfg.path_style = false;
	CHECK_EQ(s3_open(&cfg, &c), -EINVAL, "virtual-host style on an IP "
		 "address: -EINVAL");
	CHECK(strstr(logged, "virtual-host style needs a host name"),
	      "... and says why");
	CHECK(c == NULL, "no client made");
	log_set_sink(NULL, NULL);
}

static void test_credentials(void)
{
	char *access = strdup(getenv("AWS_ACCESS_KEY_ID"));
	char *secret = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
	struct s3_config cfg = base();
	struct s3_client *c = NULL;
	char *path;
	FILE *f;
	int r;

	capture();
	unsetenv("AWS_SECRET_ACCESS_KEY");
	CHECK_EQ(s3_open(&cfg, &c), -EINVAL, "no secret in the environment: "
		 "-EINVAL");
	CHECK(strstr(logged, "no credentials"), "... and says so");

	if (asprintf(&path, "%s/creds", tmp) < 0)
		abort();
	f = fopen(path, "w");
	fprintf(f, "# test\n[other]\naws_access_key_id = x\n"
		"aws_secret_access_key = y\n\n[default]\n"
		"aws_access_key_id = %s\naws_secret_access_key=%s\n",
		access, secret);
	fclose(f);
	chmod(path, 0644);
	cfg.credentials = path;
	logged[0] = '\0';
	CHECK_EQ(s3_open(&cfg, &c), -EACCES, "a credentials file others can "
		 "read: -EACCES");
	CHECK(strstr(logged, "is open to others (mode 0644): chmod 600 it") &&
	      lines(logged) == 1, "... in one line that says what to do");
	chmod(path, 0600);
	r = s3_open(&cfg, &c);
	CHECK_EQ(r, 0, "a credentials file of mode 0600, secret not in the "
		 "environment");
	if (!r) {
		CHECK_EQ(s3_check(c), 0, "... and its keys work");
		s3_close(c);
	}
	cfg.profile = "other";
	r = s3_open(&cfg, &c);
	CHECK_EQ(r, 0, "profile [other]");
	if (!r) {
		CHECK_EQ(s3_check(c), -EACCES, "... its unknown key: -EACCES");
		s3_close(c);
	}
	cfg.profile = "missing";
	CHECK_EQ(s3_open(&cfg, &c), -EINVAL, "a profile that is not there: "
		 "-EINVAL");
	cfg.credentials = "/nonexistent/creds";
	cfg.profile = NULL;
	CHECK_EQ(s3_open(&cfg, &c), -ENOENT, "a credentials file that is "
		 "not there: -ENOENT");
	setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
	free(path);
	free(access);
	free(secret);
	log_set_sink(NULL, NULL);
}

static void test_check(void)
{
	char *secret = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
	char *access = strdup(getenv("AWS_ACCESS_KEY_ID"));
	struct s3_config cfg = base();
	struct s3_client *c;
	char buf[16];

	c = open_cfg(&cfg);
	CHECK_EQ(s3_check(c), 0, "check: endpoint, keys and bucket good");
	s3_close(c);

	capture();
	setenv("AWS_SECRET_ACCESS_KEY", "0000wrong0000", 1);
	c = open_cfg(&cfg);
	CHECK_EQ(s3_check(c), -EACCES, "check with a wrong secret: -EACCES");
	CHECK(strstr(logged, "wrong secret key (HTTP 403 "
		     "SignatureDoesNotMatch)") && lines(logged) == 1,
	      "... in one line: %.*s", (int)strcspn(logged, "\n"), logged);
	CHECK_EQ(s3_get(c, "any", 0, sizeof(buf), buf), -EACCES,
		 "a GET with a wrong secret: -EACCES");
	CHECK_EQ(put_seed(c, "any", 10, 1), -EACCES,
		 "a PUT with a wrong secret: -EACCES");
	s3_close(c);
	setenv("AWS_SECRET_ACCESS_KEY", secret, 1);

	logged[0] = '\0';
	setenv("AWS_ACCESS_KEY_ID", "NOSUCHKEY0000", 1);
	c = open_cfg(&cfg);
	CHECK_EQ(s3_check(c), -EACCES, "check with an unknown access key: "
		 "-EACCES");
	CHECK(strstr(logged, "unknown access key"), "... and says so");
	s3_close(c);
	setenv("AWS_ACCESS_KEY_ID", access, 1);

	logged[0] = '\0';
	cfg.bucket = "no-such-bucket";
	c = open_cfg(&cfg);
	CHECK_EQ(s3_check(c), -ENOENT, "check of a missing bucket: -ENOENT");
	CHECK(strstr(logged, "bucket 'no-such-bucket'") &&
	      strstr(logged, "no such bucket") && lines(logged) == 1,
	      "... in one line: %.*s", (int)strcspn(logged, "\n"), logged);
	CHECK_EQ(s3_get(c, "k", 0, sizeof(buf), buf), -ENOENT,
		 "a GET in a missing bucket: -ENOENT");
	s3_close(c);

	logged[0] = '\0';
	cfg = base();
	cfg.endpoint = "http://127.0.0.1:1";
	cfg.attempts = 2;
	c = open_cfg(&cfg);
	CHECK_EQ(s3_check(c), -EIO, "check of an endpoint nobody listens "
		 "on: -EIO");
	CHECK(strstr(logged, "cannot reach the endpoint"), "... and says so");
	s3_close(c);
	log_set_sink(NULL, NULL);
	free(secret);
	free(access);
}

static void test_objects(struct s3_client *c)
{
	static const char *const keys[] = {
		"plain", "dir/sub/file.bin", "a b+c=d&e~f", "caf\xc3\xa9",
		"pct%41", "q?x#y", "<xml>&'\"",
	};
	static const char *const bad[] = {
		"", "/lead", "a//b", "a/./b", "a/../b", "..", "ctl\x01",
		"trail/",
	};
	char buf[256], big[2000];
	struct s3_stat st;
	size_t i;
	int r;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		r = put_seed(c, keys[i], 1000 + i, i);
		CHECK_EQ(r, 0, "PUT '%s'", keys[i]);
		CHECK(holds(c, keys[i], 1000 + i, i), "GET '%s' gives it back",
		      keys[i]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ(put_seed(c, bad[i], 10, 0), -EINVAL,
			 "key '%s' refused: -EINVAL", bad[i]);
	memset(big, 'k', 1025);
	big[1025] = '\0';
	CHECK_EQ(put_seed(c, big, 10, 0), -EINVAL, "a 1025-byte key: -EINVAL");

	fill(big, sizeof(big), 7);
	CHECK_EQ(s3_put(c, "r", big, sizeof(big)), 0, "PUT 2000 bytes");
	CHECK_EQ(s3_get(c, "r", 100, 50, buf), 50, "GET [100, 150): 50 bytes");
	CHECK(!memcmp(buf, big + 100, 50), "... the right ones");
	CHECK_EQ(s3_get(c, "r", 1990, 100, buf), 10, "GET across the end: "
		 "the 10 bytes there are");
	CHECK(!memcmp(buf, big + 1990, 10), "... the right ones");
	CHECK_EQ(s3_get(c, "r", 2000, 10, buf), 0, "GET at the end: 0");
	CHECK_EQ(s3_get(c, "r", 5000, 10, buf), 0, "GET past the end: 0");
	CHECK_EQ(s3_get(c, "r", 0, 0, buf), 0, "GET of 0 bytes: 0");
	CHECK_EQ(s3_get(c, "missing", 0, 10, buf), -ENOENT,
		 "GET of a missing key: -ENOENT");

	CHECK_EQ(s3_put(c, "empty", NULL, 0), 0, "PUT an empty object");
	CHECK_EQ(s3_get(c, "empty", 0, 10, buf), 0, "... GET: 0 bytes");
	r = s3_head(c, "empty", &st);
	CHECK(r == 0 && st.size == 0, "... HEAD: size 0");

	r = s3_head(c, "r", &st);
	CHECK_EQ(r, 0, "HEAD");
	CHECK_EQ(st.size, 2000, "... size");
	CHECK(strlen(st.etag) == 32 && st.mtime > time(NULL) - 3600 &&
	      st.mtime < time(NULL) + 3600, "... an MD5 ETag (%s) and an "
	      "mtime", st.etag);
	CHECK_EQ(s3_head(c, "missing", &st), -ENOENT,
		 "HEAD of a missing key: -ENOENT");
	CHECK_EQ(s3_delete(c, "r"), 0, "DELETE");
	CHECK_EQ(s3_head(c, "r", &st), -ENOENT, "... it is gone");
	CHECK_EQ(s3_delete(c, "r"), 0, "DELETE again: 0 (S3's rule)");

	CHECK_EQ(put_seed(c, "over", 100, 1), 0, "PUT");
	CHECK_EQ(put_seed(c, "over", 50, 2), 0, "PUT over it");
	CHECK(holds(c, "over", 50, 2), "... the second one is there");
}

static void test_payloads(void)
{
	static const char *const name[] = { "md5", "sha256", "unsigned" };
	struct s3_config cfg = base();
	struct s3_client *c;
	unsigned p;

	for (p = S3_PAYLOAD_MD5; p <= S3_PAYLOAD_UNSIGNED; p++) {
		char key[32];

		cfg.payload = (enum s3_payload)p;
		c = open_cfg(&cfg);
		snprintf(key, sizeof(key), "payload-%s", name[p]);
		CHECK_EQ(put_seed(c, key, 3 << 20, p), 0, "PUT 3 MiB, "
			 "payload %s", name[p]);
		CHECK(holds(c, key, 3 << 20, p), "... GET it back");
		s3_close(c);
	}
}

static void test_virtual_host(void)
{
	struct s3_config cfg = base();
	struct s3_client *c;
	char *ep;

	/* radosgw runs with rgw dns name = localhost; curl resolves every
	 * *.localhost to the loopback itself */
	if (asprintf(&ep, "http://localhost:%u", rgw_port) < 0)
		abort();
	cfg.endpoint = ep;
	cfg.path_style = false;
	c = open_cfg(&cfg);
	CHECK_EQ(s3_check(c), 0, "virtual-host style: check");
	CHECK_EQ(put_seed(c, "vhost/k", 5000, 9), 0, "... PUT");
	CHECK(holds(c, "vhost/k", 5000, 9), "... GET");
	s3_close(c);
	cfg.path_style = true;
	c = open_cfg(&cfg);
	CHECK(holds(c, "vhost/k", 5000, 9), "... the same object path-style");
	s3_close(c);
	free(ep);
}

static void test_list(struct s3_client *c)
{
	struct s3_list l;
	char *token = NULL, key[64];
	unsigned i, pages = 0, seen = 0;
	bool order = true, sizes = true;
	int r;

	for (i = 0; i < 25; i++) {
		snprintf(key, sizeof(key), "list/k%02u", i);
		if (put_seed(c, key, i, i))
			break;
	}
	CHECK_EQ(i, 25, "PUT 25 keys under list/");
	put_seed(c, "listx", 1, 1);
	do {
		r = s3_list(c, "list/", token, 10, &l);
		if (r)
			break;
		pages++;
		for (i = 0; i < l.n; i++, seen++) {
			snprintf(key, sizeof(key), "list/k%02u", seen);
			order &= !strcmp(l.v[i].key, key);
			sizes &= l.v[i].size == seen && l.v[i].mtime > 0 &&
				 strlen(l.v[i].etag) == 32;
		}
		free(token);
		token = l.next ? strdup(l.next) : NULL;
		s3_list_release(&l);
	} while (token);
	CHECK_EQ(r, 0, "LIST in pages of 10");
	CHECK_EQ(pages, 3, "... 3 pages");
	CHECK_EQ(seen, 25, "... 25 keys, not the one beside the prefix");
	CHECK(order && sizes, "... in order, with sizes, mtimes and ETags");
	r = s3_list(c, "nothing-here/", NULL, 0, &l);
	CHECK(r == 0 && l.n == 0 && !l.next, "LIST of an empty prefix");
	s3_list_release(&l);
	r = s3_list(c, "a b+c", NULL, 0, &l);
	CHECK(r == 0 && l.n == 1 && !strcmp(l.v[0].key, "a b+c=d&e~f"),
	      "LIST with a prefix that needs encoding");
	s3_list_release(&l);
	r = s3_list(c, "<xml", NULL, 0, &l);
	CHECK(r == 0 && l.n == 1 && !strcmp(l.v[0].key, "<xml>&'\""),
	      "LIST decodes XML entities in keys");
	s3_list_release(&l);
	CHECK_EQ(s3_list(c, "", NULL, 1001, &l), -EINVAL,
		 "LIST of more than 1000: -EINVAL");
}

#define PART (5u << 20)

static void test_multipart(struct s3_client *c)
{
	size_t total = 2 * PART + 1000;
	char *buf = malloc(total), *back = malloc(total);
	struct s3_op *op[3];
	struct s3_upload *u;
	struct s3_stat st;
	int r;

	fill(buf, total, 42);
	/* a bucket used before (MREG_RGW_DIR) may hold them */
	s3_delete(c, "mpu/big");
	s3_delete(c, "mpu/small");
	s3_delete(c, "mpu/aborted");
	r = s3_mpu_create(c, "mpu/big", &u);
	CHECK_EQ(r, 0, "multipart: create");
	if (r)
		goto out;
	/* out of order, all in flight at once */
	CHECK(!s3_mpu_put_start(u, 3, buf + 2 * PART, 1000, &op[2]) &&
	      !s3_mpu_put_start(u, 1, buf, PART, &op[0]) &&
	      !s3_mpu_put_start(u, 2, buf + PART, PART, &op[1]),
	      "... three parts started");
	r = (int)s3_op_wait(op[0]) | (int)s3_op_wait(op[1]) |
	    (int)s3_op_wait(op[2]);
	CHECK_EQ(r, 0, "... uploaded (5 MiB, 5 MiB, 1000 bytes)");
	CHECK_EQ(s3_head(c, "mpu/big", &st), -ENOENT,
		 "... nothing visible before complete");
	CHECK_EQ(s3_mpu_complete(u), 0, "... complete");
	r = (int)s3_get(c, "mpu/big", 0, total, back);
	CHECK(r == (int)total && !memcmp(buf, back, total),
	      "... GET gives the whole object back");
	r = (int)s3_get(c, "mpu/big", PART - 10, 20, back);
	CHECK(r == 20 && !memcmp(buf + PART - 10, back, 20),
	      "... a range across parts");
	CHECK(s3_head(c, "mpu/big", &st) == 0 && st.size == total &&
	      strstr(st.etag, "-3"), "... HEAD: the size, an ETag of 3 parts "
	      "(%s)", st.etag);

	capture();
	r = s3_mpu_create(c, "mpu/gap", &u);
	if (!r) {
		s3_mpu_put(u, 1, buf, PART);
		s3_mpu_put(u, 3, buf, 1000);
		r = s3_mpu_complete(u);
	}
	CHECK_EQ(r, -EINVAL, "complete with a gap in the parts: -EINVAL");
	CHECK(strstr(logged, "the parts have a gap"), "... and says so");

	r = s3_mpu_create(c, "mpu/small", &u);
	if (!r) {
		s3_mpu_put(u, 1, buf, 1000);
		s3_mpu_put(u, 2, buf, 1000);
		r = s3_mpu_complete(u);
	}
	CHECK_EQ(r, -EINVAL, "complete with a first part under 5 MiB: "
		 "-EINVAL (EntityTooSmall)");
	CHECK(strstr(logged, "EntityTooSmall"), "... and names the code");
	CHECK_EQ(s3_head(c, "mpu/small", &st), -ENOENT, "... no object");
	log_set_sink(NULL, NULL);

	r = s3_mpu_create(c, "mpu/aborted", &u);
	if (!r) {
		s3_mpu_put(u, 1, buf, 1000);
		r = s3_mpu_abort(u);
	}
	CHECK_EQ(r, 0, "abort");
	CHECK_EQ(s3_head(c, "mpu/aborted", &st), -ENOENT, "... no object");

	r = s3_mpu_create(c, "mpu/again", &u);
	if (!r) {
		s3_mpu_put(u, 1, buf + 1, 500);
		s3_mpu_put(u, 1, buf, 1000);
		r = s3_mpu_complete(u);
	}
	CHECK_EQ(r, 0, "a part uploaded twice: the last one counts");
	CHECK(s3_get(c, "mpu/again", 0, 2000, back) == 1000 &&
	      !memcmp(back, buf, 1000), "... its bytes");
	CHECK_EQ(s3_mpu_put(NULL, 1, buf, 1), -EINVAL, "part of no upload: "
		 "-EINVAL");
out:
	free(buf);
	free(back);
}

/* Many GETs in flight from one thread, with a small pool. */
static void test_inflight(void)
{
	struct s3_config cfg = base();
	enum { N = 64, LEN = 100000 };
	struct s3_client *c;
	struct s3_op *op[N];
	char *buf = malloc(LEN), *got = malloc((size_t)N * 1000);
	bool ok = true;
	int i;

	cfg.max_inflight = 4;
	c = open_cfg(&cfg);
	fill(buf, LEN, 5);
	CHECK_EQ(s3_put(c, "inflight", buf, LEN), 0, "PUT 100 kB");
	for (i = 0; i < N; i++)
		ok &= !s3_get_start(c, "inflight", (uint64_t)i * 1500, 1000,
				    got + i * 1000, &op[i]);
	for (i = 0; i < N; i++) {
		ssize_t n = s3_op_wait(op[i]);

		ok &= n == 1000 && !memcmp(got + i * 1000, buf + i * 1500,
					   1000);
	}
	CHECK(ok, "64 GETs in flight through 4 connections: all right");
	s3_close(c);
	free(buf);
	free(got);
}

struct worker_arg {
	struct s3_client *c;
	int id;
	bool ok;
};

static void *worker(void *p)
{
	struct worker_arg *a = p;
	char key[32];
	int i;

	a->ok = true;
	for (i = 0; i < 10; i++) {
		size_t len = 20000 + (size_t)i;
		uint64_t seed = (uint64_t)(a->id * 100 + i);

		snprintf(key, sizeof(key), "thr/%d/%d", a->id, i);
		a->ok &= put_seed(a->c, key, len, seed) == 0;
		a->ok &= holds(a->c, key, len, seed);
	}
	return NULL;
}

static int upload_seen(void *arg, const char *key, const char *id,
		       time_t initiated)
{
	char **ret = arg;

	if (!strcmp(key, "cond/mpu") && initiated > 0 && !*ret)
		*ret = strdup(id);
	return 0;
}

/* s3_put_new refuses an existing key; s3_mpu_list and s3_mpu_abort_id
 * find and discard an upload nobody completes. */
static void test_conditional(struct s3_client *c)
{
	struct s3_upload *u;
	char *id = NULL, *again = NULL;
	char buf[8];

	s3_delete(c, "cond/x");
	CHECK_EQ(s3_put_new(c, "cond/x", "first", 5), 0,
		 "put_new: a new key is written");
	CHECK_EQ(s3_put_new(c, "cond/x", "other", 5), -EEXIST,
		 "put_new: an existing key is -EEXIST (412)");
	CHECK(s3_get(c, "cond/x", 0, 5, buf) == 5 && !memcmp(buf, "first", 5),
	      "put_new: ... and keeps its bytes");
	s3_delete(c, "cond/x");
	CHECK(s3_mpu_create(c, "cond/mpu", &u) == 0, "mpu_list: an upload");
	CHECK(s3_mpu_list(c, "cond/", upload_seen, &id) == 0 && id,
	      "mpu_list: finds it, with its id and time");
	CHECK(id && s3_mpu_abort_id(c, "cond/mpu", id) == 0,
	      "mpu_abort_id: discards it");
	CHECK(s3_mpu_list(c, "cond/", upload_seen, &again) == 0 && !again,
	      "mpu_list: ... gone");
	CHECK_EQ(s3_mpu_abort(u), 0, "mpu_abort: of an upload gone is 0");
	free(id);
}

static void test_threads(struct s3_client *c)
{
	struct worker_arg a[4];
	pthread_t t[4];
	bool ok = true;
	int i;

	for (i = 0; i < 4; i++) {
		a[i].c = c;
		a[i].id = i;
		pthread_create(&t[i], NULL, worker, &a[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ok &= a[i].ok;
	}
	CHECK(ok, "4 threads, 10 PUT and GET each, on one client");
}

/* GETs len bytes of f/obj (the bytes of seed 77) with fault armed in the
 * proxy: right bytes, in that many attempts. */
static void get_after(struct s3_client *c, const char *fault, size_t len,
		      int attempts, const char *what)
{
	char *want = malloc(len), *got = malloc(len);
	int before = proxy("count");
	ssize_t n;

	fill(want, len, 77);
	proxy("%s", fault);
	n = s3_get(c, "f/obj", 0, len, got);
	CHECK(n == (ssize_t)len && !memcmp(got, want, len),
	      "%s: the GET is retried and succeeds", what);
	CHECK_EQ(proxy("count") - before, attempts, "... in %d attempts",
		 attempts);
	free(want);
	free(got);
}

static void test_faults(void)
{
	struct s3_client *c;
	struct s3_upload *u;
	char *buf = malloc(2 * PART), *back = malloc(2 * PART);
	ssize_t n;
	double t0;
	int r, before;

	proxy_up();
	c = open_proxied(6, 20000, S3_PAYLOAD_MD5);
	fill(buf, 2 * PART, 77);
	CHECK_EQ(s3_put(c, "f/obj", buf, 300000), 0, "through the proxy: PUT");

	get_after(c, "status 503 2", 300000, 3, "503 SlowDown twice");
	get_after(c, "reset 2", 300000, 3, "connection reset twice");
	get_after(c, "cut 150000 1", 300000, 2, "an answer cut off half-way");

	proxy("status 500 2");
	CHECK_EQ(s3_put(c, "f/obj2", buf, 1000), 0,
		 "500 twice: the PUT is retried and succeeds");
	CHECK(holds(c, "f/obj2", 1000, 77), "... with the right bytes");

	proxy("flip 1");
	CHECK_EQ(s3_put(c, "f/flip", buf, 100000), 0,
		 "a PUT body damaged on the way (Content-MD5): retried");
	CHECK(holds(c, "f/flip", 100000, 77), "... the stored bytes are right");
	s3_close(c);

	c = open_proxied(6, 20000, S3_PAYLOAD_SHA256);
	before = proxy("count");
	proxy("flip 1");
	CHECK_EQ(s3_put(c, "f/flip2", buf, 100000), 0,
		 "a PUT body damaged on the way (signed SHA-256): retried");
	CHECK_EQ(proxy("count") - before, 2, "... once");
	CHECK(holds(c, "f/flip2", 100000, 77), "... the stored bytes are "
	      "right");

	r = s3_mpu_create(c, "f/mpu", &u);
	if (!r)
		r = s3_mpu_put(u, 1, buf, PART);
	if (!r)
		r = s3_mpu_put(u, 2, buf + PART, 1000);
	proxy("lose 1 on=POST");
	if (!r)
		r = s3_mpu_complete(u);
	CHECK_EQ(r, 0, "a CompleteMultipart whose answer is lost: retried "
		 "(radosgw completes it again)");
	CHECK(holds(c, "f/mpu", PART + 1000, 77), "... with the right bytes");

	r = s3_mpu_create(c, "f/mpu2", &u);
	if (!r)
		r = s3_mpu_put(u, 1, buf + 1, PART);
	if (!r)
		r = s3_mpu_put(u, 2, buf + PART, 1000);
	proxy("lose 1 on=POST");
	proxy("status 404 1 on=POST code=NoSuchUpload");
	if (!r)
		r = s3_mpu_complete(u);
	CHECK_EQ(r, 0, "... and when the retry is told NoSuchUpload (as S3 "
		 "may say), the object's ETag shows it was made");
	n = s3_get(c, "f/mpu2", 0, 2 * PART, back);
	CHECK(n == PART + 1000 && !memcmp(back, buf + 1, PART) &&
	      !memcmp(back + PART, buf + PART, 1000), "... with the right "
	      "bytes");
	s3_close(c);

	capture();
	c = open_proxied(3, 20000, S3_PAYLOAD_MD5);
	before = proxy("count");
	proxy("status 503 100");
	CHECK_EQ(s3_get(c, "f/obj", 0, 10, back), -EIO,
		 "503 on every attempt: -EIO");
	CHECK_EQ(proxy("count") - before, 3, "... after the 3 attempts "
		 "configured");
	CHECK(strstr(logged, "HTTP 503 SlowDown, 3 attempts") &&
	      lines(logged) == 1, "... logged in one line: %.*s",
	      (int)strcspn(logged, "\n"), logged);
	proxy("clear");
	s3_close(c);
	log_set_sink(NULL, NULL);

	/* stall_ms is 1 s: a stalled answer is given up and retried */
	c = open_proxied(6, 20000, S3_PAYLOAD_MD5);
	get_after(c, "delay 4000 1", 1000, 2, "an answer stalled for 4 s");
	s3_close(c);

	/* an answer that never comes: the deadline ends it */
	c = open_proxied(100, 2000, S3_PAYLOAD_MD5);
	proxy("delay 60000 100");
	t0 = now_s();
	n = s3_get(c, "f/obj", 0, 1000, back);
	CHECK_EQ(n, -ETIMEDOUT, "no answer at all: -ETIMEDOUT");
	CHECK(now_s() - t0 < 2.0 + 2.0, "... at the 2 s deadline, not later "
	      "(%.1f s)", now_s() - t0);
	proxy("clear");
	s3_close(c);
	free(buf);
	free(back);
}

static void test_outage(void)
{
	struct s3_config cfg = base();
	struct s3_client *c;
	char buf[1000], want[1000];
	ssize_t n;
	double t0;

	cfg.timeout_ms = 3000;
	c = open_cfg(&cfg);
	fill(want, sizeof(want), 3);
	CHECK_EQ(s3_put(c, "outage", want, sizeof(want)), 0, "PUT");
	rgw_kill();
	t0 = now_s();
	n = s3_get(c, "outage", 0, sizeof(buf), buf);
	CHECK(n == -EIO || n == -ETIMEDOUT, "radosgw killed: GET fails with "
	      "-EIO or -ETIMEDOUT (%zd)", n);
	CHECK(now_s() - t0 < 3.0 + 2.0, "... within its 3 s deadline "
	      "(%.1f s)", now_s() - t0);
	n = s3_put(c, "outage2", want, sizeof(want));
	CHECK(n == -EIO || n == -ETIMEDOUT, "... PUT fails too (%zd)", n);
	rgw_start();
	n = s3_get(c, "outage", 0, sizeof(buf), buf);
	CHECK(n == (ssize_t)sizeof(buf) && !memcmp(buf, want, sizeof(buf)),
	      "radosgw back: the same client reads again");
	CHECK_EQ(s3_put(c, "outage2", want, sizeof(want)), 0, "... and writes");
	s3_close(c);
}

int main(void)
{
	struct s3_client *c;
	char why[256];

	if (!rgw_setup("s3", why, sizeof(why))) {
		printf("ok 1 - s3 client # SKIP %s\n", why);
		return 0;
	}
	log_set_level(LOG_LVL_WARN);
	test_config();
	test_credentials();
	test_check();
	c = open_cfg(&(struct s3_config){ .endpoint = endpoint,
		.bucket = getenv("MREG_S3_BUCKET"), .path_style = true });
	test_objects(c);
	test_conditional(c);
	test_list(c);
	test_multipart(c);
	test_threads(c);
	s3_close(c);
	test_payloads();
	test_virtual_host();
	test_inflight();
	test_faults();
	test_outage();
	return check_done();
}
