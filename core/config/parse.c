/* parse.c — the grammar of mreg.conf (config.c has it) and its key
 * table: which key belongs to which section, its type and its range, and
 * how each value is checked and stored. Every refusal names the file and
 * the line (FILE:LINE: what is wrong), which is why this parser is ours
 * and not a library's.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "log.h"
#include "registry/names.h"
#include "util.h"
#include "webhook/webhook.h"

/* SPEC §1, the registry's rule (registry/names.h). */
static bool stage_name_ok(const char *s)
{
	return reg_check_stage(s) == 0;
}

enum section {
	SEC_NONE = 0,
	SEC_STORE,
	SEC_CHUNKER,
	SEC_MOUNT,
	SEC_LOG,
	SEC_HOOKS,
	SEC_LIMITS,
	SEC_SERVE,
	SEC_S3,
	SEC_CACHE,
	SEC_INDEX,
	SEC_POSTGRES,
	SEC_STAGE,
};

static const char *const section_names[] = {
	[SEC_NONE] = "",
	[SEC_STORE] = "store",
	[SEC_CHUNKER] = "chunker",
	[SEC_MOUNT] = "mount",
	[SEC_LOG] = "log",
	[SEC_HOOKS] = "hooks",
	[SEC_LIMITS] = "limits",
	[SEC_SERVE] = "serve",
	[SEC_S3] = "s3",
	[SEC_CACHE] = "cache",
	[SEC_INDEX] = "index",
	[SEC_POSTGRES] = "postgres",
	[SEC_STAGE] = "stage",
};

enum key_type {
	K_ABSPATH,	/* char *, an absolute path or "" for the default */
	K_PROGRAM,	/* char *, an absolute path, a URL or "" for none */
	K_SECRET,	/* char *, an absolute path: a secret file */
	K_CAFILE,	/* char *, an absolute path: a readable file */
	K_SIZE64,
	K_SIZE32,
	K_UINT,
	K_BOOL,
	K_DURABILITY,
	K_BACKEND,
	K_INDEX,
	K_TEXT,		/* char *, any text but empty, no blanks */
	K_PREFIX,	/* char *, a key prefix: "" or ending in '/' */
	K_LINE,		/* char *, any text but empty (blanks too) */
	K_IDENT,	/* char *, [a-z_][a-z0-9_]*, at most 63 bytes */
	K_LOGLEVEL,
	K_LIST,		/* char **, in struct stage_policy */
	K_STAGE,	/* char[65], in struct stage_policy */
	K_METRIC,	/* char *, in struct stage_policy */
};

struct key {
	enum section sec;
	const char *name;
	enum key_type type;
	size_t off;		/* in mreg_config; stage_policy in [stage] */
	uint64_t min, max;	/* for numbers */
};

#define CFG(f) offsetof(struct mreg_config, f)
#define STG(f) offsetof(struct stage_policy, f)

/* Limits: below 1M, packs and the map would only roll over or grow at
 * once; readahead is a 32-bit field in FUSE's init reply. The chunker
 * sizes are checked together once the file is read. */
