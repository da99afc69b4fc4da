/* audit.c — the audit trail: every change and every refusal a record of
 * its own, appended in the change's transaction (reg_audit_put_txn), with
 * the exact bytes .mreg/audit.log shows; the pure chain checker
 * (reg_audit_check_*) that `mreg audit --verify` and the mount both use;
 * refusals coalesced per window so that rm -rf over a sealed tree writes a
 * handful of records, not one per file.
 *
 * Audit records (IDX_AUDIT, key be64 seq) are one JSON object each, with
 * "prev": the SHA-256 (hex) of the previous record's text, so an edited,
 * removed or reordered record breaks the chain where it happened.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* This host's name, for every record: with the index in PostgreSQL many
 * hosts write one trail. */
static char host[256];
static pthread_once_t host_once = PTHREAD_ONCE_INIT;

static void host_init(void)
{
	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		strcpy(host, "?");
}

const char *reg_host_name(void)
{
	pthread_once(&host_once, host_init);
	return host;
}

/* The name of uid (NSS: files, LDAP, SSSD), or NULL: numbers differ
 * between hosts, names are what a reader of the trail knows. The last
 * one is kept per thread. */
static const char *user_name(uid_t uid)
{
	static __thread char name[256];
	static __thread uid_t last = (uid_t)-1;
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (uid == last && name[0])
		return name;
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res ||
	    strlen(pw.pw_name) >= sizeof(name))
		return NULL;
	strcpy(name, pw.pw_name);
	last = uid;
	return name;
}

static void add_field(struct strbuf *sb, const char *key, const char *val)
{
	if (!val)
		return;
	strbuf_addf(sb, ",\"%s\":", key);
	json_quotes(sb, val);
}

/* The length of the audit log as a file (every record and a newline):
 * kept in META beside the chain; a store written before it was kept has
 * its records counted (the next record keeps it). */
static int audit_size_txn(struct idx_txn *t, uint64_t *ret);

int reg_audit_put_txn(struct idx_txn *t, const struct reg_caller *who,
		      const struct audit_ev *ev)
{
	char prev[SHA256_DIGEST_STRING_LENGTH] = "", when[40];
	struct strbuf sb;
	struct idx_val k, v;
	uint8_t key[8];
	uint64_t seq = 1, bytes;
	int r;

	if ((r = audit_size_txn(t, &bytes)) < 0)
		return r;
	r = idx_last(t, IDX_AUDIT, NULL, 0, &k, &v);
	if (r == 0 && k.len == 8) {
		seq = be64_get(k.data) + 1;
		SHA256Data(v.data, v.len, prev);
	} else if (r < 0 && r != -ENOENT) {
		return r;
	}
	util_time_iso(now_ns(), true, when, sizeof(when));
	strbuf_init(&sb);
	strbuf_addf(&sb, "{\"seq\":%llu,\"time\":\"%s\",\"uid\":%u,\"gid\":%u,"
		    "\"pid\":%d", (unsigned long long)seq, when,
		    (unsigned)who->uid, (unsigned)who->gid, (int)who->pid);
	add_field(&sb, "user", user_name(who->uid));
	add_field(&sb, "host", reg_host_name());
	strbuf_adds(&sb, ",\"op\":");
	json_quotes(&sb, ev->op);
	add_field(&sb, "result", ev->result ? ev->result : "ok");
	add_field(&sb, "event", ev->event);
	add_field(&sb, "model", ev->model);
	add_field(&sb, "version", ev->version);
	add_field(&sb, "stage", ev->stage);
	add_field(&sb, "from", ev->from);
	add_field(&sb, "path", ev->path);
	add_field(&sb, "key", ev->key);
	if (ev->key) {
		strbuf_adds(&sb, ",\"old\":");
		if (ev->old_value)
			json_quote(&sb, ev->old_value, ev->old_len);
		else
			strbuf_adds(&sb, "null");
		strbuf_adds(&sb, ",\"new\":");
		if (ev->new_value)
			json_quote(&sb, ev->new_value, ev->new_len);
		else
			strbuf_adds(&sb, "null");
	}
	if (ev->url) {
		add_field(&sb, "url", ev->url);
		if (ev->status > 0)
			strbuf_addf(&sb, ",\"status\":%ld", ev->status);
		strbuf_addf(&sb, ",\"attempts\":%u", ev->attempts);
		add_field(&sb, "delivery", ev->delivery);
	}
	add_field(&sb, "reason", ev->reason);
	if (ev->count)
		strbuf_addf(&sb, ",\"count\":%llu",
			    (unsigned long long)ev->count);
	strbuf_adds(&sb, ",\"prev\":");
	json_quotes(&sb, prev);
	strbuf_addch(&sb, '}');
	be64_put(key, seq);
	r = idx_put(t, IDX_AUDIT, key, 8, sb.buf, sb.len, 0);
	/* other hosts' daemons read it at once (watch.c) */
	if (r == 0)
		r = idx_notify(t);
	if (r == 0) {
		/* the head of the chain: catches an edit of the last record */
		SHA256Data((const uint8_t *)sb.buf, sb.len, prev);
		r = idx_put(t, IDX_META, META_AUDIT_HEAD,
			    strlen(META_AUDIT_HEAD), prev, strlen(prev), 0);
	}
	bytes += sb.len + 1;
	if (r == 0)
		r = idx_put(t, IDX_META, META_AUDIT_BYTES,
			    strlen(META_AUDIT_BYTES), &bytes, 8, 0);
	strbuf_release(&sb);
	return r;
}

