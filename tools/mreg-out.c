/* mreg-out.c — how the CLI prints: a JSON emitter with one escaping helper,
 * a tiny JSON field reader (for filtering audit records), aligned tables,
 * human sizes and times, and the progress bar.
 */
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mreg.h"

/* ---- JSON output ------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid:
 * overlong forms, surrogates and code points above U+10FFFF are invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

void json_escape(FILE *f, const void *p, size_t len)
{
	const unsigned char *s = p;
	size_t i = 0, n;

	putc('"', f);
	while (i < len) {
		unsigned char ch = s[i];

		if (ch == '"' || ch == '\\') {
			putc('\\', f);
			putc(ch, f);
			i++;
		} else if (ch == '\n') {
			fputs("\\n", f), i++;
		} else if (ch == '\t') {
			fputs("\\t", f), i++;
		} else if (ch < 0x20 || ch == 0x7f) {
			fprintf(f, "\\u%04x", ch), i++;
		} else if ((n = utf8_len(s + i, len - i)) > 0) {
			fwrite(s + i, 1, n, f);
			i += n;
		} else {
			/* Not UTF-8: keep the byte's value, as Latin-1. */
			fprintf(f, "\\u%04x", ch), i++;
		}
	}
	putc('"', f);
}

void json_init(struct json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	j->first[0] = true;
}

/* Writes what goes before a value: a comma between elements, a line break
 * between the elements of a top-level array (one record per line). */
static void json_sep(struct json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (!j->first[j->depth])
		putc(',', j->f);
	if (j->depth == 1 && j->array[1])
		putc('\n', j->f);
	j->first[j->depth] = false;
}

static void json_open(struct json *j, char ch, bool array)
{
	json_sep(j);
	putc(ch, j->f);
	if (j->depth + 1 >= JSON_MAX_DEPTH)
		abort();
	j->depth++;
	j->first[j->depth] = true;
	j->array[j->depth] = array;
}

static void json_close(struct json *j, char ch)
{
	if (j->depth == 1 && j->array[1] && !j->first[1])
		putc('\n', j->f);
	j->depth--;
	putc(ch, j->f);
}

void json_obj_begin(struct json *j) { json_open(j, '{', false); }
void json_obj_end(struct json *j) { json_close(j, '}'); }
void json_arr_begin(struct json *j) { json_open(j, '[', true); }
void json_arr_end(struct json *j) { json_close(j, ']'); }

void json_key(struct json *j, const char *k)
{
	json_sep(j);
	json_escape(j->f, k, strlen(k));
	putc(':', j->f);
	j->after_key = true;
}

void json_strn(struct json *j, const void *s, size_t n)
{
	json_sep(j);
	json_escape(j->f, s, n);
}

void json_str(struct json *j, const char *s)
{
	if (!s) {
		json_null(j);
		return;
	}
	json_strn(j, s, strlen(s));
}

