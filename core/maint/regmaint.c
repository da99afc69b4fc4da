/* regmaint.c — keeping a store sound: pins (which versions live processes
 * have open), pending files of dead writers, fsck and gc (SPEC §5).
 *
 * Pending files: see reg_pending_add_txn() in internal.h and reglive.c.
 *
 * Pins: each process that opens sealed files keeps DIR/run/pins-PID, one
 * version inode per line, and holds flock(LOCK_EX) on it for its life. gc
 * frees a removed version's tree only when no live process lists it; a
 * pins file it can lock belongs to a dead process and is removed. A pin is
 * written when a version's first file is opened; released pins are dropped
 * lazily (reg_tick), so open/close cycles cost no I/O.
 *
 * gc, in order, each step in transactions of its own so the store is
 * usable throughout: (0) packs: dead tails cut off and packs no record
 * names removed, which needs neither free space nor an index write (room
 * on a full disk first), (1) removed versions' trees, (2) chunk records no
 * extent references, (3) packs again: cut, removed, and rewritten when
 * more than the threshold dead — never a pack some process still appends
 * to or names in an open batch (store/pack/pack.c's locks say which; see
 * "gc: packs" below).
 */
#include "registry/internal.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "util.h"

struct pin {
	uint64_t version;
	unsigned count;
	struct pin *next;
};

/* ---- pins ----------------------------------------------------------------- */

int reg_pins_open(struct reg_registry *reg)
{
	if (asprintf(&reg->pin_path, "%s/pins-%d", reg->run_dir,
		     (int)getpid()) < 0)
		return -ENOMEM;
	return 0;
}

static void pins_write(struct reg_registry *reg)
{
	struct strbuf sb;
	struct pin *p;

	if (reg->pin_fd < 0) {
		reg->pin_fd = open(reg->pin_path,
				   O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (reg->pin_fd < 0) {
			log_err(-errno, "cannot create '%s'", reg->pin_path);
			return;
		}
		if (flock(reg->pin_fd, LOCK_EX) < 0)
			log_err(-errno, "cannot lock '%s'", reg->pin_path);
	}
	strbuf_init(&sb);
	for (p = reg->pins; p; p = p->next)
		strbuf_addf(&sb, "%llu\n", (unsigned long long)p->version);
	if (pwrite(reg->pin_fd, sb.buf, sb.len, 0) != (ssize_t)sb.len ||
	    ftruncate(reg->pin_fd, (off_t)sb.len) < 0)
		log_err(-errno, "cannot write '%s'", reg->pin_path);
	strbuf_release(&sb);
	reg->pins_dirty = false;
}

void reg_pin(struct reg_registry *reg, uint64_t v)
{
	struct pin *p;

	pthread_mutex_lock(&reg->lock);
	for (p = reg->pins; p; p = p->next)
		if (p->version == v)
			break;
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (p) {
			p->version = v;
			p->next = reg->pins;
			reg->pins = p;
			pins_write(reg);
		}
	}
	if (p)
		p->count++;
	pthread_mutex_unlock(&reg->lock);
}

void reg_unpin(struct reg_registry *reg, uint64_t v)
{
	struct pin *p;

	pthread_mutex_lock(&reg->lock);
	for (p = reg->pins; p; p = p->next)
		if (p->version == v) {
			if (p->count && --p->count == 0)
				reg->pins_dirty = true;
			break;
		}
	pthread_mutex_unlock(&reg->lock);
}

void reg_pins_flush(struct reg_registry *reg)
{
	struct pin **pp, *p;

	pthread_mutex_lock(&reg->lock);
	if (reg->pins_dirty) {
		for (pp = &reg->pins; (p = *pp);) {
			if (p->count == 0) {
				*pp = p->next;
				free(p);
			} else {
				pp = &p->next;
			}
		}
		pins_write(reg);
	}
	pthread_mutex_unlock(&reg->lock);
}

void reg_pins_close(struct reg_registry *reg)
{
	struct pin *p;

	while ((p = reg->pins)) {
		reg->pins = p->next;
		free(p);
	}
	if (reg->pin_fd >= 0) {
		unlink(reg->pin_path);
		close(reg->pin_fd);
		reg->pin_fd = -1;
	}
	free(reg->pin_path);
	reg->pin_path = NULL;
}

struct pinset {
	uint64_t *v;
	size_t n, cap;
};

static int pinset_add(struct pinset *s, uint64_t v)
{
	if (ARRAY_GROW(s->v, s->cap, s->n) < 0)
		return -ENOMEM;
	s->v[s->n++] = v;
	return 0;
}

static bool pinset_has(const struct pinset *s, uint64_t v)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i] == v)
			return true;
	return false;
}

/* Reads every live process's pins; with reap, removes dead processes'
 * files. */
static int pins_read(struct reg_registry *reg, struct pinset *s, bool reap)
{
	DIR *d = opendir(reg->run_dir);
	struct dirent *de;
	int r = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d)) && r == 0) {
		char *path, buf[65536], *line, *save;
		ssize_t n;
		int fd;

		if (strncmp(de->d_name, "pins-", 5) != 0)
			continue;
		if (asprintf(&path, "%s/%s", reg->run_dir, de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			free(path);
			continue;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			if (reap)
				unlink(path); /* its process is gone */
			close(fd);
			free(path);
			continue;
		}
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		close(fd);
		free(path);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		for (line = strtok_r(buf, "\n", &save); line && r == 0;
		     line = strtok_r(NULL, "\n", &save))
			r = pinset_add(s, strtoull(line, NULL, 10));
	}
	closedir(d);
	return r;
}

/* ---- pending files ---------------------------------------------------------- */

static void pending_key(uint64_t ino, uint8_t *k)
{
	memcpy(k, PENDING_PREFIX, sizeof(PENDING_PREFIX) - 1);
	be64_put(k + sizeof(PENDING_PREFIX) - 1, ino);
}

int reg_pending_add_txn(struct reg_registry *reg, struct idx_txn *t,
			uint64_t ino)
{
	uint8_t k[sizeof(PENDING_PREFIX) - 1 + 8], v[8];

	pending_key(ino, k);
	be64_put(v, reg->live_token);
	return idx_put(t, IDX_META, k, sizeof(k), v, sizeof(v), 0);
}

int reg_pending_del_txn(struct idx_txn *t, uint64_t ino)
{
	uint8_t k[sizeof(PENDING_PREFIX) - 1 + 8];
	int r;

	pending_key(ino, k);
	r = idx_del(t, IDX_META, k, sizeof(k));
	return r == -ENOENT ? 0 : r;
}

bool reg_pending_ours_txn(struct reg_registry *reg, struct idx_txn *t,
			  uint64_t ino)
{
	uint8_t k[sizeof(PENDING_PREFIX) - 1 + 8];
	struct idx_val v;

	pending_key(ino, k);
	return idx_get(t, IDX_META, k, sizeof(k), &v) == 0 && v.len == 8 &&
	       be64_get(v.data) == reg->live_token;
}

