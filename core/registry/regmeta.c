/* regmeta.c — metadata (SPEC §4), the audit trail, listings, search and
 * statistics.
 *
 * Metadata keys live in IDX_XATTRS as (inode, "metric.auc") -> bytes. The
 * facts (created, creator, sealed, size, stored, digest) are computed from
 * the inode record, never stored, so they can't be set.
 *
 * Audit records (IDX_AUDIT, key be64 seq) are one JSON object each, with
 * "prev": the SHA-256 (hex) of the previous record's text, so an edited,
 * removed or reordered record breaks the chain where it happened.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "query/search.h"
#include "serve/serve.h"
#include "util.h"

/* ---- the audit trail ---------------------------------------------------- */

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
		    "\"pid\":%d,\"op\":", (unsigned long long)seq, when,
		    (unsigned)who->uid, (unsigned)who->gid, (int)who->pid);
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
	add_field(&sb, "reason", ev->reason);
	if (ev->count)
		strbuf_addf(&sb, ",\"count\":%llu",
			    (unsigned long long)ev->count);
	strbuf_adds(&sb, ",\"prev\":");
	json_quotes(&sb, prev);
	strbuf_addch(&sb, '}');
	be64_put(key, seq);
	r = idx_put(t, IDX_AUDIT, key, 8, sb.buf, sb.len, 0);
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

/* ---- metadata ------------------------------------------------------------ */

enum meta_class { META_BAD, META_FREE, META_FROZEN, META_FACT };

static bool key_chars(const char *s)
{
	if (!*s || strlen(s) > 200)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' ||
		      *s == '.'))
			return false;
	return true;
}

static const char *const facts[] = { "created", "creator", "sealed", "size",
				     "stored", "digest", NULL };

/* Which rule applies to key (without "user.mreg."). */
static enum meta_class meta_class(const char *key)
{
	size_t i;

	if (strcmp(key, "description") == 0)
		return META_FREE;
	if ((strncmp(key, "tag.", 4) == 0 && key_chars(key + 4)) ||
	    (strncmp(key, "metric.", 7) == 0 && key_chars(key + 7)))
		return META_FREE;
	if ((strncmp(key, "param.", 6) == 0 && key_chars(key + 6)) ||
	    (strncmp(key, "lineage.", 8) == 0 && key_chars(key + 8)))
		return META_FROZEN;
	for (i = 0; facts[i]; i++)
		if (strcmp(key, facts[i]) == 0)
			return META_FACT;
	return META_BAD;
}

static size_t xkey(uint8_t *k, uint64_t ino, const char *key)
{
	size_t n = strlen(key);

	be64_put(k, ino);
	memcpy(k + 8, key, n);
	return 8 + n;
}

int reg_meta_get_txn(struct idx_txn *t, uint64_t ino, const char *key,
		     struct idx_val *ret)
{
	uint8_t k[IDX_KEY_MAX];

	if (strlen(key) > IDX_KEY_MAX - 8)
		return -EINVAL;
	return idx_get(t, IDX_XATTRS, k, xkey(k, ino, key), ret);
}

int reg_meta_set_txn(struct idx_txn *t, const struct reg_caller *who,
		     const struct inode_rec *rec, const char *key,
		     const void *val, size_t len, int flags)
{
	enum meta_class c = meta_class(key);
	struct inode_rec m;
	struct idx_val old;
	uint8_t k[8 + 256];
	size_t kl;
	char *oldcopy = NULL;
	size_t oldlen = 0;
	int r, have;

	if (rec->kind != REG_MODEL && rec->kind != REG_VERSION)
		return -ENOTSUP;
	if (c == META_BAD)
		return -EINVAL;
	if (c == META_FACT)
		return -EPERM;
	if (c == META_FROZEN && (rec->flags & INODE_SEALED))
		return -EROFS;
	if (val && strncmp(key, "metric.", 7) == 0 &&
	    !util_decimal(val, len, NULL))
		return -EINVAL;
	if (val && len > 65536)
		return -E2BIG;
	kl = xkey(k, rec->ino, key);
	have = idx_get(t, IDX_XATTRS, k, kl, &old);
	if (have < 0 && have != -ENOENT)
		return have;
	if ((flags & XATTR_CREATE) && have == 0)
		return -EEXIST;
	if (((flags & XATTR_REPLACE) || !val) && have == -ENOENT)
		return -ENODATA;
	if (have == 0) {
		oldcopy = malloc(old.len + 1);
		if (!oldcopy)
			return -ENOMEM;
		memcpy(oldcopy, old.data, old.len);
		oldlen = old.len;
	}
	r = val ? idx_put(t, IDX_XATTRS, k, kl, val, len, 0) :
		  idx_del(t, IDX_XATTRS, k, kl);
	if (r == 0) {
		const char *model = rec->name, *version = NULL;

		if (rec->kind == REG_VERSION) {
			r = reg_inode_get_txn(t, rec->model, &m);
			model = r == 0 ? m.name : "";
			version = rec->name;
		}
		if (r == 0)
			r = reg_audit_put_txn(t, who, &(struct audit_ev){
				.op = val ? "meta.set" : "meta.unset",
				.model = model, .version = version, .key = key,
				.old_value = oldcopy, .old_len = oldlen,
				.new_value = val, .new_len = len });
	}
	free(oldcopy);
	return r;
}

struct totals {
	uint64_t size, nfiles;
};

static int count_file(void *arg, const struct inode_rec *r, UNUSED int depth)
{
	struct totals *a = arg;

	if (r->kind == REG_FILE) {
		a->size += r->size;
		a->nfiles++;
	}
	return 0;
}

/* The size and file count of version v: recorded when sealed; for a
 * draft, those of its committed files now. */
static int version_totals_txn(struct idx_txn *t, const struct inode_rec *v,
			      uint64_t *ret_size, uint64_t *ret_nfiles)
{
	struct totals a = { v->size, v->nfiles };
	int r;

	if (!(v->flags & INODE_SEALED)) {
		a = (struct totals){ 0, 0 };
		if ((r = reg_tree_walk_txn(t, v->ino, 0, count_file, &a)) < 0)
			return r;
	}
	*ret_size = a.size;
	*ret_nfiles = a.nfiles;
	return 0;
}

