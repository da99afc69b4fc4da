/* mregfs.c — the daemon: command line, config, store, mount, event loop.
 *
 *	mregfs [-c FILE] [--store DIR] [-f] [-d] [-s] [-o OPTS] MOUNTPOINT
 *	mregfs STORE MOUNTPOINT [-o OPTS]          (the form mount(8) uses)
 *
 * The mount always has auto_unmount (a daemon killed with SIGKILL leaves no
 * dead mount behind: fusermount3 lazily unmounts it), fsname=mregfs and
 * subtype=mregfs; allow_other brings default_permissions with it. Nothing
 * is written outside the store (no pid or lock file), the registry
 * clears stale LMDB readers when it opens, and a dead mregfs mount that
 * auto_unmount missed is detached before mounting (see
 * detach_dead_mounts()), so a killed daemon blocks no later start. The
 * daemon raises its open-file limit to the hard limit: a file open through
 * the mount may hold a descriptor (a spool file, a pack). Extra -o options
 * for fstab: config=FILE, store=DIR; mount options that only mean
 * something to mount(8) (noauto, nofail, _netdev, user, x-*, ...) are
 * ignored.
 */
#include "mregfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#ifndef MREGFS_DEFAULT_CONFIG
#define MREGFS_DEFAULT_CONFIG "/etc/mreg/mreg.conf"
#endif
#ifndef MREG_VERSION
#define MREG_VERSION "0.1"
#endif

#define TICK_SECONDS 2
#define IDLE_THREADS 16  /* FUSE workers kept waiting for requests */

/* The command line, read with fuse_opt_parse() (as libfuse's
 * passthrough_ll.c reads its own): the int fields are fuse_opt's. */
struct options {
	char *config;        /* -c, --config, -o config= */
	char *store;         /* --store, -o store=, or the first argument */
	char *mountpoint;
	int foreground, debug, single_thread, allow_other, help, version;
	char *fuse_opts;     /* other -o options, comma separated, or NULL */
	const char *pos[2];  /* the arguments that are not options */
	int npos, err;
};

/* The thread that calls reg_tick() (and gives freed memory back) and
 * raises the readahead. */
struct housekeeper {
	struct mregfs *fs;
	const char *mountpoint;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mregfs [-c FILE] [--store DIR] [-f] [-d] [-s] [-o OPTS]\n"
		"              MOUNTPOINT\n"
		"       mregfs STORE MOUNTPOINT [-o OPTS]\n"
		"\n"
		"Mounts the mreg model registry at MOUNTPOINT.\n"
		"\n"
		"  -c, --config FILE  configuration (default\n"
		"                     " MREGFS_DEFAULT_CONFIG " when present)\n"
		"  --store DIR        the store, made beforehand with\n"
		"                     'mreg --store DIR init' (else\n"
		"                     $MREG_STORE, the config's [store] path,\n"
		"                     or the default: made when missing)\n"
		"  -f                 stay in the foreground, log to stderr\n"
		"  -d                 debug: foreground, log every request\n"
		"  -s                 single-threaded\n"
		"  -o OPTS            mount options: allow_other, ro,\n"
		"                     config=FILE, store=DIR, those of fuse(8)\n"
		"  -h, --help         this text\n"
		"  -V, --version      the version\n"
		"\n"
		"MOUNTPOINT may be /dev/fd/N: a /dev/fuse descriptor the caller\n"
		"mounted (the daemon then needs no privilege to mount).\n"
		"\n"
		"Unmount with: fusermount3 -u MOUNTPOINT\n");
}

static int append_opt(char **list, const char *opt)
{
	size_t len = *list ? strlen(*list) : 0, add = strlen(opt);
	char *p;

	p = realloc(*list, len + add + 2);
	if (!p)
		return -ENOMEM;
	if (len)
		p[len++] = ',';
	memcpy(p + len, opt, add + 1);
	*list = p;
	return 0;
}

static bool ignored_opt(const char *o)
{
	static const char *const words[] = {
		"auto", "noauto", "nofail", "_netdev", "user", "users",
		"owner", "group", "defaults", "nouser", "rw", NULL,
	};
	int i;

	if (!strncmp(o, "x-", 2) || !strncmp(o, "comment=", 8) || !*o)
		return true;
	for (i = 0; words[i]; i++)
		if (!strcmp(o, words[i]))
			return true;
	return false;
}