static int count_record(void *arg, UNUSED const struct idx_val *k,
			const struct idx_val *v)
{
	*(uint64_t *)arg += v->len + 1;
	return 0;
}

static int audit_size_txn(struct idx_txn *t, uint64_t *ret)
{
	struct idx_val v;
	uint64_t n = 0;
	int r;

	r = idx_get(t, IDX_META, META_AUDIT_BYTES, strlen(META_AUDIT_BYTES),
		    &v);
	if (r == 0 && v.len == 8) {
		memcpy(ret, v.data, 8);
		return 0;
	}
	if (r < 0 && r != -ENOENT)
		return r;
	r = idx_scan(t, IDX_AUDIT, NULL, 0, NULL, 0, count_record, &n);
	if (r < 0)
		return r;
	*ret = n;
	return 0;
}

static int audit_bytes_txn(struct idx_txn *t, void *arg)
{
	return audit_size_txn(t, arg);
}

int reg_mregdir_file_size(struct reg_registry *reg, uint64_t ino, uint64_t *ret)
{
	char *text;
	size_t len;
	int r;

	if (ino == REG_AUDITLOG_INO)
		return idx_read(reg->ix, audit_bytes_txn, ret);
	/* the size of what an open would read: rendered now */
	r = (ino & REG_HISTORY_BIT) ?
	    reg_history_text(reg, ino & ~REG_HISTORY_BIT, &text, &len) :
	    reg_metrics_text(reg, &text, &len);
	if (r < 0)
		return r;
	free(text);
	*ret = len;
	return 0;
}

static void check_bad(struct reg_audit_check *c, uint64_t seq,
		      const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void check_bad(struct reg_audit_check *c, uint64_t seq,
		      const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!c->first_bad || seq < c->first_bad)
		c->first_bad = seq ? seq : 1;
	if (c->report)
		c->report(c->arg, seq, msg);
}

void reg_audit_check_init(struct reg_audit_check *c,
			  void (*report)(void *arg, uint64_t seq,
					 const char *msg),
			  void *arg)
{
	memset(c, 0, sizeof(*c));
	c->report = report;
	c->arg = arg;
}

void reg_audit_check_head(struct reg_audit_check *c, uint64_t seq,
			  const char *hash)
{
	c->head_known = true;
	c->head_seq = seq;
	snprintf(c->head, sizeof(c->head), "%s", hash ? hash : "");
}

void reg_audit_check_record(struct reg_audit_check *c, uint64_t key_seq,
			    const char *json, size_t len)
{
	char field[80], prev[80];
	uint64_t seq;

	c->n++;
	if (json_get(json, len, "seq", field, sizeof(field)) < 0)
		field[0] = '\0';
	seq = key_seq ? key_seq : strtoull(field, NULL, 10);
	if (seq != c->last + 1)
		check_bad(c, c->last + 1, "record %llu is missing (the next "
			  "is %llu)", (unsigned long long)(c->last + 1),
			  (unsigned long long)seq);
	if (key_seq && strtoull(field, NULL, 10) != key_seq)
		check_bad(c, key_seq, "record %llu was changed or moved: it "
			  "says seq %s", (unsigned long long)key_seq, field);
	if (json_get(json, len, "prev", prev, sizeof(prev)) < 0 ||
	    strcmp(prev, c->prev) != 0)
		check_bad(c, c->last, "record %llu was changed (record %llu "
			  "holds another hash of it)",
			  (unsigned long long)c->last,
			  (unsigned long long)seq);
	SHA256Data((const uint8_t *)json, len, c->prev);
	c->last = seq;
	if (c->head_known && c->head_seq && seq == c->head_seq) {
		c->head_seen = true;
		if (strcmp(c->prev, c->head) != 0)
			check_bad(c, seq, "record %llu was changed (the head "
				  "of the chain holds another hash of it)",
				  (unsigned long long)seq);
	}
}

