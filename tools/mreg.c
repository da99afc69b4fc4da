/* mreg.c — the mreg command: what a filesystem call cannot say well
 * (push with metadata, search, history, rollback, audit, fsck, gc, stats).
 *
 * This file holds the command table, option parsing, usage texts, the
 * choice of store and config, and the one place where a negative errno
 * from core becomes a sentence and an exit status. The commands live in
 * mreg-write.c (changes), mreg-read.c (listings) and mreg-maint.c (stats,
 * fsck, gc); output helpers in mreg-out.c. When the store named is an
 * mregfs mount, the commands work through it (mreg-backend.c picks,
 * mreg-mount.c says each command as file system calls).
 *
 * Exit status (also in `mreg help`):
 *	0  success
 *	1  the operation failed: one line on stderr, "mreg: CMD: reason"
 *	2  usage error: unknown command or option, bad or missing argument,
 *	   malformed search query, bad config file
 *	3  fsck or audit --verify found damage
 *
 * While not -v, what core logs goes to a memory stream instead of the
 * terminal: the user gets one line per failure, written here with the
 * subject named, and core's reason is folded into it where it adds
 * something (a policy refusal, a store that will not open).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mreg.h"

/* ---- memory ----------------------------------------------------------- */

void die_oom(void)
{
	static const char msg[] = "mreg: out of memory\n";

	/* write(2): stdio may need the memory there is not; if even that
	   fails there is nothing left to tell */
	ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);

	(void)n;
	_exit(EXIT_FAIL);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die_oom();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		die_oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die_oom();
	return p;
}

char *xstrdup(const char *s)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		die_oom();
	return d;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		die_oom();
	return s;
}

/* ---- the command table -------------------------------------------------- */

static const struct optdef global_opts[] = {
	{ "store", 0, true, OPT_STORE, "--store DIR" },
	{ "config", 'c', true, OPT_CONFIG, "-c, --config FILE" },
	{ "json", 0, false, OPT_JSON, "--json" },
	{ "quiet", 'q', false, OPT_QUIET, "-q, --quiet" },
	{ "verbose", 'v', false, OPT_VERBOSE, "-v, --verbose" },
	{ "help", 'h', false, OPT_HELP, "-h, --help" },
	{ NULL, 0, false, 0, NULL },
};

static const struct optdef push_opts[] = {
	{ "version", 0, true, OPT_VERSION,
	  "--version V         the version name (default: the next integer)" },
	{ "metric", 0, true, OPT_METRIC,
	  "--metric K=V        a metric: V a decimal number (metric.K)" },
	{ "tag", 0, true, OPT_TAG,
	  "--tag K=V           a string tag (tag.K)" },
	{ "param", 0, true, OPT_PARAM,
	  "--param K=V         a training parameter (param.K)" },
	{ "lineage", 0, true, OPT_LINEAGE,
	  "--lineage K=V       provenance: git_commit, dataset, run_id, ..." },
	{ "description", 0, true, OPT_DESCRIPTION,
	  "--description TEXT  free text" },
	{ NULL, 0, false, 0, NULL },
};

static const struct optdef cat_opts[] = {
	{ "output", 'o', true, OPT_OUTPUT,
	  "-o, --output FILE   write to FILE (complete or not at all)" },
	{ NULL, 0, false, 0, NULL },
};

static const struct optdef rm_opts[] = {
	{ "stage", 0, true, OPT_STAGE,
	  "--stage STAGE       remove this stage of MODEL (not a version)" },
	{ NULL, 0, false, 0, NULL },
};

static const struct optdef audit_opts[] = {
	{ "since", 0, true, OPT_SINCE,
	  "--since SEQ         records from sequence number SEQ on" },
	{ "model", 0, true, OPT_MODEL,
	  "--model MODEL       records about MODEL only" },
	{ "user", 0, true, OPT_USER,
	  "--user USER         records of USER (a name or a uid) only" },
	{ "verify", 0, false, OPT_VERIFY,
	  "--verify            check the hash chain; exit 3 when broken" },
	{ "head", 0, false, OPT_HEAD,
	  "--head              print the head (SEQ:HASH) to keep elsewhere;\n"
	  "                      with --verify, check that the head given\n"
	  "                      (--verify --head SEQ:HASH) is still there" },
	{ NULL, 0, false, 0, NULL },
};

static const struct optdef policy_opts[] = {
	{ "none", 0, false, OPT_NONE,
	  "--none              (admins) only root may change policies" },
	{ NULL, 0, false, 0, NULL },
};

static const struct optdef fsck_opts[] = {
	{ "full", 0, false, OPT_FULL,
	  "--full              re-hash every chunk (reads all data)" },
	{ NULL, 0, false, 0, NULL },
};

static const struct optdef gc_opts[] = {
	{ "all", 0, false, OPT_ALL,
	  "--all               rewrite every pack with dead bytes" },
	{ "threshold", 0, true, OPT_THRESHOLD,
	  "--threshold PCT     rewrite packs more than PCT % dead (0-100; "
	  "default 30)" },
	{ NULL, 0, false, 0, NULL },
};

