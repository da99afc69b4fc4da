/* test-config.c — mreg.conf: defaults, every key, the value syntaxes, the
 * "FILE:LINE: reason" of each kind of refusal, stage policies, the shipped
 * mreg.conf.example, what config_load() checks against the machine (the
 * file's and the hooks' trust, a policy's users and groups), and the
 * order in which the store path is chosen. */
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "registry/hooks.h"

static char err[512];

/* Parses text into a fresh config; the caller releases it. */
static int parse(struct mreg_config *cfg, const char *text)
{
	config_init(cfg);
	return config_parse(cfg, "t.conf", text, strlen(text), err,
			    sizeof(err));
}

/* Whether text is refused with exactly the message want. */
static bool refused_with(const char *text, const char *want)
{
	struct mreg_config cfg;
	int r = parse(&cfg, text);

	config_release(&cfg);
	if (r != -EINVAL || strcmp(err, want) != 0) {
		printf("#   r = %d, err = \"%s\"\n#   want \"%s\"\n", r, err,
		       want);
		return false;
	}
	return true;
}

/* Whether text is refused with a message that starts with prefix. */
static bool refused_at(const char *text, const char *prefix)
{
	struct mreg_config cfg;
	int r = parse(&cfg, text);

	config_release(&cfg);
	if (r != -EINVAL || strncmp(err, prefix, strlen(prefix)) != 0) {
		printf("#   r = %d, err = \"%s\"\n#   want \"%s...\"\n", r, err,
		       prefix);
		return false;
	}
	return true;
}

static bool strv_is(char **v, const char *a, const char *b)
{
	return v && v[0] && !strcmp(v[0], a) &&
	       (b ? v[1] && !strcmp(v[1], b) && !v[2] : !v[1]);
}

static void test_defaults(void)
{
	struct mreg_config cfg;

	config_init(&cfg);
	CHECK(cfg.path == NULL && cfg.store == NULL, "no path, no store");
	CHECK_EQ(cfg.pack_size, 64u << 20, "pack_size 64M");
	CHECK(cfg.dedup_verify, "dedup_verify on");
	CHECK_EQ(cfg.durability, DURABILITY_FULL, "durability full");
	CHECK_EQ(cfg.map_size, 64u << 20, "map_size 64M");
	CHECK(cfg.chunker.min_size == 16384 && cfg.chunker.avg_size == 65536 &&
	      cfg.chunker.max_size == 262144, "chunker 16K/64K/256K");
	CHECK(!cfg.allow_other && cfg.default_permissions,
	      "allow_other off, default_permissions on");
	CHECK_EQ(cfg.readahead, 4u << 20, "readahead 4M");
	CHECK_EQ(cfg.max_threads, 64, "max_threads 64");
	CHECK_EQ(cfg.log_level, LOG_LVL_WARN, "log level warn");
	CHECK(!cfg.on_register && !cfg.on_promote, "no hooks");
	CHECK_EQ(cfg.hook_timeout, 30, "hook timeout 30");
	CHECK(!cfg.hook_secret_file && !cfg.hook_ca_file &&
	      cfg.hook_attempts == 4 && cfg.hook_attempt_timeout == 10,
	      "no secret or CA file, 4 attempts of 10 s at most");
	CHECK_EQ(cfg.open_files_per_user, 1000, "open_files_per_user 1000");
	CHECK_EQ(cfg.open_files_reserve, 256, "open_files_reserve 256");
	CHECK(cfg.serve_passthrough && !cfg.serve_path &&
	      cfg.serve_size == 16ULL << 30 && !cfg.serve_hydrate_on_promote,
	      "[serve] passthrough on, the store's serve/, 16G, no promote");
	CHECK(cfg.nstages == 0 && !config_stage(&cfg, "Production"),
	      "no stage policies");
	config_release(&cfg);

	CHECK_EQ(parse(&cfg, ""), 0, "an empty file is fine");
	CHECK_EQ(cfg.pack_size, 64u << 20, "and keeps the defaults");
	config_release(&cfg);
}

static void test_every_key(void)
{
	static const char text[] =
		"# every key\n"
		"[store]\n"
		"path = /srv/mreg\n"
		"pack_size = 128M\n"
		"dedup_verify = no\n"
		"durability = none\n"
		"map_size = 1G\n"
		"[chunker]\n"
		"min_size = 4K\n"
		"avg_size = 16K\n"
		"max_size = 64K\n"
		"[mount]\n"
		"allow_other = yes\n"
		"default_permissions = on\n"
		"readahead = 1M\n"
		"max_threads = 8\n"
		"[log]\n"
		"level = debug\n"
		"[hooks]\n"
		"on_register = /usr/local/bin/on-register\n"
		"on_promote = \"/opt/hooks/promote --notify\"\n"
		"timeout = 5\n"
		"[limits]\n"
		"open_files_per_user = 50\n"
		"open_files_reserve = 64\n"
		"[serve]\n"
		"passthrough = no\n"
		"path = /var/cache/mreg\n"
		"size = 3G\n"
		"hydrate_on_promote = yes\n"
		"[stage Staging]\n"
		"promote_users = alice, bob\n"
		"[stage Production]\n"
		"promote_users = carol\n"
		"promote_groups = mlops,admin , sre\n"
		"require_stage = Staging\n"
		"protect = true\n"
		"require_metric = auc>=0.9\n";
	struct mreg_config cfg;
	const struct stage_policy *sp;

	CHECK_EQ(parse(&cfg, text), 0, "a file with every key parses");
	CHECK(cfg.store && !strcmp(cfg.store, "/srv/mreg"), "[store] path");
	CHECK_EQ(cfg.pack_size, 128u << 20, "pack_size");
	CHECK(!cfg.dedup_verify, "dedup_verify");
	CHECK_EQ(cfg.durability, DURABILITY_NONE, "durability");
	CHECK_EQ(cfg.map_size, 1u << 30, "map_size");
	CHECK(cfg.chunker.min_size == 4096 && cfg.chunker.avg_size == 16384 &&
	      cfg.chunker.max_size == 65536, "chunker sizes");
	CHECK(cfg.allow_other && cfg.default_permissions, "mount booleans");
	CHECK_EQ(cfg.readahead, 1u << 20, "readahead");
	CHECK_EQ(cfg.max_threads, 8, "max_threads");
	CHECK_EQ(cfg.log_level, LOG_LVL_DEBUG, "log level");
	CHECK(cfg.on_register &&
	      !strcmp(cfg.on_register, "/usr/local/bin/on-register"),
	      "on_register");
	CHECK(cfg.on_promote &&
	      !strcmp(cfg.on_promote, "/opt/hooks/promote --notify"),
	      "on_promote, quoted");
	CHECK_EQ(cfg.hook_timeout, 5, "hook timeout");
	CHECK_EQ(cfg.open_files_per_user, 50, "open_files_per_user");
	CHECK_EQ(cfg.open_files_reserve, 64, "open_files_reserve");
	CHECK(!cfg.serve_passthrough, "[serve] passthrough");
	CHECK(cfg.serve_path && !strcmp(cfg.serve_path, "/var/cache/mreg"),
	      "[serve] path");
	CHECK_EQ(cfg.serve_size, 3ULL << 30, "[serve] size");
	CHECK(cfg.serve_hydrate_on_promote, "[serve] hydrate_on_promote");
	CHECK_EQ(cfg.nstages, 2, "two stage sections");

	sp = config_stage(&cfg, "Staging");
	CHECK(sp && strv_is(sp->promote_users, "alice", "bob") &&
	      !sp->promote_groups && !sp->protect && !sp->require_stage[0] &&
	      !sp->require_metric, "[stage Staging]");
	sp = config_stage(&cfg, "Production");
	CHECK(sp && !strcmp(sp->name, "Production"), "config_stage() finds it");
	CHECK(sp && strv_is(sp->promote_users, "carol", NULL),
	      "promote_users of one");
	CHECK(sp && sp->promote_groups &&
	      !strcmp(sp->promote_groups[0], "mlops") &&
	      !strcmp(sp->promote_groups[1], "admin") &&
	      !strcmp(sp->promote_groups[2], "sre") && !sp->promote_groups[3],
	      "promote_groups, blanks around commas trimmed");
	CHECK(sp && !strcmp(sp->require_stage, "Staging"), "require_stage");
	CHECK(sp && sp->protect, "protect");
	CHECK(sp && sp->require_metric &&
	      !strcmp(sp->require_metric, "auc >= 0.9"),
	      "require_metric kept as 'auc >= 0.9'");
	CHECK(!config_stage(&cfg, "Archived"), "no policy for other stages");
	CHECK(config_stage(&cfg, "production") == sp && sp,
	      "a stage spelled in other case has the same policy");
	config_release(&cfg);
}

