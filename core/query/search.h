/* search.h — the query language of `mreg search` (pure: no I/O).
 *
 *	query   := or
 *	or      := and ("or" and)*
 *	and     := unary ("and" unary)*
 *	unary   := "not" unary | "(" or ")" | cmp
 *	cmp     := field op value
 *	field   := name | version | stage | created | creator
 *	         | (tag|metric|param|lineage) "." key      (key: [A-Za-z0-9_.-]+)
 *	op      := = | != | < | <= | > | >= | like
 *	value   := "string" | 'string' | number | bareword
 *
 * Example: metric.auc >= 0.9 and (tag.team = "risk" or tag.team = "fraud")
 *          and stage = Production
 *
 * Keywords (and, or, not, like) and the field names and prefixes are
 * case-insensitive; the key after the prefix is taken as written. Inside a
 * quoted string \" \' and \\ stand for the character; any other backslash
 * is kept, so `like "a\*"` hands the glob escape on to fnmatch(3). A number
 * is what strtod(3) accepts in the C locale (0.9, -1e3, 42); a bareword is
 * [A-Za-z0-9_.:-]+ (Production, 2026-01-01) and may not be a keyword.
 *
 * Comparison: when both the field value and the literal parse completely as
 * finite numbers (quoted or not), numerically; otherwise as byte strings
 * (strcmp). `like` is a glob (*, ?, [...], fnmatch(3) without flags) over
 * the string. A missing field makes every comparison false (except != which
 * is also false: SQL's NULL rule), so `not` of it is true. A field with
 * several values (stage: every stage pointing at the version) matches when
 * any value matches, != included: `stage != Production` is true for a
 * version that is both Production and Staging.
 */
#ifndef MREG_SEARCH_H
#define MREG_SEARCH_H

#include <stdbool.h>
#include <stddef.h>

/* Longest query search_parse() accepts, in bytes. */
#define SEARCH_MAX_LEN 4096
/* Deepest nesting of "(" and "not" search_parse() accepts; it bounds the
 * recursion of parsing, matching and freeing. */
#define SEARCH_MAX_DEPTH 64

struct search_query;

/* Parses q into *ret, which the caller releases with search_free().
 * On a malformed query returns -EINVAL and writes "column N: reason" into
 * err (N is a byte offset counted from 1: the start of the offending token,
 * or strlen(q) + 1 when the query ends too early), e.g.
 *	column 1: empty query
 *	column 1: expected a field name
 *	column 1: unknown field 'foo'
 *	column 11: expected an operator after 'metric.auc'
 *	column 15: expected a value after '>='
 *	column 12: unterminated string
 *	column 20: expected ')'
 *	column 20: unexpected 'xyz' after the end of the query
 *	column 65: nesting too deep
 *	column 4097: query longer than 4096 bytes
 * err may be NULL or errlen 0; a long message is truncated. Returns -EINVAL
 * without a message when q or ret is NULL, -ENOMEM ("out of memory").
 * *ret is written only on success. Thread-safe: no shared state. */
int search_parse(const char *q, struct search_query **ret, char *err,
		 size_t errlen);
/* Releases a parsed query; takes NULL. */
void search_free(struct search_query *sq);

/* Supplies the values of a field for one candidate: calls emit for each
 * value (zero times when missing). field is e.g. "metric.auc", "stage"
 * (the prefix and fixed names in lower case). A NULL value is ignored. */
typedef void (*search_getter)(void *arg, const char *field,
			      void (*emit)(void *ectx, const char *value),
			      void *ectx);

/* Evaluates sq for one candidate; "and" and "or" stop at the first operand
 * that decides them, so get is not called for every field of the query.
 * Returns false when sq or get is NULL. sq is not modified: several threads
 * may match the same query at once. */
bool search_match(const struct search_query *sq, search_getter get,
		  void *arg);

/* The value every match must have for field: when the query is, or is an
 * "and" of, a comparison `field = "value"` (a value that is not a number,
 * so compared as a string: only that exact value matches), that value;
 * else NULL. Lets a search of `name = churn and ...` read one model, not
 * every model. */
const char *search_fixed(const struct search_query *sq, const char *field);

#endif
