/*
 * Copyright (C) loyalty-edge authors
 *
 * Header-only scaffolding shared by the C unit tests and the fuzz
 * targets: a malloc-backed arena allocator that can fail on demand, a
 * fake transport for loyalty_request_t, string helpers and check_ok().
 *
 * Everything is static inline, so a program that includes this file and
 * uses only part of it compiles cleanly with -Wall -Wextra -Werror.
 */

#ifndef _LOYALTY_TEST_H_INCLUDED_
#define _LOYALTY_TEST_H_INCLUDED_


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loyalty_provider.h"
#include "tap.h"


#define LT_MAX_HEADERS  16


/*
 * Every allocation of a test run, freed together by lt_arena_free(), as
 * an nginx pool would be.  Each block is its own malloc() so ASan sees
 * overruns of any of them.
 */

typedef struct lt_block_s  lt_block_t;

struct lt_block_s {
    lt_block_t     *next;
    /* the caller's bytes follow, suitably aligned */
    union {
        void       *p;
        long long   ll;
        long double ld;
    }               data[];
};

typedef struct {
    lt_block_t     *blocks;
    size_t          count;           /* blocks held */
    size_t          calls;           /* allocations asked for */
    size_t          fail_at;         /* 0: never; n: the n-th call fails */
} lt_arena_t;


/* a few request headers, looked up case-insensitively as nginx does */

typedef struct {
    const char     *name[LT_MAX_HEADERS];
    loyalty_str_t   value[LT_MAX_HEADERS];
    size_t          n;
} lt_headers_t;


static inline void *lt_arena_alloc(void *ctx, size_t size);
static inline void lt_arena_free(lt_arena_t *a);
static inline void check_ok(int pass, const char *why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));


/* the loyalty_alloc_t callback; ctx is an lt_arena_t */

static inline void *
lt_arena_alloc(void *ctx, size_t size)
{
    lt_arena_t  *a;
    lt_block_t  *b;

    a = ctx;
    a->calls++;

    /* allocation-failure injection: exactly the fail_at-th call fails */
    if (a->fail_at && a->calls == a->fail_at) {
        return NULL;
    }

    b = malloc(sizeof(lt_block_t) + size);
    if (b == NULL) {
        return NULL;
    }

    b->next = a->blocks;
    a->blocks = b;
    a->count++;

    return b->data;
}


/* frees every block and resets the counters and the failure point */

static inline void
lt_arena_free(lt_arena_t *a)
{
    lt_block_t  *b, *next;

    for (b = a->blocks; b != NULL; b = next) {
        next = b->next;
        free(b);
    }

    a->blocks = NULL;
    a->count = 0;
    a->calls = 0;
    a->fail_at = 0;
}


/*
 * An assertion named after the core bug it once caught: the TAP line
 * ends with "(was: why)", so a regression names the bug it reopens.
 */

static inline void
check_ok(int pass, const char *why, const char *fmt, ...)
{
    va_list       args;
    tap_state_t  *st;

    st = tap_state();
    st->run++;

    printf("%sok %d - ", pass ? "" : "not ", st->run);

    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);

    printf(" (was: %s)\n", why);

    if (!pass) {
        st->failed++;
    }

    fflush(stdout);
}


/* a loyalty_str_t over a C string; NULL gives the empty string */

static inline loyalty_str_t
lt_str(const char *s)
{
    loyalty_str_t  v;

    v.data = (const u_char *) s;
    v.len = s ? strlen(s) : 0;

    return v;
}


/* is_mem() of a loyalty_str_t against a C string */

static inline int
lt_str_is(const loyalty_str_t *s, const char *exp, const char *name)
{
    return is_mem(s->data, s->len, exp, strlen(exp), name);
}


/*
 * The loyalty_header_pt callback of the fake transport: req->data is an
 * lt_headers_t, names compare case-insensitively.
 */

static inline int
lt_header(const loyalty_request_t *req, const char *name,
    loyalty_str_t *value)
{
    size_t         i;
    lt_headers_t  *h;

    h = req->data;

    for (i = 0; i < h->n; i++) {
        if (strcasecmp(h->name[i], name) == 0) {
            *value = h->value[i];
            return LOYALTY_OK;
        }
    }

    return LOYALTY_DECLINED;
}


/* adds a header; the value is not copied and need not be NUL-terminated */

static inline void
lt_header_set(lt_headers_t *h, const char *name, const u_char *data,
    size_t len)
{
    if (h->n == LT_MAX_HEADERS) {
        fprintf(stderr, "lt_header_set: too many headers\n");
        abort();
    }

    h->name[h->n] = name;
    h->value[h->n].data = data;
    h->value[h->n].len = len;
    h->n++;
}