static void test_sizes_bools(void)
{
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
		{ "0", 0 }, { "123", 123 }, { "64K", 64u << 10 },
		{ "64k", 64u << 10 }, { "1M", 1u << 20 },
		{ "2G", 2ULL << 30 }, { "16777216", 16u << 20 },
		{ "18446744073709551615", UINT64_MAX },
		{ "17179869183G", 17179869183ULL << 30 },
	};
	static const char *const bad[] = {
		"", "K", "-1", "+1", "1.5M", "1T", "12 K", " 1", "1K ",
		"0x10", "1KB", "18446744073709551616", "17179869184G",
	};
	static const char *const yes[] = { "true", "yes", "on", "1", "TRUE",
					   "Yes" };
	static const char *const no[] = { "false", "no", "off", "0", "Off" };
	static const char *const notbool[] = { "", "2", "maybe", "y", "t" };
	struct mreg_config cfg;
	uint64_t v;
	bool b;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 7;
		CHECK(config_parse_size(good[i].s, &v) == 0 && v == good[i].v,
		      "size '%s'", good[i].s);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 7;
		CHECK(config_parse_size(bad[i], &v) == -EINVAL && v == 7,
		      "size '%s' refused, output untouched", bad[i]);
	}
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		CHECK(config_parse_bool(yes[i], &b) == 0 && b,
		      "'%s' is true", yes[i]);
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		CHECK(config_parse_bool(no[i], &b) == 0 && !b,
		      "'%s' is false", no[i]);
	for (i = 0; i < sizeof(notbool) / sizeof(notbool[0]); i++)
		CHECK_EQ(config_parse_bool(notbool[i], &b), -EINVAL,
			 "'%s' is not a boolean", notbool[i]);
	CHECK_EQ(config_parse_size(NULL, &v), -EINVAL, "size NULL refused");

	CHECK_EQ(parse(&cfg, "[mount]\nreadahead = 0\nmax_threads = 1\n"),
		 0, "readahead 0, max_threads 1 accepted");
	config_release(&cfg);
}

static void test_syntax(void)
{
	static const char text[] =
		"\n"
		"   ; a comment\n"
		"\t# another\n"
		"  [ store ]   # a comment after a header\n"
		"path=\"/srv/a #b ;c\"   ; quoted # is kept\n"
		"pack_size   =   32M   # trailing comment\r\n"
		"[log]\r\n"
		"level = \"info\"\n"
		"[stage \"Prod-1.x_y\"]\n"
		"require_metric = \"loss < -1.5e-3\"\n"
		"[hooks]\n"
		"on_register = \"/a \\\"b\\\" c\\\\d\"\n"
		"on_promote = /bin/x#y\n"
		"[mount]\n"
		"readahead = 128K";	/* no final newline */
	struct mreg_config cfg;
	const struct stage_policy *sp;

	CHECK_EQ(parse(&cfg, text), 0, "comments, blanks, quotes, CRLF parse");
	CHECK(cfg.store && !strcmp(cfg.store, "/srv/a #b ;c"),
	      "# and ; inside quotes are kept");
	CHECK_EQ(cfg.pack_size, 32u << 20, "comment after a value dropped");
	CHECK_EQ(cfg.log_level, LOG_LVL_INFO, "quoted word, CRLF lines");
	sp = config_stage(&cfg, "Prod-1.x_y");
	CHECK(sp && sp->require_metric &&
	      !strcmp(sp->require_metric, "loss < -1.5e-3"),
	      "quoted stage name; signed exponent metric");
	CHECK(cfg.on_register && !strcmp(cfg.on_register, "/a \"b\" c\\d"),
	      "escapes inside quotes");
	CHECK(cfg.on_promote && !strcmp(cfg.on_promote, "/bin/x#y"),
	      "# not after a blank is part of the value");
	CHECK_EQ(cfg.readahead, 128u << 10, "last line without a newline");
	config_release(&cfg);

	CHECK_EQ(parse(&cfg, "[hooks]\non_register = /x\non_register_x = 1\n"),
		 -EINVAL, "a key with a known prefix is still unknown");
	config_release(&cfg);
}

