/* live.c — which processes live, and which drafts they write, told by
 * locks the system drops when a process dies (SPEC §2.3, §5): the index's
 * idx_lock()s, which every process of every host sharing the index sees
 * (lmdb: OFD byte locks; postgres: advisory locks, index.h). A PID says
 * nothing reliable: it is reused, a zombie answers kill(pid, 0), a daemon
 * in a container is PID 1 in its own namespace, and another host's PIDs
 * are another host's.
 *
 * Life tokens: every process that opens the registry holds the lock
 * (IDX_LOCK_LIFE, token) exclusive, token drawn at random. What a process
 * leaves in the index for as long as it lives (pending files, new files of
 * drafts before their first commit: META "pending/") carries the token; a
 * token nobody holds belongs to a dead process, and anyone may remove what
 * it left (reg_pending_cleanup, every few seconds in a daemon).
 *
 * Writers: a process holds (IDX_LOCK_WRITER, V) shared while it has a file
 * of draft V open for writing. Sealing V takes it exclusive inside its
 * write transaction, until the transaction ended (idx_txn_lock): a writer
 * that came first is seen (the seal fails with EBUSY), one that comes
 * later waits for the end of the seal's transaction and then finds the
 * version sealed (its open fails with EROFS). Nobody waits for the
 * exclusive lock: sealing polls it for a moment (a RELEASE the kernel
 * sends after close() returned may still be on its way), then gives up.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "log.h"

/* How long a seal waits for writers to go. */
#define SEAL_WAIT_MS 100

struct writer_ref {
	uint64_t version;
	unsigned n;
	struct writer_ref *next;
};

int reg_live_open(struct reg_registry *reg)
{
	uint64_t token;
	int tries, r;

	for (tries = 0; tries < 16; tries++) {
		if (getrandom(&token, sizeof(token), 0) != sizeof(token))
			return log_err(-EIO, "cannot draw a life token");
		token &= IDX_LOCK_ID_MAX - 1;
		if (token == 0)
			continue;
		r = idx_lock(reg->ix, IDX_LOCK_LIFE, token, false, false);
		if (r == 0) {
			reg->live_token = token;
			return 0;
		}
		if (r != -EAGAIN)
			return log_err(r, "cannot take a life token");
	}
	return log_err(-EAGAIN, "no free life token");
}

void reg_live_close(struct reg_registry *reg)
{
	struct writer_ref *w;

	while ((w = reg->writer_refs)) {
		reg->writer_refs = w->next;
		idx_unlock(reg->ix, IDX_LOCK_WRITER, w->version);
		free(w);
	}
	if (reg->live_token)
		idx_unlock(reg->ix, IDX_LOCK_LIFE, reg->live_token);
	reg->live_token = 0;
}

bool reg_live_token_alive(struct reg_registry *reg, uint64_t token)
{
	if (token == reg->live_token)
		return true;
	if (token == 0 || token >= IDX_LOCK_ID_MAX)
		return false;
	/* cannot tell (< 0): keep what it left */
	return idx_lock_held(reg->ix, IDX_LOCK_LIFE, token) != 0;
}

int reg_writers_enter(struct reg_registry *reg, uint64_t version)
{
	struct writer_ref *w;
	int r = 0;

	pthread_mutex_lock(&reg->writers_lock);
	for (w = reg->writer_refs; w; w = w->next)
		if (w->version == version)
			break;
	if (!w) {
		w = calloc(1, sizeof(*w));
		/* waits only while a seal's transaction runs */
		if (!w)
			r = -ENOMEM;
		else if ((r = idx_lock(reg->ix, IDX_LOCK_WRITER, version,
				       true, true)) < 0)
			log_err(r, "cannot take the writer lock of version "
				"inode %llu", (unsigned long long)version);
		if (r < 0) {
			free(w);
			pthread_mutex_unlock(&reg->writers_lock);
			return r;
		}
		w->version = version;
		w->next = reg->writer_refs;
		reg->writer_refs = w;
	}
	w->n++;
	pthread_mutex_unlock(&reg->writers_lock);
	return 0;
}

void reg_writers_leave(struct reg_registry *reg, uint64_t version)
{
	struct writer_ref **pp, *w;

	pthread_mutex_lock(&reg->writers_lock);
	for (pp = &reg->writer_refs; (w = *pp); pp = &w->next)
		if (w->version == version)
			break;
	if (w && --w->n == 0) {
		*pp = w->next;
		free(w);
		idx_unlock(reg->ix, IDX_LOCK_WRITER, version);
	}
	pthread_mutex_unlock(&reg->writers_lock);
}

int reg_writers_none_txn(struct idx_txn *t, uint64_t version)
{
	return idx_txn_lock(t, IDX_LOCK_WRITER, version, SEAL_WAIT_MS);
}
