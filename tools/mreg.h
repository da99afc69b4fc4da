/* mreg.h — what the files of the mreg CLI share: the invocation (options,
 * the open registry), output helpers (JSON, tables, sizes, times, progress)
 * and the translation of a negative errno into a message and an exit
 * status, which happens here, at the edge, and nowhere in core.
 *
 * The CLI talks to the store through core/registry/registry.h only, or,
 * when the store it is given is an mregfs mount, through the file system
 * (mreg-mount.c): the commands call the be_*() functions, which pick.
 *
 * Exit status of every command:
 *	0  success
 *	1  the operation failed; one line on stderr: "mreg: CMD: reason"
 *	2  usage error (unknown command or option, missing or malformed
 *	   argument, malformed search query, bad config file)
 *	3  fsck or audit --verify found damage
 */
#ifndef MREG_TOOL_H
#define MREG_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "config/config.h"
#include "json.h"
#include "registry/registry.h"
#include "util.h"

#define EXIT_OK     0
#define EXIT_FAIL   1
#define EXIT_USAGE  2
#define EXIT_DAMAGE 3

/* One option a command accepts. */
struct optdef {
	const char *lng;        /* "version" for --version */
	char shrt;              /* 'o' for -o, or 0 */
	bool arg;               /* takes a value */
	int id;
	const char *help;       /* "--version V" column of the usage text */
};

/* An option found on the command line, in order (options may repeat). */
struct optval {
	int id;
	const char *val;        /* NULL for flags */
};

struct cli;
typedef int (*cmd_fn)(struct cli *c);

struct cmd {
	const char *name;
	const char *alias;      /* another name, or NULL */
	cmd_fn fn;
	const struct optdef *opts; /* terminated by lng NULL, or NULL */
	int min_args, max_args; /* positionals; max -1: any number */
	bool needs_store;       /* opens the registry before fn */
	bool creates_store;     /* may create a store that does not exist */
	const char *synopsis;   /* "MODEL PATH... [options]" */
	const char *summary;    /* one line */
	const char *help;       /* paragraphs after the synopsis, or NULL */
};

struct cli {
	const struct cmd *cmd;
	const char *cmdname;    /* as typed (cat or get) */

	/* global options */
	bool json, quiet;
	int verbose;
	const char *store_opt;  /* --store */
	const char *config_opt; /* -c */

	struct optval *opts;
	size_t nopts, opts_cap;
	char **args;
	size_t nargs;

	struct mreg_config cfg;
	char *store;            /* the store directory picked */
	struct reg_registry *reg;
	struct mreg_mount *mnt; /* instead of reg: the store is a mount */
	struct reg_caller who;

	FILE *err;              /* the real stderr */
	char *logbuf;           /* what core logged (stderr is a memstream) */
	size_t loglen;
	size_t logmark;         /* what was logged before the command ran */
	FILE *logf;
};

/* ---- mreg.c ---- */

/* Out of memory, the CLI stops: prints "mreg: out of memory" on stderr
 * and exits EXIT_FAIL (not abort(): a command that cannot allocate says
 * so, it does not dump core). The x* allocators call it on failure. */
__attribute__((noreturn)) void die_oom(void);
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* A copy of s; NULL for NULL. */
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* ARRAY_GROW (util.h), or die_oom(). */
#define XGROW(v, cap, n) do {						\
		if (ARRAY_GROW(v, cap, n) < 0)				\
			die_oom();					\
	} while (0)

/* The value of the last option id given (NULL when absent). */
const char *opt_get(const struct cli *c, int id);
/* True when flag id was given. */
bool opt_has(const struct cli *c, int id);

