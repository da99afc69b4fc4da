/* watch.c — commits that wake watchers (idx_notify, idx_watch_*: index.h)
 * for an index in PostgreSQL: NOTIFY in the transaction, a connection of
 * the watcher's own that LISTENs.
 *
 * The channel is named after the schema (a hash: channel names are
 * identifiers of at most 63 bytes, a schema's may be as long), so that
 * registries sharing a database wake only their own watchers; a hash
 * that two schemas share costs a needless wake-up, nothing else.
 * PostgreSQL delivers a notification once its transaction commits, to
 * every session LISTENing then, in commit order, and folds repeats of
 * one transaction into one.
 */
#include "pg.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

struct pg_watch {
	struct idx_watch base;
	struct pg_conn *c;
};

void idx_pg_channel(struct pg_db *db, const char *schema)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */
	const char *p;

	for (p = schema ? schema : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	snprintf(db->channel, sizeof(db->channel), "mreg_%016llx",
		 (unsigned long long)h);
}

int idx_pg_watch_open(struct idx_db *dbb, struct idx_watch **ret)
{
	struct pg_db *db = (struct pg_db *)dbb;
	uint64_t deadline = (uint64_t)mono_ns() + db->deadline_ns;
	struct pg_watch *w;
	enum pg_fate fate;
	PGresult *res;
	char sql[64];
	int r;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->base.db = dbb;
	r = idx_pg_connect(db, deadline, false, &w->c);
	if (r == 0) {
		snprintf(sql, sizeof(sql), "LISTEN %s", db->channel);
		r = idx_pg_exec(w->c, sql, deadline, &res, &fate);
		PQclear(res);
	}
	if (r < 0) {
		idx_pg_watch_close(&w->base);
		return r;
	}
	*ret = &w->base;
	return 0;
}

/* Takes the notifications that arrived: how many, or -EIO (lost). */
static int take(struct pg_watch *w)
{
	PGnotify *n;
	int got = 0;

	if (!PQconsumeInput(w->c->conn) ||
	    PQstatus(w->c->conn) != CONNECTION_OK)
		return -EIO;
	while ((n = PQnotifies(w->c->conn))) {
		got++;
		PQfreemem(n);
	}
	return got;
}

int idx_pg_watch_wait(struct idx_watch *ww, int timeout_ms)
{
	struct pg_watch *w = (struct pg_watch *)ww;
	struct pollfd pfd = { .fd = PQsocket(w->c->conn), .events = POLLIN };
	int r;

	if (pfd.fd < 0)
		return -EIO;
	/* what came with the last answer, or meanwhile */
	if ((r = take(w)) != 0)
		return r < 0 ? r : 1;
	r = poll(&pfd, 1, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (r == 0)
		return 0;
	if (pfd.revents & (POLLERR | POLLNVAL))
		return -EIO;
	r = take(w);
	if (r < 0)
		return r;
	/* readable with nothing to take: the server's other messages, or
	   the end of the connection (take() says that next time) */
	return r > 0 ? 1 : 0;
}

void idx_pg_watch_close(struct idx_watch *ww)
{
	struct pg_watch *w = (struct pg_watch *)ww;

	if (!w)
		return;
	if (w->c)
		idx_pg_disconnect(w->c);
	free(w);
}
