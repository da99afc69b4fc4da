/* conn.c — the postgres backend's connections: the password rules,
 * connecting within a deadline, the pool, sending a statement and waiting
 * for its answer within a deadline, and what a SQLSTATE means.
 *
 * Every wait is poll(2) on the connection's socket with the time left
 * before the call's deadline, never a blocking libpq call: a server that
 * stopped answering, or a network that lost it, costs at most the
 * deadline (-ETIMEDOUT), and the connection is then closed (the server
 * aborts its transaction when it notices). Connections are kept in a
 * pool because logging in costs 20-140 ms (SCRAM); a transaction holds
 * one for its whole life.
 */
#include "pg.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Milliseconds left before deadline, for poll(): 0 when passed. */
static int ms_left(uint64_t deadline)
{
	uint64_t now = (uint64_t)mono_ns();

	if (now >= deadline)
		return 0;
	return (int)((deadline - now + 999999) / 1000000);
}

void idx_pg_backoff(unsigned n, uint64_t deadline)
{
	uint64_t base = 1000000ull << (n < 7 ? n : 7), pause, now;
	uint32_t rnd = 0;
	struct timespec ts;

	/* A random pause in [base/2, base): writers that collided do not
	 * collide again in step. */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)mono_ns();
	pause = base / 2 + rnd % (base / 2);
	now = (uint64_t)mono_ns();
	if (now >= deadline)
		return;
	if (pause > deadline - now)
		pause = deadline - now;
	ts.tv_sec = (time_t)(pause / 1000000000u);
	ts.tv_nsec = (long)(pause % 1000000000u);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- passwords --------------------------------------------------------- */

/* The passfile libpq reads when no password is given: passfile= in
 * conninfo, else PGPASSFILE, else ~/.pgpass (only if it exists). *named
 * tells whether it was named (then it must exist). NULL: none. */
static char *passfile_path(PQconninfoOption *opts, bool *named)
{
	const char *p = NULL, *home;
	struct passwd pw, *res = NULL;
	char buf[1024], *path;
	PQconninfoOption *o;

	for (o = opts; o && o->keyword; o++)
		if (!strcmp(o->keyword, "passfile") && o->val && *o->val)
			p = o->val;
	if (!p)
		p = getenv("PGPASSFILE");
	*named = p && *p;
	if (*named)
		return strdup(p);
	home = getenv("HOME");
	if (!home || !*home) {
		if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) != 0 ||
		    !res)
			return NULL;
		home = res->pw_dir;
	}
	if (asprintf(&path, "%s/.pgpass", home) < 0)
		return NULL;
	return path;
}

int idx_pg_password_check(const char *conninfo)
{
	PQconninfoOption *opts, *o;
	const char *env = getenv("PGPASSWORD");
	char *err = NULL, *path;
	struct stat st;
	bool named;
	int r = 0;

	opts = PQconninfoParse(conninfo, &err);
	if (!opts) {
		r = log_err(-EINVAL, "postgres: bad conninfo '%s': %s",
			    conninfo, err ? err : "out of memory");
		PQfreemem(err);
		return r;
	}
	for (o = opts; o->keyword; o++)
		if (!strcmp(o->keyword, "password") && o->val) {
			PQconninfoFree(opts);
			/* The config file may be readable by all. */
			return log_err(-EINVAL, "postgres: conninfo holds a "
				       "password: put it in PGPASSWORD or a "
				       "passfile (mode 0600) instead");
		}
	if (env && *env) {
		PQconninfoFree(opts);
		return 0;
	}
	path = passfile_path(opts, &named);
	PQconninfoFree(opts);
	if (!path)
		return 0;
	if (stat(path, &st) < 0) {
		if (named)
			r = log_err(-errno, "postgres: cannot use passfile "
				    "'%s'", path);
	} else if (!S_ISREG(st.st_mode)) {
		r = log_err(-EINVAL, "postgres: passfile '%s' is not a file",
			    path);
	} else if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		/* libpq would print a warning on stderr and go on without
		 * it: say why, and stop. */
		log_msg(LOG_LVL_ERROR, "postgres: passfile '%s' is open to "
			"others (mode %04o): chmod 600 it", path,
			(unsigned)(st.st_mode & 07777));
		r = -EACCES;
	}
	free(path);
	return r;
}

