/* config.h — mreg.conf, an INI file (see mreg.conf.example, which documents
 * every key with its default).
 *
 *	[store]        path, backend, pack_size, dedup_verify, durability,
 *	               map_size
 *	[s3]           endpoint, bucket, region, path_style, credentials,
 *	               key_prefix, gc_grace, timeout
 *	[cache]        path, size, min_free, readahead, prefetch_on_promote
 *	[index]        backend
 *	[postgres]     conninfo, schema, connections, timeout
 *	[chunker]      min_size, avg_size, max_size
 *	[mount]        allow_other, default_permissions, readahead, max_threads
 *	[log]          level
 *	[stage NAME]   promote_users, promote_groups, require_stage, protect,
 *	               require_metric
 *	[hooks]        on_register, on_promote, timeout, secret_file, ca_file,
 *	               attempts, attempt_timeout
 *	[limits]       open_files_per_user, open_files_reserve
 *	[serve]        passthrough, path, size, hydrate_on_promote
 *
 * Sizes accept K, M, G suffixes (powers of 1024); booleans are true/false,
 * yes/no, on/off, 1/0; lists are comma separated. A bad file is refused with
 * "FILE:LINE: reason".
 */
#ifndef MREG_CONFIG_H
#define MREG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk/chunker.h"

/* The store used when neither --store, MREG_STORE nor a config names one:
 * $XDG_DATA_HOME/mreg or ~/.local/share/mreg, /var/lib/mreg for root. */
#define MREG_DEFAULT_STORE_ROOT "/var/lib/mreg"

/* Where the chunks are ([store] backend). */
enum config_backend {
	CONFIG_BACKEND_LOCAL = 0, /* pack files in the store (default) */
	CONFIG_BACKEND_S3,        /* pack objects in an S3 bucket, with a
				     chunk cache on this host */
};

/* Where the metadata is ([index] backend). */
enum config_index {
	CONFIG_INDEX_LMDB = 0,    /* an LMDB environment in the store (default) */
	CONFIG_INDEX_POSTGRES,    /* a PostgreSQL database many hosts share */
};

enum durability {
	DURABILITY_FULL = 0, /* close() returning 0 means on disk (default) */
	DURABILITY_NONE,     /* no fsync at all: benchmarks and scratch stores */
};

struct stage_policy {
	char name[65];
	char **promote_users;   /* NULL-terminated, or NULL: anyone */
	char **promote_groups;  /* NULL-terminated, or NULL: anyone */
	char require_stage[65]; /* "" for none */
	char *require_metric;   /* e.g. "auc >= 0.9", or NULL */
	bool protect;           /* may not be removed, only replaced */
};

struct mreg_config {
	char *path;             /* the file read, or NULL for defaults */
	char *store;            /* store directory; NULL: the default */
	enum config_backend backend; /* (local) */
	uint64_t pack_size;     /* pack files roll over at this size (64M) */
	bool dedup_verify;      /* compare bytes on an id match (true) */
	enum durability durability;
	uint64_t map_size;      /* initial LMDB map size (64M); grows itself */
	struct chunker_params chunker;
	bool allow_other;       /* mount option (false) */
	bool default_permissions; /* (true; forced with allow_other) */
	uint32_t readahead;     /* bytes of readahead on the mount (4M) */
	unsigned max_threads;   /* FUSE worker threads (64) */
	int log_level;          /* enum log_level (warn) */
	char *on_register;      /* hook program or URL, or NULL */
	char *on_promote;       /* hook program or URL, or NULL */
	unsigned hook_timeout;  /* seconds (30) */
	char *hook_secret_file; /* the key that signs URL hooks' deliveries
				   (config_secret_read()); NULL: none */
	char *hook_ca_file;     /* CAs a URL hook's server is checked with;
				   NULL: the system's */
	unsigned hook_attempts; /* a URL hook's delivery, tries at most (4) */
	unsigned hook_attempt_timeout; /* seconds one try may take (10) */
	unsigned open_files_per_user; /* spool descriptors a user (1000) */
	unsigned open_files_reserve;  /* descriptors kept for the daemon (256) */
	bool serve_passthrough; /* hot sealed files served by the kernel (true) */
	char *serve_path;       /* the serving cache; NULL: STORE/serve */
	uint64_t serve_size;    /* its bytes at most (16G; 0: no copies) */
	bool serve_hydrate_on_promote; /* hydrate a version promoted (false) */
	char *s3_endpoint;      /* "http[s]://host[:port]"; NULL: none */
	char *s3_bucket;        /* NULL: none (both needed with s3) */
	char *s3_region;        /* NULL: us-east-1 */
	bool s3_path_style;     /* endpoint/bucket/key, else bucket.host
				   (true) */
	char *s3_credentials;   /* AWS credentials file; NULL: the
				   environment's AWS_* */
	char *s3_key_prefix;    /* keys start with it ("" or ending in '/') */
	unsigned s3_gc_grace;   /* seconds an object stays busy for gc (3600) */
	unsigned s3_timeout;    /* seconds one request may take, its retries
				   included (30) */
	char *cache_path;       /* this host's chunk cache; NULL: STORE/cache */
	uint64_t cache_size;    /* its bytes at most (10G) */
	uint64_t cache_min_free; /* bytes it leaves free on its disk, at
				    least (1G; and 5 %) */
	uint64_t cache_readahead; /* bytes a sequential read fetches ahead
				     into it at most (16M; 0: none) */
	bool cache_prefetch_on_promote; /* a daemon fills it with a version
					   a stage is pointed at (false) */
	enum config_index index; /* (lmdb) */
	char *pg_conninfo;      /* libpq connection string, no password in
				   it; NULL: none (needed with postgres) */
	char *pg_schema;        /* schema of the tables; NULL: the
				   connection's search_path */
	unsigned pg_connections; /* connections a process opens at most (8) */
	unsigned pg_timeout;    /* seconds a metadata call may take, its
				   retries included (30) */
	struct stage_policy *stages;
	size_t nstages;
};

