/* live.c — which processes live, and which drafts they write, told by
 * locks the kernel drops when a process dies (SPEC §2.3, §5). A PID says
 * nothing reliable: it is reused, a zombie answers kill(pid, 0), and a
 * daemon in a container is PID 1 in its own namespace.
 *
 * DIR/run/live: every process that opens the store holds an OFD write lock
 * on one byte of it, at a random offset below 2^62: its life token. What a
 * process leaves in the index for as long as it lives (pending files, new
 * files of drafts before their first commit: META "pending/") carries the
 * token; a token whose byte nobody holds belongs to a dead process, and
 * anyone may remove what it left (reg_pending_cleanup, every few seconds in a
 * daemon).
 *
 * DIR/run/writers: a process holds a read lock on byte V while it has a
 * file of draft V open for writing. Sealing V takes the write lock on byte V
 * inside its write transaction and keeps it until the transaction ended:
 * a writer that came first is seen (the seal fails with EBUSY), one that
 * comes later waits for the end of the seal's transaction and then finds
 * the version sealed (its open fails with EROFS). Nobody waits for the
 * write lock: sealing polls it for a moment (a RELEASE the kernel sends
 * after close() returned may still be on its way), then gives up.
 *
 * OFD locks (F_OFD_SETLK) belong to the open file description: two
 * descriptions in one process conflict like two processes, so a seal in
 * the daemon sees the daemon's own writers; a forked child never holds
 * them past its exec (O_CLOEXEC).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define TOKEN_MASK ((1ULL << 62) - 1)

/* How long a seal waits for writers to go (5 ms steps). */
#define SEAL_WAIT_STEPS 20

struct writer_ref {
	uint64_t version;
	unsigned n;
	struct writer_ref *next;
};

static int byte_lock(int fd, int cmd, short type, uint64_t off)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
			    .l_start = (off_t)off, .l_len = 1 };

	while (fcntl(fd, cmd, &fl) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int run_file(struct reg_registry *reg, const char *name)
{
	char *path;
	int fd;

	if (asprintf(&path, "%s/%s", reg->run_dir, name) < 0)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		fd = log_err(-errno, "cannot open '%s'", path);
	free(path);
	return fd;
}

int reg_live_open(struct reg_registry *reg)
{
	uint64_t token;
	int tries, r;

	reg->live_fd = run_file(reg, "live");
	if (reg->live_fd < 0)
		return reg->live_fd;
	reg->writers_fd = run_file(reg, "writers");
	if (reg->writers_fd < 0)
		return reg->writers_fd;
	for (tries = 0; tries < 16; tries++) {
		if (getrandom(&token, sizeof(token), 0) != sizeof(token))
			return log_err(-EIO, "cannot draw a life token");
		token &= TOKEN_MASK;
		if (token == 0)
			continue;
		r = byte_lock(reg->live_fd, F_OFD_SETLK, F_WRLCK, token);
		if (r == 0) {
			reg->live_token = token;
			return 0;
		}
		if (r != -EAGAIN && r != -EACCES)
			return log_err(r, "cannot lock '%s/live'",
				       reg->run_dir);
	}
	return log_err(-EAGAIN, "no free life token in '%s/live'",
		       reg->run_dir);
}

void reg_live_close(struct reg_registry *reg)
{
	struct writer_ref *w;

	while ((w = reg->writer_refs)) {
		reg->writer_refs = w->next;
		free(w);
	}
	if (reg->writers_fd >= 0)
		close(reg->writers_fd);
	if (reg->live_fd >= 0)
		close(reg->live_fd);
	reg->writers_fd = reg->live_fd = -1;
	reg->live_token = 0;
}

bool reg_live_token_alive(struct reg_registry *reg, uint64_t token)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = (off_t)token, .l_len = 1 };

	if (token == reg->live_token)
		return true;
	if (token == 0 || token > TOKEN_MASK)
		return false;
	if (fcntl(reg->live_fd, F_OFD_GETLK, &fl) < 0)
		return true; /* cannot tell: keep what it left */
	return fl.l_type != F_UNLCK;
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
		else if ((r = byte_lock(reg->writers_fd, F_OFD_SETLKW,
					F_RDLCK, version)) < 0)
			log_err(r, "cannot lock '%s/writers'", reg->run_dir);
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
		byte_lock(reg->writers_fd, F_OFD_SETLK, F_UNLCK, version);
	}
	pthread_mutex_unlock(&reg->writers_lock);
}

/* The description through which this thread's transaction holds the seal
 * locks it took; closed (which drops them) when the transaction ended. */
static __thread int seal_fd = -1;

int reg_writers_none_txn(struct reg_registry *reg, uint64_t version)
{
	struct timespec step = { 0, 5 * 1000 * 1000 };
	int i, r;

	if (seal_fd < 0) {
		seal_fd = run_file(reg, "writers");
		if (seal_fd < 0)
			return seal_fd;
	}
	for (i = 0; i < SEAL_WAIT_STEPS; i++) {
		r = byte_lock(seal_fd, F_OFD_SETLK, F_WRLCK, version);
		if (r != -EAGAIN && r != -EACCES)
			return r;
		nanosleep(&step, NULL);
	}
	return -EBUSY;
}

void reg_writers_txn_end(void)
{
	if (seal_fd >= 0)
		close(seal_fd);
	seal_fd = -1;
}
