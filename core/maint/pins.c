/* pins.c — which versions live processes have open, so that gc never
 * frees what someone reads (SPEC §5).
 *
 * Each process that opens sealed files keeps DIR/run/pins-PID, one
 * version inode per line, and holds flock(LOCK_EX) on it for its life. gc
 * frees a removed version's tree only when no live process lists it; a
 * pins file it can lock belongs to a dead process and is removed. A pin is
 * written when a version's first file is opened; released pins are dropped
 * lazily (reg_tick), so open/close cycles cost no I/O.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

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

static int pinset_add(struct reg_pinset *s, uint64_t v)
{
	if (ARRAY_GROW(s->v, s->cap, s->n) < 0)
		return -ENOMEM;
	s->v[s->n++] = v;
	return 0;
}

bool reg_pinset_has(const struct reg_pinset *s, uint64_t v)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i] == v)
			return true;
	return false;
}

int reg_pins_read(struct reg_registry *reg, struct reg_pinset *s, bool reap)
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
