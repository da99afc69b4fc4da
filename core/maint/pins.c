/* pins.c — which versions live processes have open, so that gc never
 * frees what someone reads (SPEC §5), on this host or any other.
 *
 * A process holds (IDX_LOCK_PIN, V) shared while it has a file of version
 * V open (index.h: the system lets it go when the process dies). gc frees
 * a removed version's tree only when nobody holds it. A pin is taken when
 * a version's first file is opened here; released pins are let go lazily
 * (reg_tick), so open/close cycles cost no lock calls.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#include "log.h"

struct pin {
	uint64_t version;
	unsigned count;
	struct pin *next;
};

void reg_pin(struct reg_registry *reg, uint64_t v)
{
	struct pin *p;
	int r;

	pthread_mutex_lock(&reg->pins_lock);
	for (p = reg->pins; p; p = p->next)
		if (p->version == v)
			break;
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (p) {
			p->version = v;
			p->next = reg->pins;
			reg->pins = p;
			r = idx_lock(reg->ix, IDX_LOCK_PIN, v, true, false);
			if (r < 0)
				log_err(r, "cannot pin version inode %llu",
					(unsigned long long)v);
		}
	}
	if (p)
		p->count++;
	pthread_mutex_unlock(&reg->pins_lock);
}

void reg_unpin(struct reg_registry *reg, uint64_t v)
{
	struct pin *p;

	pthread_mutex_lock(&reg->pins_lock);
	for (p = reg->pins; p; p = p->next)
		if (p->version == v) {
			if (p->count && --p->count == 0)
				reg->pins_dirty = true;
			break;
		}
	pthread_mutex_unlock(&reg->pins_lock);
}

void reg_pins_flush(struct reg_registry *reg)
{
	struct pin **pp, *p;

	pthread_mutex_lock(&reg->pins_lock);
	if (reg->pins_dirty) {
		for (pp = &reg->pins; (p = *pp);) {
			if (p->count == 0) {
				*pp = p->next;
				idx_unlock(reg->ix, IDX_LOCK_PIN, p->version);
				free(p);
			} else {
				pp = &p->next;
			}
		}
		reg->pins_dirty = false;
	}
	pthread_mutex_unlock(&reg->pins_lock);
}

void reg_pins_close(struct reg_registry *reg)
{
	struct pin *p;

	while ((p = reg->pins)) {
		reg->pins = p->next;
		idx_unlock(reg->ix, IDX_LOCK_PIN, p->version);
		free(p);
	}
}

bool reg_pinned(struct reg_registry *reg, uint64_t v)
{
	/* cannot tell (< 0): keep it */
	return idx_lock_held(reg->ix, IDX_LOCK_PIN, v) != 0;
}