enum { KEY_POSITIONAL_OR_OTHER = -1, KEY_CONFIG, KEY_STORE };

#define OPT(t, field, v) { t, offsetof(struct options, field), v }
static const struct fuse_opt option_spec[] = {
	/* a value given twice: the last one wins (mregfs_opt keeps one) */
	FUSE_OPT_KEY("-c ", KEY_CONFIG),
	FUSE_OPT_KEY("--config ", KEY_CONFIG),
	FUSE_OPT_KEY("--config=", KEY_CONFIG),
	FUSE_OPT_KEY("config=", KEY_CONFIG),     /* -o config=FILE */
	FUSE_OPT_KEY("--store ", KEY_STORE),
	FUSE_OPT_KEY("--store=", KEY_STORE),
	FUSE_OPT_KEY("store=", KEY_STORE),       /* -o store=DIR */
	OPT("-f", foreground, 1),
	OPT("-d", debug, 1),
	OPT("--debug", debug, 1),
	OPT("-s", single_thread, 1),
	OPT("allow_other", allow_other, 1),
	OPT("-h", help, 1),
	OPT("--help", help, 1),
	OPT("-V", version, 1),
	OPT("--version", version, 1),
	FUSE_OPT_END
};

/* The value of "-c FILE", "--store=DIR", "config=FILE", ...: fuse_opt
 * hands the callback the option's text with its value after it ("-c"
 * "FILE" as "-cFILE", "--store" "DIR" as "--storeDIR"). */
static const char *opt_value(const char *arg)
{
	static const char *const names[] = {
		"--config=", "--config", "--store=", "--store", "-c",
		"config=", "store=",
	};
	size_t i, n;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		n = strlen(names[i]);
		if (!strncmp(arg, names[i], n))
			return arg + n;
	}
	return arg;
}

static int set_str(char **dst, const char *val)
{
	free(*dst);
	*dst = strdup(val);
	return *dst ? 0 : -ENOMEM;
}

/* fuse_opt_parse()'s callback for what option_spec does not set: values
 * of ours, arguments, and -o options for libfuse (mount(8)-only words
 * dropped; libfuse refuses what it does not know). Returns 0 (taken) or
 * -1 (stop: o->err, or an unknown option said on stderr). */
static int mregfs_opt(void *data, const char *arg, int key,
		      struct fuse_args *outargs)
{
	struct options *o = data;

	(void)outargs;
	switch (key) {
	case KEY_CONFIG:
		o->err = set_str(&o->config, opt_value(arg));
		return o->err ? -1 : 0;
	case KEY_STORE:
		o->err = set_str(&o->store, opt_value(arg));
		return o->err ? -1 : 0;
	case FUSE_OPT_KEY_NONOPT:
		if (o->npos == 2) {
			fprintf(stderr, "mregfs: too many arguments\n");
			return -1;
		}
		o->pos[o->npos++] = arg;
		return 0;
	case FUSE_OPT_KEY_OPT:
		if (arg[0] == '-') {
			fprintf(stderr, "mregfs: unknown option '%s'\n", arg);
			return -1;
		}
		if (ignored_opt(arg))
			return 0;
		o->err = append_opt(&o->fuse_opts, arg);
		return o->err ? -1 : 0;
	default:
		return -1;
	}
}

static void options_release(struct options *o)
{
	free(o->config);
	free(o->store);
	free(o->mountpoint);
	free(o->fuse_opts);
}

/* True when the top-most mount at path (absolute, resolved) is an mregfs
 * mount, per /proc/self/mountinfo (no file system call). */
static bool mregfs_mount_at(const char *path)
{
	char line[8192], mp[PATH_MAX], *sep;
	bool ours = false;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		const char *s;
		char *d = mp;
		int field = 0;

		/* field 5 is the mount point, octal-escaped */
		for (s = line; *s && field < 4; s++)
			if (*s == ' ')
				field++;
		while (*s && *s != ' ' && d < mp + sizeof(mp) - 1) {
			if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
			    s[2] >= '0' && s[2] <= '7' &&
			    s[3] >= '0' && s[3] <= '7') {
				*d++ = (char)((s[1] - '0') * 64 +
					      (s[2] - '0') * 8 + (s[3] - '0'));
				s += 4;
			} else {
				*d++ = *s++;
			}
		}
		*d = '\0';
		if (strcmp(mp, path))
			continue;
		/* after " - ": the file system type; the last entry is the
		 * top of the stack */
		sep = strstr(line, " - ");
		ours = sep && !strncmp(sep + 3, "fuse.mregfs ", 12);
	}
	fclose(f);
	return ours;
}

