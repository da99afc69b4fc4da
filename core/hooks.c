/* hooks.c — the hook runner (see hooks.h). One thread takes events off a
 * queue and runs each program with posix_spawn, reading its output through
 * a pipe until it exits or its time is up. */
#include "hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define HOOK_QUEUE_MAX 1024

extern char **environ;

struct hooks {
	const struct mreg_config *cfg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct hook_ev *q;
	size_t head, n;
	bool stop;
};

static void *hooks_thread(void *arg);

int hooks_start(const struct mreg_config *cfg, struct hooks **ret)
{
	struct hooks *h;
	int r;

	*ret = NULL;
	if (!cfg->on_register && !cfg->on_promote)
		return 0;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->q = calloc(HOOK_QUEUE_MAX, sizeof(*h->q));
	if (!h->q) {
		free(h);
		return -ENOMEM;
	}
	h->cfg = cfg;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	r = pthread_create(&h->thread, NULL, hooks_thread, h);
	if (r) {
		free(h->q);
		free(h);
		return -r;
	}
	*ret = h;
	return 0;
}

void hooks_queue(struct hooks *h, const struct hook_ev *ev)
{
	if (!h)
		return;
	if ((ev->event == HOOK_REGISTER && !h->cfg->on_register) ||
	    (ev->event == HOOK_PROMOTE && !h->cfg->on_promote))
		return;
	pthread_mutex_lock(&h->lock);
	if (h->n == HOOK_QUEUE_MAX) {
		pthread_mutex_unlock(&h->lock);
		log_msg(LOG_LVL_WARN, "hook queue full: hook for '%s/%s' "
			"dropped", ev->model, ev->version);
		return;
	}
	h->q[(h->head + h->n) % HOOK_QUEUE_MAX] = *ev;
	h->n++;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run_one(struct hooks *h, const struct hook_ev *ev)
{
	const char *prog = ev->event == HOOK_REGISTER ? h->cfg->on_register :
							 h->cfg->on_promote;
	const char *what = ev->event == HOOK_REGISTER ? "register" : "promote";
	char *env[64], out[4096];
	char *argv[] = { (char *)prog, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	size_t ne = 0, used = 0;
	int64_t deadline;
	int pfd[2], status = 0, r;
	char **e;
	pid_t pid;
	bool killed = false;

	for (e = environ; *e && ne < 50; e++)
		if (strncmp(*e, "MREG_", 5) != 0)
			env[ne++] = *e;
	if (asprintf(&env[ne++], "MREG_EVENT=%s", what) < 0 ||
	    asprintf(&env[ne++], "MREG_MODEL=%s", ev->model) < 0 ||
	    asprintf(&env[ne++], "MREG_VERSION=%s", ev->version) < 0 ||
	    asprintf(&env[ne++], "MREG_STAGE=%s", ev->stage) < 0 ||
	    asprintf(&env[ne++], "MREG_PREVIOUS=%s", ev->previous) < 0 ||
	    asprintf(&env[ne++], "MREG_UID=%u", (unsigned)ev->uid) < 0)
		return;
	env[ne] = NULL;
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		log_err(-errno, "hook '%s': cannot make a pipe", prog);
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	/* Nothing else of the daemon: not the index (LMDB opens it without
	 * O_CLOEXEC), not fusermount3's auto_unmount socket, which a hook
	 * left running would hold open past the daemon's death. */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	/* A group of its own: the timeout kills what the program started
	 * too. */
	posix_spawnattr_init(&sa);
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&sa, 0);
	r = posix_spawn(&pid, prog, &fa, &sa, argv, env);
	posix_spawnattr_destroy(&sa);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (r) {
		close(pfd[0]);
		log_err(-r, "hook '%s' for %s of '%s/%s' did not start", prog,
			what, ev->model, ev->version);
		goto out;
	}
	deadline = mono_ms() + (int64_t)h->cfg->hook_timeout * 1000;
	for (;;) {
		struct pollfd p = { pfd[0], POLLIN, 0 };
		int64_t left = deadline - mono_ms();
		ssize_t n;

		if (left <= 0) {
			kill(-pid, SIGKILL);
			killed = true;
			break;
		}
		r = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		n = read(pfd[0], out + used, sizeof(out) - 1 - used);
		if (n <= 0)
			break; /* EOF: the program closed its output */
		used += (size_t)n;
		if (used == sizeof(out) - 1) {
			char sink[4096];

			while (read(pfd[0], sink, sizeof(sink)) > 0 &&
			       mono_ms() < deadline)
				;
		}
	}
	close(pfd[0]);
	/* A program that closed its output may still run: the timeout
	 * holds until it exits. */
	while (!killed && waitpid(pid, &status, WNOHANG) == 0) {
		if (mono_ms() >= deadline) {
			kill(-pid, SIGKILL);
			killed = true;
			break;
		}
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
	if (killed)
		waitpid(pid, &status, 0);
	out[used] = '\0';
	while (used && out[used - 1] == '\n')
		out[--used] = '\0';
	if (killed)
		log_msg(LOG_LVL_WARN, "hook '%s' for %s of '%s/%s' killed after "
			"%u s", prog, what, ev->model, ev->version,
			h->cfg->hook_timeout);
	else
		log_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0 ?
			LOG_LVL_INFO : LOG_LVL_WARN,
			"hook '%s' for %s of '%s/%s' exited with status %d%s%s",
			prog, what, ev->model, ev->version,
			WIFEXITED(status) ? WEXITSTATUS(status) :
					    128 + WTERMSIG(status),
			used ? ": " : "", out);
out:
	while (ne > 0 && env[ne - 1] && strncmp(env[ne - 1], "MREG_", 5) == 0)
		free(env[--ne]);
}

static void *hooks_thread(void *arg)
{
	struct hooks *h = arg;
	struct hook_ev ev;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		while (!h->n && !h->stop)
			pthread_cond_wait(&h->cond, &h->lock);
		if (!h->n)
			break;
		ev = h->q[h->head];
		h->head = (h->head + 1) % HOOK_QUEUE_MAX;
		h->n--;
		pthread_mutex_unlock(&h->lock);
		run_one(h, &ev);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
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
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->cond);
	free(h->q);
	free(h);
}
