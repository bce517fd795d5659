/*
 * Copyright (C) loyalty-edge authors
 *
 * The parser builds the tree in the caller's allocator in one pass; see
 * loyalty_json_parse() for what it refuses.
 */


#include <string.h>

#include "loyalty_json.h"


/* the parser's state; one per call, on the caller's stack */

typedef struct {
    const u_char           *p;           /* the next byte */
    const u_char           *start;
    const u_char           *last;
    u_char                 *buf;         /* decoded strings, numbers */
    loyalty_json_t         *free;        /* nodes not handed out yet */
    size_t                  nfree;
    const loyalty_alloc_t  *alloc;
    loyalty_err_t          *err;
    unsigned                plain;       /* the last string: no escape */
    unsigned                key_plain;   /* the current member name */
} loyalty_json_parser_t;


#define LOYALTY_JSON_CHUNK  32           /* nodes per allocation */


static int loyalty_json_value(loyalty_json_parser_t *ps,
    loyalty_json_t *parent, const loyalty_str_t *key, unsigned depth);
static int loyalty_json_container(loyalty_json_parser_t *ps,
    loyalty_json_t *v, unsigned depth);
static loyalty_json_t *loyalty_json_node(loyalty_json_parser_t *ps,
    loyalty_json_type_e type, loyalty_json_t *parent,
    const loyalty_str_t *key);
static int loyalty_json_string(loyalty_json_parser_t *ps,
    loyalty_str_t *out);
static int loyalty_json_number(loyalty_json_parser_t *ps,
    loyalty_str_t *out);
static int loyalty_json_literal(loyalty_json_parser_t *ps, const char *word,
    size_t len);
static int loyalty_json_fail(loyalty_json_parser_t *ps, const char *what);
static int loyalty_json_hex4(const u_char *p, const u_char *last,
    unsigned *cp);
static size_t loyalty_json_size(const loyalty_json_t *v);
static u_char *loyalty_json_write(u_char *p, const loyalty_json_t *v);
static size_t loyalty_json_string_size(const loyalty_str_t *s);
static u_char *loyalty_json_string_write(u_char *p, const loyalty_str_t *s);
static u_char *loyalty_json_plain_write(u_char *p, const loyalty_str_t *s);


/* RFC 8259 white space: nothing else (no form feed, no vertical tab) */
#define loyalty_json_ws(c)                                                  \
    ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')


/*
 * A strict RFC 8259 / I-JSON parser written for this job: one pass over
 * the bytes, the tree built as it goes, strings decoded into one buffer
 * taken once (decoded text is never longer than the input), nodes taken
 * LOYALTY_JSON_CHUNK at a time.  Refused: anything but the four white
 * space characters, raw control characters in strings, invalid or
 * non-shortest UTF-8, UTF-8 encoded surrogates, unpaired surrogate
 * escapes, numbers outside the JSON grammar, more than
 * LOYALTY_JSON_MAX_DEPTH nested containers, and anything after the
 * value.  Names may repeat; lookups find the first.
 */

int
loyalty_json_parse(const loyalty_str_t *text, const loyalty_alloc_t *a,
    loyalty_json_t **out, loyalty_err_t *err)
{
    int                     rc;
    loyalty_json_t          root;
    loyalty_json_parser_t   ps;

    *out = NULL;

    if (text->len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_JSON, "empty body");
        return LOYALTY_DECLINED;
    }

    memset(&ps, 0, sizeof(loyalty_json_parser_t));

    ps.p = text->data;
    ps.start = text->data;
    ps.last = text->data + text->len;
    ps.alloc = a;
    ps.err = err;

    /* every string and number, each NUL-terminated, fits in len + 1 */
    ps.buf = a->alloc(a->ctx, text->len + 1);
    if (ps.buf == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    /* a stand-in parent collects the top-level value */
    memset(&root, 0, sizeof(loyalty_json_t));
    root.type = LOYALTY_JSON_ARRAY;

    rc = loyalty_json_value(&ps, &root, NULL, 0);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    while (ps.p < ps.last && loyalty_json_ws(*ps.p)) {
        ps.p++;
    }

    if (ps.p != ps.last) {
        return loyalty_json_fail(&ps, "trailing garbage after the value");
    }

    root.child->parent = NULL;
    *out = root.child;

    return LOYALTY_OK;
}