/* fusermount3 -u -z path: how a user without CAP_SYS_ADMIN unmounts. */
static int fusermount_detach(const char *path)
{
	/* posix_spawn takes char *const argv[] (execve's type): the words
	 * are arrays of ours, not string literals */
	char prog[] = "fusermount3", u[] = "-u", z[] = "-z", q[] = "-q",
	     end[] = "--";
	char *const argv[] = { prog, u, z, q, end, (char *)path, NULL };
	extern char **environ;
	pid_t pid;
	int st, r;

	r = posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ);
	if (r)
		return -r;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EPERM;
}

/* A daemon killed with SIGKILL leaves its mount to fusermount3's
 * auto_unmount watcher, which unmounts only when opening the mount point
 * answers ENOTCONN; when that open races with the kernel tearing the
 * connection down it gets another error and the dead mount stays
 * (tests/fs/test_kills.py saw it about once in 30 kills with requests in
 * flight). A new mount would stack on top of it, and the dead one come
 * back on unmount. So detach dead mregfs mounts at the mount point first:
 * dead means statfs(2), which the kernel never answers from a cache,
 * fails with ENOTCONN; nobody else's file system is touched. */
static void detach_dead_mounts(const char *path)
{
	struct statfs sf;
	int i, r;

	for (i = 0; i < 16; i++) {
		if (!mregfs_mount_at(path) || statfs(path, &sf) == 0 ||
		    errno != ENOTCONN)
			return;
		r = umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 ?
			-errno : 0;
		if (r == -EPERM)
			r = fusermount_detach(path);
		if (r < 0) {
			fprintf(stderr, "mregfs: cannot detach the dead mount "
				"at '%s': %s\n", path, strerror(-r));
			return;
		}
		fprintf(stderr, "mregfs: detached the dead mount at '%s'\n",
			path);
	}
}

/* "/dev/fd/N": the caller opened /dev/fuse and mounted it (as a container
 * runtime does, or a parent that keeps CAP_SYS_ADMIN from the daemon), and
 * passes the descriptor; libfuse then mounts nothing. */
static bool dev_fd(const char *s)
{
	if (strncmp(s, "/dev/fd/", 8) || !s[8])
		return false;
	return s[8 + strspn(s + 8, "0123456789")] == '\0';
}

/* Returns 0, 1 for "done, exit 0" (help, version), or -1 after printing
 * what is wrong. */
static int parse_args(int argc, char **argv, struct options *o)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	const char **pos = o->pos;
	int npos, r;

	r = fuse_opt_parse(&args, o, option_spec, mregfs_opt);
	fuse_opt_free_args(&args);
	if (r < 0) {
		if (o->err)
			fprintf(stderr, "mregfs: %s\n", strerror(-o->err));
		else
			usage(stderr);
		return -1;
	}
	if (o->help) {
		usage(stdout);
		return 1;
	}
	if (o->version) {
		printf("mregfs %s (libfuse %s)\n", MREG_VERSION,
		       fuse_pkgversion());
		return 1;
	}
	if (o->debug)
		o->foreground = 1;
	npos = o->npos;
	if (npos == 0) {
		fprintf(stderr, "mregfs: no mount point given\n");
		usage(stderr);
		return -1;
	}
	/* mount(8) passes a source first; "none" or "mregfs" name none. */
	if (npos == 2 && strcmp(pos[0], "none") && strcmp(pos[0], "mregfs") &&
	    set_str(&o->store, pos[0]) < 0)
		return -1;
	if (dev_fd(pos[npos - 1])) {
		/* mounted already by the caller, who passes /dev/fuse: kept
		   as libfuse wants it */
		o->mountpoint = strdup(pos[npos - 1]);
		return o->mountpoint ? 0 : -1;
	}
	o->mountpoint = realpath(pos[npos - 1], NULL);
	if (!o->mountpoint && errno == ENOTCONN) {
		/* the mount point itself is a dead mount (see above) */
		char *abs = util_path_absolute(pos[npos - 1]);

		if (abs)
			detach_dead_mounts(abs);
		free(abs);
		o->mountpoint = realpath(pos[npos - 1], NULL);
	}
	if (!o->mountpoint) {
		fprintf(stderr, "mregfs: bad mount point '%s': %s\n",
			pos[npos - 1], strerror(errno));
		return -1;
	}
	return 0;
}

