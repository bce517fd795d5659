/*
 * Copyright (C) loyalty-edge authors
 *
 * yajl drives the parse through callbacks; each callback appends one
 * node to a tree held in the caller's allocator.
 */


#include <string.h>
#include <yajl/yajl_parse.h>

#include "loyalty_json.h"


typedef struct {
    const loyalty_alloc_t  *alloc;
    loyalty_json_t         *root;
    loyalty_json_t         *open;        /* innermost open array/object */
    loyalty_str_t           key;         /* pending member name */
    size_t                  depth;
    loyalty_err_t          *err;         /* why a callback stopped yajl */
} loyalty_json_ctx_t;


static loyalty_json_t *loyalty_json_add(loyalty_json_ctx_t *ctx,
    loyalty_json_type_e type, const u_char *text, size_t len);
static int loyalty_json_on_null(void *data);
static int loyalty_json_on_boolean(void *data, int value);
static int loyalty_json_on_number(void *data, const char *s, size_t len);
static int loyalty_json_on_string(void *data, const unsigned char *s,
    size_t len);
static int loyalty_json_on_start_map(void *data);
static int loyalty_json_on_map_key(void *data, const unsigned char *s,
    size_t len);
static int loyalty_json_on_end(void *data);
static int loyalty_json_on_start_array(void *data);
static int loyalty_json_open(loyalty_json_ctx_t *ctx,
    loyalty_json_type_e type);
static int loyalty_json_strict(const loyalty_str_t *text,
    loyalty_err_t *err);
static int loyalty_json_hex4(const u_char *p, const u_char *last,
    unsigned *cp);
static int loyalty_json_utf8_valid(const u_char *p, size_t len);
static size_t loyalty_json_size(const loyalty_json_t *v);
static u_char *loyalty_json_write(u_char *p, const loyalty_json_t *v);
static size_t loyalty_json_string_size(const loyalty_str_t *s);
static u_char *loyalty_json_string_write(u_char *p, const loyalty_str_t *s);


static const yajl_callbacks  loyalty_json_callbacks = {
    loyalty_json_on_null,
    loyalty_json_on_boolean,
    NULL,                              /* integers come as text ... */
    NULL,                              /* ... and so do doubles */
    loyalty_json_on_number,
    loyalty_json_on_string,
    loyalty_json_on_start_map,
    loyalty_json_on_map_key,
    loyalty_json_on_end,
    loyalty_json_on_start_array,
    loyalty_json_on_end
};


int
loyalty_json_parse(const loyalty_str_t *text, const loyalty_alloc_t *a,
    loyalty_json_t **out, loyalty_err_t *err)
{
    size_t              off;
    u_char             *msg;
    yajl_handle         h;
    yajl_status         st;
    loyalty_json_ctx_t  ctx;

    *out = NULL;

    if (text->len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_JSON, "empty body");
        return LOYALTY_DECLINED;
    }

    if (loyalty_json_strict(text, err) != LOYALTY_OK) {
        return LOYALTY_DECLINED;
    }

    memset(&ctx, 0, sizeof(loyalty_json_ctx_t));
    ctx.alloc = a;
    ctx.err = err;

    h = yajl_alloc(&loyalty_json_callbacks, NULL, &ctx);
    if (h == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    /* UTF-8 is validated (the default); nothing lax is switched on */

    st = yajl_parse(h, text->data, text->len);

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);

        if (st == yajl_status_error) {
            yajl_free(h);
            loyalty_err_set(err, LOYALTY_ERR_JSON,
                            "truncated JSON at offset %zu", text->len);
            return LOYALTY_DECLINED;
        }
    }

    if (st == yajl_status_ok) {
        yajl_free(h);

        if (ctx.root == NULL) {
            loyalty_err_set(err, LOYALTY_ERR_JSON, "no JSON value");
            return LOYALTY_DECLINED;
        }

        *out = ctx.root;
        return LOYALTY_OK;
    }

    if (st == yajl_status_client_canceled) {
        yajl_free(h);
        return err->code == LOYALTY_ERR_NOMEM ? LOYALTY_ERROR
                                              : LOYALTY_DECLINED;
    }

    off = yajl_get_bytes_consumed(h);
    msg = yajl_get_error(h, 0, text->data, text->len);

    /* yajl's text ends in a newline; the offset is worth more in logs */
    loyalty_err_set(err, LOYALTY_ERR_JSON, "%.*s at offset %zu",
                    msg ? (int) strcspn((char *) msg, "\n") : 7,
                    msg ? (char *) msg : "invalid", off);

    if (msg != NULL) {
        yajl_free_error(h, msg);
    }

    yajl_free(h);

    return LOYALTY_DECLINED;
}


