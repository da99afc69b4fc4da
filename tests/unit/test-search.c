/* test-search.c — the query language of `mreg search`
 * (core/query/search.c).
 *
 * Queries run against a small table of candidate versions; matches()
 * returns the letters of the candidates a query selects ("AC"), so each
 * check reads as query -> expected set. */
#include "query/search.h"

#include <errno.h>
#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

/* "field=value" pairs; a field listed twice has two values. */
static const char *const cand_a[] = {
	"name=churn", "version=3", "stage=Production", "stage=Staging",
	"created=2026-01-15T10:00:00Z", "creator=alice", "tag.team=risk",
	"tag.note=say \"hi\" \\ back", "tag.quote=it's", "metric.auc=0.93",
	"metric.loss=0.12", "param.lr=0.001", "lineage.git_commit=abc123",
	"tag.glob=a*b", NULL,
};
static const char *const cand_b[] = {
	"name=churn", "version=2", "stage=Archived",
	"created=2025-12-01T09:30:00Z", "creator=bob", "tag.team=fraud",
	"metric.auc=0.88", "metric.loss=0.2", "param.lr=1e-3", NULL,
};
static const char *const cand_c[] = {
	"name=fraud-detector", "version=10", "created=2026-02-01T00:00:00Z",
	"creator=carol", "tag.team=growth", "metric.auc=0.95", "tag.glob=axb",
	NULL,
};
static const char *const cand_d[] = {
	"name=ranker", "version=1", "tag.team=risk", "metric.auc=high",
	"tag.Team=upper", NULL,
};
static const char *const *const cands[] = { cand_a, cand_b, cand_c, cand_d };
#define NCANDS (sizeof(cands) / sizeof(cands[0]))

/* Allocation fault injection: malloc and friends fail after fail_after
 * more successes while armed, and live counts what is not yet freed. The
 * sanitizers bring their own malloc, so this is left out under ASan. */
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif

#ifndef HAVE_ASAN
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

static bool armed;
static long fail_after, live;

static bool inject(void)
{
	if (!armed)
		return false;
	if (fail_after-- == 0) {
		errno = ENOMEM;
		return true;
	}
	return false;
}

void *malloc(size_t n)
{
	void *p = inject() ? NULL : __libc_malloc(n);

	live += armed && p;
	return p;
}

void *calloc(size_t n, size_t size)
{
	void *p = inject() ? NULL : __libc_calloc(n, size);

	live += armed && p;
	return p;
}

void *realloc(void *old, size_t n)
{
	void *p = inject() ? NULL : __libc_realloc(old, n);

	live += armed && p && !old;
	return p;
}

void free(void *p)
{
	live -= armed && p;
	__libc_free(p);
}
#endif

static int getter_calls;

static void getter(void *arg, const char *field,
		   void (*emit)(void *ectx, const char *value), void *ectx)
{
	const char *const *kv = arg;
	size_t flen = strlen(field);

	getter_calls++;
	for (; *kv; kv++)
		if (strncmp(*kv, field, flen) == 0 && (*kv)[flen] == '=')
			emit(ectx, *kv + flen + 1);
}

/* Letters of the matching candidates, or "ERR: <message>". */
static const char *matches(const char *q)
{
	static char out[256];
	struct search_query *sq = NULL;
	char err[200];
	size_t i, o = 0;
	int r;

	r = search_parse(q, &sq, err, sizeof(err));
	if (r < 0) {
		snprintf(out, sizeof(out), "ERR: %s", err);
		return out;
	}
	for (i = 0; i < NCANDS; i++)
		if (search_match(sq, getter, (void *)cands[i]))
			out[o++] = (char)('A' + i);
	out[o] = '\0';
	search_free(sq);
	return out;
}

#define CHECK_MATCH(q, want) do {					\
	const char *got_ = matches(q);					\
	CHECK(strcmp(got_, want) == 0, "%.70s%s -> '%s'", q,		\
	      strlen(q) > 70 ? "..." : "", want);			\
	if (strcmp(got_, want) != 0)					\
		printf("#   got '%s'\n", got_);				\
} while (0)

/* The error message of a malformed query, with the return value. */
#define CHECK_ERR(q, want) do {						\
	struct search_query *sq_ = (struct search_query *)0x1;		\
	char err_[200];							\
	int r_ = search_parse(q, &sq_, err_, sizeof(err_));		\
	CHECK(r_ == -EINVAL && strcmp(err_, want) == 0,			\
	      "error of %.50s%s: %s", q, strlen(q) > 50 ? "..." : "",	\
	      want);							\
	if (r_ != -EINVAL || strcmp(err_, want) != 0)			\
		printf("#   got %d '%s'\n", r_, err_);			\
	CHECK(sq_ == (struct search_query *)0x1,			\
	      "ret untouched on error");				\
} while (0)