static const struct optdef prefetch_opts[] = {
	{ "no-wait", 0, false, OPT_NO_WAIT,
	  "--no-wait           ask, print where it stands, do not wait" },
	{ NULL, 0, false, 0, NULL },
};

static const struct optdef hosts_opts[] = {
	{ "wait", 0, true, OPT_WAIT,
	  "--wait SECONDS      wait until every live mount has seen the\n"
	  "                      change of MODEL STAGE (at most SECONDS)" },
	{ NULL, 0, false, 0, NULL },
};

static int cmd_help(struct cli *c);

static const struct cmd commands[] = {
	{ "init", NULL, cmd_init, NULL, 0, 0, true, true,
	  "",
	  "create the store (if needed) and print its path",
	  "The store is --store DIR, else $MREG_STORE, else the config's\n"
	  "[store] path, else the embedded default. It is made where\n"
	  "nothing is, or in an empty directory; running it on an existing\n"
	  "store only checks that it opens. No other command makes a\n"
	  "store." },
	{ "push", NULL, cmd_push, push_opts, 2, -1, true, false,
	  "MODEL FILE|DIR... [options]",
	  "register files or directories as a new sealed version",
	  "Creates MODEL if needed, stores the files (directories\n"
	  "recursively), sets the metadata and seals the version. Prints\n"
	  "the version made (the next integer unless --version). Options\n"
	  "may repeat; a metric must be a decimal number. A progress bar\n"
	  "shows on a terminal (not with -q)." },
	{ "ls", NULL, cmd_ls, NULL, 0, 1, true, false,
	  "[MODEL[/VERSION]]",
	  "list models, the versions of a model, or the files of a version",
	  NULL },
	{ "show", NULL, cmd_show, NULL, 1, 2, true, false,
	  "MODEL[/VERSION]",
	  "print the metadata and facts of a model or version",
	  "Shows description, tags, metrics, params, lineage and the facts\n"
	  "the registry keeps (created, creator, sealed, size, stored,\n"
	  "digest), and the stages pointing at it." },
	{ "cat", "get", cmd_cat, cat_opts, 1, 2, true, false,
	  "MODEL/VERSION/PATH | MODEL/VERSION PATH [-o FILE]",
	  "write a file of a version to stdout (or to FILE)",
	  "Every chunk is checked as it is read: damaged data fails with\n"
	  "status 1 and nothing wrong is written. With -o the file appears\n"
	  "only once it is complete." },
	{ "seal", NULL, cmd_seal, NULL, 1, 2, true, false,
	  "MODEL VERSION | MODEL/VERSION",
	  "make a draft version immutable",
	  "Sealing a version that is sealed already succeeds." },
	{ "promote", NULL, cmd_promote, NULL, 2, 3, true, false,
	  "MODEL VERSION STAGE | MODEL/VERSION STAGE",
	  "point a stage at a version (sealing a draft first)",
	  "The stage policies stored in the registry apply (see 'mreg\n"
	  "policy'); a refusal is audited." },
	{ "rollback", NULL, cmd_rollback, NULL, 2, 2, true, false,
	  "MODEL STAGE",
	  "point a stage back at its previous version; prints that version",
	  NULL },
	{ "rm", NULL, cmd_rm, rm_opts, 1, 2, true, false,
	  "MODEL VERSION | MODEL/VERSION | MODEL --stage STAGE | MODEL",
	  "remove a version, a stage, or a model without versions",
	  "A version cannot be removed while a stage points at it. Its data\n"
	  "not shared with other versions is reclaimed by 'mreg gc'." },
	{ "history", NULL, cmd_history, NULL, 1, 2, true, false,
	  "MODEL [STAGE]",
	  "list the stage changes of a model: time, user, stage, from, to",
	  NULL },
	{ "meta", NULL, cmd_meta, NULL, 2, 4, true, false,
	  "MODEL[/VERSION] set KEY VALUE | unset KEY | list",
	  "change or list metadata",
	  "KEY is description, tag.K, metric.K (a decimal number), param.K\n"
	  "or lineage.K. Params and lineage are fixed once a version is\n"
	  "sealed. Every change is audited with the old value." },
	{ "search", NULL, cmd_search, NULL, 1, -1, true, false,
	  "QUERY",
	  "find versions by metadata; prints MODEL/VERSION per line",
	  "  mreg search 'metric.auc >= 0.9 and (tag.team = \"risk\" or\n"
	  "              tag.team = \"fraud\") and stage = Production'\n"
	  "Fields: name, version, stage, created, creator, tag.K, metric.K,\n"
	  "param.K, lineage.K. Operators: = != < <= > >= like (a glob).\n"
	  "Combine with and, or, not and parentheses. A malformed query\n"
	  "exits with status 2 and names the column." },
	{ "diff", NULL, cmd_diff, NULL, 2, 2, true, false,
	  "MODEL/VERSION MODEL/VERSION | MODEL/VERSION VERSION",
	  "files added, removed and changed between two versions",
	  "Compares file digests, and reports the bytes the two versions\n"
	  "share." },
	{ "audit", NULL, cmd_audit, audit_opts, 0, 1, true, false,
	  "[--since SEQ] [--model MODEL] [--user USER] | --head |\n"
	  "       --verify [--head SEQ:HASH]",
	  "print the audit trail, one JSON object per line",
	  "With --json, one JSON array of the records.\n"
	  "--verify checks that every record holds the SHA-256 of the one\n"
	  "before and that none is missing: it prints each finding, names\n"
	  "the first bad record and exits 3 when the chain is broken, 0\n"
	  "when it is intact. Through a mount it checks the text of\n"
	  ".mreg/audit.log.\n"
	  "The chain has no key: whoever can write the store can remove\n"
	  "the last records and rewrite the head so that it verifies. Keep\n"
	  "the head --head prints somewhere else (a ticket, another host);\n"
	  "--verify --head SEQ:HASH fails when that record is gone or\n"
	  "changed." },
	{ "stats", NULL, cmd_stats, NULL, 0, 0, true, false,
	  "",
	  "logical and stored bytes and the dedup ratio, per model and total",
	  NULL },
	{ "fsck", NULL, cmd_fsck, fsck_opts, 0, 0, true, false,
	  "[--full]",
	  "check the store and the serving cache; --full re-hashes chunks",
	  "Prints each finding. Exits 0 when clean (reclaimable data is\n"
	  "reported as info, not damage), 3 when it found damage, 1 when it\n"
	  "could not run. The store is only read; a damaged hydrated copy\n"
	  "in the serving cache ([serve] path) is removed (mregfs then\n"
	  "serves that file from the store, every read checked)." },
	{ "hosts", NULL, cmd_hosts, hosts_opts, 0, 2, true, false,
	  "[MODEL STAGE [--wait SECONDS]]",
	  "list the mounts of the registry and which changes each has seen",
	  "Each mregfs of the registry (every host's, with [index] backend\n"
	  "= postgres) says every 2 s which audit record it has applied: a\n"
	  "new open through it sees every change up to that one. Lists\n"
	  "host, pid, mount point, that record (APPLIED), how far it is\n"
	  "behind the last one (LAG), when it said so, and whether it lives\n"
	  "(a mount that died is 'gone', its line removed a minute on). With\n"
	  "MODEL STAGE: the last change of the stage, and whether each mount\n"
	  "has seen it; exits 0 when every live mount has, else 1 (--wait:\n"
	  "after waiting up to SECONDS for them). Needs the store itself." },
	{ "prefetch", NULL, cmd_prefetch, prefetch_opts, 2, 2, true, false,
	  "MODEL STAGE|VERSION [--no-wait]",
	  "ready a version on this host: its chunks cached, files hydrated",
	  "Fetches the chunks of the version (a stage points at it, or\n"
	  "named) into this host's chunk cache ([store] backend = s3: the\n"
	  "[cache] directory), several requests at once, so that its first\n"
	  "reads send nothing to the object store. Through a mount\n"
	  "(--store MOUNTPOINT) mregfs does it, into its cache, then copies\n"
	  "the version's files into its serving cache, so that opens of\n"
	  "them are served by the kernel at native speed (FUSE\n"
	  "passthrough), and waits until they are. Exits 1 when there is\n"
	  "nothing to fill (a local store on the store itself, or through\n"
	  "a mount with passthrough off), when the version is larger than\n"
	  "the chunk cache ([cache] size), when a chunk cannot be fetched,\n"
	  "or when a file could not be hydrated (no room in [serve] size)."
	},
	{ "gc", NULL, cmd_gc, gc_opts, 0, 0, true, false,
	  "[--all | --threshold PCT]",
	  "reclaim removed versions and unreferenced data, compact packs",
	  "Frees removed versions nobody has open and data nothing uses:\n"
	  "packs nothing lives in are removed and dead pack tails cut off\n"
	  "(which needs no free space: gc makes room on a full disk); packs\n"
	  "more than 30 % dead (--threshold, --all: any) are rewritten,\n"
	  "smallest first, as far as the free space allows. The space it\n"
	  "reports freed is free when it returns. Safe while other\n"
	  "processes (mregfs) use the store." },
	{ "policy", NULL, cmd_policy, policy_opts, 0, -1, true, false,
	  "[show] | set STAGE KEY=VALUE... | unset STAGE [KEY...] |\n"
	  "       hook EVENT PROGRAM | unhook EVENT | admins GROUP|--none |\n"
	  "       import",
	  "show or change the stage policies and hooks stored in the registry",
	  "Every process that opens the registry (mregfs, mreg on the store)\n"
	  "applies the policies and hooks stored in it, not its config's.\n"
	  "show prints them as config text (--json: an object), and where\n"
	  "the config (-c FILE, or the default one) differs.\n"
	  "set/unset change a stage's keys: promote_users, promote_groups\n"
	  "(names separated by commas), require_stage, require_metric\n"
	  "('auc >= 0.9'), protect (true/false); unset without KEY drops\n"
	  "the stage's whole policy. hook/unhook set the program (an\n"
	  "absolute path) run on_register or on_promote. import makes the\n"
	  "stored policy the config's [stage] and [hooks] sections.\n"
	  "Only root, or a member of the group named by 'admins' (which\n"
	  "only root sets), may change them; each change is audited with\n"
	  "its old and new value. Needs the store, not a mount." },
	{ "help", NULL, cmd_help, NULL, 0, 1, false, false,
	  "[COMMAND]",
	  "print this help, or the help of COMMAND",
	  NULL },
	{ NULL, NULL, NULL, NULL, 0, 0, false, false, NULL, NULL, NULL },
};