static const struct key keys[] = {
	{ SEC_STORE, "path", K_ABSPATH, CFG(store), 0, 0 },
	{ SEC_STORE, "backend", K_BACKEND, CFG(backend), 0, 0 },
	{ SEC_STORE, "pack_size", K_SIZE64, CFG(pack_size),
	  1ULL << 20, 64ULL << 30 },
	{ SEC_STORE, "dedup_verify", K_BOOL, CFG(dedup_verify), 0, 0 },
	{ SEC_STORE, "durability", K_DURABILITY, CFG(durability), 0, 0 },
	{ SEC_STORE, "map_size", K_SIZE64, CFG(map_size),
	  1ULL << 20, 1ULL << 44 },
	{ SEC_CHUNKER, "min_size", K_SIZE32, CFG(chunker.min_size),
	  0, UINT32_MAX },
	{ SEC_CHUNKER, "avg_size", K_SIZE32, CFG(chunker.avg_size),
	  0, UINT32_MAX },
	{ SEC_CHUNKER, "max_size", K_SIZE32, CFG(chunker.max_size),
	  0, UINT32_MAX },
	{ SEC_MOUNT, "allow_other", K_BOOL, CFG(allow_other), 0, 0 },
	{ SEC_MOUNT, "default_permissions", K_BOOL, CFG(default_permissions),
	  0, 0 },
	{ SEC_MOUNT, "readahead", K_SIZE32, CFG(readahead), 0, 1u << 30 },
	{ SEC_MOUNT, "max_threads", K_UINT, CFG(max_threads), 1, 4096 },
	{ SEC_LOG, "level", K_LOGLEVEL, CFG(log_level), 0, 0 },
	{ SEC_STAGE, "promote_users", K_LIST, STG(promote_users), 0, 0 },
	{ SEC_STAGE, "promote_groups", K_LIST, STG(promote_groups), 0, 0 },
	{ SEC_STAGE, "require_stage", K_STAGE, STG(require_stage), 0, 0 },
	{ SEC_STAGE, "protect", K_BOOL, STG(protect), 0, 0 },
	{ SEC_STAGE, "require_metric", K_METRIC, STG(require_metric), 0, 0 },
	{ SEC_HOOKS, "on_register", K_PROGRAM, CFG(on_register), 0, 0 },
	{ SEC_HOOKS, "on_promote", K_PROGRAM, CFG(on_promote), 0, 0 },
	{ SEC_HOOKS, "timeout", K_UINT, CFG(hook_timeout), 1, 86400 },
	{ SEC_HOOKS, "secret_file", K_SECRET, CFG(hook_secret_file), 0, 0 },
	{ SEC_HOOKS, "ca_file", K_CAFILE, CFG(hook_ca_file), 0, 0 },
	{ SEC_HOOKS, "attempts", K_UINT, CFG(hook_attempts), 1, 20 },
	{ SEC_HOOKS, "attempt_timeout", K_UINT, CFG(hook_attempt_timeout), 1,
	  3600 },
	{ SEC_LIMITS, "open_files_per_user", K_UINT, CFG(open_files_per_user),
	  1, 1u << 24 },
	{ SEC_LIMITS, "open_files_reserve", K_UINT, CFG(open_files_reserve),
	  16, 1u << 24 },
	{ SEC_SERVE, "passthrough", K_BOOL, CFG(serve_passthrough), 0, 0 },
	{ SEC_SERVE, "path", K_ABSPATH, CFG(serve_path), 0, 0 },
	{ SEC_SERVE, "size", K_SIZE64, CFG(serve_size), 0, 1ULL << 50 },
	{ SEC_SERVE, "hydrate_on_promote", K_BOOL,
	  CFG(serve_hydrate_on_promote), 0, 0 },
	{ SEC_S3, "endpoint", K_TEXT, CFG(s3_endpoint), 0, 0 },
	{ SEC_S3, "bucket", K_TEXT, CFG(s3_bucket), 0, 0 },
	{ SEC_S3, "region", K_TEXT, CFG(s3_region), 0, 0 },
	{ SEC_S3, "path_style", K_BOOL, CFG(s3_path_style), 0, 0 },
	{ SEC_S3, "credentials", K_ABSPATH, CFG(s3_credentials), 0, 0 },
	{ SEC_S3, "key_prefix", K_PREFIX, CFG(s3_key_prefix), 0, 0 },
	{ SEC_S3, "gc_grace", K_UINT, CFG(s3_gc_grace), 60, 30 * 86400 },
	{ SEC_S3, "timeout", K_UINT, CFG(s3_timeout), 1, 3600 },
	{ SEC_CACHE, "path", K_ABSPATH, CFG(cache_path), 0, 0 },
	{ SEC_CACHE, "size", K_SIZE64, CFG(cache_size), 1ULL << 20,
	  1ULL << 50 },
	{ SEC_CACHE, "min_free", K_SIZE64, CFG(cache_min_free), 0,
	  1ULL << 50 },
	{ SEC_CACHE, "readahead", K_SIZE64, CFG(cache_readahead), 0,
	  1ULL << 30 },
	{ SEC_CACHE, "prefetch_on_promote", K_BOOL,
	  CFG(cache_prefetch_on_promote), 0, 0 },
	{ SEC_INDEX, "backend", K_INDEX, CFG(index), 0, 0 },
	{ SEC_POSTGRES, "conninfo", K_LINE, CFG(pg_conninfo), 0, 0 },
	{ SEC_POSTGRES, "schema", K_IDENT, CFG(pg_schema), 0, 0 },
	{ SEC_POSTGRES, "connections", K_UINT, CFG(pg_connections), 1, 1024 },
	{ SEC_POSTGRES, "timeout", K_UINT, CFG(pg_timeout), 1, 3600 },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

_Static_assert(NKEYS <= 64, "seen_keys is a 64-bit mask");

struct parser {
	struct mreg_config *cfg;
	const char *name;
	unsigned line;
	char *err;
	size_t errlen;
	enum section sec;
	size_t stage;		/* in [stage NAME]: its cfg->stages index */
	bool *stage_seen;	/* per stage: a section in this file */
	unsigned seen_sections;	/* bit per fixed section */
	uint64_t seen_keys;	/* bit per keys[] entry, this section */
	unsigned chunker_line;	/* last [chunker] key, for check_whole() */
	unsigned mount_line;	/* last allow_other/default_permissions */
	unsigned backend_line;	/* [store] backend */
	unsigned index_line;	/* [index] backend */
	unsigned url_line;	/* a hook that is a URL */
	bool machine;		/* config_load(): check against this machine */
};

static int perr(struct parser *ps, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Writes "NAME:LINE: reason" into the caller's buffer; returns -EINVAL. */
static int perr(struct parser *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	assert(ps);
	if (!ps->err || !ps->errlen)
		return -EINVAL;
	n = snprintf(ps->err, ps->errlen, "%s:%u: ", ps->name, ps->line);
	if (n < 0 || (size_t)n >= ps->errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* The value as quoted in messages: a long one is cut. */
static const char *shown(const char *v, char buf[72])
{
	assert(v && buf);
	if (strlen(v) <= 64)
		return v;
	memcpy(buf, v, 61);
	strcpy(buf + 61, "...");
	return buf;
}

/* "[store]" or "[stage Production]", for messages. */
static const char *section_label(const struct parser *ps, char buf[96])
{
	assert(ps && buf);
	if (ps->sec == SEC_STAGE)
		snprintf(buf, 96, "[stage %s]",
			 ps->cfg->stages[ps->stage].name);
	else
		snprintf(buf, 96, "[%s]", section_names[ps->sec]);
	return buf;
}

static int bad_value(struct parser *ps, const struct key *k, const char *v,
		     const char *why)
{
	char b[72];

	assert(ps && k && v && why);
	return perr(ps, "invalid value '%s' for '%s': %s", shown(v, b),
		    k->name, why);
}

static int out_of_range(struct parser *ps, const struct key *k,
			const char *v)
{
	char why[64];

	assert(ps && k && v);
	snprintf(why, sizeof(why), "out of range (%llu to %llu)",
		 (unsigned long long)k->min, (unsigned long long)k->max);
	return bad_value(ps, k, v, why);
}

/* Splits a comma list into a NULL-terminated vector. An empty list or
 * item is refused: it would read as "nobody" to one reader and "anyone"
 * to another. */
static int parse_list(struct parser *ps, const struct key *k, const char *v,
		      char ***ret)
{
	char **vec = NULL;
	size_t n = 0, len;
	const char *p = v, *e;

	assert(ps && k && v && ret);
	for (;;) {
		char **nv;

		p = config_skip_space(p);
		e = strchr(p, ',');
		if (!e)
			e = p + strlen(p);
		len = (size_t)(e - p);
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0 || len > LIST_ITEM_MAX ||
		    memchr(p, ' ', len) || memchr(p, '\t', len)) {
			config_strv_free(vec);
			return bad_value(ps, k, v, len ? "expected names "
					 "separated by commas" :
					 "empty name in list");
		}
		nv = reallocarray(vec, n + 2, sizeof(*vec));
		if (!nv)
			goto nomem;
		vec = nv;
		vec[n] = strndup(p, len);
		vec[n + 1] = NULL;
		if (!vec[n])
			goto nomem;
		n++;
		if (*e == '\0')
			break;
		p = e + 1;
	}
	*ret = vec;
	return 0;
nomem:
	config_strv_free(vec);
	return -ENOMEM;
}

/* A policy's users (promote_users) or groups must exist on this machine:
 * a name the system does not know would never match anyone, and a stage
 * meant for a team would quietly admit none of it. */
static int check_accounts(struct parser *ps, const struct key *k,
			  char *const *names)
{
	bool groups = k->off == STG(promote_groups);
	char buf[16384];
	size_t i;
	int e;

	assert(ps && k && names);
	for (i = 0; names[i]; i++) {
		struct passwd pw, *pres = NULL;
		struct group gr, *gres = NULL;

		e = groups ? getgrnam_r(names[i], &gr, buf, sizeof(buf), &gres) :
			     getpwnam_r(names[i], &pw, buf, sizeof(buf), &pres);
		if (e == 0 && (groups ? (void *)gres : (void *)pres))
			continue;
		return perr(ps, "unknown %s '%s' in '%s'%s%s",
			    groups ? "group" : "user", names[i], k->name,
			    e ? ": " : "", e ? strerror(e) : "");
	}
	return 0;
}

/* Sets one key of the current section from its (unquoted) value. */
static int set_key(struct parser *ps, const struct key *k, const char *v)
{
	char *base, why[PATH_MAX + 128];
	uint64_t u;
	bool b;
	int r;

	assert(ps && k && v);
	base = k->sec == SEC_STAGE ? (char *)&ps->cfg->stages[ps->stage] :
				     (char *)ps->cfg;
	switch (k->type) {
	case K_ABSPATH:
	case K_PROGRAM:
	case K_SECRET:
	case K_CAFILE: {
		char **dst = (char **)(base + k->off), *s = NULL;
		bool url = k->type == K_PROGRAM && webhook_is_url(v);

		if (url && webhook_url_check(v, why, sizeof(why)) < 0)
			return bad_value(ps, k, v, why);
		if (v[0] && v[0] != '/' && !url)
			return bad_value(ps, k, v, k->type == K_PROGRAM ?
					 "not an absolute path or an https:// "
					 "URL" : "not an absolute path");
		if (k->type == K_PROGRAM && v[0] && !url && ps->machine &&
		    config_program_trusted(v, why, sizeof(why)) < 0)
			return bad_value(ps, k, v, why);
		if (k->type == K_SECRET && v[0] && ps->machine &&
		    config_secret_read(v, NULL, 0, why, sizeof(why)) < 0)
			return bad_value(ps, k, v, why);
		if (k->type == K_CAFILE && v[0] && ps->machine &&
		    config_file_readable(v, why, sizeof(why)) < 0)
			return bad_value(ps, k, v, why);
		if (url)
			ps->url_line = ps->line;
		if (v[0] && !(s = strdup(v)))
			return -ENOMEM;
		free(*dst);
		*dst = s;
		return 0;
	}
	case K_SIZE64:
	case K_SIZE32:
		if (config_parse_size(v, &u) < 0)
			return bad_value(ps, k, v, "expected a size such "
					 "as 64K, 16M or 1G");
		if (u < k->min || u > k->max)
			return out_of_range(ps, k, v);
		if (k->type == K_SIZE64)
			*(uint64_t *)(base + k->off) = u;
		else
			*(uint32_t *)(base + k->off) = (uint32_t)u;
		if (k->sec == SEC_CHUNKER)
			ps->chunker_line = ps->line;
		return 0;
	case K_UINT:
		/* config_parse_size() without a suffix: plain digits. */
		if (!v[0] || v[strspn(v, "0123456789")] != '\0' ||
		    config_parse_size(v, &u) < 0)
			return bad_value(ps, k, v, "expected a number");
		if (u < k->min || u > k->max)
			return out_of_range(ps, k, v);
		*(unsigned *)(base + k->off) = (unsigned)u;
		return 0;
	case K_BOOL:
		if (config_parse_bool(v, &b) < 0)
			return bad_value(ps, k, v, "expected true/false, "
					 "yes/no, on/off or 1/0");
		*(bool *)(base + k->off) = b;
		if (k->sec == SEC_MOUNT)
			ps->mount_line = ps->line;
		return 0;
	case K_BACKEND:
		if (!strcmp(v, "local"))
			ps->cfg->backend = CONFIG_BACKEND_LOCAL;
		else if (!strcmp(v, "s3"))
			ps->cfg->backend = CONFIG_BACKEND_S3;
		else
			return bad_value(ps, k, v, "expected local or s3");
		ps->backend_line = ps->line;
		return 0;
	case K_INDEX:
		if (!strcmp(v, "lmdb"))
			ps->cfg->index = CONFIG_INDEX_LMDB;
		else if (!strcmp(v, "postgres"))
			ps->cfg->index = CONFIG_INDEX_POSTGRES;
		else
			return bad_value(ps, k, v, "expected lmdb or postgres");
		ps->index_line = ps->line;
		return 0;
	case K_TEXT:
	case K_LINE:
	case K_IDENT:
	case K_PREFIX: {
		char **dst = (char **)(base + k->off), *s;

		if (k->type == K_TEXT && (!v[0] || strpbrk(v, " \t")))
			return bad_value(ps, k, v, "expected a value without "
					 "blanks");
		if (k->type == K_LINE && !v[0])
			return bad_value(ps, k, v, "expected a value");
		if (k->type == K_IDENT && (!v[0] || strlen(v) > 63 ||
		    (v[0] >= '0' && v[0] <= '9') ||
		    strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_") !=
		    strlen(v)))
			return bad_value(ps, k, v, "expected a name of "
					 "lower-case letters, digits and '_' "
					 "(at most 63, not a digit first)");
		if (k->type == K_PREFIX && ((v[0] && v[strlen(v) - 1] != '/') ||
					    strlen(v) > 1000))
			return bad_value(ps, k, v, "expected a prefix ending "
					 "in '/' (at most 1000 bytes)");
		if (!(s = strdup(v)))
			return -ENOMEM;
		free(*dst);
		*dst = s;
		return 0;
	}
	case K_DURABILITY:
		if (!strcmp(v, "full"))
			ps->cfg->durability = DURABILITY_FULL;
		else if (!strcmp(v, "none"))
			ps->cfg->durability = DURABILITY_NONE;
		else
			return bad_value(ps, k, v, "expected full or none");
		return 0;
	case K_LOGLEVEL:
		if (!strcmp(v, "error"))
			ps->cfg->log_level = LOG_LVL_ERROR;
		else if (!strcmp(v, "warn") || !strcmp(v, "warning"))
			ps->cfg->log_level = LOG_LVL_WARN;
		else if (!strcmp(v, "info"))
			ps->cfg->log_level = LOG_LVL_INFO;
		else if (!strcmp(v, "debug"))
			ps->cfg->log_level = LOG_LVL_DEBUG;
		else
			return bad_value(ps, k, v,
					 "expected error, warn, info or debug");
		return 0;
	case K_LIST: {
		char ***dst = (char ***)(base + k->off), **vec = NULL;

		r = parse_list(ps, k, v, &vec);
		if (r == 0 && ps->machine)
			r = check_accounts(ps, k, vec);
		if (r < 0) {
			config_strv_free(vec);
			return r;
		}
		config_strv_free(*dst);
		*dst = vec;
		return 0;
	}
	case K_STAGE: {
		struct stage_policy *sp = &ps->cfg->stages[ps->stage];

		if (!stage_name_ok(v))
			return bad_value(ps, k, v, "not a stage name");
		if (!strcmp(v, sp->name))
			return bad_value(ps, k, v,
					 "a stage cannot require itself");
		strlcpy(sp->require_stage, v, sizeof(sp->require_stage));
		return 0;
	}
	case K_METRIC: {
		struct stage_policy *sp = &ps->cfg->stages[ps->stage];
		struct metric_rule mr;
		const char *num;
		char *s;

		if (config_parse_metric_rule(v, &mr) < 0)
			return bad_value(ps, k, v, "expected 'metric op "
					 "number', e.g. 'auc >= 0.9'");
		/* Kept as "key op number", spaced once, the number as
		 * written: easy to show, and to parse again with
		 * config_parse_metric_rule(). */
		num = config_skip_space(config_skip_space(v) + strlen(mr.key));
		num = config_skip_space(num + strlen(mr.op));
		if (asprintf(&s, "%s %s %.*s", mr.key, mr.op,
			     (int)strspn(num, "0123456789+-.eE"), num) < 0)
			return -ENOMEM;
		free(sp->require_metric);
		sp->require_metric = s;
		return 0;
	}
	}
	assert(!"unknown key type");
	return -EINVAL;
}

/* Opens [stage NAME]: a new policy, or a fresh one replacing a policy from
 * an earlier file. */
static int open_stage(struct parser *ps, const char *name)
{
	struct mreg_config *cfg = ps->cfg;
	struct stage_policy *nv;
	bool *ns;
	size_t i;

	assert(ps && name);
	if (!stage_name_ok(name)) {
		char b[72];

		return perr(ps, "invalid stage name '%s'", shown(name, b));
	}
	for (i = 0; i < cfg->nstages; i++)
		if (!strcasecmp(cfg->stages[i].name, name))
			break;
	if (i < cfg->nstages) {
		if (ps->stage_seen[i] && strcmp(cfg->stages[i].name, name))
			return perr(ps, "duplicate section [stage %s] (the "
				    "same as [stage %s]: stage names are "
				    "compared regardless of case)", name,
				    cfg->stages[i].name);
		if (ps->stage_seen[i])
			return perr(ps, "duplicate section [stage %s]", name);
		config_stage_release(&cfg->stages[i]);
	} else {
		nv = reallocarray(cfg->stages, cfg->nstages + 1, sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		cfg->stages = nv;
		ns = reallocarray(ps->stage_seen, cfg->nstages + 1,
				  sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		ps->stage_seen = ns;
		memset(&cfg->stages[i], 0, sizeof(cfg->stages[i]));
		cfg->nstages++;
	}
	strlcpy(cfg->stages[i].name, name, sizeof(cfg->stages[i].name));
	ps->stage_seen[i] = true;
	ps->stage = i;
	ps->sec = SEC_STAGE;
	ps->seen_keys = 0;
	return 0;
}

/* Strips trailing blanks in place. */
static void rtrim(char *s)
{
	size_t n;

	assert(s);
	n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

/* True when what follows a value or a header is nothing or a comment. */
static bool only_comment(const char *s)
{
	s = config_skip_space(s);
	return *s == '\0' || *s == '#' || *s == ';';
}

/* s is the text after '[', in place. */
static int parse_header(struct parser *ps, char *s)
{
	char *end = strchr(s, ']'), *name;
	size_t i;

	assert(ps && s);
	if (!end)
		return perr(ps, "missing ']' in section header");
	if (!only_comment(end + 1))
		return perr(ps, "unexpected text after ']'");
	*end = '\0';
	s = (char *)config_skip_space(s);
	rtrim(s);
	if (!strncmp(s, "stage", 5) && (s[5] == ' ' || s[5] == '\t' ||
					s[5] == '\0')) {
		name = (char *)config_skip_space(s + 5);
		if (*name == '"') {
			size_t n = strlen(name);

			if (n < 2 || name[n - 1] != '"')
				return perr(ps, "unterminated quoted "
					    "stage name");
			name[n - 1] = '\0';
			name++;
		}
		if (!*name)
			return perr(ps, "missing stage name in [stage NAME]");
		return open_stage(ps, name);
	}
	for (i = SEC_STORE; i < SEC_STAGE; i++)
		if (!strcmp(s, section_names[i]))
			break;
	if (i == SEC_STAGE) {
		char b[72];

		if (!*s)
			return perr(ps, "empty section name");
		return perr(ps, "unknown section [%s]", shown(s, b));
	}
	if (ps->seen_sections & (1u << i))
		return perr(ps, "duplicate section [%s]", s);
	ps->seen_sections |= 1u << i;
	ps->sec = (enum section)i;
	ps->seen_keys = 0;
	return 0;
}

/* Unquotes or cuts the comment off v, in place. */
static int parse_value(struct parser *ps, char *v)
{
	char *r, *w;

	assert(ps && v);
	if (*v == '"') {
		for (r = v + 1, w = v; *r && *r != '"'; r++) {
			if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
				r++;
			*w++ = *r;
		}
		if (*r != '"')
			return perr(ps, "unterminated quoted value");
		if (!only_comment(r + 1))
			return perr(ps, "unexpected text after quoted value");
		*w = '\0';
		return 0;
	}
	for (r = v; *r; r++) {
		if ((*r == '#' || *r == ';') &&
		    (r == v || r[-1] == ' ' || r[-1] == '\t')) {
			*r = '\0';
			break;
		}
	}
	rtrim(v);
	return 0;
}

static int parse_line(struct parser *ps, char *s)
{
	char *eq, *key, *val, b[72], sb[96];
	size_t i;
	int r;

	assert(ps && s);
	s = (char *)config_skip_space(s);
	rtrim(s);
	if (*s == '\0' || *s == '#' || *s == ';')
		return 0;
	if (*s == '[')
		return parse_header(ps, s + 1);

	eq = strchr(s, '=');
	if (!eq)
		return perr(ps, "missing '=' in '%s'", shown(s, b));
	*eq = '\0';
	key = s;
	rtrim(key);
	if (!*key)
		return perr(ps, "missing key before '='");
	if (ps->sec == SEC_NONE)
		return perr(ps, "key '%s' outside a section", shown(key, b));
	for (i = 0; i < NKEYS; i++)
		if (keys[i].sec == ps->sec && !strcmp(keys[i].name, key))
			break;
	if (i == NKEYS)
		return perr(ps, "unknown key '%s' in %s", shown(key, b),
			    section_label(ps, sb));
	if (ps->seen_keys & (1ULL << i))
		return perr(ps, "duplicate key '%s' in %s", key,
			    section_label(ps, sb));
	ps->seen_keys |= 1ULL << i;
	val = (char *)config_skip_space(eq + 1);
	r = parse_value(ps, val);
	if (r < 0)
		return r;
	return set_key(ps, &keys[i], val);
}

/* The checks that need the whole file. */
static int check_whole(struct parser *ps)
{
	struct mreg_config *cfg = ps->cfg;
	char why[256];

	assert(ps);
	if (ps->chunker_line && chunker_params_check(&cfg->chunker) < 0) {
		ps->line = ps->chunker_line;
		return perr(ps, "invalid [chunker] sizes %u/%u/%u: need 64 <= "
			    "min_size < avg_size < max_size <= 64M, avg_size "
			    "a power of two", cfg->chunker.min_size,
			    cfg->chunker.avg_size, cfg->chunker.max_size);
	}
	/* Without default_permissions, allow_other would let every user
	 * read every file whatever its mode. */
	if (ps->mount_line && cfg->allow_other && !cfg->default_permissions) {
		ps->line = ps->mount_line;
		return perr(ps, "allow_other needs default_permissions = true");
	}
	if (cfg->backend == CONFIG_BACKEND_S3 &&
	    (!cfg->s3_endpoint || !cfg->s3_bucket)) {
		if (ps->backend_line)
			ps->line = ps->backend_line;
		return perr(ps, "backend = s3 needs [s3] endpoint and bucket");
	}
	if (cfg->index == CONFIG_INDEX_POSTGRES && !cfg->pg_conninfo) {
		if (ps->index_line)
			ps->line = ps->index_line;
		return perr(ps, "backend = postgres needs [postgres] conninfo");
	}
	/* A URL needs a secret of this file's: the policy stored in the
	 * registry is parsed without a machine, and the process that
	 * delivers checks its own config. */
	if (ps->machine && ps->url_line &&
	    ((webhook_is_url(cfg->on_register) &&
	      config_hook_check(cfg, cfg->on_register, why, sizeof(why)) < 0) ||
	     (webhook_is_url(cfg->on_promote) &&
	      config_hook_check(cfg, cfg->on_promote, why, sizeof(why)) < 0))) {
		ps->line = ps->url_line;
		return perr(ps, "%s", why);
	}
	/* Every host must reach every chunk: pack files are one host's. */
	if (cfg->index == CONFIG_INDEX_POSTGRES &&
	    cfg->backend != CONFIG_BACKEND_S3) {
		if (ps->index_line)
			ps->line = ps->index_line;
		return perr(ps, "backend = postgres needs [store] backend = s3: "
			    "the chunks of a registry many hosts share must be "
			    "where every host reaches them");
	}
	return 0;
}

static int parse_all(struct mreg_config *cfg, const char *name,
		     const char *text, size_t len, bool machine, char *err,
		     size_t errlen)
{
	struct parser ps = {
		.cfg = cfg, .name = name, .err = err, .errlen = errlen,
		.machine = machine,
	};
	char *buf, *line, *nl;
	int r = 0;

	assert(cfg && name && (text || !len));
	if (len && memchr(text, '\0', len)) {
		const char *z = memchr(text, '\0', len), *p;

		ps.line = 1;
		for (p = text; p < z; p++)
			ps.line += *p == '\n';
		return perr(&ps, "nul byte in file");
	}
	buf = strndup(text ? text : "", len);
	ps.stage_seen = calloc(cfg->nstages + 1, sizeof(*ps.stage_seen));
	if (!buf || !ps.stage_seen) {
		r = -ENOMEM;
		goto out;
	}
	for (line = buf; line; line = nl) {
		nl = strchr(line, '\n');
		if (nl)
			*nl++ = '\0';
		ps.line++;
		r = parse_line(&ps, line);
		if (r < 0)
			goto out;
	}
	r = check_whole(&ps);
out:
	if (r == -ENOMEM && err && errlen)
		snprintf(err, errlen, "%s: out of memory", name);
	free(buf);
	free(ps.stage_seen);
	return r;
}

int config_parse_swap(struct mreg_config *cfg, const char *name,
		      const char *text, size_t len, const char *path,
		      char *err, size_t errlen)
{
	struct mreg_config tmp;
	char *p = NULL;
	int r;

	assert(cfg && name);
	if (path && !(p = strdup(path)))
		return -ENOMEM;
	r = config_copy(&tmp, cfg);
	if (r < 0) {
		free(p);
		return r;
	}
	r = parse_all(&tmp, name, text, len, path != NULL, err, errlen);
	if (r < 0) {
		free(p);
		config_release(&tmp);
		return r;
	}
	if (p) {
		free(tmp.path);
		tmp.path = p;
	}
	config_release(cfg);
	*cfg = tmp;
	return 0;
}

int config_parse(struct mreg_config *cfg, const char *name, const char *text,
		 size_t len, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!cfg || (!text && len))
		return -EINVAL;
	return config_parse_swap(cfg, name ? name : "<config>", text, len, NULL, err,
			  errlen);
}