static void test_basic(void)
{
	CHECK_MATCH("name = churn", "AB");
	CHECK_MATCH("version = 3", "A");
	CHECK_MATCH("creator = \"carol\"", "C");
	CHECK_MATCH("created >= 2026-01-01", "AC");
	CHECK_MATCH("lineage.git_commit = abc123", "A");
	CHECK_MATCH("tag.team = risk", "AD");
	CHECK_MATCH("tag.Team = upper", "D");
	CHECK_MATCH("TAG.team = risk", "AD");
	CHECK_MATCH("Stage = Archived", "B");
	/* no blanks needed around operators */
	CHECK_MATCH("metric.auc>=0.9", "ACD");
	CHECK_MATCH("version=3", "A");
	CHECK(strcmp(matches("\tname\n=\r'ranker' "), "D") == 0,
	      "tab, newline, return are blanks");
}

static void test_example(void)
{
	CHECK_MATCH("metric.auc >= 0.9 and (tag.team = \"risk\" or "
		    "tag.team = \"fraud\") and stage = \"Production\"", "A");
	CHECK_MATCH("metric.auc >= 0.85 and (tag.team = \"risk\" or "
		    "tag.team = \"fraud\") and stage = \"Archived\"", "B");
	CHECK_MATCH("metric.auc >= 0.9 and tag.team = \"risk\" and "
		    "stage = \"Production\"", "A");
}

static void test_precedence(void)
{
	/* a or (b and c): "and" binds tighter */
	CHECK_MATCH("name = ranker or name = churn and version = 2", "BD");
	CHECK_MATCH("(name = ranker or name = churn) and version = 2", "B");
	CHECK_MATCH("version = 2 and name = churn or name = ranker", "BD");
	/* not binds tighter than and */
	CHECK_MATCH("not name = churn and version = 1", "D");
	CHECK_MATCH("not (name = churn and version = 3)", "BCD");
	CHECK_MATCH("not name = churn or version = 3", "ACD");
	CHECK_MATCH("not not name = churn", "AB");
	CHECK_MATCH("((((name = churn))))", "AB");
	CHECK_MATCH("(name = churn) and (version = 3 or version = 2) and "
		    "not (stage = Archived)", "A");
	CHECK_MATCH("version = 1 or version = 2 or version = 3 or "
		    "version = 10", "ABCD");
	CHECK_MATCH("version >= 1 and version <= 3 and name = churn and "
		    "creator = bob", "B");
}

static void test_keywords_case(void)
{
	CHECK_MATCH("name = churn AND version = 3", "A");
	CHECK_MATCH("name = ranker Or version = 3", "AD");
	CHECK_MATCH("NOT name = churn", "CD");
	CHECK_MATCH("name LIKE 'ch*'", "AB");
	CHECK_MATCH("nOt (name lIkE 'ch*' aNd version = 2)", "ACD");
}

static void test_operators(void)
{
	/* numeric: 10 > 9 although "10" < "9" as strings */
	CHECK_MATCH("version = 10", "C");
	CHECK_MATCH("version = 10.0", "C");
	CHECK_MATCH("version = \"10\"", "C");
	CHECK_MATCH("version != 3", "BCD");
	CHECK_MATCH("version < 3", "BD");
	CHECK_MATCH("version <= 3", "ABD");
	CHECK_MATCH("version > 2", "AC");
	CHECK_MATCH("version >= 10", "C");
	CHECK_MATCH("version > 9", "C");
	CHECK_MATCH("version > 1e0", "ABC");
	CHECK_MATCH("version < +3", "BD");
	CHECK_MATCH("version > -1e3", "ABCD");
	CHECK_MATCH("metric.loss < .15", "A");
	CHECK_MATCH("metric.auc > 9e-1", "ACD");
	CHECK_MATCH("metric.auc >= 1e+3", "D");
	/* "0.001" and "1e-3" are the same number */
	CHECK_MATCH("param.lr = 0.001", "AB");
	CHECK_MATCH("param.lr = 1E-3", "AB");
	/* a non-number on either side compares bytes: "high" > "0.9" */
	CHECK_MATCH("metric.auc > 0.9", "ACD");
	CHECK_MATCH("metric.auc = high", "D");
	CHECK_MATCH("metric.auc < 1", "ABC");
	/* inf and nan are not finite: strings, and "high" < "inf" */
	CHECK_MATCH("metric.auc < inf", "ABCD");
	CHECK_MATCH("metric.auc < 1e999", "ABC");
	CHECK_MATCH("metric.auc = nan", "");

	/* strings */
	CHECK_MATCH("name = churn", "AB");
	CHECK_MATCH("name != churn", "CD");
	CHECK_MATCH("name < fraud-detector", "AB");
	CHECK_MATCH("name <= fraud-detector", "ABC");
	CHECK_MATCH("name > fraud-detector", "D");
	CHECK_MATCH("name >= fraud-detector", "CD");
	CHECK_MATCH("name = Churn", "");
	CHECK_MATCH("name = chur", "");
	CHECK_MATCH("name > chur", "ABCD");
	CHECK_MATCH("created < '2026-01-15T10:00:00Z'", "B");
	CHECK_MATCH("created <= '2026-01-15T10:00:00Z'", "AB");
	CHECK_MATCH("created > 2026-01-15T10:00:00Z", "C");
	CHECK_MATCH("creator = ''", "");
}