static int
loyalty_json_fail(loyalty_json_parser_t *ps, const char *what)
{
    if (ps->p >= ps->last) {
        loyalty_err_set(ps->err, LOYALTY_ERR_JSON,
                        "truncated JSON at offset %zu: %s",
                        (size_t) (ps->last - ps->start), what);

    } else {
        loyalty_err_set(ps->err, LOYALTY_ERR_JSON, "%s at offset %zu", what,
                        (size_t) (ps->p - ps->start));
    }

    return LOYALTY_DECLINED;
}


static loyalty_json_t *
loyalty_json_node(loyalty_json_parser_t *ps, loyalty_json_type_e type,
    loyalty_json_t *parent, const loyalty_str_t *key)
{
    loyalty_json_t  *v;

    if (ps->nfree == 0) {
        ps->free = ps->alloc->alloc(ps->alloc->ctx,
                                    LOYALTY_JSON_CHUNK
                                    * sizeof(loyalty_json_t));
        if (ps->free == NULL) {
            loyalty_err_set(ps->err, LOYALTY_ERR_NOMEM, "out of memory");
            return NULL;
        }

        ps->nfree = LOYALTY_JSON_CHUNK;
    }

    v = ps->free++;
    ps->nfree--;

    memset(v, 0, sizeof(loyalty_json_t));

    v->type = type;
    v->parent = parent;

    if (key != NULL) {
        v->key = *key;
        v->key_plain = ps->key_plain;
    }

    if (parent->last != NULL) {
        parent->last->next = v;

    } else {
        parent->child = v;
    }

    parent->last = v;
    parent->n++;

    return v;
}


static int
loyalty_json_value(loyalty_json_parser_t *ps, loyalty_json_t *parent,
    const loyalty_str_t *key, unsigned depth)
{
    int              rc;
    unsigned         plain;
    loyalty_str_t    s;
    loyalty_json_t  *v;

    while (ps->p < ps->last && loyalty_json_ws(*ps->p)) {
        ps->p++;
    }

    if (ps->p == ps->last) {
        return loyalty_json_fail(ps, "a value expected");
    }

    switch (*ps->p) {

    case '{':
    case '[':
        if (depth == LOYALTY_JSON_MAX_DEPTH) {
            return loyalty_json_fail(ps, "nested too deeply");
        }

        v = loyalty_json_node(ps, *ps->p == '{' ? LOYALTY_JSON_OBJECT
                                                : LOYALTY_JSON_ARRAY,
                              parent, key);
        if (v == NULL) {
            return LOYALTY_ERROR;
        }

        ps->p++;

        return loyalty_json_container(ps, v, depth + 1);

    case '"':
        rc = loyalty_json_string(ps, &s);
        if (rc != LOYALTY_OK) {
            return rc;
        }

        plain = ps->plain;

        v = loyalty_json_node(ps, LOYALTY_JSON_STRING, parent, key);
        if (v == NULL) {
            return LOYALTY_ERROR;
        }

        v->text = s;
        v->plain = plain;
        return LOYALTY_OK;

    case 't':
        rc = loyalty_json_literal(ps, "true", 4);
        if (rc != LOYALTY_OK) {
            return rc;
        }

        return loyalty_json_node(ps, LOYALTY_JSON_TRUE, parent, key)
               ? LOYALTY_OK : LOYALTY_ERROR;

    case 'f':
        rc = loyalty_json_literal(ps, "false", 5);
        if (rc != LOYALTY_OK) {
            return rc;
        }

        return loyalty_json_node(ps, LOYALTY_JSON_FALSE, parent, key)
               ? LOYALTY_OK : LOYALTY_ERROR;

    case 'n':
        rc = loyalty_json_literal(ps, "null", 4);
        if (rc != LOYALTY_OK) {
            return rc;
        }

        return loyalty_json_node(ps, LOYALTY_JSON_NULL, parent, key)
               ? LOYALTY_OK : LOYALTY_ERROR;

    default:
        rc = loyalty_json_number(ps, &s);
        if (rc != LOYALTY_OK) {
            return rc;
        }

        v = loyalty_json_node(ps, LOYALTY_JSON_NUMBER, parent, key);
        if (v == NULL) {
            return LOYALTY_ERROR;
        }

        v->text = s;
        return LOYALTY_OK;
    }
}


/* members or elements after the opening bracket, up to the closing one */

