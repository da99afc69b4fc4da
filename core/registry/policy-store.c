/* policy-store.c — changing and showing the stage policies and hook
 * definitions kept in the registry (`mreg policy`, SPEC §3, §6): set,
 * unset, hooks, an import from a config (asked for, or mregfs's first
 * start on a registry that never had a policy), the listing, and the
 * comparison with a config that disagrees. Who may change them: root and
 * the members of the stored admin group. The decisions taken with them
 * are policy.c's; the key schema is at the top of policy.c.
 */
#include "internal.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static const char *const stage_keys[] = {
	"promote_users", "promote_groups", "require_stage", "require_metric",
	"protect", NULL,
};

#define POLICY_KEYS \
	"promote_users, promote_groups, require_stage, require_metric, protect"

static const char *const hook_events[] = { "on_register", "on_promote", NULL };

/* Logs why an input is refused (the CLI shows it) and returns -EINVAL. */
static int bad_input(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int bad_input(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(LOG_LVL_WARN, "%s", msg);
	return -EINVAL;
}

static bool in_strv(const char *const *v, const char *s)
{
	for (; *v; v++)
		if (strcmp(*v, s) == 0)
			return true;
	return false;
}

/* Root, or a member of the stored admin group, may change policies. */
static int check_admin_txn(struct idx_txn *t, const struct reg_caller *who,
			   char *reason, size_t rlen)
{
	char group[256], tmp[4096], uname[256];
	struct group gr, *res = NULL;

	if (who->uid == 0)
		return 0;
	util_uid_name(who->uid, uname, sizeof(uname));
	if (reg_policy_get_str_txn(t, IDX_META, POL_ADMIN, strlen(POL_ADMIN), group,
			sizeof(group)) == 0) {
		if (getgrnam_r(group, &gr, tmp, sizeof(tmp), &res) == 0 &&
		    res && reg_caller_in_gid(who, res->gr_gid))
			return 0;
		snprintf(reason, rlen, "user '%s' may not change policies "
			 "(root and group '%s' may)", uname, group);
		return -EPERM;
	}
	snprintf(reason, rlen, "user '%s' may not change policies (root "
		 "may)", uname);
	return -EPERM;
}

/* Sets META key to val (NULL: removes it), audited with the old and the
 * new value (ev gives op, stage, key, path). 1 when it changed, 0 when it
 * was so already. */
static int pol_put_txn(struct idx_txn *t, const struct reg_caller *who,
		       const char *mkey, const char *val,
		       const struct audit_ev *ev)
{
	struct audit_ev e = *ev;
	struct idx_val v;
	char *old = NULL;
	int r;

	r = idx_get(t, IDX_META, mkey, strlen(mkey), &v);
	if (r == 0) {
		if (val && v.len == strlen(val) && !memcmp(v.data, val, v.len))
			return 0;
		if (!(old = strndup(v.data, v.len)))
			return -ENOMEM;
	} else if (r != -ENOENT) {
		return r;
	} else if (!val) {
		return 0;
	}
	if (val)
		r = idx_put(t, IDX_META, mkey, strlen(mkey), val, strlen(val),
			    0);
	else
		r = idx_del(t, IDX_META, mkey, strlen(mkey));
	if (r == 0) {
		e.old_value = old;
		e.old_len = old ? strlen(old) : 0;
		e.new_value = val;
		e.new_len = val ? strlen(val) : 0;
		r = reg_audit_put_txn(t, who, &e);
	}
	free(old);
	if (r == 0)
		r = idx_put(t, IDX_META, POL_STORED, strlen(POL_STORED), "1",
			    1, 0);
	return r < 0 ? r : 1;
}

static void stage_key(char *buf, size_t size, const char *stage,
		      const char *key)
{
	snprintf(buf, size, POL_STAGE "%s/%s", stage, key);
}

/* The stored form of key of a parsed stage policy, or NULL when the policy
 * leaves it unset. */
static char *canonical(const struct stage_policy *sp, const char *key)
{
	struct strbuf sb;
	char **v = NULL;
	size_t i;

	if (!strcmp(key, "require_stage"))
		return sp->require_stage[0] ? strdup(sp->require_stage) : NULL;
	if (!strcmp(key, "require_metric"))
		return sp->require_metric ? strdup(sp->require_metric) : NULL;
	if (!strcmp(key, "protect"))
		return strdup(sp->protect ? "true" : "false");
	v = !strcmp(key, "promote_users") ? sp->promote_users :
					   sp->promote_groups;
	if (!v)
		return NULL;
	strbuf_init(&sb);
	for (i = 0; v[i]; i++) {
		if (i)
			strbuf_addch(&sb, ',');
		strbuf_adds(&sb, v[i]);
	}
	return strbuf_detach(&sb, NULL);
}

/* Users and groups a policy names should exist: a name nobody has admits
 * nobody. Refused when strict (mreg policy set: the administrator is
 * there to fix it); otherwise (an import copies the config as it is)
 * named in the log. */
static int check_names(const struct stage_policy *sp, bool strict)
{
	const char *what = NULL, *name = NULL;
	char **v;

	for (v = sp->promote_users; v && *v && !what; v++)
		if (!getpwnam(*v)) {
			what = "user";
			name = *v;
		}
	for (v = sp->promote_groups; v && *v && !what; v++)
		if (!getgrnam(*v)) {
			what = "group";
			name = *v;
		}
	if (!what)
		return 0;
	if (strict)
		return bad_input("stage '%s': unknown %s '%s' in promote_%ss",
				 sp->name, what, name, what);
	log_msg(LOG_LVL_WARN, "stage '%s': unknown %s '%s' in promote_%ss: it "
		"admits nobody", sp->name, what, name, what);
	return 0;
}

/* A hook's program or URL: one the runner will run (config_hook_check():
 * a program absolute, executable, changeable by root or this process's
 * user only; a URL by the rule, with a secret in this process's config,
 * as a config that names one needs). */
static int check_program(const struct mreg_config *cfg, const char *event,
			 const char *prog)
{
	char why[PATH_MAX + 128];

	if (strlen(prog) >= HOOK_PROGRAM_MAX)
		return bad_input("hook %s: '%.40s...' is too long (at most %d "
				 "bytes)", event, prog, HOOK_PROGRAM_MAX - 1);
	if (strpbrk(prog, "\n\r"))
		return bad_input("hook %s: a program path holds no line break",
				 event);
	if (config_hook_check(cfg, prog, why, sizeof(why)) < 0)
		return bad_input("hook %s: %s", event, why);
	return 0;
}

/* One change to make: META key -> value (NULL removes), audited with
 * stage ("" for none) and key. No pointer into the element: the array
 * grows by reallocation. */
struct pol_change {
	char mkey[128];
	char *val;
	char stage[REG_STAGE_MAX + 1], key[32];
};

struct pol_op {
	const struct reg_caller *who;
	const char *op;             /* audit op */
	const char *path;           /* audit path (an import's config) */
	struct pol_change *v;
	size_t n, cap;
	bool unset_stage;           /* remove every key of stage */
	const char *stage;
	bool import;                /* remove every stored key not in v */
	bool if_none;               /* only when nothing was ever stored */
	bool root_only;
	char reason[1024];
	char stage_buf[REG_STAGE_MAX + 1];
	int changed;
};

static int change_add(struct pol_op *o, const char *mkey, const char *val,
		      const char *stage, const char *key)
{
	struct pol_change *c;

	if (ARRAY_GROW(o->v, o->cap, o->n) < 0)
		return -ENOMEM;
	c = &o->v[o->n];
	memset(c, 0, sizeof(*c));
	if (snprintf(c->mkey, sizeof(c->mkey), "%s", mkey) >=
	    (int)sizeof(c->mkey))
		return -EINVAL;
	if (val && !(c->val = strdup(val)))
		return -ENOMEM;
	if (stage)
		strlcpy(c->stage, stage, sizeof(c->stage));
	strlcpy(c->key, key, sizeof(c->key));
	o->n++;
	return 0;
}

static void pol_op_release(struct pol_op *o)
{
	size_t i;

	for (i = 0; i < o->n; i++)
		free(o->v[i].val);
	free(o->v);
}

static bool wanted(const struct pol_op *o, const char *mkey, size_t len)
{
	size_t i;

	for (i = 0; i < o->n; i++)
		if (strlen(o->v[i].mkey) == len &&
		    !memcmp(o->v[i].mkey, mkey, len))
			return true;
	return false;
}

struct stale_arg {
	const struct pol_op *o;
	struct pol_change *v;       /* stored keys to remove */
	size_t n, cap;
	int err;
};

/* Collects the stored keys to remove (idx_scan's fn must not change the
 * table it scans). */
static int stale_one(void *arg, const struct idx_val *k,
		     const struct idx_val *v)
{
	struct stale_arg *a = arg;
	struct pol_change *c;
	const char *s = k->data, *slash;

	(void)v;
	if (k->len >= sizeof(c->mkey) || wanted(a->o, s, k->len))
		return 0;
	if (ARRAY_GROW(a->v, a->cap, a->n) < 0)
		return a->err = -ENOMEM;
	c = &a->v[a->n++];
	memset(c, 0, sizeof(*c));
	memcpy(c->mkey, s, k->len);
	if (!strncmp(c->mkey, POL_STAGE, strlen(POL_STAGE))) {
		s = c->mkey + strlen(POL_STAGE);
		slash = strrchr(s, '/');
		if (!slash)
			return a->err = -EIO;
		snprintf(c->stage, sizeof(c->stage), "%.*s",
			 (int)(slash - s), s);
		strlcpy(c->key, slash + 1, sizeof(c->key));
	} else {
		strlcpy(c->key, c->mkey + strlen(POL_HOOK), sizeof(c->key));
	}
	return 0;
}

static int apply_txn(struct idx_txn *t, struct pol_op *o, struct pol_change *v,
		     size_t n, const char *op)
{
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		r = pol_put_txn(t, o->who, v[i].mkey, v[i].val,
			&(struct audit_ev){ .op = op,
				.stage = v[i].stage[0] ? v[i].stage : NULL,
				.key = v[i].key, .path = o->path });
		if (r < 0)
			return r;
		o->changed += r;
	}
	return 0;
}