/* ---- connecting -------------------------------------------------------- */

/* Waits until the socket of conn is ready as PQconnectPoll asks. */
static int wait_socket(PGconn *conn, bool out, uint64_t deadline)
{
	struct pollfd p = { .fd = PQsocket(conn),
			    .events = out ? POLLOUT : POLLIN };
	int r;

	if (p.fd < 0)
		return -EIO;
	do {
		r = poll(&p, 1, ms_left(deadline));
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* Server notices, and a FATAL that comes between statements (the server
 * going down), which libpq would print on stderr. */
static void notice(void *arg, const char *msg)
{
	(void)arg;
	log_info("postgres: %.*s", (int)strcspn(msg, "\n"), msg);
}

/* One attempt. Logs why it failed when quiet is false. */
static int connect_once(struct pg_db *db, uint64_t deadline, bool quiet,
			PGconn **ret)
{
	static const char *const keys[] = {
		"dbname", "fallback_application_name", NULL
	};
	const char *vals[] = { db->conninfo, "mreg", NULL };
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	PGconn *conn;
	int r = 0;

	/* expand_dbname: dbname is the whole connection string. */
	conn = PQconnectStartParams(keys, vals, 1);
	if (!conn)
		return -ENOMEM;
	if (PQstatus(conn) == CONNECTION_BAD)
		st = PGRES_POLLING_FAILED;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		r = wait_socket(conn, st == PGRES_POLLING_WRITING, deadline);
		if (r < 0)
			break;
		st = PQconnectPoll(conn);
	}
	if (r == 0 && st == PGRES_POLLING_FAILED) {
		r = PQconnectionNeedsPassword(conn) ? -EACCES : -EIO;
		if (!quiet && r == -EACCES)
			log_msg(LOG_LVL_ERROR, "postgres: the server wants a "
				"password: set PGPASSWORD or use a passfile");
		else if (!quiet)
			log_msg(LOG_LVL_ERROR, "postgres: cannot connect: %s",
				PQerrorMessage(conn));
	} else if (r < 0 && !quiet) {
		log_err(r, "postgres: cannot connect");
	}
	if (r < 0) {
		PQfinish(conn);
		return r;
	}
	*ret = conn;
	return 0;
}

int idx_pg_connect(struct pg_db *db, uint64_t deadline, bool retry,
	       struct pg_conn **ret)
{
	struct pg_conn *c;
	enum pg_fate fate;
	PGresult *res;
	PGconn *conn = NULL;
	unsigned n = 0;
	int r;

	assert(db && ret);
	for (;;) {
		/* Retried failures are logged once, at the end. */
		r = connect_once(db, deadline, retry, &conn);
		if (r == 0 || !retry || r == -EACCES || r == -ENOMEM)
			break;
		if ((uint64_t)mono_ns() >= deadline) {
			r = log_err(-ETIMEDOUT, "postgres: no connection "
				    "within the deadline");
			break;
		}
		idx_pg_backoff(n < 4 ? n + 4 : 8, deadline);
		n++;
	}
	if (r < 0)
		return r;
	c = calloc(1, sizeof(*c));
	if (!c) {
		PQfinish(conn);
		return -ENOMEM;
	}
	c->conn = conn;
	PQsetNoticeProcessor(conn, notice, NULL);
	if (PQsetnonblocking(conn, 1) != 0) {
		idx_pg_disconnect(c);
		return log_err(-EIO, "postgres: %s", PQerrorMessage(conn));
	}
	if (!db->sync || db->schema) {
		char sql[256];

		snprintf(sql, sizeof(sql), "%s%s%s%s",
			 db->sync ? "" : "SET synchronous_commit = off;",
			 db->schema ? "SET search_path = " : "",
			 db->schema ? db->schema : "", db->schema ? ";" : "");
		r = idx_pg_exec(c, sql, deadline, &res, &fate);
		PQclear(res);
		if (r < 0) {
			idx_pg_disconnect(c);
			return r;
		}
	}
	*ret = c;
	return 0;
}

void idx_pg_disconnect(struct pg_conn *c)
{
	if (!c)
		return;
	PQfinish(c->conn);
	free(c);
}

/* ---- the pool ---------------------------------------------------------- */

int idx_pg_pool_get(struct pg_db *db, uint64_t deadline, struct pg_conn **ret)
{
	struct timespec ts;
	struct pg_conn *c;
	uint64_t left;
	int r = 0;

	assert(db && ret);
	pthread_mutex_lock(&db->lock);
	while (!db->idle && db->nconns >= db->max_conns) {
		/* Every connection is in a transaction: wait for one. */
		clock_gettime(CLOCK_REALTIME, &ts);
		left = (uint64_t)ms_left(deadline) * 1000000u;
		if (!left) {
			pthread_mutex_unlock(&db->lock);
			return log_err(-EAGAIN, "postgres: all %u connections "
				       "are busy", db->max_conns);
		}
		left += (uint64_t)ts.tv_nsec;
		ts.tv_sec += (time_t)(left / 1000000000u);
		ts.tv_nsec = (long)(left % 1000000000u);
		pthread_cond_timedwait(&db->freed, &db->lock, &ts);
	}
	c = db->idle;
	if (c) {
		db->idle = c->next;
		c->next = NULL;
		pthread_mutex_unlock(&db->lock);
		*ret = c;
		return 0;
	}
	db->nconns++;
	pthread_mutex_unlock(&db->lock);
	r = idx_pg_connect(db, deadline, true, &c);
	if (r < 0) {
		pthread_mutex_lock(&db->lock);
		db->nconns--;
		pthread_cond_signal(&db->freed);
		pthread_mutex_unlock(&db->lock);
		return r;
	}
	*ret = c;
	return 0;
}

void idx_pg_pool_put(struct pg_db *db, struct pg_conn *c)
{
	bool keep;

	assert(db);
	if (!c)
		return;
	keep = !c->dead && PQstatus(c->conn) == CONNECTION_OK &&
	       PQtransactionStatus(c->conn) == PQTRANS_IDLE;
	if (!keep)
		idx_pg_disconnect(c);
	pthread_mutex_lock(&db->lock);
	if (keep) {
		c->idle_since = (uint64_t)mono_ns();
		c->next = db->idle;
		db->idle = c;
	} else {
		db->nconns--;
	}
	pthread_cond_signal(&db->freed);
	pthread_mutex_unlock(&db->lock);
}

void idx_pg_pool_drain(struct pg_db *db)
{
	struct pg_conn *c, *next;

	pthread_mutex_lock(&db->lock);
	c = db->idle;
	db->idle = NULL;
	for (; c; c = next) {
		next = c->next;
		/* PQfinish() says goodbye on the socket, which would end
		 * the parent's session: close the child's descriptor
		 * first, so that nothing is sent. */
		if (db->pid != getpid())
			close(PQsocket(c->conn));
		idx_pg_disconnect(c);
		db->nconns--;
	}
	pthread_mutex_unlock(&db->lock);
}

/* ---- statements -------------------------------------------------------- */

/* What SQLSTATE code means: an errno, and whether to rerun. */
static int sqlstate_errno(const char *code, enum pg_fate *fate)
{
	*fate = PG_FAIL;
	if (!strcmp(code, "40001") || !strcmp(code, "40P01")) {
		*fate = PG_RERUN;
		return -EAGAIN;
	}
	/* connection exceptions; the server shutting down or starting */
	if (!strncmp(code, "08", 2) || !strcmp(code, "57P01") ||
	    !strcmp(code, "57P02") || !strcmp(code, "57P03")) {
		*fate = PG_LOST;
		return -EIO;
	}
	if (!strcmp(code, "53100"))
		return -ENOSPC;
	if (!strcmp(code, "53200"))
		return -ENOMEM;
	if (!strcmp(code, "57014"))
		return -ETIMEDOUT;
	if (!strcmp(code, "25006"))
		return -EROFS;
	if (!strcmp(code, "42501"))
		return -EACCES;
	if (!strcmp(code, "54000"))
		return -E2BIG;
	return -EIO;
}

/* The errno of a failed result (res may be NULL: no answer). */
static int result_err(struct pg_conn *c, const PGresult *res,
		      enum pg_fate *fate)
{
	const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) :
			   NULL;
	int r;

	if (c->dead || PQstatus(c->conn) == CONNECTION_BAD || !code) {
		*fate = c->dead || PQstatus(c->conn) == CONNECTION_BAD ?
			PG_LOST : PG_FAIL;
		log_debug("postgres: connection lost: %s",
			  PQerrorMessage(c->conn));
		return -EIO;
	}
	r = sqlstate_errno(code, fate);
	if (*fate == PG_FAIL)
		log_msg(LOG_LVL_ERROR, "postgres: %s (SQLSTATE %s)",
			PQresultErrorMessage(res), code);
	return r;
}

