/* txn.c — every change of the registry runs through reg_change(): a write
 * transaction of the index, and, once it committed, the hooks its changes
 * noted (reg_note_txn()) handed to the hook runner (hooks.c). Noting
 * inside the transaction and running after the commit means a hook never
 * sees a change that was rolled back, and a change that committed always
 * gets its hooks, however often its callback ran (the map grew, a
 * conflict). */
#include "internal.h"

#include <errno.h>
#include <stddef.h>
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
	struct reg_registry *reg;
	int (*fn)(struct idx_txn *, void *);
	void *arg;
};

/* ---- the queue of hooks in the registry ----------------------------------
 * A hook must run once for the whole registry, even when the process that
 * made the change (on any host) dies before it ran. So each event is also
 * a record of META "hookq/" + be64 qid, written in the transaction of the
 * change: the life token of the process that runs it, and the event. The
 * record goes when the hook ended, whatever the outcome. A daemon's tick
 * takes over the records of dead processes (reg_hooks_tick): a hook whose
 * process died while it ran may run a second time, never not at all; a
 * URL hook then with the same delivery id, made with the event, so that
 * its receiver can tell.
 *
 * The record: format (1 byte), the owner's life token (8), struct
 * hook_ev as this build lays it out. Format 1 ended before the event's
 * delivery id: such a record is read as an event without one. */
#define HOOKQ_PREFIX "hookq/"
#define HOOKQ_KEY_LEN (sizeof(HOOKQ_PREFIX) - 1 + 8)
#define META_HOOKQ_NEXT "hookq_next"
#define HOOKQ_FORMAT 2
#define HOOKQ_REC_LEN (1 + 8 + sizeof(struct hook_ev))
#define HOOKQ_REC_LEN_1 (1 + 8 + offsetof(struct hook_ev, delivery))

/* The event of a record (format 1 or 2) into ev; false when it is not
 * one. */
static bool hookq_rec_event(const struct idx_val *v, uint64_t *owner,
			    struct hook_ev *ev)
{
	const uint8_t *p = v->data;

	if (v->len == HOOKQ_REC_LEN && p[0] == HOOKQ_FORMAT) {
		memcpy(ev, p + 9, sizeof(*ev));
	} else if (v->len == HOOKQ_REC_LEN_1 && p[0] == 1) {
		memset(ev, 0, sizeof(*ev));
		memcpy(ev, p + 9, HOOKQ_REC_LEN_1 - 9);
	} else {
		return false;
	}
	ev->delivery[sizeof(ev->delivery) - 1] = '\0';
	memcpy(owner, p + 1, 8);
	return true;
}
/* Records a tick takes over at most. */
#define HOOKQ_TAKE_MAX 64

static void hookq_key(uint8_t k[HOOKQ_KEY_LEN], uint64_t qid)
{
	memcpy(k, HOOKQ_PREFIX, sizeof(HOOKQ_PREFIX) - 1);
	be64_put(k + sizeof(HOOKQ_PREFIX) - 1, qid);
}

static int hookq_put_txn(struct idx_txn *t, uint64_t owner,
			 const struct hook_ev *ev)
{
	uint8_t k[HOOKQ_KEY_LEN], rec[HOOKQ_REC_LEN];

	hookq_key(k, ev->qid);
	rec[0] = HOOKQ_FORMAT;
	memcpy(rec + 1, &owner, 8);
	memcpy(rec + 9, ev, sizeof(*ev));
	return idx_put(t, IDX_META, k, sizeof(k), rec, sizeof(rec), 0);
}

/* The next qid, taken. */
static int hookq_next_txn(struct idx_txn *t, uint64_t *ret)
{
	struct idx_val v;
	uint64_t next = 1;
	int r;

	r = idx_get(t, IDX_META, META_HOOKQ_NEXT, strlen(META_HOOKQ_NEXT), &v);
	if (r == 0 && v.len == 8)
		memcpy(&next, v.data, 8);
	else if (r < 0 && r != -ENOENT)
		return r;
	*ret = next++;
	return idx_put(t, IDX_META, META_HOOKQ_NEXT, strlen(META_HOOKQ_NEXT),
		       &next, 8, 0);
}

static int hookq_del_txn(struct idx_txn *t, void *arg)
{
	uint8_t k[HOOKQ_KEY_LEN];
	int r;

	hookq_key(k, *(uint64_t *)arg);
	r = idx_del(t, IDX_META, k, sizeof(k));
	return r == -ENOENT ? 0 : r;
}

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
		notes[i].qid = 0;
		notes[i].delivery[0] = '\0';
		if (webhook_is_url(notes[i].program) &&
		    (e = webhook_new_id(notes[i].delivery)) < 0)
			log_err(e, "cannot make a delivery id for the hook of "
				"'%s/%s' (it gets one when it runs)",
				notes[i].model, notes[i].version);
		if (!notes[i].program[0] || !tr->reg->live_token)
			continue;
		/* in the registry's queue, with the change */
		if ((e = hookq_next_txn(t, &notes[i].qid)) < 0 ||
		    (e = hookq_put_txn(t, tr->reg->live_token, &notes[i])) < 0)
			return e;
	}
	return r;
}

struct delivered {
	const struct hook_ev *ev;
	const struct reg_caller *who;
	const char *result, *reason;
	const struct hook_delivery *d;
};

/* A URL hook's delivery: its record of the queue goes, its audit record
 * comes, in one transaction (a delivery is audited once). */