/* A stage's policy is one whatever the spelling of its name (stage names
 * are unique regardless of case, registry.h): a change of stage names it
 * as it is stored, so that two spellings are never stored (config.c would
 * not read them back, and every gate would fail closed). A stored policy
 * that does not read is changed as named, so that it can be mended. */
static void stored_spelling_txn(struct idx_txn *t, struct pol_op *o)
{
	const struct stage_policy *sp;
	struct mreg_config pc;
	size_t i;

	if (!o->stage || reg_policy_load_txn(t, &pc) < 0)
		return;
	sp = config_stage(&pc, o->stage);
	if (sp && strcmp(sp->name, o->stage) != 0) {
		strlcpy(o->stage_buf, sp->name, sizeof(o->stage_buf));
		o->stage = o->stage_buf;
		for (i = 0; i < o->n; i++) {
			strlcpy(o->v[i].stage, sp->name,
				sizeof(o->v[i].stage));
			stage_key(o->v[i].mkey, sizeof(o->v[i].mkey), sp->name,
				  o->v[i].key);
		}
	}
	config_release(&pc);
}

static int policy_txn(struct idx_txn *t, void *arg)
{
	struct pol_op *o = arg;
	struct stale_arg sa = { .o = o };
	struct idx_val v;
	char prefix[128];
	int r;

	o->changed = 0;
	o->reason[0] = '\0';
	if (o->if_none) {
		r = idx_get(t, IDX_META, POL_STORED, strlen(POL_STORED), &v);
		if (r == 0)
			return -EEXIST;
		if (r != -ENOENT)
			return r;
	} else if (o->root_only && o->who->uid != 0) {
		char uname[256];

		util_uid_name(o->who->uid, uname, sizeof(uname));
		snprintf(o->reason, sizeof(o->reason), "user '%s' may not "
			 "name the policy administrators (root may)", uname);
		return -EPERM;
	} else if ((r = check_admin_txn(t, o->who, o->reason,
					sizeof(o->reason))) < 0) {
		return r;
	}
	stored_spelling_txn(t, o);
	if (o->unset_stage || o->import) {
		if (o->unset_stage)
			snprintf(prefix, sizeof(prefix), POL_STAGE "%s/",
				 o->stage);
		else
			strcpy(prefix, POL_STAGE);
		r = idx_scan(t, IDX_META, prefix, strlen(prefix), NULL, 0,
			     stale_one, &sa);
		if (r >= 0 && sa.err == 0 && o->import)
			r = idx_scan(t, IDX_META, POL_HOOK, strlen(POL_HOOK),
				     NULL, 0, stale_one, &sa);
		if (r >= 0 && sa.err == 0)
			r = apply_txn(t, o, sa.v, sa.n, o->op);
		free(sa.v);
		if (sa.err < 0)
			return sa.err;
		if (r < 0)
			return r;
	}
	if ((r = apply_txn(t, o, o->v, o->n, o->op)) < 0)
		return r;
	if (o->import && !o->if_none)
		r = idx_put(t, IDX_META, POL_STORED, strlen(POL_STORED), "1", 1,
			    0);
	return r < 0 ? r : o->changed;
}

