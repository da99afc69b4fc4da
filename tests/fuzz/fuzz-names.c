/* fuzz-names.c — libFuzzer entry point for the name rules (SPEC §1).
 *
 * The input, cut at its first NUL, is a name. reg_check_name() and
 * reg_check_stage() are compared with the rule written out again here,
 * plainly: model and version names are 1-128 bytes of [A-Za-z0-9._-], not
 * starting with '.' or '-', not "stages"; stage names 1-64 bytes of the
 * same set, not starting with '.' or '-'. Trivial, but a name rule that
 * drifts from the spec lets a bad name into the store for good. The same
 * string is also given to chunkid_parse() (chunk ids as fsck and the CLI
 * name them): accepted exactly when it is 32 hex digits, and printed back
 * by chunkid_hex() as the same digits in lower case.
 */
#include "chunk/chunkid.h"
#include "registry/registry.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool rule(const char *s, size_t max, bool is_stage)
{
	size_t n = strlen(s), i;

	if (n < 1 || n > max || s[0] == '.' || s[0] == '-')
		return false;
	if (!is_stage && strcmp(s, "stages") == 0)
		return false;
	for (i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", s[i]))
			return false;
	return true;
}

static bool is_id(const char *s)
{
	size_t i;

	if (strlen(s) != 2 * MREG_ID_LEN)
		return false;
	for (i = 0; s[i]; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), hex[MREG_ID_HEX];
	struct mreg_id id;
	int r, i;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	r = reg_check_name(s);
	if ((r != 0 && r != -EINVAL) || (r == 0) != rule(s, 128, false))
		abort();
	r = reg_check_stage(s);
	if ((r != 0 && r != -EINVAL) || (r == 0) != rule(s, 64, true))
		abort();
	r = chunkid_parse(s, &id);
	if ((r != 0 && r != -EINVAL) || (r == 0) != is_id(s))
		abort();
	if (r == 0) {
		chunkid_hex(&id, hex);
		for (i = 0; i < 2 * MREG_ID_LEN; i++)
			if (hex[i] != tolower((unsigned char)s[i]))
				abort();
	}
	free(s);
	return 0;
}
