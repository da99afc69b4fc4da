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
 * Keywords are case-insensitive. Comparison: when both sides parse as
 * numbers, numerically; otherwise as byte strings. `like` is a glob (*, ?,
 * [...]) over the string. A missing field makes every comparison false
 * (except != which is also false: SQL's NULL rule), so `not` of it is true.
 * A field with several values (stage: every stage pointing at the version)
 * matches when any value matches.
 */
#ifndef MREG_SEARCH_H
#define MREG_SEARCH_H

#include <stdbool.h>
#include <stddef.h>

struct search_query;

/* Parses q. On a malformed query returns -EINVAL and writes
 * "column N: reason" (N counted from 1) into err. -ENOMEM. */
int search_parse(const char *q, struct search_query **ret, char *err,
		 size_t errlen);
void search_free(struct search_query *sq);

/* Supplies the values of a field for one candidate: calls emit for each
 * value (zero times when missing). field is e.g. "metric.auc", "stage". */
typedef void (*search_getter)(void *arg, const char *field,
			      void (*emit)(void *ectx, const char *value),
			      void *ectx);

/* Evaluates sq for one candidate. */
bool search_match(const struct search_query *sq, search_getter get,
		  void *arg);

#endif
