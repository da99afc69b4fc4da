/* search.c — parser and evaluator of `mreg search` queries (see search.h).
 *
 * Grammar; tokens may be separated by blanks (space, tab, newline):
 *
 *	query    := or END
 *	or       := and ("or" and)*
 *	and      := unary ("and" unary)*
 *	unary    := "not" unary | "(" or ")" | cmp
 *	cmp      := field op value
 *	field    := "name" | "version" | "stage" | "created" | "creator"
 *	          | ("tag" | "metric" | "param" | "lineage") "." key
 *	key      := [A-Za-z0-9_.-]+
 *	op       := "=" | "!=" | "<" | "<=" | ">" | ">=" | "like"
 *	value    := '"' (char | "\" any)* '"' | "'" (char | "\" any)* "'"
 *	          | number | bareword
 *	number   := what strtod(3) reads in the C locale, when a word starts
 *	            with [+-.0-9] (so 1e+3 is one token)
 *	bareword := [A-Za-z0-9_.:-]+ other than and, or, not, like
 *
 * Recursive descent over a lexer with one token of lookahead. "and" and
 * "or" build n-ary nodes, so a long chain makes a wide tree and not a deep
 * one; "not" and "(" count against SEARCH_MAX_DEPTH, which then bounds the
 * recursion of parsing, matching and freeing alike. Literals keep their
 * text; whether one is a number is decided once, at parse time.
 *
 * Numbers are read with strtod_l() in a "C" locale object owned by the
 * query: the process locale may use a decimal comma, the registry's
 * metrics are written with a point.
 */
#include "query/search.h"

#include <assert.h>
#include <errno.h>
#include <fnmatch.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tok_type { T_END, T_WORD, T_STRING, T_OP, T_LPAREN, T_RPAREN };

struct tok {
	enum tok_type type;
	size_t pos;		/* byte offset of the token in the query */
	size_t len;		/* raw length, quotes and escapes included */
};

enum node_kind { N_OR, N_AND, N_NOT, N_CMP };
enum cmp_op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_LIKE };

struct node {
	enum node_kind kind;
	union {
		struct {		/* N_OR, N_AND: two or more */
			struct node **kids;
			size_t n, cap;
		} list;
		struct node *child;	/* N_NOT */
		struct {		/* N_CMP */
			char *field;	/* normalized: "metric.auc" */
			char *lit;	/* unquoted text */
			enum cmp_op op;
			bool lit_num;	/* lit is a finite number: num */
			double num;
		} cmp;
	};
};

struct search_query {
	struct node *root;
	locale_t c_loc;
};

struct parser {
	const char *q;
	size_t next;		/* where the lexer goes on */
	struct tok t;		/* the lookahead */
	int depth;
	locale_t c_loc;
	char *err;
	size_t errlen;
};

static const char *const fixed_fields[] = {
	"name", "version", "stage", "created", "creator",
};
static const char *const prefixes[] = { "tag", "metric", "param", "lineage" };
static const char *const keywords[] = { "and", "or", "not", "like" };

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* Room for SHOW_MAX raw bytes, each escaped as \xNN, plus "..." */
#define SHOW_MAX 40
#define SHOW_BUF (SHOW_MAX * 4 + 4)

static bool is_word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
	       c == '-';
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ASCII only: the process locale must not change what a keyword is. */
static bool eq_nocase(const char *s, size_t len, const char *word)
{
	size_t i;

	assert(s && word);
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (word[i] == '\0' || c != word[i])
			return false;
	}
	return word[len] == '\0';
}

/* Writes s[0..len) printable into buf for an error message: a token can be
 * 4 KiB long or hold control bytes, a message line should not. */
