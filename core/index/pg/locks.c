/* locks.c — the locks a process holds while it lives (idx_lock() and its
 * kin, index.h), for an index in PostgreSQL: advisory locks, which every
 * host sharing the database sees and the server lets go when the session
 * that holds them ends (the process died, or its connection was lost).
 *
 * The process's locks are held by one session of their own (lk), outside
 * the pool, one statement at a time (lk_lock). A transaction's lock
 * (idx_pg_txn_lock, ops.c) is an xact lock of the transaction's
 * connection, another session: it conflicts with this process's locks as
 * with anyone's. A key is the bigint form of an advisory lock.
 *
 * A lost session has lost its locks. The next call, or maint (every tick
 * of a daemon), connects again and takes again what was held; a lock
 * another holder took meanwhile is dropped, with a line in the log. While
 * a session is missing, every host may take this process for dead: so
 * idx_lock_held() counts every lock as held while the server has been up
 * less than GRACE_S (a restart lost every session at once, and each host
 * needs a moment to come back), and callers treat "cannot tell" as held.
 */
#include "pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Seconds after a server start during which every lock counts as held:
 * a daemon takes its locks again at its next tick (2 s) once the server
 * answers. */
#define GRACE_S 15

static void session_drop(struct pg_db *db)
{
	if (!db->lk)
		return;
	if (db->pid != getpid())
		close(PQsocket(db->lk->conn)); /* a child: not a word */
	idx_pg_disconnect(db->lk);
	db->lk = NULL;
}

/* Runs sql (one boolean result) on the lock session: 1 for true, 0 for
 * false, -errno. A lost session is dropped (its locks with it). */
static int lk_bool(struct pg_db *db, const char *sql, uint64_t deadline)
{
	enum pg_fate fate;
	PGresult *res;
	int r;

	r = idx_pg_exec(db->lk, sql, deadline, &res, &fate);
	if (r < 0) {
		if (fate == PG_LOST)
			session_drop(db);
		return r;
	}
	r = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t");
	PQclear(res);
	return r;
}

static int try_lock(struct pg_db *db, uint64_t key, bool shared,
		    uint64_t deadline)
{
	char sql[80];

	snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock%s(%lld)",
		 shared ? "_shared" : "", (long long)key);
	return lk_bool(db, sql, deadline);
}

/* The lock session, made again when lost, with every lock held taken
 * again: 0 or -errno. Under lk_lock. */
static int session(struct pg_db *db, uint64_t deadline)
{
	struct pg_lock **pp, *l;
	int r;

	if (db->lk)
		return 0;
	r = idx_pg_connect(db, deadline, true, &db->lk);
	if (r < 0) {
		db->lk = NULL;
		return r;
	}
	for (pp = &db->held; (l = *pp);) {
		r = try_lock(db, l->key, l->shared, deadline);
		if (r < 0)
			return r;
		if (r == 0) {
			log_msg(LOG_LVL_WARN, "postgres: lock %llx was lost "
				"with the connection and is held by another "
				"now", (unsigned long long)l->key);
			*pp = l->next;
			free(l);
			continue;
		}
		pp = &l->next;
	}
	if (db->held)
		log_info("postgres: a lost lock session is back");
	return 0;
}

static struct pg_lock **find(struct pg_db *db, uint64_t key)
{
	struct pg_lock **pp;

	for (pp = &db->held; *pp; pp = &(*pp)->next)
		if ((*pp)->key == key)
			return pp;
	return pp;
}

int idx_pg_lock(struct idx_db *dbb, uint64_t key, bool shared, bool wait)
{
	struct pg_db *db = (struct pg_db *)dbb;
	uint64_t deadline = (uint64_t)mono_ns() + db->deadline_ns;
	struct pg_lock *l;
	unsigned n = 0;
	int r;

	if (db->pid != getpid())
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->key = key;
	l->shared = shared;
	pthread_mutex_lock(&db->lk_lock);
	for (;;) {
		if (*find(db, key)) {
			r = 0; /* held: once is enough */
			free(l);
			l = NULL;
			break;
		}
		/* no session within the deadline (or a wrong password): the
		   error, at once */
		if ((r = session(db, deadline)) < 0)
			break;
		r = try_lock(db, key, shared, deadline);
		if (r < 0 && db->lk == NULL && (uint64_t)mono_ns() < deadline)
			continue; /* lost on the way: another session */
		if (r != 0 || !wait)
			break;
		if ((uint64_t)mono_ns() >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		/* others may take and let go meanwhile */
		pthread_mutex_unlock(&db->lk_lock);
		idx_pg_backoff(n < 3 ? n : 3, deadline);
		n++;
		pthread_mutex_lock(&db->lk_lock);
	}
	if (r == 1) {
		l->next = db->held;
		db->held = l;
		r = 0;
	} else if (l) {
		free(l);
		if (r == 0)
			r = -EAGAIN;
		else
			log_err(r, "postgres: cannot take lock %llx",
				(unsigned long long)key);
	}
	pthread_mutex_unlock(&db->lk_lock);
	return r;
}

void idx_pg_unlock(struct idx_db *dbb, uint64_t key)
{
	struct pg_db *db = (struct pg_db *)dbb;
	struct pg_lock **pp, *l;
	char sql[80];

	if (db->pid != getpid())
		return;
	pthread_mutex_lock(&db->lk_lock);
	pp = find(db, key);
	if ((l = *pp)) {
		*pp = l->next;
		snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock%s(%lld)",
			 l->shared ? "_shared" : "", (long long)key);
		/* a lost session has let it go already */
		if (db->lk)
			lk_bool(db, sql, (uint64_t)mono_ns() +
				db->deadline_ns);
		free(l);
	}
	pthread_mutex_unlock(&db->lk_lock);
}

int idx_pg_lock_held(struct idx_db *dbb, uint64_t key)
{
	struct pg_db *db = (struct pg_db *)dbb;
	uint64_t deadline = (uint64_t)mono_ns() + db->deadline_ns;
	char sql[400];
	int r;

	if (db->pid != getpid())
		return -EINVAL;
	snprintf(sql, sizeof(sql),
		 "SELECT pg_postmaster_start_time() > now() - interval "
		 "'%d seconds' OR EXISTS (SELECT 1 FROM pg_locks WHERE "
		 "locktype = 'advisory' AND granted AND database = (SELECT oid "
		 "FROM pg_database WHERE datname = current_database()) AND "
		 "classid = '%u'::oid AND objid = '%u'::oid AND objsubid = 1)",
		 GRACE_S, (unsigned)(key >> 32), (unsigned)key);
	pthread_mutex_lock(&db->lk_lock);
	r = session(db, deadline);
	if (r == 0)
		r = lk_bool(db, sql, deadline);
	pthread_mutex_unlock(&db->lk_lock);
	return r;
}

void idx_pg_locks_maint(struct pg_db *db)
{
	pthread_mutex_lock(&db->lk_lock);
	/* a lost session is found by a statement: one that costs nothing */
	if (db->lk && lk_bool(db, "SELECT true", (uint64_t)mono_ns() +
			      2000000000ull) < 0 && db->lk)
		session_drop(db);
	if (db->held && !db->lk)
		session(db, (uint64_t)mono_ns() + db->deadline_ns);
	pthread_mutex_unlock(&db->lk_lock);
}

void idx_pg_locks_close(struct pg_db *db)
{
	struct pg_lock *l;

	pthread_mutex_lock(&db->lk_lock);
	session_drop(db);
	while ((l = db->held)) {
		db->held = l->next;
		free(l);
	}
	pthread_mutex_unlock(&db->lk_lock);
}
