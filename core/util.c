/* util.c — small helpers every layer may use (util.h). */
#include "util.h"

#include <locale.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

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