static int
loyalty_json_container(loyalty_json_parser_t *ps, loyalty_json_t *v,
    unsigned depth)
{
    int            rc;
    u_char         close;
    unsigned       key_plain;
    loyalty_str_t  key;

    close = (v->type == LOYALTY_JSON_OBJECT) ? '}' : ']';

    for ( ;; ) {
        while (ps->p < ps->last && loyalty_json_ws(*ps->p)) {
            ps->p++;
        }

        if (ps->p == ps->last) {
            return loyalty_json_fail(ps, "unclosed object or array");
        }

        if (*ps->p == close && v->n == 0) {
            ps->p++;
            return LOYALTY_OK;
        }

        if (v->type == LOYALTY_JSON_OBJECT) {
            if (*ps->p != '"') {
                return loyalty_json_fail(ps, "a member name expected");
            }

            rc = loyalty_json_string(ps, &key);
            if (rc != LOYALTY_OK) {
                return rc;
            }

            key_plain = ps->plain;

            while (ps->p < ps->last && loyalty_json_ws(*ps->p)) {
                ps->p++;
            }

            if (ps->p == ps->last || *ps->p != ':') {
                return loyalty_json_fail(ps, "':' expected");
            }

            ps->p++;

            /* the value's own strings must not overwrite it first */
            ps->key_plain = key_plain;
            rc = loyalty_json_value(ps, v, &key, depth);

        } else {
            rc = loyalty_json_value(ps, v, NULL, depth);
        }

        if (rc != LOYALTY_OK) {
            return rc;
        }

        while (ps->p < ps->last && loyalty_json_ws(*ps->p)) {
            ps->p++;
        }

        if (ps->p == ps->last) {
            return loyalty_json_fail(ps, "unclosed object or array");
        }

        if (*ps->p == close) {
            ps->p++;
            return LOYALTY_OK;
        }

        if (*ps->p != ',') {
            return loyalty_json_fail(ps, "',' or a closing bracket expected");
        }

        ps->p++;
    }
}


/*
 * The string at ps->p (its opening quote), decoded into ps->buf; UTF-8
 * checked as it is copied (RFC 3629: shortest form, no surrogates,
 * nothing above U+10FFFF).
 */