/* [store] backend, [s3] and [cache] (issue 13). */
static void test_s3_keys(void)
{
	struct mreg_config cfg;

	config_init(&cfg);
	CHECK(cfg.backend == CONFIG_BACKEND_LOCAL && !cfg.s3_endpoint &&
	      !cfg.s3_bucket && !cfg.s3_region && cfg.s3_path_style &&
	      !cfg.s3_credentials && !cfg.s3_key_prefix &&
	      cfg.s3_gc_grace == 3600 && cfg.s3_timeout == 30 &&
	      !cfg.cache_path && cfg.cache_size == 10ULL << 30 &&
	      cfg.cache_min_free == 1ULL << 30 &&
	      cfg.cache_readahead == 16ULL << 20 &&
	      !cfg.cache_prefetch_on_promote, "s3 defaults: local, path "
	      "style, grace 1 h, timeout 30 s, STORE/cache of 10G leaving "
	      "1G free, 16M of read-ahead, no prefetch on promotion");
	config_release(&cfg);
	CHECK_EQ(parse(&cfg, "[store]\nbackend = s3\n"
		       "[s3]\nendpoint = http://127.0.0.1:7480\n"
		       "bucket = mreg\nregion = eu-west-1\n"
		       "path_style = no\n"
		       "credentials = /etc/mreg/s3.credentials\n"
		       "key_prefix = reg1/\ngc_grace = 600\ntimeout = 5\n"
		       "[cache]\npath = /var/cache/mreg\nsize = 50G\n"
		       "min_free = 0\nreadahead = 64M\nprefetch_on_promote = yes\n"), 0,
		 "every s3 and cache key");
	CHECK(cfg.backend == CONFIG_BACKEND_S3 &&
	      !strcmp(cfg.s3_endpoint, "http://127.0.0.1:7480") &&
	      !strcmp(cfg.s3_bucket, "mreg") &&
	      !strcmp(cfg.s3_region, "eu-west-1") && !cfg.s3_path_style &&
	      !strcmp(cfg.s3_credentials, "/etc/mreg/s3.credentials") &&
	      !strcmp(cfg.s3_key_prefix, "reg1/") && cfg.s3_gc_grace == 600 &&
	      cfg.s3_timeout == 5 &&
	      !strcmp(cfg.cache_path, "/var/cache/mreg") &&
	      cfg.cache_size == 50ULL << 30 && cfg.cache_min_free == 0 &&
	      cfg.cache_readahead == 64ULL << 20 &&
	      cfg.cache_prefetch_on_promote, "... each read");
	/* parsing works on a copy (config_copy) that replaces cfg */
	CHECK_EQ(config_parse(&cfg, "u.conf", "[log]\nlevel = info\n", 19,
			      err, sizeof(err)), 0, "a second file over it");
	CHECK(!strcmp(cfg.s3_bucket, "mreg") &&
	      !strcmp(cfg.s3_key_prefix, "reg1/") &&
	      !strcmp(cfg.cache_path, "/var/cache/mreg"),
	      "... keeps the s3 and cache strings");
	config_release(&cfg);
	CHECK(refused_with("[store]\nbackend = rados\n",
			   "t.conf:2: invalid value 'rados' for 'backend': "
			   "expected local or s3"), "an unknown backend");
	CHECK(refused_with("[s3]\nbucket = mreg\n[store]\nbackend = s3\n",
			   "t.conf:4: backend = s3 needs [s3] endpoint and "
			   "bucket"), "s3 without an endpoint, at the "
	      "backend's line");
	CHECK(refused_at("[s3]\nendpoint = http://h\n[store]\n"
			 "backend = s3\n", "t.conf:4: backend = s3 needs"),
	      "s3 without a bucket");
	CHECK(refused_with("[s3]\nbucket = \"my bucket\"\n",
			   "t.conf:2: invalid value 'my bucket' for 'bucket': "
			   "expected a value without blanks"),
	      "a bucket with a blank");
	CHECK(refused_with("[s3]\nkey_prefix = reg1\n",
			   "t.conf:2: invalid value 'reg1' for 'key_prefix': "
			   "expected a prefix ending in '/' (at most 1000 "
			   "bytes)"), "a key prefix without '/'");
	CHECK(refused_at("[s3]\ngc_grace = 5\n",
			 "t.conf:2: invalid value '5' for 'gc_grace': out of "
			 "range"), "a grace under a minute");
	CHECK(refused_at("[s3]\ncredentials = s3.cred\n",
			 "t.conf:2: invalid value 's3.cred' for "
			 "'credentials': not an absolute path"),
	      "a relative credentials file");
	CHECK(refused_at("[cache]\nreadahead = 2G\n", "t.conf:2: "),
	      "[cache] readahead past 1G");
	CHECK_EQ(parse(&cfg, "[cache]\nreadahead = 0\n"), 0,
		 "[cache] readahead = 0: none");
	CHECK(cfg.cache_readahead == 0, "... read");
	config_release(&cfg);
	CHECK(refused_at("[cache]\nsize = 1K\n",
			 "t.conf:2: invalid value '1K' for 'size': out of "
			 "range"), "a cache under 1M");
	CHECK(refused_with("[cache]\nsize = 1G\nsize = 2G\n",
			   "t.conf:3: duplicate key 'size' in [cache]"),
	      "a key twice in [cache] (keys past the 32nd of the table)");
	CHECK(refused_with("[s3]\n[s3]\n",
			   "t.conf:2: duplicate section [s3]"),
	      "[s3] twice");
}