/* Runs o; a refusal (not an administrator) is logged and audited. */
static int policy_write(struct reg_registry *reg, struct pol_op *o)
{
	int r = reg_change(reg, policy_txn, o);

	if (r == -EPERM && o->reason[0]) {
		log_msg(LOG_LVL_WARN, "refused: %s", o->reason);
		reg_audit_refusal(reg, o->who, &(struct audit_ev){ .op = o->op,
			.result = "refused", .stage = o->stage,
			.key = o->n == 1 ? o->v[0].key : NULL,
			.reason = o->reason });
	}
	return r;
}

/* Parses text (config lines) into a scratch config; a bad value is logged
 * with the parser's reason, without its "name:line: ". */
static int parse_policy_text(const char *text, size_t len,
			     struct mreg_config *ret)
{
	char err[512];
	const char *why;
	int r;

	config_init(ret);
	r = config_parse(ret, "policy", text, len, err, sizeof(err));
	if (r == -EINVAL) {
		why = strstr(err, ": ");
		log_msg(LOG_LVL_WARN, "%s", why ? why + 2 : err);
	}
	return r;
}

int reg_policy_set(struct reg_registry *reg, const struct reg_caller *who,
		   const char *stage, const struct reg_kv *kv, size_t n)
{
	struct pol_op o = { .who = who, .op = "policy.set", .stage = stage };
	struct mreg_config pc;
	struct strbuf sb;
	char mkey[128], *val;
	size_t i;
	int r;

	if (!reg || !who || !stage || (!kv && n) || !n)
		return -EINVAL;
	if (reg_check_stage(stage) < 0)
		return bad_input("invalid stage name '%s'", stage);
	strbuf_init(&sb);
	strbuf_addf(&sb, "[stage %s]\n", stage);
	for (i = 0; i < n; i++) {
		if (!kv[i].key || !kv[i].value ||
		    !in_strv(stage_keys, kv[i].key)) {
			strbuf_release(&sb);
			return bad_input("unknown policy key '%s' ("
					 POLICY_KEYS ")", kv[i].key ?
					 kv[i].key : "");
		}
		if (strpbrk(kv[i].value, "\n\r")) {
			strbuf_release(&sb);
			return bad_input("a policy value holds no line "
					 "break");
		}
		strbuf_addf(&sb, "%s = ", kv[i].key);
		reg_policy_add_quoted(&sb, kv[i].value, strlen(kv[i].value));
		strbuf_addch(&sb, '\n');
	}
	r = parse_policy_text(sb.buf, sb.len, &pc);
	strbuf_release(&sb);
	if (r < 0)
		return r;
	r = check_names(&pc.stages[0], true);
	for (i = 0; i < n && r == 0; i++) {
		/* every key given has a value: an empty one does not
		   parse */
		val = canonical(&pc.stages[0], kv[i].key);
		stage_key(mkey, sizeof(mkey), stage, kv[i].key);
		r = val ? change_add(&o, mkey, val, stage, kv[i].key) :
			  -ENOMEM;
		free(val);
	}
	config_release(&pc);
	if (r == 0)
		r = policy_write(reg, &o);
	pol_op_release(&o);
	return r;
}