/* The read-only facts, as text. 0 and buf set, or -ENODATA. */
static int fact_value_txn(struct idx_txn *t, const struct inode_rec *rec,
			  const char *key, char *buf, size_t size)
{
	char hex[MREG_ID_HEX];

	if (!strcmp(key, "created")) {
		util_time_iso(rec->btime, true, buf, size);
	} else if (!strcmp(key, "creator")) {
		util_uid_name(rec->uid, buf, size);
	} else if (!strcmp(key, "sealed")) {
		if (rec->kind != REG_VERSION)
			return -ENODATA;
		if (rec->flags & INODE_SEALED)
			util_time_iso(rec->sealed_at, true, buf, size);
		else
			snprintf(buf, size, "false");
	} else if (!strcmp(key, "size")) {
		uint64_t bytes, nfiles;
		int r;

		if (rec->kind != REG_VERSION)
			return -ENODATA;
		if ((r = version_totals_txn(t, rec, &bytes, &nfiles)) < 0)
			return r;
		snprintf(buf, size, "%llu", (unsigned long long)bytes);
	} else if (!strcmp(key, "stored")) {
		/* what its chunks added to the store: known when sealed */
		if (rec->kind != REG_VERSION || !(rec->flags & INODE_SEALED))
			return -ENODATA;
		snprintf(buf, size, "%llu", (unsigned long long)rec->stored);
	} else if (!strcmp(key, "digest")) {
		if ((rec->kind != REG_VERSION && rec->kind != REG_FILE) ||
		    !(rec->flags & INODE_SEALED))
			return -ENODATA;
		snprintf(buf, size, "xxh128:%s", chunkid_hex(&rec->digest, hex));
	} else {
		return -ENODATA;
	}
	return 0;
}

struct xattr_arg {
	struct reg_registry *reg;
	const struct reg_caller *who;
	uint64_t ino;
	const char *key;
	void *buf;
	const void *val;
	size_t size;
	int flags;
	ssize_t len;
	struct strbuf sb;
};

static int getxattr_txn(struct idx_txn *t, void *arg)
{
	struct xattr_arg *a = arg;
	struct inode_rec rec;
	struct idx_val v;
	char fact[128];
	const void *p;
	size_t n;
	int r;

	if ((r = reg_inode_get_txn(t, a->ino, &rec)) < 0)
		return r;
	if (rec.kind == REG_FILE) {
		if (strcmp(a->key, "digest") != 0)
			return -ENODATA;
	} else if (rec.kind != REG_MODEL && rec.kind != REG_VERSION) {
		return -ENODATA;
	}
	if (meta_class(a->key) == META_FACT) {
		if ((r = fact_value_txn(t, &rec, a->key, fact,
					sizeof(fact))) < 0)
			return r;
		p = fact;
		n = strlen(fact);
	} else if (meta_class(a->key) != META_BAD) {
		r = reg_meta_get_txn(t, a->ino, a->key, &v);
		if (r == -ENOENT || r == -EINVAL)
			return -ENODATA;
		if (r < 0)
			return r;
		p = v.data;
		n = v.len;
	} else {
		return -ENODATA;
	}
	a->len = (ssize_t)n;
	if (a->size) {
		if (n > a->size)
			return -ERANGE;
		memcpy(a->buf, p, n);
	}
	return 0;
}

static const char *strip_prefix(const char *name)
{
	size_t n = strlen(REG_XATTR_PREFIX);

	if (strncmp(name, REG_XATTR_PREFIX, n) != 0)
		return NULL;
	return name + n;
}

/* .mreg/audit.log carries user.mreg.head: "SEQ SHA256HEX" of the last
 * record, so that a reader of the log (mreg audit --verify through a mount)
 * can check the last record too. */
static int audit_head_txn(struct idx_txn *t, void *arg)
{
	struct xattr_arg *a = arg;
	struct idx_val k, v, head;
	int r;

	r = idx_last(t, IDX_AUDIT, NULL, 0, &k, &v);
	if (r < 0 || k.len != 8)
		return r < 0 ? (r == -ENOENT ? -ENODATA : r) : -EIO;
	r = idx_get(t, IDX_META, META_AUDIT_HEAD, strlen(META_AUDIT_HEAD),
		    &head);
	if (r < 0)
		return r == -ENOENT ? -ENODATA : r;
	strbuf_addf(&a->sb, "%llu ", (unsigned long long)be64_get(k.data));
	strbuf_add(&a->sb, head.data, head.len);
	return 0;
}

/* Runs fn, which builds a value in a->sb, and answers as getxattr(2)
 * does: the length (only the length when size is 0), or -ERANGE. */
static ssize_t xattr_reply(struct reg_registry *reg, struct xattr_arg *a,
			   int (*fn)(struct idx_txn *, void *), void *buf,
			   size_t size)
{
	ssize_t n;
	int r;

	strbuf_init(&a->sb);
	r = idx_read(reg->ix, fn, a);
	n = r < 0 ? r : (ssize_t)a->sb.len;
	if (r == 0 && size) {
		if (a->sb.len > size)
			n = -ERANGE;
		else
			memcpy(buf, a->sb.buf, a->sb.len);
	}
	strbuf_release(&a->sb);
	return n;
}

static ssize_t audit_head_xattr(struct reg_registry *reg, void *buf,
				size_t size)
{
	struct xattr_arg a = { .reg = reg };

	return xattr_reply(reg, &a, audit_head_txn, buf, size);
}

ssize_t reg_getxattr(struct reg_registry *reg, uint64_t ino, const char *name,
		     void *buf, size_t size)
{
	struct xattr_arg a = { .reg = reg, .ino = ino, .buf = buf,
			       .size = size };
	int r;

	if (!reg || !name || (size && !buf))
		return -EINVAL;
	a.key = strip_prefix(name);
	if (a.key && ino == REG_AUDITLOG_INO && strcmp(a.key, "head") == 0)
		return audit_head_xattr(reg, buf, size);
	if (!a.key || reg_ino_virtual(ino))
		return -ENODATA;
	r = idx_read(reg->ix, getxattr_txn, &a);
	return r < 0 ? r : a.len;
}

static int setxattr_txn(struct idx_txn *t, void *arg)
{
	struct xattr_arg *a = arg;
	struct inode_rec rec;
	int r;

	if ((r = reg_inode_get_txn(t, a->ino, &rec)) < 0)
		return r;
	if (rec.kind != REG_MODEL && rec.kind != REG_VERSION)
		return rec.kind == REG_FILE && (rec.flags & INODE_SEALED) ?
		       -EROFS : -ENOTSUP;
	return reg_meta_set_txn(t, a->who, &rec, a->key, a->val, a->size,
				a->flags);
}

struct rollback_ctl_arg {
	uint64_t ino;
	char model[REG_NAME_MAX + 1];
};

static int rollback_ctl_txn(struct idx_txn *t, void *arg)
{
	struct rollback_ctl_arg *a = arg;
	struct inode_rec s, m;
	int r;

	if ((r = reg_inode_get_txn(t, a->ino, &s)) < 0)
		return r;
	if (s.kind != REG_STAGES)
		return -EINVAL;
	if ((r = reg_inode_get_txn(t, s.model, &m)) < 0)
		return r;
	if (strlen(m.name) >= sizeof(a->model))
		return -EIO;
	strcpy(a->model, m.name);
	return 0;
}

/* user.mreg.rollback = S on a model's stages directory: reg_rollback() of
 * stage S, for a client of the mount (mreg rollback through it), so that
 * the daemon alone decides where a stage goes back to. A control, not
 * metadata: never stored, so getxattr and listxattr do not show it. On
 * the stages directory, not the stage: the kernel refuses user.* keys on
 * a symlink before FUSE sees them. */