void json_u64(struct json *j, uint64_t v)
{
	json_sep(j);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

void json_i64(struct json *j, int64_t v)
{
	json_sep(j);
	fprintf(j->f, "%lld", (long long)v);
}

/* The shortest %g form that reads back as v. */
void json_double(struct json *j, double v)
{
	char buf[64];
	int prec;

	if (!isfinite(v)) {
		json_null(j);
		return;
	}
	for (prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	json_sep(j);
	fputs(buf, j->f);
}

void json_bool(struct json *j, bool v)
{
	json_sep(j);
	fputs(v ? "true" : "false", j->f);
}

void json_null(struct json *j)
{
	json_sep(j);
	fputs("null", j->f);
}

void json_raw(struct json *j, const char *s, size_t n)
{
	json_sep(j);
	fwrite(s, 1, n, j->f);
}

void json_number_or_str(struct json *j, const char *s, size_t n)
{
	char buf[128];
	double v;

	if (n < sizeof(buf) && !memchr(s, 0, n)) {
		memcpy(buf, s, n);
		buf[n] = 0;
		if (is_number(buf, &v)) {
			json_double(j, v);
			return;
		}
	}
	json_strn(j, s, n);
}

void json_finish(struct json *j)
{
	putc('\n', j->f);
}

/* ---- JSON input: one field of an audit record --------------------------- */

struct jin {
	const char *p, *end;
};

static void jin_ws(struct jin *in)
{
	while (in->p < in->end && strchr(" \t\r\n", *in->p))
		in->p++;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Appends code point cp as UTF-8 (or the byte itself for \u0080-\u00ff,
 * the form json_escape() gives bytes that are not UTF-8, so that a name
 * with such bytes compares equal to what was stored). */
static void put_cp(uint32_t cp, char *buf, size_t size, size_t *n)
{
	unsigned char tmp[4];
	size_t k = 0, i;

	if (cp < 0x100) {
		tmp[k++] = (unsigned char)cp;
	} else if (cp < 0x800) {
		tmp[k++] = 0xc0 | cp >> 6;
		tmp[k++] = 0x80 | (cp & 0x3f);
	} else if (cp < 0x10000) {
		tmp[k++] = 0xe0 | cp >> 12;
		tmp[k++] = 0x80 | ((cp >> 6) & 0x3f);
		tmp[k++] = 0x80 | (cp & 0x3f);
	} else {
		tmp[k++] = 0xf0 | cp >> 18;
		tmp[k++] = 0x80 | ((cp >> 12) & 0x3f);
		tmp[k++] = 0x80 | ((cp >> 6) & 0x3f);
		tmp[k++] = 0x80 | (cp & 0x3f);
	}
	for (i = 0; i < k; i++) {
		if (buf && *n + 1 < size)
			buf[*n] = (char)tmp[i];
		(*n)++;
	}
}

/* Reads a string at in->p (at its quote); unescaped into buf when not
 * NULL. -EINVAL when malformed. */
static int jin_string(struct jin *in, char *buf, size_t size)
{
	size_t n = 0;

	if (in->p >= in->end || *in->p != '"')
		return -EINVAL;
	in->p++;
	while (in->p < in->end && *in->p != '"') {
		char ch = *in->p++;

		if (ch == '\\') {
			uint32_t cp = 0;
			int i, h;

			if (in->p >= in->end)
				return -EINVAL;
			ch = *in->p++;
			switch (ch) {
			case 'n': ch = '\n'; break;
			case 't': ch = '\t'; break;
			case 'r': ch = '\r'; break;
			case 'b': ch = '\b'; break;
			case 'f': ch = '\f'; break;
			case 'u':
				if (in->end - in->p < 4)
					return -EINVAL;
				for (i = 0; i < 4; i++) {
					h = hexval(in->p[i]);
					if (h < 0)
						return -EINVAL;
					cp = cp << 4 | (uint32_t)h;
				}
				in->p += 4;
				put_cp(cp, buf, size, &n);
				continue;
			default: break;
			}
		}
		if (buf && n + 1 < size)
			buf[n] = ch;
		n++;
	}
	if (in->p >= in->end)
		return -EINVAL;
	in->p++;
	if (buf && size)
		buf[n < size ? n : size - 1] = 0;
	return 0;
}

/* Skips any value; nested containers are bounded by depth. */
static int jin_skip(struct jin *in, int depth)
{
	char open;

	jin_ws(in);
	if (in->p >= in->end || depth > 64)
		return -EINVAL;
	if (*in->p == '"')
		return jin_string(in, NULL, 0);
	if (*in->p != '{' && *in->p != '[') {
		const char *s = in->p;

		while (in->p < in->end && !strchr(",}] \t\r\n", *in->p))
			in->p++;
		return in->p > s ? 0 : -EINVAL;
	}
	open = *in->p++;
	jin_ws(in);
	if (in->p < in->end && *in->p == (open == '{' ? '}' : ']')) {
		in->p++;
		return 0;
	}
	for (;;) {
		if (open == '{') {
			jin_ws(in);
			if (jin_string(in, NULL, 0) < 0)
				return -EINVAL;
			jin_ws(in);
			if (in->p >= in->end || *in->p++ != ':')
				return -EINVAL;
		}
		if (jin_skip(in, depth + 1) < 0)
			return -EINVAL;
		jin_ws(in);
		if (in->p >= in->end)
			return -EINVAL;
		if (*in->p == ',') {
			in->p++;
			continue;
		}
		if (*in->p++ != (open == '{' ? '}' : ']'))
			return -EINVAL;
		return 0;
	}
}

int json_field(const char *json, size_t len, const char *key, char *buf,
	       size_t size)
{
	struct jin in = { json, json + len };
	char k[256];

	jin_ws(&in);
	if (in.p >= in.end || *in.p++ != '{')
		return -EINVAL;
	jin_ws(&in);
	if (in.p < in.end && *in.p == '}')
		return 0;
	for (;;) {
		const char *v;

		jin_ws(&in);
		if (jin_string(&in, k, sizeof(k)) < 0)
			return -EINVAL;
		jin_ws(&in);
		if (in.p >= in.end || *in.p++ != ':')
			return -EINVAL;
		jin_ws(&in);
		v = in.p;
		if (!strcmp(k, key)) {
			if (*v == '"')
				return jin_string(&in, buf, size) < 0 ?
				       -EINVAL : 1;
			if (jin_skip(&in, 0) < 0)
				return -EINVAL;
			snprintf(buf, size, "%.*s", (int)(in.p - v), v);
			return 1;
		}
		if (jin_skip(&in, 0) < 0)
			return -EINVAL;
		jin_ws(&in);
		if (in.p >= in.end)
			return -EINVAL;
		if (*in.p == ',') {
			in.p++;
			continue;
		}
		return *in.p == '}' ? 0 : -EINVAL;
	}
}

/* ---- human output -------------------------------------------------------- */

const char *human_str(const char *s, char *buf, size_t size)
{
	size_t n = 0;

	for (; *s && n + 5 < size; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 0x20 || ch == 0x7f)
			n += (size_t)snprintf(buf + n, size - n, "\\x%02x", ch);
		else
			buf[n++] = (char)ch;
	}
	buf[n] = 0;
	return buf;
}

void table_init(struct table *t, size_t ncols, unsigned right)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->right = right;
}

void table_row(struct table *t, ...)
{
	va_list ap;
	size_t i;

	if (t->nrows == t->alloc) {
		t->alloc = t->alloc ? 2 * t->alloc : 16;
		t->cells = reallocarray(t->cells, t->alloc * t->ncols,
					sizeof(*t->cells));
		if (!t->cells)
			abort();
	}
	va_start(ap, t);
	for (i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);
		char *d = strdup(s ? s : "-");

		if (!d)
			abort();
		t->cells[t->nrows * t->ncols + i] = d;
	}
	va_end(ap);
	t->nrows++;
}