static void test_like(void)
{
	CHECK_MATCH("name like 'ch*'", "AB");
	CHECK_MATCH("name like \"*-*\"", "C");
	CHECK_MATCH("name like '?hurn'", "AB");
	CHECK_MATCH("name like '??urn'", "AB");
	CHECK_MATCH("name like '?urn'", "");
	CHECK_MATCH("name like '[a-f]*'", "ABC");
	CHECK_MATCH("name like '[!c]*'", "CD");
	CHECK_MATCH("name like '[cr]*[nr]'", "ABD");
	CHECK_MATCH("name like '[a-z]*-[d]*'", "C");
	CHECK_MATCH("name like churn", "AB");
	CHECK_MATCH("name like chur", "");
	CHECK_MATCH("name like '*'", "ABCD");
	/* over the string, numbers too */
	CHECK_MATCH("version like '1*'", "CD");
	CHECK_MATCH("created like '2026-*'", "AC");
	CHECK_MATCH("param.lr like '*e*'", "B");
	/* a backslash other than \\ \" \' reaches fnmatch: a\*b is literal */
	CHECK_MATCH("tag.glob like 'a*b'", "AC");
	CHECK_MATCH("tag.glob like 'a\\*b'", "A");
	CHECK_MATCH("tag.glob like 'a\\\\*b'", "A");
	CHECK_MATCH("tag.glob = 'a*b'", "A");
	CHECK_MATCH("not name like 'ch*'", "CD");
}

static void test_missing(void)
{
	/* C and D have no stage */
	CHECK_MATCH("stage = Production", "A");
	CHECK_MATCH("stage != Production", "AB");
	CHECK_MATCH("not stage = Production", "BCD");
	CHECK_MATCH("not stage != Production", "CD");
	CHECK_MATCH("stage like '*'", "AB");
	CHECK_MATCH("not stage like '*'", "CD");
	CHECK_MATCH("stage < zzz", "AB");
	CHECK_MATCH("tag.absent = x", "");
	CHECK_MATCH("tag.absent != x", "");
	CHECK_MATCH("tag.absent < x or tag.absent >= x", "");
	CHECK_MATCH("not tag.absent = x", "ABCD");
	CHECK_MATCH("metric.loss > 0 or stage = Archived", "AB");
}

static void test_multi(void)
{
	/* A is both Production and Staging */
	CHECK_MATCH("stage = Production", "A");
	CHECK_MATCH("stage = Staging", "A");
	CHECK_MATCH("stage = Production and stage = Staging", "A");
	CHECK_MATCH("stage != Production", "AB");
	CHECK_MATCH("stage != Staging", "AB");
	CHECK_MATCH("stage < Q", "AB");
	CHECK_MATCH("stage > Q", "A");
	CHECK_MATCH("stage like 'St*'", "A");
	CHECK_MATCH("not stage = Staging", "BCD");
}

