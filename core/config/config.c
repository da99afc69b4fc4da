/* config.c — reads mreg.conf, the INI file that sets the store, the chunk
 * sizes, the mount options, the stage policies, the hooks and the limits.
 *
 * A bad file must stop the daemon at start-up with a message a person can
 * act on, so every refusal names the file and the line. The grammar:
 *
 *	# comment            ; comment        (whole line)
 *	[section]            [stage NAME]     (NAME may be "quoted")
 *	key = value          key = "value"    (\" and \\ inside quotes)
 *	key = value  # comment                (after whitespace, unquoted)
 *
 * Unknown sections and keys are errors, not warnings: a misspelt policy key
 * that was silently ignored would leave a stage unprotected. So are a key
 * given twice in a section and a section given twice in a file.
 *
 * Parsing works on a copy of the config, which replaces the caller's only
 * when the whole file is good: a refused file changes nothing.
 *
 * config_parse() looks at the text alone. config_load() also checks it
 * against the machine (the daemon runs the hooks as root): the file and
 * the hook programs must be writable only by root or the daemon's user,
 * and a policy's users and groups must exist, so that a misspelt name is
 * not a silently empty list.
 *
 * This file: the values (sizes, booleans, metric rules), the config
 * struct and its copies, the store path. parse.c: the grammar and the key
 * table. load.c: a file read, trusted and parsed.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "registry/names.h"
#include "util.h"


/* ---- values ------------------------------------------------------------ */

int config_parse_size(const char *s, uint64_t *ret)
{
	uint64_t v = 0, mult = 1;
	const char *p = s;

	if (!s || !ret || *s < '0' || *s > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	switch (*p) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = 1ULL << 10;
		p++;
		break;
	case 'm':
	case 'M':
		mult = 1ULL << 20;
		p++;
		break;
	case 'g':
	case 'G':
		mult = 1ULL << 30;
		p++;
		break;
	default:
		return -EINVAL;
	}
	if (*p != '\0' || (v && v > UINT64_MAX / mult))
		return -EINVAL;
	*ret = v * mult;
	return 0;
}

