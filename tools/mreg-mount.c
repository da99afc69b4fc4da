/* mreg-mount.c — the CLI's second backend: a mounted registry.
 *
 * When --store (or $MREG_STORE) names the root of an mregfs mount, mreg
 * works with ordinary file system calls on the mount instead of opening
 * the store. The store is readable by its owner only (the mount is the only
 * door for other users), so this is how a user who cannot read it does,
 * with mreg, everything the daemon lets them do. The daemon decides every
 * rule (names, sealing, stage policy, the next version number); this file
 * only says each command in file system terms:
 *
 *	promote    symlink "../V" as stages/S; when S exists, a symlink with
 *	           a temporary stage name renamed over S (what ln -sfn does)
 *	rollback   setxattr user.mreg.rollback = S on the stages directory:
 *	           the daemon picks the earlier target and promotes it
 *	seal       chmod a-w of the version directory
 *	rm         rmdir of a version or model, unlink of stages/S
 *	push       one file and no metadata: copied to a dot name at the
 *	           model root and renamed to its own name, which registers it
 *	           as the next version (the daemon picks the number; the
 *	           version is found by the file's inode number); otherwise a
 *	           dot-named draft is filled and given its metadata, then
 *	           renamed to the version asked for, or registered as the next
 *	           version by setxattr user.mreg.register (the daemon names
 *	           and seals it; found again by its inode number)
 *	meta       setxattr, removexattr, listxattr of user.mreg.*
 *	ls, show   readdir, stat, readlink, getxattr
 *	cat        read
 *	history    .mreg/history/M, the daemon's own history text
 *	audit      .mreg/audit.log (--verify: core's chain checker,
 *	           reg_audit_check_*, over the lines read)
 *	search     every version's metadata, matched with search.h
 *
 * A refusal by the daemon is EACCES; the reason it gave is read back from
 * the audit trail (the refused record with this process's pid) and logged,
 * so that the message says why, as it does on a store. An EACCES the
 * kernel gave (mode bits, with default_permissions) has no record: the
 * message then shows the mode and owner that refused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mreg.h"
#include "query/search.h"

#define FUSE_SUPER_MAGIC 0x65735546
#define COPY_BUF (1u << 20)

struct mreg_mount {
	char *root;
	int64_t opened;       /* refusals older than this are not ours */
};

static void freep(void *p)
{
	free(*(void **)p);
}

#define autofree __attribute__((cleanup(freep)))

/* m's root joined with models/MODEL[/VERSION[/PATH]] (NULLs end it). */
static char *model_path(const struct mreg_mount *m, const char *model,
			const char *version, const char *path)
{
	if (!version)
		return xasprintf("%s/models/%s", m->root, model);
	if (!path)
		return xasprintf("%s/models/%s/%s", m->root, model, version);
	return xasprintf("%s/models/%s/%s/%s", m->root, model, version, path);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* The names in directory dir, sorted as the registry sorts them (bytes),
 * without "." and "..". */
static int list_dir(const char *dir, char ***ret, size_t *ret_n)
{
	struct dirent *de;
	char **v = NULL;
	size_t n = 0, cap = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return -errno;
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		XGROW(v, cap, n);
		v[n] = strdup(de->d_name);
		if (!v[n++])
			die_oom();
	}
	if (errno) {
		int r = -errno;

		closedir(d);
		names_free(v, n);
		return r;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), name_cmp);
	*ret = v;
	*ret_n = n;
	return 0;
}

/* The whole of a file (the .mreg files report size 0: read to EOF), NUL
 * terminated. */
