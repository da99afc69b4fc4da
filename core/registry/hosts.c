/* hosts.c — the mounts of a registry, and which changes each has applied
 * (issue 14: a rollout you can watch; `mreg hosts`).
 *
 * Every daemon (a registry with a mount point: reg_set_mount) keeps one
 * record in META "hosts/" + be64 life token, written at each tick: its
 * host name, pid, mount point, the audit sequence number it has applied
 * and when it said so, as JSON (written when what it applied changed: an
 * idle mount writes nothing). Applied is the head of the audit trail the
 * daemon read one tick before: every change up to it had committed then,
 * and whatever the kernel had cached of the state before it (mutable
 * names and attributes live a second at most, fs/mregfs.h; stages are
 * asked for on every walk) has expired since. So a new open through that
 * mount sees every change up to applied. A daemon whose index wakes
 * watchers (PostgreSQL) says what its watcher has applied, which is
 * sooner: its invalidations were sent (watch.c).
 *
 * A record whose life token nobody holds belongs to a mount that died:
 * listed as gone, and removed by any mount's tick once it is a minute
 * old. A clean unmount removes its own (reg_close).
 */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "util.h"

#define HOSTS_PREFIX "hosts/"
#define HOST_KEY_LEN (sizeof(HOSTS_PREFIX) - 1 + 8)
/* A gone mount's record is removed once it is this old. */
#define GONE_NS (60 * 1000000000LL)

static void host_key(uint8_t k[HOST_KEY_LEN], uint64_t token)
{
	memcpy(k, HOSTS_PREFIX, sizeof(HOSTS_PREFIX) - 1);
	be64_put(k + sizeof(HOSTS_PREFIX) - 1, token);
}

static int head_txn(struct idx_txn *t, void *arg)
{
	struct idx_val k, v;
	int r = idx_last(t, IDX_AUDIT, NULL, 0, &k, &v);

	*(uint64_t *)arg = r == 0 && k.len == 8 ? be64_get(k.data) : 0;
	return r == -ENOENT ? 0 : r;
}

int reg_audit_head(struct reg_registry *reg, uint64_t *ret)
{
	if (!reg || !ret)
		return -EINVAL;
	return idx_read(reg->ix, head_txn, ret);
}

struct host_put {
	struct reg_registry *reg;
	const char *json;     /* NULL: remove the record */
	size_t len;
};

static int host_put_txn(struct idx_txn *t, void *arg)
{
	struct host_put *p = arg;
	uint8_t k[HOST_KEY_LEN];
	int r;

	host_key(k, p->reg->live_token);
	if (p->json)
		return idx_put(t, IDX_META, k, sizeof(k), p->json, p->len, 0);
	r = idx_del(t, IDX_META, k, sizeof(k));
	return r == -ENOENT ? 0 : r;
}

/* The records of mounts that died, found in a read (asking the locks) and
 * removed in a write: a scan may not run while its table changes. */
struct gone_list {
	struct reg_registry *reg;
	uint64_t tokens[64];
	unsigned n;
};

static int gone_one(void *arg, const struct idx_val *k,
		    const struct idx_val *v)
{
	struct gone_list *g = arg;
	uint64_t token;
	char buf[32];

	if (k->len != HOST_KEY_LEN || g->n == 64 ||
	    json_get(v->data, v->len, "time_ns", buf, sizeof(buf)) < 0 ||
	    now_ns() - strtoll(buf, NULL, 10) < GONE_NS)
		return 0;
	token = be64_get((const uint8_t *)k->data + sizeof(HOSTS_PREFIX) - 1);
	if (!reg_live_token_alive(g->reg, token))
		g->tokens[g->n++] = token;
	return 0;
}

static int gone_txn(struct idx_txn *t, void *arg)
{
	((struct gone_list *)arg)->n = 0;
	return idx_scan(t, IDX_META, HOSTS_PREFIX, sizeof(HOSTS_PREFIX) - 1,
			NULL, 0, gone_one, arg);
}

static int gone_del_txn(struct idx_txn *t, void *arg)
{
	struct gone_list *g = arg;
	uint8_t k[HOST_KEY_LEN];
	unsigned i;
	int r;

	for (i = 0; i < g->n; i++) {
		host_key(k, g->tokens[i]);
		r = idx_del(t, IDX_META, k, sizeof(k));
		if (r < 0 && r != -ENOENT)
			return r;
	}
	return 0;
}

void reg_hosts_tick(struct reg_registry *reg)
{
	char when[40];
	struct host_put p = { .reg = reg };
	struct gone_list g = { .reg = reg };
	struct strbuf sb;
	uint64_t head, applied, w;
	int64_t now = now_ns();
	int r;

	if (!reg->mount || !reg->live_token)
		return;
	/* a tick that cannot say it (the database busy or away) leaves the
	   record as it was: the next one tries again */
	if ((r = reg_audit_head(reg, &head)) < 0) {
		log_debug("cannot read the audit head: %s", strerror(-r));
		return;
	}
	applied = reg->hosts_said ? reg->hosts_head : 0;
	reg->hosts_head = head;
	/* the watcher applies changes as they commit (watch.c) */
	if (reg_watch_applied(reg, &w) && w > applied)
		applied = w;
	/* nothing new applied: the record stands (an idle mount writes
	   nothing, and syncs nothing) */
	if (reg->hosts_said && applied == reg->hosts_written)
		goto prune;
	util_time_iso(now, true, when, sizeof(when));
	strbuf_init(&sb);
	strbuf_adds(&sb, "{\"host\":");
	json_quotes(&sb, reg_host_name());
	strbuf_addf(&sb, ",\"pid\":%d,\"mount\":", (int)getpid());
	json_quotes(&sb, reg->mount);
	/* the first tick has applied nothing it can vouch for yet */
	strbuf_addf(&sb, ",\"applied\":%" PRIu64 ",\"time\":\"%s\","
		    "\"time_ns\":%" PRId64 "}", applied, when, now);
	p.json = sb.buf;
	p.len = sb.len;
	r = reg_change(reg, host_put_txn, &p);
	strbuf_release(&sb);
	if (r < 0) {
		log_err(r, "cannot record this mount's state in the registry");
		return;
	}
	reg->hosts_said = true;
	reg->hosts_written = applied;
prune:
	/* now and then: the records of mounts that died */
	if (now - reg->hosts_pruned < GONE_NS / 2)
		return;
	reg->hosts_pruned = now;
	if (idx_read(reg->ix, gone_txn, &g) == 0 && g.n)
		reg_change(reg, gone_del_txn, &g);
}