/* Prints "mreg: CMD: <message>" on stderr; returns EXIT_FAIL. */
int fail(struct cli *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prints "mreg: CMD: <message>" and a hint to the usage text; returns
 * EXIT_USAGE. */
int usage_err(struct cli *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prints a note on stderr unless -q. */
void note(struct cli *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* What a failed call was about, for the message. Any field may be NULL. */
struct subject {
	const char *model, *version, *stage, *path, *key, *value;
};
/* Translates r (a negative errno) about s into one clear sentence in the
 * context of the current command, prints it, returns EXIT_FAIL. */
int fail_errno(struct cli *c, int r, const struct subject *s);
/* fail_errno(c, r, SUBJ(.model = m, .version = v)) */
#define SUBJ(...) (&(struct subject){ __VA_ARGS__ })
/* The last message core logged (without "mreg: error: "), or NULL. */
const char *last_logged(struct cli *c, char *buf, size_t size);

/* "model", "model/version" or "model/version/path..." split into parts
 * (trailing slashes ignored; absent parts NULL). */
struct ref {
	char *buf;
	char *vbuf;             /* the version a stage points at */
	const char *model, *version, *path;
	int nparts;
};
/* Parses s into r (release with ref_release()). Returns the number of
 * parts, 1 to 3. */
int ref_parse(struct ref *r, const char *s);
void ref_release(struct ref *r);

/* ---- mreg-out.c ---- */

/* JSON emitter onto a FILE: commas, nesting and string escaping. */
#define JSON_MAX_DEPTH 16
struct json {
	FILE *f;
	int depth;
	bool first[JSON_MAX_DEPTH];
	bool array[JSON_MAX_DEPTH];
	bool after_key;
};
void json_init(struct json *j, FILE *f);
void json_obj_begin(struct json *j);
void json_obj_end(struct json *j);
void json_arr_begin(struct json *j);
void json_arr_end(struct json *j);
void json_key(struct json *j, const char *k);
void json_str(struct json *j, const char *s);
void json_strn(struct json *j, const void *s, size_t n);
void json_u64(struct json *j, uint64_t v);
void json_i64(struct json *j, int64_t v);
void json_double(struct json *j, double v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);
/* A value that is already JSON (an audit record). */
void json_raw(struct json *j, const char *s, size_t n);
/* s as a JSON number when it is a finite decimal number, else a string. */
void json_number_or_str(struct json *j, const char *s, size_t n);
/* Ends the document with a newline. */
void json_finish(struct json *j);

/* Writes len bytes as a quoted JSON string (core json_quote(): the same
 * bytes as the audit records). */
void json_escape(FILE *f, const void *p, size_t len);


/* Copies s into buf for a terminal: control bytes become \xNN. */
const char *human_str(const char *s, char *buf, size_t size);

/* A table printed with aligned columns. */
struct table {
	size_t ncols;
	unsigned right;         /* bit i: column i is right-aligned */
	char **cells;           /* nrows * ncols */
	size_t nrows, alloc;
};
void table_init(struct table *t, size_t ncols, unsigned right);
/* Adds a row of ncols strings (copied; NULL prints as "-"). */
void table_row(struct table *t, ...);
void table_print(const struct table *t, FILE *f);
/* Puts prefix before the first cell of rows from.. (an indent). */
void table_indent(struct table *t, size_t from, const char *prefix);
void table_release(struct table *t);

/* "1.2 GiB", "512 B". */
const char *human_size(uint64_t n, char *buf, size_t size);
/* ISO-8601 UTC: "2026-01-31T12:00:00Z" ("-" for 0). */
const char *iso_time(int64_t secs, char *buf, size_t size);
/* "-rw-r--r--" */
const char *mode_str(mode_t mode, char *buf, size_t size);
/* strerror(e) starting in lower case, for messages. */
const char *errstr(int e);

/* A progress bar on stderr, drawn only when stderr is a terminal and not
 * -q; at most ten times a second. */
struct progress {
	bool on, drawn, bytes;
	const char *label;
	FILE *f;
	int64_t start_ns, last_ns;
};
void progress_init(struct progress *p, struct cli *c, const char *label,
		   bool bytes);
/* The callback core calls: arg is the struct progress. */
void progress_cb(void *arg, uint64_t done, uint64_t total);
/* Clears the bar. */
void progress_end(struct progress *p);

/* ---- mreg-mount.c: a mounted registry as the backend ---- */

/* The same operations as registry.h's by-name API, done with file system
 * calls on an mregfs mount (see mreg-mount.c for how each one is said).
 * Negative errno as core returns them; a refusal (-EACCES) also logs its
 * reason ("refused: ..." from the audit trail, or "denied: ..." when the
 * kernel's mode check refused), for fail_errno(). */
struct mreg_mount;
/* True when dir is the root of an mregfs mount: a FUSE file system with
 * models/ and .mreg/audit.log. */
bool mount_detect(const char *dir);
/* -ENOENT when dir is not a mount (mount_detect), -ENOMEM. */
int mount_open(const char *dir, struct mreg_mount **ret);
void mount_close(struct mreg_mount *m);
const char *mount_path(const struct mreg_mount *m);
int mount_push(struct mreg_mount *m, const char *model,
	       const char *const *paths, size_t npaths, const char *version,
	       const struct reg_kv *meta, size_t nmeta,
	       void (*progress)(void *arg, uint64_t done, uint64_t total),
	       void *parg, char *ret_version);
int mount_seal(struct mreg_mount *m, const char *model, const char *version);
int mount_promote(struct mreg_mount *m, const char *model,
		  const char *version, const char *stage);
int mount_stage_remove(struct mreg_mount *m, const char *model,
		       const char *stage);
int mount_rollback(struct mreg_mount *m, const char *model, const char *stage,
		   char *ret_version);
int mount_version_remove(struct mreg_mount *m, const char *model,
			 const char *version);
int mount_model_remove(struct mreg_mount *m, const char *model);
/* 0 when model (and version, unless NULL) exist, else -ENOENT. */
int mount_resolve(struct mreg_mount *m, const char *model,
		  const char *version);
int mount_history(struct mreg_mount *m, const char *model, const char *stage,
		  int (*fn)(void *arg, const struct reg_history *h),
		  void *arg);
int mount_models(struct mreg_mount *m,
		 int (*fn)(void *arg, const struct reg_model_info *mi),
		 void *arg);
int mount_versions(struct mreg_mount *m, const char *model,
		   int (*fn)(void *arg, const struct reg_version_info *v),
		   void *arg);
int mount_version_info(struct mreg_mount *m, const char *model,
		       const char *version,
		       int (*fn)(void *arg, const struct reg_version_info *v),
		       void *arg);
int mount_files(struct mreg_mount *m, const char *model, const char *version,
		int (*fn)(void *arg, const struct reg_file_info *f),
		void *arg);
int mount_cat(struct mreg_mount *m, const char *model, const char *version,
	      const char *path, int fd);
int mount_meta_list(struct mreg_mount *m, const char *model,
		    const char *version,
		    int (*fn)(void *arg, const char *key, const char *value,
			      size_t len),
		    void *arg);
int mount_meta_set(struct mreg_mount *m, const char *model,
		   const char *version, const char *key, const char *value);
int mount_search(struct mreg_mount *m, const char *query, char *err,
		 size_t errlen,
		 int (*fn)(void *arg, const struct reg_version_info *v),
		 void *arg);
int mount_audit(struct mreg_mount *m, uint64_t since,
		int (*fn)(void *arg, uint64_t seq, const char *json,
			  size_t len),
		void *arg);
/* As reg_audit_verify(), over the text of .mreg/audit.log (the head kept
 * beside the chain in the store is not visible through a mount). */
int mount_audit_verify(struct mreg_mount *m,
		       void (*report)(void *arg, uint64_t seq,
				      const char *msg),
		       void *arg, uint64_t *ret_first_bad);
/* The text of .mreg/metrics (malloc'ed). */
int mount_metrics(struct mreg_mount *m, char **ret, size_t *ret_len);

/* ---- mreg-backend.c: the store or the mount ---- */

/* Each calls the registry (c->reg) or the mount (c->mnt): the arguments
 * and results are those of the reg_*() function of the same name. */
int be_push(struct cli *c, const char *model, const char *const *paths,
	    size_t npaths, const char *version, const struct reg_kv *meta,
	    size_t nmeta,
	    void (*progress)(void *arg, uint64_t done, uint64_t total),
	    void *parg, char *ret_version);
int be_seal(struct cli *c, const char *model, const char *version);
int be_promote(struct cli *c, const char *model, const char *version,
	       const char *stage);
int be_stage_remove(struct cli *c, const char *model, const char *stage);
int be_rollback(struct cli *c, const char *model, const char *stage,
		char *ret_version);
int be_version_remove(struct cli *c, const char *model, const char *version);
int be_model_remove(struct cli *c, const char *model);
/* True when model (and version, unless NULL) exist. */
bool be_resolves(struct cli *c, const char *model, const char *version);
int be_history(struct cli *c, const char *model, const char *stage,
	       int (*fn)(void *arg, const struct reg_history *h), void *arg);
int be_models(struct cli *c,
	      int (*fn)(void *arg, const struct reg_model_info *m),
	      void *arg);
int be_versions(struct cli *c, const char *model,
		int (*fn)(void *arg, const struct reg_version_info *v),
		void *arg);
int be_version_info(struct cli *c, const char *model, const char *version,
		    int (*fn)(void *arg, const struct reg_version_info *v),
		    void *arg);
int be_files(struct cli *c, const char *model, const char *version,
	     int (*fn)(void *arg, const struct reg_file_info *f), void *arg);
int be_cat(struct cli *c, const char *model, const char *version,
	   const char *path, int fd);
int be_meta_list(struct cli *c, const char *model, const char *version,
		 int (*fn)(void *arg, const char *key, const char *value,
			   size_t len),
		 void *arg);
int be_meta_set(struct cli *c, const char *model, const char *version,
		const char *key, const char *value);
/* -ENOTSUP through a mount (chunks are not visible there). */
int be_shared_bytes(struct cli *c, const char *model_a, const char *version_a,
		    const char *model_b, const char *version_b,
		    uint64_t *ret);
int be_search(struct cli *c, const char *query, char *err, size_t errlen,
	      int (*fn)(void *arg, const struct reg_version_info *v),
	      void *arg);
int be_audit(struct cli *c, uint64_t since,
	     int (*fn)(void *arg, uint64_t seq, const char *json, size_t len),
	     void *arg);
int be_audit_verify(struct cli *c,
		    void (*report)(void *arg, uint64_t seq, const char *msg),
		    void *arg, uint64_t *ret_first_bad);
/* The store directory or the mount point. */
const char *be_path(struct cli *c);
/* For a command that needs the store itself (fsck, gc, init, store
 * statistics): when c works through a mount, prints why it cannot and
 * returns EXIT_FAIL; else 0. */
int be_needs_store(struct cli *c);

/* ---- shared by the commands ---- */

/* Checks names with core's rules (reg_check_name, reg_check_stage; NULL
 * skips); on a bad one prints "invalid name 'x'" and returns EXIT_FAIL. */
int check_names(struct cli *c, const char *model, const char *version,
		const char *stage);
/* MODEL VERSION or MODEL/VERSION at args[i]; *ret_used gets how many args
 * that took. Returns 0 or an exit status (usage). */
int model_version_args(struct cli *c, size_t i, struct ref *r,
		       size_t *ret_used);
/* "MODEL/stages/STAGE[/PATH]" becomes MODEL/VERSION[/PATH], the version
 * the stage points at now (as a serving path reads it). Returns 0 or an
 * exit status (a missing stage). */
int ref_follow_stage(struct cli *c, struct ref *r);
/* A parsed MODEL or MODEL/VERSION argument (arg, for messages): follows a
 * stage when follow, refuses more parts, checks the names. Returns 0 or
 * an exit status. */
int ref_model_or_version(struct cli *c, struct ref *r, const char *arg,
			 bool follow);

/* A version's facts, copied out of the registry's callback. */
struct vinfo {
	char *model, *name;
	bool sealed;
	int64_t created, sealed_at;
	uid_t creator;
	uint64_t size, stored, nfiles;
	struct mreg_id digest;
	char **stages;
	size_t nstages;
};
void vinfo_copy(struct vinfo *d, const struct reg_version_info *v);
void vinfo_release(struct vinfo *v);
/* One version's info. Negative errno. */
int vinfo_get(struct cli *c, const char *model, const char *version,
	      struct vinfo *ret);
/* Prints v as a JSON object. */
void vinfo_json(struct json *j, const struct vinfo *v);

/* Metadata of a model or version (all: the facts too), copied. */
struct meta_ent {
	char *key, *value;
	size_t len;
};
int meta_collect(struct cli *c, const char *model, const char *version,
		 bool all, struct meta_ent **ret, size_t *ret_n);
void meta_free(struct meta_ent *e, size_t n);

/* ---- commands ---- */
int cmd_init(struct cli *c);
int cmd_push(struct cli *c);
int cmd_seal(struct cli *c);
int cmd_promote(struct cli *c);
int cmd_rollback(struct cli *c);
int cmd_rm(struct cli *c);
int cmd_meta(struct cli *c);
int cmd_ls(struct cli *c);
int cmd_show(struct cli *c);
int cmd_cat(struct cli *c);
int cmd_history(struct cli *c);
int cmd_search(struct cli *c);
int cmd_diff(struct cli *c);
int cmd_audit(struct cli *c);
int cmd_stats(struct cli *c);
int cmd_fsck(struct cli *c);
int cmd_gc(struct cli *c);
int cmd_policy(struct cli *c);
int cmd_prefetch(struct cli *c);
int cmd_hosts(struct cli *c);

/* ---- mreg-serve.c: the serving cache ---- */
/* stats: the serving cache (a "serving_cache" member of j, or text when j
 * is NULL): on the store its directory, copies and bytes; through a mount
 * the daemon's counters. */
void serving_stats(struct cli *c, struct json *j);
/* fsck: re-hashes every copy, reports each damaged one (dropped) to
 * report as an "error"; returns how many, or -ENOMEM. */
int serving_fsck(struct cli *c,
		 void (*report)(void *arg, const char *severity,
				const char *msg),
		 void *arg);

/* ---- mreg-policy.c ---- */
/* After the store opened: a note when the config's stage policies or hooks
 * differ from the ones stored in the registry (which apply). */
void policy_note(struct cli *c);

/* Option ids of the commands (unique across the CLI). */
enum {
	OPT_HELP = 1, OPT_STORE, OPT_CONFIG, OPT_JSON, OPT_QUIET, OPT_VERBOSE,
	OPT_VERSION, OPT_METRIC, OPT_TAG, OPT_PARAM, OPT_LINEAGE,
	OPT_DESCRIPTION, OPT_OUTPUT, OPT_STAGE, OPT_SINCE, OPT_MODEL,
	OPT_USER, OPT_FULL, OPT_VERIFY, OPT_ALL, OPT_THRESHOLD, OPT_NONE,
	OPT_HEAD, OPT_NO_WAIT, OPT_WAIT,
};

#endif