/* Columns a string takes on a terminal: UTF-8 continuation bytes take none
 * (wide characters are rare in registry names). */
static size_t width_of(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

void table_print(const struct table *t, FILE *f)
{
	size_t *w, r, i;

	w = calloc(t->ncols, sizeof(*w));
	if (!w)
		abort();
	for (r = 0; r < t->nrows; r++)
		for (i = 0; i < t->ncols; i++) {
			size_t n = width_of(t->cells[r * t->ncols + i]);

			if (n > w[i])
				w[i] = n;
		}
	for (r = 0; r < t->nrows; r++) {
		for (i = 0; i < t->ncols; i++) {
			const char *s = t->cells[r * t->ncols + i];
			size_t pad = w[i] - width_of(s);
			bool right = t->right & (1u << i);
			bool last = i + 1 == t->ncols;

			if (i)
				fputs("  ", f);
			if (right)
				fprintf(f, "%*s", (int)pad, "");
			fputs(s, f);
			if (!right && !last)
				fprintf(f, "%*s", (int)pad, "");
		}
		putc('\n', f);
	}
	free(w);
}

void table_release(struct table *t)
{
	size_t i;

	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

const char *human_size(uint64_t n, char *buf, size_t size)
{
	static const char *const unit[] = {
		"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"
	};
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, size, "%llu B", (unsigned long long)n);
		return buf;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, "%.1f %s", v, unit[u]);
	return buf;
}

