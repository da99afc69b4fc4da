/* test-pgindex.c — the PostgreSQL index backend (core/index/pg/) against
 * a real PostgreSQL 15 (tests/services/pg.sh, started here and stopped at
 * the end; MREG_PG_DIR=DIR uses one already started in DIR instead):
 * the schema made, refused when newer; get, put, del, NOOVERWRITE that
 * does not spoil; scans in memcmp-then-length order over many batches;
 * nesting; the callback run again after a forced serialization failure
 * (write skew at COMMIT) with a serial result; the registry's "next
 * version" rule from threads and two processes giving distinct
 * consecutive numbers; a connection killed before and during COMMIT (no
 * write lost or doubled); the server stopped (-ETIMEDOUT, then working
 * again without reopening); the password rules; and the same random
 * operations on the LMDB index and on postgres giving the same scans.
 * Skipped, with the reason, where PostgreSQL is not installed.
 *
 * test-pgindex --bench [SECONDS]: next-version transactions per second
 * with 1 and 8 writers (figures, not a test).
 */
#include "index/backend.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "services.h"

/* ---- the lmdb index, the reference the postgres one must equal ------ */

enum { LM_PUT, LM_PUT_NEW, LM_DEL };

/* A key or value (struct idx_val's fields). */
struct lm_val {
	const void *data;
	size_t len;
};
typedef int lm_scan_fn(void *arg, const struct lm_val *k,
		       const struct lm_val *v);

struct lm_op_arg {
	int kind, table;
	const void *k, *v;
	size_t kl, vl;
	int result;
};

static int lm_op_txn(struct idx_txn *t, void *arg)
{
	struct lm_op_arg *a = arg;

	switch (a->kind) {
	case LM_PUT:
	case LM_PUT_NEW:
		a->result = idx_put(t, (enum idx_table)a->table, a->k, a->kl,
				    a->v, a->vl, a->kind == LM_PUT_NEW ?
				    IDX_NOOVERWRITE : 0);
		break;
	default:
		a->result = idx_del(t, (enum idx_table)a->table, a->k, a->kl);
	}
	return 0;
}

static void *lm_open(const char *dir)
{
	struct idx_db *ix;

	return idx_open(&(struct idx_options){ .path = dir, .sync = false },
			&ix) == 0 ? ix : NULL;
}

static void lm_close(void *h)
{
	idx_close(h);
}

static int lm_op(void *h, int kind, int table, const void *k, size_t kl,
	  const void *v, size_t vl)
{
	struct lm_op_arg a = { kind, table, k, v, kl, vl, 0 };
	int r = idx_write(h, lm_op_txn, &a);

	return r < 0 ? r : a.result;
}

struct lm_scan_arg {
	int table;
	const void *p, *s;
	size_t pl, sl;
	lm_scan_fn *fn;
	void *arg;
	bool last;
};

static int lm_scan_one(void *arg, const struct idx_val *k,
		    const struct idx_val *v)
{
	struct lm_scan_arg *a = arg;

	return a->fn(a->arg, &(struct lm_val){ k->data, k->len },
		     &(struct lm_val){ v->data, v->len });
}

static int lm_scan_txn(struct idx_txn *t, void *arg)
{
	struct lm_scan_arg *a = arg;
	struct idx_val k, v;
	int r;

	if (!a->last)
		return idx_scan(t, (enum idx_table)a->table, a->p, a->pl,
				a->s, a->sl, lm_scan_one, a);
	r = idx_last(t, (enum idx_table)a->table, a->p, a->pl, &k, &v);
	if (r == 0)
		lm_scan_one(a, &k, &v);
	return r;
}

static int lm_scan(void *h, int table, const void *p, size_t pl, const void *s,
	    size_t sl, lm_scan_fn *fn, void *arg)
{
	struct lm_scan_arg a = { table, p, s, pl, sl, fn, arg, false };

	return idx_read(h, lm_scan_txn, &a);
}

static int lm_last(void *h, int table, const void *p, size_t pl, lm_scan_fn *fn,
	    void *arg)
{
	struct lm_scan_arg a = { table, p, NULL, pl, 0, fn, arg, true };

	return idx_read(h, lm_scan_txn, &a);
}

static char *top;		/* the source tree */
static char *tmp;		/* our scratch directory */
static char *pg_dir;		/* the PostgreSQL instance */
static bool pg_ours;		/* started here: stop it at the end */
static PGconn *admin;		/* the test's own connection */
#define ADMIN "application_name=test-admin " \
	"options='-c client_min_messages=warning'"

/* ---- the service ---- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	int st;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		abort();
	va_end(ap);
	st = system(cmd);
	free(cmd);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void cleanup(void)
{
	if (admin) {
		PQfinish(admin);
		admin = NULL;
	}
	if (pg_ours) {
		sh("sh '%s/tests/services/pg.sh' stop '%s'", top, pg_dir);
		pg_ours = false;
	}
	if (tmp) {
		check_rmtree(tmp);
		free(tmp);
		tmp = NULL;
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Starts PostgreSQL (or finds MREG_PG_DIR's); false with the reason in
 * why when it cannot run here. */
static bool services_up(char *why, size_t size)
{
	top = getenv("MREG_TOP");
	if (!top) {
		snprintf(why, size, "MREG_TOP is not set (tests/run.sh sets "
			 "it)");
		return false;
	}
	tmp = check_tmpdir("pgidx");
	if (getenv("MREG_PG_DIR")) {
		pg_dir = getenv("MREG_PG_DIR");
	} else {
		if (!svc_can_run(top, "pg.sh", why, size))
			return false;
		if (asprintf(&pg_dir, "%s/pg", tmp) < 0)
			abort();
		pg_ours = true;
		if (sh("sh '%s/tests/services/pg.sh' start '%s' >/dev/null",
		       top, pg_dir)) {
			printf("Bail out! PostgreSQL does not start\n");
			exit(1);
		}
	}
	if (!svc_load_env(pg_dir, "pg.env") || !getenv("PGPASSWORD")) {
		printf("Bail out! no connection in '%s/pg.env'\n", pg_dir);
		exit(1);
	}
	admin = PQconnectdb(ADMIN);
	if (PQstatus(admin) != CONNECTION_OK) {
		printf("Bail out! cannot connect: %s\n", PQerrorMessage(admin));
		exit(1);
	}
	return true;
}