/* The kernel's bdi readahead (128 KiB by default) caps what FUSE_INIT can
 * ask for; raise it through sysfs where we may. Runs off the request path:
 * stat() of the mount point returns once the kernel finished FUSE_INIT,
 * which would otherwise lower it again. */
static void raise_readahead(const char *mountpoint, unsigned bytes)
{
	char path[128], val[32];
	struct stat st;
	int fd, n;

	if (bytes < 4096 || stat(mountpoint, &st) < 0 || !S_ISDIR(st.st_mode))
		return; /* (a /dev/fd/N mount: its bdi is not known here) */
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb",
		 major(st.st_dev), minor(st.st_dev));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		log_debug("cannot open '%s': %s", path, strerror(errno));
		return;
	}
	n = snprintf(val, sizeof(val), "%u\n", bytes / 1024);
	if (write(fd, val, (size_t)n) != n)
		log_debug("cannot write '%s': %s", path, strerror(errno));
	close(fd);
}

static void *housekeeping(void *arg)
{
	struct housekeeper *h = arg;
	struct timespec deadline;

	raise_readahead(h->mountpoint, h->fs->readahead);
	pt_tick(h->fs); /* after FUSE_INIT: the kernel's answer is known */
	pthread_mutex_lock(&h->lock);
	while (!h->stop) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += TICK_SECONDS;
		while (!h->stop &&
		       pthread_cond_timedwait(&h->cond, &h->lock,
					      &deadline) != ETIMEDOUT)
			;
		if (h->stop)
			break;
		pthread_mutex_unlock(&h->lock);
		reg_tick(h->fs->reg);
		pt_tick(h->fs);
#ifdef __GLIBC__
		/* Give back what a burst freed (10,000 files opened at once
		 * and closed): glibc keeps freed memory in its arenas, and
		 * a long-running daemon's RSS would stay at its peak. */
		malloc_trim(0);
#endif
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static int housekeeper_start(struct housekeeper *h, struct mregfs *fs,
			     const char *mountpoint)
{
	pthread_condattr_t ca;
	int r;

	h->fs = fs;
	h->mountpoint = mountpoint;
	h->stop = false;
	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cond, &ca);
	pthread_condattr_destroy(&ca);
	r = pthread_create(&h->thread, NULL, housekeeping, h);
	if (r) {
		pthread_cond_destroy(&h->cond);
		pthread_mutex_destroy(&h->lock);
		return log_err(-r, "cannot start the housekeeping thread");
	}
	return 0;
}

static void housekeeper_stop(struct housekeeper *h)
{
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
}

/* Reads the configuration: -c FILE must load; without it the default file
 * is read when it exists. A bad file is refused with FILE:LINE: reason. */
static int load_config(const struct options *o, struct mreg_config *cfg)
{
	const char *path = o->config;
	char err[512] = "";
	int r;

	if (!path) {
		if (access(MREGFS_DEFAULT_CONFIG, F_OK) != 0)
			return 0;
		path = MREGFS_DEFAULT_CONFIG;
	}
	r = config_load(cfg, path, err, sizeof(err));
	if ((r == -EINVAL || r == -EPERM) && err[0]) {
		fprintf(stderr, "%s\n", err);
		return r;
	}
	if (r < 0) {
		fprintf(stderr, "mregfs: cannot read '%s': %s\n", path,
			strerror(-r));
		return r;
	}
	return 0;
}

/* Every file open through the mount may hold a descriptor of the daemon
 * (a spool file, a pack not cached yet), and systemd and login sessions
 * start daemons with a soft limit of 1024: raise it to the hard limit. */
static void raise_nofile_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn(-errno, "cannot raise the open file limit");
}

static void policy_differs(void *arg, const char *msg)
{
	log_msg(LOG_LVL_WARN, "config '%s': %s", (const char *)arg, msg);
}

/* Stage policies and hooks are the registry's (SPEC §6): the config's are
 * imported only into a registry that never had any (the first start after
 * they moved there; core logs it), and a config that disagrees with the
 * stored ones is reported, not applied. A config whose policy cannot be
 * imported (an unknown group, a missing hook program) stops the start. */