static int rollback_control(struct reg_registry *reg,
			    const struct reg_caller *who, uint64_t ino,
			    const void *value, size_t size)
{
	struct rollback_ctl_arg a = { .ino = ino };
	char stage[REG_STAGE_MAX + 1];
	int r;

	if (!value || size == 0 || size > REG_STAGE_MAX ||
	    memchr(value, '\0', size))
		return -EINVAL;
	memcpy(stage, value, size);
	stage[size] = '\0';
	if ((r = idx_read(reg->ix, rollback_ctl_txn, &a)) < 0)
		return r;
	return reg_rollback(reg, who, a.model, stage, NULL);
}

int reg_setxattr(struct reg_registry *reg, const struct reg_caller *who,
		 uint64_t ino, const char *name, const void *value, size_t size,
		 int flags)
{
	struct xattr_arg a = { .reg = reg, .who = who, .ino = ino,
			       .val = value ? value : "", .size = size,
			       .flags = flags };
	int r;

	if (!reg || !who || !name)
		return -EINVAL;
	if (reg_ino_virtual(ino))
		return -EPERM;
	a.key = strip_prefix(name);
	if (!a.key)
		return -ENOTSUP; /* ACLs, security labels, other users' keys */
	if (strcmp(a.key, "rollback") == 0)
		return rollback_control(reg, who, ino, value, size);
	if (strcmp(a.key, "register") == 0)
		return size ? -EINVAL :
		       reg_version_register(reg, who, ino, NULL);
	r = reg_change(reg, setxattr_txn, &a);
	reg_audit_ino_failure(reg, who, r, ino, &(struct audit_ev){
		.op = "meta.set", .key = a.key });
	return r;
}

int reg_removexattr(struct reg_registry *reg, const struct reg_caller *who,
		    uint64_t ino, const char *name)
{
	struct xattr_arg a = { .reg = reg, .who = who, .ino = ino };
	int r;

	if (!reg || !who || !name)
		return -EINVAL;
	if (reg_ino_virtual(ino))
		return -EPERM;
	a.key = strip_prefix(name);
	if (!a.key)
		return -ENODATA;
	r = reg_change(reg, setxattr_txn, &a);
	reg_audit_ino_failure(reg, who, r, ino, &(struct audit_ev){
		.op = "meta.unset", .key = a.key });
	return r;
}

struct list_arg {
	int (*fn)(void *arg, const char *key, const char *value, size_t len);
	void *arg;
	int err;
};

static int list_one(void *arg, const struct idx_val *k,
		    const struct idx_val *v)
{
	struct list_arg *a = arg;
	char key[300], *val;
	size_t n = k->len - 8;
	int r;

	if (n >= sizeof(key))
		return a->err = -EIO;
	memcpy(key, (const char *)k->data + 8, n);
	key[n] = '\0';
	if (key[0] == HELD_PREFIX[0])
		return 0;
	val = malloc(v->len + 1);
	if (!val)
		return a->err = -ENOMEM;
	memcpy(val, v->data, v->len);
	val[v->len] = '\0';
	r = a->fn(a->arg, key, val, v->len);
	free(val);
	return r;
}

/* Calls fn for each stored key of rec, then each fact it has. */
static int meta_walk_txn(struct idx_txn *t, const struct inode_rec *rec,
			 int (*fn)(void *arg, const char *key,
				   const char *value, size_t len),
			 void *arg)
{
	struct list_arg a = { fn, arg, 0 };
	char fact[128];
	uint8_t p[8];
	size_t i;
	int r = 0;

	if (rec->kind == REG_MODEL || rec->kind == REG_VERSION) {
		be64_put(p, rec->ino);
		r = idx_scan(t, IDX_XATTRS, p, 8, NULL, 0, list_one, &a);
		if (a.err < 0)
			return a.err;
		if (r)
			return r;
	}
	for (i = 0; facts[i]; i++) {
		if (rec->kind == REG_FILE && strcmp(facts[i], "digest"))
			continue;
		if (fact_value_txn(t, rec, facts[i], fact, sizeof(fact)) < 0)
			continue;
		if ((r = fn(arg, facts[i], fact, strlen(fact))) != 0)
			return r;
	}
	return 0;
}

static int listx_one(void *arg, const char *key, UNUSED const char *value,
		     UNUSED size_t len)
{
	struct strbuf *sb = arg;

	strbuf_adds(sb, REG_XATTR_PREFIX);
	strbuf_add(sb, key, strlen(key) + 1);
	return 0;
}

static int listxattr_txn(struct idx_txn *t, void *arg)
{
	struct xattr_arg *a = arg;
	struct inode_rec rec;
	int r;

	if ((r = reg_inode_get_txn(t, a->ino, &rec)) < 0)
		return r;
	if (rec.kind != REG_MODEL && rec.kind != REG_VERSION &&
	    rec.kind != REG_FILE)
		return 0;
	return meta_walk_txn(t, &rec, listx_one, &a->sb);
}

ssize_t reg_listxattr(struct reg_registry *reg, uint64_t ino, char *buf,
		      size_t size)
{
	struct xattr_arg a = { .reg = reg, .ino = ino };

	if (!reg || (size && !buf))
		return -EINVAL;
	if (ino == REG_AUDITLOG_INO) {
		static const char head[] = REG_XATTR_PREFIX "head";

		if (size && size < sizeof(head))
			return -ERANGE;
		if (size)
			memcpy(buf, head, sizeof(head));
		return sizeof(head);
	}
	if (reg_ino_virtual(ino))
		return 0;
	return xattr_reply(reg, &a, listxattr_txn, buf, size);
}

/* ---- by name ----------------------------------------------------------- */

struct meta_arg {
	struct reg_registry *reg;
	const struct reg_caller *who;
	const char *model, *version, *key, *value;
	int (*fn)(void *arg, const char *key, const char *value, size_t len);
	void *arg;
};

static int target_get_txn(struct idx_txn *t, const char *model,
			  const char *version, struct inode_rec *ret)
{
	if (version)
		return reg_version_get_txn(t, model, version, NULL, ret);
	return reg_model_get_txn(t, model, ret);
}

static int meta_list_txn(struct idx_txn *t, void *arg)
{
	struct meta_arg *a = arg;
	struct inode_rec rec;
	int r;

	if ((r = target_get_txn(t, a->model, a->version, &rec)) < 0)
		return r;
	return meta_walk_txn(t, &rec, a->fn, a->arg);
}

int reg_meta_list(struct reg_registry *reg, const char *model,
		  const char *version,
		  int (*fn)(void *arg, const char *key, const char *value,
			    size_t len),
		  void *arg)
{
	struct meta_arg a = { .reg = reg, .model = model, .version = version,
			      .fn = fn, .arg = arg };

	if (!reg || !model || !fn)
		return -EINVAL;
	return idx_read(reg->ix, meta_list_txn, &a);
}

