/* close.c — what the close of a written file means (SPEC §2.1, §5).
 *
 * Every close(2) and fsync(2) commits what was written (reg_file_flush:
 * close() returns the commit's error). The first close by a process that
 * created or wrote a new file of a draft makes it outlive its writer
 * (before that, a crash removes it). A pending file, one created at a
 * model root, is registered as its model's next version at its last close,
 * in the transaction of that close's commit (pending.c); it is removed
 * instead when a process that wrote it dies by a signal (the refusal is
 * audited) or when its registration fails. The file system tells the last
 * close from the others (struct reg_closing); when it cannot, the release
 * of the last handle decides (reg_file_release).
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* ---- when a pending file is done (SPEC §2.1) ---------------------------- */

/* Why a pending file was removed instead of registered, for the log
 * and the audit. */
struct discard_arg {
	struct reg_registry *reg;
	const struct reg_caller *who;
	uint64_t ino;
	int pid, sig;             /* a writer killed by sig, or */
	int err;                  /* the error its registration failed with */
	bool dropped;
};

static int discard_txn(struct idx_txn *t, void *arg)
{
	struct discard_arg *a = arg;
	struct inode_rec f, m;
	const char *sig = sigabbrev_np(a->sig);
	char reason[160];
	int r;

	a->dropped = false;
	r = reg_inode_get_txn(t, a->ino, &f);
	if (r == -ENOENT || (r == 0 && (f.kind != REG_PENDING ||
					(f.flags & INODE_TRASHED))))
		return 0; /* unlinked or renamed to a version meanwhile */
	if (r < 0)
		return r;
	/* a failed registration: a temporary name waits for its rename
	   (rsync removes its own), and a file another process made may
	   still be written through another mount */
	if (!a->sig &&
	    (f.name[0] == '.' || !reg_pending_ours_txn(a->reg, t, f.ino)))
		return 0;
	if ((r = reg_inode_get_txn(t, f.model, &m)) < 0 ||
	    (r = reg_pending_drop_txn(t, &f)) < 0)
		return r;
	a->dropped = true;
	if (!a->sig)
		return 0; /* close() said why; the log says the rest */
	snprintf(reason, sizeof(reason), "process %d, which wrote it, was "
		 "killed by signal %d (SIG%s): a partial file is never "
		 "registered", a->pid, a->sig, sig ? sig : "?");
	return reg_audit_put_txn(t, a->who, &(struct audit_ev){
		.op = "register", .result = "refused", .model = m.name,
		.path = f.name, .reason = reason });
}

/* Removes pending file ws (its lock held) instead of registering it: a
 * process that wrote it was killed, or its registration failed (see
 * discard_txn). */
static int ws_discard(struct reg_registry *reg, struct wstate *ws,
		      const struct reg_caller *who)
{
	struct discard_arg a = { .reg = reg, .who = who, .ino = ws->ino,
				 .pid = ws->killed_pid,
				 .sig = ws->killed_sig, .err = ws->failed };
	int r;

	r = reg_change(reg, discard_txn, &a);
	if (r < 0)
		return log_err(r, "cannot remove inode %llu, which is not "
			       "to be registered", (unsigned long long)ws->ino);
	ws->discarding = false;
	if (!a.dropped)
		return 0;
	if (a.sig)
		log_info("discarded inode %llu: process %d, which wrote it, "
			 "was killed by signal %d", (unsigned long long)ws->ino,
			 a.pid, a.sig);
	else
		log_info("discarded inode %llu: its writer closed it but it "
			 "could not be registered (%s)",
			 (unsigned long long)ws->ino, strerror(-a.err));
	ws->discarded = ws->sealed = true;
	ws->dirty = false;
	/* what it stored goes to gc; a mapping left reads it empty */
	if (reg_ws_empty(reg, ws) < 0)
		log_warn(-ENOMEM, "inode %llu keeps its bytes until its "
			 "last handle is released", (unsigned long long)ws->ino);
	return 0;
}

/* Did process pid create or write ws (or is it impossible to tell)? */
static bool ws_wrote(const struct wstate *ws, int pid)
{
	int i;

	if (ws->nwpids > WS_WRITERS || pid <= 0)
		return true;
	for (i = 0; i < ws->nwpids; i++)
		if (ws->wpids[i] == pid)
			return true;
	return false;
}

/* The rule for a pending file (ws's lock held), applied at each close of
 * a descriptor and at the release of its last handle: the one place that
 * decides whether it becomes a version or goes. Until its last descriptor
 * is closed, each close commits what was written (close() returns the
 * commit's error). At the last close (or, when the file system could not
 * tell which close was the last, at the release of the last handle) it is
 * registered, complete, in the commit's transaction; it is removed
 * instead when a process that wrote it dies by a signal (audited), or
 * when that registration fails (a full disk: close() returns why). */