static void test_strings(void)
{
	CHECK_MATCH("tag.note = \"say \\\"hi\\\" \\\\ back\"", "A");
	CHECK_MATCH("tag.note = 'say \"hi\" \\\\ back'", "A");
	CHECK_MATCH("tag.note = 'say \\\"hi\\\" \\\\ back'", "A");
	CHECK_MATCH("tag.quote = 'it\\'s'", "A");
	CHECK_MATCH("tag.quote = \"it's\"", "A");
	CHECK_MATCH("tag.quote = \"it\\'s\"", "A");
	/* keywords and operators inside strings are text */
	CHECK_MATCH("name = 'and' or name = \"(ranker)\" or name = 'x = y'",
		    "");
	CHECK_MATCH("name = 'churn' and creator='alice'", "A");
	/* the quote style does not make a number a string */
	CHECK_MATCH("version > '9'", "C");
}

static void test_short_circuit(void)
{
	struct search_query *sq;
	char err[100];

	CHECK_EQ(search_parse("name = churn or version = 1 or creator = x",
			      &sq, err, sizeof(err)), 0, "parse chain");
	getter_calls = 0;
	CHECK(search_match(sq, getter, (void *)cand_a), "A matches");
	CHECK_EQ(getter_calls, 1, "or stops at the first true operand");
	getter_calls = 0;
	CHECK(search_match(sq, getter, (void *)cand_d), "D matches");
	CHECK_EQ(getter_calls, 2, "second operand decides");
	search_free(sq);
}

static void test_errors(void)
{
	char big[SEARCH_MAX_LEN + 2], err[200];
	struct search_query *sq;

	CHECK_ERR("", "column 1: empty query");
	CHECK_ERR("  \t ", "column 1: empty query");
	CHECK_ERR("= 3", "column 1: expected a field name");
	CHECK_ERR("foo = 3", "column 1: unknown field 'foo'");
	CHECK_ERR("name = x and bar.baz < 2",
		  "column 14: unknown field 'bar.baz'");
	CHECK_ERR("metric.auc", "column 11: expected an operator after "
		  "'metric.auc'");
	CHECK_ERR("metric.auc 0.9", "column 12: expected an operator after "
		  "'metric.auc'");
	CHECK_ERR("metric.auc >= ", "column 15: expected a value after '>='");
	CHECK_ERR("stage = and x", "column 9: expected a value after '='");
	CHECK_ERR("stage == x", "column 8: expected a value after '='");
	CHECK_ERR("tag.team = \"risk", "column 12: unterminated string");
	CHECK_ERR("tag.team = 'risk\\'", "column 12: unterminated string");
	CHECK_ERR("(stage = Production", "column 20: expected ')'");
	CHECK_ERR("(stage = Production xyz)", "column 21: expected ')'");
	CHECK_ERR("stage = Production xyz",
		  "column 20: unexpected 'xyz' after the end of the query");
	CHECK_ERR("stage = a)",
		  "column 10: unexpected ')' after the end of the query");
	CHECK_ERR("stage = Production and",
		  "column 23: expected a field name");
	CHECK_ERR("stage = x and or y = 1", "column 15: expected a field name");
	CHECK_ERR("not", "column 4: expected a field name");
	CHECK_ERR("()", "column 2: expected a field name");
	CHECK_ERR("'name' = x", "column 1: expected a field name");
	CHECK_ERR("tag. = x", "column 1: expected a key after 'tag.'");
	CHECK_ERR("tag.a:b = x", "column 6: unexpected ':' in field 'tag.a:b'");
	CHECK_ERR("stage = x & y", "column 11: unexpected character '&'");
	CHECK_ERR("stage ! x", "column 7: unexpected character '!'");
	CHECK_ERR("stage = \x01", "column 9: unexpected character '\\x01'");
	CHECK_ERR("name = x y\xc3\xa9",
		  "column 10: unexpected 'y' after the end of the query");
	/* a glob must be quoted: '*' is no bareword character */
	CHECK_ERR("name like ch*", "column 13: unexpected character '*'");
	CHECK_ERR("&", "column 1: unexpected character '&'");
	CHECK_ERR("  \"abc", "column 3: unterminated string");
	/* lexer errors in the middle of the query */
	CHECK_ERR("not &", "column 5: unexpected character '&'");
	CHECK_ERR("( 'x", "column 3: unterminated string");
	CHECK_ERR("name = x or !", "column 13: unexpected character '!'");
	CHECK_ERR("(name = x) ~", "column 12: unexpected character '~'");
	CHECK_ERR("name = x and ( version @", "column 24: unexpected "
		  "character '@'");
	CHECK_ERR("name # x", "column 6: unexpected character '#'");
	CHECK_ERR("name not like x",
		  "column 6: expected an operator after 'name'");

	/* NULLs and a short buffer */
	CHECK_EQ(search_parse(NULL, &sq, err, sizeof(err)), -EINVAL,
		 "NULL query");
	CHECK_EQ(search_parse("name = x", NULL, err, sizeof(err)), -EINVAL,
		 "NULL ret");
	CHECK_EQ(search_parse("foo", &sq, NULL, 0), -EINVAL, "NULL err");
	strcpy(err, "xxxxxxxx");
	CHECK_EQ(search_parse("foo", &sq, err, 6), -EINVAL, "short err");
	CHECK(strcmp(err, "colum") == 0, "err truncated, terminated");
	CHECK_EQ(search_parse("foo", &sq, err, 1), -EINVAL, "err of 1 byte");
	CHECK(err[0] == '\0', "err of 1 byte is empty");
	search_free(NULL);
	CHECK(!search_match(NULL, getter, (void *)cand_a), "match NULL");

	/* length limit */
	memset(big, ' ', sizeof(big));
	memcpy(big, "name = churn", 12);
	big[SEARCH_MAX_LEN] = '\0';
	CHECK_MATCH(big, "AB");
	big[SEARCH_MAX_LEN] = ' ';
	big[SEARCH_MAX_LEN + 1] = '\0';
	CHECK_ERR(big, "column 4097: query longer than 4096 bytes");
}