static const struct cmd *find_cmd(const char *name)
{
	const struct cmd *k;

	for (k = commands; k->name; k++)
		if (!strcmp(k->name, name) || (k->alias &&
					       !strcmp(k->alias, name)))
			return k;
	return NULL;
}

/* ---- usage texts -------------------------------------------------------- */

static void print_opts(FILE *f, const struct optdef *o)
{
	for (; o && o->lng; o++)
		fprintf(f, "  %s\n", o->help);
}

static void cmd_usage(const struct cmd *k, FILE *f)
{
	fprintf(f, "usage: mreg %s%s%s\n", k->name, *k->synopsis ? " " : "",
		k->synopsis);
	if (k->alias)
		fprintf(f, "   or: mreg %s %s\n", k->alias, k->synopsis);
	fprintf(f, "\n%s.\n", k->summary);
	if (k->help)
		fprintf(f, "\n%s\n", k->help);
	if (k->opts) {
		fprintf(f, "\noptions:\n");
		print_opts(f, k->opts);
	}
	fprintf(f, "\nglobal options: --store DIR, -c FILE, --json, -q, -v "
		"(see 'mreg help')\n");
}

static void main_usage(FILE *f)
{
	const struct cmd *k;

	fprintf(f,
		"usage: mreg [global options] COMMAND [arguments]\n"
		"\n"
		"mreg is a model registry that is a filesystem (see mregfs);\n"
		"this command does what a filesystem call cannot say well.\n"
		"\n"
		"commands:\n");
	for (k = commands; k->name; k++)
		fprintf(f, "  %-9s %s\n", k->name, k->summary);
	fprintf(f,
		"\n"
		"global options (before or after the command):\n"
		"  --store DIR        the store (else $MREG_STORE, else the\n"
		"                     config's [store] path, else the\n"
		"                     default)\n"
		"  -c, --config FILE  the config (default /etc/mreg/mreg.conf\n"
		"                     or /etc/mreg.conf when present)\n"
		"  --json             print data as JSON (exact byte counts)\n"
		"  -q, --quiet        no progress bar, no notes\n"
		"  -v, --verbose      log what the registry does (-vv: more)\n"
		"  -h, --help         this text, or a command's\n"
		"\n"
		"exit status:\n"
		"  0  success\n"
		"  1  the operation failed (one line on stderr: "
		"\"mreg: COMMAND: reason\")\n"
		"  2  usage error: unknown command or option, bad argument,\n"
		"     malformed search query, bad config file\n"
		"  3  fsck or audit --verify found damage\n"
		"\n"
		"--store may name an mregfs mount instead of a store: the\n"
		"commands then work through the file system (the daemon\n"
		"applies its policies), except fsck, gc, init and policy,\n"
		"which need the store itself; prefetch hydrates serving\n"
		"copies only through the mount.\n"
		"\n"
		"'mreg help COMMAND' or 'mreg COMMAND --help' for more.\n");
}

