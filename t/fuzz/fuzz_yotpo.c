/*
 * Copyright (C) loyalty-edge authors
 *
 * libFuzzer target: the whole input is a Yotpo body (so the t/data/yotpo
 * bodies are seeds).  A cheap function of the input picks the variant:
 * the token right, wrong, a prefix of it or with "Bearer ", in X-Api-Key
 * or in a configured Authorization header; an eventid header or not;
 * and whether one allocation of normalize fails.  See t/fuzz/README.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loyalty_provider.h"
#include "loyalty_test.h"
#include "loyalty_fuzz.h"


#define NOW          1735700405

#define check(cond)                                                          \
    if (!(cond)) {                                                           \
        fprintf(stderr, "invariant failed at line %d: %s\n", __LINE__,       \
                #cond);                                                      \
        abort();                                                             \
    }


static void conf_make(loyalty_provider_conf_t *conf, const char *name,
    const char *secret);
static void check_event(loyalty_event_t *ev);
static void run_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, size_t fail_at);


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


static void
conf_make(loyalty_provider_conf_t *conf, const char *name, const char *secret)
{
    loyalty_err_t  err;
    loyalty_str_t  s;

    loyalty_provider_conf_init(conf);
    loyalty_provider_conf_set(conf,
        loyalty_provider_find((const u_char *) name, strlen(name)));

    s.data = (const u_char *) secret;
    s.len = strlen(secret);

    if (conf->provider == NULL
        || loyalty_provider_add_secret(conf, &s, &err) != LOYALTY_OK)
    {
        abort();
    }
}


/* the invariants the module and the worker rely on */

static void
check_event(loyalty_event_t *ev)
{
    lt_fuzz_event(ev, "yotpo", (int64_t) NOW * 1000 + 7, &alloc);
}


/*
 * After verify succeeded: normalize, with one allocation failing when
 * fail_at is not 0, and check what comes out.
 */

static void
run_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, size_t fail_at)
{
    int              rc;
    size_t           i;
    loyalty_err_t    err;
    loyalty_batch_t  batch;

    memset(&err, 0, sizeof(err));
    memset(&batch, 0, sizeof(batch));

    arena.fail_at = fail_at;

    rc = conf->provider->normalize(conf, req, &alloc, &batch, &err);

    check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

    if (rc == LOYALTY_OK) {
        check(batch.nevents <= 1);
        check(batch.nevents == 0 || batch.events != NULL);
        arena.fail_at = 0;

        for (i = 0; i < batch.nevents; i++) {
            check_event(&batch.events[i]);
        }

    } else if (rc == LOYALTY_DECLINED) {
        check(err.code == LOYALTY_ERR_JSON || err.code == LOYALTY_ERR_INPUT);

    } else {
        check(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_NOMEM);
        check(fail_at != 0);
    }
}


#define TOKEN   "yotpo-webhook-token"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                             rc, good;
    u_char                         *body;
    size_t                          i, sum, v;
    lt_headers_t                    h;
    loyalty_err_t                   err;
    loyalty_request_t               req;
    loyalty_provider_conf_t        *conf;

    static int                      ready;
    static loyalty_provider_conf_t  kconf, aconf;

    if (!ready) {
        conf_make(&kconf, "yotpo", TOKEN);
        conf_make(&aconf, "yotpo", "old-token");

        if (loyalty_provider_add_secret(&aconf,
                &(loyalty_str_t) loyalty_string(TOKEN), &err) != LOYALTY_OK)
        {
            abort();
        }

        aconf.signature_header = "Authorization";
        ready = 1;
    }

    for (sum = 0, i = 0; i < size; i++) {
        sum += data[i];
    }

    body = malloc(size ? size : 1);
    if (body == NULL) {
        abort();
    }

    memcpy(body, data, size);

    memset(&h, 0, sizeof(lt_headers_t));
    lt_request(&req, &h, body, size, NOW, (int64_t) NOW * 1000 + 7);

    conf = (sum % 2) ? &aconf : &kconf;
    v = (sum / 2) % 5;
    good = 0;

    switch (v) {
    case 0:
        lt_header_set(&h, conf->signature_header, body, size < 32 ? size : 32);
        good = (size == sizeof(TOKEN) - 1
                && memcmp(body, TOKEN, size) == 0);
        break;
    case 1:
        lt_header_set(&h, conf->signature_header, (const u_char *) TOKEN,
                      sizeof(TOKEN) - 2);
        break;
    case 2:
        lt_header_set(&h, conf->signature_header,
                      (const u_char *) "Bearer " TOKEN,
                      sizeof("Bearer " TOKEN) - 1);
        good = 1;
        break;
    default:
        lt_header_set(&h, conf->signature_header, (const u_char *) TOKEN,
                      sizeof(TOKEN) - 1);
        good = 1;
    }

    if ((sum / 10) % 3 == 0) {
        lt_header_set(&h, "EventId", body, size < 40 ? size : 40);
    }

    memset(&err, 0, sizeof(err));
    rc = conf->provider->verify(conf, &req, &err);

    check(rc == LOYALTY_OK || rc == LOYALTY_DECLINED);
    check(rc == LOYALTY_OK || err.code == LOYALTY_ERR_SIGNATURE);
    check(good == (rc == LOYALTY_OK) || v == 0);
    check(v != 1 || rc == LOYALTY_DECLINED);

    if (rc == LOYALTY_OK) {
        run_normalize(conf, &req, (sum / 30) % 4 == 3 ? sum % 20 + 1 : 0);
    }

    lt_arena_free(&arena);
    free(body);

    return 0;
}
