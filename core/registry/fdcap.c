/* fdcap.c — per-user caps and a reserve on the daemon's descriptors (see
 * fdcap.h). The users holding descriptors are few (those with files open
 * for writing out of order), so they sit in a small array, searched
 * linearly under one mutex; a user whose count drops to 0 leaves it.
 */
#include "registry/fdcap.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct fdcap_user {
	uid_t uid;
	unsigned n;
	bool warned;            /* told the log it hit the cap */
};

struct fdcap {
	unsigned per_user, reserve;
	pthread_mutex_t lock;   /* everything below */
	struct fdcap_user *v;
	size_t n, cap;
	uint64_t held, refused;
	atomic_bool reserve_warned; /* told the log the reserve is reached */
};

int fdcap_new(unsigned per_user, unsigned reserve, struct fdcap **ret)
{
	struct fdcap *c;

	if (!per_user || !ret)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->per_user = per_user;
	c->reserve = reserve;
	pthread_mutex_init(&c->lock, NULL);
	*ret = c;
	return 0;
}

void fdcap_free(struct fdcap *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c->v);
	free(c);
}

/* uid's entry (lock held), added when add; NULL: none, or ENOMEM. */
static struct fdcap_user *user_of(struct fdcap *c, uid_t uid, bool add)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (c->v[i].uid == uid)
			return &c->v[i];
	if (!add)
		return NULL;
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 8;
		struct fdcap_user *nv = reallocarray(c->v, nc, sizeof(*nv));

		if (!nv)
			return NULL;
		c->v = nv;
		c->cap = nc;
	}
	c->v[c->n] = (struct fdcap_user){ .uid = uid };
	return &c->v[c->n++];
}

int fdcap_take(struct fdcap *c, uid_t uid)
{
	struct fdcap_user *u;
	bool warn = false;
	char name[64];

	if (!c)
		return 0;
	pthread_mutex_lock(&c->lock);
	u = user_of(c, uid, true);
	if (!u) {
		pthread_mutex_unlock(&c->lock);
		return -ENOMEM;
	}
	if (u->n >= c->per_user) {
		warn = !u->warned;
		u->warned = true;
		c->refused++;
		pthread_mutex_unlock(&c->lock);
		if (warn) {
			util_uid_name(uid, name, sizeof(name));
			log_msg(LOG_LVL_WARN, "user '%s' holds %u files open "
				"with a spool each ([limits] "
				"open_files_per_user): refusing more with "
				"EMFILE", name, c->per_user);
		}
		return -EMFILE;
	}
	u->n++;
	c->held++;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void fdcap_give(struct fdcap *c, uid_t uid)
{
	struct fdcap_user *u;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	u = user_of(c, uid, false);
	if (u && u->n) {
		u->n--;
		c->held--;
		if (u->n < c->per_user)
			u->warned = false;
		if (!u->n)
			*u = c->v[--c->n];
	}
	pthread_mutex_unlock(&c->lock);
}

/* The soft limit on descriptors, as an int. */
static long nofile_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > INT_MAX)
		return INT_MAX;
	return (long)rl.rlim_cur;
}

int fdcap_admit(struct fdcap *c, uid_t uid, int fd)
{
	long limit;
	bool warn;

	if (!c || fd < 0)
		return fd;
	limit = nofile_limit();
	if ((long)fd < limit - (long)c->reserve) {
		if (atomic_load(&c->reserve_warned))
			atomic_store(&c->reserve_warned, false);
		return fd;
	}
	close(fd);
	fdcap_give(c, uid);
	pthread_mutex_lock(&c->lock);
	c->refused++;
	pthread_mutex_unlock(&c->lock);
	warn = !atomic_exchange(&c->reserve_warned, true);
	if (warn)
		log_msg(LOG_LVL_WARN, "fewer than %u of %ld descriptors left "
			"([limits] open_files_reserve): refusing new spools "
			"with EMFILE", c->reserve, limit);
	return -EMFILE;
}

void fdcap_stats(struct fdcap *c, struct fdcap_stats *ret)
{
	if (!ret)
		return;
	memset(ret, 0, sizeof(*ret));
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	ret->held = c->held;
	ret->refused = c->refused;
	pthread_mutex_unlock(&c->lock);
}
