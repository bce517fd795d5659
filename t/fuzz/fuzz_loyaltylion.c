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


static size_t sign_b64(const char *key, const u_char *body, size_t len,
    char *out);


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


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
        lt_fuzz_conf(&conf, "loyaltylion", SECRET);
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
        lt_fuzz_normalize(&conf, &req, &arena, &alloc,
                          (sum / 40) % 4 == 3 ? sum % 24 + 1 : 0,
                          (int64_t) NOW * 1000 + 7);
    }

    lt_arena_free(&arena);
    free(body);

    return 0;
}
