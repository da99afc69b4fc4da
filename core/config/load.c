/* load.c — a config file read, trusted and parsed (config_load), and
 * the trust check itself (config_path_trusted): the daemon runs the
 * hooks a config names as root, so the file, the programs and every
 * directory above them must be writable only by root or the daemon's
 * user — a symlink on the way is judged by the directory that holds it.
 * The opened file is checked by its descriptor (fstat), then by its path.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "webhook/webhook.h"

static int why_set(char *why, size_t whylen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Writes the reason into why (when given); returns r. */
static int why_set(char *why, size_t whylen, int r, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return r;
}

int config_node_trusted(const char *p, const struct stat *st, char *why,
		      size_t whylen)
{
	mode_t w = st->st_mode & 0022;

	assert(p && st);
	if (st->st_uid != 0 && st->st_uid != geteuid())
		return why_set(why, whylen, -EPERM, "'%s' is owned by uid %u",
			       p, (unsigned)st->st_uid);
	if (!w || (S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX)))
		return 0;
	return why_set(why, whylen, -EPERM, "'%s' is writable by %s "
		       "(mode %04o)", p, w & 0002 ? "others" : "group",
		       (unsigned)(st->st_mode & 07777));
}

/* Every directory above absolute path p, up to /. */
static int check_parents(const char *p, char *why, size_t whylen)
{
	struct stat st;
	char *d, *s;
	int r = 0;

	assert(p && p[0] == '/');
	d = strdup(p);
	if (!d)
		return -ENOMEM;
	while (r == 0 && (s = strrchr(d, '/'))) {
		s[s == d] = '\0'; /* "/a/b" -> "/a", "/a" -> "/" */
		if (stat(d, &st) < 0)
			r = why_set(why, whylen, -errno, "cannot stat '%s': %s",
				    d, strerror(errno));
		else
			r = config_node_trusted(d, &st, why, whylen);
		if (s == d)
			break;
	}
	free(d);
	return r;
}

int config_path_trusted(const char *path, char *why, size_t whylen)
{
	struct stat st;
	char *real;
	int r;

	if (why && whylen)
		why[0] = '\0';
	if (!path || !*path)
		return -EINVAL;
	real = realpath(path, NULL);
	if (!real)
		return why_set(why, whylen, -errno, "'%s': %s", path,
			       strerror(errno));
	if (stat(real, &st) < 0)
		r = why_set(why, whylen, -errno, "'%s': %s", real,
			    strerror(errno));
	else
		r = config_node_trusted(real, &st, why, whylen);
	if (r == 0)
		r = check_parents(real, why, whylen);
	/* a symlink on the way is replaced by whoever may write its
	 * directory */
	if (r == 0 && path[0] == '/' && strcmp(path, real) != 0)
		r = check_parents(path, why, whylen);
	free(real);
	return r;
}

