/* util.h — small helpers every layer may use (a leaf: includes only the
 * C library). */
#ifndef MREG_UTIL_H
#define MREG_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <time.h>

/* A parameter a function must take (a callback's signature, a handler
 * of a table) but does not need: -Wunused-parameter is on, and this says
 * the omission is meant. */
#define UNUSED __attribute__((unused))

/* Makes room for element n of the array v of cap elements (doubling,
 * 16 at first): 0, or -ENOMEM with v and cap unchanged.
 *
 *	if ((r = ARRAY_GROW(v, cap, n)) < 0)
 *		return r;
 *	v[n++] = x;
 */
#define ARRAY_GROW(v, cap, n) ({					\
	int r_ = 0;							\
	if ((n) >= (cap)) {						\
		size_t c_ = (cap) ? (cap) * 2 : 16;			\
		__typeof__(v) nv_ = reallocarray((v), c_, sizeof(*(v)));\
		if (nv_) {						\
			(v) = nv_;					\
			(cap) = c_;					\
		} else {						\
			r_ = -ENOMEM;					\
		}							\
	}								\
	r_;								\
})

/* The wall clock in ns since the epoch (what records and the audit
 * keep). */
static inline int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A monotonic clock in ns (durations, deadlines, rate windows). */
static inline int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ns (since the epoch) as ISO 8601 in UTC into buf: "2026-12-07T13:00:00Z",
 * with milliseconds ("...:00.123Z") when ms. Returns buf. The audit
 * records', the history files' and the CLI's times. */
const char *util_time_iso(int64_t ns, bool ms, char *buf, size_t size);

/* The user name of uid, or its number: buf (size bytes, truncated). */
const char *util_uid_name(uid_t uid, char *buf, size_t size);

/* Whether s[0..len) is a plain decimal number — digits, sign, point,
 * exponent; no blanks, no hex floats, no inf or nan, which strtod() would
 * also take — read in the C locale whatever LC_NUMERIC says ("0.9" must
 * not depend on a decimal comma), and finite. Its value in *ret (may be
 * NULL) when it is. The one rule for metric values, the config's metric
 * gates and the CLI's numbers. */
bool util_decimal(const char *s, size_t len, double *ret);

/* path made absolute against the current directory, not resolved (a
 * symlink stays a symlink), in memory the caller frees: a daemon changes
 * to / when it detaches and would look somewhere else. NULL when out of
 * memory; path itself (a copy) when the directory cannot be named. */
char *util_path_absolute(const char *path);

/* What the file system of fd has free for an unprivileged writer (in
 * *ret_avail) and the floor it must keep free (in *ret_floor): the larger
 * of min_free and 5 % of its size. The one rule of the caches that share
 * a disk with the store and must never fill it (the serving cache's
 * copies, the host's chunk cache). -errno of fstatvfs(). */
int util_disk_free(int fd, uint64_t min_free, uint64_t *ret_avail,
		   uint64_t *ret_floor);

#endif
