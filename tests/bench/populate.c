/* populate.c - makes a store of many models and versions fast, for the
 * metadata rows of serve_bench.py: one process, core/registry/registry.h
 * directly (reg_model_create, reg_mkdir of a version, reg_seal),
 * durability as the config says (serve_bench.py passes durability = none
 * for this).
 *
 * Usage: populate CONFIG STORE MODELS VERSIONS [PREFIX]
 * Models PREFIX0..PREFIX<MODELS-1>, each with versions 1..VERSIONS, sealed.
 * Prints the seconds it took. Built on the fly by serve_bench.py against
 * the build's libmregcore.a. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "registry/registry.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* populate lookup CONFIG STORE MODEL N: index time of reg_resolve() of
 * MODEL/V, the first one (cold when the caller dropped the caches), then
 * the mean over V = 10, 20, ... N*10 (warm index). Prints both in us. */
static int lookup(char **argv)
{
	struct mreg_config cfg;
	struct reg_registry *reg;
	struct reg_attr a;
	char err[512], p[200];
	long n = atol(argv[3]);
	double t0, first;
	int r;

	config_init(&cfg);
	if (config_load(&cfg, argv[0], err, sizeof(err)) < 0 ||
	    reg_open(&cfg, argv[1], &reg) < 0)
		return 1;
	snprintf(p, sizeof(p), "%s/%ld", argv[2], n * 5);
	t0 = now();
	r = reg_resolve(reg, p, &a);
	first = now() - t0;
	if (r < 0)
		return 1;
	t0 = now();
	for (long i = 1; i <= n; i++) {
		snprintf(p, sizeof(p), "%s/%ld", argv[2], i * 10);
		if (reg_resolve(reg, p, &a) < 0)
			return 1;
	}
	printf("%.3f %.3f\n", first * 1e6, (now() - t0) / n * 1e6);
	reg_close(reg);
	return 0;
}

int main(int argc, char **argv)
{
	struct mreg_config cfg;
	struct reg_registry *reg;
	struct reg_caller who;
	struct reg_attr a, va;
	char err[512], m[160], v[32], p[200];
	long nm, nv;
	double t0;
	int r;

	if (argc == 6 && !strcmp(argv[1], "lookup"))
		return lookup(argv + 2);
	if (argc < 5) {
		fprintf(stderr, "usage: populate CONFIG STORE MODELS VERSIONS [PREFIX]\n");
		return 2;
	}
	nm = atol(argv[3]);
	nv = atol(argv[4]);
	config_init(&cfg);
	if (config_load(&cfg, argv[1], err, sizeof(err)) < 0) {
		fprintf(stderr, "populate: config: %s\n", err);
		return 1;
	}
	r = reg_open(&cfg, argv[2], &reg);
	if (r < 0) {
		fprintf(stderr, "populate: open: %s\n", strerror(-r));
		return 1;
	}
	reg_caller_self(&who);
	t0 = now();
	for (long i = 0; i < nm; i++) {
		snprintf(m, sizeof(m), "%s%ld", argc > 5 ? argv[5] : "m", i);
		r = reg_model_create(reg, &who, m);
		if (r < 0 && r != -EEXIST)
			goto fail;
		snprintf(p, sizeof(p), "%s", m);
		r = reg_resolve(reg, p, &a);
		if (r < 0)
			goto fail;
		for (long j = 1; j <= nv; j++) {
			snprintf(v, sizeof(v), "%ld", j);
			r = reg_mkdir(reg, &who, a.ino, v, 0755, &va);
			if (r < 0)
				goto fail;
			r = reg_seal(reg, &who, m, v);
			if (r < 0 && r != -EALREADY)
				goto fail;
		}
		if (nm >= 100 && i % (nm / 10) == 0)
			fprintf(stderr, "populate: %ld models, %.1f s\n", i, now() - t0);
	}
	printf("%.3f\n", now() - t0);
	reg_close(reg);
	config_release(&cfg);
	return 0;
fail:
	fprintf(stderr, "populate: %s: %s\n", m, strerror(-r));
	reg_close(reg);
	return 1;
}