static int cmd_help(struct cli *c)
{
	const struct cmd *k;

	if (c->nargs == 0) {
		main_usage(stdout);
		return EXIT_OK;
	}
	k = find_cmd(c->args[0]);
	if (!k)
		return usage_err(c, "unknown command '%s'", c->args[0]);
	cmd_usage(k, stdout);
	return EXIT_OK;
}

/* ---- messages ----------------------------------------------------------- */

static void vmsg(struct cli *c, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void vmsg(struct cli *c, const char *fmt, va_list ap)
{
	fprintf(c->err, "mreg: %s%s", c->cmdname ? c->cmdname : "",
		c->cmdname ? ": " : "");
	vfprintf(c->err, fmt, ap);
	fputc('\n', c->err);
}

int fail(struct cli *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(c, fmt, ap);
	va_end(ap);
	return EXIT_FAIL;
}

int usage_err(struct cli *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(c, fmt, ap);
	va_end(ap);
	if (c->cmd)
		fprintf(c->err, "try 'mreg help %s'\n", c->cmd->name);
	else
		fprintf(c->err, "try 'mreg help'\n");
	return EXIT_USAGE;
}

void note(struct cli *c, const char *fmt, ...)
{
	va_list ap;

	if (c->quiet)
		return;
	va_start(ap, fmt);
	vmsg(c, fmt, ap);
	va_end(ap);
}

const char *last_logged(struct cli *c, char *buf, size_t size)
{
	const char *s, *e, *p;

	if (!c->logf)
		return NULL;
	fflush(c->logf);
	if (!c->logbuf || c->loglen <= c->logmark)
		return NULL;
	/* The last line logged since the store opened, without "mreg:
	 * error: " (log.c's prefix). */
	e = c->logbuf + c->loglen;
	while (e > c->logbuf + c->logmark && e[-1] == '\n')
		e--;
	s = e;
	while (s > c->logbuf + c->logmark && s[-1] != '\n')
		s--;
	if (s == e)
		return NULL;
	for (p = s; p < e; p++)
		if (!strncmp(p, ": error: ", 9) ||
		    !strncmp(p, ": warning: ", 11)) {
			s = strchr(p + 2, ' ') + 1;
			break;
		}
	snprintf(buf, size, "%.*s", (int)(e - s), s);
	return buf;
}

/* What s names, quoted: 'm/v/p', 'm/v' or 'm'. */
static const char *subj(const struct subject *s, char *buf, size_t size)
{
	char tmp[1024];

	if (s->model && s->version && s->path)
		snprintf(tmp, sizeof(tmp), "%s/%s/%s", s->model, s->version,
			 s->path);
	else if (s->model && s->version)
		snprintf(tmp, sizeof(tmp), "%s/%s", s->model, s->version);
	else if (s->model)
		snprintf(tmp, sizeof(tmp), "%s", s->model);
	else if (s->path)
		snprintf(tmp, sizeof(tmp), "%s", s->path);
	else
		snprintf(tmp, sizeof(tmp), "the store");
	human_str(tmp, buf, size);
	return buf;
}

static int fail_enoent(struct cli *c, const struct subject *s)
{
	char a[1024], b[1024];

	if (s->model && !be_resolves(c, s->model, NULL))
		return fail(c, "model '%s' does not exist",
			    human_str(s->model, a, sizeof(a)));
	if (s->model && s->version && !be_resolves(c, s->model, s->version))
		return fail(c, "version '%s' does not exist",
			    subj(SUBJ(.model = s->model, .version = s->version),
				 a, sizeof(a)));
	if (s->stage)
		return fail(c, "stage '%s' of model '%s' does not exist",
			    human_str(s->stage, a, sizeof(a)),
			    human_str(s->model ? s->model : "", b, sizeof(b)));
	if (s->path)
		return fail(c, "file '%s' does not exist",
			    subj(s, a, sizeof(a)));
	if (s->key)
		return fail(c, "'%s' has no '%s'", subj(s, a, sizeof(a)),
			    human_str(s->key, b, sizeof(b)));
	return fail(c, "'%s' does not exist", subj(s, a, sizeof(a)));
}

static bool has_prefix(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

static int fail_einval(struct cli *c, const struct subject *s)
{
	char a[1024], b[1024];
	const char *why;

	if (s->model && reg_check_name(s->model) < 0)
		return fail(c, "invalid name '%s'",
			    human_str(s->model, a, sizeof(a)));
	if (s->version && reg_check_name(s->version) < 0)
		return fail(c, "invalid name '%s'",
			    human_str(s->version, a, sizeof(a)));
	if (s->stage && reg_check_stage(s->stage) < 0)
		return fail(c, "invalid stage name '%s'",
			    human_str(s->stage, a, sizeof(a)));
	if (s->key) {
		const char *k = s->key;

		if (has_prefix(k, "metric.") && s->value &&
		    !util_decimal(s->value, strlen(s->value), NULL))
			return fail(c, "invalid metric '%s': '%s' is not a "
				    "number", human_str(k + 7, a, sizeof(a)),
				    human_str(s->value, b, sizeof(b)));
		if (strcmp(k, "description") && !has_prefix(k, "tag.") &&
		    !has_prefix(k, "metric.") && !has_prefix(k, "param.") &&
		    !has_prefix(k, "lineage."))
			return fail(c, "invalid key '%s' (description, tag.K, "
				    "metric.K, param.K or lineage.K)",
				    human_str(k, a, sizeof(a)));
		why = last_logged(c, b, sizeof(b));
		return fail(c, "invalid value for '%s'%s%s",
			    human_str(k, a, sizeof(a)), why ? ": " : "",
			    why ? why : "");
	}
	why = last_logged(c, b, sizeof(b));
	return fail(c, "invalid argument for '%s'%s%s", subj(s, a, sizeof(a)),
		    why ? ": " : "", why ? why : "");
}

int fail_errno(struct cli *c, int r, const struct subject *s)
{
	char a[1024], b[1024], why[1024];
	const char *rs;
	bool rm = c->cmd && !strcmp(c->cmd->name, "rm");

	switch (-r) {
	case ENOENT:
		return fail_enoent(c, s);
	case EINVAL:
		return fail_einval(c, s);
	case ENAMETOOLONG:
		/* a name, or a tree nested too deep: core says which */
		if ((rs = last_logged(c, why, sizeof(why))))
			return fail(c, "%s", rs);
		return fail(c, "name too long in '%s'", subj(s, a, sizeof(a)));
	case EACCES:
		rs = last_logged(c, why, sizeof(why));
		/* Through a mount the kernel may refuse first, on mode bits:
		 * no policy was asked. */
		if (rs && !strncmp(rs, "denied: ", 8))
			return fail(c, "'%s': permission denied: %s",
				    subj(s, a, sizeof(a)), rs + 8);
		/* Core's reason may say "refused: ..." itself. */
		if (rs && !strncmp(rs, "refused: ", 9))
			rs += 9;
		if (s->stage && s->version)
			return fail(c, "promoting '%s' to '%s' refused by "
				    "policy%s%s", subj(s, a, sizeof(a)),
				    human_str(s->stage, b, sizeof(b)),
				    rs ? ": " : "", rs ? rs : "");
		if (s->stage)
			return fail(c, "removing stage '%s' of '%s' refused by "
				    "policy%s%s",
				    human_str(s->stage, b, sizeof(b)),
				    subj(s, a, sizeof(a)), rs ? ": " : "",
				    rs ? rs : "");
		return fail(c, "'%s': refused by policy%s%s",
			    subj(s, a, sizeof(a)), rs ? ": " : "",
			    rs ? rs : "");
	case EPERM:
		if (s->key)
			return fail(c, "'%s' is read-only",
				    human_str(s->key, a, sizeof(a)));
		return fail(c, "'%s': operation not permitted",
			    subj(s, a, sizeof(a)));
	case EBUSY:
		if (rm)
			return fail(c, "version '%s' is in use: a stage points "
				    "at it", subj(s, a, sizeof(a)));
		return fail(c, "version '%s' has a file open for writing",
			    subj(s, a, sizeof(a)));
	case EEXIST:
		/* the one way a promotion meets an existing name */
		if (s->stage)
			return fail(c, "stage '%s' of model '%s' would differ "
				    "from an existing stage only in case "
				    "(stage names are unique regardless of "
				    "case)", human_str(s->stage, a, sizeof(a)),
				    human_str(s->model ? s->model : "", b,
					      sizeof(b)));
		if (s->version)
			return fail(c, "version '%s' already exists",
				    subj(s, a, sizeof(a)));
		return fail(c, "'%s' already exists", subj(s, a, sizeof(a)));
	case ENOTEMPTY:
		return fail(c, "model '%s' still has versions",
			    subj(s, a, sizeof(a)));
	case EROFS:
		/* Metadata is the one change a sealed version refuses by
		 * name here; anything else is a store that cannot be
		 * written at all. */
		if (s->key)
			return fail(c, "'%s' of '%s' cannot change: the "
				    "version is sealed",
				    human_str(s->key, b, sizeof(b)),
				    subj(s, a, sizeof(a)));
		return fail(c, "the store is read-only");
	case ENODATA:
		return fail(c, "'%s' has no '%s'", subj(s, a, sizeof(a)),
			    human_str(s->key ? s->key : "", b, sizeof(b)));
	case ENOSPC:
		return fail(c, "no space left on the store");
	case EDQUOT:
		return fail(c, "disk quota exceeded on the store");
	case EIO:
		/* the object store failed (core's "s3: ..." line says how),
		 * else the bytes are bad */
		rs = last_logged(c, why, sizeof(why));
		if (rs && !strncmp(rs, "s3: ", 4))
			return fail(c, "cannot read '%s' from the object "
				    "store: %s", subj(s, a, sizeof(a)), rs + 4);
		return fail(c, "data damaged in '%s': run 'mreg fsck'",
			    subj(s, a, sizeof(a)));
	case ENOMEM:
		return fail(c, "out of memory");
	case EFBIG:
		return fail(c, "'%s': file too large", subj(s, a, sizeof(a)));
	default:
		return fail(c, "'%s': %s", subj(s, a, sizeof(a)), errstr(-r));
	}
}

/* ---- references --------------------------------------------------------- */

int ref_parse(struct ref *r, const char *s)
{
	char *p, *e;

	memset(r, 0, sizeof(*r));
	r->buf = xstrdup(s);
	e = r->buf + strlen(r->buf);
	while (e > r->buf + 1 && e[-1] == '/')
		*--e = 0;
	r->model = r->buf;
	r->nparts = 1;
	p = strchr(r->buf, '/');
	if (!p)
		return r->nparts;
	*p++ = 0;
	r->version = p;
	r->nparts = 2;
	p = strchr(p, '/');
	if (!p)
		return r->nparts;
	*p++ = 0;
	r->path = p;
	r->nparts = 3;
	return r->nparts;
}

void ref_release(struct ref *r)
{
	free(r->buf);
	free(r->vbuf);
	memset(r, 0, sizeof(*r));
}

/* ---- options ------------------------------------------------------------ */

const char *opt_get(const struct cli *c, int id)
{
	const char *v = NULL;
	size_t i;

	for (i = 0; i < c->nopts; i++)
		if (c->opts[i].id == id)
			v = c->opts[i].val;
	return v;
}

bool opt_has(const struct cli *c, int id)
{
	size_t i;

	for (i = 0; i < c->nopts; i++)
		if (c->opts[i].id == id)
			return true;
	return false;
}

static const struct optdef *find_long(const struct optdef *o, const char *s,
				      size_t n)
{
	for (; o && o->lng; o++)
		if (strlen(o->lng) == n && !strncmp(o->lng, s, n))
			return o;
	return NULL;
}

static const struct optdef *find_short(const struct optdef *o, char ch)
{
	for (; o && o->lng; o++)
		if (o->shrt && o->shrt == ch)
			return o;
	return NULL;
}

static void add_opt(struct cli *c, int id, const char *val)
{
	switch (id) {
	case OPT_STORE: c->store_opt = val; return;
	case OPT_CONFIG: c->config_opt = val; return;
	case OPT_JSON: c->json = true; return;
	case OPT_QUIET: c->quiet = true; return;
	case OPT_VERBOSE: c->verbose++; return;
	default: break;
	}
	XGROW(c->opts, c->opts_cap, c->nopts);
	c->opts[c->nopts].id = id;
	c->opts[c->nopts].val = val;
	c->nopts++;
}

/* A negative number is an argument ("meta m/1 set metric.delta -0.5"), not
 * an option. */
static bool is_option(const char *a)
{
	return a[0] == '-' && a[1] && !util_decimal(a, strlen(a), NULL);
}

/* Parses one option at argv[*i]; options of the command are tried after
 * the global ones. Returns 0 or an exit status. */
static int parse_opt(struct cli *c, int argc, char **argv, int *i)
{
	const struct optdef *cmdopts = c->cmd ? c->cmd->opts : NULL;
	const char *a = argv[*i];
	const struct optdef *o;

	if (a[1] == '-') {
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t n = eq ? (size_t)(eq - name) : strlen(name);
		const char *val = NULL;

		o = find_long(global_opts, name, n);
		if (!o)
			o = find_long(cmdopts, name, n);
		if (!o)
			return usage_err(c, "unknown option '--%.*s'", (int)n,
					 name);
		if (o->arg) {
			if (eq)
				val = eq + 1;
			else if (*i + 1 < argc)
				val = argv[++*i];
			else
				return usage_err(c, "option '--%s' needs a "
						 "value", o->lng);
		} else if (eq) {
			return usage_err(c, "option '--%s' takes no value",
					 o->lng);
		}
		add_opt(c, o->id, val);
		return 0;
	}
	for (a++; *a; a++) {
		o = find_short(global_opts, *a);
		if (!o)
			o = find_short(cmdopts, *a);
		if (!o)
			return usage_err(c, "unknown option '-%c'", *a);
		if (!o->arg) {
			add_opt(c, o->id, NULL);
			continue;
		}
		if (a[1])
			add_opt(c, o->id, a + 1);
		else if (*i + 1 < argc)
			add_opt(c, o->id, argv[++*i]);
		else
			return usage_err(c, "option '-%c' needs a value", *a);
		break;
	}
	return 0;
}

/* Global options go before or after the command; "--" ends options.
 * Returns -1 to go on, or an exit status. */
static int parse_args(struct cli *c, int argc, char **argv)
{
	bool dashdash = false;
	int i, r;

	c->args = xcalloc((size_t)argc, sizeof(*c->args));
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!dashdash && !strcmp(a, "--")) {
			dashdash = true;
			continue;
		}
		if (!dashdash && is_option(a)) {
			r = parse_opt(c, argc, argv, &i);
			if (r)
				return r;
			continue;
		}
		if (!c->cmd) {
			c->cmd = find_cmd(a);
			if (!c->cmd)
				return usage_err(c, "unknown command '%s'", a);
			c->cmdname = a;
			continue;
		}
		c->args[c->nargs++] = argv[i];
	}
	if (opt_has(c, OPT_HELP)) {
		if (c->cmd)
			cmd_usage(c->cmd, stdout);
		else
			main_usage(stdout);
		return EXIT_OK;
	}
	if (!c->cmd) {
		main_usage(c->err);
		return EXIT_USAGE;
	}
	if ((int)c->nargs < c->cmd->min_args)
		return usage_err(c, "missing argument (usage: mreg %s %s)",
				 c->cmd->name, c->cmd->synopsis);
	if (c->cmd->max_args >= 0 && (int)c->nargs > c->cmd->max_args)
		return usage_err(c, "unexpected argument '%s'",
				 c->args[c->cmd->max_args]);
	return -1;
}