struct pending_list {
	struct reg_registry *reg;
	uint64_t *v;
	size_t n, cap;
};

static int pending_one(void *arg, const struct idx_val *k,
		       const struct idx_val *v)
{
	struct pending_list *l = arg;
	uint32_t pid;

	if (k->len != sizeof(PENDING_PREFIX) - 1 + 8)
		return 0;
	if (v->len == 8) {
		if (reg_live_token_alive(l->reg, be64_get(v->data)))
			return 0;
	} else if (v->len == 4) {
		/* a note of an older mreg: a PID, the best it had */
		memcpy(&pid, v->data, 4);
		if (pid != (uint32_t)getpid() &&
		    (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			return 0;
	}
	if (ARRAY_GROW(l->v, l->cap, l->n) < 0)
		return -ENOMEM;
	l->v[l->n++] = be64_get((const uint8_t *)k->data + k->len - 8);
	return 0;
}

/* The inodes noted by dead processes, into l. */
static int pending_dead_txn(struct idx_txn *t, void *arg)
{
	struct pending_list *l = arg;

	l->n = 0;
	return idx_scan(t, IDX_META, PENDING_PREFIX,
			sizeof(PENDING_PREFIX) - 1, NULL, 0, pending_one, l);
}

int reg_pending_drop_txn(struct idx_txn *t, const struct inode_rec *f)
{
	uint8_t k[8];
	int r;

	be64_put(k, f->ino);
	if ((r = reg_extents_drop_txn(t, f->ino)) < 0 ||
	    ((r = reg_name_del_txn(t, f->parent, f->name)) < 0 &&
	     r != -ENOENT) ||
	    (r = idx_del(t, IDX_INODES, k, 8)) < 0)
		return r;
	return reg_pending_del_txn(t, f->ino);
}

/* Is f, noted by a dead process, still what it left: a pending file, or a
 * file of a draft never committed (not unlinked meanwhile)? */
static int left_unfinished_txn(struct idx_txn *t, const struct inode_rec *f)
{
	struct inode_rec v;
	uint64_t ino;
	int r;

	if (f->flags & (INODE_TRASHED | INODE_SEALED))
		return 0;
	if (f->kind == REG_PENDING)
		return 1;
	if (f->kind != REG_FILE)
		return 0;
	if (reg_name_get_txn(t, f->parent, f->name, &ino) < 0 || ino != f->ino)
		return 0;
	if ((r = reg_inode_get_txn(t, f->version, &v)) < 0)
		return r == -ENOENT ? 0 : r;
	return !(v.flags & INODE_SEALED);
}

static int reap_txn(struct idx_txn *t, struct pending_list *l)
{
	struct inode_rec f;
	size_t i;
	int r;

	if ((r = pending_dead_txn(t, l)) < 0)
		return r;
	for (i = 0; i < l->n; i++) {
		r = reg_inode_get_txn(t, l->v[i], &f);
		if (r == 0)
			r = left_unfinished_txn(t, &f);
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == 1) {
			if ((r = reg_pending_drop_txn(t, &f)) < 0)
				return r;
			log_msg(LOG_LVL_INFO, "removed '%s', left half "
				"written by a process that died", f.name);
		} else if ((r = reg_pending_del_txn(t, l->v[i])) < 0) {
			return r;
		}
	}
	return 0;
}

int reg_pending_reap_txn(struct reg_registry *reg, struct idx_txn *t)
{
	struct pending_list l = { .reg = reg };
	int r = reap_txn(t, &l);

	free(l.v);
	return r;
}

static int pending_cleanup_txn(struct idx_txn *t, void *arg)
{
	return reap_txn(t, arg);
}

int reg_pending_cleanup(struct reg_registry *reg)
{
	struct pending_list l = { .reg = reg };
	int r = idx_read(reg->ix, pending_dead_txn, &l);

	if (r == 0 && l.n > 0)
		r = reg_change(reg, pending_cleanup_txn, &l);
	free(l.v);
	return r;
}

/* ---- fsck ------------------------------------------------------------------ */

/* A map chunk key -> count of extents naming it (open addressing). */
struct ref_map {
	struct chunk_key *k;
	uint64_t *count;
	uint8_t *full;       /* slot in use (any key, all-zero too) */
	size_t size, used;
};

static size_t rm_hash(const struct chunk_key *k, size_t size)
{
	uint64_t h;

	memcpy(&h, k->b + 8, 8);
	return (size_t)(h ^ (h >> 29) ^ k->b[17]) & (size - 1);
}

static uint64_t *rm_slot(struct ref_map *m, const struct chunk_key *k,
			 bool add)
{
	size_t i;

	if (add && (m->used + 1) * 2 > m->size) {
		struct ref_map n = { 0 };
		size_t j;

		n.size = m->size ? m->size * 2 : 4096;
		n.k = calloc(n.size, sizeof(*n.k));
		n.count = calloc(n.size, sizeof(*n.count));
		n.full = calloc(n.size, 1);
		if (!n.k || !n.count || !n.full) {
			free(n.k);
			free(n.count);
			free(n.full);
			return NULL;
		}
		for (j = 0; j < m->size; j++) {
			if (!m->full[j])
				continue;
			i = rm_hash(&m->k[j], n.size);
			while (n.full[i])
				i = (i + 1) & (n.size - 1);
			n.k[i] = m->k[j];
			n.count[i] = m->count[j];
			n.full[i] = 1;
		}
		n.used = m->used;
		free(m->k);
		free(m->count);
		free(m->full);
		*m = n;
	}
	if (!m->size)
		return NULL;
	for (i = rm_hash(k, m->size); m->full[i];
	     i = (i + 1) & (m->size - 1))
		if (memcmp(&m->k[i], k, sizeof(*k)) == 0)
			return &m->count[i];
	if (!add)
		return NULL;
	m->k[i] = *k;
	m->full[i] = 1;
	m->used++;
	return &m->count[i];
}

struct fsck {
	struct reg_registry *reg;
	struct idx_txn *t;
	unsigned flags;
	void (*report)(void *arg, const char *severity, const char *msg);
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *arg;
	struct ref_map refs;
	struct chunk_key *bad;   /* damaged chunks, to name their users */
	size_t nbad, capbad;
	uint64_t *live;          /* containers holding referenced chunks
				    (--full) */
	size_t nlive, caplive;
	uint64_t errors, chunks_total, chunks_done, reclaimable;
	uint8_t *buf;
	int err;
};

static void finding(struct fsck *f, bool error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void finding(struct fsck *f, bool error, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (error)
		f->errors++;
	if (f->report)
		f->report(f->arg, error ? "error" : "info", msg);
}

/* "model/version/path" of inode ino, for messages (cut to size). Walks
 * up the parents once, keeping their names: fsck builds a path only for
 * a finding, so that a clean pass stays linear in the tree however deep
 * it is (rebuilding every inode's path made it quadratic in the depth). */
static void inode_path_txn(struct idx_txn *t, uint64_t ino, char *buf,
			   size_t size)
{
	struct inode_rec *r = malloc(sizeof(*r));
	char (*names)[256] = NULL;
	size_t n = 0, cap = 0, len = 0, k;
	bool cut = false;

	snprintf(buf, size, "inode %llu", (unsigned long long)ino);
	if (!r)
		return;
	while (ino && reg_inode_get_txn(t, ino, r) == 0 &&
	       r->kind != REG_STAGES) {
		if (ARRAY_GROW(names, cap, n) < 0)
			goto out;
		memcpy(names[n++], r->name, sizeof(r->name));
		if (r->kind == REG_MODEL)
			break;
		if (n > REG_DEPTH_MAX + 8) {
			cut = true; /* a tree made before the limit */
			break;
		}
		ino = r->parent;
	}
	len = (size_t)snprintf(buf, size, "%s", cut ? ".../" : "");
	while (n-- > 0 && len + 1 < size) {
		k = (size_t)snprintf(buf + len, size - len, "%s%s", names[n],
				     n ? "/" : "");
		len += k < size - len ? k : size - len - 1;
	}
out:
	free(names);
	free(r);
}

static int fsck_extent(void *arg, const struct idx_val *k,
		       const struct idx_val *v)
{
	struct fsck *f = arg;
	struct extent_rec x;
	uint64_t *c;

	if (rec_extent_decode(k->data, k->len, v->data, v->len, &x) < 0) {
		finding(f, true, "damaged extent record of inode %llu",
			(unsigned long long)(k->len >= 8 ?
					     be64_get(k->data) : 0));
		return 0;
	}
	c = rm_slot(&f->refs, &x.chunk, true);
	if (!c)
		return f->err = -ENOMEM;
	(*c)++;
	return 0;
}

struct file_check {
	uint64_t next;     /* the next extent may not start before it (a
			      gap between two is a hole) */
	bool overlap;
	int err;
};

static int check_contig(void *arg, const struct idx_val *k,
			const struct idx_val *v)
{
	struct file_check *c = arg;
	struct extent_rec x;

	if (rec_extent_decode(k->data, k->len, v->data, v->len, &x) < 0)
		return 0;
	if (x.offset < c->next)
		c->overlap = true;
	c->next = x.offset + x.len;
	return 0;
}

/* A symlink inside a version must point inside it (a store written by an
 * older mreg may hold one that a rename took outside). */
static void fsck_link(struct fsck *f, const struct inode_rec *l)
{
	struct inode_rec *d = malloc(sizeof(*d));
	char path[1024];
	int depth = -1;

	if (!d) {
		f->err = -ENOMEM;
		return;
	}
	if (reg_inode_get_txn(f->t, l->parent, d) == 0)
		depth = reg_depth_txn(f->t, d);
	free(d);
	if (depth >= 0 && reg_check_link_target(l->target_path, depth) == 0)
		return;
	inode_path_txn(f->t, l->ino, path, sizeof(path));
	if (depth < 0)
		finding(f, true, "'%s': a symlink whose directory is missing",
			path);
	else
		finding(f, true, "'%s': symlink -> '%s' points outside its "
			"version", path, l->target_path);
}

static int fsck_inode(void *arg, const struct idx_val *k,
		      const struct idx_val *v)
{
	struct fsck *f = arg;
	struct inode_rec *r = malloc(sizeof(*r));
	struct file_check fc = { 0 };
	char path[1024];
	uint64_t ino = k->len == 8 ? be64_get(k->data) : 0, child;
	uint8_t p[8];

	if (!r)
		return f->err = -ENOMEM;
	if (rec_inode_decode(v->data, v->len, r) < 0 || r->ino != ino) {
		finding(f, true, "damaged inode record %llu",
			(unsigned long long)ino);
		goto out;
	}
	if (r->flags & INODE_TRASHED) {
		/* gc's business; a file unlinked while open still holds
		   its chunks */
		if (r->kind == REG_FILE || r->kind == REG_PENDING) {
			be64_put(p, ino);
			idx_scan(f->t, IDX_EXTENTS, p, 8, NULL, 0,
				 fsck_extent, f);
		}
		goto out;
	}
	if (r->kind != REG_MODEL && r->kind != REG_STAGES &&
	    r->kind != REG_STAGE && !(r->kind == REG_VERSION) &&
	    reg_name_get_txn(f->t, r->parent, r->name, &child) == 0 &&
	    child != ino) {
		inode_path_txn(f->t, ino, path, sizeof(path));
		finding(f, true, "'%s': its name names inode %llu",
			path, (unsigned long long)child);
	}
	if (r->kind == REG_STAGE) {
		struct inode_rec *tv = malloc(sizeof(*tv));

		if (!tv)
			return f->err = -ENOMEM;
		if (reg_inode_get_txn(f->t, r->target, tv) < 0 ||
		    tv->kind != REG_VERSION)
			finding(f, true, "stage '%s' points at a missing "
				"version", r->name);
		else if (!(tv->flags & INODE_SEALED))
			finding(f, true, "stage '%s' points at draft '%s'",
				r->name, tv->name);
		free(tv);
	}
	if (r->kind == REG_SYMLINK)
		fsck_link(f, r);
	if (r->kind == REG_FILE || r->kind == REG_PENDING) {
		be64_put(p, ino);
		idx_scan(f->t, IDX_EXTENTS, p, 8, NULL, 0, fsck_extent, f);
		idx_scan(f->t, IDX_EXTENTS, p, 8, NULL, 0, check_contig, &fc);
		if (fc.overlap || fc.next > r->size) {
			inode_path_txn(f->t, ino, path, sizeof(path));
			if (fc.overlap)
				finding(f, true, "'%s': its extents overlap",
					path);
			else
				finding(f, true, "'%s': its extents run to "
					"%llu, past its %llu bytes", path,
					(unsigned long long)fc.next,
					(unsigned long long)r->size);
		}
	}
out:
	free(r);
	return f->err;
}

static int fsck_chunk(void *arg, const struct idx_val *k,
		      const struct idx_val *v)
{
	struct fsck *f = arg;
	struct chunk_key key;
	struct store_span sp;
	struct chunk_rec c;
	struct mreg_id id;
	char hex[MREG_ID_HEX], where[256];
	uint64_t *n, want;
	int r;

	if (f->progress)
		f->progress(f->arg, ++f->chunks_done, f->chunks_total);
	if (k->len != CHUNK_KEY_LEN ||
	    rec_chunk_decode(v->data, v->len, &c) < 0 ||
	    store_loc_span(f->reg->st, &c.loc, &sp) < 0) {
		finding(f, true, "damaged chunk record");
		return 0;
	}
	memcpy(key.b, k->data, CHUNK_KEY_LEN);
	rec_chunk_key_id(&key, &id);
	chunkid_hex(&id, hex);
	n = rm_slot(&f->refs, &key, false);
	want = n ? *n : 0;
	if (n)
		*n = UINT64_MAX; /* seen */
	if (c.refs != want)
		finding(f, true, "chunk %s: reference count %llu, but %llu "
			"extents name it", hex, (unsigned long long)c.refs,
			(unsigned long long)want);
	if (want == 0) {
		f->reclaimable += sp.len;
		return 0;
	}
	if ((f->flags & REG_FSCK_FULL) &&
	    (!f->nlive || f->live[f->nlive - 1] != sp.container)) {
		if (ARRAY_GROW(f->live, f->caplive, f->nlive) < 0)
			return f->err = -ENOMEM;
		f->live[f->nlive++] = sp.container;
	}
	if (f->flags & REG_FSCK_FULL)
		r = store_get(f->reg->st, &c.loc, &id, f->buf);
	else
		r = store_get_raw(f->reg->st, &c.loc, f->buf);
	if (r < 0) {
		finding(f, true, "chunk %s (%s, %u bytes): %s", hex,
			store_loc_name(f->reg->st, &c.loc, where,
				       sizeof(where)), sp.len,
			r == -ENOENT ? "its pack is missing" :
			r == -EIO ? "damaged" : strerror(-r));
		if (ARRAY_GROW(f->bad, f->capbad, f->nbad) < 0)
			return f->err = -ENOMEM;
		f->bad[f->nbad++] = key;
	}
	return 0;
}

static int fsck_users(void *arg, const struct idx_val *k,
		      const struct idx_val *v)
{
	struct fsck *f = arg;
	struct extent_rec x;
	char path[1024], hex[MREG_ID_HEX];
	struct mreg_id id;
	size_t i;

	if (rec_extent_decode(k->data, k->len, v->data, v->len, &x) < 0)
		return 0;
	for (i = 0; i < f->nbad; i++) {
		if (memcmp(&f->bad[i], &x.chunk, sizeof(x.chunk)) != 0)
			continue;
		inode_path_txn(f->t, be64_get(k->data), path, sizeof(path));
		rec_chunk_key_id(&x.chunk, &id);
		finding(f, true, "chunk %s is used by '%s' at offset %llu",
			chunkid_hex(&id, hex), path,
			(unsigned long long)x.offset);
	}
	return 0;
}

static int fsck_missing(struct fsck *f)
{
	size_t i;
	char hex[MREG_ID_HEX];
	struct mreg_id id;

	for (i = 0; i < f->refs.size; i++) {
		if (!f->refs.full[i] || f->refs.count[i] == UINT64_MAX)
			continue;
		rec_chunk_key_id(&f->refs.k[i], &id);
		finding(f, true, "chunk %s is named by %llu extents but has no "
			"record", chunkid_hex(&id, hex),
			(unsigned long long)f->refs.count[i]);
		if (ARRAY_GROW(f->bad, f->capbad, f->nbad) < 0)
			return -ENOMEM;
		f->bad[f->nbad++] = f->refs.k[i];
	}
	return 0;
}

/* A name whose inode is missing or trashed: the entry lists, lookups
 * fail (a damaged index or a bug; nothing the registry does leaves one). */
static int fsck_name(void *arg, const struct idx_val *k,
		     const struct idx_val *v)
{
	struct fsck *f = arg;
	struct inode_rec *r;
	char path[1024];
	uint64_t parent, child;
	int e;

	if (k->len < 9 || v->len != 8) {
		finding(f, true, "damaged name record");
		return 0;
	}
	parent = be64_get(k->data);
	memcpy(&child, v->data, 8);
	if (!(r = malloc(sizeof(*r))))
		return f->err = -ENOMEM;
	e = reg_inode_get_txn(f->t, child, r);
	if (e == -ENOENT || (e == 0 && (r->flags & INODE_TRASHED))) {
		inode_path_txn(f->t, parent, path, sizeof(path));
		finding(f, true, "'%s%s%.*s' names inode %llu, which %s",
			path, path[0] ? "/" : "", (int)(k->len - 8),
			(const char *)k->data + 8,
			(unsigned long long)child,
			e ? "does not exist" : "was removed");
	}
	free(r);
	return 0;
}

static int fsck_txn(struct idx_txn *t, void *arg)
{
	struct fsck *f = arg;
	int r;

	f->t = t;
	if ((r = idx_count(t, IDX_CHUNKS, &f->chunks_total)) < 0)
		return r;
	idx_scan(t, IDX_INODES, NULL, 0, NULL, 0, fsck_inode, f);
	if (f->err < 0)
		return f->err;
	idx_scan(t, IDX_NAMES, NULL, 0, NULL, 0, fsck_name, f);
	if (f->err < 0)
		return f->err;
	idx_scan(t, IDX_CHUNKS, NULL, 0, NULL, 0, fsck_chunk, f);
	if (f->err < 0)
		return f->err;
	if ((r = fsck_missing(f)) < 0)
		return r;
	if (f->nbad)
		idx_scan(t, IDX_EXTENTS, NULL, 0, NULL, 0, fsck_users, f);
	return f->err;
}

static int first_record(UNUSED void *arg, UNUSED const struct mreg_id *id,
			UNUSED const struct chunk_loc *loc,
			UNUSED const void *data, UNUSED uint32_t len)
{
	return 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* --full: the framing of every container that holds referenced chunks
 * (they were checked one by one, which never reads a pack's header). A
 * container nothing references may be cut short by a crash (garbage for
 * gc), and a busy one may not have its header yet: left alone. */
static int fsck_container(void *arg, const struct store_container *c)
{
	struct fsck *f = arg;

	if (c->busy || !f->nlive || !bsearch(&c->id, f->live, f->nlive,
					     sizeof(*f->live), cmp_u64))
		return 0;
	if (store_iterate(f->reg->st, c->id, first_record, NULL) == -EIO)
		finding(f, true, "pack %08" PRIx64 " is damaged: its header "
			"or first record is bad", c->id);
	return 0;
}

/* What gc would reclaim, as info: only what it would reclaim as run by
 * default is said to be gc's; what it would only with a lower threshold
 * says so. */
static void gc_findings(struct fsck *f, const struct reg_store_stats *st)
{
	if (st->trash)
		finding(f, false, "%llu removed version%s or file%s wait%s "
			"for gc", (unsigned long long)st->trash,
			st->trash == 1 ? "" : "s", st->trash == 1 ? "" : "s",
			st->trash == 1 ? "s" : "");
	if (st->gc_bytes)
		finding(f, false, "%llu bytes are reclaimable by gc",
			(unsigned long long)st->gc_bytes);
	if (st->gc_all_bytes > st->gc_bytes)
		finding(f, false, "%llu bytes more are dead in packs at most "
			"%d %% dead: gc --all reclaims them",
			(unsigned long long)(st->gc_all_bytes - st->gc_bytes),
			REG_GC_THRESHOLD);
}

int reg_fsck(struct reg_registry *reg, unsigned flags,
	     void (*report)(void *arg, const char *severity, const char *msg),
	     void (*progress)(void *arg, uint64_t done, uint64_t total),
	     void *arg)
{
	struct fsck f = { .reg = reg, .flags = flags, .report = report,
			  .progress = progress, .arg = arg };
	struct reg_store_stats st;
	int r;

	if (!reg)
		return -EINVAL;
	f.buf = malloc(reg->chunker.max_size > (64u << 20) ?
		       reg->chunker.max_size : reg->chunker.max_size + 1);
	if (!f.buf)
		return -ENOMEM;
	r = idx_read(reg->ix, fsck_txn, &f);
	free(f.refs.k);
	free(f.refs.count);
	free(f.refs.full);
	free(f.bad);
	free(f.buf);
	if (r == 0 && (flags & REG_FSCK_FULL)) {
		if (f.nlive)
			qsort(f.live, f.nlive, sizeof(*f.live), cmp_u64);
		r = store_containers(reg->st, fsck_container, &f);
	}
	free(f.live);
	if (r < 0)
		return r;
	if (reg_store_stats(reg, &st) == 0)
		gc_findings(&f, &st);
	return (int)(f.errors > INT32_MAX ? INT32_MAX : f.errors);
}

/* ---- gc -------------------------------------------------------------------- */

struct gc {
	struct reg_registry *reg;
	struct pinset pins;
	struct reg_gc_result res;
	uint64_t *list;
	size_t n, cap;
	int err;
};

static int gc_push(struct gc *g, uint64_t v)
{
	if (ARRAY_GROW(g->list, g->cap, g->n) < 0)
		return g->err = -ENOMEM;
	g->list[g->n++] = v;
	return 0;
}

static int trash_one(void *arg, const struct idx_val *k,
		     UNUSED const struct idx_val *v)
{
	struct gc *g = arg;

	if (k->len == 8)
		return gc_push(g, be64_get(k->data));
	return 0;
}

static int trash_list_txn(struct idx_txn *t, void *arg)
{
	struct gc *g = arg;

	g->n = 0;
	idx_scan(t, IDX_TRASH, NULL, 0, NULL, 0, trash_one, g);
	return g->err;
}

struct kv_keys {
	uint8_t (*k)[8 + 300];
	size_t *len;
	size_t n, cap;
	int err;
};

static int xattr_key(void *arg, const struct idx_val *k,
		     UNUSED const struct idx_val *v)
{
	struct kv_keys *l = arg;

	if (k->len > 8 + 300)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		void *nk = reallocarray(l->k, cap, sizeof(*l->k));
		void *nl;

		if (!nk)
			return l->err = -ENOMEM;
		l->k = nk;
		nl = reallocarray(l->len, cap, sizeof(*l->len));
		if (!nl)
			return l->err = -ENOMEM;
		l->len = nl;
		l->cap = cap;
	}
	memcpy(l->k[l->n], k->data, k->len);
	l->len[l->n++] = k->len;
	return 0;
}

/* Deletes ino's xattrs. */
static int xattrs_drop_txn(struct idx_txn *t, uint64_t ino)
{
	struct kv_keys l = { 0 };
	uint8_t p[8];
	size_t i;
	int r = 0;

	be64_put(p, ino);
	idx_scan(t, IDX_XATTRS, p, 8, NULL, 0, xattr_key, &l);
	r = l.err;
	for (i = 0; i < l.n && r == 0; i++)
		r = idx_del(t, IDX_XATTRS, l.k[i], l.len[i]);
	free(l.k);
	free(l.len);
	return r;
}

/* Deletes directory dir's tree (not dir itself). */
static int tree_drop_txn(struct idx_txn *t, uint64_t dir, int depth)
{
	struct child_list l;
	struct inode_rec *r;
	uint8_t k[8];
	size_t i;
	int e;

	if (depth > 2048)
		return -EIO;
	if ((e = reg_children_txn(t, dir, &l)) < 0)
		goto out;
	r = malloc(sizeof(*r));
	if (!r) {
		e = -ENOMEM;
		goto out;
	}
	for (i = 0; i < l.n && e == 0; i++) {
		if ((e = reg_name_del_txn(t, dir, l.v[i].name)) < 0)
			break;
		e = reg_inode_get_txn(t, l.v[i].ino, r);
		if (e == -ENOENT) {
			e = 0;
			continue;
		}
		if (e < 0)
			break;
		if (r->kind == REG_DIR &&
		    (e = tree_drop_txn(t, r->ino, depth + 1)) < 0)
			break;
		if (r->kind == REG_FILE &&
		    (e = reg_extents_drop_txn(t, r->ino)) < 0)
			break;
		be64_put(k, r->ino);
		e = idx_del(t, IDX_INODES, k, 8);
	}
	free(r);
out:
	free(l.v);
	return e;
}

struct free_arg {
	struct reg_registry *reg;
	uint64_t v;
	bool freed, version;
};

static int free_version_txn(struct idx_txn *t, void *arg)
{
	struct free_arg *a = arg;
	struct inode_rec rec;
	bool file;
	uint8_t k[8];
	int r;

	a->freed = false;
	r = reg_inode_get_txn(t, a->v, &rec);
	a->version = r == 0 && rec.kind == REG_VERSION;
	file = r == 0 && (rec.kind == REG_FILE || rec.kind == REG_PENDING);
	if (file && reg_file_open_here(a->reg, a->v))
		return 0; /* opened again (through /proc/PID/fd) */
	be64_put(k, a->v);
	if (file && (r = reg_extents_drop_txn(t, a->v)) < 0)
		return r;
	if ((r = tree_drop_txn(t, a->v, 0)) < 0 ||
	    (r = xattrs_drop_txn(t, a->v)) < 0)
		return r;
	r = idx_del(t, IDX_INODES, k, 8);
	if (r < 0 && r != -ENOENT)
		return r;
	r = idx_del(t, IDX_TRASH, k, 8);
	if (r < 0 && r != -ENOENT)
		return r;
	a->freed = true;
	return 0;
}

int reg_trash_free(struct reg_registry *reg, uint64_t ino)
{
	struct free_arg fa = { .reg = reg, .v = ino };

	return reg_change(reg, free_version_txn, &fa);
}

struct dead_chunks {
	struct chunk_key *k;
	size_t n, cap;
	int err;
};

static int dead_one(void *arg, const struct idx_val *k,
		    const struct idx_val *v)
{
	struct dead_chunks *d = arg;
	struct chunk_rec c;

	if (k->len != CHUNK_KEY_LEN ||
	    rec_chunk_decode(v->data, v->len, &c) < 0)
		return d->err = -EIO;
	if (c.refs)
		return 0;
	if (ARRAY_GROW(d->k, d->cap, d->n) < 0)
		return d->err = -ENOMEM;
	memcpy(d->k[d->n++].b, k->data, CHUNK_KEY_LEN);
	return 0;
}

static int dead_scan_txn(struct idx_txn *t, void *arg)
{
	struct dead_chunks *d = arg;

	d->n = 0;
	idx_scan(t, IDX_CHUNKS, NULL, 0, NULL, 0, dead_one, d);
	return d->err;
}

struct drop_arg {
	struct mreg_store *st;
	struct dead_chunks *d;
	uint64_t freed, bytes;
};

static int drop_dead_txn(struct idx_txn *t, void *arg)
{
	struct drop_arg *a = arg;
	struct store_span sp;
	struct idx_val v;
	struct chunk_rec c;
	size_t i;
	int r;

	a->freed = a->bytes = 0;
	for (i = 0; i < a->d->n; i++) {
		r = idx_get(t, IDX_CHUNKS, a->d->k[i].b, CHUNK_KEY_LEN, &v);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		if (rec_chunk_decode(v.data, v.len, &c) < 0 ||
		    store_loc_span(a->st, &c.loc, &sp) < 0)
			return -EIO;
		if (c.refs)
			continue; /* referenced again meanwhile */
		if ((r = idx_del(t, IDX_CHUNKS, a->d->k[i].b,
				 CHUNK_KEY_LEN)) < 0)
			return r;
		a->freed++;
		a->bytes += sp.len;
	}
	return 0;
}

/* Live chunks of one container, to move. */
struct move {
	struct chunk_key key;
	struct chunk_loc from, to;
	uint32_t len;      /* of the data */
	uint64_t size;     /* of its record in the container */
};

struct pack_moves {
	struct mreg_store *st;
	uint64_t container;
	struct move *v;
	size_t n, cap;
	int err;
};

static int move_one(void *arg, const struct idx_val *k,
		    const struct idx_val *v)
{
	struct pack_moves *m = arg;
	struct store_span sp;
	struct chunk_rec c;

	if (rec_chunk_decode(v->data, v->len, &c) < 0 ||
	    store_loc_span(m->st, &c.loc, &sp) < 0)
		return m->err = -EIO;
	if (sp.container != m->container || !c.refs)
		return 0;
	if (ARRAY_GROW(m->v, m->cap, m->n) < 0)
		return m->err = -ENOMEM;
	memcpy(m->v[m->n].key.b, k->data, CHUNK_KEY_LEN);
	m->v[m->n].from = c.loc;
	m->v[m->n].len = sp.len;
	m->v[m->n].size = sp.size;
	m->n++;
	return 0;
}

static int move_scan_txn(struct idx_txn *t, void *arg)
{
	struct pack_moves *m = arg;

	m->n = 0;
	idx_scan(t, IDX_CHUNKS, NULL, 0, NULL, 0, move_one, m);
	return m->err;
}

static int move_apply_txn(struct idx_txn *t, void *arg)
{
	struct pack_moves *m = arg;
	struct idx_val v;
	struct chunk_rec c;
	uint8_t buf[CHUNK_REC_MAX];
	size_t i, n;
	int r;

	for (i = 0; i < m->n; i++) {
		r = idx_get(t, IDX_CHUNKS, m->v[i].key.b, CHUNK_KEY_LEN, &v);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		if (rec_chunk_decode(v.data, v.len, &c) < 0)
			return -EIO;
		if (!chunk_loc_eq(&c.loc, &m->v[i].from))
			continue;
		c.loc = m->v[i].to;
		n = rec_chunk_encode(&c, buf);
		r = idx_put(t, IDX_CHUNKS, m->v[i].key.b, CHUNK_KEY_LEN, buf,
			    n, 0);
		if (r < 0)
			return r;
	}
	/* anything still in the pack? (then it must stay) */
	m->n = 0;
	idx_scan(t, IDX_CHUNKS, NULL, 0, NULL, 0, move_one, m);
	return m->err < 0 ? m->err : (m->n ? -EBUSY : 0);
}

/* Copies the live chunks of container (whose base is base) to our
 * current one and removes it; *freed gets the bytes that gave back. 0 and
 * nothing freed when the container is busy or something still lives in
 * it. */
static int rewrite_pack(struct gc *g, uint64_t pack, uint64_t base,
			uint64_t *freed)
{
	struct reg_registry *reg = g->reg;
	struct pack_moves m = { .st = reg->st, .container = pack };
	struct mreg_id id;
	uint8_t *buf = malloc(reg->chunker.max_size);
	uint64_t size = 0, moved = 0;
	size_t i;
	int r;

	*freed = 0;
	if (!buf)
		return -ENOMEM;
	if ((r = store_claim(reg->st, pack)) < 0) {
		free(buf);
		return r == -EBUSY || r == -ENOENT ? 0 : r;
	}
	store_batch_begin(reg->st);
	r = store_container_size(reg->st, pack, &size);
	if (r == 0)
		r = idx_read(reg->ix, move_scan_txn, &m);
	for (i = 0; i < m.n && r == 0; i++) {
		rec_chunk_key_id(&m.v[i].key, &id);
		if (m.v[i].len > reg->chunker.max_size) {
			r = -EIO;
			break;
		}
		r = store_get(reg->st, &m.v[i].from, &id, buf);
		if (r == 0)
			r = store_put(reg->st, &id, buf, m.v[i].len,
				      &m.v[i].to);
		moved += m.v[i].size;
	}
	if (r == 0)
		r = store_sync(reg->st);
	if (r == 0)
		r = reg_change(reg, move_apply_txn, &m);
	store_batch_end(reg->st);
	if (r == 0) {
		r = store_delete(reg->st, pack);
		if (r == 0) {
			g->res.packs_rewritten++;
			/* its dead bytes: our new container's base, if
			   this made one, is not counted as freed */
			*freed = size > moved + base ?
				 size - moved - base : 0;
		}
	} else {
		store_unclaim(reg->st, pack);
		if (r == -EBUSY)
			r = 0;
	}
	free(m.v);
	free(buf);
	return r;
}

/* ---- gc: packs ------------------------------------------------------------ *
 *
 * Which packs. A pack some process appends to, or may still name in an
 * index transaction, is locked by it (store.h) and left alone. A writer
 * commits what it names before it lets a pack go, and never takes a pack
 * back: so once the listing found a pack unlocked, every record that will
 * ever name it is committed, and a scan of the chunk records begun after
 * the listing sees them all. Before changing a pack gc locks it and checks
 * that it still has the size listed (a pack made just then may have been
 * taken by its writer after the listing).
 *
 * Making room. What no record names at the end of a pack (the chunks of a
 * copy that failed on a full disk, a crashed writer's last records) is cut
 * off with ftruncate(2), and a pack no record names is removed: neither
 * needs free space nor an index write. A pack with more dead bytes than
 * the threshold allows is rewritten: its live records are copied to a new
 * pack, which needs room for them. Rewrites go smallest live first, each
 * only when its live bytes fit in the free space (with GC_ROOM_SPARE for
 * the index's transaction): every rewrite gives back more than it takes,
 * so a full disk is compacted as far as it can be. (Punching holes with
 * fallocate(2) would need no room at all, but leaves sparse packs whose
 * size lies, readers of whole packs meeting zeroes, and depends on the
 * file system; the dead ranges a full disk leaves are tails.) */

#define GC_ROOM_SPARE (2ull << 20)

/* One container: as listed, then what the chunk records name in it. */
struct pack_use {
	uint64_t pack;
	bool busy;
	uint64_t size;
	uint64_t base;     /* bytes no record can use */
	uint64_t live;     /* records of referenced chunks, headers included */
	uint64_t end;      /* end of the last record any chunk record names */
	uint64_t live_end; /* end of the last record of a referenced chunk */
};

struct pack_uses {
	struct mreg_store *st;
	struct pack_use *v;
	size_t n, cap;
	uint64_t live, chunks; /* data bytes referenced, chunk records */
	int err;
};

static int use_listed(void *arg, const struct store_container *c)
{
	struct pack_uses *u = arg;

	if (ARRAY_GROW(u->v, u->cap, u->n) < 0)
		return -ENOMEM;
	u->v[u->n++] = (struct pack_use){ .pack = c->id, .busy = c->busy,
		.size = c->size, .base = c->base, .end = c->base,
		.live_end = c->base };
	return 0;
}

static int cmp_use(const void *key, const void *elem)
{
	uint64_t x = *(const uint64_t *)key;
	uint64_t y = ((const struct pack_use *)elem)->pack;

	return x < y ? -1 : x > y;
}

static int use_chunk(void *arg, const struct idx_val *k,
		     const struct idx_val *v)
{
	struct pack_uses *u = arg;
	struct store_span sp;
	struct pack_use *p;
	struct chunk_rec c;
	uint64_t end;

	(void)k;
	if (rec_chunk_decode(v->data, v->len, &c) < 0 ||
	    store_loc_span(u->st, &c.loc, &sp) < 0)
		return u->err = -EIO;
	u->chunks++;
	if (c.refs)
		u->live += sp.len;
	/* a container made after the listing, or a missing one (fsck's) */
	p = u->n ? bsearch(&sp.container, u->v, u->n, sizeof(*u->v),
			   cmp_use) : NULL;
	if (!p)
		return 0;
	end = sp.off + sp.size;
	if (end > p->end)
		p->end = end;
	if (c.refs) {
		p->live += sp.size;
		if (end > p->live_end)
			p->live_end = end;
	}
	return 0;
}

static int use_scan_txn(struct idx_txn *t, void *arg)
{
	struct pack_uses *u = arg;

	idx_scan(t, IDX_CHUNKS, NULL, 0, NULL, 0, use_chunk, u);
	return u->err;
}

/* Lists the packs, then reads the chunk records: in this order (see
 * "Which packs"). u->v is the caller's to free. */
static int packs_use(struct reg_registry *reg, struct pack_uses *u)
{
	int r;

	u->st = reg->st;
	r = store_containers(reg->st, use_listed, u);
	return r < 0 ? r : idx_read(reg->ix, use_scan_txn, u);
}

/* What gc with threshold pct does to pack u when nothing may stay past
 * end: removes it (no record left), or cuts it at end. Returns the bytes
 * that frees; *ret_dead gets the dead bytes left in it, *ret_rewrite
 * whether there are more than pct % of them (then gc rewrites it). */
static uint64_t pack_plan(const struct pack_use *u, uint64_t end,
			  unsigned pct, uint64_t *ret_dead, bool *ret_rewrite)
{
	uint64_t size = end < u->size ? end : u->size;

	*ret_dead = 0;
	*ret_rewrite = false;
	if (end <= u->base)
		return u->size;
	if (size > u->base + u->live)
		*ret_dead = size - u->base - u->live;
	*ret_rewrite = *ret_dead && *ret_dead * 100 > size * pct;
	return u->size - size;
}

/* A container to rewrite. */
struct rewrite {
	uint64_t pack;
	uint64_t base, live, dead;
};

static int cmp_rewrite(const void *a, const void *b)
{
	uint64_t x = ((const struct rewrite *)a)->live;
	uint64_t y = ((const struct rewrite *)b)->live;

	return x < y ? -1 : x > y;
}

/* Does a rewrite of live bytes fit in room? */
static bool rewrite_fits(uint64_t live, uint64_t room)
{
	return live + GC_ROOM_SPARE <= room;
}

/* Cuts or removes one pack as listed in u (see pack_plan). */
static int pack_cut(struct gc *g, const struct pack_use *u)
{
	struct mreg_store *st = g->reg->st;
	uint64_t size, dead;
	bool rewrite;
	int r;

	r = store_claim(st, u->pack);
	if (r < 0)
		return r == -EBUSY || r == -ENOENT ? 0 : r;
	r = store_container_size(st, u->pack, &size);
	if (r < 0 || size != u->size) {
		/* taken by a writer since the listing */
		store_unclaim(st, u->pack);
		return r == -ENOENT ? 0 : r;
	}
	if (u->end <= u->base) {
		r = store_delete(st, u->pack);
		if (r == 0) {
			g->res.packs_removed++;
			g->res.bytes_freed += size;
		}
		return r == -EBUSY || r == -ENOENT ? 0 : r;
	}
	r = store_cut(st, u->pack, u->end);
	if (r == 0) {
		g->res.packs_cut++;
		g->res.bytes_freed += pack_plan(u, u->end, 0, &dead, &rewrite);
	}
	store_unclaim(st, u->pack);
	return r;
}

/* Rewrites the packs of v (n), smallest live first, as far as the free
 * space allows. */
static int packs_rewrite(struct gc *g, struct rewrite *v, size_t n)
{
	uint64_t room, freed;
	size_t i;
	int r;

	if (n)
		qsort(v, n, sizeof(*v), cmp_rewrite);
	for (i = 0; i < n; i++) {
		if ((r = store_room(g->reg->st, &room)) < 0)
			return r;
		if (!rewrite_fits(v[i].live, room)) {
			g->res.bytes_no_room += v[i].dead;
			continue;
		}
		r = rewrite_pack(g, v[i].pack, v[i].base, &freed);
		if (r == -ENOSPC) {
			/* the disk filled meanwhile: what was copied is
			   garbage at the end of our pack, for the next gc */
			g->res.bytes_no_room += v[i].dead;
			continue;
		}
		if (r < 0)
			return r;
		g->res.bytes_freed += freed;
	}
	return 0;
}

/* Cuts dead tails and removes dead packs; with rewrite, then rewrites the
 * packs more than pct % dead. */
static int gc_packs(struct gc *g, unsigned pct, bool rewrite,
		    void (*progress)(void *arg, uint64_t done, uint64_t total),
		    void *arg)
{
	struct pack_uses u = { 0 };
	struct rewrite *rw = NULL;
	size_t i, nrw = 0, caprw = 0;
	uint64_t cut, dead;
	bool again;
	int r;

	if ((r = packs_use(g->reg, &u)) < 0)
		goto out;
	for (i = 0; i < u.n; i++) {
		const struct pack_use *p = &u.v[i];

		if (progress)
			progress(arg, i + 1, u.n);
		if (p->busy)
			continue;
		cut = pack_plan(p, p->end, pct, &dead, &again);
		if (cut && (r = pack_cut(g, p)) < 0)
			goto out;
		if (!rewrite || p->end <= p->base)
			continue;
		if (!again) {
			g->res.bytes_kept += dead;
			continue;
		}
		if (ARRAY_GROW(rw, caprw, nrw) < 0) {
			r = -ENOMEM;
			goto out;
		}
		rw[nrw++] = (struct rewrite){ p->pack, p->base, p->live,
					      dead };
	}
	r = packs_rewrite(g, rw, nrw);
out:
	free(u.v);
	free(rw);
	return r;
}

/* ---- gc -------------------------------------------------------------------- */

int reg_gc(struct reg_registry *reg, const struct reg_gc_options *opt,
	   void (*progress)(void *arg, uint64_t done, uint64_t total),
	   void *arg, struct reg_gc_result *ret)
{
	struct gc g = { .reg = reg };
	struct dead_chunks d = { 0 };
	struct drop_arg da = { NULL, &d, 0, 0 };
	unsigned pct = opt ? opt->threshold : REG_GC_THRESHOLD;
	size_t i;
	int r;

	if (!reg || pct > 100)
		return -EINVAL;
	da.st = reg->st;
	/* the store's own housekeeping (store.h; the pack store has none) */
	if ((r = store_maint(reg->st)) < 0)
		goto out;
	/* (0) room first: dead tails and dead packs go without an index
	   write or a byte of free space, which a full disk may lack */
	if ((r = gc_packs(&g, pct, false, NULL, NULL)) < 0)
		goto out;
	/* (1) removed versions (and files unlinked while open) nobody has
	   open. The trash is listed before the pins are read: whatever was
	   trashed by then was pinned before its trash committed (a file
	   unlinked while open is pinned first), so its pin is seen. */
	if ((r = idx_read(reg->ix, trash_list_txn, &g)) < 0)
		goto out;
	if ((r = pins_read(reg, &g.pins, true)) < 0)
		goto out;
	for (i = 0; i < g.n; i++) {
		struct free_arg fa = { .reg = reg, .v = g.list[i] };

		if (pinset_has(&g.pins, g.list[i]))
			continue;
		if ((r = reg_change(reg, free_version_txn, &fa)) < 0)
			goto out;
		if (fa.freed && fa.version)
			g.res.versions_freed++;
	}
	/* (2) chunk records nothing references */
	if ((r = idx_read(reg->ix, dead_scan_txn, &d)) < 0)
		goto out;
	io_window(IO_WINDOW_GC_DROP); /* a test pushes here (MREG_FAULTS) */
	if (d.n && (r = reg_change(reg, drop_dead_txn, &da)) < 0)
		goto out;
	g.res.chunks_freed = da.freed;
	/* (3) packs again, with what (1) and (2) left dead */
	r = gc_packs(&g, pct, true, progress, arg);
out:
	free(g.pins.v);
	free(g.list);
	free(d.k);
	if (r == 0 && ret)
		*ret = g.res;
	return r;
}

/* ---- what gc would do ------------------------------------------------------- */

struct trash_count {
	struct pinset pins;
	uint64_t n;
};

static int trash_count_one(void *arg, const struct idx_val *k,
			   const struct idx_val *v)
{
	struct trash_count *c = arg;

	(void)v;
	if (k->len == 8 && !pinset_has(&c->pins, be64_get(k->data)))
		c->n++;
	return 0;
}

static int trash_count_txn(struct idx_txn *t, void *arg)
{
	return idx_scan(t, IDX_TRASH, NULL, 0, NULL, 0, trash_count_one, arg);
}

/* The bytes gc with threshold pct would give back now, as gc_packs()
 * decides, with the records of unreferenced chunks already dropped. */
static uint64_t gc_would_free(const struct pack_uses *u, unsigned pct,
			      uint64_t room, struct rewrite *rw)
{
	uint64_t freed = 0, cut, dead;
	size_t i, n = 0;
	bool again;

	for (i = 0; i < u->n; i++) {
		const struct pack_use *p = &u->v[i];

		if (p->busy)
			continue;
		cut = pack_plan(p, p->live_end, pct, &dead, &again);
		freed += cut;
		if (again)
			rw[n++] = (struct rewrite){ p->pack, p->base,
						    p->live, dead };
	}
	room += freed;
	if (n)
		qsort(rw, n, sizeof(*rw), cmp_rewrite);
	for (i = 0; i < n; i++)
		if (rewrite_fits(rw[i].live, room)) {
			freed += rw[i].dead;
			room += rw[i].dead;
		}
	return freed;
}

int reg_gc_estimate(struct reg_registry *reg, struct reg_store_stats *st)
{
	struct trash_count tc = { 0 };
	struct pack_uses u = { 0 };
	struct rewrite *rw = NULL;
	uint64_t room = 0, used;
	size_t i;
	int r;

	if ((r = packs_use(reg, &u)) < 0)
		goto out;
	rw = calloc(u.n ? u.n : 1, sizeof(*rw));
	if (!rw) {
		r = -ENOMEM;
		goto out;
	}
	st->live_bytes = u.live;
	st->chunks = u.chunks;
	st->dead_bytes = 0;
	for (i = 0; i < u.n; i++) {
		used = u.v[i].base + u.v[i].live;
		if (u.v[i].size > used)
			st->dead_bytes += u.v[i].size - used;
	}
	store_room(reg->st, &room);
	st->gc_bytes = gc_would_free(&u, REG_GC_THRESHOLD, room, rw);
	st->gc_all_bytes = gc_would_free(&u, 0, room, rw);
	/* gc's pins, without removing dead processes' files (gc does) */
	if ((r = pins_read(reg, &tc.pins, false)) < 0)
		goto out;
	if ((r = idx_read(reg->ix, trash_count_txn, &tc)) < 0)
		goto out;
	st->trash = tc.n;
out:
	free(tc.pins.v);
	free(u.v);
	free(rw);
	return r;
}
