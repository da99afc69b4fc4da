/* pg.h — private to index/pg/: the PostgreSQL index backend's handle,
 * transaction, iterator, connection pool and statements.
 *
 *	conn.c   connections: password rules, connecting, the pool, sending
 *	         a statement and waiting for it until a deadline, SQLSTATEs
 *	         to errno and to what the transaction must do next
 *	pg.c     open (schema), close, run (retries, commit and its outcome
 *	         after a lost connection), maint, stats
 *	ops.c    get, put, del, iterators, last, count
 *	locks.c  the locks a process holds while it lives
 *	watch.c  commits that wake watchers: NOTIFY, LISTEN
 */
#ifndef MREG_INDEX_PG_H
#define MREG_INDEX_PG_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "index/backend.h"

/* Rows an iterator fetches at a time: memory per scan is one batch. */
#define PG_BATCH 256
/* The random id every write transaction records in mreg_txn. */
#define PG_TXN_ID 16

/* The statements, each prepared per connection and table when first used. */
enum pg_stmt {
	PG_GET, PG_PUT, PG_PUT_NEW, PG_DEL,
	PG_SCAN_GE, PG_SCAN_GE_LT, PG_SCAN_GT, PG_SCAN_GT_LT,
	PG_LAST, PG_LAST_LT, PG_COUNT, PG_COUNT_GE, PG_COUNT_GE_LT,
	PG_STMTS
};

/* What a failed statement means for the transaction it ran in. */
enum pg_fate {
	PG_FAIL,	/* an error to return */
	PG_RERUN,	/* serialization failure or deadlock: roll back, rerun */
	PG_LOST,	/* the connection is gone: another one, rerun */
};

struct pg_conn {
	PGconn *conn;
	struct pg_conn *next;		/* in the idle list */
	uint16_t prepared[PG_STMTS];	/* bit tb: statement prepared */
	uint64_t idle_since;		/* mono ns */
	bool dead;			/* no answer in time: close it */
};

struct pg_db {
	struct idx_db base;
	char *conninfo;
	char *schema;			/* quoted identifier, or NULL */
	char channel[32];		/* NOTIFY's: named after the schema */
	uint64_t deadline_ns;
	unsigned max_conns;
	bool sync;
	pthread_mutex_t lock;		/* the pool */
	pthread_cond_t freed;		/* a connection went back or away */
	struct pg_conn *idle;
	unsigned nconns;		/* open, idle or in use */
	pid_t pid;			/* the process that opened it */
	uint64_t pruned;		/* mono ns of the last mreg_txn pruning */
	int (*hook)(void *arg, enum idx_pg_point p, int pid,
		    const unsigned char *id);
	void *hook_arg;
	/* locks.c: the session of the process's idx_lock()s */
	pthread_mutex_t lk_lock;	/* guards lk, held */
	struct pg_conn *lk;		/* NULL: none yet, or lost */
	struct pg_lock *held;		/* taken again on a new session */
	struct {
		atomic_uint_fast64_t runs, reruns, commit_reruns, reconnects,
				     committed_unseen, lost_uncommitted;
	} n;
};

struct pg_txn {
	struct idx_txn base;
	struct pg_db *db;
	struct pg_conn *c;
	uint64_t deadline;		/* mono ns */
	PGresult **keep;		/* results of get/last: freed at the end */
	size_t nkeep, akeep;
	struct pg_iter *iters;		/* open iterators */
	int err;			/* the first error that spoilt it */
	bool notified;			/* idx_notify() sent its NOTIFY */
	enum pg_fate fate;		/* with err: what run does next */
};

struct pg_iter {
	struct idx_iter base;		/* base.t: its transaction */
	struct pg_txn *t;
	struct pg_iter *next;
	enum idx_table tb;
	PGresult *res;			/* the batch */
	int row, rows;
	bool done;			/* the batch was the last */
	bool fetched;			/* a batch came: go on after its last */
	size_t lo_len, hi_len;		/* first bound (>=), successor (<) */
	bool bounded;
	unsigned char lo[IDX_KEY_MAX];
	unsigned char hi[IDX_KEY_MAX];
};

/* ---- conn.c ---- */

/* Refuses a password in conninfo (-EINVAL) and a passfile libpq would
 * read that others may read (-EACCES) or that is named but missing
 * (-ENOENT); each logged. */
int idx_pg_password_check(const char *conninfo);

/* Connects until deadline. Errors: -ETIMEDOUT, -EACCES (no password),
 * -EIO (logged with libpq's message), -ENOMEM. */
int idx_pg_connect(struct pg_db *db, uint64_t deadline, bool retry,
	       struct pg_conn **ret);
