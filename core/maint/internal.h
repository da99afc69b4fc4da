/* internal.h — what the files of maint/ share (not an API: registry.h
 * is; the registry's own internals are registry/internal.h).
 */
#ifndef MREG_MAINT_INTERNAL_H
#define MREG_MAINT_INTERNAL_H

#include "registry/internal.h"

/* ---- pins.c ---- */
/* Does a live process (of any host) have version v open? Yes when it
 * cannot be told. */
bool reg_pinned(struct reg_registry *reg, uint64_t v);

/* ---- gc.c ---- */
/* One run of gc. */
struct reg_gc {
	struct reg_registry *reg;
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