static int slurp(const char *path, char **ret, size_t *ret_len)
{
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap);
	ssize_t n;
	int fd, r = 0;

	if (!buf)
		die_oom();
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		free(buf);
		return r;
	}
	for (;;) {
		if (cap - len < 4096) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* The value of user.mreg.KEY of path (malloc'ed, NUL terminated): its
 * length, or -errno (-ENODATA when it has none). */
static ssize_t xget(const char *path, const char *key, char **ret)
{
	autofree char *name = xasprintf(REG_XATTR_PREFIX "%s", key);
	ssize_t n, m;
	char *buf;

	for (;;) {
		n = lgetxattr(path, name, NULL, 0);
		if (n < 0)
			return -errno;
		buf = xmalloc((size_t)n + 1);
		m = lgetxattr(path, name, buf, (size_t)n);
		if (m >= 0)
			break;
		free(buf);
		if (errno != ERANGE)
			return -errno;
	}
	buf[m] = '\0';
	*ret = buf;
	return m;
}

/* "2026-01-31T12:00:00.123Z" as seconds since the epoch (0 when it does
 * not parse). */
static int64_t iso_secs(const char *s)
{
	struct tm tm;
	char *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return 0;
	return (int64_t)timegm(&tm);
}

static int64_t xget_time(const char *path, const char *key)
{
	autofree char *v = NULL;

	return xget(path, key, &v) > 0 ? iso_secs(v) : 0;
}

static uint64_t xget_u64(const char *path, const char *key)
{
	autofree char *v = NULL;

	return xget(path, key, &v) > 0 ? strtoull(v, NULL, 10) : 0;
}

/* "xxh128:<32 hex digits>" into an id (zero when absent). */
static void xget_digest(const char *path, struct mreg_id *ret)
{
	autofree char *v = NULL;
	const char *h;
	unsigned x;
	int i;

	memset(ret, 0, sizeof(*ret));
	if (xget(path, "digest", &v) <= 0 || strncmp(v, "xxh128:", 7) ||
	    strlen(v + 7) != 2 * MREG_ID_LEN)
		return;
	h = v + 7;
	for (i = 0; i < MREG_ID_LEN; i++) {
		if (sscanf(h + 2 * i, "%2x", &x) != 1)
			return;
		ret->b[i] = (uint8_t)x;
	}
}

/* ---- the audit trail ---------------------------------------------------- */

/* Calls fn with each line of file p of .mreg/ (NUL terminated in place of
 * its newline; opening the file takes a snapshot). fn returns non-zero to
 * stop (a negative value is returned). */
static int mregdir_lines(const char *p,
			 int (*fn)(void *arg, char *line, size_t len),
			 void *arg)
{
	autofree char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int r = 0;

	f = fopen(p, "re");
	if (!f)
		return -errno;
	while ((n = getline(&line, &cap, f)) >= 0) {
		if (n && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n && (r = fn(arg, line, (size_t)n)) != 0)
			break;
	}
	if (r == 0 && ferror(f))
		r = -EIO;
	fclose(f);
	return r < 0 ? r : 0;
}

/* mregdir_lines() of .mreg/audit.log: one record a line. */
static int audit_lines(struct mreg_mount *m,
		       int (*fn)(void *arg, char *line, size_t len), void *arg)
{
	autofree char *p = xasprintf("%s/.mreg/audit.log", m->root);

	return mregdir_lines(p, fn, arg);
}

/* The fields of an audit record that stage history needs. */
struct arec {
	uint64_t seq;
	int64_t time;
	uid_t uid;
	pid_t pid;
	char op[32], result[16];
	char model[REG_NAME_MAX + 1], version[REG_NAME_MAX + 1];
	char from[REG_NAME_MAX + 1], stage[REG_STAGE_MAX + 1];
};

static void field(const char *line, size_t len, const char *key, char *buf,
		  size_t size)
{
	if (json_get(line, len, key, buf, size) < 0)
		buf[0] = '\0';
}

static void arec_parse(const char *line, size_t len, struct arec *a)
{
	char num[64];

	memset(a, 0, sizeof(*a));
	field(line, len, "seq", num, sizeof(num));
	a->seq = strtoull(num, NULL, 10);
	field(line, len, "time", num, sizeof(num));
	a->time = iso_secs(num);
	field(line, len, "uid", num, sizeof(num));
	a->uid = (uid_t)strtoul(num, NULL, 10);
	field(line, len, "pid", num, sizeof(num));
	a->pid = (pid_t)strtol(num, NULL, 10);
	field(line, len, "op", a->op, sizeof(a->op));
	field(line, len, "result", a->result, sizeof(a->result));
	field(line, len, "model", a->model, sizeof(a->model));
	field(line, len, "version", a->version, sizeof(a->version));
	field(line, len, "from", a->from, sizeof(a->from));
	field(line, len, "stage", a->stage, sizeof(a->stage));
}

struct refusal_scan {
	struct mreg_mount *m;
	pid_t pid;
	char reason[1024];
	bool found;
};

static int refusal_line(void *arg, char *line, size_t len)
{
	struct refusal_scan *s = arg;
	struct arec a;

	arec_parse(line, len, &a);
	if (a.pid != s->pid || strcmp(a.result, "refused") ||
	    a.time < s->m->opened - 1)
		return 0;
	field(line, len, "reason", s->reason, sizeof(s->reason));
	s->found = true;
	return 0;
}

/* After a failed call on path: for EACCES, logs why (the daemon's reason
 * from the audit trail, else the mode bits that made the kernel refuse),
 * for fail_errno() to put into its message. Returns r. */
static int refused(struct mreg_mount *m, int r, const char *path)
{
	struct refusal_scan s = { .m = m, .pid = getpid() };
	char mode[16], user[256];
	struct stat st;

	if (r != -EACCES)
		return r;
	if (audit_lines(m, refusal_line, &s) == 0 && s.found) {
		log_msg(LOG_LVL_WARN, "refused: %s", s.reason);
		return r;
	}
	if (lstat(path, &st) == 0)
		log_msg(LOG_LVL_WARN, "denied: '%s' is %s, owned by %s", path,
			mode_str(st.st_mode, mode, sizeof(mode)),
			util_uid_name(st.st_uid, user, sizeof(user)));
	else
		log_msg(LOG_LVL_WARN, "denied: the mount refused access to "
			"'%s'", path);
	return r;
}

static int model_exists(struct mreg_mount *m, const char *model)
{
	autofree char *p = model_path(m, model, NULL, NULL);
	struct stat st;

	if (reg_check_name(model) < 0)
		return -EINVAL;
	if (stat(p, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOENT;
}

/* ---- opening ------------------------------------------------------------ */

bool mount_detect(const char *dir)
{
	autofree char *trail = xasprintf("%s/.mreg/audit.log", dir);
	autofree char *models = xasprintf("%s/models", dir);
	struct statfs sf;
	struct stat st;

	if (statfs(dir, &sf) < 0 || sf.f_type != FUSE_SUPER_MAGIC)
		return false;
	return stat(trail, &st) == 0 && S_ISREG(st.st_mode) &&
	       stat(models, &st) == 0 && S_ISDIR(st.st_mode);
}

int mount_open(const char *dir, struct mreg_mount **ret)
{
	struct mreg_mount *m;

	if (!dir || !ret)
		return -EINVAL;
	if (!mount_detect(dir))
		return -ENOENT;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->root = strdup(dir);
	if (!m->root) {
		free(m);
		return -ENOMEM;
	}
	m->opened = (int64_t)time(NULL);
	srandom((unsigned)(time(NULL) ^ getpid()));
	*ret = m;
	return 0;
}

void mount_close(struct mreg_mount *m)
{
	if (!m)
		return;
	free(m->root);
	free(m);
}

const char *mount_path(const struct mreg_mount *m)
{
	return m->root;
}

/* ---- stages ------------------------------------------------------------- */

int mount_promote(struct mreg_mount *m, const char *model,
		  const char *version, const char *stage)
{
	autofree char *dir = model_path(m, model, "stages", NULL);
	autofree char *link = model_path(m, model, "stages", stage);
	autofree char *target = xasprintf("../%s", version);
	autofree char *tmp = NULL;
	struct stat st;
	int r;

	if (stat(dir, &st) < 0)
		return -errno;
	if (symlink(target, link) == 0)
		return 0;
	if (errno != EEXIST)
		return refused(m, -errno, dir);
	/* The stage exists: replace it in one step, as ln -sfn does. */
	tmp = xasprintf("%s/mreg-tmp.%d.%08lx", dir, (int)getpid(),
			(unsigned long)random());
	if (symlink(target, tmp) < 0)
		return refused(m, -errno, dir);
	if (rename(tmp, link) == 0)
		return 0;
	r = -errno;
	unlink(tmp);
	return refused(m, r, dir);
}

int mount_stage_remove(struct mreg_mount *m, const char *model,
		       const char *stage)
{
	autofree char *link = model_path(m, model, "stages", stage);
	int r;

	if ((r = model_exists(m, model)) < 0)
		return r;
	if (unlink(link) < 0)
		return refused(m, -errno, link);
	return 0;
}

/* The stage changes of a model as the daemon gives them in
 * .mreg/history/M (reg_history()'s records, oldest first, trimmed): the
 * strings of v[i] point into text[i]. */
struct hist_file {
	const char *stage;     /* only this stage's changes, or NULL */
	struct reg_history *v;
	char (*text)[4][REG_NAME_MAX + REG_STAGE_MAX + 16];
	size_t n, cap, tcap;
	int err;
};

static int hist_file_line(void *arg, char *line, size_t len)
{
	struct hist_file *h = arg;
	struct reg_history e = { 0 };
	char num[32], *s[4];
	static const char *const key[4] = { "stage", "from", "to", "action" };
	int i;

	if (ARRAY_GROW(h->v, h->cap, h->n) < 0 ||
	    ARRAY_GROW(h->text, h->tcap, h->n) < 0)
		return h->err = -ENOMEM;
	for (i = 0; i < 4; i++) {
		s[i] = h->text[h->n][i];
		if (json_get(line, len, key[i], s[i],
			     sizeof(h->text[h->n][i])) < 0)
			return h->err = -EIO;
	}
	if (h->stage && strcmp(h->stage, s[0]))
		return 0;
	if (json_get(line, len, "seq", num, sizeof(num)) < 0)
		return h->err = -EIO;
	e.seq = strtoull(num, NULL, 10);
	if (json_get(line, len, "time", num, sizeof(num)) < 0)
		return h->err = -EIO;
	e.time = iso_secs(num);
	if (json_get(line, len, "uid", num, sizeof(num)) < 0)
		return h->err = -EIO;
	e.uid = (uid_t)strtoul(num, NULL, 10);
	e.stage = s[0], e.from = s[1], e.to = s[2], e.action = s[3];
	h->v[h->n++] = e;
	return 0;
}

/* Reads model's history (of stage only, when not NULL) from the daemon. */
static int hist_file_load(struct mreg_mount *m, const char *model,
			  const char *stage, struct hist_file *h)
{
	autofree char *p = NULL;
	size_t i;
	int r;

	memset(h, 0, sizeof(*h));
	h->stage = stage;
	if ((r = model_exists(m, model)) < 0)
		return r;
	p = xasprintf("%s/.mreg/history/%s", m->root, model);
	r = mregdir_lines(p, hist_file_line, h);
	if (r == 0 && h->err < 0)
		r = h->err;
	/* the strings were copied into text, which may have moved since */
	for (i = 0; r == 0 && i < h->n; i++) {
		h->v[i].stage = h->text[i][0];
		h->v[i].from = h->text[i][1];
		h->v[i].to = h->text[i][2];
		h->v[i].action = h->text[i][3];
	}
	if (r < 0) {
		free(h->v);
		free(h->text);
	}
	return r;
}

static void hist_file_release(struct hist_file *h)
{
	free(h->v);
	free(h->text);
}

/* The daemon rolls the stage back (user.mreg.rollback on the stages
 * directory: where to is its decision, as on the store); the version it
 * went back to is then where the stage points. */
int mount_rollback(struct mreg_mount *m, const char *model, const char *stage,
		   char *ret_version)
{
	autofree char *dir = model_path(m, model, "stages", NULL);
	autofree char *link = model_path(m, model, "stages", stage);
	char to[REG_NAME_MAX + 8];
	ssize_t n;
	int r;

	if ((r = model_exists(m, model)) < 0)
		return r;
	if (setxattr(dir, REG_XATTR_PREFIX "rollback", stage, strlen(stage),
		     0) < 0)
		return refused(m, -errno, dir);
	n = readlink(link, to, sizeof(to) - 1);
	if (n < 0)
		return -errno;
	to[n] = '\0';
	if (ret_version)
		strlcpy(ret_version, strncmp(to, "../", 3) ? to : to + 3,
			REG_NAME_MAX + 1);
	return 0;
}

int mount_history(struct mreg_mount *m, const char *model, const char *stage,
		  int (*fn)(void *arg, const struct reg_history *h),
		  void *arg)
{
	struct hist_file h;
	size_t i;
	int r;

	if (stage && reg_check_stage(stage) < 0)
		return -EINVAL;
	if ((r = hist_file_load(m, model, stage, &h)) < 0)
		return r;
	for (i = 0; i < h.n && r == 0; i++)
		r = fn(arg, &h.v[i]);
	hist_file_release(&h);
	return r < 0 ? r : 0;
}

/* ---- versions ----------------------------------------------------------- */

int mount_seal(struct mreg_mount *m, const char *model, const char *version)
{
	autofree char *p = model_path(m, model, version, NULL);
	autofree char *sealed = NULL;
	struct stat st;

	if (stat(p, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || !strcmp(version, "stages"))
		return -ENOENT;
	if (xget(p, "sealed", &sealed) > 0 && strcmp(sealed, "false"))
		return -EALREADY;
	/* chmod a-w seals a draft */
	if (chmod(p, st.st_mode & 07555) < 0)
		return refused(m, -errno, p);
	return 0;
}

int mount_version_remove(struct mreg_mount *m, const char *model,
			 const char *version)
{
	autofree char *p = model_path(m, model, version, NULL);
	int r;

	if ((r = model_exists(m, model)) < 0)
		return r;
	if (rmdir(p) < 0)
		return refused(m, -errno, p);
	return 0;
}

int mount_model_remove(struct mreg_mount *m, const char *model)
{
	autofree char *p = model_path(m, model, NULL, NULL);

	if (rmdir(p) < 0)
		return refused(m, -errno, p);
	return 0;
}

int mount_resolve(struct mreg_mount *m, const char *model,
		  const char *version)
{
	autofree char *p = model_path(m, model, version, NULL);
	struct stat st;

	if (stat(p, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || (version && !strcmp(version, "stages")))
		return -ENOENT;
	return 0;
}

/* The stages of a model and the versions they point at. */
struct stagelist {
	char (*name)[REG_STAGE_MAX + 1];
	char (*to)[REG_NAME_MAX + 1];
	const char **ptrs;      /* scratch: one version's stage names */
	size_t n;
};

static void stagelist_release(struct stagelist *s)
{
	free(s->name);
	free(s->to);
	free(s->ptrs);
	memset(s, 0, sizeof(*s));
}

static int stagelist_load(struct mreg_mount *m, const char *model,
			  struct stagelist *s)
{
	autofree char *dir = model_path(m, model, "stages", NULL);
	char **names, target[REG_NAME_MAX + 8];
	size_t n, i;
	int r;

	memset(s, 0, sizeof(*s));
	if ((r = list_dir(dir, &names, &n)) < 0)
		return r;
	s->name = calloc(n + 1, sizeof(*s->name));
	s->to = calloc(n + 1, sizeof(*s->to));
	s->ptrs = calloc(n + 1, sizeof(*s->ptrs));
	if (!s->name || !s->to || !s->ptrs)
		die_oom();
	for (i = 0; i < n; i++) {
		autofree char *p = xasprintf("%s/%s", dir, names[i]);
		ssize_t len = readlink(p, target, sizeof(target) - 1);

		/* a stage removed since the listing is not listed */
		if (len < 4 || strlen(names[i]) > REG_STAGE_MAX)
			continue;
		target[len] = '\0';
		strlcpy(s->name[s->n], names[i], sizeof(s->name[0]));
		strlcpy(s->to[s->n], target + 3, sizeof(s->to[0]));
		s->n++;
	}
	names_free(names, n);
	return 0;
}

/* Regular files under dir (for a version's file count). */
static uint64_t count_files(const char *dir, int depth)
{
	char **names;
	uint64_t count = 0;
	size_t n, i;

	if (depth > 256 || list_dir(dir, &names, &n) < 0)
		return 0;
	for (i = 0; i < n; i++) {
		autofree char *p = xasprintf("%s/%s", dir, names[i]);
		struct stat st;

		if (lstat(p, &st) < 0)
			continue;
		if (S_ISREG(st.st_mode))
			count++;
		else if (S_ISDIR(st.st_mode))
			count += count_files(p, depth + 1);
	}
	names_free(names, n);
	return count;
}

/* Calls fn with the facts of version (path p, stat st) of model. */
static int version_emit(struct mreg_mount *m, const char *model,
			const char *version, const char *p,
			const struct stat *st, struct stagelist *sl,
			int (*fn)(void *arg, const struct reg_version_info *v),
			void *arg)
{
	struct reg_version_info vi;
	autofree char *sealed = NULL;
	size_t i, k = 0;

	(void)m;
	memset(&vi, 0, sizeof(vi));
	vi.model = model;
	vi.name = version;
	vi.ino = st->st_ino;
	vi.sealed = xget(p, "sealed", &sealed) > 0 && strcmp(sealed, "false");
	vi.sealed_at = vi.sealed ? iso_secs(sealed) : 0;
	vi.created = xget_time(p, "created");
	vi.creator = st->st_uid;
	/* a draft's size and files are counted as they are now */
	vi.size = xget_u64(p, "size");
	vi.nfiles = count_files(p, 0);
	if (vi.sealed) {
		vi.stored = xget_u64(p, "stored");
		xget_digest(p, &vi.digest);
	}
	for (i = 0; i < sl->n; i++)
		if (!strcmp(sl->to[i], version))
			sl->ptrs[k++] = sl->name[i];
	sl->ptrs[k] = NULL;
	vi.stages = sl->ptrs;
	return fn(arg, &vi);
}

/* The versions of model: directories of the model but stages/. */
static int versions_of(struct mreg_mount *m, const char *model,
		       const char *only,
		       int (*fn)(void *arg, const struct reg_version_info *v),
		       void *arg)
{
	autofree char *dir = model_path(m, model, NULL, NULL);
	struct stagelist sl;
	char **names;
	size_t n, i;
	int r;

	if ((r = model_exists(m, model)) < 0)
		return r;
	if (only && reg_check_name(only) < 0)
		return -EINVAL;
	if ((r = stagelist_load(m, model, &sl)) < 0)
		return r;
	if (only) {
		names = calloc(1, sizeof(*names));
		if (!names || !(names[0] = strdup(only)))
			die_oom();
		n = 1;
	} else if ((r = list_dir(dir, &names, &n)) < 0) {
		stagelist_release(&sl);
		return r;
	}
	for (i = 0, r = 0; i < n && r == 0; i++) {
		autofree char *p = xasprintf("%s/%s", dir, names[i]);
		struct stat st;

		if (!strcmp(names[i], "stages") || lstat(p, &st) < 0 ||
		    !S_ISDIR(st.st_mode)) {
			if (only)
				r = -ENOENT;
			continue;
		}
		r = version_emit(m, model, names[i], p, &st, &sl, fn, arg);
	}
	names_free(names, n);
	stagelist_release(&sl);
	return r;
}

int mount_versions(struct mreg_mount *m, const char *model,
		   int (*fn)(void *arg, const struct reg_version_info *v),
		   void *arg)
{
	return versions_of(m, model, NULL, fn, arg);
}

int mount_version_info(struct mreg_mount *m, const char *model,
		       const char *version,
		       int (*fn)(void *arg, const struct reg_version_info *v),
		       void *arg)
{
	return versions_of(m, model, version, fn, arg);
}

/* Fills mi's stages from MODEL/stages (each a symlink "../V", in name
 * order) and calls fn. */
static int model_stages_call(const char *model_dir,
			     struct reg_model_info *mi,
			     int (*fn)(void *arg,
				       const struct reg_model_info *mi),
			     void *arg)
{
	autofree char *sd = xasprintf("%s/stages", model_dir);
	char **st = NULL, **vs;
	size_t ns = 0, i;
	int r;

	if (list_dir(sd, &st, &ns) < 0)
		ns = 0;
	vs = xcalloc(ns + 1, sizeof(*vs));
	for (i = 0; i < ns; i++) {
		autofree char *lp = xasprintf("%s/%s", sd, st[i]);
		char buf[4096];
		ssize_t n = readlink(lp, buf, sizeof(buf) - 1);

		buf[n > 0 ? n : 0] = '\0';
		vs[i] = xstrdup(strncmp(buf, "../", 3) ? buf : buf + 3);
	}
	mi->nstages = ns;
	mi->stages = (const char *const *)st;
	mi->stage_versions = (const char *const *)vs;
	r = fn(arg, mi);
	for (i = 0; i < ns; i++)
		free(vs[i]);
	free(vs);
	if (ns)
		names_free(st, ns);
	return r;
}

int mount_models(struct mreg_mount *m,
		 int (*fn)(void *arg, const struct reg_model_info *mi),
		 void *arg)
{
	autofree char *dir = xasprintf("%s/models", m->root);
	char **names;
	size_t n, i;
	int r;

	if ((r = list_dir(dir, &names, &n)) < 0)
		return r;
	for (i = 0, r = 0; i < n && r == 0; i++) {
		autofree char *p = xasprintf("%s/%s", dir, names[i]);
		struct reg_model_info mi;
		char **vs;
		size_t nv;
		struct stat st;

		if (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		memset(&mi, 0, sizeof(mi));
		mi.name = names[i];
		mi.ino = st.st_ino;
		/* every entry but stages/, as the registry counts */
		if (list_dir(p, &vs, &nv) == 0) {
			mi.nversions = (uint32_t)(nv ? nv - 1 : 0);
			names_free(vs, nv);
		}
		mi.created = xget_time(p, "created");
		mi.creator = st.st_uid;
		r = model_stages_call(p, &mi, fn, arg);
	}
	names_free(names, n);
	return r;
}

/* ---- files -------------------------------------------------------------- */

static int files_walk(const char *dir, const char *prefix, int depth,
		      int (*fn)(void *arg, const struct reg_file_info *f),
		      void *arg)
{
	char **names, target[4096];
	size_t n, i;
	int r;

	if (depth > 2048)
		return -ELOOP;
	if ((r = list_dir(dir, &names, &n)) < 0)
		return r;
	for (i = 0, r = 0; i < n && r == 0; i++) {
		autofree char *p = xasprintf("%s/%s", dir, names[i]);
		autofree char *rel = xasprintf("%s%s", prefix, names[i]);
		struct reg_file_info fi;
		struct stat st;
		ssize_t len;

		if (lstat(p, &st) < 0) {
			r = -errno;
			break;
		}
		memset(&fi, 0, sizeof(fi));
		fi.path = rel;
		fi.mode = st.st_mode;
		fi.ino = st.st_ino;
		if (S_ISDIR(st.st_mode)) {
			fi.kind = REG_DIR;
		} else if (S_ISLNK(st.st_mode)) {
			len = readlink(p, target, sizeof(target) - 1);
			if (len < 0) {
				r = -errno;
				break;
			}
			target[len] = '\0';
			fi.kind = REG_SYMLINK;
			fi.target = target;
			fi.size = (uint64_t)len;
		} else {
			fi.kind = REG_FILE;
			fi.size = (uint64_t)st.st_size;
			xget_digest(p, &fi.digest);
		}
		r = fn(arg, &fi);
		if (r == 0 && fi.kind == REG_DIR) {
			autofree char *sub = xasprintf("%s/", rel);

			r = files_walk(p, sub, depth + 1, fn, arg);
		}
	}
	names_free(names, n);
	return r;
}

int mount_files(struct mreg_mount *m, const char *model, const char *version,
		int (*fn)(void *arg, const struct reg_file_info *f), void *arg)
{
	autofree char *p = model_path(m, model, version, NULL);
	int r;

	if ((r = mount_resolve(m, model, version)) < 0)
		return r;
	return files_walk(p, "", 0, fn, arg);
}

/* Writes all of buf to fd. */
static int write_all(int fd, const char *buf, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

int mount_cat(struct mreg_mount *m, const char *model, const char *version,
	      const char *path, int fd)
{
	autofree char *p = model_path(m, model, version, path);
	autofree char *buf = malloc(COPY_BUF);
	struct stat st;
	ssize_t n;
	int in, r = 0;

	if (!buf)
		die_oom();
	if ((r = mount_resolve(m, model, version)) < 0)
		return r;
	in = open(p, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	if (fstat(in, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(in);
		return -EISDIR;
	}
	for (;;) {
		n = read(in, buf, COPY_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : 0;
			break;
		}
		if ((r = write_all(fd, buf, (size_t)n)) < 0)
			break;
	}
	close(in);
	return r;
}

/* ---- metadata ----------------------------------------------------------- */

int mount_meta_list(struct mreg_mount *m, const char *model,
		    const char *version,
		    int (*fn)(void *arg, const char *key, const char *value,
			      size_t len),
		    void *arg)
{
	autofree char *p = model_path(m, model, version, NULL);
	autofree char *names = NULL;
	const char *k;
	ssize_t n;
	int r;

	if ((r = mount_resolve(m, model, version)) < 0)
		return r;
	for (;;) {
		n = llistxattr(p, NULL, 0);
		if (n < 0)
			return -errno;
		free(names);
		names = xmalloc((size_t)n + 1);
		n = llistxattr(p, names, (size_t)n);
		if (n >= 0)
			break;
		if (errno != ERANGE)
			return -errno;
	}
	for (k = names, r = 0; k < names + n && r == 0; k += strlen(k) + 1) {
		const char *key = k + strlen(REG_XATTR_PREFIX);
		autofree char *v = NULL;
		ssize_t len;

		if (strncmp(k, REG_XATTR_PREFIX, strlen(REG_XATTR_PREFIX)))
			continue;
		len = xget(p, key, &v);
		if (len == -ENODATA)
			continue; /* unset since the listing */
		if (len < 0)
			return (int)len;
		r = fn(arg, key, v, (size_t)len);
	}
	return r;
}

int mount_meta_set(struct mreg_mount *m, const char *model,
		   const char *version, const char *key, const char *value)
{
	autofree char *p = model_path(m, model, version, NULL);
	autofree char *name = xasprintf(REG_XATTR_PREFIX "%s", key);
	int r;

	if ((r = mount_resolve(m, model, version)) < 0)
		return r;
	r = value ? lsetxattr(p, name, value, strlen(value), 0) :
		    lremovexattr(p, name);
	return r < 0 ? refused(m, -errno, p) : 0;
}

/* ---- search ------------------------------------------------------------- */

struct cand {
	const char *model, *version, *path;
	const struct stagelist *sl;
};

static void cand_get(void *arg, const char *fld,
		     void (*emit)(void *ectx, const char *value), void *ectx)
{
	const struct cand *c = arg;
	autofree char *v = NULL;
	size_t i;

	if (!strcmp(fld, "name")) {
		emit(ectx, c->model);
	} else if (!strcmp(fld, "version")) {
		emit(ectx, c->version);
	} else if (!strcmp(fld, "stage")) {
		for (i = 0; i < c->sl->n; i++)
			if (!strcmp(c->sl->to[i], c->version))
				emit(ectx, c->sl->name[i]);
	} else if (xget(c->path, fld, &v) >= 0) {
		/* created, creator and the metadata keys, as the daemon
		 * shows them */
		emit(ectx, v);
	}
}

int mount_search(struct mreg_mount *m, const char *query, char *err,
		 size_t errlen,
		 int (*fn)(void *arg, const struct reg_version_info *v),
		 void *arg)
{
	autofree char *dir = xasprintf("%s/models", m->root);
	struct search_query *sq;
	char **models;
	size_t nm, i, k;
	int r;

	if ((r = search_parse(query, &sq, err, errlen)) < 0)
		return r;
	if ((r = list_dir(dir, &models, &nm)) < 0) {
		search_free(sq);
		return r;
	}
	for (i = 0; i < nm && r == 0; i++) {
		autofree char *md = xasprintf("%s/%s", dir, models[i]);
		struct stagelist sl;
		char **vs;
		size_t nv;

		if (reg_check_name(models[i]) < 0 ||
		    stagelist_load(m, models[i], &sl) < 0)
			continue;
		if (list_dir(md, &vs, &nv) < 0) {
			stagelist_release(&sl);
			continue;
		}
		for (k = 0; k < nv && r == 0; k++) {
			autofree char *p = xasprintf("%s/%s", md, vs[k]);
			struct cand c = { models[i], vs[k], p, &sl };
			struct stat st;

			if (!strcmp(vs[k], "stages") || lstat(p, &st) < 0 ||
			    !S_ISDIR(st.st_mode))
				continue;
			if (search_match(sq, cand_get, &c))
				r = version_emit(m, models[i], vs[k], p, &st,
						 &sl, fn, arg);
		}
		names_free(vs, nv);
		stagelist_release(&sl);
	}
	names_free(models, nm);
	search_free(sq);
	return r;
}

/* ---- push --------------------------------------------------------------- */

struct push {
	struct mreg_mount *m;
	uint64_t total, done;
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *parg;
};

static uint64_t tree_bytes(const char *path, int depth)
{
	struct stat st;
	char **names;
	uint64_t sum = 0;
	size_t n, i;

	if (depth > REG_DEPTH_MAX || lstat(path, &st) < 0)
		return 0;
	if (S_ISREG(st.st_mode))
		return (uint64_t)st.st_size;
	if (!S_ISDIR(st.st_mode) || list_dir(path, &names, &n) < 0)
		return 0;
	for (i = 0; i < n; i++) {
		autofree char *p = xasprintf("%s/%s", path, names[i]);

		sum += tree_bytes(p, depth + 1);
	}
	names_free(names, n);
	return sum;
}

/* Copies src into a new file dst (mode as src's); close(2) is the commit,
 * so its result counts. ret_ino gets the new file's inode number. */
static int copy_file(struct push *ps, const char *src, const char *dst,
		     mode_t mode, ino_t *ret_ino)
{
	autofree char *buf = malloc(COPY_BUF);
	struct stat st;
	int in, out, r = 0;
	ssize_t n;

	if (!buf)
		die_oom();
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return log_err(-errno, "cannot read '%s'", src);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
	if (out < 0) {
		autofree char *dir = strdup(dst);

		r = -errno;
		close(in);
		if (r == -EEXIST)
			return log_err(r, "'%s' is given twice", src);
		if (!dir)
			die_oom();
		return refused(ps->m, r, dirname(dir));
	}
	for (;;) {
		n = read(in, buf, COPY_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = log_err(-errno, "cannot read '%s'", src);
			break;
		}
		if (n == 0)
			break;
		if ((r = write_all(out, buf, (size_t)n)) < 0)
			break;
		ps->done += (uint64_t)n;
		if (ps->progress)
			ps->progress(ps->parg, ps->done, ps->total);
	}
	if (r == 0 && ret_ino && fstat(out, &st) == 0)
		*ret_ino = st.st_ino;
	close(in);
	if (close(out) < 0 && r == 0)
		r = -errno;
	return r;
}

static int symlink_failed(struct push *ps, int r, const char *src,
			  const char *dir)
{
	if (r == -EINVAL)
		return log_err(r, "symlink '%s' points outside the version",
			       src);
	return refused(ps->m, r, dir);
}

/* Copies the content of directory src into directory dst. */
static int copy_tree(struct push *ps, const char *src, const char *dst,
		     int depth)
{
	char **names, target[4096];
	size_t n, i;
	int r;

	if (depth > REG_DEPTH_MAX)
		return log_err(-ENAMETOOLONG, "'%.200s%s' is nested too deep "
			       "(more than %d directories)", src,
			       strlen(src) > 200 ? "..." : "", REG_DEPTH_MAX);
	if ((r = list_dir(src, &names, &n)) < 0)
		return log_err(r, "cannot read directory '%s'", src);
	for (i = 0; i < n && r == 0; i++) {
		autofree char *s = xasprintf("%s/%s", src, names[i]);
		autofree char *d = xasprintf("%s/%s", dst, names[i]);
		struct stat st;
		ssize_t len;

		if (lstat(s, &st) < 0) {
			r = log_err(-errno, "cannot read '%s'", s);
		} else if (S_ISREG(st.st_mode)) {
			r = copy_file(ps, s, d, st.st_mode, NULL);
		} else if (S_ISDIR(st.st_mode)) {
			/* writable by us while we fill it: it is sealed
			   with the version */
			if (mkdir(d, (st.st_mode & 07777) | 0700) < 0)
				r = refused(ps->m, -errno, dst);
			else
				r = copy_tree(ps, s, d, depth + 1);
		} else if (S_ISLNK(st.st_mode)) {
			len = readlink(s, target, sizeof(target) - 1);
			if (len < 0) {
				r = log_err(-errno, "cannot read link '%s'", s);
			} else {
				target[len] = '\0';
				if (symlink(target, d) < 0)
					r = symlink_failed(ps, -errno, s, dst);
			}
		} else {
			r = log_err(-EINVAL, "'%s' is not a file, directory "
				    "or symlink", s);
		}
	}
	names_free(names, n);
	return r;
}

/* Removes a draft that will not become a version. */
static void remove_tree(const char *path, int depth)
{
	char **names;
	size_t n, i;

	if (depth <= REG_DEPTH_MAX && list_dir(path, &names, &n) == 0) {
		for (i = 0; i < n; i++) {
			autofree char *p = xasprintf("%s/%s", path, names[i]);
			struct stat st;

			if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
				remove_tree(p, depth + 1);
			else
				unlink(p);
		}
		names_free(names, n);
	}
	rmdir(path);
}

/* The name under which directory dir holds inode ino. */
static int name_of_ino(const char *dir, ino_t ino, char *ret, size_t size)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int r = -ENOENT;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_ino == ino && e->d_name[0] != '.') {
			r = strlen(e->d_name) < size ? 0 : -ENAMETOOLONG;
			if (r == 0)
				memcpy(ret, e->d_name, strlen(e->d_name) + 1);
			break;
		}
	closedir(d);
	return r;
}

/* The version a file registered at the model root became: the one holding
 * its inode, looked for from the newest integer version down. */
static int find_registered(struct mreg_mount *m, const char *model,
			   const char *base, ino_t ino, char *ret_version)
{
	autofree char *dir = model_path(m, model, NULL, NULL);
	char **names;
	size_t n, i;
	uint64_t v, best = 0;
	int r = -ENOENT;

	if (list_dir(dir, &names, &n) < 0)
		return -ENOENT;
	for (i = 0; i < n; i++) {
		autofree char *p = xasprintf("%s/%s/%s", dir, names[i], base);
		struct stat st;

		if (reg_name_is_integer(names[i], &v) && v >= best &&
		    lstat(p, &st) == 0 && st.st_ino == ino) {
			best = v;
			snprintf(ret_version, REG_NAME_MAX + 1, "%s", names[i]);
			r = 0;
		}
	}
	names_free(names, n);
	return r;
}

/* One file, no metadata: in at the model root, as cp would. Returns 1
 * when the name is taken there (a file being copied in): use a draft. */
static int push_one(struct push *ps, const char *model, const char *src,
		    char *ret_version)
{
	autofree char *copy = strdup(src);
	autofree char *tmp = NULL, *dst = NULL;
	const char *base;
	struct stat st;
	ino_t ino = 0;
	int r;

	if (!copy)
		die_oom();
	base = basename(copy);
	tmp = xasprintf("%s/models/%s/.mreg-push.%d.%08lx", ps->m->root, model,
			(int)getpid(), (unsigned long)random());
	dst = xasprintf("%s/models/%s/%s", ps->m->root, model, base);
	if (stat(src, &st) < 0)
		return log_err(-errno, "cannot read '%s'", src);
	/* a dot name waits at the model root until it is renamed */
	if ((r = copy_file(ps, src, tmp, st.st_mode, &ino)) < 0) {
		unlink(tmp);
		return r;
	}
	if (rename(tmp, dst) < 0) {
		r = -errno;
		unlink(tmp);
		return r == -EEXIST ? 1 : refused(ps->m, r, dst);
	}
	r = find_registered(ps->m, model, base, ino, ret_version);
	if (r < 0)
		return log_err(-EIO, "'%s' was registered, but its version "
			       "cannot be found", src);
	return 0;
}

/* A dot-named draft, filled, given its metadata and renamed into place. */
static int push_draft(struct push *ps, const char *model,
		      const char *const *paths, size_t npaths,
		      const char *version, const struct reg_kv *meta,
		      size_t nmeta, char *ret_version)
{
	autofree char *draft = NULL;
	struct stat st;
	size_t i;
	int r = 0;

	draft = xasprintf("%s/models/%s/.push-%d-%08lx", ps->m->root, model,
			  (int)getpid(), (unsigned long)random());
	if (mkdir(draft, 0777) < 0)
		return refused(ps->m, -errno, draft);
	for (i = 0; i < npaths && r == 0; i++) {
		autofree char *copy = strdup(paths[i]);
		autofree char *d = NULL;

		if (!copy)
			die_oom();
		if (stat(paths[i], &st) < 0) {
			r = log_err(-errno, "cannot read '%s'", paths[i]);
			break;
		}
		if (S_ISDIR(st.st_mode) && npaths == 1) {
			/* one directory: its content is the version */
			r = copy_tree(ps, paths[i], draft, 0);
			break;
		}
		while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
			copy[strlen(copy) - 1] = '\0';
		d = xasprintf("%s/%s", draft, basename(copy));
		if (S_ISDIR(st.st_mode)) {
			if (mkdir(d, (st.st_mode & 07777) | 0700) < 0)
				r = errno == EEXIST ?
				    log_err(-EEXIST, "'%s' is given twice",
					    paths[i]) :
				    refused(ps->m, -errno, draft);
			else
				r = copy_tree(ps, paths[i], d, 1);
		} else {
			r = copy_file(ps, paths[i], d, st.st_mode, NULL);
		}
	}
	for (i = 0; i < nmeta && r == 0; i++) {
		autofree char *x = xasprintf(REG_XATTR_PREFIX "%s",
					     meta[i].key);

		if (lsetxattr(draft, x, meta[i].value, strlen(meta[i].value),
			      0) < 0) {
			r = -errno;
			if (r != -EACCES)
				log_err(r, "cannot set '%s'", meta[i].key);
			r = refused(ps->m, r, draft);
		}
	}
	if (r == 0 && version) {
		/* renaming the dot-named draft to its name seals it */
		autofree char *dst = model_path(ps->m, model, version, NULL);

		if (rename(draft, dst) == 0) {
			snprintf(ret_version, REG_NAME_MAX + 1, "%s", version);
			return 0;
		}
		r = errno == ENOTEMPTY ? -EEXIST : -errno;
		r = refused(ps->m, r, dst);
	} else if (r == 0) {
		/* the daemon names it the next version and seals it */
		autofree char *dir = model_path(ps->m, model, NULL, NULL);

		if (stat(draft, &st) < 0 ||
		    setxattr(draft, REG_XATTR_PREFIX "register", "", 0, 0) < 0) {
			r = refused(ps->m, -errno, draft);
		} else if ((r = name_of_ino(dir, st.st_ino, ret_version,
					    REG_NAME_MAX + 1)) < 0) {
			return log_err(-EIO, "'%s' was registered, but its "
				       "version cannot be found", draft);
		} else {
			return 0;
		}
	}
	remove_tree(draft, 0);
	return r;
}

int mount_push(struct mreg_mount *m, const char *model,
	       const char *const *paths, size_t npaths, const char *version,
	       const struct reg_kv *meta, size_t nmeta,
	       void (*progress)(void *arg, uint64_t done, uint64_t total),
	       void *parg, char *ret_version)
{
	autofree char *dir = NULL;
	struct push ps = { .m = m, .progress = progress, .parg = parg };
	struct stat st;
	size_t i;
	int r;

	if (!m || !model || !paths || !npaths || !ret_version)
		return -EINVAL;
	if (reg_check_name(model) < 0 ||
	    (version && reg_check_name(version) < 0))
		return -EINVAL;
	dir = model_path(m, model, NULL, NULL);
	if (mkdir(dir, 0777) < 0 && errno != EEXIST)
		return refused(m, -errno, dir);
	for (i = 0; i < npaths; i++)
		ps.total += tree_bytes(paths[i], 0);
	if (npaths == 1 && !version && !nmeta && stat(paths[0], &st) == 0 &&
	    S_ISREG(st.st_mode)) {
		r = push_one(&ps, model, paths[0], ret_version);
		if (r <= 0)
			return r;
		ps.done = 0;
	}
	return push_draft(&ps, model, paths, npaths, version, meta, nmeta,
			  ret_version);
}

/* ---- audit -------------------------------------------------------------- */

struct audit_scan {
	uint64_t since;
	int (*fn)(void *arg, uint64_t seq, const char *json, size_t len);
	void *arg;
};

static int audit_line(void *arg, char *line, size_t len)
{
	struct audit_scan *a = arg;
	char num[32];
	uint64_t seq;

	field(line, len, "seq", num, sizeof(num));
	seq = strtoull(num, NULL, 10);
	if (seq < a->since)
		return 0;
	return a->fn(a->arg, seq, line, len);
}

int mount_audit(struct mreg_mount *m, uint64_t since,
		int (*fn)(void *arg, uint64_t seq, const char *json,
			  size_t len),
		void *arg)
{
	struct audit_scan a = { since, fn, arg };

	return audit_lines(m, audit_line, &a);
}

static int verify_line(void *arg, char *line, size_t len)
{
	reg_audit_check_record(arg, 0, line, len);
	return 0;
}

/* core's check of the chain (reg_audit_check_*), fed the bytes a reader
 * of the mount sees: the lines of .mreg/audit.log and its user.mreg.head
 * ("SEQ SHA256HEX", read first: records added while we read come after
 * it). */
int mount_audit_verify(struct mreg_mount *m,
		       void (*report)(void *arg, uint64_t seq,
				      const char *msg),
		       void *arg, uint64_t *ret_first_bad)
{
	autofree char *p = xasprintf("%s/.mreg/audit.log", m->root);
	struct reg_audit_check c;
	char head[128], hash[65];
	uint64_t seq;
	ssize_t n;
	int r;

	reg_audit_check_init(&c, report, arg);
	n = getxattr(p, "user.mreg.head", head, sizeof(head) - 1);
	if (n > 0) {
		head[n] = '\0';
		if (sscanf(head, "%" SCNu64 " %64s", &seq, hash) == 2 && seq)
			reg_audit_check_head(&c, seq, hash);
	}
	r = audit_lines(m, verify_line, &c);
	if (r < 0)
		return r;
	return reg_audit_check_end(&c, ret_first_bad);
}

int mount_metrics(struct mreg_mount *m, char **ret, size_t *ret_len)
{
	autofree char *p = xasprintf("%s/.mreg/metrics", m->root);

	return slurp(p, ret, ret_len);
}