static int delivered_txn(struct idx_txn *t, void *arg)
{
	struct delivered *a = arg;
	const struct hook_ev *ev = a->ev;
	uint64_t qid = ev->qid;
	int r;

	if (qid && (r = hookq_del_txn(t, &qid)) < 0)
		return r;
	return reg_audit_put_txn(t, a->who, &(struct audit_ev){
		.op = "hook", .result = a->result,
		.event = ev->event == HOOK_PROMOTE ? "promote" : "register",
		.model = ev->model, .version = ev->version,
		.stage = ev->stage[0] ? ev->stage : NULL,
		.from = ev->previous[0] ? ev->previous : NULL,
		.url = a->d->url, .status = a->d->status,
		.attempts = a->d->attempts, .delivery = a->d->id,
		.reason = a->reason && a->reason[0] ? a->reason : NULL });
}

/* A hook that was dropped or failed is audited as op "hook" with its
 * event, on behalf of the user whose change it followed; so is every
 * delivery of a URL hook (d), whatever became of it. */
static void hook_report(void *arg, const struct hook_ev *ev,
			const char *result, const char *reason,
			const struct hook_delivery *d)
{
	struct reg_caller who = { .uid = ev->uid, .gid = ev->gid,
				  .pid = ev->pid };
	uint64_t qid = ev->qid;
	int r;

	if (d) {
		r = reg_change(arg, delivered_txn, &(struct delivered){
			.ev = ev, .who = &who, .result = result,
			.reason = reason, .d = d });
		if (r < 0)
			log_err(r, "cannot audit the delivery %s of the hook "
				"of '%s/%s'", d->id, ev->model, ev->version);
		return;
	}
	if (qid && (r = reg_change(arg, hookq_del_txn, &qid)) < 0)
		log_err(r, "cannot take the hook of '%s/%s' out of the "
			"registry's queue", ev->model, ev->version);
	if (strcmp(result, "failed") && strcmp(result, "dropped"))
		return;
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
	struct txn_tramp tr = { reg, fn, arg };
	struct hook_ev mine[NOTES_MAX];
	int r, i, n = 0;

	r = idx_write(reg->ix, tramp_txn, &tr);
	/* committed, or may have: what the host's daemons kept is not
	   current (current.c) */
	reg_host_changed(reg);
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

/* ---- taking over the hooks of dead processes ---------------------------- */

struct hookq_take {
	struct reg_registry *reg;
	uint64_t qids[HOOKQ_TAKE_MAX];
	struct hook_ev evs[HOOKQ_TAKE_MAX];
	unsigned n;
};

static int hookq_dead_one(void *arg, const struct idx_val *k,
			  const struct idx_val *v)
{
	struct hookq_take *q = arg;
	struct hook_ev ev;
	uint64_t owner;

	if (k->len != HOOKQ_KEY_LEN || !hookq_rec_event(v, &owner, &ev))
		return 0;
	if (reg_live_token_alive(q->reg, owner))
		return 0;
	q->qids[q->n++] = be64_get((const uint8_t *)k->data +
				   sizeof(HOOKQ_PREFIX) - 1);
	return q->n == HOOKQ_TAKE_MAX;
}

static int hookq_dead_txn(struct idx_txn *t, void *arg)
{
	struct hookq_take *q = arg;

	q->n = 0;
	return idx_scan(t, IDX_META, HOOKQ_PREFIX, sizeof(HOOKQ_PREFIX) - 1,
			NULL, 0, hookq_dead_one, q);
}

/* Makes the records found ours, those still a dead process's. */
static int hookq_claim_txn(struct idx_txn *t, void *arg)
{
	struct hookq_take *q = arg;
	uint8_t k[HOOKQ_KEY_LEN];
	struct idx_val v;
	uint64_t owner;
	unsigned i, n = 0;
	int r;

	for (i = 0; i < q->n; i++) {
		hookq_key(k, q->qids[i]);
		r = idx_get(t, IDX_META, k, sizeof(k), &v);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		if (!hookq_rec_event(&v, &owner, &q->evs[n]))
			continue;
		if (reg_live_token_alive(q->reg, owner))
			continue; /* another took it meanwhile */
		q->evs[n].qid = q->qids[i];
		/* a format 1 record's URL hook: its id from now on */
		if (!q->evs[n].delivery[0] &&
		    webhook_is_url(q->evs[n].program) &&
		    webhook_new_id(q->evs[n].delivery) < 0)
			q->evs[n].delivery[0] = '\0';
		if ((r = hookq_put_txn(t, q->reg->live_token, &q->evs[n])) < 0)
			return r;
		n++;
	}
	return (int)n;
}

void reg_hooks_tick(struct reg_registry *reg)
{
	struct hookq_take *q;
	int r, i;

	if (!reg->live_token || !(q = calloc(1, sizeof(*q))))
		return;
	q->reg = reg;
	r = idx_read(reg->ix, hookq_dead_txn, q);
	if (r >= 0 && q->n) {
		r = reg_change(reg, hookq_claim_txn, q);
		for (i = 0; i < r; i++) {
			log_msg(LOG_LVL_WARN, "running the %s hook of '%s/%s' "
				"that a process which died left", q->evs[i].event ==
				HOOK_PROMOTE ? "promote" : "register",
				q->evs[i].model, q->evs[i].version);
			hooks_queue(hooks_of(reg), &q->evs[i]);
		}
	}
	if (r < 0)
		log_err(r, "cannot take over the hooks of dead processes");
	free(q);
}
