/* util.c — small helpers every layer may use (util.h). */
#include "util.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

const char *util_time_iso(int64_t ns, bool ms, char *buf, size_t size)
{
	time_t s = (time_t)(ns / 1000000000);
	struct tm tm;

	if (!gmtime_r(&s, &tm)) {
		snprintf(buf, size, "?");
		return buf;
	}
	if (ms)
		snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec,
			 (int)(ns % 1000000000 / 1000000));
	else
		strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

const char *util_uid_name(uid_t uid, char *buf, size_t size)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		snprintf(buf, size, "%s", res->pw_name);
	else
		snprintf(buf, size, "%u", (unsigned)uid);
	return buf;
}

bool util_decimal(const char *s, size_t len, double *ret)
{
	locale_t c, old;
	char buf[64], *end;
	double v;

	if (len == 0 || len >= sizeof(buf) || memchr(s, 0, len))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (strspn(buf, "0123456789+-.eE") != len)
		return false;
	if (!(c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0)))
		return false;
	old = uselocale(c);
	v = strtod(buf, &end);
	uselocale(old);
	freelocale(c);
	if (end != buf + len || !isfinite(v))
		return false;
	if (ret)
		*ret = v;
	return true;
}

char *util_path_absolute(const char *path)
{
	char *cwd, *s;

	if (path[0] == '/')
		return strdup(path);
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return errno == ENOMEM ? NULL : strdup(path);
	if (asprintf(&s, "%s/%s", cwd, path) < 0)
		s = NULL;
	free(cwd);
	return s;
}

int util_disk_free(int fd, uint64_t min_free, uint64_t *ret_avail,
		   uint64_t *ret_floor)
{
	struct statvfs sv;
	uint64_t floor;

	if (fstatvfs(fd, &sv) < 0)
		return -errno;
	floor = (uint64_t)sv.f_blocks * sv.f_frsize / 100 * 5;
	*ret_floor = floor > min_free ? floor : min_free;
	*ret_avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}
