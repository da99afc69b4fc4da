/* mreg-serve.c — the serving cache (core/serve/serve.h) and this host's
 * chunk cache from the CLI.
 *
 * prefetch fills both with a version before traffic moves. On the store
 * it fills the chunk cache (reg_prefetch(); a store backend = s3 keeps
 * one). Through a mount the daemon does it all: reading user.mreg.cache
 * of the version (or the stage, which the kernel follows) makes it fill
 * its chunk cache, then reading user.mreg.prefetch asks it to hydrate
 * the version into its serving cache and says where that stands (see
 * fs/passthrough.c); the CLI waits and says what was done. stats and
 * fsck look at the
 * cache's directory on the store's host: its copies and their bytes, and
 * each copy re-hashed against its file's digest (a bad one is dropped:
 * the daemon then serves the file from the store, every read checked).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "mreg.h"
#include "registry/serve.h"
#include "serve/serve.h"

#define PREFETCH_XATTR "user.mreg.prefetch"
#define CACHE_XATTR "user.mreg.cache"
#define POLL_NS (200 * 1000000L)

/* ---- prefetch ---------------------------------------------------------- */

struct pstate {
	char state[40];
	uint64_t files, ready, pending, no_room, failed, bytes;
};

static int pstate_parse(const char *s, struct pstate *p)
{
	memset(p, 0, sizeof(*p));
	if (sscanf(s, "%39s files=%" SCNu64 " ready=%" SCNu64 " pending=%"
		   SCNu64 " no_room=%" SCNu64 " failed=%" SCNu64 " bytes=%"
		   SCNu64, p->state, &p->files, &p->ready, &p->pending,
		   &p->no_room, &p->failed, &p->bytes) != 7)
		return -EPROTO;
	return 0;
}

