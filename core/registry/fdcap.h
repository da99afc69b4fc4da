/* fdcap.h — the daemon's descriptors spent on behalf of users ([limits] in
 * mreg.conf).
 *
 * A file written out of order holds a spool file, one descriptor of the
 * daemon's, until its next commit (close, fsync); without a cap one user
 * holding files open could take every descriptor, and the other users'
 * writes, the daemon's packs, index and hooks would fail with EMFILE. Two
 * rules:
 *
 *   open_files_per_user  a user's spools at once: past it, that user's
 *                        next one is refused with EMFILE, no one else's;
 *   open_files_reserve   the highest descriptor numbers are kept for the
 *                        daemon's own work: a spool is refused when the
 *                        descriptor it got lies within `reserve` of
 *                        RLIMIT_NOFILE. The kernel gives the lowest free
 *                        number, so such a number means fewer than
 *                        `reserve` are left, and spools never hold one of
 *                        the top `reserve` numbers.
 *
 * The caller brackets each descriptor: fdcap_take() before opening it,
 * fdcap_admit() once opened, fdcap_give() after closing it.
 */
#ifndef MREG_FDCAP_H
#define MREG_FDCAP_H

#include <stdint.h>
#include <sys/types.h>

struct fdcap;

/* A cap of per_user descriptors a user, keeping reserve for the daemon.
 * -EINVAL (zero per_user), -ENOMEM. */
int fdcap_new(unsigned per_user, unsigned reserve, struct fdcap **ret);
/* Frees; takes NULL. */
void fdcap_free(struct fdcap *c);

/* Counts one more descriptor for uid: 0, or -EMFILE when uid holds its
 * cap already (logged once until it falls below), -ENOMEM. c may be NULL
 * (no cap). */
int fdcap_take(struct fdcap *c, uid_t uid);
/* Checks descriptor fd, just opened after fdcap_take(uid), against the
 * reserve: returns fd, or closes it, gives uid's count back and returns
 * -EMFILE. */
int fdcap_admit(struct fdcap *c, uid_t uid, int fd);
/* Gives back what fdcap_take() counted (after closing, or when the open
 * failed). */
void fdcap_give(struct fdcap *c, uid_t uid);

struct fdcap_stats {
	uint64_t held;          /* descriptors counted now */
	uint64_t refused;       /* EMFILE answers so far */
};
void fdcap_stats(struct fdcap *c, struct fdcap_stats *ret);

#endif
