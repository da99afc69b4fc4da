/* internal.h — what config.c, parse.c and load.c share (not an API:
 * everyone else includes config/config.h).
 */
#ifndef MREG_CONFIG_INTERNAL_H
#define MREG_CONFIG_INTERNAL_H

#include <stddef.h>
#include <sys/stat.h>

#include "config/config.h"

/* Larger than any sensible config; keeps a wrong -c FILE from eating
 * memory. */
#define CONFIG_FILE_MAX (1u << 20)
#define LIST_ITEM_MAX 255

/* ---- config.c ---- */
/* s past its blanks (spaces and tabs). */
const char *config_skip_space(const char *s);
/* Frees a NULL-terminated array of strings (NULL is fine). */
void config_strv_free(char **v);
/* Frees what a stage policy holds. */
void config_stage_release(struct stage_policy *sp);
/* A deep copy of src into dst, to parse into: 0 or -ENOMEM. */
int config_copy(struct mreg_config *dst, const struct mreg_config *src);

/* ---- parse.c ---- */
/* Parses text (named name in messages) into a copy of cfg and swaps it in
 * on success, so that a refused file changes nothing; path, when not
 * NULL, becomes cfg->path (and the file is checked against the machine:
 * users, groups, hook programs). err gets "FILE:LINE: why". */
int config_parse_swap(struct mreg_config *cfg, const char *name,
		      const char *text, size_t len, const char *path,
		      char *err, size_t errlen);

/* ---- load.c ---- */
/* One file or directory on a trusted path: owned by root or by us, and
 * writable by nobody else (a sticky directory excepted). 0, or -EPERM
 * with the reason in why. */
int config_node_trusted(const char *p, const struct stat *st, char *why,
			size_t whylen);
/* Whether p is a regular file this process can read: 0, or -errno with
 * the reason in why. */
int config_file_readable(const char *p, char *why, size_t whylen);

#endif