/* Asks the daemon about path (and so for its hydration). */
static int ask(const char *path, struct pstate *p)
{
	char buf[512];
	ssize_t n;

	n = getxattr(path, PREFETCH_XATTR, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return pstate_parse(buf, p);
}

/* What reading user.mreg.cache told (the chunk cache filled). */
struct cstate {
	bool done;              /* filled */
	uint64_t files, bytes, chunks, fetched;
};

static void pstate_json(const char *model, const char *what,
			const struct pstate *p, const struct cstate *cs)
{
	struct json j;

	json_init(&j, stdout);
	json_obj_begin(&j);
	json_key(&j, "model");
	json_str(&j, model);
	json_key(&j, "target");
	json_str(&j, what);
	json_key(&j, "state");
	json_str(&j, p ? p->state : "off:none");
	json_key(&j, "files");
	json_u64(&j, p ? p->files : cs->files);
	json_key(&j, "ready");
	json_u64(&j, p ? p->ready : 0);
	json_key(&j, "pending");
	json_u64(&j, p ? p->pending : 0);
	json_key(&j, "no_room");
	json_u64(&j, p ? p->no_room : 0);
	json_key(&j, "failed");
	json_u64(&j, p ? p->failed : 0);
	json_key(&j, "bytes");
	json_u64(&j, p ? p->bytes : cs->bytes);
	json_key(&j, "chunk_cache");
	if (cs->done) {
		json_obj_begin(&j);
		json_key(&j, "chunks");
		json_u64(&j, cs->chunks);
		json_key(&j, "fetched");
		json_u64(&j, cs->fetched);
		json_obj_end(&j);
	} else {
		json_null(&j);
	}
	json_obj_end(&j);
	json_finish(&j);
}

static const char *off_reason(const char *state)
{
	const char *r = state + 4;

	if (!strcmp(r, "privilege"))
		return "mregfs lacks CAP_SYS_ADMIN (run it as root)";
	if (!strcmp(r, "kernel"))
		return "the kernel has no FUSE passthrough (Linux >= 6.9)";
	if (!strcmp(r, "disabled"))
		return "[serve] passthrough = no, or size = 0";
	return "the serving cache is unusable (see the daemon's log)";
}

/* The line that says what went into the chunk cache. */
static void cstate_print(struct cli *c, const char *model, const char *what,
			 const char *version, const struct cstate *cs)
{
	char a[32], b[32];

	if (c->quiet || c->json)
		return;
	printf("cached: %s/%s%s%s%s, %" PRIu64 " file%s (%s) in this host's "
	       "chunk cache, %s fetched\n", model, what,
	       version && strcmp(version, what) ? " (version " : "",
	       version && strcmp(version, what) ? version : "",
	       version && strcmp(version, what) ? ")" : "", cs->files,
	       cs->files == 1 ? "" : "s", human_size(cs->bytes, a, sizeof(a)),
	       human_size(cs->fetched, b, sizeof(b)));
}

/* -ENOENT and -EINVAL of what prefetch names (either cache's). */
static int target_fail(struct cli *c, int r, const char *model,
		       const char *what)
{
	if (r == -ENOENT)
		return fail(c, "no stage or version '%s' of model '%s'", what,
			    model);
	return fail(c, "'%s/%s' is a draft: only sealed versions are "
		    "prefetched", model, what);
}

/* A failure of a chunk cache fill (reg_prefetch, or user.mreg.cache
 * through a mount: then the daemon's log has the reason). */
static int cache_fail(struct cli *c, int r, const char *model,
		      const char *what)
{
	char why[1024];
	const char *rs = c->mnt ? NULL : last_logged(c, why, sizeof(why));

	if (r == -ENOENT || r == -EINVAL)
		return target_fail(c, r, model, what);
	if (r == -EFBIG && rs)
		return fail(c, "%s", rs);	/* core says by how much */
	if (r == -EFBIG)
		return fail(c, "'%s/%s' does not fit in %s chunk cache ([cache] "
			    "size)", model, what, c->mnt ? "the mount's" :
			    "this host's");
	return fail(c, "cannot fetch the chunks of '%s/%s' into %s chunk "
		    "cache: %s%s", model, what, c->mnt ? "the mount's" :
		    "this host's", rs ? rs : errstr(-r),
		    c->mnt ? " (see the daemon's log)" : "");
}

/* On the store: the chunk cache alone (the serving cache is mregfs's). */
static int prefetch_store(struct cli *c, const char *model, const char *what)
{
	struct reg_prefetch_info info;
	char version[REG_NAME_MAX + 1];
	struct cstate cs = { .done = true };
	int r;

	r = reg_prefetch(c->reg, model, what, version, &info);
	if (r == -EOPNOTSUPP)
		return fail(c, "needs a mount: the store keeps its chunks on "
			    "this host ([store] backend = local), so there is "
			    "no chunk cache to fill, and the serving cache is "
			    "mregfs's (give the mount point with --store)");
	if (r == -ENOENT && !be_resolves(c, model, NULL))
		return fail(c, "model '%s' does not exist", model);
	if (r < 0)
		return cache_fail(c, r, model, what);
	cs.files = info.files;
	cs.bytes = info.bytes;
	cs.chunks = info.chunks;
	cs.fetched = info.fetched;
	if (c->json)
		pstate_json(model, what, NULL, &cs);
	cstate_print(c, model, what, version, &cs);
	return EXIT_OK;
}

/* Reads user.mreg.cache of path: the daemon fills its chunk cache. 0 and
 * *cs, 1 when the mount has no chunk cache (a local store, or an mregfs
 * that does not know the attribute), or -errno. */
static int ask_cache(const char *path, struct cstate *cs)
{
	char buf[256];
	ssize_t n;

	n = getxattr(path, CACHE_XATTR, buf, sizeof(buf) - 1);
	if (n < 0)
		return errno == EOPNOTSUPP || errno == ENODATA ? 1 : -errno;
	buf[n] = '\0';
	if (sscanf(buf, "files=%" SCNu64 " bytes=%" SCNu64 " chunks=%" SCNu64
		   " fetched=%" SCNu64, &cs->files, &cs->bytes, &cs->chunks,
		   &cs->fetched) != 4)
		return -EPROTO;
	cs->done = true;
	return 0;
}

int cmd_prefetch(struct cli *c)
{
	const char *model = c->args[0], *what = c->args[1];
	char *path = NULL, b[32];
	struct timespec ts = { 0, POLL_NS };
	struct cstate cs = { 0 };
	struct stat st;
	struct pstate p;
	int r, ex;

	if (reg_check_name(model) < 0)
		return fail(c, "invalid model name '%s'", model);
	if (reg_check_stage(what) < 0 && reg_check_name(what) < 0)
		return fail(c, "invalid stage or version name '%s'", what);
	if (!c->mnt)
		return prefetch_store(c, model, what);
	/* a stage, else a version of that name */
	if (asprintf(&path, "%s/models/%s/stages/%s", mount_path(c->mnt),
		     model, what) < 0)
		return fail_errno(c, -ENOMEM, SUBJ(.model = model));
	if (lstat(path, &st) < 0 && errno == ENOENT) {
		free(path);
		if (asprintf(&path, "%s/models/%s/%s", mount_path(c->mnt),
			     model, what) < 0)
			return fail_errno(c, -ENOMEM, SUBJ(.model = model));
	}
	/* the chunk cache first: hydration then reads what it holds */
	r = ask_cache(path, &cs);
	if (r < 0) {
		free(path);
		if (r == -EPROTO)
			return fail(c, "the mount answers user.mreg.cache "
				    "oddly (another mregfs version?)");
		return cache_fail(c, r, model, what);
	}
	for (;;) {
		r = ask(path, &p);
		if (r < 0 || opt_has(c, OPT_NO_WAIT) ||
		    strcmp(p.state, "pending") != 0)
			break;
		nanosleep(&ts, NULL);
	}
	free(path);
	if (r == -ENOENT || r == -EINVAL)
		return target_fail(c, r, model, what);
	if (r == -EPROTO || r == -ENODATA || r == -ENOTSUP) {
		if (!cs.done)
			return fail(c, "the mount does not answer prefetch "
				    "requests (an mregfs without a serving "
				    "cache)");
		/* no serving cache: the chunk cache was the work */
		if (c->json)
			pstate_json(model, what, NULL, &cs);
		cstate_print(c, model, what, NULL, &cs);
		return EXIT_OK;
	}
	if (r < 0)
		return fail_errno(c, r, SUBJ(.model = model, .version = what));
	/* passthrough off: what the chunk cache holds is the prefetch */
	ex = (!strncmp(p.state, "off:", 4) && !cs.done) ||
	     !strcmp(p.state, "incomplete") ? EXIT_FAIL : EXIT_OK;
	if (c->json) {
		pstate_json(model, what, &p, &cs);
		return ex;
	}
	if (cs.done)
		cstate_print(c, model, what, NULL, &cs);
	if (!strncmp(p.state, "off:", 4) && !cs.done)
		return fail(c, "the mount serves every file itself: %s",
			    off_reason(p.state));
	if (!strcmp(p.state, "incomplete"))
		return fail(c, "%" PRIu64 " of %" PRIu64 " files of '%s/%s' "
			    "are not hydrated: %s", p.no_room + p.failed,
			    p.files, model, what, p.no_room ?
			    "no room in the serving cache ([serve] size, "
			    "copies in use)" :
			    "their copy failed (see the daemon's log)");
	if (!c->quiet && strncmp(p.state, "off:", 4))
		printf("%s: %s/%s, %" PRIu64 " file%s (%s), %" PRIu64
		       " served by the kernel\n", p.state, model, what,
		       p.files, p.files == 1 ? "" : "s",
		       human_size(p.bytes, b, sizeof(b)), p.ready);
	return EXIT_OK;
}

/* ---- stats and fsck on the store ---------------------------------------- */

/* The serving cache as stats shows it: on the store, its directory and
 * the config; through a mount, the daemon's own counters. */
struct sstats {
	char state[32];         /* "on" or why not; "" on the store */
	char *dir;              /* on the store */
	uint64_t files, bytes, capacity;
	uint64_t pt_opens, fb_opens, reads, hydrated, evictions;
};

static void sstats_line(struct sstats *s, const char *line, uint64_t v)
{
	static const char fb[] = "mreg_serve_opens_total{mode=\"fallback\"";

	if (sscanf(line, "mreg_serve_passthrough{state=\"%31[^\"]\"}",
		   s->state) == 1)
		return;
	if (!strcmp(line, "mreg_serve_files"))
		s->files = v;
	else if (!strcmp(line, "mreg_serve_bytes"))
		s->bytes = v;
	else if (!strcmp(line, "mreg_serve_capacity_bytes"))
		s->capacity = v;
	else if (!strcmp(line, "mreg_serve_opens_total{mode=\"passthrough\"}"))
		s->pt_opens = v;
	else if (!strncmp(line, fb, sizeof(fb) - 1))
		s->fb_opens += v;
	else if (!strcmp(line, "mreg_serve_daemon_reads_total"))
		s->reads = v;
	else if (!strcmp(line, "mreg_serve_hydrated_bytes_total"))
		s->hydrated = v;
	else if (!strcmp(line, "mreg_serve_evictions_total"))
		s->evictions = v;
}

static int sstats_get(struct cli *c, struct sstats *s)
{
	char *text, *line, *save = NULL, *sp;
	size_t len;
	int r;

	memset(s, 0, sizeof(*s));
	if (!c->mnt) {
		s->dir = serve_dir(&c->cfg, reg_path(c->reg));
		if (!s->dir)
			return -ENOMEM;
		s->capacity = c->cfg.serve_size;
		return serve_usage(s->dir, &s->files, &s->bytes);
	}
	r = mount_metrics(c->mnt, &text, &len);
	if (r < 0)
		return r;
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' || !(sp = strrchr(line, ' ')))
			continue;
		*sp = '\0';
		sstats_line(s, line, strtoull(sp + 1, NULL, 10));
	}
	free(text);
	return s->state[0] ? 0 : -ENODATA;
}