/* Fills cfg with the defaults. */
void config_init(struct mreg_config *cfg);
/* Frees what cfg owns; cfg may be reused after config_init(). */
void config_release(struct mreg_config *cfg);

/* Reads path into cfg (which must be config_init()ed; keys not in the file
 * keep their values). On a bad file returns -EINVAL and writes
 * "PATH:LINE: reason" into err; -errno when the file cannot be read
 * (err: "PATH: reason"), -EFBIG over 1 MiB, -ENOMEM. On any error cfg is
 * left as it was. [store] path must be absolute.
 *
 * Beyond config_parse(), it checks the file against this machine, since
 * the daemon runs the hooks it names as root: the file itself must be
 * trusted (config_path_trusted(); -EPERM, err "PATH: reason"), each hook
 * program must pass config_program_trusted(), a URL hook needs a
 * secret_file, the secret file must pass config_secret_read() and the
 * ca_file must be readable, and each user and group of a stage policy
 * must exist (-EINVAL, "PATH:LINE: reason" naming it). Whatever file it
 * comes from, a hook URL must pass webhook_url_check(). */
int config_load(struct mreg_config *cfg, const char *path, char *err,
		size_t errlen);

/* Whether the content of file path can be changed only by root and the
 * user this process runs as: it and every directory above it (of path as
 * given and as resolved) belong to one of them, and none is writable by
 * group or others, except a sticky directory (others cannot replace an
 * entry there they do not own). 0, -errno of realpath/stat, or -EPERM;
 * why (which may be NULL) gets the reason, naming the path at fault:
 * "'/srv/hooks' is writable by others (mode 0777)". */
int config_path_trusted(const char *path, char *why, size_t whylen);
/* Whether path may be run as a hook by this process (which may be root):
 * absolute, an existing regular file, executable, and neither it nor a
 * directory above it writable by anyone but root and the user this
 * process runs as (config_path_trusted()). Returns 0, or -EINVAL
 * (relative or empty), -errno of stat (-ENOENT...), -EACCES (not a
 * regular file, not executable), -EPERM (others may change it); why gets
 * the reason, naming the path at fault (why may be NULL). */
int config_program_trusted(const char *path, char *why, size_t whylen);

/* Whether hook (an on_register or on_promote value) is one this process
 * may run with cfg: a program passes config_program_trusted(); a URL
 * passes webhook_url_check() and needs cfg's secret_file (its deliveries
 * are signed). 0, or -errno as those return, -EINVAL for a URL without a
 * secret; why (which may be NULL) gets the reason. */
int config_hook_check(const struct mreg_config *cfg, const char *hook,
		      char *why, size_t whylen);

/* Longest secret a secret file may hold. */
#define CONFIG_SECRET_MAX 1024

/* Reads the secret of file path (a [hooks] secret_file) into buf (size
 * bytes; buf may be NULL to check the file only): its bytes, without
 * the line ends at its end. The file must be a regular file owned by
 * root or this process's user that neither group nor others may read
 * or write (mode 0600 or 0400), as the S3 credentials file must be, and
 * hold 1 to CONFIG_SECRET_MAX bytes. Returns the secret's length, or
 * -errno of open/fstat/read, -EPERM (open to others, another owner),
 * -EINVAL (not a regular file, empty), -EFBIG (too long), -ERANGE (does
 * not fit in size); why (which may be NULL) gets the reason, naming the
 * path. Never logs the secret; a caller wipes buf when done. */
int config_secret_read(const char *path, void *buf, size_t size, char *why,
		       size_t whylen);

/* Parses text (as from a file named name) into cfg; as config_load(). */
int config_parse(struct mreg_config *cfg, const char *name, const char *text,
		 size_t len, char *err, size_t errlen);

/* The policy for stage (its name compared regardless of case), or NULL
 * when the config sets none. */
const struct stage_policy *config_stage(const struct mreg_config *cfg,
					const char *stage);

/* Picks the store directory: explicit (--store), then $MREG_STORE, then
 * cfg->store, then the embedded default (empty strings count as unset). A
 * relative path is made absolute against the current directory, since
 * the daemon changes to / when it detaches. Returns a malloc'ed path or
 * NULL on ENOMEM. */
char *config_store_path(const struct mreg_config *cfg, const char *explicit);

/* Parses "123", "64K", "1M", "2G". -EINVAL on anything else or overflow. */
int config_parse_size(const char *s, uint64_t *ret);
/* Parses a boolean word. -EINVAL on anything else. */
int config_parse_bool(const char *s, bool *ret);

/* A require_metric rule, "auc >= 0.9": the version's user.mreg.metric.KEY
 * must compare true against value. The key fits an xattr name:
 * 255 - strlen("user.mreg.metric."). */
#define CONFIG_METRIC_KEY_MAX 238
struct metric_rule {
	char key[CONFIG_METRIC_KEY_MAX + 1];	/* [A-Za-z0-9_.-]+ */
	char op[3];				/* = != < <= > >= */
	double value;				/* finite */
};

/* Parses "KEY OP NUMBER" (blanks around OP optional; NUMBER decimal, no
 * hex, inf or nan). -EINVAL when malformed. Config values are stored as
 * "KEY OP NUMBER", so stage_policy.require_metric always parses. */
int config_parse_metric_rule(const char *s, struct metric_rule *ret);
/* Whether v satisfies r. */
bool config_metric_rule_holds(const struct metric_rule *r, double v);

#endif