/* ---- set-up ------------------------------------------------------------ */

static int load_config(struct cli *c)
{
	const char *path = c->config_opt;
	char err[1024];
	int r;

	if (!path) {
		if (access("/etc/mreg/mreg.conf", F_OK) == 0)
			path = "/etc/mreg/mreg.conf";
		else if (access("/etc/mreg.conf", F_OK) == 0)
			path = "/etc/mreg.conf";
		else
			return 0;
	}
	err[0] = 0;
	r = config_load(&c->cfg, path, err, sizeof(err));
	if ((r == -EINVAL || r == -EPERM) && err[0])
		fprintf(c->err, "mreg: %s: bad config: %s\n", c->cmdname, err);
	else if (r < 0)
		fprintf(c->err, "mreg: %s: cannot read config '%s': %s\n",
			c->cmdname, path, errstr(-r));
	return r < 0 ? EXIT_USAGE : 0;
}

/* Core's log goes to a memory stream unless -v: the user gets one line per
 * failure, and the reason core gave is at hand for it. */
static void capture_log(struct cli *c)
{
	if (c->verbose)
		return;
	c->logf = open_memstream(&c->logbuf, &c->loglen);
	if (c->logf)
		stderr = c->logf;
}

static void release_log(struct cli *c)
{
	if (c->logf) {
		stderr = c->err;
		fclose(c->logf);
		c->logf = NULL;
	}
	free(c->logbuf);
	c->logbuf = NULL;
}