static int meta_set_txn(struct idx_txn *t, void *arg)
{
	struct meta_arg *a = arg;
	struct inode_rec rec;
	int r;

	if ((r = target_get_txn(t, a->model, a->version, &rec)) < 0)
		return r;
	return reg_meta_set_txn(t, a->who, &rec, a->key, a->value,
				a->value ? strlen(a->value) : 0, 0);
}

int reg_meta_set(struct reg_registry *reg, const struct reg_caller *who,
		 const char *model, const char *version, const char *key,
		 const char *value)
{
	struct meta_arg a = { .reg = reg, .who = who, .model = model,
			      .version = version, .key = key, .value = value };

	int r;

	if (!reg || !who || !model || !key)
		return -EINVAL;
	r = reg_change(reg, meta_set_txn, &a);
	reg_audit_failure(reg, who, r, &(struct audit_ev){
		.op = value ? "meta.set" : "meta.unset", .model = model,
		.version = version, .key = key });
	return r;
}

struct model_list {
	struct idx_txn *t;
	int (*fn)(void *arg, const struct reg_model_info *m);
	void *arg;
	int err;
};

static int count_versions(void *arg, const struct idx_val *k,
			  UNUSED const struct idx_val *v)
{
	uint32_t *n = arg;
	size_t len = k->len - 8;

	/* every entry but "stages" and pending (dot or file) names */
	if (!(len == 6 && memcmp((const char *)k->data + 8, "stages", 6) == 0))
		(*n)++;
	return 0;
}

static int model_one(void *arg, UNUSED const struct idx_val *k,
		     const struct idx_val *v)
{
	struct model_list *a = arg;
	struct reg_model_info mi;
	struct inode_rec m;
	uint64_t ino;
	uint8_t p[8];

	if (v->len != 8)
		return a->err = -EIO;
	memcpy(&ino, v->data, 8);
	if ((a->err = reg_inode_get_txn(a->t, ino, &m)) < 0)
		return a->err;
	mi.name = m.name;
	mi.ino = m.ino;
	mi.nversions = 0;
	be64_put(p, m.ino);
	idx_scan(a->t, IDX_NAMES, p, 8, NULL, 0, count_versions,
		 &mi.nversions);
	mi.created = m.btime / 1000000000;
	mi.creator = m.uid;
	return a->fn(a->arg, &mi);
}

static int models_txn(struct idx_txn *t, void *arg)
{
	struct model_list *a = arg;
	uint8_t p[8];

	a->t = t;
	be64_put(p, REG_MODELS_INO);
	idx_scan(t, IDX_NAMES, p, 8, NULL, 0, model_one, a);
	return a->err;
}

int reg_models(struct reg_registry *reg,
	       int (*fn)(void *arg, const struct reg_model_info *m), void *arg)
{
	struct model_list a = { .fn = fn, .arg = arg };

	if (!reg || !fn)
		return -EINVAL;
	return idx_read(reg->ix, models_txn, &a);
}

/* ---- versions ------------------------------------------------------------ */

struct stage_names {
	char (*v)[REG_STAGE_MAX + 1];
	const char **ptrs;
	size_t n, cap;
	uint64_t target;
	struct idx_txn *t;
	int err;
};

static int stage_name_one(void *arg, const struct idx_val *k,
			  const struct idx_val *v)
{
	struct stage_names *s = arg;
	struct inode_rec rec;
	uint64_t ino;
	size_t n = k->len - 8;

	if (v->len != 8 || n > REG_STAGE_MAX)
		return s->err = -EIO;
	memcpy(&ino, v->data, 8);
	if ((s->err = reg_inode_get_txn(s->t, ino, &rec)) < 0)
		return s->err;
	if (rec.target != s->target)
		return 0;
	if (s->n + 1 >= s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		void *nv = reallocarray(s->v, cap, sizeof(*s->v));

		if (!nv)
			return s->err = -ENOMEM;
		s->v = nv;
		s->cap = cap;
	}
	memcpy(s->v[s->n], (const char *)k->data + 8, n);
	s->v[s->n][n] = '\0';
	s->n++;
	return 0;
}

/* Fills vi for version rec of model m; stage names in *sn (caller frees
 * sn->v and sn->ptrs). */
static int version_fill_txn(struct idx_txn *t, const struct inode_rec *m,
			    const struct inode_rec *v,
			    struct reg_version_info *vi, struct stage_names *sn)
{
	uint8_t p[8];
	size_t i;
	int r;

	memset(sn, 0, sizeof(*sn));
	sn->t = t;
	sn->target = v->ino;
	be64_put(p, m->stages_ino);
	idx_scan(t, IDX_NAMES, p, 8, NULL, 0, stage_name_one, sn);
	if (sn->err < 0)
		return sn->err;
	sn->ptrs = calloc(sn->n + 1, sizeof(*sn->ptrs));
	if (!sn->ptrs)
		return -ENOMEM;
	for (i = 0; i < sn->n; i++)
		sn->ptrs[i] = sn->v[i];
	memset(vi, 0, sizeof(*vi));
	if ((r = version_totals_txn(t, v, &vi->size, &vi->nfiles)) < 0)
		return r;
	vi->model = m->name;
	vi->name = v->name;
	vi->ino = v->ino;
	vi->sealed = (v->flags & INODE_SEALED) != 0;
	vi->created = v->btime / 1000000000;
	vi->sealed_at = v->sealed_at / 1000000000;
	vi->creator = v->uid;
	vi->stored = v->stored;
	vi->digest = v->digest;
	vi->stages = sn->ptrs;
	return 0;
}

static void stage_names_free(struct stage_names *sn)
{
	free(sn->v);
	free(sn->ptrs);
}

struct version_list {
	struct idx_txn *t;
	struct inode_rec m;
	const char *only;
	int (*fn)(void *arg, const struct reg_version_info *v);
	void *arg;
	const struct search_query *q;
	int err;
};

static void emit_version(struct version_list *a, const struct inode_rec *v)
{
	struct reg_version_info vi;
	struct stage_names sn;
	int r;

	r = version_fill_txn(a->t, &a->m, v, &vi, &sn);
	if (r == 0)
		r = a->fn(a->arg, &vi);
	stage_names_free(&sn);
	if (r)
		a->err = r;
}

static int version_one(void *arg, UNUSED const struct idx_val *k,
		       const struct idx_val *v)
{
	struct version_list *a = arg;
	struct inode_rec rec;
	uint64_t ino;

	if (v->len != 8)
		return a->err = -EIO;
	memcpy(&ino, v->data, 8);
	if ((a->err = reg_inode_get_txn(a->t, ino, &rec)) < 0)
		return a->err;
	if (rec.kind != REG_VERSION)
		return 0;
	emit_version(a, &rec);
	return a->err;
}

