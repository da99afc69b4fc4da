/* pg.c — the index in PostgreSQL (issue 14): many hosts share one
 * registry's metadata. The backend sees byte strings, as lmdb does; the
 * registry's rules run over it unchanged.
 *
 * Schema (version PG_SCHEMA, in idx_options.schema, made when missing, or
 * else in the current schema of the connection):
 *	mreg_<table>  (k bytea PRIMARY KEY, v bytea NOT NULL)
 *	              one per enum idx_table: mreg_meta, mreg_names, ...
 *	mreg_txn      (id bytea PRIMARY KEY, at timestamptz): the random id
 *	              each write transaction inserts first (see "Commit")
 *	mreg_schema   (version integer): one row
 * idx_open() creates it when missing (unless read-only) and migrates an
 * older one, under an advisory lock so that hosts opening at once do it
 * once; a schema newer than this binary is refused.
 *
 * Transactions. A write transaction is SERIALIZABLE: the registry's rules
 * read, then write (the next version number is the last one plus one),
 * and only serializable isolation stops two hosts from both reading the
 * same last number. A read transaction is REPEATABLE READ READ ONLY: one
 * snapshot, like an LMDB reader. Each runs on a connection of the pool,
 * held for the transaction's life.
 *
 * Retries, inside run() so that no caller sees them: a serialization
 * failure or deadlock (SQLSTATE 40001, 40P01), which may come from any
 * statement and from COMMIT itself, rolls back and runs the callback
 * again after a jittered pause; a connection lost before COMMIT is
 * replaced and the callback runs again. Every call has a deadline
 * (idx_options.deadline_ms): past it, -ETIMEDOUT.
 *
 * Commit. A connection lost while COMMIT was on its way leaves the
 * outcome unknown: the server may have committed, or not. So every write
 * transaction first inserts a random id into mreg_txn; after such a loss
 * the backend inserts the same id again, on another connection, with ON
 * CONFLICT DO NOTHING. If the first transaction is still committing, that
 * insert waits for it (a unique index waits for the inserter's outcome);
 * a conflict then means it committed (return the callback's value), a new
 * row that it did not (run the callback again). Ids older than an hour
 * are pruned by idx_maint().
 */
#include "pg.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define PG_SCHEMA 1
#define DEFAULT_CONNS 8u
#define DEFAULT_DEADLINE_MS 30000u
/* After a lost COMMIT, the outcome is looked for at least this long,
 * even past the deadline: an unknown outcome is worse than a late one. */
#define RESOLVE_NS (2 * 1000000000ull)
/* Rollback of a spoilt transaction, and maint's pings. */
#define SHORT_NS (2 * 1000000000ull)
#define PRUNE_NS (60 * 1000000000ull)
/* pg_advisory_xact_lock key of schema changes: "mregschm" */
#define SCHEMA_LOCK "7885062341918763885"

static struct pg_db *db_of(struct idx_db *db)
{
	return (struct pg_db *)db;
}

/* A forked child shares its parent's sockets: it must open its own. */
static bool foreign(const struct pg_db *db)
{
	if (db->pid == getpid())
		return false;
	log_err(-EINVAL, "postgres: an index opened by another process: open "
		"one in this one");
	return true;
}

/* ---- schema ------------------------------------------------------------ */

/* Runs sql on c (outside a pool transaction); logs what failed. */
static int exec_logged(struct pg_conn *c, const char *sql, uint64_t deadline,
		       PGresult **ret)
{
	enum pg_fate fate;
	PGresult *res;
	int r;

	r = idx_pg_exec(c, sql, deadline, &res, &fate);
	if (r < 0)
		return log_err(r, "postgres: '%.40s...' failed", sql);
	if (ret)
		*ret = res;
	else
		PQclear(res);
	return 0;
}

/* Schema version 1: the tables. Each later version adds a step. */
static int migrate_1(struct pg_conn *c, uint64_t deadline)
{
	char sql[200];
	int i, r;

	r = exec_logged(c, "CREATE TABLE mreg_txn (id bytea PRIMARY KEY, "
			"at timestamptz NOT NULL DEFAULT now());"
			"CREATE TABLE mreg_schema (version integer NOT NULL);"
			"INSERT INTO mreg_schema VALUES (0)", deadline, NULL);
	for (i = 0; r == 0 && i < IDX_TABLES; i++) {
		snprintf(sql, sizeof(sql), "CREATE TABLE %s (k bytea PRIMARY "
			 "KEY, v bytea NOT NULL)", idx_pg_table(i));
		r = exec_logged(c, sql, deadline, NULL);
	}
	return r;
}

