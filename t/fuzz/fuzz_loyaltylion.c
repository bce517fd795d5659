/*
 * Copyright (C) loyalty-edge authors
 *
 * libFuzzer target: the whole input is a LoyaltyLion body (so the
 * t/data/loyaltylion bodies are seeds).  A cheap function of the input
 * picks the variant: which x-loyaltylion-topic header goes with it,
 * whether the signature is right (then normalize runs), and whether one
 * allocation of normalize fails.  See t/fuzz/README.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

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
static size_t sign_b64(const char *key, const u_char *body, size_t len,
    char *out);
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


static size_t
sign_b64(const char *key, const u_char *body, size_t len, char *out)
{
    u_char        mac[EVP_MAX_MD_SIZE];
    unsigned int  mlen;

    if (HMAC(EVP_sha256(), key, (int) strlen(key), body, len, mac, &mlen)
        == NULL)
    {
        abort();
    }

    return (size_t) EVP_EncodeBlock((u_char *) out, mac, (int) mlen);
}


/* the invariants the module and the worker rely on */

static void
check_event(loyalty_event_t *ev)
{
    lt_fuzz_event(ev, "loyaltylion", (int64_t) NOW * 1000 + 7, &alloc);
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


#define SECRET  "hush"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                             rc;
    char                            sig[128];
    u_char                         *body;
    size_t                          i, len, sum;
    lt_headers_t                    h;
    loyalty_err_t                   err;
    loyalty_request_t               req;

    static int                      ready;
    static loyalty_provider_conf_t  conf;

    static const char  *topics[] = {
        NULL, "customers/update", "rewards/store_fulfilment",
        "program_events/customer.points_earned", "loyalty_emails/unsubscribe"
    };

    if (!ready) {
        conf_make(&conf, "loyaltylion", SECRET);
        ready = 1;
    }

    for (sum = 0, i = 0; i < size; i++) {
        sum += data[i];
    }

    /* exact size: ASan sees reads past the end, as nginx buffers have none */
    body = malloc(size ? size : 1);
    if (body == NULL) {
        abort();
    }

    memcpy(body, data, size);

    memset(&h, 0, sizeof(lt_headers_t));
    lt_request(&req, &h, body, size, NOW, (int64_t) NOW * 1000 + 7);

    if (topics[sum % 5] != NULL) {
        lt_header_set(&h, "X-LoyaltyLion-Topic",
                      (const u_char *) topics[sum % 5],
                      strlen(topics[sum % 5]));
    }

    if ((sum / 5) % 8 == 0) {
        /* a wrong signature: verify must refuse it */
        lt_header_set(&h, "x-loyaltylion-hmac-sha256", body,
                      size < 44 ? size : 44);

    } else {
        len = sign_b64(SECRET, body, size, sig);
        lt_header_set(&h, "x-loyaltylion-hmac-sha256", (const u_char *) sig,
                      len);
    }

    memset(&err, 0, sizeof(err));
    rc = conf.provider->verify(&conf, &req, &err);

    check(rc == LOYALTY_OK || rc == LOYALTY_DECLINED);
    check(rc == LOYALTY_OK || err.code == LOYALTY_ERR_SIGNATURE);
    check((sum / 5) % 8 == 0 || rc == LOYALTY_OK);

    if (rc == LOYALTY_OK) {
        run_normalize(&conf, &req, (sum / 40) % 4 == 3 ? sum % 24 + 1 : 0);
    }

    lt_arena_free(&arena);
    free(body);

    return 0;
}
