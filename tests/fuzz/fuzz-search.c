/* fuzz-search.c — libFuzzer entry point for the query parser and matcher.
 *
 * The input, cut at its first NUL, is a query; when it parses it is
 * matched against a fixed candidate with a multi-valued stage, numeric and
 * non-numeric metrics. Beyond the sanitizers, it checks the error contract:
 * -EINVAL with "column N: reason", N within the query plus one. Build:
 *
 *	clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Icore \
 *	    -fsanitize=fuzzer,address,undefined \
 *	    core/query/search.c tests/fuzz/fuzz-search.c -o /tmp/fuzz-search
 *	/tmp/fuzz-search -max_total_time=60 -max_len=4200 tests/fuzz/search
 */
#include "query/search.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fields[][2] = {
	{ "name", "churn" },
	{ "version", "10" },
	{ "stage", "Production" },
	{ "stage", "Staging" },
	{ "created", "2026-01-15T10:00:00Z" },
	{ "creator", "alice" },
	{ "tag.team", "risk" },
	{ "tag.empty", "" },
	{ "metric.auc", "0.93" },
	{ "metric.odd", "nan" },
	{ "metric.big", "1e308" },
	{ "param.lr", "1e-3" },
	{ "lineage.parent", "churn/2" },
};

static void getter(void *arg, const char *field,
		   void (*emit)(void *ectx, const char *value), void *ectx)
{
	size_t i;

	(void)arg;
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strcmp(fields[i][0], field) == 0)
			emit(ectx, fields[i][1]);
	/* a getter may hand over NULL; it must be ignored */
	emit(ectx, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct search_query *sq = NULL;
	char *q, err[256];
	unsigned long col;
	size_t len;
	int r, n = 0;

	q = malloc(size + 1);
	if (!q)
		return 0;
	memcpy(q, data, size);
	q[size] = '\0';
	len = strlen(q);
	r = search_parse(q, &sq, err, sizeof(err));
	if (r == 0) {
		if (!sq)
			abort();
		(void)search_match(sq, getter, NULL);
		search_free(sq);
	} else {
		if (r != -EINVAL || sq)
			abort();
		/* the column points into the query or just past it */
		if (sscanf(err, "column %lu: %n", &col, &n) != 1 || n == 0 ||
		    col < 1 || col > len + 1 || err[n] == '\0')
			abort();
	}
	free(q);
	return 0;
}
