/* policy.c — stage policies and hook definitions, kept in the registry
 * (SPEC §3, §6), and the decisions taken with them: who may change a
 * stage, which versions a stage admits, whether a stage may be removed,
 * whether the mode or owner of a model or version may change.
 *
 * Every decision reads the stored policy inside the transaction that makes
 * the change (no check-then-act), so that a mount, the CLI on the store and
 * any other process that opens the registry apply the same rules, whatever
 * their config says. A config's [stage] and [hooks] sections reach the
 * registry only by an import that someone asked for (`mreg policy import`,
 * or mregfs's first start on a registry that has never had a policy); a
 * config that disagrees is reported (reg_policy_compare()), not applied.
 *
 * Key schema (IDX_META; every value is text, as a config file holds it):
 *	"policy/stage/" STAGE "/" KEY -> value
 *	        KEY: promote_users, promote_groups (names separated by
 *	        commas, no blanks), require_stage (a stage name),
 *	        require_metric ("auc >= 0.9"), protect ("true", "false")
 *	"policy/hook/" EVENT -> the program (an absolute path)
 *	        EVENT: on_register, on_promote
 *	"policy/admin_group" -> a group whose members may change policies
 *	        (root always may)
 *	"policy/stored" -> "1" once a policy was set or imported: from then on
 *	        no config is imported unless someone asks
 * A stage name holds no '/', so a key splits at its last '/'. These are
 * ordinary index records: another index backend keeps them as it keeps
 * META.
 *
 * Stored policies are read by writing them out as config text
 * ("[stage S]\nKEY = "VALUE"\n...") and parsing that with config.c: one
 * parser and one set of rules for what a value may be, for the file and
 * for the registry. A stored policy that does not parse refuses every
 * change it governs (-EIO): a gate fails closed.
 */
#include "internal.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* ---- who is who ----------------------------------------------------------- */