static int adopt_policy(struct reg_registry *reg, const struct mreg_config *cfg)
{
	const char *path = cfg->path ? cfg->path : "(none)";
	struct reg_caller self;
	int r;

	reg_caller_self(&self);
	r = reg_policy_import(reg, &self, cfg, REG_POLICY_IF_NONE);
	if (r < 0 && r != -EEXIST)
		return log_err(r, "cannot import the stage policies and hooks "
			       "of config '%s'", path);
	r = reg_policy_compare(reg, cfg, policy_differs, (void *)path);
	if (r > 0)
		log_msg(LOG_LVL_WARN, "config '%s' disagrees with the policy "
			"stored in the registry (%d difference%s): the stored "
			"policy applies (see 'mreg policy show'; 'mreg policy "
			"import -c %s' stores the config's)", path, r,
			r == 1 ? "" : "s", path);
	return 0;
}

/* Opens the store. Only `mreg init` makes a store, and the daemon the
 * default one (no store named on its command line: $MREG_STORE, the
 * config's, the embedded default): a store named here that is not there
 * is as likely a typo as a new store. */
static int open_registry(const struct mreg_config *cfg, const char *store,
			 bool named, const char *mountpoint,
			 struct reg_registry **ret)
{
	int r;

	r = reg_open_flags(cfg, store, named ? REG_OPEN_EXISTING : 0, ret);
	if (r == -ENOENT) {
		log_msg(LOG_LVL_ERROR, "no store at '%s': make one with 'mreg "
			"--store %s init'", store, store);
		return r;
	}
	if (r < 0)
		return log_err(r, "cannot open store '%s'", store);
	r = reg_set_mount(*ret, mountpoint);
	if (r < 0)
		log_err(r, "cannot open store '%s'", store);
	else
		r = adopt_policy(*ret, cfg);
	if (r < 0) {
		reg_close(*ret);
		*ret = NULL;
	}
	return r;
}

/* Whether the kernel checks permissions (default_permissions). */
static bool kernel_checks(const struct options *o,
			  const struct mreg_config *cfg)
{
	return o->allow_other || cfg->allow_other || cfg->default_permissions;
}

/* The option string handed to libfuse: ours first, so that the caller's
 * fsname= or subtype= win. */
static char *fuse_option_string(const struct options *o,
				const struct mreg_config *cfg)
{
	bool allow_other = o->allow_other || cfg->allow_other;
	char *s = NULL;

	if (append_opt(&s, "auto_unmount,fsname=mregfs,subtype=mregfs") < 0)
		goto fail;
	if (kernel_checks(o, cfg) &&
	    append_opt(&s, "default_permissions") < 0)
		goto fail;
	if (allow_other && append_opt(&s, "allow_other") < 0)
		goto fail;
	if (o->fuse_opts && append_opt(&s, o->fuse_opts) < 0)
		goto fail;
	return s;
fail:
	free(s);
	return NULL;
}

/* The event loop, until unmount or a signal: one thread, or workers as
 * requests come (max_threads, 0: 64), each with its own /dev/fuse
 * descriptor (clone_fd). Returns what the loop returned. */
