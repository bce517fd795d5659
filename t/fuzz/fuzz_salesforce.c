/*
 * Copyright (C) loyalty-edge authors
 *
 * libFuzzer target: the whole input is a Salesforce Outbound Message
 * body (so the t/data/salesforce messages are seeds), through verify and
 * normalize of the "salesforce" sender with the seeds' organization on
 * the allow-list and a default country.  A cheap function of the input
 * picks whether one allocation of normalize fails.  Every event must
 * hold the invariants of t/lib/loyalty_fuzz.h.  See t/fuzz/README.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loyalty_provider.h"
#include "loyalty_soap.h"
#include "loyalty_test.h"
#include "loyalty_fuzz.h"


#define NOW  1732442400


static lt_arena_t               arena;
static loyalty_alloc_t          alloc = { lt_arena_alloc, &arena };
static loyalty_provider_conf_t  conf;
static int                      ready;


static void
setup(void)
{
    loyalty_err_t  err;
    loyalty_str_t  org, country;

    loyalty_soap_init();

    loyalty_provider_conf_init(&conf);
    loyalty_provider_conf_set(&conf,
        loyalty_provider_find((const u_char *) "salesforce", 10));

    org = lt_str("00D5g000004ElLm");
    country = lt_str("GB");

    if (conf.provider == NULL
        || loyalty_provider_add_org(&conf, &org, &err) != LOYALTY_OK
        || loyalty_provider_set_country(&conf, &country, &err) != LOYALTY_OK)
    {
        abort();
    }

    ready = 1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                rc;
    size_t             i, sum, fail_at;
    u_char            *body;
    lt_headers_t       h;
    loyalty_err_t      err;
    loyalty_batch_t    batch;
    loyalty_request_t  req;

    if (!ready) {
        setup();
    }

    /* exact size: ASan sees any read past the body */
    body = malloc(size ? size : 1);
    if (body == NULL) {
        return 0;
    }

    memcpy(body, data, size);

    sum = 0;
    for (i = 0; i < size; i++) {
        sum += data[i];
    }

    /* one run in four makes one allocation of normalize fail */
    fail_at = (sum % 4 == 0) ? (sum / 4) % 64 + 1 : 0;

    memset(&h, 0, sizeof(lt_headers_t));
    lt_request(&req, &h, body, size, NOW, (int64_t) NOW * 1000 + 7);

    memset(&err, 0, sizeof(loyalty_err_t));

    rc = conf.provider->verify(&conf, &req, &err);
    lt_fuzz_check(rc == LOYALTY_OK
                  || (rc == LOYALTY_DECLINED
                      && err.code == LOYALTY_ERR_SIGNATURE));

    if (rc == LOYALTY_OK) {
        memset(&batch, 0, sizeof(loyalty_batch_t));
        memset(&err, 0, sizeof(loyalty_err_t));
        arena.fail_at = fail_at;

        rc = conf.provider->normalize(&conf, &req, &alloc, &batch, &err);

        lt_fuzz_check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

        if (rc == LOYALTY_OK) {
            lt_fuzz_check(batch.nevents >= 1
                          && batch.nevents
                             <= LOYALTY_SOAP_MAX_NOTIFICATIONS);

            arena.fail_at = 0;

            for (i = 0; i < batch.nevents; i++) {
                lt_fuzz_event(&batch.events[i], "salesforce",
                              (int64_t) NOW * 1000 + 7, &alloc);
            }

        } else if (rc == LOYALTY_DECLINED) {
            /* a bad message, or an organization not on the list */
            lt_fuzz_check(err.code == LOYALTY_ERR_INPUT
                          || err.code == LOYALTY_ERR_SIGNATURE);

        } else {
            lt_fuzz_check(rc == LOYALTY_ERROR && fail_at != 0
                          && err.code == LOYALTY_ERR_NOMEM);
        }
    }

    lt_arena_free(&arena);
    free(body);

    return 0;
}
