/* pins.c — which versions live processes have open, so that gc never
 * frees what someone reads (SPEC §5), on this host or any other.
 *
 * A process holds (IDX_LOCK_PIN, V) shared while it has a file of version
 * V open (index.h: the system lets it go when the process dies). gc frees
 * a removed version's tree only when nobody holds it. A pin is taken when
 * a version's first file is opened here; released pins are let go lazily
 * (reg_tick), so open/close cycles cost no lock calls. A pin whose lock
 * could not be taken (the database away, or its answer an error) is taken
 * at the next tick that can.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#include "log.h"

struct pin {
	uint64_t version;
	unsigned count;
	bool locked;    /* the index holds its lock: else taken at a tick */
	struct pin *next;
};

/* Takes p's lock (pins_lock held). Not while the database is taken as
 * away: a read of what this host keeps must not wait a deadline for it
 * (registry/fixed.c); the next tick takes it. */
static void pin_lock(struct reg_registry *reg, struct pin *p)
{
	int r;

	if (reg_db_away(reg))
		return;
	r = idx_lock(reg->ix, IDX_LOCK_PIN, p->version, true, false);
	if (r < 0)
		log_err(r, "cannot pin version inode %llu (taken again at "
			"the next tick)", (unsigned long long)p->version);
	p->locked = r == 0;
}

void reg_pin(struct reg_registry *reg, uint64_t v)
{
	struct pin *p;

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
			pin_lock(reg, p);
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
	for (pp = &reg->pins; (p = *pp);) {
		if (p->count == 0 && reg->pins_dirty) {
			*pp = p->next;
			if (p->locked)
				idx_unlock(reg->ix, IDX_LOCK_PIN, p->version);
			free(p);
		} else {
			if (!p->locked)
				pin_lock(reg, p);
			pp = &p->next;
		}
	}
	reg->pins_dirty = false;
	pthread_mutex_unlock(&reg->pins_lock);
}

void reg_pins_close(struct reg_registry *reg)
{
	struct pin *p;

	while ((p = reg->pins)) {
		reg->pins = p->next;
		if (p->locked)
			idx_unlock(reg->ix, IDX_LOCK_PIN, p->version);
		free(p);
	}
}

bool reg_pinned(struct reg_registry *reg, uint64_t v)
{
	/* cannot tell (< 0): keep it */
	return idx_lock_held(reg->ix, IDX_LOCK_PIN, v) != 0;
}