static int versions_txn(struct idx_txn *t, void *arg)
{
	struct version_list *a = arg;
	struct inode_rec v;
	uint8_t p[8];
	uint64_t ino;
	int r;

	a->t = t;
	if ((r = reg_model_get_txn(t, a->m.name, &a->m)) < 0)
		return r;
	if (a->only) {
		if (reg_check_name(a->only) < 0)
			return -EINVAL;
		if ((r = reg_name_get_txn(t, a->m.ino, a->only, &ino)) < 0 ||
		    (r = reg_inode_get_txn(t, ino, &v)) < 0)
			return r;
		if (v.kind != REG_VERSION)
			return -ENOENT;
		emit_version(a, &v);
		return a->err;
	}
	be64_put(p, a->m.ino);
	idx_scan(t, IDX_NAMES, p, 8, NULL, 0, version_one, a);
	return a->err;
}

int reg_versions(struct reg_registry *reg, const char *model,
		 int (*fn)(void *arg, const struct reg_version_info *v),
		 void *arg)
{
	struct version_list a = { .fn = fn, .arg = arg };

	if (!reg || !model || !fn)
		return -EINVAL;
	if (reg_check_name(model) < 0)
		return -EINVAL;
	strlcpy(a.m.name, model, sizeof(a.m.name));
	return idx_read(reg->ix, versions_txn, &a);
}

int reg_version_info(struct reg_registry *reg, const char *model,
		     const char *version,
		     int (*fn)(void *arg, const struct reg_version_info *v),
		     void *arg)
{
	struct version_list a = { .fn = fn, .arg = arg, .only = version };
	char buf[2 * REG_NAME_MAX + 2], *slash;

	if (!reg || !model || !fn)
		return -EINVAL;
	if (!version) {
		if (strlen(model) >= sizeof(buf))
			return -EINVAL;
		strcpy(buf, model);
		slash = strchr(buf, '/');
		if (!slash)
			return -EINVAL;
		*slash = '\0';
		model = buf;
		a.only = slash + 1;
	}
	if (reg_check_name(model) < 0)
		return -EINVAL;
	strlcpy(a.m.name, model, sizeof(a.m.name));
	return idx_read(reg->ix, versions_txn, &a);
}

/* ---- files of a version --------------------------------------------------- */

struct files_walk {
	struct reg_registry *reg; /* to compute digests not computed yet
				      (NULL: the walker needs none) */
	struct idx_txn *t;
	int (*fn)(void *arg, const struct reg_file_info *f);
	void *arg;
};

static int files_dir(struct files_walk *w, uint64_t dir, const char *prefix,
		     int depth)
{
	struct child_list c;
	struct inode_rec *rec;
	struct reg_file_info fi;
	size_t i;
	int r = 0;

	if (depth > 2048)
		return -EIO;
	if ((r = reg_children_txn(w->t, dir, &c)) < 0) {
		free(c.v);
		return r;
	}
	rec = malloc(sizeof(*rec));
	if (!rec) {
		free(c.v);
		return -ENOMEM;
	}
	for (i = 0; i < c.n && r == 0; i++) {
		char *path;

		/* a draft's file rewritten in place: its digest is taken
		   now (it is not stored: sealing does that) */
		if ((r = reg_inode_get_txn(w->t, c.v[i].ino, rec)) < 0 ||
		    (w->reg &&
		     (r = reg_file_digest_txn(w->reg, w->t, rec)) < 0))
			break;
		if (asprintf(&path, "%s%s", prefix, c.v[i].name) < 0) {
			r = -ENOMEM;
			break;
		}
		memset(&fi, 0, sizeof(fi));
		fi.path = path;
		fi.kind = rec->kind;
		fi.mode = rec->mode;
		fi.size = rec->kind == REG_FILE ? rec->size :
			  rec->kind == REG_SYMLINK ? strlen(rec->target_path) : 0;
		fi.digest = rec->digest;
		fi.target = rec->kind == REG_SYMLINK ? rec->target_path : NULL;
		fi.ino = rec->ino;
		r = w->fn(w->arg, &fi);
		if (r == 0 && rec->kind == REG_DIR) {
			char *sub;

			if (asprintf(&sub, "%s/", path) < 0) {
				r = -ENOMEM;
			} else {
				r = files_dir(w, rec->ino, sub, depth + 1);
				free(sub);
			}
		}
		free(path);
	}
	free(rec);
	free(c.v);
	return r;
}

struct files_arg {
	const char *model, *version;
	struct files_walk w;
};

static int files_txn(struct idx_txn *t, void *arg)
{
	struct files_arg *a = arg;
	struct inode_rec v;
	int r;

	if ((r = reg_version_get_txn(t, a->model, a->version, NULL, &v)) < 0)
		return r;
	a->w.t = t;
	return files_dir(&a->w, v.ino, "", 0);
}

int reg_files(struct reg_registry *reg, const char *model, const char *version,
	      int (*fn)(void *arg, const struct reg_file_info *f), void *arg)
{
	struct files_arg a = { .model = model, .version = version };

	if (!reg || !model || !version || !fn)
		return -EINVAL;
	a.w.reg = reg;
	a.w.fn = fn;
	a.w.arg = arg;
	return idx_read(reg->ix, files_txn, &a);
}

/* ---- resolve and create --------------------------------------------------- */

struct resolve_arg {
	const char *path;
	struct inode_rec rec;
};

static int resolve_txn(struct idx_txn *t, void *arg)
{
	struct resolve_arg *a = arg;
	char *copy = strdup(a->path), *save = NULL, *part;
	uint64_t cur = REG_MODELS_INO, ino;
	int r = -ENOENT, n = 0;

	if (!copy)
		return -ENOMEM;
	if (!copy[strspn(copy, "/")]) {
		free(copy);
		return -EINVAL;
	}
	for (part = strtok_r(copy, "/", &save); part;
	     part = strtok_r(NULL, "/", &save), n++) {
		if (n < 2 && reg_check_name(part) < 0 &&
		    !(n == 1 && strcmp(part, "stages") == 0)) {
			r = -EINVAL;
			break;
		}
		if (strlen(part) > 255) {
			r = -ENAMETOOLONG;
			break;
		}
		if ((r = reg_name_get_txn(t, cur, part, &ino)) < 0 ||
		    (r = reg_inode_get_txn(t, ino, &a->rec)) < 0)
			break;
		/* stages/S: follow the stage to its version */
		if (a->rec.kind == REG_STAGE &&
		    (r = reg_inode_get_txn(t, a->rec.target, &a->rec)) < 0)
			break;
		cur = a->rec.ino;
	}
	free(copy);
	return r;
}

int reg_resolve(struct reg_registry *reg, const char *path,
		struct reg_attr *ret)
{
	struct resolve_arg a = { .path = path };
	int r;

	if (!reg || !path || !ret)
		return -EINVAL;
	r = idx_read(reg->ix, resolve_txn, &a);
	if (r < 0)
		return r;
	reg_inode_attr(&a.rec, ret);
	return 0;
}

struct mcreate_arg {
	const struct reg_caller *who;
	const char *model;
	struct inode_rec rec;
};

static int model_create_txn(struct idx_txn *t, void *arg)
{
	struct mcreate_arg *a = arg;

	return reg_model_create_txn(t, a->who, a->model, 0777, &a->rec);
}

