/* names.h — the name rules of the registry (SPEC §1), pure: what a
 * model, version, stage or file may be called. The registry applies them
 * to every call that names something; config/ applies the stage rule to
 * the stages a configuration names (the one include of config/ into
 * registry/: the rule exists once). */
#ifndef MREG_REGISTRY_NAMES_H
#define MREG_REGISTRY_NAMES_H

#include <stdbool.h>
#include <stdint.h>

#define REG_NAME_MAX   128  /* model and version names */
#define REG_STAGE_MAX  64   /* stage names */
#define REG_FNAME_MAX  255  /* any name */

/* A byte of a model, version, stage or metric name: [A-Za-z0-9._-]. */
bool reg_name_char(char c);
/* 0 when s is a valid model or version name (1-128 bytes of
 * [A-Za-z0-9._-], not starting with '.' or '-', not "stages"), else
 * -EINVAL. */
int reg_check_name(const char *s);
/* 0 when s is a valid stage name (1-64 bytes, same set), else -EINVAL.
 * Stage names of a model are unique regardless of case: a new stage that
 * differs from an existing one only in case is -EEXIST (every route). */
int reg_check_stage(const char *s);
/* 0 when s may name an entry of a directory: -ENAMETOOLONG past
 * REG_FNAME_MAX bytes, -EINVAL for "", ".", ".." or a '/'. */
int reg_check_fname(const char *s);
/* True when s is a version number as the registry gives them (decimal,
 * no leading zero, at most 18 digits); its value in *ret (may be NULL). */
bool reg_name_is_integer(const char *s, uint64_t *ret);
/* True when s is a draft version's temporary name: "." followed by
 * anything but "" and "." (the names `cp -r`, rsync and editors give). */
bool reg_name_dot(const char *s);

#endif
