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

void json_escape(FILE *f, const void *p, size_t len)
{
	struct strbuf sb = STRBUF_INIT;

	json_quote(&sb, p, len);
	fwrite(sb.buf, 1, sb.len, f);
	strbuf_release(&sb);
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
		abort(); /* a bug of the caller, not a condition */
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
		if (util_decimal(buf, strlen(buf), &v)) {
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
			die_oom();
	}
	va_start(ap, t);
	for (i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);
		char *d = strdup(s ? s : "-");

		if (!d)
			die_oom();
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

	w = xcalloc(t->ncols, sizeof(*w));
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

void table_indent(struct table *t, size_t from, const char *prefix)
{
	size_t i;

	for (i = from; i < t->nrows; i++) {
		char *k = t->cells[i * t->ncols];

		t->cells[i * t->ncols] = xasprintf("%s%s", prefix, k ? k : "");
		free(k);
	}
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
	if (secs == 0) {
		snprintf(buf, size, "-");
		return buf;
	}
	return util_time_iso(secs * 1000000000, false, buf, size);
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

/* ---- progress ------------------------------------------------------------ */

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
