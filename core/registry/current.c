/* current.c — what a daemon keeps of the records that change (models,
 * their stages directories, stages, sealed versions) while its watcher
 * vouches that it would hear of a change (registry/watch.c), so that a
 * walk through stages/Production asks the database nothing (issue 14:
 * the serving path needs no database round trip after the first).
 *
 * Every record kept carries the generation it was read in. The
 * generation moves on with every change the watcher hands on, every
 * change a process of this host commits (reg_change moves a counter the
 * host's processes share: a command's promotion is seen by the next walk
 * through the mount, as with one host), and whenever the watcher cannot
 * vouch (its watch lost, the trail not read within FRESH_NS): a record of
 * an older generation is never given out. A record read from
 * the database is kept only if the generation did not move while it was
 * read, so a change that committed meanwhile cannot leave an old record
 * behind. A record is also given out for AGE_NS at most: a change no
 * audit record names (none is known to touch these records) is seen
 * that late.
 *
 * Between another host's commit and this host's wake-up (a round trip)
 * the record before it is given out: what a promotion means "at once".
 * Two small direct-mapped tables (by name, by inode): a collision drops
 * the older record.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 512
#define AGE_NS (10 * 1000000000LL)

struct cur_slot {
	uint64_t gen;             /* 0: empty */
	int64_t at;               /* when it was read (mono ns) */
	uint64_t parent, ino;     /* by name: parent; by inode: ino */
	char *name;               /* by name: the entry's name */
	uint8_t *rec;             /* the encoded record */
	size_t len;
};

struct reg_current {
	pthread_mutex_t lock;
	struct cur_slot by_name[SLOTS], by_ino[SLOTS];
};

/* The kinds kept. */
static bool kept(const struct inode_rec *r)
{
	if (r->flags & INODE_TRASHED)
		return false;
	return r->kind == REG_MODEL || r->kind == REG_STAGES ||
	       r->kind == REG_STAGE ||
	       (r->kind == REG_VERSION && (r->flags & INODE_SEALED));
}

static size_t slot_of(uint64_t n, const char *name)
{
	uint64_t h = n * 0x9e3779b97f4a7c15ull;
	const char *p;

	for (p = name ? name : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	return (size_t)(h >> 32) % SLOTS;
}

static void slot_clear(struct cur_slot *s)
{
	free(s->name);
	free(s->rec);
	memset(s, 0, sizeof(*s));
}

int reg_current_open(struct reg_registry *reg)
{
	struct reg_current *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	reg->current = c;
	return 0;
}

void reg_current_close(struct reg_registry *reg)
{
	struct reg_current *c = reg->current;
	size_t i;

	if (!c)
		return;
	for (i = 0; i < SLOTS; i++) {
		slot_clear(&c->by_name[i]);
		slot_clear(&c->by_ino[i]);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
	reg->current = NULL;
}

int reg_current_get(struct reg_registry *reg, uint64_t parent,
		    const char *name, uint64_t ino, struct inode_rec *ret,
		    uint64_t *gen)
{
	struct reg_current *c = reg->current;
	struct cur_slot *s;
	int r = -ENOENT;

	*gen = 0;
	if (!c || !reg_watch_fresh(reg, gen))
		return -ENOENT;
	pthread_mutex_lock(&c->lock);
	s = name ? &c->by_name[slot_of(parent, name)] :
		   &c->by_ino[slot_of(ino, NULL)];
	if (s->gen == *gen && mono_ns() - s->at < AGE_NS &&
	    (name ? s->parent == parent && !strcmp(s->name, name) :
		    s->ino == ino) &&
	    rec_inode_decode(s->rec, s->len, ret) == 0)
		r = 0;
	pthread_mutex_unlock(&c->lock);
	if (r == 0)
		atomic_fetch_add(&reg->current_hits, 1);
	return r;
}

void reg_current_put(struct reg_registry *reg, const char *name,
		     const struct inode_rec *rec, uint64_t gen)
{
	struct reg_current *c = reg->current;
	struct cur_slot *s, n = { .gen = gen, .parent = rec->parent,
				  .ino = rec->ino };
	uint64_t now;

	if (!c || !gen || !kept(rec))
		return;
	/* moved on while it was read: it may be older than a change */
	if (!reg_watch_fresh(reg, &now) || now != gen)
		return;
	n.at = mono_ns();
	n.rec = malloc(rec_inode_max());
	n.name = name ? strdup(name) : NULL;
	if (!n.rec || (name && !n.name)) {
		free(n.rec);
		free(n.name);
		return;
	}
	n.len = rec_inode_encode(rec, n.rec);
	pthread_mutex_lock(&c->lock);
	s = name ? &c->by_name[slot_of(rec->parent, name)] :
		   &c->by_ino[slot_of(rec->ino, NULL)];
	slot_clear(s);
	*s = n;
	pthread_mutex_unlock(&c->lock);
}