/* Runs SQL on the admin connection; the first value of the answer (a
 * static buffer), "" for none. */
static const char *sql(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static const char *sql(const char *fmt, ...)
{
	static char out[256];
	PGresult *res;
	va_list ap;
	char *q;

	va_start(ap, fmt);
	if (vasprintf(&q, fmt, ap) < 0)
		abort();
	va_end(ap);
	res = PQexec(admin, q);
	out[0] = '\0';
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0)
		snprintf(out, sizeof(out), "%s", PQgetvalue(res, 0, 0));
	else if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		 PQresultStatus(res) != PGRES_TUPLES_OK)
		printf("# sql '%s': %s", q, PQerrorMessage(admin));
	PQclear(res);
	free(q);
	return out;
}

static void drop_schema(void)
{
	sql("DROP TABLE IF EXISTS mreg_meta, mreg_names, mreg_inodes, "
	    "mreg_extents, mreg_chunks, mreg_xattrs, mreg_history, mreg_audit, "
	    "mreg_trash, mreg_txn, mreg_schema");
}

static struct idx_db *open_pg(unsigned deadline_ms, int *ret)
{
	struct idx_options o = { .backend = "postgres",
				 .conninfo = "application_name=test-pgindex",
				 .deadline_ms = deadline_ms, .sync = true };
	struct idx_db *db = NULL;

	*ret = idx_open(&o, &db);
	return *ret == 0 ? db : NULL;
}

/* ---- callbacks ---- */

/* A list of operations run in one write transaction. */
struct op {
	int kind;		/* LM_PUT, LM_PUT_NEW, LM_DEL */
	enum idx_table tb;
	const char *k, *v;
	int want;
};

struct ops {
	const struct op *ops;
	size_t n;
	int got[16];
	int ret;		/* what the callback returns */
};

static int ops_txn(struct idx_txn *t, void *arg)
{
	struct ops *a = arg;
	const struct op *o;
	size_t i;

	for (i = 0; i < a->n; i++) {
		o = &a->ops[i];
		if (o->kind == LM_DEL)
			a->got[i] = idx_del(t, o->tb, o->k, strlen(o->k));
		else
			a->got[i] = idx_put(t, o->tb, o->k, strlen(o->k), o->v,
					    strlen(o->v), o->kind == LM_PUT_NEW ?
					    IDX_NOOVERWRITE : 0);
	}
	return a->ret;
}

struct getarg {
	enum idx_table tb;
	const char *k;
	char v[64];
	int r;
};

static int get_txn(struct idx_txn *t, void *arg)
{
	struct getarg *a = arg;
	struct idx_val v;

	a->v[0] = '\0';
	a->r = idx_get(t, a->tb, a->k, strlen(a->k), &v);
	if (a->r == 0)
		snprintf(a->v, sizeof(a->v), "%.*s", (int)v.len,
			 (const char *)v.data);
	return 0;
}

/* The value of k in tb, "" when absent (in a static buffer). */
static const char *get(struct idx_db *db, enum idx_table tb, const char *k)
{
	static struct getarg a;

	a = (struct getarg){ .tb = tb, .k = k };
	if (idx_read(db, get_txn, &a) < 0 || a.r < 0)
		return "";
	return a.v;
}

/* ---- basics ---- */

static int nested_txn(struct idx_txn *t, void *arg)
{
	struct getarg a = { IDX_META, "a", "", 0 };

	(void)t;
	return idx_read(arg, get_txn, &a);
}

static int misuse_txn(struct idx_txn *t, void *arg)
{
	unsigned char big[IDX_KEY_MAX + 1];
	int *r = arg;

	memset(big, 'k', sizeof(big));
	r[0] = idx_put(t, IDX_META, "x", 1, "y", 1, 0);
	r[1] = idx_get(t, IDX_META, big, sizeof(big), &(struct idx_val){ 0 });
	r[2] = idx_get(t, IDX_TABLES, "x", 1, &(struct idx_val){ 0 });
	r[3] = idx_get(t, IDX_META, "x", 0, &(struct idx_val){ 0 });
	return 0;
}

static int long_key_txn(struct idx_txn *t, void *arg)
{
	unsigned char k[IDX_KEY_MAX];
	struct idx_val v;
	int r;

	(void)arg;
	memset(k, 0xab, sizeof(k));
	r = idx_put(t, IDX_INODES, k, sizeof(k), "", 0, 0);
	if (r == 0)
		r = idx_get(t, IDX_INODES, k, sizeof(k), &v);
	return r == 0 && v.len == 0 ? 0 : -EIO;
}

static void test_basics(void)
{
	static const struct op first[] = {
		{ LM_PUT, IDX_META, "a", "1", 0 },
		{ LM_PUT_NEW, IDX_META, "b", "2", 0 },
		{ LM_PUT_NEW, IDX_META, "a", "x", -EEXIST },
		{ LM_DEL, IDX_META, "nothing", NULL, -ENOENT },
		{ LM_PUT, IDX_META, "c", "3", 0 },
		{ LM_PUT, IDX_META, "b", "22", 0 },
	};
	static const struct op aborted[] = {
		{ LM_PUT, IDX_META, "d", "4", 0 },
		{ LM_DEL, IDX_META, "a", NULL, 0 },
	};
	struct ops a = { first, 6, { 0 }, 7 };
	struct idx_db *db;
	int r, mis[4];
	size_t i;
	bool ok = true;

	drop_schema();
	db = open_pg(0, &r);
	CHECK(db, "open makes the schema (%d)", r);
	if (!db)
		exit(check_done());
	CHECK(!strcmp(sql("SELECT version FROM mreg_schema"), "1") &&
	      !strcmp(sql("SELECT count(*) FROM pg_tables WHERE tablename "
			  "LIKE 'mreg\\_%%'"), "11"),
	      "... version 1, 9 tables, mreg_txn and mreg_schema");
	r = idx_write(db, ops_txn, &a);
	for (i = 0; i < a.n; i++)
		ok &= a.got[i] == first[i].want;
	CHECK(r == 7 && ok, "a write returns the callback's value; "
	      "NOOVERWRITE -EEXIST, del of nothing -ENOENT");
	CHECK(!strcmp(get(db, IDX_META, "a"), "1") &&
	      !strcmp(get(db, IDX_META, "b"), "22") &&
	      !strcmp(get(db, IDX_META, "c"), "3"),
	      "... neither spoilt the transaction: it committed the rest");
	a = (struct ops){ aborted, 2, { 0 }, -EPERM };
	r = idx_write(db, ops_txn, &a);
	CHECK(r == -EPERM && !*get(db, IDX_META, "d") &&
	      !strcmp(get(db, IDX_META, "a"), "1"),
	      "a callback's error aborts: nothing of it stays");
	CHECK_EQ(idx_read(db, misuse_txn, mis), 0, "read transaction");
	CHECK(mis[0] == -EACCES && mis[1] == -EINVAL && mis[2] == -EINVAL &&
	      mis[3] == -EINVAL, "put in a read transaction -EACCES; a key "
	      "over IDX_KEY_MAX, a bad table, an empty key -EINVAL");
	CHECK_EQ(idx_write(db, long_key_txn, NULL), 0,
		 "a key of IDX_KEY_MAX bytes and an empty value");
	CHECK_EQ(idx_read(db, nested_txn, db), -EDEADLK,
		 "a transaction inside a transaction: -EDEADLK");
	idx_close(db);
}