/* Flushes what was sent, until deadline. */
static int flush(struct pg_conn *c, uint64_t deadline)
{
	struct pollfd p = { .fd = PQsocket(c->conn),
			    .events = POLLIN | POLLOUT };
	int f, r;

	while ((f = PQflush(c->conn)) == 1) {
		do {
			r = poll(&p, 1, ms_left(deadline));
		} while (r < 0 && errno == EINTR);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0)
			return -errno;
		if ((p.revents & POLLIN) && !PQconsumeInput(c->conn))
			return -EIO;
	}
	return f < 0 ? -EIO : 0;
}

int idx_pg_wait(struct pg_conn *c, uint64_t deadline, PGresult **ret,
	    enum pg_fate *fate)
{
	PGresult *res, *last = NULL;
	int r, err = 0;

	assert(c && ret && fate);
	*ret = NULL;
	*fate = PG_FAIL;
	if (c->dead)
		return result_err(c, NULL, fate);
	r = flush(c, deadline);
	while (r == 0) {
		while (r == 0 && PQisBusy(c->conn)) {
			r = wait_socket(c->conn, false, deadline);
			if (r == 0 && !PQconsumeInput(c->conn))
				break;	/* the next result says why */
		}
		if (r < 0)
			break;
		res = PQgetResult(c->conn);
		if (!res)
			break;
		switch (PQresultStatus(res)) {
		case PGRES_COMMAND_OK:
		case PGRES_TUPLES_OK:
		case PGRES_EMPTY_QUERY:
			PQclear(last);
			last = res;
			break;
		default:
			/* Keep the first error and read on to the end (a
			 * NULL result), unless the connection is gone. */
			if (!err)
				err = result_err(c, res, fate);
			PQclear(res);
			if (PQstatus(c->conn) == CONNECTION_BAD)
				r = -EIO;
		}
	}
	if (r < 0 && !err) {
		/* No answer in time, or a socket error: the connection is
		 * in an unknown state; the pool closes it. */
		c->dead = true;
		*fate = PG_LOST;
		err = r == -ETIMEDOUT ? r : -EIO;
		if (r != -ETIMEDOUT)
			log_debug("postgres: connection lost: %s",
				  PQerrorMessage(c->conn));
	}
	if (!err && PQstatus(c->conn) == CONNECTION_BAD)
		err = result_err(c, NULL, fate);
	if (err) {
		PQclear(last);
		return err;
	}
	*ret = last;
	return 0;
}

int idx_pg_send_err(struct pg_conn *c, enum pg_fate *fate)
{
	assert(c && fate);
	return result_err(c, NULL, fate);
}

int idx_pg_exec(struct pg_conn *c, const char *sql, uint64_t deadline,
	    PGresult **ret, enum pg_fate *fate)
{
	assert(c && sql && ret && fate);
	*ret = NULL;
	if (c->dead || !PQsendQuery(c->conn, sql))
		return result_err(c, NULL, fate);
	return idx_pg_wait(c, deadline, ret, fate);
}

int idx_pg_send_flush(struct pg_conn *c, uint64_t deadline)
{
	assert(c);
	return c->dead ? -EIO : flush(c, deadline);
}