static int open_store(struct cli *c)
{
	char why[1024], a[1024];
	const char *rs;
	int r;

	c->store = config_store_path(&c->cfg, c->store_opt);
	if (!c->store)
		return fail(c, "out of memory");
	/* A mount of a store: work through it (mreg-mount.c). */
	if (mount_detect(c->store)) {
		r = mount_open(c->store, &c->mnt);
		if (r < 0)
			return fail(c, "cannot use mount '%s': %s",
				    human_str(c->store, a, sizeof(a)),
				    errstr(-r));
	} else {
		/* only init makes a store: anything else that is not one is
		   refused, and left as it is; init alone asks the object
		   store at once, the rest when they need a chunk */
		r = reg_open_flags(
			&c->cfg, c->store,
			c->cmd->creates_store ? 0 :
			REG_OPEN_EXISTING | REG_OPEN_LAZY, &c->reg);
	}
	/* core says why when it knows (a database without a registry) */
	if (r == -ENOENT && !last_logged(c, why, sizeof(why)))
		return fail(c, "no store at '%s': run 'mreg init' or give "
			    "--store", human_str(c->store, a, sizeof(a)));
	if (r == -ENOENT || r == -ENOTEMPTY || r == -ENOTDIR || r == -EXDEV) {
		/* core's sentence names the path and what it found */
		rs = last_logged(c, why, sizeof(why));
		return fail(c, "%s", rs ? rs : errstr(-r));
	}
	if (r < 0) {
		c->reg = NULL;
		rs = last_logged(c, why, sizeof(why));
		if (r == -ENOSPC)
			rs = "no space left on the store";
		if (r == -EACCES)
			rs = "permission denied";
		if (!rs)
			rs = errstr(-r);
		return fail(c, "cannot open store '%s': %s%s",
			    human_str(c->store, a, sizeof(a)), rs,
			    r == -EACCES ? " (not yours to open: give "
			    "--store the mount point instead)" : "");
	}
	reg_caller_self(&c->who);
	policy_note(c);
	if (c->logf) {
		fflush(c->logf);
		c->logmark = c->loglen;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct cli c;
	int r;

	memset(&c, 0, sizeof(c));
	c.err = stderr;
	config_init(&c.cfg);
	log_set_prog("mreg");
	r = parse_args(&c, argc, argv);
	if (r >= 0)
		goto out;
	r = load_config(&c);
	if (r)
		goto out;
	if (c.verbose)
		log_set_level(c.verbose > 1 ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	else
		log_set_level((enum log_level)c.cfg.log_level);
	capture_log(&c);
	if (c.cmd->needs_store) {
		r = open_store(&c);
		if (r)
			goto out;
	}
	r = c.cmd->fn(&c);
	/* Output that did not reach its file is a failure (a full disk
	 * under a redirection), not a silent truncation. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (r == EXIT_OK)
			r = fail(&c, "cannot write output: %s",
				 errstr(errno));
	}
out:
	reg_close(c.reg);
	mount_close(c.mnt);
	release_log(&c);
	config_release(&c.cfg);
	free(c.store);
	free(c.opts);
	free(c.args);
	return r;
}
