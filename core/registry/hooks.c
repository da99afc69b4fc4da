/* hooks.c — the hook runner (see hooks.h).
 *
 * Queued events wait in per-user queues (struct hook_user), two to a
 * user: promotions and registrations. One thread takes the next event —
 * the first promotion of the next user in turn, else that user's first
 * registration — and runs its program with posix_spawn, in a process group
 * of its own, its output on a pipe. It then waits in poll() on the pipe
 * and on a pidfd of the child (pidfd_open: readable when the child has
 * exited) until the child exits or its time is up; no sleeping, no
 * SIGCHLD (which would belong to the whole process). A hook that is a URL
 * is delivered on the same thread (webhook.c), within the same timeout.
 */
#include "registry/hooks.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

#define HOOK_OUTPUT_MAX 4096
#define HOOK_ENV_MAX 16
#define HOOK_PATH "/usr/sbin:/usr/bin:/sbin:/bin"
/* A URL hook's wait before its second attempt (doubled before each next) */
#define HOOK_BACKOFF_MS 500

enum { Q_PROMOTE, Q_REGISTER, Q_N }; /* in the order they are served */

struct hook_node {
	TAILQ_ENTRY(hook_node) link;
	struct hook_ev ev;
};
TAILQ_HEAD(hook_list, hook_node);

/* The events of one user waiting; gone when both lists are empty. */
struct hook_user {
	uid_t uid;
	struct hook_list q[Q_N];
	unsigned n[Q_N];
};

struct hooks {
	const struct mreg_config *cfg;
	char *store, *mount;      /* MREG_STORE, MREG_MOUNT; mount: lock */
	hook_report_fn *report;
	void *report_arg;
	pthread_t thread;
	pthread_mutex_t lock;     /* everything below */
	pthread_cond_t cond;
	struct hook_user **users; /* with events waiting */
	size_t nusers, cap;
	size_t turn[Q_N];         /* index of the user served next */
	unsigned total;
	bool dropping;            /* drops since the queues were last empty */
	bool stop;
	uint64_t counts[HOOK_NRESULTS];
};

/* ---- the queues ----------------------------------------------------------- */

const char *hooks_result_name(enum hook_result r)
{
	static const char *const names[HOOK_NRESULTS] = {
		[HOOK_OK] = "ok", [HOOK_ERROR] = "error",
		[HOOK_FAILED] = "failed", [HOOK_DROPPED] = "dropped",
	};

	return (unsigned)r < HOOK_NRESULTS ? names[r] : "unknown";
}

static const char *event_name(enum hook_event e)
{
	return e == HOOK_PROMOTE ? "promote" : "register";
}


/* uid's queues (lock held); created when add. NULL: none, or ENOMEM. */
static struct hook_user *user_get(struct hooks *h, uid_t uid, bool add)
{
	struct hook_user *u;
	size_t i;

	for (i = 0; i < h->nusers; i++)
		if (h->users[i]->uid == uid)
			return h->users[i];
	if (!add)
		return NULL;
	if (h->nusers == h->cap) {
		size_t c = h->cap ? h->cap * 2 : 8;
		struct hook_user **v = reallocarray(h->users, c, sizeof(*v));

		if (!v)
			return NULL;
		h->users = v;
		h->cap = c;
	}
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->uid = uid;
	TAILQ_INIT(&u->q[Q_PROMOTE]);
	TAILQ_INIT(&u->q[Q_REGISTER]);
	h->users[h->nusers++] = u;
	return u;
}

/* Forgets user i once nothing of its waits (lock held), keeping the turns
 * pointing at the same users. */
static void user_prune(struct hooks *h, size_t i)
{
	int c;

	assert(i < h->nusers);
	if (h->users[i]->n[Q_PROMOTE] || h->users[i]->n[Q_REGISTER])
		return;
	free(h->users[i]);
	memmove(&h->users[i], &h->users[i + 1],
		(h->nusers - i - 1) * sizeof(*h->users));
	h->nusers--;
	for (c = 0; c < Q_N; c++)
		if (h->turn[c] > i)
			h->turn[c]--;
}

/* user_prune() for any user (after a drop). */
static void users_prune(struct hooks *h)
{
	size_t i;

	for (i = h->nusers; i > 0; i--)
		user_prune(h, i - 1);
}