int reg_model_create(struct reg_registry *reg, const struct reg_caller *who,
		     const char *model)
{
	struct mcreate_arg a = { .who = who, .model = model };

	if (!reg || !who || !model)
		return -EINVAL;
	return reg_change(reg, model_create_txn, &a);
}

/* ---- search --------------------------------------------------------------- */

struct search_cand {
	struct idx_txn *t;
	const struct inode_rec *m, *v;
	const struct reg_version_info *vi;
};

static void search_get(void *arg, const char *field,
		       void (*emit)(void *ectx, const char *value), void *ectx)
{
	struct search_cand *c = arg;
	struct idx_val val;
	char buf[128], *s;
	size_t i;

	if (!strcmp(field, "name")) {
		emit(ectx, c->m->name);
	} else if (!strcmp(field, "version")) {
		emit(ectx, c->v->name);
	} else if (!strcmp(field, "stage")) {
		for (i = 0; c->vi->stages[i]; i++)
			emit(ectx, c->vi->stages[i]);
	} else if (!strcmp(field, "created")) {
		util_time_iso(c->v->btime, true, buf, sizeof(buf));
		emit(ectx, buf);
	} else if (!strcmp(field, "creator")) {
		util_uid_name(c->v->uid, buf, sizeof(buf));
		emit(ectx, buf);
	} else if (reg_meta_get_txn(c->t, c->v->ino, field, &val) == 0) {
		s = malloc(val.len + 1);
		if (!s)
			return;
		memcpy(s, val.data, val.len);
		s[val.len] = '\0';
		emit(ectx, s);
		free(s);
	}
}

struct search_arg {
	const struct search_query *q;
	int (*fn)(void *arg, const struct reg_version_info *v);
	void *arg;
	struct idx_txn *t;
	struct inode_rec m;
	int err;
};

static int search_version(void *arg, UNUSED const struct idx_val *k,
			  const struct idx_val *v)
{
	struct search_arg *a = arg;
	struct reg_version_info vi;
	struct stage_names sn;
	struct search_cand c;
	struct inode_rec rec;
	uint64_t ino;
	int r;

	if (v->len != 8)
		return a->err = -EIO;
	memcpy(&ino, v->data, 8);
	if ((a->err = reg_inode_get_txn(a->t, ino, &rec)) < 0)
		return a->err;
	if (rec.kind != REG_VERSION)
		return 0;
	if ((r = version_fill_txn(a->t, &a->m, &rec, &vi, &sn)) < 0) {
		stage_names_free(&sn);
		return a->err = r;
	}
	c = (struct search_cand){ a->t, &a->m, &rec, &vi };
	r = search_match(a->q, search_get, &c) ? a->fn(a->arg, &vi) : 0;
	stage_names_free(&sn);
	return r;
}

static int search_model(void *arg, UNUSED const struct idx_val *k,
			const struct idx_val *v)
{
	struct search_arg *a = arg;
	uint64_t ino;
	uint8_t p[8];
	int r;

	if (v->len != 8)
		return a->err = -EIO;
	memcpy(&ino, v->data, 8);
	if ((a->err = reg_inode_get_txn(a->t, ino, &a->m)) < 0)
		return a->err;
	be64_put(p, ino);
	r = idx_scan(a->t, IDX_NAMES, p, 8, NULL, 0, search_version, a);
	return a->err < 0 ? a->err : r;
}

static int search_txn(struct idx_txn *t, void *arg)
{
	struct search_arg *a = arg;
	uint8_t p[8];

	a->t = t;
	be64_put(p, REG_MODELS_INO);
	idx_scan(t, IDX_NAMES, p, 8, NULL, 0, search_model, a);
	return a->err;
}

int reg_search(struct reg_registry *reg, const char *query, char *err,
	       size_t errlen,
	       int (*fn)(void *arg, const struct reg_version_info *v),
	       void *arg)
{
	struct search_arg a = { .fn = fn, .arg = arg };
	struct search_query *q;
	int r;

	if (!reg || !query || !fn)
		return -EINVAL;
	r = search_parse(query, &q, err, errlen);
	if (r < 0)
		return r;
	a.q = q;
	r = idx_read(reg->ix, search_txn, &a);
	search_free(q);
	return r;
}

/* ---- statistics ------------------------------------------------------------ */

/* A set of chunk keys (open addressing), to count distinct chunks. */
struct key_set {
	struct chunk_key *k;
	uint32_t *len;
	uint8_t *full;       /* slot in use (any key, all-zero too) */
	size_t size, used;
};

static size_t key_hash(const struct chunk_key *k, size_t size)
{
	uint64_t h;

	memcpy(&h, k->b + 4, 8);
	return (size_t)(h ^ (h >> 31) ^ k->b[17]) & (size - 1);
}

/* Adds k; 1 if it was new, 0 if present, -ENOMEM. */
static int key_add(struct key_set *s, const struct chunk_key *k,
		   uint32_t len)
{
	size_t i;

	if ((s->used + 1) * 2 > s->size) {
		struct key_set n = { 0 };
		size_t j;

		n.size = s->size ? s->size * 2 : 4096;
		n.k = calloc(n.size, sizeof(*n.k));
		n.len = calloc(n.size, sizeof(*n.len));
		n.full = calloc(n.size, 1);
		if (!n.k || !n.len || !n.full) {
			free(n.k);
			free(n.len);
			free(n.full);
			return -ENOMEM;
		}
		for (j = 0; j < s->size; j++) {
			if (!s->full[j])
				continue;
			i = key_hash(&s->k[j], n.size);
			while (n.full[i])
				i = (i + 1) & (n.size - 1);
			n.k[i] = s->k[j];
			n.len[i] = s->len[j];
			n.full[i] = 1;
		}
		n.used = s->used;
		free(s->k);
		free(s->len);
		free(s->full);
		*s = n;
	}
	for (i = key_hash(k, s->size); s->full[i];
	     i = (i + 1) & (s->size - 1))
		if (memcmp(&s->k[i], k, sizeof(*k)) == 0)
			return 0;
	s->k[i] = *k;
	s->full[i] = 1;
	s->len[i] = len;
	s->used++;
	return 1;
}

static bool key_has(const struct key_set *s, const struct chunk_key *k)
{
	size_t i;

	if (!s->size)
		return false;
	for (i = key_hash(k, s->size); s->full[i];
	     i = (i + 1) & (s->size - 1))
		if (memcmp(&s->k[i], k, sizeof(*k)) == 0)
			return true;
	return false;
}

static void key_set_free(struct key_set *s)
{
	free(s->k);
	free(s->len);
	free(s->full);
	memset(s, 0, sizeof(*s));
}

struct tree_stats {
	struct idx_txn *t;
	struct key_set *model_set, *total_set;
	struct reg_stats *ms, *ts;
	const struct key_set *other;   /* reg_shared_bytes */
	uint64_t shared;
	int err;
};

