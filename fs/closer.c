/* closer.c — who closes a descriptor of a file of this mount, and how,
 * learned from /proc: what the registry's close rule (reg_file_close() in
 * core/registry/registry.h) needs to know and the kernel does not say.
 * Linux only.
 *
 * The kernel sends FUSE FLUSH on every close() of a descriptor, with the
 * closing thread's id in the request, after it took the descriptor out of
 * the closer's table (close, dup2 over it, close-on-exec, the exit of a
 * process, whose table is gone by then). So:
 *  - the closer is dying of a signal when /proc/TID/stat shows PF_EXITING
 *    in its flags and a signal in the low 7 bits of its exit code (a task
 *    in do_exit() has both set before it closes its files);
 *  - this was the last descriptor when no process has a descriptor on
 *    this inode of this mount left: every /proc/PID/fd/N is looked at with
 *    statx(AT_STATX_DONT_SYNC), which reads the target's device and inode
 *    without asking its file system anything (no request comes back to
 *    us, a hung network mount does not hang us).
 * What it cannot see: descriptors of processes it may not inspect (a
 * daemon not run as root), of other PID namespaces, of threads with a
 * descriptor table of their own, in flight in a unix socket, registered
 * with io_uring, and mappings without a descriptor. The registry then
 * waits for the RELEASE of the last handle for whatever was not seen as
 * the last close.
 */
#include "mregfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "log.h"

#define PF_EXITING 0x00000004 /* include/linux/sched.h */

/* Reads /proc/<tid>/<what> into buf (NUL-terminated): its length, or -1. */
static ssize_t proc_read(int tid, const char *what, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", tid, what);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

int closer_tgid(int tid)
{
	static __thread int last_tid, last_tgid;
	char buf[2048], *p;

	if (tid <= 0)
		return 0;
	if (tid == last_tid)
		return last_tgid;
	if (proc_read(tid, "status", buf, sizeof(buf)) < 0 ||
	    !(p = strstr(buf, "\nTgid:")))
		return tid;
	last_tid = tid;
	last_tgid = atoi(p + 6);
	return last_tgid;
}

/* The signal thread tid is dying of, or 0. */
static int dying_of(int tid)
{
	char buf[1024], *p, *save = NULL;
	unsigned long flags = 0;
	long code = 0;
	int field;

	if (proc_read(tid, "stat", buf, sizeof(buf)) < 0 ||
	    !(p = strrchr(buf, ')')))
		return 0;
	/* after "pid (comm)": field 3 (state) onwards */
	for (field = 3, p = strtok_r(p + 1, " ", &save); p;
	     field++, p = strtok_r(NULL, " ", &save)) {
		if (field == 9)
			flags = strtoul(p, NULL, 10);
		else if (field == 52)
			code = strtol(p, NULL, 10);
	}
	if (!(flags & PF_EXITING))
		return 0;
	return (int)(code & 0x7f);
}

/* Does process pid hold a descriptor on (dev, ino)? */
static bool holds(int proc, const char *pid, dev_t dev, uint64_t ino)
{
	char path[64];
	struct dirent *de;
	struct statx sx;
	bool found = false;
	DIR *d;
	int fd;

	snprintf(path, sizeof(path), "%s/fd", pid);
	fd = openat(proc, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false; /* gone, a kernel thread, or not ours to see */
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (statx(fd, de->d_name, AT_STATX_DONT_SYNC, STATX_INO,
			  &sx) < 0)
			continue;
		found = sx.stx_ino == ino &&
			makedev(sx.stx_dev_major, sx.stx_dev_minor) == dev;
	}
	closedir(d);
	return found;
}

/* Does any process (but the daemon) hold a descriptor on (dev, ino)?
 * -errno when /proc cannot be read. The closer, then its parent first:
 * where the other descriptors of a shell or a forking writer are. */
static int held(dev_t dev, uint64_t ino, int tgid)
{
	char self[16], first[2][16];
	struct dirent *de;
	bool found = false;
	int proc, i, ppid = 0;
	char buf[1024], *p;
	DIR *d;

	proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (proc < 0)
		return -errno;
	snprintf(self, sizeof(self), "%d", (int)getpid());
	if (tgid > 0 && proc_read(tgid, "stat", buf, sizeof(buf)) >= 0 &&
	    (p = strrchr(buf, ')')))
		sscanf(p + 1, " %*c %d", &ppid);
	snprintf(first[0], sizeof(first[0]), "%d", tgid);
	snprintf(first[1], sizeof(first[1]), "%d", ppid);
	for (i = 0; i < 2 && !found; i++)
		found = strcmp(first[i], "0") != 0 &&
			strcmp(first[i], self) != 0 &&
			holds(proc, first[i], dev, ino);
	d = found ? NULL : fdopendir(dup(proc));
	while (d && !found && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9' ||
		    strcmp(de->d_name, self) == 0 ||
		    strcmp(de->d_name, first[0]) == 0 ||
		    strcmp(de->d_name, first[1]) == 0)
			continue;
		found = holds(proc, de->d_name, dev, ino);
	}
	if (d)
		closedir(d);
	close(proc);
	return found;
}

void closer_probe(const struct mregfs *fs, int tid, uint64_t ino,
		  struct reg_closing *ret)
{
	int r;

	memset(ret, 0, sizeof(*ret));
	if (tid > 0) {
		ret->pid = closer_tgid(tid);
		ret->signal = dying_of(tid);
	}
	if (!fs->dev_known)
		return;
	r = held(fs->dev, ino, ret->pid);
	if (r < 0) {
		log_warn(r, "cannot read /proc: a file at a model root "
			 "registers when its last handle is released");
		return;
	}
	ret->known = true;
	ret->others = r > 0;
}

/* Undoes mountinfo's octal escapes (\040 for a space...) in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

int closer_mount_dev(const char *mountpoint, dev_t *ret)
{
	char line[4096], mp[PATH_MAX], *sep;
	unsigned maj, min;
	bool found = false;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min,
			   mp) != 3 ||
		    !(sep = strstr(line, " - ")) ||
		    strncmp(sep + 3, "fuse", 4) != 0)
			continue;
		unescape(mp);
		if (strcmp(mp, mountpoint) == 0) {
			/* the last one: the mount on top */
			*ret = makedev(maj, min);
			found = true;
		}
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}