static void node_push(struct hooks *h, struct hook_user *u, int c,
		      struct hook_node *n)
{
	TAILQ_INSERT_TAIL(&u->q[c], n, link);
	u->n[c]++;
	h->total++;
}

/* Takes the newest registration of u off its queue (lock held). */
static struct hook_node *newest_registration(struct hooks *h,
					     struct hook_user *u)
{
	struct hook_node *n = TAILQ_LAST(&u->q[Q_REGISTER], hook_list);

	if (!n)
		return NULL;
	TAILQ_REMOVE(&u->q[Q_REGISTER], n, link);
	u->n[Q_REGISTER]--;
	h->total--;
	return n;
}

/* With every slot taken, the user with the most registrations waiting. */
static struct hook_user *greediest(struct hooks *h)
{
	struct hook_user *best = NULL;
	size_t i;

	for (i = 0; i < h->nusers; i++)
		if (!best || h->users[i]->n[Q_REGISTER] > best->n[Q_REGISTER])
			best = h->users[i];
	return best;
}

/* Makes room for node n of user u in queue c, or says no (lock held):
 * the node to drop — n itself, or a registration that waited. */
static struct hook_node *admit(struct hooks *h, struct hook_user *u, int c,
			       struct hook_node *n)
{
	struct hook_user *v;

	if (u->n[Q_PROMOTE] + u->n[Q_REGISTER] >= HOOK_USER_MAX)
		/* its own share is full: a promotion of its own goes
		   before its registrations */
		return c == Q_PROMOTE && u->n[Q_REGISTER] ?
		       newest_registration(h, u) : n;
	if (h->total < HOOK_QUEUE_MAX)
		return NULL;
	v = greediest(h);
	if (v && (c == Q_PROMOTE ? v->n[Q_REGISTER] > 0 :
		  v->n[Q_REGISTER] > u->n[Q_REGISTER] + 1))
		return newest_registration(h, v);
	return n;
}

/* The next event to run (lock held): promotions before registrations,
 * users in turn. */
static struct hook_node *next_event(struct hooks *h)
{
	struct hook_node *n;
	size_t k, i;
	int c;

	for (c = 0; c < Q_N; c++) {
		for (k = 0; k < h->nusers; k++) {
			i = (h->turn[c] + k) % h->nusers;
			n = TAILQ_FIRST(&h->users[i]->q[c]);
			if (!n)
				continue;
			TAILQ_REMOVE(&h->users[i]->q[c], n, link);
			h->users[i]->n[c]--;
			h->total--;
			h->turn[c] = i + 1;
			user_prune(h, i);
			return n;
		}
	}
	return NULL;
}

/* Counts how a hook ended; tells the registry of a drop, a failure or a
 * delivery (d). */
static void report(struct hooks *h, const struct hook_ev *ev,
		   enum hook_result res, const char *reason,
		   const struct hook_delivery *d)
{
	pthread_mutex_lock(&h->lock);
	h->counts[res]++;
	pthread_mutex_unlock(&h->lock);
	if (h->report && (d || res == HOOK_FAILED || res == HOOK_DROPPED ||
			  ev->qid))
		h->report(h->report_arg, ev, hooks_result_name(res), reason,
			  d);
}

static void drop(struct hooks *h, struct hook_node *n, bool first)
{
	char uname[64];

	if (first) {
		util_uid_name(n->ev.uid, uname, sizeof(uname));
		log_msg(LOG_LVL_WARN, "hook queue full: dropping hooks of "
			"user '%s' from '%s/%s' on (each in the audit log)",
			uname, n->ev.model, n->ev.version);
	}
	report(h, &n->ev, HOOK_DROPPED, "too many hooks waiting", NULL);
	free(n);
}