static int serve_requests(struct fuse_session *se, bool single_thread,
			  unsigned max_threads)
{
	struct fuse_loop_config *lc;
	int r;

	if (single_thread)
		return fuse_session_loop(se);
	lc = fuse_loop_cfg_create();
	if (!lc)
		return log_err(-ENOMEM, "cannot start the event loop");
	fuse_loop_cfg_set_clone_fd(lc, 1);
	fuse_loop_cfg_set_max_threads(lc, max_threads ? max_threads : 64);
	/* A burst (a serving fleet starting, 10,000 closes whose RELEASEs
	 * arrive at once) may start max_threads workers; keeping them all
	 * idle afterwards would hold a descriptor (clone_fd) and a touched
	 * stack each for good. */
	fuse_loop_cfg_set_idle_threads(lc, max_threads &&
				       max_threads < IDLE_THREADS ?
				       max_threads : IDLE_THREADS);
	r = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	return r;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct mreg_config cfg;
	struct mregfs fs = { 0 };
	struct housekeeper hk;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	char *store = NULL, *path = NULL, *fopts = NULL, *mpath = NULL;
	bool mounted = false, handlers = false, threads = false;
	int r, ret = 1;

	log_set_prog("mregfs");
	config_init(&cfg);
	r = parse_args(argc, argv, &o);
	if (r) {
		ret = r > 0 ? 0 : 1;
		goto out_args;
	}
	if (load_config(&o, &cfg) < 0)
		goto out_args;
	log_set_level(o.debug ? LOG_LVL_DEBUG : (enum log_level)cfg.log_level);
	raise_nofile_limit();

	path = config_store_path(&cfg, o.store);
	/* config_store_path() made it absolute; resolved when it exists */
	store = path ? realpath(path, NULL) : NULL;
	if (path && !store)
		store = strdup(path);
	if (!store) {
		fprintf(stderr, "mregfs: %s\n", strerror(ENOMEM));
		goto out;
	}
	/* Open once before detaching, so that a bad store is reported on the
	 * terminal with exit status 1. LMDB must not cross fork(): the
	 * detached daemon opens it again. */
	if (open_registry(&cfg, store, o.store != NULL, o.mountpoint,
			  &fs.reg) < 0)
		goto out;
	if (!o.foreground) {
		reg_close(fs.reg);
		fs.reg = NULL;
	}
	fs.cfg = &cfg;
	fs.readahead = cfg.readahead;
	fs.max_background = cfg.max_threads > 64 ? cfg.max_threads : 64;
	fs.kernel_checks = kernel_checks(&o, &cfg);

	fopts = fuse_option_string(&o, &cfg);
	if (!fopts || fuse_opt_add_arg(&args, argv[0]) < 0 ||
	    fuse_opt_add_arg(&args, "-o") < 0 ||
	    fuse_opt_add_arg(&args, fopts) < 0 ||
	    (o.debug && fuse_opt_add_arg(&args, "-d") < 0)) {
		fprintf(stderr, "mregfs: %s\n", strerror(ENOMEM));
		goto out;
	}
	detach_dead_mounts(o.mountpoint);
	/* canonical, as mountinfo will show it; not once mounted: a look at
	   the mount point would wait for us */
	mpath = realpath(o.mountpoint, NULL);
	se = fuse_session_new(&args, &mregfs_ops, sizeof(mregfs_ops), &fs);
	if (!se)
		goto out; /* libfuse said why */
	fs.se = se;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	handlers = true;
	if (fuse_session_mount(se, o.mountpoint) != 0)
		goto out;
	mounted = true;
	if (!mpath || closer_mount_dev(mpath, &fs.dev) < 0)
		log_warn(-ENOENT, "cannot find the mount '%s' in "
			 "/proc/self/mountinfo: files at a model root register "
			 "when their last handle is released",
			 mpath ? mpath : o.mountpoint);
	else
		fs.dev_known = true;
	if (fuse_daemonize(o.foreground) != 0)
		goto out;
	if (!o.foreground) {
		log_use_syslog("mregfs");
		if (open_registry(&cfg, store, true, o.mountpoint,
				  &fs.reg) < 0)
			goto out;
	}
	log_info("serving store '%s' at '%s'", store, o.mountpoint);
	pt_start(&fs);

	if (inval_start(se, &fs.inval) < 0)
		goto out;
	/* other hosts' changes, as they commit (an index in PostgreSQL) */
	if (reg_watch_start(fs.reg, fs_changed, &fs) < 0)
		goto out;
	if (housekeeper_start(&hk, &fs, o.mountpoint) < 0)
		goto out;
	threads = true;

	r = serve_requests(se, o.single_thread, cfg.max_threads);
	/* 0, or the signal that ended the loop: a clean stop */
	ret = r < 0 ? 1 : 0;
	if (r < 0)
		log_err(r, "event loop failed");
out:
	/* Unmount before stopping the threads: a pending invalidation or
	 * stat() then fails instead of waiting on a request nobody serves. */
	if (mounted)
		fuse_session_unmount(se);
	if (threads)
		housekeeper_stop(&hk);
	pt_stop(&fs);
	reg_watch_stop(fs.reg);	/* it queues invalidations */
	inval_stop(fs.inval);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	reg_close(fs.reg);
	fuse_opt_free_args(&args);
	free(fopts);
	free(store);
	free(path);
	free(mpath);
out_args:
	options_release(&o);
	config_release(&cfg);
	return ret;
}