static void test_long_token(void)
{
	char q[SEARCH_MAX_LEN + 1], want[100];
	size_t i;

	/* a long chain is wide, not deep */
	strcpy(q, "name = churn");
	while (strlen(q) + 20 < SEARCH_MAX_LEN)
		strcat(q, " and version < 9");
	CHECK_MATCH(q, "AB");
	strcpy(q, "version = 7");
	while (strlen(q) + 20 < SEARCH_MAX_LEN)
		strcat(q, " or version = 7");
	strcat(q, " or version=1");
	CHECK_MATCH(q, "D");

	/* a long token is cut short in the message */
	strcpy(q, "tag.");
	for (i = 4; i < 1000; i++)
		q[i] = 'k';
	q[i] = '\0';
	strcat(q, " = x y");
	snprintf(want, sizeof(want), "column %zu: unexpected 'y' after the "
		 "end of the query", strlen(q));
	CHECK_ERR(q, want);
	q[1000] = '\0';
	CHECK_ERR(q, "column 1001: expected an operator after "
		  "'tag.kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...'");
}

/* Chains of every length across the growth steps of the operand array
 * (4, 8, 16, 32): the fuzzer found an overflow at 5. */
static void test_chain_sizes(void)
{
	char q[2000];
	size_t len, n;
	bool ok_and = true, ok_or = true;

	for (len = 1; len <= 40; len++) {
		q[0] = '\0';
		for (n = 0; n < len; n++)
			strcat(q, n ? " and version < 9" : "version < 9");
		if (strcmp(matches(q), "ABD") != 0)
			ok_and = false;
		q[0] = '\0';
		for (n = 0; n + 1 < len; n++)
			strcat(q, "version = 7 or ");
		strcat(q, "version = 10");
		if (strcmp(matches(q), "C") != 0)
			ok_or = false;
	}
	CHECK(ok_and, "and chains of 1 to 40 operands");
	CHECK(ok_or, "or chains of 1 to 40 operands");
}

static void test_nomem(void)
{
#ifndef HAVE_ASAN
	/* five "or" operands grow the operand array past its first size */
	static const char q[] = "metric.auc >= 0.9 and (tag.team = \"risk\" "
		"or tag.team = 'fraud' or tag.team = x or tag.team = y or "
		"tag.team = z) and not stage = Production";
	struct search_query *sq;
	char err[100];
	long k, bad = 0;
	int r;

	for (k = 0; k < 1000; k++) {
		fail_after = k;
		live = 0;
		armed = true;
		r = search_parse(q, &sq, err, sizeof(err));
		if (r == 0)
			search_free(sq);
		armed = false;
		if (r == 0 && live == 0)
			break;
		if (r != -ENOMEM || strcmp(err, "out of memory") != 0 ||
		    live != 0) {
			printf("# allocation %ld: %d '%s', %ld live\n", k, r,
			       err, live);
			bad++;
		}
	}
	if (k == 0) {
		/* Valgrind, for one, puts its own malloc in our place. */
		CHECK(1, "allocation failures # SKIP malloc is not ours");
		return;
	}
	CHECK(k > 10 && k < 1000, "parse needs %ld allocations", k);
	CHECK_EQ(bad, 0, "each failed allocation: -ENOMEM, nothing leaked");
#else
	CHECK(1, "allocation failures # SKIP malloc is ASan's");
#endif
}

