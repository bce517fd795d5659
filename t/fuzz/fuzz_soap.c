/*
 * Copyright (C) loyalty-edge authors
 *
 * libFuzzer target: arbitrary bytes, the whole input being the request
 * body, through loyalty_soap_parse(), checking what the Salesforce
 * provider relies on.  Seeds: t/data/salesforce (plain XML files).
 *
 *   make build/fuzz/fuzz_soap
 *   build/fuzz/fuzz_soap -max_total_time=60 -max_len=8192 \
 *       /tmp/soapcorpus t/data/salesforce
 *
 * A body that parses is parsed a second time with one allocation, picked
 * from the input's bytes, made to fail: that must give LOYALTY_ERROR.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loyalty_soap.h"
#include "loyalty_test.h"


#define check(cond)                                                          \
    if (!(cond)) {                                                           \
        fprintf(stderr, "invariant failed at line %d: %s\n", __LINE__,       \
                #cond);                                                      \
        abort();                                                             \
    }


static void check_str(const loyalty_str_t *s, const uint8_t *in,
    size_t size);
static int utf8_ok(const u_char *p, size_t len);
static void check_message(const loyalty_soap_message_t *m,
    const uint8_t *in, size_t size);
static int zeroed(const loyalty_soap_message_t *m);


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


/*
 * A returned string: data when it has a length, every byte readable
 * (ASan checks the reads), NUL-terminated, a copy rather than a pointer
 * into the body, and UTF-8 as libxml2 promises.
 */

static void
check_str(const loyalty_str_t *s, const uint8_t *in, size_t size)
{
    if (s->data == NULL) {
        check(s->len == 0);
        return;
    }

    check(s->data[s->len] == '\0');
    check(memchr(s->data, '\0', s->len) == NULL);
    check((const uint8_t *) s->data + s->len < in
          || (const uint8_t *) s->data >= in + size);
    check(utf8_ok(s->data, s->len));
}


/* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF */

static int
utf8_ok(const u_char *p, size_t len)
{
    size_t    i, k, n;
    uint32_t  c, min;

    for (i = 0; i < len; /* void */) {
        c = p[i];

        if (c < 0x80) {
            i++;
            continue;
        }

        if (c >= 0xc2 && c <= 0xdf) {
            n = 1; c &= 0x1f; min = 0x80;

        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2; c &= 0x0f; min = 0x800;

        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3; c &= 0x07; min = 0x10000;

        } else {
            return 0;
        }

        if (len - i <= n) {
            return 0;
        }

        for (k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            c = (c << 6) | (p[i + k] & 0x3f);
        }

        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            return 0;
        }

        i += n + 1;
    }

    return 1;
}


static void
check_message(const loyalty_soap_message_t *m, const uint8_t *in,
    size_t size)
{
    size_t                              i, j;
    const loyalty_soap_field_t         *f;
    const loyalty_soap_notification_t  *nt;

    check_str(&m->organization_id, in, size);
    check_str(&m->action_id, in, size);
    check_str(&m->enterprise_url, in, size);
    check_str(&m->partner_url, in, size);

    check(m->organization_id.len != 0);
    check(m->nnotifications >= 1
          && m->nnotifications <= LOYALTY_SOAP_MAX_NOTIFICATIONS);
    check(m->notifications != NULL);

    for (i = 0; i < m->nnotifications; i++) {
        nt = &m->notifications[i];

        check_str(&nt->id, in, size);
        check_str(&nt->type, in, size);
        check(nt->id.len != 0);
        check((nt->nfields == 0) == (nt->fields == NULL));

        /* a type is a local name: the prefix is gone */
        check(nt->type.len == 0
              || memchr(nt->type.data, ':', nt->type.len) == NULL);

        for (j = 0; j < nt->nfields; j++) {
            f = &nt->fields[j];

            check_str(&f->name, in, size);
            check_str(&f->value, in, size);
            check(f->name.len != 0);
            check(memchr(f->name.data, ':', f->name.len) == NULL);
            check(!f->nil || (f->value.len == 0 && f->value.data == NULL));
        }
    }
}


static int
zeroed(const loyalty_soap_message_t *m)
{
    loyalty_soap_message_t  z;

    memset(&z, 0, sizeof(loyalty_soap_message_t));

    return memcmp(m, &z, sizeof(loyalty_soap_message_t)) == 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                      rc;
    size_t                   i, calls, sum;
    loyalty_err_t            err;
    loyalty_str_t            body;
    loyalty_soap_message_t   m;

    body.data = data;
    body.len = size;

    memset(&err, 0, sizeof(err));
    memset(&m, 0xa5, sizeof(m));

    rc = loyalty_soap_parse(&body, &alloc, &m, &err);

    check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

    if (rc == LOYALTY_DECLINED) {
        check(err.code == LOYALTY_ERR_INPUT && err.msg[0] != '\0');
        check(zeroed(&m));
        lt_arena_free(&arena);
        return 0;
    }

    /* no allocation failed, so out of memory is impossible */
    check(rc == LOYALTY_OK);

    check_message(&m, data, size);

    calls = arena.calls;
    check(calls != 0);

    lt_arena_free(&arena);

    for (sum = 0, i = 0; i < size; i++) {
        sum = sum * 31 + data[i];
    }

    arena.fail_at = 1 + sum % calls;

    memset(&err, 0, sizeof(err));
    memset(&m, 0xa5, sizeof(m));

    rc = loyalty_soap_parse(&body, &alloc, &m, &err);

    check(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_NOMEM);
    check(zeroed(&m));

    lt_arena_free(&arena);

    return 0;
}
