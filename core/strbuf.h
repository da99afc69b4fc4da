/* strbuf.h — a growable string (as git's strbuf).
 * Allocation failure aborts: strings here are small and an out-of-memory
 * daemon has nothing better to do. */
#ifndef MREG_STRBUF_H
#define MREG_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *buf;   /* always NUL-terminated once initialized */
	size_t len;
	size_t alloc;
};

#define STRBUF_INIT { NULL, 0, 0 }

void strbuf_init(struct strbuf *sb);
void strbuf_release(struct strbuf *sb);
/* Takes the buffer out of sb (caller frees); sb is reset. */
char *strbuf_detach(struct strbuf *sb, size_t *ret_len);
void strbuf_reset(struct strbuf *sb);
/* Cuts sb back to its first len bytes (len at most sb->len). */
void strbuf_setlen(struct strbuf *sb, size_t len);
void strbuf_add(struct strbuf *sb, const void *p, size_t len);
void strbuf_adds(struct strbuf *sb, const char *s);
void strbuf_addch(struct strbuf *sb, char c);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