int reg_policy_unset(struct reg_registry *reg, const struct reg_caller *who,
		     const char *stage, const char *const *keys, size_t n)
{
	struct pol_op o = { .who = who, .op = "policy.unset", .stage = stage };
	char mkey[128];
	size_t i;
	int r = 0;

	if (!reg || !who || !stage || (!keys && n))
		return -EINVAL;
	if (reg_check_stage(stage) < 0)
		return bad_input("invalid stage name '%s'", stage);
	for (i = 0; i < n && r == 0; i++) {
		if (!keys[i] || !in_strv(stage_keys, keys[i])) {
			r = bad_input("unknown policy key '%s' ("
				      POLICY_KEYS ")", keys[i] ? keys[i] : "");
			break;
		}
		stage_key(mkey, sizeof(mkey), stage, keys[i]);
		r = change_add(&o, mkey, NULL, stage, keys[i]);
	}
	o.unset_stage = n == 0;
	if (r == 0)
		r = policy_write(reg, &o);
	pol_op_release(&o);
	return r;
}

int reg_policy_hook(struct reg_registry *reg, const struct reg_caller *who,
		    const char *event, const char *program)
{
	struct pol_op o = { .who = who, .op = "policy.hook" };
	char mkey[64];
	int r;

	if (!reg || !who || !event)
		return -EINVAL;
	if (!in_strv(hook_events, event))
		return bad_input("unknown hook '%s' (on_register, "
				 "on_promote)", event);
	if (program && (r = check_program(reg->cfg, event, program)) < 0)
		return r;
	snprintf(mkey, sizeof(mkey), POL_HOOK "%s", event);
	r = change_add(&o, mkey, program, NULL, event);
	if (r == 0)
		r = policy_write(reg, &o);
	pol_op_release(&o);
	return r;
}