static bool in_list(char **list, const char *s)
{
	for (; list && *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

/* Does the caller belong to one of the groups? Supplementary groups count:
 * the ones the caller passed (read per request by mregfs), else those of
 * the group database. */
static bool in_groups(const struct reg_caller *who, char **groups)
{
	gid_t buf[256];
	const gid_t *g = who->groups;
	int n = who->ngroups, i;
	char uname[256], tmp[4096];
	struct group gr, *res;

	if (!g) {
		struct passwd pw, *pres = NULL;

		n = 256;
		if (getpwuid_r(who->uid, &pw, tmp, sizeof(tmp), &pres) == 0 &&
		    pres) {
			snprintf(uname, sizeof(uname), "%s", pres->pw_name);
			if (getgrouplist(uname, who->gid, buf, &n) < 0)
				n = 256;
		} else {
			n = 0;
		}
		g = buf;
	}
	for (i = -1; i < n; i++) {
		gid_t gid = i < 0 ? who->gid : g[i];

		res = NULL;
		if (getgrgid_r(gid, &gr, tmp, sizeof(tmp), &res) == 0 && res &&
		    in_list(groups, res->gr_name))
			return true;
	}
	return false;
}

bool reg_caller_in_gid(const struct reg_caller *who, gid_t gid)
{
	gid_t buf[256];
	int n = 256, i;
	char tmp[4096];
	struct passwd pw, *res = NULL;

	if (who->gid == gid)
		return true;
	if (who->groups) {
		for (i = 0; i < who->ngroups; i++)
			if (who->groups[i] == gid)
				return true;
		return false;
	}
	if (getpwuid_r(who->uid, &pw, tmp, sizeof(tmp), &res) != 0 || !res ||
	    getgrouplist(res->pw_name, who->gid, buf, &n) < 0)
		return false;
	for (i = 0; i < n; i++)
		if (buf[i] == gid)
			return true;
	return false;
}

static bool names_someone(const struct stage_policy *pol)
{
	return pol && (pol->promote_users || pol->promote_groups);
}

static bool admitted(const struct stage_policy *pol,
		     const struct reg_caller *who, const char *uname)
{
	return in_list(pol->promote_users, uname) ||
	       (pol->promote_groups && in_groups(who, pol->promote_groups));
}

/* Write permission on model m, as the kernel would check its mode bits. */
static bool model_writable(const struct reg_caller *who,
			   const struct inode_rec *m)
{
	mode_t bits = who->uid == m->uid ? 0200 :
		      reg_caller_in_gid(who, m->gid) ? 0020 : 0002;

	return (m->mode & bits) != 0;
}

/* ---- reading the stored policy --------------------------------------------- */

void reg_policy_add_quoted(struct strbuf *sb, const char *v, size_t n)
{
	size_t i;

	strbuf_addch(sb, '"');
	for (i = 0; i < n; i++) {
		if (v[i] == '"' || v[i] == '\\')
			strbuf_addch(sb, '\\');
		strbuf_addch(sb, v[i]);
	}
	strbuf_addch(sb, '"');
}

struct text_arg {
	struct strbuf sb;
	char section[80];
	int err;
};

/* "policy/stage/S/K" or "policy/hook/E" -> config lines. */
static int text_one(void *arg, const struct idx_val *k,
		    const struct idx_val *v)
{
	struct text_arg *a = arg;
	const char *key = k->data, *end = key + k->len, *slash;
	char section[80];

	if (k->len > strlen(POL_STAGE) &&
	    memcmp(key, POL_STAGE, strlen(POL_STAGE)) == 0) {
		key += strlen(POL_STAGE);
		for (slash = end; slash > key && slash[-1] != '/'; slash--)
			;
		if (slash == key || slash - key > 65)
			return a->err = -EIO;
		snprintf(section, sizeof(section), "stage %.*s",
			 (int)(slash - 1 - key), key);
		key = slash;
	} else if (k->len > strlen(POL_HOOK) &&
		   memcmp(key, POL_HOOK, strlen(POL_HOOK)) == 0) {
		key += strlen(POL_HOOK);
		strcpy(section, "hooks");
	} else {
		return 0;
	}
	if (memchr(v->data, '\n', v->len) || memchr(v->data, '\0', v->len))
		return a->err = -EIO;
	if (strcmp(section, a->section) != 0) {
		strbuf_addf(&a->sb, "[%s]\n", section);
		strcpy(a->section, section);
	}
	strbuf_add(&a->sb, key, (size_t)(end - key));
	strbuf_adds(&a->sb, " = ");
	reg_policy_add_quoted(&a->sb, v->data, v->len);
	strbuf_addch(&a->sb, '\n');
	return 0;
}

int reg_policy_load_txn(struct idx_txn *t, struct mreg_config *ret)
{
	struct text_arg a = { .err = 0 };
	char err[512];
	int r;

	strbuf_init(&a.sb);
	config_init(ret);
	r = idx_scan(t, IDX_META, POL_STAGE, strlen(POL_STAGE), NULL, 0,
		     text_one, &a);
	if (r >= 0 && a.err == 0)
		r = idx_scan(t, IDX_META, POL_HOOK, strlen(POL_HOOK), NULL, 0,
			     text_one, &a);
	if (r >= 0 && a.err == 0)
		r = config_parse(ret, "the registry's policy", a.sb.buf,
				 a.sb.len, err, sizeof(err));
	if (a.err < 0)
		r = log_err(-EIO, "a policy record of the registry is damaged");
	else if (r == -EINVAL)
		r = log_err(-EIO, "the policy stored in the registry does not "
			    "read: %s", err);
	strbuf_release(&a.sb);
	if (r < 0) {
		config_release(ret);
		config_init(ret);
	}
	return r < 0 ? r : 0;
}

/* A value into buf as a C string: -ERANGE when it does not fit. */
static int val_str(const struct idx_val *v, char *buf, size_t size)
{
	if (v->len >= size)
		return -ERANGE;
	memcpy(buf, v->data, v->len);
	buf[v->len] = '\0';
	return 0;
}

int reg_policy_get_str_txn(struct idx_txn *t, enum idx_table tb,
			   const void *key, size_t klen, char *buf, size_t size)
{
	struct idx_val v;
	int r;

	r = idx_get(t, tb, key, klen, &v);
	return r < 0 ? r : val_str(&v, buf, size);
}

int reg_policy_hook_program_txn(struct idx_txn *t, enum hook_event event,
				char *buf, size_t size)
{
	char key[40];

	snprintf(key, sizeof(key), POL_HOOK "%s",
		 event == HOOK_REGISTER ? "on_register" : "on_promote");
	return reg_policy_get_str_txn(t, IDX_META, key, strlen(key), buf, size);
}

/* ---- decisions --------------------------------------------------------------- */

#define ADMITTED_AS_TEMPORARY 1

/* Who may change stage of model m: the stage's policy when it names users
 * or groups (root passes it). A stage without one is governed by the
 * model's own permissions: whoever may write to the model directory (its
 * mode bits, as the kernel would check them). One exception keeps ln -sfn
 * and mreg's promotion through a mount working for a promoter who cannot
 * write the model: a temporary stage name (reg_stage_temporary()) may be made
 * by whom some stage's policy admits, and removed (renamed over a stage,
 * whose policy then decides) by whoever made it; ADMITTED_AS_TEMPORARY
 * then, and such a stage may only point at a sealed version. maker is the
 * stage's owner when it exists, (uid_t)-1 when it is being made. */
static int may_change(const struct mreg_config *pc,
		      const struct stage_policy *pol,
		      const struct reg_caller *who, const struct inode_rec *m,
		      const char *stage, uid_t maker, char *reason,
		      size_t rlen)
{
	char uname[256];
	size_t i;

	if (who->uid == 0)
		return 0;
	util_uid_name(who->uid, uname, sizeof(uname));
	if (names_someone(pol)) {
		if (admitted(pol, who, uname))
			return 0;
		snprintf(reason, rlen, "user '%s' may not change stage '%s'",
			 uname, stage);
		return -EACCES;
	}
	if (model_writable(who, m))
		return 0;
	if (reg_stage_temporary(stage)) {
		if (maker != (uid_t)-1 && maker == who->uid)
			return ADMITTED_AS_TEMPORARY;
		for (i = 0; maker == (uid_t)-1 && i < pc->nstages; i++)
			if (names_someone(&pc->stages[i]) &&
			    admitted(&pc->stages[i], who, uname))
				return ADMITTED_AS_TEMPORARY;
	}
	snprintf(reason, rlen, "user '%s' may not write to model '%s' (no "
		 "policy for stage '%s')", uname, m->name, stage);
	return -EACCES;
}

static int get_xattr_str_txn(struct idx_txn *t, uint64_t ino, const char *key,
			     char *buf, size_t size)
{
	struct idx_val v;
	int r;

	r = reg_meta_get_txn(t, ino, key, &v);
	return r < 0 ? r : val_str(&v, buf, size);
}

/* A require_metric rule, "auc >= 0.9" (config.c checked its form; one that
 * does not parse refuses: a gate fails closed). */
static int check_metric_txn(struct idx_txn *t, const struct inode_rec *v,
			    const char *rule, char *reason, size_t rlen)
{
	char val[256], mkey[CONFIG_METRIC_KEY_MAX + 8];
	struct metric_rule mr;
	double have;

	if (config_parse_metric_rule(rule, &mr) < 0) {
		snprintf(reason, rlen, "the stage's rule '%s' does not parse",
			 rule);
		return -EACCES;
	}
	snprintf(mkey, sizeof(mkey), "metric.%s", mr.key);
	if (get_xattr_str_txn(t, v->ino, mkey, val, sizeof(val)) < 0) {
		snprintf(reason, rlen, "version '%s' has no metric '%s' "
			 "(the stage requires %s)", v->name, mr.key, rule);
		return -EACCES;
	}
	if (!util_decimal(val, strlen(val), &have) ||
	    !config_metric_rule_holds(&mr, have)) {
		snprintf(reason, rlen, "version '%s' has metric %s = %s, "
			 "the stage requires %s", v->name, mr.key, val, rule);
		return -EACCES;
	}
	return 0;
}

static int check_promote_txn(const struct mreg_config *pc, struct idx_txn *t,
			     const struct reg_caller *who,
			     const struct inode_rec *m, const char *stage,
			     const struct inode_rec *v, char *reason,
			     size_t rlen)
{
	const struct stage_policy *pol = config_stage(pc, stage);
	char key[80], tmp[8];
	int r;

	r = may_change(pc, pol, who, m, stage, (uid_t)-1, reason, rlen);
	if (r < 0)
		return r;
	if (r == ADMITTED_AS_TEMPORARY && !(v->flags & INODE_SEALED)) {
		snprintf(reason, rlen, "version '%s' is a draft of model '%s', "
			 "which the user may not write: a temporary stage may "
			 "only point at a sealed version", v->name, m->name);
		return -EACCES;
	}
	if (!pol)
		return 0;
	if (pol->require_stage[0]) {
		snprintf(key, sizeof(key), HELD_PREFIX "%s",
			 pol->require_stage);
		if (get_xattr_str_txn(t, v->ino, key, tmp, sizeof(tmp)) < 0) {
			snprintf(reason, rlen, "version '%s' has not been in "
				 "stage '%s' (required before '%s')", v->name,
				 pol->require_stage, stage);
			return -EACCES;
		}
	}
	if (pol->require_metric)
		return check_metric_txn(t, v, pol->require_metric, reason,
					rlen);
	return 0;
}

int reg_policy_check_promote_txn(struct idx_txn *t,
				 const struct reg_caller *who,
				 const struct inode_rec *m, const char *stage,
				 const struct inode_rec *v, char *reason,
				 size_t rlen)
{
	struct mreg_config pc;
	int r;

	if ((r = reg_policy_load_txn(t, &pc)) < 0)
		return r;
	r = check_promote_txn(&pc, t, who, m, stage, v, reason, rlen);
	config_release(&pc);
	return r;
}

int reg_policy_check_remove_txn(struct idx_txn *t, const struct reg_caller *who,
				const struct inode_rec *m,
				const struct inode_rec *s, char *reason,
				size_t rlen)
{
	const struct stage_policy *pol;
	struct mreg_config pc;
	int r;

	if ((r = reg_policy_load_txn(t, &pc)) < 0)
		return r;
	pol = config_stage(&pc, s->name);
	if (pol && pol->protect) {
		snprintf(reason, rlen, "stage '%s' is protected: it can be "
			 "replaced, not removed", s->name);
		r = -EACCES;
	} else {
		r = may_change(&pc, pol, who, m, s->name, s->uid, reason,
			       rlen);
	}
	config_release(&pc);
	return r < 0 ? r : 0;
}

/* ---- mode and owner of models and versions -------------------------------- */

/* Refuses the change of r (a model, or a version of model m) when a
 * protected stage of m points at it (for a model: when m has one) and the
 * caller may not change that stage: its mode or owner decides who can read
 * what that stage serves. */
static int guard_protected_txn(struct idx_txn *t, const struct reg_caller *who,
			       const struct inode_rec *r,
			       const struct inode_rec *m, char *reason,
			       size_t rlen)
{
	const struct stage_policy *pol;
	struct mreg_config pc;
	struct child_list l;
	struct inode_rec s;
	size_t i;
	int e;

	if ((e = reg_policy_load_txn(t, &pc)) < 0)
		return e;
	if ((e = reg_children_txn(t, m->stages_ino, &l)) < 0)
		goto out;
	for (i = 0; i < l.n && e == 0; i++) {
		pol = config_stage(&pc, l.v[i].name);
		if (!pol || !pol->protect)
			continue;
		if ((e = reg_inode_get_txn(t, l.v[i].ino, &s)) < 0)
			break;
		if (r->kind == REG_VERSION && s.target != r->ino)
			continue;
		e = may_change(&pc, pol, who, m, s.name, s.uid, reason, rlen);
		if (e == ADMITTED_AS_TEMPORARY)
			e = -EACCES;
		if (e < 0) {
			char uname[256];

			util_uid_name(who->uid, uname, sizeof(uname));
			snprintf(reason, rlen, "%s '%s' is served by protected "
				 "stage '%s', which user '%s' may not change",
				 r->kind == REG_MODEL ? "model" : "version",
				 r->name, s.name, uname);
		}
	}
out:
	free(l.v);
	config_release(&pc);
	return e;
}

int reg_policy_attr_txn(struct idx_txn *t, const struct reg_caller *who,
			const struct inode_rec *old,
			const struct inode_rec *new, char *reason, size_t rlen)
{
	char ov[40], nv[40], vname[REG_NAME_MAX + 1] = "";
	struct inode_rec m;
	unsigned om, nm;
	bool mode, owner;
	int r;

	if (old->kind != REG_MODEL && old->kind != REG_VERSION)
		return 0;
	/* modes as the caller sees them: a sealed version shows no write */
	om = old->mode & 07777 & ~(old->flags & INODE_SEALED ? 0222u : 0);
	nm = new->mode & 07777 & ~(new->flags & INODE_SEALED ? 0222u : 0);
	mode = om != nm;
	owner = old->uid != new->uid || old->gid != new->gid;
	if (!mode && !owner)
		return 0;
	if (old->kind == REG_MODEL) {
		m = *old;
	} else {
		if ((r = reg_inode_get_txn(t, old->model, &m)) < 0)
			return r;
		strlcpy(vname, old->name, sizeof(vname));
	}
	if ((r = guard_protected_txn(t, who, old, &m, reason, rlen)) < 0)
		return r;
	if (mode) {
		snprintf(ov, sizeof(ov), "%04o", om);
		snprintf(nv, sizeof(nv), "%04o", nm);
		r = reg_audit_put_txn(t, who, &(struct audit_ev){ .op = "chmod",
			.model = m.name, .version = vname[0] ? vname : NULL,
			.key = "mode", .old_value = ov, .old_len = strlen(ov),
			.new_value = nv, .new_len = strlen(nv) });
		if (r < 0)
			return r;
	}
	if (owner) {
		snprintf(ov, sizeof(ov), "%u:%u", (unsigned)old->uid,
			 (unsigned)old->gid);
		snprintf(nv, sizeof(nv), "%u:%u", (unsigned)new->uid,
			 (unsigned)new->gid);
		r = reg_audit_put_txn(t, who, &(struct audit_ev){ .op = "chown",
			.model = m.name, .version = vname[0] ? vname : NULL,
			.key = "owner", .old_value = ov, .old_len = strlen(ov),
			.new_value = nv, .new_len = strlen(nv) });
	}
	return r;
}

