/* openfiles.c — the unsealed files open in this process, counted by inode.
 *
 * An unlink (or a rename over it) of a file open here trashes it instead
 * of deleting it (reg_file_open_here): as on any Unix file system, it
 * stays readable and writable through its descriptors, and its last close
 * here frees it (reg_trash_free); should the process die first, gc does.
 * A sealed file is not counted: nothing can unlink it, and its version is
 * pinned while it is open (reg_pin).
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#include "log.h"

/* How many handles of this process have an unsealed file open: unlink
 * (and rename over it) trashes such a file instead of deleting it, and
 * its last close here frees it (see reg_file_open_here() in internal.h). */
struct open_file {
	uint64_t ino;
	unsigned n;
	bool trashed;             /* holds a pin (reg_pin of ino) */
	struct open_file *next;
};

static struct open_file **open_slot(struct reg_registry *reg, uint64_t ino)
{
	struct open_file **pp = &reg->open_files[ino % 256];

	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->next;
	return pp;
}

int reg_file_count(struct reg_registry *reg, uint64_t ino)
{
	struct open_file **pp, *o;

	pthread_mutex_lock(&reg->lock);
	pp = open_slot(reg, ino);
	if ((o = *pp)) {
		o->n++;
	} else if ((o = calloc(1, sizeof(*o)))) {
		o->ino = ino;
		o->n = 1;
		*pp = o;
	}
	pthread_mutex_unlock(&reg->lock);
	return o ? 0 : -ENOMEM;
}

static void trashed_closed(struct reg_registry *reg, uint64_t ino)
{
	int r = reg_trash_free(reg, ino);

	if (r < 0)
		log_err(r, "cannot free removed file inode %llu (gc will)",
			(unsigned long long)ino);
	reg_unpin(reg, ino);
}

void reg_file_uncount(struct reg_registry *reg, uint64_t ino)
{
	struct open_file **pp, *o;
	bool free_it = false;

	pthread_mutex_lock(&reg->lock);
	pp = open_slot(reg, ino);
	if ((o = *pp) && --o->n == 0) {
		*pp = o->next;
		free_it = o->trashed;
		free(o);
	}
	pthread_mutex_unlock(&reg->lock);
	if (free_it)
		trashed_closed(reg, ino);
}

void reg_files_close(struct reg_registry *reg)
{
	struct open_file *o, *next;
	struct wstate *ws;
	size_t i;

	for (ws = reg->wfiles; ws; ws = ws->next) {
		pthread_mutex_lock(&ws->lock);
		reg_stream_free(reg, ws->stream); /* stops its worker */
		ws->stream = NULL;
		pthread_mutex_unlock(&ws->lock);
	}
	for (i = 0; i < sizeof(reg->open_files) / sizeof(reg->open_files[0]);
	     i++) {
		for (o = reg->open_files[i]; o; o = next) {
			next = o->next;
			free(o);
		}
		reg->open_files[i] = NULL;
	}
}

bool reg_file_open_here(struct reg_registry *reg, uint64_t ino)
{
	bool open;

	pthread_mutex_lock(&reg->lock);
	open = *open_slot(reg, ino) != NULL;
	pthread_mutex_unlock(&reg->lock);
	return open;
}

void reg_file_trashed_here(struct reg_registry *reg, uint64_t ino)
{
	struct open_file *o;
	bool closed;

	pthread_mutex_lock(&reg->lock);
	o = *open_slot(reg, ino);
	closed = !o;
	if (o && o->trashed)
		closed = true; /* it holds a pin already: give this one back */
	else if (o)
		o->trashed = true;
	pthread_mutex_unlock(&reg->lock);
	if (!closed)
		return;
	if (o)
		reg_unpin(reg, ino);
	else
		trashed_closed(reg, ino);
}