const char *iso_time(int64_t secs, char *buf, size_t size)
{
	time_t t = (time_t)secs;
	struct tm tm;

	if (secs == 0 || !gmtime_r(&t, &tm)) {
		snprintf(buf, size, "-");
		return buf;
	}
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

const char *user_name(uid_t uid, char *buf, size_t size)
{
	util_uid_name(uid, buf, size);
	return buf;
}

const char *mode_str(mode_t mode, char *buf, size_t size)
{
	static const char rwx[] = "rwxrwxrwx";
	char s[11];
	int i;

	s[0] = S_ISDIR(mode) ? 'd' : S_ISLNK(mode) ? 'l' : '-';
	for (i = 0; i < 9; i++)
		s[i + 1] = mode & (0400u >> i) ? rwx[i] : '-';
	s[10] = 0;
	snprintf(buf, size, "%s", s);
	return buf;
}

const char *errstr(int e)
{
	static __thread char buf[128];

	snprintf(buf, sizeof(buf), "%s", strerror(e));
	if (buf[0] >= 'A' && buf[0] <= 'Z')
		buf[0] = (char)(buf[0] - 'A' + 'a');
	return buf;
}

bool is_number(const char *s, double *ret)
{
	locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	locale_t old;
	char *end;
	double v;

	/* strtod in the C locale, whatever LC_NUMERIC says: "0.9" must not
	 * depend on the user's decimal comma. */
	if (!c)
		return false;
	old = uselocale(c);
	errno = 0;
	v = strtod(s, &end);
	uselocale(old);
	freelocale(c);
	/* Decimal only: no hex floats, no leading blanks, no inf or nan. */
	if (end == s || *end || !isfinite(v) || isspace((unsigned char)*s) ||
	    strpbrk(s, "xX"))
		return false;
	if (ret)
		*ret = v;
	return true;
}

/* ---- progress ------------------------------------------------------------ */

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;

void progress_init(struct progress *p, struct cli *c, const char *label,
		   bool bytes)
{
	memset(p, 0, sizeof(*p));
	p->f = c->err;
	p->on = !c->quiet && isatty(fileno(c->err));
	p->label = label;
	p->bytes = bytes;
	p->start_ns = p->last_ns = mono_ns();
}

void progress_cb(void *arg, uint64_t done, uint64_t total)
{
	struct progress *p = arg;
	char a[32], b[32], bar[21];
	int64_t now;
	double pct, secs;
	int i, fill;

	if (!p || !p->on)
		return;
	/* Core may report from several threads: draw from one at a time,
	 * and skip a report rather than wait for the lock. */
	if (pthread_mutex_trylock(&progress_lock))
		return;
	now = mono_ns();
	if (p->drawn && now - p->last_ns < 100000000 && done < total)
		goto out;
	p->last_ns = now;
	pct = total ? 100.0 * (double)done / (double)total : 0;
	if (pct > 100)
		pct = 100;
	fill = (int)(pct / 5);
	for (i = 0; i < 20; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[20] = 0;
	secs = (double)(now - p->start_ns) / 1e9;
	if (p->bytes)
		fprintf(p->f, "\r\033[K%s [%s] %s / %s %3.0f%% %.1f MB/s",
			p->label, bar, human_size(done, a, sizeof(a)),
			human_size(total, b, sizeof(b)), pct,
			secs > 0 ? (double)done / 1e6 / secs : 0.0);
	else
		fprintf(p->f, "\r\033[K%s [%s] %llu / %llu %3.0f%%", p->label,
			bar, (unsigned long long)done,
			(unsigned long long)total, pct);
	fflush(p->f);
	p->drawn = true;
out:
	pthread_mutex_unlock(&progress_lock);
}

void progress_end(struct progress *p)
{
	if (p->on && p->drawn) {
		fputs("\r\033[K", p->f);
		fflush(p->f);
	}
	p->drawn = false;
}
