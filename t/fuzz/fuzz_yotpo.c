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




static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


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
        lt_fuzz_conf(&kconf, "yotpo", TOKEN);
        lt_fuzz_conf(&aconf, "yotpo", "old-token");

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
        lt_fuzz_normalize(conf, &req, &arena, &alloc,
                          (sum / 30) % 4 == 3 ? sum % 20 + 1 : 0,
                          (int64_t) NOW * 1000 + 7);
    }

    lt_arena_free(&arena);
    free(body);

    return 0;
}