static loyalty_json_t *
loyalty_json_add(loyalty_json_ctx_t *ctx, loyalty_json_type_e type,
    const u_char *text, size_t len)
{
    loyalty_json_t  *v, *parent;

    v = ctx->alloc->alloc(ctx->alloc->ctx, sizeof(loyalty_json_t));
    if (v == NULL) {
        loyalty_err_set(ctx->err, LOYALTY_ERR_NOMEM, "out of memory");
        return NULL;
    }

    memset(v, 0, sizeof(loyalty_json_t));
    v->type = type;

    if (text != NULL) {
        v->text.data = loyalty_alloc_copy(ctx->alloc, text, len);
        if (v->text.data == NULL) {
            loyalty_err_set(ctx->err, LOYALTY_ERR_NOMEM, "out of memory");
            return NULL;
        }
        v->text.len = len;
    }

    parent = ctx->open;

    if (parent == NULL) {
        ctx->root = v;
        return v;
    }

    if (parent->type == LOYALTY_JSON_OBJECT) {
        v->key = ctx->key;
        ctx->key.len = 0;
        ctx->key.data = NULL;
    }

    v->parent = parent;

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
loyalty_json_on_null(void *data)
{
    return loyalty_json_add(data, LOYALTY_JSON_NULL, NULL, 0) != NULL;
}


static int
loyalty_json_on_boolean(void *data, int value)
{
    return loyalty_json_add(data, value ? LOYALTY_JSON_TRUE
                                        : LOYALTY_JSON_FALSE, NULL, 0)
           != NULL;
}


static int
loyalty_json_on_number(void *data, const char *s, size_t len)
{
    return loyalty_json_add(data, LOYALTY_JSON_NUMBER, (const u_char *) s,
                            len)
           != NULL;
}


static int
loyalty_json_on_string(void *data, const unsigned char *s, size_t len)
{
    loyalty_json_ctx_t  *ctx = data;

    /* yajl checks byte structure only: overlong forms, surrogates */
    if (!loyalty_json_utf8_valid(s, len)) {
        loyalty_err_set(ctx->err, LOYALTY_ERR_JSON,
                        "invalid UTF-8 in a string");
        return 0;
    }

    return loyalty_json_add(ctx, LOYALTY_JSON_STRING, s, len) != NULL;
}


static int
loyalty_json_on_map_key(void *data, const unsigned char *s, size_t len)
{
    loyalty_json_ctx_t  *ctx = data;

    if (!loyalty_json_utf8_valid(s, len)) {
        loyalty_err_set(ctx->err, LOYALTY_ERR_JSON,
                        "invalid UTF-8 in a string");
        return 0;
    }

    ctx->key.data = loyalty_alloc_copy(ctx->alloc, s, len);
    if (ctx->key.data == NULL) {
        loyalty_err_set(ctx->err, LOYALTY_ERR_NOMEM, "out of memory");
        return 0;
    }

    ctx->key.len = len;

    return 1;
}


static int
loyalty_json_open(loyalty_json_ctx_t *ctx, loyalty_json_type_e type)
{
    loyalty_json_t  *v;

    if (++ctx->depth > LOYALTY_JSON_MAX_DEPTH) {
        loyalty_err_set(ctx->err, LOYALTY_ERR_JSON,
                        "nested deeper than %d levels",
                        LOYALTY_JSON_MAX_DEPTH);
        return 0;
    }

    v = loyalty_json_add(ctx, type, NULL, 0);
    if (v == NULL) {
        return 0;
    }

    ctx->open = v;

    return 1;
}


static int
loyalty_json_on_start_map(void *data)
{
    return loyalty_json_open(data, LOYALTY_JSON_OBJECT);
}


static int
loyalty_json_on_start_array(void *data)
{
    return loyalty_json_open(data, LOYALTY_JSON_ARRAY);
}


static int
loyalty_json_on_end(void *data)
{
    loyalty_json_ctx_t  *ctx = data;

    ctx->depth--;
    ctx->open = ctx->open->parent;

    return 1;
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


/*
 * What yajl lets through but JSON (RFC 8259, I-JSON) does not: form feed
 * and vertical tab as white space, and \u escapes of unpaired
 * surrogates, which yajl turns into "?" or into invalid UTF-8.  Raw
 * control characters are invalid inside strings too, so 0x0b and 0x0c
 * are refused wherever they stand.
 */

static int
loyalty_json_strict(const loyalty_str_t *text, loyalty_err_t *err)
{
    unsigned       cp, lo;
    const u_char  *p, *last;

    p = text->data;
    last = p + text->len;

    if (memchr(p, 0x0b, text->len) != NULL
        || memchr(p, 0x0c, text->len) != NULL)
    {
        loyalty_err_set(err, LOYALTY_ERR_JSON,
                        "form feed or vertical tab outside JSON rules");
        return LOYALTY_DECLINED;
    }

    /* only \u escapes need a look; the rest is yajl's to judge */
    while (p < last) {
        p = memchr(p, '\\', last - p);
        if (p == NULL || p + 1 >= last) {
            break;
        }

        if (p[1] != 'u') {
            p += 2;                    /* an escaped character, "\\" too */
            continue;
        }

        if (!loyalty_json_hex4(p + 2, last, &cp)) {
            break;                     /* yajl reports the bad escape */
        }

        p += 6;

        if (cp >= 0xdc00 && cp <= 0xdfff) {
            goto unpaired;
        }

        if (cp < 0xd800 || cp > 0xdbff) {
            continue;
        }

        if (last - p < 6 || p[0] != '\\' || p[1] != 'u'
            || !loyalty_json_hex4(p + 2, last, &lo)
            || lo < 0xdc00 || lo > 0xdfff)
        {
            goto unpaired;
        }

        p += 6;
    }

    return LOYALTY_OK;

unpaired:

    loyalty_err_set(err, LOYALTY_ERR_JSON,
                    "unpaired surrogate escape at offset %zu",
                    (size_t) (p - 6 - text->data));
    return LOYALTY_DECLINED;
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


/* RFC 3629: shortest form, no surrogates, nothing above U+10FFFF */

static int
loyalty_json_utf8_valid(const u_char *p, size_t len)
{
    size_t  i, n;
    u_char  c, lo, hi;

    for (i = 0; i < len; /* void */ ) {
        c = p[i];

        if (c < 0x80) {
            i++;
            continue;
        }

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
            return 0;
        }

        if (len - i <= n || p[i + 1] < lo || p[i + 1] > hi) {
            return 0;
        }

        for (i += 2; --n; i++) {
            if (p[i] < 0x80 || p[i] > 0xbf) {
                return 0;
            }
        }
    }

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
        return loyalty_json_string_size(&v->text);

    default:
        break;
    }

    /* brackets and commas */
    len = 2 + (v->n ? v->n - 1 : 0);

    for (c = v->child; c != NULL; c = c->next) {
        if (v->type == LOYALTY_JSON_OBJECT) {
            len += loyalty_json_string_size(&c->key) + 1;
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
        return loyalty_json_string_write(p, &v->text);

    default:
        break;
    }

    *p++ = (v->type == LOYALTY_JSON_OBJECT) ? '{' : '[';

    for (c = v->child; c != NULL; c = c->next) {
        if (c != v->child) {
            *p++ = ',';
        }

        if (v->type == LOYALTY_JSON_OBJECT) {
            p = loyalty_json_string_write(p, &c->key);
            *p++ = ':';
        }

        p = loyalty_json_write(p, c);
    }

    *p++ = (v->type == LOYALTY_JSON_OBJECT) ? '}' : ']';

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