static void test_errors(void)
{
	struct mreg_config cfg;

	CHECK(refused_with("[hooks]\non_promote = hook.sh\n",
			   "t.conf:2: invalid value 'hook.sh' for "
			   "'on_promote': not an absolute path or an "
			   "https:// URL"),
	      "a relative hook program");
	CHECK(refused_at("[limits]\nopen_files_per_user = 0\n",
			 "t.conf:2: invalid value '0' for "
			 "'open_files_per_user': out of range"),
	      "open_files_per_user 0");
	CHECK(refused_at("[limits]\nopen_files_reserve = 8\n",
			 "t.conf:2: invalid value '8' for "
			 "'open_files_reserve': out of range"),
	      "open_files_reserve below 16");
	CHECK(refused_with("[serve]\npath = cache\n",
			   "t.conf:2: invalid value 'cache' for 'path': not "
			   "an absolute path"),
	      "a relative serving cache");
	CHECK(refused_at("[serve]\nsize = lots\n",
			 "t.conf:2: invalid value 'lots' for 'size'"),
	      "a serving cache size that is not a size");
	CHECK(refused_at("[serve]\npassthrough = maybe\n",
			 "t.conf:2: invalid value 'maybe' for 'passthrough'"),
	      "passthrough that is not a boolean");

	CHECK(refused_with("[store]\npath = /x\nfoo = 1\n",
			   "t.conf:3: unknown key 'foo' in [store]"),
	      "unknown key names file, line and section");
	CHECK(refused_with("# c\n[bogus]\n", "t.conf:2: unknown section [bogus]"),
	      "unknown section");
	CHECK(refused_with("[store]\npack_size 64M\n",
			   "t.conf:2: missing '=' in 'pack_size 64M'"),
	      "missing '='");
	CHECK(refused_with("path = /x\n",
			   "t.conf:1: key 'path' outside a section"),
	      "key before any section");
	CHECK(refused_with("[stage Production]\nprotect = true\n\n"
			   "[stage Production]\n",
			   "t.conf:4: duplicate section [stage Production]"),
	      "duplicate stage section");
	CHECK(refused_with("[stage Production]\nprotect = true\n\n"
			   "[stage production]\n",
			   "t.conf:4: duplicate section [stage production] (the "
			   "same as [stage Production]: stage names are "
			   "compared regardless of case)"),
	      "a stage section in other case is a duplicate");
	CHECK(refused_with("[store]\n[log]\n[store]\n",
			   "t.conf:3: duplicate section [store]"),
	      "duplicate section");
	CHECK(refused_with("[store]\npack_size = 1M\npack_size = 2M\n",
			   "t.conf:3: duplicate key 'pack_size' in [store]"),
	      "duplicate key");
	CHECK(refused_with("[stage Production]\nowner = x\n",
			   "t.conf:2: unknown key 'owner' in "
			   "[stage Production]"),
	      "unknown key in a stage section");
	CHECK(refused_with("[store]\npack_size = lots\n",
			   "t.conf:2: invalid value 'lots' for 'pack_size': "
			   "expected a size such as 64K, 16M or 1G"),
	      "bad size");
	CHECK(refused_with("[store]\npack_size = 4K\n",
			   "t.conf:2: invalid value '4K' for 'pack_size': "
			   "out of range (1048576 to 68719476736)"),
	      "size out of range");
	CHECK(refused_with("[store]\ndedup_verify = maybe\n",
			   "t.conf:2: invalid value 'maybe' for "
			   "'dedup_verify': expected true/false, yes/no, "
			   "on/off or 1/0"),
	      "bad boolean");
	CHECK(refused_with("[store]\ndurability = some\n",
			   "t.conf:2: invalid value 'some' for 'durability': "
			   "expected full or none"),
	      "bad durability");
	CHECK(refused_with("[log]\nlevel = loud\n",
			   "t.conf:2: invalid value 'loud' for 'level': "
			   "expected error, warn, info or debug"),
	      "bad log level");
	CHECK(refused_with("[store]\npath = relative/dir\n",
			   "t.conf:2: invalid value 'relative/dir' for "
			   "'path': not an absolute path"),
	      "relative store path");
	CHECK(refused_with("[stage .hidden]\n",
			   "t.conf:1: invalid stage name '.hidden'"),
	      "stage name starting with '.'");
	CHECK(refused_at("[stage -x]\n", "t.conf:1: invalid stage name"),
	      "stage name starting with '-'");
	CHECK(refused_at("[stage a/b]\n", "t.conf:1: invalid stage name"),
	      "stage name with '/'");
	{
		char hdr[96], body[66];

		memset(body, 'x', 65);
		body[65] = '\0';
		snprintf(hdr, sizeof(hdr), "[stage %s]\n", body);
		CHECK(refused_at(hdr, "t.conf:1: invalid stage name"),
		      "stage name of 65 bytes");
		body[64] = '\0';
		snprintf(hdr, sizeof(hdr), "[stage %s]\n", body);
		CHECK_EQ(parse(&cfg, hdr), 0, "stage name of 64 bytes");
		CHECK(config_stage(&cfg, body) != NULL, "and found by name");
		config_release(&cfg);
	}
	CHECK(refused_with("[stage]\n",
			   "t.conf:1: missing stage name in [stage NAME]"),
	      "stage without a name");
	CHECK(refused_at("[stage P]\nrequire_stage = no/pe\n",
			 "t.conf:2: invalid value 'no/pe' for "
			 "'require_stage'"),
	      "require_stage must be a stage name");
	CHECK(refused_at("[stage P]\nrequire_stage = P\n",
			 "t.conf:2: invalid value 'P' for 'require_stage'"),
	      "a stage cannot require itself");
	CHECK(refused_with("[stage P]\nrequire_metric = auc is high\n",
			   "t.conf:2: invalid value 'auc is high' for "
			   "'require_metric': expected 'metric op number', "
			   "e.g. 'auc >= 0.9'"),
	      "bad require_metric");
	CHECK(refused_at("[stage P]\nrequire_metric = auc >= nan\n",
			 "t.conf:2: invalid value"), "metric against nan");
	CHECK(refused_at("[stage P]\nrequire_metric = auc == 1\n",
			 "t.conf:2: invalid value"), "operator '=='");
	CHECK(refused_at("[stage P]\nrequire_metric = >= 1\n",
			 "t.conf:2: invalid value"), "metric without a key");
	CHECK(refused_with("[stage P]\npromote_users = a,,b\n",
			   "t.conf:2: invalid value 'a,,b' for "
			   "'promote_users': empty name in list"),
	      "empty list item");
	CHECK(refused_at("[stage P]\npromote_groups =\n",
			 "t.conf:2: invalid value '' for 'promote_groups'"),
	      "empty list");
	CHECK(refused_at("[stage P]\npromote_users = al ice\n",
			 "t.conf:2: invalid value"), "blank inside a name");
	CHECK(refused_with("[store]\npath = \"/x\n",
			   "t.conf:2: unterminated quoted value"),
	      "unterminated quote");
	CHECK(refused_with("[store]\npath = \"/x\" y\n",
			   "t.conf:2: unexpected text after quoted value"),
	      "text after a quoted value");
	CHECK(refused_with("[store\n",
			   "t.conf:1: missing ']' in section header"),
	      "missing ']'");
	CHECK(refused_with("[store] x\n", "t.conf:1: unexpected text after ']'"),
	      "text after ']'");
	CHECK(refused_with("[store]\n = 3\n", "t.conf:2: missing key before '='"),
	      "empty key");
	CHECK(refused_at("[mount]\nmax_threads = 0\n",
			 "t.conf:2: invalid value '0' for 'max_threads'"),
	      "max_threads 0");
	CHECK(refused_at("[mount]\nmax_threads = 4K\n",
			 "t.conf:2: invalid value '4K' for 'max_threads': "
			 "expected a number"), "max_threads takes no suffix");
	CHECK(refused_at("[hooks]\ntimeout = -1\n",
			 "t.conf:2: invalid value '-1' for 'timeout'"),
	      "negative timeout");
	CHECK(refused_with("[chunker]\nmin_size = 16K\navg_size = 48K\n"
			   "max_size = 256K\n\n[log]\n",
			   "t.conf:4: invalid [chunker] sizes 16384/49152/"
			   "262144: need 64 <= min_size < avg_size < "
			   "max_size <= 64M, avg_size a power of two"),
	      "chunker sizes checked together, at the last chunker line");
	CHECK(refused_at("[chunker]\nmax_size = 32K\n",
			 "t.conf:2: invalid [chunker] sizes"),
	      "max below the default avg");
	CHECK(refused_at("[chunker]\nmax_size = 5G\n",
			 "t.conf:2: invalid value '5G' for 'max_size'"),
	      "chunker size over 32 bits");
	CHECK(refused_with("[mount]\nallow_other = true\n"
			   "default_permissions = false\n",
			   "t.conf:3: allow_other needs default_permissions "
			   "= true"),
	      "allow_other without default_permissions");
	CHECK(refused_with("[log]\nlevel = debug\n\x01\n[x",
			   "t.conf:3: missing '=' in '\x01'"),
	      "line numbers count every line");
	{
		static const char nul[] = "[log]\nlevel = info\0\n";

		config_init(&cfg);
		CHECK_EQ(config_parse(&cfg, "t.conf", nul, sizeof(nul) - 1,
				      err, sizeof(err)), -EINVAL,
			 "a nul byte is refused");
		CHECK(!strcmp(err, "t.conf:2: nul byte in file"),
		      "nul byte: '%s'", err);
		config_release(&cfg);
	}
}

