/*
 * Copyright (C) loyalty-edge authors
 */


#include <string.h>

#include "loyalty_identity.h"


int
loyalty_identity_email(const loyalty_str_t *in, const loyalty_alloc_t *a,
    loyalty_str_t *out)
{
    u_char        *p, ch;
    size_t         len, i, at, dot;
    const u_char  *s;

    s = in->data;
    len = in->len;

    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }

    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
        len--;
    }

    if (len < 3 || len > LOYALTY_EMAIL_MAX) {
        return LOYALTY_DECLINED;
    }

    at = len;
    dot = 0;

    for (i = 0; i < len; i++) {
        ch = s[i];

        if (ch <= 0x20 || ch == 0x7f || ch == ',' || ch == '<' || ch == '>'
            || ch == '(' || ch == ')' || ch == ';' || ch == '"')
        {
            return LOYALTY_DECLINED;
        }

        if (ch == '@') {
            if (at != len) {
                return LOYALTY_DECLINED;
            }
            at = i;

        } else if (ch == '.' && at != len) {
            /* no empty label: "a@.b.c", "a@b..c" */
            if (i == at + 1 || s[i - 1] == '.') {
                return LOYALTY_DECLINED;
            }
            dot = i;
        }
    }

    /* local@domain.tld: non-empty local part, a dot inside the domain */
    if (at == 0 || at == len || dot <= at + 1 || dot == len - 1) {
        return LOYALTY_DECLINED;
    }

    p = a->alloc(a->ctx, len + 1);
    if (p == NULL) {
        return LOYALTY_ERROR;
    }

    for (i = 0; i < len; i++) {
        ch = s[i];
        p[i] = (ch >= 'A' && ch <= 'Z') ? (u_char) (ch | 0x20) : ch;
    }

    p[len] = '\0';

    out->data = p;
    out->len = len;

    return LOYALTY_OK;
}
