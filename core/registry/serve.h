/* serve.h — the registry's side of the serving cache (serve/serve.h): part of
 * the registry API, for mregfs (fs/passthrough.c) and the CLI's fsck and
 * stats. The cache knows no registry; these calls tell it what it needs:
 * which sealed file an inode is, the file's verified bytes, the files of a
 * version, the promotions committed lately, and what is still alive.
 */
#ifndef MREG_REGISTRY_SERVE_H
#define MREG_REGISTRY_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/registry.h"
#include "serve/serve.h"

/* The serving identity of file ino: 0 and *ret (and *ret_staged, which
 * may be NULL: whether a stage points at its version). -EINVAL when ino is
 * not a sealed regular file (a draft, a directory), -ENOENT when it is
 * gone or its version was removed. */
int reg_serve_key(struct reg_registry *reg, uint64_t ino, struct serve_key *ret,
		  bool *ret_staged);

/* Calls fn with each sealed regular file under ino: a sealed version (its
 * whole tree), a directory in one, or one file. fn returns non-zero to
 * stop (returned then). -EINVAL when ino holds no sealed content,
 * -ENOENT. */
int reg_serve_files(struct reg_registry *reg, uint64_t ino,
		    int (*fn)(void *arg, const struct serve_key *key),
		    void *arg);

/* Fills ret with the registry as the cache's source of bytes: reads of
 * the sealed file, each chunk checked against its id (reg_file_read()). */
void reg_serve_source(struct reg_registry *reg, struct serve_source *ret);

/* Calls fn with the version inode of each promotion and rollback that
 * committed after audit record *pos, oldest first, and moves *pos past
 * them. With *pos REG_SERVE_START it only sets *pos to the last record:
 * promotions from now on. Promotions of versions removed since are left
 * out. */
#define REG_SERVE_START UINT64_MAX
int reg_serve_promotions(struct reg_registry *reg, uint64_t *pos,
			 int (*fn)(void *arg, uint64_t version), void *arg);

/* "model/version/path" of file ino into buf (for messages); "inode N"
 * when it cannot be found. */
void reg_serve_name(struct reg_registry *reg, uint64_t ino, char *buf,
		    size_t size);

/* Lets .mreg/metrics show cache c (NULL: none). c must outlive the
 * registry or be unset first. */
void reg_set_serve(struct reg_registry *reg, struct serve_cache *c);

#endif