static void test_depth(void)
{
	char q[SEARCH_MAX_LEN + 1];
	size_t i, o;

	/* SEARCH_MAX_DEPTH parentheses are fine, one more is not */
	o = 0;
	for (i = 0; i < SEARCH_MAX_DEPTH; i++)
		q[o++] = '(';
	o += (size_t)sprintf(q + o, "name=churn");
	for (i = 0; i < SEARCH_MAX_DEPTH; i++)
		q[o++] = ')';
	q[o] = '\0';
	CHECK_MATCH(q, "AB");

	o = 0;
	for (i = 0; i < SEARCH_MAX_DEPTH + 1; i++)
		q[o++] = '(';
	o += (size_t)sprintf(q + o, "name=churn");
	for (i = 0; i < SEARCH_MAX_DEPTH + 1; i++)
		q[o++] = ')';
	q[o] = '\0';
	CHECK_ERR(q, "column 65: nesting too deep");

	/* "not" counts the same way */
	o = 0;
	for (i = 0; i < SEARCH_MAX_DEPTH; i++)
		o += (size_t)sprintf(q + o, "not ");
	sprintf(q + o, "name=churn");
	CHECK_MATCH(q, "AB");
	o = 0;
	for (i = 0; i < SEARCH_MAX_DEPTH + 1; i++)
		o += (size_t)sprintf(q + o, "not ");
	sprintf(q + o, "name=churn");
	CHECK_ERR(q, "column 257: nesting too deep");

	/* mixed, and depth is given back when a group closes */
	o = 0;
	for (i = 0; i < 40; i++)
		o += (size_t)sprintf(q + o, "(name=x or ");
	o += (size_t)sprintf(q + o, "not not name=churn");
	for (i = 0; i < 40; i++)
		q[o++] = ')';
	for (i = 0; i < 40; i++)
		o += (size_t)sprintf(q + o, " and (not name=x)");
	q[o] = '\0';
	CHECK_MATCH(q, "AB");

	/* a huge flood of '(' stops at the limit, without recursion */
	memset(q, '(', sizeof(q) - 1);
	q[sizeof(q) - 1] = '\0';
	CHECK_ERR(q, "column 65: nesting too deep");
}

static void test_locale(void)
{
	/* A decimal-comma locale must not change how 0.9 reads. */
	if (!setlocale(LC_NUMERIC, "de_DE.UTF-8")) {
		CHECK(1, "decimal-comma locale # SKIP de_DE.UTF-8 not "
		      "installed");
		return;
	}
	CHECK_MATCH("metric.auc >= 0.9 and metric.auc < 1", "AC");
	setlocale(LC_NUMERIC, "C");
}

/* The value a query fixes for a field, which lets a search read one model:
 * only where every match must have exactly that string. */
static void test_fixed(void)
{
	static const struct {
		const char *q, *field, *want;
	} c[] = {
		{ "name = churn", "name", "churn" },
		{ "name = churn and version = 50", "name", "churn" },
		{ "version = 50 and (tag.a = b) and name = 'x y'", "name",
		  "x y" },
		{ "name = churn or name = ranker", "name", NULL },
		{ "not name = churn", "name", NULL },
		{ "name != churn", "name", NULL },
		{ "name like 'ch*'", "name", NULL },
		{ "name = 42", "name", NULL },        /* 042 matches too */
		{ "(name = churn and version = 1) or version = 2", "name",
		  NULL },
		{ "version = 50", "name", NULL },
		{ "stage = Production and name = m", "stage", "Production" },
	};
	struct search_query *sq;
	const char *got;
	size_t i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		CHECK(search_parse(c[i].q, &sq, NULL, 0) == 0, "parse %s",
		      c[i].q);
		got = search_fixed(sq, c[i].field);
		CHECK(c[i].want ? got && strcmp(got, c[i].want) == 0 : !got,
		      "search_fixed(%s, %s): %s", c[i].q, c[i].field,
		      got ? got : "NULL");
		search_free(sq);
	}
}

int main(void)
{
	test_fixed();
	test_basic();
	test_example();
	test_precedence();
	test_keywords_case();
	test_operators();
	test_like();
	test_missing();
	test_multi();
	test_strings();
	test_short_circuit();
	test_errors();
	test_long_token();
	test_chain_sizes();
	test_nomem();
	test_depth();
	test_locale();
	return check_done();
}