/* A refused file changes nothing; a good second file changes only what it
 * names, and replaces a stage section wholesale. */
static void test_layering(void)
{
	struct mreg_config cfg;
	const struct stage_policy *sp;
	static const char one[] = "[store]\npack_size = 8M\n"
				  "[stage Production]\nprotect = true\n"
				  "promote_users = alice\n";
	static const char bad[] = "[store]\npack_size = 16M\nbogus = 1\n";
	static const char two[] = "[log]\nlevel = error\n"
				  "[stage Production]\nrequire_stage = QA\n";
	char small[16];

	CHECK_EQ(parse(&cfg, one), 0, "first file");
	CHECK_EQ(config_parse(&cfg, "bad.conf", bad, strlen(bad), err,
			      sizeof(err)), -EINVAL, "second file refused");
	CHECK_EQ(cfg.pack_size, 8u << 20, "refused file left cfg as it was");
	CHECK_EQ(config_parse(&cfg, "two.conf", two, strlen(two), err,
			      sizeof(err)), 0, "third file");
	CHECK(cfg.pack_size == 8u << 20 && cfg.log_level == LOG_LVL_ERROR,
	      "keys not in a file keep their values");
	sp = config_stage(&cfg, "Production");
	CHECK(cfg.nstages == 1 && sp && !sp->protect && !sp->promote_users &&
	      !strcmp(sp->require_stage, "QA"),
	      "a later [stage] section replaces the earlier one");
	config_release(&cfg);
	CHECK(cfg.nstages == 0 && !cfg.stages, "config_release() empties");

	/* A short err buffer is cut, never overrun. */
	config_init(&cfg);
	CHECK_EQ(config_parse(&cfg, "t.conf", bad, strlen(bad), small,
			      sizeof(small)), -EINVAL, "short err buffer");
	CHECK(strlen(small) < sizeof(small), "message cut to fit");
	CHECK_EQ(config_parse(&cfg, "t.conf", bad, strlen(bad), NULL, 0),
		 -EINVAL, "no err buffer at all");
	CHECK_EQ(config_parse(NULL, "t.conf", "", 0, err, sizeof(err)),
		 -EINVAL, "NULL cfg refused");
	config_release(&cfg);
	config_release(NULL);
}

static void test_metric_rule(void)
{
	struct metric_rule r;

	CHECK(config_parse_metric_rule("auc >= 0.9", &r) == 0 &&
	      !strcmp(r.key, "auc") && !strcmp(r.op, ">=") && r.value == 0.9,
	      "auc >= 0.9");
	CHECK(config_parse_metric_rule("val.loss<1e-2", &r) == 0 &&
	      !strcmp(r.key, "val.loss") && !strcmp(r.op, "<") &&
	      r.value == 1e-2, "val.loss<1e-2");
	CHECK(config_parse_metric_rule("f1 != -3", &r) == 0 &&
	      !strcmp(r.op, "!=") && r.value == -3, "f1 != -3");
	CHECK(config_parse_metric_rule("x = 2", &r) == 0 &&
	      !strcmp(r.op, "="), "x = 2");
	CHECK_EQ(config_parse_metric_rule("x >= 0x10", &r), -EINVAL, "hex");
	CHECK_EQ(config_parse_metric_rule("x >= inf", &r), -EINVAL, "inf");
	CHECK_EQ(config_parse_metric_rule("x >= 1e999", &r), -EINVAL,
		 "overflowing number");
	CHECK_EQ(config_parse_metric_rule("x => 1", &r), -EINVAL, "'=>'");
	CHECK_EQ(config_parse_metric_rule("x >= 1 2", &r), -EINVAL,
		 "trailing text");
	CHECK_EQ(config_parse_metric_rule("", &r), -EINVAL, "empty rule");
	config_parse_metric_rule("auc >= 0.9", &r);
	CHECK(config_metric_rule_holds(&r, 0.9) &&
	      config_metric_rule_holds(&r, 0.95) &&
	      !config_metric_rule_holds(&r, 0.89), ">= holds as it should");
	config_parse_metric_rule("loss < 0.1", &r);
	CHECK(config_metric_rule_holds(&r, 0.05) &&
	      !config_metric_rule_holds(&r, 0.1), "< holds as it should");
}

/* The whole of file path (aborts when it cannot be read). */
static char *slurp(const char *path, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "r");

	if (!f || getdelim(&buf, &len, '\0', f) < 0)
		abort();
	fclose(f);
	*ret_len = strlen(buf);
	return buf;
}

