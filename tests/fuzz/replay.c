/* replay.c — a main() for the libFuzzer targets without the fuzzer: runs
 * LLVMFuzzerTestOneInput once over every file of the target's corpus
 * (tests/fuzz/<target>/, or the files and directories given), so that
 * `make test` replays the seeds and every crash ever found, with whatever
 * sanitizers the build has, and no clang runtime. A target reports a bug
 * by crashing (abort, a sanitizer); each file that comes back is one "ok"
 * line. Built once per target with -DFUZZ_TARGET and -DFUZZ_CORPUS.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n;

static int run_file(const char *path)
{
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	size_t k;
	FILE *f = fopen(path, "rb");

	if (!f) {
		printf("not ok %d - cannot open '%s': %s\n", ++n, path,
		       strerror(errno));
		return 1;
	}
	for (;;) {
		if (len == cap) {
			cap = cap ? 2 * cap : 4096;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		k = fread(buf + len, 1, cap - len, f);
		if (k == 0)
			break;
		len += k;
	}
	fclose(f);
	/* Say which input runs: a crash leaves it as the last line. */
	printf("# %s\n", path);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	printf("ok %d - %s: %s\n", ++n, FUZZ_TARGET, strrchr(path, '/') ?
	       strrchr(path, '/') + 1 : path);
	return 0;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path)
{
	struct dirent *de;
	struct stat st;
	char **names = NULL, *p;
	size_t i, nn = 0;
	int bad = 0;
	DIR *d;

	if (stat(path, &st) < 0) {
		printf("not ok %d - '%s': %s\n", ++n, path, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path);
	d = opendir(path);
	if (!d)
		return 1;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		names = realloc(names, (nn + 1) * sizeof(*names));
		if (!names || asprintf(&p, "%s/%s", path, de->d_name) < 0)
			abort();
		names[nn++] = p;
	}
	closedir(d);
	if (nn)
		qsort(names, nn, sizeof(*names), cmp);
	for (i = 0; i < nn; i++) {
		bad |= run_file(names[i]);
		free(names[i]);
	}
	free(names);
	return bad;
}

int main(int argc, char **argv)
{
	const char *top = getenv("MREG_TOP");
	char *dir = NULL;
	int i, bad = 0;

	if (argc > 1) {
		for (i = 1; i < argc; i++)
			bad |= run_path(argv[i]);
	} else {
		/* tests/run.sh says where the tree is; else the path this
		 * was built from */
		if (top && asprintf(&dir, "%s/tests/fuzz/%s", top,
				    FUZZ_TARGET) < 0)
			abort();
		bad = run_path(dir ? dir : FUZZ_CORPUS);
		free(dir);
	}
	if (n == 0)
		printf("ok 1 - %s: no corpus # SKIP empty\n", FUZZ_TARGET);
	return bad;
}
