/* internal.h — what the files of maint/ share (not an API: registry.h
 * is; the registry's own internals are registry/internal.h).
 */
#ifndef MREG_MAINT_INTERNAL_H
#define MREG_MAINT_INTERNAL_H

#include "registry/internal.h"

/* ---- pins.c ---- */
/* The versions live processes have pinned. */
struct reg_pinset {
	uint64_t *v;
	size_t n, cap;
};

/* Is v in s? */
bool reg_pinset_has(const struct reg_pinset *s, uint64_t v);
/* Reads every live process's pins into s; with reap, removes dead
 * processes' files. */
int reg_pins_read(struct reg_registry *reg, struct reg_pinset *s, bool reap);

/* ---- gc.c ---- */
/* One run of gc. */
struct reg_gc {
	struct reg_registry *reg;
	struct reg_pinset pins;
	struct reg_gc_result res;
	uint64_t *list;
	size_t n, cap;
	int err;
};

/* Copies the live chunks of container (whose base is base) to our
 * current one and removes it; *freed gets the bytes that gave back. 0 and
 * nothing freed when the container is busy or something still lives in
 * it. */
int reg_gc_rewrite(struct reg_gc *g, uint64_t pack, uint64_t base,
		   uint64_t *freed);

/* ---- gc-plan.c ---- */
/* Cuts dead tails and removes dead containers; with rewrite, then
 * rewrites those more than pct % dead. */
int reg_gc_containers(struct reg_gc *g, unsigned pct, bool rewrite,
		      void (*progress)(void *arg, uint64_t done, uint64_t total),
		      void *arg);

#endif