/* ---- order ---- */

struct key {
	unsigned char b[12];
	size_t len;
};

static int key_cmp(const void *pa, const void *pb)
{
	const struct key *a = pa, *b = pb;
	size_t n = a->len < b->len ? a->len : b->len;
	int c = memcmp(a->b, b->b, n);

	if (c)
		return c;
	return a->len < b->len ? -1 : a->len > b->len;
}

static const unsigned char alphabet[] = { 0x00, 0x01, 0x61, 0x7f, 0x80,
					   0xfe, 0xff };

static void key_random(struct key *k, unsigned maxlen)
{
	size_t i;

	k->len = 1 + (size_t)rand() % maxlen;
	for (i = 0; i < k->len; i++)
		k->b[i] = alphabet[rand() % (int)sizeof(alphabet)];
}

struct keys {
	struct key *k;
	size_t n;
	enum idx_table tb;
	const void *prefix, *start;
	size_t plen, slen;
	int r;
};

static int put_keys_txn(struct idx_txn *t, void *arg)
{
	struct keys *a = arg;
	size_t i;
	int r;

	for (i = 0; i < a->n; i++) {
		r = idx_put(t, a->tb, a->k[i].b, a->k[i].len, a->k[i].b,
			    a->k[i].len, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Scans into a->k (a->n entries at most); a->r: how many. */
static int scan_txn(struct idx_txn *t, void *arg)
{
	struct keys *a = arg;
	struct idx_iter *it;
	struct idx_val k, v;
	size_t n = 0;
	int r;

	r = idx_iter_begin(t, a->tb, a->prefix, a->plen, a->start, a->slen,
			   &it);
	while (r >= 0 && (r = idx_iter_next(it, &k, &v)) > 0) {
		if (n == a->n || k.len > sizeof(a->k[0].b) ||
		    v.len != k.len || memcmp(k.data, v.data, k.len)) {
			r = -EIO;
			break;
		}
		memcpy(a->k[n].b, k.data, k.len);
		a->k[n++].len = k.len;
	}
	idx_iter_end(it);
	a->r = (int)n;
	return r;
}

static bool has_prefix(const struct key *k, const void *p, size_t plen)
{
	return k->len >= plen && (!plen || memcmp(k->b, p, plen) == 0);
}

/* Scans with prefix and start and compares with the sorted keys. */
static bool scan_same(struct idx_db *db, const struct key *sorted, size_t n,
		      const void *p, size_t plen, const void *s, size_t slen)
{
	struct keys a = { calloc(n + 1, sizeof(struct key)), n + 1, IDX_NAMES,
			  p, s, plen, slen, 0 };
	struct key st = { .len = slen };
	size_t i, j = 0;
	bool same;

	if (slen)
		memcpy(st.b, s, slen);
	same = idx_read(db, scan_txn, &a) == 0;
	for (i = 0; same && i < n; i++) {
		if (!has_prefix(&sorted[i], p, plen) ||
		    (slen && key_cmp(&sorted[i], &st) < 0))
			continue;
		same = j < (size_t)a.r && !key_cmp(&sorted[i], &a.k[j]);
		j++;
	}
	same = same && j == (size_t)a.r;
	free(a.k);
	return same;
}

struct lastarg {
	const void *p;
	size_t plen;
	struct key got;
	int r;
};

static int last_txn(struct idx_txn *t, void *arg)
{
	struct lastarg *a = arg;
	struct idx_val k, v;

	a->r = idx_last(t, IDX_NAMES, a->p, a->plen, &k, &v);
	if (a->r == 0) {
		memcpy(a->got.b, k.data, k.len);
		a->got.len = k.len;
	}
	return 0;
}

static bool last_same(struct idx_db *db, const struct key *sorted, size_t n,
		      const void *p, size_t plen)
{
	struct lastarg a = { p, plen, { { 0 }, 0 }, 0 };
	size_t i = n;

	while (i > 0 && !has_prefix(&sorted[i - 1], p, plen))
		i--;
	if (idx_read(db, last_txn, &a) < 0)
		return false;
	if (i == 0)
		return a.r == -ENOENT;
	return a.r == 0 && !key_cmp(&a.got, &sorted[i - 1]);
}

struct countarg {
	enum idx_table tb;
	uint64_t n;
};

static int count_txn(struct idx_txn *t, void *arg)
{
	struct countarg *a = arg;

	return idx_count(t, a->tb, &a->n);
}

struct pcount {
	const void *p;
	size_t plen;
	uint64_t n;
};

static int pcount_txn(struct idx_txn *t, void *arg)
{
	struct pcount *a = arg;

	return idx_count_prefix(t, IDX_NAMES, a->p, a->plen, &a->n);
}

/* idx_count_prefix() agrees with the sorted keys. */
static bool count_same(struct idx_db *db, const struct key *sorted, size_t n,
		       const void *p, size_t plen)
{
	struct pcount a = { p, plen, 0 };
	uint64_t want = 0;
	size_t i;

	for (i = 0; i < n; i++)
		want += has_prefix(&sorted[i], p, plen);
	return idx_read(db, pcount_txn, &a) == 0 && a.n == want;
}

static void test_order(void)
{
	static const unsigned char p_ff[] = { 0xff }, p_00[] = { 0x00 },
				   p_61[] = { 0x61, 0x7f },
				   s_80[] = { 0x61, 0x80, 0x00 };
	struct keys a = { calloc(1000, sizeof(struct key)), 1000, IDX_NAMES,
			  NULL, NULL, 0, 0, 0 };
	struct countarg c = { IDX_NAMES, 0 };
	struct idx_stats st;
	struct idx_db *db;
	size_t i, n;
	int r;

	db = open_pg(0, &r);
	srand(14);
	for (i = 0; i < a.n; i++)
		key_random(&a.k[i], 6);
	CHECK_EQ(idx_write(db, put_keys_txn, &a), 0,
		 "1000 random keys over 0x00 0x01 a 0x7f 0x80 0xfe 0xff");
	qsort(a.k, a.n, sizeof(a.k[0]), key_cmp);
	for (i = n = 1; i < a.n; i++)	/* unique */
		if (key_cmp(&a.k[i], &a.k[n - 1]))
			a.k[n++] = a.k[i];
	CHECK(scan_same(db, a.k, n, NULL, 0, NULL, 0),
	      "a scan of all %zu keys (batches of 256) is in memcmp-then-"
	      "length order", n);
	CHECK(scan_same(db, a.k, n, p_ff, 1, NULL, 0) &&
	      scan_same(db, a.k, n, p_00, 1, NULL, 0) &&
	      scan_same(db, a.k, n, p_61, 2, NULL, 0),
	      "prefix scans: 0xff (no successor), 0x00, a 0x7f");
	CHECK(scan_same(db, a.k, n, p_61, 1, s_80, 3) &&
	      scan_same(db, a.k, n, NULL, 0, s_80, 3) &&
	      scan_same(db, a.k, n, p_61, 2, s_80, 3),
	      "scans from a start key, inside and beyond the prefix");
	CHECK(last_same(db, a.k, n, NULL, 0) && last_same(db, a.k, n, p_ff, 1)
	      && last_same(db, a.k, n, p_00, 1) &&
	      last_same(db, a.k, n, p_61, 2) &&
	      last_same(db, a.k, n, s_80, 3),
	      "last: of the table and of prefixes");
	CHECK(idx_read(db, count_txn, &c) == 0 && c.n == n,
	      "count: %zu", n);
	CHECK(count_same(db, a.k, n, p_ff, 1) && count_same(db, a.k, n, p_00, 1)
	      && count_same(db, a.k, n, p_61, 2) &&
	      count_same(db, a.k, n, s_80, 3),
	      "count of a prefix: 0xff (no successor), 0x00, a 0x7f, a 0x80 "
	      "0x00");
	CHECK(idx_stats(db, &st) == 0 && st.bytes_used > 0 &&
	      st.bytes_alloc == 0, "stats: %llu bytes in relations",
	      (unsigned long long)st.bytes_used);
	free(a.k);
	idx_close(db);
}

/* ---- retries ---- */

/* The "doctors on call" write skew: each takes itself off call when both
 * are on. Serially, one stays on. */
struct skew {
	struct idx_db *db;
	pthread_barrier_t *bar;
	const char *me;
	unsigned runs;
	int r;
};

static int skew_txn(struct idx_txn *t, void *arg)
{
	struct skew *a = arg;
	struct idx_val x, y;
	int r;

	a->runs++;
	r = idx_get(t, IDX_META, "doc-a", 5, &x);
	if (r == 0)
		r = idx_get(t, IDX_META, "doc-b", 5, &y);
	if (r < 0)
		return r;
	if (*(const char *)x.data == '1' && *(const char *)y.data == '1')
		r = idx_put(t, IDX_META, a->me, 5, "0", 1, 0);
	/* Both have read and written before either commits: the second
	 * COMMIT fails with 40001. */
	if (a->runs == 1)
		pthread_barrier_wait(a->bar);
	return r;
}

static void *skew_main(void *arg)
{
	struct skew *a = arg;

	a->r = idx_write(a->db, skew_txn, a);
	return NULL;
}

static void test_write_skew(void)
{
	static const struct op on[] = {
		{ LM_PUT, IDX_META, "doc-a", "1", 0 },
		{ LM_PUT, IDX_META, "doc-b", "1", 0 },
	};
	struct idx_pg_counters before, after;
	pthread_barrier_t bar;
	struct skew s[2];
	pthread_t th[2];
	struct ops o;
	struct idx_db *db;
	unsigned rounds = 6, serial = 0, reran = 0, i, j, runs[2] = { 0 };
	char da[8];
	int r;

	db = open_pg(0, &r);
	idx_pg_counters(db, &before);
	pthread_barrier_init(&bar, NULL, 2);
	for (i = 0; i < rounds; i++) {
		o = (struct ops){ on, 2, { 0 }, 0 };
		idx_write(db, ops_txn, &o);
		for (j = 0; j < 2; j++) {
			s[j] = (struct skew){ db, &bar, j ? "doc-b" : "doc-a",
					      0, 0 };
			pthread_create(&th[j], NULL, skew_main, &s[j]);
		}
		for (j = 0; j < 2; j++)
			pthread_join(th[j], NULL);
		snprintf(da, sizeof(da), "%.7s", get(db, IDX_META, "doc-a"));
		serial += s[0].r == 0 && s[1].r == 0 &&
			  strcmp(da, get(db, IDX_META, "doc-b")) != 0;
		reran += s[0].runs + s[1].runs == 3;
		for (j = 0; j < 2; j++)
			runs[j] += s[j].runs;
	}
	idx_pg_counters(db, &after);
	CHECK_EQ(reran, rounds, "write skew: in each round one callback ran "
		 "twice (%u and %u runs in %u rounds)", runs[0], runs[1],
		 rounds);
	CHECK_EQ(after.commit_reruns - before.commit_reruns, rounds,
		 "... because its COMMIT failed with 40001");
	CHECK_EQ(serial, rounds, "... and the result is serial: one doctor "
		 "stays on call");
	pthread_barrier_destroy(&bar);
	idx_close(db);
}

/* The registry's rule: the next version is the last one plus one, read
 * and written in one write transaction. */
#define NV_PREFIX "ver:"

struct nv {
	struct idx_db *db;
	uint32_t writer;
	unsigned count;		/* how many to take */
	unsigned runs;		/* callbacks run */
	uint64_t got;
	int r;
};

static int next_version_txn(struct idx_txn *t, void *arg)
{
	struct nv *a = arg;
	unsigned char key[12];
	struct idx_val k, v;
	uint64_t n = 0;
	int r, i;

	a->runs++;
	r = idx_last(t, IDX_HISTORY, NV_PREFIX, 4, &k, &v);
	if (r == 0 && k.len == 12)
		for (i = 4; i < 12; i++)
			n = n << 8 | ((const unsigned char *)k.data)[i];
	else if (r != -ENOENT)
		return r < 0 ? r : -EIO;
	n++;
	memcpy(key, NV_PREFIX, 4);
	for (i = 11; i >= 4; i--)
		key[i] = (unsigned char)(n >> (8 * (11 - i)));
	r = idx_put(t, IDX_HISTORY, key, 12, &a->writer, 4, IDX_NOOVERWRITE);
	if (r < 0)
		return r;
	a->got = n;
	return 0;
}

static void *nv_main(void *arg)
{
	struct nv *a = arg;
	unsigned i;

	for (i = 0; i < a->count && a->r == 0; i++)
		a->r = idx_write(a->db, next_version_txn, a);
	return NULL;
}

/* Runs n writers of count versions each in this process; the total of
 * callback runs, or -errno of the first failure. */
static long nv_threads(struct idx_db *db, unsigned n, unsigned count,
		       uint32_t base)
{
	struct nv a[16];
	pthread_t th[16];
	long runs = 0;
	unsigned i;

	for (i = 0; i < n; i++) {
		a[i] = (struct nv){ db, base + i, count, 0, 0, 0 };
		pthread_create(&th[i], NULL, nv_main, &a[i]);
	}
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < n; i++) {
		if (a[i].r < 0)
			return a[i].r;
		runs += a[i].runs;
	}
	return runs;
}

struct vcheck {
	uint64_t n, last;
	bool consecutive;
};

static int vcheck_txn(struct idx_txn *t, void *arg)
{
	struct vcheck *a = arg;
	struct idx_iter *it;
	struct idx_val k, v;
	uint64_t x;
	int r, i;

	*a = (struct vcheck){ 0, 0, true };
	r = idx_iter_begin(t, IDX_HISTORY, NV_PREFIX, 4, NULL, 0, &it);
	while (r >= 0 && (r = idx_iter_next(it, &k, &v)) > 0) {
		for (x = 0, i = 4; i < 12 && k.len == 12; i++)
			x = x << 8 | ((const unsigned char *)k.data)[i];
		a->consecutive &= x == a->last + 1;
		a->last = x;
		a->n++;
	}
	idx_iter_end(it);
	return r;
}

static void clear_versions(void)
{
	sql("DELETE FROM mreg_history");
}

static void test_next_version(void)
{
	struct vcheck vc;
	struct idx_db *db;
	long runs, child_runs = 0;
	int r, st, fds[2];
	pid_t pid;

	clear_versions();
	if (pipe(fds) < 0)
		abort();
	/* Each process opens its own index: a child must not touch the
	 * connections it inherits (their sockets are shared). */
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		db = open_pg(0, &r);
		runs = db ? nv_threads(db, 4, 25, 100) : r;
		if (write(fds[1], &runs, sizeof(runs)) != sizeof(runs))
			_exit(2);
		idx_close(db);
		_exit(0);
	}
	close(fds[1]);
	db = open_pg(0, &r);
	runs = nv_threads(db, 4, 25, 0);
	if (read(fds[0], &child_runs, sizeof(child_runs)) !=
	    sizeof(child_runs))
		child_runs = -EIO;
	close(fds[0]);
	waitpid(pid, &st, 0);
	CHECK(runs > 0 && child_runs > 0, "next version from 4 threads in "
	      "each of 2 processes: every transaction succeeded (%ld, %ld)",
	      runs, child_runs);
	CHECK(idx_read(db, vcheck_txn, &vc) == 0 && vc.n == 200 &&
	      vc.last == 200 && vc.consecutive,
	      "... 200 distinct consecutive numbers, none lost, none reused "
	      "(%llu, last %llu)", (unsigned long long)vc.n,
	      (unsigned long long)vc.last);
	CHECK(runs + child_runs > 200, "... the callbacks ran %ld times for "
	      "200 versions: serialization failures were retried inside",
	      runs + child_runs);
	idx_close(db);
}

/* ---- a connection lost around COMMIT ---- */

enum kill_mode { KILL_BEFORE, KILL_SENT, LOSE_ANSWER };

struct killer {
	enum kill_mode mode;
	int fired;
};

static void terminate(int pid)
{
	int i;

	sql("SELECT pg_terminate_backend(%d)", pid);
	for (i = 0; i < 500; i++) {
		if (!strcmp(sql("SELECT count(*) FROM pg_stat_activity WHERE "
				"pid = %d", pid), "0"))
			return;
		usleep(10000);
	}
}

static int kill_hook(void *arg, enum idx_pg_point p, int pid,
		     const unsigned char *id)
{
	struct killer *k = arg;
	char hex[33];
	int i;

	if (k->fired)
		return 0;
	if (k->mode == KILL_BEFORE && p == IDX_PG_BEFORE_COMMIT) {
		k->fired++;
		terminate(pid);
	} else if (k->mode == KILL_SENT && p == IDX_PG_COMMIT_SENT) {
		k->fired++;
		sql("SELECT pg_terminate_backend(%d)", pid);
	} else if (k->mode == LOSE_ANSWER && p == IDX_PG_COMMIT_SENT) {
		/* Wait until the server committed, then lose its answer. */
		for (i = 0; i < 16; i++)
			snprintf(hex + 2 * i, 3, "%02x", id[i]);
		for (i = 0; i < 500; i++) {
			if (!strcmp(sql("SELECT count(*) FROM mreg_txn WHERE "
					"id = '\\x%s'", hex), "1"))
				break;
			usleep(10000);
		}
		k->fired++;
		return 1;
	}
	return 0;
}

static void test_lost_commit(void)
{
	static const char *const what[] = {
		[KILL_BEFORE] = "killed before COMMIT",
		[KILL_SENT] = "killed as COMMIT was sent",
		[LOSE_ANSWER] = "lost after the server committed",
	};
	struct idx_pg_counters c0, c1;
	struct killer k;
	struct vcheck vc;
	struct nv a;
	struct idx_db *db;
	int mode, r;

	clear_versions();
	db = open_pg(0, &r);
	for (mode = KILL_BEFORE; mode <= LOSE_ANSWER; mode++) {
		k = (struct killer){ mode, 0 };
		idx_pg_counters(db, &c0);
		idx_pg_set_hook(db, kill_hook, &k);
		a = (struct nv){ db, 7, 1, 0, 0, 0 };
		r = idx_write(db, next_version_txn, &a);
		idx_pg_set_hook(db, NULL, NULL);
		idx_pg_counters(db, &c1);
		CHECK(r == 0 && k.fired && idx_read(db, vcheck_txn,
						  &vc) == 0 &&
		      vc.n == (uint64_t)mode + 1 && vc.consecutive &&
		      a.got == vc.last,
		      "connection %s: the write is there once (%u runs)",
		      what[mode], a.runs);
		if (mode == KILL_BEFORE)
			CHECK(a.runs == 2 && c1.lost_uncommitted ==
			      c0.lost_uncommitted + 1, "... mreg_txn said "
			      "not committed: the callback ran again");
		if (mode == LOSE_ANSWER)
			CHECK(a.runs == 1 && c1.committed_unseen ==
			      c0.committed_unseen + 1, "... mreg_txn said "
			      "committed: the callback did not run again");
	}
	idx_close(db);
}

/* Idle connections killed: the next transaction reconnects, unseen. */
static void test_idle_killed(void)
{
	struct idx_pg_counters c0, c1;
	struct idx_db *db;
	int r;

	db = open_pg(0, &r);
	get(db, IDX_META, "a");
	idx_pg_counters(db, &c0);
	sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
	    "application_name = 'test-pgindex'");
	CHECK(!strcmp(get(db, IDX_META, "a"), "1"),
	      "pooled connections killed: the next read reconnects");
	idx_pg_counters(db, &c1);
	CHECK_EQ(c1.reconnects - c0.reconnects, 1, "... once, inside");
	sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
	    "application_name = 'test-pgindex'");
	CHECK_EQ(idx_maint(db), 0, "maint pings idle connections");
	idx_pg_counters(db, &c0);
	CHECK(!strcmp(get(db, IDX_META, "a"), "1"), "... the dead one is "
	      "gone: the next read needs no retry");
	idx_pg_counters(db, &c1);
	CHECK_EQ(c1.reconnects - c0.reconnects, 0, "... no reconnect");
	idx_close(db);
}