void hooks_queue(struct hooks *h, const struct hook_ev *ev)
{
	struct hook_node *n, *out = NULL;
	struct hook_user *u;
	bool first = false;
	int c;

	if (!h || !ev || !ev->program[0])
		return;
	c = ev->event == HOOK_PROMOTE ? Q_PROMOTE : Q_REGISTER;
	n = malloc(sizeof(*n));
	if (n)
		n->ev = *ev;
	pthread_mutex_lock(&h->lock);
	u = n ? user_get(h, ev->uid, true) : NULL;
	if (u)
		out = admit(h, u, c, n);
	if (u && out != n) {
		node_push(h, u, c, n);
		pthread_cond_signal(&h->cond);
	}
	if (out || !u) {
		users_prune(h);
		first = !h->dropping;
		h->dropping = true;
	}
	pthread_mutex_unlock(&h->lock);
	if (!n) {
		struct hook_ev copy = *ev;

		log_err(-ENOMEM, "cannot queue the hook of '%s/%s'",
			ev->model, ev->version);
		report(h, &copy, HOOK_DROPPED, strerror(ENOMEM), NULL);
	} else if (!u) {
		/* no room to note the user: nothing of it is queued */
		drop(h, n, first);
	} else if (out) {
		drop(h, out, first);
	}
}

/* ---- running one -------------------------------------------------------- */

/* The environment of a hook: a fixed set (hooks.h). */
struct hook_env {
	char *v[HOOK_ENV_MAX + 1];
	size_t n;
};

static int env_add(struct hook_env *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int env_add(struct hook_env *e, const char *fmt, ...)
{
	va_list ap;
	int r;

	assert(e->n < HOOK_ENV_MAX);
	va_start(ap, fmt);
	r = vasprintf(&e->v[e->n], fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	e->v[++e->n] = NULL;
	return 0;
}

static void env_release(struct hook_env *e)
{
	while (e->n)
		free(e->v[--e->n]);
}

static int env_build(struct hooks *h, const struct hook_ev *ev,
		     struct hook_env *e)
{
	struct passwd pw, *res = NULL;
	char buf[4096], user[64];
	const char *home = "/";
	int r = 0;

	util_uid_name(ev->uid, user, sizeof(user));
	if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) == 0 && res &&
	    res->pw_dir && res->pw_dir[0] == '/')
		home = res->pw_dir;
	e->n = 0;
	e->v[0] = NULL;
	pthread_mutex_lock(&h->lock);
	r |= env_add(e, "MREG_EVENT=%s", event_name(ev->event));
	r |= env_add(e, "MREG_MODEL=%s", ev->model);
	r |= env_add(e, "MREG_VERSION=%s", ev->version);
	r |= env_add(e, "MREG_STAGE=%s", ev->stage);
	r |= env_add(e, "MREG_PREVIOUS=%s", ev->previous);
	r |= env_add(e, "MREG_USER=%s", user);
	r |= env_add(e, "MREG_UID=%u", (unsigned)ev->uid);
	r |= env_add(e, "MREG_STORE=%s", h->store);
	r |= env_add(e, "MREG_MOUNT=%s", h->mount ? h->mount : "");
	r |= env_add(e, "PATH=" HOOK_PATH);
	r |= env_add(e, "LANG=C");
	r |= env_add(e, "HOME=%s", home);
	pthread_mutex_unlock(&h->lock);
	if (r < 0) {
		env_release(e);
		return -ENOMEM;
	}
	return 0;
}

/* A running hook. */
struct hook_child {
	const char *prog;
	pid_t pid;
	int pidfd;                /* readable once the child exited */
	int out;                  /* its stdout and stderr, or -1 at EOF */
	char buf[HOOK_OUTPUT_MAX];
	size_t used;
	int status;
	bool killed;
};

/* Starts c->prog with env: 0 or -errno (the reason in why). */
static int child_spawn(struct hook_child *c, char **env, char *why,
		       size_t whylen)
{
	char *argv[] = { (char *)c->prog, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	int pfd[2], r;

	if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = -errno;
		snprintf(why, whylen, "cannot make a pipe: %s", strerror(-r));
		return r;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	posix_spawn_file_actions_addchdir_np(&fa, "/");
	/* Nothing else of the daemon: not the index (LMDB opens it without
	 * O_CLOEXEC), not fusermount3's auto_unmount socket, which a hook
	 * left running would hold open past the daemon's death. */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	/* A group of its own: the timeout kills what it started too. */
	posix_spawnattr_init(&sa);
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&sa, 0);
	r = -posix_spawn(&c->pid, c->prog, &fa, &sa, argv, env);
	posix_spawnattr_destroy(&sa);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (r < 0) {
		close(pfd[0]);
		snprintf(why, whylen, "did not start: %s", strerror(-r));
		return r;
	}
	c->out = pfd[0];
	/* Not reaped before we wait for it: the pid cannot be reused. */
	c->pidfd = pidfd_open(c->pid, 0);
	if (c->pidfd < 0) {
		r = -errno;
		kill(-c->pid, SIGKILL);
		waitpid(c->pid, &c->status, 0);
		close(c->out);
		snprintf(why, whylen, "cannot watch it: pidfd_open: %s",
			 strerror(-r));
		return r;
	}
	return 0;
}