static int
loyalty_json_string(loyalty_json_parser_t *ps, loyalty_str_t *out)
{
    u_char         c, lo, hi, *d;
    size_t         n;
    unsigned       cp, cp2;
    const u_char  *p, *last;

    p = ps->p + 1;
    last = ps->last;
    d = ps->buf;

    out->data = d;
    ps->plain = 1;

    for ( ;; ) {

        /* the common case: plain ASCII */
        while (p < last && *p >= 0x20 && *p < 0x80 && *p != '"'
               && *p != '\\')
        {
            *d++ = *p++;
        }

        if (p == last) {
            ps->p = p;
            return loyalty_json_fail(ps, "unterminated string");
        }

        c = *p;

        if (c == '"') {
            break;
        }

        if (c < 0x20) {
            ps->p = p;
            return loyalty_json_fail(ps, "control character in a string");
        }

        if (c == '\\') {
            ps->plain = 0;

            if (last - p < 2) {
                ps->p = last;
                return loyalty_json_fail(ps, "unterminated string");
            }

            switch (p[1]) {
            case '"':  *d++ = '"';  break;
            case '\\': *d++ = '\\'; break;
            case '/':  *d++ = '/';  break;
            case 'b':  *d++ = '\b'; break;
            case 'f':  *d++ = '\f'; break;
            case 'n':  *d++ = '\n'; break;
            case 'r':  *d++ = '\r'; break;
            case 't':  *d++ = '\t'; break;

            case 'u':
                if (!loyalty_json_hex4(p + 2, last, &cp)) {
                    ps->p = p;
                    return loyalty_json_fail(ps, "invalid \\u escape");
                }

                if (cp >= 0xdc00 && cp <= 0xdfff) {
                    ps->p = p;
                    return loyalty_json_fail(ps,
                                             "unpaired surrogate escape");
                }

                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (last - p < 12 || p[6] != '\\' || p[7] != 'u'
                        || !loyalty_json_hex4(p + 8, last, &cp2)
                        || cp2 < 0xdc00 || cp2 > 0xdfff)
                    {
                        ps->p = p;
                        return loyalty_json_fail(ps,
                                                 "unpaired surrogate escape");
                    }

                    cp = 0x10000 + ((cp - 0xd800) << 10) + (cp2 - 0xdc00);
                    p += 6;
                }

                /* at most as long as the escape it replaces */
                if (cp < 0x80) {
                    *d++ = (u_char) cp;

                } else if (cp < 0x800) {
                    *d++ = (u_char) (0xc0 | (cp >> 6));
                    *d++ = (u_char) (0x80 | (cp & 0x3f));

                } else if (cp < 0x10000) {
                    *d++ = (u_char) (0xe0 | (cp >> 12));
                    *d++ = (u_char) (0x80 | ((cp >> 6) & 0x3f));
                    *d++ = (u_char) (0x80 | (cp & 0x3f));

                } else {
                    *d++ = (u_char) (0xf0 | (cp >> 18));
                    *d++ = (u_char) (0x80 | ((cp >> 12) & 0x3f));
                    *d++ = (u_char) (0x80 | ((cp >> 6) & 0x3f));
                    *d++ = (u_char) (0x80 | (cp & 0x3f));
                }

                p += 4;
                break;

            default:
                ps->p = p;
                return loyalty_json_fail(ps, "invalid escape");
            }

            p += 2;
            continue;
        }

        /* a multi-byte UTF-8 sequence */
        lo = 0x80;
        hi = 0xbf;

        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;

        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0) {
                lo = 0xa0;
            } else if (c == 0xed) {
                hi = 0x9f;
            }

        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0) {
                lo = 0x90;
            } else if (c == 0xf4) {
                hi = 0x8f;
            }

        } else {
            ps->p = p;
            return loyalty_json_fail(ps, "invalid UTF-8");
        }

        if ((size_t) (last - p) <= n || p[1] < lo || p[1] > hi
            || (n > 1 && (p[2] < 0x80 || p[2] > 0xbf))
            || (n > 2 && (p[3] < 0x80 || p[3] > 0xbf)))
        {
            ps->p = p;
            return loyalty_json_fail(ps, "invalid UTF-8");
        }

        memcpy(d, p, n + 1);
        d += n + 1;
        p += n + 1;
    }

    out->len = d - out->data;
    *d++ = '\0';

    ps->buf = d;
    ps->p = p + 1;

    return LOYALTY_OK;
}


/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, kept as text */

static int
loyalty_json_number(loyalty_json_parser_t *ps, loyalty_str_t *out)
{
    size_t         len;
    const u_char  *p, *last, *start;

    p = ps->p;
    last = ps->last;
    start = p;

    if (*p == '-') {
        p++;
    }

    if (p == last || *p < '0' || *p > '9') {
        ps->p = p;
        return loyalty_json_fail(ps, "invalid value");
    }

    if (*p == '0') {
        p++;

    } else {
        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < last && *p == '.') {
        p++;

        if (p == last || *p < '0' || *p > '9') {
            ps->p = p;
            return loyalty_json_fail(ps, "a digit expected after '.'");
        }

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < last && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < last && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == last || *p < '0' || *p > '9') {
            ps->p = p;
            return loyalty_json_fail(ps, "a digit expected in the exponent");
        }

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    /* "01", "1x": the number ended where something else began */
    if (p < last && !loyalty_json_ws(*p) && *p != ',' && *p != ']'
        && *p != '}')
    {
        ps->p = p;
        return loyalty_json_fail(ps, "invalid number");
    }

    len = p - start;

    memcpy(ps->buf, start, len);
    out->data = ps->buf;
    out->len = len;
    ps->buf[len] = '\0';
    ps->buf += len + 1;

    ps->p = p;

    return LOYALTY_OK;
}


static int
loyalty_json_literal(loyalty_json_parser_t *ps, const char *word, size_t len)
{
    if ((size_t) (ps->last - ps->p) < len) {
        if (memcmp(ps->p, word, ps->last - ps->p) == 0) {
            ps->p = ps->last;
            return loyalty_json_fail(ps, "truncated literal");
        }

        return loyalty_json_fail(ps, "invalid value");
    }

    if (memcmp(ps->p, word, len) != 0) {
        return loyalty_json_fail(ps, "invalid value");
    }

    ps->p += len;

    return LOYALTY_OK;
}