/* A forked child may close its parent's index, but not use it, and the
 * parent's connections live on. */
static void test_fork(void)
{
	struct idx_pg_counters c0, c1;
	struct idx_db *db;
	pid_t pid;
	int r, st = -1;

	db = open_pg(0, &r);
	get(db, IDX_META, "a");
	idx_pg_counters(db, &c0);
	pid = fork();
	if (pid == 0) {
		r = idx_read(db, get_txn, &(struct getarg){ IDX_META,
			    "a", "", 0 });
		idx_close(db);
		_exit(r == -EINVAL ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a forked child cannot "
	      "use its parent's index (-EINVAL)");
	CHECK(!strcmp(get(db, IDX_META, "a"), "1"), "... it closed it: the "
	      "parent reads on");
	idx_pg_counters(db, &c1);
	CHECK_EQ(c1.reconnects - c0.reconnects, 0, "... on the same "
		 "connection: the child's close said nothing to the server");
	idx_close(db);
}

/* The server stops: calls fail at the deadline; it starts: they work. */
static void test_outage(void)
{
	static const struct op put[] = { { LM_PUT, IDX_META, "o", "1", 0 } };
	struct ops o = { put, 1, { 0 }, 0 };
	struct idx_db *db;
	int r;

	db = open_pg(1500, &r);
	get(db, IDX_META, "a");
	PQfinish(admin);
	admin = NULL;
	sh("sh '%s/tests/services/pg.sh' halt '%s'", top, pg_dir);
	r = idx_write(db, ops_txn, &o);
	CHECK_EQ(r, -ETIMEDOUT, "PostgreSQL stopped: a write fails with "
		 "-ETIMEDOUT at the deadline");
	CHECK_EQ(idx_read(db, get_txn, &(struct getarg){ IDX_META, "a",
		 "", 0 }), -ETIMEDOUT, "... a read too");
	sh("sh '%s/tests/services/pg.sh' start '%s' >/dev/null", top, pg_dir);
	admin = PQconnectdb(ADMIN);
	r = idx_write(db, ops_txn, &o);
	CHECK(r == 0 && !strcmp(get(db, IDX_META, "o"), "1"),
	      "started again: the same handle writes and reads (%d)", r);
	idx_close(db);
}

/* ---- schema and passwords ---- */

static void test_schema(void)
{
	struct idx_options o = { .backend = "postgres",
				 .conninfo = "application_name=test-pgindex",
				 .read_only = true };
	struct idx_db *db;
	int r;

	sql("UPDATE mreg_schema SET version = 2");
	db = open_pg(0, &r);
	CHECK(!db && r == -EINVAL, "a schema newer than this binary: "
	      "refused (%d)", r);
	sql("UPDATE mreg_schema SET version = 1");
	db = open_pg(0, &r);
	CHECK(db && !strcmp(get(db, IDX_META, "a"), "1"),
	      "... its own version: opened, data kept");
	idx_close(db);
	CHECK(idx_open(&o, &db) == 0 &&
	      idx_write(db, ops_txn, &(struct ops){ 0 }) == -EROFS,
	      "read-only: a write is -EROFS");
	idx_close(db);
	drop_schema();
	r = idx_open(&o, &db);
	CHECK_EQ(r, -ENOENT, "read-only on a database without the schema");
	db = open_pg(0, &r);
	CHECK(db, "... made again by a writable open");
	idx_close(db);
}

/* The last message logged, for tests of what is said. */
static char logged[512];

static void log_keep(void *arg, enum log_level lvl, const char *msg)
{
	(void)arg;
	(void)lvl;
	snprintf(logged, sizeof(logged), "%s", msg);
}

static void test_password(void)
{
	char *pass = strdup(getenv("PGPASSWORD")), *conninfo, *copy;
	struct idx_options o = { .backend = "postgres" };
	struct idx_db *db = NULL;
	int r;

	if (asprintf(&copy, "%s/pgpass", tmp) < 0 ||
	    sh("cp '%s' '%s'", getenv("MREG_PG_PASSFILE"), copy) ||
	    asprintf(&conninfo, "passfile=%s", copy) < 0)
		abort();
	o.conninfo = "password=secret";
	CHECK_EQ(idx_open(&o, &db), -EINVAL, "a password in conninfo: "
		 "refused");
	unsetenv("PGPASSWORD");
	o.conninfo = conninfo;
	/* libpq itself would warn on stderr, ignore the file and fail
	 * for want of a password: the message tells them apart. */
	log_set_sink(log_keep, NULL);
	chmod(copy, 0644);
	CHECK(idx_open(&o, &db) == -EACCES && strstr(logged, "open to "
	      "others (mode 0644): chmod 600"), "a passfile others may read: "
	      "refused, saying why");
	chmod(copy, 0640);
	CHECK(idx_open(&o, &db) == -EACCES && strstr(logged, "open to "
	      "others (mode 0640)"), "... the group too");
	log_set_sink(NULL, NULL);
	chmod(copy, 0600);
	r = idx_open(&o, &db);
	CHECK(r == 0, "mode 0600, no PGPASSWORD: the passfile logs in (%d)",
	      r);
	idx_close(db);
	db = NULL;
	o.conninfo = "passfile=/nonexistent/pgpass";
	CHECK_EQ(idx_open(&o, &db), -ENOENT, "a named passfile missing");
	o.conninfo = "";
	setenv("PGPASSFILE", "/dev/null", 1);
	r = idx_open(&o, &db);
	CHECK(r == -EACCES || r == -EINVAL || r == -EIO,
	      "no password anywhere: refused (%d)", r);
	unsetenv("PGPASSFILE");
	setenv("PGPASSWORD", pass, 1);
	free(pass);
	free(conninfo);
	free(copy);
}

/* ---- the same operations on lmdb and postgres ---- */

struct collect {
	struct key k[400];
	unsigned char v[400][12];
	size_t vlen[400];
	size_t n;
};

static int collect_one(void *arg, const struct lm_val *k,
		       const struct lm_val *v)
{
	struct collect *c = arg;

	if (c->n == 400 || k->len > 12 || v->len > 12)
		return -E2BIG;
	memcpy(c->k[c->n].b, k->data, k->len);
	c->k[c->n].len = k->len;
	memcpy(c->v[c->n], v->data, v->len);
	c->vlen[c->n++] = v->len;
	return 0;
}

struct pgscan {
	int tb;
	const void *p, *s;
	size_t pl, sl;
	bool last;
	struct collect *c;
};

static int pgscan_txn(struct idx_txn *t, void *arg)
{
	struct pgscan *a = arg;
	struct idx_iter *it;
	struct idx_val k, v;
	int r;

	a->c->n = 0;
	if (a->last) {
		r = idx_last(t, (enum idx_table)a->tb, a->p, a->pl, &k, &v);
		if (r == 0)
			collect_one(a->c, &(struct lm_val){ k.data, k.len },
				    &(struct lm_val){ v.data, v.len });
		return r;
	}
	r = idx_iter_begin(t, (enum idx_table)a->tb, a->p, a->pl, a->s, a->sl,
			   &it);
	while (r >= 0 && (r = idx_iter_next(it, &k, &v)) > 0)
		r = collect_one(a->c, &(struct lm_val){ k.data, k.len },
				&(struct lm_val){ v.data, v.len });
	idx_iter_end(it);
	return r;
}

static bool same_collect(const struct collect *a, const struct collect *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (key_cmp(&a->k[i], &b->k[i]) || a->vlen[i] != b->vlen[i] ||
		    memcmp(a->v[i], b->v[i], a->vlen[i]))
			return false;
	return true;
}

struct one_op {
	int kind, tb;
	struct key k, v;
	int r;
};

static int one_op_txn(struct idx_txn *t, void *arg)
{
	struct one_op *a = arg;

	if (a->kind == LM_DEL)
		a->r = idx_del(t, (enum idx_table)a->tb, a->k.b, a->k.len);
	else
		a->r = idx_put(t, (enum idx_table)a->tb, a->k.b, a->k.len,
			       a->v.b, a->v.len, a->kind == LM_PUT_NEW ?
			       IDX_NOOVERWRITE : 0);
	return 0;
}

static void test_equivalence(void)
{
	static struct collect cl, cp;
	struct pgscan ps;
	struct one_op op;
	struct key pre, start;
	struct idx_db *db;
	char *dir;
	void *lm;
	unsigned i, ops = 1500, codes = 0, scans = 0, same = 0, rl, rp;
	int r;

	if (asprintf(&dir, "%s/lmdb", tmp) < 0)
		abort();
	lm = lm_open(dir);
	sql("DELETE FROM mreg_names; DELETE FROM mreg_xattrs");
	db = open_pg(0, &r);
	CHECK(lm && db, "an lmdb index and a postgres one, empty");
	srand(16);
	for (i = 0; lm && db && i < ops; i++) {
		op = (struct one_op){ .tb = rand() % 2 ? IDX_NAMES :
				      IDX_XATTRS };
		r = rand() % 10;
		op.kind = r < 5 ? LM_PUT : r < 7 ? LM_PUT_NEW : LM_DEL;
		key_random(&op.k, 3);
		key_random(&op.v, 12);
		rl = (unsigned)-lm_op(lm, op.kind, op.tb, op.k.b, op.k.len,
				      op.v.b, op.v.len);
		idx_write(db, one_op_txn, &op);
		rp = (unsigned)-op.r;
		codes += rl == rp;
		if (i % 50 != 49)
			continue;
		/* every 50: the whole table, a prefix from a start, last */
		key_random(&pre, 2);
		key_random(&start, 3);
		for (r = 0; r < 4; r++) {
			ps = (struct pgscan){ op.tb, pre.b, start.b,
					      r == 1 || r == 3 ? pre.len : 0,
					      r == 2 ? start.len : 0, r == 3,
					      &cp };
			cl.n = 0;
			rl = (unsigned)-(r == 3 ?
				lm_last(lm, op.tb, ps.p, ps.pl, collect_one,
					&cl) :
				lm_scan(lm, op.tb, ps.p, ps.pl, ps.s, ps.sl,
					collect_one, &cl));
			rp = (unsigned)-idx_read(db, pgscan_txn, &ps);
			scans++;
			same += rl == rp && same_collect(&cl, &cp);
		}
	}
	CHECK_EQ(codes, ops, "%u random puts, no-overwrite puts and deletes: "
		 "the same result codes on lmdb and postgres", ops);
	CHECK_EQ(same, scans, "... and the same %u scans, prefix scans and "
		 "lasts, key by key and value by value", scans);
	lm_close(lm);
	idx_close(db);
	free(dir);
}

/* ---- figures ---- */

static void bench(unsigned seconds)
{
	struct idx_pg_counters c0, c1;
	static const unsigned writers[] = { 1, 8 };
	struct idx_db *db;
	struct timespec a, b;
	double s;
	long runs;
	unsigned i, count;
	int r;

	db = open_pg(0, &r);
	for (i = 0; db && i < 2; i++) {
		clear_versions();
		count = 200u * seconds / writers[i];
		idx_pg_counters(db, &c0);
		clock_gettime(CLOCK_MONOTONIC, &a);
		runs = nv_threads(db, writers[i], count, 0);
		clock_gettime(CLOCK_MONOTONIC, &b);
		idx_pg_counters(db, &c1);
		s = (double)(b.tv_sec - a.tv_sec) +
		    (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		printf("# next version, %u writer(s): %u commits in %.2f s = "
		       "%.0f/s; callbacks run %ld times, %llu reruns (%llu "
		       "at COMMIT)\n", writers[i], writers[i] * count, s,
		       writers[i] * count / s, runs,
		       (unsigned long long)(c1.reruns - c0.reruns),
		       (unsigned long long)(c1.commit_reruns -
					    c0.commit_reruns));
	}
	idx_close(db);
}

/* ---- watchers: idx_notify, idx_watch_* ---- */

static int notify_txn(struct idx_txn *t, void *arg)
{
	int *ret = arg;
	int r = idx_put(t, IDX_META, "w", 1, "1", 1, 0);

	if (r == 0)
		r = idx_notify(t);
	if (r == 0)
		r = idx_notify(t);	/* twice: one wake-up */
	return r < 0 ? r : *ret;
}

static int read_notify_txn(struct idx_txn *t, void *arg)
{
	(void)arg;
	return idx_notify(t);
}

static void test_watch(void)
{
	struct idx_db *db, *lm;
	struct idx_watch *w = NULL, *w2 = NULL;
	char dir[4096];
	int r, commit = 0, abort = -EPERM;

	db = open_pg(5000, &r);
	CHECK(db != NULL, "watch: open (%d)", r);
	if (!db)
		return;
	CHECK_EQ(idx_watch_open(db, &w), 0, "watch: a watcher of the index");
	CHECK_EQ(idx_watch_open(db, &w2), 0, "watch: a second watcher");
	CHECK_EQ(idx_watch_wait(w, 200), 0, "watch: nothing committed: "
		 "the wait times out (0)");
	CHECK_EQ(idx_write(db, notify_txn, &commit), 0, "watch: a write "
		 "that notifies (twice) commits");
	CHECK_EQ(idx_watch_wait(w, 5000), 1, "watch: the watcher wakes (1)");
	CHECK_EQ(idx_watch_wait(w, 200), 0, "... once: the repeat of one "
		 "transaction is folded");
	CHECK_EQ(idx_watch_wait(w2, 5000), 1, "... and so does every other "
		 "watcher");
	CHECK_EQ(idx_write(db, notify_txn, &abort), -EPERM, "watch: a write "
		 "that notifies, then aborts");
	CHECK_EQ(idx_watch_wait(w, 300), 0, "... wakes nobody");
	CHECK_EQ(idx_read(db, read_notify_txn, NULL), -EACCES,
		 "watch: idx_notify in a read transaction is -EACCES");
	/* a watch whose connection the server ended: -EIO, then another */
	sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
	    "query LIKE 'LISTEN %%' AND pid <> pg_backend_pid()");
	r = 0;
	for (int i = 0; i < 50 && r >= 0; i++)
		r = idx_watch_wait(w, 100);
	CHECK_EQ(r, -EIO, "watch: a watch the server ended is -EIO");
	idx_watch_close(w);
	idx_watch_close(w2);
	CHECK_EQ(idx_watch_open(db, &w), 0, "... and another opens");
	CHECK_EQ(idx_write(db, notify_txn, &commit), 0, "... a commit");
	CHECK_EQ(idx_watch_wait(w, 5000), 1, "... wakes it");
	idx_watch_close(w);
	idx_close(db);
	snprintf(dir, sizeof(dir), "%s/watch-lmdb", tmp);
	lm = lm_open(dir);
	CHECK(lm != NULL, "watch: an lmdb index");
	if (lm) {
		CHECK_EQ(idx_watch_open(lm, &w), -ENOTSUP, "... has no "
			 "watchers (-ENOTSUP)");
		CHECK_EQ(idx_write(lm, notify_txn, &commit), 0, "... and its "
			 "idx_notify does nothing");
		lm_close(lm);
	}
}

int main(int argc, char **argv)
{
	char why[256];

	setvbuf(stdout, NULL, _IOLBF, 0);
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (!services_up(why, sizeof(why))) {
		printf("ok 1 - postgres index # SKIP %s\n", why);
		return 0;
	}
	log_set_level(LOG_LVL_ERROR);
	if (argc > 1 && !strcmp(argv[1], "--bench")) {
		drop_schema();
		bench(argc > 2 ? (unsigned)atoi(argv[2]) : 5);
		return 0;
	}
	test_basics();
	test_order();
	test_write_skew();
	test_next_version();
	test_lost_commit();
	test_idle_killed();
	test_fork();
	test_equivalence();
	test_outage();
	test_schema();
	test_password();
	test_watch();
	return check_done();
}
