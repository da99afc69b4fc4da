/* test-audit-check.c — core's check of the audit chain, pure
 * (reg_audit_check_*): the same code verifies the index on a store and
 * the text of .mreg/audit.log through a mount. Chains are built here,
 * then edited, cut, reordered, and their head changed. */
#include "registry/registry.h"

#include <sha2.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

#define N 6

static char rec[N + 1][160];
static char heads[N + 1][65];   /* heads[i]: the hash of record i */

static void build(void)
{
	char prev[65] = "";
	int i;

	for (i = 1; i <= N; i++) {
		snprintf(rec[i], sizeof(rec[i]), "{\"seq\":%d,\"time\":\"t\","
			 "\"op\":\"promote\",\"prev\":\"%s\"}", i, prev);
		SHA256Data((const uint8_t *)rec[i], strlen(rec[i]), prev);
		strcpy(heads[i], prev);
	}
}

struct found {
	int n;
	char first[256];
};

static void report(void *arg, uint64_t seq, const char *msg)
{
	struct found *f = arg;

	(void)seq;
	if (f->n++ == 0)
		snprintf(f->first, sizeof(f->first), "%s", msg);
}

/* Feeds records order[0..n) (a key number each, 0: none) and a head. */
static int check(const int *order, int n, bool keys, uint64_t head_seq,
		 const char *head, struct found *f, uint64_t *first_bad)
{
	struct reg_audit_check c;
	int i;

	memset(f, 0, sizeof(*f));
	reg_audit_check_init(&c, report, f);
	if (head_seq)
		reg_audit_check_head(&c, head_seq, head);
	for (i = 0; i < n; i++)
		reg_audit_check_record(&c, keys ? (uint64_t)order[i] : 0,
				       rec[order[i]], strlen(rec[order[i]]));
	if (!head_seq)
		reg_audit_check_head(&c, 0, head);
	return reg_audit_check_end(&c, first_bad);
}

int main(void)
{
	static const int all[N] = { 1, 2, 3, 4, 5, 6 };
	static const int cut[N - 1] = { 1, 2, 4, 5, 6 };
	static const int swapped[N] = { 1, 2, 4, 3, 5, 6 };
	struct found f;
	uint64_t bad;

	build();
	CHECK(check(all, N, true, 0, heads[N], &f, &bad) == 0 && f.n == 0,
	      "an intact chain with its head (store)");
	CHECK(check(all, N, false, N, heads[N], &f, &bad) == 0 && f.n == 0,
	      "an intact chain with its head (mount: the head names seq 6)");
	CHECK(check(all, 4, false, 4, heads[4], &f, &bad) == 0,
	      "records after the head read first are not judged (mount)");
	/* "promote" -> "qromote" in record 3 */
	*strstr(rec[3], "promote") ^= 1;
	CHECK(check(all, N, true, 0, heads[N], &f, &bad) == 1 && bad == 3 &&
	      strstr(f.first, "record 3 was changed"),
	      "an edited record: record 3 was changed (%s)", f.first);
	*strstr(rec[3], "qromote") ^= 1;
	CHECK(check(all, N, true, 0, heads[N], &f, &bad) == 0,
	      "the record put back: intact again");
	CHECK(check(cut, N - 1, true, 0, heads[N], &f, &bad) == 1 &&
	      bad <= 3 && strstr(f.first, "record 3 is missing"),
	      "a removed record: record 3 is missing (%s)", f.first);
	CHECK(check(swapped, N, true, 0, heads[N], &f, &bad) == 1 && bad <= 3,
	      "two records swapped: found by 3");
	CHECK(check(all, N - 1, true, 0, heads[N], &f, &bad) == 1 &&
	      strstr(f.first, "records after it were removed"),
	      "the last record removed: the head says so (%s)", f.first);
	CHECK(check(all, N, true, 0, NULL, &f, &bad) == 1 &&
	      strstr(f.first, "head of the audit chain is missing"),
	      "a chain without its head (%s)", f.first);
	CHECK(check(all, N - 1, false, N, heads[N], &f, &bad) == 1 &&
	      bad == N && strstr(f.first, "record 6 is missing"),
	      "mount: the record the head names is missing (%s)", f.first);
	CHECK(check(all, N, false, N, heads[N - 1], &f, &bad) == 1 &&
	      bad == N && strstr(f.first, "head of the chain holds another"),
	      "mount: the head holds another hash (%s)", f.first);
	{
		/* a record whose text says another number than its key */
		static const int two[2] = { 1, 2 };
		struct reg_audit_check c;

		memset(&f, 0, sizeof(f));
		reg_audit_check_init(&c, report, &f);
		reg_audit_check_record(&c, 1, rec[two[0]], strlen(rec[1]));
		reg_audit_check_record(&c, 2, rec[1], strlen(rec[1]));
		CHECK(reg_audit_check_end(&c, &bad) == 1 &&
		      f.n >= 1, "a record moved under another key is found");
	}
	return check_done();
}