static void test_example(void)
{
	const char *top = getenv("MREG_TOP");
	struct mreg_config cfg, dflt;
	const struct stage_policy *sp;
	char *path, *text;
	size_t len;
	int r;

	if (asprintf(&path, "%s/mreg.conf.example", top ? top : ".") < 0)
		abort();
	config_init(&cfg);
	config_init(&dflt);
	/* parsed, not loaded: its policy names groups (mlops) that this
	 * machine need not have, which config_load() would refuse */
	text = slurp(path, &len);
	r = config_parse(&cfg, path, text, len, err, sizeof(err));
	CHECK_EQ(r, 0, "mreg.conf.example parses");
	if (r < 0)
		printf("#   %s\n", err);
	CHECK(cfg.pack_size == dflt.pack_size &&
	      cfg.dedup_verify == dflt.dedup_verify &&
	      cfg.durability == dflt.durability &&
	      cfg.map_size == dflt.map_size &&
	      !memcmp(&cfg.chunker, &dflt.chunker, sizeof(cfg.chunker)) &&
	      cfg.allow_other == dflt.allow_other &&
	      cfg.default_permissions == dflt.default_permissions &&
	      cfg.readahead == dflt.readahead &&
	      cfg.max_threads == dflt.max_threads &&
	      cfg.log_level == dflt.log_level && !cfg.store &&
	      cfg.hook_timeout == dflt.hook_timeout &&
	      !cfg.hook_secret_file && !cfg.hook_ca_file &&
	      cfg.hook_attempts == dflt.hook_attempts &&
	      cfg.hook_attempt_timeout == dflt.hook_attempt_timeout &&
	      cfg.open_files_per_user == dflt.open_files_per_user &&
	      cfg.open_files_reserve == dflt.open_files_reserve &&
	      cfg.backend == dflt.backend && !cfg.s3_endpoint &&
	      !cfg.s3_bucket && cfg.s3_path_style == dflt.s3_path_style &&
	      cfg.s3_gc_grace == dflt.s3_gc_grace && !cfg.cache_path &&
	      cfg.cache_size == dflt.cache_size &&
	      cfg.cache_min_free == dflt.cache_min_free &&
	      cfg.cache_readahead == dflt.cache_readahead &&
	      cfg.cache_prefetch_on_promote == dflt.cache_prefetch_on_promote,
	      "the example sets no key away from its default");
	sp = config_stage(&cfg, "Production");
	CHECK(sp && sp->protect && !strcmp(sp->require_stage, "Staging") &&
	      sp->promote_groups && sp->require_metric,
	      "the example's [stage Production]");
	CHECK(config_stage(&cfg, "Staging") != NULL,
	      "the example's [stage Staging]");
	config_release(&cfg);
	config_release(&dflt);
	free(text);
	free(path);
}

/* Writes text to dir/name with mode; the path, to free. */
static char *put_file(const char *dir, const char *name, const char *text,
		      mode_t mode)
{
	char *p;
	int fd;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		abort();
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, strlen(text)) < 0 || fchmod(fd, mode) < 0)
		abort();
	close(fd);
	return p;
}

/* config_load() against the machine: the file's and the hooks' trust, a
 * policy's users and groups. */
static void test_machine(void)
{
	char *dir = check_tmpdir("config"), *f, *hook, *text, *sub;
	struct mreg_config cfg;

	config_init(&cfg);
	f = put_file(dir, "g.conf", "[log]\nlevel = info\n", 0664);
	CHECK_EQ(config_load(&cfg, f, err, sizeof(err)), -EPERM,
		 "a group-writable config: -EPERM");
	CHECK(strstr(err, "g.conf: refused: '") &&
	      strstr(err, "g.conf' is writable by group (mode 0664)"),
	      "naming the file and why: '%s'", err);
	CHECK(cfg.log_level == LOG_LVL_WARN && !cfg.path, "cfg untouched");
	free(f);

	f = put_file(dir, "u.conf", "[stage P]\npromote_groups = root\n"
		     "promote_users = root, mregt-no-such-user\n", 0644);
	CHECK_EQ(config_load(&cfg, f, err, sizeof(err)), -EINVAL,
		 "an unknown user: -EINVAL");
	CHECK(strstr(err, "u.conf:3: unknown user 'mregt-no-such-user' in "
		     "'promote_users'") != NULL, "names it: '%s'", err);
	config_release(&cfg);
	CHECK_EQ(parse(&cfg, "[stage P]\npromote_users = "
		       "mregt-no-such-user\n"), 0,
		 "config_parse() alone does not look");
	config_release(&cfg);
	config_init(&cfg);
	free(f);
	f = put_file(dir, "g2.conf", "[stage P]\npromote_groups = "
		     "mregt-no-such-group\n", 0644);
	CHECK_EQ(config_load(&cfg, f, err, sizeof(err)), -EINVAL,
		 "an unknown group: -EINVAL");
	CHECK(strstr(err, "g2.conf:2: unknown group 'mregt-no-such-group'") !=
	      NULL, "names it: '%s'", err);
	free(f);

	hook = put_file(dir, "hook.sh", "#!/bin/sh\n", 0775);
	if (asprintf(&text, "[hooks]\non_register = %s\n", hook) < 0)
		abort();
	f = put_file(dir, "h.conf", text, 0644);
	CHECK_EQ(config_load(&cfg, f, err, sizeof(err)), -EINVAL,
		 "a group-writable hook: -EINVAL");
	CHECK(strstr(err, "h.conf:2: invalid value '") &&
	      strstr(err, "is writable by group (mode 0775)"),
	      "names the line and why: '%s'", err);
	chmod(hook, 0755);
	CHECK_EQ(config_load(&cfg, f, err, sizeof(err)), 0,
		 "a hook only its owner may write: loaded ('%s')", err);
	CHECK(cfg.on_register && !strcmp(cfg.on_register, hook),
	      "on_register set");

	CHECK_EQ(config_program_trusted("hook.sh", err, sizeof(err)), -EINVAL,
		 "config_program_trusted: relative is -EINVAL");
	CHECK(strstr(err, "not an absolute path") != NULL, "'%s'", err);
	chmod(hook, 0644);
	CHECK_EQ(config_program_trusted(hook, err, sizeof(err)), -EACCES,
		 "not executable: -EACCES");
	chmod(hook, 0755);
	CHECK_EQ(config_program_trusted(hook, NULL, 0), 0, "executable: 0");
	if (asprintf(&sub, "%s/missing", dir) < 0)
		abort();
	CHECK_EQ(config_program_trusted(sub, err, sizeof(err)), -ENOENT,
		 "missing: -ENOENT");
	free(sub);
	chmod(dir, 0777);
	CHECK_EQ(config_path_trusted(hook, err, sizeof(err)), -EPERM,
		 "a file in a world-writable directory: -EPERM");
	CHECK(strstr(err, "' is writable by others (mode 0777)") != NULL,
	      "'%s'", err);
	chmod(dir, 01777);
	CHECK_EQ(config_path_trusted(hook, err, sizeof(err)), 0,
		 "in a sticky one: 0 ('%s')", err);
	chmod(dir, 0700);
	if (asprintf(&sub, "%s/link", dir) < 0 || symlink(hook, sub) < 0)
		abort();
	CHECK_EQ(config_program_trusted(sub, err, sizeof(err)), 0,
		 "a symlink to a trusted program: 0 ('%s')", err);
	free(sub);
	config_release(&cfg);
	check_rmtree(dir);
	free(text);
	free(hook);
	free(f);
	free(dir);
}