loyalty_json_t *
loyalty_json_get(const loyalty_json_t *obj, const char *key)
{
    size_t           len;
    loyalty_json_t  *v;

    if (obj == NULL || obj->type != LOYALTY_JSON_OBJECT) {
        return NULL;
    }

    len = strlen(key);

    for (v = obj->child; v != NULL; v = v->next) {
        if (v->key.len == len && memcmp(v->key.data, key, len) == 0) {
            return v;
        }
    }

    return NULL;
}


loyalty_json_t *
loyalty_json_object(const loyalty_json_t *obj, const char *key)
{
    loyalty_json_t  *v;

    v = loyalty_json_get(obj, key);

    return (v != NULL && v->type == LOYALTY_JSON_OBJECT) ? v : NULL;
}


int
loyalty_json_scalar(const loyalty_json_t *obj, const char *key,
    loyalty_str_t *out)
{
    loyalty_json_t  *v;

    v = loyalty_json_get(obj, key);

    if (v == NULL
        || (v->type != LOYALTY_JSON_STRING && v->type != LOYALTY_JSON_NUMBER)
        || v->text.len == 0)
    {
        return LOYALTY_DECLINED;
    }

    *out = v->text;

    return LOYALTY_OK;
}


loyalty_json_t *
loyalty_json_path(const loyalty_json_t *root, const char *path)
{
    size_t           len, idx, i;
    const char      *p, *end;
    loyalty_json_t  *v, *c;

    v = (loyalty_json_t *) root;
    p = path;

    while (v != NULL && *p != '\0') {
        end = strchr(p, '.');
        len = end ? (size_t) (end - p) : strlen(p);

        if (len == 0) {
            return NULL;
        }

        if (v->type == LOYALTY_JSON_ARRAY) {
            idx = 0;
            for (i = 0; i < len; i++) {
                if (p[i] < '0' || p[i] > '9' || i >= 9) {
                    return NULL;
                }
                idx = idx * 10 + (size_t) (p[i] - '0');
            }

            for (c = v->child; c != NULL && idx > 0; c = c->next) {
                idx--;
            }
            v = c;

        } else if (v->type == LOYALTY_JSON_OBJECT) {
            for (c = v->child; c != NULL; c = c->next) {
                if (c->key.len == len && memcmp(c->key.data, p, len) == 0) {
                    break;
                }
            }
            v = c;

        } else {
            return NULL;
        }

        p += len;
        if (*p == '.') {
            p++;
            if (*p == '\0') {
                return NULL;
            }
        }
    }

    return v;
}


int
loyalty_json_int64(const loyalty_json_t *v, int64_t *out)
{
    int            neg;
    size_t         i;
    uint64_t       n, d, max;
    const u_char  *p;

    if (v == NULL || v->type != LOYALTY_JSON_NUMBER || v->text.len == 0) {
        return LOYALTY_DECLINED;
    }

    p = v->text.data;
    i = 0;
    neg = (p[0] == '-');

    if (neg) {
        i++;
    }

    if (i == v->text.len) {
        return LOYALTY_DECLINED;
    }

    max = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
    n = 0;

    for ( /* void */ ; i < v->text.len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return LOYALTY_DECLINED;       /* fraction or exponent */
        }

        d = p[i] - '0';

        if (n > (max - d) / 10) {
            return LOYALTY_DECLINED;
        }

        n = n * 10 + d;
    }

    *out = neg ? (int64_t) (0 - n) : (int64_t) n;

    return LOYALTY_OK;
}


static int
loyalty_json_hex4(const u_char *p, const u_char *last, unsigned *cp)
{
    int       i;
    u_char    c;
    unsigned  v;

    if (last - p < 4) {
        return 0;
    }

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            v = v * 16 + (c - '0');
        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            v = v * 16 + ((c | 0x20) - 'a' + 10);
        } else {
            return 0;
        }
    }

    *cp = v;

    return 1;
}


/* sized first, written once: one allocation per dump */

int
loyalty_json_dump(const loyalty_json_t *v, const loyalty_alloc_t *a,
    loyalty_str_t *out)
{
    u_char  *p, *last;
    size_t   len;

    len = loyalty_json_size(v);

    p = a->alloc(a->ctx, len + 1);
    if (p == NULL) {
        return LOYALTY_ERROR;
    }

    last = loyalty_json_write(p, v);
    *last = '\0';

    out->data = p;
    out->len = last - p;

    return LOYALTY_OK;
}


