/*
 * Copyright (C) loyalty-edge authors
 */


#include <string.h>

#include "loyalty_csv.h"


static int loyalty_csv_reserve(loyalty_csv_t *c, size_t n);
static int loyalty_csv_needs_quotes(const loyalty_str_t *v);


void
loyalty_csv_init(loyalty_csv_t *c, const loyalty_alloc_t *a, size_t hint)
{
    memset(c, 0, sizeof(*c));
    c->alloc = a;

    if (hint < 64) {
        hint = 64;
    }

    c->start = a->alloc(a->ctx, hint);
    if (c->start == NULL) {
        c->failed = 1;
        return;
    }

    c->pos = c->start;
    c->end = c->start + hint;
}


/* pool allocators cannot grow a block: a bigger one, and a copy */

static int
loyalty_csv_reserve(loyalty_csv_t *c, size_t n)
{
    size_t   used, size;
    u_char  *p;

    if (c->failed) {
        return LOYALTY_ERROR;
    }

    if ((size_t) (c->end - c->pos) >= n) {
        return LOYALTY_OK;
    }

    used = (size_t) (c->pos - c->start);
    size = (size_t) (c->end - c->start) * 2;

    while (size - used < n) {
        size *= 2;
    }

    p = c->alloc->alloc(c->alloc->ctx, size);
    if (p == NULL) {
        c->failed = 1;
        return LOYALTY_ERROR;
    }

    memcpy(p, c->start, used);
    c->start = p;
    c->pos = p + used;
    c->end = p + size;

    return LOYALTY_OK;
}


static int
loyalty_csv_needs_quotes(const loyalty_str_t *v)
{
    size_t  i;

    if (v->len == 0) {
        return 0;
    }

    if (v->data[0] == ' ' || v->data[v->len - 1] == ' ') {
        return 1;
    }

    for (i = 0; i < v->len; i++) {
        switch (v->data[i]) {
        case ',': case '"': case '\r': case '\n':
            return 1;
        }
    }

    return 0;
}


void
loyalty_csv_field(loyalty_csv_t *c, const loyalty_str_t *value)
{
    size_t  i;

    /* worst case: every byte a quote, two quotes around, a comma */
    if (loyalty_csv_reserve(c, value->len * 2 + 3) != LOYALTY_OK) {
        return;
    }

    if (c->fields++ > 0) {
        *c->pos++ = ',';
    }

    if (!loyalty_csv_needs_quotes(value)) {
        if (value->len) {
            memcpy(c->pos, value->data, value->len);
            c->pos += value->len;
        }
        return;
    }

    *c->pos++ = '"';

    for (i = 0; i < value->len; i++) {
        if (value->data[i] == '"') {
            *c->pos++ = '"';
        }
        *c->pos++ = value->data[i];
    }

    *c->pos++ = '"';
}


void
loyalty_csv_cfield(loyalty_csv_t *c, const char *value)
{
    loyalty_str_t  s;

    s.data = (const u_char *) value;
    s.len = strlen(value);

    loyalty_csv_field(c, &s);
}


void
loyalty_csv_row_end(loyalty_csv_t *c)
{
    if (loyalty_csv_reserve(c, 1) != LOYALTY_OK) {
        return;
    }

    *c->pos++ = '\n';
    c->fields = 0;
}


int
loyalty_csv_finish(loyalty_csv_t *c, loyalty_str_t *out)
{
    if (loyalty_csv_reserve(c, 1) != LOYALTY_OK) {
        return LOYALTY_ERROR;
    }

    *c->pos = '\0';
    out->data = c->start;
    out->len = (size_t) (c->pos - c->start);

    return LOYALTY_OK;
}


void
loyalty_csv_reader_init(loyalty_csv_reader_t *r, const loyalty_str_t *text,
    const loyalty_alloc_t *a)
{
    r->pos = text->data;
    r->end = text->data + text->len;
    r->alloc = a;
    r->line = 0;
}


int
loyalty_csv_next(loyalty_csv_reader_t *r, loyalty_str_t *fields, size_t max,
    size_t *n, loyalty_err_t *err)
{
    size_t         k, len, quotes;
    u_char        *dst;
    const u_char  *p, *start, *q;

    *n = 0;
    p = r->pos;

    if (p == NULL || p >= r->end) {
        return LOYALTY_DECLINED;
    }

    r->line++;
    k = 0;

    for ( ;; ) {
        if (k == max) {
            loyalty_err_set(err, LOYALTY_ERR_INPUT,
                            "line %zu: more than %zu fields", r->line, max);
            return LOYALTY_ERROR;
        }

        if (p < r->end && *p == '"') {
            start = ++p;
            quotes = 0;

            for ( ;; ) {
                if (p >= r->end) {
                    loyalty_err_set(err, LOYALTY_ERR_INPUT,
                                    "line %zu: unterminated quote", r->line);
                    return LOYALTY_ERROR;
                }
                if (*p == '"') {
                    if (p + 1 < r->end && p[1] == '"') {
                        quotes++;
                        p += 2;
                        continue;
                    }
                    break;
                }
                p++;
            }

            len = (size_t) (p - start);
            p++;                        /* the closing quote */

            if (quotes == 0) {
                fields[k].data = start;
                fields[k].len = len;

            } else {
                dst = r->alloc->alloc(r->alloc->ctx, len - quotes + 1);
                if (dst == NULL) {
                    loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
                    return LOYALTY_ERROR;
                }

                fields[k].data = dst;
                for (q = start; q < start + len; q++) {
                    *dst++ = *q;
                    if (*q == '"') {
                        q++;            /* the doubled one */
                    }
                }
                fields[k].len = (size_t) (dst - fields[k].data);
            }

            if (p < r->end && *p != ',' && *p != '\n' && *p != '\r') {
                loyalty_err_set(err, LOYALTY_ERR_INPUT,
                                "line %zu: text after a closing quote",
                                r->line);
                return LOYALTY_ERROR;
            }

        } else {
            start = p;
            while (p < r->end && *p != ',' && *p != '\n' && *p != '\r') {
                if (*p == '"') {
                    loyalty_err_set(err, LOYALTY_ERR_INPUT,
                                    "line %zu: quote inside a field",
                                    r->line);
                    return LOYALTY_ERROR;
                }
                p++;
            }

            fields[k].data = start;
            fields[k].len = (size_t) (p - start);
        }

        k++;

        if (p < r->end && *p == ',') {
            p++;
            continue;
        }

        /* end of record: LF or CRLF, or the end of the text */
        if (p < r->end && *p == '\r') {
            p++;
        }
        if (p < r->end && *p == '\n') {
            p++;
        }

        break;
    }

    r->pos = p;
    *n = k;

    return LOYALTY_OK;
}