static int stat_extent(void *arg, const struct idx_val *k,
		       const struct idx_val *v)
{
	struct tree_stats *s = arg;
	struct extent_rec x;
	int r;

	if (rec_extent_decode(k->data, k->len, v->data, v->len, &x) < 0)
		return s->err = -EIO;
	if (s->other) {
		if (key_has(s->other, &x.chunk) &&
		    (r = key_add(s->model_set, &x.chunk, x.len)) != 0) {
			if (r < 0)
				return s->err = r;
			s->shared += x.len;
		}
		return 0;
	}
	if (s->model_set) {
		if ((r = key_add(s->model_set, &x.chunk, x.len)) < 0)
			return s->err = r;
		if (r) {
			s->ms->stored += x.len;
			s->ms->chunks++;
		}
	}
	if (s->total_set) {
		if ((r = key_add(s->total_set, &x.chunk, x.len)) < 0)
			return s->err = r;
		if (r) {
			s->ts->stored += x.len;
			s->ts->chunks++;
		}
	}
	return 0;
}

static int stat_file_cb(void *arg, const struct reg_file_info *f)
{
	struct tree_stats *s = arg;
	uint8_t p[8];

	if (f->kind != REG_FILE)
		return 0;
	if (s->ms) {
		s->ms->files++;
		s->ms->logical += f->size;
	}
	if (s->ts) {
		s->ts->files++;
		s->ts->logical += f->size;
	}
	be64_put(p, f->ino);
	idx_scan(s->t, IDX_EXTENTS, p, 8, NULL, 0, stat_extent, s);
	return s->err;
}

struct stats_arg {
	int (*fn)(void *arg, const struct reg_stats *s);
	void *arg;
	struct idx_txn *t;
	struct key_set total_set;
	struct reg_stats total;
	int err;
};

static int stats_model(void *arg, UNUSED const struct idx_val *k,
		       const struct idx_val *v)
{
	struct stats_arg *a = arg;
	struct key_set ms = { 0 };
	struct reg_stats st = { 0 };
	struct tree_stats ts = { .t = a->t, .model_set = &ms,
				 .total_set = &a->total_set, .ms = &st,
				 .ts = &a->total };
	struct child_list c;
	struct inode_rec m, rec;
	struct files_walk w = { .t = a->t, .fn = stat_file_cb, .arg = &ts };
	uint64_t ino;
	size_t i;
	int r = 0;

	if (v->len != 8)
		return a->err = -EIO;
	memcpy(&ino, v->data, 8);
	if ((a->err = reg_inode_get_txn(a->t, ino, &m)) < 0)
		return a->err;
	reg_children_txn(a->t, ino, &c);
	for (i = 0; i < c.n && r == 0 && c.err == 0; i++) {
		if ((r = reg_inode_get_txn(a->t, c.v[i].ino, &rec)) < 0)
			break;
		if (rec.kind != REG_VERSION)
			continue;
		st.versions++;
		a->total.versions++;
		r = files_dir(&w, rec.ino, "", 0);
	}
	free(c.v);
	key_set_free(&ms);
	if (c.err < 0 || r < 0)
		return a->err = c.err < 0 ? c.err : r;
	st.model = m.name;
	return a->fn(a->arg, &st);
}

static int stats_txn(struct idx_txn *t, void *arg)
{
	struct stats_arg *a = arg;
	uint8_t p[8];
	int r;

	a->t = t;
	be64_put(p, REG_MODELS_INO);
	r = idx_scan(t, IDX_NAMES, p, 8, NULL, 0, stats_model, a);
	if (a->err < 0)
		return a->err;
	if (r)
		return r;
	a->total.model = NULL;
	return a->fn(a->arg, &a->total);
}

int reg_stats(struct reg_registry *reg,
	      int (*fn)(void *arg, const struct reg_stats *s), void *arg)
{
	struct stats_arg a = { .fn = fn, .arg = arg };
	int r;

	if (!reg || !fn)
		return -EINVAL;
	r = idx_read(reg->ix, stats_txn, &a);
	key_set_free(&a.total_set);
	return r;
}

struct shared_arg {
	const char *ma, *va, *mb, *vb;
	uint64_t shared;
};

static int shared_txn(struct idx_txn *t, void *arg)
{
	struct shared_arg *a = arg;
	struct key_set sa = { 0 }, seen = { 0 };
	struct tree_stats ts = { .t = t, .model_set = &sa };
	struct reg_stats dummy = { 0 };
	struct files_walk w = { .t = t, .fn = stat_file_cb, .arg = &ts };
	struct inode_rec va, vb;
	int r;

	if ((r = reg_version_get_txn(t, a->ma, a->va, NULL, &va)) < 0 ||
	    (r = reg_version_get_txn(t, a->mb, a->vb, NULL, &vb)) < 0)
		return r;
	ts.ms = &dummy;
	r = files_dir(&w, va.ino, "", 0);
	if (r == 0) {
		ts.other = &sa;
		ts.model_set = &seen;
		ts.ms = NULL;
		r = files_dir(&w, vb.ino, "", 0);
		a->shared = ts.shared;
	}
	key_set_free(&sa);
	key_set_free(&seen);
	return r;
}

int reg_shared_bytes(struct reg_registry *reg, const char *model_a,
		     const char *version_a, const char *model_b,
		     const char *version_b, uint64_t *ret)
{
	struct shared_arg a = { model_a, version_a, model_b, version_b, 0 };
	int r;

	if (!reg || !model_a || !version_a || !model_b || !version_b || !ret)
		return -EINVAL;
	r = idx_read(reg->ix, shared_txn, &a);
	if (r == 0)
		*ret = a.shared;
	return r;
}

int reg_store_stats(struct reg_registry *reg, struct reg_store_stats *ret)
{
	struct reg_store_stats st = { 0 };
	struct idx_stats is = { 0 };
	int r;

	if (!reg || !ret)
		return -EINVAL;
	if ((r = reg_gc_estimate(reg, &st)) < 0)
		return r;
	if ((r = store_bytes(reg->st, &st.pack_bytes)) < 0)
		return r;
	idx_stats(reg->ix, &is);
	st.index_bytes = is.bytes_used;
	st.reads = atomic_load(&reg->reads);
	st.read_bytes = atomic_load(&reg->read_bytes);
	st.writes = atomic_load(&reg->writes);
	st.write_bytes = atomic_load(&reg->write_bytes);
	st.promotions = atomic_load(&reg->promotions);
	st.errors = atomic_load(&reg->errors);
	st.chunked_bytes = atomic_load(&reg->chunked_bytes);
	*ret = st;
	return 0;
}

/* .mreg/metrics, in the Prometheus text format: each family once, with
 * its HELP and TYPE lines and then all its samples (per-model families
 * carry a model label), so that `promtool check metrics` accepts it and
 * `mreg --store MNT stats` can print the same table as on the store. */
struct metrics_arg {
	struct strbuf fam[5];     /* the per-model families, one each */
	struct reg_stats total;
	uint64_t models;
};