static size_t
loyalty_json_size(const loyalty_json_t *v)
{
    size_t           len;
    loyalty_json_t  *c;

    switch (v->type) {

    case LOYALTY_JSON_NULL:
    case LOYALTY_JSON_TRUE:
        return 4;

    case LOYALTY_JSON_FALSE:
        return 5;

    case LOYALTY_JSON_NUMBER:
        return v->text.len;

    case LOYALTY_JSON_STRING:
        return v->plain ? v->text.len + 2
                        : loyalty_json_string_size(&v->text);

    default:
        break;
    }

    /* brackets and commas */
    len = 2 + (v->n ? v->n - 1 : 0);

    for (c = v->child; c != NULL; c = c->next) {
        if (v->type == LOYALTY_JSON_OBJECT) {
            len += (c->key_plain ? c->key.len + 2
                                 : loyalty_json_string_size(&c->key)) + 1;
        }

        len += loyalty_json_size(c);
    }

    return len;
}


static u_char *
loyalty_json_write(u_char *p, const loyalty_json_t *v)
{
    loyalty_json_t  *c;

    switch (v->type) {

    case LOYALTY_JSON_NULL:
        return (u_char *) memcpy(p, "null", 4) + 4;

    case LOYALTY_JSON_TRUE:
        return (u_char *) memcpy(p, "true", 4) + 4;

    case LOYALTY_JSON_FALSE:
        return (u_char *) memcpy(p, "false", 5) + 5;

    case LOYALTY_JSON_NUMBER:
        return (u_char *) memcpy(p, v->text.data, v->text.len)
               + v->text.len;

    case LOYALTY_JSON_STRING:
        return v->plain ? loyalty_json_plain_write(p, &v->text)
                        : loyalty_json_string_write(p, &v->text);

    default:
        break;
    }

    *p++ = (v->type == LOYALTY_JSON_OBJECT) ? '{' : '[';

    for (c = v->child; c != NULL; c = c->next) {
        if (c != v->child) {
            *p++ = ',';
        }

        if (v->type == LOYALTY_JSON_OBJECT) {
            p = c->key_plain ? loyalty_json_plain_write(p, &c->key)
                             : loyalty_json_string_write(p, &c->key);
            *p++ = ':';
        }

        p = loyalty_json_write(p, c);
    }

    *p++ = (v->type == LOYALTY_JSON_OBJECT) ? '}' : ']';

    return p;
}


/*
 * A string that had no escape in the input has nothing to escape now:
 * JSON text cannot hold a raw quote, backslash or control character.
 */

static u_char *
loyalty_json_plain_write(u_char *p, const loyalty_str_t *s)
{
    *p++ = '"';
    memcpy(p, s->data, s->len);
    p += s->len;
    *p++ = '"';

    return p;
}


/* quotes, backslash and control characters escaped; UTF-8 as it is */

static size_t
loyalty_json_string_size(const loyalty_str_t *s)
{
    size_t  i, len;

    len = s->len + 2;

    for (i = 0; i < s->len; i++) {
        switch (s->data[i]) {
        case '"': case '\\': case '\b': case '\f': case '\n': case '\r':
        case '\t':
            len += 1;
            break;

        default:
            if (s->data[i] < 0x20) {
                len += 5;
            }
        }
    }

    return len;
}


static u_char *
loyalty_json_string_write(u_char *p, const loyalty_str_t *s)
{
    size_t   i;
    u_char   ch;

    static const u_char  hex[] = "0123456789abcdef";

    *p++ = '"';

    for (i = 0; i < s->len; i++) {
        ch = s->data[i];

        switch (ch) {
        case '"':  *p++ = '\\'; *p++ = '"';  continue;
        case '\\': *p++ = '\\'; *p++ = '\\'; continue;
        case '\b': *p++ = '\\'; *p++ = 'b';  continue;
        case '\f': *p++ = '\\'; *p++ = 'f';  continue;
        case '\n': *p++ = '\\'; *p++ = 'n';  continue;
        case '\r': *p++ = '\\'; *p++ = 'r';  continue;
        case '\t': *p++ = '\\'; *p++ = 't';  continue;
        }

        if (ch < 0x20) {
            *p++ = '\\';
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 0xf];
            continue;
        }

        *p++ = ch;
    }

    *p++ = '"';

    return p;
}
