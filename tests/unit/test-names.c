/* test-names.c — the name rules of registry/names.h (SPEC §1), pure: the
 * one place the registry and the config take them from. */
#include "registry/names.h"

#include <errno.h>
#include <string.h>

#include "check.h"

static char *repeat(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

int main(void)
{
	static const char *const good[] = {
		"churn", "Churn-2", "v1.0", "a_b", "7", "x.", "A-",
	};
	static const char *const bad[] = {
		"", ".hidden", "-x", "a/b", "a b", "é", "a\tb", "stages",
		"a:b", "a*", "..",
	};
	char buf[300];
	uint64_t v;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK_EQ(reg_check_name(good[i]), 0, "name '%s'", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ(reg_check_name(bad[i]), -EINVAL, "not a name: '%s'",
			 bad[i]);
	CHECK_EQ(reg_check_name(repeat(buf, 'a', REG_NAME_MAX)), 0,
		 "128 bytes is a name");
	CHECK_EQ(reg_check_name(repeat(buf, 'a', REG_NAME_MAX + 1)), -EINVAL,
		 "129 bytes is not");
	CHECK_EQ(reg_check_stage("Production"), 0, "stage 'Production'");
	CHECK_EQ(reg_check_stage("stages"), 0, "'stages' may name a stage");
	CHECK_EQ(reg_check_stage(".tmp"), -EINVAL, "not a stage: '.tmp'");
	CHECK_EQ(reg_check_stage(repeat(buf, 'S', REG_STAGE_MAX)), 0,
		 "64 bytes is a stage");
	CHECK_EQ(reg_check_stage(repeat(buf, 'S', REG_STAGE_MAX + 1)),
		 -EINVAL, "65 bytes is not");
	CHECK_EQ(reg_check_fname(".anything goes: é"), 0,
		 "a file name may hold any byte but '/'");
	CHECK_EQ(reg_check_fname(repeat(buf, 'f', REG_FNAME_MAX)), 0,
		 "255 bytes is a file name");
	CHECK_EQ(reg_check_fname(repeat(buf, 'f', REG_FNAME_MAX + 1)),
		 -ENAMETOOLONG, "256 bytes is too long");
	CHECK_EQ(reg_check_fname(""), -EINVAL, "'' is no file name");
	CHECK_EQ(reg_check_fname("."), -EINVAL, "'.' is no file name");
	CHECK_EQ(reg_check_fname(".."), -EINVAL, "'..' is no file name");
	CHECK_EQ(reg_check_fname("a/b"), -EINVAL, "'a/b' is no file name");
	CHECK(reg_name_is_integer("42", &v) && v == 42, "'42' is version 42");
	CHECK(!reg_name_is_integer("042", &v), "'042' is not a number");
	CHECK(!reg_name_is_integer("4a", &v), "'4a' is not a number");
	CHECK(!reg_name_is_integer("", &v), "'' is not a number");
	CHECK(reg_name_is_integer("999999999999999999", NULL),
	      "18 digits are");
	CHECK(!reg_name_is_integer("1000000000000000000", &v),
	      "19 digits are not");
	CHECK(reg_name_char('_') && !reg_name_char('/') &&
	      !reg_name_char(' '), "the byte set");
	return check_done();
}
