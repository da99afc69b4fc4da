/* json.h — JSON strings, written and read back: the one escaper (the
 * audit records' exact bytes, the CLI's output) and a reader of one
 * member of a flat record (what core reads back of its own audit
 * records).
 *
 * The escaper keeps every byte: control characters, quotes and
 * backslashes are escaped, valid UTF-8 is copied, and a byte that is not
 * UTF-8 becomes \u00XX (the Latin-1 code point of its value), so a line
 * built with it always parses. json_get() undoes exactly that: \u0000 to
 * \u00ff give back the one byte, higher code points (and surrogate
 * pairs) their UTF-8. */
#ifndef MREG_JSON_H
#define MREG_JSON_H

#include <stddef.h>

#include "strbuf.h"

/* Appends len bytes of p to sb as a JSON string, with its quotes. */
void json_quote(struct strbuf *sb, const void *p, size_t len);
/* json_quote() of a C string (NULL: ""). */
void json_quotes(struct strbuf *sb, const char *s);

/* The value of member key of the object json[0..len) (its top level
 * only), into buf with a NUL after it: a string unescaped, a number,
 * true, false or null as its text. Returns the value's length (a string
 * may hold a NUL of its own: \u0000); -ENOENT when the object has no
 * such member (or the value is an object or an array); -ERANGE when the
 * value and its NUL do not fit in size bytes (buf then holds nothing
 * useful); -EINVAL when json is not an object up to that member. */
int json_get(const char *json, size_t len, const char *key, char *buf,
	     size_t size);

#endif