/* Hooks that are URLs: the URL rule at the config line, whatever file
 * (a config or the policy stored in the registry); against the machine,
 * a URL needs a secret file that nobody else may read. */
static void test_hook_urls(void)
{
	char *dir = check_tmpdir("config"), *f, *secret, *ca, *text;
	struct mreg_config cfg;

	CHECK_EQ(parse(&cfg, "[hooks]\non_register = https://ci.example.com/"
		       "hook?token=x\non_promote = http://127.0.0.1:8080/r\n"
		       "attempts = 2\nattempt_timeout = 3\n"), 0,
		 "an https URL and an http one to loopback");
	CHECK(cfg.on_register && !strcmp(cfg.on_register,
	      "https://ci.example.com/hook?token=x") && cfg.on_promote &&
	      cfg.hook_attempts == 2 && cfg.hook_attempt_timeout == 3,
	      "kept as written, with attempts and attempt_timeout");
	config_release(&cfg);
	CHECK(refused_with("[hooks]\n\non_promote = http://10.1.2.3/deploy\n",
			   "t.conf:3: invalid value 'http://10.1.2.3/deploy' "
			   "for 'on_promote': http:// is for a loopback "
			   "address only (127.0.0.0/8 or [::1]): use https:// "
			   "for '10.1.2.3'"),
	      "http to another host: FILE:LINE and why");
	CHECK(refused_at("[hooks]\non_register = ftp://h/x\n",
			 "t.conf:2: invalid value 'ftp://h/x' for "
			 "'on_register': a hook URL is https://"),
	      "another scheme");
	CHECK(refused_at("[hooks]\non_register = https://u:p@h/x\n",
			 "t.conf:2: invalid value 'https://u:p@h/x' for "
			 "'on_register': a hook URL holds no user"),
	      "a user and password in the URL");
	CHECK(refused_at("[hooks]\nattempts = 0\n",
			 "t.conf:2: invalid value '0' for 'attempts': out of "
			 "range (1 to 20)"), "attempts 0");
	CHECK(refused_at("[hooks]\nsecret_file = secret\n",
			 "t.conf:2: invalid value 'secret' for 'secret_file': "
			 "not an absolute path"), "a relative secret file");

	config_init(&cfg);
	f = put_file(dir, "n.conf", "# a URL, no secret\n[hooks]\n"
		     "on_promote = https://h/x\n", 0644);
	CHECK_EQ(config_load(&cfg, f, err, sizeof(err)), -EINVAL,
		 "a URL hook without a secret file: -EINVAL");
	CHECK(strstr(err, "n.conf:3: a hook URL needs [hooks] secret_file") !=
	      NULL, "at the URL's line: '%s'", err);
	free(f);
	CHECK_EQ(parse(&cfg, "[hooks]\non_promote = https://h/x\n"), 0,
		 "config_parse() alone does not ask (the registry's stored "
		 "policy holds no secret)");
	config_release(&cfg);
	config_init(&cfg);

	secret = put_file(dir, "secret", "s3cr3t\n", 0644);
	if (asprintf(&text, "[hooks]\non_promote = https://h/x\n"
		     "secret_file = %s\n", secret) < 0)
		abort();
	f = put_file(dir, "s.conf", text, 0644);
	CHECK_EQ(config_load(&cfg, f, err, sizeof(err)), -EINVAL,
		 "a secret file others may read: -EINVAL");
	CHECK(strstr(err, "s.conf:3: invalid value '") &&
	      strstr(err, "for 'secret_file': secret file '") &&
	      strstr(err, "is open to others (mode 0644): chmod 600 it"),
	      "at its line, with the mode and the fix: '%s'", err);
	chmod(secret, 0640);
	CHECK_EQ(config_load(&cfg, f, err, sizeof(err)), -EINVAL,
		 "one its group may read: -EINVAL");
	CHECK(strstr(err, "is open to its group (mode 0640)") != NULL,
	      "'%s'", err);
	chmod(secret, 0600);
	CHECK_EQ(config_load(&cfg, f, err, sizeof(err)), 0,
		 "mode 0600: loaded ('%s')", err);
	CHECK(cfg.hook_secret_file && !strcmp(cfg.hook_secret_file, secret),
	      "secret_file set");
	config_release(&cfg);
	config_init(&cfg);
	free(f);
	free(text);

	ca = put_file(dir, "ca.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
	if (asprintf(&text, "[hooks]\nca_file = %s/none.pem\n", dir) < 0)
		abort();
	f = put_file(dir, "c.conf", text, 0644);
	CHECK_EQ(config_load(&cfg, f, err, sizeof(err)), -EINVAL,
		 "a CA file that is not there: -EINVAL");
	CHECK(strstr(err, "c.conf:2: invalid value '") &&
	      strstr(err, "No such file or directory"), "'%s'", err);
	free(f);
	free(text);
	if (asprintf(&text, "[hooks]\nca_file = %s\n", ca) < 0)
		abort();
	f = put_file(dir, "c2.conf", text, 0644);
	CHECK_EQ(config_load(&cfg, f, err, sizeof(err)), 0,
		 "one that is: loaded ('%s')", err);
	config_release(&cfg);
	free(f);
	free(text);
	free(ca);
	free(secret);
	check_rmtree(dir);
	free(dir);
}

/* config_secret_read(): what a secret is, and which files may hold one. */
static void test_secret(void)
{
	char *dir = check_tmpdir("config"), *p, buf[CONFIG_SECRET_MAX], *big;
	char why[512];
	int n;

	p = put_file(dir, "s", "abc\r\n\n", 0600);
	n = config_secret_read(p, buf, sizeof(buf), why, sizeof(why));
	CHECK(n == 3 && !memcmp(buf, "abc", 3),
	      "the bytes without the line ends at the end (%d)", n);
	CHECK_EQ(config_secret_read(p, NULL, 0, NULL, 0), 3,
		 "a check only: buf and why may be NULL");
	CHECK_EQ(config_secret_read(p, buf, 2, why, sizeof(why)), -ERANGE,
		 "a buffer too small: -ERANGE");
	free(p);
	p = put_file(dir, "e", "\n", 0600);
	CHECK(config_secret_read(p, buf, sizeof(buf), why, sizeof(why)) ==
	      -EINVAL && strstr(why, "is empty"), "an empty one: '%s'", why);
	free(p);
	big = malloc(CONFIG_SECRET_MAX + 3);
	memset(big, 'k', CONFIG_SECRET_MAX);
	strcpy(big + CONFIG_SECRET_MAX, "\r\n");
	p = put_file(dir, "b", big, 0400);
	CHECK_EQ(config_secret_read(p, buf, sizeof(buf), why, sizeof(why)),
		 CONFIG_SECRET_MAX, "%d bytes and a CR LF: read (mode 0400)",
		 CONFIG_SECRET_MAX);
	free(p);
	big[CONFIG_SECRET_MAX] = 'k';
	p = put_file(dir, "b2", big, 0600);
	CHECK(config_secret_read(p, buf, sizeof(buf), why, sizeof(why)) ==
	      -EFBIG && strstr(why, "holds more than 1024 bytes"),
	      "one more byte: '%s'", why);
	free(p);
	free(big);
	CHECK(config_secret_read(dir, buf, sizeof(buf), why, sizeof(why)) ==
	      -EINVAL && strstr(why, "is not a regular file"), "'%s'", why);
	if (asprintf(&p, "%s/none", dir) < 0)
		abort();
	CHECK(config_secret_read(p, buf, sizeof(buf), why, sizeof(why)) ==
	      -ENOENT && strstr(why, "No such file"), "'%s'", why);
	free(p);
	p = put_file(dir, "o", "x", 0600);
	if (geteuid() == 0 && chown(p, 12345, 12345) == 0) {
		CHECK(config_secret_read(p, buf, sizeof(buf), why,
					 sizeof(why)) == -EPERM &&
		      strstr(why, "is owned by uid 12345"),
		      "another user's: '%s'", why);
	} else {
		CHECK(1, "another user's # SKIP not root");
	}
	free(p);
	check_rmtree(dir);
	free(dir);
}

static void test_load(void)
{
	char *dir = check_tmpdir("config");
	char *f, *missing;
	struct mreg_config cfg;
	int fd;
	static const char text[] = "[store]\nbogus = 1\n";

	if (asprintf(&f, "%s/mreg.conf", dir) < 0 ||
	    asprintf(&missing, "%s/none.conf", dir) < 0)
		abort();
	fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, text, sizeof(text) - 1) < 0)
		abort();
	close(fd);

	config_init(&cfg);
	CHECK_EQ(config_load(&cfg, f, err, sizeof(err)), -EINVAL,
		 "a bad file is refused");
	{
		char *want;

		if (asprintf(&want, "%s:2: unknown key 'bogus' in [store]",
			     f) < 0)
			abort();
		CHECK(!strcmp(err, want), "its message names the path: '%s'",
		      err);
		free(want);
	}
	CHECK(cfg.path == NULL, "cfg untouched");
	CHECK_EQ(config_load(&cfg, missing, err, sizeof(err)), -ENOENT,
		 "a missing file: -ENOENT");
	CHECK(strstr(err, "none.conf: No such file or directory") != NULL,
	      "and says so: '%s'", err);
	CHECK_EQ(config_load(&cfg, dir, err, sizeof(err)), -EISDIR,
		 "a directory: -EISDIR");
	CHECK_EQ(config_load(&cfg, "", err, sizeof(err)), -EINVAL,
		 "an empty path: -EINVAL");
	config_release(&cfg);
	check_rmtree(dir);
	free(f);
	free(missing);
	free(dir);
}

