/* mreg-backend.c — where a command's work goes: to the store, through
 * core/registry/registry.h, or to an mregfs mount of it, through
 * mreg-mount.c (when --store names a mount: a user who cannot read the
 * store works through the daemon, which applies every rule). Each be_*()
 * function is the reg_*() call of the same name, or its mount twin.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "mreg.h"

int be_push(struct cli *c, const char *model, const char *const *paths,
	    size_t npaths, const char *version, const struct reg_kv *meta,
	    size_t nmeta,
	    void (*progress)(void *arg, uint64_t done, uint64_t total),
	    void *parg, char *ret_version)
{
	if (c->mnt)
		return mount_push(c->mnt, model, paths, npaths, version, meta,
				  nmeta, progress, parg, ret_version);
	return reg_push(c->reg, &c->who, model, paths, npaths, version, meta,
			nmeta, progress, parg, ret_version);
}

int be_seal(struct cli *c, const char *model, const char *version)
{
	if (c->mnt)
		return mount_seal(c->mnt, model, version);
	return reg_seal(c->reg, &c->who, model, version);
}

int be_promote(struct cli *c, const char *model, const char *version,
	       const char *stage)
{
	if (c->mnt)
		return mount_promote(c->mnt, model, version, stage);
	return reg_promote(c->reg, &c->who, model, version, stage);
}

int be_stage_remove(struct cli *c, const char *model, const char *stage)
{
	if (c->mnt)
		return mount_stage_remove(c->mnt, model, stage);
	return reg_stage_remove(c->reg, &c->who, model, stage);
}

int be_rollback(struct cli *c, const char *model, const char *stage,
		char *ret_version)
{
	if (c->mnt)
		return mount_rollback(c->mnt, model, stage, ret_version);
	return reg_rollback(c->reg, &c->who, model, stage, ret_version);
}

int be_version_remove(struct cli *c, const char *model, const char *version)
{
	if (c->mnt)
		return mount_version_remove(c->mnt, model, version);
	return reg_version_remove(c->reg, &c->who, model, version);
}

int be_model_remove(struct cli *c, const char *model)
{
	if (c->mnt)
		return mount_model_remove(c->mnt, model);
	return reg_rmdir(c->reg, &c->who, REG_MODELS_INO, model);
}

bool be_resolves(struct cli *c, const char *model, const char *version)
{
	struct reg_attr a;
	char *p;
	int r;

	if (c->mnt)
		return mount_resolve(c->mnt, model, version) == 0;
	if (!c->reg)
		return true;
	if (!version)
		return reg_resolve(c->reg, model, &a) == 0;
	if (asprintf(&p, "%s/%s", model, version) < 0)
		return true;
	r = reg_resolve(c->reg, p, &a);
	free(p);
	return r == 0;
}

int be_history(struct cli *c, const char *model, const char *stage,
	       int (*fn)(void *arg, const struct reg_history *h), void *arg)
{
	if (c->mnt)
		return mount_history(c->mnt, model, stage, fn, arg);
	return reg_history(c->reg, model, stage, fn, arg);
}

int be_models(struct cli *c,
	      int (*fn)(void *arg, const struct reg_model_info *m),
	      void *arg)
{
	if (c->mnt)
		return mount_models(c->mnt, fn, arg);
	return reg_models(c->reg, fn, arg);
}

int be_versions(struct cli *c, const char *model,
		int (*fn)(void *arg, const struct reg_version_info *v),
		void *arg)
{
	if (c->mnt)
		return mount_versions(c->mnt, model, fn, arg);
	return reg_versions(c->reg, model, fn, arg);
}

int be_version_info(struct cli *c, const char *model, const char *version,
		    int (*fn)(void *arg, const struct reg_version_info *v),
		    void *arg)
{
	if (c->mnt)
		return mount_version_info(c->mnt, model, version, fn, arg);
	return reg_version_info(c->reg, model, version, fn, arg);
}

int be_files(struct cli *c, const char *model, const char *version,
	     int (*fn)(void *arg, const struct reg_file_info *f), void *arg)
{
	if (c->mnt)
		return mount_files(c->mnt, model, version, fn, arg);
	return reg_files(c->reg, model, version, fn, arg);
}

int be_cat(struct cli *c, const char *model, const char *version,
	   const char *path, int fd)
{
	if (c->mnt)
		return mount_cat(c->mnt, model, version, path, fd);
	return reg_cat(c->reg, model, version, path, fd);
}

int be_meta_list(struct cli *c, const char *model, const char *version,
		 int (*fn)(void *arg, const char *key, const char *value,
			   size_t len),
		 void *arg)
{
	if (c->mnt)
		return mount_meta_list(c->mnt, model, version, fn, arg);
	return reg_meta_list(c->reg, model, version, fn, arg);
}

int be_meta_set(struct cli *c, const char *model, const char *version,
		const char *key, const char *value)
{
	if (c->mnt)
		return mount_meta_set(c->mnt, model, version, key, value);
	return reg_meta_set(c->reg, &c->who, model, version, key, value);
}

int be_shared_bytes(struct cli *c, const char *model_a, const char *version_a,
		    const char *model_b, const char *version_b, uint64_t *ret)
{
	if (c->mnt)
		return -ENOTSUP;
	return reg_shared_bytes(c->reg, model_a, version_a, model_b,
				version_b, ret);
}

int be_search(struct cli *c, const char *query, char *err, size_t errlen,
	      int (*fn)(void *arg, const struct reg_version_info *v),
	      void *arg)
{
	if (c->mnt)
		return mount_search(c->mnt, query, err, errlen, fn, arg);
	return reg_search(c->reg, query, err, errlen, fn, arg);
}

int be_audit(struct cli *c, uint64_t since,
	     int (*fn)(void *arg, uint64_t seq, const char *json, size_t len),
	     void *arg)
{
	if (c->mnt)
		return mount_audit(c->mnt, since, fn, arg);
	return reg_audit(c->reg, since, fn, arg);
}

int be_audit_verify(struct cli *c,
		    void (*report)(void *arg, uint64_t seq, const char *msg),
		    void *arg, uint64_t *ret_first_bad)
{
	if (c->mnt)
		return mount_audit_verify(c->mnt, report, arg, ret_first_bad);
	return reg_audit_verify(c->reg, report, arg, ret_first_bad);
}

const char *be_path(struct cli *c)
{
	return c->mnt ? mount_path(c->mnt) : reg_path(c->reg);
}

int be_needs_store(struct cli *c)
{
	if (!c->mnt)
		return 0;
	return fail(c, "needs the store: run it where the store is ('%s' is "
		    "a mount of it)", mount_path(c->mnt));
}
