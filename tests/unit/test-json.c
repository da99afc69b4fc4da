/* test-json.c — core/json.h: the escaper's exact bytes (the audit
 * records' format depends on them), and json_get() reading back exactly
 * what json_quote() wrote, for any bytes. */
#include "json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static bool quoted_is(const void *p, size_t len, const char *want)
{
	struct strbuf sb = STRBUF_INIT;
	bool ok;

	json_quote(&sb, p, len);
	ok = sb.len == strlen(want) && !memcmp(sb.buf, want, sb.len);
	if (!ok)
		printf("# got %.*s\n", (int)sb.len, sb.buf);
	strbuf_release(&sb);
	return ok;
}

static void test_quote(void)
{
	CHECK(quoted_is("abc", 3, "\"abc\""), "plain ASCII as it is");
	CHECK(quoted_is("a\"b\\c", 5, "\"a\\\"b\\\\c\""),
	      "quote and backslash escaped");
	CHECK(quoted_is("\n\t\r\x01\x7f", 5, "\"\\n\\t\\u000d\\u0001\\u007f\""),
	      "newline, tab; other controls and DEL as \\u00XX");
	CHECK(quoted_is("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
			"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""),
	      "valid UTF-8 (2, 3 and 4 bytes) copied");
	CHECK(quoted_is("\xff\xc0\xaf\xed\xa0\x80", 6,
			"\"\\u00ff\\u00c0\\u00af\\u00ed\\u00a0\\u0080\""),
	      "invalid bytes, overlong forms and surrogates as \\u00XX");
	CHECK(quoted_is("\xe2\x82", 2, "\"\\u00e2\\u0082\""),
	      "a sequence cut short is two invalid bytes");
	CHECK(quoted_is("a\0b", 3, "\"a\\u0000b\""), "a NUL kept");
	{
		struct strbuf sb = STRBUF_INIT;

		json_quotes(&sb, NULL);
		CHECK(sb.len == 2 && !memcmp(sb.buf, "\"\"", 2),
		      "json_quotes(NULL) is \"\"");
		strbuf_release(&sb);
	}
}

static int get(const char *json, const char *key, char *buf, size_t size)
{
	return json_get(json, strlen(json), key, buf, size);
}

static void test_get(void)
{
	const char *rec = "{\"seq\":12,\"prev\":\"ab01\",\"op\":\"promote\","
			  "\"meta\":{\"op\":\"x\",\"l\":[1,\"}\"]},"
			  "\"s\":\"a\\\"b\\u00e9\\ud83d\\ude00\",\"ok\":true,"
			  "\"n\":null}";
	char buf[64];

	CHECK(get(rec, "seq", buf, sizeof(buf)) == 2 && !strcmp(buf, "12"),
	      "a number as its text");
	CHECK(get(rec, "prev", buf, sizeof(buf)) == 4 &&
	      !strcmp(buf, "ab01"), "a string");
	CHECK(get(rec, "op", buf, sizeof(buf)) == 7 &&
	      !strcmp(buf, "promote"),
	      "the top level's member, not a nested one of the same name");
	CHECK_EQ(get(rec, "l", buf, sizeof(buf)), -ENOENT,
		 "a nested member is not found");
	CHECK_EQ(get(rec, "meta", buf, sizeof(buf)), -ENOENT,
		 "an object value is not returned");
	CHECK(get(rec, "s", buf, sizeof(buf)) == 8 &&
	      !memcmp(buf, "a\"b\xe9\xf0\x9f\x98\x80", 9),
	      "escapes undone: \\u00XX is one byte, a surrogate pair UTF-8");
	CHECK(get(rec, "ok", buf, sizeof(buf)) == 4 && !strcmp(buf, "true"),
	      "true as its text");
	CHECK(get(rec, "n", buf, sizeof(buf)) == 4 && !strcmp(buf, "null"),
	      "null as its text");
	CHECK_EQ(get(rec, "missing", buf, sizeof(buf)), -ENOENT,
		 "a missing member is -ENOENT");
	CHECK_EQ(get(rec, "prev", buf, 4), -ERANGE,
		 "a value that does not fit is -ERANGE");
	CHECK_EQ(get(rec, "seq", buf, 2), -ERANGE,
		 "a number that does not fit is -ERANGE");
	CHECK_EQ(json_get(rec, 12, "prev", buf, sizeof(buf)), -EINVAL,
		 "the length bounds the reading (a record cut short)");
	CHECK_EQ(json_get(rec, 10, "seq", buf, sizeof(buf)), 2,
		 "a scalar ends where the length does");
	CHECK_EQ(get("[1]", "a", buf, sizeof(buf)), -EINVAL,
		 "not an object");
	CHECK_EQ(get("{\"a\" 1}", "a", buf, sizeof(buf)), -EINVAL,
		 "no colon");
	CHECK_EQ(get("{\"a\":\"x\\q\"}", "a", buf, sizeof(buf)), -EINVAL,
		 "an unknown escape");
	CHECK_EQ(get("{\"a\":\"\\ud800\"}", "a", buf, sizeof(buf)), -EINVAL,
		 "a lone surrogate");
	CHECK_EQ(get("{}", "a", buf, sizeof(buf)), -ENOENT, "an empty object");
}

/* Any bytes written by json_quote come back from json_get as they were. */
static void test_round_trip(void)
{
	static const char mix[] = "a\"\\\n\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x01";
	static uint8_t in[200];
	char out[sizeof(in) * 6 + 1];
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	int i, bad = 0, n;
	size_t len, j;

	for (i = 0; i < 20000; i++) {
		struct strbuf sb = STRBUF_INIT;

		len = (size_t)(x % sizeof(in));
		for (j = 0; j < len; j++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* half the time ASCII and UTF-8 heavy, else any byte */
			in[j] = i & 1 ? (uint8_t)x : (uint8_t)mix[x % 15];
		}
		strbuf_adds(&sb, "{\"x\":[\"k\"],\"k\":");
		json_quote(&sb, in, len);
		strbuf_adds(&sb, "}");
		n = json_get(sb.buf, sb.len, "k", out, sizeof(out));
		if (n != (int)len || memcmp(out, in, len) != 0)
			bad++;
		strbuf_release(&sb);
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	}
	CHECK_EQ(bad, 0, "20,000 random byte strings round-trip");
}

int main(void)
{
	test_quote();
	test_get();
	test_round_trip();
	return check_done();
}
