/* check.h — a tiny test harness for the unit tests. Each CHECK prints
 * "ok N - what" or "not ok N - what (file:line)"; tests/run.sh counts them.
 * check_done() returns the exit status (1 if any check failed). */
#ifndef MREG_CHECK_H
#define MREG_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_n, check_failed;

#define CHECK(cond, ...) do {						\
	int ok_ = !!(cond);						\
	check_n++;							\
	printf("%sok %d - ", ok_ ? "" : "not ", check_n);		\
	printf(__VA_ARGS__);						\
	if (!ok_) {							\
		check_failed++;						\
		printf(" (%s:%d: %s)", __FILE__, __LINE__, #cond);	\
	}								\
	printf("\n");							\
	fflush(stdout);							\
} while (0)

/* Compares two integers and prints both on failure. */
#define CHECK_EQ(a, b, ...) do {					\
	long long a_ = (long long)(a), b_ = (long long)(b);		\
	CHECK(a_ == b_, __VA_ARGS__);					\
	if (a_ != b_)							\
		printf("#   got %lld, want %lld\n", a_, b_);		\
} while (0)

static inline int check_done(void)
{
	return check_failed ? 1 : 0;
}

/* A scratch directory under $TMPDIR, removed by check_rmtree(). */
static inline char *check_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *p;

	if (!base)
		base = "/tmp";
	if (asprintf(&p, "%s/mreg-%s-XXXXXX", base, tag) < 0)
		abort();
	if (!mkdtemp(p))
		abort();
	return p;
}

static inline void check_rmtree(const char *dir)
{
	char *cmd;

	if (asprintf(&cmd, "rm -rf '%s'", dir) < 0)
		abort();
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove '%s'\n", dir);
	free(cmd);
}

#endif
