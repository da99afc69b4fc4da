/* test-util.c — the leaf helpers of core/util.h: the one decimal-number
 * rule (metric values, the config's metric gates, the CLI's numbers),
 * user names, ARRAY_GROW and the clocks. */
#include "util.h"

#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static bool dec(const char *s, double *ret)
{
	return util_decimal(s, strlen(s), ret);
}

static void test_decimal(void)
{
	static const struct { const char *s; double v; } good[] = {
		{ "0", 0 }, { "1", 1 }, { "-2.5", -2.5 }, { "+0.5", 0.5 },
		{ "1e3", 1000 }, { "2.5E-1", 0.25 }, { ".5", 0.5 },
		{ "7.", 7 }, { "0.9", 0.9 },
	};
	static const char *const bad[] = {
		"", " 1", "1 ", "\t1", "0x10", "0X1p4", "inf", "-inf", "nan",
		"NAN", "infinity", "1e999", "-1e999", "1,5", "1.2.3", "e",
		"+", "-", ".", "1e", "1_000", "1x",
	};
	char big[80];
	double v;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = -99;
		CHECK(dec(good[i].s, &v) && v == good[i].v,
		      "'%s' is the decimal %g", good[i].s, good[i].v);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(!dec(bad[i], &v), "'%s' is not a decimal number", bad[i]);
	CHECK(dec("42", NULL), "the value may be left unread");
	/* a length, not a NUL: the number ends where len says */
	CHECK(util_decimal("12;x", 2, &v) && v == 12,
	      "only the first len bytes are read");
	CHECK(!util_decimal("1\0002", 3, &v), "a NUL inside is refused");
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(!dec(big, &v), "79 digits are refused (longer than any metric)");
	/* LC_NUMERIC with a decimal comma does not change the rule */
	if (setlocale(LC_NUMERIC, "de_DE.UTF-8")) {
		CHECK(dec("0.9", &v) && v == 0.9, "'0.9' under de_DE");
		CHECK(!dec("0,9", &v), "'0,9' under de_DE is refused");
		setlocale(LC_NUMERIC, "C");
	} else {
		CHECK(1, "decimal-comma locale # SKIP de_DE.UTF-8 not "
		      "installed");
	}
}

static void test_uid_name(void)
{
	char buf[64];

	CHECK(strcmp(util_uid_name(0, buf, sizeof(buf)), "root") == 0,
	      "uid 0 is root");
	CHECK(strcmp(util_uid_name(4000000001u, buf, sizeof(buf)),
		     "4000000001") == 0, "an unknown uid is its number");
	CHECK(util_uid_name(0, buf, 3) == buf && strcmp(buf, "ro") == 0,
	      "a short buffer is filled and cut, and returned");
}

static void test_grow(void)
{
	int *v = NULL, r = 0;
	size_t cap = 0, n;

	for (n = 0; n < 1000 && r == 0; n++) {
		r = ARRAY_GROW(v, cap, n);
		if (r == 0)
			v[n] = (int)n;
	}
	CHECK(r == 0 && cap >= 1000 && cap < 2048,
	      "1000 elements: capacity %zu, doubling from 16", cap);
	for (n = 0; n < 1000 && v[n] == (int)n; n++)
		;
	CHECK_EQ(n, 1000, "the elements survive each growth");
	free(v);
}

static void test_time_iso(void)
{
	char buf[40];

	CHECK(!strcmp(util_time_iso(0, false, buf, sizeof(buf)),
		      "1970-01-01T00:00:00Z"), "the epoch");
	CHECK(!strcmp(util_time_iso(1234567890123456789LL, true, buf,
				    sizeof(buf)), "2009-02-13T23:31:30.123Z"),
	      "with milliseconds (cut, not rounded)");
	CHECK(!strcmp(util_time_iso(1234567890999999999LL, false, buf,
				    sizeof(buf)), "2009-02-13T23:31:30Z"),
	      "seconds only");
}

static void test_clocks(void)
{
	int64_t a = mono_ns(), b = mono_ns(), w = now_ns();

	CHECK(b >= a, "the monotonic clock does not go back");
	CHECK(w > (int64_t)1700000000 * 1000000000,
	      "the wall clock is in ns since the epoch");
}

static void test_path_absolute(void)
{
	char *a, *cwd = getcwd(NULL, 0), want[4200];

	a = util_path_absolute("/x/../y");
	CHECK(a && !strcmp(a, "/x/../y"), "an absolute path stays as given");
	free(a);
	snprintf(want, sizeof(want), "%s/sub/f", cwd ? cwd : "?");
	a = util_path_absolute("sub/f");
	CHECK(cwd && a && !strcmp(a, want), "a relative one is joined to the "
	      "current directory (%s)", a ? a : "NULL");
	free(a);
	free(cwd);
}

int main(void)
{
	test_decimal();
	test_uid_name();
	test_grow();
	test_time_iso();
	test_clocks();
	test_path_absolute();
	return check_done();
}
