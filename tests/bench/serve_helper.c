/* serve_helper.c - the timed loops of serve_bench.py, in C so that the
 * interpreter is not what is measured. Built on the fly with cc.
 *
 *   serve_helper mmap THREADS FILE
 *	maps FILE (PROT_READ, MAP_SHARED) once; THREADS threads read one byte
 *	of every 4 KiB page of the whole mapping at once, thread i starting
 *	at i/THREADS of the file and wrapping (so the threads fault different
 *	pages first, then each other's).
 *   serve_helper read THREADS LOOPS FILE...
 *	THREADS readers, each with its own descriptor; reader i reads, LOOPS
 *	times, files i, i+THREADS, ... (modulo the count: with one file every
 *	reader reads it whole), sequentially with 1 MiB pread()s.
 *   serve_helper folios 1 FILE
 *	maps FILE, touches every page (untimed), then asks /proc/self/pagemap
 *	and /proc/kpageflags (root) which page-cache folio each page is in:
 *	prints "0 PAGES LARGE PMD", LARGE = pages that are part of a large
 *	folio (compound head or tail), PMD = pages of the mapping mapped by a
 *	PMD (2 MiB at once; FilePmdMapped of /proc/self/smaps). Shows what
 *	bounds warm reads and mmap: ext4 caches a file in large folios, FUSE
 *	(before large-folio support) in 4 KiB ones.
 *
 * Prints "SECONDS BYTES SUM" (bytes touched or read in all). */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct job {
	int id, n, loops, nfiles;
	char **files;
	const volatile unsigned char *map;
	size_t len;
	uint64_t bytes, sum;
	pthread_barrier_t *bar;
};

static void *touch(void *arg)
{
	struct job *j = arg;
	size_t pages = j->len / 4096, start = pages * j->id / j->n;
	uint64_t s = 0;

	pthread_barrier_wait(j->bar);
	for (size_t k = 0; k < pages; k++)
		s += j->map[((start + k) % pages) * 4096];
	j->sum = s;
	j->bytes = j->len;
	return NULL;
}

static void *reader(void *arg)
{
	struct job *j = arg;
	size_t bs = 1 << 20;
	char *buf = malloc(bs);

	pthread_barrier_wait(j->bar);
	for (int l = 0; l < j->loops; l++) {
		for (int f = j->id % j->nfiles; ; f += j->n) {
			int fd = open(j->files[f % j->nfiles], O_RDONLY);
			ssize_t r;
			off_t off = 0;

			if (fd < 0) {
				perror(j->files[f % j->nfiles]);
				exit(1);
			}
			while ((r = pread(fd, buf, bs, off)) > 0) {
				off += r;
				j->sum += (unsigned char)buf[0];
			}
			j->bytes += off;
			close(fd);
			if (j->nfiles == 1 || f + j->n >= j->nfiles)
				break;
		}
	}
	free(buf);
	return NULL;
}

#define KPF_COMPOUND_HEAD 15
#define KPF_COMPOUND_TAIL 16

/* FilePmdMapped (KiB) of the mapping that starts at va. */
static unsigned long long pmd_kb(uintptr_t va)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	unsigned long long kb = 0, lo, hi;
	char line[512];
	int in = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2)
			in = lo == va;  /* a mapping's first line */
		else if (in && sscanf(line, "FilePmdMapped: %llu", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

static int folios(const char *path)
{
	int fd = open(path, O_RDONLY), pm, kf;
	uint64_t pages, large = 0, e, fl, i;
	volatile const unsigned char *m;
	unsigned sum = 0;
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(path);
		return 1;
	}
	m = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	pm = open("/proc/self/pagemap", O_RDONLY);
	kf = open("/proc/kpageflags", O_RDONLY);
	if (m == MAP_FAILED || pm < 0 || kf < 0) {
		perror("folios");
		return 1;
	}
	pages = (uint64_t)st.st_size / 4096;
	for (i = 0; i < pages; i++)
		sum += m[i * 4096];
	for (i = 0; i < pages; i++) {
		uintptr_t va = (uintptr_t)(m + i * 4096);

		if (pread(pm, &e, 8, (off_t)(va / 4096 * 8)) != 8 ||
		    !(e >> 63 & 1))
			continue;
		e &= (1ULL << 55) - 1; /* the page frame number */
		if (pread(kf, &fl, 8, (off_t)(e * 8)) == 8 &&
		    (fl >> KPF_COMPOUND_HEAD & 1 || fl >> KPF_COMPOUND_TAIL & 1))
			large++;
	}
	printf("0 %llu %llu %llu\n", (unsigned long long)pages,
	       (unsigned long long)large,
	       (unsigned long long)pmd_kb((uintptr_t)m) / 4);
	return sum == 0xffffffff; /* keeps the touches */
}

int main(int argc, char **argv)
{
	pthread_barrier_t bar;
	pthread_t th[256];
	struct job jobs[256];
	uint64_t bytes = 0, sum = 0;
	double t0, t1;
	int n;

	if (argc < 4 || (n = atoi(argv[2])) < 1 || n > 256) {
		fprintf(stderr, "usage: serve_helper mmap THREADS FILE | "
			"read THREADS LOOPS FILE...\n");
		return 2;
	}
	if (!strcmp(argv[1], "folios"))
		return folios(argv[3]);
	pthread_barrier_init(&bar, NULL, n + 1);
	memset(jobs, 0, sizeof(jobs));
	if (!strcmp(argv[1], "mmap")) {
		int fd = open(argv[3], O_RDONLY);
		struct stat st;
		void *m;

		if (fd < 0 || fstat(fd, &st) < 0) {
			perror(argv[3]);
			return 1;
		}
		t0 = now();
		m = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			jobs[i] = (struct job){ .id = i, .n = n, .map = m,
						.len = st.st_size, .bar = &bar };
			pthread_create(&th[i], NULL, touch, &jobs[i]);
		}
	} else if (!strcmp(argv[1], "read") && argc >= 5) {
		for (int i = 0; i < n; i++) {
			jobs[i] = (struct job){ .id = i, .n = n,
						.loops = atoi(argv[3]),
						.files = argv + 4,
						.nfiles = argc - 4, .bar = &bar };
			pthread_create(&th[i], NULL, reader, &jobs[i]);
		}
	} else {
		fprintf(stderr, "serve_helper: bad mode\n");
		return 2;
	}
	t0 = now();
	pthread_barrier_wait(&bar);
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		bytes += jobs[i].bytes;
		sum += jobs[i].sum;
	}
	t1 = now();
	printf("%.6f %llu %llu\n", t1 - t0, (unsigned long long)bytes,
	       (unsigned long long)sum);
	return 0;
}