/* Reads all of fd (at most CONFIG_FILE_MAX bytes). */
static int read_all(int fd, char **ret, size_t *ret_len)
{
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0;
	ssize_t n;

	assert(fd >= 0 && ret && ret_len);
	for (;;) {
		if (len == cap) {
			if (cap >= CONFIG_FILE_MAX) {
				free(buf);
				return -EFBIG;
			}
			cap = cap ? cap * 2 : 4096;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			free(buf);
			return -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

int config_load(struct mreg_config *cfg, const char *path, char *err,
		size_t errlen)
{
	char *text = NULL, why[PATH_MAX + 128];
	struct stat st;
	size_t len = 0;
	int fd, r;

	if (err && errlen)
		err[0] = '\0';
	if (!cfg || !path || !*path)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (S_ISDIR(st.st_mode))
		r = -EISDIR;
	else if ((r = config_node_trusted(path, &st, why, sizeof(why))) == 0 &&
		 (r = config_path_trusted(path, why, sizeof(why))) == 0)
		r = read_all(fd, &text, &len);
	close(fd);
	if (r == -EPERM) {
		/* what it says, the daemon would run as root */
		if (err && errlen)
			snprintf(err, errlen, "%s: refused: %s", path, why);
		return r;
	}
	if (r < 0)
		goto fail;
	r = config_parse_swap(cfg, path, text, len, path, err, errlen);
	free(text);
	return r;
fail:
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", path,
			 r == -EFBIG ? "file too large" : strerror(-r));
	return r;
}

int config_program_trusted(const char *path, char *why, size_t whylen)
{
	char dummy[8];
	struct stat st;

	if (!why || !whylen) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	why[0] = '\0';
	if (!path || !*path) {
		snprintf(why, whylen, "no program");
		return -EINVAL;
	}
	if (path[0] != '/') {
		snprintf(why, whylen, "'%s' is not an absolute path", path);
		return -EINVAL;
	}
	if (stat(path, &st) < 0) {
		int r = -errno;

		snprintf(why, whylen, "'%s': %s", path, strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "'%s' is not a regular file", path);
		return -EACCES;
	}
	if (!(st.st_mode & 0111)) {
		snprintf(why, whylen, "'%s' is not executable", path);
		return -EACCES;
	}
	return config_path_trusted(path, why, whylen);
}

int config_file_readable(const char *p, char *why, size_t whylen)
{
	struct stat st;
	int fd, r = 0;

	assert(p);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return why_set(why, whylen, -errno, "'%s': %s", p,
			       strerror(errno));
	if (fstat(fd, &st) < 0)
		r = why_set(why, whylen, -errno, "'%s': %s", p,
			    strerror(errno));
	else if (!S_ISREG(st.st_mode))
		r = why_set(why, whylen, -EINVAL, "'%s' is not a regular file",
			    p);
	close(fd);
	return r;
}

/* A secret is the file's bytes without its trailing line ends (what
 * `echo SECRET >FILE` wrote is SECRET). The file is judged by its open
 * descriptor, as the S3 credentials file is: nobody but its owner may
 * read it, and only root or this user may own it. */
int config_secret_read(const char *path, void *buf, size_t size, char *why,
		       size_t whylen)
{
	char tmp[CONFIG_SECRET_MAX + 3]; /* and a CR LF, and one more */
	struct stat st;
	ssize_t n;
	size_t len = 0;
	bool full;
	int fd, r = 0;

	if (why && whylen)
		why[0] = '\0';
	if (!path || !*path || (!buf && size))
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return why_set(why, whylen, -errno, "secret file '%s': %s",
			       path, strerror(errno));
	if (fstat(fd, &st) < 0)
		r = why_set(why, whylen, -errno, "secret file '%s': %s", path,
			    strerror(errno));
	else if (!S_ISREG(st.st_mode))
		r = why_set(why, whylen, -EINVAL, "secret file '%s' is not a "
			    "regular file", path);
	else if (st.st_mode & (S_IRWXG | S_IRWXO))
		r = why_set(why, whylen, -EPERM, "secret file '%s' is open to "
			    "%s (mode %04o): chmod 600 it", path,
			    st.st_mode & S_IRWXO ? "others" : "its group",
			    (unsigned)(st.st_mode & 07777));
	else if (st.st_uid != 0 && st.st_uid != geteuid())
		r = why_set(why, whylen, -EPERM, "secret file '%s' is owned "
			    "by uid %u", path, (unsigned)st.st_uid);
	while (r == 0 && len < sizeof(tmp)) {
		n = read(fd, tmp + len, sizeof(tmp) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = why_set(why, whylen, -errno, "secret file '%s': %s",
				    path, strerror(errno));
		else if (n == 0)
			break;
		else
			len += (size_t)n;
	}
	close(fd);
	/* a full buffer: the file is longer than any secret, however it
	   ends */
	full = len == sizeof(tmp);
	while (!full && len && (tmp[len - 1] == '\n' || tmp[len - 1] == '\r'))
		len--;
	if (r == 0 && len == 0)
		r = why_set(why, whylen, -EINVAL, "secret file '%s' is empty",
			    path);
	else if (r == 0 && (full || len > CONFIG_SECRET_MAX))
		r = why_set(why, whylen, -EFBIG, "secret file '%s' holds more "
			    "than %d bytes", path, CONFIG_SECRET_MAX);
	else if (r == 0 && buf && len > size)
		r = -ERANGE;
	if (r == 0 && buf)
		memcpy(buf, tmp, len);
	explicit_bzero(tmp, sizeof(tmp));
	return r < 0 ? r : (int)len;
}

int config_hook_check(const struct mreg_config *cfg, const char *hook,
		      char *why, size_t whylen)
{
	int r;

	if (!cfg || !hook)
		return -EINVAL;
	if (!webhook_is_url(hook))
		return config_program_trusted(hook, why, whylen);
	if ((r = webhook_url_check(hook, why, whylen)) < 0)
		return r;
	/* an unsigned delivery is one anybody could forge */
	if (!cfg->hook_secret_file)
		return why_set(why, whylen, -EINVAL, "a hook URL needs [hooks] "
			       "secret_file: its deliveries are signed with "
			       "that secret");
	return 0;
}
