/* inval.c — sends kernel cache invalidations from a thread of its own.
 *
 * fuse_lowlevel_notify_inval_entry() takes the directory's lock in the
 * kernel; a handler that called it while the kernel still waits for that
 * handler's reply (rename, symlink, unlink hold the lock) would deadlock.
 * So handlers queue the work and return; this worker sends it once the
 * request is answered. Work is best effort: dropped when the queue is full
 * or memory runs out, because short timeouts already bound staleness.
 */
#include "mregfs.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define INVAL_QUEUE_MAX 4096

struct inval_item {
	struct inval_item *next;
	uint64_t ino;           /* the directory for an entry, else the inode */
	bool entry;
	bool data;
	char name[];            /* entries only */
};

struct inval_queue {
	struct fuse_session *se;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct inval_item *head, *tail;
	unsigned len;
	bool stop;
	pthread_t thread;
};

static void send_one(struct inval_queue *q, const struct inval_item *it)
{
	int r;

	if (it->entry)
		r = fuse_lowlevel_notify_inval_entry(q->se, it->ino, it->name,
						     strlen(it->name));
	else
		r = fuse_lowlevel_notify_inval_inode(q->se, it->ino,
						     it->data ? 0 : -1, 0);
	/* -ENOENT: the kernel had nothing cached. */
	if (r < 0 && r != -ENOENT)
		log_debug("cannot invalidate inode %llu%s%s: %s",
			  (unsigned long long)it->ino,
			  it->entry ? " entry " : "", it->entry ? it->name : "",
			  strerror(-r));
}

static void *inval_worker(void *arg)
{
	struct inval_queue *q = arg;
	struct inval_item *it;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->head && !q->stop)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->stop)
			break;
		it = q->head;
		q->head = it->next;
		if (!q->head)
			q->tail = NULL;
		q->len--;
		pthread_mutex_unlock(&q->lock);
		send_one(q, it);
		free(it);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int inval_start(struct fuse_session *se, struct inval_queue **ret)
{
	struct inval_queue *q;
	int r;

	if (!se || !ret)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->se = se;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	r = pthread_create(&q->thread, NULL, inval_worker, q);
	if (r) {
		pthread_cond_destroy(&q->cond);
		pthread_mutex_destroy(&q->lock);
		free(q);
		return log_err(-r, "cannot start the invalidation thread");
	}
	*ret = q;
	return 0;
}

void inval_stop(struct inval_queue *q)
{
	struct inval_item *it, *next;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	for (it = q->head; it; it = next) {
		next = it->next;
		free(it);
	}
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

static void push(struct inval_queue *q, struct inval_item *it)
{
	assert(q && it);
	pthread_mutex_lock(&q->lock);
	if (q->stop || q->len >= INVAL_QUEUE_MAX) {
		pthread_mutex_unlock(&q->lock);
		free(it);
		return;
	}
	it->next = NULL;
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->len++;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void inval_entry(struct inval_queue *q, uint64_t parent, const char *name)
{
	struct inval_item *it;
	size_t len;

	if (!q || !name)
		return;
	len = strlen(name);
	it = calloc(1, sizeof(*it) + len + 1);
	if (!it)
		return;
	it->ino = parent;
	it->entry = true;
	memcpy(it->name, name, len + 1);
	push(q, it);
}

void inval_inode(struct inval_queue *q, uint64_t ino, bool data)
{
	struct inval_item *it;

	if (!q)
		return;
	it = calloc(1, sizeof(*it));
	if (!it)
		return;
	it->ino = ino;
	it->data = data;
	push(q, it);
}