void serving_stats(struct cli *c, struct json *j)
{
	char a[1024], b[32], d[32];
	struct sstats s;
	int r;

	r = sstats_get(c, &s);
	if (j) {
		json_key(j, "serving_cache");
		json_obj_begin(j);
		if (s.dir) {
			json_key(j, "path");
			json_str(j, s.dir);
		}
		json_key(j, "passthrough");
		if (c->mnt)
			json_str(j, s.state[0] ? s.state : "unknown");
		else
			json_bool(j, c->cfg.serve_passthrough &&
				  c->cfg.serve_size);
		json_key(j, "files");
		json_u64(j, s.files);
		json_key(j, "bytes");
		json_u64(j, s.bytes);
		json_key(j, "capacity_bytes");
		json_u64(j, s.capacity);
		if (c->mnt) {
			json_key(j, "passthrough_opens");
			json_u64(j, s.pt_opens);
			json_key(j, "fallback_opens");
			json_u64(j, s.fb_opens);
			json_key(j, "daemon_reads");
			json_u64(j, s.reads);
			json_key(j, "hydrated_bytes");
			json_u64(j, s.hydrated);
			json_key(j, "evictions");
			json_u64(j, s.evictions);
		}
		json_obj_end(j);
		free(s.dir);
		return;
	}
	if (c->mnt && r < 0) {
		printf("\nserving cache: not reported by the mount\n");
		return;
	}
	if (c->mnt)
		printf("\nserving cache of the mount: passthrough %s\n",
		       !strcmp(s.state, "on") ? "on" : s.state);
	else
		printf("\nserving cache %s%s\n", human_str(s.dir, a, sizeof(a)),
		       c->cfg.serve_passthrough && c->cfg.serve_size ? "" :
		       " (passthrough off)");
	if (r < 0)
		printf("  unreadable: %s\n", errstr(-r));
	else
		printf("  %" PRIu64 " hydrated file%s, %s of %s\n", s.files,
		       s.files == 1 ? "" : "s",
		       human_size(s.bytes, b, sizeof(b)),
		       human_size(s.capacity, d, sizeof(d)));
	if (c->mnt)
		printf("  opens: %" PRIu64 " served by the kernel, %" PRIu64
		       " by mregfs (%" PRIu64 " reads); %s hydrated, %" PRIu64
		       " evicted\n", s.pt_opens, s.fb_opens, s.reads,
		       human_size(s.hydrated, b, sizeof(b)), s.evictions);
	free(s.dir);
}