static int pending_closed(struct reg_registry *reg, struct wstate *ws,
			  const struct reg_caller *who,
			  const struct reg_closing *how)
{
	bool last = how->known && !how->others;
	int r;

	if (ws->discarding)
		return last ? ws_discard(reg, ws, who) : 0;
	if (ws->registered || ws->discarded || ws->done)
		return 0;
	ws->closer = *who;
	ws->closer.groups = NULL;
	ws->closer.ngroups = 0;
	ws->closer_known = true;
	if (how->signal && !ws->killed_sig && ws_wrote(ws, how->pid)) {
		ws->killed_pid = how->pid;
		ws->killed_sig = how->signal;
	}
	if (!last)
		return ws->killed_sig ? 0 : reg_ws_commit(reg, who, ws, 0);
	ws->done = true;
	if (!ws->killed_sig) {
		r = reg_ws_commit(reg, who, ws, COMMIT_REGISTER);
		if (r >= 0)
			return r; /* registered, or a temporary name that
				     waits for its rename */
		ws->failed = r;
	}
	ws->discarding = true;
	r = ws_discard(reg, ws, who);
	if (ws->failed)
		return ws->failed;
	if (r < 0)
		return r;
	/* a live process closed it last: its bytes went too */
	return how->signal ? 0 : -EIO;
}

/* ---- closing a handle --------------------------------------------------- */

/* Commits f's write state for a close by process pid (0: unknown) or an
 * fsync (pid 0): the first close by a process that created or wrote a
 * new file of a draft makes it outlive its writer. */
static int file_commit(struct reg_file *f, const struct reg_caller *who,
		       int pid)
{
	struct wstate *ws = f->ws;
	int r = 0;

	if (!f->writer || !ws)
		return 0;
	pthread_mutex_lock(&ws->lock);
	if ((ws->dirty || !ws->born) && !ws->discarded)
		r = reg_ws_commit(f->reg, who, ws,
				  ws_wrote(ws, pid) ? COMMIT_BIRTH : 0);
	pthread_mutex_unlock(&ws->lock);
	if (r < 0)
		atomic_fetch_add(&f->reg->errors, 1);
	return r;
}

int reg_file_flush(struct reg_file *f, const struct reg_caller *who)
{
	if (!f || !who)
		return -EINVAL;
	return file_commit(f, who, 0);
}

bool reg_file_pending(const struct reg_file *f)
{
	return f && f->writer && f->ws && f->kind == REG_PENDING;
}

bool reg_file_unfinished(const struct reg_file *f)
{
	/* read without the lock: a stale answer costs a look-up or
	   misses a writer that wrote after its first close (born) */
	return f && f->writer && f->ws &&
	       (f->kind == REG_PENDING || !f->ws->born);
}

void reg_file_writer(struct reg_file *f, int pid)
{
	struct wstate *ws = f ? f->ws : NULL;
	int i;

	if (!reg_file_unfinished(f))
		return;
	pthread_mutex_lock(&ws->lock);
	for (i = 0; i < ws->nwpids && i < WS_WRITERS; i++)
		if (ws->wpids[i] == pid)
			break;
	if (i == ws->nwpids) {
		if (i < WS_WRITERS)
			ws->wpids[i] = pid;
		ws->nwpids++;
	}
	pthread_mutex_unlock(&ws->lock);
}

int reg_file_close(struct reg_file *f, const struct reg_caller *who,
		   const struct reg_closing *how)
{
	struct wstate *ws;
	int r;

	if (!f || !who || !how)
		return -EINVAL;
	if (!reg_file_pending(f))
		return file_commit(f, who, how->pid);
	ws = f->ws;
	pthread_mutex_lock(&ws->lock);
	r = pending_closed(f->reg, ws, who, how);
	pthread_mutex_unlock(&ws->lock);
	if (r < 0)
		atomic_fetch_add(&f->reg->errors, 1);
	return r;
}

/* Is f the last handle of its write state? */
static bool last_handle(struct reg_file *f)
{
	bool only;

	pthread_mutex_lock(&f->reg->lock);
	only = f->ws->refs == 1;
	pthread_mutex_unlock(&f->reg->lock);
	return only;
}

/* The release of the last handle of a pending file: it is done now when
 * its last close was not seen (the file system could not tell which close
 * was the last); a removal that failed at its last close is tried again. */
static void pending_released(struct reg_file *f)
{
	static const struct reg_closing last = { .known = true };
	struct wstate *ws = f->ws;
	struct reg_caller who;
	int r;

	pthread_mutex_lock(&ws->lock);
	if (ws->closer_known)
		who = ws->closer;
	else
		reg_caller_self(&who);
	r = pending_closed(f->reg, ws, &who, &last);
	pthread_mutex_unlock(&ws->lock);
	if (r < 0)
		log_err(r, "cannot register inode %llu on release",
			(unsigned long long)f->ino);
}

void reg_file_release(struct reg_file *f)
{
	struct reg_caller self;
	bool last;
	int r;

	if (!f)
		return;
	if (f->ws) {
		last = !f->internal && last_handle(f);
		/* (a reader's handle may be the last one of a pending file
		   whose writers' closes saw the reader's descriptor) */
		if (last && f->kind == REG_PENDING)
			pending_released(f);
		/* bytes not committed yet (written through a mapping); a new
		   file whose writer's close was not seen */
		if (f->writer && !f->ws->sealed &&
		    (f->ws->dirty || (last && !f->ws->born))) {
			reg_caller_self(&self);
			r = reg_file_flush(f, &self);
			if (r < 0)
				log_err(r, "cannot commit inode %llu on release",
					(unsigned long long)f->ino);
		}
		reg_ws_put(f->reg, f->ws);
	}
	reg_file_free(f);
}