void reg_hosts_close(struct reg_registry *reg)
{
	struct host_put p = { .reg = reg };

	if (reg->hosts_said && reg->live_token)
		reg_change(reg, host_put_txn, &p);
}

/* ---- listing --------------------------------------------------------- */

struct hosts_list {
	struct reg_registry *reg;
	int (*fn)(void *arg, const struct reg_host *h);
	void *arg;
	struct reg_host *v;
	size_t n, cap;
};

static int list_one(void *arg, const struct idx_val *k,
		    const struct idx_val *v)
{
	struct hosts_list *l = arg;
	struct reg_host *h;
	char buf[32];

	if (k->len != HOST_KEY_LEN)
		return 0;
	if (ARRAY_GROW(l->v, l->cap, l->n) < 0)
		return -ENOMEM;
	h = &l->v[l->n];
	memset(h, 0, sizeof(*h));
	h->token = be64_get((const uint8_t *)k->data +
			    sizeof(HOSTS_PREFIX) - 1);
	if (json_get(v->data, v->len, "host", h->host, sizeof(h->host)) < 0 ||
	    json_get(v->data, v->len, "mount", h->mount,
		     sizeof(h->mount)) < 0)
		return 0; /* not ours to read: left out */
	if (json_get(v->data, v->len, "pid", buf, sizeof(buf)) > 0)
		h->pid = atoi(buf);
	if (json_get(v->data, v->len, "applied", buf, sizeof(buf)) > 0)
		h->applied = strtoull(buf, NULL, 10);
	if (json_get(v->data, v->len, "time_ns", buf, sizeof(buf)) > 0)
		h->time_ns = strtoll(buf, NULL, 10);
	l->n++;
	return 0;
}

static int list_txn(struct idx_txn *t, void *arg)
{
	((struct hosts_list *)arg)->n = 0;
	return idx_scan(t, IDX_META, HOSTS_PREFIX, sizeof(HOSTS_PREFIX) - 1,
			NULL, 0, list_one, arg);
}

int reg_hosts(struct reg_registry *reg,
	      int (*fn)(void *arg, const struct reg_host *h), void *arg)
{
	struct hosts_list l = { .reg = reg, .fn = fn, .arg = arg };
	size_t i;
	int r;

	if (!reg || !fn)
		return -EINVAL;
	r = idx_read(reg->ix, list_txn, &l);
	/* outside the transaction: each asks the index's locks */
	for (i = 0; r >= 0 && i < l.n; i++) {
		l.v[i].alive = reg_live_token_alive(reg, l.v[i].token);
		r = fn(arg, &l.v[i]);
	}
	free(l.v);
	return r < 0 ? r : 0;
}

/* ---- the change that set a stage ------------------------------------- */

struct stage_seq {
	const char *model, *stage;
	uint64_t from, limit;
	uint64_t seq;
	char version[129];
};

/* Walks back from the head until a change of model's stage. */
static int stage_seq_txn(struct idx_txn *t, void *arg)
{
	struct stage_seq *s = arg;
	char buf[256];
	struct idx_val v;
	uint8_t k[8];
	uint64_t seq, n = 0;
	int r;

	s->seq = 0;
	for (seq = s->from; seq > 0 && n < s->limit; seq--, n++) {
		be64_put(k, seq);
		r = idx_get(t, IDX_AUDIT, k, 8, &v);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		if (json_get(v.data, v.len, "result", buf, sizeof(buf)) < 0 ||
		    strcmp(buf, "ok") ||
		    json_get(v.data, v.len, "model", buf, sizeof(buf)) < 0 ||
		    strcmp(buf, s->model) ||
		    json_get(v.data, v.len, "stage", buf, sizeof(buf)) < 0 ||
		    strcasecmp(buf, s->stage))
			continue;
		s->seq = seq;
		if (json_get(v.data, v.len, "version", s->version,
			     sizeof(s->version)) < 0)
			s->version[0] = '\0';
		return 0;
	}
	return -ENOENT;
}

int reg_stage_change_seq(struct reg_registry *reg, const char *model,
			 const char *stage, uint64_t *ret_seq,
			 char *version, size_t vlen)
{
	struct stage_seq s = { .model = model, .stage = stage,
			       .limit = 1000000 };
	int r;

	if (!reg || !model || !stage || !ret_seq)
		return -EINVAL;
	r = reg_audit_head(reg, &s.from);
	if (r == 0)
		r = idx_read(reg->ix, stage_seq_txn, &s);
	if (r < 0)
		return r;
	*ret_seq = s.seq;
	if (version && vlen)
		strlcpy(version, s.version, vlen);
	return 0;
}