static int (*const migrate[PG_SCHEMA + 1])(struct pg_conn *, uint64_t) = {
	[1] = migrate_1,
};

/* The schema's version: 0 when there is none. */
static int schema_version(struct pg_conn *c, uint64_t deadline, int *ret)
{
	PGresult *res = NULL;
	bool have;
	int r;

	r = exec_logged(c, "SELECT to_regclass('mreg_schema') IS NOT NULL",
			deadline, &res);
	if (r < 0)
		return r;
	have = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t");
	PQclear(res);
	*ret = 0;
	if (!have)
		return 0;
	r = exec_logged(c, "SELECT max(version) FROM mreg_schema", deadline,
			&res);
	if (r < 0)
		return r;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		*ret = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

static int schema_txn(struct pg_db *db, struct pg_conn *c, uint64_t deadline)
{
	char sql[160];
	int r = 0, v = 0, i;

	r = exec_logged(c, db->base.read_only ? "BEGIN" :
			"BEGIN; SELECT pg_advisory_xact_lock(" SCHEMA_LOCK ")",
			deadline, NULL);
	/* under the lock: two hosts making it at once would collide (and
	   without a NOTICE when it exists) */
	if (r == 0 && db->schema && !db->base.read_only) {
		snprintf(sql, sizeof(sql), "SET LOCAL client_min_messages = "
			 "warning; CREATE SCHEMA IF NOT EXISTS %s", db->schema);
		r = exec_logged(c, sql, deadline, NULL);
	}
	if (r == 0)
		r = schema_version(c, deadline, &v);
	if (r < 0)
		return r;
	if (v > PG_SCHEMA)
		return log_err(-EINVAL, "postgres: the database has mreg "
			       "schema version %d, newer than this mreg's (%d): "
			       "use a newer mreg", v, PG_SCHEMA);
	if (v == PG_SCHEMA)
		return exec_logged(c, "COMMIT", deadline, NULL);
	if (db->base.read_only)
		return log_err(v ? -EROFS : -ENOENT, "postgres: %s, and the "
			       "index is opened read-only", v ? "the mreg "
			       "schema is older than this mreg's" :
			       "the database has no mreg schema");
	for (i = v + 1; r == 0 && i <= PG_SCHEMA; i++)
		r = migrate[i](c, deadline);
	snprintf(sql, sizeof(sql), "UPDATE mreg_schema SET version = %d",
		 PG_SCHEMA);
	if (r == 0)
		r = exec_logged(c, sql, deadline, NULL);
	if (r == 0)
		r = exec_logged(c, "COMMIT", deadline, NULL);
	if (r == 0 && v)
		log_info("postgres: mreg schema migrated from version %d to %d",
			 v, PG_SCHEMA);
	return r;
}

/* ---- open and close ---------------------------------------------------- */

/* "name" with its quotes doubled (a schema given in the config): malloc'ed,
 * NULL for no memory or a name over 63 bytes (the server's limit). */
static char *quote_ident(const char *name)
{
	size_t n = strlen(name), i, j = 0;
	char *q;

	if (!n || n > 63 || !(q = malloc(2 * n + 3)))
		return NULL;
	q[j++] = '"';
	for (i = 0; i < n; i++) {
		if (name[i] == '"')
			q[j++] = '"';
		q[j++] = name[i];
	}
	q[j++] = '"';
	q[j] = '\0';
	return q;
}

static void pg_close(struct idx_db *dbb)
{
	struct pg_db *db = db_of(dbb);

	if (!db)
		return;
	idx_pg_locks_close(db);
	idx_pg_pool_drain(db);
	/* No transaction may be running: every connection was idle (but a
	 * forked child may close what its parent was using). */
	assert(db->nconns == 0 || db->pid != getpid());
	pthread_mutex_destroy(&db->lock);
	pthread_mutex_destroy(&db->lk_lock);
	pthread_cond_destroy(&db->freed);
	free(db->conninfo);
	free(db->schema);
	free(db);
}

static int pg_open(const struct idx_options *o, struct idx_db **ret)
{
	struct pg_conn *c;
	struct pg_db *db;
	uint64_t deadline;
	int r;

	if (!o || !o->conninfo || !ret)
		return -EINVAL;
	r = idx_pg_password_check(o->conninfo);
	if (r < 0)
		return r;
	db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db->base.be = &idx_pg_backend;
	db->base.read_only = o->read_only;
	db->pid = getpid();
	db->sync = o->sync;
	db->max_conns = o->connections ? o->connections : DEFAULT_CONNS;
	db->deadline_ns = (uint64_t)(o->deadline_ms ? o->deadline_ms :
				     DEFAULT_DEADLINE_MS) * 1000000u;
	pthread_mutex_init(&db->lock, NULL);
	pthread_mutex_init(&db->lk_lock, NULL);
	pthread_cond_init(&db->freed, NULL);
	db->conninfo = strdup(o->conninfo);
	if (o->schema)
		db->schema = quote_ident(o->schema);
	idx_pg_channel(db, o->schema);
	if (!db->conninfo || (o->schema && !db->schema)) {
		pg_close(&db->base);
		return -ENOMEM;
	}
	deadline = (uint64_t)mono_ns() + db->deadline_ns;
	/* Not retried: at open, a wrong password or host is said at once. */
	r = idx_pg_connect(db, deadline, false, &c);
	if (r == 0) {
		r = schema_txn(db, c, deadline);
		pthread_mutex_lock(&db->lock);
		db->nconns++;
		pthread_mutex_unlock(&db->lock);
		idx_pg_pool_put(db, c);
	}
	if (r < 0) {
		pg_close(&db->base);
		return r;
	}
	*ret = &db->base;
	return 0;
}

/* ---- transactions ------------------------------------------------------ */

static int begin(struct pg_txn *t, const unsigned char *id)
{
	char sql[160], hex[2 * PG_TXN_ID + 1];
	enum pg_fate fate;
	PGresult *res;
	int i, r;

	if (t->base.write) {
		for (i = 0; i < PG_TXN_ID; i++)
			snprintf(hex + 2 * i, 3, "%02x", id[i]);
		/* one round trip */
		snprintf(sql, sizeof(sql), "BEGIN ISOLATION LEVEL "
			 "SERIALIZABLE; INSERT INTO mreg_txn (id) VALUES "
			 "('\\x%s')", hex);
	} else {
		snprintf(sql, sizeof(sql), "BEGIN ISOLATION LEVEL "
			 "REPEATABLE READ READ ONLY");
	}
	r = idx_pg_exec(t->c, sql, t->deadline, &res, &fate);
	PQclear(res);
	if (r < 0) {
		t->err = r;
		t->fate = fate;
	}
	return r;
}

/* Ends a transaction that does not commit. */
static void rollback(struct pg_txn *t)
{
	enum pg_fate fate;
	PGresult *res = NULL;

	if (PQstatus(t->c->conn) == CONNECTION_OK &&
	    PQtransactionStatus(t->c->conn) != PQTRANS_IDLE)
		idx_pg_exec(t->c, "ROLLBACK", (uint64_t)mono_ns() + SHORT_NS, &res,
			&fate);
	PQclear(res);
}

/* Decides whether the write transaction with id committed, after its
 * connection was lost during COMMIT: 1 committed, 0 not, or -errno. */
static int resolve(struct pg_db *db, const unsigned char *id,
		   uint64_t deadline)
{
	static const int fmt = 1;
	const char *val = (const char *)id;
	const int len = PG_TXN_ID;
	enum pg_fate fate;
	struct pg_conn *c;
	PGresult *res;
	unsigned n = 0;
	int r;

	if (deadline < (uint64_t)mono_ns() + RESOLVE_NS)
		deadline = (uint64_t)mono_ns() + RESOLVE_NS;
	for (;; n++) {
		r = idx_pg_pool_get(db, deadline, &c);
		if (r < 0)
			break;
		r = PQsendQueryParams(c->conn, "INSERT INTO mreg_txn (id) "
				      "VALUES ($1) ON CONFLICT DO NOTHING", 1,
				      NULL, &val, &len, &fmt, 0) ?
		    idx_pg_wait(c, deadline, &res, &fate) : idx_pg_send_err(c, &fate);
		if (r == 0) {
			r = !strcmp(PQcmdTuples(res), "0");
			PQclear(res);
		}
		idx_pg_pool_put(db, c);
		if (r >= 0 || fate != PG_LOST || (uint64_t)mono_ns() >= deadline)
			break;
		idx_pg_backoff(n, deadline);
	}
	if (r < 0)
		log_err(r, "postgres: a connection was lost during COMMIT and "
			"whether it committed is unknown");
	return r;
}

/* Commits t: 0, or -errno, with *again set when the callback must run
 * again (an errno cannot say it: resolve() may fail with -EAGAIN). */
static int commit(struct pg_txn *t, const unsigned char *id, bool *again)
{
	struct pg_db *db = t->db;
	enum pg_fate fate;
	PGresult *res = NULL;
	int pid = PQbackendPID(t->c->conn), r;
	bool drop = false;

	if (t->base.write && db->hook)
		db->hook(db->hook_arg, IDX_PG_BEFORE_COMMIT, pid, id);
	if (!PQsendQuery(t->c->conn, "COMMIT")) {
		r = idx_pg_send_err(t->c, &fate);
	} else {
		if (t->base.write && db->hook &&
		    idx_pg_send_flush(t->c, t->deadline) == 0)
			drop = db->hook(db->hook_arg, IDX_PG_COMMIT_SENT, pid,
					id);
		if (drop) {
			/* as if the answer were lost on the way */
			t->c->dead = true;
			fate = PG_LOST;
			r = -EIO;
		} else {
			r = idx_pg_wait(t->c, t->deadline, &res, &fate);
			PQclear(res);
		}
	}
	if (r == 0)
		return 0;
	if (fate == PG_RERUN) {
		atomic_fetch_add(&db->n.commit_reruns, 1);
		*again = true;
		return r;
	}
	if (fate != PG_LOST)
		return r;
	if (!t->base.write)
		return 0;	/* what it read was read */
	/* Lost: the id tells. */
	t->c->dead = true;
	idx_pg_pool_put(db, t->c);
	t->c = NULL;
	r = resolve(db, id, t->deadline);
	if (r == 1) {
		atomic_fetch_add(&db->n.committed_unseen, 1);
		return 0;
	}
	if (r == 0) {
		atomic_fetch_add(&db->n.lost_uncommitted, 1);
		*again = true;
		return -EIO;
	}
	return r;
}

/* One attempt of fn: its value, or -EAGAIN with *again set to run it
 * once more, or -errno. */
static int attempt(struct pg_db *db, bool write, idx_txn_fn *fn, void *arg,
		   uint64_t deadline, bool *again)
{
	unsigned char id[PG_TXN_ID];
	struct pg_txn t = { .base = { .db = &db->base, .write = write },
			    .db = db, .deadline = deadline };
	int r, rc;

	*again = false;
	if (write && getrandom(id, sizeof(id), 0) != sizeof(id))
		return log_err(-errno, "postgres: no random transaction id");
	r = idx_pg_pool_get(db, deadline, &t.c);
	if (r < 0)
		return r;
	if (begin(&t, id) == 0)
		r = fn(&t.base, arg);
	idx_pg_txn_release(&t);
	if (t.err && t.fate != PG_FAIL) {
		/* A retry: the callback's value is moot. */
		if (t.fate == PG_LOST)
			atomic_fetch_add(&db->n.reconnects, 1);
		*again = true;
		r = -EAGAIN;
	} else if (r < 0 || t.err) {
		r = r < 0 ? r : t.err;
	} else {
		rc = commit(&t, id, again);
		if (rc < 0)
			r = rc;
	}
	if (t.c) {
		rollback(&t);
		idx_pg_pool_put(db, t.c);
	}
	return r;
}

static int pg_run(struct idx_db *dbb, bool write, idx_txn_fn *fn, void *arg)
{
	struct pg_db *db = db_of(dbb);
	uint64_t deadline;
	unsigned n;
	bool again;
	int r;

	/* index.c refused nesting, NULLs and writes to a read-only index */
	if (foreign(db))
		return -EINVAL;
	deadline = (uint64_t)mono_ns() + db->deadline_ns;
	atomic_fetch_add(&db->n.runs, 1);
	for (n = 0;; n++) {
		r = attempt(db, write, fn, arg, deadline, &again);
		if (!again)
			return r;
		if ((uint64_t)mono_ns() >= deadline)
			return log_err(-ETIMEDOUT, "postgres: a %s transaction "
				       "did not get through in %llu ms (%u "
				       "tries)", write ? "write" : "read",
				       (unsigned long long)(db->deadline_ns /
							    1000000u), n + 1);
		atomic_fetch_add(&db->n.reruns, 1);
		idx_pg_backoff(n, deadline);
	}
}

/* ---- maintenance ------------------------------------------------------- */

static int pg_maint(struct idx_db *dbb)
{
	struct pg_db *db = db_of(dbb);
	struct pg_conn *list, *c, *next, *good = NULL;
	uint64_t now = (uint64_t)mono_ns();
	enum pg_fate fate;
	PGresult *res;
	bool prune;
	int r, dropped = 0;

	if (!db || foreign(db))
		return -EINVAL;
	/* Ping each idle connection, so that one the server dropped (a
	 * restart, an idle timeout) is replaced now, not found dead by the
	 * next transaction. Taken out of the pool meanwhile: counted as in
	 * use. */
	pthread_mutex_lock(&db->lock);
	list = db->idle;
	db->idle = NULL;
	prune = !db->base.read_only && now - db->pruned >= PRUNE_NS;
	if (prune)
		db->pruned = now;
	pthread_mutex_unlock(&db->lock);
	for (c = list; c; c = next) {
		next = c->next;
		c->next = NULL;
		r = idx_pg_exec(c, prune && !good ? "DELETE FROM mreg_txn WHERE "
			    "at < now() - interval '1 hour'" : "SELECT 1",
			    now + SHORT_NS, &res, &fate);
		PQclear(res);
		if (r < 0)
			dropped++;
		if (r == 0 && !good)
			good = c;
		idx_pg_pool_put(db, c);
	}
	if (dropped)
		log_info("postgres: %d idle connections were lost", dropped);
	idx_pg_locks_maint(db);
	return 0;
}

static int pg_stats(struct idx_db *dbb, struct idx_stats *ret)
{
	struct pg_db *db = db_of(dbb);
	char sql[400];
	size_t n;
	struct pg_conn *c;
	enum pg_fate fate;
	PGresult *res;
	int i, r;

	if (!db || !ret || foreign(db))
		return -EINVAL;
	n = (size_t)snprintf(sql, sizeof(sql), "SELECT (0");
	for (i = 0; i < IDX_TABLES; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n,
				      " + pg_total_relation_size('%s')",
				      idx_pg_table(i));
	snprintf(sql + n, sizeof(sql) - n, ")::int8");
	r = idx_pg_pool_get(db, (uint64_t)mono_ns() + db->deadline_ns, &c);
	if (r < 0)
		return r;
	r = idx_pg_exec(c, sql, (uint64_t)mono_ns() + db->deadline_ns, &res, &fate);
	if (r == 0) {
		ret->bytes_used = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		ret->bytes_alloc = 0;
		PQclear(res);
	}
	idx_pg_pool_put(db, c);
	return r;
}

void idx_pg_counters(struct idx_db *dbb, struct idx_pg_counters *ret)
{
	struct pg_db *db = db_of(dbb);

	assert(db && db->base.be == &idx_pg_backend && ret);
	ret->runs = atomic_load(&db->n.runs);
	ret->reruns = atomic_load(&db->n.reruns);
	ret->commit_reruns = atomic_load(&db->n.commit_reruns);
	ret->reconnects = atomic_load(&db->n.reconnects);
	ret->committed_unseen = atomic_load(&db->n.committed_unseen);
	ret->lost_uncommitted = atomic_load(&db->n.lost_uncommitted);
}

void idx_pg_set_hook(struct idx_db *dbb,
		     int (*fn)(void *arg, enum idx_pg_point p, int pid,
			       const unsigned char *id),
		     void *arg)
{
	struct pg_db *db = db_of(dbb);

	assert(db && db->base.be == &idx_pg_backend);
	db->hook = fn;
	db->hook_arg = arg;
}

const struct idx_backend idx_pg_backend = {
	.name = "postgres",
	.open = pg_open,
	.close = pg_close,
	.run = pg_run,
	.get = idx_pg_get,
	.put = idx_pg_put,
	.del = idx_pg_del,
	.iter_begin = idx_pg_iter_begin,
	.iter_next = idx_pg_iter_next,
	.iter_end = idx_pg_iter_end,
	.last = idx_pg_last,
	.count = idx_pg_count,
	.count_prefix = idx_pg_count_prefix,
	.maint = pg_maint,
	.stats = pg_stats,
	.lock = idx_pg_lock,
	.unlock = idx_pg_unlock,
	.lock_held = idx_pg_lock_held,
	.txn_lock = idx_pg_txn_lock,
	.notify = idx_pg_notify,
	.watch_open = idx_pg_watch_open,
	.watch_wait = idx_pg_watch_wait,
	.watch_close = idx_pg_watch_close,
};
