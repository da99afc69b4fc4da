/* names.c — the name rules (names.h). */
#include "registry/names.h"

#include <errno.h>
#include <string.h>

bool reg_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static int check_word(const char *s, size_t max)
{
	size_t i, n;

	if (!s)
		return -EINVAL;
	n = strlen(s);
	if (n == 0 || n > max || s[0] == '.' || s[0] == '-')
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!reg_name_char(s[i]))
			return -EINVAL;
	return 0;
}

int reg_check_name(const char *s)
{
	if (check_word(s, REG_NAME_MAX) < 0 || strcmp(s, "stages") == 0)
		return -EINVAL;
	return 0;
}

int reg_check_stage(const char *s)
{
	return check_word(s, REG_STAGE_MAX);
}

bool reg_name_is_integer(const char *s, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i;

	if (!s[0] || (s[0] == '0' && s[1]) || strlen(s) > 18)
		return false;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (ret)
		*ret = v;
	return true;
}

int reg_check_fname(const char *s)
{
	size_t n = strlen(s);

	if (n > REG_FNAME_MAX)
		return -ENAMETOOLONG;
	if (n == 0 || strchr(s, '/') || strcmp(s, ".") == 0 ||
	    strcmp(s, "..") == 0)
		return -EINVAL;
	return 0;
}

bool reg_name_dot(const char *s)
{
	return s[0] == '.' && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}
