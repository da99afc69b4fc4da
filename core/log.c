/* log.c — leveled logging to stderr or syslog. */
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

static enum log_level min_level = LOG_LVL_WARN;
static int to_syslog;
static const char *prog = "mreg";

void log_set_level(enum log_level lvl) { min_level = lvl; }
void log_set_prog(const char *p) { prog = p; }

void log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	to_syslog = 1;
}

static void (*sink)(void *arg, enum log_level lvl, const char *msg);
static void *sink_arg;

void log_set_sink(void (*fn)(void *arg, enum log_level lvl, const char *msg),
		  void *arg)
{
	sink = fn;
	sink_arg = arg;
}

__attribute__((format(printf, 3, 0)))
static void vlog(enum log_level lvl, int err, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const name[] = { "error", "warning", "info", "debug" };
	char buf[1024];
	int n;

	if (lvl > min_level)
		return;
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		return;
	if (err < 0 && (size_t)n < sizeof(buf))
		snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(-err));
	if (sink)
		sink(sink_arg, lvl, buf);
	else if (to_syslog)
		syslog(prio[lvl], "%s", buf);
	else
		fprintf(stderr, "%s: %s: %s\n", prog, name[lvl], buf);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(lvl, 0, fmt, ap);
	va_end(ap);
}

int log_err(int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, r, fmt, ap);
	va_end(ap);
	return r;
}

int log_warn(int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_WARN, r, fmt, ap);
	va_end(ap);
	return r;
}