int reg_audit_check_end(struct reg_audit_check *c, uint64_t *ret_first_bad)
{
	if (c->head_known && !c->head[0] && c->n)
		check_bad(c, c->last, "the head of the audit chain is "
			  "missing");
	else if (c->head_known && c->head[0] && !c->head_seq &&
		 strcmp(c->head, c->prev) != 0)
		check_bad(c, c->last, "the last record (%llu) was changed, "
			  "or records after it were removed",
			  (unsigned long long)c->last);
	else if (c->head_known && c->head_seq && !c->head_seen)
		check_bad(c, c->head_seq, "record %llu is missing (the head "
			  "of the chain names it)",
			  (unsigned long long)c->head_seq);
	if (ret_first_bad)
		*ret_first_bad = c->first_bad;
	return c->first_bad ? 1 : 0;
}

static int verify_one(void *arg, const struct idx_val *k,
		      const struct idx_val *v)
{
	/* a key that is not 8 bytes is record 0: found missing */
	reg_audit_check_record(arg, k->len == 8 ? be64_get(k->data) : 0,
			       v->data, v->len);
	return 0;
}

static int verify_txn(struct idx_txn *t, void *arg)
{
	struct reg_audit_check *c = arg;
	struct idx_val head;
	char hash[65];
	int r;

	reg_audit_check_init(c, c->report, c->arg); /* may run again */
	idx_scan(t, IDX_AUDIT, NULL, 0, NULL, 0, verify_one, c);
	r = idx_get(t, IDX_META, META_AUDIT_HEAD, strlen(META_AUDIT_HEAD),
		    &head);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0) {
		snprintf(hash, sizeof(hash), "%.*s",
			 (int)(head.len < 64 ? head.len : 64),
			 (const char *)head.data);
		if (head.len != 64)
			hash[0] = head.len ? '?' : '\0';
	}
	reg_audit_check_head(c, 0, r == 0 ? hash : NULL);
	return 0;
}

int reg_audit_verify(struct reg_registry *reg,
		     void (*report)(void *arg, uint64_t seq, const char *msg),
		     void *arg, uint64_t *ret_first_bad)
{
	struct reg_audit_check c;
	int r;

	if (!reg)
		return -EINVAL;
	reg_audit_check_init(&c, report, arg);
	r = idx_read(reg->ix, verify_txn, &c);
	if (r < 0)
		return r;
	return reg_audit_check_end(&c, ret_first_bad);
}

struct refusal_arg {
	const struct reg_caller *who;
	const struct audit_ev *ev;
};

static int refusal_txn(struct idx_txn *t, void *arg)
{
	struct refusal_arg *a = arg;

	return reg_audit_put_txn(t, a->who, a->ev);
}

static void refusal_write(struct reg_registry *reg,
			  const struct reg_caller *who,
			  const struct audit_ev *ev)
{
	struct refusal_arg a = { who, ev };
	int r = reg_change(reg, refusal_txn, &a);

	if (r < 0)
		log_err(r, "cannot audit a refusal of '%s'", ev->op);
}

/* Coalescing. A refusal is one slot of a small table: who, what it was
 * about and why (its copy), when its window opened, and how many identical
 * refusals came since without a record. rm -rf over a sealed tree of
 * 100,000 files so writes a handful of records (the first, then one with
 * "count" per window), not 100,000. The table is per process and small: a
 * new key takes a free slot or the oldest, whose count is written first. */
#define REFUSAL_SLOTS 64