/* Sets or clears an environment variable. */
static void env(const char *name, const char *value)
{
	if (value)
		setenv(name, value, 1);
	else
		unsetenv(name);
}

static bool is(char *got, const char *want)
{
	bool ok = got && !strcmp(got, want);

	if (!ok)
		printf("#   got '%s', want '%s'\n", got ? got : "(null)", want);
	free(got);
	return ok;
}

static void test_store_path(void)
{
	struct mreg_config cfg;
	char *cwd = getcwd(NULL, 0), *want;
	bool as_user = false;

	config_init(&cfg);
	cfg.store = strdup("/from/config");
	env("MREG_STORE", "/from/env");
	CHECK(is(config_store_path(&cfg, "/explicit"), "/explicit"),
	      "explicit wins over everything");
	CHECK(is(config_store_path(&cfg, NULL), "/from/env"),
	      "then $MREG_STORE");
	CHECK(is(config_store_path(&cfg, ""), "/from/env"),
	      "an empty explicit path counts as none");
	env("MREG_STORE", "");
	CHECK(is(config_store_path(&cfg, NULL), "/from/config"),
	      "then cfg->store (an empty $MREG_STORE is unset)");
	env("MREG_STORE", NULL);
	CHECK(is(config_store_path(&cfg, NULL), "/from/config"),
	      "cfg->store without $MREG_STORE");
	free(cfg.store);
	cfg.store = NULL;

	if (asprintf(&want, "%s/rel/store", cwd) < 0)
		abort();
	CHECK(is(config_store_path(&cfg, "rel/store"), want),
	      "a relative path is made absolute");
	free(want);

	if (geteuid() == 0) {
		CHECK(is(config_store_path(&cfg, NULL), "/var/lib/mreg"),
		      "root's default: /var/lib/mreg");
		CHECK(is(config_store_path(NULL, NULL), "/var/lib/mreg"),
		      "NULL cfg: the default");
		/* The real uid stays 0, so this can be undone below. */
		as_user = seteuid(65534) == 0;
	}
	if (geteuid() != 0) {
		env("XDG_DATA_HOME", "/xdg");
		CHECK(is(config_store_path(&cfg, NULL), "/xdg/mreg"),
		      "user default: $XDG_DATA_HOME/mreg");
		env("XDG_DATA_HOME", "relative");
		env("HOME", "/home/u");
		CHECK(is(config_store_path(&cfg, NULL),
			 "/home/u/.local/share/mreg"),
		      "a relative $XDG_DATA_HOME is ignored");
		env("XDG_DATA_HOME", NULL);
		CHECK(is(config_store_path(NULL, NULL),
			 "/home/u/.local/share/mreg"),
		      "user default: ~/.local/share/mreg");
	}
	if (as_user && seteuid(0) < 0)
		abort();
	config_release(&cfg);
	free(cwd);
}

int main(void)
{
	test_defaults();
	test_every_key();
	test_sizes_bools();
	test_syntax();
	test_s3_keys();
	test_errors();
	test_layering();
	test_metric_rule();
	test_example();
	test_machine();
	test_hook_urls();
	test_secret();
	test_load();
	test_store_path();
	return check_done();
}