/* Reads what the child wrote (the first HOOK_OUTPUT_MAX bytes are kept);
 * closes the pipe at EOF. */
static void child_read(struct hook_child *c)
{
	char sink[4096];
	ssize_t n;

	while (c->out >= 0) {
		if (c->used < sizeof(c->buf) - 1)
			n = read(c->out, c->buf + c->used,
				 sizeof(c->buf) - 1 - c->used);
		else
			n = read(c->out, sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return; /* EAGAIN: nothing more now */
		if (n == 0) {
			close(c->out);
			c->out = -1;
			return;
		}
		if (c->used < sizeof(c->buf) - 1)
			c->used += (size_t)n;
	}
}

/* Waits until the child exits or the deadline passes (then kills its
 * group); reaps it. Output left in the pipe when it exits is read, but a
 * process it left running with the pipe open does not hold us. */
static void child_wait(struct hook_child *c, int64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = { { c->pidfd, POLLIN, 0 },
				       { c->out, POLLIN, 0 } };
		int64_t left = deadline - mono_ns() / 1000000;
		int r;

		if (left <= 0) {
			kill(-c->pid, SIGKILL);
			c->killed = true;
			break;
		}
		r = poll(p, c->out >= 0 ? 2 : 1, left > INT_MAX ? INT_MAX :
						  (int)left);
		if (r < 0 && errno != EINTR) {
			/* cannot happen with valid descriptors; never wait
			   without a deadline */
			kill(-c->pid, SIGKILL);
			c->killed = true;
			break;
		}
		if (r > 0 && p[1].revents)
			child_read(c);
		if (r > 0 && p[0].revents)
			break;
	}
	child_read(c);
	if (c->out >= 0)
		close(c->out);
	c->out = -1;
	close(c->pidfd);
	while (waitpid(c->pid, &c->status, 0) < 0 && errno == EINTR)
		;
}

/* Logs how c ended; returns what it means. */
static enum hook_result child_result(const struct hooks *h,
				     const struct hook_child *c,
				     const struct hook_ev *ev, char *out)
{
	const char *what = event_name(ev->event);
	size_t used = c->used;
	int code;

	if (c->killed) {
		log_msg(LOG_LVL_WARN, "hook '%s' for %s of '%s/%s' killed after "
			"%u s", c->prog, what, ev->model, ev->version,
			h->cfg->hook_timeout);
		return HOOK_FAILED;
	}
	memcpy(out, c->buf, used);
	out[used] = '\0';
	while (used && out[used - 1] == '\n')
		out[--used] = '\0';
	code = WIFEXITED(c->status) ? WEXITSTATUS(c->status) :
				      128 + WTERMSIG(c->status);
	log_msg(code == 0 ? LOG_LVL_INFO : LOG_LVL_WARN,
		"hook '%s' for %s of '%s/%s' exited with status %d%s%s",
		c->prog, what, ev->model, ev->version, code,
		used ? ": " : "", out);
	return code == 0 ? HOOK_OK : HOOK_ERROR;
}

/* ---- delivering one to a URL ----------------------------------------------- */

/* What a URL hook is sent: the fields of a program's environment (a
 * program gets them as MREG_*), and the delivery's id and time. -ENOMEM. */