struct refusal {
	bool used;
	struct reg_caller who;      /* uid, gid, pid only */
	char *op, *result, *event, *model, *version, *stage, *from, *reason;
	int64_t opened;             /* monotonic ns: the window's start */
	uint64_t count;             /* identical ones since, not written */
};

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool refusal_is(const struct refusal *f, const struct reg_caller *who,
		       const struct audit_ev *ev)
{
	return f->used && f->who.pid == who->pid && f->who.uid == who->uid &&
	       same_str(f->op, ev->op) && same_str(f->result, ev->result) &&
	       same_str(f->event, ev->event) && same_str(f->model, ev->model) &&
	       same_str(f->version, ev->version) &&
	       same_str(f->stage, ev->stage) && same_str(f->from, ev->from) &&
	       same_str(f->reason, ev->reason);
}

static void refusal_clear(struct refusal *f)
{
	free(f->op);
	free(f->result);
	free(f->event);
	free(f->model);
	free(f->version);
	free(f->stage);
	free(f->from);
	free(f->reason);
	memset(f, 0, sizeof(*f));
}

static char *dup_opt(const char *s, bool *ok)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d)
		*ok = false;
	return d;
}

static bool refusal_fill(struct refusal *f, const struct reg_caller *who,
			 const struct audit_ev *ev, int64_t now)
{
	bool ok = true;

	refusal_clear(f);
	f->used = true;
	f->who.uid = who->uid;
	f->who.gid = who->gid;
	f->who.pid = who->pid;
	f->op = dup_opt(ev->op, &ok);
	f->result = dup_opt(ev->result, &ok);
	f->event = dup_opt(ev->event, &ok);
	f->model = dup_opt(ev->model, &ok);
	f->version = dup_opt(ev->version, &ok);
	f->stage = dup_opt(ev->stage, &ok);
	f->from = dup_opt(ev->from, &ok);
	f->reason = dup_opt(ev->reason, &ok);
	f->opened = now;
	if (!ok)
		refusal_clear(f);
	return ok;
}

/* Moves f's unwritten count into *out (a record to write once the lock is
 * dropped); false when there is none. */
static bool refusal_take(struct refusal *f, struct refusal *out)
{
	if (!f->used || !f->count)
		return false;
	*out = *f;
	memset(f, 0, sizeof(*f));
	return true;
}

static void refusal_write_count(struct reg_registry *reg, struct refusal *f)
{
	refusal_write(reg, &f->who, &(struct audit_ev){ .op = f->op,
		.result = f->result, .event = f->event, .model = f->model,
		.version = f->version, .stage = f->stage, .from = f->from,
		.reason = f->reason, .count = f->count });
	refusal_clear(f);
}

void reg_audit_refusal(struct reg_registry *reg, const struct reg_caller *who,
		       const struct audit_ev *ev)
{
	struct refusal *tab, *f = NULL, done = { .used = false };
	int64_t now = mono_ns();
	bool pending = false;
	size_t i;

	pthread_mutex_lock(&reg->refusal_lock);
	if (!reg->refusals)
		reg->refusals = calloc(REFUSAL_SLOTS, sizeof(*reg->refusals));
	tab = reg->refusals;
	for (i = 0; tab && i < REFUSAL_SLOTS && !f; i++)
		if (refusal_is(&tab[i], who, ev))
			f = &tab[i];
	if (f && now - f->opened < REFUSAL_WINDOW_S * 1000000000LL) {
		f->count++;
		pthread_mutex_unlock(&reg->refusal_lock);
		return;
	}
	if (!f && tab) {
		/* a free slot, else the oldest */
		f = &tab[0];
		for (i = 0; i < REFUSAL_SLOTS && f->used; i++)
			if (!tab[i].used || tab[i].opened < f->opened)
				f = &tab[i];
	}
	if (f) {
		pending = refusal_take(f, &done);
		refusal_fill(f, who, ev, now);
	}
	pthread_mutex_unlock(&reg->refusal_lock);
	if (pending)
		refusal_write_count(reg, &done);
	refusal_write(reg, who, ev);
}

void reg_refusals_flush(struct reg_registry *reg, bool all)
{
	struct refusal done[REFUSAL_SLOTS];
	int64_t now = mono_ns();
	size_t i, n = 0;

	pthread_mutex_lock(&reg->refusal_lock);
	for (i = 0; reg->refusals && i < REFUSAL_SLOTS; i++) {
		struct refusal *f = &reg->refusals[i];

		if (!f->used || (!all && now - f->opened <
				 REFUSAL_WINDOW_S * 1000000000LL))
			continue;
		if (!refusal_take(f, &done[n]))
			refusal_clear(f);
		else
			n++;
	}
	if (all) {
		free(reg->refusals);
		reg->refusals = NULL;
	}
	pthread_mutex_unlock(&reg->refusal_lock);
	for (i = 0; i < n; i++)
		refusal_write_count(reg, &done[i]);
}