/*
 * A copy of s (len bytes, no NUL) in the arena, for the test's own data:
 * the arena's call counter and failure point are left as they were, so
 * the copy never takes the allocation failure meant for the code under
 * test.  Exits on a real out-of-memory.
 */

static inline const u_char *
lt_arena_dup(lt_arena_t *a, const char *s, size_t len)
{
    u_char  *p;
    size_t   calls, fail_at;

    calls = a->calls;
    fail_at = a->fail_at;
    a->fail_at = 0;

    p = lt_arena_alloc(a, len ? len : 1);

    a->calls = calls;
    a->fail_at = fail_at;

    if (p == NULL) {
        fprintf(stderr, "lt_arena_dup: out of memory\n");
        exit(2);
    }

    memcpy(p, s, len);

    return p;
}


/* a C string as an exact-size loyalty_str_t in the arena */

static inline loyalty_str_t
lt_arena_str(lt_arena_t *a, const char *s)
{
    loyalty_str_t  r;

    r.len = strlen(s);
    r.data = lt_arena_dup(a, s, r.len);

    return r;
}


/* 1 when s holds exactly the C string want */

static inline int
lt_str_eq(const loyalty_str_t *s, const char *want)
{
    return s->len == strlen(want)
           && (s->len == 0 || memcmp(s->data, want, s->len) == 0);
}


/* adds a header whose value is copied (exact size) into the arena */

static inline void
lt_header_add(lt_headers_t *h, lt_arena_t *a, const char *name,
    const char *value)
{
    lt_header_set(h, name, lt_arena_dup(a, value, strlen(value)),
                  strlen(value));
}


/*
 * conf for the named sender with the secrets of args (NULL-terminated);
 * exits when the sender is unknown or a secret is refused
 */

static inline void
lt_conf_va(loyalty_provider_conf_t *conf, const char *sender, va_list args)
{
    const char     *s;
    loyalty_err_t   err;
    loyalty_str_t   secret;

    loyalty_provider_conf_init(conf);

    if (loyalty_provider_find((const u_char *) sender, strlen(sender))
        == NULL)
    {
        fprintf(stderr, "lt_conf_va: no sender %s\n", sender);
        exit(2);
    }

    loyalty_provider_conf_set(conf,
        loyalty_provider_find((const u_char *) sender, strlen(sender)));

    while ((s = va_arg(args, const char *)) != NULL) {
        secret = lt_str(s);
        if (loyalty_provider_add_secret(conf, &secret, &err) != LOYALTY_OK) {
            fprintf(stderr, "lt_conf_va: add_secret: %s\n", err.msg);
            exit(2);
        }
    }
}


/* a request over body and the headers h, at the given time */

static inline void
lt_request(loyalty_request_t *req, lt_headers_t *h, const u_char *body,
    size_t len, time_t now, int64_t now_ms)
{
    memset(req, 0, sizeof(loyalty_request_t));

    req->body.data = body;
    req->body.len = len;
    req->now = now;
    req->now_ms = now_ms;
    req->header = lt_header;
    req->data = h;
}


/*
 * verify of body with one header (none when header is NULL) at now;
 * the request's copies are freed again
 */

static inline int
lt_verify(loyalty_provider_conf_t *conf, lt_arena_t *a, const char *header,
    const char *value, const char *body, time_t now, loyalty_err_t *err)
{
    int                 rc;
    lt_headers_t        h;
    loyalty_request_t   req;

    memset(&h, 0, sizeof(lt_headers_t));

    if (header != NULL) {
        lt_header_add(&h, a, header, value);
    }

    lt_request(&req, &h, lt_arena_dup(a, body, strlen(body)), strlen(body),
               now, (int64_t) now * 1000);

    err->code = 0;
    err->msg[0] = '\0';

    rc = conf->provider->verify(conf, &req, err);

    lt_arena_free(a);

    return rc;
}


/* normalize of body with the headers h at now, into a's memory */

static inline int
lt_normalize(loyalty_provider_conf_t *conf, lt_arena_t *a,
    const loyalty_alloc_t *alloc, lt_headers_t *h, const char *body,
    time_t now, loyalty_batch_t *batch, loyalty_err_t *err)
{
    loyalty_request_t  req;

    lt_request(&req, h, lt_arena_dup(a, body, strlen(body)), strlen(body),
               now, (int64_t) now * 1000 + 7);

    memset(batch, 0, sizeof(loyalty_batch_t));
    err->code = 0;
    err->msg[0] = '\0';

    return conf->provider->normalize(conf, &req, alloc, batch, err);
}


#endif /* _LOYALTY_TEST_H_INCLUDED_ */