static int body_build(struct hooks *h, const struct hook_ev *ev,
		      const char *id, struct strbuf *sb)
{
	char user[64], uid[16], when[40], *mount;
	size_t i;

	pthread_mutex_lock(&h->lock);
	mount = strdup(h->mount ? h->mount : "");
	pthread_mutex_unlock(&h->lock);
	if (!mount)
		return -ENOMEM;
	util_uid_name(ev->uid, user, sizeof(user));
	snprintf(uid, sizeof(uid), "%u", (unsigned)ev->uid);
	util_time_iso(now_ns(), true, when, sizeof(when));
	/* uid is the one number */
	const char *const f[][2] = {
		{ "event", event_name(ev->event) },
		{ "model", ev->model }, { "version", ev->version },
		{ "stage", ev->stage }, { "previous", ev->previous },
		{ "user", user }, { "uid", NULL }, { "store", h->store },
		{ "mount", mount }, { "delivery_id", id }, { "timestamp", when },
	};

	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		strbuf_addf(sb, "%s\"%s\":", i ? "," : "{", f[i][0]);
		if (f[i][1])
			json_quotes(sb, f[i][1]);
		else
			strbuf_adds(sb, uid);
	}
	strbuf_addch(sb, '}');
	free(mount);
	return 0;
}

/* Reads the secret and posts the event; the reason of a failure in why.
 * The result of webhook_post(), or -errno before it could run. */
static int deliver(struct hooks *h, const struct hook_ev *ev, const char *id,
		   int64_t deadline, struct webhook_result *res, char *why,
		   size_t whylen)
{
	const struct mreg_config *cfg = h->cfg;
	char secret[CONFIG_SECRET_MAX];
	struct strbuf body;
	int n, r;

	/* again at each delivery: the config may not be the one that
	   set it */
	if ((r = config_hook_check(cfg, ev->program, why, whylen)) < 0)
		return r;
	n = config_secret_read(cfg->hook_secret_file, secret, sizeof(secret),
			       why, whylen);
	if (n < 0)
		return n;
	strbuf_init(&body);
	if ((r = body_build(h, ev, id, &body)) < 0) {
		explicit_bzero(secret, sizeof(secret));
		snprintf(why, whylen, "%s", strerror(-r));
		return r;
	}
	r = webhook_post(&(struct webhook_req){
			.url = ev->program, .ca_file = cfg->hook_ca_file,
			.secret = secret, .secret_len = (size_t)n, .id = id,
			.body = body.buf, .body_len = body.len,
			.attempts = cfg->hook_attempts,
			.attempt_ms = cfg->hook_attempt_timeout * 1000,
			.backoff_ms = HOOK_BACKOFF_MS,
			.deadline_ns = deadline }, res);
	explicit_bzero(secret, sizeof(secret));
	strbuf_release(&body);
	if (r == -EAGAIN && res->attempts < cfg->hook_attempts)
		snprintf(why, whylen, "%s (no time left for attempt %u within "
			 "the timeout of %u s)", res->why, res->attempts + 1,
			 cfg->hook_timeout);
	else if (r < 0)
		snprintf(why, whylen, "%s", res->why);
	return r;
}

static void deliver_one(struct hooks *h, const struct hook_ev *ev)
{
	int64_t deadline = mono_ns() +
			   (int64_t)h->cfg->hook_timeout * 1000000000;
	char url[HOOK_PROGRAM_MAX], id[WEBHOOK_ID_LEN], why[PATH_MAX + 256];
	struct webhook_result res = { .status = 0 };
	enum hook_result out;
	int r = 0;

	why[0] = '\0';
	webhook_url_shown(ev->program, url, sizeof(url));
	/* an event queued before delivery ids were kept gets one now */
	strlcpy(id, ev->delivery, sizeof(id));
	if (!id[0] && (r = webhook_new_id(id)) < 0)
		snprintf(why, sizeof(why), "cannot make a delivery id: %s",
			 strerror(-r));
	if (r == 0)
		r = deliver(h, ev, id, deadline, &res, why, sizeof(why));
	out = r == 0 ? HOOK_OK : r == -EREMOTEIO ? HOOK_ERROR : HOOK_FAILED;
	if (out == HOOK_OK)
		log_msg(LOG_LVL_INFO, "hook '%s' for %s of '%s/%s' delivered "
			"(HTTP %ld, %u attempt%s, delivery %s)", url,
			event_name(ev->event), ev->model, ev->version,
			res.status, res.attempts, res.attempts == 1 ? "" : "s",
			id);
	else
		log_msg(LOG_LVL_WARN, "hook '%s' for %s of '%s/%s' %s after "
			"%u attempt%s (delivery %s): %s", url,
			event_name(ev->event), ev->model, ev->version,
			out == HOOK_ERROR ? "refused" : "not delivered",
			res.attempts, res.attempts == 1 ? "" : "s", id, why);
	report(h, ev, out, why, &(struct hook_delivery){ .url = url,
		.id = id, .status = res.status, .attempts = res.attempts });
}