int reg_policy_admins(struct reg_registry *reg, const struct reg_caller *who,
		      const char *group)
{
	struct pol_op o = { .who = who, .op = "policy.admins",
			    .root_only = true };
	int r;

	if (!reg || !who)
		return -EINVAL;
	if (group && !getgrnam(group))
		return bad_input("unknown group '%s'", group);
	r = change_add(&o, POL_ADMIN, group, NULL, "admin_group");
	if (r == 0)
		r = policy_write(reg, &o);
	pol_op_release(&o);
	return r;
}

bool reg_policy_in_config(const struct mreg_config *cfg)
{
	return cfg->nstages || cfg->on_register || cfg->on_promote;
}

int reg_policy_import(struct reg_registry *reg, const struct reg_caller *who,
		      const struct mreg_config *cfg, unsigned flags)
{
	struct pol_op o = { .who = who, .op = "policy.import",
			    .path = cfg ? cfg->path : NULL, .import = true,
			    .if_none = flags & REG_POLICY_IF_NONE };
	const char *hooks[2];
	char mkey[128], *val;
	size_t i, k;
	int r = 0;

	if (!reg || !who || !cfg)
		return -EINVAL;
	if (o.if_none && !reg_policy_in_config(cfg))
		return 0; /* nothing to adopt: leave the registry unset */
	for (i = 0; i < cfg->nstages && r == 0; i++) {
		const struct stage_policy *sp = &cfg->stages[i];

		r = check_names(sp, false);
		for (k = 0; stage_keys[k] && r == 0; k++) {
			if (!strcmp(stage_keys[k], "protect") && !sp->protect)
				continue; /* the default, not a setting */
			val = canonical(sp, stage_keys[k]);
			if (!val)
				continue;
			stage_key(mkey, sizeof(mkey), sp->name, stage_keys[k]);
			r = change_add(&o, mkey, val, sp->name, stage_keys[k]);
			free(val);
		}
	}
	hooks[0] = cfg->on_register;
	hooks[1] = cfg->on_promote;
	for (k = 0; k < 2 && r == 0; k++) {
		if (!hooks[k])
			continue;
		if ((r = check_program(cfg, hook_events[k], hooks[k])) < 0)
			break;
		snprintf(mkey, sizeof(mkey), POL_HOOK "%s", hook_events[k]);
		r = change_add(&o, mkey, hooks[k], NULL, hook_events[k]);
	}
	if (r == 0)
		r = policy_write(reg, &o);
	if (r >= 0 && o.if_none)
		log_msg(LOG_LVL_WARN, "the registry had no stage policy or "
			"hook: imported %d setting%s from config '%s'; from "
			"now on the registry's policy applies (mreg policy)",
			r, r == 1 ? "" : "s", cfg->path ? cfg->path : "");
	pol_op_release(&o);
	return r;
}

/* ---- showing it ------------------------------------------------------------ */

struct list_arg {
	int (*fn)(void *arg, const char *stage, const char *key,
		  const char *value);
	void *arg;
	int err;
};