static const struct {
	const char *name, *help;
} model_fams[5] = {
	{ "mreg_model_versions", "Versions of the model." },
	{ "mreg_model_files", "Files of all versions of the model." },
	{ "mreg_model_logical_bytes", "Bytes of all files of all versions "
	  "of the model." },
	{ "mreg_model_referenced_bytes", "Bytes of the distinct chunks the "
	  "model's versions reference." },
	{ "mreg_model_chunks", "Distinct chunks the model's versions "
	  "reference." },
};

static int metrics_model(void *arg, const struct reg_stats *s)
{
	struct metrics_arg *a = arg;
	const uint64_t v[5] = { s->versions, s->files, s->logical, s->stored,
				s->chunks };
	int i;

	if (!s->model) {
		a->total = *s;
		return 0;
	}
	a->models++;
	for (i = 0; i < 5; i++) {
		/* model names are [A-Za-z0-9._-]: nothing to escape */
		strbuf_addf(&a->fam[i], "%s{model=\"%s\"} %llu\n",
			    model_fams[i].name, s->model,
			    (unsigned long long)v[i]);
	}
	return 0;
}

/* What became of the hooks. */
static void metrics_hooks(struct reg_registry *reg, struct strbuf *sb)
{
	struct hook_counts hc;
	int i;

	hooks_counts(reg->hooks, &hc);
	strbuf_adds(sb, "# HELP mreg_hooks_total Hooks by outcome: ok, error "
		    "(exited non-zero), failed (did not start or timed out), "
		    "dropped (too many waiting).\n"
		    "# TYPE mreg_hooks_total counter\n");
	for (i = 0; i < HOOK_NRESULTS; i++)
		strbuf_addf(sb, "mreg_hooks_total{result=\"%s\"} %llu\n",
			    hooks_result_name((enum hook_result)i),
			    (unsigned long long)hc.n[i]);
	strbuf_addf(sb, "# HELP mreg_hooks_queued Hook events waiting to run.\n"
		    "# TYPE mreg_hooks_queued gauge\n"
		    "mreg_hooks_queued %llu\n", (unsigned long long)hc.queued);
}

/* The descriptors held for users (fdcap.h). */
static void metrics_open_files(struct reg_registry *reg, struct strbuf *sb)
{
	struct fdcap_stats fc;

	fdcap_stats(reg->fdcap, &fc);
	strbuf_addf(sb, "# HELP mreg_open_files Spool descriptors held for "
		    "files open for writing.\n# TYPE mreg_open_files gauge\n"
		    "mreg_open_files %llu\n", (unsigned long long)fc.held);
	strbuf_addf(sb, "# HELP mreg_open_files_refused_total Spools refused "
		    "with EMFILE ([limits]).\n"
		    "# TYPE mreg_open_files_refused_total counter\n"
		    "mreg_open_files_refused_total %llu\n",
		    (unsigned long long)fc.refused);
}

/* One family of one sample: its HELP and TYPE lines, then the sample. */
static void metric(struct strbuf *sb, const char *name, const char *help,
		   bool counter, const char *value)
{
	strbuf_addf(sb, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help,
		    name, counter ? "counter" : "gauge", name, value);
}

/* The families of one sample: the totals, the store, the counters. */
static void metrics_totals(struct strbuf *sb, const struct metrics_arg *a,
			   const struct reg_store_stats *st)
{
	const struct reg_stats *t = &a->total;
	const struct {
		const char *name, *help;
		bool counter;
		uint64_t v;
	} one[] = {
		{ "mreg_models", "Registered models.", false, a->models },
		{ "mreg_versions", "Versions of all models.", false,
		  t->versions },
		{ "mreg_files", "Files of all versions.", false, t->files },
		{ "mreg_logical_bytes", "Bytes of all files of all versions.",
		  false, t->logical },
		{ "mreg_referenced_bytes", "Bytes of the distinct chunks the "
		  "versions reference.", false, t->stored },
		{ "mreg_chunks", "Distinct chunks the versions reference.",
		  false, t->chunks },
		{ "mreg_stored_bytes", "Bytes of the pack files.", false,
		  st->pack_bytes },
		{ "mreg_live_bytes", "Bytes of the chunks that something "
		  "references.", false, st->live_bytes },
		{ "mreg_reclaimable_bytes", "Pack bytes mreg gc can reclaim.",
		  false, st->dead_bytes },
		{ "mreg_index_bytes", "Bytes the index uses.", false,
		  st->index_bytes },
		{ "mreg_store_chunks", "Chunk records in the store.", false,
		  st->chunks },
		{ "mreg_reads_total", "Reads of file content by this process.",
		  true, st->reads },
		{ "mreg_read_bytes_total", "Bytes read by this process.", true,
		  st->read_bytes },
		{ "mreg_commits_total", "File commits by this process.", true,
		  st->writes },
		{ "mreg_written_bytes_total", "Bytes committed by this "
		  "process.", true, st->write_bytes },
		{ "mreg_promotions_total", "Stage changes by this process.",
		  true, st->promotions },
		{ "mreg_errors_total", "Failed calls in this process.", true,
		  st->errors },
		{ "mreg_chunked_bytes_total", "Bytes cut into chunks and hashed "
		  "to store written files.", true, st->chunked_bytes },
	};
	char num[32];
	size_t k;

	for (k = 0; k < sizeof(one) / sizeof(one[0]); k++) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)one[k].v);
		metric(sb, one[k].name, one[k].help, one[k].counter, num);
	}
	snprintf(num, sizeof(num), "%.4f", t->stored ?
		 (double)t->logical / (double)t->stored : 1.0);
	metric(sb, "mreg_dedup_ratio", "Logical bytes per referenced byte.",
	       false, num);
}

int reg_metrics_text(struct reg_registry *reg, char **ret, size_t *ret_len)
{
	struct metrics_arg a = { .models = 0 };
	struct reg_store_stats st;
	struct strbuf sb;
	int i, r;

	if (!reg || !ret || !ret_len)
		return -EINVAL;
	for (i = 0; i < 5; i++)
		strbuf_init(&a.fam[i]);
	strbuf_init(&sb);
	r = reg_stats(reg, metrics_model, &a);
	if (r == 0)
		r = reg_store_stats(reg, &st);
	if (r < 0)
		goto out;
	metrics_totals(&sb, &a, &st);
	metrics_hooks(reg, &sb);
	metrics_open_files(reg, &sb);
	serve_metrics(reg->serve, &sb);
	for (i = 0; i < 5; i++) {
		if (!a.fam[i].len)
			continue;
		strbuf_addf(&sb, "# HELP %s %s\n# TYPE %s gauge\n",
			    model_fams[i].name, model_fams[i].help,
			    model_fams[i].name);
		strbuf_add(&sb, a.fam[i].buf, a.fam[i].len);
	}
out:
	for (i = 0; i < 5; i++)
		strbuf_release(&a.fam[i]);
	if (r < 0) {
		strbuf_release(&sb);
		return r;
	}
	*ret = strbuf_detach(&sb, ret_len);
	return 0;
}