/* ---- the runner's step ---------------------------------------------------- */

static void run_one(struct hooks *h, const struct hook_ev *ev)
{
	struct hook_child c = { .prog = ev->program, .out = -1, .pidfd = -1 };
	char why[PATH_MAX + 128] = "", out[HOOK_OUTPUT_MAX];
	struct hook_env env;
	int64_t deadline = 0;
	int r;

	if (!c.prog[0])
		return;
	if (webhook_is_url(c.prog)) {
		deliver_one(h, ev);
		return;
	}
	/* again at each run: it may have changed since the start */
	r = config_program_trusted(c.prog, why, sizeof(why));
	if (r == 0 && (r = env_build(h, ev, &env)) < 0)
		snprintf(why, sizeof(why), "%s", strerror(-r));
	if (r == 0) {
		deadline = mono_ns() / 1000000 + (int64_t)h->cfg->hook_timeout * 1000;
		r = child_spawn(&c, env.v, why, sizeof(why));
		env_release(&env);
	}
	if (r < 0) {
		log_msg(LOG_LVL_WARN, "hook '%s' for %s of '%s/%s' not run: %s",
			c.prog, event_name(ev->event), ev->model, ev->version,
			why);
		report(h, ev, HOOK_FAILED, why, NULL);
		return;
	}
	child_wait(&c, deadline);
	r = child_result(h, &c, ev, out);
	if (r == HOOK_FAILED)
		snprintf(why, sizeof(why), "timed out after %u s (killed)",
			 h->cfg->hook_timeout);
	report(h, ev, (enum hook_result)r, why, NULL);
}

/* ---- the runner ----------------------------------------------------------- */

static void *hooks_thread(void *arg)
{
	struct hooks *h = arg;
	struct hook_node *n;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		while (!h->total && !h->stop)
			pthread_cond_wait(&h->cond, &h->lock);
		n = next_event(h);
		if (!n)
			break;
		if (!h->total)
			h->dropping = false;
		pthread_mutex_unlock(&h->lock);
		run_one(h, &n->ev);
		free(n);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static void hooks_free(struct hooks *h)
{
	size_t i;
	int c;

	for (i = 0; i < h->nusers; i++) {
		for (c = 0; c < Q_N; c++) {
			struct hook_node *n;

			while ((n = TAILQ_FIRST(&h->users[i]->q[c]))) {
				TAILQ_REMOVE(&h->users[i]->q[c], n, link);
				free(n);
			}
		}
		free(h->users[i]);
	}
	free(h->users);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->cond);
	free(h->store);
	free(h->mount);
	free(h);
}

int hooks_start(const struct mreg_config *cfg, const char *store,
		hook_report_fn *report_fn, void *arg, struct hooks **ret)
{
	struct hooks *h;
	int r;

	if (!cfg || !store || !ret)
		return -EINVAL;
	*ret = NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->cfg = cfg;
	h->report = report_fn;
	h->report_arg = arg;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	h->store = strdup(store);
	if (!h->store) {
		hooks_free(h);
		return -ENOMEM;
	}
	r = pthread_create(&h->thread, NULL, hooks_thread, h);
	if (r) {
		hooks_free(h);
		return -r;
	}
	*ret = h;
	return 0;
}

int hooks_set_mount(struct hooks *h, const char *mount)
{
	char *m = NULL;

	if (!h)
		return 0;
	if (mount && *mount && !(m = strdup(mount)))
		return -ENOMEM;
	pthread_mutex_lock(&h->lock);
	free(h->mount);
	h->mount = m;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

void hooks_counts(struct hooks *h, struct hook_counts *ret)
{
	if (!ret)
		return;
	memset(ret, 0, sizeof(*ret));
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	memcpy(ret->n, h->counts, sizeof(ret->n));
	ret->queued = h->total;
	pthread_mutex_unlock(&h->lock);
}

void hooks_stop(struct hooks *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	hooks_free(h);
}
