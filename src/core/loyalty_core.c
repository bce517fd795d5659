/*
 * Copyright (C) loyalty-edge authors
 */


#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "loyalty_core.h"


void
loyalty_err_set(loyalty_err_t *err, int code, const char *fmt, ...)
{
    va_list  args;

    if (err == NULL) {
        return;
    }

    err->code = code;

    va_start(args, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, args);
    va_end(args);
}


u_char *
loyalty_alloc_copy(const loyalty_alloc_t *a, const void *src, size_t len)
{
    u_char  *p;

    p = a->alloc(a->ctx, len + 1);
    if (p == NULL) {
        return NULL;
    }

    if (len) {
        memcpy(p, src, len);
    }

    p[len] = '\0';

    return p;
}


int
loyalty_str_eq(const loyalty_str_t *s, const char *cstr)
{
    size_t  n;

    n = strlen(cstr);

    return s->len == n && memcmp(s->data, cstr, n) == 0;
}

