/* txn.c — every change of the registry runs through reg_change(): a write
 * transaction of the index, and, once it committed, the hooks its changes
 * noted (reg_note_txn()) handed to the hook runner (hooks.c). Noting
 * inside the transaction and running after the commit means a hook never
 * sees a change that was rolled back, and a change that committed always
 * gets its hooks, however often its callback ran (the map grew, a
 * conflict). */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* Hooks noted by the transaction running on this thread. A transaction
 * callback may run more than once (the map grew): the list is reset at
 * each run, and handed to the runner only after the commit. */
#define NOTES_MAX 16

static __thread struct hook_ev notes[NOTES_MAX];

static __thread int nnotes;

void reg_note_txn(enum hook_event event, const char *model, const char *version,
		  const char *stage, const char *previous,
		  const struct reg_caller *who)
{
	struct hook_ev *ev;

	if (nnotes >= NOTES_MAX)
		return;
	ev = &notes[nnotes++];
	memset(ev, 0, sizeof(*ev));
	ev->event = event;
	strlcpy(ev->model, model ? model : "", sizeof(ev->model));
	strlcpy(ev->version, version ? version : "", sizeof(ev->version));
	strlcpy(ev->stage, stage ? stage : "", sizeof(ev->stage));
	strlcpy(ev->previous, previous ? previous : "", sizeof(ev->previous));
	ev->uid = who->uid;
	ev->gid = who->gid;
	ev->pid = who->pid;
}

struct txn_tramp {
	int (*fn)(struct idx_txn *, void *);
	void *arg;
};

/* After fn: each noted hook gets the program stored for its event, read in
 * the transaction that made the change (none stored: it runs nothing). */
static int tramp_txn(struct idx_txn *t, void *arg)
{
	struct txn_tramp *tr = arg;
	int r, i, e;

	nnotes = 0;
	r = tr->fn(t, tr->arg);
	for (i = 0; r >= 0 && i < nnotes; i++) {
		e = reg_policy_hook_program_txn(t, notes[i].event,
						notes[i].program,
						sizeof(notes[i].program));
		if (e < 0)
			notes[i].program[0] = '\0';
		if (e < 0 && e != -ENOENT)
			log_err(e, "cannot read the hook for '%s/%s'",
				notes[i].model, notes[i].version);
	}
	return r;
}

/* A hook that was dropped or failed is audited as op "hook" with its
 * event, on behalf of the user whose change it followed. */
static void hook_report(void *arg, const struct hook_ev *ev,
			const char *result, const char *reason)
{
	struct reg_caller who = { .uid = ev->uid, .gid = ev->gid,
				  .pid = ev->pid };

	reg_audit_refusal(arg, &who, &(struct audit_ev){
		.op = "hook", .result = result,
		.event = ev->event == HOOK_PROMOTE ? "promote" : "register",
		.model = ev->model, .version = ev->version,
		.stage = ev->stage[0] ? ev->stage : NULL,
		.from = ev->previous[0] ? ev->previous : NULL,
		.reason = reason });
}

/* The runner, started with the first hook to run (hooks are stored in the
 * registry and may be set while this process runs). NULL when it cannot
 * start (logged). */
static struct hooks *hooks_of(struct reg_registry *reg)
{
	struct hooks *h;
	int r;

	pthread_mutex_lock(&reg->hooks_lock);
	if (!reg->hooks) {
		r = hooks_start(reg->cfg, reg->path, hook_report, reg,
				&reg->hooks);
		if (r == 0)
			r = hooks_set_mount(reg->hooks, reg->mount);
		if (r < 0)
			log_err(r, "cannot start the hook runner");
	}
	h = reg->hooks;
	pthread_mutex_unlock(&reg->hooks_lock);
	return h;
}

int reg_change(struct reg_registry *reg, int (*fn)(struct idx_txn *, void *),
	       void *arg)
{
	struct txn_tramp tr = { fn, arg };
	struct hook_ev mine[NOTES_MAX];
	int r, i, n = 0;

	r = idx_write(reg->ix, tramp_txn, &tr);
	/* copied out first: a dropped hook is audited by a transaction of
	 * its own, which resets the notes */
	for (i = 0; r >= 0 && i < nnotes; i++)
		if (notes[i].program[0])
			mine[n++] = notes[i];
	nnotes = 0;
	for (i = 0; i < n; i++)
		hooks_queue(hooks_of(reg), &mine[i]);
	return r;
}