static const char *show(char buf[SHOW_BUF], const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	assert(buf && s);
	for (i = 0; i < len && i < SHOW_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f) {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	if (i < len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static int fail(struct parser *p, size_t pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Writes "column N: reason" and returns -EINVAL. */
static int fail(struct parser *p, size_t pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	assert(p && fmt);
	if (!p->err || p->errlen == 0)
		return -EINVAL;
	n = snprintf(p->err, p->errlen, "column %zu: ", pos + 1);
	if (n >= 0 && (size_t)n < p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int fail_nomem(struct parser *p)
{
	assert(p);
	if (p->err && p->errlen)
		snprintf(p->err, p->errlen, "out of memory");
	return -ENOMEM;
}

/* Parses s completely as a finite number. strtod may set errno (ERANGE);
 * the caller's errno is none of our business, so it is kept. */
static bool parse_num(const char *s, locale_t loc, double *ret)
{
	int saved = errno;
	char *end;
	double d;

	assert(s && ret);
	if (*s == '\0')
		return false;
	d = strtod_l(s, &end, loc);
	errno = saved;
	if (*end != '\0' || !isfinite(d))
		return false;
	*ret = d;
	return true;
}

/* Length of the number strtod reads at s, within the characters a number
 * may have: "nan(...)" and the like stop before the parenthesis. */
static size_t number_len(const char *s, locale_t loc)
{
	int saved = errno;
	char *end;
	size_t n, m = 0;

	assert(s);
	if (*s == '\0' || !strchr("+-.0123456789", *s))
		return 0;
	(void)strtod_l(s, &end, loc);
	errno = saved;
	n = (size_t)(end - s);
	while (is_word_char(s[m]) || s[m] == '+')
		m++;
	return n < m ? n : m;
}

/* Reads the next token into p->t. */
static int lex(struct parser *p)
{
	const char *q = p->q;
	size_t i = p->next, j, n;
	char c, buf[SHOW_BUF];

	assert(p);
	while (is_blank(q[i]))
		i++;
	p->t.pos = i;
	p->t.len = 1;
	c = q[i];
	switch (c) {
	case '\0':
		p->t.type = T_END;
		p->t.len = 0;
		break;
	case '(':
		p->t.type = T_LPAREN;
		break;
	case ')':
		p->t.type = T_RPAREN;
		break;
	case '=':
		p->t.type = T_OP;
		break;
	case '!':
		if (q[i + 1] != '=')
			return fail(p, i, "unexpected character '!'");
		p->t.type = T_OP;
		p->t.len = 2;
		break;
	case '<':
	case '>':
		p->t.type = T_OP;
		p->t.len = q[i + 1] == '=' ? 2 : 1;
		break;
	case '"':
	case '\'':
		for (j = i + 1; q[j] && q[j] != c; j++)
			if (q[j] == '\\' && q[j + 1])
				j++;
		if (!q[j])
			return fail(p, i, "unterminated string");
		p->t.type = T_STRING;
		p->t.len = j + 1 - i;
		break;
	default:
		for (n = 0; is_word_char(q[i + n]); n++)
			;
		j = number_len(q + i, p->c_loc);
		if (j > n)
			n = j;
		if (n == 0)
			return fail(p, i, "unexpected character '%s'",
				    show(buf, q + i, 1));
		p->t.type = T_WORD;
		p->t.len = n;
		break;
	}
	p->next = i + p->t.len;
	return 0;
}

static bool tok_is(const struct parser *p, const char *keyword)
{
	assert(p && keyword);
	return p->t.type == T_WORD &&
	       eq_nocase(p->q + p->t.pos, p->t.len, keyword);
}

static bool tok_is_keyword(const struct parser *p)
{
	size_t i;

	assert(p);
	for (i = 0; i < ARRAY_SIZE(keywords); i++)
		if (tok_is(p, keywords[i]))
			return true;
	return false;
}

static void node_free(struct node *n)
{
	size_t i;

	if (!n)
		return;
	switch (n->kind) {
	case N_OR:
	case N_AND:
		for (i = 0; i < n->list.n; i++)
			node_free(n->list.kids[i]);
		free(n->list.kids);
		break;
	case N_NOT:
		node_free(n->child);
		break;
	case N_CMP:
		free(n->cmp.field);
		free(n->cmp.lit);
		break;
	}
	free(n);
}

/* Turns the current T_WORD into a normalized field name. */
static int parse_field(struct parser *p, char **ret)
{
	const char *s = p->q + p->t.pos, *dot;
	size_t len = p->t.len, plen, i;
	char buf[SHOW_BUF], *f;

	assert(p && ret && p->t.type == T_WORD);
	dot = memchr(s, '.', len);
	plen = dot ? (size_t)(dot - s) : len;
	for (i = 0; !dot && i < ARRAY_SIZE(fixed_fields); i++)
		if (eq_nocase(s, len, fixed_fields[i])) {
			f = strdup(fixed_fields[i]);
			if (!f)
				return fail_nomem(p);
			*ret = f;
			return 0;
		}
	for (i = 0; dot && i < ARRAY_SIZE(prefixes); i++)
		if (eq_nocase(s, plen, prefixes[i]))
			break;
	if (!dot || i == ARRAY_SIZE(prefixes))
		return fail(p, p->t.pos, "unknown field '%s'",
			    show(buf, s, len));
	if (plen + 1 == len)
		return fail(p, p->t.pos, "expected a key after '%s'",
			    show(buf, s, len));
	/* The lexer's words allow ':' for barewords (times); keys do not. */
	dot = memchr(s, ':', len);
	if (dot)
		return fail(p, p->t.pos + (size_t)(dot - s),
			    "unexpected ':' in field '%s'", show(buf, s, len));
	f = strndup(s, len);
	if (!f)
		return fail_nomem(p);
	memcpy(f, prefixes[i], plen);
	*ret = f;
	return 0;
}

/* Decodes the current T_STRING: \" \' \\ are the character, any other
 * backslash stays (fnmatch reads its own escapes). */
static int unquote(struct parser *p, char **ret)
{
	const char *s = p->q + p->t.pos;
	size_t len = p->t.len, i;
	char *r, *o;

	assert(p && ret && p->t.type == T_STRING && len >= 2);
	r = malloc(len - 1);
	if (!r)
		return fail_nomem(p);
	o = r;
	for (i = 1; i + 1 < len; i++) {
		if (s[i] == '\\') {
			/* The lexer skipped the byte after each backslash, so
			 * one follows before the closing quote. */
			assert(i + 2 < len);
			if (s[i + 1] == '"' || s[i + 1] == '\'' ||
			    s[i + 1] == '\\')
				i++;
		}
		*o++ = s[i];
	}
	*o = '\0';
	*ret = r;
	return 0;
}

static int parse_op(struct parser *p, enum cmp_op *ret)
{
	const char *s = p->q + p->t.pos;

	assert(p && ret);
	if (tok_is(p, "like")) {
		*ret = OP_LIKE;
		return 0;
	}
	if (p->t.type != T_OP)
		return -EINVAL;
	if (s[0] == '=')
		*ret = OP_EQ;
	else if (s[0] == '!')
		*ret = OP_NE;
	else if (s[0] == '<')
		*ret = p->t.len == 2 ? OP_LE : OP_LT;
	else
		*ret = p->t.len == 2 ? OP_GE : OP_GT;
	return 0;
}

static int parse_cmp(struct parser *p, struct node **ret)
{
	char buf[SHOW_BUF], *field = NULL, *lit = NULL;
	struct tok ftok, otok;
	struct node *n;
	enum cmp_op op;
	int r;

	assert(p && ret);
	if (p->t.type != T_WORD || tok_is_keyword(p))
		return fail(p, p->t.pos, "expected a field name");
	ftok = p->t;
	r = parse_field(p, &field);
	if (r < 0)
		return r;
	r = lex(p);
	if (r < 0)
		goto fail;
	if (parse_op(p, &op) < 0) {
		r = fail(p, p->t.pos, "expected an operator after '%s'",
			 show(buf, p->q + ftok.pos, ftok.len));
		goto fail;
	}
	otok = p->t;
	r = lex(p);
	if (r < 0)
		goto fail;
	if (p->t.type == T_STRING) {
		r = unquote(p, &lit);
	} else if (p->t.type == T_WORD && !tok_is_keyword(p)) {
		lit = strndup(p->q + p->t.pos, p->t.len);
		r = lit ? 0 : fail_nomem(p);
	} else {
		r = fail(p, p->t.pos, "expected a value after '%s'",
			 show(buf, p->q + otok.pos, otok.len));
	}
	if (r < 0)
		goto fail;
	r = lex(p);
	if (r < 0)
		goto fail;
	n = calloc(1, sizeof(*n));
	if (!n) {
		r = fail_nomem(p);
		goto fail;
	}
	n->kind = N_CMP;
	n->cmp.field = field;
	n->cmp.lit = lit;
	n->cmp.op = op;
	n->cmp.lit_num = parse_num(lit, p->c_loc, &n->cmp.num);
	*ret = n;
	return 0;
fail:
	free(field);
	free(lit);
	return r;
}

static int parse_or(struct parser *p, struct node **ret);

static int parse_unary(struct parser *p, struct node **ret)
{
	struct node *n = NULL, *sub = NULL;
	bool is_not;
	size_t pos;
	int r;

	assert(p && ret);
	is_not = tok_is(p, "not");
	if (!is_not && p->t.type != T_LPAREN)
		return parse_cmp(p, ret);
	pos = p->t.pos;
	if (p->depth >= SEARCH_MAX_DEPTH)
		return fail(p, pos, "nesting too deep");
	p->depth++;
	r = lex(p);
	if (r < 0)
		goto out;
	if (is_not) {
		r = parse_unary(p, &sub);
		if (r < 0)
			goto out;
		n = calloc(1, sizeof(*n));
		if (!n) {
			r = fail_nomem(p);
			goto out;
		}
		n->kind = N_NOT;
		n->child = sub;
		sub = NULL;
	} else {
		r = parse_or(p, &n);
		if (r < 0)
			goto out;
		if (p->t.type != T_RPAREN) {
			r = fail(p, p->t.pos, "expected ')'");
			goto out;
		}
		r = lex(p);
		if (r < 0)
			goto out;
	}
	*ret = n;
	n = NULL;
out:
	node_free(sub);
	node_free(n);
	p->depth--;
	return r;
}

/* Appends sub to the n-ary node list, which then owns it. */
static int list_add(struct parser *p, struct node *list, struct node *sub)
{
	struct node **kids;
	size_t cap = list->list.cap;

	assert(p && list && sub);
	if (list->list.n == cap) {
		cap = cap ? 2 * cap : 4;
		kids = reallocarray(list->list.kids, cap, sizeof(*kids));
		if (!kids)
			return fail_nomem(p);
		list->list.kids = kids;
		list->list.cap = cap;
	}
	list->list.kids[list->list.n++] = sub;
	return 0;
}

/* One level of a left-associative n-ary chain: "and" over unary, "or"
 * over "and". A single operand is returned as it is. */
static int parse_chain(struct parser *p, enum node_kind kind,
		       struct node **ret)
{
	const char *kw = kind == N_OR ? "or" : "and";
	struct node *list = NULL, *sub = NULL;
	int r;

	assert(p && ret && (kind == N_OR || kind == N_AND));
	for (;;) {
		r = kind == N_OR ? parse_chain(p, N_AND, &sub) :
				   parse_unary(p, &sub);
		if (r < 0)
			goto fail;
		if (!list && !tok_is(p, kw)) {
			*ret = sub;
			return 0;
		}
		if (!list) {
			list = calloc(1, sizeof(*list));
			if (!list) {
				r = fail_nomem(p);
				goto fail;
			}
			list->kind = kind;
		}
		r = list_add(p, list, sub);
		if (r < 0)
			goto fail;
		sub = NULL;
		if (!tok_is(p, kw))
			break;
		r = lex(p);
		if (r < 0)
			goto fail;
	}
	*ret = list;
	return 0;
fail:
	node_free(sub);
	node_free(list);
	return r;
}

static int parse_or(struct parser *p, struct node **ret)
{
	assert(p && ret);
	return parse_chain(p, N_OR, ret);
}

int search_parse(const char *q, struct search_query **ret, char *err,
		 size_t errlen)
{
	struct parser p = { .q = q, .err = err, .errlen = errlen };
	struct search_query *sq;
	struct node *root = NULL;
	char buf[SHOW_BUF];
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!q || !ret)
		return -EINVAL;
	if (strnlen(q, SEARCH_MAX_LEN + 1) > SEARCH_MAX_LEN)
		return fail(&p, SEARCH_MAX_LEN, "query longer than %d bytes",
			    SEARCH_MAX_LEN);
	p.c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (!p.c_loc)
		return fail_nomem(&p);
	r = lex(&p);
	if (r < 0)
		goto fail;
	if (p.t.type == T_END) {
		r = fail(&p, 0, "empty query");
		goto fail;
	}
	r = parse_or(&p, &root);
	if (r < 0)
		goto fail;
	if (p.t.type != T_END) {
		r = fail(&p, p.t.pos,
			 "unexpected '%s' after the end of the query",
			 show(buf, q + p.t.pos, p.t.len));
		goto fail;
	}
	sq = malloc(sizeof(*sq));
	if (!sq) {
		r = fail_nomem(&p);
		goto fail;
	}
	sq->root = root;
	sq->c_loc = p.c_loc;
	*ret = sq;
	return 0;
fail:
	node_free(root);
	freelocale(p.c_loc);
	return r;
}

void search_free(struct search_query *sq)
{
	if (!sq)
		return;
	node_free(sq->root);
	freelocale(sq->c_loc);
	free(sq);
}

struct emit_ctx {
	const struct node *n;
	locale_t c_loc;
	bool hit;
};

static bool cmp_one(const struct node *n, const char *v, locale_t loc)
{
	double d;
	int c;

	assert(n && n->kind == N_CMP && v);
	if (n->cmp.op == OP_LIKE)
		return fnmatch(n->cmp.lit, v, 0) == 0;
	if (n->cmp.lit_num && parse_num(v, loc, &d))
		c = (d > n->cmp.num) - (d < n->cmp.num);
	else
		c = strcmp(v, n->cmp.lit);
	switch (n->cmp.op) {
	case OP_EQ:
		return c == 0;
	case OP_NE:
		return c != 0;
	case OP_LT:
		return c < 0;
	case OP_LE:
		return c <= 0;
	case OP_GT:
		return c > 0;
	case OP_GE:
		return c >= 0;
	case OP_LIKE:
		break;
	}
	assert(!"unreachable");
	return false;
}

static void emit(void *ectx, const char *value)
{
	struct emit_ctx *e = ectx;

	assert(e);
	if (!e->hit && value)
		e->hit = cmp_one(e->n, value, e->c_loc);
}

static bool match(const struct node *n, const struct search_query *sq,
		  search_getter get, void *arg)
{
	struct emit_ctx e;
	size_t i;

	assert(n && sq && get);
	switch (n->kind) {
	case N_OR:
		for (i = 0; i < n->list.n; i++)
			if (match(n->list.kids[i], sq, get, arg))
				return true;
		return false;
	case N_AND:
		for (i = 0; i < n->list.n; i++)
			if (!match(n->list.kids[i], sq, get, arg))
				return false;
		return true;
	case N_NOT:
		return !match(n->child, sq, get, arg);
	case N_CMP:
		e = (struct emit_ctx){ .n = n, .c_loc = sq->c_loc };
		get(arg, n->cmp.field, emit, &e);
		return e.hit;
	}
	assert(!"unreachable");
	return false;
}

bool search_match(const struct search_query *sq, search_getter get,
		  void *arg)
{
	if (!sq || !get)
		return false;
	return match(sq->root, sq, get, arg);
}

/* A comparison that every match must pass: the root, or a member of the
 * root's "and". */
static const char *fixed_in(const struct node *n, const char *field)
{
	if (n->kind != N_CMP || n->cmp.op != OP_EQ || n->cmp.lit_num ||
	    strcmp(n->cmp.field, field) != 0)
		return NULL;
	return n->cmp.lit;
}

const char *search_fixed(const struct search_query *sq, const char *field)
{
	const struct node *root;
	const char *v;
	size_t i;

	if (!sq || !field)
		return NULL;
	root = sq->root;
	if (root->kind != N_AND)
		return fixed_in(root, field);
	for (i = 0; i < root->list.n; i++)
		if ((v = fixed_in(root->list.kids[i], field)))
			return v;
	return NULL;
}