void idx_pg_disconnect(struct pg_conn *c);

/* A connection of the pool, connecting one when none is idle and the
 * pool has room, else waiting for one until deadline (-EAGAIN). Failed
 * connects are retried with backoff until deadline (-ETIMEDOUT). */
int idx_pg_pool_get(struct pg_db *db, uint64_t deadline, struct pg_conn **ret);
/* Gives c back: kept when it is idle outside a transaction, else closed. */
void idx_pg_pool_put(struct pg_db *db, struct pg_conn *c);
/* Closes every idle connection. In a forked child, whose sockets are
 * its parent's too, without a word to the server. */
void idx_pg_pool_drain(struct pg_db *db);

/* Waits for the result of what was sent on c: 0 and *ret (the last
 * result; NULL for none) or -errno, *fate and *ret NULL (PQclear()s the
 * rest).
 * Errors: -ETIMEDOUT (c is closed, fate PG_LOST), and pg_error()'s. */
int idx_pg_wait(struct pg_conn *c, uint64_t deadline, PGresult **ret,
	    enum pg_fate *fate);
/* idx_pg_wait() after PQsendQuery(sql): plain SQL, text results. */
int idx_pg_exec(struct pg_conn *c, const char *sql, uint64_t deadline,
	    PGresult **ret, enum pg_fate *fate);
/* The error of a PQsend* call that failed on c. */
int idx_pg_send_err(struct pg_conn *c, enum pg_fate *fate);
/* Sends what is queued on c, until deadline: 0, -ETIMEDOUT, -EIO. */
int idx_pg_send_flush(struct pg_conn *c, uint64_t deadline);
/* Sleeps a jittered, growing pause before retry number n, but not past
 * deadline. */
void idx_pg_backoff(unsigned n, uint64_t deadline);

/* ---- locks.c ---- */

/* A lock idx_lock() took, to take again on a new session. */
struct pg_lock {
	uint64_t key;
	bool shared;
	struct pg_lock *next;
};

/* The lock session's end (close; in a forked child, without a word). */
void idx_pg_locks_close(struct pg_db *db);
/* maint: a lost session is made again, its locks taken again. */
void idx_pg_locks_maint(struct pg_db *db);
int idx_pg_lock(struct idx_db *db, uint64_t key, bool shared, bool wait);
/* ---- watch.c: NOTIFY and LISTEN ---- */
/* Names db->channel after its schema. */
void idx_pg_channel(struct pg_db *db, const char *schema);
int idx_pg_notify(struct idx_txn *t);
int idx_pg_watch_open(struct idx_db *db, struct idx_watch **ret);
int idx_pg_watch_wait(struct idx_watch *w, int timeout_ms);
void idx_pg_watch_close(struct idx_watch *w);
void idx_pg_unlock(struct idx_db *db, uint64_t key);
int idx_pg_lock_held(struct idx_db *db, uint64_t key);

/* ---- ops.c ---- */

/* Sends statement s on table tb with binary parameters and results and
 * waits for it; a failure spoils t (t->err, t->fate). */
int idx_pg_stmt_run(struct pg_txn *t, enum pg_stmt s, enum idx_table tb,
		int n, const void *const *vals, const size_t *lens,
		PGresult **ret);
/* The SQL name of table tb: "mreg_meta", ... */
const char *idx_pg_table(enum idx_table tb);
/* Frees t's results and iterators. */
void idx_pg_txn_release(struct pg_txn *t);

int idx_pg_get(struct idx_txn *t, enum idx_table tb, const void *key,
	   size_t klen, struct idx_val *ret);
int idx_pg_put(struct idx_txn *t, enum idx_table tb, const void *key,
	   size_t klen, const void *val, size_t vlen, unsigned flags);
int idx_pg_del(struct idx_txn *t, enum idx_table tb, const void *key,
	   size_t klen);
int idx_pg_iter_begin(struct idx_txn *t, enum idx_table tb,
		      const void *prefix, size_t plen, const void *start,
		      size_t slen, struct idx_iter **ret);
int idx_pg_iter_next(struct idx_iter *it, struct idx_val *ret_key,
		 struct idx_val *ret_val);
void idx_pg_iter_end(struct idx_iter *it);
int idx_pg_last(struct idx_txn *t, enum idx_table tb, const void *prefix,
	    size_t plen, struct idx_val *ret_key, struct idx_val *ret_val);
int idx_pg_count(struct idx_txn *t, enum idx_table tb, uint64_t *ret);
int idx_pg_count_prefix(struct idx_txn *t, enum idx_table tb,
			const void *prefix, size_t plen, uint64_t *ret);
int idx_pg_txn_lock(struct idx_txn *t, uint64_t key);

#endif