int config_parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	size_t i;

	if (!s || !ret)
		return -EINVAL;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i])) {
			*ret = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

const char *config_skip_space(const char *s)
{
	assert(s);
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

int config_parse_metric_rule(const char *s, struct metric_rule *ret)
{
	static const char *const ops[] = { "<=", ">=", "!=", "=", "<", ">" };
	struct metric_rule r;
	const char *p, *q;
	size_t n, i;

	if (!s || !ret)
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	p = config_skip_space(s);
	for (n = 0; reg_name_char(p[n]); n++)
		;
	if (n == 0 || n > CONFIG_METRIC_KEY_MAX)
		return -EINVAL;
	memcpy(r.key, p, n);
	p = config_skip_space(p + n);
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strncmp(p, ops[i], strlen(ops[i])))
			break;
	if (i == sizeof(ops) / sizeof(ops[0]))
		return -EINVAL;
	strlcpy(r.op, ops[i], sizeof(r.op));
	p = config_skip_space(p + strlen(ops[i]));
	/* the number, then nothing but blanks */
	q = p + strcspn(p, " \t");
	if (*config_skip_space(q) != '\0' || !util_decimal(p, (size_t)(q - p), &r.value))
		return -EINVAL;
	*ret = r;
	return 0;
}

bool config_metric_rule_holds(const struct metric_rule *r, double v)
{
	if (!r)
		return false;
	if (!strcmp(r->op, "="))
		return v == r->value;
	if (!strcmp(r->op, "!="))
		return v != r->value;
	if (!strcmp(r->op, "<"))
		return v < r->value;
	if (!strcmp(r->op, "<="))
		return v <= r->value;
	if (!strcmp(r->op, ">"))
		return v > r->value;
	if (!strcmp(r->op, ">="))
		return v >= r->value;
	return false;
}

/* ---- the config struct ------------------------------------------------- */

void config_init(struct mreg_config *cfg)
{
	static const struct chunker_params dflt = CHUNKER_DEFAULT_PARAMS;

	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->pack_size = 64ULL << 20;
	cfg->dedup_verify = true;
	cfg->durability = DURABILITY_FULL;
	cfg->map_size = 64ULL << 20;
	cfg->chunker = dflt;
	cfg->allow_other = false;
	cfg->default_permissions = true;
	cfg->readahead = 4u << 20;
	cfg->max_threads = 64;
	cfg->log_level = LOG_LVL_WARN;
	cfg->hook_timeout = 30;
	cfg->hook_attempts = 4;
	cfg->hook_attempt_timeout = 10;
	cfg->open_files_per_user = 1000;
	cfg->open_files_reserve = 256;
	cfg->serve_passthrough = true;
	cfg->serve_size = 16ULL << 30;
	cfg->s3_path_style = true;
	cfg->s3_gc_grace = 3600;
	cfg->s3_timeout = 30;
	cfg->cache_size = 10ULL << 30;
	cfg->cache_min_free = 1ULL << 30;
	cfg->cache_readahead = 16ULL << 20;
	cfg->pg_connections = 8;
	cfg->pg_timeout = 30;
}

void config_strv_free(char **v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

void config_stage_release(struct stage_policy *sp)
{
	assert(sp);
	config_strv_free(sp->promote_users);
	config_strv_free(sp->promote_groups);
	free(sp->require_metric);
	memset(sp, 0, sizeof(*sp));
}

void config_release(struct mreg_config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->store);
	free(cfg->on_register);
	free(cfg->on_promote);
	free(cfg->hook_secret_file);
	free(cfg->hook_ca_file);
	free(cfg->serve_path);
	free(cfg->s3_endpoint);
	free(cfg->s3_bucket);
	free(cfg->s3_region);
	free(cfg->s3_credentials);
	free(cfg->s3_key_prefix);
	free(cfg->cache_path);
	free(cfg->pg_conninfo);
	free(cfg->pg_schema);
	for (i = 0; i < cfg->nstages; i++)
		config_stage_release(&cfg->stages[i]);
	free(cfg->stages);
	memset(cfg, 0, sizeof(*cfg));
}

/* strdup() that passes NULL through; *ok is cleared on ENOMEM. */
static char *dup_or_null(const char *s, bool *ok)
{
	char *d;

	assert(ok);
	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*ok = false;
	return d;
}

static char **strv_dup(char *const *v, bool *ok)
{
	char **d;
	size_t n, i;

	assert(ok);
	if (!v)
		return NULL;
	for (n = 0; v[n]; n++)
		;
	d = calloc(n + 1, sizeof(*d));
	if (!d) {
		*ok = false;
		return NULL;
	}
	for (i = 0; i < n; i++) {
		d[i] = strdup(v[i]);
		if (!d[i]) {
			config_strv_free(d);
			*ok = false;
			return NULL;
		}
	}
	return d;
}

int config_copy(struct mreg_config *dst, const struct mreg_config *src)
{
	bool ok = true;
	size_t i;

	assert(dst && src);
	*dst = *src;
	dst->path = dup_or_null(src->path, &ok);
	dst->store = dup_or_null(src->store, &ok);
	dst->on_register = dup_or_null(src->on_register, &ok);
	dst->on_promote = dup_or_null(src->on_promote, &ok);
	dst->hook_secret_file = dup_or_null(src->hook_secret_file, &ok);
	dst->hook_ca_file = dup_or_null(src->hook_ca_file, &ok);
	dst->serve_path = dup_or_null(src->serve_path, &ok);
	dst->s3_endpoint = dup_or_null(src->s3_endpoint, &ok);
	dst->s3_bucket = dup_or_null(src->s3_bucket, &ok);
	dst->s3_region = dup_or_null(src->s3_region, &ok);
	dst->s3_credentials = dup_or_null(src->s3_credentials, &ok);
	dst->s3_key_prefix = dup_or_null(src->s3_key_prefix, &ok);
	dst->cache_path = dup_or_null(src->cache_path, &ok);
	dst->pg_conninfo = dup_or_null(src->pg_conninfo, &ok);
	dst->pg_schema = dup_or_null(src->pg_schema, &ok);
	dst->stages = NULL;
	dst->nstages = 0;
	if (src->nstages) {
		dst->stages = calloc(src->nstages, sizeof(*dst->stages));
		if (!dst->stages)
			ok = false;
		else
			dst->nstages = src->nstages;
	}
	for (i = 0; i < dst->nstages; i++) {
		const struct stage_policy *s = &src->stages[i];
		struct stage_policy *d = &dst->stages[i];

		*d = *s;
		d->promote_users = strv_dup(s->promote_users, &ok);
		d->promote_groups = strv_dup(s->promote_groups, &ok);
		d->require_metric = dup_or_null(s->require_metric, &ok);
	}
	if (!ok) {
		config_release(dst);
		return -ENOMEM;
	}
	return 0;
}

const struct stage_policy *config_stage(const struct mreg_config *cfg,
					const char *stage)
{
	size_t i;

	if (!cfg || !stage)
		return NULL;
	/* stage names are unique regardless of case (registry.h): a policy
	   holds for every spelling, so that `production` cannot dodge the
	   rules of [stage Production] */
	for (i = 0; i < cfg->nstages; i++)
		if (!strcasecmp(cfg->stages[i].name, stage))
			return &cfg->stages[i];
	return NULL;
}

/* ---- the store path ---------------------------------------------------- */

char *config_store_path(const struct mreg_config *cfg, const char *explicit)
{
	const char *env, *home;
	char *s;

	if (explicit && *explicit)
		return util_path_absolute(explicit);
	env = getenv("MREG_STORE");
	if (env && *env)
		return util_path_absolute(env);
	if (cfg && cfg->store && *cfg->store)
		return util_path_absolute(cfg->store);
	if (geteuid() == 0)
		return strdup(MREG_DEFAULT_STORE_ROOT);
	/* XDG: a relative $XDG_DATA_HOME is invalid and must be ignored. */
	env = getenv("XDG_DATA_HOME");
	if (env && env[0] == '/') {
		if (asprintf(&s, "%s/mreg", env) < 0)
			return NULL;
		return s;
	}
	home = getenv("HOME");
	if (!home || home[0] != '/') {
		struct passwd *pw = getpwuid(geteuid());

		home = pw && pw->pw_dir && pw->pw_dir[0] == '/' ?
		       pw->pw_dir : NULL;
	}
	if (!home)
		return strdup(MREG_DEFAULT_STORE_ROOT);
	if (asprintf(&s, "%s/.local/share/mreg", home) < 0)
		return NULL;
	return s;
}
