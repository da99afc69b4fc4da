/* mreg-policy.c — `mreg policy`: the stage policies and hook definitions
 * stored in the registry (SPEC §6), shown, changed by an administrator, or
 * imported from a config. Every process that opens the registry applies
 * the stored ones; a config's [stage] and [hooks] sections only say what
 * `mreg policy import` would store, and `show` reports where they differ.
 *
 *	mreg policy [show]
 *	mreg policy set STAGE KEY=VALUE...
 *	mreg policy unset STAGE [KEY...]
 *	mreg policy hook EVENT PROGRAM
 *	mreg policy unhook EVENT
 *	mreg policy admins GROUP | --none
 *	mreg policy import               (the config: -c FILE or the default)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mreg.h"

struct pol_ent {
	char *stage, *key, *value;   /* stage NULL: registry-wide */
};

struct pol_list {
	struct pol_ent *v;
	size_t n;
	char **diffs;
	size_t ndiffs;
	size_t cap, dcap;
};

static int collect(void *arg, const char *stage, const char *key,
		   const char *value)
{
	struct pol_list *l = arg;
	struct pol_ent *e;

	XGROW(l->v, l->cap, l->n);
	e = &l->v[l->n++];
	e->stage = xstrdup(stage);
	e->key = xstrdup(key);
	e->value = xstrdup(value);
	return 0;
}

static void collect_diff(void *arg, const char *msg)
{
	struct pol_list *l = arg;

	XGROW(l->diffs, l->dcap, l->ndiffs);
	l->diffs[l->ndiffs++] = xstrdup(msg);
}

static void pol_list_release(struct pol_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].stage);
		free(l->v[i].key);
		free(l->v[i].value);
	}
	for (i = 0; i < l->ndiffs; i++)
		free(l->diffs[i]);
	free(l->v);
	free(l->diffs);
}

/* The value of a registry-wide setting, or NULL. */
static const char *global(const struct pol_list *l, const char *key)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!l->v[i].stage && !strcmp(l->v[i].key, key))
			return l->v[i].value;
	return NULL;
}

static bool is_hook(const char *key)
{
	return !strcmp(key, "on_register") || !strcmp(key, "on_promote");
}

static void show_json(struct cli *c, const struct pol_list *l)
{
	const char *last = NULL;
	struct json j;
	size_t i;

	json_init(&j, stdout);
	json_obj_begin(&j);
	json_key(&j, "stages");
	json_obj_begin(&j);
	for (i = 0; i < l->n; i++) {
		if (!l->v[i].stage)
			continue;
		if (!last || strcmp(last, l->v[i].stage)) {
			if (last)
				json_obj_end(&j);
			json_key(&j, l->v[i].stage);
			json_obj_begin(&j);
			last = l->v[i].stage;
		}
		json_key(&j, l->v[i].key);
		json_str(&j, l->v[i].value);
	}
	if (last)
		json_obj_end(&j);
	json_obj_end(&j);
	json_key(&j, "hooks");
	json_obj_begin(&j);
	for (i = 0; i < l->n; i++)
		if (!l->v[i].stage && is_hook(l->v[i].key)) {
			json_key(&j, l->v[i].key);
			json_str(&j, l->v[i].value);
		}
	json_obj_end(&j);
	json_key(&j, "admin_group");
	if (global(l, "admin_group"))
		json_str(&j, global(l, "admin_group"));
	else
		json_null(&j);
	json_key(&j, "config");
	if (c->cfg.path)
		json_str(&j, c->cfg.path);
	else
		json_null(&j);
	json_key(&j, "differences");
	json_arr_begin(&j);
	for (i = 0; i < l->ndiffs; i++)
		json_str(&j, l->diffs[i]);
	json_arr_end(&j);
	json_obj_end(&j);
	json_finish(&j);
}

/* As config text: what `mreg policy import` of such a file would store. */
static void show_text(struct cli *c, const struct pol_list *l)
{
	const char *last = NULL, *admins = global(l, "admin_group");
	bool any = false, hooks = false;
	size_t i;

	printf("# stage policies and hooks stored in the registry '%s'\n",
	       reg_path(c->reg));
	for (i = 0; i < l->n; i++) {
		if (!l->v[i].stage)
			continue;
		if (!last || strcmp(last, l->v[i].stage))
			printf("\n[stage %s]\n", l->v[i].stage);
		last = l->v[i].stage;
		printf("%s = %s\n", l->v[i].key, l->v[i].value);
		any = true;
	}
	for (i = 0; i < l->n; i++) {
		if (l->v[i].stage || !is_hook(l->v[i].key))
			continue;
		if (!hooks)
			printf("\n[hooks]\n");
		hooks = true;
		printf("%s = %s\n", l->v[i].key, l->v[i].value);
	}
	if (!any && !hooks)
		printf("# (none: every stage is governed by its model's "
		       "permissions, and no hook runs)\n");
	printf("\n# may change them: root%s%s%s\n", admins ? " and group '" :
	       "", admins ? admins : "", admins ? "'" : "");
	if (l->ndiffs) {
		printf("# config '%s' disagrees (the registry's policy "
		       "applies; 'mreg policy import' stores the config's):\n",
		       c->cfg.path ? c->cfg.path : "");
		for (i = 0; i < l->ndiffs; i++)
			printf("#   %s\n", l->diffs[i]);
	}
}

