/* log.h — the daemon's and the tools' log, one place.
 *
 * Messages are lower case, no full stop, subject in quotes:
 *   return log_err(-ENOSPC, "cannot append to pack '%s'", name);
 * core/ never prints to stdout; the log goes to stderr (or syslog when the
 * daemon runs detached, see log_use_syslog()).
 */
#ifndef MREG_LOG_H
#define MREG_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Sets the lowest level that is written (default LOG_LVL_WARN). */
void log_set_level(enum log_level lvl);
/* Sends messages to syslog (daemon facility) instead of stderr. */
void log_use_syslog(const char *ident);
/* Sets the program name printed before each stderr message. */
void log_set_prog(const char *prog);

/* Sends every message (at or above the level) to fn instead: a tool that
 * wants the reason for a failure in its own one-line message. NULL restores
 * the default. */
void log_set_sink(void (*fn)(void *arg, enum log_level lvl, const char *msg),
		  void *arg);

void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Logs at error level and returns r (a negative errno), so that the reason
 * is logged where it is known and returned in the same statement. When r is
 * a negative errno, ": <strerror(-r)>" is appended. */
int log_err(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same at warning level. */
int log_warn(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));


#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