/* A refused change that no policy decided (EROFS on sealed content, a
 * non-numeric metric, a staged version's removal) is audited too. */
static bool is_refusal(int r)
{
	return r == -EROFS || r == -EPERM || r == -EINVAL || r == -EBUSY ||
	       r == -EACCES || r == -ENOTSUP;
}

void reg_audit_failure(struct reg_registry *reg, const struct reg_caller *who,
		       int r, const struct audit_ev *ev)
{
	struct audit_ev e = *ev;

	if (!is_refusal(r) || !who)
		return;
	e.result = "refused";
	if (!e.reason)
		e.reason = strerror(-r);
	reg_audit_refusal(reg, who, &e);
}

struct names_arg {
	uint64_t ino;
	const char *child;     /* a name in directory ino, or NULL */
	char model[256], version[256];
};

static int names_txn(struct idx_txn *t, void *arg)
{
	struct names_arg *a = arg;
	struct inode_rec r, m;
	uint64_t ino;
	int e;

	if ((e = reg_inode_get_txn(t, a->ino, &r)) < 0)
		return e;
	if (r.kind == REG_MODEL) {
		/* a change of a version by its name in the model */
		strlcpy(a->model, r.name, sizeof(a->model));
		if (a->child &&
		    reg_name_get_txn(t, r.ino, a->child, &ino) == 0 &&
		    reg_inode_get_txn(t, ino, &m) == 0 && m.kind == REG_VERSION)
			strlcpy(a->version, m.name, sizeof(a->version));
		return 0;
	}
	if ((e = reg_inode_get_txn(t, r.model, &m)) < 0)
		return e;
	strlcpy(a->model, m.name, sizeof(a->model));
	if (r.kind == REG_VERSION)
		strlcpy(a->version, r.name, sizeof(a->version));
	else if (r.version && (e = reg_inode_get_txn(t, r.version, &m)) == 0)
		strlcpy(a->version, m.name, sizeof(a->version));
	return e;
}

void reg_audit_ino_failure(struct reg_registry *reg,
			   const struct reg_caller *who, int r, uint64_t ino,
			   const struct audit_ev *ev)
{
	struct names_arg a = { .ino = ino, .child = ev->path };
	struct audit_ev e = *ev;

	if (!reg || !is_refusal(r) || reg_ino_virtual(ino) ||
	    idx_read(reg->ix, names_txn, &a) < 0)
		return;
	e.model = a.model;
	e.version = a.version[0] ? a.version : NULL;
	reg_audit_failure(reg, who, r, &e);
}

struct audit_arg {
	int (*fn)(void *arg, uint64_t seq, const char *json, size_t len);
	void *arg;
	char *tmp;
	size_t tmp_size;
	int err;
};

static int audit_one(void *arg, const struct idx_val *k,
		     const struct idx_val *v)
{
	struct audit_arg *a = arg;

	if (k->len != 8)
		return a->err = -EIO;
	if (v->len + 1 > a->tmp_size) {
		char *n = realloc(a->tmp, v->len + 1);

		if (!n)
			return a->err = -ENOMEM;
		a->tmp = n;
		a->tmp_size = v->len + 1;
	}
	memcpy(a->tmp, v->data, v->len);
	a->tmp[v->len] = '\0';
	return a->fn(a->arg, be64_get(k->data), a->tmp, v->len);
}

struct audit_read {
	struct audit_arg *a;
	uint64_t since;
};

static int audit_txn(struct idx_txn *t, void *arg)
{
	struct audit_read *ar = arg;
	uint8_t start[8];

	be64_put(start, ar->since);
	idx_scan(t, IDX_AUDIT, NULL, 0, start, 8, audit_one, ar->a);
	return ar->a->err;
}

int reg_audit(struct reg_registry *reg, uint64_t since,
	      int (*fn)(void *arg, uint64_t seq, const char *json, size_t len),
	      void *arg)
{
	struct audit_arg a = { .fn = fn, .arg = arg };
	struct audit_read ar = { &a, since };
	int r;

	if (!reg || !fn)
		return -EINVAL;
	r = idx_read(reg->ix, audit_txn, &ar);
	free(a.tmp);
	return r;
}