static int policy_show(struct cli *c)
{
	struct pol_list l = { 0 };
	int r;

	if (c->nargs > 1)
		return usage_err(c, "unexpected argument '%s'", c->args[1]);
	r = reg_policy_list(c->reg, collect, &l);
	if (r >= 0)
		r = reg_policy_compare(c->reg, &c->cfg, collect_diff, &l);
	if (r < 0) {
		pol_list_release(&l);
		return fail_errno(c, r, SUBJ(.model = NULL));
	}
	if (c->json)
		show_json(c, &l);
	else
		show_text(c, &l);
	pol_list_release(&l);
	return EXIT_OK;
}

/* The result of a change: a refusal or a bad value says core's reason. */
static int changed(struct cli *c, int r)
{
	char why[1024];
	const char *rs = last_logged(c, why, sizeof(why));

	if (r >= 0) {
		if (r == 0)
			note(c, "no change: the registry holds that already");
		return EXIT_OK;
	}
	if (r == -EPERM)
		return fail(c, "%s", rs ? rs : "not permitted: only root may "
			    "change policies");
	if (r == -EINVAL)
		return usage_err(c, "%s", rs ? rs : "invalid argument");
	return fail_errno(c, r, SUBJ(.model = NULL));
}

static int policy_set(struct cli *c)
{
	struct reg_kv *kv;
	size_t i, n = c->nargs - 2;
	int r;

	if (c->nargs < 3)
		return usage_err(c, "set needs STAGE KEY=VALUE...");
	kv = xcalloc(n, sizeof(*kv));
	for (i = 0; i < n; i++) {
		char *a = c->args[i + 2], *eq = strchr(a, '=');

		if (!eq || eq == a) {
			free(kv);
			return usage_err(c, "expected KEY=VALUE, not '%s'", a);
		}
		*eq = '\0';
		kv[i].key = a;
		kv[i].value = eq + 1;
	}
	r = reg_policy_set(c->reg, &c->who, c->args[1], kv, n);
	free(kv);
	return changed(c, r);
}

static int policy_unset(struct cli *c)
{
	if (c->nargs < 2)
		return usage_err(c, "unset needs STAGE [KEY...]");
	return changed(c, reg_policy_unset(c->reg, &c->who, c->args[1],
					   (const char *const *)c->args + 2,
					   c->nargs - 2));
}

static int policy_hook(struct cli *c, bool set)
{
	if (c->nargs != (set ? 3u : 2u))
		return usage_err(c, set ? "hook needs EVENT PROGRAM" :
				 "unhook needs EVENT");
	return changed(c, reg_policy_hook(c->reg, &c->who, c->args[1],
					  set ? c->args[2] : NULL));
}

static int policy_admins(struct cli *c)
{
	bool none = opt_has(c, OPT_NONE);

	if (c->nargs != (none ? 1u : 2u))
		return usage_err(c, "admins needs GROUP, or --none");
	return changed(c, reg_policy_admins(c->reg, &c->who,
					    none ? NULL : c->args[1]));
}

static int policy_import(struct cli *c)
{
	if (c->nargs != 1)
		return usage_err(c, "unexpected argument '%s'", c->args[1]);
	if (!c->cfg.path)
		return usage_err(c, "no config to import: give -c FILE");
	return changed(c, reg_policy_import(c->reg, &c->who, &c->cfg, 0));
}

int cmd_policy(struct cli *c)
{
	const char *sub = c->nargs ? c->args[0] : "show";
	int r;

	if ((r = be_needs_store(c)))
		return r;
	if (opt_has(c, OPT_NONE) && strcmp(sub, "admins"))
		return usage_err(c, "--none goes with 'admins'");
	if (!strcmp(sub, "show"))
		return policy_show(c);
	if (!strcmp(sub, "set"))
		return policy_set(c);
	if (!strcmp(sub, "unset"))
		return policy_unset(c);
	if (!strcmp(sub, "hook"))
		return policy_hook(c, true);
	if (!strcmp(sub, "unhook"))
		return policy_hook(c, false);
	if (!strcmp(sub, "admins"))
		return policy_admins(c);
	if (!strcmp(sub, "import"))
		return policy_import(c);
	return usage_err(c, "unknown subcommand '%s' (show, set, unset, hook, "
			 "unhook, admins, import)", sub);
}

void policy_note(struct cli *c)
{
	int n;

	if (!c->reg || !strcmp(c->cmd->name, "policy"))
		return;
	n = reg_policy_compare(c->reg, &c->cfg, NULL, NULL);
	if (n > 0)
		note(c, "config '%s' disagrees with the stage policies and "
		     "hooks stored in the registry (%d difference%s): the "
		     "registry's apply (see 'mreg policy show')",
		     c->cfg.path ? c->cfg.path : "", n, n == 1 ? "" : "s");
}