struct sfsck {
	struct cli *c;
	void (*report)(void *arg, const char *severity, const char *msg);
	void *arg;
};

static void serving_bad(void *arg, const struct serve_key *key,
			const char *why)
{
	struct sfsck *s = arg;
	char name[1024], *msg;

	reg_serve_name(s->c->reg, key->ino, name, sizeof(name));
	if (asprintf(&msg, "hydrated copy of '%s' (inode %" PRIu64 ") in "
		     "the serving cache is damaged: %s; dropped (mregfs "
		     "serves the file from the store)", name, key->ino,
		     why) < 0)
		return;
	s->report(s->arg, "error", msg);
	free(msg);
}

int serving_fsck(struct cli *c,
		 void (*report)(void *arg, const char *severity,
				const char *msg),
		 void *arg)
{
	struct sfsck s = { c, report, arg };
	char *dir = serve_dir(&c->cfg, reg_path(c->reg)), *msg;
	int r;

	if (!dir)
		return -ENOMEM;
	r = serve_fsck(dir, serving_bad, &s);
	if (r < 0 && asprintf(&msg, "cannot check the serving cache '%s': %s",
			      dir, errstr(-r)) >= 0) {
		report(arg, "error", msg);
		free(msg);
		r = 1;
	}
	free(dir);
	return r;
}
