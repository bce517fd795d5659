/*
 * Copyright (C) loyalty-edge authors
 */


#include <stdio.h>
#include <string.h>

#include "loyalty_jw.h"


static int loyalty_jw_reserve(loyalty_jw_t *w, size_t n);
static void loyalty_jw_key(loyalty_jw_t *w, const char *key, size_t extra);
static void loyalty_jw_open(loyalty_jw_t *w, const char *key, u_char ch);
static void loyalty_jw_string(loyalty_jw_t *w, const u_char *p,
    size_t len);


void
loyalty_jw_init(loyalty_jw_t *w, const loyalty_alloc_t *a, size_t hint)
{
    memset(w, 0, sizeof(loyalty_jw_t));

    w->alloc = a;

    (void) loyalty_jw_reserve(w, hint < 64 ? 64 : hint);
}


/* the pool cannot grow a block: a larger one is taken and filled */

static int
loyalty_jw_reserve(loyalty_jw_t *w, size_t n)
{
    u_char  *p;
    size_t   used, size;

    if (w->failed) {
        return LOYALTY_ERROR;
    }

    if ((size_t) (w->end - w->pos) > n) {
        return LOYALTY_OK;
    }

    used = w->pos - w->start;
    size = (w->end - w->start) * 2;

    if (size < used + n + 1) {
        size = used + n + 1;
    }

    p = w->alloc->alloc(w->alloc->ctx, size);
    if (p == NULL) {
        w->failed = 1;
        return LOYALTY_ERROR;
    }

    if (used) {
        memcpy(p, w->start, used);
    }

    w->start = p;
    w->pos = p + used;
    w->end = p + size;

    return LOYALTY_OK;
}


/* the comma and the member name before a value; room for extra more */

static void
loyalty_jw_key(loyalty_jw_t *w, const char *key, size_t extra)
{
    size_t    len;
    uint32_t  bit;

    len = key ? strlen(key) : 0;

    if (loyalty_jw_reserve(w, len + 4 + extra) != LOYALTY_OK) {
        return;
    }

    if (w->named) {
        /* loyalty_jw_name() wrote the comma and the name */
        w->named = 0;

    } else if (w->depth) {
        bit = 1u << (w->depth - 1);

        if (w->more & bit) {
            *w->pos++ = ',';
        }

        w->more |= bit;
    }

    if (key != NULL) {
        *w->pos++ = '"';
        memcpy(w->pos, key, len);
        w->pos += len;
        *w->pos++ = '"';
        *w->pos++ = ':';
    }
}


static void
loyalty_jw_open(loyalty_jw_t *w, const char *key, u_char ch)
{
    uint32_t  bit;

    if (w->depth == LOYALTY_JW_MAX_DEPTH) {
        w->failed = 1;
        return;
    }

    loyalty_jw_key(w, key, 1);

    if (w->failed) {
        return;
    }

    *w->pos++ = ch;

    bit = 1u << w->depth;
    w->depth++;

    w->more &= ~bit;

    if (ch == '[') {
        w->array |= bit;

    } else {
        w->array &= ~bit;
    }
}


void
loyalty_jw_object(loyalty_jw_t *w, const char *key)
{
    loyalty_jw_open(w, key, '{');
}


void
loyalty_jw_array(loyalty_jw_t *w, const char *key)
{
    loyalty_jw_open(w, key, '[');
}


void
loyalty_jw_end(loyalty_jw_t *w)
{
    if (w->depth == 0) {
        w->failed = 1;
        return;
    }

    if (loyalty_jw_reserve(w, 1) != LOYALTY_OK) {
        return;
    }

    w->depth--;
    *w->pos++ = (w->array & (1u << w->depth)) ? ']' : '}';
}


int
loyalty_jw_empty(const loyalty_jw_t *w)
{
    return w->depth == 0 || !(w->more & (1u << (w->depth - 1)));
}


void
loyalty_jw_str(loyalty_jw_t *w, const char *key, const loyalty_str_t *value)
{
    /* the worst case: every byte a \u00XX escape */
    loyalty_jw_key(w, key, 6 * value->len + 2);

    if (!w->failed) {
        loyalty_jw_string(w, value->data, value->len);
    }
}


void
loyalty_jw_name(loyalty_jw_t *w, const loyalty_str_t *name)
{
    loyalty_jw_key(w, NULL, 6 * name->len + 3);

    if (!w->failed) {
        loyalty_jw_string(w, name->data, name->len);
        *w->pos++ = ':';
        w->named = 1;
    }
}


void
loyalty_jw_cstr(loyalty_jw_t *w, const char *key, const char *value)
{
    loyalty_str_t  s;

    s.data = (const u_char *) value;
    s.len = strlen(value);

    loyalty_jw_str(w, key, &s);
}


size_t
loyalty_jw_escape(u_char *dst, const u_char *src, size_t len)
{
    u_char         ch, *d;
    const u_char  *last;

    static const u_char  hex[] = "0123456789abcdef";

    /* an absent string may be { 0, NULL }: no arithmetic on NULL */
    if (len == 0) {
        return 0;
    }

    d = dst;
    last = src + len;

    while (src < last) {
        ch = *src++;

        if (ch >= 0x20 && ch != '"' && ch != '\\') {
            *d++ = ch;
            continue;
        }

        *d++ = '\\';

        switch (ch) {
        case '"':
        case '\\':
            *d++ = ch;
            break;
        case '\n':
            *d++ = 'n';
            break;
        case '\r':
            *d++ = 'r';
            break;
        case '\t':
            *d++ = 't';
            break;
        default:
            *d++ = 'u';
            *d++ = '0';
            *d++ = '0';
            *d++ = hex[ch >> 4];
            *d++ = hex[ch & 0xf];
        }
    }

    return (size_t) (d - dst);
}


static void
loyalty_jw_string(loyalty_jw_t *w, const u_char *p, size_t len)
{
    u_char  *d;

    d = w->pos;
    *d++ = '"';
    d += loyalty_jw_escape(d, p, len);
    *d++ = '"';

    w->pos = d;
}


void
loyalty_jw_int(loyalty_jw_t *w, const char *key, int64_t value)
{
    loyalty_jw_key(w, key, 21);

    if (!w->failed) {
        w->pos += snprintf((char *) w->pos, 21, "%lld", (long long) value);
    }
}


void
loyalty_jw_bool(loyalty_jw_t *w, const char *key, int value)
{
    loyalty_jw_key(w, key, 5);

    if (w->failed) {
        return;
    }

    if (value) {
        memcpy(w->pos, "true", 4);
        w->pos += 4;

    } else {
        memcpy(w->pos, "false", 5);
        w->pos += 5;
    }
}


void
loyalty_jw_raw(loyalty_jw_t *w, const char *key, const loyalty_str_t *json)
{
    loyalty_jw_key(w, key, json->len);

    if (!w->failed && json->len) {
        memcpy(w->pos, json->data, json->len);
        w->pos += json->len;
    }
}


int
loyalty_jw_finish(loyalty_jw_t *w, loyalty_str_t *out)
{
    if (w->failed || w->depth != 0 || w->pos == w->start) {
        return LOYALTY_ERROR;
    }

    /* reserve() always leaves a byte past pos */
    *w->pos = '\0';

    out->data = w->start;
    out->len = w->pos - w->start;

    return LOYALTY_OK;
}
