/* json.c — JSON strings written and read back (json.h). */
#include "json.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if invalid. */
static size_t utf8_len(const uint8_t *p, size_t left)
{
	size_t n, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		n = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		n = 3, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* overlong forms, surrogates and values past U+10FFFF */
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
	    (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void json_quote(struct strbuf *sb, const void *p, size_t len)
{
	const uint8_t *s = p;
	size_t i = 0, n;

	strbuf_addch(sb, '"');
	while (i < len) {
		uint8_t c = s[i];

		if (c == '"' || c == '\\') {
			strbuf_addch(sb, '\\');
			strbuf_addch(sb, (char)c);
			i++;
		} else if (c == '\n') {
			strbuf_adds(sb, "\\n");
			i++;
		} else if (c == '\t') {
			strbuf_adds(sb, "\\t");
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			strbuf_addf(sb, "\\u%04x", c);
			i++;
		} else if ((n = utf8_len(s + i, len - i)) == 0) {
			/* a byte that is not UTF-8: keep it visible, escaped
			   as the Latin-1 code point of the same value */
			strbuf_addf(sb, "\\u%04x", c);
			i++;
		} else {
			strbuf_add(sb, s + i, n);
			i += n;
		}
	}
	strbuf_addch(sb, '"');
}

void json_quotes(struct strbuf *sb, const char *s)
{
	json_quote(sb, s, s ? strlen(s) : 0);
}

/* ---- reading ------------------------------------------------------------ */

struct scan {
	const char *p, *end;
};

static void skip_ws(struct scan *s)
{
	while (s->p < s->end && strchr(" \t\r\n", *s->p) && *s->p)
		s->p++;
}

static int hex4(const char *p, uint32_t *ret)
{
	uint32_t v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return -EINVAL;
	}
	*ret = v;
	return 0;
}

/* Appends byte c to out (n used of size; out NULL: counting only). */
static int put(char *out, size_t size, size_t *n, uint8_t c)
{
	if (out) {
		if (*n + 1 >= size)
			return -ERANGE;
		out[*n] = (char)c;
	}
	(*n)++;
	return 0;
}

static int put_utf8(char *out, size_t size, size_t *n, uint32_t cp)
{
	uint8_t b[4];
	int k, i, r;

	if (cp < 0x800)
		b[0] = (uint8_t)(0xc0 | cp >> 6), k = 2;
	else if (cp < 0x10000)
		b[0] = (uint8_t)(0xe0 | cp >> 12), k = 3;
	else
		b[0] = (uint8_t)(0xf0 | cp >> 18), k = 4;
	for (i = 1; i < k; i++)
		b[i] = (uint8_t)(0x80 | ((cp >> (6 * (k - 1 - i))) & 0x3f));
	for (i = 0; i < k; i++)
		if ((r = put(out, size, n, b[i])) < 0)
			return r;
	return 0;
}

/* Reads the string at s->p (its opening quote), unescaped into out
 * (NULL: skipped). */
static int read_string(struct scan *s, char *out, size_t size, size_t *n)
{
	uint32_t cp, lo;
	int r;

	*n = 0;
	s->p++;
	while (s->p < s->end && *s->p != '"') {
		uint8_t c = (uint8_t)*s->p++;

		if (c != '\\') {
			if (c < 0x20)
				return -EINVAL;
			if ((r = put(out, size, n, c)) < 0)
				return r;
			continue;
		}
		if (s->p >= s->end)
			return -EINVAL;
		c = (uint8_t)*s->p++;
		switch (c) {
		case '"': case '\\': case '/':
			break;
		case 'b': c = '\b'; break;
		case 'f': c = '\f'; break;
		case 'n': c = '\n'; break;
		case 'r': c = '\r'; break;
		case 't': c = '\t'; break;
		case 'u':
			if (s->end - s->p < 4 || hex4(s->p, &cp) < 0)
				return -EINVAL;
			s->p += 4;
			if (cp <= 0xff) {
				/* json_quote's byte: give it back as it was */
				if ((r = put(out, size, n, (uint8_t)cp)) < 0)
					return r;
				continue;
			}
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (s->end - s->p < 6 || s->p[0] != '\\' ||
				    s->p[1] != 'u' || hex4(s->p + 2, &lo) < 0 ||
				    lo < 0xdc00 || lo > 0xdfff)
					return -EINVAL;
				s->p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				return -EINVAL;
			}
			if ((r = put_utf8(out, size, n, cp)) < 0)
				return r;
			continue;
		default:
			return -EINVAL;
		}
		if ((r = put(out, size, n, c)) < 0)
			return r;
	}
	if (s->p >= s->end)
		return -EINVAL;
	s->p++;
	return 0;
}

/* Skips a value that is not a string: a scalar's text (copied into out
 * when out), or a whole object or array (balanced, strings skipped). */
static int skip_value(struct scan *s, char *out, size_t size, bool *nested)
{
	size_t n = 0, len;
	int depth = 0, r;

	*nested = s->p < s->end && (*s->p == '{' || *s->p == '[');
	if (!*nested) {
		for (len = 0; s->p + len < s->end &&
			      !memchr(",}] \t\r\n", s->p[len], 8); len++)
			;
		if (len == 0)
			return -EINVAL;
		if (out) {
			if (len >= size)
				return -ERANGE;
			memcpy(out, s->p, len);
			out[len] = '\0';
		}
		s->p += len;
		return 0;
	}
	while (s->p < s->end) {
		if (*s->p == '"') {
			if ((r = read_string(s, NULL, 0, &n)) < 0)
				return r;
			continue;
		}
		if (*s->p == '{' || *s->p == '[')
			depth++;
		else if (*s->p == '}' || *s->p == ']')
			depth--;
		s->p++;
		if (depth == 0)
			return 0;
	}
	return -EINVAL;
}

int json_get(const char *json, size_t len, const char *key, char *buf,
	     size_t size)
{
	struct scan s = { json, json + len };
	const char *at;
	char name[128];
	size_t n;
	bool nested, want;
	int r;

	if (!json || !key || !buf || size == 0 || size > INT_MAX)
		return -EINVAL;
	skip_ws(&s);
	if (s.p >= s.end || *s.p++ != '{')
		return -EINVAL;
	for (;;) {
		skip_ws(&s);
		if (s.p < s.end && *s.p == '}')
			return -ENOENT;
		if (s.p >= s.end || *s.p != '"')
			return -EINVAL;
		at = s.p;
		r = read_string(&s, name, sizeof(name), &n);
		if (r == -ERANGE) {
			/* longer than any key we look for: skip it */
			s.p = at;
			if ((r = read_string(&s, NULL, 0, &n)) < 0)
				return r;
			want = false;
		} else if (r < 0) {
			return r;
		} else {
			want = n == strlen(key) && !memcmp(name, key, n);
		}
		skip_ws(&s);
		if (s.p >= s.end || *s.p++ != ':')
			return -EINVAL;
		skip_ws(&s);
		if (s.p < s.end && *s.p == '"') {
			r = read_string(&s, want ? buf : NULL, size, &n);
			if (r < 0)
				return r;
			if (want) {
				buf[n] = '\0';
				return (int)n;
			}
		} else {
			r = skip_value(&s, want ? buf : NULL, size, &nested);
			if (r < 0)
				return r;
			if (want)
				return nested ? -ENOENT : (int)strlen(buf);
		}
		skip_ws(&s);
		if (s.p < s.end && *s.p == ',') {
			s.p++;
			continue;
		}
		if (s.p < s.end && *s.p == '}')
			return -ENOENT;
		return -EINVAL;
	}
}