static int list_one(void *arg, const struct idx_val *k,
		    const struct idx_val *v)
{
	struct list_arg *a = arg;
	char key[IDX_KEY_MAX + 1], *val, *stage = NULL, *slash;
	const char *name;
	int r;

	memcpy(key, k->data, k->len);
	key[k->len] = '\0';
	if (!strncmp(key, POL_STAGE, strlen(POL_STAGE))) {
		stage = key + strlen(POL_STAGE);
		slash = strrchr(stage, '/');
		if (!slash)
			return a->err = -EIO;
		*slash = '\0';
		name = slash + 1;
	} else if (!strncmp(key, POL_HOOK, strlen(POL_HOOK))) {
		name = key + strlen(POL_HOOK);
	} else if (!strcmp(key, POL_ADMIN)) {
		name = "admin_group";
	} else {
		return 0;
	}
	if (!(val = strndup(v->data, v->len)))
		return a->err = -ENOMEM;
	r = a->fn(a->arg, stage, name, val);
	free(val);
	return r;
}

static int list_txn(struct idx_txn *t, void *arg)
{
	struct list_arg *a = arg;
	int r;

	r = idx_scan(t, IDX_META, "policy/", 7, NULL, 0, list_one, a);
	return a->err < 0 ? a->err : r;
}

int reg_policy_list(struct reg_registry *reg,
		    int (*fn)(void *arg, const char *stage, const char *key,
			      const char *value),
		    void *arg)
{
	struct list_arg a = { .fn = fn, .arg = arg };

	if (!reg || !fn)
		return -EINVAL;
	return idx_read(reg->ix, list_txn, &a);
}

static int load_txn(struct idx_txn *t, void *arg)
{
	return reg_policy_load_txn(t, arg);
}

struct diff {
	void (*fn)(void *arg, const char *msg);
	void *arg;
	int n;
};

static void differ(struct diff *d, const char *what, const char *in_cfg,
		   const char *in_reg)
{
	char msg[1024];

	if ((in_cfg ? in_cfg : "")[0] == '\0' &&
	    (in_reg ? in_reg : "")[0] == '\0')
		return;
	if (in_cfg && in_reg && !strcmp(in_cfg, in_reg))
		return;
	d->n++;
	if (!d->fn)
		return;
	if (in_cfg && in_reg)
		snprintf(msg, sizeof(msg), "%s is '%s' in the config, '%s' in "
			 "the registry", what, in_cfg, in_reg);
	else if (in_cfg)
		snprintf(msg, sizeof(msg), "%s is '%s' in the config, not set "
			 "in the registry", what, in_cfg);
	else
		snprintf(msg, sizeof(msg), "%s is '%s' in the registry, not "
			 "set in the config", what, in_reg);
	d->fn(d->arg, msg);
}

static void differ_stage(struct diff *d, const char *name,
			 const struct stage_policy *c,
			 const struct stage_policy *s)
{
	static const struct stage_policy none;
	char what[128];
	size_t k;

	for (k = 0; stage_keys[k]; k++) {
		char *a = canonical(c ? c : &none, stage_keys[k]);
		char *b = canonical(s ? s : &none, stage_keys[k]);

		if (!strcmp(stage_keys[k], "protect")) {
			/* false is the default: absent and false agree */
			if (a && !strcmp(a, "false")) {
				free(a);
				a = NULL;
			}
			if (b && !strcmp(b, "false")) {
				free(b);
				b = NULL;
			}
		}
		snprintf(what, sizeof(what), "stage '%s': %s", name,
			 stage_keys[k]);
		differ(d, what, a, b);
		free(a);
		free(b);
	}
}

int reg_policy_compare(struct reg_registry *reg, const struct mreg_config *cfg,
		       void (*fn)(void *arg, const char *msg), void *arg)
{
	struct diff d = { .fn = fn, .arg = arg };
	struct mreg_config pc;
	size_t i;
	int r;

	if (!reg || !cfg)
		return -EINVAL;
	if (!reg_policy_in_config(cfg))
		return 0;
	r = idx_read(reg->ix, load_txn, &pc);
	if (r < 0)
		return r;
	for (i = 0; i < cfg->nstages; i++)
		differ_stage(&d, cfg->stages[i].name, &cfg->stages[i],
			     config_stage(&pc, cfg->stages[i].name));
	for (i = 0; i < pc.nstages; i++)
		if (!config_stage(cfg, pc.stages[i].name))
			differ_stage(&d, pc.stages[i].name, NULL,
				     &pc.stages[i]);
	differ(&d, "hook on_register", cfg->on_register, pc.on_register);
	differ(&d, "hook on_promote", cfg->on_promote, pc.on_promote);
	config_release(&pc);
	return d.n;
}
